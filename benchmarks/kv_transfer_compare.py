"""kvplan's KV transfer term (disaggregated prefill -> decode) against published measurements.

The data, each point with its source and stated setup, are in ``benchmarks/data/kv_transfer.json``:

* ``transfers``: per-request KV transfer times measured by the Mooncake team between a TP8 prefill instance and a
  TP8 decode instance on two nodes (vLLM with the MooncakeConnector on H800 + 8 x ConnectX-7 RoCE, Qwen3-8B;
  SGLang with the Mooncake transfer engine on H20-3e + 4 x 400GbE per node, Qwen3-235B-A22B), prompts of
  128-32768 tokens, one request at a time. kvplan's figure: its own KV bytes per rank for the prompt (the engine's
  cache plan, :func:`kvplan.disagg.kv_bytes_per_rank`), then :func:`kvplan.latency.kv_transfer_s` across nodes with
  the stated network per GPU (``nic_gbps_per_gpu``), plus the fixed cost of the request's transfer-engine entries
  (:func:`kvplan.disagg.entry_cost_s`: ``kvplan_entries`` x :data:`kvplan.disagg.MOONCAKE_ENTRY_S`). The published
  KV size is checked against kvplan's bytes too (``size_ratio``).
* ``bulk``: the Mooncake transfer engine's README figure (40 GB, the KV of 128k tokens of LLaMA3-70B, between two
  nodes of 4 x 200 Gbps and 8 x 400 Gbps RoCE): kvplan's bandwidth term over the same NICs.
* ``end_to_end``: the same runs' TTFT (one request at a time): :func:`kvplan.disagg.serve_disaggregated` at rate 0
  with TP8 pools on the stated GPU (H800: the H100 SXM card with its NVLink at 400 GB/s, ``gpus``), the stated
  network. A run kvplan cannot model carries ``not_compared`` with the reason; ``not_scored`` lists published
  results without figures to score.
* ``pool_throughput``: a disaggregated deployment's pools measured one at a time (SGLang, DeepSeek-V3 on H100 with
  DP attention and expert parallelism over 4 prefill and 9 decode nodes, LMSYS blog): kvplan's step
  (:func:`kvplan.cost.phase_cost` with ``dp`` = the pool's ranks, experts split over them) gives the tokens per
  second per node at the stated tokens per rank.

The per-entry cost is the one constant fitted here (``--fit`` prints it): least squares of ln(kvplan / measured)
over the ``FIT_SOURCE`` run's nine transfers alone (vLLM, whose timer wraps exactly the transfer engine's batch
call); the other run (SGLang: another engine, model, GPU and network) is held out and scored with it
(``held-out``). ``--fit`` also fits each run alone and scores the other with that (both directions of the
cross-check). A least-squares line through each source's transfer points (``line_fit``) is printed as a diagnostic;
kvplan's bandwidth constants are not refitted to it.

``python benchmarks/kv_transfer_compare.py [--markdown] [--update-data] [--fit]``
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from published_compare import dump_data  # noqa: E402 - the data file's layout, shared with the other table

DATA = Path(__file__).resolve().parent / "data" / "kv_transfer.json"
HOST_GPU = "h100-sxm"  # hosts the setups whose KV bytes are counted (bytes per rank do not depend on the GPU)
SMALL_PROMPT = 2048  # below this many tokens the fixed per-transfer cost dominates (the docs' split)
FIT_SOURCE = "mooncake-vllm"  # the run MOONCAKE_ENTRY_S is fitted to; every other transfer run is held out
_FIT_STEPS = 200  # golden-section steps on the per-entry cost (the bracket shrinks 0.618x each)
_UNITS = {
    "GiB": {"MB": 2**20, "GB": 2**30},  # the source writes binary units as MB / GB
    "GB": {"MB": 1e6, "GB": 1e9},
}


def load() -> dict:
    return json.loads(DATA.read_text(encoding="utf-8"))


def published_bytes(text: str, unit: str) -> float:
    """``"1.13 GB"`` in the source's own units (``size_unit``: binary "GiB" or decimal "GB")."""
    value, suffix = text.split()
    return float(value) * _UNITS[unit][suffix]


def gpu(name: str, data: dict):  # noqa: ANN201
    """A catalog GPU, or one described in the data's ``gpus`` as a catalog card with changes (H800)."""
    from kvplan.hardware import resolve_gpu

    if name not in data.get("gpus", {}):
        return resolve_gpu(name)
    card = data["gpus"][name]
    base = resolve_gpu(card["like"])
    return base.model_copy(update={"name": name, "interconnect_gbps": card["interconnect_gbps"]})


def pools(src: dict, host):  # noqa: ANN001, ANN201
    from kvplan.capacity import setup

    p = setup(src["model"], host, engine=src["engine"], tp=src["prefill_tp"])
    d = setup(src["model"], host, engine=src["engine"], tp=src["decode_tp"])
    return p, d


def score_transfer(row: dict, data: dict) -> dict:
    """kvplan's bytes and seconds for one measured transfer: ``kvplan_bytes_per_rank``, ``kvplan_bytes_total``,
    ``size_ratio`` (published size / kvplan's total), ``kvplan_ms``, ``ratio`` (kvplan / published)."""
    from kvplan.disagg import entry_cost_s, kv_bytes_per_rank, kv_transfer, transfer_entries
    from kvplan.hardware import resolve_gpu

    src = data["sources"][row["source"]]
    p, d = pools(src, resolve_gpu(HOST_GPU))
    tokens = row["prompt_tokens"]
    seconds, total = kv_transfer(p, d, tokens, crosses_nodes=True, nic_gbps=src["nic_gbps_per_gpu"])
    ms = seconds * 1e3
    return {
        "kvplan_bytes_per_rank": max(kv_bytes_per_rank(p, tokens), kv_bytes_per_rank(d, tokens)),
        "kvplan_bytes_total": total,
        "size_ratio": round(published_bytes(row["published_kv_size"], src["size_unit"]) / total, 4),
        "kvplan_entries": max(transfer_entries(p), transfer_entries(d)),
        "kvplan_entry_ms": round(entry_cost_s(p, d, crosses_nodes=True) * 1e3, 4),
        "kvplan_ms": round(ms, 4),
        "ratio": round(ms / row["published_transfer_ms"], 4),
    }


def score_bulk(row: dict, data: dict) -> dict:
    """kvplan's time for the README's bulk transfer: its KV bytes at ``tokens`` spread over ``nics`` NICs (one
    rank per NIC, :func:`kvplan.latency.kv_transfer_s`); ``kvplan_gb_s`` the bandwidth that makes."""
    from kvplan.capacity import setup
    from kvplan.hardware import resolve_gpu
    from kvplan.latency import kv_transfer_s

    src = data["sources"][row["source"]]
    s = setup(src["model"], resolve_gpu("h200"), tp=1)
    total = sum(st.layout.stage.bytes_at(row["tokens"]) for st in s.stages)
    seconds = kv_transfer_s(s.gpu, total / row["nics"], crosses_nodes=True, nic_gbps=row["nic_gbps"])
    gb_s = total / seconds / 1e9
    published_s = total / (row["published_gb_s"] * 1e9)
    return {
        "kvplan_bytes_total": total,
        "size_ratio": round(published_bytes(row["published_size"], "GiB") / total, 4),
        "kvplan_gb_s": round(gb_s, 2),
        "ratio": round(seconds / published_s, 4),
    }


def score_end_to_end(row: dict, data: dict) -> dict:
    """kvplan's TTFT for one request at a time (rate 0) on the stated pools: ``kvplan_ttft_ms`` and its parts,
    ``ratio`` (kvplan / published)."""
    from kvplan.disagg import serve_disaggregated
    from kvplan.serving import Lengths

    src = data["sources"][row["source"]]
    p, d = pools(src, gpu(src["gpu"], data))
    r = serve_disaggregated(p, d, rate_rps=0.0, input_len=Lengths.of(row["prompt_tokens"]),
                            output_len=Lengths.of(row["output_tokens"]), nic_gbps=src["nic_gbps_per_gpu"])  # fmt: skip
    return {
        "kvplan_prefill_ms": round(r.prefill_s * 1e3, 3),
        "kvplan_transfer_ms": round(r.kv_transfer_s * 1e3, 3),
        "kvplan_first_step_ms": round(r.first_token_s * 1e3, 3),
        "kvplan_ttft_ms": round(r.ttft_mean_s * 1e3, 3),
        "ratio": round(r.ttft_mean_s * 1e3 / row["published_ttft_ms"], 4),
    }


def score_pool(row: dict, data: dict) -> dict:
    """kvplan's tokens/s per node for one pool measured on its own: one step of ``tokens_per_rank`` prompt tokens
    (prefill) or ``batch_per_rank`` sequences (decode) on every one of ``ranks`` DP-attention ranks with the experts
    split over them; ``kvplan_step_s`` and its largest terms, ``ratio`` (kvplan / published)."""
    from kvplan.catalog import load_bundled
    from kvplan.cost import phase_cost

    src = data["sources"][row["source"]]
    ranks, per_node = row["ranks"], ranks_per_node(row)
    if row["phase"] == "prefill":
        prompts = row["tokens_per_rank"] // row["prompt_tokens"]
        context, batch, tokens = row["prompt_tokens"], prompts * ranks, row["tokens_per_rank"]
    else:
        context, batch, tokens = row["context_tokens"], row["batch_per_rank"] * ranks, row["batch_per_rank"]
    spec, card = load_bundled(src["model"]), gpu(src["gpu"], data)
    # The runs' exchange and overlap as the source states them ("DeepEP, DeepGEMM, two-batch overlap"): SGLang's
    # DeepEP all-to-all (not its default gather) and its two-batch overlap (kvplan.engines.sglang OVERLAP).
    c = phase_cost(spec, card, context, phase=row["phase"], batch=batch, tp=1, dp=ranks, expert_parallel=True,
                   gpus_per_node=per_node, engine=src["engine"], deepep=True, two_batch=True)  # fmt: skip
    ops = c.ops_s or {}
    tok_s = per_node * tokens / c.time_s
    return {
        "kvplan_step_s": round(c.time_s, 5),
        "kvplan_moe_s": round(ops.get("moe_s", 0.0), 5),
        "kvplan_alltoall_s": round(ops.get("alltoall_s", 0.0), 5),
        "kvplan_tok_s_per_node": round(tok_s, 1),
        "ratio": round(tok_s / row["published_tok_s_per_node"], 4),
    }


def ranks_per_node(row: dict) -> int:
    return row["ranks"] // row["nodes"]


def compare(data: dict) -> dict:
    """Every row with kvplan's figures (rows carrying ``not_compared`` are kept as they are)."""

    def scored(key: str, score) -> list[dict]:  # noqa: ANN001
        return [r if "not_compared" in r else {**r, **score(r, data)} for r in data.get(key, [])]

    return {
        "transfers": scored("transfers", score_transfer),
        "bulk": scored("bulk", score_bulk),
        "end_to_end": scored("end_to_end", score_end_to_end),
        "pool_throughput": scored("pool_throughput", score_pool),
    }


def stats(rows: list[dict]) -> dict:
    done = [r for r in rows if "ratio" in r]
    errs = [abs(math.log(r["ratio"])) for r in done]
    return {
        "compared": len(done),
        "median_abs_ln": statistics.median(errs),
        "worst_abs_ln": max(errs),
        "median_signed_ln": statistics.median(math.log(r["ratio"]) for r in done),
        "within_20pct": sum(abs(r["ratio"] - 1) <= 0.20 for r in done),
    }


def _without_entries_ms(r: dict) -> float:
    """kvplan's transfer without the per-entry cost: latency + bytes / bandwidth."""
    return r["kvplan_ms"] - r["kvplan_entry_ms"]


def rescored(rows: list[dict], entry_s: float) -> list[dict]:
    """``rows`` with ``ratio`` recomputed at a per-entry cost of ``entry_s`` seconds (0: bandwidth and latency only)."""
    return [{**r, "ratio": (_without_entries_ms(r) + r["kvplan_entries"] * entry_s * 1e3) / r["published_transfer_ms"]}
            for r in rows]  # fmt: skip


def fit_entry_s(rows: list[dict]) -> float:
    """The per-entry cost (seconds) minimising the sum of ln(kvplan / measured)^2 over ``rows`` (golden section on
    [0, 1 ms]; the sum is convex in it: each term is the square of ln(a + n e) - ln(m), increasing in e)."""

    def loss(entry_s: float) -> float:
        return sum(math.log(r["ratio"]) ** 2 for r in rescored(rows, entry_s))

    lo, hi = 0.0, 1e-3
    g = (math.sqrt(5) - 1) / 2
    for _ in range(_FIT_STEPS):
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        if loss(a) <= loss(b):
            hi = b
        else:
            lo = a
    return (lo + hi) / 2


def cross_check(done: dict) -> list[str]:
    """Each transfer run fitted alone and the other runs scored with its per-entry cost (``--fit``)."""
    lines = []
    sources = sorted({r["source"] for r in done["transfers"]})
    for source in sources:
        fitted = fit_entry_s([r for r in done["transfers"] if r["source"] == source])
        for other in sources:
            if other == source:
                continue
            s = stats(rescored([r for r in done["transfers"] if r["source"] == other], fitted))
            lines.append(f"fitted to {source} alone: {fitted * 1e6:.2f} us per entry; {other} scored with it: "
                         f"median |ln| {s['median_abs_ln']:.3f}, worst {s['worst_abs_ln']:.3f}, "
                         f"{s['within_20pct']} of {s['compared']} within 20%")  # fmt: skip
    return lines


def line_fit(rows: list[dict]) -> tuple[float, float]:
    """Least squares ``ms = a + bytes_per_rank / B`` over measured points: (a in ms, B in GB/s per GPU).
    A diagnostic of the measurements only; kvplan's constants are not refitted to it."""
    x = [r["kvplan_bytes_per_rank"] for r in rows]
    y = [r["published_transfer_ms"] for r in rows]
    mx, my = statistics.fmean(x), statistics.fmean(y)
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / sum((a - mx) ** 2 for a in x)  # ms per byte
    return my - slope * mx, 1 / slope / 1e6


def ttft_line(rows: list[dict]) -> tuple[float, float, float]:
    """Least squares of the published TTFT and of kvplan's against the prompt length: (published intercept ms,
    published ms per 1k tokens, kvplan's ms per 1k tokens). A diagnostic of where the end-to-end gap lies."""

    def fit(y: list[float]) -> tuple[float, float]:
        x = [r["prompt_tokens"] / 1000 for r in rows]
        mx, my = statistics.fmean(x), statistics.fmean(y)
        slope = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / sum((a - mx) ** 2 for a in x)
        return my - slope * mx, slope

    a, b = fit([r["published_ttft_ms"] for r in rows])
    return a, b, fit([r["kvplan_ttft_ms"] for r in rows])[1]


def _table(rows: list[dict], cols: list[tuple[str, str]]) -> str:
    head = "| " + " | ".join(c for c, _ in cols) + " |"
    rule = "|" + "---|" * len(cols)
    body = ["| " + " | ".join(str(r.get(k, "")) for _, k in cols) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def _shape(r: dict) -> str:
    if r["phase"] == "prefill":
        return f"{r.get('tokens_per_rank', '?')} tokens per rank, prompts of {r['prompt_tokens']}"
    return f"{r['batch_per_rank']} sequences per rank at {r['context_tokens']}"


def markdown(done: dict, data: dict) -> str:
    engines = {k: v.get("engine", "") for k, v in data["sources"].items()}
    tr = [{**r, "engine": engines[r["source"]], "x": f"x{r['ratio']:.2f}",
           "mb": f"{r['kvplan_bytes_per_rank'] / 1e6:.1f}"} for r in done["transfers"]]  # fmt: skip
    cols = [
        ("source", "source"),
        ("prompt tokens", "prompt_tokens"),
        ("published KV", "published_kv_size"),
        ("kvplan MB / rank", "mb"),
        ("size published / kvplan", "size_ratio"),
        ("published ms", "published_transfer_ms"),
        ("kvplan entries", "kvplan_entries"),
        ("of it entries ms", "kvplan_entry_ms"),
        ("kvplan ms", "kvplan_ms"),
        ("kvplan / published", "x"),
    ]
    out = [
        "Per-request KV transfer, kvplan against the Mooncake team's measurements (TP8 -> TP8, two nodes):",
        "",
        _table(tr, cols),
    ]
    bulk = [{**r, "x": f"x{r['ratio']:.2f}"} for r in done["bulk"]]
    out += ["", _table(bulk, [("network", "network"), ("published GB/s", "published_gb_s"),
                              ("kvplan GB/s", "kvplan_gb_s"), ("kvplan time / published", "x")])]  # fmt: skip
    e2e = [{**r, "x": f"x{r['ratio']:.2f}" if "ratio" in r else "not compared"} for r in done["end_to_end"]]
    out += ["", _table(e2e, [("source", "source"), ("prompt tokens", "prompt_tokens"),
                             ("published TTFT ms", "published_ttft_ms"), ("kvplan prefill ms", "kvplan_prefill_ms"),
                             ("transfer ms", "kvplan_transfer_ms"), ("first step ms", "kvplan_first_step_ms"),
                             ("kvplan TTFT ms", "kvplan_ttft_ms"), ("kvplan / published", "x")])]  # fmt: skip
    pools = [{**r, "x": f"x{r['ratio']:.2f}" if "ratio" in r else "not compared", "shape": _shape(r)}
             for r in done["pool_throughput"]]  # fmt: skip
    out += ["", _table(pools, [("phase", "phase"), ("nodes", "nodes"), ("shape", "shape"),
                               ("published tok/s/node", "published_tok_s_per_node"),
                               ("kvplan tok/s/node", "kvplan_tok_s_per_node"), ("kvplan step s", "kvplan_step_s"),
                               ("of it MoE s", "kvplan_moe_s"), ("all-to-all s", "kvplan_alltoall_s"),
                               ("kvplan / published", "x")])]  # fmt: skip
    return "\n".join(out)


def report(done: dict, data: dict) -> str:
    lines = []
    for name, rows in done.items():
        s = stats(rows)
        lines.append(f"{name}: {s['compared']} compared, median |ln(kvplan/published)| {s['median_abs_ln']:.3f}, "
                     f"worst {s['worst_abs_ln']:.3f}, median signed {s['median_signed_ln']:+.3f}, "
                     f"{s['within_20pct']} within 20%")  # fmt: skip
    for label, keep in (("< 2048 tokens", lambda r: r["prompt_tokens"] < SMALL_PROMPT),
                        (">= 2048 tokens", lambda r: r["prompt_tokens"] >= SMALL_PROMPT),
                        (f"held out (not {FIT_SOURCE})", lambda r: r["source"] != FIT_SOURCE)):  # fmt: skip
        s = stats([r for r in done["transfers"] if keep(r)])
        lines.append(f"transfers {label}: {s['compared']} compared, median |ln| {s['median_abs_ln']:.3f}, "
                     f"worst {s['worst_abs_ln']:.3f}, median signed {s['median_signed_ln']:+.3f}, "
                     f"{s['within_20pct']} within 20%")  # fmt: skip
    s = stats(rescored(done["transfers"], 0.0))
    lines.append(f"transfers without the per-entry cost (latency + bandwidth only): median |ln| "
                 f"{s['median_abs_ln']:.3f}, worst {s['worst_abs_ln']:.3f}, "
                 f"{s['within_20pct']} within 20%")  # fmt: skip
    for source in data["sources"]:
        rows = [r for r in done["transfers"] if r["source"] == source]
        if rows:
            a, b = line_fit(rows)
            nic = data["sources"][source]["nic_gbps_per_gpu"]
            lines.append(f"line through {source}'s points (diagnostic, not used): {a:.3f} ms + bytes / "
                         f"{b:.2f} GB/s per GPU ({b / nic:.3f} of the {nic:g} GB/s NIC share)")  # fmt: skip
    for source in data["sources"]:
        rows = [r for r in done["end_to_end"] if r["source"] == source and "ratio" in r]
        if rows:
            a, b, k = ttft_line(rows)
            lines.append(f"TTFT line through {source}'s points (diagnostic): published {a:.1f} ms + {b:.2f} ms per 1k "
                         f"prompt tokens; kvplan {k:.2f} ms per 1k")  # fmt: skip
    skipped: dict[tuple[str, str, str], list[str]] = {}
    for r in done["end_to_end"] + done["pool_throughput"]:
        if "not_compared" in r:
            key = (r["source"], r.get("phase", "TTFT"), r["not_compared"])
            skipped.setdefault(key, []).append(str(r.get("prompt_tokens", r.get("context_tokens"))))
    for (source, what, why), lengths in skipped.items():
        lines.append(f"not compared: {source} {what} at {', '.join(lengths)} tokens: {why}")
    for r in data.get("not_scored", []):
        lines.append(f"not scored: {r['source']}: {r['why']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true", help="print the docs/cost.md tables")
    ap.add_argument("--update-data", action="store_true", help="store kvplan's figures on each row")
    ap.add_argument("--fit", action="store_true", help="fit the per-entry cost and print the cross-check")
    args = ap.parse_args(argv)
    data = load()
    done = compare(data)
    if args.fit:
        from kvplan.disagg import MOONCAKE_ENTRY_S

        fitted = fit_entry_s([r for r in done["transfers"] if r["source"] == FIT_SOURCE])
        print(f"MOONCAKE_ENTRY_S fitted to {FIT_SOURCE}: {fitted:.3g} s per entry (kvplan uses {MOONCAKE_ENTRY_S:.3g})")
        print("\n".join(cross_check(done)))
        return 0
    if args.markdown:
        print(markdown(done, data))
        print()
    print(report(done, data))
    if args.update_data:
        DATA.write_text(dump_data({**data, **done}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

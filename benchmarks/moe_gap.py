"""Qwen3-30B-A3B NVFP4 decode on TensorRT-LLM (B200, GB200), operation by operation: kvplan against aiconfigurator.

Why: the published TensorRT-LLM v1.0 Qwen3-30B-A3B NVFP4 rows are optimistic in kvplan (B200 128/128 x1.44), and
aiconfigurator's own decode step for this model charges more for its MoE than the MoE kernel table was read to give
(stop 24: 175 us a layer at 256 tokens against "115.8 balanced / 125.3 power-law"). This script prints both steps
operation by operation and, beside aiconfigurator's fused-MoE operation, the two TensorRT-LLM NVFP4 MoE kernel tables
its database holds for the shape (``aiconfigurator_core/systems/data/<gpu>/moe/trtllm/1.3.0rc20/moe_perf.parquet``,
128 experts, top 8, hidden 2,048, expert width 768, TP 1 / EP 1):

* ``moe_torch_flow_cutlass``: ``CutlassFusedMoE`` (``moe_backend`` ``cutlass``), Qwen3's own renormalize routing,
  finalize included (``collector/trtllm/collect_moe.py`` in ai-dynamo/aiconfigurator, ``run_moe_torch``);
* ``moe_torch_flow_min_latency``: ``TRTLLMGenFusedMoE`` (``moe_backend`` ``trtllm``, ``min_latency_mode``) with
  DeepSeek-V3's grouped gate for every model ("FIXME: all use deepseek setting for now") and ``do_finalize=False``.

Stop 24's 115.8 / 125.3 us were the two kernels averaged (cutlass 173.7 / 175.3, min-latency 58.0 / 75.2 us at 256
tokens, balanced / power law 1.2). aiconfigurator's step takes the min-latency table up to 128 tokens and the
CUTLASS table from 129 on (power law 1.2, its step's distribution): 8.42 ms at 256 tokens is 48 x 175.3 us exactly,
the CUTLASS kernel, with nothing else in it. TensorRT-LLM itself runs ``CutlassFusedMoE`` for this checkpoint at
every token count: v1.0's ``MoeConfig.backend`` defaults to ``'CUTLASS'`` (``tensorrt_llm/llmapi/llm_args.py``), and
the later ``'AUTO'`` resolves to ``'CUTLASS'`` for every architecture but gpt-oss, DeepSeek-V4 and block-scaled fp8 on
SM100 (``ModelConfig.resolve_moe_backend``, ``tensorrt_llm/_torch/model_config.py``); Qwen3's MoE module passes no
min-latency flag (``modeling_qwen3_moe.py``).

Two steps, as the other compare scripts:

1. ``--collect`` (needs aiconfigurator; does not import kvplan): runs ``CASES`` through ``cli_estimate``
   (``static_gen``, ``osl`` 2: one decode step at context ``isl``), keeps the per-operation breakdown, and reads the
   two kernel tables at each case's token count; writes ``benchmarks/data/aiconfigurator_moe_gap.json``. Where
   aiconfigurator is not installed it says so in one line and exits 0::

       /work/aic-venv/bin/python benchmarks/moe_gap.py --collect

2. default (needs kvplan only): prices the same step with kvplan's TensorRT-LLM constants (:mod:`kvplan.latency`)
   and prints both, per case, in ms per decode step; ``--markdown`` for docs/cost.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aic_tables import collect_cases, grouped_experts_from, score_readings, table_layer_s  # noqa: E402 - shared with the table scripts

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_moe_gap.json"
MODEL = "qwen3-30b-a3b"
HF = "Qwen/Qwen3-30B-A3B"
SYSTEMS = {"b200": "b200_sxm", "gb200": "gb200"}
ISL = 1024
BATCHES = (1, 8, 32, 128, 256, 512)
CASES = [dict(gpu=g, batch=b, isl=ISL) for g in SYSTEMS for b in BATCHES]
# The MoE shape of Qwen3-30B-A3B in aiconfigurator's table: (hidden, expert width, experts, top-k)
SHAPE = (2048, 768, 128, 8)
KERNELS = {"cutlass": "moe_torch_flow_cutlass", "min_latency": "moe_torch_flow_min_latency"}
DISTRIBUTIONS = ("balanced", "power_law_1.2")  # the tables' uniform routing; the power law aiconfigurator's steps use
VERSION = "1.3.0rc20"  # aiconfigurator 0.12.0's TensorRT-LLM database (query_versions.yaml "current")


def _shape_tables(tables: dict) -> dict:
    """{"<kernel> <distribution>": [[tokens, ms], ...]} of one GPU's table for the shape, every token count."""
    out: dict[str, list] = {}
    for (source, d, tokens), ms in sorted(tables.items()):
        name = next((n for n, s in KERNELS.items() if s == source), None)
        if name is not None and d in DISTRIBUTIONS:
            out.setdefault(f"{name} {d}", []).append([tokens, ms])
    return out


def _kernel_tables(system: str) -> dict:
    """{(kernel, distribution, tokens): ms} of the shape's NVFP4 TP 1 / EP 1 rows of the TensorRT-LLM MoE table."""
    from importlib.resources import files

    import pandas as pd

    path = Path(str(files("aiconfigurator_core") / "systems")) / "data" / system / "moe" / "trtllm" / VERSION
    df = pd.read_parquet(path / "moe_perf.parquet")
    h, w, e, k = SHAPE
    df = df[(df.hidden_size == h) & (df.inter_size == w) & (df.num_experts == e) & (df.topk == k)
            & (df.moe_dtype == "nvfp4") & (df.moe_tp_size == 1) & (df.moe_ep_size == 1)]  # fmt: skip
    return {(str(r.kernel_source), str(r.distribution), int(r.num_tokens)): float(r.latency) for r in df.itertuples()}


def collect(out: Path) -> int:
    shape_tables: dict[str, dict] = {}  # each GPU's table for the shape, kept as its cases are run

    def row(cli_estimate, seen: dict, case: dict) -> dict:  # noqa: ANN001 - aiconfigurator's cli_estimate
        system = SYSTEMS[case["gpu"]]
        r = cli_estimate(HF, system, mode="static_gen", backend_name="trtllm", batch_size=case["batch"], tp_size=1,
                         moe_tp_size=1, moe_ep_size=1, isl=case["isl"], osl=2, gemm_quant_mode="nvfp4",
                         kvcache_quant_mode="fp8", moe_quant_mode="nvfp4")  # fmt: skip
        tables = _kernel_tables(system)
        shape_tables[case["gpu"]] = _shape_tables(tables)
        kernel_ms = {f"{name} {d}": tables[(source, d, case["batch"])] for name, source in KERNELS.items()
                     for d in DISTRIBUTIONS}  # fmt: skip
        return {**case, "aic_tpot_ms": float(r.tpot), "aic_backend_version": r.backend_version,
                "aic_ops_ms": dict(seen["generation"]), "moe_kernel_ms": kernel_ms}  # fmt: skip

    collected = collect_cases(CASES, row)
    if collected is None:
        return 0
    rows, version = collected
    meta = {"tool": "aiconfigurator", "version": version, "model": HF, "engine": "trtllm",
            "mode": "static_gen, osl 2 (one decode step at context isl)", "tp": 1, "moe_tp_size": 1, "moe_ep_size": 1,
            "quant": "gemm nvfp4, moe nvfp4, kv cache fp8", "unit": "ms per decode step (every layer); "
            "moe_kernel_ms: one layer of the TensorRT-LLM MoE table at the case's token count",
            "moe_table": f"systems/data/<gpu>/moe/trtllm/{VERSION}/moe_perf.parquet, hidden/width/experts/top-k "
            f"{SHAPE}, nvfp4, TP 1, EP 1"}  # fmt: skip
    body = json.dumps({"meta": meta, "cases": rows, "tables": shape_tables}, indent=1)
    out.write_text(body + "\n")
    print(f"wrote {len(rows)} cases to {out}")
    return 0


def load(path: Path = DATA) -> list[dict]:
    return json.loads(path.read_text())["cases"]


def load_tables(path: Path = DATA) -> dict:
    """{gpu: {"<kernel> <distribution>": [[tokens, ms], ...]}}: the shape's rows of both kernel tables."""
    return json.loads(path.read_text())["tables"]


@contextmanager
def experts_from_table(tables: dict, name: str):  # noqa: ANN201
    """For the ``with`` block, the grouped experts of every TensorRT-LLM NVFP4 MoE layer of this shape on one
    Blackwell GPU (no expert split) priced from kernel table ``name`` (``"cutlass balanced"``, ...) at the layer's
    tokens instead of by :func:`kvplan.latency._moe_s`'s formula; the latency and serving memos are emptied on the
    way in and out. A reading of what the kernel TensorRT-LLM runs would do to the published rows: nothing here is
    kept in kvplan."""

    def from_table(c, moe_tokens: float, parts):  # noqa: ANN001, ANN202
        moe = c.spec.moe
        ours = (moe is not None and (c.spec.hidden_size, moe.expert_intermediate_size, moe.num_experts,
                                     moe.experts_per_token) == SHAPE)  # fmt: skip
        if not ours or c.cal.engine != "trtllm" or c.moe_layer_s is None or c.moe_ranks != 1 or moe_tokens <= 0:
            return None
        return table_layer_s(tables[c.gpu.name][name], moe_tokens)

    with grouped_experts_from(from_table):
        yield


READINGS = ("cutlass balanced", "cutlass power_law_1.2", "min_latency balanced")
TARGET = 0.20  # published_compare.TARGET: within 20 % of the published figure


def published_rows(tables: dict) -> list[dict]:
    """The TensorRT-LLM v1.0 Qwen3-30B-A3B NVFP4 rows (benchmarks/data/published_throughput.json) as
    ``published_compare.py`` scores them (each the finite run the page made) and under each of :data:`READINGS`."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import published_compare as pc

    runs = [r for r in json.loads(pc.DATA.read_text())["runs"] if r["source"] == "trtllm-1.0" and r["model"] == MODEL]
    return score_readings(runs, keys=("gpu", "isl", "osl", "published_tok_s"), readings=READINGS,
                          reading=lambda name: experts_from_table(tables, name), score=pc.run_tokens_s)  # fmt: skip


def published_lines(rows: list[dict]) -> list[str]:
    """One line per row (published tok/s, kvplan's ratio as scored and under each reading), then per GPU and column
    the rows within 20 %."""
    cols = ("as scored", *READINGS)
    lines = [f"{'GPU':<6} {'ISL/OSL':>10} {'published':>10}  " + "  ".join(f"{c:>21}" for c in cols)]
    for r in rows:
        ratios = "  ".join(f"{'x%.2f' % (r[c] / r['published_tok_s']):>21}" for c in cols)
        lines.append(f"{r['gpu']:<6} {str(r['isl']) + '/' + str(r['osl']):>10} {r['published_tok_s']:>10,}  {ratios}")
    for gpu in sorted({r["gpu"] for r in rows}):
        mine = [r for r in rows if r["gpu"] == gpu]
        within = "; ".join(f"{c} {sum(abs(r[c] / r['published_tok_s'] - 1) <= TARGET for r in mine)}"
                           for c in cols)  # fmt: skip
        lines.append(f"{gpu}: within 20 % of {len(mine)}: {within}")
    return lines


def kvplan_ops(gpu_name: str, *, batch: int, isl: int, cal=None) -> dict[str, float]:  # noqa: ANN001
    """kvplan's Qwen3-30B-A3B TensorRT-LLM decode step (NVFP4 weights, fp8 KV, TP 1, CUDA graphs) by operation, in
    seconds per step; the operations sum to :func:`kvplan.cost.cost`'s TPOT. ``cal``: other constants (a reading)."""
    from kvplan import latency as lat
    from kvplan.catalog import resolve_model
    from kvplan.hardware import resolve_gpu

    spec, gpu = resolve_model(MODEL), resolve_gpu(gpu_name)
    cal = cal or lat.calibration("trtllm")
    c = lat._make_ctx(spec, gpu, tp=1, weights_dtype="nvfp4", cal=cal, eager=False, rules=lat.engine_overlap("trtllm"),
                      moe_kernel=lat.engine_moe_kernel("trtllm", gpu, "nvfp4"))  # fmt: skip
    layers = spec.num_layers
    kind = spec.kind(next(iter(lat._layer_keys(spec, range(layers))))[0])
    parts = lat._moe_s(c, batch, batch)
    inter = spec.moe.experts_per_token * spec.moe.expert_intermediate_size
    norms = lat._elementwise_s(c, batch, 0) - c.kernel_s  # the two add + norm kernels of a layer
    return {
        "attention_gemms": layers * lat._attention_gemms_s(c, kind, batch),
        "attention": lat._attention_s(
            c, phase="decode", context=isl, batch=batch, attention_flops=0, kv_dtype="fp8", stage=None
        ),
        "add_norm": layers * norms,
        "router": layers * parts.router,
        "grouped_experts": layers * parts.grouped,
        "activation": layers * (lat._elementwise_s(c, batch, inter) - norms),
        "lm_head": lat.lm_head_s(c, batch),
    }


# (label, kvplan operations, aiconfigurator operations): one row each. aiconfigurator's fused MoE operation
# (``generation_moe``, collect_moe.py's ``moe.forward``) holds the gated activation kvplan prices as its own kernel.
ROWS = (
    ("QKV + output projections", ("attention_gemms",), ("generation_qkv_gemm", "generation_proj_gemm")),
    ("decode attention", ("attention",), ("generation_attention",)),
    ("add + norm (2 per layer)", ("add_norm",), ("generation_add_norm_1", "generation_add_norm_2")),
    ("router GEMM", ("router",), ("generation_router_gemm",)),
    ("fused MoE (experts + activation)", ("grouped_experts", "activation"), ("generation_moe",)),
    ("MoE dispatch / combine", (), ("generation_moe_pre_dispatch", "generation_moe_post_dispatch")),
    ("LM head, embedding", ("lm_head",), ("generation_logits_gemm", "generation_embedding")),
    ("all-reduce, p2p", (), ("generation_embedding_ar", "generation_p2p")),
)


def moe_kernel(case: dict, *, layers: int = 48) -> str:
    """Which kernel table aiconfigurator's step took its MoE from: the one whose power-law row times the layers
    equals its ``generation_moe`` (to 0.1 %), or ``"neither"``."""
    step = case["aic_ops_ms"]["generation_moe"]
    for name in KERNELS:
        if math.isclose(layers * case["moe_kernel_ms"][f"{name} power_law_1.2"], step, rel_tol=1e-3):
            return name
    return "neither"


def compare(cases: list[dict], *, cal=None) -> list[dict]:  # noqa: ANN001
    """Per case: the rows of ``ROWS`` (kvplan ms, aiconfigurator ms), both step totals, the MoE kernel
    aiconfigurator's step used, and one layer of each kernel table beside kvplan's grouped experts (us)."""
    from kvplan.catalog import resolve_model

    layers = resolve_model(MODEL).num_layers
    out = []
    for case in cases:
        kv = kvplan_ops(case["gpu"], batch=case["batch"], isl=case["isl"], cal=cal)
        ops = case["aic_ops_ms"]
        rows = [{"op": label, "kvplan_ms": sum(kv[k] for k in ours) * 1e3, "aic_ms": sum(ops.get(k, 0.0) for k in top)}
                for label, ours, top in ROWS]  # fmt: skip
        layer_us = {name: v * 1e3 for name, v in case["moe_kernel_ms"].items()}
        out.append({**{k: case[k] for k in ("gpu", "batch", "isl")}, "rows": rows,
                    "kvplan_tpot_ms": sum(kv.values()) * 1e3, "aic_tpot_ms": case["aic_tpot_ms"],
                    "aic_moe_kernel": moe_kernel(case, layers=layers), "table_layer_us": layer_us,
                    "kvplan_grouped_layer_us": kv["grouped_experts"] / layers * 1e6})  # fmt: skip
    return out


def render_summary(results: list[dict]) -> str:
    """docs/cost.md's short form: one row per case, both steps and one MoE layer against the two kernel tables."""
    lines = ["| GPU | batch | TPOT kvplan ms | TPOT aiconfigurator ms | its MoE from | kvplan MoE layer us | "
             "CUTLASS table us (balanced / power law) | min-latency table us |",
             "|---|---:|---:|---:|---|---:|---:|---:|"]  # fmt: skip
    for r in results:
        t = r["table_layer_us"]
        lines.append(f"| {r['gpu']} | {r['batch']} | {r['kvplan_tpot_ms']:.2f} | {r['aic_tpot_ms']:.2f} | "
                     f"{r['aic_moe_kernel']} | {r['kvplan_grouped_layer_us']:.1f} | {t['cutlass balanced']:.1f} / "
                     f"{t['cutlass power_law_1.2']:.1f} | {t['min_latency balanced']:.1f} / "
                     f"{t['min_latency power_law_1.2']:.1f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def render(results: list[dict], *, markdown: bool) -> str:
    if markdown:
        return render_summary(results)
    lines = []
    for r in results:
        title = (f"Qwen3-30B-A3B NVFP4, TensorRT-LLM, {r['gpu']}, TP 1, batch {r['batch']}, ISL {r['isl']}: TPOT "
                 f"kvplan {r['kvplan_tpot_ms']:.2f} ms, aiconfigurator {r['aic_tpot_ms']:.2f} ms (its MoE from the "
                 f"{r['aic_moe_kernel']} table)")  # fmt: skip
        lines += [f"**{title}**", "", "| operation | kvplan ms | aiconfigurator ms | ln |", "|---|---:|---:|---:|"] \
            if markdown else [title]  # fmt: skip
        for row in r["rows"]:
            k, a = row["kvplan_ms"], row["aic_ms"]
            if k == 0 and a == 0:
                continue
            ln = f"{math.log(k / a):+.2f}" if k > 0 and a > 0 else "-"
            lines.append(f"| {row['op']} | {k:.3f} | {a:.3f} | {ln} |" if markdown
                         else f"  {row['op']:<36} {k:8.3f} {a:8.3f}  {ln}")  # fmt: skip
        t = r["table_layer_us"]
        layer = (f"one MoE layer, us: kvplan grouped experts {r['kvplan_grouped_layer_us']:.1f}; CUTLASS table "
                 f"{t['cutlass balanced']:.1f} balanced / {t['cutlass power_law_1.2']:.1f} power law; min-latency "
                 f"table {t['min_latency balanced']:.1f} / {t['min_latency power_law_1.2']:.1f}")  # fmt: skip
        lines += ["", layer, ""] if markdown else [f"  {layer}", ""]
    return "\n".join(lines).rstrip() + "\n"


# kvplan's two NVFP4 MoE constants fitted to the CUTLASS rows alone (a reading, not kvplan's constants): the grid of
# fit_moe_ops.py over benchmarks/data/aiconfigurator_moe.json's TensorRT-LLM nvfp4 points (B200, GB200; moe_compare
# leaves the min-latency rows out for TensorRT-LLM), the share of the FP4 peak 0.05-1.5 in 0.01 steps and the fixed
# seconds 1-100 us in 0.5 us steps, fitted in turn.
KERNEL_FIT = {
    "fp4_moe_eff_scale": ("trtllm", "nvfp4", ("b200", "gb200"), 1.0, tuple(i / 100 for i in range(5, 151))),
    "fp4_moe_layer_s": ("trtllm", "nvfp4", ("b200", "gb200"), 1e-6, tuple(i / 2 for i in range(2, 201))),
}


def kernel_fit_lines() -> list[str]:
    """:data:`KERNEL_FIT` through ``fit_moe_ops.fit_all`` (about two minutes), then the CUTLASS points at or past 513
    tokens by model, signed median ln, at the fitted values."""
    import statistics

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import fit_moe_ops
    import moe_compare

    fit_moe_ops.FITS.update(KERNEL_FIT)
    fit_moe_ops.JOINT = (*fit_moe_ops.JOINT, tuple(KERNEL_FIT))
    tables = moe_compare.load()
    results = fit_moe_ops.fit_all(tables, list(KERNEL_FIT))
    lines = [f"{r['name']}={r['value_s']:.4g}  ({r['points']} points; median |ln| {r['before'][0]:.3f} -> "
             f"{r['after'][0]:.3f}, worst {r['before'][1]:.3f} -> {r['after'][1]:.3f})" for r in results]  # fmt: skip
    pairs = fit_moe_ops.points(tables, "trtllm", "nvfp4", ("b200", "gb200"))
    lns = fit_moe_ops.log_ratios(pairs, {r["name"]: r["value_s"] for r in results})
    by_model: dict[str, list[float]] = {}
    for (_, point), ln in zip(pairs, lns, strict=True):
        if point[4] >= 513:
            by_model.setdefault(list(moe_compare.SHAPES)[point[1]], []).append(ln)
    lines.append("at 513 tokens and over, median signed ln by model: "
                 + ", ".join(f"{m} {statistics.median(v):+.2f}" for m, v in by_model.items()))  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--collect", action="store_true", help="run the cases through aiconfigurator into the data file")
    p.add_argument("--markdown", action="store_true", help="tables for docs/cost.md")
    p.add_argument("--published", action="store_true", help="the published v1.0 rows with the experts from the tables")
    p.add_argument("--kernel-fit", action="store_true", help="the NVFP4 MoE constants fitted to the CUTLASS rows")
    args = p.parse_args(argv)
    if args.kernel_fit:
        print("\n".join(kernel_fit_lines()))
        return 0
    if args.collect:
        return collect(DATA)
    if args.published:
        print("\n".join(published_lines(published_rows(load_tables()))))
        return 0
    print(render(compare(load()), markdown=args.markdown), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""vLLM's Marlin MoE kernel (W4A16: 4-bit experts dequantized in registers, 16-bit activations) against
aiconfigurator's measured Marlin MoE tables, and the two figures kvplan takes from them (``marlin_moe_peak_eff``,
``marlin_moe_dequant_s``).

vLLM runs gpt-oss's MXFP4 experts through ``fused_marlin_moe`` where it has no other MXFP4 kernel (Hopper under the
0.8-0.15 rules, every GPU before Hopper: :meth:`kvplan.engines.vllm.Vllm.moe_kernel`). kvplan prices that kernel by
what it computes (:func:`kvplan.latency._moe_s`): each touched expert's tokens padded up to the token block
``fused_marlin_moe`` picks (:func:`kvplan.latency.marlin_block_m`, ``moe_align_block_size``), times the expert's
matrices, at ``marlin_moe_peak_eff`` of the dense 16-bit peak; the 4-bit weights of every touched expert at the
grouped experts' streaming efficiency; ``moe_layer_s``. aiconfigurator 0.12.0 has no gpt-oss Marlin table, but it
times two Marlin MoE kernels on vLLM 0.24.0 on H100 SXM and H200 (``moe_perf.parquet``, ``kernel_source``
``vllm_compressedtensorswna16marlinmoe_marlin_marlinexperts``: int4 weight-only, 7168 x 2048, 384 experts, top 8;
``vllm_compressedtensorsw4a4mxfp4moe_marlin_marlinexperts_situ_as_silu``: MXFP4 through Marlin, 3584 x 3072, 896
experts, top 16), the same ``moe_wna16_marlin_gemm`` with a 4-bit weight type.

1. ``--collect`` (needs aiconfigurator; does not import kvplan) writes those tables' ``balanced`` points (kvplan's
   uniform routing) to ``benchmarks/data/aiconfigurator_marlin_moe.json``; where aiconfigurator is not installed it
   says so and exits 0::

       /work/aic-venv/bin/python benchmarks/marlin_moe_compare.py --collect

2. default (kvplan only): (a) the rate Marlin reaches on the rows it computes, ``2 x padded rows x 3 h w / latency``
   over the dense 16-bit peak, at the whole-layer points (TP 1, EP 1) from ``MEASURE_TOKENS`` tokens on (there the
   GEMMs are compute-bound: the touched experts' 4-bit weights take a fraction of the time), its median the figure
   ``marlin_moe_peak_eff`` holds (kvplan.engines.vllm CALIBRATION); the seconds one SM spends dequantizing an expert
   weight in one token block, past ``moe_layer_s``, at the whole-layer points up to ``DEQUANT_TOKENS`` tokens (there
   the conversion sets the time), their median ``marlin_moe_dequant_s``; (b) every point priced by kvplan as vLLM's
   Marlin MoE and as the fitted grouped GEMMs vLLM's other kernels are priced with (what kvplan gave the Marlin path
   before), median and worst ``|ln(kvplan / aiconfigurator)|`` by kernel, GPU and token band. The tables' expert
   dims are taken as they are (no padding: both shapes' dims are multiples of Marlin's 256 / 128 at TP 1).
   (c) a hold-out, never fitted: aiconfigurator's SGLang 0.5.10 Marlin MoE tables (``sglang_marlin_moe``, int4
   weight-only, eight shapes of Qwen3, Mixtral, DeepSeek-V3 and Kimi K2, H100 SXM and H200; the whole-layer balanced
   points), an older build of the same ``moe_wna16_marlin_gemm`` kernel, priced as vLLM's Marlin MoE by token band:
   the kernel the ``vllm@0.8`` rules price for gpt-oss on Hopper (vLLM 0.10-0.15), checked on shapes near it.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aic_tables import band_label, frame_rows, grouped_stats, load_row_tables, read_tables, write_row_tables  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_marlin_moe.json"
SYSTEMS = {"h100-sxm": "h100_sxm", "h200": "h200_sxm", "a100-80gb": "a100_sxm"}  # A100: SGLang's table only
ENGINES = {"vllm": "0.24.0", "sglang": "0.5.10"}  # vLLM's: measured on; SGLang's: the hold-out (whole layer only)
FITTED = "vllm"  # the engine whose tables the two constants are measured on
# The Ampere pair (ampere_marlin_moe_peak_eff / _dequant_s) is measured on the one Marlin MoE table aiconfigurator
# holds for an Ampere GPU: SGLang 0.5.10's on the A100 SXM (no vLLM table there); never part of the hold-out.
AMPERE = "a100-80gb"
MARLIN = "marlin"  # the part of kernel_source that names a Marlin MoE path in the vLLM tables
COLUMNS = ("kernel_source", "num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size",
           "moe_ep_size", "latency")  # fmt: skip
# From here the whole-layer points are compute-bound: 2,048 tokens x top 8 over 384 experts is 43 tokens an expert
# (one block of 48), whose GEMMs take 3.9x the 4-bit weights' streaming time on H100 (7168 x 2048 experts).
MEASURE_TOKENS = 2048
# Up to here the whole-layer points are bound by the SMs' dequantization: at 16 tokens of the MXFP4 shape (top 16 of
# 896 experts, one block of 8 rows an expert) the tensor cores need 0.28 of the conversion's time (H100).
DEQUANT_TOKENS = 16
TOKEN_BANDS = ((1, 16), (32, 512), (768, 1536), (2048, None))


def collect(out: Path = DATA) -> int:
    tables = read_tables(SYSTEMS, ENGINES, "moe", "moe_perf.parquet")
    if tables is None:
        return 0
    kept = []
    for t in tables:
        f = t.frame
        f = f[f.kernel_source.str.contains(MARLIN) & (f.distribution == "balanced")]
        whole = (f.moe_tp_size == 1) & (f.moe_ep_size == 1)
        f = f[whole if t.engine != FITTED else (f.moe_tp_size == 1) | (f.moe_ep_size == 1)]
        f = f.sort_values(list(COLUMNS[:-1]))
        kept.append({"gpu": t.gpu, "engine": t.engine, "version": t.version, "source": t.source,
                     "columns": list(COLUMNS), "rows": frame_rows(f, COLUMNS)})  # fmt: skip
    write_row_tables(out, kept)
    return 0


def _spec(hidden: int, inter: int, experts: int, topk: int):  # noqa: ANN202 - a kvplan ModelSpec
    """A catalog MoE model (DeepSeek-V3's) with these experts and no checkpoint quantization: only its routed
    experts are priced."""
    from kvplan.catalog import resolve_model

    base = resolve_model("deepseek-v3")
    moe = base.moe.model_copy(update={"expert_intermediate_size": inter, "num_experts": experts,
                                      "experts_per_token": topk})  # fmt: skip
    return base.model_copy(update={"hidden_size": hidden, "moe": moe, "weights": None})


def priced_s(gpu_name: str, row: dict, *, marlin: bool, peak_eff: float | None = None,
             ampere_figures: bool = True, alone: bool = False) -> float:  # fmt: skip
    """kvplan's grouped expert GEMMs of one point (:func:`kvplan.latency._moe_s`'s ``grouped``), vLLM's constants,
    4-bit weights (``int4``: 0.5 byte a weight, as Marlin reads them), the busiest-rank excess off (balanced
    routing); ``marlin``: as vLLM's Marlin MoE kernel (``peak_eff``: another ``marlin_moe_peak_eff``;
    ``ampere_figures`` False: without the Ampere pair, as kvplan priced an A100 before it; ``alone``: Marlin's own
    terms without the fitted curve as their floor, a reading kvplan does not take: the curve's peak share is set out
    of reach here, so that only Marlin's rows, its dequantization and the weights' streaming remain)."""
    from dataclasses import replace

    from kvplan import latency
    from kvplan.engines.base import MoeKernel
    from kvplan.hardware import resolve_gpu

    cal = replace(latency.calibration("vllm"), moe_ep_imbalance=0.0)
    if peak_eff is not None:
        cal = replace(cal, marlin_moe_peak_eff=peak_eff)
    if not ampere_figures:
        cal = replace(cal, ampere_marlin_moe_peak_eff=None, ampere_marlin_moe_dequant_s=0.0)
    if alone:
        cal = replace(cal, moe_peak_eff=1e9)
    spec = _spec(row["hidden_size"], row["inter_size"], row["num_experts"], row["topk"])
    tp, ep = row["moe_tp_size"], row["moe_ep_size"]
    ctx = latency._make_ctx(spec, resolve_gpu(gpu_name), tp=max(tp, ep), weights_dtype="int4", cal=cal, eager=True,
                            ep=ep > 1, moe_kernel=MoeKernel(name="marlin") if marlin else None)  # fmt: skip
    return latency._moe_s(ctx, row["num_tokens"], row["num_tokens"]).grouped


def reached_peak_share(gpu_name: str, row: dict) -> float:
    """The share of the dense 16-bit peak Marlin reached at one whole-layer point, on the rows it computes."""
    from kvplan import latency
    from kvplan.hardware import resolve_gpu

    tokens, topk, experts = row["num_tokens"], row["topk"], row["num_experts"]
    per_expert_tokens = tokens * topk / experts
    touched = experts * (1 - (1 - topk / experts) ** tokens)
    rows = latency._marlin_rows(touched, tokens * topk / touched, latency.marlin_block_m(per_expert_tokens))
    flops = 2 * rows * 3 * row["hidden_size"] * row["inter_size"]
    return flops / (row["latency"] * 1e-3) / (resolve_gpu(gpu_name).bf16_dense_tflops * 1e12)


def fitted(tables: list[dict]) -> list[dict]:
    """The tables the two constants are measured on (vLLM's), not the hold-out's."""
    return [t for t in tables if t["engine"] == FITTED]


def ampere(tables: list[dict]) -> list[dict]:
    """The table the Ampere pair is measured on (SGLang's A100 table)."""
    return [t for t in tables if t["gpu"] == AMPERE]


def measure(tables: list[dict], pick: Callable[[list[dict]], list[dict]] = fitted) -> tuple[float, list[str]]:
    """``marlin_moe_peak_eff``: the median share over the compute-bound whole-layer points of the tables ``pick``
    takes (:func:`ampere`: ``ampere_marlin_moe_peak_eff``), and their lines."""
    shares, lines = [], []
    for t in pick(tables):
        for r in t["rows"]:
            if r["moe_tp_size"] == 1 and r["moe_ep_size"] == 1 and r["num_tokens"] >= MEASURE_TOKENS:
                s = reached_peak_share(t["gpu"], r)
                shares.append(s)
                lines.append(f"  {t['gpu']:<9} {r['kernel_source'][:44]:<44} {r['hidden_size']}x{r['inter_size']} "
                             f"E{r['num_experts']} top{r['topk']} {r['num_tokens']:>6} tok  {r['latency']:8.3f} ms  "
                             f"share {s:.3f}")  # fmt: skip
    return statistics.median(shares), lines


def dequant_seconds(gpu_name: str, row: dict) -> float:
    """Seconds one SM took per expert weight per token block at one whole-layer point: the time past kvplan's
    ``moe_layer_s``, times the SMs, over the touched experts' weights times their blocks."""
    from kvplan import latency
    from kvplan.hardware import resolve_gpu

    tokens, topk, experts = row["num_tokens"], row["topk"], row["num_experts"]
    touched = experts * (1 - (1 - topk / experts) ** tokens)
    block = latency.marlin_block_m(tokens * topk / experts)
    blocks = latency._marlin_rows(touched, tokens * topk / touched, block) / block
    body = row["latency"] * 1e-3 - latency.calibration("vllm").moe_layer_s
    return body * resolve_gpu(gpu_name).sm_count / (blocks * 3 * row["hidden_size"] * row["inter_size"])


def measure_dequant(tables: list[dict], pick: Callable[[list[dict]], list[dict]] = fitted) -> tuple[float, list[str]]:
    """``marlin_moe_dequant_s``: the median over the whole-layer points up to ``DEQUANT_TOKENS`` tokens (there the
    conversion, not the tensor cores or the memory bus, sets the time) of the tables ``pick`` takes, and their
    lines."""
    values, lines = [], []
    for t in pick(tables):
        for r in t["rows"]:
            if r["moe_tp_size"] == 1 and r["moe_ep_size"] == 1 and r["num_tokens"] <= DEQUANT_TOKENS:
                s = dequant_seconds(t["gpu"], r)
                values.append(s)
                lines.append(f"  {t['gpu']:<9} {r['kernel_source'][:44]:<44} {r['num_tokens']:>3} tok  "
                             f"{r['latency'] * 1e3:8.1f} us  {s:.3e} s a weight a block on one SM")  # fmt: skip
    return statistics.median(values), lines


def compare(tables: list[dict], *, kernels: tuple[bool, ...] = (True, False)) -> list[dict]:
    """Every point of ``tables`` priced by kvplan as Marlin (True) and as the fitted grouped GEMMs (False)."""
    out = []
    for t in tables:
        for r in t["rows"]:
            aic = r["latency"] * 1e-3
            for marlin in kernels:
                s = priced_s(t["gpu"], r, marlin=marlin)
                out.append({**r, "gpu": t["gpu"], "engine": t["engine"], "marlin": marlin, "kvplan_s": s,
                            "ln": math.log(s / aic)})  # fmt: skip
    return out


def holdout(tables: list[dict]) -> list[str]:
    """The hold-out tables' whole-layer points priced as vLLM's Marlin MoE, by GPU and by token band."""
    held = [t for t in tables if t["engine"] != FITTED and t["gpu"] != AMPERE]
    rows = compare(held, kernels=(True,))
    names = sorted({f"{t['engine']} {t['version']}" for t in held})
    lines = [f"hold-out, never fitted: {', '.join(names)} Marlin MoE (int4 weight-only), whole layer, balanced, "
             "priced as vLLM's Marlin MoE:"]  # fmt: skip
    for key, fn in (("GPU", lambda r: r["gpu"]), ("tokens", lambda r: band_label(r["num_tokens"], TOKEN_BANDS))):
        for name, st in grouped_stats(rows, fn):
            lines.append(f"  {key:<15} {name:<20} {st['count']:>4}  median |ln| {st['median']:.3f}  "
                         f"worst {st['worst']:.3f}  signed {st['signed']:+.3f}")  # fmt: skip
    return lines


def ampere_lines(tables: list[dict]) -> list[str]:
    """The Ampere pair measured on :func:`ampere`'s table, and that table's whole-layer points priced as vLLM's Marlin
    MoE with it (as kvplan prices it: at least the fitted curve), without it (the Hopper pair) and with it by Marlin's
    own terms alone (the reading kvplan.latency._marlin_figures does not take), by token band."""
    from kvplan import latency

    cal = latency.calibration("vllm")
    share, lines = measure(tables, ampere)
    names = ", ".join(f"{t['engine']} {t['version']} {t['gpu']}" for t in ampere(tables))
    out = [f"Ampere: {names} Marlin MoE "
           f"(int4 weight-only), whole layer, balanced, >= {MEASURE_TOKENS} tokens (share of the dense 16-bit peak):",
           *lines, f"median share {share:.3f}; vLLM CALIBRATION ampere_marlin_moe_peak_eff "
           f"{cal.ampere_marlin_moe_peak_eff}"]  # fmt: skip
    dequant, lines = measure_dequant(tables, ampere)
    out += [f"Ampere dequantization, whole layer, <= {DEQUANT_TOKENS} tokens (past moe_layer_s):", *lines,
            f"median {dequant:.3e} s; vLLM CALIBRATION ampere_marlin_moe_dequant_s "
            f"{cal.ampere_marlin_moe_dequant_s}"]  # fmt: skip
    readings = {"with the Ampere pair, at least the fitted grouped GEMMs (kvplan):": (True, False),
                "with the Hopper pair, at least the fitted grouped GEMMs (before):": (False, False),
                "with the Ampere pair, its own terms alone (not taken):": (True, True)}  # fmt: skip
    for title, (figures, alone) in readings.items():
        rows = []
        for t in ampere(tables):
            for r in t["rows"]:
                s = priced_s(t["gpu"], r, marlin=True, ampere_figures=figures, alone=alone)
                rows.append({**r, "ln": math.log(s / (r["latency"] * 1e-3))})
        out.append(f"priced as vLLM's Marlin MoE {title}")
        for name, st in grouped_stats(rows, lambda r: band_label(r["num_tokens"], TOKEN_BANDS)):
            out.append(f"  tokens {name:<12} {st['count']:>4}  median |ln| {st['median']:.3f}  "
                       f"worst {st['worst']:.3f}  signed {st['signed']:+.3f}")  # fmt: skip
    return out


def _kernel(r: dict) -> str:
    return "mxfp4" if "mxfp4" in r["kernel_source"] else "int4"


def report(rows: list[dict]) -> list[str]:
    lines = []
    for marlin in (True, False):
        part = [r for r in rows if r["marlin"] is marlin]
        lines.append(f"priced as {'vLLM Marlin MoE (marlin_moe_peak_eff)' if marlin else 'the fitted grouped GEMMs'}:")
        for key, fn in (("kernel / GPU", lambda r: f"{_kernel(r)} {r['gpu']}"),
                        ("kernel / tokens",
                         lambda r: f"{_kernel(r)} {band_label(r['num_tokens'], TOKEN_BANDS)}")):  # fmt: skip
            for name, s in grouped_stats(part, fn):
                lines.append(f"  {key:<15} {name:<20} {s['count']:>4}  median |ln| {s['median']:.3f}  "
                             f"worst {s['worst']:.3f}  signed {s['signed']:+.3f}")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collect", action="store_true", help="sample aiconfigurator's Marlin MoE tables (its venv)")
    ap.add_argument("--ampere", action="store_true", help="the Ampere pair on aiconfigurator's A100 table")
    args = ap.parse_args(argv)
    if args.collect:
        return collect()
    from kvplan import latency

    tables = load_row_tables(DATA)
    if args.ampere:
        print("\n".join(ampere_lines(tables)))
        return 0
    share, lines = measure(tables)
    held = latency.calibration("vllm").marlin_moe_peak_eff
    print(f"Marlin MoE on its padded rows, whole layer, >= {MEASURE_TOKENS} tokens (share of the dense 16-bit peak):")
    print("\n".join(lines))
    print(f"median share {share:.3f}; vLLM CALIBRATION marlin_moe_peak_eff {held}")
    dequant, lines = measure_dequant(tables)
    print(f"Marlin MoE dequantization, whole layer, <= {DEQUANT_TOKENS} tokens (past moe_layer_s):")
    print("\n".join(lines))
    held = latency.calibration("vllm").marlin_moe_dequant_s
    print(f"median {dequant:.3e} s; vLLM CALIBRATION marlin_moe_dequant_s {held}")
    print("\n".join(report(compare(fitted(tables)))))
    print("\n".join(holdout(tables)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

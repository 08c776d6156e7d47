"""FP8 prefill attention: fit kvplan's softmax constant to aiconfigurator's measured context-attention tables.

Where an engine runs prefill (context) attention on FP8 tensor cores (:meth:`kvplan.engines.base.Engine.
fp8_context_attention`: TensorRT-LLM for FP8 and NVFP4 checkpoints, vLLM and SGLang with an FP8 KV cache),
:func:`kvplan.latency.fp8_attention_gain` divides the attention's compute time by
``(4 d + s R) / (4 d / g + s R)``: per attention score the two GEMMs' ``4 d`` FLOPs move to FP8 (``g`` = fp8 / bf16
peak), the softmax work (``s`` exponentials, ``R`` tensor FLOPs per exponential of the GPU's architecture) does not.
``s`` is the one constant (``Calibration.fmha_fp8_softmax``); this script fits it per engine, and shows how the form
follows the measured speed-up across GPUs and head sizes.

aiconfigurator 0.12.0 ships context-attention kernel timings per GPU and engine
(``aiconfigurator_core/systems/data/<gpu>/attention/<engine>/<version>/context_attention_perf.parquet``; columns
``batch_size``, ``isl``, ``num_heads``, ``num_key_value_heads``, ``head_dim``, ``window_size``, ``attn_dtype``,
``kv_cache_dtype``, ``latency`` in ms). Its collectors (ai-dynamo/aiconfigurator ``collector/trtllm/collect_attn.py``)
times three TensorRT-LLM variants: 16-bit FMHA and cache; 16-bit FMHA with an FP8 cache (no ``out_scale``); and FP8
FMHA (``quant_algo`` FP8 and an ``out_scale``, so an FP8 output: ``is_fp8_out``, the path FP8 and NVFP4 checkpoints
take). Each engine is fitted on the variant its rule runs:

* TensorRT-LLM 1.3.0rc20 (``torch_flow``): ``attn_dtype`` fp8 / ``kv_cache_dtype`` fp8 against bf16 / bf16;
* vLLM 0.24.0 (FlashAttention-3 on Hopper, FlashInfer's TensorRT-LLM prefill on B200): bf16 / fp8 against bf16 / bf16
  (vLLM quantizes the query inside the kernel call, the table's ``attn_dtype`` is the model's);
* SGLang 0.5.14 (FA3 on Hopper, ``trtllm_mha`` on B200): fp8 / fp8 against bf16 / bf16.

Two steps, as ``gemm_compare.py``:

1. ``--collect`` (needs aiconfigurator; does not import kvplan): writes every pair of rows (same kernel, batch,
   length, heads, KV heads, head size; no sliding window; the ``HEADS`` sample of head layouts) on H100 SXM, H200
   and B200 whose 16-bit row takes at least ``MIN_MS`` (kvplan's per-layer fixed costs are negligible there) to
   ``benchmarks/data/aiconfigurator_fmha.json``; where aiconfigurator is not installed it says so and exits 0::

       /work/aic-venv/bin/python benchmarks/fit_fmha.py --collect

2. default (needs kvplan only): fits ``s`` per engine (least squares on ``ln(measured / modelled)``, a golden-section
   search over ``S_RANGE``; modelled is kvplan's whole prefill attention, 16-bit over FP8, :func:`modelled`) and
   prints it, then per engine, GPU and head size the measured median speed-up, the modelled one and the median
   ``|ln|`` with and without the gain. An engine whose rows show no speed-up ends at the range's top (gain about 1)
   and is reported as such: kvplan then keeps ``fmha_fp8_softmax`` None for it. ``--markdown`` prints the tables for
   docs/cost.md.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aic_tables import read_tables  # noqa: E402 - where aiconfigurator's tables lie, shared

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_fmha.json"

SYSTEMS = {"h100-sxm": "h100_sxm", "h200": "h200_sxm", "b200": "b200_sxm"}
# engine -> (aiconfigurator table version, (attn_dtype, kv_cache_dtype) of the rows its FP8 rule runs)
ENGINES = {
    "trtllm": ("1.3.0rc20", ("fp8", "fp8")),
    "vllm": ("0.24.0", ("bfloat16", "fp8")),
    "sglang": ("0.5.14", ("fp8", "fp8")),
}
MIN_MS = 1.0  # 16-bit rows of at least 1 ms: kvplan's ~10 us fixed costs per layer are under 1 % there
HEAD_DIMS = (64, 128)  # the head sizes of the catalogue's attention (gpt-oss 64; Llama, Qwen3, Mistral 128)
# A sample of the head layouts (query heads per rank; KV heads 1, 8 or as many as query heads): Llama 3.1 8B (32/8),
# 70B at TP1 (64/8) and TP8 (8/1), multi-head attention; about 4,300 pairs instead of the tables' 18,000.
HEADS = (8, 16, 32, 64)
S_RANGE = (0.0, 64.0)  # softmax exponentials per score: 0 (free softmax: gain g) to 64 (gain within 1 % of 1)


def collect(out: Path) -> int:
    """Write the pairs of aiconfigurator's context-attention rows (latencies in ms, 4 significant digits)."""
    read = read_tables(SYSTEMS, {engine: version for engine, (version, _) in ENGINES.items()}, "attention",
                       "context_attention_perf.parquet")  # fmt: skip
    if read is None:
        return 0
    import pandas as pd

    keys = ["kernel_source", "batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim"]
    rows = []
    for gpu, engine, _, _, _, df in sorted(read, key=lambda t: list(ENGINES).index(t.engine)):  # engine by engine
        attn, kv = ENGINES[engine][1]
        df = df[(df.window_size == 0) & df.head_dim.isin(HEAD_DIMS) & df.num_heads.isin(HEADS)]
        df = df[(df.num_key_value_heads == df.num_heads) | df.num_key_value_heads.isin((1, 8))]
        base = df[(df.attn_dtype == "bfloat16") & (df.kv_cache_dtype == "bfloat16")].set_index(keys).latency
        fp8 = df[(df.attn_dtype == attn) & (df.kv_cache_dtype == kv)].set_index(keys).latency
        pair = pd.concat([base.rename("bf16"), fp8.rename("fp8")], axis=1, join="inner").reset_index()
        pair = pair[pair.bf16 >= MIN_MS]
        for r in pair.itertuples():
            rows.append([engine, gpu, r.kernel_source, int(r.batch_size), int(r.isl), int(r.num_heads),
                         int(r.num_key_value_heads), int(r.head_dim), float(f"{r.bf16:.4g}"),
                         float(f"{r.fp8:.4g}")])  # fmt: skip
    data = {
        "meta": {
            "tool": "aiconfigurator",
            "version": "0.12.0",
            "tables": "systems/data/<gpu>/attention/<engine>/<version>/context_attention_perf.parquet",
            "versions": {e: v for e, (v, _) in ENGINES.items()},
            "fp8_rows": {e: f"attn_dtype {a}, kv_cache_dtype {k}" for e, (_, (a, k)) in ENGINES.items()},
            "filter": f"window_size 0, head_dim in {list(HEAD_DIMS)}, num_heads in {list(HEADS)}, num_key_value_heads"
            f" 1, 8 or num_heads, bf16/bf16 latency >= {MIN_MS} ms",
            "columns": ["engine", "gpu", "kernel_source", "batch", "isl", "heads", "kv_heads", "head_dim", "bf16_ms",
                        "fp8_ms"],
        },
        "rows": rows,
    }  # fmt: skip
    out.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"{len(rows)} pairs -> {out}")
    return 0


def load(path: Path) -> list[dict]:
    data = json.loads(path.read_text())
    cols = data["meta"]["columns"]
    return [dict(zip(cols, r, strict=True)) for r in data["rows"]]


def modelled(rows: list[dict], softmax: float | None, cal) -> list[float]:  # noqa: ANN001
    """kvplan's speed-up of each row's whole attention with ``fmha_fp8_softmax = softmax``: its prefill attention is
    ``C / gain + C h / L`` (``C`` the FLOPs at the asymptotic efficiency, ``h`` = ``attn_prefill_half_len``, ``L`` the
    prompt; :func:`kvplan.latency._attention_s`), so the row's 16-bit over FP8 time is
    ``(1 + h / L) / (1 / gain + h / L)``, ``gain`` from :func:`kvplan.latency.fp8_attention_gain` (the per-layer fixed
    cost, about 10 us, is left out: every row here takes a millisecond or more)."""
    from dataclasses import replace

    from kvplan.hardware import resolve_gpu
    from kvplan.latency import fp8_attention_gain

    c = replace(cal, fmha_fp8_softmax=softmax)
    gpus = {g: resolve_gpu(g) for g in {r["gpu"] for r in rows}}
    out = []
    for r in rows:
        gain = fp8_attention_gain(gpus[r["gpu"]], c, head_dim=r["head_dim"])
        tail = c.attn_prefill_half_len / r["isl"]
        out.append((1 + tail) / (1 / gain + tail))
    return out


def loss(rows: list[dict], softmax: float, cal) -> float:  # noqa: ANN001
    gains = modelled(rows, softmax, cal)
    return sum((math.log(r["bf16_ms"] / r["fp8_ms"]) - math.log(g)) ** 2 for r, g in zip(rows, gains, strict=True))


def fit(rows: list[dict], cal) -> float:  # noqa: ANN001
    """The softmax constant minimising the squared log error (golden-section search; the loss is unimodal in it)."""
    lo, hi = S_RANGE
    phi = (math.sqrt(5) - 1) / 2
    a, b = hi - phi * (hi - lo), lo + phi * (hi - lo)
    fa, fb = loss(rows, a, cal), loss(rows, b, cal)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - phi * (hi - lo)
            fa = loss(rows, a, cal)
        else:
            lo, a, fa = a, b, fb
            b = lo + phi * (hi - lo)
            fb = loss(rows, b, cal)
    return round((lo + hi) / 2, 3)


def groups(rows: list[dict], softmax: float | None, cal) -> list[dict]:  # noqa: ANN001
    """Per GPU and head size: pairs, measured median speed-up, modelled median, median |ln| with and without it."""
    gains = modelled(rows, softmax, cal)
    out = []
    for gpu in SYSTEMS:
        for d in HEAD_DIMS:
            sel = [(r, g) for r, g in zip(rows, gains, strict=True) if r["gpu"] == gpu and r["head_dim"] == d]
            if not sel:
                continue
            measured = [r["bf16_ms"] / r["fp8_ms"] for r, _ in sel]
            mine = [g for _, g in sel]
            out.append({
                "gpu": gpu, "head_dim": d, "pairs": len(sel), "kernels": sorted({r["kernel_source"] for r, _ in sel}),
                "measured": statistics.median(measured), "modelled": statistics.median(mine),
                "ln_with": statistics.median(abs(math.log(m / g)) for m, g in zip(measured, mine, strict=True)),
                "ln_without": statistics.median(abs(math.log(m)) for m in measured),
            })  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--collect", action="store_true", help="write the sample of aiconfigurator's tables (its venv)")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    if args.collect:
        return collect(args.data)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

    from kvplan.latency import calibration

    rows = load(args.data)
    lines = []
    for engine in ENGINES:
        cal = calibration(engine)  # its attn_prefill_half_len (SGLang: vLLM's, which it prices with)
        sel = [r for r in rows if r["engine"] == engine]
        s = fit(sel, cal)
        top = s >= S_RANGE[1] - 0.01
        held = cal.fmha_fp8_softmax
        note = "at the range's top: no FP8 speed-up in these rows" if top else "fitted"
        lines.append(f"{engine}: fmha_fp8_softmax = {s} ({note}; {len(sel)} pairs); kvplan holds {held}")
        if args.markdown:
            lines.append("")
            lines.append("| GPU | head size | pairs | kernels | measured | modelled | median \\|ln\\| with | without |")
            lines.append("|---|---:|---:|---|---:|---:|---:|---:|")
        for g in groups(sel, s, cal):
            cells = (g["gpu"], g["head_dim"], g["pairs"], "/".join(g["kernels"]), f"x{g['measured']:.3f}",
                     f"x{g['modelled']:.3f}", f"{g['ln_with']:.3f}", f"{g['ln_without']:.3f}")  # fmt: skip
            text = map(str, cells)
            lines.append("| " + " | ".join(text) + " |" if args.markdown else "  " + "  ".join(text))
        if args.markdown:
            lines.append("")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

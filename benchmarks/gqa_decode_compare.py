"""kvplan's GQA decode attention against aiconfigurator's generation-attention kernel tables (TensorRT-LLM, vLLM,
SGLang), by engine, GPU, KV dtype, split and batch / context band; and the fit of kvplan's per-architecture decode
kernel (:class:`kvplan.engines.base.DecodeAttention`) to them.

aiconfigurator 0.12.0 ships ``aiconfigurator_core/systems/data/<gpu>/attention/<engine>/<version>/
generation_attention_perf.parquet``: one decode attention kernel (one layer) per row, with ``batch_size``, ``isl``
(1 in these tables) and ``step`` (the tokens decoded so far: the sequence holds ``isl + step`` tokens), the rank's
``num_heads`` / ``num_key_value_heads``, ``head_dim``, ``window_size``, ``kv_cache_dtype``, ``kernel_source`` and
``latency`` in ms. The sample keeps head_dim 128, no window, fp8 and bf16 KV, the eight per-rank shapes of
Llama-70B (64 / 8 heads) and Llama-8B (32 / 8) at TP 1, 2, 4 and 8, on H100 SXM, H200 and B200, for TensorRT-LLM
1.3.0rc20, vLLM 0.24.0 and SGLang 0.5.14, each engine's own kernel (``KERNELS``).

kvplan's side is :func:`kvplan.latency._attention_s` at decode with the engine's calibration (SGLang: the vLLM
constants kvplan lends it), before the fit (``hopper_gqa_decode`` / ``blackwell_gqa_decode`` None: the older sum
``attn_layer_s`` + held / (bw x ``attn_decode_mem_eff``) + batch x ``attn_seq_s``) and with it.

Three steps, as ``mamba_compare.py``:

1. ``--collect`` (needs aiconfigurator and pandas; does not import kvplan) writes the sample to
   ``benchmarks/data/aiconfigurator_gqa_decode.json``. Without aiconfigurator it says so and exits 0::

       /work/aic-venv/bin/python benchmarks/gqa_decode_compare.py --collect

2. default (needs kvplan only): the median signed ``ln(kvplan / measured)`` before -> after, by batch band at
   contexts up to 2,048 tokens and over 2,048; then each table's median and worst ``|ln|``.

3. ``--fit`` (needs scipy, the ``bench`` extra): fits :class:`~kvplan.engines.base.DecodeAttention` per engine with
   a calibration of its own (TensorRT-LLM, vLLM) and architecture (:func:`fit_arch`) and prints the fields to paste
   into ``kvplan/engines/<engine>.py``; docs/cost.md says which were adopted.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aic_tables import frame_rows, load_row_tables, read_tables, write_row_tables  # noqa: E402 - where aiconfigurator's tables lie, shared

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_gqa_decode.json"
SYSTEMS = {"h100-sxm": "h100_sxm", "h200": "h200_sxm", "b200": "b200_sxm"}
ENGINES = {"trtllm": "1.3.0rc20", "vllm": "0.24.0", "sglang": "0.5.14"}
# The decode kernel each engine's table times for these shapes (the table's ``kernel_source``; the few rows of other
# kernels are other shapes' fallbacks): TensorRT-LLM's own attention op; vLLM's FlashAttention 3 on Hopper and
# FlashInfer's TensorRT-LLM-Gen decode kernel on Blackwell; SGLang's FA3 on Hopper and trtllm_mha on Blackwell.
KERNELS = {("trtllm", "hopper"): "torch_flow", ("trtllm", "blackwell"): "torch_flow",
           ("vllm", "hopper"): "vllm_flash_attn_fa3", ("vllm", "blackwell"): "vllm_flashinfer_trtllmdecode",
           ("sglang", "hopper"): "fa3", ("sglang", "blackwell"): "trtllm_mha"}  # fmt: skip
ARCH = {"h100-sxm": "hopper", "h200": "hopper", "b200": "blackwell"}  # kvplan/data/gpus.yaml architecture
KV_DTYPES = {"fp8": "fp8", "bfloat16": "bf16"}  # the table's kv_cache_dtype -> kvplan's name
# Llama-2-70B / Llama-3.x-70B per rank at TP 1, 2, 4, 8: (query heads, KV heads), head_dim 128; then four query
# heads a KV head (Llama-3.1-8B, Qwen3-8B/30B-A3B: 32 / 8 at TP 1, 2, 4, 8)
SHAPES = ((64, 8), (32, 4), (16, 2), (8, 1))
SHAPES_G4 = ((32, 8), (16, 4), (8, 2), (4, 1))
HEAD_DIM = 128
COLUMNS = ("batch_size", "isl", "step", "num_heads", "num_key_value_heads", "latency")
BATCH_BANDS = (64, 256)  # <= 64, 65-256, > 256 sequences
CONTEXT_BANDS = (256, 2048)  # <= 256, 257-2048, > 2048 tokens


def collect(out: Path) -> int:
    read = read_tables(SYSTEMS, ENGINES, "attention", "generation_attention_perf.parquet")
    if read is None:
        return 0
    tables = []
    for gpu, engine, version, _, source, frame in read:
        keep = (frame.window_size == 0) & (frame.beam_width == 1) & (frame.head_dim == HEAD_DIM)
        keep &= frame.kernel_source == KERNELS[engine, ARCH[gpu]]
        keep &= frame[["num_heads", "num_key_value_heads"]].apply(tuple, axis=1).isin(SHAPES + SHAPES_G4)
        for dtype in KV_DTYPES:
            rows = frame_rows(frame[keep & (frame.kv_cache_dtype == dtype)], COLUMNS)
            tables.append({"gpu": gpu, "engine": engine, "version": version, "source": source,
                           "kernel": KERNELS[engine, ARCH[gpu]], "head_dim": HEAD_DIM, "kv_cache_dtype": dtype,
                           "columns": list(COLUMNS), "rows": rows})  # fmt: skip
    write_row_tables(out, tables)
    return 0


def load(path: Path = DATA) -> list[dict]:
    """Each table's rows as dicts of the collected columns."""
    return load_row_tables(path)


def layer_spec(heads: int, kv_heads: int):  # noqa: ANN201
    """A one-layer dense model with the row's heads per rank (TP 1), head_dim 128."""
    from kvplan.spec import ModelSpec

    # hidden, vocab and intermediate sizes are placeholders: the decode attention kernel reads none of them
    return ModelSpec.model_validate({
        "name": f"gqa-{heads}x{kv_heads}", "source": "aiconfigurator 0.12.0 generation_attention_perf row",
        "hidden_size": heads * HEAD_DIM, "vocab_size": 32000, "num_layers": 1, "num_attention_heads": heads,
        "num_kv_heads": kv_heads, "head_dim": HEAD_DIM, "intermediate_size": 4 * heads * HEAD_DIM, "dtype": "bf16",
        "max_position_embeddings": 1 << 20, "rope": None,
    })  # fmt: skip


def context(row: dict) -> int:
    """Tokens a sequence holds when the row's step runs: its ``isl`` prompt tokens plus ``step`` decoded."""
    return row["isl"] + row["step"]


def _ctx(row: dict, gpu_name: str, cal):  # noqa: ANN001, ANN202
    from kvplan import latency
    from kvplan.hardware import resolve_gpu

    spec = layer_spec(row["num_heads"], row["num_key_value_heads"])
    return latency._make_ctx(spec, resolve_gpu(gpu_name), tp=1, weights_dtype="bf16", cal=cal, eager=False)


def before_after(engine: str):  # noqa: ANN201
    """The engine's calibration as kvplan prices with it (the fitted ``hopper_gqa_decode`` / ``blackwell_gqa_decode``)
    and as it was before them (both None: the older sum of ``attn_layer_s``, the read and ``batch x attn_seq_s``).
    SGLang has no fit of its own and is priced with the constants kvplan lends it (vLLM's)."""
    from dataclasses import replace

    from kvplan import latency

    cal = latency.calibration(engine)
    return replace(cal, hopper_gqa_decode=None, blackwell_gqa_decode=None), cal


def kvplan_seconds(row: dict, gpu_name: str, *, cal=None, kv_dtype: str = "fp8") -> float:  # noqa: ANN001
    """kvplan's decode attention of one layer for the row (TensorRT-LLM's calibration unless ``cal``; TP 1)."""
    from kvplan import latency

    cal = cal or latency.calibration("trtllm")
    return latency._attention_s(_ctx(row, gpu_name, cal), phase="decode", context=context(row),
                                batch=row["batch_size"], attention_flops=0, kv_dtype=kv_dtype)  # fmt: skip


TP_OF = {heads: 64 // heads[0] for heads in SHAPES} | {heads: 32 // heads[0] for heads in SHAPES_G4}  # the split


def band(value: int, edges: tuple[int, int], unit: str) -> str:
    lo, hi = edges
    return f"<= {lo} {unit}" if value <= lo else f"{lo + 1}-{hi} {unit}" if value <= hi else f"> {hi} {unit}"


def compare(tables: list[dict]) -> list[dict]:
    """Every row against kvplan before the fit (``ln_before``) and with it (``ln``)."""
    out = []
    for t in tables:
        before, after = before_after(t["engine"])
        kv = KV_DTYPES[t["kv_cache_dtype"]]
        for row in t["rows"]:
            measured = row["latency"] / 1e3
            old = kvplan_seconds(row, t["gpu"], cal=before, kv_dtype=kv)
            new = kvplan_seconds(row, t["gpu"], cal=after, kv_dtype=kv)
            out.append({"gpu": t["gpu"], "engine": t["engine"], "kv": kv, "batch": row["batch_size"],
                        "context": context(row), "heads": (row["num_heads"], row["num_key_value_heads"]),
                        "measured_s": measured, "kvplan_s": new, "before_s": old, "ln": math.log(new / measured),
                        "ln_before": math.log(old / measured)})  # fmt: skip
    return out


def stats(rows: list[dict], key: str = "ln") -> dict:
    lns = [r[key] for r in rows]
    return {"n": len(lns), "median_abs": statistics.median(abs(x) for x in lns),
            "median_signed": statistics.median(lns), "worst_abs": max(abs(x) for x in lns)}  # fmt: skip


def cell(rows: list[dict]) -> str:
    if not rows:
        return "-"
    return f"{stats(rows, 'ln_before')['median_signed']:+.2f} -> {stats(rows)['median_signed']:+.2f} ({len(rows)})"


def render(rows: list[dict]) -> str:
    """Per engine, GPU and KV dtype: the median signed ``ln(kvplan / table)`` before -> after the fit (rows) by batch
    band at contexts up to 2,048 tokens, then over 2,048 tokens (every batch); Llama-70B's eight query heads a KV
    head at TP 1 and 8 and the four of Llama-3.1-8B at TP 1 and 8 shown, every split counted in the summary lines."""
    bands = [band(b, BATCH_BANDS, "seqs") for b in (1, BATCH_BANDS[0] + 1, BATCH_BANDS[1] + 1)]
    head = "engine  GPU       KV    split       " + "  ".join(f"{b + ', <= 2048 tok':<26}" for b in bands)
    lines = [head + "  > 2048 tok"]
    order = {g: i for i, g in enumerate(SYSTEMS)}
    keys = sorted({(r["engine"], r["gpu"], r["kv"]) for r in rows},
                  key=lambda k: (list(ENGINES).index(k[0]), order[k[1]], k[2]))  # fmt: skip
    shown = (SHAPES[0], SHAPES[-1], SHAPES_G4[0], SHAPES_G4[-1])
    for engine, gpu, kv in keys:
        for heads in shown:
            mine = [r for r in rows if (r["engine"], r["gpu"], r["kv"], r["heads"]) == (engine, gpu, kv, heads)]
            within = [r for r in mine if r["context"] <= CONTEXT_BANDS[1]]
            short = [[r for r in within if band(r["batch"], BATCH_BANDS, "seqs") == b] for b in bands]
            long = [r for r in mine if r["context"] > CONTEXT_BANDS[1]]
            split = f"TP{TP_OF[heads]} {heads[0]}/{heads[1]}"
            lines.append(f"{engine:<7} {gpu:<9} {kv:<5} {split:<11} " + "  ".join(f"{cell(c):<26}" for c in short)
                         + f"  {cell(long)}")  # fmt: skip
    for engine, gpu, kv in keys:
        mine = [r for r in rows if (r["engine"], r["gpu"], r["kv"]) == (engine, gpu, kv)]
        b, a = stats(mine, "ln_before"), stats(mine)
        lines.append(f"{engine} {gpu} {kv}: {a['n']} rows; median |ln| {b['median_abs']:.3f} -> {a['median_abs']:.3f}, "
                     f"worst {b['worst_abs']:.3f} -> {a['worst_abs']:.3f}, signed {b['median_signed']:+.3f} -> "
                     f"{a['median_signed']:+.3f}")  # fmt: skip
    return "\n".join(lines)


FIT_FIELDS = ("floor_s", "floor_16bit_s", "mem_eff", "seq_kvhead_s", "seq_kvhead_16bit_s", "overlap_p")
FIT_ENGINES = ("trtllm", "vllm", "sglang")  # SGLang: its own decode kernels, set on the constants it borrows (LentFits)


def fit_arch(tables: list[dict], engine: str, arch: str) -> dict:
    """Fits :class:`kvplan.engines.base.DecodeAttention` to one engine's rows on the GPUs of one architecture (both
    KV dtypes, every split): ``scipy.optimize.least_squares`` on ``ln(model / table)``, soft-L1 (as
    ``fit_latency.py``), the floors, the per-sequence-and-KV-head work and the exponent on log scales, the cache
    efficiency at most 0.99 of the datasheet bandwidth. Returns the fields, the number of rows and the median and
    worst ``|ln|``."""
    import numpy as np
    from scipy.optimize import least_squares

    from kvplan.hardware import resolve_gpu

    cols = []
    for t in tables:
        if t["engine"] != engine or ARCH[t["gpu"]] != arch:
            continue
        bw, size = resolve_gpu(t["gpu"]).bandwidth_gbps * 1e9, 1 if t["kv_cache_dtype"] == "fp8" else 2
        cols += [(r["batch_size"], context(r), r["num_key_value_heads"], r["latency"] / 1e3, bw, size)
                 for r in t["rows"]]  # fmt: skip
    batch, ctx, kvh, measured, bw, size = (np.array(c, float) for c in zip(*cols, strict=True))
    held = batch * ctx * kvh * HEAD_DIM * 2 * size  # K and V
    eight = size == 1

    def predict(x):  # noqa: ANN001, ANN202
        floor_s, floor16_s, eff, seq_s, seq16_s, p = np.exp(x[0]), np.exp(x[1]), x[2], *np.exp(x[3:])
        read, work = held / (bw * eff), batch * kvh * np.where(eight, seq_s, seq16_s)
        return np.where(eight, floor_s, floor16_s) + (read**p + work**p) ** (1 / p)

    start = [math.log(8e-6), math.log(8e-6), 0.8, math.log(10e-9), math.log(10e-9), math.log(2.0)]
    lo, hi = [-20.0, -20.0, 0.2, -30.0, -30.0, -3.0], [-5.0, -5.0, 0.99, -10.0, -10.0, 3.0]
    got = least_squares(lambda x: np.log(predict(x) / measured), start, bounds=(lo, hi), loss="soft_l1")
    res = np.abs(np.log(predict(got.x) / measured))
    values = [math.exp(got.x[0]), math.exp(got.x[1]), float(got.x[2]), *(math.exp(v) for v in got.x[3:])]
    return {**dict(zip(FIT_FIELDS, values, strict=True)), "rows": len(measured),
            "median_abs": float(np.median(res)), "worst_abs": float(res.max())}  # fmt: skip


def fit_lines(tables: list[dict]) -> list[str]:
    """The fit of each engine and architecture, as the ``Calibration`` fields to paste into the engine module."""
    out = []
    for engine in FIT_ENGINES:
        out.append(f"# {engine} ({ENGINES[engine]} tables)")
        for arch in ("hopper", "blackwell"):
            f = fit_arch(tables, engine, arch)
            out.append(f"#   {arch}: {f['rows']} rows, median |ln| {f['median_abs']:.3f}, worst {f['worst_abs']:.3f}")
            args = ", ".join(f"{k}={f[k]:.4g}" for k in FIT_FIELDS)
            out.append(f"    {arch}_gqa_decode=DecodeAttention({args}),")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collect", action="store_true", help="sample aiconfigurator's tables (its own venv)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--fit", action="store_true", help="fit each engine's decode kernel per architecture (scipy)")
    args = parser.parse_args(argv)
    if args.collect:
        return collect(args.data)
    if args.fit:
        print("\n".join(fit_lines(load(args.data))))
        return 0
    print("kvplan's GQA decode attention / aiconfigurator 0.12.0's generation-attention tables (TensorRT-LLM "
          "1.3.0rc20, vLLM 0.24.0, SGLang 0.5.14), head_dim 128, before -> after the fit:")  # fmt: skip
    print(render(compare(load(args.data))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

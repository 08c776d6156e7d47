"""Fit TensorRT-LLM's masked multi-head attention (MMHA) decode kernel on Hopper to aiconfigurator's kernel tables:
``hopper_mmha_head_token_s`` and ``hopper_mmha_head_s`` (:func:`kvplan.latency._mmha_decode_s`).

Why: TensorRT-LLM decodes a chunked-attention layer (Llama 4's RoPE layers, where chunked attention is on) with MMHA
on Hopper, because XQA refuses a chunk (``supportConfigCommon`` in decoderXQAImplJIT/kernelUtils.cpp). MMHA is also
what it runs for every layout with as many KV heads as query heads ("Do not use XQA kernel for vanilla MHA case", the
same function), so aiconfigurator 0.12.0's TensorRT-LLM 1.3.0rc20 generation-attention tables time it at those rows:
``systems/data/{h100_sxm,h200_sxm}/attention/trtllm/1.3.0rc20/generation_attention_perf.parquet``, ``torch_flow``,
head_dim 128, no window, ``num_heads == num_key_value_heads`` (1 to 64 heads), fp8 and bf16 KV. XQA also refuses a
group of more than 32 query heads a KV head (``supportConfigQGMMA`` / ``supportConfigHMMA``: ``head_grp_size x
beam_width > 32``), so the tables' 64 / 1 rows are MMHA with a GQA layout, a KV head shared by its group of query heads
as in Llama 4's chunked layers (40 / 8): the constants are fitted to those rows (the kernel's rate when the group's
query heads find their keys in L2, the cache read once), the MHA rows (each query head reading its own keys) kept as a
hold-out.

1. ``--collect`` (needs aiconfigurator and pandas; does not import kvplan) writes those rows to
   ``benchmarks/data/aiconfigurator_mmha.json``; without aiconfigurator it says so and exits 0::

       /work/aic-venv/bin/python benchmarks/fit_mmha.py --collect

2. default (needs kvplan only): kvplan prices every row as one chunked layer whose chunk holds the row's whole context
   (so the keys read are the row's), TensorRT-LLM's calibration; the two constants are fitted in turn
   (:data:`ROUNDS` rounds, each a grid search for the least median ``|ln(kvplan / table)|``, the mean breaking ties,
   every other constant held) over the GQA rows of both GPUs and KV dtypes. It prints the values to paste into
   ``kvplan/engines/trtllm.py`` ``CALIBRATION`` and the median / worst ``|ln|`` by GPU and KV dtype::

       .venv/bin/python benchmarks/fit_mmha.py
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aic_tables import frame_rows, load_row_tables, read_tables, write_row_tables  # noqa: E402 - shared

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_mmha.json"
SYSTEMS = {"h100-sxm": "h100_sxm", "h200": "h200_sxm"}
ENGINES = {"trtllm": "1.3.0rc20"}
KERNEL = "torch_flow"  # TensorRT-LLM's own attention op (the table's kernel_source)
HEAD_DIM = 128
KV_DTYPES = {"fp8": "fp8", "bfloat16": "bf16"}  # the table's kv_cache_dtype -> kvplan's name
COLUMNS = ("batch_size", "isl", "step", "num_heads", "num_key_value_heads", "latency")
XQA_MAX_GROUP = 32  # query heads a KV head beyond which XQA refuses (kernelUtils.cpp supportConfigQGMMA / HMMA)
# grids: seconds per (query head x key), 40 to 200 ps in 0.5 ps steps; per (query head x sequence), 0 to 30 ns in
# 0.1 ns steps
TOKEN_GRID = tuple(i / 2 * 1e-12 for i in range(80, 401))
HEAD_GRID = tuple(i / 10 * 1e-9 for i in range(0, 301))
ROUNDS = 3


def collect(out: Path) -> int:
    read = read_tables(SYSTEMS, ENGINES, "attention", "generation_attention_perf.parquet")
    if read is None:
        return 0
    tables = []
    for gpu, engine, version, _, source, frame in read:
        keep = (frame.window_size == 0) & (frame.beam_width == 1) & (frame.head_dim == HEAD_DIM)
        group = frame.num_heads / frame.num_key_value_heads
        keep &= (frame.kernel_source == KERNEL) & ((group == 1) | (group > XQA_MAX_GROUP))
        for dtype in KV_DTYPES:
            rows = frame_rows(frame[keep & (frame.kv_cache_dtype == dtype)], COLUMNS)
            tables.append({"gpu": gpu, "engine": engine, "version": version, "source": source, "kernel": KERNEL,
                           "head_dim": HEAD_DIM, "kv_cache_dtype": dtype, "columns": list(COLUMNS),
                           "rows": rows})  # fmt: skip
    write_row_tables(out, tables)
    return 0


def layer_spec(heads: int, kv_heads: int):  # noqa: ANN201
    """One chunked-attention layer with ``heads`` query and ``kv_heads`` KV heads (head_dim 128) and a chunk longer
    than any row."""
    from kvplan.spec import ModelSpec

    # hidden, vocab and intermediate sizes are placeholders: the decode attention kernel reads none of them
    return ModelSpec.model_validate({
        "name": f"mmha-{heads}x{kv_heads}", "source": "aiconfigurator 0.12.0 generation_attention_perf row (MMHA)",
        "hidden_size": heads * HEAD_DIM, "vocab_size": 32000, "num_layers": 1, "num_attention_heads": heads,
        "num_kv_heads": kv_heads, "head_dim": HEAD_DIM, "intermediate_size": 4 * heads * HEAD_DIM, "dtype": "bf16",
        "max_position_embeddings": 1 << 20, "rope": None,
        "layers": {"kinds": {"local": {"type": "chunked", "chunk": 1 << 20}}, "pattern": ["local"]},
    })  # fmt: skip


def points(tables: list[dict]) -> list[dict]:
    """Every row with kvplan's cache read for it (the MMHA price with both constants at 0: ``attn_layer_s`` + the
    read at ``attn_decode_mem_eff``) and what the constants multiply."""
    from kvplan import latency
    from kvplan.hardware import resolve_gpu

    base = replace(latency.calibration("trtllm"), hopper_mmha_head_token_s=0.0, hopper_mmha_head_s=0.0)
    out = []
    for t in tables:
        gpu = resolve_gpu(t["gpu"])
        for row in t["rows"]:
            spec = layer_spec(row["num_heads"], row["num_key_value_heads"])
            ctx = latency._make_ctx(spec, gpu, tp=1, weights_dtype="bf16", cal=base, eager=False)
            context = row["isl"] + row["step"]
            floor_read = latency._attention_s(ctx, phase="decode", context=context, batch=row["batch_size"],
                                              attention_flops=0, kv_dtype=KV_DTYPES[t["kv_cache_dtype"]])  # fmt: skip
            out.append({"gpu": t["gpu"], "kv": KV_DTYPES[t["kv_cache_dtype"]], "measured_s": row["latency"] / 1e3,
                        "layer_s": base.attn_layer_s, "read_s": floor_read - base.attn_layer_s,
                        "heads_seqs": row["batch_size"] * row["num_heads"], "context": context,
                        "mha": row["num_heads"] == row["num_key_value_heads"]})  # fmt: skip
    return out


def priced(p: dict, token_s: float, head_s: float) -> float:
    """:func:`kvplan.latency._mmha_decode_s` for the point at these constants."""
    return p["layer_s"] + max(p["read_s"], p["heads_seqs"] * (head_s + p["context"] * token_s))


def score(pts: list[dict], token_s: float, head_s: float) -> tuple[float, float]:
    lns = [abs(math.log(priced(p, token_s, head_s) / p["measured_s"])) for p in pts]
    return statistics.median(lns), statistics.fmean(lns)


def fit(pts: list[dict]) -> tuple[float, float]:
    """``(hopper_mmha_head_token_s, hopper_mmha_head_s)``: each fitted in turn with the other held, :data:`ROUNDS`
    rounds, from (100 ps, 0)."""
    token_s, head_s = 100e-12, 0.0
    for _ in range(ROUNDS):
        token_s = min(TOKEN_GRID, key=lambda v: score(pts, v, head_s))
        head_s = min(HEAD_GRID, key=lambda v: score(pts, token_s, v))
    return token_s, head_s


def _stats_line(label: str, pts: list[dict], token_s: float, head_s: float) -> str:
    lns = [math.log(priced(p, token_s, head_s) / p["measured_s"]) for p in pts]
    long = [x for x, p in zip(lns, pts, strict=True) if p["heads_seqs"] * p["context"] >= 1 << 20]
    med, worst, signed = statistics.median(map(abs, lns)), max(map(abs, lns)), statistics.median(lns)
    return (f"{label}: {len(pts)} rows, median |ln| {med:.3f}, worst {worst:.3f}, signed {signed:+.3f}; at 2^20 "
            f"head-keys or more ({len(long)} rows) median |ln| {statistics.median(map(abs, long)):.3f}, signed "
            f"{statistics.median(long):+.3f}")  # fmt: skip


def render(pts: list[dict], token_s: float, head_s: float) -> str:
    """The fitted values, then per GPU and KV dtype the fitted GQA (64 / 1) rows and the held-out MHA ones."""
    fitted = [p for p in pts if not p["mha"]]
    lines = [f"hopper_mmha_head_token_s={token_s:.4g}, hopper_mmha_head_s={head_s:.4g} "
             f"({len(fitted)} GQA rows, TensorRT-LLM 1.3.0rc20, H100 SXM and H200)"]  # fmt: skip
    for gpu in SYSTEMS:
        for kv in KV_DTYPES.values():
            mine = [p for p in pts if (p["gpu"], p["kv"]) == (gpu, kv)]
            lines.append(_stats_line(f"{gpu:9} {kv:5} GQA", [p for p in mine if not p["mha"]], token_s, head_s))
            lines.append(_stats_line(f"{gpu:9} {kv:5} MHA hold-out", [p for p in mine if p["mha"]], token_s, head_s))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collect", action="store_true", help="read aiconfigurator's tables into the data file")
    args = ap.parse_args(argv)
    if args.collect:
        return collect(DATA)
    pts = points(load_row_tables(DATA))
    token_s, head_s = fit([p for p in pts if not p["mha"]])
    print(render(pts, token_s, head_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())

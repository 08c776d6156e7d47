"""kvplan's GQA decode attention against aiconfigurator's TensorRT-LLM generation-attention tables, GPU by GPU and by
batch and context band: where the MLPerf Llama-2-70B runs sit (1,000-2,000 sequences at a few hundred tokens).

aiconfigurator 0.12.0 ships ``aiconfigurator_core/systems/data/<gpu>/attention/trtllm/1.3.0rc20/
generation_attention_perf.parquet``: one decode attention kernel (one layer) per row, with ``batch_size``, ``isl``
(1 in these tables) and ``step`` (the tokens decoded so far: the sequence holds ``isl + step`` tokens), the rank's
``num_heads`` / ``num_key_value_heads``, ``head_dim``, ``window_size``, ``kv_cache_dtype`` and ``latency`` in ms. The
sample keeps Llama-2/3-70B's GQA shape at TP 1, 2, 4 and 8 (64 / 8, 32 / 4, 16 / 2, 8 / 1 heads of 128, eight query
heads a KV head), no window, an fp8 KV cache, on H100 SXM, H200 and B200.

kvplan's side is :func:`kvplan.latency._attention_s` at decode with TensorRT-LLM's calibration (the held cache at
``attn_decode_mem_eff`` of bandwidth, plus ``attn_layer_s`` and ``batch x attn_seq_s``: a sum). The tables show the
per-sequence work and the cache read overlapping on B200: at a batch of 1,024 the kernel takes 93 us from 2 to 128
tokens a sequence (the cache read hidden under the per-sequence floor), where kvplan adds them. The script prints,
beside kvplan's figure, the same constants combined as ``attn_layer_s + max(held / (bw x attn_decode_mem_eff), batch x
attn_seq_s)`` (:func:`overlap_seconds`, no refit): a candidate form, not kvplan's, whose effect on the published
comparisons docs/cost.md reports (it was not adopted).

Two steps, as ``mamba_compare.py``:

1. ``--collect`` (needs aiconfigurator and pandas; does not import kvplan) writes the sample to
   ``benchmarks/data/aiconfigurator_gqa_decode.json``. Without aiconfigurator it says so and exits 0::

       /work/aic-venv/bin/python benchmarks/gqa_decode_compare.py --collect

2. default (needs kvplan only): per GPU and split, the median signed ``ln(kvplan / measured)`` and that of the
   overlap form, by batch band at contexts up to 2,048 tokens and over 2,048; then each GPU's medians.

3. ``--fit`` (needs scipy, the ``bench`` extra): fits, GPU by GPU, a floor plus the cache read and the per-sequence
   work counted per KV head, combined as a sum, a max or a smooth max (:func:`fit_form`): the form the tables ask
   for, a diagnostic for a future refit of kvplan's decode-attention term (not kvplan's constants).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aic_tables import SKIPPED, each_table, frame_rows, load_row_tables, tables_root, write_row_tables  # noqa: E402 - where aiconfigurator's tables lie, shared

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_gqa_decode.json"
SYSTEMS = {"h100-sxm": "h100_sxm", "h200": "h200_sxm", "b200": "b200_sxm"}
ENGINES = {"trtllm": "1.3.0rc20"}
# Llama-2-70B / Llama-3.x-70B per rank at TP 1, 2, 4, 8: (query heads, KV heads), head_dim 128
SHAPES = ((64, 8), (32, 4), (16, 2), (8, 1))
HEAD_DIM = 128
COLUMNS = ("batch_size", "isl", "step", "num_heads", "num_key_value_heads", "latency")
BATCH_BANDS = (64, 256)  # <= 64, 65-256, > 256 sequences
CONTEXT_BANDS = (256, 2048)  # <= 256, 257-2048, > 2048 tokens


def collect(out: Path) -> int:
    root = tables_root()
    if root is None:
        print(SKIPPED)
        return 0
    import pandas as pd

    tables = []
    for gpu, engine, version, path, source in each_table(root, SYSTEMS, ENGINES, "attention",
                                                         "generation_attention_perf.parquet"):  # fmt: skip
        frame = pd.read_parquet(path)
        keep = (frame.window_size == 0) & (frame.beam_width == 1) & (frame.head_dim == HEAD_DIM)
        keep &= frame.kv_cache_dtype == "fp8"
        keep &= frame[["num_heads", "num_key_value_heads"]].apply(tuple, axis=1).isin(SHAPES)
        rows = frame_rows(frame[keep], COLUMNS)
        tables.append({"gpu": gpu, "engine": engine, "version": version, "source": source, "head_dim": HEAD_DIM,
                       "kv_cache_dtype": "fp8", "columns": list(COLUMNS), "rows": rows})  # fmt: skip
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


def kvplan_seconds(row: dict, gpu_name: str, *, cal=None) -> float:  # noqa: ANN001
    """kvplan's decode attention of one layer for the row (TensorRT-LLM's calibration, fp8 KV, TP 1)."""
    from kvplan import latency

    cal = cal or latency.calibration("trtllm")
    return latency._attention_s(_ctx(row, gpu_name, cal), phase="decode", context=context(row),
                                batch=row["batch_size"], attention_flops=0, kv_dtype="fp8")  # fmt: skip


def overlap_seconds(row: dict, gpu_name: str, *, cal=None) -> float:  # noqa: ANN001
    """The candidate form: the same three constants, the cache read and the per-sequence work overlapping,
    ``attn_layer_s + max(held / (bw x attn_decode_mem_eff), batch x attn_seq_s)``; held = batch x context x KV heads
    x 128 x 2 (K and V) x 1 byte (fp8)."""
    from kvplan import latency
    from kvplan.hardware import resolve_gpu

    cal = cal or latency.calibration("trtllm")
    held = row["batch_size"] * context(row) * row["num_key_value_heads"] * HEAD_DIM * 2
    read = held / (resolve_gpu(gpu_name).bandwidth_gbps * 1e9 * cal.attn_decode_mem_eff)
    return cal.attn_layer_s + max(read, row["batch_size"] * cal.attn_seq_s)


TP_OF = {heads: 64 // heads[0] for heads in SHAPES}  # the Llama-70B split each per-rank shape stands for


def band(value: int, edges: tuple[int, int], unit: str) -> str:
    lo, hi = edges
    return f"<= {lo} {unit}" if value <= lo else f"{lo + 1}-{hi} {unit}" if value <= hi else f"> {hi} {unit}"


def compare(tables: list[dict]) -> list[dict]:
    out = []
    for t in tables:
        for row in t["rows"]:
            measured = row["latency"] / 1e3
            kv, lap = kvplan_seconds(row, t["gpu"]), overlap_seconds(row, t["gpu"])
            out.append({"gpu": t["gpu"], "batch": row["batch_size"], "context": context(row),
                        "heads": (row["num_heads"], row["num_key_value_heads"]), "measured_s": measured,
                        "kvplan_s": kv, "overlap_s": lap, "ln": math.log(kv / measured),
                        "ln_overlap": math.log(lap / measured)})  # fmt: skip
    return out


def stats(rows: list[dict], key: str = "ln") -> dict:
    lns = [r[key] for r in rows]
    return {"n": len(lns), "median_abs": statistics.median(abs(x) for x in lns),
            "median_signed": statistics.median(lns)}  # fmt: skip


def cell(rows: list[dict]) -> str:
    if not rows:
        return "-"
    return f"{stats(rows)['median_signed']:+.2f} / {stats(rows, 'ln_overlap')['median_signed']:+.2f} ({len(rows)})"


def render(rows: list[dict]) -> str:
    """Per GPU and Llama-70B split: the median signed ``ln`` of kvplan / of the overlap form (rows) by batch band,
    contexts up to 2,048 tokens, then over 2,048 tokens (every batch)."""
    bands = [band(b, BATCH_BANDS, "seqs") for b in (1, BATCH_BANDS[0] + 1, BATCH_BANDS[1] + 1)]
    lines = ["GPU       split  " + "  ".join(f"{b + ', <= 2048 tokens':<32}" for b in bands) + "  > 2048 tokens"]
    order = {g: i for i, g in enumerate(SYSTEMS)}
    for gpu in sorted({r["gpu"] for r in rows}, key=order.get):
        for heads in SHAPES:
            mine = [r for r in rows if r["gpu"] == gpu and r["heads"] == heads]
            within = [r for r in mine if r["context"] <= CONTEXT_BANDS[1]]
            short = [[r for r in within if band(r["batch"], BATCH_BANDS, "seqs") == b] for b in bands]
            long = [r for r in mine if r["context"] > CONTEXT_BANDS[1]]
            lines.append(f"{gpu:<9} TP{TP_OF[heads]:<4} " + "  ".join(f"{cell(c):<32}" for c in short)
                         + f"  {cell(long)}")  # fmt: skip
    for gpu in sorted({r["gpu"] for r in rows}, key=order.get):
        mine = [r for r in rows if r["gpu"] == gpu]
        s, o = stats(mine), stats(mine, "ln_overlap")
        lines.append(f"{gpu}: {s['n']} rows; kvplan median |ln| {s['median_abs']:.3f}, signed "
                     f"{s['median_signed']:+.3f}; overlap form {o['median_abs']:.3f}, "
                     f"{o['median_signed']:+.3f}")  # fmt: skip
    return "\n".join(lines)


FORMS = ("sum", "max", "smooth")


def fit_form(table: dict, form: str) -> dict:
    """Fits ``floor + combine(held / (bw x e), batch x KV heads x s)`` to one GPU's rows (scipy ``least_squares`` on
    ``ln``, soft-L1, as ``fit_latency.py``): ``combine`` the sum, the max, or the smooth max ``(a^p + b^p)^(1/p)``.
    The per-sequence work counted per KV head a rank holds (the kernel's blocks are sequences x KV heads). A
    diagnostic of the form the tables ask for, not kvplan's constants: returns ``floor_s``, ``mem_eff``,
    ``seq_kvhead_s``, ``p`` (smooth only), the median and worst ``|ln|`` and the median signed ``ln`` over 256
    sequences at up to 2,048 tokens."""
    import numpy as np
    from scipy.optimize import least_squares

    from kvplan.hardware import resolve_gpu

    rows = table["rows"]
    bw = resolve_gpu(table["gpu"]).bandwidth_gbps * 1e9
    batch = np.array([r["batch_size"] for r in rows], float)
    ctx = np.array([context(r) for r in rows], float)
    kvh = np.array([r["num_key_value_heads"] for r in rows], float)
    measured = np.array([r["latency"] for r in rows]) / 1e3
    held = batch * ctx * kvh * HEAD_DIM * 2  # fp8: K and V, one byte each

    def predict(x):  # noqa: ANN001, ANN202
        read, work = held / (bw * x[1]), batch * kvh * np.exp(x[2])
        if form == "sum":
            both = read + work
        elif form == "max":
            both = np.maximum(read, work)
        else:
            p = np.exp(x[3])
            both = (read**p + work**p) ** (1 / p)
        return np.exp(x[0]) + both

    start, lo, hi = [math.log(8e-6), 0.85, math.log(10e-9)], [-20.0, 0.3, -30.0], [-5.0, 0.99, -10.0]
    if form == "smooth":
        start, lo, hi = [*start, math.log(2.0)], [*lo, -3.0], [*hi, 3.0]
    got = least_squares(lambda x: np.log(predict(x) / measured), start, bounds=(lo, hi), loss="soft_l1")
    res = np.log(predict(got.x) / measured)
    big = (batch > BATCH_BANDS[1]) & (ctx <= CONTEXT_BANDS[1])
    return {"floor_s": math.exp(got.x[0]), "mem_eff": got.x[1], "seq_kvhead_s": math.exp(got.x[2]),
            "p": math.exp(got.x[3]) if form == "smooth" else None, "median_abs": float(np.median(np.abs(res))),
            "worst_abs": float(np.abs(res).max()), "big_signed": float(np.median(res[big]))}  # fmt: skip


def fit_lines(tables: list[dict]) -> list[str]:
    out = []
    for t in tables:
        for form in FORMS:
            f = fit_form(t, form)
            p = f" p {f['p']:.2f}" if f["p"] is not None else ""
            out.append(f"{t['gpu']:<9} {form:<6} floor {f['floor_s'] * 1e6:.1f} us, cache at {f['mem_eff']:.3f} of "
                       f"bandwidth, {f['seq_kvhead_s'] * 1e9:.2f} ns a sequence x KV head{p}: median |ln| "
                       f"{f['median_abs']:.3f}, worst {f['worst_abs']:.3f}, over 256 seqs signed "
                       f"{f['big_signed']:+.3f}")  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collect", action="store_true", help="sample aiconfigurator's tables (its own venv)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--fit", action="store_true", help="fit the candidate forms to each GPU's rows (scipy)")
    args = parser.parse_args(argv)
    if args.collect:
        return collect(args.data)
    if args.fit:
        print("\n".join(fit_lines(load(args.data))))
        return 0
    print("kvplan's GQA decode attention (TensorRT-LLM calibration) / aiconfigurator's TensorRT-LLM 1.3.0rc20 "
          "generation-attention tables, fp8 KV, 8 query heads a KV head of 128:")  # fmt: skip
    print(render(compare(load(args.data))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

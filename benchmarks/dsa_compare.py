"""kvplan's DeepSeek-V3.2 decode layer (DeepSeek Sparse Attention) against aiconfigurator's measured DSA modules.

aiconfigurator 0.12.0 times DeepSeek-V3.2's whole attention block at decode as one operation per engine, version and
GPU (``aiconfigurator_core/systems/data/<gpu>/sparse_attention/vllm/0.24.0/dsa_generation_module_perf.parquet``:
the projections, the lightning indexer with its top-k, the sparse MLA kernel and the output projection of one layer;
columns ``kernel_source``, ``kv_cache_dtype``, ``gemm_type``, ``num_heads`` (the rank's heads), ``batch_size``,
``isl`` (1), ``step`` (the cached tokens), ``latency`` in ms). The kernel is the one vLLM picked: ``FLASHMLA_SPARSE``
on H200; on B200 and GB200 ``FLASHINFER_MLA_SPARSE`` with fp8 KV and with bf16 KV at 16 heads a rank,
``FLASHMLA_SPARSE`` with bf16 KV at 32-128 heads. kvplan prices FlashMLA's kernels for both (FlashInfer's sparse MLA
was not read).
Reported, not fitted: kvplan's DSA decode (:func:`kvplan.latency._dsa_decode_s`) is built from the engines' source
and published kernel figures only.

Two steps, as ``mla_compare.py``:

1. ``--collect`` (needs aiconfigurator; does not import kvplan) writes a sample of those tables to
   ``benchmarks/data/aiconfigurator_dsa.json``: vLLM 0.24.0 on H200, B200 and GB200, DeepSeek-V3.2's block-fp8
   projections, bf16 and fp8 KV, 16-128 heads a rank (TP 8 to 1), every batch and length measured; the same for
   TensorRT-LLM 1.3.0rc20 (kernel ``default``) and SGLang 0.5.14 (its NSA backends: ``fa3`` / ``flashmla_kv`` on
   H200, ``trtllm`` on Blackwell), whose kernels kvplan has not read: it prices them with vLLM's DSA rules and each
   engine's constants (SGLang: vLLM's), so their rows are a check of those constants, not of the engines. Where
   aiconfigurator is not installed it says so and exits 0::

       /work/aic-venv/bin/python benchmarks/dsa_compare.py --collect

2. default (needs kvplan only): prices every point with kvplan's decode layer of deepseek-v3.2-exp (its attention at
   ``isl + step`` tokens over the model, divided by its layers, plus the layer's projection GEMMs, indexer's included;
   CUDA-graph replay) at ``TP = 128 / num_heads`` and prints the median and worst ``|ln(kvplan / aiconfigurator)|``
   per GPU, KV dtype and kernel, by batch and by length (up to ``index_topk`` keys, where the sparse kernel still
   grows, and past it, where only the indexer does). ``--markdown`` prints the tables for docs/cost.md.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aic_tables import (  # noqa: E402 - where aiconfigurator's tables lie
    band_label,
    frame_rows,
    grouped_stats,
    load_row_tables,
    read_tables,
    render_summaries,
    stats,
    write_row_tables,
)

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_dsa.json"
SYSTEMS = {"h200": "h200_sxm", "b200": "b200_sxm", "gb200": "gb200"}  # kvplan GPU -> aiconfigurator system
# the releases kvplan's constants describe (vLLM, TensorRT-LLM) and SGLang's newest DSA table; kvplan's decode layer
# reads each engine's V3.2 cache rows (Calibration.dsa_fp8_row) and prices every engine's kernels with vLLM's DSA rules
ENGINES = {"vllm": "0.24.0", "trtllm": "1.3.0rc20", "sglang": "0.5.14"}
TABLE = "dsa_generation_module_perf.parquet"
AIC_MODEL = "deepseek-ai/DeepSeek-V3.2"
HEADS = (16, 32, 64, 128)  # DeepSeek-V3.2's 128 heads over TP 8, 4, 2, 1
KV_DTYPES = {"bfloat16": "bf16", "fp8": "fp8"}  # aiconfigurator kv_cache_dtype -> kvplan KV dtype
GEMM_TYPE = "fp8_block"  # the released checkpoint's 128 x 128 block-scaled fp8
MODEL = "deepseek-v3.2-exp"
COLUMNS = ("kernel_source", "kv_cache_dtype", "num_heads", "batch_size", "isl", "step", "latency_us")
BATCH_BANDS = ((1, 8), (9, 64), (65, None))


def collect(out: Path) -> int:
    """Write the sample of aiconfigurator's DSA generation-module tables (latency in us, 4 significant digits)."""
    read = read_tables(SYSTEMS, ENGINES, "sparse_attention", TABLE)
    if read is None:
        return 0
    tables = []
    for gpu, engine, version, _, source, df in read:
        df = df[(df.model == AIC_MODEL) & (df.gemm_type == GEMM_TYPE) & df.num_heads.isin(HEADS)
                & df.kv_cache_dtype.isin(KV_DTYPES)]  # fmt: skip
        df = df.assign(latency_us=[float(f"{x * 1e3:.4g}") for x in df.latency])
        df = df.sort_values(list(COLUMNS[:-1]))
        tables.append({"gpu": gpu, "engine": engine, "version": version, "source": source,
                       "kernel": "/".join(sorted(set(df.kernel_source))), "columns": list(COLUMNS),
                       "rows": frame_rows(df, COLUMNS)})  # fmt: skip
    write_row_tables(out, tables)
    return 0


def layer_seconds(gpu_name: str, engine: str, *, heads: int, batch: int, context: int, kv: str) -> float:
    """kvplan's decode layer of DeepSeek-V3.2: one layer's attention (:func:`kvplan.latency._attention_s` over the
    model, divided by its layers; every layer is a DSA layer) plus its projection GEMMs, CUDA-graph replay."""
    from kvplan import latency
    from kvplan.catalog import resolve_model
    from kvplan.hardware import resolve_gpu

    spec = resolve_model(MODEL)
    ctx = latency._make_ctx(spec, resolve_gpu(gpu_name), tp=spec.num_attention_heads // heads, weights_dtype="fp8",
                            cal=latency.calibration(engine), eager=False)  # fmt: skip
    kind = next(spec.kind(n) for n in spec.layer_kind_names if spec.kind(n).type == "mla")
    attention = latency._attention_s(ctx, phase="decode", context=context, batch=batch, attention_flops=0.0,
                                     kv_dtype=kv) / spec.num_layers  # fmt: skip
    return attention + latency._attention_gemms_s(ctx, kind, batch)


def compare(tables: list[dict]) -> list[dict]:
    """One row per measured point: the table's keys, the point, aiconfigurator's and kvplan's seconds, ln ratio."""
    rows = []
    for t in tables:
        for p in t["rows"]:
            kv, context = KV_DTYPES[p["kv_cache_dtype"]], p["isl"] + p["step"]
            s = layer_seconds(t["gpu"], t["engine"], heads=p["num_heads"], batch=p["batch_size"], context=context,
                              kv=kv)  # fmt: skip
            aic = p["latency_us"] * 1e-6
            rows.append({"gpu": t["gpu"], "engine": t["engine"], "kernel": p["kernel_source"], "kv": kv,
                         "heads": p["num_heads"],
                         "batch": p["batch_size"], "context": context, "aic_s": aic, "kvplan_s": s,
                         "ln": math.log(s / aic)})  # fmt: skip
    return rows


def _reach(context: int, topk: int = 2048) -> str:
    return f"<= {topk} keys" if context <= topk else f"> {topk} keys"


def summaries(rows: list[dict]) -> dict[str, list[tuple[str, dict]]]:
    return {
        "per GPU / KV dtype / kernel": grouped_stats(
            rows, lambda r: f"{r['gpu']} {r['engine']} {r['kv']} {r['kernel']}"
        ),
        "per GPU, by batch": grouped_stats(
            rows, lambda r: f"{r['gpu']} {r['engine']} {band_label(r['batch'], BATCH_BANDS, prefix='batch ')}"
        ),
        "per GPU, by length": grouped_stats(rows, lambda r: f"{r['gpu']} {r['engine']} {_reach(r['context'])}"),
        "per GPU, by heads a rank": grouped_stats(rows, lambda r: f"{r['gpu']} {r['engine']} {r['heads']} heads"),
    }


def render(rows: list[dict], *, markdown: bool) -> str:
    out = render_summaries(summaries(rows), label="DSA decode layers", name_width=40, markdown=markdown)
    for engine in ENGINES:
        a = stats([r for r in rows if r["engine"] == engine])
        head = f"{engine}: {a['count']} DSA decode layers against aiconfigurator (module timings)"
        out.append(f"{head}: median |ln| {a['median']:.3f}, worst {a['worst']:.3f}, median signed {a['signed']:+.3f}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--collect", action="store_true", help="write the sample of aiconfigurator's DSA module tables")
    p.add_argument("--markdown", action="store_true", help="tables for docs/cost.md")
    args = p.parse_args(argv)
    if args.collect:
        return collect(DATA)
    print(render(compare(load_row_tables(DATA)), markdown=args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())

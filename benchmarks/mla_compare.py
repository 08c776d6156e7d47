"""kvplan's MLA decode layer against aiconfigurator's measured MLA generation modules, engine by engine and GPU by GPU.

aiconfigurator 0.12.0 times DeepSeek-V3's whole MLA attention block at decode as one operation per engine, version
and GPU (``aiconfigurator_core/systems/data/<gpu>/mla/<engine>/<version>/mla_generation_module_perf.parquet``: the
projections, the absorbed attention kernel and the output projection of one layer, columns ``kernel_source``,
``kv_cache_dtype``, ``gemm_type``, ``num_heads`` (the rank's heads), ``batch_size``, ``isl``, ``step``, ``latency`` in
ms). The kernel is named: vLLM 0.24.0 runs ``FLASHINFER_MLA`` on B200 and GB200 and ``FLASH_ATTN_MLA`` / ``FLASHMLA``
on H100 and H200, as vLLM's backend order puts them (``vllm/platforms/cuda.py`` ``_get_backend_priorities``: with
MLA, ``FLASHINFER_MLA`` first on compute capability 10, ``FLASH_ATTN_MLA`` and ``FLASHMLA`` first below it);
TensorRT-LLM 1.3.0rc20 runs its own (``default``) everywhere.

Two steps, as ``gemm_compare.py``:

1. ``--collect`` (needs aiconfigurator; does not import kvplan) writes a sample of those tables to
   ``benchmarks/data/aiconfigurator_mla.json``: H100 SXM, H200, B200 and GB200, vLLM 0.24.0 and TensorRT-LLM
   1.3.0rc20, fp8 block-scaled projections (DeepSeek-V3's checkpoint), fp8 and bf16 KV, 16-128 heads per rank
   (TP 8 to 1), every batch and KV length measured. Where aiconfigurator is not installed it says so and exits 0::

       /work/aic-venv/bin/python benchmarks/mla_compare.py --collect

2. default (needs kvplan only): prices every point with kvplan's decode MLA layer (``kvplan.latency`` attention of
   one layer at KV length ``isl + step`` plus its projection GEMMs, the CUDA-graph fixed cost; DeepSeek-V3 at
   ``TP = 128 / num_heads``) and prints the median and worst ``|ln(kvplan / aiconfigurator)|`` per GPU, engine and
   kernel, then per batch band. ``--markdown`` prints the tables for docs/cost.md; ``--fit`` the least-squares
   ``blackwell_mla_layer_s`` of one engine (``--engine``, vLLM by default) on its Blackwell (B200) points.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aic_tables import band_label, grouped_stats, read_tables, render_summaries, stats  # noqa: E402 - where aiconfigurator's tables lie

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_mla.json"

# kvplan GPU name -> aiconfigurator system directory
SYSTEMS = {"h100-sxm": "h100_sxm", "h200": "h200_sxm", "b200": "b200_sxm", "gb200": "gb200"}
# the versions kvplan's calibrations describe; SGLang: the newest version with a module table on B200 (0.5.14 ships
# the attention kernel alone, generation_mla_perf.parquet)
ENGINES = {"vllm": "0.24.0", "trtllm": "1.3.0rc20", "sglang": "0.5.10"}
TABLE = {"vllm": "mla_generation_module_perf.parquet", "trtllm": "mla_generation_module_perf.parquet",
         "sglang": "wideep_generation_mla_perf.parquet"}  # fmt: skip
# Where a table holds several kernels, the one the engine runs by default for DeepSeek-V3 (None: all of them). SGLang
# on Hopper: fa3 (server_args.py get_default_attn_backend's MLA branch; kvplan/engines/sglang.py, TRTLLM_MLA_FAMILIES
# comment); its 0.5.10 Hopper tables also time flashinfer. On SM100 its tables hold trtllm_mla alone.
KERNEL = {("sglang", "h100-sxm"): "fa3", ("sglang", "h200"): "fa3"}
# SGLang's module leaves out the fused q_a + kv_a down-projection (hidden -> 1536 + 512 + 64), which SGLang >= 0.5.6
# computes outside the MLA forward (its layer communicator) and aiconfigurator times as its own GEMM beside
# WideEPGenerationMLA (aiconfigurator_core/sdk/models/deepseek.py, the SGLang wide-EP generation ops, 0.12.0).
EXCLUDES_QKV_A = {"sglang"}
# Tables of another version, sampled as hold-outs of the fits: SGLang 0.5.9 on H100 SXM, the only other SGLang module
# table with its GEMM dtype recorded on a GPU of kvplan's catalog (0.5.6.post2 records none; 0.5.9 also on B300).
HELD_OUT = {("sglang", "h100-sxm"): "0.5.9"}
HEADS = (16, 32, 64, 128)  # DeepSeek-V3's 128 heads over TP 8, 4, 2, 1
KV_DTYPES = {"fp8": "fp8", "bfloat16": "bf16"}  # aiconfigurator kv_cache_dtype -> kvplan KV dtype
GEMM_TYPE = "fp8_block"  # DeepSeek-V3's 128 x 128 block-scaled fp8 checkpoint
MODEL = "deepseek-v3"
BATCH_BANDS = ((1, 8), (9, 64), (65, None))
FIT_GPU = "b200"  # --fit: the Blackwell GPU the tables were fitted on (GB200 is the check)


def collect(out: Path) -> int:
    """Write the sample of aiconfigurator's MLA generation-module tables (latency in us, 4 significant digits)."""
    read = read_tables(SYSTEMS, ENGINES, "mla", TABLE)
    if read is None:
        return 0
    import aiconfigurator

    tables = []
    held = (t for (engine, gpu), version in HELD_OUT.items()
            for t in read_tables({gpu: SYSTEMS[gpu]}, {engine: version}, "mla", TABLE))  # fmt: skip
    for gpu, engine, version, path, source, df in itertools.chain(read, held):
        df = df[(df.gemm_type == GEMM_TYPE) & df.num_heads.isin(HEADS) & df.kv_cache_dtype.isin(KV_DTYPES)]
        if (engine, gpu) in KERNEL:
            df = df[df.kernel_source == KERNEL[engine, gpu]]
        points = sorted((str(r.kv_cache_dtype), int(r.num_heads), int(r.batch_size), int(r.isl), int(r.step),
                         float(f"{r.latency * 1e3:.4g}")) for r in df.itertuples())  # fmt: skip
        tables.append({"gpu": gpu, "engine": engine, "version": version,
                       "kernel": "/".join(sorted(set(df.kernel_source))),
                       "norm_dispatch": _norm_dispatch(path.parent / "collection_meta.yaml", path.stem),
                       "source": source, **({"excludes": "qkv_a_proj"} if engine in EXCLUDES_QKV_A else {}),
                       "points": points})  # fmt: skip
    meta = {"aiconfigurator": aiconfigurator.__version__, "unit": "us (aiconfigurator's latency column is ms)",
            "points": "[kv_cache_dtype, num_heads, batch_size, isl, step, latency_us]",
            "gemm_type": GEMM_TYPE}  # fmt: skip
    body = ",\n".join(json.dumps(t, separators=(",", ":")) for t in tables)
    out.write_text('{"meta": ' + json.dumps(meta) + ',\n"tables": [\n' + body + "\n]}\n")
    print(f"wrote {sum(len(t['points']) for t in tables)} points of {len(tables)} tables to {out}")
    return 0


def _norm_dispatch(meta: Path, table: str) -> str | None:
    """The table's ``norm_dispatch`` note in its collection_meta.yaml: ``vllm_c_eager_surrogate`` on the tables
    aiconfigurator re-collected with vLLM's fused norms (ai-dynamo/aiconfigurator#1423); None on the others."""
    import yaml

    if not meta.exists():
        return None
    tables = (yaml.safe_load(meta.read_text()) or {}).get("tables") or {}
    return (tables.get(table) or {}).get("norm_dispatch")


def legacy(table: dict) -> bool:
    """A vLLM table collected before aiconfigurator's fused-op collector fix: its MLA module ran the native (unfused)
    norm chain vLLM does not run in serving, which aiconfigurator's note on the re-collected B200 table puts at +34 %
    (heads 64, batch 16, KV 8,192, fp8). TensorRT-LLM's tables are not concerned."""
    return table["engine"] == "vllm" and table.get("norm_dispatch") is None


def load(path: Path = DATA) -> list[dict]:
    return json.loads(path.read_text())["tables"]


def layer_seconds(
    gpu_name: str,
    engine: str,
    *,
    heads: int,
    batch: int,
    context: int,
    kv: str,
    cal=None,  # noqa: ANN001
    excludes_qkv_a: bool = False,
) -> float:
    """kvplan's decode MLA layer of DeepSeek-V3: one layer's attention (:func:`kvplan.latency._attention_s` over the
    model, divided by its layers; every layer of DeepSeek-V3 is MLA) plus its projection GEMMs, CUDA-graph replay.
    ``cal``: a calibration to price with (default: the engine's). ``excludes_qkv_a``: without the q_a and kv_a
    down-projections (hidden -> q_lora_rank, hidden -> kv_lora_rank + qk_rope_head_dim), which the table times
    apart (SGLang's, EXCLUDES_QKV_A)."""
    from kvplan import latency
    from kvplan.catalog import resolve_model
    from kvplan.hardware import resolve_gpu

    spec = resolve_model(MODEL)
    cal = cal or latency.calibration(engine)
    ctx = latency._make_ctx(spec, resolve_gpu(gpu_name), tp=spec.num_attention_heads // heads, weights_dtype="fp8",
                            cal=cal, eager=False)  # fmt: skip
    kind = next(spec.kind(n) for n in spec.layer_kind_names if spec.kind(n).type == "mla")
    attention = latency._attention_s(ctx, phase="decode", context=context, batch=batch, attention_flops=0.0,
                                     kv_dtype=kv) / spec.num_layers  # fmt: skip
    gemms = latency._attention_gemms_s(ctx, kind, batch)
    if excludes_qkv_a:  # priced as kvplan prices each projection (_attention_gemms_s: K = hidden)
        h = spec.hidden_size
        for params in (h * kind.q_lora_rank, h * (kind.kv_lora_rank + kind.qk_rope_head_dim)):
            gemms -= latency._gemm_s(ctx, batch, params, h + params // h, k=h)
    return attention + gemms


def compare(tables: list[dict], *, cal_for=None) -> list[dict]:  # noqa: ANN001
    """One row per measured point: the table's keys, the point, aiconfigurator's and kvplan's seconds, ln ratio.
    ``cal_for(engine)``: the calibration to price an engine's points with (default: the engine's own)."""
    rows = []
    for t in tables:
        cal = cal_for(t["engine"]) if cal_for else None
        for kv, heads, batch, isl, step, us in t["points"]:
            s = layer_seconds(t["gpu"], t["engine"], heads=heads, batch=batch, context=isl + step, kv=KV_DTYPES[kv],
                              cal=cal, excludes_qkv_a=t.get("excludes") == "qkv_a_proj")  # fmt: skip
            kernel = t["kernel"] + (" (legacy collection)" if legacy(t) else "")
            rows.append({"gpu": t["gpu"], "engine": engine_label(t), "kernel": kernel, "kv": kv, "heads": heads,
                         "batch": batch, "context": isl + step, "aic_s": us * 1e-6, "kvplan_s": s,
                         "ln": math.log(s / (us * 1e-6))})  # fmt: skip
    return rows


def engine_label(table: dict) -> str:
    """The engine's name, with the table's version where it is not the one kvplan's constants describe (a hold-out)."""
    engine = table["engine"]
    return engine if table["version"] == ENGINES[engine] else f"{engine} {table['version']}"


def summaries(rows: list[dict]) -> dict[str, list[tuple[str, dict]]]:
    def group(key) -> list[tuple[str, dict]]:  # noqa: ANN001
        return grouped_stats(rows, key)

    def batch(r: dict) -> str:
        return band_label(r["batch"], BATCH_BANDS, prefix="batch ")

    return {"per GPU / engine / kernel": group(lambda r: f"{r['gpu']} {r['engine']} {r['kernel']}"),
            "per GPU / engine, by batch": group(lambda r: f"{r['gpu']} {r['engine']} {batch(r)}")}  # fmt: skip


def render(rows: list[dict], *, markdown: bool) -> str:
    out = render_summaries(summaries(rows), label="MLA decode layers", name_width=52, markdown=markdown)
    a = stats(rows)
    out.append(f"{a['count']} MLA decode layers against aiconfigurator (module timings): "
               f"median |ln| {a['median']:.3f}, worst {a['worst']:.3f}, median signed {a['signed']:+.3f}")  # fmt: skip
    return "\n".join(out)


def fit_field(gpu: str) -> str:
    """The calibration field ``--fit`` fits on ``gpu``: the decode MLA fixed cost of its architecture."""
    from kvplan.hardware import resolve_gpu

    return {"hopper": "hopper_mla_layer_s", "blackwell": "blackwell_mla_layer_s"}[resolve_gpu(gpu).architecture]


def fit(tables: list[dict], engine: str, gpu: str = FIT_GPU) -> tuple[float, float, float]:
    """The decode MLA fixed cost (seconds; ``hopper_mla_layer_s`` or ``blackwell_mla_layer_s`` by ``gpu``'s
    architecture) that minimises the squared ln ratios of ``engine``'s ``gpu`` points, every other constant held; with
    the median |ln| under ``mla_layer_s`` (no such constant) and with it. Golden-section search over 0-200 us (the
    squared ln ratio is unimodal in one added fixed cost)."""
    from dataclasses import replace

    from kvplan.latency import calibration

    field = fit_field(gpu)
    sel = [t for t in tables if t["gpu"] == gpu and t["engine"] == engine and t["version"] == ENGINES[engine]]

    def rows(value: float | None) -> list[dict]:
        return compare(sel, cal_for=lambda e: replace(calibration(e), **{field: value}))

    def cost(value: float) -> float:
        return sum(r["ln"] ** 2 for r in rows(value))

    lo, hi = 0.0, 200e-6
    g = (math.sqrt(5) - 1) / 2
    for _ in range(40):
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        if cost(a) < cost(b):
            hi = b
        else:
            lo = a
    best = (lo + hi) / 2
    return best, stats(rows(None))["median"], stats(rows(best))["median"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--collect", action="store_true", help="write the sample of aiconfigurator's MLA module tables")
    p.add_argument("--markdown", action="store_true", help="tables for docs/cost.md")
    p.add_argument("--fit", action="store_true", help="fit the decode MLA fixed cost on --gpu's points of --engine")
    p.add_argument("--engine", choices=sorted(ENGINES), default="vllm")
    p.add_argument("--gpu", choices=("h200", "b200"), default=FIT_GPU, help="--fit: the GPU whose table is fitted")
    args = p.parse_args(argv)
    if args.collect:
        return collect(DATA)
    tables = load()
    if args.fit:
        best, before, after = fit(tables, args.engine, args.gpu)
        field = fit_field(args.gpu)
        print(f"{args.engine} on {args.gpu}: {field}={best:.4g}  (median |ln| {before:.3f} -> {after:.3f})")
        return 0
    print(render(compare(tables), markdown=args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())

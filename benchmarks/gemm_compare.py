"""kvplan's GEMM cost, kernel by kernel, against aiconfigurator's measured GEMM tables over M x N x K.

aiconfigurator 0.12.0 (PyPI ``aiconfigurator``; its data in ``aiconfigurator_core/systems/data/<gpu>/gemm/<engine>/
<version>/gemm_perf.parquet``) ships GEMM kernel timings collected on each GPU for each engine, version and dtype
(``gemm_dtype`` bfloat16, fp8, fp8_block, nvfp4; columns ``m``, ``n``, ``k``, ``latency`` in ms). Its step
latencies, against which ``benchmarks/fit_latency.py`` fits kvplan's constants, are interpolated from these tables:
this script checks kvplan's GEMM model (:func:`kvplan.latency.gemm_seconds`) against them directly, shape by shape.

Two steps, as ``aiconfigurator_compare.py``:

1. ``--collect`` (needs aiconfigurator; does not import kvplan): reads the tables of H100 SXM, H200, B200 and GB200 for
   TensorRT-LLM 1.3.0rc20 and vLLM 0.24.0 (the versions kvplan's calibrations describe) and writes a sample of
   them (every measured point on the ``M_AXIS`` x ``N_AXIS`` x ``K_AXIS`` grid) to
   ``benchmarks/data/aiconfigurator_gemm.json``.
   Where aiconfigurator is not installed it says so and exits 0::

       /work/aic-venv/bin/python benchmarks/gemm_compare.py --collect

2. default (needs kvplan only): reads the committed sample, prices every point with ``gemm_seconds`` (a kernel
   alone, so the CUDA-graph fixed cost ``graph_kernel_s``) and prints the median and worst ``|ln(kvplan /
   aiconfigurator)|`` per GPU, engine and dtype, then per dtype by M band and by N band. ``--markdown`` prints the
   tables for docs/cost.md.

The fp8_block rows of aiconfigurator's vLLM 0.24.0 B200 table are the DeepGEMM artifact ``aiconfigurator_compare.py``
flags (0.18-0.26 ms per small GEMM where its SGLang and TensorRT-LLM tables time the same kernel at about 0.01 ms),
and its GB200 table the same (0.29-0.50 ms): they are printed like the others and marked.

``--streaming``: per table, the least-squares line ``us = fixed + weight bytes / (bandwidth x share)`` over the
decode shapes (M <= 16) of the sample (:func:`streaming_fit`): what a GEMM pays apart from its weights, and the share
of the bandwidth its weights stream at, fp8 beside bfloat16.

``--sm-scan`` (needs aiconfigurator, reads its full tables): which SM count the TensorRT-LLM fp8 / block-fp8 / nvfp4
GEMM tables' partial last waves follow (:func:`sm_scan`); the measurement behind GB200's ``sm_count`` in the catalog.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aic_tables import band_label, grouped_stats, read_tables, stats, tables_root  # noqa: E402 - where aiconfigurator's tables lie

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_gemm.json"

# kvplan GPU name -> aiconfigurator system directory (systems/data/<name>)
SYSTEMS = {"h100-sxm": "h100_sxm", "h200": "h200_sxm", "b200": "b200_sxm", "gb200": "gb200"}
# engine -> the aiconfigurator table version kvplan's calibration describes (Calibration.version)
ENGINES = {"trtllm": "1.3.0rc20", "vllm": "0.24.0"}
# aiconfigurator gemm_dtype -> (kvplan weights dtype, block-scaled fp8)
DTYPES = {"bfloat16": ("bf16", False), "fp8": ("fp8", False), "fp8_block": ("fp8", True), "nvfp4": ("nvfp4", False)}
# The sample: decode (1-16 rows) to long prefills, each side of a 128-row tile; N and K over the projections, MLPs
# and LM heads of the catalogue's models (7168 = DeepSeek-V3's hidden size, 51200 about a vocabulary shard).
M_AXIS = (1, 2, 4, 8, 16, 32, 64, 128, 129, 256, 257, 512, 1024, 2048, 4096, 8192, 16384)
N_AXIS = (256, 512, 1024, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 51200)
K_AXIS = (512, 1024, 2048, 4096, 5120, 7168, 8192, 16384)
M_BANDS = ((1, 16), (17, 128), (129, 1024), (1025, None))
N_BANDS = ((256, 1024), (1025, 4096), (4097, 16384), (16385, None))
# aiconfigurator_compare.reference_artifact's table (B200), and the GB200 table of the same collection (0.29-0.50 ms
# for 1-64 x 512 x 7168 where its SGLang and TensorRT-LLM DeepGEMM tables give 0.010-0.011 ms)
ARTIFACTS = {("b200", "vllm", "fp8_block"), ("gb200", "vllm", "fp8_block")}
# --sm-scan: the SM counts tried, the output tiles, and the systems of aiconfigurator's full tables it reads
SCAN_SMS = range(128, 165)
SCAN_TILES = ((128, 128), (128, 256))
SCAN_SYSTEMS = {"h100-sxm": "h100_sxm", "h200": "h200_sxm", "b200": "b200_sxm", "gb200": "gb200"}


def collect(out: Path) -> int:
    """Write the sample of aiconfigurator's GEMM tables (latencies in us, 4 significant digits) to ``out``."""
    read = read_tables(SYSTEMS, ENGINES, "gemm", "gemm_perf.parquet")
    if read is None:
        return 0
    import aiconfigurator

    tables = []
    for gpu, engine, version, _, source, df in read:
        df = df[df.m.isin(M_AXIS) & df.n.isin(N_AXIS) & df.k.isin(K_AXIS)]
        for dtype in DTYPES:
            sel = df[df.gemm_dtype == dtype]
            if sel.empty:
                continue
            got = {(int(r.m), int(r.n), int(r.k)): float(f"{r.latency * 1e3:.4g}") for r in sel.itertuples()}
            tables.append({"gpu": gpu, "engine": engine, "version": version, "dtype": dtype,
                           "kernel": "/".join(sorted(set(sel.kernel_source))), "source": source,
                           "us": [got.get(p) for p in _points()]})  # fmt: skip
    meta = {"aiconfigurator": aiconfigurator.__version__, "unit": "us (aiconfigurator's latency column is ms)",
            "order": "us[i] is the point i of product(m, n, k), m slowest; null where the table has no such point",
            "axes": {"m": M_AXIS, "n": N_AXIS, "k": K_AXIS}}  # fmt: skip
    body = ",\n".join(json.dumps(t, separators=(",", ":")) for t in tables)
    out.write_text('{"meta": ' + json.dumps(meta) + ',\n"tables": [\n' + body + "\n]}\n")
    print(f"wrote {sum(u is not None for t in tables for u in t['us'])} points of {len(tables)} tables to {out}")
    return 0


def sm_scan() -> list[dict] | None:
    """Which SM count do aiconfigurator's full TensorRT-LLM fp8 / block-fp8 / nvfp4 GEMM tables follow? Per table, over
    the compute-bound shapes with many tile waves (M >= 512, K >= 4096, 1024 <= N <= 16384; M every 256 rows there),
    grouped by (N, K): the median |deviation| from each group's median of ``ln(latency / (M N K))`` after dividing out
    the partial last wave (:func:`kvplan.latency.wave_efficiency`'s rule, for each tile in ``SCAN_TILES``) at each SM
    count in ``SCAN_SMS``. The best SM count per table and tile, and the spread at 148 and 152 (B200 and GB200).
    Reads the tables themselves (the committed sample's N axis is too coarse for it); None without aiconfigurator."""
    root = tables_root()
    if root is None:
        return None
    import pandas as pd

    out = []
    for gpu, system in SCAN_SYSTEMS.items():
        df = pd.read_parquet(root / system / "gemm" / "trtllm" / ENGINES["trtllm"] / "gemm_perf.parquet")
        df = df[(df.m >= 512) & (df.k >= 4096) & (df.n >= 1024) & (df.n <= 16384)]
        for dtype in ("fp8", "fp8_block", "nvfp4"):
            groups: dict[tuple[int, int], list[tuple[int, int, float]]] = {}
            for r in df[df.gemm_dtype == dtype].itertuples():
                per_flop = math.log(r.latency / (r.m * r.n * r.k))
                groups.setdefault((int(r.n), int(r.k)), []).append((int(r.m), int(r.n), per_flop))
            if not groups:
                continue
            for tile in SCAN_TILES:
                spread = {sms: _scan_spread(groups, sms, tile) for sms in SCAN_SMS}
                best = min(spread, key=spread.__getitem__)
                out.append({"table": f"{gpu} trtllm {dtype}", "tile": tile, "shapes": sum(map(len, groups.values())),
                            "none": _scan_spread(groups, 0, tile), "best": best, "spread": spread})  # fmt: skip
    return out


def _scan_spread(groups: dict, sms: int, tile: tuple[int, int]) -> float:
    devs = []
    for pts in groups.values():
        v = [y + (math.log(_wave(m, n, sms, tile)) if sms else 0.0) for m, n, y in pts]
        mid = statistics.median(v)
        devs += [abs(x - mid) for x in v]
    return statistics.median(devs)


def _wave(m: int, n: int, sms: int, tile: tuple[int, int]) -> float:
    """:func:`kvplan.latency.wave_efficiency` for any tile (kvplan runs 128 x 128; this script must not need kvplan)."""
    tiles = -(-m // tile[0]) * -(-n // tile[1])
    return 1.0 if tiles < sms else tiles / (-(-tiles // sms) * sms)


def render_scan(scan: list[dict]) -> str:
    out = ["SM count the measured tables follow (median |ln| spread after the partial last wave; none: no waves):"]
    for r in scan:
        sp, best = r["spread"], r["best"]
        tile = f"{r['tile'][0]}x{r['tile'][1]}"
        out.append(f"  {r['table']:<22} tile {tile:<7} {r['shapes']:>5} shapes  none {r['none']:.4f}  "
                   f"148: {sp[148]:.4f}  152: {sp[152]:.4f}  best {best} ({sp[best]:.4f})")  # fmt: skip
    return "\n".join(out)


def _points() -> list[tuple[int, int, int]]:
    return list(itertools.product(M_AXIS, N_AXIS, K_AXIS))


def load(path: Path = DATA) -> list[dict]:
    return json.loads(path.read_text())["tables"]


def compare(tables: list[dict]) -> list[dict]:
    """One row per measured point: the table's keys, m, n, k, aiconfigurator's and kvplan's seconds, ln ratio."""
    from kvplan.hardware import resolve_gpu
    from kvplan.latency import calibration, gemm_seconds

    rows = []
    for t in tables:
        gpu, cal = resolve_gpu(t["gpu"]), calibration(t["engine"])
        weights, block = DTYPES[t["dtype"]]
        for (m, n, k), us in zip(_points(), t["us"], strict=True):
            if us is None:
                continue
            s = gemm_seconds(gpu, cal, m=m, n=n, k=k, weights_dtype=weights, eager=False, block=block)
            rows.append({"gpu": t["gpu"], "engine": t["engine"], "dtype": t["dtype"], "m": m, "n": n, "k": k,
                         "aic_s": us * 1e-6, "kvplan_s": s, "ln": math.log(s / (us * 1e-6))})  # fmt: skip
    return rows


def wave_check(tables: list[dict]) -> list[dict]:
    """Does a table follow tile-wave quantization? Per table, over the compute-bound shapes past M = 128 (kvplan's
    compute roof at least twice its memory roof, before waves), with the tables' own scale taken out (each ln ratio
    minus their median): the median |ln| spread without waves and with kvplan's ``wave_efficiency`` (128 x 128
    tiles over the GPU's SMs), and the least-squares slope of the ln ratio on ``ln(wave efficiency)`` (1: the table
    follows the partial last wave fully; 0: not at all). kvplan applies waves to the fp8 GEMMs only."""
    from kvplan.hardware import resolve_gpu
    from kvplan.latency import calibration, gemm_peak, gemm_seconds, wave_efficiency

    out = []
    for t in tables:
        gpu, cal = resolve_gpu(t["gpu"]), calibration(t["engine"])
        flat = gpu.model_copy(update={"sm_count": None})  # kvplan's GEMM without waves
        weights, block = DTYPES[t["dtype"]]
        peak, mem_scale = gemm_peak(None, gpu, cal, weights)
        w_bytes = {"bf16": 2.0, "fp8": 1.0, "nvfp4": 9 / 16}[weights]
        r0, lw = [], []
        for (m, n, k), us in zip(_points(), t["us"], strict=True):
            if us is None or m <= 128:
                continue
            compute = 2 * m * n * k / (peak * cal.gemm_peak_eff * m / (m + cal.gemm_half_m))
            memory = (n * k * w_bytes + m * (n + k) * 2) / (gpu.bandwidth_gbps * 1e9 * cal.gemm_mem_eff * mem_scale)
            if compute < 2 * memory:
                continue
            s = gemm_seconds(flat, cal, m=m, n=n, k=k, weights_dtype=weights, eager=False, block=block)
            r0.append(math.log(s / (us * 1e-6)))
            lw.append(math.log(wave_efficiency(m, n, gpu.sm_count)))
        if len(r0) < 20:
            continue
        r1 = [a - b for a, b in zip(r0, lw, strict=True)]
        mx, my = statistics.fmean(lw), statistics.fmean(r0)
        sxx = sum((x - mx) ** 2 for x in lw)
        slope = sum((x - mx) * (y - my) for x, y in zip(lw, r0, strict=True)) / sxx if sxx else float("nan")
        out.append({"table": f"{t['gpu']} {t['engine']} {t['dtype']}", "count": len(r0), "flat": _spread(r0),
                    "waves": _spread(r1), "slope": slope})  # fmt: skip
    return out


def _spread(values: list[float]) -> float:
    mid = statistics.median(values)
    return statistics.median(abs(v - mid) for v in values)


def render_waves(checks: list[dict], *, markdown: bool) -> str:
    head = "tile-wave check (compute-bound shapes past M = 128, each table's scale taken out)"
    if markdown:
        out = [f"**{head}**", "", "| GEMMs | shapes | spread without waves | with waves | slope on ln(wave eff.) |",
               "|---|---:|---:|---:|---:|"]  # fmt: skip
        out += [f"| {c['table']} | {c['count']} | {c['flat']:.3f} | {c['waves']:.3f} | {c['slope']:+.2f} |"
                for c in checks]  # fmt: skip
    else:
        out = [f"{head}:"] + [f"  {c['table']:<28} {c['count']:>5}  spread {c['flat']:.3f} -> with waves "
                              f"{c['waves']:.3f}  slope {c['slope']:+.2f}" for c in checks]  # fmt: skip
    return "\n".join(out)


def summaries(rows: list[dict]) -> dict[str, list[tuple[str, dict]]]:
    """The three tables: per GPU / engine / dtype, per dtype by M band, per dtype by N band."""

    def group(key) -> list[tuple[str, dict]]:  # noqa: ANN001
        return grouped_stats(rows, key)

    order = list(DTYPES)
    by_table = group(lambda r: f"{r['gpu']} {r['engine']} {r['dtype']}")
    by_m = group(lambda r: f"{r['dtype']} M {band_label(r['m'], M_BANDS)}")
    by_n = group(lambda r: f"{r['dtype']} N {band_label(r['n'], N_BANDS)}")
    by_m.sort(key=lambda x: (order.index(x[0].split()[0]), [str(b) for b in M_BANDS].index(_key(x[0], M_BANDS))))
    by_n.sort(key=lambda x: (order.index(x[0].split()[0]), [str(b) for b in N_BANDS].index(_key(x[0], N_BANDS))))
    return {"per GPU / engine / dtype": by_table, "per dtype, by M band": by_m, "per dtype, by N band": by_n}


def _key(name: str, bands: tuple) -> str:
    label = name.split()[-1]
    for b in bands:
        if band_label(b[0], bands) == label:
            return str(b)
    return str(bands[0])


def render(rows: list[dict], *, markdown: bool) -> str:
    out = []
    for title, groups in summaries(rows).items():
        if markdown:
            out += [f"**{title}**", "", "| GEMMs | points | median \\|ln\\| | worst \\|ln\\| | median signed |",
                    "|---|---:|---:|---:|---:|"]  # fmt: skip
        else:
            out.append(f"{title}:")
        for name, s in groups:
            flag = " (vLLM DeepGEMM table artifact)" if tuple(name.split()) in ARTIFACTS else ""
            if markdown:
                out.append(f"| {name}{flag} | {s['count']} | {s['median']:.3f} | {s['worst']:.3f} | "
                           f"{s['signed']:+.3f} |")  # fmt: skip
            else:
                out.append(f"  {name:<28} {s['count']:>5}  median |ln| {s['median']:.3f}  worst {s['worst']:.3f}  "
                           f"signed {s['signed']:+.3f}{flag}")  # fmt: skip
        out.append("")
    a = stats(rows)
    out.append(f"{a['count']} GEMM shapes against aiconfigurator (kernel timings): median |ln| {a['median']:.3f}, "
               f"worst {a['worst']:.3f}, median signed {a['signed']:+.3f}")  # fmt: skip
    return "\n".join(out)


# --streaming: the weight bytes per element of the dtypes fitted, and the decode rows (M up to 16, where the weights
# are nearly all a GEMM moves: at M = 16 the activations are 16 x (N + K) x 2 B against N x K weights)
STREAM_BYTES = {"bfloat16": 2.0, "fp8": 1.0}
STREAM_MAX_M = 16


def streaming_fit(tables: list[dict]) -> list[dict]:
    """Per bfloat16 / fp8 table: the least-squares line ``us = fixed_us + weight bytes / (bandwidth x share)`` over
    the sample's decode points (M <= :data:`STREAM_MAX_M`, 440 per table), the GPU's catalog bandwidth. ``share`` is
    the streaming efficiency of the GEMM's weights, ``fixed_us`` what each GEMM pays apart from them (launch, and for
    aiconfigurator's dynamic fp8 the activations' scale and quantize kernels, docs/cost.md)."""
    from kvplan.hardware import resolve_gpu

    out = []
    for t in tables:
        if t["dtype"] not in STREAM_BYTES:
            continue
        bw = resolve_gpu(t["gpu"]).bandwidth_gbps * 1e9
        xs, ys = [], []
        for (m, n, k), us in zip(_points(), t["us"], strict=True):
            if us is not None and m <= STREAM_MAX_M:
                xs.append(n * k * STREAM_BYTES[t["dtype"]] / bw * 1e6)
                ys.append(us)
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
        out.append({"gpu": t["gpu"], "engine": t["engine"], "dtype": t["dtype"], "points": len(xs),
                    "fixed_us": my - slope * mx, "share": 1 / slope})  # fmt: skip
    return out


def render_streaming(fits: list[dict]) -> str:
    """One line per GPU and engine: each dtype's fixed cost and streaming share, and fp8's share over bfloat16's."""
    by = {(f["gpu"], f["engine"], f["dtype"]): f for f in fits}
    out = []
    for gpu, engine in dict.fromkeys((f["gpu"], f["engine"]) for f in fits):
        bf, f8 = by.get((gpu, engine, "bfloat16")), by.get((gpu, engine, "fp8"))
        if bf is None or f8 is None:
            continue
        out.append(f"{gpu:8} {engine:6} bfloat16 fixed {bf['fixed_us']:4.1f} us, share {bf['share']:.3f}; "
                   f"fp8 fixed {f8['fixed_us']:4.1f} us, share {f8['share']:.3f}; "
                   f"fp8 share / bfloat16 share {f8['share'] / bf['share']:.3f}")  # fmt: skip
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--collect", action="store_true", help="write the sample of aiconfigurator's GEMM tables")
    p.add_argument("--markdown", action="store_true", help="tables for docs/cost.md")
    p.add_argument("--waves", action="store_true", help="the tile-wave check instead of the comparison")
    p.add_argument("--sm-scan", action="store_true", help="which SM count aiconfigurator's tables follow (needs it)")
    p.add_argument("--streaming", action="store_true", help="fixed cost and weight-streaming share per table")
    args = p.parse_args(argv)
    if args.collect:
        return collect(DATA)
    if args.sm_scan:
        scan = sm_scan()
        print(render_scan(scan) if scan is not None else "aiconfigurator is not installed here; skipped")
        return 0
    tables = load()
    if args.streaming:
        print(render_streaming(streaming_fit(tables)))
        return 0
    if args.waves:
        print(render_waves(wave_check(tables), markdown=args.markdown))
        return 0
    print(render(compare(tables), markdown=args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())

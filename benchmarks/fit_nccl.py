"""Fit kvplan.latency's NCCL all-gather / reduce-scatter constants to measured NCCL timings; print them.

    python benchmarks/fit_nccl.py                   # fit from the committed sample, print the constants and errors
    /work/aic-venv/bin/python benchmarks/fit_nccl.py --collect   # refresh the sample from aiconfigurator's tables
    python benchmarks/fit_nccl.py --allreduce       # the engines' own (custom) all-reduce per GPU architecture
    /work/aic-venv/bin/python benchmarks/fit_nccl.py --collect --allreduce   # refresh that sample

Source: aiconfigurator 0.12.0 (PyPI ``aiconfigurator``) ships NCCL timings it collected on each system,
``aiconfigurator_core/systems/data/<system>/comm/nccl/<version>/nccl_perf.parquet`` (op_name, num_gpus,
message_size, nccl_dtype, latency in ms; ``message_size`` is the collective's whole tensor in elements: the
gathered output of an all-gather, the input of a reduce-scatter, as nccl-tests counts it: a half row of N
elements takes the time of an int8 row of 2N). The version read per system is the one aiconfigurator itself
queries, ``misc.nccl_version`` of ``systems/<system>.yaml`` (h100_sxm 2.27.3, h200_sxm 2.26.2, b200_sxm 2.27.3).
``--collect`` (needs pandas, i.e. aiconfigurator's own venv; says so and exits 0 elsewhere) writes the all-gather
and reduce-scatter rows of H100, H200 and B200 SXM at 2, 4 and 8 GPUs, int8 and half, as (bytes, seconds) to
``benchmarks/data/nccl_perf.json`` (the median of repeated rows); the fit reads that file, so it runs without
aiconfigurator. Needs numpy and scipy (the ``bench`` extra).

What is fitted (kvplan.latency :data:`NCCL_FITS`, :func:`nccl_collective_s`): NCCL runs a collective with the
protocol its tuner predicts fastest (LL for small messages: low latency, a fraction of the link; Simple / LL128
for large ones: more latency, most of the link; NVIDIA/nccl ``src/graph/tuning.cc``), so one collective of
``B`` bytes over ``R`` ranks within an NVLink domain takes

    min over the two protocols p of  base_p + rank_p x (R - 2) + (R - 1) / R x B / (link x eff_p)

with ``link`` the catalog's ``interconnect_gbps`` (H100 / H200 900 GB/s, B200 1800 GB/s). One set of six
constants per GPU architecture (Hopper: H100 and H200 points; Blackwell: B200), all-gather and reduce-scatter
together (the same bytes cross the links either way), by ``scipy.optimize.least_squares`` on
``ln(model / measured)`` over every point.

``--allreduce``: the engines' own all-reduce kernels (vLLM's custom all-reduce, TensorRT-LLM's AllReduce op,
SGLang's custom all-reduce), which is what kvplan.latency.allreduce_s prices with each engine's
``Calibration.allreduce_base_s / allreduce_rank_s / allreduce_bw_eff``. Those three were fitted by
benchmarks/fit_latency.py to the all-reduce ops of aiconfigurator's whole-step breakdowns (H100, H200 and B200 cases
pooled: one figure for every GPU). aiconfigurator 0.12.0 also ships each engine's all-reduce table per system,
``systems/data/<system>/comm/<engine>/<version>/custom_allreduce_perf.parquet`` (kernel_source, num_gpus,
message_size in bfloat16 elements, latency ms); ``--collect --allreduce`` writes the CUDA-graph rows (what a decode
step replays) of vLLM 0.24.0, TensorRT-LLM 1.3.0rc20 and SGLang 0.5.14 (the releases of kvplan's aiconfigurator
grid) on H100 / H200 / B200 SXM (TP 2, 4, 8) and GB200 (TP 2, 4: the only ones collected) to
``benchmarks/data/custom_allreduce_perf.json``. The fit, per engine and per architecture class (Hopper: H100 + H200;
Blackwell: B200; GB200 held out, then fitted alone), is kvplan's form

    base + rank x (R - 2) + 2 (R - 1) / R x B / (link x eff)

by least squares on ``ln(model / measured)`` over every point (``ALLREDUCE_MAX_BYTES``). What goes into the
engines' Calibration is each class's difference in the fixed latency, not the table's level (the grid fit's Hopper
level sits 0.11-0.16 over the Hopper tables in mean ln, and the grid prices whole steps): ``blackwell_allreduce_base_s``
= the engine's ``allreduce_base_s`` + (Blackwell base - Hopper base) of the table fits, the same for
``gb200_allreduce_base_s``; Hopper's pricing does not move. The tables also give Blackwell a lower bandwidth share of
its 1,800 GB/s link than Hopper's of 900 (ratio 0.79-0.86, printed): not adopted, since with it the grid's B200
prefill steps (all-reduces of hundreds of MiB) rose past aiconfigurator's (TTFT median |ln| 0.051 -> 0.069) and the
TensorRT-LLM B200 / GB200 tables and MLPerf moved out; the Blackwell constants the grid fitted with the one share
carry it, and adopting it means refitting them with it. The report prints that block, then kvplan's price against
each GPU's table with the one figure and per class, and the hold-out: GB200's table priced with B200's figure (what
kvplan would do without a GB200 fit). SGLang has no grid fit of its own (vLLM's constants are lent it): its block
moves vLLM's lent level by SGLang's own differences.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aic_tables import tables_root  # noqa: E402 - shared with the table scripts

DATA = Path(__file__).resolve().parent / "data" / "nccl_perf.json"
# aiconfigurator system -> (kvplan catalog GPU, architecture, NCCL version aiconfigurator queries for it).
SYSTEMS = {
    "h100_sxm": ("h100-sxm", "hopper", "2.27.3"),
    "h200_sxm": ("h200", "hopper", "2.26.2"),
    "b200_sxm": ("b200", "blackwell", "2.27.3"),
}
OPS = ("all_gather", "reduce_scatter")
# Kept in the sample beside them, never fitted: nccl-tests' alltoall_perf (the binary aiconfigurator's
# collector/collect_nccl.py runs for "alltoall") launches one ncclGroupStart/End of a ncclSend and a ncclRecv per peer
# (NVIDIA/nccl-tests src/alltoall.cu AlltoAllRunColl @07ac716c): what a group of 2 x R small NCCL ops costs
# (benchmarks/published_compare.py grouped_launch_lines).
GROUPED_OPS = ("alltoall",)
DTYPE_BYTES = {"int8": 1, "half": 2}
# (aiconfigurator framework directory, version, kernel_source of the CUDA-graph rows) per kvplan engine.
ALLREDUCE_TABLES = {
    "vllm": ("vllm", "0.24.0", "vLLM_custom_graph"),
    "trtllm": ("trtllm", "1.3.0rc20", "TRTLLM"),
    "sglang": ("sglang", "0.5.14", "SGLang_CustomAllReduce_graph"),
}
ALLREDUCE_SYSTEMS = {  # aiconfigurator system -> (kvplan catalog GPU, architecture class of the fit)
    "h100_sxm": ("h100-sxm", "hopper"),
    "h200_sxm": ("h200", "hopper"),
    "b200_sxm": ("b200", "blackwell"),
    "gb200": ("gb200", "gb200"),
}
ALLREDUCE_DATA = Path(__file__).resolve().parent / "data" / "custom_allreduce_perf.json"
# The fit's largest message: every size the tables hold (256 B to 1 GiB). Capped at 32 MiB (a 2K-token prefill chunk of
# an 8,192-wide bf16 hidden state) the latency differences come out 0.04-0.3 us smaller and the share ratio 0.64 for
# vLLM; over every size 0.79, the large messages' own ratio (bus bandwidth 722 / 470 GB/s at TP 8, link twice as fast).
ALLREDUCE_MAX_BYTES = math.inf
AR_FIELDS = ("allreduce_base_s", "allreduce_rank_s", "allreduce_bw_eff")
FIELDS = ("ll_base_s", "ll_rank_s", "ll_bw_eff", "simple_base_s", "simple_rank_s", "simple_bw_eff")


def collect(out: Path) -> int:
    """Write the all-gather / reduce-scatter (and grouped all-to-all) rows of aiconfigurator's NCCL tables to
    ``out``."""
    root = tables_root()
    if root is None:
        print("aiconfigurator (and pandas) is not installed here; skipped (run with aiconfigurator's venv)")
        return 0
    import pandas as pd
    systems = {}
    for system, (gpu, arch, version) in SYSTEMS.items():
        frame = pd.read_parquet(root / system / "comm" / "nccl" / version / "nccl_perf.parquet")
        points: dict[str, dict[str, list[list[float]]]] = {}
        for op in OPS + GROUPED_OPS:
            for ranks in (2, 4, 8):
                rows = frame[(frame.op_name == op) & (frame.num_gpus == ranks)]
                by_bytes: dict[int, list[float]] = {}
                for dtype, size, latency_ms in zip(rows.nccl_dtype, rows.message_size, rows.latency, strict=True):
                    by_bytes.setdefault(int(size) * DTYPE_BYTES[dtype], []).append(float(latency_ms) * 1e-3)
                points.setdefault(op, {})[str(ranks)] = [[b, statistics.median(s)] for b, s in sorted(by_bytes.items())]
        systems[gpu] = {"architecture": arch, "aiconfigurator_system": system, "nccl_dir": version,
                        "device": str(frame.device.iloc[0]), "rows_version": sorted(set(map(str, frame.version))),
                        "points": points}  # fmt: skip
    data = {
        "source": "aiconfigurator 0.12.0, aiconfigurator_core/systems/data/<system>/comm/nccl/<nccl_dir>/"
        "nccl_perf.parquet (NCCL all_gather / reduce_scatter timings collected by NVIDIA on each system, and "
        "nccl-tests' alltoall: one group of a send and a receive per peer; the "
        "directory is the system yaml's misc.nccl_version); bytes = message_size x dtype bytes (the whole "
        "gathered / reduced tensor), seconds = latency ms / 1000, median of repeated rows",
        "systems": systems,
    }
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


def collect_allreduce(out: Path) -> int:
    """Write the CUDA-graph rows of each engine's all-reduce table (:data:`ALLREDUCE_TABLES`) to ``out``."""
    root = tables_root()
    if root is None:
        print("aiconfigurator (and pandas) is not installed here; skipped (run with aiconfigurator's venv)")
        return 0
    import pandas as pd
    engines = {}
    for engine, (framework, version, kernel) in ALLREDUCE_TABLES.items():
        systems = {}
        for system, (gpu, arch) in ALLREDUCE_SYSTEMS.items():
            frame = pd.read_parquet(root / system / "comm" / framework / version / "custom_allreduce_perf.parquet")
            frame = frame[(frame.kernel_source == kernel) & (frame.allreduce_dtype == "bfloat16")]
            points: dict[str, list[list[float]]] = {}
            for ranks in sorted(set(map(int, frame.num_gpus))):
                rows = frame[frame.num_gpus == ranks]
                by_bytes: dict[int, list[float]] = {}
                for size, latency_ms in zip(rows.message_size, rows.latency, strict=True):
                    by_bytes.setdefault(int(size) * 2, []).append(float(latency_ms) * 1e-3)
                points[str(ranks)] = [[b, statistics.median(v)] for b, v in sorted(by_bytes.items())]
            systems[gpu] = {"architecture": arch, "aiconfigurator_system": system, "device": str(frame.device.iloc[0]),
                            "points": points}  # fmt: skip
        engines[engine] = {"framework": framework, "version": version, "kernel_source": kernel, "systems": systems}
    data = {
        "source": "aiconfigurator 0.12.0, aiconfigurator_core/systems/data/<system>/comm/<framework>/<version>/"
        "custom_allreduce_perf.parquet, the rows of kernel_source <kernel_source> (CUDA graph), bfloat16; bytes = "
        "message_size x 2, seconds = latency ms / 1000, median of repeated rows",
        "engines": engines,
    }
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


def allreduce_points(data: dict, engine: str, arch: str, *, gpus: tuple[str, ...] | None = None,
                     max_bytes: float = ALLREDUCE_MAX_BYTES) -> list[tuple[float, int, float, float]]:  # fmt: skip
    """(catalog link GB/s, ranks, bytes, seconds) of ``engine``'s all-reduce points on ``arch``'s GPUs (or the
    named ``gpus``) up to ``max_bytes``."""
    from kvplan.hardware import resolve_gpu

    out = []
    for gpu, entry in data["engines"][engine]["systems"].items():
        if (gpus is not None and gpu not in gpus) or (gpus is None and entry["architecture"] != arch):
            continue
        link = resolve_gpu(gpu).interconnect_gbps
        for ranks, pts in entry["points"].items():
            out += [(link, int(ranks), b, s) for b, s in pts if b <= max_bytes]
    return out


def allreduce_model(p: dict[str, float], link: float, ranks: int, nbytes: float) -> float:
    """kvplan.latency.allreduce_bytes_s within one NVLink domain, without the kvplan context."""
    wire = 2 * (ranks - 1) / ranks * nbytes / (link * 1e9 * p["allreduce_bw_eff"])
    return p["allreduce_base_s"] + p["allreduce_rank_s"] * (ranks - 2) + wire


def allreduce_errors(p: dict[str, float], pts: list) -> list[float]:
    return [math.log(allreduce_model(p, link, ranks, b) / s) for link, ranks, b, s in pts]


def fit_allreduce(pts: list) -> dict[str, float]:
    """The three constants of :func:`allreduce_model` that fit ``pts`` best (least squares on the ln ratio)."""
    from scipy.optimize import least_squares

    scale = (1e-6, 1e-6, 1.0)

    def residual(x):  # noqa: ANN001, ANN202
        return allreduce_errors(dict(zip(AR_FIELDS, (v * s for v, s in zip(x, scale, strict=True)), strict=True)), pts)

    best = None
    for start in ((4, 0.3, 0.3), (6, 0.1, 0.5), (3, 1, 0.2)):
        r = least_squares(residual, start, bounds=((0, 0, 0.01), (100, 20, 1.5)))
        if best is None or r.cost < best.cost:
            best = r
    return dict(zip(AR_FIELDS, (v * s for v, s in zip(best.x, scale, strict=True)), strict=True))


# The small messages, where the fixed latency is nearly all the time: 64 KiB is 4 tokens of an 8,192-wide bf16 hidden
# state (the decode all-reduces of small batches).
SMALL_BYTES = 65536


def _spread(p: dict[str, float], pts: list) -> str:
    e = allreduce_errors(p, pts)
    a = [abs(x) for x in e]
    mean = statistics.mean(e)
    small = statistics.median(math.exp(x) for x, (_, _, b, _) in zip(e, pts, strict=True) if b <= SMALL_BYTES)
    return (f"{len(pts)} points, median |ln| {statistics.median(a):.3f}, worst {max(a):.3f}, mean ln {mean:+.3f}; "
            f"<= 64 KiB median x{small:.2f}")


def allreduce_report(data: dict) -> list[str]:
    """Per engine: the table fits per class (Hopper, Blackwell HGX, GB200), the Calibration block each class's
    difference from Hopper gives, and how kvplan's pricing meets each GPU's table before (the one figure) and after
    (the engine's Calibration as it stands: paste the block, rerun). The GB200 hold-out: its table against the
    Blackwell HGX figures (what kvplan would price without a GB200 fit)."""
    from dataclasses import replace

    from kvplan.engines import latency_calibration
    from kvplan.hardware import resolve_gpu
    from kvplan.latency import allreduce_constants

    def priced(cal, gpu: str) -> dict[str, float]:  # noqa: ANN001
        return dict(zip(AR_FIELDS, allreduce_constants(cal, resolve_gpu(gpu)), strict=True))

    lines = []
    for engine in data["engines"]:
        cal = latency_calibration(engine)
        one = {f: getattr(cal, f) for f in AR_FIELDS}
        fits = {cls: fit_allreduce(allreduce_points(data, engine, cls)) for cls in ("hopper", "blackwell", "gb200")}
        entry = data["engines"][engine]
        lines.append(f"{engine} ({entry['framework']} {entry['version']}, {entry['kernel_source']}):")
        for cls, p in fits.items():
            body = ", ".join(f"{k}={v:.4g}" for k, v in p.items())
            lines.append(f"  table fit {cls}: {body} ({_spread(p, allreduce_points(data, engine, cls))})")
        block = {}
        for cls in ("blackwell", "gb200"):
            delta = fits[cls]["allreduce_base_s"] - fits["hopper"]["allreduce_base_s"]
            ratio = fits[cls]["allreduce_bw_eff"] / fits["hopper"]["allreduce_bw_eff"]
            block[cls] = one["allreduce_base_s"] + delta
            lines.append(f"    {cls}_allreduce_base_s={block[cls]:.4g},  # {one['allreduce_base_s']:.4g} "
                         f"{delta * 1e6:+.3f} us ({cls} - Hopper table fit)")
            lines.append(f"    # bandwidth share {cls} / Hopper in the table fits: {ratio:.4f} (not adopted)")
        hold = replace(cal, gb200_allreduce_base_s=None, blackwell_allreduce_base_s=block["blackwell"])
        for gpu in ("h100-sxm", "h200", "b200", "gb200"):
            pts = allreduce_points(data, engine, "", gpus=(gpu,))
            lines.append(f"  {gpu}: one figure {_spread(one, pts)}")
            lines.append(f"  {gpu}: per class    {_spread(priced(cal, gpu), pts)}")
            if gpu == "gb200":
                lines.append(f"  {gpu}: held out (B200's figures) {_spread(priced(hold, gpu), pts)}")
    return lines

def points(data: dict, arch: str) -> list[tuple[float, int, float, float]]:
    """(catalog link GB/s, ranks, bytes, seconds) of every point of ``arch``'s GPUs, both operations."""
    from kvplan.hardware import resolve_gpu

    out = []
    for gpu, entry in data["systems"].items():
        if entry["architecture"] != arch:
            continue
        link = resolve_gpu(gpu).interconnect_gbps
        for op in OPS:
            for ranks, pts in entry["points"][op].items():
                out += [(link, int(ranks), b, s) for b, s in pts]
    return out


def model(p: dict[str, float], link: float, ranks: int, nbytes: float) -> float:
    """The fitted form (kvplan.latency.nccl_collective_s without the kvplan context)."""
    wire = (ranks - 1) / ranks * nbytes / (link * 1e9)
    ll = p["ll_base_s"] + p["ll_rank_s"] * (ranks - 2) + wire / p["ll_bw_eff"]
    simple = p["simple_base_s"] + p["simple_rank_s"] * (ranks - 2) + wire / p["simple_bw_eff"]
    return min(ll, simple)


def errors(p: dict[str, float], pts: list) -> list[float]:
    return [math.log(model(p, link, ranks, b) / s) for link, ranks, b, s in pts]


def fit(data: dict, arch: str) -> dict[str, float]:
    from scipy.optimize import least_squares

    pts = points(data, arch)
    scale = (1e-6, 1e-6, 1.0, 1e-6, 1e-6, 1.0)  # microseconds and shares, so the solver sees O(1) numbers

    def residual(x):  # noqa: ANN001, ANN202
        return errors(dict(zip(FIELDS, (v * s for v, s in zip(x, scale, strict=True)), strict=True)), pts)

    best = None
    for start in ((6, 1, 0.1, 20, 2, 0.35), (7, 1, 0.15, 30, 3, 0.4), (5, 0.5, 0.08, 15, 1, 0.3)):
        r = least_squares(residual, start, bounds=((0, 0, 0.01, 0, 0, 0.05), (100, 20, 1.5, 300, 50, 1.5)))
        if best is None or r.cost < best.cost:
            best = r
    return dict(zip(FIELDS, (v * s for v, s in zip(best.x, scale, strict=True)), strict=True))


def report(data: dict, arch: str, p: dict[str, float]) -> str:
    pts = points(data, arch)
    e = [abs(x) for x in errors(p, pts)]
    return f"{arch}: {len(pts)} points, median |ln(model / measured)| {statistics.median(e):.3f}, worst {max(e):.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collect", action="store_true", help="refresh benchmarks/data/nccl_perf.json (aiconfigurator)")
    ap.add_argument("--allreduce", action="store_true",
                    help="the engines' own all-reduce tables per GPU architecture (benchmarks/data/"
                    "custom_allreduce_perf.json)")  # fmt: skip
    ap.add_argument("--data", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.allreduce:
        path = args.data or ALLREDUCE_DATA
        if args.collect:
            return collect_allreduce(path)
        print("\n".join(allreduce_report(json.loads(path.read_text()))))
        return 0
    args.data = args.data or DATA
    if args.collect:
        return collect(args.data)
    data = json.loads(args.data.read_text())
    for arch in ("hopper", "blackwell"):
        p = fit(data, arch)
        body = ", ".join(f"{k}={v:.4g}" for k, v in p.items())
        print(f'    "{arch}": NcclFit({body}),')
        print("    # " + report(data, arch, p))
    return 0


if __name__ == "__main__":
    sys.exit(main())

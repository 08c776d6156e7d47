"""Fit kvplan.latency's NCCL all-gather / reduce-scatter constants to measured NCCL timings; print them.

    python benchmarks/fit_nccl.py                   # fit from the committed sample, print the constants and errors
    /work/aic-venv/bin/python benchmarks/fit_nccl.py --collect   # refresh the sample from aiconfigurator's tables

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
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

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
FIELDS = ("ll_base_s", "ll_rank_s", "ll_bw_eff", "simple_base_s", "simple_rank_s", "simple_bw_eff")


def collect(out: Path) -> int:
    """Write the all-gather / reduce-scatter (and grouped all-to-all) rows of aiconfigurator's NCCL tables to
    ``out``."""
    try:
        import pandas as pd
        from aiconfigurator_core import __file__ as core_file
    except ImportError:
        print("aiconfigurator (and pandas) is not installed here; skipped (run with aiconfigurator's venv)")
        return 0
    root = Path(core_file).parent / "systems" / "data"
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
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args(argv)
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

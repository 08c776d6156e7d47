"""Fit kvplan.latency's expert-parallel all-to-all constants to DeepEP's published figures; print them.

    python benchmarks/fit_alltoall.py

Sources (read with the search tools; facts only, nothing copied):

* deepseek-ai/DeepEP ``docs/legacy.md`` @ 0297fc80, "Low-latency kernels with pure RDMA": H800 GPUs, each
  with one CX7 InfiniBand 400 Gb/s NIC (~50 GB/s), 128 tokens per rank, hidden 7168, top-8 experts, FP8
  dispatch, BF16 combine; dispatch / combine latency at EP 8 ... 256.
* deepseek-ai/DeepEP ``README.md`` @ 0297fc80 (V2), "Performance": SM100 (B200), EP 8 in one NVLink domain:
  726 GB/s dispatch and 740 GB/s combine "logical bandwidth" (bytes a rank sends, its own share included).

What is fitted (kvplan.latency's model of one dispatch or combine on one rank):
``time = latency + bytes leaving the node / (NIC x network_eff)`` across nodes, and
``bytes / (NVLink catalog figure x nvlink_eff)`` within one. Nodes hold 8 GPUs (H800 HGX), so at EP ``R``
the share ``(R - 8) / R`` of a rank's bytes crosses the network. ``latency`` and ``1 / bandwidth`` come
from a least-squares line through the ten points at EP 16 ... 256 (EP 8 is one node; the low-latency kernels
of that release sent even those bytes over RDMA, so the point is not a NVLink figure and is left out).
NVLink: the V2 logical bandwidth over the B200 catalog figure (kvplan/data/gpus.yaml: 1800 GB/s, NVLink5).
"""

from __future__ import annotations

import statistics
import sys

HIDDEN, TOPK, TOKENS, NODE = 7168, 8, 128, 8
FP8_COPY_BYTES = HIDDEN + HIDDEN // 128 * 4  # fp8 values + one fp32 scale per 128 (DeepEP's FP8 dispatch)
BF16_COPY_BYTES = HIDDEN * 2
NIC_GBPS = 50.0  # CX7 400 Gb/s, "~50 GB/s maximum bandwidth" (docs/legacy.md)
# (EP ranks, dispatch us, combine us): docs/legacy.md low-latency table.
LOW_LATENCY = [(16, 118, 195), (32, 155, 273), (64, 173, 314), (128, 192, 369), (256, 194, 360)]
# README.md V2: SM100, EP 8, NVLink: dispatch and combine logical GB/s; B200 NVLink5 in kvplan's catalog.
V2_NVLINK_GBPS = (726, 740)
B200_CATALOG_GBPS = 1800


def points() -> list[tuple[float, float]]:
    """(bytes crossing the network per rank, seconds) for every internode dispatch and combine."""
    out = []
    for ranks, dispatch_us, combine_us in LOW_LATENCY:
        cross = (ranks - NODE) / ranks
        out.append((TOKENS * TOPK * FP8_COPY_BYTES * cross, dispatch_us * 1e-6))
        out.append((TOKENS * TOPK * BF16_COPY_BYTES * cross, combine_us * 1e-6))
    return out


def fit() -> dict[str, float]:
    xs, ys = zip(*points(), strict=True)
    slope, intercept = statistics.linear_regression(xs, ys)
    resid = [y - (intercept + slope * x) for x, y in zip(xs, ys, strict=True)]
    return {
        "network_latency_s": intercept,
        "network_bw_eff": 1 / slope / (NIC_GBPS * 1e9),
        "worst_rel_err": max(abs(r) / y for r, y in zip(resid, ys, strict=True)),
        "nvlink_bw_eff": statistics.mean(V2_NVLINK_GBPS) / B200_CATALOG_GBPS,
    }


def main() -> int:
    f = fit()
    print(f"A2A_NETWORK_LATENCY_S = {f['network_latency_s']:.4g}  # intercept, 10 points EP 16-256")
    print(f"NETWORK_BW_EFF = {f['network_bw_eff']:.3g}  # of the {NIC_GBPS:g} GB/s NIC")
    print(f"A2A_NVLINK_BW_EFF = {f['nvlink_bw_eff']:.3g}  # of the catalog NVLink figure")
    print(f"worst relative error of the line: {f['worst_rel_err']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

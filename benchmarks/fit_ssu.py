"""Fit vLLM's Mamba2 decode state update: ``ssu_mem_eff`` (:func:`kvplan.latency._ssu_split`).

Why: at decode every Mamba2 layer reads and writes each sequence's SSM state once, in vLLM's Triton
``selective_state_update`` (vllm/model_executor/layers/mamba/ops/mamba_ssm.py, called by
``MambaMixer2.conv_ssm_forward``, 0.16.0 wheel). kvplan priced those bytes at ``attn_decode_mem_eff`` (0.84 of the
bandwidth, the attention decode kernels' share). The kernel's launch geometry is hard-coded by ``dstate`` (no autotune:
it would overwrite the state), and vLLM's own tuning script (``benchmarks/kernels/benchmark_selective_state_update.py
--compare``) times it at that heuristic: the ``Heur(us)`` columns transcribed in ``benchmarks/data/ssu_measured.json``
(B200 from vLLM PR #43083, H200 from PR #44251; fp32 state, head dim 64, d_state 128, 8 groups: Nemotron-H's Mamba2
layers).

Each point moves ``2 x effective_batch x headdim x dstate x 4`` bytes (the fp32 state read and written). kvplan's
time for it is ``graph_kernel_s`` (the launch it charges each decode kernel in a CUDA graph) plus those bytes at a
share of the catalog bandwidth; a point's share is ``bytes / (bandwidth x (time - graph_kernel_s))``. The fitted
share is the median over both tables' points the bytes dominate (time at least :data:`BOUND` x the launch). No other
constant is involved.

    .venv/bin/python benchmarks/fit_ssu.py

prints every point's share, each GPU's median, the pooled median (adopted in ``kvplan/engines/vllm.py``
``CALIBRATION``), and the median / worst ``|ln(kvplan / measured)|`` per GPU with ``attn_decode_mem_eff`` (before)
and with the pooled share (after). The two launch heuristics (Blackwell's 32 x 8 warps, Hopper's 4 x 4) give the same
median. What one share does not describe: the H200 points fall from 0.60-0.69 at <= 8,192 to 0.20-0.30 at >= 32,768
(the same table's tuned configuration is slower at 131,072 than at 196,608), and the B200 excerpt ends at 16,384;
past that kvplan stays faster than the H200 table (it was faster at every point before).
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

from kvplan.hardware import resolve_gpu
from kvplan.latency import calibration

DATA = Path(__file__).resolve().parent / "data" / "ssu_measured.json"
STATE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
BOUND = 4  # a point is bandwidth-bound where its time is at least 4 x the launch kvplan charges


def points(table: dict) -> list[tuple[int, float, float]]:
    """(effective batch, measured seconds, bytes moved) of a table's rows."""
    per = 2 * table["headdim"] * table["dstate"] * STATE_BYTES[table["state_dtype"]]
    return [(n, us * 1e-6, n * per) for n, us in table["rows"]]


def shares(table: dict, launch_s: float) -> list[tuple[int, float]]:
    """Each bandwidth-bound point's share of the GPU's catalog bandwidth, after kvplan's launch."""
    bw = resolve_gpu(table["gpu"]).bandwidth_gbps * 1e9
    return [(n, nbytes / (bw * (t - launch_s))) for n, t, nbytes in points(table) if t >= BOUND * launch_s]


def errors(table: dict, launch_s: float, share: float) -> tuple[float, float]:
    """Median and worst |ln(kvplan / measured)| over the bandwidth-bound points at ``share``."""
    bw = resolve_gpu(table["gpu"]).bandwidth_gbps * 1e9
    lns = [abs(math.log((launch_s + nbytes / (bw * share)) / t)) for n, t, nbytes in points(table)
           if t >= BOUND * launch_s]  # fmt: skip
    return statistics.median(lns), max(lns)


def main() -> int:
    cal = calibration("vllm@0.16")
    data = json.loads(DATA.read_text())
    launch = cal.graph_kernel_s
    pooled = statistics.median(s for table in data["tables"] for _, s in shares(table, launch))
    for table in data["tables"]:
        got = shares(table, launch)
        share = statistics.median(s for _, s in got)
        print(f"{table['gpu']} (heuristic BLOCK_SIZE_M={table['heuristic']['BLOCK_SIZE_M']}, "
              f"num_warps={table['heuristic']['num_warps']}; {table['url']})")  # fmt: skip
        for n, s in got:
            print(f"  effective batch {n:>7,}: {s:.3f} of the bandwidth")
        before, after = errors(table, launch, cal.attn_decode_mem_eff), errors(table, launch, pooled)
        print(f"  median share {share:.3f} over {len(got)} points; |ln(kvplan / measured)| median / worst: "
              f"attn_decode_mem_eff {cal.attn_decode_mem_eff} {before[0]:.3f} / {before[1]:.3f}, "
              f"the pooled share {after[0]:.3f} / {after[1]:.3f}")  # fmt: skip
    print(f"pooled median share (ssu_mem_eff): {pooled:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

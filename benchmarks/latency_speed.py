"""Speed of the calibrated latency paths (issue 14): `kvplan cost`, `kvplan plan --rate` and the library calls.

    python benchmarks/latency_speed.py [--runs 5]

(a) CLI wall time (median of runs) of `kvplan cost deepseek-v3 --gpu h200 --tp 8` at three lengths and of
    `kvplan plan llama-3.1-70b --rate 10 --ttft 1s --tpot 50ms` over H100, H200, B200;
(b) library: calibrated steps per second (`kvplan.latency.step_latency`), `serving.serve` calls per second,
    and one `slo.plan_for_targets` (process CPU time).
Target: well under a second for `cost` and `plan`. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COST = ["cost", "deepseek-v3", "--gpu", "h200", "--tp", "8", "--context", "4k,32k,128k"]
PLAN = [
    "plan",
    "llama-3.1-70b",
    "--rate",
    "10",
    "--input",
    "2k:4k",
    "--output",
    "512",
    "--ttft",
    "1s",
    "--tpot",
    "50ms",
]


def _wall(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "kvplan", *args], check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _library() -> dict[str, float]:
    from kvplan.capacity import setup
    from kvplan.catalog import load_bundled
    from kvplan.hardware import resolve_gpu
    from kvplan.latency import step_latency
    from kvplan.serving import Lengths, serve
    from kvplan.slo import Targets, plan_for_targets

    spec, gpu = load_bundled("deepseek-v3"), resolve_gpu("h200")
    n, t0 = 0, time.process_time()
    while time.process_time() - t0 < 1.0:
        step_latency(spec, gpu, 4096, phase="decode", batch=32, tp=8, kv_dtype_name="fp8", weights_dtype="fp8",
                     attention_flops=0)  # fmt: skip
        n += 1
    steps = n / (time.process_time() - t0)
    s = setup(load_bundled("llama-3.1-8b"), resolve_gpu("h100-sxm"), engine="vllm")
    n, t0 = 0, time.process_time()
    while time.process_time() - t0 < 1.0:
        serve(s, rate_rps=5, input_len=Lengths.of(2048, 4096), output_len=Lengths.of(512), with_max_rate=False)
        n += 1
    serves = n / (time.process_time() - t0)
    t0 = time.process_time()
    gpus = [resolve_gpu(g) for g in ("h100-sxm", "h200", "b200")]
    plan_for_targets(
        load_bundled("llama-3.1-70b"), gpus, Targets(10, Lengths.of(2048, 4096), Lengths.of(512), 1.0, 0.05)
    )
    return {"steps_per_s": steps, "serves_per_s": serves, "plan_cpu_s": time.process_time() - t0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    print(f"kvplan {' '.join(COST)}: {_wall(COST, args.runs):.3f} s wall (median of {args.runs})")
    print(f"kvplan {' '.join(PLAN)}: {_wall(PLAN, args.runs):.3f} s wall (median of {args.runs})")
    lib = _library()
    print(f"calibrated steps (DeepSeek-V3 TP8 decode): {lib['steps_per_s']:,.0f} /s")
    print(f"serve() at a rate (Llama 3.1 8B, H100): {lib['serves_per_s']:,.0f} /s")
    print(f"plan_for_targets (Llama 3.1 70B, 3 GPU types x TP 1-8): {lib['plan_cpu_s']:.3f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())

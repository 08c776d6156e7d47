"""Simulate TensorRT-LLM's attention-DP balancer rank by rank and compare its holds with kvplan.dp_balance's.

The simulation runs the source's rule iteration by iteration (tensorrt_llm/_torch/pyexecutor/py_executor.py
``PyExecutor._balance_adp_requests``, NVIDIA/TensorRT-LLM 1.x) on ``D`` ranks, without kvplan's two
simplifications:

* new requests go to the rank with the fewest active requests (waiting + decoding), never above the ceiling of all
  requests over the ranks (executor_request_queue.py ``_balance_requests_across_ranks``; ties by a seeded draw,
  where the engine looks at tokens), so ``D`` waiting prompts need not cover the ``D`` ranks;
* each rank's generation requests are its own decoding sequences, each decoding ``out_iters`` iterations after its
  release; a rank with no request at all gets the dummy generation request
  (``_pad_attention_dp_dummy_request``, when any rank has one), so only a rank whose requests are all waiting
  prompts lacks one.

Everything else is the model's: Poisson arrivals per iteration, a release carries every waiting prompt (no token
budget), iterations of equal length. Run: ``python benchmarks/dp_balance_sim.py`` (about 8 s).
"""

from __future__ import annotations

import argparse
import math
import random
from collections import deque

from kvplan.dp_balance import balance_hold

# (ranks, prompts an iteration, batching_wait_iters, timeout_iters, iterations a request decodes). The arrival rates
# are those of Qwen3-30B-A3B DP 4 on H200 at 10 %, 50 %, 90 % and 99 % of its sustainable rate
# (tests/test_dp_balance_wait.py), with the 512-token output; then 8 ranks, and a rate where few ranks decode.
CASES = [
    (4, 0.027, 10, 50, 512),
    (4, 0.27, 10, 50, 512),
    (4, 1.41, 10, 50, 512),
    (4, 3.11, 10, 50, 512),
    (4, 0.27, 0, 50, 512),
    (4, 3.11, 0, 50, 512),
    (8, 0.27, 10, 50, 512),
    (8, 3.0, 0, 60, 512),
    (4, 0.004, 10, 50, 512),
]


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, prod = math.exp(-mean), 0, rng.random()
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k


def simulate(ranks: int, a: float, w: int, t: int, out_iters: int, *, iters: int, seed: int = 1) -> list[int]:
    """The iterations each prompt waited (first seen to released), after a warm-up of ``2 out_iters`` iterations."""
    rng = random.Random(seed)
    waiting = [deque() for _ in range(ranks)]  # iteration each waiting prompt was first seen
    decoding = [deque() for _ in range(ranks)]  # iteration each decoding sequence finishes
    waits: list[int] = []
    timeout_count = batching_count = 0
    warm = 2 * out_iters
    for now in range(iters + warm):
        for rank in range(ranks):
            while decoding[rank] and decoding[rank][0] <= now:
                decoding[rank].popleft()
        new = _poisson(rng, a)
        active = [len(waiting[r]) + len(decoding[r]) for r in range(ranks)]
        cap = -(-(sum(active) + new) // ranks)
        for _ in range(new):
            low = min(active)
            choices = [r for r in range(ranks) if active[r] == low and active[r] < cap]
            rank = rng.choice(choices) if choices else min(range(ranks), key=active.__getitem__)
            waiting[rank].append(now)
            active[rank] += 1
        any_active = any(active)
        have_ctx = all(waiting[r] for r in range(ranks))
        # a rank's generation requests: its decodes, or the dummy one when it has no request at all
        have_gen = all(decoding[r] or (any_active and not waiting[r]) for r in range(ranks))
        release = True
        if have_ctx:
            timeout_count = 0
            if have_gen:
                if batching_count < w:
                    batching_count += 1
                    release = False
                else:
                    batching_count = 0
        else:
            timeout_count += 1
            release = False
            if timeout_count >= t or not have_gen:
                timeout_count = 0
                release = True
        if release:
            for rank in range(ranks):
                while waiting[rank]:
                    seen = waiting[rank].popleft()
                    if seen >= warm:
                        waits.append(now - seen)
                    decoding[rank].append(now + out_iters)
    return waits


def _quantile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=60000, help="iterations simulated per case")
    args = parser.parse_args()
    print("hold in iterations, mean and p90: even spread | random spread (kvplan.serving's) | simulated")
    print("ranks  A/iter   W    T |    even  p90 | random  p90 | simulated  p90  prompts")
    logs = []
    for ranks, a, w, t, out_iters in CASES:
        kw = dict(arrivals_per_iter=a, ranks=ranks, decoding=a * out_iters, timeout_iters=t, batching_wait_iters=w)
        hold, spread = balance_hold(**kw), balance_hold(**kw, random_spread=True)
        waits = simulate(ranks, a, w, t, out_iters, iters=args.iters)
        mean = sum(waits) / len(waits)
        print(f"{ranks:5d}  {a:6.3f}  {w:2d}  {t:3d} | {hold.mean_iters:7.2f}  {hold.at(0.9):3d} | "
              f"{spread.mean_iters:6.2f}  {spread.at(0.9):3d} | {mean:9.2f}  {_quantile(waits, 0.9):3d}  "
              f"{len(waits):7d}")  # fmt: skip
        logs.append((math.log(hold.mean_iters / mean), math.log(spread.mean_iters / mean)))
    for name, k in (("even", 0), ("random", 1)):
        errs = sorted(abs(x[k]) for x in logs)
        print(f"{name}: mean hold |ln(model / simulated)| median {errs[len(errs) // 2]:.2f}, worst {errs[-1]:.2f}")


if __name__ == "__main__":
    main()

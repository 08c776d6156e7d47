"""A discrete-event check of kvplan's prompt queue under pipeline parallelism (kvplan.serving._slots_mean_step).

TensorRT-LLM with ``pp`` stages schedules each micro-batch from the requests not in flight, so a long prompt takes
one chunk per pipeline cycle in one micro-batch slot and prompts prefilling together ride in different slots
(kvplan.serving's docstring cites the source). This script simulates exactly that, cycle by cycle: prompts arrive
at Poisson times, wait first come first served for a free slot, and hold it for ``ceil(length / chunk)`` cycles;
a cycle with ``j`` busy slots lasts ``cycles[j]``. It prints the simulated mean cycle beside kvplan's analytic one
(:func:`kvplan.serving.queue_mean_cycle`, Erlang's time-average states at the simulated chunks per cycle), the
per-cycle Erlang states (the first version of the rule) and the lone-chunk rule kvplan used before.

The case is NVIDIA's MLPerf v5.0 Llama-3.1-405B Server on B200 (TP2 PP2, ``max_num_tokens`` 1024): kvplan's cycles
at 37 decodes (the log's operating point), computed here, with 1,024 - 18.5 tokens of room per micro-batch, and the
benchmark set's prompt lengths drawn from a gamma distribution with its mean and standard deviation
(``mlperf_datasets`` in benchmarks/data/published_throughput.json; the shape is an assumption, stated).

``--tpot``: each request's own TPOT there (the cycles its life spans after its prompt's last chunk, the batch held at
37 decodes) at the p90 and p99 against :class:`kvplan.tpot_tail.Life` on the same cycles (:func:`tpot_lines`).

``python benchmarks/pp_queue_sim.py [--seconds 20000] [--tpot]``
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from collections import deque
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "published_throughput.json"


def simulate(rate: float, lengths: list[int], *, chunk: float, cycles: tuple[float, ...], seconds: float,
             seed: int = 1, trace: dict | None = None) -> tuple[float, float]:  # fmt: skip
    """(mean cycle, mean busy slots per cycle) of ``len(cycles) - 1`` slots serving Poisson arrivals at ``rate``
    with prompt lengths drawn from ``lengths``, over ``seconds`` of simulated time. ``trace``: filled with the
    cycles' ``durations``, the cycles in which a prompt's last chunk ran (``done``, one entry a prompt) and each such
    prompt's TTFT, from its arrival to the end of that cycle (``ttft``, in the same order)."""
    rng = random.Random(seed)
    slots = [0] * (len(cycles) - 1)
    born = [0.0] * len(slots)  # the arrival time of the prompt each slot holds
    waiting: deque[tuple[int, float]] = deque()
    now, arrival = 0.0, rng.expovariate(rate)
    durations, busy, done, ttft = [], [], [], []
    while now < seconds:
        while arrival <= now:
            waiting.append((math.ceil(rng.choice(lengths) / chunk), arrival))
            arrival += rng.expovariate(rate)
        for i, left in enumerate(slots):
            if left == 0 and waiting:
                slots[i], born[i] = waiting.popleft()
        j = sum(1 for left in slots if left > 0)
        last = [i for i, left in enumerate(slots) if left == 1]
        done += [len(durations)] * len(last)
        ttft += [now + cycles[j] - born[i] for i in last]
        durations.append(cycles[j])
        busy.append(j)
        slots = [max(0, left - 1) for left in slots]
        now += cycles[j]
    if trace is not None:
        trace.update(durations=durations, done=done, ttft=ttft)
    return statistics.fmean(durations), statistics.fmean(busy)


def lives(trace: dict, steps: int, *, skip: int = 1000) -> list[float]:
    """Each request's TPOT from a :func:`simulate` trace: the mean of the ``steps`` cycles after its prompt's last
    chunk (its decodes, one token a cycle; the batch held fixed), the first ``skip`` cycles left out and the lives
    that run past the trace dropped."""
    durations = trace["durations"]
    prefix = [0.0]
    for d in durations:
        prefix.append(prefix[-1] + d)
    return [(prefix[k + 1 + steps] - prefix[k + 1]) / steps for k in trace["done"]
            if skip <= k and k + 1 + steps <= len(durations)]  # fmt: skip


def gamma_lengths(mean: float, sd: float, *, count: int = 20000, seed: int = 7) -> list[int]:
    """``count`` prompt lengths from a gamma distribution of that mean and standard deviation (at least 1 token)."""
    rng = random.Random(seed)
    shape, scale = (mean / sd) ** 2, sd * sd / mean
    return [max(1, round(rng.gammavariate(shape, scale))) for _ in range(count)]


def b200_case() -> tuple[float, tuple[float, ...], list[int]]:
    """The v5.0 B200 TP2 PP2 Server row's room per micro-batch, kvplan's cycles at 37 decodes, the set's lengths."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import published_compare as pc

    from kvplan.serving import _chunk_cycles, _step

    data = json.loads(DATA.read_text())
    row = next(r for r in data["mlperf"] if (r["source"], r["gpu"], r["scenario"], r["model"])
               == ("mlperf-5.0", "b200", "Server", "llama-3.1-405b"))  # fmt: skip
    s = pc._mlperf_setup(row)
    ds = data["mlperf_datasets"][row["dataset"]]
    n, room = 37.0, (1024 * 2 - 37.0) / 2
    context = round(ds["input_mean"]) + round(row["osl"]) // 2
    cycles = (_step(s, n=n, p=0, context=context),
              *_chunk_cycles(s, n=n, chunk=room, context=context, prefix=0, ep=False, slots=2))  # fmt: skip
    return room, cycles, gamma_lengths(ds["input_mean"], ds["input_sd"])


def tpot_lines(seconds: float) -> list[str]:
    """``--tpot``: per rate, the simulated requests' own TPOT (:func:`lives`: the prompt work their lives meet, the
    batch held at 37 decodes) at the mean, p90 and p99 against :class:`kvplan.tpot_tail.Life` on the same cycles, with
    no slope (the batch held), kvplan's mean cycle at the simulated chunks per cycle (:func:`queue_mean_cycle`), the
    prompt work one more arrival adds, its secant over ``+- 1 / sqrt(N)`` of the chunks (as kvplan.serving ``_life``),
    and the prompts queued behind the request at its first token (:func:`kvplan.serving.queued_backlog`, as
    kvplan.serving ``_own_life`` takes them: the arrivals in the mean TTFT, each the mean cycle's prompt work per
    arrival ``(t - d) / (rate t)``), which start its life: their work lengthens the life's mean by ``W0 / (1 - rho)``
    and their spread starts the busy period. The queue's state is the simulation's (its chunks per cycle and its mean
    TTFT, arrival to the end of the last chunk's cycle); the life's model is kvplan's."""
    from kvplan.serving import queue_mean_cycle, queued_backlog
    from kvplan.tpot_tail import Life

    room, cycles, lengths = b200_case()
    steps = 655  # the row's mean output, 655.7 tokens, less the first
    skip = 1000  # cycles left out at the start (as :func:`lives`)
    chunks = statistics.fmean(math.ceil(x / room) for x in lengths)  # chunks a prompt takes
    scv = statistics.pvariance(lengths) / statistics.fmean(lengths) ** 2
    out = []
    for rate in (0.3, 0.45, 0.55, 0.645):
        trace: dict = {}
        _, busy = simulate(rate, lengths, chunk=room, cycles=cycles, seconds=seconds, trace=trace)
        tpots = sorted(lives(trace, steps, skip=skip))
        ttft = statistics.fmean(x for k, x in zip(trace["done"], trace["ttft"], strict=True) if k >= skip)
        mean = queue_mean_cycle(busy, cycles)
        arrivals = rate * steps * mean
        delta = min(0.5, 1 / math.sqrt(arrivals))
        margin = chunks * (queue_mean_cycle(busy * (1 + delta), cycles)
                           - queue_mean_cycle(busy * (1 - delta), cycles)) / (2 * delta * busy)  # fmt: skip
        share = (mean - cycles[0]) / mean
        backlog, backlog_var = queued_backlog(rate * ttft, (mean - cycles[0]) / (rate * mean), share=share, scv=scv)
        life = Life(steps=steps, mean_step_s=mean + backlog / steps, decode_step_s=cycles[0], slope_s=0.0, others=0.0,
                    rate_rps=rate, prompt_scv=scv, prompt_margin_s=margin, backlog_var_s2=backlog_var)  # fmt: skip
        q = [tpots[math.ceil(p * len(tpots)) - 1] * 1e3 for p in (0.9, 0.99)]
        ours = (life.mean_step_s, life.tpot_at(0.9), life.tpot_at(0.99))
        out.append(f"rate {rate:.3f} req/s, {len(tpots)} lives: TPOT mean / p90 / p99 simulated "
                   f"{statistics.fmean(tpots) * 1e3:.1f} / {q[0]:.1f} / {q[1]:.1f} ms, kvplan "
                   + " / ".join(f"{x * 1e3:.1f}" for x in ours) + " ms")  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    from kvplan.serving import erlang_states, queue_mean_cycle

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20000.0)
    ap.add_argument("--tpot", action="store_true",
                    help="also each request's TPOT (the cycles its life spans, the batch held) at p90 and p99 against "
                    "kvplan.tpot_tail's on the same cycles")  # fmt: skip
    args = ap.parse_args(argv)
    if args.tpot:
        print("\n".join(tpot_lines(args.seconds)))
        return 0
    room, cycles, lengths = b200_case()
    print("cycles (ms) with 0, 1, 2 prompts in prefill: " + ", ".join(f"{c * 1e3:.1f}" for c in cycles))
    for rate in (0.3, 0.45, 0.55, 0.645):
        sim, busy = simulate(rate, lengths, chunk=room, cycles=cycles, seconds=args.seconds)
        per_cycle = sum(share * c for share, c in zip(erlang_states(busy, 2), cycles, strict=True))
        lone = (1 - busy) * cycles[0] + busy * cycles[1] if busy < 1 else cycles[1]
        print(f"rate {rate:.3f} req/s: {busy:.3f} chunks per cycle; mean cycle simulated {sim * 1e3:.1f} ms, "
              f"kvplan {queue_mean_cycle(busy, cycles) * 1e3:.1f} ms (Erlang per cycle {per_cycle * 1e3:.1f}, "
              f"lone chunk {lone * 1e3:.1f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A step-by-step check of kvplan.serving's steady state against a simulated server under Poisson arrivals.

kvplan.serving solves a mean-value fixed point (Little's law, the mean step, an M/D/1 wait for the prompts). This
script runs the scheduler itself, step by step, on kvplan's own step times (:func:`kvplan.serving._step`): requests
of fixed lengths arrive at Poisson times (seeded), and each step is laid out as the engine lays it out
(:meth:`kvplan.engines.base.Engine.mixes_steps`):

* mixed (vLLM V1, SGLang ``--enable-mixed-chunk``): every running request decodes one token and the waiting prompts,
  in arrival order, fill what the token budget leaves, the last one as a chunk;
* apart (SGLang's default): a prompt-only step whenever prompts wait, the whole budget packed in arrival order (the
  prompt that does not fit entering as a chunk, continued first in the next prompt step), else a decode step of
  every running request.

At most the replica's sequence bound runs (``max_num_seqs`` or the KV pool at the mean context,
``kvplan.serving._limits``, the bound the fixed point uses). A request's first token comes at the end of the step
its prompt completes in; its TPOT is its first to last token over ``O - 1``. The first ``warmup`` requests are left
out of the statistics. Steps price their prompt tokens as one chunk (as kvplan.serving does), the decodes at the
running requests' mean context rounded to 64 tokens.

It prints, per rate (a fraction of kvplan's ``max_rate``), the simulated mean batch, mean TPOT, mean and p90 TTFT
and throughput beside :func:`kvplan.serving.serve`'s, for each layout.

``--retract``: SGLang's own admission and retraction instead of a sequence bound (:func:`simulate_retract`: the
scheduler of ``published_compare.RetractRun``, token by token, admitting against its reserve for the running
requests' outputs to come and retracting on a shortfall) on replicas whose KV pool binds, at rates up to past
saturation: the simulated mean batch, TPOT, retractions and the reserve's ratio beside ``serve()`` and the KV bound
kvplan.serving puts on the batch (``_limits``), to check that bound (the reserve at its ratio's floor).

``--tpot``: each request's own TPOT (first to last token over ``O - 1``) at the mean, p90 and p99 over the requests
beside ``serve()``'s (:mod:`kvplan.tpot_tail`), at :data:`TPOT_FRACTIONS` of the rate, and the median and worst
|ln(kvplan / sim)| of the p90 and p99 over the rows.

``--tpot --mlperf``: the MLPerf Server runs with a log, at the log's rate: the log's mean and p99 TPOT beside the
simulation on kvplan's steps (lengths drawn per request, and fixed) and ``serve()`` (:func:`compare_mlperf_tpot`).

``--steady --mlperf``: the same runs' fixed point at the log's rate (fixed lengths) beside the simulation's steps:
the fixed point's gain and the gap between kvplan's step at the simulated means and the mean of the simulated steps
(:func:`compare_mlperf_steady`).

``--graph``: the MLPerf DeepSeek-R1 Server run with its Offline step residual held, at rates around its batch's
CUDA-graph size (:func:`compare_graph_size`): the simulated requests' mean and p99 TPOT beside ``serve()``'s.

``--balance``: the attention-DP cases under TensorRT-LLM's balancer (:func:`compare_balance`): the simulation running
the source's rule beside ``serve()``, and the busiest rank's prompts per release.

``python benchmarks/serving_sim.py [--requests 3000] [--dp | --retract | --graph | --balance | --tpot [--dp |
--mlperf] | --steady --mlperf]``
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import statistics
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

CONTEXT_BUCKET = 64  # tokens: decodes priced at their mean context rounded to this (as published_compare's run)


@dataclass
class SimResult:
    batch: float  # time-average requests decoding
    tpot_s: float
    ttft_s: float
    ttft_p90_s: float
    output_tokens_per_s: float
    tpot_p90_s: float = 0.0  # over the requests, each its own first to last token over O - 1
    tpot_p99_s: float = 0.0


def quantile(samples: list[float], q: float) -> float:
    """The ``q`` quantile of ``samples`` by nearest rank (the sim's TTFT p90 rule)."""
    ordered = sorted(samples)
    return ordered[math.ceil(q * len(ordered)) - 1]


def simulate(s, *, rate_rps: float, isl: int, osl: int, requests: int, budget: int, seq_cap: float,  # noqa: ANN001
             warmup: int = 200, seed: int = 1, dispatch: str = "round_robin", lengths=None,
             trace: list | None = None, releases: list | None = None) -> SimResult:  # fmt: skip
    """One replica of setup ``s`` serving ``requests`` Poisson arrivals at ``rate_rps`` (module docstring). With
    ``s.dp`` attention-DP ranks each rank schedules its own requests (dealt by ``dispatch``: :func:`_deal`, and
    ``trtllm`` each iteration's arrivals at once, :func:`_deal_fewest_active`) against
    its share of ``seq_cap``, and an iteration runs every rank's batch together, priced as
    :func:`kvplan.serving._step` prices a DP step: the decodes over all ranks, the busiest rank's prompt tokens, all
    ranks' prompt tokens for the shared layers. ``lengths``: a function of a ``random.Random`` giving each request's
    (prompt, output) tokens (drawn from their own generator, seeded ``seed + 1``, so the arrival times stay the
    fixed-length run's); None: every request ``isl`` / ``osl``. ``trace``: a list that gets each step's (decodes,
    prompt tokens of the busiest rank, decode context, step time) from the ``warmup``-th arrival to the last (the
    drain after it left out). ``releases``: a list that gets, for each step in which the attention-DP balancer
    (:func:`_balancer_releases`, where the setup has it) lets prompts go, (the prompts that start, the most on one
    rank), from the ``warmup``-th arrival on."""
    from kvplan.serving import _step

    rng = random.Random(seed)
    mixed = s.engine.mixes_steps(s.settings)
    arrivals = deque()
    t = 0.0
    for _ in range(requests):
        t += rng.expovariate(rate_rps)
        arrivals.append(t)
    draw = random.Random(seed + 1)
    sizes = [lengths(draw) if lengths else (isl, osl) for _ in range(requests)]
    ranks = s.dp
    # per rank: [prompt tokens left, arrival time, index, prompt tokens]
    waiting: list[deque] = [deque() for _ in range(ranks)]
    # per rank: [tokens generated, first-token time, index, output tokens, prompt tokens]
    decoding: list[list] = [[] for _ in range(ranks)]
    clock, busy_area, first_clock = 0.0, 0.0, None
    ttfts: list[float] = []
    tpots: list[float] = []
    index = 0
    done = produced = 0
    cap = max(1, math.floor(seq_cap / ranks))
    snapshot, snapshot_clock = [[0, 0] for _ in range(ranks)], -1.0
    balance = s.engine.dp_balance_iters(s.settings) if ranks > 1 and dispatch == "trtllm" else None
    counters = [0, 0]  # the balancer's timeout and batching-wait counters (_balancer_releases)
    while done < requests:
        if dispatch == "trtllm":  # the executor gathers every rank's live counts each iteration and deals them at once
            fresh = []
            while arrivals and arrivals[0] <= clock:
                fresh.append((index, arrivals.popleft()))
                index += 1
            active = [(sum(w[3] for w in waiting[r]) + sum(d[4] for d in decoding[r]),
                       len(waiting[r]) + len(decoding[r])) for r in range(ranks)]  # fmt: skip
            for position, rank in _deal_fewest_active([sizes[i][0] for i, _ in fresh], active):
                idx, sent = fresh[position]
                waiting[rank].append([sizes[idx][0], sent, idx, sizes[idx][0]])
        else:
            if clock - snapshot_clock >= VLLM_STATS_INTERVAL_S:
                snapshot, snapshot_clock = [[len(waiting[r]), len(decoding[r])] for r in range(ranks)], clock
            while arrivals and arrivals[0] <= clock:
                prompt, rank = sizes[index][0], _deal(dispatch, index=index, counts=snapshot)
                waiting[rank].append([prompt, arrivals.popleft(), index, prompt])
                index += 1
        if not any(waiting) and not any(decoding):
            clock = arrivals[0]
            continue
        held = balance is not None and not _balancer_releases(balance, counters, waiting, decoding, cap=cap)
        plans = [_rank_plan(deque() if held else waiting[r], len(decoding[r]), budget=budget, cap=cap, mixed=mixed)
                 for r in range(ranks)]  # fmt: skip
        n_all = sum(len(d) for d in decoding)
        decodes = sum(pl[1] for pl in plans)
        if releases is not None and balance is not None and not held and index > warmup:
            started = [pl[4] - (1 if pl[2] else 0) for pl in plans]  # prompts whose first tokens this step carries
            if sum(started):
                releases.append((sum(started), max(started)))
        busiest = max(range(ranks), key=lambda r: plans[r][0])
        chunk, prefix = plans[busiest][0], plans[busiest][2]
        # several prompts' tokens from the start of each: each attends to its own (kvplan.serving prices them so; on
        # the busiest of several ranks too since stop 29)
        prompts = float(plans[busiest][4]) if not prefix and plans[busiest][4] > 1 else 1.0
        p_all = sum(pl[0] for pl in plans)
        mean_generated = sum(d[0] for dec in decoding for d in dec) / n_all if n_all else 0
        mean_prompt = round(sum(d[4] for dec in decoding for d in dec) / n_all) if n_all and lengths else isl
        context = mean_prompt + round(mean_generated / CONTEXT_BUCKET) * CONTEXT_BUCKET
        step = _step(s, n=float(decodes), p=float(chunk), context=context, prefix=prefix,
                     p_all=float(p_all) if ranks > 1 else None, prompts=prompts,
                     rank_seqs=float(max(pl[1] for pl in plans)) if ranks > 1 and not p_all else None)  # fmt: skip
        if first_clock is None and index > warmup:
            first_clock = clock
        if trace is not None and first_clock is not None and arrivals:  # the steady part, not the drain
            trace.append((decodes, chunk, context, step))
        if first_clock is not None:
            busy_area += n_all * step
        clock += step
        for r in range(ranks):
            for d in decoding[r][: plans[r][1]]:
                d[0] += 1
            for _ in range(plans[r][3]):
                _, sent, idx, prompt = waiting[r].popleft()
                if idx >= warmup:
                    ttfts.append(clock - sent)
                decoding[r].append([1, clock, idx, sizes[idx][1], prompt])
            finished = [d for d in decoding[r] if d[0] >= d[3]]
            tpots += [(clock - d[1]) / (d[3] - 1) for d in finished if d[3] > 1 and d[2] >= warmup]
            produced += sum(d[3] for d in finished if d[3] > 1 and d[2] >= warmup)
            decoding[r] = [d for d in decoding[r] if d[0] < d[3]]
            done += len(finished)
    span = clock - (first_clock or 0.0)
    return SimResult(busy_area / span, statistics.fmean(tpots), statistics.fmean(ttfts), quantile(ttfts, 0.9),
                     produced / span, quantile(tpots, 0.9), quantile(tpots, 0.99))  # fmt: skip


@dataclass
class RetractResult:
    batch: float  # time-average requests running (decoding)
    tpot_s: float
    ttft_s: float
    output_tokens_per_s: float
    retractions: int
    ratio: float  # the reserve's ratio, time-averaged over the decode steps
    floor_share: float  # share of decode steps run at the ratio's floor


def simulate_retract(s, *, rate_rps: float, isl: int, osl: int, requests: int, budget: int,  # noqa: ANN001
                     warmup: int = 200, seed: int = 1) -> RetractResult:  # fmt: skip
    """One replica of setup ``s`` (SGLang, steps apart) serving ``requests`` Poisson arrivals at ``rate_rps`` with
    SGLang's admission and retraction (``published_compare.RetractRun``; no sequence bound beyond ``max_num_seqs``),
    the same seeded arrivals as :func:`simulate`. Statistics from the ``warmup``-th arrival on; requests still
    running when the last one finishes are left out."""
    from published_compare import Retractable, RetractRun

    rng = random.Random(seed)
    arrivals: deque = deque()
    t = 0.0
    for i in range(requests):
        t += rng.expovariate(rate_rps)
        arrivals.append((t, i))
    run = RetractRun(s, budget=budget)
    index: dict[int, int] = {}
    clock, area, first_clock, done = 0.0, 0.0, None, 0
    ttfts: list[float] = []
    tpots: list[float] = []
    ratio_area, decode_steps, at_floor = 0.0, 0, 0
    floor = run.floor
    while done < requests:
        while arrivals and arrivals[0][0] <= clock:
            sent, i = arrivals.popleft()
            q = Retractable(sent, isl, osl)
            index[id(q)] = i
            run.waiting.append(q)
        kind, batch = run.step(clock)
        if kind == "idle":
            clock = arrivals[0][0]
            continue
        step = run.price(kind, batch)
        if first_clock is None and arrivals and arrivals[0][1] > warmup:
            first_clock = clock
        if first_clock is not None:
            area += len(run.running) * step
            if kind == "decode":
                ratio_area += run.ratio
                decode_steps += 1
                at_floor += run.ratio <= floor
        clock += step
        for q in run.finish(kind, batch, clock):
            done += 1
            if index[id(q)] >= warmup:
                ttfts.append(q.first_s - q.sent_s)
                tpots += [(clock - q.first_s) / (osl - 1)] if osl > 1 else []
    span, steps = clock - (first_clock or 0.0), max(decode_steps, 1)
    return RetractResult(area / span, statistics.fmean(tpots), statistics.fmean(ttfts), len(tpots) * osl / span,
                         run.retractions, ratio_area / steps, at_floor / steps)  # fmt: skip


VLLM_STATS_INTERVAL_S = 0.1  # vLLM DPCoordinator publishes each rank's [waiting, running] every 100 ms
# (vllm/v1/engine/coordinator.py, stats_update_interval_ms default 100)


def _deal(dispatch: str, *, index: int, counts: list[list[int]]) -> int:
    """The attention-DP rank request ``index`` goes to. ``round_robin``: SGLang's default
    (python/sglang/srt/server_args.py ``load_balance_method: str = "round_robin"``; data_parallel_controller.py
    deals in turn). ``vllm``: vLLM V1's DPLBAsyncMPClient.get_core_engine_for_request
    (vllm/v1/engine/core_client.py): the lowest ``waiting * 4 + running`` over the coordinator's last snapshot
    ``counts``, ties to the first rank scanned, then the chosen rank's waiting count raised by one at once (one
    client) until the next snapshot. TensorRT-LLM deals a whole iteration's arrivals at once
    (:func:`_deal_fewest_active`)."""
    if dispatch == "round_robin":
        return index % len(counts)
    if dispatch != "vllm":
        raise ValueError(f"dispatch {dispatch!r}: round_robin, vllm or trtllm")
    rank = min(range(len(counts)), key=lambda r: (counts[r][0] * 4 + counts[r][1], r))
    counts[rank][0] += 1
    return rank


def _deal_fewest_active(prompts: list[int], active: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """TensorRT-LLM's attention-DP dealing of one iteration's new requests (``prompts``, their prompt tokens, in
    arrival order) over ranks with ``active`` (prompt tokens, requests) each (every request dealt to the rank and not
    finished): ``(position in prompts, rank)`` in the order dealt, which is the order the rank's scheduler sees them.
    tensorrt_llm/_torch/pyexecutor/executor_request_queue.py ``_schedule_attention_dp_requests`` and
    ``_balance_requests_across_ranks`` (the stored 1.x copies; tensorrt_llm/_torch/pyexecutor/scheduler/
    adp_router.py ``DefaultADPRouter.route_requests`` @62b8daa4 the same): the cap is the ceiling of all active + new
    requests over the ranks, at least the busiest rank's count; the ranks under it enter a heap keyed on (active
    prompt tokens, active requests, rank); the new requests, longest prompt first (a stable sort), each go to the top
    rank, which re-enters the heap with the request's tokens and one more request while it stays under the cap."""
    ranks = len(active)
    cap = max(-(-(sum(n for _, n in active) + len(prompts)) // ranks), max(n for _, n in active))
    heap = [(tokens, n, rank) for rank, (tokens, n) in enumerate(active) if n < cap]
    heapq.heapify(heap)
    dealt = []
    for position in sorted(range(len(prompts)), key=lambda i: -prompts[i]):
        tokens, n, rank = heapq.heappop(heap)
        dealt.append((position, rank))
        if n + 1 < cap:
            heapq.heappush(heap, (tokens + prompts[position], n + 1, rank))
    return dealt


def _balancer_releases(iters: tuple[int, int], counters: list[int], waiting: list[deque], decoding: list[list],
                       *, cap: int) -> bool:  # fmt: skip
    """TensorRT-LLM's attention-DP balancer (``attention_dp_config.enable_balance``) for one iteration: True where the
    ranks' context requests go this iteration, False where every rank's are held; ``iters`` (timeout_iters,
    batching_wait_iters), ``counters`` the two counters, updated in place. tensorrt_llm/_torch/pyexecutor/
    py_executor.py ``PyExecutor._balance_adp_requests`` (the 1.x copies read; :mod:`kvplan.dp_balance` prices the
    same rule): every rank with a context request and room (``num_gen < max_batch_size``) resets the timeout
    counter, and where every rank also has a generation request the batching-wait counter holds them until it has
    counted ``batching_wait_iters``; otherwise the timeout counter counts every iteration, prompt or none, and lets
    them go when it reaches ``timeout_iters`` or where some rank has no generation request."""
    timeout, wait = iters
    all_gen = all(decoding)
    if all(waiting) and all(len(d) < cap for d in decoding):
        counters[0] = 0
        if not all_gen:
            return True
        if counters[1] < wait:
            counters[1] += 1
            return False
        counters[1] = 0
        return True
    counters[0] += 1
    if counters[0] >= timeout or not all_gen:
        counters[0] = 0
        return True
    return False


def _rank_plan(waiting: deque, n: int, *, budget: int, cap: int, mixed: bool) -> tuple[int, int, int, int, int]:
    """One rank's share of an iteration: (prompt tokens, decodes, the first prompt's computed tokens, prompts that
    complete, prompts the tokens come from), taking the tokens from ``waiting`` (module docstring's layouts)."""
    if not mixed and not waiting:
        return 0, n, 0, 0, 0
    room = budget - n if mixed else budget
    chunk, first_prefix, completed, pieces = 0, 0, 0, 0
    for i, req in enumerate(waiting):
        if room <= 0 or n + i >= cap:
            break
        take = min(room, req[0])
        if i == 0:
            first_prefix = req[3] - req[0]
        chunk, room, pieces = chunk + take, room - take, pieces + 1
        req[0] -= take
        completed += req[0] == 0
    return chunk, (n if mixed or not chunk else 0), first_prefix, completed, pieces


CASES = (  # (model, GPU, TP, attention-DP ranks, weights, prompt, output)
    ("llama-3.1-8b", "h100-sxm", 1, 1, None, 2048, 256),
    ("llama-3.1-8b", "h100-sxm", 1, 1, None, 512, 256),
    ("llama-3.1-70b", "h200", 4, 1, None, 4000, 200),
)
DP_CASES = (  # attention-DP ranks with the experts split over them (EP)
    ("qwen3-30b-a3b", "h100-sxm", 1, 4, None, 2048, 256),
    ("deepseek-v3", "h200", 1, 8, "fp8", 2048, 512),
)
# prompts past a rank's token budget: a prompt's later chunks stay on its rank, in the steps that follow
DP_LONG_CASES = (("qwen3-30b-a3b", "h100-sxm", 1, 4, None, 20000, 256),)
FRACTIONS = (0.3, 0.6, 0.85)


# The SGLang rule set the cases run under: sglang@0.5, the release whose admission and retraction kvplan read (0.5.7)
# and whose memory fraction the cases were chosen with; 0.5.23's larger reserve (`sglang`: chunk 4,096 and the prefill
# CUDA graph on a 24 GB L4) leaves the L4 retraction case almost no KV pool.
SGLANG = "sglang@0.5"


def _layouts(dp: int) -> tuple:
    """(label, engine, settings keywords, dispatch) per layout: SGLang apart and mixed (dealt in turn); with
    attention-DP ranks vLLM and TensorRT-LLM too (both mix prompts and decodes in a step), each dealt as it deals."""
    sglang = (("apart", SGLANG, {}, "round_robin"), ("mixed", SGLANG, {"mixed_chunk": True}, "round_robin"))
    if dp == 1:
        return sglang
    return (*sglang, ("vllm", "vllm", {}, "vllm"), ("trtllm", "trtllm", {}, "trtllm"))


def _case_runs(requests: int, *, cases: tuple, fractions: tuple, warmup: int, dispatch: str | None):  # noqa: ANN202
    """Each case's layouts (:func:`_layouts`) at each of ``fractions`` of kvplan's sustainable rate, the requests dealt
    as each layout's engine deals them unless ``dispatch`` names one rule for all: (case label, layout, rate, fraction,
    ``serve()``'s result, the simulation's). ``serve()`` runs on the setup's steps alone
    (:func:`kvplan.serving.steps_only`), as the simulation does, in every table: the engine's API server
    (:attr:`kvplan.engines.base.Engine.front_end`) adds to ``serve()``'s TTFT and caps its rate, and the simulation
    has none. (Until stop 28 the ``--tpot`` table kept the server; none of its rows differed: SGLang 0.5's server
    takes ~800 requests a second, far above these cases' rates, and the TPOT does not see the server's wait.)"""
    from kvplan.capacity import setup
    from kvplan.engines import Settings
    from kvplan.serving import DEFAULT_TOKEN_BUDGET, Lengths, _limits, max_rate, serve, steps_only

    for model, gpu, tp, dp, weights, isl, osl in cases:
        for layout, engine, keywords, dealt in _layouts(dp):
            s = steps_only(setup(model, gpu, engine=engine, tp=tp, dp=dp, ep=dp > 1, weights_dtype=weights,
                                 settings=Settings(**keywords)))  # fmt: skip
            inp, out = Lengths.of(isl), Lengths.of(osl)
            top = max_rate(s, input_len=inp, output_len=out)
            budget = s.max_num_batched_tokens or DEFAULT_TOKEN_BUDGET
            cap = _limits(s, inp, out)[0]
            split = f"TP{tp}" if dp == 1 else f"DP{dp} EP{dp}"
            for frac in fractions:
                rate = frac * top
                r = serve(s, rate_rps=rate, input_len=inp, output_len=out, with_max_rate=False)
                sim = simulate(s, rate_rps=rate, isl=isl, osl=osl, requests=requests, budget=budget, seq_cap=cap,
                               warmup=warmup, dispatch=dispatch or dealt)  # fmt: skip
                yield f"{model} {gpu} {split} {isl}/{osl}", layout, rate, frac, r, sim


def compare(requests: int, *, cases: tuple = CASES, warmup: int = 200, dispatch: str | None = None) -> list[str]:
    """The table: each case's layouts (:func:`_layouts`) at each of :data:`FRACTIONS` of kvplan's sustainable rate,
    the requests dealt as each layout's engine deals them unless ``dispatch`` names one rule for all."""
    head = ("case", "layout", "rate (x max)", "batch sim / kvplan", "TPOT ms sim / kvplan", "TTFT ms sim / kvplan",
            "TTFT p90 ms sim / kvplan", "tok/s sim")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    pairs: dict[str, list[tuple[float, ...]]] = {}  # layout -> (sim, kvplan) batch, TPOT, TTFT per row
    for case, layout, rate, frac, r, sim in _case_runs(requests, cases=cases, fractions=FRACTIONS, warmup=warmup,
                                                       dispatch=dispatch):  # fmt: skip
        cells = (case, layout, f"{rate:.2f} (x{frac})",
                 f"{sim.batch:.1f} / {r.batch:.1f}", f"{sim.tpot_s * 1e3:.2f} / {r.tpot_mean_s * 1e3:.2f}",
                 f"{sim.ttft_s * 1e3:.1f} / {r.ttft_mean_s * 1e3:.1f}",
                 f"{sim.ttft_p90_s * 1e3:.1f} / {r.ttft_p90_s * 1e3:.1f}",
                 f"{sim.output_tokens_per_s:.0f}")  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
        pairs.setdefault(layout, []).append((sim.batch, r.batch, sim.tpot_s, r.tpot_mean_s, sim.ttft_s,
                                             r.ttft_mean_s))  # fmt: skip
    return [*lines, "", *ln_summary(pairs)]


def ln_summary(pairs: dict[str, list[tuple[float, ...]]]) -> list[str]:
    """Median and worst ``|ln(kvplan / simulation)|`` of the batch, mean TPOT and mean TTFT, per layout and over all
    rows (``pairs``: layout -> rows of (sim, kvplan) batch, TPOT, TTFT)."""
    groups = [*pairs.items(), ("all", [row for rows in pairs.values() for row in rows])]
    out = ["| layout | rows | batch median / worst \\|ln\\| | TPOT median / worst | TTFT median / worst |",
           "|---|---|---|---|---|"]  # fmt: skip
    for layout, rows in groups:
        cells = []
        for i in (0, 2, 4):
            lns = [abs(math.log(row[i + 1] / row[i])) for row in rows]
            cells.append(f"{statistics.median(lns):.3f} / {max(lns):.3f}")
        out.append(f"| {layout} | {len(rows)} | " + " | ".join(cells) + " |")
    return out


TPOT_FRACTIONS = (0.05, 0.2, 0.4, 0.6, 0.8, 0.9)


def compare_tpot(requests: int, *, cases: tuple = CASES, fractions: tuple = TPOT_FRACTIONS, warmup: int = 200,
                 dispatch: str | None = None) -> tuple[list[str], dict[str, list[float]]]:  # fmt: skip
    """The ``--tpot`` table: each case's layouts at each of ``fractions`` of kvplan's sustainable rate, the simulated
    requests' own TPOT (first to last token over ``O - 1``) at the mean, p90 and p99 beside ``serve()``'s, and the
    |ln(kvplan / sim)| of each row's p90 and p99 (returned by name for the summary)."""
    head = ("case", "layout", "rate (x max)", "batch sim / kvplan", "TPOT ms sim / kvplan", "p90 sim / kvplan",
            "p99 sim / kvplan", "|ln| p90, p99")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    errors: dict[str, list[float]] = {"p90": [], "p99": []}
    for case, layout, rate, frac, r, sim in _case_runs(requests, cases=cases, fractions=fractions, warmup=warmup,
                                                       dispatch=dispatch):  # fmt: skip
        e90, e99 = abs(math.log(r.tpot_p90_s / sim.tpot_p90_s)), abs(math.log(r.tpot_p99_s / sim.tpot_p99_s))
        errors["p90"].append(e90)
        errors["p99"].append(e99)
        cells = (case, layout, f"{rate:.2f} (x{frac})",
                 f"{sim.batch:.1f} / {r.batch:.1f}", f"{sim.tpot_s * 1e3:.2f} / {r.tpot_mean_s * 1e3:.2f}",
                 f"{sim.tpot_p90_s * 1e3:.2f} / {r.tpot_p90_s * 1e3:.2f}",
                 f"{sim.tpot_p99_s * 1e3:.2f} / {r.tpot_p99_s * 1e3:.2f}", f"{e90:.3f}, {e99:.3f}")  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines, errors


def tpot_summary(errors: dict[str, list[float]]) -> str:
    """One line: the median and worst |ln(kvplan / sim)| of the per-request TPOT p90 and p99 over the rows."""
    parts = [f"{name} median / worst |ln| {statistics.median(v):.3f} / {max(v):.3f}" for name, v in errors.items()]
    return f"per-request TPOT over {len(errors['p90'])} rows: " + "; ".join(parts)


def compare_mlperf_tpot(requests: int, *, warmup: int = 300) -> list[str]:
    """The ``--tpot --mlperf`` table: each MLPerf Server run with a log (``measured`` on the row, benchmarks/data/
    published_throughput.json) at the log's rate, one replica: the log's mean and p99 TPOT, the simulation on kvplan's
    own steps with the run's settings and lengths drawn per request (gamma, at the set's input mean and standard
    deviation and its outputs' mean and ``output_cv``: the sets' per-sample lengths are not in the data file, so a
    gamma of their moments stands in, stated), the same at fixed lengths, and ``serve()``'s mean, p90 and p99. Where
    the simulation and ``serve()`` agree and both miss the log, the steps are what differs, not the tail. Runs with
    pipeline stages are left out: the simulation has no micro-batches."""
    import json

    import published_compare as pc

    from kvplan.serving import DEFAULT_TOKEN_BUDGET, Lengths, _limits, serve

    data = json.loads(pc.DATA.read_text())
    head = ("run", "rate / replica", "log mean / p99 ms", "sim drawn lengths mean / p90 / p99",
            "sim fixed lengths mean / p99", "kvplan mean / p90 / p99")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in data["mlperf"]:
        m = r.get("measured")
        if r["scenario"] == "Offline" or not m or r.get("pp", 1) > 1:  # the simulation runs no micro-batches
            continue
        dataset = data["mlperf_datasets"][r["dataset"]]
        s = pc._mlperf_setup(r)
        isl, osl = pc._mlperf_isl(r, data["mlperf_datasets"]), round(r["osl"])
        p90 = max(isl, round(dataset["input_p90"]))
        inp = Lengths.of(isl, p90, max(p90, round(dataset["input_p99"])), sd=dataset.get("input_sd"))
        out = pc.mlperf_output(dataset, osl)
        rate = r["samples_per_s"] / r["replicas"]

        def drawn(rng: random.Random, inp: Lengths = inp, out: Lengths = out) -> tuple[int, int]:
            return _gamma_tokens(rng, inp.mean, inp.sd or 0.0, 1), _gamma_tokens(rng, out.mean, out.sd or 0.0, 2)

        with pc.mlperf_engine(r):
            budget = s.max_num_batched_tokens or DEFAULT_TOKEN_BUDGET
            x = serve(s, rate_rps=rate, input_len=inp, output_len=out, with_max_rate=False)
            cap = _limits(s, inp, out)[0]
            sim = simulate(s, rate_rps=rate, isl=isl, osl=osl, requests=requests, budget=budget, seq_cap=cap,
                           warmup=warmup, lengths=drawn)  # fmt: skip
            flat = simulate(s, rate_rps=rate, isl=isl, osl=osl, requests=requests, budget=budget,
                            seq_cap=_limits(s, Lengths.of(isl), Lengths.of(osl))[0], warmup=warmup)  # fmt: skip
        cells = (f"{r['source']} {r['label']} {r['gpu']} {r['scenario']}", f"{rate:.3f}",
                 f"{m['tpot_mean_s'] * 1e3:.1f} / {m['tpot_p99_s'] * 1e3:.1f}",
                 f"{sim.tpot_s * 1e3:.1f} / {sim.tpot_p90_s * 1e3:.1f} / {sim.tpot_p99_s * 1e3:.1f}",
                 f"{flat.tpot_s * 1e3:.1f} / {flat.tpot_p99_s * 1e3:.1f}",
                 f"{x.tpot_mean_s * 1e3:.1f} / {x.tpot_p90_s * 1e3:.1f} / {x.tpot_p99_s * 1e3:.1f}")  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def compare_mlperf_steady(requests: int, *, warmup: int = 300) -> list[str]:
    """The ``--steady --mlperf`` lines: why the MLPerf Server runs' mean TPOT sits apart from the simulation's (docs/
    cost.md section 5). Each run with a log at the log's rate, fixed lengths (the set's mean input, the log's output
    tokens): kvplan's fixed point (mean step ``t``, the steps' decodes ``n``, the decode step's secant slope ``b`` over
    ``n +- 2 sqrt(n)`` and the prompt share ``rho = (t - d(n)) / t``, so its gain ``rate x O x b / (1 - rho)``: what one
    more second of step brings back through the decodes it adds) beside the simulation on kvplan's own steps: the
    decodes a step holds (mean, standard deviation), the prompts a step carries (the shares of 0, 1, 2, 3), the mean of
    its steps, and kvplan's step at the simulated means, with only the prompts' spread, with only the decodes' (the
    Jensen gap a fixed point at the means leaves out); and the least step time at which the fixed point's ``g(t) =
    step(rate O t, rate I t) - t`` falls to 0 or below, scanned in 0.25 % steps from half of kvplan's ``t`` (the
    solver's regula falsi returns a root in its bracket, not always the least where the step is lumpy)."""
    import json

    import published_compare as pc

    from kvplan.serving import (
        DEFAULT_TOKEN_BUDGET,
        Lengths,
        _budget,
        _decode_context,
        _limits,
        _mean_step,
        _step,
        serve,
    )

    data = json.loads(pc.DATA.read_text())
    lines = []
    for r in data["mlperf"]:
        if r["scenario"] == "Offline" or not r.get("measured") or r.get("pp", 1) > 1:
            continue
        s = pc._mlperf_setup(r)
        isl, osl = pc._mlperf_isl(r, data["mlperf_datasets"]), round(r["osl"])
        rate = r["samples_per_s"] / r["replicas"]
        inp, out = Lengths.of(isl), Lengths.of(osl)
        with pc.mlperf_engine(r):
            budget = s.max_num_batched_tokens or DEFAULT_TOKEN_BUDGET
            x = serve(s, rate_rps=rate, input_len=inp, output_len=out, with_max_rate=False, with_p90=False,
                      with_p99=False)  # fmt: skip
            ctx = _decode_context(inp, out)
            n, t = x.step_batch, x.step_s
            spread = 2 * math.sqrt(n)
            slope = (_step(s, n=n + spread, p=0, context=ctx) - _step(s, n=n - spread, p=0, context=ctx)) / (2 * spread)
            rho = (t - _step(s, n=n, p=0, context=ctx)) / t
            trace: list = []
            sim = simulate(s, rate_rps=rate, isl=isl, osl=osl, requests=requests, budget=budget,
                           seq_cap=_limits(s, inp, out)[0], warmup=warmup, trace=trace)  # fmt: skip
            n_bar = statistics.fmean(q[0] for q in trace)
            p_bar = statistics.fmean(q[1] for q in trace)
            at_means = _step(s, n=round(n_bar, 1), p=round(p_bar, 1), context=ctx)
            prompts_only = statistics.fmean(_step(s, n=round(n_bar, 1), p=q[1], context=ctx) for q in trace)
            decodes_only = statistics.fmean(_step(s, n=q[0], p=round(p_bar, 1), context=ctx) for q in trace)
            mean_step = statistics.fmean(q[3] for q in trace)
            least = next((u for u in (t * (0.5 + 0.0025 * k) for k in range(201))
                          if _mean_step(s, n=rate * osl * u, p=rate * isl * u, prompt=isl, budget=_budget(s, None),
                                        context=ctx, ep=False) <= u), t)  # fmt: skip
        shares = " / ".join(f"{sum(1 for q in trace if round(q[1] / isl) == k) / len(trace):.2f}" for k in range(4))
        lines.append(
            f"{r['source']} {r['label']} {r['gpu']} {r['scenario']} at {rate:.3f} req/s: kvplan t {t * 1e3:.1f} ms, n "
            f"{n:.1f}, TPOT {x.tpot_mean_s * 1e3:.1f} ms, slope {slope * 1e6:.0f} us a sequence, rho {rho:.3f}, gain "
            f"{rate * osl * slope / (1 - rho):.2f}; simulated: TPOT {sim.tpot_s * 1e3:.1f} ms, decodes a step "
            f"{n_bar:.1f} (sd {statistics.pstdev(q[0] for q in trace):.1f}), steps with 0 / 1 / 2 / 3 prompts "
            f"{shares}, "
            f"mean of the steps {mean_step * 1e3:.2f} ms; kvplan's step at the means {at_means * 1e3:.2f}, with the "
            f"prompts' spread {prompts_only * 1e3:.2f}, with the decodes' {decodes_only * 1e3:.2f}; the least t with "
            f"g(t) <= 0: {least * 1e3:.1f} ms"
        )  # fmt: skip
    return lines


# --graph: rates (req/s) of the DeepSeek-R1 Server run around its batch's CUDA-graph size 128 a rank
GRAPH_RATES = (4.8, 4.9, 5.0, 5.2, 5.3, 5.4, 5.5, 5.6, 6.0)


def compare_graph_size(requests: int = 8000, *, warmup: int = 2000, rates: tuple = GRAPH_RATES) -> list[str]:
    """The ``--graph`` table: the MLPerf v5.1 DeepSeek-R1 B200 Server run (TensorRT-LLM, attention DP 8, the captured
    CUDA-graph sizes 128, 256, 384 and 512 a rank), one replica, with the Offline run's step residual held on every
    step (``published_compare.offline_step_residual_s`` and ``step_cost_added``: where the requests' own p99 TPOT
    jumped at stop 28), at fixed lengths (the set's mean prompt, the log's mean output), dealt as TensorRT-LLM deals.
    Per rate: the simulated mean and p99 TPOT over the requests and the share of decode-only steps past the first
    captured size (``dp`` x 128 sequences), beside ``serve()``'s sequences a rank, mean and p99 TPOT (the size a stair
    in the tail: kvplan.serving ``_graph_jumps``, kvplan.tpot_tail ``Life.stairs_at``)."""
    import json

    import published_compare as pc

    from kvplan.serving import DEFAULT_TOKEN_BUDGET, Lengths, _limits, serve

    data = json.loads(pc.DATA.read_text())
    datasets = data["mlperf_datasets"]
    rows = {r["scenario"]: r for r in data["mlperf"] if r["model"] == "deepseek-v3" and r["source"] == "mlperf-5.1"}
    r = rows["Server"]
    _, extra = pc.offline_step_residual_s(rows["Offline"], datasets)
    isl, osl = pc._mlperf_isl(r, datasets), round(r["osl"])
    inp, out = Lengths.of(isl), Lengths.of(osl)
    head = ("req/s", "simulated mean / p99 TPOT ms", "decode steps past the size", "kvplan sequences a rank",
            "kvplan mean / p99 TPOT ms")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    with pc.step_cost_added(extra), pc.mlperf_engine(r):
        s = pc._mlperf_setup(r)
        size = min(r["cuda_graph_batch_sizes"]) * s.dp
        cap = _limits(s, inp, out)[0]
        budget = s.max_num_batched_tokens or DEFAULT_TOKEN_BUDGET
        for rate in rates:
            x = serve(s, rate_rps=rate, input_len=inp, output_len=out, with_max_rate=False, with_p90=False)
            trace: list = []
            sim = simulate(s, rate_rps=rate, isl=isl, osl=osl, requests=requests, budget=budget, seq_cap=cap,
                           warmup=warmup, dispatch="trtllm", trace=trace)  # fmt: skip
            decodes = [d for d in trace if d[1] == 0]
            past = sum(d[0] > size for d in decodes) / max(1, len(decodes))
            cells = (f"{rate:.2f}", f"{sim.tpot_s * 1e3:.1f} / {sim.tpot_p99_s * 1e3:.1f}", f"{past:.0%}",
                     f"{x.step_batch / s.dp:.1f}", f"{x.tpot_mean_s * 1e3:.1f} / {x.tpot_p99_s * 1e3:.1f}")  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return lines


# --balance: the attention-DP cases under TensorRT-LLM's balancer, at its default counts and at the MLPerf DeepSeek-R1
# runs' (timeout_iters, batching_wait_iters), prompts of one length and of a spread (sd half the mean)
BALANCE_KNOBS = ((50, 10), (9, 3))
BALANCE_SPREAD = 0.5


def compare_balance(requests: int = 3000, *, warmup: int = 200, fractions: tuple = FRACTIONS) -> list[str]:
    """``--balance``: the ``--dp`` cases (:data:`DP_CASES`) on TensorRT-LLM with ``attention_dp_config.enable_balance``
    at each of :data:`BALANCE_KNOBS`, at ``fractions`` of kvplan's sustainable rate: the simulation running the
    source's balancer (:func:`_balancer_releases`) and dealing against ``serve()`` (the balancer's releases priced per
    cycle, kvplan.serving ``_released_parts``): batch, mean TPOT and mean TTFT; and the busiest rank's prompts per
    release in the simulation (fixed prompts, and prompts drawn with sd :data:`BALANCE_SPREAD` x the mean) beside what
    kvplan prices for the same releases' counts (the largest of the ranks' uniform shares,
    :func:`kvplan.serving.busiest_given`) and the even ``ceil(K / ranks)``."""
    from kvplan.capacity import setup
    from kvplan.engines import Settings
    from kvplan.serving import DEFAULT_TOKEN_BUDGET, Lengths, _limits, busiest_given, max_rate, serve, steps_only

    head = ("case", "timeout / wait iters", "rate (x max)", "batch sim / kvplan", "TPOT ms sim / kvplan",
            "TTFT ms sim / kvplan", "prompts a release", "busiest rank sim / priced / even",
            "spread prompts: a release, busiest sim / priced / even")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    errors: dict[str, list[float]] = {}

    def busiest(rel: list) -> tuple[float, float, float, float]:
        counts = [k for k, _ in rel]
        return (statistics.fmean(counts), statistics.fmean(m for _, m in rel),
                statistics.fmean(busiest_given(k, ranks=dp) for k in counts),
                statistics.fmean(-(-k // dp) for k in counts))  # fmt: skip

    for model, gpu, tp, dp, weights, isl, osl in DP_CASES:
        for timeout, wait in BALANCE_KNOBS:
            settings = Settings(attention_dp_balance=True, attention_dp_timeout_iters=timeout,
                                attention_dp_batching_wait_iters=wait)  # fmt: skip
            s = steps_only(setup(model, gpu, engine="trtllm", tp=tp, dp=dp, ep=True, weights_dtype=weights,
                                 settings=settings))  # fmt: skip
            inp, out = Lengths.of(isl), Lengths.of(osl)
            top = max_rate(s, input_len=inp, output_len=out)
            budget = s.max_num_batched_tokens or DEFAULT_TOKEN_BUDGET
            cap = _limits(s, inp, out)[0]

            def drawn(rng: random.Random, isl: int = isl, osl: int = osl) -> tuple[int, int]:
                return _gamma_tokens(rng, isl, BALANCE_SPREAD * isl, 1), osl

            for frac in fractions:
                rate = frac * top
                r = serve(s, rate_rps=rate, input_len=inp, output_len=out, with_max_rate=False)
                fixed: list = []
                sim = simulate(s, rate_rps=rate, isl=isl, osl=osl, requests=requests, budget=budget, seq_cap=cap,
                               warmup=warmup, dispatch="trtllm", releases=fixed)  # fmt: skip
                spread: list = []
                simulate(s, rate_rps=rate, isl=isl, osl=osl, requests=requests, budget=budget, seq_cap=cap,
                         warmup=warmup, dispatch="trtllm", lengths=drawn, releases=spread)  # fmt: skip
                a, b = busiest(fixed), busiest(spread)
                cells = (f"{model} {gpu} DP{dp} EP{dp} {isl}/{osl}", f"{timeout} / {wait}", f"{rate:.2f} (x{frac})",
                         f"{sim.batch:.1f} / {r.batch:.1f}", f"{sim.tpot_s * 1e3:.2f} / {r.tpot_mean_s * 1e3:.2f}",
                         f"{sim.ttft_s * 1e3:.1f} / {r.ttft_mean_s * 1e3:.1f}", f"{a[0]:.2f}",
                         f"{a[1]:.2f} / {a[2]:.2f} / {a[3]:.2f}", f"{b[0]:.2f}: {b[1]:.2f} / {b[2]:.2f} / {b[3]:.2f}")
                lines.append("| " + " | ".join(cells) + " |")
                errors.setdefault(f"{timeout} / {wait}", []).append(abs(math.log(r.tpot_mean_s / sim.tpot_s)))
    lines.append("")
    for knobs, e in errors.items():
        lines.append(f"timeout / wait {knobs}: TPOT |ln(kvplan / simulation)| median {statistics.median(e):.3f}, "
                     f"worst {max(e):.3f} over {len(e)} rows")  # fmt: skip
    return lines


def _gamma_tokens(rng: random.Random, mean: float, sd: float, least: int) -> int:
    """Tokens drawn from a gamma distribution of ``mean`` and ``sd`` (``mean`` itself where ``sd`` is 0), rounded,
    at least ``least``."""
    if sd <= 0:
        return max(least, round(mean))
    shape = (mean / sd) ** 2
    return max(least, round(rng.gammavariate(shape, mean / shape)))


RETRACT_CASES = (  # (model, GPU, TP, prompt, output): replicas whose KV pool bounds the batch (kvplan.serving's bound)
    ("qwen3-32b", "h100-sxm", 1, 2048, 512),
    ("llama-3.1-8b", "l4", 1, 2048, 256),
    ("llama-3.1-70b", "h200", 4, 4000, 200),
)
RETRACT_FRACTIONS = (0.6, 0.85, 1.2, 2.0)


def compare_retract(requests: int, *, cases: tuple = RETRACT_CASES, warmup: int = 200) -> list[str]:
    """The ``--retract`` table: per case and rate (a fraction of kvplan's ``max_rate``; past 1 the queue grows and the
    batch is the admission's), :func:`simulate_retract` beside ``serve()`` (its batch; past saturation the KV bound
    ``_limits`` it saturates at) and the pool's mean holding without the reserve (kvplan's bound before it)."""
    from kvplan.capacity import binding_pool, setup
    from kvplan.serving import DEFAULT_TOKEN_BUDGET, Lengths, _decode_context, _limits, max_rate, serve, steps_only

    head = ("case", "rate (x max)", "batch sim / kvplan", "KV bound kvplan / mean holding", "TPOT ms sim / kvplan",
            "TTFT ms sim", "tok/s sim / kvplan", "retractions", "ratio: mean, share at floor")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, gpu, tp, isl, osl in cases:
        s = steps_only(setup(model, gpu, engine=SGLANG, tp=tp))
        inp, out = Lengths.of(isl), Lengths.of(osl)
        top = max_rate(s, input_len=inp, output_len=out)
        budget = s.max_num_batched_tokens or DEFAULT_TOKEN_BUDGET
        cap = _limits(s, inp, out)[0]
        pool, held = binding_pool(s, _decode_context(inp, out))
        for frac in RETRACT_FRACTIONS:
            rate = frac * top
            r = serve(s, rate_rps=rate, input_len=inp, output_len=out, with_max_rate=False)
            sim = simulate_retract(s, rate_rps=rate, isl=isl, osl=osl, requests=requests, budget=budget,
                                   warmup=warmup)  # fmt: skip
            batch = f"{cap:.1f} (saturated)" if r.saturated else f"{r.batch:.1f}"
            tpot = "-" if r.saturated else f"{r.tpot_mean_s * 1e3:.2f}"
            cells = (f"{model} {gpu} TP{tp} {isl}/{osl}", f"{rate:.3f} (x{frac})", f"{sim.batch:.1f} / {batch}",
                     f"{cap:.1f} / {pool / held:.1f}", f"{sim.tpot_s * 1e3:.2f} / {tpot}", f"{sim.ttft_s * 1e3:.0f}",
                     f"{sim.output_tokens_per_s:.0f} / {min(rate, top) * osl:.0f}", str(sim.retractions),
                     f"{sim.ratio:.3f}, {sim.floor_share:.2f}")  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return lines


DEALING_MEANS = (0.3, 1.0, 2.0, 4.0, 8.0)  # arrivals a step
DEALING_CASES = ((4, 64), (4, 256), (8, 64), (8, 256))  # (ranks, steps a request lives)


def dealt_busiest(mean: float, *, ranks: int, life: int, steps: int, spread: float = 0.0, seed: int = 1) -> float:
    """TensorRT-LLM's dealing alone (:func:`_deal_fewest_active`): Poisson arrivals of ``mean`` a step, each request
    leaving ``life`` steps after it was dealt; the mean of the busiest rank's arrivals over the steps with some, after
    a warm-up of ``5 life`` steps (``steps`` in all). Prompts of 1,000 tokens, or with ``spread`` drawn uniformly
    from ``1,000 (1 +- spread)`` (their own generator, seeded ``seed + 1``), where the heap's token key decides."""
    rng, draw = random.Random(seed), random.Random(seed + 1)
    active = [[0, 0] for _ in range(ranks)]  # per rank: prompt tokens, requests
    dealt_at: deque = deque()
    total = counted = 0
    for step in range(steps):
        if len(dealt_at) == life:
            for rank, tokens in dealt_at.popleft():
                active[rank][0] -= tokens
                active[rank][1] -= 1
        arrivals, clock = 0, rng.expovariate(mean)
        while clock < 1.0:
            arrivals, clock = arrivals + 1, clock + rng.expovariate(mean)
        prompts = [round(1000 * (1 + spread * (2 * draw.random() - 1))) if spread else 1000 for _ in range(arrivals)]
        here = [0] * ranks
        left = []
        for position, rank in _deal_fewest_active(prompts, [(t, n) for t, n in active]):
            here[rank] += 1
            active[rank][0] += prompts[position]
            active[rank][1] += 1
            left.append((rank, prompts[position]))
        dealt_at.append(left)
        if step >= 5 * life and arrivals:
            total, counted = total + max(here), counted + 1
    return total / counted


def compare_dealing(steps: int = 60000) -> list[str]:
    """``--dealing``: the busiest rank's prompts per step with arrivals under TensorRT-LLM's dealing
    (:func:`dealt_busiest`, prompts of one length and of lengths 500-1,500 tokens) beside the largest of ``ranks``
    independent Poisson shares (:func:`kvplan.serving.busiest_drawn`) and the even ``ceil(K / ranks)``
    (:func:`kvplan.serving.busiest_share`), each over the steps with arrivals (divided by ``1 - e^-mean``)."""
    from kvplan.serving import busiest_drawn, busiest_share

    head = ("ranks", "steps a request lives", "arrivals a step", "dealt (TensorRT-LLM)", "dealt, prompts +-50 %",
            "drawn shares", "even")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for ranks, life in DEALING_CASES:
        for mean in DEALING_MEANS:
            some = -math.expm1(-mean)
            dealt = dealt_busiest(mean, ranks=ranks, life=life, steps=steps)
            varied = dealt_busiest(mean, ranks=ranks, life=life, steps=steps, spread=0.5)
            drawn, even = busiest_drawn(mean, ranks=ranks) / some, busiest_share(mean, ranks=ranks) / some
            cells = (ranks, life, mean, f"{dealt:.3f}", f"{varied:.3f}", f"{drawn:.3f}", f"{even:.3f}")
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--dp", action="store_true",
                    help="the attention-DP cases instead (12,000 requests, the first 3,000 left out: their batches "
                    "run to a thousand requests)")  # fmt: skip
    ap.add_argument("--dispatch", choices=("round_robin", "vllm", "trtllm"), default=None,
                    help="how --dp deals requests to the ranks, for every layout (default: as each engine deals: "
                    "SGLang round_robin, vLLM V1's waiting * 4 + running on 100 ms snapshots, TensorRT-LLM's fewest "
                    "active requests)")  # fmt: skip
    ap.add_argument("--long", action="store_true",
                    help="with --dp, the prompts past a rank's token budget instead (4,000 requests, the first 1,000 "
                    "left out)")  # fmt: skip
    ap.add_argument("--dealing", action="store_true",
                    help="TensorRT-LLM's attention-DP dealing alone: the busiest rank's prompts a step against the "
                    "largest of the ranks' Poisson shares and the even split")  # fmt: skip
    ap.add_argument("--retract", action="store_true",
                    help="SGLang's admission reserve and retraction on KV-bound replicas, past saturation")  # fmt: skip
    ap.add_argument("--mlperf", action="store_true",
                    help="with --tpot, the MLPerf Server runs with a log at the log's rate: the log, the simulation "
                    "(lengths drawn and fixed) and serve()")  # fmt: skip
    ap.add_argument("--steady", action="store_true",
                    help="with --mlperf, the Server runs' fixed point at the log's rate beside the simulation's steps: "
                    "the fixed point's gain and the Jensen gap of its step at the means")  # fmt: skip
    ap.add_argument("--graph", action="store_true",
                    help="the MLPerf DeepSeek-R1 Server run with its Offline step residual held, at rates around its "
                    "batch's CUDA-graph size: the simulated mean and p99 TPOT beside serve()'s (8,000 requests, the "
                    "first 2,000 left out)")  # fmt: skip
    ap.add_argument("--balance", action="store_true",
                    help="the attention-DP cases under TensorRT-LLM's balancer (enable_balance at its default counts "
                    "and at 9 / 3 iterations): the simulation running the source's rule beside serve(), and the "
                    "busiest rank's prompts per release")  # fmt: skip
    ap.add_argument("--tpot", action="store_true",
                    help="the requests' own TPOT at the mean, p90 and p99 against serve()'s (10,000 requests; with "
                    "--dp the attention-DP cases, 12,000, the first 3,000 left out)")  # fmt: skip
    args = ap.parse_args(argv)
    if args.dealing:
        print("\n".join(compare_dealing()))
    elif args.graph:
        print("\n".join(compare_graph_size()))
    elif args.balance:
        print("\n".join(compare_balance()))
    elif args.steady and args.mlperf:
        print("\n".join(compare_mlperf_steady(args.requests)))
    elif args.tpot and args.mlperf:
        print("\n".join(compare_mlperf_tpot(args.requests)))
    elif args.tpot:
        if args.dp:
            lines, errors = compare_tpot(12000, cases=DP_CASES, fractions=FRACTIONS, warmup=3000,
                                         dispatch=args.dispatch)  # fmt: skip
        else:
            lines, errors = compare_tpot(max(args.requests, 10000))
        print("\n".join(lines))
        print(tpot_summary(errors))
    elif args.retract:
        print("\n".join(compare_retract(args.requests)))
    elif args.dp and args.long:
        print("\n".join(compare(4000, cases=DP_LONG_CASES, warmup=1000, dispatch=args.dispatch)))
    elif args.dp:
        print("\n".join(compare(12000, cases=DP_CASES, warmup=3000, dispatch=args.dispatch)))
    else:
        print("\n".join(compare(args.requests)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The waits of TensorRT-LLM's attention-DP balancer (``attention_dp_config.enable_balance``) in a request's TTFT.

The rule, read in tensorrt_llm/_torch/pyexecutor/py_executor.py ``PyExecutor._balance_adp_requests``
(NVIDIA/TensorRT-LLM, a stored 1.x version; the stored one @9521caf4 predates the balancer; the same rule,
unchanged, in the later ``RequestScheduler._balance_adp_context_requests``, which ``schedule_step`` calls with
``ScheduleStepConfig``'s ``attention_dp_time_out_iters`` and ``attention_dp_batching_wait_iters``). Every iteration
each rank schedules its requests, the ranks all-gather their counts of context and generation requests, and all
take the same decision:

* every rank has a context request and room (``num_gen < max_batch_size``): the timeout counter resets; if every
  rank also has a generation request, the context requests are held while a second counter is below
  ``batching_wait_iters`` (it then resets and they go); without a generation request on some rank they go at once;
* otherwise the timeout counter counts up and the context requests are held, until it reaches ``timeout_iters`` or
  some rank has no generation request; then each rank's context requests go and the counter resets.

The counter counts every iteration that does not meet the first condition, with or without a prompt waiting, so
the timeout is a clock of ``timeout_iters`` iterations since the last release, not a per-request timer.
``AttentionDpConfig`` (tensorrt_llm/llmapi/llm_args.py, the same defaults in every stored version read):
``enable_balance`` False, ``timeout_iters`` 50, ``batching_wait_iters`` 10; the later versions' validator accepts
both from 0 on when balance is on.

kvplan's model of it (a renewal cycle between two releases, in iterations; stated approximations):

* Prompts arrive as a Poisson stream of ``A`` per iteration over the replica (rate x the mean step). The engine
  spreads new requests over the ranks by their load, capped at the ceiling of all requests over the ranks
  (tensorrt_llm/_torch/pyexecutor/executor_request_queue.py ``_balance_requests_across_ranks``). Two bounds of
  "every rank has a context request by iteration ``x``": the even spread, ``K_x >= D`` (``K_x`` the prompts
  arrived since the release, Poisson of mean ``x A``: ``D`` waiting prompts cover the ``D`` ranks), and the random
  spread (each rank's prompts Poisson of mean ``x A / D``, all ranks covered with probability
  ``(1 - exp(-x A / D))^D``). A rank-by-rank simulation of the engine's rule (benchmarks/dp_balance_sim.py) lies
  between them, nearer the random spread, which :mod:`kvplan.serving` uses.
* A release at iteration 0 is followed by the next at ``R = tau + W`` if the first iteration with a prompt on
  every rank, ``tau``, comes by ``T`` (``W`` = batching_wait_iters: held at ``tau .. tau + W - 1``, released at
  ``tau + W``), else at ``R = T`` (timeout_iters; 0 acts as 1: the first iteration releases). A prompt seen first
  at iteration ``i`` waits ``R - i`` iterations; each release is taken to carry every prompt waiting.
* The hold needs a generation request on every rank: kvplan takes that as at least ``D`` sequences decoding
  (evenly spread), a Poisson count of mean ``n`` (the steady state's): a prompt arriving where fewer decode lands
  on a rank with no generation request, and the balancer lets it go at once. So a lone request (rate to zero)
  waits nothing, and at a high rate (``A`` prompts an iteration, far above ``D``) a prompt waits out the batching
  wait only: ``0 .. W`` iterations, ``W / 2`` on average (none with ``batching_wait_iters: 0``).

The share of prompts that wait at least ``h`` iterations (Poisson arrivals, each counted with its cycle;
``F_0(x)`` the probability that not every rank has a prompt by ``x``, ``F_1(x)`` the same given one more prompt
there (the tagged one): even spread ``P(K_x <= D - 1)`` and ``P(K_x <= D - 2)``, random spread ``1 - c^D`` and
``1 - c^(D - 1)`` with ``c = 1 - exp(-x A / D)``; ``F(x <= 0) = 1``; ``delta = [h > W]``, ``eps = [v - h < T]``):

    S(h) = (1 / E[R]) * ( sum_{v=h}^{T-1} F_delta(v - W)
                        + sum_{v=max(h,T)}^{T+W-1} (F_delta(v - W) - F_eps(T)) )
    E[R] = sum_{v=0}^{T-1} F_0(v - W) + sum_{v=T}^{T+W-1} (F_0(v - W) - F_0(T))

(the arrival in interval ``i = v - h + 1`` counted by Poisson size-biasing; ``S(0) = 1``; both spreads equal a
brute-force enumeration of every arrival pattern, tests/test_dp_balance_wait.py). Its mean is
``sum_{h>=1} S(h)``; a quantile the smallest ``h`` with ``P(hold > h) <= 1 - q``. No GPU figure enters: the hold is
a count of iterations, priced at the steady state's mean step by :mod:`kvplan.serving`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kvplan.errors import InvalidInput


def check_iters(value: int | None, key: str) -> None:
    """The source's validator (llm_args.py ``AttentionDpConfig.validate_attention_dp_config``): >= 0."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise InvalidInput(f"invalid attention_dp_config.{key} {value!r}; expected a whole number of iterations >= 0")


def _poisson_cdfs(mean: float, top: int) -> tuple[float, float]:
    """``(P(K <= top), P(K <= top - 1))`` for a Poisson ``K`` of ``mean`` (``top >= 0``; ``P(K <= -1) = 0``)."""
    if mean <= 0:
        return 1.0, 1.0 if top >= 1 else 0.0
    term = math.exp(-mean)
    below = 0.0
    total = term
    for k in range(1, top + 1):
        below = total
        term *= mean / k
        total += term
    return min(total, 1.0), min(below, 1.0)


@dataclass(frozen=True)
class BalanceHold:
    """The iterations a prompt is held by the balancer: ``survival[h]`` = P(held >= h | the hold applies), h = 0 ..
    T + W, and ``applies`` the share of prompts to which it applies (every rank decoding)."""

    survival: tuple[float, ...]
    applies: float

    @property
    def mean_iters(self) -> float:
        return self.applies * sum(self.survival[1:])

    def at(self, quantile: float) -> int:
        """Iterations held at ``quantile``: the smallest ``h`` with P(held > h) <= 1 - quantile."""
        tail = 1 - quantile
        for h, next_share in enumerate(self.survival[1:]):
            if self.applies * next_share <= tail + 1e-12:
                return h
        return len(self.survival) - 1


def balance_hold(
    *,
    arrivals_per_iter: float,
    ranks: int,
    decoding: float,
    timeout_iters: int,
    batching_wait_iters: int,
    random_spread: bool = False,
) -> BalanceHold:
    """The balancer's hold for ``ranks`` attention-DP ranks, ``arrivals_per_iter`` prompts arriving per iteration
    over all ranks and ``decoding`` sequences decoding on average (the module docstring).

    ``random_spread``: each prompt to a rank drawn at random instead of the even spread (the other bound,
    benchmarks/dp_balance_sim.py): every rank has a prompt by ``x`` iterations with probability
    ``(1 - exp(-A x / D))^D``, a tagged prompt's own rank being covered, the others' ``(...)^(D - 1)``."""
    d = ranks
    t_iters, w, f1, f2 = _uncovered(arrivals_per_iter=arrivals_per_iter, ranks=ranks, timeout_iters=timeout_iters,
                                    batching_wait_iters=batching_wait_iters, random_spread=random_spread)  # fmt: skip

    def f(k_drop: int, x: int) -> float:  # F_{d-1-k_drop}(x), 1 for x <= 0 (nothing arrived yet)
        if x <= 0:
            return 1.0 if d - 1 - k_drop >= 0 else 0.0
        return f2[x] if k_drop else f1[x]

    span = t_iters + w
    # prefix sums over v of F_{d-1-delta}(v - W), delta 0 and 1
    cum = [[0.0], [0.0]]
    for v in range(span):
        for k in (0, 1):
            cum[k].append(cum[k][-1] + f(k, v - w))
    fT = (f1[t_iters], f2[t_iters])
    cycle = cum[0][span] - w * fT[0]  # E[R]: every v >= T term less F_{d-1}(T)
    survival = []
    for h in range(span + 1):
        delta = 1 if h > w else 0
        total = cum[delta][span] - cum[delta][min(h, span)]
        # v >= max(h, T): subtract F_{d-1-eps}(T), eps = 1 while the arrival's interval v - h + 1 <= T
        start = max(h, t_iters)
        with_eps = max(0, min(span, t_iters + h) - start)  # v < T + h: the arrival came by T
        total -= with_eps * fT[1] + (span - start - with_eps) * fT[0] if span > start else 0.0
        survival.append(max(0.0, min(1.0, total / cycle)))
    survival[0] = 1.0
    applies = hold_applies(decoding=decoding, ranks=d)
    return BalanceHold(tuple(survival), applies)


def _uncovered(*, arrivals_per_iter: float, ranks: int, timeout_iters: int, batching_wait_iters: int,
               random_spread: bool) -> tuple[int, int, list[float], list[float]]:  # fmt: skip
    """``(T, W, F_{d-1}(x), F_{d-2}(x) at x = 0 .. T)``: the timeout as the counter runs it (0 acts as 1), the batching
    wait, and the chance that not every rank has a prompt by iteration ``x``, without and with a tagged prompt on one
    rank (the module docstring's ``F_0`` and ``F_1``; even or random spread)."""
    d = ranks
    t_iters = max(1, timeout_iters)  # timeout_iters 0: the counter (1 after its increment) is >= 0 at once
    a = max(arrivals_per_iter, 0.0)
    f1, f2 = [], []
    for x in range(t_iters + 1):
        if random_spread:
            covered = -math.expm1(-a * x / d)  # one rank has a prompt by x
            hi, lo = 1.0 - covered**d, 1.0 - covered ** (d - 1)
        else:
            hi, lo = _poisson_cdfs(x * a, d - 1)
        f1.append(hi)
        f2.append(lo)
    return t_iters, batching_wait_iters, f1, f2


def release_cycle(*, arrivals_per_iter: float, ranks: int, timeout_iters: int, batching_wait_iters: int,
                  random_spread: bool = False) -> float:  # fmt: skip
    """``E[R]``, the mean iterations between two releases of the balancer (the module docstring's renewal cycle):
    ``sum_{v=0}^{T-1} F_0(v - W) + sum_{v=T}^{T+W-1} (F_0(v - W) - F_0(T))``, ``T`` at a rate to zero (the clock
    alone) and ``W + 1`` where every rank has a prompt after one iteration. Each release carries every prompt then
    waiting, on every rank, into one step (tensorrt_llm/_torch/pyexecutor/py_executor.py ``_balance_adp_requests``
    returns each rank's scheduled context requests whole on the iteration the counter releases), so the context
    steps come once a cycle, not once per prompt: :func:`kvplan.serving._dp_parts` prices them so."""
    t_iters, w, f1, _ = _uncovered(arrivals_per_iter=arrivals_per_iter, ranks=ranks, timeout_iters=timeout_iters,
                                   batching_wait_iters=batching_wait_iters, random_spread=random_spread)  # fmt: skip
    cycle = 0.0
    for v in range(t_iters + w):
        x = v - w
        cycle += (1.0 if x <= 0 else f1[x]) - (f1[t_iters] if v >= t_iters else 0.0)
    return cycle


def hold_applies(*, decoding: float, ranks: int) -> float:
    """The share of the time the balancer holds at all: every rank has a generation request (else it releases at
    once, ``not all_ranks_have_gen_requests``), taken as at least ``ranks`` of a Poisson count of mean ``decoding``
    (the module docstring)."""
    return _at_least(decoding, ranks)


def _at_least(mean: float, k: int) -> float:
    """P(N >= k) for a Poisson ``N`` of ``mean``: every one of ``k`` evenly loaded ranks has a sequence decoding."""
    return 1.0 - _poisson_cdfs(mean, k - 1)[0] if k >= 1 else 1.0

"""In-flight (continuous) batching at a request rate: steady-state batch, TTFT, TPOT and throughput.

vLLM and TensorRT-LLM schedule prefills and decodes into the same steps: each step runs one token for
every running sequence plus prefill tokens up to a budget of ``max_num_batched_tokens`` tokens per
step, decodes first (vLLM V1 ``vllm/v1/core/sched/scheduler.py`` ``Scheduler.schedule``, v0.19:
running requests are scheduled before waiting ones, and a long prompt is split into chunks that
fit the token budget). SGLang (without ``--enable-mixed-chunk``) runs prompt batches and decode batches as
separate steps, prompts first (:meth:`Engine.mixes_steps`): a step is then the cycle between two decode steps,
one decode step plus the prompt-only steps run before it (:func:`_alternating_cycle`; its TPOT carries the prompt
steps, its TTFT queues behind whole prompt steps of up to the budget, :func:`_prompt_load`), and the token budget
bounds each prompt step, not the cycle. The steady state at a request rate ``lambda`` (Poisson arrivals), mean prompt
``I`` and mean output ``O`` tokens is the least mean step time ``t`` (the one a batch growing from empty stops at,
:func:`_solve`) that solves

    t = step(n, p),    n = lambda * O * t  (sequences decoding: Little's law),
                       p = lambda * I * t  (prefill tokens per step, on average)

where ``step`` is the mean of :func:`kvplan.latency.mixed_step_latency` over steps with and
without a prompt chunk (a prompt enters as a chunk of up to ``budget - n`` tokens in a share
``p / chunk`` of the steps; the others are decode-only), with the decodes at the mean context
``I + O/2``; where the outputs' standard deviation is given (:attr:`Lengths.sd` of the output lengths) the batch
holds long outputs in proportion to their length, and the mean context is ``I + O (1 + scv) / 2``
(:func:`_in_flight_output`, length-biased sampling; ``scv`` the outputs' squared coefficient of variation). The
rate is past saturation when the step at the limits outruns them (then no ``t`` solves it within them, or one does
below a stretch that carries a batch up to them): ``n`` beyond
``max_num_seqs`` or beyond the sequences the KV pool holds at that context each
(:func:`kvplan.capacity.pool_tokens`; ``I + O (1 + scv)`` each, in whole blocks, where the engine reserves a
request's blocks to completion at admission, ``Engine.holds_to_completion``: TensorRT-LLM's default policy; with its
per-window pools, ``max_attention_window``, the pool that admits the fewest, :func:`kvplan.capacity.binding_pool`;
where the engine admits against a reserve for the running requests' outputs to come, SGLang's, the requests that
admission leaves room for, :func:`_limits`), or ``n + p``
beyond the token budget (``(W + 1) p`` under an attention-DP balancer's batching wait of ``W`` iterations,
:func:`_release_every`), or ``lambda`` beyond what the replica's API server takes (:func:`api_server_ceiling_rps`:
the engine's measured cost per request and per streamed token, :attr:`Engine.front_end`, where its release has one).
With PP a step is the pipeline's cycle: where the engine schedules each of its ``pp`` micro-batches against the
limits (``Engine.limits_per_micro_batch``: TensorRT-LLM) a cycle holds ``pp`` x
``max_num_seqs`` and ``pp`` x the token budget, and a cycle's prompts spread over its micro-batches: each
micro-batch is a server of the queue of prompts (one prompt's chunk per cycle, a prompt in flight being skipped by
the other micro-batches), so a cycle carries as many chunks as prompts are prefilling, with Erlang's state
probabilities (:func:`_slots_mean_step`). Then :func:`max_rate` gives the highest sustainable rate.

Per request (a tagged arrival sees, on average, the steady state):

* **TPOT** = ``step(1 + n, p)`` (itself and the others) on average. At the p90 and p99 it is the request's own: the
  mean of the steps its decoding spans, which the prompts arriving in its life (a request that meets a burst of
  them is slow, and a slower life meets more: a busy period) and the sequences decoding beside it spread
  (:mod:`kvplan.tpot_tail`; against benchmarks/serving_sim.py ``--tpot``, each simulated request's own TPOT; a
  CUDA-graph size far from the next one a stair bounded by its padding's rise, :func:`_graph_jumps`), plus
  what its own context at that quantile's lengths adds to its steps; where only a p90 was given the p99 holds the
  length tail at the p90 (:meth:`Lengths.at`; it understates the p99 where lengths vary, and ``plan`` says so in a
  note). Before (stop 25) the p90 was ``step(1 + n + 1.28 sqrt(n), p)`` at the p90 lengths (the count of others'
  normal 90th percentile), the p99 the same at ``2.33``: against the simulated requests' own p90 / p99 median |ln|
  0.151 / 0.230 (worst 1.244 / 1.468) over 36 single-rank rows, now 0.033 / 0.025 (worst 0.697 / 0.359, the 70B row
  at 0.9 of the rate, where the mean step itself is 0.56 of the simulation's).
* **TTFT** = its prefill, ``ceil(I / (B - n))`` steps of up to ``B - n`` prompt tokens (``B`` the
  budget) alongside ``n`` decodes, plus the wait for the prefill slots: an M/D/1 queue with load ``rho`` and mean
  wait ``rho S / (2 (1 - rho))`` (``S`` the queue's service time of the mean prompt) and the exponential tail
  ``P(W > w) = rho exp(-rho w / W)`` for the p90 and p99 (the wait at quantile ``q``: ``(W / rho) ln(rho / (1 -
  q))``, 0 where ``rho <= 1 - q``; :func:`queue_wait_s`). With mixed steps ``rho`` is the share of time full-budget
  steps would take to clear the ``p`` prompt tokens, ``S`` a prompt's tokens' share of such steps, and the decode
  step under way is waited out (``MIXED_QUEUE_RULE`` "time", the default since stop 29; until then "step": ``rho =
  p / (B - n)``, the share of the room, docs/cost.md section 5). At a quantile the request's own prompt is at that
  quantile's length, its prefill with it; the wait is not: in a first-come-first-served queue an arrival waits for
  the work ahead of it, whatever its own size (the Pollaczek-Khinchine mean wait ``lambda E[S^2] / (2 (1 - rho))``
  has no term for the arrival's own service), so ``S`` stays the mean prompt's. Where the prompt lengths' standard
  deviation is given the two are independent and the TTFT at ``q`` is the quantile of their sum
  (:func:`ttft_sum_quantile`, the prompts a lognormal of that mean and deviation, the wait's tail the Cramer-Lundberg
  one of the M/G/1 queue, :func:`wait_tail`; with a pipeline's servers the exponential tail above); without it, the
  quantile prompt's prefill plus the wait's quantile (a comonotone bound, as before stop 29).
  Where each of ``pp`` micro-batches admits its own prompt (TensorRT-LLM with PP) the queue has ``pp`` servers at
  load ``rho`` each: M/D/m (:func:`queue_wait_s` ``servers``). Where the prompt lengths' standard deviation is given
  (:attr:`Lengths.sd`) the wait is the Pollaczek-Khinchine M/G/1 one, ``(1 + scv)`` times the M/D/1 figure (``scv``
  the lengths' squared coefficient of variation, the service taken as proportional to the prompt); without it every
  prompt's service is the mean's (M/D/1). Stated approximations. Where the engine's attention-DP balancer holds
  prompts back until every rank has one (:meth:`Engine.dp_balance_iters`: TensorRT-LLM's ``enable_balance``), the
  TTFT adds that hold, in iterations at the mean step (:mod:`kvplan.dp_balance`; its quantile at a percentile).
  Where the engine's release has a measured API server (:attr:`Engine.front_end`) the TTFT adds the request's time
  there, its cost and the M/D/1 wait behind the server's other work (:func:`api_server_wait_s`).

``prefilled=True`` models a disaggregated decode replica (:mod:`kvplan.disagg`): each request arrives with its
prompt's KV, so it holds and attends to the whole prompt but computes none of it (:func:`prompt_computed`), and
its TTFT is its first step, a decode step at the prompt's length beside the ``n`` others.

With one request (rate -> 0) the figures equal :mod:`kvplan.cost`'s static ones for batch 1 (the TTFT plus the
API server's cost per request where the release has one).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from statistics import NormalDist

from kvplan.capacity import Setup, binding_pool, pool_tokens
from kvplan.dp_balance import BalanceHold, balance_hold, hold_applies, release_cycle
from kvplan.errors import InvalidInput
from kvplan.host import step_with_host_s
from kvplan.latency import (
    OpTimes,
    beyond_graph_cap,
    calibration,
    graph_cap,
    mixed_step_latency,
    pp_chunk_cycles,
)
from kvplan.tpot_tail import Life

Z90 = 1.2816  # standard normal 90th percentile
Z99 = 2.3263  # standard normal 99th percentile (Python's statistics.NormalDist().inv_cdf(0.99) = 2.32635)
# Token budget per step where the engine rules give none (kvplan.engines' TensorRT-LLM): TensorRT-LLM's LLM API
# max_num_tokens defaults to 8192 (tensorrt_llm/llmapi/llm_args.py, the figure kvplan's TRT-LLM budget rule used
# before the engines package). SGLang's rules give its chunked_prefill_size by GPU memory (Sglang.batch_limits).
DEFAULT_TOKEN_BUDGET = 8192
_BISECT = 60
_REL_TOL = 1e-4  # step time to 0.01 %; the sustainable rate to 0.5 %


@dataclass(frozen=True)
class Lengths:
    """A length distribution as its mean, 90th and (optionally) 99th percentile (tokens), and (optionally) its
    standard deviation.

    ``p99`` None: not given; :meth:`at` then holds the 99th percentile at the p90 (``p99_assumed`` says so when
    the lengths vary, mean < p90: the p99 figures understate the length tail there). ``sd`` None: not given; the
    prompts' queue then takes every prompt's service as the mean's (:attr:`scv` 0, M/D/1)."""

    mean: int
    p90: int
    p99: int | None = None
    sd: float | None = None

    @classmethod
    def of(cls, mean: int, p90: int | None = None, p99: int | None = None, *, sd: float | None = None) -> Lengths:
        p90 = mean if p90 is None else p90
        if mean < 1 or p90 < mean or (p99 is not None and p99 < p90):
            raise InvalidInput(f"invalid lengths mean {mean!r}, p90 {p90!r}, p99 {p99!r}; need 1 <= mean <= p90 <= p99")
        if sd is not None and not sd >= 0:
            raise InvalidInput(f"invalid length standard deviation {sd!r}; expected tokens >= 0")
        if p99 is None and p90 == mean:
            p99 = mean  # every request the same length: its p99 is known
        return cls(mean, p90, p99, sd)

    def to_dict(self) -> dict:
        """mean, p90, p99, and sd where one was given (a report's lengths as the user gave them)."""
        out = {"mean": self.mean, "p90": self.p90, "p99": self.p99}
        return out if self.sd is None else {**out, "sd": self.sd}

    @property
    def scv(self) -> float:
        """The lengths' squared coefficient of variation ``(sd / mean)^2``; 0 where no ``sd`` was given."""
        return (self.sd / self.mean) ** 2 if self.sd else 0.0

    def at(self, q: float | None) -> int:
        """The length at quantile ``q`` (None: the mean); 0.99 without a p99 is held at the p90."""
        if q is None:
            return self.mean
        if q <= 0.9:
            return self.p90
        return self.p90 if self.p99 is None else self.p99

    @property
    def p99_assumed(self) -> bool:
        """True where the p99 was not given and the lengths vary: :meth:`at` holds it at the p90."""
        return self.p99 is None and self.p90 > self.mean


@dataclass(frozen=True)
class ServingResult:
    rate_rps: float
    saturated: bool
    limit: str  # what bounds the rate: "compute" (step time), "kv_cache", "max_num_seqs", "token_budget", "api_server"
    max_rate_rps: float
    batch: float  # mean sequences decoding (time average: rate x O x TPOT, at most the bound; step_batch)
    prefill_tokens_per_step: float
    step_s: float
    ttft_mean_s: float
    ttft_p90_s: float
    tpot_mean_s: float
    tpot_p90_s: float
    ttft_p99_s: float
    tpot_p99_s: float
    output_tokens_per_s: float  # one replica
    output_tokens_per_s_per_gpu: float
    output_tokens_per_s_per_user: float
    kv_tokens_held: float
    kv_pool_tokens: int
    max_num_batched_tokens: int
    max_num_seqs: int | None  # None: the engine rules give no sequence cap (only the KV pool bounds)
    gpus: int
    engine: str
    # The decodes a step holds on average, the fixed point's ``n = rate x O x step`` (the steps are priced at it);
    # ``batch`` is the time average a request sees and the KV pool holds, ``rate x O x TPOT`` (Little's law on the
    # decoding requests with the TPOT they stay for, :func:`_own_life`). Past saturation both are the sequence bound.
    step_batch: float = float("nan")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Load:
    setup: Setup
    rate: float
    inp: Lengths
    out: Lengths
    budget: int
    seq_limit: float  # sequences the KV pool and max_num_seqs allow
    seq_limit_name: str
    ep: bool = False  # MoE experts split whole across the TP ranks (kvplan.latency expert_parallel)
    prefilled: bool = False  # prompts arrive with their KV computed elsewhere (a disaggregated decode pool)

    @property
    def prompt_computed(self) -> int:
        """Mean prompt tokens this replica computes per request (:func:`prompt_computed`)."""
        return prompt_computed(self.inp, self.prefilled)


def prompt_computed(inp: Lengths, prefilled: bool) -> int:
    """Mean prompt tokens a replica computes per request: all of them, or none where the prompt arrives prefilled.

    A disaggregated decode replica receives the prompt's KV. vLLM's scheduler then marks all but the last prompt
    token computed (vllm/v1/core/sched/scheduler.py ``Scheduler._update_waiting_for_remote_kv``, "if
    num_computed_tokens == request.num_tokens: num_computed_tokens -= 1", @00024d3), so the request's first step
    runs that one token against the whole cached prompt, which its attention backends run as a decode (a query of
    one token) and which samples the first output token: one of the request's decode steps, not a prefill. SGLang
    and TensorRT-LLM take the first token from the prefill instance and compute none (kvplan.disagg)."""
    return 0 if prefilled else inp.mean


# Step times of one setup already priced: a fixed point's last probe and the prefill that follows it, the
# saturation check, ... ask for the same step again. Keyed by the setup's identity (each entry holds the setup, so
# its id is not reused while the entry lives) and the exact arguments: a hit is the figure the call would compute.
# Its cap: see kvplan.latency's note on the memos.
_STEPS: dict[tuple, tuple[Setup, float]] = {}


def _keep_step(key: tuple, s: Setup, value):  # noqa: ANN001, ANN202 - a step, a stage tuple or a grid dict
    """Enter ``value`` in :data:`_STEPS` under ``key`` (which starts with ``id(s)``), emptying the memo first where it
    has outgrown its cap (kvplan.latency's note on the memos); returns ``value``. Callers look the key up first
    (a hit counts where ``hit[0] is s``)."""
    if len(_STEPS) > 16384:
        _STEPS.clear()
    _STEPS[key] = (s, value)
    return value


def forget_memos(*, facts: bool = True) -> None:
    """Empty the memos of the latency paths (kvplan.latency's contexts and kept figures, the step times here and,
    with ``facts``, the per-spec facts and cache plans, and kvplan.cost's): what a fresh process starts with.
    Figures never depend on them; benchmarks/latency_speed.py times cold calls after this."""
    from kvplan import cost, latency

    memos = (_STEPS, latency._CTXS, latency._ENGINE_CTXS, latency._STEP_CTXS, latency._PARTS)
    for memo in (*memos, *((latency._FACTS, latency._PLANS, cost._KEPT) if facts else ())):
        memo.clear()


def _step(
    s: Setup,
    *,
    n: float,
    p: float,
    context: int,
    prefix: int = 0,
    ep: bool = False,
    p_all: float | None = None,
    chunks: float = 1.0,
    prompts: float = 1.0,
    rank_seqs: float | None = None,
) -> float:
    """Mean time in which every running sequence advances one token: ``n`` decodes over the replica plus a prompt
    chunk of ``p`` tokens on the busiest data-parallel rank (``p_all``: all ranks' prompt tokens, default ``p``);
    with PP, the pipeline's cycle (``chunks``: the step carries that many such chunks, one per micro-batch). A
    decode-only step runs the engine's CUDA-graph padding, where it pads (:meth:`Engine.graph_rows`), for the
    busiest rank's decodes: ``rank_seqs`` where the caller counts them (benchmarks/serving_sim.py's ranks), else
    ``n / dp``, which :meth:`Engine.graph_rows` rounds up (TensorRT-LLM deals no rank past the ceiling of the
    ranks' mean, ``Trtllm.dp_dealing``). With a
    measured host time per request and per step (``Settings.host_request_s``, ``host_step_s``) the engine's host loop
    rule applies
    (:func:`kvplan.host.step_with_host_s`); without one the step is the GPU's. Kept per setup object and exact
    arguments (:data:`_STEPS`; looked up here rather than in a wrapper: a plan asks for thousands of steps)."""
    key = (id(s), n, p, context, prefix, ep, p_all, chunks, prompts, rank_seqs)
    hit = _STEPS.get(key)
    if hit is not None and hit[0] is s:
        return hit[1]
    gpu_s = step_times(s, n=n, p=p, context=context, prefix=prefix, ep=ep, p_all=p_all, chunks=chunks,
                       prompts=prompts, rank_seqs=rank_seqs).total  # fmt: skip
    # The host loop's work over the busiest rank's requests (its decodes, and the prompts with a chunk in the step).
    requests = n / s.dp + (chunks if p > 0 else 0.0)
    host = s.settings
    return _keep_step(key, s, step_with_host_s(s.engine, gpu_s, requests=requests, request_s=host.host_request_s,
                                               step_s=host.host_step_s))  # fmt: skip


def step_times(
    s: Setup,
    *,
    n: float,
    p: float,
    context: int,
    prefix: int = 0,
    ep: bool = False,
    p_all: float | None = None,
    chunks: float = 1.0,
    prompts: float = 1.0,
    rank_seqs: float | None = None,
) -> OpTimes:
    """The GPU's part of :func:`_step` by operation class (:class:`kvplan.latency.OpTimes`), the same arguments: the
    decode-only step with the engine's CUDA-graph padding where it pads (for the busiest rank's decodes, ``rank_seqs``
    or ``n / dp``) and eager past its graphs. Not kept (the diagnostics that read the classes ask for a few)."""
    busiest = n / s.dp if rank_seqs is None else rank_seqs
    padded = s.engine.graph_rows(s.settings, busiest) if p <= 0 and s.pp == 1 else None
    eager = p <= 0 and beyond_graph_cap(_graph_cap(s), decode_seqs=n, dp=s.dp, pp=s.pp)
    return mixed_step_latency(
        s.spec,
        s.gpu,
        decode_seqs=n,
        decode_context=context,
        prefill_tokens=p,
        prefill_prefix=prefix,
        tp=s.tp,
        kv_dtype_name=s.kv_dtype,
        weights_dtype=s.weights_dtype,
        engine=s.engine.key,
        expert_parallel=ep or s.ep,
        pp=s.pp,
        dp=s.dp,
        gpus_per_node=s.gpus_per_node,
        prefill_tokens_all_ranks=p_all,
        two_batch=s.settings.two_batch_overlap,
        deepep=s.settings.deepep,
        prompt_chunks=chunks,
        padded_rank_seqs=padded,
        prefill_prompts=prompts,
        settings=s.settings,
        eager_decode=eager,
    )


def _graph_cap(s: Setup) -> tuple[bool, int | None]:
    """The engine's CUDA-graph cap for ``s`` (:func:`kvplan.latency.graph_cap`: latency.past_graph_cap without the
    batch), kept in :data:`_STEPS` beside the setup's steps."""
    key = (id(s), "graph_cap")
    hit = _STEPS.get(key)
    if hit is None or hit[0] is not s:
        hit = _STEPS[key] = (s, graph_cap(s.spec, s.engine, s.settings))
    return hit[1]


def _micro_batches(s: Setup) -> int:
    """How many times the engine's batch limits apply per pipeline cycle: ``pp`` where it schedules each
    micro-batch against them (``Engine.limits_per_micro_batch``), else once."""
    return s.pp if s.engine.limits_per_micro_batch else 1


def _budget(s: Setup, override: int | None) -> int:
    """Prompt + decode tokens one step (with PP: one pipeline cycle) may carry."""
    return (override or s.max_num_batched_tokens or DEFAULT_TOKEN_BUDGET) * _micro_batches(s)


def _room(s: Setup, budget: int, n: float) -> float:
    """Prompt tokens one prompt's chunk can take: a data-parallel rank's budget less its share of the decodes, and
    with per-micro-batch limits (``budget`` is then the cycle's) one micro-batch's share of that."""
    return (budget - n / s.dp) / _micro_batches(s)


def _mean_step(s: Setup, *, n: float, p: float, prompt: int, budget: int, context: int, ep: bool) -> float:
    """The mean step time when ``p`` prompt tokens per step arrive as whole chunks.

    A prompt is not spread thinly over every step: it enters one step (or, past the budget, a few) as a
    chunk of up to ``budget - n`` tokens, and the other steps are decode-only (CUDA graphs, no prefill
    kernels). With a share ``f = p / chunk`` of the steps carrying a chunk, the mean is
    ``(1 - f) step(n, 0) + f step(n, chunk)``; when every step carries at least one chunk, ``step(n, p)``.
    With data-parallel ranks each rank admits its own chunks (:func:`_dp_mean_step`).
    """
    if p > 0 and not s.engine.mixes_steps(s.settings):  # prompt and decode batches as separate steps (SGLang)
        return _alternating_cycle(s, n=n, p=p, prompt=prompt, budget=budget, context=context, ep=ep)
    chunk = max(1.0, min(float(prompt), _room(s, budget, n)))
    if p <= 0:
        return _step(s, n=n, p=0, context=context, ep=ep)
    prefix = max(0, (prompt - int(chunk)) // 2)  # a long prompt's chunks sit, on average, half-way in
    if s.dp > 1:
        room = max(chunk, _room(s, budget, n))
        return _dp_mean_step(s, n=n, p=p, prompt=prompt, chunk=chunk, prefix=prefix, context=context, ep=ep, room=room)
    if _micro_batches(s) > 1:
        return _slots_mean_step(s, n=n, p=p, chunk=chunk, prefix=prefix, context=context, ep=ep)
    if p >= chunk:
        if s.pp > 1:  # p / chunk prompt chunks, each admitted by one of the micro-batches (mixed_step_latency)
            return _step(s, n=n, p=chunk, context=context, ep=ep, chunks=p / chunk)
        # p / prompt whole prompts in the step where a prompt fits one (each its own attention), else one long chunk
        return _step(s, n=n, p=p, context=context, ep=ep, prompts=p / prompt if chunk >= prompt else 1.0)
    share = p / chunk
    busy = _step(s, n=n, p=chunk, context=context, prefix=prefix, ep=ep)
    return (1 - share) * _step(s, n=n, p=0, context=context, ep=ep) + share * busy


def _alternating_cycle(s: Setup, *, n: float, p: float, prompt: int, budget: int, context: int, ep: bool) -> float:
    """The mean time between two decode steps where the engine runs prompt batches and decode batches as separate
    steps (:meth:`Engine.mixes_steps` False: SGLang without ``--enable-mixed-chunk``), ``p`` prompt tokens arriving
    per such cycle: :func:`_alternating_parts`' first figure."""
    return _alternating_parts(s, n=n, p=p, prompt=prompt, budget=budget, context=context, ep=ep)[0]


def _alternating_parts(s: Setup, *, n: float, p: float, prompt: int, budget: int, context: int,
                       ep: bool) -> tuple[float, float, float]:  # fmt: skip
    """(the mean cycle between two decode steps, the share of a rank's time in prompt steps, the length-biased mean
    of the rank's decode iterations) where prompt batches and decode batches are separate steps, ``p`` prompt tokens
    of ``prompt``-token prompts arriving per cycle. The third is what a prompt arriving during one of them waits out,
    twice over (:func:`_decode_steps_behind`): the decode step ``d`` with one rank; with several, the rank's decode
    iteration lasts ``d`` or, where another rank runs a prompt step in it, the prompt iteration, ``E[L^2] / E[L]``.

    SGLang's scheduler builds a prompt batch whenever prompts wait and runs it before the running requests' decode
    ("Run prefill first if possible": python/sglang/srt/managers/scheduler.py ``Scheduler.get_next_batch_to_run``, a
    new batch from ``get_new_batch_prefill`` else ``update_running_batch``; sgl-project/sglang @d51c1c21, read
    through the code index, the same in the 0.4 / 0.5 copies kvplan's engine rules cite), and a prompt batch holds
    no decode (the running batch joins it only under ``is_mixed_chunk``). Its prompt budget is the whole
    ``chunked_prefill_size`` (``PrefillAdder``'s ``rem_chunk_tokens``, less the running requests only when mixed:
    python/sglang/srt/managers/schedule_policy.py ``PrefillAdder.__init__`` @00550cd1; ``budget`` here): the
    waiting prompts fill it in arrival order, the one that does not fit entering as a chunk of what is left (the
    next prompt batch's first, ``add_chunked_req``), so ``N`` waiting prompts take ``ceil(N prompt / budget)``
    prompt steps, one after the other, the decodes waiting. Every decoding request advances one token a cycle: one
    decode step of the ``n`` running requests, ``d = step(n, 0)``, plus the prompt steps run since the last one.
    Prompts arrive at random (Poisson) with ``m = p / prompt`` a cycle on average, so a cycle runs ``k = E[ceil(N
    prompt / budget)]`` prompt steps (:func:`_prompt_steps`; ``m`` where ``m`` is small and a prompt fits the budget,
    ``m prompt / budget`` and a half when many wait) of ``p / k`` tokens each, a long prompt's chunks half-way into
    it (as :func:`_mean_step` places them). The cycle is ``d + k step(0, p / k)``: the prompt steps' time spread
    over the decode tokens, which is what a decoding request's TPOT carries; the prompt steps' share of the time,
    ``k step(0, p / k) / cycle``, is the load of the prompts' queue (:func:`_prompt_load`).

    With ``dp`` data-parallel ranks each rank's scheduler alternates on its own and the ranks run each iteration
    together (python/sglang/srt/managers/scheduler.py ``prepare_mlp_sync_batch`` gathers every rank's batch for the
    MoE layers, an idle one where a rank has none; ``get_next_batch_to_run`` keeps prompt and decode batches apart
    across ranks only with speculative decoding, "This branch makes sure prefill and decode batches will not be
    mixed when spec and dp-attn is enabled"). A rank's cycle is then ``1 + k`` iterations (``k`` from its share
    ``p / dp``), a share ``q = k / (1 + k)`` of its iterations prompt steps, ``dp q`` prompt steps per iteration
    over the replica. The requests that reach the replica during one iteration all wait for the next, whichever rank
    they are dealt to (SGLang deals in turn: python/sglang/srt/server_args.py ``load_balance_method =
    "round_robin"``), so the ranks' prompt steps fall into the same iterations, the more so after a long one: an
    iteration holds a prompt step when one arrived during the iteration before, ``a = 1 - exp(-r d)`` after a
    decode-only iteration and ``c = 1 - exp(-r B)`` after a prompt iteration of ``B``, at ``r`` prompt steps a second
    over the replica; a two-state chain whose prompt iterations are a share ``b = a / (1 - c + a)`` (at least
    ``q``). ``r`` and ``B`` come from one pass at the chain-free ``b0 = 1 - exp(-dp q)``: ``r = dp q / ((1 - b0) d +
    b0 B(b0))``, then ``B`` again at ``b``. In a prompt iteration ``dp q / b`` ranks run a prompt step each while
    the others decode their ``n / dp`` (``n (1 - q / b)`` decodes in all). Before (stop 24), the ranks were taken
    as independent, ``b = 1 - (1 - q)^dp``; benchmarks/serving_sim.py ``--dp`` ran 25-48 % below that TPOT at
    0.6-0.85 of the rate, and within -12 .. +4 % of this one. The cycle is ``(1 + k)`` mean iterations; with one
    rank it is ``d + k step(0, p / k)`` exactly."""
    per_rank = p / s.dp
    decode = _step(s, n=n, p=0, context=context, ep=ep)
    if per_rank <= 0:
        return decode, 0.0, decode
    steps = _prompt_steps(per_rank / prompt, prompt=prompt, budget=budget)
    tokens = per_rank / steps
    prefix = max(0, (prompt - budget) // 2)  # a long prompt's chunks sit, on average, half-way in
    # a prompt batch of whole prompts: each its own attention (:func:`_mean_step`; with several ranks too, stop 29)
    whole = tokens / prompt if not prefix and tokens > prompt else 1.0
    if s.dp == 1:
        prompts = steps * _step(s, n=0.0, p=tokens, context=context, prefix=prefix, ep=ep, prompts=whole)
        return decode + prompts, prompts / (decode + prompts), decode
    share = steps / (1 + steps)  # a rank's iterations that are its prompt steps

    def busy_at(busy_share: float) -> float:  # the iteration that holds ``dp q / busy_share`` ranks' prompt steps
        return _step(s, n=n * (1 - share / busy_share), p=tokens, context=context, prefix=prefix, ep=ep,
                     p_all=tokens * s.dp * share / busy_share, prompts=whole)  # fmt: skip

    busy_share = -math.expm1(-s.dp * share)  # 1 - exp(-dp q): the chain-free share, for the chain's rate
    busy = busy_at(busy_share)
    rate = s.dp * share / ((1 - busy_share) * decode + busy_share * busy)  # prompt steps a second, replica-wide
    after_decode, after_busy = -math.expm1(-rate * decode), -math.expm1(-rate * busy)
    busy_share = max(share, after_decode / (1 - after_busy + after_decode))  # the two-state chain
    busy = busy_at(busy_share)
    cycle = (1 + steps) * ((1 - busy_share) * decode + busy_share * busy)
    own_decode = cycle - steps * busy  # the rank's one decode iteration a cycle: d, or busy where another prefills
    if own_decode <= 0:  # nothing decodes (n = 0, d = 0): the chain puts every iteration in prompt steps, no decode
        return cycle, 1.0, decode  # iteration is left to wait out; the limit of E[L^2] / E[L] as the share of d -> 1
    plain = min(1.0, max(0.0, (busy - own_decode) / (busy - decode))) if busy > decode else 1.0
    biased = (plain * decode**2 + (1 - plain) * busy**2) / own_decode
    return cycle, steps * busy / cycle, biased


def _prompt_steps(mean_prompts: float, *, prompt: int, budget: int) -> float:
    """``E[ceil(N prompt / budget)]``, ``N`` Poisson with mean ``mean_prompts``: the prompt steps that a cycle's
    arrivals take when the waiting prompts pack each step's ``budget`` tokens (:func:`_alternating_parts`). Summed
    over ``N`` within 12 standard deviations of the mean (the rest weighs below 1e-30), or until a term falls below
    the sum's precision; from a mean of 200 prompts on, ``mean x prompt / budget + 1/2`` (the ceiling's mean excess
    over a spread of many steps; none where a prompt is a whole number of budgets)."""
    per = prompt / budget
    if mean_prompts > 200:
        return mean_prompts * per + (0.0 if per == int(per) else 0.5)
    top = int(mean_prompts + 12 * math.sqrt(mean_prompts) + 30)
    weight, total = math.exp(-mean_prompts), 0.0  # P(N = 0); e^-200 is far above the smallest double
    for count in range(1, top + 1):
        weight *= mean_prompts / count  # P(N = count), by the recurrence
        term = weight * math.ceil(count * per - 1e-9)  # 1e-9: a whole count of budgets is that many steps
        total += term
        if count > mean_prompts and term < 1e-17 * total:  # past the mode and below the sum's precision
            break
    return total


def _slots_mean_step(s: Setup, *, n: float, p: float, chunk: float, prefix: int, context: int, ep: bool) -> float:
    """The mean pipeline cycle where each of the ``m`` micro-batches admits its own prompt (``_micro_batches``:
    TensorRT-LLM with PP), ``p`` prompt tokens per cycle arriving as whole prompts of ``chunk``-token chunks.

    TensorRT-LLM schedules one micro-batch per iteration from the requests not in flight: a prompt whose chunk is
    still in the pipeline is skipped, and the micro-batch takes the next waiting prompt's chunk instead
    (tensorrt_llm/_torch/pyexecutor/py_executor.py ``_executor_loop_pp``: ``_schedule`` passes
    ``self.inflight_req_ids`` to ``schedule_request``, ``_add_inflight_ids`` on launch, ``_remove_inflight_ids`` once
    the micro-batch's tokens are back; the TensorRT-engine runtime the same, cpp/tensorrt_llm/batch_manager/
    microBatchScheduler.cpp ``MicroBatchScheduler::operator()``, "if already in execution, skip"). So a prompt holds
    one micro-batch slot for its ``prompt / chunk`` cycles, one chunk a cycle, and prompts prefilling at the same
    time ride in different micro-batches: the slots are the servers of a queue (one prompt each), and a cycle with
    ``j`` prompts in prefill (up to ``m``) carries ``j`` chunks and lasts ``d_j`` (:func:`_chunk_cycles`; ``d_0``
    the plain cycle).

    Prompts arrive in time (Poisson), so the number in prefill follows Erlang's state probabilities
    (:func:`erlang_states`) in time, ``pi(j)`` at an offered load ``a`` (arrival rate x a prompt's time in its
    slot); a cycle in state ``j`` lasts ``d_j``, so cycles are in state ``j`` in proportion to ``pi(j) / d_j``, the
    mean cycle is ``1 / sum_j pi(j) / d_j``, and the chunks per cycle are ``sum_j j pi(j) / d_j`` over the same sum,
    which must equal ``p / chunk``: that fixes ``a`` (bisection; it rises with ``a``). A discrete-event simulation of
    the v5.0 B200 TP2 PP2 Server run's pipeline (benchmarks/pp_queue_sim.py) agrees within 1 %, where Erlang's
    states taken per cycle at ``p / chunk`` (less pairing: long loaded cycles gather more arrivals) were up to 9 %
    high. Before, a cycle carried a lone chunk in a share ``p / chunk`` of the cycles and never two at once below
    one: where two prompts prefill together the pipeline runs both in one cycle of about the lone chunk's length
    (its trip through every stage), so that charged every chunk the whole trip. With ``m = 1`` this is exactly
    that one-slot mean, ``(1 - f) d_0 + f d_1`` at ``f = p / chunk``. From ``p / chunk >= m`` every micro-batch
    carries ``p / m`` prompt tokens, as before."""
    slots = _micro_batches(s)
    offered = p / chunk
    if offered >= slots:  # every micro-batch loaded: p / m prompt tokens each (mixed_step_latency's even cycle)
        return _step(s, n=n, p=chunk, context=context, ep=ep, chunks=offered)
    # The chunks' prefix as :func:`_mean_step` prices it either side of one chunk per cycle: half-way into a long
    # prompt below it, none from it on (as the pp = 1 and DP paths price a step that always carries prompt tokens).
    lead = prefix if offered < 1 else 0
    cycles = (_step(s, n=n, p=0, context=context, ep=ep),
              *_chunk_cycles(s, n=n, chunk=chunk, context=context, prefix=lead, ep=ep, slots=slots))  # fmt: skip
    return queue_mean_cycle(offered, cycles)


def queue_mean_cycle(chunks_per_cycle: float, cycles: tuple[float, ...]) -> float:
    """The mean cycle of a pipeline whose ``m = len(cycles) - 1`` slots serve a Poisson queue of prompts, a cycle
    with ``j`` busy slots lasting ``cycles[j]``, at ``chunks_per_cycle`` (below ``m``) busy slots per cycle on
    average: Erlang's time-average states at the offered load that gives that cycle average (see
    :func:`_slots_mean_step`)."""
    m = len(cycles) - 1
    seen: dict[float, tuple[float, float]] = {}  # the root's last load is one it tried: its states are not summed twice

    def per_cycle(offered: float) -> tuple[float, float]:  # (mean busy slots per cycle, mean cycle)
        hit = seen.get(offered)
        if hit is None:
            terms, states_sum = _erlang_terms(offered, m)  # erlang_states(offered, m) is terms / states_sum
            weights = [x / states_sum / d for x, d in zip(terms, cycles, strict=True)]
            total = sum(weights)
            hit = seen[offered] = (sum([j * w for j, w in enumerate(weights)]) / total, 1 / total)
        return hit

    def short(offered: float) -> float:  # > 0 while the offered load gives fewer chunks per cycle than asked
        return chunks_per_cycle - per_cycle(offered)[0]

    if chunks_per_cycle <= 0:
        return cycles[0]
    # The bracket: Erlang's time-average busy servers equal the offered load, and the cycle average weighs each state
    # by 1 / d_j, so it lies between offered x min(d) / max(d) and the offered load itself.
    lo = chunks_per_cycle
    hi = min(m * (1 - 1e-9), chunks_per_cycle * max(cycles) / min(cycles))  # just under m: Erlang needs a load < m
    g_lo = short(lo)
    if g_lo <= 0:
        return per_cycle(lo)[1]
    offered = _root(short, lo, g_lo, hi, short(hi))
    return per_cycle(offered)[1]


def _chunk_cycles(s: Setup, *, n: float, chunk: float, context: int, prefix: int, ep: bool, slots: int) -> tuple:
    """:func:`_step` with ``chunks = 1 .. slots`` prompt chunks of ``chunk`` tokens, the stages priced once for all
    (:func:`kvplan.latency.pp_chunk_cycles`; equal to the ``_step`` figures), kept in :data:`_STEPS`."""
    key = (id(s), "cycles", n, chunk, context, prefix, ep, slots)
    hit = _STEPS.get(key)
    if hit is not None and hit[0] is s:
        return hit[1]
    counts = tuple(float(j) for j in range(1, slots + 1))
    gpu_s = pp_chunk_cycles(s.spec, s.gpu, decode_seqs=n, decode_context=context, prefill_tokens=chunk,
                            prefill_prefix=prefix, tp=s.tp, kv_dtype_name=s.kv_dtype, weights_dtype=s.weights_dtype,
                            engine=s.engine.key, expert_parallel=ep or s.ep, pp=s.pp, gpus_per_node=s.gpus_per_node,
                            two_batch=s.settings.two_batch_overlap, deepep=s.settings.deepep,
                            chunk_counts=counts, settings=s.settings)  # fmt: skip
    value = tuple(step_with_host_s(s.engine, g, requests=n + j, request_s=s.settings.host_request_s,
                                   step_s=s.settings.host_step_s)
                  for g, j in zip(gpu_s, counts, strict=True))  # fmt: skip
    return _keep_step(key, s, value)


def _dp_mean_step(s: Setup, *, n: float, p: float, prompt: int, chunk: float, prefix: int, context: int,
                  ep: bool, room: float | None = None) -> float:  # fmt: skip
    """The mean step time over ``s.dp`` data-parallel ranks that run each step together, each admitting its own
    prompt chunks, ``p`` prompt tokens of ``prompt``-token prompts arriving per step, ``chunk`` tokens at most one
    prompt's part of a rank's step and ``room`` (default ``chunk``) the rank's step: its budget less its decodes.

    The engines deal new requests over the ranks (TensorRT-LLM: tensorrt_llm/_torch/pyexecutor/
    executor_request_queue.py ``_balance_requests_across_ranks``: a heap on each rank's active requests' prompt
    tokens, then their count, capped at the ceiling of all active + new requests over the ranks; SGLang in turn,
    python/sglang/srt/server_args.py ``load_balance_method = "round_robin"``; vLLM V1 to the lowest ``waiting x 4 +
    running``, vllm/v1/engine/core_client.py ``DPLBAsyncMPClient.get_core_engine_for_request``), and each rank's own
    scheduler admits its prompts as chunks of up to ``chunk``. Nothing aligns the ranks' chunks by default
    (py_executor.py ``_schedule`` holds context requests back until every rank has one only with
    ``attention_dp_config.enable_balance``, off by default); the step is a prefill step when any rank carries a
    chunk (:func:`_landed_together` gives the share and the busiest rank's tokens: the requests that reach the
    replica during one step all enter the next, so the ranks' chunks fall together, and a prompt longer than
    ``chunk`` holds its rank for ``ceil(prompt / chunk)`` steps in a row), and it then holds ``p / that share``
    prompt tokens over all ranks (their expert layers). Where a rank's share fills its room every step, every step
    holds ``p / dp`` prompt tokens on every rank. The busiest rank takes every prompt dealt to it for the step, up to
    its room (each engine's scheduler fills the step's budget with waiting prompts: vLLM V1 ``Scheduler.schedule``,
    TensorRT-LLM's cpp/tensorrt_llm/batch_manager/microBatchScheduler.cpp ``MicroBatchScheduler::operator()`` while
    the step's tokens stay within ``max_num_tokens``, SGLang's ``PrefillAdder``), not one prompt: until stop 26 it
    was capped at one prompt's ``chunk``, and a rank's share past one prompt a step put the mean ``p / dp`` on every
    rank, which took no account of the busiest rank's extra prompts. Near the KV bound, where several prompts arrive
    a step, that step was short, and the sustainable rate high: a replica of Qwen3-30B-A3B DP4 EP4 on H100 (TensorRT-
    LLM, 2,048 / 256) went from 49.4 to 46.0 requests/s; benchmarks/serving_sim.py, the requests dealt in turn,
    saturates at about 0.93 of the old figure and runs to the new one (its batch within 1-5 % of kvplan's up to 0.95
    of it); with vLLM's dealing 44.9 -> 40.75 requests/s, the simulation within 1-6 % up to 0.95 and saturating at the
    new figure. TensorRT-LLM deals to the fewest active requests (:meth:`Engine.dp_dealing`): with fixed lengths a
    step's arrivals refill the ranks whose requests finished together, so prompts that arrived together stay
    together, and its simulation saturated near 0.9 of that figure (about 42 requests/s); since stop 27 its busiest
    rank takes the largest of ``dp`` Poisson shares of a step's arrivals (:func:`busiest_drawn`), not the even
    ``ceil(K / dp)``: the same replica 46.0 -> 39.8 requests/s, the simulation (that dealing, as the source deals)
    running to 41-42 (batch 796 of 996 at 39.8). Before (stop 25) the ranks were taken as
    independent, a share ``1 - (1 - f)^dp`` of the steps at ``f = p / (dp chunk)`` with one chunk on the busiest
    rank. Against benchmarks/serving_sim.py ``--dp`` (each engine's dealing, 0.3-0.85 of the rate) kvplan's TPOT
    went from -4 .. +36 % to -13 .. +14 % of the simulation's (one TensorRT-LLM row at its KV bound aside, -35 ->
    -40 %); with 20,000-token prompts (``--dp --long``) from -15 .. +164 % to -22 .. -2 %.

    Since stop 28 a prefill step of one-chunk prompts is the mean over its prompt count ``K`` of the step at ``K``
    prompts (:func:`_prefill_counts`), not the step at the mean count: the step is not linear in the count
    (DeepSeek-V3 DP8 EP8 on H200, TensorRT-LLM, 185 decodes: one 2,048-token prompt 191.9 ms, two on two ranks 238.1
    ms, 1.375 prompts at the mean 228.8 ms), and benchmarks/serving_sim.py prices each step at its own count. At the
    simulation's own operating point at 0.6 of the rate the mean step went from 87.22 to 82.6 ms against its 81.13.

    Where the engine aligns the ranks (:meth:`Engine.aligns_dp_prefill`: TensorRT-LLM's
    ``attention_dp_config.enable_balance``), every rank carries a chunk in a share ``f`` of the steps, all in the
    same ones: ``(1 - f) step(n, 0) + f step(n, chunk on every rank)``."""
    decode, share, busy = _dp_parts(s, n=n, p=p, prompt=prompt, chunk=chunk, prefix=prefix, context=context, ep=ep,
                                    room=room)  # fmt: skip
    return (1 - share) * decode + share * busy


def _dp_parts(s: Setup, *, n: float, p: float, prompt: int, chunk: float, prefix: int, context: int, ep: bool,
              room: float | None = None) -> tuple[float, float, float]:  # fmt: skip
    """(the decode-only step, the share of the steps that hold prompt work, such a step's length) over ``s.dp``
    data-parallel ranks (:func:`_dp_mean_step`, which weighs the two; :func:`_mixed_iteration_biased`, which takes
    the same steps' length-biased mean). Where every step holds prompt work, the share is 1 and both steps are it."""
    per_rank = p / s.dp
    room = chunk if room is None else room
    aligned = s.engine.aligns_dp_prefill(s.settings)
    whole = chunk >= prompt and not prefix  # a rank's step holds whole prompts, each its own attention
    if per_rank >= (chunk if aligned else room):
        prompts = _whole_prompts(per_rank, prompt, whole=whole)
        full = _step(s, n=n, p=per_rank, context=context, ep=ep, p_all=p, prompts=prompts)
        return full, 1.0, full
    decode = _step(s, n=n, p=0, context=context, ep=ep)
    cycle = _release_cycle(s, arrivals=p / prompt) if aligned and whole else 1.0
    if aligned and cycle <= 1.0:  # every rank carries a chunk in the same steps (Engine rule)
        busy = _step(s, n=n, p=chunk, context=context, prefix=prefix, ep=ep, p_all=chunk * s.dp)
        return decode, per_rank / chunk, busy
    drawn = s.engine.dp_dealing(s.settings) == "fewest_active"
    if aligned:  # the balancer's releases, once a cycle, each with the prompts of the cycle (_released_parts)
        held = hold_applies(decoding=n, ranks=s.dp)
        share, busy = _released_parts(s, n=n, prompt=prompt, arrivals=p / prompt, cycle=cycle, context=context, ep=ep,
                                      room=room, drawn=drawn)  # fmt: skip
        if held >= 1.0:
            return decode, share, busy
        _, free_share, free_busy = _independent_parts(s, n=n, p=p, prompt=prompt, chunk=chunk, prefix=prefix,
                                                      context=context, ep=ep, room=room, decode=decode,
                                                      drawn=drawn)  # fmt: skip
        mixed = held * share + (1 - held) * free_share
        return decode, mixed, (held * share * busy + (1 - held) * free_share * free_busy) / mixed
    return _independent_parts(s, n=n, p=p, prompt=prompt, chunk=chunk, prefix=prefix, context=context, ep=ep,
                              room=room, decode=decode, drawn=drawn)  # fmt: skip


def _independent_parts(s: Setup, *, n: float, p: float, prompt: int, chunk: float, prefix: int, context: int,
                       ep: bool, room: float, decode: float, drawn: bool) -> tuple[float, float, float]:  # fmt: skip
    """:func:`_dp_parts` where each rank admits its own prompts as they are dealt (no balancer holds them): the chain
    of :func:`_landed_together`, a prefill step priced over its prompt count (:func:`_prefill_counts`)."""
    whole = chunk >= prompt and not prefix

    def busy_at(share: float, heaviest: float) -> float:  # a prefill step: the busiest rank's tokens, p / share in all
        return _step(s, n=n, p=heaviest, context=context, prefix=prefix, ep=ep, p_all=p / share,
                     prompts=_whole_prompts(heaviest, prompt, whole=whole))  # fmt: skip

    run = max(1, math.ceil(prompt / chunk - 1e-9))  # the steps a prompt holds its rank
    arrivals = p / prompt  # prompts per mean step
    share, heaviest = _landed_together(arrivals, run=run, ranks=s.dp, prompt=prompt, chunk=chunk, decode=1.0, busy=1.0,
                                       room=room, drawn=drawn)  # fmt: skip
    busy = busy_at(share, heaviest)  # the first pass: steps of equal length, the chain-free figures
    share, heaviest = _landed_together(arrivals, run=run, ranks=s.dp, prompt=prompt, chunk=chunk, decode=decode,
                                       busy=busy, room=room, drawn=drawn)  # fmt: skip
    if run > 1 or share <= 0 or not PREFILL_OVER_COUNTS:
        return decode, share, busy_at(share, heaviest)
    rate = arrivals / ((1 - share) * decode + share * busy)  # prompts a second, as the chain took it (first-pass B)
    steps = 0.0
    for weight, tokens, total in _prefill_counts(rate * decode, rate * busy, share=share, ranks=s.dp, prompt=prompt,
                                                 room=room, drawn=drawn):  # fmt: skip
        steps += weight * _step(s, n=n, p=tokens, context=context, prefix=prefix, ep=ep, p_all=total,
                                prompts=_whole_prompts(tokens, prompt, whole=whole))  # fmt: skip
    return decode, share, steps


def _release_cycle(s: Setup, *, arrivals: float) -> float:
    """The mean iterations between two releases of the engine's attention-DP balancer
    (:func:`kvplan.dp_balance.release_cycle`, the random spread as :func:`_balance_hold` takes it) at ``arrivals``
    prompts an iteration; 1 where the engine holds none (:meth:`Engine.dp_balance_iters` None)."""
    iters = s.engine.dp_balance_iters(s.settings)
    if iters is None:
        return 1.0
    return release_cycle(arrivals_per_iter=arrivals, ranks=s.dp, timeout_iters=iters[0],
                         batching_wait_iters=iters[1], random_spread=True)  # fmt: skip


def _released_parts(s: Setup, *, n: float, prompt: int, arrivals: float, cycle: float, context: int, ep: bool,
                    room: float, drawn: bool) -> tuple[float, float]:  # fmt: skip
    """(the share of the steps that hold prompt work, such a step's length) under the attention-DP balancer
    (:meth:`Engine.aligns_dp_prefill`), whole prompts (each one rank's chunk), ``arrivals`` prompts an iteration.

    The balancer lets context requests go only on the iteration its counter releases them, every rank's at once
    (tensorrt_llm/_torch/pyexecutor/py_executor.py ``PyExecutor._balance_adp_requests``, the 1.x copies read; the
    module docstring of :mod:`kvplan.dp_balance`), once every ``cycle`` iterations on average
    (:func:`kvplan.dp_balance.release_cycle`). A release carries the ``K`` prompts that arrived during the cycle,
    ``A cycle`` on average (renewal-reward), taken as Poisson; a step holds prompt work where ``K >= 1``, a share
    ``(1 - exp(-A cycle)) / cycle`` of the steps, and is priced over ``K`` (:func:`_prefill_counts`: the busiest rank's
    share of the ``K`` as the engine deals them; ``K`` prompts in the expert layers). A busiest rank's tokens past its
    ``room`` go in later releases (each ``batching_wait_iters + 1`` iterations on at least, :func:`_release_every`,
    whose bound :func:`_bounds` keeps): the release counts ``tokens / room`` prefill steps of ``room`` tokens on that
    rank and its share of the others' (the share at most 1: past it the replica saturates there). The busiest rank's
    share is the dealing of a step's arrivals (``drawn``: :func:`busiest_given`), a stated approximation for a cycle's:
    benchmarks/serving_sim.py with the source's balancer and dealing puts the busiest rank per release between it and
    the even ``ceil(K / ranks)``, near it at a few prompts a release and below it at many (``serving_sim.py
    --balance``, docs/cost.md). Until stop
    30 every rank carried one prompt in a share ``A / ranks`` of the steps (the ranks aligned one prompt each), which
    is the release at a rate where every rank has a prompt each cycle, not at a low one: MLPerf's DeepSeek-R1 B200
    Server run (8 ranks, the clock of 9 iterations) at 5 req/s carries about 2 prompts a release, on about 2 ranks,
    3.5 times as often as 8 prompts on 8 ranks would come (a prefill step every ~10 iterations, not every ~37)."""
    m = arrivals * cycle
    steps = time = 0.0  # prefill steps a release takes, and their time, over its prompt count
    for weight, tokens, total in _prefill_counts(m, m, share=0.0, ranks=s.dp, prompt=prompt, room=math.inf,
                                                 drawn=drawn):  # fmt: skip
        k = max(1.0, tokens / room)  # a busiest rank past its room finishes in later releases' steps
        busiest = tokens / k
        steps += weight * k
        time += weight * k * _step(s, n=n, p=busiest, context=context, ep=ep, p_all=total / k,
                                   prompts=_whole_prompts(busiest, prompt, whole=True))  # fmt: skip
    return min(1.0, -math.expm1(-m) * steps / cycle), time / steps


def _whole_prompts(tokens: float, prompt: int, *, whole: bool) -> float:
    """The whole ``prompt``-token prompts in a rank's ``tokens`` of a step (one where the step holds a chunk or less):
    each attends to its own tokens (:func:`kvplan.latency.mixed_step_latency` ``prefill_prompts``), as the
    single-rank steps price them (:func:`_mean_step`)."""
    return tokens / prompt if whole and tokens > prompt else 1.0


def _landed_together(arrivals: float, *, run: int, ranks: int, prompt: int, chunk: float, decode: float,
                     busy: float, room: float | None = None, drawn: bool = False) -> tuple[float, float]:  # fmt: skip
    """(the share of the steps that hold prompt chunks, the busiest rank's prompt tokens in such a step) where
    ``arrivals`` prompts of ``prompt`` tokens reach the replica per mean step at random (Poisson), each holding its
    rank for ``run`` steps of up to ``chunk`` tokens, a decode-only step lasting ``decode`` and a prefill step
    ``busy`` (:func:`_dp_mean_step`).

    The requests that reach the replica during one step all wait for the next, whichever rank they are dealt to (an
    engine's dealing runs between steps: SGLang's controller and vLLM's client hand a request to a rank's queue, which
    the rank's scheduler reads before its next step; TensorRT-LLM's executor fetches and deals the queued requests at
    the start of each iteration, tensorrt_llm/_torch/pyexecutor/executor_request_queue.py
    ``_fetch_new_requests_attention_dp``, read through the code index, release not named), so the ranks' chunks fall
    into the same steps. A prompt's later chunks stay on its rank, one a step (SGLang's chunked request goes first
    into the rank's next prompt batch, schedule_policy.py ``PrefillAdder.add_chunked_req``, as
    :func:`_alternating_parts` cites; vLLM V1 keeps a partially prefilled request in ``running`` and schedules it
    before the waiting ones, vllm/v1/core/sched/scheduler.py ``Scheduler.schedule``; TensorRT-LLM's context chunks
    belong to a request that lives on one rank), so a step holds prompt work while the last prompts to arrive still
    have chunks left: the chain of ``j``, the steps left of the latest run, restarts at ``run`` after a step in which
    some prompt arrived, with the chance ``a = 1 - exp(-r d)`` after a decode-only step and ``c = 1 - exp(-r B)``
    after a prefill step (``r`` prompts a second), and otherwise counts down. Its stationary share of prefill steps
    ``b`` solves ``b / (1 - b) = a (1 - (1 - c)^L) / (c (1 - c)^L)`` (``L = run``; with ``L = 1``, ``b = a / (1 - c +
    a)``), ``r = m / ((1 - b) d + b B)`` at ``m`` prompts a mean step: the root in ``b`` (:func:`_share_root`) between
    the per-rank bound ``m L / ranks`` (no more than every rank's runs side by side) and ``min(1, m L)`` (runs that
    never meet). With equal steps (``d = B``) it is the chain-free ``1 - exp(-m L)`` (runs of ``L``
    steps started at random: no step in any of them).

    The busiest rank: with ``L = 1`` the ``K`` prompts that arrived during the step before are dealt in turn, so it
    takes ``ceil(K / ranks)`` of them (:func:`busiest_share`, ``K`` Poisson at ``r d`` or ``r B`` by the step
    before); ``drawn`` (TensorRT-LLM's dealing to the fewest active requests, :meth:`Engine.dp_dealing`) the largest
    of ``ranks`` independent Poisson shares of ``K`` (:func:`busiest_drawn`); ``prompt`` tokens each, at most
    ``room`` (the rank's budget less its decodes; ``chunk`` where not given); with ``L > 1`` it carries a whole chunk
    except in the last step of a run, the chain's state 1 (a share ``b c (1 - c)^(L - 1) / (1 - (1 - c)^L)`` of the
    steps: the runs that started together end together), where the prompt's last ``prompt - (L - 1) chunk`` tokens
    are left, and the rank's next waiting prompt, where it has one, fills the rest of the step (the rank's busy share
    ``m L / ranks`` of the difference; SGLang's ``PrefillAdder`` and vLLM V1's ``Scheduler.schedule`` take waiting
    prompts while the step's budget lasts), so at a rank busy in every step the busiest rank carries a whole chunk,
    as past it."""
    lo = min(1.0, arrivals * run / ranks)
    hi = min(1.0, arrivals * run)
    if arrivals <= 0:
        return 0.0, 0.0

    def chain(share: float) -> float:  # the chain's share of prefill steps at the rate this share gives
        rate = arrivals / ((1 - share) * decode + share * busy)
        after_decode, after_busy = -math.expm1(-rate * decode), -math.expm1(-rate * busy)
        left = math.exp(-rate * busy * run)  # (1 - c)^L: no arrival over a whole run
        if left <= 0:  # a run always meets another arrival
            return 1.0
        steps = -math.expm1(-rate * busy * run) / after_busy if after_busy > 0 else run  # (1 - (1 - c)^L) / c
        odds = after_decode * steps / left
        return odds / (1 + odds)

    share = lo
    if lo < hi:
        g_lo, g_hi = chain(lo) - lo, chain(hi) - hi  # chain(b) - b falls as b rises (a longer step, fewer arrivals)
        share = lo if g_lo <= 0 else hi if g_hi >= 0 else _share_root(lambda b: chain(b) - b, lo, g_lo, hi, g_hi)
    rate = arrivals / ((1 - share) * decode + share * busy)
    if run == 1:
        busiest = busiest_drawn if drawn else busiest_share
        after_decode = busiest(rate * decode, ranks=ranks)  # the busiest rank's prompts after each kind of step
        after_busy = busiest(rate * busy, ranks=ranks)
        carried = (1 - share) * after_decode + share * after_busy
        return share, min(chunk if room is None else room, prompt * carried / share)
    x = rate * busy  # the mean arrivals in a prefill step: c = 1 - exp(-x)
    # the chain's state 1, b c (1 - c)^(L - 1) / (1 - (1 - c)^L), in forms exact for tiny x (b / L as x -> 0)
    last = share * math.exp(-x * (run - 1)) * (math.expm1(-x) / math.expm1(-x * run) if x > 0 else 1 / run)
    tail = prompt - (run - 1) * chunk
    tail += lo * (chunk - tail)  # where the rank has its next prompt waiting (a share lo of its steps) it fills up
    return share, (last * tail + (share - last) * chunk) / share


# True: an attention-DP prefill step of one-chunk prompts is priced over its prompt count (:func:`_prefill_counts`);
# False: at the mean count (until stop 28), kept for the before / after comparison (tests/test_dp_prefill_counts.py)
PREFILL_OVER_COUNTS = True


def _count_bins() -> Iterator[tuple[int, int]]:
    """The bins ``[lo, hi]`` of a prefill step's prompt count that :func:`_prefill_counts` prices one step each: every
    count alone up to :data:`COUNT_BINS` (8), then that many bins of width 2, of width 4 and so on (a bin at most a
    quarter of its counts wide)."""
    lo, width = 1, 1
    while True:
        for _ in range(COUNT_BINS):
            yield lo, lo + width - 1
            lo += width
        width *= 2


# The mass of a prefill step's prompt counts (:func:`_prefill_counts`) left below the first bin it prices and above the
# last, each merged into that bin (1e-3 of the prefill steps), and the bins of each width (:func:`_count_bins`: 8).
# Chosen for speed against accuracy on benchmarks/serving_sim.py's DP cases and a DP8 500-token one, vLLM and
# TensorRT-LLM at 0.1-0.95 of the rate: TPOT within 0.076 % of every count priced (1e-5, 16 bins); 1e-3 and 4 bins
# 0.40 %, 1e-2 and 8 bins 1.9 % (the tail's busiest rank taken at its mean count); 1e-3 and 8 bins price about 7 %
# fewer steps than 1e-4 in `plan gpt-oss-120b --rate 10` (5,364 DP steps against 5,997; 3,007 at the mean count)
COUNT_TAIL = 1e-3
COUNT_BINS = 8


def _prefill_counts(after_decode: float, after_busy: float, *, share: float, ranks: int, prompt: int, room: float,
                    drawn: bool) -> list[tuple[float, float, float]]:  # fmt: skip
    """(weight, the busiest rank's prompt tokens, all ranks' prompt tokens) over the prompt counts ``K`` of the
    prefill steps of :func:`_dp_parts` (one-chunk prompts); the weights sum to 1.

    The prompts in a prefill step are those that arrived during the step before (:func:`_landed_together`): ``K``
    Poisson of mean ``after_decode`` after a decode-only step (a share ``1 - share`` of the steps) and
    ``after_busy`` after a prefill step, ``K >= 1``. The busiest rank takes ``ceil(K / ranks)`` of them where the
    engine deals evenly, and where ``drawn`` (TensorRT-LLM's dealing, :meth:`Engine.dp_dealing`) the largest of the
    ranks' uniform shares of ``K`` (:func:`busiest_given`, whose mean over ``K`` is :func:`busiest_drawn`), ``prompt``
    tokens each and at most ``room``; all ranks together ``K prompt`` (a rank's tokens past its room wait for its next
    step; the mean over the prefill steps stays ``p / share``, the mean-count step's). Each Poisson's counts from 8
    standard deviations and 10 below its mean to as far above (the mass outside is below 1e-14) in
    :func:`_count_bins`, each bin priced at its weighted mean counts (exact where a bin holds one count; the step
    taken as linear in the count inside a wider bin, and past :data:`GIVEN_EXACT_UP_TO` prompts the drawn busiest
    rank at the bin's mean count); the :data:`COUNT_TAIL` below the first bin is merged into it, and the last bin
    takes the counts above it once they hold less than that, their mass and mean count exactly (the Poisson's first
    moment less the counts seen), the busiest rank's share of them at their mean count."""
    means = [(part, m) for part, m in ((1 - share, after_decode), (share, after_busy)) if part > 0 and m > 0]
    total = sum(part * -math.expm1(-m) for part, m in means)  # the steps with K >= 1
    first = sum(part * m for part, m in means)  # their prompts: E[K] over all steps
    starts = [max(1, int(m - 8 * math.sqrt(m) - 10)) for _, m in means]  # each Poisson's own window
    low, high = min(starts), max(int(m + 8 * math.sqrt(m) + 10) for _, m in means)
    terms = [0.0] * len(means)  # part x P(K = k) of each, entered at its start (placed by lgamma: no underflow)
    tail = COUNT_TAIL * total
    bins: list[list[float]] = []  # [mass, busiest tokens x mass, all tokens x mass]
    seen = counted = 0.0  # the mass and the prompts of the counts taken so far
    far = [0.0, 0.0]  # a bin's mass and prompts past GIVEN_EXACT_UP_TO, under the drawn dealing
    k = low
    for _, hi in _count_bins():
        if hi < low:
            continue
        if not bins or seen > tail:
            bins.append([0.0, 0.0, 0.0])  # a new bin once the tail below holds COUNT_TAIL
        current = bins[-1]
        while k <= min(hi, high):
            for j, ((part, m), start) in enumerate(zip(means, starts, strict=True)):
                if k == start:
                    terms[j] = part * math.exp(k * math.log(m) - m - math.lgamma(k + 1))
            w = sum(terms)
            current[0] += w
            current[2] += w * k * prompt
            if drawn and k > GIVEN_EXACT_UP_TO:  # priced at the bin's mean count below
                far[0], far[1] = far[0] + w, far[1] + w * k
            else:
                top = busiest_given(k, ranks=ranks) if drawn else -(-k // ranks)
                current[1] += w * min(room, top * prompt)
            seen, counted = seen + w, counted + w * k
            k += 1
            terms = [term * m / k for term, (_, m) in zip(terms, means, strict=True)]
        if far[0] > 0:
            current[1] += far[0] * min(room, busiest_given(round(far[1] / far[0]), ranks=ranks) * prompt)
            far = [0.0, 0.0]
        rest = total - seen
        if rest <= tail or k > high:  # the counts above: their mass and mean count exactly, the busiest rank's at that
            if rest > 0:  # mean (past ``high`` the rest is below 1e-14 of the steps)
                mean = max(float(k), (first - counted) / rest)
                top = busiest_given(round(mean), ranks=ranks) if drawn else math.ceil(mean / ranks)
                current[0] += rest
                current[1] += rest * min(room, top * prompt)
                current[2] += (first - counted) * prompt
            break
    mass = sum(b[0] for b in bins)
    return [(b[0] / mass, b[1] / b[0], b[2] / b[0]) for b in bins if b[0] > 0]


# E[max | K] of ranks' uniform shares of K prompts, per rank count (:func:`busiest_given`), grown as asked
_GIVEN: dict[int, list[float]] = {}
_GIVEN_PAST: dict[tuple[int, int], float] = {}  # (count, ranks) -> busiest_given past GIVEN_EXACT_UP_TO
GIVEN_EXACT_UP_TO = 32  # prompts: past this the largest share is busiest_drawn's (Poisson shares of mean K / ranks)


def busiest_given(count: int, *, ranks: int) -> float:
    """``E[max(N_1 .. N_ranks) | N_1 + .. + N_ranks = count]``, each of ``count`` prompts dealt to one of ``ranks``
    at random (uniform multinomial shares): the busiest rank's prompts in a step of ``count`` under TensorRT-LLM's
    dealing as kvplan prices it (:func:`busiest_drawn` is its mean over a Poisson ``count``). Exact up to
    :data:`GIVEN_EXACT_UP_TO` prompts: ``P(max <= m | K = k) = k! [x^k] (sum_{j <= m} (x / ranks)^j / j!)^ranks``
    (the shares' exponential generating function; ``(e^(x / ranks))^ranks = e^x`` keeps the coefficients at most
    ``1 / k!``), summed ``E = sum_{m < k} (1 - P(max <= m))``; past it :func:`busiest_drawn` at mean ``count`` (its
    Poisson shares differ from the multinomial's in their spread by a share ``1 / ranks`` of it)."""
    if count <= 0:
        return 0.0
    if ranks == 1:
        return float(count)
    if count > GIVEN_EXACT_UP_TO:
        key = (count, ranks)
        if key not in _GIVEN_PAST:
            _GIVEN_PAST[key] = busiest_drawn(count, ranks=ranks)
        return _GIVEN_PAST[key]
    table = _GIVEN.get(ranks)
    if table is None or len(table) <= count:
        size = 8
        while size < count:
            size *= 2
        table = _GIVEN[ranks] = _given_table(min(size, GIVEN_EXACT_UP_TO), ranks)
    return table[count]


def _given_table(size: int, ranks: int) -> list[float]:
    """:func:`busiest_given` for every count ``0 .. size`` at once (one truncated power of the generating function
    per bound ``m``)."""
    factorial = [1.0]
    for k in range(1, size + 1):
        factorial.append(factorial[-1] * k)
    expected = [0.0] * (size + 1)
    for m in range(size):  # P(max <= m | k) for every k; counts k <= m have it 1 and add nothing
        base = [(1.0 / ranks) ** j / factorial[j] if j <= m else 0.0 for j in range(size + 1)]
        power = _series_power(base, ranks, size)
        for k in range(m + 1, size + 1):
            expected[k] += 1.0 - min(1.0, power[k] * factorial[k])
    return expected


def _series_power(base: list[float], exponent: int, size: int) -> list[float]:
    """``base ** exponent`` as a power series truncated after degree ``size`` (squaring)."""
    result = [1.0] + [0.0] * size
    while exponent:
        if exponent & 1:
            result = _series_product(result, base, size)
        exponent >>= 1
        if exponent:
            base = _series_product(base, base, size)
    return result


def _series_product(a: list[float], b: list[float], size: int) -> list[float]:
    """``a b`` truncated after degree ``size``."""
    out = [0.0] * (size + 1)
    for i, x in enumerate(a):
        if x:
            for j in range(size + 1 - i):
                out[i + j] += x * b[j]
    return out


def _share_root(g, lo: float, g_lo: float, hi: float, g_hi: float) -> float:  # noqa: ANN001
    """The root of the falling ``g`` in [lo, hi] (``g(lo) > 0 > g(hi)``) to 1e-12: :func:`_illinois` until the
    interval is that narrow (its midpoint) or ``g`` is exactly 0 (that point)."""
    hit, lo, hi = _illinois(g, lo, g_lo, hi, g_hi, width=1e-12, relative=False, root=0.0)
    return (lo + hi) / 2 if hit is None else hit


def busiest_share(mean_arrivals: float, *, ranks: int) -> float:
    """``E[ceil(K / ranks)]``, ``K`` Poisson with mean ``mean_arrivals``: the prompts the busiest of ``ranks``
    data-parallel ranks takes when ``K`` arrive together and are dealt evenly (:func:`_landed_together`). Summed as
    :func:`_prompt_steps` sums; from a mean of 200 on, ``mean / ranks + (ranks - 1) / (2 ranks)`` (the ceiling's
    mean excess over a spread of many ranks' worth)."""
    if mean_arrivals > 200:
        return mean_arrivals / ranks + (ranks - 1) / (2 * ranks)
    top = int(mean_arrivals + 12 * math.sqrt(mean_arrivals) + 30)
    weight, total = math.exp(-mean_arrivals), 0.0  # P(K = 0)
    for count in range(1, top + 1):
        weight *= mean_arrivals / count  # P(K = count), by the recurrence
        term = weight * -(-count // ranks)  # ceil(count / ranks), in integers
        total += term
        if count > mean_arrivals and term < 1e-17 * total:  # past the mode and below the sum's precision
            break
    return total


def busiest_drawn(mean_arrivals: float, *, ranks: int) -> float:
    """``E[max(N_1 .. N_ranks)]``, the ``N_i`` independent Poisson of mean ``mean_arrivals / ranks``: the prompts the
    busiest of ``ranks`` data-parallel ranks takes from a step's arrivals where each rank's share is drawn at random
    (TensorRT-LLM's dealing to the fewest active requests, :meth:`kvplan.engines.trtllm.Trtllm.dp_dealing`; the
    random spread of kvplan.dp_balance). ``sum_{k >= 0} (1 - F(k)^ranks)``, ``F`` the shares' Poisson CDF, summed
    over ``k`` within 12 standard deviations and 30 of the share's mean (below it each term is 1 to double precision;
    above it the terms weigh below 1e-30), the first term placed by ``lgamma`` so that a large mean starts there.

    Against the source's rule dealt alone (``benchmarks/serving_sim.py --dealing``: fixed lengths, Poisson arrivals,
    each request leaving 64 or 256 steps after it was dealt; 60,000 steps) the busiest rank's prompts per step with
    arrivals, at 0.3 / 1 / 2 / 4 / 8 arrivals a step, 4 ranks, 64 steps: 1.020 / 1.128 / 1.372 / 2.070 / 3.729
    against 1.042 / 1.176 / 1.438 / 2.103 / 3.507 here (over the steps with arrivals: this over ``1 - e^-mean``) and
    1.000 / 1.006 / 1.061 / 1.400 / 2.376 dealt evenly (:func:`busiest_share`); 8 ranks 1.009 / 1.063 / 1.201 / 1.675
    / 2.768 against 1.021 / 1.093 / 1.245 / 1.668 / 2.579 (even 1.000 / 1.000 / 1.000 / 1.022 / 1.411); with 256
    steps the same within 0.03 up to 4 arrivals (3.639 and 2.685 at 8); with prompts of 500-1,500 tokens (the
    heap's token key deciding) within 9 % of this up to 4 arrivals and 2-7 % below it at 8. In benchmarks/
    serving_sim.py's TensorRT-LLM runs (Qwen3-30B-A3B DP4 EP4 H100, 2,048 / 256) 0.95-0.97 of it (per prefill step,
    at 0.71, 2.38 and 3.31 arrivals a step: 1.076, 1.475, 1.769 against 1.115, 1.554, 1.862)."""
    if mean_arrivals <= 0:
        return 0.0
    mu = mean_arrivals / ranks
    spread = 12 * math.sqrt(mu) + 30
    first, top = max(0, int(mu - spread)), int(mu + spread)
    term = math.exp(first * math.log(mu) - mu - math.lgamma(first + 1))  # P(N = first)
    below, total = 0.0, float(first)  # P(N <= k - 1); every k under ``first`` adds 1 - F(k)^ranks = 1
    for k in range(first, top + 1):
        below += term
        total += 1.0 - min(below, 1.0) ** ranks
        term *= mu / (k + 1)
    return total


def _in_flight_output(out: Lengths, length: int) -> float:
    """The mean output length of the sequences in flight, ``length`` being the outputs' mean (or a quantile's
    length): ``E[O^2] / E[O] = E[O] (1 + scv)`` where the outputs' standard deviation is given
    (:attr:`Lengths.scv`), ``length`` itself without it.

    A sequence stays in the batch for as many steps as it has output tokens, so the batch holds each request in
    proportion to its output length: the length-biased sampling of renewal theory (the inspection paradox; S. M.
    Ross, Introduction to Probability Models, 10th ed., s. 7.7; L. Kleinrock, Queueing Systems I, s. 5.2, the
    residual life ``E[X^2] / (2 E[X])``). Little's law still gives the number decoding, ``rate x E[O] x step``;
    what the lengths' spread changes is how long the sequences in the batch are. Prompt and output lengths are
    taken as independent (the in-flight prompt mean stays ``E[I]``)."""
    return length * (1 + out.scv)


def _context_at(inp: Lengths, out: Lengths, q: float | None = None) -> int:
    """The mean context (tokens) of the sequences decoding, lengths at quantile ``q`` (None: the means): the prompt
    plus half the in-flight output (a sequence in flight is uniformly far through its output;
    :func:`_in_flight_output`). Without an output standard deviation ``I + O // 2``."""
    return inp.at(q) + int(_in_flight_output(out, out.at(q)) // 2)


def _decode_context(inp: Lengths, out: Lengths) -> int:
    return _context_at(inp, out)


def _reserved_tokens(s: Setup, inp: Lengths, out: Lengths, *, prefilled: bool = False) -> int:
    """KV tokens one running sequence holds against the pool: its whole prompt + output where the engine's
    scheduler reserves to completion under the setup's flags (``Engine.holds_to_completion``: TensorRT-LLM's
    GUARANTEED_NO_EVICT, not its MAX_UTILIZATION), else its mean context, plus, where the engine admits against a
    reserve for the outputs to come (``Engine.output_reserve``: SGLang), the reserve's floor ratio of its output
    tokens to come (:func:`_output_left`), or on a disaggregated decode replica (``prefilled``) the reserve's tokens
    kept free for each request there (``OutputReserve.prefilled_reserve_tokens``), where the engine has such a rule.
    The output is the in-flight one (:func:`_in_flight_output`: the batch holds long outputs in proportion to their
    length)."""
    if s.engine.holds_to_completion(s.settings):
        return inp.mean + int(_in_flight_output(out, out.mean))
    held = _decode_context(inp, out)
    reserve = s.engine.output_reserve
    if reserve is None:
        return held
    if prefilled and reserve.prefilled_reserve_tokens is not None:
        return held + reserve.prefilled_reserve_tokens
    floor = reserve.floor_ratio(reserve.conservativeness(s.settings, dp_attention=s.dp * s.settings.attention_dp > 1))
    return held + int(floor * _output_left(out, clip=reserve.clip_tokens))


def _output_left(out: Lengths, *, clip: int) -> float:
    """The mean of ``min(output tokens still to come, clip)`` over the sequences in flight: a sequence in flight is
    uniformly far through its (in-flight, :func:`_in_flight_output`) output ``L``, so its tokens to come are uniform on
    ``[0, L]``: ``L / 2`` where ``L <= clip``, else ``clip - clip^2 / (2 L)``."""
    length = _in_flight_output(out, out.mean)
    return length / 2 if length <= clip else clip - clip * clip / (2 * length)


def _entering_tokens(s: Setup, inp: Lengths, out: Lengths, *, prefilled: bool = False) -> int:
    """What a request must find free beyond the running requests' reserves to be admitted where the engine admits
    against a reserve for the outputs to come (:class:`kvplan.engines.base.OutputReserve`): its prompt plus its whole
    output, clipped (on a disaggregated decode replica, ``prefilled``, its prompt plus the reserve's tokens there,
    where the engine has that rule); 0 elsewhere (no such check)."""
    reserve = s.engine.output_reserve
    if reserve is None:
        return 0
    if prefilled and reserve.prefilled_reserve_tokens is not None:
        return inp.mean + reserve.prefilled_reserve_tokens
    return inp.mean + min(out.mean, reserve.clip_tokens)


def _limits(s: Setup, inp: Lengths, out: Lengths, *, prefilled: bool = False) -> tuple[float, str]:
    """Sequences a replica holds at once: each data-parallel rank has its own KV pool and its own engine core
    (vLLM runs one EngineCore per DP rank; SGLang one scheduler per DP attention rank), so both limits scale.

    Where the engine admits against a reserve for the running requests' outputs to come
    (:attr:`Engine.output_reserve`: SGLang's PrefillAdder, engines/sglang.py OUTPUT_RESERVE), a running request
    counts its held tokens plus the reserve at the ratio's floor (:func:`_reserved_tokens`: in a steady state few
    decode steps run short, so the ratio sits at its floor most of the time), and the last request admitted found
    its prompt + output (``E``, :func:`_entering_tokens`) free beyond the others' ``(N - 1) x held``: ``N =
    floor((pool - E) / held) + 1`` whole requests a rank (below one where the pool is smaller than ``E``: ``pool /
    E``). ``benchmarks/serving_sim.py --retract`` checks it against the scheduler run step by step (docs/cost.md,
    "SGLang's admission reserve and retraction"). On a disaggregated decode replica (``prefilled``) the engine's rule
    there where it has one (SGLang's decode instance: ``held`` = the mean context + 512, ``E`` = the prompt + 512,
    ``OutputReserve.prefilled_reserve_tokens``).

    Where the engine reserves each request's blocks to its completion (``Engine.holds_to_completion``: TensorRT-LLM's
    GUARANTEED_NO_EVICT, ``BindCapacityScheduler`` in tensorrt_llm/_torch/pyexecutor/scheduler.py over
    cpp/tensorrt_llm/batch_manager/capacityScheduler.cpp, 1.0-era copies read through the code index) a request holds
    whole blocks: ``KVCacheManager::getRemainingBlocksToCompletion`` counts ``ceilDiv(prompt + max new tokens,
    tokens_per_block)`` (kvCacheManager.cpp), so the pool admits ``pool / (ceil(held / block) x block)`` requests
    (:func:`kvplan.capacity.binding_pool` ``whole_blocks``), the places a saturated engine fills and
    benchmarks/published_compare.py's runs hold. Counted in tokens the limit was a few places higher, and where those
    crossed a captured CUDA-graph size the step at the limits was padded past it and :func:`max_rate` fell to that
    padded step's rate (Llama 4 Scout GB200 500/2000: 513 places a rank for the engine's 507, padded to 768 rows;
    stop 29). With lengths that vary, the mean reservation's blocks (within one block of the mean of each request's
    own). Elsewhere (vLLM, SGLang, MAX_UTILIZATION: blocks as the context grows) the held tokens as they are."""
    ranks = s.dp * s.settings.attention_dp
    pool, held = binding_pool(s, _reserved_tokens(s, inp, out, prefilled=prefilled),
                              whole_blocks=s.engine.holds_to_completion(s.settings))  # fmt: skip
    entering = _entering_tokens(s, inp, out, prefilled=prefilled)
    if not entering:
        kv = pool * ranks / held
    else:
        kv = ranks * (math.floor((pool - entering) / held) + 1 if pool >= entering else pool / entering)
    seqs = _batch_cap(s, inp, out)
    cap = seqs * s.dp * _micro_batches(s) if seqs is not None else None
    if cap is None or kv < cap:
        return kv, "kv_cache"
    return float(cap), "max_num_seqs"


def _batch_cap(s: Setup, inp: Lengths, out: Lengths) -> int | None:
    """The sequences one rank's scheduler runs at most: ``max_num_seqs``, or below it the batch the engine's runtime
    tunes to its KV capacity for requests of the mean input + output length (:meth:`Engine.runtime_batch_size`;
    TensorRT-LLM v0.17's tuner with ``Settings.batch_size_tuning``). The capacity is the executor's: whole blocks of
    the pool over whole blocks per request (:meth:`Stage.max_sequences`), the smallest over the stages."""
    if not s.settings.batch_size_tuning:  # the one setting that switches a runtime tuner on (Engine rule below)
        return s.max_num_seqs
    capacity = min(st.max_sequences(length=inp.mean + out.mean, prefix=s.shared_prefix, engine=s.engine)
                   for st in s.stages)  # fmt: skip
    tuned = s.engine.runtime_batch_size(s.settings, capacity)
    if tuned is None:
        return s.max_num_seqs
    batch = min(tuned, s.max_num_seqs) if s.max_num_seqs is not None else tuned
    return batch if batch < capacity else s.max_num_seqs


def _release_every(s: Setup, *, seqs: float) -> int:
    """Iterations between two prompt releases on a backlogged replica: 1, or ``batching_wait_iters + 1`` where the
    engine's attention-DP balancer holds prompts (:meth:`Engine.dp_balance_iters`) and every rank decodes (``seqs``
    at least the ranks).

    While every rank keeps a prompt waiting, each release resets the batching counter
    (tensorrt_llm/_torch/pyexecutor/py_executor.py ``_balance_adp_requests``, a 1.x version), so the next prompts, or
    the next chunk of a long one, wait ``W`` more iterations: a rank prefills at most its token budget less its decodes
    once every ``W + 1`` iterations, and its prompt tokens per iteration times ``W + 1`` plus its decodes must fit
    the budget (:func:`_solve`'s token bound)."""
    iters = s.engine.dp_balance_iters(s.settings) if s.dp > 1 else None
    if iters is None or seqs < s.dp:
        return 1
    return iters[1] + 1


def steps_only(s: Setup) -> Setup:
    """``s`` without its engine's API server (:attr:`Engine.front_end`): the replica as its steps alone, for the
    step-by-step simulations (``benchmarks/serving_sim.py``, ``serving_ttft_check.py``), which know no server."""
    if s.engine.front_end is None:
        return s
    return replace(s, engine=replace(s.engine, front_end=None))


def api_server_ceiling_rps(s: Setup, out: Lengths) -> float:
    """The most requests per second the replica's API server takes (:attr:`Engine.front_end`: one server a replica,
    its cost per request and per streamed token at the mean output; chat requests of the setup's model,
    :meth:`FrontEnd.cost_s`), inf where the engine's release has no measured one. vLLM's ``--api-server-count`` (more
    API server processes) is not read: one server."""
    fe = s.engine.front_end
    return math.inf if fe is None else fe.ceiling_rps(out.mean, family=s.spec.family)


def api_server_wait_s(s: Setup, rate_rps: float, out: Lengths, *, quantile: float | None = None) -> float:
    """A request's time in the replica's API server before the engine sees it (:attr:`Engine.front_end`): its own
    cost per request, after the server's other work at ``rate_rps`` (one server, Poisson arrivals, each request's
    work its cost plus its streamed tokens': :func:`queue_wait_s`'s M/D/1 wait, its mean or ``quantile``); 0 where
    the release has no measured one."""
    fe = s.engine.front_end
    if fe is None:
        return 0.0
    own = fe.cost_s(s.spec.family)  # a chat request of the setup's model
    work = own + out.mean * fe.token_s
    return own + queue_wait_s(work, rate_rps * work, quantile=quantile)


def _solve(load: _Load, *, refine: bool = True, full_start: bool = False) -> tuple[float | None, str]:
    """The least step time t with t = step(n(t), p(t)), or (None, what binds) past saturation: where the step at the
    limits outruns them. ``refine=False`` (:func:`max_rate`, which asks only whether the rate is sustained): the limits'
    step time instead of the root. ``full_start``: the greatest root instead, the one a batch that starts at the
    limits falls to (from above it ``step(t) < t``: the steps shorten as the batch drains), found by the same walk
    down the grid from the limits; a run whose requests are all queued at once starts there.

    The least root, because the engine reaches it from an empty start: a batch grows from nothing, each step's load
    is what arrived during the step before (``t -> step(n(t), p(t))``, Picard's iteration from 0), and while
    ``step(t) > t`` the steps keep lengthening, so the batch stops growing at the first ``t`` where the step no
    longer outruns the time (the step rises with ``t``: a longer step never takes less than a shorter one's load).
    Where the step is lumpy (GEMM tiles, CUDA-graph sizes, the chunk a step admits) ``step(t) - t`` may fall through 0,
    rise above it and fall again: on H200 the MLPerf Llama-2-70B Server run's least root is 99.4-99.6 ms, and regula
    falsi over the whole range returned the one at 120.7 ms (stop 27). Past saturation is where the step at the
    limits outruns them (``step(t_hi) > t_hi``), as before, even with a root below: the stretch under the limits where
    ``step(t) > t`` then carries any batch a burst of arrivals lifts into it up to the limits, and there the queue
    only grows; such a root is not a steady state (DeepSeek-V3 DP8 EP8 under TensorRT-LLM has one up to ~7.9 req/s,
    below the eager steps past the CUDA-graph sizes, where its limits hold ~7.5).

    In ``u = rate x t`` (requests arrived per step) the load and the limits are the rate's no more: the step is
    ``S(u) = step(O u, I u)`` and ``t`` solves ``rate S(u) = u``. So the steps are probed on one geometric grid of
    ``u``, ``u_hi / _GRID ** k`` from the limits down (``u_hi``: ``n`` at the sequence bound, or ``n + p`` at the
    token budget), kept per setup and lengths in :data:`_STEPS`: every rate's solve, and :func:`max_rate`'s, reads
    the same probes. The climb goes up from ``u = 0`` as the batch does: from a point ``u`` with ``rate S(u) > u``
    no root lies below ``rate S(u)`` (there ``rate S(u') >= rate S(u) >= u'``), so the next probe is the first grid
    point above it; the first point with ``rate S(u) <= u`` closes the bracket and :func:`_root` finds the root in
    it (a few probes at the rate's own ``u``). Far from the root the climb skips most points; near it it walks the
    grid. A dip of ``step(t) - t`` below 0 narrower than the grid's 5 % that falls between two probes is missed (the
    next root up is taken); so is one in a stretch skipped where the step falls as the load grows (the tiles'
    wave quantisation; rare and small)."""
    lam, inp, out = load.rate, load.inp, load.out
    ctx = _decode_context(inp, out)
    if lam <= 0:
        return 0.0, "compute"
    if lam > api_server_ceiling_rps(load.setup, out):  # the replica's API server takes no more requests a second
        return None, "api_server"
    u_hi, bound, p_cap = _bounds(load)

    def step(u: float) -> float:  # the mean step with u requests arriving per step
        return _load_step(load, u, p_cap=p_cap, context=ctx)

    grid = _grid_steps(load, ctx=ctx, u_hi=u_hi, p_cap=p_cap)

    def on_grid(k: int) -> tuple[float, float]:  # (u, rate S(u) - u) at the grid's k-th point down from u_hi
        u = u_hi * _GRID**-k
        hit = grid.get(k)
        if hit is None:
            hit = grid[k] = step(u)
        return u, lam * hit - u

    u_top, h_top = on_grid(0)
    if h_top > 0:  # the step at the limits outruns them
        t_hi = u_hi / lam
        return None, bound if _step(load.setup, n=1, p=0, context=ctx, ep=load.ep) < t_hi else "compute"
    if not refine:
        return u_top / lam, "compute"
    if full_start:
        return _greatest_root(lambda x: lam * step(x) - x, u_top, h_top) / lam, "compute"
    # S(0): no work at all but the weights' reads; probed at a trillionth of a request a step
    lo = min(1e-12, u_hi / 2)
    s0 = grid.get("zero")
    if s0 is None:
        s0 = grid["zero"] = step(lo)
    u, h = lo, lam * s0 - lo
    if h <= 0:
        return lo / lam, "compute"
    k = math.inf
    while k > 0:
        # rate S(u') >= rate S(u) >= u' for every u' up to rate S(u) (the step rises with the load): no root
        # there, so the next probe is the first grid point above it
        reach = u + h
        k = min(k - 1, math.ceil(math.log(u_hi / reach) / _LN_GRID) - 1) if reach < u_hi else 0
        while k > 0 and u_hi * _GRID**-k <= reach:
            k -= 1
        lo, h_lo = u, h
        u, h = on_grid(k)
        if h <= 0:
            break
    return _root(lambda x: lam * step(x) - x, lo, h_lo, u, h) / lam, "compute"


def _bounds(load: _Load) -> tuple[float, str, float]:
    """``(u_hi, what binds there, p_cap)`` for :func:`_solve`: the requests arriving per step (``u = rate x t``) at
    which the load meets the limits, whichever comes first, and the prompt tokens a step carries at most. None of
    them depends on the rate."""
    out, comp = load.out, load.prompt_computed
    u_seq = load.seq_limit / out.mean  # n reaches the sequence limit
    # n + p reach every DP rank's budget; under the balancer's batching wait, (W + 1) p (:func:`_release_every`).
    # Where prompt and decode batches are separate steps the budget bounds each prompt step, not the cycle: a cycle
    # runs as many prompt steps as its prompts need (:func:`_alternating_cycle`), and only the sequences bound.
    mixed = load.setup.engine.mixes_steps(load.setup.settings)
    every = _release_every(load.setup, seqs=load.seq_limit)  # at the bound n is far above the ranks
    u_tok = load.budget * load.setup.dp / (every * comp + out.mean) if mixed else math.inf
    bound = load.seq_limit_name if u_seq <= u_tok else "token_budget"
    return min(u_seq, u_tok), bound, load.budget * load.setup.dp if mixed else math.inf


def _load_step(load: _Load, u: float, *, p_cap: float, context: int) -> float:
    """The mean step with ``u`` requests arriving per step (:func:`_solve`'s ``S(u)``): ``O u`` decodes, ``I u``
    prompt tokens (at most ``p_cap``), the decodes at ``context``."""
    return _mean_step(load.setup, n=load.out.mean * u, p=min(load.prompt_computed * u, p_cap), prompt=load.inp.mean,
                      budget=load.budget, context=context, ep=load.ep)  # fmt: skip


def _greatest_root(h, u: float, h_u: float) -> float:  # noqa: ANN001
    """:func:`_solve`'s root nearest the limits, walked down to from the grid's top point ``u`` (``h(u) = rate S(u) - u
    <= 0``) as a full batch drains: from a point with ``rate S(u) <= u`` no root lies above ``rate S(u)`` (there
    ``rate S(u') <= rate S(u) <= u'``, the step rising with the load), so each step goes down to ``rate S(u)``, or
    along the secant of ``h`` through the last two points to its zero where that is further, by at most
    :data:`_LEAP` such steps; the first point with ``h > 0`` closes the bracket. Not on the grid: a stretch of
    ``step(t) > t`` just under the limits may be narrower than its 5 % (the TensorRT-LLM attention-DP table rows'
    eager steps past a CUDA-graph size), and only published_compare's runs ask for it."""
    slope = 0.0
    for _ in range(_BISECT):
        if h_u == 0:
            return u
        dist = -h_u  # down to rate S(u)
        if slope < 0:  # h falls with u here: the secant's zero lies below
            dist = max(dist, min(h_u / slope, _LEAP * dist))
        below = u - dist
        h_below = h(below)
        if h_below > 0:
            return _root(h, below, h_below, u, h_u)
        slope = (h_u - h_below) / (u - below)
        u, h_u = below, h_below
    return u


# The most one secant step of :func:`_greatest_root` goes, in its own descent steps (``rate S(u) - u``)
_LEAP = 4.0


# The ratio between neighbouring loads of :func:`_solve`'s grid: a dip of step(t) - t below 0 narrower than this share
# of t between two grid points is not seen (the solve's resolution for the least root, not its tolerance)
_GRID = 1.05
_LN_GRID = math.log(_GRID)


def _grid_steps(load: _Load, *, ctx: int, u_hi: float, p_cap: float) -> dict:
    """The mean steps :func:`_solve` has probed on its grid for ``load``'s setup and lengths at any rate (index ->
    step; "zero": the step with no load), kept in :data:`_STEPS` beside the setup's steps."""
    s = load.setup
    key = (id(s), "grid", load.out.mean, load.prompt_computed, load.inp.mean, load.budget, ctx, load.ep, p_cap, u_hi)
    hit = _STEPS.get(key)
    if hit is None or hit[0] is not s:
        return _keep_step(key, s, {})
    return hit[1]


def _root(g, lo: float, g_lo: float, hi: float, g_hi: float) -> float:  # noqa: ANN001
    """The root of ``g`` in [lo, hi] (``g(lo) > 0 >= g(hi)``) to ``_REL_TOL``: the smallest bracketed t with
    ``g(t) <= 0`` (:func:`_illinois` until the interval is narrower than ``_REL_TOL`` of its top, or a point on the
    root to far better than the tolerance)."""
    hit, _, hi = _illinois(g, lo, g_lo, hi, g_hi, width=_REL_TOL, relative=True, root=_ROOT_TOL)
    return hi if hit is None else hit


# A point :func:`_root` takes as the root: |g(t)| within this share of t (far inside _REL_TOL)
_ROOT_TOL = 0.01 * _REL_TOL


def _illinois(g, lo: float, g_lo: float, hi: float, g_hi: float, *, width: float, relative: bool,  # noqa: ANN001
              root: float) -> tuple:  # fmt: skip
    """Regula falsi on a falling ``g`` bracketed by [lo, hi] with the Illinois modification (the kept end's value
    halved when the same end is kept twice), a bisection step whenever the interval fails to halve: a few
    evaluations instead of the dozen or more of plain bisection, and never outside the bracket. Stops when the
    interval is narrower than ``width`` (``relative``: than ``width x hi``) or after ``_BISECT`` steps: (None, lo, hi);
    or at a point with ``|g(t)| <= root x t`` (``root`` 0: ``g(t)`` exactly 0): (t, lo, hi). The tests are numbers,
    not callables: this loop runs for every fixed point and every attention-DP share."""
    side = 0
    for _ in range(_BISECT):
        if hi - lo < (width * hi if relative else width):
            break
        t = (lo * g_hi - hi * g_lo) / (g_hi - g_lo) if g_lo != g_hi else (lo + hi) / 2
        if not lo < t < hi or abs(side) == 2:
            t, side = (lo + hi) / 2, 0
        gt = g(t)
        if abs(gt) <= root * t:
            return t, lo, hi
        if gt > 0:
            lo, g_lo = t, gt
            side = side - 1 if side < 0 else -1
            if side == -2:
                g_hi /= 2
        else:
            hi, g_hi = t, gt
            side = side + 1 if side > 0 else 1
            if side == 2:
                g_lo /= 2
    return None, lo, hi


def erlang_states(offered: float, servers: int) -> list[float]:
    """How often ``0 .. servers - 1`` servers are busy, and (the last entry) all of them, in a queue with ``servers``
    servers and offered load ``offered`` (arrival rate x service time, ``< servers``): Erlang's M/M/m state
    probabilities, ``P(k) = P(0) a^k / k!`` below ``m`` and the Erlang C probability that an arrival waits,
    ``C(m, a) = P(0) a^m / (m! (1 - a / m))``, for all busy (A. K. Erlang, 1917; e.g. L. Kleinrock, Queueing Systems
    vol. 1, 1975, section 3.5). With one server they are ``1 - a`` and ``a``, exact for any service time: kvplan's
    share of steps carrying a prompt chunk. For more servers with fixed service times (kvplan's prompts) they are an
    approximation, stated."""
    terms, total = _erlang_terms(offered, max(1, servers))
    return [x / total for x in terms]


def _erlang_terms(offered: float, m: int) -> tuple[list[float], float]:
    """:func:`erlang_states` before it divides by their sum: ``a^k / k!`` for ``k < m`` and the all-busy term, and
    that sum (1 at the ends, where the states are 0 and 1 already)."""
    rho = offered / m
    if offered <= 0:
        return [1.0] + [0.0] * m, 1.0
    if rho >= 1:
        return [0.0] * m + [1.0], 1.0
    last = 1.0
    terms = [last]
    for k in range(1, m):
        last = last * offered / k
        terms.append(last)
    busy = last * offered / m / (1 - rho)
    total = sum(terms) + busy
    terms.append(busy)
    return terms, total


def queue_wait_s(
    service_s: float, rho: float, *, quantile: float | None = None, servers: int = 1, scv: float = 0.0
) -> float:
    """The wait before a job starts, behind jobs of ``service_s`` seconds on average, at load ``rho`` per server: with
    one server an M/D/1 queue's mean ``rho S / (2 (1 - rho))``, and at quantile ``q`` the exponential tail ``P(W > w)
    = rho exp(-rho w / W)``, i.e. ``(W / rho) ln(rho / (1 - q))`` (0 where ``rho <= 1 - q``: most jobs start at once).
    ``rho >= 1``: inf.

    ``scv``: the service times' squared coefficient of variation (the prompts' lengths', :attr:`Lengths.scv`): the
    mean wait is then the Pollaczek-Khinchine M/G/1 one, ``lambda E[S^2] / (2 (1 - rho)) = rho S (1 + scv) / (2 (1 -
    rho))`` (0 gives the M/D/1 figure), the tail the same exponential about it.

    With ``servers = m > 1`` (M/G/m: a pipeline's micro-batches, each admitting its own prompt,
    :func:`_slots_mean_step`) the mean is the Allen-Cunneen approximation, M/M/m's ``C S / (m (1 - rho))`` times
    ``(c_a^2 + c_s^2) / 2 = (1 + scv) / 2`` (Poisson arrivals; A. O. Allen, Probability, Statistics and Queueing
    Theory, 1978), ``C`` the Erlang C probability of waiting (:func:`erlang_states`), and the tail M/M/m's ``P(W > w)
    = C exp(-C w / W)``; with one server ``C = rho`` and both are the M/G/1 figures above, exactly."""
    if rho <= 0:
        return 0.0
    if rho >= 1:
        return math.inf
    m = max(1, servers)
    waits = waiting_share(rho, m)
    mean_wait = waits * service_s * (1 + scv) / (2 * m * (1 - rho))
    if quantile is None:
        return mean_wait
    tail = 1 - quantile
    return (mean_wait / waits) * math.log(waits / tail) if waits > tail else 0.0


def waiting_share(rho: float, servers: int = 1) -> float:
    """The share of arrivals that wait at all in :func:`queue_wait_s`'s queue: ``rho`` with one server, Erlang's C
    with more (:func:`erlang_states`' all-busy state); 0 at no load, 1 at or past saturation."""
    if rho <= 0:
        return 0.0
    if rho >= 1:
        return 1.0
    m = max(1, servers)
    return rho if m == 1 else erlang_states(rho * m, m)[-1]


# A TTFT quantile where the prompts' lengths vary (:func:`ttft_sum_quantile`): the prompts as a lognormal of their
# mean and standard deviation (two moments matched, stated; the MLPerf sets' own p90 / p99 against it: Llama 3.1 405B
# 14,158 / 18,959 tokens against the lognormal's 14,690 / 22,630), at the midpoints of PROMPT_POINTS equal-probability
# bins, each point's prefill interpolated over PREFILL_GRID lengths from the shortest to the longest point (a prefill
# is a sum of chunk steps: near-linear in the length between chunk counts). Chosen for speed; with 200 points and every
# point's own prefill the MLPerf 405B H200 Server log's p99 moves 6.46 -> 6.45 s.
PROMPT_POINTS = 200
PREFILL_GRID = 9


def prompt_points(inp: Lengths) -> list[int]:
    """The prompts' lengths at :data:`PROMPT_POINTS` equal-probability points of a lognormal with ``inp``'s mean and
    standard deviation (all at the mean where no deviation is given)."""
    if not inp.sd:
        return [inp.mean] * PROMPT_POINTS
    sigma2 = math.log1p(inp.scv)
    mu, sigma = math.log(inp.mean) - sigma2 / 2, math.sqrt(sigma2)
    unit = NormalDist()
    return [max(1, round(math.exp(mu + sigma * unit.inv_cdf((i + 0.5) / PROMPT_POINTS)))) for i in range(PROMPT_POINTS)]


def wait_tail(work: list[float], rho: float) -> tuple[float, float]:
    """``(C, gamma)``: the M/G/1 wait's tail ``P(W > w) ~ C exp(-gamma w)`` (the Cramer-Lundberg approximation, exact
    in the limit of long waits; S. Asmussen, Applied Probability and Queues, 2nd ed. 2003, ch. XIII, the M/G/1
    waiting time as a ruin probability), the queue's service times equally likely each of ``work`` (seconds), Poisson
    arrivals at ``lambda = rho / E[S]``: ``gamma`` the positive root of ``lambda (E[exp(gamma S)] - 1) = gamma`` and
    ``C = (1 - rho) / (lambda E[S exp(gamma S)] - 1)``. With exponential services it is M/M/1's exact ``rho
    exp(-(mu - lambda) w)``; with one fixed service (M/D/1) at ``rho`` 0.53 its p99 is 12 % below the exponential
    tail about the mean that :func:`queue_wait_s` takes (``rho exp(-rho w / W)``, which matches the mean instead).
    ``rho`` outside (0, 1): (0, inf) and (1, 0) (no wait; no steady state)."""
    if rho <= 0 or not work:
        return 0.0, math.inf
    if rho >= 1:
        return 1.0, 0.0
    mean = sum(work) / len(work)
    lam = rho / mean

    def excess(g: float) -> float:  # lambda (E[exp(g S)] - 1) - g: 0 at g = 0, falling, then rising to its root
        return lam * (sum(math.exp(min(700.0, g * x)) for x in work) / len(work) - 1) - g

    lo, hi = 0.0, 1.0 / mean
    while excess(hi) < 0:
        lo, hi = hi, 2 * hi
    for _ in range(200):
        if hi - lo <= 1e-10 * hi:
            break
        mid = (lo + hi) / 2
        if excess(mid) < 0:
            lo = mid
        else:
            hi = mid
    gamma = (lo + hi) / 2
    slope = lam * sum(x * math.exp(min(700.0, gamma * x)) for x in work) / len(work) - 1
    return (1 - rho) / slope, gamma


def ttft_sum_quantile(services: list[float], *, waits: float, scale: float, rate: float, quantile: float) -> float:
    """The ``quantile`` of ``S + W``: ``S`` a request's own prefill, equally likely each of ``services``; ``W`` the
    wait before it, independent of ``S`` (a first-come-first-served arrival waits for the work ahead of it, whatever
    its own size), 0 with probability ``1 - waits`` and past ``w`` with ``min(waits, scale exp(-rate w))``
    (:func:`wait_tail`'s ``(C, gamma)``, or :func:`queue_wait_s`'s exponential tail ``(waits, waits / W)``).
    ``P(S + W > x)`` falls with ``x``: bisection between 0 and the longest service plus the wait's own quantile
    (where it is at most ``1 - quantile``), to 1e-6 of it. At most the comonotone sum of the two quantiles; without
    a wait, the services' own quantile; past saturation (``rate`` 0 with ``waits`` 1), inf."""
    tail = 1 - quantile
    if waits <= 0 or scale <= 0:
        ordered = sorted(services)
        return ordered[min(len(ordered) - 1, math.ceil(quantile * len(ordered) - 1e-9) - 1)] if ordered else 0.0
    if rate <= 0:
        return math.inf

    def over(x: float) -> float:
        return sum(1.0 if x < sv else min(waits, scale * math.exp(-rate * (x - sv))) for sv in services) / len(services)

    lo = 0.0
    hi = max(services) + max(0.0, math.log(max(scale, waits) / tail) / rate)
    for _ in range(60):
        if hi - lo <= 1e-6 * hi:
            break
        mid = (lo + hi) / 2
        if over(mid) > tail:
            lo = mid
        else:
            hi = mid
    return hi


# The mixed layout's prompt-queue rule (docs/cost.md section 5, "The prompts' queue with mixed steps"): "time" (the
# default since stop 29) takes the load as the share of time a full-budget step would take to clear the prompt
# tokens, adds the decode step under way, and queues behind the mean prompt's work at that rate; "step" (the default
# until stop 29, now a diagnostic read by benchmarks/serving_ttft_check.py) takes it as the share of the prefill room
# the prompt tokens fill and leaves the step under way out. Evidence: the step-by-step simulation of the scheduler
# (benchmarks/serving_ttft_check.py: mean TTFT median |ln| 0.144 against 0.414) and the four MLPerf Server logs with a
# measured TTFT, mean and p99 once the p99 is the quantile of the prefill and the wait as independent parts
# (:func:`ttft_sum_quantile`, the wait's tail :func:`wait_tail`'s; the comonotone sum had put the 405B H200 log's p99
# at 7.58 s against 5.64 s, the independent sum puts it at 5.98 s).
MIXED_QUEUE_RULE = "time"


@contextlib.contextmanager
def mixed_queue_rule(rule: str) -> Iterator[None]:
    """``MIXED_QUEUE_RULE`` set to ``rule`` ("step" or "time") inside the block, the memos cleared on the way in and
    out (for the diagnostic and its tests; the CLI never switches it)."""
    global MIXED_QUEUE_RULE
    kept = MIXED_QUEUE_RULE
    MIXED_QUEUE_RULE = rule
    forget_memos(facts=False)
    try:
        yield
    finally:
        MIXED_QUEUE_RULE = kept
        forget_memos(facts=False)


def _full_step_s(s: Setup, *, n: float, budget: int, context: int, ep: bool) -> float:
    """A step whose prompt chunk fills the room the budget leaves beside ``n`` decodes (``MIXED_QUEUE_RULE`` "time")."""
    room = max(1.0, _room(s, budget, n))
    return _step(s, n=n, p=room, context=context, prefix=int(room) // 2, ep=ep)


def _queued_service_s(s: Setup, *, prompt: int, n: float, budget: int, context: int, ep: bool) -> float:
    """A prompt's work in the prompts' queue at the rate full-budget steps clear tokens (``MIXED_QUEUE_RULE``
    "time"): several short prompts share a step, so a prompt ahead costs its tokens' share of a full step."""
    room = max(1.0, _room(s, budget, n))
    return prompt * _full_step_s(s, n=n, budget=budget, context=context, ep=ep) / room


def _prompt_load(s: Setup, *, n: float, p: float, prompt: int, budget: int, context: int, ep: bool) -> float:
    """The load of the prompts' queue (:func:`queue_wait_s`'s ``rho``, held below 1): with mixed steps the share of
    the prefill slots' room the ``p`` prompt tokens per step take (``p / (dp m (budget - n))``); with separate
    prompt steps the share of a rank's time spent in them (:func:`_alternating_parts`): an arriving prompt waits for
    the prompt steps under way and queued before it, whole (at a low rate ``rate x`` the mean prompt's prompt-only
    prefill); the decode step under way is waited out apart (:func:`decode_residual_s`). With mixed steps and
    ``MIXED_QUEUE_RULE`` "time": the share of time full-budget steps would take to clear the ``p`` tokens, ``p x
    full / (B - n) / t`` per prefill slot (:func:`_full_step_s`, ``t`` the mean step)."""
    if s.engine.mixes_steps(s.settings):
        steps = min(p / max(1.0, s.dp * _micro_batches(s) * _room(s, budget, n)), 0.999)
        if MIXED_QUEUE_RULE == "step" or p <= 0:
            return steps
        mean = _mean_step(s, n=n, p=p, prompt=prompt, budget=budget, context=context, ep=ep)
        full = _full_step_s(s, n=n, budget=budget, context=context, ep=ep)
        return min(p * full / _room(s, budget, n) / mean / (s.dp * _micro_batches(s)), 0.999)
    share = _alternating_parts(s, n=n, p=p, prompt=prompt, budget=budget, context=context, ep=ep)[1]
    return min(share, 0.999)


def _mixed_iteration_biased(s: Setup, *, n: float, p: float, prompt: int, budget: int, context: int,
                            ep: bool) -> float:  # fmt: skip
    """The length-biased mean ``E[L^2] / E[L]`` of the mixed steps a rank's prompt may find under way outside its own
    prefill (``MIXED_QUEUE_RULE`` "time"): the decode-only step ``d`` with one rank; with ``dp`` ranks the steps of
    :func:`_dp_mean_step`, which share one arrival stream: a share ``b`` of them hold prompt work (the requests that
    reach the replica during a step all enter the next, whichever rank they are dealt to, :func:`_landed_together`)
    and last ``B`` (the busiest rank's prompt tokens beside the decodes), the rest ``d``:
    ``(b B^2 + (1 - b) d^2) / (b B + (1 - b) d)``. Until stop 26 the ranks were taken as independent here: a share
    ``1 - (1 - f)^(dp - 1)`` of the steps (``f = p / (dp chunk)``) holding one chunk of another rank, although
    :func:`_dp_mean_step` had left that rule at stop 25. The steps under way of the arriving prompt's own rank are
    among the ``b``: an arrival finds the step under way, whichever rank's work it holds, and waits it out."""
    decode = _step(s, n=n, p=0, context=context, ep=ep)
    if s.dp == 1 or p <= 0:
        return decode
    chunk = max(1.0, min(float(prompt), _room(s, budget, n)))
    room = max(chunk, _room(s, budget, n))
    prefix = max(0, (prompt - int(chunk)) // 2)  # as _mean_step places a long prompt's chunks
    decode, share, busy = _dp_parts(s, n=n, p=p, prompt=prompt, chunk=chunk, prefix=prefix, context=context, ep=ep,
                                    room=room)  # fmt: skip
    return (share * busy**2 + (1 - share) * decode**2) / (share * busy + (1 - share) * decode)


def _decode_steps_behind(s: Setup, *, n: float, p: float, prompt: int, budget: int, context: int,
                         ep: bool, rho: float | None = None) -> tuple[float, float]:  # fmt: skip
    """Where prompt steps are apart (:meth:`Engine.mixes_steps` False): (the share of a rank's time in decode steps,
    the decode iterations' length-biased mean, ``d`` with one rank), what an arriving prompt may find under way and
    wait out (:func:`decode_residual_s`);
    (0, 0) with mixed steps under ``MIXED_QUEUE_RULE`` "step", whose step under way it does not count (an arrival
    joins the next step, stated); under "time" the decode-only steps' share ``(1 - exp(-n / dp)) (1 - rho)`` and the
    decode-only step.
    The share: the rank is decoding in a share ``1 - exp(-n / dp)`` of the time (the Poisson count of its running
    requests above 0), and then in decode steps for the share of its cycle the prompt steps leave
    (:func:`_alternating_parts`). ``rho``: :func:`_prompt_load`'s figure where the caller has it already (the same
    arguments; ``serve`` computes it once)."""
    if n <= 0:
        return 0.0, 0.0
    if s.engine.mixes_steps(s.settings):
        if MIXED_QUEUE_RULE == "step":
            return 0.0, 0.0
        if rho is None:
            rho = _prompt_load(s, n=n, p=p, prompt=prompt, budget=budget, context=context, ep=ep)
        return -math.expm1(-n / s.dp) * (1 - rho), _mixed_iteration_biased(s, n=n, p=p, prompt=prompt, budget=budget,
                                                                          context=context, ep=ep)  # fmt: skip
    _, prompt_share, biased = _alternating_parts(s, n=n, p=p, prompt=prompt, budget=budget, context=context, ep=ep)
    return -math.expm1(-n / s.dp) * (1 - prompt_share), biased


@dataclass(frozen=True)
class _OwnLife:
    """A tagged request's decoding life in the steady state (:func:`_own_life`)."""

    tpot_s: float  # its mean TPOT: the life's mean over its O - 1 steps
    others: float  # the sequences decoding beside it on average, rate x O x tpot_s (Little), within the bound
    backlog_s: float  # the prompt work queued behind it at its first token, stretched, at most the free slots'
    backlog_var: float  # that work's variance before the stretch (s^2): a compound Poisson count of prompts
    share: float  # rho: the prompt work's share of the time


def _own_life(s: Setup, *, rate_rps: float, n: float, t: float, tpot: float, rho: float | None, ttft: float,
              work_s: float, outputs: int, context: int, ep: bool, limit: float,
              scv: float = 0.0) -> _OwnLife:  # fmt: skip
    """A tagged request's mean TPOT as the mean of its own decoding life, not the steady state's mean step.

    The life is the ``m = O - 1`` steps after its first token. Each runs its decode row beside the others decoding,
    ``d(1 + k)`` (``d`` the decode-only step, ``k`` the others in that step), and the prompt work that lands in it: a
    chunk beside the decodes where steps are mixed, prompt-only steps before the next decode where they are apart.
    The prompt work done during the life is what was queued behind the request at its first token, ``W0``, plus what
    arrives during the life, less what is left queued at its last token, so that (Wald's identity: the arrivals'
    work in a life that ends at a stopping time is ``rho`` times its mean length, ``rho`` the prompt work's share of
    the time) ``E[L] (1 - rho) = m d(1 + N) + E[W0] - E[W_end]``, and the mean TPOT is ``E[L] / m``:

    * ``rho``: the steady state's own share, ``(t - d(n)) / t`` for the mean step ``t`` at ``n`` decodes (mixed steps),
      the prompt steps' share of the rank's time where they are apart (``rho`` given, :func:`_prompt_load`);
    * ``N``, the others beside it, is Little's law on the decoding requests with the TPOT a request stays for,
      ``rate x O x TPOT`` (counted as the fixed point counts them, ``O`` steps a request), not the steps' ``n = rate x
      O x t``: the requests seen over a life are the time average of the decoding count, and a life that meets a
      burst of prompts is long and the arrivals of that burst decode in it. The steps themselves are still priced at
      ``n``: a step advances every decoding sequence one token, so the decodes a step holds, averaged over the steps,
      are ``rate x O x t`` whatever the spread (the throughput identity); the long steps hold more of them, which is
      what the time average and a life see (Qwen3-30B-A3B DP4 at 20,000 / 256: the simulation's batch, a time
      average, ran 20-30 % above ``n``). ``N`` stops at the sequence bound less the request itself (``limit``);
    * ``W0``: the prompts that reached its rank while it waited and prefilled (the rank's rate x its TTFT), all of
      them behind it in a first-come-first-served queue, ``work_s`` of prompt work each; at most the prefill of the
      prompts the rank can still admit (its share of the bound less the ``1 + n`` running: with the batch full no
      prompt is admitted, SGLang's ``get_new_batch_prefill`` builds no batch, vLLM's and TensorRT-LLM's schedulers
      admit none);
    * ``W_end`` is taken as 0. Where prompt steps are apart and run first it is 0: a decode step runs only when no
      prompt waits that could be admitted (SGLang ``get_next_batch_to_run``). Where steps are mixed the last token
      comes at a step boundary, and the backlog a step boundary finds is the time average's weighed by steps, not by
      time: a queue exists only during chunk steps, which are few and long (Llama 3.1 8B on one H100, 20,000 / 256,
      the simulation's requests met 0.110 s more prompt work in their lives than ``rho`` times their length, and
      ``rate x TTFT x work`` gives 0.108 s; the arrivals during the TTFT's queue wait would cancel against a
      time-sampled ``W_end``, and they do not).

    So ``TPOT = (d(1 + N) + W0 / m) / (1 - rho)``, written on the steady state's own tagged step ``tpot = step(1 +
    n, p)``, whose prompt share and layout (DP ranks' chunks landing together, a pipeline's cycles, packed prompt steps)
    it keeps: ``TPOT = tpot + (d(1 + N) - d(n)) / (1 - rho) - (d(1 + n) - d(n)) + W0 / (m (1 - rho))``. With ``N =
    n`` and no backlog it is ``tpot + rho (d(1 + n) - d(n)) / (1 - rho)``: the request's own decode row stretched by
    the prompts that arrive in its steps, which ``step(1 + n, p)`` (the prompt work of the mean step at ``n``) leaves
    out. ``N`` depends on the TPOT: the TPOT is the root of ``TPOT = f(TPOT)``, ``f`` that figure with ``N = rate x O
    x TPOT`` on the same decode step ``d`` the fixed point ``t`` is solved on (its CUDA-graph padding and GEMM tiles
    included; a straight line through them would put the near-critical compute-bound steady states, the MLPerf
    Llama-2 Server rows, past their gain of 1), searched from ``N = n`` (where ``f`` is the figure above) to the
    bound; where ``f`` stays above the TPOT up to the bound, the lives stretch until the batch is full. The apart
    layout's stalls (stop 26, r27g, ``_apart_stalls_s``) are this with ``N = n``; the mixed layout's backlog is the
    r27g-mixed term (not landed), derived here. Stated approximations: the life at the mean
    output; the TTFT at its mean (its spread adds to ``W0``'s, not modelled); ``W_end`` 0."""
    m = max(1, outputs - 1)
    decode, own = _step(s, n=n, p=0, context=context, ep=ep), _step(s, n=1 + n, p=0, context=context, ep=ep)
    share = rho if rho is not None else (t - decode) / t if t > 0 else 0.0
    share = min(max(share, 0.0), 1 - 1e-9)
    free = max(0.0, (limit - 1 - n) / s.dp)
    backlog, backlog_var = queued_backlog(rate_rps / s.dp * ttft, work_s, share=share, scv=scv, free=free)
    base = tpot - (own - decode) + backlog / m
    top = max(n, limit - 1)

    def f(tau: float) -> float:  # the life's TPOT with rate x O x tau others beside it
        others = min(rate_rps * outputs * tau, top)
        return base + (_step(s, n=1 + others, p=0, context=context, ep=ep) - decode) / (1 - share)

    lo = base + (own - decode) / (1 - share)  # the others at the steps' n: f's value at tau = t
    # searched from tau = t, where f is lo (its step already priced): f need not rise, so no crossing is ruled out
    # between t and lo (stop 29; it started at lo, with Picard's certificate for a rising f)
    tau = lo if rate_rps <= 0 or t <= 0 else _least_fixed_point(f, t, max(t, top / (rate_rps * outputs)))
    return _OwnLife(tau, min(rate_rps * outputs * tau, top), backlog, backlog_var, share)


def queued_backlog(arrivals: float, work_s: float, *, share: float, scv: float = 0.0,
                   free: float = math.inf) -> tuple[float, float]:  # fmt: skip
    """``(W0 / (1 - rho), Var[W0])``: the prompt work queued behind a tagged request at its first token, stretched by
    the prompt work's share of the time ``share`` (``rho``), and that work's variance before the stretch (s^2), for
    ``arrivals`` prompts (its rank's rate x its TTFT) of ``work_s`` seconds each, at most ``free`` of them (the prompts
    its rank can still admit), a compound Poisson count whose prompts' lengths have the squared coefficient of
    variation ``scv`` (:func:`_own_life`; benchmarks/pp_queue_sim.py ``--tpot`` prices its check's lives with it)."""
    if work_s <= 0:
        return 0.0, 0.0
    count = min(arrivals, free)
    return min(arrivals * work_s / (1 - share), free * work_s), count * work_s * work_s * (1 + scv)


def _least_fixed_point(f, lo: float, hi: float) -> float:  # noqa: ANN001
    """Where ``f(x) - x`` changes sign nearest ``lo``, on the side ``f(lo)`` points to (:func:`_own_life`): the least
    ``x >= lo`` where it turns from above 0 to at most 0 where ``f(lo) > lo``, to ``_REL_TOL`` (the steady state's own
    tolerance), ``f(hi)`` where ``f`` stays above ``x`` up to ``hi`` (past it ``f`` is flat); the greatest ``x <= lo``
    where it turns from below 0 to at least 0 where ``f(lo) < lo`` (where Picard's iteration from ``lo`` runs down to
    for a rising ``f``). That is a fixed point of ``f``, or where ``f`` falls past ``x`` at a drop of the decode step
    (a larger batch that runs faster: a kernel's tile choice, the MXFP4 MoE tiles of gpt-oss-120b on Hopper near 346
    sequences), where the lives either side of it straddle the drop.

    ``f`` is not monotone, so neither Picard's iteration (which jumps past a drop) nor a leap to Aitken's extrapolation
    proves that no crossing lies before where it lands (until stop 29 that took 2 of the gpt-oss plan's 320 solves
    past the drop, 1.2 % and 3.2 % too high; and with ``f(lo) < lo``, as the MLPerf Llama-2 H100 Server row has, it
    returned ``f(lo)``, one Picard step, not a crossing). So this walks from ``lo``: each next point is the zero of the
    secant of ``g = f(x) - x`` through the last two points where that zero lies ahead, else Picard's ``f(x)``, never
    more than :data:`_GRID` (5 %) from the last point; the first point where ``g`` has changed sign closes a bracket
    that :func:`_root` finishes. Resolution stated, as :func:`_solve`'s grid: a dip of ``g`` across 0 and back
    narrower than 5 % between two points is not seen."""
    tol = _REL_TOL
    x, fx = lo, f(lo)
    if abs(fx - x) <= tol * fx:
        return fx
    up = fx > x
    prev: tuple[float, float] | None = None
    for _ in range(_BISECT):
        if up and x >= hi:  # above the line up to the bound: the lives stretch until the batch is full
            return fx
        gx = fx - x
        target = fx  # Picard's step
        if prev is not None and prev[1] != gx:  # the secant's zero, where it lies ahead
            zero = x + gx * (x - prev[0]) / (prev[1] - gx)
            if (zero > x) == up:
                target = zero
        # at least the tolerance ahead, at most the grid's ratio
        nxt = min(max(target, x * (1 + tol)), x * _GRID, hi) if up else max(min(target, x * (1 - tol)), x / _GRID)
        f_nxt = f(nxt)
        g_nxt = f_nxt - nxt
        if (g_nxt < 0) if up else (g_nxt > 0):  # the first point past a crossing: it lies between x and nxt
            return _root(lambda y: f(y) - y, x, gx, nxt, g_nxt) if up else _root(lambda y: f(y) - y, nxt, g_nxt, x, gx)
        if abs(g_nxt) <= tol * f_nxt:
            return f_nxt
        prev, x, fx = (x, gx), nxt, f_nxt
    return fx


def decode_residual_s(share: float, step_s: float, *, rho: float, quantile: float | None = None) -> float:
    """The wait a prompt adds for a decode step under way where the engine runs prompt steps first but never breaks
    into a step (SGLang: ``get_next_batch_to_run`` picks the next batch when the previous one is done): a
    non-preemptive priority queue's residual term (A. Cobham, "Priority assignment in waiting line problems", 1954;
    e.g. L. Kleinrock, Queueing Systems vol. 2, 1976, section 3.6), ``R / (1 - rho)`` with ``R = share x step / 2``
    (an arrival finds a decode step of ``step_s`` under way in a ``share`` of the time, half of it left on average)
    and ``rho`` the prompts' own load (the prompts queued in the meantime go first). At quantile ``q``: the
    residual's own quantile, uniform on ``[0, step]`` within the share, ``step (1 - (1 - q) / share)`` (0 where
    ``share <= 1 - q``), over the same ``1 - rho`` (added to the queue's quantile: a comonotone bound, stated).
    Checked against a step-by-step simulation (benchmarks/serving_sim.py)."""
    if share <= 0 or rho >= 1:
        return 0.0
    if quantile is None:
        return share * step_s / 2 / (1 - rho)
    tail = 1 - quantile
    return step_s * (1 - tail / share) / (1 - rho) if share > tail else 0.0


def _prefill_service(s: Setup, *, prompt: int, n: float, context: int, budget: int, ep: bool) -> float:
    """One prompt's prefill in chunks of what the budget leaves after the replica's ``n`` decodes (each chunk attends
    to the chunks before it). Where prompt steps are apart (:meth:`Engine.mixes_steps` False) a chunk takes the whole
    budget and its step holds no decode of its own rank, but the other attention-DP ranks' decodes run in the same
    iteration (:func:`_alternating_parts`): ``n (dp - 1) / dp`` beside it, none with one rank."""
    mixed = s.engine.mixes_steps(s.settings)
    room = max(1, int(_room(s, budget, n if mixed else 0.0)))
    beside = n if mixed else n * (s.dp - 1) / s.dp
    service, done = 0.0, 0
    while done < prompt:
        chunk = min(room, prompt - done)
        service += _step(s, n=beside, p=chunk, context=context, prefix=done, ep=ep)
        done += chunk
    return service


def prefill_service_s(s: Setup, prompt: int, *, max_num_batched_tokens: int | None = None) -> float:
    """One prompt of ``prompt`` tokens prefilled alone on a replica of ``s``: chunks of the engine's token budget
    (``max_num_batched_tokens``, else :data:`DEFAULT_TOKEN_BUDGET`), as :func:`serve` at rate 0 runs it; one chunk
    equals :mod:`kvplan.cost`'s static prefill."""
    budget = _budget(s, max_num_batched_tokens)
    return _prefill_service(s, prompt=prompt, n=0.0, context=prompt, budget=budget, ep=False)


def _ttft(
    s: Setup,
    *,
    prompt: int,
    n: float,
    context: int,
    budget: int,
    rho: float,
    quantile: float | None,
    ep: bool,
    ahead_s: float | None = None,
    scv: float = 0.0,
) -> float:
    """Prefill service in chunks of what the budget leaves after the decodes, plus the queue wait
    (:func:`queue_wait_s`, one server per micro-batch that admits its own prompt: :func:`_micro_batches`) behind
    requests of ``ahead_s`` seconds of service each (the mean prompt's; default: this prompt's own, the mean case)."""
    service = _prefill_service(s, prompt=prompt, n=n, context=context, budget=budget, ep=ep)
    ahead = service if ahead_s is None else ahead_s
    return service + queue_wait_s(ahead, rho, quantile=quantile, servers=_micro_batches(s), scv=scv)


@dataclass(frozen=True)
class _Tail:
    """A tagged request's TTFT and TPOT at a quantile ``q`` of the steady state (the module docstring)."""

    s: Setup
    n: float  # mean sequences decoding
    p: float  # mean prompt tokens per step
    rho: float  # the prefill slots' load
    inp: Lengths
    out: Lengths
    budget: int
    ep: bool
    prefilled: bool = False
    ahead_s: float | None = None  # the mean prompt's prefill service: what a tagged request waits behind
    hold: BalanceHold | None = None  # the attention-DP balancer's hold (:func:`_balance_hold`)
    step_s: float = 0.0  # the mean step: what one held iteration lasts
    behind: tuple[float, float] = (0.0, 0.0)  # (share of the time, seconds) of decode steps a prompt waits out
    life: Life | None = None  # a request's decoding life (:func:`_life`)

    def _own_length_s(self, q: float) -> float:
        """What the request's own context at quantile ``q`` (its prompt and half its output at that quantile's
        lengths) adds to a decode step beside the ``n`` others at the batch's mean context; 0 where it is not
        longer."""
        ctx = _decode_context(self.inp, self.out)
        own = self.inp.at(q) + self.out.at(q) // 2
        shift = round((own - ctx) / (1 + self.n))
        if shift <= 0:
            return 0.0
        plain = _step(self.s, n=1 + self.n, p=0, context=ctx, ep=self.ep)
        return _step(self.s, n=1 + self.n, p=0, context=ctx + shift, ep=self.ep) - plain

    def _sum_at(self, q: float) -> float:
        """The TTFT at quantile ``q`` before the balancer's hold and the step under way: the request's own prompt
        drawn from the lengths (:func:`prompt_points`) and its prefill beside the ``n`` decodes, plus the queue's wait,
        independent of it (:func:`ttft_sum_quantile`): with one server M/G/1's Cramer-Lundberg tail (:func:`wait_tail`),
        the queue's service of each prompt the mean prompt's (``ahead_s``) in proportion to its length, as the
        Pollaczek-Khinchine mean takes it; with a pipeline's micro-batches (M/G/m) :func:`queue_wait_s`'s exponential
        tail about its mean."""
        s, inp = self.s, self.inp
        ctx = _decode_context(inp, self.out)
        points = prompt_points(inp)
        low, high = min(points), max(points)
        grid = sorted({round(low + (high - low) * k / (PREFILL_GRID - 1)) for k in range(PREFILL_GRID)})
        at = [_prefill_service(s, prompt=g, n=self.n, context=ctx, budget=self.budget, ep=self.ep) for g in grid]

        def service(length: int) -> float:  # linear between the grid's lengths
            for (g0, s0), (g1, s1) in itertools.pairwise(zip(grid, at, strict=True)):
                if length <= g1:
                    return s0 + (s1 - s0) * (length - g0) / (g1 - g0)
            return at[-1]

        servers = _micro_batches(s)
        ahead = self.ahead_s if self.ahead_s is not None else at[0]
        services = [service(x) for x in points]
        if servers == 1:  # M/G/1: the queue's service of each prompt in proportion to its length
            scale, rate = wait_tail([ahead * x / inp.mean for x in points], self.rho)
            return ttft_sum_quantile(services, waits=min(1.0, self.rho), scale=scale, rate=rate, quantile=q)
        # M/G/m (a pipeline's micro-batches): the exponential tail about the Allen-Cunneen mean (queue_wait_s's)
        mean_wait = queue_wait_s(ahead, self.rho, servers=servers, scv=inp.scv)
        waits = waiting_share(self.rho, servers)
        rate = waits / mean_wait if 0 < mean_wait < math.inf else 0.0
        return ttft_sum_quantile(services, waits=waits, scale=waits, rate=rate, quantile=q)

    def at(self, q: float, z: float, *, ttft: float, tpot: float) -> tuple[float, float]:
        """(TTFT, TPOT) at quantile ``q`` (``z`` its standard normal score), never below the means given; the
        request's own lengths at the same quantile (:meth:`Lengths.at`: the p99 held at the p90 where none was given).

        TPOT: the request's life at that quantile (:mod:`kvplan.tpot_tail`), plus what its own longer context adds to
        each step (its attention reads: the batch's mean context raised by the difference over the ``1 + n``
        sequences)."""
        s, n, inp = self.s, self.n, self.inp
        n_q = n + z * math.sqrt(n)  # the Poisson count of others, normal approximation (the prefilled TTFT's step)
        tpot_q = self.life.tpot_at(q) + self._own_length_s(q) if self.life is not None else tpot
        if self.prefilled:  # the first step: a decode step at the prompt's length (prompt_computed)
            ttft_q = _mean_step(s, n=1 + n_q, p=self.p, prompt=inp.at(q), budget=self.budget, context=inp.at(q),
                                ep=self.ep)  # fmt: skip
        else:
            if inp.sd:  # the own prompt's prefill and the wait independent (ttft_sum_quantile)
                ttft_q = self._sum_at(q)
            else:  # the quantile prompt's prefill and the wait's quantile (a comonotone bound)
                ttft_q = _ttft(s, prompt=inp.at(q), n=n, context=_decode_context(inp, self.out),
                               budget=self.budget,
                               rho=self.rho, quantile=q, ep=self.ep, ahead_s=self.ahead_s, scv=inp.scv)  # fmt: skip
            if self.hold is not None:  # the hold at the same quantile, added (a comonotone bound of the sum's)
                ttft_q += self.hold.at(q) * self.step_s
            ttft_q += decode_residual_s(*self.behind, rho=self.rho, quantile=q)  # likewise
        return max(ttft, ttft_q), max(tpot, tpot_q)


def _backlog_work_s(s: Setup, *, rate_rps: float, t: float, n: float, prompt: int, budget: int, context: int,
                    ep: bool) -> float:  # fmt: skip
    """The prompt work one prompt queued behind a tagged request adds to its life where steps are mixed
    (:func:`_own_life`'s ``work_s``): with one rank the steady state's average, ``(t - d(n)) / (rate t)`` (prompts that
    share a step share its prompt work: short prompts pack a step); with attention-DP ranks a prompt of its own rank's
    queue, its prefill beside the ``n`` decodes less the decode steps it spans, ``S - run d(n)`` (its rank's chunks
    make the replica's steps that long whatever the other ranks carry)."""
    decode = _step(s, n=n, p=0, context=context, ep=ep)
    if s.dp == 1:
        return max(0.0, t - decode) / (rate_rps * t) if rate_rps > 0 and t > 0 else 0.0
    service = _prefill_service(s, prompt=prompt, n=n, context=context, budget=budget, ep=ep)
    run = math.ceil(prompt / max(1.0, _room(s, budget, n)) - 1e-9)
    return max(0.0, service - run * decode)


GRAPH_REACH = 5.0  # standard deviations of the decoding count (sqrt n) either side of n within which a graph size
# is resolved (:func:`_graph_jumps`): a life's share of padded steps there is Phi(-5.4) = 3e-8 at the p99, so a size
# entering the reach adds nothing; and the gap above a size, in the same unit, past which its jump is a stair, not
# part of the slope. Chosen, not fitted: any reach past ~4 standard deviations gives the same figures to 1e-5.


def _graph_jumps(s: Setup, *, n: float, context: int, ep: bool) -> tuple[tuple[float, float], ...]:
    """The CUDA-graph sizes whose padding jump a decoding life meets as a stair, not as part of the decode step's
    slope: ``((g - n, J), ...)`` over the replica's decoding count, ``g`` a captured size (replica-wide, ``dp`` x the
    rank's) within :data:`GRAPH_REACH` standard deviations (``sqrt n``) of ``n``, ``J`` the step's rise from ``g``
    sequences to one more (padded to the next size, or run past the largest: :meth:`Engine.graph_rows`,
    :func:`kvplan.latency.beyond_graph_cap`). A size is a stair where the next one lies more than the reach above it:
    the steps past it stay flat over the whole spread of the batch, so a life's steps sit either side of it and its
    jump is bounded by ``J`` (:meth:`kvplan.tpot_tail.Life.tpot_at`); where sizes lie closer (vLLM's every 8 or 16) a
    life's steps run over several and the padding averages into the slope (:func:`_life`'s secant), as before. Which
    sizes are stairs depends on the sizes and ``dp`` alone, never on ``n``, so the tail stays continuous in the rate.
    Empty where the engine does not pad (:meth:`Engine.graph_rows` None) or with pipeline stages (no padding)."""
    if s.pp != 1 or n <= 0:
        return ()
    rows = s.engine.graph_rows
    if rows(s.settings, 1.0) is None:
        return ()
    dp, reach = s.dp, GRAPH_REACH * math.sqrt(max(n, 1.0))
    out: list[tuple[float, float]] = []
    x, last = max(1.0, (n - reach) / dp), 0.0
    while (g := rows(s.settings, x)) is not None and g > last and g * dp <= n + reach:
        above = rows(s.settings, g + 1)
        if above is None or (above > g and (above - g) * dp > GRAPH_REACH * math.sqrt(g * dp)):
            jump = _step(s, n=g * dp + 1e-6 * dp, p=0, context=context, ep=ep) - _step(s, n=g * dp, p=0,
                                                                                          context=context, ep=ep)
            if jump > 0:
                out.append((g * dp - n, jump))
        x, last = g + 1, g
    return tuple(out)


def _life(s: Setup, *, rate_rps: float, own: _OwnLife, n: float, p: float, inp: Lengths, out: Lengths,
          budget: int, context: int, ep: bool, prompt: int) -> Life:  # fmt: skip
    """A request's decoding life (:class:`kvplan.tpot_tail.Life`) at the steady state of ``own.others`` decoding beside
    it, ``n`` in the steady state's steps, ``p`` prompt tokens a step of ``prompt``-token prompts (those this replica
    computes) and its mean TPOT
    ``own.tpot_s`` (:func:`_own_life`): the decode step's slope per sequence, the secant over ``n +- 2 sqrt(n)``
    sequences (at least one either side: the batch's spread over the lives, wide enough to smooth the jumps of
    CUDA-graph padding and GEMM tiles, which a life's many batch sizes average out), less the rise at each size met as
    a stair (:func:`_graph_jumps`: one far from the next, which no average smooths; the life adds it bounded, its
    share of steps past the size, :meth:`kvplan.tpot_tail.Life.stairs_at`); the prompt work one more arrival
    adds, the mean step's secant in ``p`` over ``p (1 +- delta)``, ``delta = 1 / sqrt(K)`` for ``K`` arrivals in a
    mean life (their standard deviation), at most a half: where arrivals share steps (attention-DP ranks' chunks land
    together and a step lasts as its busiest rank, prompts pack a prompt step) one more adds less than the average,
    and the spread of the life follows the margin (the delta method); 0 without prompt work; and the backlog queued
    behind it at its first token, whose spread starts the life (``own.backlog_var``)."""
    others = own.others
    spread = max(1.0, 2 * math.sqrt(n))
    low = max(1.0, 1 + n - spread)
    jumps = _graph_jumps(s, n=n, context=context, ep=ep)
    stairs = sum(j for offset, j in jumps if low <= n + offset < 1 + n + spread)  # resolved, not in the slope
    slope = _step(s, n=1 + n + spread, p=0, context=context, ep=ep) - _step(s, n=low, p=0, context=context, ep=ep)
    slope = (slope - stairs) / (1 + n + spread - low)
    steps = max(1.0, out.mean - 1.0)
    margin = 0.0
    arrivals = rate_rps * steps * own.tpot_s
    if p > 0 and prompt > 0 and arrivals > 0:
        delta = min(0.5, 1 / math.sqrt(arrivals))

        def work(x: float) -> float:
            return _mean_step(s, n=1 + n, p=x, prompt=prompt, budget=budget, context=context, ep=ep)

        margin = max(0.0, prompt * (work(p * (1 + delta)) - work(p * (1 - delta))) / (2 * delta * p))
    return Life(steps=steps, mean_step_s=own.tpot_s, decode_step_s=_step(s, n=1 + n, p=0, context=context, ep=ep),
                slope_s=slope, others=others, rate_rps=rate_rps, prompt_scv=inp.scv, prompt_margin_s=margin,
                backlog_var_s2=own.backlog_var, graph_jumps=jumps, step_batch=n)  # fmt: skip


def _balance_hold(s: Setup, *, rate_rps: float, step_s: float, n: float) -> BalanceHold | None:
    """The iterations a prompt waits for the engine's attention-DP balancer (:meth:`Engine.dp_balance_iters`:
    TensorRT-LLM's ``attention_dp_config.enable_balance``) at ``rate_rps`` with ``n`` sequences decoding and a mean
    step of ``step_s`` (:mod:`kvplan.dp_balance`); None without data-parallel ranks or where the engine holds none.

    Prompts reach the ranks as if drawn at random (``random_spread``): a rank-by-rank simulation of the engine's rule
    with its load-capped spread (benchmarks/dp_balance_sim.py) lies between the even and the random spread's holds,
    nearer the random one's (docs/cost.md, section 5), which is also the longer, so the safer for a TTFT target."""
    iters = s.engine.dp_balance_iters(s.settings) if s.dp > 1 else None
    if iters is None:
        return None
    return balance_hold(arrivals_per_iter=rate_rps * step_s, ranks=s.dp, decoding=n, timeout_iters=iters[0],
                        batching_wait_iters=iters[1], random_spread=True)  # fmt: skip


def serve(
    s: Setup,
    *,
    rate_rps: float,
    input_len: Lengths,
    output_len: Lengths,
    max_num_batched_tokens: int | None = None,
    with_max_rate: bool = True,
    expert_parallel: bool = False,
    with_p90: bool = True,
    with_p99: bool = True,
    prefilled: bool = False,
    full_start: bool = False,
) -> ServingResult:
    """Steady state of one replica of ``s`` at ``rate_rps`` requests per second (see the module docstring).

    ``with_max_rate=False`` skips the bisection for the sustainable rate (``max_rate_rps`` is then NaN);
    ``with_p90=False`` skips the 90th percentiles (``ttft_p90_s``, ``tpot_p90_s`` are then NaN), ``with_p99=False``
    the 99th (``ttft_p99_s``, ``tpot_p99_s``). ``prefilled``: a disaggregated decode replica, whose requests arrive
    with their prompt's KV (:func:`prompt_computed`): it holds and attends to every prompt but computes none, and
    its TTFT is the request's first step, a decode step at the prompt's length beside the others. The steady state is
    the one a batch growing from empty reaches (:func:`_solve`'s least fixed point); ``full_start``: the one a batch
    that starts at the limits falls to (the greatest), as where every request is queued at once
    (benchmarks/published_compare.py's runs of a table's requests, at the highest sustainable rate).
    """
    if not 0 <= rate_rps < math.inf:  # NaN and inf: no steady state
        raise InvalidInput(f"invalid rate {rate_rps!r}; expected a finite number of requests per second >= 0")
    s.engine.check_kv_latency(s.kv_dtype)  # a KV format whose reads the engine's latency does not price
    per_batch = max_num_batched_tokens or s.max_num_batched_tokens or DEFAULT_TOKEN_BUDGET
    if per_batch < 1:
        raise InvalidInput(f"invalid max_num_batched_tokens {per_batch!r}; expected a whole number >= 1")
    budget = _budget(s, per_batch)
    seq_limit, seq_name = _limits(s, input_len, output_len, prefilled=prefilled)
    ep = expert_parallel
    load = _Load(s, rate_rps, input_len, output_len, budget, seq_limit, seq_name, ep, prefilled)
    t, limit = _solve(load, full_start=full_start)
    top = (
        max_rate(
            s,
            input_len=input_len,
            output_len=output_len,
            max_num_batched_tokens=per_batch,
            expert_parallel=ep,
            prefilled=prefilled,
        )  # fmt: skip
        if with_max_rate
        else float("nan")
    )
    ctx = _decode_context(input_len, output_len)
    gpus = s.gpus_per_replica
    label = calibration(s.engine.key).version
    pool = pool_tokens(s)
    if t is None:
        nan = float("nan")
        return ServingResult(
            rate_rps, True, limit, top, seq_limit, nan, nan, nan, nan, nan, nan, nan, nan,
            top * output_len.mean, top * output_len.mean / gpus, nan, seq_limit * ctx, pool, per_batch,
            _batch_cap(s, input_len, output_len), gpus, label, seq_limit,
        )  # fmt: skip
    n, p = rate_rps * output_len.mean * t, rate_rps * load.prompt_computed * t
    rho = _prompt_load(s, n=n, p=p, prompt=input_len.mean, budget=budget, context=ctx, ep=ep)
    tpot = _mean_step(s, n=1 + n, p=p, prompt=input_len.mean, budget=budget, context=ctx, ep=ep)
    ahead = hold = None
    behind = (0.0, 0.0)
    if prefilled:  # the first step: a decode step at the prompt's length (prompt_computed)
        ttft = _mean_step(s, n=1 + n, p=p, prompt=input_len.mean, budget=budget, context=input_len.mean, ep=ep)
    else:
        ahead = _prefill_service(s, prompt=input_len.mean, n=n, context=ctx, budget=budget, ep=ep)
        if s.engine.mixes_steps(s.settings) and MIXED_QUEUE_RULE == "time":
            queued = _queued_service_s(s, prompt=input_len.mean, n=n, budget=budget, context=ctx, ep=ep)
            ttft = ahead + queue_wait_s(queued, rho, servers=_micro_batches(s), scv=input_len.scv)
            ahead = queued
        else:
            ttft = ahead + queue_wait_s(ahead, rho, servers=_micro_batches(s), scv=input_len.scv)
        behind = _decode_steps_behind(s, n=n, p=p, prompt=input_len.mean, budget=budget, context=ctx, ep=ep, rho=rho)
        ttft += decode_residual_s(*behind, rho=rho)
        hold = _balance_hold(s, rate_rps=rate_rps, step_s=t, n=n)
        ttft += hold.mean_iters * t if hold is not None else 0.0
    apart = not s.engine.mixes_steps(s.settings)
    work = 0.0
    if not prefilled and p > 0:
        work = ahead if apart else _backlog_work_s(s, rate_rps=rate_rps, t=t, n=n, prompt=input_len.mean,
                                                   budget=budget, context=ctx, ep=ep)  # fmt: skip
    own = _own_life(s, rate_rps=rate_rps, n=n, t=t, tpot=tpot, rho=rho if apart and p > 0 else None, ttft=ttft,
                    work_s=work, outputs=output_len.mean, context=ctx, ep=ep, limit=seq_limit,
                    scv=input_len.scv)  # fmt: skip
    tpot = own.tpot_s
    life = (
        _life(s, rate_rps=rate_rps, own=own, n=n, p=p, inp=input_len, out=output_len, budget=budget, context=ctx,
              ep=ep, prompt=load.prompt_computed)
        if with_p90 or with_p99
        else None
    )  # fmt: skip
    tail = _Tail(s, n=n, p=p, rho=rho, inp=input_len, out=output_len, budget=budget, ep=ep, prefilled=prefilled,
                 ahead_s=ahead, hold=hold, step_s=t, behind=behind, life=life)  # fmt: skip
    nan = float("nan")
    ttft90, tpot90 = tail.at(0.9, Z90, ttft=ttft, tpot=tpot) if with_p90 else (nan, nan)
    ttft99, tpot99 = tail.at(0.99, Z99, ttft=ttft, tpot=tpot) if with_p99 else (nan, nan)
    if not prefilled:  # the API server takes each request before the engine sees it
        ttft += api_server_wait_s(s, rate_rps, output_len)
        ttft90 += api_server_wait_s(s, rate_rps, output_len, quantile=0.9)
        ttft99 += api_server_wait_s(s, rate_rps, output_len, quantile=0.99)
    out_tps = rate_rps * output_len.mean
    return ServingResult(
        rate_rps=rate_rps,
        saturated=False,
        limit=limit,
        max_rate_rps=top,
        batch=own.others,
        prefill_tokens_per_step=p,
        step_s=t,
        ttft_mean_s=ttft,
        ttft_p90_s=ttft90,
        tpot_mean_s=tpot,
        tpot_p90_s=tpot90,
        ttft_p99_s=ttft99,
        tpot_p99_s=tpot99,
        output_tokens_per_s=out_tps,
        output_tokens_per_s_per_gpu=out_tps / gpus,
        output_tokens_per_s_per_user=1 / tpot,
        kv_tokens_held=own.others * ctx,
        kv_pool_tokens=pool,
        max_num_batched_tokens=per_batch,
        max_num_seqs=_batch_cap(s, input_len, output_len),
        gpus=gpus,
        engine=label,
        step_batch=n,
    )


def max_rate(
    s: Setup,
    *,
    input_len: Lengths,
    output_len: Lengths,
    max_num_batched_tokens: int | None = None,
    expert_parallel: bool = False,
    prefilled: bool = False,
) -> float:
    """The highest request rate one replica sustains: at which the step at the limits keeps up with them
    (:func:`_solve`'s saturation rule; bisection on the rate, the step at the limits probed once for every rate)."""
    budget = _budget(s, max_num_batched_tokens)
    seq_limit, seq_name = _limits(s, input_len, output_len, prefilled=prefilled)

    def ok(rate: float) -> bool:
        load = _Load(s, rate, input_len, output_len, budget, seq_limit, seq_name, expert_parallel, prefilled)
        return _solve(load, refine=False)[0] is not None

    lo, hi = 0.0, 1.0
    while ok(hi) and hi < 1e7:
        lo, hi = hi, hi * 4
    for _ in range(40):
        if hi - lo < 50 * _REL_TOL * hi:
            break
        mid = (lo + hi) / 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo

"""Plan against latency targets: the fewest GPUs that serve a request rate within TTFT and TPOT.

Every GPU type x parallel split x weight dtype x KV dtype is one :func:`kvplan.capacity.setup` (the
engine's KV pool and batch limits). The splits (:func:`rate_splits`): tensor parallel within a node,
pipeline stages within a node and, with a whole node's TP per stage, across nodes; for MoE models experts
sliced by TP or split whole across the TP ranks (expert parallelism), and data-parallel attention ranks
with the experts split over all of them (DP attention + EP, on engines that run it), across nodes where
the GPUs exceed a node. For each, the highest
request rate one replica sustains with the targets met is found by bisection on
:func:`kvplan.serving.serve` (latency grows with the rate); the replicas (data parallel) follow
by division. Rows are ranked by GPU count, then by tokens/s per user. The Pareto front over
(output tokens/s per GPU, output tokens/s per user) at each configuration's own operating point
is marked.

Disaggregated prefill/decode pools (``disaggregated=True``, :mod:`kvplan.disagg`): prefill replicas run
prompts one after another (each prompt a static prefill, an M/D/1 queue), decode replicas run the in-flight
model with every prompt's KV already in place; each request's KV moves between them (:func:`kv_transfer`). TTFT
at the targets' percentile = the prefill queue's wait at that quantile + the prefill + the exposed transfer (both at
the prompt length of that quantile) + the decode replica's first step where the engine samples the first token
there; TPOT is the decode replica's at that percentile. The decode pool is sized for the TPOT target, then the
prefill pool for what the TTFT target leaves (:func:`kvplan.disagg.max_prefill_load`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from kvplan.capacity import Setup, setup
from kvplan.disagg import QUANTILES, check_engine, first_token_s, kv_transfer, max_prefill_load, serve_disaggregated
from kvplan.disagg import prefill_s as _prefill_s
from kvplan.disagg import transfer_at as _transfer_at
from kvplan.dp_balance import check_iters
from kvplan.engines import Settings, get_engine, selected_name
from kvplan.errors import InvalidInput
from kvplan.hardware import GPU
from kvplan.host import check_host_time
from kvplan.planner import DP_SIZES, PIPELINE_NODES, Split, refuse_kv_nowhere_run, refuse_weights_nowhere_run
from kvplan.serving import Lengths, ServingResult, serve
from kvplan.spec import ModelSpec

Percentile = Literal["mean", "p90", "p99"]
PERCENTILES = ("mean", "p90", "p99")  # the figures kvplan.serving.serve gives
TP_DEGREES = (1, 2, 4, 8)  # within one NVLink domain (a node)
PP_DEGREES = (1, 2, 4)  # pipeline stages within a node (tp x pp <= its GPUs)
MAX_GPUS = 256
_RATE_STEPS = 10  # bounds the search on the rate (at most 4 x this many probes)
_RATE_TOL = 0.003  # the rate within targets to 0.3 % (ten halvings of a x4 bracket gave the same)


@dataclass(frozen=True)
class Targets:
    rate_rps: float
    input_len: Lengths
    output_len: Lengths
    ttft_s: float | None = None
    tpot_s: float | None = None
    percentile: Percentile = "mean"
    # TPOT targets at a percentile of their own, whatever ``percentile`` (``plan --tpot-p90 / --tpot-p99``): a
    # request's own TPOT at that quantile (kvplan.serving, kvplan.tpot_tail)
    tpot_p90_s: float | None = None
    tpot_p99_s: float | None = None

    def check(self) -> None:
        if not 0 < self.rate_rps < math.inf:  # inf: no replica count serves it (the rate search divides by it)
            raise InvalidInput(f"invalid rate {self.rate_rps!r}; expected a finite number of requests per second > 0")
        named = (("ttft", self.ttft_s), ("tpot", self.tpot_s), ("tpot-p90", self.tpot_p90_s),
                 ("tpot-p99", self.tpot_p99_s))  # fmt: skip
        for name, v in named:
            if v is not None and not v > 0:
                raise InvalidInput(f"invalid --{name} {v!r}; expected a time > 0, e.g. 1s or 50ms")
        if self.percentile not in PERCENTILES:
            raise InvalidInput(f"invalid percentile {self.percentile!r}; expected one of {', '.join(PERCENTILES)}")


def rate_splits(spec: ModelSpec, *, gpus_per_node: int, max_gpus: int) -> list[Split]:
    """The splits ``plan --rate`` tries, fewest GPUs per replica first (see the module docstring)."""
    tps = [t for t in TP_DEGREES if t <= gpus_per_node]
    out = [Split(tp, pp) for tp in tps for pp in PP_DEGREES if tp * pp <= gpus_per_node]
    # a whole node's TP per stage, one stage per node (as kvplan.planner)
    out += [Split(tps[-1], pp) for pp in PIPELINE_NODES if tps[-1] * pp > gpus_per_node]
    if spec.moe is not None:
        out += [Split(tp, ep=True) for tp in tps if tp > 1]  # vLLM --enable-expert-parallel over the TP group
        # DP attention (TP 1 per rank) + EP, as SGLang / vLLM wide EP run it
        out += [Split(1, dp=dp, ep=True) for dp in DP_SIZES]
    out = [sp for sp in dict.fromkeys(out) if sp.gpus <= max_gpus]
    return sorted(out, key=lambda sp: sp.gpus)


@dataclass
class TargetRow:
    gpu: str
    gpus: int
    tp: int
    replicas: int
    weights_dtype: str
    kv_dtype: str
    rate_per_replica_rps: float  # the load each replica carries
    max_rate_per_replica_rps: float  # the most it carries within the targets
    ttft_s: float  # at the chosen percentile
    tpot_s: float
    batch: float
    output_tokens_per_s_per_gpu: float
    output_tokens_per_s_per_user: float
    engine: str
    mode: str = "aggregated"
    prefill_gpus: int = 0
    decode_gpus: int = 0
    pareto: bool = False
    pp: int = 1
    dp: int = 1  # data-parallel attention ranks per replica
    ep_ranks: int = 0  # ranks the experts are split whole over (0: sliced by TP)
    nodes: int = 1
    kv_transfer_s: float = 0.0  # disaggregated: one request's KV from the prefill to the decode pool
    kv_transfer_bytes: int = 0  # that request's KV bytes the decode ranks receive
    prefill_tp: int = 0  # disaggregated: the prefill replicas' TP
    weights_source: str = "architecture"  # or the checkpoint whose headers gave the weights term
    tpot_p90_s: float = 0.0  # with a --tpot-p90 target: the request's own TPOT at the p90 (0: not asked)
    tpot_p99_s: float = 0.0  # with a --tpot-p99 target: the same at the p99

    def to_dict(self) -> dict:
        return asdict(self)


def _at(r: ServingResult, t: Targets) -> tuple[float, float]:
    """(TTFT, TPOT) of ``r`` at the targets' percentile."""
    if t.percentile == "p99":
        return r.ttft_p99_s, r.tpot_p99_s
    if t.percentile == "p90":
        return r.ttft_p90_s, r.tpot_p90_s
    return r.ttft_mean_s, r.tpot_mean_s


def _pairs(r: ServingResult, t: Targets) -> list[tuple[float, float]]:
    """(figure, target) for every target ``t`` sets: TTFT and TPOT at its percentile, and the TPOT percentile
    targets of their own."""
    ttft, tpot = _at(r, t)
    named = ((ttft, t.ttft_s), (tpot, t.tpot_s), (r.tpot_p90_s, t.tpot_p90_s), (r.tpot_p99_s, t.tpot_p99_s))
    return [(figure, target) for figure, target in named if target is not None]


def _meets(r: ServingResult, t: Targets) -> bool:
    return not r.saturated and all(figure <= target for figure, target in _pairs(r, t))


def _tail_names(t: Targets) -> tuple[str, ...]:
    """The percentiles ``t`` targets the TPOT at on their own."""
    return tuple(name for name, v in (("p90", t.tpot_p90_s), ("p99", t.tpot_p99_s)) if v is not None)


def _tpot_tails(r: ServingResult, t: Targets) -> dict[str, float]:
    """A row's TPOT at the percentiles ``t`` targets on their own (:attr:`TargetRow.tpot_p90_s`)."""
    return {**({"tpot_p90_s": r.tpot_p90_s} if t.tpot_p90_s is not None else {}),
            **({"tpot_p99_s": r.tpot_p99_s} if t.tpot_p99_s is not None else {})}  # fmt: skip


def _run(s: Setup, t: Targets, rate: float, ep: bool = False, prefilled: bool = False) -> ServingResult:
    """One replica at ``rate``, with the percentile the targets ask for (the others NaN); ``prefilled``: a
    disaggregated decode replica (:func:`kvplan.serving.serve`)."""
    return serve(s, rate_rps=rate, input_len=t.input_len, output_len=t.output_len, with_max_rate=False,
                 expert_parallel=ep, with_p90=t.percentile == "p90" or t.tpot_p90_s is not None,
                 with_p99=t.percentile == "p99" or t.tpot_p99_s is not None, prefilled=prefilled)  # fmt: skip


def _excess(r: ServingResult, t: Targets) -> float:
    """How far ``r`` is past the targets: the largest ln(figure / target), <= 0 when all are met; saturated: inf."""
    if r.saturated:
        return math.inf
    excess = [math.log(figure / target) for figure, target in _pairs(r, t)]
    return max(excess, default=-1.0)  # no latency target: only saturation fails


def rate_within_targets(
    s: Setup, t: Targets, *, ep: bool = False, prefilled: bool = False, useful: float = 0.0
) -> float:
    """The highest rate one replica of ``s`` serves with the targets met (0 when even one request misses);
    ``prefilled``: as a disaggregated decode replica.

    Bracketed by rates x4 from 1 req/s, then narrowed to 0.3 % by regula falsi on :func:`_excess` (where the upper
    end is saturated, the line through the last two rates that met the targets, else bisection): the rate
    returned meets the targets, the next 0.3 % up does not.

    ``useful``: the caller has no use for a rate below it (:func:`_row`: more replicas than ``max_gpus`` allow).
    The rate returned is always below every rate that missed (the bracket's upper end only comes down), so once a
    rate at or below ``useful`` misses, the search stops there and returns 0.0: exactly what the caller would
    have discarded, a few ``serve`` calls sooner.
    """
    f_lo = _excess(_run(s, t, 1e-9, ep, prefilled), t)
    if f_lo > 0:
        return 0.0
    lo, hi = 0.0, 1.0
    before = (lo, f_lo)  # the met point below ``lo``: with a saturated ``hi`` the line through both guides the next
    while (f_hi := _excess(_run(s, t, hi, ep, prefilled), t)) <= 0:
        before, lo, f_lo, hi = (lo, f_lo), hi, f_hi, hi * 4
        if hi > 1e6:
            return lo
    overshot = False
    for _ in range(4 * _RATE_STEPS):
        if hi <= useful:  # every rate still to be returned is below ``useful`` (see above)
            return 0.0
        if hi - lo <= _RATE_TOL * hi:
            break
        if math.isfinite(f_hi) and f_hi != f_lo:  # regula falsi between the two ends
            mid = lo + (hi - lo) * (-f_lo) / (f_hi - f_lo)
        elif f_lo > before[1] and lo > before[0] and not overshot:
            # saturated end: extend the line through the last two met points (once; after an overshoot, bisect)
            mid = lo + (lo - before[0]) * (-f_lo) / (f_lo - before[1])
        else:
            mid = (lo + hi) / 2
        # kept half a tolerance inside the bracket: landing just past a root already found closes it in one probe
        mid = min(max(mid, lo + 0.5 * _RATE_TOL * hi), hi - 0.5 * _RATE_TOL * hi)
        f_mid = _excess(_run(s, t, mid, ep, prefilled), t)
        overshot = math.isinf(f_mid)
        if f_mid <= 0:
            before, lo, f_lo = (lo, f_lo), mid, f_mid
        else:
            hi, f_hi = mid, f_mid
    return lo


def _nodes(gpus: int, per_replica: int, per_node: int) -> int:
    """Nodes ``gpus`` take: replicas within a node pack; larger ones take whole nodes (kvplan.capacity.Setup)."""
    if per_replica <= per_node:
        return math.ceil(gpus / per_node)
    return gpus // per_replica * math.ceil(per_replica / per_node)


def _mode(s: Setup, ep: bool) -> str:
    if s.dp > 1:
        return f"aggregated, EP + DP attention {s.dp}" if s.ep else f"aggregated, DP attention {s.dp}"
    return "aggregated, EP" if ep else "aggregated"


def _replicas(t: Targets, per_replica: float) -> int:
    return max(1, math.ceil(t.rate_rps / per_replica - 1e-9))


def _useful_rate(s: Setup, t: Targets, *, max_gpus: int) -> float:
    """A per-replica rate below which :func:`_row` discards every rate for needing more than ``max_gpus`` GPUs
    (0.0 where it cannot be shown): a rate search may stop once a rate at or below it misses the targets
    (:func:`rate_within_targets`). At ``rate / (most + 1)`` (``most`` the replicas ``max_gpus`` hold) the
    replicas come to ``most + 1``, checked here as ``_row`` computes them; at any lower rate there are as many or
    more (the division only grows)."""
    most = max_gpus // s.gpus_per_replica
    if most < 1:
        return 0.0
    bound = t.rate_rps / (most + 1)
    return bound if _replicas(t, bound) > most else 0.0


def _row(s: Setup, t: Targets, per_replica: float, *, max_gpus: int, ep: bool = False) -> TargetRow | None:
    if per_replica <= 0:
        return None
    replicas = _replicas(t, per_replica)
    gpus = replicas * s.gpus_per_replica
    if gpus > max_gpus:
        return None
    r = _run(s, t, t.rate_rps / replicas, ep)
    ttft, tpot = _at(r, t)
    return TargetRow(
        gpu=s.gpu.name,
        gpus=gpus,
        tp=s.tp,
        replicas=replicas,
        weights_dtype=s.weights_dtype,
        weights_source=s.weights_source,
        kv_dtype=s.kv_dtype,
        rate_per_replica_rps=t.rate_rps / replicas,
        max_rate_per_replica_rps=per_replica,
        ttft_s=ttft,
        tpot_s=tpot,
        batch=r.batch,
        output_tokens_per_s_per_gpu=t.rate_rps * t.output_len.mean / gpus,
        output_tokens_per_s_per_user=1 / r.tpot_mean_s,
        engine=f"{selected_name(s.engine)}: {r.engine}",
        mode=_mode(s, ep),
        pp=s.pp,
        dp=s.dp,
        ep_ranks=s.tp * s.dp if (ep or s.ep) else 0,
        nodes=_nodes(gpus, s.gpus_per_replica, s.gpus_per_node),
        **_tpot_tails(r, t),
    )


def _disaggregated(
    prefill: Setup, decode: Setup, t: Targets, *, max_gpus: int, memo: dict, ep: bool = False
) -> TargetRow | None:
    """Separate pools (:mod:`kvplan.disagg`): the decode pool sized for the TPOT target, then the prefill pool for
    what the TTFT target leaves after the transfer and the first decode step, at the targets' percentile."""
    from kvplan.latency import nvlink_domain

    q = QUANTILES[t.percentile]
    prompt_q = t.input_len.at(q)
    service = _prefill_s(prefill, t.input_len.mean, memo=memo)
    service_q = _prefill_s(prefill, prompt_q, memo=memo)
    transfer_q, _ = _transfer_at(prefill, decode, prompt=prompt_q, crosses_nodes=True, memo=memo)
    if t.ttft_s is not None and service_q + transfer_q > t.ttft_s:
        return None
    decode_only = Targets(t.rate_rps, t.input_len, t.output_len, None, t.tpot_s, t.percentile, t.tpot_p90_s,
                          t.tpot_p99_s)  # fmt: skip
    key = ("decode", id(decode), ep)
    if key not in memo:
        memo[key] = rate_within_targets(decode, decode_only, ep=ep, prefilled=True)
    d_per = memo[key]
    if d_per <= 0:
        return None
    d_replicas = max(1, math.ceil(t.rate_rps / d_per - 1e-9))
    r_first = _run(decode, decode_only, t.rate_rps / d_replicas, ep, prefilled=True)
    first = first_token_s(decode, r_first, percentile=t.percentile)
    budget = math.inf if t.ttft_s is None else t.ttft_s - transfer_q - first
    rho = max_prefill_load(service_q, budget, quantile=q, ahead_s=service, scv=t.input_len.scv)
    if rho <= 0:
        return None
    p_replicas = max(1, math.ceil(t.rate_rps * service / rho - 1e-9))
    p_gpus, d_gpus = p_replicas * prefill.gpus_per_replica, d_replicas * decode.gpus_per_replica
    gpus = p_gpus + d_gpus
    if gpus > max_gpus:
        return None
    one_domain = gpus <= nvlink_domain(decode.gpu, decode.gpus_per_node)  # both pools in one NVLink domain
    res = serve_disaggregated(prefill, decode, rate_rps=t.rate_rps, input_len=t.input_len, output_len=t.output_len,
                              prefill_replicas=p_replicas, decode_replicas=d_replicas, expert_parallel=ep,
                              crosses_nodes=not one_domain, percentiles=(t.percentile, *_tail_names(t)),
                              memo=memo)  # fmt: skip
    transfer, moved = _transfer_at(prefill, decode, prompt=prompt_q, crosses_nodes=not one_domain, memo=memo)
    ttft, tpot = res.at(t.percentile)
    r = res.decode
    p_nodes = _nodes(p_gpus, prefill.gpus_per_replica, prefill.gpus_per_node)
    d_nodes = _nodes(d_gpus, decode.gpus_per_replica, decode.gpus_per_node)
    return TargetRow(
        gpu=decode.gpu.name,
        gpus=gpus,
        tp=decode.tp,
        replicas=d_replicas,
        weights_dtype=decode.weights_dtype,
        weights_source=decode.weights_source,
        kv_dtype=decode.kv_dtype,
        rate_per_replica_rps=t.rate_rps / d_replicas,
        max_rate_per_replica_rps=d_per,
        ttft_s=ttft,
        tpot_s=tpot,
        batch=r.batch,
        output_tokens_per_s_per_gpu=t.rate_rps * t.output_len.mean / gpus,
        output_tokens_per_s_per_user=1 / r.tpot_mean_s,
        engine=f"{selected_name(decode.engine)}: {r.engine}",
        mode=f"disaggregated (prefill TP{prefill.tp})" + (_mode(decode, ep).removeprefix("aggregated")),
        prefill_gpus=p_gpus,
        decode_gpus=d_gpus,
        pp=decode.pp,
        dp=decode.dp,
        ep_ranks=decode.tp * decode.dp if (ep or decode.ep) else 0,
        nodes=math.ceil(gpus / decode.gpus_per_node) if gpus <= decode.gpus_per_node else p_nodes + d_nodes,
        kv_transfer_s=transfer,
        kv_transfer_bytes=moved,
        prefill_tp=prefill.tp,
        **_tpot_tails(r, t),
    )


def plan_for_targets(
    spec: ModelSpec,
    gpus: list[GPU],
    targets: Targets,
    *,
    engine: str = "vllm",
    weights_dtypes: list[str] | None = None,
    kv_dtypes: list[str] | None = None,
    disaggregated: bool = False,
    max_gpus: int = MAX_GPUS,
    gpus_per_node: int | None = None,
    checkpoint: Any = None,
    settings: Settings | None = None,
    top: int = 0,
) -> list[TargetRow]:
    """Configurations meeting ``targets`` with the fewest GPUs first; ``pareto`` marks the front. ``settings``: the
    engine's flags every configuration runs with (two-batch overlap, DeepEP, the memory fraction).
    ``checkpoint`` (the model's headers) gives the weights term of its own dtype (:func:`kvplan.capacity.setup`).

    ``top`` > 0: only the first ``top`` rows are wanted (``plan``'s table). They are those rows of the whole plan,
    in its order and with its Pareto marks, but a configuration that cannot be among them is not searched to the
    end (:func:`_cutoff`), and fewer rows may come back; the front beyond them is then not known."""
    targets.check()
    if gpus_per_node is not None and gpus_per_node < 1:  # as kvplan.planner.plan refuses it
        raise InvalidInput(f"invalid GPUs per node {gpus_per_node!r}; expected a whole number of at least 1")
    refuse_weights_nowhere_run(engine, gpus, weights_dtypes)
    refuse_kv_nowhere_run(engine, gpus, kv_dtypes, latency=True)
    if settings is not None:  # flags of another engine: one clear refusal, not an empty plan
        get_engine(engine).check_settings(settings)
        check_host_time(get_engine(engine), settings.host_request_s, settings.host_step_s)
        check_dp_balance(spec, settings)
    memo: dict = {}  # weight counts and cache plans (kvplan.capacity.setup): the same on every GPU type
    groups: list[list[tuple[Setup, bool]]] = []  # per GPU type x weight dtype x KV dtype: (setup, ep) per split
    for gpu in gpus:
        per_node = gpus_per_node or gpu.gpus_per_node
        splits = rate_splits(spec, gpus_per_node=per_node, max_gpus=max_gpus)
        for w in weights_dtypes or [None]:
            for kv in kv_dtypes or [None]:
                candidates = []  # (setup, ep) in the order of the splits
                for sp in splits:
                    s = _setup(spec, gpu, engine, sp, w, kv, per_node=per_node, memo=memo, checkpoint=checkpoint,
                               settings=settings)  # fmt: skip
                    if s is not None:  # TP-EP: the setup stays TP-sliced for memory, the latency splits
                        candidates.append((s, sp.ep and sp.dp == 1))
                groups.append(candidates)
    # Searched fewest GPUs per replica first, so that with ``top`` the cut-off falls early; rows kept in the order
    # of the groups and splits, which the ranking's ties keep.
    jobs = sorted(((g, i) for g, c in enumerate(groups) for i in range(len(c))),
                  key=lambda j: groups[j[0]][j[1]][0].gpus_per_replica)  # fmt: skip
    found: list[TargetRow] = []
    by_job: dict[tuple[int, int], TargetRow] = {}
    for g, i in jobs:
        s, ep = groups[g][i]
        limit = _cutoff(found, top, max_gpus)
        if s.gpus_per_replica > limit:
            continue
        per = rate_within_targets(s, targets, ep=ep, useful=_useful_rate(s, targets, max_gpus=limit))
        row = _row(s, targets, per, max_gpus=max_gpus, ep=ep)
        if row is not None:
            found.append(row)
            by_job[g, i] = row
    rows: list[TargetRow] = []
    for g, candidates in enumerate(groups):
        rows += [by_job[g, i] for i in range(len(candidates)) if (g, i) in by_job]
        if disaggregated:
            more = _disaggregated_rows(candidates, targets, max_gpus=max_gpus, limit=_cutoff(found, top, max_gpus))
            rows += more
            found += more
    rows.sort(key=lambda r: (r.gpus, -r.output_tokens_per_s_per_user))
    _mark_pareto(rows)
    return rows[:top] if top > 0 else rows


def check_dp_balance(spec: ModelSpec, settings: Settings) -> None:
    """Balancing attention-DP ranks needs attention DP, which kvplan plans for MoE models only
    (:func:`kvplan.engines.base.check_moe_parallel`): on a dense model the flag could change no row. Its iteration
    counts need the balancer on, and are whole numbers from 0 (kvplan.dp_balance.check_iters, the source's rule)."""
    for key, value in (("timeout_iters", settings.attention_dp_timeout_iters),
                       ("batching_wait_iters", settings.attention_dp_batching_wait_iters)):  # fmt: skip
        check_iters(value, key)
        if value is not None and not settings.attention_dp_balance:
            flag = "--attention-dp-" + key.replace("_", "-")
            raise InvalidInput(f"{flag} sets the balancer's attention_dp_config.{key}; it needs --attention-dp-balance")
    if settings.attention_dp_balance and spec.moe is None:
        raise InvalidInput(
            f"--attention-dp-balance balances attention data-parallel ranks, which need an MoE model; {spec.name} "
            "has no MoE layers (its rows run TP/PP only)"
        )


def _cutoff(rows: list[TargetRow], top: int, max_gpus: int) -> int:
    """The most GPUs a row may have and still be among the first ``top`` (``max_gpus`` without ``top``).

    With ``top`` rows found, the ``top``-th fewest GPUs among them, ``G``: the whole plan has at least those rows at
    ``G`` GPUs or fewer, so a row with more than ``G`` ranks after ``top`` of them. Nor does it change a Pareto mark
    of those: its output tokens/s per GPU (the same rate over more GPUs) is lower than each of theirs. ``G`` only
    comes down as rows are found, so a configuration dropped against it stays out."""
    if not 0 < top <= len(rows):
        return max_gpus
    return min(max_gpus, sorted(r.gpus for r in rows)[top - 1])


def _disaggregated_rows(
    candidates: list[tuple[Setup, bool]], t: Targets, *, max_gpus: int, limit: int | None = None
) -> list[TargetRow]:
    """Every prefill pool of plain TP replicas (one prompt at a time gains nothing from PP, DP or EP) against
    every decode pool the aggregated search tried; ``limit``: pairs whose two replicas alone exceed that many GPUs
    are left out (:func:`_cutoff`)."""
    out, memo = [], {}
    if candidates:
        check_engine(candidates[0][0])
    prefills = [s for s, ep in candidates if not ep and s.pp == 1 and s.dp == 1]
    for p in prefills:
        for d, ep in candidates:
            if limit is not None and p.gpus_per_replica + d.gpus_per_replica > limit:
                continue
            row = _disaggregated(p, d, t, max_gpus=max_gpus, memo=memo, ep=ep)
            if row is not None:
                out.append(row)
    return out


def _setup(
    spec: ModelSpec,
    gpu: GPU,
    engine: str,
    sp: Split,
    w: str | None,
    kv: str | None,
    *,
    per_node: int,
    memo: dict,
    checkpoint: Any = None,
    settings: Settings | None = None,
) -> Setup | None:
    try:
        s = setup(spec, gpu, engine=engine, tp=sp.tp, pp=sp.pp, dp=sp.dp, ep=sp.ep and sp.dp > 1, kv_dtype_name=kv,
                  weights_dtype=w, gpus_per_node=per_node, memo=memo, checkpoint=checkpoint,
                  settings=settings)  # fmt: skip
        s.engine.check_kv_latency(s.kv_dtype)  # a KV format whose reads the engine's latency does not price
    except InvalidInput:
        return None  # a split or dtype this model, GPU or engine cannot take
    if any(st.available <= 0 for st in s.stages):
        return None
    return s


def _mark_pareto(rows: list[TargetRow]) -> None:
    for r in rows:
        r.pareto = not any(
            o is not r
            and o.output_tokens_per_s_per_gpu >= r.output_tokens_per_s_per_gpu
            and o.output_tokens_per_s_per_user >= r.output_tokens_per_s_per_user
            and (
                o.output_tokens_per_s_per_gpu > r.output_tokens_per_s_per_gpu
                or o.output_tokens_per_s_per_user > r.output_tokens_per_s_per_user
            )
            for o in rows
        )


__all__ = ["Split", "Targets", "TargetRow", "kv_transfer", "plan_for_targets", "rate_splits", "rate_within_targets"]

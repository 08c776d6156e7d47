"""Plan against latency targets: the fewest GPUs that serve a request rate within TTFT and TPOT.

Every GPU type x tensor-parallel degree x weight dtype x KV dtype (and, for MoE at TP > 1, experts
sliced by TP or split whole across the ranks: expert parallelism) is one
:func:`kvplan.capacity.setup` (the engine's KV pool and batch limits). For each, the highest
request rate one replica sustains with the targets met is found by bisection on
:func:`kvplan.serving.serve` (latency grows with the rate); the replicas (data parallel) follow
by division. Rows are ranked by GPU count, then by tokens/s per user. The Pareto front over
(output tokens/s per GPU, output tokens/s per user) at each configuration's own operating point
is marked.

Disaggregated prefill/decode pools (``disaggregated=True``): prefill replicas run prompts one
after another (each prompt a static prefill, the TTFT target met by an M/D/1 queue's mean or p90),
decode replicas run the in-flight model with no prefill tokens; the pools are sized separately and
the KV transfer between them is not costed (stated).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from kvplan.capacity import Setup, setup
from kvplan.errors import InvalidInput
from kvplan.hardware import GPU
from kvplan.serving import Lengths, ServingResult, serve
from kvplan.spec import ModelSpec

Percentile = Literal["mean", "p90"]
TP_DEGREES = (1, 2, 4, 8)  # one NVLink domain; PP is not modelled by the serving model
MAX_GPUS = 256
_RATE_STEPS = 10  # bisection steps on the rate: within 0.1 % of the sustainable rate


@dataclass(frozen=True)
class Targets:
    rate_rps: float
    input_len: Lengths
    output_len: Lengths
    ttft_s: float | None = None
    tpot_s: float | None = None
    percentile: Percentile = "mean"

    def check(self) -> None:
        if not self.rate_rps > 0:
            raise InvalidInput(f"invalid rate {self.rate_rps!r}; expected requests per second > 0")
        for name, v in (("ttft", self.ttft_s), ("tpot", self.tpot_s)):
            if v is not None and not v > 0:
                raise InvalidInput(f"invalid --{name} {v!r}; expected a time > 0, e.g. 1s or 50ms")
        if self.percentile not in ("mean", "p90"):
            raise InvalidInput(f"invalid percentile {self.percentile!r}; expected mean or p90")


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

    def to_dict(self) -> dict:
        return asdict(self)


def _meets(r: ServingResult, t: Targets) -> bool:
    if r.saturated:
        return False
    ttft = r.ttft_p90_s if t.percentile == "p90" else r.ttft_mean_s
    tpot = r.tpot_p90_s if t.percentile == "p90" else r.tpot_mean_s
    return (t.ttft_s is None or ttft <= t.ttft_s) and (t.tpot_s is None or tpot <= t.tpot_s)


def _run(s: Setup, t: Targets, rate: float, ep: bool = False) -> ServingResult:
    return serve(
        s, rate_rps=rate, input_len=t.input_len, output_len=t.output_len, with_max_rate=False, expert_parallel=ep
    )


def rate_within_targets(s: Setup, t: Targets, *, ep: bool = False) -> float:
    """The highest rate one replica of ``s`` serves with the targets met (0 when even one request misses)."""
    if not _meets(_run(s, t, 1e-9, ep), t):
        return 0.0
    lo, hi = 0.0, 1.0
    while _meets(_run(s, t, hi, ep), t):
        lo, hi = hi, hi * 4
        if hi > 1e6:
            return lo
    for _ in range(_RATE_STEPS):
        mid = (lo + hi) / 2
        if _meets(_run(s, t, mid, ep), t):
            lo = mid
        else:
            hi = mid
    return lo


def _row(s: Setup, t: Targets, per_replica: float, *, max_gpus: int, ep: bool = False) -> TargetRow | None:
    if per_replica <= 0:
        return None
    replicas = max(1, math.ceil(t.rate_rps / per_replica - 1e-9))
    gpus = replicas * s.tp
    if gpus > max_gpus:
        return None
    r = _run(s, t, t.rate_rps / replicas, ep)
    p90 = t.percentile == "p90"
    return TargetRow(
        gpu=s.gpu.name,
        gpus=gpus,
        tp=s.tp,
        replicas=replicas,
        weights_dtype=s.weights_dtype,
        kv_dtype=s.kv_dtype,
        rate_per_replica_rps=t.rate_rps / replicas,
        max_rate_per_replica_rps=per_replica,
        ttft_s=r.ttft_p90_s if p90 else r.ttft_mean_s,
        tpot_s=r.tpot_p90_s if p90 else r.tpot_mean_s,
        batch=r.batch,
        output_tokens_per_s_per_gpu=t.rate_rps * t.output_len.mean / gpus,
        output_tokens_per_s_per_user=1 / r.tpot_mean_s,
        engine=f"{s.engine.name}: {r.engine}",
        mode="aggregated, EP" if ep else "aggregated",
    )


def _disaggregated(prefill: Setup, decode: Setup, t: Targets, *, max_gpus: int, memo: dict) -> TargetRow | None:
    """Separate pools: prefill replicas serve prompts one at a time, decode replicas decode only."""
    from kvplan.cost import phase_cost

    prompt = t.input_len.p90 if t.percentile == "p90" else t.input_len.mean
    service = phase_cost(
        prefill.spec, prefill.gpu, prompt, phase="prefill", tp=prefill.tp, kv_dtype_name=prefill.kv_dtype,
        weights_dtype=prefill.weights_dtype, engine=prefill.engine.name,
    ).time_s  # fmt: skip
    if t.ttft_s is not None and service > t.ttft_s:
        return None
    rho = _prefill_load(service, t)
    p_replicas = max(1, math.ceil(t.rate_rps * service / rho - 1e-9))
    decode_only = Targets(t.rate_rps, Lengths(1, 1), t.output_len, None, t.tpot_s, t.percentile)
    if id(decode) not in memo:
        memo[id(decode)] = rate_within_targets(decode, decode_only)
    d_per = memo[id(decode)]
    if d_per <= 0:
        return None
    d_replicas = max(1, math.ceil(t.rate_rps / d_per - 1e-9))
    gpus = p_replicas * prefill.tp + d_replicas * decode.tp
    if gpus > max_gpus:
        return None
    r = _run(decode, decode_only, t.rate_rps / d_replicas)
    load = t.rate_rps * service / p_replicas
    wait = load * service / (2 * (1 - load)) if load < 1 else math.inf
    return TargetRow(
        gpu=decode.gpu.name,
        gpus=gpus,
        tp=decode.tp,
        replicas=d_replicas,
        weights_dtype=decode.weights_dtype,
        kv_dtype=decode.kv_dtype,
        rate_per_replica_rps=t.rate_rps / d_replicas,
        max_rate_per_replica_rps=d_per,
        ttft_s=service + wait,
        tpot_s=r.tpot_p90_s if t.percentile == "p90" else r.tpot_mean_s,
        batch=r.batch,
        output_tokens_per_s_per_gpu=t.rate_rps * t.output_len.mean / gpus,
        output_tokens_per_s_per_user=1 / r.tpot_mean_s,
        engine=f"{decode.engine.name}: {r.engine}",
        mode=f"disaggregated (prefill TP{prefill.tp})",
        prefill_gpus=p_replicas * prefill.tp,
        decode_gpus=d_replicas * decode.tp,
    )


def _prefill_load(service: float, t: Targets) -> float:
    """The busiest a prefill replica may be with the TTFT target met (M/D/1 mean wait rho S / (2 (1 - rho)))."""
    if t.ttft_s is None:
        return 0.95
    slack = t.ttft_s / service - 1  # waits allowed, in services
    if t.percentile == "p90":
        slack /= math.log(10)  # the exponential tail's p90 is about ln(10) x the mean wait
    return max(0.05, min(0.95, 2 * slack / (1 + 2 * slack)))


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
    checkpoint: Any = None,
) -> list[TargetRow]:
    """Configurations meeting ``targets`` with the fewest GPUs first; ``pareto`` marks the front.
    ``checkpoint`` (the model's headers) gives the weights term of its own dtype (:func:`kvplan.capacity.setup`)."""
    targets.check()
    rows: list[TargetRow] = []
    for gpu in gpus:
        for w in weights_dtypes or [None]:
            for kv in kv_dtypes or [None]:
                setups = [_setup(spec, gpu, engine, tp, w, kv, checkpoint=checkpoint) for tp in TP_DEGREES]
                setups = [s for s in setups if s is not None]
                for s in setups:
                    # MoE at TP > 1: experts sliced by TP, and split whole across the ranks (expert parallel)
                    for ep in (False, True) if spec.moe is not None and s.tp > 1 else (False,):
                        per = rate_within_targets(s, targets, ep=ep)
                        row = _row(s, targets, per, max_gpus=max_gpus, ep=ep)
                        if row is not None:
                            rows.append(row)
                if disaggregated:
                    rows += _disaggregated_rows(setups, targets, max_gpus=max_gpus)
    rows.sort(key=lambda r: (r.gpus, -r.output_tokens_per_s_per_user))
    _mark_pareto(rows)
    return rows


def _disaggregated_rows(setups: list[Setup], t: Targets, *, max_gpus: int) -> list[TargetRow]:
    out, memo = [], {}
    for p in setups:
        for d in setups:
            row = _disaggregated(p, d, t, max_gpus=max_gpus, memo=memo)
            if row is not None:
                out.append(row)
    return out


def _setup(
    spec: ModelSpec, gpu: GPU, engine: str, tp: int, w: str | None, kv: str | None, *, checkpoint: Any = None
) -> Setup | None:
    try:
        s = setup(spec, gpu, engine=engine, tp=tp, kv_dtype_name=kv, weights_dtype=w, checkpoint=checkpoint)
    except InvalidInput:
        return None  # a split or dtype this model, GPU or engine cannot take
    if s.stages[0].available <= 0:
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


__all__ = ["Targets", "TargetRow", "plan_for_targets", "rate_within_targets"]

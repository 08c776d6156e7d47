"""Capacity answers in an engine's terms: the KV pool, concurrent sequences, the longest context.

Everything here is a search over the engine layout's integer arithmetic (:mod:`kvplan.engines`):
"fits" means the allocation units ``batch`` sequences of ``length`` tokens take (blocks, token
slots, cells, bytes) plus the engine's reserved units do not exceed the pool on every pipeline
stage. The per-sequence cost is monotone in the length and the batch, so the inverse questions
(longest context, most sequences) are binary searches that stay right with windows, chunks and
recurrent state, where bytes are not proportional to tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from kvplan.checks import (
    as_gpu,
    as_spec,
    beyond_trained_context,
    check_batch,
    check_bytes,
    check_degrees,
    check_length,
    trained_context,
)
from kvplan.engines import (
    Budget,
    Engine,
    Layout,
    Settings,
    check_fraction,
    get_engine,
    known_kv_dtype,
    usable_memory_bytes,
)
from kvplan.engines.base import largest
from kvplan.errors import InvalidInput
from kvplan.hardware import GPU
from kvplan.memory import check_parallel
from kvplan.params import weight_bytes_per_stage
from kvplan.quant import alternatives, default_dtype, storage
from kvplan.spec import ModelSpec
from kvplan.units import canonical_dtype, weight_dtype


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: its budget and layout."""

    budget: Budget
    layout: Layout

    @property
    def available(self) -> int:
        return max(0, self.budget.available_kv)

    def fits(self, *, batch: int, length: int) -> bool:
        return self.layout.fits(self.available, batch=batch, length=length)


@dataclass(frozen=True)
class Setup:
    """A resolved configuration: model, engine, GPU, split, dtypes and per-stage layouts."""

    spec: ModelSpec
    engine: Engine
    gpu: GPU
    tp: int
    pp: int
    gpus: int
    kv_dtype: str
    weights_dtype: str
    settings: Settings
    stages: tuple[Stage, ...]
    max_num_batched_tokens: int | None  # where the engine has the limit
    max_num_seqs: int | None
    weights_format: str = ""  # the stored format in words ("fp8, block 128x128, fp32 scales (as shipped)")
    weights_shipped: bool = True  # False: a conversion of the published checkpoint (online fp8, GGUF, ...)

    @property
    def replicas(self) -> int:
        return self.gpus // (self.tp * self.pp)

    def fits(self, *, batch: int, length: int) -> bool:
        return all(s.fits(batch=batch, length=length) for s in self.stages)


def setup(
    spec: ModelSpec | str,
    gpu: GPU | str,
    *,
    engine: str = "vllm",
    tp: int = 1,
    pp: int = 1,
    gpus: int | None = None,
    kv_dtype_name: str | None = None,
    weights_dtype: str | None = None,
    settings: Settings | None = None,
    memo: dict | None = None,
) -> Setup:
    """Validate the inputs and build the per-stage budget and layout.

    ``spec`` and ``gpu`` may be names (``"llama-3.1-8b"``, ``"h100-sxm"``). ``memo`` (any dict,
    kept by the caller) shares weight counts and cache plans between calls on the same model, so a
    sweep over GPUs does the per-layer arithmetic once per split.
    """
    spec = as_spec(spec)
    gpu = as_gpu(gpu)
    profile = get_engine(engine)
    settings = settings or Settings()
    check_fraction(settings.gpu_memory_utilization, "gpu_memory_utilization")
    check_fraction(settings.mem_fraction_static, "mem_fraction_static")
    check_fraction(settings.free_gpu_memory_fraction, "free_gpu_memory_fraction")
    check_fraction(settings.swa_full_tokens_ratio, "swa_full_tokens_ratio")
    profile.check_settings(settings)  # flags of another engine, block sizes the engine has no such size of
    check_degrees(tp=tp, pp=pp)
    gpus = gpus if gpus is not None else tp * pp
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1 or gpus % (tp * pp):
        raise InvalidInput(f"invalid GPU count {gpus!r}; it must be a multiple of tp x pp = {tp * pp}")
    kv_name = known_kv_dtype(kv_dtype_name or profile.default_kv_dtype(spec))
    kv_name = profile.check_kv_dtype(kv_name)
    w_name = canonical_dtype(weight_dtype(weights_dtype).name) if weights_dtype else None
    w_name = profile.check_weights_dtype(w_name or default_dtype(spec, loads=profile.weight_dtypes))
    w_store = storage(spec, w_name)
    check_parallel(spec, tp=tp, pp=pp)  # tp divides the query heads, pp <= layers
    profile.check_parallel(spec, tp=tp, pp=pp)
    memo = {} if memo is None else memo
    if settings.mla not in ("latent", "expanded"):
        raise InvalidInput(f"invalid MLA layout {settings.mla!r}; expected 'latent' or 'expanded'")
    attn_tp = profile.attention_tp(tp, settings)  # the KV cell's TP split (tp / attention DP)
    plan_key = ("plan", profile.key, kv_name, attn_tp, pp, settings.mla)
    if plan_key not in memo:
        memo[plan_key] = profile.cache_plan(spec, kv_dtype_name=kv_name, tp=attn_tp, pp=pp, mla=settings.mla)
    plan = memo[plan_key]
    w_key = ("weights", w_name, tp, pp)
    if w_key not in memo:
        memo[w_key] = weight_bytes_per_stage(spec, w_name, tp=tp, pp=pp)
    total = usable_memory_bytes(gpu, settings.overrides.device_memory_bytes)
    mnbt, seqs = profile.batch_limits(settings, total, gpu)
    stages = tuple(
        Stage(
            profile.budget(spec, settings=settings, total=total, weights=memo[w_key][i], tp=tp, pp=pp, gpu=gpu),
            profile.layout(spec, plan=plan, settings=settings, stage_index=i, gpu=gpu, total=total),
        )
        for i in range(len(plan.stages))
    )
    return Setup(spec, profile, gpu, tp, pp, gpus, kv_name, w_name, settings, stages, mnbt, seqs, w_store.label,
                 w_store.shipped)  # fmt: skip


# ---- searches -----------------------------------------------------------------------------------


def max_sequences(s: Setup, length: int) -> int:
    """Most concurrent sequences of ``length`` tokens one replica holds (exact unit count; attention
    data-parallel ranks each hold their own)."""
    return min(st.layout.max_sequences(st.available, length) for st in s.stages) * s.settings.attention_dp


def decode_sequences(s: Setup, length: int) -> int:
    """Requests of ``length`` tokens that decode at once in steady state on one replica.

    Differs from :func:`max_sequences` (the worst case an engine sizes its startup report by) where
    the engine frees what a decoding request no longer needs (vLLM's sliding-window blocks)."""
    return min(st.layout.decode_sequences(st.available, length) for st in s.stages) * s.settings.attention_dp


def max_context(s: Setup, *, batch: int = 1, limit: int | None = None) -> int:
    """Longest context such that ``batch`` sequences of it fit (0: not even one token)."""
    top = limit or s.spec.max_position_embeddings
    return largest(lambda n: s.fits(batch=batch, length=n), top)


def pool_tokens(s: Setup) -> int:
    """The pool in tokens, as the engine reports it (busiest stage)."""
    return min(st.layout.pool_tokens(st.available) for st in s.stages)


def pool_bytes(s: Setup, *, sequences: int, length: int) -> int:
    """Bytes the KV pool takes on the busiest GPU (what the engine allocates)."""
    return max(stage_pool_bytes(st, sequences=sequences, length=length) for st in s.stages)


def stage_pool_bytes(st: Stage, *, sequences: int, length: int) -> int:
    """Bytes the KV pool of one pipeline stage takes."""
    return st.layout.pool_bytes(st.available, sequences=sequences, length=length)


def reported_concurrency(s: Setup, length: int) -> float:
    """The engine's own concurrency figure at ``length`` (vLLM: num_blocks / blocks per request)."""
    return min(st.layout.reported_concurrency(st.available, length) for st in s.stages)


def expected_concurrency(s: Setup, lengths: list[int], *, weights: list[float] | None = None) -> float:
    """Sequences that fit on average for a mix of request lengths (weights default to equal).

    The pool divided by the weighted mean cost of one sequence. llama.cpp gives each of its
    ``-np`` slots the same cells, so the mix is sized by its longest request there.
    """
    if weights is not None and len(weights) != len(lengths):
        raise InvalidInput(f"got {len(weights)} weights for {len(lengths)} lengths; give one weight per length")
    w = weights or [1.0] * len(lengths)
    if not all(0 <= x < float("inf") for x in w) or sum(w) <= 0:  # also refuses nan
        raise InvalidInput(f"invalid weights {w!r}; expected non-negative numbers with a positive sum")
    values = [st.layout.expected_concurrency(st.available, lengths, w) for st in s.stages]
    return min(values) * s.replicas


# ---- the answer ------------------------------------------------------------------------------


@dataclass
class CapacityResult:
    """One capacity answer. Bytes are ints, per GPU unless the name says otherwise."""

    model: str
    engine: str
    engine_version: str
    engine_release: str  # the rule set: ``--engine {engine}@{engine_release}`` selects it again
    gpu: str
    gpus: int
    tp: int
    pp: int
    replicas: int
    kv_dtype: str
    weights_dtype: str
    context: int
    fits: bool
    kv_pool_bytes: int
    kv_pool_tokens: int
    available_kv_bytes: int
    max_concurrent_sequences: int  # at ``context``, all replicas, decoding at once in steady state
    max_concurrent_sequences_per_replica: int
    engine_reported_concurrency: float  # the engine's own startup figure (vLLM "Maximum concurrency")
    max_context: int  # one sequence
    max_context_limited_by: str
    batch: int | None
    max_context_for_batch: int | None
    expected_concurrency: float | None
    mix: dict[str, Any] | None
    block_tokens: int
    max_num_batched_tokens: int | None
    max_num_seqs: int | None
    breakdown: dict[str, int]
    budget_rule: str
    settings: dict[str, Any]
    reason: str | None = None
    nearest: list[dict[str, Any]] = field(default_factory=list)
    kv_cache_memory_given: bool = False
    weights_format: str = ""
    weights_shipped: bool = True
    # The operator's three questions, each labelled (see :func:`answers`).
    answers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def capacity(
    s: Setup,
    context: int,
    *,
    batch: int | None = None,
    lengths: list[int] | None = None,
    weights: list[float] | None = None,
    kv_cache_memory: int | None = None,
    suggest: bool = True,
) -> CapacityResult:
    """Answer every capacity question for one configuration at ``context`` tokens.

    ``context`` past the model's trained context never fits (engines refuse the length), with the
    message :func:`kvplan.checks.beyond_trained_context` gives every command.
    """
    if not isinstance(s, Setup):
        raise InvalidInput(f"invalid setup {s!r}; build one with kvplan.capacity.setup(model, gpu, ...)")
    context = check_length(context)
    batch = check_batch(batch) if batch is not None else None
    if lengths is not None:
        lengths = [check_length(n) for n in lengths]
        if not lengths:
            raise InvalidInput("an empty length mix; give at least one length, e.g. [2048, 8192]")
    if kv_cache_memory is not None:
        s = with_kv_memory(s, _check_kv_budget(s, kv_cache_memory))
    beyond = beyond_trained_context(s.spec, context)
    admitted = 0 if beyond else max_sequences(s, context)
    per_replica = 0 if beyond else decode_sequences(s, context)
    one = max_context(s)
    limited = "memory" if one < trained_context(s.spec) else "model max_position_embeddings"
    busiest = min(s.stages, key=lambda st: st.budget.available_kv)
    b = busiest.budget
    pool = pool_bytes(s, sequences=per_replica, length=context)
    breakdown = {
        "device_total_bytes": b.device_total,
        "engine_share_bytes": b.engine_share,
        "weights_bytes": b.weights,
        "activation_bytes": b.activation,
        "non_torch_bytes": b.non_torch,
        "cuda_graph_bytes": b.cuda_graph,
        "overhead_bytes": b.overhead,
        "available_kv_bytes": b.available_kv,
        "kv_pool_bytes": pool,
        # Of the same (busiest) stage as the other terms: another stage's pool can be larger.
        "unallocated_bytes": max(0, b.available_kv) - stage_pool_bytes(busiest, sequences=per_replica, length=context),
    }
    mix = None
    expected = None
    if lengths:
        expected = expected_concurrency(s, lengths, weights=weights)
        mix = {"lengths": lengths, "weights": weights or [1.0] * len(lengths)}
    fits = admitted >= 1
    tokens, reported = pool_tokens(s), round(reported_concurrency(s, context), 4)
    result = CapacityResult(
        model=s.spec.name,
        engine=s.engine.name,
        engine_version=s.engine.version,
        engine_release=s.engine.release,
        gpu=s.gpu.name,
        gpus=s.gpus,
        tp=s.tp,
        pp=s.pp,
        replicas=s.replicas,
        kv_dtype=s.kv_dtype,
        weights_dtype=s.weights_dtype,
        context=context,
        fits=fits,
        kv_pool_bytes=pool,
        kv_pool_tokens=tokens,
        available_kv_bytes=b.available_kv,
        max_concurrent_sequences=per_replica * s.replicas,
        max_concurrent_sequences_per_replica=per_replica,
        engine_reported_concurrency=reported,
        max_context=one,
        max_context_limited_by=limited,
        batch=batch,
        max_context_for_batch=max_context(s, batch=batch) if batch else None,
        expected_concurrency=round(expected, 4) if expected is not None else None,
        mix=mix,
        block_tokens=s.stages[0].layout.block_tokens,
        max_num_batched_tokens=s.max_num_batched_tokens,
        max_num_seqs=s.max_num_seqs,
        breakdown=breakdown,
        budget_rule=b.rule,
        settings=_settings_dict(s, b),
        kv_cache_memory_given=kv_cache_memory is not None,
        weights_format=s.weights_format,
        weights_shipped=s.weights_shipped,
        answers=answers(
            context,
            tokens=tokens,
            reported=reported,
            admitted=admitted * s.replicas,
            decoding=per_replica * s.replicas,
            longest=one,
        ),  # fmt: skip
    )
    if not fits:
        result.reason = beyond or _reason(s, context, one)
        if suggest:
            result.nearest = _context_only(s, one) if beyond else nearest_fits(s, context)
    return result


def answers(context: int, *, tokens: int, reported: float, admitted: int, decoding: int, longest: int) -> dict:
    """What an operator asks, labelled: what the engine logs at startup, how many requests decode at
    once in steady state, and the longest single request it admits. The startup figures are the
    engine's worst-case sizing (vLLM sizes each request for its longest prefill chunk); the decoding
    figure counts what a running request holds."""
    return {
        "startup_log": {"kv_pool_tokens": tokens, "max_concurrency": reported, "context": context,
                        "whole_requests": admitted},
        "decoding_at_once": decoding,
        "longest_request_tokens": longest,
    }  # fmt: skip


def _context_only(s: Setup, one: int) -> list[dict[str, Any]]:
    """Past the trained context only a shorter context helps (more GPUs do not lift the limit)."""
    return [{"change": f"--context {one}", "context": one, "tp": s.tp, "gpus": s.gpus}] if one else []


def _check_kv_budget(s: Setup, kv_bytes: int) -> int:
    """A KV budget the user gives must fit beside the weights in the device's usable memory:
    the engine allocates it after loading them (vLLM gpu_worker: --kv-cache-memory skips profiling
    and allocates exactly that), so more than what is left fails at start."""
    kv_bytes = check_bytes(kv_bytes, "KV cache memory")
    for st in s.stages:
        room = st.budget.device_total - st.budget.weights
        if kv_bytes > room:
            raise InvalidInput(
                f"KV cache memory {kv_bytes:,} B does not fit on {s.gpu.name}: {st.budget.device_total:,} B "
                f"usable - {st.budget.weights:,} B weights leaves {max(room, 0):,} B at most per GPU"
            )
    return kv_bytes


def with_kv_memory(s: Setup, kv_bytes: int | list[int]) -> Setup:
    """The same setup with the KV budget fixed (vLLM --kv-cache-memory: utilization is ignored).

    A list gives one budget per pipeline stage (what each stage's workers logged).
    """
    from dataclasses import replace

    per_stage = kv_bytes if isinstance(kv_bytes, list) else [kv_bytes] * len(s.stages)
    if len(per_stage) != len(s.stages):
        raise InvalidInput(f"got {len(per_stage)} KV budgets for {len(s.stages)} pipeline stages")
    stages = tuple(
        Stage(replace(st.budget, available_kv=kv, rule="--kv-cache-memory"), st.layout)
        for st, kv in zip(s.stages, per_stage, strict=True)
    )
    return replace(s, stages=stages)


def _settings_dict(s: Setup, b: Budget) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if b.fraction_name:
        out[b.fraction_name] = b.fraction
    out.update(s.stages[0].layout.settings())
    return out


def _reason(s: Setup, context: int, one: int) -> str:
    b = min(s.stages, key=lambda st: st.budget.available_kv).budget
    if b.available_kv <= 0:
        return (
            f"no memory left for the KV cache: weights {b.weights:,} B and other terms exceed the "
            f"engine's share {b.engine_share:,} B per GPU"
        )
    return f"one sequence of {context:,} tokens does not fit the KV pool; the longest that fits is {one:,} tokens"


def nearest_fits(s: Setup, context: int, *, limit: int = 3) -> list[dict[str, Any]]:
    """Configurations close to ``s`` where one sequence of ``context`` fits, fewest GPUs first.

    Tries a shorter context, then more tensor parallelism, then 8-bit KV and the weight formats the
    checkpoint ships or the engine makes from it (:func:`kvplan.quant.alternatives`), keeping the
    same GPU type.
    """
    out: list[dict[str, Any]] = []
    one = max_context(s)
    if one:
        out.append({"change": f"--context {one}", "context": one, "tp": s.tp, "gpus": s.tp * s.pp})
    kvs = [s.kv_dtype] + [k for k in ("fp8", "q8_0") if k in s.engine.kv_dtypes and k != s.kv_dtype][:1]
    weights = alternatives(s.spec, current=s.weights_dtype, loads=s.engine.weight_dtypes,
                           online=s.engine.online_weight_dtypes)  # fmt: skip
    tps = [t for t in (1, 2, 4, 8) if t >= s.tp] if s.engine.supports_tp else [s.tp]
    for tp in tps:
        for w in weights:
            for kv in kvs:
                if (tp, w, kv) == (s.tp, s.weights_dtype, s.kv_dtype) or not _try(
                    s, context, tp=tp, weights_dtype=w, kv_dtype_name=kv
                ):
                    continue
                flags = [f"--tp {tp} --gpus {tp * s.pp}"] if tp != s.tp else []
                flags += [f"--weights-dtype {w}"] if w != s.weights_dtype else []
                flags += [f"--kv-dtype {kv}"] if kv != s.kv_dtype else []
                out.append({"change": " ".join(flags), "context": context, "tp": tp, "gpus": tp * s.pp,
                            "weights_dtype": w, "kv_dtype": kv})  # fmt: skip
                if len(out) >= limit:
                    return out
    return out


def _try(s: Setup, context: int, **changes: Any) -> bool:
    args = {
        "engine": s.engine.key,
        "tp": s.tp,
        "pp": s.pp,
        "kv_dtype_name": s.kv_dtype,
        "weights_dtype": s.weights_dtype,
        "settings": s.settings,
    }
    args.update(changes)
    try:
        other = setup(s.spec, s.gpu, **args)
    except InvalidInput:
        return False
    return max_sequences(other, context) >= 1

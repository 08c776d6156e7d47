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
from typing import TYPE_CHECKING, Any

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
from kvplan.params import Sharding, expert_padding_bytes_per_stage, tp_allreduces, weight_bytes_per_stage
from kvplan.quant import alternatives, default_dtype, storage
from kvplan.spec import ModelSpec, ceil_div
from kvplan.units import MAX_CONTEXT, canonical_dtype, weight_dtype

if TYPE_CHECKING:
    from kvplan.checkpoint import CheckpointWeights


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

    def prefix_units(self, engine: Engine, prefix: int, length: int) -> int:
        return engine.prefix_units(self.layout, min(prefix, length)) if prefix else 0

    def fits_shared(self, *, batch: int, length: int, prefix: int, engine: Engine) -> bool:
        shared = self.prefix_units(engine, prefix, length)
        if not shared:
            return self.fits(batch=batch, length=length)
        lay = self.layout
        used = shared + batch * (lay.units_for(1, length) - shared) + lay.reserved_units
        return used <= lay.pool_units(self.available)

    def max_sequences(self, *, length: int, prefix: int, engine: Engine) -> int:
        """Most sequences on this stage's rank; a shared prefix is held once, the rest per request."""
        shared = self.prefix_units(engine, prefix, length)
        lay = self.layout
        if not shared:
            return lay.max_sequences(self.available, length)
        per = lay.units_for(1, length) - shared
        free = lay.pool_units(self.available) - lay.reserved_units - shared
        return max(0, free) // per if per > 0 else MAX_CONTEXT


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
    dp: int = 1  # data-parallel attention ranks in one replica, each with its own sequences and KV pool
    ep: bool = False  # routed experts split whole over the replica's tp x dp ranks
    gpus_per_node: int = 8
    shared_prefix: int = 0  # tokens every request shares (prefix caching), stored once per rank
    weights_source: str = "architecture"  # or the checkpoint whose headers gave the weights term
    # The model's checkpoint headers, kept so a changed configuration (nearest_fits) weighs the same way.
    checkpoint: CheckpointWeights | None = field(default=None, compare=False, repr=False)

    @property
    def gpus_per_replica(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def replicas(self) -> int:
        return self.gpus // self.gpus_per_replica

    @property
    def nodes_per_replica(self) -> int:
        return ceil_div(self.gpus_per_replica, self.gpus_per_node)

    @property
    def nodes(self) -> int:
        """Nodes the deployment takes: replicas within a node pack; larger ones take whole nodes."""
        if self.gpus_per_replica <= self.gpus_per_node:
            return ceil_div(self.gpus, self.gpus_per_node)
        return self.replicas * self.nodes_per_replica

    def fits(self, *, batch: int, length: int) -> bool:
        """``batch`` sequences spread over the replica's DP ranks (each rank holds its share)."""
        per_rank = ceil_div(batch, self.dp)
        return all(st.fits_shared(batch=per_rank, length=length, prefix=self.shared_prefix, engine=self.engine)
                   for st in self.stages)  # fmt: skip


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
    dp: int = 1,
    ep: bool = False,
    gpus_per_node: int | None = None,
    shared_prefix: int = 0,
    checkpoint: CheckpointWeights | None = None,
) -> Setup:
    """Validate the inputs and build the per-stage budget and layout.

    ``checkpoint`` (the model's safetensors/GGUF headers, :meth:`kvplan.catalog.ResolvedModel.weights`)
    gives the weights term whenever the weights dtype is the checkpoint's own (the default then):
    its tensors' bytes, cut over the ranks as the engine shards them. Another dtype is a conversion,
    counted from the architecture.

    ``dp`` data-parallel attention ranks of ``tp`` GPUs each form one replica with ``ep`` expert
    parallelism; what each rank holds is the engine's rule (:meth:`Engine.sharding`). Nodes hold
    ``gpus_per_node`` GPUs (the catalog's server size unless given).

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
    # The model as the engine runs it (Engine.model_as_run): the SSM state dtype it keeps; TensorRT-LLM v0.17's
    # sliding windows not applied.
    spec = profile.model_as_run(spec, settings)
    check_degrees(tp=tp, pp=pp)
    if isinstance(dp, bool) or not isinstance(dp, int) or dp < 1:
        raise InvalidInput(f"invalid data-parallel size {dp!r}; expected a whole number of at least 1")
    if shared_prefix < 0:
        raise InvalidInput(f"invalid shared prefix {shared_prefix!r}; expected a number of tokens >= 0")
    per_node = gpus_per_node if gpus_per_node is not None else gpu.gpus_per_node
    if per_node < 1:
        raise InvalidInput(f"invalid GPUs per node {per_node!r}; expected a whole number of at least 1")
    gpus = gpus if gpus is not None else tp * pp * dp
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1 or gpus % (tp * pp * dp):
        split = "tp x pp" if dp == 1 else "tp x pp x dp"
        raise InvalidInput(f"invalid GPU count {gpus!r}; it must be a multiple of {split} = {tp * pp * dp}")
    kv_name = known_kv_dtype(kv_dtype_name or profile.default_kv_dtype(spec), engine=profile)
    kv_name = profile.check_kv_dtype(kv_name)
    profile.check_kv_on_gpu(kv_name, gpu)  # vLLM's and TensorRT-LLM's nvfp4 KV: Blackwell only
    memo = {} if memo is None else memo
    stored = _checkpoint_dtype(checkpoint, spec, profile.weight_dtypes) if checkpoint is not None else None
    w_name = canonical_dtype(weight_dtype(weights_dtype).name) if weights_dtype else None
    w_name = profile.check_weights_dtype(w_name or stored or default_dtype(spec, loads=profile.weight_dtypes))
    profile.check_weights_on_gpu(w_name, gpu)
    headers = checkpoint if stored is not None and w_name == stored else None
    w_store = storage(spec, w_name)
    check_parallel(spec, tp=tp, pp=pp)  # tp divides the query heads, pp <= layers
    profile.check_parallel(spec, tp=tp, pp=pp, dp=dp, ep=ep)
    if settings.mla not in ("latent", "expanded"):
        raise InvalidInput(f"invalid MLA layout {settings.mla!r}; expected 'latent' or 'expanded'")
    attn_tp = profile.attention_tp(tp, settings)  # the KV cell's TP split (tp / attention DP)
    # what Engine.model_as_run changes in the cache: vLLM's state dtypes, TensorRT-LLM's indexer keys
    states = (settings.mamba_cache_dtype, settings.mamba_ssm_cache_dtype, settings.indexer_k_dtype)
    plan_key = ("plan", profile.key, kv_name, attn_tp, pp, settings.mla, states)
    if plan_key not in memo:
        memo[plan_key] = profile.cache_plan(spec, kv_dtype_name=kv_name, tp=attn_tp, pp=pp, mla=settings.mla)
    plan = memo[plan_key]
    sharding = profile.sharding(spec, tp=tp, dp=dp, ep=ep)
    w_key = ("weights", w_name if headers is None else ("headers", headers.source), tp, pp, sharding)
    if w_key not in memo:
        memo[w_key] = weight_bytes_per_stage(spec, headers or w_name, tp=tp, pp=pp, sharding=sharding)
    pad_key = ("expert padding", profile.key, gpu.name, w_key)
    if pad_key not in memo:  # the engine's MoE kernels may hold the experts padded (Engine.expert_dims_as_loaded)
        padded = _expert_padding(spec, profile, gpu, w_name, memo[w_key], pp=pp, sharding=sharding)
        added = profile.weights_added(spec, weights_dtype=w_name, pp=pp, sharding=sharding)  # copies kept after load
        memo[pad_key] = [b + a for b, a in zip(padded, added, strict=True)]
    total = usable_memory_bytes(gpu, settings.overrides.device_memory_bytes)
    # each attention-DP rank's own budget (SGLang divides its chunk by the ranks; Engine.batch_limits)
    mnbt, seqs = profile.batch_limits(settings, total, gpu, dp_ranks=dp * settings.attention_dp)
    stages = tuple(
        Stage(
            # The rank's communicator spans tp x dp GPUs (MoE layers run over all of them).
            profile.budget(
                spec,
                settings=settings,
                total=total,
                weights=memo[pad_key][i],
                tp=tp * dp,
                pp=pp,
                gpu=gpu,
                sharding=sharding,
            ),
            profile.layout(spec, plan=plan, settings=settings, stage_index=i, gpu=gpu, total=total),
        )
        for i in range(len(plan.stages))
    )
    label = f"{headers.label} (headers)" if headers is not None else w_store.label
    shipped = headers is not None or w_store.shipped
    return Setup(spec, profile, gpu, tp, pp, gpus, kv_name, w_name, settings, stages, mnbt, seqs, label,
                 shipped, dp=dp, ep=ep, gpus_per_node=per_node, shared_prefix=shared_prefix,
                 weights_source=headers.describe() if headers is not None else "architecture",
                 checkpoint=checkpoint)  # fmt: skip


def _expert_padding(
    spec: ModelSpec, profile: Engine, gpu: GPU, w_name: str, stage_bytes: list[int], *, pp: int, sharding: Sharding
) -> list[int]:
    """``stage_bytes`` (the weights per stage) plus what the engine's padded experts add, where it pads them."""
    if spec.moe is None:
        return stage_bytes
    inter_rank = ceil_div(spec.moe.expert_intermediate_size, sharding.expert_tp)
    hidden, inter = profile.expert_dims_as_loaded(weights_dtype=w_name, gpu=gpu, hidden=spec.hidden_size,
                                                  inter_rank=inter_rank)  # fmt: skip
    if (hidden, inter) == (spec.hidden_size, inter_rank):
        return stage_bytes
    extra = expert_padding_bytes_per_stage(spec, w_name, hidden=hidden, inter_rank=inter, pp=pp, sharding=sharding)
    return [b + e for b, e in zip(stage_bytes, extra, strict=True)]


def _checkpoint_dtype(checkpoint: CheckpointWeights, spec: ModelSpec, loads: tuple[str, ...]) -> str:
    """The weights dtype naming the checkpoint's storage that the engine loads (``q4_k`` for llama.cpp,
    ``int4`` elsewhere, for a Q4_K GGUF); the generic one, for the engine to refuse, if none."""
    from kvplan.checkpoint import stored_weight_dtypes

    names = [canonical_dtype(n) for n in stored_weight_dtypes(checkpoint, spec)]
    return next((n for n in names if n in loads), names[-1])


# ---- searches -----------------------------------------------------------------------------------


def max_sequences(s: Setup, length: int) -> int:
    """Most concurrent sequences of ``length`` tokens one replica holds (exact unit count; attention
    data-parallel ranks each hold their own, a shared prefix is held once per rank)."""
    per_rank = min(st.max_sequences(length=length, prefix=s.shared_prefix, engine=s.engine) for st in s.stages)
    return per_rank * s.settings.attention_dp * s.dp


def decode_sequences(s: Setup, length: int) -> int:
    """Requests of ``length`` tokens that decode at once in steady state on one replica.

    Differs from :func:`max_sequences` (the worst case an engine sizes its startup report by) where
    the engine frees what a decoding request no longer needs (vLLM's sliding-window blocks)."""
    if s.shared_prefix:
        return max_sequences(s, length)
    return min(st.layout.decode_sequences(st.available, length) for st in s.stages) * s.settings.attention_dp * s.dp


def max_context(s: Setup, *, batch: int = 1, limit: int | None = None) -> int:
    """Longest context such that ``batch`` sequences of it fit (0: not even one token)."""
    top = limit or s.spec.max_position_embeddings
    return largest(lambda n: s.fits(batch=batch, length=n), top)


def pool_tokens(s: Setup) -> int:
    """The pool in tokens, as the engine reports it (busiest stage)."""
    return min(st.layout.pool_tokens(st.available) for st in s.stages)


def binding_pool(s: Setup, tokens: int, *, whole_blocks: bool = False) -> tuple[int, int]:
    """The pool (in tokens) that admits the fewest sequences reserving ``tokens`` each, over the stages and the
    engine's per-window pools, and what one such sequence holds of it (:meth:`Layout.binding_pool`); ``whole_blocks``:
    each sequence's share rounded up to whole blocks of its layout (``block_tokens``), as an engine that reserves a
    request's blocks at admission counts it (TensorRT-LLM's ``getRemainingBlocksToCompletion``,
    :func:`kvplan.serving._limits`)."""
    pairs = (st.layout.binding_pool(st.available, tokens) + (st.layout.block_tokens,) for st in s.stages)
    if whole_blocks:
        pairs = ((pool, ceil_div(held, block) * block, block) for pool, held, block in pairs)
    pool, held, _ = min(pairs, key=lambda p: p[0] / p[1])
    return pool, held


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
    return min(values) * s.replicas * s.dp


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
    weights_source: str = "architecture"  # or the checkpoint whose headers gave the weights term
    weights_shipped: bool = True
    dp: int = 1
    ep: bool = False
    nodes: int = 1
    gpus_per_node: int = 8
    sharding: dict[str, int] = field(default_factory=dict)  # what one rank holds of each weight group
    kv_bytes_per_sequence_per_gpu: int = 0  # one sequence at ``context`` on the busiest rank
    kv_copies_per_sequence: int = 1  # ranks holding the same KV (MLA latent on every TP rank: tp)
    shared_prefix: int = 0
    shared_prefix_tokens_stored_once: int = 0  # after the engine's block rounding
    sequences_without_shared_prefix: int | None = None
    offload: dict[str, Any] | None = None
    traffic: dict[str, Any] = field(default_factory=dict)
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
    kv_offload: int | None = None,
) -> CapacityResult:
    """Answer every capacity question for one configuration at ``context`` tokens.

    ``kv_offload`` is a CPU tier in bytes per replica: how many more sequences can be parked
    there, and what reloading one costs over the GPU's host link.

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
    if kv_offload is not None:
        kv_offload = check_bytes(kv_offload, "KV offload tier")
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
        weights_source=s.weights_source,
        weights_shipped=s.weights_shipped,
        dp=s.dp,
        ep=s.ep,
        nodes=s.nodes,
        gpus_per_node=s.gpus_per_node,
        sharding=asdict(s.engine.sharding(s.spec, tp=s.tp, dp=s.dp, ep=s.ep)),
        kv_bytes_per_sequence_per_gpu=max(st.layout.stage.bytes_at(context) for st in s.stages),
        kv_copies_per_sequence=kv_copies(s),
        traffic=traffic(s),
        answers=answers(
            context,
            tokens=tokens,
            reported=reported,
            admitted=admitted * s.replicas,
            decoding=per_replica * s.replicas,
            longest=one,
        ),  # fmt: skip
    )
    if s.shared_prefix:
        from dataclasses import replace

        result.shared_prefix = s.shared_prefix
        result.shared_prefix_tokens_stored_once = shared_tokens(s, context)
        result.sequences_without_shared_prefix = max_sequences(replace(s, shared_prefix=0), context) * s.replicas
    if kv_offload is not None:
        result.offload = offload(s, context, kv_offload)
    if not fits:
        result.reason = beyond or _reason(s, context, one)
        if suggest:
            result.nearest = _context_only(s, one) if beyond else nearest_fits(s, context)
    return result


def kv_copies(s: Setup) -> int:
    """Ranks of one replica that hold the same tokens' KV: an MLA latent is whole on each of the
    ``tp`` ranks of a DP rank; KV heads fewer than ``tp`` repeat ``tp / heads`` times."""
    copies = 1
    for name in s.spec.kind_counts:
        kind = s.spec.kind(name)
        if kind.type == "mla":
            copies = max(copies, s.tp)
        elif kind.type != "recurrent":
            copies = max(copies, s.tp // s.spec.kv_heads_of(kind))
    return copies


def shared_tokens(s: Setup, context: int) -> int:
    """Prefix tokens held once, after the engine's rounding (vLLM: whole blocks only)."""
    st = s.stages[0]
    if not st.prefix_units(s.engine, s.shared_prefix, context):
        return 0
    block = st.layout.block_tokens
    return min(s.shared_prefix, context) // block * block


def offload(s: Setup, context: int, tier_bytes: int) -> dict[str, Any]:
    """A CPU tier of ``tier_bytes`` per replica (vLLM KV offloading / LMCache, SGLang hierarchical
    cache): sequences parked there, and the time to bring one back over the host link.

    One sequence takes its bytes on every rank that holds it (tp x pp ranks of one DP rank, MLA
    latents counted once per rank, as each worker offloads its own blocks); the ranks reload in
    parallel, each over its own link, so the reload time is the busiest rank's bytes / link.
    """
    per_rank = [st.layout.stage.bytes_at(context) for st in s.stages]
    per_sequence = s.tp * sum(per_rank)
    link = s.gpu.host_link_gbps
    return {
        "tier_bytes": tier_bytes,
        "bytes_per_sequence": per_sequence,
        "sequences_parked": tier_bytes // per_sequence if per_sequence else 0,
        "host_link_gbps": link,
        "reload_seconds_per_sequence": round(max(per_rank) / (link * 1e9), 6) if link else None,
    }


def traffic(s: Setup) -> dict[str, Any]:
    """Collective volumes per token a rank processes, for a latency model (kvplan.cost).

    TP: the all-reduces of one hidden vector the layers end their blocks with (kvplan.params.tp_allreduces: two a
    standard layer, attention output and MLP output; one a Nemotron-H block), in 16 bit.
    DP attention / EP: each MoE layer dispatches the token's hidden vector to its top-k experts and
    combines their outputs (all-to-all), 2 x top_k x hidden x 2 bytes, the (ranks - 1) / ranks share
    leaving the rank. Hops: inside a node the GPU's interconnect, across nodes the network.
    """
    spec, act = s.spec, 2  # activations travel in 16 bit
    hidden = spec.hidden_size * act
    out: dict[str, Any] = {
        "all_reduce_bytes_per_token": tp_allreduces(spec) * hidden if s.tp > 1 else 0,
        "all_reduce_ranks": s.tp,
        "all_to_all_bytes_per_token": 0,
        "all_to_all_ranks": 1,
        "pipeline_send_bytes_per_token": hidden * (s.pp - 1),
        "intra_node_link": s.gpu.interconnect,
        "intra_node_gbps": s.gpu.interconnect_gbps,
        "crosses_nodes": s.gpus_per_replica > s.gpus_per_node,
    }
    ranks = s.tp * s.dp
    if spec.moe is not None and s.dp > 1:
        moe_layers = len(spec.moe_layers)
        volume = 2 * spec.moe.experts_per_token * hidden * moe_layers
        out["all_to_all_bytes_per_token"] = volume * (ranks - 1) // ranks
        out["all_to_all_ranks"] = ranks
    return out


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
    for name in ("mamba_cache_dtype", "mamba_ssm_cache_dtype"):  # vLLM's state dtype flags, repeated on its line
        if getattr(s.settings, name) is not None:
            out[name] = getattr(s.settings, name)
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
    splits = [(tp, 1, False) for tp in tps]
    if s.spec.moe is not None and s.engine.supports_tp:
        splits += [(1, dp, True) for dp in (2, 4, 8) if dp > s.dp]  # DP attention + EP, where the engine runs it
    found = []
    for tp, dp, ep in splits:
        for w in weights:
            for kv in kvs:
                same = (tp, dp, w, kv) == (s.tp, s.dp, s.weights_dtype, s.kv_dtype)
                if same or not _try(s, context, tp=tp, dp=dp, ep=ep or s.ep, weights_dtype=w, kv_dtype_name=kv):
                    continue
                gpus = tp * dp * s.pp
                flags = [f"--tp {tp} --gpus {gpus}"] if tp != s.tp or dp != s.dp else []
                flags += [f"--dp {dp} --ep"] if dp != s.dp else []
                flags += [f"--weights-dtype {w}"] if w != s.weights_dtype else []
                flags += [f"--kv-dtype {kv}"] if kv != s.kv_dtype else []
                found.append({"change": " ".join(flags), "context": context, "tp": tp, "gpus": gpus,
                              "weights_dtype": w, "kv_dtype": kv, "dp": dp})  # fmt: skip
    found.sort(key=lambda n: n["gpus"])  # stable: within a GPU count, the order tried
    return (out + found)[:limit]


def _try(s: Setup, context: int, **changes: Any) -> bool:
    args = {
        "engine": s.engine.key,
        "tp": s.tp,
        "pp": s.pp,
        "kv_dtype_name": s.kv_dtype,
        "weights_dtype": s.weights_dtype,
        "settings": s.settings,
        "dp": s.dp,
        "ep": s.ep,
        "gpus_per_node": s.gpus_per_node,
        "shared_prefix": s.shared_prefix,
        "checkpoint": s.checkpoint,
    }
    args.update(changes)
    try:
        other = setup(s.spec, s.gpu, **args)
    except InvalidInput:
        return False
    return max_sequences(other, context) >= 1

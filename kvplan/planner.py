"""``kvplan plan``: the configurations that serve N concurrent sequences of L tokens.

Every GPU type x parallel split x weight format x KV dtype is one :func:`kvplan.capacity.setup` and
one exact sequence count; the replicas needed follow by division. The splits are tensor parallel
inside a node (up to the node's GPUs), pipeline stages across nodes, and for MoE models on engines
that run it data-parallel attention with expert parallelism. Weights are tried as the checkpoint
ships them first, then the formats the engine makes from it. Rows are ranked by GPU count, then
weights as shipped, then memory headroom; candidates that cannot serve are kept with the reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from kvplan.capacity import Setup, decode_sequences, max_sequences, pool_tokens, setup
from kvplan.checks import as_gpu, as_spec, beyond_trained_context, check_length
from kvplan.engines import Settings, get_engine, selected_name
from kvplan.errors import InvalidInput
from kvplan.hardware import GPU
from kvplan.quant import alternatives, default_dtype
from kvplan.spec import ModelSpec, ceil_div
from kvplan.units import canonical_dtype, check_count, kv_dtype, weight_dtype

PIPELINE_NODES = (1, 2, 3, 4)  # pipeline stages across up to 4 nodes (one stage per node)
DP_SIZES = (2, 4, 8, 16, 32)  # data-parallel attention ranks, within the GPU budget
MAX_GPUS = 64  # beyond this a plan is a cluster design, not a capacity answer


@dataclass
class PlanRow:
    gpu: str
    gpus: int
    tp: int
    pp: int
    replicas: int
    weights_dtype: str
    kv_dtype: str
    sequences_per_replica: int
    total_sequences: int
    headroom_bytes: int  # per GPU, KV pool left after the users' sequences (busiest stage)
    kv_pool_tokens: int
    engine: str
    dp: int = 1
    ep: bool = False
    nodes: int = 1
    gpus_per_node: int = 8
    weights_shipped: bool = True
    weights_source: str = "architecture"  # or the checkpoint whose headers gave the weights term

    def to_dict(self) -> dict:
        out = asdict(self)
        out["ep_ranks"] = self.tp * self.dp if self.ep else 0
        return out


@dataclass(frozen=True)
class Split:
    """One replica's parallel layout: TP x PP x DP attention ranks; ``ep``: experts split whole over them."""

    tp: int
    pp: int = 1
    dp: int = 1
    ep: bool = False

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp


def splits(spec: ModelSpec, engine: str, *, gpus_per_node: int, max_gpus: int) -> list[Split]:
    """Tensor parallel within a node (powers of two up to its GPUs), pipeline stages of a full node
    each across nodes; for MoE models on engines that run it, DP attention + EP over tp x dp ranks."""
    profile = get_engine(engine)
    if not profile.supports_tp:
        return [Split(1)]
    tps = [t for t in (1, 2, 4, 8, 16, 32) if t <= gpus_per_node]
    out = [Split(t) for t in tps]
    out += [Split(tps[-1], pp) for pp in PIPELINE_NODES[1:] if tps[-1] * pp <= max_gpus]
    if spec.moe is not None:
        for tp in tps:
            out += [Split(tp, 1, dp, True) for dp in DP_SIZES if tp * dp <= max_gpus]
    return out


def candidate_dtypes(
    spec: ModelSpec, engine: str, *, weights: list[str] | None, kv: list[str] | None, checkpoint: Any = None
):
    """Weight and KV dtypes to try: weights as shipped (the ``checkpoint``'s own dtype when its headers
    are given), then the formats the engine makes from them (:func:`kvplan.quant.alternatives`); the
    model's KV dtype, then 8-bit KV."""
    profile = get_engine(engine)
    # Names the user gave are checked here: an unknown one is an error, not a silently empty plan.
    w = [canonical_dtype(weight_dtype(x).name) for x in weights] if weights else None
    k = [canonical_dtype(x if x in profile.kv_dtypes else kv_dtype(x).name) for x in kv] if kv else None
    shipped = default_dtype(spec, loads=profile.weight_dtypes)
    if checkpoint is not None:
        from kvplan.checkpoint import stored_weight_dtypes

        loaded = [n for n in map(canonical_dtype, stored_weight_dtypes(checkpoint, spec)) if n in profile.weight_dtypes]
        shipped = loaded[0] if loaded else shipped
    w = w or alternatives(spec, current=shipped, loads=profile.weight_dtypes,
                          online=profile.online_weight_dtypes)  # fmt: skip
    default_kv = profile.default_kv_dtype(spec)
    k = k or list(dict.fromkeys([default_kv, "fp8" if "fp8" in profile.kv_dtypes else "q8_0"]))
    return w, [x for x in dict.fromkeys(k) if x in profile.kv_dtypes]


def refuse_weights_nowhere_run(engine: str, gpus: list[GPU], weights: list[str] | None) -> None:
    """A weights dtype the user asked for that ``engine`` runs on none of ``gpus`` (TensorRT-LLM's NVFP4 on Hopper):
    the engine's one-line refusal (exit 2), not an empty plan that blames the targets or the memory."""
    profile = get_engine(engine)
    for name in weights or []:
        refusals = []
        for gpu in gpus:
            try:
                profile.check_weights_on_gpu(canonical_dtype(weight_dtype(name).name), gpu)
            except InvalidInput as exc:
                refusals.append(exc)
        if gpus and len(refusals) == len(gpus):
            raise refusals[0]


def refuse_kv_nowhere_run(engine: str, gpus: list[GPU], kv: list[str] | None, *, latency: bool = False) -> None:
    """KV dtypes the user asked for that ``engine`` stores on none of ``gpus`` (an nvfp4 cache on Hopper), or
    (``latency``: plans with targets) whose reads it cannot price: the engine's one-line refusal (exit 2), not an
    empty plan. A list keeps the names that run somewhere; names the engine never stores are refused with targets
    and left to the memory plan's reason (:func:`why_nothing_fits`) without."""
    if not kv:
        return
    profile = get_engine(engine)
    names = [canonical_dtype(x if x in profile.kv_dtypes else kv_dtype(x).name) for x in kv]
    stored = [n for n in names if n in profile.kv_dtypes]
    if not stored and latency:  # plans with targets have no reason line: the engine's refusal
        profile.check_kv_dtype(names[0])
    refusals = []  # (the memory plan's reason names what the engine accepts: why_nothing_fits)
    for name, gpu in ((n, g) for n in stored for g in gpus):
        try:
            profile.check_kv_on_gpu(name, gpu)
            if latency:
                profile.check_kv_latency(name)
        except InvalidInput as exc:
            refusals.append(exc)
    if stored and gpus and len(refusals) == len(stored) * len(gpus):
        raise refusals[0]


def plan(
    spec: ModelSpec,
    gpus: list[GPU],
    *,
    users: int,
    context: int,
    engine: str = "vllm",
    weights_dtypes: list[str] | None = None,
    kv_dtypes: list[str] | None = None,
    settings: Settings | None = None,
    max_gpus: int = MAX_GPUS,
    memo: dict | None = None,
    gpus_per_node: int | None = None,
    shared_prefix: int = 0,
    dropped: list[str] | None = None,
    checkpoint: Any = None,
) -> list[PlanRow]:
    """Configurations serving ``users`` concurrent sequences of ``context`` tokens, best first.

    ``spec`` and each GPU may be names. An empty list means nothing fits; :func:`why_nothing_fits`
    says why. A context past the trained one fits nowhere (:func:`kvplan.checks.beyond_trained_context`).
    ``dropped`` (a list the caller keeps) receives one line per candidate that cannot serve, saying
    why: the engine refuses the split, the weights leave no KV memory, or too many GPUs.
    ``checkpoint`` (the model's headers, :class:`kvplan.checkpoint.CheckpointWeights`) gives the
    weights term of its own dtype (:func:`kvplan.capacity.setup`).
    """
    spec = as_spec(spec)
    gpus = [as_gpu(g) for g in gpus]
    context = check_length(context)
    check_count(users, "users")
    if isinstance(max_gpus, bool) or not isinstance(max_gpus, int) or max_gpus < 1:
        raise InvalidInput(f"invalid max_gpus {max_gpus!r}; expected a whole number of at least 1")
    if gpus_per_node is not None and gpus_per_node < 1:
        raise InvalidInput(f"invalid GPUs per node {gpus_per_node!r}; expected a whole number of at least 1")
    profile = get_engine(engine)
    if settings is not None:  # another engine's flag, or a bad value, is the user's error, not a dropped row
        profile.check_settings(settings)
    refuse_weights_nowhere_run(engine, gpus, weights_dtypes)
    refuse_kv_nowhere_run(engine, gpus, kv_dtypes)
    w_list, kv_list = candidate_dtypes(spec, profile.name, weights=weights_dtypes, kv=kv_dtypes,
                                       checkpoint=checkpoint)  # fmt: skip
    rows = []
    dropped = [] if dropped is None else dropped
    memo = {} if memo is None else memo  # weights and cache plans shared across GPU types
    if beyond_trained_context(spec, context):
        return []
    for gpu in gpus:
        per_node = gpus_per_node or gpu.gpus_per_node
        for sp in splits(spec, profile.name, gpus_per_node=per_node, max_gpus=max_gpus):
            for w in w_list:
                for kv in kv_list:
                    row = _row(spec, gpu, engine=profile.key, sp=sp, w=w, kv=kv, users=users, context=context,
                               settings=settings, max_gpus=max_gpus, memo=memo, per_node=per_node,
                               shared_prefix=shared_prefix, dropped=dropped, checkpoint=checkpoint)  # fmt: skip
                    if row is not None:
                        rows.append(row)
    rows.sort(key=lambda r: (r.gpus, not r.weights_shipped, -r.headroom_bytes))
    return rows


def _row(spec, gpu, *, engine, sp, w, kv, users, context, settings, max_gpus, memo, per_node, shared_prefix,  # noqa: ANN001
         dropped, checkpoint=None) -> PlanRow | None:  # fmt: skip
    label = f"{gpu.name} {_label(sp)} weights {w} KV {kv}"
    try:
        s = setup(spec, gpu, engine=engine, tp=sp.tp, pp=sp.pp, dp=sp.dp, ep=sp.ep, kv_dtype_name=kv,
                  weights_dtype=w, settings=settings, memo=memo, gpus_per_node=per_node,
                  shared_prefix=shared_prefix, checkpoint=checkpoint)  # fmt: skip
    except InvalidInput as exc:
        dropped.append(f"{label}: {exc}")  # a split or dtype this model/engine cannot take
        return None
    per = decode_sequences(s, context)  # users decoding at once, in steady state
    if per < 1:
        dropped.append(f"{label}: {_why_not(s, context)}")
        return None
    replicas = ceil_div(users, per)
    if replicas * s.gpus_per_replica > max_gpus:
        dropped.append(f"{label}: {replicas} replicas of {s.gpus_per_replica} GPUs exceed --max-gpus {max_gpus}")
        return None
    s = _with_gpus(s, replicas * s.gpus_per_replica)
    return PlanRow(
        gpu=gpu.name,
        gpus=s.gpus,
        tp=sp.tp,
        pp=sp.pp,
        replicas=replicas,
        weights_dtype=s.weights_dtype,
        kv_dtype=s.kv_dtype,
        sequences_per_replica=per,
        total_sequences=per * replicas,
        headroom_bytes=_headroom(s, ceil_div(ceil_div(users, replicas), sp.dp), context),
        kv_pool_tokens=pool_tokens(s),
        engine=selected_name(s.engine),
        dp=sp.dp,
        ep=sp.ep,
        nodes=s.nodes,
        gpus_per_node=per_node,
        weights_shipped=s.weights_shipped,
        weights_source=s.weights_source,
    )


def _with_gpus(s: Setup, gpus: int) -> Setup:
    from dataclasses import replace

    return replace(s, gpus=gpus)


def _label(sp: Split) -> str:
    text = f"TP{sp.tp}" + (f" PP{sp.pp}" if sp.pp > 1 else "") + (f" DP{sp.dp}" if sp.dp > 1 else "")
    return text + (f" EP{sp.tp * sp.dp}" if sp.ep else "")


def _why_not(s: Setup, context: int) -> str:
    b = min(s.stages, key=lambda st: st.available).budget
    gib = 1 << 30
    if b.available_kv <= 0:
        return (
            f"weights {b.weights / gib:.1f} GiB per GPU leave no KV memory "
            f"(engine share {b.engine_share / gib:.1f} GiB)"
        )
    return f"{b.available_kv / gib:.1f} GiB of KV per GPU holds less than one sequence of {context:,} tokens"


def _headroom(s: Setup, sequences: int, context: int) -> int:
    return min(st.layout.headroom_bytes(st.available, sequences=sequences, length=context) for st in s.stages)


def why_nothing_fits(
    spec: ModelSpec,
    gpus: list[GPU],
    *,
    users: int,
    context: int,
    engine: str = "vllm",
    kv_dtypes: list[str] | None = None,
    weights_dtypes: list[str] | None = None,
    settings: Settings | None = None,
    max_gpus: int = MAX_GPUS,
    checkpoint: Any = None,
) -> str:
    """The real reason :func:`plan` found nothing, most fundamental first."""
    spec, profile = as_spec(spec), get_engine(engine)
    beyond = beyond_trained_context(spec, context)
    if beyond:
        return beyond
    ws, kvs = candidate_dtypes(spec, profile.name, weights=weights_dtypes, kv=kv_dtypes, checkpoint=checkpoint)
    if not kvs:
        asked = ", ".join(kv_dtypes or [])
        return f"engine {profile.name!r} has no KV-cache dtype among {asked}; it accepts {', '.join(profile.kv_dtypes)}"
    if weights_dtypes and not set(ws) & set(profile.weight_dtypes):
        return (
            f"engine {profile.name!r} does not load {', '.join(weights_dtypes)} weights; "
            f"it runs {', '.join(profile.weight_dtypes)}"
        )
    gpu_list = [as_gpu(g) for g in gpus]
    one = _fits_one(spec, gpu_list, profile.key, kvs, weights_dtypes, settings, context, max_gpus=max_gpus,
                    checkpoint=checkpoint)  # fmt: skip
    if not one:
        if not profile.supports_tp:
            return (
                f"one sequence of {context:,} tokens does not fit on any single GPU considered: {profile.name} is "
                f"modelled on one device (no --tp/--pp), and none holds the weights and that sequence "
                f"in the dtypes tried"
            )
        return (
            f"one sequence of {context:,} tokens does not fit on any GPU considered, in any split up to "
            f"{max_gpus} GPUs (TP within a node, PP across nodes, DP attention + EP for MoE), in the dtypes tried"
        )
    return (
        f"{users:,} sequences of {context:,} tokens need more than {max_gpus} GPUs in every configuration; "
        f"raise --max-gpus or consider larger GPU types"
    )


def _fits_one(spec, gpus, engine, kvs, weights, settings, context, *, max_gpus, checkpoint=None) -> bool:  # noqa: ANN001
    w_list, _ = candidate_dtypes(spec, engine, weights=weights, kv=kvs, checkpoint=checkpoint)
    memo: dict = {}
    for gpu in gpus:
        for sp in splits(spec, engine, gpus_per_node=gpu.gpus_per_node, max_gpus=max_gpus):
            for w in w_list:
                for kv in kvs:
                    try:
                        s = setup(spec, gpu, engine=engine, tp=sp.tp, pp=sp.pp, dp=sp.dp, ep=sp.ep, kv_dtype_name=kv,
                                  weights_dtype=w, settings=settings, memo=memo, checkpoint=checkpoint)  # fmt: skip
                    except InvalidInput:
                        continue
                    if max_sequences(s, context) >= 1:
                        return True
    return False

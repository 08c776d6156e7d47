"""``kvplan plan``: the configurations that serve N concurrent sequences of L tokens.

Every GPU type x tensor-parallel degree x weight dtype x KV dtype is one :func:`kvplan.capacity.setup`
and one exact sequence count; the replicas needed follow by division. Rows are ranked by GPU
count, then by memory headroom (more first).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from kvplan.capacity import Setup, decode_sequences, max_sequences, pool_tokens, setup
from kvplan.checks import as_gpu, as_spec, beyond_trained_context, check_length
from kvplan.engines import Settings, get_engine
from kvplan.errors import InvalidInput
from kvplan.hardware import GPU
from kvplan.quant import alternatives, default_dtype
from kvplan.spec import ModelSpec, ceil_div
from kvplan.units import canonical_dtype, check_count, kv_dtype, weight_dtype

# (tp, pp) splits: tensor parallel inside one node (NVLink domains of 8 are the common maximum),
# pipeline parallel across 2 or 4 nodes beyond that.
SPLITS = ((1, 1), (2, 1), (4, 1), (8, 1), (8, 2), (8, 4))
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

    def to_dict(self) -> dict:
        return asdict(self)


def candidate_dtypes(spec: ModelSpec, engine: str, *, weights: list[str] | None, kv: list[str] | None):
    """Weight and KV dtypes to try: weights as shipped, then the formats the engine makes from them
    (:func:`kvplan.quant.alternatives`); the model's KV dtype, then 8-bit KV."""
    profile = get_engine(engine)
    # Names the user gave are checked here: an unknown one is an error, not a silently empty plan.
    w = [canonical_dtype(weight_dtype(x).name) for x in weights] if weights else None
    k = [canonical_dtype(x if x in profile.kv_dtypes else kv_dtype(x).name) for x in kv] if kv else None
    shipped = default_dtype(spec, loads=profile.weight_dtypes)
    w = w or alternatives(spec, current=shipped, loads=profile.weight_dtypes,
                          online=profile.online_weight_dtypes)  # fmt: skip
    default_kv = profile.default_kv_dtype(spec)
    k = k or list(dict.fromkeys([default_kv, "fp8" if "fp8" in profile.kv_dtypes else "q8_0"]))
    return w, [x for x in dict.fromkeys(k) if x in profile.kv_dtypes]


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
) -> list[PlanRow]:
    """Configurations serving ``users`` concurrent sequences of ``context`` tokens, best first.

    ``spec`` and each GPU may be names. An empty list means nothing fits; :func:`why_nothing_fits`
    says why. A context past the trained one fits nowhere (:func:`kvplan.checks.beyond_trained_context`).
    """
    spec = as_spec(spec)
    gpus = [as_gpu(g) for g in gpus]
    context = check_length(context)
    check_count(users, "users")
    if isinstance(max_gpus, bool) or not isinstance(max_gpus, int) or max_gpus < 1:
        raise InvalidInput(f"invalid max_gpus {max_gpus!r}; expected a whole number of at least 1")
    profile = get_engine(engine)
    w_list, kv_list = candidate_dtypes(spec, profile.name, weights=weights_dtypes, kv=kv_dtypes)
    rows = []
    memo = {} if memo is None else memo  # weights and cache plans shared across GPU types
    if beyond_trained_context(spec, context):
        return []
    splits = SPLITS if profile.supports_tp else ((1, 1),)
    for gpu in gpus:
        for tp, pp in splits:
            for w in w_list:
                for kv in kv_list:
                    row = _row(spec, gpu, engine=profile.key, tp=tp, pp=pp, w=w, kv=kv, users=users, context=context,
                               settings=settings, max_gpus=max_gpus, memo=memo)  # fmt: skip
                    if row is not None:
                        rows.append(row)
    rows.sort(key=lambda r: (r.gpus, -r.headroom_bytes))
    return rows


def _row(spec, gpu, *, engine, tp, pp, w, kv, users, context, settings, max_gpus, memo) -> PlanRow | None:  # noqa: ANN001
    try:
        s = setup(
            spec, gpu, engine=engine, tp=tp, pp=pp, kv_dtype_name=kv, weights_dtype=w, settings=settings, memo=memo
        )
    except InvalidInput:
        return None  # a split or dtype this model/engine cannot take
    per = decode_sequences(s, context)  # users decoding at once, in steady state
    if per < 1:
        return None
    replicas = ceil_div(users, per)
    if replicas * tp * pp > max_gpus:
        return None
    return PlanRow(
        gpu=gpu.name,
        gpus=replicas * tp * pp,
        tp=tp,
        pp=pp,
        replicas=replicas,
        weights_dtype=s.weights_dtype,
        kv_dtype=s.kv_dtype,
        sequences_per_replica=per,
        total_sequences=per * replicas,
        headroom_bytes=_headroom(s, ceil_div(users, replicas), context),
        kv_pool_tokens=pool_tokens(s),
        engine=s.engine.name,
    )


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
) -> str:
    """The real reason :func:`plan` found nothing, most fundamental first."""
    spec, profile = as_spec(spec), get_engine(engine)
    beyond = beyond_trained_context(spec, context)
    if beyond:
        return beyond
    ws, kvs = candidate_dtypes(spec, profile.name, weights=weights_dtypes, kv=kv_dtypes)
    if not kvs:
        asked = ", ".join(kv_dtypes or [])
        return f"engine {profile.name!r} has no KV-cache dtype among {asked}; it accepts {', '.join(profile.kv_dtypes)}"
    if weights_dtypes and not set(ws) & set(profile.weight_dtypes):
        return (
            f"engine {profile.name!r} does not load {', '.join(weights_dtypes)} weights; "
            f"it runs {', '.join(profile.weight_dtypes)}"
        )
    splits = SPLITS if profile.supports_tp else ((1, 1),)
    one = _fits_one(spec, [as_gpu(g) for g in gpus], profile.key, splits, kvs, weights_dtypes, settings, context)
    if not one:
        if not profile.supports_tp:
            return (
                f"one sequence of {context:,} tokens does not fit on any single GPU considered: {profile.name} is "
                f"modelled on one device (no --tp/--pp), and none holds the weights and that sequence "
                f"in the dtypes tried"
            )
        tp, pp = splits[-1]
        return (
            f"one sequence of {context:,} tokens does not fit on any GPU considered, up to TP {tp} x PP {pp}, "
            f"in the dtypes tried"
        )
    return (
        f"{users:,} sequences of {context:,} tokens need more than {max_gpus} GPUs in every configuration; "
        f"raise --max-gpus or consider larger GPU types"
    )


def _fits_one(spec, gpus, engine, splits, kvs, weights, settings, context) -> bool:  # noqa: ANN001
    w_list, _ = candidate_dtypes(spec, engine, weights=weights, kv=kvs)
    for gpu in gpus:
        for tp, pp in splits:
            for w in w_list:
                for kv in kvs:
                    try:
                        s = setup(spec, gpu, engine=engine, tp=tp, pp=pp, kv_dtype_name=kv, weights_dtype=w,
                                  settings=settings)  # fmt: skip
                    except InvalidInput:
                        continue
                    if max_sequences(s, context) >= 1:
                        return True
    return False

"""``kvplan plan``: the configurations that serve N concurrent sequences of L tokens.

Every GPU type x tensor-parallel degree x weight dtype x KV dtype is one :func:`kvplan.capacity.setup`
and one exact sequence count; the replicas needed follow by division. Rows are ranked by GPU
count, then by memory headroom (more first).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from kvplan.capacity import Setup, max_sequences, setup
from kvplan.engines import Settings, get_engine
from kvplan.errors import InvalidInput
from kvplan.hardware import GPU
from kvplan.quant import alternatives, default_dtype
from kvplan.spec import ModelSpec, ceil_div

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
    shipped = default_dtype(spec, loads=profile.weight_dtypes)
    w = weights or alternatives(spec, current=shipped, loads=profile.weight_dtypes,
                                online=profile.online_weight_dtypes)  # fmt: skip
    default_kv = "fp16" if profile.name == "llamacpp" else spec.dtype
    k = kv or list(dict.fromkeys([default_kv, "fp8" if "fp8" in profile.kv_dtypes else "q8_0"]))
    return w, [x for x in k if x in profile.kv_dtypes]


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
    """Configurations serving ``users`` concurrent sequences of ``context`` tokens, best first."""
    if users < 1:
        raise InvalidInput(f"invalid users {users!r}; expected a whole number of at least 1")
    profile = get_engine(engine)
    w_list, kv_list = candidate_dtypes(spec, profile.name, weights=weights_dtypes, kv=kv_dtypes)
    rows = []
    memo = {} if memo is None else memo  # weights and cache plans shared across GPU types
    splits = SPLITS if profile.supports_tp else ((1, 1),)
    for gpu in gpus:
        for tp, pp in splits:
            for w in w_list:
                for kv in kv_list:
                    row = _row(spec, gpu, engine=profile.name, tp=tp, pp=pp, w=w, kv=kv, users=users, context=context,
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
    per = max_sequences(s, context)
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
        kv_pool_tokens=_tokens(s),
        engine=engine,
    )


def _headroom(s: Setup, sequences: int, context: int) -> int:
    out = []
    for st in s.stages:
        lay = st.layout
        used = lay.units_for(sequences, context) + lay.reserved_units
        out.append((lay.pool_units(st.available) - used) * lay.unit_bytes)
    return min(out)


def _tokens(s: Setup) -> int:
    from kvplan.capacity import pool_tokens

    return pool_tokens(s)

"""A failed start, explained and fixed: the engine's refusal beside kvplan's arithmetic, and the
smallest changes of flags that would start, each checked with kvplan's own capacity rules.

Engine-neutral: the refusals are recognised from :mod:`kvplan.failures` (each engine's messages,
with their source), the arithmetic comes from :mod:`kvplan.capacity` (``setup``, ``capacity``,
``max_context``) and the launch lines from :mod:`kvplan.launch`.

A prescription is one change (or the one change a refusal forces, plus one more) to the flags the
log shows. It is kept only when ``kvplan capacity`` with exactly those flags says it starts: one
request of the context fits (every ``-np`` slot for llama.cpp, which allocates them up front).
Where the log gives the engine's own KV budget and kvplan's from-scratch budget is larger, the
difference is carried as ``--overhead`` so that every check starts from what the engine measured.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from kvplan import failures as fl
from kvplan.errors import InvalidInput
from kvplan.failures import NUMBER as _N
from kvplan.hardware import GPU
from kvplan.logcheck import GpuId, identify_gpu
from kvplan.spec import ModelSpec
from kvplan.units import GIB, MIB

# ---- the diagnosis --------------------------------------------------------------------------------


@dataclass
class Failure:
    """A recognised refusal: its kind, the quoted message, the engine source that raises it."""

    kind: str
    engine: str
    line: str
    source: str | None
    phase: str | None
    figures: dict[str, float] = field(default_factory=dict)


@dataclass
class Prescription:
    """One change that starts, as data: what changes, what it gives up, the check, the launch line."""

    rank: int
    change: str
    gives_up: str
    flags: dict[str, Any]
    launch: list[str]
    launch_command: str
    check: list[str]  # `kvplan capacity ...` argv that says it starts
    check_command: str
    max_context: int
    sequences: int
    available_kv_bytes: int


@dataclass
class Diagnosis:
    failed: bool
    engine: str
    model: str | None
    gpu: GpuId
    failure: Failure | None
    summary: str
    explanation: list[dict[str, Any]] = field(default_factory=list)
    took_memory: str | None = None
    calibration_overhead_bytes: int = 0  # kvplan's budget minus the engine's, carried as --overhead
    prescriptions: list[Prescription] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Params:
    """The flags a capacity check and a launch line need, in kvplan's terms."""

    engine: str
    gpu: GPU
    context: int
    tp: int = 1
    pp: int = 1
    kv_dtype: str | None = None
    weights_dtype: str | None = None
    fraction: float | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    n_ubatch: int = 512
    device_memory: int | None = None
    overhead: int = 0
    kv_cache_memory: int | None = None
    sequences: int = 1  # sequences that must fit at start (llama.cpp -np)
    enforce_eager: bool = False
    model_ref: str | None = None  # the checkpoint the log names, for the launch line
    rules: str | None = None  # the engine release whose rules apply (``vllm@0.19``; the log's own when stated)


def recognise(text: str, engine: str) -> Failure | None:
    """The last fatal refusal in the log (else its last warning), or an unknown failure, or None."""
    from kvplan.engines import get_engine

    matches = fl.find_all(text, get_engine(engine).failure_patterns)
    fatal = [m for m in matches if m.pattern.kind in fl.FATAL]
    chosen = (fatal or matches or [None])[-1]
    if chosen is not None:
        figures = fl.figures(chosen.groups)
        phase = chosen.pattern.phase or fl.phase_before(text, chosen.start)
        if chosen.pattern.kind == fl.KV_ALLOC or chosen.pattern.kind == fl.COMPUTE_ALLOC:
            figures.update(_llamacpp_tried(text, chosen.start))
        return Failure(chosen.pattern.kind, engine, chosen.line, chosen.pattern.source, phase, figures)
    if fl.looks_failed(text):
        return Failure(fl.UNKNOWN, engine, fl.last_error_line(text) or "", None, None)
    return None


def _llamacpp_tried(text: str, position: int) -> dict[str, float]:
    """ggml-cuda's "allocating X MiB on device N: cudaMalloc failed" line before the failure."""
    hits = re.findall(rf"allocating ({_N}) MiB on device \d+: cudaMalloc failed", fl.flatten(text)[:position])
    return {"tried_bytes": float(hits[-1]) * MIB} if hits else {}


def diagnose_text(
    text: str,
    *,
    engine: str | None = None,
    model: str | None = None,
    gpu: str | None = None,
    weights_dtype: str | None = None,
    tp: int | None = None,
) -> Diagnosis:
    """Recognise a failed start in ``text``, explain it and prescribe the changes that start. ``engine`` may name a
    release (``vllm@0.8``): its rules then apply, whatever the log states."""
    from kvplan.catalog import resolve_model
    from kvplan.engines import ENGINES, get_engine, log_engine
    from kvplan.logcheck import find_spec

    readers = [e for e in ENGINES.values() if e.failure_patterns]
    release = get_engine(engine).key if engine and "@" in engine else None
    if engine is not None:
        *first, last = [e.name for e in readers]
        engine = engine.partition("@")[0]
        try:
            eng = get_engine(engine)
        except InvalidInput:
            eng = None
        if eng is None or eng not in readers:
            raise InvalidInput(f"unknown log engine {engine!r}; expected {', '.join(first)} or {last}")
    engine = eng.name if engine else (fl.engine_of(text, readers) or log_engine(text).name)
    eng = get_engine(engine)
    try:
        facts = eng.parse_log(text)
    except InvalidInput:  # an engine whose startup log kvplan does not compare (TensorRT-LLM)
        facts = None
    flags = dict(facts.flags) if facts else {}
    for key, value in eng.failure_flags(text).items():
        flags.setdefault(key, value)
    logged = dict(facts.figures) if facts else eng.failure_figures(text)
    if tp is not None:
        for key in eng.log_flag_keys.get("tp", ()):
            flags[key] = tp
    failure = recognise(text, engine)
    named = (facts.model if facts else None) or eng.model_in_log(text)
    spec = resolve_model(model) if model else find_spec(named)
    gpu_obj, gpu_id = identify_gpu(text, gpu)
    name = spec.name if spec else named
    if failure is None:
        return Diagnosis(False, engine, name, gpu_id, None, "no failed start in this log")
    d = Diagnosis(True, engine, name, gpu_id, failure, _summary(failure))
    if failure.kind == fl.UNKNOWN:
        d.notes.append("kvplan does not know this failure; the last error line is quoted above")
        return d
    if spec is None:
        d.notes.append(f"model {name!r} is not a bundled spec; pass --model for kvplan's arithmetic and fixes")
        return d
    if gpu_obj is None:
        d.notes.append(
            "GPU not identified from the log and no --gpu: the checks use the logged KV budget "
            "(--kv-cache-memory) on h100-sxm's block layout; pass --gpu for fractions, TP and other GPUs"
        )
    ref = named
    ref = ref if ref and "/" in ref and " " not in ref else None  # a repo id or path, not a display name
    weights_dtype = weights_dtype or eng.weights_in_log(text)
    p = _params(engine, spec, gpu_obj, flags, failure, logged, gpu_id, weights_dtype, ref)
    if release is not None:  # the release asked for
        p = replace(p, rules=release)
    elif facts is not None:  # the rule set of the release the log states (kvplan.engines: rules_for_log)
        p = replace(p, rules=get_engine(engine).rules_for_log(facts)[0].key)
    try:
        _explain(d, spec, p, failure, logged, have_gpu=gpu_obj is not None)
    except InvalidInput as exc:  # flags kvplan itself refuses (e.g. the TP the engine refused)
        if failure.kind != fl.TP_HEADS:
            d.notes.append(f"kvplan cannot model the logged flags: {exc}")
            return d
        p = replace(p, tp=1)
    free = _free_at_start(text, failure)
    d.prescriptions = prescribe(spec, p, failure, logged=logged, free_bytes=free)
    d.calibration_overhead_bytes = _calibrated(spec, p, failure, logged).overhead
    if d.calibration_overhead_bytes:
        d.notes.append(
            f"the engine had {d.calibration_overhead_bytes / GIB:.2f} GiB less for its KV cache than kvplan predicts; "
            "every check carries that as --overhead"
        )
    if failure.kind == fl.STARTUP_FREE and free is not None and p.device_memory:
        held = p.device_memory - free
        d.notes.append(f"other processes held {held / GIB:.2f} GiB at startup; freeing it lets the fraction stay")
    if not d.prescriptions:
        d.notes.append("no single change kvplan checks (length, fraction, KV dtype, sequences, TP, GPU) starts")
    return d


def _summary(f: Failure) -> str:
    what = {
        fl.KV_SHORT: "one request of the configured length does not fit the KV cache",
        fl.NO_KV_MEMORY: "no memory is left for the KV cache",
        fl.STARTUP_FREE: "less memory was free at startup than the memory fraction asks for",
        fl.OOM: "the GPU ran out of memory",
        fl.TP_HEADS: "the tensor-parallel size does not divide the attention heads",
        fl.KV_ALLOC: "the KV cache buffer could not be allocated",
        fl.COMPUTE_ALLOC: "the compute buffer could not be allocated",
        fl.WEIGHTS_ALLOC: "the weights could not be allocated",
        fl.CTX_OVER_TRAIN: "the context is longer than the model was trained on (a warning)",
        fl.UNKNOWN: "the engine failed to start for a reason kvplan does not recognise",
    }[f.kind]
    return f"{f.engine} refused to start: {what}" + (f" (during {f.phase})" if f.phase else "")


def _flag(flags: dict[str, Any], engine: str, term: str) -> Any:
    from kvplan.engines import get_engine

    for key in get_engine(engine).log_flag_keys.get(term, ()):
        if flags.get(key) not in (None, "auto"):
            return flags[key]
    return None


def _int(v: Any) -> int | None:
    try:
        return int(float(str(v).split()[0])) if v is not None else None
    except ValueError:
        return None


def _params(engine, spec, gpu_obj, flags, failure, logged, gpu_id, weights_dtype, model_ref) -> Params:  # noqa: ANN001
    from kvplan.hardware import resolve_gpu

    fig = failure.figures
    context = _int(fig.get("max_len")) or _int(_flag(flags, engine, "context"))
    seqs = _int(_flag(flags, engine, "max_num_seqs"))
    if _engine(engine).preallocates_sequences:
        n_ctx = _int(flags.get("n_ctx"))
        seqs = seqs or 1
        context = context or (n_ctx // seqs if n_ctx else None)
    if failure.kind == fl.CTX_OVER_TRAIN:
        context = _int(fig.get("n_ctx_seq")) or context
    total = gpu_id.total_bytes or (int(logged["total"] * GIB) if logged.get("total") else None)
    fraction = fig.get("fraction") or _flag(flags, engine, "fraction")
    kv = _flag(flags, engine, "kv_dtype")
    return Params(
        engine=engine,
        gpu=gpu_obj or resolve_gpu("h100-sxm"),  # a stand-in for the layout only: the budget is the log's
        context=context or spec.max_position_embeddings,
        tp=_int(_flag(flags, engine, "tp")) or 1,
        pp=_int(_flag(flags, engine, "pp")) or 1,
        kv_dtype=str(kv) if kv else None,
        weights_dtype=weights_dtype,
        fraction=float(fraction) if fraction else None,
        max_num_seqs=seqs if not _engine(engine).preallocates_sequences else None,
        max_num_batched_tokens=_int(_flag(flags, engine, "max_num_batched_tokens")),
        n_ubatch=_int(_flag(flags, engine, "n_ubatch")) or 512,
        device_memory=total if gpu_obj is not None else None,
        kv_cache_memory=_no_less_than_zero(_logged_kv(failure, logged)) if gpu_obj is None else None,
        sequences=seqs if _engine(engine).preallocates_sequences else 1,
        model_ref=model_ref,
    )


def _logged_kv(failure: Failure, logged: dict[str, float]) -> int | None:
    """The engine's own KV budget, bytes: from the refusal, else from the log's memory lines."""
    if "available_bytes" in failure.figures:
        return int(failure.figures["available_bytes"])  # negative when weights overran the share
    if failure.kind == fl.NO_KV_MEMORY:
        return 0  # the engine found nothing left for its cache: kvplan's checks start from there
    if logged.get("available_kv"):
        return int(logged["available_kv"] * GIB)
    return None


def _no_less_than_zero(value: int | None) -> int | None:
    return None if value is None else max(0, value)


def _free_at_start(text: str, failure: Failure) -> int | None:
    if "free_bytes" in failure.figures and failure.kind == fl.STARTUP_FREE:
        return int(failure.figures["free_bytes"])
    m = re.search(rf"Free memory on device(?: \S+)? \(({_N})/{_N} ?GiB\)", fl.flatten(text))
    return int(float(m.group(1)) * GIB) if m else None


# ---- checking one configuration with kvplan's capacity rules -------------------------------------


def setup_for(spec: ModelSpec, p: Params):  # noqa: ANN201
    """kvplan's Setup for ``p`` (raises InvalidInput when the engine would refuse the flags)."""
    from kvplan.capacity import setup
    from kvplan.engines import Overrides, Settings, get_engine

    fraction_field = _fraction_field(p.engine)
    settings = Settings(
        max_num_seqs=p.max_num_seqs,
        max_num_batched_tokens=p.max_num_batched_tokens,
        n_ubatch=p.n_ubatch,
        overrides=Overrides(device_memory_bytes=p.device_memory, overhead_bytes=p.overhead),
        **({fraction_field: p.fraction} if fraction_field and p.fraction is not None else {}),
    )
    get_engine(p.engine)
    return setup(spec, p.gpu, engine=p.rules or p.engine, tp=p.tp, pp=p.pp, kv_dtype_name=p.kv_dtype,
                 weights_dtype=p.weights_dtype, settings=settings)  # fmt: skip


def _fraction_field(engine: str) -> str | None:
    """The Settings field holding the engine's memory fraction (its Budget.fraction_name)."""
    return _engine(engine).fraction_setting


def _engine(name: str):  # noqa: ANN202
    from kvplan.engines import get_engine

    return get_engine(name)


def check(spec: ModelSpec, p: Params):  # noqa: ANN201
    """kvplan's capacity answer for ``p`` and whether the engine would start with it."""
    from kvplan.capacity import capacity

    try:
        s = setup_for(spec, p)
    except InvalidInput:
        return None, False
    r = capacity(s, p.context, kv_cache_memory=p.kv_cache_memory, suggest=False)
    return r, r.fits and r.max_concurrent_sequences_per_replica >= p.sequences


def capacity_argv(spec: ModelSpec, p: Params) -> list[str]:
    """The `kvplan capacity` command that checks ``p`` (what the tests run)."""
    args = ["kvplan", "capacity", spec.name, "--gpu", p.gpu.name, "--engine", p.rules or p.engine,
            "--context", str(p.context)]  # fmt: skip
    args += ["--tp", str(p.tp)] if p.tp != 1 else []
    args += ["--pp", str(p.pp)] if p.pp != 1 else []
    args += ["--kv-dtype", p.kv_dtype] if p.kv_dtype else []
    args += ["--weights-dtype", p.weights_dtype] if p.weights_dtype else []
    field_name = _fraction_field(p.engine)
    if field_name and p.fraction is not None:
        args += ["--" + field_name.replace("_", "-"), f"{p.fraction:g}"]
    args += ["--max-num-seqs", str(p.max_num_seqs)] if p.max_num_seqs else []
    args += ["--max-num-batched-tokens", str(p.max_num_batched_tokens)] if p.max_num_batched_tokens else []
    args += ["--ubatch", str(p.n_ubatch)] if p.n_ubatch != 512 else []
    args += ["--device-memory", str(p.device_memory)] if p.device_memory else []
    args += ["--overhead", str(p.overhead)] if p.overhead else []
    args += ["--kv-cache-memory", str(p.kv_cache_memory)] if p.kv_cache_memory is not None else []
    args += ["--batch", str(p.sequences)] if p.sequences > 1 else []
    return args


# ---- explanation ------------------------------------------------------------------------------------


def _explain(d: Diagnosis, spec: ModelSpec, p: Params, failure: Failure, logged: dict, *, have_gpu: bool) -> None:
    from kvplan.capacity import max_context, setup, with_kv_memory

    fig = failure.figures
    s = setup_for(spec, replace(p, kv_cache_memory=None))
    lay = s.stages[0].layout
    needed = lay.units_for(p.sequences, p.context) * lay.unit_bytes  # blocks x block bytes, or bytes x 1
    engine_needed = fig.get("needed_bytes") or (fig.get("tried_bytes") if failure.kind == fl.KV_ALLOC else None)
    rows = [_row(f"KV for {p.sequences} x {p.context:,} tokens", engine_needed, needed, "bytes")]
    engine_avail = _logged_kv(failure, logged)
    if engine_avail and engine_avail > 0:
        given = with_kv_memory(s, engine_avail)
        rows.append(_row("longest context in the logged KV memory", fig.get("estimated_len") or fig.get("kv_tokens"),
                         max_context(given, limit=max(p.context, 1)), "tokens"))  # fmt: skip
    if have_gpu:
        b = min(s.stages, key=lambda st: st.budget.available_kv).budget
        total = b.device_total
        terms = {
            "device total": (logged.get("total"), total),
            "engine share" + (f" ({b.fraction_name} {b.fraction:g})" if b.fraction_name else ""): (
                None, b.engine_share),
            "weights": (logged.get("weights"), b.weights),
            "activation peak": (logged.get("activation"), b.activation),
            "non-torch / context": (logged.get("non_torch"), b.non_torch),
            "CUDA graphs" + ("" if b.cuda_graph_in_budget else " (outside the budget)"): (
                logged.get("cuda_graph"), b.cuda_graph),
        }  # fmt: skip
        for term, (eng, ours) in terms.items():
            rows.append(_row(term, eng * GIB if eng is not None else None, ours, "bytes"))
        rows.append(_row("available KV memory", engine_avail, b.available_kv, "bytes"))
        took = {"weights": b.weights, "activation peak": b.activation, "non-torch / context": b.non_torch,
                "held back by the memory fraction": b.device_total - b.engine_share}  # fmt: skip
        if b.cuda_graph_in_budget or failure.phase == "CUDA-graph capture":
            took["CUDA graphs"] = b.cuda_graph
        term = max(took, key=took.get)
        d.took_memory = f"{term}: {took[term] / GIB:.2f} GiB of {total / GIB:.2f} GiB"
    d.explanation = rows
    del setup


def _row(term: str, engine: float | None, kvplan: float | None, unit: str) -> dict[str, Any]:
    def show(v: float | None) -> str:
        if v is None:
            return "-"
        return f"{v / GIB:,.2f} GiB" if unit == "bytes" else f"{int(v):,}"

    diff = "-"
    if engine is not None and kvplan is not None and engine:
        diff = f"{(kvplan - engine) / abs(engine):+.1%}"
    return {"term": term, "engine": show(engine), "kvplan": show(kvplan), "difference": diff,
            "engine_value": engine, "kvplan_value": kvplan, "unit": unit}  # fmt: skip


# ---- prescriptions ----------------------------------------------------------------------------------

# What each change gives up, least first: the rank of a prescription.
GIVES_UP = {
    "fraction_down": (0, "a smaller KV pool (the memory other processes hold stays theirs)"),
    "fraction_up": (1, "headroom the engine keeps outside its budget"),
    "eager": (2, "CUDA graphs (slower decode at small batch)"),
    "fewer_seqs": (3, "peak concurrency (fewer sequences scheduled at once)"),
    "fewer_batched_tokens": (3, "prefill chunk size (slower long prompts)"),
    "kv_fp8": (4, "KV precision (8-bit cache; a small accuracy risk)"),
    "weights_fp8": (5, "weight precision (online fp8 quantization)"),
    "shorter_context": (6, "the longest request"),
    "tp": (7, "more GPUs per replica"),
    "other_gpu": (8, "a different GPU"),
}
# Highest fraction kvplan prescribes without a logged free-memory figure: above it the CUDA-graph
# pool and NCCL buffers that live outside the budget ran out at startup (vllm#19186 at 0.98).
FRACTION_CAP = 0.95
# kvplan KV dtype to offer as the 8-bit cache, by what the engine accepts (engines.ENGINES kv_dtypes).
_KV8 = ("fp8", "fp8_e4m3", "q8_0")


def prescribe(
    spec: ModelSpec, p: Params, failure: Failure, *, logged: dict, free_bytes: int | None = None
) -> list[Prescription]:
    """Every single change (after the one the refusal forces) that kvplan's capacity says starts."""
    base = _calibrated(spec, p, failure, logged)
    forced: list[tuple[str, Params, str]] = []
    if failure.kind == fl.STARTUP_FREE and free_bytes and base.device_memory:
        cap = math.floor(free_bytes / base.device_memory * 100) / 100
        base = replace(base, fraction=cap)
        forced.append(("fraction_down", base, f"{_fraction_flag(p.engine)} {cap:g} (the free memory at startup)"))
    if failure.kind == fl.OOM and failure.phase == "CUDA-graph capture" and base.fraction and base.device_memory:
        lowered = _fraction_for_graphs(spec, base, failure)
        base = replace(base, fraction=lowered)
        forced.append(("fraction_down", base, f"{_fraction_flag(p.engine)} {lowered:g} (room for CUDA graphs)"))
    if failure.kind == fl.TP_HEADS:
        return _tp_fixes(spec, base, failure)
    candidates = list(forced)
    if not forced:
        candidates += _fraction_up(spec, base, free_bytes)
    if failure.kind == fl.OOM and failure.phase == "CUDA-graph capture" and _engine(p.engine).eager_flag:
        candidates.append(("eager", replace(base, enforce_eager=True), _engine(p.engine).eager_flag))
    candidates += _fewer_seqs(spec, base) + _kv8(spec, base) + _weights8(spec, base) + _shorter(spec, base, failure)
    candidates += _more_tp(spec, base) + _other_gpu(spec, base)
    relevant = _relevant(failure)
    candidates = [c for c in candidates if c[0] in relevant]
    return _keep_starting(spec, candidates, forced)


def _relevant(failure: Failure) -> frozenset[str]:
    """The changes that act on what ran out: an allocation that failed while loading the weights is
    not helped by a larger KV fraction or a shorter context, only by fewer weight bytes per GPU."""
    weights = frozenset({"weights_fp8", "tp", "other_gpu"})
    if failure.kind == fl.WEIGHTS_ALLOC or (failure.kind == fl.OOM and failure.phase == "weights load"):
        return weights
    if failure.kind == fl.OOM and failure.phase == "profile run":
        return weights | {"fewer_seqs"}
    if failure.kind == fl.OOM and failure.phase == "CUDA-graph capture":
        return weights | {"fraction_down", "eager", "fewer_seqs", "shorter_context", "kv_fp8"}
    return frozenset(GIVES_UP)


def _calibrated(spec: ModelSpec, p: Params, failure: Failure, logged: dict) -> Params:
    """``p`` with kvplan's from-scratch budget lowered to the engine's logged one (never raised)."""
    engine_avail = _logged_kv(failure, logged)
    if engine_avail is None or p.kv_cache_memory is not None:
        return p
    s = setup_for(spec, p)
    ours = min(st.budget.available_kv for st in s.stages)
    return replace(p, overhead=max(0, ours - engine_avail))


def _fraction_flag(engine: str) -> str:
    return "--" + (_fraction_field(engine) or "fraction").replace("_", "-")


def _fraction_for_graphs(spec: ModelSpec, p: Params, failure: Failure) -> float:
    """Lower the fraction by the allocation that failed plus kvplan's CUDA-graph estimate."""
    s = setup_for(spec, p)
    graphs = s.stages[0].budget.cuda_graph
    short = max(0.0, failure.figures.get("tried_bytes", 0) - failure.figures.get("free_bytes", 0))
    return math.floor((p.fraction - (short + graphs) / p.device_memory) * 100) / 100


def _fraction_up(spec: ModelSpec, p: Params, free_bytes: int | None) -> list[tuple[str, Params, str]]:
    if _fraction_field(p.engine) is None or p.kv_cache_memory is not None:
        return []
    start = p.fraction or setup_for(spec, p).stages[0].budget.fraction or 0.9
    cap = FRACTION_CAP
    if free_bytes and p.device_memory:
        cap = min(cap, math.floor(free_bytes / p.device_memory * 100) / 100)
    for hundredths in range(round(start * 100) + 1, round(cap * 100) + 1):
        q = replace(p, fraction=hundredths / 100)
        if check(spec, q)[1]:
            return [("fraction_up", q, f"{_fraction_flag(p.engine)} {q.fraction:g}")]
    return []


def _fewer_seqs(spec: ModelSpec, p: Params) -> list[tuple[str, Params, str]]:
    profiled = _engine(p.engine).profile_by_seqs
    current = p.max_num_seqs or (setup_for(spec, p).max_num_seqs if profiled else None)
    if _engine(p.engine).preallocates_sequences and p.sequences > 1:
        for n in range(p.sequences - 1, 0, -1):
            q = replace(p, sequences=n)
            if check(spec, q)[1]:
                return [("fewer_seqs", q, f"{n} parallel sequences (-np {n})")]
        return []
    if not current or not profiled:
        return []
    n = current // 2
    while n >= 1:
        q = replace(p, max_num_seqs=n)
        if check(spec, q)[1]:
            return [("fewer_seqs", q, f"--max-num-seqs {n}")]
        n //= 2
    return []


def _kv8(spec: ModelSpec, p: Params) -> list[tuple[str, Params, str]]:
    from kvplan.engines import get_engine

    accepted = get_engine(p.engine).kv_dtypes
    current = (p.kv_dtype or "").lower()
    if current and any(k in current for k in ("fp8", "q8", "int8", "q4")):
        return []
    for kv in _KV8:
        if kv in accepted:
            return [("kv_fp8", replace(p, kv_dtype=kv), f"KV cache in {kv}")]
    return []


# 8-bit weights to offer, in order: online fp8 (vLLM/SGLang --quantization fp8), else a Q8_0 GGUF.
_WEIGHTS8 = ("fp8", "q8_0")


def _weights8(spec: ModelSpec, p: Params) -> list[tuple[str, Params, str]]:
    """8-bit weights where the checkpoint is wider; the engine's own rules say which it loads."""
    from kvplan.units import weight_dtype

    current = p.weights_dtype or spec.dtype
    if weight_dtype(current).bytes_per_element <= 1:
        return []
    for w in _WEIGHTS8:
        q = replace(p, weights_dtype=w)
        try:
            setup_for(spec, q)
        except InvalidInput:
            continue  # the engine does not load this format
        return [("weights_fp8", q, f"{w} weights")]
    return []


def _shorter(spec: ModelSpec, p: Params, failure: Failure) -> list[tuple[str, Params, str]]:
    from kvplan.capacity import max_context, with_kv_memory

    if failure.kind == fl.CTX_OVER_TRAIN and failure.figures.get("n_ctx_train"):
        n = int(failure.figures["n_ctx_train"])
        return [("shorter_context", replace(p, context=n), f"context {n:,} (the trained length)")]
    try:
        s = setup_for(spec, p)
    except InvalidInput:
        return []
    if p.kv_cache_memory is not None:
        s = with_kv_memory(s, p.kv_cache_memory)
    longest = max_context(s, batch=p.sequences, limit=p.context - 1) if p.context > 1 else 0
    engine_estimate = _int(failure.figures.get("estimated_len")) or _int(failure.figures.get("kv_tokens"))
    if engine_estimate and 0 < engine_estimate < longest:
        longest = engine_estimate  # the engine's own figure when it is the smaller: both agree it fits
    if longest < 1:
        return []
    return [("shorter_context", replace(p, context=longest), f"context {longest:,} (from {p.context:,})")]


def _more_tp(spec: ModelSpec, p: Params) -> list[tuple[str, Params, str]]:
    from kvplan.engines import get_engine

    if not get_engine(p.engine).supports_tp or p.kv_cache_memory is not None:
        return []
    for tp in (2, 4, 8):  # up to one 8-GPU node
        if tp > p.tp:
            q = replace(p, tp=tp)
            if check(spec, q)[1]:
                return [("tp", q, f"tensor parallel {tp} ({tp * p.pp} GPUs)")]
    return []


def _other_gpu(spec: ModelSpec, p: Params) -> list[tuple[str, Params, str]]:
    """The catalog GPU with the least memory on which the same flags start."""
    from kvplan.hardware import bundled_gpus

    if p.kv_cache_memory is not None:
        return []
    for gpu in sorted(bundled_gpus().values(), key=lambda g: (g.memory_mib, g.name)):
        if gpu.name == p.gpu.name or gpu.memory_mib <= p.gpu.memory_mib:
            continue
        q = replace(p, gpu=gpu, device_memory=None)
        if check(spec, q)[1]:
            return [("other_gpu", q, f"GPU {gpu.name}")]
    return []


def _tp_fixes(spec: ModelSpec, p: Params, failure: Failure) -> list[Prescription]:
    heads = _int(failure.figures.get("heads")) or spec.num_attention_heads
    bad = _int(failure.figures.get("tp")) or p.tp
    valid = [t for t in range(1, 2 * bad + 1) if heads % t == 0]
    below = [t for t in valid if t < bad][-1:]
    above = [t for t in valid if t > bad][:1]
    out = []
    for tp in below + above:
        q = replace(p, tp=tp)
        if check(spec, q)[1]:
            change = f"tensor parallel {tp} (divides the {heads} heads)"
            gives = "GPUs left idle" if tp < bad else "more GPUs per replica"
            out.append(_prescription(spec, q, 0 if tp < bad else 1, change, gives))
    return out


def _keep_starting(spec: ModelSpec, candidates: list, forced: list) -> list[Prescription]:
    out, seen = [], set()
    for key, q, change in candidates:
        if (key, change) in seen or not check(spec, q)[1]:
            continue
        seen.add((key, change))
        rank, gives = GIVES_UP[key]
        if forced and (key, q, change) not in forced:
            change = f"{forced[0][2]} and {change}"
        out.append(_prescription(spec, q, rank, change, gives))
    return sorted(out, key=lambda x: x.rank)


def _prescription(spec: ModelSpec, q: Params, rank: int, change: str, gives: str) -> Prescription:
    from kvplan.launch import launch_args, model_ref

    r, _ = check(spec, q)
    ref = q.model_ref or model_ref(spec.source, spec.name)
    # The sequence cap the log gave (or the engine's default on a known GPU); on an unknown GPU the
    # default is unknown too, so the line carries the sequences the logged budget holds.
    seqs = q.sequences if _engine(q.engine).preallocates_sequences else q.max_num_seqs
    if seqs is None and q.kv_cache_memory is None:
        seqs = r.max_num_seqs
    args = launch_args(r, model=ref, sequences=seqs or r.max_concurrent_sequences_per_replica)
    if q.enforce_eager:
        args.append(_engine(q.engine).eager_flag)

    argv = capacity_argv(spec, q)
    flags = {
        k: v for k, v in asdict(q).items() if k not in ("gpu", "engine", "model_ref") and v not in (None, 0, False)
    }
    flags["gpu"] = q.gpu.name
    return Prescription(rank, change, gives, flags, args, shlex.join(args), argv, shlex.join(argv),
                        r.max_context, r.max_concurrent_sequences_per_replica, r.available_kv_bytes)  # fmt: skip

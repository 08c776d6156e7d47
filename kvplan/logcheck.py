"""``kvplan check-log``: read an engine's startup log and compare its memory figures with kvplan's.

The parser knows the lines vLLM (V0 and V1), SGLang and llama.cpp print at startup (the formats
in shared/reference/landscape.md section 2 and engine_logs.json). It extracts the model, the
flags, and the engine's own figures, then runs kvplan twice:

- *given*: the engine's logged KV budget fed back (vLLM ``--kv-cache-memory`` style), so the
  token, block and concurrency figures can be compared exactly;
- *predicted*: kvplan's own budget from scratch (weights, activations, overheads).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvplan import capacity
from kvplan.engines import LOG_READERS, Engine, get_engine, log_engine, usable_memory_bytes
from kvplan.engines.base import LogFacts, fmt
from kvplan.errors import InvalidInput
from kvplan.units import GIB

__all__ = [
    "CheckResult",
    "LogFacts",
    "check_file",
    "check_text",
    "detect_engine",
    "find_spec",
    "guess_gpu",
    "parse_log",
]


def _reader(text: str, engine: str | None) -> Engine:
    if engine is None:
        return log_engine(text)
    if "@" in engine:  # a release: vllm@0.19
        chosen = get_engine(engine)
        if any(e.name == chosen.name for e in LOG_READERS):
            return chosen
    for e in LOG_READERS:
        if e.name == engine:
            return e
    *first, last = [e.name for e in LOG_READERS[::-1]]
    raise InvalidInput(f"unknown log engine {engine!r}; expected {', '.join(first)} or {last}")


def detect_engine(text: str) -> str:
    """The name of the engine that wrote a startup log."""
    return log_engine(text).name


def parse_log(text: str, engine: str | None = None) -> LogFacts:
    """The facts a startup log states; ``engine`` (a name) skips the detection."""
    return _reader(text, engine).parse_log(text)


# ---- resolve model and GPU --------------------------------------------------------------------

_SUFFIXES = ("-instruct", "-chat", "-it", "-hf", "-base", "-fp8", "-gguf")


def find_spec(model: str | None):  # noqa: ANN201
    """The bundled spec for a Hugging Face repo id or a local path, or None."""
    from kvplan.catalog import all_bundled, bundled_names, load_bundled

    if not model:
        return None
    base = model.rstrip("/").split("/")[-1].lower().replace("meta-llama-", "llama-").removeprefix("meta-")
    base = base.split(":")[0]
    for _ in range(3):
        for suffix in _SUFFIXES:
            base = base.removesuffix(suffix)
    if base in bundled_names():
        return load_bundled(base)
    for spec in all_bundled():
        if f"/{model.lower()}/" in spec.source.lower() + "/":
            return spec
    return None


def guess_gpu(total_bytes: int | None):  # noqa: ANN201
    """The catalog GPU whose CUDA-visible memory is nearest the logged total (within 2%)."""
    from kvplan.hardware import bundled_gpus

    if not total_bytes:
        return None
    best = min(bundled_gpus().values(), key=lambda g: abs(usable_memory_bytes(g) - total_bytes))
    return best if abs(usable_memory_bytes(best) - total_bytes) <= 0.02 * total_bytes else None


# ---- compare ----------------------------------------------------------------------------------


@dataclass
class CheckResult:
    engine: str
    model: str | None
    gpu: str | None
    flags: dict[str, Any]
    logged: dict[str, float]
    rows: list[dict[str, str]]
    given: dict[str, Any] | None = None
    predicted: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def check_file(
    path: Path,
    *,
    engine: str | None = None,
    model: str | None = None,
    gpu: str | None = None,
    weights_dtype: str | None = None,
    tp: int | None = None,
) -> CheckResult:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InvalidInput(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    return check_text(text, engine=engine, model=model, gpu=gpu, weights_dtype=weights_dtype, tp=tp)


def check_text(
    text: str,
    *,
    engine: str | None = None,
    model: str | None = None,
    gpu: str | None = None,
    weights_dtype: str | None = None,
    tp: int | None = None,
) -> CheckResult:
    from kvplan.catalog import resolve_model
    from kvplan.hardware import resolve_gpu

    reader = _reader(text, engine)
    facts = reader.parse_log(text)
    if tp is not None:
        facts.flags["tp"] = facts.flags["tensor_parallel_size"] = tp
    spec = resolve_model(model) if model else find_spec(facts.model)
    notes = []
    if spec is None:
        notes.append(f"model {facts.model!r} is not a bundled spec; pass --model to compare")
    total = facts.figures.get("total")
    gpu_obj = resolve_gpu(gpu) if gpu else guess_gpu(int(total * GIB) if total else None)
    if gpu_obj is None and reader.log_needs_gpu:
        notes.append("GPU not identified from the log; pass --gpu for the from-scratch prediction")
    result = CheckResult(facts.engine, spec.name if spec else facts.model, gpu_obj.name if gpu_obj else None,
                         facts.flags, facts.figures, [], notes=notes)  # fmt: skip
    if spec is None:
        result.rows = [
            {"term": k, "logged": fmt(v), "predicted": "-", "difference": "-"} for k, v in facts.figures.items()
        ]
        return result
    facts.flags.setdefault("weights_dtype", weights_dtype)
    rules, note = (reader, None) if "@" in (engine or "") else reader.rules_for_log(facts)
    if note:
        result.notes.append(note)
    rules.compare_log(facts, spec, gpu_obj, result, calc=capacity)
    return result

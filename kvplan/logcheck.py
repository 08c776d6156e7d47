"""``kvplan check-log``: read an engine's startup log and compare its memory figures with kvplan's.

The parser knows the lines vLLM (V0 and V1), SGLang and llama.cpp print at startup (the formats
in shared/reference/landscape.md section 2 and engine_logs.json). It extracts the model, the
flags, and the engine's own figures, then runs kvplan twice:

- *given*: the engine's logged KV budget fed back (vLLM ``--kv-cache-memory`` style), so the
  token, block and concurrency figures can be compared exactly;
- *predicted*: kvplan's own budget from scratch (weights, activations, overheads).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvplan import capacity
from kvplan.engines import LOG_READERS, Engine, get_engine, log_engine, usable_memory_bytes
from kvplan.engines.base import LogFacts, fmt
from kvplan.errors import InvalidInput
from kvplan.failures import flatten
from kvplan.hardware import GPU
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


# ---- the GPU, from what the log says -------------------------------------------------------------

# Device names as torch.cuda.get_device_name / nvidia-smi print them -> catalog name. Order
# matters: the first match wins (H100 NVL and PCIe before the plain H100 SXM name).
DEVICE_NAMES: tuple[tuple[str, str], ...] = (
    (r"H100 NVL", "h100-nvl"),
    (r"H100 PCIe|H100-PCIE", "h100-pcie"),
    (r"H100", "h100-sxm"),  # "NVIDIA H100 80GB HBM3"
    (r"GH200|H200", "h200"),
    (r"GB200", "gb200"),
    (r"B200", "b200"),
    (r"A100[- ]PCIE[- ]40GB|A100 40GB PCIe", "a100-40gb-pcie"),
    (r"A100[- ]PCIE[- ]80GB|A100 80GB PCIe", "a100-80gb-pcie"),
    (r"A100[- ]SXM4?[- ]40GB|A100 40GB", "a100-40gb"),
    (r"A100", "a100-80gb"),  # "NVIDIA A100-SXM4-80GB"
    (r"L40S", "l40s"),
    (r"\bL4\b", "l4"),
    (r"A10G", "a10g"),
    (r"RTX 4090", "rtx-4090"),
    (r"RTX 3090", "rtx-3090"),
    (r"MI325X", "mi325x"),
    (r"MI300X", "mi300x"),
)
# CUDA compute capability per catalog GPU (developer.nvidia.com/cuda-gpus).
COMPUTE_CAPABILITY: dict[str, tuple[int, int]] = {
    "a10g": (8, 6), "rtx-3090": (8, 6), "l4": (8, 9), "l40s": (8, 9), "rtx-4090": (8, 9),
    "a100-40gb": (8, 0), "a100-40gb-pcie": (8, 0), "a100-80gb": (8, 0), "a100-80gb-pcie": (8, 0),
    "h100-sxm": (9, 0), "h100-pcie": (9, 0), "h100-nvl": (9, 0), "h200": (9, 0), "b200": (10, 0), "gb200": (10, 0),
}  # fmt: skip

_N = r"-?[\d,]*\.?\d+"
_TOTAL_GIB = (
    rf"Free memory on device(?: \S+)? \({_N}/({_N}) ?GiB\)",
    rf"total_gpu_memory \(({_N}) ?GiB\)",
    rf"total_gpu_memory=({_N}) ?GiB",
    rf"has a total capacity of ({_N}) GiB",
    rf"calculating max tokens in paged kv cache: total: ({_N}) GiB",
)
_DEVICE_NAME = (
    r"(?:Device \d+: |GPU \d+: |using device \w+ \(|device_name[=:] ?'?|Found GPU\d*:? )((?:NVIDIA|AMD)[^,()\n']*)"
)


@dataclass
class GpuId:
    """Which GPU the diagnosis used and why."""

    name: str | None
    how: str  # "device name in the log", "total memory in the log", "--gpu", "not identified"
    evidence: str | None = None
    total_bytes: int | None = None  # what the engine saw as the device total, when the log says


def identify_gpu(text: str, gpu_arg: str | None = None) -> tuple[GPU | None, GpuId]:
    """The log's device name, then its total memory (with its compute capability), then ``--gpu``."""
    from kvplan.hardware import bundled_gpus, resolve_gpu

    catalog = bundled_gpus()
    total = _logged_total(text)
    m = re.search(_DEVICE_NAME, text)
    if m:
        name = m.group(1).strip()
        for rx, key in DEVICE_NAMES:
            if re.search(rx, name) and key in catalog:
                return catalog[key], GpuId(key, "device name in the log", repr(name), total)
    cc = re.search(r"compute capability:? (\d+)\.(\d+)", text)
    if total:
        best = guess_gpu(total)
        if cc and best is not None and COMPUTE_CAPABILITY.get(best.name) != (int(cc.group(1)), int(cc.group(2))):
            best = None
        if best is not None:
            what = f"{total / GIB:.2f} GiB total" + (f", compute capability {cc.group(1)}.{cc.group(2)}" if cc else "")
            return best, GpuId(best.name, "total memory in the log", what, total)
    if gpu_arg:
        gpu = resolve_gpu(gpu_arg)
        return gpu, GpuId(gpu.name, "--gpu", None, total)
    return None, GpuId(None, "not identified", None, total)


def _logged_total(text: str) -> int | None:
    for rx in _TOTAL_GIB:
        m = re.search(rx, flatten(text))
        if m:
            return int(float(m.group(1).replace(",", "")) * GIB)
    return None


def _gpu_from_log(text: str, gpu: str | None, facts: LogFacts):  # noqa: ANN202
    """The GPU the log names (device name, total memory, compute capability), else ``--gpu``, and how."""
    gpu_obj, how = identify_gpu(text, gpu)
    total = facts.figures.get("total")
    if gpu_obj is None and total:  # a total the reader found that identify_gpu's lines do not cover
        gpu_obj = guess_gpu(int(total * GIB))
        return gpu_obj, "total memory in the log" if gpu_obj else "not identified"
    if gpu_obj is None:
        return None, "not identified"
    return gpu_obj, how.how if how.how == "--gpu" else f"{how.how} ({how.evidence})"


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
    gpu_source: str | None = None  # how the GPU was identified: from the log (which line) or --gpu

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
    from kvplan.hardware import resolve_gpu

    reader = _reader(text, engine)
    facts = reader.parse_log(text)
    if tp is not None:
        facts.flags["tp"] = facts.flags["tensor_parallel_size"] = tp
    spec, stored, notes = _model(model, weights_dtype=weights_dtype) if model else (find_spec(facts.model), None, [])
    if spec is None:
        notes.append(f"model {facts.model!r} is not a bundled spec; pass --model to compare")
    gpu_obj, gpu_id = _gpu_from_log(text, gpu, facts)
    if gpu_obj is None and reader.log_needs_gpu:
        notes.append("GPU not identified from the log; pass --gpu for the from-scratch prediction")
    elif gpu_obj is not None and gpu_id != "--gpu":  # said when the log, not the user, named it
        notes.append(f"GPU {gpu_obj.name} from the {gpu_id}")
        if gpu and resolve_gpu(gpu).name != gpu_obj.name:
            notes.append(f"--gpu {gpu} differs from what the log says; the log's GPU is used")
    result = CheckResult(facts.engine, spec.name if spec else facts.model, gpu_obj.name if gpu_obj else None,
                         facts.flags, facts.figures, [], notes=notes, gpu_source=gpu_id)  # fmt: skip
    if spec is None:
        result.rows = [
            {"term": k, "logged": fmt(v), "predicted": "-", "difference": "-"} for k, v in facts.figures.items()
        ]
        return result
    facts.flags.setdefault("weights_dtype", weights_dtype)
    rules, note = (reader, None) if "@" in (engine or "") else reader.rules_for_log(facts)
    if note:
        result.notes.append(note)
    rules.compare_log(facts, spec, gpu_obj, result, calc=capacity if stored is None else CheckpointCalc(stored))
    return result


def _model(model: str, *, weights_dtype: str | None) -> tuple[Any, Any, list[str]]:
    """``--model``: its spec, the checkpoint whose headers weigh it (a Hub repository or a folder,
    :meth:`kvplan.catalog.ResolvedModel.weights`, the rule every command follows) and what to say."""
    import warnings

    from kvplan.catalog import resolve
    from kvplan.errors import ImportNote
    from kvplan.weights_compare import weights_source_lines

    resolved = resolve(model)
    for line in resolved.notes:
        warnings.warn(ImportNote(line), stacklevel=3)
    stored = resolved.weights(weights_dtype=weights_dtype)
    return resolved.spec, stored, weights_source_lines(resolved, stored, weights_dtype=weights_dtype)


class CheckpointCalc:
    """:mod:`kvplan.capacity` as the engines' ``compare_log`` calls it (``calc``), every ``setup``
    weighing the model's checkpoint headers (:func:`kvplan.capacity.setup` ``checkpoint=``)."""

    def __init__(self, checkpoint: Any) -> None:
        self.checkpoint = checkpoint

    def __getattr__(self, name: str) -> Any:
        return getattr(capacity, name)

    def setup(self, *args: Any, **kwargs: Any) -> Any:
        return capacity.setup(*args, **{"checkpoint": self.checkpoint, **kwargs})

"""Failed starts: what engines print when they refuse to start, and how kvplan reads it.

Each engine module (:mod:`kvplan.engines`) lists its refusals as ``FAILURES``; this module holds
what they share. One :class:`Pattern` per refusal: the regular expression (named groups are the figures the
message carries), the engine file, function and version that raise it, the startup phase it
belongs to and a ``kind`` the engine-neutral diagnosis (:mod:`kvplan.diagnose`) knows how to
explain and fix. Where a message changed between versions, each wording is a pattern of its own.

Figures are normalised by :func:`figures`: ``*_gib`` groups become bytes (``x 2^30``), ``*_mib``
likewise; ``tried`` / ``free`` come with a ``*_unit`` group (torch prints MiB or GiB).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kvplan.units import GIB, MIB

# Kinds (engine-neutral): what ran out and when.
KV_SHORT = "kv_short"  # one request of the configured length does not fit the KV pool
NO_KV_MEMORY = "no_kv_memory"  # nothing left for the KV cache after weights and activations
STARTUP_FREE = "startup_free"  # less free memory at start than the fraction asks for
OOM = "cuda_oom"  # an allocation failed (phase says when: weights, profile run, CUDA graphs)
TP_HEADS = "tp_heads"  # the tensor-parallel size does not divide the attention heads
KV_ALLOC = "kv_alloc"  # the KV buffer itself could not be allocated (llama.cpp)
COMPUTE_ALLOC = "compute_alloc"  # the compute (activation) buffer could not be allocated
WEIGHTS_ALLOC = "weights_alloc"  # the weights could not be allocated
CTX_OVER_TRAIN = "ctx_over_train"  # a warning: the context is longer than the model was trained on
UNKNOWN = "unknown"

FATAL = frozenset({KV_SHORT, NO_KV_MEMORY, STARTUP_FREE, OOM, TP_HEADS, KV_ALLOC, COMPUTE_ALLOC, WEIGHTS_ALLOC})


@dataclass(frozen=True)
class Pattern:
    kind: str
    regex: str
    source: str  # engine file, function, version
    phase: str | None = None  # None: find it from the lines before the message


NUMBER = r"-?[\d,]*\.?\d+"  # a logged figure: 12, 1,024, 9.13, -2.14
_N = NUMBER

# torch's caching allocator (c10/cuda/CUDACachingAllocator.cpp, torch >= 2.1 wording), raised in
# any PyTorch engine (vLLM, SGLang, TensorRT-LLM's PyTorch backend).
TORCH_OOM = Pattern(
    OOM,
    rf"OutOfMemoryError: CUDA out of memory\. Tried to allocate (?P<tried>{_N}) (?P<tried_unit>[KMG]iB)\. "
    rf"GPU (?P<device_index>\d+) has a total capacity of (?P<total_gib>{_N}) GiB of which "
    rf"(?P<free>{_N}) (?P<free_unit>[KMG]iB) is free",
    "torch c10/cuda/CUDACachingAllocator.cpp (torch >= 2.1)",
)
# cudaGraph capture_end / cudaMalloc inside a kernel: no sizes in the message.
CUDA_ERROR_OOM = Pattern(OOM, r"CUDA error: out of memory", "CUDA runtime (torch.cuda.graphs capture_end, kernels)")

# The lines that say which startup phase was running: the last one before the failure wins.
PHASE_MARKERS: tuple[tuple[str, str], ...] = (
    (
        "weights load",
        r"load_model|Loading model weights|Loading weights|Loading safetensors|load_tensors|"
        r"Load weight begin",
    ),  # fmt: skip
    ("profile run", r"profile_run|_dummy_run|determine_available_memory|Memory profiling|_dummy_sampler_run"),
    (
        "CUDA-graph capture",
        r"[Cc]apturing (?:CUDA graph|cudagraph|the model for CUDA graph)|capture_model|"
        r"Graph capturing|cuda_graph_runner|capture_end|CUDA graph shapes",
    ),  # fmt: skip
)


@dataclass(frozen=True)
class Match:
    pattern: Pattern
    start: int
    line: str
    groups: dict[str, str]


def flatten(text: str) -> str:
    """The log with its line breaks inside messages undone (users' pastes wrap long lines)."""
    return re.sub(r"[ \t]*\n[ \t]*", " ", text)


def find_all(text: str, patterns: tuple[Pattern, ...]) -> list[Match]:
    """Every refusal of ``patterns`` (one engine's) in ``text``, in log order.

    Pasted logs wrap long lines at a space or inside a word (a terminal's width); a message is
    looked for in the log with its breaks read as spaces, then as nothing.
    """
    found: list[Match] = []
    for flat in (flatten(text), re.sub(r"\n", "", text)):
        for pattern in patterns:
            for m in re.finditer(pattern.regex, flat):
                groups = {k: v for k, v in m.groupdict().items() if v is not None}
                found.append(Match(pattern, m.start(), _line_at(flat, m), groups))
        if found:
            break
    return sorted(found, key=lambda x: x.start)


def _line_at(flat: str, m: re.Match) -> str:
    """The quoted message: from the exception name (or the match) to the end of its sentence run."""
    head = flat.rfind(" ", 0, max(0, m.start() - 60))
    start = m.start()
    for token in ("ValueError:", "RuntimeError:", "OutOfMemoryError:", "[TensorRT-LLM][ERROR]", "AssertionError:"):
        i = flat.rfind(token, max(0, head), m.start() + 1)
        if i >= 0:
            start = min(start, i)
    return flat[start : m.end()].strip()


def figures(groups: dict[str, str]) -> dict[str, float]:
    """Named groups as numbers; sizes in bytes."""
    out: dict[str, float] = {}
    units = {"KiB": 1024, "MiB": MIB, "GiB": GIB}
    for key, raw in groups.items():
        if key.endswith("_unit") or key in ("device", "buffer"):
            continue
        value = float(raw.replace(",", ""))
        if key.endswith("_gib"):
            out[key.removesuffix("_gib") + "_bytes"] = value * GIB
        elif key.endswith("_mib"):
            out[key.removesuffix("_mib") + "_bytes"] = value * MIB
        elif key + "_unit" in groups:
            out[key + "_bytes"] = value * units[groups[key + "_unit"]]
        else:
            out[key] = value
    return out


def phase_before(text: str, position: int) -> str | None:
    """The latest startup phase (in startup order) with a marker before ``position``.

    Startup order, not line order: multi-worker logs (Ray, TP ranks) interleave lines, and a
    worker's late "profiling" line may follow another's "capturing" line.
    """
    flat = flatten(text)[:position]
    best = None
    for phase, rx in PHASE_MARKERS:  # listed in startup order
        if re.search(rx, flat):
            best = phase
    return best


_ERROR_LINE = re.compile(
    r"(Error|Exception|error:|ERROR|FAILED|[Ff]ailed|fatal|Aborted|core dumped|exiting due to|terminate called)"
)
_TRACE_NOISE = re.compile(r"^\s*(File \"|\^+|~+|raise |return |Traceback)")


def last_error_line(text: str) -> str | None:
    """The last line that reads as an error (a traceback's frames and carets skipped), prefix kept."""
    for line in reversed(text.splitlines()):
        body = line.strip()
        if not body or _TRACE_NOISE.search(re.sub(r"^\(.*?\)\s*", "", body)):
            continue
        if re.search(r"\] *(File \"|\^|~|Traceback|raise |return )", body):
            continue
        if _ERROR_LINE.search(body):
            return body
    return None


def looks_failed(text: str) -> bool:
    """A log that ends in a traceback or an error and never says the server came up."""
    started = re.search(
        r"Application startup complete|Uvicorn running|server is listening|The server is fired up|"
        r"main: server is listening|Started server process.*\n.*Application startup complete",
        text,
    )
    return started is None and last_error_line(text) is not None


# ---- which engine wrote a failed log ------------------------------------------------------------------


def engine_of(text: str, engines) -> str | None:  # noqa: ANN001
    """The engine (of ``engines``) whose own refusal, else whose own lines, appear in ``text``.

    A refusal shared by several engines (torch's out-of-memory) does not decide it.
    """
    shared = (TORCH_OOM, CUDA_ERROR_OOM)
    flat = flatten(text)
    for engine in engines:
        if any(re.search(p.regex, flat) for p in engine.failure_patterns if p not in shared):
            return engine.name
    for engine in engines:
        if any(marker in text for marker in engine.failure_markers):
            return engine.name
    return None


def model_of(text: str) -> str | None:
    """The checkpoint a launch command in the log names (``--model``, ``--model-path``)."""
    m = re.search(r"--model(?:[-_]path)?[ =](\S+)", text)
    return m.group(1) if m else None

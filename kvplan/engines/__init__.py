"""Serving engines: one module per engine, one registry.

Each module (:mod:`~kvplan.engines.vllm`, :mod:`~kvplan.engines.sglang`,
:mod:`~kvplan.engines.trtllm`, :mod:`~kvplan.engines.llamacpp`,
:mod:`~kvplan.engines.transformers`, :mod:`~kvplan.engines.ideal`) defines an
:class:`~kvplan.engines.base.Engine`: how it lays out each layer kind of the engine-neutral
:func:`kvplan.memory.cache_plan`, its budget rule and defaults, its launch line and how its
startup log reads. Adding an engine is one module and one entry below.
"""

from __future__ import annotations

from kvplan.engines import ideal, llamacpp, sglang, transformers, trtllm, vllm
from kvplan.engines.base import (
    Budget,
    Engine,
    Layout,
    LogFacts,
    Overrides,
    Settings,
    check_fraction,
)
from kvplan.errors import InvalidInput, did_you_mean
from kvplan.hardware import usable_memory_bytes  # one usable-memory figure for every command
from kvplan.units import canonical_dtype, kv_dtype

ENGINES: dict[str, Engine] = {m.ENGINE.name: m.ENGINE for m in (ideal, vllm, sglang, trtllm, llamacpp, transformers)}
# check-log: engines whose startup log kvplan reads, most specific markers first.
LOG_READERS: tuple[Engine, ...] = (llamacpp.ENGINE, sglang.ENGINE, vllm.ENGINE)
_ALIASES = {"tensorrtllm": "trtllm", "trt": "trtllm", "llama": "llamacpp", "hf": "transformers"}


def get_engine(name: str) -> Engine:
    """An engine by name; case, dots, dashes and underscores do not matter."""
    key = name.strip().lower().replace("-", "").replace(".", "").replace("_", "")
    key = _ALIASES.get(key, key)
    if key not in ENGINES:
        hint = did_you_mean(name, list(ENGINES)) or ";"
        raise InvalidInput(f"unknown engine {name!r}{hint} expected one of: {', '.join(ENGINES)}")
    return ENGINES[key]


def known_kv_dtype(name: str) -> str:
    """``name`` as a dtype some engine stores (kvplan's dtypes, vLLM's per-token-head modes);
    unknown names fail with the list of dtypes."""
    canonical = canonical_dtype(name)
    if any(canonical in e.kv_dtypes for e in ENGINES.values()):
        return canonical
    return kv_dtype(name).name


def log_engine(text: str) -> Engine:
    """The engine that wrote a startup log."""
    for engine in LOG_READERS:
        if engine.reads_log(text):
            return engine
    names = "|".join(e.name for e in LOG_READERS[::-1])
    raise InvalidInput(f"cannot tell which engine wrote this log; pass --engine {names}")


__all__ = [
    "ENGINES",
    "LOG_READERS",
    "Budget",
    "Engine",
    "Layout",
    "LogFacts",
    "Overrides",
    "Settings",
    "check_fraction",
    "get_engine",
    "known_kv_dtype",
    "log_engine",
    "usable_memory_bytes",
]

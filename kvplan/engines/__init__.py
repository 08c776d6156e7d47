"""Serving engines: one module per engine, one registry.

Each module (:mod:`~kvplan.engines.vllm`, :mod:`~kvplan.engines.sglang`,
:mod:`~kvplan.engines.trtllm`, :mod:`~kvplan.engines.llamacpp`,
:mod:`~kvplan.engines.transformers`, :mod:`~kvplan.engines.ideal`) defines an
:class:`~kvplan.engines.base.Engine`: how it lays out each layer kind of the engine-neutral
:func:`kvplan.memory.cache_plan`, its budget rule and defaults, its launch line and how its
startup log reads. Adding an engine is one module and one entry below.
"""

from __future__ import annotations

from dataclasses import replace

from kvplan.engines import ideal, llamacpp, sglang, transformers, trtllm, vllm
from kvplan.engines.base import (
    Budget,
    Calibration,
    Engine,
    HostLoop,
    Layout,
    LogFacts,
    Overlap,
    Overrides,
    Settings,
    check_fraction,
)
from kvplan.errors import InvalidInput, did_you_mean
from kvplan.hardware import usable_memory_bytes  # one usable-memory figure for every command
from kvplan.units import canonical_dtype, kv_dtype

_MODULES = (ideal, vllm, sglang, trtllm, llamacpp, transformers)
# name -> the newest rule set kvplan knows; RELEASES: name -> every release it knows, oldest first.
ENGINES: dict[str, Engine] = {m.ENGINE.name: m.ENGINE for m in _MODULES}
RELEASES: dict[str, dict[str, Engine]] = {m.ENGINE.name: {e.release: e for e in m.VERSIONS} for m in _MODULES}
# check-log: engines whose startup log kvplan reads, most specific markers first.
LOG_READERS: tuple[Engine, ...] = (llamacpp.ENGINE, sglang.ENGINE, vllm.ENGINE)
_ALIASES = {"tensorrtllm": "trtllm", "trt": "trtllm", "llama": "llamacpp", "hf": "transformers"}


_KEYS: dict[str, str] = {}  # a name as given -> its key in ENGINES (the latency paths ask thousands of times a plan)


def get_engine(name: str) -> Engine:
    """An engine by name: the newest release kvplan knows, or ``name@release`` (``vllm@0.19``) for an
    older rule set. Case, dots, dashes and underscores in the name do not matter."""
    base, at, release = name.partition("@")
    key = _KEYS.get(base)
    if key is None:
        key = base.strip().lower().replace("-", "").replace(".", "").replace("_", "")
        key = _KEYS[base] = _ALIASES.get(key, key)
    if key not in ENGINES:
        hint = did_you_mean(base, list(ENGINES)) or ";"
        raise InvalidInput(f"unknown engine {base!r}{hint} expected one of: {', '.join(ENGINES)}")
    if not at:
        return ENGINES[key]
    known = RELEASES[key]
    if release.strip() not in known:
        raise InvalidInput(
            f"unknown {key} version {release!r}; kvplan knows {', '.join(known)} (select one as {key}@VERSION)"
        )
    return known[release.strip()]


# The constants lent to an engine without a fit of its own: vLLM's, the engine the fit grid covers most widely.
FALLBACK_CALIBRATION: Calibration = vllm.CALIBRATION


def latency_calibration(engine: Engine | str | None = None) -> Calibration:
    """The kernel efficiencies :mod:`kvplan.latency` uses for ``engine`` (an Engine, a name, or None for
    vLLM): the engine's own fit, or vLLM's with a version label that says whose they are."""
    profile = engine if isinstance(engine, Engine) else get_engine(engine or vllm.ENGINE.name)
    if profile.calibration is not None:
        return profile.calibration
    base = FALLBACK_CALIBRATION
    return replace(base, engine=profile.name, version=f"{base.version} (no {profile.name} fit: vLLM's constants)")


def engine_overlap(engine: Engine | str | None = None) -> Overlap:
    """What ``engine`` (an Engine, a name, or None for vLLM) overlaps inside a step (:class:`Overlap`)."""
    profile = engine if isinstance(engine, Engine) else get_engine(engine or vllm.ENGINE.name)
    return profile.overlap


def engine_fp8_context_attention(engine: Engine | str | None = None, *, weights_dtype: str, kv_dtype: str) -> bool:
    """Whether ``engine`` (an Engine, a name, or None for vLLM) runs prefill attention on FP8 tensor cores for these
    dtypes (:meth:`Engine.fp8_context_attention`)."""
    profile = engine if isinstance(engine, Engine) else get_engine(engine or vllm.ENGINE.name)
    return profile.fp8_context_attention(weights_dtype=weights_dtype, kv_dtype=kv_dtype)


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
    "RELEASES",
    "LOG_READERS",
    "Budget",
    "Calibration",
    "Engine",
    "HostLoop",
    "Layout",
    "LogFacts",
    "Overlap",
    "Overrides",
    "Settings",
    "check_fraction",
    "engine_fp8_context_attention",
    "engine_overlap",
    "get_engine",
    "known_kv_dtype",
    "latency_calibration",
    "log_engine",
    "usable_memory_bytes",
]

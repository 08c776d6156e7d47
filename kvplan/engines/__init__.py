"""Serving engines: one module per engine, one registry.

Each module (:mod:`~kvplan.engines.vllm`, :mod:`~kvplan.engines.sglang`,
:mod:`~kvplan.engines.trtllm`, :mod:`~kvplan.engines.llamacpp`,
:mod:`~kvplan.engines.transformers`, :mod:`~kvplan.engines.ideal`) defines an
:class:`~kvplan.engines.base.Engine`: how it lays out each layer kind of the engine-neutral
:func:`kvplan.memory.cache_plan`, its budget rule and defaults, its launch line and how its
startup log reads. Adding an engine is one module and one entry below.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from types import ModuleType
from typing import TypeVar

from kvplan.engines.base import (
    Budget,
    Calibration,
    DecodeAttention,
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

# name -> the module defining that engine (its ENGINE, the newest rule set, and VERSIONS, every release oldest
# first), in the order listings show them. A module is imported the first time its engine is asked for: a command
# that runs one engine reads one rule set (the CLI's start; Python's dataclass decorator is most of a module's cost).
_MODULES: dict[str, str] = {
    "ideal": "kvplan.engines.ideal",
    "vllm": "kvplan.engines.vllm",
    "sglang": "kvplan.engines.sglang",
    "trtllm": "kvplan.engines.trtllm",
    "llamacpp": "kvplan.engines.llamacpp",
    "transformers": "kvplan.engines.transformers",
}
_T = TypeVar("_T")


class _Registry(Mapping[str, _T]):
    """Engine name -> what ``read`` takes from its module, the module imported on first access (names and
    membership need no import)."""

    def __init__(self, read: Callable[[ModuleType], _T]) -> None:
        self._read = read
        self._values: dict[str, _T] = {}

    def __getitem__(self, name: str) -> _T:
        if name not in self._values:
            if name not in _MODULES:
                raise KeyError(name)
            self._values[name] = self._read(importlib.import_module(_MODULES[name]))
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in _MODULES

    def __iter__(self) -> Iterator[str]:
        return iter(_MODULES)

    def __len__(self) -> int:
        return len(_MODULES)

    def __repr__(self) -> str:
        return f"<engines {', '.join(_MODULES)}>"


# name -> the newest rule set kvplan knows; RELEASES: name -> every release it knows, oldest first.
ENGINES: Mapping[str, Engine] = _Registry(lambda m: m.ENGINE)
RELEASES: Mapping[str, dict[str, Engine]] = _Registry(lambda m: {e.release: e for e in m.VERSIONS})
# check-log: engines whose startup log kvplan reads, most specific markers first (LOG_READERS, built on first use).
_LOG_READER_NAMES = ("llamacpp", "sglang", "vllm")
_ALIASES = {"tensorrtllm": "trtllm", "trt": "trtllm", "llama": "llamacpp", "hf": "transformers"}
# The engine whose fitted constants are lent to an engine without a fit of its own (FALLBACK_CALIBRATION) and that
# answers when no engine is named: vLLM, the engine the fit grid covers most widely.
_FALLBACK = "vllm"


def _log_readers() -> tuple[Engine, ...]:
    return tuple(ENGINES[n] for n in _LOG_READER_NAMES)


def __getattr__(name: str) -> object:
    """``LOG_READERS`` and ``FALLBACK_CALIBRATION``, read from their engines' modules when first asked for."""
    if name == "LOG_READERS":
        return _log_readers()
    if name == "FALLBACK_CALIBRATION":
        return ENGINES[_FALLBACK].calibration
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_FOUND: dict[str, Engine] = {}  # a name as given -> its engine (the latency paths ask thousands of times a plan)


def get_engine(name: str) -> Engine:
    """An engine by name: the newest release kvplan knows, or ``name@release`` (``vllm@0.19``) for an
    older rule set. Case, dots, dashes and underscores in the name do not matter."""
    hit = _FOUND.get(name)
    if hit is None:
        hit = _FOUND[name] = _find_engine(name)
    return hit


def _find_engine(name: str) -> Engine:
    base, at, release = name.partition("@")
    key = base.strip().lower().replace("-", "").replace(".", "").replace("_", "")
    key = _ALIASES.get(key, key)
    if key not in ENGINES:
        hint = did_you_mean(base, list(ENGINES)) or ";"
        raise InvalidInput(f"unknown engine {base!r}{hint} expected one of: {', '.join(ENGINES)}")
    if not at:
        return ENGINES[key]
    known = RELEASES[key]
    if release.strip() not in known:
        # a point release inside a rule set whose module prices some part by release (vllm@0.11.0)
        module = importlib.import_module(_MODULES[key])
        point = getattr(module, "point_release", None)
        found = point(release.strip()) if point is not None else None
        if found is not None:
            return found
        releases = ", ".join(known)
        points = f", or a point release {module.POINT_RELEASES}" if point is not None else ""
        raise InvalidInput(
            f"unknown {key} version {release!r}; kvplan knows {releases}{points} (select one as {key}@VERSION)"
        )
    return known[release.strip()]


def selected_name(engine: Engine) -> str:
    """``engine`` as :func:`get_engine` selects it: the bare name for the newest release kvplan knows (``trtllm``),
    ``name@release`` for an older one (``trtllm@0.17``)."""
    return engine.name if ENGINES[engine.name] is engine else engine.key


def latency_calibration(engine: Engine | str | None = None) -> Calibration:
    """The kernel efficiencies :mod:`kvplan.latency` uses for ``engine`` (an Engine, a name, or None for
    vLLM): the engine's own fit, or vLLM's with a version label that says whose they are."""
    profile = engine if isinstance(engine, Engine) else get_engine(engine or _FALLBACK)
    if profile.calibration is not None:
        return profile.calibration
    base = ENGINES[_FALLBACK].calibration
    own = profile.lent_fits
    note = f"; {own.label}" if own else ""
    # vLLM's float32 routers are its model files' choice, not a kernel efficiency: the borrower keeps its own (none
    # unless its lent fits say so; kvplan.engines.sglang ENGINE_FITS)
    fields = {"fp32_router_families": frozenset(), "fp32_router_tf32": False, **dict(own.fields if own else ())}
    return replace(base, engine=profile.name, version=f"{base.version} (no {profile.name} fit: vLLM's constants{note})",
                   **fields)  # fmt: skip


def engine_overlap(engine: Engine | str | None = None) -> Overlap:
    """What ``engine`` (an Engine, a name, or None for vLLM) overlaps inside a step (:class:`Overlap`)."""
    profile = engine if isinstance(engine, Engine) else get_engine(engine or _FALLBACK)
    return profile.overlap


def engine_fp8_context_attention(engine: Engine | str | None = None, *, weights_dtype: str, kv_dtype: str) -> bool:
    """Whether ``engine`` (an Engine, a name, or None for vLLM) runs prefill attention on FP8 tensor cores for these
    dtypes (:meth:`Engine.fp8_context_attention`)."""
    profile = engine if isinstance(engine, Engine) else get_engine(engine or _FALLBACK)
    return profile.fp8_context_attention(weights_dtype=weights_dtype, kv_dtype=kv_dtype)


def known_kv_dtype(name: str, *, engine: Engine | None = None) -> str:
    """``name`` as a dtype some engine stores (kvplan's dtypes, vLLM's per-token-head modes);
    unknown names fail with the list of dtypes. ``engine``, the one the caller runs, is asked first: where it
    stores the dtype, no other engine's module needs importing."""
    canonical = canonical_dtype(name)
    if engine is not None and canonical in engine.kv_dtypes:
        return canonical
    if any(canonical in e.kv_dtypes for e in ENGINES.values()):
        return canonical
    return kv_dtype(name).name


def log_engine(text: str) -> Engine:
    """The engine that wrote a startup log."""
    readers = _log_readers()
    for engine in readers:
        if engine.reads_log(text):
            return engine
    names = "|".join(e.name for e in readers[::-1])
    raise InvalidInput(f"cannot tell which engine wrote this log; pass --engine {names}")


__all__ = [
    "ENGINES",
    "RELEASES",
    "LOG_READERS",
    "Budget",
    "Calibration",
    "DecodeAttention",
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
    "selected_name",
    "usable_memory_bytes",
]

"""kvplan: KV-cache memory planner and capacity calculator for large language models.

The library is pure Python (pydantic, pyyaml); torch and pynvml are needed only by
:mod:`kvplan.profile`. Bytes are ints everywhere.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # real imports for type checkers; at run time names load on first use (fast CLI start)
    from kvplan.capacity import CapacityResult
    from kvplan.catalog import bundled_names, load_bundled, resolve_model
    from kvplan.engines import ENGINES, Overrides, Settings, get_engine
    from kvplan.errors import InvalidInput, KvplanError, RuntimeFailure
    from kvplan.estimator import EstimateRow, estimate
    from kvplan.hardware import GPU, bundled_gpus, resolve_gpu
    from kvplan.logcheck import parse_log
    from kvplan.memory import CachePlan, cache_plan, kv_bytes_per_sequence, kv_bytes_total
    from kvplan.params import ParamCount, count_params, weight_bytes_per_gpu
    from kvplan.planner import plan
    from kvplan.rope import frequencies, rope_config
    from kvplan.spec import LayerKind, Layers, ModelSpec, MoE, Rope
    from kvplan.units import parse_length, parse_lengths, parse_size

# Submodules with a function of the same name are reached as modules: kvplan.capacity.capacity,
# kvplan.capacity.setup, kvplan.cost.cost.
_EXPORTS = {
    "ENGINES": "kvplan.engines",
    "Overrides": "kvplan.engines",
    "Settings": "kvplan.engines",
    "get_engine": "kvplan.engines",
    "CapacityResult": "kvplan.capacity",
    "plan": "kvplan.planner",
    "frequencies": "kvplan.rope",
    "rope_config": "kvplan.rope",
    "parse_log": "kvplan.logcheck",
    "bundled_names": "kvplan.catalog",
    "load_bundled": "kvplan.catalog",
    "resolve_model": "kvplan.catalog",
    "InvalidInput": "kvplan.errors",
    "KvplanError": "kvplan.errors",
    "RuntimeFailure": "kvplan.errors",
    "EstimateRow": "kvplan.estimator",
    "estimate": "kvplan.estimator",
    "GPU": "kvplan.hardware",
    "bundled_gpus": "kvplan.hardware",
    "resolve_gpu": "kvplan.hardware",
    "CachePlan": "kvplan.memory",
    "cache_plan": "kvplan.memory",
    "kv_bytes_per_sequence": "kvplan.memory",
    "kv_bytes_total": "kvplan.memory",
    "ParamCount": "kvplan.params",
    "count_params": "kvplan.params",
    "weight_bytes_per_gpu": "kvplan.params",
    "LayerKind": "kvplan.spec",
    "Layers": "kvplan.spec",
    "ModelSpec": "kvplan.spec",
    "MoE": "kvplan.spec",
    "Rope": "kvplan.spec",
    "parse_length": "kvplan.units",
    "parse_lengths": "kvplan.units",
    "parse_size": "kvplan.units",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kvplan' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "ENGINES",
    "CapacityResult",
    "Overrides",
    "Settings",
    "frequencies",
    "get_engine",
    "parse_log",
    "plan",
    "rope_config",
    "GPU",
    "CachePlan",
    "EstimateRow",
    "InvalidInput",
    "KvplanError",
    "LayerKind",
    "Layers",
    "ModelSpec",
    "MoE",
    "ParamCount",
    "Rope",
    "RuntimeFailure",
    "bundled_gpus",
    "bundled_names",
    "cache_plan",
    "count_params",
    "estimate",
    "kv_bytes_per_sequence",
    "kv_bytes_total",
    "load_bundled",
    "parse_length",
    "parse_lengths",
    "parse_size",
    "resolve_gpu",
    "resolve_model",
    "weight_bytes_per_gpu",
]

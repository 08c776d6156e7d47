"""kvplan: KV-cache memory planner and capacity calculator for large language models.

The library is pure Python (pydantic, pyyaml); torch and pynvml are needed only by
:mod:`kvplan.profile`. Bytes are ints everywhere.
"""

from kvplan.catalog import bundled_names, load_bundled, resolve_model
from kvplan.errors import InvalidInput, KvplanError, RuntimeFailure
from kvplan.estimate import EstimateRow, estimate
from kvplan.hardware import GPU, bundled_gpus, resolve_gpu
from kvplan.memory import CachePlan, cache_plan, kv_bytes_per_sequence, kv_bytes_total
from kvplan.params import ParamCount, count_params, weight_bytes_per_gpu
from kvplan.spec import LayerKind, Layers, ModelSpec, MoE, Rope
from kvplan.units import parse_length, parse_lengths, parse_size

__version__ = "0.1.0"

__all__ = [
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

"""The ideal engine: exact bytes per token, no paging; the budget is what is left after the weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kvplan.engines import vllm
from kvplan.engines.base import Engine
from kvplan.spec import ModelSpec
from kvplan.units import KV_DTYPES, WEIGHT_DTYPES

if TYPE_CHECKING:
    from kvplan.capacity import CapacityResult


@dataclass(frozen=True)
class Ideal(Engine):
    def check_layer_kinds(self, spec: ModelSpec) -> None:
        """The ideal layout stores what each kind holds: indexer keys at the KV dtype, nothing for
        KV-shared and attention-free layers (kvplan.memory)."""

    def launch_args(self, r: CapacityResult, *, model: str, sequences: int) -> list[str]:
        # An ideal answer has no engine of its own; vLLM's command line is the closest to run it with.
        newest = vllm.ENGINE
        return vllm.serve_args(r, model=model, sequences=sequences, kv_flag=newest.kv_flag(r.kv_dtype),
                               default_utilization=newest.gpu_memory_utilization)  # fmt: skip


ENGINE = Ideal(
    name="ideal",
    release="-",
    version="-",
    paging="exact bytes per token, no paging",
    budget_rule="device memory - weights - user overhead",
    kv_dtypes=tuple(KV_DTYPES),
    tp_needs_kv_divisor=False,
    weight_dtypes=tuple(WEIGHT_DTYPES),
    online_weight_dtypes=("fp8", "int4"),
)
VERSIONS = (ENGINE,)

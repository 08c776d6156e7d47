"""The ideal engine: exact bytes per token, no paging; the budget is what is left after the weights."""

from __future__ import annotations

from dataclasses import dataclass

from kvplan.engines.base import Engine, Layout, paged_prefix_bytes
from kvplan.spec import ModelSpec
from kvplan.units import KV_DTYPES, WEIGHT_DTYPES


@dataclass(frozen=True)
class Ideal(Engine):
    """The exact layout with all device memory for weights and KV: no engine runs with that budget,
    so it has no launch line (a vLLM line at 0.9 utilization would not match the answer)."""

    def check_layer_kinds(self, spec: ModelSpec) -> None:
        """The ideal layout stores what each kind holds: indexer keys at the KV dtype, nothing for
        KV-shared and attention-free layers (kvplan.memory)."""

    def prefix_units(self, layout: Layout, prefix: int) -> int:
        return paged_prefix_bytes(layout, prefix)  # exact: every prefix token stored once


ENGINE = Ideal(
    serves_http=False,  # a layout, not a server: no command line, nothing to deploy
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

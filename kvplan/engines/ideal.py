"""The ideal engine: exact bytes per token, no paging; the budget is what is left after the weights."""

from __future__ import annotations

from dataclasses import dataclass

from kvplan.engines.base import Engine, Layout, Settings, mamba_conv_flag, mamba_ssm_flag, paged_prefix_bytes
from kvplan.spec import LayerKind, ModelSpec
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

    def conv_state_dtype(self, spec: ModelSpec, kind: LayerKind, settings: Settings) -> str | None:
        """``--mamba-cache-dtype`` where given (vLLM's flag, its values; ``kvplan estimate`` sizes the same layout),
        else the spec's ``state_dtype`` (None: the model's dtype)."""
        return mamba_conv_flag(settings.mamba_cache_dtype) or kind.state_dtype

    def ssm_state_dtype(self, spec: ModelSpec, kind: LayerKind, settings: Settings) -> str | None:
        """``--mamba-ssm-cache-dtype`` where given, else what the checkpoint's config states (None: the conv
        state's, so that ``--mamba-cache-dtype`` alone sets both, as vLLM's MambaStateDtypeCalculator does where the
        model states nothing)."""
        return mamba_ssm_flag(settings.mamba_ssm_cache_dtype) or kind.ssm_state_dtype


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
    settings_read=("mamba_ssm_cache_dtype", "mamba_cache_dtype"),  # the state dtypes the layout sizes
)
VERSIONS = (ENGINE,)

"""A checkpoint's header bytes beside kvplan's architecture count, and what explains the difference.

Kept apart from :mod:`kvplan.checkpoint` (which only reads headers) because the count comes from
:mod:`kvplan.params`, which itself loads checkpoints through the catalog: one direction only.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from kvplan.checkpoint import CheckpointWeights, _sum, dominant_weight_dtype, is_scale
from kvplan.params import weight_bytes_total
from kvplan.quant import Storage, storage_for_name
from kvplan.spec import ModelSpec
from kvplan.units import DType

# kvplan dtypes whose bytes per weight already hold the block scales (units.WEIGHT_DTYPES: mxfp4
# 17/32, int4 with a group's fp16 scale and zero); fp8/int8 count 1 byte and leave scales out.
_SCALES_COUNTED = ("mxfp4", "int4")
# NVFP4's 9/16 byte holds the values (1/2) and the FP8 E4M3 block scale (1/16) but not the two fp32 per-tensor
# scales of each matrix (weight_scale_2, input_scale): the block scales are modelled, the per-tensor ones explained.
_VALUE_ONLY = {"nvfp4": Storage(DType("nvfp4 values", Fraction(1, 2)), experts_only=False, label="", shipped=False)}


@dataclass(frozen=True)
class WeightsComparison:
    """Header bytes beside the architecture count (one model copy), and what explains the difference."""

    checkpoint_bytes: int  # resident: every tensor but the MTP module
    architecture_bytes: int
    architecture_dtype: str  # the kvplan dtype the architecture was counted in
    explained: dict[str, int]  # reason -> bytes in the checkpoint the architecture count leaves out
    not_loaded_bytes: int = 0  # MTP tensors: stored, not resident (see CheckpointWeights)
    modelled_scale_bytes: int = 0  # block scales the architecture count already holds (kvplan.quant)

    @property
    def difference_bytes(self) -> int:
        return self.checkpoint_bytes - self.architecture_bytes

    @property
    def unexplained_bytes(self) -> int:
        return self.difference_bytes - sum(self.explained.values())


def compare_weights(weights: CheckpointWeights, spec: ModelSpec) -> WeightsComparison:
    """The header sum (tp=1, pp=1) against the architecture count in the nearest kvplan dtype.

    The count takes the spec's shipped format when it is that dtype (``kvplan.quant.storage``:
    fp8 128x128 block scales modelled per weight); scales beyond the modelled ones are explained.
    """
    arch_dtype = dominant_weight_dtype(weights, spec)
    arch_bytes = weight_bytes_total(spec, arch_dtype)
    values_only = _VALUE_ONLY.get(arch_dtype) or storage_for_name(arch_dtype)
    modelled_scales = 0 if arch_dtype in _SCALES_COUNTED else arch_bytes - weight_bytes_total(spec, values_only)
    roles = weights.roles(spec)
    resident = [(t, role) for t, role, _ in roles if role != "mtp"]
    stored_scales = _sum(t for t, role in resident if role != "vision" and is_scale(t.name))
    explained = {
        "vision tower": _sum(t for t, role in resident if role == "vision"),
        "quantization scales": 0 if arch_dtype in _SCALES_COUNTED else stored_scales - modelled_scales,
        "lm_head stored although the config ties it": _sum(t for t, role in resident if role == "lm_head")
        if spec.tie_word_embeddings
        else 0,
    }
    return WeightsComparison(
        checkpoint_bytes=weights.bytes_per_stage(spec)[0],
        architecture_bytes=arch_bytes,
        architecture_dtype=arch_dtype,
        explained={k: v for k, v in explained.items() if v},
        not_loaded_bytes=_sum(t for t, role, _ in roles if role == "mtp"),
        modelled_scale_bytes=modelled_scales,
    )


def weights_source_lines(
    resolved: Any, weights: CheckpointWeights | None, *, weights_dtype: str | None = None
) -> list[str]:
    """What every command says about its weights term: which spec a Hub name or folder gave, and
    the checkpoint's header sum beside the architecture count (or why there were no headers)."""
    from kvplan.report import weights_comparison_lines

    lines = []
    if resolved.hub is not None or resolved.notes or weights is not None:
        lines.append(f"model: {resolved.origin}")
    if weights_dtype and resolved.hub is not None:
        lines.append(f"weights from the architecture count in {weights_dtype} (--weights-dtype), not the headers")
    elif weights is None and resolved.hub is not None:
        lines.append(
            f"no safetensors headers for {resolved.hub[0]} (none in the repository, or offline and not "
            "cached); weights from the architecture count"
        )
    if weights is not None:
        lines += weights_comparison_lines(compare_weights(weights, resolved.spec), source=weights.describe())
    return lines

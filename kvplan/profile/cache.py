"""Static, preallocated caches laid out as kvplan's ideal engine assumes (``kvplan.memory.cache_plan``).

One cache per built layer, sized once for the requested batch and length, in the KV dtype:

- full attention: ``k [B, Hkv, L, kd]``, ``v [B, Hkv, L, vd]``;
- sliding window ``W``: the same with ``min(L, W)`` slots, used as a ring buffer (slot = position % W);
- chunked attention ``C``: ``min(L, C)`` slots; a chunk starts at slot 0;
- MLA: one latent ``[B, L, kv_lora_rank + qk_rope_head_dim]`` shared by every head;
- recurrent: a conv state ``[B, channels, d_conv - 1]`` and a state ``[B, heads, dk, dv]`` whose sizes
  are :func:`kvplan.memory.recurrent_state_elements`.

Block formats with fractional bytes per value (``int4``, ``q8_0``, ``q4_0``, the FP4 KV formats) are held as packed
``uint8`` rows of exactly the bytes the plan counts; they have shapes but no arithmetic here, so
only ``--device meta`` accepts them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from kvplan.errors import InvalidInput
from kvplan.memory import _ssm_state_dtype, _state_dtype, recurrent_state_elements
from kvplan.spec import LayerKind, ModelSpec
from kvplan.units import KV_DTYPES

# kvplan dtype name -> torch dtype for the formats torch stores natively.
TORCH_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "fp8": torch.float8_e4m3fn,  # kvplan's 'fp8' is e4m3 (units.KV_DTYPES note)
    "fp8_e4m3": torch.float8_e4m3fn,
    "fp8_e5m2": torch.float8_e5m2,
    "int8": torch.int8,
}
PACKED_DTYPES = ("int4", "q8_0", "q4_0", "nvfp4", "fp4_e2m1")  # nvfp4, fp4_e2m1: 9/16 byte (units.KV_DTYPES)

# int8 stand-in quantisation: one fixed scale, no stored scales (the ideal layout counts none).
INT8_SCALE = 32.0


def torch_dtype(name: str) -> torch.dtype | None:
    """The torch dtype of a kvplan dtype, or ``None`` for a packed block format."""
    return TORCH_DTYPES.get(name)


@dataclass
class AttentionCache:
    """K and V of one attention layer. ``span`` is the window or chunk when slots are capped by it."""

    k: torch.Tensor  # [B, Hkv, S, kd]  (packed: [B, S, bytes_k] uint8)
    v: torch.Tensor  # [B, Hkv, S, vd]  (packed: [B, S, bytes_v] uint8)
    mode: str  # "full" | "ring" (sliding) | "chunk"
    span: int | None

    @property
    def slots(self) -> int:
        return self.k.shape[2] if self.k.dim() == 4 else self.k.shape[1]

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.k, self.v)


@dataclass
class LatentCache:
    """MLA: the compressed latent and the decoupled RoPE key, one row per token."""

    latent: torch.Tensor  # [B, S, kv_lora_rank + qk_rope_head_dim]

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.latent,)


@dataclass
class StateCache:
    """A recurrent layer's fixed state: the conv window and the recurrence state."""

    conv: torch.Tensor  # [B, channels, d_conv - 1]
    ssm: torch.Tensor  # [B, heads, dk, dv]

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.conv, self.ssm)


LayerCacheTensors = AttentionCache | LatentCache | StateCache


def _empty(shape: tuple[int, ...], name: str, *, device: torch.device) -> torch.Tensor:
    """A zeroed tensor in format ``name``; packed formats take ``shape[:-1] + (bytes,)`` as given."""
    dtype = torch_dtype(name) or torch.uint8
    return torch.zeros(shape, dtype=dtype, device=device)


def _packed_row(elements: int, name: str) -> int:
    return KV_DTYPES[name].nbytes(elements)


def attention_cache(
    spec: ModelSpec, kind: LayerKind, *, batch: int, length: int, dtype: str, device: torch.device
) -> AttentionCache:
    heads, kd, vd = spec.kv_heads_of(kind), spec.k_head_dim_of(kind), spec.v_head_dim_of(kind)
    span = kind.window if kind.type == "sliding" else kind.chunk if kind.type == "chunked" else None
    slots = length if span is None else min(length, span)
    # A cache shorter than its window/chunk never wraps in this run: it is a plain full cache.
    mode = "full" if span is None or slots < span else ("ring" if kind.type == "sliding" else "chunk")
    if dtype in PACKED_DTYPES:
        k = _empty((batch, slots, _packed_row(heads * kd, dtype)), dtype, device=device)
        v = _empty((batch, slots, _packed_row(heads * vd, dtype)), dtype, device=device)
    else:
        k = _empty((batch, heads, slots, kd), dtype, device=device)
        v = _empty((batch, heads, slots, vd), dtype, device=device)
    return AttentionCache(k, v, mode, span)


def latent_cache(kind: LayerKind, *, batch: int, length: int, dtype: str, device: torch.device) -> LatentCache:
    width = kind.kv_lora_rank + kind.qk_rope_head_dim
    if dtype in PACKED_DTYPES:
        return LatentCache(_empty((batch, length, _packed_row(width, dtype)), dtype, device=device))
    return LatentCache(_empty((batch, length, width), dtype, device=device))


def state_shapes(kind: LayerKind) -> tuple[tuple[int, int], tuple[int, int, int]]:
    """``((channels, d_conv - 1), (heads, dk, dv))`` of one sequence's recurrent state."""
    conv_elems, ssm_elems = recurrent_state_elements(kind)
    conv = (conv_elems // (kind.d_conv - 1), kind.d_conv - 1)
    if kind.variant == "mamba":
        ssm = (kind.d_inner, kind.d_state, 1)  # one state row per channel
    elif kind.variant == "mamba2":
        if kind.d_inner % kind.n_heads:
            raise InvalidInput(f"mamba2 d_inner {kind.d_inner} is not divisible by n_heads {kind.n_heads}")
        ssm = (kind.n_heads, kind.d_state, kind.d_inner // kind.n_heads)
    else:
        ssm = (kind.n_heads, kind.head_k_dim, kind.head_v_dim)
    assert ssm[0] * ssm[1] * ssm[2] == ssm_elems  # the shape holds exactly the planned elements
    return conv, ssm


def state_cache(spec: ModelSpec, kind: LayerKind, *, batch: int, device: torch.device) -> StateCache:
    # the same rules the estimator uses: conv state at state_dtype, SSM state at ssm_state_dtype where given
    conv, ssm = state_shapes(kind)
    return StateCache(
        _state_tensor(conv, _state_dtype(spec, kind), batch=batch, device=device),
        _state_tensor(ssm, _ssm_state_dtype(spec, kind), batch=batch, device=device),
    )


def _state_tensor(shape: tuple[int, ...], name: str, *, batch: int, device: torch.device) -> torch.Tensor:
    if name in PACKED_DTYPES:
        return _empty((batch, _packed_row(math.prod(shape), name)), name, device=device)
    return _empty((batch, *shape), name, device=device)


def layer_cache(
    spec: ModelSpec, layer: int, *, batch: int, length: int, dtype: str, device: torch.device
) -> LayerCacheTensors:
    """The cache of layer ``layer`` for ``batch`` sequences of up to ``length`` tokens."""
    kind = spec.kind(spec.layer_kind_names[layer])
    if kind.type == "recurrent":
        return state_cache(spec, kind, batch=batch, device=device)
    if kind.type == "mla":
        return latent_cache(kind, batch=batch, length=length, dtype=dtype, device=device)
    return attention_cache(spec, kind, batch=batch, length=length, dtype=dtype, device=device)


def cache_bytes(cache: LayerCacheTensors) -> int:
    """Bytes held by one layer's cache tensors."""
    return sum(t.numel() * t.element_size() for t in cache.tensors())


def store(dst: torch.Tensor, src: torch.Tensor) -> None:
    """Write ``src`` (compute dtype) into cache slots ``dst`` (cache dtype)."""
    if dst.dtype == torch.int8:
        dst.copy_((src.float() * INT8_SCALE).round_().clamp_(-127, 127))
    else:
        dst.copy_(src)


def load(src: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Read cache slots in the compute dtype: a view when the dtypes agree, a converted copy otherwise.

    The copy is the whole slice an attention call reads (every cached token of the layer), alive
    while that layer attends: :func:`kvplan.profile.run.activation_peak_bytes` counts it.
    """
    if src.dtype == dtype:
        return src
    if src.dtype == torch.int8:
        # int8 -> bf16/fp16 is exact (|v| <= 127 < 2^8) and so is the power-of-two scale: one
        # compute-dtype copy, no fp32 intermediate twice its size.
        return src.to(dtype).mul_(1.0 / INT8_SCALE)
    return src.to(dtype)

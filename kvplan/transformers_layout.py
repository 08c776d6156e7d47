"""What Hugging Face transformers really keeps in its KV cache, as a cache plan.

The rules below describe ``transformers.DynamicCache`` (the cache ``model(..., use_cache=True)`` and
``generate()`` build by default) in transformers 5.24.0, read in ``transformers/cache_utils.py``
and the modeling files, and proven exact, tensor by tensor, by ``tests/test_against_transformers.py``
on skeleton models of every bundled family. They differ from kvplan's ideal layout in three ways:

1. Sliding-window and chunked layers (``DynamicSlidingWindowLayer``; chunked attention reuses
   the same class with ``sliding_window = attention_chunk_size``) keep the last ``window - 1``
   tokens after each forward pass, not ``window``: the incoming token completes the window.
2. Recurrent layers (``LinearAttentionLayer``: Jamba's Mamba, Qwen3-Next's Gated DeltaNet)
   keep ``d_conv`` columns of conv state, not ``d_conv - 1``, and hold the SSM / delta-rule
   state in float32 whatever the model dtype. Proven on the reference PyTorch paths (what runs
   on CPU, or without mamba_ssm / causal_conv1d / flash-linear-attention installed); the CUDA
   kernels' state dtype is not checked here.
3. There is no tensor or pipeline parallel split of heads: one process holds every layer.

What the cache *exposes* is not all the storage it keeps alive. The sliding layers' tensors are
slices (views) of the ``torch.cat`` result they were cut from, so ``held`` picks what to count:

* ``"tensors"`` -- ``numel * element_size`` of the tensors in the cache (window - 1 tokens);
* ``"decode"`` -- the storage held once generation has run at least one decode step: the view
  of window - 1 tokens pins the window-token concatenation it came from, so ``min(L, window)``;
* ``"prefill"`` -- the storage held right after one prefill forward of L tokens: the views pin
  the K/V of the whole prompt, so sliding layers hold all L tokens until the next step.

MLA layers (DeepSeek V2/V3) store the compressed latent: ``keys`` hold ``kv_lora_rank``
values and ``values`` the shared RoPE key of ``qk_rope_head_dim``, with one "head" -- exactly
kvplan's latent layout, so no rule is needed. Attention sinks (gpt-oss) hold no cache.

A model whose config carries a window larger than its context (Phi-3-128k: 262144) still gets
sliding cache layers in transformers; they never drop a token below 262144 tokens, so a spec
that models the window as inactive agrees with transformers up to that length.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal, get_args

from kvplan.errors import InvalidInput
from kvplan.memory import CachePlan, LayerCache, StagePlan, element_size, layer_cache, recurrent_state_elements
from kvplan.spec import LayerKind, ModelSpec
from kvplan.units import KV_DTYPES, DType

TRANSFORMERS_VERSION = "5.24.0"  # the version these rules were read from and tested against

# Recurrent state tensors (SSM state, delta-rule state) are float32 in transformers 5.24.0's
# reference paths: modeling_jamba.py's scan runs on float32 discrete_A (A = -exp(A_log.float()));
# modeling_qwen3_next.py torch_chunk_gated_delta_rule casts q/k/v to float32 and returns that state.
RECURRENT_STATE_DTYPE = "fp32"


Held = Literal["tensors", "decode", "prefill"]
HELD: tuple[str, ...] = get_args(Held)


def transformers_cache_plan(spec: ModelSpec, kv_dtype_name: str | None = None, *, held: Held = "tensors") -> CachePlan:
    """The cache plan of ``spec`` as transformers' ``DynamicCache`` stores it (one process, no split)."""
    if held not in HELD:
        raise InvalidInput(f"unknown transformers cache measure {held!r}; expected one of {', '.join(HELD)}")
    dtype = element_size(kv_dtype_name or spec.dtype)
    by_kind = {name: _as_transformers(spec, name, dtype, held=held) for name in spec.kind_counts}
    layers = tuple(by_kind[name] for name in spec.layer_kind_names)
    stage = StagePlan(tuple((n, by_kind[name]) for name, n in spec.kind_counts.items()))
    return CachePlan(spec.name, dtype.name, 1, 1, layers, (stage,))


def transformers_cache_bytes(
    spec: ModelSpec, length: int, kv_dtype_name: str | None = None, *, batch: int = 1, held: Held = "tensors"
) -> int:
    """Bytes transformers' cache holds for ``batch`` sequences of ``length`` tokens each."""
    return batch * transformers_cache_plan(spec, kv_dtype_name, held=held).bytes_per_sequence(length)


def _as_transformers(spec: ModelSpec, name: str, dtype: DType, *, held: Held) -> LayerCache:
    """kvplan's ideal (latent-MLA, tp=1) cache of one layer kind with transformers' differences applied."""
    cache = layer_cache(spec, name, dtype)
    kind = spec.kind(name)
    if kind.kv_shared or kind.type == "none":
        return cache  # cache_utils.DummyLayer: KV-sharing consumers and attention-free layers hold nothing
    if kind.type in ("sliding", "chunked"):
        # cache_utils.DynamicSlidingWindowLayer.update keeps full_key_states[:, :, -sliding_window + 1:],
        # a view of the concatenation (the whole prompt after prefill, window tokens after a decode step)
        window = cache.max_tokens
        return replace(cache, max_tokens={"tensors": window - 1, "decode": window, "prefill": None}[held])
    if kind.type == "recurrent":
        return replace(cache, state_bytes=recurrent_state_bytes(kind, dtype))
    return cache


def recurrent_state_bytes(kind: LayerKind, dtype: DType) -> int:
    """Conv state ``[channels, d_conv]`` in the model's dtype plus the recurrent state in float32.

    The conv state is a slice of the layer's activations, so it has the dtype the model runs in
    (``dtype``); a spec's ``state_dtype`` does not change what transformers allocates.
    """
    conv_ideal, ssm = recurrent_state_elements(kind)
    channels = conv_ideal // (kind.d_conv - 1)
    # cache_utils.LinearAttentionLayer.update_conv_state keeps the last conv_kernel_size columns.
    conv = channels * kind.d_conv
    return dtype.nbytes(conv) + KV_DTYPES[RECURRENT_STATE_DTYPE].nbytes(ssm)

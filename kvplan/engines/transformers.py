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
   kernels' state dtype is not checked here. Falcon-H1's Mamba2 mixer beside each attention layer
   (``LinearAttentionAndFullAttentionLayer``) follows the same rule; MiniMax's lightning layers
   (``MiniMaxCache.linear_cache``) keep one ``[heads, d, d]`` state in the model's dtype and no conv.
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

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, get_args

from kvplan.engines.base import Budget, Engine, Settings, plain_budget
from kvplan.errors import InvalidInput
from kvplan.hardware import GPU
from kvplan.memory import CachePlan, LayerCache, StagePlan, element_size, layer_cache, recurrent_state_elements
from kvplan.params import Sharding
from kvplan.spec import LayerKind, ModelSpec
from kvplan.units import GIB, KV_DTYPES, DType

if TYPE_CHECKING:
    pass

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
    if kind.parallel is not None:
        # cache_utils.LinearAttentionAndFullAttentionLayer (Falcon-H1): the K/V of a DynamicLayer and the
        # conv / recurrent states of a LinearAttentionLayer in one layer, each kept as described above
        cache = replace(cache, state_bytes=recurrent_state_bytes(kind.parallel, dtype))
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
    if kind.variant == "lightning":
        # MiniMaxCache.linear_cache: attn_weights_inter [batch, heads, head_dim, head_dim] in the dtype of
        # value_states, i.e. the model's (modeling_minimax.py MiniMaxLightningAttention.forward); no conv state.
        return dtype.nbytes(ssm)
    channels = conv_ideal // (kind.d_conv - 1)
    # cache_utils.LinearAttentionLayer.update_conv_state keeps the last conv_kernel_size columns.
    conv = channels * kind.d_conv
    return dtype.nbytes(conv) + KV_DTYPES[RECURRENT_STATE_DTYPE].nbytes(ssm)


# ---- the engine: one process running model.generate -----------------------------------------------

CONTEXT = round(0.5 * GIB)  # gpus.md: CUDA context ~300-600 MiB per process
FORWARD_TOKENS = 2048  # tokens of the forward pass whose activations are budgeted, unless given


def forward_activation(spec: ModelSpec, tokens: int) -> int:
    """A plain eager forward pass: fp32 logits for every token + the MLP intermediate in 16 bit."""
    inter = spec.intermediate_size or (spec.moe.expert_intermediate_size * spec.moe.experts_per_token)
    return 4 * tokens * spec.vocab_size + 2 * tokens * (3 * inter + 4 * spec.hidden_size)


@dataclass(frozen=True)
class Transformers(Engine):
    def ssm_state_dtype(self, spec: ModelSpec, kind: LayerKind, settings: Settings) -> str | None:
        """:data:`RECURRENT_STATE_DTYPE`: transformers' cache holds the state its mixer returns, float32 whatever the
        config's mamba_ssm_cache_dtype / mamba_ssm_dtype say (no modeling file reads either key in 5.24.0;
        tests/test_against_transformers.py pins the dtype its skeletons' caches hold)."""
        return RECURRENT_STATE_DTYPE

    def attention_spans(self, spec: ModelSpec, settings: Settings) -> dict[str, int | None] | None:
        """A chunked layer attends over all its cache hands back, the chunk masked: transformers 5.24.0 caches it in
        a ``DynamicSlidingWindowLayer`` with ``sliding_window = attention_chunk_size`` (cache_utils.py
        ``DYNAMIC_LAYER_TYPE_MAPPING``: "sliding and chunked are the same in how they should behave, only the mask
        differs"), whose ``update`` returns the kept ``chunk - 1`` tokens plus the new ones, and the chunk is a mask
        (masking_utils ``chunked_overlay``) that the SDPA / eager kernels apply over every key they are given. So a
        decode reads ``min(L, C)`` keys, a sliding span of ``C``. Sliding layers read their window, as their cache
        keeps only it. Not modelled: the prompt's forward over an explicit mask tensor (every pair of the prompt
        computed and masked where the kernel cannot skip)."""
        spans: dict[str, int | None] = {n: k.chunk for n, k in spec.layers.kinds.items() if k.type == "chunked"}
        return spans or None

    def cache_plan(self, spec: ModelSpec, *, kv_dtype_name: str, tp: int, pp: int, mla: str = "latent") -> CachePlan:
        return transformers_cache_plan(spec, kv_dtype_name)

    def budget(
        self,
        spec: ModelSpec,
        *,
        settings: Settings,
        total: int,
        weights: int,
        tp: int,
        pp: int,
        gpu: GPU,
        sharding: Sharding | None = None,
    ) -> Budget:
        o = settings.overrides
        tokens = settings.max_num_batched_tokens or FORWARD_TOKENS
        act = o.activation_bytes if o.activation_bytes is not None else forward_activation(spec, tokens)
        ctx = o.non_torch_bytes if o.non_torch_bytes is not None else CONTEXT
        return plain_budget(total=total, weights=weights, activation=act, context=ctx, overhead=o.overhead_bytes,
                            rule=self.budget_rule)  # fmt: skip

    # No launch line: transformers is a library called from a script, not a server started with flags.


ENGINE = Transformers(
    name="transformers",
    release=TRANSFORMERS_VERSION,
    version=f"{TRANSFORMERS_VERSION} (DynamicCache)",
    paging="what DynamicCache keeps (kvplan.engines.transformers): window-1 tokens on SWA layers, fp32 states",
    budget_rule="device memory - weights - activation peak - CUDA context",
    kv_dtypes=("bf16", "fp16", "fp32"),
    kv_dtype_flags={"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"},
    tp_needs_kv_divisor=False,
    supports_tp=False,
    # No nvfp4: transformers 5.24 quantizers/quantizer_nvfp4.py NVFP4HfQuantizer.validate_environment refuses
    # pre-quantized checkpoints ("Loading pre-quantized NVFP4 checkpoints is not supported yet").
    # transformers/quantizers/auto.py: finegrained fp8, mxfp4, awq, gptq, compressed-tensors, bitsandbytes;
    # BitsAndBytesConfig(load_in_4bit / load_in_8bit) quantizes a 16-bit checkpoint at load.
    online_weight_dtypes=("nf4", "int8"),
    serves_http=False,  # a library, not a server: no health endpoint to probe
    settings_read=("max_num_batched_tokens",),  # the forward pass's tokens, for its activation peak
)
VERSIONS = (ENGINE,)

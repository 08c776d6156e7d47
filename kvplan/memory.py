"""KV-cache bytes: the per-layer cache plan and what it costs at a length, a batch, a TP/PP split.

The plan is the estimator's one source of truth. Each layer caches, per token it holds,
``bytes_per_token`` bytes on one tensor-parallel rank; it holds at most ``max_tokens`` tokens
(a sliding window or an attention chunk; ``None`` means every token) and a fixed
``state_bytes`` per sequence (recurrent layers). Layers of a stage are grouped by kind, so a
length query is a handful of multiply-adds whatever the depth.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from kvplan.checks import check_degrees
from kvplan.errors import InvalidInput
from kvplan.params import pipeline_stages
from kvplan.spec import LayerKind, ModelSpec, ceil_div
from kvplan.units import KV_DTYPES, DType, canonical_dtype, kv_dtype

MlaLayout = Literal["latent", "expanded"]


@dataclass(frozen=True)
class LayerCache:
    """What one layer of one kind caches on one tensor-parallel rank."""

    kind: str
    type: str
    bytes_per_token: int
    max_tokens: int | None
    state_bytes: int

    def bytes_at(self, length: int) -> int:
        held = length if self.max_tokens is None else min(length, self.max_tokens)
        return self.bytes_per_token * held + self.state_bytes

    def read_at(self, length: int) -> int:
        """Bytes the decode step of a sequence at ``length`` tokens reads: what it holds (:meth:`bytes_at`), but for
        a chunked layer only the current chunk's ``(length - 1) mod chunk + 1`` tokens (:func:`kvplan.attention.
        decode_span`), however much of the finished chunk the cache still keeps."""
        if self.type != "chunked" or self.max_tokens is None:
            return self.bytes_at(length)
        return self.bytes_per_token * ((length - 1) % self.max_tokens + 1) + self.state_bytes


@dataclass(frozen=True)
class StagePlan:
    """One pipeline stage: ``(count, cache)`` per layer kind present in it."""

    groups: tuple[tuple[int, LayerCache], ...]

    def bytes_at(self, length: int) -> int:
        return sum(n * c.bytes_at(length) for n, c in self.groups)

    @property
    def bytes_per_token(self) -> int:
        return sum(n * c.bytes_per_token for n, c in self.groups)


@dataclass(frozen=True)
class CachePlan:
    """The per-layer cache plan of a model under a KV dtype and a TP/PP split."""

    model: str
    kv_dtype: str
    tp: int
    pp: int
    layers: tuple[LayerCache, ...]  # one per layer, index order, one rank's share
    stages: tuple[StagePlan, ...]

    @property
    def bytes_per_token(self) -> int:
        """Bytes one more token costs across the whole model (all ranks), before any window caps it."""
        return self.tp * sum(c.bytes_per_token for c in self.layers)

    def bytes_per_sequence(self, length: int) -> int:
        """One sequence of ``length`` tokens, summed over every GPU (replicated heads count per GPU)."""
        return self.tp * sum(s.bytes_at(length) for s in self.stages)

    def bytes_per_sequence_per_gpu(self, length: int) -> int:
        """One sequence on the busiest GPU (largest pipeline stage, one TP rank)."""
        return max(s.bytes_at(length) for s in self.stages)

    @property
    def state_bytes(self) -> int:
        return self.tp * sum(c.state_bytes for c in self.layers)


def element_size(dtype: str) -> DType:
    return kv_dtype(dtype)


def layer_cache(spec: ModelSpec, name: str, dtype: DType, *, tp: int = 1, mla: MlaLayout = "latent") -> LayerCache:
    """The cache of one layer of kind ``name`` on one TP rank."""
    kind = spec.kind(name)
    if kind.type == "recurrent":
        return LayerCache(name, kind.type, 0, None, recurrent_state_bytes(spec, kind, tp=tp))
    if kind.type == "none" or kind.kv_shared:
        return LayerCache(name, kind.type, 0, None, 0)  # no attention, or K/V read from an earlier layer
    per_token = _token_bytes(spec, kind, dtype, tp=tp, mla=mla)
    if kind.type == "cross":
        # K/V of the request's vision tokens, a fixed size per sequence (transformers MllamaTextCrossAttention:
        # cache.update(k_proj(cross_attention_states)) once per image; text tokens add nothing)
        return LayerCache(name, kind.type, 0, None, per_token * kind.cross_tokens)
    cap = kind.window if kind.type == "sliding" else kind.chunk if kind.type == "chunked" else None
    # Falcon-H1: the Mamba2 mixer beside the attention keeps its own state in the same layer
    state = recurrent_state_bytes(spec, kind.parallel, tp=tp) if kind.parallel is not None else 0
    return LayerCache(name, kind.type, per_token, cap, state)


def attended_token_bytes(spec: ModelSpec, name: str, dtype: DType, *, tp: int = 1) -> int:
    """K/V bytes per token one rank's attention reads in a layer of kind ``name``: what it caches, or, for a layer
    that attends with an earlier layer's K/V (``kv_shared``: Gemma 3n's last layers, transformers
    ``kv_sharing_modes`` "reuse"), what that layer caches, of the same head layout."""
    kind = spec.kind(name)
    if kind.kv_shared and kind.type in ("full", "sliding", "chunked"):
        return _token_bytes(spec, kind, dtype, tp=tp, mla="latent")
    return layer_cache(spec, name, dtype, tp=tp).bytes_per_token


def _token_bytes(spec: ModelSpec, kind: LayerKind, dtype: DType, *, tp: int, mla: MlaLayout) -> int:
    return _kv_token_bytes(spec, kind, dtype, tp=tp, mla=mla) + indexer_token_bytes(kind, dtype)


def indexer_token_bytes(kind: LayerKind, dtype: DType) -> int:
    """DSA indexer key cache: one single-head key of ``index_head_dim`` per token, replicated on every
    rank (transformers cache_utils.DynamicIndexedLayer: indexer_keys [batch, seq, index_head_dim])."""
    return dtype.nbytes(kind.index_head_dim) if kind.index_head_dim else 0


# DeepSeek Sparse Attention's cache rows as DeepSeek's own kernels store them, which every engine runs for it:
# * the indexer's key: index_head_dim fp8 values plus one float32 scale per 128 (vLLM
#   vllm/model_executor/models/deepseek_v2.py DeepseekV32IndexerCache, head_size index_head_dim + index_head_dim //
#   quant_block_size x 4, uint8 whatever --kv-cache-dtype says; the key DeepGEMM's fp8_paged_mqa_logits reads): 132 B
#   for DeepSeek-V3.2. SGLang's log agrees: its fp8 NSA pool holds 43.67 GiB for 975,424 tokens = 48,072 B a token
#   over 61 layers = 788 = 656 + 132 (shared/reference/engine_logs.json entry 16, sgl-project/sglang PR #11309);
# * the main latent row in fp8: FlashMLA's "FP8 with scale" format, 656 B a token: 512 fp8 latent values, 4 float32
#   scales (one per 128), the 64 RoPE values kept in bf16 (vLLM vllm/v1/attention/backends/mla/flashmla_sparse.py,
#   module note and FlashMLASparseBackend.get_kv_cache_shape: "custom storage format is 656 bytes", the copy read
#   through the code index, id 29353671433). vLLM turns any fp8 --kv-cache-dtype into it for DeepSeek-V3.2
#   (vllm/model_executor/models/config.py DeepseekV32ForCausalLM.verify_and_update_config: cache_dtype starting
#   "fp8" -> "fp8_ds_mla"); a 16-bit cache keeps the plain 576-wide row.
DSA_SCALE_BLOCK = 128  # values per float32 scale, in both rows
DSA_SCALE_BYTES = 4  # float32


# The FP4 indexer key (LayerKind.index_key_dtype "fp4"): index_head_dim E2M1 values two a byte and one UE8M0 exponent
# byte per 32 (TensorRT-LLM WindowBlockManager::createIndexerKCachePools, PR #13340: data index_head_dim / 2 bytes,
# scales packed four to an int32, index_head_dim / 128 x 4 bytes): 64 + 4 = 68 B at index_head_dim 128.
DSA_FP4_SCALE_BLOCK = 32  # values per UE8M0 exponent (one byte each)


def dsa_index_key_bytes(kind: LayerKind) -> int:
    """Bytes of one token's indexer key in the engines' cache (fp8 values + float32 scales, or the FP4 key where the
    engine runs it, ``kind.index_key_dtype``); 0 without an indexer."""
    d = kind.index_head_dim
    if not d:
        return 0
    if kind.index_key_dtype == "fp4":
        return ceil_div(d, 2) + ceil_div(d, DSA_FP4_SCALE_BLOCK)
    return d + ceil_div(d, DSA_SCALE_BLOCK) * DSA_SCALE_BYTES


def dsa_latent_row_bytes(kind: LayerKind, dtype: DType) -> int:
    """Bytes of one token's MLA row (latent + RoPE key) as the sparse kernels read it: FlashMLA's fp8 format for a
    1-byte float cache (the latent in fp8 with its scales, the RoPE part in bf16), else the plain row at ``dtype``."""
    rank, rope = kind.kv_lora_rank, kind.qk_rope_head_dim
    if dtype.bytes_per_element == 1 and dtype.name.startswith("fp8"):
        return rank + ceil_div(rank, DSA_SCALE_BLOCK) * DSA_SCALE_BYTES + 2 * rope
    return dtype.nbytes(rank + rope)


def _kv_token_bytes(spec: ModelSpec, kind: LayerKind, dtype: DType, *, tp: int, mla: MlaLayout) -> int:
    if kind.type == "mla":
        if mla == "latent":
            # One compressed latent + the decoupled RoPE key, shared by all heads, replicated on
            # every rank (DeepSeek-V2 report Table 1; vLLM MLA backends).
            return dtype.nbytes(kind.kv_lora_rank + kind.qk_rope_head_dim)
        heads = ceil_div(spec.num_attention_heads, tp)
        vd = kind.v_head_dim or spec.v_head_dim or kind.qk_nope_head_dim
        k = heads * (kind.qk_nope_head_dim + kind.qk_rope_head_dim)
        return dtype.nbytes(k) + dtype.nbytes(heads * vd)
    heads = max(1, spec.kv_heads_of(kind) // tp)  # replicated when tp exceeds the KV heads
    # k: [heads, k_head_dim], v: [heads, v_head_dim] per token
    return dtype.nbytes(heads * spec.k_head_dim_of(kind)) + dtype.nbytes(heads * spec.v_head_dim_of(kind))


def recurrent_state_elements(kind: LayerKind) -> tuple[int, int]:
    """``(conv_state, ssm_state)`` elements per sequence for one recurrent layer (one rank: tp=1)."""
    if kind.variant == "mamba":
        # conv keeps the last d_conv-1 inputs of each channel; SSM state is [d_inner, d_state].
        return kind.d_inner * (kind.d_conv - 1), kind.d_inner * kind.d_state
    if kind.variant == "mamba2":
        conv_dim = kind.d_inner + 2 * kind.n_groups * kind.d_state
        return conv_dim * (kind.d_conv - 1), kind.d_inner * kind.d_state
    if kind.variant == "lightning":
        # MiniMax lightning attention: the running sum of K^T V per head, [heads, head_k_dim, head_v_dim]
        # (transformers modeling_minimax.py MiniMaxLightningAttention attn_weights_inter); no conv.
        return 0, kind.n_heads * kind.head_k_dim * kind.head_v_dim
    key_dim, value_dim = kind.n_k_heads * kind.head_k_dim, kind.n_heads * kind.head_v_dim
    # Gated DeltaNet: conv over q,k,v channels; state [v_heads, head_k_dim, head_v_dim].
    return (2 * key_dim + value_dim) * (kind.d_conv - 1), kind.n_heads * kind.head_k_dim * kind.head_v_dim


def recurrent_state_bytes(spec: ModelSpec, kind: LayerKind, *, tp: int = 1) -> int:
    """One sequence's state in one recurrent layer on one rank: the conv state at :func:`_state_dtype`, the SSM
    (temporal) state at :func:`_ssm_state_dtype` (the checkpoint's ``ssm_state_dtype`` where it states one)."""
    conv, ssm = recurrent_state_elements(kind)
    conv_dtype, ssm_dtype = KV_DTYPES[_state_dtype(spec, kind)], KV_DTYPES[_ssm_state_dtype(spec, kind)]
    return conv_dtype.nbytes(ceil_div(conv, tp)) + ssm_dtype.nbytes(ceil_div(ssm, tp))


def ssm_state_part(spec: ModelSpec, kind: LayerKind, *, tp: int = 1) -> tuple[str, int]:
    """The SSM (temporal) part of :func:`recurrent_state_bytes`: its dtype and bytes for one sequence on one rank."""
    name = _ssm_state_dtype(spec, kind)
    return name, KV_DTYPES[name].nbytes(ceil_div(recurrent_state_elements(kind)[1], tp))


def _state_dtype(spec: ModelSpec, kind: LayerKind) -> str:
    name = canonical_dtype(kind.state_dtype or spec.dtype)
    return name if name in KV_DTYPES else "bf16"


def _ssm_state_dtype(spec: ModelSpec, kind: LayerKind) -> str:
    """The SSM state's dtype: the kind's ``ssm_state_dtype`` (validated by the spec), else the conv state's."""
    return canonical_dtype(kind.ssm_state_dtype) if kind.ssm_state_dtype else _state_dtype(spec, kind)


def check_parallel(spec: ModelSpec, *, tp: int, pp: int) -> None:
    """Reject splits that cannot exist, the one rule every command and engine asks.

    tp must divide the query heads and, for every attention kind with KV heads, divide them or be a
    multiple of them (vLLM QKVParallelLinear: KV heads are split when kv % tp == 0, replicated when
    tp % kv == 0, model_executor/layers/linear.py; SGLang and TensorRT-LLM shard the same way). Any
    other split would leave ranks with unequal heads, which no engine builds. pp must not exceed
    the layers.
    """
    check_degrees(tp=tp, pp=pp)
    if spec.num_attention_heads % tp:
        raise InvalidInput(
            f"tensor parallel size {tp} does not divide {spec.name}'s {spec.num_attention_heads} "
            f"attention heads; use a divisor such as {_divisors(spec.num_attention_heads)}"
        )
    _check_kv_heads(spec, tp)
    if pp > spec.num_layers:
        raise InvalidInput(f"pipeline parallel size {pp} exceeds {spec.name}'s {spec.num_layers} layers")


def _check_kv_heads(spec: ModelSpec, tp: int) -> None:
    for name in spec.kind_counts:
        kind = spec.kind(name)
        if kind.type in ("mla", "recurrent"):
            continue  # the MLA latent is replicated whole; recurrent state splits by channel
        kv = spec.kv_heads_of(kind)
        if kv % tp and tp % kv:
            raise InvalidInput(
                f"tensor parallel size {tp} neither divides nor is a multiple of {spec.name}'s {kv} KV heads; "
                f"engines split KV heads evenly or replicate them, so use a divisor or multiple such as "
                f"{_kv_splits(spec.num_attention_heads, kv)}"
            )


def _kv_splits(heads: int, kv: int) -> str:
    return ", ".join(str(d) for d in range(1, 17) if heads % d == 0 and (kv % d == 0 or d % kv == 0))


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in (1, 2, 4, 8, 16) if n % d == 0)


def cache_plan(
    spec: ModelSpec | str, kv_dtype_name: str | None = None, *, tp: int = 1, pp: int = 1, mla: MlaLayout = "latent"
) -> CachePlan:
    """Build the per-layer cache plan. ``spec`` may be a name; ``kv_dtype_name`` defaults to the model's dtype."""
    from kvplan.checks import as_spec

    spec = as_spec(spec)
    check_parallel(spec, tp=tp, pp=pp)
    if mla not in ("latent", "expanded"):
        raise InvalidInput(f"invalid MLA layout {mla!r}; expected 'latent' or 'expanded'")
    name = kv_dtype_name or spec.dtype
    dtype = element_size(name)
    by_kind = {k: layer_cache(spec, k, dtype, tp=tp, mla=mla) for k in spec.kind_counts}
    layers = tuple(by_kind[k] for k in spec.layer_kind_names)
    names = spec.layer_kind_names
    stages = []
    for stage in pipeline_stages(spec.num_layers, pp):
        counts = spec.kind_counts if pp == 1 else Counter(names[stage.start : stage.stop])
        stages.append(StagePlan(tuple((n, by_kind[k]) for k, n in counts.items())))
    return CachePlan(spec.name, dtype.name, tp, pp, layers, tuple(stages))


def with_token_bytes(plan: CachePlan, bytes_of: Callable[[LayerCache], int]) -> CachePlan:
    """``plan`` with every layer's bytes per token set to ``bytes_of(layer)``: an engine's own rounding of a
    block-scaled format (the 4-bit KV caches) in place of the engine-neutral figure."""

    def swap(c: LayerCache) -> LayerCache:
        return replace(c, bytes_per_token=bytes_of(c))

    stages = tuple(StagePlan(tuple((n, swap(c)) for n, c in st.groups)) for st in plan.stages)
    return replace(plan, layers=tuple(swap(c) for c in plan.layers), stages=stages)


def head_layout(spec: ModelSpec, c: LayerCache, *, tp: int) -> tuple[int, int, int] | None:
    """``(KV heads, K head_dim, V head_dim)`` one rank stores per token of layer ``c`` for the kinds holding per-head
    K and V (full, sliding, chunked attention); None for the others (MLA, recurrent, cross-attention, none)."""
    if c.type not in ("full", "sliding", "chunked") or c.bytes_per_token == 0:
        return None
    kind = spec.kind(c.kind)
    return max(1, spec.kv_heads_of(kind) // tp), spec.k_head_dim_of(kind), spec.v_head_dim_of(kind)


def kv_bytes_per_sequence(
    spec: ModelSpec | str, length: int, kv_dtype_name: str | None = None, *, tp: int = 1, pp: int = 1
) -> int:
    """KV cache of one sequence of ``length`` tokens in the ideal layout, all GPUs together.

    ``length`` follows the CLI's rule (1 token to 1Gi tokens; ``"4k"`` is read too).
    """
    from kvplan.checks import check_length

    return cache_plan(spec, kv_dtype_name, tp=tp, pp=pp).bytes_per_sequence(check_length(length))


def kv_bytes_total(
    spec: ModelSpec | str, length: int, batch: int, kv_dtype_name: str | None = None, *, tp: int = 1, pp: int = 1
) -> int:
    """KV cache of ``batch`` sequences of ``length`` tokens each."""
    from kvplan.checks import check_batch

    return check_batch(batch) * kv_bytes_per_sequence(spec, length, kv_dtype_name, tp=tp, pp=pp)

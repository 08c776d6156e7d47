"""SGLang: token slots (page 1) in one pool sized by mem_fraction_static; `sglang.launch_server`.

Rules read in python/sglang/srt/model_executor/model_runner.py (profile_max_num_token,
set_num_token_hybrid), its KV-cache configurator (_handle_max_mamba_cache, _resolve_max_num_reqs),
python/sglang/srt/configs/model_config.py (is_hybrid_swa_model) and python/sglang/srt/server_args.py
(_handle_gpu_memory_settings), SGLang 0.5.x (main, 2026):

- one token pool over every layer: a sliding-window model outside SGLang's hybrid-SWA list
  (Mistral, Gemma 2/3) keeps every token on every layer;
- the hybrid SWA pool only for the architectures SGLang lists (Llama 4's chunked layers, gpt-oss);
- hybrid recurrent models (Qwen3-Next, Jamba, Nemotron-H): the memory left after the weights is
  split between the Mamba state pool and the KV pool by mamba_full_memory_ratio, the KV cell
  counts the attention layers only, and running requests are capped by the Mamba slots.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from kvplan.engines import vllm
from kvplan.engines.base import (
    NUM,
    Budget,
    DecodeAttention,
    Engine,
    FrontEnd,
    HostLoop,
    Layout,
    LentFits,
    LogFacts,
    OutputReserve,
    Overlap,
    Settings,
    check_moe_parallel,
    mla_kv_b_bytes,
    number,
    paged_bytes,
    paged_prefix_bytes,
    quantization_flag,
    row,
    weighted_mean,
)
from kvplan.errors import InvalidInput
from kvplan.failures import CUDA_ERROR_OOM, NO_KV_MEMORY, NUMBER, TORCH_OOM, Pattern
from kvplan.hardware import GPU
from kvplan.memory import (
    CachePlan,
    LayerCache,
    StagePlan,
    dsa_index_key_bytes,
    dsa_latent_row_bytes,
    element_size,
    head_layout,
    recurrent_state_elements,
    with_token_bytes,
)
from kvplan.params import Sharding
from kvplan.spec import LayerKind, ModelSpec, ceil_div, pipeline_stages
from kvplan.units import GIB, KV_DTYPES, MIB

if TYPE_CHECKING:
    from kvplan.capacity import CapacityResult

# server_args.py swa_full_tokens_ratio default (SGLang 0.5.x): SWA-layer tokens per full-layer token.
SWA_FULL_TOKENS_RATIO = 0.8

# --dist-init-addr HOST:PORT: the port is the user's choice; 5000 as in SGLang's multi-node examples.
DIST_INIT_PORT = 5000
# python/sglang/srt/configs/model_config.py is_hybrid_swa_model: Llama4ForConditionalGeneration,
# GptOssForCausalLM, MiMoV2Flash*, Step3p5*, Gemma4* (main, 2026) -- as kvplan families (HF model_type).
# Gemma 2/3 and Mistral are not listed: their sliding layers share the one token pool.
HYBRID_SWA_FAMILIES = frozenset({"llama4", "gpt_oss", "mimo_v2_flash", "step3p5", "gemma4"})
# Model families whose SGLang model file builds its attention without the checkpoint's sliding window, so the kernels
# attend to every cached token (Sglang.attention_spans): Mistral (models/mistral.py is models/llama.py's
# LlamaForCausalLM, whose LlamaAttention passes no sliding_window_size; read @00239548, @bf7a0e23, @00b08c49).
NO_WINDOW_FAMILIES = frozenset({"mistral"})

# server_args.py mamba_full_memory_ratio default 0.9: Mamba pool / KV pool of the memory left after weights.
MAMBA_FULL_MEMORY_RATIO = 0.9
# KV-cache configurator MAMBA_CACHE_SIZE_MAX_RUNNING_REQUESTS_RATIO = 3 (radix cache on, no extra buffer):
# running requests <= Mamba slots // 3.
MAMBA_SLOTS_PER_RUNNING_REQUEST = 3
# The SSM (temporal) state's dtype: python/sglang/srt/configs/mamba_utils.py mamba2_state_dtype(config) @02e208de
# (read through the code index): SGLANG_MAMBA_SSM_DTYPE (set from ServerArgs.mamba_ssm_dtype, --mamba-ssm-dtype, only
# when given: handle_environment_variables; not modelled), else the
# config's mamba_ssm_dtype (config.text_config's for VL configs), else "float32"; the conv state is
# SGLANG_MAMBA_CONV_DTYPE, default bfloat16 (kvplan: the model's dtype, bf16 for every bundled hybrid). kvplan imports
# mamba_ssm_dtype for the Qwen3.5 families (kvplan.hf._SSM_DTYPE_KEYS); Nemotron-H's config key,
# mamba_ssm_cache_dtype, is not the one SGLang reads.
MAMBA_SSM_DTYPE = "fp32"
SSM_DTYPE_KEY_FAMILIES = frozenset({"qwen3_5", "qwen3_5_moe"})  # whose ssm_state_dtype came from mamba_ssm_dtype


def ssm_state_dtype_kept(spec: ModelSpec, kind: LayerKind) -> str:
    """The dtype SGLang keeps ``kind``'s SSM state in (the comment above MAMBA_SSM_DTYPE)."""
    if spec.family in SSM_DTYPE_KEY_FAMILIES and kind.ssm_state_dtype:
        return kind.ssm_state_dtype
    return MAMBA_SSM_DTYPE


# _resolve_max_num_reqs: estimated = token_capacity / context_len x 512, clamped to [2048, 4096].
MAX_RUNNING_REQUESTS_FLOOR, MAX_RUNNING_REQUESTS_CEILING = 2048, 4096

# Free memory at start = CUDA total - context - NCCL. sglang-03 (H100, TP1): 63.48 + 15.11 = 78.59
# of 79.19 GiB -> 0.60 GiB; sglang-01 (L4, TP4): 21.63 GiB free of ~22.04 -> ~0.41 GiB more at TP4.
CONTEXT = round(0.60 * GIB)
NCCL = round(0.41 * GIB)


@dataclass(frozen=True)
class HybridSwaLayout(Layout):
    """SGLang's hybrid SWA pool: full-attention layers and SWA layers hold separate token pools."""

    swa_full_tokens_ratio: float = SWA_FULL_TOKENS_RATIO

    def sglang_swa_tokens(self, available: int) -> tuple[int, int, int]:
        """``(full-layer tokens, SWA-layer tokens, window)``.

        model_runner.set_num_token_hybrid: the tokens max_total_num_tokens x num_layers are split
        so that swa_tokens = full_tokens x swa_full_tokens_ratio (default 0.8, server_args.py).
        """
        per_token = self.stage.bytes_per_token
        layers = sum(n for n, _ in self.stage.groups)
        swa = sum(n for n, c in self.stage.groups if c.max_tokens is not None)
        window = max(c.max_tokens for _, c in self.stage.groups if c.max_tokens is not None)
        total = (available // per_token // self.block_tokens * self.block_tokens) * layers
        full = int(total / (self.swa_full_tokens_ratio * swa + (layers - swa)))
        return full, int(full * self.swa_full_tokens_ratio), window

    def fits(self, available: int, *, batch: int, length: int) -> bool:
        full, swa, window = self.sglang_swa_tokens(available)
        return batch * length <= full and batch * min(length, window) <= swa

    def max_sequences(self, available: int, length: int) -> int:
        full, swa, window = self.sglang_swa_tokens(available)
        return min(full // length, swa // min(length, window))

    def pool_tokens(self, available: int) -> int:
        return self.sglang_swa_tokens(available)[0]  # the full-attention layers' pool

    def pool_bytes(self, available: int, *, sequences: int, length: int) -> int:
        full, swa, _ = self.sglang_swa_tokens(available)
        return sum(n * c.bytes_per_token * (full if c.max_tokens is None else swa) for n, c in self.stage.groups)

    def reported_concurrency(self, available: int, length: int) -> float:
        full, swa, window = self.sglang_swa_tokens(available)
        return min(full / length, swa / min(length, window))

    def expected_concurrency(self, available: int, lengths: list[int], weights: list[float]) -> float:
        full, swa, window = self.sglang_swa_tokens(available)
        mean_full = weighted_mean(lengths, weights)
        mean_swa = weighted_mean([min(n, window) for n in lengths], weights)
        return min(full / mean_full, swa / mean_swa)

    def settings(self) -> dict[str, Any]:
        return {"swa_full_tokens_ratio": self.swa_full_tokens_ratio}


@dataclass(frozen=True)
class UnifiedSwaLayout(Layout):
    """A hybrid-SWA architecture run with ``--disable-hybrid-swa-memory`` (server_args.py, store_true: "Disable the
    hybrid SWA memory"; model_config.py ``is_hybrid_swa = is_hybrid_swa_model(...) and not disable_hybrid_swa``): one
    token pool, every layer keeping every token. Echoes the flag, so the launch line repeats it."""

    def settings(self) -> dict[str, Any]:
        return {"disable_hybrid_swa_memory": True}


@dataclass(frozen=True)
class MambaHybridLayout(Layout):
    """A hybrid recurrent model: a Mamba state pool of whole-request slots beside a KV pool whose cell
    holds the attention layers only (``stage`` is the attention layers; the state is per request)."""

    state_bytes: int = 0  # one request's recurrent state over the stage's recurrent layers, one rank
    mamba_ratio: float = MAMBA_FULL_MEMORY_RATIO
    context_len: int = 0  # the server's context_len (the model's, unless --context-length)

    def split(self, available: int) -> tuple[int, int]:
        """``(Mamba slots, KV tokens)``: _handle_max_mamba_cache gives the Mamba pool rest x r / (1 + r),
        whole requests of state; the KV pool is what is left, in cells of the attention layers."""
        slots = int(available * self.mamba_ratio / (1 + self.mamba_ratio)) // self.state_bytes
        kv = available - slots * self.state_bytes
        per_token = self.stage.bytes_per_token
        return slots, (kv // per_token // self.block_tokens * self.block_tokens if per_token else 0)

    def running_cap(self, available: int) -> int:
        """_resolve_max_num_reqs: min(estimated, tokens // 2, Mamba slots // 3)."""
        slots, tokens = self.split(available)
        estimated = int(tokens / max(self.context_len, 1) * 512)
        estimated = max(min(estimated, MAX_RUNNING_REQUESTS_CEILING), MAX_RUNNING_REQUESTS_FLOOR)
        return min(estimated, tokens // 2, slots // MAMBA_SLOTS_PER_RUNNING_REQUEST)

    def _tokens_for(self, length: int) -> int:
        return ceil_div(length, self.block_tokens) * self.block_tokens

    def fits(self, available: int, *, batch: int, length: int) -> bool:
        _, tokens = self.split(available)
        return batch * self._tokens_for(length) <= tokens and batch <= self.running_cap(available)

    def max_sequences(self, available: int, length: int) -> int:
        _, tokens = self.split(available)
        return min(tokens // self._tokens_for(length), self.running_cap(available))

    def pool_tokens(self, available: int) -> int:
        return self.split(available)[1]

    def pool_bytes(self, available: int, *, sequences: int, length: int) -> int:
        slots, tokens = self.split(available)
        return tokens * self.stage.bytes_per_token + slots * self.state_bytes

    def reported_concurrency(self, available: int, length: int) -> float:
        return min(self.pool_tokens(available) / length, float(self.running_cap(available)))

    def expected_concurrency(self, available: int, lengths: list[int], weights: list[float]) -> float:
        mean = weighted_mean([self._tokens_for(n) for n in lengths], weights)
        return min(self.pool_tokens(available) / mean, float(self.running_cap(available)))

    def units_for(self, batch: int, length: int) -> int:
        return batch * (paged_bytes(self.stage, length, block=self.block_tokens) + self.state_bytes)

    def settings(self) -> dict[str, Any]:
        return {"mamba_full_memory_ratio": self.mamba_ratio}


# MLA page size. SGLang 0.5.x (main 2025-26) server_args.py, read in several stored copies through the code index:
# _handle_model_specific_adjustments sets attention_backend = "trtllm_mla" ("Use trtllm_mla as attention backend on
# sm100 for DeepseekV3ForCausalLM") when the architecture is DeepseekV3ForCausalLM without the DSA indexer, the GPU is
# SM100 and no attention backend was given; _handle_attention_backend_compatibility (later page_size resolution in
# the newest copies) then turns any page_size outside [32, 64] into 64 ("TensorRT-LLM MLA only supports page_size of
# 32 or 64, changing page_size from ... to 64") and refuses a kv_cache_dtype outside fp8_e4m3, fp4_e2m1, bf16, auto.
# Every other MLA model (DeepseekV2ForCausalLM) and every Hopper GPU take get_default_attn_backend's MLA branch:
# fa3 on Hopper, flashinfer on SM100, neither of which forces a page size, so the page stays --page-size or 1.
# (flashmla 64 and cutlass_mla 128 are forced too, but only when the user picks them: kvplan has no backend flag.)
# The MLA cell is the same under every backend (model_runner_kv_cache_mixin.py get_cell_size_per_token:
# (kv_lora_rank + qk_rope_head_dim) x layers x element size; fp8 one byte, no scale buffer), as the neutral plan has.
# Architectures as kvplan families (HF model_type): DeepSeek-V3 / V3.1 (deepseek_v3) and Kimi-K2 (kimi_k2, whose
# config.json lists architectures ["DeepseekV3ForCausalLM"]: model_specs/kimi-k2-instruct-0905.yaml).
TRTLLM_MLA_FAMILIES = frozenset({"deepseek_v3", "kimi_k2"})
TRTLLM_MLA_PAGES = (32, 64)  # the page sizes trtllm_mla keeps
TRTLLM_MLA_PAGE = 64  # what it sets any other page_size to
TRTLLM_MLA_KV = frozenset({"bf16", "fp16", "fp8", "fp8_e4m3", "fp4_e2m1"})  # kvplan names of the flags it takes


# DeepSeek Sparse Attention (DeepSeek-V3.2; SGLang calls these models "NSA"), SGLang main 2025-26 read through the code
# index (the copies' commits are named where the index gave them):
# * python/sglang/srt/configs/model_config.py is_deepseek_nsa: architecture DeepseekV3ForCausalLM,
#   DeepseekV32ForCausalLM or its NextN draft, with index_topk in the config;
# * server_args.py _handle_model_specific_adjustments (copy id 271536807): attention_backend "nsa"; on CUDA
#   page_size = 64 whatever --page-size says ("Setting page size to 64 for DeepSeek DSA"; 1 on ROCm, not modelled);
#   _set_default_nsa_kv_cache_dtype: --kv-cache-dtype auto -> fp8_e4m3 on SM >= 10, bfloat16 below, and only
#   "bfloat16"/"bf16" or "fp8_e4m3" are accepted ("DeepSeek DSA only supports bf16/bfloat16 or fp8_e4m3
#   kv_cache_dtype"); _set_default_nsa_backends: fp8 -> prefill flashmla_auto, decode flashmla_kv; bf16 -> prefill
#   flashmla_sparse, decode fa3 (Hopper) or trtllm (SM >= 10). DP attention is not forced in that copy ("DSA with TP
#   mode is active" is only a warning; an older copy forced dp = tp): kvplan takes --attention-dp as given;
# * mem_cache/memory_pool.py NSATokenToKVPool (@14c3feee and a later copy): an MLATokenToKVPool whose row is
#   kv_cache_dim wide, plus one index_k_with_scale_buffer per layer of uint8 [pages, 64 x (128 + 128 // 128 x 4)]:
#   the indexer key in fp8 with one float32 scale per 128 values, 132 B a token (index_head_dim must be 128), under
#   either KV dtype; the RoPE part "is always stored in bf16";
# * model_executor/model_runner_kv_cache_mixin.py calculate_mla_kv_cache_dim (@001ccef): for an fp8_e4m3 cache
#   (backends other than trtllm, i.e. the fp8 defaults) kv_cache_dim = 512 + 512 // 128 x 4 + 64 x 2 = 656 one-byte
#   elements, FlashMLA's fp8 row (kvplan.memory.dsa_latent_row_bytes); bf16 keeps 576 two-byte elements;
# * the same file's get_cell_size_per_token (@001ccef; mem_cache pool_configurator.py
#   DefaultPoolConfigurator._compute_cell_size in a 2026 copy, the same sum) divides the memory by
#   (kv_lora_rank + qk_rope_head_dim) x element size + 132 per layer, not by what the pool then allocates: an fp8
#   cache is counted at 576 + 132 = 708 B a layer (43,188 B a token for DeepSeek-V3.2) and allocated at 656 + 132 =
#   788 (48,068 B), so the pool holds 11% more bytes than the budget it was sized from (NsaLayout). The logged
#   pool agrees with the allocation: 975,424 tokens, "KV size: 43.67 GB" = 975,424 x 48,068 B (engine_logs.json
#   sglang-05, B200, fp8).
NSA_PAGE = 64
NSA_INDEX_HEAD_DIM = 128  # NSATokenToKVPool: "assert index_head_dim == 128"
NSA_KV_FLAGS = {"bf16": "bf16", "fp8": "fp8_e4m3", "fp8_e4m3": "fp8_e4m3"}  # kvplan name -> --kv-cache-dtype


def is_nsa(spec: ModelSpec) -> bool:
    """Whether SGLang runs ``spec`` on its NSA backend and pool (MLA layers with a DSA indexer)."""
    return any(k.type == "mla" and k.index_head_dim for k in spec.layers.kinds.values())


def _check_nsa(spec: ModelSpec, *, kv_dtype_name: str, mla: str) -> None:
    kinds = spec.layers.kinds.values()
    if any(k.index_head_dim and (k.type != "mla" or k.index_head_dim != NSA_INDEX_HEAD_DIM) for k in kinds):
        raise InvalidInput(
            f"SGLang's NSA pool holds indexer keys of {NSA_INDEX_HEAD_DIM} values beside MLA layers only; "
            f"{spec.name} has another indexer layout"
        )
    if kv_dtype_name not in NSA_KV_FLAGS:
        raise InvalidInput(
            f"SGLang runs {spec.name} (DeepSeek Sparse Attention) with --kv-cache-dtype bf16 or fp8_e4m3 only, "
            f"not {kv_dtype_name}; use --kv-dtype bf16 or fp8"
        )
    if mla != "latent":
        raise InvalidInput(f"SGLang's NSA pool holds the MLA latent for {spec.name}; use --mla latent")


def _nsa_token_bytes(spec: ModelSpec, c: LayerCache, *, kv_dtype: str, counted: bool) -> int:
    """One layer's bytes a token in SGLang's NSA pool: as allocated (``counted`` False: the latent row at
    kv_cache_dim + the 132-byte indexer key) or as get_cell_size_per_token counts it (the plain latent row)."""
    kind = spec.kind(c.kind)
    if not (c.type == "mla" and kind.index_head_dim):
        return c.bytes_per_token
    dtype = element_size(kv_dtype)
    row = dtype.nbytes(kind.kv_lora_rank + kind.qk_rope_head_dim) if counted else dsa_latent_row_bytes(kind, dtype)
    return row + dsa_index_key_bytes(kind)


@dataclass(frozen=True)
class NsaLayout(Layout):
    """SGLang's NSA pool (DeepSeek-V3.2): page 64, one token slot holding the latent row and the indexer key of
    every layer. profile_max_num_token sizes it at ``counted_bytes_per_token`` (get_cell_size_per_token's sum) while
    each token takes ``stage.bytes_per_token``; units are the bytes the allocated pool holds."""

    counted_bytes_per_token: int = 0
    kv_cache_dtype: str = "bf16"  # the --kv-cache-dtype value (auto would be fp8_e4m3 on SM >= 10)

    def pool_tokens(self, available: int) -> int:
        if not self.counted_bytes_per_token:
            return 0
        return max(0, available) // self.counted_bytes_per_token // self.block_tokens * self.block_tokens

    def pool_units(self, available: int) -> int:
        return self.pool_tokens(available) * self.stage.bytes_per_token

    def settings(self) -> dict[str, Any]:
        return {"kv_cache_dtype": self.kv_cache_dtype}


def runs_trtllm_mla(spec: ModelSpec, *, gpu: GPU) -> bool:
    """Whether SGLang picks the trtllm_mla backend for ``spec`` on ``gpu`` by default (see TRTLLM_MLA_FAMILIES)."""
    kinds = [k for k in spec.layers.kinds.values() if k.type == "mla"]
    dense = bool(kinds) and not any(k.index_head_dim for k in kinds)
    return dense and spec.family in TRTLLM_MLA_FAMILIES and vllm.COMPUTE_MAJOR.get(gpu.architecture or "") == 10


def page_size(spec: ModelSpec, *, gpu: GPU, given: int | None, kv_dtype: str) -> int:
    """The page size SGLang runs with: ``given`` (--page-size) or 1, except where trtllm_mla runs (32 or 64 kept,
    anything else 64), and 64 for the NSA models (:data:`NSA_PAGE`). A KV dtype trtllm_mla refuses is refused here
    as SGLang does at startup."""
    if is_nsa(spec):
        return NSA_PAGE
    if not runs_trtllm_mla(spec, gpu=gpu):
        return given or 1
    if kv_dtype not in TRTLLM_MLA_KV:
        raise InvalidInput(
            f"SGLang runs {spec.name} on {gpu.name} with the trtllm_mla backend, which takes --kv-cache-dtype "
            f"fp8_e4m3, fp4_e2m1, bf16 or auto, not {kv_dtype}; use fp8_e4m3"
        )
    return given if given in TRTLLM_MLA_PAGES else TRTLLM_MLA_PAGE


# --kv-cache-dtype fp4_e2m1 (docs/advanced_features/quantized_kv_cache.md @03cd2ec: E2M1 values, one 8-bit exponent
# scale per block of 16). The pool's cell (model_runner_kv_cache_mixin.py get_cell_size_per_token @001ccef, which
# profile_max_num_token divides the memory by): element size 1 (torch.float4_e2m1fn_x2 holds two values), so
# MHA: cell // 2 + (kv_heads x head_dim x layers x 2) // 16, the K and V scale buffers of
# mem_cache/memory_pool.py MHATokenToKVPoolFP4 (uint8 [tokens, heads x head_dim // 16] each);
# MLA: (kv_lora_rank + qk_rope_head_dim) x layers // 2 + (kv_lora_rank + qk_rope_head_dim) // 16 x layers.
# kvplan takes it per layer (the same bytes whenever heads x head_dim is even). Simplification: for hybrid-SWA models
# SGLang counts the scales at the full layers' heads for every layer; kvplan at each layer's own heads.
FP4_SCALE_BLOCK = 16


def _fp4_token_bytes(spec: ModelSpec, c: LayerCache, *, tp: int) -> int:
    if c.type == "mla" and c.bytes_per_token:
        kind = spec.kind(c.kind)
        latent = kind.kv_lora_rank + kind.qk_rope_head_dim
        return latent // 2 + latent // FP4_SCALE_BLOCK
    geometry = head_layout(spec, c, tp=tp)
    if geometry is None:
        return c.bytes_per_token
    heads, k_dim, v_dim = geometry
    return heads * (k_dim + v_dim) // 2 + heads * k_dim * 2 // FP4_SCALE_BLOCK


def mamba_state_bytes(spec: ModelSpec, kind_name: str, *, tp: int) -> int:
    """One request's state in one recurrent layer on one rank: conv state in the model dtype, SSM state in the
    dtype :func:`ssm_state_dtype_kept` gives (float32 unless the config's mamba_ssm_dtype says otherwise)."""
    kind = spec.kind(kind_name)
    conv, ssm = recurrent_state_elements(kind)
    model = KV_DTYPES[spec.dtype] if spec.dtype in KV_DTYPES else KV_DTYPES["bf16"]
    return model.nbytes(ceil_div(conv, tp)) + KV_DTYPES[ssm_state_dtype_kept(spec, kind)].nbytes(ceil_div(ssm, tp))


def _one_pool(stage: StagePlan) -> StagePlan:
    """Every layer keeps every token: SGLang's one token pool for models outside its hybrid-SWA list."""
    groups = tuple((n, LayerCache(c.kind, c.type, c.bytes_per_token, None, c.state_bytes)) for n, c in stage.groups)
    return StagePlan(groups)


def mem_fraction(
    gpu_total_mib: int,
    *,
    tp: int,
    pp: int,
    chunked_prefill: int | None,
    dp_attention: int = 1,
    graphs: GraphReserves | None = None,
) -> float:
    """server_args.py _handle_gpu_memory_settings (SGLang 0.5.x): chunked_prefill_size and
    cuda_graph_max_bs by GPU memory tier, then reserved MiB = 512 + 1.5 x max(chunk, 2048)
    + 2 x cuda_graph_max_bs + 1024 x tp x pp / 8 (at least 10 GiB above 60 GiB).

    ``tp`` is SGLang's tp_size (every GPU of the replica, also under DP attention, where it picks the graph tier:
    ``--tp 8 --dp 8`` is the ``tp >= 4`` tier), ``dp_attention`` its dp_size where ``--enable-dp-attention`` is on
    (:func:`dp_attention_size`). Then ``cuda_graph_max_bs x dp_size x 3`` more MiB ("DP attention needs more
    padding"), and as much again x 1.5 / 3 above 300 graph batch sizes. Read in two stored copies of main's
    server_args.py (2025-10 and 2026; the term is the same in both, and the same under ``reserve_for_graph_mb`` in the
    2026 refactor): the condition is ``enable_dp_attention``, which _handle_data_parallelism turns off for dp_size 1
    only after this ran; ``--dp`` without it (replicas) adds nothing. The full chunk counts here: DP attention
    divides ``chunked_prefill_size`` by dp_size afterwards (_handle_data_parallelism runs later in __post_init__).
    engine_logs.json sglang-05 (B200, ``--tp 8 --dp 8 --enable-dp-attention``) bears it out: its automatic run and its
    run at 0.8 imply 0.751 (scripts/engine_validation.py), this rule gives 0.751 (0.852 without the DP term).

    ``graphs`` given: SGLang 0.5.23's rule instead (:class:`GraphReserves`, :func:`graph_reserve_mib`), the same sum
    with the CUDA-graph terms of ``reserve_for_graph_mb`` added before the 10 GiB floor and DeepEP's after it."""
    chunk, graph_bs = _tier(gpu_total_mib, tp=tp, graph_tiers=graphs is not None)
    chunk = chunked_prefill or chunk
    reserved = 512 + max(chunk, 2048) * 1.5 + tp * pp / 8 * 1024
    if graphs is None:
        reserved += graph_bs * 2
        if dp_attention > 1:  # "DP attention needs more padding", more again above 300 graph batch sizes
            reserved += graph_bs * dp_attention * 3 + (graph_bs * dp_attention * 1.5 if graph_bs > 300 else 0)
    else:
        reserved += graph_reserve_mib(graphs, chunk=chunk, decode_bs=graph_bs, dp_attention=dp_attention)
    if gpu_total_mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    if graphs is not None and graphs.deepep and graphs.decode_graph:
        reserved += DEEPEP_A2A_MIB  # reserve_for_deepep_a2a_mb: "on top of the floor"
    return round((gpu_total_mib - reserved) / gpu_total_mib, 3)


# SGLang 0.5.23 (the PyPI wheel, 2026-10; the rule set kvplan's `sglang` selects): python/sglang/srt/arg_groups/
# memory_hook.py handle_gpu_memory_settings keeps 0.5.7's sum (512 + 1.5 x max(chunk, 2048) + tp x pp / 8 GiB, at
# least 10 GiB above 60 GiB) and adds reserve_for_graph_mb before the floor and reserve_for_deepep_a2a_mb after it:
# * the decode CUDA graph, max_bs x 2 MiB, only while it is on (--disable-cuda-graph turns both phases off,
#   cuda_graph_hook.py parse_cuda_graph_config); max_bs is the tier's, capped at --max-running-requests where that is
#   given and smaller (decode_max_bs_is_default);
# * DP attention (attn_dp_size > 1, runtime_context.attn_dp_enabled_of): max_bs x attn_dp_size x 3 MiB, x 1.5 more
#   above 300, whether or not the decode graph runs (as in 0.5.7);
# * the prefill CUDA graph, a "breakable" graph on by default on CUDA (model_executor/cuda_graph_config.py
#   default_prefill_backend): PREFILL_GRAPH_MIB a captured size ("only non-torch memory is counted"), the sizes being
#   cuda_graph_hook.py generate_prefill_cuda_graph_batch_sizes up to max_bs = the chunk (min(8192, chunk) for MLA,
#   min(.., 4096) for a model path holding "llama-2"), or MLA_PREFILL_GRAPH_MIB for an MLA model ("MLA backend overhead
#   is much higher than expected with fa3", model_override_base.use_mla_backend: AttentionArch.MLA); with DeepEP,
#   DEEPEP_PREFILL_GRAPH_MIB more ("bridge pool + NVL first-touch during capture"), and apply_deepep_adjustments has
#   already set the sizes to generate_prefill_cuda_graph_batch_sizes(2048) rounded up to multiples of 8 (it runs in
#   handle_cuda_graph_config, before the memory settings, when max_bs is still unset: "2048 = documented prefill
#   default"). apply_cuda_graph_compatibility turns the prefill graph off before the reserve is taken for pipeline
#   parallelism ("opt-in") and two-batch overlap (disable_breakable_cudagraph_if_incompatible; also KDA models, DCP,
#   context parallelism, unvalidated a2a backends and multimodal models outside its allow-list, none of which kvplan
#   models). disable_prefill_cuda_graph_for_deepseek_trtllm_mla (DeepSeek-V3 arch on SM100) runs after
#   handle_gpu_memory_settings (arg_groups/pipeline.py run_resolution_pipeline), so its reserve is still taken;
# * DeepEP (--moe-a2a-backend deepep) with the decode graph on: DEEPEP_A2A_MIB after the floor.
# The tier below 35 GiB changed (chunk 4096, decode max_bs 48 / 160 from tp 4; _tier). SGLANG_ENABLE_POST_CAPTURE_KV_
# SIZING (environ.py, default False) would size the pool after capture instead: not modelled, nor the disaggregated
# roles (--disaggregation-mode: a prefill server reserves no decode graph, a decode server no prefill graph) nor the
# multimodal adjustment (adjust_mem_fraction_for_vlm; 0.5.7 has one too, not modelled either).
PREFILL_GRAPH_MIB = 8
MLA_PREFILL_GRAPH_MIB = 1536
DEEPEP_PREFILL_GRAPH_MIB = 1024
DEEPEP_A2A_MIB = 2048
DEEPEP_PREFILL_MAX_BS = 2048  # apply_deepep_adjustments' max_bs while none is set


@dataclass(frozen=True)
class GraphReserves:
    """What SGLang 0.5.23's reserve reads beside the tier (:func:`mem_fraction` with ``graphs``)."""

    mla: bool = False  # the model runs SGLang's MLA attention (use_mla_backend)
    deepep: bool = False  # --moe-a2a-backend deepep
    prefill_graph: bool = True  # the breakable prefill CUDA graph stays on (Sglang.graph_reserves_for)
    decode_graph: bool = True  # the decode CUDA graph (off with --disable-cuda-graph)
    max_running: int | None = None  # --max-running-requests
    llama2: bool = False  # the model path holds "llama-2" (prefill max_bs at most 4096)


def prefill_graph_sizes(max_bs: int, *, multiple: int = 1) -> list[int]:
    """cuda_graph_hook.py generate_prefill_cuda_graph_batch_sizes (0.5.23): the token counts the prefill graph
    captures up to ``max_bs``; ``multiple`` 8 as apply_deepep_adjustments rounds them for DeepEP."""
    sizes = [*range(4, 33, 4), *range(48, 257, 16), *range(288, 513, 32), *range(576, 1025, 64),
             *range(1280, 4097, 256), *range(4608, max_bs + 1, 512)]  # fmt: skip
    return sorted({ceil_div(s, multiple) * multiple for s in sizes if s <= max_bs})


def graph_reserve_mib(graphs: GraphReserves, *, chunk: int, decode_bs: int, dp_attention: int) -> float:
    """memory_hook.py reserve_for_graph_mb (0.5.23), MiB: the terms before the floor (the comment above)."""
    if graphs.max_running is not None and decode_bs > graphs.max_running:
        decode_bs = graphs.max_running
    reserved = decode_bs * 2.0 if graphs.decode_graph else 0.0
    if dp_attention > 1:
        reserved += decode_bs * dp_attention * 3 + (decode_bs * dp_attention * 1.5 if decode_bs > 300 else 0)
    if graphs.prefill_graph:
        if graphs.mla:
            reserved += MLA_PREFILL_GRAPH_MIB
        elif graphs.deepep:
            reserved += len(prefill_graph_sizes(DEEPEP_PREFILL_MAX_BS, multiple=8)) * PREFILL_GRAPH_MIB
        else:
            max_bs = min(chunk, 4096) if graphs.llama2 else chunk
            reserved += len(prefill_graph_sizes(max_bs)) * PREFILL_GRAPH_MIB
        if graphs.deepep:
            reserved += DEEPEP_PREFILL_GRAPH_MIB
    return reserved


def dp_attention_size(settings: Settings, *, tp: int, sharding: Sharding | None) -> int:
    """SGLang's ``dp_size`` under ``--enable-dp-attention``: the DP ranks of the replica, i.e. ``tp_size //
    attn_tp_size`` (layers/dp_attention.py compute_dp_attention_world_info). kvplan names them two ways: ``--dp D``
    (``tp`` here is SGLang's ``tp_size`` = kvplan's tp x D, launched as ``--tp tp*D --dp D --enable-dp-attention``,
    :meth:`Sglang.launch_args`; the sharding's ``attn_tp`` is kvplan's tp) and the library's
    ``Settings.attention_dp`` (DP ranks inside one TP group, its sharding left whole). Replicas behind a router
    (``--dp`` without ``--enable-dp-attention``) never reach here: they are separate servers."""
    ranks = tp // sharding.attn_tp if sharding is not None and sharding.attn_tp else 1
    return settings.attention_dp * ranks


# Read in the sglang 0.5.7 wheel (PyPI), python/sglang/srt/models/: the model files whose input embedding is
# VocabParallelEmbedding(..., enable_tp=not is_dp_attention_enabled()), i.e. whole on every rank under
# --enable-dp-attention (the LM head stays cut over the whole tp_size unless --enable-dp-lm-head): deepseek_v2.py
# (DeepSeek V2/V3/V3.2, Kimi K2 through DeepseekV3ForCausalLM), qwen2_moe.py (Qwen3MoeModel extends Qwen2MoeModel),
# qwen3_next.py, glm4_moe.py, gpt_oss.py, llama4.py; qwen3_5.py in the 0.5.23 wheel (0.5.7 has no Qwen3.5). Mixtral,
# MiniMax M2 and the others keep the default enable_tp=True.
DP_WHOLE_EMBEDDING_FAMILIES = frozenset({
    "deepseek_v2", "deepseek_v3", "deepseek_v32", "kimi_k2", "qwen3_moe", "qwen3_next", "qwen3_5_moe", "glm4_moe",
    "gpt_oss", "llama4",
})  # fmt: skip
# The 0.5.23 wheel: the model files above build the input embedding as VocabParallelEmbedding(...,
# use_attn_tp_group=is_dp_attention_enabled()) (deepseek_v2.py through layers/vocab_parallel_embedding.py
# get_embedding_tp_kwargs; qwen2_moe.py, qwen3_next.py, glm4_moe.py, gpt_oss.py, llama4.py; minimax_m2.py too), i.e.
# cut over the attention TP group (attn_tp_size: whole only where that is 1); qwen3_5.py keeps enable_tp=not
# is_dp_attention_enabled() (whole). Mixtral keeps the default (cut over the whole tp_size).
DP_ATTN_TP_EMBEDDING_FAMILIES = frozenset({
    "deepseek_v2", "deepseek_v3", "deepseek_v32", "kimi_k2", "qwen3_moe", "qwen3_next", "glm4_moe", "gpt_oss",
    "llama4", "minimax_m2",
})  # fmt: skip
DP_WHOLE_0523 = frozenset({"qwen3_5_moe"})
# deepseek_v2.py DeepseekV2ForCausalLM.post_load_weights (0.5.7 wheel; the same in 0.5.23): every MLA layer's kv_b_proj
# is split into w_kc and w_vc, new tensors (``.contiguous()``) kept beside kv_b_proj, which the prefill path still
# runs: a second copy of (heads on the rank) x (qk_nope_head_dim + v_head_dim) x kv_lora_rank elements. In bf16 where
# kv_b_proj is 16-bit, or fp8 in 128 x 128 blocks on CUDA (block_quant_dequant to torch.bfloat16, unless
# SGL_USE_DEEPGEMM_BMM on Hopper, default off), or int8; 1 byte where it is fp8 with per-tensor or per-channel scales
# (channel_quant_to_tensor_quant / block_quant_to_tensor_quant keep fp8).
MLA_KV_B_COPY_FAMILIES = frozenset({"deepseek_v2", "deepseek_v3", "deepseek_v32", "kimi_k2"})


# layers/attention/nsa/nsa_indexer.py Indexer.__init__ (0.5.7 wheel): weights_proj = ReplicatedLinear(hidden,
# index_n_heads, params_dtype=torch.float32) ("weights_proj in the checkpoint is stored in bf16, while the parameters
# here are stored in fp32 for convenience"), whole on every rank, as kvplan.params counts the indexer; kvplan counts it
# at the model's 16 bits, so SGLang holds hidden x index_n_heads x 2 B more a DSA layer. (0.5.23's
# layers/attention/dsa/dsa_indexer.py keeps it bf16.)
FP32_WEIGHTS_PROJ_BYTES = 2  # fp32 over the 16-bit count, a weight


def indexer_fp32_bytes(spec: ModelSpec, *, pp: int) -> list[int]:
    """What the fp32 indexer ``weights_proj`` adds over kvplan's 16-bit count, per pipeline stage."""
    out = []
    for layers in pipeline_stages(spec.num_layers, pp):
        total = 0
        for i in layers:
            kind = spec.kind(spec.layer_kind_names[i])
            if kind.index_n_heads:
                total += spec.hidden_size * kind.index_n_heads * FP32_WEIGHTS_PROJ_BYTES
        out.append(total)
    return out


def mla_kv_b_copy_bytes(spec: ModelSpec, *, weights_dtype: str, attn_tp: int, pp: int) -> list[int]:
    """The w_kc / w_vc copies (:data:`MLA_KV_B_COPY_FAMILIES`) one GPU of each pipeline stage holds."""
    if spec.family not in MLA_KV_B_COPY_FAMILIES:
        return [0] * pp
    from kvplan.quant import storage

    store = storage(spec, weights_dtype)
    one_byte = store.dtype.name == "fp8" and "block 128x128" not in store.dtype.note
    return mla_kv_b_bytes(spec, attn_tp=attn_tp, pp=pp, element_bytes=1 if one_byte else 2)


def _tier(mib: int, *, tp: int, graph_tiers: bool = False) -> tuple[int, int]:
    """(chunked_prefill_size, decode cuda graph max_bs) by GPU memory; ``graph_tiers``: 0.5.23's tiers
    (memory_hook.py handle_gpu_memory_settings: below 35 GiB chunk 4096 and max_bs 48, 160 from tp 4; the rest as
    0.5.7's)."""
    if mib < 20 * 1024:
        return 2048, 8  # T4, 4080
    if mib < 35 * 1024:
        if graph_tiers:
            return 4096, 48 if tp < 4 else 160  # A10, 4090, 5090
        return 2048, 24 if tp < 4 else 80  # A10, 4090, L4
    if mib < 60 * 1024:
        return 4096, 32 if tp < 4 else 160  # A100-40GB, L40S
    if mib < 160 * 1024:
        return 8192, 256 if tp < 4 else 512  # H100, H200
    return 16384, 512  # B200, MI300X


def mem_fraction_04(tp: int) -> float:
    """SGLang 0.4.x server_args: mem_fraction_static by TP size (0.88 TP1, 0.87 TP2, 0.85 TP4,
    0.81 TP8, 0.79 TP16), as engine_logs.json sglang-01/03 record."""
    return 0.79 if tp >= 16 else 0.81 if tp >= 8 else 0.85 if tp >= 4 else 0.87 if tp >= 2 else 0.88


@dataclass(frozen=True)
class Sglang(Engine):
    # SGLang 0.5.23's memory rules (mem_fraction with GraphReserves: the CUDA-graph and DeepEP reserves, its tiers).
    graph_reserves: bool = False
    # The input embedding of DP_WHOLE_EMBEDDING_FAMILIES under DP attention: whole on every rank (0.5.7), or cut over
    # the attention TP group for DP_ATTN_TP_EMBEDDING_FAMILIES (0.5.23, the families there outside it whole).
    embed_over_attn_tp: bool = False
    fp32_weights_proj: bool = True  # the DSA indexer's weights_proj held in fp32 (0.5.7; bf16 in 0.5.23)
    attn_dp_flag: bool = False  # launched as --attn-dp-size N (0.5.23) instead of --dp N --enable-dp-attention

    def graph_reserves_for(self, spec: ModelSpec, settings: Settings, *, pp: int) -> GraphReserves | None:
        """What this release's reserve reads (:class:`GraphReserves`), or None for 0.5.7's rule."""
        if not self.graph_reserves:
            return None
        graphs = settings.cuda_graphs is not False  # --disable-cuda-graph turns both phases off
        mla = any(k.type == "mla" for k in spec.layers.kinds.values())
        return GraphReserves(
            mla=mla, deepep=settings.deepep, decode_graph=graphs, max_running=settings.max_num_seqs,
            prefill_graph=graphs and pp == 1 and not settings.two_batch_overlap,
            llama2="llama-2" in f"{spec.name} {spec.source}".lower(),
        )  # fmt: skip

    def ssm_state_dtype(self, spec: ModelSpec, kind: LayerKind, settings: Settings) -> str | None:
        """SGLang's SSM state dtype (:func:`ssm_state_dtype_kept`): the decode steps read the state it keeps."""
        return ssm_state_dtype_kept(spec, kind)

    def batch_limits(
        self, settings: Settings, total: int, gpu: GPU, *, dp_ranks: int = 1
    ) -> tuple[int | None, int | None]:
        """``--max-running-requests`` (``max_num_seqs``) caps the running batch: the scheduler admits no prompt while
        ``len(running_batch.reqs) >= max_running_requests`` (python/sglang/srt/managers/scheduler.py
        Scheduler.get_new_batch_prefill, read through the code index, commit not named). Without it, SGLang derives its
        cap from the KV pool, which kvplan's KV bound already holds: no cap of its own.

        The token budget is ``--chunked-prefill-size`` (``max_num_batched_tokens``), else its default by the GPU's
        memory (server_args.py ``_handle_gpu_memory_settings``, :func:`_tier`: 2,048 below 35 GB (0.5.23: below 20 GB,
        4,096 from there), 4,096 below 60 GB, 8,192 below 160 GB, 16,384 from there, e.g. B200): a prompt batch's
        ``rem_chunk_tokens``
        (schedule_policy.py ``PrefillAdder``, @00550cd1). Its other bound, ``rem_input_tokens`` = ``max_prefill_tokens``
        (server_args.py default 16,384, read through the code index), is never the smaller with these defaults.

        Under DP attention each rank's scheduler gets ``chunked_prefill_size // dp_size`` (server_args.py
        ``_handle_data_parallelism``: "DP attention is enabled. The chunked prefill size is adjusted to ... to avoid
        MoE kernel issues", in every 0.5.x copy read and main 2025-10 / 2026; 0.4.x halved it instead). It runs after
        ``_handle_gpu_memory_settings``, so :func:`mem_fraction` still reserves for the whole chunk; the flag (given
        or by tier) is the replica's and each rank prompts ``dp_size`` times fewer tokens a step."""
        chunk = settings.max_num_batched_tokens or _tier(total // MIB, tp=1, graph_tiers=self.graph_reserves)[0]
        return max(1, chunk // dp_ranks), settings.max_num_seqs

    def cache_plan(self, spec: ModelSpec, *, kv_dtype_name: str, tp: int, pp: int, mla: str = "latent") -> CachePlan:
        """The neutral plan; fp4_e2m1 at SGLang's cell (``_fp4_token_bytes``). No GPU gate was read for it: the
        pool quantizes and dequantizes with torch code (memory_pool.py MHATokenToKVPoolFP4.set_kv_buffer /
        _get_key_buffer, KVFP4QuantizeUtil)."""
        if is_nsa(spec):
            _check_nsa(spec, kv_dtype_name=kv_dtype_name, mla=mla)
            plan = super().cache_plan(spec, kv_dtype_name=kv_dtype_name, tp=tp, pp=pp, mla=mla)
            return with_token_bytes(plan, lambda c: _nsa_token_bytes(spec, c, kv_dtype=kv_dtype_name, counted=False))
        plan = super().cache_plan(spec, kv_dtype_name=kv_dtype_name, tp=tp, pp=pp, mla=mla)
        if kv_dtype_name != "fp4_e2m1":
            return plan
        if mla != "latent" and any(k.type == "mla" for k in spec.layers.kinds.values()):
            raise InvalidInput("SGLang's fp4_e2m1 pool holds the MLA latent (MLATokenToKVPoolFP4); use --mla latent")
        return with_token_bytes(plan, lambda c: _fp4_token_bytes(spec, c, tp=tp))

    def check_layer_kinds(self, spec: ModelSpec, *, indexer_read: bool = False) -> None:
        """The DSA indexer cache is read (NSATokenToKVPool, see NSA_PAGE); the other issue-9 kinds are not."""
        super().check_layer_kinds(spec, indexer_read=True)

    def fp8_context_attention(self, *, weights_dtype: str, kv_dtype: str) -> bool:
        """An FP8 KV cache runs FP8 extend (prefill) attention on the FlashAttention-3 backend:
        python/sglang/srt/layers/attention/flashattention_backend.py (``forward_extend``, read in copies found by
        search; sgl-project/sglang's stored copy is @756596d1) casts ``q`` to the cache dtype when
        ``kv_cache_dtype_str != "auto"``, the head size is at most 256 and the kernel is FA3 (not FA4), and passes the
        K/V descales. What it buys is the calibration's: SGLang has no latency fit of its own and prices with vLLM's
        constants, whose ``fmha_fp8_softmax`` is None, so no gain is applied (aiconfigurator's SGLang 0.5.14 FA3 tables
        time these rows 1.2x faster on H100/H200; benchmarks/fit_fmha.py prints the fit it would take)."""
        return kv_dtype.startswith("fp8")

    def attention_spans(self, spec: ModelSpec, settings: Settings) -> dict[str, int | None] | None:
        """SGLang's attention backends honour a layer's window where its model file passes one: RadixAttention's
        ``sliding_window_size`` (Gemma 3: models/gemma3_causal.py ``Gemma3Attention`` @038c87d4 passes
        ``get_attention_sliding_window_size(config)`` on sliding layers; Gemma 2: models/gemma2.py ``Gemma2Attention``
        @00b08c49 on its even layers; Command A's cohere2.py and Gemma 3n's were not read, their windows taken as
        passed); the FlashInfer backend then reads only the
        window, ``paged_kernel_lens = min(seq_lens, sliding_window_size + 1)`` from ``kv_start_idx = seq_lens -
        paged_kernel_lens`` (layers/attention/flashinfer_backend.py ``update_sliding_window``), the FA3 backend passes
        it as ``window_size``. Mistral's does not: models/mistral.py ``MistralForCausalLM`` is ``LlamaForCausalLM``
        (@00b08c49), whose ``LlamaAttention`` builds its RadixAttention without ``sliding_window_size`` (models/llama.py
        read @00239548 and @bf7a0e23), so Mistral 7B v0.1's 4096-token window is not applied: every layer reads and
        computes the whole context (:data:`NO_WINDOW_FAMILIES`). ``--disable-hybrid-swa-memory`` (``swa_full``) changes
        the pool only; the kernels keep the window."""
        if spec.family not in NO_WINDOW_FAMILIES:
            return None
        spans: dict[str, int | None] = {n: None for n, k in spec.layers.kinds.items() if k.type == "sliding"}
        return spans or None

    def check_kv_latency(self, kv_dtype_name: str) -> None:
        """fp4_e2m1 reads are not priced: SGLang's FP4 MHA pool dequantizes a layer's whole K and V buffers (every
        slot of the pool, not the batch's tokens) to 16 bits each time attention asks for them
        (mem_cache/memory_pool.py MHATokenToKVPoolFP4._get_key_buffer / _get_value_buffer ->
        KVFP4QuantizeUtil.batched_dequantize, read in a stored copy of main whose commit was not recorded), and its
        docs warn that unfused dequantization "can be extremely slow" (quantized_kv_cache.md @03cd2ec). Which
        attention backends bypass that path was not read, so kvplan gives no latency rather than a wrong one."""
        if kv_dtype_name == "fp4_e2m1":
            raise InvalidInput(
                "kvplan has no latency for SGLang's fp4_e2m1 KV cache: its pool dequantizes every layer's whole K/V "
                "buffer to 16 bits on each read (memory_pool.py MHATokenToKVPoolFP4), a cost not priced; capacity "
                "and estimate take it, and cost --latency roofline counts its bytes"
            )

    def attention_tp(self, tp: int, settings: Settings) -> int:
        """python/sglang/srt/layers/dp_attention.py compute_dp_attention_world_info: attn_tp_size =
        tp_size // dp_size; each DP rank holds tp/dp-way shards of the KV heads and its own requests."""
        dp = settings.attention_dp
        if dp < 1 or tp % dp:
            raise InvalidInput(f"invalid attention_dp {dp!r}; SGLang needs it to divide tp={tp}")
        return tp // dp

    def layout(
        self, spec: ModelSpec, *, plan: CachePlan, settings: Settings, stage_index: int, gpu: GPU, total: int
    ) -> Layout:
        stage = plan.stages[stage_index]
        block = page_size(spec, gpu=gpu, given=settings.block_size, kv_dtype=plan.kv_dtype)
        if is_nsa(spec):
            counted = sum(n * _nsa_token_bytes(spec, c, kv_dtype=plan.kv_dtype, counted=True) for n, c in stage.groups)
            return NsaLayout(_one_pool(stage), 1, block, counted_bytes_per_token=counted,
                             kv_cache_dtype=NSA_KV_FLAGS[plan.kv_dtype])  # fmt: skip
        kinds = {c.type for _, c in stage.groups}
        if "recurrent" in kinds:
            return self._mamba_layout(spec, stage, settings=settings, block=block, tp=plan.tp)
        capped = any(c.max_tokens is not None for _, c in stage.groups)
        # model_config.py: is_hybrid_swa = is_hybrid_swa_model(architectures) and not disable_hybrid_swa_memory
        hybrid = capped and spec.family in HYBRID_SWA_FAMILIES and "full" in kinds and not settings.swa_full
        if hybrid:
            ratio = settings.swa_full_tokens_ratio or SWA_FULL_TOKENS_RATIO
            return HybridSwaLayout(stage, 1, block, swa_full_tokens_ratio=ratio)
        if settings.swa_full and capped and spec.family in HYBRID_SWA_FAMILIES and "full" in kinds:
            return UnifiedSwaLayout(_one_pool(stage), 1, block)
        return Layout(_one_pool(stage), 1, block)

    def _mamba_layout(
        self, spec: ModelSpec, stage: StagePlan, *, settings: Settings, block: int, tp: int
    ) -> MambaHybridLayout:
        attention = StagePlan(tuple((n, c) for n, c in stage.groups if c.type != "recurrent"))
        state = sum(n * mamba_state_bytes(spec, c.kind, tp=tp) for n, c in stage.groups if c.type == "recurrent")
        ratio = settings.mamba_full_memory_ratio or MAMBA_FULL_MEMORY_RATIO
        return MambaHybridLayout(attention, 1, block, state_bytes=state, mamba_ratio=ratio,
                                 context_len=spec.max_position_embeddings)  # fmt: skip

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
        ctx = o.non_torch_bytes if o.non_torch_bytes is not None else CONTEXT + (NCCL if tp * pp > 1 else 0)
        free_at_start = total - ctx
        frac = settings.mem_fraction_static
        if frac is None:
            frac = mem_fraction(total // MIB, tp=tp, pp=pp, chunked_prefill=settings.max_num_batched_tokens,
                                dp_attention=dp_attention_size(settings, tp=tp, sharding=sharding),
                                graphs=self.graph_reserves_for(spec, settings, pp=pp))  # fmt: skip
        share = int(free_at_start * frac)
        # model_runner.profile_max_num_token: rest = free_after_load - free_at_start x (1 - fraction).
        avail = share - weights - o.overhead_bytes
        return Budget(
            total, share, weights, free_at_start - share, ctx, 0, False, o.overhead_bytes, avail,
            "free at start x mem_fraction_static - weights", frac, "mem_fraction_static",
        )  # fmt: skip

    def launch_args(self, r: CapacityResult, *, model: str, sequences: int) -> list[str]:
        """`python -m sglang.launch_server` flags (python/sglang/srt/server_args.py)."""
        frac = r.settings.get("mem_fraction_static")
        args = ["python", "-m", "sglang.launch_server", "--model-path", model, "--context-length", str(r.context)]
        if frac is not None:
            args += ["--mem-fraction-static", f"{frac:g}"]
        # NSA models: "auto" is fp8_e4m3 on SM >= 10, so the dtype is spelled out (NsaLayout.settings)
        kv_flag = r.settings.get("kv_cache_dtype") or self.kv_flag(r.kv_dtype)
        args += ["--max-running-requests", str(sequences), "--kv-cache-dtype", kv_flag]
        args += quantization_flag(r)
        if r.settings.get("swa_full_tokens_ratio") is not None:
            args += ["--swa-full-tokens-ratio", f"{r.settings['swa_full_tokens_ratio']:g}"]
        if r.settings.get("disable_hybrid_swa_memory"):
            args += ["--disable-hybrid-swa-memory"]
        if r.block_tokens != 1:  # server_args.py --page-size (default 1): the pool rounds to it
            args += ["--page-size", str(r.block_tokens)]
        if r.tp * r.dp > 1:
            args += ["--tp", str(r.tp * r.dp)]  # SGLang's tp_size counts every GPU of the replica
        if r.pp > 1:
            args += ["--pp-size", str(r.pp)]
        if r.dp > 1 and self.attn_dp_flag:
            args += ["--attn-dp-size", str(r.dp)]
        elif r.dp > 1:
            args += ["--dp", str(r.dp), "--enable-dp-attention"]
        elif r.replicas > 1:
            args += ["--dp", str(r.replicas)]
        if r.ep:
            args += ["--ep-size", str(r.tp * r.dp)]
        return args

    # -- data-parallel attention, expert parallelism, nodes --

    def check_dp_ep(self, spec: ModelSpec, *, tp: int, pp: int, dp: int, ep: bool) -> None:
        check_moe_parallel(self.name, spec, tp=tp, dp=dp, ep=ep)

    def sharding(self, spec: ModelSpec, *, tp: int, dp: int = 1, ep: bool = False) -> Sharding:
        """server_args.py (SGLang 0.5.x): with --enable-dp-attention the attention TP group is
        tp_size / dp_size; dense MLPs and shared experts stay on --moe-dense-tp-size (default: the whole
        tp_size) and the vocabulary on the whole tp_size unless --enable-dp-lm-head; --ep-size splits
        the routed experts whole, the rest of tp_size cutting each expert (moe_tp = tp_size / ep_size). The input
        embedding is whole on every rank under DP attention for the models :data:`DP_WHOLE_EMBEDDING_FAMILIES` names.
        """
        ranks = tp * dp
        embed_tp = 0  # the input embedding under DP attention (0: over vocab_tp, as the LM head)
        if dp > 1 and self.embed_over_attn_tp:
            embed_tp = tp if spec.family in DP_ATTN_TP_EMBEDDING_FAMILIES else 1 if spec.family in DP_WHOLE_0523 else 0
        elif dp > 1 and spec.family in DP_WHOLE_EMBEDDING_FAMILIES:
            embed_tp = 1
        return Sharding(attn_tp=tp, mlp_tp=ranks, expert_tp=1 if ep else ranks, expert_ranks=ranks if ep else 1,
                        vocab_tp=ranks, embed_tp=embed_tp)  # fmt: skip

    def weights_added(self, spec: ModelSpec, *, weights_dtype: str, pp: int, sharding: Sharding) -> list[int]:
        """The MLA models' w_kc / w_vc copies of kv_b_proj (:func:`mla_kv_b_copy_bytes`), over the attention TP, and
        the DSA indexer's fp32 ``weights_proj`` (:func:`indexer_fp32_bytes`)."""
        copies = mla_kv_b_copy_bytes(spec, weights_dtype=weights_dtype, attn_tp=sharding.attn_tp, pp=pp)
        if not self.fp32_weights_proj:
            return copies
        return [c + f for c, f in zip(copies, indexer_fp32_bytes(spec, pp=pp), strict=True)]

    def node_args(self, r: CapacityResult, *, node: int | str, nodes: int, leader: str) -> list[str]:
        """server_args.py --nnodes / --node-rank / --dist-init-addr: every node runs the same command."""
        return ["--nnodes", str(nodes), "--node-rank", str(node), "--dist-init-addr", f"{leader}:{DIST_INIT_PORT}"]

    def prefix_units(self, layout: Layout, prefix: int) -> int:
        """The radix cache (on unless --disable-radix-cache) stores a shared prefix once, token by
        token (page 1); kvplan does not model sharing in the hybrid SWA pool."""
        return 0 if isinstance(layout, HybridSwaLayout) else paged_prefix_bytes(layout, prefix)

    def parse_log(self, text: str) -> LogFacts:
        return parse_log(text)

    def compare_log(self, facts: LogFacts, spec: ModelSpec, gpu: GPU | None, result: Any, *, calc: Any) -> None:
        compare_log(facts, spec, result, kv=facts.flags.get("nsa_kv_dtype") or nsa_log_kv_dtype("", gpu))


# ---- startup log ------------------------------------------------------------------------------------

_FIGURES = {
    "free_before_load": r"Load weight begin\. avail mem={n} ?GB",
    "free_after_load": r"Load weight end\..*?avail mem={n} ?GB",
    "weights": r"Load weight end\..*?mem usage={n} ?GB",
    "tokens": r"KV Cache is allocated\. #tokens: {n}",
    "k_size": r"K size: {n} ?GB",
    "v_size": r"V size: {n} ?GB",
    "kv_size": r"KV size: {n} ?GB",
    "pool_end_free": r"Memory pool end\. avail mem={n} ?GB",
    "max_total_num_tokens": r"max_total_num_tokens={n}",
}


def parse_log(text: str) -> LogFacts:
    facts = LogFacts("sglang")
    for key, p in _FIGURES.items():
        m = re.search(p.replace("{n}", NUM), text)
        if m:
            facts.figures[key] = number(m.group(1))
    for key in ("context_len", "max_running_requests", "chunked_prefill_size"):
        m = re.search(key + r"=(\d+)", text)
        if m:
            facts.flags["context_length" if key == "context_len" else key] = int(m.group(1))
    tps = [int(x) for x in re.findall(r"TP(\d+)\]", text)]
    if tps:
        facts.flags.setdefault("tp_seen", max(tps) + 1)
    m = re.search(r"--model(?:-path)?[ =](\S+)", text)
    if m:
        facts.model = m.group(1)
    m = re.search(r"--tp(?:-size)?[ =](\d+)", text)
    if m:
        facts.flags["tp"] = int(m.group(1))
    kv = nsa_log_kv_dtype(text, None)  # what the log itself says; the GPU's default is taken in compare_log
    if kv:
        facts.flags["nsa_kv_dtype"] = kv
    return facts


def nsa_log_kv_dtype(text: str, gpu: GPU | None) -> str | None:
    """The KV dtype an NSA model's log ran with: the one _set_default_nsa_kv_cache_dtype logs ("Setting KV cache dtype
    to fp8_e4m3 for DeepSeek DSA on SM100 device."), else --kv-cache-dtype on the launch line, else its auto rule for
    the GPU (fp8_e4m3 on SM >= 10, bf16 below); None where none of them is known."""
    m = re.search(r"Setting KV cache dtype to (\w+) for DeepSeek DSA", text) or re.search(
        r"--kv[-_]cache[-_]dtype[ =](\w+)", text
    )
    if m and m.group(1) != "auto":
        return "fp8" if m.group(1).startswith("fp8") else "bf16"
    major = vllm.COMPUTE_MAJOR.get(gpu.architecture or "") if gpu is not None else None
    return None if major is None else "fp8" if major >= 10 else "bf16"


def _log_cells(spec: ModelSpec, *, tp: int, kv: str | None) -> tuple[int, int]:
    """``(bytes a token SGLang divides the memory by, bytes a token it allocates)`` on one rank (get_cell_size_per_token
    and the pool: equal except an NSA model's fp8 cache, see NsaLayout)."""
    from kvplan.memory import cache_plan

    if not is_nsa(spec):
        cell = cache_plan(spec, None, tp=tp).stages[0].bytes_per_token  # all layers, heads per rank, K and V
        return cell, cell
    plan = ENGINE.cache_plan(spec, kv_dtype_name=kv or spec.dtype, tp=tp, pp=1)
    groups = plan.stages[0].groups
    counted = sum(n * _nsa_token_bytes(spec, c, kv_dtype=plan.kv_dtype, counted=True) for n, c in groups)
    return counted, plan.stages[0].bytes_per_token


def compare_log(facts: LogFacts, spec: ModelSpec, result: Any, *, kv: str | None = None) -> None:
    fig = facts.figures
    tp = facts.flags.get("tp") or facts.flags.get("tp_seen") or 1
    cell, allocated = _log_cells(spec, tp=tp, kv=kv)
    rows = []
    tokens_logged = fig.get("tokens") or fig.get("max_total_num_tokens")
    if "free_after_load" in fig and ("free_before_load" in fig or "weights" in fig):
        before = fig.get("free_before_load") or fig["free_after_load"] + fig.get("weights", 0)
        chunk = facts.flags.get("chunked_prefill_size")
        frac = mem_fraction(int(before * 1024), tp=tp, pp=1, chunked_prefill=chunk)
        # 0.5.23's rule (GraphReserves): the prefill graph's reserve for the model's attention, both graphs on
        graphs = GraphReserves(mla=any(k.type == "mla" for k in spec.layers.kinds.values()))
        frac_0523 = mem_fraction(int(before * 1024), tp=tp, pp=1, chunked_prefill=chunk, graphs=graphs)
        for label, fr in (("0.4.x TP default", mem_fraction_04(tp)), ("0.5.x tier heuristic", frac),
                          ("0.5.23 tier heuristic and graph reserves", frac_0523)):  # fmt: skip
            rest = fig["free_after_load"] - before * (1 - fr)
            rows.append(row(f"KV tokens, mem_fraction_static {fr:g} ({label})", tokens_logged, int(rest * GIB // cell)))
    if "pool_end_free" in fig and "free_after_load" in fig and tokens_logged:
        # Memory pool = KV tokens x cell + req_to_token (int32 [max_running_requests + 1, context_len + 4]).
        pool = (fig["free_after_load"] - fig["pool_end_free"]) * GIB
        reqs, ctx = facts.flags.get("max_running_requests"), facts.flags.get("context_length")
        req_to_token = 4 * (reqs + 1) * (ctx + 4) if reqs and ctx else 0
        rows.append(row("KV tokens from the logged pool size", tokens_logged, int((pool - req_to_token) // allocated)))
    if tokens_logged and "k_size" in fig:
        rows.append(row("K size for the logged tokens", fig["k_size"], tokens_logged * cell / 2 / GIB, "GiB"))
    if tokens_logged and "kv_size" in fig and "k_size" not in fig:  # the MLA / NSA pools log one "KV size"
        rows.append(row("KV pool size for the logged tokens", fig["kv_size"], tokens_logged * allocated / GIB, "GiB"))
    rows.append(row("cell size (bytes per token, per GPU)", None, cell))
    if allocated != cell:
        rows.append(row("bytes per token the pool allocates (NSA fp8 rows)", None, allocated))
    result.rows = rows


# ---- failed starts: the refusals, read in the engine's source ---------------------------------------

FAILURES: tuple[Pattern, ...] = (
    # python/sglang/srt/model_executor/model_runner.py init_memory_pool / profile_max_num_token
    # (0.1-0.4: max_total_num_tokens <= 0); mem_cache/pool_configurator.py MemoryPoolConfig
    # __post_init__ (main 2026) appends the current fraction.
    Pattern(
        NO_KV_MEMORY,
        rf"Not enough memory\. Please try to increase --mem-fraction-static\.?"
        rf"(?: Current value: mem_fraction_static=(?P<fraction>{NUMBER}))?",
        "python/sglang/srt/model_executor/model_runner.py init_memory_pool (0.1-0.5); "
        "mem_cache/pool_configurator.py MemoryPoolConfig.__post_init__ (main 2026)",
        "KV cache sizing",
    ),
    # python/sglang/srt/model_executor/model_runner_kv_cache_mixin.py _profile_available_bytes
    # (SGLang main, mid 2026: sglang#28683 counts draft weights against the fraction).
    Pattern(
        NO_KV_MEMORY,
        rf"Loaded weights leave no GPU memory for the KV cache under "
        rf"--mem-fraction-static=(?P<fraction>{NUMBER}?)\.?(?= |$)",
        "python/sglang/srt/model_executor/model_runner_kv_cache_mixin.py _profile_available_bytes (main 2026)",
        "KV cache sizing",
    ),
    TORCH_OOM,
    CUDA_ERROR_OOM,
)

LOG_FLAG_KEYS = {
    "context": ("context_length",),
    "tp": ("tp", "tp_seen"),
    "fraction": ("mem_fraction_static",),
    "max_num_seqs": ("max_running_requests",),
    "max_num_batched_tokens": ("chunked_prefill_size",),
}
# server_args flags on the launch line (and the fraction the refusal quotes).
FAILURE_FLAGS = {
    "mem_fraction_static": r"mem[-_]fraction[-_]static[= ](" + NUMBER + ")",
    "context_length": r"--context[-_]length[ =](\d+)",
    "max_running_requests": r"--max[-_]running[-_]requests[ =](\d+)",
}


# What SGLang runs at once in a step. --enable-two-batch-overlap (python/sglang/srt/two_batch_overlap.py
# compute_split_seq_index / model_forward_execute_two_batch): the batch splits into two halves (decode: by sequences,
# num_tokens // 2; extend: by half the extend tokens) whose stages run interleaved, one half ``delta_stages`` ahead,
# so one half's DeepEP dispatch / combine runs beside the other's compute; a split needs two sequences (threshold:
# more than 1 token). Off by default; it runs on DeepEP (--moe-a2a-backend deepep, kvplan's --deepep).
# The default token exchange under DP attention (--moe-a2a-backend none): python/sglang/srt/layers/dp_attention.py
# dp_gather collects every DP rank's tokens for the MoE layer (_dp_gather_via_all_reduce: an all-reduce of a zeroed
# buffer holding each rank's rows, or an all-gather in the max-length padding mode) and dp_scatter hands each rank
# its rows back: kvplan costs it as the all-gather + reduce-scatter (the cheaper of the two modes; the all-reduce
# moves twice the bytes). Which mode a step takes was not read. A shared-expert stream was not read: none modelled.
OVERLAP = Overlap(moe_allgather=True, two_batch_decode_tokens=1, two_batch_prefill_tokens=1)

# The host loop (kvplan.host). python/sglang/srt/managers/scheduler.py Scheduler.event_loop_overlap ("A scheduler
# loop that overlaps the CPU processing and GPU computation"), the loop when enable_overlap = not
# server_args.disable_overlap_schedule (default False; the "zero-overhead batch scheduler" of v0.4, lmsys.org blog
# 2024-12-04): it receives requests, builds the next batch (get_next_batch_to_run) and launches it (run_batch), and
# only then processes the previous batch's results (pop_and_process -> process_batch_result), so the host runs one
# step ahead; sampled tokens stay on the GPU between steps (overlap_utils.py FutureMap). Batches for which
# is_disable_overlap_for_batch holds (e.g. back-to-back prefills with SGLANG_DISABLE_CONSECUTIVE_PREFILL_OVERLAP) run
# in order; not modelled. "The host stays off the critical path iff host loop time < GPU step time"
# (sgl-project/sglang#32219).
HOST_LOOP = HostLoop(overlaps_gpu=True, switch="--disable-overlap-schedule")

# The API server (kvplan.serving's "api_server" limit; FrontEnd). SGLang runs three processes
# (python/sglang/srt/entrypoints/http_server.py launch_server, 0.5.x): the HTTP server's process holds the
# TokenizerManager (python/sglang/srt/managers/tokenizer_manager.py: generate_request -> _tokenize_one_request, the
# chat template rendered before it by serving_chat, then _send_one_request over ZMQ to the Scheduler process;
# handle_loop -> _handle_batch_output fills each request's state from the detokenizer's batches, and the request's
# generator streams each chunk), the Scheduler process runs the steps, and the DetokenizerManager process
# (detokenizer_manager.py DetokenizerManager.event_loop) turns ids into text, off the API server's loop.
# together: read in the SGLang 0.5.3 and 0.5.7 wheels (the releases of the scored SGLang rows; the same code in both),
# with the uvicorn 0.37.0 / starlette 0.48.0 wheels of the same months for the HTTP layer. The chat route
# (http_server.py openai_v1_chat_completions) awaits entrypoints/openai/serving_base.py
# OpenAIServingBase.handle_request, which runs _validate_request and _convert_to_internal_request synchronously:
# serving_chat.py OpenAIServingChat._process_messages -> _apply_jinja_template renders the chat template and
# tokenizes it (tokenizer.apply_chat_template(..., tokenize=True)) in the handler, with no wait before it. A
# streamed request then returns a StreamingResponse over _generate_chat_stream (serving_chat.py
# _handle_streaming_request); the request reaches the scheduler only when that generator runs
# (TokenizerManager.generate_request -> _tokenize_one_request, the ids already there -> _send_one_request). uvicorn's
# HTTP protocols announce ASGI spec_version "2.3" (protocols/http/httptools_impl.py, h11_impl.py), so starlette's
# StreamingResponse.__call__ (responses.py) runs stream_response in a task group's new task (start_soon), which the
# event loop (uvloop) starts in a later pass than the handler. Requests that arrive together therefore each render
# and tokenize their prompt before any of them is sent to the scheduler: the burst shape of vLLM 0.11's server
# (FRONT_END_0_8 in kvplan/engines/vllm.py). SGLang parses no template per request (transformers caches the
# compiled template), so there is no template_s.
# The cost per request was measured on the one short-output SGLang run published: GPUStack's GLM-4.6-FP8 TP4 on
# 8 x H200, SGLang 0.5.3 (--tool-call-parser glm --reasoning-parser glm45), random 128 in / 4 out, 1,000 chat
# requests at once: 644.06 output tok/s (gpustack/gpustack docs/performance-lab/glm-4.x/h200.md @47277d79, line 514).
# Fitted by benchmarks/fit_frontend.py: the cost a request at which kvplan's run of that row, with the server
# handing the burst on together, falls to the published figure (x1.25 without it): 1.232 ms. The run's mean TTFT is
# then 3.77 s and its mean TPOT 0.81 s against the page's 3.55 s and 0.80 s; the serial reading used before the
# source was read (5.90 ms a request, each handed on as it was done) gave 3.09 s and 1.04 s. SGLang's other scored
# runs (longer outputs, fewer requests) give larger figures, so none contradicts it. It covers a request and its 4
# streamed tokens; a cost per token is not separable on these runs (token_s 0). The host CPU is not stated.
FRONT_END = FrontEnd(
    request_s=1.232e-3, measured="GPUStack GLM-4.6-FP8 TP4 H200, SGLang 0.5.3, random 128/4", together=True
)

# SGLang's own MLA decode module, fitted where vLLM's constants describe another kernel (benchmarks/mla_compare.py
# --fit --engine sglang --gpu h200 / b200, every other constant held) on aiconfigurator 0.12.0's SGLang 0.5.10 tables
# (aiconfigurator_core/systems/data/<gpu>/mla/sglang/0.5.10/wideep_generation_mla_perf.parquet: DeepSeek-V3, block-fp8
# projections, fp8 KV, 16-128 heads; the fused q_a + kv_a projection is timed apart there and left out).
# * Hopper: SGLang runs fa3 for every MLA model (see TRTLLM_MLA_FAMILIES above); vLLM's mla_layer_s (85.6 us, fitted
#   on steps whose MLA modules are vLLM's legacy collection) prices its module at 2.3x the table at batch 1. The
#   least-squares fit lands on its bound, 0: the table holds no fixed cost beyond kvplan's per-kernel and per-layer
#   terms. H200 median |ln| 0.856 -> 0.195 (528 points); H100 SXM held out 0.755 -> 0.165. LMSYS's measured
#   decode pool (DeepSeek-V3 on 72 H100, kv_transfer_compare.py) moves x0.73 -> x0.79.
# * SM100: trtllm_mla (DeepseekV3ForCausalLM models; the KV dtypes it takes), "TRTLLM MLA attention kernel from
#   flashinfer" (sgl-project/sglang @fcf5799f python/sglang/srt/layers/attention/trtllm_mla_backend.py
#   TRTLLMMLABackend): 17.1 us in place of vLLM's FLASHINFER_MLA figure (13.2). B200 median |ln| 0.126 -> 0.120
#   (0.685 with mla_layer_s); GB200 held out 0.151 -> 0.136. Other MLA models on SM100 run flashinfer there, not
#   fitted: mla_layer_s.
# * Gated DeltaNet prefill: SGLang 0.5.14 runs the fla Triton chunk kernels (chunk_gated_delta_rule in
#   aiconfigurator 0.12.0's SGLang gdn_perf tables), not vLLM 0.24's FlashInfer kernel: benchmarks/gdn_compare.py
#   --fit on those tables, the median share of the 16-bit peak over the Hopper context rows of >= 4,096 tokens (H100 SXM
#   0.0609, H200 0.0437; B200 0.0548 of peak x blackwell_compute_eff), on all SMs: the fla kernels split each head's
#   state over several thread blocks (not vLLM's gdn_head_blocks; the fit is worse with it, 0.564-0.873 median |ln|).
# * The prefill causal conv1d's per-SM ceiling (Calibration.conv1d_sm_bytes_s): benchmarks/gdn_compare.py --fit on the
#   same tables, causal_conv1d_fn context rows of >= 8,192 tokens: 17.79 / 18.98 / 19.84 GB/s per SM on H100 SXM / H200
#   / B200, the median over the H200 and B200 rows taken (H100 held out); the same ceiling as vLLM's Triton kernel
#   (18.49), whose copy SGLang's hybrid_linear_attn_backend.py imports (layers/attention/mamba/causal_conv1d_triton.py);
#   a later gdn_backend.py swaps in the CUDA causal_conv1d_fn on CUDA (both read through the code index, undated):
#   which one the 0.5.14 tables timed was not read, the tables show the ceiling.
# SGLang's own GQA/MHA decode kernels (kvplan.latency _gqa_decode_s), where vLLM's fits describe other kernels:
# benchmarks/gqa_decode_compare.py --fit on aiconfigurator 0.12.0's SGLang 0.5.14 generation-attention tables
# (aiconfigurator_core/systems/data/{h100_sxm,h200_sxm,b200_sxm}/attention/sglang/0.5.14/
# generation_attention_perf.parquet; kernel_source fa3 on Hopper, trtllm_mha on B200; head_dim 128, fp8 and bf16 KV,
# 4 and 8 query heads a KV head: benchmarks/data/aiconfigurator_gqa_decode.json), every other constant held. Hopper
# 5,180 rows, median |ln| 0.095, worst 0.496 (with vLLM's FA3 fit 0.134-0.194); B200 2,590 rows, 0.063, worst 0.684
# (with vLLM's FlashInfer fit: fp8 KV 0.342, its trtllm_mha fp8 kernel's floor 15.8 us against FlashInfer's 9.4).
# Admission and retraction (Engine.output_reserve / kv_preemption), read in the sglang 0.5.7 wheel (PyPI; the release of
# the DeepSeek-R1 rows) and compared with the 0.5.3 wheel (the GLM-4.6 and Qwen3-8B rows):
# * python/sglang/srt/managers/schedule_policy.py PrefillAdder: rem_total_tokens = allocator available_size() + tree
#   cache evictable_size() - rem_total_token_offset, the offset summing _get_running_request_total_token_offset over the
#   running batch, min(max_new_tokens - len(output_ids), CLIP_MAX_NEW_TOKENS) x new_token_ratio; add_one_req refuses a
#   request (NO_TOKEN, and the scheduler sets batch_is_full) when extend_input_len + min(max_new_tokens,
#   CLIP_MAX_NEW_TOKENS) >= rem_total_tokens, and on admission _update_prefill_budget adds its input +
#   min(max_new_tokens, CLIP) to the offset. 0.5.7 reserves max(max_new_tokens - len(output_ids), 0) for a request
#   admitted again after a retraction, 0.5.3 its whole max_new_tokens (readmit_remaining; kvplan follows 0.5.7).
#   CLIP_MAX_NEW_TOKENS: env SGLANG_CLIP_MAX_NEW_TOKENS_ESTIMATION, default 4096. add_one_req also stops the step at a
#   request whose input tokens reach rem_input_tokens (server_args max_prefill_tokens, default 16,384, less the step's
#   inputs so far) once the step holds one (prompt_step_tokens). The ignore_eos path (add_one_req_ignore_eos) runs only
#   with the radix cache disabled (getattr(self.tree_cache, "disable", True)); kvplan takes the radix cache on, SGLang's
#   default.
# * managers/scheduler.py Scheduler.__init__: init_new_token_ratio = min(SGLANG_INIT_NEW_TOKEN_RATIO (0.7) x
#   --schedule-conservativeness (server_args default 1.0), 1); min_new_token_ratio = min(init x
#   SGLANG_MIN_NEW_TOKEN_RATIO_FACTOR (0.14), 1); new_token_ratio_decay = (init - min) /
#   SGLANG_NEW_TOKEN_RATIO_DECAY_STEPS (600) (0.5.7 srt/environ.py; 0.5.3 global_config.py, the same defaults).
#   update_running_batch: when batch.check_decode_mem() fails (one token a running request, page 1, after evicting the
#   tree cache), retract_decode and new_token_ratio = what it returns; else new_token_ratio = max(ratio - decay, min).
#   self_check_during_idle sets it back to init_new_token_ratio (an idle server; a closed-loop run is never idle).
# * managers/schedule_batch.py ScheduleBatch.retract_decode: the running requests sorted by (len(output_ids),
#   -len(origin_input_ids)) descending, popped from the end (fewest outputs, then the longest prompt, then the latest in
#   the batch), at least one and until check_decode_mem holds for the others (always keeping one); release_req frees the
#   request's tokens past its cached prefix (0.5.7 release_kv_cache(is_insert=False) -> cache_finished_req frees
#   kv_indices[cache_protected_len:]; 0.5.3 frees from len(prefix_indices)) and unlocks the prefix node (its prompt,
#   inserted by cache_unfinished_req after the prefill, becomes evictable), then evicts the tree cache when fewer than
#   remaining x SGLANG_RETRACT_DECODE_STEPS (20) tokens are free; the new ratio is (sum of len(output_ids) + 20 x
#   requests) / (sum of max_new_tokens (+1 in 0.5.7)), at most 1, over the requests left. Scheduler
#   _add_request_to_queue appends the retracted request to the waiting queue (FCFS, server_args schedule_policy default
#   "fcfs": no reordering); admitted again, it computes its prompt and outputs past the prefix the radix cache still
#   holds (mem_cache/radix_cache.py evict: whole leaves, least recently accessed first).
# * A disaggregated decode instance (--disaggregation-mode decode) admits by another rule
#   (prefilled_reserve_tokens): disaggregation/decode.py DecodePreallocQueue.pop_preallocated preallocates a request
#   whose prompt's KV is coming only while len(origin_input_ids) + num_reserved_decode_tokens fits _allocatable_tokens,
#   the free tokens less num_reserved_decode_tokens for every request running, in transfer or waiting ("preserve some
#   space for future decode"; its second term, the largest running request's prompt + clipped output less every
#   running request's tokens, is below that with more than a few running); server_args num_reserved_decode_tokens
#   default 512 (0.5.7 and 0.5.3 alike, "TODO: add new_token ratio").
# * Under DP attention server_args.py _handle_data_parallelism sets schedule_conservativeness x 0.3 (0.5.3 wheel; the
#   0.5.23 wheel's arg_groups/parallel_hook.py handle_data_parallelism the same, on attn_dp_enabled), so each DP rank's
#   ratios start at 0.7 x 0.3 = 0.21 and fall to 0.21 x 0.14 (dp_attention_scale).
OUTPUT_RESERVE = OutputReserve(
    init_ratio=0.7, min_ratio_factor=0.14, decay_steps=600, retract_steps=20, clip_tokens=4096,
    readmit_remaining=True, prompt_step_tokens=16384, prefilled_reserve_tokens=512, dp_attention_scale=0.3,
)  # fmt: skip

SGLANG_GQA_DECODE = (
    ("hopper_gqa_decode", DecodeAttention(floor_s=1.308e-05, floor_16bit_s=8.893e-06, mem_eff=0.7375,
                                          seq_kvhead_s=2.429e-08, seq_kvhead_16bit_s=2.143e-08, overlap_p=1.368)),
    ("blackwell_gqa_decode", DecodeAttention(floor_s=1.583e-05, floor_16bit_s=8.796e-06, mem_eff=0.9208,
                                             seq_kvhead_s=8.842e-09, seq_kvhead_16bit_s=9.871e-09, overlap_p=6.67)),
)  # fmt: skip

MLA_FITS = LentFits(
    label="MLA decode: SGLang 0.5.10's own, mla_compare.py --fit; GQA decode: SGLang 0.5.14's own, "
    "gqa_decode_compare.py --fit; GDN prefill: gdn_compare.py --fit; all-reduce per GPU class: fit_nccl.py --allreduce",
    fields=(
        ("gdn_scan_eff", 0.0523),
        ("gdn_head_blocks", False),
        ("gdn_kernel_archs", None),  # the fla kernels on every GPU (its tables: chunk_gated_delta_rule on H100-B200)
        ("conv1d_sm_bytes_s", 1.959e10),
        # Not vLLM's SSU timing: SGLang's own port (python/sglang/srt/layers/attention/mamba/ops/mamba_ssm.py
        # selective_state_update @05f4e167) launches 4 x 4 warps for dstate <= 128 on every GPU (no Blackwell branch)
        # and carries speculative-decoding buffers in its kernel; not timed. Its state bytes at attn_decode_mem_eff.
        ("ssu_mem_eff", None),
        ("hopper_mla_layer_s", 0.0),
        ("blackwell_mla_layer_s", 1.714e-05),
        ("blackwell_mla_nope_dims", None),
        ("blackwell_mla_kv_dtypes", TRTLLM_MLA_KV),
        ("blackwell_mla_families", TRTLLM_MLA_FAMILIES),
        *SGLANG_GQA_DECODE,
        # The all-reduce's fixed latency per GPU class (kvplan.latency.allreduce_constants): benchmarks/fit_nccl.py
        # --allreduce on aiconfigurator 0.12.0's SGLang 0.5.14 custom all-reduce tables (SGLang_CustomAllReduce_graph
        # rows): vLLM's lent base moved by SGLang's own Blackwell / GB200 difference from Hopper (table fits: B200 4.20
        # us against 2.48, 3.7-4.5 us measured at the smallest messages against 2.3-3.3; GB200 4.00 us). Its table
        # stays under the lent level everywhere (<= 64 KiB, median: H100 / H200 x2.09 / x2.13; B200 x1.37 -> x1.76 with
        # these, vLLM's own B200 figure would give x1.97).
        ("blackwell_allreduce_base_s", 7.177e-06),
        ("gb200_allreduce_base_s", 6.977e-06),
    ),
)

# SGLang 0.5.23's GLM-4.x router (ENGINE): python/sglang/srt/models/glm4_moe.py ``Glm4MoeGate`` holds its weight in
# torch.float32 and runs ``F.linear(hidden_states.to(torch.float32), self.weight, None)`` (the float32 cast came with
# sgl-project/sglang PR #21660, merged 2026-03-30; the 0.5.3 and 0.5.7 wheels' gate is a 16-bit ``F.linear``), and
# arg_groups/model_overrides/glm4_moe.py ``_glm4_moe_overrides`` sets ``enable_tf32_matmul`` for
# Glm4MoeForCausalLM ("Enable TF32 matmul ... to improve gate gemm performance"), which model_runner.py turns into
# ``torch.set_float32_matmul_precision("high")``: a TF32 GEMM (Calibration.fp32_router_tf32). Read in the 0.5.23
# wheel. MiniMax-M2 (models/minimax_m2.py ``MiniMaxM2MoE``: ``ReplicatedLinear(..., params_dtype=torch.float32)``
# over ``hidden_states.to(torch.float32)``) the same, with TF32 from its own override (model_overrides/minimax_m2.py);
# the 0.5.7 wheel already has that float32 gate but nothing there turns TF32 on (no tf32 in server_args.py or
# model_runner.py), and 0.5.3 has no MiniMax-M2: so `sglang@0.5` (V0_5_FITS) runs it on the CUDA cores. Its
# Nemotron-H gate multiplies 16-bit operands into a float32 output (not a float32 GEMM): not listed.
ENGINE_FITS = replace(
    MLA_FITS,
    label=f"{MLA_FITS.label}; GLM-4.x and MiniMax-M2 routers: float32 with TF32 (0.5.23's model files)",
    fields=(*MLA_FITS.fields, ("fp32_router_families", frozenset({"glm4_moe", "minimax_m2"})),
            ("fp32_router_tf32", True)),  # fmt: skip
)
V0_5_FITS = replace(
    MLA_FITS,
    label=f"{MLA_FITS.label}; MiniMax-M2 router: float32 (0.5.7's model file)",
    fields=(*MLA_FITS.fields, ("fp32_router_families", frozenset({"minimax_m2"}))),
)

# `sglang@0.5`: the rules read in the 0.5.3 / 0.5.7 wheels and main 2025-10 (the release of the published SGLang rows
# and of the engine_logs.json runs from 2025), kept as trtllm@0.20 is.
V0_5 = Sglang(
    image="lmsysorg/sglang:latest",  # docs/get_started/install.md (Docker)
    name="sglang",
    release="0.5",
    version="0.4.3 budget / 0.5.x mem_fraction_static heuristic",
    # python/sglang/srt/model_executor/model_runner.py profile_max_num_token; page_size 1 default.
    paging="token slots (page 1; 64 where trtllm_mla runs: DeepSeek-V3 / Kimi-K2 on SM100, and for NSA: "
    "DeepSeek-V3.2); pool = rest / cell_size over all layers",
    budget_rule="free memory at start x mem_fraction_static - weights",
    # python/sglang/srt/managers/scheduler.py Scheduler.get_next_batch_to_run ("Run prefill first if possible": a new
    # prefill batch from get_new_batch_prefill, else the running batch's decode; v0.5.9 and earlier 0.4 / 0.5 copies,
    # read through the code index) and server_args.py ServerArgs.enable_mixed_chunk = False (the decodes join a
    # prefill batch only with --enable-mixed-chunk, get_new_batch_prefill mix_with_running): prompt and decode
    # batches are separate steps.
    mixes_prefill_with_decode=False,
    kv_preemption="retract_fewest_outputs",  # ScheduleBatch.retract_decode (OUTPUT_RESERVE's comment)
    output_reserve=OUTPUT_RESERVE,
    kv_dtypes=("bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "fp8", "fp4_e2m1"),
    # server_args.py --kv-cache-dtype choices: auto, fp8_e5m2, fp8_e4m3; fp4_e2m1 (quantized_kv_cache.md @03cd2ec,
    # "experimental"; _fp4_token_bytes).
    kv_dtype_flags={
        "fp4_e2m1": "fp4_e2m1",
        "bf16": "auto",
        "fp16": "auto",
        "fp8": "fp8_e4m3",
        "fp8_e4m3": "fp8_e4m3",
        "fp8_e5m2": "fp8_e5m2",
    },
    log_markers=("KV Cache is allocated", "Load weight end", "max_total_num_tokens"),
    # python/sglang/srt/layers/quantization/__init__.py BASE_QUANTIZATION_METHODS; --quantization fp8
    # on a 16-bit checkpoint quantizes at load (fp8.py Fp8Config is_checkpoint_fp8_serialized False).
    online_weight_dtypes=("fp8",),
    serve_port=30000,  # server_args.py port default
    listen_flags=("--host", "0.0.0.0"),  # server_args.py host default 127.0.0.1
    failure_patterns=FAILURES,
    failure_markers=("sglang", "Load weight end", "mem_fraction_static"),
    failure_flag_patterns=FAILURE_FLAGS,
    log_flag_keys=LOG_FLAG_KEYS,
    fraction_setting="mem_fraction_static",
    eager_flag="--disable-cuda-graph",  # python/sglang/srt/server_args.py
    # page_size (--page-size, any whole number), chunked_prefill_size, --max-running-requests, the
    # hybrid SWA pool's flags.
    settings_read=(
        "mem_fraction_static",
        "block_size",
        "max_num_batched_tokens",
        "max_num_seqs",
        "swa_full",
        "swa_full_tokens_ratio",
        "two_batch_overlap",
        "deepep",  # --moe-a2a-backend deepep
        "mixed_chunk",  # --enable-mixed-chunk (Engine.mixes_steps)
        "schedule_conservativeness",  # --schedule-conservativeness (OUTPUT_RESERVE's ratio)
    ),
    overlap=OVERLAP,
    lent_fits=V0_5_FITS,
    host_loop=HOST_LOOP,
    front_end=FRONT_END,
    # Disaggregated serving (--disaggregation-mode prefill / decode), SGLang main 2025-26 read through the code
    # index: python/sglang/srt/disaggregation/prefill.py SchedulerDisaggregationPrefillMixin.send_kv_chunk
    # (@0bd3524) sends each prefilled chunk's KV to the decode server as soon as the chunk is computed (the last
    # chunk with the metadata buffer holding the prefill's sampled token); decode.py DecodeTransferQueue
    # .pop_transferred takes that token as the request's first output (transferred_output_id), and
    # decode_schedule_batch_mixin.py prepare_for_prebuilt_extend enters the request with its KV already in place
    # (a "prebuilt" extend, no forward of the prompt): the first token needs no decode step.
    disagg_first_token="prefill",
    disagg_kv_send="per_chunk",
    # Each chunk's KV as transfer entries with the Mooncake backend (--disaggregation-transfer-backend mooncake):
    # python/sglang/srt/disaggregation/mooncake/conn.py @0005973 MooncakeKVManager._send_kvcache_generic pairs each
    # layer's K buffer and V buffer (one per layer for MLA) and makes one entry per buffer per contiguous run of
    # pages (group_concurrent_contiguous); by default all layers go in one batch_transfer_sync ("Combining all
    # layers' params in one batch transfer is more efficient", process_layers).
    disagg_kv_entries="k_and_v",
)
# `sglang` (0.5.23, the PyPI wheel of 2026-10): what changed for capacity, read in that wheel (python/sglang/srt/):
# the memory reserve (arg_groups/memory_hook.py, the comment above GraphReserves), the input embedding under DP
# attention (DP_ATTN_TP_EMBEDDING_FAMILIES), the DSA indexer's weights_proj in bf16 (layers/attention/dsa/
# dsa_indexer.py Indexer: "weights_proj must be bf16"), and `--dp N --enable-dp-attention` deprecated for
# `--attn-dp-size N` (arg_groups/parallel_hook.py handle_deprecated_dp_attention, which turns the old spelling into
# the new: the same layout). Checked the same there: the budget (mem_cache/kv_cache_configurator.py
# _profile_available_bytes: free after loading - free before x (1 - mem_fraction_static)), the w_kc / w_vc copies
# (models/deepseek_common/deepseek_weight_loader.py, contiguous copies bound beside kv_b_proj),
# the admission and retraction constants (environ.py SGLANG_INIT_NEW_TOKEN_RATIO 0.7, SGLANG_MIN_NEW_TOKEN_RATIO_FACTOR
# 0.14, SGLANG_NEW_TOKEN_RATIO_DECAY_STEPS 600, SGLANG_RETRACT_DECODE_STEPS 20, SGLANG_CLIP_MAX_NEW_TOKENS_ESTIMATION
# 4096), page 1 by default (arg_groups/overrides.py _page_size_default) and 64 for DeepSeek DSA
# (model_overrides/deepseek_v2.py, index_kpool 1). The pools' cells, the hybrid SWA / Mamba splits and the scheduler
# were not re-read for this release: they are sglang@0.5's.
ENGINE = replace(
    V0_5,
    release="0.5.23",
    version="0.5.23 (CUDA-graph and DeepEP reserves in mem_fraction_static)",
    lent_fits=ENGINE_FITS,
    graph_reserves=True,
    embed_over_attn_tp=True,
    fp32_weights_proj=False,
    attn_dp_flag=True,
    # 0.5.23's chat handler converts the request in the event loop's default thread pool (serving_base.py
    # OpenAIServingBase.handle_request: await loop.run_in_executor(None, self._convert_to_internal_request, ...)), so
    # the loop does not run every request of a burst through its template before sending any: each goes on when its
    # own conversion is done (not together; 0.5.7 still ran it in the handler, the release that moved it was not
    # bisected). No short-output run of 0.5.23 is published: the cost a request is 0.5.3's (FRONT_END).
    front_end=replace(FRONT_END, together=False),
)
VERSIONS = (V0_5, ENGINE)

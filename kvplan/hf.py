"""Hugging Face ``config.json`` -> :class:`ModelSpec`, for every field-name dialect kvplan knows.

A config.json records only what differs from its config class, so a field left out takes the
class default of transformers' ``<Type>Config`` (read from transformers 5.24.0,
``transformers/models/<type>/configuration_<type>.py``); the defaults kvplan needs are in
:data:`CLASS_DEFAULTS`. A ``null`` written in the file stays ``null``, as in transformers.

Traps handled here (see ``shared/reference/models.md`` section 2.4): inactive sliding windows
are not windows; ``multi_query`` Falcon has one KV head whatever ``num_kv_heads`` says; MLA
caches a latent, not per-head K/V; Gemma 3 ships a sparse ``text_config``; RoPE scaling is
spelt ``rope_scaling.type``, ``rope_scaling.rope_type`` or ``rope_parameters``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from kvplan.errors import InvalidInput
from kvplan.files import format_validation_error, read_json
from kvplan.quant import format_from_config
from kvplan.spec import SSM_STATE_DTYPES, ModelSpec
from kvplan.units import canonical_dtype

# ---- facts: transformers 5.24.0 config-class defaults ----------------------------------------
# Each entry is read from transformers/models/<type>/configuration_<type>.py (class field
# defaults and __post_init__). ``None`` for num_key_value_heads / head_dim means "derived":
# num_attention_heads and hidden_size // num_attention_heads. ``rope_theta`` is the class's
# ``default_theta`` (RotaryEmbeddingConfigMixin.default_theta = 10000.0 unless overridden).
_QWEN_WINDOW = {"use_sliding_window": False, "sliding_window": 4096}
CLASS_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": {  # LlamaConfig
        "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": None, "head_dim": None,
        "max_position_embeddings": 2048, "tie_word_embeddings": False, "rope_theta": 10000.0,
        "attention_bias": False, "mlp_bias": False,
    },
    "mistral": {  # MistralConfig: max_position_embeddings = 4096 * 32
        "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": None,
        "max_position_embeddings": 131072, "tie_word_embeddings": False, "rope_theta": 10000.0,
        "sliding_window": 4096,
    },
    "mixtral": {  # MixtralConfig (default_theta 1e6, no window)
        "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": None,
        "max_position_embeddings": 131072, "tie_word_embeddings": False, "rope_theta": 1e6,
        "sliding_window": None, "num_local_experts": 8, "num_experts_per_tok": 2,
    },
    "qwen2": {  # Qwen2Config (q/k/v always carry a bias in modeling_qwen2.py)
        "vocab_size": 151936, "hidden_size": 4096, "intermediate_size": 22016, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 32, "head_dim": None,
        "max_position_embeddings": 32768, "tie_word_embeddings": False, "rope_theta": 10000.0,
        "max_window_layers": 28, **_QWEN_WINDOW,
    },
    "qwen2_moe": {  # Qwen2MoeConfig
        "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 24,
        "num_attention_heads": 16, "num_key_value_heads": 16, "head_dim": None,
        "max_position_embeddings": 32768, "tie_word_embeddings": False, "rope_theta": 10000.0,
        "max_window_layers": 28, **_QWEN_WINDOW, "decoder_sparse_step": 1, "moe_intermediate_size": 1408,
        "shared_expert_intermediate_size": 5632, "num_experts_per_tok": 4, "num_experts": 60,
        "mlp_only_layers": [], "qkv_bias": True,
    },
    "qwen3": {  # Qwen3Config (explicit head_dim 128)
        "vocab_size": 151936, "hidden_size": 4096, "intermediate_size": 22016, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 32, "head_dim": 128,
        "max_position_embeddings": 32768, "tie_word_embeddings": False, "rope_theta": 10000.0,
        "attention_bias": False, "max_window_layers": 28, **_QWEN_WINDOW,
    },
    "qwen3_moe": {  # Qwen3MoeConfig (no head_dim field: modeling uses hidden // heads when absent)
        "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 24,
        "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": None,
        "max_position_embeddings": 32768, "tie_word_embeddings": False, "rope_theta": 10000.0,
        "attention_bias": False, **_QWEN_WINDOW, "decoder_sparse_step": 1, "moe_intermediate_size": 768,
        "num_experts_per_tok": 8, "num_experts": 128, "mlp_only_layers": [],
    },
    "gemma2": {  # Gemma2Config
        "vocab_size": 256000, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
        "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
        "max_position_embeddings": 8192, "tie_word_embeddings": True, "rope_theta": 10000.0,
        "attention_bias": False, "sliding_window": 4096,
    },
    "gemma3_text": {  # Gemma3TextConfig: default_theta global 1e6 / local 1e4; pattern kwarg default 6
        "vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
        "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
        "max_position_embeddings": 131072, "tie_word_embeddings": True, "rope_theta": 1e6,
        "rope_local_base_freq": 10000.0, "attention_bias": False, "sliding_window": 4096,
        "sliding_window_pattern": 6,
    },
    "gemma3n_text": {  # Gemma3nTextConfig (docstring checkpoint google/gemma-3n-E4B): default_theta global 1e6 /
        # local 1e4; layer_types default every 5th layer full; PLE, AltUp and LAuReL sizes below
        "vocab_size": 262400, "hidden_size": 2048, "intermediate_size": 16384, "num_hidden_layers": 35,
        "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 256, "max_position_embeddings": 32768,
        "tie_word_embeddings": True, "rope_theta": 1e6, "rope_local_base_freq": 10000.0, "attention_bias": False,
        "sliding_window": 512, "vocab_size_per_layer_input": 262144, "hidden_size_per_layer_input": 256,
        "altup_num_inputs": 4, "num_kv_shared_layers": 15, "laurel_rank": 64,
    },
    "mllama": {  # MllamaTextConfig (default_theta 500000; cross_attention_layers None -> [3, 8, ..., 38])
        "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 40,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": None, "max_position_embeddings": 131072,
        "tie_word_embeddings": False, "rope_theta": 500000.0, "cross_attention_layers": None,
    },
    "deepseek_v2": {  # DeepseekV2Config (num_experts_per_tok has no default: None)
        "vocab_size": 102400, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": None, "max_position_embeddings": 2048,
        "tie_word_embeddings": False, "rope_theta": 10000.0, "first_k_dense_replace": 0,
        "kv_lora_rank": 512, "q_lora_rank": 1536, "n_routed_experts": 64, "n_shared_experts": 2,
        "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "num_experts_per_tok": None,
        "moe_intermediate_size": 1407, "moe_layer_freq": 1,
    },
    "deepseek_v3": {  # DeepseekV3Config
        "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432, "num_hidden_layers": 61,
        "num_attention_heads": 128, "num_key_value_heads": 128, "max_position_embeddings": 4096,
        "tie_word_embeddings": False, "rope_theta": 10000.0, "first_k_dense_replace": 3,
        "kv_lora_rank": 512, "q_lora_rank": 1536, "n_routed_experts": 256, "n_shared_experts": 1,
        "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "num_experts_per_tok": 8,
        "moe_intermediate_size": 2048, "moe_layer_freq": 1,
    },
    "deepseek_v32": {  # DeepseekV32Config: DeepSeek-V3 plus the DSA indexer (index_head_dim per token cached)
        "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432, "num_hidden_layers": 61,
        "num_attention_heads": 128, "num_key_value_heads": 128, "max_position_embeddings": 163840,
        "tie_word_embeddings": False, "rope_theta": 10000.0, "first_k_dense_replace": 3,
        "kv_lora_rank": 512, "q_lora_rank": 1536, "n_routed_experts": 256, "n_shared_experts": 1,
        "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "num_experts_per_tok": 8,
        "moe_intermediate_size": 2048, "moe_layer_freq": 1, "index_head_dim": 128, "index_n_heads": 64,
        "index_topk": 2048,
    },
    "smollm3": {  # SmolLM3Config (no_rope_layers None -> every no_rope_layer_interval-th layer NoPE)
        "vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
        "num_attention_heads": 16, "num_key_value_heads": 4, "head_dim": None, "max_position_embeddings": 32768,
        "tie_word_embeddings": True, "rope_theta": 10000.0, "attention_bias": False, "mlp_bias": False,
        "use_sliding_window": False, "sliding_window": None, "no_rope_layer_interval": 4,
    },
    "llama4_text": {  # Llama4TextConfig (dense layers use intermediate_size_mlp; experts intermediate_size)
        "vocab_size": 202048, "hidden_size": 5120, "intermediate_size": 8192, "intermediate_size_mlp": 16384,
        "num_hidden_layers": 48, "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128,
        "max_position_embeddings": 131072, "tie_word_embeddings": False, "rope_theta": 500000.0,
        "attention_bias": False, "num_experts_per_tok": 1, "num_local_experts": 16, "moe_layers": None,
        "interleave_moe_layer_step": 1, "no_rope_layers": None, "no_rope_layer_interval": 4,
        "attention_chunk_size": 8192,
    },
    "minimax_m2": {  # MiniMaxM2Config (experts as wide as intermediate_size; rotary_dim -> partial RoPE)
        "vocab_size": 200064, "hidden_size": 3072, "intermediate_size": 1536, "num_hidden_layers": 62,
        "num_attention_heads": 48, "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 196608,
        "tie_word_embeddings": False, "rope_theta": 10000.0, "num_experts_per_tok": 8, "num_local_experts": 256,
    },
    "cohere2": {  # Cohere2Config: head_dim hidden // heads unless the file gives one; sliding_window_pattern 4
        "vocab_size": 256000, "hidden_size": 8192, "intermediate_size": 22528, "num_hidden_layers": 40,
        "num_attention_heads": 64, "num_key_value_heads": None, "max_position_embeddings": 8192,
        "tie_word_embeddings": True, "rope_theta": 10000.0, "attention_bias": False, "sliding_window": 4096,
        "sliding_window_pattern": 4,
    },
    "phi3": {  # Phi3Config
        "vocab_size": 32064, "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": None, "head_dim": None,
        "max_position_embeddings": 4096, "original_max_position_embeddings": 4096,
        "tie_word_embeddings": False, "rope_theta": 10000.0, "sliding_window": None,
    },
    "falcon": {  # FalconConfig (ffn_hidden_size None -> 4 * hidden_size; head_dim = hidden // heads)
        "vocab_size": 65024, "hidden_size": 4544, "num_hidden_layers": 32, "num_attention_heads": 71,
        "num_kv_heads": None, "alibi": False, "new_decoder_architecture": False, "multi_query": True,
        "parallel_attn": True, "bias": False, "max_position_embeddings": 2048, "ffn_hidden_size": None,
        "tie_word_embeddings": True, "rope_theta": 10000.0, "num_ln_in_parallel_attn": None,
    },
    "gpt_oss": {  # GptOssConfig (default_theta 150000; default rope_parameters below)
        "vocab_size": 201088, "hidden_size": 2880, "intermediate_size": 2880, "num_hidden_layers": 36,
        "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64,
        "max_position_embeddings": 131072, "tie_word_embeddings": False, "rope_theta": 150000.0,
        "sliding_window": 128, "num_local_experts": 128, "num_experts_per_tok": 4, "attention_bias": True,
    },
    "cohere": {  # CohereConfig (default_theta 500000)
        "vocab_size": 256000, "hidden_size": 8192, "intermediate_size": 22528, "num_hidden_layers": 40,
        "num_attention_heads": 64, "num_key_value_heads": None, "head_dim": None,
        "max_position_embeddings": 8192, "tie_word_embeddings": True, "rope_theta": 500000.0,
        "attention_bias": False, "use_qk_norm": False,
    },
    "olmo2": {  # Olmo2Config
        "vocab_size": 50304, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": None, "head_dim": None,
        "max_position_embeddings": 2048, "tie_word_embeddings": False, "rope_theta": 10000.0,
        "attention_bias": False,
    },
    "jamba": {  # JambaConfig (mamba_dt_rank "auto" -> ceil(hidden / 16))
        "vocab_size": 65536, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": None,
        "max_position_embeddings": 262144, "tie_word_embeddings": False, "num_experts_per_tok": 2,
        "num_experts": 16, "expert_layer_period": 2, "expert_layer_offset": 1, "attn_layer_period": 8,
        "attn_layer_offset": 4, "mamba_d_state": 16, "mamba_d_conv": 4, "mamba_expand": 2,
        "mamba_dt_rank": "auto", "mamba_conv_bias": True, "mamba_proj_bias": False,
    },
    "nemotron_h": {  # NemotronHConfig (no RoPE; one mixer per block; relu2 MLPs and experts without a gate)
        "vocab_size": 131072, "hidden_size": 4096, "intermediate_size": 21504, "num_attention_heads": 32,
        "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 4096, "tie_word_embeddings": False,
        "attention_bias": False, "mlp_bias": False, "ssm_state_size": 128, "mamba_num_heads": 128,
        "mamba_head_dim": 64, "n_groups": 8, "conv_kernel": 4, "expand": 2, "use_conv_bias": True,
        "mamba_proj_bias": False, "use_bias": False, "n_routed_experts": 8, "n_shared_experts": 1,
        "moe_intermediate_size": 7688, "moe_shared_expert_intermediate_size": 7688, "moe_latent_size": None,
        "num_experts_per_tok": 2,
    },
    "granitemoehybrid": {  # GraniteMoeHybridConfig (mamba_d_head "auto" -> mamba_expand * hidden // mamba_n_heads;
        # layer_types None -> every layer Mamba; RoPE only when position_embedding_type is "rope")
        "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": None, "head_dim": None, "max_position_embeddings": 2048,
        "tie_word_embeddings": False, "rope_theta": 10000.0, "attention_bias": False, "num_local_experts": 8,
        "num_experts_per_tok": 2, "shared_intermediate_size": 1024, "position_embedding_type": None,
        "mamba_n_heads": 128, "mamba_n_groups": 1, "mamba_d_state": 256, "mamba_d_head": "auto", "mamba_d_conv": 4,
        "mamba_expand": 2, "mamba_conv_bias": True, "mamba_proj_bias": False,
    },
    "minimax": {  # MiniMaxConfig (default_theta 1e6; layer_types None -> even layers full, odd lightning; the
        # remote-code MiniMax-Text-01 / M1 configs spell the pattern attn_type_list, 1 = softmax, 0 = lightning)
        "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": None, "max_position_embeddings": 131072,
        "tie_word_embeddings": False, "rope_theta": 1e6, "sliding_window": None, "num_experts_per_tok": 2,
        "num_local_experts": 8,
    },
    "falcon_h1": {  # FalconH1Config (every layer attention + Mamba2 side by side; mamba_d_head "auto" ->
        # (mamba_d_ssm or mamba_expand * hidden) // mamba_n_heads; no head_dim field: hidden // heads unless given)
        "vocab_size": 128000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": None, "max_position_embeddings": 8192,
        "tie_word_embeddings": False, "rope_theta": 10000.0, "attention_bias": False, "mlp_bias": False,
        "mamba_d_ssm": 1024, "mamba_n_heads": 128, "mamba_d_head": "auto", "mamba_n_groups": 1, "mamba_d_state": 256,
        "mamba_d_conv": 4, "mamba_expand": 2, "mamba_conv_bias": True, "mamba_proj_bias": False,
        "mamba_rms_norm": False, "projectors_bias": False,
    },
    "nemotron-nas": {  # DeciLMConfig (hub remote code configuration_decilm.py) subclasses LlamaConfig: its
        # defaults; the per-layer facts are in block_configs (num_key_value_heads/intermediate_size null)
        "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": None, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": None, "head_dim": None,
        "max_position_embeddings": 2048, "tie_word_embeddings": False, "rope_theta": 10000.0,
        "attention_bias": False, "mlp_bias": False,
    },
    "glm4_moe": {  # Glm4MoeConfig (no head_dim field: Glm4MoeAttention uses hidden // heads when absent;
        # __post_init__ sets partial_rotary_factor 0.5; num_mtp_layers 1 is not built by transformers)
        "vocab_size": 151552, "hidden_size": 4096, "intermediate_size": 10944, "num_hidden_layers": 46,
        "num_attention_heads": 96, "num_key_value_heads": 8, "head_dim": None, "max_position_embeddings": 131072,
        "tie_word_embeddings": False, "rope_theta": 10000.0, "partial_rotary_factor": 0.5, "attention_bias": False,
        "moe_intermediate_size": 1408, "num_experts_per_tok": 8, "n_shared_experts": 1, "n_routed_experts": 128,
        "first_k_dense_replace": 1, "use_qk_norm": False,
    },
    "qwen3_next": {  # Qwen3NextConfig (partial_rotary_factor 0.25, full_attention_interval 4 in __post_init__)
        "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 48,
        "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256,
        "max_position_embeddings": 32768, "tie_word_embeddings": False, "rope_theta": 10000.0,
        "partial_rotary_factor": 0.25, "attention_bias": False, "linear_conv_kernel_dim": 4,
        "linear_key_head_dim": 128, "linear_value_head_dim": 128, "linear_num_key_heads": 16,
        "linear_num_value_heads": 32, "decoder_sparse_step": 1, "moe_intermediate_size": 512,
        "shared_expert_intermediate_size": 512, "num_experts_per_tok": 10, "num_experts": 512,
        "mlp_only_layers": [], "full_attention_interval": 4,
    },
    "qwen3_5_text": {  # Qwen3_5TextConfig (docstring checkpoint Qwen/Qwen3.5-27B, values of the 9B): Qwen3-Next's
        # hybrid layout with a dense MLP; partial_rotary_factor 0.25 and full_attention_interval 4 in __post_init__
        "vocab_size": 248320, "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 32,
        "num_attention_heads": 16, "num_key_value_heads": 4, "head_dim": 256, "max_position_embeddings": 32768,
        "tie_word_embeddings": False, "rope_theta": 10000.0, "partial_rotary_factor": 0.25, "attention_bias": False,
        "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128, "linear_value_head_dim": 128,
        "linear_num_key_heads": 16, "linear_num_value_heads": 32, "full_attention_interval": 4,
    },
    "qwen3_5_moe_text": {  # Qwen3_5MoeTextConfig (docstring checkpoint Qwen/Qwen3.5-35B-A3B): every layer MoE
        # (no intermediate_size field, no mlp_only_layers / decoder_sparse_step in Qwen3_5MoeDecoderLayer)
        "vocab_size": 248320, "hidden_size": 2048, "num_hidden_layers": 40, "num_attention_heads": 16,
        "num_key_value_heads": 2, "head_dim": 256, "max_position_embeddings": 32768, "tie_word_embeddings": False,
        "rope_theta": 10000.0, "partial_rotary_factor": 0.25, "attention_bias": False, "linear_conv_kernel_dim": 4,
        "linear_key_head_dim": 128, "linear_value_head_dim": 128, "linear_num_key_heads": 16,
        "linear_num_value_heads": 32, "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512,
        "num_experts_per_tok": 8, "num_experts": 256, "full_attention_interval": 4,
    },
}  # fmt: skip

# GptOssConfig.__post_init__: the rope block used when a gpt_oss config has none.
_GPT_OSS_ROPE = {
    "rope_type": "yarn",
    "factor": 32.0,
    "beta_fast": 32.0,
    "beta_slow": 1.0,
    "truncate": False,
    "original_max_position_embeddings": 4096,
}

# Other spellings of a model_type that read as one of the dialects above.
_ALIASES = {
    "gemma3": "gemma3_text",  # Gemma3Config wraps a Gemma3TextConfig in text_config
    "gemma3n": "gemma3n_text",  # Gemma3nConfig wraps a Gemma3nTextConfig in text_config
    "mllama_text_model": "mllama",  # MllamaConfig wraps a MllamaTextConfig (model_type mllama_text_model)
    "llama4": "llama4_text",  # Llama4Config wraps a Llama4TextConfig in text_config
    "qwen3_5": "qwen3_5_text",  # Qwen3_5Config wraps a Qwen3_5TextConfig in text_config
    "qwen3_5_moe": "qwen3_5_moe_text",  # Qwen3_5MoeConfig wraps a Qwen3_5MoeTextConfig
    "RefinedWebModel": "falcon",  # tiiuae/falcon-7b remote-code config (configuration_RW.py)
    "RefinedWeb": "falcon",  # tiiuae/falcon-40b remote-code config
    "minimax_text_01": "minimax",  # MiniMaxAI/MiniMax-Text-01 remote-code config (vLLM minimax_text_01.py reads it)
    "minimax_m1": "minimax",  # MiniMaxAI/MiniMax-M1-40k / -80k remote-code config, the same architecture
}
# Older key names (vLLM transformers_utils/configs/falcon.py RWConfig.attribute_map; FalconConfig n_embed).
_KEY_ALIASES = {
    "falcon": {"n_layer": "num_hidden_layers", "n_head": "num_attention_heads", "n_embed": "hidden_size",
               "n_head_kv": "num_kv_heads"},
    "gpt_oss": {"experts_per_token": "num_experts_per_tok", "num_experts": "num_local_experts"},
    # NemotronHConfig.__post_init__: the older mamba_* names of the same fields
    "nemotron_h": {"mamba_n_groups": "n_groups", "mamba_d_conv": "conv_kernel", "mamba_expand": "expand",
                   "mamba_conv_bias": "use_conv_bias"},
}  # fmt: skip
# The names other families give the core facts (their config classes' attribute_map in transformers
# 5.24: GPT2Config/BloomConfig n_layer, n_head, n_embd; MptConfig n_layers, n_heads, d_model, max_seq_len;
# ChatGLM multi_query_group_num). Read under any dialect when the Llama name is absent.
_CORE_ALIASES = {
    "num_hidden_layers": ("n_layer", "n_layers", "num_layers"),
    "num_attention_heads": ("n_head", "n_heads", "num_heads"),
    "hidden_size": ("n_embd", "n_embed", "d_model"),
    "head_dim": ("kv_channels",),  # JetMoeConfig, Megatron: the per-head K/V width
    "max_position_embeddings": ("n_positions", "max_seq_len", "max_sequence_length", "seq_length"),
    "intermediate_size": ("ffn_dim",),  # OPTConfig
}

# Dialects whose modeling code honours a sliding window (the others ignore the field).
_WINDOWED = {"mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma2", "gemma3_text", "phi3",
             "gpt_oss", "smollm3", "cohere2", "gemma3n_text", None}  # fmt: skip
_MOE_DIALECTS = {"mixtral", "qwen2_moe", "qwen3_moe", "qwen3_next", "deepseek_v2", "deepseek_v3", "deepseek_v32",
                 "gpt_oss", "jamba", "llama4_text", "minimax_m2", "glm4_moe", "qwen3_5_moe_text", "nemotron_h",
                 "granitemoehybrid", "minimax", None}  # fmt: skip
_DTYPE_FALLBACK = "bf16"  # what serving engines load a checkpoint in when it does not say


# ---- result --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    """A spec read from a config.json, what kvplan had to assume, and where it came from."""

    spec: ModelSpec
    warnings: list[str] = field(default_factory=list)
    origin: str = ""

    def to_yaml(self) -> str:
        """The spec as a kvplan YAML file; loading it back gives an equal spec."""
        return spec_yaml(self.spec, origin=self.origin, warnings=self.warnings)


def spec_yaml(spec: ModelSpec, *, origin: str, warnings: list[str]) -> str:
    """YAML in the bundled specs' style: block mappings, one-line layer kinds and lists."""
    header = [f"# Imported from {origin} (a Hugging Face config.json) by 'kvplan import'."]
    header += [f"# warning: {w}" for w in warnings]
    data = spec.model_dump(mode="json", exclude_defaults=True)
    for key in _ALWAYS_WRITTEN:  # facts a reader looks for even where they equal the schema default
        data.setdefault(key, getattr(spec, key))
    if spec.rope is not None:
        data["rope"] = {"theta": spec.rope.theta, **data.get("rope", {})}
    if "layers" in data:
        kinds = data["layers"].get("kinds", {})
        for name, kind in kinds.items():
            kinds[name] = _Flow({"type": spec.layers.kinds[name].type, **kind})
    ordered = {k: data[k] for k in ModelSpec.model_fields if k in data}
    body = yaml.dump(_flow_lists(ordered), Dumper=_SpecDumper, sort_keys=False, width=110, allow_unicode=True)
    return "\n".join(header) + "\n" + body


_ALWAYS_WRITTEN = ("tie_word_embeddings", "dtype")


class _Flow(dict):
    """A mapping written on one line."""


class _SpecDumper(yaml.SafeDumper):
    pass


def _flow_lists(value: Any) -> Any:
    if isinstance(value, dict):
        return type(value)({k: _flow_lists(v) for k, v in value.items()})
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return _FlowList(value)
    return value


class _FlowList(list):
    """A list of scalars written on one line."""


_SpecDumper.add_representer(_Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True))
_SpecDumper.add_representer(_FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


# ---- entry points ----------------------------------------------------------------------------


def import_config(path: Path, *, name: str | None = None) -> ImportResult:
    """Read ``path`` (a config.json, or a folder holding one) and convert it."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
        if not path.is_file():
            raise InvalidInput(f"folder {str(path.parent)!r} holds no config.json")
    elif not path.exists():
        raise InvalidInput(f"config file {str(path)!r} does not exist")
    from kvplan.quant import fold_quant_files

    return spec_from_hf_config(fold_quant_files(read_json(path), path.parent), origin=str(path), name=name)


def _check_model_types(config: dict[str, Any], *, origin: str) -> None:
    """model_type (outer and text_config's) is a name: anything else is refused before it is looked up."""
    text = config.get("text_config")
    for where, mapping in (("model_type", config), ("text_config.model_type", text if isinstance(text, dict) else {})):
        value = mapping.get("model_type")
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f'{origin}: {where}: expected a name such as "llama", got {value!r}')


def spec_from_hf_config(config: Any, *, origin: str, name: str | None = None) -> ImportResult:
    """Convert a parsed config.json mapping into a validated spec and the assumptions made."""
    if not isinstance(config, dict):
        raise InvalidInput(f"{origin}: a config.json must hold a JSON object, got {type(config).__name__}")
    _check_model_types(config, origin=origin)
    raw, outer_type, notes = _unwrap(config)
    model_type = raw.get("model_type")
    dialect = _dialect(model_type, config.get("architectures"))
    f = _Fields(_rename(raw, dialect), CLASS_DEFAULTS.get(dialect, {}), origin=origin, dialect=dialect)
    data = _build(f, raw_type=model_type if model_type is not None else outer_type)
    data["name"] = _spec_name(name, config, origin, model_type)
    data["source"] = str(config.get("_name_or_path") or origin)
    data["weights"], quant_notes = format_from_config(config)  # kvplan.quant: the checkpoint's weight format
    warnings = notes + quant_notes + _mtp_note(config) + f.notes
    if dialect is None:
        warnings.insert(0, _unknown_warning(model_type, f.assumed))
    return ImportResult(_validate(data, origin=origin), warnings, origin)


def _validate(data: dict[str, Any], *, origin: str) -> ModelSpec:
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(format_validation_error(exc, origin=origin)) from None


# ---- reading fields --------------------------------------------------------------------------


class _Fields:
    """One config mapping over its class defaults; records what kvplan assumed beyond both."""

    def __init__(self, raw: dict[str, Any], defaults: dict[str, Any], *, origin: str, dialect: str | None) -> None:
        self.raw, self.defaults, self.origin, self.dialect = raw, defaults, origin, dialect
        self.assumed: list[str] = []  # unknown model_type: every guess, for the one warning
        self.blocks: list[_Block] | None = None  # Nemotron-NAS block_configs, read once in _build
        self.notes: list[str] = []  # known model_type: things the spec cannot say

    def get(self, key: str) -> Any:
        """The file's value (``null`` included), else the class default, else None."""
        return self.raw[key] if key in self.raw else self.defaults.get(key)

    def known(self, key: str) -> bool:
        return self.get(key) is not None

    def integer(self, key: str, *, minimum: int = 1) -> int | None:
        value = self.get(key)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            what = "a positive whole number" if minimum == 1 else f"a whole number of at least {minimum}"
            raise InvalidInput(f"{self.origin}: {key}: expected {what}, got {value!r}")
        return value

    def fact(self, key: str) -> int:
        """A core fact (layers, heads, hidden size): read from the file, never from a class default."""
        if self.raw.get(key) is None:
            raise InvalidInput(
                f"{self.origin}: {key} is missing; kvplan never assumes a layer count, head count or hidden size"
            )
        return self.need(key)

    def need(self, key: str, *, minimum: int = 1) -> int:
        value = self.integer(key, minimum=minimum)
        if value is None:
            raise InvalidInput(f"{self.origin}: {key} is missing; kvplan needs it to describe the model")
        return value

    def number(self, key: str) -> float | None:
        value = self.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise InvalidInput(f"{self.origin}: {key}: expected a positive number, got {value!r}")
        return float(value)

    def flag(self, key: str) -> bool:
        value = self.get(key)
        if value is not None and not isinstance(value, bool):
            raise InvalidInput(f"{self.origin}: {key}: expected true or false, got {value!r}")
        return bool(value)

    def ints(self, key: str, *, what: str = "a list of layer indices") -> list[int]:
        value = self.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise InvalidInput(f"{self.origin}: {key}: expected {what}, got {value!r}")
        return value

    def assume(self, text: str) -> None:
        self.assumed.append(text)


def _unwrap(config: dict[str, Any]) -> tuple[dict[str, Any], Any, list[str]]:
    """A multimodal config's ``text_config`` (Gemma 3) with the outer dtype/name; notes on what is skipped."""
    text = config.get("text_config")
    if not isinstance(text, dict):
        return config, config.get("model_type"), []
    outer = config.get("model_type")
    inner = dict(text)
    inner.setdefault("model_type", outer)
    for key in ("torch_dtype", "dtype", "_name_or_path", "tie_word_embeddings"):
        if key in config and key not in inner:
            inner[key] = config[key]
    notes = []
    vision = config.get("vision_config")
    if isinstance(vision, dict):
        inner["_vision_config"] = vision  # read where the text model depends on it (mllama cross-attention)
    if "vision_config" in config and outer not in _VISION_COUNTED:
        notes.append("the vision tower (vision_config) is not counted in the parameters; the spec is the text model")
    if "audio_config" in config:
        notes.append("the audio encoder (audio_config) is not counted in the parameters; the spec is the text model")
    return inner, outer, notes


# Multimodal model types whose vision tower kvplan counts (in extra_params, see _mllama_layout).
_VISION_COUNTED = {"mllama"}


def _dialect(model_type: Any, architectures: Any = None) -> str | None:
    """The config class whose defaults and rules apply: by model_type, else by the architecture
    class the checkpoint names (Kimi K2 ships model_type kimi_k2 with DeepseekV3ForCausalLM)."""
    key = _ALIASES.get(model_type, model_type) if isinstance(model_type, str) else None
    if key in CLASS_DEFAULTS:
        return key
    if isinstance(architectures, list):
        for arch in architectures:
            if isinstance(arch, str) and arch in _ARCHITECTURES:  # a non-string entry: found by fuzzing
                return _ARCHITECTURES[arch]
    return None


# Architecture classes (config.json "architectures") -> the dialect whose modeling they run
# (transformers 5.24 models/auto/modeling_auto.py MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, reversed).
_ARCHITECTURES = {
    "LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "MixtralForCausalLM": "mixtral",
    "Qwen2ForCausalLM": "qwen2", "Qwen2MoeForCausalLM": "qwen2_moe", "Qwen3ForCausalLM": "qwen3",
    "Qwen3MoeForCausalLM": "qwen3_moe", "Gemma2ForCausalLM": "gemma2", "DeepseekV2ForCausalLM": "deepseek_v2",
    "DeepseekV3ForCausalLM": "deepseek_v3", "DeepseekV32ForCausalLM": "deepseek_v32",
    "Phi3ForCausalLM": "phi3", "GptOssForCausalLM": "gpt_oss", "CohereForCausalLM": "cohere",
    "Olmo2ForCausalLM": "olmo2", "JambaForCausalLM": "jamba", "Qwen3NextForCausalLM": "qwen3_next",
    "SmolLM3ForCausalLM": "smollm3", "MiniMaxM2ForCausalLM": "minimax_m2", "Cohere2ForCausalLM": "cohere2",
    "NemotronHForCausalLM": "nemotron_h", "GraniteMoeHybridForCausalLM": "granitemoehybrid",
    "FalconH1ForCausalLM": "falcon_h1", "MiniMaxForCausalLM": "minimax", "MiniMaxText01ForCausalLM": "minimax",
    "MiniMaxM1ForCausalLM": "minimax",
    "Glm4MoeForCausalLM": "glm4_moe", "Qwen3_5ForCausalLM": "qwen3_5_text", "Qwen3_5MoeForCausalLM": "qwen3_5_moe_text",
    "DeciLMForCausalLM": "nemotron-nas", "Gemma3nForCausalLM": "gemma3n_text",
    "Gemma3nForConditionalGeneration": "gemma3n_text", "MllamaForConditionalGeneration": "mllama",
    "MllamaForCausalLM": "mllama",
}  # fmt: skip


def _rename(raw: dict[str, Any], dialect: str | None) -> dict[str, Any]:
    out = dict(raw)
    for old, new in _KEY_ALIASES.get(dialect or "", {}).items():
        if old in out and new not in out:
            out[new] = out[old]
    for new, olds in _CORE_ALIASES.items():
        for old in olds:
            if out.get(new) is None and isinstance(out.get(old), int) and not isinstance(out.get(old), bool):
                out[new] = out[old]
    if raw.get("model_type") == "RefinedWeb" and "new_decoder_architecture" not in out:
        # falcon-40b's RW config: always the "large" decoder (TGI flash_rw_modeling: RefinedWeb -> FlashRWLargeLayer).
        out["new_decoder_architecture"] = True
    return out


def _spec_name(name: str | None, config: dict[str, Any], origin: str, model_type: Any) -> str:
    if name:
        return name
    candidate = config.get("_name_or_path")
    if not isinstance(candidate, str) or not candidate.strip("/ "):
        path = Path(origin)
        candidate = path.parent.name if path.name == "config.json" else path.stem
    slug = re.sub(r"[^a-z0-9._-]+", "-", candidate.rstrip("/").split("/")[-1].lower()).strip("-.")
    return slug or str(model_type or "imported-model")


# Names of the multi-token-prediction layer count (DeepSeek/GLM num_nextn_predict_layers; Qwen3-Next and
# Qwen3.5 mtp_num_hidden_layers, inside text_config for the multimodal Qwen3.5 releases).
_MTP_KEYS = ("num_nextn_predict_layers", "num_mtp_layers", "num_mtp_modules", "mtp_num_hidden_layers")


def _mtp_note(config: dict[str, Any]) -> list[str]:
    text = config.get("text_config")
    scopes = [config, text] if isinstance(text, dict) else [config]
    key, mtp = next(((k, scope[k]) for scope in scopes for k in _MTP_KEYS if scope.get(k)), (None, None))
    if not isinstance(mtp, int) or isinstance(mtp, bool) or mtp < 1:
        return []
    return [f"the multi-token-prediction module ({mtp} layer(s), {key}) is not counted"]


def _unknown_warning(model_type: Any, assumed: list[str]) -> str:
    what = f"model_type {model_type!r} is not a dialect kvplan knows" if model_type else "no model_type"
    listed = "; ".join(assumed) if assumed else "nothing beyond the standard fields"
    return f"{what}; imported best-effort from the standard fields: {listed}"


# The schema's own bound on num_layers (kvplan.spec.LayerCount).
MAX_LAYERS = 100_000

# ---- building the spec -----------------------------------------------------------------------


def _build(f: _Fields, *, raw_type: Any) -> dict[str, Any]:
    hidden = f.fact("hidden_size")
    layers = _layer_count(f)
    if layers > MAX_LAYERS:  # checked before any per-layer list is built (found by fuzzing)
        raise InvalidInput(f"{f.origin}: num_hidden_layers: {layers!r} is beyond {MAX_LAYERS:,} layers")
    heads = f.fact("num_attention_heads")
    if "block_configs" in f.raw:
        f.blocks = _nas_blocks(f, layers=layers, heads=heads, hidden=hidden)
    head_dim, v_head_dim = _head_dims(f, hidden=hidden, heads=heads)
    kinds, per_layer = _layout(f, layers=layers, max_pos=_max_positions(f))
    _refuse_unread_state(f, kinds)
    data: dict[str, Any] = {
        "family": raw_type if isinstance(raw_type, str) else None,
        "notes": f"imported from a Hugging Face config.json (model_type {raw_type!r})",
        "hidden_size": hidden,
        "vocab_size": f.need("vocab_size"),
        "num_layers": layers,
        "num_attention_heads": heads,
        "num_kv_heads": _kv_heads(f, heads=heads),
        "head_dim": head_dim,
        "v_head_dim": v_head_dim,
        "intermediate_size": _intermediate(f, hidden=hidden),
        "mlp_widths": _mlp_widths(f),
        "tie_word_embeddings": _tie(f),
        "dtype": _dtype(f),
        "max_position_embeddings": _max_positions(f),
        "rope": _rope(f),
        "layers": _compact(kinds, per_layer),
        "moe": _moe(f, layers=layers),
        "params": _param_layout(f, heads=heads, head_dim=head_dim, per_layer=per_layer, hidden=hidden),
    }
    return {k: v for k, v in data.items() if v is not None or k == "rope"}


# Field-name prefixes of a per-sequence recurrent or convolution state (Mamba, SSM, linear
# attention, short convolutions, RWKV, xLSTM). A config carrying one whose layout gave no
# recurrent layer holds a state kvplan did not read: refused rather than planned as attention.
_STATE_FIELDS = ("mamba_", "ssm_", "linear_", "conv_L_cache", "short_conv", "rwkv", "xlstm", "lru_", "mlstm",
                 "slstm", "recurrent_", "time_mix", "kda_", "lightning_")  # fmt: skip


def _refuse_unread_state(f: _Fields, kinds: dict[str, dict[str, Any]]) -> None:
    if any(k["type"] == "recurrent" or "parallel" in k for k in kinds.values()):
        return
    found = sorted(
        key for key, value in f.raw.items()
        if value not in (None, False, 0, [], {}) and key.lower().startswith(_STATE_FIELDS)
    )  # fmt: skip
    if found:
        raise InvalidInput(
            f"{f.origin}: the config carries recurrent-state fields ({', '.join(found[:4])}) but no per-layer "
            "layout kvplan can read for them; refusing rather than planning every layer as attention"
        )


def _layer_count(f: _Fields) -> int:
    """num_hidden_layers; NemotronHConfig deprecates it for the length of its per-layer list
    (layers_block_type, or the older hybrid_override_pattern string), which is then the fact."""
    if f.raw.get("num_hidden_layers") is None:
        for key in ("layers_block_type", "hybrid_override_pattern"):
            listed = f.raw.get(key)
            if isinstance(listed, (list, str)) and listed and len(listed) <= MAX_LAYERS:
                return len(listed)
    return f.fact("num_hidden_layers")


def _head_dims(f: _Fields, *, hidden: int, heads: int) -> tuple[int, int | None]:
    """K head size (q/k for MLA: nope + rope) and V head size when it differs."""
    if f.known("kv_lora_rank"):  # MLA: q/k head = nope + rope part; v head its own
        qk = f.need("qk_nope_head_dim") + f.need("qk_rope_head_dim")
        return qk, f.need("v_head_dim")
    explicit = None if f.dialect == "falcon" else f.integer("head_dim")  # FalconConfig.head_dim is a property
    if explicit is not None:
        v = f.integer("v_head_dim")  # MiMo-V2-Flash: K 192, V 128 (v_proj: num_kv_heads * v_head_dim)
        return explicit, v if v is not None and v != explicit else None
    if hidden % heads:
        raise InvalidInput(
            f"{f.origin}: head_dim is absent and hidden_size ({hidden}) is not divisible by "
            f"num_attention_heads ({heads}); add head_dim to the config"
        )
    if f.dialect is None:
        f.assume(f"head_dim assumed hidden_size/num_attention_heads = {hidden // heads}")
    return hidden // heads, None


def _kv_heads(f: _Fields, *, heads: int) -> int:
    if f.blocks is not None:  # per layer in block_configs; the model-wide value is the first attending layer's
        return next((b.kv_heads for b in f.blocks if b.kv_heads), heads)
    if f.dialect == "falcon":
        # FalconAttention: num_kv_heads if (new_decoder_architecture or not multi_query) else 1.
        if f.flag("new_decoder_architecture") or not f.flag("multi_query"):
            return f.integer("num_kv_heads") or heads
        return 1
    if f.known("kv_lora_rank"):
        return heads  # MLA expands the latent to every query head; num_key_value_heads carries no KV meaning
    kv = f.integer("num_key_value_heads")
    if kv is None:
        if f.dialect is None:
            f.assume(f"num_key_value_heads assumed = num_attention_heads = {heads} (MHA)")
        return heads
    return kv


def _intermediate(f: _Fields, *, hidden: int) -> int | None:
    if f.blocks is not None:
        return max(b.mlp_width for b in f.blocks) or None  # the widest; mlp_widths has every layer's
    listed = f.raw.get("intermediate_size")
    if isinstance(listed, list):  # Gemma 3n: one width per layer
        if not listed or len(set(map(repr, listed))) != 1:
            raise InvalidInput(
                f"{f.origin}: intermediate_size differs between layers ({listed!r}); kvplan's "
                "spec has one dense MLP width"
            )
        f.raw["intermediate_size"] = listed[0]
    if f.dialect == "falcon":
        return f.integer("ffn_hidden_size") or 4 * hidden  # FalconConfig: ffn_hidden_size None -> 4 * hidden
    if f.dialect == "llama4_text":
        return f.integer("intermediate_size_mlp")  # Llama4TextMLP of the dense layers
    if f.dialect == "granitemoehybrid":  # GraniteMoeHybridMLP (shared_mlp) is the dense MLP when there are no experts
        return None if _expert_count(f) else f.need("shared_intermediate_size")
    if f.dialect is None and not _expert_count(f):
        return f.need("intermediate_size")
    return f.integer("intermediate_size")


def _tie(f: _Fields) -> bool:
    if "tie_word_embeddings" not in f.raw and f.dialect is None:
        f.assume("tie_word_embeddings assumed false")
    return f.flag("tie_word_embeddings")


def _max_positions(f: _Fields) -> int:
    return f.need("max_position_embeddings")


def _dtype(f: _Fields) -> str:
    value = f.raw.get("dtype") or f.raw.get("torch_dtype")  # transformers 5 writes "dtype"; 4.x "torch_dtype"
    if value is None:
        _note(f, f"no torch_dtype/dtype; dtype assumed {_DTYPE_FALLBACK}")
        return _DTYPE_FALLBACK
    key = canonical_dtype(str(value))
    if key == "fp32":
        # Serving engines load a float32 checkpoint in 16-bit unless told otherwise: vLLM's dtype "auto"
        # ("Downcast for float32 models", vllm/config/model.py) takes the platform's first supported
        # dtype, bfloat16 on CUDA (older vLLM picked float16; both are 2 bytes per element).
        _note(
            f,
            f"the checkpoint is float32; planned in the serving dtype {_DTYPE_FALLBACK} (pass --kv-dtype fp32 "
            "or edit dtype for a float32 deployment)",
        )
        return _DTYPE_FALLBACK
    if key in ("bf16", "fp16"):
        return key
    _note(f, f"dtype {value!r} is not a 16/32-bit float; dtype assumed {_DTYPE_FALLBACK}")
    return _DTYPE_FALLBACK


def _note(f: _Fields, text: str) -> None:
    (f.assume if f.dialect is None else f.notes.append)(text)


# ---- per-layer layout ----------------------------------------------------------------------


def _layout(f: _Fields, *, layers: int, max_pos: int) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The layer kinds used and the kind name of every layer."""
    window = _window(f, max_pos=max_pos)
    types = _layer_types(f, layers=layers, window=window)
    shared = _kv_shared_layers(f, layers=layers)
    types = [f"{t}+shared" if i in shared and t.split("+")[0] in _SHAREABLE else t for i, t in enumerate(types)]
    types = [t + extra for t, extra in zip(types, _per_layer_geometry(f, types), strict=True)]
    by_type = {t: _kind(f, t, window=window) for t in dict.fromkeys(types)}  # each type once, in layer order
    return dict(by_type.values()), [by_type[t][0] for t in types]


def _per_layer_geometry(f: _Fields, types: list[str]) -> list[str]:
    """Per-layer head size and KV heads where they differ from the model's (Gemma 4), as type extras.

    Gemma4TextConfig (transformers 5.24 configuration_gemma4.py __post_init__): full-attention layers use
    ``global_head_dim`` and, when ``attention_k_eq_v``, ``num_global_key_value_heads``; transformers writes the
    result back as ``per_layer_config`` {layer index: {head_dim, num_key_value_heads}}. Either spelling is read.
    """
    listed = f.raw.get("per_layer_config")
    if isinstance(listed, dict) and listed:
        return [_geometry_extra(f, listed.get(str(i)) or _padded(listed, i)) for i in range(len(types))]
    if listed is not None and not isinstance(listed, dict):
        raise InvalidInput(f"{f.origin}: per_layer_config: expected an object of layer index -> sizes, got {listed!r}")
    if f.raw.get("global_head_dim") is None:
        return [""] * len(types)
    full = {"head_dim": f.need("global_head_dim")}
    if f.flag("attention_k_eq_v") and f.raw.get("num_global_key_value_heads") is not None:
        full["num_key_value_heads"] = f.need("num_global_key_value_heads")
    return [_geometry_extra(f, full) if t.split("+")[0] == "full_attention" else "" for t in types]


def _padded(listed: dict[str, Any], i: int) -> Any:
    """transformers writes per_layer_config keys zero-padded to the width of the last index ('05')."""
    return next((v for k, v in listed.items() if isinstance(k, str) and k.isdigit() and int(k) == i), None)


def _geometry_extra(f: _Fields, entry: Any) -> str:
    if entry is None:
        return ""
    if not isinstance(entry, dict):
        raise InvalidInput(f"{f.origin}: per_layer_config entries must be objects, got {entry!r}")
    extra = ""
    for key, tag in (("head_dim", "hd"), ("num_key_value_heads", "kv")):
        value = entry.get(key)
        if value is None or value == f.get(key):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInput(f"{f.origin}: per_layer_config {key}: expected a positive whole number, got {value!r}")
        extra += f"+{tag}{value}"
    return extra


def _kv_shared_layers(f: _Fields, *, layers: int) -> set[int]:
    """Gemma 3n / Gemma 4: the last ``num_kv_shared_layers`` layers reuse an earlier layer's K/V
    (Gemma3nTextConfig.kv_sharing_modes: "reuse" from num_hidden_layers - num_kv_shared_layers on)."""
    n = f.integer("num_kv_shared_layers", minimum=0) or 0
    if n > layers:
        raise InvalidInput(f"{f.origin}: num_kv_shared_layers ({n}) exceeds num_hidden_layers ({layers})")
    sources = f.raw.get("kv_source_layers")  # MistralLarge4TextConfig: the layer whose latent each layer reads
    if sources is None:
        return set(range(layers - n, layers))
    if (
        not isinstance(sources, list)
        or len(sources) != layers
        or not all(isinstance(v, int) and 0 <= v <= i for i, v in enumerate(sources))
    ):
        raise InvalidInput(f"{f.origin}: kv_source_layers must name, per layer, itself or an earlier layer")
    return set(range(layers - n, layers)) | {i for i, v in enumerate(sources) if v != i}


def _window(f: _Fields, *, max_pos: int) -> int | None:
    """The sliding window when it is active; None when absent, switched off or never binding."""
    if f.dialect not in _WINDOWED and "layer_types" not in f.raw:
        return None
    switchable = "use_sliding_window" in f.raw or "use_sliding_window" in f.defaults
    if switchable and not f.flag("use_sliding_window"):
        return None  # Qwen2/Qwen3: sliding_window is ignored unless use_sliding_window
    window = f.integer("sliding_window", minimum=0)
    if not window or window >= max_pos:  # 0 is how Qwen2MoeConfig writes a disabled window
        return None  # e.g. Phi-3-mini-128k: 262144 > 131072, older Mixtral 32768 = context
    return window


def _layer_types(f: _Fields, *, layers: int, window: int | None) -> list[str]:
    """One HF layer-type name per layer (``full_attention``, ``sliding_attention``, ...)."""
    d = f.dialect
    if d == "falcon_h1":  # FalconH1DecoderLayer: attention and a Mamba2 mixer in every layer ("hybrid")
        return ["full_attention+mamba2"] * layers
    if d == "jamba":  # JambaConfig.layers_block_type
        period, offset = f.need("attn_layer_period"), f.need("attn_layer_offset", minimum=0)
        return ["full_attention" if i % period == offset else "mamba" for i in range(layers)]
    if f.blocks is not None:
        return _nas_types(f.blocks)
    if d == "mllama":  # MllamaTextModel: MllamaCrossAttentionDecoderLayer at cross_attention_layers, whose default
        # is MllamaTextConfig.__post_init__'s (transformers 5.24 configuration_mllama.py)
        cross = set(f.ints("cross_attention_layers") or [3, 8, 13, 18, 23, 28, 33, 38])
        if cross - set(range(layers)):
            raise InvalidInput(f"{f.origin}: cross_attention_layers {sorted(cross)} go beyond {layers} layers")
        return ["cross_attention" if i in cross else "full_attention" for i in range(layers)]
    explicit = _explicit_types(f, layers=layers)
    if explicit is not None:
        types = _checked_types(f, explicit, layers=layers, window=window)
    elif d in ("qwen3_next", "qwen3_5_text", "qwen3_5_moe_text"):  # (i + 1) % full_attention_interval -> linear
        every = f.need("full_attention_interval")
        types = ["linear_attention" if (i + 1) % every else "full_attention" for i in range(layers)]
    elif d == "llama4_text":
        types = _llama4_types(f, layers=layers)
    elif d == "granitemoehybrid":  # GraniteMoeHybridConfig.__post_init__: layer_types None -> every layer Mamba
        types = ["linear_attention"] * layers
    elif d == "minimax":
        types = _minimax_types(f, layers=layers)
    elif d == "smollm3":
        types = _smollm3_types(f, layers=layers, window=window)
    elif window is None:
        if d is None and not f.known("kv_lora_rank"):
            f.assume("every layer assumed full attention (no layer_types, no active sliding_window)")
        types = ["full_attention"] * layers
    else:
        types = [_sliding_rule(f, i) for i in range(layers)]
    if d == "smollm3" and explicit is not None:
        types = _smollm3_nope(f, types)
    if d == "cohere2":  # Cohere2Attention applies RoPE on sliding layers only
        types = ["nope_attention" if t == "full_attention" else t for t in types]
    if explicit is None and f.known("index_head_dim"):
        # DeepseekV32Config / GlmMoeDsaConfig.__post_init__: layer_types default to indexed_attention
        types = ["indexed_attention" if t == "full_attention" else t for t in types]
    if f.known("kv_lora_rank"):  # MLA wherever the config carries a latent rank (DeepSeek, Kimi, MiniCPM3, GLM-5)
        if 0 in (f.raw.get("no_rope_layers") or []):
            # MistralLarge4Attention: a NoPE layer caches the latent without its RoPE part (qk_rope_head_dim 0)
            raise InvalidInput(
                f"{f.origin}: no_rope_layers: MLA layers without RoPE (a latent of kv_lora_rank only) are not supported"
            )
        types = [_as_mla(f, t) for t in types]
    return _shared_indexers(f, types)


def _shared_indexers(f: _Fields, types: list[str]) -> list[str]:
    """HyV4 / MistralLarge4 ``indexer_types``: a "shared" layer reuses the previous full layer's top-k
    and keeps no indexer keys of its own (modeling_hy_v4.py, modeling_mistral_large4.py)."""
    modes = f.raw.get("indexer_types")
    if modes is None:
        return types
    if not isinstance(modes, list) or len(modes) != len(types) or set(modes) - {"full", "shared"}:
        raise InvalidInput(f"{f.origin}: indexer_types must list 'full' or 'shared' per layer, got {modes!r}")
    return [t.replace("+indexer", "") if mode == "shared" else t for t, mode in zip(types, modes, strict=True)]


def _as_mla(f: _Fields, layer_type: str) -> str:
    if layer_type in ("full_attention", "mla", "indexed_attention"):
        return "mla+indexer" if layer_type == "indexed_attention" else "mla"
    if layer_type in _ATTENTION_TYPES:
        raise InvalidInput(f"{f.origin}: {layer_type} layers with an MLA latent (kv_lora_rank) are not supported")
    return layer_type


def _minimax_types(f: _Fields, *, layers: int) -> list[str]:
    """MiniMax-01 / M1: the remote-code attn_type_list (1 = softmax attention, 0 = lightning; vLLM
    minimax_text_01.py attention_type), else MiniMaxConfig.__post_init__'s default (even layers full)."""
    flags = f.raw.get("attn_type_list")
    if flags is None:
        return ["full_attention" if (i + 1) % 2 else "linear_attention" for i in range(layers)]
    if not isinstance(flags, list) or len(flags) != layers or set(map(repr, flags)) - {"0", "1"}:
        raise InvalidInput(f"{f.origin}: attn_type_list must hold 0 (lightning) or 1 (softmax) per layer ({layers})")
    return ["full_attention" if flag == 1 else "linear_attention" for flag in flags]


_ROPE_FLAGS = "a list of 0/1 flags, one per layer (1: the layer uses RoPE)"


def _llama4_types(f: _Fields, *, layers: int) -> list[str]:
    """Llama4TextConfig.__post_init__: an empty or absent ``no_rope_layers`` is replaced by the
    default (1 = RoPE + chunked local attention, 0 = every no_rope_layer_interval-th layer, NoPE, full)."""
    flags = f.ints("no_rope_layers", what=_ROPE_FLAGS) or [
        int((i + 1) % f.need("no_rope_layer_interval")) != 0 for i in range(layers)
    ]
    if len(flags) != layers:
        raise InvalidInput(f"{f.origin}: no_rope_layers lists {len(flags)} layers but num_hidden_layers is {layers}")
    if not f.raw.get("no_rope_layers"):
        f.notes.append("no_rope_layers is empty: transformers' default applies (every 4th layer global, NoPE)")
    chunk = f.integer("attention_chunk_size")
    return ["chunked_attention" if flag and chunk else "nope_attention" for flag in flags]


def _smollm3_types(f: _Fields, *, layers: int, window: int | None) -> list[str]:
    """SmolLM3Config.__post_init__: no_rope_layers (1 = RoPE) default every no_rope_layer_interval-th
    layer NoPE; a NoPE layer slides only when use_sliding_window and a window are set."""
    flags = f.ints("no_rope_layers", what=_ROPE_FLAGS) or [
        int((i + 1) % f.need("no_rope_layer_interval") != 0) for i in range(layers)
    ]
    if len(flags) != layers:
        raise InvalidInput(f"{f.origin}: no_rope_layers lists {len(flags)} layers but num_hidden_layers is {layers}")
    return ["full_attention" if rope else "sliding_attention" if window else "nope_attention" for rope in flags]


def _smollm3_nope(f: _Fields, types: list[str]) -> list[str]:
    """SmolLM3 checkpoints that list layer_types (HuggingFaceTB/SmolLM3-3B: all "full_attention") still
    skip RoPE where no_rope_layers says 0: SmolLM3Attention.use_rope = config.no_rope_layers[layer_idx],
    whatever the layer type (modeling_smollm3.py, transformers 5.24.0)."""
    flags = _smollm3_types(f, layers=len(types), window=None)
    return ["nope_attention" if t == "full_attention" and flag == "nope_attention" else t
            for t, flag in zip(types, flags, strict=True)]  # fmt: skip


# Other spellings of a per-layer block list: the values below are each family's own words
# (JambaConfig/ZambaConfig layers_block_type, GraniteMoeHybridConfig layer_types "mamba"/"attention",
# transformers configuration_utils._LEGACY_LAYER_TYPE_REMAP).
_TYPE_SPELLINGS = {
    "attention": "full_attention",
    "mamba": "linear_attention",
    "deepseek_sparse_attention": "indexed_attention",
    "mlp": "none",
    "moe": "none",
    "dummy": "none",
}
_ATTENTION_TYPES = ("full_attention", "sliding_attention", "chunked_attention", "nope_attention")
_SHAREABLE = (*_ATTENTION_TYPES, "mla")
_KNOWN_TYPES = (*_ATTENTION_TYPES[:3], "linear_attention", "indexed_attention", "none")


# ---- Nemotron-NAS (DeciLM) block_configs -----------------------------------------------------


@dataclass(frozen=True)
class _Block:
    """One DeciLM block: KV heads (0: no attention), a linear stand-in for attention, MLP width (0: none)."""

    kv_heads: int
    linear: bool
    mlp_width: int


# Block fields kvplan reads; anything else set (sinks, windows, sparsity, Mamba, parallel blocks) is refused.
_NAS_ATTENTION_READ = {"n_heads_in_group", "no_op", "replace_with_linear"}
_NAS_FFN_READ = {"ffn_mult", "intermediate_size", "no_op", "replace_with_linear"}


def _nas_blocks(f: _Fields, *, layers: int, heads: int, hidden: int) -> list[_Block]:
    """DeciLMConfig.block_configs: one {attention, ffn} entry per layer (hub configuration_decilm.py;
    vLLM models/nemotron_nas.py DeciLMDecoderLayer reads the same fields)."""
    listed = f.raw.get("block_configs")
    if not isinstance(listed, list) or len(listed) != layers:
        size = len(listed) if isinstance(listed, list) else listed
        raise InvalidInput(f"{f.origin}: block_configs must list one block per layer ({layers}), got {size!r}")
    return [_nas_block(f, i, entry, heads=heads, hidden=hidden) for i, entry in enumerate(listed)]


def _nas_block(f: _Fields, i: int, entry: Any, *, heads: int, hidden: int) -> _Block:
    attention = entry.get("attention") if isinstance(entry, dict) else None
    ffn = entry.get("ffn") if isinstance(entry, dict) else None
    if not isinstance(attention, dict) or not isinstance(ffn, dict):
        raise InvalidInput(f"{f.origin}: block_configs[{i}] needs an 'attention' and an 'ffn' object, got {entry!r}")
    for part, read in ((attention, _NAS_ATTENTION_READ), (ffn, _NAS_FFN_READ)):
        unread = sorted(k for k, v in part.items() if k not in read and v not in (None, False, "silu"))
        if unread:
            raise InvalidInput(
                f"{f.origin}: block_configs[{i}] sets {', '.join(unread)}, which kvplan cannot describe; "
                f"it reads {', '.join(sorted(_NAS_ATTENTION_READ | _NAS_FFN_READ))}"
            )
    if ffn.get("replace_with_linear") and not ffn.get("no_op"):
        raise InvalidInput(f"{f.origin}: block_configs[{i}].ffn.replace_with_linear: a linear FFN is not supported")
    return _Block(_nas_kv_heads(f, i, attention, heads=heads), bool(attention.get("replace_with_linear"))
                  and not attention.get("no_op"), _nas_mlp_width(f, i, ffn, hidden=hidden))  # fmt: skip


def _nas_kv_heads(f: _Fields, i: int, attention: dict[str, Any], *, heads: int) -> int:
    if attention.get("no_op") or attention.get("replace_with_linear"):
        return 0
    group = attention.get("n_heads_in_group")
    if isinstance(group, bool) or not isinstance(group, int) or group < 1 or heads % group:
        raise InvalidInput(
            f"{f.origin}: block_configs[{i}].attention.n_heads_in_group must divide num_attention_heads "
            f"({heads}), got {group!r}"
        )
    return heads // group  # DeciLMAttention: num_key_value_heads = num_attention_heads // n_heads_in_group


def _nas_mlp_width(f: _Fields, i: int, ffn: dict[str, Any], *, hidden: int) -> int:
    if ffn.get("no_op"):
        return 0
    size = ffn.get("intermediate_size")
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    mult = ffn.get("ffn_mult")
    if isinstance(mult, bool) or not isinstance(mult, (int, float)) or mult <= 0:
        raise InvalidInput(f"{f.origin}: block_configs[{i}].ffn.ffn_mult: expected a positive number, got {mult!r}")
    # _ffn_mult_to_intermediate_size (hub modeling_decilm.py; vLLM nemotron_nas.py): int(2 * mult * hidden / 3)
    # rounded up to a multiple of 256
    width = int(2 * mult * hidden / 3)
    return -(-width // 256) * 256


def _nas_types(blocks: list[_Block]) -> list[str]:
    """Layer types with the KV head count as an extra where layers differ in it."""
    counts = {b.kv_heads for b in blocks if b.kv_heads}
    suffix = len(counts) > 1
    return [
        ("full_attention" + (f"+kv{b.kv_heads}" if suffix else "")) if b.kv_heads
        else "linear_replacement" if b.linear else "none"
        for b in blocks
    ]  # fmt: skip


def _mlp_widths(f: _Fields) -> list[int] | None:
    """Per-layer MLP widths, written only where the layers differ or some have none."""
    if f.blocks is None:
        return None
    widths = [b.mlp_width for b in f.blocks]
    return None if len(set(widths)) == 1 else widths


def _explicit_types(f: _Fields, *, layers: int) -> list[Any] | None:
    """A per-layer list under any of the names families use, or Nemotron-H's pattern string."""
    for key in ("layer_types", "layers_block_type", "block_types"):
        value = f.raw.get(key)
        if value is not None:
            return value
    pattern = f.raw.get("hybrid_override_pattern")
    if pattern is not None:
        return _nemotron_pattern(f, pattern, layers=layers)
    return None


def _nemotron_pattern(f: _Fields, pattern: Any, *, layers: int) -> list[str]:
    """NemotronHConfig.hybrid_override_pattern: one character per layer, M = Mamba2, * = attention,
    - = MLP, E = MoE (configuration_nemotron_h.py _pattern_to_list)."""
    chars = {"M": "linear_attention", "*": "full_attention", "-": "none", "E": "none"}
    if not isinstance(pattern, str) or len(pattern) != layers or set(pattern) - set(chars):
        raise InvalidInput(
            f"{f.origin}: hybrid_override_pattern must hold one of M, *, -, E per layer ({layers}), got {pattern!r}"
        )
    return [chars[c] for c in pattern]


def _sliding_rule(f: _Fields, i: int) -> str:
    """Default layer types of each dialect's config class when the window is active."""
    d, s, full = f.dialect, "sliding_attention", "full_attention"
    if d in ("gemma2", "gpt_oss"):
        return s if (i + 1) % 2 else full  # even index sliding
    if d in ("gemma3_text", "cohere2"):
        return s if (i + 1) % f.need("sliding_window_pattern") else full  # every pattern-th layer global
    if d == "gemma3n_text":
        return s if (i + 1) % 5 else full  # Gemma3nTextConfig.__post_init__: every 5th layer full
    if d in ("qwen2", "qwen3"):
        return s if i >= f.need("max_window_layers", minimum=0) else full  # Qwen2Config: layers past max_window_layers
    if d == "qwen2_moe":
        return s if (i + 1) % 2 and i < f.need("max_window_layers", minimum=0) else full
    if d is None and i == 0:
        f.assume("sliding_window assumed on every layer (no layer_types)")
    return s  # mistral, mixtral, qwen3_moe, phi3 (and unknown types): every layer


def _checked_types(f: _Fields, types: Any, *, layers: int, window: int | None) -> list[str]:
    if not isinstance(types, list) or len(types) != layers:
        raise InvalidInput(f"{f.origin}: layer_types must list one entry per layer ({layers}), got {types!r}")
    out = []
    for t in types:
        t = _TYPE_SPELLINGS.get(t, t) if isinstance(t, str) else t
        if t not in _KNOWN_TYPES:
            raise InvalidInput(
                f"{f.origin}: layer_types entry {t!r} is a layer kind kvplan cannot describe; "
                f"it reads {', '.join(_KNOWN_TYPES)} (and their older spellings)"
            )
        out.append("full_attention" if t == "sliding_attention" and window is None else t)
    return out


def _kind(f: _Fields, layer_type: str, *, window: int | None) -> tuple[str, dict[str, Any]]:
    base, *extras = layer_type.split("+")
    name, kind = _base_kind(f, base, window=window)
    if "indexer" in extras:
        name, kind = f"{name}_indexed", {**kind, "index_head_dim": f.need("index_head_dim")}
        if f.known("index_n_heads"):  # sizes the indexer's weights (kvplan.params._indexer_parts)
            kind["index_n_heads"] = f.need("index_n_heads")
        if f.known("index_topk"):  # the keys each query attends to (kvplan.latency.dsa_prefill_s)
            kind["index_topk"] = f.need("index_topk")
    if "shared" in extras:
        name, kind = f"{name}_shared", {**kind, "kv_shared": True}
    if "mamba2" in extras:
        name, kind = "hybrid", {**kind, "parallel": _mamba2_kind(f)}
    if f.dialect in _MIXER_ONLY_DIALECTS and kind["type"] != "none":
        kind = {**kind, "mlp": False}  # the block is its mixer alone; MLP / MoE blocks are layers of their own
    for extra in extras:
        if extra.startswith("kv"):  # Nemotron-NAS, Gemma 4: this layer's own KV head count
            name, kind = f"{name}_{extra}", {**kind, "num_kv_heads": int(extra[2:])}
        if extra.startswith("hd"):  # Gemma 4 global layers: their own head size
            name, kind = f"{name}_{extra}", {**kind, "head_dim": int(extra[2:])}
    return name, kind


# Dialects whose decoder layer holds one mixer only (NemotronHBlock: norm + Mamba2, attention, MLP or MoE).
_MIXER_ONLY_DIALECTS = {"nemotron_h"}


def _base_kind(f: _Fields, layer_type: str, *, window: int | None) -> tuple[str, dict[str, Any]]:
    if layer_type == "full_attention":
        return "full", {"type": "full"}
    if layer_type == "nope_attention":
        return "global", {"type": "full", "use_rope": False}
    if layer_type == "sliding_attention":
        kind: dict[str, Any] = {"type": "sliding", "window": window}
        model_type = f.raw.get("model_type")
        factor = _SLIDING_KV_FACTOR.get(model_type) if isinstance(model_type, str) else None
        if factor:
            kind["num_kv_heads"] = factor * f.need("num_key_value_heads")
        local = _local_theta(f)
        if local is not None:
            kind["rope_theta"] = local
        return "sliding", kind
    if layer_type == "chunked_attention":
        return "chunked", {"type": "chunked", "chunk": f.need("attention_chunk_size")}
    if layer_type == "mla":
        return "mla", _mla_kind(f)
    if layer_type == "none":
        return "mlp_only", {"type": "none"}
    if layer_type == "linear_replacement":
        return "linear", {"type": "none", "linear_replacement": True}
    if layer_type == "cross_attention":
        return "cross", {"type": "cross", "cross_tokens": _mllama_vision_tokens(f), "use_rope": False}
    if layer_type == "indexed_attention":
        raise InvalidInput(
            f"{f.origin}: indexed_attention layers without an MLA latent (kv_lora_rank) are not supported"
        )
    if layer_type == "mamba" or (layer_type == "linear_attention" and f.dialect == "jamba"):
        return "mamba", _mamba_kind(f)
    return _linear_kind(f)


# MllamaVisionConfig defaults (transformers 5.24 configuration_mllama.py); supported_aspect_ratios None means
# the 8 tilings of max_num_tiles 4 ([1, 1] .. [4, 1]).
_MLLAMA_VISION = {"image_size": 448, "patch_size": 14, "max_num_tiles": 4, "hidden_size": 1280,
                  "num_hidden_layers": 32, "num_global_layers": 8, "intermediate_size": 5120,
                  "vision_output_dim": 7680, "num_channels": 3}  # fmt: skip
_MLLAMA_ASPECT_RATIOS = 8


def _vision(f: _Fields, key: str) -> int:
    vision = f.raw.get("_vision_config") or {}
    value = vision.get(key, _MLLAMA_VISION[key])
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{f.origin}: vision_config.{key}: expected a positive whole number, got {value!r}")
    return value


def _mllama_vision_tokens(f: _Fields) -> int:
    """Vision tokens one image puts in every cross-attention layer: max_num_tiles tiles of (image / patch)^2
    patches plus a class token each (MllamaVisionModel.num_patches; the processor pads every image to
    max_num_tiles tiles, aspect_ratio_mask masks the unused ones): 4 x (40^2 + 1) = 6,404 for 560 / 14."""
    patches = (_vision(f, "image_size") // _vision(f, "patch_size")) ** 2 + 1
    return _vision(f, "max_num_tiles") * patches


def _mllama_vision_params(f: _Fields, *, text_hidden: int) -> int:
    """MllamaVisionModel + multi_modal_projector parameters (transformers 5.24 modeling_mllama.py)."""
    h, i = _vision(f, "hidden_size"), _vision(f, "intermediate_size")
    tiles, patch = _vision(f, "max_num_tiles"), _vision(f, "patch_size")
    patches = (_vision(f, "image_size") // patch) ** 2 + 1
    ratios = (f.raw.get("_vision_config") or {}).get("supported_aspect_ratios")
    ratio_ids = (len(ratios) if isinstance(ratios, list) else _MLLAMA_ASPECT_RATIOS) + 1  # max_aspect_ratio_id + 1
    layer = 4 * h * h + 2 * h * i + i + h + 4 * h  # q/k/v/o, fc1/fc2 with biases, two LayerNorms
    return (
        _vision(f, "num_channels") * patch * patch * h  # patch_embedding (Conv2d, no bias)
        + h  # class_embedding
        + 1 + patches * h + ratio_ids * tiles * patches * h  # gated_positional_embedding (gate, table, tiles)
        + 2 * (ratio_ids * tiles * h + 1)  # pre/post_tile_positional_embedding (table + gate)
        + 2 * 2 * h  # layernorm_pre, layernorm_post
        + _vision(f, "num_hidden_layers") * layer
        + _vision(f, "num_global_layers") * (layer + 2)  # global layers: + gate_attn, gate_ffn
        + _vision(f, "vision_output_dim") * text_hidden + text_hidden  # multi_modal_projector
    )  # fmt: skip


# Model types whose sliding layers hold more KV heads than num_key_value_heads says, by a factor
# fixed in the modeling code: modeling_mimo_v2_flash.py MiMoV2FlashAttention
# (num_key_value_heads * 2 if is_swa), transformers 5.24.0.
_SLIDING_KV_FACTOR = {"mimo_v2_flash": 2}


def _linear_kind(f: _Fields) -> tuple[str, dict[str, Any]]:
    """A linear-attention layer, recognised by its state fields: Gated DeltaNet or Mamba2."""
    model_type = f.raw.get("model_type")
    family = f.dialect or (model_type if isinstance(model_type, str) else None)
    if f.known("linear_num_value_heads") and family in _DELTANET_DIALECTS:
        return "deltanet", _with_ssm_dtype(f, _deltanet_kind(f))
    if f.dialect == "minimax":
        return "lightning", _lightning_kind(f)
    if f.known("mamba_num_heads") or f.known("mamba_n_heads"):
        return "mamba2", _with_ssm_dtype(f, _mamba2_kind(f))
    raise InvalidInput(
        f"{f.origin}: linear_attention layers of model_type {f.raw.get('model_type')!r} keep a state kvplan "
        "cannot read (it knows Mamba, Mamba2 and Qwen3-Next Gated DeltaNet fields)"
    )


# Dialects whose linear_attention layers are Qwen3-Next's Gated DeltaNet (modeling_qwen3_next.py,
# modeling_qwen3_5.py: conv over q,k,v and a [v_heads, k_dim, v_dim] delta-rule state).
_DELTANET_DIALECTS = {"qwen3_next", "qwen3_5", "qwen3_5_moe", "qwen3_5_text", "qwen3_5_moe_text"}


# The SSM (temporal) state dtype a checkpoint's config asks for, under the key its family's engines read: vLLM's
# NemotronHForCausalLMConfig.update_mamba_ssm_cache_dtype reads hf_config.mamba_ssm_cache_dtype (0.16.0, 0.19.0,
# 0.21.0 wheels) and Qwen3_5ForConditionalGenerationConfig.verify_and_update_config hf_text_config.mamba_ssm_dtype
# (0.19.0, 0.21.0), both in vllm/model_executor/models/config.py. The file's value only, never a class default:
# transformers 5.24.0's NemotronHConfig defaults mamba_ssm_cache_dtype to "float32", but vLLM 0.16 / 0.19 (transformers
# < 5, which has no nemotron_h: 4.57.6's configuration_auto.py) load the Hub's remote-code configuration_nemotron_h.py,
# whose class has no such field, so a config without it reads differently per release (kvplan.engines.vllm).
# transformers' own cache reads neither key. "auto" is no statement (TensorRT-LLM config_utils _coerce_torch_dtype).
_SSM_DTYPE_KEYS = {"nemotron_h": "mamba_ssm_cache_dtype", "qwen3_5_text": "mamba_ssm_dtype",
                   "qwen3_5_moe_text": "mamba_ssm_dtype"}  # fmt: skip


def _with_ssm_dtype(f: _Fields, kind: dict[str, Any]) -> dict[str, Any]:
    """``kind`` with the SSM state dtype the config states (:data:`_SSM_DTYPE_KEYS`), where it states one."""
    key = _SSM_DTYPE_KEYS.get(f.dialect or "")
    value = f.raw.get(key) if key else None
    if value is None or value == "auto":
        return kind
    name = canonical_dtype(value) if isinstance(value, str) else None
    if name not in SSM_STATE_DTYPES:
        raise InvalidInput(f"{f.origin}: {key}: expected float32, bfloat16 or float16, got {value!r}")
    return {**kind, "ssm_state_dtype": name}


def _mamba2_kind(f: _Fields) -> dict[str, Any]:
    """Mamba2 mixer (NemotronH, GraniteMoeHybrid, Bamba): d_inner = heads x head_dim, conv over
    x, B and C (d_inner + 2 x n_groups x d_state)."""
    heads = f.integer("mamba_num_heads") or f.need("mamba_n_heads")
    if f.get("mamba_d_head") == "auto" and not f.known("mamba_head_dim"):
        # GraniteMoeHybridConfig / FalconH1Config.__post_init__: mamba_d_head = (mamba_d_ssm, else
        # mamba_expand * hidden_size) // mamba_n_heads
        head_dim = (f.integer("mamba_d_ssm") or f.need("mamba_expand") * f.need("hidden_size")) // heads
    else:
        head_dim = f.integer("mamba_head_dim") or f.need("mamba_d_head")
    norm = {} if f.dialect != "falcon_h1" or f.flag("mamba_rms_norm") else {"ssm_norm": False}
    # the SSD scan's chunk (NemotronHConfig.chunk_size, GraniteMoeHybrid/Bamba/FalconH1 mamba_chunk_size)
    chunk = f.integer("chunk_size") or f.integer("mamba_chunk_size")
    norm |= {"scan_chunk": chunk} if chunk else {}
    return norm | {
        "type": "recurrent",
        "variant": "mamba2",
        "d_inner": heads * head_dim,
        "d_state": f.integer("ssm_state_size") or f.need("mamba_d_state"),
        "d_conv": f.integer("conv_kernel") or f.need("mamba_d_conv"),
        "n_groups": f.integer("n_groups") or f.need("mamba_n_groups"),
        "n_heads": heads,
    }


def _mla_kind(f: _Fields) -> dict[str, Any]:
    kind = {"type": "mla", "kv_lora_rank": f.need("kv_lora_rank"), "q_lora_rank": f.integer("q_lora_rank")}
    kind |= {k: f.need(k) for k in ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")}
    return {k: v for k, v in kind.items() if v is not None}


def _mamba_kind(f: _Fields) -> dict[str, Any]:
    hidden = f.need("hidden_size")
    rank = f.get("mamba_dt_rank")
    dt_rank = math.ceil(hidden / 16) if rank == "auto" else f.need("mamba_dt_rank")
    if f.get("mamba_conv_bias") is not True or f.get("mamba_proj_bias") is not False:
        f.notes.append("mamba_conv_bias/mamba_proj_bias differ from Jamba's defaults; parameter count assumes them")
    return {
        "type": "recurrent",
        "variant": "mamba",
        "d_inner": f.need("mamba_expand") * hidden,
        "d_state": f.need("mamba_d_state"),
        "d_conv": f.need("mamba_d_conv"),
        "dt_rank": dt_rank,
    }


def _lightning_kind(f: _Fields) -> dict[str, Any]:
    """MiniMaxLightningAttention: num_attention_heads heads of head_dim (else hidden // heads), one
    [head_dim, head_dim] K^T V state each (modeling_minimax.py, transformers 5.24.0)."""
    heads = f.need("num_attention_heads")
    head_dim = f.integer("head_dim") or f.need("hidden_size") // heads
    return {"type": "recurrent", "variant": "lightning", "n_heads": heads, "head_k_dim": head_dim,
            "head_v_dim": head_dim}  # fmt: skip


def _deltanet_kind(f: _Fields) -> dict[str, Any]:
    return {
        "type": "recurrent",
        "variant": "gated_deltanet",
        "n_heads": f.need("linear_num_value_heads"),
        "n_k_heads": f.need("linear_num_key_heads"),
        "head_k_dim": f.need("linear_key_head_dim"),
        "head_v_dim": f.need("linear_value_head_dim"),
        "d_conv": f.need("linear_conv_kernel_dim"),
    }


def _compact(kinds: dict[str, dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """``kinds`` plus the shortest repeating ``pattern``, or a ``types`` list when none repeats."""
    if len(kinds) == 1:
        return {"kinds": kinds}
    n = len(names)
    for period in range(1, n // 2 + 1):  # a pattern repeats at least twice; otherwise one name per layer
        if all(names[i] == names[i % period] for i in range(n)):
            return {"kinds": kinds, "pattern": names[:period]}
    return {"kinds": kinds, "types": names}


# ---- MoE -----------------------------------------------------------------------------------


def _expert_count(f: _Fields) -> int | None:
    if f.dialect not in _MOE_DIALECTS:
        return None
    for key in ("n_routed_experts", "num_local_experts", "num_experts"):
        if key in f.raw or key in f.defaults:
            return f.integer(key, minimum=0)
    return None


def _moe(f: _Fields, *, layers: int) -> dict[str, Any] | None:
    experts = _expert_count(f)
    if not experts or experts <= 1:
        return None
    d = f.dialect
    dense = _dense_layers(f, layers=layers)
    if len(dense) == layers:
        return None
    if d == "nemotron_h":
        return _nemotron_moe(f, experts=experts, layers=layers)
    moe: dict[str, Any] = {
        "num_experts": experts,
        "experts_per_token": f.need("num_experts_per_tok"),
        "expert_intermediate_size": _expert_size(f),
    }
    if d == "minimax_m2":  # MiniMaxM2SparseMoeBlock.e_score_correction_bias (a buffer, stored in the checkpoint)
        moe["router_bias"] = True
    if d == "llama4_text":  # Llama4TextMoe: one shared expert as wide as a routed one, on every MoE layer
        moe |= {"num_shared_experts": 1}
    if d in ("qwen2_moe", "qwen3_next", "qwen3_5_moe_text"):
        shared = f.integer("shared_expert_intermediate_size", minimum=0)
        if shared:  # one gated shared expert (Qwen2MoeSparseMoeBlock / Qwen3_5MoeSparseMoeBlock.shared_expert_gate)
            moe |= {"num_shared_experts": 1, "shared_intermediate_size": shared, "shared_expert_gate": True}
    if d in ("deepseek_v2", "deepseek_v3", "deepseek_v32"):
        moe["num_shared_experts"] = f.integer("n_shared_experts", minimum=0) or 0
        moe["first_dense_layers"] = min(f.integer("first_k_dense_replace", minimum=0) or 0, layers)
        moe["router_bias"] = d != "deepseek_v2"  # DeepseekV3TopkRouter.e_score_correction_bias
    if d == "glm4_moe":
        # Glm4MoeMoE: shared_experts is one MLP of moe_intermediate_size * n_shared_experts;
        # Glm4MoeTopkRouter.e_score_correction_bias (a buffer, stored in the checkpoint); the
        # first first_k_dense_replace layers are dense (Glm4MoeDecoderLayer), all later ones MoE.
        moe["num_shared_experts"] = f.integer("n_shared_experts", minimum=0) or 0
        moe["first_dense_layers"] = min(f.integer("first_k_dense_replace", minimum=0) or 0, layers)
        moe["router_bias"] = True
    if d == "gpt_oss":
        moe |= {"router_bias": True, "expert_bias": True}  # GptOssTopKRouter.bias; GptOssExperts *_bias
    if d == "minimax" and any(_positive(v) for v in _as_list(f.raw.get("shared_intermediate_size"))):
        # MiniMax-Text-01 / M1 ship shared_intermediate_size 0 ([0]); transformers' MiniMaxSparseMoeBlock has none
        f.notes.append("shared_intermediate_size: the shared expert of the remote-code model is not counted")
    if d == "granitemoehybrid":  # GraniteMoeHybridDecoderLayer: experts + shared_mlp (gated) on every layer
        moe |= {"num_shared_experts": 1, "shared_intermediate_size": f.need("shared_intermediate_size")}
    first = moe.get("first_dense_layers", 0)
    moe["dense_layers"] = [i for i in dense if i >= first]
    if d is None:
        f.assume(f"MoE assumed from the expert count: {experts} experts, no shared experts")
    return moe


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _nemotron_moe(f: _Fields, *, experts: int, layers: int) -> dict[str, Any]:
    """NemotronHMoE on the ``E`` / ``moe`` layers: routed experts, one shared NemotronHMLP of
    moe_shared_expert_intermediate_size, a router with e_score_correction_bias; ``-`` / ``mlp`` layers
    hold a dense NemotronHMLP (modeling_nemotron_h.py, transformers 5.24.0)."""
    if f.get("moe_latent_size") is not None:
        f.notes.append(
            "moe_latent_size: the experts' latent projections are not modelled; the parameter count "
            "treats the experts as full width (the KV cache and state are unaffected)"
        )
    blocks = _nemotron_blocks(f, layers=layers)
    return {
        "num_experts": experts,
        "experts_per_token": f.need("num_experts_per_tok"),
        "expert_intermediate_size": f.need("moe_intermediate_size"),
        "num_shared_experts": 1,
        "shared_intermediate_size": f.need("moe_shared_expert_intermediate_size"),
        "router_bias": True,
        "dense_layers": [i for i, b in enumerate(blocks) if b == "-"],
    }


_NEMOTRON_BLOCKS = {"linear_attention": "M", "mamba": "M", "full_attention": "*", "attention": "*", "mlp": "-",
                    "moe": "E"}  # fmt: skip


def _nemotron_blocks(f: _Fields, *, layers: int) -> list[str]:
    """One NemotronHConfig pattern character per layer (M, *, - or E), from either spelling."""
    pattern = f.raw.get("hybrid_override_pattern")
    listed = next((f.raw[k] for k in ("layers_block_type", "layer_types") if f.raw.get(k) is not None), None)
    if listed is not None:
        return [_NEMOTRON_BLOCKS.get(t, "?") if isinstance(t, str) else "?" for t in listed]
    return list(pattern) if isinstance(pattern, str) else ["M", "E", "*", "-"][:layers]


def _expert_size(f: _Fields) -> int:
    if f.dialect in ("mixtral", "gpt_oss", "jamba", "llama4_text", "minimax_m2", "granitemoehybrid", "minimax"):
        return f.need("intermediate_size")
    if f.dialect is None and not f.known("moe_intermediate_size"):
        f.assume("expert size assumed = intermediate_size")
        return f.need("intermediate_size")
    return f.need("moe_intermediate_size")


def _dense_layers(f: _Fields, *, layers: int) -> list[int]:
    """Layers whose MLP is dense in an MoE model."""
    d = f.dialect
    if d == "llama4_text":  # Llama4TextConfig.moe_layers, default every interleave_moe_layer_step-th layer
        step = f.need("interleave_moe_layer_step")
        moe = set(f.ints("moe_layers")) if f.get("moe_layers") is not None else set(range(step - 1, layers, step))
        return [i for i in range(layers) if i not in moe]
    if d == "glm4_moe":  # Glm4MoeDecoderLayer: MoE iff layer_idx >= first_k_dense_replace
        return list(range(min(f.integer("first_k_dense_replace", minimum=0) or 0, layers)))
    if d in ("deepseek_v2", "deepseek_v3", "deepseek_v32"):
        # DeepSeek remote modeling and vLLM deepseek_v2.py: MoE iff i >= first_k_dense_replace
        # and i % moe_layer_freq == 0 (transformers 5.24 has no moe_layer_freq: always 1).
        k, freq = f.integer("first_k_dense_replace", minimum=0) or 0, f.integer("moe_layer_freq") or 1
        return [i for i in range(layers) if i < k or i % freq]
    if d in ("qwen2_moe", "qwen3_moe", "qwen3_next"):
        # Qwen2MoeDecoderLayer: MoE iff i not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0
        only, step = set(f.ints("mlp_only_layers")), f.need("decoder_sparse_step")
        return [i for i in range(layers) if i in only or (i + 1) % step]
    if d == "jamba":  # JambaConfig.layers_num_experts
        period, offset = f.need("expert_layer_period"), f.need("expert_layer_offset", minimum=0)
        return [i for i in range(layers) if i % period != offset]
    if d == "nemotron_h":  # only E / moe layers hold experts
        return [i for i, b in enumerate(_nemotron_blocks(f, layers=layers)) if b != "E"]
    return []


# ---- RoPE ----------------------------------------------------------------------------------


def _rope(f: _Fields) -> dict[str, Any] | None:
    if f.dialect in ("jamba", "nemotron_h"):
        return None  # JambaAttention and NemotronHAttention apply no positional embedding
    if f.dialect == "granitemoehybrid" and f.get("position_embedding_type") != "rope":
        return None  # GraniteMoeHybridModel builds rotary_emb only when position_embedding_type == "rope"
    if f.dialect == "falcon" and f.flag("alibi"):
        return None
    block = _global_rope_block(f)
    theta = block.pop("rope_theta", None) if block else None
    partial = block.pop("partial_rotary_factor", None) if block else None
    rope: dict[str, Any] = {"theta": _theta(f, theta)}
    partial = partial if partial is not None else f.get("partial_rotary_factor")
    if partial is None and f.dialect in ("minimax_m2", "minimax") and f.known("rotary_dim"):
        # MiniMaxM2Config.convert_rope_params_to_dict: partial_rotary_factor = rotary_dim / head_dim; the
        # remote-code MiniMax-M1 config's rotary_dim is read the same way (vLLM minimax_text_01.py rotary_dim)
        partial = f.need("rotary_dim") / f.need("head_dim")
    if partial is not None:
        rope["partial_rotary_factor"] = partial
    scaling = _scaling(f, block)
    if scaling:
        rope["scaling"] = scaling
    return rope


def _global_rope_block(f: _Fields) -> dict[str, Any] | None:
    """The rope dict for full-attention layers: ``rope_parameters`` (flat or per layer type) or ``rope_scaling``."""
    params = f.raw.get("rope_parameters")
    if params is not None:
        if not isinstance(params, dict):
            raise InvalidInput(f"{f.origin}: rope_parameters: expected an object, got {params!r}")
        per_type = set(params) & {"full_attention", "sliding_attention", "chunked_attention", "linear_attention"}
        if not per_type:
            return dict(params)
        # one block per layer type (Gemma 3, 4): the full-attention layers' block is the model's;
        # a null one (no RoPE on global layers) leaves plain RoPE with the local layers' base
        nested = params.get("full_attention") or next(
            (params[k] for k in sorted(per_type) if isinstance(params[k], dict)), None
        )
        block = {k: v for k, v in (nested or {}).items() if k in ("rope_theta", "partial_rotary_factor")}
        return dict(nested) if isinstance(params.get("full_attention"), dict) else block
    scaling = f.raw.get("rope_scaling")
    if scaling is None and f.dialect == "gpt_oss":
        return dict(_GPT_OSS_ROPE)
    if scaling is not None and not isinstance(scaling, dict):
        raise InvalidInput(f"{f.origin}: rope_scaling: expected an object or null, got {scaling!r}")
    return dict(scaling) if scaling else None


def _theta(f: _Fields, from_block: Any) -> float:
    if from_block is not None:
        if isinstance(from_block, bool) or not isinstance(from_block, (int, float)) or from_block <= 0:
            raise InvalidInput(f"{f.origin}: rope_theta: expected a positive number, got {from_block!r}")
        return float(from_block)
    theta = f.number("rope_theta")
    if theta is None:
        f.assume("rope_theta assumed 10000.0 (the transformers default)")
        return 10000.0
    return theta


def _scaling(f: _Fields, block: dict[str, Any] | None) -> dict[str, Any] | None:
    """The scaling block as ``{rope_type: ..., <its parameters>}``; None for plain RoPE."""
    if not block:
        return None
    kind = block.pop("rope_type", None) or block.pop("type", None)
    block.pop("type", None)
    if kind is None:
        raise InvalidInput(f"{f.origin}: rope scaling block {block!r} has no 'rope_type' (or 'type')")
    if f.dialect == "phi3" and kind in ("su", "yarn"):
        kind = "longrope"  # Phi3Config.convert_rope_params_to_dict renames both to longrope
    if kind == "default":
        return None
    if f.dialect == "phi3" and kind == "longrope":
        # Phi-3 keeps the pre-extension length at the top level; transformers gives it priority.
        block["original_max_position_embeddings"] = f.need("original_max_position_embeddings")
    return {"rope_type": kind, **block}


def _local_theta(f: _Fields) -> float | None:
    """Gemma 3's (and 3n's) separate RoPE base for sliding layers."""
    if f.dialect not in ("gemma3_text", "gemma3n_text"):
        return None
    params = f.raw.get("rope_parameters")
    if isinstance(params, dict) and isinstance(params.get("sliding_attention"), dict):
        theta = params["sliding_attention"].get("rope_theta")
        if theta is not None:
            return _theta(f, theta)
    return f.number("rope_local_base_freq")


# ---- parameter layout ----------------------------------------------------------------------


def _param_layout(f: _Fields, *, heads: int, head_dim: int, per_layer: list[str], hidden: int) -> dict[str, Any] | None:
    builder = _LAYOUTS.get(f.dialect or "", _llama_layout)
    layout = builder(f, heads=heads, head_dim=head_dim, per_layer=per_layer, hidden=hidden)
    if f.dialect is None:
        f.assume("Llama layout assumed (gated MLP, RMSNorm, 2 norms/layer, no q/k norm, biases as attention_bias says)")
    return layout or None


def _llama_layout(f: _Fields, **_: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {}
    if f.dialect in _ATTENTION_BIAS_ALL and f.flag("attention_bias"):
        layout["attention_bias"] = "all"  # q, k, v and o_proj all take config.attention_bias
    if f.dialect in ("llama", "nemotron-nas", None) and f.flag("mlp_bias"):
        layout["mlp_bias"] = True  # LlamaMLP gate/up/down take config.mlp_bias
    return layout


# Dialects whose attention honours ``attention_bias`` on q/k/v and o_proj alike (modeling_<type>.py);
# Mistral, Mixtral, Phi-3 and Jamba hard-code bias=False, Qwen2 and Falcon have their own rules.
_ATTENTION_BIAS_ALL = {"llama", "qwen3", "qwen3_moe", "gemma2", "gemma3_text", "cohere", "cohere2", "olmo2",
                       "gpt_oss", "qwen3_next", "qwen3_5_text", "qwen3_5_moe_text", "nemotron-nas",
                       "gemma3n_text", "granitemoehybrid", None}  # fmt: skip


def _qwen2_layout(f: _Fields, **_: Any) -> dict[str, Any]:
    if f.dialect == "qwen2_moe" and not f.flag("qkv_bias"):
        return {}
    return {"attention_bias": "qkv"}  # q/k/v with bias, o_proj without (modeling_qwen2.py)


def _qwen3_layout(f: _Fields, **kw: Any) -> dict[str, Any]:
    return _llama_layout(f, **kw) | {"qk_norm": True}  # per-head RMSNorm on q and k


def _gemma_layout(f: _Fields, **kw: Any) -> dict[str, Any]:
    # Gemma 2/3 decoder layers: input, post-attention, pre- and post-feedforward RMSNorm.
    layout = _llama_layout(f, **kw) | {"norms_per_layer": 4}
    if f.dialect == "gemma3_text":
        layout["qk_norm"] = True
    return layout


def _gemma3n_layout(f: _Fields, **kw: Any) -> dict[str, Any]:
    # Gemma3nTextDecoderLayer: q/k norms; per layer 7 RMSNorm weights of hidden (input, post-attention, pre-
    # and post-feedforward, post_per_layer_input_norm, LAuReL's post_laurel_norm, AltUp's router_norm) plus
    # AltUp's correct_output_scale, counted as 8 norms; v_norm has no weight (with_scale=False).
    layout = _llama_layout(f, **kw) | {"norms_per_layer": 8, "qk_norm": True}
    if f.known("hidden_size_per_layer_input"):
        layout |= {
            "per_layer_input_size": f.need("hidden_size_per_layer_input"),
            "per_layer_vocab_size": f.need("vocab_size_per_layer_input"),
        }
    if f.known("altup_num_inputs"):
        layout["altup_inputs"] = f.need("altup_num_inputs")
    if f.known("laurel_rank"):
        layout["laurel_rank"] = f.need("laurel_rank")
    return layout


def _mllama_layout(f: _Fields, *, hidden: int, **kw: Any) -> dict[str, Any]:
    # Self-attention layers are Llama's; cross layers add q/k norms and two gates (kvplan.params). Outside the
    # decoder: the vision tower and projector, and 8 extra embedding rows (MllamaTextModel.embed_tokens is
    # vocab_size + 8 wide).
    params = _mllama_vision_params(f, text_hidden=hidden) + 8 * hidden
    note = "vision tower + multi_modal_projector + 8 image-token embedding rows (transformers modeling_mllama.py)"
    return _llama_layout(f, **kw) | {"extra_params": params, "extra_params_note": note}


def _falcon_layout(f: _Fields, **_: Any) -> dict[str, Any]:
    # FalconDecoderLayer: two LayerNorms unless parallel attention shares one (num_ln_in_parallel_attn,
    # default 2 with new_decoder_architecture); FalconMLP is dense_h_to_4h + dense_4h_to_h.
    ln = f.integer("num_ln_in_parallel_attn") or (2 if f.flag("new_decoder_architecture") else 1)
    norms = 2 if not f.flag("parallel_attn") else ln
    layout: dict[str, Any] = {"mlp": "plain", "norm": "layernorm", "norms_per_layer": norms}
    if f.flag("bias"):
        layout |= {"attention_bias": "all", "mlp_bias": True}
    return layout


def _gpt_oss_layout(f: _Fields, **kw: Any) -> dict[str, Any]:
    return _llama_layout(f, **kw) | {"attention_sinks": True}  # GptOssAttention.sinks: one logit per head


def _cohere_layout(f: _Fields, *, heads: int, head_dim: int, per_layer: list[str], **kw: Any) -> dict[str, Any]:
    # CohereLayerNorm has a weight and no bias (counted like RMSNorm); one norm feeds attention and MLP in parallel.
    layout = _llama_layout(f) | {"norms_per_layer": 1}
    if f.flag("use_qk_norm"):  # q_norm [heads, head_dim] and k_norm [kv_heads, head_dim] per layer
        kv = f.integer("num_key_value_heads") or heads
        layout |= _extra(len(per_layer) * (heads + kv) * head_dim, "q/k LayerNorm weights over all heads")
    return layout


def _olmo2_layout(f: _Fields, *, heads: int, head_dim: int, per_layer: list[str], **kw: Any) -> dict[str, Any]:
    # Olmo2Attention: q_norm over heads * head_dim and k_norm over kv_heads * head_dim (not per head).
    kv = f.integer("num_key_value_heads") or heads
    extra = _extra(len(per_layer) * (heads + kv) * head_dim, "q/k RMSNorm weights over all heads")
    return _llama_layout(f) | extra


def _qwen3_next_layout(f: _Fields, **kw: Any) -> dict[str, Any]:
    # Qwen3NextAttention: q_proj also emits an output gate as wide as the attention output.
    return _llama_layout(f, **kw) | {"qk_norm": True, "attention_output_gate": True}


def _nemotron_h_layout(f: _Fields, **_: Any) -> dict[str, Any]:
    # NemotronHBlock: one RMSNorm and one mixer per layer; NemotronHMLP and NemotronHExperts are up + down
    # (relu2), no gate; NemotronHAttention has no biases (modeling_nemotron_h.py, transformers 5.24.0).
    layout: dict[str, Any] = {"mlp": "plain", "norms_per_layer": 1}
    if f.flag("mlp_bias"):
        layout["mlp_bias"] = True
    _mamba_bias_note(f, proj="use_bias", conv="use_conv_bias")
    return layout


def _falcon_h1_layout(f: _Fields, **_: Any) -> dict[str, Any]:
    # FalconH1DecoderLayer: input_layernorm + pre_ff_layernorm (RMSNorm), gated FalconH1MLP, q/k/v/o with
    # attention_bias, the Mamba2 mixer's in_proj with mamba_proj_bias and out_proj with projectors_bias.
    layout: dict[str, Any] = {"attention_bias": "all"} if f.flag("attention_bias") else {}
    if f.flag("mlp_bias"):
        layout["mlp_bias"] = True
    if f.flag("projectors_bias"):
        f.notes.append("projectors_bias: the Mamba2 out_proj bias is not counted in the parameters")
    _mamba_bias_note(f, proj="mamba_proj_bias", conv="mamba_conv_bias")
    return layout


def _granite_hybrid_layout(f: _Fields, **kw: Any) -> dict[str, Any]:
    _mamba_bias_note(f, proj="mamba_proj_bias", conv="mamba_conv_bias")
    return _llama_layout(f, **kw)


def _mamba_bias_note(f: _Fields, *, proj: str, conv: str) -> None:
    """kvplan's Mamba2 count has a conv bias and no projection biases (both families' defaults)."""
    if f.flag(proj) or not f.flag(conv):
        f.notes.append(f"{proj}/{conv} differ from the defaults; the Mamba2 parameter count assumes conv bias only")


def _glm4_moe_layout(f: _Fields, **_: Any) -> dict[str, Any]:
    # Glm4MoeAttention: q/k/v take config.attention_bias, o_proj never has one; use_qk_norm adds
    # per-head RMSNorm of head_dim on q and k (modeling_glm4_moe.py, transformers 5.24.0).
    layout: dict[str, Any] = {"attention_bias": "qkv"} if f.flag("attention_bias") else {}
    if f.flag("use_qk_norm"):
        layout["qk_norm"] = True
    return layout


def _extra(params: int, note: str) -> dict[str, Any]:
    return {"extra_params": params, "extra_params_note": f"{note} (inside the decoder; counted here)"}


_LAYOUTS: dict[str, Callable[..., dict[str, Any]]] = {
    "qwen2": _qwen2_layout,
    "qwen2_moe": _qwen2_layout,
    "qwen3": _qwen3_layout,
    "qwen3_moe": _qwen3_layout,
    "gemma2": _gemma_layout,
    "gemma3_text": _gemma_layout,
    "gemma3n_text": _gemma3n_layout,
    "mllama": _mllama_layout,
    "falcon": _falcon_layout,
    "gpt_oss": _gpt_oss_layout,
    "cohere": _cohere_layout,
    "cohere2": _cohere_layout,
    "olmo2": _olmo2_layout,
    "minimax_m2": _olmo2_layout,  # MiniMaxM2Attention: q_norm / k_norm over all heads, as OLMo 2
    "qwen3_next": _qwen3_next_layout,
    "nemotron_h": _nemotron_h_layout,
    "granitemoehybrid": _granite_hybrid_layout,
    "falcon_h1": _falcon_h1_layout,
    "nemotron-nas": lambda f, **kw: _llama_layout(f, **kw) | {"norms_follow_blocks": True},
    "glm4_moe": _glm4_moe_layout,
    "qwen3_5_text": _qwen3_next_layout,  # Qwen3_5Attention: the same gated q_proj and per-head q/k norm
    "qwen3_5_moe_text": _qwen3_next_layout,
}

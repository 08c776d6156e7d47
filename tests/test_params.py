"""Parameter counts and weight bytes.

The strongest check builds every bundled spec as the transformers model of its family on the
``meta`` device (shapes only, nothing allocated, nothing downloaded) and compares the number of
parameters it holds with ``count_params``: one exact integer per model, across Falcon's parallel
block, Gemma's four norms, qk-norm, biases, gpt-oss sinks and expert biases, shared experts and
routers, MLA with and without q_lora_rank, Mamba and Gated DeltaNet layers. The hand-checked
pieces below pin the same features without torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kvplan.catalog import bundled_names, load_bundled
from kvplan.params import (
    attention_parts,
    count_params,
    layer_parts,
    mlp_parts,
    weight_bytes_per_gpu,
    weight_bytes_per_stage,
    weight_bytes_total,
)
from kvplan.spec import ModelSpec


def _sum(parts) -> int:
    return sum(p.params for p in parts)


# ---- hand-checked pieces ------------------------------------------------------------------------


def test_falcon_layer_is_parallel_attention_one_layernorm_plain_mlp():
    spec = load_bundled("falcon-7b")
    h = 4544
    # q [h, 71*64] + one shared K and V head [h, 2*64] + dense [h, h]; no biases.
    assert _sum(attention_parts(spec, spec.kind("full"))) == h * h + h * 128 + h * h
    # dense_h_to_4h + dense_4h_to_h, no gate: 2 * h * 4h.
    assert _sum(mlp_parts(spec, 0)) == 2 * h * 18176
    # one LayerNorm (weight + bias) shared by the attention and the MLP.
    assert _sum(layer_parts(spec, 0)) == 2 * h * h + h * 128 + 2 * h * 18176 + 2 * h


def test_gpt_oss_sinks_biases_and_expert_biases():
    spec = load_bundled("gpt-oss-20b")
    h, heads, kv, d = 2880, 64, 8, 64
    attn = _sum(attention_parts(spec, spec.kind("full")))
    # q, k, v, o weights; q/k/v biases; o bias; one sink logit per head.
    assert attn == h * heads * d + 2 * h * kv * d + heads * d * h + heads * d + 2 * kv * d + h + heads
    # 32 experts x (gate_up [h, 2i] + down [i, h] + biases 2i + h) + router [h, 32] + router bias 32.
    i = 2880
    assert _sum(mlp_parts(spec, 0)) == 32 * (3 * h * i + 2 * i + h) + h * 32 + 32


def test_qwen3_next_gated_attention_doubles_q_proj():
    spec = load_bundled("qwen3-next-80b-a3b")
    h, heads, kv, d = 2048, 16, 2, 256
    # q_proj [h, 2*heads*d] (query + output gate), k/v [h, kv*d], o [heads*d, h], q_norm + k_norm.
    assert _sum(attention_parts(spec, spec.kind("full"))) == 2 * h * heads * d + 2 * h * kv * d + heads * d * h + 2 * d


def test_qwen3_next_moe_has_gated_shared_expert():
    spec = load_bundled("qwen3-next-80b-a3b")
    h = 2048
    # 512 routed experts of width 512, router [h, 512], one shared expert of width 512, its 1-wide gate.
    assert _sum(mlp_parts(spec, 0)) == 512 * 3 * h * 512 + h * 512 + 3 * h * 512 + h


def test_nemotron_h_blocks_hold_one_mixer_each():
    # NemotronHBlock: one RMSNorm + one mixer. A Mamba2 or attention block has no MLP (kind mlp: false);
    # a "-" block is the MLP alone (up + down, relu2), an "E" block the MoE alone.
    spec = load_bundled("nemotron-h-8b-base-8k")
    mamba, attn, mlp = (spec.layer_kind_names.index(k) for k in ("mamba2", "full", "mlp_only"))
    assert mlp_parts(spec, mamba) == [] and mlp_parts(spec, attn) == []
    assert _sum(layer_parts(spec, mlp)) == 2 * 4096 * 21504 + 4096
    # in_proj [4096, 8192 + (8192 + 2*8*128) + 128] + out_proj + conv (weight + bias) + dt_bias/A_log/D + norm
    assert _sum(layer_parts(spec, mamba)) == (4096 * 18560 + 8192 * 4096 + 10240 * 5 + 3 * 128 + 8192) + 4096
    nano = load_bundled("nemotron-3-nano-30b-a3b")
    moe = nano.layer_kind_names.index("mlp_only")
    # 128 experts x (up + down) [2688, 1856] + router [2688, 128] + its correction bias + shared 2 x 2688 x 3712
    assert _sum(mlp_parts(nano, moe)) == 128 * 2 * 2688 * 1856 + 2688 * 128 + 128 + 2 * 2688 * 3712
    assert len(nano.moe_layers) == 23 and not nano.dense_mlp_layers


def test_mla_without_q_lora_projects_q_directly():
    lite, full = load_bundled("deepseek-v2-lite"), load_bundled("deepseek-v2")
    # V2-Lite: q_proj [2048, 16*192]; kv_a [2048, 512+64]; kv_a_norm 512; kv_b [512, 16*(128+128)]; o [16*128, 2048].
    assert _sum(attention_parts(lite, lite.kind("mla"))) == (
        2048 * 16 * 192 + 2048 * 576 + 512 + 512 * 16 * 256 + 16 * 128 * 2048
    )
    # V2: q_a [5120, 1536] + q_a_norm 1536 + q_b [1536, 128*192]; the rest as above with 128 heads.
    assert _sum(attention_parts(full, full.kind("mla"))) == (
        5120 * 1536 + 1536 + 1536 * 128 * 192 + 5120 * 576 + 512 + 512 * 128 * 256 + 128 * 128 * 5120
    )


def test_mamba_layer_of_jamba():
    spec = load_bundled("jamba-v0.1")
    h, d, n, r, k = 4096, 8192, 16, 256, 4
    # in_proj [h, 2d], conv1d d*k + bias d, x_proj [d, r+2n], dt_proj [r, d] + bias d, A_log [d, n], D d,
    # out_proj [d, h], dt/B/C RMSNorms r + 2n.
    expected = h * 2 * d + d * k + d + d * (r + 2 * n) + r * d + d + d * n + d + d * h + r + 2 * n
    assert _sum(attention_parts(spec, spec.kind("mamba"))) == expected


def test_gated_deltanet_layer_of_qwen3_next():
    spec = load_bundled("qwen3-next-80b-a3b")
    h, kd, vd = 2048, 16 * 128, 32 * 128
    # in_proj_qkvz [h, 2kd+2vd], in_proj_ba [h, 2*32], conv1d (2kd+vd)*4, dt_bias + A_log 2*32,
    # gated RMSNorm 128, out_proj [vd, h].
    expected = h * (2 * kd + 2 * vd) + h * 64 + (2 * kd + vd) * 4 + 64 + 128 + vd * h
    assert _sum(attention_parts(spec, spec.kind("linear"))) == expected


def test_moe_active_counts_only_the_routed_experts_a_token_runs():
    count = count_params(load_bundled("mixtral-8x7b"))
    # 6 of 8 experts idle per token: 32 layers x 6 x 3 x 4096 x 14336.
    assert count.total - count.active == 32 * 6 * 3 * 4096 * 14336


# ---- weight bytes --------------------------------------------------------------------------------


def test_bf16_weights_are_two_bytes_per_parameter():
    spec = load_bundled("llama-3.1-8b")
    assert weight_bytes_total(spec) == 2 * count_params(spec).total


def test_tensor_parallel_halves_an_evenly_divisible_model_except_its_norms():
    spec = load_bundled("llama-3.1-8b")  # heads 32, KV 8, vocab 128256, MLP 14336: all even
    # Every rank keeps a full copy of the RMSNorm weights: (2 per layer x 32 + final) x 4096, 2 B each.
    replicated_norm_bytes = (2 * 32 + 1) * 4096 * 2
    assert 2 * weight_bytes_per_gpu(spec, tp=2) == weight_bytes_total(spec) + replicated_norm_bytes


def test_pipeline_stages_hold_every_weight_once_and_a_tied_head_twice():
    untied = load_bundled("llama-3.1-8b")
    assert sum(weight_bytes_per_stage(untied, pp=4)) == weight_bytes_total(untied)
    tied = load_bundled("gemma-2-9b")  # the last stage needs its own copy of the tied LM head
    assert sum(weight_bytes_per_stage(tied, pp=2)) == weight_bytes_total(tied) + 2 * 256000 * 3584


# ---- the same counts from transformers' own modules ------------------------------------------------


def _common(spec: ModelSpec, *, head_dim: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "hidden_size": spec.hidden_size,
        "vocab_size": spec.vocab_size,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_kv_heads,
        "tie_word_embeddings": spec.tie_word_embeddings,
        "max_position_embeddings": 4096,  # no parameter depends on it
    }
    if head_dim:
        out["head_dim"] = spec.head_dim
    return out


def _moe(spec: ModelSpec, experts_key: str) -> dict[str, Any]:
    return {experts_key: spec.moe.num_experts, "num_experts_per_tok": spec.moe.experts_per_token}


def _deepseek(t, spec: ModelSpec):
    mla, moe = next(k for k in spec.layers.kinds.values() if k.type == "mla"), spec.moe
    cls = t.DeepseekV2Config if spec.family == "deepseek_v2" else t.DeepseekV3Config
    return cls(
        **_common(spec, head_dim=False),
        intermediate_size=spec.intermediate_size,
        moe_intermediate_size=moe.expert_intermediate_size,
        n_routed_experts=moe.num_experts,
        n_shared_experts=moe.num_shared_experts,
        num_experts_per_tok=moe.experts_per_token,
        first_k_dense_replace=moe.first_dense_layers,
        kv_lora_rank=mla.kv_lora_rank,
        q_lora_rank=mla.q_lora_rank,
        qk_nope_head_dim=mla.qk_nope_head_dim,
        qk_rope_head_dim=mla.qk_rope_head_dim,
        v_head_dim=mla.v_head_dim,
        n_group=1,
        topk_group=1,
    )


def _gemma3n(t, spec: ModelSpec):
    layout = spec.params
    return t.Gemma3nTextConfig(
        **_common(spec),
        intermediate_size=spec.intermediate_size,
        num_kv_shared_layers=sum(spec.kind(n).kv_shared for n in spec.layer_kind_names),
        vocab_size_per_layer_input=layout.per_layer_vocab_size,
        hidden_size_per_layer_input=layout.per_layer_input_size,
        altup_num_inputs=layout.altup_inputs,
        laurel_rank=layout.laurel_rank,
    )


def _mllama(t, spec: ModelSpec):
    """The text model from the spec; the vision tower is the Llama 3.2 Vision one (the bundled specs' headers)."""
    cross = [i for i, n in enumerate(spec.layer_kind_names) if spec.kind(n).type == "cross"]
    vision = {"image_size": 560, "patch_size": 14, "max_num_tiles": 4, "hidden_size": 1280, "num_hidden_layers": 32,
              "num_global_layers": 8, "attention_heads": 16, "intermediate_size": 5120, "vision_output_dim": 7680,
              "intermediate_layers_indices": [3, 7, 15, 23, 30]}  # fmt: skip
    text = {
        **_common(spec, head_dim=False),
        "intermediate_size": spec.intermediate_size,
        "cross_attention_layers": cross,
    }
    return t.MllamaConfig(text_config=text, vision_config=vision)


def _deepseek_v32(t, spec: ModelSpec):
    config = _deepseek(t, spec)
    kind = spec.kind("mla_indexed")
    return t.DeepseekV32Config(
        **{k: v for k, v in config.to_dict().items() if k in _DEEPSEEK_FIELDS},
        index_head_dim=kind.index_head_dim,
        index_n_heads=kind.index_n_heads,
    )


_DEEPSEEK_FIELDS = {
    "hidden_size", "vocab_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "tie_word_embeddings", "max_position_embeddings", "intermediate_size", "moe_intermediate_size",
    "n_routed_experts", "n_shared_experts", "num_experts_per_tok", "first_k_dense_replace", "kv_lora_rank",
    "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "n_group", "topk_group",
}  # fmt: skip


def _jamba(t, spec: ModelSpec):
    mamba = spec.kind("mamba")
    return t.JambaConfig(
        **_common(spec, head_dim=False),
        **_moe(spec, "num_experts"),
        intermediate_size=spec.intermediate_size,
        attn_layer_period=8,
        attn_layer_offset=4,
        expert_layer_period=2,
        expert_layer_offset=1,
        mamba_d_state=mamba.d_state,
        mamba_d_conv=mamba.d_conv,
        mamba_expand=mamba.d_inner // spec.hidden_size,
        mamba_dt_rank=mamba.dt_rank,
    )


def _qwen3_next(t, spec: ModelSpec):
    linear = spec.kind("linear")
    return t.Qwen3NextConfig(
        **_common(spec),
        **_moe(spec, "num_experts"),
        intermediate_size=spec.intermediate_size,
        moe_intermediate_size=spec.moe.expert_intermediate_size,
        shared_expert_intermediate_size=spec.moe.shared_size,
        linear_num_key_heads=linear.n_k_heads,
        linear_num_value_heads=linear.n_heads,
        linear_key_head_dim=linear.head_k_dim,
        linear_value_head_dim=linear.head_v_dim,
        linear_conv_kernel_dim=linear.d_conv,
    )


def _mamba2(spec: ModelSpec):
    (mamba,) = [spec.kind(n) for n in spec.kind_counts if spec.kind(n).type == "recurrent"]
    return mamba


def _nemotron_h(t, spec: ModelSpec):
    # one NemotronHConfig block type per layer: Mamba2, attention, MoE (E) or dense MLP (-)
    def block(i: int, name: str) -> str:
        kind = spec.kind(name)
        if kind.type == "recurrent":
            return "mamba"
        if kind.type != "none":
            return "attention"
        return "moe" if i in spec.moe_layers else "mlp"

    mamba, moe = _mamba2(spec), spec.moe
    experts = {} if moe is None else {
        "n_routed_experts": moe.num_experts, "num_experts_per_tok": moe.experts_per_token,
        "moe_intermediate_size": moe.expert_intermediate_size,
        "moe_shared_expert_intermediate_size": moe.shared_intermediate_size,
    }  # fmt: skip
    return t.NemotronHConfig(
        **_common(spec),
        intermediate_size=spec.intermediate_size,
        layers_block_type=[block(i, n) for i, n in enumerate(spec.layer_kind_names)],
        mamba_num_heads=mamba.n_heads,
        mamba_head_dim=mamba.d_inner // mamba.n_heads,
        n_groups=mamba.n_groups,
        ssm_state_size=mamba.d_state,
        conv_kernel=mamba.d_conv,
        **experts,
    )


def _granitemoehybrid(t, spec: ModelSpec):
    mamba, moe = _mamba2(spec), spec.moe
    return t.GraniteMoeHybridConfig(
        **_common(spec, head_dim=False),
        intermediate_size=moe.expert_intermediate_size,
        shared_intermediate_size=moe.shared_intermediate_size,
        num_local_experts=moe.num_experts,
        num_experts_per_tok=moe.experts_per_token,
        layer_types=["mamba" if spec.kind(n).type == "recurrent" else "attention" for n in spec.layer_kind_names],
        mamba_n_heads=mamba.n_heads,
        mamba_d_head=mamba.d_inner // mamba.n_heads,
        mamba_n_groups=mamba.n_groups,
        mamba_d_state=mamba.d_state,
        mamba_d_conv=mamba.d_conv,
        mamba_expand=mamba.d_inner // spec.hidden_size,
    )


def _falcon_h1(t, spec: ModelSpec):
    (kind,) = spec.layers.kinds.values()
    mamba = kind.parallel  # FalconH1DecoderLayer: attention and this Mamba2 mixer side by side
    return t.FalconH1Config(
        **_common(spec),
        intermediate_size=spec.intermediate_size,
        mamba_d_ssm=mamba.d_inner,
        mamba_n_heads=mamba.n_heads,
        mamba_d_head=mamba.d_inner // mamba.n_heads,
        mamba_n_groups=mamba.n_groups,
        mamba_d_state=mamba.d_state,
        mamba_d_conv=mamba.d_conv,
        mamba_rms_norm=mamba.ssm_norm,
    )


def _minimax(t, spec: ModelSpec):
    # MiniMaxDecoderLayer: lightning attention ("linear_attention") or softmax attention, MoE on every layer
    lightning = [spec.kind(n).type == "recurrent" for n in spec.layer_kind_names]
    return t.MiniMaxConfig(
        **_common(spec),
        **_moe(spec, "num_local_experts"),
        intermediate_size=spec.moe.expert_intermediate_size,
        layer_types=["linear_attention" if flag else "full_attention" for flag in lightning],
    )


def _glm4_moe(t, spec: ModelSpec):
    moe = spec.moe
    return t.Glm4MoeConfig(
        **_common(spec),
        intermediate_size=spec.intermediate_size,
        moe_intermediate_size=moe.expert_intermediate_size,
        n_routed_experts=moe.num_experts,
        n_shared_experts=moe.num_shared_experts,
        num_experts_per_tok=moe.experts_per_token,
        first_k_dense_replace=moe.first_dense_layers,
        attention_bias=spec.params.attention_bias == "qkv",
        use_qk_norm=spec.params.qk_norm,
    )


def _qwen3_5(t, spec: ModelSpec):
    linear = spec.kind("linear")
    deltanet = {
        "linear_num_key_heads": linear.n_k_heads,
        "linear_num_value_heads": linear.n_heads,
        "linear_key_head_dim": linear.head_k_dim,
        "linear_value_head_dim": linear.head_v_dim,
        "linear_conv_kernel_dim": linear.d_conv,
    }
    if spec.moe is None:
        return t.Qwen3_5TextConfig(**_common(spec), **deltanet, intermediate_size=spec.intermediate_size)
    return t.Qwen3_5MoeTextConfig(
        **_common(spec),
        **deltanet,
        **_moe(spec, "num_experts"),
        moe_intermediate_size=spec.moe.expert_intermediate_size,
        shared_expert_intermediate_size=spec.moe.shared_size,
    )


# family -> config built from the spec; each is the family's transformers class, nothing else.
CONFIGS: dict[str, Callable[[Any, ModelSpec], Any]] = {
    "llama": lambda t, s: t.LlamaConfig(**_common(s), intermediate_size=s.intermediate_size),
    "mistral": lambda t, s: t.MistralConfig(**_common(s), intermediate_size=s.intermediate_size),
    "phi3": lambda t, s: t.Phi3Config(**_common(s, head_dim=False), intermediate_size=s.intermediate_size),
    "qwen2": lambda t, s: t.Qwen2Config(**_common(s), intermediate_size=s.intermediate_size),
    "qwen3": lambda t, s: t.Qwen3Config(**_common(s), intermediate_size=s.intermediate_size),
    "gemma2": lambda t, s: t.Gemma2Config(**_common(s), intermediate_size=s.intermediate_size),
    "gemma3": lambda t, s: t.Gemma3TextConfig(**_common(s), intermediate_size=s.intermediate_size),
    "mixtral": lambda t, s: t.MixtralConfig(
        **_common(s), **_moe(s, "num_local_experts"), intermediate_size=s.moe.expert_intermediate_size
    ),
    "qwen3_moe": lambda t, s: t.Qwen3MoeConfig(
        **_common(s),
        **_moe(s, "num_experts"),
        intermediate_size=s.intermediate_size,
        moe_intermediate_size=s.moe.expert_intermediate_size,
    ),
    "gpt_oss": lambda t, s: t.GptOssConfig(
        **_common(s), **_moe(s, "num_local_experts"), intermediate_size=s.moe.expert_intermediate_size
    ),
    "llama4": lambda t, s: t.Llama4TextConfig(
        **_common(s),
        **_moe(s, "num_local_experts"),
        intermediate_size=s.moe.expert_intermediate_size,
        intermediate_size_mlp=s.intermediate_size,
        moe_layers=sorted(s.moe_layers),  # Scout: every layer; Maverick: the odd ones (interleave_moe_layer_step 2)
    ),
    "falcon": lambda t, s: t.FalconConfig(
        hidden_size=s.hidden_size,
        vocab_size=s.vocab_size,
        num_hidden_layers=s.num_layers,
        num_attention_heads=s.num_attention_heads,
        multi_query=True,
        parallel_attn=True,
        bias=False,
        new_decoder_architecture=False,
        alibi=False,
    ),
    "olmo2": lambda t, s: t.Olmo2Config(**_common(s, head_dim=False), intermediate_size=s.intermediate_size),
    "smollm3": lambda t, s: t.SmolLM3Config(**_common(s, head_dim=False), intermediate_size=s.intermediate_size),
    "cohere2": lambda t, s: t.Cohere2Config(**_common(s, head_dim=False), intermediate_size=s.intermediate_size),
    "minimax_m2": lambda t, s: t.MiniMaxM2Config(
        **_common(s), **_moe(s, "num_local_experts"), intermediate_size=s.moe.expert_intermediate_size
    ),
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
    "kimi_k2": _deepseek,  # Kimi K2 runs DeepseekV3ForCausalLM
    "deepseek_v32": _deepseek_v32,  # the lightning indexer's weights included
    "jamba": _jamba,
    "qwen3_next": _qwen3_next,
    "nemotron_h": _nemotron_h,
    "granitemoehybrid": _granitemoehybrid,
    "falcon_h1": _falcon_h1,
    "minimax_m1": _minimax,  # the remote-code MiniMax-M1 config, transformers' MiniMax architecture
    "gemma3n_text": _gemma3n,
    "mllama": _mllama,
    "glm4_moe": _glm4_moe,
    "qwen3_5": _qwen3_5,
    "qwen3_5_moe": _qwen3_5,
}


def _checkpoint_tensors(model) -> int:
    """Parameters, plus DeepSeek V3's router correction bias: a buffer in transformers, a tensor in the checkpoint."""
    # (MiniMax-M2's, GLM-4.5's and Nemotron-H's are the same buffer.)
    extra = sum(b.numel() for name, b in model.named_buffers() if name.endswith("e_score_correction_bias"))
    return sum(p.numel() for p in model.parameters()) + extra + _dropped_shared_kv(model)


def _dropped_shared_kv(model) -> int:
    """Gemma 3n: the checkpoint ships k_proj, v_proj and k_norm on its KV-shared layers and vLLM loads them
    (one QKV projection per layer); transformers 5.24 drops them on load (modeling_gemma3n.py
    _keys_to_ignore_on_load_unexpected) and builds no module for them. v_norm has no weight."""
    total = 0
    for module in model.modules():
        if getattr(module, "is_kv_shared_layer", False):
            kv = module.config.num_key_value_heads * module.head_dim
            total += 2 * module.config.hidden_size * kv + module.head_dim
    return total


@pytest.mark.parametrize("name", bundled_names())
def test_count_equals_transformers_modules(name):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    spec = load_bundled(name)
    if spec.family not in CONFIGS:
        pytest.skip(f"no transformers config mapping for family {spec.family!r}")
    config = CONFIGS[spec.family](transformers, spec)
    # Llama 3.2 Vision: the whole model (vision tower and projector in extra_params), not the text-only class
    model_class = getattr(transformers, WHOLE_MODEL.get(spec.family, "AutoModelForCausalLM"))
    with torch.device("meta"):
        model = (
            model_class.from_config(config) if model_class is transformers.AutoModelForCausalLM else model_class(config)
        )
    assert _checkpoint_tensors(model) == count_params(spec).total


WHOLE_MODEL = {"mllama": "MllamaForConditionalGeneration"}


def test_mistral_small_vision_tower_is_what_the_published_24b_adds():
    """The text spec is 1.8% under Mistral Small 3.1's "24B"; the Pixtral tower and projector make up the rest."""
    import json
    from pathlib import Path

    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    raw = json.loads((Path(__file__).parent / "data" / "hf_configs" / "mistral-small-3.1-24b.json").read_text())
    config = transformers.Mistral3Config(
        text_config=raw["text_config"], vision_config=raw["vision_config"], tie_word_embeddings=False
    )
    with torch.device("meta"):
        model = transformers.Mistral3ForConditionalGeneration(config)
    named = dict(model.named_parameters())
    vision = sum(p.numel() for n, p in named.items() if "vision_tower" in n or "multi_modal_projector" in n)
    text = sum(p.numel() for p in named.values()) - vision
    spec = load_bundled("mistral-small-3.1-24b")
    assert text == count_params(spec).total == 23_572_403_200
    # Pixtral: 24 x (4 x 1024^2 attention + 3 x 1024 x 4096 MLP + 2 norms) + patch conv 3*14*14*1024 + ln_pre
    # = 403,305,472; projector: norm 1024 + patch merger 4096 x 1024 + 1024 x 5120 + 5120 x 5120 = 35,652,608.
    assert vision == 24 * (4 * 1024**2 + 3 * 1024 * 4096 + 2 * 1024) + 3 * 14 * 14 * 1024 + 1024 + 35_652_608
    assert vision == 438_958_080
    assert abs(text + vision - 24e9) <= 0.01 * 24e9  # 24,011,361,280: +0.05% vs the published 24B


@pytest.mark.parametrize(
    ("name", "generation", "vision_params"),
    [
        # 27 ViT blocks of 1152 (qkv, proj, MLP 4304, 2 LayerNorms, biases) + patch embed + position
        # embedding + merger to the text width: counted by transformers below, pinned here.
        ("qwen3.5-27b", "Qwen3_5ForConditionalGeneration", 460_730_096),
        ("qwen3.5-35b-a3b", "Qwen3_5MoeForConditionalGeneration", 446_571_248),  # merger out to 2048, not 5120
    ],
)
def test_qwen3_5_text_spec_is_the_release_without_its_vision_tower(name, generation, vision_params):
    import json
    from pathlib import Path

    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    raw = json.loads((Path(__file__).parent / "data" / "hf_configs" / f"{name}.json").read_text())
    config_class = getattr(transformers, generation.replace("ForConditionalGeneration", "Config"))
    config = config_class(text_config=raw["text_config"], vision_config=raw["vision_config"], tie_word_embeddings=False)
    with torch.device("meta"):
        model = getattr(transformers, generation)(config)
    named = dict(model.named_parameters())
    vision = sum(p.numel() for n, p in named.items() if ".visual." in f".{n}")
    assert vision == vision_params
    assert sum(p.numel() for p in named.values()) - vision == count_params(load_bundled(name)).total

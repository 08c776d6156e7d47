"""Hugging Face config.json import: every dialect, the traps of models.md 2.4, and `kvplan import`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from kvplan.catalog import load_spec_file, specs_dir
from kvplan.errors import InvalidInput
from kvplan.hf import ImportResult, import_config, spec_from_hf_config
from kvplan.memory import cache_plan
from kvplan.params import count_params

DATA = Path(__file__).parent / "data" / "hf_configs"
CONFIGS = sorted(DATA.glob("*.json"))
LENGTHS = (4096, 32768, 131072)

# Test configs that are variants of one bundled model (same architecture, other spelling).
BUNDLED_OF = {
    "falcon-7b-resaved": "falcon-7b",
    "falcon-7b-rw": "falcon-7b",
    "llama-3.2-11b-vision-instruct": "llama-3.2-11b-vision",
    "llama-3.2-90b-vision-instruct": "llama-3.2-90b-vision",
}


def imported(stem: str) -> ImportResult:
    return import_config(DATA / f"{stem}.json")


def kv(spec, length: int | None = None) -> int:
    plan = cache_plan(spec, "bf16")
    return plan.bytes_per_token if length is None else plan.bytes_per_sequence(length)


# ---- every test config -----------------------------------------------------------------------


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_yaml_round_trip(path: Path, tmp_path: Path) -> None:
    result = import_config(path)
    text = result.to_yaml()
    assert text.startswith(f"# Imported from {path}")
    out = tmp_path / "spec.yaml"
    out.write_text(text)
    assert load_spec_file(out) == result.spec


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_matches_bundled_spec(path: Path) -> None:
    """Same KV bytes/token, bytes at 4K/32K/128K and parameter count as the hand-written spec."""
    name = BUNDLED_OF.get(path.stem, path.stem)
    bundled_path = specs_dir() / f"{name}.yaml"
    if not bundled_path.is_file():
        pytest.skip(f"model_specs/{name}.yaml is not bundled")
    bundled = load_spec_file(bundled_path)
    spec = import_config(path).spec
    assert kv(spec) == kv(bundled)
    assert [kv(spec, n) for n in LENGTHS] == [kv(bundled, n) for n in LENGTHS]
    assert count_params(spec).total == count_params(bundled).total
    assert count_params(spec).active == count_params(bundled).active


# Golden numbers: shared/reference/models.md sections 2.1-2.3 (bf16 KV, one sequence).
GOLDEN = {
    # 2 x 32 layers x 1 KV head x 64 x 2 B (Falcon MQA); naive kv=71 would be 581,632
    "falcon-7b": (8192, [33_554_432, 268_435_456, 1_073_741_824]),
    # 2 x 28 x 4 x 128 x 2 = 57,344; use_sliding_window false -> full attention
    "qwen2.5-7b": (57_344, [234_881_024, 1_879_048_192, 7_516_192_768]),
    # 2 x 32 x 32 x 96 x 2 = 393,216; window 262144 > context -> full attention
    "phi-3-mini-128k": (393_216, [1_610_612_736, 12_884_901_888, 51_539_607_552]),
    # c = 8,192; 52 sliding (W 1024) + 10 global: 8,192 x (10 x 4,096 + 52 x 1,024) = 771,751,936 at 4K
    "gemma-3-27b": (507_904, [771_751_936, 3_120_562_176, 11_173_625_856]),
    # c = 2,048; 12 sliding (W 128) + 12 full: 2,048 x (12 x 4,096 + 12 x 128) = 103,809,024 at 4K
    "gpt-oss-20b": (49_152, [103_809_024, 808_452_096, 3_224_371_200]),
    # (512 + 64) x 60 x 2 = 69,120 (MLA latent)
    "deepseek-v2": (69_120, [283_115_520, 2_264_924_160, 9_059_696_640]),
    # 32 sliding layers, W 4096: 32 x 4,096 x 4,096 B at every length >= 4K
    "mistral-7b-v0.1": (131_072, [536_870_912, 536_870_912, 536_870_912]),
    # 2 x 42 x 8 x 256 x 2; 21 sliding (W 4096) + 21 global
    "gemma-2-9b": (344_064, [1_409_286_144, 6_341_787_648, 23_253_221_376]),
}


@pytest.mark.parametrize("stem", sorted(GOLDEN))
def test_golden_kv_bytes(stem: str) -> None:
    per_token, totals = GOLDEN[stem]
    spec = imported(stem).spec
    assert kv(spec) == per_token
    assert [kv(spec, n) for n in LENGTHS] == totals


def test_parameter_counts_match_models_md() -> None:
    # [COMPUTED] counts of shared/reference/models.md 1.2, 1.9, 1.13, 1.20, 1.21
    assert count_params(imported("llama-2-13b").spec).total == 13_015_864_320
    mixtral = count_params(imported("mixtral-8x7b").spec)
    assert (mixtral.total, mixtral.active) == (46_702_792_704, 12_879_925_248)
    assert count_params(imported("qwen3-30b-a3b").spec).total == 30_532_122_624
    assert count_params(imported("falcon-7b").spec).total == 6_921_720_704
    assert count_params(imported("gpt-oss-20b").spec).total == 20_914_757_184


# ---- traps -----------------------------------------------------------------------------------


def test_falcon_multi_query_means_one_kv_head_whatever_num_kv_heads_says() -> None:
    # falcon-7b-resaved carries "num_kv_heads": 71 with multi_query true, new_decoder_architecture false.
    assert json.loads((DATA / "falcon-7b-resaved.json").read_text())["num_kv_heads"] == 71
    for stem in ("falcon-7b", "falcon-7b-resaved", "falcon-7b-rw"):
        spec = imported(stem).spec
        assert (spec.num_kv_heads, spec.head_dim, spec.num_layers) == (1, 64, 32), stem
    same = {"family", "notes"}  # the RW file says model_type RefinedWebModel
    assert imported("falcon-7b-rw").spec.model_dump(exclude=same) == imported("falcon-7b").spec.model_dump(exclude=same)


def test_falcon_new_decoder_architecture_and_plain_mha() -> None:
    base = json.loads((DATA / "falcon-7b.json").read_text())
    big = {**base, "new_decoder_architecture": True, "num_kv_heads": 8, "num_attention_heads": 64, "hidden_size": 8192}
    assert spec_from_hf_config(big, origin="x").spec.num_kv_heads == 8
    mha = {**base, "multi_query": False}
    assert spec_from_hf_config(mha, origin="x").spec.num_kv_heads == 71  # num_kv_heads absent -> heads
    assert spec_from_hf_config({**base, "alibi": True}, origin="x").spec.rope is None


def test_qwen25_window_is_inactive() -> None:
    spec = imported("qwen2.5-7b").spec  # sliding_window 131072 but use_sliding_window false
    assert [k.type for k in spec.layers.kinds.values()] == ["full"]
    raw = json.loads((DATA / "qwen2.5-7b.json").read_text())
    on = {**raw, "use_sliding_window": True, "sliding_window": 4096, "max_window_layers": 20}
    spec = spec_from_hf_config(on, origin="x").spec
    # Qwen2Config: layers at index >= max_window_layers slide -> 20 full + 8 sliding
    assert spec.kind_counts == {"full": 20, "sliding": 8}
    assert spec.kind("sliding").window == 4096
    all_full = {**on, "max_window_layers": 28}
    assert spec_from_hf_config(all_full, origin="x").spec.kind_counts == {"full": 28}
    no_window = {**on, "sliding_window": None}
    assert spec_from_hf_config(no_window, origin="x").spec.kind_counts == {"full": 28}


def test_phi3_window_beyond_context_is_not_a_window() -> None:
    result = imported("phi-3-mini-128k")
    assert result.spec.kind_counts == {"full": 32}
    # longrope: Phi-3 keeps original_max_position_embeddings at the top level
    assert result.spec.rope.scaling == {"rope_type": "longrope", "original_max_position_embeddings": 4096}
    assert result.spec.original_max_position_embeddings == 4096
    raw = json.loads((DATA / "phi-3-mini-128k.json").read_text())
    short = {**raw, "max_position_embeddings": 4096, "sliding_window": 2047, "rope_scaling": None}
    spec = spec_from_hf_config(short, origin="x").spec  # Phi-3-mini-4k style: the window binds
    assert spec.kind_counts == {"sliding": 32} and spec.kind("sliding").window == 2047
    su = {**raw, "rope_scaling": {"type": "su", "short_factor": [1.0], "long_factor": [2.0]}}
    assert spec_from_hf_config(su, origin="x").spec.rope.scaling["rope_type"] == "longrope"


def test_gemma3_sparse_text_config_takes_class_defaults() -> None:
    spec = imported("gemma-3-27b").spec
    assert (spec.vocab_size, spec.max_position_embeddings, spec.tie_word_embeddings) == (262208, 131072, True)
    assert spec.rope.theta == 1e6 and spec.rope.scaling == {"rope_type": "linear", "factor": 8.0}
    assert spec.kind("sliding").rope_theta == 10000.0 and spec.kind("sliding").window == 1024
    assert spec.kind_counts == {"sliding": 52, "full": 10}  # global at 5, 11, ..., 59
    assert spec.dtype == "bf16" and spec.head_dim == 128  # not 5376 / 32 = 168


def test_gemma3_vision_tower_is_named_and_nested_rope_parameters_read() -> None:
    raw = json.loads((DATA / "gemma-3-27b.json").read_text())
    with_vision = {**raw, "vision_config": {"model_type": "siglip_vision_model"}}
    assert any("vision tower" in w for w in spec_from_hf_config(with_vision, origin="x").warnings)
    text = dict(raw["text_config"], model_type="gemma3_text")
    text.pop("rope_scaling")
    text["rope_parameters"] = {
        "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
    }
    v5 = {"model_type": "gemma3", "text_config": text, "dtype": "bfloat16"}
    labels = {"source", "family", "notes"}  # the inner model_type here is gemma3_text
    new = spec_from_hf_config(v5, origin="x", name="gemma-3-27b").spec.model_dump(exclude=labels)
    assert new == imported("gemma-3-27b").spec.model_dump(exclude=labels)


def test_float32_checkpoint_plans_in_the_serving_dtype() -> None:
    # Issue 9 changed this: google/gemma-2-9b ships float32; it was planned at fp32 (4 bytes per
    # element, twice the KV of a served model); engines serve it in bf16, so it is bf16 with a note.
    result = imported("gemma-2-9b")
    assert result.spec.dtype == "bf16"
    assert any("the checkpoint is float32; planned in the serving dtype bf16" in w for w in result.warnings)
    assert imported("llama-2-7b").spec.dtype == "fp16"
    raw = json.loads((DATA / "llama-2-7b.json").read_text())
    v5 = {k: v for k, v in raw.items() if k != "torch_dtype"} | {"dtype": "bfloat16"}
    assert spec_from_hf_config(v5, origin="x").spec.dtype == "bf16"


YARN = {"factor": 32.0, "original_max_position_embeddings": 4096}


@pytest.mark.parametrize(
    "fields",
    [
        {"rope_theta": 10000.0, "rope_scaling": {"type": "yarn", **YARN}},
        {"rope_theta": 10000.0, "rope_scaling": {"rope_type": "yarn", **YARN}},
        {"rope_theta": 10000.0, "rope_scaling": {"rope_type": "yarn", "type": "yarn", **YARN}},
        {"rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0, **YARN}},
    ],
    ids=["type", "rope_type", "both", "rope_parameters"],
)
def test_rope_scaling_spellings_agree(fields: dict[str, Any]) -> None:
    raw = json.loads((DATA / "llama-2-7b.json").read_text())
    raw = {k: v for k, v in raw.items() if k not in ("rope_scaling", "rope_theta")} | fields
    rope = spec_from_hf_config(raw, origin="x").spec.rope
    assert rope.theta == 10000.0
    assert rope.scaling == {"rope_type": "yarn", "factor": 32.0, "original_max_position_embeddings": 4096}


def test_rope_without_scaling_and_bad_scaling() -> None:
    raw = json.loads((DATA / "llama-3-8b.json").read_text())
    plain = {k: v for k, v in raw.items() if k != "rope_theta"} | {
        "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}
    }
    assert spec_from_hf_config(plain, origin="x").spec.rope.model_dump() == {
        "theta": 500000.0,
        "partial_rotary_factor": 1.0,
        "scaling": None,
    }
    with pytest.raises(InvalidInput, match="has no 'rope_type'"):
        spec_from_hf_config({**raw, "rope_scaling": {"factor": 2.0}}, origin="x")


def test_yarn_llama_keeps_its_extra_key() -> None:
    scaling = imported("yarn-llama-2-7b-128k").spec.rope.scaling
    assert scaling == {"rope_type": "yarn", "factor": 32.0, "original_max_position_embeddings": 4096, "finetuned": True}


def test_mla_latent_and_null_q_lora_rank() -> None:
    lite = imported("deepseek-v2-lite").spec
    mla = lite.kind("mla")
    assert mla.q_lora_rank is None and (mla.kv_lora_rank, mla.qk_rope_head_dim) == (512, 64)
    assert kv(lite) == (512 + 64) * 27 * 2  # latent + rope key per layer, bf16
    assert lite.moe.first_dense_layers == 1 and lite.moe.num_shared_experts == 2


def test_deepseek_moe_layer_freq_and_notes() -> None:
    raw = json.loads((DATA / "deepseek-v2-lite.json").read_text())
    spec = spec_from_hf_config({**raw, "num_hidden_layers": 8, "moe_layer_freq": 2}, origin="x").spec
    # MoE iff i >= first_k_dense_replace (1) and i % 2 == 0 -> MoE at 2, 4, 6
    assert spec.dense_mlp_layers == frozenset({0, 1, 3, 5, 7})
    warnings = imported("deepseek-v3").warnings
    assert any("quant_method 'fp8'" in w for w in warnings)
    assert any("multi-token-prediction" in w for w in warnings)
    assert imported("deepseek-v3").spec.moe.router_bias is True


def test_jamba_hybrid_layout() -> None:
    spec = imported("jamba-v0.1").spec
    assert spec.rope is None
    assert [spec.kind(n).type for n in spec.layers.pattern] == ["recurrent"] * 4 + ["full"] + ["recurrent"] * 3
    assert spec.kind("mamba").d_inner == 8192 and spec.kind("mamba").dt_rank == 256
    assert spec.dense_mlp_layers == frozenset(range(0, 32, 2))
    assert kv(spec) == 4 * 2 * 8 * 128 * 2  # four attention layers hold KV


def test_qwen3_next_interval_and_layer_types_agree() -> None:
    raw = json.loads((DATA / "qwen3-next-80b-a3b.json").read_text())
    spec = spec_from_hf_config(raw, origin="x").spec
    assert spec.kind_counts == {"deltanet": 36, "full": 12}
    listed = {k: v for k, v in raw.items() if k != "full_attention_interval"} | {
        "layer_types": ["linear_attention" if (i + 1) % 4 else "full_attention" for i in range(48)]
    }
    assert spec_from_hf_config(listed, origin="x").spec == spec
    assert spec.params.attention_output_gate and spec.moe.shared_expert_gate


def test_glm4_moe_dense_prefix_shared_expert_and_partial_rope() -> None:
    result = imported("glm-4.5")
    spec = result.spec
    assert spec.dense_mlp_layers == frozenset({0, 1, 2})  # first_k_dense_replace 3
    assert (spec.moe.num_shared_experts, spec.moe.shared_size, spec.moe.router_bias) == (1, 1536, True)
    assert (spec.params.attention_bias, spec.params.qk_norm) == ("qkv", True)
    assert spec.rope.partial_rotary_factor == 0.5
    assert any("num_nextn_predict_layers" in w and "not counted" in w for w in result.warnings)
    air = imported("glm-4.5-air").spec
    assert air.dense_mlp_layers == frozenset({0}) and not air.params.qk_norm
    # Glm4MoeConfig.__post_init__ sets partial_rotary_factor 0.5 when the file does not say
    raw = {k: v for k, v in json.loads((DATA / "glm-4.5-air.json").read_text()).items() if k != "partial_rotary_factor"}
    assert spec_from_hf_config(raw, origin="x").spec.rope.partial_rotary_factor == 0.5


def test_non_string_architectures_entry_is_not_a_traceback() -> None:
    # Found by tests/test_fuzz.py: an architectures list holding a list (and no model_type) reached a dict lookup.
    raw = {k: v for k, v in json.loads((DATA / "qwen3-32b.json").read_text()).items() if k != "model_type"}
    result = spec_from_hf_config({**raw, "architectures": [[]]}, origin="x")
    assert result.warnings[0].startswith("no model_type")


def test_qwen3_5_multimodal_and_flat_text_configs_agree() -> None:
    """The release's nested text_config and a text-only (Qwen3_5ForCausalLM) config give one spec;
    the MTP layer named inside text_config is reported."""
    for stem in ("qwen3.5-27b", "qwen3.5-35b-a3b"):
        result = imported(stem)
        assert any("vision tower" in w for w in result.warnings)
        assert any("mtp_num_hidden_layers" in w for w in result.warnings)
        raw = json.loads((DATA / f"{stem}.json").read_text())
        flat = {k: v for k, v in raw["text_config"].items() if k != "layer_types"}
        assert spec_from_hf_config(flat, origin="x", name=result.spec.name).spec.model_dump(
            exclude={"source", "family", "notes"}
        ) == result.spec.model_dump(exclude={"source", "family", "notes"})
    spec = imported("qwen3.5-27b").spec
    assert spec.kind_counts == {"deltanet": 48, "full": 16}
    assert spec.params.attention_output_gate and spec.params.qk_norm and spec.moe is None


def test_unknown_model_type_warns_once_with_every_assumption() -> None:
    config = {
        "model_type": "brandnew",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "intermediate_size": 11008,
        "vocab_size": 32000,
        "max_position_embeddings": 4096,
    }
    result = spec_from_hf_config(config, origin="cfg.json")
    assert len(result.warnings) == 1
    warning = result.warnings[0]
    assert warning.startswith("model_type 'brandnew' is not a dialect kvplan knows; imported best-effort")
    for part in (
        "head_dim assumed hidden_size/num_attention_heads = 128",
        "num_key_value_heads assumed = num_attention_heads = 32 (MHA)",
        "tie_word_embeddings assumed false",
        "no torch_dtype/dtype; dtype assumed bf16",
        "rope_theta assumed 10000.0",
        "every layer assumed full attention",
        "Llama layout assumed (gated MLP, RMSNorm",
    ):
        assert part in warning
    assert kv(result.spec) == 524_288  # Llama-2-7B geometry
    windowed = {**config, "sliding_window": 1024, "num_key_value_heads": 8, "head_dim": 128, "torch_dtype": "float16"}
    result = spec_from_hf_config(windowed, origin="cfg.json")
    assert "sliding_window assumed on every layer" in result.warnings[0]
    assert "head_dim assumed" not in result.warnings[0]
    assert result.spec.kind_counts == {"sliding": 32}
    listed = {
        **windowed,
        "layer_types": ["sliding_attention", "sliding_attention", "full_attention"] * 10 + ["full_attention"] * 2,
    }
    result = spec_from_hf_config(listed, origin="cfg.json")
    assert "sliding_window assumed" not in result.warnings[0]
    assert result.spec.kind_counts == {"sliding": 20, "full": 12} and result.spec.layers.types is not None
    with pytest.raises(InvalidInput, match="linear_attention layers of model_type 'brandnew' keep a state kvplan"):
        spec_from_hf_config({**listed, "layer_types": ["linear_attention"] * 32}, origin="cfg.json")


@pytest.mark.parametrize(
    "missing",
    [
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "vocab_size",
        "intermediate_size",
        "max_position_embeddings",
    ],
)
def test_unknown_model_type_missing_essentials(missing: str) -> None:
    config = {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 96,
        "vocab_size": 100,
        "max_position_embeddings": 128,
    }
    del config[missing]
    with pytest.raises(InvalidInput, match=f"cfg.json: {missing} is missing"):
        spec_from_hf_config(config, origin="cfg.json")


def test_spec_errors_surface_as_one_line_each() -> None:
    raw = json.loads((DATA / "llama-3-8b.json").read_text())
    with pytest.raises(InvalidInput) as exc:
        spec_from_hf_config({**raw, "num_key_value_heads": 5}, origin="c.json")
    assert str(exc.value) == "c.json: (top level): num_attention_heads (32) is not divisible by num_kv_heads (5)"
    with pytest.raises(InvalidInput, match=r"c.json: hidden_size: expected a positive whole number, got '4096'"):
        spec_from_hf_config({**raw, "hidden_size": "4096"}, origin="c.json")
    with pytest.raises(InvalidInput, match="layer_types must list one entry per layer"):
        spec_from_hf_config({**raw, "layer_types": ["full_attention"]}, origin="c.json")
    with pytest.raises(InvalidInput, match="must hold a JSON object, got list"):
        spec_from_hf_config([1, 2], origin="c.json")


def test_import_config_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text("{ not json")
    with pytest.raises(InvalidInput, match="malformed JSON"):
        import_config(bad)
    with pytest.raises(InvalidInput, match="holds no config.json"):
        import_config(tmp_path / "..")
    with pytest.raises(InvalidInput, match="does not exist"):
        import_config(tmp_path / "nope.json")


def test_names() -> None:
    assert imported("llama-3.1-8b").spec.name == "llama-3.1-8b"  # from _name_or_path meta-llama/Llama-3.1-8B
    assert imported("deepseek-v3").spec.name == "deepseek-v3"  # no _name_or_path: the file name
    raw = json.loads((DATA / "deepseek-v3.json").read_text())
    assert spec_from_hf_config(raw, origin="models/DeepSeek-V3/config.json").spec.name == "deepseek-v3"
    assert spec_from_hf_config(raw, origin="x", name="mine").spec.name == "mine"


# ---- against transformers: parameter counts and layer types of tiny models -------------------

TINY = {
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 128,
    "max_position_embeddings": 256,
}
MLA_TINY = {"kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8, "n_routed_experts": 4}
MOE_TINY = {"num_experts_per_tok": 2, "moe_intermediate_size": 32}
# Gated DeltaNet (Qwen3-Next, Qwen3.5) linear-attention heads, tiny.
LINEAR_TINY = {
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 8,
    "linear_value_head_dim": 8,
}
DIALECTS: dict[str, dict[str, Any]] = {
    "llama": {},
    "llama-biases": {"model_type": "llama", "attention_bias": True, "mlp_bias": True},
    "mistral": {"sliding_window": 32},
    "mixtral": {"num_local_experts": 4, "num_experts_per_tok": 2},
    "qwen2": {"use_sliding_window": True, "sliding_window": 32, "max_window_layers": 2},
    "qwen2_moe": {
        "num_experts": 4,
        **MOE_TINY,
        "shared_expert_intermediate_size": 48,
        "decoder_sparse_step": 2,
        "use_sliding_window": True,
        "sliding_window": 32,
        "max_window_layers": 3,
    },
    "qwen3": {"head_dim": 32, "use_sliding_window": True, "sliding_window": 32, "max_window_layers": 1},
    "qwen3_moe": {"num_experts": 4, **MOE_TINY, "mlp_only_layers": [1]},
    "gemma2": {"head_dim": 32, "sliding_window": 32},
    "gemma3_text": {"head_dim": 32, "num_hidden_layers": 7, "sliding_window": 32},
    "deepseek_v2": {**MLA_TINY, "q_lora_rank": None, "n_shared_experts": 1, **MOE_TINY, "first_k_dense_replace": 1},
    "deepseek_v3": {
        **MLA_TINY,
        "q_lora_rank": 24,
        "n_shared_experts": 1,
        **MOE_TINY,
        "first_k_dense_replace": 1,
        "n_group": 1,
        "topk_group": 1,
        "num_nextn_predict_layers": 0,
    },
    "phi3": {"num_key_value_heads": 4},
    "falcon": {"multi_query": True, "num_kv_heads": 4},
    "falcon-40b-style": {"model_type": "falcon", "new_decoder_architecture": True, "num_kv_heads": 2, "bias": True},
    "falcon-sequential": {"model_type": "falcon", "multi_query": False, "parallel_attn": False},
    "gpt_oss": {"head_dim": 16, "num_local_experts": 4, "num_experts_per_tok": 2, "sliding_window": 8},
    "cohere": {},
    "cohere-qk-norm": {"model_type": "cohere", "use_qk_norm": True},
    "olmo2": {},
    "smollm3": {"no_rope_layers": [1, 0, 1, 1]},
    "cohere2": {"sliding_window": 32, "sliding_window_pattern": 2},
    "minimax_m2": {"head_dim": 16, "num_local_experts": 4, "num_experts_per_tok": 2, "rotary_dim": 8},
    "llama4_text": {
        "head_dim": 16,
        "num_local_experts": 4,
        "num_experts_per_tok": 1,
        "intermediate_size_mlp": 80,
        "interleave_moe_layer_step": 2,
        "attention_chunk_size": 32,
    },
    "jamba": {
        "num_hidden_layers": 8,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "attn_layer_period": 4,
        "attn_layer_offset": 1,
    },
    "qwen3_next": {
        "head_dim": 16,
        "num_experts": 4,
        **MOE_TINY,
        "shared_expert_intermediate_size": 32,
        **LINEAR_TINY,
    },
    # GLM-4.5: the first k layers dense, then routed + shared experts and a biased router; q/k/v biases, q/k norm.
    "glm4_moe": {
        "head_dim": 16,
        "n_routed_experts": 4,
        **MOE_TINY,
        "n_shared_experts": 2,
        "first_k_dense_replace": 2,
        "attention_bias": True,
        "use_qk_norm": True,
    },
    "glm4_moe-air": {"model_type": "glm4_moe", "n_routed_experts": 4, **MOE_TINY, "attention_bias": True},
    "qwen3_5_text": {
        "head_dim": 16,
        **LINEAR_TINY,
    },
    "qwen3_5_moe_text": {
        "head_dim": 16,
        "num_experts": 4,
        **MOE_TINY,
        "shared_expert_intermediate_size": 32,
        **LINEAR_TINY,
    },
}
_HF_TYPE = {
    "full": "full_attention",
    "sliding": "sliding_attention",
    "chunked": "chunked_attention",
    "recurrent": "linear_attention",
}


def _tiny(case: str) -> dict[str, Any]:
    extra = DIALECTS[case]
    config = {**TINY, **extra, "model_type": extra.get("model_type", case)}
    if config["model_type"] == "falcon":
        config.pop("num_key_value_heads")
    return config


@pytest.fixture(scope="module")
def hf() -> Any:
    pytest.importorskip("torch")
    return pytest.importorskip("transformers")


@pytest.mark.parametrize("case", sorted(DIALECTS))
def test_parameter_count_equals_transformers(case: str, hf: Any) -> None:
    """Every dialect: kvplan's count of the imported spec equals the parameters transformers builds."""
    import torch

    config = _tiny(case)
    hf_config = hf.AutoConfig.for_model(**config, pad_token_id=None, bos_token_id=None, eos_token_id=None)
    with torch.device("meta"):
        model = hf.AutoModelForCausalLM.from_config(hf_config)
    expected = sum(p.numel() for p in model.parameters())
    # DeepSeek V3's router correction bias is a buffer in transformers but a stored checkpoint tensor.
    expected += sum(b.numel() for n, b in model.named_buffers() if n.endswith("e_score_correction_bias"))
    assert count_params(spec_from_hf_config(config, origin=case).spec).total == expected
    layer_types = getattr(hf_config, "layer_types", None)
    if layer_types is not None:
        spec = spec_from_hf_config(config, origin=case).spec
        ours = [_HF_TYPE[spec.kind(n).type] for n in spec.layer_kind_names]
        assert ours == list(layer_types)


# ---- the CLI -----------------------------------------------------------------------------------


def test_cli_import_writes_refuses_overwrite_and_forces(cli, tmp_path: Path) -> None:
    out = tmp_path / "spec.yaml"
    config = str(DATA / "gemma-3-27b.json")
    first = cli("import", config, "-o", str(out))
    assert first.exit_code == 0, first.output
    written = out.read_text()
    assert load_spec_file(out) == imported("gemma-3-27b").spec
    out.write_text(written + "# edited\n")
    again = cli("import", config, "-o", str(out))
    assert again.exit_code == 2
    assert "already exists; pass --force" in again.output
    assert out.read_text() == written + "# edited\n"
    forced = cli("import", config, "-o", str(out), "--force")
    assert forced.exit_code == 0 and out.read_text() == written


def test_cli_import_reads_a_folder(cli, tmp_path: Path) -> None:
    folder = tmp_path / "Mistral-7B-v0.1"
    folder.mkdir()
    shutil.copy(DATA / "mistral-7b-v0.1.json", folder / "config.json")
    result = cli("import", str(folder))
    assert result.exit_code == 0
    assert f"# Imported from {folder / 'config.json'}" in result.output
    assert "sliding: {type: sliding, window: 4096}" in result.output
    empty = cli("import", str(tmp_path))
    assert empty.exit_code == 2 and "holds no config.json" in empty.output


def test_cli_import_to_stdout_with_name_and_warnings(cli) -> None:
    result = cli("import", str(DATA / "deepseek-v3.json"), "--name", "dsv3")
    assert result.exit_code == 0
    assert "name: dsv3" in result.output
    assert "kvplan: warning: the checkpoint is quantized" in result.output


def test_cli_import_bad_file_is_one_line(cli, tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    core = '"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32'
    bad.write_text('{"model_type": "llama", "num_key_value_heads": 5, ' + core + "}")
    result = cli("import", str(bad))
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "not divisible by num_kv_heads (5)" in result.output
    # a core fact is never a class default: LlamaConfig's 32 layers are not assumed
    bad.write_text('{"model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32}')
    result = cli("import", str(bad))
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0
    assert "num_hidden_layers is missing; kvplan never assumes a layer count" in result.output


def test_cli_estimate_reads_config_json_and_folder(cli, tmp_path: Path) -> None:
    folder = tmp_path / "Qwen2.5-7B"
    folder.mkdir()
    shutil.copy(DATA / "qwen2.5-7b.json", folder / "config.json")
    by_file = cli("estimate", str(folder / "config.json"), "-c", "4k", "--format", "json")
    by_folder = cli("estimate", str(folder), "-c", "4k", "--format", "json")
    assert by_file.exit_code == 0 and by_folder.exit_code == 0, by_file.output
    rows = json.loads(by_file.stdout)
    assert rows == json.loads(by_folder.stdout)
    assert rows[0]["kv_bytes_per_sequence"] == 234_881_024  # 57,344 B/token x 4,096


# ---- issue 9: architecture-driven import --------------------------------------------------------

CORE = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32}


@pytest.mark.parametrize("missing", sorted(CORE))
def test_core_facts_are_never_class_defaults(missing: str) -> None:
    """LlamaConfig has defaults for all three; a config.json without one is refused, naming it."""
    config = {"model_type": "llama", **CORE, "vocab_size": 32000, "intermediate_size": 11008}
    del config[missing]
    with pytest.raises(InvalidInput, match=f"^c.json: {missing} is missing; kvplan never assumes"):
        spec_from_hf_config(config, origin="c.json")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"layer_types": ["full_attention"] * 31 + ["moonshot_attention"]}, "layer_types entry 'moonshot_attention'"),
        ({"hybrid_override_pattern": "M*-X" * 8}, "hybrid_override_pattern must hold one of M, \\*, -, E"),
        ({"layer_types": ["linear_attention"] * 32}, "linear_attention layers of model_type 'llama' keep a state"),
        ({"mamba_d_state": 16, "mamba_expand": 2}, "recurrent-state fields \\(mamba_d_state, mamba_expand\\)"),
        ({"num_kv_shared_layers": 40}, "num_kv_shared_layers \\(40\\) exceeds num_hidden_layers \\(32\\)"),
        (
            {
                "kv_lora_rank": 512,
                "qk_nope_head_dim": 128,
                "qk_rope_head_dim": 64,
                "v_head_dim": 128,
                "layer_types": ["sliding_attention"] * 32,
                "sliding_window": 128,
            },
            "sliding_attention layers with an MLA latent",
        ),
        ({"indexer_types": ["full"] * 3}, "indexer_types must list 'full' or 'shared' per layer"),
    ],
    ids=["unknown-kind", "bad-pattern", "unread-linear", "unread-state", "shared-beyond", "mla-sliding", "indexer"],
)
def test_what_cannot_be_described_is_refused_in_one_line(fields: dict[str, Any], message: str) -> None:
    config = {"model_type": "llama", **CORE, "vocab_size": 32000, "intermediate_size": 11008, **fields}
    with pytest.raises(InvalidInput, match=message) as exc:
        spec_from_hf_config(config, origin="c.json")
    assert "\n" not in str(exc.value)


def test_mla_is_read_from_its_fields_under_any_model_type() -> None:
    # Kimi K2's model_type kimi_k2 runs DeepseekV3ForCausalLM: read by its architecture; an unknown
    # model_type with kv_lora_rank is MLA too (was planned as 64-head MHA of hidden/heads = 112: 29x).
    spec = imported("kimi-k2-instruct-0905").spec
    assert spec.kind_counts == {"mla": 61} and spec.moe.first_dense_layers == 1 and spec.moe.num_experts == 384
    raw = json.loads((DATA / "kimi-k2-instruct-0905.json").read_text())
    anonymous = {k: v for k, v in raw.items() if k != "architectures"} | {"model_type": "brand_new_mla"}
    other = spec_from_hf_config(anonymous, origin="x").spec
    assert kv(other) == kv(spec) == 70_272  # (512 + 64) * 2 B * 61 layers


def test_dsa_indexer_cache_is_read() -> None:
    spec = imported("deepseek-v3.2-exp").spec
    (kind,) = spec.layers.kinds.values()
    assert kind.type == "mla" and kind.index_head_dim == 128
    assert kv(spec) == 61 * (576 + 128) * 2  # latent + indexer key per token per layer = 85,888


def test_llama4_empty_no_rope_layers_gets_the_class_default() -> None:
    # Llama-4 ships no_rope_layers: []; transformers replaces it by every 4th layer NoPE/global, the rest
    # chunked (8192). Read as "no chunked layers" it was 48 x 4,096 B x 32,768 = 6 GiB at 32K instead of 2.625 GiB.
    result = imported("llama-4-scout-17b-16e")
    assert result.spec.kind_counts == {"chunked": 36, "global": 12}
    assert kv(result.spec, 32768) == 4096 * (12 * 32768 + 36 * 8192) == 2_818_572_288
    assert any("no_rope_layers is empty" in w for w in result.warnings)


def test_llama4_maverick_interleaves_dense_and_moe_layers() -> None:
    # interleave_moe_layer_step 2 (Llama4TextConfig: moe_layers = range(1, 48, 2)): the even layers keep a dense
    # MLP of intermediate_size_mlp 16,384, the odd ones 128 experts of 8,192 + a shared expert.
    spec = imported("llama-4-maverick-17b-128e").spec
    assert spec.moe.dense_layers == list(range(0, 48, 2)) and spec.intermediate_size == 16384
    assert (spec.moe.num_experts, spec.moe.expert_intermediate_size, spec.moe.num_shared_experts) == (128, 8192, 1)
    assert spec.kind_counts == {"chunked": 36, "global": 12}


@pytest.mark.parametrize("stem", ["gemma-3n-e2b", "llama-3.1-8b"])
def test_model_type_that_is_not_a_name_is_refused_in_one_line(stem: str) -> None:
    # Found by tests/test_fuzz.py: model_type: [] beside a text_config reached a set lookup (TypeError).
    raw = json.loads((DATA / f"{stem}.json").read_text())
    raw["model_type"] = []
    with pytest.raises(InvalidInput, match="model_type: expected a name") as exc:
        spec_from_hf_config(raw, origin="c.json")
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("stem", ["llama-4-scout-17b-16e", "smollm3-3b"])
def test_no_rope_layers_that_is_not_a_list_is_refused_in_one_line(stem: str) -> None:
    # Found by tests/test_fuzz.py: no_rope_layers: 1 reached len() and raised a TypeError (an internal error).
    raw = json.loads((DATA / f"{stem}.json").read_text())
    text = raw.get("text_config", raw)
    text["no_rope_layers"] = 1
    with pytest.raises(InvalidInput, match="no_rope_layers: expected a list of 0/1 flags, one per layer") as exc:
        spec_from_hf_config(raw, origin="c.json")
    assert "\n" not in str(exc.value)


def test_smollm3_nope_layers_and_olmo2() -> None:
    # The verbatim SmolLM3-3B file lists layer_types (all full_attention) beside no_rope_layers: the NoPE layers
    # must still be read (SmolLM3Attention.use_rope comes from no_rope_layers whatever the layer type).
    assert set(json.loads((DATA / "smollm3-3b.json").read_text())["layer_types"]) == {"full_attention"}
    spec = imported("smollm3-3b").spec
    assert spec.kind_counts == {"full": 27, "global": 9} and not spec.kind("global").use_rope
    assert imported("olmo-2-1124-7b").spec.num_kv_heads == 32


def test_gemma3n_kv_sharing_and_nemotron_pattern() -> None:
    shared = {
        "model_type": "gemma3n_text", **CORE, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 1000,
        "intermediate_size": [8192] * 32, "layer_types": ["sliding_attention", "full_attention"] * 16,
        "sliding_window": 512, "num_kv_shared_layers": 12, "max_position_embeddings": 32768,
    }  # fmt: skip
    spec = spec_from_hf_config(shared, origin="x").spec
    assert sum(spec.kind(n).kv_shared for n in spec.layer_kind_names) == 12
    # 20 storing layers: 10 sliding (W 512) + 10 full, c = 2 * 8 * 128 * 2 = 4,096 B;
    # at 4K: 4,096 x (10 x 512 + 10 x 4,096)
    assert kv(spec, 4096) == 4096 * (10 * 512 + 10 * 4096)
    nemotron = {
        "model_type": "nemotron_h", "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
        "head_dim": 128, "vocab_size": 1000, "intermediate_size": 8192, "max_position_embeddings": 8192,
        "hybrid_override_pattern": "M-M*-" * 2, "mamba_num_heads": 64, "mamba_head_dim": 64, "ssm_state_size": 128,
        "n_groups": 8, "conv_kernel": 4,
    }  # fmt: skip
    spec = spec_from_hf_config(nemotron, origin="x").spec
    assert spec.num_layers == 10 and spec.kind_counts == {"mamba2": 4, "mlp_only": 4, "full": 2}


def test_granite_hybrid_class_defaults() -> None:
    # GraniteMoeHybridConfig: layer_types absent -> every layer Mamba2; mamba_d_head "auto" ->
    # mamba_expand * hidden // mamba_n_heads; no experts -> shared_mlp is the dense MLP; RoPE only if asked.
    base = {"model_type": "granitemoehybrid", **CORE, "vocab_size": 1000, "max_position_embeddings": 4096}
    spec = spec_from_hf_config({**base, "num_local_experts": 0, "shared_intermediate_size": 512}, origin="x").spec
    (kind,) = spec.layers.kinds.values()
    assert (kind.variant, kind.d_inner, kind.n_heads, kind.d_state) == ("mamba2", 8192, 128, 256)
    assert spec.moe is None and spec.intermediate_size == 512 and spec.rope is None
    mixed = {**base, "layer_types": ["mamba", "attention"] * 16, "position_embedding_type": "rope"}
    spec = spec_from_hf_config(mixed, origin="x").spec
    assert spec.kind_counts == {"mamba2": 16, "full": 16} and spec.rope is not None
    assert spec.moe.num_experts == 8 and spec.moe.shared_intermediate_size == 1024  # class defaults


def test_falcon_h1_every_layer_is_attention_beside_mamba2() -> None:
    # FalconH1Config: mamba_d_head "auto" = mamba_d_ssm // mamba_n_heads; no head_dim field -> hidden // heads
    config = {"model_type": "falcon_h1", **CORE, "vocab_size": 1000, "max_position_embeddings": 4096}
    spec = spec_from_hf_config(config, origin="x").spec
    (kind,) = spec.layers.kinds.values()
    assert kind.type == "full" and spec.head_dim == 128 and spec.num_kv_heads == 8
    assert (kind.parallel.d_inner, kind.parallel.n_heads, kind.parallel.d_state) == (1024, 128, 256)
    assert not kind.parallel.ssm_norm  # mamba_rms_norm defaults to false
    assert spec_from_hf_config({**config, "mamba_rms_norm": True}, origin="x").spec.kind("hybrid").parallel.ssm_norm


def test_minimax_lightning_layers_from_either_spelling() -> None:
    m1 = imported("minimax-m1-80k").spec
    assert m1.kind_counts == {"lightning": 70, "full": 10} and m1.layer_kind_names[7] == "full"
    native = json.loads((DATA / "minimax-m1-80k.json").read_text())
    flags = native.pop("attn_type_list")
    native |= {"model_type": "minimax", "layer_types": ["full_attention" if v else "linear_attention" for v in flags]}
    assert kv(spec_from_hf_config(native, origin="x").spec, 4096) == kv(m1, 4096)
    defaults = {"model_type": "minimax", **CORE, "vocab_size": 1000, "max_position_embeddings": 4096}
    spec = spec_from_hf_config(defaults, origin="x").spec  # MiniMaxConfig: even layers full, odd lightning
    assert spec.layer_kind_names[:2] == ("full", "lightning") and spec.kind("lightning").head_k_dim == 128
    with pytest.raises(InvalidInput, match="attn_type_list must hold 0 \\(lightning\\) or 1 \\(softmax\\)"):
        spec_from_hf_config({**defaults, "attn_type_list": [2] * 32}, origin="x")


def test_cli_estimate_shows_the_import_warnings(cli, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "brandnew", **CORE, "intermediate_size": 11008, "vocab_size": 32000,
                                "max_position_embeddings": 4096}))  # fmt: skip
    result = cli("estimate", str(path), "-c", "4k")
    assert result.exit_code == 0
    assert "kvplan: warning: model_type 'brandnew' is not a dialect kvplan knows" in result.output


# ---- Nemotron-NAS (DeciLM) block_configs -------------------------------------------------------


def _nas(blocks: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "model_type": "nemotron-nas", "architectures": ["DeciLMForCausalLM"], "hidden_size": 1024,
        "num_hidden_layers": len(blocks), "num_attention_heads": 16, "num_key_value_heads": None,
        "intermediate_size": None, "vocab_size": 1000, "max_position_embeddings": 8192, "torch_dtype": "bfloat16",
        "block_configs": blocks, **extra,
    }  # fmt: skip


def _block(group: int | None = 8, *, mult: float | None = 2.625, linear: bool = False) -> dict[str, Any]:
    attention = {"n_heads_in_group": group, "no_op": group is None and not linear, "replace_with_linear": linear}
    return {"attention": attention, "ffn": {"ffn_mult": mult, "no_op": mult is None, "replace_with_linear": False}}


def test_nemotron_super_block_configs() -> None:
    """The real 49B config: 49 attention blocks of 8 KV heads, 31 without attention, 6 FFN widths."""
    result = imported("llama-3.3-nemotron-super-49b-v1")
    spec = result.spec
    assert spec.kind_counts == {"full": 49, "mlp_only": 31} and spec.num_kv_heads == 8
    assert [i for i, n in enumerate(spec.layer_kind_names) if n == "mlp_only"][:4] == [6, 7, 11, 42]
    # ffn_mult 5.25 -> int(2 * 5.25 * 8192 / 3) = 28,672; 0.5 -> 2,730 rounded up to 256 = 2,816
    assert spec.mlp_width(1) == 28_672 and spec.mlp_width(62) == 2_816 and spec.intermediate_size == 28_672
    assert kv(spec) == 49 * 2 * 8 * 128 * 2 == 200_704  # no KV for the 31 no_op layers (was 80 x 64 heads: 13x)
    assert not result.warnings


def test_nas_per_layer_kv_heads_linear_attention_and_no_op_ffn() -> None:
    # Four blocks, hidden 1,024, 16 heads of 64: 8 per group (2 KV heads), 4 per group (4 KV heads), a
    # linear stand-in for attention, and a no_op attention. FFN ffn_mult 2.625 -> int(2 * 2.625 * 1024 / 3)
    # = 1,792 (a multiple of 256); the third block's FFN is a no_op.
    blocks = [_block(8), _block(4), _block(None, linear=True, mult=None), _block(None)]
    spec = spec_from_hf_config(_nas(blocks), origin="x").spec
    assert spec.layer_kind_names == ("full_kv2", "full_kv4", "linear", "mlp_only")
    assert spec.mlp_widths == [1792, 1792, 0, 1792]
    # KV per token: 2 x 2 x 64 x 2 + 2 x 4 x 64 x 2 = 512 + 1,024 B; the linear and no_op layers hold none.
    assert kv(spec) == 1_536
    # Parameters: embedding + head 2 x 1,000 x 1,024 = 2,048,000; final norm 1,024.
    # attention q + o 2 x 1,024 x 1,024 = 2,097,152, k + v 2 x 1,024 x (2 or 4) x 64 = 262,144 or 524,288;
    # the linear stand-in 1,024 x 1,024 = 1,048,576. MLP 3 x 1,024 x 1,792 = 5,505,024 on three layers.
    # Norms: input norm on blocks 1-3 (attention or linear), post-attention norm on 1, 2, 4: 6 x 1,024.
    expected = 2_048_000 + 1_024 + 2 * 2_097_152 + 262_144 + 524_288 + 1_048_576 + 3 * 5_505_024 + 6 * 1_024
    assert count_params(spec).total == expected == 24_599_552


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ([_block(8)] * 3, "block_configs must list one block per layer \\(4\\), got 3"),
        ([_block(8)] * 3 + [{"attention": {"no_op": True}}], "block_configs\\[3\\] needs an 'attention' and an 'ffn'"),
        ([_block(5)] * 4, "n_heads_in_group must divide num_attention_heads \\(16\\), got 5"),
        ([_block(8)] * 3 + [{**_block(8), "ffn": {"replace_with_linear": True}}], "a linear FFN is not supported"),
        (
            [_block(8)] * 3 + [{**_block(8), "attention": {"n_heads_in_group": 8, "window_length": 4096}}],
            "block_configs\\[3\\] sets window_length, which kvplan cannot describe",
        ),
        ([_block(8)] * 3 + [_block(8, mult=-1.0)], "ffn_mult: expected a positive number, got -1.0"),
    ],
    ids=["count", "shape", "group", "linear-ffn", "window", "mult"],
)
def test_nas_blocks_kvplan_cannot_read_are_refused(blocks: list[dict[str, Any]], message: str) -> None:
    config = _nas(blocks, num_hidden_layers=4)
    with pytest.raises(InvalidInput, match=message) as exc:
        spec_from_hf_config(config, origin="c.json")
    assert "\n" not in str(exc.value)


# ---- Llama 3.2 Vision (mllama): cross-attention layers ------------------------------------------


def test_mllama_cross_attention_layers_hold_one_image():
    result = imported("llama-3.2-11b-vision-instruct")
    spec = result.spec
    assert spec.kind_counts == {"full": 32, "cross": 8}
    assert [i for i, n in enumerate(spec.layer_kind_names) if n == "cross"] == list(range(3, 40, 5))
    # 560 px tiles of 14 px patches: 40 x 40 + 1 class token = 1,601 per tile, 4 tiles
    assert spec.kind("cross").cross_tokens == 4 * 1_601 == 6_404
    assert not result.warnings  # the vision tower is counted (extra_params), so no "not counted" note
    # text-only prompt bytes grow with the self-attention layers only: 32 x 4,096 B per token
    assert kv(spec) == 131_072 and cache_plan(spec, "bf16").state_bytes == 8 * 6_404 * 4_096


def test_mllama_defaults_and_bad_cross_layers():
    raw = json.loads((DATA / "llama-3.2-11b-vision-instruct.json").read_text())
    del raw["text_config"]["cross_attention_layers"], raw["vision_config"]
    spec = spec_from_hf_config(raw, origin="x").spec
    # MllamaTextConfig's default layers; MllamaVisionConfig's 448 px tiles: 4 x (32 x 32 + 1) = 4,100 tokens
    assert spec.kind_counts == {"full": 32, "cross": 8} and spec.kind("cross").cross_tokens == 4_100
    raw["text_config"]["cross_attention_layers"] = [3, 40]
    with pytest.raises(InvalidInput, match="cross_attention_layers \\[3, 40\\] go beyond 40 layers"):
        spec_from_hf_config(raw, origin="x")
    raw["text_config"]["cross_attention_layers"] = [3]
    raw["vision_config"] = {"image_size": "560"}
    with pytest.raises(InvalidInput, match="vision_config.image_size: expected a positive whole number"):
        spec_from_hf_config(raw, origin="x")


# ---- Gemma 4: global layers with their own head size and KV heads ----------------------------------


def test_gemma4_global_head_dim_and_kv_heads():
    # The attention fields of google/gemma-4-31B-it's text_config as public fixtures quote it: 60 layers, every 6th
    # global; sliding layers 16 KV heads of 256 (W 1024), global layers global_head_dim 512 with
    # num_global_key_value_heads 4 (attention_k_eq_v). vocab, MLP width and max positions are placeholders (no KV
    # depends on them). Per token: sliding 2*16*256*2 = 16,384 B, global 2*4*512*2 = 8,192 B.
    config = {
        "model_type": "gemma4_text", "hidden_size": 5376, "num_hidden_layers": 60, "num_attention_heads": 32,
        "num_key_value_heads": 16, "head_dim": 256, "global_head_dim": 512, "num_global_key_value_heads": 4,
        "attention_k_eq_v": True, "num_kv_shared_layers": 0, "sliding_window": 1024, "vocab_size": 262144,
        "intermediate_size": 21504, "max_position_embeddings": 262144,
        "layer_types": ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(60)],
    }  # fmt: skip
    result = spec_from_hf_config(config, origin="x")
    spec = result.spec
    assert spec.kind_counts == {"sliding": 50, "full_hd512_kv4": 10}
    # 4K: 50 x 16,384 x 1,024 + 10 x 8,192 x 4,096 = 838,860,800 + 335,544,320 (read as 256-wide heads with
    # 16 KV heads the global layers were 2x too large: 1,509,949,440 in all)
    assert kv(spec, 4096) == 1_174_405_120
    assert "not a dialect kvplan knows" in result.warnings[0]  # parameters are still assumed Llama-like
    config["attention_k_eq_v"] = False  # then the global layers keep num_key_value_heads
    assert spec_from_hf_config(config, origin="x").spec.kind("full_hd512").num_kv_heads is None
    config["per_layer_config"] = [512]
    with pytest.raises(InvalidInput, match="per_layer_config: expected an object"):
        spec_from_hf_config(config, origin="x")

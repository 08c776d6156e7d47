"""RoPE scaling: kvplan's pure-Python frequencies against transformers' own RoPE initialisation."""

from __future__ import annotations

import json
import math

import pytest

from kvplan.catalog import bundled_names, load_bundled
from kvplan.errors import InvalidInput
from kvplan.rope import (
    RopeConfig,
    current,
    engine_max_context,
    extend,
    frequencies,
    pairs_longer_than,
    rope_config,
    scaling_block,
)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS  # noqa: E402

RTOL = 1e-6  # the bar; float32 torch vs float64 Python stays below ~4e-7


def _rel(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b)
    return max(abs(x - y) / abs(y) for x, y in zip(a, b, strict=True))


def _hf(config, rope_type: str, seq_len=None, layer_type=None) -> tuple[list[float], float]:
    if rope_type == "default":
        # transformers 5 keeps the default init on each model's rotary class, not in ROPE_INIT_FUNCTIONS.
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

        inv, factor = LlamaRotaryEmbedding.compute_default_rope_parameters(config)
    else:
        kwargs = {"layer_type": layer_type} if layer_type else {}
        inv, factor = ROPE_INIT_FUNCTIONS[rope_type](config, "cpu", seq_len=seq_len, **kwargs)
    return inv.double().tolist(), float(factor)


def _llama_config(dim: int, theta: float, max_pos: int, params: dict | None, partial: float = 1.0):
    from transformers import LlamaConfig

    rope = dict(params) if params else {"rope_type": "default"}
    rope["rope_theta"] = theta
    if partial != 1.0:
        rope["partial_rotary_factor"] = partial
    head_dim = int(round(dim / partial))
    return LlamaConfig(
        hidden_size=head_dim * 4,
        num_attention_heads=4,
        num_key_value_heads=4,
        head_dim=head_dim,
        max_position_embeddings=max_pos,
        rope_parameters=rope,
    )


def _check(ours, hf_inv: list[float], hf_factor: float) -> None:
    assert _rel(list(ours.inv_freq), hf_inv) < RTOL
    assert math.isclose(ours.attention_factor, hf_factor, rel_tol=RTOL)


# ---- synthetic configs ---------------------------------------------------------------------------

LONG = [1.0 + 0.37 * i for i in range(32)]
SHORT = [1.0 + 0.011 * i for i in range(32)]

SYNTHETIC = [
    # (rotary dim, theta, max_position_embeddings, rope parameters, seq_len)
    (128, 10000.0, 4096, None, None),
    (64, 500000.0, 8192, None, None),
    (128, 10000.0, 4096, {"rope_type": "linear", "factor": 4.0}, None),
    (96, 1e6, 32768, {"rope_type": "linear", "factor": 2.5}, None),
    (128, 10000.0, 4096, {"rope_type": "dynamic", "factor": 4.0}, 16384),
    (128, 10000.0, 4096, {"rope_type": "dynamic", "factor": 2.0}, 5000),
    (128, 10000.0, 4096, {"rope_type": "dynamic", "factor": 2.0}, 1000),  # below L_max: default
    (64, 1e6, 32768, {"rope_type": "dynamic", "factor": 8.0}, 262144),
    (128, 10000.0, 4096, {"rope_type": "yarn", "factor": 4.0}, None),
    (128, 1e6, 131072, {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}, None),
    (
        64,
        150000.0,
        131072,
        {"rope_type": "yarn", "factor": 32.0, "original_max_position_embeddings": 4096, "truncate": False},
        None,
    ),
    (
        64,
        10000.0,
        163840,
        {
            "rope_type": "yarn",
            "factor": 40.0,
            "original_max_position_embeddings": 4096,
            "mscale": 0.707,
            "mscale_all_dim": 1.0,
        },
        None,
    ),
    (
        128,
        10000.0,
        8192,
        {"rope_type": "yarn", "factor": 2.0, "beta_fast": 16.0, "beta_slow": 2.0, "attention_factor": 1.5},
        None,
    ),
    (
        128,
        500000.0,
        131072,
        {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        None,
    ),
    (
        128,
        500000.0,
        131072,
        {
            "rope_type": "llama3",
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        None,
    ),
    (
        64,
        10000.0,
        65536,
        {
            "rope_type": "llama3",
            "factor": 16.0,
            "low_freq_factor": 2.0,
            "high_freq_factor": 8.0,
            "original_max_position_embeddings": 4096,
        },
        None,
    ),
    (
        64,
        10000.0,
        131072,
        {"rope_type": "longrope", "long_factor": LONG, "short_factor": SHORT, "original_max_position_embeddings": 4096},
        131072,
    ),
    (
        64,
        10000.0,
        131072,
        {"rope_type": "longrope", "long_factor": LONG, "short_factor": SHORT, "original_max_position_embeddings": 4096},
        100,
    ),
    (
        64,
        10000.0,
        131072,
        {
            "rope_type": "longrope",
            "long_factor": LONG,
            "short_factor": SHORT,
            "original_max_position_embeddings": 4096,
            "factor": 16.0,
        },
        8192,
    ),
]


@pytest.mark.parametrize(("dim", "theta", "max_pos", "params", "seq_len"), SYNTHETIC)
def test_synthetic_matches_transformers(dim, theta, max_pos, params, seq_len):
    rope_type = (params or {}).get("rope_type", "default")
    hf_inv, hf_factor = _hf(_llama_config(dim, theta, max_pos, params), rope_type, seq_len=seq_len)
    ours = frequencies(RopeConfig(dim, theta, max_pos, params), seq_len=seq_len)
    _check(ours, hf_inv, hf_factor)


def test_partial_rotary_factor_matches_transformers():
    # head_dim 128 with half of it rotated: d = 64 (Phi-2 / GPT-NeoX style partial rotary)
    params = {"rope_type": "yarn", "factor": 4.0}
    hf_inv, hf_factor = _hf(_llama_config(64, 10000.0, 4096, params, partial=0.5), "yarn")
    _check(frequencies(RopeConfig(64, 10000.0, 4096, params)), hf_inv, hf_factor)


@pytest.mark.parametrize("factor", [2.0, 4.0, 8.0])
def test_static_ntk_is_dynamic_ntk_at_one_length(factor):
    # transformers has no static NTK type; dynamic NTK's base equals the static one when
    # factor * L / L_max - (factor - 1) == factor, i.e. at L = L_max * (2 factor - 1) / factor.
    l_max = 4096
    length = l_max * (2 * factor - 1) / factor
    hf_inv, hf_factor = _hf(
        _llama_config(128, 10000.0, l_max, {"rope_type": "dynamic", "factor": factor}), "dynamic", length
    )
    ours = frequencies(RopeConfig(128, 10000.0, l_max, {"rope_type": "ntk", "factor": factor}))
    _check(ours, hf_inv, hf_factor)
    assert ours.effective_theta == pytest.approx(10000.0 * factor ** (128 / 126))


# ---- bundled models, through the model's own config class ------------------------------------------


def _spec_or_skip(name: str):
    if name not in bundled_names():
        pytest.skip(f"bundled spec {name!r} not present yet")
    return load_bundled(name)


def _scaling(spec) -> dict:
    return {k: v for k, v in spec.rope.scaling.items() if k != "type"} | {
        "rope_type": spec.rope.scaling.get("rope_type", spec.rope.scaling.get("type"))
    }


def test_llama31_llama3_matches_transformers():
    from transformers import LlamaConfig

    spec = _spec_or_skip("llama-3.1-8b")
    config = LlamaConfig(
        hidden_size=spec.hidden_size,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_kv_heads,
        head_dim=spec.head_dim,
        max_position_embeddings=spec.max_position_embeddings,
        rope_parameters=_scaling(spec) | {"rope_theta": spec.rope.theta},
    )
    ours = current(spec).result
    _check(ours, *_hf(config, "llama3"))
    # 128 / 2 = 64 pairs: wavelength < 2048 kept, > 8192 divided by 8, in between blended
    assert (ours.kept_pairs, ours.blended_pairs, ours.interpolated_pairs) == (29, 6, 29)


@pytest.mark.parametrize("name", ["deepseek-v3", "deepseek-v2"])
def test_deepseek_yarn_mscale_matches_transformers(name):
    from transformers import DeepseekV2Config, DeepseekV3Config

    spec = _spec_or_skip(name)
    mla = next(k for k in spec.layers.kinds.values() if k.type == "mla")
    cls = DeepseekV3Config if name == "deepseek-v3" else DeepseekV2Config
    config = cls(
        hidden_size=spec.hidden_size,
        num_attention_heads=spec.num_attention_heads,
        qk_rope_head_dim=mla.qk_rope_head_dim,
        qk_nope_head_dim=mla.qk_nope_head_dim,
        kv_lora_rank=mla.kv_lora_rank,
        max_position_embeddings=spec.max_position_embeddings,
        rope_scaling=_scaling(spec),
        rope_theta=spec.rope.theta,
    )
    ours = current(spec).result
    assert ours.rotary_dim == mla.qk_rope_head_dim == 64
    _check(ours, *_hf(config, "yarn"))
    # mscale == mscale_all_dim: the ratio of the two get_mscale terms is 1 (models.md section 3)
    assert ours.attention_factor == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["gpt-oss-20b", "gpt-oss-120b"])
def test_gpt_oss_yarn_no_truncate_matches_transformers(name):
    from transformers import GptOssConfig

    spec = _spec_or_skip(name)
    assert spec.rope.scaling.get("truncate") is False
    config = GptOssConfig(
        head_dim=spec.head_dim,
        max_position_embeddings=spec.max_position_embeddings,
        rope_parameters=_scaling(spec) | {"rope_theta": spec.rope.theta},
    )
    ours = current(spec).result
    _check(ours, *_hf(config, "yarn"))
    assert ours.attention_factor == pytest.approx(0.1 * math.log(32) + 1)  # 1.3466 (models.md section 3)


def test_gemma3_linear_global_layers_match_transformers():
    from transformers import Gemma3TextConfig

    spec = _spec_or_skip("gemma-3-27b")
    local = next(k for k in spec.layers.kinds.values() if k.type == "sliding")
    config = Gemma3TextConfig(
        head_dim=spec.head_dim,
        max_position_embeddings=spec.max_position_embeddings,
        rope_parameters={
            "full_attention": _scaling(spec) | {"rope_theta": spec.rope.theta},
            "sliding_attention": {"rope_type": "default", "rope_theta": local.rope_theta},
        },
    )
    ours = current(spec).result
    _check(ours, *_hf(config, "linear", layer_type="full_attention"))
    assert ours.interpolated_pairs == spec.head_dim // 2
    # vLLM: Gemma 3's max_position_embeddings is already scaled; it does not multiply again
    assert current(spec).engines["vllm"] == spec.max_position_embeddings == ours.max_context


def test_phi3_longrope_attention_factor_and_frequencies_match_transformers():
    from transformers import Phi3Config

    spec = _spec_or_skip("phi-3-mini-128k")
    ours = current(spec).result
    # factor = 131072 / 4096 = 32 -> sqrt(1 + ln 32 / ln 4096) = 1.1902 (models.md 1.19)
    assert ours.attention_factor == pytest.approx(math.sqrt(1 + math.log(32) / math.log(4096)), rel=1e-12)
    pairs = ours.rotary_dim // 2
    # The bundled spec does not carry the 48 searched factors (the reference lacks them), so
    # the frequencies are checked with made-up lists through the same config class.
    long_f = [1.0 + 0.5 * i for i in range(pairs)]
    short_f = [1.0 + 0.01 * i for i in range(pairs)]
    block = {"rope_type": "longrope", "long_factor": long_f, "short_factor": short_f}
    config = Phi3Config(
        hidden_size=spec.hidden_size,
        num_attention_heads=spec.num_attention_heads,
        max_position_embeddings=spec.max_position_embeddings,
        original_max_position_embeddings=spec.original_max_position_embeddings,
        rope_scaling=dict(block),
        rope_theta=spec.rope.theta,
    )
    base = rope_config(spec)
    with_lists = RopeConfig(base.rotary_dim, base.theta, base.max_position_embeddings, spec.rope.scaling | block)
    for seq_len in (spec.max_position_embeddings, 2048):
        _check(frequencies(with_lists, seq_len=seq_len), *_hf(config, "longrope", seq_len=seq_len))
    assert ours.inv_freq == ()  # unknown without the lists, and said so
    assert ours.notes
    with pytest.raises(InvalidInput, match="long_factor"):
        frequencies(base)  # a caller that needs frequencies gets an error, not an empty list


# ---- the context each config implies ---------------------------------------------------------------


def test_engine_max_context_rules():
    qwen_recipe = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    # vLLM: yarn -> original x factor; SGLang: a block with original_max_position_embeddings keeps max_pos
    assert engine_max_context(RopeConfig(128, 1e6, 32768, qwen_recipe)) == {
        "transformers": 32768,
        "vllm": 131072,
        "sglang": 32768,
    }
    linear = RopeConfig(128, 1e4, 4096, {"rope_type": "linear", "factor": 4.0})
    assert engine_max_context(linear) == {"transformers": 4096, "vllm": 16384, "sglang": 16384}
    llama3 = RopeConfig(
        128, 5e5, 131072, scaling_block("llama3", 8.0, 8192)
    )  # llama3: every engine keeps max_position_embeddings
    assert set(engine_max_context(llama3).values()) == {131072}
    phi = RopeConfig(96, 1e4, 131072, {"rope_type": "longrope", "original_max_position_embeddings": 4096})
    assert engine_max_context(phi)["vllm"] == 4096  # vLLM defaults longrope to the original length


@pytest.mark.parametrize("method", ["linear", "ntk", "dynamic", "yarn", "llama3"])
def test_extension_patch_makes_every_engine_agree(method):
    spec = load_bundled("llama-2-13b")
    ext = extend(spec, method, 4.0)
    assert ext.result.max_context == 4 * 4096
    assert set(ext.engines.values()) - {4096} == {16384}  # transformers may keep L0 for linear/dynamic
    assert ext.engines["vllm"] == ext.engines["sglang"] == 16384


def test_yarn_extension_keeps_the_models_own_betas():
    spec = _spec_or_skip("gpt-oss-20b")
    ext = extend(spec, "yarn", 2.0)
    assert ext.config_patch["rope_scaling"]["truncate"] is False
    assert ext.result.max_context == 8192


def test_pairs_longer_than_original():
    # Llama 2: theta 1e4, d 128, L0 4096. i = 45: 2 pi 10^(4*90/128) = 2 pi * 649.4 = 4080 < 4096;
    # i = 46: 2 pi 10^2.875 = 2 pi * 749.9 = 4712 > 4096 -> pairs 46..63 = 18
    assert pairs_longer_than(10000.0, 128, 4096) == 18
    assert pairs_longer_than(10000.0, 128, 10**9) == 0


def test_bad_inputs():
    with pytest.raises(InvalidInput, match="factor"):
        scaling_block("yarn", 0.5, 4096)
    with pytest.raises(InvalidInput, match="longrope needs"):
        extend(load_bundled("llama-2-13b"), "longrope", 4.0)
    with pytest.raises(InvalidInput, match="unknown RoPE method"):
        frequencies(RopeConfig(128, 1e4, 4096, {"rope_type": "cubic", "factor": 2.0}))
    with pytest.raises(InvalidInput, match="list of 64"):
        frequencies(RopeConfig(128, 1e4, 4096, {"rope_type": "longrope", "long_factor": [1.0], "short_factor": [1.0]}))


# ---- CLI ---------------------------------------------------------------------------------------------


def test_cli_rope_yarn_table_and_block(cli):
    result = cli("rope", "llama-2-13b", "--method", "yarn", "--factor", "4")
    assert result.exit_code == 0, result.output
    assert "16,384" in result.output
    assert '"rope_type": "yarn"' in result.output
    assert '"original_max_position_embeddings": 4096' in result.output


def test_cli_rope_compare_json_carries_inv_freq(cli):
    result = cli("rope", "llama-3.1-8b", "--compare", "--factor", "2", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    methods = [m["method"] for m in data["methods"]]
    assert methods == ["default", "linear", "ntk", "dynamic", "yarn", "llama3"]  # longrope: no lists
    assert data["max_context"] == 2 * 8192
    for m in data["methods"] + [data["current"]]:
        assert len(m["inv_freq"]) == 64 and all(isinstance(f, float) for f in m["inv_freq"])
        assert isinstance(m["attention_factor"], float)
    assert data["current"]["method"] == "llama3"


def test_cli_rope_bad_method(cli):
    result = cli("rope", "llama-2-13b", "--method", "cubic", "--factor", "2")
    assert result.exit_code == 2
    assert "unknown RoPE method 'cubic'" in result.output


def test_cli_rope_needs_factor(cli):
    result = cli("rope", "llama-2-13b", "--method", "yarn")
    assert result.exit_code == 2
    assert "--factor" in result.output


def test_cli_rope_shows_the_models_own_block(cli):
    result = cli("rope", "phi-3-mini-128k", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["current"]["method"] == "longrope"
    assert data["current"]["attention_factor"] == pytest.approx(1.1902, abs=1e-4)
    assert data["current"]["engine_max_context"] == {"transformers": 131072, "vllm": 4096, "sglang": 131072}
    assert data["max_context"] == 131072 and data["methods"] == []


def test_cli_rope_no_rope_model(cli):
    if "jamba-v0.1" not in bundled_names():
        pytest.skip("bundled spec 'jamba-v0.1' not present")
    result = cli("rope", "jamba-v0.1")
    assert result.exit_code == 2 and "has no RoPE" in result.output


@pytest.mark.parametrize("value", ["nan", "inf", "0.5"])
def test_cli_rope_bad_factor(cli, value):
    result = cli("rope", "llama-2-13b", "--method", "yarn", "--factor", value)
    assert result.exit_code == 2
    assert "invalid RoPE factor" in result.output

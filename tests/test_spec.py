"""Schema validation: inconsistent specs fail with a message naming the field and the problem."""

import pytest
from pydantic import ValidationError

from kvplan.catalog import spec_from_dict
from kvplan.errors import InvalidInput
from kvplan.spec import ModelSpec
from tests.skeletons import hybrid_skeleton, skeleton, sliding_skeleton

BASE = skeleton().model_dump(exclude_none=True)


def bad(**over):
    data = {**BASE, **over}
    with pytest.raises(InvalidInput) as info:
        spec_from_dict(data, origin="x.yaml")
    return str(info.value)


def test_heads_must_divide():
    assert "not divisible by num_kv_heads (3)" in bad(num_kv_heads=3)


def test_positive_sizes():
    assert "x.yaml: hidden_size: Input should be greater than 0" in bad(hidden_size=0)


def test_unknown_field_is_named():
    assert "x.yaml: hiden_size: unknown field" in bad(hiden_size=5)


def test_pattern_names_known_kinds():
    msg = bad(layers={"kinds": {"a": {"type": "full"}}, "pattern": ["a", "b"]})
    assert "unknown layer kind 'b'" in msg


def test_types_length_matches_layers():
    msg = bad(layers={"kinds": {"a": {"type": "full"}}, "types": ["a"] * 5})
    assert "lists 5 layers but num_layers is 6" in msg


def test_sliding_needs_window_and_window_only_on_sliding():
    assert "needs window" in bad(layers={"kinds": {"s": {"type": "sliding"}}})
    assert "'window' only applies to sliding" in bad(layers={"kinds": {"f": {"type": "full", "window": 8}}})


def test_moe_topk_not_above_experts():
    moe = {"num_experts": 4, "experts_per_token": 8, "expert_intermediate_size": 64}
    assert "experts_per_token (8) exceeds num_experts (4)" in bad(moe=moe)


def test_layout_derivation():
    spec = sliding_skeleton()
    assert spec.layer_kind_names == ("local", "local", "global") * 2
    assert spec.kind_counts == {"local": 4, "global": 2}
    assert hybrid_skeleton().kind_counts == {"mamba": 4, "attn": 2, "chunk": 2}


def test_dump_round_trips():
    spec = hybrid_skeleton()
    again = spec_from_dict(spec.model_dump(exclude_none=True), origin="dump")
    assert again == spec


def test_absurd_sizes_are_errors_not_hangs():
    # Regression from fuzzing: num_layers 10**12 used to build a 10**12-entry layer list.
    assert "num_layers: Input should be less than or equal to 100000" in bad(num_layers=10**12)
    assert "max_position_embeddings" in bad(max_position_embeddings=1 << 40)


MAMBA2 = {
    "type": "recurrent",
    "variant": "mamba2",
    "d_inner": 512,
    "d_state": 16,
    "d_conv": 4,
    "n_groups": 1,
    "n_heads": 8,
}


def test_parallel_mixer_lightning_and_ssm_norm_are_checked():
    # Falcon-H1: a recurrent mixer beside an attention kind; only there, and only a recurrent one
    assert "'parallel' only applies to attention layers" in bad(layers={"kinds": {"r": {**MAMBA2, "parallel": MAMBA2}}})
    full_in_full = {"h": {"type": "full", "parallel": {"type": "full"}}}
    assert "'parallel' must be a recurrent kind" in bad(layers={"kinds": full_in_full})
    lightning = {"l": {"type": "recurrent", "variant": "lightning", "n_heads": 8}}
    assert "a recurrent 'lightning' layer needs head_k_dim, head_v_dim" in bad(layers={"kinds": lightning})
    assert "'ssm_norm' only applies to recurrent mamba2" in bad(
        layers={"kinds": {"f": {"type": "full", "ssm_norm": False}}}
    )


def test_parallel_layer_caches_kv_and_a_state():
    from kvplan.memory import cache_plan

    spec = skeleton(layers={"kinds": {"h": {"type": "full", "parallel": MAMBA2}}})
    # K/V: 2 x 2 heads x 32 x 2 B = 256 B per token per layer; Mamba2 state: conv (512 + 2 x 16) x 3 + ssm
    # 512 x 16 = 1,632 + 8,192 elements x 2 B = 19,648 B per layer; 6 layers
    plan = cache_plan(spec, "bf16")
    assert plan.bytes_per_token == 6 * 256
    assert plan.bytes_per_sequence(100) == 6 * (256 * 100 + 19_648)


# ---- per-layer MLP widths and linear stand-ins (Nemotron-NAS) ----------------------------------


def _nas_spec(**over):
    data = {
        "name": "nas", "source": "test", "hidden_size": 64, "vocab_size": 100, "num_layers": 3,
        "num_attention_heads": 4, "num_kv_heads": 2, "head_dim": 16, "intermediate_size": 256,
        "max_position_embeddings": 4096, "mlp_widths": [256, 0, 128],
    }  # fmt: skip
    return ModelSpec.model_validate({**data, **over})


def test_mlp_widths_per_layer():
    spec = _nas_spec()
    assert [spec.mlp_width(i) for i in range(3)] == [256, 0, 128]
    assert _nas_spec(mlp_widths=None).mlp_width(1) == 256


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"mlp_widths": [256, 0]}, "mlp_widths lists 2 layers but num_layers is 3"),
        ({"intermediate_size": 512}, "intermediate_size \\(512\\) must be the widest of mlp_widths"),
        ({"moe": {"num_experts": 4, "experts_per_token": 1, "expert_intermediate_size": 64}}, "an MoE model"),
        ({"layers": {"kinds": {"full": {"type": "full", "linear_replacement": True}}}}, "only applies to 'none'"),
    ],
)
def test_mlp_widths_and_linear_replacement_are_checked(over, message):
    with pytest.raises(ValidationError, match=message):
        _nas_spec(**over)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ({"type": "cross"}, "a 'cross' layer needs cross_tokens"),
        ({"type": "full", "cross_tokens": 6404}, "'cross_tokens' only applies to cross layers"),
    ],
)
def test_cross_attention_kind_is_checked(kind, message):
    with pytest.raises(ValidationError, match=message):
        _nas_spec(mlp_widths=None, layers={"kinds": {"full": {"type": "full"}, "x": kind}, "pattern": ["full", "x"]})

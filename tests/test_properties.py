"""Laws of the KV estimate (STYLE.md), checked with hypothesis over specs, lengths and splits."""

from hypothesis import given, settings
from hypothesis import strategies as st

from kvplan.memory import cache_plan
from tests.skeletons import hybrid_skeleton, mla_skeleton, skeleton, sliding_skeleton

SPECS = [skeleton(), sliding_skeleton(), hybrid_skeleton(), mla_skeleton(), skeleton(num_kv_heads=1)]
spec_st = st.sampled_from(SPECS)
length_st = st.integers(min_value=1, max_value=1 << 22)
dtype_st = st.sampled_from(["fp32", "bf16", "fp8", "int8", "int4", "q8_0", "q4_0"])


@given(spec_st, length_st, st.integers(1, 512), dtype_st)
def test_linear_in_batch(spec, length, batch, dtype):
    plan = cache_plan(spec, dtype)
    assert batch * plan.bytes_per_sequence(length) == sum(plan.bytes_per_sequence(length) for _ in range(batch))


@given(spec_st, length_st, st.integers(1, 4096), dtype_st)
def test_never_decreases_with_length(spec, length, extra, dtype):
    plan = cache_plan(spec, dtype)
    assert plan.bytes_per_sequence(length + extra) >= plan.bytes_per_sequence(length)


@given(st.integers(1, 4096), st.integers(1, 1 << 22))
def test_window_caps_sliding_layers(window, length):
    # A model whose every layer slides holds min(L, W) tokens per layer, so it stops growing at W.
    spec = skeleton(layers={"kinds": {"s": {"type": "sliding", "window": window}}})
    plan = cache_plan(spec, "bf16")
    assert plan.bytes_per_sequence(length) == plan.bytes_per_token * min(length, window)
    assert plan.bytes_per_sequence(length) <= plan.bytes_per_sequence(window)


@settings(max_examples=50)
@given(spec_st, length_st, st.sampled_from([1, 2, 4, 8]), st.sampled_from([1, 2, 3]))
def test_tp_shards_sum_or_replicate(spec, length, tp, pp):
    whole = cache_plan(spec, "bf16").bytes_per_sequence(length)
    split = cache_plan(spec, "bf16", tp=tp, pp=pp)
    per_rank_total = split.bytes_per_sequence(length)
    # Shards sum to the whole when every layer's heads divide by tp; otherwise heads (or the MLA
    # latent) are replicated and the sum exceeds the whole, never falls short.
    assert per_rank_total >= whole
    layer_kinds = {k.type for k in spec.layers.kinds.values()}
    if spec.num_kv_heads % tp == 0 and layer_kinds <= {"full", "sliding", "chunked"}:
        assert per_rank_total == whole
    if "mla" in layer_kinds:
        assert per_rank_total == tp * whole
    # The busiest GPU holds at least an even share.
    assert split.bytes_per_sequence_per_gpu(length) * tp * pp >= whole


@given(length_st)
def test_recurrent_state_is_fixed(length):
    spec = hybrid_skeleton()
    plan = cache_plan(spec, "bf16")
    # mamba: conv 512 x (4 - 1) + ssm 512 x 16 = 9,728 elements x 2 B = 19,456 B per layer, 4 layers.
    assert plan.state_bytes == 4 * 19_456
    growth = plan.bytes_per_sequence(length + 1) - plan.bytes_per_sequence(length)
    attn_token = 2 * 2 * 32 * 2  # K+V x 2 heads x 32 dim x 2 B
    chunk_layers_growing = 2 if length < 128 else 0
    assert growth == attn_token * (2 + chunk_layers_growing)

"""kvplan.recurrent (the Mamba2 mixer's prefill FLOPs and bytes) and how kvplan.latency prices them."""

import pytest

from kvplan import latency
from kvplan.catalog import load_spec_file, specs_dir
from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu
from kvplan.recurrent import (
    DEFAULT_SCAN_CHUNK,
    conv1d_bytes,
    conv_channels,
    mamba2_kinds,
    scan_chunk,
    scan_flops,
    scan_flops_per_token,
)
from kvplan.spec import LayerKind, ModelSpec


def _spec(name: str) -> ModelSpec:
    return load_spec_file(specs_dir() / f"{name}.yaml")


def _nano_mixer() -> LayerKind:
    return _spec("nemotron-3-nano-30b-a3b").kind("mamba2")


def test_nano_layer_at_2048_tokens_by_hand() -> None:
    # Nemotron 3 Nano's Mamba2 mixer (model_specs/nemotron-3-nano-30b-a3b.yaml, config.json chunk_size 128):
    # 64 heads x head dim 64 (d_inner 4096), 8 groups, d_state 128, chunk Q = 128, conv 4 taps.
    kind = _nano_mixer()
    assert (kind.n_heads, kind.d_inner // kind.n_heads, kind.n_groups, kind.d_state, scan_chunk(kind)) == (
        64, 64, 8, 128, 128)  # fmt: skip
    # FLOPs per token = 2 (Q N G + Q P H + 2 N P H) = 2 (128x128x8 + 128x64x64 + 2x128x64x64)
    #                 = 2 (131,072 + 524,288 + 1,048,576) = 3,407,872
    assert scan_flops_per_token(kind) == 3_407_872
    assert scan_flops(kind, 2048) == 6_979_321_856  # x 2,048 tokens
    # TP 2: 32 heads, 4 groups -> 2 (65,536 + 262,144 + 524,288) = 1,703,936 per token, half of TP 1
    assert scan_flops_per_token(kind, tp=2) == 1_703_936
    # conv channels: 4096 + 2 x 8 x 128 = 6,144; bytes 2 (bf16) x 6,144 x (2 x 2,048 + 4 taps) = 50,380,800
    assert conv_channels(kind) == 6144
    assert conv1d_bytes(kind, 2048) == 50_380_800
    # TP 2: 2,048 + 2 x 4 x 128 = 3,072 channels -> 2 x 3,072 x 4,100 = 25,190,400
    assert conv1d_bytes(kind, 2048, tp=2) == 25_190_400


def test_granite_small_layer_by_hand_and_the_default_chunk() -> None:
    # granite-4.0-h-small (mamba_chunk_size 256): 128 heads x 64, 1 group, d_state 128
    # 2 (256x128x1 + 256x64x128 + 2x128x64x128) = 2 (32,768 + 2,097,152 + 2,097,152) = 8,454,144 per token
    kind = _spec("granite-4.0-h-small").kind("mamba2")
    assert scan_flops_per_token(kind) == 8_454_144
    # without a chunk in the spec: transformers' Mamba2Config / mamba_ssm default 256
    bare = kind.model_copy(update={"scan_chunk": None})
    assert scan_chunk(bare) == DEFAULT_SCAN_CHUNK == 256 and scan_flops_per_token(bare) == 8_454_144


def test_only_mamba2_mixers_count() -> None:
    falcon = _spec("falcon-h1-7b-instruct")  # attention with a Mamba2 mixer beside it in every layer
    [hybrid] = falcon.layers.kinds.values()
    assert mamba2_kinds(hybrid) == [hybrid.parallel] and hybrid.parallel.scan_chunk == 128
    # its 44 layers keep their attention's fixed cost and add the mixer beside it
    terms = latency._recurrent_terms(falcon, range(falcon.num_layers), 1)
    assert (terms.layers, terms.own_layers) == (44, 0)
    nano = _spec("nemotron-3-nano-30b-a3b")
    assert mamba2_kinds(nano.kind("full")) == [] and mamba2_kinds(nano.kind("mlp_only")) == []
    with pytest.raises(ValueError, match="scan_chunk"):
        LayerKind.model_validate({"type": "recurrent", "variant": "mamba", "d_inner": 64, "d_state": 16, "d_conv": 4,
                                  "scan_chunk": 128})  # fmt: skip


def _mixer_only(kind: LayerKind) -> ModelSpec:
    """A one-layer model whose only layer is ``kind`` (the mixers are priced alone)."""
    return ModelSpec.model_validate({
        "name": "mixer", "source": "test", "hidden_size": 2688, "vocab_size": 32000, "num_layers": 1,
        "num_attention_heads": kind.n_heads, "num_kv_heads": kind.n_heads, "head_dim": 64, "intermediate_size": 1,
        "dtype": "bf16", "max_position_embeddings": 1 << 20, "rope": None,
        "layers": {"kinds": {"m": kind.model_dump(exclude_defaults=True)}, "pattern": ["m"]},
    })  # fmt: skip


# vLLM's prefill conv1d on B200 runs at its Triton kernel's per-SM ceiling (Calibration.conv1d_sm_bytes_s, since stop
# 25): 148 SMs x 1.849e10 = 2.73652e12 B/s, under the bandwidth's 7.7e12 x elementwise_mem_eff 0.8098 = 6.23546e12 B/s
# these tests divided by before.
B200_VLLM_CONV_BPS = 148 * 1.849e10


def _ctx(spec: ModelSpec, engine: str = "vllm", tp: int = 1) -> latency._Ctx:
    return latency._make_ctx(spec, resolve_gpu("b200"), tp=tp, weights_dtype="bf16",
                             cal=latency.calibration(engine), eager=True)  # fmt: skip


def test_chunked_prefill_is_the_sum_of_its_chunks() -> None:
    # a 65,536-token prompt read as 32,768 + 32,768: the scan and the conv1d's tokens add up exactly; each extra call
    # pays the mixer's 6 kernel launches and the conv taps once more (6 x vLLM's eager 4.017 us + 2 x 6,144 x 4 B / bw).
    # (Was 2,048 = 1,024 + 1,024 before the SSD call's floor: a chunk of 16,384 tokens and more is past it, 3,407,872 x
    # 16,384 FLOPs / 1.842973e14 = 302.96 us + 5 launches > 290.7 us, so the chunks here are all priced by their work.)
    c = _ctx(_mixer_only(_nano_mixer()))
    whole = latency._chunk_attention_s(c, None, 65536, 0, "bf16")
    halves = latency._chunk_attention_s(c, None, 32768, 0, "bf16") + latency._chunk_attention_s(c, None, 32768, 32768,
                                                                                                "bf16")  # fmt: skip
    taps = 2 * 6144 * 4 / B200_VLLM_CONV_BPS
    assert halves - whole == pytest.approx(6 * c.cal.eager_kernel_s + taps, rel=1e-9)
    # four chunks of 16,384: three more calls' worth
    quarters = sum(latency._chunk_attention_s(c, None, 16384, p, "bf16") for p in (0, 16384, 32768, 49152))
    assert quarters - whole == pytest.approx(3 * (6 * c.cal.eager_kernel_s + taps), rel=1e-9)


def test_prefill_mixer_is_monotone_and_linear_in_the_prompt() -> None:
    c = _ctx(_mixer_only(_nano_mixer()))
    times = [latency._attention_s(c, phase="prefill", context=n, batch=1, attention_flops=0, kv_dtype="bf16")
             for n in (1, 128, 2048, 8192, 16384, 65536)]  # fmt: skip
    assert times == sorted(times) and len(set(times)) == len(times)  # the conv1d grows under the scan's floor too
    fixed = 6 * c.cal.eager_kernel_s + 2 * 6144 * 4 / B200_VLLM_CONV_BPS  # launches and taps
    # past the floor (16,384 tokens and up, see above) linear: 65,536 / 16,384 tokens
    assert (times[-1] - fixed) / (times[-2] - fixed) == pytest.approx(4, rel=1e-9)
    # several prompts: batch x tokens, as one prompt of all of them (one SSD call either way)
    four = latency._attention_s(c, phase="prefill", context=16384, batch=4, attention_flops=0, kv_dtype="bf16")
    assert four == pytest.approx(times[-1], rel=1e-12)


def test_short_prompts_pay_the_scan_floor() -> None:
    # vLLM PR #27299's SSD table: 1,024 and 2,048 tokens both take ~0.29 ms (0.2966 / 0.2907 ms); kvplan's SSD call is
    # max(ssd_scan_floor_s 290.7 us, FLOPs + 5 launches), the conv1d (its bytes + one launch) beside it. Nano's mixer,
    # TP 1, B200, vLLM: at 1 and 2,048 tokens the SSD part is the floor, so the step is floor + conv1d.
    c = _ctx(_mixer_only(_nano_mixer()))
    assert c.cal.ssd_scan_floor_s == pytest.approx(290.7e-6)
    for tokens in (1, 2048):
        conv = conv1d_bytes(_nano_mixer(), tokens) / B200_VLLM_CONV_BPS + c.cal.eager_kernel_s
        t = latency._attention_s(c, phase="prefill", context=tokens, batch=1, attention_flops=0, kv_dtype="bf16")
        assert t == pytest.approx(290.7e-6 + conv, rel=1e-9)
    # 2,048 tokens by hand: conv 2 x 6,144 x (2 x 2,048 + 4) x 2 B = 50,380,800 B / 2.73652e12 = 18.410536 us
    # + 4.017 us -> 313.127536 us (the scan's work, 6,979,321,856 / 1.842973e14 = 37.87 us + 20.09 us, is under it).
    # Before the conv1d's per-SM ceiling (stop 25): / (7.7e12 x 0.8098) = 8.079724 us -> 302.796724 us.
    t = latency._attention_s(c, phase="prefill", context=2048, batch=1, attention_flops=0, kv_dtype="bf16")
    assert t == pytest.approx(313.127536e-6, rel=1e-6)


def test_nano_prefill_mixers_golden() -> None:
    # Nano on 2 x B200, fp8 weights, vLLM constants, one 2,048-token prompt. Per TP-2 rank and layer:
    # scan 1,703,936 x 2,048 = 3,489,660,928 FLOPs / (2.25e15 x 0.8062 x 0.1016 = 1.842973e14) = 18.934952 us,
    # + 5 SSD launches x 4.017 us = 39.019952 us, under the floor: 290.7 us;
    # conv (25,190,400 B) / (148 SMs x conv1d_sm_bytes_s 1.849e10 = 2.73652e12 B/s) = 9.205268 us + 1 launch 4.017 us
    # -> 303.922268 us a layer. (Was 298.756862 us before the conv1d's per-SM ceiling, stop 25: the conv at 7.7e12 x
    # 0.8098 B/s, 4.039862 us; 47.076814 us before the SSD call's floor: 18.934952 + 4.039862 + 6 x 4.017.)
    spec = _spec("nemotron-3-nano-30b-a3b")
    c = latency._make_ctx(spec, resolve_gpu("b200"), tp=2, weights_dtype="fp8", cal=latency.calibration("vllm"),
                          eager=True)  # fmt: skip
    terms = latency._recurrent_terms(spec, range(spec.num_layers), 2)
    assert (terms.layers, terms.own_layers) == (23, 23)
    per_layer = latency._recurrent_prefill_s(c, terms, 2048) / 23
    assert per_layer == pytest.approx(303.922268e-6, rel=1e-6)
    step = latency.step_latency(spec, resolve_gpu("b200"), 2048, phase="prefill", tp=2, kv_dtype_name="bf16",
                                weights_dtype="fp8", attention_flops=0, engine="vllm")  # fmt: skip
    assert step.attention > 23 * per_layer


def test_bad_scan_chunk_is_refused() -> None:
    with pytest.raises((ValueError, InvalidInput)):
        LayerKind.model_validate({"type": "recurrent", "variant": "mamba2", "d_inner": 64, "d_state": 16, "d_conv": 4,
                                  "n_groups": 1, "n_heads": 1, "scan_chunk": 0})  # fmt: skip

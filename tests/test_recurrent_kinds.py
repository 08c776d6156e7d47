"""Every recurrent mixer kvplan knows priced by its work (kvplan.recurrent.mixer_work, kvplan.latency): Mamba (v1),
Gated DeltaNet and lightning attention at prefill and decode, with hand goldens per kind."""

import pytest

from kvplan import latency
from kvplan.catalog import load_spec_file, specs_dir
from kvplan.hardware import resolve_gpu
from kvplan.memory import recurrent_state_bytes
from kvplan.recurrent import (
    DECODE_KERNELS,
    deltanet_flops_per_token,
    lightning_flops_per_token,
    mixer_work,
    recurrent_kinds,
)
from kvplan.spec import LayerKind, ModelSpec


def _spec(name: str) -> ModelSpec:
    return load_spec_file(specs_dir() / f"{name}.yaml")


def _mixer_only(kind: LayerKind) -> ModelSpec:
    """A one-layer model whose only layer is ``kind`` (its mixer priced alone)."""
    heads = kind.n_heads or 32
    return ModelSpec.model_validate({
        "name": "mixer", "source": "test", "hidden_size": 4096, "vocab_size": 32000, "num_layers": 1,
        "num_attention_heads": heads, "num_kv_heads": heads, "head_dim": 128, "intermediate_size": 1,
        "dtype": "bf16", "max_position_embeddings": 1 << 20, "rope": None,
        "layers": {"kinds": {"m": {**kind.model_dump(exclude_defaults=True), "mlp": False}}, "pattern": ["m"]},
    })  # fmt: skip


def _ctx(spec: ModelSpec, gpu: str = "h200", *, tp: int = 1, engine: str = "vllm", eager: bool = True):  # noqa: ANN202
    return latency._make_ctx(spec, resolve_gpu(gpu), tp=tp, weights_dtype="bf16", cal=latency.calibration(engine),
                             eager=eager)  # fmt: skip


def _prefill(c, tokens: int, prompts: int = 1) -> float:  # noqa: ANN001
    return latency._attention_s(c, phase="prefill", context=tokens, batch=prompts, attention_flops=0, kv_dtype="bf16")


def _decode(c, context: int, batch: int) -> float:  # noqa: ANN001
    return latency._attention_s(c, phase="decode", context=context, batch=batch, attention_flops=0, kv_dtype="bf16")


def test_deltanet_work_by_hand() -> None:
    # Qwen3-Next's Gated DeltaNet layer (model_specs/qwen3-next-80b-a3b.yaml): 32 value heads, 16 key heads, K = V =
    # 128, conv 4 taps; chunk C = 64 (vLLM fla/ops/chunk.py). Per value head and token, multiply-adds
    # 3 C K + 2 C V + 3 K V = 3x64x128 + 2x64x128 + 3x128x128 = 24,576 + 16,384 + 49,152 = 90,112;
    # FLOPs = 2 x 32 x 90,112 = 5,767,168 per token; TP 2 (16 heads) 2,883,584.
    kind = _spec("qwen3-next-80b-a3b").kind("linear")
    assert deltanet_flops_per_token(kind) == 5_767_168
    assert deltanet_flops_per_token(kind, tp=2) == 2_883_584
    # conv channels q, k, v = 2 x 16 x 128 + 32 x 128 = 8,192: 2 x 2 B x 8,192 = 32,768 bytes a token, taps
    # 2 x 8,192 x 4 = 65,536 bytes a call; one conv1d kernel + the six chunk kernels
    w = mixer_work(kind)
    assert (w.scan_flops_per_token, w.token_bytes, w.call_bytes, w.kernels, w.per_prompt, w.heads) == (
        5_767_168, 32_768, 65_536, 7, False, 32)  # fmt: skip


def test_lightning_work_by_hand() -> None:
    # MiniMax-M1's lightning layer: 64 heads, K = V = 128; vLLM lightning_attn.py BLOCK 256, diagonal sub-blocks of 32:
    # a query sees (256 + 32) / 2 = 144 keys of its block on average. Multiply-adds per head and token
    # 144 x (128 + 128) + 2 x 128 x 128 = 36,864 + 32,768 = 69,632; FLOPs 2 x 64 x 69,632 = 8,912,896; TP 8: 1,114,112.
    kind = _spec("minimax-m1-80k").kind("lightning")
    assert lightning_flops_per_token(kind) == 8_912_896
    assert lightning_flops_per_token(kind, tp=8) == 1_114_112
    # no conv; four kernels per call, one call per prompt (vLLM loops over the prefills)
    assert mixer_work(kind, tp=8) == (1_114_112, 0, 0, 4, True, 0)


def test_mamba_v1_work_by_hand() -> None:
    # Jamba's Mamba layer: d_inner 8,192, d_state 16, conv 4. Bytes per token, 16-bit: conv1d 2 x 2 x 8,192 = 32,768;
    # selective scan reads x, dt, z (8,192 each), B and C (16 each) and writes y: 2 x (4 x 8,192 + 2 x 16) = 65,600;
    # 98,368 in all. Taps 2 x 8,192 x 4 = 65,536. No tensor-core FLOPs (memory-bound, Gu & Dao s3.3.2). Two kernels.
    kind = _spec("jamba-v0.1").kind("mamba")
    assert mixer_work(kind) == (0, 98_368, 65_536, 2, False, 0)
    # TP 2: 4,096 channels a rank, B and C whole: 16,384 + 2 x (16,384 + 32) = 49,216; taps 32,768
    assert mixer_work(kind, tp=2) == (0, 49_216, 32_768, 2, False, 0)


def test_deltanet_prefill_golden_h200() -> None:
    # Qwen3-Next's layer alone, one 32,768-token prompt, TP 1, H200 (989 TFLOPS bf16, 4,800 GB/s, 132 SMs), vLLM
    # constants: FlashInfer's kernel runs one block per sequence and value head (gdn_head_blocks), 1 x 32 heads fill
    # 32 / 132 of the SMs; delta rule 5,767,168 x 32,768 = 188,978,561,024 FLOPs / (989e12 x gdn_scan_eff 0.5161 x
    # 32 / 132 = 1.237389e14) = 1,527.237 us; conv (32,768 x 32,768 + 65,536 = 1,073,807,360 B) at vLLM's Triton
    # conv1d ceiling, min(4.8e12 x 0.8098 = 3.887040e12, 132 SMs x conv1d_sm_bytes_s 1.849e10 = 2.440680e12) B/s:
    # 439.962 us; 7 launches x 4.017 us = 28.119 us -> 1,995.318 us. Before the ceiling (stop 25) the conv ran at
    # 3.887040e12 B/s: 276.253 us and 1,831.609 us in all.
    c = _ctx(_mixer_only(_spec("qwen3-next-80b-a3b").kind("linear")))
    assert _prefill(c, 32768) == pytest.approx(1995.318e-6, rel=1e-5)
    # 16 prompts of 2,048 (the same tokens, one call) fill every SM (16 x 32 > 132): 370.239 us of delta rule, the
    # same conv and launches: 838.320 us (before the ceiling 674.611), under half the one prompt's
    assert _prefill(c, 2048, prompts=16) == pytest.approx(838.320e-6, rel=1e-5)


def test_head_blocks_only_where_the_engine_runs_them() -> None:
    # TensorRT-LLM and SGLang run the fla Triton kernels (no per-(sequence, head) block limit): one prompt of 32,768
    # tokens and 16 prompts of 2,048 cost the same delta rule there (the launches and the taps aside)
    from kvplan.latency import scan_occupancy

    for engine in ("trtllm", "sglang"):
        cal = latency.calibration(engine)
        assert not cal.gdn_head_blocks and scan_occupancy(resolve_gpu("h200"), cal, prompts=1, heads=32) == 1.0
    vllm = latency.calibration("vllm")
    assert scan_occupancy(resolve_gpu("h200"), vllm, prompts=1, heads=32) == pytest.approx(32 / 132)
    assert scan_occupancy(resolve_gpu("h100-sxm"), vllm, prompts=2, heads=48) == pytest.approx(96 / 132)
    assert scan_occupancy(resolve_gpu("h200"), vllm, prompts=16, heads=32) == 1.0
    # vLLM runs FlashInfer's kernel on Hopper only (0.19 / 0.21: is_device_capability(90)); on B200 the fla kernels,
    # all SMs at ssd_scan_eff; vllm@0.16 runs fla everywhere
    assert scan_occupancy(resolve_gpu("b200"), vllm, prompts=1, heads=48) == 1.0
    old = latency.calibration("vllm@0.16")
    assert old.gdn_kernel_archs == () and scan_occupancy(resolve_gpu("h200"), old, prompts=1, heads=32) == 1.0
    kind = _spec("qwen3-next-80b-a3b").kind("linear")
    for gpu, engine, eff in (("b200", "vllm", 0.1016), ("h200", "vllm@0.16", 0.1016), ("h200", "vllm", 0.5161)):
        c = _ctx(_mixer_only(kind), gpu, engine=engine)
        assert latency._scan_eff(c, "gated_deltanet") == eff


def test_lightning_prefill_golden_and_per_prompt_calls() -> None:
    # MiniMax-M1's layer, TP 8 on H200, vLLM constants: 4 prompts of 8,192 tokens = 32,768 tokens,
    # 1,114,112 x 32,768 = 36,507,222,016 FLOPs / (989e12 x ssd_scan_eff 0.1016 = 1.004824e14) = 363.319 us;
    # 4 kernels per prompt x 4 prompts x 4.017 us = 64.272 us -> 427.591 us
    c = _ctx(_mixer_only(_spec("minimax-m1-80k").kind("lightning")), tp=8)
    assert _prefill(c, 8192, prompts=4) == pytest.approx(427.591e-6, rel=1e-5)
    # one prompt of the same 32,768 tokens: the same FLOPs, 12 launches fewer
    assert _prefill(c, 8192, prompts=4) - _prefill(c, 32768) == pytest.approx(12 * c.cal.eager_kernel_s, rel=1e-9)


def test_mamba_v1_prefill_golden_h100() -> None:
    # Jamba's Mamba layer, TP 2 on H100 SXM (3,350 GB/s, 132 SMs), vLLM constants, one 4,096-token prompt: the conv1d
    # (2 x 2 B x 4,096 channels = 16,384 B a token: 16,384 x 4,096 + 32,768 taps = 67,141,632 B) at vLLM's Triton
    # conv1d ceiling, min(3.35e12 x 0.8098 = 2.712830e12, 132 x 1.849e10 = 2.440680e12) B/s: 27.509 us; the selective
    # scan (49,216 - 16,384 = 32,832 B a token: 134,479,872 B) at 2.712830e12 B/s: 49.572 us; + 2 x 4.017 us
    # = 85.115 us. Before the ceiling (stop 25) all 201,621,504 B ran at 2.712830e12 B/s: 82.355 us.
    c = _ctx(_mixer_only(_spec("jamba-v0.1").kind("mamba")), "h100-sxm", tp=2)
    assert _prefill(c, 4096) == pytest.approx(85.115e-6, rel=1e-5)


KINDS = [("jamba-v0.1", "mamba"), ("qwen3-next-80b-a3b", "linear"), ("minimax-m1-80k", "lightning"),
         ("nemotron-3-nano-30b-a3b", "mamba2")]  # fmt: skip


@pytest.mark.parametrize("model, kind", KINDS)
def test_prefill_grows_and_decode_is_constant_in_the_context(model: str, kind: str) -> None:
    # every recurrent kind: prefill strictly grows with the prompt (it was a fixed attn_layer_s + kernel_s for all but
    # Mamba2 before), and a decode step costs the same at 1K and 128K tokens of context (a fixed state per sequence)
    c = _ctx(_mixer_only(_spec(model).kind(kind)))
    times = [_prefill(c, n) for n in (16, 1024, 8192, 65536)]
    assert times == sorted(times) and len(set(times)) == len(times)
    d = _ctx(_mixer_only(_spec(model).kind(kind)), eager=False)
    assert _decode(d, 1024, 8) == _decode(d, 131072, 8)
    assert _decode(d, 1024, 16) > _decode(d, 1024, 8)  # but grows with the sequences


def test_decode_reads_and_writes_the_state_golden() -> None:
    # Qwen3-Next's layer, batch 64, TP 1, H200, vLLM (attn_decode_mem_eff 0.8422, graph_kernel_s 2.655 us):
    # state per sequence, bf16: conv 8,192 x 3 = 24,576 + SSM 32 x 128 x 128 = 524,288 elements -> 1,097,728 B;
    # x 64 sequences, read and written: 140,509,184 B / (4.8e12 x 0.8422 = 4.042560e12) = 34.757 us + 2 kernels
    # (causal_conv1d_update, the recurrent update) x 2.655 us = 5.31 us -> 40.067 us
    spec = _mixer_only(_spec("qwen3-next-80b-a3b").kind("linear"))
    assert recurrent_state_bytes(spec, spec.kind("m")) == 1_097_728
    assert _decode(_ctx(spec, eager=False), 4096, 64) == pytest.approx(40.067e-6, rel=1e-4)


def test_parallel_mixer_decode_adds_to_the_attention() -> None:
    # Falcon-H1: attention with a Mamba2 mixer beside it. Its decode is the attention's (K/V read, attn_layer_s,
    # attn_seq_s) plus the mixer's state read and written and its 2 decode kernels; the state is not read as K/V.
    falcon = _spec("falcon-h1-7b-instruct")
    [hybrid] = falcon.layers.kinds.values()
    assert [k.variant for k in recurrent_kinds(hybrid)] == ["mamba2"] and DECODE_KERNELS["mamba2"] == 2
    c = _ctx(falcon, "h100-sxm", eager=False)
    plain = _ctx(falcon.model_copy(update={"layers": falcon.layers.model_copy(update={"kinds": {
        name: k.model_copy(update={"parallel": None}) for name, k in falcon.layers.kinds.items()}})}), "h100-sxm",
        eager=False)  # fmt: skip
    state = recurrent_state_bytes(falcon, hybrid.parallel)
    mixer = 2 * 8 * state / (3.35e12 * c.cal.attn_decode_mem_eff) + 2 * c.cal.graph_kernel_s
    assert _decode(c, 4096, 8) - _decode(plain, 4096, 8) == pytest.approx(falcon.num_layers * mixer, rel=1e-9)


def _mlp_only_model() -> ModelSpec:
    """A one-layer model whose only layer is an MLP with no token mixer (Nemotron-H's "-" block, kind type none)."""
    return ModelSpec.model_validate({
        "name": "mlp", "source": "test", "hidden_size": 4096, "vocab_size": 32000, "num_layers": 1,
        "num_attention_heads": 32, "num_kv_heads": 8, "head_dim": 128, "intermediate_size": 1,
        "dtype": "bf16", "max_position_embeddings": 1 << 20, "rope": None,
        "layers": {"kinds": {"m": {"type": "none"}}, "pattern": ["m"]},
    })  # fmt: skip


def test_mlp_only_layer_pays_no_attention_charge() -> None:
    # An MLP-only layer launches no attention kernel. Before this fix it paid, on H200 with vLLM's calibration
    # (attn_layer_s 12.54 us, eager kernel_s 4.017 us, attn_seq_s 0.02739 us): prefill 12.54 + 4.017 = 16.557 us,
    # decode at batch 8 12.54 + 8 x 0.02739 = 12.759 us. Now 0.0 in both phases.
    c = _ctx(_mlp_only_model())
    assert (c.cal.attn_layer_s, c.kernel_s, c.cal.attn_seq_s) == pytest.approx((12.54e-6, 4.017e-6, 0.02739e-6))
    assert _prefill(c, 2048) == 0.0
    assert _decode(c, 2048, 8) == 0.0


def test_nemotron_h_mlp_layers_add_nothing_to_the_attention() -> None:
    # Nemotron-H 8B: 52 blocks, 24 of them MLP-only. Its attention+mixer time equals that of the same model with the
    # 24 MLP blocks dropped (28 layers). Before the fix the full model paid 24 x 16.557 us = 397.4 us more at
    # prefill and 24 x 12.759 us = 306.2 us more at decode (batch 8).
    full = _spec("nemotron-h-8b-base-8k")
    data = full.model_dump(exclude_defaults=True)
    pattern = [k for k in full.layer_kind_names if k != "mlp_only"]
    data["layers"]["pattern"], data["num_layers"] = pattern, len(pattern)
    del data["layers"]["kinds"]["mlp_only"]
    mixers = ModelSpec.model_validate(data)
    assert len(pattern) == 28
    for tokens in (512, 2048):
        assert _prefill(_ctx(full), tokens) == pytest.approx(_prefill(_ctx(mixers), tokens), rel=1e-12)
    assert _decode(_ctx(full), 2048, 8) == pytest.approx(_decode(_ctx(mixers), 2048, 8), rel=1e-12)

"""vLLM's float32 MoE routers (kvplan.latency._router_ctx, _fp32_router; Overlap.fp32_router_families).

Read in the vLLM 0.16.0 wheel: NemotronHMoE, Glm4MoE, MiniMaxM2MoE and MiniMaxText01MoE build the gate with float32
weights and call it on a float32 copy of the hidden states; the worker's torch.set_float32_matmul_precision("highest")
keeps TF32 off, so the GEMM runs on the CUDA cores (catalog fp32_tflops). The 0.11.0 wheel (the 0.8 rules): Glm4MoE and
MiniMaxText01MoE only.
"""

from __future__ import annotations

import pytest

from kvplan.catalog import load_bundled
from kvplan.engines import sglang, trtllm, vllm
from kvplan.hardware import resolve_gpu
from kvplan.latency import _make_ctx, _moe_s, _router_ctx


def _ctx(model: str, gpu: str, rules, *, cal=vllm.CALIBRATION, tp: int = 2):  # noqa: ANN001, ANN202
    return _make_ctx(load_bundled(model), resolve_gpu(gpu), tp=tp, weights_dtype="bf16", cal=cal, eager=True,
                     rules=rules)  # fmt: skip


def test_catalog_fp32_peaks() -> None:
    assert resolve_gpu("h100-sxm").fp32_tflops == 67 and resolve_gpu("h200").fp32_tflops == 67
    assert resolve_gpu("b200").fp32_tflops == 80 and resolve_gpu("gb200").fp32_tflops == 90
    assert resolve_gpu("a100-80gb").fp32_tflops == 19.5 and resolve_gpu("l40s").fp32_tflops is None


def test_nano_router_by_hand_on_b200() -> None:
    """8,192 tokens, Nano (hidden 2,688, 128 experts) on B200 under vLLM's rules: the float32 GEMM at 80 TFLOPS x
    gemm_peak_eff 0.8213 (no row-tile term): 2 x 8192 x 344,064 / (80e12 x 0.8213) = 85.79 us (its bytes, 344,064 x 4
    + 8192 x 2,816 x 4 = 93.6 MB, take 14.4 us); the cast 8192 x 2688 x (2 + 4) B at 7.7 TB/s x elementwise_mem_eff;
    and two launches. One token: the 1.38 MB of float32 weights (and 11 KB of activations) at gemm_mem_eff."""
    c = _ctx("nemotron-3-nano-30b-a3b", "b200", vllm.OVERLAP)
    gate = _router_ctx(c)
    assert gate.peak == 80e12 and gate.w_bytes == 4.0 and gate.act_bytes == 4.0
    cal = vllm.CALIBRATION
    gemm = 2 * 8192 * 2688 * 128 / (80e12 * cal.gemm_peak_eff)
    cast = 8192 * 2688 * 6 / (7700e9 * cal.elementwise_mem_eff)
    want = gemm + cal.eager_kernel_s + cast + cal.eager_kernel_s
    assert _moe_s(c, 8192, 8192).router == pytest.approx(want, rel=1e-9)
    assert gemm == pytest.approx(85.79e-6, rel=1e-3)
    one = (344_064 * 4 + 2816 * 4) / (7700e9 * cal.gemm_mem_eff) + 2688 * 6 / (7700e9 * cal.elementwise_mem_eff)
    assert _moe_s(c, 1, 1).router == pytest.approx(one + 2 * cal.eager_kernel_s, rel=1e-9)


def test_only_the_families_and_engines_read() -> None:
    """16-bit routers: DeepSeek-V3 under vLLM; Nano under TensorRT-LLM's and SGLang's rules (not read) and under the
    0.8 rules (its 0.11.0 nemotron_h.py has no MoE); a GPU without an FP32 figure; TensorRT-LLM's constants under vLLM's
    rules (benchmarks/fit_latency.py's predictions). GLM-4.6 float32 under both vLLM rule sets."""
    assert _router_ctx(_ctx("deepseek-v3", "h200", vllm.OVERLAP, tp=8)).act_bytes == 2.0
    for rules in (trtllm.OVERLAP, sglang.OVERLAP, vllm.V0_8.overlap):
        assert _router_ctx(_ctx("nemotron-3-nano-30b-a3b", "b200", rules)).act_bytes == 2.0
    assert _router_ctx(_ctx("nemotron-3-nano-30b-a3b", "l40s", vllm.OVERLAP)).act_bytes == 2.0
    nano_trt = _ctx("nemotron-3-nano-30b-a3b", "b200", vllm.OVERLAP, cal=trtllm.CALIBRATION)
    assert _router_ctx(nano_trt).act_bytes == 2.0
    for rules in (vllm.OVERLAP, vllm.V0_8.overlap):
        gate = _router_ctx(_ctx("glm-4.6", "h200", rules, tp=8))
        assert gate.act_bytes == 4.0 and gate.peak == 67e12
    # the float32 router costs more than the 16-bit one it replaces, at every size
    bf16 = _ctx("nemotron-3-nano-30b-a3b", "b200", trtllm.OVERLAP)
    fp32 = _ctx("nemotron-3-nano-30b-a3b", "b200", vllm.OVERLAP)
    for tokens in (1, 64, 8192):
        assert _moe_s(fp32, tokens, tokens).router > _moe_s(bf16, tokens, tokens).router

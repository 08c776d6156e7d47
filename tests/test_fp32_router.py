"""vLLM's float32 MoE routers (GLM-4.x, Nemotron-H): the gate GEMM on the CUDA cores' FP32 peak plus the input's cast.

vLLM's glm4_moe.py builds ``nn.Linear(hidden, n_routed_experts, dtype=torch.float32)`` and calls it on
``hidden_states.to(dtype=torch.float32)`` (0.10.2-0.19.0 wheels); nemotron_h.py the same with ``params_dtype=
torch.float32`` (0.12.0, 0.16.0: the 0.8 and 0.16 rules; 0.19.0's GateLinear runs it bf16 -> fp32 on Hopper and
Blackwell). SGLang 0.5.3's Glm4MoeGate is a 16-bit ``F.linear`` (its fp32 cast came with
sgl-project/sglang PR #21660, 2026-03-30); 0.5.23's is float32 with TF32 turned on for Glm4MoeForCausalLM
(arg_groups/model_overrides/glm4_moe.py). kvplan.engines.vllm CALIBRATION and kvplan.engines.sglang ENGINE_FITS
``fp32_router_families`` / ``fp32_router_tf32``.
"""

from __future__ import annotations

import pytest

from kvplan.catalog import load_bundled
from kvplan.engines import latency_calibration
from kvplan.hardware import resolve_gpu
from kvplan.latency import _make_ctx, _moe_s, _router_cast_s, _router_ctx, mixed_step_latency


def _ctx(model: str, gpu: str, engine: str, tp: int = 8):  # noqa: ANN202
    spec = load_bundled(model)
    return _make_ctx(spec, resolve_gpu(gpu), tp=tp, weights_dtype="bf16", cal=latency_calibration(engine), eager=False)


def test_catalog_fp32_peaks_are_the_datasheet_lines() -> None:
    names = ("h100-sxm", "h100-pcie", "h100-nvl", "h200", "a100-80gb", "b200", "gb200", "l40s", "l4")
    peaks = {name: resolve_gpu(name).fp32_tflops for name in names}
    assert peaks == {"h100-sxm": 67, "h100-pcie": 51, "h100-nvl": 60, "h200": 67, "a100-80gb": 19.5, "b200": 75,
                     "gb200": 80, "l40s": 91.6, "l4": 30.3}  # fmt: skip
    assert resolve_gpu("rtx-4090").fp32_tflops is None  # no datasheet line read: the router stays 16-bit there


@pytest.mark.parametrize(
    ("model", "engine", "fp32"),
    [
        ("glm-4.6", "vllm", True),
        ("glm-4.6", "vllm@0.11.0", True),
        ("glm-4.5-air", "vllm@0.16", True),
        ("nemotron-3-nano-30b-a3b", "vllm@0.8", True),
        ("nemotron-3-nano-30b-a3b", "vllm@0.16", True),
        ("nemotron-3-nano-30b-a3b", "vllm", False),  # 0.19's GateLinear: bf16 x bf16 -> fp32 on Hopper / Blackwell
        ("minimax-m2", "vllm@0.16", True),
        ("minimax-m1-80k", "vllm", True),
        ("minimax-m2", "sglang@0.5", True),  # 0.5.7's float32 gate, no TF32 there
        ("glm-4.6", "sglang@0.5", False),  # SGLang 0.5.3's gate is 16-bit
        ("glm-4.6", "trtllm", False),
        ("qwen3-235b-a22b", "vllm", False),  # Qwen3MoE's gate: ReplicatedLinear at the model dtype
        ("deepseek-v3", "vllm", False),
    ],
)
def test_which_routers_run_in_fp32(model: str, engine: str, fp32: bool) -> None:
    c = _ctx(model, "h200", engine)
    gate = _router_ctx(c)
    assert (gate.peak == 67e12, gate.w_bytes == 4.0) == (fp32, fp32)
    assert (_router_cast_s(c, 8192) > 0) == fp32
    if not fp32:
        assert gate.peak == c.peak16 and gate.w_bytes == c.act_bytes


@pytest.mark.parametrize("gpu", ["h200", "a100-80gb", "rtx-4090"])
def test_sglang_0_5_23_runs_the_glm_router_in_tf32(gpu: str) -> None:
    """TF32 on: half the 16-bit tensor-core peak whatever the catalog's FP32 line (the RTX 4090 has none), 4-byte
    operands and the cast; its Nemotron-H gate (16-bit operands, float32 out) and the older rules' GLM gate stay
    16-bit."""
    c = _ctx("glm-4.6", gpu, "sglang")
    gate = _router_ctx(c)
    assert (gate.peak, gate.w_bytes, gate.act_bytes) == (c.peak16 / 2, 4.0, 4.0)
    assert _router_cast_s(c, 8192) > 0
    assert _router_ctx(_ctx("minimax-m2", gpu, "sglang")).peak == c.peak16 / 2  # its own override turns TF32 on too
    for model, engine in (("nemotron-3-nano-30b-a3b", "sglang"), ("glm-4.6", "sglang@0.5")):
        c = _ctx(model, gpu, engine)
        assert _router_ctx(c).peak == c.peak16 and _router_cast_s(c, 8192) == 0.0


def test_without_a_catalog_fp32_peak_the_router_stays_16bit() -> None:
    c = _ctx("glm-4.6", "rtx-4090", "vllm", tp=1)
    assert _router_ctx(c).peak == c.peak16 and _router_cast_s(c, 8192) == 0.0


def test_fp32_router_slows_an_8k_chunk_by_its_cuda_core_gemm() -> None:
    """One GLM-4.6 TP 8 H200 layer's router over an 8,192-token chunk: 2 x 8192 x 5120 x 160 FLOPs at 67 TFLOPS on
    the 16-bit GEMM curve, over 0.2 ms, against tens of microseconds at 16 bits; the cast reads 2 and writes 4 bytes
    an element."""
    fp32 = _moe_s(_ctx("glm-4.6", "h200", "vllm@0.11.0"), 8192, 8192).router
    bf16 = _moe_s(_ctx("glm-4.6", "h200", "sglang@0.5"), 8192, 8192).router
    flops = 2 * 8192 * 5120 * 160
    assert flops / 67e12 < fp32 < 2 * flops / 67e12 + 1e-4
    assert bf16 < 0.25 * fp32
    c = _ctx("glm-4.6", "h200", "vllm")
    cast = 8192 * 5120 * 6 / (c.bw * c.cal.elementwise_mem_eff) + c.kernel_s
    assert _router_cast_s(c, 8192) == pytest.approx(cast)


def test_glm_step_on_vllm_is_slower_than_the_same_step_with_a_16bit_router(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole step moves by the router alone: vLLM's GLM-4.6 TP 8 mixed step (an 8,192-token chunk beside 500
    decodes) against the same step priced with vLLM's constants and no float32 router."""
    from dataclasses import replace

    import kvplan.latency as latency

    spec, h200 = load_bundled("glm-4.6"), resolve_gpu("h200")
    kw = dict(decode_seqs=500, decode_context=2100, prefill_tokens=8192, prefill_prefix=0, tp=8, kv_dtype_name="bf16",
              weights_dtype="bf16", engine="vllm")  # fmt: skip
    fp32 = mixed_step_latency(spec, h200, **kw)
    plain = replace(latency_calibration("vllm"), fp32_router_families=frozenset())
    monkeypatch.setattr(latency, "calibration", lambda engine: plain)
    bf16 = mixed_step_latency(spec, h200, **kw)
    assert fp32.moe == bf16.moe and fp32.attention == bf16.attention  # the router is priced with the GEMMs
    assert fp32.total - bf16.total == pytest.approx(fp32.gemm - bf16.gemm, rel=1e-6)
    assert fp32.gemm > bf16.gemm
    assert 0.04 < fp32.total / bf16.total - 1 < 0.15  # 89 MoE layers of a ~0.25 ms router on a ~300 ms step

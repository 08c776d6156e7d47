"""gpt-oss ships MXFP4 routed experts beside 16-bit attention, router and LM head (``modules_to_not_convert``): the
latency prices the tensors the weights' bytes count (:func:`kvplan.latency.dense_dtype`), whether the format comes
from the spec (``cost`` without ``--weights-dtype``) or is asked for (``--weights-dtype mxfp4``)."""

from __future__ import annotations

from kvplan.catalog import load_bundled
from kvplan.cost import phase_cost
from kvplan.hardware import resolve_gpu
from kvplan.latency import _make_ctx, calibration, dense_dtype

H100 = resolve_gpu("h100-sxm")
GPT_OSS = load_bundled("gpt-oss-120b")


def test_dense_dtype_follows_the_formats_scope():
    assert dense_dtype(GPT_OSS, "mxfp4") == "bf16"  # the checkpoint's own format covers the routed experts alone
    assert dense_dtype(GPT_OSS, "fp8") == "fp8"  # a conversion quantizes every quantizable weight
    # MXFP4 as released covers routed experts only, asked for on any model (kvplan.quant.storage_for_name): a dense
    # model's linears stay 16-bit, as its bytes count them; NVFP4 covers every linear
    llama = load_bundled("llama-3.1-8b")
    assert dense_dtype(llama, "mxfp4") == "bf16"
    assert dense_dtype(llama, "nvfp4") == "nvfp4"
    assert dense_dtype(load_bundled("deepseek-v3"), "fp8") == "fp8"  # shipped, but on every linear


def test_experts_and_dense_weights_have_their_own_bytes():
    c = _make_ctx(GPT_OSS, H100, tp=1, weights_dtype="mxfp4", cal=calibration("vllm"), eager=False)
    assert c.w_bytes == 2.0  # bf16 attention projections and LM head
    assert c.moe_w_bytes == 0.532  # 4-bit values and one e8m0 scale byte per 32 (17/32), as 1,000 weights round up
    same = _make_ctx(GPT_OSS, H100, tp=1, weights_dtype="bf16", cal=calibration("vllm"), eager=False)
    assert same.moe_w_bytes is None  # one dtype for both


def test_spec_default_and_weights_dtype_price_the_same_tensors():
    for phase in ("prefill", "decode"):
        default = phase_cost(GPT_OSS, H100, 1024, phase=phase)
        asked = phase_cost(GPT_OSS, H100, 1024, phase=phase, weights_dtype="mxfp4")
        assert default.ops_s == asked.ops_s
        assert default.bytes == asked.bytes


def test_dense_layers_stay_16_bit_beside_mxfp4_experts():
    mx = phase_cost(GPT_OSS, H100, 1024, phase="decode", weights_dtype="mxfp4")
    bf = phase_cost(GPT_OSS, H100, 1024, phase="decode", weights_dtype="bf16")
    assert mx.ops_s["gemm_s"] == bf.ops_s["gemm_s"]  # attention projections and LM head: 16-bit in both
    # the experts: 17/32 byte a weight against 2; batch 1 reads 4 experts a layer, memory-bound
    assert mx.ops_s["moe_s"] < 0.6 * bf.ops_s["moe_s"]


def test_cost_prices_the_shipped_format_by_default():
    ds = load_bundled("deepseek-v3")
    h200 = resolve_gpu("h200")
    default = phase_cost(ds, h200, 4096, phase="decode", tp=8)
    assert default.ops_s == phase_cost(ds, h200, 4096, phase="decode", tp=8, weights_dtype="fp8").ops_s
    # an engine that does not load the format runs the 16-bit conversion (llama.cpp's GGUF from an fp8 checkpoint:
    # kvplan.quant.default_dtype)
    cpp = phase_cost(ds, h200, 4096, phase="decode", tp=8, engine="llamacpp")
    assert cpp.ops_s == phase_cost(ds, h200, 4096, phase="decode", tp=8, engine="llamacpp", weights_dtype="bf16").ops_s

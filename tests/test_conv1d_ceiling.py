"""The prefill causal conv1d's per-SM ceiling (Calibration.conv1d_sm_bytes_s, kvplan.latency._conv1d_bandwidth): vLLM's
Triton causal_conv1d_fn walks each program's 8 tokens one at a time, so an SM moves what its programs keep in flight,
not its share of the HBM; benchmarks/gdn_compare.py fits it on aiconfigurator's H200 and B200 rows, H100 held out."""

import statistics

import pytest

from kvplan import latency
from kvplan.hardware import resolve_gpu
from kvplan.recurrent import conv_token_bytes, mixer_work
from kvplan.spec import ModelSpec
from tests.benchmods import bench_module

gdn_compare = bench_module("gdn_compare")


def _gdn_layer() -> ModelSpec:
    """Qwen3.5's Gated DeltaNet layer at TP 1 as aiconfigurator's tables hold it: 16 key heads, 32 value heads, 128
    dims, 4 taps; conv channels 2 x 16 x 128 + 32 x 128 = 8,192."""
    return gdn_compare.layer_spec({"num_k_heads": 16, "num_v_heads": 32, "head_k_dim": 128, "head_v_dim": 128,
                                   "d_conv": 4})  # fmt: skip


def _ctx(gpu: str, engine: str) -> latency._Ctx:
    return latency._make_ctx(_gdn_layer(), resolve_gpu(gpu), tp=1, weights_dtype="bf16",
                             cal=latency.calibration(engine), eager=True)  # fmt: skip


def test_conv_token_bytes_by_hand() -> None:
    # 2 B x 8,192 channels read and written: 32,768 B a token, the part of the mixer's token bytes the conv moves
    kind = _gdn_layer().kind("gdn")
    assert conv_token_bytes(kind) == mixer_work(kind).token_bytes == 32_768
    # TP 4: 2,048 channels a rank -> 8,192 B
    assert conv_token_bytes(kind, tp=4) == 8_192


def test_ceiling_per_gpu_and_engine() -> None:
    # vLLM (conv1d_sm_bytes_s 1.849e10): H100 SXM min(3.35e12 x 0.8098 = 2.712830e12, 132 x 1.849e10 = 2.440680e12);
    # H200 min(4.8e12 x 0.8098 = 3.887040e12, 2.440680e12); B200 min(7.7e12 x 0.8098 = 6.235460e12, 148 x 1.849e10 =
    # 2.736520e12): the SMs' ceiling on all three, the HBM's share nowhere
    for gpu, want in (("h100-sxm", 2.440680e12), ("h200", 2.440680e12), ("b200", 2.736520e12)):
        assert latency._conv1d_bandwidth(_ctx(gpu, "vllm")) == pytest.approx(want, rel=1e-9)
    # SGLang's own fit (1.959e10, lent on vLLM's constants): H200 132 x 1.959e10 = 2.585880e12
    assert latency._conv1d_bandwidth(_ctx("h200", "sglang")) == pytest.approx(2.585880e12, rel=1e-9)
    # TensorRT-LLM's CUDA conv1d and vLLM 0.8's (before the Triton kernel) have no ceiling: 4.8e12 x elementwise_mem_eff
    for engine in ("trtllm", "vllm@0.8"):
        c = _ctx("h200", engine)
        assert c.cal.conv1d_sm_bytes_s is None
        assert latency._conv1d_bandwidth(c) == pytest.approx(4.8e12 * c.cal.elementwise_mem_eff, rel=1e-12)
    # vLLM 0.16.0's wheel has the same Triton kernel (BLOCK_M 8, BLOCK_N 256)
    assert latency.calibration("vllm@0.16").conv1d_sm_bytes_s == 1.849e10
    # A100 80GB: its 108 SMs' ceiling, 108 x 1.849e10 = 1.996920e12, lies above the HBM's share 2,039e9 x 0.8098:
    # the bandwidth alone
    a100 = latency._make_ctx(_gdn_layer(), resolve_gpu("a100-80gb"), tp=1, weights_dtype="bf16",
                             cal=latency.calibration("vllm"), eager=True)  # fmt: skip
    assert resolve_gpu("a100-80gb").sm_count == 108
    assert latency._conv1d_bandwidth(a100) == pytest.approx(a100.bw * 0.8098, rel=1e-12)
    # a GPU the catalog gives no SM count (L40S): the bandwidth alone too, whatever the ceiling
    l40s = latency._make_ctx(_gdn_layer(), resolve_gpu("l40s"), tp=1, weights_dtype="bf16",
                             cal=latency.calibration("vllm"), eager=True)  # fmt: skip
    assert resolve_gpu("l40s").sm_count is None
    assert latency._conv1d_bandwidth(l40s) == pytest.approx(l40s.bw * 0.8098, rel=1e-12)


def test_gdn_prefill_golden_b200_vllm() -> None:
    # the layer alone, one 8,192-token prompt on B200, vLLM's constants (the fla kernels off Hopper: ssd_scan_eff):
    # conv (32,768 x 8,192 + 2 x 8,192 x 4 = 268,500,992 B) / 2.736520e12 = 98.118 us (at 6.235460e12 B/s before:
    # 43.060 us); delta rule 2 x 32 x (3 x 64 x 128 + 2 x 64 x 128 + 3 x 128 x 128) = 5,767,168 FLOPs a token x 8,192
    # = 47,244,640,256 / (2.25e15 x 0.8062 x 0.1016 = 1.842973e14) = 256.350 us; 7 launches x 4.017 us = 28.119 us
    # -> 382.587 us (before the ceiling 327.529 us)
    c = _ctx("b200", "vllm")
    got = latency._attention_s(c, phase="prefill", context=8192, batch=1, attention_flops=0, kv_dtype="bf16")
    assert got == pytest.approx(382.587e-6, rel=1e-5)


def test_fit_gives_the_calibrated_figures_and_holds_on_h100() -> None:
    # the median per-SM rate over the H200 and B200 rows of >= 8,192 tokens is what the calibrations carry (4 digits)
    tables = gdn_compare.load()
    for engine in ("vllm", "sglang"):
        assert gdn_compare.fit_conv1d(tables, engine) == pytest.approx(
            latency.calibration(engine).conv1d_sm_bytes_s, rel=5e-4)  # fmt: skip
    # H100 SXM, held out of the fit: its conv1d rows of >= 8,192 tokens within a median |ln| 0.10 with the ceiling
    # (vLLM 0.088, SGLang 0.095), against 0.188 / 0.142 by the bytes at elementwise_mem_eff alone
    for engine in ("vllm", "sglang"):
        held = [gdn_compare.conv1d_lns(r, g, engine) for g, r in gdn_compare.conv1d_rows(tables, engine, ("h100-sxm",))]
        now, before = (statistics.median(abs(x[i]) for x in held) for i in (0, 1))
        assert now < 0.10 < before


def test_the_rate_per_sm_is_flat_where_the_bandwidth_is_not() -> None:
    # the evidence for a per-SM ceiling: HBM 3.35 / 4.8 / 7.7 TB/s, the measured conv1d 16.9 / 18.4 / 18.6 GB/s per
    # SM (vLLM): within 10 % of each other while the bandwidth per SM more than doubles
    tables = gdn_compare.load()
    for engine in ("vllm", "sglang"):
        rates = [statistics.median(gdn_compare.sm_rates(tables, engine, (g,))) for g in ("h100-sxm", "h200", "b200")]
        assert max(rates) / min(rates) < 1.15
        per_sm_hbm = [resolve_gpu(g).bandwidth_gbps / resolve_gpu(g).sm_count for g in ("h100-sxm", "b200")]
        assert per_sm_hbm[1] / per_sm_hbm[0] > 2

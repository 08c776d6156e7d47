"""TensorRT engines built with ``norm_quant_fusion``: the QKV and gate/up NVFP4 GEMMs run no quantization kernel.

Calibration.fp4_norm_quant_fused (kvplan.engines.base, with its TensorRT-LLM source) is set by no engine release; the
MLPerf rows whose NVIDIA config builds with the flag turn it on (benchmarks/published_compare.py ``mlperf_engine``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kvplan.catalog import load_bundled
from kvplan.engines.trtllm import CALIBRATION
from kvplan.hardware import resolve_gpu
from kvplan.latency import mixed_step_latency
from tests.benchmods import published

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _step(gpu: str, weights: str) -> float:
    # Llama-2-70B TP1 at the v5.1 B200 Offline operating point: 1,626 decodes at 354 tokens, 1,362 prompt tokens
    return mixed_step_latency(load_bundled("llama-2-70b"), resolve_gpu(gpu), decode_seqs=1626, decode_context=354,
                              prefill_tokens=1362, kv_dtype_name="fp8", weights_dtype=weights,
                              engine="trtllm").total  # fmt: skip


def test_norm_quant_fusion_removes_the_two_normed_inputs_quantization_per_layer():
    """By hand: a step of m = 1,626 + 1,362 = 2,988 rows. Each FP4 quantization kernel reads m x 8,192 16-bit values
    and writes half a byte plus a 1/16-byte scale each: 2,988 x 8,192 x 2.5625 = 62,722,048 bytes at B200's 7.7 TB/s x
    elementwise_mem_eff 0.7305 = 11.15 us, plus the eager kernel cost 10.95 us = 22.10 us. The fusion drops two per
    layer (QKV and gate/up read the norms' output; o_proj and down_proj keep theirs): 80 x 2 x 22.10 us = 3.536 ms,
    157.92 -> 154.38 ms (168.67 -> 165.13 ms before the Blackwell decode attention refit, kvplan.engines.trtllm
    blackwell_gqa_decode, took 10.75 ms off the step's attention)."""
    pub, _ = published()
    before = _step("b200", "nvfp4")
    with pub.mlperf_engine({"norm_quant_fusion": True}):
        fused = _step("b200", "nvfp4")
    moved_bytes = 2988 * 8192 * (2 + 0.5 + 1 / 16)
    per_kernel = moved_bytes / (7.7e12 * CALIBRATION.elementwise_mem_eff) + CALIBRATION.eager_kernel_s
    assert per_kernel == pytest.approx(22.10e-6, rel=1e-3)
    assert before - fused == pytest.approx(80 * 2 * per_kernel, rel=1e-9)
    # 158.67 -> 155.14 ms since the NVFP4 refit that followed the MoE router's 16-bit pricing (157.92 -> 154.38 ms
    # before it), 159.26 -> 155.72 ms since the one on the steps and the GEMM tables together (fp4_gemm_s), 150.80 ->
    # 147.26 ms since the NVFP4 GEMMs' compute roof took its shape terms (kvplan.latency._fp4_shape): the fused
    # kernels' saving is the same 3.536 ms
    assert (before, fused) == (pytest.approx(0.15080, rel=1e-3), pytest.approx(0.14726, rel=1e-3))
    assert _step("b200", "nvfp4") == before  # the fitted constants are back after the block


def test_norm_quant_fusion_changes_nothing_without_fp4_gemms():
    pub, _ = published()
    before = _step("h100-sxm", "fp8")
    with pub.mlperf_engine({"norm_quant_fusion": True}):
        assert _step("h100-sxm", "fp8") == before
    assert CALIBRATION.fp4_norm_quant_fused is False  # no engine release sets it


def test_the_mlperf_rows_with_norm_quant_fusion_are_those_whose_config_sets_it():
    """NVIDIA's v5.1 B200 files (ykamiset/inference_results_v5.1 @e9ccad4d, configs/B200-SXM-180GBx8/<scenario>/)
    set ``'norm_quant_fusion': 'enable'`` in llama2-70b.py Offline and Server (not Interactive, which sets
    gemm_plugin fp4 instead) and in llama3_1-405b.py Offline, Server and Interactive. The v5.0 and v4.1 rows' configs
    set their trtllm_build_flags in the system's class over a base that has the flag; whether NVIDIA's config
    loader merges the two dicts was not read, so those rows are left without it."""
    _, data = published()
    fused = {(r["source"], r["model"], r["scenario"]) for r in data["mlperf"] if r.get("norm_quant_fusion")}
    assert fused == {("mlperf-5.1", "llama-2-70b", "Offline"), ("mlperf-5.1", "llama-2-70b", "Server"),
                     ("mlperf-5.1", "llama-3.1-405b", "Offline"), ("mlperf-5.1", "llama-3.1-405b", "Server"),
                     ("mlperf-5.1", "llama-3.1-405b", "Interactive")}  # fmt: skip
    for r in data["mlperf"]:
        if r.get("norm_quant_fusion"):
            assert r["weights"] == "nvfp4" and "norm_quant_fusion 'enable'" in r["config"]

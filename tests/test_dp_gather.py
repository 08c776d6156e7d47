"""TensorRT-LLM's attention-DP MoE all-gather: each rank's own tokens, not padded to the busiest rank's.

TensorRT-LLM#6064 removed the attention-DP padding (restored on SM120 only, #7965); Qwen3MoE.forward keeps
``use_dp_padding`` False, so the fused MoE gathers each rank's own token count (one NCCL broadcast per rank of its
rows, thop allgatherOp.cpp) for every family and weight dtype (kvplan.engines.trtllm OVERLAP).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from kvplan.catalog import load_bundled
from kvplan.engines import trtllm
from kvplan.hardware import resolve_gpu
from kvplan.latency import _gather_s, _make_ctx, mixed_step_latency


def _exchange(spec, gpu, rows: float, weights: str = "fp8") -> float:  # noqa: ANN001
    c = _make_ctx(spec, gpu, tp=1, weights_dtype=weights, cal=trtllm.CALIBRATION, eager=True, ep=True, dp=8,
                  rules=trtllm.OVERLAP)  # fmt: skip
    return _gather_s(c, rows, bytes_per_element=c.gather_bytes) + _gather_s(c, rows, bytes_per_element=2.0)


def _step(spec, gpu, weights: str = "fp8"):  # noqa: ANN001, ANN202
    """8 ranks of 45 decodes, one of them with an 8,147-token prompt chunk."""
    return mixed_step_latency(spec, gpu, decode_seqs=360, decode_context=21000, prefill_tokens=8147,
                              prefill_prefix=5926, tp=1, kv_dtype_name="fp8", weights_dtype=weights, engine="trtllm",
                              expert_parallel=True, dp=8)  # fmt: skip


def test_qwen3_fp8_gathers_each_ranks_own_tokens_by_hand() -> None:
    """Qwen3-235B-A22B, 8 x H200, FP8: the MoE layers see 8 x 45 = 360 decodes + the 8,147-token chunk = 8,507
    rows, and gather exactly those (not 8 x (45 + 8,147) = 65,536 padded rows); 94 MoE layers, each an all-gather of
    fp8 rows and a reduce-scatter of bf16 ones."""
    q3, h200 = load_bundled("qwen3-235b-a22b"), resolve_gpu("h200")
    assert trtllm.OVERLAP.moe_allgather_unpadded
    step = _step(q3, h200)
    assert step.alltoall == pytest.approx(94 * _exchange(q3, h200, 360 + 8147), rel=1e-9)
    assert step.alltoall < 94 * _exchange(q3, h200, 8 * (45 + 8147)) / 5  # the padded form moves 7.7x the rows


def test_llama4_and_nvfp4_gather_each_ranks_own_tokens_too_by_hand() -> None:
    """TensorRT-LLM#6064 removed the attention-DP padding for every family (kept only on SM120, #7965): Llama 4
    Maverick (24 MoE layers, every second of 48) gathers the 8,507 real rows, not 8 x (45 + 8,147) = 65,536, and
    Qwen3 with NVFP4 weights on B200 gathers unpadded as well. (This test asserted the padded 65,536 rows for both
    before that source was read: Llama4MoE's padding came from #4065, 2025-05, and the NVFP4 one from the 0.2x
    Qwen3MoE file.)"""
    mav, h200 = load_bundled("llama-4-maverick-17b-128e"), resolve_gpu("h200")
    moe_layers = len(mav.moe_layers)
    assert moe_layers == 24
    assert _step(mav, h200).alltoall == pytest.approx(moe_layers * _exchange(mav, h200, 360 + 8147), rel=1e-9)
    q3, b200 = load_bundled("qwen3-235b-a22b"), resolve_gpu("b200")
    unpadded = 94 * _exchange(q3, b200, 360 + 8147, weights="nvfp4")
    assert _step(q3, b200, weights="nvfp4").alltoall == pytest.approx(unpadded, rel=1e-9)


def test_an_engine_without_the_rule_pads_to_the_busiest_rank_by_hand() -> None:
    """The padded form (Overlap.moe_allgather_unpadded False, vLLM's rules): every rank padded to 45 + 8,147 rows."""
    from kvplan.engines import vllm

    assert not vllm.OVERLAP.moe_allgather_unpadded
    q3, h200 = load_bundled("qwen3-235b-a22b"), resolve_gpu("h200")
    c = _make_ctx(q3, h200, tp=1, weights_dtype="fp8", cal=trtllm.CALIBRATION, eager=True, ep=True, dp=8,
                  rules=replace(trtllm.OVERLAP, moe_allgather_unpadded=False))  # fmt: skip
    assert not c.gather_unpadded


def test_nvfp4_weights_gather_nvfp4_activations_by_hand() -> None:
    """CutlassFusedMoE.forward_chunk fp4_quantize()s the activations before the attention-DP all-gather: 1/2 byte per
    value + one FP8 scale per 16 = 9/16 byte (Qwen3-235B-A22B NVFP4 on B200: 8,507 rows x 4,096 x 9/16 =
    19,600,128 B gathered, where 16-bit rows were 69,689,344 B); FP8 weights gather fp8 (1 byte); Hopper, which has no
    FP4 tensor cores, keeps the dispatch's bytes; the reduce-scatter stays 16-bit."""
    q3, b200, h200 = load_bundled("qwen3-235b-a22b"), resolve_gpu("b200"), resolve_gpu("h200")
    kw = dict(tp=1, cal=trtllm.CALIBRATION, eager=True, ep=True, dp=8, rules=trtllm.OVERLAP)
    assert _make_ctx(q3, b200, weights_dtype="nvfp4", **kw).gather_bytes == 0.5625
    assert _make_ctx(q3, b200, weights_dtype="fp8", **kw).gather_bytes == 1.0
    assert _make_ctx(q3, h200, weights_dtype="nvfp4", **kw).gather_bytes == 2.0
    assert 8507 * 4096 * 0.5625 == 19_600_128 and 8507 * 4096 * 2 == 69_689_344
    # NCCL on Blackwell (kvplan.latency.NCCL_FITS): wire 7/8 x 19,600,128 B / 1,800 GB/s = 9.5278 us; Simple
    # 26.30 + 6 x 4.578 = 53.77 us + 9.5278 / 0.3119 = 30.548 us -> 84.32 us (LL: 16.659 + 81.78 = 98.44 us).
    c = _make_ctx(q3, b200, weights_dtype="nvfp4", **kw)
    assert _gather_s(c, 8507, bytes_per_element=c.gather_bytes) == pytest.approx(84.32e-6, rel=1e-3)

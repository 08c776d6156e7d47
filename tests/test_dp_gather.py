"""TensorRT-LLM's attention-DP MoE all-gather: padded to the busiest rank, or each rank's own tokens (Qwen3-MoE).

Qwen3MoE.forward keeps ``use_dp_padding`` False on the CUTLASS path with FP8 weights, so the fused MoE gathers each
rank's own token count (one NCCL broadcast per rank of its rows, thop allgatherOp.cpp); Llama4MoE pads every rank to
the busiest rank's count (kvplan.engines.trtllm OVERLAP).
"""

from __future__ import annotations

import pytest

from kvplan.catalog import load_bundled
from kvplan.engines import trtllm
from kvplan.hardware import resolve_gpu
from kvplan.latency import _gather_s, _make_ctx, mixed_step_latency


def _exchange(spec, gpu, rows: float, weights: str = "fp8") -> float:  # noqa: ANN001
    c = _make_ctx(spec, gpu, tp=1, weights_dtype=weights, cal=trtllm.CALIBRATION, eager=True, ep=True, dp=8,
                  rules=trtllm.OVERLAP)  # fmt: skip
    return _gather_s(c, rows, bytes_per_element=c.dispatch_bytes) + _gather_s(c, rows, bytes_per_element=2.0)


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
    assert q3.family in trtllm.OVERLAP.moe_allgather_unpadded
    step = _step(q3, h200)
    assert step.alltoall == pytest.approx(94 * _exchange(q3, h200, 360 + 8147), rel=1e-9)
    assert step.alltoall < 94 * _exchange(q3, h200, 8 * (45 + 8147)) / 5  # the padded form moves 7.7x the rows


def test_llama4_and_nvfp4_keep_the_padded_gather_by_hand() -> None:
    """Llama 4 Maverick pads every rank to the busiest rank's 45 + 8,147 tokens: 8 x 8,192 = 65,536 rows gathered
    (its 24 MoE layers, every second of 48); Qwen3 with NVFP4 weights (B200) pads too (the Qwen3MoE that was read
    pads with NVFP4 scales)."""
    mav, h200 = load_bundled("llama-4-maverick-17b-128e"), resolve_gpu("h200")
    assert mav.family not in trtllm.OVERLAP.moe_allgather_unpadded
    moe_layers = len(mav.moe_layers)
    assert moe_layers == 24
    assert _step(mav, h200).alltoall == pytest.approx(moe_layers * _exchange(mav, h200, 8 * (45 + 8147)), rel=1e-9)
    q3, b200 = load_bundled("qwen3-235b-a22b"), resolve_gpu("b200")
    padded = 94 * _exchange(q3, b200, 8 * (45 + 8147), weights="nvfp4")
    assert _step(q3, b200, weights="nvfp4").alltoall == pytest.approx(padded, rel=1e-9)

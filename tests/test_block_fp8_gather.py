"""TensorRT-LLM's attention-DP all-gather moves 16-bit activations for block-scaled fp8 checkpoints
(Overlap.moe_allgather_block_fp8_16bit): CutlassFusedMoE.forward_chunk quantizes before the gather only for per-tensor
fp8 and NVFP4 weights (kvplan.engines.trtllm, the OVERLAP comment)."""

import pytest

from kvplan import latency as lat
from kvplan.catalog import resolve_model
from kvplan.hardware import resolve_gpu


def _ctx(model: str, engine: str, weights: str, gpu: str = "h200"):  # noqa: ANN202
    return lat._make_ctx(resolve_model(model), resolve_gpu(gpu), tp=1, dp=8, ep=True, weights_dtype=weights,
                         cal=lat.calibration(engine), eager=False, rules=lat.engine_overlap(engine))  # fmt: skip


def test_gather_bytes_by_checkpoint() -> None:
    # DeepSeek-V3's checkpoint is block-scaled fp8 (128 x 128): TensorRT-LLM gathers its 16-bit hidden states
    assert _ctx("deepseek-v3", "trtllm", "fp8").gather_bytes == 2.0
    # per-tensor fp8 (no block scales in the spec): static_quantize_e4m3_per_tensor before the gather, 1 byte
    assert _ctx("qwen3-235b-a22b", "trtllm", "fp8").gather_bytes == 1.0
    # NVFP4 on B200: 9/16 byte (fp4_quantize before the gather), unchanged
    assert _ctx("qwen3-235b-a22b", "trtllm", "nvfp4", gpu="b200").gather_bytes == pytest.approx(9 / 16)
    # engines without the rule keep the dispatch's bytes
    assert _ctx("deepseek-v3", "vllm", "fp8").gather_bytes == 1.0


def test_block_fp8_gather_by_hand() -> None:
    # DeepSeek-V3 (hidden 7168), TensorRT-LLM, 8 H200 ranks (900 GB/s NVLink), 1,024 gathered tokens through NCCL
    # (kvplan.latency.NCCL_FITS["hopper"]): 1,024 x 7,168 x 2 B = 14,680,064 B; wire 7/8 x 14,680,064 / 900e9 =
    # 14.272 us. LL 5.843 + 6 x 0.8765 + 14.272 / 0.1408 = 112.47 us; Simple 21.64 + 6 x 7.883e-5 + 14.272 / 0.3241
    # = 65.68 us: 65.68 us. At the fp8 byte it priced before: wire 7.136 us, Simple 21.64 + 22.02 = 43.66 us.
    c = _ctx("deepseek-v3", "trtllm", "fp8")
    assert lat._gather_s(c, 1024, bytes_per_element=c.gather_bytes) == pytest.approx(65.68e-6, rel=1e-3)
    assert lat._gather_s(c, 1024, bytes_per_element=1.0) == pytest.approx(43.66e-6, rel=1e-3)

"""vLLM holds gpt-oss's MXFP4 experts padded for the MoE backend it picks (Vllm.expert_dims_as_loaded).

Against vllm-project/vllm issue #23278 (shared/reference/engine_logs.json vllm-13: vLLM ~0.10.1, gpt-oss-120b on
one H100, "Model loading took 65.9651 GiB", tests/data/failed_starts/vllm-23278-negative-kv-memory.log).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kvplan.capacity import setup
from kvplan.diagnose import diagnose_text
from kvplan.units import GIB

LOG = Path(__file__).parent / "data" / "failed_starts" / "vllm-23278-negative-kv-memory.log"
LOGGED_WEIGHTS_GIB = 65.9651  # "Model loading took 65.9651 GiB"


def _weights(model: str, gpu: str, engine: str, *, tp: int = 1, weights_dtype: str | None = None) -> int:
    return setup(model, gpu, engine=engine, tp=tp, weights_dtype=weights_dtype).stages[0].budget.weights


def _checkpoint(model: str, gpu: str = "h100-sxm", *, tp: int = 1, weights_dtype: str | None = None) -> int:
    """The weights at the checkpoint's own dims (the ideal engine: no kernel padding)."""
    return _weights(model, gpu, "ideal", tp=tp, weights_dtype=weights_dtype)


def test_marlin_padding_of_gpt_oss_120b_by_hand_and_against_the_log() -> None:
    # Marlin (vLLM 0.8-0.15 rules on Hopper: no triton_kernels in the wheel): hidden 2,880 -> round_up(2,880, 256) =
    # 3,072, expert width 2,880 -> round_up(2,880, 128) = 2,944. One expert, gate+up+down, in MXFP4 (17/32 B a weight)
    # plus bf16 biases (2 x width + hidden): padded 3 x 3,072 x 2,944 = 27,131,904 x 17/32 = 14,413,824 B + (5,888 +
    # 3,072) x 2 = 17,920 B; the checkpoint's 3 x 2,880 x 2,880 = 24,883,200 x 17/32 = 13,219,200 B + 8,640 x 2 =
    # 17,280 B; 1,195,264 B more an expert, x 128 experts x 36 layers = 5,507,776,512 B (5.13 GiB).
    padded = _weights("gpt-oss-120b", "h100-sxm", "vllm@0.8")
    plain = _checkpoint("gpt-oss-120b")
    assert padded - plain == 1_195_264 * 128 * 36
    assert _weights("gpt-oss-120b", "b200", "vllm@0.8") == plain  # Blackwell under the 0.8-0.15 rules: not read
    # the log: 65.9651 GiB loaded; kvplan 65.90 GiB (60.77 GiB at the checkpoint's dims, -7.9 %)
    assert padded / GIB == pytest.approx(LOGGED_WEIGHTS_GIB, rel=0.002)
    assert plain / GIB == pytest.approx(60.77, abs=0.01)


def test_triton_padding_on_hopper_from_vllm_0_16() -> None:
    # The 0.16.0 wheel ships triton_kernels (vllm/third_party): Hopper runs matmul_ogs, the expert width padded to 64
    # only. gpt-oss-120b at TP 1: 2,880 is a multiple of 64, nothing added. gpt-oss-20b at TP 2: 1,440 -> 1,472; an
    # expert 3 x 2,880 x 1,472 = 12,718,080 x 17/32 = 6,756,480 B + (2,944 + 2,880) x 2 = 11,648 B against 3 x 2,880
    # x 1,440 = 12,441,600 x 17/32 = 6,609,600 B + (2,880 + 2,880) x 2 = 11,520 B: 147,008 B, x 32 experts x 24 layers.
    for engine in ("vllm@0.16", "vllm@0.19", "vllm"):
        assert _weights("gpt-oss-120b", "h100-sxm", engine) == _checkpoint("gpt-oss-120b")
        extra = _weights("gpt-oss-20b", "h100-sxm", engine, tp=2) - _checkpoint("gpt-oss-20b", tp=2)
        assert extra == 147_008 * 32 * 24
    # before Hopper every release runs Marlin (triton_kernels needs capability 9.0 to 11.0)
    assert _weights("gpt-oss-120b", "a100-80gb", "vllm") == _weights("gpt-oss-120b", "h100-sxm", "vllm@0.8")


def test_flashinfer_padding_on_blackwell_from_vllm_0_16() -> None:
    # flashinfer-python is a dependency of the 0.16.0 and 0.19.0 wheels: on SM100 vLLM takes FlashInfer's MXFP4 MoE,
    # hidden and width both to round_up(.., 256) = 3,072 for gpt-oss: an expert 3 x 3,072 x 3,072 = 28,311,552 x 17/32
    # = 15,040,512 B + (6,144 + 3,072) x 2 = 18,432 B against 13,236,480 B (above): 1,822,464 B more, x 128 x 36.
    for engine in ("vllm@0.16", "vllm@0.19", "vllm"):
        for gpu in ("b200", "gb200"):
            extra = _weights("gpt-oss-120b", gpu, engine) - _checkpoint("gpt-oss-120b", gpu)
            assert extra == 1_822_464 * 128 * 36


def test_padding_applies_to_mxfp4_experts_under_vllm_only() -> None:
    for engine in ("sglang", "trtllm"):
        assert _weights("gpt-oss-120b", "h100-sxm", engine) == _checkpoint("gpt-oss-120b")
    bf16 = "bf16"  # the experts dequantized: no MXFP4 kernel
    assert _weights("gpt-oss-20b", "h100-sxm", "vllm@0.8", weights_dtype=bf16) == _checkpoint(
        "gpt-oss-20b", weights_dtype=bf16
    )
    assert _weights("qwen3-30b-a3b", "h100-sxm", "vllm@0.8") == _checkpoint("qwen3-30b-a3b")


def test_failed_start_under_the_release_the_log_ran() -> None:
    # check-log --engine vllm@0.8: the weights term is the log's within 0.1 %; the KV budget kvplan predicts falls
    # from 6.86 to 1.73 GiB (the log: -2.14 GiB, so 3.87 GiB of the profile run's memory is still unexplained).
    d = diagnose_text(LOG.read_text(), engine="vllm@0.8", gpu="h100-sxm", model="gpt-oss-120b")
    rows = {r["term"]: r for r in d.explanation}
    weights = rows["weights"]
    assert weights["engine_value"] == pytest.approx(LOGGED_WEIGHTS_GIB * GIB, rel=1e-3)
    assert weights["kvplan_value"] / weights["engine_value"] == pytest.approx(1.0, abs=0.002)
    assert rows["available KV memory"]["kvplan_value"] / GIB == pytest.approx(1.73, abs=0.01)
    assert all("--engine vllm@0.8" in " ".join(p.check) for p in d.prescriptions)

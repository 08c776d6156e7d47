"""vLLM's OpenAI Triton MXFP4 experts on Hopper (gpt-oss under the 0.16+ rules) as kvplan.latency prices them: the
token tile triton_kernels picks, whole tiles an expert, random routing's expected tiles, and the fitted constants
against aiconfigurator's vLLM 0.24.0 tables."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvplan import latency
from kvplan.catalog import resolve_model
from kvplan.engines import get_engine
from kvplan.engines.vllm import TRITON_MXFP4_MOE
from kvplan.hardware import resolve_gpu
from tests.benchmods import bench_module

H100 = resolve_gpu("h100-sxm")


@pytest.mark.parametrize(
    ("rows", "block"),
    [(0.03, 16), (1.0, 16), (16.0, 16), (16.9, 16), (17.0, 32), (24.0, 32), (64.0, 64), (65.0, 128), (4096.0, 128)],
)
def test_block_follows_triton_kernels_opt_flags(rows: float, block: int) -> None:
    # max(16, min(next_power_of_2(max(1, m // n_expts_tot)), 128)): the floor first, so 16.9 rows are 16
    assert latency.triton_block_m(rows) == block


def test_hopper_runs_triton_under_the_newer_rules_only() -> None:
    vllm = get_engine("vllm")
    assert vllm.moe_kernel(weights_dtype="mxfp4", gpu=H100) == TRITON_MXFP4_MOE
    assert get_engine("vllm@0.16").moe_kernel(weights_dtype="mxfp4", gpu=H100) == TRITON_MXFP4_MOE
    assert get_engine("vllm@0.8").moe_kernel(weights_dtype="mxfp4", gpu=H100).name == "marlin"
    assert vllm.moe_kernel(weights_dtype="mxfp4", gpu=resolve_gpu("b200")) is None  # FlashInfer's TRT-LLM kernels
    # the width on the rank padded to 64 as create_weights holds it: TP 8 gives 360 -> 384
    assert vllm.expert_dims_as_loaded(weights_dtype="mxfp4", gpu=H100, hidden=2880, inter_rank=360) == (2880, 384)


@given(st.floats(min_value=0.01, max_value=5000.0), st.sampled_from([16, 32, 64, 128]))
def test_random_routing_needs_at_least_the_mean_tiles(mean: float, block: int) -> None:
    # E[ceil(n / b)] >= E[n / b]: a tile holds at most b rows; and an expert gets a tile only if it gets a row
    tiles = latency.expected_tiles(mean, block)
    assert tiles >= mean / block - 1e-9
    assert tiles >= 1 - math.exp(-mean) - 1e-12


def test_random_routing_tiles_by_hand() -> None:
    # Poisson(64), 64-row tiles: P(n > 0) + P(n > 64) + P(n > 128) + ... = 1.0 + 0.4751 + 0.0000, the normal law past
    # mean 20 with continuity correction (0.5 x erfc(0.5 / sqrt(128)); the exact Poisson tail is 0.4668); balanced
    # shares would need exactly 1
    assert latency.expected_tiles(64.0, 64) == pytest.approx(1.4751, abs=1e-4)
    # below mean 20 the exact sum: Poisson(16), 16-row tiles: 1 - e^-16 + P(n > 16) + P(n > 32) = 1.0 + 0.4340 + 0.0001
    assert latency.expected_tiles(16.0, 16) == pytest.approx(1.4342, abs=1e-4)
    # far past the tile: the mean's tiles and about half a tile more
    assert latency.expected_tiles(2000.0, 128) == pytest.approx(2000 / 128 + 0.5, abs=0.1)
    assert latency.expected_tiles(1.0, 16, first=False) == pytest.approx(0.0, abs=1e-12)  # P(n > 16) at mean 1


def _grouped_us(tokens: int, *, tp: int = 1, balanced: bool = True) -> float:
    spec = resolve_model("gpt-oss-120b")
    c = latency._engine_ctx(spec, H100, "vllm", kv_dtype="bf16", tp=tp, weights_dtype="mxfp4", eager=True, ep=False,
                            dp=1, pp=1, gpus_per_node=None, two_batch=False, deepep=False)  # fmt: skip
    loads = ((tokens * 4 / 128, 128),) if balanced else None  # equal rows on every expert, or serving's routing
    return latency._moe_s(c, tokens, tokens, loads).grouped * 1e6


def test_tiles_by_hand_against_the_table() -> None:
    # gpt-oss-120b on one H100, one MoE layer, 2,048 tokens balanced: 2,048 x 4 / 128 = 64 rows an expert, one 64-row
    # tile each of the 128 experts; an expert 3 x 2,880 x 2,880 = 24,883,200 weights. A tile: 2 x 64 x 24,883,200 /
    # (989e12 x 0.825) = 3.9035 us of rows + 24,883,200 x 2.3e-11 / 132 = 4.3357 us of dequantization = 8.2393 us;
    # x 128 = 1,054.63 us, + moe_layer_s 34.27 = 1,088.90 us (aiconfigurator's vLLM 0.24.0 table: 1,041.0 us)
    assert _grouped_us(2048) == pytest.approx(1088.90, rel=1e-4)
    # random routing: every expert touched (1 - (1 - 4/128)^2048 = 1) and P(n > 64) = 0.47508 more tiles each:
    # 128 x 1.47508 x 8.2393 + 34.27 = 1,589.9 us (aiconfigurator's power_law_1.2 table on H200: 1,758 us)
    assert _grouped_us(2048, balanced=False) == pytest.approx(1589.9, rel=1e-4)


def test_fitted_constants_hold_on_the_tables() -> None:
    # benchmarks/moe_compare.py's sample: the vLLM w4a16_mxfp4 points on H100 and H200 (300), balanced as collected
    moe_compare = bench_module("moe_compare")
    rows = [r for r in moe_compare.compare(moe_compare.load())
            if r["engine"] == "vllm" and r["dtype"] == "w4a16_mxfp4" and r["gpu"] in ("h100-sxm", "h200")]  # fmt: skip
    assert len(rows) == 300
    lns = sorted(abs(r["ln"]) for r in rows)
    assert lns[len(lns) // 2] < 0.1  # 0.085; the fitted grouped GEMMs priced them at a median 0.220
    whole = [abs(r["ln"]) for r in rows if (r["tp"], r["ep"]) == (1, 1)]
    assert max(whole) < 0.2  # one GPU, every token count: the tile steps are the kernel's

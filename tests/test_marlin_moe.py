"""vLLM's Marlin MoE kernel (MXFP4 experts where vLLM has no other kernel for them) as kvplan.latency prices it:
fused_marlin_moe's token block, the padded rows and dims, marlin_moe_peak_eff, and which engines and GPUs run it."""

from __future__ import annotations

import pytest

from kvplan import latency
from kvplan.catalog import resolve_model
from kvplan.engines import get_engine
from kvplan.engines.vllm import FLASHINFER_CUTLASS_FP8_MOE, MARLIN_FP8_MOE, MARLIN_MOE, TRITON_MXFP4_MOE
from kvplan.hardware import resolve_gpu
from tests.benchmods import bench_module


def _ctx(engine: str, gpu: str = "h100-sxm", weights: str = "mxfp4"):
    return latency._engine_ctx(resolve_model("gpt-oss-120b"), resolve_gpu(gpu), engine, kv_dtype="bf16", tp=1,
                               weights_dtype=weights, eager=True, ep=False, dp=1, pp=1, gpus_per_node=None,
                               two_batch=False, deepep=False)  # fmt: skip


@pytest.mark.parametrize(
    ("per_expert", "block"),
    [
        (1.0, 8),  # 1 / 8 = 0.125 < 0.9
        (7.19, 8),  # 0.899 < 0.9
        (7.2, 16),  # 7.2 / 8 = 0.9 is not below 0.9; 7.2 / 16 = 0.45
        (40.0, 48),  # 40 / 32 = 1.25, 40 / 48 = 0.833
        (62.5, 64),  # 62.5 / 64 = 0.977: no block fits, the loop ends on 64
        (256.0, 64),
    ],
)
def test_block_follows_fused_marlin_moe(per_expert: float, block: int) -> None:
    assert latency.marlin_block_m(per_expert) == block


def test_rows_pad_each_expert_to_whole_blocks() -> None:
    # 128 experts of 40 tokens in blocks of 48: 128 x 48 = 6,144 rows; 129 tokens in blocks of 64: 3 blocks, 192 rows
    assert latency._marlin_rows(128, 40.0, 48) == 6144
    assert latency._marlin_rows(1, 129.0, 64) == 192
    assert latency._marlin_rows(2, 64.0, 64) == 128  # exactly one block each


def test_vllm_runs_marlin_where_it_has_no_other_mxfp4_kernel() -> None:
    h100, a100, b200 = (resolve_gpu(n) for n in ("h100-sxm", "a100-80gb", "b200"))
    old, new = get_engine("vllm@0.8"), get_engine("vllm")
    assert old.moe_kernel(weights_dtype="mxfp4", gpu=h100) == MARLIN_MOE  # no triton_kernels in those wheels
    assert new.moe_kernel(weights_dtype="mxfp4", gpu=h100) == TRITON_MXFP4_MOE  # OpenAI triton_kernels from 0.16
    assert new.moe_kernel(weights_dtype="mxfp4", gpu=a100) == MARLIN_MOE  # before Hopper: Marlin in every release
    assert new.moe_kernel(weights_dtype="mxfp4", gpu=b200) is None  # FlashInfer
    assert old.moe_kernel(weights_dtype="bf16", gpu=h100) is None
    assert get_engine("sglang").moe_kernel(weights_dtype="mxfp4", gpu=h100) is None  # not modelled there
    # the padding the capacity side already applies is the kernel's
    assert old.expert_dims_as_loaded(weights_dtype="mxfp4", gpu=h100, hidden=2880, inter_rank=2880) == (3072, 2944)


def test_prompt_priced_by_marlin_rows_at_its_rate() -> None:
    # gpt-oss-120b, one H100 (989 TFLOPS bf16, 3,350 GB/s), vllm@0.8, one MoE layer over 8,192 prompt tokens:
    # experts padded to 3,072 x 2,944 (hidden to 256, width to 128): 3 x 3,072 x 2,944 = 27,131,904 weights each;
    # 8,192 x 4 / 128 = 256 tokens an expert, block 64, every one of the 128 experts touched: 128 x 256 = 32,768 rows;
    # 2 x 32,768 x 27,131,904 = 1.778116e15 FLOP at 989e12 x 0.272 = 2.69008e14 FLOP/s: 6.60990 ms, + moe_layer_s
    # 34.27 us = 6.64417 ms (the newer rules' OpenAI Triton kernel, tests/test_triton_mxfp4_moe.py: 128 x 2.48754
    # expected tiles of 128 rows at 12.1426 us each + 34.27 us = 3.9006 ms)
    c = _ctx("vllm@0.8")
    assert c.cal.marlin_moe_peak_eff == 0.272
    assert latency._moe_s(c, 8192, 8192).grouped == pytest.approx(6.64417e-3, rel=1e-5)
    assert latency._moe_s(_ctx("vllm"), 8192, 8192).grouped == pytest.approx(3.9006e-3, rel=1e-4)


def test_decode_bound_by_the_blocks_dequantization() -> None:
    # One token: 4 experts, one block of 8 rows each (32 rows: 6.4 us at Marlin's tensor-core rate). Each block
    # dequantizes its expert: 4 x 27,131,904 weights x 2.79e-11 s / 132 SMs = 22.939 us, above the fitted curve's
    # 0.4172 x 1 / (1 + 39.38) x 2,944 / (2,944 + 64.35) = 0.010111 of peak (2 x 4 x 27,131,904 / (989e12 x 0.010111)
    # = 21.706 us) and the weights' streaming (4 x 27,131,904 x 0.532 B + activations = 57.86 MB at 3,350 GB/s x
    # 0.9347 = 18.48 us); + moe_layer_s 34.27 us = 57.209 us
    assert latency._moe_s(_ctx("vllm@0.8"), 1, 1).grouped == pytest.approx(57.209e-6, rel=1e-4)
    # H200 has the same 132 SMs: the same time though it streams 43 % faster (aiconfigurator's tables: 97-163 us
    # against H100's 109-166 us at one token)
    assert latency._moe_s(_ctx("vllm@0.8", gpu="h200"), 1, 1).grouped == pytest.approx(57.209e-6, rel=1e-4)


def test_other_weights_and_engines_unchanged() -> None:
    c = _ctx("vllm@0.8", weights="bf16")
    assert c.marlin_peak == 0.0 and c.expert_pad == (1, 1)
    assert _ctx("vllm").marlin_peak == 0.0
    assert _ctx("trtllm").marlin_peak == 0.0


def test_peak_share_reproduces_from_the_committed_tables() -> None:
    # benchmarks/marlin_moe_compare.py measures marlin_moe_peak_eff on the committed sample of aiconfigurator's
    # Marlin MoE tables: 28 whole-layer points from 2,048 tokens, shares 0.244-0.289, median 0.272
    marlin_moe_compare = bench_module("marlin_moe_compare")
    share, lines = marlin_moe_compare.measure(marlin_moe_compare.load_row_tables(marlin_moe_compare.DATA))
    assert len(lines) == 28
    assert round(share, 3) == latency.calibration("vllm").marlin_moe_peak_eff == 0.272
    # and marlin_moe_dequant_s on its 20 whole-layer points up to 16 tokens: 2.28e-11 to 3.28e-11, median 2.79e-11
    dequant, lines = marlin_moe_compare.measure_dequant(marlin_moe_compare.load_row_tables(marlin_moe_compare.DATA))
    assert len(lines) == 20
    assert float(f"{dequant:.3g}") == latency.calibration("vllm").marlin_moe_dequant_s == 2.79e-11


def _qwen_ctx(engine: str, gpu: str, weights: str = "fp8"):
    return latency._engine_ctx(resolve_model("qwen3-235b-a22b"), resolve_gpu(gpu), engine, kv_dtype="bf16", tp=4,
                               weights_dtype=weights, eager=True, ep=False, dp=1, pp=1, gpus_per_node=None,
                               two_batch=False, deepep=False)  # fmt: skip


def test_vllm_runs_fp8_experts_through_marlin_below_sm89() -> None:
    # vLLM 0.11.0 quantization/fp8.py Fp8MoEMethod: use_marlin = not has_device_capability(89); A100 is SM 8.0
    a100, a100_pcie, h100 = (resolve_gpu(n) for n in ("a100-80gb", "a100-40gb-pcie", "h100-sxm"))
    for key in ("vllm@0.8", "vllm@0.16", "vllm"):
        assert get_engine(key).moe_kernel(weights_dtype="fp8", gpu=a100) == MARLIN_FP8_MOE
        assert get_engine(key).moe_kernel(weights_dtype="fp8", gpu=a100_pcie) == MARLIN_FP8_MOE
        assert get_engine(key).moe_kernel(weights_dtype="bf16", gpu=a100) is None
    # SM 9.0 has FP8 tensor cores: the 0.8 rules' Triton fp8 experts (fitted grouped GEMMs), 0.16+ FlashInfer CUTLASS
    assert get_engine("vllm@0.8").moe_kernel(weights_dtype="fp8", gpu=h100) is None
    assert get_engine("vllm").moe_kernel(weights_dtype="fp8", gpu=h100) == FLASHINFER_CUTLASS_FP8_MOE
    assert get_engine("sglang").moe_kernel(weights_dtype="fp8", gpu=a100) is None  # not modelled there
    # fp8 Marlin repacks the experts as they are: no padding (the MXFP4 path's comes from its own create_weights)
    assert MARLIN_FP8_MOE.hidden_multiple == MARLIN_FP8_MOE.inter_multiple == 1
    c = _qwen_ctx("vllm@0.8", "a100-80gb")
    assert c.marlin_peak == pytest.approx(312e12 * 0.473) and c.expert_pad == (1, 1)  # the Ampere pair
    assert c.marlin_dequant_s == pytest.approx(3.74e-11 / 108)  # A100: 108 SMs
    assert _qwen_ctx("vllm@0.8", "h100-sxm").marlin_peak == 0.0


def test_fp8_experts_on_a100_by_hand() -> None:
    # Qwen3-235B-A22B fp8 (4,096 x 1,536, 128 experts, top 8), TP 4 on A100s, vllm@0.8, one MoE layer over 8,192
    # prompt tokens: 384-wide slices, 3 x 4,096 x 384 = 4,718,592 weights an expert (no padding); 8,192 x 8 / 128 =
    # 512 tokens an expert, block 64, every expert touched: 65,536 rows; 2 x 65,536 x 4,718,592 = 6.18475e14 FLOP at
    # Marlin's Ampere rate 312e12 x 0.473 = 1.47576e14 FLOP/s: 4.19089 ms, below the fitted curve's 0.4172 x 512 /
    # (512 + 39.38) x 384 / (384 + 64.35) = 0.33181 of peak (5.9742 ms), which stays the floor; the weights' streaming
    # (128 x 4,718,592 B + rows = 0.60 GB at 2,039 GB/s) ~0.3 ms; + moe_layer_s
    c = _qwen_ctx("vllm@0.8", "a100-80gb")
    assert 2 * 65536 * 4718592 / c.marlin_peak == pytest.approx(4.19089e-3, rel=1e-5)
    fixed = latency._moe_s(c, 0, 0).grouped  # no token: the kernels' fixed cost alone
    assert latency._moe_s(c, 8192, 8192).grouped - fixed == pytest.approx(5.9742e-3, rel=1e-4)
    # at 1,500 tokens (93.75 an expert: two blocks of 64, 128 rows) the padded rows at Hopper's share (0.272) would
    # set the time, 2 x 128 x 128 x 4,718,592 / (312e12 x 0.272) = 1.8216 ms; at Ampere's the curve does (1.477 ms)
    assert 1.4e-3 < latency._moe_s(c, 1500, 1500).grouped - fixed < 1.5e-3
    # Hopper (FP8 tensor cores) under the same rules: the fitted curve on the fp8 peak, far below that
    assert latency._moe_s(_qwen_ctx("vllm@0.8", "h100-sxm"), 8192, 8192).grouped < 3e-3


def test_ampere_pair_reproduces_from_the_committed_a100_table() -> None:
    # marlin_moe_compare.py --ampere on aiconfigurator's A100 SGLang 0.5.10 Marlin MoE table: 77 whole-layer points
    # from 2,048 tokens, median share 0.473; 55 up to 16 tokens, median 3.74e-11 s a weight a block on one SM
    marlin_moe_compare = bench_module("marlin_moe_compare")
    tables = marlin_moe_compare.load_row_tables(marlin_moe_compare.DATA)
    share, lines = marlin_moe_compare.measure(tables, marlin_moe_compare.ampere)
    assert len(lines) == 77
    assert round(share, 3) == latency.calibration("vllm").ampere_marlin_moe_peak_eff == 0.473
    dequant, lines = marlin_moe_compare.measure_dequant(tables, marlin_moe_compare.ampere)
    assert len(lines) == 55
    assert float(f"{dequant:.3g}") == latency.calibration("vllm").ampere_marlin_moe_dequant_s == 3.74e-11

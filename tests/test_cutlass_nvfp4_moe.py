"""TensorRT-LLM's NVFP4 experts on FP4 tensor cores (CutlassFusedMoE, the "AUTO" backend for every architecture but
gpt-oss and DeepSeek-V4) as kvplan.latency prices them: which rule sets and GPUs run it, its fixed cost a layer by hand,
and the fitted constant against aiconfigurator's TensorRT-LLM 1.3.0rc20 nvfp4 MoE tables."""

from __future__ import annotations

import pytest

from kvplan import latency
from kvplan.catalog import resolve_model
from kvplan.engines import get_engine
from kvplan.engines.trtllm import CUTLASS_NVFP4_MOE
from kvplan.hardware import resolve_gpu
from tests.benchmods import bench_module

B200, GB200, H200 = resolve_gpu("b200"), resolve_gpu("gb200"), resolve_gpu("h200")


@pytest.mark.parametrize("engine", ["trtllm", "trtllm@0.20", "trtllm@0.17"])
@pytest.mark.parametrize("gpu", [B200, GB200])
def test_nvfp4_experts_on_fp4_tensor_cores_run_cutlass(engine: str, gpu) -> None:  # noqa: ANN001
    assert get_engine(engine).moe_kernel(weights_dtype="nvfp4", gpu=gpu) == CUTLASS_NVFP4_MOE


def test_other_dtypes_gpus_and_engines_keep_their_kernels() -> None:
    assert get_engine("trtllm").moe_kernel(weights_dtype="nvfp4", gpu=H200) is None  # no FP4 tensor cores
    assert get_engine("trtllm").moe_kernel(weights_dtype="fp8", gpu=B200) is None
    assert get_engine("trtllm").moe_kernel(weights_dtype="mxfp4", gpu=B200) is None  # gpt-oss: TRTLLMGenFusedMoE
    assert get_engine("vllm").moe_kernel(weights_dtype="nvfp4", gpu=B200) is None  # FlashInfer's TRT-LLM-Gen kernels


def _ctx(engine: str, gpu=B200, model: str = "qwen3-30b-a3b"):  # noqa: ANN001, ANN202
    return latency._engine_ctx(resolve_model(model), gpu, engine, kv_dtype="fp8", tp=1, weights_dtype="nvfp4",
                               eager=True, ep=False, dp=1, pp=1, gpus_per_node=None, two_batch=False,
                               deepep=False)  # fmt: skip


def test_only_the_calibrations_with_a_fit_take_its_fixed_cost() -> None:
    assert _ctx("trtllm").moe_layer_s == pytest.approx(40.5e-6)
    assert _ctx("trtllm@0.20", gpu=GB200).moe_layer_s == pytest.approx(40.5e-6)
    # v0.17's TensorRT engines (the MoE plugin, not read): fp4_moe_layer_s, as fit_fp4.py fitted it (7.041 us before
    # the fit took the GEMM tables and fp4_gemm_s; 6.627 us before the refit after B200's own all-reduce latency, 6.545
    # us before the NVFP4 shape terms)
    assert _ctx("trtllm@0.17").moe_layer_s == pytest.approx(6.736e-6)
    # vLLM's NVFP4 experts on Blackwell (TRT-LLM-Gen kernels): its own fp4_moe_layer_s (15.02 us before that refit,
    # 14.51 us before the refit with vLLM's sampling after the LM head in each step, kvplan.latency.sampling_s)
    assert _ctx("vllm").moe_layer_s == pytest.approx(1.427e-5)


def test_one_token_by_hand() -> None:
    # Qwen3-30B-A3B on one B200, one MoE layer, one token balanced: 8 experts of one row each, 3 x 2,048 x 768 =
    # 4,718,592 weights an expert at 0.563 B. Both paths stream them the same (the fitted NVFP4 grouped GEMMs' shares);
    # only the fixed cost differs: 40.5 us (CUTLASS path) against fp4_moe_layer_s's 6.736 us, so the layer differs by
    # 33.764 us (33.955 with 6.545 us, before the NVFP4 shape terms; 33.873 with 6.627 us, before the FP4 refit that
    # followed B200's own all-reduce latency; 33.459 with 7.041 us, before fit_fp4.py took the GEMM tables). The table:
    # 56.2 us (CUTLASS), the fitted form before: 12.2 us.
    one = ((1.0, 8),)
    new = latency._moe_s(_ctx("trtllm"), 1, 1, one).grouped
    old = latency._moe_s(_ctx("trtllm@0.17"), 1, 1, one).grouped
    assert (new - old) * 1e6 == pytest.approx(40.5 - 6.736, abs=1e-6)
    assert 40.5 < new * 1e6 < 56.2


def test_fit_moe_ops_fits_the_fixed_cost_on_the_nvfp4_tables() -> None:
    # benchmarks/fit_moe_ops.py on TensorRT-LLM's 1,020 B200 / GB200 nvfp4 points (its CUTLASS rows): the calibrated
    # fixed cost beats a lower and a higher one, and fp4_moe_layer_s's 7.0 us in its place (0.431)
    moe_compare, fit_moe_ops = bench_module("moe_compare"), bench_module("fit_moe_ops")
    r = fit_moe_ops.fit(moe_compare.load(), "cutlass_nvfp4_moe_layer_s", grid=(30.0, 40.5, 50.0))
    assert r["points"] == 1020 and r["value_s"] == pytest.approx(40.5e-6)
    assert r["after"][0] < 0.26 < 0.43 < r["before"][0]  # 0.256 against 0.431

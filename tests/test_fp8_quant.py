"""The activations' dynamic fp8 quantization before each per-tensor fp8 GEMM (kvplan.latency._gemm_s,
``fp8_quant_s`` / ``blackwell_fp8_quant_s`` / ``fp8_quant_read_eff``), its fit to aiconfigurator's quantize tables
(benchmarks/fp8_quant_compare.py) and the grid case it was built for."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from kvplan.catalog import resolve_model
from kvplan.cost import step_flops
from kvplan.hardware import resolve_gpu
from kvplan.latency import calibration, gemm_seconds, step_latency

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


def _without_quant(cal):  # noqa: ANN001, ANN202
    return replace(cal, fp8_quant_s=0.0, blackwell_fp8_quant_s=0.0)


@pytest.mark.parametrize(
    ("gpu", "expected_us"),
    [
        # B200, 7,700 GB/s: 10.86 us + 128 x 5,120 x 2 B / (7.7e12 x 0.239) = 10.86 + 0.7122 = 11.5722 us
        ("b200", 11.5722),
        # H100 SXM, 3,350 GB/s: 8.127 us + 1,310,720 B / (3.35e12 x 0.239) = 8.127 + 1.6371 = 9.7641 us
        ("h100-sxm", 9.7641),
    ],
)
def test_quantization_adds_fixed_cost_and_input_read_by_hand(gpu: str, expected_us: float) -> None:
    cal = calibration("trtllm")
    g = resolve_gpu(gpu)
    args = dict(m=128, n=5120, k=5120, weights_dtype="fp8", eager=False)
    added = gemm_seconds(g, cal, **args) - gemm_seconds(g, _without_quant(cal), **args)
    assert added * 1e6 == pytest.approx(expected_us, rel=1e-4)


def test_only_per_tensor_fp8_pays_it() -> None:
    cal = calibration("trtllm")
    g = resolve_gpu("b200")
    for kwargs in (dict(weights_dtype="bf16"), dict(weights_dtype="nvfp4"), dict(weights_dtype="fp8", block=True)):
        args = dict(m=64, n=4096, k=4096, eager=False, **kwargs)
        assert gemm_seconds(g, cal, **args) == gemm_seconds(g, _without_quant(cal), **args)
    # a GPU without fp8 tensor cores runs fp8 weights as 16-bit GEMMs: no fp8 activations to quantize
    a100 = resolve_gpu("a100-80gb")
    args = dict(m=64, n=4096, k=4096, weights_dtype="fp8", eager=False)
    assert gemm_seconds(a100, cal, **args) == gemm_seconds(a100, _without_quant(cal), **args)


def test_tensorrt_engines_release_runs_no_quantization_kernel() -> None:
    # trtllm@0.17's TensorRT engines fuse the static quantize into the kernel before the GEMM
    v017 = calibration("trtllm@0.17")
    assert v017.fp8_quant_s == 0.0 and v017.blackwell_fp8_quant_s == 0.0
    assert v017.fp8_mem_eff_scale == 1.0 and v017.fp8_absorbed_mem_eff_scale is None
    assert v017.fp8_eff_scale == 0.8318  # the figure its rows were scored with before this term


def test_block_scaled_and_grouped_experts_keep_the_absorbed_streaming_share() -> None:
    cal = calibration("trtllm")
    assert cal.fp8_mem_eff_scale > 0.95  # per-tensor fp8 weights now stream near the 16-bit share
    assert cal.fp8_absorbed_mem_eff_scale == 0.7315  # the share fitted before, which absorbs their quantization
    g = resolve_gpu("b200")
    args = dict(m=16, n=7168, k=7168, weights_dtype="fp8", eager=False)
    block = gemm_seconds(g, cal, block=True, **args)
    # the memory-bound block-fp8 GEMM moves its fp8 weights at the absorbed share: raising it makes it faster
    faster = gemm_seconds(g, replace(cal, fp8_absorbed_mem_eff_scale=cal.fp8_mem_eff_scale), block=True, **args)
    assert faster < block


def test_grid_case_it_was_built_for() -> None:
    # Qwen3-32B on 2 x B200, TensorRT-LLM, fp8 weights and KV, batch 128 at 2,048: aiconfigurator's GEMMs take
    # 7.87 ms of the 12.85 ms step (each per-tensor fp8 GEMM ~11 us above the kernel alone: its quantize tables'
    # computescale + scale_matrix); kvplan's GEMMs were 4.89 ms (ln -0.48; step 9.50 ms, ln -0.30), now 6.85 ms
    # (ln -0.14; step 11.46 ms, ln -0.11): the rest is the 25,600-wide gate/up GEMM, 39.6 us against 47.8
    data = json.loads((ROOT / "benchmarks" / "data" / "aiconfigurator_grid.json").read_text())
    case = next(c for c in data["cases"] if c["model"] == "qwen3-32b" and c["gpu"] == "b200"
                and c["engine"] == "trtllm" and c["tp"] == 2)  # fmt: skip
    aic_gemm_ms = sum(v for k, v in case["aic_generation_ops_ms"].items() if k.endswith("_gemm"))
    assert aic_gemm_ms == pytest.approx(7.865, abs=0.01)
    spec = resolve_model("qwen3-32b")
    flops = step_flops(spec, 2048, phase="decode", batch=128, tp=2).attention
    t = step_latency(spec, resolve_gpu("b200"), 2048, phase="decode", batch=128, tp=2, kv_dtype_name="fp8",
                     weights_dtype="fp8", attention_flops=flops, constants=calibration("trtllm"))  # fmt: skip
    assert abs(math.log(t.gemm * 1e3 / aic_gemm_ms)) < 0.15
    assert abs(math.log(t.total * 1e3 / case["aic_tpot_ms"])) < 0.15


def test_fit_reproduces_the_pasted_constants() -> None:
    import fp8_quant_compare as fq

    pytest.importorskip("numpy")
    tables = fq.load()
    for engine in fq.ENGINES:
        fields = fq.fit(tables, engine)
        cal = calibration(engine)
        for name, value in fields.items():
            assert getattr(cal, name) == pytest.approx(value, rel=0.01), (engine, name)
    errors = {name: med for name, _, med, _ in fq.table_errors(tables, {e: fq.fit(tables, e) for e in fq.ENGINES})}
    assert all(med < 0.08 for name, med in errors.items() if "trtllm" in name)


def test_docs_block_is_what_the_script_prints() -> None:
    import fp8_quant_compare as fq

    pytest.importorskip("numpy")
    doc = (ROOT / "docs" / "cost.md").read_text(encoding="utf-8")
    block = doc.split("<!-- fp8_quant_compare:begin -->\n", 1)[1].split("\n<!-- fp8_quant_compare:end -->", 1)[0]
    assert block == "```text\n" + fq.render(fq.load()) + "\n```"

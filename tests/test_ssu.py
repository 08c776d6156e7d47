"""vLLM's Mamba2 decode state update at its measured share of the bandwidth (``Calibration.ssu_mem_eff``,
:func:`kvplan.latency._ssu_split`, fitted by ``benchmarks/fit_ssu.py`` on vLLM's own timings of
``selective_state_update`` at its launch heuristic)."""

from __future__ import annotations

import json
import statistics

import pytest

from kvplan import latency
from kvplan.catalog import load_bundled
from kvplan.cost import phase_cost
from kvplan.engines import latency_calibration
from kvplan.engines.vllm import CALIBRATION
from kvplan.hardware import resolve_gpu
from tests.benchmods import bench_module

NANO = "nemotron-3-nano-30b-a3b"  # 23 Mamba2 layers: 64 heads x 64 (d_inner 4,096), d_state 128, fp32 SSM state
MAMBA_LAYERS = 23
SSM_FP32_TP2 = 4096 // 2 * 128 * 4  # one sequence's SSM state on one of two ranks: 1,048,576 B


def _ctx(engine: str, gpu: str, *, tp: int = 2):  # noqa: ANN202
    spec = load_bundled(NANO)
    return latency._make_ctx(spec, resolve_gpu(gpu), tp=tp, weights_dtype="fp8", cal=latency_calibration(engine),
                             eager=False)  # fmt: skip


def _decode_s(gpu: str, batch: int, *, engine: str = "vllm@0.16", ssm: str | None = None) -> float:
    return phase_cost(load_bundled(NANO), resolve_gpu(gpu), 2560, phase="decode", batch=batch, tp=2,
                      weights_dtype="fp8", engine=engine, mamba_ssm_cache_dtype=ssm).time_s  # fmt: skip


def test_the_fit_gives_the_constant() -> None:
    """fit_ssu.py's pooled median over both tables' bandwidth-bound points is the constant vLLM's rules carry; every
    point was slower than attn_decode_mem_eff priced it."""
    fit = bench_module("fit_ssu")
    data = json.loads(fit.DATA.read_text())
    launch = CALIBRATION.graph_kernel_s
    got = [s for table in data["tables"] for _, s in fit.shares(table, launch)]
    assert len(got) == 13
    assert round(statistics.median(got), 3) == CALIBRATION.ssu_mem_eff == 0.603
    assert max(got) < CALIBRATION.attn_decode_mem_eff
    b200 = next(t for t in data["tables"] if t["gpu"] == "b200")
    assert fit.errors(b200, launch, 0.603)[0] < fit.errors(b200, launch, CALIBRATION.attn_decode_mem_eff)[0] / 2


def test_split_is_the_fp32_ssm_state_under_vllm_on_hopper_and_blackwell() -> None:
    """The SSM state of a Mamba2 layer (d_state 128, fp32) moves at ssu_mem_eff under vLLM's constants on B200 and H200;
    nothing under TensorRT-LLM's or SGLang's (its port launches another geometry, untimed), nor on an A100."""
    kind = load_bundled(NANO).kind("mamba2")
    assert latency._ssu_split(_ctx("vllm@0.16", "b200"), kind) == (SSM_FP32_TP2, 0.603)
    assert latency._ssu_split(_ctx("vllm", "h200"), kind) == (SSM_FP32_TP2, 0.603)
    for engine, gpu in (("trtllm", "b200"), ("sglang", "b200"), ("vllm@0.16", "a100-80gb")):
        assert latency._ssu_split(_ctx(engine, gpu), kind) == (0, 0.0)
    assert latency._ssu_split(_ctx("vllm@0.16", "b200"), load_bundled(NANO).kind("full")) == (0, 0.0)


def test_decode_step_prices_the_fp32_state_at_the_measured_share() -> None:
    """Nemotron 3 Nano on 2 x B200, 512 sequences: an fp32 SSM state (timed) against an fp16 one (not timed, so at
    attn_decode_mem_eff): the step differs by 23 layers x 2 (read, write) x 512 x (1,048,576 B / (7,700 GB/s x 0.603)
    - 524,288 B / (7,700 GB/s x 0.8422)) = 3.41 ms; nothing else in the step moves."""
    bw = 7700e9
    extra = MAMBA_LAYERS * 2 * 512 * (SSM_FP32_TP2 / (bw * 0.603) - SSM_FP32_TP2 / 2 / (bw * 0.8422))
    assert _decode_s("b200", 512) - _decode_s("b200", 512, ssm="float16") == pytest.approx(extra, rel=1e-9)
    assert extra == pytest.approx(3.41e-3, abs=0.01e-3)


def test_elsewhere_the_state_keeps_the_attention_share() -> None:
    """On an A100 (not timed) the two states differ by their bytes at attn_decode_mem_eff alone."""
    gpu = resolve_gpu("a100-80gb")
    extra = MAMBA_LAYERS * 2 * 64 * (SSM_FP32_TP2 / 2) / (gpu.bandwidth_gbps * 1e9 * CALIBRATION.attn_decode_mem_eff)
    assert _decode_s("a100-80gb", 64) - _decode_s("a100-80gb", 64, ssm="float16") == pytest.approx(extra, rel=1e-9)


def test_recurrent_decode_s_splits_the_same_way() -> None:
    """_recurrent_decode_s (the comparison scripts' one-layer price) gives what the step charges a Mamba2 layer."""
    c = _ctx("vllm@0.16", "b200")
    spec = c.spec
    kind = spec.kind("mamba2")
    from kvplan.memory import recurrent_state_bytes

    per_seq = recurrent_state_bytes(spec, kind, tp=2)
    conv = per_seq - SSM_FP32_TP2
    want = (2 * 8 * conv / (c.bw * CALIBRATION.attn_decode_mem_eff) + 2 * 8 * SSM_FP32_TP2 / (c.bw * 0.603)
            + 2 * c.kernel_s)  # fmt: skip
    assert latency._recurrent_decode_s(c, kind, 8 * per_seq) == pytest.approx(want, rel=1e-12)

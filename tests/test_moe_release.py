"""trtllm@0.20's own Hopper grouped-expert curve (TensorRT-LLM 1.0.0rc3's CUTLASS grouped GEMMs, fitted by
benchmarks/fit_moe_release.py on aiconfigurator 0.4.0's tables): which rule sets carry it, where it prices the experts
slower than trtllm@1.3 and by how much, one point by hand, and the fit against the checked-in points."""

import math
from dataclasses import replace

import pytest

from kvplan import latency
from kvplan.engines import get_engine, trtllm
from tests.benchmods import bench_module

fit = bench_module("fit_moe_release")
moe_compare = bench_module("moe_compare")


@pytest.fixture(scope="module")
def points() -> list[list]:
    return fit.load()


def grouped(gpu: str, release: str | None, *, model: str = "qwen3-235b-a22b", dtype: str = "fp8", tp: int = 1,
            ep: int = 8, tokens: int) -> float:  # fmt: skip
    return moe_compare.grouped_seconds(gpu, "trtllm", model=model, dtype=dtype, tp=tp, ep=ep, tokens=tokens,
                                       balanced=False, release=release, busiest=True)  # fmt: skip


def test_the_rule_set_picks_its_constants():
    old, new, v017 = (get_engine(n).calibration for n in ("trtllm@0.20", "trtllm@1.3", "trtllm@0.17"))
    assert old is trtllm.V0_20_CALIBRATION and new is trtllm.CALIBRATION is get_engine("trtllm").calibration
    assert (old.hopper_moe_peak_eff, old.hopper_moe_half_tokens) == (0.58, 50.0)
    # nothing else differs from the 1.3.0rc20 fit; trtllm@1.3 and the TensorRT-engine release have no such curve
    assert old == replace(new, version=old.version, hopper_moe_peak_eff=0.58, hopper_moe_half_tokens=50.0)
    assert "1.0.0rc3" in old.version and new.hopper_moe_peak_eff is None and v017.hopper_moe_peak_eff is None
    assert latency.calibration("trtllm@0.20") is old


def test_slower_than_1_3_where_the_tables_say_so(points: list[list]):
    # Qwen3-235B-A22B fp8 EP 8 on H200, power law 1.2: the tables' ratio grows with the tokens
    measured = {p[6]: p[7] / p[8] for p in points if p[:6] == ["h200", "fp8", "qwen3-235b-a22b", 1, 8, "power_law_1.2"]}
    assert measured[16384] > 1.25 and measured[4096] > 1.2 and abs(measured[8] - 1) < 0.1
    ratio = {t: grouped("h200", "0.20", tokens=t) / grouped("h200", None, tokens=t) for t in (8, 4096, 16384)}
    assert ratio[16384] > 1.2 and ratio[4096] > 1.15
    assert ratio[8] == pytest.approx(1.0, abs=0.02)  # a few tokens an expert: the weights' read, the same kernels
    # Blackwell: not fitted (1.0.0rc6 tables), the same as trtllm@1.3
    assert grouped("b200", "0.20", tokens=4096) == grouped("b200", None, tokens=4096)


def test_hand_checked_point():
    # Mixtral 8x7B fp8, TP 1 on H200, 16,384 tokens: all 8 experts, 32,768 routed rows (4,096 an expert); compute-bound
    # FLOPs 2 x 32768 x (3 x 4096 x 14336) = 1.1545e13; peak 1979 TFLOP/s x fp8_eff_scale 0.9492
    # curve 0.58 x 4096 / 4146 x 14336 / (14336 + 463.8) = 0.55478; 1.1545e13 / (1.8785e15 x 0.55478) = 11.078 ms
    # + moe_layer_s 25.3 us = 11.103 ms (trtllm@1.3: 0.7474 x 4096 / 4153.52 x 0.96866 = 0.71394, 8.634 ms); the tables
    # (power law 1.2 / 1.01): 1.0.0rc3 10.95 / 10.51 ms, 1.3.0rc20 8.127 / 8.353 ms
    cal = trtllm.CALIBRATION
    flops = 2 * 32768 * 3 * 4096 * 14336
    curve = 0.58 * 4096 / (4096 + 50) * 14336 / (14336 + cal.moe_half_width)
    want = flops / (1979e12 * cal.fp8_eff_scale * curve) + cal.moe_layer_s
    assert want == pytest.approx(11.103e-3, rel=1e-3)
    got = grouped("h200", "0.20", model="mixtral-8x7b", ep=1, tokens=16384)
    assert got == pytest.approx(want, rel=1e-9)
    newest = grouped("h200", None, model="mixtral-8x7b", ep=1, tokens=16384)
    assert newest == pytest.approx(8.634e-3, rel=1e-3)


def test_the_constants_are_the_fit_on_the_checked_in_points(points: list[list]):
    # one grid step either way of each constant fits the power-law 1.2 points no better (fit_moe_release.py)
    fitted = [p for p in points if p[5] == fit.FIT_ROUTING]
    assert len(fitted) == 1050 and len(points) == 2100
    newest = [fit.priced(p, release=None) for p in fitted]
    cal = latency.calibration("trtllm@0.20")
    held = {n: getattr(cal, n) for n in fit.GRIDS}
    best = fit.score(fit.residuals(fitted, newest, held))
    for name, grid in fit.GRIDS.items():
        i = grid.index(held[name])
        for v in (grid[i - 1], grid[i + 1]):
            assert fit.score(fit.residuals(fitted, newest, {**held, name: v})) >= best
    # and the measured release ratio is matched: median |ln| 0.067 (the 1.3 curve: 0.115)
    assert best[0] == pytest.approx(0.067, abs=0.001)
    before = {"hopper_moe_peak_eff": cal.moe_peak_eff, "hopper_moe_half_tokens": cal.moe_half_tokens}
    assert fit.score(fit.residuals(fitted, newest, before))[0] == pytest.approx(0.115, abs=0.001)
    assert all(math.isfinite(x) for x in newest)

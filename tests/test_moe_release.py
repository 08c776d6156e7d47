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
    own = {"hopper_moe_peak_eff": 0.6, "hopper_moe_fp8_peak_eff": 0.56, "hopper_moe_half_tokens": 50.0}
    assert {n: getattr(old, n) for n in own} == own
    # nothing else differs from the 1.3.0rc20 fit; trtllm@1.3 has no such curve
    assert old == replace(new, version=old.version, **own)
    assert "1.0.0rc3" in old.version and new.hopper_moe_peak_eff is None
    # the TensorRT-engine release takes it too, its fp8 share restated at its own fp8 compute scale (0.8318):
    # 0.56 x 0.9492 / 0.8318 = 0.63903
    assert "1.0.0rc3" in v017.version and v017.fp8_eff_scale == 0.8318 and new.fp8_eff_scale == 0.9492
    assert (v017.hopper_moe_peak_eff, v017.hopper_moe_half_tokens) == (0.6, 50.0)
    assert v017.hopper_moe_fp8_peak_eff == pytest.approx(0.63903, abs=1e-5)
    assert latency.calibration("trtllm@0.20") is old


def test_slower_than_1_3_where_the_tables_say_so(points: list[list]):
    # Qwen3-235B-A22B fp8 EP 8 on H200, power law 1.2: the tables' ratio grows with the tokens
    measured = {p[6]: p[7] / p[8] for p in points if p[:6] == ["h200", "fp8", "qwen3-235b-a22b", 1, 8, "power_law_1.2"]}
    assert measured[16384] > 1.25 and measured[4096] > 1.2 and abs(measured[8] - 1) < 0.1
    ratio = {t: grouped("h200", "0.20", tokens=t) / grouped("h200", None, tokens=t) for t in (8, 4096, 16384)}
    assert ratio[16384] > 1.25 and ratio[4096] > 1.2  # 1.321, 1.287
    assert ratio[8] == pytest.approx(1.0, abs=0.02)  # a few tokens an expert: the weights' read, the same kernels
    # 16-bit experts slowed less than fp8 ones (Mixtral 8x7B TP 1, 16,384 tokens: the tables x1.25, kvplan x1.243)
    sixteen = [grouped("h200", r, model="mixtral-8x7b", dtype="bfloat16", ep=1, tokens=16384) for r in ("0.20", None)]
    assert sixteen[0] / sixteen[1] == pytest.approx(1.243, abs=0.002)
    # Blackwell: not fitted (1.0.0rc6 tables), the same as trtllm@1.3
    assert grouped("b200", "0.20", tokens=4096) == grouped("b200", None, tokens=4096)


def test_hand_checked_point():
    # Mixtral 8x7B fp8, TP 1 on H200, 16,384 tokens: all 8 experts, 32,768 routed rows (4,096 an expert); compute-bound
    # FLOPs 2 x 32768 x (3 x 4096 x 14336) = 1.1545e13; peak 1979 TFLOP/s x fp8_eff_scale 0.9492
    # curve (fp8) 0.56 x 4096 / 4146 x 14336 / (14336 + 463.8) = 0.53591; 1.1545e13 / (1.8785e15 x 0.53591) = 11.468 ms
    # + moe_layer_s 25.3 us = 11.493 ms (trtllm@1.3: 0.7474 x 4096 / 4153.52 x 0.96866 = 0.71394, 8.634 ms); the tables
    # (power law 1.2 / 1.01): 1.0.0rc3 10.95 / 10.51 ms, 1.3.0rc20 8.127 / 8.353 ms
    cal = trtllm.CALIBRATION
    flops = 2 * 32768 * 3 * 4096 * 14336
    curve = 0.56 * 4096 / (4096 + 50) * 14336 / (14336 + cal.moe_half_width)
    want = flops / (1979e12 * cal.fp8_eff_scale * curve) + cal.moe_layer_s
    assert want == pytest.approx(11.493e-3, rel=1e-3)
    got = grouped("h200", "0.20", model="mixtral-8x7b", ep=1, tokens=16384)
    assert got == pytest.approx(want, rel=1e-9)
    newest = grouped("h200", None, model="mixtral-8x7b", ep=1, tokens=16384)
    assert newest == pytest.approx(8.634e-3, rel=1e-3)


def test_the_constants_are_the_fit_on_the_checked_in_points(points: list[list]):
    # one grid step either way of each constant fits its compute-bound power-law 1.2 points no better
    # (fit_moe_release.py: the 16-bit share on the bfloat16 points, the fp8 one on the fp8 points, half tokens on all)
    assert len(points) == 2100
    fitted = [p for p in points if p[5] == fit.FIT_ROUTING and fit.compute_bound(p)]
    assert len(fitted) == 432
    newest = [fit.priced(p, release=None) for p in fitted]
    cal = latency.calibration("trtllm@0.20")
    held = {n: getattr(cal, n) for n in fit.GRIDS}
    for name, grid in fit.GRIDS.items():
        mine = [(p, s) for p, s in zip(fitted, newest, strict=True) if fit.DTYPES.get(name, p[1]) == p[1]]
        pts, new = [p for p, _ in mine], [s for _, s in mine]
        best = fit.score(fit.residuals(pts, new, held))
        i = grid.index(held[name])
        for v in (grid[i - 1], grid[i + 1]):
            assert fit.score(fit.residuals(pts, new, {**held, name: v})) >= best, (name, v)
    # and the measured release ratio is matched there: median |ln| 0.058 (the 1.3 curve: 0.223)
    assert fit.score(fit.residuals(fitted, newest, held))[0] == pytest.approx(0.058, abs=0.001)
    assert fit.score(fit.residuals(fitted, newest, fit.newest_curve()))[0] == pytest.approx(0.223, abs=0.001)
    assert all(math.isfinite(x) for x in newest)


def test_a_memory_bound_point_is_not_fitted(points: list[list]):
    # Qwen3-235B-A22B fp8 EP 8 on H200 at 8 tokens: the weights' read sets kvplan's time, the curve does not
    few = next(p for p in points if p[:7] == ["h200", "fp8", "qwen3-235b-a22b", 1, 8, "power_law_1.2", 8])
    many = next(p for p in points if p[:7] == ["h200", "fp8", "qwen3-235b-a22b", 1, 8, "power_law_1.2", 16384])
    assert not fit.compute_bound(few) and fit.compute_bound(many)


@pytest.mark.parametrize(("gpu", "dtype"), [("h200", "fp8"), ("h100-sxm", "fp8"), ("h200", "bfloat16")])
def test_the_tensorrt_engine_release_prices_experts_as_trtllm_0_20(gpu: str, dtype: str):
    # Mixtral 8x7B TP 1, 9,345 tokens (the MLPerf H200 Offline steady step) and 16,384: compute-bound, so the seconds
    # are the curve's, the same as trtllm@0.20's (fp8: 1979e12 x 0.8318 x 0.63903 = 1979e12 x 0.9492 x 0.56)
    for tokens in (9345, 16384):
        v017, v020, newest = (grouped(gpu, r, model="mixtral-8x7b", dtype=dtype, ep=1, tokens=tokens)
                              for r in ("0.17", "0.20", None))  # fmt: skip
        assert v017 == pytest.approx(v020, rel=1e-9)
        assert v017 > newest * 1.2  # 1.0.0rc3's experts: x1.25-1.33 of 1.3.0rc20's curve here
    # H200 fp8 at 9,345 tokens: 2 x 18,690 rows x (3 x 4096 x 14336) / (1979e12 x 0.9492 x 0.56 x 2336.25 / 2386.25
    # x 14336 / 14799.8) + 25.3 us = 6.626 ms (the 1.3 curve: 4.986 ms)
    if (gpu, dtype) == ("h200", "fp8"):
        assert grouped(gpu, "0.17", model="mixtral-8x7b", ep=1, tokens=9345) == pytest.approx(6.626e-3, rel=1e-3)
    # Blackwell keeps the 1.3.0rc20 curve (no older table was fitted): 16-bit experts as trtllm@1.3's
    b200 = [grouped("b200", r, model="mixtral-8x7b", dtype="bfloat16", ep=1, tokens=16384) for r in ("0.17", None)]
    assert b200[0] == pytest.approx(b200[1], rel=1e-9)

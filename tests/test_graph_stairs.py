"""The requests' own TPOT tail across a CUDA-graph size (kvplan.tpot_tail.Life.stairs_at, kvplan.serving._graph_jumps)
and the own life's least crossing where the decode step drops (kvplan.serving._least_fixed_point), stop 29."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from kvplan import serving
from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.engines import Settings
from kvplan.hardware import resolve_gpu
from kvplan.serving import Lengths, _graph_jumps, _least_fixed_point, serve
from kvplan.tpot_tail import Life


def _life(n: float, jumps: tuple = ()) -> Life:
    return Life(steps=999, mean_step_s=0.05, decode_step_s=0.04, slope_s=1e-5, others=n, rate_rps=5.0,
                graph_jumps=jumps, step_batch=n)  # fmt: skip


def test_stairs_by_hand():
    """n = 300 decoding, a size 30 above with a 10 ms rise: the p99 life's mean count is 300 + 2.3263 sqrt(200) =
    332.9, sqrt(100) = 10 about it within the life, so Phi(0.29) = 0.614 of its steps are past the size; stretched by
    t / d = 1.25: +7.68 ms. Past the size (the mean step already padded) nothing is added; a size far above adds
    nothing; the p50 life's share, Phi(-3) x 10 ms x 1.25, is 17 us."""
    life = _life(300.0, ((30.0, 0.010),))
    share = NormalDist().cdf((2.3263 * math.sqrt(200) - 30) / 10)
    assert life.stairs_at(0.99) == pytest.approx(0.010 * share * 1.25, rel=1e-4)
    assert life.stairs_at(0.99) == pytest.approx(0.00768, abs=2e-5)
    assert life.stairs_at(0.5) == pytest.approx(0.010 * NormalDist().cdf(-3) * 1.25, rel=1e-4)
    assert _life(300.0, ((-5.0, 0.010),)).stairs_at(0.99) == pytest.approx(0.0, abs=1e-12)
    assert _life(300.0, ((200.0, 0.010),)).stairs_at(0.99) < 1e-12
    plain = _life(300.0)
    assert plain.stairs_at(0.99) == 0.0
    assert life.tpot_at(0.99) == pytest.approx(plain.tpot_at(0.99) + life.stairs_at(0.99))


def test_stairs_rise_with_the_count_and_stay_below_the_rise():
    """The share of a life's steps past a size rises continuously with the count as it nears the size, and the TPOT
    added never passes the rise itself (stretched): where a linear slope through the jump had no bound."""
    size, jump = 1024.0, 0.0107
    added = [_life(n, ((size - n, jump),)).stairs_at(0.99) for n in range(900, 1025)]
    assert all(b >= a for a, b in zip(added, added[1:], strict=False))
    assert max(b - a for a, b in zip(added, added[1:], strict=False)) < 0.05 * jump
    assert added[-1] < jump * 1.25


def _trtllm(sizes: tuple[int, ...]):
    return serving.steps_only(setup(load_bundled("llama-3.1-8b"), resolve_gpu("h100-sxm"), engine="trtllm",
                                    kv_dtype_name="fp8", settings=Settings(cuda_graph_batch_sizes=sizes,
                                                                           max_num_seqs=512)))  # fmt: skip


def test_which_graph_sizes_are_stairs():
    """TensorRT-LLM pads to the next captured size: with sizes 64, 120, 128, 256 the gap above 128 (128 sequences) is
    past the reach (5 sqrt(128) = 57), so 128 is a stair, and so is 64; 120 and 128 are 8 apart (within 5 sqrt(120)),
    so 120's padding stays in the slope. Only sizes within the reach of the batch (5 sqrt(110) = 52 of 110) are
    listed, each with the step's rise."""
    s = _trtllm((64, 120, 128, 256))
    ctx = 2048
    jumps = _graph_jumps(s, n=110.0, context=ctx, ep=False)
    assert [round(110.0 + off) for off, _ in jumps] == [64, 128]  # 64: 56 below 120, past 5 sqrt(64) = 40
    rise = jumps[1][1]
    assert rise == pytest.approx(serving._step(s, n=128 + 1e-6, p=0, context=ctx)
                                 - serving._step(s, n=128.0, p=0, context=ctx))  # fmt: skip
    assert rise > 0
    assert _graph_jumps(s, n=20.0, context=ctx, ep=False) == ()  # 64 past 20 + 5 sqrt(20) = 42
    # vLLM's sizes every 8: none is a stair
    v = serving.steps_only(setup(load_bundled("llama-3.1-8b"), resolve_gpu("h100-sxm"), engine="vllm"))
    assert _graph_jumps(v, n=110.0, context=ctx, ep=False) == ()


def test_the_p99_is_continuous_across_a_graph_size():
    """Llama 3.1 8B on one H100 under TensorRT-LLM (FP8 KV) padding to 64, 128 or 256 sequences, 128 in / 4,096 out:
    as the rate brings the batch up to 128 the requests' own p99 TPOT rises by less than 3 % for each 1 % of rate and
    never falls. On main at stop 28 it rose 3.6 % in one step (14.83 -> 15.37 ms at 1.954 req/s, where the secant
    over n +- 2 sqrt(n) took the whole padding jump in) and fell 1.5 % where the secant let it go again past the size
    (18.51 -> 18.23 ms at 2.291 req/s); the busy period of a long life multiplies the same jump (DeepSeek-R1 in
    test_mlperf_streaming). The mean step's own jump where its root passes 128 (121.7 -> 131.2 sequences) is the
    steady state's, not the tail's."""
    s = _trtllm((64, 128, 256))
    inp, out = Lengths.of(128), Lengths.of(4096)
    p99, batch = [], []
    rate = 1.7
    while rate < 2.4:
        r = serve(s, rate_rps=rate, input_len=inp, output_len=out, with_max_rate=False, with_p90=False)
        p99.append(r.tpot_p99_s)
        batch.append(r.step_batch)
        rate *= 1.01
    assert batch[0] < 100 and batch[-1] > 150  # the scan crosses the size
    assert all(b >= a for a, b in zip(p99, p99[1:], strict=False))
    for i in range(len(p99) - 1):
        if batch[i] <= 128 < batch[i + 1]:  # the steady state's root jumps past the size
            continue
        assert p99[i + 1] / p99[i] < 1.03


def test_least_crossing_past_a_leap():
    """f rises at 0.9 a unit, from 1 + 0.9 x, with a dip to 0.5 under the line on [8, 9): the least crossing is 8.
    Aitken's extrapolation from 5 leaps to 10, the root of the line, where f(10) = 10, and took it (stop 28); the walk
    up in steps of at most 5 % lands in the dip and brackets it."""

    def dipped(x: float) -> float:
        return 1 + 0.9 * x - (1.5 if 8 <= x < 9 else 0.0)

    assert _least_fixed_point(dipped, 5.0, 100.0) == pytest.approx(8.0, rel=1e-3)
    # without the dip the root of the line, in a few evaluations
    calls = []

    def line(x: float) -> float:
        calls.append(x)
        return 1 + 0.9 * x

    assert _least_fixed_point(line, 5.0, 100.0) == pytest.approx(10.0, rel=1e-4)
    assert len(calls) < 25


def test_least_crossing_at_a_drop():
    """f drops from x + 1 to x - 1 at 5 (a decode step that is faster for more rows, a kernel's tile choice): from 4.5
    Picard's step lands at 5.5, past the drop, where f(5.5) = 4.5, and that was returned (below the crossing and no
    point where f meets x); the crossing is the drop itself, 5."""

    def drop(x: float) -> float:
        return x + 1 if x < 5 else x - 1

    assert _least_fixed_point(drop, 4.5, 100.0) == pytest.approx(5.0, rel=1e-3)


def test_the_own_life_limits_hold():
    """One request (rate 0) is the static step; the mean TPOT at a low rate is within a step's rounding of the
    tagged step; saturation is reported as such."""
    s = _trtllm((64, 128, 256))
    inp, out = Lengths.of(2048), Lengths.of(1024)
    alone = serve(s, rate_rps=0.0, input_len=inp, output_len=out, with_max_rate=False)
    ctx = serving._decode_context(inp, out)
    assert alone.tpot_mean_s == pytest.approx(serving._step(s, n=1.0, p=0, context=ctx), rel=1e-9)
    assert alone.tpot_p99_s == alone.tpot_mean_s
    top = serving.max_rate(s, input_len=inp, output_len=out)
    assert serve(s, rate_rps=1.5 * top, input_len=inp, output_len=out, with_max_rate=False).saturated


def test_crossing_below_where_f_starts_under_the_line():
    """f(lo) < lo (the MLPerf Llama-2 H100 Server row: the own life's TPOT at the steps' n, 65.5 ms, under the mean
    step, 67.2 ms): the crossing is below, where Picard's iteration from lo runs for a rising f. x = 1 + x / 2 from 4:
    2 (until stop 29 f(4) = 3 was returned, one Picard step)."""
    assert _least_fixed_point(lambda x: 1 + x / 2, 4.0, 100.0) == pytest.approx(2.0, rel=1e-4)
    # a drop on the way down is a crossing too: f = x - 1 above 3, x + 0.5 below
    assert _least_fixed_point(lambda x: x - 1 if x >= 3 else x + 0.5, 4.0, 100.0) == pytest.approx(3.0, rel=1e-3)


def test_the_graph_table_runs_the_r1_server_case():
    """serving_sim.py --graph (docs/cost.md's table) at two rates on a short run: the columns, and kvplan's p99 under
    the padded steady state's and rising with the rate where the batch nears the size (5.1 -> 5.2 req/s: 59.2 ->
    64.6 ms with 8,000 requests; the simulated columns depend on the run's length, kvplan's do not). Until stop 30 at
    5.3 -> 5.4 req/s (57.2 -> 62.1 ms): since a balancer's release carries the prompts of its cycle
    (kvplan.serving._released_parts) the lower branch's mean step is longer (53.3 against 51.1 ms at 4.8 req/s; the
    simulation, which now runs the balancer's rule, 52.6 against its 55.6 without it) and kvplan's batch passes 128 a
    rank by 5.25 req/s, where the simulation's tips too (5.2 -> 5.3). At 5.3 -> 5.4 req/s, 54.3 -> 59.6 ms
    before stop 29's NVFP4 refit (fit_fp4.py after B200's own all-reduce latency; the R1 step itself has no
    all-reduce): its experts 0.45 % faster (fp4_moe_eff_scale 0.2464 -> 0.2475) raise the Offline row's score x1.0873 ->
    x1.0922, so the step residual every step here carries, step x (ratio - 1), grows 9.78 -> 10.33 ms, 0.55 ms against
    the experts' -0.10: at 5.3 req/s 119.0 -> 120.3 sequences a rank, mean 51.4 -> 51.9 ms, and more of the p99 life's
    steps past the 128 a rank size (its stair)."""
    from tests.benchmods import bench_module

    lines = bench_module("serving_sim").compare_graph_size(1500, warmup=300, rates=(5.1, 5.2))
    assert lines[0].startswith("| req/s | simulated mean / p99 TPOT ms |") and len(lines) == 4
    p99 = [float(row.split("|")[5].split("/")[1]) for row in lines[2:]]
    assert p99 == pytest.approx([59.2, 64.6], abs=0.05)

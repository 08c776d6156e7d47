"""The attention-DP balancer's releases as steps (stop 30): TensorRT-LLM lets every rank's held context requests go
on the iteration its counter releases them (tensorrt_llm/_torch/pyexecutor/py_executor.py
``PyExecutor._balance_adp_requests``, the 1.x copies read), once a cycle (kvplan.dp_balance.release_cycle), each
release with the prompts of its cycle (kvplan.serving._released_parts); benchmarks/serving_sim.py runs the rule itself
(``_balancer_releases``) and pads a decode-only step to its busiest rank (model_engine.py ``_get_padded_batch``:
``new_batch_size = max(...)`` over the ranks' batch sizes, then ``_round_up_batch_size``)."""

from __future__ import annotations

import random
from collections import deque

import pytest

from kvplan import serving
from kvplan.dp_balance import release_cycle
from tests.benchmods import bench_module, published


def _cycle(a: float, d: int, t: int, w: int, *, random_spread: bool = True) -> float:
    return release_cycle(arrivals_per_iter=a, ranks=d, timeout_iters=t, batching_wait_iters=w,
                         random_spread=random_spread)  # fmt: skip


def test_release_cycle_limits() -> None:
    """A rate to zero: the timeout clock alone, T iterations (0 acts as 1); a rate far above the ranks: every rank has a
    prompt at the first iteration after a release, held W more: W + 1. Either spread."""
    for spread in (False, True):
        assert _cycle(0.0, 8, 9, 3, random_spread=spread) == pytest.approx(9.0, rel=1e-12)
        assert _cycle(0.0, 4, 50, 10, random_spread=spread) == pytest.approx(50.0, rel=1e-12)
        assert _cycle(0.0, 4, 0, 0, random_spread=spread) == pytest.approx(1.0, rel=1e-12)
        assert _cycle(1e4, 8, 9, 3, random_spread=spread) == pytest.approx(4.0, rel=1e-9)
        assert _cycle(1e4, 4, 50, 10, random_spread=spread) == pytest.approx(11.0, rel=1e-9)
    # the random spread needs more prompts to cover every rank than the even one: a longer cycle between the limits
    assert _cycle(1.0, 4, 50, 10, random_spread=True) > _cycle(1.0, 4, 50, 10, random_spread=False)


def test_balancer_rule_step_by_step() -> None:
    """serving_sim._balancer_releases by hand, 2 ranks, timeout_iters 3, batching_wait_iters 1: the timeout counter
    counts every iteration without a prompt on every rank, prompt or none, and releases at 3; a prompt on every rank
    resets it and the batching counter holds them one iteration; a rank with nothing decoding releases at once."""
    releases = bench_module("serving_sim")._balancer_releases
    counters = [0, 0]
    decoding = [[1], [1]]
    waiting: list[deque] = [deque(), deque()]
    assert not releases((3, 1), counters, waiting, decoding, cap=10) and counters == [1, 0]  # nothing waiting
    waiting[0].append("p")
    assert not releases((3, 1), counters, waiting, decoding, cap=10) and counters == [2, 0]
    assert releases((3, 1), counters, waiting, decoding, cap=10) and counters == [0, 0]  # the clock: released
    waiting[1].append("q")
    assert not releases((3, 1), counters, waiting, decoding, cap=10) and counters == [0, 1]  # every rank: wait W
    assert releases((3, 1), counters, waiting, decoding, cap=10) and counters == [0, 0]
    waiting[1].clear()
    assert releases((3, 1), counters, waiting, [[1], []], cap=10) and counters == [0, 0]  # a rank not decoding
    assert not releases((3, 1), counters, waiting, [[1], [1]], cap=1) and counters == [1, 0]  # no room: not "all"


@pytest.mark.parametrize(("a", "d", "t", "w"), [(0.3, 4, 9, 3), (1.0, 4, 50, 10), (0.2, 8, 9, 3), (3.0, 4, 9, 3)])
def test_release_cycle_against_the_rule_simulated(a: float, d: int, t: int, w: int) -> None:
    """The source's rule (serving_sim._balancer_releases) on Poisson arrivals of A an iteration, each to a rank drawn at
    random (the random spread), every rank decoding, 40,000 iterations (seeded): the mean iterations between releases
    within 2 % of kvplan.dp_balance.release_cycle's closed form (measured: 9.065 / 9.071, 18.909 / 18.833, 9.0 / 9.0,
    6.244 / 6.254)."""
    releases = bench_module("serving_sim")._balancer_releases
    rng = random.Random(7)
    counters = [0, 0]
    decoding = [[1] for _ in range(d)]
    waiting: list[deque] = [deque() for _ in range(d)]
    last, gaps = 0, []
    for it in range(1, 40001):
        clock = rng.expovariate(a)
        while clock < 1.0:  # the prompts that arrived during the iteration before, seen at this one
            waiting[rng.randrange(d)].append(it)
            clock += rng.expovariate(a)
        if releases((t, w), counters, waiting, decoding, cap=10**9):
            gaps.append(it - last)
            last = it
            for q in waiting:
                q.clear()
    assert sum(gaps) / len(gaps) == pytest.approx(_cycle(a, d, t, w), rel=0.02)


def test_a_decode_step_pads_to_its_busiest_rank() -> None:
    """kvplan.serving._step's ``rank_seqs``: the MLPerf DeepSeek-R1 B200 Server setup (8 attention-DP ranks, CUDA graphs
    of 128, 256, 384 and 512 a rank, padded), 960 decodes: a busiest rank of 129 pads every rank to 256 (the step as
    with 250), one of 120 to 128 (as kvplan's own ceil(960 / 8) = 120 gives): the padded rows run every GEMM and
    expert layer, so the first step is the longer."""
    pub, data = published()
    r = next(x for x in data["mlperf"] if x["model"] == "deepseek-v3" and x["scenario"] == "Server")
    with pub.mlperf_engine(r):
        s = pub._mlperf_setup(r)
        kw = {"n": 960.0, "p": 0, "context": 4723}
        mean = serving._step(s, **kw)
        assert serving._step(s, rank_seqs=120.0, **kw) == mean
        busiest = serving._step(s, rank_seqs=129.0, **kw)
        assert busiest == serving._step(s, rank_seqs=250.0, **kw) > 1.15 * mean


def test_the_balance_table_runs_and_the_busiest_rank_is_at_least_the_even_share() -> None:
    """serving_sim.py --balance (docs/cost.md's table) on a short run at one rate: a row per case and knob set, and in
    each the busiest rank's prompts per release, simulated and priced, at least the even ceil(K / ranks) (a rank holds
    at least that many of K prompts over the ranks, the pigeonhole)."""
    lines = bench_module("serving_sim").compare_balance(400, warmup=50, fractions=(0.3,))
    assert lines[0].startswith("| case | timeout / wait iters | rate (x max) |") and len(lines) == 2 + 4 + 1 + 2
    for row in lines[2:6]:
        cells = [c.strip() for c in row.split("|")[1:-1]]
        sim, priced, even = (float(x) for x in cells[7].split("/"))
        assert even <= sim + 1e-9 and even <= priced + 1e-9
        spread_sim, spread_priced, spread_even = (float(x) for x in cells[8].split(":")[1].split("/"))
        assert spread_even <= spread_sim + 1e-9 and spread_even <= spread_priced + 1e-9
    assert lines[-2].startswith("timeout / wait 50 / 10: TPOT |ln(kvplan / simulation)| median")

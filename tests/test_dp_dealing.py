"""How each engine deals new requests over its attention-DP ranks (kvplan.engines.base.Engine.dp_dealing) and the
busiest rank's prompts a step that kvplan.serving prices from it: even (vLLM, SGLang: kvplan.serving.busiest_share)
or the largest of the ranks' Poisson shares (TensorRT-LLM's dealing to the fewest active requests,
kvplan.serving.busiest_drawn)."""

from __future__ import annotations

import math

import pytest

from kvplan import serving
from kvplan.engines import Settings, get_engine
from tests.benchmods import bench_module


def test_dealing_rule_per_engine() -> None:
    """TensorRT-LLM deals to the fewest active requests (executor_request_queue.py _balance_requests_across_ranks);
    SGLang deals in turn (load_balance_method round_robin) and vLLM V1 to the lowest waiting x 4 + running, raised
    at once for the chosen rank, which spreads a step's arrivals: both even."""
    assert get_engine("trtllm").dp_dealing(Settings()) == "fewest_active"
    assert get_engine("trtllm").dp_dealing(Settings(attention_dp_balance=True)) == "fewest_active"
    assert get_engine("vllm").dp_dealing(Settings()) == "even"
    assert get_engine("sglang").dp_dealing(Settings()) == "even"


def _poisson(mean: float, k: int) -> float:
    return math.exp(k * math.log(mean) - mean - math.lgamma(k + 1)) if mean > 0 else float(k == 0)


@pytest.mark.parametrize("mean", [0.7, 37.5, 5000.0])
def test_busiest_drawn_of_one_rank_is_the_mean(mean: float) -> None:
    """One rank takes every arrival: E[max] of a single Poisson is its mean (5,000 starts the sum past 4,000 terms
    that are each 1, placed by lgamma)."""
    assert serving.busiest_drawn(mean, ranks=1) == pytest.approx(mean, rel=1e-12)
    assert serving.busiest_drawn(0.0, ranks=4) == 0.0


@pytest.mark.parametrize("mean", [2.0, 2000.0])
def test_busiest_drawn_of_two_ranks_by_brute_force(mean: float) -> None:
    """Two ranks, each Poisson at mean / 2: E[max(N_1, N_2)] summed over every pair within 14 standard deviations
    (at 2,000 about 1,000 + E|N_1 - N_2| / 2 = 1,000 + sqrt(2,000 / (2 pi)) = 1,017.8, the difference nearly
    normal)."""
    mu = mean / 2
    lo, hi = max(0, int(mu - 14 * math.sqrt(mu) - 20)), int(mu + 14 * math.sqrt(mu) + 20)
    weights = [_poisson(mu, k) for k in range(lo, hi + 1)]
    brute = sum(wi * wj * max(i, j) for i, wi in enumerate(weights, lo) for j, wj in enumerate(weights, lo))
    assert serving.busiest_drawn(mean, ranks=2) == pytest.approx(brute, rel=1e-9)
    if mean > 100:
        assert brute == pytest.approx(mu + math.sqrt(mean / (2 * math.pi)), rel=1e-4)


def test_trtllm_dealing_alone_lies_near_the_drawn_shares() -> None:
    """benchmarks/serving_sim.py --dealing: TensorRT-LLM's dealing (_deal_fewest_active) of Poisson arrivals, each
    request leaving a fixed number of steps after it was dealt, keeps the arrivals of a step as uneven as those of
    the step they replace: at 2 arrivals a step over 4 ranks the busiest rank takes 1.37 a step with arrivals
    (20,000 steps), near the largest of 4 Poisson shares (1.438) and far from the even split (1.061); so with prompts
    of 500-1,500 tokens, where the heap's token key decides."""
    sim_mod = bench_module("serving_sim")
    dealt = sim_mod.dealt_busiest(2.0, ranks=4, life=64, steps=20000)
    some = -math.expm1(-2.0)
    drawn, even = serving.busiest_drawn(2.0, ranks=4) / some, serving.busiest_share(2.0, ranks=4) / some
    assert (round(drawn, 3), round(even, 3)) == (1.438, 1.061)
    assert 0.9 * drawn < dealt < drawn and dealt > 1.2 * even
    varied = sim_mod.dealt_busiest(2.0, ranks=4, life=64, steps=20000, spread=0.5)
    assert 0.9 * drawn < varied < drawn and varied > 1.2 * even

"""An attention-DP prefill step priced over its prompt count (kvplan.serving._prefill_counts, stop 28).

The prompts that reach the replica during one step all enter the next (kvplan.serving._landed_together), so a
prefill step holds K of them, K Poisson with the mean arrivals of the step before. kvplan priced that step at the
mean count until stop 27 (the busiest rank's mean prompts, p / share over all ranks); the step is not linear in the
count (DeepSeek-V3 DP8 on H200, TensorRT-LLM: one prompt 191.9 ms, two on two ranks 238.1 ms, the step at the mean
1.375 prompts 228.8 ms), and benchmarks/serving_sim.py prices every step at its own count. Now the prefill step is
the mean over K of the step at K prompts, the busiest rank taking ceil(K / dp) of them where the engine deals evenly
(vLLM, SGLang) and the largest of dp uniform shares of K under TensorRT-LLM's dealing (kvplan.serving.busiest_given,
whose mean over a Poisson K is busiest_drawn, stop 27's figure).
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest

from kvplan import serving
from kvplan.capacity import setup
from kvplan.engines import Settings
from kvplan.serving import Lengths, busiest_drawn, busiest_given, serve, steps_only


@pytest.fixture
def mean_count():  # noqa: ANN201
    """The stop-27 pricing (the step at the mean prompt count) for the test's duration."""
    serving.forget_memos()
    serving.PREFILL_OVER_COUNTS = False
    yield
    serving.PREFILL_OVER_COUNTS = True
    serving.forget_memos()


def _deepseek_dp8():  # noqa: ANN202
    # benchmarks/serving_sim.py's DP case (--dp): DeepSeek-V3 FP8 on 8 x H200, attention DP8 + EP8, steps alone
    return steps_only(setup("deepseek-v3", "h200", engine="trtllm", tp=1, dp=8, ep=True, weights_dtype="fp8"))


@pytest.mark.parametrize(("ranks", "count"), [(r, k) for r in (2, 3, 4) for k in range(1, 7)])
def test_busiest_given_by_brute_force(ranks: int, count: int) -> None:
    """E[max share] over every one of the ranks^count equally likely deals, in exact fractions."""
    total = Fraction(0)
    for deal in itertools.product(range(ranks), repeat=count):
        total += max(deal.count(r) for r in range(ranks))
    assert busiest_given(count, ranks=ranks) == pytest.approx(float(total / ranks**count), rel=1e-12)


def test_busiest_given_by_hand() -> None:
    """8 ranks: two prompts share a rank with chance 1/8 (1.125); three: all distinct 8 x 7 x 6 / 512 = 336 / 512,
    all on one rank 8 / 512, else a pair: (336 + 2 x 168 + 3 x 8) / 512 = 1.359375. One rank takes every prompt."""
    assert busiest_given(1, ranks=8) == 1.0 and busiest_given(0, ranks=8) == 0.0
    assert busiest_given(2, ranks=8) == pytest.approx(1.125, rel=1e-12)
    assert busiest_given(3, ranks=8) == pytest.approx(696 / 512, rel=1e-12)
    assert busiest_given(7, ranks=1) == 7.0


@pytest.mark.parametrize(("mean", "ranks"), [(0.5, 4), (2.0, 8), (6.0, 4), (6.0, 16)])
def test_busiest_given_over_a_poisson_count_is_busiest_drawn(mean: float, ranks: int) -> None:
    """Independent Poisson shares of mean m / ranks are a Poisson K of mean m dealt uniformly: the mean over K of
    busiest_given is busiest_drawn (stop 27's figure), so the dealing's mean spread is unchanged."""
    mixed = sum(math.exp(-mean) * mean**k / math.factorial(k) * busiest_given(k, ranks=ranks) for k in range(1, 33))
    assert mixed == pytest.approx(busiest_drawn(mean, ranks=ranks), rel=1e-9)


@pytest.mark.parametrize("drawn", [False, True])
@pytest.mark.parametrize(
    ("after_decode", "after_busy", "share"),
    [
        (1e-6, 5e-6, 1e-5),
        (0.42, 2.41, 0.79),
        (3.0, 12.0, 1.0),
        (150.0, 180.0, 0.95),
        (150.0, 1000.0, 0.5),
        (1e-3, 2000.0, 0.9),
    ],
)
def test_prefill_counts_keep_the_mean(after_decode: float, after_busy: float, share: float, drawn: bool) -> None:
    """The weights sum to 1 and the mean prompt count over the prefill steps is the mixture's mean over K >= 1
    (whatever the bins and the merged tails): all ranks' tokens average p / share, as at the mean count. Two means
    far apart (150 and 1,000 prompts: each Poisson's mass at the other's window is below the smallest double) each
    keep theirs."""
    rows = serving._prefill_counts(after_decode, after_busy, share=share, ranks=8, prompt=1000, room=1e9, drawn=drawn)
    assert sum(w for w, _, _ in rows) == pytest.approx(1.0, rel=1e-12)
    some = (1 - share) * -math.expm1(-after_decode) + share * -math.expm1(-after_busy)
    mean = ((1 - share) * after_decode + share * after_busy) / some
    assert sum(w * tokens for w, _, tokens in rows) == pytest.approx(1000 * mean, rel=1e-9)
    assert len(rows) <= 32  # a bounded number of steps to price, however large the means (26 for 150 and 1,000)


def test_even_dealing_puts_the_ceiling_on_the_busiest_rank() -> None:
    """Dealt evenly (vLLM, SGLang) up to 8 prompts over 8 ranks the busiest rank has one; from 9, two; the rank's room
    caps its tokens."""
    rows = serving._prefill_counts(4.0, 4.0, share=0.4, ranks=8, prompt=1000, room=1e9, drawn=False)
    single = [(round(tokens), round(busiest)) for _, busiest, tokens in rows[:8]]
    assert single == [(1000 * k, 1000) for k in range(1, 9)]
    assert round(rows[8][1]) == 2000  # counts 9-10 and the tail above them (mean 9.6)
    capped = serving._prefill_counts(30.0, 30.0, share=1.0, ranks=8, prompt=1000, room=2500, drawn=False)
    assert max(busiest for _, busiest, _ in capped) == pytest.approx(2500, rel=1e-12)


def test_concave_step_priced_below_the_mean_count(mean_count) -> None:  # noqa: ANN001
    """DeepSeek-V3 DP8 TensorRT-LLM at 185 decodes (context 2,304): one 2,048-token prompt 191.9 ms, two on two
    ranks 238.1 ms, but the step at 1.375 prompts (one on the busiest rank) 228.8 ms: the step rises steeply just past
    one prompt's tokens in the expert layers, so the step at a fractional mean count lies above the mean of the steps
    at the counts around it (0.625 x 191.9 + 0.375 x 238.1 = 209.2 ms)."""
    s = _deepseek_dp8()
    kw = {"n": 185.0, "context": 2304}
    one, two = serving._step(s, p=2048, **kw), serving._step(s, p=2048, p_all=4096, **kw)
    at_mean = serving._step(s, p=2048, p_all=1.375 * 2048, **kw)
    assert [round(x * 1e3, 1) for x in (one, two, at_mean)] == [191.9, 238.1, 228.8]
    assert 0.625 * one + 0.375 * two < at_mean


def test_sim_operating_point_by_hand(mean_count) -> None:  # noqa: ANN001
    """benchmarks/serving_sim.py --dp, DeepSeek-V3 DP8 TensorRT-LLM at 4.48 req/s (0.6 of stop 27's rate): the
    simulation's steps average 185.2 decodes, 744 prompt tokens a mean step, a prefill step in 0.263 of them lasting
    211.6 ms, 81.13 ms in all. At that point kvplan's prefill step was 234.20 ms at the mean count (mean 87.22 ms,
    +7.5 %) and is 216.9 ms over the counts (82.63 ms, +1.8 %); the rest of the gap is the dealing (the simulation's
    busiest rank takes 1.015 prompts a prefill step, the uniform shares 1.07). Since stop 29 the busiest rank's whole
    prompts each attend to their own tokens (kvplan.serving._whole_prompts): 233.3 ms at the mean count, 215.7 ms
    over the counts (82.35 ms, +1.5 %)."""
    s = _deepseek_dp8()
    args = {"n": 185.2, "p": 744.0, "prompt": 2048, "chunk": 2048.0, "prefix": 0, "context": 2304, "ep": False,
            "room": 8192 - 185.2 / 8}  # fmt: skip
    decode, share, before = serving._dp_parts(s, **args)
    serving.PREFILL_OVER_COUNTS = True
    decode2, share2, after = serving._dp_parts(s, **args)
    assert (decode2, share2) == (decode, share)  # the chain and the decode step are the same
    assert round(share, 3) == 0.264
    assert (round(before * 1e3, 1), round(after * 1e3, 1)) == (233.3, 215.7)  # (234.2, 216.9) before stop 29
    assert round(((1 - share) * decode + share * after) * 1e3, 2) == 82.35


def test_one_prompt_a_step_is_the_mean_count_step(mean_count) -> None:  # noqa: ANN001
    """As the load vanishes every prefill step holds one prompt (K = 1): the two pricings meet at the step of one
    prompt on one rank."""
    s = _deepseek_dp8()
    args = {"n": 40.0, "p": 2048 * 1e-7, "prompt": 2048, "chunk": 2048.0, "prefix": 0, "context": 2304, "ep": False,
            "room": 8187.0}  # fmt: skip
    _, _, before = serving._dp_parts(s, **args)
    serving.PREFILL_OVER_COUNTS = True
    _, _, after = serving._dp_parts(s, **args)
    single = serving._step(s, n=40.0, p=2048, p_all=2048, context=2304)
    assert after == pytest.approx(single, rel=1e-6) and before == pytest.approx(single, rel=1e-6)


@pytest.mark.parametrize(
    ("model", "gpu", "dp", "prompt"), [("llama-3.1-8b", "h100-sxm", 1, 2048), ("qwen3-30b-a3b", "h100-sxm", 4, 20000)]
)
def test_one_rank_and_long_prompts_keep_the_mean_count_step(model: str, gpu: str, dp: int, prompt: int) -> None:
    """One rank has no prompt count to spread (kvplan.serving._mean_step never reaches _dp_parts); prompts longer
    than a rank's room run over several steps, whose count kvplan still takes at its mean: both unchanged."""
    s = setup(model, gpu, engine="trtllm", tp=1, dp=dp, ep=dp > 1, settings=Settings())
    inp, out = Lengths.of(prompt), Lengths.of(256)
    figures = []
    for flag in (False, True):
        serving.PREFILL_OVER_COUNTS = flag
        serving.forget_memos()
        r = serve(s, rate_rps=0.5, input_len=inp, output_len=out, with_max_rate=False)
        figures.append((r.tpot_mean_s, r.ttft_mean_s, r.batch))
    assert figures[0] == figures[1]

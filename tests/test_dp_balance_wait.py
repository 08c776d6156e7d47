"""The attention-DP balancer's holds in the TTFT (kvplan.dp_balance; TensorRT-LLM's ``attention_dp_config``
``enable_balance``, ``timeout_iters`` 50, ``batching_wait_iters`` 10 by default: tensorrt_llm/llmapi/llm_args.py
``AttentionDpConfig``; the rule in tensorrt_llm/_torch/pyexecutor/py_executor.py ``_balance_adp_requests``)."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest

from kvplan import serving
from kvplan.capacity import setup
from kvplan.dp_balance import balance_hold
from kvplan.engines import Settings, get_engine
from kvplan.serving import Lengths

EVERY_RANK_DECODING = 1e9  # sequences decoding: every rank has a generation request, the hold always applies


def _hold(  # noqa: ANN202
    a: float, d: int, t: int, w: int, decoding: float = EVERY_RANK_DECODING, *, random_spread: bool = False
):
    return balance_hold(arrivals_per_iter=a, ranks=d, decoding=decoding, timeout_iters=t, batching_wait_iters=w,
                        random_spread=random_spread)  # fmt: skip


def test_a_lone_prompt_with_every_rank_decoding_waits_out_the_timeout_clock() -> None:
    """No other prompt arrives (A -> 0), every rank decodes: no iteration sees a prompt on every rank, so the timeout
    counter (it counts every such iteration, prompt or none) releases every T = 50 iterations, and a prompt arriving
    at a random iteration waits 0 .. 49 of them, uniformly: mean 49 / 2 = 24.5; P(held > h) = (49 - h) / 50 <= 0.1
    from h = 44 (the p90), <= 0.01 only at h = 49 (the p99: 1 / 50 = 0.02 at h = 48)."""
    hold = _hold(0.0, 4, 50, 10)
    assert hold.mean_iters == pytest.approx(24.5, rel=1e-12)
    assert hold.at(0.9) == 44 and hold.at(0.99) == 49


def test_no_hold_where_a_rank_has_no_generation_request() -> None:
    """Rate to zero: the prompt lands on a rank with nothing decoding, ``all_ranks_have_gen_requests`` is False and
    the balancer releases it at once (the brief expected the timeout here; the source says otherwise)."""
    hold = _hold(0.0, 4, 50, 10, decoding=0.0)
    assert hold.applies == 0.0 and hold.mean_iters == 0.0 and hold.at(0.9) == 0
    # 2 sequences decoding on 4 ranks: P(N >= 4) for a Poisson N of mean 2 = 1 - e^-2 (1 + 2 + 2 + 4/3) = 0.142877
    assert _hold(0.0, 4, 50, 10, decoding=2.0).applies == pytest.approx(1 - math.exp(-2) * (1 + 2 + 2 + 4 / 3))


def test_high_rate_waits_the_batching_wait_only() -> None:
    """A prompts an iteration far above D: every rank has one at the first iteration after a release, which holds
    them W = 10 iterations and releases at the 11th; arrivals over those 11 intervals wait 10 .. 0: mean 5, p90 9
    (P(held > 9) = 1/11 <= 0.1). With batching_wait_iters 0 nothing waits."""
    hold = _hold(1e4, 8, 50, 10)
    assert hold.mean_iters == pytest.approx(5.0, rel=1e-9)
    assert hold.at(0.9) == 9
    assert _hold(1e4, 8, 50, 0).mean_iters == pytest.approx(0.0, abs=1e-9)


def test_hold_golden_by_hand() -> None:
    """D = 2 ranks, T = 2, W = 1, A = 0.5 prompts an iteration. K_x Poisson of mean 0.5 x: P(K_1 <= 1) = e^-0.5 x 1.5
    = 0.909796, P(K_1 = 0) = 0.606531, P(K_2 <= 1) = 2 e^-1 = 0.735759, P(K_2 = 0) = 0.367879.
    The cycle R: tau = 1 (K_1 >= 2, 0.090204) -> R = 2; tau = 2 (0.264241 - 0.090204 = 0.174037) -> R = 3; else R = 2
    (0.735759): E[R] = 2 x 0.825963 + 3 x 0.174037 = 2.174037.
    S(1) = (F_1(0) + F_1(1) - F_0(2)) / E[R] = (1 + 0.909796 - 0.367879) / 2.174037 = 0.709241;
    S(2) = (F_0(1) - F_0(2)) / E[R] = (0.606531 - 0.367879) / 2.174037 = 0.109773; S(3) = 0.
    Mean 0.709241 + 0.109773 = 0.819014 iterations; p90: P(held > 1) = 0.109773 > 0.1, P(held > 2) = 0: 2."""
    hold = _hold(0.5, 2, 2, 1)
    assert hold.survival == pytest.approx((1.0, 0.709241, 0.109773, 0.0), abs=2e-6)
    assert hold.mean_iters == pytest.approx(0.819014, abs=2e-6)
    assert hold.at(0.9) == 2


def _enumerated(a: float, d: int, t: int, w: int, top: int = 14) -> tuple[float, list[float]]:
    """The same quantities by brute force over every arrival pattern (X_1 .. X_{T+W} each 0 .. top, Poisson
    weights), straight from the source's rule: (mean hold, P(held >= h) for h = 0 ..)."""
    pmf = [math.exp(-a) * a**k / math.factorial(k) for k in range(top + 1)]
    held_total, count, at_least = 0.0, 0.0, [0.0] * (t + w + 2)
    for xs in itertools.product(range(top + 1), repeat=t + w):
        weight = math.prod(pmf[x] for x in xs)
        k, tau = 0, None
        for i, x in enumerate(xs, start=1):
            k += x
            if tau is None and k >= d:
                tau = i
        release = tau + w if tau is not None and tau <= t else t
        for i in range(1, release + 1):
            wait = release - i
            count += weight * xs[i - 1]
            held_total += weight * xs[i - 1] * wait
            for h in range(wait + 1):
                at_least[h] += weight * xs[i - 1]
    return held_total / count, [x / count for x in at_least]


@pytest.mark.parametrize(("a", "d", "t", "w"), [(0.5, 2, 2, 1), (1.3, 3, 2, 2), (0.2, 2, 3, 0), (2.0, 2, 1, 3)])
def test_hold_equals_brute_force_enumeration(a: float, d: int, t: int, w: int) -> None:
    mean, at_least = _enumerated(a, d, t, w)
    hold = _hold(a, d, t, w)
    assert hold.mean_iters == pytest.approx(mean, rel=1e-6)
    assert list(hold.survival) == pytest.approx(at_least[: len(hold.survival)], abs=1e-7)


def _enumerated_random(a: float, d: int, t: int, w: int, top: int = 5) -> tuple[float, list[float]]:
    """As :func:`_enumerated`, each rank's arrivals its own Poisson stream of ``a / d`` an iteration (the random
    spread): every rank has a prompt once each rank's count is >= 1."""
    per = a / d
    pmf = [math.exp(-per) * per**k / math.factorial(k) for k in range(top + 1)]
    held_total, count, at_least = 0.0, 0.0, [0.0] * (t + w + 2)
    for xs in itertools.product(range(top + 1), repeat=(t + w) * d):
        weight = math.prod(pmf[x] for x in xs)
        have, tau = [0] * d, None
        for i in range(t + w):
            for r in range(d):
                have[r] += xs[i * d + r]
            if tau is None and all(have):
                tau = i + 1
        release = tau + w if tau is not None and tau <= t else t
        for i in range(1, release + 1):
            arrived, wait = sum(xs[(i - 1) * d : i * d]), release - i
            count += weight * arrived
            held_total += weight * arrived * wait
            for h in range(wait + 1):
                at_least[h] += weight * arrived
    return held_total / count, [x / count for x in at_least]


def test_random_spread_hold_equals_brute_force_enumeration() -> None:
    """D = 2, T = 2, W = 1, A = 0.5 (0.25 a rank): the closed form against every pattern of up to 5 arrivals per rank
    and interval (the truncation leaves about 1e-7)."""
    mean, at_least = _enumerated_random(0.5, 2, 2, 1)
    hold = _hold(0.5, 2, 2, 1, random_spread=True)
    assert hold.mean_iters == pytest.approx(mean, rel=1e-5)
    assert list(hold.survival) == pytest.approx(at_least[: len(hold.survival)], abs=1e-6)


def test_timeout_zero_acts_as_one() -> None:
    """timeout_iters 0: the counter, 1 after its increment, is >= 0 at the first iteration: as timeout_iters 1."""
    assert _hold(0.7, 4, 0, 10).survival == _hold(0.7, 4, 1, 10).survival


# ---- in serve(): the TTFT, never the TPOT ---------------------------------------------------------------------


def _qwen3_dp4(**balance):  # noqa: ANN202, ANN003
    return setup("qwen3-30b-a3b", "h200", engine="trtllm", tp=1, dp=4, ep=True,
                 settings=Settings(attention_dp_balance=True, **balance))  # fmt: skip


def _serve(s, rate: float):  # noqa: ANN001, ANN202
    return serving.serve(s, rate_rps=rate, input_len=Lengths.of(2048), output_len=Lengths.of(512),
                         with_max_rate=False, expert_parallel=True)  # fmt: skip


def test_serve_adds_the_mean_hold_at_the_mean_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Qwen3-30B-A3B, H200, DP 4 x EP 4, 20 req/s of 2k / 512: the TTFT with the default knobs is the TTFT of the same
    steady state without the hold (serve() with kvplan.serving._balance_hold giving none) plus the mean hold in
    iterations x the mean step (A = 20 x step prompts an iteration); the TPOT rises a little with the hold (since stop
    27: the prompts that reach a request's rank while it is held are queued behind it at its first token and prefilled
    in its life, kvplan.serving._own_life). Until stop 30 the steps themselves did not move with the knobs (every rank
    one prompt in the same steps); since then a release carries the prompts of its cycle (kvplan.serving.
    _released_parts): the default knobs' cycles (~39 iterations, the random spread covering 4 ranks at 0.26 prompts
    an iteration, then the batching wait) carry ~10 prompts over the 4 ranks, drawn as the engine deals them, where
    timeout_iters 0 and batching_wait_iters 0 (a one-iteration cycle, every iteration releases) keep one prompt a rank:
    the held steady state's step 12.46 -> 13.10 ms, batch 127.6 -> 134.1 (TTFT and TPOT from it)."""
    plain = _serve(_qwen3_dp4(attention_dp_timeout_iters=0, attention_dp_batching_wait_iters=0), 20.0)
    held = _serve(_qwen3_dp4(), 20.0)
    assert (plain.step_batch, plain.step_s) == pytest.approx((127.5703735252568, 0.01245804428957586), rel=1e-6)
    assert (held.step_batch, held.step_s) == pytest.approx((134.13047930002966, 0.013098679619143521), rel=1e-6)
    hold = _hold(20.0 * held.step_s, 4, 50, 10, decoding=held.step_batch, random_spread=True)  # as serve()
    assert hold.applies == pytest.approx(1.0)  # ~134 sequences decode: every rank has some
    monkeypatch.setattr(serving, "_balance_hold", lambda *a, **k: None)
    bare = _serve(_qwen3_dp4(), 20.0)
    assert (bare.step_batch, bare.step_s) == (held.step_batch, held.step_s)  # the hold is in the TTFT, not the steps
    assert bare.tpot_mean_s < held.tpot_mean_s < 1.02 * bare.tpot_mean_s
    assert held.ttft_mean_s == pytest.approx(bare.ttft_mean_s + hold.mean_iters * held.step_s, rel=1e-6)
    assert held.ttft_mean_s - bare.ttft_mean_s > 4 * held.step_s  # at least most of the W / 2 batching wait
    assert held.ttft_p90_s >= held.ttft_mean_s and held.ttft_p90_s > plain.ttft_p90_s
    without = _serve(setup("qwen3-30b-a3b", "h200", engine="trtllm", tp=1, dp=4, ep=True), 20.0)
    assert without.ttft_mean_s < held.ttft_mean_s  # the independent ranks' schedule holds nothing


def test_serve_rate_to_zero_holds_nothing() -> None:
    """One request at a time: its rank has no other sequence, so the balancer lets it go at once: the figures
    equal those of the knobs that hold nothing."""
    plain = _serve(_qwen3_dp4(attention_dp_timeout_iters=0, attention_dp_batching_wait_iters=0), 1e-6)
    held = _serve(_qwen3_dp4(), 1e-6)
    assert held.ttft_mean_s == pytest.approx(plain.ttft_mean_s, rel=1e-9)
    assert held.ttft_p90_s == pytest.approx(plain.ttft_p90_s, rel=1e-9)


def test_serve_hold_falls_toward_the_batching_wait_as_the_rate_rises() -> None:
    """Half the replica's sustainable rate, then 99 % of it (about 41.7 req/s, measured): A = rate x step rises from
    about 0.27 to 3.1 prompts an iteration against D = 4 ranks, so the prompts gather on every rank sooner and the
    hold falls (kvplan.serving's random spread): with batching_wait_iters 0 from 14.3 to 1.20 iterations, with the
    default 10 from 18.5 to 6.12, near the W / 2 = 5 of the limit (measured)."""
    s0 = _qwen3_dp4(attention_dp_batching_wait_iters=0)
    top = serving.max_rate(s0, input_len=Lengths.of(2048), output_len=Lengths.of(512), expert_parallel=True)
    holds = {}
    for share in (0.5, 0.99):
        r = _serve(s0, share * top)
        a = share * top * r.step_s
        holds[share] = tuple(_hold(a, 4, 50, w, decoding=r.batch, random_spread=True) for w in (0, 10))
    assert holds[0.99][0].mean_iters < 1.5 < 10.0 < holds[0.5][0].mean_iters
    assert 5.0 < holds[0.99][1].mean_iters < 7.0 < 15.0 < holds[0.5][1].mean_iters


def test_only_trtllm_with_balance_holds() -> None:
    on = Settings(attention_dp_balance=True)
    assert get_engine("trtllm").dp_balance_iters(on) == (50, 10)
    knobs = dataclasses.replace(on, attention_dp_timeout_iters=60, attention_dp_batching_wait_iters=0)
    assert get_engine("trtllm").dp_balance_iters(knobs) == (60, 0)
    assert get_engine("trtllm").dp_balance_iters(Settings()) is None
    assert get_engine("vllm").dp_balance_iters(on) is None and get_engine("sglang").dp_balance_iters(on) is None


@pytest.mark.parametrize(("a", "d", "w"), [(0.27, 4, 10), (3.1, 4, 0), (0.27, 8, 10)])
def test_random_spread_bounds_the_even_one_from_above(a: float, d: int, w: int) -> None:
    """Prompts drawn to ranks at random need more of them to cover every rank than an even spread (D): a longer
    hold. Both tend to the same limits: the timeout clock as A -> 0 and the batching wait as A grows."""
    kw = {"arrivals_per_iter": a, "ranks": d, "decoding": EVERY_RANK_DECODING, "timeout_iters": 50,
          "batching_wait_iters": w}  # fmt: skip
    assert balance_hold(**kw, random_spread=True).mean_iters > balance_hold(**kw).mean_iters
    for limit in (0.0, 1e4):
        kw["arrivals_per_iter"] = limit
        assert balance_hold(**kw, random_spread=True).mean_iters == pytest.approx(balance_hold(**kw).mean_iters)


def test_batching_wait_bounds_the_prompt_releases() -> None:
    """A backlogged rank prefills once every W + 1 iterations (each release resets the batching counter), so its
    prompt tokens per step x (W + 1) plus its decodes must fit the 8,192-token budget. Qwen3-30B-A3B DP 2 x EP 2 on
    H200 at 20 req/s of 2k / 512: the step may not pass 8,192 x 2 / (20 x (11 x 2,048 + 512)) = 0.035556 s, below the
    0.0385 s the replica would take, so it is saturated by the token budget with the default wait and not with
    batching_wait_iters 0; sustainable rates (measured) 19.6 req/s against 22.5 (independent ranks: 21.7 before stop
    25; 22.5 since their arrivals land together, kvplan.serving._landed_together: both then met the same KV-pool
    bound, at 22.47 req/s). Stop 26: the plain ranks' busiest rank takes every prompt dealt to it in a step up to its
    room (E[ceil(K / 2)] of the K that arrived, not at most one), a longer step at the bound: 21.44 req/s (the
    aligned ranks' 22.47 unchanged; benchmarks/serving_sim.py dealt in turn saturates at about 0.98 of 21.44). Stop
    27: TensorRT-LLM deals to the fewest active requests, which keeps a step's arrivals together, and the busiest
    rank takes the largest of 2 Poisson shares (kvplan.serving.busiest_drawn): 21.44 -> 20.41 req/s, still above 20.
    Stop 28: the prefill step is the mean over its prompt count K, each K with the largest of 2 uniform shares of it
    (kvplan.serving._prefill_counts), not the step at the mean count: 20.41 -> 19.94 req/s, now just below 20 (the
    held replica's bound, 19.6, still below it). Stop 29: the busiest rank's whole prompts each attend to their own
    tokens (kvplan.serving._whole_prompts), not as one prompt of all its tokens: 19.94 -> 20.78 req/s, above 20 again
    (the aligned and held replicas, one prompt a rank a step, do not move). Stop 30: a release of the balancer
    carries the prompts that arrived during its cycle, dealt as the engine deals them (kvplan.serving._released_parts),
    not one prompt a rank: the replica without the batching wait (a release once every rank has a prompt, ~4
    iterations and ~3.4 prompts at this load) meets its KV-pool bound at 21.91 req/s, not 22.47."""
    kw = {"tp": 1, "dp": 2, "ep": True, "engine": "trtllm"}
    waits = setup("qwen3-30b-a3b", "h200", settings=Settings(attention_dp_balance=True), **kw)
    none = setup("qwen3-30b-a3b", "h200", settings=Settings(attention_dp_balance=True,
                                                            attention_dp_batching_wait_iters=0), **kw)  # fmt: skip
    assert serving._release_every(waits, seqs=100.0) == 11 and serving._release_every(none, seqs=100.0) == 1
    assert serving._release_every(waits, seqs=1.0) == 1  # a rank with nothing decoding: no hold, no bound
    held, free = _serve(waits, 20.0), _serve(none, 20.0)
    assert held.saturated and held.limit == "token_budget"
    assert not free.saturated and free.step_s > 8192 * 2 / (20 * (11 * 2048 + 512))
    rates = [serving.max_rate(s, input_len=Lengths.of(2048), output_len=Lengths.of(512), expert_parallel=True)
             for s in (waits, none, setup("qwen3-30b-a3b", "h200", **kw))]  # fmt: skip
    assert rates[0] < rates[2] <= rates[1] and rates[0] < 20.0
    assert rates[1] == pytest.approx(21.91, abs=0.01)  # the KV pool's bound: 22.47 aligned (stop 25 - 29)
    # 22.47 before stop 26 (one prompt), 21.44 before stop 27, 20.41 before stop 28
    assert rates[2] == pytest.approx(20.78, abs=0.01)  # 19.94 before stop 29

"""kvplan.serving's prompts' queue with mixed steps: the time-share rule ("time", the default since stop 29) and the
room-share rule ("step", the default before) that benchmarks/serving_ttft_check.py sets against a step-by-step
simulation and the MLPerf Server logs; the TTFT at a quantile where the prompts' lengths vary (the own prefill and
the wait independent, kvplan.serving.ttft_sum_quantile)."""

from __future__ import annotations

import math

import pytest

from kvplan import serving
from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.cost import phase_cost
from kvplan.hardware import resolve_gpu
from kvplan.serving import Lengths, max_rate, serve

H100 = resolve_gpu("h100-sxm")


@pytest.fixture(scope="module")
def vllm8b():
    return setup(load_bundled("llama-3.1-8b"), H100, engine="vllm")


def test_the_default_rule_is_the_time_share():
    # the simulation and the MLPerf Server logs' mean and p99 TTFT (with the independent sum below) side with it
    # (docs/cost.md section 5, "The prompts' queue with mixed steps")
    assert serving.MIXED_QUEUE_RULE == "time"


def test_sum_quantile_one_service_by_hand():
    """One service of 1 s, half the arrivals waiting, the exponential tail about a mean wait of 1 s: P(W > w) = 0.5
    exp(-0.5 w), so the p99 of S + W is 1 + 2 ln 50 = 8.824 s, the comonotone sum itself (nothing to spread)."""
    from kvplan.serving import queue_wait_s, ttft_sum_quantile

    got = ttft_sum_quantile([1.0], waits=0.5, scale=0.5, rate=0.5, quantile=0.99)
    assert got == pytest.approx(1 + 2 * math.log(50), rel=1e-5)
    # queue_wait_s's own p99 at rho 0.5 for the same mean wait (S = 2 (1 - rho) W / rho = 2 s, M/D/1)
    assert got == pytest.approx(1 + queue_wait_s(2.0, 0.5, quantile=0.99), rel=1e-5)


def test_sum_quantile_two_services_by_hand():
    """Services 1 s and 3 s, equally likely, the same wait: for x >= 3, P(S + W > x) = 0.25 e^(-x / 2) (e^0.5 + e^1.5)
    = 0.01 gives x = -2 ln(0.04 / 6.13044) = 10.0643 s, below the comonotone 3 + 2 ln 50 = 10.824 s (the longest
    prompt and the p99 wait together); without a wait, the services' own quantile; past saturation, inf."""
    from kvplan.serving import ttft_sum_quantile

    got = ttft_sum_quantile([1.0, 3.0], waits=0.5, scale=0.5, rate=0.5, quantile=0.99)
    assert got == pytest.approx(-2 * math.log(0.04 / (math.exp(0.5) + math.exp(1.5))), rel=1e-5)
    assert round(got, 4) == 10.0643 and got < 3 + 2 * math.log(50)
    assert ttft_sum_quantile([1.0, 2.0, 3.0, 4.0], waits=0.0, scale=0.0, rate=1.0, quantile=0.5) == 2.0
    assert ttft_sum_quantile([1.0, 2.0, 3.0, 4.0], waits=0.0, scale=0.0, rate=1.0, quantile=0.99) == 4.0
    assert ttft_sum_quantile([1.0], waits=1.0, scale=1.0, rate=0.0, quantile=0.99) == math.inf


def test_wait_tail_md1_by_hand():
    """M/D/1, service 1 s, rho 0.5 (lambda 0.5): gamma solves 0.5 (e^g - 1) = g, e^g = 1 + 2 g: g = 1.256431;
    C = (1 - rho) / (lambda e^g - 1) = 0.5 / (0.5 x 3.51286 - 1) = 0.660999 (above rho: the wait is seldom short).
    The p99 of S + W with S = 1 s: 1 + ln(C / 0.01) / g = 4.3358 s, against 1 + ln 50 = 4.912 s on the exponential
    tail about the M/D/1 mean wait (rho S / (2 (1 - rho)) = 0.5 s, so P(W > w) = 0.5 exp(-w)): 12 % less wait."""
    from kvplan.serving import queue_wait_s, ttft_sum_quantile, wait_tail

    c, g = wait_tail([1.0], 0.5)
    assert g == pytest.approx(1.256431, rel=1e-6) and c == pytest.approx(0.660999, rel=1e-5)
    got = ttft_sum_quantile([1.0], waits=0.5, scale=c, rate=g, quantile=0.99)
    assert got == pytest.approx(4.3358, rel=1e-4)
    expo = 1 + queue_wait_s(1.0, 0.5, quantile=0.99)  # the exponential tail about the M/D/1 mean
    assert expo == pytest.approx(1 + math.log(50), rel=1e-6) and got < expo
    assert wait_tail([1.0], 0.0) == (0.0, math.inf) and wait_tail([1.0], 1.0) == (1.0, 0.0)


def test_wait_tail_mm1_is_exact():
    """Exponential services (mean 1 s, 4,000 equal-probability points of the distribution) at rho 0.5: M/M/1's wait
    is exactly P(W > w) = rho exp(-(mu - lambda) w), so C = 0.5 and gamma = 0.5 (to the points' discretization)."""
    from kvplan.serving import wait_tail

    k = 4000
    work = [-math.log(1 - (i + 0.5) / k) for i in range(k)]
    c, g = wait_tail(work, 0.5)
    assert g == pytest.approx(0.5, rel=0.02) and c == pytest.approx(0.5, rel=0.03)


def test_prompt_points_match_the_moments():
    """The lognormal's equal-probability points keep the lengths' mean and standard deviation (to the binning's
    error, ~1 % on the deviation at 200 points); with no deviation every point is the mean."""
    from kvplan.serving import PROMPT_POINTS, prompt_points

    assert prompt_points(Lengths.of(1000)) == [1000] * PROMPT_POINTS
    pts = prompt_points(Lengths.of(9429, 14158, 18959, sd=4066.9))  # the MLPerf Llama 3.1 405B set
    mean = sum(pts) / len(pts)
    sd = math.sqrt(sum((x - mean) ** 2 for x in pts) / len(pts))
    assert mean == pytest.approx(9429, rel=0.005) and sd == pytest.approx(4066.9, rel=0.03)
    assert pts == sorted(pts)


def test_mlperf_405b_h200_server_log_ttft():
    """The MLPerf v5.0 Llama 3.1 405B H200 Server log (0.45 req/s, TP8, 2,560-token steps): measured mean / p99 TTFT
    1.83 / 5.64 s. The time rule's mean 1.81 s; its p99 with the own prefill and the wait independent 5.98 s (6.46 s
    with the exponential tail about the mean wait; the comonotone sum gave 7.58 s; the step rule 1.22 / 4.09 s)."""
    from tests.benchmods import bench_module

    pc = bench_module("published_compare")
    data = pc.json.loads(pc.DATA.read_text())
    r = next(x for x in data["mlperf"] if x["model"] == "llama-3.1-405b" and x["gpu"] == "h200"
             and x["scenario"] == "Server")  # fmt: skip
    ds = data["mlperf_datasets"][r["dataset"]]
    isl, osl = round(ds["input_mean"]), round(r["osl"])
    inp = Lengths.of(isl, round(ds["input_p90"]), round(ds["input_p99"]), sd=ds["input_sd"])
    with pc.mlperf_engine(r):
        x = serve(pc._mlperf_setup(r), rate_rps=r["samples_per_s"], input_len=inp,
                  output_len=pc.mlperf_output(ds, osl), with_max_rate=False, with_p90=False)  # fmt: skip
    assert x.ttft_mean_s == pytest.approx(r["measured"]["ttft_mean_s"], rel=0.03)
    assert 5.8 < x.ttft_p99_s < 6.2


def test_time_rule_one_request_equals_the_static_figures(vllm8b):
    with serving.mixed_queue_rule("time"):
        r = serve(vllm8b, rate_rps=0.0, input_len=Lengths.of(2048), output_len=Lengths.of(512))
        tiny = serve(vllm8b, rate_rps=1e-4, input_len=Lengths.of(2048), output_len=Lengths.of(512))
    static = phase_cost(vllm8b.spec, H100, 2048, phase="prefill", engine="vllm").time_s
    assert r.ttft_mean_s == pytest.approx(static) and r.ttft_p99_s == pytest.approx(static)
    assert tiny.ttft_mean_s == pytest.approx(static, rel=1e-3)


def test_time_rule_reports_saturation(vllm8b):
    inp, out = Lengths.of(2048, 4096), Lengths.of(256, 512)
    with serving.mixed_queue_rule("time"):
        top = max_rate(vllm8b, input_len=inp, output_len=out)
        above = serve(vllm8b, rate_rps=3 * top, input_len=inp, output_len=out)
    assert above.saturated and math.isnan(above.ttft_mean_s)


def test_time_rule_by_hand(vllm8b):
    """Llama 3.1 8B on one H100, vLLM, 4 requests/s of 2,048 in / 256 out (budget 8,192). The steady state (the same
    under both rules): n = 8.9448 decoding, p = 71.558 prompt tokens a step, mean step t = 8.7352 ms. A full-budget
    step (8,183.06 prompt tokens beside the decodes) takes 223.654 ms, a decode-only step d = 7.3016 ms, the
    prompt's own prefill 48.330 ms.
    Load: rho = p x full / room / t = 71.558 x 223.654 / 8183.06 / 8.7352 = 0.22390 (the step rule's is
    71.558 / 8183.06 = 0.0087). A prompt ahead costs S = 2048 x 223.654 / 8183.06 = 55.975 ms of the queue's time;
    the M/D/1 wait rho S / (2 (1 - rho)) = 8.074 ms; the decode step under way (1 - e^-n) d / 2 = 3.650 ms.
    TTFT = 48.330 + 8.074 + 3.650 = 60.054 ms (step rule: 48.54 ms, its p90 the same). (n 8.9216, t 8.7125 ms, d
    7.2827 ms, TTFT 60.023 / 48.52 ms before vLLM's sampling after the LM head was priced, kvplan.latency.sampling_s:
    about 19 us a decode step here.) Since stop 27 the wait also
    moves the TPOT: the prompts that arrive during a request's TTFT are queued behind it at its first token and
    prefilled in its life (kvplan.serving._own_life), so the longer TTFT gives the longer TPOT; the steady state (the
    steps' batch and mean step) does not move. Before, the rule moved the TTFT only."""
    with serving.mixed_queue_rule("time"):
        r = serve(vllm8b, rate_rps=4.0, input_len=Lengths.of(2048), output_len=Lengths.of(256), with_max_rate=False)
    assert r.step_batch == pytest.approx(8.9448, rel=1e-4)
    assert r.ttft_mean_s == pytest.approx(60.054e-3, rel=1e-4)
    assert r.ttft_p90_s > r.ttft_mean_s
    with serving.mixed_queue_rule("step"):
        old = serve(vllm8b, rate_rps=4.0, input_len=Lengths.of(2048), output_len=Lengths.of(256), with_max_rate=False)
    assert old.ttft_mean_s == pytest.approx(48.54e-3, rel=1e-3) and old.ttft_p90_s == old.ttft_mean_s
    assert old.step_batch == r.step_batch and old.step_s == r.step_s  # the same steady state
    assert r.tpot_mean_s > old.tpot_mean_s and r.batch > old.batch  # more queued behind it at its first token


def test_time_rule_agrees_with_the_simulation():
    """benchmarks/serving_sim.py's mixed layout (FCFS, several prompts a step), Llama 3.1 8B, H100, 2,048 / 256 at 0.6
    of the sustainable rate, 1,500 requests: the time rule's mean TTFT within 15 % of the simulation's, the step
    rule's more than 25 % below it (the full table: benchmarks/serving_ttft_check.py, docs/cost.md section 5)."""
    from kvplan.engines import Settings
    from kvplan.serving import _limits
    from tests.benchmods import bench_module

    sim_mod = bench_module("serving_sim")
    s = setup(load_bundled("llama-3.1-8b"), H100, engine="sglang", settings=Settings(mixed_chunk=True))
    s = serving.steps_only(s)  # the simulation has no API server
    inp, out = Lengths.of(2048), Lengths.of(256)
    rate = 0.6 * max_rate(s, input_len=inp, output_len=out)
    sim = sim_mod.simulate(s, rate_rps=rate, isl=2048, osl=256, requests=1500, budget=8192,
                           seq_cap=_limits(s, inp, out)[0], warmup=100)  # fmt: skip
    got = {}
    for name in ("step", "time"):
        with serving.mixed_queue_rule(name):
            got[name] = serve(s, rate_rps=rate, input_len=inp, output_len=out, with_max_rate=False)
    assert got["time"].ttft_mean_s == pytest.approx(sim.ttft_s, rel=0.15)
    assert got["step"].ttft_mean_s < 0.75 * sim.ttft_s


def test_time_rule_dp_iteration_under_way_by_hand():
    """With attention-DP ranks the iteration a prompt finds under way is one of the replica's steps, which share one
    arrival stream (kvplan.serving._landed_together, as _dp_mean_step prices them): a share b of them hold prompt work
    and last B, the rest d; the residual is half of E[L^2] / E[L] = (b B^2 + (1 - b) d^2) / (b B + (1 - b) d). One
    rank: d. Qwen3-30B-A3B DP4 on H100 (vLLM), 20 decodes, 400 prompt tokens a step of 2,048-token prompts: 0.195
    prompts a step, b = 0.1679 (below the chain-free 1 - e^-0.195 = 0.1774: a long prefill step gathers the next
    prompts into the step after it); until stop 26 the ranks were independent here, b = 1 - (1 - f)^3 = 0.1394
    (f = 400 / 4 / 2,048) with one 2,048-token chunk a step, although the mean step had left that rule at stop 25."""
    from kvplan.serving import _dp_parts, _mean_step, _mixed_iteration_biased, _step

    spec, gpu = load_bundled("qwen3-30b-a3b"), H100
    one = setup(spec, gpu, engine="vllm")
    assert _mixed_iteration_biased(one, n=20.0, p=100.0, prompt=2048, budget=8192, context=2176, ep=False) == (
        pytest.approx(_step(one, n=20.0, p=0, context=2176))
    )
    dp4 = setup(spec, gpu, engine="vllm", dp=4, ep=True)
    kw = {"n": 20.0, "p": 400.0, "prompt": 2048, "context": 2176, "ep": False}
    d, b, busy = _dp_parts(dp4, chunk=2048.0, prefix=0, room=8192 - 5.0, **kw)  # room: the budget less 20 / 4
    assert d == pytest.approx(_step(dp4, n=20.0, p=0, context=2176)) and d < busy
    assert (1 - b) * d + b * busy == pytest.approx(_mean_step(dp4, budget=8192, **kw), rel=1e-12)
    assert round(b, 4) == 0.1679 and round(-math.expm1(-400 / 2048), 4) == 0.1774
    expected = (b * busy**2 + (1 - b) * d**2) / (b * busy + (1 - b) * d)
    got = _mixed_iteration_biased(dp4, budget=8192, **kw)
    assert got == pytest.approx(expected, rel=1e-12) and d < got < busy
    old_b = 1 - (1 - 400 / 4 / 2048) ** 3  # the independent ranks (before stop 26)
    assert round(old_b, 4) == 0.1394

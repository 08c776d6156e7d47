"""Per-request TPOT tails (kvplan.tpot_tail) and their use in kvplan.serving: limits, laws, figures by hand."""

from __future__ import annotations

import math

import pytest

from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.cost import phase_cost
from kvplan.hardware import resolve_gpu
from kvplan.serving import Lengths, max_rate, serve
from kvplan.tpot_tail import SUM_TERMS, Life, count_quantile

H100 = resolve_gpu("h100-sxm")


@pytest.fixture(scope="module")
def llama8b():
    return setup(load_bundled("llama-3.1-8b"), H100, engine="vllm")


def _gp_cdf(theta: float, r: float, k: int) -> float:
    """P(N <= k) of the generalized Poisson count, from its probabilities written out."""
    return sum(theta * (theta + j * r) ** (j - 1) * math.exp(-theta - j * r) / math.factorial(j) for j in range(k + 1))


def test_count_quantile_by_hand():
    # theta 0.05: P(N = 0) = e^-0.05 = 0.951, so the p90 is 0 arrivals; P(N <= 1) = 0.951 + 0.05 e^-0.35 = 0.9866,
    # under 0.99, so the p99 is 2 arrivals (P(N <= 2) = 0.9866 + 0.05 x 0.65 e^-0.65 / 2 = 0.9951)
    assert count_quantile(0.05, 0.3, 0.9) == 0
    assert _gp_cdf(0.05, 0.3, 1) == pytest.approx(0.95123 + 0.05 * math.exp(-0.35), rel=1e-4)
    assert _gp_cdf(0.05, 0.3, 1) < 0.99 < _gp_cdf(0.05, 0.3, 2)
    assert count_quantile(0.05, 0.3, 0.99) == 2
    for theta, r in ((3.0, 0.0), (3.0, 0.5), (40.0, 0.2)):
        k = count_quantile(theta, r, 0.99)
        assert _gp_cdf(theta, r, int(k)) >= 0.99 > _gp_cdf(theta, r, int(k) - 1)


def test_count_quantile_pearson_past_the_sum_agrees():
    # just under the sum's limit the count is summed; the Pearson III quantile there is within half a percent
    theta, r = 1000.0, 0.3
    mean, sd = theta / (1 - r), math.sqrt(theta / (1 - r) ** 3)
    assert mean + 12 * sd < SUM_TERMS
    summed = count_quantile(theta, r, 0.99)
    import kvplan.tpot_tail as tail

    kept = tail.SUM_TERMS
    try:
        tail.SUM_TERMS = 0
        assert tail.count_quantile(theta, r, 0.99) == pytest.approx(summed, rel=5e-3)
    finally:
        tail.SUM_TERMS = kept


def test_the_moment_match_is_exact_without_a_slope():
    # With no slope (a step does not grow with the batch) and every prompt alike, the life is the M/D/1 busy period
    # started by m d: the match recovers h = a (each arrival's prompt work) and c = m d
    life = Life(steps=255, mean_step_s=0.012, decode_step_s=0.009, slope_s=0.0, others=30, rate_rps=10.0)
    a = life.prompt_work_s()
    assert a == pytest.approx(0.003 / (10 * 0.012))  # (t - d) / (lambda t) = 25 ms a prompt
    mean, var = life.moments()
    rho = 10 * a
    assert mean == pytest.approx(255 * 0.012) and mean * (1 - rho) == pytest.approx(255 * 0.009)
    assert var == pytest.approx(255 * 0.009 * 10 * a * a / (1 - rho) ** 3)
    k = math.sqrt(var / (10 * mean))
    assert k / (1 + 10 * k) == pytest.approx(a)


def test_no_arrivals_is_the_plain_step():
    life = Life(steps=511, mean_step_s=0.007, decode_step_s=0.007, slope_s=1e-5, others=0.0, rate_rps=0.0)
    assert life.tpot_at(0.99) == 0.007 and life.moments() == (511 * 0.007, 0.0)


def test_quantiles_rise_and_the_spread_falls_with_a_longer_life():
    base = dict(mean_step_s=0.02, decode_step_s=0.012, slope_s=4e-5, others=60.0, rate_rps=8.0)
    short, long = Life(steps=63, **base), Life(steps=1023, **base)
    for life in (short, long):
        assert life.tpot_at(0.5) <= life.tpot_at(0.9) <= life.tpot_at(0.99)
    assert short.tpot_at(0.99) > long.tpot_at(0.99) > 0.02  # more steps average more of the arrivals out


def test_rate_to_zero_every_request_sees_the_plain_decode_step(llama8b):
    # at 1e-6 req/s a request almost never meets another: its p90 and p99 TPOT are the static batch-1 decode step
    decode = phase_cost(llama8b.spec, H100, 2304, phase="decode", engine="vllm").time_s  # context 2048 + 512/2
    r = serve(llama8b, rate_rps=1e-6, input_len=Lengths.of(2048), output_len=Lengths.of(512), with_max_rate=False)
    assert r.tpot_p90_s == pytest.approx(decode, rel=1e-4) and r.tpot_p99_s == pytest.approx(decode, rel=1e-4)


def test_past_saturation_has_no_tail(llama8b):
    inp, out = Lengths.of(2048), Lengths.of(512)
    top = max_rate(llama8b, input_len=inp, output_len=out)
    r = serve(llama8b, rate_rps=2 * top, input_len=inp, output_len=out, with_max_rate=False)
    assert r.saturated and math.isnan(r.tpot_p90_s) and math.isnan(r.tpot_p99_s)


def test_p99_at_least_p90_at_least_mean_up_to_saturation(llama8b):
    inp, out = Lengths.of(2048), Lengths.of(256)
    top = max_rate(llama8b, input_len=inp, output_len=out)
    spreads = []
    for frac in (0.01, 0.1, 0.3, 0.6, 0.9, 0.99):
        r = serve(llama8b, rate_rps=frac * top, input_len=inp, output_len=out, with_max_rate=False)
        assert not r.saturated and r.tpot_p99_s >= r.tpot_p90_s >= r.tpot_mean_s
        spreads.append(r.tpot_p99_s / r.tpot_mean_s)
    assert spreads[2] > 1.05  # at 0.3 of the rate a request's life meets a few prompts of 2048 tokens


def test_a_longer_own_context_adds_its_reads(llama8b):
    # the same load; the p90 request's own lengths longer: its steps carry its longer attention reads
    same = serve(llama8b, rate_rps=5, input_len=Lengths.of(2048), output_len=Lengths.of(256), with_max_rate=False)
    longer = serve(llama8b, rate_rps=5, input_len=Lengths.of(2048, 8192), output_len=Lengths.of(256),
                   with_max_rate=False)  # fmt: skip
    assert longer.tpot_mean_s == pytest.approx(same.tpot_mean_s)
    assert longer.tpot_p90_s > same.tpot_p90_s


# ---- plan against TPOT percentile targets ---------------------------------------------------------


def test_a_p99_tpot_target_on_its_own_is_the_p99_percentile_target(llama8b):
    from kvplan.slo import Targets, rate_within_targets

    inp, out = Lengths.of(2048), Lengths.of(256)
    as_percentile = Targets(rate_rps=1.0, input_len=inp, output_len=out, tpot_s=0.03, percentile="p99")
    on_its_own = Targets(rate_rps=1.0, input_len=inp, output_len=out, tpot_p99_s=0.03)
    rate = rate_within_targets(llama8b, on_its_own)
    assert rate > 0 and rate == pytest.approx(rate_within_targets(llama8b, as_percentile), rel=1e-9)
    r = serve(llama8b, rate_rps=rate, input_len=inp, output_len=out, with_max_rate=False)
    assert r.tpot_p99_s <= 0.03 and r.tpot_mean_s < 0.03
    # the same target at the p90 allows more: a request's p90 TPOT is below its p99
    at_p90 = Targets(rate_rps=1.0, input_len=inp, output_len=out, tpot_p90_s=0.03)
    assert rate_within_targets(llama8b, at_p90) > rate


def test_cli_plan_tpot_percentile_targets(cli):
    import json

    r = cli("plan", "llama-3.1-8b", "--rate", "10", "--input", "2k", "--output", "256", "--tpot", "30ms",
            "--tpot-p99", "40ms", "--gpus", "h100-sxm", "--top", "3", "--format", "json")  # fmt: skip
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["tpot_p99_s"] == 0.04 and d["tpot_p90_s"] is None and d["plans"]
    for row in d["plans"]:
        assert row["tpot_s"] <= 0.03 and 0 < row["tpot_p99_s"] <= 0.04 and row["tpot_p90_s"] == 0
    table = cli("plan", "llama-3.1-8b", "--rate", "10", "--tpot-p90", "30ms", "--gpus", "h100-sxm", "--top", "2")
    assert table.exit_code == 0 and "TPOT p90 (s)" in table.output and "TPOT p99 (s)" not in table.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--users", "4", "--context", "2k", "--tpot-p99", "40ms"), "use them with --rate"),
        (("--rate", "3", "--tpot-p90", "0ms"), "invalid --tpot-p90"),
        (("--rate", "3", "--tpot-p99", "fast"), "invalid --tpot-p99 'fast'"),
    ],
)
def test_cli_plan_tpot_percentile_targets_refused(cli, args, message):
    r = cli("plan", "llama-3.1-8b", *args)
    assert r.exit_code == 2 and message in r.output and len(r.output.strip().splitlines()) == 1


# ---- against the step-by-step simulation (benchmarks/serving_sim.py --tpot) ------------------------------------


def test_the_tails_agree_with_the_simulated_requests():
    """SGLang's default (prompt steps apart), Llama 3.1 8B on one H100, 512 / 256 at 0.6 of the sustainable rate, 3,000
    Poisson arrivals (seed 1): the simulated requests' own p90 / p99 TPOT 14.61 / 15.96 ms against kvplan's 14.51 /
    15.91 (the count of others' normal quantile gave 13.41 / 13.80 before); the mean 12.94 against 13.05 (12.99
    before the apart layout's first stall, kvplan.serving ``_apart_stalls_s``)."""
    from kvplan.serving import _limits
    from tests.benchmods import bench_module

    sim_mod = bench_module("serving_sim")
    s = setup(load_bundled("llama-3.1-8b"), H100, engine="sglang")
    inp, out = Lengths.of(512), Lengths.of(256)
    rate = 0.6 * max_rate(s, input_len=inp, output_len=out)
    r = serve(s, rate_rps=rate, input_len=inp, output_len=out, with_max_rate=False)
    sim = sim_mod.simulate(s, rate_rps=rate, isl=512, osl=256, requests=3000, budget=s.max_num_batched_tokens,
                           seq_cap=_limits(s, inp, out)[0], warmup=200)  # fmt: skip
    assert r.tpot_p90_s == pytest.approx(sim.tpot_p90_s, rel=0.05)
    assert r.tpot_p99_s == pytest.approx(sim.tpot_p99_s, rel=0.05)
    # requests drawn at the same fixed lengths run the very same simulation
    same = sim_mod.simulate(s, rate_rps=rate, isl=512, osl=256, requests=3000, budget=s.max_num_batched_tokens,
                            seq_cap=_limits(s, inp, out)[0], warmup=200, lengths=lambda rng: (512, 256))  # fmt: skip
    assert same == sim


def test_the_pipeline_tail_agrees_with_the_cycle_simulation():
    """benchmarks/pp_queue_sim.py --tpot: NVIDIA's MLPerf v5.0 405B B200 Server (TP2 PP2), kvplan's cycles at 37
    decodes, the set's prompts gamma-drawn, each request's TPOT the cycles its life spans (the batch held), over 20,000
    s. kvplan's life starts with the prompts queued behind it at its first token (kvplan.serving.queued_backlog, as
    serve() takes them since stop 27; the check, written at stop 26, left them out: its p90 ran 1.7-2.4 % under the
    simulation's at every rate, its p99 4.1 % under at 0.45 req/s once B200's own all-reduce latency lengthened the
    cycles, stop 29). With them, at the run's 0.645 req/s: mean / p90 / p99 105.7 / 119.6 / 133.5 ms simulated, 107.4 /
    121.3 / 135.5 kvplan; at 0.45 87.2 / 99.0 / 112.1 against 88.0 / 99.2 / 110.3. Mean and p90 within 2 % (the p90's
    shortfall without the backlog fails it); the p99 within 4 %: one run's p99 moves with its seed (seeds 2-4: -3.4 % to
    +4.0 % about kvplan's, the p90 within 1.3 %), its lives overlapping (about 350 independent lives a run)."""
    from tests.benchmods import bench_module

    pp = bench_module("pp_queue_sim")
    lines = pp.tpot_lines(20000.0)
    assert len(lines) == 4
    for line in lines:
        sim = [float(x) for x in line.split("simulated ")[1].split(" ms")[0].split(" / ")]
        ours = [float(x) for x in line.split("kvplan ")[1].split(" ms")[0].split(" / ")]
        assert ours[:2] == pytest.approx(sim[:2], rel=0.02) and ours[2] == pytest.approx(sim[2], rel=0.04)
        assert ours[2] > ours[1] > ours[0]


def test_count_quantiles_rise_with_q_everywhere():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=200, deadline=None)
    @given(st.floats(1e-3, 5e3), st.floats(0.0, 0.9999))
    def law(theta: float, r: float) -> None:
        qs = [count_quantile(theta, r, q) for q in (0.5, 0.9, 0.99)]
        assert all(math.isfinite(x) and x >= 0 for x in qs) and qs[0] <= qs[1] <= qs[2]
        if theta / (1 - r) > 50:  # well past a handful of arrivals: the p99 is above the mean count
            assert qs[2] > theta / (1 - r)

    law()
    # a skewness past the Wilson-Hilferty form's reach (theta 0.2, r 0.995: 41): Cantelli's bound, rising with q
    qs = [count_quantile(0.2, 0.995, q) for q in (0.5, 0.9, 0.99)]
    mean, sd = 0.2 / 0.005, math.sqrt(0.2 / 0.005**3)
    assert qs == pytest.approx([mean + sd, mean + 3 * sd, mean + math.sqrt(99) * sd])

"""kvplan.serving where prompt batches and decode batches are separate steps (SGLang's default layout)."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.cli import app
from kvplan.cost import phase_cost
from kvplan.engines import Settings
from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu
from kvplan.serving import (
    Lengths,
    _alternating_parts,
    _mean_step,
    _prompt_steps,
    _step,
    max_rate,
    serve,
    steps_only,
)

H100 = resolve_gpu("h100-sxm")


# The figures by hand and the step-by-step simulation here are the steps', which know no API server
# (Engine.front_end, steps_only); its ceiling and TTFT term are tested in test_front_end.py.


@pytest.fixture(scope="module")
def sglang8b():
    return steps_only(setup(load_bundled("llama-3.1-8b"), H100, engine="sglang"))


def test_sglang_steps_apart_unless_mixed_chunk(sglang8b):
    assert not sglang8b.engine.mixes_steps(sglang8b.settings)
    assert sglang8b.engine.mixes_steps(Settings(mixed_chunk=True))
    vllm = setup(load_bundled("llama-3.1-8b"), H100, engine="vllm")
    assert vllm.engine.mixes_steps(vllm.settings)
    with pytest.raises(InvalidInput, match="--enable-mixed-chunk does not apply to engine 'vllm'"):
        setup(load_bundled("llama-3.1-8b"), H100, engine="vllm", settings=Settings(mixed_chunk=True))


def test_one_request_equals_the_static_figures(sglang8b):
    spec = sglang8b.spec
    r = serve(sglang8b, rate_rps=0.0, input_len=Lengths.of(2048), output_len=Lengths.of(512))
    # rate 0: one prompt-only step of 2048 tokens (budget 8192), then batch-1 decodes at 2048 + 512/2 = 2304 (with the
    # engine's API server the TTFT also holds the request's time there: test_front_end.py)
    assert r.ttft_mean_s == pytest.approx(phase_cost(spec, H100, 2048, phase="prefill", engine="sglang").time_s)
    assert r.tpot_mean_s == pytest.approx(phase_cost(spec, H100, 2304, phase="decode", engine="sglang").time_s)
    assert r.batch == 0 and not r.saturated
    assert r.ttft_p99_s == pytest.approx(r.ttft_mean_s) and r.tpot_p99_s == pytest.approx(r.tpot_mean_s)


def test_rate_to_zero_tends_to_the_static_figures(sglang8b):
    zero = serve(sglang8b, rate_rps=0.0, input_len=Lengths.of(1024), output_len=Lengths.of(256))
    tiny = serve(sglang8b, rate_rps=1e-4, input_len=Lengths.of(1024), output_len=Lengths.of(256))
    assert tiny.tpot_mean_s == pytest.approx(zero.tpot_mean_s, rel=1e-3)
    assert tiny.ttft_mean_s == pytest.approx(zero.ttft_mean_s, rel=1e-3)
    assert tiny.output_tokens_per_s == pytest.approx(1e-4 * 256)


def test_past_saturation_is_reported(sglang8b):
    inp, out = Lengths.of(2048, 4096), Lengths.of(512, 1024)
    top = max_rate(sglang8b, input_len=inp, output_len=out)
    assert 0 < top < math.inf
    below = serve(sglang8b, rate_rps=0.9 * top, input_len=inp, output_len=out)
    assert not below.saturated and below.batch > 1
    above = serve(sglang8b, rate_rps=3 * top, input_len=inp, output_len=out)
    assert above.saturated and above.limit in ("compute", "kv_cache", "max_num_seqs")
    assert math.isnan(above.ttft_mean_s) and above.max_rate_rps == pytest.approx(top)


def test_alternating_steps_by_hand(sglang8b):
    """Llama 3.1 8B, H100, SGLang, 4 requests/s of 2048 in / 256 out. The steady state solves t = d(n) + k P(p / k):
    n = 4 x 256 x t decoding, d(n) their decode step at the mean context 2048 + 128 = 2176, m = 4 t prompts arriving
    a cycle, k = E[ceil(N 2048 / 8192)] prompt steps a cycle for N ~ Poisson(m) = P(N >= 1) + P(N >= 5) + ..., each
    of p / k = 2048 m / k tokens (a step holds all the prompts that arrived), P(x) the prompt-only step of x tokens
    in x / 2048 whole prompts (each attending to its own tokens, since stop 28; before, one prompt of x tokens).
    The figures: t = 8.967 ms, n = 9.183, d(n) = 7.292 ms, m = 0.03587, k = 1 - e^-m = 0.03523 (a second step from
    5 prompts on: 2e-9), p / k = 2085 tokens, P = 47.54 ms: 7.292 + 0.03523 x 47.54 = 8.967 ms. TPOT = d(1 + n) +
    k P; TTFT = the request's own prompt step P(2048) = 46.79 ms plus the M/D/1 wait behind prompt steps at their
    share of the time, rho = k P / t = 0.187: 46.79 x rho / (2 (1 - rho)) = 5.38 ms, plus the decode step under way:
    found in a share (1 - e^-n) (1 - rho) = 0.813 of the time, half of it left, over 1 - rho: 0.813 x 7.292 / 2 /
    0.813 = 3.65 ms; 55.82 ms in all. Since stop 26 the tagged request's TPOT also carries what the cycle's time
    average does not (kvplan.serving._apart_stalls_s): its own token intervals are d(1 + n), not d(n), stretched by
    the prompts arriving in them, rho (d(1 + n) - d(n)) / (1 - rho), and the prompts that arrived during its TTFT are
    prefilled before its first decode, 4 x 55.81 ms x 46.79 ms / 255 / (1 - rho): TPOT 9.087 -> 9.165 ms. Since stop 27
    (kvplan.serving._own_life) the others decoding beside it are Little's law on its TPOT, N = 4 x 256 x TPOT, not the
    steps. n = 4 x 256 x t: TPOT = 9.165 ms + (d(1 + N) - d(1 + n)) / (1 - rho), solved on the same decode step: 9.200
    ms (N = 9.42 against n = 9.18), and the batch a request sees (the time average) is N. (Before stop 28's whole
    prompts: 9.089, 9.167 and 9.202 ms.)
    """
    s, lam = sglang8b, 4.0
    r = serve(s, rate_rps=lam, input_len=Lengths.of(2048), output_len=Lengths.of(256))
    t, n, ctx = r.step_s, r.step_batch, 2048 + 128
    assert n == pytest.approx(lam * 256 * t)
    m = lam * t  # prompts arriving per cycle
    k = 1 - math.exp(-m) + sum(math.exp(-m) * m**j / math.factorial(j) for j in range(5, 40))  # ceil(N / 4)
    assert _prompt_steps(m, prompt=2048, budget=8192) == pytest.approx(k, rel=1e-9)
    d, d1 = _step(s, n=n, p=0, context=ctx), _step(s, n=1 + n, p=0, context=ctx)
    batch_step = _step(s, n=0.0, p=2048 * m / k, context=ctx, prompts=m / k)  # m / k whole prompts a step
    own = _step(s, n=0.0, p=2048, context=ctx)
    assert own == pytest.approx(phase_cost(s.spec, H100, 2048, phase="prefill", engine="sglang").time_s)
    assert t == pytest.approx(d + k * batch_step, rel=1e-4)
    rho = k * batch_step / t
    stalls = (rho * (d1 - d) + lam * r.ttft_mean_s * own / 255) / (1 - rho)
    first = d1 + k * batch_step + stalls  # the others at the steps' n
    assert round((d1 + k * batch_step) * 1e3, 3) == 9.087 and round(first * 1e3, 3) == 9.165
    others = lam * 256 * r.tpot_mean_s
    assert r.batch == pytest.approx(others) and round(others, 2) == 9.42
    beside = _step(s, n=1 + others, p=0, context=ctx)
    assert r.tpot_mean_s == pytest.approx(first + (beside - d1) / (1 - rho), rel=1e-4)
    assert round(r.tpot_mean_s * 1e3, 3) == 9.200
    share = (1 - math.exp(-n)) * (1 - rho)
    residual = share * d / 2 / (1 - rho)
    assert r.ttft_mean_s == pytest.approx(own + own * rho / (2 * (1 - rho)) + residual, rel=1e-4)
    assert 55.7e-3 < r.ttft_mean_s < 55.9e-3
    assert 8.9e-3 < t < 9.0e-3 and 0.18 < rho < 0.19 and 2080 < 2048 * m / k < 2090  # the figures above


def test_prompt_steps_pack_the_budget():
    # few arrivals: each a step of its own (k = P(N >= 1) for prompts within the budget)
    assert _prompt_steps(0.01, prompt=1000, budget=8192) == pytest.approx(1 - math.exp(-0.01))
    # many: the budget packed, N x 1000 / 8192 steps on average plus the ceiling's half step
    assert _prompt_steps(500.0, prompt=1000, budget=8192) == pytest.approx(500 * 1000 / 8192 + 0.5)
    # a prompt of twice the budget: two steps each at a low rate
    assert _prompt_steps(0.01, prompt=16384, budget=8192) == pytest.approx(2 * 0.01, rel=0.01)
    # the exact sum meets the large-mean form where they hand over (200 prompts)
    exact = _prompt_steps(199.9, prompt=1000, budget=8192)
    assert exact == pytest.approx(_prompt_steps(200.1, prompt=1000, budget=8192), rel=0.01)


def test_separate_steps_cost_the_decodes_more_than_mixed_ones(sglang8b):
    """Apart, each prompt step stalls every decode (the decodes no longer ride on the prompt's weight reads): a
    higher TPOT at the same rate and a lower sustainable rate than SGLang with --enable-mixed-chunk."""
    mixed = setup(load_bundled("llama-3.1-8b"), H100, engine="sglang", settings=Settings(mixed_chunk=True))
    inp, out = Lengths.of(2048), Lengths.of(256)
    apart_r, mixed_r = (serve(x, rate_rps=6.0, input_len=inp, output_len=out) for x in (sglang8b, mixed))
    assert apart_r.tpot_mean_s > mixed_r.tpot_mean_s
    assert apart_r.max_rate_rps < mixed_r.max_rate_rps
    # --enable-mixed-chunk: the mixed steps' mean, (1 - f) step(n, 0) + f step(n, chunk) with f = p / chunk
    n, p = 20.0, 500.0
    f = p / 2048
    want = (1 - f) * _step(mixed, n=n, p=0, context=2176) + f * _step(mixed, n=n, p=2048, context=2176)
    got = _mean_step(mixed, n=n, p=p, prompt=2048, budget=8192, context=2176, ep=False)
    assert got == pytest.approx(want, rel=1e-12)


def test_data_parallel_ranks_alternate_on_their_own():
    """Two attention-DP ranks (Qwen3-30B-A3B, EP over both): a rank's cycle is 1 + k iterations, a share b of them
    holding a prompt step (q = k / (1 + k)): the two-state chain of iterations whose arrivals land together, b = a /
    (1 - c + a) with a = 1 - exp(-r d), c = 1 - exp(-r B0), r = 2 q / ((1 - b0) d + b0 B0) prompt steps a second
    at the chain-free b0 = 1 - exp(-2 q) (before: the ranks independent, b = 1 - (1 - q)^2); one rank reduces to
    d + k P. A prompt step's 200 / k tokens are 200 / (1000 k) whole prompts, each attending to its own tokens (with
    several ranks since stop 29, kvplan.serving._alternating_parts; one attention over them before)."""
    s = steps_only(setup(load_bundled("qwen3-30b-a3b"), H100, engine="sglang", dp=2, ep=True))
    n, p, ctx = 40.0, 400.0, 1100
    cycle, share, biased = _alternating_parts(s, n=n, p=p, prompt=1000, budget=8192, context=ctx, ep=False)
    k = _prompt_steps(0.2, prompt=1000, budget=8192)  # 400 / 2 ranks / 1000 tokens = 0.2 prompts a rank a cycle
    q = k / (1 + k)
    d = _step(s, n=n, p=0, context=ctx)

    assert 200 / k > 1000  # more than one whole prompt a prompt step, on average

    def busy_at(b: float) -> float:
        return _step(s, n=n * (1 - q / b), p=200 / k, context=ctx, p_all=200 / k * 2 * q / b, prompts=200 / k / 1000)

    b0 = 1 - math.exp(-2 * q)
    r = 2 * q / ((1 - b0) * d + b0 * busy_at(b0))
    a, c = 1 - math.exp(-r * d), 1 - math.exp(-r * busy_at(b0))
    b = a / (1 - c + a)
    assert q < b < b0 < 1 - (1 - q) ** 2  # long prompt iterations gather the next prompts: fewer busy iterations
    busy = busy_at(b)
    want = (1 + k) * ((1 - b) * d + b * busy)
    assert cycle == pytest.approx(want, rel=1e-12) and share == pytest.approx(k * busy / want, rel=1e-12)
    # the rank's own decode iteration (want - k busy on average) lasts d or busy: E[L^2] / E[L] over those two
    own = want - k * busy
    plain = (busy - own) / (busy - d)
    assert 0 < plain < 1 and biased == pytest.approx((plain * d**2 + (1 - plain) * busy**2) / own, rel=1e-12)
    r = serve(s, rate_rps=0.0, input_len=Lengths.of(1000), output_len=Lengths.of(200))
    assert r.ttft_mean_s == pytest.approx(_step(s, n=0.0, p=1000, context=1100))


@pytest.mark.parametrize("dp", [1, 4])
def test_alternating_parts_with_nothing_decoding(dp):
    """n = 0 with prompts arriving (p > 0): every iteration is a prompt step and no decode iteration is left to wait
    out, the limit of the figures as the decode step d -> 0 (the chain's busy share falls to q = k / (1 + k), a rank's
    prompt steps, the cycle to k busy, the prompt share to 1, E[L^2] / E[L] to d). It divided by zero before (the
    rank's own decode iteration, cycle - k busy, is 0 there) for most p with several ranks."""
    s = setup(load_bundled("qwen3-30b-a3b"), H100, engine="sglang", dp=dp, ep=dp > 1)
    ctx, prompt, budget = 2176, 2048, 2048
    assert _step(s, n=0.0, p=0, context=ctx) == 0.0  # no decode step where nothing decodes
    for p in (1.0, 100.0, 1000.0, 2048.0, 9000.0, 20000.0):
        cycle, share, biased = _alternating_parts(s, n=0.0, p=p, prompt=prompt, budget=budget, context=ctx, ep=False)
        k = _prompt_steps(p / dp / prompt, prompt=prompt, budget=budget)
        prefix = max(0, (prompt - budget) // 2)
        busy = _step(s, n=0.0, p=p / dp / k, context=ctx, prefix=prefix, p_all=p / k if dp > 1 else None)
        assert cycle == pytest.approx(k * busy, rel=1e-12)
        assert share == pytest.approx(1.0, rel=1e-12) and biased == 0.0
    # with a few sequences decoding the decode iteration is back: a share of the time, at least the decode step long
    cycle, share, biased = _alternating_parts(s, n=0.5, p=1000.0, prompt=prompt, budget=budget, context=ctx, ep=False)
    d = _step(s, n=0.5, p=0, context=ctx)
    assert 0 < share < 1 and d <= biased < math.inf and cycle > d


def test_plan_takes_enable_mixed_chunk():
    runner = CliRunner()
    base = ["plan", "llama-3.1-8b", "--rate", "6", "--input", "2k", "--output", "256", "--gpus", "h100-sxm",
            "--engine", "sglang", "--max-gpus", "1", "--top", "1", "-f", "json"]  # fmt: skip
    apart = runner.invoke(app, base)
    mixed = runner.invoke(app, [*base, "--enable-mixed-chunk"])
    assert apart.exit_code == 0 and mixed.exit_code == 0, apart.output + mixed.output
    assert apart.output != mixed.output
    refused = runner.invoke(app, [*base[:-2], "--engine", "vllm", "--enable-mixed-chunk"])
    assert refused.exit_code == 2 and "--enable-mixed-chunk does not apply" in refused.output, refused.output
    no_rate = runner.invoke(app, ["plan", "llama-3.1-8b", "--users", "4", "-c", "2k", "-e", "sglang",
                                  "--enable-mixed-chunk"])  # fmt: skip
    assert no_rate.exit_code == 2 and "change latency only" in no_rate.output, no_rate.output


def test_steady_state_agrees_with_a_step_by_step_simulation(sglang8b):
    """benchmarks/serving_sim.py runs SGLang's scheduler step by step on kvplan's step times under Poisson arrivals;
    at 0.6 of the sustainable rate (512 in / 256 out, 3,000 requests, seed 1) it gives batch 68.9, TPOT 12.96 ms and
    TTFT 23.9 ms against kvplan.serving's 69.9, 12.99 ms and 23.3 ms (the TTFT with the wait for the decode step
    under way). Stop 26: 69.3, 13.00, 23.9 against 70.2, 13.02, 23.3 before SGLang's reserve for the outputs to come
    lowered the KV bound from the mean holding, 414,401 / 640 = 647.5, to floor((414,401 - 768) / 652) + 1 = 635
    requests, and the sustainable rate with it."""
    from kvplan.serving import _limits
    from tests.benchmods import bench_module

    sim_mod = bench_module("serving_sim")
    inp, out = Lengths.of(512), Lengths.of(256)
    rate = 0.6 * max_rate(sglang8b, input_len=inp, output_len=out)
    r = serve(sglang8b, rate_rps=rate, input_len=inp, output_len=out, with_max_rate=False)
    sim = sim_mod.simulate(sglang8b, rate_rps=rate, isl=512, osl=256, requests=3000, budget=8192,
                           seq_cap=_limits(sglang8b, inp, out)[0], warmup=100)  # fmt: skip
    assert sim.batch == pytest.approx(r.batch, rel=0.05)
    assert sim.tpot_s == pytest.approx(r.tpot_mean_s, rel=0.05)
    assert sim.ttft_s == pytest.approx(r.ttft_mean_s, rel=0.05)
    assert sim.output_tokens_per_s == pytest.approx(rate * 256, rel=0.05)


def test_decode_residual_by_hand():
    from kvplan.serving import decode_residual_s

    # decode steps of 10 ms half the time, prompts' load 0.2: 0.5 x 10 / 2 / 0.8 = 3.125 ms on average; the 90th
    # percentile of the residual is 10 (1 - 0.1 / 0.5) = 8 ms, over 0.8: 10 ms; below a share of 0.1 it is 0
    assert decode_residual_s(0.5, 10e-3, rho=0.2) == pytest.approx(3.125e-3)
    assert decode_residual_s(0.5, 10e-3, rho=0.2, quantile=0.9) == pytest.approx(10e-3)
    assert decode_residual_s(0.05, 10e-3, rho=0.2, quantile=0.9) == 0.0
    assert decode_residual_s(0.0, 10e-3, rho=0.2) == 0.0


def test_sglang_prompt_budget_follows_the_gpu_memory():
    """SGLang's chunked_prefill_size default by GPU memory (server_args.py _handle_gpu_memory_settings): 8,192 on the
    80-141 GB H100 / H200, 16,384 on B200 (180 GB), 4,096 on a 40 GB A100 and, from 0.5.23 (memory_hook.py), on a
    24 GB L4 (2,048 in 0.5.7, sglang@0.5); the flag wins."""
    spec = load_bundled("llama-3.1-8b")
    budgets = {g: setup(spec, resolve_gpu(g), engine="sglang").max_num_batched_tokens
               for g in ("h100-sxm", "h200", "b200", "a100-40gb", "l4")}  # fmt: skip
    assert budgets == {"h100-sxm": 8192, "h200": 8192, "b200": 16384, "a100-40gb": 4096, "l4": 4096}
    assert setup(spec, resolve_gpu("l4"), engine="sglang@0.5").max_num_batched_tokens == 2048
    given = setup(spec, resolve_gpu("b200"), engine="sglang", settings=Settings(max_num_batched_tokens=4096))
    assert given.max_num_batched_tokens == 4096
    # one 12,000-token prompt alone: one prompt step on B200, two chunks (8,192 + 3,808) on H100
    b200 = serve(steps_only(setup(spec, resolve_gpu("b200"), engine="sglang")), rate_rps=0.0,
                 input_len=Lengths.of(12000), output_len=Lengths.of(8))  # fmt: skip
    assert b200.ttft_mean_s == pytest.approx(phase_cost(spec, resolve_gpu("b200"), 12000, phase="prefill",
                                                        engine="sglang").time_s)  # fmt: skip


def test_serving_sim_deals_requests_as_each_engine_does() -> None:
    """--dp dealing: SGLang's round_robin in turn; vLLM's lowest waiting * 4 + running over the last snapshot, the
    chosen rank's waiting raised at once. By hand: counts [[1, 0], [0, 3], [0, 2]] score 4, 3, 2 -> rank 2, which
    becomes [1, 2] (score 6); next scores 4, 3, 6 -> rank 1, now [1, 3]; then scores 4, 7, 6 -> rank 0.
    TensorRT-LLM deals an iteration's arrivals at once (executor_request_queue.py _balance_requests_across_ranks):
    ranks holding (prompt tokens, requests) (4,000, 1), (1,000, 1), (2,000, 1) and prompts 1,000, 3,000, 500 in
    arrival order: the cap is max(ceil((3 + 3) / 3), 1) = 2, so a rank takes one; the 3,000-token prompt goes first,
    to the rank with the fewest tokens (1), then the 1,000 to rank 2 (2,000 tokens), then the 500 to rank 0. With
    equal prompts the key is the count, ties to the lower rank: (6,000, 3), (2,000, 1), (4,000, 2) and three
    2,000-token prompts, cap max(ceil(9 / 3), 3) = 3: rank 1 (now 2), rank 1 again (2 ties rank 2's 2 and 4,000
    tokens; now 3, out), rank 2."""
    from tests.benchmods import bench_module

    sim_mod = bench_module("serving_sim")
    assert [sim_mod._deal("round_robin", index=i, counts=[[0, 0]] * 3) for i in range(5)] == [0, 1, 2, 0, 1]
    counts = [[1, 0], [0, 3], [0, 2]]
    assert [sim_mod._deal("vllm", index=i, counts=counts) for i in range(3)] == [2, 1, 0]
    assert counts == [[2, 0], [1, 3], [1, 2]]
    active = [(4000, 1), (1000, 1), (2000, 1)]
    assert sim_mod._deal_fewest_active([1000, 3000, 500], active) == [(1, 1), (0, 2), (2, 0)]
    active = [(6000, 3), (2000, 1), (4000, 2)]
    assert sim_mod._deal_fewest_active([2000] * 3, active) == [(0, 1), (1, 1), (2, 2)]
    with pytest.raises(ValueError, match="round_robin, vllm or trtllm"):
        sim_mod._deal("random", index=0, counts=counts)


def test_apart_tpot_carries_the_prompts_a_request_meets() -> None:
    """Llama 3.1 70B on 4 x H200 (SGLang, steps apart), 4,000 / 200 at 0.6 and 0.85 of the sustainable rate against
    benchmarks/serving_sim.py (3,000 requests, seed 1, the first 200 left out): TPOT 31.76 / 82.91 ms against 31.59 /
    87.27 simulated; 29.01 / 68.96 (-8 / -21 %) before the tagged request's stalls (stop 26, its own token intervals
    stretched by the prompts arriving in them, and the prompts that arrived during its TTFT prefilled before its first
    decode), 31.38 / 78.17 before the others beside it were Little's law on its TPOT (stop 27, kvplan.serving.
    _own_life); the batch a request sees 12.9 / 47.6 against 12.6 / 49.7 simulated (11.7 / 39.5, the steps' count,
    before). The TTFT does not move."""
    from kvplan.serving import _limits
    from tests.benchmods import bench_module

    sim_mod = bench_module("serving_sim")
    s = setup(load_bundled("llama-3.1-70b"), resolve_gpu("h200"), engine="sglang", tp=4)
    inp, out = Lengths.of(4000), Lengths.of(200)
    top = max_rate(s, input_len=inp, output_len=out)
    for frac, rel in ((0.6, 0.03), (0.85, 0.06)):
        r = serve(s, rate_rps=frac * top, input_len=inp, output_len=out, with_max_rate=False)
        sim = sim_mod.simulate(s, rate_rps=frac * top, isl=4000, osl=200, requests=3000, budget=8192,
                               seq_cap=_limits(s, inp, out)[0])  # fmt: skip
        assert r.tpot_mean_s == pytest.approx(sim.tpot_s, rel=rel) and r.batch == pytest.approx(sim.batch, rel=rel)


def test_apart_first_stall_meets_the_simulation_and_stops_at_the_free_slots() -> None:
    """Llama 3.1 8B on one H100 (SGLang, steps apart), 20,000-token prompts and 2 output tokens: the one decode
    interval waits for every prompt that arrived during the request's TTFT and for those arriving meanwhile. At 0.5
    of the rate benchmarks/serving_sim.py gives 1.00 s, kvplan 0.85 s (0.012 s, the mean cycle, before). At 0.9
    that first stall is capped at the prefill of the prompts the replica can still admit (its 20-sequence bound less
    the running ones): with the batch full SGLang builds no prompt batch and decodes."""
    from kvplan import serving
    from tests.benchmods import bench_module

    sim_mod = bench_module("serving_sim")
    s = setup(load_bundled("llama-3.1-8b"), H100, engine="sglang")
    inp, out = Lengths.of(20000), Lengths.of(2)
    top = max_rate(s, input_len=inp, output_len=out)
    cap = serving._limits(s, inp, out)[0]
    r = serve(s, rate_rps=0.5 * top, input_len=inp, output_len=out, with_max_rate=False)
    sim = sim_mod.simulate(s, rate_rps=0.5 * top, isl=20000, osl=2, requests=3000, budget=8192, seq_cap=cap,
                           warmup=750)  # fmt: skip
    assert r.tpot_mean_s == pytest.approx(sim.tpot_s, rel=0.2) and r.tpot_mean_s > 50 * r.step_s
    high = serve(s, rate_rps=0.9 * top, input_len=inp, output_len=out, with_max_rate=False)
    ctx, budget, n = serving._decode_context(inp, out), 8192, high.step_batch
    service = serving._prefill_service(s, prompt=20000, n=n, context=ctx, budget=budget, ep=False)
    rho = serving._prompt_load(s, n=n, p=high.prefill_tokens_per_step, prompt=20000, budget=budget, context=ctx,
                               ep=False)  # fmt: skip
    assert 0.9 * top * high.ttft_mean_s * service / (1 - rho) > (cap - 1 - n) * service  # the cap binds
    tagged = serving._mean_step(s, n=1 + n, p=high.prefill_tokens_per_step, prompt=20000, budget=budget, context=ctx,
                                ep=False)  # fmt: skip
    life = {limit: serving._own_life(s, rate_rps=0.9 * top, n=n, t=high.step_s, tpot=tagged, rho=rho,
                                     ttft=high.ttft_mean_s, work_s=service, outputs=2, context=ctx, ep=False,
                                     limit=limit) for limit in (math.inf, cap)}  # fmt: skip
    assert life[cap].backlog_s == pytest.approx((cap - 1 - n) * service)
    assert life[cap].backlog_s < life[math.inf].backlog_s
    assert high.tpot_mean_s == pytest.approx(life[cap].tpot_s, rel=1e-9) and high.tpot_mean_s > tagged

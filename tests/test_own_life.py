"""A request's mean TPOT as its own decoding life's (kvplan.serving._own_life, stop 27): the prompts queued behind it
at its first token, the others beside it by Little's law on its TPOT, and the least fixed point that solves it."""

from __future__ import annotations

import math

import pytest

from kvplan import serving
from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.engines import Settings
from kvplan.hardware import resolve_gpu
from kvplan.serving import Lengths, _least_fixed_point, _mean_step, _step, max_rate, serve

H100 = resolve_gpu("h100-sxm")


def test_least_fixed_point_by_hand():
    # a contraction: x = 1 + x / 2 at 2, from below
    assert _least_fixed_point(lambda x: 1 + x / 2, 1.5, 100.0) == pytest.approx(2.0, rel=1e-4)
    # above the line up to the bound, flat past it: the value at the bound (the batch full)
    assert _least_fixed_point(lambda x: 1 + 2 * min(x, 10.0), 1.0, 10.0) == pytest.approx(21.0)

    # three roots, 2, 3.5 and 8.78 (a rising f with a steep stretch, as CUDA-graph padding makes a step): the least

    def lumpy(x: float) -> float:
        return 1 + x / 2 if x < 3 else 2.5 + 2 * (x - 3) if x < 6 else 8.5 + 0.1 * (x - 6)

    assert _least_fixed_point(lumpy, 1.0, 50.0) == pytest.approx(2.0, rel=1e-4)
    assert _least_fixed_point(lumpy, 3.6, 50.0) == pytest.approx(8.5 + 0.1 * (7.9 / 0.9 - 6), rel=1e-4)


def test_mixed_tpot_by_hand():
    """SGLang with --enable-mixed-chunk, Llama 3.1 8B on one H100, 0.6 req/s of 20,000 in / 256 out (no API server):
    the mean TPOT is the tagged step at the steps' n, step(1 + n, p), plus its own decode row stretched by the
    prompts arriving in its steps, rho (d(1 + n) - d(n)) / (1 - rho), plus the prompts that arrived during its TTFT,
    rate x TTFT x (t - d(n)) / (rate t) of prompt work queued behind it, over its 255 steps and stretched the same
    way, plus what the others beside it add: N = rate x 256 x TPOT of them, not n, (d(1 + N) - d(1 + n)) / (1 -
    rho), rho = (t - d(n)) / t. The batch reported is N; the steps' n stays rate x 256 x t."""
    s = serving.steps_only(setup(load_bundled("llama-3.1-8b"), H100, engine="sglang",
                                 settings=Settings(mixed_chunk=True)))  # fmt: skip
    lam, inp, out = 0.6, Lengths.of(20000), Lengths.of(256)
    r = serve(s, rate_rps=lam, input_len=inp, output_len=out, with_max_rate=False)
    ctx = serving._decode_context(inp, out)
    t, n = r.step_s, r.step_batch
    assert n == pytest.approx(lam * 256 * t) and r.batch == pytest.approx(lam * 256 * r.tpot_mean_s)
    d, d1 = _step(s, n=n, p=0, context=ctx), _step(s, n=1 + n, p=0, context=ctx)
    rho = (t - d) / t
    tagged = _mean_step(s, n=1 + n, p=r.prefill_tokens_per_step, prompt=20000, budget=8192, context=ctx, ep=False)
    backlog = lam * r.ttft_mean_s * (t - d) / (lam * t) / (1 - rho)
    beside = _step(s, n=1 + r.batch, p=0, context=ctx)
    want = tagged + rho * (d1 - d) / (1 - rho) + backlog / 255 + (beside - d1) / (1 - rho)
    assert r.tpot_mean_s == pytest.approx(want, rel=1e-4)
    assert r.tpot_mean_s > 1.15 * tagged and r.batch > 1.2 * n  # before stop 27: tagged and n


def test_mixed_long_prompts_meet_the_simulation():
    """The same setup against benchmarks/serving_sim.py (3,000 requests, seed 1, the first 200 left out) at 0.3 and
    0.6 of the sustainable rate: TPOT 10.57 / 17.88 ms against 11.34 / 22.03 simulated (9.56 / 14.72 before stop 27,
    -16 / -33 %), the batch 0.89 / 3.00 against 0.93 / 3.63 (0.70 / 2.29 before)."""
    from tests.benchmods import bench_module

    sim_mod = bench_module("serving_sim")
    s = serving.steps_only(setup(load_bundled("llama-3.1-8b"), H100, engine="sglang",
                                 settings=Settings(mixed_chunk=True)))  # fmt: skip
    inp, out = Lengths.of(20000), Lengths.of(256)
    top = max_rate(s, input_len=inp, output_len=out)
    cap = serving._limits(s, inp, out)[0]
    for frac, least in ((0.3, 0.9), (0.6, 0.78)):
        r = serve(s, rate_rps=frac * top, input_len=inp, output_len=out, with_max_rate=False)
        sim = sim_mod.simulate(s, rate_rps=frac * top, isl=20000, osl=256, requests=3000, budget=8192, seq_cap=cap)
        assert least < r.tpot_mean_s / sim.tpot_s < 1.0
        assert least < r.batch / sim.batch < 1.0
        assert not math.isnan(r.tpot_p99_s) and r.tpot_p99_s >= r.tpot_p90_s >= r.tpot_mean_s

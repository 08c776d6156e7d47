"""The steady state is the least fixed point of t = step(n(t), p(t)) (kvplan.serving._solve, stop 28): the one a batch
growing from an empty start stops at, found by a climb up a grid of loads shared by every rate of a setup."""

from __future__ import annotations

import math

import pytest

from kvplan import serving
from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.hardware import resolve_gpu
from kvplan.serving import Lengths, _Load, _solve, max_rate, serve
from tests.benchmods import published

H100 = resolve_gpu("h100-sxm")


def _lumpy(monkeypatch: pytest.MonkeyPatch, *, jump_at: float, jump_s: float) -> None:
    """serving's mean step replaced by 10 ms + 50 us a decode, ``jump_s`` more from ``jump_at`` decodes on (a rising
    step with a steep stretch, as a CUDA-graph size or a GEMM tile wave makes one)."""

    def step(s, *, n: float, p: float, prompt: int, budget: int, context: int, ep: bool) -> float:  # noqa: ANN001
        return 0.010 + 50e-6 * n + (jump_s if n >= jump_at else 0.0)

    serving.forget_memos(facts=False)
    monkeypatch.setattr(serving, "_mean_step", step)


def _load(rate: float, seqs: float = 100.0) -> _Load:
    s = serving.steps_only(setup(load_bundled("llama-3.1-8b"), H100, engine="vllm"))
    # 1,000 output tokens: n = rate x 1000 x t; prompts of 1 token (the fake step reads n alone)
    return _Load(s, rate, Lengths.of(1), Lengths.of(1000), 8192, seqs, "max_num_seqs")


def test_two_fixed_points_the_least(monkeypatch: pytest.MonkeyPatch) -> None:
    """At 1 req/s (n = 1000 t) the step is 0.010 + 0.05 t below 12 decodes and 0.060 + 0.05 t from 12 on: fixed
    points at 0.010 / 0.95 = 10.53 ms (n = 10.5) and 0.060 / 0.95 = 63.16 ms. The batch grows from nothing to the
    first; regula falsi over [0, 100 ms] (stop 27) returned the second."""
    _lumpy(monkeypatch, jump_at=12, jump_s=0.050)
    t, limit = _solve(_load(1.0))
    assert limit == "compute"
    assert t == pytest.approx(0.010 / 0.95, rel=1e-4)
    # the step at the bound, 0.065 s at 100 decodes, keeps up with t_hi = 0.1 s: not saturated
    # without the jump's dip below the line, the one root left
    _lumpy(monkeypatch, jump_at=5, jump_s=0.050)
    assert _solve(_load(1.0))[0] == pytest.approx(0.060 / 0.95, rel=1e-4)


def test_a_full_start_falls_to_the_greatest(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same two roots, 10.53 and 63.16 ms: a batch that starts at the limits (every request queued at once, as
    benchmarks/published_compare.py's runs of a table's requests) drains down to the greater; serve() passes it on."""
    _lumpy(monkeypatch, jump_at=12, jump_s=0.050)
    assert _solve(_load(1.0), full_start=True)[0] == pytest.approx(0.060 / 0.95, rel=1e-4)
    serving.forget_memos(facts=False)
    # a second jump, 33.1 ms at 97 decodes: step(t) > t from 97 to 98 ms, a stretch 1 % wide just under the limits
    # (100 decodes, t_hi = 0.1 s), narrower than the grid the least root is climbed on; its root, (0.060 + 0.0331) /
    # 0.95 = 98.0 ms, is the one a full batch falls to

    def step(s, *, n: float, p: float, prompt: int, budget: int, context: int, ep: bool) -> float:  # noqa: ANN001
        return 0.010 + 50e-6 * n + (0.050 if n >= 12 else 0.0) + (0.0331 if n >= 97 else 0.0)

    monkeypatch.setattr(serving, "_mean_step", step)
    assert _solve(_load(1.0), full_start=True)[0] == pytest.approx(0.0931 / 0.95, rel=1e-4)
    assert _solve(_load(1.0))[0] == pytest.approx(0.010 / 0.95, rel=1e-4)


def test_a_root_below_steps_that_outrun_the_limits_is_saturation(monkeypatch: pytest.MonkeyPatch) -> None:
    """A jump of 1 s at 12 decodes: at 1 req/s a root at 10.53 ms below it, but from the jump up to the sequence bound
    (100 decodes, t_hi = 0.1 s) the step outruns the time: a burst that lifts the batch past 12 carries it to the
    bound, where the queue only grows. Saturated, as stop 27 had it. max_rate (on the setup's own KV bound, 896
    sequences of 1,001 tokens) is where the step at the bound keeps up: 896 / (1000 x (0.010 + 0.0448 + 1))."""
    _lumpy(monkeypatch, jump_at=12, jump_s=1.0)
    assert _solve(_load(1.0)) == (None, "max_num_seqs")
    s = _load(1.0).setup
    seqs = serving._limits(s, Lengths.of(1), Lengths.of(1000))[0]
    top = max_rate(s, input_len=Lengths.of(1), output_len=Lengths.of(1000), max_num_batched_tokens=8192)
    edge = seqs / (1000 * (0.010 + 50e-6 * seqs + 1.0))
    assert edge * (1 - 50 * serving._REL_TOL) <= top <= edge
    # at that rate the batch grows from empty to the least root, below the jump
    t = _solve(_load(0.99 * edge, seqs))[0]
    assert t == pytest.approx(0.010 / (1 - 0.05 * 0.99 * edge), rel=1e-4)


def test_every_rate_reads_one_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    """The probes of one setup and lengths are kept on one grid of requests per step, whatever the rate: a second
    solve at another rate probes only its own root's bracket (a handful of steps), not the climb again."""
    calls = []

    def step(s, *, n: float, p: float, prompt: int, budget: int, context: int, ep: bool) -> float:  # noqa: ANN001
        calls.append(n)
        return 0.010 + 50e-6 * n + 0.002 * math.floor(n / 8)  # lumps every 8 decodes

    serving.forget_memos(facts=False)
    monkeypatch.setattr(serving, "_mean_step", step)
    load = _load(2.0)
    _solve(load)
    first = len(calls)
    calls.clear()
    _solve(_Load(load.setup, 2.1, load.inp, load.out, load.budget, load.seq_limit, load.seq_limit_name))
    assert 0 < len(calls) < first
    calls.clear()
    # existence alone (max_rate's question) at a rate whose bracket the grid already holds: no probe at all
    _solve(_Load(load.setup, 2.0, load.inp, load.out, load.budget, load.seq_limit, load.seq_limit_name), refine=False)
    assert calls == []


def test_the_mlperf_llama2_h200_server_step_is_the_least_root() -> None:
    """MLPerf 4.1 Llama-2-70B on H200, Server, at the log's 100.35 / 8 req/s a replica (the set's mean input, the
    row's output): g(t) = step(t) - t falls through 0 at 99.4-99.6 ms (a GEMM tile change), comes back above it at
    119.5 ms and falls again at 120.7 ms; stop 27's regula falsi returned 120.7 ms (benchmarks/serving_sim.py
    --steady --mlperf), the batch growing from empty stops at the first."""
    pub, data = published()
    row = next(r for r in data["mlperf"] if r["scenario"] == "Server" and r["gpu"] == "h200"
               and r["label"].startswith("Llama-2-70B"))  # fmt: skip
    s = pub._mlperf_setup(row)
    isl, osl = pub._mlperf_isl(row, data["mlperf_datasets"]), round(row["osl"])
    with pub.mlperf_engine(row):
        r = serve(s, rate_rps=row["samples_per_s"] / row["replicas"], input_len=Lengths.of(isl),
                  output_len=Lengths.of(osl), with_max_rate=False, with_p90=False, with_p99=False)  # fmt: skip
    assert 0.0990 < r.step_s < 0.0997

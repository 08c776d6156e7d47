"""Attention-DP replicas at their KV bound: kvplan.serving's sustainable rate against benchmarks/serving_sim.py, which
runs every rank's scheduler step by step on kvplan's own step times (each rank filling its step with the prompts
dealt to it, up to its budget less its decodes)."""

from __future__ import annotations

import pytest

from kvplan.capacity import setup
from kvplan.serving import Lengths, _limits, max_rate, serve
from tests.benchmods import bench_module

INP, OUT = Lengths.of(2048), Lengths.of(256)


@pytest.fixture(scope="module")
def qwen3_dp4():
    return setup("qwen3-30b-a3b", "h100-sxm", engine="trtllm", tp=1, dp=4, ep=True)


def _sim(s, rate: float, dispatch: str):  # noqa: ANN001, ANN202
    sim_mod = bench_module("serving_sim")
    return sim_mod.simulate(s, rate_rps=rate, isl=2048, osl=256, requests=12000, budget=8192,
                            seq_cap=_limits(s, INP, OUT)[0], warmup=3000, dispatch=dispatch)  # fmt: skip


def test_kv_bound_rate_holds_in_the_simulation(qwen3_dp4) -> None:
    """Qwen3-30B-A3B DP4 EP4 on H100 (TensorRT-LLM, 2,048 / 256): the KV pool binds at 996 sequences, where about 3.9
    prompts arrive a step and the busiest rank takes E[ceil(K / 4)] of them, more than one prompt. kvplan's
    sustainable rate is 46.0 requests/s (49.4 before stop 26, when the busiest rank was capped at one prompt a step):
    at 0.9 of it the simulation, the requests dealt in turn, keeps up (24,000 requests: batch 607 against kvplan's
    590, TPOT 56.9 against 55.7 ms); at 0.9 of the old rate its batch ran 27 % above kvplan's (866 against 682), and
    at 0.95 of it (1.02 of the new) to the bound, the queue growing."""
    top = max_rate(qwen3_dp4, input_len=INP, output_len=OUT)
    assert top == pytest.approx(46.0, rel=0.01)
    r = serve(qwen3_dp4, rate_rps=0.9 * top, input_len=INP, output_len=OUT, with_max_rate=False)
    sim = _sim(qwen3_dp4, 0.9 * top, "round_robin")
    assert not r.saturated and sim.output_tokens_per_s == pytest.approx(0.9 * top * 256, rel=0.03)
    assert sim.batch == pytest.approx(r.batch, rel=0.08) and sim.tpot_s == pytest.approx(r.tpot_mean_s, rel=0.08)
    assert sim.ttft_s < 0.5  # no queue building


def test_past_the_kv_bound_is_reported_and_simulated_saturated(qwen3_dp4) -> None:
    """At 1.1 x the sustainable rate kvplan reports the replica saturated by its KV pool, and the simulation's batch
    sits at the pool's bound with its output below the offered rate (the queue grows)."""
    top = max_rate(qwen3_dp4, input_len=INP, output_len=OUT)
    r = serve(qwen3_dp4, rate_rps=1.1 * top, input_len=INP, output_len=OUT, with_max_rate=False)
    assert r.saturated and r.limit == "kv_cache"
    sim = _sim(qwen3_dp4, 1.1 * top, "round_robin")
    bound = _limits(qwen3_dp4, INP, OUT)[0]
    assert sim.batch > 0.97 * bound and sim.output_tokens_per_s < 0.97 * 1.1 * top * 256

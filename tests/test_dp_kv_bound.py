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
    prompts arrive a step and the busiest rank takes several of them. TensorRT-LLM deals them to the ranks with the
    fewest active requests, which keeps the arrivals of a step together (kvplan.engines.trtllm.Trtllm.dp_dealing):
    kvplan prices the busiest rank as the largest of 4 Poisson shares (kvplan.serving.busiest_drawn), and its
    sustainable rate is 39.8 requests/s (46.0 at stop 26 with the even ceil(K / 4), 49.4 before with one prompt a
    step). At 0.9 of it the simulation, dealt as the source deals, keeps up with kvplan at or above it (batch 421
    against 498, TPOT 45.7 against 54.4 ms: the random spread takes 3-7 % more prompts on the busiest rank than the
    source's dealing, and the fixed point near the bound amplifies that); at the stop-26 figure (46.0) the same
    simulation ran at the bound with the queue growing (it keeps up to about 41.5). Stop 28: the prefill step is the
    mean over its prompt count K, each K with the largest of the 4 ranks' uniform shares of it
    (kvplan.serving._prefill_counts, busiest_given), not the step at the mean count: 39.44 requests/s, and at 0.9 of
    it batch 402 against 504, TPOT 44.1 against 55.5 ms (x1.26: the uniform shares of a step's K put more prompts on
    the busiest rank than the source's dealing does, 1.16 / 1.43 / 1.61 against 1.25 / 1.69 / 2.13 at K = 2 / 3 / 4
    in the simulation at 0.85 of the rate, and the fixed point near the bound amplifies it). Stop 29: the busiest
    rank's whole prompts each attend to their own tokens, in kvplan (kvplan.serving._whole_prompts) and in the
    simulation alike (one attention over all the rank's prompt tokens before): 42.63 requests/s, and at 0.9 of it
    batch 503 against 592, TPOT 50.9 against 60.3 ms (x1.18)."""
    top = max_rate(qwen3_dp4, input_len=INP, output_len=OUT)
    assert top == pytest.approx(42.63, rel=0.01)  # 39.8 at the mean prompt count (stop 27), 39.44 (stop 28)
    r = serve(qwen3_dp4, rate_rps=0.9 * top, input_len=INP, output_len=OUT, with_max_rate=False)
    sim = _sim(qwen3_dp4, 0.9 * top, "trtllm")
    assert not r.saturated and sim.output_tokens_per_s == pytest.approx(0.9 * top * 256, rel=0.03)
    assert sim.ttft_s < 0.5  # no queue building
    assert sim.batch < r.batch < 1.3 * sim.batch and sim.tpot_s < r.tpot_mean_s < 1.3 * sim.tpot_s  # 1.25 to stop 27


def test_even_dealing_rate_holds_in_the_simulation() -> None:
    """vLLM V1 deals to the lowest waiting x 4 + running over 100 ms snapshots, the chosen rank's waiting count raised
    at once, which spreads a step's arrivals: kvplan prices it as even (Engine.dp_dealing), and the same replica's
    sustainable rate is 40.75 requests/s. At 0.9 of it the simulation, dealt as vLLM deals, runs with kvplan (batch
    565 against 562, TPOT 59.7 against 59.9 ms). Stop 28, the prefill step the mean over its prompt count K
    (kvplan.serving._prefill_counts; ceil(K / 4) on the busiest rank): 40.19 requests/s, and at 0.9 of it batch 532
    against 543, TPOT 57.0 against 58.7 ms. Stop 29, the prompts' queue at its time share (kvplan.serving
    MIXED_QUEUE_RULE "time"): the mean TTFT 113.5 ms simulated against 104.3 (53.3 with the room share), and its longer
    wait puts more prompts behind a request at its first token: batch 546, TPOT 59.0 ms (+3.5 %). Stop 29 too, each of
    the busiest rank's whole prompts its own attention (in kvplan and the simulation, r30d): 41.13 requests/s, and at
    0.9 of it batch 560 against 582, TPOT 58.5 against 61.4 ms, TTFT 113.7 against 107.6 ms (kvplan 4-5 % above the
    simulation's batch and TPOT with both rules)."""
    s = setup("qwen3-30b-a3b", "h100-sxm", engine="vllm", tp=1, dp=4, ep=True)
    top = max_rate(s, input_len=INP, output_len=OUT)
    assert top == pytest.approx(41.13, rel=0.01)  # 40.75 at the mean prompt count (stop 27), 40.19 (stop 28)
    r = serve(s, rate_rps=0.9 * top, input_len=INP, output_len=OUT, with_max_rate=False)
    sim = _sim(s, 0.9 * top, "vllm")
    assert not r.saturated and sim.ttft_s < 0.5 and r.ttft_mean_s == pytest.approx(sim.ttft_s, rel=0.1)
    assert sim.batch == pytest.approx(r.batch, rel=0.05) and sim.tpot_s == pytest.approx(r.tpot_mean_s, rel=0.06)


def test_past_the_kv_bound_is_reported_and_simulated_saturated(qwen3_dp4) -> None:
    """At 1.1 x the sustainable rate kvplan reports the replica saturated by its KV pool, and the simulation (dealt as
    TensorRT-LLM deals) sits at the pool's bound (981 of 996) with its output below the offered rate (10,688 against
    11,211 tokens/s: the queue grows)."""
    top = max_rate(qwen3_dp4, input_len=INP, output_len=OUT)
    r = serve(qwen3_dp4, rate_rps=1.1 * top, input_len=INP, output_len=OUT, with_max_rate=False)
    assert r.saturated and r.limit == "kv_cache"
    sim = _sim(qwen3_dp4, 1.1 * top, "trtllm")
    bound = _limits(qwen3_dp4, INP, OUT)[0]
    assert sim.batch > 0.97 * bound and sim.output_tokens_per_s < 0.97 * 1.1 * top * 256

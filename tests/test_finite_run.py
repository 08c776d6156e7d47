"""The TensorRT-LLM tables scored as the page ran them: a finite run of the table's $num_requests equal requests,
all queued at once, each rank's share served in request lifetimes of kvplan's steady-state batch
(benchmarks/published_compare.py ``finite_run_tokens_s``, ``run_tokens_s``, ``TRTLLM_NUM_REQUESTS``)."""

from __future__ import annotations

import pytest

from tests.benchmods import published


def _step_s(batch: int) -> float:
    """A toy step: 20 ms + 0.1 ms a sequence on the rank."""
    return 0.020 + 0.0001 * batch


NO_RAMP = 10**9  # a step budget past every prompt: each wave admitted in one step


def test_run_steps_by_hand_two_staggered_waves() -> None:
    """5 requests of 100 + 4 tokens on one rank of 3 places, 250 tokens a step: step 0 admits 2 (250 // 100), step 1
    one more (248 // 100 = 2, one place left); the first two leave after step 3 (4 tokens: the prompt's step and
    three more), so step 4 admits the last two beside the third, which leaves after step 4; the last two run alone
    in steps 5-7. Running per step: 2, 3, 3, 3, 3, 2, 2, 2: four steps at 2 and four at 3 (20 tokens = 5 x 4). With
    a step of 20 ms + 1 ms a sequence the run lasts 4 x 22 + 4 x 23 = 180 ms: 20 / 0.18 = 111.11 tok/s."""
    pub, _ = published()
    held = pub.run_steps(requests=5, ranks=1, places=3, isl=100, osl=4, budget=250)
    assert held == {2: 4, 3: 4}
    toks = pub.finite_run_tokens_s(requests=5, ranks=1, places=3, isl=100, osl=4, budget=250,
                                   step_s_at=lambda b: 0.020 + 0.001 * b)  # fmt: skip
    assert toks == pytest.approx(20 / 0.180, rel=1e-12)


def test_finite_run_by_hand_whole_waves() -> None:
    """Waves admitted in one step each (a budget past every prompt):

    - 1,500 requests on 4 ranks of 98 places, every step 4 ms: 375 a rank are 3 waves of 98 and one of 81, each
      ``osl`` steps, 1,500 / (4 x 4 ms) = 93,750 tok/s, 3.83 / 4 of the steady 98,000.
    - 1,500 requests on 8 ranks of 368 places, a step of 20 ms + 0.1 ms a sequence on the rank: 187.5 a rank, one
      wave held by the busiest rank's 188: 38.8 ms a step, 1,500 / 38.8 ms = 38,659.79 tok/s (the steady state 8 x
      368 / 56.8 ms = 51,830.99): one wave is the steady state at its own batch, 8 x 188 / step(188) x 1,500 / (8 x
      188).
    - The same on 187 places: the busiest rank's 188th request waits for a place and runs a whole further lifetime
      alone: 38.7 + 20.1 ms a token, 1,500 / 58.8 ms = 25,510.20 tok/s. That step is the engine's: equal requests,
      each admitted only with the blocks to its completion free (GUARANTEED_NO_EVICT)."""
    pub, _ = published()
    flat = pub.finite_run_tokens_s(requests=1500, ranks=4, places=98, isl=128, osl=128, budget=NO_RAMP,
                                   step_s_at=lambda b: 0.004)  # fmt: skip
    assert flat == pytest.approx(93_750.0, rel=1e-12)
    calls: list[int] = []

    def at(b: int) -> float:
        calls.append(b)
        return _step_s(b)

    one = pub.finite_run_tokens_s(requests=1500, ranks=8, places=368, isl=2048, osl=2048, budget=NO_RAMP,
                                  step_s_at=at)  # fmt: skip
    assert one == pytest.approx(38_659.79381, rel=1e-9)
    assert one == pytest.approx(8 * 188 / _step_s(188) * 1500 / (8 * 188), rel=1e-12)
    assert calls == [188]
    short = pub.finite_run_tokens_s(requests=1500, ranks=8, places=187, isl=2048, osl=2048, budget=NO_RAMP,
                                    step_s_at=_step_s)  # fmt: skip
    assert short == pytest.approx(1500 / (0.0387 + 0.0201), rel=1e-9)


def test_maverick_h200_row_sits_on_the_pool_not_on_the_steady_batch() -> None:
    """Llama 4 Maverick 8 x H200 2048/2048, the row stop 27 saw swing x1.27-x1.48 as the steady state's batch moved
    187.2 -> 187.5 a rank: the run now reads the pool's whole requests (188.44 reservations, 188 places) and no
    steady-state batch, so the busiest rank's 188 run in one wave whatever the latency model's batch; a 0.2 % change
    of the pool either way leaves the places and the figure (x1.456) as they are. A 1 % smaller pool (186 places)
    sends two requests a rank to a second wave: x1.25, the engine's step for equal requests. With trtllm-bench's own
    4,096-token budget (stop 29; its smaller dummy forward a larger pool): 192.05 reservations, 192 places, x1.44; a
    3 % smaller pool (186 places) gives the second wave, x1.25."""
    from kvplan.serving import Lengths

    pub, data = published()
    row = next(r for r in data["runs"] if r["model"] == "llama-4-maverick-17b-128e" and r["gpu"] == "h200"
               and (r["isl"], r["osl"]) == (2048, 2048) and "launch" in r)  # fmt: skip
    s = pub.run_setup(row)
    assert pub.run_places(s, Lengths.of(2048), Lengths.of(2048), whole=False) == pytest.approx(192.05, abs=0.01)
    runs = [pub.run_tokens_s(row, places_scale=k) / row["published_tok_s"] for k in (0.998, 1.0, 1.002, 0.97)]
    assert runs[0] == runs[1] == runs[2]
    assert (round(runs[1], 2), round(runs[3], 2)) == (1.44, 1.25)  # (1.46, 1.25 at 0.99) before stop 29


def test_spread_prompts_agree_with_the_run_played_step_by_step() -> None:
    """finite_run_tokens_s spreads each request's prompt work over its outputs at each batch (run_step_s, the steady
    state's mean step); played request by request on kvplan's own steps with the same admission
    (stepwise_run_tokens_s: mlperf_offline_drain.run_query, each prompt burst its own step) the runs agree: measured
    on the 65 attention-DP rows with prompts within the budget, median 0.997 and 59 within 3 % (the widest, 128/128
    rows, 0.93: 64 prompts a step priced as one burst). Here Llama 4 Maverick 8 x H200 2048/2048 (one wave of 188 a
    rank, 4 prompts a step at first) and Scout 4 x H100 2048/128 (4 waves, prompts admitted over most of each
    lifetime), within 3 %."""
    pub, data = published()
    for model, gpu, isl, osl in (("llama-4-maverick-17b-128e", "h200", 2048, 2048),
                                 ("llama-4-scout-17b-16e", "h100-sxm", 2048, 128)):  # fmt: skip
        row = next(r for r in data["runs"] if r["model"] == model and r["gpu"] == gpu
                   and (r["isl"], r["osl"]) == (isl, osl) and "launch" in r)  # fmt: skip
        assert pub.stepwise_run_tokens_s(row) == pytest.approx(pub.run_tokens_s(row), rel=0.03)


def test_finite_run_pipeline_is_continuous_in_the_places() -> None:
    """Where the prompts take longer to admit than a request lives (2,048-token prompts, 128-token outputs, 8,192 tokens
    a step: 4 prompts the first step, then 3, as the decodes take a token each), the requests run as a pipeline of
    about 3 x 128 = 384 at a time: one place more or less moves the run < 2 %, and places past what the pipeline holds
    change nothing (stop 27's model added a lifetime at 3,000 / 400 = 7.5 waves)."""
    pub, _ = published()
    runs = [pub.finite_run_tokens_s(requests=3000, ranks=1, places=places, isl=2048, osl=128, budget=8192,
                                    step_s_at=_step_s)
            for places in (374, 375, 376, 400, 401)]  # fmt: skip
    assert max(runs) / min(runs) < 1.02
    assert runs[3] == runs[4]
    assert max(pub.run_steps(requests=3000, ranks=1, places=400, isl=2048, osl=128, budget=8192)) < 390


def test_finite_run_tends_to_the_steady_state() -> None:
    """Many more requests than places: the first wave's ramp and the last one's drain fade and the run's figure tends
    to the steady state's, 4 x 98 / 29.8 ms = 13,154.362 tok/s; as many requests as places in one step: exactly
    it."""
    pub, _ = published()
    steady = 4 * 98 / _step_s(98)
    assert steady == pytest.approx(13_154.3624, rel=1e-8)
    many = pub.finite_run_tokens_s(requests=1_000_000, ranks=4, places=98, isl=128, osl=128, budget=8192,
                                   step_s_at=_step_s)  # fmt: skip
    assert many == pytest.approx(steady, rel=1e-3) and many < steady
    assert pub.finite_run_tokens_s(requests=392, ranks=4, places=98, isl=128, osl=128, budget=NO_RAMP,
                                   step_s_at=_step_s) == pytest.approx(steady, rel=1e-12)  # fmt: skip
    assert pub.finite_run_tokens_s(requests=391, ranks=4, places=98, isl=128, osl=128, budget=NO_RAMP,
                                   step_s_at=_step_s) < steady  # fmt: skip


def test_every_trtllm_table_row_has_the_pages_request_count() -> None:
    """The perf-overview pages' $num_requests table (v1.0 @00f37686 and v0.17 @258c7540, "Preparing a Dataset"; the
    same figures, 1000/2000 on the v1.0 page only) covers the lengths of every v1.0 and v0.17 row."""
    pub, data = published()
    lengths = {(r["isl"], r["osl"]) for r in data["runs"] if r["source"] in ("trtllm-1.0", "trtllm-0.17")}
    assert lengths <= set(pub.TRTLLM_NUM_REQUESTS)
    assert pub.TRTLLM_NUM_REQUESTS[(128, 128)] == 30000 and pub.TRTLLM_NUM_REQUESTS[(20000, 2000)] == 1000


def test_scout_h100_row_runs_four_waves() -> None:
    """Llama 4 Scout 4 x H100 128/4096 (attention DP + EP): 1,500 requests are 375 a rank; the KV pool holds 98.71
    requests' reservations a rank, 98 whole ones (published_compare.run_places), and 128-token prompts enter 64 a step
    (8,192 tokens), so the places fill in two steps (64, then 34): three waves of 98 and a last of 81, each 4,096 steps
    (run_steps: 12,287 steps at 98, 4,095 at 81, one each at 64, 97 and 18, where cohorts turn over). Each step is
    the mean step of the run's steady state (every rank's prompts in the same steps, published_compare.run_setup)
    with that many a rank (run_step_s); kvplan's figure is requests x OSL over the steps' sum (measured: x1.63 as
    run, x1.65 steady; x1.64 with the steady state's 98.49 a rank for the places and each lifetime at the steady
    state capped at its batch, before stop 28). With trtllm-bench's own 2,048-token budget (stop 29): 101.73
    reservations, 101 places, prompts entering 16 a step (15 once decodes take their tokens), three waves of 101 and
    a last of 72 (12,280 steps at 101, 4,090 at 72, the turnovers one step each), the steps at other batches
    interpolated between 72 and 101 (flat below 72): x1.63 as run, x1.68 steady."""
    from kvplan.serving import Lengths

    pub, data = published()
    row = next(r for r in data["runs"] if r["model"] == "llama-4-scout-17b-16e" and r["gpu"] == "h100-sxm"
               and (r["isl"], r["osl"]) == (128, 4096) and "launch" in r)  # fmt: skip
    scored = pub.compare_runs([row])[0]
    s = pub.run_setup(row)
    inp, out = Lengths.of(128), Lengths.of(4096)
    assert pub.run_places(s, inp, out, whole=False) == pytest.approx(101.73, abs=0.01)  # 98.71 before stop 29
    assert pub.run_places(s, inp, out) == 101
    assert pub.run_budget(s) == 2048
    held = pub.run_steps(requests=1500, ranks=4, places=101, isl=128, osl=4096, budget=2048)
    assert held == {16: 1, 31: 1, 46: 1, 61: 1, 76: 1, 91: 1, 101: 12_280, 100: 6, 98: 1, 83: 1, 72: 4_090, 57: 1,
                    42: 1, 27: 1, 12: 1}  # fmt: skip
    full, last = pub.run_step_s(s, 128, 4096, 101), pub.run_step_s(s, 128, 4096, 72)

    def step(b: int) -> float:  # interpolated between the two batches held for at least 1 % of the steps
        return last if b <= 72 else last + (full - last) * (b - 72) / (101 - 72)

    by_hand = 1500 * 4096 / sum(n * step(b) for b, n in held.items())
    assert scored["kvplan_tok_s"] == pytest.approx(by_hand, rel=1e-12)
    assert (round(scored["ratio_steady"], 2), round(scored["ratio"], 2)) == (1.68, 1.63)  # (1.65, 1.63) before


def test_run_setup_aligns_only_the_attention_dp_rows() -> None:
    """published_compare.run_setup: an attention-DP row's run admits every rank's prompts in the same steps (the
    engine's aligned-ranks rule, no balancer hold: timeout and batching wait 0); a TP row's setup is row_setup's."""
    pub, data = published()
    adp = next(r for r in data["runs"] if (r.get("launch") or {}).get("enable_attention_dp"))
    tp = next(r for r in data["runs"] if r["source"] == "trtllm-1.0" and "launch" not in r)
    s = pub.run_setup(adp)
    assert s.engine.aligns_dp_prefill(s.settings) and s.engine.dp_balance_iters(s.settings) == (0, 0)
    assert not pub.row_setup(adp).settings.attention_dp_balance
    assert pub.run_setup(tp).settings == pub.row_setup(tp).settings


def test_run_residual_lines_by_hand() -> None:
    """published_compare.py --run-residual: for a decode-heavy attention-DP row as the page ran it, the step at the
    run's batch a rank and the time it needs added, step x (ratio - 1), beside kvplan's MoE, attention and GEMM times.
    Llama 4 Scout 4 x H100 128/4096 (measured): x1.63 at 98.5 a rank, a 26.9 ms step that needs +16.9 ms (x1.64 and
    +17.3 ms before the run took the KV pool's whole requests for its places and priced each step at its batch, stop
    28; x1.66 at 98.2, 26.6 ms and +17.6 ms before the per-tensor fp8 activation quantization and its fp8 refit;
    at 101.3 a rank, 27.1 ms, +17.0 ms with trtllm-bench's own 2,048-token budget, stop 29: a larger pool)."""
    pub, data = published()
    row = next(r for r in data["runs"] if r["model"] == "llama-4-scout-17b-16e" and r["gpu"] == "h100-sxm"
               and (r["isl"], r["osl"]) == (128, 4096) and "launch" in r)  # fmt: skip
    x = pub.run_decode_terms(row)
    assert x["ratio"] == pytest.approx(pub.compare_runs([row])[0]["ratio"], rel=1e-12)
    assert x["needed_s"] == pytest.approx(x["times"].total * (x["ratio"] - 1), rel=1e-12)
    got = (round(x["batch"], 1), round(x["times"].total * 1e3, 1), round(x["needed_s"] * 1e3, 1))
    assert got == (101.3, 27.1, 17.0)
    (line,) = pub.run_residual_lines([row])
    assert line.startswith("run residual Llama 4 Scout    h100-sxm    128/4096   101.3 a rank x1.63: step  27.1 ms")
    dense = next(r for r in data["runs"] if r["source"] == "trtllm-1.0" and "launch" not in r)
    assert pub.run_residual_lines([dense]) == []  # attention-DP rows only


def test_spread_prompts_agree_with_the_run_at_trtllm_bench_budgets() -> None:
    """With trtllm-bench's own max_num_tokens (published_compare.bench_caps ``tokens``; 32,768 tokens for
    Qwen3-235B-A22B 8 x H200 at 2048/128, 16 whole prompts a rank a step) the run's bursts of prompts, played step by
    step, still agree with the spread pricing within 3 % (measured x1.21 and x1.20) once the step function passes each
    burst's prompt count (stepwise_run_tokens_s: before stop 29 one prompt of all their tokens, x0.85 there).
    published_compare.burst_lines prints such rows both ways (--bench-heuristic)."""
    pub, data = published()
    row = next(r for r in data["runs"] if r["model"] == "qwen3-235b-a22b" and r["gpu"] == "h200"
               and (r["isl"], r["osl"]) == (2048, 128) and "launch" in r)  # fmt: skip
    assert pub.trtllm_bench_settings(row) == (2304, 32768)
    spread, stepped = pub.run_tokens_s(row, tokens=True), pub.stepwise_run_tokens_s(row, tokens=True)
    assert stepped == pytest.approx(spread, rel=0.03)
    assert round(stepped / row["published_tok_s"], 2) == 1.21
    (line,) = pub.burst_lines([row])
    assert line.endswith("budget 32,768 (16 prompts): spread x1.20, step by step x1.21")

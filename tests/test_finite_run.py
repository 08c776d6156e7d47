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
    a step of 20 ms + 1 ms a sequence (T(b) = b / step) the run lasts 4 x 22 + 4 x 23 = 180 ms: 20 / 0.18 =
    111.11 tok/s."""
    pub, _ = published()
    held = pub.run_steps(requests=5, ranks=1, places=3, isl=100, osl=4, budget=250)
    assert held == {2: 4, 3: 4}
    toks = pub.finite_run_tokens_s(requests=5, ranks=1, places=3, isl=100, osl=4, budget=250, steady_batch=3,
                                   tokens_s_at=lambda b: b / (0.020 + 0.001 * b))  # fmt: skip
    assert toks == pytest.approx(20 / 0.180, rel=1e-12)


def test_finite_run_by_hand_whole_waves() -> None:
    """Waves admitted in one step each (a budget past every prompt):

    - 1,500 requests on 4 ranks of 98 places, T(b) = 1,000 b tok/s (every step as long): 375 a rank are 3 waves of 98
      and one of 81, each ``osl`` steps of 4 x b / (1,000 b) = 4 ms, so 1,500 / (4 x 4 ms) = 93,750 tok/s, 3.83 / 4 of
      the steady 98,000.
    - 1,500 requests on 8 ranks of 368 places, T(b) = 8 b / (20 ms + 0.1 ms b): 187.5 a rank, one wave held by the
      busiest rank's 188: 20 + 18.8 = 38.8 ms a step, 1,500 / 38.8 ms = 38,659.79 tok/s (the steady state
      8 x 368 / 56.8 ms = 51,830.99): one wave is the steady state at its own batch, T(188) x 1,500 / (8 x 188).
    - The same on 187 places: the busiest rank's 188th request waits for a place and runs a whole further lifetime
      alone: 38.7 + 20.1 ms a token, 1,500 / 58.8 ms = 25,510.20 tok/s. That step is the engine's: equal requests,
      each admitted only with the blocks to its completion free (GUARANTEED_NO_EVICT)."""
    pub, _ = published()
    linear = pub.finite_run_tokens_s(requests=1500, ranks=4, places=98, isl=128, osl=128, budget=NO_RAMP,
                                     steady_batch=98, tokens_s_at=lambda b: 1000.0 * b)  # fmt: skip
    assert linear == pytest.approx(93_750.0, rel=1e-12)
    calls: list[int] = []

    def at(b: int) -> float:
        calls.append(b)
        return 8 * b / _step_s(b)

    one = pub.finite_run_tokens_s(requests=1500, ranks=8, places=368, isl=2048, osl=2048, budget=NO_RAMP,
                                  steady_batch=368, tokens_s_at=at)  # fmt: skip
    assert one == pytest.approx(38_659.79381, rel=1e-9)
    assert one == pytest.approx(at(188) * 1500 / (8 * 188), rel=1e-12)
    assert calls[0] == 188
    short = pub.finite_run_tokens_s(requests=1500, ranks=8, places=187, isl=2048, osl=2048, budget=NO_RAMP,
                                    steady_batch=187, tokens_s_at=at)  # fmt: skip
    assert short == pytest.approx(1500 / (0.0387 + 0.0201), rel=1e-9)


def test_finite_run_is_continuous_in_the_steady_batch() -> None:
    """The steady state's batch (the latency model's fixed point, fractional) no longer sets the waves: a 0.2 % change
    of it moves the run < 2 % (0 here: it only picks where T is solved). Stop 27's model took it for the places and
    read Llama 4 Maverick 8 x H200 2048/2048 x1.27 at 187.2 and x1.48 at 187.5 a rank."""
    pub, _ = published()

    def at(b: int) -> float:
        return 8 * min(b, 187.5) / _step_s(min(b, 187.5))

    runs = [pub.finite_run_tokens_s(requests=1500, ranks=8, places=188, isl=2048, osl=2048, budget=8192,
                                    steady_batch=batch, tokens_s_at=at) for batch in (187.2, 187.5, 187.8)]  # fmt: skip
    assert max(runs) / min(runs) < 1.02


def test_finite_run_pipeline_is_continuous_in_the_places() -> None:
    """Where the prompts take longer to admit than a request lives (2,048-token prompts, 128-token outputs, 8,192 tokens
    a step: 4 prompts the first step, then 3, as the decodes take a token each), the requests run as a pipeline of about
    3 x 128 = 384 at a time: one place more or less moves the run < 2 %, and places past what the pipeline holds change
    nothing (the old model added a lifetime at 3,000 / 400 = 7.5 waves)."""
    pub, _ = published()

    def at(b: int) -> float:
        return b / _step_s(b)

    runs = [pub.finite_run_tokens_s(requests=3000, ranks=1, places=places, isl=2048, osl=128, budget=8192,
                                    steady_batch=places, tokens_s_at=at)
            for places in (374, 375, 376, 400, 401)]  # fmt: skip
    assert max(runs) / min(runs) < 1.02
    assert runs[3] == runs[4]
    assert max(pub.run_steps(requests=3000, ranks=1, places=400, isl=2048, osl=128, budget=8192)) < 390


def test_finite_run_tends_to_the_steady_state() -> None:
    """Many more requests than places: the first wave's ramp and the last one's drain fade and the run's figure tends
    to the steady state's, 4 x 98 / 29.8 ms = 13,154.362 tok/s; as many requests as places in one step: exactly
    it."""
    pub, _ = published()

    def at(b: int) -> float:
        return 4 * b / _step_s(b)

    steady = at(98)
    assert steady == pytest.approx(13_154.3624, rel=1e-8)
    many = pub.finite_run_tokens_s(requests=1_000_000, ranks=4, places=98, isl=128, osl=128, budget=8192,
                                   steady_batch=98, tokens_s_at=at)  # fmt: skip
    assert many == pytest.approx(steady, rel=1e-3) and many < steady
    assert pub.finite_run_tokens_s(requests=392, ranks=4, places=98, isl=128, osl=128, budget=NO_RAMP,
                                   steady_batch=98, tokens_s_at=at) == pytest.approx(steady, rel=1e-12)  # fmt: skip
    assert pub.finite_run_tokens_s(requests=391, ranks=4, places=98, isl=128, osl=128, budget=NO_RAMP,
                                   steady_batch=98, tokens_s_at=at) < steady  # fmt: skip


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
    (run_steps: 12,287 steps at 98, 4,095 at 81, one each at 64, 97 and 18, where cohorts turn over). The run's steady
    state (every rank's prompts in the same steps, published_compare.run_setup) holds 98.49 a rank, so T(98) is the
    steady state's own: kvplan's figure is requests x OSL over the steps' sum, each step 4 x b / T(b) (measured: x1.65
    as run, x1.65 steady; before, with the steady state's 98.49 a rank for the places, x1.64)."""
    from kvplan.serving import Lengths

    pub, data = published()
    row = next(r for r in data["runs"] if r["model"] == "llama-4-scout-17b-16e" and r["gpu"] == "h100-sxm"
               and (r["isl"], r["osl"]) == (128, 4096) and "launch" in r)  # fmt: skip
    scored = pub.compare_runs([row])[0]
    s = pub.run_setup(row)
    inp, out = Lengths.of(128), Lengths.of(4096)
    assert pub.run_places(s, inp, out, whole=False) == pytest.approx(98.71, abs=0.01)
    assert pub.run_places(s, inp, out) == 98
    held = pub.run_steps(requests=1500, ranks=4, places=98, isl=128, osl=4096, budget=8192)
    assert held == {64: 1, 98: 12_287, 97: 1, 81: 4_095, 18: 1}
    full = 4 * 98 / pub.replica_tokens_s(s, 128, 4096)
    last = 4 * 81 / pub.replica_tokens_s(pub.run_setup(row, max_batch=81), 128, 4096)
    between = last + (full - last) * 16 / 17  # 97 a rank, interpolated; 64 and 18 (1 step each) flat at 81's
    by_hand = 1500 * 4096 / (12_287 * full + 4_097 * last + between)
    assert scored["kvplan_tok_s"] == pytest.approx(by_hand, rel=1e-12)
    assert (round(scored["ratio_steady"], 2), round(scored["ratio"], 2)) == (1.65, 1.65)


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
    Llama 4 Scout 4 x H100 128/4096 (measured): x1.65 at 98.5 a rank, a 26.9 ms step that needs +17.4 ms (x1.64 and
    +17.3 ms before the run took the KV pool's whole requests for its places, stop 28; x1.66 at 98.2, 26.6 ms and
    +17.6 ms before the per-tensor fp8 activation quantization and its fp8 refit)."""
    pub, data = published()
    row = next(r for r in data["runs"] if r["model"] == "llama-4-scout-17b-16e" and r["gpu"] == "h100-sxm"
               and (r["isl"], r["osl"]) == (128, 4096) and "launch" in r)  # fmt: skip
    x = pub.run_decode_terms(row)
    assert x["ratio"] == pytest.approx(pub.compare_runs([row])[0]["ratio"], rel=1e-12)
    assert x["needed_s"] == pytest.approx(x["times"].total * (x["ratio"] - 1), rel=1e-12)
    assert (round(x["batch"], 1), round(x["times"].total * 1e3, 1), round(x["needed_s"] * 1e3, 1)) == (98.5, 26.9, 17.4)
    (line,) = pub.run_residual_lines([row])
    assert line.startswith("run residual Llama 4 Scout    h100-sxm    128/4096    98.5 a rank x1.65: step  26.9 ms")
    dense = next(r for r in data["runs"] if r["source"] == "trtllm-1.0" and "launch" not in r)
    assert pub.run_residual_lines([dense]) == []  # attention-DP rows only

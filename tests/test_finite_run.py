"""The TensorRT-LLM tables scored as the page ran them: a finite run of the table's $num_requests equal requests,
all queued at once, each rank's share served in request lifetimes of kvplan's steady-state batch
(benchmarks/published_compare.py ``finite_run_tokens_s``, ``run_tokens_s``, ``TRTLLM_NUM_REQUESTS``)."""

from __future__ import annotations

import math

import pytest

from tests.benchmods import published


def _step_s(batch: int) -> float:
    """A toy step: 20 ms + 0.1 ms a sequence on the rank."""
    return 0.020 + 0.0001 * batch


def test_finite_run_by_hand_whole_and_partial_lifetimes() -> None:
    """Three runs by hand.

    - 1,500 requests on 4 ranks of 98 places, T(b) = 1,000 b tok/s (every lifetime lasts as long): 375 a rank are
      ceil(375 / 98) = 4 lifetimes, the last with 375 - 3 x 98 = 81; each lasts 4 x b / (1,000 b) = 4 ms per output
      token, so 1,500 / (4 x 4 ms) = 93,750 tok/s, 3.83 / 4 of the steady 98,000.
    - 1,500 requests on 8 ranks of 368 places, T(b) = 8 b / (20 ms + 0.1 ms b): 187.5 a rank, one lifetime held by the
      busiest rank's 188: 8 x 188 / T(188) = 20 + 18.8 = 38.8 ms, 1,500 / 38.8 ms = 38,659.79 tok/s (the steady state
      8 x 368 / 56.8 ms = 51,830.99).
    - 1,500 requests on 4 ranks of 97.6 places (a fractional steady-state batch), the same step with 4 ranks: 375 a
      rank are ceil(3.842) = 4 lifetimes; a full one 4 x 97.6 / T(98) = 97.6 x 29.8 / 98 = 29.678367 ms, the last
      375 - 3 x 97.6 = 82.2, held by 83: 28.3 ms; 1,500 / (3 x 29.678367 + 28.3) ms = 1,500 / 117.335102 ms
      = 12,783.898 tok/s."""
    pub, _ = published()
    linear = pub.finite_run_tokens_s(requests=1500, ranks=4, slots=98, tokens_s_at=lambda b: 1000.0 * b)
    assert linear == pytest.approx(93_750.0, rel=1e-12)
    one = pub.finite_run_tokens_s(requests=1500, ranks=8, slots=368, tokens_s_at=lambda b: 8 * b / _step_s(b))
    assert one == pytest.approx(38_659.79381, rel=1e-9)
    assert 8 * 368 / _step_s(368) == pytest.approx(51_830.98592, rel=1e-9)
    calls: list[int] = []

    def at(b: int) -> float:
        calls.append(b)
        return 4 * b / _step_s(b)

    four = pub.finite_run_tokens_s(requests=1500, ranks=4, slots=97.6, tokens_s_at=at)
    assert four == pytest.approx(12_783.8982, rel=1e-8)
    assert sorted(set(calls)) == [83, 98]  # whole requests: the busiest rank of the last lifetime, ceil(97.6)


def test_finite_run_tends_to_the_steady_state() -> None:
    """Many more requests than places: the partial last lifetime fades and the run's figure tends to the steady
    state's, 4 x 98 / 29.8 ms = 13,154.362 tok/s. At 10^6 requests over 4 x 98 places: 250,000 a rank are 2,552
    lifetimes, the last with 250,000 - 2,551 x 98 = 2 a rank; 10^6 / (2,551 x 29.8 ms + 20.2 ms) = 10^6 / 76.04 s
    = 13,150.973 tok/s, 0.03 % under it. As many requests as places: one whole lifetime, exactly it."""
    pub, _ = published()

    def at(b: int) -> float:
        return 4 * b / _step_s(b)

    steady = at(98)
    assert steady == pytest.approx(13_154.3624, rel=1e-8)
    many = pub.finite_run_tokens_s(requests=1_000_000, ranks=4, slots=98, tokens_s_at=at)
    assert many == pytest.approx(13_150.9732, rel=1e-8)
    assert pub.finite_run_tokens_s(requests=392, ranks=4, slots=98, tokens_s_at=at) == pytest.approx(steady, rel=1e-12)
    assert pub.finite_run_tokens_s(requests=391, ranks=4, slots=98, tokens_s_at=at) < steady


def test_every_trtllm_table_row_has_the_pages_request_count() -> None:
    """The perf-overview pages' $num_requests table (v1.0 @00f37686 and v0.17 @258c7540, "Preparing a Dataset"; the
    same figures, 1000/2000 on the v1.0 page only) covers the lengths of every v1.0 and v0.17 row."""
    pub, data = published()
    lengths = {(r["isl"], r["osl"]) for r in data["runs"] if r["source"] in ("trtllm-1.0", "trtllm-0.17")}
    assert lengths <= set(pub.TRTLLM_NUM_REQUESTS)
    assert pub.TRTLLM_NUM_REQUESTS[(128, 128)] == 30000 and pub.TRTLLM_NUM_REQUESTS[(20000, 2000)] == 1000


def test_scout_h100_row_runs_four_lifetimes() -> None:
    """Llama 4 Scout 4 x H100 128/4096 (attention DP + EP): 1,500 requests are 375 a rank; the run's steady state
    (every rank's prompts in the same steps, published_compare.run_setup) runs 98.49 a rank (the KV pool's bound), so
    ceil(375 / 98.49) = 4 lifetimes, the last with 375 - 3 x 98.49 = 79.5 a rank, held by 80: kvplan's figure is
    1,500 / (3 x 4 x 98.49 / T + 4 x 80 / T(80)), T the run's steady state and T(80) the same at most 80 a rank:
    x1.65 steady (independent ranks), x1.64 as run (measured: the partial lifetime costs little where the requests
    fill the places several times over, and aligned ranks change little where the prompts are short). Before the
    per-tensor fp8 activation quantization and its fp8 refit: 98.24 a rank, the last lifetime 81, x1.67 and x1.66."""
    from kvplan.serving import Lengths, max_rate, serve

    pub, data = published()
    row = next(r for r in data["runs"] if r["model"] == "llama-4-scout-17b-16e" and r["gpu"] == "h100-sxm"
               and (r["isl"], r["osl"]) == (128, 4096) and "launch" in r)  # fmt: skip
    scored = pub.compare_runs([row])[0]
    s = pub.run_setup(row)
    inp, out = Lengths.of(128), Lengths.of(4096)
    top = max_rate(s, input_len=inp, output_len=out)
    # the run starts full: the fixed point a batch at the limits falls to (serve's full_start, stop 28)
    slots = serve(s, rate_rps=top * 0.999, input_len=inp, output_len=out, with_max_rate=False, with_p90=False,
                  with_p99=False, full_start=True).batch / 4  # fmt: skip
    assert slots == pytest.approx(98.49, abs=0.01)
    per_rank = 1500 / 4
    assert (math.ceil(per_rank / slots), math.ceil(per_rank - 3 * slots)) == (4, 80)
    steady = top * 4096
    last = pub.replica_tokens_s(pub.run_setup(row, max_batch=80), 128, 4096)
    by_hand = 1500 / (3 * 4 * slots / steady + 4 * 80 / last)
    assert scored["kvplan_tok_s"] == pytest.approx(by_hand, rel=1e-9)
    assert (round(scored["ratio_steady"], 2), round(scored["ratio"], 2)) == (1.65, 1.64)


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
    Llama 4 Scout 4 x H100 128/4096 (measured): x1.64 at 98.5 a rank, a 26.9 ms step that needs +17.3 ms (x1.66 at
    98.2, 26.6 ms and +17.6 ms before the per-tensor fp8 activation quantization and its fp8 refit)."""
    pub, data = published()
    row = next(r for r in data["runs"] if r["model"] == "llama-4-scout-17b-16e" and r["gpu"] == "h100-sxm"
               and (r["isl"], r["osl"]) == (128, 4096) and "launch" in r)  # fmt: skip
    x = pub.run_decode_terms(row)
    assert x["ratio"] == pytest.approx(pub.compare_runs([row])[0]["ratio"], rel=1e-12)
    assert x["needed_s"] == pytest.approx(x["times"].total * (x["ratio"] - 1), rel=1e-12)
    assert (round(x["batch"], 1), round(x["times"].total * 1e3, 1), round(x["needed_s"] * 1e3, 1)) == (98.5, 26.9, 17.3)
    (line,) = pub.run_residual_lines([row])
    assert line.startswith("run residual Llama 4 Scout    h100-sxm    128/4096    98.5 a rank x1.64: step  26.9 ms")
    dense = next(r for r in data["runs"] if r["source"] == "trtllm-1.0" and "launch" not in r)
    assert pub.run_residual_lines([dense]) == []  # attention-DP rows only

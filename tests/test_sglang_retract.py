"""SGLang's admission reserve for the running requests' outputs and its retraction (Engine.output_reserve,
kv_preemption "retract_fewest_outputs"; the rules and their sources in kvplan/engines/sglang.py OUTPUT_RESERVE):
kvplan.serving's KV bound and benchmarks/published_compare.py's RetractRun."""

from __future__ import annotations

import pytest

from kvplan.capacity import binding_pool, setup
from kvplan.catalog import load_bundled
from kvplan.engines import get_engine
from kvplan.hardware import resolve_gpu
from kvplan.serving import Lengths, _limits, _output_left, _reserved_tokens
from tests.benchmods import bench_module, published

H100 = resolve_gpu("h100-sxm")


@pytest.fixture(scope="module")
def qwen32b():
    return setup(load_bundled("qwen3-32b"), H100, engine="sglang@0.5")


def test_the_reserve_constants_as_read():
    r = get_engine("sglang").output_reserve
    # SGLANG_INIT_NEW_TOKEN_RATIO 0.7 x --schedule-conservativeness 1.0; floor 0.7 x 0.14 = 0.098; decay (0.7 - 0.098)
    # / 600 = 0.0010033 a decode step; clip 4,096; 20 tokens a request after a retraction
    assert r.start_ratio() == 0.7 and r.floor_ratio() == pytest.approx(0.098)
    assert r.decay() == pytest.approx(0.602 / 600)
    assert r.start_ratio(2.0) == 1.0  # min(0.7 x 2, 1)
    # after a retraction: (decoded + 20 x requests) / (asked + 1), at most 1
    assert r.ratio_after_retraction(decoded=3604, asked=4000, requests=4) == pytest.approx(3684 / 4001)
    assert r.ratio_after_retraction(decoded=990, asked=1000, requests=1) == 1.0
    assert get_engine("vllm").output_reserve is None and get_engine("trtllm").output_reserve is None


def test_output_left_by_hand():
    # a 512-token output in flight has 0..512 left, 256 on average; 10,000 tokens clipped at 4,096:
    # 4,096 - 4,096^2 / (2 x 10,000) = 4,096 - 838.8608 = 3,257.1392
    assert _output_left(Lengths.of(512), clip=4096) == 256
    assert _output_left(Lengths.of(10_000), clip=4096) == pytest.approx(3257.1392)


def test_kv_bound_with_the_reserve_by_hand(qwen32b):
    """Qwen3-32B BF16 on one H100, SGLang: a pool of 18,511 tokens. 2,048 in / 512 out: a running request holds
    2,048 + 256 and reserves 0.098 x 256 = 25.09 -> 2,329 tokens; the last one admitted needed 2,048 + 512 = 2,560
    free beyond the others: N = floor((18,511 - 2,560) / 2,329) + 1 = floor(6.849) + 1 = 7. Before the reserve the
    bound was the mean holding, 18,511 / 2,304 = 8.03 (the step-by-step scheduler, serving_sim.py --retract, runs
    6.9 on average past saturation)."""
    inp, out = Lengths.of(2048), Lengths.of(512)
    assert binding_pool(qwen32b, 2048)[0] == 18_511
    assert _reserved_tokens(qwen32b, inp, out) == 2329
    assert _limits(qwen32b, inp, out) == (7, "kv_cache")
    vllm = setup(load_bundled("qwen3-32b"), H100, engine="vllm")
    assert _reserved_tokens(vllm, inp, out) == 2304  # vLLM: no reserve, the mean holding as before


def test_dp_attention_scales_the_conservativeness_by_0_3():
    """server_args.py _handle_data_parallelism (0.5.3; parallel_hook.py in 0.5.23): schedule_conservativeness x 0.3
    under DP attention, so a running request's reserve is 0.7 x 0.3 x 0.14 = 0.0294 of its 256 output tokens to come
    (7.53 -> 7 tokens) instead of 0.098 (25.09 -> 25): 2,048 + 256 + 7 = 2,311 (Qwen3-30B-A3B, DP attention 2 on H200,
    2,048 in / 512 out); the library's attention_dp the same; --schedule-conservativeness 2 -> 0.6 -> 15."""
    from kvplan.engines import Settings

    r = get_engine("sglang").output_reserve
    assert r.dp_attention_scale == 0.3
    assert r.conservativeness(Settings(), dp_attention=True) == pytest.approx(0.3)
    assert r.floor_ratio(r.conservativeness(Settings(), dp_attention=True)) == pytest.approx(0.0294)
    inp, out = Lengths.of(2048), Lengths.of(512)
    dp = setup(load_bundled("qwen3-30b-a3b"), "h200", engine="sglang", tp=1, dp=2, ep=True)
    assert _reserved_tokens(dp, inp, out) == 2048 + 256 + 7
    lib = setup(load_bundled("qwen3-30b-a3b"), "h200", engine="sglang", tp=2, settings=Settings(attention_dp=2))
    assert _reserved_tokens(lib, inp, out) == 2048 + 256 + 7
    plain = setup(load_bundled("qwen3-30b-a3b"), "h200", engine="sglang", tp=2)
    assert _reserved_tokens(plain, inp, out) == 2048 + 256 + 25
    twice = setup(load_bundled("qwen3-30b-a3b"), "h200", engine="sglang", tp=1, dp=2, ep=True,
                  settings=Settings(schedule_conservativeness=2.0))  # fmt: skip
    assert _reserved_tokens(twice, inp, out) == 2048 + 256 + 15


def test_kv_bound_on_a_disaggregated_decode_instance_by_hand(qwen32b):
    """SGLang's decode instance (DecodePreallocQueue) keeps 512 tokens free for every request it holds and admits one
    whose prompt + 512 fit the rest: the same pool of 18,511 tokens, 2,048 in / 512 out: held 2,048 + 256 + 512 =
    2,816, E = 2,048 + 512 = 2,560, N = floor(15,951 / 2,816) + 1 = floor(5.66) + 1 = 6 (the prefill-side rule's 7
    before)."""
    inp, out = Lengths.of(2048), Lengths.of(512)
    assert _reserved_tokens(qwen32b, inp, out, prefilled=True) == 2816
    assert _limits(qwen32b, inp, out, prefilled=True) == (6, "kv_cache")


def test_schedule_conservativeness_scales_the_reserve(qwen32b):
    """``--schedule-conservativeness`` c (SGLang's flag, plan --rate): start min(0.7 c, 1), floor 0.14 x that. The
    Qwen3-32B pool of 18,511 tokens at 2,048 / 4,096 (4,096 not clipped: 2,048 to come on average): c = 1: held
    2,048 + 2,048 + int(0.098 x 2,048 = 200.7) = 4,296, E = 6,144, N = floor(12,367 / 4,296) + 1 = 3; c = 0 (no
    reserve): held 4,096, N = floor(12,367 / 4,096) + 1 = 4."""
    import dataclasses

    from kvplan.engines import Settings
    from kvplan.errors import InvalidInput

    inp, out = Lengths.of(2048), Lengths.of(4096)
    assert _limits(qwen32b, inp, out) == (3, "kv_cache")
    none = dataclasses.replace(qwen32b, settings=Settings(schedule_conservativeness=0.0))
    assert _reserved_tokens(none, inp, out) == 4096 and _limits(none, inp, out) == (4, "kv_cache")
    pub = bench_module("published_compare")
    run = pub.RetractRun(dataclasses.replace(qwen32b, settings=Settings(schedule_conservativeness=0.3)), budget=8192)
    assert run.ratio == pytest.approx(0.21) and run.floor == pytest.approx(0.0294)
    assert run.decay == pytest.approx((0.21 - 0.0294) / 600)
    with pytest.raises(InvalidInput, match="does not apply to engine 'vllm'"):
        setup(load_bundled("qwen3-32b"), H100, engine="vllm", settings=Settings(schedule_conservativeness=0.3))
    with pytest.raises(InvalidInput, match="expected a number >= 0"):
        setup(load_bundled("qwen3-32b"), H100, engine="sglang", settings=Settings(schedule_conservativeness=-1.0))


def _run(pool: int, *, budget: int):
    """A RetractRun on a real SGLang setup whose pool is set to ``pool`` tokens (the rules only; no step is priced)."""
    pub = bench_module("published_compare")
    run = pub.RetractRun(setup(load_bundled("qwen3-8b"), H100, engine="sglang"), budget=budget)
    run.free = pool
    return pub, run


def test_admission_of_a_small_batch_by_hand():
    """Pool 5,000 tokens, a 200-token prompt budget, six requests of 100 in / 1,000 out, ratio 0.7.
    Step 1: offset 0: #1 needs 100 + 1,000 = 1,100 < 5,000 (offset 1,100), #2 1,100 < 3,900 (2,200); budget spent.
    Step 2: two running with 999 left: offset 2 x 999 x 0.7 = 1,398.6, free 4,800: #3 1,100 < 3,401.4, #4 1,100 <
    2,301.4; budget spent. Step 3: offset 4 x 999 x 0.7 = 2,797.2, free 4,600: #5 1,100 < 1,802.8 (offset 3,897.2),
    #6 1,100 >= 702.8: refused, the batch full. Step 4 is a decode of five."""
    pub, run = _run(5000, budget=200)
    qs = [pub.Retractable(0.0, 100, 1000) for _ in range(6)]
    run.waiting.extend(qs)
    admitted = []
    for clock in (1.0, 2.0, 3.0):
        kind, batch = run.step(clock)
        assert kind == "prefill"
        admitted.append([qs.index(q) + 1 for q, _, _ in batch])
        run.finish(kind, batch, clock)
    assert admitted == [[1, 2], [3, 4], [5]]
    assert run.full and run.free == 4500 and list(run.waiting) == [qs[5]]
    kind, batch = run.step(4.0)
    assert kind == "decode" and len(batch) == 5
    assert run.ratio == pytest.approx(0.7 - 0.602 / 600)


def test_a_retraction_by_hand():
    """The same five running (each 100 + 1 token), 4,500 tokens free. Decode k takes 5 tokens: before decode 901
    none is left (4,500 - 5 x 900), each has 901 outputs and 1,000 tokens held. retract_decode: all tie on outputs
    and prompt, so the latest in the batch (#5) goes: 1,000 - 100 cached = 900 tokens freed, its prompt an evictable
    entry of 100; four fit. The ratio: (4 x 901 + 20 x 4) / (4 x 1,000 + 1) = 3,684 / 4,001 = 0.9208; the decode then
    takes 4: 896 free. Next step #6 needs 1,100 against 896 + 100 - 4 x 98 x 0.9208 = 635.1: refused.
    After 98 more decodes the four finish (1,099 tokens each, evictable): free 896 - 392 = 504. The running batch
    empty, the ratio back at 0.7: #6 is admitted (1,100 < 5,000, offset 1,100), then #5, its 100 cached tokens found
    (of 1,001; 100 + 901 outputs, 99 left to reserve): 901 to compute, a chunk of the 100 left of the budget."""
    pub, run = _run(5000, budget=200)
    qs = [pub.Retractable(0.0, 100, 1000) for _ in range(6)]
    run.waiting.extend(qs)
    clock = 0.0
    while not run.retractions:
        clock += 1.0
        kind, batch = run.step(clock)
        run.finish(kind, batch, clock)
    assert clock == 3 + 901
    assert run.running == qs[:4] and list(run.waiting) == [qs[5], qs[4]]
    assert qs[4].computed == 0 and qs[4].generated == 901 and qs[4].entry is not None
    assert run.ratio == pytest.approx(3684 / 4001)
    assert run.free == 896 and run.evictable_tokens == 100 and run.recomputed_tokens == 1000
    assert run.step(clock + 1)[0] == "decode" and run.full  # #6 refused: 1,100 >= 635.1
    run.finish("decode", run.running, clock + 1)
    for _ in range(97):
        clock += 1.0
        kind, batch = run.step(clock)
        assert kind == "decode"
        run.finish(kind, batch, clock)
    assert not run.running and run.free == 504 and run.evictable_tokens == 100 + 4 * 1099
    kind, batch = run.step(clock + 2)
    assert kind == "prefill" and [(qs.index(q), n, hit) for q, n, hit in batch] == [(5, 100, 0), (4, 100, 100)]
    assert run.chunked is qs[4] and run.recomputed_tokens == 900 and run.ratio == 0.7
    assert run.evictable_tokens == 4 * 1099 and run.free == 304


def test_the_plain_loop_where_nothing_is_refused_or_retracted():
    """Where every request fits at its longest (4 x (233 + 221) tokens in a pool of ~366,000), RetractRun schedules
    the plain closed loop's steps: the same run to the last bit."""
    pub = bench_module("published_compare")
    s = setup(load_bundled("qwen3-8b"), H100, engine="sglang")
    run = pub.RetractRun(s, budget=8192)
    assert run.always_fits(isl=233, osl=221, requests=4)
    plain = pub.closed_loop_trace(s, isl=233, osl=221, concurrency=4, prompts=12)
    assert plain["retractions"] == 0
    stepped = run.run(isl=233, osl=221, concurrency=4, prompts=12)
    for key in ("tok_s", "mean_ttft_s", "mean_tpot_s", "p99_itl_s"):
        assert stepped[key] == plain[key]
    assert stepped["retractions"] == 0


def test_glm_rows_run_by_the_rule():
    """GLM-4.6 FP8 on 4 x H200 (SGLang 0.5.3, GPUStack): 500 prompts of 4,000 / 200 at once into a pool of 483,436
    tokens: 116 admitted a wave at ratio 0.7 (each reserving 4,000 + 0.7 x 199 while the next asks 4,200), and each
    wave's last decodes run short: one retraction a wave, four in the run, the retracted prompt evicted before it
    comes back (its 4,000 + outputs computed again)."""
    pub, data = published()
    row = next(r for r in data["engine_benchmarks"] if r["engine"] == "sglang@0.5" and r["isl"] == 4000)
    tr = pub.engine_row_trace(row)
    assert tr["retractions"] == 4 and tr["recomputed_tokens"] == pytest.approx(4 * 4167, abs=10)


def test_the_steady_bound_against_the_scheduler_run_step_by_step(qwen32b):
    """benchmarks/serving_sim.py --retract: Qwen3-32B on one H100, 2,048 / 512 at 1.2 x kvplan's max rate (600
    Poisson arrivals, seed 1): SGLang's scheduler holds 6.9 running on average, against kvplan's bound of 7 (the
    pool's mean holding, 8.03, was 16 % high); the ratio sits at its floor."""
    from kvplan.serving import max_rate

    sim_mod = bench_module("serving_sim")
    inp, out = Lengths.of(2048), Lengths.of(512)
    rate = 1.2 * max_rate(qwen32b, input_len=inp, output_len=out)
    sim = sim_mod.simulate_retract(qwen32b, rate_rps=rate, isl=2048, osl=512, requests=600, budget=8192, warmup=100)
    assert sim.batch == pytest.approx(_limits(qwen32b, inp, out)[0], rel=0.05)
    assert sim.floor_share > 0.9

"""vLLM and SGLang published benchmark tables (``engine_benchmarks`` of benchmarks/data/published_throughput.json):
every row's setup and source, the stored scores recomputed, and the statistics' shape."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from kvplan.capacity import setup
from kvplan.engines import Settings

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
SETUP_KEYS = ("source", "engine", "engine_version", "model", "label", "checkpoint", "gpu", "gpus", "tp", "weights",
              "kv", "isl", "osl", "range_ratio", "concurrency", "published_tok_s")  # fmt: skip


def _published():  # noqa: ANN202
    sys.path.insert(0, str(BENCH))
    try:
        import published_compare as pub
    finally:
        sys.path.remove(str(BENCH))
    return pub, json.loads(pub.DATA.read_text())


def test_engine_table_rows_and_sources() -> None:
    pub, data = _published()
    sources, rows = data["engine_benchmark_sources"], data["engine_benchmarks"]
    by_source = {name: [r for r in rows if r["source"] == name] for name in sources}
    # 9 Nemotron Nano + 2 Nemotron Super 49B concurrency points and 2 sweep peaks (Nemotron Nano NVFP4, DeepSeek V3.2;
    # vLLM 0.16.0, B200); 3 DeepSeek-R1 points (SGLang 0.5.7, H200)
    assert {k: len(v) for k, v in by_source.items()} == {"vultr-b200-vllm": 13, "inferencex-sglang-h200": 3}
    assert sum(map(len, by_source.values())) == len(rows)
    for meta in sources.values():
        assert meta["url"].startswith("https://") and meta["engine"] and meta["method"] and meta["metric"]
        assert meta["kvplan_engine"]
    for r in rows:
        assert all(k in r for k in SETUP_KEYS), r
    assert {r["engine"] for r in by_source["vultr-b200-vllm"]} == {"vllm@0.8"}  # 0.16 -> kvplan's 0.8 rules
    assert {r["engine"] for r in by_source["inferencex-sglang-h200"]} == {"sglang"}
    # the InferenceX table publishes output tok/s per GPU; the row's figure is the TP8 group's
    for r in by_source["inferencex-sglang-h200"]:
        assert r["published_tok_s"] == pytest.approx(r["published_tok_s_per_gpu"] * r["gpus"], abs=0.05)
        # the launch script's: --num-prompts CONC x 10, --chunked-prefill-size 32768, --mem-fraction-static 0.82
        assert (r["num_prompts"], r["max_num_batched_tokens"], r["mem_fraction_static"]) == (40, 32768, 0.82)
    # the methodology page's prompt counts: 50 at concurrency 1 (and for Nemotron Super 49B), 400 above; DeepSeek V3.2
    # 4 x concurrency
    assert [r["num_prompts"] for r in by_source["vultr-b200-vllm"]] == [50] + [400] * 8 + [50, 50, 400, 2048]


def test_engine_table_scores_recompute_from_the_data_file() -> None:
    pub, data = _published()
    for r in data["engine_benchmarks"]:
        score = pub.score_engine_row(r)
        assert score["kvplan_tok_s"] == pytest.approx(r["kvplan_tok_s"], rel=1e-3), r["label"]
        assert score["ratio"] == pytest.approx(r["ratio"], rel=1e-3)
        assert score["ratio_steady"] == pytest.approx(r["ratio_steady"], rel=1e-3)
        assert r["verdict"] == ("within 20%" if abs(r["ratio"] - 1) <= pub.TARGET else "missed")
        assert r["kvplan_max_num_seqs"] == r["concurrency"]  # every published concurrency is within the cap


def test_engine_table_statistics_shape() -> None:
    pub, data = _published()
    rows = data["engine_benchmarks"]
    lines = pub.engine_rows_summary(rows, data["engine_benchmark_sources"])
    assert [line.split(" ", 1)[0] for line in lines] == ["vultr-b200-vllm", "inferencex-sglang-h200", "vLLM"]
    assert lines[0].startswith("vultr-b200-vllm (vLLM 0.16.0): 13 points compared, 0 not scored; median |ln ratio| ")
    assert lines[-1].startswith("vLLM + SGLang tables: 16 points compared")
    s = pub.stats(rows)
    errs = sorted(abs(math.log(r["ratio"])) for r in rows)
    assert s["compared"] == 16 and s["worst_abs_ln"] == pytest.approx(errs[-1])
    assert s["within_20pct"] == sum(r["verdict"] == "within 20%" for r in rows)


def test_range_ratio_lengths_by_hand() -> None:
    pub, _ = _published()
    fixed_in, fixed_out = pub.engine_row_lengths({"range_ratio": 0, "isl": 2048, "osl": 512})
    assert (fixed_in.mean, fixed_in.p99, fixed_out.mean, fixed_in.sd) == (2048, 2048, 512, None)
    # uniform on [0.8 x 1024, 1024] = [819.2, 1024]: mean 921.6 -> 922; p90 819.2 + 0.9 x 204.8 = 1003.5 -> 1004
    # (round half to even of 1003.52 -> 1004); p99 819.2 + 0.99 x 204.8 = 1021.95 -> 1022; sd 204.8 / sqrt(12) = 59.12
    inp, _ = pub.engine_row_lengths({"range_ratio": 0.8, "isl": 1024, "osl": 1024})
    assert (inp.mean, inp.p90, inp.p99) == (922, 1004, 1022)
    assert inp.sd == pytest.approx(59.12, abs=0.01)


def test_sglang_max_running_requests_caps_the_batch() -> None:
    # SGLang admits no prompt while the running batch holds max_running_requests (Scheduler.get_new_batch_prefill):
    # kvplan's Setup carries the cap where it is given, and none of its own otherwise (the KV pool bounds it).
    capped = setup("llama-3.1-8b", "h100-sxm", engine="sglang", settings=Settings(max_num_seqs=4))
    free = setup("llama-3.1-8b", "h100-sxm", engine="sglang")
    assert capped.max_num_seqs == 4 and free.max_num_seqs is None


def test_closed_loop_run_by_hand() -> None:
    # One request, one output token: one prefill step of the whole prompt (no decodes, no prefix): 1 token / step.
    # Two output tokens: that step, then one decode step at the prompt's context (1 generated token rounds to 0
    # in 64-token buckets): 2 tokens / (prefill + decode).
    from kvplan.serving import _step

    pub, _ = _published()
    s = setup("llama-3.1-8b", "h100-sxm", engine="vllm", weights_dtype="bf16", kv_dtype_name="bf16",
              settings=Settings(max_num_seqs=1))  # fmt: skip
    prefill = _step(s, n=0.0, p=1024.0, context=1024, prefix=0)
    decode = _step(s, n=1.0, p=0.0, context=1024, prefix=0)
    one = pub.closed_loop_run(s, isl=1024, osl=1, concurrency=1, prompts=1)
    two = pub.closed_loop_run(s, isl=1024, osl=2, concurrency=1, prompts=1)
    assert one == pytest.approx(1 / prefill) and two == pytest.approx(2 / (prefill + decode))
    # Three prompts of 1,024 tokens at concurrency 3 with a 2,048-token budget: the first step prefills two prompts,
    # the second has their two decodes (their second and last tokens) and the third prompt (2 + 1,024 <= 2,048
    # tokens), the third its one decode: 3 x 2 tokens over the three steps.
    s3 = setup("llama-3.1-8b", "h100-sxm", engine="vllm", weights_dtype="bf16", kv_dtype_name="bf16",
               settings=Settings(max_num_seqs=3, max_num_batched_tokens=2048))  # fmt: skip
    first = _step(s3, n=0.0, p=2048.0, context=1024, prefix=0)
    second = _step(s3, n=2.0, p=1024.0, context=1024, prefix=0)
    run = pub.closed_loop_run(s3, isl=1024, osl=2, concurrency=3, prompts=3)
    third = _step(s3, n=1.0, p=0.0, context=1024, prefix=0)
    assert run == pytest.approx(3 * 2 / (first + second + third))


def test_closed_loop_run_saturates_at_the_prompt_count() -> None:
    # Concurrency above the prompt count changes nothing: every prompt is issued at once either way (the published
    # Nemotron Nano rows at 512 and 1,024 concurrent with 400 prompts: 18,746 and 18,829 tok/s).
    pub, data = _published()
    rows = [r for r in data["engine_benchmarks"] if r["concurrency"] in (512, 1024) and "(FP8, TP=2)" in r["label"]]
    assert len(rows) == 2 and rows[0]["kvplan_tok_s"] == pytest.approx(rows[1]["kvplan_tok_s"])


def test_engine_results_not_scored_carry_their_reason() -> None:
    _, data = _published()
    rows = data["engine_benchmarks_not_scored"]
    assert len(rows) == 8
    for r in rows:
        assert r["url"].startswith("https://") and r["engine"] and r["published"] and r["not_scored"]

"""benchmarks/fit_host.py: vLLM's serving loop in turn, its host time fitted on GPUStack's --async-scheduling pairs,
and the GPUStack vLLM rows scored with it (published_compare.row_host)."""

from __future__ import annotations

import json

import pytest

from tests.benchmods import bench_module, published

fit_host = bench_module("fit_host")


def _data() -> dict:
    return json.loads(fit_host.DATA.read_text())


def test_pairs_name_their_runs_and_reasons() -> None:
    data = _data()
    pairs = data["pairs"]
    assert len(pairs) == 13 and sum("not_in_fit" not in p for p in pairs) == data["fit"]["pairs"] == 7
    for p in pairs:
        assert p["page"].endswith(".md") and p["launch"].startswith("vllm serve ")
        for side in ("sync", "async"):
            assert p[side]["line"] > 0 and p[side]["duration_s"] > 0 and p[side]["generated"] > 0
        # in every pair but one the in-turn run is the longer (the differences are what is fitted); the one: the H100
        # 32000/100 pair, 0.04 s apart in 108 s (the runs' spread)
        if "not_in_fit" in p:
            assert p["not_in_fit"]
    shorter = [p["label"] for p in pairs if fit_host.measured_difference_s(p) <= 0]
    assert shorter == ["gpt-oss-20b H100 random 32000/100"]


def test_least_squares_recovers_the_figures_and_keeps_them_non_negative() -> None:
    a, b = 0.5e-3, 20e-6
    terms = [(0.01, s, r, 0.01 + a * s + b * r, 1.0) for s, r in ((200, 40_000), (5_000, 20_000), (1_000, 60_000))]
    assert fit_host.least_squares(terms) == (pytest.approx(a), pytest.approx(b))
    # differences a negative per-request figure would fit best: that figure is held at 0 and the step's refitted
    terms = [(0.0, 100, 1_000, 1.0, 1.0), (0.0, 100, 2_000, 0.9, 1.0)]
    step_s, request_s = fit_host.least_squares(terms)
    assert request_s == 0.0 and step_s == pytest.approx(0.95 / 100)


def test_stored_fit_is_the_least_squares_of_its_stored_terms() -> None:
    data = _data()
    stored = data["fit"]
    by_label = {p["label"]: p for p in data["pairs"]}
    terms = [fit_host.fit_terms(by_label[label], *t) for label, t in stored["terms"].items()]
    step_s, request_s = fit_host.least_squares(terms)
    assert step_s == pytest.approx(stored["step_s"], rel=2e-3)
    assert request_s == pytest.approx(stored["request_s"], rel=2e-3)
    assert 0.3e-3 < stored["step_s"] < 1e-3 and 5e-6 < stored["request_s"] < 50e-6


def test_the_small_batch_pair_reproduces_its_stored_terms() -> None:
    # gpt-oss-120b on the A100 node, ShareGPT at four requests a time (vLLM 0.11.0): about one step per four output
    # tokens (21,691 tokens, 100 prompts: ~5,400 steps), one request per token; the pair that pins the step's part
    data = _data()
    label = "gpt-oss-120b A100 ShareGPT concurrency 4"
    pair = next(p for p in data["pairs"] if p["label"] == label)
    base, per_step, per_request = fit_host.slopes(pair)
    want = data["fit"]["terms"][label]
    assert (base, per_step, per_request) == (pytest.approx(want[0], abs=1e-3), pytest.approx(want[1], rel=1e-3),
                                             pytest.approx(want[2], rel=1e-3))  # fmt: skip
    assert 5_000 < per_step < 5_800 and 21_000 < per_request < 22_500
    at_fit = fit_host.predicted_difference_s(pair, data["fit"]["step_s"], data["fit"]["request_s"])
    assert at_fit == pytest.approx(fit_host.measured_difference_s(pair), rel=0.1)  # 3.54 s measured


def test_async_scheduling_row_runs_one_step_ahead_and_hides_a_small_host_time() -> None:
    pub, _ = published()
    pair = next(p for p in _data()["pairs"] if p["label"] == "gpt-oss-20b H100 random 2000/100")
    sync, ahead = fit_host.run_row(pair, "sync"), fit_host.run_row(pair, "async")
    assert pub.engine_row_setup(sync, host=(None, None)).engine.host_loop.overlaps_gpu is False
    assert pub.engine_row_setup(ahead, host=(None, None)).engine.host_loop.overlaps_gpu is True
    host = (0.5e-3, 20e-6)
    assert fit_host.duration_s(ahead, *host) == pytest.approx(fit_host.duration_s(ahead, None, None), rel=1e-9)
    assert fit_host.duration_s(sync, *host) > fit_host.duration_s(sync, None, None) + 1.0  # ~220 steps, ~47k requests
    with pytest.raises(ValueError, match="vLLM launch flag"):
        pub.engine_row_setup({**ahead, "engine": "sglang@0.5"})


def test_row_host_goes_to_the_gpustack_vllm_rows_only() -> None:
    pub, data = published()
    fit = _data()["fit"]
    given = {}
    for r in data["engine_benchmarks"]:
        s = pub.engine_row_setup(r)
        given[r["source"], r["engine"]] = (s.settings.host_step_s, s.settings.host_request_s)
    assert given["gpustack-perf-lab", "vllm@0.8"] == (fit["step_s"], fit["request_s"])
    for key in (("gpustack-perf-lab", "sglang@0.5"), ("vultr-b200-vllm", "vllm@0.16"),
                ("vllm-recipes-h200", "vllm@0.8"), ("inferencex-sglang-h200", "sglang@0.5")):  # fmt: skip
        assert given[key] == (None, None), key


def test_qwen3_8b_decode_with_the_host_time() -> None:
    # GPUStack's Qwen3-8B ShareGPT run, one request at a time on an H100 (vLLM 0.11.0): mean TPOT 7.28 ms printed.
    # kvplan's GPU step alone 6.5 ms (x0.89); with the loop's host time in turn ~7.1 ms
    pub, data = published()
    row = next(r for r in data["engine_benchmarks"] if r["model"] == "qwen3-8b" and r["concurrency"] == 1
               and r["engine"] == "vllm@0.8")  # fmt: skip
    gpu_only = pub.engine_row_trace(row, host=(None, None))["mean_tpot_s"]
    with_host = pub.engine_row_trace(row)["mean_tpot_s"]
    fit = _data()["fit"]
    assert with_host - gpu_only == pytest.approx(fit["step_s"] + fit["request_s"], rel=1e-6)
    assert gpu_only * 1e3 / 7.28 < 0.9 and with_host * 1e3 / 7.28 == pytest.approx(1.0, abs=0.05)

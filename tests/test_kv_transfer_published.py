"""kvplan's KV transfer term against published measurements (benchmarks/kv_transfer_compare.py): the stored
figures are what the model computes now, and the points keep their sources."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("kv_transfer_compare", ROOT / "benchmarks" / "kv_transfer_compare.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench():
    return _bench()


@pytest.fixture(scope="module")
def data(bench):
    return bench.load()


@pytest.fixture(scope="module")
def done(bench, data):
    return bench.compare(data)


def test_every_point_has_a_source_with_its_setup(data):
    for key in ("transfers", "bulk", "end_to_end", "pool_throughput"):
        for row in data[key]:
            src = data["sources"][row["source"]]
            assert src["url"].startswith("https://github.com/"), row
    for name in {r["source"] for r in data["transfers"]}:
        src = data["sources"][name]
        for field in ("engine", "model", "gpu_published", "prefill_tp", "decode_tp", "network", "nic_gbps_per_gpu"):
            assert src[field], (name, field)


def test_stored_figures_are_recomputed(data, done):
    # --update-data wrote them; any change to the KV arithmetic, the transfer term or the EP step shows here
    for key in ("transfers", "bulk", "end_to_end", "pool_throughput"):
        for stored, now in zip(data[key], done[key], strict=True):
            for field, value in now.items():
                if field.startswith("kvplan_") or field in ("ratio", "size_ratio"):
                    assert stored[field] == pytest.approx(value, rel=1e-6), (key, stored.get("prompt_tokens"), field)


def test_transfer_by_hand(done):
    # SGLang, Qwen3-235B-A22B TP8 -> TP8, 32768 tokens: TP8 over 4 KV heads keeps one head per rank,
    # 94 layers x 1 x 128 x 2 (K, V) x 2 B = 48,128 B per token per rank; x 32768 = 1,577,058,304 B per rank,
    # 8 ranks = 12,616,466,432 B (the page: 12.62 GB). Over 25 GB/s per GPU at 0.837: 20 us + 1.577e9 /
    # 20.925e9 s = 0.020 + 75.367 = 75.387 ms (the figure before the per-entry cost), plus 94 layers x 2 (K, V
    # buffers) = 188 entries x 5.95 us = 1.119 ms: 76.506 ms against the measured 76.78 ms (x0.98 -> x1.00).
    row = next(r for r in done["transfers"] if r["source"] == "mooncake-sglang" and r["prompt_tokens"] == 32768)
    assert row["kvplan_bytes_per_rank"] == 1_577_058_304 and row["kvplan_bytes_total"] == 12_616_466_432
    assert row["kvplan_entries"] == 188 and row["kvplan_entry_ms"] == pytest.approx(1.1186, abs=1e-4)
    assert row["kvplan_ms"] == pytest.approx(0.020 + 1_577_058_304 / (25e9 * 0.837) * 1e3 + 1.1186, rel=1e-4)
    assert row["ratio"] == pytest.approx(76.506 / 76.78, rel=1e-3)
    # vLLM, Qwen3-8B TP8 -> TP8, 128 tokens: 36 layers x 2 = 72 entries x 5.95 us = 0.428 ms; 36 x 1 KV head x 128
    # x 2 x 2 B x 128 tokens = 2,359,296 B per rank: 0.020 + 2.359e6 / 20.925e9 s = 0.133 ms; 0.561 ms in all
    # against the measured 0.54 ms (x0.25 before the entries, x1.04 with them).
    row = next(r for r in done["transfers"] if r["source"] == "mooncake-vllm" and r["prompt_tokens"] == 128)
    assert row["kvplan_entries"] == 72 and row["kvplan_bytes_per_rank"] == 2_359_296
    assert row["kvplan_ms"] == pytest.approx(0.020 + 2_359_296 / 20.925e9 * 1e3 + 72 * 5.95e-3, rel=1e-4)
    assert row["ratio"] == pytest.approx(0.5612 / 0.54, rel=1e-3)


def test_kvplan_bytes_match_the_published_sizes(done):
    # SGLang's sizes are decimal and exact; vLLM's are binary, with its chat template's tokens on top at short
    # prompts (within 1 % from 2048 tokens up, up to 11 % at 128).
    for r in done["transfers"]:
        tol = 0.01 if r["source"] == "mooncake-sglang" or r["prompt_tokens"] >= 2048 else 0.12
        assert r["size_ratio"] == pytest.approx(1, abs=tol), r
    for r in done["bulk"]:  # LLaMA3-70B, 128k tokens: 80 x 8 x 128 x 2 x 2 B x 131072 = 40 GiB
        assert r["kvplan_bytes_total"] == 40 * 2**30


def test_the_bandwidth_term_holds_for_large_transfers(bench, done, data):
    # From 8192 tokens the transfer is bandwidth-bound: latency + bandwidth alone is within 20 % of every
    # measurement there (x0.82-x0.98); below 2048 tokens it misses the fixed per-transfer cost (x0.15-x0.61), which
    # the per-entry term supplies (next test).
    from kvplan.latency import NETWORK_BW_EFF

    plain = bench.rescored(done["transfers"], 0.0)
    big = [r for r in plain if r["prompt_tokens"] >= 8192]
    assert len(big) == 6 and all(0.8 <= r["ratio"] <= 1.0 for r in big)
    small = [r for r in plain if r["prompt_tokens"] < 2048]
    assert all(r["ratio"] < 0.7 for r in small)
    # a line through each source's points lands its bandwidth within 10 % of kvplan's NIC efficiency (fitted to
    # DeepEP's all-to-all tables, an independent source)
    for source in ("mooncake-vllm", "mooncake-sglang"):
        _, gb_s = bench.line_fit([r for r in done["transfers"] if r["source"] == source])
        share = gb_s / data["sources"][source]["nic_gbps_per_gpu"]
        assert share == pytest.approx(NETWORK_BW_EFF, rel=0.10), source


def test_end_to_end_rows_are_scored_or_say_why_not(done):
    scored = [r for r in done["end_to_end"] if "ratio" in r]
    assert len(scored) == 9 and all(r["source"] == "mooncake-vllm" for r in scored)
    for r in scored:  # TTFT = prefill + transfer + the decode instance's first step (vLLM)
        parts = r["kvplan_prefill_ms"] + r["kvplan_transfer_ms"] + r["kvplan_first_step_ms"]
        assert r["kvplan_ttft_ms"] == pytest.approx(parts, abs=2e-3)
        assert math.isfinite(r["ratio"])
    assert all(r["not_compared"] for r in done["end_to_end"] if "ratio" not in r)


def test_pool_throughput_rows_are_scored_or_say_why_not(done):
    # LMSYS large-scale EP (DeepSeek-V3, H100): the 4K prefill pool and the batch-256 decode pool are scored
    # (kvplan x0.54 and x0.79 with the run's DeepEP and two-batch overlap, x0.30 and x0.52 without the overlap:
    # its all-to-all and MoE terms, docs/cost.md); the others say why not.
    rows = done["pool_throughput"]
    scored = [r for r in rows if "ratio" in r]
    assert [(r["phase"], r["nodes"]) for r in scored] == [("prefill", 4), ("decode", 9)]
    for r in scored:
        assert r["kvplan_alltoall_s"] > 0 and r["kvplan_moe_s"] > 0 and r["kvplan_step_s"] > r["kvplan_alltoall_s"]
        tokens = r.get("tokens_per_rank", r.get("batch_per_rank"))
        assert r["kvplan_tok_s_per_node"] == pytest.approx(8 * tokens / r["kvplan_step_s"], rel=1e-4)
    assert all(r["not_compared"] for r in rows if "ratio" not in r)


def test_the_per_entry_cost_is_fitted_to_one_run_and_holds_on_the_other(bench, done):
    # MOONCAKE_ENTRY_S is what --fit gives on the vLLM run alone (5.95 us); the SGLang run (Qwen3-235B on H20-3e,
    # another engine, model, GPU and network) is held out: with the constant its nine transfers score median |ln|
    # 0.095, worst 0.401 (x0.67 at 256 tokens), 6 of 9 within 20 %; without it 0.307 / 1.885, 4 of 9.
    from kvplan.disagg import MOONCAKE_ENTRY_S

    fitted = bench.fit_entry_s([r for r in done["transfers"] if r["source"] == bench.FIT_SOURCE])
    assert fitted == pytest.approx(MOONCAKE_ENTRY_S, rel=5e-3)
    held = bench.stats([r for r in done["transfers"] if r["source"] != bench.FIT_SOURCE])
    assert held["compared"] == 9 and held["within_20pct"] == 6
    assert held["median_abs_ln"] == pytest.approx(0.095, abs=1e-3)
    assert held["worst_abs_ln"] == pytest.approx(0.401, abs=1e-3)
    before = bench.stats(bench.rescored([r for r in done["transfers"] if r["source"] != bench.FIT_SOURCE], 0.0))
    assert before["median_abs_ln"] == pytest.approx(0.307, abs=1e-3)
    assert before["worst_abs_ln"] == pytest.approx(1.885, abs=1e-3) and before["within_20pct"] == 4
    # the other direction: fitted to SGLang alone (9.56 us per entry), the vLLM run scores within a factor 1.6
    reverse = bench.fit_entry_s([r for r in done["transfers"] if r["source"] != bench.FIT_SOURCE])
    assert reverse == pytest.approx(9.56e-6, rel=5e-3)
    vllm = bench.stats(bench.rescored([r for r in done["transfers"] if r["source"] == bench.FIT_SOURCE], reverse))
    assert vllm["worst_abs_ln"] < math.log(1.6)

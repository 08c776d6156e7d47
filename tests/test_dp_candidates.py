"""``published_compare.py --dp-candidates``: the TensorRT-LLM v1.0 attention-DP rows under the readings no source
fixes for v1.0 (eager attention-DP steps, attention TP + EP, the per-rank batch that would explain each row).
Nothing of these is kept in kvplan; the tests hold that the diagnostics restore what they replace and compute what
they say.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmods import published

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _row(data: dict, model: str, gpu: str, isl: int, osl: int) -> dict:
    return next(r for r in data["runs"] if r["model"] == model and r["gpu"] == gpu and r["isl"] == isl
                and r["osl"] == osl and r["source"] == "trtllm-1.0" and "launch" in r)  # fmt: skip


def test_eager_dp_steps_price_attention_dp_steps_eagerly_and_restore() -> None:
    """Inside the block a DP decode step takes the eager kernel cost (dearer than the graph replay) and a TP step is
    untouched; after it the module's context builder is the original again. Measured (--dp-candidates): Llama 4 Scout
    4 x H100 128/4096 as scored x1.67, with eager unpadded DP steps x1.37 (the GPU side only)."""
    pub, data = published()
    import kvplan.latency as latency
    from kvplan.capacity import setup

    original = latency._engine_ctx
    s = setup("llama-4-scout-17b-16e", "h100-sxm", engine="trtllm", tp=1, dp=4, ep=True, weights_dtype="fp8",
              kv_dtype_name="fp8")  # fmt: skip
    kw = dict(decode_context=2176, prefill_tokens=0, kv_dtype_name="fp8", weights_dtype="fp8", engine="trtllm",
              expert_parallel=True)  # fmt: skip
    graph = latency.mixed_step_latency(s.spec, s.gpu, decode_seqs=392, tp=1, dp=4, **kw).total
    tp4 = latency.mixed_step_latency(s.spec, s.gpu, decode_seqs=392, tp=4, dp=1, **kw).total
    with pub.eager_dp_steps():
        assert latency._engine_ctx is not original
        eager = latency.mixed_step_latency(s.spec, s.gpu, decode_seqs=392, tp=1, dp=4, **kw).total
        assert latency.mixed_step_latency(s.spec, s.gpu, decode_seqs=392, tp=4, dp=1, **kw).total == tp4
    assert latency._engine_ctx is original
    assert eager > graph
    scout = _row(data, "llama-4-scout-17b-16e", "h100-sxm", 128, 4096)
    scored = pub._row_tokens_s(scout) / scout["published_tok_s"]
    assert scored == pytest.approx(1.67, abs=0.01)
    assert pub.eager_ratio(scout) == pytest.approx(1.37, abs=0.01)
    assert pub._row_tokens_s(scout) / scout["published_tok_s"] == scored  # nothing kept


def test_implied_rank_batch_is_the_smallest_cap_above_the_published_figure() -> None:
    """The bisection returns the per-rank cap B with kvplan's figure above the published one at B and not at B - 1,
    and the KV capacity kvplan's batch is bound by (98 a rank for Scout on 4 x H100 at 128/4096, where B is 47);
    a row kvplan underestimates (Maverick 8 x H200 20000/2000, x0.57) has none."""
    pub, data = published()
    scout = _row(data, "llama-4-scout-17b-16e", "h100-sxm", 128, 4096)
    batch, capacity = pub.implied_rank_batch(scout)
    assert capacity == 98 and batch == 47

    def tokens(cap: int) -> float:
        return pub.replica_tokens_s(pub._setup_with(scout, max_batch=cap), scout["isl"], scout["osl"])

    assert tokens(batch) > scout["published_tok_s"] >= tokens(batch - 1)
    maverick = _row(data, "llama-4-maverick-17b-128e", "h200", 20000, 2000)
    assert pub.implied_rank_batch(maverick)[0] is None


def test_dp_candidate_lines_one_per_row_and_a_summary_per_weight_dtype() -> None:
    """Two rows (FP8 Scout 4 x H100, NVFP4 Qwen3 8 x B200): a line each with the scored, eager and attention-TP
    ratios and the implied batch, then one statistics line per weight dtype; the attention-TP reading is that split
    (Scout 4 x H100 128/4096 x1.91: attention over TP4, whole experts over the four ranks)."""
    pub, data = published()
    picked = [
        _row(data, "llama-4-scout-17b-16e", "h100-sxm", 128, 4096),
        _row(data, "qwen3-235b-a22b", "b200", 128, 128),
    ]
    scored = pub.compare_runs(picked)
    rows = pub.dp_candidate_rows(scored)
    lines = pub.dp_candidate_lines(rows)
    assert len(lines) == 4
    assert lines[0].startswith(
        "dp-candidates Llama 4 Scout  h100-sxm  DP4 EP4  128/4096  fp8  1.67  1.37  1.91  47 (0.48) of 98"
    )
    assert "  - of " in lines[1]  # kvplan below the published figure: no implied batch
    assert lines[2].startswith("dp-candidates fp8 attention-DP rows: as scored 0/1 within 20%")
    assert lines[3].startswith("dp-candidates nvfp4 attention-DP rows: as scored 1/1 within 20%")
    table = pub.dp_candidate_lines(rows, markdown=True)
    assert table[0].startswith("| model | GPU | split |") and table[2].startswith("| Llama 4 Scout | h100-sxm |")


def test_known_batch_line_compares_the_step_at_the_published_concurrency_by_hand() -> None:
    """TensorRT-LLM#3439's DeepSeek-R1-FP8 8 x H200 run: 159 sequences a rank x 8 ranks / 10,036.3364 output tokens/s
    = 126.74 ms a step (by hand). kvplan, capped at 159 a rank, runs 158 a rank at 111.0 ms (x1.14, +15.8 ms);
    with its own KV-bound batch, 300 a rank, x1.39."""
    pub, _ = published()
    line = pub.known_batch_line()
    assert line.startswith("dp-candidates known batch: deepseek-v3 h200 DP8 EP8 1024/2048 at 159 a rank")
    assert round(159 * 8 / 10036.3364 * 1e3, 1) == 126.7
    assert "published step 126.7 ms" in line
    assert "kvplan 111.0 ms at 158 a rank, x1.14, residual +15.8 ms; kvplan's own batch 300 a rank: x1.39" in line


def test_later_page_rows_are_scored_apart_per_gpu() -> None:
    """The later page's FP8 attention-DP rows (per-GPU output tokens/s) are scored with the v1.0 setup, one line per
    model and GPU, and stay out of the v1.0 statistics. Measured: Qwen3-235B-A22B 8 x H100 1024/8192 x1.23 (kvplan
    1,072 tokens/s a GPU against 873), Maverick 8 x H200 8192/1024 x0.45 (x0.42 before stop 22: its chunked layers now
    read only the current chunk at decode, (8,704 - 1) mod 8,192 + 1 = 512 keys at the mean context, not 8,192)."""
    pub, data = published()
    lines = pub.later_page_lines()
    assert len(lines) == len(pub.LATER_PAGE_DEP_ROWS) == 3
    assert lines[0].startswith("dp-candidates later page: qwen3-235b-a22b h100-sxm DEP8: 1000/1000 x")
    assert "1024/8192 x1.23" in lines[0] and "8192/1024 x0.45" in lines[2]
    assert not any(r["source"] not in ("trtllm-1.0", "trtllm-0.17") for r in data["runs"])  # not stored as runs

"""``published_compare.py --dp-candidates``: the TensorRT-LLM v1.0 attention-DP rows under the readings no source
fixes for v1.0 (eager attention-DP steps, attention TP + EP, the exchange's per-root NCCL ops at a latency each, the
per-rank batch that would explain each row).
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
    # 1.67 and 1.37 before the per-tensor fp8 activation quantization and its refit of the fp8 scales; 1.65 before
    # trtllm-bench's own 2,048-token budget (stop 29: a smaller dummy forward, a larger pool, a larger steady batch)
    assert scored == pytest.approx(1.68, abs=0.01)
    assert pub.eager_ratio(scout) == pytest.approx(1.36, abs=0.01)
    assert pub._row_tokens_s(scout) / scout["published_tok_s"] == scored  # nothing kept


def test_implied_rank_batch_is_the_smallest_cap_above_the_published_figure() -> None:
    """The bisection returns the per-rank cap B with kvplan's figure above the published one at B and not at B - 1,
    and the KV capacity kvplan's batch is bound by (101 a rank for Scout on 4 x H100 at 128/4096 with trtllm-bench's
    own 2,048-token budget, 98 before stop 29, where B is 47); a row kvplan underestimates (Maverick 8 x H200
    20000/2000, x0.57) has none."""
    pub, data = published()
    scout = _row(data, "llama-4-scout-17b-16e", "h100-sxm", 128, 4096)
    batch, capacity = pub.implied_rank_batch(scout)
    assert capacity == 101 and batch == 47

    def tokens(cap: int) -> float:
        return pub.replica_tokens_s(pub._setup_with(scout, max_batch=cap), scout["isl"], scout["osl"])

    assert tokens(batch) > scout["published_tok_s"] >= tokens(batch - 1)
    maverick = _row(data, "llama-4-maverick-17b-128e", "h200", 20000, 2000)
    assert pub.implied_rank_batch(maverick)[0] is None


def test_dp_candidate_lines_one_per_row_and_a_summary_per_weight_dtype() -> None:
    """Two rows (FP8 Scout 4 x H100, NVFP4 Qwen3 8 x B200): a line each with the steady-state, eager, attention-TP and
    per-root-op ratios and the implied batch, then one statistics line per weight dtype; the attention-TP reading is
    that split (Scout 4 x H100 128/4096 x1.91: attention over TP4, whole experts over the four ranks). Every reading
    is a steady state, so the first column is the row's steady state (``ratio_steady``), not its finite-run score
    (x1.63 for that row since stop 24: the column was "as scored", the same 1.67, before the finite run)."""
    pub, data = published()
    picked = [
        _row(data, "llama-4-scout-17b-16e", "h100-sxm", 128, 4096),
        _row(data, "qwen3-235b-a22b", "b200", 128, 128),
    ]
    scored = pub.compare_runs(picked)
    rows = pub.dp_candidate_rows(scored)
    lines = pub.dp_candidate_lines(rows)
    assert len(lines) == 4
    # 1.67 1.37 1.91 1.41 before the per-tensor fp8 activation quantization and its refit of the fp8 scales; 1.65 1.36
    # 1.84 1.39 47 (0.48) of 98 before trtllm-bench's own token budget (stop 29)
    assert lines[0].startswith(
        "dp-candidates Llama 4 Scout  h100-sxm  DP4 EP4  128/4096  fp8  1.68  1.36  1.84  1.42  47 (0.47) of 101"
    )
    assert "  - of " in lines[1]  # kvplan below the published figure: no implied batch
    assert lines[2].startswith("dp-candidates fp8 attention-DP rows: steady state 0/1 within 20%")
    assert lines[3].startswith("dp-candidates nvfp4 attention-DP rows: steady state 1/1 within 20%")
    table = pub.dp_candidate_lines(rows, markdown=True)
    assert table[0].startswith("| model | GPU | split |") and table[2].startswith("| Llama 4 Scout | h100-sxm |")


def test_known_batch_line_compares_the_step_at_the_published_concurrency_by_hand() -> None:
    """TensorRT-LLM#3439's DeepSeek-R1-FP8 8 x H200 run: 159 sequences a rank x 8 ranks / 10,036.3364 output tokens/s
    = 126.74 ms a step (by hand). kvplan, capped at 159 a rank, runs 158 a rank at 112.6 ms (x1.12, +14.1 ms);
    with its own KV-bound batch, 299 a rank, x1.36. (110.2 ms, x1.15, +16.6 ms and 301 a rank before the block-fp8
    checkpoint's all-gather moved 16-bit activations, Overlap.moe_allgather_block_fp8_16bit; 111.0 ms, x1.14, +15.8 ms
    and 300 a rank before TensorRT-LLM's Hopper MLA decode constant, 12.15 us where mla_layer_s 26.68 us applied,
    shortened kvplan's step.) Since stop 25 the independent ranks' arrivals land together
    (kvplan.serving._landed_together: fewer, fuller prefill steps): 110.3 ms at 158 a rank (x1.15, +16.5 ms), its own
    batch 302 a rank, x1.39 (112.6 ms, x1.12, +14.1 ms, 299 a rank and x1.36 before).
    With TensorRT-LLM's Hopper block-fp8 experts priced by DeepGEMM's tiles and the router
    16-bit (r25e; kvplan.latency._block_tile_rows, _router_ctx): the busiest EP rank's experts (32 of them, 8 x b x 8 /
    8 x (1 + 0.3161 x sqrt(2 ln 8)) / 32 = 0.411 b tokens each at b a rank) switch from 64- to 128-row tiles past 64
    tokens, b = 156, so the top rate under the cap lies below that switch: 106 a rank at 80.8 ms (x1.05, +46.0 ms),
    own batch 303 a rank, x1.41 (on r25e's base before the 16-bit gather: 107 a rank, 79.4 ms, x1.07, +47.3 ms,
    x1.45). Both merged with the arrivals landing together: 116.1 ms at 158 a rank (x1.09, +10.6 ms), own batch 301 a
    rank, x1.46. With TensorRT-LLM's MoE constants refitted under aiconfigurator's balanced routing (the Hopper
    block-fp8 weights streamed at 0.94 x w / (w + 120) of the bandwidth, 0.88 at the EP rank's whole 2,048-wide
    experts, instead of 0.695; the tiles at 1.125 and 1150; benchmarks/fit_moe_ops.py) the experts are cheaper and the
    top rate under the cap again lies below a tile switch: 100 a rank at 72.3 ms (x1.10, +54.4 ms), own batch 302 a
    rank, x1.48. TensorRT-LLM's dealing to the fewest active requests keeps a step's arrivals together (stop 27,
    kvplan.serving.busiest_drawn: the busiest rank the largest of the 8 ranks' Poisson shares): 73.3 ms at 100 a rank
    (x1.09, +53.4 ms), own batch 301 a rank, x1.42. Since stop 28 the step at the highest rate is the fixed point a
    batch at the limits falls to (serve's full_start; regula falsi had returned a lower root, 100 a rank): 116.0 ms
    at 158 a rank (x1.09, +10.7 ms), own batch 301 a rank, x1.42. The prefill step as the mean over its prompt count
    (stop 28 too, kvplan.serving._prefill_counts), not the step at the mean count, shortens the prefill steps at these
    1,024-token prompts: 106.5 ms at 158 a rank (x1.18, +20.2 ms), own batch 302 a rank, x1.39. Each of the busiest
    rank's whole prompts attending to its own tokens (stop 29, kvplan.serving._whole_prompts): 106.2 ms (+20.5 ms),
    own batch 303 a rank, x1.39. The engine's default decode graphs (up to 128 rows, no sizes named) captured before
    the KV estimation (stop 30, kvplan.engines.trtllm default_graph_sizes) take their pool out of the KV budget:
    own batch 300 a rank, x1.39; the capped step unchanged."""
    pub, _ = published()
    line = pub.known_batch_line()
    assert line.startswith("dp-candidates known batch: deepseek-v3 h200 DP8 EP8 1024/2048 at 159 a rank")
    assert round(159 * 8 / 10036.3364 * 1e3, 1) == 126.7
    assert "published step 126.7 ms" in line
    assert "kvplan 106.2 ms at 158 a rank, x1.18, residual +20.5 ms; kvplan's own batch 300 a rank: x1.39" in line


def test_later_page_rows_are_scored_apart_per_gpu() -> None:
    """The later page's FP8 attention-DP rows (per-GPU output tokens/s) are scored with the v1.0 setup, one line per
    model and GPU, and stay out of the v1.0 statistics. Measured: Qwen3-235B-A22B 8 x H100 1024/8192 x1.23 (kvplan
    1,072 tokens/s a GPU against 873), Maverick 8 x H200 8192/1024 x0.45 (x0.42 before stop 22: its chunked layers now
    read only the current chunk at decode, (8,704 - 1) mod 8,192 + 1 = 512 keys at the mean context, not 8,192); x0.49
    since stop 25, the independent ranks' arrivals landing together (kvplan.serving._landed_together); then since
    each point's launch has its own max_seq_len (ISL + OSL, 9,216) and Llama 4's chunked layers decode with MMHA on
    Hopper (kvplan.latency._mmha_decode_s): x0.47 (the same row's 1024/8192 x1.97 -> x0.98, 1024/32768 x1.45 ->
    x1.32). Stop 27, TensorRT-LLM's dealing to the fewest active requests (kvplan.serving.busiest_drawn): Maverick
    1000/1000 x1.17 -> x1.04, 1024/1024 x1.14 -> x1.02; Qwen3 H100 1000/1000 x1.18 -> x1.15, H200 DEP4 1000/1000
    x1.19 -> x1.13 (the long-output and long-prompt points do not move). Stop 29, each of the busiest rank's whole
    prompts its own attention (kvplan.serving._whole_prompts): Maverick 1000/1000 x1.04 -> x1.05."""
    pub, data = published()
    lines = pub.later_page_lines()
    assert len(lines) == len(pub.LATER_PAGE_DEP_ROWS) == 3
    assert lines[0].startswith("dp-candidates later page: qwen3-235b-a22b h100-sxm DEP8: 1000/1000 x")
    # 1024/8192 x1.23 before the per-tensor fp8 activation quantization and its refit of the fp8 scales
    assert "1024/8192 x1.20" in lines[0] and "8192/1024 x0.47" in lines[2]  # x0.45 before stop 25 (the docstring)
    assert "1000/1000 x1.05" in lines[2] and "1024/8192 x0.98" in lines[2]  # below / above the chunk (MMHA); x1.17
    assert not any(r["source"] not in ("trtllm-1.0", "trtllm-0.17") for r in data["runs"])  # not stored as runs


# --dp-candidates, the per-root reading: TensorRT-LLM's unpadded attention-DP exchange hands NCCL a broadcast per root
# rank and gathered tensor and a reduce per root rank (allgatherOp.cpp / reducescatterOp.cpp), each charged NCCL's
# small-message floor (kvplan.latency.NCCL_FITS LL terms). Hopper: 5.843 us + 0.8765 us x (R - 2); Blackwell:
# 8.703 us + 1.326 us x (R - 2).
HOPPER_FLOOR_4 = 5.843e-06 + 8.765e-07 * 2  # 7.596 us
HOPPER_FLOOR_8 = 5.843e-06 + 8.765e-07 * 6  # 11.102 us
BLACKWELL_FLOOR_8 = 8.703e-06 + 1.326e-06 * 6  # 16.659 us


def test_per_root_ops_and_floor_by_hand() -> None:
    """FP8 (x, ids, scales: x_sf None and dropped) over 4 ranks: (3 + 1) x 4 = 16 ops a MoE layer; NVFP4 (x_sf too)
    over 8: (4 + 1) x 8 = 40. Llama 4 Scout on 4 x H100: 48 MoE layers, 14 ops beyond kvplan's two at 7.596 us =
    5.105 ms a step; a residual of 18.4 ms over those 48 x 14 ops is 27.4 us an op."""
    pub, _ = published()
    from kvplan.capacity import setup

    assert pub.per_root_ops(4, fp4_gather=False) == 16 and pub.per_root_ops(8, fp4_gather=True) == 40
    assert pub.nccl_op_floor_s("hopper", 4) == pytest.approx(HOPPER_FLOOR_4)
    assert pub.nccl_op_floor_s("blackwell", 8) == pytest.approx(BLACKWELL_FLOOR_8)
    assert pub.nccl_op_floor_s("ampere", 4) is None
    s = setup("llama-4-scout-17b-16e", "h100-sxm", engine="trtllm", tp=1, dp=4, ep=True, weights_dtype="fp8",
              kv_dtype_name="fp8")  # fmt: skip
    t = pub.per_root_terms(s)
    assert (t["ops"], t["moe_layers"]) == (16, 48)
    assert t["added_s"] == pytest.approx(48 * 14 * HOPPER_FLOOR_4) and round(t["added_s"] * 1e3, 3) == 5.105
    assert pub.implied_op_s(18.4e-3, t) == pytest.approx(18.4e-3 / (48 * 14)) and round(18.4e3 / 672, 1) == 27.4


def test_per_root_op_latency_adds_every_op_to_each_moe_layer_and_restores() -> None:
    """Qwen3-235B-A22B on 8 x H200, DP8 EP8, a decode step of 128 sequences a rank: inside the block it is
    94 MoE layers x (32 - 2) ops x 11.102 us = 31.31 ms longer (no shared expert hides any of it); a TP8 step is
    untouched; after the block the module's collectives function and the step are the original ones."""
    pub, _ = published()
    import kvplan.latency as latency
    from kvplan.capacity import setup

    s = setup("qwen3-235b-a22b", "h200", engine="trtllm", tp=1, dp=8, ep=True, weights_dtype="fp8",
              kv_dtype_name="fp8")  # fmt: skip
    kw = dict(decode_context=2176, prefill_tokens=0, kv_dtype_name="fp8", weights_dtype="fp8", engine="trtllm",
              expert_parallel=True)  # fmt: skip
    original = latency._dp_collectives_s
    dp8 = latency.mixed_step_latency(s.spec, s.gpu, decode_seqs=8 * 128, tp=1, dp=8, **kw).total
    tp8 = latency.mixed_step_latency(s.spec, s.gpu, decode_seqs=128, tp=8, dp=1, **kw).total
    with pub.per_root_op_latency():
        assert latency._dp_collectives_s is not original
        serialized = latency.mixed_step_latency(s.spec, s.gpu, decode_seqs=8 * 128, tp=1, dp=8, **kw).total
        assert latency.mixed_step_latency(s.spec, s.gpu, decode_seqs=128, tp=8, dp=1, **kw).total == tp8
    assert latency._dp_collectives_s is original
    assert (
        serialized - dp8 == pytest.approx(94 * 30 * HOPPER_FLOOR_8)
        and round(94 * 30 * HOPPER_FLOOR_8 * 1e3, 2) == 31.31
    )
    assert latency.mixed_step_latency(s.spec, s.gpu, decode_seqs=8 * 128, tp=1, dp=8, **kw).total == dp8


def test_per_root_lines_imply_no_one_cost_per_op() -> None:
    """Scout 4 x H100 128/4096 (x1.67 as scored, x1.41 with a latency per op): residual +18.4 ms = 27.4 us an op
    against a 7.6 us floor; Qwen3 8 x H100 128/4096: +15.2 ms over 94 x 30 ops = 5.4 us, below its 11.1 us floor.
    The same GPU and NCCL would need one time per op; the rows ask for 5 to 27 us."""
    pub, data = published()
    scout = _row(data, "llama-4-scout-17b-16e", "h100-sxm", 128, 4096)
    qwen = _row(data, "qwen3-235b-a22b", "h100-sxm", 128, 4096)
    # x1.41, +18.4 ms = 27.4 us and +15.2 ms = 5.4 us before the per-tensor fp8 activation quantization and its refit;
    # 26.8 us and +14.5 ms = 5.1 us before stop 25's arrivals landing together (kvplan.serving._landed_together);
    # 26.7 us before the prefill step was the mean over its prompt count (stop 28, kvplan.serving._prefill_counts);
    # x1.39, +18.0 ms = 26.8 us and +14.5 ms = 5.1 us before trtllm-bench's own token budget (stop 29: larger pools,
    # larger steady batches: Scout 98 -> 101 a rank)
    assert pub.per_root_ratio(scout) == pytest.approx(1.42, abs=0.01)
    lines = pub.per_root_lines([scout, qwen])
    assert len(lines) == 4
    assert lines[0].endswith("16 ops x 48 MoE layers, floor 7.6 us: +5.1 ms a step; residual +19.1 ms = 28.4 us an op")
    # +14.6 ms = 5.2 us before r25e's 16-bit router was merged (kvplan.latency._router_ctx)
    assert lines[1].endswith("32 ops x 94 MoE layers, floor 11.1 us: +31.3 ms a step; residual +21.8 ms = 7.7 us an op")
    assert round(21.8e3 / (94 * 30), 1) == 7.7
    assert lines[2] == (
        "dp-candidates per-root ops, decode-heavy Llama 4 Scout h100-sxm DP4 EP4: 1 rows imply 28.4-28.4 us an op "
        "(floor 7.6 us)"
    )


def test_grouped_launch_lines_read_the_committed_nccl_sample() -> None:
    """H100, 8 ranks (aiconfigurator's NCCL 2.27.3 tables, benchmarks/data/nccl_perf.json): nccl-tests' alltoall at
    512 B, one group of 8 sends + 8 receives, 7.9 us; one all_gather 10.4 us; a latency per op would make the group
    16 x 11.102 = 177.6 -> 178 us."""
    pub, _ = published()
    lines = pub.grouped_launch_lines()
    assert len(lines) == 6  # H100, H200, B200 at 4 and 8 ranks
    assert lines[1] == (
        "dp-candidates grouped launch h100-sxm 8 ranks (NCCL 2.27.3 tables): one group of 16 sends and receives "
        "(512 B) 7.9 us, one all_gather (512 B) 10.4 us; a latency per op would make the group 16 x 11.1 = 178 us"
    )
    assert round(16 * HOPPER_FLOOR_8 * 1e6) == 178


def test_per_root_mlperf_lines_score_the_r1_runs_both_ways() -> None:
    """DeepSeek-R1 on 8 x B200, NVFP4 (WIDEEP's all-gather of x, x_sf, slots, scales): (4 + 1) x 8 = 40 ops x 58 MoE
    layers, 38 beyond kvplan's two at 16.659 us = 36.7 ms a step. Offline x1.29 -> x0.93 (its residual, +27.7 ms, is
    27.7 ms / (58 x 38) = 12.6 us an op), Server x2.10 -> x0.66. (Before TensorRT-LLM's Blackwell MLA decode constant,
    13.57 us where mla_layer_s 26.68 us applied, shortened kvplan's B200 step: x1.28, +27.1 ms = 12.3 us, x2.09.)
    Since the in-flight outputs take the set's spread (published_compare.mlperf_output) and the rows NVIDIA's
    MAX_UTILIZATION: Offline x1.11 -> x0.83, residual +12.3 ms = 12.3 ms / (58 x 38) = 5.6 us an op; Server
    x1.56 -> x0.58 (was x1.28 -> x0.93, +26.6 ms = 12.1 us, x2.08 -> x0.66, after the NVFP4 refit with the Blackwell
    GQA decode attention; x1.29, +27.7 ms, 12.6 us, x2.10 before it). Since the MoE router is priced 16-bit and the
    NVFP4 constants refitted on that (kvplan.latency._router_ctx; r25e): the Offline residual +12.3 ms -> +11.75 ms
    (a 110.0 ms step), 11.75 ms / (58 x 38) = 5.33 us an op (5.6 before); the ratios unchanged. Since TensorRT-LLM's
    NVFP4 experts pay the CUTLASS path's own fixed cost a layer (cutlass_nvfp4_moe_layer_s 40.5 us in place of
    fp4_moe_layer_s 7.041 us: 58 x 33.46 us = 1.94 ms more a step): Offline x1.11 -> x1.09, residual +9.8 ms =
    9.8 ms / (58 x 38) = 4.4 us an op; Server x1.52 -> x0.51 (was x1.56 -> x0.62). Since the steady state is the
    least fixed point (stop 28, kvplan.serving._solve) the Server row scores x1.58 (its rate search met a step with two
    roots either side of a CUDA-graph size), x0.51 with the floor. Since stop 29 (B200's own all-reduce latency on the
    dense layers' reduces, and the NVFP4 refit after it) the Offline residual is +10.3 ms = 4.7 us an op. Since a
    balancer's release carries the prompts of its cycle (stop 30, kvplan.serving._released_parts) x1.54, x0.43 with the
    floor."""
    pub, data = published()
    rows = [r for r in data["mlperf"] if r.get("attention_dp")]
    lines = pub.per_root_mlperf_lines(rows, data["mlperf_datasets"])
    assert len(lines) == 2
    assert round(58 * 38 * BLACKWELL_FLOOR_8 * 1e3, 1) == 36.7 and round(10.3e3 / (58 * 38), 1) == 4.7
    assert (
        "Offline: 40 ops x 58 MoE layers, floor 16.7 us: +36.7 ms a step; x1.09 -> x0.82; residual +10.3 ms = 4.7 us"
        in lines[0]
    )
    # x0.58 before the Server rows were scored at the requests' own p99 TPOT (kvplan.tpot_tail, stop 26)
    # x0.51 before stop 29 (B200's own all-reduce latency, the NVFP4 refit after it); x1.58 (1.5843) before that refit
    # reached this row: the attention-DP step has no all-reduce (TP 1 attention, EP experts), but fit_fp4.py, with the
    # B200 TP steps' all-reduces now longer, moves TensorRT-LLM's fp4_moe_eff_scale 0.2464 -> 0.2475, the NVFP4 experts
    # 25.99 -> 25.89 ms of a 54.7 ms step at 240-256 a rank: the scored rate 8.421 -> 8.430 req/s, x1.5843 -> x1.586
    # x1.59 -> x0.52 before a balancer's release carried its cycle's prompts (stop 30)
    assert lines[1].endswith("Server: 40 ops x 58 MoE layers, floor 16.7 us: +36.7 ms a step; x1.54 -> x0.43")


def test_docs_cost_md_carries_the_grouped_launch_lines_as_the_script_prints_them() -> None:
    """docs/cost.md's ``--dp-candidates --markdown`` block holds the grouped-launch lines as printed from the committed
    NCCL sample (regenerated from the script, not edited by hand)."""
    pub, _ = published()
    doc = (BENCH.parent / "docs" / "cost.md").read_text(encoding="utf-8")
    for line in pub.grouped_launch_lines():
        assert line in doc.splitlines()

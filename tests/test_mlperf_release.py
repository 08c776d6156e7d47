"""Each MLPerf row is scored with the TensorRT-LLM release its stack had (benchmarks/published_compare.py
``mlperf_release``): the Llama-2-70B, Mixtral-8x7B and Llama-3.1-405B runs built TensorRT engines (``trtllm@0.17``,
the TensorRT-engine release), the DeepSeek-R1 runs ran the PyTorch backend (``trtllm@0.20``, before PR #12597). Each
engine row names the files that show its stack (``stack``) and the build's ``tokens_per_block`` where the run's own
file sets it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmods import published

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _key(r: dict) -> tuple[str, str, str, str]:
    return r["source"], r["model"], r["gpu"], r["scenario"]


# (round, model, GPU, scenario) -> (release, tokens_per_block the build sets, None: the release's default 64). The
# PyTorch-backend DeepSeek runs (v5.1, 2025) predate NVIDIA/TensorRT-LLM PR #12597 (v1.3.0rc11, 2026): trtllm@0.20
# (was the default "trtllm" before trtllm@1.3 was added; the two differ only on Mistral / Mixtral windows).
RELEASES = {
    ("mlperf-4.1", "llama-2-70b", "h200", "Offline"): ("trtllm@0.17", None),
    ("mlperf-4.1", "llama-2-70b", "h200", "Server"): ("trtllm@0.17", None),
    ("mlperf-4.1", "llama-2-70b", "h100-sxm", "Offline"): ("trtllm@0.17", None),
    ("mlperf-4.1", "llama-2-70b", "h100-sxm", "Server"): ("trtllm@0.17", None),
    ("mlperf-5.0", "llama-2-70b", "h100-sxm", "Offline"): ("trtllm@0.17", None),
    ("mlperf-4.1", "llama-2-70b", "b200", "Offline"): ("trtllm@0.17", None),
    ("mlperf-4.1", "mixtral-8x7b", "h200", "Offline"): ("trtllm@0.17", None),
    ("mlperf-4.1", "mixtral-8x7b", "h100-sxm", "Offline"): ("trtllm@0.17", None),
    ("mlperf-5.1", "llama-2-70b", "b200", "Offline"): ("trtllm@0.17", 32),
    ("mlperf-5.1", "llama-2-70b", "b200", "Server"): ("trtllm@0.17", 32),
    ("mlperf-5.1", "llama-2-70b", "b200", "Interactive"): ("trtllm@0.17", 32),
    ("mlperf-5.1", "llama-3.1-405b", "b200", "Offline"): ("trtllm@0.17", 32),
    ("mlperf-5.1", "llama-3.1-405b", "b200", "Server"): ("trtllm@0.17", 32),
    ("mlperf-5.1", "llama-3.1-405b", "b200", "Interactive"): ("trtllm@0.17", 32),
    ("mlperf-5.1", "deepseek-v3", "b200", "Offline"): ("trtllm@0.20", None),
    ("mlperf-5.1", "deepseek-v3", "b200", "Server"): ("trtllm@0.20", None),
    ("mlperf-5.0", "llama-3.1-405b", "h200", "Offline"): ("trtllm@0.17", None),
    ("mlperf-5.0", "llama-3.1-405b", "h200", "Server"): ("trtllm@0.17", None),
    ("mlperf-5.0", "llama-3.1-405b", "b200", "Offline"): ("trtllm@0.17", None),
    ("mlperf-5.0", "llama-3.1-405b", "b200", "Server"): ("trtllm@0.17", None),
}


def test_every_mlperf_row_is_scored_with_its_stacks_release():
    """The setup each row is scored with carries its release, its build's blocks (64 where no file read sets them:
    the release's default) and no batch-size tuner (NVIDIA's harness passes gpu_batch_size as max_batch_size)."""
    from kvplan.engines import get_engine

    pub, data = published()
    assert {_key(r): (pub.mlperf_release(r), r.get("tokens_per_block")) for r in data["mlperf"]} == RELEASES
    for r in data["mlperf"]:
        s = pub._mlperf_setup(r)
        release, block = RELEASES[_key(r)]
        assert s.engine is get_engine(release)
        assert s.settings.block_size == block and not s.settings.batch_size_tuning
        if release == "trtllm@0.17":
            assert s.stages[0].layout.block_tokens == (block or 64)


def test_every_tensorrt_engine_row_cites_the_files_that_show_its_stack():
    _, data = published()
    engine_rows = [r for r in data["mlperf"] if r.get("tensorrt_engine")]
    assert len(engine_rows) == 18 and all(r["model"] != "deepseek-v3" for r in engine_rows)
    for r in engine_rows:
        assert "TensorRT engine" in r["stack"] and "https://github.com/" in r["stack"]
        assert "Kernels:" in r["stack"]  # what stands for the round's own kernels, said on every row
        if r.get("tokens_per_block"):  # a cited file sets it
            assert "tokens_per_block 32" in r["stack"]
        else:
            assert "the build default, 64" in r["stack"]
    for r in data["mlperf"]:
        if r["source"] == "mlperf-5.1" and r.get("tensorrt_engine"):  # NVIDIA's v5.1 executor core: max_util
            assert "'max_util'" in r["stack"] and "enable_batch_size_tuning False" in r["stack"]


def test_the_releases_differ_only_where_the_static_fp8_scale_reaches(monkeypatch: pytest.MonkeyPatch):
    """trtllm@0.17 and the newest trtllm price a run alike except fp8 weights, which stream at the 16-bit share under
    the engine's static fp8 activation scale (V0_17_CALIBRATION): the NVFP4 rows score the same under both releases
    (the harness, and so its eager steps, kept), and the fp8 405B H200 Server run (TP8, at most 64 sequences, decode
    mostly streams weights) is faster: x1.248 under the newest release, x1.309 under trtllm@0.17 since a request's
    TPOT is its own life's mean (stop 27, kvplan.serving._own_life; x1.265 and x1.327 before, since its build's
    gemm_allreduce_plugin is priced, tests/test_gemm_allreduce_fusion.py; x1.011 and x1.047 before that, x1.095 and
    x1.146 before the Server rows were scored at the requests' own p99 TPOT, kvplan.tpot_tail). Since stop 29's
    prompt queue (kvplan.serving MIXED_QUEUE_RULE "time", the TTFT p99 of independent parts with the wait's
    Cramer-Lundberg tail) its TTFT p99 binds, as in its log: x0.958 under the newest release, x1.004 under
    trtllm@0.17 (the faster steps still score higher)."""
    pub, data = published()
    ds = data["mlperf_datasets"]
    h200 = next(r for r in data["mlperf"] if _key(r) == ("mlperf-5.0", "llama-3.1-405b", "h200", "Server"))
    assert h200["ratio"] == pytest.approx(1.004, abs=0.005) and h200["verdict"] == "within 20%"
    monkeypatch.setattr(pub, "mlperf_release", lambda r: pub.V020_ENGINE)
    for r in data["mlperf"]:
        if r.get("tensorrt_engine") and r["weights"] == "nvfp4":
            assert pub.score_mlperf(r, ds)["ratio"] == pytest.approx(r["ratio"], rel=1e-3)
    assert pub.score_mlperf(h200, ds)["ratio"] == pytest.approx(0.958, abs=0.005)  # 1.248 before stop 29


def test_the_tensorrt_engine_runs_decode_without_cuda_graphs(monkeypatch: pytest.MonkeyPatch):
    """NVIDIA's MLPerf harnesses never set the executor's cudaGraphMode (default false), so every TensorRT-engine run
    is set up with Settings.cuda_graphs False and its decode-only steps launch eagerly; the DeepSeek-R1 runs (PyTorch
    backend, their own cuda_graph_config) keep graphs. Only runs with pure-decode steps move: the 405B H200 Server run
    (9,429-token prompts in 2,560-token chunks at 0.45 req/s: most steps carry no prompt) from x1.220, missed, to
    x1.146 (x1.092 -> x1.047 at the requests' own p99 TPOT, kvplan.tpot_tail); every Offline run, whose steps all
    carry prompt tokens, scores the same either way."""
    from kvplan.latency import past_graph_cap

    pub, data = published()
    ds = data["mlperf_datasets"]
    for r in data["mlperf"]:
        s = pub._mlperf_setup(r)
        assert s.settings.cuda_graphs is (False if r.get("tensorrt_engine") else None)
        assert past_graph_cap(s.spec, s.engine, s.settings, decode_seqs=1) is bool(r.get("tensorrt_engine"))
    rows = [r for r in data["mlperf"] if r.get("tensorrt_engine")]
    eager = {_key(r): r["ratio"] for r in rows}
    monkeypatch.setattr(pub, "MLPERF_CUDA_GRAPHS", None)  # the engine's default: decode replays graphs
    graphs = {_key(r): pub.score_mlperf(r, ds)["ratio"] for r in rows}
    # at the requests' own p99 TPOT (kvplan.tpot_tail, stop 26) and the build's gemm_allreduce_plugin priced
    # (1.092 -> 1.047 before it; 1.220 -> 1.146 before the requests' own p99), with the request's TPOT its own life's
    # mean (stop 27, kvplan.serving._own_life; 1.382 -> 1.327 before it); since stop 29's prompt queue (the time
    # share, the TTFT p99 of independent parts) its TTFT binds and the graphs move it less: 1.362 -> 1.309 before it
    assert graphs[("mlperf-5.0", "llama-3.1-405b", "h200", "Server")] == pytest.approx(1.012, abs=0.005)
    assert eager[("mlperf-5.0", "llama-3.1-405b", "h200", "Server")] == pytest.approx(1.004, abs=0.005)
    for r in rows:
        if r["scenario"] == "Offline":
            assert graphs[_key(r)] == pytest.approx(eager[_key(r)], rel=1e-3)
    # the Blackwell runs with pure-decode steps fall back toward their logs' lower figures: the 405B B200 Interactive
    # run x1.049 -> x0.908 with its build's gemm_allreduce_plugin priced (x0.883 -> x0.748 before it, out of 20 %; at
    # the requests' mean p99 TPOT, before stop 26, x1.036 -> x0.918); x1.022 -> x0.895 with the life's mean (stop 27);
    # x1.034 -> x0.908 once fit_fp4.py took the GEMM tables (TensorRT-LLM's NVFP4 constants and fp4_gemm_s);
    # x1.013 -> x0.906 with stop 29's prompt queue (the time share, the TTFT p99 of independent parts)
    # x1.006 with r30i's B200 all-reduce latency and the NVFP4 refit after it (stop 29)
    assert graphs[("mlperf-5.1", "llama-3.1-405b", "b200", "Interactive")] == pytest.approx(1.006, abs=0.005)
    assert eager[("mlperf-5.1", "llama-3.1-405b", "b200", "Interactive")] == pytest.approx(0.906, abs=0.005)


def test_norm_quant_fusion_applies_on_top_of_the_release_constants():
    """The v5.1 rows built with norm_quant_fusion take the release's constants (the static fp8 share, 1.0) with the
    fused FP4 norm kernel (published_compare._norm_quant_calibration)."""
    pub, _ = published()
    from kvplan.engines import latency_calibration

    fused = pub._norm_quant_calibration("trtllm@0.17")
    assert fused.fp4_norm_quant_fused and fused.fp8_mem_eff_scale == 1.0
    assert latency_calibration("trtllm").fp8_mem_eff_scale != 1.0

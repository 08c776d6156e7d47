"""NVIDIA's MLPerf v5.1 DeepSeek-R1 Server run streams every token; its Offline run does not.

NVIDIA's harness (ykamiset/inference_results_v5.1 @e9ccad4d, closed/NVIDIA/code): ``deepseek-r1/tensorrt/
generation_config.json`` sets ``"streaming": true``, ``llmlib/config.py`` ``HarnessConfig.__post_init__`` keeps it off
the Offline scenario only, and ``TrtllmExtraYAMLConfig.DEFAULT_EXTRA_CONFIG`` writes ``stream_interval`` 1 into the
trtllm-serve YAML (no ``speculative_config``: no MTP). With attention DP, TensorRT-LLM's
``PyExecutor._enqueue_responses`` gathers every rank's responses to rank 0 each step. No source gives the host seconds
a streamed response costs, so kvplan prices none: ``published_compare.streamed_responses_costed`` is a diagnostic of
how much would close the Server gap (docs/cost.md, MLPerf, "Read in the v5.1 Server file").
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmods import published

DOC = Path(__file__).resolve().parent.parent / "docs" / "cost.md"


def _r1(data: dict, scenario: str) -> dict:
    return next(r for r in data["mlperf"] if r["model"] == "deepseek-v3" and r["scenario"] == scenario)


def test_only_the_r1_server_row_streams_and_each_cites_the_harness():
    pub, data = published()
    streams = {r["scenario"]: r["streaming"]["streams_tokens"] for r in data["mlperf"] if "streaming" in r}
    assert streams == {"Offline": False, "Server": True}
    for scenario in streams:
        src = _r1(data, scenario)["streaming"]
        assert src["stream_interval"] == 1
        assert "deepseek-r1/tensorrt/generation_config.json" in src["source"]
        assert "tp_gather" in src["source"] and "no MTP" in src["source"]


def test_the_streamed_cost_is_the_longer_of_gpu_plus_residual_and_rank_0s_responses():
    """By hand: 1,000 decoding sequences at 100 us a response are 1000 x 100e-6 = 0.100 s of host work, longer than
    the GPU step plus a 5 ms residual, so the step is 0.100 s; 10 sequences are 1 ms of host work, shorter, so the
    step is the GPU's + 5 ms. Outside the context the GPU step is back."""
    from kvplan import serving

    pub, data = published()
    s = pub._mlperf_setup(_r1(data, "Server"))
    kw = dict(decode_context=4000, prefill_tokens=0, tp=s.tp, dp=s.dp, expert_parallel=s.ep, kv_dtype_name=s.kv_dtype,
              weights_dtype=s.weights_dtype, engine=s.engine.key)  # fmt: skip
    gpu = {n: serving.mixed_step_latency(s.spec, s.gpu, decode_seqs=n, **kw).total for n in (10, 1000)}
    assert gpu[1000] < 0.095
    with pub.streamed_responses_costed(100e-6, extra_s=0.005):
        costed = {n: serving.mixed_step_latency(s.spec, s.gpu, decode_seqs=n, **kw).total for n in (10, 1000)}
    assert costed[1000] == pytest.approx(0.100)
    assert costed[10] == pytest.approx(gpu[10] + 0.005)
    assert serving.mixed_step_latency(s.spec, s.gpu, decode_seqs=1000, **kw).total == gpu[1000]


def test_the_host_time_that_would_close_the_server_gap_and_the_docs_line():
    """With the Offline step residual (+11.8 ms; +12.3 ms before r25e's 16-bit router and NVFP4 refit were merged) held
    the Server run scored x1.34 (x1.33 before; docs' --mlperf-balance block) and the script's bisection (20 steps over
    0.1 us - 1 ms) put the host time per streamed response that brings it to x1.00 at 51.1 us. Since the steady state
    is the least fixed point (stop 28, kvplan.serving._solve) the residual-held run scores x0.94 and the line says
    nothing is left to explain: at 5.0 req/s the least root holds 120 sequences a rank, just under the CUDA-graph size
    128 (a 54.8 ms step where regula falsi had returned the root past it, 148 a rank at 67.5 ms), and from 5.0143 req/s
    on the requests' own p99 TPOT (kvplan.tpot_tail) jumps from 55.6 to 112.8 ms while the mean stays 54.8 ms (the
    tail's life meets the padded steps past 128); 5.3 req/s is past the size and back at 69.4 ms, 7.1 req/s still
    within 80 ms. The rate search (kvplan.slo.rate_within_targets, regula falsi) stops at that cliff, so the score is
    the tail's, not a host time's: the stop-28 report leaves the tail's cliff to the lead. With TensorRT-LLM's NVFP4
    constants fitted on the GEMM tables too (fit_fp4.py, fp4_gemm_s) the cliff sits at 5.0155 req/s (55.5 -> 112.2 ms
    p99 at 5.0143 / 5.02; 5.3 req/s 69.3 ms), the residual-held score x0.943. Since stop 29 (B200's own all-reduce
    latency on the dense layers' reduces and the NVFP4 refit after it; residual +10.3 ms) the cliff sits at 4.9726 req/s
    (56.0 -> 107.4 ms p99), the rate search no longer stops at it but lands past the graph size (5.31 req/s, 69.0 ms
    steps), and the line is the host time's again: x1.37, 51.0 us a streamed response to x1.00. Which side of the cliff
    the search ends on moves with a fraction of a millisecond of step time: the tail's cliff is still the lead's."""
    pub, data = published()
    ds = data["mlperf_datasets"]
    _, extra = pub.offline_step_residual_s(_r1(data, "Offline"), ds)
    assert extra == pytest.approx(0.0103, abs=0.0002)  # 0.0098 before stop 29, 0.0118 before cutlass_nvfp4_moe_layer_s
    with pub.step_cost_added(extra):
        assert pub.score_mlperf(_r1(data, "Server"), ds)["ratio"] == pytest.approx(1.369, abs=0.005)
        below, past = (pub._server_point(_r1(data, "Server"), ds, rate) for rate in (4.972, 4.974))
    assert below["rank_seqs"] < past["rank_seqs"] < 128 and below["step_s"] == pytest.approx(past["step_s"], rel=1e-3)
    assert below["tpot_p99_s"] < 0.06 < 0.105 < past["tpot_p99_s"]
    head = ("streaming DeepSeek-R1 (DeepSeek-V3 architecture) B200-SXM-180GBx8_TRT Server: stream_interval 1, x1.58; "
            "Offline residual +10.3 ms held: x1.37; 51.0 us of rank 0's host time per streamed response would give "
            "x1.00 (1284 responses a step at 5.32 req/s, host 65.5 ms, step 69.1 ms)")  # fmt: skip
    assert any(x == head for x in DOC.read_text(encoding="utf-8").splitlines())

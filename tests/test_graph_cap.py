"""vLLM steps past the largest captured CUDA graph run without one (Engine.graph_token_cap), by hand.

vLLM 0.16.0 / 0.19.0 ``CudagraphDispatcher.dispatch``: ``num_tokens > max_cudagraph_capture_size`` -> NONE; 0.8.5
``GPUModelRunner.execute_model``: past ``cudagraph_batch_sizes[-1]``, "Eager mode". kvplan prices such a decode step's
launches at ``eager_kernel_s`` instead of ``graph_kernel_s`` (kvplan/engines/vllm.py ``max_capture_size``).
"""

from __future__ import annotations

import pytest

from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.cost import phase_cost
from kvplan.engines import ENGINES, Settings, get_engine
from kvplan.latency import calibration, mixed_step_latency, past_graph_cap
from kvplan.serving import _step

LLAMA = load_bundled("llama-3.1-8b")
OSS = load_bundled("gpt-oss-120b")


def test_largest_captured_size_per_release_by_hand() -> None:
    """0.16 / 0.19 / 0.21: min(2 x max_num_seqs, 512), at most max_num_batched_tokens (unset: the defaults 1024 or 256
    seqs both give 512); gpt-oss 1024 (GptOssForCausalLMConfig), not bounded by the seqs; 0.8: 512 whatever
    max_num_seqs, gpt-oss included (no such override in 0.8.5); --cuda-graph-batch-sizes: its largest kept size."""
    for name in ("vllm@0.16", "vllm@0.19", "vllm"):
        e = get_engine(name)
        assert e.graph_token_cap(LLAMA, Settings()) == 512
        assert e.graph_token_cap(LLAMA, Settings(max_num_seqs=150)) == 300
        assert e.graph_token_cap(LLAMA, Settings(max_num_seqs=512, max_num_batched_tokens=256)) == 256
        assert e.graph_token_cap(OSS, Settings()) == 1024
        assert e.graph_token_cap(OSS, Settings(max_num_seqs=64)) == 1024  # set before _set_cudagraph_sizes
        assert e.graph_token_cap(OSS, Settings(max_num_batched_tokens=768)) == 768
        assert e.graph_token_cap(OSS, Settings(cuda_graph_batch_sizes=(1, 8, 64))) == 64  # the user's sizes win
    old = get_engine("vllm@0.8")
    assert old.graph_token_cap(LLAMA, Settings(max_num_seqs=8)) == 512
    assert old.graph_token_cap(OSS, Settings()) == 512
    assert old.graph_token_cap(LLAMA, Settings(max_num_batched_tokens=300)) == 300
    assert ENGINES["trtllm"].graph_token_cap(LLAMA, Settings()) is None  # not modelled for TensorRT-LLM


def test_past_graph_cap_counts_the_busiest_rank_and_micro_batch() -> None:
    """1,026 decodes: one rank holds 1,026 > 512 (eager); DP2 513 a rank (eager); DP4 257 (graph); PP2 over one rank:
    two micro-batches of 513 (eager); PP4: 257 (graph). 512 and 513 straddle the cap."""
    assert not past_graph_cap(LLAMA, "vllm@0.16", decode_seqs=512)
    assert past_graph_cap(LLAMA, "vllm@0.16", decode_seqs=513)
    assert past_graph_cap(LLAMA, "vllm@0.16", decode_seqs=1026, dp=2)
    assert not past_graph_cap(LLAMA, "vllm@0.16", decode_seqs=1026, dp=4)
    assert past_graph_cap(LLAMA, "vllm@0.16", decode_seqs=1026, pp=2)
    assert not past_graph_cap(LLAMA, "vllm@0.16", decode_seqs=1026, pp=4)
    assert not past_graph_cap(LLAMA, None, decode_seqs=512) and past_graph_cap(LLAMA, None, decode_seqs=513)
    assert not past_graph_cap(LLAMA, "trtllm", decode_seqs=100_000)
    assert not past_graph_cap(OSS, "vllm@0.16", decode_seqs=1024) and past_graph_cap(OSS, "vllm", decode_seqs=1025)


def _decode(n: int, *, eager: bool):  # noqa: ANN202
    return mixed_step_latency(LLAMA, setup("llama-3.1-8b", "h100-sxm").gpu, decode_seqs=n, decode_context=2048,
                              prefill_tokens=0, kv_dtype_name="bf16", weights_dtype="bf16", engine="vllm@0.16",
                              eager_decode=eager)  # fmt: skip


def test_eager_decode_pays_the_eager_launch_cost_by_hand() -> None:
    """Llama-3.1-8B, one H100, 513 decodes at 2,048: 32 layers x 7 launches (QKV, O, gate_up, down GEMMs; two
    add+norms, the activation) + the LM head = 225 launches, each 4.017 - 2.655 = 1.362 us dearer eager
    (vllm.CALIBRATION): +306.45 us, in the GEMMs and element-wise terms only; the attention is the same."""
    cal = calibration("vllm@0.16")
    graph, eager = _decode(513, eager=False), _decode(513, eager=True)
    assert cal.eager_kernel_s - cal.graph_kernel_s == pytest.approx(1.362e-6, rel=1e-9)
    assert eager.total - graph.total == pytest.approx(225 * 1.362e-6, rel=1e-9)
    assert eager.attention == graph.attention


def test_serving_step_and_cost_go_eager_past_the_cap() -> None:
    """kvplan.serving's decode-only step and the static decode (cost) both switch at the cap: 512 replays a graph
    (equal to eager_decode=False), 513 does not (equal to eager_decode=True); TensorRT-LLM keeps graph costs."""
    s = setup("llama-3.1-8b", "h100-sxm", engine="vllm@0.16", kv_dtype_name="bf16", weights_dtype="bf16")
    assert _step(s, n=512.0, p=0.0, context=2048) == pytest.approx(_decode(512, eager=False).total, rel=1e-12)
    assert _step(s, n=513.0, p=0.0, context=2048) == pytest.approx(_decode(513, eager=True).total, rel=1e-12)

    def tpot(batch: int, engine: str) -> float:
        return phase_cost(LLAMA, s.gpu, 2048, phase="decode", batch=batch, engine=engine).time_s

    assert tpot(513, "vllm@0.16") - tpot(512, "vllm@0.16") > 225 * 1.362e-6
    trt = ENGINES["trtllm"]
    assert tpot(513, trt.key) - tpot(512, trt.key) < 225 * 1.362e-6


def test_a_runtime_without_cuda_graphs_runs_every_decode_step_eagerly() -> None:
    """Settings.cuda_graphs False (TensorRT-LLM's C++ executor without ExtendedRuntimePerfKnobConfig.cudaGraphMode,
    as NVIDIA's MLPerf harnesses run it): a decode step of any size pays ``eager_kernel_s`` per launch, and TensorRT-LLM
    pads no step up to a captured size, even where batch sizes are named; None keeps each engine's rules."""
    trt = get_engine("trtllm@0.17")
    padded = Settings(cuda_graph_batch_sizes=(8, 16, 32))
    assert trt.graph_rows(padded, 9) == 16.0
    assert not past_graph_cap(LLAMA, trt, padded, decode_seqs=9)
    eager = Settings(cuda_graph_batch_sizes=(8, 16, 32), cuda_graphs=False)
    assert trt.graph_rows(eager, 9) is None
    for engine in ("trtllm@0.17", "trtllm", "vllm"):
        assert past_graph_cap(LLAMA, engine, eager, decode_seqs=1)
        assert not past_graph_cap(LLAMA, engine, Settings(), decode_seqs=1)
    s = setup(LLAMA, "h100-sxm", engine="trtllm@0.17", settings=Settings(cuda_graphs=False))
    g = setup(LLAMA, "h100-sxm", engine="trtllm@0.17")
    assert _step(s, n=16, p=0.0, context=2048) > _step(g, n=16, p=0.0, context=2048)  # a decode-only step
    assert _step(s, n=16, p=512.0, context=2048) == pytest.approx(_step(g, n=16, p=512.0, context=2048))  # eager anyway

"""llama.cpp ``--kv-unified``: a decode step's attention reads one K/V view over every sequence's cells, once per
FlashAttention CUDA block of query tokens (kvplan.engines.llamacpp ``decode_view_passes``), by hand."""

from __future__ import annotations

import pytest

from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.engines import Settings, get_engine
from kvplan.engines.llamacpp import fa_query_columns
from kvplan.latency import calibration, mixed_step_latency

UNIFIED = Settings(kv_unified=True)


def test_query_columns_follow_the_kernel_switch_by_hand() -> None:
    """fattn.cu @00a2d609: ncols2 = 8 / 4 / 2 / 1 for a GQA ratio above 4 / 2 / 1 / none; ncols1 the first of 8, 16,
    32 over ncols2 holding the tokens, else 64 / ncols2. GQA 4 (Llama-3.1-8B): 2, 4, 8, then 16 tokens a block;
    GQA 8 (Llama-3.1-70B): 1, 2, 4, then 8; no GQA: 8, 16, 32, 64."""
    assert [fa_query_columns(4, n) for n in (1, 2, 3, 4, 5, 8, 9, 64, 512)] == [2, 2, 4, 4, 8, 8, 16, 16, 16]
    assert [fa_query_columns(8, n) for n in (1, 2, 3, 4, 5, 64)] == [1, 2, 4, 4, 8, 8]
    assert [fa_query_columns(1, n) for n in (1, 8, 9, 16, 17, 32, 33, 1000)] == [8, 8, 16, 16, 32, 32, 64, 64]


def test_view_passes_by_hand() -> None:
    """Llama-3.1-8B unified: 64 decodes take 16 a block -> 4 passes over the view; 65 -> 5; 4 (the server's own slots)
    -> 1; split streams (the default) and a lone sequence -> 1; other engines -> 1. Llama-3.1-70B (GQA 8): 64 / 8 = 8
    passes."""
    cpp = get_engine("llamacpp")
    llama = load_bundled("llama-3.1-8b")
    assert cpp.decode_view_passes(llama, UNIFIED, 64) == 4.0
    assert cpp.decode_view_passes(llama, UNIFIED, 64.3) == 5.0
    assert cpp.decode_view_passes(llama, UNIFIED, 4) == 1.0
    assert cpp.decode_view_passes(llama, Settings(), 64) == 1.0
    assert cpp.decode_view_passes(llama, UNIFIED, 1) == 1.0
    assert get_engine("vllm").decode_view_passes(llama, UNIFIED, 64) == 1.0
    assert cpp.decode_view_passes(load_bundled("llama-3.1-70b"), UNIFIED, 64) == 8.0


def test_unified_decode_reads_the_view_once_per_block_by_hand() -> None:
    """64 decodes at 4,096 on one H100: the unified view's cache read is 4 x that of split streams; GEMMs and the rest
    unchanged. On Hopper the decode kernel is vLLM's fit lent to llama.cpp (kvplan.engines.vllm hopper_gqa_decode,
    16-bit KV): per layer floor_16bit_s + (read^p + work^p)^(1/p), read = held / (3,350 GB/s x mem_eff), held = 64 x
    4,096 x 4,096 B (8 KV heads x 128 x K, V x 2 B), work = 64 x 8 x seq_kvhead_16bit_s; 32 layers."""
    s = setup("llama-3.1-8b", "h100-sxm", engine="llamacpp", kv_dtype_name="fp16", weights_dtype="bf16")
    cal = calibration("llamacpp")

    def step(settings: Settings):  # noqa: ANN202
        return mixed_step_latency(s.spec, s.gpu, decode_seqs=64, decode_context=4096, prefill_tokens=0,
                                  kv_dtype_name="fp16", weights_dtype="bf16", engine="llamacpp",
                                  settings=settings)  # fmt: skip

    split, unified = step(Settings()), step(UNIFIED)
    fit = cal.hopper_gqa_decode
    p = fit.overlap_p

    def attention(passes: int) -> float:
        read = passes * 64 * 4096 * 4096 / (3350e9 * fit.mem_eff)
        work = 64 * 8 * fit.seq_kvhead_16bit_s
        return 32 * (fit.floor_16bit_s + (read**p + work**p) ** (1 / p))

    assert split.attention == pytest.approx(attention(1), rel=1e-9)
    assert unified.attention == pytest.approx(attention(4), rel=1e-9)
    assert unified.gemm == split.gemm and unified.elementwise == split.elementwise

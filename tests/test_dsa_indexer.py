"""DeepSeek-V3.2's lightning indexer in the prompt phase (kvplan.latency.indexer_prefill_s)."""

from __future__ import annotations

import pytest

from kvplan.catalog import load_bundled
from kvplan.hardware import resolve_gpu
from kvplan.latency import _engine_ctx, _stage_flops, indexer_prefill_s, step_latency

H200 = resolve_gpu("h200")
V32 = load_bundled("deepseek-v3.2-exp")
V3 = load_bundled("deepseek-v3")


def _ctx(spec, tp=8):  # noqa: ANN001, ANN202
    return _engine_ctx(spec, H200, "vllm", kv_dtype="fp8", tp=tp, weights_dtype="fp8", eager=True, ep=False, dp=1,
                       pp=1, gpus_per_node=None, two_batch=False, deepep=False)  # fmt: skip


def test_indexer_golden_one_prompt_h200():
    # One 2,048-token prompt, 61 indexed layers (every layer of deepseek-v3.2-exp is mla_indexed):
    # pairs = 2048 x 2049 / 2 x 61 = 127,988,736; FLOPs = 2 x 64 heads x 128 dims x pairs = 2,096,967,450,624;
    # fp8 peak 1,979e12 x attn_prefill_eff 0.6255 (vLLM) -> 1.694020e-3 s; logits 8 B a pair = 1,023,909,888 B at
    # 4,800e9 x gemm_mem_eff 0.8439 -> 2.527723e-4 s; together 1.946793e-3 s. Replicated: the same at TP 1 and TP 8.
    for tp in (1, 8):
        got = indexer_prefill_s(_ctx(V32, tp), range(61), context=2048, prefix=0, prompts=1)
        assert got == pytest.approx(1.946793e-3, rel=1e-6)


def test_indexer_chunks_add_up_and_prompts_scale():
    c = _ctx(V32)
    whole = indexer_prefill_s(c, range(61), context=4096, prefix=0, prompts=1)
    first = indexer_prefill_s(c, range(61), context=2048, prefix=0, prompts=1)
    second = indexer_prefill_s(c, range(61), context=2048, prefix=2048, prompts=1)
    assert first + second == pytest.approx(whole, rel=1e-12)
    assert second == pytest.approx(3 * first, rel=2e-3)  # the second half scores ~3x the pairs of the first
    assert indexer_prefill_s(c, range(61), context=2048, prefix=0, prompts=4) == pytest.approx(4 * first)
    assert indexer_prefill_s(c, range(30), context=2048, prefix=0, prompts=1) == pytest.approx(first * 30 / 61)


def test_no_indexer_no_cost_and_step_adds_it():
    assert indexer_prefill_s(_ctx(V3), range(61), context=32000, prefix=0, prompts=1) == 0.0
    flops = _stage_flops(V32, range(61), context=2048, prefix=0, prompts=1, tp=8)
    step = step_latency(V32, H200, 2048, phase="prefill", tp=8, kv_dtype_name="fp8", weights_dtype="fp8",
                        attention_flops=flops, engine="vllm")  # fmt: skip
    dense = step_latency(V3, H200, 2048, phase="prefill", tp=8, kv_dtype_name="fp8", weights_dtype="fp8",
                         attention_flops=_stage_flops(V3, range(61), context=2048, prefix=0, prompts=1, tp=8),
                         engine="vllm")  # fmt: skip
    # same MLA attention shape and FLOPs; V3.2's attention differs by the indexer alone
    assert step.attention - dense.attention == pytest.approx(1.946793e-3, rel=1e-6)

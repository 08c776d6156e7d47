"""DeepSeek-V3.2 in the prompt phase: its lightning indexer and sparse attention (kvplan.latency, kvplan.attention)."""

from __future__ import annotations

import pytest

from kvplan.attention import attention_dims, prefill_pairs
from kvplan.catalog import load_bundled
from kvplan.hardware import resolve_gpu
from kvplan.latency import _attention_s, _engine_ctx, _stage_flops, indexer_prefill_s, step_latency

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


def test_no_indexer_no_cost():
    assert indexer_prefill_s(_ctx(V3), range(61), context=32000, prefix=0, prompts=1) == 0.0


def test_sparse_pairs_and_absorbed_dims():
    # DeepSeek-V3.2's kind caps each query at index_topk = 2,048 keys: a 4,096-token prompt has 2048 x 2049 / 2 +
    # 2,048 x 2,048 = 6,292,480 pairs (dense causal: 8,390,656); the sparse kernel multiplies in the absorbed form,
    # 576 (512 latent + 64 rope) and 512 per head, in the prompt as at decode.
    kind = V32.kind("mla_indexed")
    assert prefill_pairs(kind, 4096) == 6_292_480 and prefill_pairs(kind, 2048) == 2048 * 2049 // 2
    assert attention_dims(V32, kind, "prefill") == (576, 512)
    assert attention_dims(V3, V3.kind(next(iter(V3.kind_counts))), "prefill") == (192, 128)


def test_sparse_attention_golden_h200_tp8():
    # One 2,048-token prompt at TP 8: 16 heads a rank, vLLM pads them to 64 on Hopper (x4). FLOPs: 2 x 16 x (576 +
    # 512) x 2,098,176 pairs x 61 layers = 4,456,055,832,576 (x4 = 17,824,223,330,304) at 989e12 x 0.647 (FlashMLA's
    # 640 of 989 TFLOPS) = 27.8554 ms; the fixed costs are the same with no FLOPs.
    c = _ctx(V32)
    flops = _stage_flops(V32, range(61), context=2048, prefix=0, prompts=1, tp=8)
    assert flops == 4_456_055_832_576
    got = _attention_s(c, phase="prefill", context=2048, batch=1, attention_flops=flops, kv_dtype="fp8")
    fixed = _attention_s(c, phase="prefill", context=2048, batch=1, attention_flops=0, kv_dtype="fp8")
    assert got - fixed == pytest.approx(27.8554e-3, rel=1e-5)
    # TP 1: 128 heads, already a multiple of 64, no padding: 8 x the FLOPs, the same time as TP 8's padded 64
    c1 = _ctx(V32, tp=1)
    flops1 = _stage_flops(V32, range(61), context=2048, prefix=0, prompts=1, tp=1)
    one = _attention_s(c1, phase="prefill", context=2048, batch=1, attention_flops=flops1, kv_dtype="fp8")
    assert one - _attention_s(c1, phase="prefill", context=2048, batch=1, attention_flops=0, kv_dtype="fp8") == (
        pytest.approx(2 * 27.8554e-3, rel=1e-5)
    )
    # the step adds the indexer to that
    step = step_latency(V32, H200, 2048, phase="prefill", tp=8, kv_dtype_name="fp8", weights_dtype="fp8",
                        attention_flops=flops, engine="vllm")  # fmt: skip
    assert step.attention == pytest.approx(got + 1.946793e-3, rel=1e-6)

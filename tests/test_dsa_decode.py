"""DeepSeek-V3.2 at decode: the lightning indexer over every cached key, the sparse MLA kernel over at most
index_topk of them (kvplan.latency._dsa_decode_s), and the cache rows the engines keep for it (kvplan.memory)."""

from __future__ import annotations

import pytest

from kvplan.catalog import load_bundled
from kvplan.engines import ENGINES
from kvplan.hardware import resolve_gpu
from kvplan.latency import _attention_s, _dsa_decode_s, _engine_ctx, _sparse_decode_s, calibration
from kvplan.memory import dsa_index_key_bytes, dsa_latent_row_bytes, element_size

H200 = resolve_gpu("h200")
V32 = load_bundled("deepseek-v3.2-exp")
KIND = V32.kind("mla_indexed")


def _ctx(kv: str, tp: int = 8):  # noqa: ANN202
    return _engine_ctx(V32, H200, "vllm", kv_dtype=kv, tp=tp, weights_dtype="fp8", eager=False, ep=False, dp=1, pp=1,
                       gpus_per_node=None, two_batch=False, deepep=False)  # fmt: skip


def test_cache_rows_as_the_kernels_store_them():
    # indexer key: 128 fp8 + 128 / 128 x 4 B scale = 132; fp8 latent row (FlashMLA "FP8 with scale"): 512 fp8 +
    # 4 x 4 B scales + 64 x 2 B bf16 RoPE = 656; a 16-bit row: 576 x 2 = 1,152. SGLang's fp8 NSA pool agrees:
    # 43.67 GiB / 975,424 tokens / 61 layers = 788.07 B = 656 + 132 (engine_logs.json entry 16).
    assert dsa_index_key_bytes(KIND) == 132
    assert dsa_latent_row_bytes(KIND, element_size("fp8")) == 656
    assert dsa_latent_row_bytes(KIND, element_size("bf16")) == 1_152
    assert round(43.67 * 2**30 / 975_424 / 61) == 656 + 132


def test_vllm_fp8_cache_is_fp8_ds_mla():
    # vLLM turns an fp8 --kv-cache-dtype into fp8_ds_mla for DeepSeek-V3.2: 61 x (656 + 132) = 48,068 B a token
    # (was 61 x (576 + 132) = 43,188 before the 656-byte row was read); bf16 is unchanged, 61 x (1,152 + 132).
    vllm = ENGINES["vllm"]
    assert vllm.cache_plan(V32, kv_dtype_name="fp8", tp=8, pp=1).bytes_per_token == 8 * 61 * 788
    assert vllm.cache_plan(V32, kv_dtype_name="bf16", tp=1, pp=1).bytes_per_token == 61 * 1_284 == 78_324
    # the expanded per-head layout (--mla expanded) is not the sparse kernels' row: only the indexer key changes
    expanded = vllm.cache_plan(V32, kv_dtype_name="fp8", tp=1, pp=1, mla="expanded").bytes_per_token
    ideal = ENGINES["ideal"].cache_plan(V32, kv_dtype_name="fp8", tp=1, pp=1, mla="expanded").bytes_per_token
    assert expanded - ideal == 61 * (132 - 128)


def test_decode_layer_golden_h200_tp8_bf16_4k_and_64k():
    # vLLM on H200 (4,800 GB/s, 989 / 1,979 dense TFLOPS, 132 SMs), TP 8 (16 heads a rank), 64 sequences, bf16 KV:
    # * indexer: 140 B a key (132 key + 8 logits) x L x 64 at 4.8e12 x 0.8422 (attn_decode_mem_eff); FLOPs 2 x 64 x
    #   128 x L x 64 at 1,979e12 x 0.6255 are 2.6x less: L = 4,096 -> 9.078445e-6 s; L = 65,536 -> 1.452551e-4 s
    # * sparse MLA, 2,048 rows at either length: reads 1,152 x 2,048 x 64 at 4.8e12 x 0.95 = 3.311293e-5 s; FLOPs
    #   2 x (1,024 + 64) x 64 padded heads x 2,048 x 64 = 18,253,611,008 on 64 of 132 SMs (one CTA per token and 64
    #   heads) at 989e12 x 0.647 x 64 / 132 = 5.883587e-5 s, the larger
    # * indices: 12 B x 2,048 x 64 at 4.8e12 x 0.8422 = 3.890762e-7 s; 8 kernels x 2.655e-6 (graph) = 2.124e-5 s
    # total 8.954339e-5 s at 4K, 2.257201e-4 s at 64K
    c = _ctx("bf16")
    at_4k = _dsa_decode_s(c, KIND, context=4096, batch=64, kv_dtype="bf16")
    at_64k = _dsa_decode_s(c, KIND, context=65536, batch=64, kv_dtype="bf16")
    assert at_4k == pytest.approx(8.954339e-5, rel=1e-6)
    assert at_64k == pytest.approx(2.257201e-4, rel=1e-6)
    # the indexer grows with the context; the sparse kernel stops at index_topk
    assert at_64k - at_4k == pytest.approx(1.4525513e-4 - 9.078445e-6, rel=1e-6)
    sparse = [_sparse_decode_s(c, KIND, context=n, seqs=64, kv_dtype="bf16") for n in (1024, 2048, 4096, 65536)]
    assert sparse[0] == pytest.approx(sparse[1] / 2) and sparse[1] == sparse[2] == sparse[3]


def test_decode_fp8_cache_runs_every_topk_slot():
    # fp8_ds_mla decodes with FlashMLA's fp8 kernel, scheduled for 2,048 keys a query whatever the context: FLOPs
    # 2 x 1,088 x 64 (16 heads in a 64-head tile) x 2,048 x 64 = 18,253,611,008 at 989e12 x 0.415 = 4.447382e-5 s,
    # above the reads of 656 x 2,048 x 64 at 4.8e12 x 0.95 = 1.885597e-5 s; the same at 100 tokens
    c = _ctx("fp8")
    assert calibration("vllm").sparse_mla_decode_eff == 0.415
    at_4k = _sparse_decode_s(c, KIND, context=4096, seqs=64, kv_dtype="fp8")
    assert at_4k == pytest.approx(4.447382e-5, rel=1e-6)
    assert _sparse_decode_s(c, KIND, context=100, seqs=64, kv_dtype="fp8") == at_4k


def test_small_batch_leaves_sms_idle_on_hopper():
    # batch 1 at TP 8: one CTA, 1/132 of the SMs: 2 x 1,088 x 64 x 2,048 = 285,212,672 FLOPs at 989e12 x 0.647 / 132
    # = 5.883587e-5 s, the same time as 64 tokens on 64 SMs; 200 tokens take two waves over 132 SMs (x 264 / 200)
    c = _ctx("bf16")
    one = _sparse_decode_s(c, KIND, context=2048, seqs=1, kv_dtype="bf16")
    assert one == pytest.approx(5.883587e-5, rel=1e-6)
    assert _sparse_decode_s(c, KIND, context=2048, seqs=64, kv_dtype="bf16") == pytest.approx(one)
    assert _sparse_decode_s(c, KIND, context=2048, seqs=200, kv_dtype="bf16") == pytest.approx(2 * one)


def test_indexer_is_replicated_and_the_model_sums_its_layers():
    # the indexer's heads are not split by TP: TP 1 and TP 8 read and score the same keys
    def indexer(tp: int) -> float:
        c = _ctx("bf16", tp)
        whole = _dsa_decode_s(c, KIND, context=65536, batch=8, kv_dtype="bf16")
        return whole - _sparse_decode_s(c, KIND, context=65536, seqs=8, kv_dtype="bf16")

    assert indexer(1) == pytest.approx(indexer(8))
    c, cal = _ctx("bf16"), calibration("vllm")
    layer = _dsa_decode_s(c, KIND, context=4096, batch=64, kv_dtype="bf16")
    fixed = cal.attn_layer_s + 64 * cal.attn_seq_s + cal.mla_layer_s  # per layer: attention block + MLA block
    got = _attention_s(c, phase="decode", context=4096, batch=64, attention_flops=0, kv_dtype="bf16")
    assert got == pytest.approx(61 * (layer + fixed), rel=1e-12)


def test_dsa_decode_cheaper_than_reading_the_whole_cache_at_long_context():
    # what kvplan priced before: every cached row (1,152 latent + 256 indexer bytes a token at bf16, dense MLA FLOPs);
    # at 64K tokens and 64 sequences the sparse step is several times cheaper, at 2K about the same
    dense = load_bundled("deepseek-v3")
    d = _engine_ctx(dense, H200, "vllm", kv_dtype="bf16", tp=8, weights_dtype="fp8", eager=False, ep=False, dp=1,
                    pp=1, gpus_per_node=None, two_batch=False, deepep=False)  # fmt: skip
    c = _ctx("bf16")
    long_sparse = _attention_s(c, phase="decode", context=65536, batch=64, attention_flops=0, kv_dtype="bf16")
    long_dense = _attention_s(d, phase="decode", context=65536, batch=64, attention_flops=0, kv_dtype="bf16")
    assert long_dense > 3 * long_sparse


def test_roofline_decode_reads_the_index_keys_and_topk_rows():
    # kvplan.cost (the roofline's work and traffic) in the ideal layout, bf16: a 65,536-token sequence's decode step
    # reads per layer 2,048 latent rows of 1,152 B + 65,536 index keys of 256 B = 2,359,296 + 16,777,216 =
    # 19,136,512 B, x 61 layers = 1,167,327,232 B (the whole cache, 65,536 x 1,408 x 61 = 5,628,755,968 B, before);
    # at 1,000 tokens every row is read, as for dense MLA. Scores: 2 x 16 heads (TP 8) x 576 x 2,048 keys x 61.
    from kvplan.attention import decode_span
    from kvplan.cost import step_bytes, step_flops

    assert decode_span(KIND, 65536) == 2048 and decode_span(KIND, 1000) == 1000
    read = step_bytes(V32, 65536, phase="decode", tp=8, kv_dtype_name="bf16", weights_dtype="fp8").kv_read
    assert read == 61 * (1_152 * 2_048 + 256 * 65_536) == 1_167_327_232
    short = step_bytes(V32, 1000, phase="decode", tp=8, kv_dtype_name="bf16", weights_dtype="fp8").kv_read
    assert short == 61 * 1_408 * 1_000
    flops = step_flops(V32, 65536, phase="decode", tp=8)
    assert flops.attention_scores == 2 * 16 * 576 * 2_048 * 61

"""Golden KV numbers, computed by hand in the comments (GiB = 2^30)."""

import pytest

from kvplan import cache_plan, kv_bytes_per_sequence, load_bundled

GIB = 1 << 30


@pytest.mark.parametrize(
    ("length", "gib"),
    # Llama 2 13B, fp16: 2 (K,V) x 40 layers x 40 heads x 128 dim x 2 B = 819,200 B/token.
    # 4K: 819,200 x 4,096 = 3.125 GiB; 16K: 12.5 GiB; 128K: 100 GiB (the source article's 3/12/100 GB).
    [(4096, 3.125), (16384, 12.5), (131072, 100.0)],
)
def test_llama2_13b_article_figures(length, gib):
    assert kv_bytes_per_sequence(load_bundled("llama-2-13b"), length) == int(gib * GIB)


def test_sliding_window_caps_mistral():
    # 32 layers x 2 x 8 heads x 128 x 2 B = 131,072 B/token, window 4096 -> 0.5 GiB at any length >= 4K.
    spec = load_bundled("mistral-7b-v0.1")
    assert kv_bytes_per_sequence(spec, 4096) == 536_870_912
    assert kv_bytes_per_sequence(spec, 131072) == 536_870_912
    assert kv_bytes_per_sequence(spec, 1000) == 131_072 * 1000


def test_gemma3_five_to_one():
    # 8,192 B/token/layer; 52 local (W=1024) + 10 global: 8,192 x (10 x 32,768 + 52 x 1,024) = 3,120,562,176.
    assert kv_bytes_per_sequence(load_bundled("gemma-3-27b"), 32768) == 3_120_562_176


def test_mla_latent_and_tp_replication():
    # DeepSeek V3: (512 + 64) x 61 layers x 2 B = 70,272 B/token; the latent is replicated on each TP rank.
    spec = load_bundled("deepseek-v3")
    assert cache_plan(spec, "bf16").bytes_per_token == 70_272
    plan = cache_plan(spec, "bf16", tp=8)
    assert plan.bytes_per_sequence_per_gpu(4096) == 70_272 * 4096
    assert plan.bytes_per_sequence(4096) == 8 * 70_272 * 4096

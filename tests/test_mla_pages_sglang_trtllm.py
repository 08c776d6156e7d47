"""SGLang's and TensorRT-LLM's MLA page / block size per GPU (kvplan.engines.sglang.page_size,
kvplan.engines.trtllm.tokens_per_block), with pools and sequence counts worked out by hand."""

import pytest

from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.engines import Settings
from kvplan.engines.sglang import runs_trtllm_mla
from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu
from kvplan.units import GIB

AVAILABLE = 64 * GIB  # 68,719,476,736 B of KV on one rank
# DeepSeek-V3 latent: 61 layers x (512 + 64) x 2 B = 70,272 B per token (bf16), 35,136 B (fp8, no scale buffer);
# the same on every TP rank (the latent is not split by TP).
V3_TOKEN_BYTES = 61 * (512 + 64) * 2


def _layout(model, gpu, engine, *, tp=8, kv=None, block=None):
    spec = load_bundled(model)
    settings = Settings(block_size=block) if block else None
    res = setup(spec, resolve_gpu(gpu), engine=engine, tp=tp, kv_dtype_name=kv, weights_dtype="fp8",
                settings=settings)  # fmt: skip
    return res.stages[0].layout


@pytest.mark.parametrize(
    ("model", "gpu", "page"),
    [
        # server_args.py: DeepseekV3ForCausalLM on SM100 -> trtllm_mla -> page_size 1 is not in [32, 64] -> 64.
        ("deepseek-v3", "b200", 64),
        ("deepseek-v3", "gb200", 64),
        ("deepseek-v3.1", "b200", 64),
        ("kimi-k2-instruct-0905", "b200", 64),  # architectures ["DeepseekV3ForCausalLM"]
        # Hopper: fa3 for MLA, no forcing -> 1 (unchanged).
        ("deepseek-v3", "h200", 1),
        # DeepseekV2ForCausalLM on SM100: get_default_attn_backend's MLA branch -> flashinfer, no forcing -> 1.
        ("deepseek-v2", "b200", 1),
    ],
)
def test_sglang_mla_page_size(model, gpu, page):
    assert _layout(model, gpu, "sglang").block_tokens == page  # was 1 everywhere


def test_sglang_trtllm_mla_page_flag():
    # --page-size 32 or 64 is kept; anything else becomes 64 (the "changing page_size from ... to 64" warning).
    assert _layout("deepseek-v3", "b200", "sglang", block=32).block_tokens == 32
    assert _layout("deepseek-v3", "b200", "sglang", block=16).block_tokens == 64
    assert _layout("deepseek-v3", "b200", "sglang", block=128).block_tokens == 64
    # Where trtllm_mla does not run, --page-size stays as given.
    assert _layout("deepseek-v3", "h200", "sglang", block=16).block_tokens == 16
    assert not runs_trtllm_mla(load_bundled("llama-3.1-8b"), gpu=resolve_gpu("b200"))
    assert _layout("llama-3.1-8b", "b200", "sglang", tp=1).block_tokens == 1


def test_sglang_trtllm_mla_refuses_fp8_e5m2():
    # "TensorRT-LLM MLA backend only supports kv-cache-dtype of fp8_e4m3, fp4_e2m1, bf16, or auto."
    with pytest.raises(InvalidInput, match="trtllm_mla"):
        _layout("deepseek-v3", "b200", "sglang", kv="fp8_e5m2")
    assert _layout("deepseek-v3", "h200", "sglang", kv="fp8_e5m2").block_tokens == 1  # fa3 takes it
    assert _layout("deepseek-v3", "b200", "sglang", kv="fp8").block_tokens == 64


def test_sglang_mla_pool_and_sequences_by_hand():
    # B200, page 64: 68,719,476,736 // 70,272 = 977,906 tokens -> // 64 x 64 = 977,856 (15,279 pages); before, page 1:
    # 977,906. At 8,192 tokens (a whole number of pages): 977,856 // 8,192 = 119 (977,906 // 8,192 = 119 before).
    # At 8,200 tokens: ceil(8,200 / 64) = 129 pages, 15,279 // 129 = 118 (page 1: 977,906 // 8,200 = 119).
    b200 = _layout("deepseek-v3", "b200", "sglang")
    assert b200.stage.bytes_per_token == V3_TOKEN_BYTES == 70_272
    assert b200.pool_tokens(AVAILABLE) == 977_856
    assert b200.max_sequences(AVAILABLE, 8_192) == 119
    assert b200.max_sequences(AVAILABLE, 8_200) == 118
    h200 = _layout("deepseek-v3", "h200", "sglang")
    assert h200.pool_tokens(AVAILABLE) == 977_906
    assert h200.max_sequences(AVAILABLE, 8_200) == 119
    # fp8 KV (fp8_e4m3): 35,136 B a token; 68,719,476,736 // 35,136 = 1,955,813 -> 1,955,776 (30,559 pages);
    # 8,192 tokens = 128 pages: 30,559 // 128 = 238.
    fp8 = _layout("deepseek-v3", "b200", "sglang", kv="fp8")
    assert fp8.stage.bytes_per_token == V3_TOKEN_BYTES // 2
    assert fp8.pool_tokens(AVAILABLE) == 1_955_776
    assert fp8.max_sequences(AVAILABLE, 8_192) == 238


@pytest.mark.parametrize(
    ("model", "gpu", "tp", "block"),
    [
        # _util.py: enable_flash_mla (kv_lora_rank + qk_rope_head_dim == 576 on capability (9, 0)) -> 64.
        ("deepseek-v3", "h200", 8, 64),
        ("deepseek-v2-lite", "h100-sxm", 1, 64),  # 512 + 64 = 576 too
        ("kimi-k2-instruct-0905", "h200", 8, 64),
        # Blackwell: tokens_per_block stays 32.
        ("deepseek-v3", "b200", 8, 32),
        ("deepseek-v2-lite", "b200", 1, 32),
    ],
)
def test_trtllm_mla_tokens_per_block(model, gpu, tp, block):
    assert _layout(model, gpu, "trtllm", tp=tp).block_tokens == block  # was 32 everywhere


def test_trtllm_flash_mla_overrides_the_flag():
    # "Change tokens_per_block to: 64 for using FlashMLA" replaces the user's tokens_per_block on Hopper.
    assert _layout("deepseek-v3", "h200", "trtllm", block=16).block_tokens == 64
    assert _layout("deepseek-v3", "b200", "trtllm", block=16).block_tokens == 16
    assert _layout("llama-3.1-8b", "h200", "trtllm", tp=1).block_tokens == 32


def test_trtllm_mla_pool_and_sequences_by_hand():
    # One K-only head of 576 per layer: 70,272 B a token (bf16). H200, 64-token blocks: page 4,497,408 B;
    # 68,719,476,736 // 4,497,408 = 15,279 blocks = 977,856 tokens (32-token blocks before: 30,559 = 977,888);
    # 8,192 tokens = 128 blocks: 15,279 // 128 = 119 (30,559 // 256 = 119 before).
    h200 = _layout("deepseek-v3", "h200", "trtllm")
    assert (h200.block_tokens, h200.stage.bytes_per_token) == (64, 70_272)
    assert h200.pool_tokens(AVAILABLE) == 977_856
    assert h200.max_sequences(AVAILABLE, 8_192) == 119
    b200 = _layout("deepseek-v3", "b200", "trtllm")
    assert (b200.block_tokens, b200.stage.bytes_per_token) == (32, 70_272)
    assert b200.pool_tokens(AVAILABLE) == 977_888
    assert b200.max_sequences(AVAILABLE, 8_192) == 119

"""vLLM's MLA backend and block size per release and GPU (kvplan.engines.vllm.mla_choice), and the latency constant
that follows the backend (kvplan.latency._mla_decode_layer_s)."""

from dataclasses import replace
from types import SimpleNamespace

import pytest

from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.engines import Settings, get_engine
from kvplan.engines.vllm import mla_choice
from kvplan.hardware import resolve_gpu
from kvplan.latency import _mla_decode_layer_s
from kvplan.units import GIB


def _layout(model, gpu, engine="vllm", *, tp=1, kv=None, block=None, weights=None):
    spec = load_bundled(model)
    settings = Settings(block_size=block) if block else None
    res = setup(spec, resolve_gpu(gpu), engine=engine, tp=tp, kv_dtype_name=kv, weights_dtype=weights,
                settings=settings)  # fmt: skip
    return res.stages[0].layout


def _choice(model, gpu, engine="vllm", *, kv="bf16", block=None):
    profile = get_engine(engine)
    spec = load_bundled(model)
    plan = profile.cache_plan(spec, kv_dtype_name=kv, tp=1, pp=1)
    return mla_choice(spec, plan, gpu=resolve_gpu(gpu), block=block, selection=profile.mla_selection)


@pytest.mark.parametrize(
    ("engine", "b200", "h200"),
    [
        # 0.19 / 0.21: the backend first, then its preferred block (vllm-project/vllm#35122): FLASHINFER_MLA on SM100
        # supports kernel blocks [32, 64], not 16 -> the smallest, 32; FLASH_ATTN_MLA on Hopper MultipleOf(16) -> 16.
        ("vllm", 32, 16),
        ("vllm@0.19", 32, 16),
        # 0.8: FlashMLA forced to 64 on Hopper (capability 9 only); Triton MLA elsewhere keeps 16.
        ("vllm@0.8", 16, 64),
    ],
)
def test_mla_block_size_per_release_and_gpu(engine, b200, h200):
    got = tuple(_layout("deepseek-v3", g, engine, tp=8, weights="fp8").block_tokens for g in ("b200", "h200"))
    assert got == (b200, h200)  # was (128, 16) for every release: the CUTLASS_MLA forcing of Aug 2025-Feb 2026


def test_mla_backend_names_per_release():
    assert _choice("deepseek-v2-lite", "b200").backend == "FLASHINFER_MLA"
    assert _choice("deepseek-v2-lite", "h200").backend == "FLASH_ATTN_MLA"
    assert _choice("deepseek-v2-lite", "b200", "vllm@0.8").backend == "TRITON_MLA"
    assert _choice("deepseek-v2-lite", "h200", "vllm@0.8").backend == "FLASHMLA"
    # fp8 KV on Hopper: FLASH_ATTN_MLA takes auto/float16/bfloat16 only -> FLASHMLA, whose one kernel block is 64.
    assert _choice("deepseek-v2-lite", "h200", kv="fp8") == _choice("deepseek-v2-lite", "h200", kv="fp8_e4m3")
    assert _choice("deepseek-v2-lite", "h200", kv="fp8").backend == "FLASHMLA"
    assert _choice("deepseek-v2-lite", "h200", kv="fp8").block_tokens == 64
    # ... and FLASHINFER_MLA takes fp8 on B200: still 32.
    assert (_choice("deepseek-v2-lite", "b200", kv="fp8").backend, _choice("deepseek-v2-lite", "b200", kv="fp8")
            .block_tokens) == ("FLASHINFER_MLA", 32)  # fmt: skip
    # No MLA layers: no choice, vLLM's 16.
    assert _choice("llama-3.1-8b", "b200") is None
    assert _layout("llama-3.1-8b", "b200").block_tokens == 16


def test_block_size_flag_per_release():
    # 0.19+: --block-size is kept and the selector looks for a backend that takes it (#35122): 64 is a multiple of
    # FLASHINFER_MLA's 64; 16 is no multiple of 32 or 64 (nor CUTLASS_MLA's 128, nor FLASHMLA's 64): TRITON_MLA.
    assert _choice("deepseek-v2-lite", "b200", block=64).backend == "FLASHINFER_MLA"
    assert _layout("deepseek-v2-lite", "b200", block=64).block_tokens == 64
    assert _choice("deepseek-v2-lite", "b200", block=16).backend == "TRITON_MLA"
    assert _layout("deepseek-v2-lite", "b200", block=16).block_tokens == 16
    # 0.8: Hopper's FlashMLA forcing overrides --block-size 16 (block_size != 64 -> 64).
    assert _layout("deepseek-v2-lite", "h200", "vllm@0.8", block=16).block_tokens == 64
    assert _layout("deepseek-v2-lite", "b200", "vllm@0.8", block=128).block_tokens == 128


def test_sparse_mla_takes_64_token_blocks():
    # DeepSeek-V3.2's indexer backend supports kernel blocks [64] only (vllm-project/vllm#49845).
    for gpu in ("b200", "h200"):
        assert _layout("deepseek-v3.2-exp", gpu, tp=8).block_tokens == 64


def test_mla_pool_and_sequences_by_hand():
    """64 GiB of KV on one rank, 10,000-token requests; every rank holds the whole latent (not split by TP)."""
    available = 64 * GIB  # 68,719,476,736 B
    # DeepSeek-V3: 61 layers x 576 x 2 B = 70,272 B per token.
    # B200 (0.21), 32-token blocks: page 2,248,704 B; 68,719,476,736 // 2,248,704 = 30,559 blocks = 977,888 tokens;
    # a request holds ceil(10,000 / 32) = 313 blocks; (30,559 - 1 null block) // 313 = 97 requests.
    # Before (128-token blocks): 7,639 blocks = 977,792 tokens; 79 blocks a request; 7,638 // 79 = 96.
    b200 = _layout("deepseek-v3", "b200", tp=8, weights="fp8")
    assert b200.unit_bytes == 32 * 70_272
    assert b200.pool_tokens(available) == 977_888
    assert b200.max_sequences(available, 10_000) == b200.decode_sequences(available, 10_000) == 97
    # DeepSeek-V2-Lite: 27 x 576 x 2 B = 31,104 B per token.
    # H200 under 0.8, 64-token blocks: page 1,990,656 B; 34,521 blocks = 2,209,344 tokens; ceil(10,000 / 64) = 157
    # blocks a request; 34,520 // 157 = 219. Under 0.19 (16-token blocks): 138,084 blocks = 2,209,344 tokens; 625
    # blocks a request; 138,083 // 625 = 220. (Before, 0.8 also took 16: 220.)
    old = _layout("deepseek-v2-lite", "h200", "vllm@0.8")
    new = _layout("deepseek-v2-lite", "h200", "vllm@0.19")
    assert (old.unit_bytes, new.unit_bytes) == (64 * 31_104, 16 * 31_104)
    assert old.pool_tokens(available) == new.pool_tokens(available) == 2_209_344
    assert (old.max_sequences(available, 10_000), new.max_sequences(available, 10_000)) == (219, 220)


def _ctx(model, gpu, engine, **cal):
    spec = load_bundled(model)
    calibration = replace(get_engine(engine).calibration, **cal)
    return SimpleNamespace(spec=spec, gpu=resolve_gpu(gpu), cal=calibration)


def test_blackwell_mla_constant_follows_the_backend():
    cal = get_engine("vllm").calibration
    hopper_s, blackwell_s = cal.mla_layer_s, cal.blackwell_mla_layer_s
    assert blackwell_s is not None and blackwell_s < hopper_s  # 13.23 us (FLASHINFER_MLA fit) against 85.56 us
    # 0.19 / 0.21 on B200: FLASHINFER_MLA runs, its constant applies; on H200 the Hopper one.
    for engine in ("vllm", "vllm@0.19"):
        assert _mla_decode_layer_s(_ctx("deepseek-v3", "b200", engine), "bf16") == blackwell_s
        assert _mla_decode_layer_s(_ctx("deepseek-v3", "b200", engine), "fp8") == blackwell_s
        assert _mla_decode_layer_s(_ctx("deepseek-v3", "h200", engine), "bf16") == hopper_s
    # fp8_e5m2 is no FLASHINFER_MLA dtype: another backend runs, mla_layer_s.
    assert _mla_decode_layer_s(_ctx("deepseek-v3", "b200", "vllm"), "fp8_e5m2") == hopper_s
    # A model whose qk_nope_head_dim FLASHINFER_MLA does not take (only 64, 128, 192): CUTLASS_MLA, mla_layer_s.
    assert _mla_decode_layer_s(_ctx("deepseek-v3", "b200", "vllm", blackwell_mla_nope_dims=(64,)), "bf16") == hopper_s
    # 0.8 ran Triton MLA on Blackwell: no FLASHINFER_MLA constant.
    assert get_engine("vllm@0.8").calibration.blackwell_mla_layer_s is None
    assert _mla_decode_layer_s(_ctx("deepseek-v3", "b200", "vllm@0.8"), "bf16") == hopper_s

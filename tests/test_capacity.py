"""Capacity answers: engine figures from logged KV memory, inverse searches, mixes, does-not-fit."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvplan.capacity import (
    capacity,
    expected_concurrency,
    max_context,
    max_sequences,
    pool_tokens,
    reported_concurrency,
    setup,
    with_kv_memory,
)
from kvplan.catalog import load_bundled
from kvplan.engines import Settings
from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu
from kvplan.units import GIB

H100 = resolve_gpu("h100-sxm")

# vLLM 0.19 (V1) startup logs on H100 80GB, shared/reference/engine_logs.json: model, TP, utilization,
# max_model_len, logged "Available KV cache memory" (GiB, 2 decimals), num_gpu_blocks, "GPU KV cache
# size" tokens, "Maximum concurrency" at max_model_len.
VLLM_LOGS = [
    ("vllm-15", "llama-3.1-8b", 1, 0.95, 16384, 58.11, 29751, 476016, 29.05),
    ("vllm-17", "llama-3.1-8b", 2, 0.95, 8192, 63.76, 65293, 1044688, 127.53),
    ("vllm-19", "gemma-2-9b", 1, 0.95, 8192, 54.12, 21110, 168880, 20.60),
    ("vllm-21", "deepseek-v2-lite", 1, 0.95, 8192, 43.61, 94097, 1505552, 183.78),
    ("vllm-23", "gpt-oss-20b", 2, 0.90, 8192, 59.32, 323972, 2591776, 316.07),
    ("vllm-25", "qwen3-30b-a3b", 1, 0.95, 8192, 15.41, 10518, 168288, 20.54),
    ("vllm-27", "qwen2.5-7b", 1, 0.95, 8192, 58.53, 68500, 1096000, 133.79),
]


def _vllm(model, tp=1, util=0.9, **kw):
    # These figures are vLLM 0.19's (the logs above): its rule set, vllm@0.19.
    return setup(load_bundled(model), H100, engine="vllm@0.19", tp=tp, settings=Settings(gpu_memory_utilization=util),
                 **kw)  # fmt: skip


@pytest.mark.parametrize(("case", "model", "tp", "util", "length", "kv_gib", "blocks", "tokens", "conc"), VLLM_LOGS)
def test_vllm_figures_from_logged_kv_memory(case, model, tp, util, length, kv_gib, blocks, tokens, conc):
    s = _vllm(model, tp, util)
    lay = s.stages[0].layout
    # The logged budget is rounded to 0.01 GiB: kvplan's block count for the rounding interval
    # must contain the engine's.
    lo = lay.pool_units(int((kv_gib - 0.005) * GIB))
    hi = lay.pool_units(int((kv_gib + 0.005) * GIB))
    assert lo <= blocks <= hi, case
    # Given the engine's block count, the token and concurrency figures match exactly.
    exact = with_kv_memory(s, blocks * lay.unit_bytes)
    assert lay.pool_units(exact.stages[0].available) == blocks
    assert pool_tokens(exact) == tokens
    assert round(reported_concurrency(exact, length), 2) == conc
    # The exact count of whole sequences: (blocks - null block) // blocks per request.
    assert max_sequences(exact, length) == (blocks - 1) // lay.blocks_per_request(length)


@pytest.mark.parametrize(("case", "model", "tp", "util", "length", "kv_gib", "blocks", "tokens", "conc"), VLLM_LOGS)
def test_vllm_predicted_kv_memory_within_two_percent(case, model, tp, util, length, kv_gib, blocks, tokens, conc):
    """From scratch (weights, activation, non-torch); gpt-oss-20b needs its MXFP4 checkpoint dtype."""
    w = "mxfp4" if model.startswith("gpt-oss") else None
    s = setup(load_bundled(model), H100, engine="vllm@0.19", tp=tp, weights_dtype=w,
              settings=Settings(gpu_memory_utilization=util))  # fmt: skip
    predicted = s.stages[0].budget.available_kv / GIB
    assert predicted == pytest.approx(kv_gib, rel=0.02), case


def test_vllm_pipeline_stages_take_the_smallest_block_count():
    # vllm-11: DeepSeek-V2-Lite TP2 PP2 on L4: stage 0 (14 layers) 12.13 GiB, stage 1 (13 layers)
    # 11.33 GiB; the engine logged 807,792 tokens = 50,487 blocks x 16 (stage 0 is the minimum).
    s = setup(load_bundled("deepseek-v2-lite"), resolve_gpu("l4"), engine="vllm", tp=2, pp=2)
    lo = with_kv_memory(s, [int(12.125 * GIB), int(11.325 * GIB)])
    hi = with_kv_memory(s, [int(12.135 * GIB), int(11.335 * GIB)])
    assert pool_tokens(lo) <= 807792 <= pool_tokens(hi)


# ---- inverse searches ----------------------------------------------------------------------------

INVERSE_CASES = [
    ("llama-3.1-8b", "vllm"),
    ("gemma-3-27b", "vllm"),  # sliding 5:1
    ("mistral-7b-v0.1", "ideal"),  # all-sliding: capped per sequence
    ("deepseek-v2-lite", "vllm"),  # MLA
    ("llama-4-scout-17b-16e", "ideal"),  # chunked
    ("jamba-v0.1", "vllm"),  # recurrent + attention
    ("qwen3-next-80b-a3b", "sglang"),
    ("gpt-oss-20b", "llamacpp"),
    ("gemma-2-9b", "transformers"),
    ("qwen2.5-7b", "trtllm"),
]


@pytest.mark.parametrize(("model", "engine"), INVERSE_CASES)
@pytest.mark.parametrize("batch", [1, 3])
def test_max_context_fits_and_one_more_token_does_not(model, engine, batch):
    spec = load_bundled(model)
    s = setup(spec, H100, engine=engine)
    # A small budget so that memory, not the model's trained length, is the limit.
    small = with_kv_memory(s, 2 * GIB)
    top = 1 << 24
    n = max_context(small, batch=batch, limit=top)
    if n == top:  # every layer windowed: the cost stops growing (mistral v0.1 SWA 4096)
        assert small.fits(batch=batch, length=top)
        return
    assert n >= 1
    assert small.fits(batch=batch, length=n)
    assert not small.fits(batch=batch, length=n + 1)


@pytest.mark.parametrize(("model", "engine"), INVERSE_CASES)
def test_max_sequences_fit_and_one_more_does_not(model, engine):
    s = with_kv_memory(setup(load_bundled(model), H100, engine=engine), 4 * GIB)
    n = max_sequences(s, 4096)
    assert n >= 1
    assert s.fits(batch=n, length=4096)
    assert not s.fits(batch=n + 1, length=4096)


def test_sliding_window_model_max_context_is_the_model_limit():
    # Mistral 7B v0.1: every layer holds at most 4096 tokens, so any length fits once one does.
    r = capacity(with_kv_memory(setup(load_bundled("mistral-7b-v0.1"), H100, engine="ideal"), GIB), 4096)
    assert r.max_context == 32768 and r.max_context_limited_by == "model max_position_embeddings"


@given(length=st.integers(1, 200_000), extra=st.integers(1, 5000))
@settings(max_examples=40, deadline=None)
def test_units_never_decrease_with_length(length, extra):
    for model in ("gemma-3-27b", "jamba-v0.1"):
        lay = setup(load_bundled(model), H100, engine="vllm").stages[0].layout
        assert lay.units_for(1, length + extra) >= lay.units_for(1, length)


# ---- the answer ----------------------------------------------------------------------------------


def test_capacity_json_fields_are_integers():
    r = capacity(_vllm("llama-3.1-8b", util=0.95), 16384).to_dict()
    for key in ("kv_pool_bytes", "kv_pool_tokens", "max_concurrent_sequences", "max_context"):
        assert isinstance(r[key], int)
    assert all(isinstance(v, int) for v in r["breakdown"].values())
    assert r["breakdown"]["available_kv_bytes"] == r["available_kv_bytes"]


def test_kv_cache_memory_sets_the_budget():
    r = capacity(_vllm("llama-3.1-8b"), 16384, kv_cache_memory=int(58.11 * GIB))
    assert r.available_kv_bytes == int(58.11 * GIB)
    assert r.kv_cache_memory_given
    assert r.max_concurrent_sequences == 29  # 29,752 blocks - 1 null block, 1,024 blocks each


def test_replicas_multiply_sequences():
    one = capacity(_vllm("llama-3.1-8b", tp=2), 8192)
    two = capacity(setup(load_bundled("llama-3.1-8b"), H100, engine="vllm@0.19", tp=2, gpus=4), 8192)
    assert two.replicas == 2
    assert two.max_concurrent_sequences == 2 * one.max_concurrent_sequences


def test_gpus_must_be_a_multiple_of_the_split():
    with pytest.raises(InvalidInput, match="multiple of tp x pp = 2"):
        setup(load_bundled("llama-3.1-8b"), H100, tp=2, gpus=3)


def test_expected_concurrency_for_a_mix():
    s = with_kv_memory(_vllm("llama-3.1-8b"), 10 * GIB)
    # One length: the pool over one request's blocks (null block excluded).
    lay = s.stages[0].layout
    free = lay.pool_units(10 * GIB) - 1
    assert expected_concurrency(s, [8192]) == pytest.approx(free / 512)
    mix = expected_concurrency(s, [2048, 8192, 32768], weights=[0.6, 0.3, 0.1])
    mean_blocks = 0.6 * 128 + 0.3 * 512 + 0.1 * 2048
    assert mix == pytest.approx(free / mean_blocks)
    with pytest.raises(InvalidInput, match="one weight per length"):
        expected_concurrency(s, [2048, 8192], weights=[1.0])


def test_does_not_fit_is_an_answer_with_the_nearest_fit():
    r = capacity(setup(load_bundled("llama-3.1-70b"), resolve_gpu("h100-sxm"), engine="vllm"), 32768)
    assert not r.fits and r.max_concurrent_sequences == 0
    assert "no memory left" in r.reason
    assert any(n["change"].startswith("--tp") for n in r.nearest)


def test_context_too_long_suggests_the_longest_that_fits():
    s = with_kv_memory(_vllm("llama-3.1-8b"), GIB)  # 512 blocks of 16 tokens -> 8,176 tokens after the null block
    r = capacity(s, 32768)
    assert not r.fits
    assert r.max_context == 511 * 16
    assert r.nearest[0]["change"] == f"--context {511 * 16}"

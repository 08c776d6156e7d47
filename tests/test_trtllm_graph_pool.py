"""TensorRT-LLM's KV estimation with the decode CUDA graphs captured, by hand.

The PyTorch executor captures its decode graphs (``PyTorchModelEngine.warmup``, from the largest size down, one memory
pool) before ``KvCacheCreator.estimate_max_tokens`` and releases them only after the real cache is built, so the graph
pool sits in the estimation's ``extra_cost`` and the KV pool is ``free_gpu_memory_fraction`` x (free after load,
activations and the pool) -- where the estimation's small cache holds the largest graph's rows; where it does not,
the warmup stops and captures none until the real executor (kvplan.engines.trtllm, the comment above
``GRAPH_LOGIT_BYTES``).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from kvplan.capacity import setup
from kvplan.engines import Settings, get_engine
from kvplan.engines.trtllm import default_graph_sizes, estimation_blocks, graph_pool

SIZES = (1, 2, 4, 8, 16, 32, 64, 128)


def _budget(settings: Settings, engine: str = "trtllm@0.20", **kw):  # noqa: ANN202
    s = setup("llama-3.1-8b", "h100-sxm", engine=engine, weights_dtype="bf16", kv_dtype_name="bf16",
              settings=settings, **kw)  # fmt: skip
    return s, s.stages[0].budget


def test_estimation_cache_blocks_by_hand() -> None:
    """``_create_dummy_context_requests`` + ``_get_token_num_for_estimation``: 8,192 tokens under a 131,072-token
    max_seq_len are one request, ceil((8192 + 2) / 32) = 257 blocks; trtllm-bench's 2,048/128 row with a 32,768-token
    cap and max_seq_len 2,176 runs 15 requests of 2,175 tokens (69 blocks each) and one of 143 (5 blocks): 1,040, and
    x 8 under attention DP (the list repeated tp_size times); a 2,048-token cap: 65 blocks."""
    assert estimation_blocks(max_num_tokens=8192, max_seq_len=131072, block=32) == 257
    assert estimation_blocks(max_num_tokens=32768, max_seq_len=2176, block=32) == 15 * 69 + 5
    assert estimation_blocks(max_num_tokens=32768, max_seq_len=2176, block=32, dp_copies=8) == 8 * 1040
    assert estimation_blocks(max_num_tokens=2048, max_seq_len=4096, block=32) == 65


def test_graph_pool_llama_8b_by_hand() -> None:
    """The 128-row decode graph of Llama 3.1 8B at TP1: hidden buffers 3.48 x 128 x 4,096 bytes (kvplan's activation
    model, vllm.HIDDEN_BYTES) and the larger of the graph's bf16 logits, 2 x 128 x 128,256 = 32,833,536 bytes, and the
    MLP's intermediates, 2 x 128 x 3 x 14,336 = 11,010,048: 1,824,522 + 32,833,536 bytes."""
    spec = setup("llama-3.1-8b", "h100-sxm", engine="trtllm@0.20").spec
    assert graph_pool(spec, rows=128, tp=1) == 1_824_522 + 32_833_536


def test_pool_shrinks_by_the_graph_pool_times_the_fraction_by_hand() -> None:
    """Sizes up to 128 with max_batch_size 128 and the default 8,192-token cap: the estimation cache's 257 blocks
    hold 128 rows, so the graphs are captured before the estimation and the KV pool loses 0.9 x the pool (one
    byte of int rounding) against the launch without graphs (``cuda_graph_config: null``); the budget names the pool
    as inside it. No sizes named: the engine's default CudaGraphConfig, sizes 1-31, 32, 64, 128, the same pool."""
    _, plain = _budget(Settings(max_num_seqs=128, cuda_graphs=False))
    s, with_graphs = _budget(Settings(max_num_seqs=128, cuda_graph_batch_sizes=SIZES))
    pool = graph_pool(s.spec, rows=128, tp=1)
    assert with_graphs.cuda_graph == pool and with_graphs.cuda_graph_in_budget
    assert plain.cuda_graph == 0 and not plain.cuda_graph_in_budget
    assert plain.available_kv - with_graphs.available_kv == pytest.approx(0.9 * pool, abs=1)
    _, default = _budget(Settings(max_num_seqs=128))
    assert (default.cuda_graph, default.cuda_graph_in_budget, default.available_kv) == (
        pool, True, with_graphs.available_kv)


def test_default_graph_sizes_by_hand() -> None:
    """CudaGraphConfig's generated sizes for its default max 128 without padding, kept up to
    min(max_batch_size, max_num_tokens) with no cap added: 34 sizes up to 128; a cap of 100 keeps 1-31, 32, 64; a
    2,048-token budget leaves them all."""
    assert default_graph_sizes(Settings()) == (*range(1, 32), 32, 64, 128)
    assert default_graph_sizes(Settings(max_num_seqs=100))[-3:] == (31, 32, 64)
    assert default_graph_sizes(Settings(max_num_batched_tokens=2048))[-1] == 128


def test_no_term_where_the_estimation_captures_no_graph() -> None:
    """A 2,048-token cap (65 estimation blocks) under graphs up to 256: the warmup finds no room for the 256-row
    graph and stops, so the graphs come after the pool is sized (reported, outside the budget) and the pool is the
    one without graphs. No graphs at all (``cuda_graphs`` False, TensorRT-LLM's ``cuda_graph_config: null``) or a
    TensorRT-engine release: no term; the default sizes (up to 128) under the same 65 blocks: captured after too.
    With the later copies' warmup blocks
    (``graph_warmup_blocks``) the same launch captures them before the estimation."""
    big = (*SIZES, 256)
    _, plain = _budget(Settings(max_num_seqs=256, max_num_batched_tokens=2048, cuda_graphs=False))
    _, late = _budget(Settings(max_num_seqs=256, max_num_batched_tokens=2048, cuda_graph_batch_sizes=big))
    assert late.cuda_graph > 0 and not late.cuda_graph_in_budget
    assert late.available_kv == plain.available_kv
    _, off = _budget(Settings(max_num_seqs=128, cuda_graph_batch_sizes=SIZES, cuda_graphs=False))
    assert (off.cuda_graph, off.cuda_graph_in_budget) == (0, False)
    _, default = _budget(Settings(max_num_seqs=256, max_num_batched_tokens=2048))
    assert default.cuda_graph > 0 and not default.cuda_graph_in_budget and default.available_kv == plain.available_kv
    _, engine_built = _budget(Settings(max_num_seqs=128, cuda_graph_batch_sizes=SIZES), engine="trtllm@0.17")
    assert (engine_built.cuda_graph, engine_built.cuda_graph_in_budget) == (0, False)
    grown = replace(get_engine("trtllm@0.20"), graph_warmup_blocks=True)
    s, _ = _budget(Settings())
    b = grown.budget(s.spec, settings=Settings(max_num_seqs=256, max_num_batched_tokens=2048,
                                               cuda_graph_batch_sizes=big),
                     total=plain.device_total, weights=plain.weights, tp=1, pp=1, gpu=s.gpu)  # fmt: skip
    assert b.cuda_graph_in_budget and b.available_kv == pytest.approx(
        plain.available_kv - 0.9 * graph_pool(s.spec, rows=256, tp=1), abs=1)


def test_attention_dp_ranks_hold_every_copy_and_capture() -> None:
    """Qwen3-30B-A3B on 4 x H100, attention DP 4 + EP, caps 512 / 2,048: one rank's estimation cache holds the four
    copies of the 2,048-token dummy (4 x 65 = 260 blocks), short of the 512-row graph: none captured; 256 rows fit,
    and the MoE intermediates of the graph count every rank's rows."""
    kw = dict(tp=1, dp=4, ep=True)
    settings = Settings(max_num_seqs=512, max_num_batched_tokens=2048, cuda_graph_batch_sizes=(*SIZES, 256, 512))
    s = setup("qwen3-30b-a3b", "h100-sxm", engine="trtllm@0.20", weights_dtype="fp8", kv_dtype_name="fp8",
              settings=settings, **kw)  # fmt: skip
    assert not s.stages[0].budget.cuda_graph_in_budget
    fits = replace(settings, max_num_seqs=256, cuda_graph_batch_sizes=(*SIZES, 256))
    s = setup("qwen3-30b-a3b", "h100-sxm", engine="trtllm@0.20", weights_dtype="fp8", kv_dtype_name="fp8",
              settings=fits, **kw)  # fmt: skip
    b = s.stages[0].budget
    assert b.cuda_graph_in_budget
    sharding = get_engine("trtllm@0.20").sharding(s.spec, tp=1, dp=4, ep=True)
    assert b.cuda_graph == graph_pool(s.spec, rows=256, tp=4, sharding=sharding)
    assert b.cuda_graph > graph_pool(s.spec, rows=256, tp=4)  # the gathered rows (4 x 256) against one rank's

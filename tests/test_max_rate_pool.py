"""The steady state at the highest sustainable rate holds the KV pool's places (stop 29).

TensorRT-LLM's default capacity policy (GUARANTEED_NO_EVICT, ``BindCapacityScheduler`` in
tensorrt_llm/_torch/pyexecutor/scheduler.py over cpp/tensorrt_llm/batch_manager/capacityScheduler.cpp) admits a request
only where the blocks to its completion are free, ``getRemainingBlocksToCompletion``: ``ceilDiv(prompt + max new
tokens, tokens_per_block)`` whole blocks. kvplan's sequence limit counted the pool in tokens, a few places more than
the engine's blocks hold; where those few crossed a captured CUDA-graph size the step at the limits was padded to the
next graph, the highest rate fell to that padded step's, and the steady state at that rate stopped well below the
pool (Llama 4 Scout GB200 500/2000: 446 of 513 a rank; Maverick 8 x H200 1000/1000: 345 of 386).
"""

from __future__ import annotations

import dataclasses

import pytest

from kvplan.capacity import binding_pool, setup
from kvplan.engines import Settings
from kvplan.hardware import resolve_gpu
from kvplan.serving import Lengths, _decode_context, _limits, _mean_step, max_rate, serve
from tests.benchmods import published


def _row(model: str, gpu: str, isl: int, osl: int) -> dict:
    _, data = published()
    return next(r for r in data["runs"] if r["model"] == model and r["gpu"] == gpu
                and (r["isl"], r["osl"]) == (isl, osl) and r["source"] == "trtllm-1.0")  # fmt: skip


def _llama(engine: str, policy: str | None = None):  # noqa: ANN202
    return setup("llama-3.1-70b", resolve_gpu("h100-sxm"), engine=engine, tp=2, weights_dtype="fp8",
                 kv_dtype_name="fp8", settings=Settings(capacity_scheduler_policy=policy))  # fmt: skip


def test_reservation_counts_whole_blocks_where_the_engine_reserves_to_completion() -> None:
    # 500 + 2,000 tokens reserve ceil(2500 / 32) = 79 blocks of 32 (2,528 tokens) under GUARANTEED_NO_EVICT; the
    # written context of MAX_UTILIZATION (500 + 1,000) and vLLM's stay in tokens (no reservation to round)
    inp, out = Lengths.of(500), Lengths.of(2000)
    s = _llama("trtllm")
    assert s.stages[0].layout.block_tokens == 32
    pool, held = binding_pool(s, 2500, whole_blocks=True)
    assert held == 2528 and binding_pool(s, 2500) == (pool, 2500)
    assert _limits(s, inp, out) == (pool / 2528, "kv_cache")
    util = _llama("trtllm", "max_utilization")
    assert _limits(util, inp, out)[0] == pytest.approx(binding_pool(util, 1500)[0] / 1500)
    vllm = _llama("vllm")
    assert _limits(vllm, inp, out)[0] == pytest.approx(binding_pool(vllm, 1500)[0] / 1500)
    # a reservation already a whole number of blocks does not move: 2,048 + 2,048 = 128 blocks
    assert binding_pool(s, 4096, whole_blocks=True) == binding_pool(s, 4096)


@pytest.mark.parametrize(
    ("model", "gpu", "isl", "osl", "places", "graph"),
    [
        ("llama-4-scout-17b-16e", "gb200", 500, 2000, 511.16, 512),  # 507.43 before trtllm-bench's token cap
        ("llama-4-maverick-17b-128e", "h200", 1000, 1000, 382.86, 384),
    ],
)
def test_steady_state_at_the_highest_rate_holds_the_pool(model, gpu, isl, osl, places, graph) -> None:  # noqa: ANN001
    # the limit a rank is the run's places (published_compare.run_places, the same rule) and stays under the captured
    # graph size, so the step at the limits is not padded past it; the steady state `serve` reports just under the
    # highest rate (the least root, a batch growing from empty) then holds the pool to the rate's resolution, where it
    # stopped at 0.87 / 0.89 of the token-counted limit
    pub, _ = published()
    s = pub.run_setup(_row(model, gpu, isl, osl))
    inp, out = Lengths.of(isl), Lengths.of(osl)
    limit, name = _limits(s, inp, out)
    assert name == "kv_cache" and limit / s.dp == pytest.approx(places, abs=0.01)
    assert limit / s.dp == pub.run_places(s, inp, out, whole=False)
    assert s.engine.graph_rows(s.settings, limit / s.dp) == graph
    top = max_rate(s, input_len=inp, output_len=out)
    at = serve(s, rate_rps=0.999 * top, input_len=inp, output_len=out, with_max_rate=False, with_p90=False,
               with_p99=False)  # fmt: skip
    assert not at.saturated and at.step_batch / limit > 0.98
    past = serve(s, rate_rps=1.01 * top, input_len=inp, output_len=out, with_max_rate=False)
    assert past.saturated and past.batch == limit


def test_capped_and_kv_bound_steady_states_differ_by_the_captured_graph_only() -> None:
    # Maverick 8 x H200 2048/2048 (stop 28's finding: the steady state capped at 188 by max_batch_size read 3 % more
    # than the KV-bound one at the same batch). The step at 188 a rank is 47.2 ms with max_batch_size 188 and 48.9 ms
    # without: TensorRT-LLM captures no graph past max_batch_size and replaces the first size past it by the cap
    # (kvplan.engines.trtllm captured_graph_sizes, _filter_cuda_graph_batch_sizes), so 188 runs as 188 rows there and
    # is padded to the 256 graph without the cap. With the graphs off the two setups price the same step and the same
    # highest rate: nothing else differs. Since the rows take trtllm-bench's own max_num_tokens (4,096 here; stop 29)
    # the pool holds 192.05 a rank (188.44 before), so the cap that meets it is 192: 1.033 x at 192 a rank, the eager
    # rates equal (at 188 they part, 14.36 and 14.27 requests/s: the cap then binds below the pool). Since stop 30 the
    # capped run's 192-row graph fits the KV estimation's cache (8 x 129 blocks) and is captured before the pool is
    # sized (kvplan.engines.trtllm Trtllm.estimation_graphs: 0.137 GiB), so its pool holds 191.70 a rank and binds just
    # below the cap; without the cap the largest graph (2,048 rows) does not fit there and the pool holds 192.05.
    pub, _ = published()
    row = _row("llama-4-maverick-17b-128e", "h200", 2048, 2048)
    inp = out = Lengths.of(2048)
    n = 192 * 8
    kw = {"n": n, "p": n, "prompt": 2048, "budget": 8192, "context": _decode_context(inp, out), "ep": False}
    free, capped = pub.run_setup(row), pub.run_setup(row, max_batch=192)
    assert pub.run_places(free, inp, out, whole=False) == pytest.approx(192.05, abs=0.01)
    assert free.engine.graph_rows(free.settings, 192) == 256 and capped.engine.graph_rows(capped.settings, 192) == 192
    ratio = _mean_step(free, **kw) / _mean_step(capped, **kw)
    assert 1.03 < ratio < 1.04
    eager = [dataclasses.replace(x, settings=dataclasses.replace(x.settings, cuda_graphs=False))
             for x in (free, capped)]  # fmt: skip
    assert _mean_step(eager[0], **kw) == _mean_step(eager[1], **kw)
    rates = [max_rate(x, input_len=inp, output_len=out) for x in eager]
    assert rates[0] == rates[1]
    assert _limits(eager[1], inp, out) == (pytest.approx(1533.625, abs=0.01), "kv_cache")


def test_top_state_tells_the_pool_held_a_graph_hump_and_a_flat_top_apart() -> None:
    # published_compare --top-state: Scout GB200 500/2000 holds its 511.2 places at the top (507.4 before trtllm-bench's
    # token cap, stop 29); Scout 4 x H200 1000/1000's 522.7 places a rank (519.5) lie past the 512 graph, so its steps
    # make 1.104 x (1.107) the top's requests a second just under
    # the bound (a hump: the engine at saturation runs the padded steps, the rates between are not sustained) and the
    # least root at 0.999 of the top sits at 0.58 of it; Llama 3.3 70B B200 128/128's rate is within 1 % of the top
    # from 0.82 of the bound on (flat: near the top the least root moves far on a small change of the rate)
    pub, _ = published()
    held = pub.top_state(_row("llama-4-scout-17b-16e", "gb200", 500, 2000))
    assert held["kind"] == "holds" and held["bound"] == "kv_cache" and held["per_rank"] == pytest.approx(511.16, 1e-4)
    assert held["share"] >= pub.TOP_HOLDS and held["peak"] <= 1.005
    s = pub.run_setup(_row("llama-4-scout-17b-16e", "h200", 1000, 1000))
    hump = pub.top_state(_row("llama-4-scout-17b-16e", "h200", 1000, 1000))
    assert hump["kind"] == "hump" and hump["per_rank"] == pytest.approx(522.7, abs=0.1)
    assert s.engine.graph_rows(s.settings, hump["per_rank"]) > 512 == s.engine.graph_rows(s.settings, 512)
    assert hump["peak"] > 1.05 and hump["at"] > 0.95 and hump["share"] < 0.7  # 1.107 at 0.99; 0.58
    flat = pub.top_state(_row("llama-3.1-70b", "b200", 128, 128))  # the page's Llama 3.3 70B, the same architecture
    assert flat["kind"] == "flat" and flat["peak"] <= 1.005 and flat["near"] < 0.9  # 0.82

"""TensorRT-LLM's capacity scheduler policy (``Settings.capacity_scheduler_policy``, ``--capacity-scheduler-policy``).

GUARANTEED_NO_EVICT (the default) admits a request only once the blocks for its whole prompt + output are free, so a
running sequence holds I + O tokens against the pool; MAX_UTILIZATION (cpp/tensorrt_llm/batch_manager/
capacityScheduler.cpp @02a10fed ``MaxUtilizationScheduler``) admits by the next step's blocks and pauses on a
shortfall, so a sequence holds its written context, I + O/2 on average (``Engine.holds_to_completion``). NVIDIA's
MLPerf configs set ``batch_scheduler_policy 'max_util'``; the rows whose file says so carry it.
"""

from __future__ import annotations

import pytest

from kvplan.capacity import pool_tokens, setup
from kvplan.engines import Settings
from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu
from kvplan.serving import Lengths, serve
from tests.benchmods import published

H100 = resolve_gpu("h100-sxm")


def _setup(engine: str, policy: str | None):  # noqa: ANN202
    return setup("llama-3.1-70b", H100, engine=engine, tp=2, weights_dtype="fp8", kv_dtype_name="fp8",
                 settings=Settings(capacity_scheduler_policy=policy))  # fmt: skip


@pytest.mark.parametrize(("engine", "reserved"), [("trtllm", 4000), ("trtllm@0.17", 4032)])
def test_max_utilization_holds_the_written_context(engine, reserved):
    # 1,000 prompt + 3,000 output tokens past saturation: the pool bounds the batch at pool / reserved sequences under
    # GUARANTEED_NO_EVICT (1000 + 3000 reserved each, in whole blocks: getRemainingBlocksToCompletion's ceilDiv; 125
    # blocks of 32 tokens on 1.0, 63 of 64 on v0.17's engines) and at pool / 2500 under MAX_UTILIZATION (1000 + 3000 /
    # 2, the mean written context), the same pool either way.
    inp, out = Lengths.of(1000), Lengths.of(3000)
    no_evict, max_util = _setup(engine, None), _setup(engine, "max_utilization")
    assert no_evict.engine.holds_to_completion(no_evict.settings)
    assert not max_util.engine.holds_to_completion(max_util.settings)
    assert pool_tokens(no_evict) == pool_tokens(max_util)
    r = serve(no_evict, rate_rps=1e6, input_len=inp, output_len=out, with_max_rate=False)
    assert r.saturated and r.batch == pytest.approx(pool_tokens(no_evict) / reserved)
    r = serve(max_util, rate_rps=1e6, input_len=inp, output_len=out, with_max_rate=False)
    assert r.saturated and r.batch == pytest.approx(pool_tokens(max_util) / 2500)
    explicit = _setup(engine, "guaranteed_no_evict")
    assert explicit.engine.holds_to_completion(explicit.settings)


def test_policy_is_checked_and_trtllm_only():
    with pytest.raises(InvalidInput, match="--capacity-scheduler-policy does not apply to engine 'vllm'"):
        _setup("vllm", "max_utilization")
    with pytest.raises(InvalidInput, match="invalid --capacity-scheduler-policy 'banana'; expected"):
        _setup("trtllm", "banana")


def test_plan_rate_flag(cli):
    base = ("plan", "llama-3.1-8b", "--rate", "5", "--gpus", "h100-sxm", "--max-gpus", "1", "--top", "1")
    r = cli(*base, "--engine", "trtllm", "--capacity-scheduler-policy", "max_utilization")
    assert r.exit_code == 0 and "capacity_scheduler_policy: MAX_UTILIZATION" in r.output
    r = cli(*base, "--engine", "trtllm", "--capacity-scheduler-policy", "fcfs")
    assert r.exit_code == 2 and "invalid --capacity-scheduler-policy 'fcfs'" in r.output
    r = cli(*base, "--capacity-scheduler-policy", "max_utilization")  # vLLM, the default engine
    assert r.exit_code == 2 and "does not apply to engine 'vllm'" in r.output
    r = cli("plan", "llama-3.1-8b", "--users", "4", "--context", "4k", "--capacity-scheduler-policy", "max_utilization")
    assert r.exit_code == 2 and "use it with --rate" in r.output


def test_mlperf_rows_take_the_harness_policy():
    pub, data = published()
    # every TensorRT-engine row (NVIDIA's harness defaults to max_util; the v5.1 files and the v5.0 405B bases set it),
    # each saying on its stack whether its own file sets it or it is inferred. The two DeepSeek-R1 rows (PyTorch
    # backend) carry it too, citing the harness code that writes it into their trtllm-serve options YAML (it was
    # "the R1 rows do not" before: that code, llmlib/config.py @e9ccad4d, had not been read for the policy)
    engine_rows = [r for r in data["mlperf"] if r.get("tensorrt_engine")]
    assert len(engine_rows) == 18
    assert all(r["capacity_scheduler_policy"] == "max_utilization" for r in engine_rows)
    assert all("'max_util'" in r["stack"] for r in engine_rows)
    inferred = [r for r in engine_rows if "inferred: no file read for this run sets it" in r["stack"]]
    assert {(r["source"], r["model"], r["gpu"]) for r in inferred} == {
        ("mlperf-4.1", "llama-2-70b", "h200"), ("mlperf-4.1", "llama-2-70b", "h100-sxm"),
        ("mlperf-5.0", "llama-2-70b", "h100-sxm"), ("mlperf-4.1", "llama-2-70b", "b200"),
        ("mlperf-4.1", "mixtral-8x7b", "h200"), ("mlperf-4.1", "mixtral-8x7b", "h100-sxm"),
    } and len(inferred) == 8  # fmt: skip
    pytorch_rows = [r for r in data["mlperf"] if not r.get("tensorrt_engine")]
    assert sorted((r["model"], r["scenario"]) for r in pytorch_rows) == [("deepseek-v3", "Offline"),
                                                                         ("deepseek-v3", "Server")]  # fmt: skip
    for r in pytorch_rows:
        assert r["capacity_scheduler_policy"] == "max_utilization"
        assert "scheduler_config" in r["capacity_scheduler_policy_source"]
        assert "e9ccad4d" in r["capacity_scheduler_policy_source"]
        assert pub._mlperf_setup(r).settings.capacity_scheduler_policy == "max_utilization"
    for r in engine_rows:
        assert pub._mlperf_setup(r).settings.capacity_scheduler_policy == "max_utilization"


def test_mlperf_before_and_after():
    # The v5.1 B200 Llama-2 Offline run is KV-bound under GUARANTEED_NO_EVICT (222 + 265 tokens reserved a sequence)
    # and token-budget-bound under MAX_UTILIZATION; the H100 Llama-2 Server run, KV-bound at 999 sequences, admits
    # more and reaches the TPOT limit sooner. Every moved row, before -> after (docs/cost.md, "What the capacity
    # scheduler policy moves"); the other rows do not move.
    # Those figures are with every output the log's mean (``flat``); with the Llama-2 outputs' spread (output_cv
    # 0.7095, tests/test_in_flight_lengths.py) the policy matters more, since GUARANTEED_NO_EVICT reserves the
    # in-flight output, O (1 + scv): the H100 Server run 1.1426 -> 1.1851, H200 Server 1.0793 -> 1.0619, v5.1 B200
    # Offline 0.8039 -> 0.8235, Server 0.8271 -> 0.8399. The B200 rows since the Blackwell decode attention refit
    # (kvplan.engines.trtllm blackwell_gqa_decode, NVFP4 refitted with it), flat: Offline (0.7804, 0.7843) -> (0.8352,
    # 0.8392); Server (0.7945, 0.7961) -> (0.8521, 0.8521), its step then fast enough that the policy did not move it.
    # Since the NVFP4 constants were refitted with the MoE router priced 16-bit (kvplan.latency._router_ctx; r25e), the
    # B200 rows: Offline flat (0.8352, 0.8392) -> (0.8313, 0.8352), with the spread (0.8039, 0.8235) -> (0.8000,
    # 0.8196); Server flat (0.8521, 0.8521) -> (0.8482, 0.8488), with the spread (0.8271, 0.8399) -> (0.8228, 0.8358).
    # Since the TensorRT-engine runs decode without CUDA graphs (published_compare.MLPERF_CUDA_GRAPHS: NVIDIA's
    # harnesses never set cudaGraphMode), their pure-decode steps launch eagerly and the Server rows move a little:
    # flat, H200 (1.0986, 1.0965) -> (1.0949, 1.0969), H100 (1.2149, 1.2008) -> (1.2161, 1.2001), v5.1 B200 Server
    # (0.8482, 0.8488) -> (0.8486, 0.8494); with the spread H200 (1.0793, 1.0619) -> (1.0774, 1.0636), H100 (1.1426,
    # 1.1851) -> (1.1444, 1.1853); the Offline row does not move (its steps all carry prompt tokens). Since
    # fit_fp4.py fits TensorRT-LLM's NVFP4 constants on the steps and the GEMM tables together (fp4_gemm_s), the
    # v5.1 B200 rows: Offline flat (0.8313, 0.8352) -> (0.8274, 0.8313), with the spread (0.8000, 0.8196) -> (0.8000,
    # 0.8157); Server flat (0.8493, 0.8492) -> (0.8459, 0.8458), with the spread (0.8228, 0.8353) -> (0.8197, 0.8323).
    pub, data = published()
    flat = {k: {**d, "output_cv": None} for k, d in data["mlperf_datasets"].items()}
    moved = {
        # Since stop 29 GUARANTEED_NO_EVICT counts each request's reservation in whole blocks (kvplan.serving._limits,
        # getRemainingBlocksToCompletion's ceilDiv: 222 + 291 tokens reserve 17 blocks of 32, 544 tokens), fewer
        # places, so only the "before" (no policy) figures move: B200 Offline flat 0.8352 -> 0.8313, Server (0.8545,
        # 0.8259) -> (0.8532, 0.8234), H100 Server with the spread 1.1454 -> 1.1372, H200 Server (1.0997, 1.0813) ->
        # (1.0794, 1.0391); the rows as scored (MAX_UTILIZATION) do not move.
        ("mlperf-5.1", "llama-2-70b", "b200", "Offline"): ((0.8313, 0.8392), (0.8039, 0.8274)),
        # at the requests' own p99 TPOT (kvplan.tpot_tail, stop 26); before it ((0.8486, 0.8494), (0.8228, 0.8358)),
        # ((1.2161, 1.2001), (1.1444, 1.1853)), ((1.0949, 1.0969), (1.0774, 1.0636)). Since stop 27 the TPOT is the
        # request's own life's mean (kvplan.serving._own_life: the prompts queued behind it at its first token, the
        # others by Little's law on its TPOT), the p99 life built on it; before ((0.8491, 0.8491), (0.8231, 0.8358)),
        # ((1.2165, 1.1489), (1.1437, 1.183)), ((1.0962, 1.0748), (1.079, 1.0807)). Since stop 28 the steady state is
        # the least fixed point (kvplan.serving._solve; the rate search's serve() calls meet lumpy steps with more
        # than one root); before ((0.8484, 0.8495), (0.8228, 0.8354)), ((1.2171, 1.2003), (1.1349, 1.1855)),
        # ((1.0956, 1.0973), (1.0793, 1.081))
        # Since stop 28's whole prompts (kvplan.serving._step ``prompts``: Llama-2's 222-token prompts ride many to a
        # step, each its own attention): before them B200 Offline ((0.8274, 0.8313), (0.8000, 0.8157)), Server
        # ((0.8459, 0.8458), (0.8197, 0.8323)), H100 ((1.2168, 1.2003), (1.1454, 1.1842)), H200 ((1.0956, 1.0973),
        # (1.0793, 1.0833))
        # Since stop 29's prompt queue (kvplan.serving.MIXED_QUEUE_RULE "time": the longer TTFT puts more prompts behind
        # a request at its first token, its own life's TPOT a little longer or shorter as its rate search lands; the
        # TTFT p99 with the own prefill and the wait independent): before it B200 Server ((0.8545, 0.8545), (0.8259,
        # 0.8408)), H100 ((1.2188, 1.2029), (1.1454, 1.1886)), H200 ((1.0997, 1.0977), (1.0813, 1.0857))
        # (the B200 Server row's spread reading 0.8417 -> 0.8418 with the wait's Cramer-Lundberg tail, stop 29 too).
        # Both stop 29 changes together (the whole-block reservations above and this prompt queue), merged: B200
        # Server ((0.8532, 0.8558), (0.8234, 0.8418)), H100 ((1.2194, 1.2036), (1.1387, 1.1882)), H200 ((1.079,
        # 1.0997), (1.0391, 1.085))
        # r30i (stop 29, B200's own all-reduce latency and the NVFP4 refit after it) moves the B200 Server row:
        # ((0.8532, 0.8558), (0.8234, 0.8418)) before it
        ("mlperf-5.1", "llama-2-70b", "b200", "Server"): ((0.8532, 0.8545), (0.8216, 0.8415)),
        # Since stop 29's r30c (the own life's TPOT at the crossing its walk from the steps' t meets, kvplan.serving.
        # _least_fixed_point: where f(t) < t it had returned one Picard step) before H100 ((1.2194, 1.2036), (1.1387,
        # 1.1882)), H200 ((1.079, 1.0997), (1.0391, 1.085))
        ("mlperf-4.1", "llama-2-70b", "h100-sxm", "Server"): ((1.2188, 1.2034), (1.1377, 1.1882)),
        ("mlperf-4.1", "llama-2-70b", "h200", "Server"): ((1.0797, 1.1014), (1.04, 1.0885)),
    }
    for r in data["mlperf"]:
        key = (r["source"], r["model"], r["gpu"], r["scenario"])
        if key not in moved:
            continue
        before = {k: v for k, v in r.items() if k != "capacity_scheduler_policy"}
        for datasets, want in zip((flat, data["mlperf_datasets"]), moved[key], strict=True):
            got = (pub.score_mlperf(before, datasets)["ratio"], pub.score_mlperf(r, datasets)["ratio"])
            assert got == want, key

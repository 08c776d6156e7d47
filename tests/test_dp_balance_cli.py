"""``plan --rate --attention-dp-balance``: TensorRT-LLM's attention_dp_config.enable_balance from the CLI
(tensorrt_llm/llmapi/llm_args.py AttentionDpConfig: enable_balance, default False; timeout_iters 50,
batching_wait_iters 10). The schedule itself is kvplan.serving._dp_mean_step (tests/test_dp_prefill.py by hand)."""

from __future__ import annotations

import json

import pytest

from kvplan.catalog import load_bundled
from kvplan.engines import Settings
from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu
from kvplan.serving import Lengths
from kvplan.slo import Targets, plan_for_targets

ARGS = ["plan", "qwen3-30b-a3b", "--rate", "20", "--gpus", "h200", "--engine", "trtllm", "--top", "0",
        "--max-gpus", "4", "--format", "json"]  # fmt: skip


def _rows(cli, *extra: str) -> tuple[dict, dict]:
    out = cli(*ARGS, *extra)
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    return doc, {(r["tp"], r["dp"], r["ep_ranks"]): r for r in doc["plans"]}


def test_plan_rate_attention_dp_balance_golden_rows(cli) -> None:
    """Qwen3-30B-A3B, 20 req/s of 2k in / 512 out on H200 with TensorRT-LLM (figures as kvplan printed them).
    With the ranks balanced every rank's prompt chunk runs in the same steps (py_executor.py ``_schedule`` holds
    context requests back until every rank has one), so fewer steps carry a chunk than with independent ranks
    (1 - (1 - f)^dp of them), and the DP rows' TPOT must fall; rows without attention DP must not move.
    DP 4 x EP 4: TPOT 0.018210 s -> 0.012476 s (batch 186.28 -> 127.57, each about rate x output x TPOT by
    Little's law: 20 x 512 x 0.018210 = 186.5, 20 x 512 x 0.012476 = 127.8); DP 2 x EP 2: 0.055171 -> 0.015948 s.
    The DP 2 figure was 0.038493 s (one replica at 20 req/s) before the balancer's batching wait bounded the prompt
    releases (kvplan.serving._release_every): with batching_wait_iters 10 a backlogged rank prefills once every 11
    iterations, so 11 x its prompt tokens per step plus its decodes must fit its 8,192-token budget, and the step
    may not pass 8,192 x 2 / (20 x (11 x 2,048 + 512)) = 0.03556 s at 20 req/s, below the 0.0385 s it would take.
    The replica sustains 19.6 req/s, and the row is two replicas at 10 req/s each (TPOT 0.015948 s, batch 81.5).
    Stop 25: the plain (unbalanced) DP rows' arrivals land together (kvplan.serving._landed_together: a step holds
    prompt work after a step in which prompts arrived, fewer and fuller prefill steps than independent ranks), so
    their TPOT falls: DP 4 0.018210 -> 0.017279 s (batch 186.28 -> 176.74; 20 x 512 x 0.017279 = 176.9), DP 2
    0.055171 -> 0.046088 s (batch 564.57 -> 471.56; 20 x 512 x 0.046088 = 471.9); the balanced rows do not move.
    Stop 26: a rank takes the prompts dealt to it in a step up to its room, not one prompt (the busiest of the plain
    rows' ranks carries E[ceil(K / dp)] prompts), so the plain rows' TPOT rises: DP 4 0.017279 -> 0.017287 s, DP 2
    0.046088 -> 0.051921 s (batch 531.3; benchmarks/serving_sim.py's replica at 20 req/s, dealt in turn: 53.89 ms,
    batch 555.3; dealt as TensorRT-LLM deals, to the fewest active requests: 61.73 ms). Stop 27: a request's TPOT
    is its own life's (kvplan.serving._own_life: the prompts queued behind it at its first token, the others beside it
    by Little's law on its TPOT), so every row's TPOT rises a little, the balanced rows' most (their hold, 0.27 s for
    DP 4, leaves more prompts behind): plain DP 4 0.017287 -> 0.017331 s, DP 2 0.051921 -> 0.052248 s; balanced DP 4
    0.012476 -> 0.012593 s, DP 2 0.015948 -> 0.016066 s; the batch is now the time average, rate x 512 x TPOT a
    replica (DP 4 balanced 128.95 = 20 x 512 x 0.012593). Stop 27 too: TensorRT-LLM's dealing to the fewest active
    requests keeps a step's arrivals together (Engine.dp_dealing), and the busiest rank takes the largest of dp
    Poisson shares (kvplan.serving.busiest_drawn): the plain rows' TPOT rises, DP 4 to 0.017962 s, DP 2 to 0.066772 s
    (before it 0.017331 and 0.052248; the simulation of DP 2 dealt as TensorRT-LLM deals: 61.73 ms at stop 26). Stop
    28: the steady state is the least fixed point (kvplan.serving._solve); DP 2's g(t) = step(t) - t crosses 0 at
    66.030 ms and again at 66.056 ms after a lump of 2.7 us, and regula falsi took the second: 0.066772 ->
    0.066747 s. Stop 28 too: a plain row's prefill step is the mean over its prompt count K, each K with the largest
    of the ranks' uniform shares of it (kvplan.serving._prefill_counts, busiest_given), not the step at the mean
    count: DP 4 TPOT 0.017962 -> 0.018020 s; the DP 2 replica's sustainable rate falls from 20.41 to 19.94 req/s,
    below the 20 asked, so the plain DP 2 row is two replicas at 10 req/s as the balanced one is (TPOT 0.066747 ->
    0.017732 s); the balanced rows do not move. Stop 29: the prompts' queue at its time share (kvplan.serving
    MIXED_QUEUE_RULE "time"; TensorRT-LLM mixes steps): the longer TTFT leaves more prompts behind a request at its
    first token, so every row's TPOT rises a little: plain DP 4 0.018020 -> 0.018031 s, DP 2 0.017732 -> 0.017740 s;
    balanced DP 4 0.012593 -> 0.012600 s, DP 2 0.016066 -> 0.016074 s. Stop 29 too (r30d): the busiest rank's whole
    prompts each attend to their own tokens (kvplan.serving._whole_prompts; before, one attention over all the rank's
    prompt tokens, quadratic), so a plain row's prefill steps with several prompts on the busiest rank shorten: DP 4
    TPOT 0.018031 -> 0.017827 s, and the DP 2 replica holds 20.78 req/s again (tests/test_dp_balance_wait.py), one
    replica at 20 req/s (TPOT 0.058402 s, near its bound); the balanced rows carry one prompt a rank a step and do not
    move. Stop 30: a balancer's release carries the prompts that arrived during its cycle, not one prompt a rank
    (kvplan.serving._released_parts; DP 4 at the default 50 / 10 iterations: ~39-iteration cycles of ~10 prompts, the
    busiest rank's share drawn as the engine deals), so the balanced rows' prefill steps are fewer and heavier: TPOT
    DP 4 0.012600 -> 0.013255 s, DP 2 0.016074 -> 0.016440 s (two replicas either way)."""
    plain_doc, plain = _rows(cli)
    doc, balanced = _rows(cli, "--attention-dp-balance")
    assert plain[(1, 4, 4)]["tpot_s"] == pytest.approx(0.017827350575250065, rel=1e-6)  # 0.018020, 0.018031
    assert balanced[(1, 4, 4)]["tpot_s"] == pytest.approx(0.013254646735349708, rel=1e-6)  # 0.012600 stop 29
    assert plain[(1, 2, 2)]["tpot_s"] == pytest.approx(0.058401994895940244, rel=1e-6)  # 0.017740 two replicas
    assert balanced[(1, 2, 2)]["tpot_s"] == pytest.approx(0.01643957465460654, rel=1e-6)  # 0.016074 stop 29
    assert (balanced[(1, 2, 2)]["replicas"], plain[(1, 2, 2)]["replicas"]) == (2, 1)  # (2, 2) at stop 28
    dp_keys = [k for k in plain if k[1] > 1]
    assert len(dp_keys) == 2 and set(plain) == set(balanced)
    for k in dp_keys:  # the direction the source implies: aligned chunks, fewer prefill steps, a lower TPOT
        assert balanced[k]["tpot_s"] < plain[k]["tpot_s"] and balanced[k]["batch"] < plain[k]["batch"]
    drop = ("pareto",)  # the front may move: a balanced DP row can now beat a plain one
    for k in set(plain) - set(dp_keys):  # no attention DP: the setting changes nothing
        assert {a: v for a, v in balanced[k].items() if a not in drop} == {a: v for a, v in plain[k].items()
                                                                           if a not in drop}  # fmt: skip
    assert plain_doc["notes"] == []
    keys = "attention_dp_config: {enable_balance: true, timeout_iters: 50, batching_wait_iters: 10}"  # the defaults
    assert any(keys in n for n in doc["notes"])


def test_plan_rate_attention_dp_balance_note_in_table(cli) -> None:
    out = cli(*ARGS[:-2], "--attention-dp-balance")
    assert out.exit_code == 0, out.output
    note = next(line for line in out.output.splitlines() if line.startswith("note: attention-DP balance"))
    assert "`attention_dp_config: {enable_balance: true, timeout_iters: 50, batching_wait_iters: 10}`" in note
    assert "--extra_llm_api_options" in note


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["qwen3-30b-a3b", "--engine", "vllm"], "--attention-dp-balance does not apply to engine 'vllm'"),
        (["qwen3-30b-a3b", "--engine", "sglang"], "--attention-dp-balance does not apply to engine 'sglang'"),
        (["qwen3-8b", "--engine", "trtllm"], "need an MoE model; qwen3-8b has no MoE layers"),
        (["qwen3-8b", "--engine", "trtllm", "--disaggregated"], "need an MoE model"),
    ],
)
def test_plan_rate_attention_dp_balance_refusals(cli, args, expected) -> None:
    out = cli("plan", *args, "--rate", "5", "--gpus", "h200", "--attention-dp-balance")
    assert out.exit_code == 2, out.output
    assert expected in out.output and out.output.strip().count("\n") == 0, out.output


def test_plan_without_rate_refuses_attention_dp_balance(cli) -> None:
    out = cli("plan", "qwen3-30b-a3b", "--users", "8", "--context", "8k", "--engine", "trtllm",
              "--attention-dp-balance")  # fmt: skip
    assert out.exit_code == 2 and "change latency only" in out.output, out.output
    assert out.output.strip().count("\n") == 0


def test_library_refuses_balance_on_dense_model() -> None:
    targets = Targets(5.0, Lengths.of(2048), Lengths.of(512))
    with pytest.raises(InvalidInput, match="--attention-dp-balance"):
        plan_for_targets(load_bundled("qwen3-8b"), [resolve_gpu("h200")], targets, engine="trtllm",
                         settings=Settings(attention_dp_balance=True))  # fmt: skip


def test_plan_rate_balance_iteration_knobs(cli) -> None:
    """--attention-dp-timeout-iters / --attention-dp-batching-wait-iters: the YAML's attention_dp_config keys. Without
    the batching wait (0) the DP rows' prompts wait less: a lower TTFT, and where the replica count stays a TPOT as
    low or lower (since stop 27 a shorter hold leaves fewer prompts queued behind a request at its first token, which
    its life carries: DP 4 0.012593 -> 0.012579 s); the DP 2 replica carries the 20 req/s again (22.5 req/s
    sustainable against 19.6 with the wait), one replica instead of two. Rows without attention DP do not move.
    Since stop 30 the knobs also shape the steps (kvplan.serving._released_parts): without the batching wait a release
    comes as soon as every rank has a prompt, so the releases are more frequent and lighter, and the DP 4 TPOT is
    within 1 % of the default's either way (0.013369 against 0.013255 s: more prefill steps, each of fewer prompts)."""
    _, default = _rows(cli, "--attention-dp-balance")
    doc, short = _rows(cli, "--attention-dp-balance", "--attention-dp-timeout-iters", "60",
                       "--attention-dp-batching-wait-iters", "0")  # fmt: skip
    keys = "attention_dp_config: {enable_balance: true, timeout_iters: 60, batching_wait_iters: 0}"
    assert any(keys in n for n in doc["notes"])
    assert (default[(1, 2, 2)]["replicas"], short[(1, 2, 2)]["replicas"]) == (2, 1)
    unmarked = lambda r: {a: v for a, v in r.items() if a != "pareto"}  # noqa: E731
    for k, row in default.items():
        if k[1] == 1:
            assert unmarked(short[k]) == unmarked(row)
        elif short[k]["replicas"] == row["replicas"]:
            assert short[k]["tpot_s"] == pytest.approx(row["tpot_s"], rel=0.01)
            assert short[k]["ttft_s"] < row["ttft_s"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--engine", "trtllm", "--attention-dp-timeout-iters", "60"],
         "--attention-dp-timeout-iters sets the balancer's attention_dp_config.timeout_iters; it needs "
         "--attention-dp-balance"),
        (["--engine", "trtllm", "--attention-dp-balance", "--attention-dp-batching-wait-iters", "-1"],
         "invalid attention_dp_config.batching_wait_iters -1; expected a whole number of iterations >= 0"),
        (["--engine", "vllm", "--attention-dp-batching-wait-iters", "0"],
         "--attention-dp-batching-wait-iters does not apply to engine 'vllm'"),
    ],
)  # fmt: skip
def test_plan_rate_balance_iteration_knob_refusals(cli, args, expected) -> None:
    out = cli("plan", "qwen3-30b-a3b", "--rate", "5", "--gpus", "h200", *args)
    assert out.exit_code == 2, out.output
    assert expected in out.output and out.output.strip().count("\n") == 0, out.output


def test_plan_without_rate_refuses_balance_iteration_knobs(cli) -> None:
    out = cli("plan", "qwen3-30b-a3b", "--users", "8", "--context", "8k", "--engine", "trtllm",
              "--attention-dp-timeout-iters", "60")  # fmt: skip
    assert out.exit_code == 2 and "change latency only" in out.output, out.output

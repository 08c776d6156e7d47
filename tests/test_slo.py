"""plan against latency targets (kvplan.slo) and its CLI."""

from __future__ import annotations

import json

import pytest

from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu
from kvplan.serving import Lengths, serve
from kvplan.slo import Targets, plan_for_targets

H200 = resolve_gpu("h200")


def test_fewest_gpus_first_and_targets_met():
    spec = load_bundled("llama-3.1-8b")
    t = Targets(20, Lengths.of(2048, 4096), Lengths.of(256), ttft_s=1.0, tpot_s=0.03)
    rows = plan_for_targets(spec, [H200], t)
    assert rows and rows == sorted(rows, key=lambda r: (r.gpus, -r.output_tokens_per_s_per_user))
    for r in rows:
        assert r.ttft_s <= 1.0 and r.tpot_s <= 0.03
        assert r.replicas * r.rate_per_replica_rps == pytest.approx(20)
        assert r.rate_per_replica_rps <= r.max_rate_per_replica_rps * (1 + 1e-9)
        assert r.output_tokens_per_s_per_gpu == pytest.approx(20 * 256 / r.gpus)
    assert any(r.pareto for r in rows)
    # one more replica's worth of load than the best row carries would break its targets
    best = rows[0]
    from kvplan.capacity import setup

    s = setup(spec, H200, engine="vllm", tp=best.tp)
    over = serve(s, rate_rps=best.max_rate_per_replica_rps * 1.2, input_len=t.input_len, output_len=t.output_len)
    assert over.saturated or over.ttft_mean_s > 1.0 or over.tpot_mean_s > 0.03


def test_tighter_tpot_needs_at_least_as_many_gpus():
    spec = load_bundled("llama-3.1-8b")
    loose = plan_for_targets(spec, [H200], Targets(20, Lengths.of(2048), Lengths.of(256), tpot_s=0.05))
    tight = plan_for_targets(spec, [H200], Targets(20, Lengths.of(2048), Lengths.of(256), tpot_s=0.012))
    assert tight[0].gpus >= loose[0].gpus


def test_disaggregated_pools_are_sized():
    spec = load_bundled("llama-3.1-8b")
    t = Targets(20, Lengths.of(2048), Lengths.of(256), ttft_s=0.5, tpot_s=0.03)
    rows = [r for r in plan_for_targets(spec, [H200], t, disaggregated=True) if r.mode != "aggregated"]
    assert rows
    for r in rows:
        assert r.prefill_gpus + r.decode_gpus == r.gpus and r.ttft_s <= 0.5 and r.tpot_s <= 0.03


def test_invalid_targets():
    with pytest.raises(InvalidInput, match="rate"):
        Targets(0, Lengths.of(1), Lengths.of(1)).check()


def test_rate_must_be_finite(cli):
    # Found by tests/test_fuzz.py: `plan --rate inf` reached the replica count (ceil of inf / rate: ValueError, exit 1),
    # and serve(rate_rps=inf) the same through its fixed point; NaN was refused already.
    for value in ("inf", "nan"):
        out = cli("plan", "llama-3.1-8b", "--rate", value, "--ttft", "1s")
        assert out.exit_code == 2 and f"invalid rate {value}" in out.output, out.output
    with pytest.raises(InvalidInput, match="finite"):
        Targets(float("inf"), Lengths.of(1), Lengths.of(1)).check()
    s = setup(load_bundled("llama-3.1-8b"), resolve_gpu("h200"), engine="vllm")
    for rate in (float("inf"), float("nan"), -1.0):
        with pytest.raises(InvalidInput, match="invalid rate"):
            serve(s, rate_rps=rate, input_len=Lengths.of(2048), output_len=Lengths.of(512))


def test_rate_plan_refuses_gpus_per_node_below_one(cli):
    # Found by tests/test_fuzz.py: `plan --rate 1 --gpus-per-node -1` reached rate_splits with no TP degree left
    # (IndexError, exit 1); kvplan.planner.plan already refused it without --rate.
    for value in ("-1", "0"):
        for extra in ([], ["--disaggregated"]):
            out = cli("plan", "llama-3.1-8b", "--rate", "1", "--gpus-per-node", value, *extra)
            assert out.exit_code == 2 and f"invalid GPUs per node {value}" in out.output, out.output


def test_cli_plan_with_targets(cli):
    args = ["plan", "llama-3.1-8b", "--rate", "10", "--input", "2k:4k", "--output", "256", "--ttft", "1s",
            "--tpot", "40ms", "--gpus", "h200", "--format", "json"]  # fmt: skip
    result = cli(*args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["plans"] and data["pareto"] and data["tpot_s"] == pytest.approx(0.04)
    assert "vLLM 0.24.0" in data["plans"][0]["engine"]
    table = cli(*args[:-2])
    assert "tok/s/GPU" in table.output and "vLLM 0.24.0" in table.output
    bad = cli("plan", "llama-3.1-8b", "--rate", "10", "--tpot", "fast")
    assert bad.exit_code == 2 and "invalid --tpot" in bad.output
    none = cli("plan", "llama-3.1-8b")
    assert none.exit_code == 2 and "--rate" in none.output
    pct = cli("plan", "llama-3.1-8b", "--rate", "10", "--tpot", "40ms", "--percentile", "p95")
    assert pct.exit_code == 2 and pct.output.strip().count("\n") == 0
    assert "invalid percentile 'p95'" in pct.output and "mean, p90, p99" in pct.output


def test_p99_targets_need_at_least_the_p90_gpus():
    spec = load_bundled("llama-3.1-8b")
    inp, out = Lengths.of(2048, 4096), Lengths.of(256)
    best = {}
    for q in ("mean", "p90", "p99"):
        best[q] = plan_for_targets(spec, [H200], Targets(20, inp, out, ttft_s=0.3, tpot_s=0.03, percentile=q))[0]
    assert best["p99"].gpus >= best["p90"].gpus >= best["mean"].gpus
    assert best["p99"].max_rate_per_replica_rps <= best["p90"].max_rate_per_replica_rps * 1.003


def test_moe_plans_try_expert_parallel():
    spec = load_bundled("qwen3-30b-a3b")
    rows = plan_for_targets(spec, [H200], Targets(10, Lengths.of(2048), Lengths.of(256), tpot_s=0.05))
    modes = {(r.tp, r.mode) for r in rows}
    assert (2, "aggregated, EP") in modes and (2, "aggregated") in modes
    assert not any(r.mode.endswith("EP") for r in rows if r.tp == 1)  # nothing to split at TP 1


def test_p90_targets_are_harder_than_mean_targets():
    spec = load_bundled("llama-3.1-8b")
    kw = dict(ttft_s=0.5, tpot_s=0.02)
    mean = plan_for_targets(spec, [H200], Targets(30, Lengths.of(2048, 8192), Lengths.of(256, 1024), **kw))
    p90 = plan_for_targets(
        spec, [H200], Targets(30, Lengths.of(2048, 8192), Lengths.of(256, 1024), percentile="p90", **kw)
    )
    assert p90 and mean and p90[0].gpus >= mean[0].gpus
    assert all(r.ttft_s <= 0.5 and r.tpot_s <= 0.02 for r in p90)  # rows report the p90 figures they meet

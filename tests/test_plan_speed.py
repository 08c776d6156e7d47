"""plan --rate's shortcuts (issue 14, "cost and plan stay well under a second") leave every figure as it was.

The shortcuts are exact by construction: memos keyed by the exact arguments of pure functions
(kvplan.latency._shared_ctx, _part; kvplan.serving._step), a rate search that stops where its answer can only be
discarded (kvplan.slo._useful_rate), and, for a table of the first ``top`` rows, configurations left out only where
they cannot be among those rows (kvplan.slo._cutoff). These tests compare against the long way round.
"""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError, fields, replace

import pytest

import kvplan.latency as latency
import kvplan.serving as serving
from kvplan.catalog import load_bundled
from kvplan.hardware import resolve_gpu
from kvplan.serving import Lengths
from kvplan.slo import Targets, _replicas, _useful_rate, plan_for_targets

H200 = resolve_gpu("h200")


def _figures(rows) -> list[dict]:  # noqa: ANN001
    return [r.to_dict() for r in rows]


@pytest.mark.parametrize(
    ("model", "targets", "options"),
    [
        ("llama-3.1-8b", Targets(20, Lengths.of(2048), Lengths.of(512), 0.5, 0.03), {"disaggregated": True}),
        ("qwen3-30b-a3b", Targets(20, Lengths.of(4096, 8192), Lengths.of(1024), 2.0, 0.04, "p90"), {}),
    ],
)
def test_top_rows_are_the_whole_plans_first_rows(model, targets, options):
    spec = load_bundled(model)
    full = _figures(plan_for_targets(spec, [H200], targets, max_gpus=32, **options))
    assert len(full) > 8  # enough rows for the cut-off to drop some
    for top in (1, 3, 8, len(full), len(full) + 2):
        assert _figures(plan_for_targets(spec, [H200], targets, max_gpus=32, top=top, **options)) == full[:top]


def test_memos_change_no_figure():
    """Cold (every memo empty) and warm (a second call, the memos full) plans agree to the last bit."""
    spec = load_bundled("llama-3.1-70b")
    t = Targets(10, Lengths.of(2048, 4096), Lengths.of(512), 1.0, 0.05)
    serving.forget_memos()
    assert not latency._PARTS and not serving._STEPS
    cold = _figures(plan_for_targets(spec, [H200], t, max_gpus=24))
    warm = _figures(plan_for_targets(spec, [H200], t, max_gpus=24))
    assert cold == warm and len(cold) >= 5
    pp = [r for r in cold if r["pp"] > 1]
    assert pp  # the stages share per-layer figures: PP rows are among those compared


@pytest.mark.parametrize("rate", [10.0, 0.3, 7.0, 123.456, 1e-3])
@pytest.mark.parametrize("per_replica", [1, 2, 3, 8, 24])
@pytest.mark.parametrize("max_gpus", [1, 8, 64, 256])
def test_useful_rate_only_marks_rates_whose_row_is_discarded(rate, per_replica, max_gpus):
    class Replica:
        gpus_per_replica = per_replica

    t = Targets(rate, Lengths.of(2048), Lengths.of(512))
    bound = _useful_rate(Replica, t, max_gpus=max_gpus)
    if bound == 0.0:
        return
    # at the bound and every rate below it, _row's replica count needs more than max_gpus GPUs
    for r in (bound, math.nextafter(bound, 0.0), bound / 3, bound * 1e-6):
        assert _replicas(t, r) * per_replica > max_gpus
    # e.g. 10 req/s, 2 GPUs per replica, 64 GPUs: 32 replicas at most; below 10 / 33 req/s each it takes 33 or more
    if (rate, per_replica, max_gpus) == (10.0, 2, 64):
        assert bound == 10 / 33


def test_stages_share_figures_only_with_the_same_layers():
    """Pipeline stages whose layers cost the same share one micro-step figure (kvplan.latency._Stage.shape); a
    stage whose MLP widths differ (mlp_widths, Nemotron-NAS style) does not, though its kind names match."""
    from kvplan.spec import ModelSpec

    base = load_bundled("llama-3.1-8b")  # 32 layers of one kind: pp 4 gives stages of 8
    data = base.model_dump(exclude_none=True)
    data["mlp_widths"] = [base.intermediate_size] * 32
    data["mlp_widths"][20] = base.intermediate_size // 2  # in the third stage (layers 16-23) only
    spec = ModelSpec.model_validate(data)
    first, second, third, last = latency._stages(spec, 4)
    assert latency._stage_kinds(spec, second) == latency._stage_kinds(spec, third)  # the names alone agree
    assert second.shape != third.shape and first.shape != last.shape
    plain = latency._stages(base, 4)
    assert plain[1].shape == plain[2].shape  # the uniform model's middle stages do share
    kw = dict(decode_seqs=24.0, decode_context=3000, prefill_tokens=0, tp=1, pp=4, kv_dtype_name="bf16",
              weights_dtype="bf16")  # fmt: skip
    # the narrower MLP makes the step cheaper than the uniform model's, by the third stage's GEMMs alone
    narrow, uniform = latency.mixed_step_latency(spec, H200, **kw), latency.mixed_step_latency(base, H200, **kw)
    assert narrow.gemm < uniform.gemm and narrow.attention == uniform.attention


def test_a_step_context_is_kept_per_engine_name_and_pinned_constants_get_their_own(monkeypatch):
    """_engine_ctx: one context per engine name (SGLang, lent vLLM's constants, gets a relabelled copy of them on
    every look-up: before, every step rebuilt its context), and a caller that replaces the constants gets its own."""
    spec = load_bundled("llama-3.1-8b")
    kw = dict(kv_dtype="bf16", tp=1, weights_dtype="bf16", eager=True, ep=False, dp=1, pp=1, gpus_per_node=None,
              two_batch=False, deepep=False)  # fmt: skip
    serving.forget_memos()
    assert latency.calibration("sglang") is not latency.calibration("sglang")  # a new copy each time
    a = latency._engine_ctx(spec, H200, "sglang", **kw)
    assert latency._engine_ctx(spec, H200, "sglang", **kw) is a
    pinned = replace(a.cal, gemm_peak_eff=0.5)
    monkeypatch.setattr("kvplan.latency.calibration", lambda engine=None: pinned)
    b = latency._engine_ctx(spec, H200, "sglang", **kw)
    assert b is not a and b.cal is pinned


def test_op_times_is_the_dataclass_it_was():
    """OpTimes sets its fields in one go (its own __init__): same fields, defaults, equality, copies and frozenness."""
    t = latency.OpTimes(1.0, 2.0, 3.0, 4.0, 5.0)
    assert t == latency.OpTimes(gemm=1.0, moe=2.0, attention=3.0, elementwise=4.0, allreduce=5.0, alltoall=0.0,
                                pipeline=0.0, overlap=0.0)  # fmt: skip
    assert [f.name for f in fields(t)] == [k.removesuffix("_s") for k in t.as_dict()]
    assert replace(t, overlap=-1.0).total == 1.0 + 2.0 + 3.0 + 4.0 + 5.0 - 1.0  # 14.0, each term exact in binary
    with pytest.raises(FrozenInstanceError):
        t.gemm = 0.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("model", "pp"), [("llama-3.1-70b", 4), ("llama-3.1-70b", 3), ("gemma-3-27b", 4), ("deepseek-v3", 4)]
)
def test_stages_alike_share_their_decode_attention(model, pp):
    """A step prices one stage's decode attention for every stage alike (_decode_attention_stages): each stage's own
    figure is the one of the stage it is mapped to, to the last bit; llama-3.1-70b's four stages of 20 layers are
    one, its three of 27, 27 and 26 two."""
    spec = load_bundled(model)
    c = latency._make_ctx(spec, H200, cal=latency.calibration("vllm"), tp=2, weights_dtype="bf16", eager=False, pp=pp)
    alike = latency._decode_attention_stages(c, "bf16")
    stages = latency._stages(spec, pp)

    def attention(st):  # noqa: ANN001, ANN202
        return latency._attention_s(c, phase="decode", context=3000, batch=7.5, attention_flops=0, kv_dtype="bf16",
                                    stage=st)  # fmt: skip

    assert [attention(st) for st in stages] == [attention(stages[i]) for i in alike]
    if model == "llama-3.1-70b":
        assert alike == ([0, 0, 0, 0] if pp == 4 else [0, 0, 2])


def test_pipeline_sums_stages_as_op_times_addition_does():
    """_pipeline sums a micro-batch's stages field by field without building an OpTimes per addition: the same
    figures, to the last bit and type (a dense stage's overlap is the int 0), as ``t0 + t1 + ...`` and then the
    wait, for prefill and decode, with shared-expert overlap (DeepSeek-V3 decode) and without."""
    cases = (("llama-3.1-70b", 4, "decode"), ("llama-3.1-70b", 3, "prefill"), ("deepseek-v3", 2, "decode"))
    for model, pp, phase in cases:
        spec = load_bundled(model)
        stages = latency.stage_latencies(spec, H200, 2048, phase=phase, batch=6, tp=8, pp=pp, kv_dtype_name="fp8",
                                         weights_dtype="fp8", engine="vllm")  # fmt: skip
        times, sends = stages.times, stages.sends
        trip = times[0]
        for t in times[1:]:
            trip = trip + t
        busiest = latency._busiest(times, sends)
        for micro in (1, 2, pp):
            wait = ((micro - 1) * busiest if phase == "prefill"
                    else max(0.0, micro * busiest - trip.total - sum(sends)))  # fmt: skip
            want = latency.OpTimes(trip.gemm, trip.moe, trip.attention, trip.elementwise, trip.allreduce,
                                   trip.alltoall, trip.pipeline + sum(sends) + wait, trip.overlap)  # fmt: skip
            assert repr(latency._pipeline(times, sends, micro, phase=phase)) == repr(want), (model, pp, micro)
    assert any(t.overlap for t in times)  # DeepSeek-V3's shared experts hide time in its decode stages


def test_queue_mean_cycle_is_the_long_way_round():
    """kvplan.serving.queue_mean_cycle keeps each load's (busy slots, mean cycle) within a call and weighs Erlang's
    terms in one list: the same figure, to the last bit, as recomputing erlang_states at every load the root tries."""

    def long_way(chunks: float, cycles: tuple[float, ...]) -> float:
        m = len(cycles) - 1

        def per_cycle(offered: float) -> tuple[float, float]:
            weights = [share / d for share, d in zip(serving.erlang_states(offered, m), cycles, strict=True)]
            total = sum(weights)
            return sum(j * w for j, w in enumerate(weights)) / total, 1 / total

        def short(offered: float) -> float:
            return chunks - per_cycle(offered)[0]

        if chunks <= 0:
            return cycles[0]
        lo, hi = chunks, min(m * (1 - 1e-9), chunks * max(cycles) / min(cycles))
        g_lo = short(lo)
        if g_lo <= 0:
            return per_cycle(lo)[1]
        return per_cycle(serving._root(short, lo, g_lo, hi, short(hi)))[1]

    for m in (1, 2, 3, 4, 8):
        for spread in (0.0, 0.3, 1.7):
            cycles = tuple(0.05 * (1 + spread * j / m) for j in range(m + 1))
            for chunks in (0.0, 1e-6, 0.31, 0.5 * m, 0.97 * m):
                assert repr(serving.queue_mean_cycle(chunks, cycles)) == repr(long_way(chunks, cycles)), (m, chunks)

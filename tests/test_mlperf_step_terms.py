"""``published_compare.py --step-terms``: the MLPerf Server and Interactive runs' steps at their published rates, by
operation class, each with what its kernel launches cost (``launches_free``: the same step priced without a fixed cost
per kernel). A diagnostic of where kvplan's step time goes (the Llama-3.1-405B B200 runs, docs/cost.md "Server runs at
their logged operating point"); nothing is fitted to it."""

from __future__ import annotations

import pytest

from kvplan import latency
from kvplan.serving import Lengths, _context_at, _step, step_times
from tests.benchmods import published


def _row(data: dict, source: str, gpu: str, scenario: str, model: str = "llama-3.1-405b") -> dict:
    return next(r for r in data["mlperf"]
                if (r["source"], r["gpu"], r["scenario"], r["model"]) == (source, gpu, scenario, model))  # fmt: skip


def test_the_classes_add_up_and_the_launches_are_counted_by_hand():
    """v5.1 405B on 4 x B200 (NVFP4, TensorRT engine with norm_quant_fusion and gemm_allreduce_plugin, no CUDA graphs):
    the decode-only step launches 9 kernels a layer, eagerly: the 4 GEMMs, the FP4 quantization of o_proj's and
    down_proj's inputs (the fused add + RMSNorm writes FP4 for QKV and gate/up) and 3 element-wise kernels (two
    add + RMSNorms, the SwiGLU), over 126 layers, and the 16-bit LM head: 1,135 launches at ``eager_kernel_s``."""
    pub, data = published()
    ds = data["mlperf_datasets"]
    r = _row(data, "mlperf-5.1", "b200", "Server")
    t = pub.step_terms(r, ds)
    for x in t["steps"].values():
        assert sum(x[key] for key, _ in pub.STEP_CLASSES) == pytest.approx(x["total"], rel=1e-12)
        assert 0 < x["launches"] < x["total"]
    with pub.mlperf_engine(r):
        cal = latency.calibration(pub._mlperf_setup(r).engine.key)
    assert t["steps"]["decode"]["launches"] == pytest.approx((9 * 126 + 1) * cal.eager_kernel_s * 1e3, rel=1e-9)
    assert set(t["steps"]) == {"decode", "prompt"}  # no log of this run is stored


def test_the_decode_step_is_the_one_serve_prices_and_the_calibration_comes_back():
    """The decode-only step at the published rate's decodes is serving's own step (no host time on these rows), and
    after ``launches_free`` the run's build prices every step as before."""
    pub, data = published()
    ds = data["mlperf_datasets"]
    r = _row(data, "mlperf-5.1", "b200", "Interactive")
    t = pub.step_terms(r, ds)
    s = pub._mlperf_setup(r)
    context = _context_at(Lengths.of(pub._mlperf_isl(r, ds)), pub.mlperf_output(ds[r["dataset"]], round(r["osl"])))
    with pub.mlperf_engine(r):
        priced = latency.calibration
        before = step_times(s, n=t["decoding"], p=0.0, context=context).total
        with pub.launches_free():
            assert latency.calibration is not priced
            cheaper = step_times(s, n=t["decoding"], p=0.0, context=context).total
        assert latency.calibration is priced
        after = step_times(s, n=t["decoding"], p=0.0, context=context).total
        assert _step(s, n=t["decoding"], p=0.0, context=context) == pytest.approx(before, rel=1e-12)
    assert after == before and cheaper < before
    assert t["steps"]["decode"]["total"] == pytest.approx(before * 1e3, rel=1e-12)
    assert t["steps"]["decode"]["launches"] == pytest.approx((before - cheaper) * 1e3, rel=1e-9)


def test_the_logged_runs_show_the_operating_point_and_pp_loads_every_micro_batch():
    """Where a run's log is stored, its step is ``operating_point``'s (the log's decodes and prompt tokens a step); the
    v5.0 B200 run (TP2 PP2) prices its full prompt step with a chunk in each of its two micro-batches."""
    pub, data = published()
    ds = data["mlperf_datasets"]
    for r in (r for r in data["mlperf"] if "measured" in r):
        t = pub.step_terms(r, ds)
        with pub.mlperf_engine(r):
            op = pub.operating_point(r, ds)
        assert t["steps"]["log"]["total"] == pytest.approx(op["kvplan_step_s"] * 1e3, rel=1e-12)
        assert t["log"]["tpot_ms"] == pytest.approx(r["measured"]["tpot_mean_s"] * 1e3, rel=1e-12)
    r = _row(data, "mlperf-5.0", "b200", "Server")
    t = pub.step_terms(r, ds)
    assert t["micro_batches"] == 2 and t["chunk"] == pytest.approx(1024 - t["decoding"] / 2, rel=1e-12)
    lines = pub.step_term_lines([r], ds)
    assert len(lines) == 4 and "in each of the 2 micro-batches" in lines[2]
    assert "the log's mean TPOT 87.0 ms" in lines[3]


def test_the_operating_point_also_takes_serves_mean_step():
    """At a log's operating point ``kvplan_mean_step_s`` is serve()'s own mean step (``serving._mean_step``: whole
    chunks in a share of the steps; with PP each micro-batch admitting its own prompt). With one rank and short
    prompts (Llama-2, 222 tokens) it is the one-chunk step within 0.5 %; on the v5.0 B200 TP2 PP2 run (529 prompt
    tokens a cycle of 1,006-token chunks) it lies between the cycle with the tokens split over both micro-batches and
    the one-micro-batch trip the one-chunk step prices: 69.6 < 99.4 < 105.2 ms (log 87.0)."""
    pub, data = published()
    ds = data["mlperf_datasets"]
    h200 = pub.operating_point(_row(data, "mlperf-4.1", "h200", "Server", model="llama-2-70b"), ds)
    assert h200["kvplan_mean_step_s"] == pytest.approx(h200["kvplan_step_s"], rel=0.005)
    r = _row(data, "mlperf-5.0", "b200", "Server")
    op = pub.operating_point(r, ds)
    s = pub._mlperf_setup(r)
    context = _context_at(Lengths.of(pub._mlperf_isl(r, ds)), pub.mlperf_output(ds[r["dataset"]], round(r["osl"])))
    n, p = op["decoding"], op["prompt_tokens_per_step"]
    with pub.mlperf_engine(r):
        split = step_times(s, n=n, p=p / 2, context=context, chunks=2.0).total
        one = step_times(s, n=n, p=p, context=context).total
    assert one == pytest.approx(op["kvplan_step_s"], rel=1e-12)
    assert split < op["kvplan_mean_step_s"] < one
    assert op["mean_step_ratio"] == pytest.approx(op["kvplan_mean_step_s"] / r["measured"]["tpot_mean_s"], rel=1e-12)

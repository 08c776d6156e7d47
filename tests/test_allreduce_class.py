"""The engines' all-reduce latency by GPU class (kvplan.latency.allreduce_constants): Blackwell HGX and GB200 NVL72
take their own fixed latency, fitted by benchmarks/fit_nccl.py --allreduce to aiconfigurator 0.12.0's custom
all-reduce tables (sample in benchmarks/data/custom_allreduce_perf.json); Hopper and every other GPU keep the engine's
one grid-fitted figure.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from kvplan.catalog import load_bundled
from kvplan.engines import latency_calibration, trtllm, vllm
from kvplan.hardware import resolve_gpu
from kvplan.latency import _make_ctx, allreduce_bytes_s, allreduce_class, allreduce_constants, allreduce_s
from tests.benchmods import bench_module

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _ctx(gpu: str, tp: int, cal):  # noqa: ANN001, ANN202
    return _make_ctx(load_bundled("llama-3.1-70b"), resolve_gpu(gpu), tp=tp, weights_dtype="bf16", cal=cal,
                     eager=False)  # fmt: skip


def _fit_module():  # noqa: ANN202
    pytest.importorskip("scipy")
    return bench_module("fit_nccl")


def test_gpu_classes() -> None:
    """B200 is Blackwell HGX; GB200 (72 GPUs in one NVLink domain, 4 a tray) the rack-scale class; Hopper, Ampere and
    AMD parts have no class of their own."""
    assert allreduce_class(resolve_gpu("b200")) == "blackwell"
    assert allreduce_class(resolve_gpu("gb200")) == "gb200"
    for name in ("h100-sxm", "h200", "a100-80gb", "mi300x"):
        assert allreduce_class(resolve_gpu(name)) is None


def test_per_class_lookup_for_each_engine() -> None:
    """Each engine's figures are what the lookup returns; the rank term and the bandwidth share are one figure
    everywhere; SGLang keeps vLLM's lent Hopper figure and has its own Blackwell / GB200 ones."""
    for name in ("vllm", "trtllm", "sglang"):
        cal = latency_calibration(name)
        hopper = allreduce_constants(cal, resolve_gpu("h200"))
        assert hopper == (cal.allreduce_base_s, cal.allreduce_rank_s, cal.allreduce_bw_eff)
        assert allreduce_constants(cal, resolve_gpu("h100-sxm")) == hopper
        assert allreduce_constants(cal, resolve_gpu("b200")) == (cal.blackwell_allreduce_base_s, *hopper[1:])
        assert allreduce_constants(cal, resolve_gpu("gb200")) == (cal.gb200_allreduce_base_s, *hopper[1:])
        # every engine's table times B200's small all-reduce slower than Hopper's, GB200 between the two
        assert cal.blackwell_allreduce_base_s > cal.gb200_allreduce_base_s > cal.allreduce_base_s
    sglang, lent = latency_calibration("sglang"), latency_calibration("vllm")
    assert sglang.allreduce_base_s == lent.allreduce_base_s
    assert sglang.blackwell_allreduce_base_s != lent.blackwell_allreduce_base_s


def test_without_a_class_figure_the_one_figure() -> None:
    """A Calibration without per-class figures prices B200 and GB200 as it prices Hopper."""
    cal = replace(vllm.CALIBRATION, blackwell_allreduce_base_s=None, gb200_allreduce_base_s=None)
    for gpu in ("b200", "gb200"):
        assert allreduce_constants(cal, resolve_gpu(gpu)) == (cal.allreduce_base_s, cal.allreduce_rank_s,
                                                               cal.allreduce_bw_eff)  # fmt: skip


def test_all_reduce_by_hand() -> None:
    """vLLM, TP 4, one decode token of Llama 3.1 70B (8,192 x 2 B = 16,384 B). B200: 8.677 + 2 x 0.2815 = 9.240 us
    fixed + 2 x 3/4 x 16,384 / (1,800 GB/s x 0.3395) = 0.04022 us -> 9.2802 us; GB200: 6.328 + 0.563 + 0.04022 =
    6.9312 us; H200: 5.453 + 0.563 + 1.5 x 16,384 / (900 GB/s x 0.3395) = 6.0964 us. TensorRT-LLM, B200, TP 8, 1 MiB:
    5.411 + 6 x 0.8691 = 10.6256 us + 2 x 7/8 x 1,048,576 / (1,800 GB/s x 0.3815) = 2.6722 us -> 13.298 us."""
    assert allreduce_s(_ctx("b200", 4, vllm.CALIBRATION), 1) == pytest.approx(9.2802e-6, rel=1e-4)
    assert allreduce_s(_ctx("gb200", 4, vllm.CALIBRATION), 1) == pytest.approx(6.9312e-6, rel=1e-4)
    assert allreduce_s(_ctx("h200", 4, vllm.CALIBRATION), 1) == pytest.approx(6.0964e-6, rel=1e-4)
    assert allreduce_bytes_s(_ctx("b200", 8, trtllm.CALIBRATION), 2**20) == pytest.approx(13.298e-6, rel=1e-4)


def test_b200_small_all_reduce_meets_the_tables_level() -> None:
    """The smallest messages (<= 64 KiB) of vLLM's and TensorRT-LLM's tables, the median of kvplan's price over the
    measured time. H200 sits over its table (x1.27 vLLM, x1.64 TensorRT-LLM: the grid fit's level); the one figure
    put B200 0.40 / 0.47 under that in ln (x0.85 / x1.02), per class within 0.2 of it (x1.29 / x1.41)."""
    fit = _fit_module()
    data = json.loads(fit.ALLREDUCE_DATA.read_text())
    for engine, cal in (("vllm", vllm.CALIBRATION), ("trtllm", trtllm.CALIBRATION)):
        one = dict(zip(fit.AR_FIELDS, allreduce_constants(cal, resolve_gpu("h200")), strict=True))
        ratio = {}
        for gpu in ("h200", "b200"):
            pts = [p for p in fit.allreduce_points(data, engine, "", gpus=(gpu,)) if p[2] <= fit.SMALL_BYTES]
            own = dict(zip(fit.AR_FIELDS, allreduce_constants(cal, resolve_gpu(gpu)), strict=True))
            for label, p in (("one", one), ("class", own)):
                ratio[gpu, label] = statistics.median(fit.allreduce_model(p, k, r, b) / s for k, r, b, s in pts)
            # a context prices as the fitted form does
            c = _ctx(gpu, 2, cal)
            assert allreduce_bytes_s(c, 4096.0) == pytest.approx(fit.allreduce_model(own, c.gpu.interconnect_gbps, 2,
                                                                                      4096.0), rel=1e-12)  # fmt: skip
        assert ratio["h200", "one"] > 1.2
        assert math.log(ratio["b200", "one"] / ratio["h200", "class"]) < -0.35
        assert abs(math.log(ratio["b200", "class"] / ratio["h200", "class"])) < 0.2


def test_refit_prints_the_pasted_constants() -> None:
    """benchmarks/fit_nccl.py --allreduce on the committed sample prints the figures each engine carries."""
    pytest.importorskip("scipy")
    out = subprocess.run([sys.executable, str(BENCH / "fit_nccl.py"), "--allreduce"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    for engine in ("vllm", "trtllm", "sglang"):
        cal = latency_calibration(engine)
        section = out.split(f"{engine} (", 1)[1].split("\n  h100-sxm:", 1)[0]
        for field in ("blackwell_allreduce_base_s", "gb200_allreduce_base_s"):
            printed = float(section.split(f"    {field}=", 1)[1].split(",", 1)[0])
            assert getattr(cal, field) == pytest.approx(printed, rel=2e-3), (engine, field)
        assert "(not adopted)" in section
    assert "held out (B200's figures)" in out


def test_gb200_hold_out() -> None:
    """GB200's own figure meets its table closer (median |ln|) than B200's would (the hold-out) for vLLM and
    TensorRT-LLM (SGLang's two classes differ by 0.2 us: a tie)."""
    fit = _fit_module()
    data = json.loads(fit.ALLREDUCE_DATA.read_text())
    for engine, cal in (("vllm", vllm.CALIBRATION), ("trtllm", trtllm.CALIBRATION)):
        pts = fit.allreduce_points(data, engine, "gb200")
        own = dict(zip(fit.AR_FIELDS, allreduce_constants(cal, resolve_gpu("gb200")), strict=True))
        b200 = dict(zip(fit.AR_FIELDS, allreduce_constants(cal, resolve_gpu("b200")), strict=True))
        own_err, b200_err = (statistics.median(map(abs, fit.allreduce_errors(p, pts))) for p in (own, b200))
        assert own_err < b200_err

"""NCCL all-gather / reduce-scatter model (kvplan.latency.nccl_collective_s) and where it applies.

TensorRT-LLM's attention-DP MoE exchange runs through NCCL (cpp/tensorrt_llm/thop/allgatherOp.cpp,
reducescatterOp.cpp; kvplan.engines.trtllm OVERLAP.moe_allgather_nccl); its constants are fitted by
benchmarks/fit_nccl.py to aiconfigurator 0.12.0's NCCL tables (sample in benchmarks/data/nccl_perf.json).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from kvplan.catalog import load_bundled
from kvplan.engines import trtllm, vllm
from kvplan.hardware import resolve_gpu
from kvplan.latency import NCCL_FITS, _gather_s, _make_ctx, allgather_s, nccl_collective_s
from tests.benchmods import bench_module

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _ctx(gpu: str, rules, *, dp: int = 8, cal=trtllm.CALIBRATION, gpus_per_node: int = 8):  # noqa: ANN001, ANN202
    return _make_ctx(load_bundled("llama-4-scout-17b-16e"), resolve_gpu(gpu), tp=1, weights_dtype="fp8", cal=cal,
                     eager=False, ep=True, dp=dp, rules=rules, gpus_per_node=gpus_per_node)  # fmt: skip


def _fit_module():  # noqa: ANN202
    fit_nccl = bench_module("fit_nccl")
    return fit_nccl


def test_small_and_large_messages_take_the_faster_protocol_by_hand() -> None:
    """Hopper, 4 ranks (Llama 4 Scout hidden 5,120). 64 rows x 5,120 x 1 B = 327,680 B: wire 3/4 x 327,680 / 900 GB/s
    = 0.27307 us; LL 5.843 + 2 x 0.8765 = 7.596 us + 0.27307 / 0.1408 = 1.9394 us -> 9.5354 us; Simple 21.640 us +
    0.27307 / 0.3241 = 0.84255 us -> 22.483 us: LL, 9.5354 us. 65,536 rows (335,544,320 B): wire 279.62 us; LL
    7.596 + 1,985.9 = 1,993.5 us, Simple 21.640 + 862.76 = 884.40 us: Simple, 884.40 us."""
    c = _ctx("h100-sxm", trtllm.OVERLAP, dp=4)
    assert nccl_collective_s(c, 327_680) == pytest.approx(9.5354e-6, rel=1e-4)
    assert nccl_collective_s(c, 335_544_320) == pytest.approx(884.40e-6, rel=1e-4)
    assert _gather_s(c, 64, bytes_per_element=1.0) == nccl_collective_s(c, 327_680)
    assert nccl_collective_s(c, 0) == 0.0


def test_blackwell_has_its_own_fit_and_other_gpus_keep_the_engine_form() -> None:
    """B200 uses the Blackwell constants at its 1,800 GB/s; an A100 (no NCCL fit) and ranks spanning nodes keep
    allgather_s (the engine's all-reduce latency, the network beyond the node)."""
    b200 = _ctx("b200", trtllm.OVERLAP)
    fit = NCCL_FITS["blackwell"]
    wire = 7 / 8 * 1e6 / 1800e9
    want = min(fit.ll_base_s + 6 * fit.ll_rank_s + wire / fit.ll_bw_eff,
               fit.simple_base_s + 6 * fit.simple_rank_s + wire / fit.simple_bw_eff)  # fmt: skip
    assert nccl_collective_s(b200, 1e6) == pytest.approx(want, rel=1e-12)
    a100 = _ctx("a100-80gb", trtllm.OVERLAP)
    assert nccl_collective_s(a100, 1e6) is None
    assert _gather_s(a100, 100, bytes_per_element=1.0) == allgather_s(a100, 100, bytes_per_element=1.0)
    two_nodes = _ctx("h100-sxm", trtllm.OVERLAP, dp=16)
    assert nccl_collective_s(two_nodes, 1e6) is None
    assert _gather_s(two_nodes, 100, bytes_per_element=1.0) == allgather_s(two_nodes, 100, bytes_per_element=1.0)


def test_only_engines_whose_exchange_is_nccl_take_it() -> None:
    """TensorRT-LLM's rule is set; vLLM's is not (its gather keeps the fitted all-reduce form)."""
    assert trtllm.OVERLAP.moe_allgather_nccl and not vllm.OVERLAP.moe_allgather_nccl
    c = _ctx("h200", vllm.OVERLAP, cal=vllm.CALIBRATION)
    assert _gather_s(c, 800, bytes_per_element=2.0) == allgather_s(c, 800, bytes_per_element=2.0)


def test_fitted_constants_match_the_committed_measurements() -> None:
    """The constants against every point of benchmarks/data/nccl_perf.json (measured when fitted: median |ln| 0.064,
    worst 0.331 on Hopper, 252 points; 0.066, 0.329 on Blackwell, 126 points)."""
    fit_nccl = _fit_module()
    data = json.loads(fit_nccl.DATA.read_text())
    for arch, n in (("hopper", 252), ("blackwell", 126)):
        pts = fit_nccl.points(data, arch)
        e = [abs(x) for x in fit_nccl.errors(NCCL_FITS[arch]._asdict(), pts)]
        assert len(pts) == n
        assert statistics.median(e) < 0.07 and max(e) < 0.34


def test_fit_reproduces_the_constants_in_latency() -> None:
    pytest.importorskip("scipy")
    out = subprocess.run([sys.executable, str(BENCH / "fit_nccl.py")], capture_output=True, text=True, check=True)
    for arch, fit in NCCL_FITS.items():
        line = next(x for x in out.stdout.splitlines() if x.strip().startswith(f'"{arch}"'))
        for field, value in fit._asdict().items():
            assert f"{field}={value:.4g}" in line, (arch, field)

"""TensorRT engines built with ``gemm_allreduce_plugin``: o_proj and down_proj each run as one GEMM + all-reduce kernel.

Calibration.gemm_allreduce_fused (kvplan.engines.base, with its TensorRT-LLM source) is set by no engine release; the
MLPerf rows whose NVIDIA config builds with the flag turn it on (benchmarks/published_compare.py ``mlperf_engine``).
The kernel (allreduce_gemm_runner.cu, NVLS two-shot) reduces each wave of output tiles while the next wave computes:
kvplan.latency.fused_gemm_allreduce_s prices that two-stage pipeline over fused_allreduce_waves's waves.
"""

from __future__ import annotations

import pytest

from kvplan import latency
from kvplan.catalog import load_bundled
from kvplan.engines.trtllm import CALIBRATION
from kvplan.hardware import resolve_gpu
from kvplan.latency import fused_allreduce_waves, fused_gemm_allreduce_s, mixed_step_latency
from tests.benchmods import published

SPEC_405B = "llama-3.1-405b"


def test_waves_follow_the_kernels_tiles():
    """SM100: 128 x 256 (rows x output features) per CTA over 148 SMs; SM90: operands swapped, 128 features x 16 / 32 /
    64 / 128 rows (the plugin's static choice by M) over 132 SMs; other GPUs have no such kernel."""
    b200, h200 = resolve_gpu("b200"), resolve_gpu("h200")
    # the 405B B200 TP4 Server chunk step: 2,048 prompt tokens + 196 decodes = 2,244 rows, 16,384 features:
    # 18 x 64 = 1,152 tiles, 8 waves of 148
    assert fused_allreduce_waves(b200, 2244, features=16384) == 8
    assert fused_allreduce_waves(b200, 196, features=16384) == 1  # a decode step: 2 x 64 = 128 tiles, one wave
    assert fused_allreduce_waves(b200, 148 * 128, features=256) == 1  # 148 tiles: one wave of 148 SMs
    assert fused_allreduce_waves(b200, 148 * 128 + 1, features=256) == 2
    # the 405B H200 TP8 Server chunk step: 2,560 + 16 rows: 128 x 21 tiles of 128 x 128, 21 waves of 132
    assert fused_allreduce_waves(h200, 2576, features=16384) == 21
    assert fused_allreduce_waves(h200, 16, features=16384) == 1  # 128 x 1 tiles of 128 x 16
    assert fused_allreduce_waves(h200, 40, features=16384 * 2) == 2  # 256 x 1 tiles of 128 x 64
    # no GEMM + all-reduce kernel before SM90
    assert fused_allreduce_waves(resolve_gpu("a100-80gb"), 2244, features=16384) is None


def test_fused_kernel_is_a_two_stage_pipeline_over_its_waves():
    """By hand: one wave is the GEMM then its all-reduce; 8 waves of a 0.10 ms GEMM and a 0.16 ms all-reduce are
    0.26 / 8 + 7 / 8 x 0.16 = 0.1725 ms; many waves tend to the longer of the two."""
    assert fused_gemm_allreduce_s(0.10, 0.16, waves=1) == pytest.approx(0.26)
    assert fused_gemm_allreduce_s(0.10, 0.16, waves=8) == pytest.approx(0.1725)
    assert fused_gemm_allreduce_s(0.30, 0.16, waves=8) == pytest.approx(0.46 / 8 + 7 / 8 * 0.30)
    assert fused_gemm_allreduce_s(0.10, 0.16, waves=10**6) == pytest.approx(0.16, rel=1e-5)
    assert max(0.10, 0.16) <= fused_gemm_allreduce_s(0.10, 0.16, waves=3) <= 0.26


def _step(gpu: str, weights: str, *, tp: int, decodes: float, chunk: int, model: str = SPEC_405B) -> latency.OpTimes:
    return mixed_step_latency(load_bundled(model), resolve_gpu(gpu), decode_seqs=decodes, decode_context=9781,
                              prefill_tokens=chunk, tp=tp, kv_dtype_name="fp8", weights_dtype=weights,
                              engine="trtllm@0.17")  # fmt: skip


def test_the_fusion_moves_only_the_all_reduces_of_a_chunk_step():
    """405B on 4 x B200 (NVFP4), 196 decodes + a 2,048-token chunk, 8 waves: only the all-reduce column moves, by
    126 layers x (o_proj's and down_proj's fused kernel - their GEMM - the all-reduce), each GEMM as the step prices
    it without the FP4 quantization kernel before it (which the fused kernel does not take in): 42.45 -> 13.57 ms;
    the step 229.7 -> 200.9 ms (41.94 -> 13.41 ms, 228.3 -> 199.8 ms before B200's own all-reduce latency, stop 29).
    A decode step (196 rows, one wave of tiles) does not move."""
    pub, _ = published()
    before = _step("b200", "nvfp4", tp=4, decodes=196, chunk=2048)
    with pub.mlperf_engine({"gemm_allreduce_plugin": True}):
        fused = _step("b200", "nvfp4", tp=4, decodes=196, chunk=2048)
        c = latency._engine_ctx(load_bundled(SPEC_405B), resolve_gpu("b200"), "trtllm@0.17", kv_dtype="fp8", tp=4,
                                weights_dtype="nvfp4", eager=True, ep=False, dp=1, pp=1, gpus_per_node=None,
                                two_batch=False, deepep=False)  # fmt: skip
        assert c.cal.gemm_allreduce_fused
        rows, h = 2244, 16384
        reduce = latency.allreduce_s(c, rows)
        o_proj = latency._gemm_s(c, rows, h * 4096, h + 4096, k=4096) - latency._gemm_pre_s(c, rows, 4096)
        down = latency._gemm_s(c, rows, h * 13312, h + 13312, k=13312) - latency._gemm_pre_s(c, rows, 13312)
        decode_fused = _step("b200", "nvfp4", tp=4, decodes=196, chunk=0)
    per_layer = sum(fused_gemm_allreduce_s(g, reduce, waves=8) - g - reduce for g in (o_proj, down))
    assert per_layer < 0
    assert fused.allreduce == pytest.approx(before.allreduce + 126 * per_layer, rel=1e-12)
    assert (fused.gemm, fused.attention, fused.elementwise) == (before.gemm, before.attention, before.elementwise)
    # 13.41 ms before fit_fp4.py took the GEMM tables (the GEMMs the fusion overlaps with moved), then 41.94 / 13.29 ms;
    # B200's own all-reduce latency (2.0 us more each, 253 of them) and the FP4 refit after it: 42.45 / 13.57 ms
    assert (before.allreduce, fused.allreduce) == (pytest.approx(0.04245, rel=2e-3), pytest.approx(0.01357, rel=2e-3))
    # the same to the last bits but the all-reduce's (one rounding of its fused delta, zero at one wave of tiles)
    unfused = _step("b200", "nvfp4", tp=4, decodes=196, chunk=0)
    assert decode_fused._fields() == pytest.approx(unfused._fields(), rel=1e-12)
    assert _step("b200", "nvfp4", tp=4, decodes=196, chunk=2048) == before  # the fitted constants are back


def test_the_fusion_changes_nothing_where_the_kernel_does_not_run():
    """No engine release sets the switch; with it on, TP1 (nothing to reduce), an A100 (no GEMM + AR kernel) and a TP
    group wider than the NVLink domain keep their steps."""
    assert CALIBRATION.gemm_allreduce_fused is False
    pub, _ = published()
    cases = [("b200", "nvfp4", 1), ("a100-80gb", "bf16", 4)]
    before = [_step(g, w, tp=tp, decodes=64, chunk=2048, model="llama-3.1-70b") for g, w, tp in cases]
    with pub.mlperf_engine({"gemm_allreduce_plugin": True}):
        after = [_step(g, w, tp=tp, decodes=64, chunk=2048, model="llama-3.1-70b") for g, w, tp in cases]
        two_nodes = mixed_step_latency(load_bundled("llama-3.1-70b"), resolve_gpu("h200"), decode_seqs=64,
                                       decode_context=4096, prefill_tokens=2048, tp=16, kv_dtype_name="fp8",
                                       weights_dtype="fp8", engine="trtllm@0.17")  # fmt: skip
    assert after == before
    assert two_nodes == mixed_step_latency(load_bundled("llama-3.1-70b"), resolve_gpu("h200"), decode_seqs=64,
                                           decode_context=4096, prefill_tokens=2048, tp=16, kv_dtype_name="fp8",
                                           weights_dtype="fp8", engine="trtllm@0.17")  # fmt: skip


def test_the_mlperf_rows_with_the_plugin_are_those_whose_config_sets_it():
    """NVIDIA's v5.1 B200 405B files (ykamiset/inference_results_v5.1 @e9ccad4d, configs/B200-SXM-180GBx8/<scenario>/
    llama3_1-405b.py) set ``'gemm_allreduce_plugin': 'float16'`` for Offline, Server and Interactive; the v5.0 H200
    classes (H200_SXM_141GBx8_TP4PP2 Offline, _TP8PP1 Server) set it in their own trtllm_build_flags; the v5.0 B200
    TP2PP2 classes have the line commented out ("Disable to prevent intermittent failures")."""
    _, data = published()
    fused = {(r["source"], r["gpu"], r["scenario"]) for r in data["mlperf"] if r.get("gemm_allreduce_plugin")}
    assert fused == {("mlperf-5.1", "b200", "Offline"), ("mlperf-5.1", "b200", "Server"),
                     ("mlperf-5.1", "b200", "Interactive"), ("mlperf-5.0", "h200", "Offline"),
                     ("mlperf-5.0", "h200", "Server")}  # fmt: skip
    for r in data["mlperf"]:
        if r.get("gemm_allreduce_plugin"):
            assert r["model"] == "llama-3.1-405b" and r["tensorrt_engine"]
            assert "gemm_allreduce_plugin 'float16'" in r["config"] + r["stack"]


def test_the_h200_server_step_meets_its_log():
    """The 405B H200 TP8 Server log (0.45 req/s, 15.4 decoding, 229 prompt tokens a step): kvplan's step there is
    53.3 ms against the logged mean TPOT 53.9 ms with the fused kernels (58.2 ms, x1.08, with each all-reduce after
    its GEMM). Its 2,560-token chunk steps: 367 -> 296 ms (the ~0.29 s the log implies, stop 26)."""
    pub, data = published()
    r = next(r for r in data["mlperf"] if r["model"] == SPEC_405B and r["gpu"] == "h200" and r["scenario"] == "Server")
    point = pub.operating_point(r, data["mlperf_datasets"])
    assert point["step_ratio"] == pytest.approx(0.99, abs=0.01)
    unfused = pub.operating_point({k: v for k, v in r.items() if k != "gemm_allreduce_plugin"}, data["mlperf_datasets"])
    assert unfused["step_ratio"] == pytest.approx(1.08, abs=0.01)


def test_each_set_of_build_switches_has_one_calibration_function():
    """The step memos key on the calibration function's identity (kvplan.latency _engine_ctx): a row's build switches
    always get the same function, and its constants carry every switch the row's config sets (the v5.1 405B files set
    both norm_quant_fusion and gemm_allreduce_plugin)."""
    pub, data = published()
    both = ("fp4_norm_quant_fused", "gemm_allreduce_fused")
    assert pub._calibration_for(both) is pub._calibration_for(both)
    assert pub._calibration_for(("fp4_norm_quant_fused",)) is pub._norm_quant_calibration
    server = next(r for r in data["mlperf"] if r["source"] == "mlperf-5.1" and r["model"] == SPEC_405B
                  and r["scenario"] == "Server")  # fmt: skip
    assert pub.build_switches(server) == both
    cal = pub._calibration_for(both)("trtllm@0.17")
    assert cal.fp4_norm_quant_fused and cal.gemm_allreduce_fused
    assert cal.version.endswith("TensorRT engine with norm_quant_fusion and gemm_allreduce_plugin")
    assert pub._calibration_for(both)("vllm").gemm_allreduce_fused is False  # other engines as fitted


def test_the_405b_steps_by_operation_class_against_aiconfigurator(capsys: pytest.CaptureFixture[str]):
    """``aiconfigurator_compare.py --classes llama-3.1-405b``: each stored 405B case (six grid cases and the NVFP4
    hold-out on 4 x B200), both phases. kvplan's classes add up to its step (a dense model: no MoE, no overlap);
    aiconfigurator's to its own less the embedding. On the B200 TP4 NVFP4 hold-out kvplan's decode GEMMs are 2 % over
    aiconfigurator's (20.4 against 20.1 ms; 22.1 before fit_fp4.py took the GEMM tables), its all-reduces 2 % under
    (23 % under with one all-reduce latency for every GPU, before stop 29)."""
    from tests.benchmods import bench_module

    cmp = bench_module("aiconfigurator_compare")
    rows = cmp.class_rows(SPEC_405B)
    assert len(rows) == 14 and {r["phase"] for r in rows} == {"prefill", "decode"}
    for r in rows:
        assert set(r["classes"]) == {"gemm", "attention", "elementwise", "allreduce"}
        aic, kvplan = r["total"]
        assert sum(k for _, k in r["classes"].values()) == pytest.approx(kvplan, rel=1e-9)
        assert sum(a for a, _ in r["classes"].values()) == pytest.approx(aic, rel=2e-3)
    fp4 = next(r for r in rows if r["set"] == "fp4_holdout_cases" and r["phase"] == "decode")
    assert fp4["key"] == "llama-3.1-405b b200 trtllm tp4 b32 isl2048 nvfp4" and fp4["weights"] == "nvfp4"
    gemm_aic, gemm_kvplan = fp4["classes"]["gemm"]
    assert (gemm_aic, gemm_kvplan) == (pytest.approx(20.1, abs=0.05), pytest.approx(20.45, abs=0.05))
    reduce_aic, reduce_kvplan = fp4["classes"]["allreduce"]
    assert reduce_kvplan / reduce_aic == pytest.approx(0.98, abs=0.01)
    assert cmp.main(["--classes", SPEC_405B, "--markdown"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| case | phase | total | allreduce | attention | elementwise | gemm |" and len(out) == 16
    assert cmp.main(["--classes", "no-such-model"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: --classes 'no-such-model'")

"""benchmarks/gemm_compare.py: kvplan's GEMM cost against aiconfigurator's measured GEMM tables, shape by shape."""

import math
from pathlib import Path

import pytest

from kvplan.hardware import resolve_gpu
from kvplan.latency import calibration, gemm_seconds
from tests.benchmods import bench_module

gemm_compare = bench_module("gemm_compare")


@pytest.fixture(scope="module")
def tables() -> list[dict]:
    return gemm_compare.load()


@pytest.fixture(scope="module")
def rows(tables: list[dict]) -> list[dict]:
    return gemm_compare.compare(tables)


def test_sample_covers_the_gpus_engines_and_dtypes(tables: list[dict]) -> None:
    # H100 SXM / H200 / B200 / GB200 x TensorRT-LLM / vLLM x bf16 / fp8 / fp8_block, plus nvfp4 on B200 and GB200:
    # 28 tables, each with every point of the 17 x 11 x 8 sample grid (aiconfigurator measured all of them).
    keys = {(t["gpu"], t["engine"], t["dtype"]) for t in tables}
    assert len(keys) == len(tables) == 28
    assert ("b200", "trtllm", "nvfp4") in keys and ("gb200", "vllm", "nvfp4") in keys
    assert ("h200", "trtllm", "nvfp4") not in keys
    n_points = len(gemm_compare.M_AXIS) * len(gemm_compare.N_AXIS) * len(gemm_compare.K_AXIS)
    assert n_points == 17 * 11 * 8 == 1496
    assert all(len(t["us"]) == n_points and all(u is not None for u in t["us"]) for t in tables)
    assert all(t["source"].endswith("gemm_perf.parquet") and t["version"] for t in tables)


def test_one_point_by_hand(tables: list[dict]) -> None:
    # H100 SXM, TensorRT-LLM, bf16, 1 x 4096 x 4096: aiconfigurator 16.56 us. kvplan (trtllm calibration):
    # memory (4096 * 4096 * 2 + 1 * 8192 * 2) B / (3350e9 * 0.7241) = 13.84 us; compute 2 * 4096^2 /
    # (989e12 * 0.7886 * 1 / 65.29) = 2.81 us; graph kernel 2.724 us; 13.84 + 2.72 = 16.56 us.
    t = next(t for t in tables if (t["gpu"], t["engine"], t["dtype"]) == ("h100-sxm", "trtllm", "bfloat16"))
    i = gemm_compare._points().index((1, 4096, 4096))
    assert t["us"][i] == pytest.approx(16.56, abs=0.01)
    cal = calibration("trtllm")
    by_hand = (4096 * 4096 * 2 + 8192 * 2) / (3350e9 * cal.gemm_mem_eff) + cal.graph_kernel_s
    s = gemm_seconds(resolve_gpu("h100-sxm"), cal, m=1, n=4096, k=4096, weights_dtype="bf16", eager=False)
    assert s == pytest.approx(by_hand)
    assert s == pytest.approx(16.56e-6, rel=0.02)


def _quant_s(cal, bandwidth: float, *, m: int, k: int) -> float:  # noqa: ANN001
    """The per-tensor fp8 activation quantization on Hopper: fp8_quant_s + the 16-bit input read."""
    return cal.fp8_quant_s + m * k * 2 / (bandwidth * cal.fp8_quant_read_eff)


def test_block_scaled_fp8_uses_its_own_scale() -> None:
    # gemm_seconds(block=True) prices the GEMM at the fp8 peak x fp8_block_eff_scale: a compute-bound shape
    # (8192^3) takes fp8_eff_scale / fp8_block_eff_scale as long as the per-tensor one, fixed cost aside.
    gpu, cal = resolve_gpu("h100-sxm"), calibration("trtllm")
    kw = dict(m=8192, n=8192, k=8192, weights_dtype="fp8", eager=False)
    plain, block = gemm_seconds(gpu, cal, **kw), gemm_seconds(gpu, cal, block=True, **kw)
    # the per-tensor one also pays its activations' quantization (block-scaled checkpoints' is not priced apart)
    ratio = (block - cal.graph_kernel_s) / (plain - cal.graph_kernel_s - _quant_s(cal, 3350e9, m=8192, k=8192))
    assert ratio == pytest.approx(cal.fp8_eff_scale / cal.fp8_block_eff_scale)
    # bf16 ignores it
    assert gemm_seconds(gpu, cal, m=8, n=8, k=8, weights_dtype="bf16", eager=False, block=True) == gemm_seconds(
        gpu, cal, m=8, n=8, k=8, weights_dtype="bf16", eager=False
    )


def test_bf16_gemms_hold_shape_by_shape(rows: list[dict]) -> None:
    # What the script prints: every bf16 table within a median |ln| of 0.14 (0.089-0.138 as printed, GB200 on the
    # B200-fitted calibration included), and the compute-bound band (M > 1024) at 0.067.
    groups = dict(gemm_compare.summaries(rows)["per GPU / engine / dtype"])
    bf16 = {name: s for name, s in groups.items() if name.endswith("bfloat16")}
    assert len(bf16) == 8
    assert all(s["median"] < 0.14 for s in bf16.values()), bf16
    by_m = dict(gemm_compare.summaries(rows)["per dtype, by M band"])
    assert by_m["bfloat16 M >=1025"]["median"] < 0.07


def test_ln_ratios_are_consistent(rows: list[dict]) -> None:
    assert len(rows) == 28 * 1496
    r = rows[0]
    assert r["ln"] == pytest.approx(math.log(r["kvplan_s"] / r["aic_s"]))


def test_render_names_the_artifact_table(rows: list[dict]) -> None:
    text = gemm_compare.render(rows, markdown=False)
    flagged = [line.split()[:3] for line in text.splitlines() if "DeepGEMM table artifact" in line]
    assert flagged == [["b200", "vllm", "fp8_block"], ["gb200", "vllm", "fp8_block"]]
    assert text.splitlines()[-1].startswith("41888 GEMM shapes against aiconfigurator")
    md = gemm_compare.render(rows, markdown=True)
    assert "| GEMMs | points | median" in md


def test_collect_skips_cleanly_without_aiconfigurator(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    try:
        import aiconfigurator  # noqa: F401

        pytest.skip("aiconfigurator is installed here")
    except ImportError:
        pass
    out = tmp_path / "gemm.json"
    assert gemm_compare.collect(out) == 0
    assert "not installed" in capsys.readouterr().out
    assert not out.exists()


def test_sm_scan_skips_cleanly_without_aiconfigurator(capsys: pytest.CaptureFixture) -> None:
    try:
        import aiconfigurator_core  # noqa: F401

        pytest.skip("aiconfigurator is installed here")
    except ImportError:
        pass
    assert gemm_compare.sm_scan() is None
    assert gemm_compare.main(["--sm-scan"]) == 0
    assert "not installed" in capsys.readouterr().out


def test_scan_waves_are_kvplans_rule() -> None:
    # --sm-scan's own wave rule (it must not need kvplan) is kvplan.latency.wave_efficiency's for 128 x 128 tiles past
    # the first wave; 128 x 256 tiles: 4096 x 8192 on 152 SMs is 32 x 32 = 1,024 tiles, 7 waves (1,064 slots).
    from kvplan.latency import wave_efficiency

    for m, n, sms in ((4096, 8192, 132), (256, 128 * 133, 132), (1024, 4096, 152), (8192, 51200, 148)):
        assert gemm_compare._wave(m, n, sms, (128, 128)) == pytest.approx(wave_efficiency(m, n, sms))
    assert gemm_compare._wave(4096, 8192, 152, (128, 256)) == pytest.approx(1024 / 1064)
    # no SM count: the scan's "none" reference, the median spread with no wave divided out
    groups = {(1024, 4096): [(512, 1024, 0.0), (768, 1024, 0.1), (1024, 1024, 0.3)]}
    assert gemm_compare._scan_spread(groups, 0, (128, 128)) == pytest.approx(0.1)


def _doc_block(name: str) -> str:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cost.md").read_text(encoding="utf-8")
    return doc.split(f"<!-- {name}:begin -->\n", 1)[1].split(f"\n<!-- {name}:end -->", 1)[0]


def test_docs_blocks_are_what_the_script_prints(tables: list[dict], rows: list[dict]) -> None:
    assert _doc_block("gemm_compare") == gemm_compare.render(rows, markdown=True)
    assert _doc_block("gemm_compare_waves") == gemm_compare.render_waves(gemm_compare.wave_check(tables), markdown=True)


def test_wave_efficiency_by_hand() -> None:
    from kvplan.latency import wave_efficiency

    # 4096 x 8192 on 132 SMs: 32 x 64 = 2,048 tiles of 128 x 128, 16 waves of 132 (2,112 slots): 2048 / 2112.
    assert wave_efficiency(4096, 8192, 132) == pytest.approx(2048 / 2112)
    # 129 rows, N = 128 x 132: 2 x 132 = 264 tiles, exactly two waves.
    assert wave_efficiency(129, 128 * 132, 132) == 1.0
    # 256 rows, N = 128 x 133: 266 tiles, a third wave of 2 tiles: 266 / 396.
    assert wave_efficiency(256, 128 * 133, 132) == pytest.approx(266 / 396)
    # up to 128 rows, or fewer tiles than SMs (256 x 8192: 128 tiles < 132): not a wave effect, 1.0
    assert wave_efficiency(128, 128 * 133, 132) == wave_efficiency(256, 8192, 132) == 1.0


def test_sm_counts_in_the_catalog() -> None:
    assert [resolve_gpu(g).sm_count for g in ("h100-sxm", "h200", "b200", "gb200")] == [132, 132, 148, 152]


def test_waves_slow_fp8_gemms_only() -> None:
    # fp8, 8192^3 on H100 (compute-bound): 64 x 64 = 4,096 tiles, 32 waves of 132 SMs (4,224 slots, the last wave
    # 4,096 - 31 x 132 = 4 tiles): the compute roof x 4224 / 4096. bf16 runs cuBLAS, whose tables show no waves.
    cal, gpu = calibration("trtllm"), resolve_gpu("h100-sxm")
    flat = gpu.model_copy(update={"sm_count": None})
    kw = dict(m=8192, n=8192, k=8192, eager=False)
    fixed = cal.graph_kernel_s + _quant_s(cal, 3350e9, m=8192, k=8192)  # the activations' quantization has no waves
    fp8, fp8_flat = (gemm_seconds(g, cal, weights_dtype="fp8", **kw) - fixed for g in (gpu, flat))
    assert fp8 / fp8_flat == pytest.approx(4224 / 4096)
    assert gemm_seconds(gpu, cal, weights_dtype="bf16", **kw) == gemm_seconds(flat, cal, weights_dtype="bf16", **kw)
    assert gemm_seconds(gpu, cal, weights_dtype="fp8", block=True, **kw) > gemm_seconds(
        flat, cal, weights_dtype="fp8", block=True, **kw
    )


def test_wave_check_separates_fp8_from_bf16(tables: list[dict]) -> None:
    # The reason kvplan applies waves to fp8 only: on every fp8 and block-fp8 table the compute-bound spread falls
    # with waves and the slope is positive; on every bf16 table it does not fall and the slope is at most 0.
    checks = {c["table"]: c for c in gemm_compare.wave_check(tables)}
    block = [c for name, c in checks.items() if name.split()[-1] == "fp8_block"]
    fp8 = {name: c for name, c in checks.items() if name.split()[-1] == "fp8"}
    bf16 = [c for name, c in checks.items() if name.endswith("bfloat16")]
    assert len(block) == 8 and len(fp8) == 8 and len(bf16) == 8
    assert all(c["waves"] < c["flat"] and c["slope"] > 0 for c in block)
    # with the per-tensor fp8 activation quantization priced (its input read grows with M x K), 3 of the 8 per-tensor
    # tables still tighten with waves (all 8 did before it; docs/cost.md "Tile-wave quantization")
    assert sorted(n for n, c in fp8.items() if c["waves"] < c["flat"]) == [
        "b200 trtllm fp8", "h200 trtllm fp8", "h200 vllm fp8"]  # fmt: skip
    assert all(c["waves"] >= c["flat"] and c["slope"] <= 0 for c in bf16)


def test_fp8_weights_stream_at_the_bf16_share(tables: list[dict]) -> None:
    # gemm_compare.py --streaming: per table, us = fixed + weight bytes / (bandwidth x share) over the decode points
    # (M <= 16: 5 M values x 11 N x 8 K = 440). Measured: fp8 / bf16 share 0.955-1.056 over the 8 GPU x engine
    # pairs (TensorRT-LLM H100 0.827 / 0.838 = 0.987, H200 0.843 / 0.839 = 1.005), and fp8's fixed cost above bf16's
    # everywhere (TensorRT-LLM H100 13.2 against 3.6 us): the dynamic-fp8 kernels are a cost per GEMM, not a
    # bandwidth share (what the v0.17 rows' fp8 streaming rests on, kvplan.engines.trtllm.V0_17_FP8_MEM_EFF_SCALE).
    fits = {(f["gpu"], f["engine"], f["dtype"]): f for f in gemm_compare.streaming_fit(tables)}
    assert len(fits) == 16 and all(f["points"] == 440 for f in fits.values())
    for gpu, engine in {(g, e) for g, e, _ in fits}:
        bf, f8 = fits[(gpu, engine, "bfloat16")], fits[(gpu, engine, "fp8")]
        assert 0.95 <= f8["share"] / bf["share"] <= 1.06, (gpu, engine)
        assert f8["fixed_us"] > bf["fixed_us"] + 3, (gpu, engine)
    h100 = (fits[("h100-sxm", "trtllm", "fp8")], fits[("h100-sxm", "trtllm", "bfloat16")])
    assert h100[0]["fixed_us"] == pytest.approx(13.2, abs=0.05) and h100[1]["fixed_us"] == pytest.approx(3.6, abs=0.05)
    # kvplan's per-tensor fp8 streaming is the 16-bit share now that the quantization is a cost per GEMM
    # (fp8_mem_eff_scale 0.7315 -> 0.9849, refitted); block-scaled weights and grouped experts keep the old share
    cal = calibration("trtllm")
    assert cal.fp8_mem_eff_scale == pytest.approx(1.0, abs=0.02) and cal.fp8_absorbed_mem_eff_scale == 0.7315

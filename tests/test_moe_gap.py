"""benchmarks/moe_gap.py: Qwen3-30B-A3B NVFP4 decode on TensorRT-LLM, operation by operation, against aiconfigurator
0.12.0, with the two MoE kernel tables its step draws from."""

from pathlib import Path

import pytest

from tests.benchmods import bench_module

gap = bench_module("moe_gap")


@pytest.fixture(scope="module")
def cases() -> list[dict]:
    return gap.load()


@pytest.fixture(scope="module")
def results(cases: list[dict]) -> list[dict]:
    return gap.compare(cases)


def test_sample_and_aiconfigurator_step_sums(cases: list[dict]) -> None:
    assert [(c["gpu"], c["batch"], c["isl"]) for c in cases] == [(g, b, 1024) for g in ("b200", "gb200")
                                                                 for b in (1, 8, 32, 128, 256, 512)]  # fmt: skip
    for c in cases:
        assert sum(c["aic_ops_ms"].values()) == pytest.approx(c["aic_tpot_ms"], rel=1e-6)
        assert c["aic_backend_version"] == "1.3.0rc20"


def test_aiconfigurator_takes_min_latency_to_128_tokens_then_cutlass(results: list[dict]) -> None:
    # Its TensorRT-LLM NVFP4 MoE step: the TRTLLM-Gen min-latency table up to 128 tokens, CUTLASS from 129 on.
    assert [(r["gpu"], r["batch"], r["aic_moe_kernel"]) for r in results] == [
        (g, b, "min_latency" if b <= 128 else "cutlass") for g in ("b200", "gb200") for b in (1, 8, 32, 128, 256, 512)
    ]


def test_stop_24_figures_were_the_two_kernels_averaged(cases: list[dict]) -> None:
    # B200, 256 tokens: CUTLASS 173.70 us balanced, 175.34 us power law 1.2; min-latency 57.97 / 75.21 us.
    # Averaged: (173.70 + 57.97) / 2 = 115.84 and (175.34 + 75.21) / 2 = 125.28 us, the "115.8 balanced / 125.3
    # power law" docs/cost.md read as one table in stop 24. The step's MoE is 48 x 175.34 us = 8.416 ms, all CUTLASS.
    b256 = next(c for c in cases if (c["gpu"], c["batch"]) == ("b200", 256))
    t = {k: v * 1e3 for k, v in b256["moe_kernel_ms"].items()}
    assert (t["cutlass balanced"] + t["min_latency balanced"]) / 2 == pytest.approx(115.8, abs=0.05)
    assert (t["cutlass power_law_1.2"] + t["min_latency power_law_1.2"]) / 2 == pytest.approx(125.3, abs=0.05)
    assert b256["aic_ops_ms"]["generation_moe"] == pytest.approx(48 * t["cutlass power_law_1.2"] / 1e3, rel=1e-4)
    assert b256["aic_ops_ms"]["generation_moe"] == pytest.approx(8.416, abs=1e-3)


def test_kvplan_operations_sum_to_its_tpot(results: list[dict]) -> None:
    from kvplan.cost import cost

    for r in results:
        row = cost("qwen3-30b-a3b", r["gpu"], [r["isl"]], batch=r["batch"], tp=1, kv_dtype_name="fp8",
                   weights_dtype="nvfp4", engine="trtllm")[0]  # fmt: skip
        assert r["kvplan_tpot_ms"] == pytest.approx(row.tpot_s * 1e3, rel=1e-9)


def test_docs_block_is_the_scripts_output(results: list[dict]) -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cost.md").read_text(encoding="utf-8")
    block = doc.split("<!-- moe_gap:begin -->\n", 1)[1].split("\n<!-- moe_gap:end -->", 1)[0]
    assert block == gap.render(results, markdown=True).rstrip("\n")


def test_table_interpolation_by_hand() -> None:
    # log-log between the two nearest counts: 100 tokens between 64 (160 us) and 128 (170 us): f = ln(100/64) /
    # ln(2) = 0.64386, exp(ln 160 + f ln(170/160)) = 160 x 1.0625^0.64386 = 166.37 us; below the first row its
    # figure; past the last in proportion (256 tokens, last 128 at 170 us: 340 us)
    pts = [[1, 0.020], [64, 0.160], [128, 0.170]]  # [tokens, ms], as the stored tables
    assert gap.table_layer_s(pts, 100) == pytest.approx(166.37e-6, rel=1e-4)
    assert gap.table_layer_s(pts, 0.5) == pytest.approx(20e-6)
    assert gap.table_layer_s(pts, 64) == pytest.approx(160e-6)
    assert gap.table_layer_s(pts, 256) == pytest.approx(340e-6)


def test_published_reading(cases: list[dict]) -> None:
    # The Qwen3-30B-A3B v1.0 rows with the experts from each kernel table; the reading leaves kvplan as it was
    from kvplan import latency

    priced = latency._moe_s
    rows = gap.published_rows(gap.load_tables())
    assert latency._moe_s is priced
    assert len(rows) == 20 and {r["gpu"] for r in rows} == {"b200", "gb200"}
    b200 = {(r["isl"], r["osl"]): r for r in rows if r["gpu"] == "b200"}
    r = b200[(128, 128)]
    # slower experts, fewer tokens/s: CUTLASS below kvplan's formula, min-latency above it
    assert r["cutlass balanced"] < r["as scored"] < r["min_latency balanced"]
    lines = gap.published_lines(rows)
    # cutlass balanced 8 before r25e's 16-bit router and the NVFP4 refit on it were merged (one B200 row's step is
    # longer by its router, the FP4 constants move with it); as scored 3 before the CUTLASS path's own fixed cost a
    # layer (cutlass_nvfp4_moe_layer_s 40.5 us in place of fp4_moe_layer_s 7.0 us: 128/4,096 x1.27 -> x1.19); as scored
    # 4 and cutlass balanced 7 before the finite run priced each step at its batch with the run's CUDA-graph padding
    # (stop 28, published_compare.run_step_s: 128/2048 x1.21 -> x1.20, 2048/2048 x1.21 -> x1.18); as scored 6 and
    # cutlass balanced 8 before r29h's CUDA graphs padded to trtllm-bench's own max_batch_size and whole prompts
    # priced one attention each (faster steps: as scored 1000/2000 x1.21 -> x1.25, 2048/2048 x1.18 -> x1.20;
    # cutlass balanced 1000/2000 x1.19 -> x1.22, 128/2048 x1.19 -> x1.20); cutlass balanced 6 before the rows took
    # trtllm-bench's own max_num_tokens (stop 29: 2048/128 at 28,672 tokens a step, cutlass balanced x1.08); as scored
    # 5 before stop 29's NVFP4 refit (fit_fp4.py after B200's own all-reduce latency: fp4_moe_eff_scale 0.2464 ->
    # 0.2475, these rows' experts 0.45 % faster; the rows run TP 1, no all-reduce): 128/2048 x1.1985 -> x1.2003
    assert lines[-2] == ("b200: within 20 % of 10: as scored 4; cutlass balanced 7; cutlass power_law_1.2 9; "
                         "min_latency balanced 0")  # fmt: skip
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cost.md").read_text(encoding="utf-8")
    block = doc.split("<!-- moe_gap_published:begin -->\n```\n", 1)[1].split("\n```\n<!-- moe_gap_published:end", 1)[0]
    assert block == "\n".join(lines)

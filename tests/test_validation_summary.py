"""README.md's validation table is what benchmarks/validation_summary.py prints, and its rows count what the two
scripts that own the figures count."""

import json
import re
from pathlib import Path

import pytest
from benchmods import bench_module

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def summary():  # noqa: ANN201
    vs = bench_module("validation_summary")
    published = json.loads(vs.pub.DATA.read_text())
    aic_data = json.loads(vs.aic.DATA.read_text())
    runs = vs.pub.compare_runs(published["runs"])
    return vs, published, runs, vs.lines(aic_data, published, runs)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]


def test_readme_block_is_what_the_script_prints(summary) -> None:  # noqa: ANN001
    *_, lines = summary
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- validation_summary:begin -->\n", 1)[1].split("\n<!-- validation_summary:end -->", 1)[0]
    assert block.split("\n") == lines, "stale: python benchmarks/regen_docs.py --only validation_summary"


def test_the_classes_split_the_tensorrt_llm_rows(summary) -> None:  # noqa: ANN001
    vs, _, runs, lines = summary
    rows = {_cells(line)[0]: _cells(line) for line in lines[2:]}
    total = next(v for k, v in rows.items() if k.startswith("TensorRT-LLM published tables"))
    parts = [v for k, v in rows.items() if k.startswith("&nbsp;")]
    assert len(parts) == 3
    # every scored row in exactly one class: the counts and the within-20 % counts add up to the whole
    assert sum(int(p[1]) for p in parts) == int(total[1]) == sum("ratio" in r for r in runs)
    assert sum(int(p[2].split()[0]) for p in parts) == int(total[2].split()[0])
    # the attention-DP FP8 class is the set published_compare.attention_dp_summary reads
    adp = [r for r in runs if "ratio" in r and "launch" in r and r["weights"] == "fp8"]
    fp8_adp = next(p for p in parts if "attention DP + EP (H100" in p[0])
    assert vs.pub.attention_dp_summary(adp).startswith(f"attention DP + EP rows: {fp8_adp[1]} points")
    assert f"within 20%: {fp8_adp[2].split()[0]}/{fp8_adp[1]}" in vs.pub.attention_dp_summary(adp)


def test_stored_rows_are_counted_as_published_compare_counts_them(summary) -> None:  # noqa: ANN001
    vs, published, _, lines = summary
    rows = {_cells(line)[0]: _cells(line) for line in lines[2:]}
    mlperf = next(v for k, v in rows.items() if k.startswith("MLPerf"))
    line = vs.pub.mlperf_summary(published["mlperf"])
    assert f"{mlperf[1]} scored" in line and f"within 20%: {mlperf[2].split()[0]}/{mlperf[1]}" in line
    assert f"median |ln ratio| {mlperf[3]}, worst {mlperf[4].split()[0]}" in line
    engine = rows["vLLM and SGLang published tables"]
    last = vs.pub.engine_rows_summary(published["engine_benchmarks"], published["engine_benchmark_sources"])[-1]
    assert last.startswith(f"vLLM + SGLang tables: {engine[1]} points compared")
    assert f"within 20%: {engine[2].split()[0]}/{engine[1]}" in last


def test_grid_rows_are_aiconfigurator_compare_summary(summary) -> None:  # noqa: ANN001
    vs, *_, lines = summary
    data = json.loads(vs.aic.DATA.read_text())
    s = vs.aic.summary(vs.aic.reprice(vs.aic.compare(data["cases"]), data.get("artifact_crosscheck")))
    ttft, tpot = (_cells(line) for line in lines[2:4])
    assert ttft[1] == str(s["ttft"]["cases"]) and ttft[2] == f"{s['ttft']['within_1.5x']} within 1.5x"
    assert ttft[3] == f"{s['ttft']['median_abs_ln']:.3f}" and tpot[3] == f"{s['tpot']['median_abs_ln']:.3f}"
    assert tpot[2].startswith(f"{s['tpot']['within_1.5x']} within 1.5x; {s['tpot_repriced']['within_1.5x']} with")

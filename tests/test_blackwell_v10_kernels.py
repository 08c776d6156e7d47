"""benchmarks/blackwell_v10_kernels.py: TensorRT-LLM 1.0.0rc6's own B200 / GB200 kernel timings (a check, nothing
enters kvplan), and the v1.0 GB200 rows it leaves unexplained, marked on the rows."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from tests.benchmods import bench_module, published

bk = bench_module("blackwell_v10_kernels")


@pytest.fixture(scope="module")
def data() -> dict:
    return bk.load()


def test_every_reading_holds_the_groups_the_rows_ran(data: dict) -> None:
    readings = bk.readings(data)
    assert [title for title, _ in readings] == ["GB200 / B200 (1.0.0rc6)", "1.0.0rc6 / 1.3.0rc20 (b200)",
                                                "1.0.0rc6 / 1.3.0rc20 (gb200)"]  # fmt: skip
    for _, ops in readings:
        assert set(ops) == set(bk.OPS)
        for op, group in bk.ROW_GROUPS:
            bands = [r for r in ops[op] if r[0] == group]
            assert bands and all(r[4] > 0 and r[3] > 0 for r in bands)


def test_gb200_kernels_of_the_release_are_not_slower_than_b200s(data: dict) -> None:
    """What the rows' note rests on: in the release the v1.0 rows ran, NVIDIA's timings put every GB200 kernel the
    NVFP4 / FP8-KV rows run at or below B200's (a 1 % margin for the tables' noise), never the 0.61-0.98 the page
    shows GB200 at against B200 on the marked rows."""
    ops = data["gb200_over_b200"]
    for op, group in bk.ROW_GROUPS:
        assert bk.spread(ops[op], group)[1] <= 1.01


def test_spread_and_summary_by_hand() -> None:
    rows = [["nvfp4", 1, 64, 0.9, 3], ["nvfp4", 65, 512, 1.1, 2], ["fp8", 1, 64, 2.0, 1]]
    assert bk.spread(rows, "nvfp4") == (0.9, 1.1)
    ops = {op: [[group, 1, 64, 1.0 + i / 100, 1] for group in ("nvfp4", "nvfp4 nearest", "fp8")]
           for i, op in enumerate(bk.OPS)}  # fmt: skip
    line = bk.summary_lines({"gb200_over_b200": ops, "old_over_new": {}})[0]
    assert line.startswith("GB200 / B200 (1.0.0rc6), the rows' dtypes: moe nvfp4 1.00-1.00")
    assert "context_attention fp8 1.03-1.03" in line


def test_collect_without_aiconfigurator_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(bk, "tables_root", lambda: None)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert bk.collect(tmp_path / "missing.whl", tmp_path / "out.json") == 0
    assert out.getvalue().strip() == bk.SKIPPED and not (tmp_path / "out.json").exists()


def test_not_reproduced_marks_exactly_the_gb200_rows_below_their_b200_twin() -> None:
    """The mark follows one rule, not a choice of rows: a v1.0 GB200 row whose page figure is below the B200 figure
    of the same model, TP and lengths; such rows stay scored and in the statistics."""
    pub, d = published()
    runs = d["runs"]
    b200 = {(r["model"], r["tp"], r["isl"], r["osl"]): r["published_tok_s"] for r in runs
            if r["source"] == "trtllm-1.0" and r["gpu"] == "b200"}  # fmt: skip
    marked = [r for r in runs if "not_reproduced" in r]
    expected = [r for r in runs if r["source"] == "trtllm-1.0" and r["gpu"] == "gb200"
                and r["published_tok_s"] < b200.get((r["model"], r["tp"], r["isl"], r["osl"]), 0)]  # fmt: skip
    assert marked == expected and len(marked) == 11
    assert {r["model"] for r in marked} == {"qwen3-30b-a3b", "llama-4-scout-17b-16e"}
    for r in marked:
        assert "not_modelled" not in r and "not_in_statistics" not in r
        assert "blackwell_v10_kernels.py" in r["not_reproduced"]


def test_marked_rows_print_their_mark() -> None:
    pub, _ = published()
    row = {"source": "trtllm-1.0", "label": "Qwen3-30B-A3B", "gpu": "gb200", "tp": 1, "isl": 128, "osl": 128,
           "published_tok_s": 24107, "kvplan_tok_s": 60996, "ratio": 2.53, "not_reproduced": "why"}  # fmt: skip
    for markdown in (False, True):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            pub._print_runs([row, {k: v for k, v in row.items() if k != "not_reproduced"}], markdown=markdown)
        lines = [line for line in out.getvalue().splitlines() if "Qwen3" in line]
        assert len(lines) == 2 and pub.NOT_REPRODUCED_MARK in lines[0] and pub.NOT_REPRODUCED_MARK not in lines[1]

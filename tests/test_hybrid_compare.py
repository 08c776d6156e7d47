"""benchmarks/hybrid_compare.py: Nemotron 3 Nano's decode step, kvplan against aiconfigurator 0.12.0's own Nemotron-H
model (TensorRT-LLM bf16 / fp8, vLLM bf16; B200, H200; TP 1 and 2)."""

import math
from pathlib import Path

import pytest

from tests.benchmods import bench_module

hybrid = bench_module("hybrid_compare")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return hybrid.compare(hybrid.load())


def test_stored_cases_are_the_grid(rows: list[dict]) -> None:
    assert [(r["engine"], r["gpu"], r["weights"], r["tp"], r["batch"]) for r in rows] == [
        (c["engine"], c["gpu"], c["weights"], c["tp"], c["batch"]) for c in hybrid.CASES
    ]
    assert len(rows) == 30


def test_one_allreduce_a_block_on_both_sides(rows: list[dict]) -> None:
    for r in rows:
        ops = r["aic_generation_ops_ms"]
        if r["tp"] == 1:  # no collective at all on either side
            assert r["kvplan_allreduces"] == 0 and r["aic_ar_ms"] == 0 and r["aic_dispatch_ms"] == 0
            continue
        assert r["kvplan_allreduces"] == 53  # 52 blocks + the embedding (was 2 x 52 + 1)
        # aiconfigurator's Nemotron-H model: one all-reduce after each Mamba2, attention and MoE block, no MLP block
        assert ops["generation_mamba_ar"] > 0 and ops["generation_attn_ar"] > 0 and ops["generation_moe_ar"] > 0
        assert "generation_mlp_ar" not in ops or ops["generation_mlp_ar"] == 0
        # its per-block all-reduces are 23 Mamba2 : 6 attention, the blocks' own ratio, at the same message size
        assert ops["generation_mamba_ar"] / ops["generation_attn_ar"] == pytest.approx(23 / 6, rel=1e-6)


def test_within_the_issue_band(rows: list[dict]) -> None:
    assert all(abs(r["ln"]) <= math.log(1.5) for r in rows)

    # the dispatch terms are aiconfigurator's alone: without them TensorRT-LLM's TP 2 cases sit where its TP 1 ones do
    def median(key: str, tp: int) -> float:
        values = sorted(r[key] for r in rows if r["engine"] == "trtllm" and r["tp"] == tp)
        return values[len(values) // 2]

    tp1 = median("ln", 1)
    assert abs(median("ln_undispatched", 2) - tp1) < 0.5 * abs(median("ln", 2) - tp1)


def test_render_lines(rows: list[dict]) -> None:
    out = hybrid.render(rows)
    assert out.count("\n") == 1 + 30 + 1 + 4 + 1
    assert out.splitlines()[-1].startswith("all: 30 cases, median |ln| ")


def test_doc_block_is_the_script_output(rows: list[dict]) -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "cost.md").read_text()
    block = doc.split("<!-- hybrid_compare:begin -->\n```text\n", 1)[1].split("```\n<!-- hybrid_compare:end", 1)[0]
    assert block == hybrid.render(rows)

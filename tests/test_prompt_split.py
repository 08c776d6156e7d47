"""The attention-DP table rows' runs split by phase and operation class (benchmarks/published_compare.py
``--prompt-split``: ``run_parts``, ``fit_reading``) and kvplan's prompt steps against aiconfigurator's at the v1.0
tables' long prompts (benchmarks/long_prompt_gap.py). Diagnostics: nothing here enters kvplan."""

from __future__ import annotations

import math

import pytest

from tests.benchmods import bench_module, published

gap = bench_module("long_prompt_gap")


def _row(model: str, gpu: str, isl: int, osl: int) -> dict:
    _, data = published()
    return next(r for r in data["runs"] if (r["source"], r["model"], r["gpu"], r["isl"], r["osl"])
                == ("trtllm-1.0", model, gpu, isl, osl))  # fmt: skip


@pytest.fixture(scope="module")
def long_row() -> tuple[dict, dict]:
    pub, _ = published()
    r = _row("qwen3-235b-a22b", "h200", 20000, 2000)
    return r, pub.run_parts(r)


def test_parts_sum_to_the_run_and_the_published_run_is_the_rows(long_row: tuple[dict, dict]) -> None:
    pub, _ = published()
    r, p = long_row
    assert sum(p[k] for k in pub.RUN_PARTS) == pytest.approx(p["run"], rel=1e-9)
    assert p["run"] == pytest.approx(1000 * 2000 / pub.run_tokens_s(r), rel=1e-12)
    assert p["published"] == pytest.approx(1000 * 2000 / 1876, rel=1e-12)
    # every part is there: 20,000-token prompts on 8 ranks and ~2,000 decode steps a lifetime
    assert all(p[k] > 0 for k in pub.RUN_PARTS)
    # the run reads x1.61 against the page (docs/cost.md, stop 30): its prompt steps about half of it
    assert 1.45 < p["published"] / p["run"] < 1.8
    prompt = sum(p[k] for k in pub.RUN_PARTS if k.startswith("prompt "))
    assert 0.45 < prompt / p["run"] < 0.6


def test_a_part_scaled_moves_the_run_by_that_part_alone(long_row: tuple[dict, dict]) -> None:
    # the run is linear in every step's classes, the premise of run_parts' finite differences: three times the
    # prompt attention adds twice the part, and the memos leave nothing of the reading behind
    pub, _ = published()
    r, p = long_row
    with pub.op_classes_scaled(3.0, pub.RUN_PARTS["prompt attention"]):
        tripled = 1000 * 2000 / pub.run_tokens_s(r)
    assert tripled - p["run"] == pytest.approx(2 * p["prompt attention"], rel=1e-6)
    assert 1000 * 2000 / pub.run_tokens_s(r) == pytest.approx(p["run"], rel=1e-12)


def test_a_dense_row_has_no_expert_part() -> None:
    pub, _ = published()
    p = pub.run_parts(_row("llama-3.1-8b", "h200", 5000, 500))
    assert p["prompt experts"] == pytest.approx(0.0, abs=1e-9)
    assert p["decode attention"] > 0 and p["prompt attention"] > 0


def _synthetic(factors: dict[str, float]) -> list[dict]:
    """Runs whose published durations are exactly ``factors`` times each part (a part not named: as priced)."""
    pub, _ = published()
    rows = []
    for i in range(6):
        parts = {k: 10.0 + 7.0 * ((i * 3 + j) % 5) + i * j for j, k in enumerate(pub.RUN_PARTS)}
        run = sum(parts.values())
        rows.append({**parts, "run": run, "published": sum(v * factors.get(k, 1.0) for k, v in parts.items())})
    return rows


def test_fit_reading_recovers_the_factors_that_made_the_runs() -> None:
    pub, _ = published()
    split = _synthetic({"prompt attention": 4.0, "decode attention": 0.9, "decode other": 0.9,
                        "prompt experts": 0.9, "prompt other": 0.9})  # fmt: skip
    f = pub.fit_reading(split, pub.PROMPT_READINGS["the rest / prompt attention"])
    assert f["factors"] == pytest.approx([0.9, 4.0], rel=1e-9)
    assert f["worst_abs_ln"] == pytest.approx(0.0, abs=1e-12) and f["within"] == len(split)
    # one factor cannot: the fitted runs part from the published ones
    one = pub.fit_reading(split, pub.PROMPT_READINGS["one factor"])
    assert one["worst_abs_ln"] > 0.05
    # a part in no group keeps kvplan's time: only the prompt steps scaled, by 1.5, and the decode ones as priced
    split = _synthetic({k: 1.5 for k in pub.RUN_PARTS if k.startswith("prompt ")})
    f = pub.fit_reading(split, (tuple(k for k in pub.RUN_PARTS if k.startswith("prompt ")),))
    assert f["factors"] == pytest.approx([1.5], rel=1e-9)
    with pytest.raises(ValueError, match="one or two groups"):
        pub.fit_reading(split, ())


def test_prompt_split_lines_print_each_row_then_each_model_and_gpu() -> None:
    pub, _ = published()
    rows = [_row("qwen3-235b-a22b", g, i, o) for g in ("h200", "b200") for i, o in
            ((2048, 128), (5000, 500), (20000, 2000), (128, 2048))]  # fmt: skip
    split = pub.prompt_split(rows)
    lines = pub.prompt_split_lines(split)
    assert len(lines) == 8 + 2
    r, p = next((r, p) for r, p in split if (r["gpu"], r["isl"]) == ("h200", 20000))
    long = next(s for s in lines if s.startswith("prompt split Qwen3-235B-A22B  h200") and "20000/2000" in s)
    prompt = sum(p[k] for k in pub.RUN_PARTS if k.startswith("prompt "))
    short = p["published"] - p["run"]
    assert f"x{p['published'] / p['run']:.2f}: run {p['run']:.1f} s (" in long
    assert f"prompt steps x{1 + short / prompt:.2f} or their attention x{1 + short / p['prompt attention']:.2f}" in long
    # stop 30: the page asks the prompt steps for about x2.1 and, alone, their attention for about x4.8
    assert 1.8 < 1 + short / prompt < 2.5 and 4.0 < 1 + short / p["prompt attention"] < 5.5
    # a decode-heavy row's prompt steps are too small a part to carry a factor
    assert next(s for s in lines if "128/2048" in s).endswith("prompt steps - or their attention - would match")
    fit = next(s for s in lines if s.startswith("prompt fit Qwen3-235B-A22B h200 DP (4 rows)"))
    assert all(name in fit for name in pub.PROMPT_READINGS)


def test_kvplan_prompt_steps_agree_with_aiconfigurator_at_the_long_prompts() -> None:
    # one prompt a rank on 8 x H200, every rank's tokens through the experts: kvplan's trtllm@0.20 step against
    # aiconfigurator 0.12.0's TensorRT-LLM 1.3.0rc20 static_ctx, by class; Qwen3-235B-A22B's within 10 % at every
    # length, its attention within 8 % (an agreement bound on the stored cases, not a fit)
    data = gap.load()
    assert [(c["model"], c["isl"]) for c in data["cases"]] == [(m, i) for m in gap.MODELS for i in gap.ISLS]
    results = gap.compare(data)
    for r in results:
        if r["model"] != "qwen3-235b-a22b":
            continue
        assert abs(math.log(r["kvplan"]["total"] / r["aic"]["total"])) < math.log(1.10), r
        assert abs(math.log(r["kvplan"]["attention"] / r["aic"]["attention"])) < math.log(1.08) or r["isl"] < 4096, r
        assert sum(r["kvplan"][c] for c in gap.CLASSES) == pytest.approx(r["kvplan"]["total"], rel=1e-9)


def test_the_v1_era_context_attention_kernel_was_not_slower_at_long_prompts() -> None:
    # aiconfigurator 0.4.0's TensorRT-LLM 1.0.0rc3 H200 table against 0.12.0's 1.3.0rc20 at Qwen3-235B-A22B's rank
    # layout (64 / 4 heads, fp8): equal within 3 % from 8,192 tokens on, slower only at the short prompts
    old, new = (dict(map(tuple, gap.load()["attention"][v]["64/4"])) for v in (gap.OLD, gap.NEW))
    for isl in (8192, 10240, 12288, 16384):
        assert old[isl] / new[isl] == pytest.approx(1.0, abs=0.03)
    assert old[2048] / new[2048] > 1.2
    out = gap.render(gap.compare(gap.load()), gap.load()["attention"])
    assert "64/4 heads: " in out and "(median 1.0.0rc3 / 1.3.0rc20 x1.07)" in out


def test_the_growth_does_not_outlive_v1_0() -> None:
    # aligned steady states both (no balancer holds): the v1.0 Qwen3-235B-A22B 8 x H200 rows grow from x1.00 at
    # 1000/1000 to x1.70 at 20000/2000; the later page's 4 x H200 ones read x1.18 at 1000/1000 and x1.10 at
    # 32768/1024 (stop 30)
    import re

    pub, data = published()
    lines = pub.later_page_aligned_lines(data["runs"])
    v10 = {m[0]: float(m[1]) for m in re.findall(r"(\d+/\d+) x([\d.]+)", lines[0])}
    assert lines[0].startswith("prompt v1.0 rows qwen3-235b-a22b h200 DP8, aligned steady states: 1000/1000 x")
    assert list(v10) == ["1000/1000", "1000/2000", "2048/128", "2048/2048", "5000/500", "20000/2000"]
    r = _row("qwen3-235b-a22b", "h200", 20000, 2000)
    assert v10["20000/2000"] == pytest.approx(
        pub.replica_tokens_s(pub.run_setup(r), 20000, 2000) / r["published_tok_s"], abs=0.005
    )
    assert v10["20000/2000"] / v10["1000/1000"] > 1.4
    line = next(s for s in lines if "qwen3-235b-a22b h200 DEP4" in s)
    aligned = {m[0]: float(m[1]) for m in re.findall(r"(\d+/\d+) aligned x([\d.]+)", line)}
    assert list(aligned) == ["1000/1000", "1024/1024", "1024/8192", "8192/1024", "32768/1024"]
    assert aligned["32768/1024"] <= aligned["1000/1000"] and aligned["8192/1024"] <= aligned["1000/1000"]


def test_the_decode_steps_of_the_long_prompt_runs_agree_with_aiconfigurator() -> None:
    # the decode-only steps of the 8 x H200 2048/128, 5000/500, 20000/2000 runs (the run's places a rank, the mean
    # context, unpadded): kvplan within 10 % of aiconfigurator's static_gen step, its attention within 8 %
    data = gap.load()
    assert [(c["isl"], c["osl"], c["batch"]) for c in data["decode_cases"]] == list(gap.DECODE_POINTS)
    for r in gap.compare_decode(data):
        assert r["ctx"] == r["isl"] + r["osl"] // 2
        assert abs(math.log(r["kvplan"]["total"] / r["aic"]["total"])) < math.log(1.10), r
        assert abs(math.log(r["kvplan"]["attention"] / r["aic"]["attention"])) < math.log(1.08), r

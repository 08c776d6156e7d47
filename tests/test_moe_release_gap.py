"""benchmarks/moe_release_gap.py: TensorRT-LLM 1.0.0rc3's Hopper MoE kernel tables (aiconfigurator 0.4.0) against
1.3.0rc20's (0.12.0), and the Hopper FP8 attention-DP rows read with the older kernels ("as scored": trtllm@0.20's own
Hopper curve fitted to them, tests/test_moe_release.py; "ratio": the 1.3 curve x the measured ratio)."""

from pathlib import Path

import pytest

from tests.benchmods import bench_module

gap = bench_module("moe_release_gap")
DOC = Path(__file__).resolve().parents[1] / "docs" / "cost.md"


@pytest.fixture(scope="module")
def data() -> dict:
    return gap.load()


def test_ratio_at_interpolates_log_log(data: dict) -> None:
    h200 = data["fp8_ratio"]["h200"]
    assert [p[:2] for p in h200 if p[0] in (2048, 3072)] == [[2048, 1.2409], [3072, 1.3027]]
    assert gap.ratio_at(h200, 2048) == pytest.approx(1.2409)
    # 2,560 tokens: f = ln(2560 / 2048) / ln(3072 / 2048) = 0.5503; exp(ln 1.2409 + f ln(1.3027 / 1.2409)) = 1.2745
    assert gap.ratio_at(h200, 2560) == pytest.approx(1.2745, abs=1e-4)
    assert gap.ratio_at(h200, 1 << 30) == h200[-1][1] and gap.ratio_at(h200, 0.5) == h200[0][1]


def test_per_tensor_fp8_moved_most(data: dict) -> None:
    # 1.0.0rc3's per-tensor fp8 experts run slower than 1.3.0rc20's the more tokens they take, more than block-fp8's
    for gpu in gap.SYSTEMS:
        bands = {d: {lo: m for lo, _, m, _ in cells} for d, cells in data["bands"][gpu].items()}
        assert bands["fp8"][2049] > 1.25 and bands["fp8"][2049] > bands["fp8_block"][2049] + 0.1
        assert bands["fp8"][1] < 1.1


def test_docs_block_is_the_scripts_output(data: dict) -> None:
    from kvplan import latency

    priced = latency._moe_s
    lines = gap.published_lines(gap.published_rows(data))
    assert latency._moe_s is priced  # the reading leaves kvplan as it was
    doc = DOC.read_text(encoding="utf-8")
    block = doc.split("<!-- moe_release_gap:begin -->\n```\n", 1)[1].split("\n```\n<!-- moe_release_gap:end -->", 1)[0]
    assert block == gap.render_bands(data) + "\n" + "\n".join(lines)
    # as scored 24, ratio 27 before the finite run took the KV pool's whole requests for its places (stop 28); 23 and
    # 26 before each of a rank's whole prompts attended to its own tokens (stop 29: Qwen3-235B-A22B H200 2048/128 out);
    # 22 and 25 before the rows took trtllm-bench's own max_num_tokens (stop 29)
    assert lines[-1].startswith("all 52 Hopper FP8 attention-DP rows within 20 %: as scored 15; ratio 19;")

"""benchmarks/dsa_compare.py: kvplan's DeepSeek-V3.2 decode layer against aiconfigurator's DSA generation modules."""

from pathlib import Path

import pytest

from tests.benchmods import bench_module

dsa_compare = bench_module("dsa_compare")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return dsa_compare.compare(dsa_compare.load_row_tables(dsa_compare.DATA))


def test_sample_covers_the_gpus_dtypes_and_heads() -> None:
    # vLLM 0.24.0 on H200, B200, GB200, bf16 and fp8 KV, 16-128 heads a rank; 11 batches x 17 lengths, less the
    # points aiconfigurator did not measure (a few NaN, batch 1,024 past 32K). The kernel vLLM picked: FLASHMLA_SPARSE
    # on H200; on Blackwell FLASHINFER_MLA_SPARSE for fp8 KV and for bf16 at 16 heads, FLASHMLA_SPARSE for bf16 at 32+.
    # TensorRT-LLM 1.3.0rc20 and SGLang 0.5.14 on the same GPUs (TensorRT-LLM's H200 table: bf16 KV only).
    tables = dsa_compare.load_row_tables(dsa_compare.DATA)
    assert [(t["gpu"], t["engine"]) for t in tables] == [(g, e) for g in ("h200", "b200", "gb200")
                                                         for e in ("vllm", "trtllm", "sglang")]  # fmt: skip
    vllm = [t for t in tables if t["engine"] == "vllm"]
    assert sum(len(t["rows"]) for t in vllm) == 4407
    kernels = {(t["gpu"], r["kv_cache_dtype"], r["num_heads"]): r["kernel_source"] for t in vllm for r in t["rows"]}
    assert {k for (gpu, _, _), k in kernels.items() if gpu == "h200"} == {"FLASHMLA_SPARSE"}
    for gpu in ("b200", "gb200"):
        assert kernels[gpu, "fp8", 128] == kernels[gpu, "bfloat16", 16] == "FLASHINFER_MLA_SPARSE"
        assert kernels[gpu, "bfloat16", 32] == kernels[gpu, "bfloat16", 128] == "FLASHMLA_SPARSE"
    for t in vllm:
        assert {r["kv_cache_dtype"] for r in t["rows"]} == {"bfloat16", "fp8"}
        assert {r["num_heads"] for r in t["rows"]} == {16, 32, 64, 128}


def test_statistics_hold(rows: list[dict]) -> None:
    # What the script prints for vLLM: 4,407 points, median |ln| 0.105, worst 0.640 (0.619 / 1.870 when kvplan read
    # every cached row as dense MLA, main 90e1c3f); H200 0.078 / 0.084 (bf16 / fp8 KV)
    vllm = [r for r in rows if r["engine"] == "vllm"]
    a = dsa_compare.stats(vllm)
    assert a["count"] == 4407 and a["median"] < 0.11 and a["worst"] < 0.65
    groups = dict(dsa_compare.summaries(rows)["per GPU / KV dtype / kernel"])
    assert groups["h200 vllm bf16 FLASHMLA_SPARSE"]["median"] < 0.08
    assert groups["h200 vllm fp8 FLASHMLA_SPARSE"]["median"] < 0.09
    # past index_topk keys only the indexer grows: H200 holds there too
    reach = dict(dsa_compare.summaries(rows)["per GPU, by length"])
    assert reach["h200 vllm > 2048 keys"]["median"] < 0.08


def test_docs_block_is_what_the_script_prints(rows: list[dict]) -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cost.md").read_text(encoding="utf-8")
    block = doc.split("<!-- dsa_compare:begin -->\n", 1)[1].split("\n<!-- dsa_compare:end -->", 1)[0]
    assert block == dsa_compare.render(rows, markdown=True)


def test_collect_skips_cleanly_without_aiconfigurator(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    try:
        import aiconfigurator  # noqa: F401

        pytest.skip("aiconfigurator is installed here")
    except ImportError:
        pass
    out = tmp_path / "dsa.json"
    assert dsa_compare.collect(out) == 0
    assert "not installed" in capsys.readouterr().out
    assert not out.exists()

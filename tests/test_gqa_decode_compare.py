"""benchmarks/gqa_decode_compare.py: kvplan's GQA decode attention against aiconfigurator's TensorRT-LLM
generation-attention kernel tables (the committed sample)."""

from pathlib import Path

import pytest

from tests.benchmods import bench_module

gqa = bench_module("gqa_decode_compare")

# The MLPerf Llama-2-70B shape at TP1 (64 query heads, 8 KV heads of 128), a batch of 1,024, step 127 (128 tokens)
ROW = {"batch_size": 1024, "isl": 1, "step": 127, "num_heads": 64, "num_key_value_heads": 8}


@pytest.fixture(scope="module")
def tables() -> list[dict]:
    return gqa.load()


def test_sample_holds_three_gpus_and_the_four_llama_70b_splits(tables: list[dict]) -> None:
    # aiconfigurator 0.12.0, TensorRT-LLM 1.3.0rc20, fp8 KV, head_dim 128: 628 rows per GPU
    assert [t["gpu"] for t in tables] == ["h100-sxm", "h200", "b200"]
    assert [len(t["rows"]) for t in tables] == [628, 628, 628]
    heads = {(r["num_heads"], r["num_key_value_heads"]) for t in tables for r in t["rows"]}
    assert heads == set(gqa.SHAPES)


def test_kvplan_and_overlap_golden_b200(tables: list[dict]) -> None:
    # TensorRT-LLM calibration (kvplan/engines/trtllm.py): attn_decode_mem_eff 0.8451, attn_layer_s 12.53 us,
    # attn_seq_s 0.07637 us; B200 7,700 GB/s (kvplan/data/gpus.yaml). held = 1,024 x 128 x 8 x 128 x 2 x 1 byte
    # = 268,435,456 B / (7.7e12 x 0.8451 = 6.50727e12 B/s) = 41.2516 us; 1,024 x 0.07637 = 78.2029 us.
    # kvplan (a sum): 41.2516 + 12.53 + 78.2029 = 131.9845 us; overlap form: 12.53 + max(41.2516, 78.2029) = 90.7329 us
    assert gqa.kvplan_seconds(ROW, "b200") == pytest.approx(131.9845e-6, rel=1e-6)
    assert gqa.overlap_seconds(ROW, "b200") == pytest.approx(90.7329e-6, rel=1e-6)
    b200 = next(t for t in tables if t["gpu"] == "b200")
    measured = next(r for r in b200["rows"] if all(r[k] == v for k, v in ROW.items()))
    assert measured["latency"] == pytest.approx(0.0930, abs=5e-4)  # ms: the overlap form's 90.7 us, not 132


def test_tp8_per_sequence_work_is_overpriced(tables: list[dict]) -> None:
    # kvplan's per-sequence term does not shrink with the KV heads a rank holds: at TP 8 (one KV head) and over 256
    # sequences it prices several times the kernel on every GPU, at TP 1 within 30 %
    big = [r for r in gqa.compare(tables) if r["batch"] > 256 and r["context"] <= 2048]
    for gpu in ("h100-sxm", "h200", "b200"):
        tp8 = [r for r in big if r["gpu"] == gpu and r["heads"] == (8, 1)]
        tp1 = [r for r in big if r["gpu"] == gpu and r["heads"] == (64, 8)]
        assert gqa.stats(tp8)["median_signed"] > 1.4
        assert abs(gqa.stats(tp1)["median_signed"]) < 0.3


def test_docs_block_is_what_the_script_prints(tables: list[dict]) -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cost.md").read_text(encoding="utf-8")
    block = doc.split("<!-- gqa_decode_compare:begin -->\n", 1)[1].split("\n<!-- gqa_decode_compare:end -->", 1)[0]
    assert block == "```text\n" + gqa.render(gqa.compare(tables)) + "\n```"


def test_fit_finds_the_per_kv_head_work(tables: list[dict]) -> None:
    # the per-sequence work counted per KV head fits every GPU at 8-12 ns (kvplan's attn_seq_s, 76.4 ns a sequence,
    # is 8 KV heads of it); B200 takes the max form (smooth p > 5). docs/cost.md's --fit block was printed with scipy
    # 1.17.1; a solver's last digits may differ elsewhere, so the block is not compared here.
    pytest.importorskip("scipy")
    for t in tables:
        smooth = gqa.fit_form(t, "smooth")
        assert 8e-9 < smooth["seq_kvhead_s"] < 12e-9 and smooth["median_abs"] < 0.13
    b200 = gqa.fit_form(next(t for t in tables if t["gpu"] == "b200"), "smooth")
    assert b200["p"] > 5 and b200["median_abs"] < 0.05

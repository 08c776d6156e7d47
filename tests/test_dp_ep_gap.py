"""benchmarks/dp_ep_gap.py: TensorRT-LLM Hopper FP8 attention DP + EP decode steps against aiconfigurator 0.12.0, and
the v1.0 Hopper attention-DP rows with the experts from its EP MoE table (a reading)."""

from pathlib import Path

import pytest

from tests.benchmods import bench_module

gap = bench_module("dp_ep_gap")
DOC = Path(__file__).resolve().parents[1] / "docs" / "cost.md"


@pytest.fixture(scope="module")
def data() -> dict:
    return gap.load()


def _block(name: str) -> str:
    doc = DOC.read_text(encoding="utf-8")
    return doc.split(f"<!-- {name}:begin -->\n```\n", 1)[1].split(f"\n```\n<!-- {name}:end -->", 1)[0]


def test_sample(data: dict) -> None:
    assert [(c["model"], c["gpu"], c["batch"]) for c in data["cases"]] == [
        (m, g, b) for m in gap.MODELS for g in gap.SYSTEMS for b in gap.BATCHES
    ]
    for c in data["cases"]:
        assert sum(c["aic_ops_ms"].values()) == pytest.approx(c["aic_tpot_ms"], rel=1e-6)
        assert c["ranks"] == gap.MODELS[c["model"]][1]
    # every model's EP table on both GPUs, both distributions, token counts rising
    for gpu in gap.SYSTEMS:
        for model in gap.MODELS:
            for d in gap.DISTRIBUTIONS:
                tokens = [t for t, _ in data["tables"][gpu][model][d]]
                assert tokens == sorted(tokens) and tokens[0] == 1


def test_aiconfigurator_classes_by_hand() -> None:
    # Qwen3-235B-A22B, H100, 64 a rank (the data file's first case): its MoE op 15.219 ms; exchange = pre 3.1255 +
    # post 2.77018 = 5.896 ms; element-wise the two add + norm 2 x 0.35556 = 0.711 ms; GEMMs qkv 2.5943 + proj
    # 2.5022 + router 0.5604 + logits 0.4747 = 6.1315 ms; the embedding 0.0032 ms is "other"
    ops = {"generation_embedding": 0.0031956, "generation_add_norm_1": 0.355557, "generation_qkv_gemm": 2.594284,
           "generation_attention": 8.123989, "generation_proj_gemm": 2.502155, "generation_add_norm_2": 0.355557,
           "generation_router_gemm": 0.560390, "generation_moe_pre_dispatch": 3.1255, "generation_moe": 15.218675,
           "generation_moe_post_dispatch": 2.77018, "generation_logits_gemm": 0.474683}  # fmt: skip
    c = gap.aic_classes(ops)
    assert c["moe"] == pytest.approx(15.2187, abs=1e-4)
    assert c["exchange"] == pytest.approx(5.8957, abs=1e-4)
    assert c["elementwise"] == pytest.approx(0.7111, abs=1e-4)
    assert c["gemm"] == pytest.approx(6.1315, abs=1e-4)
    assert c["attention"] == pytest.approx(8.1240, abs=1e-4)
    assert c["other"] == pytest.approx(0.0032, abs=1e-4)
    # Llama 4's operation names carry a global / swa / dense infix
    llama = gap.aic_classes({"generation_global_moe": 2.0, "generation_swa_moe_pre_dispatch": 1.0,
                             "generation_swa_dense_act": 0.5, "generation_swa_dense_down_gemm": 0.25})  # fmt: skip
    assert (llama["moe"], llama["exchange"], llama["elementwise"], llama["gemm"]) == (2.0, 1.0, 0.5, 0.25)


def test_docs_blocks_are_the_scripts_output(data: dict) -> None:
    assert _block("dp_ep_gap") == gap.render(gap.compare(data)).rstrip("\n")
    from kvplan import latency

    priced = latency._moe_s
    lines = gap.published_lines(gap.published_rows(data["tables"]))
    assert latency._moe_s is priced  # the reading leaves kvplan as it was
    assert _block("dp_ep_gap_published") == "\n".join(lines)
    # 14 before Llama 4 Maverick H200 20000/2000 decoded its chunked layers with MMHA (kvplan.latency._mmha_decode_s);
    # 15 before trtllm@0.20 priced its Hopper grouped experts as TensorRT-LLM 1.0.0rc3 ran them (stop 27); 24 before the
    # finite run took the KV pool's whole requests for its places and priced each step at its batch (stop 28: Maverick
    # H200 1000/1000 one wave, x1.52, out; Qwen3-235B-A22B H200 1000/2000 and 2048/2048, padded to 256, in)
    # 23 before each of a rank's whole prompts attended to its own tokens (stop 29: Qwen3-235B-A22B H200 2048/128 out);
    # 22 before the rows took trtllm-bench's own max_num_tokens (stop 29: the 8 x H100 pools larger, H100 9 -> 2)
    assert lines[-1].startswith("all 52 Hopper attention-DP rows within 20 %: as scored 15;")

"""benchmarks/moe_bucket_compare.py: DeepSeek-V3's TensorRT-LLM decode step, operation by operation, against
aiconfigurator 0.12.0."""

from pathlib import Path

import pytest

from tests.benchmods import bench_module

bucket = bench_module("moe_bucket_compare")


@pytest.fixture(scope="module")
def cases() -> list[dict]:
    return bucket.load()


@pytest.fixture(scope="module")
def results(cases: list[dict]) -> list[dict]:
    return bucket.compare(cases)


def test_sample_covers_h200_b200_at_batch_1_8_64(cases: list[dict]) -> None:
    assert [(c["gpu"], c["batch"], c["isl"]) for c in cases] == [(g, b, 4096) for g in ("h200", "b200")
                                                                 for b in (1, 8, 64)]  # fmt: skip
    for c in cases:
        kids = c["aic_moe_overlap_children_ms"]
        assert set(kids) == {"generation_router_gemm", "generation_moe_pre_dispatch", "generation_moe",
                             "generation_moe_post_dispatch", *bucket.SHARED_AIC}  # fmt: skip
        # aiconfigurator's overlap is the longer path: here the routed one, router + dispatch + MoE + combine
        routed = sum(v for k, v in kids.items() if k not in bucket.SHARED_AIC)
        assert c["aic_ops_ms"]["generation_moe_overlap"] == pytest.approx(routed, rel=1e-6)
        assert sum(c["aic_ops_ms"].values()) == pytest.approx(c["aic_tpot_ms"], rel=1e-6)


def test_kvplan_operations_sum_to_its_tpot(results: list[dict]) -> None:
    from kvplan.cost import cost

    for r in results:
        row = cost("deepseek-v3", r["gpu"], [r["isl"]], batch=r["batch"], tp=8, kv_dtype_name="fp8",
                   weights_dtype="fp8", engine="trtllm", compute_dtype="fp8")[0]  # fmt: skip
        assert r["kvplan_tpot_ms"] == pytest.approx(row.tpot_s * 1e3, rel=1e-9)


def test_batch_one_by_hand(results: list[dict]) -> None:
    # Router, H200, one token, 16-bit as the engines run it (kvplan.latency._router_ctx): 7168 x 256 = 1,835,008
    # weights; memory (1,835,008 x 2 B + (7168 + 256) x 2 B) = 3,684,864 B / (4800e9 x gemm_mem_eff 0.7241) = 1.060 us
    # over compute 2 x 1,835,008 / (989e12 x 0.7886 / (1 + 64.29)) = 0.307 us, + graph_kernel_s 2.724 us = 3.784 us;
    # x 58 MoE layers = 0.219 ms (aiconfigurator: 0.363 ms, 61 layers of its bf16 GEMM table at m = 1). It was priced
    # with the experts' fp8 bytes and block-fp8 peak before: 1,849,856 B / (4800e9 x 0.7241 x fp8_mem_eff_scale 0.7315)
    # = 0.728 us + 2.724 = 3.452 us, 0.200 ms.
    # Grouped experts, TP 8, one token (the block-fp8 walk, kvplan.latency._moe_expert_s, fitted under the tables'
    # balanced routing): H200 the GEMMs' 14.57 us under the walk's floor 256 experts x 0.35 us = 89.6 us, + moe_layer_s
    # 25.3 us = 114.9 us; B200 11.05 us + 256 x 0.26 us + 25.3 us = 102.91 us. x 58 layers: 6.664 ms against 6.084 and
    # 5.969 ms against 5.957 (7.110 and 6.563 ms with the walks fitted under uniform routing, 0.38 and 0.30 us; 2.681
    # and 2.108 ms before the walk was priced). MLA block, H200: 61 layers x (mla_layer_s 26.68 - hopper_mla_layer_s
    # 12.15) = 0.886 ms below its 4.140 ms under mla_layer_s: 3.253 ms against aiconfigurator's 3.422.
    got = {(r["gpu"], r["batch"]): {x["op"]: (x["kvplan_ms"], x["aic_ms"]) for x in r["rows"]} for r in results}
    h200, b200 = got[("h200", 1)], got[("b200", 1)]
    assert h200["router GEMM"] == (pytest.approx(58 * 3.784e-3, abs=2e-4), pytest.approx(0.363, abs=1e-3))
    assert h200["grouped experts (fused MoE)"] == (
        pytest.approx(58 * 0.1149, abs=1e-3),
        pytest.approx(6.084, abs=1e-3),
    )
    assert b200["grouped experts (fused MoE)"] == (
        pytest.approx(58 * 0.10291, abs=1e-3),
        pytest.approx(5.957, abs=1e-3),
    )
    assert h200["MLA block (attention + projections)"] == (pytest.approx(4.140 - 61 * 14.53e-3, abs=2e-3),
                                                           pytest.approx(3.422, abs=1e-3))  # fmt: skip
    # the shared experts run beside the routed path on both sides: hidden whole (kvplan 0.442, aiconfigurator 1.212 ms)
    assert h200["hidden beside the routed path"][0] == pytest.approx(-h200["shared experts (GEMMs)"][0])


def test_docs_block_is_what_the_script_prints(results: list[dict]) -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cost.md").read_text(encoding="utf-8")
    block = doc.split("<!-- moe_bucket_compare:begin -->\n", 1)[1].split("\n<!-- moe_bucket_compare:end -->", 1)[0]
    assert block == bucket.render(results, markdown=True).rstrip("\n")

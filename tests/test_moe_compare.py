"""benchmarks/moe_compare.py: kvplan's grouped expert GEMMs against aiconfigurator 0.12.0's MoE tables."""

from pathlib import Path

import pytest

from tests.benchmods import bench_module

moe_compare = bench_module("moe_compare")


@pytest.fixture(scope="module")
def tables() -> list[dict]:
    return moe_compare.load()


@pytest.fixture(scope="module")
def rows(tables: list[dict]) -> list[dict]:
    return moe_compare.compare(tables)


def test_sample_covers_the_gpus_engines_and_models(tables: list[dict]) -> None:
    # TensorRT-LLM 1.3.0rc20 and vLLM 0.24.0 on H100 SXM / H200 / B200 / GB200, SGLang 0.5.10 on Hopper only (its
    # B200 / GB200 folders hold wide-EP tables alone): 10 tables, every catalog model's expert shape, 5 splits.
    pairs = {(t["gpu"], t["engine"]) for t in tables}
    assert len(pairs) == len(tables) == 10
    assert {g for g, e in pairs if e == "sglang"} == {"h100-sxm", "h200"}
    assert {m for t in tables for p in t["points"] for m in [list(moe_compare.SHAPES)[p[1]]]} == set(moe_compare.SHAPES)
    assert {(p[2], p[3]) for t in tables for p in t["points"]} == set(moe_compare.SPLITS)
    assert sum(len(t["points"]) for t in tables) == 15113
    assert all("nvfp4" not in t["dtypes"] for t in tables if t["gpu"] in ("h100-sxm", "h200"))


def test_deepseek_v3_decode_layer_by_hand(rows: list[dict]) -> None:
    # vLLM, H200, DeepSeek-V3 block-fp8 experts, TP 8, one token: 8 experts touched, each sliced to 2048 / 8 = 256,
    # 3 x 7168 x 256 = 5,505,024 weights each. Memory: (8 x 5,505,024 x 1 B + 8 x (2 x 7168 + 3 x 256) x 2 B)
    # = 44,281,856 B / (4800e9 x moe_mem_eff 0.9347 x fp8_mem_eff_scale 0.742) = 13.30 us. Compute: efficiency
    # 0.4172 x 1 / (1 + 39.38) x 256 / (256 + 64.35) = 0.008257 of 1979e12 x fp8_block_eff_scale 0.375, over
    # 2 x 8 x 5,505,024 FLOP = 14.38 us; the larger plus moe_layer_s 34.27 us = 48.65 us. aiconfigurator's vLLM
    # table: 55.24 us (triton experts). kvplan's 3.2 ms MoE block against aiconfigurator's 7.3 ms in the grid's
    # batch-1 case (report-mlafit.md) is not in the grouped GEMMs: 58 x 55.24 us = 3.20 ms of the 7.33.
    (r,) = [r for r in rows if (r["engine"], r["gpu"], r["dtype"], r["model"], r["tp"], r["ep"], r["tokens"])
            == ("vllm", "h200", "fp8_block", "deepseek-v3", 8, 1, 1)]  # fmt: skip
    assert r["kvplan_s"] == pytest.approx(48.65e-6, rel=1e-3)
    assert r["aic_s"] == pytest.approx(55.24e-6)
    assert abs(r["ln"]) < 0.15


def test_ep_points_price_the_tables_routing() -> None:
    # The tables' routing is balanced: kvplan's busiest-rank excess (moe_ep_imbalance, fitted to aiconfigurator's
    # power-law routing) is not priced for them, so an EP point costs less than the engine's own pricing of it.
    from kvplan import latency
    from kvplan.catalog import resolve_model
    from kvplan.hardware import resolve_gpu

    spec = resolve_model("deepseek-v3")
    ctx = latency._make_ctx(spec, resolve_gpu("h200"), tp=8, weights_dtype="fp8", cal=latency.calibration("vllm"),
                            eager=True, ep=True)  # fmt: skip
    own = latency._moe_s(ctx, 4096, 4096).grouped
    uniform = moe_compare.grouped_seconds("h200", "vllm", model="deepseek-v3", dtype="fp8_block", tp=1, ep=8,
                                          tokens=4096)  # fmt: skip
    assert latency.calibration("vllm").moe_ep_imbalance > 0
    assert uniform < own


def test_summary_figures(rows: list[dict]) -> None:
    # as the script prints them (docs/cost.md): 15113 points, median |ln| 0.178, median signed +0.012 (+0.010 before the
    # NVFP4 refit that followed the router's 16-bit pricing, kvplan.latency._router_ctx; 0.182 and +0.013
    # before TensorRT-LLM's Hopper block-fp8 experts were priced by DeepGEMM's tiles; 0.183 and
    # +0.008 before the NVFP4 constants were refitted with the Blackwell decode attention held, fit_fp4.py; 0.185 and
    # +0.004 before Hopper's MXFP4 Triton experts were priced; 0.189 and +0.002 before MXFP4 experts dequantized per
    # token tile, kvplan.latency._moe_dequant_s; 0.193 and -0.008 before
    # block-scaled fp8 experts walked every expert on the rank, kvplan.latency._moe_expert_s; 0.203 and -0.021 before
    # the busiest EP rank read one whole expert at least, kvplan.latency._moe_s)
    s = moe_compare.stats(rows)
    assert s["count"] == 15113
    # 0.182 before the per-tensor fp8 refit (fp8_eff_scale / fp8_mem_eff_scale with the activation quantization
    # priced): the MoE router, a GEMM in the fp8 context, moves; the grouped experts keep the absorbed share
    # 0.181 and +0.008 before TensorRT-LLM's NVFP4 points were taken from the CUTLASS kernel it runs instead of the
    # faster min-latency one (moe_compare.ENGINE_SKIP_KERNELS; kvplan's constants unchanged)
    # 0.183 and -0.012 on main before r25e's Hopper block-fp8 tiles and 16-bit router were merged (the router then in
    # the fp8 context); with them 0.179 and -0.010
    # 0.183 and +0.043 with each point priced under the table's own routing (aic_tables.balanced_loads: min(E, T k)
    # experts touched, SGLang's EP rows as its collector runs them) instead of uniform routing's; kvplan's constants
    # unchanged: they were fitted under uniform routing, which undercounts the experts the tables' kernels read;
    # 0.173 and +0.016 with TensorRT-LLM's MoE constants refitted so (fit_moe_ops.py: the Hopper block-fp8 tiles, their
    # streaming share and width, the walks, the Blackwell MXFP4 dequantization); 0.181 and +0.039 with vLLM's Hopper
    # MXFP4 experts priced as the OpenAI Triton tiles they run (kvplan.latency._triton_mxfp4_s; its 300 points 0.220
    # -> 0.085) without that refit; both: 0.171 and +0.013; 0.168 and +0.026 with TensorRT-LLM's NVFP4 experts paying
    # their CUTLASS path's own fixed cost a layer (cutlass_nvfp4_moe_layer_s; its 1,020 points 0.431 -> 0.256); 0.166
    # with TensorRT-LLM's NVFP4 constants fitted on the steps and the GEMM tables together (fit_fp4.py:
    # fp4_moe_eff_scale 0.2459 -> 0.2464, fp4_moe_layer_s 7.041 -> 6.627 us); 0.165 with their refit after B200's own
    # all-reduce latency (stop 29: 0.2475, 6.545 us)
    assert s["median"] == pytest.approx(0.165, abs=5e-4)
    # +0.026 before stop 29's NVFP4 refit, +0.013 before the per-tensor fp8 refit, -0.010 uniform
    assert s["signed"] == pytest.approx(0.024, abs=5e-4)
    text = moe_compare.render(rows, markdown=True)
    assert "| vllm fp8_block | 1920 |" in text and text.count("\n- ") == moe_compare.WORST


def test_not_physical_ep_points(rows: list[dict]) -> None:
    # Llama 4 Scout, TensorRT-LLM, H200, bf16, EP 8, one token: 479.6 us, where the whole layer on one GPU (TP 1 /
    # EP 1, the same table) takes 85.8 us; a rank holding 2 of the 16 experts cannot be slower than that.
    # 55: 51 before TensorRT-LLM's NVFP4 points were the CUTLASS kernel's; its EP 8 rows at one or two tokens of
    # Mixtral 8x7B (B200, GB200), Llama 4 Scout and Maverick (GB200) take 66-85 us, over 1.1 x the whole layer's
    flagged = [r for r in rows if r["not_physical"]]
    assert len(flagged) == 55 and all(r["ep"] > 1 for r in flagged)
    (r,) = [r for r in rows if (r["engine"], r["gpu"], r["dtype"], r["model"], r["ep"], r["tokens"])
            == ("trtllm", "h200", "bfloat16", "llama-4-scout-17b-16e", 8, 1)]  # fmt: skip
    assert r["not_physical"] and r["aic_s"] == pytest.approx(479.6e-6)


def test_docs_block_is_what_the_script_prints(tables: list[dict], rows: list[dict]) -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cost.md").read_text(encoding="utf-8")
    block = doc.split("<!-- moe_compare:begin -->\n", 1)[1].split("\n<!-- moe_compare:end -->", 1)[0]
    assert block == moe_compare.render(rows, markdown=True, autotuned=moe_compare.autotuned_rows(tables))


def test_busiest_ep_rank_reads_one_whole_expert() -> None:
    # Llama 4 Scout bf16 (16 experts, top-1, 3 x 5120 x 8192 = 125,829,120 weights each), TensorRT-LLM, H200, EP 4,
    # one token: the mean rank touches 4 x 1/16 = 0.25 of an expert, but the rank that gets the token reads it whole.
    # Memory: (125,829,120 x 2 B + 0.25 x (2 x 5120 + 3 x 8192) x 2 B) = 251,675,648 B / (4800e9 x moe_mem_eff 0.95)
    # = 55.19 us; compute 2 x 0.25 x 125,829,120 FLOP at 989e12 x 0.7474 x 0.25 / (0.25 + 57.52) x 8192 / (8192 +
    # 463.8) = 20.78 us; the larger plus moe_layer_s 25.3 us = 80.49 us, the whole layer on one GPU's 80.50 us
    # (aiconfigurator: 87.8 and 85.8 us). Before, kvplan read a quarter of the expert: 39.1 us.
    kw = dict(model="llama-4-scout-17b-16e", dtype="bfloat16", tokens=1)
    ep4 = moe_compare.grouped_seconds("h200", "trtllm", tp=1, ep=4, **kw)
    assert ep4 == pytest.approx(80.49e-6, rel=1e-3)
    assert ep4 == pytest.approx(moe_compare.grouped_seconds("h200", "trtllm", tp=1, ep=1, **kw), rel=1e-3)
    # DeepSeek-V3 EP 8, one token: 8 experts touched over 8 ranks, one each on the mean rank already: unchanged (the
    # walk over its 32 experts, 32 x 0.35 us = 11.2 us, floors the one whole expert's 10.37 us; + 25.3 us; 38.5 us
    # when the expert streamed at 0.695 of the bandwidth)
    ds = moe_compare.grouped_seconds("h200", "trtllm", model="deepseek-v3", dtype="fp8_block", tp=1, ep=8, tokens=1)
    assert ds == pytest.approx(36.5e-6, rel=2e-3)


def test_block_fp8_experts_walk_every_expert_on_the_rank() -> None:
    # TensorRT-LLM, DeepSeek-V3 block-fp8 experts, one token, TP 8: 256 experts on the rank. Hopper: the walk is a
    # floor, 256 x hopper_moe_block_expert_s 0.35 us = 89.6 us over the GEMMs' 39.87 - 25.3 = 14.57 us (priced by
    # DeepGEMM's tiles, test_block_fp8_hopper_tiles_by_hand; 46.22 - 25.3 = 20.92 us on the grouped-GEMM curve
    # before), plus moe_layer_s 25.3 us = 114.9 us on H200 and on H100 alike (aiconfigurator: 114.7 and 114.6 us;
    # 122.58 us with the walk fitted under uniform routing, 0.38 us; kvplan before: 46.2 us, the bytes of 8 thin
    # experts). EP 8 holds 32 experts: 32 x 0.35 = 11.2 us (test_busiest_ep_rank_reads_one_whole_expert). Blackwell:
    # added, 256 x 0.26 us = 66.56 us more than without it (0.30 us under uniform routing).
    kw = dict(model="deepseek-v3", dtype="fp8_block", tokens=1)
    for gpu in ("h200", "h100-sxm"):
        assert moe_compare.grouped_seconds(gpu, "trtllm", tp=8, ep=1, **kw) == pytest.approx(114.9e-6, rel=1e-4)
    off = {"hopper_moe_block_expert_s": 0.0, "blackwell_moe_block_expert_s": 0.0}
    without = moe_compare.grouped_seconds("h200", "trtllm", tp=8, ep=1, overrides=off, **kw)
    assert without == pytest.approx(39.87e-6, rel=1e-3)
    b200 = moe_compare.grouped_seconds("b200", "trtllm", tp=8, ep=1, **kw)
    assert b200 - moe_compare.grouped_seconds("b200", "trtllm", tp=8, ep=1, overrides=off, **kw) == pytest.approx(
        66.56e-6, rel=1e-9
    )
    # per-tensor fp8 and bf16 experts, and vLLM's block fp8, walk nothing: no such term for their kernels
    from kvplan import latency

    assert latency.calibration("vllm").hopper_moe_block_expert_s == 0.0
    for dtype in ("fp8", "bfloat16"):
        point = dict(model="qwen3-235b-a22b", dtype=dtype, tp=8, ep=1, tokens=1)
        walked = {"hopper_moe_block_expert_s": 1e-3}
        plain = moe_compare.grouped_seconds("h200", "trtllm", **point)
        assert plain == moe_compare.grouped_seconds("h200", "trtllm", overrides=walked, **point)


def test_block_fp8_hopper_tiles_by_hand() -> None:
    # TensorRT-LLM's block-fp8 grouped GEMMs on Hopper (grouped_gemm_dispatch): below 32 tokens an expert the tokens
    # are the swapped GEMM's block_n (16, 24, ..., the smallest that holds them, 16 at least), from 32 on whole
    # block_m tiles of 64 (up to 64 tokens) or 128; H20 (78 SMs) swaps below 64.
    from kvplan import latency
    from kvplan.catalog import resolve_model
    from kvplan.hardware import resolve_gpu

    rows = latency._block_tile_rows
    got = [rows(t, swap_below=32) for t in (0.5, 1, 4, 16, 17, 20, 24.5, 31.9, 32, 64, 65, 128, 300)]
    assert got == [16, 16, 16, 16, 24, 24, 32, 32, 64, 64, 128, 128, 384]
    assert rows(40, swap_below=64) == 40  # H20: still swapped, 40 is a block_n
    assert rows(128.0000001, swap_below=32) == 128
    # side kernels per routed row: permute 2 + 2, quantize 2 + 1, finalize read 2 = 9 B a hidden element; SwiGLU
    # 2 x 2 + 2 and quantize 2 + 1 = 9 B an intermediate one (7 without a gate). DeepSeek-V3 TP 8: 9 x 7168 + 9 x 256
    assert latency._block_side_bytes(7168, 256, gated=True) == 66_816
    assert latency._block_side_bytes(7168, 256, gated=False) == 9 * 7168 + 7 * 256
    # DeepSeek-V3 TP 8 on an H200, 128 tokens (the grid's worst TPOT case: a batch of 128 decoding), uniform routing
    # (serving's): touched experts 256 x (1 - (31/32)^128) = 251.60, 1,024 routed rows, 4.07 an expert -> 16-row
    # tiles. Compute 2 x 251.60 x 16 x 5,505,024 FLOP / (1979e12 x 0.4683 x 1.125 x 256 / (256 + 1150)) = 233.47 us;
    # memory (251.60 x 5,505,024 x 1 B + 1,024 x (2 x 7168 + 3 x 256) x 2 B) = 1,416,003,339 B / (4800e9 x 0.94 x 256 /
    # (256 + 120) = 0.64 of it) = 460.94 us, the larger; side kernels 1,024 x 66,816 B / (4800e9 x elementwise_mem_eff
    # 0.7305) = 19.51 us; + moe_layer_s 25.3 us = 505.75 us (469.32 us with the constants fitted under uniform routing:
    # 1.05, 1050 and the weights at 0.95 x 0.7315 of the bandwidth; on the grouped-GEMM curve kvplan took 717.9 us,
    # compute-bound at 0.7474 x 4.07 / (4.07 + 57.52) x 256 / (256 + 463.8) of the peak).
    at = dict(model="deepseek-v3", dtype="fp8_block", tp=8, ep=1)
    assert moe_compare.grouped_seconds("h200", "trtllm", tokens=128, balanced=False, **at) == pytest.approx(
        505.75e-6, rel=1e-4
    )
    curve = {"hopper_moe_block_tile_eff": 0.0}
    assert moe_compare.grouped_seconds("h200", "trtllm", tokens=128, overrides=curve, balanced=False, **at) == (
        pytest.approx(717.9e-6, rel=1e-3)
    )
    # The table's balanced routing (aiconfigurator's collector, aic_tables.balanced_loads) gives all 256 experts 4
    # rows each: memory (256 x 5,505,024 + 1,024 x 15,104 x 2) = 1,440,219,136 B / 3.072e12 = 468.82 us; + 19.51 +
    # 25.3 = 513.63 us (aiconfigurator's table: 532.3 us)
    assert moe_compare.grouped_seconds("h200", "trtllm", tokens=128, **at) == pytest.approx(513.63e-6, rel=1e-4)
    # 4,096 tokens: 128 an expert, one 128-row tile each: 2 x 256 x 128 x 5,505,024 / 189.83e12 = 1,900.47 us
    # (compute-bound) + 32,768 x 66,816 / (4800e9 x 0.7305) = 624.41 us + 25.3 = 2,550.18 us (aiconfigurator 2,551;
    # 2,541.11 us with the tiles at 1.05 and 1050); every expert touched by 128 rows under either routing
    assert moe_compare.grouped_seconds("h200", "trtllm", tokens=4096, **at) == pytest.approx(2550.18e-6, rel=1e-4)
    assert moe_compare.grouped_seconds("h200", "trtllm", tokens=4096, balanced=False, **at) == pytest.approx(
        2550.18e-6, rel=1e-4
    )
    # only where the engine has the fit (TensorRT-LLM), on Hopper, for block-scaled fp8 run as fp8
    spec, h200 = resolve_model("deepseek-v3"), resolve_gpu("h200")
    cases = (("trtllm", h200, "fp8", 32), ("vllm", h200, "fp8", 0), ("trtllm", resolve_gpu("b200"), "fp8", 0),
             ("trtllm", h200, "bf16", 0))  # fmt: skip
    for engine, gpu, dtype, expected in cases:
        assert latency._moe_block_tiles(spec, gpu, latency.calibration(engine), dtype) == expected
    plain = resolve_model("qwen3-235b-a22b")  # its catalog checkpoint has no block scales
    assert latency._moe_block_tiles(plain, h200, latency.calibration("trtllm"), "fp8") == 0


def test_fit_moe_ops_picks_the_calibrated_walk(tables: list[dict]) -> None:
    # benchmarks/fit_moe_ops.py: the calibrated 0.35 us beats 0 and 1 us on the 960 Hopper TensorRT-LLM fp8_block
    # points (priced under the tables' balanced routing; the other constants of its group held at the engine's)
    fit_moe_ops = bench_module("fit_moe_ops")
    r = fit_moe_ops.fit(tables, "hopper_moe_block_expert_s", grid=(0.0, 0.35, 1.0))
    assert r["points"] == 960 and r["value_s"] == pytest.approx(0.35e-6)
    assert r["after"][0] < r["before"][0] and r["after"][1] < r["before"][1]
    # and the MXFP4 dequantization: 62.5 ps a weight per SM beats 0 and 200 ps on the 180 Blackwell w4a16_mxfp4 points
    r = fit_moe_ops.fit(tables, "mxfp4_moe_dequant_s", grid=(0.0, 62.5, 200.0))
    assert r["points"] == 180 and r["value_s"] == pytest.approx(6.25e-11)
    assert r["after"] == pytest.approx((0.093, 0.419), abs=5e-4)  # (0.096, 0.416) at 63 ps under uniform routing
    assert r["before"] == pytest.approx((1.000, 1.413), abs=5e-4)  # (1.021, 1.673) under uniform routing


def test_mxfp4_experts_dequantize_per_token_tile() -> None:
    # TensorRT-LLM W4A16 MXFP4 (gpt-oss-120b: 128 experts, top 4, 3 x 2880 x 2880 = 24,883,200 weights each), B200
    # (148 SMs), TP 1. One token: 4 experts touched, one tile each: 4 x 24,883,200 x mxfp4_moe_dequant_s 6.25e-11 s /
    # 148 = 42.03 us over the GEMMs' 34.96 - 25.3 = 9.66 us, plus moe_layer_s 25.3 us = 67.33 us (aiconfigurator:
    # 73.0 us; 67.67 us at 6.3e-11, fitted under uniform routing; before the term 34.96 us). 4,096 tokens: all 128
    # experts touched, 128 tokens each = 2 tiles of 64: 2 x 128 x 24,883,200 x 6.25e-11 / 148 = 2690.08 us + 25.3 =
    # 2715.38 us (aiconfigurator 2,652 us; 2736.90 at 6.3e-11; before the term 1,004.9).
    # Hopper (TensorRT-LLM's Triton backend), H200 (132 SMs), one token: 4 x 24,883,200 x hopper_mxfp4_moe_dequant_s
    # 3.75e-11 / 132 = 28.28 us over the GEMMs' 43.60 - 25.3 = 18.30 us, plus hopper_mxfp4_moe_layer_s 74 us
    # = 102.28 us (aiconfigurator: 78.7 us; before 43.60 us).
    kw = dict(model="gpt-oss-120b", dtype="w4a16_mxfp4", tp=1, ep=1)
    assert moe_compare.grouped_seconds("b200", "trtllm", tokens=1, **kw) == pytest.approx(67.33e-6, rel=1e-4)
    assert moe_compare.grouped_seconds("b200", "trtllm", tokens=4096, **kw) == pytest.approx(2715.38e-6, rel=1e-5)
    assert moe_compare.grouped_seconds("h200", "trtllm", tokens=1, **kw) == pytest.approx(102.28e-6, rel=1e-4)
    # a second tile per expert past 64 tokens each: 16 tokens a touched expert is one tile, as is 64
    one = moe_compare.grouped_seconds("b200", "trtllm", tokens=2048, **kw)  # 8192 routed: 64 a touched expert
    assert moe_compare.grouped_seconds("b200", "trtllm", tokens=4096, **kw) == pytest.approx(
        2 * (one - 25.3e-6) + 25.3e-6, rel=1e-3
    )
    # vLLM's MXFP4 experts (its own kernels, its tables agree with kvplan: docs/cost.md) have no such term
    off = {"mxfp4_moe_dequant_s": 0.0}
    assert moe_compare.grouped_seconds("b200", "vllm", tokens=1, **kw) == moe_compare.grouped_seconds(
        "b200", "vllm", tokens=1, overrides=off, **kw
    )


def test_untuned_vllm_fp8_hopper_points_are_flagged(rows: list[dict]) -> None:
    # vLLM per-tensor fp8 on H100 / H200 (FlashInfer CUTLASS, timed without vLLM's start-up autotuning): 420 + 420
    # points flagged (UNTUNED), one of them also not physical; nothing else. Mixtral 8x7B TP 1 on H200: 2,162 us at 256
    # tokens and 960 us at 512 (128 rows an expert), a heuristic's tactic switch, not a roofline.
    flagged = [r for r in rows if r["untuned"]]
    assert len(flagged) == 840
    assert {(r["engine"], r["gpu"], r["dtype"]) for r in flagged} == {
        ("vllm", "h100-sxm", "fp8"),
        ("vllm", "h200", "fp8"),
    }
    mixtral = {r["tokens"]: r["aic_s"] for r in flagged
               if (r["gpu"], r["model"], r["tp"], r["ep"]) == ("h200", "mixtral-8x7b", 1, 1)}  # fmt: skip
    assert mixtral[256] == pytest.approx(2162e-6) and mixtral[512] == pytest.approx(959.7e-6)
    # median |ln| of the rest, on r25e's own base: 0.164 (0.168 before TensorRT-LLM's Hopper block-fp8 experts were
    # priced by their tiles, 0.170 before the NVFP4 refit with the Blackwell decode attention held)
    kept = [r for r in rows if not r["not_physical"] and not r["untuned"]]
    # was 0.170; 0.168 before the per-tensor fp8 refit (the router)
    # 14,219 and 0.169: 14,223 and 0.167 before TensorRT-LLM's NVFP4 points were its CUTLASS kernel's (four more EP
    # points not physical, test_not_physical_ep_points); 0.165 with r25e's tiles and 16-bit router merged; 0.168
    # priced under the tables' balanced routing, kvplan's constants as they were fitted under uniform routing; 0.159
    # with TensorRT-LLM's MoE constants refitted under it, 0.166 with vLLM's Hopper MXFP4 experts priced as their
    # Triton tiles, 0.157 with both; 0.154 with TensorRT-LLM's CUTLASS NVFP4 fixed cost (cutlass_nvfp4_moe_layer_s);
    # 0.152 with its NVFP4 constants fitted on the steps and the GEMM tables together; 0.151 refitted after B200's own
    # all-reduce latency (stop 29)
    assert len(kept) == 14219 and moe_compare.stats(kept)["median"] == pytest.approx(0.151, abs=5e-4)


def test_balanced_loads_route_as_the_collector() -> None:
    # aiconfigurator's balanced_logits (collector/helper.py): stride ceil(E / k); token i's j-th expert is
    # (i + j stride) % E from T >= stride on, else (i stride / T + j stride) % E truncated. DeepSeek-V3 (256 experts,
    # top 8, stride 32): 32 tokens touch every expert once, where uniform routing touches 256 (1 - (31/32)^32) = 162.6
    loads = bench_module("aic_tables").balanced_loads
    assert loads(32, 256, 8) == ((1, 256),)
    # 40 tokens: tokens 32-39 land again on residues 0-7 of every group of 32: 8 x 8 experts take two rows
    assert loads(40, 256, 8) == ((1, 192), (2, 64))
    assert sum(t * n for t, n in loads(1000, 128, 4)) == 4000  # every routed row counted once on one GPU
    # EP rank 0 holds experts 0-31 (EP 8): 8 tokens pick 0, 4, ..., 28 there (each token's first choice)
    assert loads(8, 256, 8, 8) == ((1, 8),)
    # SGLang's collector also computes each of those tokens' 7 remote rows on expert 0 (clamped from -1)
    assert loads(8, 256, 8, 8, remote_rows_to_first=True) == ((1, 7), (57, 1))
    # gpt-oss-120b (128 experts, top 4, stride 32), EP 8 (experts 0-15), 3 tokens: first choices 0, 10, 21
    assert loads(3, 128, 4, 8) == ((1, 2),)


def test_moe_loads_default_to_uniform_routing() -> None:
    # kvplan.latency._moe_s with explicit loads equal to uniform routing's mean prices the same layer as without them
    # (serving's path is unchanged); DeepSeek-V3, TensorRT-LLM block fp8 on an H200, TP 8, 128 tokens
    from kvplan import latency
    from kvplan.catalog import resolve_model
    from kvplan.hardware import resolve_gpu

    ctx = latency._make_ctx(resolve_model("deepseek-v3"), resolve_gpu("h200"), tp=8, weights_dtype="fp8",
                            cal=latency.calibration("trtllm"), eager=True)  # fmt: skip
    touched = 256 * (1 - (1 - 8 / 256) ** 128)
    mean = latency._moe_s(ctx, 128, 128, ((1024 / touched, touched),))
    assert mean == latency._moe_s(ctx, 128, 128)
    # the table's routing: all 256 experts, 4 rows each (test_block_fp8_hopper_tiles_by_hand)
    assert latency._moe_s(ctx, 128, 128, ((4, 256),)).grouped == pytest.approx(513.63e-6, rel=1e-4)


def test_sglang_ep_points_compute_the_remote_rows(rows: list[dict]) -> None:
    # SGLang's collector (build_rank0_workloads) keeps every token with a choice on EP rank 0 and sends its remote
    # choices to expert 0 with weight 0: at 16,384 tokens DeepSeek-V3 bf16 EP 8 on H100 computes all 131,072 rows
    # (49,910 us, the whole layer on one GPU 51,380 us). Priced so, kvplan takes 29,171 us, near its own whole layer
    # (31,113 us; ln -0.50 there, SGLang's bf16 kernel past 512 tokens) and no longer 3,919 us (ln -2.544, rank 0
    # priced with its own 16,384 rows)
    (r,) = [r for r in rows if (r["engine"], r["gpu"], r["dtype"], r["model"], r["ep"], r["tokens"])
            == ("sglang", "h100-sxm", "bfloat16", "deepseek-v3", 8, 16384)]  # fmt: skip
    assert r["aic_s"] == pytest.approx(49910e-6) and r["kvplan_s"] == pytest.approx(29171e-6, rel=1e-3)
    whole = moe_compare.grouped_seconds("h100-sxm", "sglang", model="deepseek-v3", dtype="bfloat16", tp=1, ep=1,
                                        tokens=16384)  # fmt: skip
    assert whole == pytest.approx(31113e-6, rel=1e-3)


def test_fit_moe_ops_fits_the_block_fp8_streaming_width_on_thin_slices(tables: list[dict]) -> None:
    # benchmarks/fit_moe_ops.py fits hopper_moe_block_mem_half_width on the 90 Hopper fp8_block points whose experts are
    # at most 512 wide on the rank (DeepSeek-V3 TP 4 / 8, Qwen3-235B-A22B TP 4), the calibrated 120 beating 0 and 600
    # there; hopper_moe_block_mem_eff on all 960, the calibrated 0.94 beating 0.695 (moe_mem_eff x the absorbed fp8
    # share it replaces) and 1.0
    fit_moe_ops = bench_module("fit_moe_ops")
    r = fit_moe_ops.fit(tables, "hopper_moe_block_mem_half_width", grid=(0.0, 120.0, 600.0))
    assert r["points"] == 90 and r["value_s"] == 120.0
    r = fit_moe_ops.fit(tables, "hopper_moe_block_mem_eff", grid=(0.695, 0.94, 1.0))
    assert r["points"] == 960 and r["value_s"] == 0.94
    assert r["after"][0] == pytest.approx(0.043, abs=5e-4)


def test_table_points_are_the_tp1_points_of_the_dtype(tables: list[dict]) -> None:
    points = moe_compare.table_points(tables)
    assert {("b200", "qwen3-30b-a3b"), ("gb200", "llama-4-scout-17b-16e")} <= set(points)
    scout = points["b200", "llama-4-scout-17b-16e"]
    assert [t for t, _ in scout] == sorted(moe_compare.TOKENS)
    # the sample's B200 Scout NVFP4 point at 8,192 tokens, 982.7 us (docs/cost.md), in ms
    assert dict(scout)[8192] == pytest.approx(0.9827, rel=1e-3)


def test_published_reading_swaps_only_the_tabled_layers(tables: list[dict]) -> None:
    """With a table for the row's model and GPU the grouped experts come from it; a row whose model has no table in
    the points (an empty set) scores as it is scored."""
    pc = bench_module("published_compare")
    rows = moe_compare.published_rows(tables)
    assert len(rows) == 40 and {r["model"] for r in rows} == {"qwen3-30b-a3b", "llama-4-scout-17b-16e"}
    for r in rows:
        assert r["as scored"] == pytest.approx(pc.run_tokens_s(r) / r["published_tok_s"], rel=1e-9)
    scout = next(r for r in rows if (r["model"], r["gpu"], r["isl"], r["osl"]) == ("llama-4-scout-17b-16e", "b200",
                                                                                  2048, 128))  # fmt: skip
    assert scout["table experts"] > scout["as scored"] * 1.1  # prompt chunks: the table's experts are faster
    with moe_compare.experts_from_points({}):
        assert pc.run_tokens_s(scout) / scout["published_tok_s"] == pytest.approx(scout["as scored"], rel=1e-9)


def test_published_block_is_what_the_script_prints(tables: list[dict]) -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cost.md").read_text(encoding="utf-8")
    block = doc.split("<!-- moe_compare_published:begin -->\n```\n", 1)[1].split("\n```\n<!-- moe_compare_published"
                                                                             ":end -->", 1)[0]  # fmt: skip
    assert block == "\n".join(moe_compare.published_lines(moe_compare.published_rows(tables)))


def test_b200_gb200_pairs_timed_apart_are_flagged(rows: list[dict]) -> None:
    """A point timed on B200 and GB200 further apart than PAIR_BOUNDS flags both rows; no other row is flagged.
    Scout's B200 NVFP4 series at TP 1 is 2x GB200's (0.4-0.6 at 1-512 tokens: 451.9 against 216.7 us at 256 tokens);
    Qwen3-30B-A3B's is not (0.97 at 256 tokens)."""
    flagged = [r for r in rows if r["pair_off"]]
    assert len(flagged) == 2 * 268 and {r["gpu"] for r in flagged} == set(moe_compare.PAIR)

    def at(gpu: str, model: str) -> dict:
        return next(r for r in rows if (r["engine"], r["gpu"], r["dtype"], r["model"], r["tp"], r["ep"], r["tokens"])
                    == ("trtllm", gpu, "nvfp4", model, 1, 1, 256))  # fmt: skip

    scout = [at(gpu, "llama-4-scout-17b-16e") for gpu in moe_compare.PAIR]
    assert all(r["pair_off"] for r in scout) and scout[1]["aic_s"] / scout[0]["aic_s"] < moe_compare.PAIR_BOUNDS[0]
    qwen = [at(gpu, "qwen3-30b-a3b") for gpu in moe_compare.PAIR]
    assert not any(r["pair_off"] for r in qwen)
    line = moe_compare.pair_line(rows)
    assert ": 268 of 3846 (trtllm nvfp4 188," in line and "every point without them: 14577," in line

"""NVIDIA's MLPerf v5.1 DeepSeek-R1 runs are scored with the attention-DP balancer as their configs set it.

Both per-system files (ykamiset/inference_results_v5.1 @e9ccad4d, closed/NVIDIA/configs/B200-SXM-180GBx8/
{Offline,Server}/deepseek-r1.py) set ``adp_balancing_enable`` True with their own iteration counts (Offline:
batching wait 10, timeout 500; Server: 3 and 9), which NVIDIA's harness writes into TensorRT-LLM's
``attention_dp_config`` (closed/NVIDIA/code/llmlib/config.py ``TrtllmExtraYAMLConfig._generate_extra_config_yaml``).
benchmarks/published_compare.py reads them from each row's ``attention_dp_config`` (``mlperf_balance``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmods import published

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
CONFIG_AT = "ykamiset/inference_results_v5.1/blob/e9ccad4d681ac32678230a488cd690ef6c8b21fa/closed/NVIDIA/configs/"


def test_the_r1_rows_carry_their_configs_balancer_and_nothing_else_does():
    """Offline (timeout 500, batching wait 10) and Server (9, 3), each citing its own file; the setup turns TensorRT-
    LLM's balance on with exactly those counts. No other MLPerf row sets the balancer."""
    pub, data = published()
    want = {"Offline": (500, 10), "Server": (9, 3)}
    seen = {}
    for r in data["mlperf"]:
        cfg = r.get("attention_dp_config")
        if r["model"] != "deepseek-v3":
            assert cfg is None and pub.mlperf_balance(r) == {}
            continue
        assert cfg["enable_balance"] is True
        assert f"{CONFIG_AT}B200-SXM-180GBx8/{r['scenario']}/deepseek-r1.py" in cfg["source"]
        assert "closed/NVIDIA/code/llmlib/config.py" in cfg["source"]
        iters = (cfg["timeout_iters"], cfg["batching_wait_iters"])
        assert f'"adp_balancing_timeout_iters": {iters[0]}' in cfg["source"]
        s = pub._mlperf_setup(r)
        assert s.settings.attention_dp_balance and s.engine.dp_balance_iters(s.settings) == iters
        seen[r["scenario"]] = iters
    assert seen == want


def test_the_balancer_moves_the_r1_scores_as_stored():
    """Before / after, the figures published_compare.py prints (docs/cost.md): balancer off (TensorRT-LLM's default,
    the rows' scoring before) Offline x1.11, Server x1.56; as configured x1.28 and x2.08 (x1.12, x1.60, x1.29, x2.10
    before the NVFP4 constants were refitted with the Blackwell GQA decode attention held). The balancer aligns the
    ranks' prefills into the same steps, so fewer steps carry a prompt and both figures rise. (Before TensorRT-LLM's
    Blackwell MLA decode constant, 13.57 us where mla_layer_s 26.68 us applied: off 1.1118 / 1.5693, as configured
    1.2838 / 2.086; the cheaper MLA layer shortens every B200 decode step, so kvplan's throughput rises.)

    Since the sequences in flight take the set's output spread (cv 1.1139, ``mlperf_output``: the batch holds long
    outputs in proportion to their length, kvplan.serving._in_flight_output) and the rows NVIDIA's MAX_UTILIZATION
    (``capacity_scheduler_policy``), off 1.1118 / 1.5607 -> 0.9841 / 1.4148 and as configured 1.2788 / 2.0756 ->
    1.1118 / 1.5626 (on main's NVFP4 constants refitted with the Blackwell GQA decode attention; 1.1216 / 1.5977 and
    1.2936 / 2.102 before it): a rank's mean context 2,553 -> 4,723 tokens (804 + 3,498 x (1 + 1.1139^2) / 2,
    floored)."""
    pub, data = published()
    ds = data["mlperf_datasets"]
    rows = {r["scenario"]: r for r in data["mlperf"] if r["model"] == "deepseek-v3"}
    off = {k: pub.score_mlperf(pub._without_balance(r), ds)["ratio"] for k, r in rows.items()}
    # Server 1.4148 -> 1.3887, Offline 0.9841 -> 0.9743 and as configured 1.1118 / 1.5626 -> 1.0873 / 1.5161 with the
    # CUTLASS path's own NVFP4 fixed cost a layer (cutlass_nvfp4_moe_layer_s); as configured Server 1.5161 -> 1.5764
    # with the least fixed point (stop 28, kvplan.serving._solve: at 8.2 req/s the step has roots at 66.5 and 81.7 ms)
    assert off == pytest.approx({"Offline": 0.9743, "Server": 1.3887}, abs=0.02)
    # Server 1.5764 -> 1.5371 with a balancer release carrying its cycle's prompts (stop 30, _released_parts)
    assert {k: r["ratio"] for k, r in rows.items()} == pytest.approx({"Offline": 1.0873, "Server": 1.5371}, abs=0.02)


def test_the_server_holds_at_the_published_rate_are_the_timeout_clock():
    """At the published 18,592.2 / 3,497.6 = 5.32 req/s kvplan's step is about 38 ms, so 0.2 prompts arrive per
    iteration over 8 ranks: a prompt on every rank within 9 iterations is rare, and the release comes on the timeout
    clock (timeout_iters 9). A prompt arriving in iteration i = 1..9 of the cycle waits 9 - i: by hand 0..8, mean
    (9 - 1) / 2 = 4.0 iterations, p99 8 (kvplan.dp_balance). Both limits are met there with room (p99 TPOT 41.5 ms of
    80; 42.1 ms before the p99 was the requests' own, kvplan.tpot_tail, 38.7 ms before the in-flight outputs took the
    set's spread). At kvplan's scored rate (8.30 req/s) the fixed point is just past a CUDA-graph size: 286 sequences
    a rank run padded to 384 at a 78.8 ms step, the requests' own p99 TPOT 80.0 ms, on the limit (a life of 3,498
    steps averages its arrivals out: 1.5 % over the mean); 2 % less rate stays below 256 a rank (a 62.8 ms step) and 2 %
    more is over the limit. (Before the requests' own p99 the count of others' p99 crossed 256 first: 230 a rank at
    65.9 ms bound, 8.28 req/s.) Since TensorRT-LLM's NVFP4 experts pay the CUTLASS path's own fixed cost a layer
    (cutlass_nvfp4_moe_layer_s 40.5 us, 1.94 ms more a step) the scored rate is 8.06 req/s: 230 sequences a rank at a
    65.4 ms step, p99 TPOT 66.5 ms, within the limit; 2 % more crosses 256 (292 a rank padded to 384, 82.5 ms: over).
    Since the steady state is the least fixed point (stop 28, kvplan.serving._solve: at 8.2 req/s the step has a root
    below 256 a rank and one padded past it, and regula falsi took the second) the scored rate is 8.38 req/s: 244
    sequences a rank at a 66.7 ms step, p99 TPOT 67.9 ms; 2 % less 237 a rank (67.2 ms), 2 % more 310 a rank (84.3 ms:
    over). Since the CUDA-graph size 256 is a stair in the tail (stop 29, kvplan.serving._graph_jumps: the secant over
    n +- 2 sqrt(n) had not reached 2,048 yet, so the tail saw none of its rise) the scored rate is 8.42 req/s: 246 a
    rank at a 66.8 ms step, the p99 74.6 ms (its lives' share of steps past 256), within the limit; 2 % less 238 a rank
    (67.4 ms), 2 % more 313 a rank (84.7 ms: over): the search stops where the mean's root passes 256. Since stop 29's
    NVFP4 refit (fit_fp4.py after B200's own all-reduce latency; this attention-DP step has no all-reduce) the experts
    run 0.45 % faster (fp4_moe_eff_scale 0.2464 -> 0.2475, 25.99 -> 25.89 ms a step) and the scored rate is 8.43 req/s:
    245.6 a rank (245.9) at a 66.63 ms step (66.77), the p99 74.0 ms (74.6): the size 256 is 83.3 sequences of the
    replica above the mean batch (81.1), so the p99 life's share of steps past it falls 0.549 -> 0.514 of its 11.05 ms
    jump (the stair 6.66 -> 6.22 ms), the step 0.15 ms. Since a balancer's release carries the prompts of its cycle
    (stop 30, kvplan.serving._released_parts: fewer, heavier prefill steps than one prompt a rank in a share A / 8 of
    them) the scored rate is 8.17 req/s: 245.7 a rank at a 68.8 ms step, p99 76.6 ms; 2 % less 238 a rank (68.1 ms),
    2 % more 309 a rank (84.8 ms: over)."""
    pub, data = published()
    ds = data["mlperf_datasets"]
    r = next(x for x in data["mlperf"] if x["model"] == "deepseek-v3" and x["scenario"] == "Server")
    at = pub._server_point(r, ds, r["published_tok_s"] / r["osl"])
    assert at["hold_mean"] == pytest.approx(4.0, abs=0.02) and at["hold_p99"] == 8
    # 0.55 of the TPOT limit until stop 30: a release of the balancer now carries the prompts of its cycle
    # (kvplan.serving._released_parts): 43.9 -> 46.2 ms, 100 -> 106 sequences a rank
    assert at["ttft_p99_s"] < r["ttft_p99_s"] / 2 and at["tpot_p99_s"] < 0.6 * r["tpot_p99_s"]
    top = pub._server_point(r, ds, r["kvplan_tok_s"] / round(r["osl"]))
    assert top["tpot_p99_s"] <= r["tpot_p99_s"] and top["ttft_p99_s"] < r["ttft_p99_s"] and top["rank_seqs"] < 256
    # 0.0746 before stop 29's NVFP4 refit, 0.0740 before stop 30's releases (docstring)
    assert top["tpot_p99_s"] == pytest.approx(0.0766, abs=0.0005)
    assert top["tpot_p99_s"] / top["step_s"] == pytest.approx(1.111, abs=0.005)  # 1.118 before it
    below = pub._server_point(r, ds, 0.98 * r["kvplan_tok_s"] / round(r["osl"]))
    # 0.85 of the limit until stop 30 (67.4 ms then, 69.3 ms with a release carrying its cycle's prompts)
    assert below["rank_seqs"] < 256 and below["tpot_p99_s"] < 0.9 * r["tpot_p99_s"]
    past = pub._server_point(r, ds, 1.02 * r["kvplan_tok_s"] / round(r["osl"]))
    assert past["tpot_p99_s"] > r["tpot_p99_s"] and past["rank_seqs"] > 256


def test_docs_cost_md_carries_the_balance_block_as_the_script_prints_it():
    """docs/cost.md's ``--mlperf-balance`` block is the script's output: the balancer off (x1.12, x1.60), as configured
    (x1.28, x2.08), at TensorRT-LLM's default counts (x1.28, x1.15: the p99 hold binds the Server TTFT), the Server
    limits with the holds, and the Offline step residual (+26.6 ms; +27.7 ms before the NVFP4 refit that followed the
    Blackwell GQA decode attention, +27.1 ms before TensorRT-LLM's Blackwell MLA decode constant) tried on both rows.
    Since the in-flight
    outputs take the set's spread and the rows MAX_UTILIZATION: off x0.98 / x1.41, as configured x1.11 / x1.56, the
    default counts x1.11 / x0.84, and the residual +12.3 ms at a 109.7 ms step (longer contexts in the batch; main's
    +26.6 ms at 95.5 ms before). Since the MoE router is priced 16-bit and the NVFP4 constants refitted on that
    (kvplan.latency._router_ctx; r25e): +11.8 ms at a 110.0 ms step, the ratios unchanged. Since stop 25 the
    balancer-off reading's independent ranks have their arrivals land together (kvplan.serving._landed_together):
    off x0.98 / x1.41 -> x0.99 / x1.42. Since TensorRT-LLM's NVFP4 experts pay the CUTLASS path's own fixed cost a
    layer (cutlass_nvfp4_moe_layer_s): +9.8 ms at a 111.9 ms step, held: Offline x1.00, Server x1.34. Since stop 29
    the Server row's proxy log (the GB200-NVL72 x72 run of the same config, proxy_log_lines) is a sixth line. Since
    stop 29's B200 all-reduce latency (the dense layers' reduces) and the NVFP4 refit after it: +10.3 ms."""
    pub, data = published()
    lines = pub.mlperf_balance_lines(data["mlperf"], data["mlperf_datasets"])
    assert len(lines) == 6 and "residual +10.3 ms" in lines[-1] and lines[4].startswith("  proxy GB200-NVL72")
    doc = (BENCH.parent / "docs" / "cost.md").read_text(encoding="utf-8")
    for line in lines:
        assert line in doc


def test_proxy_log_point_by_hand():
    """The GB200-NVL72 x72 DeepSeek-R1 Server log on the B200 Server row (``proxy_logs``: nine replicas of the B200
    file's TP8 config): 44.76 samples/s over 9 replicas = 4.9733 req/s; 167,578.06 / 44.76 = 3,743.9 tokens a sample;
    Little's law: 4.9733 x (216.2090 - 0.6587) = 1,072.0 decoding, 134.0 a rank of 8; a request's life-mean TPOT
    215.5503 / 3,742.9 = 57.59 ms; the p99s at 1.246 / 2 = 62 % and 64.45 / 80 = 81 % of the limits (neither binds).
    Only the Server row carries one, and only as a diagnostic (its score does not read it)."""
    pub, data = published()
    rows = [r for r in data["mlperf"] if r.get("proxy_logs")]
    assert [(r["model"], r["gpu"], r["scenario"]) for r in rows] == [("deepseek-v3", "b200", "Server")]
    r = rows[0]
    pt = pub.proxy_log_point(r, r["proxy_logs"][0])
    assert pt["rate"] == pytest.approx(4.97333, rel=1e-5) and pt["tokens"] == pytest.approx(3743.92, rel=1e-5)
    assert pt["rank_decoding"] == pytest.approx(134.0, rel=1e-3)
    assert pt["tpot_life_s"] == pytest.approx(0.057589, rel=1e-4)
    assert round(pt["ttft_share"], 3) == 0.623 and round(pt["tpot_share"], 3) == 0.806
    without = {k: v for k, v in r.items() if k != "proxy_logs"}
    assert pub.score_mlperf(without, data["mlperf_datasets"]) == pub.score_mlperf(r, data["mlperf_datasets"])

"""TensorRT-LLM v0.17 (TensorRT engines) as a release users select: ``--engine trtllm@0.17``.

The rules and their sources are on ``kvplan.engines.trtllm.V0_17`` (the comment block above it): 64-token blocks
(PluginConfig ``_tokens_per_block`` @258c7540), fp8 weights streamed at the 16-bit share under the static fp8
activation scale (``FP8Linear.forward`` @258c7540), the executor's batch-size tuning behind ``--batch-size-tuning``
(DynamicBatchConfig, off by default), and refusals where the TensorRT-engine runtime was not read. Numbers are worked
out by hand in the comments.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from kvplan.capacity import capacity, setup
from kvplan.catalog import load_bundled
from kvplan.engines import ENGINES, RELEASES, Settings, get_engine, selected_name, trtllm
from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu
from kvplan.latency import calibration, gemm_seconds
from kvplan.serving import Lengths, serve
from tests.benchmods import bench_module

H100, B200 = resolve_gpu("h100-sxm"), resolve_gpu("b200")


def _setup(engine: str, model: str = "llama-3.1-8b", gpu=H100, **kw):  # noqa: ANN001
    return setup(load_bundled(model), gpu, engine=engine, **kw)


# ---- selection --------------------------------------------------------------------------------------------


def test_trtllm_at_0_17_is_an_older_release_and_plain_trtllm_the_newest():
    # oldest first; was ["0.17", "0.20"] before trtllm@1.3 (tests/test_trtllm_v13.py) was added as the newest
    assert list(RELEASES["trtllm"]) == ["0.17", "0.20", "1.3"]
    old = get_engine("trtllm@0.17")
    assert old is RELEASES["trtllm"]["0.17"] is trtllm.V0_17 and old.key == "trtllm@0.17"
    assert get_engine("TensorRT-LLM@0.17") is old  # the engine name's spellings hold for a release too
    assert get_engine("trtllm") is ENGINES["trtllm"] is trtllm.ENGINE
    assert (selected_name(old), selected_name(get_engine("trtllm"))) == ("trtllm@0.17", "trtllm")


def test_unknown_trtllm_release_is_refused_with_the_known_ones(cli):
    with pytest.raises(InvalidInput, match=r"unknown trtllm version '0.18'; kvplan knows 0.17, 0.20, 1.3"):
        get_engine("trtllm@0.18")
    for args in (["capacity", "llama-3.1-8b", "--gpu", "h100-sxm", "-c", "8k"],
                 ["cost", "llama-3.1-8b", "--gpu", "h100-sxm", "-c", "2k"],
                 ["plan", "llama-3.1-8b", "--users", "8", "-c", "8k", "--gpus", "h100-sxm"],
                 ["plan", "llama-3.1-8b", "--rate", "1", "--gpus", "h100-sxm"]):  # fmt: skip
        out = cli(*args, "--engine", "trtllm@0.18")
        assert out.exit_code == 2, (args, out.output)
        # the list gained 1.3 (was "kvplan knows 0.17, 0.20")
        assert "unknown trtllm version '0.18'; kvplan knows 0.17, 0.20, 1.3" in out.output
        assert "Traceback" not in out.output


def test_each_command_selects_the_release(cli):
    cap = cli("capacity", "llama-3.1-8b", "--gpu", "h100-sxm", "-c", "8k", "--engine", "trtllm@0.17", "-f", "json")
    assert cap.exit_code == 0, cap.output
    doc = json.loads(cap.output)
    assert (doc["engine"], doc["engine_release"], doc["block_tokens"]) == ("trtllm", "0.17", 64)
    cost = cli("cost", "llama-3.1-70b", "--gpu", "h100-sxm", "-c", "2k", "--weights-dtype", "fp8",
               "--engine", "trtllm@0.17")  # fmt: skip
    assert cost.exit_code == 0 and "fp8 weights streamed at the 16-bit share (v0.17" in cost.output
    users = cli("plan", "llama-3.1-8b", "--users", "8", "-c", "8k", "--gpus", "h100-sxm", "--engine", "trtllm@0.17",
                "-f", "json")  # fmt: skip
    assert users.exit_code == 0, users.output
    assert {p["engine"] for p in json.loads(users.output)["plans"]} == {"trtllm@0.17"}
    rate = cli("plan", "llama-3.1-8b", "--rate", "2", "--gpus", "h100-sxm", "--engine", "trtllm@0.17", "--top", "2")
    assert rate.exit_code == 0, rate.output
    # what `plan --rate` says its efficiencies describe: the release and its constants
    assert ("latency from kvplan.latency with trtllm@0.17: TensorRT-LLM 1.3.0rc20 (Hopper grouped experts: 1.0.0rc3), "
            "fp8 weights streamed at the 16-bit share (v0.17 TensorRT engines' static fp8) kernel efficiencies"
            ) in rate.output  # fmt: skip


# ---- latency: the static fp8 share (golden) ------------------------------------------------------------------


def test_static_fp8_streams_fp8_weights_at_the_16_bit_share_golden():
    """One 8192 x 8192 fp8 GEMM at M = 1 on an H100 (3,350 GB/s), memory-bound, CUDA graph kernel 2.724 us:
    bytes = 8192 x 8192 x 1 (fp8 weights) + 1 x (8192 + 8192) x 2 (16-bit activations) = 67,141,632.
    v0.17 (static fp8, fp8_mem_eff_scale 1.0): 67,141,632 / (3350e9 x 0.7241) = 27.6788 us + 2.724 = 30.403 us;
    the newest release (dynamic fp8: 0.9849 of the share plus its activations' quantization, 8.127 us + the 16-bit
    input, 8192 x 2 B / (3350e9 x 0.239) = 0.0205 us): 67,141,632 / (3350e9 x 0.7241 x 0.9849) = 28.1032 us + 2.724
    + 8.1475 = 38.975 us (40.563 us with 0.7315 of the share and no quantization kernel, before stop 24). bf16 weights
    stream at the 16-bit share in both: the same time."""
    new, old = calibration("trtllm"), calibration("trtllm@0.17")
    # fp8 streaming at the 16-bit share, no quantization kernel and the fp8 compute scale its rows were scored with
    # (kvplan.engines.trtllm.V0_17_FP8_EFF_SCALE); the PyTorch backend's per-op MoE terms are off (the MoE plugin has
    # none of those kernels: test_v0_17_moe_plugin_has_no_per_expert_terms); on Hopper the grouped experts take
    # trtllm@0.20's 1.0.0rc3 curve, the fp8 share restated at 0.8318 (tests/test_moe_release.py)
    moe_off = dict(hopper_moe_block_expert_s=0.0, blackwell_moe_block_expert_s=0.0, hopper_moe_block_tile_eff=0.0,
                   hopper_moe_block_half_width=0.0, hopper_moe_block_mem_eff=None,
                   hopper_moe_block_mem_half_width=0.0, mxfp4_moe_dequant_s=0.0,
                   hopper_mxfp4_moe_dequant_s=0.0, hopper_mxfp4_moe_layer_s=None,
                   cutlass_nvfp4_moe_layer_s=None)  # fmt: skip
    fp8_static = dict(fp8_mem_eff_scale=1.0, fp8_quant_s=0.0, blackwell_fp8_quant_s=0.0, fp8_eff_scale=0.8318,
                      fp8_absorbed_mem_eff_scale=None)  # fmt: skip
    older_experts = dict(hopper_moe_peak_eff=0.6, hopper_moe_fp8_peak_eff=0.56 * (0.9492 / 0.8318),
                         hopper_moe_half_tokens=50.0)  # fmt: skip
    assert old == replace(new, version=old.version, **fp8_static, **moe_off, **older_experts)
    assert (new.gemm_mem_eff, new.fp8_mem_eff_scale, new.graph_kernel_s) == (0.7241, 0.9849, 2.724e-06)
    assert (new.fp8_quant_s, new.fp8_quant_read_eff) == (8.127e-06, 0.239)
    moved = 8192 * 8192 * 1 + (8192 + 8192) * 2
    assert moved == 67_141_632
    t_old = gemm_seconds(H100, old, m=1, n=8192, k=8192, weights_dtype="fp8", eager=False)
    t_new = gemm_seconds(H100, new, m=1, n=8192, k=8192, weights_dtype="fp8", eager=False)
    assert t_old == pytest.approx(moved / (3350e9 * 0.7241) + 2.724e-6, rel=1e-12) == pytest.approx(30.403e-6, 1e-4)
    quantize = 8.127e-6 + 8192 * 2 / (3350e9 * 0.239)
    assert t_new == pytest.approx(moved / (3350e9 * 0.7241 * 0.9849) + 2.724e-6 + quantize, rel=1e-12)
    assert t_new == pytest.approx(38.975e-6, rel=1e-4)
    bf16 = [gemm_seconds(H100, c, m=1, n=8192, k=8192, weights_dtype="bf16", eager=False) for c in (old, new)]
    assert bf16[0] == bf16[1]


def test_cost_decode_differs_for_fp8_weights_only():
    """Llama 3.1 70B decode at 2k on one H100 (the command as run): fp8 weights take 0.0345 s a step with the newest
    release's constants, 0.0314 s with v0.17's (0.0418 and 0.0313 before the newest release priced its dynamic fp8
    quantization per GEMM and streamed fp8 weights at the refitted share); bf16 weights on two GPUs take the same
    time under both."""
    from kvplan.cost import cost

    spec = load_bundled("llama-3.1-70b")
    engines = ("trtllm", "trtllm@0.17")
    fp8 = {e: cost(spec, H100, [2048], weights_dtype="fp8", engine=e)[0].decode.time_s for e in engines}
    assert fp8["trtllm@0.17"] < 0.95 * fp8["trtllm"]
    assert fp8["trtllm"] == pytest.approx(0.0345, abs=5e-4) and fp8["trtllm@0.17"] == pytest.approx(0.0314, abs=5e-4)
    bf16 = {e: cost(spec, H100, [2048], tp=2, engine=e)[0].decode.time_s for e in engines}
    assert bf16["trtllm"] == bf16["trtllm@0.17"]


def test_v0_17_moe_plugin_has_no_per_expert_terms():
    """DeepSeek-V3's block-fp8 experts, TP 8 on an H200 (4,800 GB/s, fp8 1,979 TFLOPS), one token: v0.17's
    MixtureOfExperts plugin (CutlassMoeFCRunner) has no DeepGEMM walk over the 256 local experts, the newest release's
    CutlassFusedMoE does (hopper_moe_block_expert_s 0.35 us, a floor under the GEMMs; and its GEMMs priced by
    DeepGEMM's tiles, under the floor here). v0.17 prices them on the grouped-GEMM curve, on Hopper the 1.0.0rc3 one
    (fp8 share 0.56 x 0.9492 / 0.8318 = 0.63903, half tokens 50).
    Touched experts 256 x (1 - (1 - 8/256)^1) = 8, each 3 x 7168 x 256 = 5,505,024 fp8 weights on the rank.
    Compute: eff = 0.63903 x 1/(1 + 50) x 256/(256 + 463.8) = 0.0044567; peak 1979e12 x 0.4683 = 926.77e12;
    2 x 8 x 5,505,024 / (926.77e12 x 0.0044567) = 21.327 us (20.924 us on the 1.3 curve, 0.7474 and 57.52).
    Memory: 8 x 5,505,024 x 1 B + 8 x (2 x 7168 + 3 x 256) x 2 B = 44,281,856 B / (4800e9 x 0.95 x 1.0 (v0.17's static
    fp8 streams at the 16-bit share)) = 9.711 us.
    v0.17: 21.327 + 25.3 (moe_layer_s) = 46.63 us; the newest: max(its tiles' 14.57, 256 x 0.35 = 89.6) + 25.3 =
    114.9 us (122.58 with the walk fitted under uniform routing, 0.38 us).
    gpt-oss-120b's MXFP4 experts on an H200 lose the Triton backend's 74 us layer and dequantization: 25.3 us fixed."""
    from kvplan import latency

    spec, h200 = load_bundled("deepseek-v3"), resolve_gpu("h200")

    def grouped(engine: str, model=spec, dtype: str = "fp8") -> float:  # noqa: ANN001
        c = latency._make_ctx(model, h200, tp=8, weights_dtype=dtype, cal=calibration(engine), eager=False)
        return latency._moe_s(c, 1, 1).grouped

    eff = 0.56 * 0.9492 / 0.8318 * 1 / (1 + 50) * 256 / (256 + 463.8)
    compute = 2 * 8 * 5_505_024 / (1979e12 * 0.4683 * eff)
    assert compute == pytest.approx(21.327e-6, rel=1e-4)
    assert compute > 44_281_856 / (4800e9 * 0.95)  # compute-bound
    assert grouped("trtllm@0.17") == pytest.approx(compute + 25.3e-6, rel=1e-9) == pytest.approx(46.63e-6, rel=1e-4)
    assert grouped("trtllm") == pytest.approx(256 * 0.35e-6 + 25.3e-6, rel=1e-9) == pytest.approx(114.9e-6, rel=1e-6)
    oss = load_bundled("gpt-oss-120b")
    c = latency._make_ctx(oss, h200, tp=8, weights_dtype="mxfp4", cal=calibration("trtllm@0.17"), eager=False)
    assert (c.moe_dequant_s, c.moe_layer_s, c.moe_expert_s) == (0.0, None, 0.0)  # moe_layer_s None: 25.3 us applies
    assert grouped("trtllm", oss, "mxfp4") > grouped("trtllm@0.17", oss, "mxfp4") + 40e-6  # the 74 us Triton layer


# ---- memory rules: where v0.17 and the newest release differ ------------------------------------------------


def test_blocks_of_64_tokens_where_the_newest_release_takes_32():
    """PluginConfig._tokens_per_block 64 (plugin.py @258c7540) against KvCacheConfig's 32 (1.x). Llama 3.1 8B, fp8
    KV and weights, fraction 0.95 on one H100 (the v0.17 table's 1000/1000 row): 70,860,066,603 B for the pool,
    65,536 B a token (32 layers x 8 heads x 128 x 2 x 1 B): 1,081,238 tokens. 64-token blocks: 16,894 blocks, 32 a
    2,000-token request, 527 requests. The 1.x budget also loses 0.95 x its default decode graphs' pool (128 rows,
    34,658,058 B; captured before the KV estimation, stop 30; a TensorRT engine's KV sizing has none in kvplan):
    70,827,141,448 B, 1,080,736 tokens; 32-token blocks: 33,773 blocks, 63 a request, 536 (33,788 and 536 before)."""
    kw = dict(weights_dtype="fp8", kv_dtype_name="fp8", settings=Settings(free_gpu_memory_fraction=0.95))
    old, new = _setup("trtllm@0.17", **kw).stages[0], _setup("trtllm", **kw).stages[0]
    assert old.budget.available_kv == 70_860_066_603
    assert new.budget.available_kv == 70_827_141_448 == 70_860_066_603 - 32_925_155  # 0.95 x 34,658,058 B
    assert new.budget.cuda_graph == 34_658_058 and new.budget.cuda_graph_in_budget and old.budget.cuda_graph == 0
    assert 70_860_066_603 // 65_536 == 1_081_238
    assert (old.layout.block_tokens, new.layout.block_tokens) == (64, 32)
    assert old.max_sequences(length=2000, prefix=0, engine=get_engine("trtllm@0.17")) == 1_081_238 // 64 // 32 == 527
    assert new.max_sequences(length=2000, prefix=0, engine=get_engine("trtllm")) == 1_080_736 // 32 // 63 == 536
    # a given --block-size holds on both; the v0.17 launch notes say the engine build sets it
    r = capacity(_setup("trtllm@0.17", settings=Settings(block_size=32), kv_dtype_name="fp8"), 8192)
    assert r.block_tokens == 32
    from kvplan.launch import launch_notes

    notes = " ".join(launch_notes(r))
    assert "tokens_per_block: 32" in notes and "kv_cache_quant_algo: FP8" in notes


def test_what_v0_17_refuses_and_the_newest_release_runs():
    with pytest.raises(InvalidInput, match=r"--max-attention-window does not apply to trtllm@0.17"):
        _setup("trtllm@0.17", model="mistral-7b-v0.1", settings=Settings(max_attention_window=(4096,)))
    _setup("trtllm", model="mistral-7b-v0.1", settings=Settings(max_attention_window=(4096,)))
    with pytest.raises(InvalidInput, match=r"'trtllm@0.17': attention data parallelism and expert parallelism"):
        _setup("trtllm@0.17", model="qwen3-30b-a3b", tp=1, dp=2, ep=True)
    with pytest.raises(InvalidInput, match=r"does not store a KV cache in 'nvfp4'"):
        _setup("trtllm@0.17", gpu=B200, kv_dtype_name="nvfp4")
    _setup("trtllm", gpu=B200, kv_dtype_name="nvfp4")
    # the tuner is a v0.17 setting: the newest release and other engines refuse it rather than ignore it
    for engine in ("trtllm", "vllm"):
        with pytest.raises(InvalidInput, match=r"--batch-size-tuning does not apply to engine"):
            _setup(engine, settings=Settings(batch_size_tuning=True))


def test_emit_k8s_needs_an_image_for_v0_17(cli, tmp_path):
    args = ["plan", "llama-3.1-8b", "--users", "8", "-c", "8k", "--gpus", "h100-sxm", "--engine", "trtllm@0.17",
            "--emit", "k8s"]  # fmt: skip
    out = cli(*args)
    assert out.exit_code == 2 and "no published serving image for trtllm@0.17; pass --image" in out.output
    out = cli(*args, "--image", "registry.example/trtllm:0.17")
    assert out.exit_code == 0 and "image: registry.example/trtllm:0.17" in out.output
    assert "trtllm-serve" in out.output


# ---- runtime batch-size tuning ------------------------------------------------------------------------------


def test_runtime_batch_size_tuning_table():
    """DynamicBatchTuner::getRuntimeBatchSize: the first entry of {144: 128, 336: 256, 672: 512, 832: 768,
    1280: 1024, 1664: 1536} whose limit exceeds the capacity, past it the capacity rounded down to 512 where within
    128 of that. By hand: 100 -> 128, 300 -> 256, 341 -> 512, 527 -> 512, 700 -> 768, 1663 -> 1536, 1664 -> 1664,
    2100 -> 2048, 2176 -> 2176."""
    cases = {100: 128, 300: 256, 341: 512, 527: 512, 700: 768, 1663: 1536, 1664: 1664, 2100: 2048, 2176: 2176}
    assert {c: trtllm.dynamic_batch_size(c) for c in cases} == cases
    on = get_engine("trtllm@0.17")
    assert on.runtime_batch_size(Settings(batch_size_tuning=True), 527) == 512
    assert on.runtime_batch_size(Settings(), 527) is None  # off by default (DynamicBatchConfig's default)


def test_tuned_batch_caps_the_steady_state():
    """The 8B row above with the tuner on: 527 requests of 1,000 + 1,000 tokens fit, the runtime runs 512
    (serve's max_num_seqs); off, nothing caps the batch below the pool. A given max_num_seqs below the tuned batch
    holds; one above it is lowered to it."""
    kw = dict(weights_dtype="fp8", kv_dtype_name="fp8")
    lengths = dict(input_len=Lengths.of(1000), output_len=Lengths.of(1000))
    tuned = _setup("trtllm@0.17", settings=Settings(free_gpu_memory_fraction=0.95, batch_size_tuning=True), **kw)
    plain = _setup("trtllm@0.17", settings=Settings(free_gpu_memory_fraction=0.95), **kw)
    assert serve(tuned, rate_rps=1.0, **lengths).max_num_seqs == 512
    assert serve(plain, rate_rps=1.0, **lengths).max_num_seqs is None
    low = _setup("trtllm@0.17", settings=Settings(free_gpu_memory_fraction=0.95, batch_size_tuning=True,
                                                  max_num_seqs=300), **kw)  # fmt: skip
    high = _setup("trtllm@0.17", settings=Settings(free_gpu_memory_fraction=0.95, batch_size_tuning=True,
                                                   max_num_seqs=520), **kw)  # fmt: skip
    assert serve(low, rate_rps=1.0, **lengths).max_num_seqs == 300
    assert serve(high, rate_rps=1.0, **lengths).max_num_seqs == 512


def test_plan_rate_batch_size_tuning_flag(cli):
    base = ["plan", "llama-3.1-8b", "--rate", "2", "--gpus", "h100-sxm", "--top", "1"]
    out = cli(*base, "--engine", "trtllm@0.17", "--batch-size-tuning")
    assert out.exit_code == 0 and "DynamicBatchConfig(enable_batch_size_tuning=True)" in out.output
    refused = cli(*base, "--engine", "trtllm", "--batch-size-tuning")
    assert refused.exit_code == 2 and "--batch-size-tuning does not apply to engine 'trtllm'" in refused.output
    users = cli("plan", "llama-3.1-8b", "--users", "8", "-c", "8k", "--engine", "trtllm@0.17", "--batch-size-tuning")
    assert users.exit_code == 2 and "use them with --rate" in users.output


# ---- the published v0.17 rows select the release --------------------------------------------------------------


def test_published_v017_rows_run_the_release():
    pub = bench_module("published_compare")
    data = json.loads(pub.DATA.read_text())
    r = next(r for r in data["runs"] if r["source"] == "trtllm-0.17")
    s = pub.row_setup(r)
    assert s.engine is get_engine("trtllm@0.17") and s.settings.batch_size_tuning
    v1 = next(r for r in data["runs"] if r["source"] == "trtllm-1.0")
    s1 = pub.row_setup(v1)
    # the v1.0 rows keep the release they ran: trtllm@0.20 (was the default "trtllm" before trtllm@1.3 was added)
    assert s1.engine is get_engine("trtllm@0.20") and not s1.settings.batch_size_tuning


def test_sliding_window_attends_the_whole_sequence_on_v0_17():
    """Mistral 7B v0.1 (4,096-token window) at 32K, one decode step, cost's attention FLOPs: the TensorRT engine attends
    to every token (no max_attention_window given: Trtllm.model_as_run), the PyTorch backend over the window.
    Per layer and token 4 x heads x head_dim x span = 4 x 32 x 128 x span; 32 layers: v0.17 span 32,768 ->
    4 x 32 x 128 x 32,768 x 32 = 17,179,869,184; the window 4,096 -> 2,147,483,648 (1/8). The time: 0.20's
    attention also reads the whole context on Mistral (its PyTorch MistralAttention passed no window before
    NVIDIA/TensorRT-LLM PR #12597: Trtllm.attention_spans), so the two steps cost the same (before stop 22 it
    was priced over the window, faster; 1.3, with the PR, is); its FLOPs column stays the checkpoint's (the model's,
    not the kernel's)."""
    from kvplan.cost import cost

    spec = load_bundled("mistral-7b-v0.1")
    old = cost(spec, H100, [32768], engine="trtllm@0.17")[0].decode
    # trtllm@0.20 (was the default "trtllm" before trtllm@1.3, which prices the window: tests/test_trtllm_v13.py)
    new = cost(spec, H100, [32768], engine="trtllm@0.20")[0].decode
    assert old.flops.attention == 4 * 32 * 128 * 32768 * 32 == 17_179_869_184
    assert new.flops.attention == 4 * 32 * 128 * 4096 * 32 == 2_147_483_648
    assert old.time_s == pytest.approx(new.time_s, rel=1e-12)
    assert cost(spec, H100, [32768], engine="trtllm")[0].decode.time_s < new.time_s  # 1.3: the window


def test_plan_rate_refuses_what_was_not_read_for_v0_17(cli):
    base = ["plan", "llama-3.1-8b", "--rate", "2", "--gpus", "h100-sxm", "--engine", "trtllm@0.17", "--top", "1"]
    out = cli(*base, "--disaggregated")
    assert out.exit_code == 2 and "how trtllm@0.17 moves a request from its prefill" in out.output
    out = cli(*base, "--host-per-request", "30us")
    assert out.exit_code == 2 and "trtllm@0.17's was not read" in out.output
    out = cli(*base, "--attention-dp-balance")
    assert out.exit_code == 2 and "--attention-dp-balance does not apply to trtllm@0.17" in out.output


def test_plan_rate_prices_each_release_with_its_own_constants():
    """kvplan.serving now hands the latency paths the release's key (``trtllm@0.17``), not the engine's name, so a
    release's own constants reach ``plan --rate`` as they reach ``cost``. It also moves vLLM 0.8 on Blackwell MLA,
    whose rule set drops the FLASHINFER_MLA constant (tests/test_latency.py, its calibration): DeepSeek-V3 TP8 on
    B200 at 2 req/s of 1000/200, TPOT 9.964 ms with the newest vLLM's constants (9.975 ms before the MoE router was
    priced 16-bit, kvplan.latency._router_ctx), which plan --rate gave vllm@0.8 before, and 16.43 ms with 0.8's own (as
    cost prices it). Since stop 27 the TPOT is the request's own life's mean (kvplan.serving._own_life: the prompts
    queued behind it at its first token, the others by Little's law on its TPOT): 10.152 and 16.58 ms; with B200's own
    all-reduce latency (stop 29: 123 all-reduces a step, 3.2 us more each on vLLM's) 10.686 and 17.10 ms; 10.743 and
    17.17 ms since each vLLM step carries its sampling after the LM head (kvplan.latency.sampling_s: the logits'
    all-gather over the 8 ranks and the fp32 cast and argmax of 129,280 values a row)."""
    lengths = dict(input_len=Lengths.of(1000), output_len=Lengths.of(200), with_max_rate=False, with_p90=False,
                   with_p99=False)  # fmt: skip
    tpot = {e: serve(setup("deepseek-v3", B200, engine=e, tp=8), rate_rps=2.0, **lengths).tpot_mean_s
            for e in ("vllm", "vllm@0.8")}  # fmt: skip
    assert tpot["vllm"] == pytest.approx(0.010743, rel=1e-3) and tpot["vllm@0.8"] == pytest.approx(0.01717, rel=1e-3)

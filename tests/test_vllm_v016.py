"""vLLM 0.16 as a release users select: ``--engine vllm@0.16``.

The rules and their sources are on ``kvplan.engines.vllm.V0_16`` (the comment block above it), read in vLLM 0.16.0's
own files (the PyPI wheel, commit g89a77b108): the 0.19 budget rule (no CUDA-graph estimate: graphs are captured after
the KV cache is sized, gpu_worker.py), 0.9 of the GPU, the same batch defaults, prefix caching off for hybrid models
(one Mamba page per request), async scheduling and the shared-experts stream on; it differs in the KV dtypes it
accepts and in how the MLA block size is picked (vllm/platforms/cuda.py check_and_update_config forces it for the
backend it expects). Numbers are worked out by hand in the comments.
"""

from __future__ import annotations

import json

import pytest

from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.engines import ENGINES, RELEASES, Settings, engine_overlap, get_engine, selected_name, vllm
from kvplan.engines.vllm import mla_choice, release_for
from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu
from kvplan.latency import _mla_decode_layer_s, calibration
from tests.benchmods import bench_module

H100, H200, B200, A100 = (resolve_gpu(g) for g in ("h100-sxm", "h200", "b200", "a100-80gb"))


def _setup(engine: str, model: str = "llama-3.1-8b", gpu=H100, **kw):  # noqa: ANN001
    return setup(load_bundled(model), gpu, engine=engine, **kw)


def _choice(spec, gpu, engine="vllm@0.16", *, kv="bf16", block=None):  # noqa: ANN001
    profile = get_engine(engine)
    spec = load_bundled(spec) if isinstance(spec, str) else spec
    plan = profile.cache_plan(spec, kv_dtype_name=kv, tp=1, pp=1)
    return mla_choice(spec, plan, gpu=gpu, block=block, selection=profile.mla_selection)


def _with_nope(model: str, nope: int):
    """``model`` with every MLA kind's qk_nope_head_dim set to ``nope`` (no catalog model has another than 128)."""
    spec = load_bundled(model)
    kinds = {n: k.model_copy(update={"qk_nope_head_dim": nope}) if k.type == "mla" else k
             for n, k in spec.layers.kinds.items()}  # fmt: skip
    return spec.model_copy(update={"layers": spec.layers.model_copy(update={"kinds": kinds})})


# ---- selection --------------------------------------------------------------------------------------------


def test_vllm_at_0_16_is_selectable_between_0_8_and_0_19():
    assert list(RELEASES["vllm"]) == ["0.8", "0.16", "0.19", "0.21"]  # oldest first
    old = get_engine("vllm@0.16")
    assert old is vllm.V0_16 and old.key == "vllm@0.16" and selected_name(old) == "vllm@0.16"
    assert get_engine("vLLM@0.16") is old
    assert get_engine("vllm") is ENGINES["vllm"] is vllm.V0_21  # the default stays the newest
    with pytest.raises(InvalidInput, match=r"kvplan knows 0.8, 0.16, 0.19, 0.21"):
        get_engine("vllm@0.17")


def test_a_stated_version_maps_to_the_newest_rules_not_newer():
    # release_for: 0.16.x-0.18.x -> the 0.16 rules (0.8's before this release existed); 0.15 still 0.8's.
    assert [release_for(v).release for v in ("0.15", "0.16", "0.18", "0.19", "0.9")] == [
        "0.8", "0.16", "0.16", "0.19", "0.8"]  # fmt: skip
    facts = vllm.parse_log("INFO 03-01 vLLM API server version 0.16.0\nINFO Available KV cache memory: 60.1 GiB")
    assert facts.flags["vllm_version"] == "0.16"
    assert vllm.V0_21.rules_for_log(facts) == (vllm.V0_16, None)


def test_help_lists_every_older_release():
    from kvplan.cli.common import OLDER_RELEASES

    older = [e.key for releases in RELEASES.values() for e in list(releases.values())[:-1]]
    assert OLDER_RELEASES.split(", ") == older
    assert "vllm@0.16" in older


def test_each_command_selects_the_release(cli):
    cap = cli("capacity", "llama-3.1-8b", "--gpu", "h100-sxm", "-c", "8k", "--engine", "vllm@0.16", "-f", "json")
    assert cap.exit_code == 0, cap.output
    assert json.loads(cap.output)["engine_release"] == "0.16"
    cost = cli("cost", "llama-3.1-8b", "--gpu", "h100-sxm", "-c", "2k", "--engine", "vllm@0.16")
    assert cost.exit_code == 0, cost.output
    plan = cli("plan", "llama-3.1-8b", "--rate", "1", "--gpus", "h100-sxm", "--engine", "vllm@0.16")
    assert plan.exit_code == 0, plan.output
    assert "vllm@0.16" in plan.output


# ---- memory -----------------------------------------------------------------------------------------------


def test_budget_is_the_0_19_rule_at_0_9_without_cuda_graphs():
    # gpu_worker.py determine_available_memory (0.16.0): requested_memory - non_kv_cache_memory (weights + profile
    # peak + non-torch); graphs are captured after. Llama-3.1-8B on H100 (test_engine_rules' figures):
    # int(81,090 MiB x 0.90) = 76,526,125,056 - 16,060,522,496 - 2,028,994,560 - 268,435,456 = 58,168,172,544 B.
    b = _setup("vllm@0.16").stages[0].budget
    assert (b.fraction, b.cuda_graph_in_budget) == (0.9, False)
    assert b.available_kv == 58_168_172_544 == _setup("vllm@0.19").stages[0].budget.available_kv


def test_cuda_graph_estimate_flag_is_refused(cli):
    # vllm/envs.py 0.16.0 has no VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS: nothing for the flag to turn on.
    with pytest.raises(InvalidInput, match="--cuda-graph-estimate does not apply to engine 'vllm@0.16'"):
        vllm.V0_16.check_settings(Settings(cuda_graph_estimate=True))
    out = cli("capacity", "llama-3.1-8b", "--gpu", "h100-sxm", "-c", "8k", "-e", "vllm@0.16", "--cuda-graph-estimate")
    assert out.exit_code == 2 and "Traceback" not in out.output


def test_batch_defaults_per_gpu():
    # arg_utils.py get_batch_defaults (0.16.0), OPENAI_API_SERVER: >= 70 GiB and not an A100 -> 8192 / 1024,
    # else 2048 / 256 (PR #17885).
    e = vllm.V0_16
    assert e.batch_limits(Settings(), B200.memory_bytes, B200) == (8192, 1024)
    assert e.batch_limits(Settings(), A100.memory_bytes, A100) == (2048, 256)


def test_kv_dtypes_of_0_16():
    # config/cache.py CacheDType (0.16.0): auto, bfloat16, fp8, fp8_e4m3, fp8_e5m2, fp8_inc, fp8_ds_mla.
    assert vllm.V0_16.kv_dtypes == ("bf16", "fp16", "fp8", "fp8_e4m3", "fp8_e5m2")
    for kv in ("nvfp4", "fp8_per_token_head", "int8_per_token_head"):
        with pytest.raises(InvalidInput, match=f"engine 'vllm@0.16' does not store a KV cache in '{kv}'"):
            _setup("vllm@0.16", gpu=B200, kv_dtype_name=kv)
        _setup("vllm", gpu=B200, kv_dtype_name=kv)  # the newest release stores them


def test_hybrid_models_hold_one_mamba_page():
    # config/model.py is_prefix_caching_supported (0.16.0): False for hybrid models -> mamba_cache_mode "none" ->
    # MambaSpec.max_memory_usage_bytes one page; 0.21 ('align', prefix caching on) two.
    assert _setup("vllm@0.16", "qwen3-next-80b-a3b", tp=4).stages[0].layout.mamba_pages == 1
    assert _setup("vllm", "qwen3-next-80b-a3b", tp=4).stages[0].layout.mamba_pages == 2


# ---- MLA: the forced block size ---------------------------------------------------------------------------


def test_mla_block_forced_for_the_expected_backend():
    # cuda.py check_and_update_config (0.16.0): B200 + qk_nope_head_dim 128 -> FLASHINFER_MLA, 16 -> 64 (32 and
    # multiples of 64 kept); Hopper -> FlashMLA's forcing, 16 -> 64, then the priority list picks FLASH_ATTN_MLA for
    # bf16 (MultipleOf(16) takes 64) and FLASHMLA for fp8 (FLASH_ATTN_MLA takes auto/bfloat16 only).
    assert (_choice("deepseek-v2-lite", B200).backend, _choice("deepseek-v2-lite", B200).block_tokens) == (
        "FLASHINFER_MLA", 64)  # fmt: skip
    assert _choice("deepseek-v2-lite", B200, block=32).block_tokens == 32
    assert _choice("deepseek-v2-lite", B200, block=128).block_tokens == 128
    assert _choice("deepseek-v2-lite", H200) == vllm.MlaChoice("FLASH_ATTN_MLA", 64)
    assert _choice("deepseek-v2-lite", H200, kv="fp8") == vllm.MlaChoice("FLASHMLA", 64)
    assert _choice("deepseek-v2-lite", H200, block=128).block_tokens == 128
    # Another qk_nope_head_dim on B200: CUTLASS_MLA, 128-token blocks.
    assert _choice(_with_nope("deepseek-v2-lite", 64), B200) == vllm.MlaChoice("CUTLASS_MLA", 128)
    # Sparse (DSA): 64 whatever was given ("Forcing kv cache block size to 64 for FlashMLASparse backend").
    assert _choice("deepseek-v3.2-exp", B200, block=128).block_tokens == 64
    # Neither Hopper nor Blackwell: no forcing, 16.
    assert _choice("deepseek-v2-lite", A100) == vllm.MlaChoice("TRITON_MLA", 16)


def test_mla_block_size_per_release_in_the_layout():
    # DeepSeek-V3 TP8 fp8: (B200, H200) blocks 0.16 (64, 64); 0.19 (32, 16); 0.8 (16, 64).
    def blocks(engine: str) -> tuple[int, int]:
        return tuple(_setup(engine, "deepseek-v3", g, tp=8, weights_dtype="fp8").stages[0].layout.block_tokens
                     for g in (B200, H200))  # fmt: skip

    assert (blocks("vllm@0.16"), blocks("vllm@0.19"), blocks("vllm@0.8")) == ((64, 64), (32, 16), (16, 64))
    # A request of 1,040 tokens: cdiv(1,040, 64) = 17 blocks (1,088 token slots) under 0.16, cdiv(1,040, 32) = 33
    # (1,056) under 0.19 on B200.
    lay16 = _setup("vllm@0.16", "deepseek-v3", B200, tp=8, weights_dtype="fp8").stages[0].layout
    lay19 = _setup("vllm@0.19", "deepseek-v3", B200, tp=8, weights_dtype="fp8").stages[0].layout
    assert (lay16.blocks_per_request(1040), lay19.blocks_per_request(1040)) == (17, 33)


# ---- latency ----------------------------------------------------------------------------------------------


def _mla_layer_s(engine: str, spec) -> float:  # noqa: ANN001
    from kvplan.latency import _make_ctx

    spec = load_bundled(spec) if isinstance(spec, str) else spec
    ctx = _make_ctx(spec, B200, tp=8, weights_dtype="fp8", cal=calibration(engine), eager=False)
    return _mla_decode_layer_s(ctx, "bf16")


def test_blackwell_mla_constant_only_where_0_16_runs_flashinfer_mla():
    cal = get_engine("vllm@0.16").calibration
    blackwell, other = cal.blackwell_mla_layer_s, cal.mla_layer_s
    assert (blackwell, other) == (1.323e-05, 8.556e-05)  # the vLLM 0.24.0 fit, shared by every vLLM release
    # DeepSeek-V3 (qk_nope_head_dim 128, dense): FLASHINFER_MLA in 0.16 and 0.19.
    assert _mla_layer_s("vllm@0.16", "deepseek-v3") == blackwell == _mla_layer_s("vllm@0.19", "deepseek-v3")
    # qk_nope_head_dim 64: CUTLASS_MLA in 0.16 (FLASHINFER_MLA only for 128); 0.19's FLASHINFER_MLA takes 64.
    nope64 = _with_nope("deepseek-v3", 64)
    assert (_mla_layer_s("vllm@0.16", nope64), _mla_layer_s("vllm@0.19", nope64)) == (other, blackwell)
    # DeepSeek-V3.2 (sparse): "unless sparse, i.e. DSv3.2" -> not FLASHINFER_MLA in 0.16.
    assert _mla_layer_s("vllm@0.16", "deepseek-v3.2-exp") == other


def test_step_overlap_and_host_loop_of_0_16():
    # envs.py VLLM_SHARED_EXPERTS_STREAM_TOKEN_THRESHOLD 256 and async scheduling on (config/vllm.py) in 0.16.0;
    # 0.8 had neither.
    assert engine_overlap("vllm@0.16").shared_experts_tokens == 256
    assert engine_overlap("vllm@0.8").shared_experts_tokens == 0
    assert get_engine("vllm@0.16").host_loop.overlaps_gpu is True
    assert get_engine("vllm@0.8").host_loop.overlaps_gpu is False


def test_published_vllm_0_16_rows_run_the_0_16_rules():
    pc = bench_module("published_compare")
    rows = [r for r in json.loads(pc.DATA.read_text())["engine_benchmarks"] if r["source"] == "vultr-b200-vllm"]
    assert rows and {(r["engine"], r["engine_version"]) for r in rows} == {("vllm@0.16", "0.16.0")}
    assert pc.engine_row_setup(rows[0]).engine.key == "vllm@0.16"


# ---- hybrid models: the attention block -------------------------------------------------------------------


def _hybrid_block(engine: str, model: str, gpu, *, tp: int, block: int | None = None) -> int:  # noqa: ANN001
    lay = _setup(engine, model, gpu, tp=tp, settings=Settings(block_size=block)).stages[0].layout
    return {g.block_tokens for g in lay.groups if g.type != "recurrent"}.pop()


def test_hybrid_block_is_the_smallest_aligned_one_that_holds_a_mamba_page():
    # models/config.py HybridAttentionMambaModelConfig (0.16.0), mamba_cache_mode "none":
    # kernel_align x cdiv(mamba_page, kernel_align x attn_page_1_token).
    # Qwen3-Next TP4: Mamba page 274,432 B, attention 1,024 B a token (one KV head of 256, K and V, bf16):
    # 16 x cdiv(274,432, 16,384 = 16.75) = 272 on H100; on B200 head size 256 aligns to 32: 32 x cdiv(8.375) = 288.
    assert _hybrid_block("vllm@0.16", "qwen3-next-80b-a3b", H100, tp=4) == 272
    assert _hybrid_block("vllm@0.16", "qwen3-next-80b-a3b", B200, tp=4) == 288
    assert _hybrid_block("vllm@0.19", "qwen3-next-80b-a3b", B200, tp=4) == 272  # 0.19's rule, not re-read: 16
    # Nemotron Nano (head size 128) TP2: its Mamba page is conv 9,216 x 2 B + SSM 262,144 x 4 B (fp32: the config's
    # mamba_ssm_cache_dtype, which NemotronHForCausalLMConfig sets before HybridAttentionMambaModelConfig sizes the
    # page, config/vllm.py try_verify_and_update_config) = 1,067,008 B against 512 B a token: 16 x cdiv(130.25) =
    # 2,096 on both GPUs. (Was 1,072 from a bf16 SSM state's 542,720 B, before kvplan read the field.)
    assert _hybrid_block("vllm@0.16", "nemotron-3-nano-30b-a3b", B200, tp=2) == 2096


def test_hybrid_block_keeps_a_block_size_that_already_holds_the_page():
    # "if cache_config.block_size is None or cache_config.block_size < attn_block_size": --block-size 64 is below
    # Nemotron Nano's 2,096 -> 2,096 (kvplan's rule for 0.19 grows multiples of 64: 64 x cdiv(2,084 / 64 = 32.56) =
    # 2,112; with the fp32 SSM state, see above: were 1,072 and 1,088 with a bf16 one);
    # Qwen3-Next TP8 needs 144 (Mamba page 137,216 B, still 1,024 B a token: 16 x cdiv(8.375)), so 256 is kept.
    assert _hybrid_block("vllm@0.16", "nemotron-3-nano-30b-a3b", H100, tp=2, block=64) == 2096
    assert _hybrid_block("vllm@0.19", "nemotron-3-nano-30b-a3b", H100, tp=2, block=64) == 2112
    assert _hybrid_block("vllm@0.16", "qwen3-next-80b-a3b", H100, tp=8) == 144
    assert _hybrid_block("vllm@0.16", "qwen3-next-80b-a3b", H100, tp=8, block=256) == 256


# ---- CUDA graphs: capture sizes and padding ----------------------------------------------------------------


def test_capture_sizes_and_decode_padding():
    # config/vllm.py _set_cudagraph_sizes (0.16.0): max = min(max_num_seqs x 2, 512), at most max_num_batched_tokens;
    # [1, 2, 4] + 8..248 by 8 (31 sizes) + 256..512 by 16 (17 sizes) = 51 sizes by default.
    sizes = vllm.capture_sizes(Settings())
    assert len(sizes) == 3 + 31 + 17 == 51 and sizes[:5] == [1, 2, 4, 8, 16] and sizes[-2:] == [496, 512]
    assert vllm.capture_sizes(Settings(max_num_seqs=8)) == [1, 2, 4, 8, 16]  # max 16
    assert vllm.capture_sizes(Settings(max_num_seqs=512, max_num_batched_tokens=256))[-1] == 256
    # cudagraph_dispatcher.py dispatch: a decode step of n pads to the next size; none past the largest.
    e, s = get_engine("vllm@0.16"), Settings()
    assert [e.graph_rows(s, n) for n in (1, 3, 9, 300, 512, 513)] == [1.0, 4.0, 16.0, 304.0, 512.0, None]
    assert get_engine("vllm@0.19").graph_rows(s, 3) is None  # 0.19's copy not re-read: unpadded, as before
    # At most max_num_seqs run: a steady-state mean of 8.98 sequences at --max-num-seqs 8 pads to 8, not 16.
    assert e.graph_rows(Settings(max_num_seqs=8), 8.98) == 8.0


def test_reference_logs_are_compared_under_the_release_they_ran(monkeypatch):
    # scripts/engine_validation.py vllm_rules: the first version an entry names, through release_for; none named
    # (vllm-11, "main July 2025"): check-log's rule set for a log without a version, vllm@0.19.
    import importlib.util
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    logs = root.parent / "shared" / "reference" / "engine_logs.json"
    if not logs.is_file():
        pytest.skip(f"{logs} not present")
    spec = importlib.util.spec_from_file_location("engine_validation", root / "scripts" / "engine_validation.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "engine_validation", mod)
    spec.loader.exec_module(mod)
    rules = {e["id"]: mod.vllm_rules(e) for e in json.loads(logs.read_text()) if e["engine"].lower() == "vllm"}
    assert rules["vllm-09"] == rules["vllm-13"] == "vllm@0.8"  # ~v0.9.2, ~v0.10.1
    assert rules["vllm-15"] == rules["vllm-27"] == rules["vllm-11"] == "vllm@0.19"
    assert mod.vllm_rules({"engine_version": "0.16.0 (V1)"}) == mod.vllm_rules({"engine_version": "v0.18.1"})
    assert mod.vllm_rules({"engine_version": "v0.18.1"}) == "vllm@0.16"

"""Engine rules read against the engines' current source: versions, SGLang pools, vLLM defaults and windows.

Each test states the engine file and function the rule comes from, the figure kvplan gave before the
rule was fixed and the figure it gives now, with the arithmetic written out.
"""

import json

import pytest

from kvplan.capacity import capacity, decode_sequences, max_sequences, setup
from kvplan.catalog import load_bundled
from kvplan.engines import ENGINES, RELEASES, Settings, get_engine
from kvplan.engines.llamacpp import llamacpp_pools
from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu
from kvplan.units import MIB

H100, H200, A100 = resolve_gpu("h100-sxm"), resolve_gpu("h200"), resolve_gpu("a100-80gb")


def _setup(model, gpu, engine, **kw):
    return setup(load_bundled(model), gpu, engine=engine, **kw)


# ---- versions as data ------------------------------------------------------------------------------------


def test_plain_name_is_the_newest_release_and_name_at_version_an_older_one():
    assert get_engine("vllm") is ENGINES["vllm"] is RELEASES["vllm"]["0.21"]
    assert get_engine("vLLM@0.19").release == "0.19"
    assert get_engine("llama.cpp@b6699").release == "b6699"
    assert list(RELEASES["vllm"]) == ["0.8", "0.16", "0.19", "0.21"]  # oldest first
    for name, releases in RELEASES.items():
        assert ENGINES[name] is list(releases.values())[-1], name
        assert all(e.key == f"{name}@{r}" for r, e in releases.items())


def test_unknown_version_is_refused_with_the_known_ones():
    with pytest.raises(InvalidInput, match=r"unknown vllm version '0.18'; kvplan knows 0.8, 0.16, 0.19, 0.21"):
        get_engine("vllm@0.18")
    with pytest.raises(InvalidInput, match="unknown engine 'vlm'"):
        get_engine("vlm@0.19")


def test_capacity_names_the_rule_set_and_the_launch_line_uses_it():
    from kvplan.launch import launch_args

    r = capacity(_setup("llama-3.1-8b", H100, "vllm@0.19"), 8192)
    assert (r.engine, r.engine_release) == ("vllm", "0.19")
    args = launch_args(r, model="meta-llama/Llama-3.1-8B")
    assert args[args.index("--gpu-memory-utilization") + 1] == "0.9"  # the 0.19 default, not 0.21's 0.92


# ---- TensorRT-LLM ----------------------------------------------------------------------------------------


def test_trtllm_sliding_window_layers_keep_every_token_without_max_attention_window():
    # docs/source/features/long-sequence.md ("Sliding Window Attention"): the cyclic KV cache keeps the last N tokens
    # for N = KvCacheConfig.max_attention_window, which the launch sets to enable it; kvplan's launch sets none.
    # Mistral 7B v0.1 (window 4,096 on every layer) on one H100, bf16 KV: 32 layers x 8 heads x 128 x 2 x 2 B =
    # 131,072 B a token; the pool is 474,976 tokens (62,257,001,103 B // 131,072 = 474,983, in blocks of 32; since
    # stop 30 the budget less 0.9 x the default 128-row decode graph's pool, 12,834,570 B, captured before the KV
    # estimation: kvplan.engines.trtllm default_graph_sizes; 475,040 before).
    # Before: each sequence was charged its 4,096-token window: 115 sequences of 32K. Now: 474,976 // 32,768 = 14.
    r = capacity(_setup("mistral-7b-v0.1", H100, "trtllm"), 32768)
    assert r.kv_pool_tokens == 474_976
    assert r.max_concurrent_sequences == 474_976 // 32_768 == 14
    # Llama 4's chunked layers keep every token too: KVCacheManager.__init__ (resource_manager.py) takes
    # [max_seq_len] as the one window when KvCacheConfig.max_attention_window is None, and attention_chunk_size is the
    # attention op's mask, not a window of the cache. Scout TP4 on one H200, bf16 KV: a pool of 1,703,904 tokens
    # (1,704,960 before stop 30's default decode graphs: 0.9 x 56,364,237 B out of the budget);
    # 32K requests take 32,768 of them in every layer: 1,703,904 // 32,768 = 51 (52 before). Before (the 36 chunked
    # layers charged 8,192): (12 x 32,768 + 36 x 8,192) / 48 = 14,336 a request, 118. At 8K nothing changes (207
    # either way; 208 before the graphs).
    scout = _setup("llama-4-scout-17b-16e", H200, "trtllm", tp=4)
    chunked = [c for _, c in scout.stages[0].layout.stage.groups if c.type == "chunked"]
    assert chunked and all(c.max_tokens is None for c in chunked)
    long = capacity(scout, 32768)
    assert long.kv_pool_tokens == 1_703_904
    assert long.max_concurrent_sequences == 1_703_904 // 32_768 == 51
    assert capacity(scout, 8192).max_concurrent_sequences == 1_703_904 // 8192 == 207
    assert "--max_attention_window" not in " ".join(ENGINES["trtllm"].launch_args(r, model="m", sequences=14))


# TensorRT-LLM kv_cache_config.max_attention_window (kvplan.engines.trtllm, WindowLayout; sources in its comments):
# local layer j keeps windows[j % len] tokens, each clamped to max_seq_len (the launch's --max_seq_len: the length
# asked); one window -> one pool (calculate_max_num_blocks), several -> an equal share of the bytes per window
# (calculate_max_num_blocks_for_vswa); a request reserves ceil(min(L, W + T) / 32) blocks in window W's pool
# (getRemainingBlocksToCompletion), T = min(max_num_tokens 8,192, max_seq_len - 1 - W) the temporary window.


def _windows(model, gpu, windows, **kw):
    return _setup(model, gpu, "trtllm", settings=Settings(max_attention_window=windows, **kw))


def test_trtllm_max_attention_window_one_entry_mistral_7b_at_32k():
    # Mistral 7B v0.1 on one H100, bf16 KV, 131,072 B a token: one window, one pool, as without the flag:
    # 62,257,001,103 // 131,072 = 474,983 tokens -> 14,843 blocks (474,976 tokens; the default graphs' pool out).
    # [4096] at 32K: T = min(8,192, 32,767 - 4,096) = 8,192; a request reserves min(32,768, 4,096 + 8,192) = 12,288
    # tokens = 384 blocks -> 14,843 // 384 = 38 (without the flag: 1,024 blocks each, 14).
    r = capacity(_windows("mistral-7b-v0.1", H100, (4096,)), 32768)
    assert r.kv_pool_tokens == 474_976
    assert r.max_concurrent_sequences == 14_843 // 384 == 38
    assert r.settings["max_attention_window"] == [4096]
    # At 4K the window is the whole sequence: T = 0, 128 blocks -> 14,843 // 128 = 115, as without the flag.
    assert capacity(_windows("mistral-7b-v0.1", H100, (4096,)), 4096).max_concurrent_sequences == 115
    assert capacity(_setup("mistral-7b-v0.1", H100, "trtllm"), 4096).max_concurrent_sequences == 115
    # A smaller chunk shrinks the temporary window: --max-num-batched-tokens is TensorRT-LLM's max_num_tokens.
    s = _windows("mistral-7b-v0.1", H100, (4096,), max_num_batched_tokens=2048)
    lay = s.stages[0].layout
    assert lay.reserved_tokens(4096, length=32768, max_seq_len=32768) == 4096 + 2048
    from kvplan.launch import launch_notes

    assert "`kv_cache_config: {max_attention_window: [4096]}` in the --extra_llm_api_options YAML" in " ".join(
        launch_notes(r)
    )


def test_trtllm_max_attention_window_gemma3_pattern_splits_the_pool_by_window():
    # Gemma 3 27B on one H200, bf16: 62 layers of 16 KV heads x 128 x 2 x 2 B = 8,192 B a token, pattern 5 local :
    # 1 global, stated as TensorRT-LLM's six-entry list [1024 x 5, 32768]. Budget 84,984,957,020 B
    # (since stop 30 less 0.9 x the default 128-row decode graph's pool, 69,519,933 B: its bf16 logits over the
    # 262,144-token vocabulary; 85,047,524,960 before).
    # Without the flag: 84,984,957,020 // 507,904 = 167,324 tokens -> 5,228 blocks; 32K = 1,024 blocks -> 5.
    # With it, two windows, each 42,492,478,510 B:
    #   1,024: 52 layers, 425,984 B a token -> 99,751.3 tokens -> 3,117 blocks; a request reserves
    #          min(32,768, 1,024 + min(8,192, 31,743)) = 9,216 tokens = 288 blocks -> 3,117 // 288 = 10;
    #   32,768: 10 layers, 81,920 B a token -> 518,707.0 tokens -> 16,209 blocks; 1,024 blocks each -> 15.
    # The local layers' pool binds: 10 sequences (5 before); the log's pool is the largest window's, 518,688 tokens.
    windows = (1024,) * 5 + (32768,)
    s = _windows("gemma-3-27b", H200, windows)
    st = s.stages[0]
    assert st.available == 84_984_957_020
    assert st.layout.pool_blocks(st.available, 32768) == {1024: 3_117, 32768: 16_209}
    r = capacity(s, 32768)
    assert r.max_concurrent_sequences == min(3_117 // 288, 16_209 // 1_024) == 10
    assert r.kv_pool_tokens == 16_209 * 32 == 518_688
    assert capacity(_setup("gemma-3-27b", H200, "trtllm"), 32768).max_concurrent_sequences == 5_228 // 1_024 == 5
    # The layers the list puts the window on are the spec's sliding ones (index 5, 11, ... global).
    spec = load_bundled("gemma-3-27b")
    held = [windows[j % 6] for j in range(spec.num_layers)]
    assert [w == 1024 for w in held] == [spec.kind(n).type == "sliding" for n in spec.layer_kind_names]
    # Serving's KV limit (plan --rate) reads the binding pool: a 16K + 1K request reserves 9,216 tokens of the local
    # pool (99,744 tokens), 17,408 of the global one (518,688): the local pool binds.
    from kvplan.capacity import binding_pool

    assert binding_pool(s, 17_408) == (99_744, 9_216)
    plain = _setup("gemma-3-27b", H200, "trtllm")
    assert binding_pool(plain, 17_408) == (167_296, 17_408)  # one pool: what serving took before
    # plan --rate's KV bound on the sequences decoding at once (kvplan.serving._limits), 16K in + 1K out reserved to
    # completion: 167,296 / 17,408 = 9.61 without the flag, 99,744 / 9,216 = 10.82 with it.
    from kvplan.serving import Lengths, _limits

    inp, out = Lengths(16_384, 16_384), Lengths(1_024, 1_024)
    assert _limits(plain, inp, out) == (pytest.approx(167_296 / 17_408), "kv_cache")
    assert _limits(s, inp, out) == (pytest.approx(99_744 / 9_216), "kv_cache")


def test_trtllm_max_attention_window_two_entry_list_gemma2_equal_shares():
    # Gemma 2 9B on one H100: 42 layers alternating local (4,096) / global, stated as [4096, 8192]; 21 layers of
    # 8,192 B a token each side. Budget 58,621,316,567 B (less 0.9 x the default 128-row decode graph's pool,
    # 67,132,457 B, since stop 30), halved: 29,310,658,283.5 / 172,032 = 170,379.1 tokens -> 5,324 blocks in each pool
    # (the one pool without the flag: 58,621,316,567 // 344,064 = 170,379 -> 5,324).
    # At 8K: local T = min(8,192, 8,191 - 4,096) = 4,095, so a request reserves min(8,192, 8,191) = 8,191 tokens =
    # 256 blocks, as in the global pool: 5,324 // 256 = 20 either way. The equal split and the temporary window
    # leave Gemma 2 at its 8K context where it was.
    s = _windows("gemma-2-9b", H100, (4096, 8192))
    st = s.stages[0]
    assert st.layout.pool_blocks(st.available, 8192) == {4096: 5_324, 8192: 5_324}
    assert capacity(s, 8192).max_concurrent_sequences == 5_324 // 256 == 20
    assert capacity(_setup("gemma-2-9b", H100, "trtllm"), 8192).max_concurrent_sequences == 20


def test_trtllm_windows_at_or_past_max_seq_len_change_nothing():
    # Every window is clamped to max_seq_len (KVCacheManager.__init__): at 1K the Gemma 3 list is [1024] x 6, one
    # pool, T = 0: 5,228 // 32 = 163 sequences, as without the flag.
    windows = (1024,) * 5 + (32768,)
    assert capacity(_windows("gemma-3-27b", H200, windows), 1024).max_concurrent_sequences == 5_232 // 32 == 163
    assert capacity(_setup("gemma-3-27b", H200, "trtllm"), 1024).max_concurrent_sequences == 163


@pytest.mark.parametrize("windows", [(0,), (-4096,), (), (4096.0,), (True,)])
def test_trtllm_max_attention_window_bad_values_are_refused(windows):
    # KvCacheConfig.max_attention_window: Optional[List[PositiveInt]], min_length 1.
    with pytest.raises(InvalidInput, match="invalid max_attention_window"):
        _windows("mistral-7b-v0.1", H100, windows)


def test_max_attention_window_is_trtllm_only_and_refused_where_not_read():
    with pytest.raises(InvalidInput, match="--max-attention-window does not apply to engine 'vllm'"):
        _setup("mistral-7b-v0.1", H100, "vllm", settings=Settings(max_attention_window=(4096,)))
    # Llama 4's chunked layers and hybrid recurrent layers: how TensorRT-LLM windows them was not read.
    with pytest.raises(InvalidInput, match="chunked layers: kvplan has not read"):
        _windows("llama-4-scout-17b-16e", H200, (4096,), attention_dp=1)
    with pytest.raises(InvalidInput, match="qwen3-next-80b-a3b's recurrent layers: kvplan has not read"):
        _windows("qwen3-next-80b-a3b", H200, (4096,))
    # A list longer than the layers is accepted (TensorRT-LLM indexes it cyclically; the tail is unused).
    assert capacity(_windows("mistral-7b-v0.1", H100, (4096,) * 40), 32768).max_concurrent_sequences == 38


def test_max_attention_window_cli(cli):
    ok = cli("capacity", "mistral-7b-v0.1", "--gpu", "h100-sxm", "-c", "32k", "-e", "trtllm",
             "--max-attention-window", "4k", "-f", "json")  # fmt: skip
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.output)
    assert doc["settings"]["max_attention_window"] == [4096] and doc["max_concurrent_sequences"] == 38
    for flag, value, needle in (
        ("-e", "vllm", "--max-attention-window does not apply to engine 'vllm'"),
        ("-e", "trtllm", "invalid --max-attention-window '0'"),
    ):
        window = "0" if "invalid" in needle else "4096"
        r = cli("capacity", "mistral-7b-v0.1", "--gpu", "h100-sxm", "-c", "32k", flag, value,
                "--max-attention-window", window)  # fmt: skip
        assert r.exit_code == 2 and needle in r.output, r.output
        assert "Traceback" not in r.output
    r = cli("plan", "mistral-7b-v0.1", "--users", "100", "-c", "32k", "--gpus", "h100-sxm", "-e", "trtllm",
            "--max-attention-window", "4096,,8")  # fmt: skip
    assert r.exit_code == 2 and "invalid --max-attention-window '4096,,8'" in r.output
    # plan --users checks the engine's flags before it plans (they used to drop every row as "nothing fits", exit 0).
    r = cli("plan", "mistral-7b-v0.1", "--users", "10", "-c", "8k", "--gpus", "h100-sxm", "-e", "sglang",
            "--max-attention-window", "4096")  # fmt: skip
    assert r.exit_code == 2 and "--max-attention-window does not apply to engine 'sglang'" in r.output, r.output


# ---- SGLang ---------------------------------------------------------------------------------------------


def test_sglang_sliding_window_model_without_the_hybrid_pool_keeps_every_token():
    # model_runner.py profile_max_num_token: one pool, cell = every layer's K+V per token; model_config.py
    # is_hybrid_swa_model does not list MistralForCausalLM, so sliding layers hold all tokens.
    # Mistral 7B on one H100: pool 426,433 tokens (32 layers x 8 heads x 128 x 2 x 2 B = 128 KiB a token).
    # Before: each sequence was charged its 4,096-token window: 104 sequences of 32K.
    # Now: 426,433 // 32,768 = 13.
    r = capacity(_setup("mistral-7b-v0.1", H100, "sglang@0.5"), 32768)
    assert r.kv_pool_tokens == 426_433
    assert r.max_concurrent_sequences == 426_433 // 32_768 == 13
    # Gemma 2 and 3 are not listed either: no hybrid pool, no swa_full_tokens_ratio on the launch line.
    gemma = capacity(_setup("gemma-2-9b", H100, "sglang@0.5"), 8192)
    assert "swa_full_tokens_ratio" not in gemma.settings


def test_sglang_hybrid_swa_pool_for_llama4_chunked_layers():
    # model_config.py is_hybrid_swa_model lists Llama4ForConditionalGeneration; its chunked layers use the
    # SWA pool with the chunk (8,192) as window. model_runner.set_num_token_hybrid at ratio 0.8:
    # Llama-4-Scout TP4 on H200: 1,635,114 tokens over 48 layers (12 full + 36 chunked), so
    # full = 1,635,114 x 48 / (0.8 x 36 + 12) = 1,923,663 and swa = 1,538,930.
    # At 128K: full 1,923,663 // 131,072 = 14; swa 1,538,930 // 8,192 = 187 -> 14.
    # Before (no hybrid pool for chunked models, chunked layers charged their chunk only): 42.
    s = _setup("llama-4-scout-17b-16e", H200, "sglang@0.5", tp=4)
    full, swa, window = s.stages[0].layout.sglang_swa_tokens(s.stages[0].available)
    assert (full, swa, window) == (1_923_663, 1_538_930, 8192)
    assert capacity(s, 131072).max_concurrent_sequences == 14


def test_sglang_hybrid_recurrent_model_splits_mamba_and_kv_pools():
    # KV-cache configurator _handle_max_mamba_cache: the memory left after weights, R, is split
    # R x 0.9 / 1.9 for Mamba state (mamba_full_memory_ratio 0.9), in whole requests of state; the KV pool
    # gets the rest in cells of the 12 attention layers (TP2: 1 KV head x 256 x 2 x 2 B x 12 = 12,288 B).
    # One request's state (TP2), 36 Gated DeltaNet layers: conv (2 x 2,048 + 4,096) x 3 / 2 in bf16 =
    # 24,576 B + SSM 32 x 128 x 128 / 2 in fp32 = 1,048,576 B -> 1,073,152 B x 36 = 38,633,472 B.
    # Qwen3-Next TP2 on H200: R = 51.48 GiB; slots = int(R x 0.9 / 1.9) // 38,633,472 = 677;
    # KV tokens = (R - 677 x 38,633,472) // 12,288 = 2,370,337; at 32K: 2,370,337 // 32,768 = 72,
    # under the running cap min(2,048.., 2,370,337 // 2, 677 // 3 = 225).
    # Before (every byte in the KV pool): 130.
    s = _setup("qwen3-next-80b-a3b", H200, "sglang@0.5", tp=2)
    lay, available = s.stages[0].layout, s.stages[0].available
    assert lay.state_bytes == 36 * ((2 * 2048 + 4096) * 3 // 2 * 2 + 32 * 128 * 128 // 2 * 4) == 38_633_472
    assert lay.stage.bytes_per_token == 12 * 256 * 2 * 2
    assert lay.split(available) == (677, 2_370_337)
    assert lay.running_cap(available) == 677 // 3 == 225
    assert capacity(s, 32768).max_concurrent_sequences == 72


def test_sglang_mamba_slots_cap_running_requests_at_short_context():
    # At 1K the KV pool would hold 2,370,337 // 1,024 = 2,314 requests; the Mamba slots allow 677 // 3 = 225.
    s = _setup("qwen3-next-80b-a3b", H200, "sglang@0.5", tp=2)
    assert max_sequences(s, 1024) == 225


# ---- vLLM -----------------------------------------------------------------------------------------------


def test_vllm_newest_defaults_utilization_and_cuda_graph_estimate():
    # vllm/config/cache.py CacheConfig.gpu_memory_utilization = 0.92; vllm/envs.py
    # VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS on by default as of v0.21.0. Llama-3.1-8B on H100:
    # 0.19: int(81,090 MiB x 0.90) = 76,526,125,056 - weights 16,060,522,496 - activation 2,028,994,560
    #       - non-torch 268,435,456 = 58,168,172,544 B (27,736 blocks of 2 MiB);
    # 0.21: int(81,090 MiB x 0.92) = 78,226,705,612 - the same terms - CUDA graphs 1,001,156,888
    #       = 58,867,596,212 B (28,070 blocks).
    # At 32K (2,048 blocks a request) both hold 13 sequences; the pool grows 443,776 -> 449,120 tokens.
    old = _setup("llama-3.1-8b", H100, "vllm@0.19").stages[0].budget
    new = _setup("llama-3.1-8b", H100, "vllm").stages[0].budget
    assert (old.fraction, old.cuda_graph_in_budget) == (0.9, False)
    assert (new.fraction, new.cuda_graph_in_budget) == (0.92, True)
    assert old.available_kv == 58_168_172_544 and new.available_kv == 58_867_596_212
    assert new.available_kv == new.engine_share - new.weights - new.activation - new.non_torch - new.cuda_graph
    assert capacity(_setup("llama-3.1-8b", H100, "vllm"), 32768).kv_pool_tokens == 28_070 * 16 == 449_120
    # --no-cuda-graph-estimate (Settings(cuda_graph_estimate=False)) restores the 0.19 budget rule.
    off = _setup("llama-3.1-8b", H100, "vllm", settings=Settings(cuda_graph_estimate=False)).stages[0].budget
    assert off.available_kv == new.available_kv + new.cuda_graph


def test_vllm_mamba_align_mode_holds_two_state_pages_per_request():
    # kv_cache_interface.py MambaSpec.max_memory_usage_bytes: 'align' (prefix caching on, the default in
    # 0.21) -> 2 pages, 'none' -> 1. Qwen3-Next TP4 on H100: 3 recurrent groups + 1 full group of 272-token
    # blocks; at 2K a request holds cdiv(2,048, 272) = 8 full blocks + 3 x pages.
    # 9,445 blocks - 1 null: prefix caching off 9,444 // (8 + 3) = 858; on 9,444 // (8 + 6) = 674 (-21%).
    on = _setup("qwen3-next-80b-a3b", H100, "vllm", tp=4)
    off = _setup("qwen3-next-80b-a3b", H100, "vllm", tp=4, settings=Settings(prefix_caching=False))
    assert on.stages[0].layout.pool_units(on.stages[0].available) == 9445
    assert (max_sequences(off, 2048), max_sequences(on, 2048)) == (9444 // 11, 9444 // 14) == (858, 674)
    # vllm@0.19 is kept at one page, as calibrated.
    assert _setup("qwen3-next-80b-a3b", H100, "vllm@0.19", tp=4).stages[0].layout.mamba_pages == 1


def test_vllm_batch_defaults_exclude_a100():
    # vllm/engine/arg_utils.py get_batch_defaults: 8192 / 1024 only when >= 70 GiB and "a100" is not in
    # the device name (PR #17885); A100-80GB gets 2048 / 256. Gemma-3-27B at 32K on A100-80GB (vllm@0.19):
    # before, 8,192 tokens: activation 4.06 GiB, 14,127 blocks, each request 2,048 full + 6 sliding groups x
    # (cdiv(1,023 + 8,192, 16) + 1 = 577) = 5,510 blocks -> 14,126 // 5,510 = 2 at startup;
    # now, 2,048 tokens: activation 1.02 GiB, 16,452 blocks, 2,048 + 6 x (cdiv(1,023 + 2,048, 16) + 1 = 193)
    # = 3,206 blocks -> 16,451 // 3,206 = 5.
    s = _setup("gemma-3-27b", A100, "vllm@0.19")
    assert (s.max_num_batched_tokens, s.max_num_seqs) == (2048, 256)
    lay = s.stages[0].layout
    assert lay.pool_units(s.stages[0].available) == 16_452 and lay.blocks_per_request(32768) == 3_206
    assert max_sequences(s, 32768) == 16_451 // 3_206 == 5
    before = _setup("gemma-3-27b", A100, "vllm@0.19",
                    settings=Settings(max_num_batched_tokens=8192, max_num_seqs=1024))  # fmt: skip
    assert max_sequences(before, 32768) == 14_126 // 5_510 == 2
    assert _setup("llama-3.1-8b", H100, "vllm").max_num_batched_tokens == 8192


def test_vllm_sliding_window_startup_figure_and_steady_state_decode():
    # Startup (kv_cache_interface.py SlidingWindowSpec.max_memory_usage_bytes): a request may hold
    # cdiv(min(W - 1 + max_num_batched_tokens, L), block) + 1 blocks per sliding group; decoding
    # (single_type_kv_cache_manager.py SlidingWindowManager.remove_skipped_blocks) it holds
    # cdiv(W - 1, block) + 1. Gemma-3-27B (W 1,024; 6 sliding groups + 1 full of 10 layers) on H100 at 32K
    # (vllm@0.19): 13,867 blocks; startup 2,048 + 6 x 577 = 5,510 a request -> 13,866 / 5,510 = 2.52
    # logged, 2 whole requests; decoding 2,048 + 6 x (cdiv(1,023, 16) + 1 = 65) = 2,438 a request.
    # With one request being prefilled (its chunk: 6 x 512 = 3,072 blocks above its decode blocks):
    # (13,866 - 3,072) // 2,438 = 4 decode at once. The "about 5" is 13,866 // 2,438 = 5, which
    # leaves no room for the next prefill chunk; kvplan answers 4 and says so.
    s = _setup("gemma-3-27b", H100, "vllm@0.19")
    lay = s.stages[0].layout
    assert lay.pool_units(s.stages[0].available) == 13_867
    assert (lay.blocks_per_request(32768), lay.decode_blocks_per_request(32768)) == (5_510, 2_438)
    r = capacity(s, 32768)
    assert r.engine_reported_concurrency == round(13_867 / 5_510, 4)
    assert r.answers["startup_log"]["whole_requests"] == max_sequences(s, 32768) == 2
    assert r.answers["decoding_at_once"] == r.max_concurrent_sequences == decode_sequences(s, 32768) == 4
    assert r.max_context == r.answers["longest_request_tokens"] == 131_072
    # Full attention frees nothing: both figures agree.
    dense = _setup("llama-3.1-8b", H100, "vllm")
    assert decode_sequences(dense, 32768) == max_sequences(dense, 32768)


# ---- llama.cpp --------------------------------------------------------------------------------------------


def test_llamacpp_server_runs_four_unified_slots_when_np_is_not_given():
    # tools/server/server.cpp main: n_parallel == 1 and not kv_unified -> 4 slots, unified cache
    # (logged "setting n_parallel = 4 and kv_unified = true"). gpt-oss-20b -c 131072: the SWA cache holds
    # pad256(128 x 4 + 512) = 1,024 cells instead of pad256(128 + 512) = 768 (build 6699, llamacpp-01).
    new = _setup("gpt-oss-20b", H100, "llamacpp", kv_dtype_name="fp16").stages[0].layout
    old = _setup("gpt-oss-20b", H100, "llamacpp@b6699", kv_dtype_name="fp16").stages[0].layout
    cells = {e: {p.name: p.cells for p in llamacpp_pools(lay, n_ctx=131072, n_seq=1)} for e, lay in
             (("new", new), ("old", old))}  # fmt: skip
    assert cells == {"new": {"SWA": 1024, "non-SWA": 131072}, "old": {"SWA": 768, "non-SWA": 131072}}
    # 12 SWA layers x 8 heads x 64 x 2 x 2 B = 24 KiB a cell: 256 more cells = 6 MiB more.
    assert new.units_for(1, 131072) - old.units_for(1, 131072) == 256 * 12 * 8 * 64 * 2 * 2 == 6 * MIB


def test_swa_full_llamacpp_and_sglang_disable_hybrid_swa_memory(cli):
    # llama.cpp src/llama-kv-cache-iswa.cpp (current): size_swa = GGML_PAD(min(size_base, n_swa x (unified ? n_seq : 1)
    # + n_ubatch), 256), and with swa_full "size_swa = size_base": gpt-oss-20b -c 131072 unified 4 slots,
    # SWA 1,024 cells -> 131,072.
    full = _setup("gpt-oss-20b", H100, "llamacpp", kv_dtype_name="fp16", settings=Settings(swa_full=True))
    pools = llamacpp_pools(full.stages[0].layout, n_ctx=131072, n_seq=1)
    assert [(p.cells, p.layers) for p in pools] == [(131072, 12), (131072, 12)]  # the 12 sliding layers at full size
    # 24 layers x 8 heads x 64 x 2 x 2 B = 49,152 B a cell x 131,072 cells = 6 GiB (with the SWA pool: 3 GiB + 24 MiB).
    assert full.stages[0].layout.units_for(1, 131072) == 49_152 * 131_072
    # SGLang server_args.py --disable-hybrid-swa-memory (store_true) and model_config.py is_hybrid_swa =
    # is_hybrid_swa_model(...) and not disable_hybrid_swa: gpt-oss-20b on one H100 leaves the hybrid pool for one
    # token pool, every layer keeping every token: 56,615,644,042 // 49,152 = 1,151,848 tokens -> 35 sequences of
    # 32K (the hybrid pool: 39). The launch line repeats the flag.
    r = capacity(_setup("gpt-oss-20b", H100, "sglang@0.5", settings=Settings(swa_full=True)), 32768)
    assert (r.kv_pool_tokens, r.max_concurrent_sequences) == (1_151_848, 35)
    from kvplan.launch import launch_args

    assert "--disable-hybrid-swa-memory" in launch_args(r, model="openai/gpt-oss-20b")
    hybrid = capacity(_setup("gpt-oss-20b", H100, "sglang@0.5"), 32768)
    assert hybrid.max_concurrent_sequences == 39
    assert "--disable-hybrid-swa-memory" not in launch_args(hybrid, model="openai/gpt-oss-20b")
    # The CLI flag: --swa-full (llama.cpp's spelling), refused by the engines without it.
    ok = cli("capacity", "gpt-oss-20b", "--gpu", "h100-sxm", "-c", "32k", "-e", "sglang@0.5", "--swa-full")
    assert ok.exit_code == 0 and "--disable-hybrid-swa-memory" in ok.output, ok.output
    bad = cli("capacity", "gpt-oss-20b", "--gpu", "h100-sxm", "-c", "32k", "-e", "trtllm", "--swa-full")
    assert bad.exit_code == 2 and "--swa-full does not apply to engine 'trtllm'" in bad.output


# ---- check-log ------------------------------------------------------------------------------------------------


def test_check_log_compares_a_vllm_log_under_the_release_it_states():
    from kvplan.logcheck import check_text

    log = (
        "INFO [api_server.py:1] vLLM API server version 0.21.0\n"
        "[v1/worker/gpu_worker.py:436] Available KV cache memory: 58.11 GiB\n"
        "[v1/core/kv_cache_utils.py:1324] Maximum concurrency for 16,384 tokens per request: 29.05x\n"
    )
    stated = check_text(log, model="llama-3.1-8b", gpu="h100-sxm")
    assert stated.predicted["engine_release"] == "0.21" and not stated.notes
    unstated = check_text(log.split("\n", 1)[1], model="llama-3.1-8b", gpu="h100-sxm")
    assert unstated.predicted["engine_release"] == "0.19"
    assert any("does not state vLLM's version" in n for n in unstated.notes)
    chosen = check_text(log.split("\n", 1)[1], engine="vllm@0.21", model="llama-3.1-8b", gpu="h100-sxm")
    assert chosen.predicted["engine_release"] == "0.21"


def test_capacity_json_and_table_label_the_three_answers(cli):
    import json

    r = cli("capacity", "gemma-3-27b", "--gpu", "h100-sxm", "-c", "32k", "--engine", "vllm@0.19", "-f", "json")
    assert r.exit_code == 0, r.output
    answers = json.loads(r.stdout)["answers"]
    assert answers == {
        "startup_log": {"kv_pool_tokens": 31_696, "max_concurrency": 2.5167, "context": 32768, "whole_requests": 2},
        "decoding_at_once": 4,
        "longest_request_tokens": 131_072,
    }
    table = cli("capacity", "gemma-3-27b", "--gpu", "h100-sxm", "-c", "32k", "--engine", "vllm@0.19").output
    assert "startup log: maximum concurrency at 32,768 tokens" in table
    assert "decoding at once (steady state)" in table and "longest single request admitted" in table


# ---- attention data parallelism: the per-rank KV cell (hooks; deployment planning is issue 11's) -----------


def test_attention_dp_changes_the_per_rank_kv_cell():
    # SGLang dp_attention.py: attn_tp_size = tp // dp. Llama-3.1-8B TP8: without DP attention each rank holds
    # 8 KV heads // 8 = 1 head: 32 layers x 1 x 128 x 2 x 2 B = 16,384 B a token; with --dp 8 attention TP is 1:
    # all 8 heads, 131,072 B a token, and 8 request pools per replica.
    plain = _setup("llama-3.1-8b", H100, "sglang", tp=8).stages[0].layout
    dp = _setup("llama-3.1-8b", H100, "sglang", tp=8, settings=Settings(attention_dp=8))
    assert plain.stage.bytes_per_token == 32 * 1 * 128 * 2 * 2
    assert dp.stages[0].layout.stage.bytes_per_token == 32 * 8 * 128 * 2 * 2
    st = dp.stages[0]
    assert max_sequences(dp, 8192) == 8 * st.layout.max_sequences(st.available, 8192)
    # TensorRT-LLM enable_attention_dp spans all TP ranks: attention TP 1.
    trt = _setup("llama-3.1-8b", H100, "trtllm", tp=8, settings=Settings(attention_dp=8))
    assert trt.stages[0].layout.stage.bytes_per_token == 32 * 8 * 128 * 2 * 2
    with pytest.raises(InvalidInput, match="needs it to divide tp=8"):
        _setup("llama-3.1-8b", H100, "sglang", tp=8, settings=Settings(attention_dp=3))
    with pytest.raises(InvalidInput, match="'vllm' has no attention data parallelism"):
        _setup("llama-3.1-8b", H100, "vllm", tp=8, settings=Settings(attention_dp=8))

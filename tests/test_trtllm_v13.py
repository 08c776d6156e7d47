"""TensorRT-LLM 1.3 (from v1.3.0rc11) as the default rule set, ``--engine trtllm`` / ``trtllm@1.3``; ``trtllm@0.20``
keeps the releases before NVIDIA/TensorRT-LLM PR #12597.

The rules and their sources are on ``kvplan.engines.trtllm.ENGINE`` (the comment block above it): PR #12597 gives
MistralAttention / MixtralAttention their checkpoint's sliding window; everything else kvplan models was read again in
the 1.3-era files and is unchanged, the KV cache included (a window is set on the cache by itself only for Gemma4
hybrids, pyexecutor/_util.py). Numbers are worked out by hand in the comments; transformers is the oracle for the span
a windowed Mistral layer attends to.
"""

from __future__ import annotations

import json

import pytest

from kvplan.capacity import capacity, setup
from kvplan.catalog import load_bundled
from kvplan.engines import ENGINES, RELEASES, Settings, get_engine, selected_name, trtllm
from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu
from kvplan.latency import calibration, kernel_spec, step_latency

H100 = resolve_gpu("h100-sxm")
MISTRAL, MIXTRAL = load_bundled("mistral-7b-v0.1"), load_bundled("mixtral-8x7b")


# ---- selection --------------------------------------------------------------------------------------------


def test_releases_oldest_first_and_plain_trtllm_is_1_3():
    assert list(RELEASES["trtllm"]) == ["0.17", "0.20", "1.3"]
    new, old = get_engine("trtllm"), get_engine("trtllm@0.20")
    assert new is ENGINES["trtllm"] is trtllm.ENGINE is get_engine("trtllm@1.3") is RELEASES["trtllm"]["1.3"]
    assert old is trtllm.V0_20 and get_engine("TensorRT-LLM@0.20") is old
    assert (selected_name(new), selected_name(old)) == ("trtllm", "trtllm@0.20")
    assert new.version.startswith("1.3 (v1.3.0rc11+") and "before PR #12597" in old.version
    # the rules that differ (the comment above trtllm.ENGINE): the families without a window, and the FP4 indexer
    # keys of PR #13340 (merged after PR #12597, so after the rc10 that trtllm@0.20 ends at)
    assert old.no_window_families == frozenset({"mistral", "mixtral"}) and new.no_window_families == frozenset()
    # one fit, TensorRT-LLM 1.3.0rc20's tables, but trtllm@0.20's Hopper grouped experts are 1.0.0rc3's
    # (tests/test_moe_release.py)
    assert new.calibration is trtllm.CALIBRATION and old.calibration is trtllm.V0_20_CALIBRATION
    assert new.settings_read == (*old.settings_read, "indexer_k_dtype")


def test_unknown_release_is_one_line_listing_the_known_ones(cli):
    with pytest.raises(InvalidInput, match=r"^unknown trtllm version '1.4'; kvplan knows 0.17, 0.20, 1.3 \(select"):
        get_engine("trtllm@1.4")
    out = cli("capacity", "llama-3.1-8b", "--gpu", "h100-sxm", "-c", "8k", "--engine", "trtllm@1.4")
    assert out.exit_code == 2 and "Traceback" not in out.output
    assert out.output.strip().count("\n") == 0, out.output  # one line
    assert "kvplan knows 0.17, 0.20, 1.3" in out.output


# ---- attention spans: PR #12597 ------------------------------------------------------------------------------


def test_mistral_attends_to_its_window_from_1_3_and_to_the_whole_context_before():
    # Mistral 7B v0.1: window 4096 on every layer (config.json sliding_window 4096)
    assert {k.type for k in MISTRAL.layers.kinds.values()} == {"sliding"}
    assert get_engine("trtllm").attention_spans(MISTRAL, Settings()) is None  # the checkpoint's window
    assert kernel_spec(MISTRAL, "trtllm") is MISTRAL
    assert get_engine("trtllm@0.20").attention_spans(MISTRAL, Settings()) == {"sliding": None}
    assert kernel_spec(MISTRAL, "trtllm@0.20").kind("sliding").type == "full"
    # Mixtral 8x7B: config.json sliding_window null, no windowed layer: the PR changes nothing (both follow it)
    assert {k.type for k in MIXTRAL.layers.kinds.values()} == {"full"}
    for engine in ("trtllm", "trtllm@0.20"):
        assert get_engine(engine).attention_spans(MIXTRAL, Settings()) is None
        assert kernel_spec(MIXTRAL, engine) is MIXTRAL


def _decode_attention(engine: str, context: int) -> float:
    return step_latency(MISTRAL, H100, context, phase="decode", kv_dtype_name="bf16", weights_dtype="bf16",
                        attention_flops=0, engine=engine).attention  # fmt: skip


def test_mistral_decode_at_32k_reads_the_window_under_1_3():
    """TensorRT-LLM's Hopper decode keeps the older sum (hopper_gqa_decode None): per layer attn_layer_s 12.53 us +
    held bytes / (3350e9 x 0.8451 = 2.831085e12 B/s) + batch x attn_seq_s 0.07637 us. bf16 KV, 2 x 8 x 128 x 2 =
    4,096 B a token and layer; 32 layers.

    * 1.3 (the window, 4,096 tokens): 16,777,216 B -> 5.926073 us; 18.532443 us a layer; 0.5930382 ms;
    * 0.20 (every one of 32,768 tokens): 134,217,728 B -> 47.40858 us; 60.01495 us a layer; 1.920478 ms."""
    cal = calibration("trtllm")
    assert (cal.attn_decode_mem_eff, cal.attn_layer_s, cal.attn_seq_s, cal.hopper_gqa_decode) == (
        0.8451, 1.253e-05, 7.637e-08, None)  # fmt: skip
    assert H100.bandwidth_gbps == 3350
    assert _decode_attention("trtllm", 32768) == pytest.approx(0.5930382e-3, rel=1e-6)
    assert _decode_attention("trtllm@1.3", 32768) == pytest.approx(0.5930382e-3, rel=1e-6)
    assert _decode_attention("trtllm@0.20", 32768) == pytest.approx(1.920478e-3, rel=1e-6)
    # inside the window both releases read the same 4,096 tokens
    assert _decode_attention("trtllm", 4096) == pytest.approx(_decode_attention("trtllm@0.20", 4096), rel=1e-12)


def test_cost_prices_mistral_windowed_under_1_3(cli):
    """``kvplan cost`` at 32K: the prefill's and the decode's attention shrink under 1.3, the rest is the same."""
    out = {}
    for engine in ("trtllm", "trtllm@0.20"):
        res = cli("cost", "mistral-7b-v0.1", "--gpu", "h100-sxm", "-c", "32k", "--engine", engine, "-f", "json")
        assert res.exit_code == 0, res.output
        out[engine] = {row["phase"]: row for row in json.loads(res.output)}
    for phase in ("prefill", "decode"):
        assert out["trtllm"][phase]["attention_s"] < out["trtllm@0.20"][phase]["attention_s"]
        assert out["trtllm"][phase]["gemm_s"] == out["trtllm@0.20"][phase]["gemm_s"]
    # decode: only the attention moves, by 1.920478 - 0.5930382 = 1.3274398 ms (the test above)
    assert out["trtllm@0.20"]["decode"]["time_s"] - out["trtllm"]["decode"]["time_s"] == pytest.approx(
        1.3274398e-3, rel=1e-5
    )


# ---- capacity: unchanged (the cache keeps every token unless max_attention_window is set) ---------------------


def test_mistral_capacity_is_the_same_under_both_releases():
    """The V1 KV cache manager (the default; use_kv_cache_manager_v2 False) keeps one pool of every token for Mistral
    in both releases: its window reaches the cache only through --max-attention-window. On one H100 at 32K, bf16:
    474,976 tokens = 14,843 blocks of 32 (since stop 30 the budget less 0.9 x the default 128-row decode graph's pool,
    captured before the KV estimation; 14,845 before); a request of 32,768 tokens takes 1,024 blocks: 14,843 / 1,024 =
    14.495 -> 14 sequences, 474,976 x 131,072 B (32 layers x 4,096 B) = 62,256,054,272 B."""
    results = {e: capacity(setup(MISTRAL, H100, engine=e), context=32768) for e in ("trtllm", "trtllm@0.20")}
    new, old = results["trtllm"], results["trtllm@0.20"]
    assert new.kv_pool_tokens == old.kv_pool_tokens == 474_976
    assert new.kv_pool_bytes == old.kv_pool_bytes == 474_976 * 131_072
    assert new.max_concurrent_sequences == old.max_concurrent_sequences == 14 == 14_843 // 1_024
    # the startup figure: the share's bytes before the blocks round them, 14.495-14.496
    assert new.engine_reported_concurrency == old.engine_reported_concurrency == pytest.approx(14_843 / 1_024, abs=2e-3)
    # with the flag, the pools the window sizes: the same under both (38 sequences, README)
    windowed = Settings(max_attention_window=(4096,))
    both = [
        capacity(setup(MISTRAL, H100, engine=e, settings=windowed), context=32768) for e in ("trtllm", "trtllm@0.20")
    ]
    assert both[0].max_concurrent_sequences == both[1].max_concurrent_sequences == 38


@pytest.mark.parametrize(
    "args",
    [
        ["capacity", "llama-3.1-8b", "--gpu", "h100-sxm", "-c", "8k"],
        ["capacity", "mixtral-8x7b", "--gpu", "h200", "--tp", "2", "-c", "32k"],
        ["cost", "llama-3.1-8b", "--gpu", "h100-sxm", "-c", "2k"],
        ["plan", "qwen3-8b", "--users", "8", "-c", "8k", "--gpus", "h100-sxm"],
        ["plan", "mixtral-8x7b", "--rate", "1", "--gpus", "h200"],
    ],
)
def test_commands_run_with_trtllm_at_1_3_as_with_the_default(cli, args):
    """Every command that takes an engine takes ``--engine trtllm@1.3`` and answers as ``--engine trtllm`` (the same
    rule set); for these models (no Mistral window) also as ``trtllm@0.20``, bar the versions it names (the rule
    set's and its calibration's), except where it prices grouped experts on Hopper (Mixtral's plan on H200:
    trtllm@0.20's own 1.0.0rc3 curve, tests/test_moe_release.py). ``estimate`` takes no engine (the ideal layout)."""
    outs = {e: cli(*args, "--engine", e) for e in ("trtllm", "trtllm@1.3", "trtllm@0.20")}
    for engine, out in outs.items():
        assert out.exit_code == 0, (engine, out.output)
    # plan echoes the engine as it was named
    assert outs["trtllm@1.3"].output.replace("trtllm@1.3", "trtllm") == outs["trtllm"].output
    new, old = trtllm.ENGINE.version, trtllm.V0_20.version
    older = outs["trtllm@0.20"].output.replace(old, new).replace("trtllm@0.20", "trtllm")
    older = older.replace(trtllm.V0_20_CALIBRATION.version, trtllm.CALIBRATION.version)
    hopper_moe = args[:2] == ["plan", "mixtral-8x7b"]
    assert (older == outs["trtllm"].output) is not hopper_moe


# ---- transformers as the oracle: a windowed Mistral layer attends to its last W keys -----------------------------


def test_transformers_mistral_layer_attends_to_the_last_window_keys():
    """One Mistral layer with a 4-token window (transformers MistralConfig.sliding_window): the last position's output
    does not depend on a token 4 or more positions back and does on one 3 back, so a new token at context L attends
    to min(L, W) keys, what kvplan.attention.decode_span gives and what 1.3 prices for Mistral (attention_spans None:
    the checkpoint's window). Without the window it depends on every token (what 0.20 priced)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from kvplan.attention import decode_span

    def layer(window: int | None):  # noqa: ANN202
        config = transformers.MistralConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
            head_dim=8, vocab_size=64, sliding_window=window, pad_token_id=None, bos_token_id=None, eos_token_id=None,
        )  # fmt: skip
        config._attn_implementation = "eager"
        torch.manual_seed(0)
        model = transformers.MistralModel(config).eval()

        def last(ids):  # noqa: ANN001, ANN202
            with torch.no_grad():
                return model(input_ids=ids).last_hidden_state[0, -1]

        return last

    length, window = 12, 4
    windowed, full = layer(window), layer(None)
    base = torch.arange(length).unsqueeze(0) % 64
    for back, changes in ((length - 1, False), (window, False), (window - 1, True)):
        other = base.clone()
        other[0, length - 1 - back] = (other[0, length - 1 - back] + 7) % 64
        assert (not torch.allclose(windowed(base), windowed(other))) is changes, back
    far = base.clone()
    far[0, 0] = (far[0, 0] + 7) % 64
    assert not torch.allclose(full(base), full(far))
    kind = MISTRAL.kind("sliding")
    assert (kind.window, decode_span(kind, 32768), decode_span(kind, 1000)) == (4096, 4096, 1000)

"""DeepSeek-V3.2 (DSA: MLA latent + the lightning indexer's key cache) in each serving engine's KV pool:
SGLang's NSA pool (kvplan.engines.sglang NsaLayout). vLLM's layout is tested in tests/test_dsa_decode.py."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kvplan.capacity import capacity, setup
from kvplan.catalog import load_bundled
from kvplan.cli import app
from kvplan.engines import ENGINES, Settings
from kvplan.engines.sglang import NsaLayout
from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu

H200 = resolve_gpu("h200")
V32 = load_bundled("deepseek-v3.2-exp")
runner = CliRunner()


# ---- SGLang: NSATokenToKVPool ----------------------------------------------------------------------


def test_sglang_nsa_bytes_per_token_allocated():
    sglang = ENGINES["sglang"]
    # bf16: latent row (512 + 64) x 2 B = 1,152 + indexer key 128 fp8 + 128 / 128 x 4 B scale = 132; x 61 layers
    assert sglang.cache_plan(V32, kv_dtype_name="bf16", tp=8, pp=1).bytes_per_token == 8 * 61 * 1_284
    # fp8_e4m3: kv_cache_dim 512 + 512 / 128 x 4 + 64 x 2 = 656 one-byte elements + 132; x 61 = 48,068 (vLLM's too)
    fp8 = sglang.cache_plan(V32, kv_dtype_name="fp8", tp=1, pp=1)
    assert fp8.bytes_per_token == 61 * 788 == 48_068
    assert fp8.bytes_per_token == ENGINES["vllm"].cache_plan(V32, kv_dtype_name="fp8", tp=1, pp=1).bytes_per_token
    # the ideal (transformers) layout is unchanged: 61 x (576 + 128) x 2 B at bf16
    assert ENGINES["ideal"].cache_plan(V32, kv_dtype_name="bf16", tp=1, pp=1).bytes_per_token == 61 * 704 * 2


def _layout(kv: str, **kw) -> NsaLayout:  # noqa: ANN003
    lay = setup(V32, H200, engine="sglang", tp=8, kv_dtype_name=kv, **kw).stages[0].layout
    assert isinstance(lay, NsaLayout)
    return lay


def test_sglang_counts_the_plain_latent_row_and_allocates_the_fp8_row():
    # get_cell_size_per_token: (512 + 64) x element size + 132 per layer. bf16: 61 x 1,284 = 78,324, what is
    # allocated; fp8: 61 x (576 + 132) = 43,188, while each token takes 61 x 788 = 48,068 B.
    bf16, fp8 = _layout("bf16"), _layout("fp8")
    assert (bf16.counted_bytes_per_token, bf16.stage.bytes_per_token) == (78_324, 78_324)
    assert (fp8.counted_bytes_per_token, fp8.stage.bytes_per_token) == (43_188, 48_068)
    # 1 GiB: 1,073,741,824 // 43,188 = 24,862 tokens -> 24,832 in pages of 64; the pool then holds
    # 24,832 x 48,068 = 1,193,624,576 B, 11% over the budget it was sized from
    assert fp8.pool_tokens(2**30) == 24_832
    assert fp8.pool_bytes(2**30, sequences=1, length=1) == 24_832 * 48_068 == 1_193_624_576
    # a sequence takes whole pages: 4,097 tokens -> 65 pages x 64 x 48,068 B; the pool holds 24,832 // 4,160 = 5
    assert fp8.units_for(1, 4_097) == 65 * 64 * 48_068
    assert fp8.max_sequences(2**30, 4_097) == 5


def test_sglang_nsa_page_is_64_whatever_is_given():
    # server_args.py _handle_model_specific_adjustments: page_size = 64 for DeepSeek DSA on CUDA
    assert _layout("bf16").block_tokens == 64
    assert _layout("fp8", settings=Settings(block_size=1)).block_tokens == 64
    assert _layout("fp8", settings=Settings(block_size=32)).block_tokens == 64


@pytest.mark.parametrize("kv", ["fp16", "fp8_e5m2", "fp4_e2m1"])
def test_sglang_refuses_kv_dtypes_its_nsa_backend_refuses(kv):
    with pytest.raises(InvalidInput, match="bf16 or fp8_e4m3 only") as exc:
        ENGINES["sglang"].cache_plan(V32, kv_dtype_name=kv, tp=1, pp=1)
    assert "\n" not in str(exc.value)


def test_sglang_nsa_refuses_the_expanded_mla_layout():
    with pytest.raises(InvalidInput, match="holds the MLA latent"):
        ENGINES["sglang"].cache_plan(V32, kv_dtype_name="bf16", tp=1, pp=1, mla="expanded")


def test_sglang_capacity_h200_tp8():
    # H200 TP 8, 32K context. Before: refused ("no sglang layout for it yet"). After:
    # available 47,644,168,876 B (free at start 139.94 GiB - 1.01 GiB context, x 0.896 - 80.11 GiB weights), less the
    # w_kc / w_vc bf16 copies SGLang keeps beside kv_b_proj (kvplan.engines.sglang.mla_kv_b_copy_bytes): 61 layers x
    # 16 heads on the rank x (128 + 128) x 512 x 2 B = 255,852,544 B, and the indexer's weights_proj in fp32
    # (indexer_fp32_bytes): 61 x 7,168 x 64 x 2 B = 55,967,744 B more than its 16-bit count -> 47,332,348,588 B
    # bf16: // 78,324 = 604,314.4 -> 604,288 tokens (pages of 64); 604,288 / 32,768 = 18.44 -> 18 sequences
    # fp8: // 43,188 = 1,095,960.6 -> 1,095,936 tokens; a 32,768-token request = 512 pages, 33.45 -> 33 sequences
    bf16 = capacity(setup(V32, H200, engine="sglang@0.5", tp=8, kv_dtype_name="bf16"), 32_768)
    fp8 = capacity(setup(V32, H200, engine="sglang@0.5", tp=8, kv_dtype_name="fp8"), 32_768)
    assert bf16.available_kv_bytes == fp8.available_kv_bytes == 47_644_168_876 - 255_852_544 - 55_967_744
    assert fp8.available_kv_bytes == 47_332_348_588
    assert (bf16.kv_pool_tokens, bf16.max_concurrent_sequences) == (604_288, 18)
    assert (fp8.kv_pool_tokens, fp8.max_concurrent_sequences) == (1_095_936, 33)
    assert fp8.kv_pool_bytes == 1_095_936 * 48_068 > fp8.available_kv_bytes
    assert fp8.block_tokens == 64


def test_sglang_v32_cli_capacity_and_launch_line():
    base = ["capacity", "deepseek-v3.2-exp", "--engine", "sglang@0.5", "--gpu", "h200", "--tp", "8", "-c", "32k"]
    out = runner.invoke(app, [*base, "--kv-dtype", "bf16"])
    assert out.exit_code == 0, out.output
    # "auto" would be fp8_e4m3 on SM100 for DSA: the launch spells the dtype out; the page is forced to 64
    assert "--kv-cache-dtype bf16 --page-size 64 --tp 8" in out.output
    assert "604,288" in out.output
    out = runner.invoke(app, [*base, "--kv-dtype", "fp8"])
    assert out.exit_code == 0 and "--kv-cache-dtype fp8_e4m3" in out.output and "1,095,936" in out.output
    bad = runner.invoke(app, [*base, "--kv-dtype", "fp8_e5m2"])
    assert bad.exit_code == 2
    assert "bf16 or fp8_e4m3 only" in bad.output and "Traceback" not in bad.output


def test_sglang_v32_plan_accepts_it():
    out = runner.invoke(app, ["plan", "deepseek-v3.2-exp", "--engine", "sglang", "--users", "64", "-c", "32k",
                              "--gpus", "h200"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "--kv-cache-dtype" in out.output and "--page-size 64" in out.output


def test_sglang_v32_startup_log_pool_size():
    # engine_logs.json sglang-05 (SGLang main 2025-10-07, PR #11309; B200, --tp 8 --dp 8, fp8 by the NSA default on
    # SM100): "KV Cache is allocated. #tokens: 975424, KV size: 43.67 GB" = 975,424 x 48,068 B / 2^30 = 43.667 GiB,
    # the allocated 656 + 132 B rows; sizing counts 43,188 B a token. The log names no free memory, so the token
    # count itself is not predicted.
    from kvplan.logcheck import check_text

    text = (  # the entry's excerpt, its first three lines
        "$ python -m sglang.launch_server --model deepseek-ai/DeepSeek-V3.2-Exp --tp 8 --dp 8 --enable-dp-attention\n"
        "[2025-10-07 23:17:19 DP0 TP0] KV Cache is allocated. #tokens: 975424, KV size: 43.67 GB\n"
        "[2025-10-07 23:17:19 DP0 TP0] Memory pool end. avail mem=37.71 GB\n"
    )
    rows = {r["term"]: r for r in check_text(text, engine="sglang", model="deepseek-v3.2-exp", gpu="b200").rows}
    pool = rows["KV pool size for the logged tokens"]
    assert pool["logged_value"] == 43.67
    assert pool["predicted_value"] == pytest.approx(975_424 * 48_068 / 2**30) == pytest.approx(43.6666, abs=1e-4)
    assert rows["cell size (bytes per token, per GPU)"]["predicted_value"] == 43_188
    # on a Hopper GPU SGLang's auto dtype is bf16: 78,324 B counted and allocated
    hopper = {r["term"]: r for r in check_text(text, engine="sglang", model="deepseek-v3.2-exp", gpu="h200").rows}
    assert hopper["cell size (bytes per token, per GPU)"]["predicted_value"] == 78_324
    # the log's own "Setting KV cache dtype" line wins over the GPU's default
    said = text + "Setting KV cache dtype to fp8_e4m3 for DeepSeek DSA on SM90 device.\n"
    rows = {r["term"]: r for r in check_text(said, engine="sglang", model="deepseek-v3.2-exp", gpu="h200").rows}
    assert rows["cell size (bytes per token, per GPU)"]["predicted_value"] == 43_188


# ---- TensorRT-LLM: DSACacheManager -----------------------------------------------------------------


def test_trtllm_dsa_bytes_per_token():
    trtllm = ENGINES["trtllm"]
    # the latent at the KV dtype + the UINT8 indexer key, 128 fp8 + 4 B scale = 132: bf16 61 x (1,152 + 132) = 78,324;
    # per-tensor fp8 61 x (576 + 132) = 43,188 (no FlashMLA 656-byte row: that is SGLang's and vLLM's fp8 format)
    assert trtllm.cache_plan(V32, kv_dtype_name="bf16", tp=8, pp=1).bytes_per_token == 8 * 78_324
    assert trtllm.cache_plan(V32, kv_dtype_name="fp8", tp=1, pp=1).bytes_per_token == 61 * 708 == 43_188


@pytest.mark.parametrize("gpu", ["h200", "b200"])
def test_trtllm_dsa_blocks_are_64_tokens(gpu):
    # Hopper: FlashMLA's 64 anyway; Blackwell: 64 where another MLA model gets the default 32
    lay = setup(V32, resolve_gpu(gpu), engine="trtllm", tp=8, kv_dtype_name="fp8").stages[0].layout
    assert lay.block_tokens == 64 and lay.settings() == {"tokens_per_block": 64}
    v3 = setup(load_bundled("deepseek-v3"), resolve_gpu(gpu), engine="trtllm", tp=8, kv_dtype_name="fp8")
    assert v3.stages[0].layout.block_tokens == (64 if gpu == "h200" else 32)
    with pytest.raises(InvalidInput, match="KV blocks of 64 tokens only") as exc:
        setup(V32, resolve_gpu(gpu), engine="trtllm", tp=8, settings=Settings(block_size=32))
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("kv", ["fp16", "int8"])
def test_trtllm_refuses_kv_dtypes_dsa_does_not_run(kv):
    with pytest.raises(InvalidInput, match="BF16 or per-tensor FP8 KV cache"):
        ENGINES["trtllm"].cache_plan(V32, kv_dtype_name=kv, tp=1, pp=1)


def test_trtllm_v017_still_refuses_v32():
    from kvplan.engines import get_engine

    with pytest.raises(InvalidInput, match="indexer key cache"):
        get_engine("trtllm@0.17").cache_plan(V32, kv_dtype_name="bf16", tp=1, pp=1)


def test_trtllm_capacity_h200_tp8():
    # H200 TP 8, 32K context. Before: refused. After: available 54,096,712,958 B ((139.94 GiB - 80.11 weights - 1.23
    # activation - 2.57 non-torch - 0.05 the default 128-row decode graphs' pool, 52,017,234 B, since stop 30) x 0.9);
    # bf16 blocks of 64 x 78,324 = 5,012,736 B: 10,791 -> 690,624 tokens, 21 sequences of 512 blocks; fp8 blocks of
    # 64 x 43,188 = 2,764,032 B: 19,571 -> 1,252,544 tokens, 38 sequences
    bf16 = capacity(setup(V32, H200, engine="trtllm", tp=8, kv_dtype_name="bf16"), 32_768)
    fp8 = capacity(setup(V32, H200, engine="trtllm", tp=8, kv_dtype_name="fp8"), 32_768)
    assert bf16.available_kv_bytes == fp8.available_kv_bytes == 54_096_712_958
    assert (bf16.kv_pool_tokens, bf16.max_concurrent_sequences) == (690_624, 21)
    assert (fp8.kv_pool_tokens, fp8.max_concurrent_sequences) == (1_252_544, 38)
    out = runner.invoke(app, ["capacity", "deepseek-v3.2-exp", "--engine", "trtllm", "--gpu", "h200", "--tp", "8",
                              "-c", "32k", "--kv-dtype", "fp8"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "`kv_cache_config: {tokens_per_block: 64}`" in out.output and "1,252,544" in out.output
    bad = runner.invoke(app, ["capacity", "deepseek-v3.2-exp", "--engine", "trtllm", "--gpu", "h200", "-c", "4k",
                              "--tp", "8", "--kv-dtype", "int8"])  # fmt: skip
    assert bad.exit_code == 2 and "per-tensor FP8" in bad.output and "Traceback" not in bad.output


def test_trtllm_v32_plan_accepts_it():
    out = runner.invoke(app, ["plan", "deepseek-v3.2-exp", "--engine", "trtllm", "--users", "64", "-c", "32k",
                              "--gpus", "h200,b200"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "trtllm-serve" in out.output


# ---- the decode reads each engine's rows -----------------------------------------------------------


def test_sparse_decode_reads_each_engines_fp8_row():
    # FLOPs outweigh the reads at these shapes, so the kernel efficiency is raised until the reads bind: 2,048 selected
    # rows x 64 sequences of 656 B (vLLM's and SGLang's FlashMLA row) or 576 B (TensorRT-LLM's per-tensor fp8 row) at
    # 4.8e12 B/s x mla_decode_mem_eff
    from dataclasses import replace

    from kvplan.latency import _engine_ctx, _sparse_decode_s

    kind = V32.kind("mla_indexed")
    for engine, row in (("vllm", 656), ("sglang", 656), ("trtllm", 576)):
        c = _engine_ctx(V32, H200, engine, kv_dtype="fp8", tp=8, weights_dtype="fp8", eager=False, ep=False, dp=1,
                        pp=1, gpus_per_node=None, two_batch=False, deepep=False)  # fmt: skip
        fast = replace(c, cal=replace(c.cal, sparse_mla_decode_eff=1e6))
        want = row * 2_048 * 64 / (4.8e12 * c.cal.mla_decode_mem_eff)
        assert _sparse_decode_s(fast, kind, context=4_096, seqs=64, kv_dtype="fp8") == pytest.approx(want, rel=1e-9)


def test_trtllm_dsa_refuses_attention_windows():
    with pytest.raises(InvalidInput, match="indexer cache: kvplan has not read how TensorRT-LLM windows it"):
        setup(V32, H200, engine="trtllm", tp=8, settings=Settings(max_attention_window=(4096,)))


# ---- TensorRT-LLM's FP4 indexer keys (sparse_attention_config.indexer_k_dtype, PR #13340) --------------------------


def test_fp4_indexer_key_is_68_bytes():
    # 128 E2M1 values two a byte = 64 B, one UE8M0 exponent per 32 = 4 B (createIndexerKCachePools: index_head_dim / 2
    # data bytes, index_head_dim / 128 x 4 scale bytes); fp8: 128 + one float32 per 128 = 132
    from kvplan.engines import get_engine
    from kvplan.memory import dsa_index_key_bytes

    kind = V32.kind("mla_indexed")
    assert dsa_index_key_bytes(kind) == 132
    fp4 = get_engine("trtllm").model_as_run(V32, Settings(indexer_k_dtype="fp4"))
    assert dsa_index_key_bytes(fp4.kind("mla_indexed")) == 68
    assert get_engine("trtllm").model_as_run(V32, Settings(indexer_k_dtype="fp4")) is fp4  # one copy per spec
    assert get_engine("trtllm").model_as_run(V32, Settings(indexer_k_dtype="fp8")) is V32


def test_trtllm_capacity_b200_tp8_with_the_fp4_indexer():
    # B200 TP 8, 32K: available 91,456,636,977 B either way (less 0.9 x the default decode graphs' pool since stop 30,
    # 91,503,452,488 before). fp8 latent: 61 x (576 + 132) = 43,188 B a token, blocks of
    # 64 x 43,188 = 2,764,032 B -> 2,117,632 tokens, 64 sequences; FP4 keys: 61 x (576 + 68) = 39,284 B, blocks of
    # 2,514,176 B -> 2,328,064 tokens, 71 sequences. bf16 latent: 61 x (1,152 + 132) = 78,324 -> 35 sequences;
    # 61 x (1,152 + 68) = 74,420 -> 37.
    b200 = resolve_gpu("b200")

    def run(kv: str, settings: Settings):  # noqa: ANN202
        return capacity(setup(V32, b200, engine="trtllm", tp=8, kv_dtype_name=kv, settings=settings), 32_768)

    fp8, fp4 = run("fp8", Settings()), run("fp8", Settings(indexer_k_dtype="fp4"))
    assert fp8.available_kv_bytes == fp4.available_kv_bytes == 91_456_636_977
    assert (fp8.kv_pool_tokens, fp8.max_concurrent_sequences) == (2_117_632, 64)
    assert (fp4.kv_pool_tokens, fp4.max_concurrent_sequences) == (2_328_064, 71)
    assert fp4.kv_pool_tokens == 91_456_636_977 // (64 * 39_284) * 64
    assert run("bf16", Settings()).max_concurrent_sequences == 35
    assert run("bf16", Settings(indexer_k_dtype="fp4")).max_concurrent_sequences == 37
    out = runner.invoke(app, ["capacity", "deepseek-v3.2-exp", "--engine", "trtllm", "--gpu", "b200", "--tp", "8",
                              "-c", "32k", "--kv-dtype", "fp8", "--indexer-k-dtype", "fp4"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "2,328,064" in out.output
    assert "`sparse_attention_config: {algorithm: dsa, indexer_k_dtype: fp4}`" in out.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-e", "trtllm", "--gpu", "h200", "--indexer-k-dtype", "fp4"], "needs Blackwell (SM >= 100"),
        (["-e", "trtllm", "--gpu", "b200", "--indexer-k-dtype", "int4"], "invalid --indexer-k-dtype 'int4'"),
        (["-e", "sglang", "--gpu", "b200", "--indexer-k-dtype", "fp4"], "does not apply to engine 'sglang'"),
        (["-e", "trtllm@0.20", "--gpu", "b200", "--indexer-k-dtype", "fp4"], "does not apply to trtllm@0.20"),
    ],
)
def test_fp4_indexer_refusals_in_one_line(args, message):
    out = runner.invoke(app, ["capacity", "deepseek-v3.2-exp", "--tp", "8", "-c", "32k", *args])
    assert out.exit_code == 2
    assert len(out.output.strip().splitlines()) == 1 and message in out.output


def test_fp4_indexer_needs_an_indexer():
    out = runner.invoke(app, ["capacity", "llama-3.1-8b", "-e", "trtllm", "--gpu", "b200", "-c", "4k",
                              "--indexer-k-dtype", "fp4"])  # fmt: skip
    assert out.exit_code == 2 and "llama-3.1-8b has none" in out.output


def test_plan_takes_the_fp4_indexer():
    base = ["plan", "deepseek-v3.2-exp", "--engine", "trtllm", "--gpus", "b200", "--kv-dtype", "fp8", "-f", "json"]

    def first(*more: str) -> dict:
        out = runner.invoke(app, [*base, *more])
        assert out.exit_code == 0, out.output
        import json

        return json.loads(out.output)["plans"][0]

    # 8 x B200 as attention DP 8 + EP 8 comes first either way: 376 -> 416 sequences (each rank's pool holds the
    # latent and the keys of its own requests)
    users = ("--users", "64", "-c", "32k", "--weights-dtype", "fp8")
    fp8, fp4 = first(*users), first(*users, "--indexer-k-dtype", "fp4")
    assert (fp8["gpus"], fp8["dp"], fp4["gpus"], fp4["dp"]) == (8, 8, 8, 8)
    assert (fp8["sequences_per_replica"], fp4["sequences_per_replica"]) == (376, 416)
    assert "indexer_k_dtype: fp4" in " ".join(fp4["launch_notes"])


def test_cost_reads_the_fp4_indexer_keys():
    # 8 x B200 TP8, 64 sequences at 32K, decode: the indexer reads every cached key, 132 -> 68 B a key, so the step
    # is shorter (the calibrated DSA decode, kvplan.latency); refused on Hopper, by vLLM, and with --training
    from kvplan.cost import phase_cost

    b200 = resolve_gpu("b200")

    def step(**kw) -> float:  # noqa: ANN003
        return phase_cost(V32, b200, 32_768, phase="decode", batch=64, tp=8, kv_dtype_name="fp8", engine="trtllm",
                          **kw).time_s  # fmt: skip

    assert step(indexer_k_dtype="fp4") < step()
    assert step(indexer_k_dtype="fp8") == step()
    base = ["cost", "deepseek-v3.2-exp", "--tp", "8", "-c", "32k", "--indexer-k-dtype", "fp4"]
    for more, message in (
        (["--gpu", "h200", "--engine", "trtllm"], "needs Blackwell"),
        (["--gpu", "b200"], "does not apply to engine 'vllm'"),
        (["--training"], "a --training step holds none"),
    ):
        out = runner.invoke(app, [*base, *more])
        assert out.exit_code == 2 and message in out.output and len(out.output.strip().splitlines()) == 1

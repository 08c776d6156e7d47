"""4-bit float KV caches: TensorRT-LLM's and vLLM's nvfp4, SGLang's fp4_e2m1; bytes per token by each engine's own
layout (scales included), where each engine and GPU accepts them, and the decode bytes the attention reads."""

from __future__ import annotations

import json

import pytest

from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.cost import phase_cost, step_bytes
from kvplan.engines import get_engine
from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu
from kvplan.memory import cache_plan
from tests.skeletons import skeleton

B200, H200 = resolve_gpu("b200"), resolve_gpu("h200")
LLAMA = load_bundled("llama-3.1-8b")  # 32 layers, 8 KV heads of head_dim 128


def _engine_bytes(engine: str, spec, kv: str, *, tp: int = 1) -> int:  # noqa: ANN001
    return get_engine(engine).cache_plan(spec, kv_dtype_name=kv, tp=tp, pp=1).bytes_per_token


# ---- bytes per token, by hand from each engine's formula ------------------------------------------------------


def test_llama_8b_in_four_bits_is_nine_sixteenths_of_a_byte_in_every_engine():
    # TensorRT-LLM (_get_static_cache_size_layer_components): E = 2 x 128 x 8 = 2,048 values a layer;
    #   ceil(2048 / 2) + ceil(2048 / 16) = 1,024 + 128 = 1,152 B; x 32 layers = 36,864 B/token
    # vLLM (FullAttentionSpec nvfp4): per head 128 // 2 + 128 // 16 = 72 B for K and 72 for V; 8 heads x 144 = 1,152
    # SGLang (get_cell_size_per_token fp4): cell 8 x 256 x 32 = 65,536; 65,536 // 2 + 8 x 128 x 32 x 2 // 16
    #   = 32,768 + 4,096 = 36,864
    # bf16: 2 x 8 x 128 x 2 B x 32 = 131,072 B/token, so 36,864 / 131,072 = 9/32
    assert _engine_bytes("trtllm", LLAMA, "nvfp4") == 36_864
    assert _engine_bytes("vllm", LLAMA, "nvfp4") == 36_864
    assert _engine_bytes("sglang", LLAMA, "fp4_e2m1") == 36_864
    assert cache_plan(LLAMA, "nvfp4").bytes_per_token == 36_864  # the engine-neutral 9/16 (estimate)
    assert cache_plan(LLAMA, "bf16").bytes_per_token * 9 // 32 == 36_864


def test_tensor_parallel_splits_the_heads_before_the_rounding():
    # TP 2: 4 KV heads a rank; TensorRT-LLM E = 2 x 128 x 4 = 1,024 -> 512 + 64 = 576 B a layer, 18,432 a rank;
    # the plan's whole-model figure counts both ranks: 36,864
    plan = get_engine("trtllm").cache_plan(LLAMA, kv_dtype_name="nvfp4", tp=2, pp=1)
    assert plan.stages[0].bytes_per_token == 18_432 and plan.bytes_per_token == 36_864


def test_head_dim_off_the_scale_block_shows_each_engines_rounding():
    # 6 layers, 2 KV heads of head_dim 72 (72 = 4.5 scale blocks):
    # vLLM floors per head: 72 // 2 + 72 // 16 = 36 + 4 = 40 B for K, 40 for V; 2 heads x 80 = 160 B a layer -> 960
    # TensorRT-LLM rounds up per layer: E = 2 x 72 x 2 = 288; 144 + 18 = 162 -> 972
    # SGLang: cell 2 x 144 x 6 = 1,728; 1,728 // 2 + 2 x 72 x 6 x 2 // 16 = 864 + 108 = 972
    # neutral: K and V each ceil(144 x 9 / 16) = 81 -> 162 a layer -> 972
    spec = skeleton(head_dim=72, num_attention_heads=8, hidden_size=576)
    assert _engine_bytes("vllm", spec, "nvfp4") == 960
    assert _engine_bytes("trtllm", spec, "nvfp4") == 972
    assert _engine_bytes("sglang", spec, "fp4_e2m1") == 972
    assert cache_plan(spec, "nvfp4").bytes_per_token == 972


def test_sglang_keeps_the_mla_latent_in_fp4_with_its_scales():
    # DeepSeek-V3: latent 512 + 64 = 576 values, 61 layers; SGLang MLA fp4 cell: 576 x 61 // 2 + 576 // 16 x 61
    #   = 17,568 + 2,196 = 19,764 B/token on every rank (the latent is replicated); bf16: 576 x 2 x 61 = 70,272
    spec = load_bundled("deepseek-v3")
    plan = get_engine("sglang").cache_plan(spec, kv_dtype_name="fp4_e2m1", tp=8, pp=1)
    assert plan.stages[0].bytes_per_token == 19_764
    assert get_engine("sglang").cache_plan(spec, kv_dtype_name="bf16", tp=8, pp=1).stages[0].bytes_per_token == 70_272


def test_layer_kinds_without_per_head_kv_keep_their_bytes():
    # sliding layers take the same rounding with their window cap kept: 2 heads x 32 = 64 values a side; TensorRT-LLM
    # E = 128 -> 64 + 8 = 72 B a layer, all 6 layers (4 local of window 64, 2 global)
    from tests.skeletons import sliding_skeleton

    plan = get_engine("trtllm").cache_plan(sliding_skeleton(64), kv_dtype_name="nvfp4", tp=1, pp=1)
    assert [c.bytes_per_token for c in plan.layers] == [72] * 6
    assert [c.max_tokens for c in plan.layers] == [64, 64, None, 64, 64, None]


# ---- transformers says what is cached; the engine says how -------------------------------------------------


@pytest.mark.slow  # builds a transformers model (about 5 s on CPU the first time)
def test_the_elements_are_those_transformers_caches():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from kvplan.hf import spec_from_hf_config

    # a 2-layer Llama with 2 KV heads of head_dim 72: transformers' DynamicCache holds K and V [B, 2, S, 72] a layer
    config = transformers.LlamaConfig(hidden_size=288, num_attention_heads=4, num_key_value_heads=2, head_dim=72,
                                      num_hidden_layers=2, intermediate_size=64, vocab_size=128,
                                      max_position_embeddings=256)  # fmt: skip
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        cache = model(input_ids=torch.zeros((1, 5), dtype=torch.long), use_cache=True).cache
    per_token = [(layer.keys.shape[1] * layer.keys.shape[-1], layer.values.shape[1] * layer.values.shape[-1])
                 for layer in cache.layers]  # fmt: skip
    assert per_token == [(144, 144), (144, 144)]
    spec = spec_from_hf_config(config.to_dict(), origin="skeleton").spec
    # vLLM per head (72 // 2 + 72 // 16) x 2 sides x 2 heads = 160 a layer; TensorRT-LLM ceil(288 / 2) + ceil(288 / 16)
    # = 162 a layer: 2 layers -> 320 and 324
    assert _engine_bytes("vllm", spec, "nvfp4") == 2 * 160
    assert _engine_bytes("trtllm", spec, "nvfp4") == sum(k + v for k, v in per_token) // 2 + 2 * 18 == 324


# ---- capacity: the pool divided by the 4-bit cell --------------------------------------------------------------


def test_capacity_fills_the_same_pool_with_more_tokens():
    # TensorRT-LLM on B200: the KV budget does not depend on the KV dtype; blocks of 32 tokens x 36,864 B
    # = 1,179,648 B hold 32 tokens (bf16: 32 x 131,072 = 4,194,304 B)
    fp4 = setup(LLAMA, B200, engine="trtllm", kv_dtype_name="nvfp4")
    bf16 = setup(LLAMA, B200, engine="trtllm", kv_dtype_name="bf16")
    available = fp4.stages[0].available
    assert available == bf16.stages[0].available
    assert fp4.stages[0].layout.pool_tokens(available) == available // 1_179_648 * 32
    assert bf16.stages[0].layout.pool_tokens(available) == available // 4_194_304 * 32


# ---- who accepts it, and where ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--engine", "trtllm", "--gpu", "h200", "--kv-dtype", "nvfp4"], "in 'nvfp4' on h200"),
        (["--engine", "vllm", "--gpu", "h200", "--kv-dtype", "nvfp4"], "SM100 Blackwell only"),
        (["--engine", "vllm@0.19", "--gpu", "b200", "--kv-dtype", "nvfp4"], "it accepts bf16, fp16, fp8"),
        (["--engine", "sglang", "--gpu", "b200", "--kv-dtype", "nvfp4"], "fp8, fp4_e2m1"),
        (["--engine", "trtllm", "--gpu", "b200", "--kv-dtype", "fp4_e2m1"], "fp8, int8, nvfp4"),
        (["--engine", "llamacpp", "--gpu", "b200", "--kv-dtype", "nvfp4"], "q8_0, q4_0"),
        (["--engine", "transformers", "--gpu", "b200", "--kv-dtype", "nvfp4"], "bf16, fp16, fp32"),
    ],
)
def test_refusals_are_one_line_exit_2(cli, args, says):  # noqa: ANN001
    r = cli("capacity", "llama-3.1-8b", "-c", "8k", *args)
    assert r.exit_code == 2 and says in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1


@pytest.mark.parametrize("engine", ["vllm", "trtllm"])
def test_mla_in_nvfp4_is_refused_where_its_layout_was_not_read(cli, engine):  # noqa: ANN001
    args = ("-c", "8k", "--gpu", "b200", "--tp", "8", "--engine", engine, "--kv-dtype", "nvfp4")
    r = cli("capacity", "deepseek-v3", *args)
    assert r.exit_code == 2 and "not read its nvfp4 KV layout for MLA" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_accepted_launches(cli):  # noqa: ANN001
    accepted = (("trtllm", "nvfp4", "b200"), ("vllm", "nvfp4", "gb200"), ("sglang", "fp4_e2m1", "h100-sxm"))
    for engine, kv, gpu in accepted:
        r = cli("capacity", "llama-3.1-8b", "-c", "8k", "--engine", engine, "--gpu", gpu, "--kv-dtype", kv)
        assert r.exit_code == 0, r.output
    r = cli("capacity", "llama-3.1-8b", "-c", "8k", "--engine", "vllm", "--gpu", "b200", "--kv-dtype", "nvfp4")
    assert "--kv-cache-dtype nvfp4" in r.output
    r = cli("capacity", "llama-3.1-8b", "-c", "8k", "--engine", "sglang", "--gpu", "b200", "--kv-dtype", "fp4_e2m1")
    assert "--kv-cache-dtype fp4_e2m1" in r.output


def test_estimate_takes_both_as_the_neutral_nine_sixteenths(cli):  # noqa: ANN001
    for kv in ("nvfp4", "fp4_e2m1"):
        r = cli("estimate", "llama-3.1-8b", "-c", "4k", "--kv-dtype", kv)
        assert r.exit_code == 0 and "KV 36,864 bytes/token" in r.output


def test_plan_refuses_a_kv_dtype_no_gpu_or_engine_takes(cli):  # noqa: ANN001
    r = cli("plan", "llama-3.1-8b", "--users", "8", "-c", "8k", "--gpus", "h100-sxm,h200", "--engine", "trtllm",
            "--kv-dtype", "nvfp4")  # fmt: skip
    assert r.exit_code == 2 and "in 'nvfp4' on h100-sxm" in r.output and len(r.output.strip().splitlines()) == 1
    r = cli("plan", "llama-3.1-8b", "--users", "8", "-c", "8k", "--gpus", "b200", "--engine", "sglang",
            "--kv-dtype", "nvfp4")  # fmt: skip
    assert "nothing fits: engine 'sglang' has no KV-cache dtype among nvfp4" in r.output and "fp4_e2m1" in r.output
    targets = ("--rate", "2", "--input", "2k", "--output", "256", "--ttft", "2s", "--tpot", "50ms")
    r = cli("plan", "llama-3.1-8b", "--gpus", "b200", "--engine", "sglang", "--kv-dtype", "nvfp4", *targets)
    assert r.exit_code == 2 and "fp4_e2m1" in r.output and len(r.output.strip().splitlines()) == 1
    # a list keeps what runs somewhere: nvfp4 rows on the B200 only
    r = cli("plan", "llama-3.1-8b", "--users", "8", "-c", "8k", "--gpus", "h200,b200", "--engine", "vllm",
            "--kv-dtype", "nvfp4", "--format", "json")  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)["plans"]
    assert rows and {row["gpu"] for row in rows} == {"b200"} and {row["kv_dtype"] for row in rows} == {"nvfp4"}


# ---- the decode step reads the 4-bit cache ----------------------------------------------------------------------


def test_decode_reads_nine_thirty_seconds_of_the_bf16_bytes():
    # 64 sequences of 32,768 tokens: KV read 64 x 32,768 x 36,864 = 77,309,411,328 B (bf16: x 131,072 = 274,877,906,944)
    fp4 = step_bytes(LLAMA, 32_768, phase="decode", batch=64, kv_dtype_name="nvfp4")
    bf16 = step_bytes(LLAMA, 32_768, phase="decode", batch=64, kv_dtype_name="bf16")
    assert fp4.kv_read == 77_309_411_328 and bf16.kv_read == 274_877_906_944
    assert fp4.kv_write == 64 * 36_864


def test_decode_attention_time_falls_with_the_bytes():
    # kvplan.latency prices TensorRT-LLM's decode attention on B200 per layer as floor + (read^p + work^p)^(1/p)
    # (kvplan.engines.trtllm blackwell_gqa_decode: the cache at 0.8901 of 7,700 GB/s, p 6.752; a 4-bit cache takes the
    # 8-bit kernel's floor 10.78 us and 9.239 ns a sequence and KV head, bf16 10.59 us and 11.64 ns). Per layer, 64
    # sequences of 32,768 tokens, 8 KV heads: bf16 reads 64 x 32,768 x 4,096 B = 8,589,934,592 B -> 1,253.315 us, work
    # 5.960 us -> 1,263.905 us; nvfp4 64 x 32,768 x 1,152 B -> 352.495 us, work 4.730 us -> 363.275 us. 32 layers:
    # (1,263.905 - 363.275) x 32 = 28.820 ms (the older sum, the bytes term alone: 30.36 ms)
    from kvplan.latency import calibration

    def attention(kv: str) -> float:
        cost = phase_cost(LLAMA, B200, 32_768, phase="decode", batch=64, engine="trtllm", kv_dtype_name=kv)
        return cost.ops_s["attention_s"]

    fit = calibration("trtllm").blackwell_gqa_decode
    bw, p = B200.bandwidth_gbps * 1e9 * fit.mem_eff, fit.overlap_p

    def layer(held: float, floor_s: float, seq_s: float) -> float:
        read, work = held / bw, 64 * 8 * seq_s
        return floor_s + (read**p + work**p) ** (1 / p)

    bf16 = layer(64 * 32_768 * 4_096, fit.floor_16bit_s, fit.seq_kvhead_16bit_s)
    fp4 = layer(64 * 32_768 * 1_152, fit.floor_s, fit.seq_kvhead_s)
    assert (bf16, fp4) == (pytest.approx(1263.905e-6, rel=1e-5), pytest.approx(363.275e-6, rel=1e-5))
    by_hand = 32 * (bf16 - fp4)
    assert by_hand == pytest.approx(28.820e-3, rel=1e-4)
    assert attention("bf16") - attention("nvfp4") == pytest.approx(by_hand, rel=1e-9)


def test_cost_refuses_where_capacity_does():
    with pytest.raises(InvalidInput, match="in 'nvfp4' on h200"):
        phase_cost(LLAMA, H200, 1024, phase="decode", engine="trtllm", kv_dtype_name="nvfp4")
    with pytest.raises(InvalidInput, match="fp4_e2m1"):
        phase_cost(LLAMA, B200, 1024, phase="decode", engine="sglang", kv_dtype_name="nvfp4")


def test_sglang_fp4_has_capacity_but_no_latency(cli):  # noqa: ANN001
    # its pool dequantizes whole layer buffers on each read (memory_pool.py MHATokenToKVPoolFP4): not priced
    with pytest.raises(InvalidInput, match="no latency for SGLang's fp4_e2m1"):
        phase_cost(LLAMA, B200, 1024, phase="decode", engine="sglang", kv_dtype_name="fp4_e2m1")
    roofline = phase_cost(LLAMA, B200, 1024, phase="decode", engine="sglang", kv_dtype_name="fp4_e2m1",
                          model="roofline")  # fmt: skip
    assert roofline.bytes.kv_read == 1024 * 36_864  # the bytes are still counted
    targets = ("--rate", "2", "--input", "2k", "--output", "256", "--ttft", "2s", "--tpot", "50ms")
    r = cli("plan", "llama-3.1-8b", "--gpus", "b200", "--engine", "sglang", "--kv-dtype", "fp4_e2m1", *targets)
    assert r.exit_code == 2 and "no latency for SGLang's fp4_e2m1" in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = cli("plan", "llama-3.1-8b", "--gpus", "b200", "--engine", "trtllm", "--kv-dtype", "nvfp4", *targets,
            "--format", "json")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert {row["kv_dtype"] for row in json.loads(r.output)["plans"]} == {"nvfp4"}


def test_trtllm_launch_says_where_the_kv_dtype_goes(cli):  # noqa: ANN001
    # trtllm-serve has no KV dtype flag: KvCacheConfig.dtype rides in the LLM API options YAML
    r = cli("capacity", "llama-3.1-8b", "-c", "8k", "--engine", "trtllm", "--gpu", "b200", "--kv-dtype", "nvfp4")
    assert "`kv_cache_config: {dtype: nvfp4}` in the --extra_llm_api_options YAML" in r.output
    r = cli("capacity", "llama-3.1-8b", "-c", "8k", "--engine", "trtllm", "--gpu", "b200")
    assert "kv_cache_config" not in r.output


def test_profile_allocates_the_packed_rows_on_meta(cli):  # noqa: ANN001
    # --device meta: uint8 rows of the plan's bytes, 4,096 tokens x 36,864 B = 150,994,944 B
    pytest.importorskip("torch")
    r = cli("profile", "llama-3.1-8b", "--device", "meta", "--kv-dtype", "nvfp4", "-c", "4k", "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["kv_cache"]["measured_bytes"] == 150_994_944

"""Windows in attention latency: what each engine's kernels read and compute on sliding and chunked layers.

Goldens are worked by hand in each test's docstring from the model facts (model_specs/*.yaml), the H100 SXM
catalog entry (3,350 GB/s, 989 dense BF16 TFLOPS) and the fitted constants the engines use (vLLM's; SGLang and
llama.cpp borrow them), which each test reads back and checks before using.
"""

from __future__ import annotations

import pytest

from kvplan.attention import decode_span, prefill_pairs
from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.cost import phase_cost, step_flops
from kvplan.engines import Settings, get_engine
from kvplan.hardware import resolve_gpu
from kvplan.latency import _stage_flops, calibration, kernel_spec, mixed_step_latency, step_latency
from kvplan.memory import cache_plan
from kvplan.serving import Lengths, serve

H100 = resolve_gpu("h100-sxm")
MISTRAL, GPT_OSS, SCOUT = (load_bundled(n) for n in ("mistral-7b-v0.1", "gpt-oss-20b", "llama-4-scout-17b-16e"))


@pytest.fixture(scope="module")
def cal():
    """vLLM's constants, lent to SGLang (which sets its own decode fits on them) and llama.cpp; the figures the goldens
    below use."""
    c = calibration("vllm")
    assert (c.attn_decode_mem_eff, c.attn_layer_s, c.attn_seq_s) == (0.8422, 1.254e-05, 2.739e-08)
    assert (c.attn_prefill_eff, c.attn_prefill_half_len, c.eager_kernel_s) == (0.6255, 1369, 4.017e-06)
    assert (H100.bandwidth_gbps, H100.bf16_dense_tflops) == (3350, 989)
    for engine in ("sglang", "llamacpp"):
        assert calibration(engine).attn_decode_mem_eff == c.attn_decode_mem_eff
    assert calibration("llamacpp").hopper_gqa_decode == c.hopper_gqa_decode  # SGLang sets its own (_sglang_layer)
    fit = c.hopper_gqa_decode  # GQA decode on Hopper (kvplan.engines.vllm): the figures _vllm_layer uses
    assert (fit.floor_16bit_s, fit.mem_eff, fit.seq_kvhead_16bit_s, fit.overlap_p) == (
        1.139e-05,
        0.7894,
        2.567e-08,
        1.276,
    )
    return c


def _vllm_layer(held: float, *, batch: int = 1, kv_heads: int = 8) -> float:
    """One GQA decode layer on an H100 with vLLM's Hopper fit, 16-bit KV, by hand: 11.39 us + (read^p + work^p)^(1/p),
    read = held / (3350e9 x 0.7894 = 2.644490e12 B/s), work = batch x KV heads x 25.67 ns, p = 1.276."""
    read, work = held / (3350e9 * 0.7894), batch * kv_heads * 25.67e-9
    return 11.39e-6 + (read**1.276 + work**1.276) ** (1 / 1.276)


def _sglang_layer(held: float, *, batch: int = 1, kv_heads: int = 8) -> float:
    """The same with SGLang's own Hopper fit (kvplan.engines.sglang SGLANG_GQA_DECODE), 16-bit KV: 8.893 us + (read^p +
    work^p)^(1/p), read = held / (3350e9 x 0.7375 = 2.470625e12 B/s), work = batch x KV heads x 21.43 ns, p = 1.368."""
    fit = calibration("sglang").hopper_gqa_decode
    assert (fit.floor_16bit_s, fit.mem_eff, fit.seq_kvhead_16bit_s, fit.overlap_p) == (
        8.893e-06,
        0.7375,
        2.143e-08,
        1.368,
    )
    read, work = held / (3350e9 * 0.7375), batch * kv_heads * 21.43e-9
    return 8.893e-6 + (read**1.368 + work**1.368) ** (1 / 1.368)


def _decode_attention(engine: str, spec, context: int, settings: Settings | None = None) -> float:
    return step_latency(spec, H100, context, phase="decode", kv_dtype_name="bf16", weights_dtype="bf16",
                        attention_flops=0, engine=engine, settings=settings).attention  # fmt: skip


def _prefill_attention(engine: str, spec, context: int, settings: Settings | None = None) -> float:
    flops = step_flops(spec, context, phase="prefill").attention  # the checkpoint's windows
    return step_latency(spec, H100, context, phase="prefill", kv_dtype_name="bf16", weights_dtype="bf16",
                        attention_flops=flops, engine=engine, settings=settings).attention  # fmt: skip


def test_mistral_decode_at_32k_reads_the_window_or_the_whole_context(cal) -> None:
    """Mistral 7B v0.1 (32 layers, 8 KV heads x 128, window 4096 on every layer), bf16 KV: 2 x 8 x 128 x 2 =
    4,096 bytes per token per layer. Decode at 32,768 tokens, batch 1, per layer (_vllm_layer, vLLM's Hopper fit):
    work = 8 KV heads x 25.67 ns = 0.20536 us;

    * vLLM (the window's 4,096 tokens): 16,777,216 B / 2.644490e12 = 6.344216 us;
      11.39 + (6.344216^1.276 + 0.20536^1.276)^(1 / 1.276) = 17.79657 us per layer, 0.5694903 ms for 32 (0.592444 ms
      with the older sum, 12.54 us + read at 0.8422 of bandwidth + 0.02739 us);
    * llama.cpp (its LLaMA architecture has no window for Mistral: the whole 32,768, with or without --swa-full):
      134,217,728 B -> 50.75373 us -> 62.17890 us, 1.989725 ms;
    * SGLang (llama.py passes no window either), its own Hopper fit (_sglang_layer): 134,217,728 B / 2.470625e12 =
      54.32541 us; 8.893 + (54.32541^1.368 + 0.17144^1.368)^(1 / 1.368) = 63.23347 us, 2.023471 ms;
    * TensorRT-LLM before PR #12597 (MistralAttention passed no window), its own constants (0.8451, 12.53 us,
      0.07637 us; its Hopper decode keeps the older sum, kvplan.engines.trtllm hopper_gqa_decode None):
      134,217,728 B / 2.831085e12 = 47.40858 us -> 60.01495 us, 1.920478 ms."""
    assert (MISTRAL.num_layers, MISTRAL.num_kv_heads, MISTRAL.head_dim) == (32, 8, 128)
    assert cache_plan(MISTRAL, "bf16").layers[0].bytes_per_token == 4096
    vllm = _decode_attention("vllm", MISTRAL, 32768)
    assert vllm == pytest.approx(32 * _vllm_layer(16_777_216), rel=1e-9)
    assert vllm == pytest.approx(0.5694903e-3, rel=1e-6)
    trt = calibration("trtllm")
    assert (trt.attn_decode_mem_eff, trt.attn_layer_s, trt.attn_seq_s) == (0.8451, 1.253e-05, 7.637e-08)
    # trtllm@0.20 (was the default "trtllm" before trtllm@1.3, which reads the window: tests/test_trtllm_v13.py)
    assert _decode_attention("trtllm@0.20", MISTRAL, 32768) == pytest.approx(1.920478e-3, rel=1e-6)
    sglang = _decode_attention("sglang", MISTRAL, 32768)
    assert sglang == pytest.approx(2.023471e-3, rel=1e-6)
    assert sglang == pytest.approx(32 * _sglang_layer(134_217_728), rel=1e-9)
    llamacpp = _decode_attention("llamacpp", MISTRAL, 32768)
    assert llamacpp == pytest.approx(1.989725e-3, rel=1e-6)
    assert llamacpp == pytest.approx(32 * _vllm_layer(134_217_728), rel=1e-9)
    assert _decode_attention("llamacpp", MISTRAL, 32768, Settings(swa_full=True)) == pytest.approx(llamacpp, rel=1e-9)
    # below the window SGLang and vLLM read the same bytes, each on its own kernel
    assert _decode_attention("sglang", MISTRAL, 4096) == pytest.approx(32 * _sglang_layer(16_777_216), rel=1e-9)
    assert _decode_attention("vllm", MISTRAL, 4096) == pytest.approx(32 * _vllm_layer(16_777_216), rel=1e-9)


def test_gpt_oss_prefill_at_32k_by_engine(cal) -> None:
    """gpt-oss-20b: 24 layers, 12 sliding (128 tokens) and 12 full; 64 heads x 64. Pairs at 32,768: full
    32768 x 32769 / 2 = 536,887,296; window 128: 128 x 129 / 2 + (32768 - 128) x 128 = 4,186,176. FLOPs per pair
    (QK^T and PV) 2 x 2 x 64 x 64 = 16,384. Prefill attention = F / (989e12 x 0.6255) x (1 + 1369 / 32768) + 24 x
    (12.54 + 4.017) us:

    * vLLM, SGLang, TensorRT-LLM's spans: F = 16,384 x 12 x (536,887,296 + 4,186,176) = 1.0637937e14 -> 0.1719625 s
      x 1.0417786 + 0.000397368 = 0.1795442 s;
    * llama.cpp (masks over a 768-cell SWA cache, pad(128 + 512, 256)): 768 x 769 / 2 + 32,000 x 768 = 24,871,296
      pairs -> F = 1.1044623e14, 0.1863930 s;
    * llama.cpp --swa-full: every layer full, F = 16,384 x 24 x 536,887,296 = 2.1111267e14, 0.3559191 s."""
    assert (GPT_OSS.num_layers, GPT_OSS.num_attention_heads, GPT_OSS.head_dim) == (24, 64, 64)
    assert prefill_pairs(GPT_OSS.kind("sliding"), 32768) == 4_186_176

    def by_hand(flops: float) -> float:
        return flops / (989e12 * 0.6255) * (1 + 1369 / 32768) + 24 * (12.54e-6 + 4.017e-6)

    vllm = _prefill_attention("vllm", GPT_OSS, 32768)
    assert vllm == pytest.approx(by_hand(16_384 * 12 * (536_887_296 + 4_186_176)), rel=1e-9)
    assert vllm == pytest.approx(0.1795442, rel=1e-6)
    assert _prefill_attention("sglang", GPT_OSS, 32768) == pytest.approx(vllm, rel=1e-12)
    llamacpp = _prefill_attention("llamacpp", GPT_OSS, 32768)
    assert llamacpp == pytest.approx(by_hand(16_384 * 12 * (536_887_296 + 24_871_296)), rel=1e-9)
    assert llamacpp == pytest.approx(0.1863930, rel=1e-6)
    full = _prefill_attention("llamacpp", GPT_OSS, 32768, Settings(swa_full=True))
    assert full == pytest.approx(by_hand(16_384 * 24 * 536_887_296), rel=1e-9)
    assert full == pytest.approx(0.3559191, rel=1e-6)


def test_the_cost_command_prices_the_engines_spans() -> None:
    """phase_cost (kvplan cost) hands the model's FLOPs to the latency, which recounts them on SGLang's spans for
    Mistral: its prefill attention at 32K is the full causal count over 32 layers, 32 x 32768 x 32769 / 2 pairs,
    against the window's 32 x (4096 x 4097 / 2 + 28,672 x 4,096). The FLOPs column stays the model's."""
    sglang = phase_cost(MISTRAL, H100, 32768, phase="prefill", engine="sglang")
    vllm = phase_cost(MISTRAL, H100, 32768, phase="prefill", engine="vllm")
    assert sglang.flops == vllm.flops
    per_pair = 2 * 2 * 32 * 128
    assert sglang.ops_s["attention_s"] - vllm.ops_s["attention_s"] == pytest.approx(
        per_pair
        * 32
        * (32768 * 32769 // 2 - (4096 * 4097 // 2 + 28672 * 4096))
        / (989e12 * 0.6255)
        * (1 + 1369 / 32768),
        rel=1e-9,
    )


def test_each_engine_says_which_spans_its_kernels_read() -> None:
    # vLLM (FlashAttention window_size, cache_config.sliding_window) and TensorRT-LLM (attention_window_size,
    # kv_loop_length = min(tlength, cyclic window)) follow the checkpoint: no view
    for engine in ("vllm", "vllm@0.8", "trtllm", "trtllm@0.20"):
        for spec in (MISTRAL, GPT_OSS, SCOUT):
            assert (kernel_spec(spec, engine) is spec) is not (engine == "trtllm@0.20" and spec is MISTRAL)
    # TensorRT-LLM before PR #12597 (trtllm@0.20; the default "trtllm" before 1.3 was added): MistralAttention passed
    # no window
    assert get_engine("trtllm@0.20").attention_spans(MISTRAL, Settings()) == {"sliding": None}
    # transformers: sliding layers keep only their window; a chunked layer's cache (a sliding layer of the chunk)
    # hands back min(L, C) keys and the chunk is only a mask
    assert kernel_spec(MISTRAL, "transformers") is MISTRAL and kernel_spec(GPT_OSS, "transformers") is GPT_OSS
    assert get_engine("transformers").attention_spans(SCOUT, Settings()) == {"local": 8192}
    # SGLang: Mistral's LlamaAttention has no window; Gemma 3 and gpt-oss pass theirs
    assert get_engine("sglang").attention_spans(MISTRAL, Settings()) == {"sliding": None}
    assert kernel_spec(MISTRAL, "sglang").kind("sliding").type == "full"
    assert kernel_spec(MISTRAL, "sglang") is kernel_spec(MISTRAL, "sglang")  # one view object per spec and spans
    for name in ("gemma-3-27b", "gpt-oss-20b"):
        assert kernel_spec(load_bundled(name), "sglang", Settings(swa_full=True)) is load_bundled(name)
    # llama.cpp: the SWA cache's cells, pad(W + n_ubatch, 256), or every token with --swa-full; a chunk alike
    llamacpp = get_engine("llamacpp")
    assert llamacpp.attention_spans(GPT_OSS, Settings()) == {"sliding": 768}
    assert llamacpp.attention_spans(GPT_OSS, Settings(n_ubatch=2048)) == {"sliding": 2304}
    assert llamacpp.attention_spans(SCOUT, Settings()) == {"local": 8704}
    assert llamacpp.attention_spans(SCOUT, Settings(swa_full=True)) == {"local": None}
    assert llamacpp.attention_spans(load_bundled("llama-3.1-8b"), Settings()) is None
    assert llamacpp.attention_spans(MISTRAL, Settings()) == {"sliding": None}  # LLM_ARCH_LLAMA: no window
    view = kernel_spec(SCOUT, "llamacpp")
    assert (view.kind("local").type, view.kind("local").window, view.kind("global").type) == ("sliding", 8704, "full")


def test_a_chunked_layer_reads_only_its_current_chunk() -> None:
    """Llama 4's chunk of 8,192: a token at position p attends to the chunk p // 8192 (transformers chunked_overlay),
    so at 10,000 tokens in the cache the new token sees 10,000 - 8,192 = 1,808 keys, at 8,192 all 8,192, at 8,193
    one. The pool still holds up to a chunk (capacity), the decode reads only the current one: Scout bf16,
    8 KV heads x 128, 4,096 bytes a token per layer on one rank."""
    local = SCOUT.kind("local")
    assert [decode_span(local, n) for n in (100, 8192, 8193, 10000, 16384)] == [100, 8192, 1, 1808, 8192]
    layer = next(c for c in cache_plan(SCOUT, "bf16").layers if c.type == "chunked")
    assert layer.bytes_at(10000) == 4096 * 8192 and layer.read_at(10000) == 4096 * 1808
    # vLLM decode at 10,000 vs 8,192: the 36 chunked layers read 1,808 tokens instead of 8,192 (4 TP ranks: 1,024
    # bytes a token each, 2 KV heads), the 12 global layers 1,808 more; each layer by hand (_vllm_layer)

    def attention(context: int) -> float:
        return step_latency(SCOUT, H100, context, phase="decode", tp=4, kv_dtype_name="bf16", weights_dtype="bf16",
                            attention_flops=0, engine="vllm").attention  # fmt: skip

    def layer(tokens: int) -> float:
        return _vllm_layer(tokens * 1024, kv_heads=2)

    expected = 36 * (layer(1808) - layer(8192)) + 12 * (layer(10000) - layer(8192))
    assert attention(10000) - attention(8192) == pytest.approx(expected, rel=1e-9)
    assert expected < 0  # the chunked layers' shorter read outweighs the global layers' longer one


def test_a_prompt_chunk_after_a_prefix_counts_each_query_once() -> None:
    """In-flight batching prefills a long prompt in chunks. gpt-oss-20b, a chunk of 8,192 after 8,192 tokens: each
    query of a sliding layer sees 128 keys, 8,192 x 128 = 1,048,576 pairs (before: the chunk's own 1,040,448 plus
    8,192 x 128 more, twice the work); a full layer 8,192 x 8,192 + 8,192 x 8,193 / 2 = 100,667,392. FLOPs:
    16,384 x 12 x (1,048,576 + 100,667,392) = 2.000095e13. A chunked layer (Scout, 8,192) after 4,096: positions
    4,096 .. 12,287 hold 4,096 x 4,096 + 4,096 x 4,097 / 2 (first chunk's end) + 4,096 x 4,097 / 2 pairs."""
    flops = _stage_flops(GPT_OSS, range(24), context=8192, prefix=8192, prompts=1, tp=1)
    assert flops == 16_384 * 12 * (1_048_576 + 100_667_392)
    scout = _stage_flops(SCOUT, range(4), context=8192, prefix=4096, prompts=1, tp=1)  # layers 0-3: 3 local, 1 global
    per_pair = 2 * 2 * 40 * 128
    local = 4096 * 4096 + 4096 * 4097 // 2 + 4096 * 4097 // 2
    glob = 8192 * 4096 + 8192 * 8193 // 2
    assert [SCOUT.layer_kind_names[i] for i in range(4)] == ["local", "local", "local", "global"]
    assert scout == per_pair * (3 * local + glob)


def test_in_flight_batching_prices_the_engines_spans() -> None:
    """One request at rate 0 (the static figures): Mistral 7B at 32,768 + 512 / 2 = 33,024 tokens decodes on SGLang
    at its full-context figure and on vLLM at the window's; llama.cpp's --swa-full reaches the step through the
    setup's settings (kvplan.serving passes them to kvplan.latency)."""
    inp, out = Lengths.of(32768), Lengths.of(512)
    by_engine = {}
    for engine in ("vllm", "sglang"):
        s = setup(MISTRAL, H100, engine=engine)
        r = serve(s, rate_rps=0.0, input_len=inp, output_len=out, with_max_rate=False)
        assert r.tpot_mean_s == pytest.approx(phase_cost(MISTRAL, H100, 33024, phase="decode", engine=engine).time_s)
        by_engine[engine] = r.tpot_mean_s
    # 32 x (_sglang_layer(33,024 x 4,096 B) - _vllm_layer(4,096 x 4,096 B)) = 32 x (63.66 - 17.80) us = 1.47 ms
    assert by_engine["sglang"] - by_engine["vllm"] > 1.4e-3
    step = {}
    for full in (False, True):
        step[full] = mixed_step_latency(GPT_OSS, H100, decode_seqs=8, decode_context=16384, prefill_tokens=0,
                                        kv_dtype_name="bf16", weights_dtype="bf16", engine="llamacpp",
                                        settings=Settings(swa_full=full)).attention  # fmt: skip

    # 12 sliding layers x 8 sequences read 16,384 tokens instead of 768: 2 x 8 x 64 x 2 = 2,048 bytes a token
    def layer(tokens: int) -> float:
        return _vllm_layer(8 * tokens * 2048, batch=8, kv_heads=8)

    assert step[True] - step[False] == pytest.approx(12 * (layer(16384) - layer(768)), rel=1e-9)


def test_cost_and_plan_take_swa_full(cli) -> None:
    """``cost --swa-full`` reaches the engine's spans: gpt-oss-20b on llama.cpp at 32K prefills its 12 sliding layers
    over the whole context (the attention 0.3559 s of the golden above, against 0.1864 s). vLLM has no such flag
    (exit 2, one line), nor does the roofline. ``plan --rate`` passes it to the serving model with the memory rule
    (llama.cpp's SWA layers then cache every token too)."""
    import json

    rows = {}
    for flag in ((), ("--swa-full",)):
        r = cli(
            "cost", "gpt-oss-20b", "--gpu", "h100-sxm", "-c", "32k", "--engine", "llamacpp", *flag, "--format", "json"
        )
        assert r.exit_code == 0, r.output
        doc = json.loads(r.output)
        rows[bool(flag)] = next(d for d in doc if d["phase"] == "prefill")
    gap = rows[True]["time_s"] - rows[False]["time_s"]
    assert gap == pytest.approx(0.3559191 - 0.1863930, rel=1e-5)
    assert gap == pytest.approx(
        phase_cost(GPT_OSS, H100, 32768, phase="prefill", engine="llamacpp", swa_full=True).time_s
        - phase_cost(GPT_OSS, H100, 32768, phase="prefill", engine="llamacpp").time_s
    )
    bad = cli("cost", "gpt-oss-20b", "--gpu", "h100-sxm", "-c", "32k", "--engine", "vllm", "--swa-full")
    assert bad.exit_code == 2 and "--swa-full does not apply to engine 'vllm'" in bad.output
    roof = cli(
        "cost", "gpt-oss-20b", "--gpu", "h100-sxm", "--engine", "llamacpp", "--swa-full", "--latency", "roofline"
    )
    assert roof.exit_code == 2 and "use --latency calibrated" in roof.output
    args = ("plan", "gpt-oss-20b", "--rate", "0.01", "--input", "16k", "--output", "256", "--gpus", "h100-sxm")
    tpot = {}
    for flag in ((), ("--swa-full",)):
        r = cli(*args, "--engine", "llamacpp", *flag, "--format", "json")
        assert r.exit_code == 0, r.output
        tpot[bool(flag)] = min(p["tpot_s"] for p in json.loads(r.output)["plans"])
    assert tpot[True] > tpot[False]


def test_kv_sharing_layers_read_the_shared_cache() -> None:
    """Gemma 3n E2B: its last 10 layers (8 sliding of 512, 2 full) cache nothing and attend with an earlier layer's
    K/V (2 KV heads x 256 x K and V x 2 bytes = 2,048 bytes a token). Decode at 32,768 reads, per sequence,
    8 x 512 x 2,048 + 2 x 32,768 x 2,048 = 8,388,608 + 134,217,728 = 142,606,336 bytes more than the 20 caching layers'
    285,212,672 (the pool figure): 427,819,008 in the roofline's bytes. The calibrated step prices each of the 30
    layers on what it reads (_vllm_layer, 2 KV heads): 24 sliding layers at 512 x 2,048 bytes, 6 full ones at
    32,768 x 2,048 (the 10 sharing layers among them, their own span over the shared cache)."""
    from kvplan.cost import step_bytes

    gemma = load_bundled("gemma-3n-e2b")
    assert step_bytes(gemma, 32768, phase="decode").kv_read == 285_212_672 + 142_606_336
    assert step_bytes(gemma, 32768, phase="prefill").kv_read == 285_212_672  # the prefill's lower bound: what it holds
    plan = cache_plan(gemma, "bf16")
    cached = sum(n * c.read_at(32768) for n, c in plan.stages[0].groups)
    assert cached == 285_212_672
    attention = _decode_attention("vllm", gemma, 32768)
    kinds = [gemma.kind(n).type for n in gemma.layer_kind_names]
    assert (kinds.count("sliding"), kinds.count("full")) == (24, 6)
    by_hand = 24 * _vllm_layer(512 * 2048, kv_heads=2) + 6 * _vllm_layer(32768 * 2048, kv_heads=2)
    assert attention == pytest.approx(by_hand, rel=1e-6)


def test_llamacpp_caches_mistral_in_full() -> None:
    """llama.cpp's LLaMA architecture, which Mistral 7B v0.1 converts to, sets no sliding window, so no SWA cache:
    32 layers x 4,096 bytes (f16) = 131,072 bytes a token, 4 GiB a 32,768-token sequence. On one H100 SXM the exact
    buffers leave a pool of 534,784 tokens (70,094,667,776 bytes, 65.28 GiB), so 16 sequences of 32K (the SWA-cache
    rule gave 116)."""
    from kvplan.capacity import capacity

    r = capacity(setup(MISTRAL, H100, engine="llamacpp"), 32768)
    assert r.kv_pool_tokens == 534_784
    assert r.max_concurrent_sequences == 16 == 534_784 * 131_072 // (32768 * 131_072)
    assert (
        capacity(
            setup(MISTRAL, H100, engine="llamacpp", settings=Settings(swa_full=True)), 32768
        ).max_concurrent_sequences
        == 16
    )
    gemma = capacity(setup(load_bundled("gemma-3-27b"), H100, engine="llamacpp"), 32768)
    assert (
        gemma.max_concurrent_sequences
        > capacity(
            setup(load_bundled("gemma-3-27b"), H100, engine="llamacpp", settings=Settings(swa_full=True)), 32768
        ).max_concurrent_sequences
    )  # a family llama.cpp windows keeps its SWA cache

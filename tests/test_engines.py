"""Engine profiles: layouts per layer kind, TP replication, budgets, accepted flags."""

import subprocess
import sys

import pytest

from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.engines import ENGINES, RELEASES, Settings, get_engine, usable_memory_bytes
from kvplan.engines.llamacpp import llamacpp_pools
from kvplan.engines.sglang import mem_fraction as sglang_mem_fraction
from kvplan.engines.vllm import activation as vllm_activation
from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu
from kvplan.units import GIB, MIB
from tests.skeletons import skeleton, sliding_skeleton

H100 = resolve_gpu("h100-sxm")


def _lay(model, engine="vllm", **kw):
    spec = load_bundled(model) if isinstance(model, str) else model
    return setup(spec, H100, engine=engine, **kw).stages[0].layout


# ---- names, flags, bad input ---------------------------------------------------------------------


def test_the_registry_imports_an_engine_only_when_asked_for():
    """Each engine's module loads the first time its engine is asked for (the CLI's start), under the name it
    gives itself; listing the names imports none."""
    code = (
        "import sys; from kvplan.engines import ENGINES, RELEASES, get_engine; names = list(ENGINES);"
        "before = sorted(m for m in sys.modules if m.startswith('kvplan.engines.') and m != 'kvplan.engines.base');"
        "e = get_engine('vLLM'); after = sorted(m for m in sys.modules if m.startswith('kvplan.engines.'));"
        "print(names, before, after, e.name, 'trtllm' in ENGINES, 'vllm2' in ENGINES, len(RELEASES))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names = "['ideal', 'vllm', 'sglang', 'trtllm', 'llamacpp', 'transformers']"
    assert proc.stdout.split() == f"{names} [] ['kvplan.engines.base', 'kvplan.engines.vllm'] vllm True False 6".split()
    for name in ENGINES:
        assert ENGINES[name].name == name and RELEASES[name][ENGINES[name].release] is ENGINES[name]
    with pytest.raises(KeyError):
        ENGINES["vllm2"]


def test_every_engine_has_a_version_and_rules():
    assert set(ENGINES) == {"ideal", "vllm", "sglang", "trtllm", "llamacpp", "transformers"}
    for e in ENGINES.values():
        assert e.version and e.paging and e.budget_rule and e.kv_dtypes


def test_engine_names_and_aliases():
    assert get_engine("vLLM").name == "vllm"
    assert get_engine("llama.cpp").name == "llamacpp"
    assert get_engine("TensorRT-LLM").name == "trtllm"
    with pytest.raises(InvalidInput, match="unknown engine 'vlm'; did you mean 'vllm'"):
        get_engine("vlm")


@pytest.mark.parametrize("value", [0.0, -0.1, 1.01, 2])
def test_utilization_outside_unit_interval_is_rejected(value):
    with pytest.raises(InvalidInput, match=r"expected a fraction in \(0, 1\]"):
        setup(load_bundled("llama-3.1-8b"), H100, settings=Settings(gpu_memory_utilization=value))


def test_utilization_of_one_is_accepted():
    s = setup(load_bundled("llama-3.1-8b"), H100, settings=Settings(gpu_memory_utilization=1.0))
    assert s.stages[0].budget.engine_share == usable_memory_bytes(H100)


@pytest.mark.parametrize(
    ("engine", "good", "bad"),
    [
        ("vllm", ["bf16", "fp8", "fp8_e5m2"], ["q8_0", "int4"]),
        ("sglang", ["bf16", "fp8_e4m3"], ["q4_0"]),
        ("trtllm", ["fp16", "fp8", "int8"], ["q8_0"]),
        ("llamacpp", ["fp16", "q8_0", "q4_0"], ["fp8"]),
        ("transformers", ["bf16", "fp32"], ["fp8"]),
        ("ideal", ["bf16", "fp8", "q4_0", "int4"], []),
    ],
)
def test_kv_dtypes_each_engine_accepts(engine, good, bad):
    spec = load_bundled("llama-3.1-8b")
    for kv in good:
        assert setup(spec, H100, engine=engine, kv_dtype_name=kv).kv_dtype == kv
    for kv in bad:
        with pytest.raises(InvalidInput, match=f"does not store a KV cache in '{kv}'"):
            setup(spec, H100, engine=engine, kv_dtype_name=kv)


def test_tp_must_divide_or_be_a_multiple_of_kv_heads_on_serving_engines():
    spec = load_bundled("qwen2.5-7b")  # 28 query heads, 4 KV heads: tp=7 divides 28 but not 4
    # Issue 12: the ideal layout used to accept tp=7 (counting 0 -> 1 replicated head per rank,
    # 7 of 4 heads) while the engines refused it; one rule now (kvplan.memory.check_parallel), so
    # estimate, cost and capacity -e ideal refuse it with the engines' message.
    for engine in ("vllm", "sglang", "trtllm", "ideal"):
        with pytest.raises(InvalidInput, match="neither divides nor is a multiple of"):
            setup(spec, H100, engine=engine, tp=7)


def test_tp_not_dividing_heads_is_rejected():
    with pytest.raises(InvalidInput, match="does not divide"):
        setup(load_bundled("llama-3.1-8b"), H100, tp=3)


def test_single_device_engines_refuse_tp():
    for engine in ("llamacpp", "transformers"):
        with pytest.raises(InvalidInput, match="modelled on one device"):
            setup(load_bundled("llama-3.1-8b"), H100, engine=engine, tp=2)


# ---- usable memory -----------------------------------------------------------------------------


def test_usable_memory_is_what_cuda_reports():
    # vLLM logs 79.19 GiB total on H100 80GB (nvidia-smi 81559 MiB): 81090 MiB.
    assert usable_memory_bytes(H100) == 81090 * MIB
    l4 = resolve_gpu("l4")
    assert usable_memory_bytes(l4) == (23034 - 469) * MIB
    assert usable_memory_bytes(l4, 10 * GIB) == 10 * GIB


# ---- vLLM layouts, one per layer kind -------------------------------------------------------------


def test_vllm_full_attention_blocks():
    lay = _lay("llama-3.1-8b")
    # one block: 16 tokens x 32 layers x 8 heads x 128 x (K+V) x 2 B = 2 MiB
    assert lay.unit_bytes == 2 * MIB
    assert lay.blocks_per_request(16384) == 1024
    assert lay.blocks_per_request(16385) == 1025  # ceil per request
    assert lay.reserved_units == 1  # the null block


def test_vllm_sliding_only_model_one_group():
    lay = _lay("mistral-7b-v0.1")  # every layer SWA 4096
    assert len(lay.groups) == 1
    # min(4096 - 1 + 8192, L) tokens in 16-token blocks, + 1 block
    assert lay.blocks_per_request(100_000) == -(-(4095 + 8192) // 16) + 1
    assert lay.blocks_per_request(1000) == -(-1000 // 16) + 1


def test_vllm_hybrid_full_and_sliding_groups_match_gemma2_log():
    # engine_logs.json vllm-19: gemma-2-9b, 21 full + 21 SWA-4096 layers, 21,110 blocks,
    # 168,880 tokens = (21,110 // 2) x 16, concurrency 21,110 / (512 + 513) = 20.60 at 8,192.
    lay = _lay("gemma-2-9b")
    assert len(lay.groups) == 2
    assert lay.unit_bytes == 21 * 16 * 8 * 256 * 2 * 2
    assert lay.blocks_per_request(8192) == 512 + 513


def test_vllm_gemma3_five_to_one_groups_with_padding():
    lay = _lay("gemma-3-27b")  # 52 sliding + 10 full: group size 10, 6 sliding groups + 1 full
    assert len(lay.groups) == 7
    assert max(g.layers_in_stage for g in lay.groups) == 10
    assert sum(g.layers_in_stage for g in lay.groups) == 62


def test_vllm_chunked_local_attention():
    lay = _lay("llama-4-scout-17b-16e", tp=8)
    chunked = [g for g in lay.groups if g.type == "chunked"]
    assert chunked and all(g.cap == 8192 for g in chunked)
    # ChunkedLocalAttentionSpec: cdiv(min(chunk + max_num_batched_tokens, L), block)
    b = chunked[0].block_tokens
    assert _group_blocks(lay, "chunked", 100_000) == len(chunked) * -(-(8192 + 8192) // b)


def _group_blocks(lay, kind, length):
    from kvplan.engines.vllm import group_blocks as _vllm_group_blocks

    return sum(_vllm_group_blocks(g, length, mnbt=lay.mnbt) for g in lay.groups if g.type == kind)


def test_vllm_mla_latent_is_replicated_per_tp_rank():
    one = _lay("deepseek-v2-lite")
    two = _lay("deepseek-v2-lite", tp=2)
    # 27 layers x (512 + 64) x 2 B x 16 tokens, the same on every rank
    assert one.unit_bytes == two.unit_bytes == 27 * 576 * 2 * 16


def test_vllm_kv_heads_replicate_when_tp_exceeds_them():
    # llama-3.1-8b has 8 KV heads: at tp=8 and tp=16 each rank holds max(1, 8 // tp) = 1 head.
    eight = setup(load_bundled("llama-3.1-8b"), H100, engine="vllm", tp=8).stages[0].layout
    sixteen = setup(load_bundled("llama-3.1-8b"), H100, engine="vllm", tp=16).stages[0].layout
    assert eight.unit_bytes == sixteen.unit_bytes == 16 * 32 * 1 * 128 * 2 * 2


@pytest.mark.parametrize("model", ["jamba-v0.1", "qwen3-next-80b-a3b"])
def test_vllm_attention_block_grows_to_hold_a_recurrent_state(model):
    s = setup(load_bundled(model), H100, engine="vllm", tp=8 if model == "jamba-v0.1" else 4)
    lay = s.stages[0].layout
    attn = next(c for _, c in lay.stage.groups if c.type != "recurrent")
    state = max(c.state_bytes for _, c in lay.stage.groups if c.type == "recurrent")
    block = next(g.block_tokens for g in lay.groups if g.type != "recurrent")
    assert block % 16 == 0
    assert block * attn.bytes_per_token >= state > (block - 16) * attn.bytes_per_token
    # every recurrent group needs exactly one block per request, whatever the length
    rec = sum(1 for g in lay.groups if g.type == "recurrent")
    assert _group_blocks(lay, "recurrent", 10) == _group_blocks(lay, "recurrent", 100_000) == rec


# ---- other engines' layouts ---------------------------------------------------------------------


def test_sglang_token_slots_and_trtllm_blocks():
    spec = load_bundled("llama-3.1-8b")
    per_token = 32 * 8 * 128 * 2 * 2
    assert _lay(spec, "sglang").units_for(1, 1000) == 1000 * per_token
    assert _lay(spec, "trtllm").units_for(1, 1000) == 1024 * per_token  # 32 blocks of 32 tokens
    assert _lay(spec, "ideal").units_for(2, 1000) == 2 * 1000 * per_token


def test_ideal_sliding_layers_hold_the_window():
    spec = sliding_skeleton(window=64)  # 4 sliding + 2 full layers, 2 KV heads x 32 x 2 B
    per_layer = 2 * 32 * 2 * 2
    assert _lay(spec, "ideal").units_for(1, 1000) == 4 * per_layer * 64 + 2 * per_layer * 1000


def test_transformers_keeps_window_minus_one():
    spec = sliding_skeleton(window=64)
    per_layer = 2 * 32 * 2 * 2
    assert _lay(spec, "transformers").units_for(1, 1000) == 4 * per_layer * 63 + 2 * per_layer * 1000


def test_llamacpp_pools_match_logs():
    # llamacpp-01: gpt-oss-20b, -c 131072, 1 seq, ubatch 512: 131,072 cells (3,072 MiB) + SWA 768 cells (18 MiB).
    # Build 6699 ran -np 1 as one slot: the rule set llamacpp@b6699 (was the only llama.cpp rule set).
    lay = _lay("gpt-oss-20b", "llamacpp@b6699", kv_dtype_name="fp16")
    pools = {p.name: p for p in llamacpp_pools(lay, n_ctx=131072, n_seq=1)}
    assert (pools["non-SWA"].cells, pools["non-SWA"].bytes) == (131072, 3072 * MIB)
    assert (pools["SWA"].cells, pools["SWA"].bytes) == (768, 18 * MIB)
    # llamacpp-03: unified cache, 4 seqs: SWA pad256(128 x 4 + 512) = 1024 cells
    uni = _lay("gpt-oss-20b", "llamacpp", kv_dtype_name="fp16", settings=Settings(kv_unified=True))
    assert {p.name: p.cells for p in llamacpp_pools(uni, n_ctx=131072, n_seq=4)}["SWA"] == 1024


def test_llamacpp_q8_0_and_parallel_slots():
    # llamacpp-05: llama-3-8b -c 8192: f16 1024 MiB; q8_0 544 MiB (34 B per 32 values); -np 4: 4 x 2048 cells.
    spec = load_bundled("llama-3-8b")
    f16 = _lay(spec, "llamacpp", kv_dtype_name="fp16")
    q8 = _lay(spec, "llamacpp", kv_dtype_name="q8_0")
    assert f16.units_for(1, 8192) == 1024 * MIB
    assert q8.units_for(1, 8192) == 544 * MIB
    pools = llamacpp_pools(f16, n_ctx=8192, n_seq=4)
    assert [(p.cells, p.streams) for p in pools] == [(2048, 4)]


def test_llamacpp_recurrent_state_is_fp32_per_sequence():
    from kvplan.memory import recurrent_state_elements

    spec = load_bundled("jamba-v0.1")
    lay = _lay(spec, "llamacpp", kv_dtype_name="fp16")
    rec = next(p for p in llamacpp_pools(lay, n_ctx=4096, n_seq=3) if p.name == "recurrent")
    conv, ssm = recurrent_state_elements(spec.kind("mamba"))
    assert rec.bytes == rec.layers * 3 * 4 * (conv + ssm)


# ---- budgets ------------------------------------------------------------------------------------


def test_vllm_budget_is_utilization_minus_terms():
    # vLLM 0.19: CUDA graphs are captured after sizing, unless VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1.
    s = setup(load_bundled("llama-3.1-8b"), H100, engine="vllm@0.19", settings=Settings(gpu_memory_utilization=0.95))
    b = s.stages[0].budget
    assert b.engine_share == int(81090 * MIB * 0.95)
    assert b.available_kv == b.engine_share - b.weights - b.activation - b.non_torch
    assert not b.cuda_graph_in_budget
    g = setup(load_bundled("llama-3.1-8b"), H100, engine="vllm@0.19", settings=Settings(cuda_graph_estimate=True))
    g = g.stages[0].budget
    assert g.available_kv == g.engine_share - g.weights - g.activation - g.non_torch - g.cuda_graph


def test_vllm_overrides_replace_the_models():
    from kvplan.engines import Overrides

    o = Overrides(activation_bytes=GIB, non_torch_bytes=0, overhead_bytes=MIB)
    b = setup(load_bundled("llama-3.1-8b"), H100, engine="vllm@0.19", settings=Settings(overrides=o)).stages[0].budget
    assert (b.activation, b.non_torch, b.overhead) == (GIB, 0, MIB)
    assert b.available_kv == b.engine_share - b.weights - GIB - MIB


def test_vllm_activation_matches_logged_peaks():
    # vLLM 0.19 "peak activation" on H100 with 8192 batched tokens and 1024 sequences.
    for model, tp, logged in [("llama-3.1-8b", 1, 1.89), ("gemma-2-9b", 1, 3.65), ("qwen2.5-7b", 1, 2.21)]:
        got = vllm_activation(load_bundled(model), tokens=8192, seqs=1024, tp=tp) / GIB
        assert got == pytest.approx(logged, abs=0.02)


def test_vllm_tp_adds_non_torch_memory():
    one = setup(load_bundled("llama-3.1-8b"), H100).stages[0].budget
    two = setup(load_bundled("llama-3.1-8b"), H100, tp=2).stages[0].budget
    assert one.non_torch == round(0.25 * GIB) and two.non_torch == round(2.07 * GIB)


def test_sglang_mem_fraction_by_gpu_tier():
    # H100 (81090 MiB, < 90 GiB tier): chunk 8192, graph bs 256: 512 + 1.5 x 8192 + 2 x 256 + 128 = 13440
    assert sglang_mem_fraction(81090, tp=1, pp=1, chunked_prefill=None) == round((81090 - 13440) / 81090, 3)
    # L4 at TP4 (< 35 GiB tier): chunk 2048, bs 80: 512 + 3072 + 160 + 512 = 4256
    assert sglang_mem_fraction(22565, tp=4, pp=1, chunked_prefill=None) == round((22565 - 4256) / 22565, 3)
    # B200 (> 160 GiB): chunk 16384, bs 512: 512 + 24576 + 1024 + 128
    assert sglang_mem_fraction(183359, tp=1, pp=1, chunked_prefill=None) == round((183359 - 26240) / 183359, 3)


def test_sglang_budget_uses_free_memory_at_start():
    s = setup(load_bundled("llama-3.1-8b"), H100, engine="sglang", settings=Settings(mem_fraction_static=0.88))
    b = s.stages[0].budget
    free = 81090 * MIB - b.non_torch
    assert b.available_kv == int(free * 0.88) - b.weights


def test_trtllm_budget_is_a_fraction_of_free_memory():
    s = setup(load_bundled("llama-3.1-8b"), H100, engine="trtllm")
    b = s.stages[0].budget
    # since stop 30 also the default decode graphs' pool (128 rows), captured before the KV estimation
    assert b.cuda_graph_in_budget and b.cuda_graph > 0
    free = 81090 * MIB - b.non_torch - b.weights - b.activation - b.cuda_graph
    assert b.available_kv == int(free * 0.9)


def test_skeleton_model_budget_terms_are_ints():
    b = setup(skeleton(), H100, engine="vllm").stages[0].budget
    for v in (b.device_total, b.engine_share, b.weights, b.activation, b.non_torch, b.cuda_graph, b.available_kv):
        assert isinstance(v, int)


def test_vllm_per_token_head_scales_add_to_the_page():
    # llama-3.1-8b at tp=2: 4 KV heads per rank; int8 values 4 x 128 x 2 = 1,024 B per layer per token,
    # plus K and V fp32 scales per head: 2 x 4 x 4 = 32 B -> 1,056 B; a block of 16 over 32 layers.
    lay = _lay("llama-3.1-8b", tp=2, kv_dtype_name="int8_per_token_head")
    assert lay.unit_bytes == 16 * 32 * (4 * 128 * 2 + 2 * 4 * 4)
    plain = _lay("llama-3.1-8b", tp=2, kv_dtype_name="fp8")
    assert plain.unit_bytes == 16 * 32 * 4 * 128 * 2
    with pytest.raises(InvalidInput, match="does not store a KV cache in 'int8_per_token_head'"):
        _lay("llama-3.1-8b", "sglang", kv_dtype_name="int8_per_token_head")


def test_mla_expanded_layout_stores_per_head_k_and_v():
    # deepseek-v2-lite: 16 heads; expanded K = 16 x (128 + 64), V = 16 x 128, bf16, per layer per token
    lat = _lay("deepseek-v2-lite")
    exp = _lay("deepseek-v2-lite", settings=Settings(mla="expanded"))
    assert lat.unit_bytes == 27 * 576 * 2 * 16
    assert exp.unit_bytes == 27 * (16 * 192 + 16 * 128) * 2 * 16
    with pytest.raises(InvalidInput, match="invalid MLA layout 'wide'"):
        _lay("deepseek-v2-lite", settings=Settings(mla="wide"))


def test_sglang_hybrid_swa_pool_split():
    # model_runner.set_num_token_hybrid: tokens x layers split so that swa = full x ratio.
    # Was gemma-2-9b, which SGLang does not run with the hybrid pool (model_config.is_hybrid_swa_model lists
    # GptOssForCausalLM, Llama4ForConditionalGeneration, ...; see test_engine_rules.py): now gpt-oss-20b,
    # 12 full + 12 SWA-128 layers, 8 KV heads x 64 x 2 (K,V) x 2 B = 2 KiB per layer per token.
    lay = _lay("gpt-oss-20b", "sglang", settings=Settings(swa_full_tokens_ratio=0.01))
    available = 24 * 2048 * 100_000  # 100,000 tokens over all 24 layers
    full, swa, window = lay.sglang_swa_tokens(available)
    # full = 2,400,000 / (0.01 x 12 + 12) = 198,019; swa = int(198,019 x 0.01) = 1,980
    assert (full, swa, window) == (198_019, 1_980, 128)
    # 8K requests: the full pool holds 198,019 // 8,192 = 24, the SWA pool (128 each) 1,980 // 128 = 15
    assert lay.fits(available, batch=15, length=8192)
    assert not lay.fits(available, batch=16, length=8192)
    with pytest.raises(InvalidInput, match="swa_full_tokens_ratio"):
        _lay("gpt-oss-20b", "sglang", settings=Settings(swa_full_tokens_ratio=1.5))


def test_vllm_mla_on_blackwell_uses_32_token_blocks():
    # Was 128 (CUTLASS_MLA's forcing, vLLM Aug 2025-Feb 2026). vLLM 0.19 / 0.21 run FLASHINFER_MLA on B200 and take
    # its preferred block size, 32 (kvplan.engines.vllm.mla_choice; per release: tests/test_vllm_mla_backends.py).
    spec = load_bundled("deepseek-v3")
    b200 = setup(spec, resolve_gpu("b200"), tp=8, weights_dtype="fp8").stages[0].layout
    h200 = setup(spec, resolve_gpu("h200"), tp=8, weights_dtype="fp8").stages[0].layout
    assert (b200.block_tokens, h200.block_tokens) == (32, 16)
    dense = setup(load_bundled("llama-3.1-8b"), resolve_gpu("b200")).stages[0].layout
    assert dense.block_tokens == 16


# ---- issue 9: layer kinds that store nothing, and the DSA indexer ----------------------------------


def _no_kv_layers_spec():
    from kvplan.hf import spec_from_hf_config

    config = {
        "model_type": "nemotron_h", "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
        "head_dim": 128, "vocab_size": 1000, "intermediate_size": 8192, "max_position_embeddings": 8192,
        "hybrid_override_pattern": "M-M*-M-M*-", "mamba_num_heads": 64, "mamba_head_dim": 64,
        "ssm_state_size": 128, "n_groups": 8, "conv_kernel": 4, "torch_dtype": "bfloat16",
    }  # fmt: skip
    return spec_from_hf_config(config, origin="x").spec


def test_vllm_gives_no_pages_to_layers_that_store_nothing():
    from kvplan.engines import ENGINES
    from kvplan.engines.vllm import kv_cache_groups

    spec = _no_kv_layers_spec()  # 4 Mamba2 + 2 attention + 4 MLP-only layers
    plan = ENGINES["vllm"].cache_plan(spec, kv_dtype_name="bf16", tp=1, pp=1)
    groups, _ = kv_cache_groups(spec, plan, block=16, stage_index=0)
    assert {g.type for g in groups} == {"recurrent", "full"}


def test_unverified_engines_refuse_new_layer_kinds():
    from kvplan.catalog import load_bundled
    from kvplan.engines import ENGINES

    for name in ("sglang", "trtllm", "llamacpp"):
        with pytest.raises(InvalidInput, match=f"no {name} layout for them yet"):
            ENGINES[name].cache_plan(_no_kv_layers_spec(), kv_dtype_name="bf16", tp=1, pp=1)
    # SGLang's NSA pool and TensorRT-LLM's DSACacheManager are read (tests/test_dsa_capacity.py); llama.cpp still
    # refuses the DSA indexer cache
    for name in ("llamacpp",):
        with pytest.raises(InvalidInput, match=f"indexer key cache .*no {name} layout"):
            ENGINES[name].cache_plan(load_bundled("deepseek-v3.2-exp"), kv_dtype_name="bf16", tp=1, pp=1)


def test_engines_whose_source_was_not_read_refuse_falcon_h1_and_lightning_attention():
    from kvplan.catalog import load_bundled
    from kvplan.engines import ENGINES

    for name in ("vllm", "sglang", "trtllm", "llamacpp"):
        if name != "vllm":  # vLLM's Falcon-H1 layout is read: see the next test
            with pytest.raises(InvalidInput, match=f"K/V and a recurrent state in the same layer.*no {name} layout"):
                ENGINES[name].cache_plan(load_bundled("falcon-h1-7b-instruct"), kv_dtype_name="bf16", tp=1, pp=1)
        with pytest.raises(InvalidInput, match=f"lightning-attention state .*no {name} layout"):
            ENGINES[name].cache_plan(load_bundled("minimax-m1-80k"), kv_dtype_name="bf16", tp=1, pp=1)


def test_vllm_splits_a_falcon_h1_layer_into_an_attention_and_a_mamba_layer():
    from kvplan.catalog import load_bundled
    from kvplan.engines import ENGINES
    from kvplan.engines.vllm import kv_cache_groups

    # vllm/model_executor/models/falcon_h1.py FalconH1ParallelHybrid: the SSM branch is a layer of its own,
    # so 44 attention layers (1,024 B/token) and 44 Mamba2 layers (1,594,368 B of state) form two groups.
    spec = load_bundled("falcon-h1-7b-instruct")
    plan = ENGINES["vllm"].cache_plan(spec, kv_dtype_name="bf16", tp=1, pp=1)
    groups, unit = kv_cache_groups(spec, plan, block=16, stage_index=0)
    # hybrid block: 16 x cdiv(1,594,368, 16 x 1,024) = 16 x 98 = 1,568 tokens; page 1,024 x 1,568 = 1,605,632 B
    assert sorted((g.type, g.block_tokens, g.layers_in_stage) for g in groups) == [
        ("full", 1_568, 44),
        ("recurrent", 1_568, 44),
    ]
    assert unit == 1_605_632 * 44
    # pipeline stage 1 of 2 holds decoder layers 22..43: both branches of each
    groups, _ = kv_cache_groups(spec, ENGINES["vllm"].cache_plan(spec, kv_dtype_name="bf16", tp=1, pp=2), block=16,
                                stage_index=1)  # fmt: skip
    assert sorted(g.layers_in_stage for g in groups) == [22, 22]


def test_vllm_indexer_cache_is_fp8_with_a_scale_whatever_the_kv_dtype():
    from kvplan.catalog import load_bundled
    from kvplan.engines import ENGINES

    spec = load_bundled("deepseek-v3.2-exp")
    # per layer: latent (512 + 64) x 2 B + indexer 128 fp8 + 128 / 128 x 4 B scale = 1,152 + 132; x 61 layers
    bf16 = ENGINES["vllm"].cache_plan(spec, kv_dtype_name="bf16", tp=1, pp=1)
    assert bf16.bytes_per_token == 61 * (1_152 + 132) == 78_324
    # fp8 KV: vLLM stores DeepSeek-V3.2's fp8 cache as fp8_ds_mla, FlashMLA's 656-byte row (512 fp8 + 4 float32
    # scales + 64 bf16 RoPE values), + the same 132 B indexer entry. Was 61 x (576 + 132) = 43,188, a plain fp8 row;
    # now 48,068 (vllm/model_executor/models/config.py DeepseekV32ForCausalLM.verify_and_update_config,
    # tests/test_dsa_decode.py)
    fp8 = ENGINES["vllm"].cache_plan(spec, kv_dtype_name="fp8", tp=1, pp=1)
    assert fp8.bytes_per_token == 61 * (656 + 132) == 48_068


def test_cross_attention_layers_only_in_the_ideal_and_transformers_layouts():
    """Llama 3.2 Vision's cross-attention K/V (one image: 8 layers x 6,404 tokens x 4,096 B = 209,846,272 B per
    request) is held by the layouts kvplan can state; the serving engines refuse it in one line."""
    from kvplan.catalog import load_bundled
    from kvplan.engines import ENGINES

    spec = load_bundled("llama-3.2-11b-vision")
    for name in ("ideal", "transformers"):
        plan = ENGINES[name].cache_plan(spec, kv_dtype_name="bf16", tp=1, pp=1)
        assert plan.state_bytes == 8 * 6_404 * 4_096 == 209_846_272
    for name in ("vllm", "sglang", "trtllm", "llamacpp"):
        with pytest.raises(InvalidInput, match=f"cross-attention layers .*no {name} layout") as exc:
            ENGINES[name].cache_plan(spec, kv_dtype_name="bf16", tp=1, pp=1)
        assert "\n" not in str(exc.value)

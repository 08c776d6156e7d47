"""SGLang's weights as its 0.5.7 model files hold them after loading (kvplan.engines.sglang): the input embedding whole
on every rank under DP attention (``enable_tp=not is_dp_attention_enabled()``) and the MLA models' w_kc / w_vc copies
of kv_b_proj (``DeepseekV2ForCausalLM.post_load_weights``). Goldens by hand."""

from __future__ import annotations

from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.engines import get_engine
from kvplan.engines.sglang import indexer_fp32_bytes, mla_kv_b_copy_bytes
from kvplan.hardware import resolve_gpu
from kvplan.params import Sharding, weight_bytes_per_stage

SGLANG = get_engine("sglang")
H200 = resolve_gpu("h200")


def test_embedding_whole_under_dp_attention_for_the_listed_models_only() -> None:
    """Qwen3-235B (qwen2_moe.py's Qwen2MoeModel) under DP8: the embedding table 151,936 x 4,096 x 2 B =
    1,244,659,712 B whole instead of an eighth (155,582,464): 1,089,077,248 B more a GPU. Mixtral (mixtral.py keeps
    enable_tp=True) stays cut; no DP attention, no change."""
    qwen = load_bundled("qwen3-235b-a22b")
    dp = SGLANG.sharding(qwen, tp=1, dp=8, ep=True)
    assert dp.embed_tp == 1 and dp.vocab_tp == 8 and dp.input_embed_tp == 1
    cut = Sharding(attn_tp=1, mlp_tp=8, expert_tp=1, expert_ranks=8, vocab_tp=8)
    whole, sliced = (weight_bytes_per_stage(qwen, "bf16", sharding=sh)[0] for sh in (dp, cut))
    assert whole - sliced == 151_936 * 4_096 * 2 * 7 // 8 == 1_089_077_248
    assert SGLANG.sharding(qwen, tp=8) == Sharding.tensor(8)
    mixtral = load_bundled("mixtral-8x7b")
    assert SGLANG.sharding(mixtral, tp=1, dp=8, ep=True).input_embed_tp == 8
    # vLLM's sharding sets no embed_tp: the embedding is cut as its LM head, as before
    vllm = get_engine("vllm").sharding(qwen, tp=1, dp=8, ep=True)
    assert vllm.embed_tp == 0 and vllm.input_embed_tp == vllm.vocab_tp


def test_mla_copies_by_dtype_and_split() -> None:
    """DeepSeek-V2-Lite: 27 MLA layers, 16 heads, (128 + 128) x 512 per head. bf16: 27 x 16 x 256 x 512 x 2 B =
    113,246,208; fp8 with per-tensor scales (kept fp8 by channel_quant_to_tensor_quant): half, 56,623,104; attention
    TP 2 and PP 2 (14 + 13 layers, 8 heads a rank): 29,360,128 and 27,262,976. A model outside deepseek_v2.py (Llama)
    holds none."""
    lite = load_bundled("deepseek-v2-lite")
    assert mla_kv_b_copy_bytes(lite, weights_dtype="bf16", attn_tp=1, pp=1) == [113_246_208]
    assert mla_kv_b_copy_bytes(lite, weights_dtype="fp8", attn_tp=1, pp=1) == [56_623_104]
    assert mla_kv_b_copy_bytes(lite, weights_dtype="bf16", attn_tp=2, pp=2) == [29_360_128, 27_262_976]
    assert mla_kv_b_copy_bytes(load_bundled("llama-3.1-8b"), weights_dtype="bf16", attn_tp=1, pp=1) == [0]
    # DeepSeek-V3's fp8 in 128 x 128 blocks is dequantized to bf16 (block_quant_dequant): 2 B an element
    v3 = load_bundled("deepseek-v3")
    assert mla_kv_b_copy_bytes(v3, weights_dtype="fp8", attn_tp=8, pp=1) == [61 * 16 * 256 * 512 * 2]


def test_capacity_adds_the_copies_to_sglang_weights_only() -> None:
    """The setup's weights term is the checkpoint's cut plus the copies under SGLang; vLLM's is unchanged by them."""
    lite = load_bundled("deepseek-v2-lite")
    sg = setup(lite, H200, engine="sglang", kv_dtype_name="bf16").stages[0].budget.weights
    vl = setup(lite, H200, engine="vllm", kv_dtype_name="bf16").stages[0].budget.weights
    assert sg - weight_bytes_per_stage(lite, "bf16")[0] == 113_246_208
    assert vl == weight_bytes_per_stage(lite, "bf16")[0]


def test_indexer_weights_proj_in_fp32() -> None:
    """DeepSeek-V3.2's indexer weights_proj [7,168, 64] held in fp32 (0.5.7 nsa_indexer.py), counted at 16 bits:
    61 x 7,168 x 64 x 2 B = 55,967,744 B more, on every rank; none for a model without an indexer."""
    v32 = load_bundled("deepseek-v3.2-exp")
    assert indexer_fp32_bytes(v32, pp=1) == [55_967_744]
    assert sum(indexer_fp32_bytes(v32, pp=2)) == 55_967_744
    assert indexer_fp32_bytes(load_bundled("deepseek-v3"), pp=1) == [0]

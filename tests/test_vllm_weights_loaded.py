"""vLLM's MLA weights as held after loading (kvplan.engines.vllm.mla_dequant_bytes): a quantized kv_b_proj is
dequantized to a 16-bit tensor that W_UV / W_UK_T view (MLAAttention.process_weights_after_loading,
get_and_maybe_dequant_weights), kept beside the quantized one; a 16-bit kv_b_proj is only viewed. Goldens by hand
from the checkpoints' shapes."""

from __future__ import annotations

from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.engines import get_engine
from kvplan.engines.vllm import mla_dequant_bytes
from kvplan.hardware import resolve_gpu
from kvplan.params import weight_bytes_per_stage

VLLM = get_engine("vllm")
H200 = resolve_gpu("h200")


def test_fp8_deepseek_v3_holds_a_bf16_kv_b_proj_per_attention_rank() -> None:
    """DeepSeek-V3 (fp8 in 128 x 128 blocks): 61 MLA layers, 128 heads, (128 + 128) x 512 per head, 2 B. TP8: 16 heads
    a rank, 61 x 16 x 256 x 512 x 2 = 255,852,544 B; under DP8 (attention TP 1) every rank holds all 128 heads,
    2,046,820,352 B."""
    v3 = load_bundled("deepseek-v3")
    assert mla_dequant_bytes(v3, weights_dtype="fp8", attn_tp=8, pp=1) == [255_852_544]
    assert VLLM.weights_added(v3, weights_dtype="fp8", pp=1, sharding=VLLM.sharding(v3, tp=8)) == [255_852_544]
    dp = VLLM.sharding(v3, tp=1, dp=8, ep=True)
    assert VLLM.weights_added(v3, weights_dtype="fp8", pp=1, sharding=dp) == [61 * 128 * 256 * 512 * 2]
    assert 61 * 128 * 256 * 512 * 2 == 2_046_820_352
    # vLLM's DP ranks are engines of their own: the embedding is cut as the LM head over tp (no whole copy)
    assert dp.embed_tp == 0 and dp.input_embed_tp == dp.vocab_tp == 1


def test_sixteen_bit_kv_b_proj_is_only_viewed() -> None:
    """A bf16 kv_b_proj: get_and_maybe_dequant_weights returns the layer's own weight, W_UV / W_UK_T are views of it:
    nothing added (DeepSeek-V2-Lite, the vllm-11 / vllm-21 logs' model). Converted to fp8 it gains the 16-bit copy:
    27 layers x 16 heads x 256 x 512 x 2 B = 113,246,208; TP2 PP2 (14 + 13 layers, 8 heads a rank): 29,360,128 and
    27,262,976. Llama (no MLA) holds none in any dtype."""
    lite = load_bundled("deepseek-v2-lite")
    assert mla_dequant_bytes(lite, weights_dtype="bf16", attn_tp=1, pp=1) == [0]
    assert mla_dequant_bytes(lite, weights_dtype="fp8", attn_tp=1, pp=1) == [113_246_208]
    assert mla_dequant_bytes(lite, weights_dtype="fp8", attn_tp=2, pp=2) == [29_360_128, 27_262_976]
    assert mla_dequant_bytes(load_bundled("llama-3.1-8b"), weights_dtype="fp8", attn_tp=1, pp=1) == [0]


def test_capacity_adds_the_copy_to_every_vllm_release() -> None:
    """The setup's weights term under each vLLM rule set: the checkpoint's cut plus the copy; bf16 unchanged."""
    v3 = load_bundled("deepseek-v3")
    cut = weight_bytes_per_stage(v3, "fp8", tp=8)[0]
    for key in ("vllm@0.8", "vllm@0.16", "vllm@0.19", "vllm"):
        held = setup(v3, H200, engine=key, kv_dtype_name="bf16", tp=8).stages[0].budget.weights
        assert held - cut == 255_852_544, key
    lite = load_bundled("deepseek-v2-lite")
    held = setup(lite, H200, engine="vllm", kv_dtype_name="bf16").stages[0].budget.weights
    assert held == weight_bytes_per_stage(lite, "bf16")[0]

"""Per-rank weights from checkpoint headers under TP / PP / EP / DP attention (no network, no torch).

The checkpoint is a sharded, header-only safetensors MoE in a local folder (tests/fakehub.py
``header_only_safetensors``); every per-rank sum is computed by hand below and checked against
both the header split and kvplan's architecture count.
"""

from __future__ import annotations

import json

import pytest

from kvplan.catalog import resolve
from kvplan.checkpoint import CheckpointWeights, TensorInfo, sharded_bytes, tensor_group
from kvplan.engines import get_engine
from kvplan.params import Sharding, weight_bytes_per_stage
from tests.fakehub import header_only_safetensors

H, HEADS, KV, HD, VOCAB, MOE_INTER, EXPERTS, LAYERS = 64, 4, 2, 16, 256, 32, 6, 2

CONFIG = {
    "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "hidden_size": H,
    "intermediate_size": 128, "moe_intermediate_size": MOE_INTER, "num_hidden_layers": LAYERS,
    "num_attention_heads": HEADS, "num_key_value_heads": KV, "head_dim": HD, "vocab_size": VOCAB,
    "num_experts": EXPERTS, "num_experts_per_tok": 2, "max_position_embeddings": 512, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "rms_norm_eps": 1e-6, "decoder_sparse_step": 1, "mlp_only_layers": [],
    "norm_topk_prob": True,
}  # fmt: skip


def moe_tensors() -> dict[str, tuple[str, tuple[int, ...]]]:
    """Qwen3-MoE tensor names as the Hub stores them (one tensor per expert), all bf16."""
    t: dict[str, tuple[str, tuple[int, ...]]] = {"model.embed_tokens.weight": ("BF16", (VOCAB, H))}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        t |= {
            p + "self_attn.q_proj.weight": ("BF16", (HEADS * HD, H)),
            p + "self_attn.k_proj.weight": ("BF16", (KV * HD, H)),
            p + "self_attn.v_proj.weight": ("BF16", (KV * HD, H)),
            p + "self_attn.o_proj.weight": ("BF16", (H, HEADS * HD)),
            p + "self_attn.q_norm.weight": ("BF16", (HD,)),
            p + "self_attn.k_norm.weight": ("BF16", (HD,)),
            p + "input_layernorm.weight": ("BF16", (H,)),
            p + "post_attention_layernorm.weight": ("BF16", (H,)),
            p + "mlp.gate.weight": ("BF16", (EXPERTS, H)),
        }
        for e in range(EXPERTS):
            for proj in ("gate_proj", "up_proj", "down_proj"):
                shape = (H, MOE_INTER) if proj == "down_proj" else (MOE_INTER, H)
                t[p + f"mlp.experts.{e}.{proj}.weight"] = ("BF16", shape)
    return t | {"model.norm.weight": ("BF16", (H,)), "lm_head.weight": ("BF16", (VOCAB, H))}


@pytest.fixture
def moe(tmp_path):
    """A local folder: config.json, model.safetensors.index.json and 3 header-only shards."""
    tensors = moe_tensors()
    names, shards, weight_map = list(tensors), 3, {}
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[s::shards]}
        (tmp_path / fname).write_bytes(header_only_safetensors(part))
        weight_map |= dict.fromkeys(part, fname)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    resolved = resolve(str(tmp_path))
    weights = resolved.checkpoint()
    assert weights is not None and weights.files == 3
    return resolved.spec, weights


# Bytes by hand (bf16 = 2 bytes):
#   embed / lm_head 256x64x2 = 32,768 each; final norm 128
#   per layer: q 64x64 -> 8,192; k, v 32x64 -> 4,096 each; o 8,192; q_norm + k_norm 32 + 32;
#              2 norms 256; router 6x64 -> 768; one expert 3 x 32x64 x 2 = 12,288; 6 experts 73,728
#   layer = 8,192 + 4,096 + 4,096 + 8,192 + 64 + 256 + 768 + 73,728 = 99,392
#   whole model = 2 x 32,768 + 128 + 2 x 99,392 = 264,448
ONE_EXPERT = 12_288


def test_whole_model_and_plain_tp(moe):
    spec, weights = moe
    assert weights.total_bytes == 264_448
    assert weights.bytes_per_stage(spec) == [264_448]
    # TP 4, experts cut 4 ways: embed/head 8,192 each + norm 128; per layer q 2,048, k/v 2,048 each (2 KV heads
    # over 4 ranks: one head each, replicated), o 2,048, qk norms 64, norms 256, router 768, experts 73,728/4 =
    # 18,432 -> 27,712; total 16,384 + 128 + 2 x 27,712 = 71,936
    assert weights.bytes_per_stage(spec, tp=4) == [71_936] == weight_bytes_per_stage(spec, "bf16", tp=4)


def test_expert_parallel_divides_the_expert_bytes_by_ep(moe):
    spec, weights = moe
    sharding = get_engine("vllm").sharding(spec, tp=4, ep=True)
    assert sharding == Sharding(attn_tp=4, mlp_tp=4, expert_tp=1, expert_ranks=4, vocab_tp=4)
    # EP 4: rank 0 holds experts 0 and 1 whole (ceil(6/4) = 2, vLLM determine_expert_map): 2 x 12,288 = 24,576
    # per layer 2,048 x 4 + 64 + 256 + 768 + 24,576 = 33,856; total 16,384 + 128 + 2 x 33,856 = 84,224
    by_headers = weights.bytes_per_stage(spec, sharding=sharding)
    assert by_headers == [84_224]
    # the architecture count cuts the same way: difference 0 for a bf16 checkpoint with no extra tensors
    assert by_headers == weight_bytes_per_stage(spec, "bf16", tp=4, sharding=sharding)
    # EP 6 (tp 6 is not a head split, so the rule is checked directly): one expert per rank
    six = Sharding(attn_tp=1, mlp_tp=1, expert_tp=1, expert_ranks=6, vocab_tp=1)
    assert weights.bytes_per_stage(spec, sharding=six) == [264_448 - 2 * 5 * ONE_EXPERT]


def test_dp_attention_with_ep_and_pipeline_stages(moe):
    spec, weights = moe
    sharding = get_engine("vllm").sharding(spec, tp=2, dp=2, ep=True)  # attention TP 2, experts over 4 ranks
    # per layer: q 4,096, k/v 2,048 each (one of 2 KV heads), o 4,096, qk norms 64, norms 256, router 768,
    # experts 2 x 12,288 = 24,576 -> 4,096 + 2,048 + 2,048 + 4,096 + 64 + 256 + 768 + 24,576 = 37,952
    # PP 2: stage 0 = embed 16,384 + layer 0 = 54,336; stage 1 = layer 1 + norm 128 + lm_head 16,384 = 54,464
    by_headers = weights.bytes_per_stage(spec, pp=2, sharding=sharding)
    assert by_headers == [54_336, 54_464]
    assert by_headers == weight_bytes_per_stage(spec, "bf16", tp=2, pp=2, sharding=sharding)


def test_sglang_sharding_cuts_the_vocabulary_over_all_ranks(moe):
    spec, weights = moe
    sharding = get_engine("sglang").sharding(spec, tp=2, dp=2, ep=True)
    assert weights.bytes_per_stage(spec, sharding=sharding) == weight_bytes_per_stage(
        spec, "bf16", tp=2, sharding=sharding
    )


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("model.layers.3.mlp.experts.17.down_proj.weight", "expert"),
        ("model.layers.3.mlp.experts.gate_up_proj_blocks", "expert"),  # gpt-oss fused, leading expert dim
        ("model.layers.3.block_sparse_moe.experts.2.w1.weight", "expert"),  # Mixtral
        ("blk.3.ffn_down_exps.weight", "expert"),  # GGUF
        ("model.layers.3.mlp.shared_experts.up_proj.weight", "mlp"),  # DeepSeek shared experts: dense
        ("model.layers.3.mlp.shared_expert.up_proj.weight", "mlp"),  # Qwen2-MoE
        ("blk.3.ffn_up_shexp.weight", "mlp"),
        ("model.layers.3.mlp.gate.weight", "mlp"),  # the router (replicated, below)
        ("model.layers.3.self_attn.q_proj.weight", "attention"),
        ("blk.3.attn_q.weight", "attention"),
    ],
)
def test_tensor_groups_by_name(name, group):
    assert tensor_group(name) == group


def test_routers_and_expert_scalars_under_ep(moe):
    spec, _ = moe
    ep4 = Sharding(attn_tp=4, mlp_tp=4, expert_tp=1, expert_ranks=4, vocab_tp=4)
    router = TensorInfo("blk.0.ffn_gate_inp.weight", "F32", (64, 6), 1536)
    assert sharded_bytes(router, spec, role="layer", sharding=ep4) == 1536  # every rank routes
    # a per-tensor scale of expert 5 lives on the rank holding expert 5 only (not rank 0 at EP 4)
    scale = TensorInfo("model.layers.0.mlp.experts.5.down_proj.weight_scale", "F32", (1,), 4)
    assert sharded_bytes(scale, spec, role="layer", sharding=ep4) == 0
    assert sharded_bytes(scale, spec, role="layer", sharding=Sharding.tensor(4)) == 4  # TP: whole on each rank
    # fused experts (leading dimension 6) at EP 4: rank 0 keeps 2/6 of the bytes
    fused = TensorInfo("model.layers.0.mlp.experts.down_proj", "BF16", (6, 64, 32), 6 * 4096)
    assert sharded_bytes(fused, spec, role="layer", sharding=ep4) == 2 * 4096
    assert isinstance(CheckpointWeights("x", "safetensors", 1, (fused,)).total_bytes, int)


# ---- every command takes the same weights term ---------------------------------------------------

VISION = 64 * 64 * 2  # model.visual.patch_embed.weight, bf16: stored, not in the architecture count


@pytest.fixture
def folder(tmp_path):
    """The MoE above in one file, plus a vision tensor so the header bytes differ from the count."""
    tensors = moe_tensors() | {"model.visual.patch_embed.weight": ("BF16", (64, 64))}
    (tmp_path / "model.safetensors").write_bytes(header_only_safetensors(tensors))
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    return tmp_path


def test_capacity_uses_the_header_bytes_per_rank_and_says_so(cli, folder):
    result = cli("capacity", str(folder), "--gpu", "h100-sxm", "-c", "256", "--tp", "2", "--ep", "-f", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    # TP 2 + EP 2 (vLLM): embed/head 16,384 each + norm 128; per layer q 4,096, k/v 2,048 each, o 4,096,
    # qk norms 64, norms 256, router 768, experts 0-2 of 6 = 3 x 12,288 = 36,864 -> 50,240;
    # vision 8,192 / 2 = 4,096 on stage 0: 32,896 + 2 x 50,240 + 4,096 = 137,472
    assert doc["breakdown"]["weights_bytes"] == 137_472
    assert "safetensors headers (1 file, 58 tensors)" in doc["weights_source"]
    assert doc["weights_format"] == "checkpoint BF16 (headers)"
    assert "note:   +0.0 MiB vision tower" in result.stderr.splitlines()  # 8,192 bytes, shown in MiB
    # the architecture count when a dtype is asked for: 137,472 - 4,096
    asked = cli("capacity", str(folder), "--gpu", "h100-sxm", "-c", "256", "--tp", "2", "--ep", "--weights-dtype",
                "bf16", "-f", "json")  # fmt: skip
    doc = json.loads(asked.stdout)
    assert (doc["breakdown"]["weights_bytes"], doc["weights_source"]) == (133_376, "architecture")
    table = cli("capacity", str(folder), "--gpu", "h100-sxm", "-c", "256")
    assert "weights checkpoint BF16 (headers)" in table.stdout
    assert "note: weights from " in table.stderr and "safetensors headers" in table.stderr


def test_plan_uses_the_header_bytes_for_the_checkpoint_dtype(cli, folder):
    result = cli("plan", str(folder), "--users", "4", "-c", "256", "--gpus", "l4", "--max-gpus", "2", "-f", "json")
    assert result.exit_code == 0, result.output
    plans = json.loads(result.stdout)["plans"]
    by_dtype = {p["weights_dtype"]: p["weights_source"] for p in plans}
    assert "safetensors headers" in by_dtype["bf16"]  # the checkpoint's own dtype
    assert all(src == "architecture" for w, src in by_dtype.items() if w != "bf16")  # conversions
    assert "note: weights from " in result.stderr


def test_cost_reads_the_header_bytes_per_step(cli, folder):
    from kvplan.catalog import resolve
    from kvplan.cost import cost, untouched_expert_bytes

    resolved = resolve(str(folder))
    weights = resolved.weights()
    rows = cost(resolved.spec, "h100-sxm", [256], checkpoint=weights)
    # one decode token runs 2 of 6 experts: the other 4 x 12,288 per layer are not read; the header
    # bytes (264,448 + 8,192 vision) less those: 272,640 - 2 x 49,152 = 174,336
    assert untouched_expert_bytes(resolved.spec, 1, weights_dtype="bf16") == 2 * 4 * ONE_EXPERT
    assert rows[0].decode.bytes.weights == 272_640 - 2 * 4 * ONE_EXPERT == 174_336
    assert "safetensors headers" in rows[0].weights_source
    plain = cost(resolved.spec, "h100-sxm", [256], checkpoint=weights, weights_dtype="bf16")
    assert plain[0].decode.bytes.weights == 174_336 - VISION and plain[0].weights_source == "architecture"
    result = cli("cost", str(folder), "--gpu", "h100-sxm", "-c", "256")
    assert result.exit_code == 0 and "note: weights from " in result.stderr


def test_estimate_and_capacity_share_one_rule(folder):
    """`estimate` and `capacity` take the same weights term from the same resolved model."""
    from kvplan.capacity import setup
    from kvplan.catalog import resolve
    from kvplan.estimator import estimate

    resolved = resolve(str(folder))
    weights = resolved.weights()
    row = estimate(resolved.spec, [256], weights_dtype=weights, tp=2)[0]
    s = setup(resolved.spec, "h100-sxm", tp=2, checkpoint=weights)
    assert row.weights_bytes_per_gpu == s.stages[0].budget.weights == weights.bytes_per_stage(resolved.spec, tp=2)[0]
    assert resolved.weights(weights_dtype="fp8") is None  # an asked-for dtype: the architecture count


def test_the_default_cut_is_plain_tensor_parallelism():
    from kvplan.checkpoint import _tensor_sharding

    plain = Sharding.tensor(4)
    assert all(getattr(_tensor_sharding(4), f) == getattr(plain, f) for f in plain.__dataclass_fields__)


def test_plan_with_latency_targets_uses_the_header_bytes(cli, folder):
    result = cli("plan", str(folder), "--rate", "1", "--input", "128", "--output", "64", "--gpus", "h100-sxm",
                 "--max-gpus", "2", "-f", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    plans = json.loads(result.stdout)["plans"]
    own = [p for p in plans if p["weights_dtype"] == "bf16"]  # the checkpoint's dtype
    assert own and all("safetensors headers" in p["weights_source"] for p in own)
    assert "note: weights from " in result.stderr


# ---- check-log: the logged weights beside the checkpoint's headers -----------------------------------

# meta-llama/Llama-3.1-8B-Instruct config.json (https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct, the
# facts of model_specs/llama-3.1-8b.yaml)
LLAMA_8B = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
    "vocab_size": 128256, "max_position_embeddings": 131072, "rope_theta": 500000.0, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
}  # fmt: skip


def llama_8b_headers(extra: dict | None = None) -> bytes:
    h, inter, kv, vocab = 4096, 14336, 8 * 128, 128256
    t = {"model.embed_tokens.weight": ("BF16", (vocab, h))}
    for i in range(32):
        p = f"model.layers.{i}."
        t |= {p + "self_attn.q_proj.weight": ("BF16", (h, h)), p + "self_attn.k_proj.weight": ("BF16", (kv, h)),
              p + "self_attn.v_proj.weight": ("BF16", (kv, h)), p + "self_attn.o_proj.weight": ("BF16", (h, h)),
              p + "mlp.gate_proj.weight": ("BF16", (inter, h)), p + "mlp.up_proj.weight": ("BF16", (inter, h)),
              p + "mlp.down_proj.weight": ("BF16", (h, inter)), p + "input_layernorm.weight": ("BF16", (h,)),
              p + "post_attention_layernorm.weight": ("BF16", (h,))}  # fmt: skip
    t |= {"model.norm.weight": ("BF16", (h,)), "lm_head.weight": ("BF16", (vocab, h))}
    return header_only_safetensors(t | (extra or {}))


def test_check_log_weighs_the_model_by_its_headers(cli, tmp_path):
    from kvplan.logcheck import check_text
    from kvplan.units import GIB
    from tests.test_logcheck import VLLM_15

    # 8,030,261,248 parameters x 2 bytes = 16,060,522,496 (the architecture count) + a 4096x8192 bf16
    # vision tensor the count leaves out: 67,108,864 -> 16,127,631,360 bytes of headers
    (tmp_path / "model.safetensors").write_bytes(llama_8b_headers({"vision_tower.proj.weight": ("BF16", (4096, 8192))}))
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_8B))
    r = check_text(VLLM_15, model=str(tmp_path))
    rows = {row["term"]: row for row in r.rows}
    assert rows["weights"]["predicted_value"] == 16_127_631_360 / GIB
    assert any("safetensors headers (1 file, 292 tensors)" in n for n in r.notes)
    plain = check_text(VLLM_15, model=str(tmp_path), weights_dtype="bf16")  # asked: the architecture count
    assert {row["term"]: row for row in plain.rows}["weights"]["predicted_value"] == 16_060_522_496 / GIB
    log = tmp_path / "vllm.log"
    log.write_text(VLLM_15)
    result = cli("check-log", str(log), "--model", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "note: weights from " in result.stderr and "vision tower" in result.stderr

"""How long splitting a large checkpoint's header bytes over ranks takes (no network, no weights).

The checkpoint is DeepSeek-V3's tensor list as its Hub repository stores it (61 layers, the MoE
layers with 256 experts x gate/up/down, each with an fp32 128x128 block-scale tensor:
~90k tensors; shapes from model_specs/deepseek-v3.yaml, sizes rounded to the block grid). The
first split classifies every tensor by name; later ones (other TP/PP/EP configurations, as
``kvplan plan`` tries dozens) reuse that classification.

    python benchmarks/checkpoint_split.py
"""

from __future__ import annotations

import time

from kvplan.catalog import load_bundled
from kvplan.checkpoint import CheckpointWeights, TensorInfo, dominant_weight_dtype
from kvplan.engines import get_engine


def deepseek_v3_headers() -> CheckpointWeights:
    spec = load_bundled("deepseek-v3")
    h, inter = spec.hidden_size, spec.moe.expert_intermediate_size
    tensors = [TensorInfo("model.embed_tokens.weight", "BF16", (spec.vocab_size, h), spec.vocab_size * h * 2)]
    for layer in range(spec.num_layers):
        p = f"model.layers.{layer}."
        for name in ("self_attn.q_a_proj", "self_attn.q_b_proj", "self_attn.kv_a_proj_with_mqa",
                     "self_attn.kv_b_proj", "self_attn.o_proj"):  # fmt: skip
            tensors.append(TensorInfo(p + name + ".weight", "F8_E4M3", (h, h), h * h))
        for name in ("input_layernorm", "post_attention_layernorm", "self_attn.q_a_layernorm",
                     "self_attn.kv_a_layernorm"):  # fmt: skip
            tensors.append(TensorInfo(p + name + ".weight", "BF16", (h,), 2 * h))
        if layer in spec.dense_mlp_layers:
            continue
        tensors.append(TensorInfo(p + "mlp.gate.weight", "BF16", (256, h), 256 * h * 2))
        for e in range(spec.moe.num_experts):
            for proj in ("gate_proj", "up_proj", "down_proj"):
                name = p + f"mlp.experts.{e}.{proj}.weight"
                tensors.append(TensorInfo(name, "F8_E4M3", (inter, h), inter * h))
                scales = -(-inter // 128) * -(-h // 128)
                tensors.append(TensorInfo(name + "_scale_inv", "F32", (scales,), 4 * scales))
    tensors.append(TensorInfo("lm_head.weight", "BF16", (spec.vocab_size, h), spec.vocab_size * h * 2))
    return CheckpointWeights("deepseek-v3 (synthetic headers)", "safetensors", 163, tuple(tensors))


def main() -> None:
    spec = load_bundled("deepseek-v3")
    weights = deepseek_v3_headers()
    vllm = get_engine("vllm")
    start = time.perf_counter()
    weights.bytes_per_stage(spec, tp=8)
    first = time.perf_counter() - start
    configs = [(tp, dp, ep) for tp in (1, 2, 4, 8) for dp in (1, 2, 4, 8) for ep in (False, True)]
    start = time.perf_counter()
    for tp, dp, ep in configs:
        weights.bytes_per_stage(spec, pp=2, sharding=vllm.sharding(spec, tp=tp, dp=dp, ep=ep))
    later = (time.perf_counter() - start) / len(configs)
    start = time.perf_counter()
    dominant_weight_dtype(weights, spec)
    dtype = time.perf_counter() - start
    print(f"{len(weights.tensors):,} tensors")
    print(f"first split (classifies every tensor): {first:.2f} s")
    print(f"each later split ({len(configs)} TP/DP/EP configurations, PP 2): {later * 1e3:.2f} ms")
    print(f"nearest weights dtype (after the first split): {dtype * 1e3:.2f} ms")


if __name__ == "__main__":
    main()

"""Weight bytes per dtype: which weights a format applies to, and the launch flags that follow."""

from kvplan import load_bundled, resolve_gpu
from kvplan.capacity import capacity, setup
from kvplan.launch import launch_args, launch_notes
from kvplan.params import count_params, weight_bytes_per_gpu


def test_mxfp4_covers_routed_experts_only():
    spec = load_bundled("gpt-oss-20b")
    # 24 layers x 32 experts x 3 x 2880 x 2880 = 19,110,297,600 expert weights at 17/32 B (MXFP4);
    # the other 1,804,459,584 params (attention, router, expert biases, embeddings, head) in bf16.
    experts = 24 * 32 * 3 * 2880 * 2880
    assert count_params(spec).total == 20_914_757_184
    expected = experts * 17 // 32 + 2 * (20_914_757_184 - experts)
    assert weight_bytes_per_gpu(spec, "mxfp4") == expected == 13_761_264_768


def test_int4_covers_every_linear_layer_but_not_embeddings():
    spec = load_bundled("llama-3.1-8b")
    # Embedding and LM head 2 x 128,256 x 4,096 = 1,050,673,152 stay bf16; the rest is int4 at
    # 0.51953125 B per weight (4 bits + fp16 scale and 4-bit zero per 128).
    linear = 8_030_261_248 - 1_050_673_152 - (32 * 2 + 1) * 4096  # minus the RMSNorm weights
    expected = -(-linear * 133 // 256) + 2 * (8_030_261_248 - linear)
    assert weight_bytes_per_gpu(spec, "int4") == expected


def test_fp8_weights_launch_with_online_quantization():
    s = setup(load_bundled("qwen3-32b"), resolve_gpu("h200"), tp=2, weights_dtype="fp8")
    r = capacity(s, 32768, suggest=False)
    args = launch_args(r, model="Qwen/Qwen3-32B")
    assert args[args.index("--quantization") + 1] == "fp8"
    s4 = setup(load_bundled("qwen3-32b"), resolve_gpu("h200"), tp=2, weights_dtype="int4")
    r4 = capacity(s4, 32768, suggest=False)
    assert "--quantization" not in launch_args(r4, model="Qwen/Qwen3-32B")
    assert "pre-quantized checkpoint" in launch_notes(r4)[0]

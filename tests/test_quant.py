"""Weights as shipped: checkpoint formats from quantization_config, their bytes, and the defaults."""

from fractions import Fraction

import pytest

from kvplan.capacity import capacity, nearest_fits, setup
from kvplan.catalog import load_bundled
from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu
from kvplan.launch import launch_args, launch_notes
from kvplan.params import count_params, weight_bytes_per_gpu, weight_bytes_total
from kvplan.planner import candidate_dtypes
from kvplan.quant import bytes_per_weight, format_from_config, storage, storage_for_name

H100 = resolve_gpu("h100-sxm")


def test_gpt_oss_120b_fits_one_h100_by_default() -> None:
    spec = load_bundled("gpt-oss-120b")
    # Routed experts: 36 layers x 128 experts x 3 x 2880 x 2880 = 114,661,785,600 weights in MXFP4
    # (4-bit e2m1 + one e8m0 byte per 32 = 17/32 B) -> 60,914,073,600 B. The other
    # 116,829,156,672 - 114,661,785,600 = 2,167,371,072 params (attention, router, biases,
    # embeddings, head) stay bf16 -> 4,334,742,144 B. Total 65,248,815,744 B = 60.77 GiB,
    # against 217.6 GiB if the release were bf16.
    assert count_params(spec).total == 116_829_156_672
    assert weight_bytes_per_gpu(spec) == 60_914_073_600 + 4_334_742_144 == 65_248_815_744
    s = setup(spec, H100)
    r = capacity(s, 32768)
    # vLLM budget: 0.9 x 85,029,027,840 = 76,526,125,056 - 65,248,815,744 weights - activation - non-torch
    # leaves 7,362,429,844 B for KV: the model fits, weights as the release ships them.
    assert s.weights_dtype == "mxfp4" and s.weights_shipped
    assert r.fits and r.breakdown["weights_bytes"] == 65_248_815_744
    assert r.max_concurrent_sequences >= 1
    assert "--quantization" not in launch_args(r, model="openai/gpt-oss-120b")
    assert launch_notes(r) == []


def test_deepseek_v3_ships_fp8_with_fp32_block_scales() -> None:
    spec = load_bundled("deepseek-v3")
    # One fp32 scale per 128 x 128 block: 1 + 4 / 16384 bytes per fp8 weight.
    assert bytes_per_weight(spec.weights) == Fraction(16388, 16384)
    # TP8 rank: 84,441,235,456 fp8 weights + ceil(84,441,235,456 x 4 / 16384) = 20,615,536 B of scales,
    # plus 339,121,664 bf16 params (embedding/head shards, norms, routers) x 2 = 678,243,328 B.
    assert weight_bytes_per_gpu(spec, tp=8) == 84_441_235_456 + 20_615_536 + 678_243_328
    # Asking for fp8 is asking for the checkpoint that ships fp8: the same bytes, scales included.
    assert weight_bytes_per_gpu(spec, "fp8", tp=8) == weight_bytes_per_gpu(spec, tp=8)
    s = setup(spec, resolve_gpu("h200"), tp=8, gpus=8)
    r = capacity(s, 32768)
    assert r.fits and s.weights_shipped and "block 128x128" in s.weights_format
    assert "--quantization" not in launch_args(r, model="deepseek-ai/DeepSeek-V3")


@pytest.mark.parametrize(
    ("name", "fp8_weights", "sixteen_bit", "total_bytes"),
    [
        # DeepSeek-V3.1: V3's layout, so V3's split: 669,065,609,216 fp8 weights + ceil(x 4 / 16,384) =
        # 163,345,120 B of fp32 scales + 1,960,809,984 bf16 params (embedding, head, norms, routers) x 2.
        ("deepseek-v3.1", 669_065_609_216, 1_960_809_984, 673_150_575_280),
        # DeepSeek-V3.2-Exp: + 61 indexers' wq_b and wk (61 x 13,500,416 fp8) and their weights_proj and
        # k_norm (61 x 459,008 bf16): 669,889,134,592 fp8 + 163,546,176 B scales + 1,988,809,472 x 2.
        ("deepseek-v3.2-exp", 669_889_134_592, 1_988_809_472, 674_030_300_688),
        # Kimi K2: 1,023,893,241,856 fp8 + 249,973,936 B scales + 2,514,990,592 x 2.
        ("kimi-k2-instruct-0905", 1_023_893_241_856, 2_514_990_592, 1_029_173_196_976),
    ],
)
def test_deepseek_v31_v32_and_kimi_k2_ship_fp8_with_fp32_block_scales(
    name: str, fp8_weights: int, sixteen_bit: int, total_bytes: int
) -> None:
    spec = load_bundled(name)
    assert (spec.weights.method, spec.weights.block, spec.weights.scale_bytes) == ("fp8", [128, 128], 4)
    assert bytes_per_weight(spec.weights) == Fraction(16388, 16384)
    assert total_bytes == fp8_weights + -(-fp8_weights * 4 // 16384) + 2 * sixteen_bit
    assert weight_bytes_total(spec) == total_bytes
    assert weight_bytes_total(spec, "bf16") == 2 * (fp8_weights + sixteen_bit)  # the dequantized model


def test_bf16_override_is_the_dequantized_model() -> None:
    spec = load_bundled("deepseek-v3")
    s = setup(spec, resolve_gpu("h200"), tp=8, gpus=8, weights_dtype="bf16")
    assert not s.weights_shipped and s.weights_dtype == "bf16"
    assert not capacity(s, 32768).fits  # 671B x 2 B / 8 = 156 GiB per rank > 141 GB


def test_llamacpp_never_runs_fp8_weights() -> None:
    spec = load_bundled("deepseek-v3")
    # convert_hf_to_gguf dequantizes fp8: llama.cpp's default for an fp8 checkpoint is 16 bit.
    with pytest.raises(InvalidInput, match="does not load 'fp8' weights; it runs fp32, fp16, bf16, q8_0"):
        setup(spec, H100, engine="llamacpp", weights_dtype="fp8")
    small = load_bundled("llama-3.1-8b")
    assert candidate_dtypes(small, "llamacpp", weights=None, kv=None)[0] == ["bf16", "q8_0", "q4_k"]
    s = setup(load_bundled("llama-3.1-70b"), H100, engine="llamacpp")
    changes = [n.get("weights_dtype") for n in nearest_fits(s, 8192)]
    assert changes and set(changes) <= {"bf16", "q8_0", "q4_k", None}


def test_suggestions_only_offer_formats_that_exist() -> None:
    # vLLM makes fp8 from a 16-bit checkpoint (--quantization fp8); an int4 AWQ/GPTQ repository is not
    # known for a bf16 spec, so int4 is never suggested.
    spec = load_bundled("llama-3.1-70b")
    assert candidate_dtypes(spec, "vllm", weights=None, kv=None)[0] == ["bf16", "fp8"]
    # gpt-oss ships MXFP4 (17/32 B): fp8 (1 B) stores more, so nothing smaller is offered.
    assert candidate_dtypes(load_bundled("gpt-oss-120b"), "vllm", weights=None, kv=None)[0] == ["mxfp4"]
    s = setup(spec, H100)
    assert all(n.get("weights_dtype") in (None, "bf16", "fp8") for n in nearest_fits(s, 32768))


@pytest.mark.parametrize(
    ("config", "dtype", "per_weight"),
    [
        # AWQ: 4-bit + fp16 scale + 4-bit zero per 128 -> 0.5 + 2.5 / 128.
        ({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True}, "int4", Fraction(133, 256)),
        # GPTQ stores qzeros even when symmetric: the same 0.5 + 2.5 / 128.
        ({"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": True}, "int4", Fraction(133, 256)),
        # GPTQ per-channel (group -1): scales per output row only.
        ({"quant_method": "gptq", "bits": 8, "group_size": -1}, "int8", Fraction(1)),
        # bitsandbytes NF4: fp32 absmax per 64 -> 0.5 + 4 / 64.
        ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "nf4", Fraction(9, 16)),
        # compressed-tensors W4A16 group 128, symmetric, bf16 scales: 0.5 + 2 / 128.
        (
            {
                "quant_method": "compressed-tensors",
                "format": "pack-quantized",
                "config_groups": {
                    "group_0": {
                        "weights": {
                            "num_bits": 4,
                            "type": "int",
                            "strategy": "group",
                            "group_size": 128,
                            "symmetric": True,
                        }
                    }
                },
            },  # fmt: skip
            "int4",
            Fraction(33, 64),
        ),
        # compressed-tensors FP8 per-channel: 1 byte.
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {"g": {"weights": {"num_bits": 8, "type": "float", "strategy": "channel"}}},
            },
            "fp8",
            Fraction(1),
        ),  # fmt: skip
        # MXFP4: 4-bit + one e8m0 byte per 32 = 17/32, experts only.
        ({"quant_method": "mxfp4"}, "mxfp4", Fraction(17, 32)),
    ],
)
def test_quantization_config_formats(config, dtype, per_weight) -> None:  # noqa: ANN001
    fmt, notes = format_from_config({"quantization_config": config, "_name_or_path": "org/model"})
    assert fmt is not None and fmt.dtype == dtype and fmt.checkpoint == "org/model"
    assert bytes_per_weight(fmt) == per_weight
    assert notes[0].startswith("the checkpoint is quantized")


def test_unknown_or_broken_quantization_config_is_a_note() -> None:
    fmt, notes = format_from_config({"quantization_config": {"quant_method": "hqq"}})
    assert fmt is None and "does not model" in notes[0]
    fmt, notes = format_from_config({"quantization_config": {"quant_method": "fp8", "weight_block_size": [128]}})
    assert fmt is None and "weight_block_size" in notes[0]
    assert format_from_config({}) == (None, [])


def test_block_or_group_past_the_largest_size_is_not_a_format() -> None:
    # Found by tests/test_fuzz.py (hypothesis): a block of 16777217 rows, one past kvplan.spec.Size's bound
    # (1 << 24), reached WeightFormat and raised a pydantic traceback instead of giving a note.
    too_big = (1 << 24) + 1
    config = {"quantization_config": {"quant_method": "fp8", "weight_block_size": [too_big, 128]}}
    fmt, notes = format_from_config(config)
    assert fmt is None and "weight_block_size" in notes[0]
    fmt, _ = format_from_config({"quantization_config": {"quant_method": "fp8", "weight_block_size": [1 << 24, 128]}})
    assert fmt is not None and fmt.block == [1 << 24, 128]


def test_imported_deepseek_config_carries_its_format() -> None:
    from pathlib import Path

    from kvplan.hf import import_config

    path = Path(__file__).parent / "data" / "hf_configs" / "deepseek-v3.json"
    spec = import_config(path).spec
    assert spec.weights is not None and spec.weights.block == [128, 128] and spec.weights.scale_bytes == 4
    assert storage(spec).shipped and storage(spec).dtype.name == "fp8"
    assert storage_for_name("mxfp4").experts_only


def test_cli_capacity_default_is_as_shipped(cli) -> None:  # noqa: ANN001
    r = cli("capacity", "gpt-oss-120b", "--gpu", "h100-sxm", "-c", "32k")
    assert r.exit_code == 0, r.output
    assert "weights mxfp4, routed experts only, group 32, 8-bit scales (as shipped)" in r.output
    assert "does not fit" not in r.output

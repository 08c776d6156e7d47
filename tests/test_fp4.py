"""NVFP4 weights (formats, exact bytes against headers), FP4 compute peaks, GB200, and each engine's FP4 rule."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from kvplan.catalog import load_bundled, resolve_model
from kvplan.cost import peak_flops, phase_cost
from kvplan.errors import InvalidInput
from kvplan.hardware import bundled_gpus, resolve_gpu
from kvplan.latency import calibration, gemm_peak, gemm_seconds
from kvplan.params import weight_bytes_total
from kvplan.quant import bytes_per_weight, describe, format_from_config, storage_for_name
from kvplan.units import weight_dtype
from tests.benchmods import bench_module

B200, GB200, H200 = resolve_gpu("b200"), resolve_gpu("gb200"), resolve_gpu("h200")
BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

# ---- the format -------------------------------------------------------------------------------


def test_nvfp4_bytes_per_weight_by_hand():
    # two E2M1 values per byte (1/2) + one FP8 E4M3 scale per 16 values (1/16) = 9/16 byte per weight
    assert weight_dtype("nvfp4").bytes_per_element == Fraction(1, 2) + Fraction(1, 16) == Fraction(9, 16)
    assert not storage_for_name("nvfp4").experts_only  # every decoder linear layer, unlike gpt-oss's MXFP4


@pytest.mark.parametrize(
    "qc",
    [
        # config.json of a ModelOpt export (flat keys)
        {"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16, "exclude_modules": ["lm_head"]},
        # hf_quant_config.json folded in by kvplan.quant.fold_quant_files (vLLM reads original_config["quantization"])
        {"quant_method": "modelopt", "producer": {"name": "modelopt"},
         "quantization": {"quant_algo": "NVFP4", "group_size": 16, "kv_cache_quant_algo": "FP8",
                          "exclude_modules": ["lm_head"]}},
        # compressed-tensors nvfp4-pack-quantized (vLLM compressed_tensors.py _is_fp4a4_nvfp4: float, 4 bits,
        # tensor_group strategy, group 16)
        {"quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized", "ignore": ["lm_head"],
         "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "float", "strategy": "tensor_group",
                                                   "group_size": 16, "symmetric": True}}}},
    ],
)  # fmt: skip
def test_nvfp4_configs_read_as_nvfp4(qc):  # noqa: ANN001
    fmt, notes = format_from_config({"quantization_config": qc})
    assert fmt is not None and fmt.dtype == "nvfp4" and fmt.group_size == 16 and fmt.scale_bytes == 1
    assert bytes_per_weight(fmt) == Fraction(9, 16)
    assert fmt.unquantized == ["lm_head"]  # kvplan keeps the LM head 16-bit anyway: no note
    assert "fp8 e4m3 scales" in describe(fmt) and len(notes) == 1


def test_excluded_decoder_modules_are_a_note_and_other_groups_are_refused():
    qc = {"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16,
          "exclude_modules": ["lm_head", "model.layers.0.self_attn*"]}  # fmt: skip
    fmt, notes = format_from_config({"quantization_config": qc})
    assert fmt is not None and "model.layers.0.self_attn*" in notes[1] and "low by them" in notes[1]
    fmt, notes = format_from_config({"quantization_config": {**qc, "group_size": 32}})
    assert fmt is None and "group size 32" in notes[0]
    fmt, notes = format_from_config({"quantization_config": {"quant_method": "modelopt", "quant_algo": "W4A8_AWQ"}})
    assert fmt is None and "W4A8_AWQ" in notes[0]


# ---- exact bytes against a checkpoint's headers -----------------------------------------------------


def _nvfp4_llama(torch):  # noqa: ANN001, ANN202
    """A 2-layer Llama (hidden 64, MLP 128, 4 heads / 2 KV heads of 16, vocab 256) in ModelOpt's NVFP4 layout."""
    h, inter, vocab = 64, 128, 256
    bf16 = torch.bfloat16
    tensors = {
        "model.embed_tokens.weight": torch.zeros(vocab, h, dtype=bf16),
        "model.norm.weight": torch.ones(h, dtype=bf16),
        "lm_head.weight": torch.zeros(vocab, h, dtype=bf16),
    }
    shapes = {"self_attn.q_proj": (64, h), "self_attn.k_proj": (32, h), "self_attn.v_proj": (32, h),
              "self_attn.o_proj": (h, 64), "mlp.gate_proj": (inter, h), "mlp.up_proj": (inter, h),
              "mlp.down_proj": (h, inter)}  # fmt: skip
    for i in range(2):
        p = f"model.layers.{i}."
        tensors[p + "input_layernorm.weight"] = torch.ones(h, dtype=bf16)
        tensors[p + "post_attention_layernorm.weight"] = torch.ones(h, dtype=bf16)
        for name, (out_dim, in_dim) in shapes.items():
            tensors[f"{p}{name}.weight"] = torch.zeros(out_dim, in_dim // 2, dtype=torch.uint8)  # 2 x E2M1 a byte
            tensors[f"{p}{name}.weight_scale"] = torch.zeros(out_dim, in_dim // 16, dtype=torch.float8_e4m3fn)
            tensors[f"{p}{name}.weight_scale_2"] = torch.ones((), dtype=torch.float32)
            tensors[f"{p}{name}.input_scale"] = torch.ones((), dtype=torch.float32)
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": h,
              "intermediate_size": inter, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "head_dim": 16, "vocab_size": vocab, "max_position_embeddings": 512, "rms_norm_eps": 1e-5,
              "tie_word_embeddings": False, "torch_dtype": "bfloat16"}  # fmt: skip
    quant = {"producer": {"name": "modelopt", "version": "0.29.0"},
             "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8", "group_size": 16,
                              "exclude_modules": ["lm_head"]}}  # fmt: skip
    return config, quant, tensors


def test_nvfp4_checkpoint_headers_equal_the_count_plus_per_tensor_scales(tmp_path):  # noqa: ANN001
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    from kvplan.catalog import resolve
    from kvplan.weights_compare import compare_weights

    config, quant, tensors = _nvfp4_llama(torch)
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "hf_quant_config.json").write_text(json.dumps(quant))  # ModelOpt's own file, beside config.json
    (tmp_path / "model.safetensors").write_bytes(safetensors_torch.save(tensors))
    resolved = resolve(str(tmp_path))
    spec = resolved.spec
    assert spec.weights is not None and spec.weights.dtype == "nvfp4" and spec.weights.method == "modelopt"
    weights = resolved.checkpoint()
    # By hand. Linear weights per layer: q 64x64 + k 32x64 + v 32x64 + o 64x64 + gate, up 128x64 + down 64x128
    # = 4096 + 2048 + 2048 + 4096 + 3 x 8192 = 36,864; two layers 73,728 in NVFP4:
    #   values 73,728 / 2 = 36,864 B (uint8) + E4M3 scales 73,728 / 16 = 4,608 B = 41,472 B = 73,728 x 9/16.
    # fp32 per-tensor scales: 7 linears x 2 layers x (weight_scale_2 + input_scale) x 4 B = 112 B.
    # bf16: embedding 256x64 + LM head 256x64 + final norm 64 + 2 layers x 2 norms x 64 = 33,088 x 2 = 66,176 B.
    assert weights.total_bytes == 41_472 + 112 + 66_176 == 107_760
    assert weight_bytes_total(spec, "nvfp4") == 41_472 + 66_176 == 107_648
    cmp = compare_weights(weights, spec)
    assert cmp.architecture_dtype == "nvfp4"  # uint8 weights with an E4M3 scale beside them
    assert cmp.modelled_scale_bytes == 4_608
    assert cmp.explained == {"quantization scales": 112} and cmp.unexplained_bytes == 0


def test_compressed_tensors_nvfp4_headers_equal_the_count_plus_global_scales(tmp_path):  # noqa: ANN001
    # llm-compressor's nvfp4-pack-quantized layout: weight_packed uint8 [out, in / 2], weight_scale float8_e4m3fn
    # [out, in / 16], weight_global_scale and input_global_scale fp32 (one each per linear), lm_head ignored.
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    from kvplan.catalog import resolve
    from kvplan.weights_compare import compare_weights

    config, _, modelopt = _nvfp4_llama(torch)
    tensors = {}
    for name, t in modelopt.items():
        if name.endswith(".weight") and t.dtype == torch.uint8:
            tensors[name[: -len("weight")] + "weight_packed"] = t
        elif name.endswith(".weight_scale_2"):
            tensors[name[: -len("weight_scale_2")] + "weight_global_scale"] = t
        elif name.endswith(".input_scale"):
            tensors[name[: -len("input_scale")] + "input_global_scale"] = t
        else:
            tensors[name] = t
    config["quantization_config"] = {
        "quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized", "ignore": ["lm_head"],
        "config_groups": {"group_0": {"targets": ["Linear"],
                                      "weights": {"num_bits": 4, "type": "float", "strategy": "tensor_group",
                                                  "group_size": 16, "symmetric": True}}},
    }  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").write_bytes(safetensors_torch.save(tensors))
    resolved = resolve(str(tmp_path))
    assert resolved.spec.weights.method == "compressed-tensors" and resolved.spec.weights.dtype == "nvfp4"
    cmp = compare_weights(resolved.checkpoint(), resolved.spec)
    # the same bytes as the ModelOpt layout above: 41,472 (values + E4M3 scales) + 112 fp32 + 66,176 bf16
    assert cmp.checkpoint_bytes == 107_760 and cmp.architecture_bytes == 107_648
    assert cmp.architecture_dtype == "nvfp4" and cmp.explained == {"quantization scales": 112}


# ---- FP4 compute: the catalog, the GEMM peak, each engine's rule ---------------------------------


def test_fp4_peaks_in_the_catalog_blackwell_only():
    gpus = bundled_gpus()
    assert (gpus["b200"].fp4_dense_tflops, gpus["gb200"].fp4_dense_tflops) == (9000, 10000)  # aiconfigurator systems
    assert all(g.fp4_dense_tflops is None for g in gpus.values() if g.architecture != "blackwell")
    assert peak_flops(B200, "fp4") == 9000e12
    with pytest.raises(InvalidInput, match="no FP4 tensor cores"):
        peak_flops(H200, "fp4")


def test_gb200_catalog_entry_and_its_calibration():
    # nvidia-smi 189471 MiB, 8 TB/s, dense bf16 2500 / fp8 5000 / fp4 10000 TFLOPS, NVLink5 1800 GB/s, NVL72 domain
    g = GB200
    assert (g.memory_mib, g.bandwidth_gbps, g.bf16_dense_tflops, g.fp8_dense_tflops) == (189471, 8000, 2500, 5000)
    assert (g.interconnect_gbps, g.nvlink_domain_gpus, g.architecture) == (1800, 72, "blackwell")
    # the Blackwell (B200-fitted) calibration: the same peak share as B200, scaled by the datasheet peaks
    cal = calibration("trtllm")
    assert gemm_peak(None, GB200, cal, "nvfp4")[0] / gemm_peak(None, B200, cal, "nvfp4")[0] == pytest.approx(10 / 9)


def test_nvfp4_gemm_at_the_fp4_peak_on_blackwell_and_weight_only_on_hopper():
    cal = calibration("trtllm")
    # B200, NVFP4: 9000e12 x fp4_eff_scale x blackwell_compute_eff
    peak, mem = gemm_peak(None, B200, cal, "nvfp4")
    assert peak == pytest.approx(9000e12 * cal.fp4_eff_scale * cal.blackwell_compute_eff)
    assert mem == cal.fp4_mem_eff_scale
    # a large GEMM (compute bound): 2 x 8192^3 FLOPs at peak x gemm_peak_eff x 8192 / (8192 + gemm_half_m), plus the
    # activations' FP4 quantization kernel: 8192 x 8192 x (2 + 1/2 + 1/16) B = 171,966,464 B at 7700e9 x
    # elementwise_mem_eff, plus its launch, plus the GEMM's own fixed cost fp4_gemm_s. Before the quantization kernel
    # was priced: 0.2880 ms; then 0.3213 ms; with fp4_gemm_s and the refit on the GEMM tables, 0.3311 ms.
    eff = cal.gemm_peak_eff * 8192 / (8192 + cal.gemm_half_m)
    quantize = 171_966_464 / (7700e9 * cal.elementwise_mem_eff) + cal.graph_kernel_s
    by_hand = 2 * 8192**3 / (peak * eff) + quantize + cal.graph_kernel_s + cal.fp4_gemm_s
    assert gemm_seconds(B200, cal, m=8192, n=8192, k=8192, weights_dtype="nvfp4", eager=False) == pytest.approx(by_hand)
    fp8 = gemm_seconds(B200, cal, m=8192, n=8192, k=8192, weights_dtype="fp8", eager=False)
    assert by_hand < fp8  # FP4 x FP4 beats FP8 x FP8 at the same shape
    # H200 (vLLM, Marlin W4A16): the 16-bit peak, weights read at 9/16 byte with the 16-bit streaming efficiency
    v = calibration("vllm")
    assert gemm_peak(None, H200, v, "nvfp4") == (989e12, 1.0)
    # batch 16: the larger of 2 x 16 x 8192^2 FLOPs at 989e12 x gemm_peak_eff x 16 / (16 + gemm_half_m) and
    # 8192 x 8192 weights x 9/16 B + 16 x 16384 x 2 B activations at 4800e9 x gemm_mem_eff
    compute = 2 * 16 * 8192**2 / (989e12 * v.gemm_peak_eff * 16 / (16 + v.gemm_half_m))
    moved = 8192 * 8192 * 9 / 16 + 16 * 16384 * 2
    by_hand = max(compute, moved / (4800e9 * v.gemm_mem_eff)) + v.graph_kernel_s
    assert gemm_seconds(H200, v, m=16, n=8192, k=8192, weights_dtype="nvfp4", eager=False) == pytest.approx(by_hand)


def test_trtllm_refuses_nvfp4_on_hopper_and_vllm_runs_it(cli):  # noqa: ANN001
    spec = load_bundled("llama-3.1-8b")
    with pytest.raises(InvalidInput, match="does not run nvfp4 weights on h200"):
        phase_cost(spec, H200, 1024, phase="decode", engine="trtllm", weights_dtype="nvfp4")
    # Llama 3.1 70B (was the 8B: since the NVFP4 GEMMs' K loop and quantization kernel are priced, the 8B's narrow
    # GEMMs at batch 1 run slower in NVFP4 than in fp8, 3.26 against 2.88 ms, as aiconfigurator's B200 GEMM tables
    # have them: 13.7 us for a 4096 x 4096 NVFP4 GEMM at M = 1, 9.9 us in bf16); the 70B's wide ones gain.
    big = load_bundled("llama-3.1-70b")
    on_b200 = phase_cost(big, B200, 1024, phase="decode", engine="trtllm", weights_dtype="nvfp4")
    assert on_b200.time_s < phase_cost(big, B200, 1024, phase="decode", engine="trtllm", weights_dtype="fp8").time_s
    assert phase_cost(spec, H200, 1024, phase="decode", engine="vllm", weights_dtype="nvfp4").time_s > 0
    r = cli("capacity", "llama-3.1-8b", "--gpu", "h200", "--engine", "trtllm", "--weights-dtype", "nvfp4", "-c", "8k")
    assert r.exit_code == 2 and "TensorRT-LLM runs NVFP4 on Blackwell only" in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = cli("capacity", "llama-3.1-8b", "--gpu", "h200", "--engine", "vllm", "--weights-dtype", "nvfp4", "-c", "8k")
    assert r.exit_code == 0, r.output
    # SGLang's and transformers' NVFP4 paths were not read (transformers 5.24 refuses pre-quantized NVFP4)
    for engine in ("sglang", "transformers"):
        r = cli("capacity", "llama-3.1-8b", "--gpu", "b200", "--engine", engine, "--weights-dtype", "nvfp4", "-c", "8k")
        assert r.exit_code == 2 and "does not load 'nvfp4'" in r.output


def test_nvfp4_grouped_experts_at_their_own_fp4_share():
    # Qwen3-30B-A3B on B200 (TensorRT-LLM): NVFP4 experts at fp4_moe_eff_scale of the FP4 peak, not the dense share
    from dataclasses import replace

    from kvplan import latency

    spec, cal = load_bundled("qwen3-30b-a3b"), calibration("trtllm")
    ctx = latency._make_ctx(spec, B200, tp=1, weights_dtype="nvfp4", cal=cal, eager=True)
    assert ctx.moe_peak == pytest.approx(9000e12 * cal.fp4_moe_eff_scale * cal.blackwell_compute_eff)
    assert latency._make_ctx(spec, B200, tp=1, weights_dtype="fp8", cal=cal, eager=True).moe_peak is None
    # a 8192-token prefill chunk: compute bound, so the grouped GEMMs scale with 1 / fp4_moe_eff_scale
    slow = latency._moe_s(ctx, 8192, 8192)[0]
    fast_cal = replace(cal, fp4_moe_eff_scale=2 * cal.fp4_moe_eff_scale)
    fast = latency._moe_s(latency._make_ctx(spec, B200, tp=1, weights_dtype="nvfp4", cal=fast_cal, eager=True),
                          8192, 8192)[0]  # fmt: skip
    assert fast < slow


# Round constants for the hand-computed goldens below (every other field as the TensorRT-LLM fit has it).
_ROUND = dict(gemm_peak_eff=0.5, gemm_half_m=63.0, gemm_mem_eff=0.5, fp4_eff_scale=0.5, fp4_mem_eff_scale=0.5,
              blackwell_compute_eff=0.8, elementwise_mem_eff=0.5, graph_kernel_s=3e-6, fp4_k_s=2e-9,
              fp4_gemm_s=1e-6)  # fmt: skip


def test_nvfp4_gemm_k_loop_sets_decode_time_whatever_n():
    """One output tile runs the whole K loop (CUTLASS kGemm, PersistentScheduler, no split-K), so at M = 1 the
    time is K x fp4_k_s until the whole GPU's bandwidth binds; aiconfigurator's B200 table shows the same."""
    from dataclasses import replace

    cal = replace(calibration("trtllm"), **_ROUND)
    # B200, M = 1, K = 16384. Streaming at 7700e9 x gemm_mem_eff 0.5 x fp4_mem_eff_scale 0.5 = 1925e9 B/s.
    # K loop: 16384 x 2e-9 = 32.768 us. Quantization: 16384 x (2 + 1/2 + 1/16) = 41,984 B at 7700e9 x 0.5 =
    # 0.0109 us, plus 3 us. Compute: 2 x 512 x 16384 FLOPs at 9000e12 x 0.5 x 0.8 x 0.5 / 64 = 28.125e12: 0.597 us.
    # N = 512: weights 512 x 16384 x 9/16 = 4,718,592 B + (512 + 16384) x 2 B = 4,752,384 B: 2.469 us < K loop
    # N = 4096: 37,748,736 + 40,960 = 37,789,696 B: 19.631 us < K loop. Both: 32.768 + 0.0109 + 3 + 3 us, plus the
    # GEMM's fixed cost fp4_gemm_s 1 us = 39.779 us.
    quantize = 41_984 / 3850e9 + 3e-6
    for n in (512, 4096):
        t = gemm_seconds(B200, cal, m=1, n=n, k=16384, weights_dtype="nvfp4", eager=False)
        assert t == pytest.approx(32.768e-6 + quantize + 3e-6 + 1e-6), n
    # N = 16384: 150,994,944 + 65,536 = 151,060,480 B at 1925e9 = 78.473 us > the K loop: bandwidth binds
    t = gemm_seconds(B200, cal, m=1, n=16384, k=16384, weights_dtype="nvfp4", eager=False)
    assert t == pytest.approx(151_060_480 / 1925e9 + quantize + 3e-6 + 1e-6)
    # no K-loop roof and no quantization kernel where NVFP4 is not W4A4 (H200: weight-only) or for fp8 weights
    # (fp8 pays its own dynamic fp8 activation quantization instead, kvplan.latency._gemm_s; held out here)
    fp8 = replace(cal, blackwell_fp8_quant_s=0.0, fp8_quant_read_eff=1e9)
    assert gemm_seconds(B200, fp8, m=1, n=512, k=16384, weights_dtype="fp8", eager=False) < 10e-6


def test_nvfp4_lm_head_stays_16bit():
    """ModelOpt's NVFP4 export excludes lm_head: Llama 3.1 8B's head on B200 reads 16-bit weights."""
    from dataclasses import replace

    from kvplan import latency

    spec = load_bundled("llama-3.1-8b")
    cal = replace(calibration("trtllm"), **_ROUND)
    ctx = latency._make_ctx(spec, B200, tp=1, weights_dtype="nvfp4", cal=cal, eager=False)
    # rows = 1: weights 4096 x 128256 x 2 B = 1,050,673,152 B + the row read, 4096 x 2 B = 8,192 B (kvplan's head
    # counts its input, as before) -> 1,050,681,344 B at 7700e9 x gemm_mem_eff 0.5 = 3850e9: 272.904 us (compute:
    # 2 x 525,336,576 FLOPs at 2250e12 x 0.8 x 0.5 / 64 = 14.0625e12: 74.7 us, less), plus 3 us; no FP4
    # quantization kernel, no K loop
    assert latency.lm_head_s(ctx, 1) == pytest.approx(1_050_681_344 / 3850e9 + 3e-6)
    # the fp8 path is unchanged (head at the fp8 GEMMs' rates), so an nvfp4 head costs more than half a 1-byte one
    assert latency.lm_head_s(ctx, 1) > latency.lm_head_s(
        latency._make_ctx(spec, B200, tp=1, weights_dtype="fp8", cal=cal, eager=False), 1
    )


def test_nvfp4_moe_layers_take_their_own_fixed_cost():
    """NVFP4 experts on Blackwell run TensorRT-LLM-Gen's fused MoE kernels: their fixed cost is fp4_moe_layer_s."""
    from kvplan import latency

    spec, cal = load_bundled("qwen3-30b-a3b"), calibration("trtllm")
    ctx = latency._make_ctx(spec, B200, tp=1, weights_dtype="nvfp4", cal=cal, eager=False)
    assert ctx.moe_layer_s == cal.fp4_moe_layer_s < cal.moe_layer_s
    # a vanishing share of a token: only the fixed cost (6.545 us for TensorRT-LLM's fit, not moe_layer_s 25.3 us;
    # 6.627 us before the FP4 refit that followed B200's own all-reduce latency;
    # 5.765 us before the FP4 refit that followed FP8 context attention for NVFP4 checkpoints, 5.592 us before the
    # one that followed the Blackwell decode attention refit, 7.183 us before the one that followed the router's
    # 16-bit pricing, 7.041 us before the one with the GEMM tables and fp4_gemm_s)
    assert latency._moe_s(ctx, 1, 0)[0] == pytest.approx(6.545e-6)
    # fp8 on B200 and weight-only NVFP4 on H200 (vLLM, Marlin): the grid's fixed cost, no K loop; the NVFP4
    # checkpoint's head is 16-bit on either GPU, the fp8 one's is priced as before
    fp8 = latency._make_ctx(spec, B200, tp=1, weights_dtype="fp8", cal=calibration("vllm"), eager=False)
    hopper = latency._make_ctx(spec, H200, tp=1, weights_dtype="nvfp4", cal=calibration("vllm"), eager=False)
    assert (fp8.moe_layer_s, fp8.fp4_k_s, fp8.head_16bit) == (None, 0.0, False)
    assert (hopper.moe_layer_s, hopper.fp4_k_s, hopper.head_16bit) == (None, 0.0, True)


def _aic_rows(key: str) -> list[dict]:
    cmp = bench_module("aiconfigurator_compare")
    return cmp.compare(json.loads((BENCH / "data" / "aiconfigurator_grid.json").read_text())[key])


def test_fp4_steps_against_aiconfigurator_fitted_and_hold_out():
    """NVFP4 steps (aiconfigurator 0.12.0, fp8 KV). Fitted (22 B200 cases, both engines): TTFT median |ln| 0.057,
    worst 0.243; TPOT 0.056, worst 0.344. Hold-out (8 TensorRT-LLM cases on B200 and GB200, never fitted; GB200
    priced with the B200 calibration): TTFT 0.065 / 0.115, TPOT 0.053 / 0.220. Before the K loop, the quantization
    kernel, the 16-bit LM head and the NVFP4 MoE fixed cost (three FP4 constants only): fitted TTFT 0.044 / 0.214,
    TPOT 0.127 / 0.343; hold-out TTFT 0.077 / 0.147, TPOT 0.169 / 0.377 (the TPOT medians above the 0.10 target).
    Before the FP4 fit (the FP4 peak at the neutral 1.0 scales) the fitted set was at TTFT 0.553 (TensorRT-LLM).
    With TensorRT-LLM's FP8 context attention for NVFP4 checkpoints and its FP4 constants refitted: fitted TTFT
    0.059 / 0.247, TPOT 0.055 / 0.349; hold-out TTFT 0.069 / 0.118, TPOT 0.058 / 0.225 (bounds unchanged)."""
    for key, n, ttft, tpot in (("fp4_cases", 22, 0.10, 0.10), ("fp4_holdout_cases", 8, 0.10, 0.10)):
        rows = _aic_rows(key)
        assert len(rows) == n and {r["gpu"] for r in rows} <= {"b200", "gb200"}
        for phase, median in (("ttft", ttft), ("tpot", tpot)):
            errs = [abs(r[f"ln_{phase}"]) for r in rows if phase == "ttft" or not _min_latency_moe(r)]
            assert statistics.median(errs) <= median and max(errs) <= math.log(1.5), (key, phase)


def _min_latency_moe(row: dict) -> bool:
    """A TensorRT-LLM MoE decode step of at most 128 tokens: aiconfigurator prices its NVFP4 experts with the
    TRT-LLM-Gen min-latency table there (benchmarks/moe_gap.py), which TensorRT-LLM does not serve NVFP4 checkpoints
    with (CutlassFusedMoE: kvplan.engines.trtllm CUTLASS_NVFP4_MOE)."""
    return row["engine"] == "trtllm" and resolve_model(row["model"]).moe is not None and row["batch"] <= 128


def test_min_latency_moe_steps_are_slower_in_kvplan():
    """Since kvplan prices TensorRT-LLM's NVFP4 experts with the CUTLASS path's own fixed cost a layer
    (cutlass_nvfp4_moe_layer_s 40.5 us where aiconfigurator's min-latency table takes 16.6 us at one token of
    Qwen3-30B-A3B), those decode steps are slower in kvplan than in aiconfigurator: fitted Qwen3-30B-A3B b1 / b32 and
    Qwen3-235B-A22B TP 4 b16 / TP 8 b128 at ln +0.34 / +0.36 / +0.53 / +0.41, hold-out +0.43 / +0.34 / +0.35 (they
    were within 1.5x with fp4_moe_layer_s's 7.0 us, fitted on these very steps)."""
    rows = [r for key in ("fp4_cases", "fp4_holdout_cases") for r in _aic_rows(key) if _min_latency_moe(r)]
    assert len(rows) == 7 and all(0.3 < r["ln_tpot"] < 0.6 for r in rows)


def test_fp4_fit_reproduces_the_constants_in_the_engine_modules():
    pytest.importorskip("scipy")
    out = subprocess.run([sys.executable, str(BENCH / "fit_fp4.py")], capture_output=True, text=True, check=True)
    for engine in ("trtllm", "vllm"):
        cal = calibration(engine)
        block = out.stdout.split(f"# engine {engine}")[1].split("# engine")[0]
        fields = ("fp4_eff_scale", "fp4_mem_eff_scale", "fp4_moe_eff_scale", "fp4_k_s", "fp4_moe_layer_s", "fp4_gemm_s")
        for field in fields:
            assert f"{field}={getattr(cal, field):.4g}," in block, field
    # TensorRT-LLM's constants come from the steps and its GEMM tables together, vLLM's from the steps alone
    assert "GEMM-table points" in out.stdout.split("# engine vllm")[0] and calibration("trtllm").fp4_gemm_s > 0
    assert "steps alone" in out.stdout.split("# engine vllm")[1] and calibration("vllm").fp4_gemm_s == 0


def _table_us(gpu: str, engine: str, m: int, n: int, k: int) -> float:
    """aiconfigurator's measured NVFP4 GEMM (us) at m x n x k, from the committed sample gemm_compare.py reads."""
    gemm = bench_module("gemm_compare")
    table = next(t for t in gemm.load() if (t["gpu"], t["engine"], t["dtype"]) == (gpu, engine, "nvfp4"))
    return table["us"][gemm._points().index((m, n, k))]


def test_nvfp4_gemm_by_hand_against_the_gemm_table():
    """Two B200 GEMMs priced by hand with TensorRT-LLM's constants, beside aiconfigurator's TensorRT-LLM 1.3.0rc20
    table (the Linear forward: fp4_quantize, then trtllm::nvfp4_gemm)."""
    cal = calibration("trtllm")
    launch, fixed, bw = cal.graph_kernel_s, cal.fp4_gemm_s, 7700e9
    # decode, 16 x 1024 x 1024: the K loop 1024 x fp4_k_s binds (weights 589,824 B + 65,536 B of activations stream
    # in 0.17 us); the quantization kernel 16 x 1024 x (2 + 1/2 + 1/16) = 41,984 B plus its launch; the GEMM's launch
    # and fixed cost: 8.21 us against the table's 8.365 (x0.98; x0.88 before fp4_gemm_s and the joint refit)
    by_hand = 1024 * cal.fp4_k_s + 41_984 / (bw * cal.elementwise_mem_eff) + launch + launch + fixed
    t = gemm_seconds(B200, cal, m=16, n=1024, k=1024, weights_dtype="nvfp4", eager=False)
    assert t == pytest.approx(by_hand)
    assert abs(math.log(t / (_table_us("b200", "trtllm", 16, 1024, 1024) * 1e-6))) < 0.05
    # Llama 3.1 405B's TP4 shape at 256 rows, 256 x 16384 x 16384: compute binds, 2 x 256 x 16384^2 FLOPs at 9000e12 x
    # fp4_eff_scale x blackwell_compute_eff x gemm_peak_eff x 256 / (256 + gemm_half_m) = 45.66 us (weights and
    # activations, 167,772,160 B, stream in 42.81 us); with the quantization (10,747,904 B), two launches and the fixed
    # cost 53.91 us against the table's 47.35: x1.14 (x1.19 before). The rest is the size term a fixed cost cannot
    # take (benchmarks/fit_fp4.py: large N x K at M >= 256 still +0.12 signed).
    eff = cal.gemm_peak_eff * 256 / (256 + cal.gemm_half_m)
    compute = 2 * 256 * 16384**2 / (9000e12 * cal.fp4_eff_scale * cal.blackwell_compute_eff * eff)
    by_hand = compute + 10_747_904 / (bw * cal.elementwise_mem_eff) + launch + launch + fixed
    t = gemm_seconds(B200, cal, m=256, n=16384, k=16384, weights_dtype="nvfp4", eager=False)
    assert t == pytest.approx(by_hand)
    assert 0.10 < math.log(t / (_table_us("b200", "trtllm", 256, 16384, 16384) * 1e-6)) < 0.15


def test_plan_with_nvfp4_on_hopper_only_is_the_engine_refusal(cli):  # noqa: ANN001
    # Not "no configuration meets the targets": the engine cannot run the weights the user asked for on any GPU given.
    for extra in (["--rate", "2", "--input", "2k", "--output", "512", "--ttft", "1s", "--tpot", "50ms"],
                  ["--users", "8", "--context", "8k"]):  # fmt: skip
        r = cli("plan", "llama-3.1-70b", "--engine", "trtllm", "--weights-dtype", "nvfp4", "--gpus", "h200", *extra)
        assert r.exit_code == 2 and "does not run nvfp4 weights on h200" in r.output, r.output
    # one Blackwell GPU among them: the plan goes on, on that GPU
    r = cli("plan", "llama-3.1-70b", "--engine", "trtllm", "--weights-dtype", "nvfp4", "--gpus", "h200,b200",
            "--rate", "2", "--input", "2k", "--output", "512", "--ttft", "1s", "--tpot", "50ms")  # fmt: skip
    assert r.exit_code == 0 and "b200" in r.output and "h200 " not in r.output, r.output

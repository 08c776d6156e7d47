"""kvplan's in-flight batching throughput against engines' published measurements.

Source: TensorRT-LLM's performance overview, NVIDIA/TensorRT-LLM
``docs/source/performance/perf-overview.md`` @ 00f37686 (v1.0 tables): ``trtllm-bench throughput``
with the PyTorch backend, requests fed at an infinite rate, fixed ISL/OSL (standard deviation 0),
ModelOpt FP8 checkpoints (weights and KV cache in fp8), CUDA graphs with padding, and "in many
cases" ``kv_cache_free_gpu_mem_fraction 0.95``. The metric is Total Output Throughput (tokens/s)
of the whole TP group. kvplan's figure is the highest sustainable request rate of one replica
(:func:`kvplan.serving.max_rate`, TensorRT-LLM constants of :mod:`kvplan.latency`, the engine's
default ``max_num_tokens`` 8192) times OSL.

Only dense models are compared: the table's MoE rows run attention data parallelism and expert
parallelism (``enable_attention_dp``, ``--ep``), which kvplan's latency model does not cost, and
its FP4 columns use NVFP4, which the fit did not cover (aiconfigurator's grid is bf16/fp8).

``python benchmarks/published_compare.py [--markdown]``
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys

SOURCE = "NVIDIA/TensorRT-LLM docs/source/performance/perf-overview.md @ 00f37686 (TensorRT-LLM v1.0)"

# (kvplan model, GPU, TP, ISL, OSL, published output tokens/s). Llama 3.3 70B has Llama 3.1 70B's architecture.
PUBLISHED = [
    ("llama-3.1-8b", "h200", 1, 128, 2048, 26_221),
    ("llama-3.1-8b", "h200", 1, 1000, 1000, 17_744),
    ("llama-3.1-8b", "h200", 1, 2048, 128, 3_538),
    ("llama-3.1-8b", "h200", 1, 2048, 2048, 12_194),
    ("llama-3.1-8b", "h200", 1, 5000, 500, 3_902),
    ("llama-3.1-8b", "h200", 1, 20000, 2000, 1_804),
    ("llama-3.1-8b", "h100-sxm", 1, 128, 2048, 22_714),
    ("llama-3.1-8b", "h100-sxm", 1, 1000, 1000, 15_220),
    ("llama-3.1-8b", "h100-sxm", 1, 2048, 128, 3_450),
    ("llama-3.1-8b", "h100-sxm", 1, 2048, 2048, 9_305),
    ("llama-3.1-8b", "h100-sxm", 1, 5000, 500, 3_459),
    ("llama-3.1-70b", "h200", 1, 128, 2048, 4_336),
    ("llama-3.1-70b", "h200", 1, 1000, 1000, 2_909),
    ("llama-3.1-70b", "h200", 1, 2048, 128, 442),
    ("llama-3.1-70b", "h200", 1, 2048, 2048, 2_003),
    ("llama-3.1-70b", "h200", 1, 5000, 500, 566),
    ("llama-3.1-70b", "h100-sxm", 2, 128, 2048, 6_651),
    ("llama-3.1-70b", "h100-sxm", 2, 1000, 1000, 4_205),
    ("llama-3.1-70b", "h100-sxm", 2, 2048, 128, 762),
    ("llama-3.1-70b", "h100-sxm", 2, 2048, 2048, 3_082),
    ("llama-3.1-70b", "h100-sxm", 2, 5000, 500, 898),
    ("llama-3.1-405b", "h200", 8, 128, 2048, 5_348),
    ("llama-3.1-405b", "h200", 8, 1000, 1000, 3_330),
    ("llama-3.1-405b", "h200", 8, 2048, 128, 456),
    ("llama-3.1-405b", "h200", 8, 2048, 2048, 2_948),
    ("llama-3.1-405b", "h100-sxm", 8, 128, 2048, 4_340),
    ("llama-3.1-405b", "h100-sxm", 8, 1000, 1000, 2_919),
    ("llama-3.1-405b", "h100-sxm", 8, 2048, 128, 453),
    ("llama-3.1-405b", "h100-sxm", 8, 2048, 2048, 2_296),
]


def kvplan_throughput(model: str, gpu: str, tp: int, isl: int, osl: int) -> float:
    from kvplan.capacity import setup
    from kvplan.catalog import resolve_model
    from kvplan.engines import Settings
    from kvplan.hardware import resolve_gpu
    from kvplan.serving import Lengths, max_rate

    s = setup(
        resolve_model(model),
        resolve_gpu(gpu),
        engine="trtllm",
        tp=tp,
        weights_dtype="fp8",
        kv_dtype_name="fp8",
        settings=Settings(free_gpu_memory_fraction=0.95),
    )
    return max_rate(s, input_len=Lengths.of(isl), output_len=Lengths.of(osl)) * osl


def rows() -> list[dict]:
    out = []
    for model, gpu, tp, isl, osl, published in PUBLISHED:
        ours = kvplan_throughput(model, gpu, tp, isl, osl)
        out.append(dict(model=model, gpu=gpu, tp=tp, isl=isl, osl=osl, published=published, kvplan=ours,
                        ratio=ours / published))  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    table = rows()
    if args.markdown:
        print("| model | GPU | TP | ISL/OSL | published tok/s | kvplan tok/s | kvplan / published |")
        print("|---|---|---|---|---|---|---|")
    for r in table:
        if args.markdown:
            print(f"| {r['model']} | {r['gpu']} | {r['tp']} | {r['isl']}/{r['osl']} | {r['published']:,} | "
                  f"{r['kvplan']:,.0f} | {r['ratio']:.2f} |")  # fmt: skip
        else:
            print(f"{r['model']:15} {r['gpu']:9} tp{r['tp']} {r['isl']:>5}/{r['osl']:<5} "
                  f"published {r['published']:>7,} kvplan {r['kvplan']:>9,.0f}  x{r['ratio']:.2f}")  # fmt: skip
    errs = [abs(math.log(r["ratio"])) for r in table]
    within = sum(abs(r["ratio"] - 1) <= 0.2 for r in table)
    print(f"\n{len(table)} published points ({SOURCE})")
    print(f"median |ln ratio| {statistics.median(errs):.3f}, worst {max(errs):.3f}; within 20%: {within}/{len(table)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

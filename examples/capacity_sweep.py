"""Capacity sweep with the kvplan library: how many concurrent requests fit, per GPU and context.

    python examples/capacity_sweep.py [MODEL]

Everything the CLI prints is a library call away; this script asks `kvplan.capacity` for vLLM's
own answer (its block pool, and its "Maximum concurrency" figure) on several GPUs and lengths.
"""

from __future__ import annotations

import sys

from tabulate import tabulate

import kvplan
from kvplan.capacity import capacity, setup

GPUS = ["l40s", "a100-80gb", "h100-sxm", "h200"]
CONTEXTS = [4096, 32768, 131072]


def sweep(model: str) -> list[list[object]]:
    spec = kvplan.load_bundled(model)
    memo: dict = {}  # shares the per-layer arithmetic between GPUs
    rows = []
    for gpu_name in GPUS:
        gpu = kvplan.resolve_gpu(gpu_name)
        s = setup(spec, gpu, engine="vllm", memo=memo)
        for context in CONTEXTS:
            answer = capacity(s, context, suggest=False)
            rows.append(
                [
                    gpu_name,
                    f"{context:,}",
                    f"{answer.kv_pool_bytes / 2**30:.1f}",
                    f"{answer.kv_pool_tokens:,}",
                    answer.max_concurrent_sequences,
                    f"{answer.engine_reported_concurrency:.2f}x",
                    f"{answer.max_context:,}",
                ]
            )
    return rows


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "llama-3.1-8b"
    headers = ["GPU", "context", "KV pool (GiB)", "pool tokens", "max seqs", "vLLM concurrency", "max context"]
    print(f"{model} on vLLM (defaults: gpu_memory_utilization 0.9, bf16 KV)")
    print(tabulate(sweep(model), headers=headers, disable_numparse=True))


if __name__ == "__main__":
    main()

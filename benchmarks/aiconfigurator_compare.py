"""kvplan's latency model against aiconfigurator, NVIDIA's planner, on a fixed grid of cases.

aiconfigurator (PyPI ``aiconfigurator``, 0.12.0) predicts per-operation latencies from kernel
timings collected on H100/H200/B200 for vLLM, SGLang and TensorRT-LLM. It is never a kvplan
dependency: it lives in a separate virtual environment (its pins clash with nothing here, but it
pulls pandas, pyarrow, scipy and a compiled core) and only this script calls it.

Two steps:

1. ``--collect`` (needs aiconfigurator; does not import kvplan): runs every case of ``GRID``
   through ``aiconfigurator.cli.api.cli_estimate`` in ``static_ctx`` mode (prefill of the batch:
   TTFT) and ``static_gen`` mode with ``osl = 2`` (one decode step at context ``isl``: TPOT), and
   writes the figures and the per-operation breakdown to ``benchmarks/data/aiconfigurator_grid.json``.
   Where aiconfigurator is not installed it says so and exits 0::

       python -m venv /work/aic-venv && /work/aic-venv/bin/pip install aiconfigurator==0.12.0
       /work/aic-venv/bin/python benchmarks/aiconfigurator_compare.py --collect

2. default (needs kvplan only): reads the committed data file, runs kvplan's ``cost`` on every
   case and prints the table and the median and worst ``|ln(kvplan / aiconfigurator)|`` per phase.
   ``--markdown`` prints the table for docs/cost.md; ``--json`` the rows.

``--classes MODEL``: every stored case of MODEL (grid, hold-out, FP4 and Mixtral cases), each phase's step by
operation class, aiconfigurator's operations summed into kvplan's classes as ``fit_latency.py`` compares them
(:func:`class_rows`).

``--collect-mixtral`` / ``--mixtral``: the Mixtral cases (:data:`MIXTRAL`, key ``mixtral_cases``, never fitted), which
aiconfigurator runs from the config it bundles (:func:`_aic_model_path`).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aic_tables import capture_static_breakdown, estimate_function  # noqa: E402 - shared with the other compare scripts

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_grid.json"

# kvplan model name -> (Hugging Face id whose config aiconfigurator bundles, family). The dtypes kvplan is given
# follow aiconfigurator's defaults for the checkpoint (recorded per case as aic_quant): DeepSeek-V3 fp8 block-scaled
# weights and fp8 KV, gpt-oss MXFP4 experts, the rest bf16. Mixtral is not in the grid (its cases are MIXTRAL, below):
# aiconfigurator 0.12.0 bundles its config (model_configs/mistralai--Mixtral-8x7B-v0.1_config.json) but loads a bundled
# config only for the ids in its DefaultHFModels, and asks the Hub for any other; a local directory holding config.json
# is read first (aiconfigurator_core/sdk/utils.py _load_model_config_from_model_path), so :func:`_aic_model_path` hands
# it one with the bundled file.
MODELS = {
    "llama-3.1-8b": ("meta-llama/Meta-Llama-3.1-8B", "dense"),
    "llama-3.1-70b": ("meta-llama/Meta-Llama-3.1-70B", "dense"),
    "llama-3.1-405b": ("meta-llama/Meta-Llama-3.1-405B", "dense"),
    "qwen3-32b": ("Qwen/Qwen3-32B", "dense"),
    "qwen3-8b": ("Qwen/Qwen3-8B", "dense"),
    "gpt-oss-20b": ("openai/gpt-oss-20b", "moe"),
    "qwen3-30b-a3b": ("Qwen/Qwen3-30B-A3B", "moe"),
    "qwen3-235b-a22b": ("Qwen/Qwen3-235B-A22B", "moe"),
    "gpt-oss-120b": ("openai/gpt-oss-120b", "moe"),
    "deepseek-v3": ("deepseek-ai/DeepSeek-V3", "mla"),
    "mixtral-8x7b": ("mistralai/Mixtral-8x7B-v0.1", "moe"),
    "mixtral-8x22b": ("mistralai/Mixtral-8x22B-v0.1", "moe"),
}
SYSTEMS = {"h100-sxm": "h100_sxm", "h200": "h200_sxm", "b200": "b200_sxm", "gb200": "gb200"}


def _grid() -> list[dict]:
    """The cases: (model, gpu, engine, tp, batch, isl). Spread over the axes the issue names."""
    rows = [
        # dense, TP1, batch and length sweep
        ("llama-3.1-8b", "h100-sxm", "vllm", 1, 1, 1024),
        ("llama-3.1-8b", "h100-sxm", "vllm", 1, 1, 8192),
        ("llama-3.1-8b", "h100-sxm", "vllm", 1, 32, 4096),
        ("llama-3.1-8b", "h100-sxm", "trtllm", 1, 256, 1024),
        ("llama-3.1-8b", "h200", "vllm", 1, 1, 32768),
        ("llama-3.1-8b", "h200", "trtllm", 1, 8, 2048),
        ("llama-3.1-8b", "h200", "vllm", 1, 64, 2048),
        ("llama-3.1-8b", "b200", "vllm", 1, 1, 4096),
        ("llama-3.1-8b", "b200", "trtllm", 1, 128, 1024),
        ("llama-3.1-8b", "b200", "vllm", 1, 16, 16384),
        ("qwen3-8b", "h200", "vllm", 1, 4, 4096),
        ("qwen3-8b", "h100-sxm", "trtllm", 1, 64, 1024),
        ("qwen3-8b", "b200", "trtllm", 2, 32, 8192),
        ("llama-3.1-8b", "h100-sxm", "vllm", 2, 1, 2048),
        ("llama-3.1-8b", "h200", "trtllm", 4, 16, 4096),
        # dense, TP 2-8
        ("qwen3-32b", "h100-sxm", "vllm", 2, 1, 4096),
        ("qwen3-32b", "h100-sxm", "trtllm", 2, 32, 2048),
        ("qwen3-32b", "h200", "vllm", 1, 8, 8192),
        ("qwen3-32b", "h200", "trtllm", 4, 64, 1024),
        ("qwen3-32b", "b200", "vllm", 2, 128, 2048),
        ("qwen3-32b", "b200", "trtllm", 8, 1, 32768),
        ("qwen3-32b", "h100-sxm", "vllm", 8, 256, 1024),
        ("llama-3.1-70b", "h100-sxm", "vllm", 4, 1, 1024),
        ("llama-3.1-70b", "h100-sxm", "trtllm", 8, 1, 4096),
        ("llama-3.1-70b", "h100-sxm", "vllm", 8, 64, 2048),
        ("llama-3.1-70b", "h200", "vllm", 2, 16, 4096),
        ("llama-3.1-70b", "h200", "trtllm", 4, 128, 1024),
        ("llama-3.1-70b", "h200", "vllm", 8, 1, 16384),
        ("llama-3.1-70b", "h200", "trtllm", 8, 256, 2048),
        ("llama-3.1-70b", "b200", "vllm", 1, 8, 2048),
        ("llama-3.1-70b", "b200", "trtllm", 2, 64, 4096),
        ("llama-3.1-70b", "b200", "vllm", 4, 4, 32768),
        ("llama-3.1-70b", "b200", "trtllm", 8, 32, 8192),
        ("llama-3.1-405b", "h200", "vllm", 8, 1, 2048),
        ("llama-3.1-405b", "h200", "trtllm", 8, 32, 4096),
        ("llama-3.1-405b", "b200", "trtllm", 8, 64, 1024),
        ("llama-3.1-405b", "b200", "vllm", 8, 8, 8192),
        # MoE
        ("gpt-oss-20b", "h100-sxm", "vllm", 1, 1, 1024),
        ("gpt-oss-20b", "h200", "vllm", 1, 64, 2048),
        ("gpt-oss-20b", "b200", "vllm", 2, 16, 8192),
        ("qwen3-30b-a3b", "h100-sxm", "vllm", 4, 256, 1024),
        ("qwen3-30b-a3b", "b200", "trtllm", 8, 4, 16384),
        ("qwen3-235b-a22b", "h200", "trtllm", 4, 16, 2048),
        ("qwen3-235b-a22b", "b200", "vllm", 8, 1, 32768),
        ("qwen3-30b-a3b", "h100-sxm", "vllm", 1, 1, 2048),
        ("qwen3-30b-a3b", "h100-sxm", "trtllm", 2, 32, 4096),
        ("qwen3-30b-a3b", "h200", "vllm", 1, 128, 1024),
        ("qwen3-30b-a3b", "h200", "trtllm", 4, 8, 8192),
        ("qwen3-30b-a3b", "b200", "vllm", 2, 64, 2048),
        ("qwen3-30b-a3b", "b200", "trtllm", 1, 1, 32768),
        ("qwen3-30b-a3b", "h200", "vllm", 8, 256, 1024),
        ("qwen3-235b-a22b", "h200", "vllm", 8, 1, 2048),
        ("qwen3-235b-a22b", "h200", "trtllm", 8, 64, 4096),
        ("qwen3-235b-a22b", "b200", "vllm", 4, 32, 1024),
        ("qwen3-235b-a22b", "b200", "trtllm", 8, 128, 2048),
        ("qwen3-235b-a22b", "h100-sxm", "vllm", 8, 8, 8192),
        ("gpt-oss-120b", "h200", "vllm", 1, 1, 2048),
        ("gpt-oss-120b", "h200", "vllm", 4, 1, 1024),
        ("gpt-oss-120b", "b200", "vllm", 2, 64, 4096),
        ("gpt-oss-120b", "h100-sxm", "vllm", 4, 32, 2048),
        # MLA (+ MoE)
        ("deepseek-v3", "h200", "vllm", 8, 1, 1024),
        ("deepseek-v3", "h200", "trtllm", 8, 1, 4096),
        ("deepseek-v3", "h200", "vllm", 8, 32, 2048),
        ("deepseek-v3", "h200", "trtllm", 8, 128, 1024),
        ("deepseek-v3", "b200", "vllm", 8, 1, 8192),
        ("deepseek-v3", "b200", "trtllm", 8, 64, 2048),
        ("deepseek-v3", "b200", "trtllm", 8, 256, 1024),
        ("deepseek-v3", "b200", "vllm", 8, 8, 32768),
    ]
    cases = [dict(model=m, gpu=g, engine=e, tp=tp, batch=b, isl=isl) for m, g, e, tp, b, isl in rows]
    # fp8 per-tensor weights and fp8 KV (ModelOpt-style checkpoints): separate GEMM kernels from DeepSeek's
    # block-scaled ones
    fp8 = [
        ("llama-3.1-8b", "h100-sxm", "trtllm", 1, 1, 2048),
        ("llama-3.1-8b", "h200", "trtllm", 1, 64, 1024),
        ("llama-3.1-8b", "h200", "vllm", 1, 256, 2048),
        ("llama-3.1-8b", "b200", "trtllm", 1, 16, 8192),
        ("llama-3.1-70b", "h200", "trtllm", 1, 32, 2048),
        ("llama-3.1-70b", "h100-sxm", "trtllm", 2, 128, 1024),
        ("llama-3.1-70b", "h100-sxm", "vllm", 2, 8, 4096),
        ("llama-3.1-70b", "b200", "vllm", 1, 1, 16384),
        ("llama-3.1-405b", "h200", "trtllm", 8, 64, 2048),
        ("llama-3.1-405b", "h100-sxm", "trtllm", 8, 16, 1024),
        ("qwen3-32b", "h200", "vllm", 1, 32, 4096),
        ("qwen3-32b", "b200", "trtllm", 2, 128, 2048),
    ]
    cases += [dict(model=m, gpu=g, engine=e, tp=tp, batch=b, isl=isl, quant="fp8") for m, g, e, tp, b, isl in fp8]
    # expert parallel (moe_ep_size = tp, moe_tp_size = 1; attention stays TP)
    ep = [
        ("qwen3-30b-a3b", "h200", "vllm", 4, 1, 2048),
        ("qwen3-30b-a3b", "h100-sxm", "trtllm", 2, 64, 4096),
        ("qwen3-235b-a22b", "h200", "vllm", 8, 32, 2048),
        ("qwen3-235b-a22b", "b200", "trtllm", 8, 1, 8192),
        ("qwen3-235b-a22b", "h100-sxm", "vllm", 8, 128, 1024),
        ("gpt-oss-120b", "h200", "vllm", 4, 16, 4096),
        ("deepseek-v3", "h200", "trtllm", 8, 16, 4096),
        ("deepseek-v3", "b200", "vllm", 8, 64, 2048),
    ]
    cases += [dict(model=m, gpu=g, engine=e, tp=tp, batch=b, isl=isl, ep=True) for m, g, e, tp, b, isl in ep]
    return cases


GRID = _grid()

# Hold-out cases: collected after the refit of issue 14's validation and never fitted (fit_latency.py reads
# "cases" only), to see the constants out of sample. Same axes; shapes the grid does not have.
HOLDOUT = [
    dict(model=m, gpu=g, engine=e, tp=tp, batch=b, isl=isl, **extra)
    for m, g, e, tp, b, isl, extra in [
        ("llama-3.1-70b", "b200", "vllm", 2, 16, 4096, {}),
        ("qwen3-32b", "b200", "vllm", 4, 32, 2048, {}),
        ("llama-3.1-8b", "h100-sxm", "trtllm", 1, 128, 2048, {}),
        ("qwen3-8b", "h200", "trtllm", 1, 16, 16384, {}),
        ("qwen3-235b-a22b", "h200", "vllm", 4, 64, 2048, {"ep": True}),
        ("qwen3-30b-a3b", "b200", "vllm", 2, 16, 4096, {"ep": True}),
        ("qwen3-30b-a3b", "h100-sxm", "vllm", 2, 64, 1024, {}),
        ("gpt-oss-120b", "b200", "vllm", 1, 8, 2048, {}),
        ("deepseek-v3", "h200", "vllm", 8, 8, 8192, {}),
        ("deepseek-v3", "b200", "trtllm", 8, 16, 4096, {}),
        ("llama-3.1-70b", "h200", "vllm", 4, 64, 1024, {"quant": "fp8"}),
    ]
]

# FP4 fit cases (key "fp4_cases"): what benchmarks/fit_fp4.py fits kvplan's three FP4 constants to (whole steps,
# as fit_latency.py fits the rest to "cases"), B200 only, both engines, NVFP4 weights (dense GEMMs and MoE experts)
# with fp8 KV, every other constant held.
FP4_FIT = [
    dict(model=m, gpu="b200", engine=e, tp=tp, batch=b, isl=isl, quant="nvfp4")
    for e in ("trtllm", "vllm")
    for m, tp, b, isl in [
        ("llama-3.1-8b", 1, 1, 1024),
        ("llama-3.1-8b", 1, 64, 4096),
        ("llama-3.1-70b", 1, 16, 2048),
        ("llama-3.1-70b", 1, 256, 1024),
        ("llama-3.1-70b", 2, 8, 8192),
        ("qwen3-32b", 1, 32, 2048),
        ("qwen3-30b-a3b", 1, 1, 1024),
        ("qwen3-30b-a3b", 1, 32, 4096),
        ("qwen3-30b-a3b", 1, 256, 2048),
        ("qwen3-235b-a22b", 4, 16, 2048),
        ("qwen3-235b-a22b", 8, 128, 1024),
    ]
]

# FP4 hold-out (key "fp4_holdout_cases"; never fitted): NVFP4 weights, FP4 GEMMs and MoE, fp8 KV (ModelOpt FP4
# checkpoints, as TensorRT-LLM's perf-overview runs them), TensorRT-LLM on B200 and GB200 (GB200 priced with the
# B200 calibration). kvplan's FP4 constants come from benchmarks/fit_fp4.py (GEMM table only).
FP4_HOLDOUT = [
    dict(model=m, gpu=g, engine="trtllm", tp=tp, batch=b, isl=isl, quant="nvfp4")
    for m, g, tp, b, isl in [
        ("llama-3.1-70b", "b200", 1, 1, 2048),
        ("llama-3.1-70b", "b200", 1, 64, 2048),
        ("llama-3.1-70b", "gb200", 1, 64, 4096),
        ("llama-3.1-405b", "b200", 4, 32, 2048),
        ("llama-3.1-8b", "b200", 1, 128, 1024),
        ("qwen3-30b-a3b", "b200", 1, 8, 2048),
        ("qwen3-30b-a3b", "b200", 1, 128, 1024),
        ("qwen3-30b-a3b", "gb200", 1, 64, 2048),
    ]
]

# Mixtral cases (key "mixtral_cases"; never fitted, kept out of the grid's figures): the model of the MLPerf Mixtral
# runs and the v0.17 / v1.0 engine tables, both engines, per-tensor fp8 weights with fp8 KV (ModelOpt checkpoints, as
# those runs use; the experts fp8 too) and bf16, H100 / H200 / B200, TP 1-8 with the experts sliced, as the grid's.
# vLLM's cases are 16-bit: its per-tensor fp8 MoE table on Hopper times FlashInfer's CUTLASS MoE untuned (docs/cost.md,
# moe_compare.py's UNTUNED points; Mixtral 8x7B H200 TP 1 fp8 batch 64 at 2,048 tokens read 10.35 s / 85.6 ms there).
MIXTRAL = [
    dict(model=m, gpu=g, engine=e, tp=tp, batch=b, isl=isl, **({"quant": q} if q else {}))
    for m, g, e, tp, b, isl, q in [
        ("mixtral-8x7b", "h200", "trtllm", 1, 1, 1024, "fp8"),
        ("mixtral-8x7b", "h200", "trtllm", 1, 16, 2048, "fp8"),
        ("mixtral-8x7b", "h200", "trtllm", 1, 64, 1024, "fp8"),
        ("mixtral-8x7b", "h200", "trtllm", 1, 256, 512, "fp8"),
        ("mixtral-8x7b", "h100-sxm", "trtllm", 1, 32, 1024, "fp8"),
        ("mixtral-8x7b", "h100-sxm", "trtllm", 2, 128, 2048, "fp8"),
        ("mixtral-8x7b", "h200", "trtllm", 4, 8, 8192, "fp8"),
        ("mixtral-8x7b", "h200", "trtllm", 8, 256, 1024, "fp8"),
        ("mixtral-8x7b", "h200", "trtllm", 2, 16, 4096, None),
        ("mixtral-8x7b", "h100-sxm", "trtllm", 4, 64, 1024, None),
        ("mixtral-8x7b", "b200", "trtllm", 1, 32, 2048, None),
        ("mixtral-8x7b", "b200", "trtllm", 2, 128, 1024, None),
        ("mixtral-8x7b", "h200", "vllm", 1, 64, 2048, None),
        ("mixtral-8x7b", "h100-sxm", "vllm", 2, 16, 4096, None),
        ("mixtral-8x7b", "b200", "vllm", 1, 8, 16384, None),
        ("mixtral-8x7b", "h200", "vllm", 8, 1, 32768, None),
        ("mixtral-8x22b", "h200", "trtllm", 8, 64, 2048, "fp8"),
        ("mixtral-8x22b", "h100-sxm", "trtllm", 8, 16, 1024, "fp8"),
    ]
]

# In-flight batching (aiconfigurator's "agg" mode: a closed loop of `batch` concurrent requests, prefill chunks of
# up to `ctx_tokens` tokens per step): (model, gpu, engine, tp, concurrency, isl, osl, ctx_tokens)
AGG = [
    ("llama-3.1-8b", "h200", "vllm", 1, 32, 2048, 512, 8192),
    ("llama-3.1-8b", "h100-sxm", "trtllm", 1, 64, 1024, 256, 8192),
    ("llama-3.1-8b", "b200", "vllm", 1, 128, 4096, 1024, 8192),
    ("qwen3-32b", "h200", "trtllm", 2, 16, 2048, 512, 4096),
    ("llama-3.1-70b", "h100-sxm", "vllm", 4, 32, 2048, 512, 8192),
    ("llama-3.1-70b", "h200", "trtllm", 8, 128, 1024, 1024, 8192),
    ("qwen3-30b-a3b", "h200", "vllm", 2, 64, 2048, 512, 8192),
    ("qwen3-235b-a22b", "h200", "trtllm", 8, 32, 4096, 512, 8192),
]


def _agg_key(c: dict) -> str:
    return f"{c['model']}|{c['gpu']}|{c['engine']}|tp{c['tp']}|c{c['batch']}|{c['isl']}/{c['osl']}|ctx{c['ctx_tokens']}"


def collect_agg(out: Path) -> int:
    """aiconfigurator's in-flight batching figures for AGG, stored beside the static cases."""
    cli_estimate = estimate_function()
    if cli_estimate is None:
        return 0
    data = json.loads(out.read_text())
    rows = []
    for m, g, e, tp, b, isl, osl, ctx in AGG:
        case = dict(model=m, gpu=g, engine=e, tp=tp, batch=b, isl=isl, osl=osl, ctx_tokens=ctx)
        kw = dict(backend_name=e, batch_size=b, tp_size=tp, isl=isl, osl=osl, ctx_tokens=ctx)
        if MODELS[m][1] in ("moe", "mla"):
            kw.update(moe_tp_size=tp, moe_ep_size=1)
        try:
            r = cli_estimate(MODELS[m][0], SYSTEMS[g], mode="agg", **kw)
            rows.append({**case, "aic_ttft_ms": float(r.ttft), "aic_tpot_ms": float(r.tpot),
                         "aic_seq_per_s": float(r.seq_per_second), "aic_concurrency": float(r.concurrency),
                         "aic_backend_version": r.backend_version})  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - recorded, not fatal
            rows.append({**case, "aic_error": f"{type(exc).__name__}: {exc}"[:300]})
        print(f"agg {len(rows)}/{len(AGG)} {_agg_key(case)}", file=sys.stderr, flush=True)
    data["agg_cases"] = rows
    out.write_text(json.dumps(data, indent=1) + "\n")
    return 0


def compare_agg(cases: list[dict]) -> list[dict]:
    """kvplan.serving at aiconfigurator's request rate: steady batch, TPOT and TTFT side by side."""
    from kvplan.capacity import setup
    from kvplan.catalog import resolve_model
    from kvplan.hardware import resolve_gpu
    from kvplan.serving import Lengths, serve

    rows = []
    for c in cases:
        if "aic_error" in c:
            continue
        s = setup(resolve_model(c["model"]), resolve_gpu(c["gpu"]), engine=c["engine"], tp=c["tp"])
        r = serve(s, rate_rps=c["aic_seq_per_s"], input_len=Lengths.of(c["isl"]), output_len=Lengths.of(c["osl"]),
                  max_num_batched_tokens=c["ctx_tokens"])  # fmt: skip
        rows.append({**{k: c[k] for k in ("model", "gpu", "engine", "tp", "isl", "osl", "ctx_tokens")},
                     "rate": c["aic_seq_per_s"], "kvplan_max_rate": r.max_rate_rps,
                     "aic_batch": c["aic_concurrency"], "kvplan_batch": r.batch,
                     "saturated": r.saturated, "aic_tpot_ms": c["aic_tpot_ms"], "kvplan_tpot_ms": r.tpot_mean_s * 1e3,
                     "aic_ttft_ms": c["aic_ttft_ms"], "kvplan_ttft_ms": r.ttft_mean_s * 1e3})  # fmt: skip
    return rows


def case_key(case: dict) -> str:
    key = f"{case['model']}|{case['gpu']}|{case['engine']}|tp{case['tp']}|b{case['batch']}|isl{case['isl']}"
    return key + (f"|{case['quant']}" if case.get("quant") else "") + ("|ep" if case.get("ep") else "")


# ---- collection (aiconfigurator side) ------------------------------------------------------------------------


def _aic_model_path(hf: str) -> str:
    """What to hand aiconfigurator for Hugging Face id ``hf``: the id itself where aiconfigurator loads its bundled
    config (``DefaultHFModels``), else a directory holding the bundled ``config.json`` (and ``hf_quant_config.json``
    where bundled), which it reads before asking the Hub (:data:`MODELS`); the id where it bundles none."""
    import shutil
    import tempfile

    from aiconfigurator_core.sdk import common, utils

    if hf in common.DefaultHFModels:
        return hf
    bundled = Path(str(utils._get_model_config_path()))
    stem = hf.replace("/", "--")
    if not (bundled / f"{stem}_config.json").exists():
        return hf
    where = Path(tempfile.gettempdir()) / "kvplan-aic-configs" / stem
    where.mkdir(parents=True, exist_ok=True)
    for suffix, name in (("_config.json", "config.json"), ("_hf_quant_config.json", "hf_quant_config.json")):
        if (bundled / f"{stem}{suffix}").exists():
            shutil.copyfile(bundled / f"{stem}{suffix}", where / name)
    return str(where)


def _aic_case(cli_estimate, seen: dict, case: dict) -> dict:
    hf, family = MODELS[case["model"]]
    kw = dict(backend_name=case["engine"], batch_size=case["batch"], tp_size=case["tp"])
    if family in ("moe", "mla") and case.get("ep"):
        kw.update(moe_tp_size=1, moe_ep_size=case["tp"])
    elif family in ("moe", "mla"):
        kw.update(moe_tp_size=case["tp"], moe_ep_size=1)  # experts split like the rest (vLLM's default, no EP)
    if case.get("quant") == "fp8":
        kw.update(gemm_quant_mode="fp8", kvcache_quant_mode="fp8")
        if family == "moe":
            kw.update(moe_quant_mode="fp8")
    if case.get("quant") == "nvfp4":
        kw.update(gemm_quant_mode="nvfp4", kvcache_quant_mode="fp8")
        if family == "moe":
            kw.update(moe_quant_mode="nvfp4")
    system = SYSTEMS[case["gpu"]]
    hf = _aic_model_path(hf)
    ctx = cli_estimate(hf, system, mode="static_ctx", isl=case["isl"], osl=2, **kw)
    ctx_ops = dict(seen.get("context", {}))
    gen = cli_estimate(hf, system, mode="static_gen", isl=case["isl"], osl=2, **kw)
    gen_ops = dict(seen.get("generation", {}))
    raw = gen.raw
    return {
        **case,
        "aic_ttft_ms": ctx.ttft,
        "aic_tpot_ms": gen.tpot,
        "aic_backend_version": gen.backend_version,
        "aic_quant": {k: str(raw.get(k)) for k in ("gemm", "kvcache", "fmha", "moe", "comm")},
        "aic_context_ops_ms": ctx_ops,
        "aic_generation_ops_ms": gen_ops,
    }


def collect(out: Path, *, grid: list[dict] | None = None, key: str = "cases") -> int:
    """Run ``grid`` (default GRID) through aiconfigurator into ``key`` of the data file; other keys are kept."""
    found = capture_static_breakdown()
    if found is None:
        return 0
    import aiconfigurator

    cli_estimate, seen = found
    grid = GRID if grid is None else grid
    data = json.loads(out.read_text()) if out.exists() else {}
    done = data.get(key, [])
    have = {case_key(c) for c in done}
    t0 = time.time()
    for case in grid:
        if case_key(case) in have:
            continue
        try:
            done.append(_aic_case(cli_estimate, seen, case))
        except Exception as exc:  # noqa: BLE001 - a case aiconfigurator rejects is recorded, not fatal
            done.append({**case, "aic_error": f"{type(exc).__name__}: {exc}"[:300]})
        print(f"{len(done)}/{len(grid)} {case_key(case)} {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
        _write(out, data, done, grid, key, aiconfigurator)
    _write(out, data, done, grid, key, aiconfigurator)
    return 0


def _write(out: Path, data: dict, cases: list[dict], grid: list[dict], key: str, module) -> None:  # noqa: ANN001
    order = {case_key(c): i for i, c in enumerate(grid)}
    cases = sorted((c for c in cases if case_key(c) in order), key=lambda c: order[case_key(c)])
    data["meta"] = data.get("meta") or {
        "tool": "aiconfigurator",
        "version": getattr(module, "__version__", "0.12.0"),
        "database_mode": "SILICON",
        "modes": "static_ctx (TTFT of the batch's prefill) and static_gen with osl=2 (one decode step at context isl)",
        "moe_parallel": "moe_tp_size = tp, moe_ep_size = 1",
    }
    data[key] = cases
    out.write_text(json.dumps(data, indent=1) + "\n")


# ---- the flagged decode figures, re-priced (aiconfigurator side) ----------------------------------------------

# The GEMM the evidence quotes: DeepSeek-V3's shared-expert gate/up projection on one rank at TP8 (2 x 2048 / 8
# outputs, hidden 7168), one of the block-fp8 GEMMs aiconfigurator prices its vLLM B200 decode step with.
PROBE_NK = (512, 7168)
PROBE_M = (1, 2, 4, 8, 16, 32, 64)
# aiconfigurator 0.12.0's B200 GEMM tables: (framework dir, version, gemm_dtype). vLLM 0.24.0 and SGLang 0.5.14
# both run block-fp8 linears with DeepGEMM's fp8_gemm_nt on SM100 (kernel_source DeepGemmFp8BlockScaledMMKernel
# and sglang_deepgemm_gemm_nt_f8f8bf16), TensorRT-LLM 1.3.0rc20 with DeepGEMM too (kernel_source deepgemm).
GEMM_TABLES = {
    "vllm 0.24.0 fp8_block": ("vllm", "0.24.0", "fp8_block"),
    "sglang 0.5.14 fp8_block": ("sglang", "0.5.14", "fp8_block"),
    "trtllm 1.3.0rc20 fp8_block": ("trtllm", "1.3.0rc20", "fp8_block"),
    "vllm 0.24.0 bfloat16": ("vllm", "0.24.0", "bfloat16"),
}


def _systems_root() -> Path:
    from importlib.resources import files

    return Path(str(files("aiconfigurator_core") / "systems"))


def _gemm_table(root: Path, framework: str, version: str, dtype: str) -> tuple[dict, str]:
    """{m: latency ms} of one table at ``PROBE_NK`` for ``PROBE_M``, and the kernel it names."""
    import pandas as pd

    df = pd.read_parquet(root / "data" / "b200_sxm" / "gemm" / framework / version / "gemm_perf.parquet")
    n, k = PROBE_NK
    sel = df[(df.gemm_dtype == dtype) & (df.n == n) & (df.k == k) & df.m.isin(PROBE_M)].sort_values("m")
    return {int(r.m): round(float(r.latency), 4) for r in sel.itertuples()}, "/".join(sorted(set(sel.kernel_source)))


def _vllm_with_sglang_deepgemm(root: Path, tmp: Path) -> Path:
    """A copy of aiconfigurator's systems directory whose vLLM 0.24.0 B200 block-fp8 GEMM rows are its SGLang 0.5.14
    DeepGEMM rows (the same fp8_gemm_nt kernel on the same GPU); everything else untouched."""
    import shutil

    import pandas as pd

    copy = tmp / "systems"
    shutil.copytree(root, copy)
    base = copy / "data" / "b200_sxm" / "gemm"
    vllm = pd.read_parquet(base / "vllm" / "0.24.0" / "gemm_perf.parquet")
    sgl = pd.read_parquet(base / "sglang" / "0.5.14" / "gemm_perf.parquet")
    rows = sgl[sgl.gemm_dtype == "fp8_block"].copy()
    rows["framework"], rows["version"] = vllm.framework.iloc[0], vllm.version.iloc[0]
    rows["kernel_source"] = "DeepGemmFp8BlockScaledMMKernel"
    kept = vllm[vllm.gemm_dtype != "fp8_block"]
    pd.concat([kept, rows[vllm.columns]], ignore_index=True).to_parquet(base / "vllm" / "0.24.0" / "gemm_perf.parquet")
    return copy


def _gen_tpot(cli_estimate, case: dict, engine: str) -> float:  # noqa: ANN001
    hf, _ = MODELS[case["model"]]
    kw = dict(backend_name=engine, batch_size=case["batch"], tp_size=case["tp"])
    kw.update(dict(moe_tp_size=1, moe_ep_size=case["tp"]) if case.get("ep") else dict(moe_tp_size=case["tp"],
                                                                                       moe_ep_size=1))  # fmt: skip
    return float(cli_estimate(hf, SYSTEMS[case["gpu"]], mode="static_gen", isl=case["isl"], osl=2, **kw).tpot)


def collect_crosscheck(out: Path) -> int:
    """For every decode figure :func:`reference_artifact` flags, aiconfigurator's own figures for the same case:
    on SGLang and TensorRT-LLM (whose block-fp8 linears run the same DeepGEMM kernel), and on vLLM with its vLLM
    block-fp8 GEMM table replaced by its SGLang DeepGEMM rows; plus the four tables at ``PROBE_NK``. Stored under
    ``artifact_crosscheck`` of the data file (other keys kept)."""
    cli_estimate = estimate_function()
    if cli_estimate is None:
        return 0
    import tempfile

    from aiconfigurator_core.sdk.perf_database import set_systems_paths

    data = json.loads(out.read_text())
    flagged = [c for c in data["cases"] if "aic_error" not in c and reference_artifact(c, "decode")]
    root = _systems_root()
    tables = {}
    for label, (fw, ver, dtype) in GEMM_TABLES.items():
        ms, kernel = _gemm_table(root, fw, ver, dtype)
        tables[label] = {"kernel_source": kernel, "latency_ms_by_m": ms}
    rows = []
    for c in flagged:
        rows.append({"key": case_key(c), "aic_tpot_ms_vllm": c["aic_tpot_ms"],
                     "aic_tpot_ms_sglang": _gen_tpot(cli_estimate, c, "sglang"),
                     "aic_tpot_ms_trtllm": _gen_tpot(cli_estimate, c, "trtllm")})  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        set_systems_paths(str(_vllm_with_sglang_deepgemm(root, Path(tmp))))
        for row, c in zip(rows, flagged, strict=True):
            row["aic_tpot_ms_vllm_deepgemm"] = _gen_tpot(cli_estimate, c, "vllm")
        set_systems_paths(None)
    data["artifact_crosscheck"] = {
        "method": "aiconfigurator 0.12.0 static_gen (osl 2) for each flagged case: on vLLM 0.24.0 as collected; on "
        "vLLM with the B200 vLLM 0.24.0 fp8_block GEMM rows replaced by the SGLang 0.5.14 DeepGEMM fp8_block rows "
        "(vllm_deepgemm); on SGLang 0.5.14 and TensorRT-LLM 1.3.0rc20 (same split, batch, ISL)",
        "gemm_probe_n_k": list(PROBE_NK),
        "gemm_tables_b200": tables,
        "cases": rows,
    }
    out.write_text(json.dumps(data, indent=1) + "\n")
    return 0


# ---- comparison (kvplan side) --------------------------------------------------------------------------------


MODEL = "calibrated"  # --model roofline: the whole-step roofline (kvplan's model before the calibrated one)


def kvplan_case(case: dict) -> tuple[float, float]:
    """kvplan's (TTFT, TPOT) in ms for one case, with the engine and dtypes aiconfigurator used."""
    from kvplan.catalog import resolve_model
    from kvplan.cost import cost
    from kvplan.hardware import resolve_gpu

    spec = resolve_model(case["model"])
    gpu = resolve_gpu(case["gpu"])
    quant = case.get("aic_quant", {})
    weights = _weights(quant, spec.dtype)
    kv = _kvplan_dtype(quant.get("kvcache"), spec.dtype)
    extra = _engine_kwargs(case)
    row = cost(
        spec, gpu, [case["isl"]], batch=case["batch"], tp=case["tp"], kv_dtype_name=kv, weights_dtype=weights, **extra
    )[0]
    return row.ttft_s * 1e3, row.tpot_s * 1e3


def _engine_kwargs(case: dict) -> dict:
    import inspect

    from kvplan.cost import cost

    params = inspect.signature(cost).parameters
    out = {}
    if "engine" in params:
        out["engine"] = case["engine"]
    if "model" in params:
        out["model"] = MODEL
    if case.get("ep") and "expert_parallel" in params:
        out["expert_parallel"] = True
    if "compute_dtype" in params and "fp8" in str(case.get("aic_quant", {}).get("gemm", "")):
        out["compute_dtype"] = "fp8"
    return out


def _kvplan_dtype(aic: str | None, default: str) -> str:
    if aic is None:
        return default
    if "fp8" in aic:
        return "fp8"
    return default


def _weights(quant: dict, default: str) -> str:
    """kvplan's weights dtype for aiconfigurator's gemm and moe quantisation (mxfp4 = experts only in kvplan)."""
    if "mxfp4" in str(quant.get("moe")):
        return "mxfp4"
    if "nvfp4" in str(quant.get("gemm")):
        return "nvfp4"
    return _kvplan_dtype(quant.get("gemm"), default)


def reference_artifact(case: dict, phase: str) -> str | None:
    """Why aiconfigurator's figure for this phase is not a kernel measurement kvplan should fit, or None.

    vLLM 0.24.0 on B200 runs block-fp8 dense GEMMs with DeepGEMM: aiconfigurator's table for it
    (``systems/data/b200_sxm/gemm/vllm/0.24.0/gemm_perf.parquet``, kernel_source
    DeepGemmFp8BlockScaledMMKernel) gives 0.18-0.26 ms for a 1-64 x 512 x 7168 GEMM, not monotone in m
    (m=1 0.261 ms, m=8 0.178 ms), 3-4x H200's FlashInfer rows for the same shapes and far above its own MLA
    module time on B200 (about 0.06 ms per layer for five such projections). Its decode step prices the
    shared experts' two GEMMs per layer from that table, so the step is that table's artifact.

    vLLM runs those linears with DeepGEMM's ``fp8_gemm_nt`` on SM100 (``W8A8BlockFp8LinearOp.apply`` and
    ``_run_deepgemm`` in ``vllm/model_executor/layers/quantization/utils/fp8_utils.py``; for M < 32 FlashInfer's
    swap-AB variant where enabled), the kernel SGLang 0.5.14 and TensorRT-LLM 1.3.0rc20 run, which aiconfigurator's
    own B200 tables time at 0.010-0.011 ms for the same shapes. :func:`collect_crosscheck` stores that evidence and
    the flagged cases re-priced with aiconfigurator's SGLang DeepGEMM table (:func:`reprice`).
    """
    quant = case.get("aic_quant", {})
    if phase == "decode" and case["engine"] == "vllm" and case["gpu"] == "b200" and quant.get("gemm") == "fp8_block":
        return "aiconfigurator's vLLM 0.24.0 B200 DeepGEMM block-fp8 table (0.18-0.26 ms per small GEMM)"
    return None


def compare(cases: list[dict]) -> list[dict]:
    rows = []
    for case in cases:
        if "aic_error" in case:
            continue
        ttft, tpot = kvplan_case(case)
        rows.append(
            {
                **{k: case[k] for k in ("model", "gpu", "engine", "tp", "batch", "isl")},
                "key": case_key(case),
                "variant": "+".join(x for x in (case.get("quant"), "ep" if case.get("ep") else None) if x),
                "aic_ttft_ms": case["aic_ttft_ms"],
                "kvplan_ttft_ms": ttft,
                "ln_ttft": math.log(ttft / case["aic_ttft_ms"]),
                "aic_tpot_ms": case["aic_tpot_ms"],
                "kvplan_tpot_ms": tpot,
                "ln_tpot": math.log(tpot / case["aic_tpot_ms"]),
                "tpot_artifact": reference_artifact(case, "decode"),
            }
        )
    return rows


def reprice(rows: list[dict], crosscheck: dict | None) -> list[dict]:
    """``ln_tpot_repriced`` on every row: a flagged decode figure is replaced by aiconfigurator's own vLLM figure with
    its SGLang DeepGEMM block-fp8 table (``artifact_crosscheck``, :func:`collect_crosscheck`); others are kept."""
    by_key = {c["key"]: c for c in (crosscheck or {}).get("cases", [])}
    out = []
    for r in rows:
        ref = r["aic_tpot_ms"]
        if r.get("tpot_artifact") and r["key"] in by_key:
            ref = by_key[r["key"]]["aic_tpot_ms_vllm_deepgemm"]
        out.append({**r, "aic_tpot_ms_repriced": ref, "ln_tpot_repriced": math.log(r["kvplan_tpot_ms"] / ref)})
    return out


def summary(rows: list[dict]) -> dict:
    """Median and worst |ln(kvplan / aiconfigurator)| per phase; ``tpot_clean`` leaves out the decode figures
    :func:`reference_artifact` flags (aiconfigurator's own tables contradict them); ``tpot_repriced`` (where the rows
    went through :func:`reprice`) keeps them, re-priced by aiconfigurator's own DeepGEMM table."""
    out = {"cases": len(rows), "tpot_artifacts": sum(bool(r.get("tpot_artifact")) for r in rows)}
    phases = [("ttft", None), ("tpot", None), ("tpot_clean", "tpot")]
    if rows and "ln_tpot_repriced" in rows[0]:
        phases.append(("tpot_repriced", None))
    for phase, keep in phases:
        col = keep or phase
        sel = [r for r in rows if not (keep and r.get("tpot_artifact"))]
        errs = [abs(r[f"ln_{col}"]) for r in sel]
        out[phase] = {
            "cases": len(sel),
            "median_abs_ln": statistics.median(errs),
            "worst_abs_ln": max(errs),
            "median_signed_ln": statistics.median(r[f"ln_{col}"] for r in sel),
            "within_1.5x": sum(e <= math.log(1.5) for e in errs),
        }
    return out


def _markdown(rows: list[dict]) -> str:
    head = (
        "| model | GPU | engine | TP | batch | ISL | TTFT aic ms | TTFT kvplan ms | ln "
        "| TPOT aic ms | TPOT kvplan ms | ln |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['gpu']} | {r['engine']} | {r['tp']}{' ' + r['variant'] if r['variant'] else ''} | "
            f"{r['batch']} | {r['isl']} | "
            f"{r['aic_ttft_ms']:.1f} | {r['kvplan_ttft_ms']:.1f} | {r['ln_ttft']:+.2f} | "
            f"{r['aic_tpot_ms']:.2f} | {r['kvplan_tpot_ms']:.2f} | {r['ln_tpot']:+.2f}"
            f"{' (artifact)' if r.get('tpot_artifact') else ''} |"
        )
    return "\n".join(lines)


def _print_agg(rows: list[dict], *, markdown: bool) -> int:
    if markdown:
        print("| model | GPU | engine | TP | ISL/OSL | req/s (aic) | kvplan max req/s | batch aic | batch kvplan "
              "| TPOT aic ms | TPOT kvplan ms | TTFT aic ms | TTFT kvplan ms |")  # fmt: skip
        print("|" + "---|" * 13)
    for r in rows:
        cells = [r["model"], r["gpu"], r["engine"], r["tp"], f"{r['isl']}/{r['osl']}", f"{r['rate']:.2f}",
                 f"{r['kvplan_max_rate']:.2f}",
                 f"{r['aic_batch']:.0f}", f"{r['kvplan_batch']:.1f}", f"{r['aic_tpot_ms']:.2f}",
                 f"{r['kvplan_tpot_ms']:.2f}", f"{r['aic_ttft_ms']:.0f}", f"{r['kvplan_ttft_ms']:.0f}"]  # fmt: skip
        print(("| " + " | ".join(map(str, cells)) + " |") if markdown else "  ".join(map(str, cells)))
    ok = [r for r in rows if not r["saturated"]]
    tpot = [abs(math.log(r["kvplan_tpot_ms"] / r["aic_tpot_ms"])) for r in ok]
    signed = [math.log(r["kvplan_tpot_ms"] / r["aic_tpot_ms"]) for r in ok]
    load = [r["rate"] / r["kvplan_max_rate"] for r in rows]
    print(f"\n{len(rows)} in-flight cases, {len(rows) - len(ok)} past kvplan's sustainable rate (no TPOT): "
          f"TPOT over the other {len(ok)} median |ln| {statistics.median(tpot):.3f}, worst {max(tpot):.3f}, "
          f"median signed {statistics.median(signed):+.3f}; aiconfigurator's rate = {min(load):.2f}-{max(load):.2f} "
          "of kvplan's sustainable rate")  # fmt: skip
    return 0


CLASS_KEYS = ("cases", "holdout_cases", "fp4_cases", "fp4_holdout_cases", "mixtral_cases")  # every stored static case


def class_rows(model: str, data: Path = DATA) -> list[dict]:
    """Each stored case of ``model`` (:data:`CLASS_KEYS`), each phase: aiconfigurator's per-operation milliseconds
    summed into kvplan's operation classes (benchmarks/fit_latency.py ``CLASSES``; its composites as sums of kvplan's
    parts, ``kvplan_classes``) beside kvplan's step by class, under the case's engine constants. ``total`` is the
    phase's TTFT or TPOT; a class aiconfigurator does not time is left out."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:  # imported as a module (the tests' bench_module): fit_latency is a sibling script
        sys.path.insert(0, here)
    import fit_latency as fl

    from kvplan.latency import calibration

    out = []
    for key in CLASS_KEYS:
        for row in fl.load_cases(None, key=key, data=data):
            c = row["case"]
            if c["model"] != model or row["artifact"]:
                continue
            cal = calibration(c["engine"])
            t = fl.predict(row, cal)
            got = fl.kvplan_classes(t, row, cal)
            classes = {cls: (aic * 1e3, got[cls] * 1e3) for cls, aic in sorted(row["classes_s"].items()) if aic > 0}
            out.append({"key": case_key(c).replace("|", " "), "set": key, "phase": row["phase"],
                        "weights": row["weights"], "total": (row["total_s"] * 1e3, t.total * 1e3),
                        "classes": classes})  # fmt: skip
    return out


def class_lines(rows: list[dict], *, markdown: bool = False) -> list[str]:
    """:func:`class_rows` as lines: ``aiconfigurator / kvplan ms (xkvplan / aiconfigurator)`` per class."""
    names = sorted({cls for r in rows for cls in r["classes"]})
    cells = ("case", "phase", "total", *names)
    out = ["| " + " | ".join(cells) + " |", "|---" * len(cells) + "|"] if markdown else []
    for r in rows:
        parts = [r["key"], r["phase"], _pair(*r["total"])]
        parts += [_pair(*r["classes"][n]) if n in r["classes"] else "" for n in names]
        out.append("| " + " | ".join(parts) + " |" if markdown else "  ".join(parts))
    return out


def _pair(aic: float, kvplan: float) -> str:
    return f"{aic:,.1f} / {kvplan:,.1f} (x{kvplan / aic:.2f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collect", action="store_true", help="run the grid through aiconfigurator into the data file")
    ap.add_argument("--collect-agg", action="store_true", help="add aiconfigurator's in-flight batching cases")
    ap.add_argument("--collect-holdout", action="store_true", help="add the hold-out cases (never fitted)")
    ap.add_argument("--collect-crosscheck", action="store_true",
                    help="re-price the flagged decode figures with aiconfigurator's own DeepGEMM tables")  # fmt: skip
    ap.add_argument("--holdout", action="store_true", help="compare the hold-out cases instead of the grid")
    ap.add_argument("--collect-fp4", action="store_true", help="add the FP4 fit cases and the FP4 hold-out cases")
    ap.add_argument("--fp4", action="store_true", help="compare the FP4 hold-out cases instead of the grid")
    ap.add_argument("--fp4-fit", action="store_true", help="compare the FP4 fit cases instead of the grid")
    ap.add_argument("--agg", action="store_true", help="compare kvplan.serving with the in-flight batching cases")
    ap.add_argument("--collect-mixtral", action="store_true", help="add the Mixtral cases (never fitted)")
    ap.add_argument("--mixtral", action="store_true", help="compare the Mixtral cases instead of the grid")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--model", choices=["calibrated", "roofline"], default="calibrated")
    ap.add_argument("--classes", metavar="MODEL", help="MODEL's stored cases, each step by operation class")
    args = ap.parse_args(argv)
    global MODEL
    MODEL = args.model
    if args.collect:
        return collect(args.data)
    if args.collect_agg:
        return collect_agg(args.data)
    if args.collect_crosscheck:
        return collect_crosscheck(args.data)
    if args.collect_holdout:
        return collect(args.data, grid=HOLDOUT, key="holdout_cases")
    if args.collect_mixtral:
        return collect(args.data, grid=MIXTRAL, key="mixtral_cases")
    if args.collect_fp4:
        return collect(args.data, grid=FP4_FIT, key="fp4_cases") or collect(
            args.data, grid=FP4_HOLDOUT, key="fp4_holdout_cases"
        )
    if not args.data.exists():
        print(f"{args.data} is missing; run with --collect where aiconfigurator is installed")
        return 0
    if args.classes is not None:
        if args.classes not in MODELS:
            print(f"error: --classes {args.classes!r}: no stored cases; one of {', '.join(MODELS)}", file=sys.stderr)
            return 2
        print("\n".join(class_lines(class_rows(args.classes, args.data), markdown=args.markdown)))
        return 0
    data = json.loads(args.data.read_text())
    if args.agg:
        return _print_agg(compare_agg(data.get("agg_cases", [])), markdown=args.markdown)
    chosen = {"holdout_cases": args.holdout, "fp4_holdout_cases": args.fp4, "fp4_cases": args.fp4_fit,
              "mixtral_cases": args.mixtral}  # fmt: skip
    key = next((k for k, on in chosen.items() if on), "cases")
    rows = compare(data.get(key, []) if key != "cases" else data["cases"])
    if not rows:
        print("no hold-out cases in the data file; run --collect-holdout where aiconfigurator is installed")
        return 0
    crosscheck = "artifact_crosscheck" in data and key == "cases"  # the flagged figures are grid cases
    if crosscheck:
        rows = reprice(rows, data["artifact_crosscheck"])
    s = summary(rows)
    if args.json:
        print(json.dumps({"summary": s, "rows": rows}, indent=1))
        return 0
    if args.markdown:
        print(_markdown(rows))
    else:
        for r in rows:
            print(
                f"{r['model']:16} {r['gpu']:8} {r['engine']:6} tp{r['tp']}{r['variant']:<4} b{r['batch']:<3} "
                f"isl{r['isl']:<5} "
                f"TTFT {r['aic_ttft_ms']:9.2f} {r['kvplan_ttft_ms']:9.2f} {r['ln_ttft']:+.2f}   "
                f"TPOT {r['aic_tpot_ms']:7.2f} {r['kvplan_tpot_ms']:7.2f} {r['ln_tpot']:+.2f}"
            )
    meta = data["meta"]
    print(f"\n{s['cases']} cases against {meta['tool']} {meta['version']} ({meta['database_mode']})")
    labels = (
        ("ttft", "TTFT"),
        ("tpot", "TPOT"),
        ("tpot_clean", "TPOT without the flagged artifacts"),
        ("tpot_repriced", "TPOT with the flagged figures re-priced by aiconfigurator's SGLang DeepGEMM table"),
    )
    for phase, label in labels:
        if phase not in s:
            continue
        p = s[phase]
        print(
            f"{label}: median |ln| {p['median_abs_ln']:.3f}, worst {p['worst_abs_ln']:.3f} "
            f"(x{math.exp(p['worst_abs_ln']):.2f}), median signed {p['median_signed_ln']:+.3f}, "
            f"within 1.5x: {p['within_1.5x']}/{p['cases']}"
        )
    if s["tpot_artifacts"]:
        print(f"{s['tpot_artifacts']} decode figures flagged as reference artifacts: "
              f"{next(r['tpot_artifact'] for r in rows if r.get('tpot_artifact'))}")  # fmt: skip
    if crosscheck:
        _print_crosscheck(rows, data["artifact_crosscheck"], markdown=args.markdown)
    return 0


def _print_crosscheck(rows: list[dict], cc: dict, *, markdown: bool) -> None:
    """The flagged cases beside aiconfigurator's own figures on the engines that run the same kernel, and the GEMM
    tables at the probe shape."""
    by_key = {r["key"]: r for r in rows}
    n, k = cc["gemm_probe_n_k"]
    print(f"\naiconfigurator's B200 GEMM tables at m x {n} x {k} (ms):")
    ms = sorted({int(m) for t in cc["gemm_tables_b200"].values() for m in t["latency_ms_by_m"]})
    if markdown:
        print("| table | kernel | " + " | ".join(f"m={m}" for m in ms) + " |")
        print("|---|---|" + "---|" * len(ms))
    for label, t in cc["gemm_tables_b200"].items():
        cells = [f"{t['latency_ms_by_m'].get(str(m), t['latency_ms_by_m'].get(m, float('nan'))):.4f}" for m in ms]
        print(f"| {label} | {t['kernel_source']} | " + " | ".join(cells) + " |" if markdown
              else f"  {label:28} {t['kernel_source']:34} " + " ".join(cells))  # fmt: skip
    print("\nflagged decode figures (TPOT ms): aiconfigurator vLLM as collected, vLLM re-priced with its SGLang "
          "DeepGEMM table, SGLang, TensorRT-LLM; kvplan (vLLM):")  # fmt: skip
    if markdown:
        print(
            "| case | aic vLLM | aic vLLM, DeepGEMM re-priced | aic SGLang | aic TRT-LLM | kvplan | ln vs re-priced |"
        )
        print("|---|---|---|---|---|---|---|")
    for c in cc["cases"]:
        r = by_key[c["key"]]
        cells = [c["key"].replace("|", " "), f"{c['aic_tpot_ms_vllm']:.2f}", f"{c['aic_tpot_ms_vllm_deepgemm']:.2f}",
                 f"{c['aic_tpot_ms_sglang']:.2f}", f"{c['aic_tpot_ms_trtllm']:.2f}", f"{r['kvplan_tpot_ms']:.2f}",
                 f"{r['ln_tpot_repriced']:+.2f}"]  # fmt: skip
        print(("| " + " | ".join(cells) + " |") if markdown else "  " + "  ".join(cells))


if __name__ == "__main__":
    sys.exit(main())

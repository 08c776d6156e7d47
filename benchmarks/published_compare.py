"""kvplan's in-flight batching throughput against published measurements (engine tables and MLPerf Inference).

The data, each run with its source, are in ``benchmarks/data/published_throughput.json``:

* ``runs``: TensorRT-LLM's performance-overview tables, v1.0 (PyTorch backend, ``trtllm-bench throughput``)
  and v0.17 (TensorRT engines): requests at an infinite rate, fixed ISL/OSL, FP8 weights (v1.0: NVFP4 on B200
  and GB200, the ModelOpt FP4 checkpoints) and an FP8 KV cache,
  ``kv_cache_free_gpu_mem_fraction`` 0.95. The metric is the TP group's output tokens/s. kvplan's figure is
  the run the page made (:func:`run_tokens_s`): its ``$num_requests`` equal requests queued at once
  (:data:`TRTLLM_NUM_REQUESTS`), each rank admitting its share as the engine does, whole requests into the places its
  KV pool holds and prompts into each step's token budget (:func:`run_steps`), each step priced at the replica's
  steady state at that step's batch (:func:`finite_run_tokens_s`; the highest request rate one replica sustains,
  :func:`kvplan.serving.max_rate`, TensorRT-LLM constants of :mod:`kvplan.latency`; the v1.0 rows' steps with
  ``trtllm-bench``'s own ``max_num_tokens``, the v0.17 ones' 8,192-token steps, TensorRT-LLM's default, times OSL);
  the steady state alone is kept beside it (``kvplan_steady_tok_s``,
  ``ratio_steady``).
* ``large_scale_ep``: published large-scale expert-parallel results (SGLang on 96 H100, DeepSeek's own
  service), each with its source, the configuration it states and why kvplan does not score it.
* ``engine_benchmarks``: vLLM and SGLang published measurements (closed-loop runs at a fixed client concurrency),
  their sources in ``engine_benchmark_sources``; scored with the row's kvplan engine release at
  ``max_num_seqs = min(concurrency, the engine's cap)`` (:func:`engine_row_setup`), as the finite closed-loop run
  the client made (:func:`closed_loop_run`, the row's ``num_prompts``, no more running requests than the KV pool
  holds: :func:`kv_sequences`) and as the steady state, the GPUStack vLLM rows (their releases run the serving loop
  in turn) with the host time fitted on the same lab's ``--async-scheduling`` pairs (:func:`row_host`,
  benchmarks/fit_host.py); ``--update-data`` stores ``kvplan_tok_s``, ``ratio``,
  ``verdict`` and ``kvplan_steady_tok_s``, ``ratio_steady`` on them. A row scored but kept out of the statistics
  carries ``not_in_statistics``, the reason, printed beside its ratio. The vLLM / SGLang results read but not scored
  are in ``engine_benchmarks_not_scored``, each with its reason.
* ``mlperf``: MLPerf Inference v4.1 / v5.1 datacenter closed-division results (NVIDIA, TensorRT-LLM), with
  ``mlperf_datasets``: each benchmark set's mean, p90 and p99 input length (tokens), with their source. A run is
  modelled with the submitter's split, batch and KV fraction (NVIDIA's per-system config, cited on the row), the
  set's mean input length and the log's own output tokens per sample. Offline: the replica's highest sustainable
  rate (as above) times OSL times the replicas. Server: the highest rate whose TTFT and TPOT stay within the run's
  limits (:func:`kvplan.slo.rate_within_targets`) at the 99th percentile, as MLPerf holds them (Llama-2-70B:
  TTFT 2 s, TPOT 200 ms at p99: ``*.Server.target_latency_percentile = 99`` and
  ``llama2-70b.Server.ttft_latency`` / ``tpot_latency`` in mlcommons/inference ``loadgen/mlperf.conf``
  @001712e9; Interactive is the Server scenario held to ``llama2-70b-interactive.Server.ttft_latency`` 450 and
  ``tpot_latency`` 40 ms there), with the set's p99 input length (``mlperf_datasets`` ``input_p99``; before it
  was held at the p90) and its standard deviation (``input_sd``: the prompts' queue waits as M/G/1, the
  Pollaczek-Khinchine mean, :func:`kvplan.serving.queue_wait_s` ``scv``). The scored figures (``kvplan_isl``,
  ``kvplan_tok_s``, ``ratio``, ``verdict``) are stored on each row by ``--update-data``; tests recompute them.

The multi-GPU MoE rows of the v1.0 tables (Qwen3-235B-A22B, Llama 4 Scout, Llama 4 Maverick on H100/H200, and
Qwen3-235B-A22B and Llama 4 Maverick on 8 x B200) ran with TensorRT-LLM's attention data parallelism: each row's
``launch`` holds the page's launch (command, TP, ``enable_attention_dp``, KV fraction) with its source and says what
the page does not state (``not_stated``: ``ep_size``, max batch and max tokens). kvplan scores them on its DP + EP
path (:func:`run_split`): every GPU an attention DP rank, the experts whole over all ranks; ``ratio_ep1`` is the
other reading of the unstated ``ep_size`` (experts sliced over the ranks). A row whose engine kept and attended to
every token on a sliding-window model's layers carries ``attention_window: "max_seq_len"`` (the v0.17 Mistral rows:
the ``trtllm@0.17`` release applies that itself, ``kvplan.engines.trtllm.Trtllm.model_as_run``). A run kvplan does
not model (a model outside the catalog, a run whose launch was not recorded) carries
``not_modelled``; an MLPerf run whose inputs are not all known (the run's split or precision) or not modelled
carries ``not_compared``. Both are printed with their reason and kept out of the statistics (``--markdown`` tables
for docs/cost.md). A scored row whose published figure no source kvplan reads can give carries ``not_reproduced``,
the reason (the GB200 rows below the page's own B200 figure for the same lengths: benchmarks/gb200_candidates.py,
benchmarks/blackwell_v10_kernels.py); it is marked in the table and stays in the statistics.

``python benchmarks/published_compare.py [--markdown] [--update-data]``
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import heapq
import itertools
import json
import math
import statistics
import sys
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from kvplan.spec import ModelSpec

DATA = Path(__file__).resolve().parent / "data" / "published_throughput.json"
KV_FRACTION = 0.95  # kv_cache_free_gpu_mem_fraction the TensorRT-LLM tables used "in many cases" (source note)
# The v1.0 tables' llm_options.yml, dense and MoE alike: cuda_graph_config enable_padding: true with these batch_sizes
# (TensorRT-LLM docs/source/performance/perf-overview.md @00f37686, "Running the Benchmark"); each decode step is
# padded up to the next of them (kvplan.engines.trtllm Trtllm.graph_rows).
V10_GRAPH_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 384, 512, 1024, 2048, 4096, 8192)
TARGET = 0.20  # the issue's target: throughput within 20 % of the published measurement


# The v1.0 rows and the MLPerf PyTorch-backend runs ran before NVIDIA/TensorRT-LLM PR #12597 (shipped from v1.3.0rc11):
# kvplan's ``trtllm@0.20`` (kvplan/engines/trtllm.py V0_20), not the default 1.3 rule set.
V020_ENGINE = "trtllm@0.20"


def _setup(
    model: str | ModelSpec,
    gpu: str,
    tp: int,
    *,
    weights: str,
    kv: str,
    fraction: float,
    max_batch: int | None = None,
    max_tokens: int | None = None,
    dp: int = 1,
    ep: bool = False,
    pp: int = 1,
    graph_sizes: tuple[int, ...] | None = None,
    balance: bool = False,
    timeout_iters: int | None = None,
    batching_wait_iters: int | None = None,
    engine: str = V020_ENGINE,
    batch_tuning: bool = False,
    block_tokens: int | None = None,
    scheduler_policy: str | None = None,
    max_seq_len: int | None = None,
    cuda_graphs: bool | None = None,
):  # noqa: ANN202
    from kvplan.capacity import setup
    from kvplan.engines import Settings

    settings = Settings(free_gpu_memory_fraction=fraction, max_num_seqs=max_batch, max_num_batched_tokens=max_tokens,
                        cuda_graph_batch_sizes=graph_sizes, attention_dp_balance=balance,
                        attention_dp_timeout_iters=timeout_iters,
                        attention_dp_batching_wait_iters=batching_wait_iters,
                        batch_size_tuning=batch_tuning, block_size=block_tokens,
                        capacity_scheduler_policy=scheduler_policy, max_seq_len=max_seq_len,
                        cuda_graphs=cuda_graphs)  # fmt: skip
    return setup(model, gpu, engine=engine, tp=tp, dp=dp, ep=ep, pp=pp, weights_dtype=weights,
                 kv_dtype_name=kv, settings=settings)  # fmt: skip


def run_split(r: dict, *, ep: bool = True) -> dict:
    """kvplan's split for a table row: the header's TP, or, where the row's ``launch`` sets TensorRT-LLM's
    ``enable_attention_dp``, every GPU its own attention DP rank (tp 1, dp = the header's TP; TensorRT-LLM's
    attention DP has attention tp 1, kvplan.engines.trtllm) with the routed experts over them: whole experts
    (``ep``, expert parallelism over all ranks) or each expert's width sliced (``ep=False``, moe_tp = tp_size)."""
    launch = r.get("launch")
    if launch and launch.get("enable_attention_dp"):
        return {"tp": 1, "dp": launch["tp"], "ep": ep}
    return {"tp": r["tp"]}


def row_max_seq_len(r: dict) -> int:
    """The launch's ``max_seq_len``: ``trtllm-bench`` sets it to the dataset's longest ISL + OSL, here the row's
    (tensorrt_llm/bench/benchmark/throughput.py @000a01de, ``kwargs["max_seq_len"] = max_seq_len or
    metadata.max_sequence_length``; ``trtllm-bench build`` takes the same for an engine). Llama 4's chunked layers run
    as full attention below their chunk (``Settings.max_seq_len``, kvplan.engines.trtllm ``attention_spans``)."""
    return r["isl"] + r["osl"]


def row_graph_sizes(r: dict) -> tuple[int, ...] | None:
    """The CUDA-graph batch sizes the row's launch pads decode steps to: the v1.0 page's ``llm_options.yml``
    (:data:`V10_GRAPH_BATCH_SIZES`) for its rows, none modelled elsewhere."""
    return V10_GRAPH_BATCH_SIZES if r["source"] == "trtllm-1.0" else None


# The v0.17 rows ran TensorRT-LLM v0.17's TensorRT engines, built and run by trtllm-bench: kvplan's ``trtllm@0.17``
# release (kvplan/engines/trtllm.py V0_17: 64-token blocks, fp8 weights streamed at the 16-bit share under the static
# fp8 activation scale, ``FP8Linear.forward`` @258c7540) with the runtime's batch-size tuning that trtllm-bench
# throughput turns on (``Settings.batch_size_tuning``: ExecutorSettingsConfig ``dynamic_max_batch_size = True``;
# each step the batch is DynamicBatchTuner's size for the KV capacity, kvplan.engines.trtllm.dynamic_batch_size).
V017_ENGINE = "trtllm@0.17"


def row_engine(r: dict) -> tuple[str, bool]:
    """``(engine, batch_size_tuning)`` the row's run had: ``trtllm@0.17`` with the tuner on for the v0.17 rows,
    ``trtllm@0.20`` (the PyTorch backend before PR #12597) without it for the others."""
    return (V017_ENGINE, True) if r["source"] == "trtllm-0.17" else (V020_ENGINE, False)


# TensorRT-engine NVFP4 runs built with norm_quant_fusion (the MLPerf rows whose config sets it: ``norm_quant_fusion``
# on the row): the residual add, RMSNorm and NVFP4 quantization are one kernel, so the QKV and gate/up GEMMs get FP4
# input and run no quantization kernel of their own (Calibration.fp4_norm_quant_fused, with its TensorRT-LLM source).
# The engine build keeps the flag only for LlamaForCausalLM with NVFP4 and without reduce_fusion ("Overriding
# norm_quant_fusion to False" otherwise, TensorRT-LLM's build checks, read through the code index, commit not named).
# TensorRT-engine runs built with gemm_allreduce_plugin (``gemm_allreduce_plugin`` on the row, where the config the run
# ran sets it: the 405B files): o_proj and down_proj are one GEMM + all-reduce kernel each
# (Calibration.gemm_allreduce_fused, with its TensorRT-LLM source; kvplan.latency fused_gemm_allreduce_s).
BUILD_SWITCHES = {"norm_quant_fusion": "fp4_norm_quant_fused", "gemm_allreduce_plugin": "gemm_allreduce_fused"}
_BUILT_CALIBRATIONS: dict[tuple, tuple] = {}  # (id of a fitted calibration, switches) -> (it, its built copy)
_CALIBRATION_FUNCS: dict[tuple, object] = {}  # switches -> the one calibration function for them (memos key on it)


def _built_calibration(engine: str | None, switches: tuple[str, ...]):  # noqa: ANN202
    """TensorRT-LLM's fitted constants for ``engine`` with the build's ``switches`` (Calibration fields, each True);
    any other engine's as fitted."""
    from kvplan.engines import latency_calibration

    cal = latency_calibration(engine)
    if cal.engine != "trtllm":
        return cal
    key = (id(cal), switches)
    if key not in _BUILT_CALIBRATIONS:
        flags = " and ".join(flag for flag, name in BUILD_SWITCHES.items() if name in switches)
        built = dataclasses.replace(cal, **dict.fromkeys(switches, True),
                                    version=f"{cal.version}; TensorRT engine with {flags}")  # fmt: skip
        _BUILT_CALIBRATIONS[key] = (cal, built)
    return _BUILT_CALIBRATIONS[key][1]


def _norm_quant_calibration(engine: str | None):  # noqa: ANN202
    """:func:`kvplan.latency.calibration` for a TensorRT engine built with ``norm_quant_fusion``: TensorRT-LLM's
    fitted constants with ``fp4_norm_quant_fused``; any other engine's as fitted."""
    return _built_calibration(engine, ("fp4_norm_quant_fused",))


def _calibration_for(switches: tuple[str, ...]):  # noqa: ANN202
    """The calibration function of a build with ``switches``: one function object per set (the step memos key on
    the function's identity, so a set always gets the same one)."""
    if switches not in _CALIBRATION_FUNCS:
        if switches == ("fp4_norm_quant_fused",):
            _CALIBRATION_FUNCS[switches] = _norm_quant_calibration
        else:
            _CALIBRATION_FUNCS[switches] = functools.partial(_built_calibration, switches=switches)
    return _CALIBRATION_FUNCS[switches]


def build_switches(r: dict) -> tuple[str, ...]:
    """The Calibration switches of an MLPerf row's engine build (:data:`BUILD_SWITCHES`, the row's flags)."""
    return tuple(name for flag, name in BUILD_SWITCHES.items() if r.get(flag))


@contextlib.contextmanager
def mlperf_engine(r: dict):  # noqa: ANN201
    """The engine constants an MLPerf run had: TensorRT-LLM's fitted ones, with the norm kernels writing FP4 where the
    run's config builds with ``norm_quant_fusion`` and the row-parallel GEMMs fused with their all-reduce where it
    builds with ``gemm_allreduce_plugin`` (:func:`build_switches`), replacing :func:`kvplan.latency.calibration` for
    the duration."""
    switches = build_switches(r)
    if not switches:
        yield
        return
    from kvplan import latency

    fitted = latency.calibration
    latency.calibration = _calibration_for(switches)
    try:
        yield
    finally:
        latency.calibration = fitted


def row_setup(r: dict, *, ep: bool = True, heuristic: bool = True, balance: bool = False):  # noqa: ANN201
    """kvplan's setup for a table row: the row's model, split, launch and engine release (:func:`row_engine`), with
    the run's caps (:func:`bench_caps`; ``heuristic`` False: trtllm-bench's ``max_batch_size`` only)."""
    engine, tuning = row_engine(r)
    return _setup(r["model"], r["gpu"], weights=r["weights"], kv=r["kv"], fraction=KV_FRACTION,
                  **bench_caps(r, tokens=heuristic), graph_sizes=row_graph_sizes(r), balance=balance, engine=engine,
                  batch_tuning=tuning, max_seq_len=row_max_seq_len(r), **run_split(r, ep=ep))  # fmt: skip


def _row_tokens_s(r: dict, *, ep: bool = True, heuristic: bool = True, balance: bool = False) -> float:
    return replica_tokens_s(row_setup(r, ep=ep, heuristic=heuristic, balance=balance), r["isl"], r["osl"])


def balance_lines(rows: list[dict], *, markdown: bool = False) -> list[str]:
    """The attention-DP rows scored twice: as the page ran them (each rank admits its own prompt chunks, TensorRT-LLM's
    default) and with ``attention_dp_config.enable_balance`` (every rank's chunks in the same steps,
    ``Settings.attention_dp_balance``). The page's launch does not set it; the two are the bounds the scheduler's
    rules give, a test of whether rank alignment explains the long-prompt misses, nothing fitted."""
    done = [r for r in rows if "ratio" in r and (r.get("launch") or {}).get("enable_attention_dp")]
    cols = ("model", "GPU", "split", "ISL/OSL", "weights", "published tok/s", "independent ranks", "aligned (balance)")
    out = ["| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"] if markdown else []
    between = 0
    for r in done:
        aligned = _row_tokens_s(r, balance=True) / r["published_tok_s"]
        independent = steady_ratio(r)
        between += min(independent, aligned) <= 1.0 <= max(independent, aligned)
        cells = (r["label"], r["gpu"], split_label(r), f"{r['isl']}/{r['osl']}", r["weights"],
                 f"{r['published_tok_s']:,.0f}", f"{independent:.2f}", f"{aligned:.2f}")  # fmt: skip
        out.append("| " + " | ".join(cells) + " |" if markdown else "dp-balance " + "  ".join(cells))
    out.append(f"attention DP rows: {len(done)}; the published figure lies between the independent and the aligned "
               f"ranks' figures for {between}")  # fmt: skip
    return out


def checkpoint_elements(spec, weights: str) -> float:  # noqa: ANN001
    """The parameter count ``trtllm-bench`` sizes the engine by: the sum of every tensor's elements in the checkpoint's
    safetensors headers (tensorrt_llm/bench/build/dataclasses.py ``ModelConfig.get_param_count``,
    ``huggingface_hub`` ``parameter_count``). An FP8 checkpoint stores each weight element once (plus scalar scales);
    a ModelOpt NVFP4 checkpoint stores the quantized linear layers' weights two elements to a byte (uint8 tensors of
    half the width) and one FP8 scale per 16 elements, its embedding, LM head and norms unquantized, so the headers
    count ``linear / 2 + linear / 16 + the rest``, with the attention and MLP (experts) projections as the linear
    layers."""
    from kvplan.params import count_params

    p = count_params(spec)
    if weights != "nvfp4":
        return p.total
    linear = p.attention + p.mlp
    return p.total - linear + linear / 2 + linear / 16


def trtllm_bench_settings(r: dict) -> tuple[int, int]:
    """``(max_batch_size, max_num_tokens)`` as ``trtllm-bench throughput`` picks them when the launch sets neither
    (the v1.0 tables): tensorrt_llm/bench/build/tuning.py ``calc_engine_setting`` + ``finetune_setting`` (KV for
    ``max(tp, kv heads)`` heads per token at 1 byte (FP8 KV), the engine at 1 byte per parameter, the rest of the TP
    group's memory at the KV fraction; requests of ISL + OSL; the optimistic rounding), then
    tensorrt_llm/bench/benchmark/utils/general.py ``get_settings``: without chunked prefill (trtllm-bench's default)
    ``max_num_tokens`` is at least the longest prompt + ``max_batch_size``. kvplan's parameter count and catalog
    memory stand in for the checkpoint's and ``get_device_memory``'s."""
    from kvplan.catalog import load_bundled
    from kvplan.hardware import resolve_gpu

    spec, gpu, tp = load_bundled(r["model"]), resolve_gpu(r["gpu"]), r["tp"]
    gib = 1024**3
    head = spec.head_dim or spec.hidden_size // spec.num_attention_heads
    per_token = 2 * spec.num_layers * max(tp, spec.num_kv_heads) * head * 1.0 / gib
    per_param = 0.5 if r["weights"] == "nvfp4" else 1.0  # tuning.py BYTES_PER_ELEM: FP8 1.0, NVFP4 0.5
    cache = (gpu.memory_bytes * tp / gib - checkpoint_elements(spec, r["weights"]) * per_param / gib) * KV_FRACTION
    raw_bs = min(cache / (per_token * (r["isl"] + r["osl"])), 4096)
    raw_tokens = min(raw_bs * (1 + r["isl"] / r["osl"]), 32768)
    if raw_bs < 256:
        batch = max(64, 32 * math.ceil(raw_bs / 32))
    else:
        step = 128 if raw_bs < 1024 else 256
        batch = step * math.ceil(raw_bs / step)
    if raw_tokens < 4096:
        tokens = max(2048, 256 * math.ceil(raw_tokens / 256))
    else:
        step = 512 if raw_tokens < 8192 else 1024
        tokens = step * math.ceil(raw_tokens / step)
    return batch, max(tokens, r["isl"] + batch)


def bench_caps(r: dict, *, tokens: bool = True) -> dict:
    """The caps a table row's run had where kvplan scores them: ``trtllm-bench throughput``'s own ``max_batch_size``
    and ``max_num_tokens`` (:func:`trtllm_bench_settings`) for the v1.0 rows, whose launches set neither cap, so
    ``get_settings`` takes the tuning heuristic's; none (the engine's defaults) for the others. The batch cap bounds
    the running batch (the executor's ``max_num_requests``) and the CUDA graphs the model engine captures, the first
    of the page's ``batch_sizes`` past it replaced by it (:func:`kvplan.engines.trtllm.captured_graph_sizes`): 145
    sequences on the H200 70B at 1000/2000 (cap 160) run as 160 rows, not 256. The token cap is each step's budget
    and the size of the KV estimation's dummy forward (:func:`kvplan.engines.trtllm.activation`).

    The heuristic's ``max_num_tokens`` (``tokens``; False: the batch cap only, as the tables scored the rows until
    stop 29) is the same run's fact: read in the 1.0-era ``trtllm-bench``
    (stop 29), ``get_settings`` takes both caps from the heuristic unless the command gives both, and forces
    ``max_num_tokens`` to at least the longest prompt + ``max_batch_size`` because chunked prefill is off (the
    throughput command's ``--enable_chunked_context``, default False, sets ``settings_config.chunking``;
    ``get_settings`` looks for ``enable_chunked_prefill`` in the YAML only, which the page's does not set);
    ``throughput.py`` keeps both (``runtime_max_tokens = params max_num_tokens or engine_tokens``) and
    ``RuntimeConfig.get_llm_args`` (bench/dataclasses/configuration.py) hands ``max_batch_size``, ``max_num_tokens``
    and ``enable_chunked_prefill`` to the LLM, the ``--extra_llm_api_options`` YAML replacing only the keys it names.
    Under attention DP both are each rank's executor's. Scored since stop 29 (the source is the spec; until then kept
    out, the lead's call at stop 28), it moves rows away from the published figures: the activation peak the pool is
    sized after shrinks with it, and a pool a few sequences larger can cross a captured graph size (Llama 3.1 8B H100
    128/4096: 256 -> 258 sequences, the decode steps padded to 384 rows instead of 256, x0.86 -> x0.78); the 8 x H100
    attention-DP pools grow 5-15 % and their runs need fewer lifetimes (H100 9 -> 2 of 22). The heuristic's large
    budgets (up to 32,768 tokens, 16 whole 2,048-token prompts a step) do not strain the finite run's pricing: played
    step by step (:func:`stepwise_run_tokens_s`) those rows read within 3 % of it (:func:`burst_lines`).
    ``--bench-heuristic`` prints the FP8 rows without it and those rows both ways."""
    if r["source"] != "trtllm-1.0":
        return {}
    batch, budget = trtllm_bench_settings(r)
    return {"max_batch": batch, "max_tokens": budget} if tokens else {"max_batch": batch}


def heuristic_summary(runs: list[dict]) -> str:
    """The v1.0 FP8 rows as the tables score them (:func:`run_tokens_s`) but with trtllm-bench's ``max_batch_size``
    only, the engine's 8,192-token budget in place of its ``max_num_tokens`` (:func:`bench_caps` ``tokens=False``): how
    the tables scored them until stop 29."""
    parts = []
    for name, keep in (("dense", lambda r: "launch" not in r), ("attention DP + EP", lambda r: "launch" in r)):
        rows = [r for r in runs if r["source"] == "trtllm-1.0" and "not_modelled" not in r and keep(r)
                and r["weights"] == "fp8"]  # fmt: skip
        scored = [{"ratio": run_tokens_s(r, tokens=False) / r["published_tok_s"]} for r in rows]
        s = stats(scored)
        parts.append(f"{name} {s['compared']} points: median |ln ratio| {s['median_abs_ln']:.3f}, worst "
                     f"{s['worst_abs_ln']:.3f}, within 20%: {s['within_20pct']}/{s['compared']}")  # fmt: skip
    head = "trtllm-1.0 FP8 rows with trtllm-bench's max_batch_size only, the engine's 8,192-token budget (as scored"
    return head + " until stop 29; the tables take its max_num_tokens too): " + "; ".join(parts)


BURST_PROMPTS = 4  # --bench-heuristic's burst rows: the heuristic's budget holds at least this many whole prompts


def burst_lines(runs: list[dict]) -> list[str]:
    """The v1.0 rows whose ``trtllm-bench`` token cap (:func:`trtllm_bench_settings`) is past the engine's 8,192 and
    holds at least :data:`BURST_PROMPTS` whole prompts, scored with both caps two ways: as the tables price a run
    (:func:`run_tokens_s`, each request's prompt work spread over the steps at each batch) and played step by step on
    the same admission (:func:`stepwise_run_tokens_s`, each burst of whole prompts its own eager step, the decode-only
    steps between them CUDA-graph padded). At the engine's 8,192 tokens the two agree within 3 % on these rows
    (tests/test_finite_run.py); where they part, the spread figure does not describe the run the caps give."""
    from kvplan.engines.trtllm import MAX_NUM_TOKENS

    lines = []
    for r in runs:
        if r["source"] != "trtllm-1.0" or "not_modelled" in r:
            continue
        budget = trtllm_bench_settings(r)[1]
        if budget <= MAX_NUM_TOKENS or budget // r["isl"] < BURST_PROMPTS:
            continue
        spread = run_tokens_s(r, tokens=True) / r["published_tok_s"]
        stepped = stepwise_run_tokens_s(r, tokens=True) / r["published_tok_s"]
        lines.append(f"trtllm-1.0 burst {r['label']:<16} {r['gpu']:<9} {split_label(r):<9} {r['isl']:>5}/{r['osl']:<5}"
                     f" budget {budget:>6,} ({budget // r['isl']} prompts): spread x{spread:.2f}, step by step "
                     f"x{stepped:.2f}")  # fmt: skip
    return lines


def step_residual(r: dict) -> dict:
    """kvplan's mean step at the row's highest sustainable rate (``serving.serve`` just below ``max_rate``) and what
    the published figure leaves over it: at the same batch, the published run's step is ``ratio`` x kvplan's, so the
    step time kvplan lacks is ``step x (ratio - 1)`` (negative: kvplan's step is too long). A residual that stays
    about constant in milliseconds across a model's rows points at a fixed cost per step, one that scales with the
    step at a rate."""
    from kvplan.serving import Lengths, max_rate, serve

    s = row_setup(r)
    inp, out = Lengths.of(r["isl"]), Lengths.of(r["osl"])
    top = max_rate(s, input_len=inp, output_len=out)
    at = serve(s, rate_rps=top * 0.999, input_len=inp, output_len=out, with_max_rate=False, with_p90=False,
               with_p99=False, full_start=True)  # fmt: skip
    ratio = top * r["osl"] / r["published_tok_s"]
    return {"ratio": ratio, "step_s": at.step_s, "residual_s": at.step_s * (ratio - 1),
            "rank_batch": at.step_batch / s.dp}  # fmt: skip


def residual_lines(runs: list[dict]) -> list[str]:
    """The v1.0 FP8 H100/H200 rows' step residual (:func:`step_residual`), the attention-DP rows beside the TP ones,
    and the published step it implies at kvplan's batch (kvplan's step + the residual = ratio x kvplan's step)."""
    out = []
    for r in runs:
        if r["source"] != "trtllm-1.0" or "not_modelled" in r or r["weights"] != "fp8":
            continue
        x = step_residual(r)
        out.append(f"step residual {r['label']:16} {r['gpu']:9} {split_label(r):8} {r['isl']:>5}/{r['osl']:<5} "
                   f"x{x['ratio']:.2f}  kvplan step {x['step_s'] * 1e3:6.1f} ms at {x['rank_batch']:5.0f} a rank, "
                   f"residual {x['residual_s'] * 1e3:+6.1f} ms, published step "
                   f"{(x['step_s'] + x['residual_s']) * 1e3:6.1f} ms")  # fmt: skip
    return out


IMBALANCE_SCALES = (1, 2, 3, 6)  # multiples of TensorRT-LLM's fitted moe_ep_imbalance tried by --imbalance


@contextlib.contextmanager
def trtllm_imbalance(scale: float):  # noqa: ANN201
    """TensorRT-LLM's fitted ``moe_ep_imbalance`` (the busiest EP rank's excess of routed tokens,
    kvplan.latency._moe_s) times ``scale`` for the ``with`` block, in every TensorRT-LLM rule set's constants (the v1.0
    rows' ``trtllm@0.20`` has its own), by replacing ``kvplan.latency.calibration`` (whose step contexts are kept per
    that function, so the block prices with its own): a test of the expert-imbalance hypothesis, not a constant
    (nothing here is kept). Yields the newest release's scaled constants."""
    import dataclasses

    import kvplan.latency as latency

    original = latency.calibration
    scaled: dict[int, object] = {}  # id of a rule set's constants -> (them, scaled): one copy each

    def pinned(engine: str | None):  # noqa: ANN202
        cal = original(engine)
        if cal.engine != "trtllm":
            return cal
        if id(cal) not in scaled:
            scaled[id(cal)] = (cal, dataclasses.replace(cal, moe_ep_imbalance=cal.moe_ep_imbalance * scale))
        return scaled[id(cal)][1]

    latency.calibration = pinned
    try:
        yield pinned("trtllm")
    finally:
        latency.calibration = original


def imbalance_lines(runs: list[dict]) -> list[str]:
    """The decode-heavy attention-DP rows (FP8, 128-token prompts) scored with the busiest EP rank's excess routed
    tokens at :data:`IMBALANCE_SCALES` x the fitted one. Skewed routing can only slow the grouped GEMMs' compute
    (every local expert's weights are read whatever the skew, and the all-gather moves every token to every rank),
    so rows bound by the weight and cache reads barely move."""
    rows = [r for r in runs if r["source"] == "trtllm-1.0" and "launch" in r and r["weights"] == "fp8"
            and r["isl"] == 128 and r["osl"] > 128]  # fmt: skip
    out = []
    for scale in IMBALANCE_SCALES:
        with trtllm_imbalance(scale):
            cells = [f"{r['label']} {r['gpu']} {r['isl']}/{r['osl']} x{_row_tokens_s(r) / r['published_tok_s']:.2f}"
                     for r in rows]  # fmt: skip
        out.append(f"imbalance x{scale}: " + "; ".join(cells))
    return out


def implied_host_request_s(r: dict, *, lo: float = 1e-6, hi: float = 1e-2, steps: int = 24) -> float | None:
    """The host seconds per request in a step at which kvplan's figure for row ``r`` would fall to the published one
    (``Settings.host_request_s``: TensorRT-LLM's overlap loop, step = max(GPU, host), kvplan.host), by bisection on
    a log scale between ``lo`` and ``hi``; None where kvplan is not above the published figure. A test of whether one
    host cost per host CPU explains the optimistic rows, not a constant: nothing here is fitted into kvplan."""
    import dataclasses

    def tokens(host_s: float) -> float:
        s = _setup(r["model"], r["gpu"], weights=r["weights"], kv=r["kv"], fraction=KV_FRACTION,
                   graph_sizes=row_graph_sizes(r), max_seq_len=row_max_seq_len(r), **run_split(r))  # fmt: skip
        s = dataclasses.replace(s, settings=dataclasses.replace(s.settings, host_request_s=host_s))
        return replica_tokens_s(s, r["isl"], r["osl"])

    if tokens(lo) <= r["published_tok_s"]:
        return None
    for _ in range(steps):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if tokens(mid) > r["published_tok_s"] else (lo, mid)
    return math.sqrt(lo * hi)


def host_floor_rows(rows: list[dict]) -> list[dict]:
    """The v1.0 rows kvplan over-predicts by more than 20% (TensorRT-LLM's PyTorch executor, a Python host loop),
    each with the host time per request that would explain its miss (:func:`implied_host_request_s`)."""
    out = []
    for r in rows:
        if r["source"] == "trtllm-1.0" and "ratio" in r and steady_ratio(r) > 1 + TARGET:
            out.append({**r, "implied_host_us": implied_host_request_s(r) * 1e6})
    return out


def host_floor_lines(rows: list[dict], *, markdown: bool) -> list[str]:
    """The implied host times per row and, per GPU (one host CPU each), their spread: one per-request host cost
    would give one figure per GPU. ``all ranks``: the same time over every rank's requests (each attention-DP rank's
    loop handling all ranks' requests, the implied figure / DP), the other reading for the DP rows."""
    out = []
    if markdown:
        out += ["| model | GPU | split | ISL/OSL | kvplan / published | implied host us per request | all ranks |",
                "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        r["all_ranks_us"] = r["implied_host_us"] / run_split(r).get("dp", 1)
        cells = (r["label"], r["gpu"], split_label(r), f"{r['isl']}/{r['osl']}", f"x{steady_ratio(r):.2f}",
                 f"{r['implied_host_us']:.0f}", f"{r['all_ranks_us']:.0f}")  # fmt: skip
        out.append("| " + " | ".join(cells) + " |" if markdown else "host-floor " + "  ".join(cells))
    for key, what in (("implied_host_us", "per request"), ("all_ranks_us", "per request of all ranks")):
        by_gpu: dict[str, list[float]] = {}
        for r in rows:
            by_gpu.setdefault(r["gpu"], []).append(r[key])
        for gpu, us in by_gpu.items():
            out.append(f"host floor {gpu}: {len(us)} rows over 20%; implied host us {what} min {min(us):.0f}, "
                       f"median {statistics.median(us):.0f}, max {max(us):.0f} "
                       f"(x{max(us) / min(us):.1f} apart)")  # fmt: skip
    return out


# --dp-candidates: what each reading of the attention-DP rows that no source fixes for v1.0 would change. Nothing here
# is kept in kvplan; each is scored once per row so the next reader sees its size before looking for its source.


@contextlib.contextmanager
def eager_dp_steps():  # noqa: ANN201
    """Every step of an attention-DP context (dp > 1) priced eagerly: :func:`kvplan.latency._engine_ctx` with
    ``eager=True``, so decode steps take the eager kernel cost and give up what kvplan grants graph steps only (the
    shared experts' second stream, ``Overlap.shared_experts_graph_only``). TensorRT-LLM replays a CUDA graph under
    attention DP only when every rank is generation-only with the same batch size (``model_engine.py``
    ``_maybe_get_cuda_graph``, a 1.0-era copy: ``tp_allgather([can_run_cuda_graph, batch_size])``,
    ``all_batch_size_equal``), which the page's padding gives (``_get_padded_batch`` pads every rank to the rounded-up
    largest); this prices the other case. Only the GPU side: the host's Python launch time of an eager step is not
    in kvplan's eager constant (fitted to aiconfigurator's kernel timings)."""
    from kvplan import latency

    original = latency._engine_ctx

    def eager(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if kwargs.get("dp", 1) > 1:
            kwargs["eager"] = True
        return original(*args, **kwargs)

    latency._engine_ctx = eager
    try:
        yield
    finally:
        latency._engine_ctx = original


def _setup_with(r: dict, *, max_batch: int | None = None, graph: bool = True, **split: object):  # noqa: ANN202
    """The row's setup with a per-rank ``max_batch`` cap, without the CUDA-graph padding (``graph=False``), or
    another ``split`` (the keywords of :func:`_setup`); otherwise as :func:`row_setup` builds it (the row's release,
    :func:`row_engine`)."""
    engine, tuning = row_engine(r)
    return _setup(r["model"], r["gpu"], weights=r["weights"], kv=r["kv"], fraction=KV_FRACTION, max_batch=max_batch,
                  graph_sizes=row_graph_sizes(r) if graph else None, engine=engine, batch_tuning=tuning,
                  max_seq_len=row_max_seq_len(r), **(split or run_split(r)))  # fmt: skip


def eager_ratio(r: dict) -> float:
    """The row's kvplan / published with its attention-DP steps eager and unpadded (:func:`eager_dp_steps`)."""
    with eager_dp_steps():
        return replica_tokens_s(_setup_with(r, graph=False), r["isl"], r["osl"]) / r["published_tok_s"]


def attention_tp_ratio(r: dict) -> float:
    """The row's kvplan / published with attention over the header's TP and the experts whole over the same ranks
    (EP): the run without ``enable_attention_dp``. The page prints that key inside ``cuda_graph_config`` in its MoE
    ``llm_options.yml``, where a 1.0-era ``tensorrt_llm/llmapi/llm_args.py`` (the one whose ``MoeConfig.backend`` lists
    CUTEDSL and DEEPGEMM) makes ``CudaGraphConfig`` a ``StrictBaseModel`` (``extra = "forbid"``): the file as printed
    is refused, so the page does not fix what the runs set. TensorRT-LLM's own perf-test configs
    (``tests/integration/defs/perf/pytorch_model_config.py``) give ``llama_v4_maverick_17b_128e_instruct_fp8`` the
    page's ``batch_sizes`` with padding and no ``enable_attention_dp``."""
    s = _setup_with(r, tp=r["tp"], ep=True)
    return replica_tokens_s(s, r["isl"], r["osl"]) / r["published_tok_s"]


def implied_rank_batch(r: dict) -> tuple[int | None, int]:
    """``(batch, capacity)``: the per-rank sequence cap (``max_batch_size``) at which kvplan's figure falls to the
    published one, by bisection, and the rank's KV capacity for requests of ISL + OSL (what kvplan's batch is bound
    by); batch None where kvplan is not above the published figure. A step model that is right with a batch that is
    too large would show one share per GPU; a missing step cost maps to a share that depends on the row."""
    s = row_setup(r)
    capacity = min(st.max_sequences(length=r["isl"] + r["osl"], prefix=0, engine=s.engine) for st in s.stages)
    if replica_tokens_s(s, r["isl"], r["osl"]) <= r["published_tok_s"]:
        return None, capacity
    lo, hi = 0, capacity  # figure(lo) <= published < figure(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        above = replica_tokens_s(_setup_with(r, max_batch=mid), r["isl"], r["osl"]) > r["published_tok_s"]
        lo, hi = (lo, mid) if above else (mid, hi)
    return hi, capacity


def dp_candidate_rows(rows: list[dict]) -> list[dict]:
    """The scored attention-DP rows with each candidate's ratio (:func:`eager_ratio`, :func:`attention_tp_ratio`)
    and the implied per-rank batch (:func:`implied_rank_batch`), beside the row's steady state (``steady``,
    :func:`steady_ratio`): every reading is a steady state, the page's finite run (:func:`run_tokens_s`) not applied."""
    out = []
    for r in rows:
        if "ratio" in r and (r.get("launch") or {}).get("enable_attention_dp"):
            batch, capacity = implied_rank_batch(r)
            out.append({**r, "steady": steady_ratio(r), "eager": eager_ratio(r), "attention_tp": attention_tp_ratio(r),
                        "per_root": per_root_ratio(r), "implied_batch": batch, "capacity": capacity})  # fmt: skip
    return out


def dp_candidate_lines(rows: list[dict], *, markdown: bool = False) -> list[str]:
    """One line (or table row) per attention-DP row of :func:`dp_candidate_rows`, then per weight dtype each
    candidate's statistics beside the steady-state ones."""
    cols = ("model", "GPU", "split", "ISL/OSL", "weights", "steady state", "eager DP steps", "attention TP + EP",
            "per-root NCCL ops, a latency each", "implied batch a rank (of the KV capacity)")  # fmt: skip
    out = ["| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"] if markdown else []
    for r in rows:
        batch = r["implied_batch"]
        implied = "-" if batch is None else f"{batch} ({batch / r['capacity']:.2f})"
        cells = (r["label"], r["gpu"], split_label(r), f"{r['isl']}/{r['osl']}", r["weights"], f"{r['steady']:.2f}",
                 f"{r['eager']:.2f}", f"{r['attention_tp']:.2f}", f"{r['per_root']:.2f}",
                 f"{implied} of {r['capacity']}")  # fmt: skip
        out.append("| " + " | ".join(cells) + " |" if markdown else "dp-candidates " + "  ".join(cells))
    if markdown:
        out.append("")
    for weights in sorted({r["weights"] for r in rows}):
        part = [r for r in rows if r["weights"] == weights]
        cells = []
        for key, name in (
            ("steady", "steady state"),
            ("eager", "eager DP steps"),
            ("attention_tp", "attention TP + EP"),
            ("per_root", "per-root NCCL ops"),
        ):
            s = stats([{"ratio": r[key]} for r in part])
            cells.append(f"{name} {s['within_20pct']}/{s['compared']} within 20% (median |ln| "
                         f"{s['median_abs_ln']:.3f}, median signed {s['median_signed_ln']:+.3f})")  # fmt: skip
        shares = [r["implied_batch"] / r["capacity"] for r in part if r["implied_batch"] is not None]
        implied = (f"; implied batch over {len(shares)} rows kvplan overestimates: {min(shares):.2f}-{max(shares):.2f} "
                   f"of the KV capacity (median {statistics.median(shares):.2f})" if shares else "")  # fmt: skip
        out.append(f"dp-candidates {weights} attention-DP rows: " + "; ".join(cells) + implied)
    return out


# --dp-candidates, the per-root reading: the grouped NCCL ops of TensorRT-LLM's unpadded attention-DP MoE exchange,
# one latency each. With per-rank sizes (every unpadded gather passes them, equal or not) the all-gather is one
# ncclBroadcast per root rank and per tensor and the reduce-scatter one ncclReduce per root rank, all inside
# ncclGroupStart/End (cpp/tensorrt_llm/thop/allgatherOp.cpp AllgatherOp::run / run_list @135e595e; reducescatterOp.cpp
# ReducescatterOp::run @0bd88711). The gathered tensors: [x, x_sf, token_selected_experts, token_final_scales]
# (fused_moe_cutlass.py / fused_moe_wide_ep.py forward_chunk, sizes=all_rank_num_tokens unless use_dp_padding); x_sf is
# None for per-tensor FP8 and 16-bit weights and tensorrt_llm/_torch/distributed/ops.py _allgather drops it
# (filter_valid_input), so 3 tensors there and 4 for NVFP4. kvplan prices the exchange as one NCCL all-gather and one
# reduce-scatter (kvplan.latency._gather_s): 2 latencies a MoE layer where NCCL is handed (T + 1) x R ops. This reading
# charges each op NCCL's measured small-message floor at R ranks (kvplan.latency.NCCL_FITS LL base + rank term, fitted
# to aiconfigurator 0.12.0's all_gather / reduce_scatter tables: 7.6 us at 4 Hopper ranks, 11.1 at 8), i.e. as if the
# group ran its ops one after another. NCCL's own cost model does not: since v2.22 ncclPrepareTasks
# (src/enqueue.cc) prices a (function, type) bin of a group at latency x ceil(tasks / channels)
# (src/graph/tuning.cc ncclTopoGetAlgoTime, numPipeOps = nTasksPerChannel) and scheduleCollTasksToPlan spreads the
# tasks over the channels, so this is an upper bound of what the ops can add. Never kept in kvplan.
GATHERED_TENSORS = 3  # x, token_selected_experts, token_final_scales (x_sf None: dropped by filter_valid_input)
GATHERED_TENSORS_FP4 = 4  # NVFP4 adds x_sf, the block scales (run_post_quant_allgather)


def per_root_ops(ranks: int, *, fp4_gather: bool) -> int:
    """NCCL ops one unpadded attention-DP MoE exchange hands NCCL: a broadcast per root rank and gathered tensor,
    and a reduce per root rank."""
    tensors = GATHERED_TENSORS_FP4 if fp4_gather else GATHERED_TENSORS
    return (tensors + 1) * ranks


def nccl_op_floor_s(architecture: str | None, ranks: int) -> float | None:
    """One NCCL op's small-message time at ``ranks`` ranks of one NVLink domain: the LL protocol's fitted base and
    rank terms (:data:`kvplan.latency.NCCL_FITS`); None where no fit covers the architecture."""
    from kvplan.latency import NCCL_FITS

    fit = NCCL_FITS.get(architecture or "")
    return None if fit is None else fit.ll_base_s + fit.ll_rank_s * (ranks - 2)


def moe_layer_count(spec: ModelSpec, layers: range) -> int:
    """MoE layers among ``layers`` (as kvplan.latency._dp_collectives_s counts them)."""
    from kvplan.latency import _layer_keys

    return len(layers) - sum(n for (_, dense, _width), n in _layer_keys(spec, layers).items() if dense)


def per_root_extra_s(c) -> float:  # noqa: ANN001
    """Seconds one MoE layer's exchange gains when each per-root op pays :func:`nccl_op_floor_s` (the two
    latencies kvplan already prices taken off); 0 where the context gathers padded, not through NCCL, within one
    rank, across nodes or on an architecture without a fit."""
    ranks = c.moe_ranks
    if not (c.rules.moe_allgather and c.rules.moe_allgather_nccl and c.gather_unpadded) or ranks == 1:
        return 0.0
    floor = nccl_op_floor_s(c.gpu.architecture, ranks)
    if floor is None or ranks > c.gpus_per_node:
        return 0.0
    return (per_root_ops(ranks, fp4_gather=c.gather_bytes < 1.0) - 2) * floor


@contextlib.contextmanager
def replaced_for_block(module, name: str, replacement):  # noqa: ANN001, ANN201
    """``module.name`` replaced by ``replacement`` for the ``with`` block, the step memos emptied on the way in and out
    (:func:`kvplan.serving.forget_memos`, the per-spec facts kept) so no figure priced on either side of the block
    answers inside it or after it: the diagnostics' readings below, never kept in kvplan."""
    from kvplan import serving

    kept = getattr(module, name)
    setattr(module, name, replacement)
    serving.forget_memos(facts=False)
    try:
        yield
    finally:
        setattr(module, name, kept)
        serving.forget_memos(facts=False)


@contextlib.contextmanager
def per_root_op_latency():  # noqa: ANN201
    """Every attention-DP MoE layer's exchange :func:`per_root_extra_s` longer, by wrapping
    ``kvplan.latency._dp_collectives_s`` for the ``with`` block (the step memos emptied on the way in and out): the
    reading above, never kept."""
    from kvplan import latency

    priced = latency._dp_collectives_s

    def serialized(c, tokens, moe_tokens, layers, *, first):  # noqa: ANN001, ANN202
        reduce, a2a = priced(c, tokens, moe_tokens, layers, first=first)
        extra = per_root_extra_s(c)
        return reduce, a2a + (moe_layer_count(c.spec, layers) * extra if extra else 0.0)

    with replaced_for_block(latency, "_dp_collectives_s", serialized):
        yield


def per_root_terms(s) -> dict:  # noqa: ANN001
    """The reading's terms for setup ``s``: ``ops`` a MoE layer, ``moe_layers``, ``floor_s`` an op and ``added_s``
    a step (every per-root op but the two kvplan prices, at the floor, over every MoE layer)."""
    ranks = s.tp * s.dp
    fp4 = s.weights_dtype == "nvfp4" and s.gpu.fp4_dense_tflops is not None
    ops = per_root_ops(ranks, fp4_gather=fp4)
    layers = moe_layer_count(s.spec, range(s.spec.num_layers))
    floor = nccl_op_floor_s(s.gpu.architecture, ranks) or 0.0
    return {"ops": ops, "moe_layers": layers, "floor_s": floor, "added_s": layers * (ops - 2) * floor}


def implied_op_s(residual_s: float, terms: dict) -> float:
    """The time each of the per-root ops beyond kvplan's two would take for them to be the whole step residual."""
    return residual_s / (terms["moe_layers"] * (terms["ops"] - 2))


def per_root_ratio(r: dict) -> float:
    """The row's kvplan / published under :func:`per_root_op_latency`."""
    with per_root_op_latency():
        return replica_tokens_s(row_setup(r), r["isl"], r["osl"]) / r["published_tok_s"]


def decode_heavy(r: dict) -> bool:
    """A row whose steps are mostly decodes: at least 1,000 output tokens and no more prompt tokens than output ones
    (128/2048 ... 2048/2048; the rows the attention-DP residual was measured on, docs/cost.md)."""
    return r["osl"] >= 1000 and r["isl"] <= r["osl"]


def per_root_lines(rows: list[dict]) -> list[str]:
    """For each attention-DP row kvplan overestimates (the step residual positive, :func:`step_residual`): the
    reading's ops, floor and added milliseconds beside the residual and the time per op the residual implies; then,
    per model and GPU, the range of that implied time over the decode-heavy rows (:func:`decode_heavy`). One cost
    per op would show one time per GPU architecture and rank count."""
    out, implied = [], {}
    for r in rows:
        x = step_residual(r)
        if x["residual_s"] <= 0:
            continue
        t = per_root_terms(row_setup(r))
        op = implied_op_s(x["residual_s"], t)
        if decode_heavy(r):
            implied.setdefault((r["label"], r["gpu"], split_label(r), t["floor_s"]), []).append(op)
        out.append(f"dp-candidates per-root ops {r['label']:16} {r['gpu']:9} {split_label(r):8} "
                   f"{r['isl']:>5}/{r['osl']:<5} {t['ops']} ops x {t['moe_layers']} MoE layers, floor "
                   f"{t['floor_s'] * 1e6:.1f} us: +{t['added_s'] * 1e3:.1f} ms a step; residual "
                   f"{x['residual_s'] * 1e3:+.1f} ms = {op * 1e6:.1f} us an op")  # fmt: skip
    for (label, gpu, split, floor), ops in implied.items():
        out.append(f"dp-candidates per-root ops, decode-heavy {label} {gpu} {split}: {len(ops)} rows imply "
                   f"{min(ops) * 1e6:.1f}-{max(ops) * 1e6:.1f} us an op (floor {floor * 1e6:.1f} us)")  # fmt: skip
    return out


NCCL_DATA = DATA.parent / "nccl_perf.json"  # benchmarks/fit_nccl.py's sample of aiconfigurator's NCCL tables


def grouped_launch_lines(path: Path = NCCL_DATA) -> list[str]:
    """What one NCCL group of many small ops costs, measured: per GPU and rank count, the smallest message of
    nccl-tests' alltoall (one ncclGroupStart/End of a send and a receive per peer, 2 x R ops; benchmarks/fit_nccl.py
    GROUPED_OPS) beside one all_gather, and what the per-root reading would charge that group (an op's floor each)."""
    data = json.loads(path.read_text())
    out = []
    for gpu, entry in data["systems"].items():
        floor_arch = entry["architecture"]
        for ranks in ("4", "8"):
            (a2a_bytes, a2a_s), (ag_bytes, ag_s) = (
                entry["points"]["alltoall"][ranks][0],
                entry["points"]["all_gather"][ranks][0],
            )
            ops = 2 * int(ranks)
            floor = nccl_op_floor_s(floor_arch, int(ranks)) or 0.0
            out.append(f"dp-candidates grouped launch {gpu} {ranks} ranks (NCCL {entry['nccl_dir']} tables): one "
                       f"group of {ops} sends and receives ({a2a_bytes} B) {a2a_s * 1e6:.1f} us, one all_gather "
                       f"({ag_bytes} B) {ag_s * 1e6:.1f} us; a latency per op would make the group {ops} x "
                       f"{floor * 1e6:.1f} = {ops * floor * 1e6:.0f} us")  # fmt: skip
    return out


def per_root_mlperf_lines(rows: list[dict], datasets: dict) -> list[str]:
    """The MLPerf attention-DP runs (DeepSeek-R1 on 8 x B200, NVFP4: WIDEEP's all-gather of 4 tensors on a GPU without
    MNNVL, the row's note) scored as configured and under :func:`per_root_op_latency`, with the Offline run's step
    residual (:func:`offline_step_residual_s`) as a time per op."""
    out = []
    for r in rows:
        if not r.get("attention_dp") or "ratio" not in r:
            continue
        t = per_root_terms(_mlperf_setup(r))
        with per_root_op_latency():
            reading = score_mlperf(r, datasets)["ratio"]
        line = (f"dp-candidates per-root ops MLPerf {r['source']} {r['label']} {r['scenario']}: {t['ops']} ops x "
                f"{t['moe_layers']} MoE layers, floor {t['floor_s'] * 1e6:.1f} us: +{t['added_s'] * 1e3:.1f} ms a "
                f"step; x{r['ratio']:.2f} -> x{reading:.2f}")  # fmt: skip
        if r["scenario"] == "Offline":
            _, residual = offline_step_residual_s(r, datasets)
            line += f"; residual {residual * 1e3:+.1f} ms = {implied_op_s(residual, t) * 1e6:.1f} us an op"
        out.append(line)
    return out


# An attention-DP run whose batch is published: NVIDIA/TensorRT-LLM#3439 (2025-04-10, "perf: Eliminate the need for
# attention DP padding when possible", https://github.com/NVIDIA/TensorRT-LLM/pull/3439), DeepSeek-R1-FP8 on 8 x H200
# with trtllm-bench throughput, before that PR: 4.9006 requests/s, 10,036.3364 output and 15,054.5046 total tokens/s
# (2,048 output and 1,024 prompt tokens a request), "the achieved concurrency is 159 requests per GPU".
KNOWN_BATCH_ADP = {"model": "deepseek-v3", "gpu": "h200", "dp": 8, "weights": "fp8", "kv": "fp8", "isl": 1024,
                   "osl": 2048, "rank_batch": 159, "output_tok_s": 10036.3364}  # fmt: skip


def known_batch_line(run: dict = KNOWN_BATCH_ADP) -> str:
    """kvplan's step for :data:`KNOWN_BATCH_ADP` with its batch capped at the published concurrency, against the step
    that concurrency and the published throughput give (``rank_batch x dp / output tok/s``): a batch-free check of the
    attention-DP step, and the figure kvplan gives with its own KV-bound batch beside it."""
    from kvplan.serving import Lengths, max_rate, serve

    inp, out = Lengths.of(run["isl"]), Lengths.of(run["osl"])
    published_step = run["rank_batch"] * run["dp"] / run["output_tok_s"]
    figures = []
    for cap in (run["rank_batch"], None):
        s = _setup(run["model"], run["gpu"], 1, weights=run["weights"], kv=run["kv"], fraction=KV_FRACTION,
                   max_batch=cap, dp=run["dp"], ep=True)  # fmt: skip
        top = max_rate(s, input_len=inp, output_len=out)
        at = serve(s, rate_rps=top * 0.999, input_len=inp, output_len=out, with_max_rate=False, with_p90=False,
                   with_p99=False, full_start=True)  # fmt: skip
        figures.append((top * run["osl"] / run["output_tok_s"], at.step_s, at.step_batch / run["dp"]))
    (capped, step, batch), (uncapped, _, own) = figures
    return (f"dp-candidates known batch: {run['model']} {run['gpu']} DP{run['dp']} EP{run['dp']} "
            f"{run['isl']}/{run['osl']} at {run['rank_batch']} a rank (TensorRT-LLM#3439): published step "
            f"{published_step * 1e3:.1f} ms, kvplan {step * 1e3:.1f} ms at {batch:.0f} a rank, x{capped:.2f}, residual "
            f"{(published_step - step) * 1e3:+.1f} ms; kvplan's own batch {own:.0f} a rank: "
            f"x{uncapped:.2f}")  # fmt: skip


# The FP8 attention-DP rows of a later version of the same page (NVIDIA/TensorRT-LLM
# docs/source/performance/perf-overview.md with the per-GPU "Performance Summary - All Networks" tables and
# `enable_attention_dp: true` at the top level of the MoE llm_options.yml; read through the code index, which does not
# name its commit): output tokens/s per GPU, DEP = attention DP x EP over that many GPUs. Not the v1.0 release, so
# scored apart with the v1.0 setup (kv fraction 0.95, the same CUDA-graph sizes), never in the statistics above.
LATER_PAGE_DEP_ROWS = (
    ("qwen3-235b-a22b", "h100-sxm", 8, ((1000, 1000, 1932), (1024, 1024, 1935), (1024, 8192, 873))),
    ("qwen3-235b-a22b", "h200", 4, ((1000, 1000, 3165), (1024, 1024, 3268), (1024, 8192, 1417), (8192, 1024, 627),
                                    (32768, 1024, 134))),
    ("llama-4-maverick-17b-128e", "h200", 8, ((1000, 1000, 4146), (1024, 1024, 4180), (1024, 8192, 1157),
                                              (1024, 32768, 679), (8192, 1024, 1276))),
)  # fmt: skip


def later_page_lines() -> list[str]:
    """kvplan / published for :data:`LATER_PAGE_DEP_ROWS` (per GPU): whether the attention-DP pattern (decode-heavy
    rows optimistic, long prompts pessimistic) outlives v1.0."""
    out = []
    for model, gpu, dp, points in LATER_PAGE_DEP_ROWS:
        cells = []
        for isl, osl, per_gpu in points:  # each point a trtllm-bench run: max_seq_len its ISL + OSL (row_max_seq_len)
            s = _setup(model, gpu, 1, weights="fp8", kv="fp8", fraction=KV_FRACTION, dp=dp, ep=True,
                       graph_sizes=V10_GRAPH_BATCH_SIZES, max_seq_len=isl + osl)  # fmt: skip
            cells.append(f"{isl}/{osl} x{replica_tokens_s(s, isl, osl) / dp / per_gpu:.2f}")
        out.append(f"dp-candidates later page: {model} {gpu} DEP{dp}: " + "; ".join(cells))
    return out


def replica_tokens_s(s, isl: int, osl: int, *, output_len=None) -> float:  # noqa: ANN001
    """Output tokens/s of one replica at its highest sustainable rate; ``output_len`` (a :class:`Lengths` of mean
    ``osl``): the outputs' spread where one is known (:func:`mlperf_output`), else every output ``osl`` long."""
    from kvplan.serving import Lengths, max_rate

    return max_rate(s, input_len=Lengths.of(isl), output_len=output_len or Lengths.of(osl)) * osl


# The TensorRT-LLM tables' runs are finite. Each is `prepare_dataset.py token-norm-dist --num-requests=$num_requests
# --input-stdev=0 --output-stdev=0` (every request of the row's ISL and OSL) run by `trtllm-bench throughput`, "an
# offline maximum throughput scenario such that all requests are queued in rapid succession", and the figure is every
# output token over the run's total latency, the first request's start to the last one's end
# (tensorrt_llm/bench/dataclasses/reporting.py StatsKeeper.generate_statistics_summary: total_latency_ns = end_time -
# start_time; the v0.17 page's example output: 3,000 requests x 128 tokens / 16.4061 s = 23,406 tok/s, its "Token
# Throughput"). $num_requests by (ISL, OSL): perf-overview.md "Preparing a Dataset", the same table on the v1.0 page
# (@00f37686, which adds 1000/2000) and the v0.17 one (@258c7540): "for longer input/output sequence lengths, requests
# remain in the system longer and therefore require less requests to achieve steady state".
TRTLLM_NUM_REQUESTS = {(128, 128): 30000, (128, 2048): 3000, (128, 4096): 1500, (1000, 2000): 1500,
                       (2048, 128): 3000, (2048, 2048): 1500, (5000, 500): 1500, (1000, 1000): 3000,
                       (500, 2000): 3000, (20000, 2000): 1000}  # fmt: skip
# A batch the run holds for at least this share of its steps is priced on its own (one ``step_s_at`` call); the others
# by linear interpolation of the step time between such batches (:func:`finite_run_tokens_s`). A cost bound, not a
# fit: a batch held for fewer steps moves the run's time by less than this share times the interpolation's error.
EXACT_STEP_SHARE = 0.01


def run_steps(*, requests: int, ranks: int, places: int, isl: int, osl: int, budget: int) -> dict[int, int]:
    """Steps of a finite run by the requests its busiest rank runs in them: ``{running: steps}``.

    The run as TensorRT-LLM schedules it (:func:`finite_run_tokens_s`): the busiest rank's ``ceil(requests / ranks)``
    equal requests all waiting at the start; each step the requests admitted ``osl`` steps before have made their
    ``osl`` tokens and leave (the prompt's step makes the first token: the context phase returns it), then waiting
    requests are admitted while fewer than ``places`` run (the capacity scheduler,
    cpp/tensorrt_llm/batch_manager/capacityScheduler.cpp GuaranteedNoEvictScheduler: a request is scheduled only if
    the blocks to its completion are free, so with equal requests a whole request's place) and their prompts fit the
    step's ``budget`` tokens less one per running request (MicroBatchScheduler::operator(),
    cpp/tensorrt_llm/batch_manager/microBatchScheduler.cpp: a generation request counts its beam width, 1, against
    ``maxNumTokensRuntime``; a context request without chunking its whole prompt, and the loop stops at the first that
    does not fit). A prompt longer than the budget is chunked: the budget's tokens a step go to it until it is whole.
    """
    busiest = math.ceil(requests / ranks - 1e-9)
    cohorts: deque[tuple[int, int]] = deque()  # (the step a cohort was admitted in, its requests), oldest first
    held: dict[int, int] = {}
    running, waiting, carry, step = 0, busiest, 0.0, 0
    while waiting or running:
        if cohorts and cohorts[0][0] + osl == step:
            running -= cohorts.popleft()[1]
        left, room = max(0, budget - running), max(0, places - running)
        if isl <= budget:
            can = left // isl
        else:  # chunked: the budget's tokens go to the next prompt while a place waits for it
            carry += left / isl if room and waiting else 0.0
            can = math.floor(carry + 1e-9)
        new = min(can, room, waiting)
        carry = carry - new if new < room and new < waiting else 0.0
        if new:
            cohorts.append((step, new))
            running += new
            waiting -= new
        # nothing changes until the next cohort leaves where no request can enter: count those steps at once
        span = 1
        if cohorts and (not waiting or running >= places or (isl <= budget and budget - running < isl)):
            span = cohorts[0][0] + osl - step
        if running:
            held[running] = held.get(running, 0) + span
        step += span
    return held


def finite_run_tokens_s(*, requests: int, ranks: int, places: int, isl: int, osl: int, budget: int,
                        step_s_at: Callable[[int], float]) -> float:  # fmt: skip
    """Output tokens/s of a run of ``requests`` equal requests queued at once on ``ranks`` lockstep ranks, each
    admitting at most ``places`` of them at a time, over the run's whole duration.

    Every rank receives ``requests / ranks`` of them: TensorRT-LLM spreads new requests over the attention-DP ranks by
    active tokens and requests, up to ``expected_num_active_requests``, the ceiling of all active and new requests over
    the ranks (tensorrt_llm/_torch/pyexecutor/executor_request_queue.py ``_balance_requests_across_ranks``); one rank
    without DP. The ranks step together (attention DP: every step's MoE spans all of them), so the busiest rank's
    ``ceil(requests / ranks)`` set each step. :func:`run_steps` counts the steps the busiest rank runs each batch ``b``
    in; a step with ``b`` running lasts ``step_s_at(b)``, the mean step of the replica's steady state with ``b`` a
    rank (every rank's prompts at ``b / osl`` a step: each output token bears its request's share of the prompt
    work, :func:`run_tokens_s`). The run's figure is ``requests x osl`` over the steps' sum.

    So the waves are the engine's: every place refilled as its request ends, the first wave admitted over the steps
    its prompts take (the budget), the last one running at its own, smaller, batch and step. With requests that fill
    the places more than once and prompts that take fewer steps to admit than a request lives (the places fill
    before the first request ends), a rank's extra request past a multiple of ``places`` runs a whole further
    lifetime: that step is real for equal requests under whole-request admission and sits on the places (the KV
    pool), not on the latency model. Where the prompts take longer to admit than a request lives, the requests run
    as a pipeline and the figure is continuous in the requests and the places. ``step_s_at`` is called at each batch
    held for at least :data:`EXACT_STEP_SHARE` of the steps, at the largest and at 1 where the steps below the
    smallest of those reach that share; between them the step time is interpolated linearly (flat below the
    smallest). One wave admitted at once (``budget`` past every prompt: ``requests / ranks <= places``) runs ``osl``
    steps at the busiest rank's count ``b``: ``ranks x b / step_s_at(b)`` tokens/s over the ranks' share,
    ``requests / (ranks x b)``."""
    held = run_steps(requests=requests, ranks=ranks, places=places, isl=isl, osl=osl, budget=budget)
    total = sum(held.values())
    exact = {b for b, n in held.items() if n >= EXACT_STEP_SHARE * total}
    exact.add(max(held))
    if sum(n for b, n in held.items() if b < min(exact)) >= EXACT_STEP_SHARE * total:
        exact.add(1)
    points = sorted((b, step_s_at(b)) for b in exact)

    def step_s(b: int) -> float:
        if b <= points[0][0]:
            return points[0][1]
        hi = next(k for k, (x, _) in enumerate(points) if x >= b)
        (x0, y0), (x1, y1) = points[hi - 1], points[hi]
        return y0 + (y1 - y0) * (b - x0) / (x1 - x0)

    return requests * osl / sum(n * step_s(b) for b, n in held.items())


def run_places(s, inp, out, *, whole: bool = True) -> float:  # noqa: ANN001
    """Requests one rank of a table row's run admits at once (:func:`finite_run_tokens_s`): the steady state's sequence
    limit a rank (:func:`kvplan.serving._limits`: where the engine reserves the blocks to each request's completion,
    TensorRT-LLM's GUARANTEED_NO_EVICT, the KV pool's whole requests of ``tokens_per_block`` blocks, and at most the
    sequence cap those rules give), floored to whole requests; ``whole=False``: before the floor."""
    from kvplan import serving

    per_rank = serving._limits(s, inp, out)[0] / (s.dp * s.settings.attention_dp)
    return max(1, math.floor(per_rank + 1e-9)) if whole else per_rank


def run_setup(r: dict, *, ep: bool = True, max_batch: int | None = None, tokens: bool = True):  # noqa: ANN201
    """The setup of a TensorRT-LLM table row's run (:func:`run_tokens_s`): :func:`row_setup`'s (the run's caps,
    :func:`bench_caps`; ``tokens`` False: its ``max_batch_size`` only), at most ``max_batch`` sequences a rank below
    them, and on an attention-DP row every rank's prompts admitted in the same steps.

    Nothing in the engine aligns the ranks by default (each schedules its own requests; ``attention_dp_config``'s
    balancer is off), and kvplan's serving model takes them as independent (:func:`kvplan.serving._dp_mean_step`),
    right for requests arriving at random. The page's runs are not that: every request has the same prompt and output
    length, all are queued at the start, the request queue hands every rank the same number
    (``_balance_requests_across_ranks``: by active tokens, then requests), and every rank has the same KV pool and
    token budget, so every rank admits its prompts in the same steps and, its requests ending together, its next ones
    too, for the whole run. That is the arithmetic of kvplan's aligned ranks (``Engine.aligns_dp_prefill``, which
    TensorRT-LLM's engine gives for ``Settings.attention_dp_balance``), taken here without the balancer's holds
    (``timeout_iters`` and ``batching_wait_iters`` 0: no balancer runs, nothing is held)."""
    aligned = {"balance": True, "timeout_iters": 0, "batching_wait_iters": 0}
    dp = (r.get("launch") or {}).get("enable_attention_dp")
    engine, tuning = row_engine(r)
    caps = bench_caps(r, tokens=tokens)
    if max_batch is not None:
        caps["max_batch"] = min(max_batch, caps.get("max_batch", max_batch))
    return _setup(r["model"], r["gpu"], weights=r["weights"], kv=r["kv"], fraction=KV_FRACTION, **caps,
                  graph_sizes=row_graph_sizes(r), engine=engine, batch_tuning=tuning, **(aligned if dp else {}),
                  max_seq_len=row_max_seq_len(r), **run_split(r, ep=ep))  # fmt: skip


def run_tokens_s(r: dict, *, ep: bool = True, places_scale: float = 1.0, tokens: bool = True) -> float:
    """kvplan's output tokens/s for a TensorRT-LLM table row as the page ran it: the row's ``$num_requests``
    (:data:`TRTLLM_NUM_REQUESTS`) through :func:`finite_run_tokens_s`, the places the KV pool's whole requests a rank
    (:func:`run_places`), the step budget the setup's ``max_num_tokens``, and a step with ``b`` a rank the steady
    state's mean step there (:func:`run_step_s`), all of the run's setup (:func:`run_setup`: an attention-DP row's
    ranks aligned); the steady state where the page gives no count for the row's lengths. ``places_scale`` (1: as
    modelled) scales the places before flooring them to whole requests: the sensitivity :func:`finite_run_lines`
    prints. ``tokens`` False: without trtllm-bench's ``max_num_tokens`` (:func:`bench_caps`)."""
    from kvplan.serving import Lengths

    s = run_setup(r, ep=ep, tokens=tokens)
    requests = TRTLLM_NUM_REQUESTS.get((r["isl"], r["osl"]))
    if requests is None:
        return replica_tokens_s(s, r["isl"], r["osl"])
    inp, out = Lengths.of(r["isl"]), Lengths.of(r["osl"])
    places = run_places(s, inp, out, whole=False) * places_scale
    return finite_run_tokens_s(requests=requests, ranks=s.dp, places=max(1, math.floor(places + 1e-9)), isl=r["isl"],
                               osl=r["osl"], budget=run_budget(s),
                               step_s_at=lambda b: run_step_s(s, r["isl"], r["osl"], b))  # fmt: skip


def run_budget(s) -> int:  # noqa: ANN001
    """A rank's step budget in tokens, as kvplan's steady state takes it (:func:`kvplan.serving._budget`: the setup's
    ``max_num_tokens``, TensorRT-LLM's default 8,192 here)."""
    from kvplan import serving

    return serving._budget(s, None)


def run_step_s(s, isl: int, osl: int, batch: int) -> float:  # noqa: ANN001
    """The replica's mean step with ``batch`` requests decoding a rank and every rank's prompts entering at the rate
    they leave, ``batch / osl`` a step (:func:`kvplan.serving._mean_step`, the step kvplan's steady state solves for:
    its decode-only steps CUDA-graph padded and its prompt steps as the engine's rule for the ranks gives them), the
    decodes at the steady state's mean context. Stop 27's model took the steady state capped at ``batch`` by
    ``max_batch_size`` instead, which also drops the CUDA-graph padding past that cap (TensorRT-LLM pads no further
    than ``max_batch_size``, kvplan.engines.trtllm ``graph_rows``) that the page's runs, launched without one, kept:
    188 a rank padded to 256 on the Qwen3-235B-A22B rows."""
    from kvplan import serving
    from kvplan.serving import Lengths

    n = batch * s.dp
    context = serving._decode_context(Lengths.of(isl), Lengths.of(osl))
    return serving._mean_step(s, n=n, p=n * isl / osl, prompt=isl, budget=run_budget(s), context=context, ep=False)


def stepwise_run_tokens_s(r: dict, *, tokens: bool = True) -> float | None:
    """A table row's run played request by request on kvplan's own steps (benchmarks/mlperf_offline_drain.py
    ``run_query``: the ranks in lockstep, each step priced by :func:`kvplan.serving._step` at its decodes, the busiest
    rank's prompt tokens and the decodes' mean context), with :func:`run_steps`' admission (the pool's whole requests
    a rank, whole prompts into the step's budget): each prompt burst priced as the step it is, where
    :func:`finite_run_tokens_s` spreads the prompts' work over the outputs at each batch. A check on that spreading;
    None where a prompt is longer than the budget (``run_query`` admits whole prompts only). ``tokens`` False:
    without trtllm-bench's ``max_num_tokens`` (:func:`run_setup`)."""
    here = str(Path(__file__).resolve().parent)  # the sibling script, also when this one was imported from elsewhere
    if here not in sys.path:
        sys.path.insert(0, here)
    import mlperf_offline_drain

    from kvplan import serving
    from kvplan.serving import Lengths

    s = run_setup(r, tokens=tokens)
    budget = run_budget(s)
    if r["isl"] > budget:
        return None
    places = run_places(s, Lengths.of(r["isl"]), Lengths.of(r["osl"]))

    def step_s(decodes: int, busiest: int, prompts: int, context: int) -> float:
        # the busiest rank's whole prompts, each its own attention (all of one length here)
        whole = max(1.0, busiest / r["isl"])
        return serving._step(s, n=float(decodes), p=float(busiest), context=context, p_all=float(prompts),
                             prompts=whole)  # fmt: skip

    query = [(r["isl"], r["osl"])] * TRTLLM_NUM_REQUESTS[(r["isl"], r["osl"])]
    return mlperf_offline_drain.run_query(query, ranks=s.dp, cap=places, budget=budget, step_s=step_s).tokens_s()


def finite_run_lines(rows: list[dict]) -> list[str]:
    """``--finite-run``: each attention-DP row's run (:func:`run_tokens_s`) with its busiest rank's requests, the places
    (the pool's whole requests, and the reservations it holds before the floor), the steady state's batch at its
    highest sustainable rate (which no longer enters the run), the waves and the share of the steps spent below the
    places, then the ratio with the pool 1 % smaller and larger (a step wherever the places cross a multiple of the
    busiest rank's requests: whole-request admission) and the run played step by step
    (:func:`stepwise_run_tokens_s`)."""
    from kvplan.serving import Lengths, max_rate, serve

    out = []
    for r in rows:
        if not (r.get("launch") or {}).get("enable_attention_dp"):
            continue
        requests = TRTLLM_NUM_REQUESTS[(r["isl"], r["osl"])]
        s = run_setup(r)
        inp, out_len = Lengths.of(r["isl"]), Lengths.of(r["osl"])
        top = max_rate(s, input_len=inp, output_len=out_len)
        at = serve(s, rate_rps=top * 0.999, input_len=inp, output_len=out_len, with_max_rate=False, with_p90=False,
                   with_p99=False, full_start=True)  # fmt: skip
        places, pool = run_places(s, inp, out_len), run_places(s, inp, out_len, whole=False)
        busiest = math.ceil(requests / s.dp - 1e-9)
        held = run_steps(requests=requests, ranks=s.dp, places=places, isl=r["isl"], osl=r["osl"],
                         budget=run_budget(s))  # fmt: skip
        below = sum(n for b, n in held.items() if b < min(places, busiest)) / sum(held.values())
        ratios = [run_tokens_s(r, places_scale=k) / r["published_tok_s"] for k in (1.0, 0.99, 1.01)]
        stepwise = stepwise_run_tokens_s(r)
        played = "prompts past the budget" if stepwise is None else f"x{stepwise / r['published_tok_s']:.3f}"
        out.append(f"finite run {r['label']:16} {r['gpu']:9} {r['isl']:>5}/{r['osl']:<5} {busiest:4} a rank, places "
                   f"{places:4} (pool {pool:7.2f}), steady batch {at.step_batch / s.dp:7.2f}, "
                   f"{math.ceil(busiest / places)} wave(s), {below:5.1%} of steps below: x{ratios[0]:.3f}; pool -1 % "
                   f"x{ratios[1]:.3f}, +1 % x{ratios[2]:.3f}; step by step {played}")  # fmt: skip
    return out


# The loads :func:`top_state` prices below the limits: shares of the bound from 0.2 to 1 in steps of 0.005 (a cost
# bound, not a fit: a peak narrower than the step is not seen)
TOP_SHARES = tuple(0.2 + 0.8 * k / 160 for k in range(161))
# The least root at 0.999 of the top that sits within this share of the bound counts as holding it (the top's own
# resolution, kvplan.serving._REL_TOL x 50 = 0.5 %, and the 0.999 leave it up to ~1 % below on a steep curve)
TOP_HOLDS = 0.98


def top_state(r: dict) -> dict:
    """What kvplan's steady state holds at a table row's highest sustainable rate (``--top-state``), on the run's
    setup (:func:`run_setup`): what binds there (``kvplan.serving._bounds``: the KV pool's whole requests, the
    sequence cap, or the token budget), ``share``, the least root at 0.999 of ``max_rate`` over the bound (the state
    ``serve`` reports just under saturation), and the requests a second the steps make at each load below the bound
    (:data:`TOP_SHARES`; ``u / S(u)``, ``kvplan.serving._load_step``) against the top's, the step at the bound: their
    peak (``peak``, its share ``at``) and the least share of the bound whose rate is within 1 % of the top
    (``near``). ``kind``: ``holds`` (``share`` >= :data:`TOP_HOLDS`), ``hump`` (the steps make more below the bound
    than at it, by more than 0.5 %: a CUDA-graph size or the eager steps just under the bound; the engine at
    saturation holds the bound and its slower steps, so the rates between are not sustained, the saturation rule of
    ``kvplan.serving._solve``) or ``flat`` (the rate within ~1 % of the top over a wide stretch under the bound:
    near the top the least root moves far on a small change of the rate)."""
    from kvplan import serving
    from kvplan.serving import Lengths, max_rate, serve

    s = run_setup(r)
    inp, out = Lengths.of(r["isl"]), Lengths.of(r["osl"])
    limit, name = serving._limits(s, inp, out)
    load = serving._Load(s, 1.0, inp, out, run_budget(s), limit, name)
    u_hi, bound, p_cap = serving._bounds(load)
    context = serving._decode_context(inp, out)
    rates = [(f * u_hi / serving._load_step(load, f * u_hi, p_cap=p_cap, context=context), f) for f in TOP_SHARES]
    top = rates[-1][0]
    peak, at = max(rates)
    near = min(f for rate, f in rates if rate >= 0.99 * top)
    served = serve(s, rate_rps=0.999 * max_rate(s, input_len=inp, output_len=out), input_len=inp, output_len=out,
                   with_max_rate=False, with_p90=False, with_p99=False)  # fmt: skip
    share = served.step_batch / (out.mean * u_hi)
    kind = "holds" if share >= TOP_HOLDS else "hump" if peak > 1.005 * top else "flat"
    return {"bound": bound, "per_rank": out.mean * u_hi / s.dp, "share": share, "peak": peak / top, "at": at,
            "near": near, "kind": kind}  # fmt: skip


def top_state_lines(rows: list[dict]) -> list[str]:
    """``--top-state``: every TensorRT-LLM table row's :func:`top_state`, then the count of each kind by what binds."""
    out, counts = [], {}
    for r in rows:
        if "not_modelled" in r or not r["source"].startswith("trtllm"):
            continue
        x = top_state(r)
        counts[(x["kind"], x["bound"])] = counts.get((x["kind"], x["bound"]), 0) + 1
        out.append(f"top state {r['source']:11} {r['label'][:16]:16} {r['gpu']:9} {r['isl']:>5}/{r['osl']:<5} "
                   f"{x['bound']:12} {x['per_rank']:8.1f} a rank: least root at 0.999 of the top {x['share']:.3f} of "
                   f"it; peak rate x{x['peak']:.3f} of the top at {x['at']:.2f}, within 1 % from {x['near']:.2f}: "
                   f"{x['kind']}")  # fmt: skip
    total = sum(counts.values())
    for kind in ("holds", "hump", "flat"):
        parts = ", ".join(f"{b} {n}" for (k, b), n in sorted(counts.items()) if k == kind)
        out.append(f"top state {kind}: {sum(n for (k, _), n in counts.items() if k == kind)} of {total} ({parts})")
    return out


def run_decode_terms(r: dict) -> dict:
    """For an attention-DP row as the page ran it (:func:`run_tokens_s`): the run's ratio, the decode step at the run's
    batch a rank (the steady state's places, or ``$num_requests / ranks`` where fewer; CUDA-graph padded, the mean
    context ``ISL + OSL / 2``) by operation class, and the time a step would need added for kvplan to meet the published
    figure at that batch, ``step x (ratio - 1)`` (a decode-heavy row's run is almost all such steps)."""
    from kvplan.latency import mixed_step_latency
    from kvplan.serving import Lengths, max_rate, serve

    ratio = run_tokens_s(r) / r["published_tok_s"]
    s = run_setup(r)
    inp, out = Lengths.of(r["isl"]), Lengths.of(r["osl"])
    top = max_rate(s, input_len=inp, output_len=out)
    at = serve(s, rate_rps=top * 0.999, input_len=inp, output_len=out, with_max_rate=False, with_p90=False,
               with_p99=False, full_start=True)  # fmt: skip
    batch = min(at.step_batch / s.dp, TRTLLM_NUM_REQUESTS[(r["isl"], r["osl"])] / s.dp)
    t = mixed_step_latency(s.spec, s.gpu, decode_seqs=batch * s.dp, decode_context=r["isl"] + r["osl"] // 2,
                           prefill_tokens=0, tp=s.tp, dp=s.dp, kv_dtype_name=s.kv_dtype,
                           weights_dtype=s.weights_dtype, engine=s.engine.key, expert_parallel=s.ep,
                           padded_rank_seqs=s.engine.graph_rows(s.settings, batch), settings=s.settings)  # fmt: skip
    return {"ratio": ratio, "batch": batch, "times": t, "needed_s": t.total * (ratio - 1)}


def run_residual_lines(rows: list[dict]) -> list[str]:
    """The decode-heavy attention-DP rows (:func:`decode_heavy`) as the page ran them (:func:`run_decode_terms`): the
    step time each needs added, beside kvplan's MoE, attention and GEMM times, and that need as a share of each. One
    operation class that kvplan prices too fast by one factor would show one share per GPU across the rows."""
    out = []
    for r in rows:
        if not ((r.get("launch") or {}).get("enable_attention_dp") and decode_heavy(r)):
            continue
        x = run_decode_terms(r)
        t, need = x["times"], x["needed_s"]
        out.append(f"run residual {r['label']:16} {r['gpu']:9} {r['isl']:>5}/{r['osl']:<5} {x['batch']:6.1f} a rank "
                   f"x{x['ratio']:.2f}: step {t.total * 1e3:5.1f} ms needs {need * 1e3:+5.1f} ms; moe "
                   f"{t.moe * 1e3:4.1f} attention {t.attention * 1e3:4.1f} gemm {t.gemm * 1e3:4.1f} ms; need / moe "
                   f"{need / t.moe:+.2f}, / attention {need / t.attention:+.2f}, "
                   f"/ gemm {need / t.gemm:+.2f}")  # fmt: skip
    return out


def steady_ratio(r: dict) -> float:
    """A scored row's steady-state kvplan / published (``ratio_steady``): what the diagnostics that rescore a row under
    another reading (:func:`dp_candidate_lines`, :func:`balance_lines`, :func:`host_floor_rows`) set their own
    steady-state figures beside."""
    return r.get("ratio_steady", r["ratio"])


def compare_runs(runs: list[dict]) -> list[dict]:
    """Each table row scored: ``kvplan_tok_s`` / ``ratio`` as the page ran it (:func:`run_tokens_s`), the steady state
    beside it (``kvplan_steady_tok_s`` / ``ratio_steady``)."""
    out = []
    for r in runs:
        row = dict(r)
        if "not_modelled" not in r:
            row["kvplan_tok_s"] = run_tokens_s(r)
            row["ratio"] = row["kvplan_tok_s"] / r["published_tok_s"]
            row["kvplan_steady_tok_s"] = _row_tokens_s(r)
            row["ratio_steady"] = row["kvplan_steady_tok_s"] / r["published_tok_s"]
            if (r.get("launch") or {}).get("enable_attention_dp") and r["launch"].get("ep") is None:
                # ep_size not stated: the other reading (experts sliced over the ranks) is shown beside it
                row["ratio_ep1"] = run_tokens_s(r, ep=False) / r["published_tok_s"]
        out.append(row)
    return out


def _mlperf_isl(r: dict, datasets: dict) -> int:
    """The benchmark set's mean input length (tokens), rounded: what kvplan serves every request with."""
    return round(datasets[r["dataset"]]["input_mean"])


def output_cv_from_latency(log: dict) -> float:
    """The outputs' coefficient of variation a Server log implies: its latency percentiles (``latency_s``, quantile ->
    seconds, the min at 0 and the max at 1) with the quantile function linear between them, its mean and second
    moment integrated piece by piece (``(a + b) / 2`` and ``(a^2 + ab + b^2) / 3`` over each piece), and ``cv = sd /
    (mean - ttft_mean_s)``: a request's latency is its TTFT plus its output times a TPOT that varies little, so the
    latency's spread less the TTFT is the outputs'."""
    points = sorted((float(q), s) for q, s in log["latency_s"].items())
    m1 = m2 = 0.0
    for (u0, a), (u1, b) in itertools.pairwise(points):
        m1 += (u1 - u0) * (a + b) / 2
        m2 += (u1 - u0) * (a * a + a * b + b * b) / 3
    return math.sqrt(m2 - m1 * m1) / (m1 - log["ttft_mean_s"])


def mlperf_output(dataset: dict, osl: int):  # noqa: ANN201
    """The run's outputs as kvplan serves them: the log's mean ``osl``, and where the set's outputs' spread is known
    (``output_cv`` on the set, its source beside it: the reference model's own outputs, or for Llama-2 NVIDIA's
    Server logs, :func:`output_cv_from_latency`) the standard deviation ``cv x osl`` (the submitted model's lengths
    taken to vary so). The sequences in flight are then the longer ones (:func:`kvplan.serving._in_flight_output`)."""
    from kvplan.serving import Lengths

    cv = dataset.get("output_cv")
    return Lengths.of(osl) if cv is None else Lengths.of(osl, sd=cv * osl)


def _server_tokens_s(s, r: dict, dataset: dict, isl: int, osl: int) -> float:  # noqa: ANN001
    """One replica's output tokens/s at the highest rate within the Server run's TTFT/TPOT limits (kvplan's p99)."""
    from kvplan.serving import Lengths
    from kvplan.slo import Targets, rate_within_targets

    p90 = max(isl, round(dataset["input_p90"]))
    inp = Lengths.of(isl, p90, max(p90, round(dataset["input_p99"])), sd=dataset.get("input_sd"))
    targets = Targets(rate_rps=1.0, input_len=inp, output_len=mlperf_output(dataset, osl), ttft_s=r["ttft_p99_s"],
                      tpot_s=r["tpot_p99_s"], percentile="p99")  # fmt: skip
    return rate_within_targets(s, targets) * osl


def mlperf_split(r: dict) -> dict:
    """kvplan's split for an MLPerf row: the config's ``tensor_parallelism`` and ``pipeline_parallelism``, or, where
    it sets TensorRT-LLM's ``enable_attention_dp`` (``attention_dp`` on the row), every GPU of the TP group its own
    attention DP rank (tp 1, dp = the config's TP) with the routed experts whole over them when
    ``moe_expert_parallelism`` (``ep`` on the row) is above 1, as :func:`run_split` scores the engine tables."""
    if r.get("attention_dp"):
        return {"tp": 1, "dp": r["tp"], "ep": r.get("ep", 1) > 1, "pp": r.get("pp", 1)}
    return {"tp": r["tp"], "pp": r.get("pp", 1)}


# The MLPerf runs of Llama-2-70B, Mixtral-8x7B and Llama-3.1-405B (v4.1, v5.0, v5.1) ran TensorRT engines under NVIDIA's
# harness on TensorRT-LLM's C++ executor (``tensorrt_engine`` on the row, the files that show it in its ``stack``):
# kvplan scores them with its TensorRT-engine release (:data:`V017_ENGINE`: fp8 weights streamed at the 16-bit share
# under the static fp8 activation scale that the engine's FP8Linear fuses into the GEMM, the whole sequence attended on
# sliding-window layers, tokens_per_block given at the build) with the build's ``tokens_per_block`` where the run's
# own file sets it (``tokens_per_block`` on the row; unset: the engine build's default, the release's 64) and the
# executor's batch-size tuner off: the harness passes ``gpu_batch_size`` as ``max_batch_size`` and its runtime flags'
# default is ``enable_batch_size_tuning: False`` (ykamiset/inference_results_v5.1 @6d54ab5e closed/NVIDIA/code/llmlib/
# config.py ``TrtllmHarnessConfig.DEFAULT_RUNTIME_FLAGS``, passed to ``DynamicBatchConfig`` by cores/
# trtllm_executor_core.py @e9ccad4d); no config read sets it. What the runs had that the release does not share is kept
# on the row's ``stack`` (MAX_UTILIZATION scheduling, fused plugins), unpriced. The DeepSeek-R1 runs ran the PyTorch
# backend (their config's ``trtllm_backend``), before PR #12597: ``trtllm@0.20``.
def mlperf_release(r: dict) -> str:
    """The kvplan engine release an MLPerf run is scored with: ``trtllm@0.17`` for a TensorRT-engine run (the row's
    ``tensorrt_engine``), ``trtllm@0.20`` (PyTorch backend, before PR #12597) otherwise."""
    return V017_ENGINE if r.get("tensorrt_engine") else V020_ENGINE


# NVIDIA's MLPerf harness runs TensorRT-LLM's executor with CapacitySchedulerPolicy.MAX_UTILIZATION: v5.1's
# TrtllmHarnessConfig.DEFAULT_RUNTIME_FLAGS 'batch_scheduler_policy': 'max_util' (ykamiset/inference_results_v5.1
# @6d54ab5e closed/NVIDIA/code/llmlib/config.py), passed to the executor by cores/trtllm_executor_core.py @e9ccad4d;
# the v5.1 per-system files of the B200 Llama-2 and Llama-3.1-405B runs set it again (configs/B200-SXM-180GBx8/
# <scenario>/{llama2-70b,llama3_1-405b}.py @e9ccad4d), as do the v5.0 405B base classes (OfflineGPUBaseConfig /
# ServerGPUBaseConfig trtllm_runtime_flags); the C++ harness_llm that v4.1's LLAMA2Harness runs without a policy flag
# defaults to it (DEFINE_string(trtllm_batch_sched_policy, "max_util", ...), read through the code index in a copy
# whose round is not named). Every TensorRT-engine row carries ``capacity_scheduler_policy: "max_utilization"``
# (Settings.capacity_scheduler_policy, kvplan's --capacity-scheduler-policy); its ``stack`` says whether the run's
# own file sets it or it is inferred (the v4.1 rows and the v5.0 Llama-2 row). The DeepSeek-R1 rows (PyTorch backend)
# are left as they were: how its extra YAML carries the Server file's 'max_util' was not read (neither row moves).
MLPERF_MAX_UTIL = "max_utilization"

# NVIDIA's MLPerf harnesses run TensorRT engines without CUDA graphs: neither sets the executor's
# ExtendedRuntimePerfKnobConfig, whose cudaGraphMode defaults to false (cpp/include/tensorrt_llm/executor/executor.h
# ``bool cudaGraphMode = false``). v5.1's TrtllmExecutorCore builds trtllm.ExecutorConfig without
# extended_runtime_perf_knob_config (ykamiset/inference_results_v5.1 @e9ccad4d closed/NVIDIA/code/llmlib/cores/
# trtllm_executor_core.py; TrtllmHarnessConfig copies use_graphs into runtime_flags['use_cuda_graphs'], which that
# core never reads, code/llmlib/config.py @6d54ab5e). The C++ harness_llm takes ``use_graphs`` as a flag marked
# "TODO: enable cuda graph for the inference." that reaches no config (code/harness/harness_llm/main_llm.cc, the same
# in mlcommons/inference_results_v4.0 @e81135a6 and ykamiset/inference_results_v5.1 @e9ccad4d), and its LLMCore builds
# GptManager with TrtGptModelOptionalParams setting only overlap, KV fraction, devices, beam width and scheduler
# (code/harness/harness_llm/llm_core.cc @e9ccad4d). v4.1's LLAMA2Harness runs that binary (its own copy is not stored:
# the rounds before and after it are); v5.0's Python harness is not stored and is taken as v5.1's, as for the
# scheduler policy above. So a decode-only step of every TensorRT-engine run launches its kernels eagerly
# (Settings.cuda_graphs False, kvplan.latency.past_graph_cap); steps that carry a prompt chunk were eager already.
# The DeepSeek-R1 rows (PyTorch backend, its own cuda_graph_config) keep their graphs.
MLPERF_CUDA_GRAPHS = False


def mlperf_balance(r: dict) -> dict:
    """The attention-DP balancer as the run's config sets it: ``attention_dp_config`` on the row (TensorRT-LLM's
    ``enable_balance``, ``timeout_iters``, ``batching_wait_iters``, each row citing the config file it copies), as
    :func:`_setup`'s keywords; none where the row has no such key (the balancer off, TensorRT-LLM's default)."""
    cfg = r.get("attention_dp_config")
    if not cfg or not cfg["enable_balance"]:
        return {}
    return {"balance": True, "timeout_iters": cfg["timeout_iters"], "batching_wait_iters": cfg["batching_wait_iters"]}


def _mlperf_setup(r: dict):  # noqa: ANN202
    """The run's setup from its config: split, caps, KV fraction, the engine release (:func:`mlperf_release`) and its
    build's ``tokens_per_block``, the CUDA-graph batch sizes decode steps are padded to where the config sets
    ``cuda_graph_padding_enabled`` (``cuda_graph_batch_sizes`` on the row), the attention-DP balancer where it
    sets one (:func:`mlperf_balance`), and the executor's capacity scheduler policy where the config sets
    ``batch_scheduler_policy`` (``capacity_scheduler_policy`` on the row: :data:`MLPERF_MAX_UTIL`); a TensorRT-engine
    run without CUDA graphs (:data:`MLPERF_CUDA_GRAPHS`)."""
    sizes = r.get("cuda_graph_batch_sizes")
    return _setup(r["model"], r["gpu"], weights=r["weights"], kv=r["kv"], fraction=r["free_gpu_memory_fraction"],
                  max_batch=r.get("max_batch"), max_tokens=r.get("max_num_tokens"),
                  graph_sizes=tuple(sizes) if sizes else None, engine=mlperf_release(r),
                  block_tokens=r.get("tokens_per_block"), scheduler_policy=r.get("capacity_scheduler_policy"),
                  cuda_graphs=MLPERF_CUDA_GRAPHS if r.get("tensorrt_engine") else None,
                  **mlperf_split(r), **mlperf_balance(r))  # fmt: skip


def score_mlperf(r: dict, datasets: dict) -> dict:
    """kvplan's throughput for one modelled MLPerf run: ``kvplan_isl``, ``kvplan_tok_s``, ``ratio``, ``verdict``."""
    s = _mlperf_setup(r)
    isl, osl = _mlperf_isl(r, datasets), round(r["osl"])
    with mlperf_engine(r):
        if r["scenario"] == "Offline":
            per_replica = replica_tokens_s(s, isl, osl, output_len=mlperf_output(datasets[r["dataset"]], osl))
        else:
            per_replica = _server_tokens_s(s, r, datasets[r["dataset"]], isl, osl)
    tok_s = per_replica * r["replicas"]
    ratio = tok_s / r["published_tok_s"]
    verdict = "within 20%" if abs(ratio - 1) <= TARGET else "missed"
    return {"kvplan_isl": isl, "kvplan_tok_s": round(tok_s, 1), "ratio": round(ratio, 4), "verdict": verdict}


def operating_point(r: dict, datasets: dict) -> dict:
    """kvplan's step at a Server run's own operating point, against the log's mean TPOT.

    The log (``measured``: the summary's mean latency, mean first-token latency and mean time per output token)
    fixes the operating point of one replica at the run's completed rate ``lambda``: ``n = lambda x (latency -
    TTFT)`` sequences decoding (Little's law) and ``p = lambda x ISL x TPOT`` prompt tokens entering each step.
    kvplan's step there (:func:`kvplan.latency.mixed_step_latency`, the decodes at the mean in-flight context
    ``ISL + OSL (1 + cv^2) / 2``, :func:`kvplan.serving._context_at`, the prompts as one chunk) against the
    measured mean TPOT is a check of the step model at the run's batch, independent of queueing: at a load near
    saturation the step time (and so TPOT) grows as
    ``1 / (1 - rho)``, so a small error in the step moves kvplan's rate within the TPOT limit a long way.

    ``kvplan_mean_step_s``: the mean step :func:`kvplan.serving.serve` takes at the same decodes and prompt tokens a
    step (:func:`kvplan.serving._mean_step`: the prompts as whole chunks of up to the budget beside the decodes, in
    a share of the steps; with PP each micro-batch admitting its own prompt, Erlang's states over the slots,
    :func:`kvplan.serving._slots_mean_step`). The one-chunk step above spreads the prompt tokens over every step, and
    with PP puts them in one micro-batch, whose trip through the stages then sets the cycle: the v5.0 B200 TP2 PP2
    log's 529 prompt tokens a cycle cost 105 ms that way, 70 ms split over both micro-batches, 99 ms under serve's
    rule (stop 30).
    """
    from kvplan.latency import mixed_step_latency
    from kvplan.serving import Lengths, _budget, _context_at, _mean_step

    s = _mlperf_setup(r)
    m = r["measured"]
    isl, osl = _mlperf_isl(r, datasets), round(r["osl"])
    context = _context_at(Lengths.of(isl), mlperf_output(datasets[r["dataset"]], osl))
    rate = r["samples_per_s"] / r["replicas"]
    n = rate * (m["latency_mean_s"] - m["ttft_mean_s"])
    p = rate * isl * m["tpot_mean_s"]
    with mlperf_engine(r):
        step = mixed_step_latency(s.spec, s.gpu, decode_seqs=n, decode_context=context, prefill_tokens=p,
                                  tp=s.tp, pp=s.pp, dp=s.dp, expert_parallel=s.ep, kv_dtype_name=s.kv_dtype,
                                  weights_dtype=s.weights_dtype, engine=s.engine.key).total  # fmt: skip
        mean = _mean_step(s, n=n, p=p, prompt=isl, budget=_budget(s, None), context=context, ep=False)
    return {"decoding": n, "prompt_tokens_per_step": p, "kvplan_step_s": step, "measured_tpot_s": m["tpot_mean_s"],
            "step_ratio": step / m["tpot_mean_s"], "kvplan_mean_step_s": mean,
            "mean_step_ratio": mean / m["tpot_mean_s"]}  # fmt: skip


# --step-terms: the steps of the Server and Interactive runs by operation class (kvplan.latency.OpTimes), each with the
# part its kernel launches cost (Calibration.eager_kernel_s / graph_kernel_s a kernel; kvplan.latency's module doc).
STEP_CLASSES = (("gemm", "GEMM"), ("moe", "grouped experts"), ("attention", "attention"),
                ("elementwise", "element-wise"), ("allreduce", "all-reduce"), ("alltoall", "all-to-all"),
                ("pipeline", "pipeline"), ("overlap", "overlap"))  # fmt: skip
_LAUNCH_FREE: dict[int, tuple] = {}  # id of a calibration -> (it, its copy without a fixed cost per kernel)


@contextlib.contextmanager
def launches_free():  # noqa: ANN201
    """:func:`kvplan.latency.calibration` as it is on entry (under :func:`mlperf_engine`: the run's build), with no
    fixed cost per kernel launch (``eager_kernel_s`` and ``graph_kernel_s`` 0), for the duration; the step memos
    cleared on the way in and out. A step's figure less the same step's here is what its launches cost."""
    from kvplan import latency
    from kvplan.serving import forget_memos

    priced = latency.calibration

    def free(engine):  # noqa: ANN001, ANN202
        cal = priced(engine)
        hit = _LAUNCH_FREE.get(id(cal))
        if hit is None or hit[0] is not cal:
            hit = _LAUNCH_FREE[id(cal)] = (cal, dataclasses.replace(cal, eager_kernel_s=0.0, graph_kernel_s=0.0))
        return hit[1]

    latency.calibration = free
    forget_memos(facts=False)
    try:
        yield
    finally:
        latency.calibration = priced
        forget_memos(facts=False)


def _terms(step, free) -> dict:  # noqa: ANN001 - two kvplan.latency.OpTimes
    """One step's milliseconds by :data:`STEP_CLASSES`, its total, and its launches' part (``step`` less ``free``, the
    same step priced under :func:`launches_free`)."""
    ms = {key: getattr(step, key) * 1e3 for key, _ in STEP_CLASSES}
    return {**ms, "total": step.total * 1e3, "launches": (step.total - free.total) * 1e3}


def step_terms(r: dict, datasets: dict) -> dict:
    """kvplan's steps of a Server or Interactive run (one replica) at the run's published rate, by operation class:
    the steady state there (:func:`_server_point`: decodes, mean step, p99 TTFT and TPOT), the decode-only step at
    those decodes and the step whose prompt chunk fills the budget beside them (``max_num_tokens`` less the decodes,
    after half a chunk of the same prompt, :func:`kvplan.serving._full_step_s`'s step; with PP such a chunk in every
    micro-batch), with the share of the time such steps would take to clear the prompts at that rate; where the run
    logged its latencies, also the step at the log's own operating point (:func:`operating_point`) beside the log's
    mean TPOT. Each step with its kernel launches' part (:func:`launches_free`)."""
    from kvplan.serving import Lengths, _budget, _context_at, _micro_batches, _room, step_times

    s, dataset = _mlperf_setup(r), datasets[r["dataset"]]
    isl, osl = _mlperf_isl(r, datasets), round(r["osl"])
    rate = r["published_tok_s"] / r["osl"] / r["replicas"]
    context = _context_at(Lengths.of(isl), mlperf_output(dataset, osl))
    with mlperf_engine(r):
        point = _server_point(r, datasets, rate)
        n = point["rank_seqs"] * s.dp
        room = _room(s, _budget(s, None), n)  # the run's max_num_tokens (the setup's), as serve() takes it
        m = _micro_batches(s)
        kinds = {"decode": {"p": 0.0}, "prompt": {"p": room, "prefix": int(room) // 2, "chunks": float(m)}}
        op = operating_point(r, datasets) if "measured" in r else None
        if op is not None:  # the log's decodes and prompt tokens a step, as operating_point prices them
            kinds["log"] = {"n": op["decoding"], "p": op["prompt_tokens_per_step"]}
        steps = {k: step_times(s, n=a.get("n", n), p=a["p"], context=context, prefix=a.get("prefix", 0),
                               chunks=a.get("chunks", 1.0)) for k, a in kinds.items()}  # fmt: skip
        with launches_free():
            free = {k: step_times(s, n=a.get("n", n), p=a["p"], context=context, prefix=a.get("prefix", 0),
                                  chunks=a.get("chunks", 1.0)) for k, a in kinds.items()}  # fmt: skip
    out = {"rate": rate, "decoding": n, "step_s": point["step_s"], "ttft_p99_s": point["ttft_p99_s"],
           "tpot_p99_s": point["tpot_p99_s"], "chunk": room, "micro_batches": m,
           "prompt_share": rate * isl / (room * m) * steps["prompt"].total,
           "steps": {k: _terms(steps[k], free[k]) for k in kinds}}  # fmt: skip
    if op is not None:
        out["log"] = {"decoding": op["decoding"], "prompt_tokens": op["prompt_tokens_per_step"],
                      "tpot_ms": op["measured_tpot_s"] * 1e3}  # fmt: skip
    return out


def step_term_lines(rows: list[dict], datasets: dict, *, markdown: bool = False) -> list[str]:
    """:func:`step_terms` of each scored Server and Interactive run: a line (a table row with ``markdown``) for each
    step, the run's state at its published rate first."""
    names = [name for _, name in STEP_CLASSES]
    out = []
    if markdown:
        out += ["| run | step | ms | " + " | ".join(names) + " | launches (in these) |",
                "|---|---|---|" + "---|" * len(names) + "---|"]  # fmt: skip
    for r in rows:
        if r["scenario"] not in ("Server", "Interactive") or "ratio" not in r:
            continue
        t = step_terms(r, datasets)
        run = f"{r['source'].split('-')[1]} {r['label']} {r['gpu']} {r['scenario']} ({mlperf_split_label(r)})"
        if math.isfinite(t["step_s"]):
            state = (f"at the published {t['rate']:.3f} req/s a replica: {t['decoding']:.0f} decoding, mean step "
                     f"{t['step_s'] * 1e3:.1f} ms, p99 TTFT {t['ttft_p99_s']:.2f} s (limit {r['ttft_p99_s']:g}), "
                     f"p99 TPOT {t['tpot_p99_s'] * 1e3:.0f} ms (limit {r['tpot_p99_s'] * 1e3:.0f}); prompt steps "
                     f"{t['prompt_share']:.0%} of the time")  # fmt: skip
        else:  # no steady state: the steps at the batch kvplan's search stopped at
            state = (f"at the published {t['rate']:.3f} req/s a replica: past kvplan's saturation, the steps at "
                     f"{t['decoding']:.0f} decoding")  # fmt: skip
        each = f" in each of the {t['micro_batches']} micro-batches" if t["micro_batches"] > 1 else ""
        labels = {"decode": f"decode-only, {t['decoding']:.0f} decoding",
                  "prompt": f"prompt chunk of {t['chunk']:,.0f} tokens beside them{each}"}  # fmt: skip
        if "log" in t:
            g = t["log"]
            labels["log"] = (f"the log's operating point ({g['decoding']:.0f} decoding, {g['prompt_tokens']:.0f} "
                             f"prompt tokens a step; the log's mean TPOT {g['tpot_ms']:.1f} ms)")  # fmt: skip
        if markdown:
            out.append(f"| {run} | {state} | | " + " | " * len(names) + " |")
        else:
            out.append(f"step terms {run} {state}")
        for kind, label in labels.items():
            x = t["steps"][kind]
            cells = [f"{x[key]:.1f}" if x[key] else "" for key, _ in STEP_CLASSES]
            if markdown:
                out.append(f"| | {label} | {x['total']:.1f} | " + " | ".join(cells) + f" | {x['launches']:.1f} |")
            else:
                parts = ", ".join(f"{name} {x[key]:.1f}" for key, name in STEP_CLASSES if x[key])
                out.append(f"  {label}: {x['total']:.1f} ms ({parts}; launches {x['launches']:.1f} of it)")
    return out


def _without_balance(r: dict) -> dict:
    """Row ``r`` with the attention-DP balancer off (no ``attention_dp_config``): TensorRT-LLM's default."""
    return {k: v for k, v in r.items() if k != "attention_dp_config"}


def _engine_default_balance(r: dict) -> dict:
    """Row ``r`` with the balancer on at TensorRT-LLM's own iteration counts (``AttentionDpConfig``'s defaults,
    ``kvplan.engines.trtllm.ADP_TIMEOUT_ITERS`` / ``ADP_BATCHING_WAIT_ITERS``), instead of the config's."""
    return {**r, "attention_dp_config": {"enable_balance": True, "timeout_iters": None, "batching_wait_iters": None}}


def _server_point(r: dict, datasets: dict, rate_rps: float) -> dict:
    """kvplan's Server run of row ``r`` at ``rate_rps`` (one replica): p99 TTFT and TPOT against the run's limits,
    the mean step and sequences a rank, and the balancer's hold in iterations (mean, p99; :mod:`kvplan.dp_balance`)."""
    from kvplan.serving import Lengths, _balance_hold, serve

    s, dataset = _mlperf_setup(r), datasets[r["dataset"]]
    isl, osl = _mlperf_isl(r, datasets), round(r["osl"])
    p90 = max(isl, round(dataset["input_p90"]))
    inp = Lengths.of(isl, p90, max(p90, round(dataset["input_p99"])), sd=dataset.get("input_sd"))
    with mlperf_engine(r):
        x = serve(s, rate_rps=rate_rps, input_len=inp, output_len=mlperf_output(dataset, osl), with_max_rate=False,
                  with_p90=False)  # fmt: skip
        hold = _balance_hold(s, rate_rps=rate_rps, step_s=x.step_s, n=x.step_batch)
    return {"rate": rate_rps, "ttft_p99_s": x.ttft_p99_s, "tpot_p99_s": x.tpot_p99_s, "step_s": x.step_s,
            "rank_seqs": x.step_batch / s.dp, "hold_mean": hold.mean_iters if hold else 0.0,
            "hold_p99": hold.at(0.99) if hold else 0}  # fmt: skip


@contextlib.contextmanager
def step_cost_added(extra_s: float):  # noqa: ANN201
    """Every serving step ``extra_s`` seconds longer (:func:`kvplan.serving._step`'s GPU step plus a constant): the
    reading of a fixed cost per attention-DP step outside the kernels, which no source prices (docs/cost.md,
    section 5), tried on the MLPerf DeepSeek-R1 rows. A diagnostic, never kept in kvplan."""
    import types

    from kvplan import serving

    priced = serving.mixed_step_latency

    def step(*a, **k):  # noqa: ANN002, ANN003, ANN202
        return types.SimpleNamespace(total=priced(*a, **k).total + extra_s)

    with replaced_for_block(serving, "mixed_step_latency", step):
        yield


@contextlib.contextmanager
def streamed_responses_costed(response_s: float, *, extra_s: float = 0.0):  # noqa: ANN201
    """Every serving step as the GPU step plus ``extra_s`` (:func:`step_cost_added`'s fixed residual) or rank 0's
    host work for the step's streamed responses, ``response_s`` seconds for each decoding sequence of the replica,
    whichever is longer. A streaming run (``streaming`` on the row) returns a response per running request per step
    (``stream_interval`` 1); with attention DP every rank's responses are gathered to rank 0 each step
    (TensorRT-LLM ``PyExecutor._enqueue_responses``: ``self.dist.tp_gather(responses)`` under
    ``enable_attention_dp``), which runs one step ahead of the GPU (the overlap scheduler: max, not sum). A
    diagnostic, never kept in kvplan: no source gives the host seconds a streamed response costs."""
    import types

    from kvplan import serving

    priced = serving.mixed_step_latency

    def step(*a, **k):  # noqa: ANN002, ANN003, ANN202
        return types.SimpleNamespace(total=max(priced(*a, **k).total + extra_s, k["decode_seqs"] * response_s))

    with replaced_for_block(serving, "mixed_step_latency", step):
        yield


def implied_stream_response_s(r: dict, datasets: dict, *, extra_s: float, lo: float = 1e-7, hi: float = 1e-3,
                              steps: int = 20) -> float | None:  # fmt: skip
    """The host seconds per streamed response (:func:`streamed_responses_costed`, the fixed residual ``extra_s``
    held) at which kvplan's figure for the streaming row ``r`` falls to the published one, by bisection on a log
    scale between ``lo`` and ``hi``; None where kvplan is not above the published figure at ``lo``."""

    def ratio(response_s: float) -> float:
        with streamed_responses_costed(response_s, extra_s=extra_s):
            return score_mlperf(r, datasets)["ratio"]

    if ratio(lo) <= 1.0:
        return None
    for _ in range(steps):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if ratio(mid) > 1.0 else (lo, mid)
    return math.sqrt(lo * hi)


def streaming_lines(rows: list[dict], datasets: dict, *, steps: int = 20) -> list[str]:
    """The MLPerf rows whose harness streams every token (``streaming`` on the row): each beside its model's
    non-streaming Offline row, whose step residual (:func:`offline_step_residual_s`) is held; the host seconds per
    streamed response that would close the rest (:func:`implied_stream_response_s`) and rank 0's responses and
    host time a step at kvplan's rate there."""
    out = []
    for r in rows:
        if not (r.get("streaming") or {}).get("streams_tokens") or "not_compared" in r:
            continue
        offline = next(x for x in rows if x["model"] == r["model"] and x["source"] == r["source"]
                       and x["scenario"] == "Offline")  # fmt: skip
        _, extra = offline_step_residual_s(offline, datasets)
        with step_cost_added(extra):
            held = score_mlperf(r, datasets)["ratio"]
        per = implied_stream_response_s(r, datasets, extra_s=extra, steps=steps)
        line = (f"streaming {r['label']} {r['system']} {r['scenario']}: stream_interval "
                f"{r['streaming']['stream_interval']}, x{r['ratio']:.2f}; Offline residual {extra * 1e3:+.1f} ms "
                f"held: x{held:.2f}")  # fmt: skip
        if per is None:
            out.append(line + "; nothing left to explain")
            continue
        with streamed_responses_costed(per, extra_s=extra):
            at = score_mlperf(r, datasets)
            pt = _server_point(r, datasets, at["kvplan_tok_s"] / round(r["osl"]) / r["replicas"])
        seqs = pt["rank_seqs"] * _mlperf_setup(r).dp
        out.append(line + f"; {per * 1e6:.1f} us of rank 0's host time per streamed response would give "
                   f"x{at['ratio']:.2f} ({seqs:.0f} responses a step at {pt['rate']:.2f} req/s, "
                   f"host {seqs * per * 1e3:.1f} ms, step {pt['step_s'] * 1e3:.1f} ms)")  # fmt: skip
    return out


def offline_step_residual_s(r: dict, datasets: dict) -> tuple[float, float]:
    """``(step, residual)``: kvplan's mean step at an Offline row's highest sustainable rate, and the step time the
    published figure leaves over it at the same batch, ``step x (ratio - 1)`` (as :func:`step_residual`)."""
    from kvplan.serving import Lengths, max_rate, serve

    s = _mlperf_setup(r)
    inp, out = Lengths.of(_mlperf_isl(r, datasets)), mlperf_output(datasets[r["dataset"]], round(r["osl"]))
    with mlperf_engine(r):
        top = max_rate(s, input_len=inp, output_len=out)
        at = serve(s, rate_rps=top * 0.999, input_len=inp, output_len=out, with_max_rate=False, with_p90=False,
                   with_p99=False, full_start=True)  # fmt: skip
    ratio = score_mlperf(r, datasets)["ratio"]
    return at.step_s, at.step_s * (ratio - 1)


def mlperf_balance_lines(rows: list[dict], datasets: dict) -> list[str]:
    """The MLPerf rows whose config turns on the attention-DP balancer (``attention_dp_config``): each scored with
    it off and as the config sets it; for a Server row, kvplan's p99 TTFT and TPOT (the balancer's hold inside the
    TTFT) at the published rate and at kvplan's scored one; then the Offline row's step residual, added to every
    step of every such row (:func:`step_cost_added`): one fixed cost per step, tried on both scenarios."""
    runs = [r for r in rows if r.get("attention_dp_config") and "not_compared" not in r]
    out = []
    for r in runs:
        cfg = r["attention_dp_config"]
        off = score_mlperf(_without_balance(r), datasets)["ratio"]
        engine_default = score_mlperf(_engine_default_balance(r), datasets)["ratio"]
        on = score_mlperf(r, datasets)
        out.append(f"balance {r['label']} {r['system']} {r['scenario']}: timeout_iters {cfg['timeout_iters']}, "
                   f"batching_wait_iters {cfg['batching_wait_iters']}; off x{off:.2f}, as configured "
                   f"x{on['ratio']:.2f} (at TensorRT-LLM's default counts x{engine_default:.2f})")  # fmt: skip
        if r["scenario"] == "Offline":
            continue
        osl = round(r["osl"])
        for name, rate in (("published", r["published_tok_s"] / r["osl"]), ("kvplan", on["kvplan_tok_s"] / osl)):
            pt = _server_point(r, datasets, rate / r["replicas"])
            out.append(f"  at the {name} rate {pt['rate']:.2f} req/s: p99 TTFT {pt['ttft_p99_s']:.3f} s (limit "
                       f"{r['ttft_p99_s']:g} s), p99 TPOT {pt['tpot_p99_s'] * 1e3:.1f} ms (limit "
                       f"{r['tpot_p99_s'] * 1e3:g} ms), step {pt['step_s'] * 1e3:.1f} ms at {pt['rank_seqs']:.0f} "
                       f"sequences a rank, hold {pt['hold_mean']:.2f} iterations mean, "
                       f"{pt['hold_p99']} at p99")  # fmt: skip
        out += proxy_log_lines(r, datasets)
    for r in runs:
        if r["scenario"] != "Offline":
            continue
        step, extra = offline_step_residual_s(r, datasets)
        with step_cost_added(extra):
            same = [x for x in runs if x["model"] == r["model"]]
            cells = [f"{x['scenario']} x{score_mlperf(x, datasets)['ratio']:.2f}" for x in same]
        out.append(f"balance {r['label']}: Offline step {step * 1e3:.1f} ms, residual {extra * 1e3:+.1f} ms; that "
                   f"cost added to every step: " + ", ".join(cells))  # fmt: skip
    return out


def proxy_log_point(r: dict, log: dict) -> dict:
    """A proxy Server log's operating point (``proxy_logs`` on the row: another system's log of the same config per
    replica): its rate a replica, tokens a sample, the sequences decoding a rank by Little's law (``rate x (mean
    latency - mean TTFT)``, as :func:`operating_point`) and a request's life-mean TPOT ``(latency - TTFT) / (tokens -
    1)`` (MLPerf's per-sample TPOT, at the means), and each p99 as a share of its limit."""
    rate = log["samples_per_s"] / log["replicas"]
    tokens = log["tokens_per_s"] / log["samples_per_s"]
    life = log["latency_mean_s"] - log["ttft_mean_s"]
    ranks = mlperf_split(r).get("dp", 1)
    return {
        "rate": rate,
        "tokens": tokens,
        "rank_decoding": rate * life / ranks,
        "tpot_life_s": life / (tokens - 1),
        "ttft_share": log["ttft_p99_s"] / r["ttft_p99_s"],
        "tpot_share": log["tpot_p99_s"] / r["tpot_p99_s"],
    }


def proxy_log_lines(r: dict, datasets: dict) -> list[str]:
    """For each proxy Server log of row ``r`` (``proxy_logs``; a diagnostic, never scored): what the log shows at its
    rate a replica (:func:`proxy_log_point`), kvplan's mean step at the log's own batch (the row's setup and lengths,
    the prompt tokens a step ``rate x ISL x TPOT``; decode-only steps padded to the engine's graph size for that many a
    rank, :meth:`kvplan.engines.base.Engine.graph_rows`) and kvplan's steady state at the log's rate."""
    from kvplan.serving import Lengths, _budget, _context_at, _mean_step, serve

    out = []
    if not r.get("proxy_logs"):
        return out
    s, dataset = _mlperf_setup(r), datasets[r["dataset"]]
    isl, osl = _mlperf_isl(r, datasets), round(r["osl"])
    p90 = max(isl, round(dataset["input_p90"]))
    inp = Lengths.of(isl, p90, max(p90, round(dataset["input_p99"])), sd=dataset.get("input_sd"))
    out_len = mlperf_output(dataset, osl)
    for log in r["proxy_logs"]:
        pt = proxy_log_point(r, log)
        n = pt["rank_decoding"] * s.dp
        with mlperf_engine(r):
            step = _mean_step(s, n=n, p=pt["rate"] * isl * pt["tpot_life_s"], prompt=isl, budget=_budget(s, None),
                              context=_context_at(Lengths.of(isl), out_len), ep=False)  # fmt: skip
            pad = s.engine.graph_rows(s.settings, pt["rank_decoding"])
            x = serve(s, rate_rps=pt["rate"], input_len=inp, output_len=out_len, with_max_rate=False, with_p90=False)
        out.append(f"  proxy {log['system']} Server log ({log['replicas']} replicas of this config): "
                   f"{pt['rate']:.2f} req/s a replica, {pt['tokens']:.0f} tokens a sample; TTFT mean / p99 "
                   f"{log['ttft_mean_s']:.2f} / {log['ttft_p99_s']:.2f} s ({pt['ttft_share']:.0%} of the limit), TPOT "
                   f"p50 / p99 {log['tpot_p50_s'] * 1e3:.1f} / {log['tpot_p99_s'] * 1e3:.1f} ms "
                   f"({pt['tpot_share']:.0%}); {pt['rank_decoding']:.0f} decoding a rank (Little), life-mean TPOT "
                   f"{pt['tpot_life_s'] * 1e3:.1f} ms; kvplan's step at that batch {step * 1e3:.1f} ms (decodes "
                   f"padded to {pad or 0:.0f} a rank); kvplan at that rate {x.step_batch / s.dp:.0f} a rank, step "
                   f"{x.step_s * 1e3:.1f} ms, TPOT mean / p99 {x.tpot_mean_s * 1e3:.1f} / {x.tpot_p99_s * 1e3:.1f} "
                   f"ms, TTFT mean / p99 {x.ttft_mean_s:.2f} / {x.ttft_p99_s:.2f} s")  # fmt: skip
    return out


def compare_mlperf(rows: list[dict], datasets: dict) -> list[dict]:
    return [dict(r) if "not_compared" in r else {**r, **score_mlperf(r, datasets)} for r in rows]


def dump_data(data: dict) -> str:
    """The data file's layout: indented objects, one compact line per run (diff-friendly)."""
    parts = []
    for key, value in data.items():
        if isinstance(value, list):
            body = ",\n".join("  " + json.dumps(v, ensure_ascii=False) for v in value)
            parts.append(f" {json.dumps(key)}: [\n{body}\n ]")
        else:
            text = json.dumps(value, indent=1, ensure_ascii=False).replace("\n", "\n ")
            parts.append(f" {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def stats(rows: list[dict]) -> dict:
    done = [r for r in rows if "ratio" in r]
    errs = [abs(math.log(r["ratio"])) for r in done]
    return {
        "compared": len(done),
        "not_modelled": len(rows) - len(done),
        "median_abs_ln": statistics.median(errs),
        "worst_abs_ln": max(errs),
        "median_signed_ln": statistics.median(math.log(r["ratio"]) for r in done),
        "within_20pct": sum(abs(r["ratio"] - 1) <= TARGET for r in done),
    }


def group_lines(rows: list[dict]) -> list[str]:
    """One line per (source, weights, GPU, split) of the compared points: FP8 on Hopper, NVFP4 on B200 and on GB200,
    the attention-DP MoE rows apart from the TP ones."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if "ratio" in r:
            dp = "attention DP + EP" if (r.get("launch") or {}).get("enable_attention_dp") else "TP"
            groups.setdefault((r["source"], r["weights"], r["gpu"], dp), []).append(r)
    out = []
    for (source, weights, gpu, dp), part in groups.items():
        s = stats(part)
        out.append(f"  {source} {weights} {gpu} {dp}: {s['compared']} points, median |ln ratio| "
                   f"{s['median_abs_ln']:.3f}, worst {s['worst_abs_ln']:.3f}, median signed "
                   f"{s['median_signed_ln']:+.3f}; within 20%: {s['within_20pct']}/{s['compared']}")  # fmt: skip
    return out


def attention_dp_summary(rows: list[dict]) -> str:
    """The MoE rows run with attention DP: statistics at EP over all ranks and, since the page gives no ep_size,
    at the other reading (experts sliced over the ranks, TensorRT-LLM's default without --ep)."""
    s = stats(rows)
    line = (f"attention DP + EP rows: {s['compared']} points (EP = all ranks); median |ln ratio| "
            f"{s['median_abs_ln']:.3f}, worst {s['worst_abs_ln']:.3f}, median signed {s['median_signed_ln']:+.3f}; "
            f"within 20%: {s['within_20pct']}/{s['compared']}")  # fmt: skip
    alt = [r for r in rows if "ratio_ep1" in r]
    if alt:
        e = stats([{"ratio": r["ratio_ep1"]} for r in alt])
        line += (f"; experts sliced instead: median |ln| {e['median_abs_ln']:.3f}, worst {e['worst_abs_ln']:.3f}, "
                 f"within 20%: {e['within_20pct']}/{e['compared']}")  # fmt: skip
    return line


HOPPER = ("h100-sxm", "h200")  # the v1.0 page's FP8 GPUs; its other attention-DP rows are B200 NVFP4


def ep_reading_lines(rows: list[dict]) -> list[str]:
    """The scored attention-DP rows by model and GPU class (Hopper FP8, B200 NVFP4): as run with whole experts over
    the ranks (``ratio``) and with each expert's width sliced (``ratio_ep1``, the reading where ``--ep`` gave
    ``moe_tp_size = tp_size``). The page runs every MoE row with one command template, ``--ep $ep_size``, and gives no
    value, so which reading a GPU's runs had is not stated; a reading that fits one GPU class and breaks the other
    is shown, not adopted (docs/cost.md, "Hopper FP8 MoE on v1.0")."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if "ratio_ep1" in r:
            cls = "hopper fp8" if r["gpu"] in HOPPER else f"{r['gpu']} {r['weights']}"
            groups.setdefault((r["label"], cls), []).append(r)
    out = []
    for (label, cls), part in groups.items():
        whole = stats(part)
        sliced = stats([{"ratio": r["ratio_ep1"]} for r in part])
        out.append(f"ep reading {label:16} {cls:11}: experts whole {whole['within_20pct']}/{whole['compared']} "
                   f"(median |ln| {whole['median_abs_ln']:.3f}, signed {whole['median_signed_ln']:+.3f}); sliced "
                   f"{sliced['within_20pct']}/{sliced['compared']} (median |ln| {sliced['median_abs_ln']:.3f}, "
                   f"signed {sliced['median_signed_ln']:+.3f})")  # fmt: skip
    return out


def graph_pool_lines(runs: list[dict]) -> list[str]:
    """Each v1.0 row's decode CUDA graphs in TensorRT-LLM's KV estimation (kvplan.engines.trtllm
    ``Trtllm.estimation_graphs``): the largest captured size a rank, its memory pool, and whether the estimation's
    small cache holds that size's rows, so the pool is captured before the KV pool is sized (in the budget) or after
    it (from the memory the fraction leaves); a summary by split."""
    from kvplan.engines.trtllm import captured_graph_sizes
    from kvplan.units import GIB

    out, held = [], {"TP": [], "DP": []}
    for r in _by_source(runs, "trtllm-1.0"):
        s = row_setup(r)
        b = s.stages[0].budget
        kind = "DP" if run_split(r).get("dp") else "TP"
        if b.cuda_graph_in_budget:
            held[kind].append(b.cuda_graph)
            out.append(f"graph pool {r['label']:16} {r['gpu']:9} {split_label(r):8} {r['isl']:>5}/{r['osl']:<5} "
                       f"{captured_graph_sizes(s.settings)[-1]:>5} rows a rank: {b.cuda_graph / GIB:.2f} GiB before "
                       f"the KV estimation")  # fmt: skip
    n = {k: sum(1 for r in _by_source(runs, "trtllm-1.0") if ("DP" if run_split(r).get("dp") else "TP") == k)
         for k in held}  # fmt: skip
    for k, pools in held.items():
        span = f" ({min(pools) / GIB:.2f}-{max(pools) / GIB:.2f} GiB)" if pools else ""
        out.append(f"graph pool summary {k}: {len(pools)} of {n[k]} v1.0 rows capture their graphs before the KV "
                   f"estimation{span}; the others after it")  # fmt: skip
    return out


def _by_source(rows: list[dict], source: str) -> list[dict]:
    return [r for r in rows if r["source"] == source]


def split_label(r: dict) -> str:
    """``TP8``, or ``DP8 EP8`` for an attention-DP row (EP as kvplan scores it: ep_size is not stated)."""
    sp = run_split(r)
    return f"DP{sp['dp']} EP{sp['dp']}" if sp.get("dp") else f"TP{r['tp']}"


# The mark a scored row carrying ``not_reproduced`` gets beside its ratio (the reason is on the row in the data file).
NOT_REPRODUCED_MARK = "below the page's B200: not reproduced"


def _print_runs(rows: list[dict], *, markdown: bool) -> None:
    if markdown:
        print("| source | model | GPU | split | ISL/OSL | published tok/s | kvplan tok/s | kvplan / published |")
        print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "ratio" not in r:
            continue
        alt = f" (experts sliced: {r['ratio_ep1']:.2f})" if "ratio_ep1" in r else ""
        alt += f" ({NOT_REPRODUCED_MARK})" if "not_reproduced" in r else ""
        if markdown:
            print(f"| {r['source']} | {r['label']} | {r['gpu']} | {split_label(r)} | {r['isl']}/{r['osl']} | "
                  f"{r['published_tok_s']:,.0f} | {r['kvplan_tok_s']:,.0f} | {r['ratio']:.2f}{alt} |")  # fmt: skip
        else:
            print(f"{r['source']:12} {r['label']:16} {r['gpu']:9} {split_label(r):8} {r['isl']:>5}/{r['osl']:<5} "
                  f"published {r['published_tok_s']:>9,.0f} kvplan {r['kvplan_tok_s']:>9,.0f}  "
                  f"x{r['ratio']:.2f}{alt}")  # fmt: skip


def _print_not_modelled(rows: list[dict], *, markdown: bool) -> None:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if "ratio" not in r:
            key = (r["source"], r["label"], r["gpu"], r["tp"], r["weights"], r["not_modelled"])
            groups.setdefault(key, []).append(r)
    if markdown:
        print("| source | model | GPU | TP | weights | published points | why not compared |")
        print("|---|---|---|---|---|---|---|")
    for (source, label, gpu, tp, w, why), rs in groups.items():
        if markdown:
            print(f"| {source} | {label} | {gpu} | {tp} | {w} | {len(rs)} | {why} |")
        else:
            print(f"{source:12} {label:16} {gpu:9} tp{tp} {w:6} {len(rs):2} points not modelled: {why}")


def mlperf_split_label(r: dict) -> str:
    """``TP2 PP2``, or ``TP8 attention DP, EP8`` as NVIDIA's config states it."""
    stages = f" PP{r['pp']}" if r.get("pp", 1) > 1 else ""
    adp = f" attention DP, EP{r.get('ep', 1)}" if r.get("attention_dp") else ""
    return f"TP{r['tp']}{stages}{adp}"


def _print_mlperf(rows: list[dict], datasets: dict, *, markdown: bool) -> None:
    if markdown:
        print("| round | model | system | scenario | published tok/s | mean ISL / OSL | kvplan tok/s | "
              "kvplan / published | verdict, or why not scored | source |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        isl = round(datasets[r["dataset"]]["input_mean"])
        if "ratio" in r:
            split = f"{mlperf_split_label(r)} x {r['replicas']}, {r['weights']} weights/{r['kv']} KV"
            note = f"{r['verdict']} ({split})"
            kv_tps, ratio = f"{r['kvplan_tok_s']:,.0f}", f"x{r['ratio']:.2f}"
        else:
            note, kv_tps, ratio = f"not scored: {r['not_compared']}", "-", "-"
        if markdown:
            print(f"| {r['source'].split('-')[1]} | {r['label']} | {r['system']} | {r['scenario']} | "
                  f"{r['published_tok_s']:,.0f} | {isl} / {r['osl']:.1f} | {kv_tps} | {ratio.lstrip('x')} | {note} | "
                  f"[log]({r['url']}) |")  # fmt: skip
        else:
            print(f"{r['source']:10} {r['label']:32} {r['system']:30} {r['scenario']:11} "
                  f"published {r['published_tok_s']:>10,.1f} isl {isl} osl {r['osl']:.1f} kvplan {kv_tps:>8} "
                  f"{ratio}: {note}")  # fmt: skip


def _print_operating_points(rows: list[dict], datasets: dict, *, markdown: bool) -> None:
    done = [r for r in rows if "measured" in r]
    if markdown:
        print("| run | replica rate (req/s) | decoding (Little's law) | prompt tokens per step | measured mean TPOT ms "
              "| kvplan step ms | kvplan / measured | kvplan mean step ms, serve's rule "
              "| kvplan / measured |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
    for r in done:
        o = operating_point(r, datasets)
        cells = [f"{r['label']} {r['system']} {r['scenario']}", f"{r['samples_per_s'] / r['replicas']:.2f}",
                 f"{o['decoding']:.0f}", f"{o['prompt_tokens_per_step']:.0f}", f"{o['measured_tpot_s'] * 1e3:.1f}",
                 f"{o['kvplan_step_s'] * 1e3:.1f}", f"x{o['step_ratio']:.2f}", f"{o['kvplan_mean_step_s'] * 1e3:.1f}",
                 f"x{o['mean_step_ratio']:.2f}"]  # fmt: skip
        print(("| " + " | ".join(cells) + " |") if markdown else "server operating point: " + "  ".join(cells))


def _print_datasets(datasets: dict, *, markdown: bool) -> None:
    if markdown:
        print("| benchmark set | samples | mean input | p90 input | p99 input | input sd | source |")
        print("|---|---|---|---|---|---|---|")
    for key, d in datasets.items():
        if markdown:
            print(f"| {key}: {d['name']} | {d['samples']:,} | {d['input_mean']} | {d['input_p90']} | "
                  f"{d['input_p99']} | {d['input_sd']} | [csv]({d['url']}) |")  # fmt: skip
        else:
            print(f"{key:14} {d['samples']:>6} samples, mean input {d['input_mean']}, p90 {d['input_p90']}, "
                  f"p99 {d['input_p99']}, sd {d['input_sd']}")  # fmt: skip


def _print_not_scored(rows: list[dict], *, column: tuple[str, str], markdown: bool) -> None:
    """Published results read but not scored, each with its source and why; ``column``: the second column's heading
    and the rows' key for it (the large-scale EP results' stated configuration, the vLLM / SGLang results' engine)."""
    heading, key = column
    if markdown:
        print(f"| result | {heading} | published | why not scored | source |")
        print("|---|---|---|---|---|")
    for r in rows:
        if markdown:
            cells = (r["label"], r[key], r["published"], r["not_scored"], f"[page]({r['url']})")
            print("| " + " | ".join(cells) + " |")
        else:
            print(f"{r['label']}: {r['published']}; not scored: {r['not_scored']} ({r['url']})")


def mlperf_summary(rows: list[dict]) -> str:
    done = [r for r in rows if "ratio" in r]
    line = f"MLPerf: {len(rows)} published results listed, {len(done)} scored"
    if done:
        errs = [abs(math.log(r["ratio"])) for r in done]
        line += (f"; median |ln ratio| {statistics.median(errs):.3f}, worst {max(errs):.3f}; "
                 f"within 20%: {sum(r['verdict'] == 'within 20%' for r in done)}/{len(done)}")  # fmt: skip
    return line + f"; {len(rows) - len(done)} not scored (see each row's reason)"


# --- vLLM and SGLang published benchmark tables (``engine_benchmarks``, their sources in
# ``engine_benchmark_sources``): closed-loop runs at a fixed client concurrency. ---


def engine_row_lengths(r: dict) -> tuple:
    """The row's input and output lengths as kvplan serves them: fixed where the tool's ``range_ratio`` is 0 (vLLM's
    random dataset, ``vllm bench serve``), else uniform on ``[ratio x len, len]`` (the InferenceX rows, ratio 0.8:
    mean ``(1 + ratio) / 2 x len``, p90 and p99 at those quantiles, sd ``(1 - ratio) x len / sqrt(12)``)."""
    from kvplan.serving import Lengths

    ratio = r["range_ratio"]

    def one(length: int) -> Lengths:
        if not ratio:
            return Lengths.of(length)
        low = ratio * length
        at = lambda q: round(low + q * (length - low))  # noqa: E731 (the uniform's quantile)
        return Lengths.of(at(0.5), at(0.9), at(0.99), sd=(length - low) / math.sqrt(12))

    return one(r["isl"]), one(r["osl"])


HOST_AB = Path(__file__).resolve().parent / "data" / "vllm_host_ab.json"


@functools.cache
def host_ab() -> dict:
    """The vLLM --async-scheduling pairs and their fitted host time (benchmarks/fit_host.py)."""
    return json.loads(HOST_AB.read_text())


def row_host(r: dict, engine) -> tuple[float | None, float | None]:  # noqa: ANN001
    """The host time (a step's, a request's: :func:`kvplan.host.step_with_host_s`) a row's run is given: the one
    fitted on its own lab's ``--async-scheduling`` pairs (``host_ab``, benchmarks/fit_host.py) where its source is
    one they apply to and its vLLM release runs the loop in turn (``HostLoop.overlaps_gpu`` False); else none, as
    kvplan prices steps by default (the GPU's)."""
    ab = host_ab()
    if r.get("source") not in ab["source"]["applies_to"] or engine.name != "vllm" or engine.host_loop.overlaps_gpu:
        return None, None
    return ab["fit"]["step_s"], ab["fit"]["request_s"]


_ROW_HOST = object()  # engine_row_setup's default: the row's own host time (row_host)


def engine_row_setup(r: dict, *, host: tuple[float | None, float | None] | object = _ROW_HOST):  # noqa: ANN202
    """kvplan's setup for a closed-loop row: the row's engine release, split and dtypes, its memory fraction
    (``gpu_memory_utilization`` or ``mem_fraction_static`` where the row states one), with at most ``concurrency``
    sequences (``max_num_seqs = min(concurrency, the engine's cap)``, the cap being the row's
    ``max_running_requests`` (SGLang) or ``max_num_seqs`` (vLLM) where the row states one, else the engine's default).
    A row's ``max_num_seqs`` may be the default of the engine version it ran where kvplan's rule set for it predates
    that default (the vLLM 0.9+ A100 batch defaults under the ``vllm@0.8`` rules). ``async_scheduling`` on a vLLM
    row: its launch's ``--async-scheduling``, the loop one step ahead (``HOST_LOOP_0_14``) on a release that runs it
    in turn by default. ``host``: (seconds a step, a request) of host time, by default the row's (:func:`row_host`)."""
    from kvplan.capacity import setup
    from kvplan.engines import Settings
    from kvplan.engines.vllm import HOST_LOOP_0_14

    def build(max_seqs: int | None):  # noqa: ANN202
        keys = ("gpu_memory_utilization", "mem_fraction_static")
        settings = Settings(max_num_seqs=max_seqs, **{k: r[k] for k in keys if k in r})
        s = setup(r["model"], r["gpu"], engine=r["engine"], tp=r["tp"], weights_dtype=r["weights"],
                  kv_dtype_name=r["kv"], settings=settings)  # fmt: skip
        if r.get("async_scheduling"):
            if s.engine.name != "vllm":
                raise ValueError(f"{r.get('label', r['model'])}: async_scheduling is a vLLM launch flag")
            s = dataclasses.replace(s, engine=dataclasses.replace(s.engine, host_loop=HOST_LOOP_0_14))
        step_s, request_s = row_host(r, s.engine) if host is _ROW_HOST else host
        if step_s or request_s:
            s = dataclasses.replace(s, settings=dataclasses.replace(s.settings, host_step_s=step_s,
                                                                    host_request_s=request_s))  # fmt: skip
        return s

    cap = r.get("max_running_requests") or r.get("max_num_seqs") or build(None).max_num_seqs
    return build(r["concurrency"] if cap is None else min(r["concurrency"], cap))


def score_engine_row(r: dict) -> dict:
    """kvplan's output tokens/s for one engine-table row: the finite closed-loop run (:func:`closed_loop_run` at the
    row's ``num_prompts`` and mean lengths) as ``kvplan_tok_s`` / ``ratio`` / ``verdict``, and the replica's steady
    state at that many sequences (:func:`kvplan.serving.max_rate` x mean OSL) as ``kvplan_steady_tok_s`` /
    ``ratio_steady``. ``max_num_batched_tokens`` on the row: the launch's token budget (SGLang's
    ``--chunked-prefill-size``), else the engine's; ``max_prefill_tokens``: SGLang's ``--max-prefill-tokens`` (the
    prompt batch's input cap, :class:`RetractRun`), else its default. The engine's API server
    (:attr:`Engine.front_end`, where its release has one) stands between the client and the engine in both: the run's
    requests pass its worker (:func:`front_end_worker`), the steady state is capped at its ceiling."""
    from kvplan.serving import max_rate

    s = engine_row_setup(r)
    inp, out = engine_row_lengths(r)
    budget = r.get("max_num_batched_tokens")
    steady = max_rate(s, input_len=inp, output_len=out, max_num_batched_tokens=budget) * out.mean
    run = engine_row_trace(r)["tok_s"]
    ratio = run / r["published_tok_s"]
    verdict = "within 20%" if abs(ratio - 1) <= TARGET else "missed"
    return {"kvplan_max_num_seqs": s.max_num_seqs, "kvplan_tok_s": round(run, 1), "ratio": round(ratio, 4),
            "verdict": verdict, "kvplan_steady_tok_s": round(steady, 1),
            "ratio_steady": round(steady / r["published_tok_s"], 4)}  # fmt: skip


def kv_sequences(s, inp, out) -> int:  # noqa: ANN001
    """Requests the replica's KV pool holds at once for these lengths: the bound :mod:`kvplan.serving` puts on its own
    batch (``serving._limits``: the binding pool over the tokens one running request holds, its prompt plus half its
    output on vLLM / SGLang, whole prompt + output where the engine reserves to completion), at least one.
    :func:`closed_loop_run` runs no more requests than this where the engine has no step-by-step KV rule
    (:attr:`Engine.kv_preemption` None); on vLLM :class:`BlockRun` holds the requests block by block instead
    (admission, decode growth, preemption and recompute), on SGLang :class:`RetractRun` token by token (admission
    against the outputs' reserve, retraction and recompute)."""
    from kvplan.serving import _limits

    return max(1, math.floor(_limits(s, inp, out)[0]))


@dataclasses.dataclass
class FrontEndWorker:
    """The API server's own work in a closed-loop run: one serial worker (the front-end process's event loop: vLLM's
    API server beside its engine-core process, SGLang's tokenizer manager beside its scheduler) that takes each request
    in turn, ``request_s`` seconds, before the engine sees it, and spends ``token_s`` seconds on each output token the
    engine returns (detokenizing, streaming it). Work is taken in the order it arrives: a request's when the client
    sends it, a step's tokens when the step ends. The client's last token arrives once the front end has handled it,
    so a run lasts until the later of the engine's last step and the front end's last work. ``together``
    (:attr:`FrontEnd.together`): requests the client sends at the same time reach the engine together, once the
    worker has done every one of them; else each as soon as its own work is done."""

    request_s: float
    token_s: float = 0.0
    free_s: float = 0.0  # when the worker is next free
    together: bool = False

    def admit(self, sent_s: float) -> float:
        """The time the engine sees a request the client sent at ``sent_s``."""
        self.free_s = max(self.free_s, sent_s) + self.request_s
        return self.free_s

    def admit_all(self, sent_s: float, requests: int) -> list[float]:
        """The times the engine sees each of ``requests`` requests the client sent at ``sent_s``."""
        seen = [self.admit(sent_s) for _ in range(requests)]
        return [self.free_s] * requests if self.together else seen

    def emit(self, clock: float, tokens: int) -> None:
        """A step ending at ``clock`` returned ``tokens`` output tokens."""
        if self.token_s and tokens:
            self.free_s = max(self.free_s, clock) + tokens * self.token_s


def _released(pending: deque, clock: float) -> list:
    """The requests of ``pending`` (``[time the engine sees it, request]``, in that order) the engine sees by ``clock``,
    taken off it."""
    out = []
    while pending and pending[0][0] <= clock:
        out.append(pending.popleft()[1])
    return out


CONTEXT_BUCKET = 64  # tokens: closed_loop_run prices decodes at their mean context rounded to this (step memo reuse)


def closed_loop_run(  # noqa: ANN201
    s,  # noqa: ANN001
    *,
    isl: int,
    osl: int,
    concurrency: int,
    prompts: int,
    budget: int | None = None,
    kv_seqs: int | None = None,
    prompt_tokens: int | None = None,
    front_end: FrontEndWorker | None = None,
):
    """Output tokens/s of a finite closed-loop benchmark at fixed lengths, stepped with kvplan's step times.

    The client (``vllm bench serve --max-concurrency C --num-prompts N --request-rate inf``) issues C requests at
    once and a new one each time one finishes, until N were issued; the reported output throughput is all output
    tokens over the run's duration, ramp-up and tail included. Each step runs as vLLM's V1 scheduler lays it out:
    every decoding request one token, then the prompts in arrival order chunked into what is left of the step's
    token budget (``budget``, else ``max_num_batched_tokens``), at most ``max_num_seqs`` requests running; a
    request whose prompt completes in a step has its first token at the step's end. A step costs
    :func:`kvplan.serving._step` (the decodes at their mean context, rounded to :data:`CONTEXT_BUCKET` tokens, and the
    chunk after the first chunked prompt's computed tokens). The client's own time between a response and the next
    request is not modelled. ``kv_seqs``: the most requests the KV pool holds (:func:`kv_sequences`), a second cap on
    the running requests, where the engine has no step-by-step KV rule; where it has one (vLLM V1's preemption,
    :attr:`Engine.kv_preemption`) the run is :class:`BlockRun`'s, block by block, and ``kv_seqs`` is not read (where
    the pool holds every request at its longest, :meth:`BlockRun.always_fits`, the plain loop below schedules the
    same steps and is taken, with no preemption); on SGLang (its admission reserve and retraction) it is
    :class:`RetractRun`'s, token by token, likewise (:meth:`RetractRun.always_fits`). ``prompt_tokens``: the launch's
    cap on a prompt batch's input tokens (SGLang ``--max-prefill-tokens``; None: the engine's default).
    ``front_end``: the API server's work (:class:`FrontEndWorker`) between the client and the engine (None: none).
    """
    return closed_loop_trace(s, isl=isl, osl=osl, concurrency=concurrency, prompts=prompts, budget=budget,
                             kv_seqs=kv_seqs, prompt_tokens=prompt_tokens, front_end=front_end)["tok_s"]  # fmt: skip


def prompt_attention_fix_s(s, segments: tuple[tuple[int, int], ...], kept: dict) -> float:  # noqa: ANN001
    """Seconds to add to a step whose prompt tokens come from several prompts (``segments``: each prompt's
    (tokens, prefix) in the step): kvplan's step (:func:`kvplan.latency.mixed_step_latency`) prices its chunk as one
    prompt's, after the first prompt's prefix, so its attention (and DeepSeek-V3.2's indexer) scores every token of
    the chunk against the chunk's earlier tokens; each prompt attends to its own tokens only (kvplan.serving prices
    a step of whole prompts as such, ``prefill_prompts``, and a long prompt's chunks one at a time). The fix: the
    prompts' attention FLOPs summed, each over its own causal past, at their token-weighted mean length, plus each
    prompt's indexer, with the kernels' fixed costs once (one variable-length launch per layer holds every prompt),
    minus the one-prompt figure. 0 with one prompt
    in the step, and with PP or DP (their steps are not additive in the attention): there the one-prompt figure
    stands. ``kept``: the run's cache by ``segments``."""
    if len(segments) < 2 or s.pp > 1 or s.dp > 1:
        return 0.0
    hit = kept.get(segments)
    if hit is None:
        from kvplan.latency import (
            _attention_s,
            _chunk_attention_s,
            _engine_ctx,
            _stage_flops,
            indexer_prefill_s,
            kernel_spec,
        )

        spec = kernel_spec(s.spec, s.engine.key, s.settings)
        c = _engine_ctx(spec, s.gpu, s.engine.key, kv_dtype=s.kv_dtype, tp=s.tp, weights_dtype=s.weights_dtype,
                        eager=True, ep=s.ep, dp=1, pp=1, gpus_per_node=s.gpus_per_node,
                        two_batch=s.settings.two_batch_overlap, deepep=s.settings.deepep)  # fmt: skip
        chunk, first_prefix = sum(t for t, _ in segments), segments[0][1]
        layers = range(spec.num_layers)
        flops = sum(_stage_flops(spec, layers, context=t, prefix=q, prompts=1, tp=s.tp) for t, q in segments)
        reach = round(sum(t * (q + t) for t, q in segments) / chunk)  # the prompts' mean length so far, by token
        # prefix: the Mamba2 kernels (hybrid models) run once over the chunk's tokens, on both sides alike
        each = _attention_s(c, phase="prefill", context=reach, batch=1, attention_flops=flops, kv_dtype=s.kv_dtype,
                            prefix=reach - chunk)  # fmt: skip
        each += sum(indexer_prefill_s(c, layers, context=t, prefix=q, prompts=1) for t, q in segments)
        hit = kept[segments] = each - _chunk_attention_s(c, None, chunk, first_prefix, s.kv_dtype)
    return hit


def closed_loop_trace(  # noqa: ANN201
    s,  # noqa: ANN001
    *,
    isl: int,
    osl: int,
    concurrency: int,
    prompts: int,
    budget: int | None = None,
    kv_seqs: int | None = None,
    prompt_tokens: int | None = None,
    front_end: FrontEndWorker | None = None,
):
    """:func:`closed_loop_run`'s run with its requests' times: ``tok_s`` (output tokens over the run's duration),
    ``duration_s``, and the client's per-request means as ``vllm bench serve`` prints them: ``mean_ttft_s`` (a
    request's send to its first token, the end of the step its prompt completes in; a request is sent when the
    previous one in its slot finishes, at that step's end) and ``mean_tpot_s`` (its first to its last token over
    ``osl - 1``). Where the engine runs prompt and decode batches as separate steps
    (``Engine.mixes_steps`` False: SGLang without ``--enable-mixed-chunk``), a step with prompt tokens to admit is a
    prompt-only step
    with the whole budget (its decodes wait), else a decode-only step."""
    from collections import deque

    from kvplan.serving import DEFAULT_TOKEN_BUDGET, _step

    budget = budget or s.max_num_batched_tokens or DEFAULT_TOKEN_BUDGET
    running_cap = min(s.max_num_seqs or concurrency, kv_seqs or concurrency)
    if s.engine.kv_preemption == "recompute_newest" and s.engine.mixes_prefill_with_decode:
        blocks = BlockRun(s, isl=isl, osl=osl, budget=budget)
        running_cap = min(s.max_num_seqs or concurrency, concurrency, prompts)
        if not blocks.always_fits(running_cap):
            return blocks.run(concurrency=concurrency, prompts=prompts, front_end=front_end)
        # else the pool never runs short: BlockRun would schedule exactly these steps (the same tests), only slower
    if _retracts(s):
        retracting = RetractRun(s, budget=budget, prompt_tokens=prompt_tokens)
        running_cap = min(s.max_num_seqs or concurrency, concurrency, prompts)
        if not retracting.always_fits(isl=isl, osl=osl, requests=running_cap):
            return retracting.run(isl=isl, osl=osl, concurrency=concurrency, prompts=prompts, front_end=front_end)
        # else no admission is refused and no request retracted: the plain loop below schedules the same steps
    # per request: [tokens left to prefill, send time], in arrival order; with a front end, each first on ``pending``
    # until the engine sees it
    first = min(concurrency, prompts)
    pending: deque = deque([at, [isl, 0.0]] for at in front_end.admit_all(0.0, first)) if front_end else deque()
    waiting = deque() if front_end else deque([isl, 0.0] for _ in range(first))
    issued, done, clock = first, 0, 0.0
    decoding: list[list] = []  # per decoding request: [tokens generated so far, first-token time, last-token time]
    ttfts: list[float] = []
    tpots: list[float] = []
    itls: list[float] = []  # every token's wait after the request's previous one (inter-token latencies)
    mixed = s.engine.mixes_steps(s.settings)
    fixes: dict = {}
    while done < prompts:
        if pending:
            if not decoding and not waiting:  # the engine idles until the front end hands it a request
                clock = max(clock, pending[0][0])
            waiting.extend(_released(pending, clock))
        n = len(decoding)
        room, chunk, first_prefix = budget - n if mixed else budget, 0, 0
        segments: list[tuple[int, int]] = []  # (tokens, prefix) of each prompt with a chunk in the step
        finished_prefill = 0
        for i, req in enumerate(waiting):
            left = req[0]
            if room <= 0 or n + i >= running_cap:
                break
            take = min(room, left)
            if i == 0:
                first_prefix = isl - left
            segments.append((take, isl - left))
            chunk, room = chunk + take, room - take
            req[0] = left - take
            finished_prefill += req[0] == 0
        context = isl + round((sum(d[0] for d in decoding) / n if n else 0) / CONTEXT_BUCKET) * CONTEXT_BUCKET
        decodes = n if mixed or not chunk else 0  # a prompt-only step advances no decode
        # one sum per step, as BlockRun._price gives it (the same float rounding both ways)
        clock += _step(
            s, n=float(decodes), p=float(chunk), context=context, prefix=first_prefix
        ) + prompt_attention_fix_s(s, tuple(segments), fixes)
        for d in decoding[:decodes]:
            d[0] += 1
            itls.append(clock - d[2])
            d[2] = clock
        for _ in range(finished_prefill):
            sent = waiting.popleft()[1]
            ttfts.append(clock - sent)
            decoding.append([1, clock, clock])
        finished = [d for d in decoding if d[0] >= osl]
        tpots += [(clock - d[1]) / (osl - 1) for d in finished if osl > 1]
        decoding = [d for d in decoding if d[0] < osl]
        done += len(finished)
        new = min(len(finished), prompts - issued)
        if front_end:
            front_end.emit(clock, decodes + finished_prefill)
            pending.extend([at, [isl, clock]] for at in front_end.admit_all(clock, new))
        else:
            waiting.extend([isl, clock] for _ in range(new))
        issued += new
    clock = max(clock, front_end.free_s) if front_end else clock
    out = {"tok_s": prompts * osl / clock, "duration_s": clock, "mean_ttft_s": statistics.fmean(ttfts),
           "mean_tpot_s": statistics.fmean(tpots) if tpots else None, "p99_itl_s": p99(itls)}  # fmt: skip
    if s.engine.kv_preemption == "recompute_newest" and s.engine.mixes_prefill_with_decode:
        out |= {"preemptions": 0, "recomputed_tokens": 0}  # the pool never ran short (above)
    if _retracts(s):
        out |= {"retractions": 0, "recomputed_tokens": 0}  # nothing refused or retracted (above)
    return out


def _retracts(s) -> bool:  # noqa: ANN001
    """Whether the closed-loop run is :class:`RetractRun`'s: an engine that admits against a reserve for the outputs
    to come and retracts on a shortfall (SGLang), with prompt and decode batches apart (its default)."""
    e = s.engine
    reserves = e.output_reserve is not None
    return e.kv_preemption == "retract_fewest_outputs" and reserves and not e.mixes_steps(s.settings)


def p99(samples: list[float]) -> float:
    """The 99th percentile of ``samples`` by nearest rank (0 for none): ``vllm bench serve``'s ITL p99 over every
    inter-token gap of the run."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


@dataclasses.dataclass(eq=False)
class Request:
    """One request of :class:`BlockRun`: its tokens computed (``computed``), generated (``generated``), blocks held
    (``blocks``), send and first-token times, preemptions, and its freed blocks' place in the free queue (``freed``)."""

    sent_s: float
    computed: int = 0
    generated: int = 0
    blocks: int = 0
    first_s: float | None = None
    last_s: float = 0.0  # its latest token's time
    preemptions: int = 0
    freed: list | None = None
    cached_blocks: int = 0  # full blocks of its computed tokens when last preempted (the ones a prefix cache keeps)


class BlockRun:
    """The closed-loop run block by block, as vLLM V1 schedules it (the rule: :attr:`Engine.kv_preemption`, its source
    in kvplan/engines/vllm.py beside ``Vllm.kv_preemption``).

    The pool: the busiest stage's units less the engine's own (:meth:`Layout.pool_units`, ``reserved_units``), a
    request's holding :meth:`Layout.step_units`. Each step: the running requests in order, each ``min(its uncomputed
    tokens, the budget left)`` (one for a decode); one whose blocks do not fit preempts the newest running request
    (blocks freed, computed tokens 0, to the head of the waiting queue) until they fit or it preempted itself, which
    ends the running pass. Without a preemption in the step, the waiting requests in order, while the budget lasts and
    fewer than ``max_num_seqs`` run, each with blocks for ``min(its uncomputed tokens, the budget left)``, its
    surviving cached blocks first (:meth:`Engine.keeps_freed_blocks`: the free queue hands out its head first and
    takes freed blocks at its tail, a request's last block first, so the prefix of a preempted request's blocks not
    yet handed out is found again, at most ``tokens - 1`` tokens); the first that does not fit stops the admission. A
    request whose tokens are all computed samples one (its first, or the next after a recompute). A step costs
    :func:`kvplan.serving._step` for its decodes and prompt tokens plus :func:`prompt_attention_fix_s` for its
    prompts' own attention, as :func:`closed_loop_trace`."""

    def __init__(self, s, *, isl: int, osl: int, budget: int) -> None:  # noqa: ANN001
        st = min(s.stages, key=lambda st: st.layout.pool_units(st.available))
        self.s, self.isl, self.osl, self.budget, self.layout = s, isl, osl, budget, st.layout
        self.free = (st.layout.pool_units(st.available) - st.layout.reserved_units) * s.dp * s.settings.attention_dp
        self.queue: deque = deque([[None, self.free]])  # free queue segments: [preempted request or None, blocks]
        self.caches = s.engine.keeps_freed_blocks(s.settings)
        self.max_seqs = s.max_num_seqs
        self.preemptions = 0
        self._units: dict[tuple[int, int], int] = {}
        self._decode_units: dict[int, int] = {}
        self.recomputed_tokens = 0  # tokens computed again after a preemption (those not found cached)
        self._fixes: dict = {}  # prompt_attention_fix_s's cache by the step's prompt segments

    def units(self, tokens: int, chunk: int) -> int:
        """:meth:`Layout.step_units`, memoized (a decode step asks it once per running request)."""
        key = (tokens, chunk)
        got = self._units.get(key)
        if got is None:
            got = self._units[key] = self.layout.step_units(tokens, chunk=chunk)
        return got

    def always_fits(self, requests: int) -> bool:
        """Whether ``requests`` requests each holding their most (all ``isl + osl`` tokens, a budget-sized chunk in a
        window) fit the pool at once: then no allocation fails and no request is preempted."""
        longest = self.isl + self.osl
        return requests * self.units(longest, min(self.budget, longest)) <= self.free

    def tokens(self, q: Request) -> int:
        return self.isl + q.generated

    def _take(self, blocks: int) -> None:
        """Hand ``blocks`` out from the free queue's head (block_pool.py get_new_blocks, popleft)."""
        self.free -= blocks
        while blocks:
            seg = self.queue[0]
            used = min(blocks, seg[1])
            seg[1] -= used
            blocks -= used
            if not seg[1]:
                self.queue.popleft()

    def _release(self, q: Request, *, cached: bool) -> None:
        self.free += q.blocks
        seg = [q if cached else None, q.blocks]
        if q.blocks:
            self.queue.append(seg)
        q.freed, q.blocks = (seg if cached else None), 0

    def _cached(self, q: Request) -> int:
        """Blocks a waiting request finds cached (kv_cache_manager.get_computed_blocks): the prefix of its freed blocks
        the free queue has not handed out, at most the full blocks of the tokens it had computed and of its ``tokens -
        1``. Where the engine keeps several groups (a sliding window beside full attention), the blocks handed out
        first are taken to be the ones no hit needs (its partial and window blocks): an upper bound on the hit."""
        seg = q.freed
        if not self.caches or seg is None or seg[0] is not q:
            return 0
        return min(seg[1], q.cached_blocks, (self.tokens(q) - 1) // self.layout.block_tokens)

    def _admit(self, q: Request, room: int) -> int:
        """Blocks for a waiting request's next ``min(uncomputed, room)`` tokens, its cached ones first; 0 (nothing
        taken) where they do not fit, else the tokens scheduled."""
        hit = self._cached(q)
        computed = hit * self.layout.block_tokens
        new = min(self.tokens(q) - computed, room)
        need = self.units(computed + new, new)
        if need > self.free:
            return 0
        seg, q.freed = q.freed, None
        if seg is not None and seg[0] is q:
            seg[0], seg[1] = None, seg[1] - hit  # the blocks past the hit stay free, found no more
            self.free -= hit
            if hit and not seg[1]:
                del self.queue[next(i for i, x in enumerate(self.queue) if x is seg)]
        self._take(need - hit)
        q.blocks, q.computed = need, computed
        self.recomputed_tokens -= computed
        return new

    def _preempt(self, running: list, waiting: deque) -> Request:
        victim = running.pop()
        self._release(victim, cached=self.caches)
        self.recomputed_tokens += victim.computed  # less what _admit finds cached
        victim.cached_blocks = victim.computed // self.layout.block_tokens
        victim.computed = 0
        victim.preemptions += 1
        self.preemptions += 1
        waiting.appendleft(victim)
        return victim

    def _schedule(self, running: list, waiting: deque) -> list[tuple[Request, int]]:
        """One step's (request, tokens) pairs, running ones first, as Scheduler.schedule picks them (the newest running
        request, the one preempted, is never one already picked: those come before it)."""
        room, picked, preempted, isl = self.budget, [], False, self.isl
        decode_units, units = self._decode_units, self.units  # the hot path: a decode's blocks by its tokens
        i = 0
        while i < len(running) and room > 0:
            q = running[i]
            new = isl + q.generated - q.computed
            if new == 1:
                held = decode_units.get(q.computed + 1)
                if held is None:
                    held = decode_units[q.computed + 1] = units(q.computed + 1, 1)
            else:
                new = new if new < room else room
                held = units(q.computed + new, new)
            need = held - q.blocks
            if need < 0:  # blocks that left a window or a finished chunk (remove_skipped_blocks): freed, not cached
                self.free -= need
                self.queue.append([None, -need])
                q.blocks += need
            elif need > 0:  # else its blocks cover the step already
                while need > self.free:
                    preempted = True
                    if self._preempt(running, waiting) is q:
                        return picked
                self._take(need)
                q.blocks += need
            picked.append((q, new))
            room -= new
            i += 1
        if preempted:
            return picked
        while waiting and room > 0 and (self.max_seqs is None or len(running) < self.max_seqs):
            q = waiting[0]
            new = self._admit(q, room)
            if not new:
                break
            waiting.popleft()
            running.append(q)
            picked.append((q, new))
            room -= new
        return picked

    def _price(self, picked: list[tuple[Request, int]]) -> float:
        """The step's time: its decodes (a request with every token but its newest computed, one scheduled) at their
        mean context, its other tokens as prompt chunks after the first chunk's computed tokens."""
        from kvplan.serving import _step

        isl, decodes, generated, chunk, first_prefix = self.isl, 0, 0, 0, None
        segments: list[tuple[int, int]] = []  # (tokens, prefix) of each prompt with a chunk in the step
        for q, n in picked:
            if n == 1 and q.generated and q.computed == isl + q.generated - 1:
                decodes, generated = decodes + 1, generated + q.generated
            else:
                chunk += n
                segments.append((n, q.computed))
                first_prefix = q.computed if first_prefix is None else first_prefix
        context = isl + round((generated / decodes if decodes else 0) / CONTEXT_BUCKET) * CONTEXT_BUCKET
        step_s = _step(self.s, n=float(decodes), p=float(chunk), context=context, prefix=first_prefix or 0)
        return step_s + prompt_attention_fix_s(self.s, tuple(segments), self._fixes)

    def run(self, *, concurrency: int, prompts: int, front_end: FrontEndWorker | None = None) -> dict:
        """The client's run (as :func:`closed_loop_trace`): its throughput, duration, mean TTFT and TPOT, ITL p99, the
        preemptions and recomputed tokens on the way, and the running requests' time-weighted mean. ``front_end``:
        the API server's work before the engine sees each request and after each step (:class:`FrontEndWorker`)."""
        first = min(concurrency, prompts)
        pending: deque = deque([at, Request(0.0)] for at in front_end.admit_all(0.0, first)) if front_end else deque()
        waiting = deque() if front_end else deque(Request(0.0) for _ in range(first))
        issued, running, clock = first, [], 0.0
        ttfts, tpots, itls, done, isl, osl, held_s = [], [], [], 0, self.isl, self.osl, 0.0
        while done < prompts:
            if pending:
                if not running and not waiting:  # the engine idles until the front end hands it a request
                    clock = max(clock, pending[0][0])
                waiting.extend(_released(pending, clock))
            picked = self._schedule(running, waiting)
            step_s = self._price(picked)
            clock += step_s
            held_s += len(running) * step_s
            finished = sampled = 0
            for q, n in picked:
                q.computed += n
                if q.computed < isl + q.generated:
                    continue
                q.generated += 1
                sampled += 1
                if q.first_s is None:
                    q.first_s = clock
                    ttfts.append(clock - q.sent_s)
                else:
                    itls.append(clock - q.last_s)
                q.last_s = clock
                if q.generated >= osl:
                    finished += 1
                    self._release(q, cached=False)  # random prompts: never found again
                    tpots += [(clock - q.first_s) / (osl - 1)] if osl > 1 else []
            if finished:
                running[:] = [q for q in running if q.generated < osl]
            done += finished
            new = min(finished, prompts - issued)
            if front_end:
                front_end.emit(clock, sampled)
                pending.extend([at, Request(clock)] for at in front_end.admit_all(clock, new))
            else:
                waiting.extend(Request(clock) for _ in range(new))
            issued += new
        clock = max(clock, front_end.free_s) if front_end else clock
        return {"tok_s": prompts * osl / clock, "duration_s": clock, "mean_ttft_s": statistics.fmean(ttfts),
                "mean_tpot_s": statistics.fmean(tpots) if tpots else None, "p99_itl_s": p99(itls),
                "preemptions": self.preemptions,
                "recomputed_tokens": self.recomputed_tokens, "mean_running": held_s / clock}  # fmt: skip


@dataclasses.dataclass(eq=False)
class Retractable:
    """One request of :class:`RetractRun`: its prompt and output lengths, the tokens it holds in the pool
    (``computed``), its output tokens (``generated``), the tokens of it the prefix cache holds (``cached``: locked while
    it runs; an evictable entry, ``entry``, once retracted, last accessed at ``cached_s``), its send, first- and
    last-token times and retractions."""

    sent_s: float
    isl: int
    osl: int
    computed: int = 0
    generated: int = 0
    cached: int = 0
    cached_s: float = 0.0
    entry: list | None = None  # while retracted: its prompt's evictable cache entry [last access, order, owner, tokens]
    first_s: float | None = None
    last_s: float = 0.0
    retractions: int = 0

    def fill(self) -> int:
        """Its prompt and output tokens so far: what a prefill of it (again) computes, less a cached prefix."""
        return self.isl + self.generated


class RetractRun:
    """SGLang's scheduler token by token (:attr:`Engine.kv_preemption` ``"retract_fewest_outputs"`` with
    :attr:`Engine.output_reserve`; every rule and its source in kvplan/engines/sglang.py beside OUTPUT_RESERVE) on one
    replica whose prompt and decode batches are separate steps (``Engine.mixes_steps`` False), the scheduler's plain
    loop (event_loop_normal: the default overlap loop processes a batch's results one batch later, not modelled). A
    driver (the closed loop, :meth:`run`, or ``benchmarks/serving_sim.py --retract``'s Poisson arrivals) puts requests
    on ``waiting``, then calls :meth:`step`, :meth:`price` and :meth:`finish`.

    The pool is ``free`` tokens (page 1; over every data-parallel rank, as :class:`BlockRun` takes it) beside the
    prefix cache's evictable entries (a finished request's tokens, a retracted request's cached prefix), which count as
    free and are evicted whole, least recently accessed first, when an allocation finds fewer free tokens than it asks
    (it then evicts as many as it asks). Each iteration:

    * **a prompt batch** (Scheduler.get_new_batch_prefill), unless the batch is marked full (by a refusal or the
      running cap, until a request leaves the running batch) or nothing waits: the chunked request's next chunk first
      (add_chunked_req: the token budget, at most what the reserves leave), then the waiting requests in order
      (PrefillAdder.add_one_req), each refused, marking the batch full, once its uncomputed tokens plus
      ``min(output asked, clip)`` reach the free and evictable tokens less ``ratio x min(output left, clip)`` for each
      running request and what this batch already took (its inputs and whole clipped outputs), or stopping the batch
      where its tokens reach the step's input cap in a batch that holds one; the one that does not fit the token
      budget goes in as a chunk;
    * else **a decode batch** of every running request (update_running_batch): where fewer free tokens than requests
      are left after evicting, running requests are retracted (:meth:`_retract`) and the ratio set from the requests
      left, else the ratio falls by its decay to its floor; then a token slot each;
    * else nothing runs (self_check_during_idle): the ratio goes back to its start.

    A request whose prompt (and outputs, after a retraction) is all computed samples a token and joins the running
    batch, its computed tokens cached (cache_unfinished_req); one with all its output tokens leaves, its tokens an
    evictable entry. Steps are priced as :class:`BlockRun`'s (:func:`kvplan.serving._step` plus
    :func:`prompt_attention_fix_s`)."""

    def __init__(self, s, *, budget: int, prompt_tokens: int | None = None) -> None:  # noqa: ANN001
        st = min(s.stages, key=lambda st: st.layout.pool_tokens(st.available))
        self.s, self.budget, self.rule = s, budget, s.engine.output_reserve
        self.prompt_tokens = prompt_tokens or self.rule.prompt_step_tokens  # the launch's --max-prefill-tokens
        self.free = st.layout.pool_tokens(st.available) * s.dp * s.settings.attention_dp
        self.evictable: list = []  # heap of [last access, order, owner (a retracted request) or None, tokens]
        self.evictable_tokens = 0
        self._order = itertools.count()
        self.running: list[Retractable] = []
        self.waiting: deque = deque()
        self.chunked: Retractable | None = None
        self.max_seqs = s.max_num_seqs
        c = self.rule.conservativeness(s.settings, dp_attention=s.dp * s.settings.attention_dp > 1)
        self.start, self.floor, self.decay = self.rule.start_ratio(c), self.rule.floor_ratio(c), self.rule.decay(c)
        self.ratio = self.start
        self.full = False  # batch_is_full
        self.shrunk = False  # a request left the running batch since the last decode batch (its filter_batch)
        self.retractions = 0
        self.recomputed_tokens = 0  # tokens computed again after a retraction (those the cache no longer held)
        self.ttfts: list[float] = []
        self.itls: list[float] = []  # every token's wait after the request's previous one
        self._fixes: dict = {}

    # -- the prefix cache --

    def _add_entry(self, owner: Retractable | None, tokens: int, when: float) -> list:
        entry = [when, next(self._order), owner, tokens]
        heapq.heappush(self.evictable, entry)
        self.evictable_tokens += tokens
        return entry

    def _drop_entry(self, entry: list) -> None:
        """Take ``entry`` out of the evictable tokens (locked by its request again, moved, or evicted)."""
        self.evictable_tokens -= entry[3]
        entry[3] = 0  # left in the heap, dead
        if entry[2] is not None:
            entry[2].entry = None

    def _evict(self, tokens: int) -> None:
        """evict_from_tree_cache: where fewer than ``tokens`` are free, radix_cache.evict(tokens), whole entries, least
        recently accessed first, until ``tokens`` are freed or none is left."""
        if self.free >= tokens:
            return
        freed = 0
        while freed < tokens and self.evictable:
            entry = heapq.heappop(self.evictable)
            if not entry[3]:
                continue
            freed += entry[3]
            self.free += entry[3]
            owner = entry[2]
            self._drop_entry(entry)
            if owner is not None:
                owner.cached = 0

    def _touch(self, q: Retractable, now: float) -> None:
        """match_prefix (init_next_round_input) makes the request's cached entry the most recently accessed."""
        if q.entry is not None and q.entry[0] < now:
            tokens = q.entry[3]
            self._drop_entry(q.entry)
            q.entry = self._add_entry(q, tokens, now)

    # -- admission --

    def _asked(self, q: Retractable) -> int:
        left = q.osl - q.generated if self.rule.readmit_remaining else q.osl
        return min(max(left, 0), self.rule.clip_tokens)

    def _prefill(self, now: float) -> list[tuple[Retractable, int, int]]:
        """get_new_batch_prefill: [(request, tokens computed now, its tokens computed before)], [] for no batch."""
        if (self.full or not self.waiting) and self.chunked is None:
            return []
        if self.max_seqs is not None and len(self.running) >= self.max_seqs and self.chunked is None:
            self.full = True
            return []
        clip = self.rule.clip_tokens
        offset = sum(min(q.osl - q.generated, clip) * self.ratio for q in self.running)
        rem_chunk = self.budget
        rem_input = self.prompt_tokens or math.inf
        picked: list[tuple[Retractable, int, int]] = []
        if self.chunked is not None:  # add_chunked_req
            q = self.chunked
            left = q.fill() - q.computed
            take = min(rem_chunk, int(self.free + self.evictable_tokens - offset))
            take = min(left, rem_chunk if take <= 0 else take)
            done = take == left
            offset += take + (min(q.osl, clip) if done else 0)
            rem_chunk, rem_input = rem_chunk - take, rem_input - take
            picked.append((q, take, q.computed))
            self.chunked = None if done else q
        admitted = 0
        for q in self.waiting:
            if self.max_seqs is not None and len(picked) >= self.max_seqs - len(self.running):
                self.full = True
                break
            self._touch(q, now)
            hit = min(q.cached, q.fill() - 1)
            new = q.fill() - hit
            total = new + self._asked(q)
            locked = q.entry[3] if q.entry is not None else 0  # the lock takes its cached entry out of the evictable
            if total >= self.free + self.evictable_tokens - offset or (
                total >= self.free + self.evictable_tokens - locked - offset
            ):
                self.full = True
                break
            if new >= rem_input and picked:
                break
            if new <= rem_chunk:
                take = new
                offset += new + min(q.osl, clip)
            else:
                if rem_chunk <= 0:
                    break
                take = rem_chunk
                offset += take
                self.chunked = q
            if q.entry is not None:
                self._drop_entry(q.entry)
            q.cached = q.computed = hit
            self.recomputed_tokens -= hit
            picked.append((q, take, hit))
            admitted += 1
            rem_chunk, rem_input = rem_chunk - take, rem_input - take
            if self.free + self.evictable_tokens - offset <= 0:  # budget_state
                self.full = True
                break
            if rem_input <= 0 or rem_chunk <= 0:
                break
        for _ in range(admitted):
            self.waiting.popleft()
        tokens = sum(n for _, n, _ in picked)
        self._evict(tokens)  # alloc_token_slots for the batch's extend tokens
        self.free -= tokens
        return picked

    # -- decode and retraction --

    def _decode_fits(self, requests: int) -> bool:
        """check_decode_mem: a token slot a request free, after evicting."""
        self._evict(requests)
        return self.free >= requests

    def _retract(self) -> None:
        """ScheduleBatch.retract_decode: fewest outputs first (ties: the longest prompt, then the latest in the batch),
        at least one and until the others' tokens fit, always keeping one; each frees its tokens past its cached
        prefix, which becomes an evictable entry (last accessed when cached), and goes to the waiting queue's tail;
        after each, the cache is evicted where fewer than ``retract_steps`` tokens a request left are free. The batch
        keeps the sorted order; the ratio is set from the requests left; the batch is no longer full."""
        running = self.running
        order = sorted(range(len(running)), key=lambda i: (running[i].generated, -running[i].isl), reverse=True)
        first = True
        while first or not self._decode_fits(len(order)):
            if len(order) == 1:
                break
            first = False
            q = running[order.pop()]
            self.free += q.computed - q.cached
            if q.cached:
                q.entry = self._add_entry(q, q.cached, q.cached_s)
            self.recomputed_tokens += q.computed
            q.computed = 0
            q.retractions += 1
            self.retractions += 1
            self.waiting.append(q)
            self._evict(len(order) * self.rule.retract_steps)
        self.running = [running[i] for i in order]
        self.ratio = self.rule.ratio_after_retraction(decoded=sum(q.generated for q in self.running),
                                                      asked=sum(q.osl for q in self.running),
                                                      requests=len(self.running))  # fmt: skip
        self.full = False

    def always_fits(self, *, isl: int, osl: int, requests: int) -> bool:
        """Whether ``requests`` requests each reserving and holding at most ``isl + osl`` tokens leave every admission
        room and every decode its tokens (``requests x (isl + osl)`` below the pool: a running request's tokens and
        reserve never pass ``isl + osl``, the ratio being at most 1), and no prompt reaches the step's input cap (its
        tokens below the cap less what the step's other prompts, at most ``requests - 1`` of them and the budget, took):
        then no request is refused for its reserve or retracted, and the plain closed loop schedules the same steps."""
        cap = self.prompt_tokens
        before = min((requests - 1) * isl, self.budget)
        return requests * (isl + osl) < self.free and (cap is None or isl + before < cap)

    def step(self, now: float) -> tuple[str, list]:
        """The next batch: ("prefill", [(request, tokens, computed before)]), ("decode", the running requests), or
        ("idle", []) where nothing can run until a request arrives."""
        picked = self._prefill(now)
        if picked:
            return "prefill", picked
        if self.shrunk:  # update_running_batch's filter_batch
            self.full, self.shrunk = False, False
        if not self.running:
            self.ratio = self.start  # an iteration with no batch: self_check_during_idle
            picked = self._prefill(now)
            return ("prefill", picked) if picked else ("idle", [])
        if self._decode_fits(len(self.running)):
            self.ratio = max(self.ratio - self.decay, self.floor)
        else:
            self._retract()
        self.free -= len(self.running)
        return "decode", list(self.running)

    def price(self, kind: str, batch: list) -> float:
        """The step's time, as :meth:`BlockRun._price` prices one (one kind of batch here)."""
        from kvplan.serving import _step

        if kind == "decode":
            generated = sum(q.generated for q in batch) / len(batch)
            context = batch[0].isl + round(generated / CONTEXT_BUCKET) * CONTEXT_BUCKET
            return _step(self.s, n=float(len(batch)), p=0.0, context=context)
        segments = tuple((n, prefix) for _, n, prefix in batch)
        step_s = _step(self.s, n=0.0, p=float(sum(n for n, _ in segments)), context=batch[0][0].isl,
                       prefix=segments[0][1])  # fmt: skip
        return step_s + prompt_attention_fix_s(self.s, segments, self._fixes)

    def finish(self, kind: str, batch: list, clock: float) -> list[Retractable]:
        """The batch's results at ``clock``: tokens sampled, prefixes cached, the finished requests (returned) out."""
        finished: list[Retractable] = []
        if kind == "prefill":
            for q, n, _ in batch:
                q.computed += n
                q.cached, q.cached_s = q.computed, clock  # cache_unfinished_req (a chunk too)
                if q is not self.chunked:
                    self._sample(q, clock, finished)
                    if q.generated < q.osl:
                        self.running.append(q)  # merge_batch
        elif kind == "decode":
            for q in batch:
                q.computed += 1
                self._sample(q, clock, finished)
            if finished:
                self.running = [q for q in self.running if q.generated < q.osl]
        return finished

    def _sample(self, q: Retractable, clock: float, finished: list) -> None:
        if q.first_s is None:
            q.first_s = clock
            self.ttfts.append(clock - q.sent_s)
        else:
            self.itls.append(clock - q.last_s)
        q.generated += 1
        q.last_s = clock
        if q.generated >= q.osl:  # cache_finished_req: all its tokens one evictable entry
            self._add_entry(None, q.computed, clock)
            q.cached = 0
            finished.append(q)
            self.shrunk = True

    def run(
        self, *, isl: int, osl: int, concurrency: int, prompts: int, front_end: FrontEndWorker | None = None
    ) -> dict:
        """The closed-loop client's run (as :meth:`BlockRun.run`), with the retractions and recomputed tokens."""
        first = min(concurrency, prompts)
        pending: deque = deque()
        if front_end:
            pending.extend([at, Retractable(0.0, isl, osl)] for at in front_end.admit_all(0.0, first))
        else:
            self.waiting.extend(Retractable(0.0, isl, osl) for _ in range(first))
        issued, clock, done, held_s, tpots = first, 0.0, 0, 0.0, []
        while done < prompts:
            self.waiting.extend(_released(pending, clock))
            kind, batch = self.step(clock)
            if kind == "idle" and pending:  # nothing to run until the front end hands the engine a request
                clock = max(clock, pending[0][0])
                continue
            if kind == "idle":  # a request asking more than the whole pool: the engine refuses it at its door
                raise ValueError(f"{isl} + {osl} tokens do not fit SGLang's pool of {self.free} tokens")
            step_s = self.price(kind, batch)
            clock += step_s
            held_s += len(self.running) * step_s
            tokens = len(self.ttfts) + len(self.itls)
            finished = self.finish(kind, batch, clock)
            tpots += [(clock - q.first_s) / (osl - 1) for q in finished if osl > 1]
            done += len(finished)
            new = min(len(finished), prompts - issued)
            if front_end:
                front_end.emit(clock, len(self.ttfts) + len(self.itls) - tokens)
                pending.extend([at, Retractable(clock, isl, osl)] for at in front_end.admit_all(clock, new))
            else:
                self.waiting.extend(Retractable(clock, isl, osl) for _ in range(new))
            issued += new
        clock = max(clock, front_end.free_s) if front_end else clock
        return {"tok_s": prompts * osl / clock, "duration_s": clock, "mean_ttft_s": statistics.fmean(self.ttfts),
                "mean_tpot_s": statistics.fmean(tpots) if tpots else None, "p99_itl_s": p99(self.itls),
                "retractions": self.retractions, "recomputed_tokens": self.recomputed_tokens,
                "mean_running": held_s / clock}  # fmt: skip


def front_end_worker(s, *, chat: bool = True, release: str | None = None) -> FrontEndWorker | None:  # noqa: ANN001
    """A fresh worker for the setup's engine's API server (:attr:`Engine.front_end`), its cost a request of the setup's
    model on the chat endpoint (``chat``) or the completions one, on ``release`` (:meth:`FrontEnd.cost_s`); None where
    its release has none."""
    fe = s.engine.front_end
    if fe is None:
        return None
    return FrontEndWorker(fe.cost_s(s.spec.family, chat=chat, release=release), fe.token_s, together=fe.together)


def row_chat(r: dict) -> bool:
    """Whether the row's client sent chat requests (``endpoint`` ``/v1/chat/completions``: ``vllm bench serve
    --backend openai-chat``); else completions, the tool's default (``--backend openai``, vllm/benchmarks/serve.py
    0.11.0)."""
    return r.get("endpoint") == "/v1/chat/completions"


_ENGINE_FRONT_END = object()  # engine_row_trace's default: the engine's own API server


def engine_row_trace(
    r: dict,
    *,
    front_end: FrontEndWorker | None | object = _ENGINE_FRONT_END,
    host: tuple[float | None, float | None] | object = _ROW_HOST,
) -> dict:
    """:func:`closed_loop_trace` for a row, set up as :func:`score_engine_row` scores it; ``front_end``: another API
    server worker (None: none), else the engine's own (:func:`front_end_worker`); ``host``: another host time
    (:func:`engine_row_setup`)."""
    s = engine_row_setup(r, host=host)
    inp, out = engine_row_lengths(r)
    chat, release = row_chat(r), r["engine_version"]
    worker = front_end_worker(s, chat=chat, release=release) if front_end is _ENGINE_FRONT_END else front_end
    return closed_loop_trace(s, isl=inp.mean, osl=out.mean, concurrency=r["concurrency"], prompts=r["num_prompts"],
                             budget=r.get("max_num_batched_tokens"), kv_seqs=kv_sequences(s, inp, out),
                             prompt_tokens=r.get("max_prefill_tokens"), front_end=worker)  # fmt: skip


def phase_lines(rows: list[dict], *, markdown: bool = False) -> list[str]:
    """Where a row's printout gives the client's mean TTFT and TPOT (``printed``): kvplan's run's means beside them
    (:func:`engine_row_trace`), kvplan / published, to tell a prompt-phase miss from a decode-phase one, and the
    run's preemptions (vLLM, :class:`BlockRun`) or retractions (SGLang, :class:`RetractRun`) and recomputed tokens.
    Diagnostic only: nothing is scored on it."""
    head = ("model", "engine", "GPU", "TP", "ISL/OSL", "concurrency / prompts", "mean TTFT published / kvplan (ms)",
            "TTFT ratio", "mean TPOT published / kvplan (ms)", "TPOT ratio",
            "kvplan preemptions or retractions (recomputed tokens)", "throughput ratio")  # fmt: skip
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] if markdown else ["  ".join(head)]
    for r in rows:
        p = r.get("printed", {})
        if "mean_ttft_ms" not in p or "ratio" not in r:
            continue
        tr = engine_row_trace(r)
        ttft, tpot = tr["mean_ttft_s"] * 1e3, (tr["mean_tpot_s"] or 0.0) * 1e3
        tpot_ratio = f"x{tpot / p['mean_tpot_ms']:.2f}" if tr["mean_tpot_s"] else "-"
        stopped = tr.get("preemptions", tr.get("retractions"))  # BlockRun's, RetractRun's
        preempted = "-" if stopped is None else f"{stopped} ({tr['recomputed_tokens']})"
        cells = (r["label"], f"{r['engine_version']} / {r['engine']}", r["gpu"], str(r["tp"]), f"{r['isl']}/{r['osl']}",
                 f"{r['concurrency']} / {r['num_prompts']}", f"{p['mean_ttft_ms']:.0f} / {ttft:.0f}",
                 f"x{ttft / p['mean_ttft_ms']:.2f}", f"{p['mean_tpot_ms']:.1f} / {tpot:.1f}", tpot_ratio, preempted,
                 f"x{r['ratio']:.2f}")  # fmt: skip
        out.append("| " + " | ".join(cells) + " |" if markdown else "  ".join(cells))
    return out


def prompt_phase_rows(rows: list[dict]) -> list[dict]:
    """The engine rows that carry the page's latency columns (``published_ttft_ms`` ...), each with kvplan's figures
    for the same finite run (:func:`engine_row_trace`)."""
    return [{"label": r["label"], "concurrency": r["concurrency"], "published": r, **engine_row_trace(r)}
            for r in rows if "published_ttft_ms" in r]  # fmt: skip


def prompt_phase_lines(rows: list[dict]) -> list[str]:
    """One line per row: the page's mean TTFT, mean TPOT and ITL p99 against kvplan's run (``page / kvplan``)."""
    lines = ["prompt phase (the page's latency columns / kvplan's run of the same client, ms):"]
    for x in rows:
        p = x["published"]
        lines.append(f"  {x['label']} c={x['concurrency']}: TTFT {p['published_ttft_ms']:g} / "
                     f"{x['mean_ttft_s'] * 1e3:.1f} (x{p['published_ttft_ms'] / (x['mean_ttft_s'] * 1e3):.1f}), "
                     f"TPOT {p['published_tpot_ms']:g} / {x['mean_tpot_s'] * 1e3:.2f}, ITL p99 "
                     f"{p['published_itl_p99_ms']:g} / {x['p99_itl_s'] * 1e3:.2f} "
                     f"(x{p['published_itl_p99_ms'] / (x['p99_itl_s'] * 1e3):.1f})")  # fmt: skip
    return lines


def compare_engine_rows(rows: list[dict]) -> list[dict]:
    return [dict(r) if "not_scored" in r else {**r, **score_engine_row(r)} for r in rows]


def engine_rows_summary(rows: list[dict], sources: dict) -> list[str]:
    """One line per source of the vLLM / SGLang tables, then one for all of them."""
    out = []
    groups = [(name, [r for r in rows if r["source"] == name]) for name in sources] + [("vLLM + SGLang tables", rows)]
    for name, part in groups:
        done = [r for r in part if "ratio" in r and "not_in_statistics" not in r]
        if not done:
            continue
        s = stats(done)
        engine = f" ({sources[name]['engine']})" if name in sources else ""
        kept_out = sum("not_in_statistics" in r for r in part)
        out_note = f", {kept_out} scored but kept out (reason on the row)" if kept_out else ""
        out.append(f"{name}{engine}: {s['compared']} points compared, {len(part) - len(done) - kept_out} not scored"
                   f"{out_note}; median |ln ratio| {s['median_abs_ln']:.3f}, worst {s['worst_abs_ln']:.3f}, median "
                   f"signed {s['median_signed_ln']:+.3f}; within 20%: {s['within_20pct']}/{s['compared']}")  # fmt: skip
    return out


def _print_engine_rows(rows: list[dict], sources: dict, *, markdown: bool) -> None:
    """The vLLM / SGLang rows: setup, published and kvplan output tokens/s (the finite run), ratio, and the ratio of
    the steady state at the same concurrency; unscored ones with their reason."""
    head = ("source", "engine (run / kvplan)", "model", "GPU", "TP", "ISL/OSL", "concurrency / prompts",
            "published tok/s", "kvplan tok/s (run)", "ratio", "steady-state ratio")  # fmt: skip
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
    for r in rows:
        ratio = f"x{r['ratio']:.2f}" if "ratio" in r else f"not scored: {r['not_scored']}"
        if "not_in_statistics" in r:
            ratio += f" ({r['not_in_statistics']})"
        kv = f"{r['kvplan_tok_s']:.0f}" if "kvplan_tok_s" in r else "-"
        src = f"[{r['source']}]({sources[r['source']]['url']})" if markdown else r["source"]
        steady = f"x{r['ratio_steady']:.2f}" if "ratio_steady" in r else "-"
        cells = (src, f"{r['engine_version']} / {r['engine']}", r["label"], r["gpu"], str(r["tp"]),
                 f"{r['isl']}/{r['osl']}", f"{r['concurrency']} / {r['num_prompts']}", f"{r['published_tok_s']:g}", kv,
                 ratio, steady)  # fmt: skip
        print("| " + " | ".join(cells) + " |" if markdown else "  ".join(cells))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--update-data", action="store_true", help="store the MLPerf scores on the rows of --data")
    ap.add_argument("--bench-heuristic", action="store_true",
                    help="also score the v1.0 FP8 rows without trtllm-bench's token cap (until stop 29)")  # fmt: skip
    ap.add_argument("--residual", action="store_true",
                    help="also print each v1.0 FP8 row's step residual (what kvplan's step lacks, in ms)")  # fmt: skip
    ap.add_argument("--imbalance", action="store_true",
                    help="also score the decode-heavy attention-DP rows at 1, 2, 3, 6 x the EP imbalance")  # fmt: skip
    ap.add_argument("--host-floor", action="store_true",
                    help="for the v1.0 rows over 20%%, the host time per request that explains each miss")  # fmt: skip
    ap.add_argument("--dp-balance", action="store_true",
                    help="the attention-DP rows also with every rank's prompt chunks in the same steps")  # fmt: skip
    ap.add_argument("--mlperf-balance", action="store_true",
                    help="the MLPerf rows with the attention-DP balancer: off and as configured, the Server limits "
                         "with its holds, and the Offline step residual added to every step")  # fmt: skip
    ap.add_argument("--streaming", action="store_true",
                    help="the MLPerf rows whose harness streams every token: the Offline residual held, and the host "
                         "time per streamed response that would close the rest (a diagnostic)")  # fmt: skip
    ap.add_argument("--phases", action="store_true",
                    help="vLLM / SGLang rows with a printout: kvplan's mean TTFT and TPOT beside its")  # fmt: skip
    ap.add_argument("--dp-candidates", action="store_true",
                    help="the attention-DP rows under each unsourced reading: eager steps, attention TP, the "
                         "exchange's per-root NCCL ops at a latency each, the batch that would explain "
                         "them")  # fmt: skip
    ap.add_argument(
        "--ep-readings",
        action="store_true",
        help="the attention-DP rows by model and GPU class, experts whole against experts sliced",
    )
    ap.add_argument(
        "--graph-pool",
        action="store_true",
        help="the v1.0 rows whose decode CUDA graphs TensorRT-LLM captures before its KV estimation, with their pool",
    )
    ap.add_argument("--run-residual", action="store_true",
                    help="the decode-heavy attention-DP rows as the page ran them: the step time each needs added, "
                         "beside kvplan's MoE, attention and GEMM times")  # fmt: skip
    ap.add_argument("--top-state", action="store_true",
                    help="TensorRT-LLM rows: the steady state at the top rate against what binds")  # fmt: skip
    ap.add_argument("--finite-run", action="store_true",
                    help="the attention-DP rows' finite runs: places, waves, and the ratio with the steady "
                         "state's batch and the KV pool 1 %% either way")  # fmt: skip
    ap.add_argument("--step-terms", action="store_true",
                    help="the Server and Interactive runs' steps at the published rate by operation class, with "
                         "their kernel launches' part")  # fmt: skip
    ap.add_argument(
        "--prompt-phase",
        action="store_true",
        help="the engine rows' published TTFT, TPOT and ITL p99 against kvplan's run of the same client",
    )
    args = ap.parse_args(argv)
    data = json.loads(args.data.read_text())
    rows = compare_runs(data["runs"])
    datasets = data["mlperf_datasets"]
    mlperf = compare_mlperf(data["mlperf"], datasets)
    engine_sources = data.get("engine_benchmark_sources", {})
    engine_rows = compare_engine_rows(data.get("engine_benchmarks", []))
    if args.update_data:
        data["mlperf"] = mlperf
        if engine_rows:
            data["engine_benchmarks"] = engine_rows
        args.data.write_text(dump_data(data))
    _print_runs(rows, markdown=args.markdown)
    print()
    _print_not_modelled(rows, markdown=args.markdown)
    print()
    _print_datasets(datasets, markdown=args.markdown)
    print()
    _print_mlperf(mlperf, datasets, markdown=args.markdown)
    print()
    _print_operating_points(mlperf, datasets, markdown=args.markdown)
    print()
    _print_not_scored(
        data.get("large_scale_ep", []), column=("stated configuration", "stated_config"), markdown=args.markdown
    )
    print()
    if engine_rows:
        _print_engine_rows(engine_rows, engine_sources, markdown=args.markdown)
        print()
    if data.get("engine_benchmarks_not_scored"):
        _print_not_scored(data["engine_benchmarks_not_scored"], column=("engine", "engine"), markdown=args.markdown)
        print()
    for source, meta in data["sources"].items():
        part = _by_source(rows, source)
        if not part:
            continue
        s = stats(part)
        print(f"{source} ({meta['engine']}): {s['compared']} points compared, {s['not_modelled']} not modelled; "
              f"median |ln ratio| {s['median_abs_ln']:.3f}, worst {s['worst_abs_ln']:.3f}, median signed "
              f"{s['median_signed_ln']:+.3f}; within 20%: {s['within_20pct']}/{s['compared']}")  # fmt: skip
    for line in group_lines(rows):
        print(line)
    # the FP8 H100/H200 rows (their own validation); the NVFP4 B200 ones are on their group line above
    adp = [r for r in rows if "ratio" in r and "launch" in r and r["weights"] == "fp8"]
    if adp:
        print(attention_dp_summary(adp))
    s = stats(rows)
    print(f"all engine tables: {s['compared']} points, median |ln ratio| {s['median_abs_ln']:.3f}, "
          f"worst {s['worst_abs_ln']:.3f}; within 20%: {s['within_20pct']}/{s['compared']}")  # fmt: skip
    print(mlperf_summary(mlperf))
    for line in engine_rows_summary(engine_rows, engine_sources):
        print(line)
    if args.bench_heuristic:
        print(heuristic_summary(data["runs"]))
        print("\n".join(burst_lines(data["runs"])))
    if args.residual:
        print("\n".join(residual_lines(data["runs"])))
    if args.imbalance:
        print("\n".join(imbalance_lines(data["runs"])))
    if args.host_floor:
        print()
        for line in host_floor_lines(host_floor_rows(rows), markdown=args.markdown):
            print(line)
    if args.dp_balance:
        print()
        print("\n".join(balance_lines(rows, markdown=args.markdown)))
    if args.mlperf_balance:
        print()
        print("\n".join(mlperf_balance_lines(mlperf, datasets)))
    if args.phases:
        print()
        print("\n".join(phase_lines(engine_rows, markdown=args.markdown)))
    if args.dp_candidates:
        print()
        print("\n".join(dp_candidate_lines(dp_candidate_rows(rows), markdown=args.markdown)))
        print(known_batch_line())
        print("\n".join(later_page_lines()))
        print(
            "\n".join(
                per_root_lines([r for r in rows if "ratio" in r and (r.get("launch") or {}).get("enable_attention_dp")])
            )
        )
        print("\n".join(per_root_mlperf_lines(mlperf, datasets)))
        print("\n".join(grouped_launch_lines()))
    if args.ep_readings:
        print()
        print("\n".join(ep_reading_lines([r for r in rows if "ratio" in r])))
    if args.graph_pool:
        print()
        print("\n".join(graph_pool_lines(data["runs"])))
    if args.run_residual:
        print()
        print("\n".join(run_residual_lines(data["runs"])))
    if args.finite_run:
        print()
        print("\n".join(finite_run_lines(data["runs"])))
    if args.top_state:
        print()
        print("\n".join(top_state_lines(data["runs"])))
    if args.streaming:
        print()
        print("\n".join(streaming_lines(mlperf, datasets)))
    if args.step_terms:
        print()
        print("\n".join(step_term_lines(mlperf, datasets, markdown=args.markdown)))
    if args.prompt_phase:
        print()
        print("\n".join(prompt_phase_lines(prompt_phase_rows(data.get("engine_benchmarks", [])))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""kvplan's grouped expert GEMMs (one MoE layer's routed experts) against aiconfigurator's measured MoE tables.

aiconfigurator 0.12.0 times one MoE layer's grouped expert GEMMs (the fused gate/up and down GEMMs over the routed
tokens, with the engine's permute and finalize kernels; not the router, not the shared experts, not the all-to-all)
per engine, version and GPU (``aiconfigurator_core/systems/data/<gpu>/moe/<engine>/<version>/moe_perf.parquet``:
columns ``kernel_source``, ``moe_dtype``, ``num_tokens``, ``hidden_size``, ``inter_size``, ``topk``,
``num_experts``, ``moe_tp_size``, ``moe_ep_size``, ``distribution``, ``latency`` in ms). ``num_tokens`` is every
token entering the layer (each rank of a TP x EP split computes its slice of them), as kvplan's ``moe_tokens``.

Two steps, as ``gemm_compare.py`` and ``mla_compare.py``:

1. ``--collect`` (needs aiconfigurator; does not import kvplan) writes a sample of those tables to
   ``benchmarks/data/aiconfigurator_moe.json``: H100 SXM, H200, B200 and GB200; TensorRT-LLM 1.3.0rc20, vLLM 0.24.0
   and SGLang 0.5.10 (its moe_perf table exists on Hopper only); the expert shapes of the models in ``SHAPES``;
   the ``balanced`` routing distribution (every expert gets the same tokens: kvplan's uniform routing); pure TP or
   pure EP splits (``SPLITS``); ``TOKENS``. Where a table times several kernels for one point (a TensorRT-LLM
   table's cutlass and DeepGEMM paths, vLLM's triton and flashinfer ones), the fastest, the one an engine tuned
   for the shape would run; its name is kept. A kernel the engine runs only when configured for it is left out
   first (``ENGINE_SKIP_KERNELS``: TensorRT-LLM's NVFP4 min-latency rows). Where aiconfigurator is not installed it
   says so and exits 0::

       /work/aic-venv/bin/python benchmarks/moe_compare.py --collect

2. default (needs kvplan only): prices every point with kvplan's grouped expert GEMMs for the table's engine and
   GPU (:func:`kvplan.latency._moe_s`'s ``grouped`` part: weights of every touched expert, compute at the grouped
   efficiency, ``moe_layer_s``), on the catalog model whose experts have that shape, at ``tp = moe_tp_size`` (TP
   slices) or ``moe_ep_size`` with expert parallelism. The table's routing is balanced, so kvplan's busiest-rank
   excess (``moe_ep_imbalance``, fitted to aiconfigurator's power-law routing) is set to 0 for its EP points. It
   prints the median and worst ``|ln(kvplan / aiconfigurator)|`` and the median signed ln per engine, GPU and
   dtype, then per engine and dtype by token band, per model, per engine and dtype over the GPUs, and the worst
   points, and last vLLM's per-tensor fp8 experts on Hopper priced as it serves them against TensorRT-LLM's tables of
   the same kernels (``AUTOTUNED``). ``--markdown`` prints the per engine / dtype table, the worst points and the
   summary lines for docs/cost.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aic_tables import balanced_loads, band_label, grouped_stats, read_tables, stats  # noqa: E402 - where aiconfigurator's tables lie

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_moe.json"

# kvplan GPU name -> aiconfigurator system directory
SYSTEMS = {"h100-sxm": "h100_sxm", "h200": "h200_sxm", "b200": "b200_sxm", "gb200": "gb200"}
# the versions kvplan's calibrations describe (SGLang's 0.5.10, as benchmarks/mla_compare.py samples)
ENGINES = {"trtllm": "1.3.0rc20", "vllm": "0.24.0", "sglang": "0.5.10"}
# catalog model -> its experts (hidden_size, expert intermediate size, experts, experts per token), from the
# model's config.json as kvplan's catalog holds it (kvplan models / kvplan/catalog.py); every one is in the tables
SHAPES = {
    "deepseek-v3": (7168, 2048, 256, 8),
    "qwen3-30b-a3b": (2048, 768, 128, 8),
    "qwen3-235b-a22b": (4096, 1536, 128, 8),
    "mixtral-8x7b": (4096, 14336, 8, 2),
    "mixtral-8x22b": (6144, 16384, 8, 2),
    "gpt-oss-20b": (2880, 2880, 32, 4),
    "gpt-oss-120b": (2880, 2880, 128, 4),
    "llama-4-scout-17b-16e": (5120, 8192, 16, 1),
    "llama-4-maverick-17b-128e": (5120, 8192, 128, 1),
}
# aiconfigurator moe_dtype -> (kvplan weights dtype, block-scaled fp8: DeepSeek-V3's 128 x 128 scales)
DTYPES = {"bfloat16": ("bf16", False), "fp8": ("fp8", False), "fp8_block": ("fp8", True), "nvfp4": ("nvfp4", False),
          "w4a16_mxfp4": ("mxfp4", False)}  # fmt: skip
# (moe_tp_size, moe_ep_size): kvplan splits experts by TP slices or whole by EP, never both at once
SPLITS = ((1, 1), (4, 1), (8, 1), (1, 4), (1, 8))
TOKENS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
DISTRIBUTION = "balanced"
# Engines whose collector computes EP rank 0's remote rows on its first expert (aic_tables.balanced_loads): SGLang's
# (collector/sglang/collect_moe.py build_rank0_workloads: remote choices as expert -1, weight 0; benchmark_config
# clamps them to expert 0 for the Triton kernel). Its EP tables show it: DeepSeek-V3 bf16 on H100 at 16,384 tokens
# takes 49,910 us at EP 8 and 51,380 on one GPU with every expert (the same rows, an eighth of the weights).
REMOTE_ROWS_TO_FIRST = ("sglang",)
# kernels left out: the non-gated path (Nemotron's squared-ReLU experts; every model here is gated)
SKIP_KERNELS = ("moe_torch_flow_nongated",)
# Kernels an engine does not choose by speed, left out for that engine and dtype: (engine, dtype) -> kernels.
# TensorRT-LLM picks its MoE backend from the configuration, not per shape: v1.0's MoeConfig.backend defaults to
# 'CUTLASS' (tensorrt_llm/llmapi/llm_args.py) and the later 'AUTO' resolves to 'CUTLASS' for every architecture but
# gpt-oss, DeepSeek-V4 and block-scaled fp8 on SM100 (ModelConfig.resolve_moe_backend, tensorrt_llm/_torch/
# model_config.py), so NVFP4 experts run CutlassFusedMoE at every token count. The table's min-latency rows time
# TRTLLMGenFusedMoE in min_latency_mode with DeepSeek-V3's grouped gate and no finalize (collector/trtllm/
# collect_moe.py in ai-dynamo/aiconfigurator), which TensorRT-LLM serves only when configured for it.
ENGINE_SKIP_KERNELS = {("trtllm", "nvfp4"): ("moe_torch_flow_min_latency",)}
TOKEN_BANDS = ((1, 8), (9, 64), (65, 512), (513, None))
# An EP rank holds 1/R of the experts and receives 1/R of the routed tokens: it cannot take longer than one GPU running
# the whole layer (the same table's TP 1 / EP 1 point); a point over that by more than this margin (timing noise)
# is flagged as not physical (aiconfigurator's Llama 4 Scout EP 8 TensorRT-LLM points at 1-16 tokens, its SGLang
# bf16 EP points of Qwen3-30B-A3B past 1,024 tokens; where the table has no such point nothing is flagged)
NOT_PHYSICAL_MARGIN = 1.1
# Tables that time a kernel in a state the engine does not serve with, flagged and left out of the last summary line:
# (engine, GPUs, aiconfigurator dtype, a part of the kernel's name). vLLM's per-tensor fp8 experts on Hopper run
# FlashInfer's CUTLASS MoE (the first supported backend of _get_priority_backends, vllm/model_executor/layers/fused_moe/
# oracle/fp8.py), whose tactic vLLM autotunes at start-up (vllm/model_executor/warmup/kernel_warmup.py
# flashinfer_autotune: "Without autotuning, FlashInfer will rely on heuristics, which may be significantly slower");
# aiconfigurator's vLLM MoE collector (collector/vllm/collect_moe.py, ai-dynamo/aiconfigurator) times the kernels with
# warm-up runs and no autotuning, where its TensorRT-LLM collector (collector/trtllm/collect_moe.py) runs each shape
# under TensorRT-LLM's ``autotune()`` first. The same CUTLASS MoE kernels, autotuned, are TensorRT-LLM's fp8 table,
# which kvplan matches (H200 median |ln| 0.115) where this one runs 3-4x slower; it is flat in the tokens up to 128
# rows per expert and 2.3-2.6x faster at exactly 128 (Mixtral 8x7B TP 1, H200: 2,162 us at 256 tokens, 960 us at
# 512), and as slow on H100 as on H200 (2,231 / 2,676 us at 16 tokens): a heuristic tactic, not the bandwidth or the
# tensor cores.
UNTUNED = (("vllm", ("h100-sxm", "h200"), "fp8", "flashinfer_cutlass"),)
# What vLLM serves for those experts: the same CUTLASS MoE kernels autotuned, timed so by TensorRT-LLM's tables
# (engine, GPUs, aiconfigurator dtype of the tables; the engine that prices them): kvplan prices vLLM's per-tensor fp8
# experts on Hopper as FlashInfer's CUTLASS fused MoE (kvplan.engines.vllm Vllm.moe_kernel, fitted on these points by
# benchmarks/fit_moe_ops.py), and the last summary line sets that pricing against them
AUTOTUNED = ("trtllm", ("h100-sxm", "h200"), "fp8", "vllm")
WORST = 12  # worst points printed
# B200 and GB200 time the same kernel within a few percent (kvplan/data/gpus.yaml: GB200's peaks 1.11x B200's, its
# bandwidth 1.04x): the release the v1.0 rows ran, TensorRT-LLM 1.0.0rc6, puts GB200 / B200 at 0.93-0.97 for every
# MoE series both of its tables hold (benchmarks/blackwell_v10_kernels.py), and so do most 1.3.0rc20 series here. A
# pair of points (same engine, dtype, shape, split, tokens) timed further apart than PAIR_BOUNDS has one system's
# timing off (its series collected at another tactic: 1.7-2x slow, mostly on B200, where 1.0.0rc6 at the same points is
# as fast as the other system); such points are flagged ``pair_off`` and counted apart, kept in the statistics.
PAIR = ("b200", "gb200")
PAIR_BOUNDS = (0.8, 1.1)


def collect(out: Path) -> int:
    """Write the sample of aiconfigurator's MoE tables (latency in us, 4 significant digits) to ``out``."""
    read = read_tables(SYSTEMS, ENGINES, "moe", "moe_perf.parquet")
    if read is None:
        return 0
    import aiconfigurator

    shapes = {v: k for k, v in SHAPES.items()}
    tables = []
    for gpu, engine, version, _, source, df in read:
        df = df[(df.distribution == DISTRIBUTION) & df.num_tokens.isin(TOKENS) & df.moe_dtype.isin(DTYPES)
                & ~df.kernel_source.isin(SKIP_KERNELS)]  # fmt: skip
        best: dict[tuple, tuple[float, str]] = {}
        for r in df.itertuples():
            if str(r.kernel_source) in ENGINE_SKIP_KERNELS.get((engine, str(r.moe_dtype)), ()):
                continue
            model = shapes.get((int(r.hidden_size), int(r.inter_size), int(r.num_experts), int(r.topk)))
            split = (int(r.moe_tp_size), int(r.moe_ep_size))
            if model is None or split not in SPLITS:
                continue
            key = (str(r.moe_dtype), model, *split, int(r.num_tokens))
            us = float(r.latency) * 1e3
            if key not in best or us < best[key][0]:
                best[key] = (us, str(r.kernel_source))
        if not best:
            continue
        kernels = sorted({k for _, k in best.values()})
        dtypes = sorted({key[0] for key in best})
        points = sorted([dtypes.index(key[0]), list(SHAPES).index(key[1]), *key[2:], float(f"{us:.4g}"),
                         kernels.index(kernel)] for key, (us, kernel) in best.items())  # fmt: skip
        tables.append({"gpu": gpu, "engine": engine, "version": version, "dtypes": dtypes, "kernels": kernels,
                       "source": source, "points": points})  # fmt: skip
    meta = {"aiconfigurator": aiconfigurator.__version__, "unit": "us (aiconfigurator's latency column is ms)",
            "points": "[index in dtypes, index in models, moe_tp_size, moe_ep_size, num_tokens, latency_us, "
                      "index in kernels]", "distribution": DISTRIBUTION, "models": SHAPES}  # fmt: skip
    body = ",\n".join(json.dumps(t, separators=(",", ":")) for t in tables)
    out.write_text('{"meta": ' + json.dumps(meta) + ',\n"tables": [\n' + body + "\n]}\n")
    print(f"wrote {sum(len(t['points']) for t in tables)} points of {len(tables)} tables to {out}")
    return 0


def load(path: Path = DATA) -> list[dict]:
    return json.loads(path.read_text())["tables"]


def grouped_seconds(
    gpu_name: str,
    engine: str,
    *,
    model: str,
    dtype: str,
    tp: int,
    ep: int,
    tokens: int,
    overrides: dict | None = None,
    balanced: bool = True,
    release: str | None = None,
    busiest: bool = False,
) -> float:
    """kvplan's grouped expert GEMMs of one MoE layer of ``model`` (:func:`kvplan.latency._moe_s`, its ``grouped``
    part) over ``tokens`` tokens, the experts sliced over ``tp`` ranks or spread whole over ``ep`` ranks (one of the
    two is 1), weights in aiconfigurator's ``dtype``; routed as the table routes them (``balanced``: EP rank 0's
    experts and rows under the collector's balanced logits, :func:`aic_tables.balanced_loads`, SGLang's EP rows as
    its collector runs them), else uniformly (``moe_ep_imbalance`` 0: serving's routing without the busiest rank's
    excess). ``overrides``: calibration fields to price with instead of the engine's (``fit_moe_ops.py``);
    ``release``: the engine's rule set (``"0.20"`` for ``trtllm@0.20``), default its newest; ``busiest``: with
    uniform routing keep the rule set's ``moe_ep_imbalance`` (serving's pricing, fitted to power-law routing)."""
    from dataclasses import replace

    from kvplan import latency
    from kvplan.catalog import resolve_model
    from kvplan.hardware import resolve_gpu

    spec = resolve_model(model)
    weights, block = DTYPES[dtype]
    if block:  # block-scaled fp8 (fp8_block_eff_scale): DeepSeek-V3's checkpoint quantization on any model
        spec = spec.model_copy(update={"weights": resolve_model("deepseek-v3").weights})
    elif spec.weights is not None and (spec.weights.dtype != weights or spec.weights.block is not None):
        spec = spec.model_copy(update={"weights": None})  # another checkpoint quantization, or per-tensor fp8: none
    cal = latency.calibration(engine if release is None else f"{engine}@{release}")
    cal = replace(cal, **({} if busiest and not balanced else {"moe_ep_imbalance": 0.0}), **(overrides or {}))
    ranks = max(tp, ep)
    gpu = resolve_gpu(gpu_name)
    ctx = latency._make_ctx(spec, gpu, tp=ranks, weights_dtype=weights, cal=cal, eager=True, ep=ep > 1,
                            moe_kernel=latency.engine_moe_kernel(engine, gpu, weights))  # fmt: skip
    moe = spec.moe
    first = engine in REMOTE_ROWS_TO_FIRST and ep > 1
    loads = balanced_loads(tokens, moe.num_experts, moe.experts_per_token, ep, remote_rows_to_first=first)
    return latency._moe_s(ctx, tokens, tokens, loads if balanced else None).grouped


def compare(tables: list[dict]) -> list[dict]:
    """One row per measured point: the table's keys, the point, aiconfigurator's and kvplan's seconds, ln ratio."""
    rows = []
    for t in tables:
        whole = {(p[0], p[1], p[4]): p[5] for p in t["points"] if (p[2], p[3]) == (1, 1)}
        for d, m, tp, ep, tokens, us, kernel in t["points"]:
            dtype, model = t["dtypes"][d], list(SHAPES)[m]
            bound = NOT_PHYSICAL_MARGIN * whole.get((d, m, tokens), math.inf)
            s = grouped_seconds(t["gpu"], t["engine"], model=model, dtype=dtype, tp=tp, ep=ep, tokens=tokens)
            rows.append({"gpu": t["gpu"], "engine": t["engine"], "dtype": dtype, "model": model, "tp": tp, "ep": ep,
                         "tokens": tokens, "kernel": t["kernels"][kernel], "aic_s": us * 1e-6, "kvplan_s": s,
                         "ln": math.log(s / (us * 1e-6)), "not_physical": ep > 1 and us > bound,
                         "untuned": _untuned(t, dtype, t["kernels"][kernel])})  # fmt: skip
    _flag_pairs(rows)
    return rows


def _pair_key(r: dict) -> tuple:
    return r["engine"], r["dtype"], r["model"], r["tp"], r["ep"], r["tokens"]


def _flag_pairs(rows: list[dict]) -> None:
    """Set ``pair_off`` on every row: True where its point's B200 / GB200 twin is timed outside :data:`PAIR_BOUNDS`."""
    timed = {(*_pair_key(r), r["gpu"]): r["aic_s"] for r in rows if r["gpu"] in PAIR}
    lo, hi = PAIR_BOUNDS
    for r in rows:
        first, second = (timed.get((*_pair_key(r), gpu)) for gpu in PAIR)
        r["pair_off"] = r["gpu"] in PAIR and first is not None and second is not None and not lo <= second / first <= hi


def pair_line(rows: list[dict]) -> str:
    """The B200 / GB200 pairs timed apart (:func:`_flag_pairs`) by engine and dtype, and the statistics without them."""
    pairs = {_pair_key(r) for r in rows if r["gpu"] == PAIR[0] and r["pair_off"]}
    both = {_pair_key(r) for r in rows if r["gpu"] == PAIR[0]} & {_pair_key(r) for r in rows if r["gpu"] == PAIR[1]}
    by: dict[str, int] = {}
    for key in pairs:
        by[f"{key[0]} {key[1]}"] = by.get(f"{key[0]} {key[1]}", 0) + 1
    rest = stats([r for r in rows if not r["pair_off"]])
    parts = ", ".join(f"{name} {n}" for name, n in sorted(by.items(), key=lambda kv: (-kv[1], kv[0])))
    return (f"B200 / GB200 point pairs timed outside {PAIR_BOUNDS[0]}-{PAIR_BOUNDS[1]} of each other (one system's "
            f"series off; the release the v1.0 rows ran gives 0.93-0.97): {len(pairs)} of {len(both)} ({parts}); "
            f"every point without them: {rest['count']}, median |ln| {rest['median']:.3f}, worst {rest['worst']:.3f}, "
            f"median signed {rest['signed']:+.3f}")  # fmt: skip


def autotuned_rows(tables: list[dict]) -> list[dict]:
    """:func:`compare`'s rows for :data:`AUTOTUNED`: the tables' points priced for the engine that runs the same
    kernels autotuned (vLLM's per-tensor fp8 experts on Hopper against TensorRT-LLM's fp8 tables)."""
    engine, gpus, dtype, priced_as = AUTOTUNED
    picked = [{**t, "engine": priced_as, "points": [p for p in t["points"] if t["dtypes"][p[0]] == dtype]}
              for t in tables if t["engine"] == engine and t["gpu"] in gpus and dtype in t["dtypes"]]  # fmt: skip
    return compare(picked)


def _untuned(table: dict, dtype: str, kernel: str) -> bool:
    """A point of a table in :data:`UNTUNED` (a kernel timed in a state its engine does not serve with)."""
    return any(table["engine"] == e and table["gpu"] in gpus and dtype == d and part in kernel
               for e, gpus, d, part in UNTUNED)  # fmt: skip


def summaries(rows: list[dict]) -> dict[str, list[tuple[str, dict]]]:
    """Per engine / GPU / dtype; per engine / dtype by token band; per model; per engine / dtype (docs/cost.md's)."""

    def group(key) -> list[tuple[str, dict]]:  # noqa: ANN001
        return grouped_stats(rows, key)

    bands = [band_label(lo, TOKEN_BANDS) for lo, _ in TOKEN_BANDS]
    by_band = group(lambda r: f"{r['engine']} {r['dtype']} tokens {band_label(r['tokens'], TOKEN_BANDS)}")
    by_band.sort(key=lambda x: (x[0].rsplit(" ", 2)[0], bands.index(x[0].split()[-1])))
    return {"per engine / GPU / dtype": group(lambda r: f"{r['engine']} {r['gpu']} {r['dtype']}"),
            "per engine / dtype, by tokens": by_band,
            "per model": group(lambda r: r["model"]),
            "per engine / dtype": group(lambda r: f"{r['engine']} {r['dtype']}")}  # fmt: skip


def render(rows: list[dict], *, markdown: bool, autotuned: list[dict] | None = None) -> str:
    """The summaries and the worst points; ``markdown``: docs/cost.md's short form (per engine / dtype only);
    ``autotuned``: :func:`autotuned_rows`, summarised in a last line."""
    out = []
    for title, groups in summaries(rows).items():
        if markdown != (title == "per engine / dtype"):
            continue
        if markdown:
            out += [f"**{title}**", "", "| MoE layers | points | median \\|ln\\| | worst \\|ln\\| | median signed |",
                    "|---|---:|---:|---:|---:|"]  # fmt: skip
        else:
            out.append(f"{title}:")
        for name, s in groups:
            if markdown:
                out.append(f"| {name} | {s['count']} | {s['median']:.3f} | {s['worst']:.3f} | {s['signed']:+.3f} |")
            else:
                out.append(f"  {name:<36} {s['count']:>5}  median |ln| {s['median']:.3f}  worst {s['worst']:.3f}  "
                           f"signed {s['signed']:+.3f}")  # fmt: skip
        out.append("")
    out.append(f"worst {WORST} points (kvplan / aiconfigurator):")
    for r in sorted(rows, key=lambda r: -abs(r["ln"]))[:WORST]:
        split = f"tp{r['tp']}" if r["ep"] == 1 else f"ep{r['ep']}"
        us = f"{r['kvplan_s'] * 1e6:.1f} / {r['aic_s'] * 1e6:.1f} us"
        flag = ", not physical" if r["not_physical"] else ""
        line = (f"{r['engine']} {r['gpu']} {r['dtype']} {r['model']} {split} {r['tokens']} tokens: {us} "
                f"({r['kernel']}), ln {r['ln']:+.3f}{flag}")  # fmt: skip
        out.append(f"- {line}" if markdown else f"  {line}")
    a, b = stats(rows), stats([r for r in rows if not r["not_physical"]])
    c = stats([r for r in rows if not r["not_physical"] and not r["untuned"]])
    out += ["", f"{a['count']} MoE layers against aiconfigurator (balanced routing): median |ln| {a['median']:.3f}, "
                f"worst {a['worst']:.3f}, median signed {a['signed']:+.3f}",
            f"without the {a['count'] - b['count']} EP points slower than the whole layer on one GPU (not physical): "
            f"{b['count']}, median |ln| {b['median']:.3f}, worst {b['worst']:.3f}, "
            f"median signed {b['signed']:+.3f}",
            f"and without the {b['count'] - c['count']} vLLM per-tensor fp8 points on Hopper (FlashInfer CUTLASS timed "
            f"untuned; UNTUNED): {c['count']}, median |ln| {c['median']:.3f}, worst {c['worst']:.3f}, "
            f"median signed {c['signed']:+.3f}"]  # fmt: skip
    out.append(pair_line(rows))
    if autotuned:
        d = stats(autotuned)
        out.append(f"vLLM's per-tensor fp8 experts on Hopper as it serves them (FlashInfer CUTLASS, autotuned) against "
                   f"TensorRT-LLM's fp8 tables of the same kernels, autotuned (AUTOTUNED): {d['count']}, median |ln| "
                   f"{d['median']:.3f}, worst {d['worst']:.3f}, median signed {d['signed']:+.3f}")  # fmt: skip
    return "\n".join(out)


# --published: the TensorRT-LLM v1.0 TP1 NVFP4 rows (benchmarks/data/published_throughput.json) of the models whose
# experts the sample holds at TP 1 (Qwen3-30B-A3B and Llama 4 Scout on B200 and GB200), scored as published_compare.py
# scores them and with every MoE layer's grouped experts read from the sample's TensorRT-LLM NVFP4 CUTLASS points of
# that model and GPU (balanced routing, TP 1 / EP 1; aic_tables.table_layer_s between token counts). A reading of what
# the kernel table would do to the rows, nothing kept in kvplan (moe_gap.py --published does the same for Qwen3-30B-A3B
# with both routings and the min-latency table).
PUBLISHED_SOURCE = "trtllm-1.0"
PUBLISHED_TARGET = 0.20  # published_compare.TARGET


def table_points(tables: list[dict], engine: str = "trtllm", dtype: str = "nvfp4") -> dict[tuple[str, str], list]:
    """``{(gpu, model): [[tokens, ms], ...]}``: the sample's TP 1 / EP 1 points of ``engine`` and ``dtype``."""
    out: dict[tuple[str, str], list] = {}
    for t in tables:
        if t["engine"] != engine:
            continue
        for d, m, tp, ep, tokens, us, _ in t["points"]:
            if t["dtypes"][d] == dtype and (tp, ep) == (1, 1):
                out.setdefault((t["gpu"], list(SHAPES)[m]), []).append([tokens, us / 1e3])
    return {key: sorted(points) for key, points in out.items()}


@contextmanager
def experts_from_points(points: dict[tuple[str, str], list]):  # noqa: ANN201
    """For the ``with`` block, every TensorRT-LLM NVFP4 MoE layer on one GPU (no expert split) of a model and GPU in
    ``points`` (:func:`table_points`) priced from its table at the layer's tokens instead of by
    :func:`kvplan.latency._moe_s`'s formula; every other layer as kvplan prices it."""
    from aic_tables import grouped_experts_from, table_layer_s

    shapes = {shape: model for model, shape in SHAPES.items()}

    def from_table(c, moe_tokens: float, parts):  # noqa: ANN001, ANN202
        moe = c.spec.moe
        if moe is None or c.cal.engine != "trtllm" or c.moe_layer_s is None or c.moe_ranks != 1 or moe_tokens <= 0:
            return None
        model = shapes.get((c.spec.hidden_size, moe.expert_intermediate_size, moe.num_experts, moe.experts_per_token))
        table = points.get((c.gpu.name, model))
        return None if table is None else table_layer_s(table, moe_tokens)

    with grouped_experts_from(from_table):
        yield


def published_rows(tables: list[dict]) -> list[dict]:
    """The v1.0 TP1 NVFP4 rows whose model and GPU have TP 1 points in the sample: the published figure, kvplan's
    ratio as published_compare.py scores the row (``as scored``) and with the table's experts (``table experts``)."""
    import published_compare as pc

    points = table_points(tables)
    runs = [r for r in json.loads(pc.DATA.read_text())["runs"]
            if r["source"] == PUBLISHED_SOURCE and r["weights"] == "nvfp4" and r["tp"] == 1 and "launch" not in r
            and (r["gpu"], r["model"]) in points]  # fmt: skip
    out = [{**r, "as scored": pc.run_tokens_s(r) / r["published_tok_s"]} for r in runs]
    with experts_from_points(points):
        for row, r in zip(out, runs, strict=True):
            row["table experts"] = pc.run_tokens_s(r) / r["published_tok_s"]
    return out


def published_lines(rows: list[dict]) -> list[str]:
    """One line per row, then per model and GPU the rows within 20 % each way."""
    out = [f"{r['label']:14} {r['gpu']:6} {r['isl']:>5}/{r['osl']:<5} published {r['published_tok_s']:>7,}  "
           f"as scored x{r['as scored']:.2f}  table experts x{r['table experts']:.2f}" for r in rows]  # fmt: skip
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["label"], r["gpu"]), []).append(r)
    for (label, gpu), part in groups.items():
        inside = {key: sum(abs(r[key] - 1) <= PUBLISHED_TARGET for r in part) for key in ("as scored", "table experts")}
        out.append(f"{label} {gpu}: within 20 % of {len(part)}: as scored {inside['as scored']}, with the table's "
                   f"experts {inside['table experts']}")  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--collect", action="store_true", help="write the sample of aiconfigurator's MoE tables")
    p.add_argument("--markdown", action="store_true", help="tables for docs/cost.md")
    p.add_argument("--published", action="store_true", help="the v1.0 TP1 NVFP4 rows with the table's experts")
    args = p.parse_args(argv)
    if args.collect:
        return collect(DATA)
    tables = load()
    if args.published:
        print("\n".join(published_lines(published_rows(tables))))
        return 0
    print(render(compare(tables), markdown=args.markdown, autotuned=autotuned_rows(tables)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

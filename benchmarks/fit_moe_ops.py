"""Fit kvplan's per-operation MoE constants to aiconfigurator 0.12.0's measured MoE tables (benchmarks/moe_compare.py's
sample, ``benchmarks/data/aiconfigurator_moe.json``); never to published throughput rows.

Each constant is fitted alone, every other one held at the engine's value, on the table points whose kernel it
describes, by a grid search for the least median ``|ln(kvplan / aiconfigurator)|`` (the mean breaks ties):

* ``hopper_moe_block_expert_s`` / ``blackwell_moe_block_expert_s`` (TensorRT-LLM): seconds per expert on the rank that
  the block-scaled fp8 grouped GEMMs cost whatever the tokens (:func:`kvplan.latency._moe_expert_s`), on the
  TensorRT-LLM ``fp8_block`` points of H100/H200 and of B200/GB200;
* ``mxfp4_moe_dequant_s`` (TensorRT-LLM): seconds one SM takes to dequantize one MXFP4 expert weight, every token tile
  of an expert again (:func:`kvplan.latency._moe_dequant_s`), on the TensorRT-LLM ``w4a16_mxfp4`` points (gpt-oss) of
  B200 and GB200 (TensorRT-LLM-Gen's Blackwell kernels);
* ``hopper_mxfp4_moe_dequant_s`` / ``hopper_mxfp4_moe_layer_s`` (TensorRT-LLM): the same on H100 / H200, where its
  Triton backend runs them, with that backend's fixed seconds per layer; fitted in turn (:data:`JOINT`);
* ``triton_mxfp4_mma_eff`` / ``triton_mxfp4_dequant_s`` (vLLM): its OpenAI Triton MXFP4 experts on H100 / H200
  (:func:`kvplan.latency._triton_mxfp4_s`): the share of the 16-bit peak the tiles' rows reach and the seconds one SM
  takes to dequantize one expert weight in one tile, on the vLLM ``w4a16_mxfp4`` points (gpt-oss), ``moe_layer_s``
  held; fitted in turn (:data:`JOINT`, :data:`GROUP_ROUNDS`);
* ``hopper_moe_block_tile_eff`` / ``hopper_moe_block_half_width`` / ``hopper_moe_block_mem_eff`` (TensorRT-LLM): the
  block-scaled fp8 experts on H100 / H200 priced by DeepGEMM's token tiles (:func:`kvplan.latency._block_tile_rows`),
  the tiles' share of the block-fp8 GEMM peak, the intermediate width at which thin slices reach half of it and the
  share of the bandwidth the GEMMs stream their weights at, on the 960 Hopper ``fp8_block`` points; fitted in turn
  with ``hopper_moe_block_expert_s`` (the walk, on the same points), :data:`GROUP_ROUNDS` rounds.

* ``cutlass_fp8_moe_mma_eff`` / ``cutlass_fp8_moe_half_width`` / ``cutlass_fp8_moe_mem_eff`` (vLLM): its per-tensor fp8
  experts on H100 / H200, FlashInfer's CUTLASS fused MoE autotuned at start-up (Vllm.moe_kernel,
  :func:`kvplan.latency._cutlass_fp8`): the share of the dense fp8 peak, the intermediate width at which thin slices
  reach half of it and the share of the bandwidth the weights stream at, ``moe_half_tokens`` and ``moe_layer_s`` held,
  on the 900 TensorRT-LLM ``fp8`` points of H100 / H200 (the same CUTLASS MoE GEMMs, timed autotuned:
  :data:`TABLE_ENGINE`); fitted in turn, :data:`GROUP_ROUNDS` rounds.

Every point is priced as the table routes it (:func:`moe_compare.grouped_seconds`: aiconfigurator's balanced logits,
:func:`aic_tables.balanced_loads`), not with serving's uniform routing, which touches fewer experts at a few tokens.

It prints, per constant, the value, the points, and the median / worst |ln| before (the constant at 0) and after;
paste the values into the engine's ``CALIBRATION``::

    .venv/bin/python benchmarks/fit_moe_ops.py
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import moe_compare  # noqa: E402 - the sample and kvplan's pricing of one table point

HOPPER = ("h100-sxm", "h200")
BLACKWELL = ("b200", "gb200")
# constant -> (engine, aiconfigurator dtype, GPUs, unit of the grid's values, the grid)
US_GRID = tuple(i / 100 for i in range(0, 101))  # 0 to 1 us a local expert, 0.01 us steps
# seconds per weight per SM, in 1e-12 s: 5 to 200 (5e9 to 200e9 weights a second per SM), 0.5 steps
PS_GRID = tuple(i / 2 for i in range(10, 401))
FITS = {
    "hopper_moe_block_expert_s": ("trtllm", "fp8_block", HOPPER, 1e-6, US_GRID),
    "blackwell_moe_block_expert_s": ("trtllm", "fp8_block", BLACKWELL, 1e-6, US_GRID),
    "mxfp4_moe_dequant_s": ("trtllm", "w4a16_mxfp4", BLACKWELL, 1e-12, PS_GRID),
    "hopper_mxfp4_moe_dequant_s": ("trtllm", "w4a16_mxfp4", HOPPER, 1e-12, PS_GRID),
    # 10 to 150 us a layer, 0.5 us steps
    "hopper_mxfp4_moe_layer_s": ("trtllm", "w4a16_mxfp4", HOPPER, 1e-6, tuple(i / 2 for i in range(20, 301))),
    # vLLM's Triton MXFP4 tiles: the share of the 16-bit peak, 0.4 to 1.2 in 0.025 steps; the dequantization per SM
    "triton_mxfp4_mma_eff": ("vllm", "w4a16_mxfp4", HOPPER, 1.0, tuple(i / 40 for i in range(16, 49))),
    "triton_mxfp4_dequant_s": ("vllm", "w4a16_mxfp4", HOPPER, 1e-12, PS_GRID),
    # the block-fp8 Hopper tiles' share of the block-fp8 GEMM peak: 0.5 to 1.6, 0.025 steps
    "hopper_moe_block_tile_eff": ("trtllm", "fp8_block", HOPPER, 1.0, tuple(i / 40 for i in range(20, 65))),
    # ... and the intermediate width on the rank at which thin slices run at half of it: 0 to 3,000, steps of 50
    "hopper_moe_block_half_width": ("trtllm", "fp8_block", HOPPER, 1.0, tuple(float(i) for i in range(0, 3001, 50))),
    # ... and the share of the bandwidth their weights stream at: 0.70 to 1.0, 0.005 steps
    "hopper_moe_block_mem_eff": ("trtllm", "fp8_block", HOPPER, 1.0, tuple(i / 200 for i in range(140, 201))),
    # ... and the intermediate width on the rank at which thin slices stream at half of it: 0 to 600, steps of 10
    "hopper_moe_block_mem_half_width": ("trtllm", "fp8_block", HOPPER, 1.0, tuple(float(i) for i in range(0, 601, 10))),
    # vLLM's per-tensor fp8 experts on Hopper, FlashInfer's CUTLASS fused MoE autotuned (TABLE_ENGINE): the share of the
    # dense fp8 peak, 0.30 to 1.0 in 0.01 steps; the half width, 0 to 3,000 in steps of 50; the streaming share of the
    # bandwidth, 0.70 to 1.0 in 0.005 steps
    "cutlass_fp8_moe_mma_eff": ("vllm", "fp8", HOPPER, 1.0, tuple(i / 100 for i in range(30, 101))),
    "cutlass_fp8_moe_half_width": ("vllm", "fp8", HOPPER, 1.0, tuple(float(i) for i in range(0, 3001, 50))),
    "cutlass_fp8_moe_mem_eff": ("vllm", "fp8", HOPPER, 1.0, tuple(i / 200 for i in range(140, 201))),
}
# Constants fitted on another engine's tables than the one they price (constant -> the tables' engine): vLLM's
# FlashInfer CUTLASS fp8 experts (kvplan.engines.vllm Vllm.moe_kernel) are TensorRT-LLM's CUTLASS MoE GEMMs
# (FlashInfer's csrc/fused_moe/cutlass_backend binds tensorrt_llm::kernels::cutlass_kernels CutlassMoeFCRunner), which
# vLLM autotunes at start-up; aiconfigurator 0.12.0 times them autotuned in its TensorRT-LLM 1.3.0rc20 fp8 tables
# (collector/trtllm/collect_moe.py runs each shape under autotune()) and untuned in its vLLM 0.24.0 Hopper fp8 tables
# (collector/vllm/collect_moe.py calls the FusedMoE module with no autotuning: moe_compare.UNTUNED)
TABLE_ENGINE = {name: "trtllm" for name in ("cutlass_fp8_moe_mma_eff", "cutlass_fp8_moe_half_width",
                                            "cutlass_fp8_moe_mem_eff")}  # fmt: skip
# Constants fitted on a subset of their points, by a test of (table, point): the thin slices' streaming width on the
# points whose experts are thin on the rank (an intermediate width of at most THIN_WIDTH: DeepSeek-V3 at TP 4 / 8,
# 512 / 256, and Qwen3-235B-A22B at TP 4, 384; the median over all 960 points, nearly all wide, ignores them)
THIN_WIDTH = 512


def _thin(pair: tuple[dict, list]) -> bool:
    _, (_, m, tp, _, _, _, _) = pair
    return moe_compare.SHAPES[list(moe_compare.SHAPES)[m]][1] // tp <= THIN_WIDTH


SUBSETS = {"hopper_moe_block_mem_half_width": _thin}
# Constants that share their points, fitted in turn (each with the others' latest values held), ROUNDS times over
JOINT = (
    ("hopper_mxfp4_moe_dequant_s", "hopper_mxfp4_moe_layer_s"),
    ("triton_mxfp4_mma_eff", "triton_mxfp4_dequant_s"),
    (
        "hopper_moe_block_tile_eff",
        "hopper_moe_block_half_width",
        "hopper_moe_block_mem_eff",
        "hopper_moe_block_mem_half_width",
        "hopper_moe_block_expert_s",
    ),
    ("cutlass_fp8_moe_mma_eff", "cutlass_fp8_moe_half_width", "cutlass_fp8_moe_mem_eff"),
)
ROUNDS = 2
# ... where a group needs more rounds to settle (the tile pair: each round moves the other's best value)
GROUP_ROUNDS = {"hopper_moe_block_tile_eff": 5, "triton_mxfp4_mma_eff": 4, "cutlass_fp8_moe_mma_eff": 4}


def points(tables: list[dict], engine: str, dtype: str, gpus: tuple[str, ...]) -> list[tuple[dict, list]]:
    """(table, point) pairs of ``engine``'s tables on ``gpus`` for ``dtype``."""
    out = []
    for t in tables:
        if t["engine"] != engine or t["gpu"] not in gpus or dtype not in t["dtypes"]:
            continue
        d = t["dtypes"].index(dtype)
        out += [(t, p) for p in t["points"] if p[0] == d]
    return out


def log_ratios(pairs: list[tuple[dict, list]], overrides: dict, engine: str | None = None) -> list[float]:
    """ln(kvplan / aiconfigurator) of each point, priced with ``overrides`` for ``engine`` (default: the table's)."""
    lns = []
    for t, (d, m, tp, ep, tokens, us, _kernel) in pairs:
        model, dtype = list(moe_compare.SHAPES)[m], t["dtypes"][d]
        s = moe_compare.grouped_seconds(
            t["gpu"], engine or t["engine"], model=model, dtype=dtype, tp=tp, ep=ep, tokens=tokens, overrides=overrides
        )
        lns.append(math.log(s / (us * 1e-6)))
    return lns


def score(lns: list[float]) -> tuple[float, float]:
    """(median |ln|, mean |ln|): what the grid search minimises, in that order."""
    a = [abs(x) for x in lns]
    return statistics.median(a), sum(a) / len(a)


def fit(tables: list[dict], name: str, grid: tuple[float, ...] | None = None, *, held: dict | None = None) -> dict:
    """The best value of ``name`` on its points (``grid``: the values to try, in the constant's unit; default its
    own; ``held``: other constants to price with): value (seconds), points, before / after median and worst |ln|
    (before: ``name`` at 0 with ``held``)."""
    engine, dtype, gpus, unit, own = FITS[name]
    pairs = [p for p in points(tables, TABLE_ENGINE.get(name, engine), dtype, gpus) if SUBSETS.get(name, bool)(p)]
    held = held or {}
    best = None
    for value in grid or own:
        lns = log_ratios(pairs, {**held, name: value * unit}, engine)
        key = score(lns)
        if best is None or key < best[0]:
            best = (key, value, lns)
    before = log_ratios(pairs, {**held, name: _neutral(name)}, engine)
    _, value, after = best
    return {"name": name, "value_s": value * unit, "points": len(pairs),
            "before": (score(before)[0], max(abs(x) for x in before)),
            "after": (score(after)[0], max(abs(x) for x in after))}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="comma-separated constants to fit (default: all)")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(FITS)
    tables = moe_compare.load()
    for r in fit_all(tables, names):
        print(f"{r['name']}={r['value_s']:.4g}  ({r['points']} points; median |ln| {r['before'][0]:.3f} -> "
              f"{r['after'][0]:.3f}, worst {r['before'][1]:.3f} -> {r['after'][1]:.3f})")  # fmt: skip
    return 0


def _neutral(name: str) -> float | None:
    """The value that turns ``name``'s term off (a layer's own fixed seconds: None, the calibration's moe_layer_s; a
    streaming share: None, the grouped experts' own; a kernel's share of the peak: None, the kernel priced as the
    fitted grouped GEMMs)."""
    return None if name.endswith(("layer_s", "mem_eff", "mma_eff")) else 0.0


def fit_all(tables: list[dict], names: list[str]) -> list[dict]:
    """Each constant of ``names`` fitted alone, those of a :data:`JOINT` group in turn :data:`ROUNDS` times (the last
    round's results reported)."""
    out, done = [], set()
    for name in names:
        group = next((g for g in JOINT if name in g), (name,))
        if name in done:
            continue
        held: dict = {}
        for _ in range(GROUP_ROUNDS.get(group[0], ROUNDS) if len(group) > 1 else 1):
            results = []
            for member in (m for m in group if m in names):
                r = fit(tables, member, held={k: v for k, v in held.items() if k != member})
                held[member] = r["value_s"]
                results.append(r)
        if len(group) > 1:  # before: every constant of the group off
            engine, dtype, gpus, _, _ = FITS[group[0]]
            pairs = points(tables, TABLE_ENGINE.get(group[0], engine), dtype, gpus)
            before = log_ratios(pairs, {m: _neutral(m) for m in group}, engine)
            for r in results:
                r["before"] = (score(before)[0], max(abs(x) for x in before))
        out += results
        done.update(group)
    return out


if __name__ == "__main__":
    sys.exit(main())

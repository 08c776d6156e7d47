"""kvplan's in-flight batching throughput against published measurements (engine tables and MLPerf Inference).

The data, each run with its source, are in ``benchmarks/data/published_throughput.json``:

* ``runs``: TensorRT-LLM's performance-overview tables, v1.0 (PyTorch backend, ``trtllm-bench throughput``)
  and v0.17 (TensorRT engines): requests at an infinite rate, fixed ISL/OSL, FP8 weights and KV cache,
  ``kv_cache_free_gpu_mem_fraction`` 0.95. The metric is the TP group's output tokens/s. kvplan's figure is
  the highest request rate one replica sustains (:func:`kvplan.serving.max_rate`, TensorRT-LLM constants of
  :mod:`kvplan.latency`, 8192-token steps, TensorRT-LLM's default ``max_num_tokens``) times OSL.
* ``mlperf``: MLPerf Inference v4.1 / v5.1 datacenter closed-division results (NVIDIA, TensorRT-LLM).

A run kvplan does not model (FP4 GEMMs, attention data parallelism with expert parallelism, GB200, a
model outside the catalog) carries ``not_modelled``; an MLPerf run whose inputs are not all known (the
dataset's mean input length, the run's split) carries ``not_compared``. Both are printed with their reason
and kept out of the statistics; for the MLPerf runs kvplan can model, the script prints the mean input
length at which kvplan's throughput would equal the published one (``--markdown`` tables for docs/cost.md).

``python benchmarks/published_compare.py [--markdown]``
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "published_throughput.json"
KV_FRACTION = 0.95  # kv_cache_free_gpu_mem_fraction the TensorRT-LLM tables used "in many cases" (source note)
TARGET = 0.20  # the target: throughput within 20 % of the published measurement


def _setup(model: str, gpu: str, tp: int, *, weights: str, kv: str, fraction: float, max_batch: int | None = None):  # noqa: ANN202
    from kvplan.capacity import setup
    from kvplan.engines import Settings

    settings = Settings(free_gpu_memory_fraction=fraction, max_num_seqs=max_batch)
    return setup(model, gpu, engine="trtllm", tp=tp, weights_dtype=weights, kv_dtype_name=kv, settings=settings)


def replica_tokens_s(s, isl: int, osl: int) -> float:  # noqa: ANN001
    """Output tokens/s of one replica at its highest sustainable rate."""
    from kvplan.serving import Lengths, max_rate

    return max_rate(s, input_len=Lengths.of(isl), output_len=Lengths.of(osl)) * osl


def compare_runs(runs: list[dict]) -> list[dict]:
    out = []
    for r in runs:
        row = dict(r)
        if "not_modelled" not in r:
            s = _setup(r["model"], r["gpu"], r["tp"], weights=r["weights"], kv=r["kv"], fraction=KV_FRACTION)
            row["kvplan_tok_s"] = replica_tokens_s(s, r["isl"], r["osl"])
            row["ratio"] = row["kvplan_tok_s"] / r["published_tok_s"]
        out.append(row)
    return out


def break_even_isl(r: dict) -> int | None:
    """The mean input length (1..1024, the set's input cap) at which kvplan's throughput equals the published one."""
    s = _setup(r["model"], r["gpu"], r["tp"], weights=r["weights"], kv=r["kv"], fraction=r["free_gpu_memory_fraction"],
               max_batch=r.get("max_batch"))  # fmt: skip
    target = r["published_tok_s"] / r["replicas"]
    osl = round(r["osl"])

    def tps(isl: int) -> float:
        return replica_tokens_s(s, isl, osl)

    lo, hi = 1, 1024
    if tps(lo) < target or tps(hi) > target:
        return None  # no input length within the set's range matches
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if tps(mid) >= target:
            lo = mid
        else:
            hi = mid
    return lo


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


def _by_source(rows: list[dict], source: str) -> list[dict]:
    return [r for r in rows if r["source"] == source]


def _print_runs(rows: list[dict], *, markdown: bool) -> None:
    if markdown:
        print("| source | model | GPU | TP | ISL/OSL | published tok/s | kvplan tok/s | kvplan / published |")
        print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "ratio" not in r:
            continue
        if markdown:
            print(f"| {r['source']} | {r['label']} | {r['gpu']} | {r['tp']} | {r['isl']}/{r['osl']} | "
                  f"{r['published_tok_s']:,.0f} | {r['kvplan_tok_s']:,.0f} | {r['ratio']:.2f} |")  # fmt: skip
        else:
            print(f"{r['source']:12} {r['label']:16} {r['gpu']:9} tp{r['tp']} {r['isl']:>5}/{r['osl']:<5} "
                  f"published {r['published_tok_s']:>9,.0f} kvplan {r['kvplan_tok_s']:>9,.0f}  "
                  f"x{r['ratio']:.2f}")  # fmt: skip


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


def _print_mlperf(rows: list[dict], *, markdown: bool) -> None:
    if markdown:
        print("| round | model | system | scenario | published tok/s | output tokens / sample | kvplan | source |")
        print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        note = r["not_compared"]
        if "break_even_isl" in r:
            b = r["break_even_isl"]
            split = f"TP{r['tp']} x {r['replicas']}, {r['weights']} weights/{r['kv']} KV"
            found = f"equal at a mean input of {b} tokens" if b else "no input length in 1-1024 matches"
            note = f"{split}: {found}; not scored ({note})"
        if markdown:
            print(f"| {r['source'].split('-')[1]} | {r['label']} | {r['system']} | {r['scenario']} | "
                  f"{r['published_tok_s']:,.0f} | {r['osl']:.1f} | {note} | [log]({r['url']}) |")  # fmt: skip
        else:
            print(f"{r['source']:10} {r['label']:32} {r['system']:30} {r['scenario']:11} "
                  f"{r['published_tok_s']:>10,.1f} osl {r['osl']:.1f}: {note}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args(argv)
    data = json.loads(args.data.read_text())
    rows = compare_runs(data["runs"])
    mlperf = [dict(r) for r in data["mlperf"]]
    for r in mlperf:
        if "tp" in r and "weights" in r:  # the split and dtypes are known: how long would the inputs have to be?
            r["break_even_isl"] = break_even_isl(r)
    _print_runs(rows, markdown=args.markdown)
    print()
    _print_not_modelled(rows, markdown=args.markdown)
    print()
    _print_mlperf(mlperf, markdown=args.markdown)
    print()
    for source, meta in data["sources"].items():
        part = _by_source(rows, source)
        if not part:
            continue
        s = stats(part)
        print(f"{source} ({meta['engine']}): {s['compared']} points compared, {s['not_modelled']} not modelled; "
              f"median |ln ratio| {s['median_abs_ln']:.3f}, worst {s['worst_abs_ln']:.3f}, median signed "
              f"{s['median_signed_ln']:+.3f}; within 20%: {s['within_20pct']}/{s['compared']}")  # fmt: skip
    s = stats(rows)
    print(f"all engine tables: {s['compared']} points, median |ln ratio| {s['median_abs_ln']:.3f}, "
          f"worst {s['worst_abs_ln']:.3f}; within 20%: {s['within_20pct']}/{s['compared']}")  # fmt: skip
    print(f"MLPerf: {len(mlperf)} published results listed, 0 scored (see each row's reason)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

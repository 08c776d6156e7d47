"""Why kvplan over-predicts TensorRT-LLM v1.0's NVFP4 TP rows on GB200: each candidate cause, scored on the misses.

The v1.0 performance-overview page (``benchmarks/data/published_throughput.json``, source ``trtllm-1.0``) runs the
same command on DGX B200 and on GB200 NVL72. kvplan prices GB200 at least as fast as B200 (higher peaks, bandwidth
and SM count, ``kvplan/data/gpus.yaml``) and scores 38 of the 40 B200 TP points within 20 %, but 31 of the 40
GB200 ones: the nine misses are Qwen3-30B-A3B and Llama 4 Scout at TP1, where the page's GB200 figure is often
below its own B200 figure. This script scores each of those rows under each candidate cause, as a check of the
cause and never as a fit (nothing here enters kvplan):

* ``KV 0.90``: the page's stated fallback, "We fall back to 0.90 or lower if out-of-memory errors are encountered"
  (the rows are scored at 0.95, the fraction it uses "in many cases");
* ``bench caps``: ``trtllm-bench``'s own ``max_batch_size`` / ``max_num_tokens`` heuristic
  (:func:`published_compare.trtllm_bench_settings`; the page sets neither);
* ``no graph pad``: decode steps not padded to the page's CUDA-graph batch sizes (its ``llm_options.yml`` pads them);
* ``B200 peaks``: the row priced on B200's catalog figures, the 1000 W part (peaks 2,250 / 4,500 / 9,000 dense
  TFLOPS, 7.7 TB/s, 148 SMs, where GB200 is the 1200 W part: 2,500 / 5,000 / 10,000, 8 TB/s, 152), the most any
  GPU-side change (clocks, power, SM count) could take GB200 back;
* ``Grace host``: the PyTorch executor's host loop on Grace at NVIDIA/TensorRT-LLM#16564's lower bound, 34 us per
  request in a step (GB200, gpt-oss-120b NVFP4, generation only: a ~8.8 ms bubble per iteration at 256 requests,
  "dominated by the host-side sampler tail in TorchSampler.update_requests"), through TensorRT-LLM's overlap loop
  (a step takes the longer of GPU and host, :mod:`kvplan.host`). That build is a 1.3 release candidate, not v1.0,
  so this is a what-if, not a constant.

Beside them: the page's GB200 / B200 ratio for the row and the host seconds per request at which kvplan would meet
the published figure (:func:`published_compare.implied_host_request_s`), on GB200 and on the B200 row of the same
lengths. Then the published pairs of Grace-hosted and x86-hosted systems (:data:`GRACE_PAIRS`).

``python benchmarks/gb200_candidates.py [--markdown]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import blackwell_v10_kernels as bk  # noqa: E402 - the release's own GB200 and B200 kernel timings
import published_compare as pc  # noqa: E402 - the rows' setups and scoring, shared

# The v1.0 page, "Running the Benchmark": kv_cache_free_gpu_mem_fraction 0.95 in many cases, "We fall back to 0.90 or
# lower if out-of-memory errors are encountered" (NVIDIA/TensorRT-LLM docs/source/performance/perf-overview.md
# @00f37686).
FALLBACK_KV_FRACTION = 0.90
# NVIDIA/TensorRT-LLM#16564 (2026-07, a 1.3 release candidate, GB200): "the gen-worker per-iter bubble (~8.8 ms) is
# dominated by the host-side sampler tail in TorchSampler.update_requests" at 256 requests: the exposed host time is
# host - GPU, so the host loop takes at least 8.8 ms / 256 = 34 us per request on Grace.
GRACE_HOST_REQUEST_S = 8.8e-3 / 256
# NVIDIA/TransformerEngine#2053 (2025-08): CPU time of one torch.nn.Linear forward (bf16, hidden 2048, 8192 tokens),
# GB200 37.08 us against a DGX H100's Xeon Platinum 8480C 13.48 us: PyTorch dispatch on Grace takes 2.75x as long.
GRACE_DISPATCH_RATIO = 37.08 / 13.48
# Bisection steps for the implied host times: 16 halvings of the 1 us - 10 ms log range leave 1e4 ** 2 ** -16, 0.014 %,
# far below the whole microseconds printed (--host-floor's 24 are kept there).
HOST_BISECTION_STEPS = 16

# Published pairs, same release, same command, a Grace-hosted system beside an x86-hosted one, output tokens/s (per GPU
# on the release/1.2 page; TP1 rows there, so per GPU = the TP group's). Each entry: (page, model, ISL/OSL,
# ((system, tok/s), ...), ((Grace system, x86 system), ...) the ratios printed).
# v1.0: the page of benchmarks/data/published_throughput.json's trtllm-1.0 rows (perf-overview.md @00f37686), its
# RTX 6000 Pro Blackwell Server Edition table (1 GPU, TP1) beside the B200 and GB200 columns.
# release/1.2: NVIDIA/TensorRT-LLM docs/source/performance/perf-overview.md as of release/1.2 (the page's own note:
# "As of release/1.2, support for B300 and GB300 is in beta"; read through the code index, commit not named), whose
# header adds "For NUMA systems, consult the 'CPU Affinity configuration in TensorRT LLM' guide ... These options were
# enabled for relevant tests".
# v0.17: perf-overview.md @258c7540 (the trtllm-0.17 rows' page): TensorRT engines, and on GH200 (Grace Hopper, the
# page's "GH200 480GB" column) the C++ gptManagerBenchmark instead of trtllm-bench ("Use gptManagerBenchmark for
# GH200: For release v0.17, on GH200 systems, we recommend using the legacy flow based on gptManagerBenchmark to
# measure performance"; the v0.15 page's heading: "Trtllm-bench has known issues on GH200").
GRACE_PAIRS = (
    ("v1.0", "Qwen3-30B-A3B TP1 FP4", "128/128", (("B200", 39827), ("GB200", 24107), ("RTX 6000 Pro", 28011)),
     (("GB200", "B200"),)),
    ("release/1.2", "Qwen3-30B-A3B TP1 FP4", "1024/1024",
     (("B200", 26431), ("GB200", 19682), ("B300", 30714), ("GB300", 22536)), (("GB200", "B200"), ("GB300", "B300"))),
    ("release/1.2", "Qwen3-30B-A3B TP1 FP4", "1024/8192",
     (("B200", 13940), ("GB200", 14916), ("B300", 15182), ("GB300", 16920)), (("GB200", "B200"), ("GB300", "B300"))),
    ("release/1.2", "Qwen3-30B-A3B TP1 FP4", "8192/1024",
     (("B200", 5945), ("GB200", 6450), ("B300", 6374), ("GB300", 6947)), (("GB200", "B200"), ("GB300", "B300"))),
    ("release/1.2", "GPT-OSS 20B TP1 FP4", "1024/1024",
     (("B200", 59084), ("GB200", 51870), ("B300", 60925), ("GB300", 53604)), (("GB200", "B200"), ("GB300", "B300"))),
    ("release/1.2", "GPT-OSS 20B TP1 FP4", "8192/1024",
     (("B200", 13439), ("GB200", 15466), ("B300", 14955), ("GB300", 16880)), (("GB200", "B200"), ("GB300", "B300"))),
    ("release/1.2", "Llama 3.3 70B TP1 FP4", "1024/1024",
     (("B200", 6943), ("GB200", 7576), ("B300", 8196), ("GB300", 8910)), (("GB200", "B200"), ("GB300", "B300"))),
    ("v0.17 (GH200: gptManagerBenchmark)", "Llama 3.1 8B TP1 FP8", "128/128",
     (("H100", 28836.77), ("H200", 29526.04), ("GH200", 29852.96)), (("GH200", "H100"),)),
    ("v0.17 (GH200: gptManagerBenchmark)", "Llama 3.1 8B TP1 FP8", "1000/1000",
     (("H100", 15244.78), ("H200", 17537.96), ("GH200", 16482.77)), (("GH200", "H100"),)),
)  # fmt: skip


def tokens_s(r: dict, *, gpu: str | None = None, fraction: float = pc.KV_FRACTION, graph_pad: bool = True,
             bench_caps: bool = False, host_request_s: float | None = None, overlap: bool = True) -> float:  # fmt: skip
    """kvplan's output tokens/s for table row ``r`` as :func:`published_compare.row_setup` scores it, with one launch
    or host fact changed (``overlap=False``: the executor loop waits for each step's tokens, TensorRT-LLM's
    ``disable_overlap_scheduler: true``, so the host time adds to each step)."""
    caps = dict(zip(("max_batch", "max_tokens"), pc.trtllm_bench_settings(r), strict=True)) if bench_caps else {}
    engine, tuning = pc.row_engine(r)  # the row's release (trtllm@0.17 for the v0.17 rows, with their tuner)
    s = pc._setup(r["model"], gpu or r["gpu"], weights=r["weights"], kv=r["kv"], fraction=fraction,
                  graph_sizes=pc.row_graph_sizes(r) if graph_pad else None, engine=engine, batch_tuning=tuning,
                  **caps, **pc.run_split(r))  # fmt: skip
    if host_request_s is not None:
        s = dataclasses.replace(s, settings=dataclasses.replace(s.settings, host_request_s=host_request_s))
    if not overlap:
        loop = dataclasses.replace(s.engine.host_loop, overlaps_gpu=False)
        s = dataclasses.replace(s, engine=dataclasses.replace(s.engine, host_loop=loop))
    return pc.replica_tokens_s(s, r["isl"], r["osl"])


CANDIDATES: dict[str, Callable[[dict], float]] = {
    "as scored": tokens_s,
    "KV 0.90": lambda r: tokens_s(r, fraction=FALLBACK_KV_FRACTION),
    "bench caps": lambda r: tokens_s(r, bench_caps=True),
    "no graph pad": lambda r: tokens_s(r, graph_pad=False),
    "B200 peaks": lambda r: tokens_s(r, gpu="b200"),
    "Grace host": lambda r: tokens_s(r, host_request_s=GRACE_HOST_REQUEST_S),
    "Grace host, no overlap": lambda r: tokens_s(r, host_request_s=GRACE_HOST_REQUEST_S, overlap=False),
}


def tp_rows(runs: list[dict], gpu: str) -> list[dict]:
    """The v1.0 NVFP4 TP rows on ``gpu`` (the page's B200 and GB200 columns; attention-DP rows excluded)."""
    return [r for r in runs if r["source"] == "trtllm-1.0" and r["weights"] == "nvfp4" and r["gpu"] == gpu
            and "launch" not in r and "not_modelled" not in r]  # fmt: skip


def within(ratio: float) -> bool:
    return abs(ratio - 1) <= pc.TARGET


def score(runs: list[dict]) -> dict:
    """Every GB200 TP row under every candidate (``ratios``: name -> kvplan / published), the misses as scored, and
    for each miss the page's GB200 / B200 ratio and the implied host times on GB200 and on the B200 row."""
    b200 = {(r["model"], r["isl"], r["osl"]): r for r in tp_rows(runs, "b200")}
    rows = []
    for r in tp_rows(runs, "gb200"):
        ratios = {name: f(r) / r["published_tok_s"] for name, f in CANDIDATES.items()}
        row = {**r, "ratios": ratios}
        if not within(ratios["as scored"]):
            twin = b200[(r["model"], r["isl"], r["osl"])]
            row["gb200_over_b200"] = r["published_tok_s"] / twin["published_tok_s"]
            row["host_us"] = pc.implied_host_request_s(r, steps=HOST_BISECTION_STEPS) * 1e6
            twin_host = pc.implied_host_request_s(twin, steps=HOST_BISECTION_STEPS)
            row["b200_host_us"] = None if twin_host is None else twin_host * 1e6
        rows.append(row)
    x86 = [{**r, "ratios": {"as scored": tokens_s(r) / r["published_tok_s"],
                            "x86 host": tokens_s(r, host_request_s=GRACE_HOST_REQUEST_S / GRACE_DISPATCH_RATIO)
                            / r["published_tok_s"]}} for r in b200.values()]  # fmt: skip
    return {"rows": rows, "misses": [r for r in rows if "gb200_over_b200" in r], "b200": x86}


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def miss_table(misses: list[dict]) -> list[str]:
    cols = ("model", "ISL/OSL", "GB200 / B200 published", *CANDIDATES, "implied host us GB200", "B200")
    out = ["| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    for r in misses:
        cells = (r["label"], f"{r['isl']}/{r['osl']}", f"{r['gb200_over_b200']:.2f}",
                 *(f"x{v:.2f}" for v in r["ratios"].values()), _us(r["host_us"]), _us(r["b200_host_us"]))  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
    return out


def summary_lines(scored: dict) -> list[str]:
    rows, misses = scored["rows"], scored["misses"]
    out = []
    for name in CANDIDATES:
        fixed = sum(within(r["ratios"][name]) for r in misses)
        total = sum(within(r["ratios"][name]) for r in rows)
        out.append(f"{name}: {fixed} of the {len(misses)} misses within 20%; all {len(rows)} GB200 TP rows: "
                   f"{total} within 20%")  # fmt: skip
    x86 = scored["b200"]
    x86_in = sum(within(r["ratios"]["as scored"]) for r in x86)
    x86_host = sum(within(r["ratios"]["x86 host"]) for r in x86)
    out.append(f"B200 TP rows with the Grace figure / {GRACE_DISPATCH_RATIO:.2f} on their x86 host "
               f"({GRACE_HOST_REQUEST_S / GRACE_DISPATCH_RATIO * 1e6:.1f} us, TransformerEngine#2053's ratio), overlap "
               f"on: {x86_host} of {len(x86)} within 20% (as scored {x86_in})")  # fmt: skip
    out.append(bk.summary_lines(bk.load())[0] + " (benchmarks/blackwell_v10_kernels.py)")
    marked = [r["ratios"]["as scored"] for r in rows if "not_reproduced" in r]
    out.append(f"GB200 TP rows below the page's B200 figure for the same lengths, marked not_reproduced: {len(marked)} "
               f"(x{min(marked):.2f}-x{max(marked):.2f} as scored, {sum(map(within, marked))} within 20%), all in "
               "the statistics")  # fmt: skip
    pairs = [r["host_us"] / r["b200_host_us"] for r in misses if r["b200_host_us"]]
    out.append(f"implied host per request, GB200 / B200 row of the same lengths: {min(pairs):.2f}-{max(pairs):.2f} "
               f"({len(pairs)} rows with both; TransformerEngine#2053's Grace / Xeon dispatch ratio "
               f"{GRACE_DISPATCH_RATIO:.2f})")  # fmt: skip
    return out


def pair_lines() -> list[str]:
    out = []
    for page, model, lengths, figures, pairs in GRACE_PAIRS:
        tok = dict(figures)
        cells = ", ".join(f"{name} {value:,.0f}" for name, value in figures)
        ratios = ", ".join(f"{grace} / {x86} {tok[grace] / tok[x86]:.2f}" for grace, x86 in pairs)
        out.append(f"{page} {model} {lengths}: {cells}; {ratios}")
    return out


def render(scored: dict, *, markdown: bool) -> str:
    table = miss_table(scored["misses"])
    if not markdown:
        table = [line.strip("|").replace(" | ", "  ") for line in table if not line.startswith("|---")]
    return "\n".join([*table, "", "```", *summary_lines(scored), *pair_lines(), "```"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true", help="the block docs/cost.md holds")
    args = ap.parse_args(argv)
    runs = json.loads(pc.DATA.read_text())["runs"]
    print(render(score(runs), markdown=args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())

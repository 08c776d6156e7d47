"""Before/after the engines' overlap rules (:class:`kvplan.engines.Overlap`), on the published rows and the grid.

"Before" runs kvplan with every engine's rules set to ``Overlap()``: nothing overlapped, and the MoE token exchange
under DP attention the DeepEP-style all-to-all for every engine (kvplan's model before the rules). "After" uses each
engine's own rules (``kvplan/engines/{trtllm,vllm,sglang}.py``: shared experts on a second stream, the all-gather /
reduce-scatter exchange). Prints, for the TensorRT-LLM v1.0 MoE rows run with attention DP
(``benchmarks/published_compare.py``), each row's ratio before and after and the statistics, and the
aiconfigurator grid's statistics (``benchmarks/aiconfigurator_compare.py``: the 88 grid cases, with the flagged
figures also re-priced as that script does, and the 11 hold-out cases) before and after. Two-micro-batch overlap is
off by default in both engines that have it, so neither the published rows nor the grid use it.

``python benchmarks/overlap_compare.py [--markdown]``
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiconfigurator_compare as aic  # noqa: E402
import published_compare as pub  # noqa: E402


@contextmanager
def no_overlap():
    """kvplan with every engine's Overlap() (the model before the engines' overlap rules)."""
    import kvplan.latency as latency
    from kvplan.engines import Overlap

    saved = latency.engine_overlap
    latency.engine_overlap = lambda engine=None: Overlap()
    try:
        yield
    finally:
        latency.engine_overlap = saved


def published_rows() -> tuple[list[dict], list[dict]]:
    data = json.loads(pub.DATA.read_text())
    runs = [r for r in data["runs"] if "launch" in r and "not_modelled" not in r and r["weights"] == "fp8"]  # H100/H200
    with no_overlap():
        before = pub.compare_runs(runs)
    return before, pub.compare_runs(runs)


def grid_stats() -> dict[str, tuple[dict, dict]]:
    data = json.loads(aic.DATA.read_text())
    cross = data.get("artifact_crosscheck")  # the flagged figures re-priced (aiconfigurator_compare.reprice)

    def rows(key: str) -> list[dict]:
        out = aic.compare(data[key])
        return aic.reprice(out, cross) if cross and key == "cases" else out

    out = {}
    for key in ("cases", "holdout_cases"):
        with no_overlap():
            before = aic.summary(rows(key))
        out[key] = (before, aic.summary(rows(key)))
    return out


def _fmt(s: dict) -> str:
    return (f"median |ln| {s['median_abs_ln']:.3f}, worst {s['worst_abs_ln']:.3f}, "
            f"signed {s['median_signed_ln']:+.3f}, within 1.5x {s['within_1.5x']}/{s['cases']}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    before, after = published_rows()
    if args.markdown:
        print("| model | GPU | split | ISL/OSL | published tok/s | before | after |")
        print("|---|---|---|---|---|---|---|")
    for b, a in zip(before, after, strict=True):
        if args.markdown:
            print(f"| {a['label']} | {a['gpu']} | {pub.split_label(a)} | {a['isl']}/{a['osl']} | "
                  f"{a['published_tok_s']:,.0f} | {b['ratio']:.2f} | {a['ratio']:.2f} |")  # fmt: skip
        else:
            where = f"{a['label']:16} {a['gpu']:9} {pub.split_label(a):8} {a['isl']:>5}/{a['osl']:<5}"
            print(f"{where} published {a['published_tok_s']:>8,.0f}  before x{b['ratio']:.2f}  after x{a['ratio']:.2f}")
    print()
    for name, rows in (("before", before), ("after", after)):
        s = pub.stats(rows)
        alt = pub.stats([{"ratio": r["ratio_ep1"]} for r in rows if "ratio_ep1" in r])
        print(f"published attention DP + EP rows, {name}: {s['compared']} points, median |ln ratio| "
              f"{s['median_abs_ln']:.3f}, worst {s['worst_abs_ln']:.3f}, median signed {s['median_signed_ln']:+.3f}, "
              f"within 20%: {s['within_20pct']}/{s['compared']}; experts sliced: median |ln| "
              f"{alt['median_abs_ln']:.3f}, within 20%: {alt['within_20pct']}/{alt['compared']}")  # fmt: skip
    for key, (b, a) in grid_stats().items():
        for phase in [p for p in ("ttft", "tpot", "tpot_clean", "tpot_repriced") if p in a]:
            print(f"aiconfigurator {key} {phase}: before {_fmt(b[phase])}; after {_fmt(a[phase])}")
    worst = max(abs(math.log(r["ratio"])) for r in after)
    print(f"worst published row after: x{math.exp(worst):.2f} (|ln| {worst:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

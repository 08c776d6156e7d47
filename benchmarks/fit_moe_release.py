"""Fit a TensorRT-LLM rule set's own Hopper grouped-expert constants to the MoE tables of the release it stands for:
``trtllm@0.20`` (the v1.0-era rule set) to aiconfigurator 0.4.0's TensorRT-LLM 1.0.0rc3 H100 SXM / H200 tables, where
kvplan's calibration (``CALIBRATION``) is fitted to aiconfigurator 0.12.0's 1.3.0rc20 ones; never to published rows.

The points (``benchmarks/data/aiconfigurator_moe_v10_points.json``, written by ``moe_release_gap.py --collect``): one
MoE layer's grouped experts timed by both releases at the same shape (the catalog's expert shapes: Mixtral 8x7B /
8x22B, Qwen3-235B-A22B, and Qwen3-30B-A3B on H200), split (TP 1 / 4 / 8, EP 4 / 8), routing and token count (1 to
16,384), 16-bit and per-tensor fp8 weights: the experts kvplan prices with the grouped-expert curve
(``moe_peak_eff x t / (t + moe_half_tokens)``). Both tables are timed under aiconfigurator's power-law routing only
(1.0.0rc3 has no balanced table), which kvplan does not price point by point: each point is priced with serving's
routing (uniform, the busiest EP rank's ``moe_ep_imbalance`` excess, fitted to that power law), and the fit's target
is the measured release ratio, so what the routing does to both releases cancels: the constants make
``kvplan@0.20 / kvplan@1.3`` at each point what ``1.0.0rc3 / 1.3.0rc20`` is there, by least median
``|ln(kvplan ratio / measured ratio)|`` (the mean breaks ties), fitted in turn (:data:`ROUNDS`) on the power-law 1.2
points where the curve sets kvplan's time (:func:`compute_bound`: a point whose weights' read sets it does not move
with these constants), the 1.01 points held out.

* ``hopper_moe_peak_eff``: the curve's share of the peak on Hopper under the rule set for 16-bit experts
  (``moe_peak_eff`` elsewhere), on the bfloat16 points;
* ``hopper_moe_fp8_peak_eff``: the same for per-tensor fp8 experts (fp8 tensor cores), on the fp8 points: 1.0.0rc3's
  fp8 experts ran further below 1.3.0rc20's than its 16-bit ones (x1.32 against x1.25 past 2,048 tokens);
* ``hopper_moe_half_tokens``: the tokens per expert at which both reach half of their share, on every point.

It prints the values (paste them into ``kvplan/engines/trtllm.py`` ``V0_20_CALIBRATION``), the release-ratio fit
before (the 1.3 curve) and after on the fitted and held-out points, by dtype and token band, and the tables priced
directly (kvplan@1.3 and @0.20 against 1.0.0rc3, kvplan@1.3 against 1.3.0rc20)::

    .venv/bin/python benchmarks/fit_moe_release.py
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import moe_compare  # noqa: E402 - kvplan's pricing of one table point
from moe_release_gap import POINTS  # noqa: E402 - the matched points' file

RELEASE = "0.20"  # trtllm@0.20: TensorRT-LLM 0.20 to 1.3.0rc10, whose v1.0 performance rows ran 1.0.x
FIT_ROUTING = "power_law_1.2"  # fitted on these points; the others (power_law_1.01) held out
# name -> the grid: share of the peak 0.40 to 0.80 in 0.005 steps; tokens per expert 5 to 300 in steps of 5
GRIDS = {
    "hopper_moe_peak_eff": tuple(i / 200 for i in range(80, 161)),
    "hopper_moe_fp8_peak_eff": tuple(i / 200 for i in range(80, 161)),
    "hopper_moe_half_tokens": tuple(float(i) for i in range(5, 301, 5)),
}
DTYPES = {"hopper_moe_peak_eff": "bfloat16", "hopper_moe_fp8_peak_eff": "fp8"}  # the points each is fitted on
# a point is compute-bound where kvplan@1.3's grouped experts take longer with the curve's peak share this much lower
PROBE = 0.9
ROUNDS = 3
BANDS = ((1, 64), (65, 512), (513, 2048), (2049, 1 << 20))


def load(path: Path = POINTS) -> list[list]:
    """The points: [gpu, dtype, model, tp, ep, routing, tokens, 1.0.0rc3 us, 1.3.0rc20 us]."""
    return json.loads(path.read_text())["points"]


def priced(p: list, *, release: str | None, overrides: dict | None = None) -> float:
    """kvplan's grouped experts at point ``p`` under ``trtllm@release`` (None: the newest), serving's routing."""
    gpu, dtype, model, tp, ep, _, tokens = p[:7]
    return moe_compare.grouped_seconds(gpu, "trtllm", model=model, dtype=dtype, tp=tp, ep=ep, tokens=tokens,
                                       overrides=overrides, balanced=False, release=release, busiest=True)  # fmt: skip


def newest_curve() -> dict:
    """The constants at trtllm@1.3's curve (the 1.3.0rc20 fit's ``moe_peak_eff`` / ``moe_half_tokens``): before."""
    from kvplan import latency

    cal = latency.calibration("trtllm")
    return {"hopper_moe_peak_eff": cal.moe_peak_eff, "hopper_moe_fp8_peak_eff": cal.moe_peak_eff,
            "hopper_moe_half_tokens": cal.moe_half_tokens}  # fmt: skip


def compute_bound(p: list) -> bool:
    """kvplan@1.3 prices point ``p``'s grouped experts by the curve: their compute, not their weights' read, sets the
    time (it grows with the peak share x :data:`PROBE`)."""
    from kvplan import latency

    lower = {"moe_peak_eff": latency.calibration("trtllm").moe_peak_eff * PROBE}
    return priced(p, release=None, overrides=lower) > priced(p, release=None) * (1 + 1e-6)


def residuals(points: list[list], newest: list[float], overrides: dict) -> list[float]:
    """ln(kvplan@0.20 / kvplan@1.3) - ln(1.0.0rc3 / 1.3.0rc20) at each point (``newest``: kvplan@1.3's seconds)."""
    return [math.log(priced(p, release=RELEASE, overrides=overrides) / s) - math.log(p[7] / p[8])
            for p, s in zip(points, newest, strict=True)]  # fmt: skip


def score(lns: list[float]) -> tuple[float, float]:
    """(median |ln|, mean |ln|): what the grid search minimises, in that order."""
    a = [abs(x) for x in lns]
    return statistics.median(a), sum(a) / len(a)


def fit(points: list[list], newest: list[float]) -> dict:
    """The constants of :data:`GRIDS`, each in turn on its points (:data:`DTYPES`) with the others' latest values
    held, :data:`ROUNDS` times; from the 1.3 curve (:func:`newest_curve`). ``points``: the compute-bound ones."""
    held = newest_curve()
    for _ in range(ROUNDS):
        for name, grid in GRIDS.items():
            mine = [(p, s) for p, s in zip(points, newest, strict=True) if DTYPES.get(name, p[1]) == p[1]]
            pts, new = [p for p, _ in mine], [s for _, s in mine]
            held[name] = min(grid, key=lambda v: score(residuals(pts, new, {**held, name: v})))
    return held


def band_name(lo: int, hi: int) -> str:
    return f"{lo}-{hi}" if hi < 1 << 20 else f"> {lo - 1}"


def summary(lns: list[float]) -> str:
    a = [abs(x) for x in lns]
    return f"median |ln| {statistics.median(a):.3f}, worst {max(a):.3f}, median signed {statistics.median(lns):+.3f}"


def report(points: list[list], constants: dict) -> list[str]:
    """The release-ratio fit before / after on the fitted and held-out points, by dtype and band, and the tables
    priced directly."""
    before = newest_curve()
    newest = [priced(p, release=None) for p in points]
    bound = [compute_bound(p) for p in points]
    old_rel = [priced(p, release=RELEASE, overrides=before) for p in points]
    new_rel = [priced(p, release=RELEASE, overrides=constants) for p in points]
    measured = [math.log(p[7] / p[8]) for p in points]
    res_before = [math.log(o / n) - m for o, n, m in zip(old_rel, newest, measured, strict=True)]
    res_after = [math.log(o / n) - m for o, n, m in zip(new_rel, newest, measured, strict=True)]
    lines = [
        ", ".join(f"{k}={v:.4g}" for k, v in constants.items()),
        "release ratio kvplan@0.20 / kvplan@1.3 against 1.0.0rc3 / 1.3.0rc20, before (the 1.3 curve) -> after:",
    ]
    fitted = [p[5] == FIT_ROUTING for p in points]
    for label, keep in (("fitted (power_law_1.2, compute-bound)", lambda i: fitted[i] and bound[i]),
                        ("held out (power_law_1.01, compute-bound)", lambda i: not fitted[i] and bound[i]),
                        ("every power_law_1.2 point", lambda i: fitted[i]),
                        ("every power_law_1.01 point", lambda i: not fitted[i])):  # fmt: skip
        idx = [i for i in range(len(points)) if keep(i)]
        lines.append(f"  {label}, {len(idx)} points: {summary([res_before[i] for i in idx])} -> "
                     f"{summary([res_after[i] for i in idx])}")  # fmt: skip
    lines.append("by dtype and gathered tokens (all points): measured ratio, residual before -> after (median signed)")
    for dtype in sorted({p[1] for p in points}):
        for lo, hi in BANDS:
            idx = [i for i, p in enumerate(points) if p[1] == dtype and lo <= p[6] <= hi]
            med = statistics.median
            lines.append(f"  {dtype:9} {band_name(lo, hi):>9}: x{math.exp(med(measured[i] for i in idx)):.2f}, "
                         f"{med(res_before[i] for i in idx):+.3f} -> {med(res_after[i] for i in idx):+.3f} "
                         f"({len(idx)})")  # fmt: skip
    lines.append("the tables priced directly (serving's routing, not the tables' power law), per GPU and dtype:")
    for gpu in sorted({p[0] for p in points}):
        for dtype in sorted({p[1] for p in points}):
            idx = [i for i, p in enumerate(points) if p[0] == gpu and p[1] == dtype]

            def med(seconds: list[float], col: int, idx: list[int] = idx) -> str:
                return summary([math.log(seconds[i] / (points[i][col] * 1e-6)) for i in idx])

            lines.append(f"  {gpu} {dtype} ({len(idx)}): 1.0.0rc3 kvplan@1.3 {med(newest, 7)}; kvplan@0.20 "
                         f"{med(new_rel, 7)}; 1.3.0rc20 kvplan@1.3 {med(newest, 8)}")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--report", action="store_true", help="the report with the rule set's constants, no fit")
    args = p.parse_args(argv)
    points = load()
    if args.report:
        from kvplan import latency

        cal = latency.calibration(f"trtllm@{RELEASE}")
        constants = {n: getattr(cal, n) for n in GRIDS}
    else:
        fitted = [p for p in points if p[5] == FIT_ROUTING and compute_bound(p)]
        constants = fit(fitted, [priced(p, release=None) for p in fitted])
    print("\n".join(report(points, constants)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

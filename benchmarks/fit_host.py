"""Fit the host time of vLLM's serving loop in turn (a step's fixed part and its part per request) on published pairs
of runs that differ by ``--async-scheduling`` alone; print it.

    python benchmarks/fit_host.py [--update]

Data: ``benchmarks/data/vllm_host_ab.json`` (GPUStack's gpt-oss pages, vLLM 0.10.2 / 0.11.0 on its H100 and A100
nodes; each run's page and line). Before 0.14.0 vLLM runs ``EngineCore.step`` in turn by default: it schedules, runs
the step and applies its tokens before it schedules the next, so the host's work (the scheduler, the worker's input
preparation, the launch, the sampled tokens' copy back and ``update_from_output``) lengthens every step; with
``--async-scheduling`` the scheduler runs one step ahead and the GPU's step hides it (kvplan/engines/vllm.py
``HOST_LOOP_0_8``, ``HOST_LOOP_0_14``). So in each pair the in-turn run is longer than the other by the host time the
loop exposes.

What is fitted. kvplan's host term (:func:`kvplan.host.step_with_host_s`): ``host_step_s`` a step plus
``host_request_s`` for each request in it (its decodes and the prompts with a chunk in it). For each pair kvplan runs
the client's run twice, as ``published_compare`` runs a vLLM row (:func:`published_compare.engine_row_trace`: the
engine's steps, its API server, block-by-block KV admission): with the loop in turn and with it one step ahead, each
launch with its own settings and each run with its own mean input and output lengths (the printed totals over the
requests: random prompts that reach EOS stop early). The pair's predicted difference is linear in the two figures
while the host stays under the GPU's step (one step ahead it is then hidden); kvplan's own runs give the slopes
(seconds of difference per second of host time a step, and a request), and the two figures are the least-squares
solution over the pairs, each pair's error taken relative to its in-turn duration (a run-to-run spread that grows
with the run), neither below 0. The pairs whose runs kvplan cannot make as the client made them carry
``not_in_fit`` and its reason (printed, with kvplan's difference at the fitted figures, not fitted on).

``--update`` writes the fit into the data file's ``fit`` (``published_compare`` scores the rows of the sources in its
``applies_to`` with it: their vLLM rows that run the loop in turn).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import published_compare as pub  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "vllm_host_ab.json"
# The host times the slopes are taken at: small beside a step, so that the host stays hidden one step ahead.
SLOPE_STEP_S, SLOPE_REQUEST_S = 1e-4, 1e-6


def run_row(pair: dict, side: str) -> dict:
    """The pair's run on ``side`` ("sync" or "async") as an engine-table row (published_compare's schema): its mean
    lengths, its launch's caps, and ``async_scheduling`` on the async side."""
    run = pair[side]
    budget = pair.get("async_max_num_batched_tokens") if side == "async" else None
    row = {"source": "host-ab", "engine": "vllm@0.8", "engine_version": pair["engine_version"],
           "model": pair["model"], "gpu": pair["gpu"], "tp": pair["tp"], "weights": pair["weights"],
           "kv": pair["kv"], "isl": round(pair["input_tokens"] / pair["prompts"]),
           "osl": round(run["generated"] / pair["prompts"]), "range_ratio": 0, "concurrency": pair["concurrency"],
           "num_prompts": pair["prompts"], "endpoint": "/v1/chat/completions",
           "async_scheduling": side == "async"}  # fmt: skip
    for key in ("max_num_seqs", "max_num_batched_tokens"):
        if key in pair:
            row[key] = pair[key]
    if budget:
        row["max_num_batched_tokens"] = budget
    return row


def duration_s(row: dict, step_s: float | None, request_s: float | None) -> float:
    """kvplan's duration of the row's run with these host times (:func:`published_compare.engine_row_trace`)."""
    return pub.engine_row_trace(row, host=(step_s, request_s))["duration_s"]


def predicted_difference_s(pair: dict, step_s: float | None, request_s: float | None) -> float:
    """kvplan's in-turn run less its one-step-ahead run, at these host times."""
    return duration_s(run_row(pair, "sync"), step_s, request_s) - duration_s(run_row(pair, "async"), step_s, request_s)


def slopes(pair: dict) -> tuple[float, float, float]:
    """(difference without host time, seconds of difference per second of host time a step, per request)."""
    base = predicted_difference_s(pair, None, None)
    per_step = (predicted_difference_s(pair, SLOPE_STEP_S, None) - base) / SLOPE_STEP_S
    per_request = (predicted_difference_s(pair, None, SLOPE_REQUEST_S) - base) / SLOPE_REQUEST_S
    return base, per_step, per_request


def measured_difference_s(pair: dict) -> float:
    return pair["sync"]["duration_s"] - pair["async"]["duration_s"]


def least_squares(terms: list[tuple[float, float, float, float, float]]) -> tuple[float, float]:
    """(step_s, request_s) >= 0 minimising sum w (base + a S + b R - measured)^2 over (base, S, R, measured, w)."""

    def solve(use_a: bool, use_b: bool) -> tuple[float, float]:
        saa = sum(w * s * s for _, s, _, _, w in terms)
        sbb = sum(w * r * r for _, _, r, _, w in terms)
        sab = sum(w * s * r for _, s, r, _, w in terms)
        ya = sum(w * s * (m - b0) for b0, s, _, m, w in terms)
        yb = sum(w * r * (m - b0) for b0, _, r, m, w in terms)
        if use_a and use_b:
            det = saa * sbb - sab * sab
            return (ya * sbb - yb * sab) / det, (yb * saa - ya * sab) / det
        if use_a:
            return ya / saa, 0.0
        return 0.0, yb / sbb

    a, b = solve(True, True)
    if a >= 0 and b >= 0:
        return a, b
    candidates = [solve(True, False), solve(False, True)]
    candidates = [(max(0.0, x), max(0.0, y)) for x, y in candidates]

    def cost(ab: tuple[float, float]) -> float:
        return sum(w * (b0 + ab[0] * s + ab[1] * r - m) ** 2 for b0, s, r, m, w in terms)

    return min(candidates, key=cost)


def fit_terms(pair: dict, base: float, per_step: float, per_request: float) -> tuple:
    """One pair's least-squares term: kvplan's slopes, the measured difference, its weight (relative error)."""
    return base, per_step, per_request, measured_difference_s(pair), 1 / pair["sync"]["duration_s"] ** 2


# The fit on parts of the pairs (label filters): how much each part pins (printed, not used).
SUBSETS = (
    ("without the small-batch pair", lambda label: "concurrency 4" not in label),
    ("the H100 node's pairs alone", lambda label: "H100" in label),
    ("the A100 node's pairs alone", lambda label: "A100" in label),
)


def fit(pairs: list[dict]) -> dict:
    """The fitted figures and each pair's terms (kvplan's slopes, measured and predicted differences), and the fit on
    each of ``SUBSETS``."""
    rows, terms = [], {}
    for p in pairs:
        base, per_step, per_request = slopes(p)
        measured = measured_difference_s(p)
        rows.append({"pair": p, "base": base, "per_step": per_step, "per_request": per_request, "measured": measured})
        if "not_in_fit" not in p:
            terms[p["label"]] = fit_terms(p, base, per_step, per_request)
    step_s, request_s = least_squares(list(terms.values()))
    for r in rows:
        r["predicted"] = predicted_difference_s(r["pair"], step_s or None, request_s or None)
    subsets = {name: least_squares([t for label, t in terms.items() if keep(label)]) for name, keep in SUBSETS}
    return {"step_s": step_s, "request_s": request_s, "rows": rows, "fitted_pairs": len(terms), "subsets": subsets}


def lines(result: dict) -> list[str]:
    out = [f"host time of vLLM's loop in turn: {result['step_s'] * 1e3:.3f} ms a step + "
           f"{result['request_s'] * 1e6:.1f} us a request (least squares over {result['fitted_pairs']} pairs)",
           "pair: in-turn / one-step-ahead duration (s), measured difference, kvplan's at the fit (s); kvplan's "
           "slopes: steps, requests (s of difference per s of host time)"]  # fmt: skip
    for r in result["rows"]:
        p = r["pair"]
        left = f"  [not in fit: {p['not_in_fit']}]" if "not_in_fit" in p else ""
        out.append(f"  {p['label']}: {p['sync']['duration_s']:g} / {p['async']['duration_s']:g}, "
                   f"{r['measured']:+.2f}, {r['predicted']:+.2f}; {r['per_step']:,.0f}, {r['per_request']:,.0f}"
                   f"{left}")  # fmt: skip
    rel = [abs(r["predicted"] - r["measured"]) / r["pair"]["sync"]["duration_s"] for r in result["rows"]
           if "not_in_fit" not in r["pair"]]  # fmt: skip
    out.append(f"fitted pairs: median |predicted - measured| {sorted(rel)[len(rel) // 2] * 100:.2f} % of the in-turn "
               f"run, worst {max(rel) * 100:.2f} %")  # fmt: skip
    for name, (step_s, request_s) in result["subsets"].items():
        out.append(f"fitted on {name}: {step_s * 1e3:.3f} ms a step + {request_s * 1e6:.1f} us a request")
    return out


def stored_fit(result: dict) -> dict:
    """The figures as stored (4 significant digits) with each fitted pair's kvplan terms (difference without host
    time, slope per second a step, per second a request), which the tests check the fit against."""
    terms = {r["pair"]["label"]: [round(r["base"], 5), round(r["per_step"], 2), round(r["per_request"], 1)]
             for r in result["rows"] if "not_in_fit" not in r["pair"]}  # fmt: skip
    return {"step_s": float(f"{result['step_s']:.4g}"), "request_s": float(f"{result['request_s']:.4g}"),
            "pairs": result["fitted_pairs"], "by": "benchmarks/fit_host.py", "terms": terms}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--update", action="store_true", help="write the fit into the data file")
    args = ap.parse_args(argv)
    data = json.loads(args.data.read_text())
    result = fit(data["pairs"])
    print("\n".join(lines(result)))
    if args.update:
        data["fit"] = stored_fit(result)
        args.data.write_text(json.dumps(data, indent=1) + "\n")
    assert math.isfinite(result["step_s"]) and math.isfinite(result["request_s"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

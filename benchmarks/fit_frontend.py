"""Fit the API server's cost per request (kvplan.engines.base.FrontEnd) on the published vLLM / SGLang runs; print it.

    python benchmarks/fit_frontend.py [--rows]

Data: the engine-table rows of ``benchmarks/data/published_throughput.json`` (``engine_benchmarks``, each with its
page and line), grouped by the kvplan rule set that scores them (``engine``: ``vllm@0.8`` for the GPUStack runs of
vLLM 0.10.2-0.13.0 and vLLM Recipes' 0.12.0, ``sglang@0.5`` for SGLang 0.5.3-0.5.7, ``vllm@0.16`` for Vultr's 0.16.0).
A row kept out of the statistics (``not_in_statistics``) is left out here too.

What is fitted. In each run the client sends its requests to the engine's API server, one Python event loop beside
the process that runs the steps (vLLM's V1 AsyncLLM front end and its EngineCore process; SGLang's TokenizerManager
and its Scheduler process: kvplan/engines/vllm.py and sglang.py, beside their ``FRONT_END``). kvplan's run of the row
(``published_compare.engine_row_trace``: the engine's own steps) is repeated with a serial worker between client and
engine (``published_compare.FrontEndWorker``, requests sent together reaching the engine as the rule set's server
hands them on, ``FrontEnd.together``) costing ``request_s`` a request; for each row, the cost at which the run falls
to the published throughput (bisection on a log scale between 1 us and 1 s; none where kvplan is already at or below
it). The figures come from the short-output runs (random 128 in / 4 out, 1,000 requests sent at once, ``SHORT_OSL``):
a request's engine work is small there, so its front-end share shows; a figure measured there covers a request and
its 4 streamed tokens. A longer run's figure would be its whole miss, prefill and decode errors included, put on its
requests: such runs are not used. The engine's figure is the smallest over its short runs: the largest cost a
request that none of them contradicts, since any larger one would put kvplan below the run that gives it. Where the
API server is what bounds the runs, the rows' figures agree and the smallest is the cost; where something else does,
they spread, and the smallest is an upper bound (``--rows``: every row's figure).

Two figures where the rule set's server pays for the chat template on some requests (``FrontEnd.template_s``: vLLM
0.11 parses the model's Jinja template anew on every chat request; not on the completions endpoint, nor for models
whose chat prompt it builds without the template, gpt-oss's harmony): ``request_s`` from the short runs that do not
pay it (gpt-oss), ``template_s`` the smallest figure of the short runs that do, less ``request_s``.

A cost per streamed token beyond it is not separable on these runs: the longest-output runs that load the front end
most stream at most ~16k tokens/s, and the bound they give (printed: the same fit with the request cost 0, smallest
over all rows) is kept out of kvplan (``FrontEnd.token_s`` 0).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import published_compare as pub  # noqa: E402

LO, HI, STEPS = 1e-6, 1.0, 30  # bisection bounds (s) and steps: 30 halvings of the log range, ~0.05 % apart
# The runs that pin a cost per request: a request's engine work is small next to it (random 128 in / 4 out). A
# longer run's figure is its whole miss put on its requests, whatever else the miss holds: not a bound.
SHORT_OSL = 4


def row_front_end(r: dict):  # noqa: ANN201
    """The API server of the row's rule set (:attr:`Engine.front_end`), None where it has none."""
    return pub.engine_row_setup(r).engine.front_end


def templated(r: dict) -> bool:
    """Whether the row's requests pay the chat template (:meth:`FrontEnd.cost_s`: a chat request, a model that
    renders a Jinja template, a release that parses it per request)."""
    fe = row_front_end(r)
    if fe is None or not fe.template_s:
        return False
    family = pub.engine_row_setup(r).spec.family
    return fe.cost_s(family, chat=pub.row_chat(r), release=r["engine_version"]) > fe.request_s


def run_tok_s(r: dict, *, request_s: float = 0.0, token_s: float = 0.0) -> float:
    """kvplan's output tokens/s for row ``r`` with a front-end worker at these costs (none at 0, 0), requests sent
    together reaching the engine as the rule set's server hands them on (:attr:`FrontEnd.together`)."""
    fe = row_front_end(r)
    together = fe is not None and fe.together
    worker = pub.FrontEndWorker(request_s, token_s, together=together) if request_s or token_s else None
    return pub.engine_row_trace(r, front_end=worker)["tok_s"]


def implied_s(r: dict, *, per: str, below: float = HI) -> float | None:
    """The front-end cost (``per`` "request" or "token") at which kvplan's run of ``r`` falls to the published
    throughput, searched below ``below``; None where kvplan without one is not above it, or where even ``below``
    leaves it above (the row's figure is larger)."""
    target = r["published_tok_s"]
    key = "request_s" if per == "request" else "token_s"
    if run_tok_s(r, **{key: below}) > target or run_tok_s(r) <= target:
        return None
    lo, hi = LO, below
    for _ in range(STEPS):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if run_tok_s(r, **{key: mid}) > target else (lo, mid)
    return math.sqrt(lo * hi)


def smallest(rows: list[dict], *, per: str) -> tuple[float, dict] | None:
    """The smallest figure over ``rows`` and its row: the shortest outputs first, each later row searched only below
    the smallest so far (one run shows whether its figure is larger)."""
    best: tuple[float, dict] | None = None
    for r in sorted(rows, key=lambda r: (r["osl"], r["isl"])):
        s = implied_s(r, per=per, below=best[0] if best else HI)
        if s is not None:
            best = (s, r)
    return best


def rows_by_engine(data: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in data["engine_benchmarks"]:
        if "not_scored" in r or "not_in_statistics" in r:
            continue
        out.setdefault(r["engine"], []).append(r)
    return out


def row_name(r: dict) -> str:
    return (f"{r['label']} {r['engine_version']} {r['gpu']} {r['isl']}/{r['osl']} c={r['concurrency']}"
            f" n={r['num_prompts']}")  # fmt: skip


def fit(rows: list[dict]) -> dict:
    """The engine's figures on its short-output rows (:data:`SHORT_OSL`): per request on those that do not pay the
    chat template (smallest over them, and the row), the chat template's share on those that do (the smallest of
    their figures less that); and the per-token bound over all its rows."""
    short = [r for r in rows if r["osl"] <= SHORT_OSL]
    best, tok = smallest([r for r in short if not templated(r)], per="request"), smallest(rows, per="token")
    base = best[0] if best else None
    paying = smallest([r for r in short if templated(r)], per="request")
    template = paying[0] - (base or 0.0) if paying else None
    return {"request_s": base, "from": row_name(best[1]) if best else None,
            "template_s": template, "template_from": row_name(paying[1]) if paying else None,
            "token_bound_s": tok[0] if tok else None, "token_from": row_name(tok[1]) if tok else None}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", action="store_true", help="every row's implied cost per request")
    ap.add_argument("--data", type=Path, default=pub.DATA)
    args = ap.parse_args(argv)
    data = json.loads(args.data.read_text())
    for engine, rows in rows_by_engine(data).items():
        f = fit(rows)
        if f["request_s"] is None:
            print(f"{engine}: no short-output run (osl <= {SHORT_OSL}) that kvplan over-predicts; nothing to fit")
        else:
            print(f"{engine}: request_s {f['request_s'] * 1e3:.3f} ms (from {f['from']})")
        if f["template_s"] is not None:
            print(f"  template_s {f['template_s'] * 1e3:.3f} ms more a chat request that pays the chat template "
                  f"(from {f['template_from']})")  # fmt: skip
        if f["token_bound_s"] is not None:
            print(f"  per-token bound (request cost 0): {f['token_bound_s'] * 1e6:.1f} us (from {f['token_from']}); "
                  "not used")  # fmt: skip
        if args.rows:
            for r in rows:
                s = implied_s(r, per="request")
                shown = "-" if s is None else f"{s * 1e3:.3f} ms"
                paid = ", pays the chat template" if templated(r) else ""
                print(f"  {row_name(r)}: x{run_tok_s(r) / r['published_tok_s']:.2f} without a front end; {shown}{paid}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

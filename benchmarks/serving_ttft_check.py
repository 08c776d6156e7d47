"""Which load the mixed-step prompts' queue takes: kvplan.serving's two rules against a simulation and MLPerf logs.

With mixed steps (vLLM V1, TensorRT-LLM, SGLang ``--enable-mixed-chunk``) a prompt's TTFT is its prefill plus a
wait for the prompts ahead of it. ``kvplan.serving.MIXED_QUEUE_RULE`` selects the wait:

* ``step`` (the default): the load is the share of the prefill room the prompt tokens fill, ``p / (B - n)``, the
  queue serves the mean prompt's prefill, and the step under way is not counted;
* ``time``: the load is the share of time full-budget steps would take to clear the prompt tokens, the queue serves
  a prompt's tokens at that rate, and the decode step under way is waited out (Cobham's residual).

It prints (1) both rules beside benchmarks/serving_sim.py's step-by-step simulation (mixed layout, FCFS packing of
several prompts per step, kvplan's own step times; 3,000 requests, seed 1, the first 200 left out; the attention-DP
cases 6,000, the first 1,500 left out), (2) both rules at the MLPerf Server
logs' own rates against the logs' measured mean and p99 TTFT (the rows of benchmarks/data/published_throughput.json
with ``measured``), and (3) the MLPerf Server / Interactive scores under both rules.

``python benchmarks/serving_ttft_check.py [--requests 3000]``
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

RULES = ("step", "time")


def _ms(x: float) -> str:
    return f"{x * 1e3:.1f}"


def sim_lines(requests: int) -> list[str]:
    """(1): the simulation's mean and p90 TTFT beside each rule's, and |ln(kvplan / sim)| of the means."""
    import serving_sim

    from kvplan.capacity import setup
    from kvplan.engines import Settings
    from kvplan.serving import DEFAULT_TOKEN_BUDGET, Lengths, _limits, max_rate, mixed_queue_rule, serve, steps_only

    lines = ["| case | rate (x max) | TTFT ms sim | step rule | time rule | TTFT p90 ms sim | step rule | time rule |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    errs = {rule: [] for rule in RULES}
    cases = [(c, requests, 200) for c in serving_sim.CASES]
    cases += [(c, 2 * requests, requests // 2) for c in serving_sim.DP_CASES]  # the DP ranks' batches run larger
    for (model, gpu, tp, dp, weights, isl, osl), count, warmup in cases:
        s = steps_only(setup(model, gpu, engine=serving_sim.SGLANG, tp=tp, dp=dp, ep=dp > 1, weights_dtype=weights,
                             settings=Settings(mixed_chunk=True)))  # fmt: skip
        inp, out = Lengths.of(isl), Lengths.of(osl)
        top = max_rate(s, input_len=inp, output_len=out)
        budget = s.max_num_batched_tokens or DEFAULT_TOKEN_BUDGET
        cap = _limits(s, inp, out)[0]
        for frac in serving_sim.FRACTIONS:
            rate = frac * top
            got = {}
            for rule in RULES:
                with mixed_queue_rule(rule):
                    got[rule] = serve(s, rate_rps=rate, input_len=inp, output_len=out, with_max_rate=False)
            sim = serving_sim.simulate(s, rate_rps=rate, isl=isl, osl=osl, requests=count, budget=budget,
                                       seq_cap=cap, warmup=warmup)  # fmt: skip
            for rule in RULES:
                errs[rule].append(abs(math.log(got[rule].ttft_mean_s / sim.ttft_s)))
            split = f"TP{tp}" if dp == 1 else f"DP{dp} EP{dp}"
            lines.append(f"| {model} {gpu} {split} {isl}/{osl} | {rate:.2f} (x{frac}) | {_ms(sim.ttft_s)} | "
                         f"{_ms(got['step'].ttft_mean_s)} | {_ms(got['time'].ttft_mean_s)} | {_ms(sim.ttft_p90_s)} | "
                         f"{_ms(got['step'].ttft_p90_s)} | {_ms(got['time'].ttft_p90_s)} |")  # fmt: skip
    for rule in RULES:
        e = sorted(errs[rule])
        lines.append(f"{rule} rule against the simulation's mean TTFT: median |ln| {e[len(e) // 2]:.3f}, "
                     f"worst {e[-1]:.3f}")  # fmt: skip
    return lines


def mlperf_lines(data: dict) -> list[str]:
    """(2) and (3): each rule at the Server logs' own rates, and the Server / Interactive scores."""
    import published_compare as pc

    from kvplan.serving import Lengths, mixed_queue_rule, serve

    ds = data["mlperf_datasets"]
    lines = ["| run | rate / replica | measured TTFT mean / p99 s | step rule | time rule |", "|---|---|---|---|---|"]
    for r in data["mlperf"]:
        if "measured" not in r:
            continue
        s, dataset = pc._mlperf_setup(r), ds[r["dataset"]]
        isl, osl = pc._mlperf_isl(r, ds), round(r["osl"])
        p90 = max(isl, round(dataset["input_p90"]))
        inp = Lengths.of(isl, p90, max(p90, round(dataset["input_p99"])), sd=dataset.get("input_sd"))
        rate = r["samples_per_s"] / r["replicas"]
        cells = []
        for rule in RULES:
            with mixed_queue_rule(rule), pc.mlperf_engine(r):
                x = serve(s, rate_rps=rate, input_len=inp, output_len=Lengths.of(osl), with_max_rate=False,
                          with_p90=False)  # fmt: skip
            cells.append(f"{x.ttft_mean_s:.2f} / {x.ttft_p99_s:.2f}")
        m = r["measured"]
        lines.append(f"| {r['source']} {r['label']} {r['system']} {r['scenario']} | {rate:.3f} | "
                     f"{m['ttft_mean_s']:.2f} / {m['ttft_p99_s']:.2f} | {cells[0]} | {cells[1]} |")  # fmt: skip
    lines += ["", "| run | published | score, step rule | score, time rule |", "|---|---|---|---|"]
    for r in data["mlperf"]:
        if r.get("scenario") == "Offline" or "not_compared" in r:
            continue
        scores = []
        for rule in RULES:
            with mixed_queue_rule(rule):
                scores.append(pc.score_mlperf(r, ds)["ratio"])
        lines.append(f"| {r['source']} {r['label']} {r['system']} {r['scenario']} | {r['published_tok_s']:g} tok/s | "
                     f"x{scores[0]:.3f} | x{scores[1]:.3f} |")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=3000)
    args = ap.parse_args(argv)
    data = json.loads((HERE / "data" / "published_throughput.json").read_text())
    print("\n".join(sim_lines(args.requests)))
    print()
    print("\n".join(mlperf_lines(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How much an MLPerf Offline run loses to its end: the query is finite, and its last requests drain at a small batch.

LoadGen's Offline scenario issues one query of ``samples_per_query`` samples and scores samples over the time to the
last completion (the H100 Mixtral log: 971,520 samples, the run's maximum latency 2,714.6 s; mlcommons/inference
``loadgen/mlperf.conf``: "In Offline scenario, we always have one query. But LoadGen maps this to min_sample_count
internally"). ``samples_per_query`` is ``max(min_query_count, 1.1 x offline_expected_qps x min_duration)`` (the
Mixtral log: 1.1 x 368 x 2,400 s = 971,520). ``published_compare.py`` scores an Offline row at kvplan's steady state;
this script runs the finite query step by step on kvplan's own step times (:func:`kvplan.serving._step`) to show what
the end costs. A diagnostic: nothing here enters kvplan or the stored scores.

The run it simulates is NVIDIA's v5.1 DeepSeek-R1 Offline (ykamiset/inference_results_v5.1 @e9ccad4d,
``closed/NVIDIA/configs/B200-SXM-180GBx8/Offline/deepseek-r1.py``: ``min_query_count`` 26,328, ``offline_expected_qps``
10, ``min_duration`` 600 s, so 26,328 samples, six times the 4,388-sample set; 8 attention-DP ranks, 512 sequences a
rank, ``max_num_tokens`` 4,608, no chunked context). The samples' lengths are the set's per-sample input and reference
output lengths (openshift-psap/performance-dashboard @67033bae, ``mlperf-data/summaries/deepseek-r1.csv``: pass its
path; outputs cut at the run's 20,000-token cap), dealt round-robin to the ranks in a seeded shuffle (LoadGen
shuffles the sample indices). The ranks step in lockstep (attention DP): a step's time is kvplan's for all ranks'
decodes and the busiest rank's prompt tokens. A rank admits waiting prompts whole while its decodes plus prompt tokens
fit ``max_num_tokens`` and its sequences the cap (its KV pool does not bind here: 3.17 M tokens a rank); the prompt's
step makes the first token.

``python benchmarks/mlperf_offline_drain.py PATH/deepseek-r1.csv``
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

R1_QUERY_COPIES = 6  # 26,328 samples = 6 x 4,388 (the Offline file's min_query_count over the set's size)
R1_OUTPUT_CAP = 20_000  # tokens: the Offline file's max_seq_len 3140 + 20000
R1_RANK_CAP = 512  # gpu_batch_size a rank
R1_TOKEN_BUDGET = 4608  # runtime max_num_tokens a rank
STEADY_WINDOW = (0.2, 0.6)  # the completions between which the simulated run is read as its steady state
CONTEXT_BUCKET = 64  # tokens: decodes priced at their mean context rounded to this (as serving_sim.py)
SEED = 1


@dataclass
class DrainRun:
    total_s: float  # the first step's start to the last completion
    queue_empty_s: float  # when the last waiting prompt was admitted
    completions_s: list[float]  # each request's last token, in order
    output_tokens: int

    def tokens_s(self) -> float:
        return self.output_tokens / self.total_s

    def steady_tokens_s(self) -> float:
        """Output tokens/s between the ``STEADY_WINDOW`` completions, at the query's mean output."""
        n = len(self.completions_s)
        lo, hi = (self.completions_s[int(f * n)] for f in STEADY_WINDOW)
        return (STEADY_WINDOW[1] - STEADY_WINDOW[0]) * n / (hi - lo) * self.output_tokens / n


def run_query(query: list[tuple[int, int]], *, ranks: int, cap: int, budget: int,
              step_s: Callable[[int, int, int, int], float]) -> DrainRun:  # fmt: skip
    """Serve ``query`` (``(input, output)`` tokens each) on ``ranks`` lockstep ranks, dealt round-robin;
    ``step_s(decodes, busiest_prompt_tokens, all_prompt_tokens, mean_context)`` prices a step (module docstring)."""
    waiting = [query[k::ranks] for k in range(ranks)]
    taken = [0] * ranks
    running: list[list[list[int]]] = [[] for _ in range(ranks)]  # [input, output, made] per running request
    t, empty_s, done, tokens = 0.0, None, [], 0
    while any(running) or any(taken[k] < len(waiting[k]) for k in range(ranks)):
        prompts = [_admit(running[k], waiting[k], taken, k, cap=cap, budget=budget) for k in range(ranks)]
        decoding = [q for rank in running for q in rank if q[2] > 0]
        context = sum(q[0] + q[2] for q in decoding) / len(decoding) if decoding else 0
        context = max(CONTEXT_BUCKET, round(context / CONTEXT_BUCKET) * CONTEXT_BUCKET)
        t += step_s(len(decoding), max(prompts), sum(prompts), context)
        if empty_s is None and all(taken[k] >= len(waiting[k]) for k in range(ranks)):
            empty_s = t
        for k in range(ranks):
            for q in running[k]:
                q[2] += 1
                tokens += 1
            done.extend(t for q in running[k] if q[2] >= q[1])
            running[k] = [q for q in running[k] if q[2] < q[1]]
    return DrainRun(total_s=t, queue_empty_s=empty_s or t, completions_s=done, output_tokens=tokens)


def _admit(rank: list[list[int]], waiting: list[tuple[int, int]], taken: list[int], k: int, *, cap: int,
           budget: int) -> int:  # fmt: skip
    """Admit rank ``k``'s waiting prompts in order, whole, while they fit; return the prompt tokens admitted."""
    prompt = 0
    while taken[k] < len(waiting) and len(rank) < cap:
        isl, osl = waiting[taken[k]]
        if len(rank) + prompt + isl > budget:
            break
        rank.append([isl, osl, 0])
        taken[k] += 1
        prompt += isl
    return prompt


def r1_query(path: Path) -> list[tuple[int, int]]:
    """The R1 Offline query: the set's samples, outputs cut at the cap, ``R1_QUERY_COPIES`` times, seeded shuffle."""
    with path.open(newline="") as f:
        rows = [(int(r["input_length"]), min(int(r["output_length"]), R1_OUTPUT_CAP)) for r in csv.DictReader(f)]
    query = rows * R1_QUERY_COPIES
    random.Random(SEED).shuffle(query)
    return query


def r1_lines(path: Path) -> list[str]:
    import published_compare as pc

    from kvplan import serving

    data = json.loads(pc.DATA.read_text())
    r = next(x for x in data["mlperf"] if x["model"] == "deepseek-v3" and x["scenario"] == "Offline")
    s = pc._mlperf_setup(r)

    def step_s(decodes: int, busiest: int, prompts: int, context: int) -> float:
        return serving._step(s, n=float(decodes), p=float(busiest), context=context, p_all=float(prompts))

    query = r1_query(path)
    with pc.mlperf_engine(r):
        run = run_query(query, ranks=s.dp, cap=R1_RANK_CAP, budget=R1_TOKEN_BUDGET, step_s=step_s)
    done = sorted(run.completions_s)
    factor = run.tokens_s() / run.steady_tokens_s()
    return [
        f"R1 Offline query: {len(query):,} samples, mean output {run.output_tokens / len(query):,.1f} tokens, "
        f"{sum(1 for _, o in query if o >= R1_OUTPUT_CAP):,} at the {R1_OUTPUT_CAP:,}-token cap",
        f"simulated on kvplan's steps: queue empty at {run.queue_empty_s:,.1f} s, last completion at "
        f"{run.total_s:,.1f} s (99 % of the samples done at {done[int(0.99 * len(done))]:,.1f} s)",
        f"finite run {run.tokens_s():,.0f} tok/s, its steady state ({STEADY_WINDOW[0]:.0%}-{STEADY_WINDOW[1]:.0%} of "
        f"the completions) {run.steady_tokens_s():,.0f} tok/s: x{factor:.3f}",
        f"kvplan's stored steady-state score {r['kvplan_tok_s']:,.0f} tok/s (x{r['ratio']:.2f} of the published "
        f"{r['published_tok_s']:,.0f}); at that finite-run share x{r['ratio'] * factor:.2f}",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("samples_csv", type=Path, help="mlperf-data/summaries/deepseek-r1.csv (its columns)")
    args = ap.parse_args(argv)
    if not args.samples_csv.is_file():
        print(f"SKIPPED: {args.samples_csv} not found (the per-sample lengths are not stored in this repository)")
        return 0
    print("\n".join(r1_lines(args.samples_csv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

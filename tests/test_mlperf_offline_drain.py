"""benchmarks/mlperf_offline_drain.py: an MLPerf Offline query run to its last completion, step by step."""

from __future__ import annotations

import pytest

from tests.benchmods import bench_module


def test_a_finite_query_by_hand():
    """One rank, 2 sequences at most, a 100-token budget, every step 10 ms; three requests of 10 prompt tokens with
    outputs 1, 3 and 2. Step 1 admits A and B (the cap; the prompt step makes each one's first token): A is done at
    10 ms. Step 2 admits C beside B's decode: B has 2, C 1, and the queue is empty at 20 ms. Step 3: B (3) and C (2)
    are done at 30 ms. 6 output tokens in 30 ms: 200 tokens/s."""
    drain = bench_module("mlperf_offline_drain")
    run = drain.run_query([(10, 1), (10, 3), (10, 2)], ranks=1, cap=2, budget=100, step_s=lambda *a: 0.01)
    assert run.completions_s == pytest.approx([0.01, 0.03, 0.03])
    assert run.queue_empty_s == pytest.approx(0.02) and run.total_s == pytest.approx(0.03)
    assert run.output_tokens == 6 and run.tokens_s() == pytest.approx(200.0)


def test_prompts_wait_for_the_token_budget_and_the_ranks_step_together():
    """Two ranks dealt round-robin (A, C on rank 0; B on rank 1), a 25-token budget: rank 0 admits A (20 tokens) and
    C (20) does not fit beside it, so C waits a step. The step function sees all decodes, the busiest rank's prompt
    tokens and all prompt tokens: step 1 (0 decodes, 20 busiest, 40 all), step 2 (A's and B's decodes: 2, C's 20,
    20), step 3 (B and C decode: 2, 0, 0). Each step costs 1 ms a prompt token of the busiest rank plus 1 ms."""
    drain = bench_module("mlperf_offline_drain")
    seen = []

    def step_s(decodes: int, busiest: int, prompts: int, context: int) -> float:
        seen.append((decodes, busiest, prompts))
        return 0.001 * (busiest + 1)

    run = drain.run_query([(20, 2), (20, 3), (20, 2)], ranks=2, cap=4, budget=25, step_s=step_s)
    assert seen == [(0, 20, 40), (2, 20, 20), (2, 0, 0)]
    assert run.total_s == pytest.approx(0.021 + 0.021 + 0.001) and run.output_tokens == 7


def test_missing_samples_file_skips_cleanly(tmp_path, capsys):
    drain = bench_module("mlperf_offline_drain")
    assert drain.main([str(tmp_path / "absent.csv")]) == 0
    assert capsys.readouterr().out.startswith("SKIPPED:")

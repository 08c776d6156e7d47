"""``published_compare.py --ep-readings``: the TensorRT-LLM v1.0 attention-DP rows by model and GPU class, scored with
whole experts over the ranks and with each expert's width sliced (the page gives no ``$ep_size``)."""

from __future__ import annotations

from tests.benchmods import published


def _row(label: str, gpu: str, weights: str, ratio: float, ratio_ep1: float) -> dict:
    return {"label": label, "gpu": gpu, "weights": weights, "ratio": ratio, "ratio_ep1": ratio_ep1}


def test_ep_reading_lines_by_hand() -> None:
    """Synthetic rows, by hand.

    - Hopper FP8 (an H100 and an H200 row together), ratios 1.25 and 1.10 whole, 1.00 and 0.85 sliced: whole 1 of 2
      within 20 % (1.10), median |ln| (ln 1.25 + ln 1.10) / 2 = (0.223144 + 0.095310) / 2 = 0.159; sliced 2 of 2,
      median |ln| (0 + 0.162519) / 2 = 0.081, signed (0 - 0.162519) / 2 = -0.081.
    - B200 NVFP4, one row x0.90 whole, x0.50 sliced: 1/1 (|ln| 0.105, signed -0.105) and 0/1 (0.693, -0.693).
    - A row without ``ratio_ep1`` (a TP row) is left out."""
    pub, _ = published()
    rows = [_row("Qwen3-235B-A22B", "h100-sxm", "fp8", 1.25, 1.00), _row("Qwen3-235B-A22B", "h200", "fp8", 1.10, 0.85),
            _row("Qwen3-235B-A22B", "b200", "nvfp4", 0.90, 0.50),
            {"label": "Llama 3.3 70B", "gpu": "h200", "weights": "fp8", "ratio": 1.0}]  # fmt: skip
    assert pub.ep_reading_lines(rows) == [
        "ep reading Qwen3-235B-A22B  hopper fp8 : experts whole 1/2 (median |ln| 0.159, signed +0.159); sliced 2/2 "
        "(median |ln| 0.081, signed -0.081)",
        "ep reading Qwen3-235B-A22B  b200 nvfp4 : experts whole 1/1 (median |ln| 0.105, signed -0.105); sliced 0/1 "
        "(median |ln| 0.693, signed -0.693)",
    ]


def test_ep_readings_block_in_docs_matches_the_printout_format() -> None:
    """docs/cost.md carries the ``--ep-readings`` block (measured: Qwen3-235B-A22B on Hopper 13/17 whole, 15/17
    sliced, 11/17 and 13/17 before the finite run priced each step at its batch with the run's CUDA-graph padding,
    stop 28, and 5/17 and 12/17 before trtllm@0.20 priced its Hopper grouped experts as TensorRT-LLM 1.0.0rc3 ran
    them, stop 27; its B200 NVFP4 rows 10/10 and 1/10, 3/10 before stop 28 and 4/10 before TensorRT-LLM's NVFP4
    experts paid the CUTLASS path's own fixed cost a layer; Hopper 12/17 whole since each of a rank's whole prompts
    attends to its own tokens, stop 29, and 8/17 whole, 14/17 sliced with trtllm-bench's own max_num_tokens, stop
    29), each line in the printout's format."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "cost.md").read_text()
    lines = [ln for ln in text.splitlines() if ln.startswith("ep reading ")]
    assert len(lines) == 5
    assert any("Qwen3-235B-A22B  hopper fp8 : experts whole 8/17" in ln and "sliced 14/17" in ln for ln in lines)
    assert any("Qwen3-235B-A22B  b200 nvfp4 : experts whole 10/10" in ln and "sliced 1/10" in ln for ln in lines)

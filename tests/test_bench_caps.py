"""The TensorRT-LLM v1.0 table rows run with ``trtllm-bench throughput``'s own ``max_batch_size`` and
``max_num_tokens``, by hand.

The page's launches set neither, so ``get_settings`` (tensorrt_llm/bench/benchmark/utils/general.py) takes the tuning
heuristic's (bench/build/tuning.py ``calc_engine_setting``), ``max_num_tokens`` at least the longest prompt +
``max_batch_size`` with chunked prefill off; the executor then captures CUDA graphs only up to that batch, the first
larger size of the page's list replaced by it (model_engine.py ``_filter_cuda_graph_batch_sizes``,
kvplan.engines.trtllm ``captured_graph_sizes``). benchmarks/published_compare.py ``bench_caps`` /
``checkpoint_elements``.
"""

from __future__ import annotations

import pytest

from tests.benchmods import published as _published


def _row(data: dict, label: str, gpu: str, isl: int, osl: int) -> dict:
    return next(r for r in data["runs"] if r["source"] == "trtllm-1.0" and r["label"] == label and r["gpu"] == gpu
                and (r["isl"], r["osl"]) == (isl, osl))  # fmt: skip


def test_nvfp4_checkpoint_headers_count_packed_weights_and_block_scales_by_hand() -> None:
    """Llama 3.3 70B: 70,553,706,496 parameters, of which the attention (12,079,595,520) and MLP (56,371,445,760)
    projections are the quantized linear layers, 68,451,041,280. A ModelOpt NVFP4 checkpoint stores them as uint8
    pairs (34,225,520,640 elements) and one FP8 scale per 16 (4,278,190,080), the embedding, LM head and norms as
    they are (2,102,665,216): 40,606,375,936 elements in the headers. FP8: every parameter once."""
    from kvplan.catalog import load_bundled

    pub, _ = _published()
    spec = load_bundled("llama-3.1-70b")
    assert pub.checkpoint_elements(spec, "fp8") == 70_553_706_496
    assert pub.checkpoint_elements(spec, "nvfp4") == pytest.approx(40_606_375_936, abs=1)


def test_bench_caps_of_the_h200_70b_rows_by_hand() -> None:
    """Llama 3.3 70B FP8 on one H200 at 1000/2000: KV per token 2 x 80 layers x max(1, 8) heads x 128 x 1 B =
    163,840 B = 1.52588e-4 GiB; the GPU's 140.4014 GiB less the engine's 70,553,706,496 B = 65.7079 GiB, x 0.95 =
    70.9588 GiB of cache: 70.9588 / (1.52588e-4 x 3000) = 155.0 requests. max_batch_size: 155.0 < 256 ->
    32 x ceil(155.0 / 32) = 160; max_num_tokens: 155.0 x 1.5 = 232.5 < 4096 -> 2048, at least 1000 + 160. The row is
    scored with 160 sequences at most, graphs 1, 2, ..., 128, 160 and a 2,048-token step budget (the engine's 8,192
    until stop 29, ``tokens=False``): its steady batch (about 145) runs as 160 rows where the uncut list padded it to
    256. The v0.17 rows keep their own rules (no caps)."""
    pub, data = _published()
    row = _row(data, "Llama 3.3 70B", "h200", 1000, 2000)
    assert pub.trtllm_bench_settings(row) == (160, 2048)
    assert pub.bench_caps(row) == {"max_batch": 160, "max_tokens": 2048}
    assert pub.bench_caps(row, tokens=False) == {"max_batch": 160}
    s = pub.run_setup(row)
    assert s.settings.max_num_seqs == 160 and s.settings.max_num_batched_tokens == 2048
    assert pub.run_setup(row, tokens=False).settings.max_num_batched_tokens is None
    assert s.engine.graph_rows(s.settings, 145.0) == 160.0
    assert pub.run_setup(row, max_batch=100).settings.max_num_seqs == 100  # the finite run's last lifetime
    assert pub.run_setup(row, max_batch=400).settings.max_num_seqs == 160
    old = next(r for r in data["runs"] if r["source"] == "trtllm-0.17")
    assert pub.bench_caps(old) == {}


def test_the_h200_70b_long_output_rows_with_the_runs_batch_cap() -> None:
    """The KV-bound long-output rows on one H200 (measured before / after the cap): 500/2000 x0.82 -> x0.92 and
    1000/2000 x0.77 -> x0.91 (in); the cap does not bind (the KV pool holds fewer), the padding does: 174 and 145
    sequences ran as 256 rows, now as 192 and 160. A row whose heuristic cap sits on a captured size moves little
    (128/4096: cap 128, x0.92 either way). The heuristic's 2,048-token budget (stop 29) moves none of the three by
    more than 0.2 %: the pool grows by the smaller dummy forward's activations, and the prompts (at most 1,000
    tokens) still enter one or two a step."""
    pub, data = _published()
    for (isl, osl), lo, hi in (((500, 2000), 0.90, 0.94), ((1000, 2000), 0.89, 0.93), ((128, 4096), 0.90, 0.94)):
        row = _row(data, "Llama 3.3 70B", "h200", isl, osl)
        assert lo < pub.run_tokens_s(row) / row["published_tok_s"] < hi, (isl, osl)

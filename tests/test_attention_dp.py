"""TensorRT-LLM's attention data parallelism + expert parallelism, and the published MoE rows scored with it.

The TensorRT-LLM perf-overview v1.0 MoE rows (Qwen3-235B-A22B, Llama 4 Scout and Maverick, FP8 on H100/H200)
ran with ``enable_attention_dp``; ``benchmarks/data/published_throughput.json`` stores each row's launch with
its source and what the page leaves unstated, and ``benchmarks/published_compare.py`` scores them on kvplan's
DP + EP path.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from kvplan.capacity import capacity, setup
from kvplan.engines import Settings
from kvplan.errors import InvalidInput
from kvplan.launch import launch_args
from kvplan.params import Sharding
from kvplan.serving import Lengths, max_rate

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _published():  # noqa: ANN202
    sys.path.insert(0, str(BENCH))
    try:
        import published_compare as pub
    finally:
        sys.path.remove(str(BENCH))
    return pub, json.loads(pub.DATA.read_text())


def _adp_rows(data: dict) -> list[dict]:
    # The FP8 H100/H200 rows; the NVFP4 B200 Qwen3-235B-A22B rows share the launch and have their own test
    # (tests/test_latency.py::test_published_trtllm_v1_nvfp4_b200_and_gb200_points).
    return [r for r in data["runs"] if "launch" in r and r["weights"] == "fp8"]


def test_trtllm_attention_dp_is_one_gpu_per_rank_with_whole_dense_parts() -> None:
    """enable_attention_dp: attention tp 1 on every rank (kvplan tp 1, dp = the GPUs); dense MLPs, shared experts,
    embedding and LM head whole on every rank; experts whole over all ranks with EP, else sliced over them."""
    s = setup("qwen3-235b-a22b", "h200", engine="trtllm", tp=1, dp=8, ep=True, weights_dtype="fp8",
              kv_dtype_name="fp8")  # fmt: skip
    assert s.engine.sharding(s.spec, tp=1, dp=8, ep=True) == Sharding(1, 1, 1, 8, 1)
    assert s.engine.sharding(s.spec, tp=1, dp=8, ep=False) == Sharding(1, 1, 8, 1, 1)
    assert s.engine.sharding(s.spec, tp=8) == Sharding.tensor(8)  # no attention DP: plain TP
    with pytest.raises(InvalidInput, match="got tp=4 with dp=2; use --tp 1 --dp 8"):
        setup("qwen3-235b-a22b", "h200", engine="trtllm", tp=4, dp=2, ep=True, weights_dtype="fp8")
    with pytest.raises(InvalidInput, match="no MoE layers"):
        setup("llama-3.1-8b", "h200", engine="trtllm", tp=1, dp=2)


def test_trtllm_attention_dp_launch_line() -> None:
    """trtllm-serve: tp_size counts every rank, --ep_size the expert ranks, max_batch_size is per DP rank
    (ceil(sequences / dp)), enable_attention_dp in the extra options YAML (no flag of its own)."""
    s = setup("qwen3-235b-a22b", "h200", engine="trtllm", tp=1, dp=8, ep=True, weights_dtype="fp8",
              kv_dtype_name="fp8")  # fmt: skip
    args = launch_args(capacity(s, 4096), model="nvidia/Qwen3-235B-A22B-FP8", sequences=100)
    assert args[args.index("--max_batch_size") + 1] == "13"  # ceil(100 / 8)
    assert args[args.index("--tp_size") + 1] == "8" and args[args.index("--ep_size") + 1] == "8"
    assert args[args.index("--extra_llm_api_options") + 1] == "enable_attention_dp.yaml"


def test_every_attention_dp_row_carries_its_launch_and_source() -> None:
    """52 MoE rows ran with attention DP: each stores the page's launch (TP from the table header,
    enable_attention_dp, KV fraction 0.95) and its source, and names what the page does not state (ep_size,
    max batch, max tokens). The 35 Qwen3-235B-A22B and Llama 4 Scout rows are scored; the 17 Maverick rows are
    listed with why not (no catalog spec)."""
    _, data = _published()
    rows = _adp_rows(data)
    assert len(rows) == 52
    url = data["sources"]["trtllm-1.0"]["url"]
    for r in rows:
        launch = r["launch"]
        assert launch["source"].startswith(url) and launch["enable_attention_dp"] is True
        assert launch["tp"] == r["tp"] and launch["kv_cache_free_gpu_mem_fraction"] == 0.95
        assert launch["ep"] is None and "ep_size" in launch["not_stated"]
        assert launch["max_batch_size"] is None and "max_batch_size" in launch["not_stated"]
        assert "--ep $ep_size" in launch["command"]
        if r["model"] == "llama-4-maverick":
            assert "catalog" in r["not_modelled"]
        else:
            assert "not_modelled" not in r
    assert sum("not_modelled" not in r for r in rows) == 35


def test_attention_dp_rows_score_on_the_dp_ep_path() -> None:
    """A scored row is one replica of dp = the header's TP ranks at tp 1 with EP over them: max_rate x OSL.
    Qwen3-235B-A22B on 8 x H200 at 1000/1000 by hand from kvplan.serving, and its experts-sliced reading."""
    pub, data = _published()
    row = next(r for r in _adp_rows(data) if r["model"] == "qwen3-235b-a22b" and r["gpu"] == "h200"
               and (r["isl"], r["osl"]) == (1000, 1000))  # fmt: skip
    assert pub.run_split(row) == {"tp": 1, "dp": 8, "ep": True}
    scored = pub.compare_runs([row])[0]
    settings = Settings(free_gpu_memory_fraction=0.95)
    for ep, key in ((True, "ratio"), (False, "ratio_ep1")):
        s = setup("qwen3-235b-a22b", "h200", engine="trtllm", tp=1, dp=8, ep=ep, weights_dtype="fp8",
                  kv_dtype_name="fp8", settings=settings)  # fmt: skip
        by_hand = max_rate(s, input_len=Lengths.of(1000), output_len=Lengths.of(1000)) * 1000
        assert scored[key] == pytest.approx(by_hand / 23789, rel=1e-9)
    assert pub.split_label(row) == "DP8 EP8"


def test_attention_dp_rows_statistics() -> None:
    """What the DP + EP path gives on the 35 scored rows (measured, printed by published_compare.py): within 20 %
    on at least 10 of them (EP over all ranks); no row past a factor 2.2 either way. The dense rows keep their
    own test (test_latency.test_published_trtllm_v1_throughput_within_20_percent)."""
    pub, data = _published()
    rows = pub.compare_runs([r for r in _adp_rows(data) if "not_modelled" not in r])
    assert len(rows) == 35
    assert sum(abs(r["ratio"] - 1) <= 0.20 for r in rows) >= 10
    assert max(abs(math.log(r["ratio"])) for r in rows) <= math.log(2.2)
    assert pub.attention_dp_summary(rows).startswith("attention DP + EP rows: 35 points (EP = all ranks)")

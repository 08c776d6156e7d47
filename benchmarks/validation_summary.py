"""kvplan's latency model against its references, one line a check: the table the README shows.

Each figure comes from the script that owns it, read the way that script reads it:

* the aiconfigurator grid (``aiconfigurator_compare.py``: the committed ``aiconfigurator_grid.json``, kvplan's
  ``cost`` on every case; TTFT and TPOT, within 1.5x, the TPOT figures aiconfigurator's own tables contradict
  counted as collected and, in the same cell, as re-priced by its DeepGEMM table);
* TensorRT-LLM's published performance tables (``published_compare.py``: every row scored as the finite run the
  page made, :func:`published_compare.compare_runs`), all of them and in three classes: FP8 with tensor parallelism
  (dense models and MoE with their experts sliced), NVFP4 on B200 / GB200, FP8 MoE with attention DP + EP;
* NVIDIA's MLPerf Inference results and the vLLM / SGLang published tables: the scores ``published_compare.py
  --update-data`` stores on their rows (``benchmarks/regen_docs.py`` rewrites that data before any block, and
  ``tests/test_engine_tables.py`` recomputes them), counted as ``published_compare.py`` counts them.

``python benchmarks/validation_summary.py`` prints the markdown table (README.md, "Accuracy, speed and validation").
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aiconfigurator_compare as aic  # noqa: E402 - a sibling script
import published_compare as pub  # noqa: E402 - a sibling script

HEAD = "| check | cases | within the target | median \\|ln ratio\\| | worst \\|ln ratio\\| |"


def trtllm_class(r: dict) -> str:
    """The class a scored TensorRT-LLM table row counts in."""
    if (r.get("launch") or {}).get("enable_attention_dp") and r["weights"] == "fp8":
        return "FP8 MoE, attention DP + EP (H100, H200)"
    if r["weights"] == "nvfp4":
        return "NVFP4 on B200 and GB200 (TP; MoE also attention DP + EP)"
    return "FP8, tensor parallel (dense, and MoE with sliced experts)"


def _row(label: str, s: dict, *, within: str) -> str:
    worst = s["worst_abs_ln"]
    return f"| {label} | {s['compared']} | {within} | {s['median_abs_ln']:.3f} | {worst:.3f} (x{math.exp(worst):.2f}) |"


def _within20(s: dict) -> str:
    return f"{s['within_20pct']} within 20 %"


def aic_lines(data: dict) -> list[str]:
    """The grid's TTFT and TPOT rows (``aiconfigurator_compare.py``'s default reading)."""
    rows = aic.compare(data["cases"])
    if "artifact_crosscheck" in data:
        rows = aic.reprice(rows, data["artifact_crosscheck"])
    s = aic.summary(rows)
    meta = data["meta"]
    tool = f"{meta['tool']} {meta['version']} grid"
    out = []
    for phase, label in (("ttft", "TTFT"), ("tpot", "TPOT")):
        p = s[phase]
        within = f"{p['within_1.5x']} within 1.5x"
        if phase == "tpot" and "tpot_repriced" in s:
            within += (f"; {s['tpot_repriced']['within_1.5x']} with its {s['tpot_artifacts']} flagged figures "
                       "re-priced")  # fmt: skip
        stats = {"compared": p["cases"], "median_abs_ln": p["median_abs_ln"], "worst_abs_ln": p["worst_abs_ln"]}
        out.append(_row(f"{tool}, {label}", stats, within=within))
    return out


def published_lines(data: dict, runs: list[dict]) -> list[str]:
    """The TensorRT-LLM tables (``runs`` scored), by class, then MLPerf and the vLLM / SGLang tables (as stored)."""
    done = [r for r in runs if "ratio" in r]
    versions = ", ".join(s.split("-", 1)[1] for s in dict.fromkeys(r["source"] for r in done))
    out = [_row(f"TensorRT-LLM published tables (v{versions.replace(', ', ', v')})", pub.stats(done),
                within=_within20(pub.stats(done)))]  # fmt: skip
    classes: dict[str, list[dict]] = {}
    for r in done:
        classes.setdefault(trtllm_class(r), []).append(r)
    for label in sorted(classes, key=lambda c: -len(classes[c])):
        s = pub.stats(classes[label])
        out.append(_row(f"&nbsp;&nbsp;{label}", s, within=_within20(s)))
    mlperf = [r for r in data["mlperf"] if "ratio" in r]
    rounds = ", ".join(sorted({r["source"].split("-", 1)[1] for r in mlperf}))
    s = pub.stats(mlperf)
    s["within_20pct"] = sum(r["verdict"] == "within 20%" for r in mlperf)  # as published_compare.mlperf_summary counts
    out.append(_row(f"MLPerf Inference (v{rounds.replace(', ', ', v')}), NVIDIA", s, within=_within20(s)))
    engine = [r for r in data["engine_benchmarks"] if "ratio" in r and "not_in_statistics" not in r]
    s = pub.stats(engine)
    out.append(_row("vLLM and SGLang published tables", s, within=_within20(s)))
    return out


def lines(aic_data: dict, published: dict, runs: list[dict]) -> list[str]:
    return [HEAD, "|---|---|---|---|---|", *aic_lines(aic_data), *published_lines(published, runs)]


def main() -> int:
    aic_data = json.loads(aic.DATA.read_text())
    published = json.loads(pub.DATA.read_text())
    print("\n".join(lines(aic_data, published, pub.compare_runs(published["runs"]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

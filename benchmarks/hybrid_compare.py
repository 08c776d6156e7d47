"""Nemotron 3 Nano's decode step, the hybrid case: kvplan against aiconfigurator's own Nemotron-H model.

aiconfigurator 0.12.0 composes a Nemotron-H decode step block by block (``aiconfigurator_core/sdk/models/
nemotron_h.py``: per Mamba2 block a norm, ``in_proj``, the conv1d and SSM kernels, ``out_proj`` and one
``CustomAllReduce``; per attention block the same with QKV, attention and ``o_proj``; per MoE block the shared
expert's two GEMMs and its relu2, the router, the experts and one all-reduce after the routed and shared outputs
join, plus the ``moe_pre_dispatch`` / ``moe_post_dispatch`` it charges every MoE layer run with ``moe_tp_size`` > 1)
from its measured kernel tables. Its collectives are one a block, as the engines' model files end them and kvplan
counts them since stop 28 (``kvplan.params.layer_allreduces``), besides the two dispatch terms. Two caveats on its
side: its Mamba2 tables hold only the conv1d kernels (``benchmarks/mamba_compare.py``: the decode state update is
not timed, so its ``generation_mamba_ssm`` is near 0), and its vLLM fp8 MoE table times the untuned kernel
(``benchmarks/moe_compare.py``), so vLLM fp8 is left out. Its database holds Nemotron 3 Nano's MoE shape (128
experts, top 6, hidden 2,688, width 1,856) for TensorRT-LLM in bf16 (B200, H200) and fp8 (H200), and for vLLM in
bf16; those are the cases.

Two steps, as the other compare scripts:

1. ``--collect`` (needs aiconfigurator; does not import kvplan): runs ``CASES`` through ``cli_estimate``
   (``static_gen``, ``osl`` 2: one decode step at context ``ISL``, ``moe_tp_size`` = TP) and keeps each step's TPOT
   and per-operation breakdown in ``benchmarks/data/aiconfigurator_hybrid.json``. Where aiconfigurator is not
   installed it says so in one line and exits 0::

       /work/aic-venv/bin/python benchmarks/hybrid_compare.py --collect

2. default (needs kvplan only): kvplan's decode step (``kvplan.cost.cost``, the engine's calibrated model, the
   case's dtypes) against aiconfigurator's TPOT, case by case, with each side's all-reduces a step (aiconfigurator's
   block all-reduces and its dispatch terms apart), then the median and worst ``|ln(kvplan / aiconfigurator)|`` per
   engine and TP degree.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aic_tables import collect_cases  # noqa: E402 - shared with the other compare scripts

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_hybrid.json"
MODEL = "nemotron-3-nano-30b-a3b"
HF = "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"
SYSTEMS = {"b200": "b200_sxm", "h200": "h200_sxm"}
ISL = 2048
BATCHES = (1, 8, 32)
# (engine, GPU, weights): the shapes aiconfigurator 0.12.0's MoE tables hold for this model (module docstring)
SETUPS = (("trtllm", "b200", "bf16"), ("trtllm", "h200", "bf16"), ("trtllm", "h200", "fp8"),
          ("vllm", "b200", "bf16"), ("vllm", "h200", "bf16"))  # fmt: skip
CASES = [dict(engine=e, gpu=g, weights=w, tp=tp, batch=b) for e, g, w in SETUPS for tp in (1, 2) for b in BATCHES]
# aiconfigurator's per-block all-reduces and its MoE dispatch terms (sdk/models/nemotron_h.py op names)
BLOCK_AR = ("generation_mamba_ar", "generation_attn_ar", "generation_moe_ar", "generation_mlp_ar")
DISPATCH = ("generation_moe_pre_dispatch", "generation_moe_post_dispatch")


def _aic_row(cli_estimate, seen: dict, case: dict) -> dict:  # noqa: ANN001 - aiconfigurator's cli_estimate
    quant = {}
    if case["weights"] == "fp8":
        quant = dict(gemm_quant_mode="fp8", kvcache_quant_mode="fp8", moe_quant_mode="fp8")
    r = cli_estimate(HF, SYSTEMS[case["gpu"]], mode="static_gen", isl=ISL, osl=2, backend_name=case["engine"],
                     batch_size=case["batch"], tp_size=case["tp"], moe_tp_size=case["tp"], moe_ep_size=1,
                     **quant)  # fmt: skip
    return {**case, "aic_tpot_ms": r.tpot, "aic_backend_version": r.backend_version,
            "aic_generation_ops_ms": dict(seen["generation"])}  # fmt: skip


def collect(out: Path) -> int:
    collected = collect_cases(CASES, _aic_row)
    if collected is None:
        return 0
    rows, version = collected
    mode = f"static_gen, isl {ISL}, osl 2 (one decode step), moe_tp_size = tp_size, moe_ep_size 1"
    meta = {"tool": "aiconfigurator", "version": version, "model": HF, "mode": mode}
    out.write_text(json.dumps({"meta": meta, "cases": rows}, indent=1) + "\n")
    return 0


def load(path: Path = DATA) -> list[dict]:
    return json.loads(path.read_text())["cases"]


def kvplan_tpot_ms(case: dict) -> float:
    """kvplan's decode step (ms) for the case: its engine's calibrated model, KV in the weights' dtype."""
    from kvplan.catalog import resolve_model
    from kvplan.cost import cost
    from kvplan.hardware import resolve_gpu

    spec = resolve_model(MODEL)
    row = cost(spec, resolve_gpu(case["gpu"]), [ISL], batch=case["batch"], tp=case["tp"], kv_dtype_name=case["weights"],
               weights_dtype=case["weights"], engine=case["engine"], model="calibrated")[0]  # fmt: skip
    return row.tpot_s * 1e3


def kvplan_allreduces(case: dict) -> int:
    """kvplan's all-reduces of the hidden states a step: the blocks' (kvplan.params.tp_allreduces) and the
    embedding's; none at TP 1."""
    from kvplan.catalog import resolve_model
    from kvplan.params import tp_allreduces

    return tp_allreduces(resolve_model(MODEL)) + 1 if case["tp"] > 1 else 0


def compare(cases: list[dict]) -> list[dict]:
    out = []
    for case in cases:
        ops = case["aic_generation_ops_ms"]
        kv = kvplan_tpot_ms(case)
        dispatch = sum(ops.get(k, 0.0) for k in DISPATCH)
        out.append({**case, "kvplan_tpot_ms": kv, "ln": math.log(kv / case["aic_tpot_ms"]),
                    "ln_undispatched": math.log(kv / (case["aic_tpot_ms"] - dispatch)),
                    "aic_ar_ms": sum(ops.get(k, 0.0) for k in BLOCK_AR), "aic_dispatch_ms": dispatch,
                    "kvplan_allreduces": kvplan_allreduces(case)})  # fmt: skip
    return out


def render(rows: list[dict]) -> str:
    lines = ["engine  gpu   weights  tp  batch  aiconfigurator ms  kvplan ms  ratio  without dispatch  "
             "aic block ARs / dispatch ms  kvplan ARs"]  # fmt: skip
    for r in rows:
        lines.append(f"{r['engine']:<7} {r['gpu']:<5} {r['weights']:<8} {r['tp']:>2}  {r['batch']:>5}  "
                     f"{r['aic_tpot_ms']:>17.3f}  {r['kvplan_tpot_ms']:>9.3f}  x{math.exp(r['ln']):.2f}  "
                     f"{'x' + format(math.exp(r['ln_undispatched']), '.2f'):>16}  "
                     f"{r['aic_ar_ms']:>13.3f} / {r['aic_dispatch_ms']:.3f}  {r['kvplan_allreduces']:>10}")  # fmt: skip
    lines.append("")
    groups: dict[tuple, list[tuple[float, float]]] = {}
    for r in rows:
        groups.setdefault((r["engine"], r["tp"]), []).append((r["ln"], r["ln_undispatched"]))
    for (engine, tp), pairs in sorted(groups.items()):
        lns, bare = [a for a, _ in pairs], [b for _, b in pairs]
        lines.append(f"{engine} TP{tp}: {len(lns)} cases, median |ln| {statistics.median(abs(x) for x in lns):.3f}, "
                     f"worst {max(abs(x) for x in lns):.3f}, median signed {statistics.median(lns):+.3f}; without "
                     f"aiconfigurator's dispatch terms median signed {statistics.median(bare):+.3f}")  # fmt: skip
    lns = [r["ln"] for r in rows]
    within = sum(abs(x) <= math.log(1.5) for x in lns)
    lines.append(f"all: {len(lns)} cases, median |ln| {statistics.median(abs(x) for x in lns):.3f}, worst "
                 f"{max(abs(x) for x in lns):.3f}, within 1.5x {within}/{len(lns)}")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--collect", action="store_true", help="run the cases through aiconfigurator into the data file")
    args = p.parse_args(argv)
    if args.collect:
        return collect(DATA)
    print(render(compare(load())), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

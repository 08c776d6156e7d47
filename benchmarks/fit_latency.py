"""Fit kvplan.latency's constants to aiconfigurator's per-operation latencies; print the constants and the errors.

Reads ``benchmarks/data/aiconfigurator_grid.json`` (written by ``aiconfigurator_compare.py --collect``;
committed, so this runs without aiconfigurator). Needs numpy and scipy (the ``bench`` extra).

What is fitted: every field of :class:`kvplan.engines.base.Calibration` except the names, by
``scipy.optimize.least_squares`` on log-parameters (soft_l1 loss with scale 1, so a few cases where
aiconfigurator's own data are fallback rows do not drag the fit), minimising

* ``ln(kvplan / aiconfigurator)`` of the whole step, prefill and decode, every case (weight 1), and
* ``ln(kvplan / aiconfigurator)`` per operation class (GEMM, attention, element-wise, all-reduce,
  grouped experts) where aiconfigurator's breakdown maps onto kvplan's classes one to one
  (weight 0.5): this pins each class's constants to its own kernels instead of letting errors cancel.

``--engine vllm`` or ``--engine trtllm`` fits one engine's cases only (both by default, then one
per engine when ``--per-engine``). Paste the printed block into the engine module's ``CALIBRATION``
(``kvplan/engines/vllm.py``, ``kvplan/engines/trtllm.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_grid.json"

# aiconfigurator op name (after the context_/generation_ prefix) -> kvplan class. MLA blocks include their
# projections and "moe_overlap" the shared experts, so those two only enter through the step total.
CLASSES = {
    "qkv_gemm": "gemm",
    "proj_gemm": "gemm",
    "gate_ffn1_gemm": "gemm",
    "ffn2_gemm": "gemm",
    "logits_gemm": "gemm",
    "router_gemm": "gemm",
    "shared_gate_up_gemm": "gemm",
    "shared_ffn2_gemm": "gemm",
    "attention": "attention",
    "add_norm_1": "elementwise",
    "add_norm_2": "elementwise",
    "act_gate": "elementwise",
    "shared_act_gate": "elementwise",
    "ar_1": "allreduce",
    "ar_2": "allreduce",
    "embedding_ar": "allreduce",
    "tp_allreduce": "allreduce",
    "moe_pre_dispatch": "allreduce",  # the MoE layer's TP communication (gather before, reduce after the experts)
    "moe_post_dispatch": "allreduce",
    "moe": "moe",
}
NAMES = ("engine", "version", "source")
CLASS_WEIGHT = 0.3  # per-class residuals: enough to pin each class, the step totals still lead


def load_cases(engine: str | None) -> list[dict]:
    from kvplan.catalog import resolve_model
    from kvplan.cost import step_flops
    from kvplan.hardware import resolve_gpu

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from aiconfigurator_compare import _kvplan_dtype, _weights

    out = []
    for c in json.loads(DATA.read_text())["cases"]:
        if "aic_error" in c or (engine and c["engine"] != engine):
            continue
        spec, gpu = resolve_model(c["model"]), resolve_gpu(c["gpu"])
        quant = c.get("aic_quant", {})
        for phase, key, ops in (
            ("prefill", "aic_ttft_ms", "aic_context_ops_ms"),
            ("decode", "aic_tpot_ms", "aic_generation_ops_ms"),
        ):
            flops = step_flops(spec, c["isl"], phase=phase, batch=c["batch"], tp=c["tp"])
            classes: dict[str, float] = {}
            clean = not any(k.endswith(("mla_block", "moe_overlap")) for k in c[ops])
            for name, ms in c[ops].items():
                cls = CLASSES.get(name.split("_", 1)[1])
                if cls and clean:
                    classes[cls] = classes.get(cls, 0.0) + ms / 1e3
            out.append(
                dict(
                    case=c,
                    spec=spec,
                    gpu=gpu,
                    phase=phase,
                    attention_flops=flops.attention,
                    weights=_weights(quant, spec.dtype),
                    kv=_kvplan_dtype(quant.get("kvcache"), spec.dtype),
                    total_s=c[key] / 1e3,
                    classes_s=classes,
                )
            )
    return out


def predict(row: dict, cal):  # noqa: ANN001, ANN201
    from kvplan.latency import step_latency

    c = row["case"]
    return step_latency(
        row["spec"],
        row["gpu"],
        c["isl"],
        phase=row["phase"],
        batch=c["batch"],
        tp=c["tp"],
        kv_dtype_name=row["kv"],
        weights_dtype=row["weights"],
        attention_flops=row["attention_flops"],
        constants=cal,
        expert_parallel=bool(c.get("ep")),
    )


def residuals(rows: list[dict], cal) -> list[float]:  # noqa: ANN001
    res = []
    for row in rows:
        t = predict(row, cal)
        res.append(math.log(t.total / row["total_s"]))
        got = {"gemm": t.gemm, "attention": t.attention, "elementwise": t.elementwise, "allreduce": t.allreduce,
               "moe": t.moe}  # fmt: skip
        for cls, aic in row["classes_s"].items():
            if aic > 1e-7 and got[cls] > 0:
                res.append(CLASS_WEIGHT * math.log(got[cls] / aic))
    return res


def fit(rows: list[dict], start):  # noqa: ANN001, ANN201
    import numpy as np
    from scipy.optimize import least_squares

    fields = [f.name for f in dataclasses.fields(start) if f.name not in NAMES]
    x0 = np.log([getattr(start, f) for f in fields])
    lo = np.full(len(fields), -25.0)
    hi = np.array([0.0 if f.endswith("_eff") else 12.0 for f in fields])  # efficiencies stay <= 1

    def f(x):  # noqa: ANN001, ANN202
        return residuals(rows, dataclasses.replace(start, **dict(zip(fields, np.exp(x), strict=True))))

    sol = least_squares(f, np.clip(x0, lo + 1e-9, hi - 1e-9), bounds=(lo, hi), loss="soft_l1", f_scale=1.0)
    return dataclasses.replace(start, **{k: float(v) for k, v in zip(fields, np.exp(sol.x), strict=True)})


def errors(rows: list[dict], cal) -> dict:  # noqa: ANN001
    out = {}
    for phase in ("prefill", "decode"):
        e = [abs(math.log(predict(r, cal).total / r["total_s"])) for r in rows if r["phase"] == phase]
        out[phase] = (statistics.median(e), max(e), len(e))
    return out


def _show(cal) -> str:  # noqa: ANN001
    lines = []
    for f in dataclasses.fields(cal):
        v = getattr(cal, f.name)
        if f.name in NAMES:
            continue
        lines.append(f"        {f.name}={v:.4g},")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", choices=["vllm", "trtllm"])
    ap.add_argument("--per-engine", action="store_true")
    args = ap.parse_args(argv)
    try:
        import scipy  # noqa: F401
    except ImportError:
        print("scipy is not installed; pip install -e '.[bench]'")
        return 0
    from kvplan.latency import calibration

    engines = ["vllm", "trtllm"] if args.per_engine else [args.engine]
    for engine in engines:
        rows = load_cases(engine)
        start = calibration(engine or "vllm")
        before = errors(rows, start)
        cal = fit(rows, start)
        after = errors(rows, cal)
        print(f"# engine {engine or 'all'}: {len(rows) // 2} cases")
        for phase in ("prefill", "decode"):
            b, a = before[phase], after[phase]
            print(f"#  {phase}: median |ln| {b[0]:.3f} -> {a[0]:.3f}, worst {b[1]:.3f} -> {a[1]:.3f}")
        print(_show(cal))
    return 0


if __name__ == "__main__":
    sys.exit(main())

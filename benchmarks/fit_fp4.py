"""Fit kvplan.latency's three NVFP4 constants to aiconfigurator's NVFP4 steps; print them and the errors.

    python benchmarks/fit_fp4.py

Data: ``fp4_cases`` of ``benchmarks/data/aiconfigurator_grid.json`` (``aiconfigurator_compare.py --collect-fp4``
writes them with aiconfigurator 0.12.0: ``gemm_quant_mode`` / ``moe_quant_mode`` nvfp4, fp8 KV cache, B200, both
engines, dense and MoE models, the prefill and one decode step of each case). ``fp4_holdout_cases`` (B200 and
GB200, TensorRT-LLM) are never fitted: the script prints them apart. No published throughput row is used.

What is fitted: ``fp4_eff_scale`` (dense FP4 GEMMs' share of the FP4 peak), ``fp4_mem_eff_scale`` (their weight
streaming, relative to the 16-bit GEMMs') and ``fp4_moe_eff_scale`` (grouped expert GEMMs' share of the FP4 peak)
of each engine's :class:`kvplan.engines.base.Calibration`; every other constant stays as ``fit_latency.py`` fitted
it. The residuals are ``fit_latency.py``'s (each step's total and, at ``CLASS_WEIGHT``, each operation class),
minimised the same way (``scipy.optimize.least_squares`` on log-parameters, soft_l1). Needs numpy and scipy (the
``bench`` extra). Paste the printed block into the engine module's ``CALIBRATION``.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

FIELDS = ("fp4_eff_scale", "fp4_mem_eff_scale", "fp4_moe_eff_scale", "fp4_k_s", "fp4_moe_layer_s")
# Log-space box per field, in the unit the solver sees (field / UNIT): a share of a datasheet peak or of the 16-bit
# GEMMs' streaming efficiency; fp4_k_s in ns per element of K (0.01 to 10: from a tile streaming at a whole GPU's
# bandwidth to one at a tenth of an SM's).
UNIT = {"fp4_k_s": 1e-9, "fp4_moe_layer_s": 1e-6}
BOUNDS = {"fp4_k_s": (0.01, 10.0), "fp4_moe_layer_s": (1.0, 100.0)}  # fp4_moe_layer_s in us: one to a hundred
DEFAULT_BOUNDS = (0.05, 1.5)
# The "neutral" line: no K-loop roof, the MoE layers' fixed cost as fitted on the 16-bit/fp8 grid (None); the fit
# starts from 1 ns per K element and 20 us per MoE layer.
NEUTRAL = {"fp4_k_s": 0.0, "fp4_moe_layer_s": None}
START = {"fp4_k_s": 1.0, "fp4_moe_layer_s": 20.0}


def fit(rows: list[dict], start):  # noqa: ANN001, ANN201
    import numpy as np
    from fit_latency import residuals
    from scipy.optimize import least_squares

    box = [BOUNDS.get(f, DEFAULT_BOUNDS) for f in FIELDS]
    lo, hi = np.log([b[0] for b in box]), np.log([b[1] for b in box])
    first = [START[f] if f in START else getattr(start, f) / UNIT.get(f, 1.0) for f in FIELDS]
    x0 = np.log([min(max(v, b[0] * 1.01), b[1] * 0.99) for v, b in zip(first, box, strict=True)])

    def values(x):  # noqa: ANN001, ANN202
        return {f: float(v) * UNIT.get(f, 1.0) for f, v in zip(FIELDS, np.exp(x), strict=True)}

    def f(x):  # noqa: ANN001, ANN202
        return residuals(rows, dataclasses.replace(start, **values(x)))

    sol = least_squares(f, x0, bounds=(lo, hi), loss="soft_l1", f_scale=1.0)
    return dataclasses.replace(start, **values(sol.x))


def errors(rows: list[dict], cal) -> str:  # noqa: ANN001
    from fit_latency import predict

    parts = []
    for phase in ("prefill", "decode"):
        e = [math.log(predict(r, cal).total / r["total_s"]) for r in rows if r["phase"] == phase]
        if e:
            a = [abs(x) for x in e]
            parts.append(f"{phase}: median |ln| {statistics.median(a):.3f}, worst {max(a):.3f}, "
                         f"median signed {statistics.median(e):+.3f} ({len(e)})")  # fmt: skip
    return "; ".join(parts)


def main() -> int:
    try:
        import scipy  # noqa: F401
    except ImportError:
        print("scipy is not installed; pip install -e '.[bench]'")
        return 0
    from fit_latency import load_cases

    from kvplan.latency import calibration

    for engine in ("trtllm", "vllm"):
        rows, hold = load_cases(engine, "fp4_cases"), load_cases(engine, "fp4_holdout_cases")
        neutral = {f: NEUTRAL.get(f, 1.0) for f in FIELDS}
        start = dataclasses.replace(calibration(engine), **neutral)  # from neutral: reproducible
        cal = fit(rows, start)
        print(f"# engine {engine} ({cal.version}), {len(rows) // 2} NVFP4 cases on B200")
        print(f"  neutral FP4 constants (1.0, no K loop): {errors(rows, start)}")
        print(f"  fitted:                                 {errors(rows, cal)}")
        if hold:
            print(f"  hold-out ({len(hold) // 2} cases, never fitted): {errors(hold, cal)}")
        print("\n".join(f"        {f}={getattr(cal, f):.4g}," for f in FIELDS))
    return 0


if __name__ == "__main__":
    sys.exit(main())

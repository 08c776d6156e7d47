"""Fit kvplan.latency's NVFP4 constants to aiconfigurator's NVFP4 steps and GEMM tables; print them and the errors.

    python benchmarks/fit_fp4.py [--other] [--forms]

Data: ``fp4_cases`` of ``benchmarks/data/aiconfigurator_grid.json`` (``aiconfigurator_compare.py --collect-fp4``
writes them with aiconfigurator 0.12.0: ``gemm_quant_mode`` / ``moe_quant_mode`` nvfp4, fp8 KV cache, B200, both
engines, dense and MoE models, the prefill and one decode step of each case). ``fp4_holdout_cases`` (B200 and
GB200, TensorRT-LLM) are never fitted: the script prints them apart. No published throughput row is used.

What is fitted: ``fp4_eff_scale`` (dense FP4 GEMMs' share of the FP4 peak), ``fp4_mem_eff_scale`` (their weight
streaming, relative to the 16-bit GEMMs'), ``fp4_moe_eff_scale`` (grouped expert GEMMs' share of the FP4 peak),
``fp4_k_s`` (one output tile's K loop), ``fp4_moe_layer_s`` and, with the GEMM tables, ``fp4_gemm_s`` (a fixed
cost per NVFP4 GEMM) of each engine's :class:`kvplan.engines.base.Calibration`; every other constant stays as
``fit_latency.py`` fitted it. The step residuals are ``fit_latency.py``'s (each step's total and, at
``CLASS_WEIGHT``, each operation class), minimised the same way (``scipy.optimize.least_squares`` on
log-parameters, soft_l1). Needs numpy and scipy (the ``bench`` extra). Paste the printed block into the engine
module's ``CALIBRATION``.

The GEMM tables: the engine's B200 and GB200 ``nvfp4`` tables of ``benchmarks/data/aiconfigurator_gemm.json``
(``gemm_compare.py --collect``; TensorRT-LLM 1.3.0rc20's ``Linear`` forward: ``fp4_quantize``, then
``trtllm::nvfp4_gemm``, which autotunes CUTLASS, cuBLASLt and CUDA-core tactics per M bucket; vLLM 0.24.0's
FlashInfer CuTe-DSL kernel), each point ``ln(gemm_seconds / table)``, weighted so that the table's points together
count as much as the step residuals (:func:`table_weight`). The steps alone cannot fit ``fp4_gemm_s`` (it runs to
its lower bound there) and misplace the sizes (TensorRT-LLM's table: 4-6 % fast on the smallest N x K, 14-21 % slow
on the largest; with the table in the fit, +3 % and 9-13 %: a fixed cost cannot take the rest, kvplan's roofs price
every large GEMM at one share of the peak).

``TABLE_ENGINES``: where the joint fit is adopted, because it keeps the fitted steps (median |ln| per phase within
0.002) and improves the hold-out and the table. vLLM's is not (its fitted prefill steps 0.045 -> 0.066 for a table
0.137 -> 0.091 at M >= 256); ``--other`` prints the fit not adopted beside each engine's, ``--forms`` the
shape-term forms not adopted beside the joint fit (:data:`FORMS`: the K term alone; both terms in one stage).
Printed for each fit: the steps, and the table's median / worst ``|ln|`` with the median signed ``ln`` by N x K
band (:data:`NK_BANDS`), at M >= 256 and below.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

FIELDS = ("fp4_eff_scale", "fp4_mem_eff_scale", "fp4_moe_eff_scale", "fp4_k_s", "fp4_moe_layer_s", "fp4_gemm_s",
          "fp4_half_k", "fp4_half_n")  # fmt: skip
STEP_FIELDS = FIELDS[:5]  # the steps alone: no fixed cost per GEMM, no shape term (fp4_gemm_s, fp4_half_* stay 0)
# With the table, in two stages: first the six without the shape terms (kvplan.latency._fp4_shape), then the shape
# terms with every field but the weight streaming's share, which stays as the first stage fitted it: the shape terms
# act on the compute roof alone, and refitted with them the share moves 0.703 -> 0.729 for no gain on the table
# (M >= 256 0.044 either way) while the decode steps move the wrong way (fitted 0.064 -> 0.073, hold-out 0.022 -> 0.030)
TABLE_FIELDS = FIELDS[:6]
SHAPE_FIELDS = tuple(f for f in FIELDS if f != "fp4_mem_eff_scale")
TABLE_ENGINES = ("trtllm",)  # engines whose constants are the joint fit (steps and GEMM table); else the steps alone
# Log-space box per field, in the unit the solver sees (field / UNIT): a share of a datasheet peak or of the 16-bit
# GEMMs' streaming efficiency; fp4_k_s in ns per element of K (0.01 to 10: from a tile streaming at a whole GPU's
# bandwidth to one at a tenth of an SM's); fp4_gemm_s in us (0.01 to 20: nothing to several launches).
UNIT = {"fp4_k_s": 1e-9, "fp4_moe_layer_s": 1e-6, "fp4_gemm_s": 1e-6}
# the shape terms' half-points in elements of K and of N: 1 (none) to 100,000 (past every model's widest GEMM)
BOUNDS = {"fp4_k_s": (0.01, 10.0), "fp4_moe_layer_s": (1.0, 100.0), "fp4_gemm_s": (0.01, 20.0),
          "fp4_half_k": (1.0, 1e5), "fp4_half_n": (1.0, 1e5)}  # fmt: skip
DEFAULT_BOUNDS = (0.05, 1.5)
# The "neutral" line: no K-loop roof, no fixed cost per GEMM, the MoE layers' fixed cost as fitted on the
# 16-bit/fp8 grid (None); the fit starts from 1 ns per K element, 20 us per MoE layer and 2 us per GEMM.
NEUTRAL = {"fp4_k_s": 0.0, "fp4_moe_layer_s": None, "fp4_gemm_s": 0.0, "fp4_half_k": 0.0, "fp4_half_n": 0.0}
START = {"fp4_k_s": 1.0, "fp4_moe_layer_s": 20.0, "fp4_gemm_s": 2.0, "fp4_half_k": 500.0, "fp4_half_n": 500.0}
# The GEMM tables' GPUs (the engine's calibration prices both; GB200 by its own peak and bandwidth) and the N x K
# bands the bias is printed by (weights of a GEMM, in millions: the 405B TP4 shapes are 268M and 839M)
TABLE_GPUS = ("b200", "gb200")
NK_BANDS = ((0, 16e6), (16e6, 64e6), (64e6, 256e6), (256e6, math.inf))


def table_rows(engine: str) -> list[dict]:
    """The engine's NVFP4 GEMM-table points (B200, GB200): gpu, m, n, k and the table's seconds."""
    from gemm_compare import _points, load

    from kvplan.hardware import resolve_gpu

    out = []
    for t in load():
        if t["engine"] != engine or t["dtype"] != "nvfp4" or t["gpu"] not in TABLE_GPUS:
            continue
        gpu = resolve_gpu(t["gpu"])
        for (m, n, k), us in zip(_points(), t["us"], strict=True):
            if us is not None:
                out.append({"gpu": gpu, "m": m, "n": n, "k": k, "s": us * 1e-6})
    return out


def table_ln(points: list[dict], cal) -> list[float]:  # noqa: ANN001
    """``ln(kvplan / table)`` per GEMM-table point, each GEMM alone as :mod:`kvplan.latency` prices it."""
    from kvplan.latency import gemm_seconds

    return [math.log(gemm_seconds(p["gpu"], cal, m=p["m"], n=p["n"], k=p["k"], weights_dtype="nvfp4", eager=False)
                     / p["s"]) for p in points]  # fmt: skip


def table_weight(n_steps: int, n_points: int) -> float:
    """Per-point weight of the GEMM table: its squared residuals together weigh as much as ``n_steps`` step residuals
    (each step total and class residual, as fit_latency.residuals returns them) would at the same size."""
    return math.sqrt(n_steps / n_points) if n_points else 0.0


def fit(rows: list[dict], start, points: list[dict] = (), fields: tuple[str, ...] = FIELDS):  # noqa: ANN001, ANN201
    """``fields`` of ``start`` fitted to the step ``rows`` and the GEMM-table ``points`` together (none: the steps)."""
    import numpy as np
    from fit_latency import residuals
    from scipy.optimize import least_squares

    box = [BOUNDS.get(f, DEFAULT_BOUNDS) for f in fields]
    lo, hi = np.log([b[0] for b in box]), np.log([b[1] for b in box])
    first = [START[f] if f in START else getattr(start, f) / UNIT.get(f, 1.0) for f in fields]
    x0 = np.log([min(max(v, b[0] * 1.01), b[1] * 0.99) for v, b in zip(first, box, strict=True)])
    weight = table_weight(len(residuals(rows, start)), len(points))

    def values(x):  # noqa: ANN001, ANN202
        return {f: float(v) * UNIT.get(f, 1.0) for f, v in zip(fields, np.exp(x), strict=True)}

    def f(x):  # noqa: ANN001, ANN202
        cal = dataclasses.replace(start, **values(x))
        return residuals(rows, cal) + [weight * e for e in table_ln(points, cal)]

    sol = least_squares(f, x0, bounds=(lo, hi), loss="soft_l1", f_scale=1.0)
    return dataclasses.replace(start, **values(sol.x))


def joint_fit(rows: list[dict], start, points: list[dict], shape: tuple[str, ...] = SHAPE_FIELDS):  # noqa: ANN001, ANN201
    """The fit with the GEMM table, from the neutral ``start``: :data:`TABLE_FIELDS`, then ``shape`` (default
    :data:`SHAPE_FIELDS`) from neutral again with the weight streaming's share as the first stage left it."""
    first = fit(rows, start, points, TABLE_FIELDS)
    again = dataclasses.replace(first, **{f: NEUTRAL.get(f, 1.0) for f in shape})
    return fit(rows, again, points, shape)


@contextlib.contextmanager
def n_term_as_quantization():
    """The N term priced where aiconfigurator's collector times work in proportion to M x K beside the GEMM: the
    activations' ``fp4_quantize`` (``collector/trtllm/collect_gemm.py`` runs ``Linear.forward`` on a 16-bit input),
    its time times ``1 + fp4_half_n / 1000`` in place of the compute roof's ``(1 + fp4_half_n / N)``: a form tried,
    not adopted. Inside, ``kvplan.latency`` prices so."""
    from kvplan import latency

    shape, terms = latency._fp4_shape, latency._fp4_gemm_terms

    def k_only(cal, n: int, k: int) -> float:  # noqa: ANN001
        return 1 + cal.fp4_half_k / max(k, 1)

    def slower(c, m: float, k: int) -> tuple[float, float]:  # noqa: ANN001
        k_loop, quantize = terms(c, m, k)
        # fp4_half_n read in per mille of the kernel's time: the same field, start and bounds as the N half-point
        return k_loop, (quantize - c.kernel_s) * (1 + c.cal.fp4_half_n / 1000) + c.kernel_s

    latency._fp4_shape, latency._fp4_gemm_terms = k_only, slower
    try:
        yield
    finally:
        latency._fp4_shape, latency._fp4_gemm_terms = shape, terms


# ``--forms``: the shape-term forms weighed against the adopted one (two stages, both half-points), each from neutral;
# (fit, context its errors are read in)
FORMS = {
    "the K term alone, two stages (fp4_half_n 0)": (lambda rows, start, points: joint_fit(
        rows, start, points, tuple(f for f in SHAPE_FIELDS if f != "fp4_half_n")), contextlib.nullcontext),
    "both terms, one stage (all eight fields at once, fp4_mem_eff_scale refitted)": (lambda rows, start, points: fit(
        rows, start, points, FIELDS), contextlib.nullcontext),
    "the N term as the quantization kernel's time x (1 + fp4_half_n / 1000), two stages": (joint_fit,
        n_term_as_quantization),
}  # fmt: skip


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


def table_errors(points: list[dict], cal) -> str:  # noqa: ANN001
    """The GEMM table against ``cal``: median / worst |ln| at M >= 256 and below, and the median signed ln by N x K."""
    ln = table_ln(points, cal)
    parts = []
    for label, big in (("M >= 256", True), ("M < 256", False)):
        sel = [(p, e) for p, e in zip(points, ln, strict=True) if (p["m"] >= 256) == big]
        a = [abs(e) for _, e in sel]
        bands = []
        for lo, hi in NK_BANDS:
            e = [x for p, x in sel if lo < p["n"] * p["k"] <= hi]
            bands.append(f"{statistics.median(e):+.3f}" if e else "-")
        parts.append(f"{label}: median |ln| {statistics.median(a):.3f}, worst {max(a):.3f}, signed by N x K "
                     f"({' / '.join(_band(b) for b in NK_BANDS)}) {' '.join(bands)} ({len(a)})")  # fmt: skip
    return "; ".join(parts)


def _band(band: tuple[float, float]) -> str:
    lo, hi = band
    return f"<= {hi / 1e6:.0f}M" if lo == 0 else f"> {lo / 1e6:.0f}M" if hi == math.inf else f"{hi / 1e6:.0f}M"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--other", action="store_true", help="also the fit not adopted (steps alone / with the table)")
    p.add_argument("--forms", action="store_true", help="also the shape-term forms not adopted (TABLE_ENGINES only)")
    args = p.parse_args(argv)
    try:
        import scipy  # noqa: F401
    except ImportError:
        print("scipy is not installed; pip install -e '.[bench]'")
        return 0
    from fit_latency import load_cases

    from kvplan.latency import calibration

    for engine in ("trtllm", "vllm"):
        rows, hold = load_cases(engine, "fp4_cases"), load_cases(engine, "fp4_holdout_cases")
        points = table_rows(engine)
        neutral = {f: NEUTRAL.get(f, 1.0) for f in FIELDS}
        start = dataclasses.replace(calibration(engine), **neutral)  # from neutral: reproducible
        joint = engine in TABLE_ENGINES
        table = f"and {len(points)} NVFP4 GEMM-table points (B200, GB200)"
        fits = [(table if joint else "steps alone", None)]
        if args.other:
            fits.append(("steps alone" if joint else table, None))
        if args.forms and joint:
            fits += [(f"{table}, {name}", form) for name, form in FORMS.items()]
        for n, (what, form) in enumerate(fits):
            form_fit, priced = form or (None, contextlib.nullcontext)
            with priced():
                if form_fit is not None:
                    cal = form_fit(rows, start, points)
                else:
                    cal = joint_fit(rows, start, points) if what == table else fit(rows, start, (), STEP_FIELDS)
                show(n, what, (rows, hold), points, start, cal, engine)
    return 0


def show(n: int, what: str, fitted: tuple, points: list[dict], start, cal, engine: str) -> None:  # noqa: ANN001
    """Print one fit: the engine's first in full (its constants as the module's lines), the others one line each.
    ``fitted``: (the step cases fitted, the hold-out cases)."""
    rows, hold = fitted
    if n == 0:
        print(f"# engine {engine} ({cal.version}), {len(rows) // 2} NVFP4 cases on B200, {what}")
        print(f"  neutral FP4 constants (1.0, no K loop): {errors(rows, start)}")
    else:
        print(f"  not adopted, {what}:")
    print(f"  fitted:                                 {errors(rows, cal)}")
    if hold:
        print(f"  hold-out ({len(hold) // 2} cases, never fitted): {errors(hold, cal)}")
    print(f"  GEMM table: {table_errors(points, cal)}")
    if n == 0:
        print("\n".join(f"        {f}={getattr(cal, f):.4g}," for f in FIELDS))
    else:
        print("    " + ", ".join(f"{f}={getattr(cal, f):.4g}" for f in FIELDS))


if __name__ == "__main__":
    sys.exit(main())

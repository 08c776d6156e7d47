"""Fit kvplan.latency's NVFP4 GEMM constants to aiconfigurator's nvfp4 GEMM timings; print them and the errors.

    python benchmarks/fit_fp4.py             # fit on the committed rows, print the constants per engine
    python benchmarks/fit_fp4.py --collect   # (needs aiconfigurator 0.12.0 and pandas) refresh the rows

Data: aiconfigurator 0.12.0 ``aiconfigurator_core/systems/data/<gpu>/gemm/<engine>/<version>/gemm_perf.parquet``,
the kernel timings NVIDIA collected per GEMM shape and dtype (``gemm_dtype`` fp8 / nvfp4), for TensorRT-LLM
1.3.0rc20 and vLLM 0.24.0 (the versions kvplan's calibrations describe). ``--collect`` keeps a grid of shapes
(``M_ROWS`` x ``SIZES`` x ``SIZES``) on B200 (fitted) and GB200 (hold-out: never fitted; kvplan prices GB200
with the B200 calibration) in ``benchmarks/data/aiconfigurator_fp4_gemm.json``.

What is fitted: only ``fp4_eff_scale`` and ``fp4_mem_eff_scale`` of each engine's
:class:`kvplan.engines.base.Calibration`, every other constant held at its fitted value (``fit_latency.py``).
The fp8 constants were fitted to whole steps (``fit_latency.py``), not to this table, and kvplan's lone GEMM is
faster than the table's at small M for fp8 too (the yardstick line); so the FP4 constants are fitted to carry
the table's *speed-up of nvfp4 over fp8*, shape by shape: the residual of a shape is
``ln(kvplan nvfp4 / table nvfp4) - ln(kvplan fp8 / table fp8)``, kvplan's times through
:func:`kvplan.latency.gemm_seconds` (the function ``kvplan.latency`` prices each GEMM with). An alternating
golden-section search minimises the median |residual| (robust to the few rows where the table is not monotone).
Paste the printed pair into the engine's ``CALIBRATION``. No published throughput row is used.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_fp4_gemm.json"
VERSIONS = {"trtllm": "1.3.0rc20", "vllm": "0.24.0"}  # the kernels kvplan's calibrations were fitted to
GPUS = {"b200": "b200_sxm", "gb200": "gb200"}  # kvplan catalog name -> aiconfigurator system
FITTED = ("b200",)  # gb200 is a hold-out
M_ROWS = (1, 4, 16, 64, 256, 1024, 4096)  # decode batches to prefill chunks
SIZES = (1024, 4096, 8192, 16384)  # N and K: projections and MLPs of 8B to 405B models, sliced by TP


def collect() -> dict:
    import os

    import aiconfigurator_core
    import pandas as pd

    root = Path(os.path.dirname(aiconfigurator_core.__file__)) / "systems" / "data"
    rows = []
    for gpu, system in GPUS.items():
        for engine, version in VERSIONS.items():
            d = pd.read_parquet(root / system / "gemm" / engine / version / "gemm_perf.parquet")
            d = d[d.gemm_dtype.isin(["fp8", "nvfp4"]) & d.m.isin(M_ROWS) & d.n.isin(SIZES) & d.k.isin(SIZES)]
            for r in d.itertuples():
                rows.append({"gpu": gpu, "engine": engine, "dtype": r.gemm_dtype, "m": int(r.m), "n": int(r.n),
                             "k": int(r.k), "latency_ms": float(r.latency)})  # fmt: skip
    return {
        "about": "aiconfigurator 0.12.0 GEMM kernel timings (milliseconds) for fp8 and nvfp4, collected by "
        "benchmarks/fit_fp4.py --collect from aiconfigurator_core/systems/data/<system>/gemm/<engine>/<version>/"
        "gemm_perf.parquet",
        "versions": VERSIONS,
        "rows": rows,
    }


def dump(data: dict) -> str:
    """One compact line per row (diff-friendly)."""
    rows = ",\n".join("  " + json.dumps(r) for r in data["rows"])
    head = {k: v for k, v in data.items() if k != "rows"}
    return json.dumps(head, indent=1)[:-2] + f',\n "rows": [\n{rows}\n ]\n}}\n'


def _errors(rows: list[dict], cal, gpus: dict, dtype: str) -> list[float]:  # noqa: ANN001
    from kvplan.latency import gemm_seconds

    weights = "nvfp4" if dtype == "nvfp4" else "fp8"
    return [math.log(gemm_seconds(gpus[r["gpu"]], cal, m=r["m"], n=r["n"], k=r["k"], weights_dtype=weights,
                                  eager=False) / (r["latency_ms"] * 1e-3))
            for r in rows]  # fmt: skip


def _relative(fp4: list[dict], fp8: list[dict], cal, gpus: dict) -> list[float]:  # noqa: ANN001
    """Per shape: kvplan's nvfp4 error less its fp8 error (the speed-up of nvfp4 over fp8 against the table's)."""
    key = {(r["gpu"], r["m"], r["n"], r["k"]): e for r, e in zip(fp8, _errors(fp8, cal, gpus, "fp8"), strict=True)}
    return [e - key[(r["gpu"], r["m"], r["n"], r["k"])] for r, e in zip(fp4, _errors(fp4, cal, gpus, "nvfp4"),
                                                                          strict=True)]  # fmt: skip


def _median_abs(fp4: list[dict], fp8: list[dict], cal, gpus: dict) -> float:  # noqa: ANN001
    return statistics.median(abs(e) for e in _relative(fp4, fp8, cal, gpus))


def _golden(f, lo: float, hi: float, iters: int = 40) -> float:  # noqa: ANN001
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    for _ in range(iters):
        if f(c) < f(d):
            b, d = d, c
            c = b - g * (b - a)
        else:
            a, c = c, d
            d = a + g * (b - a)
    return (a + b) / 2


def fit(fp4: list[dict], fp8: list[dict], cal, gpus: dict):  # noqa: ANN001, ANN201
    """The calibration with (fp4_eff_scale, fp4_mem_eff_scale) minimising the median |relative residual|, searched
    from the neutral 1.0 (so a rerun gives the same figures whatever the engine module holds)."""
    cal = dataclasses.replace(cal, fp4_eff_scale=1.0, fp4_mem_eff_scale=1.0)
    for _ in range(4):
        for field in ("fp4_eff_scale", "fp4_mem_eff_scale"):
            base = cal
            best = _golden(lambda x, b=base, f=field: _median_abs(fp4, fp8, dataclasses.replace(b, **{f: x}), gpus),
                           0.1, 1.5)  # fmt: skip
            cal = dataclasses.replace(cal, **{field: best})
    return cal


def _line(label: str, errs: list[float]) -> str:
    a = [abs(e) for e in errs]
    return (f"{label}: {len(errs)} GEMMs, median |ln| {statistics.median(a):.3f}, worst {max(a):.3f}, "
            f"median signed {statistics.median(errs):+.3f}, within 1.5x: {sum(x <= math.log(1.5) for x in a)}/{len(a)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collect", action="store_true")
    args = ap.parse_args(argv)
    if args.collect:
        try:
            data = collect()
        except ImportError:
            print("aiconfigurator (and pandas) are not installed; the committed rows are used as they are")
            return 0
        DATA.write_text(dump(data))
        print(f"{len(data['rows'])} rows written to {DATA}")
        return 0
    from kvplan.hardware import bundled_gpus
    from kvplan.latency import calibration

    gpus = {name: bundled_gpus()[name] for name in GPUS}
    data = json.loads(DATA.read_text())
    for engine in VERSIONS:
        cal = calibration(engine)
        mine = [r for r in data["rows"] if r["engine"] == engine]
        fp8 = [r for r in mine if r["dtype"] == "fp8"]
        fp4 = [r for r in mine if r["dtype"] == "nvfp4" and r["gpu"] in FITTED]
        hold = [r for r in mine if r["dtype"] == "nvfp4" and r["gpu"] not in FITTED]
        print(f"# engine {engine} ({cal.version})")
        b200_fp8 = [r for r in fp8 if r["gpu"] in FITTED]
        yardstick = _errors(b200_fp8, cal, gpus, "fp8")
        print(_line("  fp8 on b200, absolute, the main fit's fp8 constants (yardstick)", yardstick))
        neutral = dataclasses.replace(cal, fp4_eff_scale=1.0, fp4_mem_eff_scale=1.0)
        print(_line("  nvfp4 on b200, absolute, before (neutral scales 1.0)", _errors(fp4, neutral, gpus, "nvfp4")))
        print(_line("  nvfp4 on b200, relative to fp8, before", _relative(fp4, fp8, neutral, gpus)))
        new = fit(fp4, fp8, cal, gpus)
        print(_line("  nvfp4 on b200, relative to fp8, fitted", _relative(fp4, fp8, new, gpus)))
        print(_line("  nvfp4 on b200, absolute, fitted", _errors(fp4, new, gpus, "nvfp4")))
        print(_line("  nvfp4 on gb200 (hold-out), relative to fp8, B200 constants", _relative(hold, fp8, new, gpus)))
        print(f"        fp4_eff_scale={new.fp4_eff_scale:.4g},\n        fp4_mem_eff_scale={new.fp4_mem_eff_scale:.4g},")
    return 0


if __name__ == "__main__":
    sys.exit(main())

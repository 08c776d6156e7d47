"""The activations' dynamic fp8 quantization before a per-tensor fp8 GEMM: aiconfigurator's measured kernels, and the
fit of kvplan's price for it (``fp8_quant_s``, ``blackwell_fp8_quant_s``, ``fp8_quant_read_eff`` in
:class:`kvplan.engines.base.Calibration`; :func:`kvplan.latency._gemm_s`).

What the engines run: TensorRT-LLM's ``FP8QDQLinearMethod.apply`` (tensorrt_llm/_torch/modules/linear.py, read
through the code index) quantizes a 16-bit input with ``torch.ops.tensorrt_llm.quantize_e4m3_per_tensor`` (the scale
computed over the input, then the input quantized) unless the checkpoint gives a static ``input_scale``, then
calls ``cublas_scaled_mm``; vLLM's per-tensor W8A8 path quantizes with ``scaled_fp8_quant`` before its CUTLASS GEMM.
aiconfigurator 0.12.0 times those kernels apart, per GPU and engine, in ``aiconfigurator_core/systems/data/<gpu>/
quantize/<engine>/<version>/computescale_perf.parquet`` (the scale) and ``scale_matrix_perf.parquet`` (the
quantization), by rows ``m`` and hidden size ``k``, ``latency`` in ms; its ``fp8`` GEMM tables are the dynamic case
(``sdk/perf_database.py`` ``_gemm_key_names``: static fp8 is derived from them "plus overheads"). Those GEMM tables
sit above kvplan's fp8 GEMM by about the two kernels' sum at every M (``gemm_compare.py``: TensorRT-LLM B200 +10.7 to
+11.0 us a GEMM at M <= 128, H100 +7.1, vLLM +1.6 to +3.7), which is the cost this fit prices.

Two steps, as ``mamba_compare.py``:

1. ``--collect`` (needs aiconfigurator and pandas; does not import kvplan) writes a sample (``M_SAMPLE`` x
   ``K_SAMPLE``) of both tables for H100 SXM, H200, B200 and GB200, TensorRT-LLM 1.3.0rc20 and vLLM 0.24.0, to
   ``benchmarks/data/aiconfigurator_fp8_quant.json``. Without aiconfigurator it says so and exits 0::

       /work/aic-venv/bin/python benchmarks/fp8_quant_compare.py --collect

2. default (needs kvplan and numpy): per engine, the least-squares fit (relative residuals) of
   ``seconds = fixed(architecture) + m x k x 2 bytes / (bandwidth x read_eff)`` over the sample, Hopper (H100,
   H200) and Blackwell (B200, GB200) with a fixed cost each and one read efficiency, each GPU's catalog bandwidth;
   then each table's median and worst ``|ln(fit / measured)|`` and the fields to paste into
   ``kvplan/engines/<engine>.py``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aic_tables import frame_rows, load_row_tables, read_tables, write_row_tables  # noqa: E402 - where aiconfigurator's tables lie, shared

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_fp8_quant.json"
SYSTEMS = {"h100-sxm": "h100_sxm", "h200": "h200_sxm", "b200": "b200_sxm", "gb200": "gb200"}
ENGINES = {"trtllm": "1.3.0rc20", "vllm": "0.24.0"}
ARCH = {"h100-sxm": "hopper", "h200": "hopper", "b200": "blackwell", "gb200": "blackwell"}  # kvplan/data/gpus.yaml
# decode (1-256 rows) to prefill chunks (up to 32,768 rows); hidden sizes of the bundled models and their TP slices
M_SAMPLE = (1, 4, 16, 64, 128, 256, 1024, 4096, 8192, 16384, 32768)
K_SAMPLE = (512, 1024, 2048, 4096, 5120, 7168, 8192, 12288, 16384, 51200)
COLUMNS = ("m", "k", "computescale_ms", "scale_matrix_ms")
ACT_BYTES = 2  # the GEMM's 16-bit input, read by both kernels' passes (the read the fit prices)


def collect(out: Path) -> int:
    read = read_tables(SYSTEMS, ENGINES, "quantize", "computescale_perf.parquet")
    if read is None:
        return 0
    tables = []
    for t in read:
        scale, quant = t.frame, t.sibling("scale_matrix_perf.parquet")
        keys = ["m", "k"]
        both = scale[scale.quant_dtype == "fp8"][keys + ["latency"]].merge(
            quant[quant.quant_dtype == "fp8"][keys + ["latency"]], on=keys, suffixes=("_cs", "_sm"))  # fmt: skip
        both = both[both.m.isin(M_SAMPLE) & both.k.isin(K_SAMPLE)].sort_values(keys)
        both = both.rename(columns={"latency_cs": "computescale_ms", "latency_sm": "scale_matrix_ms"})
        tables.append({"gpu": t.gpu, "engine": t.engine, "version": t.version, "source": t.source,
                       "columns": list(COLUMNS), "rows": frame_rows(both, COLUMNS)})  # fmt: skip
    write_row_tables(out, tables)
    return 0


def load(path: Path = DATA) -> list[dict]:
    return load_row_tables(path)


def _points(tables: list[dict], engine: str) -> list[tuple[str, float, float]]:
    """(architecture, seconds measured, seconds of the 16-bit read at full bandwidth) of each of the engine's rows."""
    from kvplan.hardware import resolve_gpu

    out = []
    for t in tables:
        if t["engine"] != engine:
            continue
        bw = resolve_gpu(t["gpu"]).bandwidth_gbps * 1e9
        for r in t["rows"]:
            seconds = (r["computescale_ms"] + r["scale_matrix_ms"]) / 1e3
            out.append((ARCH[t["gpu"]], seconds, r["m"] * r["k"] * ACT_BYTES / bw))
    return out


def fit(tables: list[dict], engine: str) -> dict[str, float]:
    """``fp8_quant_s`` (Hopper), ``blackwell_fp8_quant_s`` and ``fp8_quant_read_eff`` for ``engine``: linear least
    squares on each row's relative residual (the rows span 3 us to 2 ms)."""
    import numpy as np

    pts = _points(tables, engine)
    a = np.array([[arch == "hopper", arch == "blackwell", read] for arch, _, read in pts], dtype=float)
    y = np.array([s for _, s, _ in pts])
    sol, *_ = np.linalg.lstsq(a / y[:, None], np.ones(len(y)), rcond=None)
    return {"fp8_quant_s": float(sol[0]), "blackwell_fp8_quant_s": float(sol[1]),
            "fp8_quant_read_eff": float(1 / sol[2])}  # fmt: skip


def quant_seconds(fields: dict[str, float], *, arch: str, read_s: float) -> float:
    """The fitted price of one row (the same form as kvplan.latency._gemm_s's quantization term)."""
    fixed = fields["blackwell_fp8_quant_s"] if arch == "blackwell" else fields["fp8_quant_s"]
    return fixed + read_s / fields["fp8_quant_read_eff"]


def table_errors(tables: list[dict], fields_by_engine: dict[str, dict]) -> list[tuple[str, int, float, float]]:
    """(table, rows, median |ln(fit / measured)|, worst) per collected table."""
    from kvplan.hardware import resolve_gpu

    out = []
    for t in tables:
        fields = fields_by_engine[t["engine"]]
        bw = resolve_gpu(t["gpu"]).bandwidth_gbps * 1e9
        e = [abs(math.log(quant_seconds(fields, arch=ARCH[t["gpu"]], read_s=r["m"] * r["k"] * ACT_BYTES / bw)
                          / ((r["computescale_ms"] + r["scale_matrix_ms"]) / 1e3))) for r in t["rows"]]  # fmt: skip
        out.append((f"{t['gpu']} {t['engine']} {t['version']}", len(e), statistics.median(e), max(e)))
    return out


def render(tables: list[dict]) -> str:
    fields = {engine: fit(tables, engine) for engine in ENGINES}
    lines = ["fp8 activation quantization (computescale + scale_matrix) against the fit, per table:"]
    for name, n, med, worst in table_errors(tables, fields):
        lines.append(f"  {name:<28} {n:>4} rows  median |ln| {med:.3f}  worst {worst:.3f}")
    for engine, f in fields.items():
        lines.append(f"{engine}: fp8_quant_s={f['fp8_quant_s']:.4g}, "
                     f"blackwell_fp8_quant_s={f['blackwell_fp8_quant_s']:.4g}, "
                     f"fp8_quant_read_eff={f['fp8_quant_read_eff']:.4g}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collect", action="store_true", help="sample aiconfigurator's tables (its own venv)")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args(argv)
    if args.collect:
        return collect(args.data)
    try:
        import numpy  # noqa: F401
    except ImportError:
        print("numpy is not installed; pip install -e '.[bench]'")
        return 0
    print(render(load(args.data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Which Triton fused-MoE tile configuration each published vLLM MoE row's release picks (a reading: nothing kept in
kvplan).

Why: kvplan prices vLLM's Triton grouped experts with one set of constants fitted on aiconfigurator's vLLM 0.24.0
tables (``benchmarks/moe_compare.py``). vLLM itself does not run one kernel configuration: for every MoE layer it
looks for a tuned tile file shipped in the wheel and falls back to a small default tile where there is none. Read in
the vLLM 0.10.2, 0.11.0 and 0.13.0 PyPI wheels, ``model_executor/layers/fused_moe/fused_moe.py``:

* ``try_get_optimal_moe_config``: ``E, _, N = w2_shape`` (experts on the rank, the expert intermediate size on the
  rank: ``expert_intermediate_size / tp`` without expert parallelism), then ``get_moe_configs(E, N, dtype, block_n,
  block_k)``;
* ``get_config_file_name``: ``E={E},N={N},device_name={torch device name, spaces as _}{,dtype=...}{,block_shape=[n,k]}
  .json`` under ``fused_moe/configs/`` (or ``VLLM_TUNED_CONFIG_FOLDER`` first);
* none found: ``logger.warning("Using default MoE config. Performance might be sub-optimal! ...")`` and
  ``get_default_config``: 16-bit experts get ``BLOCK_SIZE_M/N/K`` 64 / 64 / 32, ``GROUP_SIZE_M`` 8 (16 / 32 / 64 at
  most ``E`` tokens), with Triton's own warps and stages; block-fp8 experts 64 / block_n / block_k, group 32, 4 warps,
  3 stages. A tuned file picks per token count, e.g. ``E=128,N=192,device_name=NVIDIA_H200.json`` (0.11.0) runs 128 /
  256 / 64 with 8 warps at 1,024 tokens. vLLM 0.24.0 (the release of aiconfigurator's tables, on which kvplan's
  expert constants are fitted) has another default: from 513 tokens 128 / 128 / 64, 8 warps, 3 stages (its wheel's
  ``get_default_config``); 0.12.0 and 0.13.0 keep the 64 / 64 / 32 one.

The kernel each row's experts run (the ``dtype`` selector): 16-bit experts run ``fused_experts`` through the
unquantized method (no selector); block-fp8 checkpoints on SM89+ ``dtype=fp8_w8a8,block_shape=[128,128]`` where the
Triton path serves them (``quantization/fp8.py`` ``Fp8MoEMethod`` takes DeepGEMM instead on SM90 where the image has
the ``deep_gemm`` package, a dependency of none of these wheels, and ``VLLM_USE_DEEP_GEMM`` is 1, its default); fp8
on an A100 (no fp8 tensor cores) and MXFP4 on Hopper run Marlin, which has no such file
(``kvplan.engines.vllm`` ``mxfp4_hopper_marlin``). Torch device names: ``torch.cuda.get_device_name`` of each card.

Usage (reads each wheel as a zip; installs nothing)::

    pip download --no-deps vllm==0.11.0 -d /tmp/whl   # and 0.10.2, 0.13.0
    python benchmarks/vllm_moe_configs.py /tmp/whl/vllm-0.11.0-*.whl /tmp/whl/vllm-0.10.2-*.whl ...

It prints one line per vLLM MoE row of ``benchmarks/data/published_throughput.json`` whose release is among the wheels:
the file the release looks for, whether the wheel ships it, and the row's stored ratio (kvplan / published).

``--a100-table`` (needs aiconfigurator and pandas; give the vLLM 0.14.0 wheel): the one aiconfigurator MoE table timed
under the old default tiles, A100 SXM vLLM 0.14.0 (bf16, power law 1.01, pure TP): per expert shape and TP, whether
0.14.0 ships a tuned file for it (T) or runs the default (d), and the grouped GEMMs' TFLOPS at 2,048 and 8,192 tokens
(2 x tokens x top-k x hidden x 3 x N per rank over the timed latency)::

    /work/aic-venv/bin/python benchmarks/vllm_moe_configs.py --a100-table /tmp/whl/vllm-0.14.0-*.whl
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import zipfile
from pathlib import Path

DATA = Path(__file__).parent / "data" / "published_throughput.json"
CONFIGS = "vllm/model_executor/layers/fused_moe/configs/"

# torch.cuda.get_device_name per catalog GPU (vLLM replaces spaces with underscores).
DEVICE_NAMES = {
    "h200": "NVIDIA H200",
    "h100-sxm": "NVIDIA H100 80GB HBM3",
    "h100-pcie": "NVIDIA H100 PCIe",
    "a100-80gb": "NVIDIA A100-SXM4-80GB",
    "b200": "NVIDIA B200",
}
# Compute capability below 8.9: no fp8 tensor cores, fp8 experts through Marlin (Fp8MoEMethod use_marlin).
NO_FP8 = {"a100-80gb"}
# Block-fp8 checkpoints whose kvplan spec is the 16-bit model: the checkpoint's quantization_config
# weight_block_size (Qwen3-235B-A22B-Instruct-2507-FP8 model card: "fine-grained fp8 quantization with block size
# of 128").
CHECKPOINT_BLOCKS = {"qwen3-235b-a22b": (128, 128)}


def wheel_version(path: Path) -> str:
    m = re.match(r"vllm-([0-9][^-]*)-", path.name)
    if not m:
        raise SystemExit(f"not a vLLM wheel name: {path.name}")
    return m.group(1)


def selector(row: dict, spec) -> tuple[str | None, str]:  # noqa: ANN001
    """The ``dtype`` / ``block_shape`` part of the file name, or None where the experts run Marlin (and why)."""
    from kvplan.quant import storage

    weights = row["weights"]
    if weights in ("bf16", "fp16"):
        return "", "Triton fused_experts (16-bit)"
    if weights == "mxfp4":
        return None, "Marlin (MXFP4 on Hopper)"
    if weights == "fp8":
        if row["gpu"] in NO_FP8:
            return None, "Marlin (fp8 weight-only on SM80)"
        fmt = spec.weights if spec.weights is not None and spec.weights.dtype.startswith("fp8") else None
        block = fmt.block if fmt is not None and fmt.block else CHECKPOINT_BLOCKS.get(row["model"])
        storage(spec, "fp8")  # the dtype is one kvplan knows
        if block:
            return f",dtype=fp8_w8a8,block_shape=[{block[0]},{block[1]}]", "Triton fused_experts (block fp8)"
        return ",dtype=fp8_w8a8", "Triton fused_experts (fp8)"
    return None, f"not read ({weights})"


def file_name(spec, row: dict, sel: str) -> str:  # noqa: ANN001
    n = spec.moe.expert_intermediate_size // row["tp"]
    device = DEVICE_NAMES[row["gpu"]].replace(" ", "_")
    return f"E={spec.moe.num_experts},N={n},device_name={device}{sel}.json"


def rows_for(versions: set[str]) -> list[dict]:
    from kvplan.catalog import load_bundled

    out = []
    for r in json.loads(DATA.read_text())["engine_benchmarks"]:
        if not str(r.get("engine", "")).startswith("vllm") or r.get("engine_version") not in versions:
            continue
        if r.get("gpu") not in DEVICE_NAMES:
            continue
        spec = load_bundled(r["model"])
        if spec.moe is None:
            continue
        out.append({**r, "_spec": spec})
    return out


def a100_table(files: set[str]) -> int:
    """The A100 vLLM 0.14.0 MoE table by shape and TP, tuned (T) or default (d) tiles, TFLOPS at 2,048 / 8,192."""
    from aic_tables import SKIPPED, tables_root

    root = tables_root()
    if root is None:
        print(SKIPPED)
        return 0
    import pandas as pd

    d = pd.read_parquet(root / "a100_sxm" / "moe" / "vllm" / "0.14.0" / "moe_perf.parquet")
    d = d[(d.distribution == "power_law_1.01") & (d.moe_ep_size == 1) & (d.moe_dtype == "bfloat16")]
    device = DEVICE_NAMES["a100-80gb"].replace(" ", "_")
    for (h, inter, k, e), shape in d.groupby(["hidden_size", "inter_size", "topk", "num_experts"]):
        parts = []
        for tp, g in shape.groupby("moe_tp_size"):
            n = inter // tp
            tuned = f"E={e},N={n},device_name={device}.json" in files
            rates = []
            for m in (2048, 8192):
                at = g[g.num_tokens == m]
                if len(at):
                    rates.append(f"{m}:{2 * m * k * h * 3 * n / (at.latency.iloc[0] * 1e-3) / 1e12:.0f}")
            parts.append(f"TP{tp} N{n} {'T' if tuned else 'd'} {' '.join(rates)}")
        print(f"hidden {h} expert {inter} top-{k} E{e} | " + " | ".join(parts))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("wheels", nargs="+", type=Path, help="vLLM wheels (vllm-X.Y.Z-*.whl)")
    p.add_argument("--a100-table", action="store_true", help="aiconfigurator's A100 vLLM 0.14.0 MoE table, T / d")
    args = p.parse_args(argv)
    shipped: dict[str, set[str]] = {}
    for w in args.wheels:
        if not w.is_file():
            print(f"no such wheel: {w}", file=sys.stderr)
            return 2
        with zipfile.ZipFile(w) as z:
            shipped[wheel_version(w)] = {n[len(CONFIGS) :] for n in z.namelist() if n.startswith(CONFIGS)}
    if args.a100_table:
        if "0.14.0" not in shipped:
            print("--a100-table reads the vLLM 0.14.0 wheel (the release of the A100 table)", file=sys.stderr)
            return 2
        return a100_table(shipped["0.14.0"])
    for r in rows_for(set(shipped)):
        spec = r["_spec"]
        sel, kernel = selector(r, spec)
        lengths = f"{r['isl']}/{r['osl']} c{r['concurrency']}"
        where = f"{r['label']} {r['gpu']} TP{r['tp']} {lengths} (vLLM {r['engine_version']})"
        ratio = f"x{r['ratio']:.2f}" if "ratio" in r else "not scored"
        if sel is None:
            print(f"{where}: {kernel}, no tuned-config lookup; {ratio}")
            continue
        name = file_name(spec, r, sel)
        found = "tuned file shipped" if name in shipped[r["engine_version"]] else "NOT shipped: default config"
        print(f"{where}: {kernel}, {name}: {found}; {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""TensorRT-LLM's Blackwell kernels in the release the v1.0 tables ran: GB200 against B200, and 1.0 against 1.3.

The v1.0 performance-overview page (``benchmarks/data/published_throughput.json``, source ``trtllm-1.0``) puts GB200
below its own B200 figure on most TP1 rows of Qwen3-30B-A3B and Llama 4 Scout (128/128: 24,107 against 39,827 tok/s),
while GB200 leads B200 on the dense models. Two readings would put that in the GPU's kernels, where kvplan could
price it; both are tested here on NVIDIA's own kernel timings of the release the rows ran:

* the GB200 kernels of that release ran slower than the B200 ones (a kernel tuned for one system only);
* the v1.0 kernels on Blackwell ran slower than the 1.3 ones kvplan's TensorRT-LLM constants are fitted to (as
  ``trtllm@0.20``'s Hopper grouped experts did, ``fit_moe_release.py``), which would also bear on the B200 rows.

The timings: aiconfigurator 0.4.0 (PyPI, 2025-11) ships TensorRT-LLM **1.0.0rc6** tables for B200 and GB200
(``aiconfigurator/systems/data/{b200_sxm,gb200_sxm}/trtllm/1.0.0rc6/``: ``moe_perf.txt`` kernel ``moe_torch_flow``,
the CUTLASS fused-MoE op, NVFP4 / fp8 / float16 experts at Qwen3-235B-A22B's, DeepSeek-V3's, Mixtral's and two
other expert shapes under power-law routing; ``gemm_perf.txt``; ``generation_attention_perf.txt``;
``context_attention_perf.txt``), beside the Hopper 1.0.0rc3 ones ``moe_release_gap.py`` reads. Neither release has
Qwen3-30B-A3B's (2,048 x 768) or Scout's (5,120 x 8,192, 16 experts) expert shape in its 1.0.0rc6 table; the
nearest, Qwen3-235B-A22B's 4,096 x 1,536 with 128 experts and top-8, is printed apart.

1. ``--collect WHEEL`` (needs aiconfigurator 0.12.0 and pandas; reads the 0.4.0 wheel as a zip, installs nothing):
   the medians of the latency ratios at the same point (shape, dtype, split, routing and token count for the
   experts; M x N x K and dtype for the GEMMs; batch, heads, context and KV dtype for attention), GB200 / B200 within
   1.0.0rc6 and 1.0.0rc6 / 1.3.0rc20 (aiconfigurator 0.12.0's ``<gpu>/{moe,gemm,attention}/trtllm/1.3.0rc20``, the
   experts' ``moe_torch_flow_cutlass`` kernel, 16-bit as bfloat16 there) per GPU, by token band, to
   ``benchmarks/data/aiconfigurator_blackwell_v10.json``. Without aiconfigurator it says so and exits 0::

       pip download --no-deps aiconfigurator==0.4.0 -d /tmp/aic040
       /work/aic-venv/bin/python benchmarks/blackwell_v10_kernels.py --collect /tmp/aic040/aiconfigurator-0.4.0-*.whl

2. default (reads the stored file only): the ratios, and the range of each reading over its groups.
   ``--markdown``: the same as a table for docs/cost.md. Nothing here enters kvplan.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aic_tables import SKIPPED, tables_root  # noqa: E402 - where aiconfigurator's tables lie

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_blackwell_v10.json"
OLD, NEW = "1.0.0rc6", "1.3.0rc20"
# kvplan GPU name -> (aiconfigurator 0.4.0 system directory, aiconfigurator 0.12.0 system directory)
SYSTEMS = {"b200": ("b200_sxm", "b200_sxm"), "gb200": ("gb200_sxm", "gb200")}
# operation -> (0.4.0 file, 0.12.0 folder and file, the size a band is taken over, the column a group is keyed by)
OPS = {
    "moe": ("moe_perf.txt", "moe/trtllm/{v}/moe_perf.parquet", "num_tokens", "moe_dtype"),
    "gemm": ("gemm_perf.txt", "gemm/trtllm/{v}/gemm_perf.parquet", "m", "gemm_dtype"),
    "generation_attention": ("generation_attention_perf.txt", "attention/trtllm/{v}/generation_attention_perf.parquet",
                             "batch_size", "kv_cache_dtype"),  # fmt: skip
    "context_attention": ("context_attention_perf.txt", "attention/trtllm/{v}/context_attention_perf.parquet",
                          "batch_size", "kv_cache_dtype"),  # fmt: skip
}
OLD_MOE_KERNEL, NEW_MOE_KERNEL = "moe_torch_flow", "moe_torch_flow_cutlass"
# the columns two points must share to be the same point (latency and the naming columns aside)
NOT_KEYS = ("framework", "version", "device", "op_name", "kernel_source", "latency", "window_size")
BANDS = ((1, 64), (65, 512), (513, 2048), (2049, 1 << 20))
NEAREST = (4096, 1536, 128, 8)  # Qwen3-235B-A22B's experts: hidden, width, experts, top-k (the nearest shape)
# the groups the published rows ran (NVFP4 checkpoints, FP8 KV cache): (operation, group) in the summary lines
ROW_GROUPS = (("moe", "nvfp4"), ("moe", "nvfp4 nearest"), ("gemm", "nvfp4"), ("generation_attention", "fp8"),
              ("context_attention", "fp8"))  # fmt: skip
SIXTEEN_BIT = {"float16": "bfloat16"}  # 1.0.0rc6 times its 16-bit points in float16, 1.3.0rc20 in bfloat16


def _normalized(frame, op: str):  # noqa: ANN001, ANN202 - a pandas DataFrame
    """One release's table with the experts' CUTLASS kernel only, 16-bit named bfloat16 and full attention only."""
    if op == "moe":
        frame = frame[frame.kernel_source.isin((OLD_MOE_KERNEL, NEW_MOE_KERNEL))]
        frame = frame[(frame.moe_tp_size == 1) & (frame.moe_ep_size == 1)]
    if "window_size" in frame.columns:
        frame = frame[frame.window_size == 0]
    for col in ("moe_dtype", "gemm_dtype", "kv_cache_dtype", "attn_dtype"):
        if col in frame.columns:
            frame = frame.assign(**{col: frame[col].replace(SIXTEEN_BIT)})
    return frame


def _ratios(num, den, op: str) -> list[list]:  # noqa: ANN001 - pandas DataFrames
    """``[group, lo, hi, median num / den, points]`` by the op's group column and band, the nearest expert shape as
    its own group (``<dtype> nearest``)."""
    size, group = OPS[op][2], OPS[op][3]
    keys = [c for c in num.columns if c in den.columns and c not in NOT_KEYS]
    both = num.merge(den, on=keys, suffixes=("_a", "_b"))
    both = both.assign(ratio=both.latency_a / both.latency_b)
    parts = [(str(g), f) for g, f in both.groupby(group)]
    if op == "moe":
        h, w, e, k = NEAREST
        near = both[(both.hidden_size == h) & (both.inter_size == w) & (both.num_experts == e) & (both.topk == k)]
        parts += [(f"{g} nearest", f) for g, f in near.groupby(group)]
    out = []
    for name, frame in sorted(parts):
        for lo, hi in BANDS:
            inside = frame[(frame[size] >= lo) & (frame[size] <= hi)]
            if len(inside):
                out.append([name, lo, hi, round(float(inside.ratio.median()), 4), len(inside)])
    return out


def collect(wheel: Path, out: Path) -> int:
    root = tables_root()
    if root is None:
        print(SKIPPED)
        return 0
    import pandas as pd

    old: dict[tuple[str, str], object] = {}
    new: dict[tuple[str, str], object] = {}
    with zipfile.ZipFile(wheel) as z:
        for gpu, (was, now) in SYSTEMS.items():
            for op, (txt, parquet, _, _) in OPS.items():
                old[gpu, op] = _normalized(pd.read_csv(z.open(f"aiconfigurator/systems/data/{was}/trtllm/{OLD}/{txt}")),
                                           op)  # fmt: skip
                new[gpu, op] = _normalized(pd.read_parquet(root / now / parquet.format(v=NEW)), op)
    data = {
        "meta": {
            "old": f"aiconfigurator 0.4.0 wheel ({wheel.name}, sha256 {hashlib.sha256(wheel.read_bytes()).hexdigest()})"
            f" aiconfigurator/systems/data/<b200_sxm|gb200_sxm>/trtllm/{OLD}/<op>_perf.txt",
            "new": "aiconfigurator 0.12.0 aiconfigurator_core/systems/data/<b200_sxm|gb200>/"
            f"<moe|gemm|attention>/trtllm/{NEW}/<op>_perf.parquet",
            "rows": "[group (dtype; '<dtype> nearest': Qwen3-235B-A22B's expert shape), band lo, band hi (tokens for "
            "the experts, M for GEMMs, batch for attention), median latency ratio, points]",
            "matched": "every column but latency and the naming ones equal; experts TP 1 EP 1 (both power-law "
            f"routings), {OLD_MOE_KERNEL} ({OLD}) / {NEW_MOE_KERNEL} ({NEW}); attention without a window",
        },
        "gb200_over_b200": {op: _ratios(old["gb200", op], old["b200", op], op) for op in OPS},
        "old_over_new": {gpu: {op: _ratios(old[gpu, op], new[gpu, op], op) for op in OPS} for gpu in SYSTEMS},
    }
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


def load(path: Path = DATA) -> dict:
    return json.loads(path.read_text())


def spread(rows: list[list], group: str) -> tuple[float, float]:
    """The lowest and highest median ratio over the bands of ``group`` in ``rows``."""
    picked = [r[3] for r in rows if r[0] == group]
    return min(picked), max(picked)


def _band(lo: int, hi: int) -> str:
    return f"{lo}-{hi}" if hi < 1 << 20 else f">={lo}"


def readings(data: dict) -> list[tuple[str, dict]]:
    """``(title, {operation: rows})`` of each reading: GB200 / B200 within the old release, then old / new per GPU."""
    out = [(f"GB200 / B200 ({OLD})", data["gb200_over_b200"])]
    return out + [(f"{OLD} / {NEW} ({gpu})", ops) for gpu, ops in data["old_over_new"].items()]


def summary_lines(data: dict) -> list[str]:
    """One line per reading: the range of its band medians for each group the published rows ran
    (:data:`ROW_GROUPS`)."""
    lines = []
    for title, ops in readings(data):
        parts = []
        for op, group in ROW_GROUPS:
            lo, hi = spread(ops[op], group)
            parts.append(f"{op} {group} {lo:.2f}-{hi:.2f}")
        lines.append(f"{title}, the rows' dtypes: " + ", ".join(parts))
    return lines


def render(data: dict, *, markdown: bool) -> str:
    """Every band of every reading, one per line; ``markdown``: the groups the published rows ran (:data:`ROW_GROUPS`),
    one table row each with its bands as columns. Then :func:`summary_lines`."""
    out = []
    if markdown:
        bands = [_band(lo, hi) for lo, hi in BANDS]
        out += ["| reading | operation | group | " + " | ".join(bands) + " |", "|---" * (3 + len(bands)) + "|"]
        for title, ops in readings(data):
            for op, group in ROW_GROUPS:
                got = {(r[1], r[2]): f"{r[3]:.3f} ({r[4]})" for r in ops[op] if r[0] == group}
                cells = (title, op, group, *(got.get(band, "-") for band in BANDS))
                out.append("| " + " | ".join(cells) + " |")
        return "\n".join([*out, "", "```", *summary_lines(data), "```"])
    for title, ops in readings(data):
        for op, rows in ops.items():
            for group, lo, hi, median, n in rows:
                out.append("  ".join((title, op, group, _band(lo, hi), f"{median:.3f}", str(n))))
    return "\n".join([*out, *summary_lines(data)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collect", type=Path, metavar="WHEEL", help="the aiconfigurator 0.4.0 wheel to read")
    ap.add_argument("--markdown", action="store_true", help="a table for docs/cost.md")
    args = ap.parse_args(argv)
    if args.collect:
        return collect(args.collect, DATA)
    print(render(load(), markdown=args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

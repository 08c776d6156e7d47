"""TensorRT-LLM's Hopper grouped experts in the release the v1.0 tables ran against the release kvplan's constants
describe: aiconfigurator 0.4.0's TensorRT-LLM 1.0.0rc3 MoE tables beside aiconfigurator 0.12.0's 1.3.0rc20 ones, and
the Hopper FP8 attention-DP rows read with the older kernels. What kvplan keeps of it: ``trtllm@0.20``'s own Hopper
grouped-expert curve, fitted by ``fit_moe_release.py`` on the matched points this script collects.

Why: kvplan's TensorRT-LLM MoE constants are fitted to aiconfigurator 0.12.0's 1.3.0rc20 tables, which hold no v1.0
Hopper table; the v1.0 performance-overview rows (``published_compare.py``, scored with ``trtllm@0.20``'s rules) ran
the kernels of v1.0. aiconfigurator 0.4.0 (PyPI, 2025-11) ships TensorRT-LLM 1.0.0rc3 tables for H100 SXM and H200
(``aiconfigurator/systems/data/{h100_sxm,h200_sxm}/trtllm/1.0.0rc3/moe_perf.txt``, kernel ``moe_torch_flow``, the same
CUTLASS fused-MoE op, power-law routing at alpha 1.01 and 1.2), with Qwen3-235B-A22B's expert shape among them (not
Llama 4's).

1. ``--collect WHEEL`` (needs aiconfigurator 0.12.0 and pandas; reads the 0.4.0 wheel as a zip, installs nothing):
   the fp8, fp8_block and float16 points both releases time at the same shape, TP 1 and EP > 1, routing and token
   count; per GPU the median 1.0.0rc3 / 1.3.0rc20 latency ratio at each token count (fp8) and by token band (each
   dtype), and 1.0.0rc3's EP 8 rows of Qwen3-235B-A22B's shape; writes ``benchmarks/data/aiconfigurator_moe_v10.json``;
   and both releases' fp8 and 16-bit points at the catalog's expert shapes (``moe_compare.py``'s splits and token
   counts, both routings) to ``aiconfigurator_moe_v10_points.json`` (``fit_moe_release.py`` fits on them).
   Without aiconfigurator it says so and exits 0::

       pip download --no-deps aiconfigurator==0.4.0 -d /tmp/aic040
       /work/aic-venv/bin/python benchmarks/moe_release_gap.py --collect /tmp/aic040/aiconfigurator-0.4.0-*.whl

2. default (needs kvplan only): the ratios by dtype and token band; ``--published``: the Hopper FP8 attention-DP rows
   as ``published_compare.py`` scores them (``trtllm@0.20``'s fitted Hopper curve), with every MoE layer's grouped
   experts priced by the 1.3 curve x the GPU's fp8 ratio at the layer's gathered tokens (log-log between token
   counts; the reading before the curve was fitted), and Qwen3-235B-A22B's with its experts from the 1.0.0rc3 table
   (power law 1.2 and 1.01, as ``dp_ep_gap.py`` reads the 1.3.0rc20 one).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import sys
import zipfile
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import moe_compare  # noqa: E402 - the catalog's expert shapes, splits and token counts
from aic_tables import SKIPPED, grouped_experts_from, score_readings, table_layer_s, tables_root  # noqa: E402 - shared

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_moe_v10.json"
# The matched points themselves, for the catalog's expert shapes (benchmarks/fit_moe_release.py fits on them)
POINTS = DATA.with_name("aiconfigurator_moe_v10_points.json")
SYSTEMS = {"h100-sxm": "h100_sxm", "h200": "h200_sxm"}
OLD, NEW = "1.0.0rc3", "1.3.0rc20"
OLD_KERNEL, NEW_KERNEL = "moe_torch_flow", "moe_torch_flow_cutlass"
DTYPES = ("fp8", "fp8_block", "float16")
NEW_DTYPES = {"float16": "bfloat16"}
KEYS = ("num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size", "moe_ep_size", "distribution")
BANDS = ((1, 64), (65, 512), (513, 2048), (2049, 8192), (8193, 1 << 20))
QWEN3 = ("qwen3-235b-a22b", (4096, 1536, 128, 8), 8)  # model, (hidden, expert width, experts, top-k), EP
DISTRIBUTIONS = ("power_law_1.2", "power_law_1.01")
TARGET = 0.20  # published_compare.TARGET
# the points written to POINTS: the dtypes kvplan prices with the grouped-expert curve (16-bit, per-tensor fp8; the
# block-scaled path has its own Hopper terms), moe_compare.py's splits and token counts, both routings
POINT_DTYPES = ("fp8", "float16")


def _matched(old, new, *, tp_only: bool = True):  # noqa: ANN001, ANN202 - pandas DataFrames
    """Both releases' points at the same shape, split, routing and token count, with the ratio; TP 1 and EP > 1 only
    unless ``tp_only`` is False."""
    old, new = old[old.kernel_source == OLD_KERNEL], new[new.kernel_source == NEW_KERNEL]
    if tp_only:
        old = old[(old.moe_tp_size == 1) & (old.moe_ep_size > 1)]
        new = new[(new.moe_tp_size == 1) & (new.moe_ep_size > 1)]
    out = {}
    # 1.0.0rc3 times its 16-bit experts in float16, 1.3.0rc20 in bfloat16: the same kernels at the same widths
    for dtype in DTYPES:
        mine, theirs = old[old.moe_dtype == dtype], new[new.moe_dtype == NEW_DTYPES.get(dtype, dtype)]
        both = mine.merge(theirs, on=list(KEYS), suffixes=("_old", "_new"))
        out[dtype] = both.assign(ratio=both.latency_old / both.latency_new)
    return out


def _band(frame, lo: int, hi: int) -> list:  # noqa: ANN001 - a pandas DataFrame
    """``[lo, hi, median ratio, points]`` of the matched points from ``lo`` to ``hi`` gathered tokens."""
    inside = frame[(frame.num_tokens >= lo) & (frame.num_tokens <= hi)]
    return [lo, hi, round(float(inside.ratio.median()), 4), len(inside)]


def collect(wheel: Path, out: Path) -> int:
    root = tables_root()
    if root is None:
        print(SKIPPED)
        return 0
    import pandas as pd

    ratios, bands, qwen3, points = {}, {}, {}, []
    with zipfile.ZipFile(wheel) as z:
        for gpu, system in SYSTEMS.items():
            old = pd.read_csv(z.open(f"aiconfigurator/systems/data/{system}/trtllm/{OLD}/moe_perf.txt"))
            new = pd.read_parquet(root / system / "moe" / "trtllm" / NEW / "moe_perf.parquet")
            matched = _matched(old, new)
            fp8 = matched["fp8"].groupby("num_tokens").ratio
            medians, sizes = fp8.median(), fp8.size()
            ratios[gpu] = [[int(t), round(float(medians[t]), 4), int(sizes[t])] for t in medians.index]
            bands[gpu] = {d: [_band(f, lo, hi) for lo, hi in BANDS] for d, f in matched.items()}
            (h, w, e, k), ep = QWEN3[1], QWEN3[2]
            rows = old[(old.moe_dtype == "fp8") & (old.kernel_source == OLD_KERNEL) & (old.hidden_size == h)
                       & (old.inter_size == w) & (old.num_experts == e) & (old.topk == k) & (old.moe_tp_size == 1)
                       & (old.moe_ep_size == ep)]  # fmt: skip
            qwen3[gpu] = {d: sorted([int(r.num_tokens), float(r.latency)] for r in rows[rows.distribution == d]
                                    .itertuples()) for d in DISTRIBUTIONS}  # fmt: skip
            points += _catalog_points(gpu, old, new)
    meta = {"old": f"aiconfigurator 0.4.0 wheel ({wheel.name}, sha256 {hashlib.sha256(wheel.read_bytes()).hexdigest()})"
            f" aiconfigurator/systems/data/<gpu>/trtllm/{OLD}/moe_perf.txt, {OLD_KERNEL}",
            "new": f"aiconfigurator 0.12.0 aiconfigurator_core/systems/data/<gpu>/moe/trtllm/{NEW}/moe_perf.parquet, "
            f"{NEW_KERNEL}", "matched": "same shape, top-k, experts, TP 1, EP > 1, routing, tokens",
            "ratio": f"{OLD} / {NEW} latency",
            "qwen3": f"{OLD} fp8 EP {QWEN3[2]} rows [tokens, ms] of one MoE layer"}  # fmt: skip
    out.write_text(json.dumps({"meta": meta, "fp8_ratio": ratios, "bands": bands, "qwen3": qwen3}, indent=1) + "\n")
    print(f"wrote {out}")
    models = {m: moe_compare.SHAPES[m] for m in sorted({p[2] for p in points})}
    meta = {"old": meta["old"], "new": meta["new"], "unit": "us (the tables' column is ms), 4 significant digits",
            "points": "[gpu, dtype (1.3.0rc20's name), model, moe_tp_size, moe_ep_size, distribution, num_tokens, "
            f"{OLD} us, {NEW} us]", "models": models}  # fmt: skip
    body = ",\n".join(json.dumps(p, separators=(",", ":")) for p in sorted(points))
    POINTS.write_text('{"meta": ' + json.dumps(meta) + ',\n"points": [\n' + body + "\n]}\n")
    print(f"wrote {len(points)} points to {POINTS}")
    return 0


def _catalog_points(gpu: str, old, new) -> list[list]:  # noqa: ANN001 - pandas DataFrames
    """Both releases' latencies (us) at the points of :data:`POINT_DTYPES` whose experts are a catalog model's
    (moe_compare.SHAPES) at moe_compare's splits and token counts, both routings."""
    shapes = {v: k for k, v in moe_compare.SHAPES.items()}
    out = []
    for dtype, frame in _matched(old, new, tp_only=False).items():
        if dtype not in POINT_DTYPES:
            continue
        for r in frame.itertuples():
            model = shapes.get((int(r.hidden_size), int(r.inter_size), int(r.num_experts), int(r.topk)))
            split = (int(r.moe_tp_size), int(r.moe_ep_size))
            if model is None or split not in moe_compare.SPLITS or int(r.num_tokens) not in moe_compare.TOKENS:
                continue
            out.append([gpu, NEW_DTYPES.get(dtype, dtype), model, *split, str(r.distribution), int(r.num_tokens),
                        float(f"{r.latency_old * 1e3:.4g}"), float(f"{r.latency_new * 1e3:.4g}")])  # fmt: skip
    return out


def load(path: Path = DATA) -> dict:
    return json.loads(path.read_text())


def ratio_at(points: list, tokens: float) -> float:
    """The median ratio at ``tokens`` gathered tokens: log-log between the two nearest counts, the end values beyond."""
    if tokens <= points[0][0]:
        return points[0][1]
    for lo, hi in zip(points, points[1:], strict=False):
        if tokens <= hi[0]:
            f = math.log(tokens / lo[0]) / math.log(hi[0] / lo[0])
            return math.exp(math.log(lo[1]) + f * math.log(hi[1] / lo[1]))
    return points[-1][1]


def render_bands(data: dict) -> str:
    lines = [f"{OLD} / {NEW} MoE latency, median over matched points (TP 1, EP > 1), by gathered tokens"]
    names = (f"{lo}-{hi}" if hi < 1 << 20 else f"> {lo - 1}" for lo, hi in BANDS)
    lines.append("GPU       dtype      " + "  ".join(f"{n:>12}" for n in names))
    for gpu, by_dtype in data["bands"].items():
        for dtype, cells in by_dtype.items():
            lines.append(f"{gpu:9} {dtype:10} " + "  ".join(f"x{m:.2f} ({n:4})".rjust(12) for _, _, m, n in cells))
    return "\n".join(lines)


@contextmanager
def release_reading(data: dict, reading: str):  # noqa: ANN201
    """For the ``with`` block, TensorRT-LLM's per-tensor fp8 grouped experts on H100 / H200 under expert parallelism
    priced as the older release ran them: kvplan's figure x the GPU's fp8 ratio at the layer's gathered tokens
    (``ratio``), or Qwen3-235B-A22B's from its 1.0.0rc3 table (a distribution of :data:`DISTRIBUTIONS`; other models
    as priced); memos emptied on the way in and out."""

    from kvplan import latency

    priced = latency._moe_s  # kvplan's own, before the with block swaps it

    def older(c, moe_tokens: float, parts):  # noqa: ANN001, ANN202
        moe = c.spec.moe
        if (moe is None or c.cal.engine != "trtllm" or not c.ep or c.gpu.name not in SYSTEMS or moe_tokens <= 0
                or c.w_bytes != 1 or c.moe_block_tiles):  # fmt: skip
            return None
        if reading == "ratio":  # the 1.3 curve's experts (not trtllm@0.20's own Hopper curve) x the ratio
            newest = replace(c, cal=replace(c.cal, hopper_moe_peak_eff=None))
            return priced(newest, moe_tokens, moe_tokens).grouped * ratio_at(data["fp8_ratio"][c.gpu.name], moe_tokens)
        shape = (c.spec.hidden_size, moe.expert_intermediate_size, moe.num_experts, moe.experts_per_token)
        if shape != QWEN3[1] or c.moe_ranks != QWEN3[2]:
            return None
        return table_layer_s(data["qwen3"][c.gpu.name][reading], moe_tokens)

    with grouped_experts_from(older):
        yield


READINGS = ("ratio", *DISTRIBUTIONS)


def published_rows(data: dict) -> list[dict]:
    """The Hopper FP8 attention-DP rows of the v1.0 tables as ``published_compare.py`` scores them and under each of
    :data:`READINGS`."""
    import published_compare as pc

    runs = [r for r in json.loads(pc.DATA.read_text())["runs"] if r["source"] == "trtllm-1.0"
            and r["gpu"] in SYSTEMS and (r.get("launch") or {}).get("enable_attention_dp")]  # fmt: skip
    return score_readings(runs, keys=("model", "label", "gpu", "isl", "osl", "published_tok_s"), readings=READINGS,
                          reading=lambda name: release_reading(data, name), score=pc.run_tokens_s)  # fmt: skip


def published_lines(rows: list[dict]) -> list[str]:
    cols = ("as scored", *READINGS)
    lines = []
    for key in sorted({(r["label"], r["gpu"]) for r in rows}):
        mine = [r for r in rows if (r["label"], r["gpu"]) == key]
        cells = []
        for c in cols:
            ratios = [r[c] / r["published_tok_s"] for r in mine]
            cells.append(f"{c} {sum(abs(x - 1) <= TARGET for x in ratios)}/{len(mine)} "
                         f"(x{min(ratios):.2f}-{max(ratios):.2f})")  # fmt: skip
        lines.append(f"{key[0]} {key[1]}: " + "; ".join(cells))
    total = "; ".join(f"{c} {sum(abs(r[c] / r['published_tok_s'] - 1) <= TARGET for r in rows)}" for c in cols)
    lns = {c: statistics.median(abs(math.log(r[c] / r["published_tok_s"])) for r in rows) for c in cols}
    lines.append(f"all {len(rows)} Hopper FP8 attention-DP rows within 20 %: {total}; median |ln| "
                 + ", ".join(f"{c} {v:.3f}" for c, v in lns.items()))  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--collect", type=Path, metavar="WHEEL", help="aiconfigurator 0.4.0's wheel: write the data file")
    p.add_argument("--published", action="store_true", help="the Hopper FP8 attention-DP rows under the readings")
    args = p.parse_args(argv)
    if args.collect:
        return collect(args.collect, DATA)
    data = load()
    print(render_bands(data))
    if args.published:
        print("\n".join(published_lines(published_rows(data))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

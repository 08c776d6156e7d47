"""TensorRT-LLM Hopper FP8 attention DP + EP decode steps, operation class by class: kvplan against aiconfigurator.

Why: every Hopper FP8 attention-DP row of TensorRT-LLM's v1.0 tables (Qwen3-235B-A22B and Llama 4 Maverick on 8 GPUs,
Llama 4 Scout on 4; H100 and H200) is optimistic in kvplan (``published_compare.py``: x1.07-1.90), where the B200
NVFP4 rows of the same harness fit. aiconfigurator 0.12.0 has no v1.0 Hopper tables (its TensorRT-LLM Hopper data
are 1.3.0rc10 / rc20 / rc23); this script asks whether its 1.3.0rc20 whole step at the same operating points charges
for something kvplan does not, and how its expert-parallel MoE kernel table, which it reads with power-law routing
(alpha 1.2, ``sdk/models/moe.py``), would move the rows.

The page's FP8 checkpoints are NVIDIA's ModelOpt ones (perf-overview.md @00f37686 "FP8 Models":
nvidia/Qwen3-235B-A22B-FP8, nvidia/Llama-4-Maverick-17B-128E-Instruct-FP8; Scout's is not listed), priced per-tensor
fp8 on both sides (``gemm_quant_mode`` / ``moe_quant_mode`` fp8, fp8 KV).

1. ``--collect`` (needs aiconfigurator; does not import kvplan): ``cli_estimate`` ``static_gen`` (``osl`` 2: one
   decode step at context ``CTX``) for every case of ``CASES`` (``tp_size`` 1, ``attention_dp_size`` = ``moe_ep_size``
   = the ranks, ``batch_size`` a rank), keeping the per-operation breakdown, and the rows of the MoE table
   (``systems/data/<gpu>/moe/trtllm/1.3.0rc20/moe_perf.parquet``, ``moe_torch_flow_cutlass``, fp8, TP 1, EP = the
   ranks, balanced and power-law 1.2) of each model's shape; writes ``benchmarks/data/aiconfigurator_dp_ep.json``.
   Where aiconfigurator is not installed it says so in one line and exits 0::

       /work/aic-venv/bin/python benchmarks/dp_ep_gap.py --collect

2. default (needs kvplan only): kvplan's decode step at the same points (:func:`kvplan.latency.mixed_step_latency`,
   TensorRT-LLM, attention DP + EP, no CUDA-graph padding) beside aiconfigurator's, by operation class;
   ``--published``: the Hopper attention-DP rows scored as ``published_compare.py`` scores them, and with each MoE
   layer's grouped experts from the table (balanced, power law) in place of kvplan's formula (a reading, nothing kept).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aic_tables import collect_cases, grouped_experts_from, score_readings, table_layer_s  # noqa: E402 - shared with the table scripts

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_dp_ep.json"
# kvplan model -> (aiconfigurator's bundled config, attention-DP ranks of the page's Hopper rows, MoE shape: hidden,
# expert width, experts, top-k)
MODELS = {
    "qwen3-235b-a22b": ("Qwen/Qwen3-235B-A22B", 8, (4096, 1536, 128, 8)),
    "llama-4-scout-17b-16e": ("meta-llama/Llama-4-Scout-17B-16E-Instruct", 4, (5120, 8192, 16, 1)),
    "llama-4-maverick-17b-128e": ("meta-llama/Llama-4-Maverick-17B-128E-Instruct", 8, (5120, 8192, 128, 1)),
}
SYSTEMS = {"h100-sxm": "h100_sxm", "h200": "h200_sxm"}
BATCHES = (64, 128, 256)  # sequences a rank: sizes in the page's CUDA-graph list, so neither side pads
CTX = 3072
CASES = [dict(model=m, gpu=g, batch=b, ctx=CTX) for m in MODELS for g in SYSTEMS for b in BATCHES]
DISTRIBUTIONS = ("balanced", "power_law_1.2")
VERSION = "1.3.0rc20"
KERNEL = "moe_torch_flow_cutlass"
TARGET = 0.20  # published_compare.TARGET


def _ep_tables(system: str) -> dict:
    """{model: {distribution: [[tokens, ms], ...]}}: the EP rows of each model's shape in the fp8 MoE table."""
    from importlib.resources import files

    import pandas as pd

    path = Path(str(files("aiconfigurator_core") / "systems")) / "data" / system / "moe" / "trtllm" / VERSION
    df = pd.read_parquet(path / "moe_perf.parquet")
    df = df[(df.moe_dtype == "fp8") & (df.kernel_source == KERNEL) & (df.moe_tp_size == 1)]
    out: dict = {}
    for model, (_, ranks, (h, w, e, k)) in MODELS.items():
        rows = df[(df.hidden_size == h) & (df.inter_size == w) & (df.num_experts == e) & (df.topk == k)
                  & (df.moe_ep_size == ranks)]  # fmt: skip
        out[model] = {d: sorted([int(r.num_tokens), float(r.latency)]
                                for r in rows[rows.distribution == d].itertuples())
                      for d in DISTRIBUTIONS}  # fmt: skip
    return out


def _aic_row(cli_estimate, seen: dict, case: dict) -> dict:  # noqa: ANN001 - aiconfigurator's cli_estimate
    hf, ranks, _ = MODELS[case["model"]]
    r = cli_estimate(hf, SYSTEMS[case["gpu"]], mode="static_gen", backend_name="trtllm", batch_size=case["batch"],
                     tp_size=1, attention_dp_size=ranks, moe_tp_size=1, moe_ep_size=ranks, isl=case["ctx"], osl=2,
                     gemm_quant_mode="fp8", moe_quant_mode="fp8", kvcache_quant_mode="fp8")  # fmt: skip
    return {**case, "ranks": ranks, "aic_tpot_ms": float(r.tpot), "aic_backend_version": r.backend_version,
            "aic_ops_ms": dict(seen["generation"])}  # fmt: skip


def collect(out: Path) -> int:
    collected = collect_cases(CASES, _aic_row)
    if collected is None:
        return 0
    rows, version = collected
    meta = {"tool": "aiconfigurator", "version": version, "engine": "trtllm",
            "mode": "static_gen, osl 2 (one decode step at context ctx); batch_size a rank", "quant": "fp8 per-tensor "
            "GEMMs and experts, fp8 KV", "unit": "ms per decode step (every layer); tables: [tokens, ms] one MoE layer",
            "moe_table": f"systems/data/<gpu>/moe/trtllm/{VERSION}/moe_perf.parquet, {KERNEL}, fp8, TP 1, "
            "EP = ranks"}  # fmt: skip
    tables = {g: _ep_tables(s) for g, s in SYSTEMS.items()}
    out.write_text(json.dumps({"meta": meta, "cases": rows, "tables": tables}, indent=1) + "\n")
    print(f"wrote {len(rows)} cases to {out}")
    return 0


def load(path: Path = DATA) -> dict:
    return json.loads(path.read_text())


def aic_classes(ops: dict) -> dict[str, float]:
    """aiconfigurator's operations (ms) by kvplan's classes; Llama 4's carry a global / swa / dense infix."""
    out = dict.fromkeys(("gemm", "attention", "moe", "exchange", "elementwise", "other"), 0.0)
    for name, ms in ops.items():
        if name.endswith("_moe"):
            cls = "moe"
        elif name.endswith(("pre_dispatch", "post_dispatch")):
            cls = "exchange"
        elif name.endswith("gemm"):
            cls = "gemm"
        elif name.endswith("attention"):
            cls = "attention"
        elif name.endswith(("norm", "norm_1", "norm_2", "act")):
            cls = "elementwise"
        else:
            cls = "other"
        out[cls] += ms
    return out


def kvplan_classes(model: str, gpu_name: str, *, ranks: int, batch: int, ctx: int) -> dict[str, float]:
    """kvplan's TensorRT-LLM decode step (fp8 weights and KV, attention DP over ``ranks`` with EP) by class, ms."""
    from kvplan.catalog import resolve_model
    from kvplan.engines import Settings
    from kvplan.hardware import resolve_gpu
    from kvplan.latency import mixed_step_latency

    # the launch aiconfigurator's static_gen run stands for: max_seq_len its ISL + OSL (ctx + 2), below Llama 4's chunk
    t = mixed_step_latency(resolve_model(model), resolve_gpu(gpu_name), decode_seqs=batch * ranks, decode_context=ctx,
                           prefill_tokens=0, tp=1, dp=ranks, kv_dtype_name="fp8", weights_dtype="fp8",
                           engine="trtllm", expert_parallel=True, settings=Settings(max_seq_len=ctx + 2))  # fmt: skip
    return {"gemm": t.gemm * 1e3, "attention": t.attention * 1e3, "moe": t.moe * 1e3, "exchange": t.alltoall * 1e3,
            "elementwise": t.elementwise * 1e3, "other": (t.allreduce + t.pipeline + t.overlap) * 1e3,
            "total": t.total * 1e3}  # fmt: skip


CLASSES = ("gemm", "attention", "moe", "exchange", "elementwise", "other")


def compare(data: dict) -> list[dict]:
    out = []
    for c in data["cases"]:
        kv = kvplan_classes(c["model"], c["gpu"], ranks=c["ranks"], batch=c["batch"], ctx=c["ctx"])
        out.append({**{k: c[k] for k in ("model", "gpu", "ranks", "batch", "ctx")}, "kvplan": kv,
                    "aic": aic_classes(c["aic_ops_ms"]), "aic_tpot_ms": c["aic_tpot_ms"]})  # fmt: skip
    return out


def render(results: list[dict]) -> str:
    lines = [f"{'model':26} {'GPU':8} {'DP':>2} {'batch':>5}  {'TPOT kvplan / aic ms':>20}  "
             + "  ".join(f"{c:>18}" for c in CLASSES)]  # fmt: skip
    for r in results:
        k, a = r["kvplan"], r["aic"]
        cells = "  ".join(f"{k[c]:8.2f} /{a[c]:8.2f}" for c in CLASSES)
        lines.append(f"{r['model']:26} {r['gpu']:8} {r['ranks']:>2} {r['batch']:>5}  "
                     f"{k['total']:9.2f} /{r['aic_tpot_ms']:9.2f}  {cells}")  # fmt: skip
    for model in MODELS:
        for gpu in SYSTEMS:
            mine = [r for r in results if (r["model"], r["gpu"]) == (model, gpu)]
            ratio = statistics.median(r["aic_tpot_ms"] / r["kvplan"]["total"] for r in mine)
            moe = statistics.median(r["aic"]["moe"] / r["kvplan"]["moe"] for r in mine)
            rest = statistics.median((r["aic_tpot_ms"] - r["aic"]["moe"]) / (r["kvplan"]["total"] - r["kvplan"]["moe"])
                                     for r in mine)  # fmt: skip
            lines.append(f"{model} {gpu}: aiconfigurator / kvplan, median over {len(mine)} batches: step x{ratio:.2f}, "
                         f"MoE x{moe:.2f}, the rest x{rest:.2f}")  # fmt: skip
    return "\n".join(lines) + "\n"


@contextmanager
def experts_from_table(tables: dict, distribution: str):  # noqa: ANN201
    """For the ``with`` block, the grouped experts of these models' TensorRT-LLM fp8 MoE layers under expert
    parallelism over the table's ranks on H100 / H200 from the table at the layer's tokens (all ranks'), in place of
    :func:`kvplan.latency._moe_s`'s formula (its busiest-rank excess included); memos emptied on the way in and out."""
    shapes = {shape: (model, ranks) for model, (_, ranks, shape) in MODELS.items()}

    def from_table(c, moe_tokens: float, parts):  # noqa: ANN001, ANN202
        moe = c.spec.moe
        if moe is None or c.cal.engine != "trtllm" or not c.ep or c.gpu.name not in tables or moe_tokens <= 0:
            return None
        hit = shapes.get((c.spec.hidden_size, moe.expert_intermediate_size, moe.num_experts, moe.experts_per_token))
        if hit is None or hit[1] != c.moe_ranks:
            return None
        return table_layer_s(tables[c.gpu.name][hit[0]][distribution], moe_tokens)

    with grouped_experts_from(from_table):
        yield


def published_rows(tables: dict) -> list[dict]:
    """The Hopper attention-DP rows of the v1.0 tables, scored as ``published_compare.py`` scores them and with the
    experts from each distribution's table."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import published_compare as pc

    runs = [r for r in json.loads(pc.DATA.read_text())["runs"] if r["source"] == "trtllm-1.0"
            and r["gpu"] in SYSTEMS and (r.get("launch") or {}).get("enable_attention_dp")]  # fmt: skip
    return score_readings(runs, keys=("model", "label", "gpu", "isl", "osl", "published_tok_s"),
                          readings=DISTRIBUTIONS, reading=lambda d: experts_from_table(tables, d),
                          score=pc.run_tokens_s)  # fmt: skip


def published_lines(rows: list[dict]) -> list[str]:
    cols = ("as scored", *DISTRIBUTIONS)
    lines = []
    for model in MODELS:
        for gpu in SYSTEMS:
            mine = [r for r in rows if (r["model"], r["gpu"]) == (model, gpu)]
            if not mine:
                continue
            cells = []
            for c in cols:
                ratios = [r[c] / r["published_tok_s"] for r in mine]
                within = sum(abs(x - 1) <= TARGET for x in ratios)
                cells.append(f"{c} {within}/{len(mine)} (x{min(ratios):.2f}-{max(ratios):.2f})")
            lines.append(f"{mine[0]['label']} {gpu}: " + "; ".join(cells))
    total = "; ".join(f"{c} {sum(abs(r[c] / r['published_tok_s'] - 1) <= TARGET for r in rows)}" for c in cols)
    lines.append(f"all {len(rows)} Hopper attention-DP rows within 20 %: {total}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--collect", action="store_true", help="run the cases through aiconfigurator into the data file")
    p.add_argument("--published", action="store_true", help="the Hopper attention-DP rows with the table's experts")
    args = p.parse_args(argv)
    if args.collect:
        return collect(DATA)
    data = load()
    if args.published:
        print("\n".join(published_lines(published_rows(data["tables"]))))
        return 0
    print(render(compare(data)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""TensorRT-LLM attention DP + EP prompt steps at the v1.0 tables' long prompts: kvplan against aiconfigurator.

Why: the Qwen3-235B-A22B rows of TensorRT-LLM's v1.0 tables (8 GPUs, attention DP + EP) read more optimistic in kvplan
the longer the prompt (8 x H200 x1.20 / x1.38 / x1.61 at 2048/128, 5000/500, 20000/2000; 8 x B200 x0.88 / x0.99 /
x1.17), and ``published_compare.py --prompt-split`` puts the growth in the runs' prompt steps. This script asks
whether NVIDIA's own kernel timings price those prompt steps (one whole prompt on each rank, every rank's tokens
through the experts) slower than kvplan does, operation class by operation class, and whether the context-attention
kernel of the release the tables ran was slower at these lengths than the one kvplan's constants are fitted to.

1. ``--collect [--wheel WHEEL]`` (needs aiconfigurator 0.12.0; does not import kvplan): ``cli_estimate``
   ``static_ctx`` (one prompt of ``isl`` tokens a rank: ``batch_size`` 1, ``tp_size`` 1, ``attention_dp_size`` =
   ``moe_ep_size`` = the ranks; fp8 GEMMs, experts and KV) for every case of ``CASES``, keeping the per-operation
   breakdown of the prompt step; and the context-attention rows (batch 1, head size 128, fp8 attention and KV, no
   window) of ``SHAPES`` from aiconfigurator 0.12.0's TensorRT-LLM 1.3.0rc20 H200 table and, with ``--wheel``, from
   the 1.0.0rc3 H200 table of aiconfigurator 0.4.0's wheel (read as a zip, installed nowhere); and ``static_gen``
   (one decode step) at the decode-only steps of the Qwen3-235B-A22B 8 x H200 long-prompt runs (``DECODE_CASES``);
   writes
   ``benchmarks/data/aiconfigurator_long_prompt.json``. Where aiconfigurator is not installed it says so in one line
   and exits 0::

       pip download --no-deps aiconfigurator==0.4.0 -d /tmp/aic040
       /work/aic-venv/bin/python benchmarks/long_prompt_gap.py --collect --wheel /tmp/aic040/aiconfigurator-0.4.0-*.whl

2. default (needs kvplan only): kvplan's prompt step at the same points (:func:`kvplan.latency.mixed_step_latency`,
   the rows' release ``trtllm@0.20``, one prompt a rank, every rank's tokens through the experts) beside
   aiconfigurator's, by operation class; the decode-only steps beside aiconfigurator's; then the context-attention
   kernel per layer at batch 1, 1.0.0rc3 beside 1.3.0rc20 and kvplan's. Nothing here enters kvplan.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aic_tables import collect_cases, tables_root  # noqa: E402 - shared with the table scripts
from dp_ep_gap import aic_classes  # noqa: E402 - aiconfigurator's operation names by kvplan's classes

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_long_prompt.json"
# kvplan model -> (aiconfigurator's bundled config, attention-DP ranks of the page's rows)
MODELS = {
    "qwen3-235b-a22b": ("Qwen/Qwen3-235B-A22B", 8),
    "llama-4-maverick-17b-128e": ("meta-llama/Llama-4-Maverick-17B-128E-Instruct", 8),
}
SYSTEMS = {"h200": "h200_sxm"}
# the page's long prompts, and 16,384, the longest prompt of aiconfigurator's context-attention tables
ISLS = (2048, 5000, 16384, 20000)
CASES = [dict(model=m, gpu=g, isl=i) for m in MODELS for g in SYSTEMS for i in ISLS]
# The decode-only steps of the page's Qwen3-235B-A22B 8 x H200 long-prompt runs: (ISL, OSL, sequences a rank: the run's
# places, published_compare.run_places), priced at the mean context ISL + OSL / 2, unpadded on both sides
DECODE_POINTS = ((2048, 128, 358), (5000, 500, 179), (20000, 2000, 40))
DECODE_CASES = [dict(model="qwen3-235b-a22b", gpu="h200", isl=i, osl=o, batch=b) for i, o, b in DECODE_POINTS]
# (query heads, KV heads) of one rank's attention under attention DP: Qwen3-235B-A22B's, Llama 4 Maverick's
SHAPES = ((64, 4), (40, 8))
OLD, NEW = "1.0.0rc3", "1.3.0rc20"
CLASSES = ("attention", "experts", "other")


def _aic_row(cli_estimate, seen: dict, case: dict) -> dict:  # noqa: ANN001 - aiconfigurator's cli_estimate
    hf, ranks = MODELS[case["model"]]
    r = cli_estimate(hf, SYSTEMS[case["gpu"]], mode="static_ctx", backend_name="trtllm", batch_size=1, tp_size=1,
                     attention_dp_size=ranks, moe_tp_size=1, moe_ep_size=ranks, isl=case["isl"], osl=2,
                     gemm_quant_mode="fp8", moe_quant_mode="fp8", kvcache_quant_mode="fp8")  # fmt: skip
    return {**case, "ranks": ranks, "aic_ttft_ms": float(r.ttft), "aic_backend_version": r.backend_version,
            "aic_ops_ms": dict(seen["context"])}  # fmt: skip


def _aic_decode_row(cli_estimate, seen: dict, case: dict) -> dict:  # noqa: ANN001 - aiconfigurator's cli_estimate
    hf, ranks = MODELS[case["model"]]
    ctx = case["isl"] + case["osl"] // 2
    r = cli_estimate(hf, SYSTEMS[case["gpu"]], mode="static_gen", backend_name="trtllm", batch_size=case["batch"],
                     tp_size=1, attention_dp_size=ranks, moe_tp_size=1, moe_ep_size=ranks, isl=ctx, osl=2,
                     gemm_quant_mode="fp8", moe_quant_mode="fp8", kvcache_quant_mode="fp8")  # fmt: skip
    return {**case, "ranks": ranks, "ctx": ctx, "aic_tpot_ms": float(r.tpot), "aic_ops_ms": dict(seen["generation"])}


def _attention_rows(frame) -> dict[str, list[list[float]]]:  # noqa: ANN001 - a pandas DataFrame
    """``{"64/4": [[isl, ms], ...]}``: a table's context-attention rows of :data:`SHAPES` at batch 1, head size 128,
    fp8 attention and KV, no window."""
    f = frame[(frame.batch_size == 1) & (frame.head_dim == 128) & (frame.attn_dtype == "fp8")
              & (frame.kv_cache_dtype == "fp8")]  # fmt: skip
    if "window_size" in f.columns:
        f = f[f.window_size == 0]
    out = {}
    for heads, kv in SHAPES:
        g = f[(f.num_heads == heads) & (f.num_key_value_heads == kv)].sort_values("isl")
        out[f"{heads}/{kv}"] = [[int(r.isl), round(float(r.latency), 6)] for r in g.itertuples()]
    return out


def collect(out: Path, wheel: Path | None = None) -> int:
    collected = collect_cases(CASES, _aic_row)
    if collected is None:
        return 0
    import pandas as pd

    rows, version = collected
    decode, _ = collect_cases(DECODE_CASES, _aic_decode_row)
    root = tables_root()
    attention = {NEW: _attention_rows(pd.read_parquet(root / "h200_sxm" / "attention" / "trtllm" / NEW
                                                      / "context_attention_perf.parquet"))}  # fmt: skip
    sources = {NEW: f"aiconfigurator {version}: systems/data/h200_sxm/attention/trtllm/{NEW}/"
                    "context_attention_perf.parquet"}  # fmt: skip
    if wheel is not None:
        name = f"aiconfigurator/systems/data/h200_sxm/trtllm/{OLD}/context_attention_perf.txt"
        with zipfile.ZipFile(wheel) as z:
            attention[OLD] = _attention_rows(pd.read_csv(io.BytesIO(z.read(name))))
        sources[OLD] = f"{wheel.name}: {name}"
    meta = {"tool": "aiconfigurator", "version": version, "engine": "trtllm",
            "mode": "static_ctx, batch_size 1 (one prompt of isl tokens a rank), tp 1, attention DP = MoE EP = ranks",
            "quant": "fp8 per-tensor GEMMs and experts, fp8 KV", "unit": "ms per prompt step (every layer); "
            "attention: [isl, ms] one layer at batch 1", "attention_sources": sources}  # fmt: skip
    meta["decode"] = ("static_gen, osl 2 (one decode step at context isl + osl / 2), batch_size the run's places a "
                      "rank")  # fmt: skip
    out.write_text(json.dumps({"meta": meta, "cases": rows, "decode_cases": decode, "attention": attention}, indent=1)
                   + "\n")  # fmt: skip
    print(f"wrote {len(rows)} prompt and {len(decode)} decode cases to {out}")
    return 0


def load(path: Path = DATA) -> dict:
    return json.loads(path.read_text())


def _by_class(classes: dict[str, float]) -> dict[str, float]:
    """kvplan's and aiconfigurator's classes (:func:`dp_ep_gap.aic_classes`' names) gathered into :data:`CLASSES`:
    the attention kernel, the experts with their token exchange, and the rest (projections, norms, router)."""
    experts = classes["moe"] + classes["exchange"]
    return {"attention": classes["attention"], "experts": experts,
            "other": sum(classes.values()) - classes["attention"] - experts}  # fmt: skip


def kvplan_prompt_step(model: str, gpu_name: str, *, ranks: int, isl: int, engine: str = "trtllm@0.20") -> dict:
    """kvplan's prompt step (ms by :data:`CLASSES` and ``total``): one ``isl``-token prompt on each of ``ranks``
    attention-DP ranks, every rank's tokens through the experts (EP over the ranks), fp8 weights and KV."""
    from kvplan.catalog import resolve_model
    from kvplan.engines import Settings
    from kvplan.hardware import resolve_gpu
    from kvplan.latency import mixed_step_latency

    t = mixed_step_latency(resolve_model(model), resolve_gpu(gpu_name), decode_seqs=0, decode_context=isl,
                           prefill_tokens=isl, prefill_tokens_all_ranks=isl * ranks, tp=1, dp=ranks,
                           kv_dtype_name="fp8", weights_dtype="fp8", engine=engine, expert_parallel=True,
                           settings=Settings(max_seq_len=isl + 2))  # fmt: skip
    ms = {"gemm": t.gemm, "attention": t.attention, "moe": t.moe, "exchange": t.alltoall,
          "elementwise": t.elementwise, "other": t.allreduce + t.pipeline + t.overlap}  # fmt: skip
    out = _by_class({k: v * 1e3 for k, v in ms.items()})
    out["total"] = t.total * 1e3
    return out


def kvplan_decode_step(model: str, gpu_name: str, *, ranks: int, batch: int, ctx: int,
                       engine: str = "trtllm@0.20") -> dict:  # fmt: skip
    """kvplan's decode-only step (ms by :data:`CLASSES` and ``total``): ``batch`` sequences a rank at context ``ctx`` on
    ``ranks`` attention-DP ranks with EP, fp8 weights and KV, no CUDA-graph padding."""
    from kvplan.catalog import resolve_model
    from kvplan.engines import Settings
    from kvplan.hardware import resolve_gpu
    from kvplan.latency import mixed_step_latency

    t = mixed_step_latency(resolve_model(model), resolve_gpu(gpu_name), decode_seqs=batch * ranks, decode_context=ctx,
                           prefill_tokens=0, tp=1, dp=ranks, kv_dtype_name="fp8", weights_dtype="fp8", engine=engine,
                           expert_parallel=True, settings=Settings(max_seq_len=ctx + 2))  # fmt: skip
    ms = {"gemm": t.gemm, "attention": t.attention, "moe": t.moe, "exchange": t.alltoall,
          "elementwise": t.elementwise, "other": t.allreduce + t.pipeline + t.overlap}  # fmt: skip
    out = _by_class({k: v * 1e3 for k, v in ms.items()})
    out["total"] = t.total * 1e3
    return out


def compare_decode(data: dict) -> list[dict]:
    out = []
    for c in data["decode_cases"]:
        kv = kvplan_decode_step(c["model"], c["gpu"], ranks=c["ranks"], batch=c["batch"], ctx=c["ctx"])
        aic = _by_class(aic_classes(c["aic_ops_ms"]))
        aic["total"] = c["aic_tpot_ms"]
        out.append({**{k: c[k] for k in ("model", "gpu", "ranks", "isl", "osl", "batch", "ctx")}, "kvplan": kv,
                    "aic": aic})  # fmt: skip
    return out


def compare(data: dict) -> list[dict]:
    out = []
    for c in data["cases"]:
        kv = kvplan_prompt_step(c["model"], c["gpu"], ranks=c["ranks"], isl=c["isl"])
        aic = _by_class(aic_classes(c["aic_ops_ms"]))
        aic["total"] = c["aic_ttft_ms"]
        out.append({**{k: c[k] for k in ("model", "gpu", "ranks", "isl")}, "kvplan": kv, "aic": aic})
    return out


def kvplan_attention_layer_ms(heads: int, kv_heads: int, isl: int, gpu_name: str = "h200") -> float:
    """kvplan's context attention of one layer at batch 1 (ms): a prompt step of the model whose rank runs this head
    layout, its attention over its attention layers (Qwen3-235B-A22B: 64 / 4, every layer full attention)."""
    model = {(64, 4): "qwen3-235b-a22b"}.get((heads, kv_heads))
    if model is None:
        return float("nan")
    from kvplan.catalog import resolve_model

    layers = resolve_model(model).num_layers
    return kvplan_prompt_step(model, gpu_name, ranks=1, isl=isl)["attention"] / layers


def render(results: list[dict], attention: dict, decode: list[dict] | None = None) -> str:
    lines = [f"{'model':26} {'GPU':5} {'ISL':>6}  {'step kvplan / aic ms':>21}  "
             + "  ".join(f"{c:>19}" for c in CLASSES)]  # fmt: skip
    for r in results:
        k, a = r["kvplan"], r["aic"]
        cells = "  ".join(f"{k[c]:8.1f} /{a[c]:8.1f}" for c in CLASSES)
        lines.append(f"{r['model']:26} {r['gpu']:5} {r['isl']:>6}  {k['total']:9.1f} /{a['total']:9.1f}  {cells}")
    for model in MODELS:
        mine = [r for r in results if r["model"] == model]
        parts = [f"step x{statistics.median(r['aic']['total'] / r['kvplan']['total'] for r in mine):.2f}"]
        parts += [f"{c} x{statistics.median(r['aic'][c] / r['kvplan'][c] for r in mine):.2f}" for c in CLASSES]
        lines.append(f"{model}: aiconfigurator / kvplan, median over {len(mine)} prompt lengths: " + ", ".join(parts))
    if decode:
        cells = [f"{r['isl']}/{r['osl']} {r['batch']} a rank at {r['ctx']}: {r['kvplan']['total']:.1f} / "
                 f"{r['aic']['total']:.1f} (attention {r['kvplan']['attention']:.1f} / {r['aic']['attention']:.1f})"
                 for r in decode]  # fmt: skip
        lines.append("decode-only steps of the 8 x H200 long-prompt runs, kvplan / aic ms: " + "; ".join(cells))
    if OLD in attention:
        lines.append(f"context attention, one layer at batch 1 on H200 (fp8 attention and KV), ms: {OLD} / {NEW} / "
                     "kvplan")  # fmt: skip
        for shape, old_rows in attention[OLD].items():
            new = dict(attention[NEW][shape])
            heads, kv_heads = (int(x) for x in shape.split("/"))
            cells = []
            for isl, ms in old_rows:
                if isl < 1024 or isl not in new:
                    continue
                kv = kvplan_attention_layer_ms(heads, kv_heads, isl)
                mine = "" if kv != kv else f" / {kv:.2f}"  # nan: no catalog model with this rank layout
                cells.append(f"{isl} {ms:.2f} / {new[isl]:.2f}{mine}")
            ratio = statistics.median(ms / new[isl] for isl, ms in old_rows if isl >= 1024 and isl in new)
            lines.append(f"  {shape} heads: " + "; ".join(cells) + f" (median {OLD} / {NEW} x{ratio:.2f})")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--collect", action="store_true", help="run the cases through aiconfigurator into the data file")
    p.add_argument("--wheel", type=Path, help="with --collect: aiconfigurator 0.4.0's wheel, for the 1.0.0rc3 table")
    args = p.parse_args(argv)
    if args.collect:
        return collect(DATA, args.wheel)
    data = load()
    print(render(compare(data), data["attention"], compare_decode(data)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

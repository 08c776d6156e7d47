"""DeepSeek-V3's decode step on TensorRT-LLM, operation by operation: kvplan against aiconfigurator 0.12.0.

aiconfigurator prices a DeepSeek decode step (``static_gen``) as a list of operations
(``aiconfigurator_core/sdk/models/deepseek.py``): the MLA block (one measured module), two add + norm kernels, the
LM head, and ``generation_moe_overlap``, which runs the routed path (router GEMM, pre-dispatch, the fused MoE,
post-dispatch) beside the shared experts (gate/up GEMM, activation, down GEMM) and takes the longer of the two. On
TensorRT-LLM (narrow EP) the two dispatch operations stand for the tensor-parallel all-reduces (it prices no
``generation_tp_allreduce`` apart for that engine), and every one of the 61 layers is priced as a MoE layer (the
checkpoint's ``first_k_dense_replace`` 3 dense layers are not modelled apart). The fused MoE is the table
``moe_torch_flow_cutlass`` on Hopper, ``deepgemm`` on Blackwell (``collector/trtllm/collect_moe.py`` times
``moe.forward``: routing top-k, permute, the two grouped GEMMs, the activation, finalize).

Two steps, as the other compare scripts:

1. ``--collect`` (needs aiconfigurator; does not import kvplan): runs ``CASES`` through ``cli_estimate`` (TP 8,
   ``moe_tp_size`` 8) and evaluates each generation operation and each child of the MoE overlap alone on
   aiconfigurator's own database; writes ``benchmarks/data/aiconfigurator_moe_bucket.json``::

       /work/aic-venv/bin/python benchmarks/moe_bucket_compare.py --collect

2. default (needs kvplan only): prices the same operations with kvplan's TensorRT-LLM constants
   (:mod:`kvplan.latency`: :func:`_attention_s` and the MLA projections, :func:`_elementwise_s`, :func:`_moe_s`'s
   router, grouped experts and shared experts, :func:`allreduce_s`, :func:`lm_head_s`, the shared-expert stream's
   overlap) and prints them side by side, per case, in ms per decode step; ``--markdown`` for docs/cost.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aic_tables import collect_cases  # noqa: E402 - aiconfigurator's estimate, shared

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_moe_bucket.json"
HF = "deepseek-ai/DeepSeek-V3"
SYSTEMS = {"h200": "h200_sxm", "b200": "b200_sxm"}
TP = 8
ISL = 4096
BATCHES = (1, 8, 64)
CASES = [dict(gpu=g, batch=b, isl=ISL) for g in SYSTEMS for b in BATCHES]


def _alone_ms(database, op, *, batch: int, isl: int) -> float:  # noqa: ANN001
    """One operation of a decode step evaluated alone on aiconfigurator's database (ms, all its layers)."""
    from aiconfigurator_core.sdk.engine import _evaluate_single_op

    if getattr(type(op), "_ENGINE_QUERY_SHAPE", None) == "tokens":
        kw = dict(is_context=False, batch_size=batch, s=isl + 1, x=batch)
    else:
        kw = dict(is_context=False, batch_size=batch, s=isl + 1, prefix=0, x=None, imbalance_correction_scale=1.0)
    return float(_evaluate_single_op(database, op, **kw))


def _aic_row(cli_estimate, seen: dict, case: dict) -> dict:  # noqa: ANN001 - aiconfigurator's cli_estimate
    r = cli_estimate(HF, SYSTEMS[case["gpu"]], mode="static_gen", backend_name="trtllm", batch_size=case["batch"],
                     tp_size=TP, moe_tp_size=TP, moe_ep_size=1, isl=case["isl"], osl=2)  # fmt: skip
    model, db = seen["model"], seen["database"]
    ops, children = {}, {}
    for op in model.generation_ops:
        ops[op._name] = _alone_ms(db, op, batch=case["batch"], isl=case["isl"])
        for group in ("_group_a", "_group_b"):
            for child in getattr(op, group, None) or ():
                children[child._name] = _alone_ms(db, child, batch=case["batch"], isl=case["isl"])
    return {**case, "tp": TP, "aic_tpot_ms": float(r.tpot), "aic_backend_version": r.backend_version,
            "aic_ops_ms": ops, "aic_moe_overlap_children_ms": children}  # fmt: skip


def collect(out: Path) -> int:
    collected = collect_cases(CASES, _aic_row)
    if collected is None:
        return 0
    rows, version = collected
    meta = {"tool": "aiconfigurator", "version": version, "model": HF, "engine": "trtllm",
            "mode": "static_gen, osl 2 (one decode step at context isl)", "tp": TP, "moe_tp_size": TP,
            "moe_ep_size": 1, "unit": "ms per decode step (every layer)"}  # fmt: skip
    out.write_text(json.dumps({"meta": meta, "cases": rows}, indent=1) + "\n")
    print(f"wrote {len(rows)} cases to {out}")
    return 0


def load(path: Path = DATA) -> list[dict]:
    return json.loads(path.read_text())["cases"]


def kvplan_ops(gpu_name: str, *, batch: int, isl: int, cal=None) -> dict[str, float]:  # noqa: ANN001
    """kvplan's DeepSeek-V3 TensorRT-LLM decode step (block-fp8 weights, fp8 KV, TP 8, CUDA graphs) by operation, in
    seconds per step; the operations sum to :func:`kvplan.cost.cost`'s TPOT. ``cal``: constants other than the
    engine's (a fit being tried)."""
    from kvplan import latency as lat
    from kvplan.catalog import resolve_model
    from kvplan.hardware import resolve_gpu

    spec, gpu = resolve_model("deepseek-v3"), resolve_gpu(gpu_name)
    cal = cal or lat.calibration("trtllm")
    c = lat._make_ctx(spec, gpu, tp=TP, weights_dtype="fp8", cal=cal, eager=False,
                      rules=lat.engine_overlap("trtllm"))  # fmt: skip
    keys = lat._layer_keys(spec, range(spec.num_layers))
    moe_layers = sum(n for (_, dense, _w), n in keys.items() if not dense)
    dense = [(n, w) for (_, d, w), n in keys.items() if d]
    kind = spec.kind(next(iter(keys))[0])
    parts = lat._moe_s(c, batch, batch)
    inter = lat.ceil_div(spec.moe.experts_per_token * spec.moe.expert_intermediate_size, TP)
    attention = lat._attention_s(c, phase="decode", context=isl, batch=batch, attention_flops=0, kv_dtype="fp8",
                                 stage=None)  # fmt: skip
    dense_inter = [(n, lat.ceil_div(w, TP)) for n, w in dense]
    norms = lat._elementwise_s(c, batch, 0) - c.kernel_s  # the two add + norm kernels of a layer

    def act(width: int) -> float:  # the gated activation kernel of a layer (the third element-wise kernel)
        return lat._elementwise_s(c, batch, width) - norms

    return {
        "mla_block": attention + spec.num_layers * lat._attention_gemms_s(c, kind, batch),
        "add_norm": spec.num_layers * norms,
        "router": moe_layers * parts.router,
        "grouped_experts": moe_layers * parts.grouped,
        "shared_experts": moe_layers * parts.shared,
        "shared_hidden": moe_layers * lat._shared_overlap_s(c, parts, batch, 0.0),
        "activation": moe_layers * act(inter) + sum(n * act(i) for n, i in dense_inter),
        "dense_mlp": sum(n * lat._dense_mlp_s(c, batch, i, gated=True) for n, i in dense_inter),
        "allreduce": (2 * spec.num_layers + 1) * lat.allreduce_s(c, batch),
        "lm_head": lat.lm_head_s(c, batch),
    }


# (label, kvplan operations, aiconfigurator operations, aiconfigurator MoE-overlap children): one row each
ROWS = (
    ("MLA block (attention + projections)", ("mla_block",), ("generation_mla_block",), ()),
    ("add + norm (2 per layer)", ("add_norm",), ("generation_add_norm_1", "generation_add_norm_2"), ()),
    ("router GEMM", ("router",), (), ("generation_router_gemm",)),
    ("grouped experts (fused MoE)", ("grouped_experts",), (), ("generation_moe",)),
    ("all-reduce / dispatch (2 per layer)", ("allreduce",), (),
     ("generation_moe_pre_dispatch", "generation_moe_post_dispatch")),
    ("shared experts (GEMMs)", ("shared_experts",), (), ("generation_shared_gate_up_gemm",
                                                         "generation_shared_ffn2_gemm")),
    ("gated activation", ("activation",), (), ("generation_shared_act_gate",)),
    ("dense MLP (3 layers)", ("dense_mlp",), (), ()),
    ("LM head", ("lm_head",), ("generation_logits_gemm",), ()),
)  # fmt: skip
SHARED_AIC = ("generation_shared_gate_up_gemm", "generation_shared_act_gate", "generation_shared_ffn2_gemm")


def compare(cases: list[dict], *, cal=None) -> list[dict]:  # noqa: ANN001
    """Per case: the rows of ``ROWS`` (kvplan ms, aiconfigurator ms), the time each hides beside the routed path, and
    both step totals (kvplan's is the sum of its operations)."""
    out = []
    for case in cases:
        kv = kvplan_ops(case["gpu"], batch=case["batch"], isl=case["isl"], cal=cal)
        ops, kids = case["aic_ops_ms"], case["aic_moe_overlap_children_ms"]
        rows = [{"op": label, "kvplan_ms": sum(kv[k] for k in ours) * 1e3,
                 "aic_ms": sum(ops.get(k, 0.0) for k in top) + sum(kids.get(k, 0.0) for k in child)}
                for label, ours, top, child in ROWS]  # fmt: skip
        # aiconfigurator's overlap is max(routed, shared): what it hides is the shorter path
        routed = sum(v for k, v in kids.items() if k not in SHARED_AIC)
        shared = sum(kids.get(k, 0.0) for k in SHARED_AIC)
        rows.append({"op": "hidden beside the routed path", "kvplan_ms": kv["shared_hidden"] * 1e3,
                     "aic_ms": ops["generation_moe_overlap"] - routed - shared})  # fmt: skip
        out.append({**{k: case[k] for k in ("gpu", "batch", "isl")}, "rows": rows,
                    "kvplan_tpot_ms": sum(kv.values()) * 1e3, "aic_tpot_ms": case["aic_tpot_ms"]})  # fmt: skip
    return out


def render(results: list[dict], *, markdown: bool) -> str:
    lines = []
    for r in results:
        title = (f"DeepSeek-V3, TensorRT-LLM, {r['gpu']}, TP {TP}, batch {r['batch']}, ISL {r['isl']}: TPOT kvplan "
                 f"{r['kvplan_tpot_ms']:.2f} ms, aiconfigurator {r['aic_tpot_ms']:.2f} ms")  # fmt: skip
        lines += [f"**{title}**", "", "| operation | kvplan ms | aiconfigurator ms | ln |", "|---|---:|---:|---:|"] \
            if markdown else [title]  # fmt: skip
        for row in r["rows"]:
            k, a = row["kvplan_ms"], row["aic_ms"]
            ln = f"{math.log(k / a):+.2f}" if k > 0 and a > 0 else "-"
            lines.append(f"| {row['op']} | {k:.3f} | {a:.3f} | {ln} |" if markdown
                         else f"  {row['op']:<40} {k:8.3f} {a:8.3f}  {ln}")  # fmt: skip
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--collect", action="store_true", help="run the cases through aiconfigurator into the data file")
    p.add_argument("--markdown", action="store_true", help="tables for docs/cost.md")
    args = p.parse_args(argv)
    if args.collect:
        return collect(DATA)
    print(render(compare(load()), markdown=args.markdown), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

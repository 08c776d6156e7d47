"""Fit kvplan.latency's constants to aiconfigurator's per-operation latencies; print the constants and the errors.

Reads ``benchmarks/data/aiconfigurator_grid.json`` (written by ``aiconfigurator_compare.py --collect``;
committed, so this runs without aiconfigurator). Needs numpy and scipy (the ``bench`` extra).

What is fitted: every field of :class:`kvplan.engines.base.Calibration` except the names, by
``scipy.optimize.least_squares`` on log-parameters (soft_l1 loss with scale 1, so a few cases where
aiconfigurator's own data are fallback rows do not drag the fit), minimising

* ``ln(kvplan / aiconfigurator)`` of the whole step, prefill and decode, every case (weight 1), and
* ``ln(kvplan / aiconfigurator)`` per operation class (GEMM, attention, element-wise, all-reduce,
  grouped experts, and the composites ``mla_block`` and ``moe_overlap`` compared as sums of kvplan's
  parts; weight ``CLASS_WEIGHT``): this pins each class's constants to its own kernels instead of
  letting errors cancel.

Bounds: efficiencies at most ``MAX_EFF`` of a datasheet peak or bandwidth, the grouped-expert
asymptote at most the dense GEMMs' (a grouped GEMM is a batch of dense ones), the EP imbalance at
least 1. Decode figures ``aiconfigurator_compare.reference_artifact`` flags are left out of the fit
and reported apart ("without the artifacts").

``--engine vllm`` or ``--engine trtllm`` fits one engine's cases only (both by default, then one
per engine when ``--per-engine``). ``--only f1,f2`` refits those fields alone, every other one held (a change of
physics that touches one class of kernels refits that class's constants, e.g. the fp8 GEMMs' wave quantization:
``--only fp8_eff_scale,fp8_block_eff_scale``). Paste the printed block into the engine module's ``CALIBRATION``
(``kvplan/engines/vllm.py``, ``kvplan/engines/trtllm.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_grid.json"

# aiconfigurator op name (after the context_/generation_ prefix) -> kvplan class. Two are composites that kvplan
# compares as sums of its own parts: "mla_block" (aiconfigurator times DeepSeek's MLA module, projections and
# kernel together: kvplan attention + attention_gemm) and "moe_overlap" (routed + shared experts and the router,
# run on two streams at decode: kvplan moe + the GEMMs other than the projections and the LM head).
CLASSES = {
    "qkv_gemm": "gemm",
    "proj_gemm": "gemm",
    "gate_ffn1_gemm": "gemm",
    "ffn2_gemm": "gemm",
    "logits_gemm": "gemm",
    "router_gemm": "gemm",
    "shared_gate_up_gemm": "gemm",
    "shared_ffn2_gemm": "gemm",
    "attention": "attention",
    "add_norm_1": "elementwise",
    "add_norm_2": "elementwise",
    "act_gate": "elementwise",
    "shared_act_gate": "elementwise",
    "ar_1": "allreduce",
    "ar_2": "allreduce",
    "embedding_ar": "allreduce",
    "tp_allreduce": "allreduce",
    "moe_pre_dispatch": "allreduce",  # the MoE layer's TP communication (gather before, reduce after the experts)
    "moe_post_dispatch": "allreduce",
    "moe": "moe",
    "mla_block": "mla_block",
    "moe_overlap": "moe_overlap",
}
NAMES = ("engine", "version", "source")
# Fitted by benchmarks/fit_fp4.py to aiconfigurator's NVFP4 steps (fp4_cases; no case of this grid runs FP4): held here.
NAMES += ("fp4_eff_scale", "fp4_mem_eff_scale", "fp4_moe_eff_scale", "fp4_k_s", "fp4_moe_layer_s")
# Fitted by benchmarks/fit_fmha.py to aiconfigurator's context-attention tables (FP8 against 16-bit rows): held here.
NAMES += ("fmha_fp8_softmax",)
# Fitted by benchmarks/mla_compare.py --fit to aiconfigurator's B200 MLA decode module table: held here, with the
# rules that say where it applies (read from the engines' source, not fitted) and the Hopper counterpart (SGLang's).
NAMES += ("blackwell_mla_layer_s", "blackwell_mla_nope_dims", "blackwell_mla_kv_dtypes", "blackwell_mla_families")
NAMES += ("hopper_mla_layer_s",)
NAMES += ("fp4_norm_quant_fused", "gemm_allreduce_fused")  # switches (what the engine build runs), not fitted figures
# Fitted by benchmarks/fit_moe_ops.py to aiconfigurator's MoE tables (block-scaled fp8 experts): held here.
NAMES += ("hopper_moe_block_expert_s", "blackwell_moe_block_expert_s", "mxfp4_moe_dequant_s", "mxfp4_moe_tile_tokens")
# Fitted by benchmarks/gqa_decode_compare.py --fit to aiconfigurator's generation-attention tables (GQA/MHA decode
# kernels per architecture; kvplan.latency _gqa_decode_s): held here. attn_layer_s / attn_seq_s / attn_decode_mem_eff
# still price prefill's fixed cost, MLA and recurrent layers, and GPUs of other architectures.
NAMES += ("hopper_gqa_decode", "blackwell_gqa_decode")
NAMES += ("hopper_mxfp4_moe_dequant_s", "hopper_mxfp4_moe_layer_s")
NAMES += ("hopper_moe_block_tile_eff", "hopper_moe_block_half_width", "hopper_moe_block_mem_eff")
# Fitted by benchmarks/fp8_quant_compare.py --fit to aiconfigurator's quantize tables: held here.
NAMES += ("fp8_quant_s", "blackwell_fp8_quant_s", "fp8_quant_read_eff")
MAX_EFF = 0.95
CLASS_WEIGHT = 0.3  # per-class residuals: enough to pin each class, the step totals still lead


def load_cases(engine: str | None, key: str = "cases", data: Path = DATA) -> list[dict]:
    from kvplan.catalog import resolve_model
    from kvplan.cost import step_flops
    from kvplan.hardware import resolve_gpu

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from aiconfigurator_compare import _kvplan_dtype, _weights, reference_artifact

    out = []
    for c in json.loads(data.read_text()).get(key, []):
        if "aic_error" in c or (engine and c["engine"] != engine):
            continue
        spec, gpu = resolve_model(c["model"]), resolve_gpu(c["gpu"])
        quant = c.get("aic_quant", {})
        for phase, key, ops in (
            ("prefill", "aic_ttft_ms", "aic_context_ops_ms"),
            ("decode", "aic_tpot_ms", "aic_generation_ops_ms"),
        ):
            flops = step_flops(spec, c["isl"], phase=phase, batch=c["batch"], tp=c["tp"])
            classes: dict[str, float] = {}
            for name, ms in c[ops].items():
                cls = CLASSES.get(name.split("_", 1)[1])
                if cls:
                    classes[cls] = classes.get(cls, 0.0) + ms / 1e3
            out.append(
                dict(
                    case=c,
                    spec=spec,
                    gpu=gpu,
                    phase=phase,
                    attention_flops=flops.attention,
                    weights=_weights(quant, spec.dtype),
                    kv=_kvplan_dtype(quant.get("kvcache"), spec.dtype),
                    total_s=c[key] / 1e3,
                    classes_s=classes,
                    artifact=reference_artifact(c, phase),
                )
            )
    return out


def projections_and_head(row: dict, cal) -> tuple[float, float]:  # noqa: ANN001
    """kvplan's token-mixer projection GEMMs and LM head (both inside its ``gemm`` class), seconds: the parts
    aiconfigurator times inside its MLA module or apart as ``logits_gemm``. Uses kvplan.latency's own helpers."""
    from kvplan import latency

    c, spec = row["case"], row["spec"]
    prefill = row["phase"] == "prefill"
    ctx = latency._make_ctx(spec, row["gpu"], tp=c["tp"], weights_dtype=row["weights"], cal=cal, eager=prefill,
                            ep=bool(c.get("ep")))  # fmt: skip
    tokens = c["batch"] * (c["isl"] if prefill else 1)
    memo: dict[str, float] = {}
    for name in spec.layer_kind_names:
        if name not in memo:
            memo[name] = latency._attention_gemms_s(ctx, spec.kind(name), tokens)
    projections = sum(memo[name] for name in spec.layer_kind_names)
    head = latency.lm_head_s(ctx, c["batch"])
    return projections, head


def kvplan_classes(t, row: dict, cal) -> dict[str, float]:  # noqa: ANN001
    """kvplan's seconds per aiconfigurator class (composites as sums of kvplan's parts)."""
    classes = row["classes_s"]
    gemm = t.gemm
    got = {"gemm": gemm, "attention": t.attention, "elementwise": t.elementwise, "allreduce": t.allreduce,
           "moe": t.moe}  # fmt: skip
    if "mla_block" in classes or "moe_overlap" in classes:
        projections, head = projections_and_head(row, cal)
        other = t.gemm - projections - head  # shared experts, router, dense MLPs
        got["mla_block"] = t.attention + projections
        got["moe_overlap"] = t.moe + other + t.overlap  # the hidden part of the two streams belongs to it
        got["gemm"] = gemm - (projections if "mla_block" in classes else 0) - (other if "moe_overlap" in classes else 0)
    return got


def predict(row: dict, cal):  # noqa: ANN001, ANN201
    from kvplan.latency import step_latency

    c = row["case"]
    return step_latency(
        row["spec"],
        row["gpu"],
        c["isl"],
        phase=row["phase"],
        batch=c["batch"],
        tp=c["tp"],
        kv_dtype_name=row["kv"],
        weights_dtype=row["weights"],
        attention_flops=row["attention_flops"],
        constants=cal,
        expert_parallel=bool(c.get("ep")),
    )


def residuals(rows: list[dict], cal) -> list[float]:  # noqa: ANN001
    res = []
    for row in rows:
        if row["artifact"]:
            continue
        t = predict(row, cal)
        res.append(math.log(t.total / row["total_s"]))
        got = kvplan_classes(t, row, cal)
        for cls, aic in row["classes_s"].items():
            if aic > 1e-7 and got[cls] > 0:
                res.append(CLASS_WEIGHT * math.log(got[cls] / aic))
    return res


def fit(rows: list[dict], start, only: tuple[str, ...] = ()):  # noqa: ANN001, ANN201
    import numpy as np
    from scipy.optimize import least_squares

    fields = [f.name for f in dataclasses.fields(start) if f.name not in NAMES and (not only or f.name in only)]
    x0 = np.log([getattr(start, f) for f in fields])
    lo = np.full(len(fields), -25.0)
    # No kernel reaches more than 95 % of the datasheet peak or bandwidth (an efficiency at 1.0 would be a term the
    # data do not pin, not a measurement); scales and fixed costs are free.
    hi = np.array([math.log(MAX_EFF) if f.endswith("_eff") else 12.0 for f in fields])
    # A grouped expert GEMM is a batch of dense GEMMs: its asymptote stays at or below the dense GEMMs' peak share.
    if "moe_peak_eff" in fields:
        hi[fields.index("moe_peak_eff")] = math.log(start.gemm_peak_eff)

    def f(x):  # noqa: ANN001, ANN202
        return residuals(rows, dataclasses.replace(start, **dict(zip(fields, np.exp(x), strict=True))))

    sol = least_squares(f, np.clip(x0, lo + 1e-9, hi - 1e-9), bounds=(lo, hi), loss="soft_l1", f_scale=1.0)
    return dataclasses.replace(start, **{k: float(v) for k, v in zip(fields, np.exp(sol.x), strict=True)})


def errors(rows: list[dict], cal, *, artifacts: bool = True) -> dict:  # noqa: ANN001
    out = {}
    for phase in ("prefill", "decode"):
        e = [abs(math.log(predict(r, cal).total / r["total_s"])) for r in rows
             if r["phase"] == phase and (artifacts or not r["artifact"])]  # fmt: skip
        out[phase] = (statistics.median(e), max(e), len(e))
    return out


def _show(cal, only: tuple[str, ...] = ()) -> str:  # noqa: ANN001
    lines = []
    for f in dataclasses.fields(cal):
        v = getattr(cal, f.name)
        if f.name in NAMES or (only and f.name not in only):
            continue
        lines.append(f"        {f.name}={v:.4g},")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", choices=["vllm", "trtllm"])
    ap.add_argument("--per-engine", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated fields to refit, every other one held (default: all)")
    args = ap.parse_args(argv)
    try:
        import scipy  # noqa: F401
    except ImportError:
        print("scipy is not installed; pip install -e '.[bench]'")
        return 0
    from kvplan.latency import calibration

    engines = ["vllm", "trtllm"] if args.per_engine else [args.engine]
    for engine in engines:
        rows = load_cases(engine)
        start = calibration(engine or "vllm")
        before = errors(rows, start)
        only = tuple(f for f in args.only.split(",") if f)
        unknown = set(only) - {f.name for f in dataclasses.fields(start)}
        if unknown:
            ap.error(f"unknown Calibration fields {sorted(unknown)}")
        cal = fit(rows, start, only)
        after = errors(rows, cal)
        clean_before, clean_after = errors(rows, start, artifacts=False), errors(rows, cal, artifacts=False)
        flagged = sorted({r["case"]["model"] + " " + r["case"]["gpu"] + " b" + str(r["case"]["batch"])
                          for r in rows if r["artifact"]})  # fmt: skip
        print(f"# engine {engine or 'all'}: {len(rows) // 2} cases; not fitted (reference artifacts): {flagged}")
        for phase in ("prefill", "decode"):
            b, a = before[phase], after[phase]
            cb, ca = clean_before[phase], clean_after[phase]
            print(f"#  {phase}: median |ln| {b[0]:.3f} -> {a[0]:.3f}, worst {b[1]:.3f} -> {a[1]:.3f}; "
                  f"without the artifacts ({ca[2]}): worst {cb[1]:.3f} -> {ca[1]:.3f}")  # fmt: skip
        print(_show(cal, only))
    return 0


if __name__ == "__main__":
    sys.exit(main())

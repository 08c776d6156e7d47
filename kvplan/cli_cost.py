"""``kvplan cost`` (FLOPs, bytes, roofline latency; S2-Attn training) and ``kvplan rope`` (RoPE scaling)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from kvplan import report
from kvplan.cli import (
    BatchOpt,
    FormatOpt,
    GpuOpt,
    KvDtypeOpt,
    ModelArg,
    TpOpt,
    WeightsDtypeOpt,
    app,
    boundary,
    check_format,
    err,
    load_model,
    out,
    positive,
)
from kvplan.errors import InvalidInput

# ---- cost ----------------------------------------------------------------------------------------

COST_COLUMNS = [
    report.Column("context", "context", "int"),
    report.Column("phase", "phase"),
    report.Column("tokens", "tokens", "int"),
    report.Column("flops_linear", "linear FLOPs", "float"),
    report.Column("flops_attention", "attention FLOPs (L^2)", "float"),
    report.Column("attention_share", "attn share", "float"),
    report.Column("bytes_total", "bytes moved", "bytes"),
    report.Column("arithmetic_intensity", "FLOP/byte", "float"),
    report.Column("time_s", "time (s)", "float"),
    report.Column("metric", "metric"),
    report.Column("tokens_per_s", "tokens/s", "float"),
    report.Column("bound", "bound"),
]

TRAINING_COLUMNS = [
    report.Column("context", "context", "int"),
    report.Column("attention", "attention"),
    report.Column("group", "group", "int"),
    report.Column("attention_flops_step", "attention FLOPs/step", "float"),
    report.Column("vs_first", "x first full", "float"),
    report.Column("linear_flops_step", "linear FLOPs/step", "float"),
    report.Column("activation_bytes", "activations (stored scores)", "bytes"),
    report.Column("activation_bytes_flash", "activations (flash)", "bytes"),
]


@app.command()
def cost(
    model: ModelArg,
    gpu: GpuOpt = None,
    context: Annotated[str, typer.Option("--context", "-c", help="lengths, e.g. 4k,32k,128k")] = "4k,32k,128k",
    batch: BatchOpt = 1,
    tp: TpOpt = 1,
    kv_dtype: KvDtypeOpt = None,
    weights_dtype: WeightsDtypeOpt = None,
    compute: Annotated[str, typer.Option(help="tensor-core peak to use: bf16 | fp8")] = "bf16",
    compute_eff: Annotated[float, typer.Option(help="fraction of peak FLOPs reached")] = 0.7,
    memory_eff: Annotated[float, typer.Option(help="fraction of peak memory bandwidth reached")] = 0.9,
    interconnect_eff: Annotated[float, typer.Option(help="fraction of interconnect bandwidth reached")] = 1.0,
    engine: Annotated[str, typer.Option(help="whose kernel efficiencies the latency uses: vllm | trtllm")] = "vllm",
    expert_parallel: Annotated[
        bool, typer.Option("--expert-parallel", help="MoE experts split whole across the TP ranks (calibrated)")
    ] = False,
    latency: Annotated[
        str, typer.Option("--latency", help="calibrated (per-operation, fitted) | roofline (whole step, --*-eff)")
    ] = "calibrated",
    training: Annotated[bool, typer.Option("--training", help="training step: attention FLOPs, activations")] = False,
    attention: Annotated[str, typer.Option(help="with --training: full | s2 (LongLoRA shifted sparse)")] = "full",
    plot: Annotated[Optional[Path], typer.Option("--plot", help="also draw memory and time to this PNG")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Prefill and decode FLOPs, bytes moved and roofline time (TTFT, TPOT, tokens/s) per context."""
    with boundary():
        from kvplan.units import parse_lengths

        fmt = check_format(fmt)
        spec = load_model(model)
        contexts = parse_lengths(context)
        positive(batch, "batch")
        if training:
            _training(spec, contexts, batch=batch, attention=attention, fmt=fmt)
            return
        if gpu is None:
            raise InvalidInput("'kvplan cost' needs --gpu NAME (see 'kvplan gpus'), except with --training")
        _inference(
            spec,
            contexts,
            gpu=gpu,
            batch=batch,
            tp=tp,
            kv_dtype=kv_dtype,
            weights_dtype=weights_dtype,
            compute=compute,
            effs=(compute_eff, memory_eff, interconnect_eff),
            engine=engine,
            latency=latency,
            expert_parallel=expert_parallel,
            plot=plot,
            fmt=fmt,
        )


def _inference(spec: Any, contexts: list[int], *, gpu: str, plot: Optional[Path], fmt: str, **kw: Any) -> None:
    from kvplan.cost import Efficiency
    from kvplan.cost import cost as run
    from kvplan.hardware import resolve_gpu

    if plot is not None:
        from kvplan.plot import check_plot_path

        check_plot_path(plot)
    device = resolve_gpu(gpu)
    compute, memory, link = kw["effs"]
    eff = Efficiency(compute=compute, memory=memory, interconnect=link)
    rows = run(
        spec,
        device,
        contexts,
        batch=kw["batch"],
        tp=kw["tp"],
        kv_dtype_name=kw["kv_dtype"],
        weights_dtype=kw["weights_dtype"],
        compute_dtype=kw["compute"],
        efficiency=eff,
        engine=kw["engine"],
        model=kw["latency"],
        expert_parallel=kw["expert_parallel"],
    )
    flat = []
    for row in rows:
        for phase, metric in ((row.prefill, "TTFT"), (row.decode, "TPOT")):
            d = {"model": spec.name, "gpu": device.name, **phase.summary(), "metric": metric}
            d["tokens_per_s"] = phase.tokens / phase.time_s
            flat.append(d)
    if kw["latency"] == "calibrated":
        basis = f"time = per-operation latency with {rows[0].decode.engine} kernel efficiencies (kvplan.latency)"
    else:
        basis = f"time = whole-step roofline, {kw['compute']} peak x {eff.compute}, bandwidth x {eff.memory}"
    title = (
        f"{spec.name} on {kw['tp']}x {device.name}: batch {kw['batch']}; {basis}; per GPU; "
        "TTFT = prefill of the batch, TPOT = one decode step (GiB = 2^30)"
    )
    out(report.render(flat, COST_COLUMNS, fmt, title=title))
    if plot is not None:
        _cost_plot(spec, device, contexts, rows, plot, kw)


def _cost_plot(spec: Any, device: Any, contexts: list[int], rows: list[Any], path: Path, kw: dict[str, Any]) -> None:
    from kvplan.estimator import estimate
    from kvplan.plot import plot_context

    mem = estimate(
        spec, contexts, batch=kw["batch"], kv_dtype_name=kw["kv_dtype"], weights_dtype=kw["weights_dtype"], tp=kw["tp"]
    )
    plot_context(
        path,
        title=f"{spec.name} on {device.name}, batch {kw['batch']}, TP {kw['tp']}",
        contexts=contexts,
        memory={
            "weights + KV": [r.total_bytes_per_gpu for r in mem],
            "KV cache": [r.kv_bytes_per_gpu for r in mem],
        },
        capacity_bytes=device.memory_bytes,
        capacity_label=device.name,
        times={"TTFT (prefill)": [r.ttft_s for r in rows], "TPOT (decode step)": [r.tpot_s for r in rows]},
    )
    err(f"wrote {path}")


def estimate_plot(spec: Any, rows: list[Any], path: Path, *, gpu: Any = None) -> None:
    """``kvplan estimate --plot``: weights + KV and KV alone per GPU against context, GPU memory as a line."""
    from kvplan.plot import check_plot_path, plot_context

    check_plot_path(path)
    plot_context(
        path,
        title=f"{spec.name}, batch {rows[0].batch}, KV {rows[0].kv_dtype}, TP {rows[0].tp} PP {rows[0].pp}",
        contexts=[r.context for r in rows],
        memory={"total per GPU": [r.total_bytes_per_gpu for r in rows], "KV cache": [r.kv_bytes_per_gpu for r in rows]},
        capacity_bytes=gpu.memory_bytes if gpu else None,
        capacity_label=gpu.name if gpu else "GPU memory",
    )
    err(f"wrote {path}")


def _training(spec: Any, contexts: list[int], *, batch: int, attention: str, fmt: str) -> None:
    from kvplan.cost import training_attention

    modes = ["full", "s2"] if attention == "s2" else [attention]
    rows = [training_attention(spec, n, batch=batch, attention=m).model_dump() for n in contexts for m in modes]
    first = next(r for r in rows if r["attention"] == "full")["attention_flops_step"]
    for r in rows:
        r["vs_first"] = r["attention_flops_step"] / first if first else None
    title = (
        f"{spec.name} training step (forward + 2x backward), batch {batch}; S2-Attn group = context/4; "
        "activations per Korthikanti et al. 2022 eq. 1, 16-bit, no recomputation (GiB = 2^30)"
    )
    out(report.render(rows, TRAINING_COLUMNS, fmt, title=title))


# ---- rope ----------------------------------------------------------------------------------------

ROPE_COLUMNS = [
    report.Column("label", "method"),
    report.Column("factor", "factor", "float"),
    report.Column("original_context", "original", "int"),
    report.Column("max_context", "new context", "int"),
    report.Column("attention_factor", "attn factor", "float"),
    report.Column("kept_pairs", "kept", "int"),
    report.Column("blended_pairs", "blended", "int"),
    report.Column("interpolated_pairs", "interpolated", "int"),
    report.Column("longest_wavelength", "longest wavelength", "float"),
    report.Column("effective_theta", "theta", "float"),
    report.Column("vllm", "vLLM len", "int"),
    report.Column("sglang", "SGLang len", "int"),
]

ROPE_COST_COLUMNS = [
    report.Column("label", "method"),
    report.Column("context", "context", "int"),
    report.Column("kv_bytes_per_sequence", "KV / seq", "bytes"),
    report.Column("prefill_attention_flops", "prefill attention FLOPs", "float"),
    report.Column("prefill_flops", "prefill FLOPs", "float"),
    report.Column("ttft_s", "TTFT (s)", "float"),
    report.Column("tpot_s", "TPOT (s)", "float"),
]


@app.command()
def rope(
    model: ModelArg,
    method: Annotated[
        Optional[str], typer.Option(help="default | linear | ntk | dynamic | yarn | llama3 | longrope")
    ] = None,
    factor: Annotated[Optional[float], typer.Option(help="stretch factor (new context = factor x original)")] = None,
    original_context: Annotated[
        Optional[str], typer.Option(help="pre-extension context (default: the model's)")
    ] = None,
    compare: Annotated[bool, typer.Option("--compare", help="every method side by side")] = False,
    length: Annotated[Optional[str], typer.Option(help="dynamic NTK / LongRoPE: evaluate at this length")] = None,
    beta_fast: Annotated[Optional[float], typer.Option(help="yarn: beta_fast (default 32)")] = None,
    beta_slow: Annotated[Optional[float], typer.Option(help="yarn: beta_slow (default 1)")] = None,
    mscale: Annotated[Optional[float], typer.Option(help="yarn: mscale (DeepSeek)")] = None,
    mscale_all_dim: Annotated[Optional[float], typer.Option(help="yarn: mscale_all_dim (DeepSeek)")] = None,
    truncate: Annotated[Optional[bool], typer.Option("--truncate/--no-truncate", help="yarn: round the ramp")] = None,
    attention_factor: Annotated[Optional[float], typer.Option(help="yarn: explicit attention factor")] = None,
    gpu: Annotated[Optional[str], typer.Option(help="also time prefill/decode at both lengths on this GPU")] = None,
    batch: Annotated[int, typer.Option("--batch", "-b", help="sequences for memory and cost")] = 1,
    fmt: FormatOpt = "table",
) -> None:
    """RoPE scaling: frequencies, attention factor, new context, cost, and the rope_scaling block to paste."""
    with boundary():
        from kvplan.rope import METHODS
        from kvplan.units import parse_length

        fmt = check_format(fmt)
        spec = load_model(model)
        positive(batch, "batch")
        if factor is not None and not 1 <= factor < float("inf"):
            raise InvalidInput(f"invalid RoPE factor {factor!r}; expected a finite number of at least 1")
        if method is not None and method not in METHODS:
            raise InvalidInput(f"unknown RoPE method {method!r}; expected one of {', '.join(METHODS)}")
        yarn = {
            "beta_fast": beta_fast,
            "beta_slow": beta_slow,
            "mscale": mscale,
            "mscale_all_dim": mscale_all_dim,
            "truncate": truncate,
            "attention_factor": attention_factor,
        }
        report_ = _rope_report(
            spec,
            methods=_methods(spec, method, compare),
            factor=factor,
            original=parse_length(original_context) if original_context else None,
            length=parse_length(length) if length else None,
            yarn={k: v for k, v in yarn.items() if v is not None},
            gpu=gpu,
            batch=batch,
        )
        _render_rope(report_, fmt)


def _methods(spec: Any, method: Optional[str], compare: bool) -> list[str]:
    if compare:
        return ["default", "linear", "ntk", "dynamic", "yarn", "llama3", "longrope"]
    return [method] if method else []


def _rope_report(spec: Any, *, methods: list[str], factor: Optional[float], original: Optional[int], **kw: Any) -> dict:
    from kvplan.rope import current, extend, pairs_longer_than

    scaling = spec.rope.scaling if spec.rope else None
    now = current(spec, seq_len=kw["length"])
    if methods == ["default"]:
        factor = 1.0
    if methods and factor is None:
        if not scaling or "factor" not in scaling:
            raise InvalidInput("give --factor (e.g. --factor 4): the new context is factor x the original context")
        factor = float(scaling["factor"])
    l0 = original or spec.original_max_position_embeddings
    shown, skipped = [], []
    for m in methods:
        if m == "longrope" and not _has_longrope_lists(scaling):
            skipped.append("longrope: needs the model's searched long_factor/short_factor lists (none in this spec)")
            continue
        options = kw["yarn"] if m == "yarn" else {}
        shown.append(extend(spec, m, factor, original=l0, seq_len=kw["length"], **options))
    new = int(round(factor * l0)) if factor else spec.max_position_embeddings
    cost_rows = _rope_costs(spec, shown or [now], l0, new, gpu=kw["gpu"], batch=kw["batch"])
    return {
        "model": spec.name,
        "rotary_dim": now.result.rotary_dim,
        "theta": now.result.theta,
        "max_position_embeddings": spec.max_position_embeddings,
        "original_context": l0,
        "pairs_longer_than_original": pairs_longer_than(now.result.theta, now.result.rotary_dim, l0),
        "factor": factor,
        "max_context": new if methods else now.result.max_context,
        "current": _ext_dict(now, "current"),
        "methods": [_ext_dict(e, e.result.method) for e in shown],
        "costs": cost_rows,
        "skipped": skipped,
    }


def _has_longrope_lists(scaling: Optional[dict]) -> bool:
    return bool(scaling) and isinstance(scaling.get("long_factor"), list)


def _ext_dict(ext: Any, label: str) -> dict:
    r = ext.result
    waves = r.wavelengths
    return {
        "label": label if label != "current" else f"current ({r.method})",
        "method": r.method,
        "factor": r.factor,
        "original_context": r.original_context,
        "max_context": r.max_context,
        "attention_factor": r.attention_factor,
        "rotary_dim": r.rotary_dim,
        "kept_pairs": r.kept_pairs,
        "blended_pairs": r.blended_pairs,
        "interpolated_pairs": r.interpolated_pairs,
        "shortest_wavelength": min(waves) if waves else None,
        "longest_wavelength": max(waves) if waves else None,
        "effective_theta": r.effective_theta,
        "evaluated_at": r.evaluated_at,
        "engine_max_context": ext.engines,
        "vllm": ext.engines["vllm"],
        "sglang": ext.engines["sglang"],
        "transformers": ext.engines["transformers"],
        "config_patch": ext.config_patch,
        "notes": list(r.notes),
        "inv_freq": list(r.inv_freq),
    }


def _rope_costs(spec: Any, exts: list[Any], l0: int, new: int, *, gpu: Optional[str], batch: int) -> list[dict]:
    """KV and cost at the original and new lengths. The cost does not depend on the method."""
    from kvplan.cost import cost as run
    from kvplan.cost import step_flops
    from kvplan.memory import cache_plan

    plan = cache_plan(spec)
    timed = {}
    if gpu:
        from kvplan.hardware import resolve_gpu

        timed = {r.context: r for r in run(spec, resolve_gpu(gpu), sorted({l0, new}), batch=batch)}
    rows = []
    for label, length in (("original", l0), ("extended", new)):
        flops = step_flops(spec, length, phase="prefill", batch=batch)
        row = {
            "label": label,
            "context": length,
            "kv_bytes_per_sequence": plan.bytes_per_sequence(length),
            "prefill_attention_flops": flops.attention,
            "prefill_flops": flops.total,
            "ttft_s": timed[length].ttft_s if length in timed else None,
            "tpot_s": timed[length].tpot_s if length in timed else None,
        }
        rows.append(row)
    return rows


def _render_rope(rep: dict, fmt: str) -> None:
    import json

    if fmt == "json":
        out(json.dumps(rep, indent=2))
        return
    table = [rep["current"], *rep["methods"]]
    if fmt == "csv":
        out(report.render([{k: v for k, v in r.items() if k != "inv_freq"} for r in table], ROPE_COLUMNS, "csv"))
        return
    title = (
        f"{rep['model']}: rotary dim {rep['rotary_dim']}, theta {rep['theta']:g}, "
        f"max_position_embeddings {rep['max_position_embeddings']}; counts are frequency pairs; "
        f"wavelength in tokens; {rep['pairs_longer_than_original']} of {rep['rotary_dim'] // 2} pairs turn less "
        f"than once in the original {rep['original_context']:,} tokens"
    )
    out(report.render(table, ROPE_COLUMNS, fmt, title=title))
    out("")
    out(report.render(rep["costs"], ROPE_COST_COLUMNS, fmt, title="memory and cost at the original and new lengths"))
    for r in table:
        for note in r["notes"]:
            err(f"note: {r['label']}: {note}")
    for line in rep["skipped"]:
        err(f"note: skipped {line}")
    for r in rep["methods"]:
        out("")
        out(f"{r['method']}: add to config.json")
        out(json.dumps(r["config_patch"], indent=2))

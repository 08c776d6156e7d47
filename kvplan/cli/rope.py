"""``kvplan rope``: RoPE scaling methods, their frequencies, new length, memory and cost."""

from typing import Annotated, Any, Optional

import typer

from kvplan import report
from kvplan.cli.common import (
    FormatOpt,
    ModelArg,
    app,
    boundary,
    check_format,
    err,
    load_model,
    out,
    positive,
)
from kvplan.errors import InvalidInput

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

"""``kvplan plan``: the configurations that serve N users at L tokens, fewest GPUs first."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from kvplan import report
from kvplan.cli.common import (
    EngineOpt,
    FormatOpt,
    ModelArg,
    app,
    boundary,
    check_format,
    out,
)

# ---- plan -----------------------------------------------------------------------------------------

PLAN_COLUMNS = [
    report.Column("gpu", "GPU"),
    report.Column("gpus", "GPUs", "int"),
    report.Column("tp", "TP", "int"),
    report.Column("pp", "PP", "int"),
    report.Column("replicas", "replicas", "int"),
    report.Column("weights_dtype", "weights"),
    report.Column("kv_dtype", "KV"),
    report.Column("sequences_per_replica", "seqs / replica", "int"),
    report.Column("total_sequences", "seqs total", "int"),
    report.Column("headroom_bytes", "headroom / GPU", "bytes"),
]


@app.command()
def plan(
    model: ModelArg,
    users: Annotated[int, typer.Option(help="concurrent sequences to serve")],
    context: Annotated[str, typer.Option("--context", "-c", help="tokens per sequence, e.g. 32k")],
    gpus: Annotated[Optional[str], typer.Option(help="GPU types to consider, e.g. h100-sxm,a100-80gb,l4")] = None,
    engine: EngineOpt = "vllm",
    weights_dtype: Annotated[Optional[str], typer.Option(help="weight dtypes to try, e.g. bf16,fp8")] = None,
    kv_dtype: Annotated[Optional[str], typer.Option(help="KV dtypes to try, e.g. bf16,fp8")] = None,
    gpu_memory_utilization: Annotated[Optional[float], typer.Option(help="vLLM fraction (0, 1]")] = None,
    max_gpus: Annotated[int, typer.Option(help="largest GPU count to list")] = 64,
    top: Annotated[int, typer.Option(help="rows to show (0: all)")] = 20,
    fmt: FormatOpt = "table",
) -> None:
    """GPU type, count, TP and dtypes that serve N users at L tokens, fewest GPUs first."""
    with boundary():
        from kvplan.capacity import capacity as run
        from kvplan.capacity import setup
        from kvplan.catalog import resolve_model
        from kvplan.engines import Settings
        from kvplan.hardware import bundled_gpus, resolve_gpu
        from kvplan.launch import launch_args, launch_command, launch_notes, model_ref
        from kvplan.planner import plan as run_plan
        from kvplan.units import parse_length

        fmt = check_format(fmt)
        spec = resolve_model(model)
        length = parse_length(context)
        chosen = (
            [resolve_gpu(g.strip()) for g in gpus.split(",") if g.strip()] if gpus else list(bundled_gpus().values())
        )
        settings = Settings(gpu_memory_utilization=gpu_memory_utilization)
        memo: dict = {}
        split = lambda v: [x.strip() for x in v.split(",") if x.strip()] if v else None  # noqa: E731
        rows = run_plan(spec, chosen, users=users, context=length, engine=engine, weights_dtypes=split(weights_dtype),
                        kv_dtypes=split(kv_dtype), settings=settings, max_gpus=max_gpus, memo=memo)  # fmt: skip
        rows = rows[:top] if top > 0 else rows
        ref = model_ref(spec.source, spec.name)
        dicts = []
        for row in rows:
            s = setup(spec, resolve_gpu(row.gpu), engine=engine, tp=row.tp, pp=row.pp, gpus=row.gpus,
                      kv_dtype_name=row.kv_dtype,
                      weights_dtype=row.weights_dtype, settings=settings, memo=memo)  # fmt: skip
            r = run(s, length, suggest=False)
            d = row.to_dict()
            d["launch"] = launch_args(r, model=ref, sequences=-(-users // row.replicas))
            d["launch_command"] = launch_command(r, model=ref, sequences=-(-users // row.replicas))
            d["launch_notes"] = launch_notes(r)
            dicts.append(d)
        if fmt == "json":
            out(report.render_object({"model": spec.name, "users": users, "context": length, "plans": dicts}, "json"))
            return
        if fmt == "csv":
            out(report.render(dicts, PLAN_COLUMNS, "csv"))
            return
        title = f"{spec.name}: {users} concurrent sequences x {length:,} tokens on {engine} (GiB = 2^30)"
        if not dicts:
            out(f"{title}\n\nno configuration up to {max_gpus} GPUs fits; try --max-gpus or more GPU types")
            return
        out(report.render(dicts, PLAN_COLUMNS, fmt, title=title))
        out("")
        out(f"launch (first row): {dicts[0]['launch_command']}")
        for note in dicts[0].get("launch_notes", []):
            out(f"  note: {note}")

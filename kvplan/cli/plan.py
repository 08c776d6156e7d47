"""``kvplan plan``: the configurations that serve N users at L tokens, fewest GPUs first."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from kvplan import report
from kvplan.cli.common import EngineOpt, FormatOpt, ModelArg, app, boundary, check_format, load_model, out
from kvplan.errors import InvalidInput

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
    users: Annotated[Optional[int], typer.Option(help="concurrent sequences to serve")] = None,
    context: Annotated[Optional[str], typer.Option("--context", "-c", help="tokens per sequence, e.g. 32k")] = None,
    gpus: Annotated[Optional[str], typer.Option(help="GPU types to consider, e.g. h100-sxm,a100-80gb,l4")] = None,
    rate: Annotated[Optional[float], typer.Option(help="latency targets: requests per second to serve")] = None,
    input_len: Annotated[
        str, typer.Option("--input", help="with --rate: prompt tokens, 2k or 2k:4k (mean:p90)")
    ] = "2k",
    output_len: Annotated[str, typer.Option("--output", help="with --rate: output tokens, 512 or 512:1k")] = "512",
    ttft: Annotated[Optional[str], typer.Option(help="with --rate: time to first token target, e.g. 1s")] = None,
    tpot: Annotated[Optional[str], typer.Option(help="with --rate: time per output token target, e.g. 50ms")] = None,
    percentile: Annotated[str, typer.Option(help="with --rate: targets hold for the mean | p90")] = "mean",
    disaggregated: Annotated[bool, typer.Option(help="with --rate: also size prefill/decode pools")] = False,
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
        from kvplan.engines import Settings
        from kvplan.hardware import bundled_gpus, resolve_gpu
        from kvplan.launch import launch_args, launch_command, launch_notes, model_ref
        from kvplan.planner import plan as run_plan
        from kvplan.planner import why_nothing_fits
        from kvplan.units import parse_length, split_list

        fmt = check_format(fmt)
        spec = load_model(model)
        split = lambda v: split_list(v, "dtype list", example="bf16,fp8") if v is not None else None  # noqa: E731
        if rate is not None:
            from kvplan.cli.slo import run_targets

            names = split_list(gpus, "--gpus", example="h100-sxm,h200") if gpus is not None else None
            names = names or ["h100-sxm", "h200", "b200"]  # the GPUs the latency fit covers
            opts = dict(rate=rate, input=input_len, output=output_len, ttft=ttft, tpot=tpot, percentile=percentile,
                        disaggregated=disaggregated)  # fmt: skip
            out(run_targets(spec, [resolve_gpu(g) for g in names], engine=engine, weights=split(weights_dtype),
                            kv=split(kv_dtype), opts=opts, max_gpus=max_gpus, top=top, fmt=fmt))  # fmt: skip
            return
        if users is None or context is None:
            raise InvalidInput("'kvplan plan' needs --users N --context L, or --rate R with latency targets")
        length = parse_length(context)
        chosen = (
            [resolve_gpu(g) for g in split_list(gpus, "--gpus", example="h100-sxm,l4")]
            if gpus is not None
            else list(bundled_gpus().values())
        )
        settings = Settings(gpu_memory_utilization=gpu_memory_utilization)
        memo: dict = {}
        rows = run_plan(spec, chosen, users=users, context=length, engine=engine, weights_dtypes=split(weights_dtype),
                        kv_dtypes=split(kv_dtype), settings=settings, max_gpus=max_gpus, memo=memo)  # fmt: skip
        if top < 0:
            raise InvalidInput(f"invalid --top {top!r}; expected 0 (all rows) or more")
        rows = rows[:top] if top > 0 else rows
        ref = model_ref(spec.source, spec.name)
        by_name = {g.name: g for g in chosen}  # a GPU YAML's card has no catalog name to look up again
        dicts = []
        for row in rows:
            s = setup(spec, by_name[row.gpu], engine=engine, tp=row.tp, pp=row.pp, gpus=row.gpus,
                      kv_dtype_name=row.kv_dtype,
                      weights_dtype=row.weights_dtype, settings=settings, memo=memo)  # fmt: skip
            r = run(s, length, suggest=False)
            d = row.to_dict()
            d["launch"] = launch_args(r, model=ref, sequences=-(-users // row.replicas))
            d["launch_command"] = launch_command(r, model=ref, sequences=-(-users // row.replicas))
            d["launch_notes"] = launch_notes(r)
            dicts.append(d)
        reason = None
        if not dicts:
            reason = why_nothing_fits(spec, chosen, users=users, context=length, engine=engine,
                                      kv_dtypes=split(kv_dtype), weights_dtypes=split(weights_dtype),
                                      settings=settings, max_gpus=max_gpus)  # fmt: skip
        if fmt == "json":
            doc = {"model": spec.name, "users": users, "context": length, "plans": dicts}
            if reason:
                doc["reason"] = reason
            out(report.render_object(doc, "json"))
            return
        if fmt == "csv":
            out(report.render(dicts, PLAN_COLUMNS, "csv"))
            return
        title = f"{spec.name}: {users} concurrent sequences x {length:,} tokens on {engine} (GiB = 2^30)"
        if not dicts:
            out(f"{title}\n\nnothing fits: {reason}")
            return
        out(report.render(dicts, PLAN_COLUMNS, fmt, title=title))
        if dicts[0]["launch_command"] is None:  # the ideal layout and transformers have no command line
            return
        out("")
        out(f"launch (first row): {dicts[0]['launch_command']}")
        for note in dicts[0].get("launch_notes", []):
            out(f"  note: {note}")

"""``kvplan estimate``: KV cache, weights and total per GPU at each context length (ideal layout)."""

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from kvplan import report
from kvplan.cli.common import (
    BatchOpt,
    CheckpointOpt,
    FormatOpt,
    GpuOpt,
    KvDtypeOpt,
    MambaCacheDtypeOpt,
    MambaSsmCacheDtypeOpt,
    ModelArg,
    PpOpt,
    TpOpt,
    WeightsDtypeOpt,
    app,
    boundary,
    check_format,
    err,
    load_with_weights,
    lookup_gpu,
    out,
    positive,
    weights_notes,
)

ESTIMATE_COLUMNS = [
    report.Column("context", "context", "int"),
    report.Column("kv_bytes_per_sequence", "KV / seq", "bytes"),
    report.Column("kv_bytes_per_gpu", "KV / GPU", "bytes"),
    report.Column("kv_bytes_total", "KV total", "bytes"),
    report.Column("weights_bytes_per_gpu", "weights / GPU", "bytes"),
    report.Column("total_bytes_per_gpu", "total / GPU", "bytes"),
    report.Column("gpu_memory_bytes", "GPU memory", "bytes"),
    report.Column("fits", "fits", "bool"),
    report.Column("headroom_bytes", "headroom", "bytes"),
    report.Column("flag", "note"),
]


@app.command()
def estimate(
    model: ModelArg,
    context: Annotated[str, typer.Option("--context", "-c", help="lengths, e.g. 4k,32k,128k")] = "4k,32k,128k",
    batch: BatchOpt = 1,
    kv_dtype: KvDtypeOpt = None,
    weights_dtype: WeightsDtypeOpt = None,
    gpu: GpuOpt = None,
    tp: TpOpt = 1,
    pp: PpOpt = 1,
    overhead: Annotated[str, typer.Option(help="memory reserved per GPU beyond weights and KV, e.g. 2GiB")] = "0",
    mamba_ssm_cache_dtype: MambaSsmCacheDtypeOpt = None,
    mamba_cache_dtype: MambaCacheDtypeOpt = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="also draw memory against context to this PNG")] = None,
    force: Annotated[bool, typer.Option(help="overwrite an existing --plot file")] = False,
    checkpoint: CheckpointOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """KV cache, weights and total memory per GPU at each context length (ideal layout)."""
    with boundary():
        from kvplan.estimator import estimate as run
        from kvplan.units import parse_lengths, parse_size

        fmt = check_format(fmt)
        if plot is not None:
            from kvplan.plot import check_plot_path

            check_plot_path(plot, force=force)  # before any output: a bad path or a missing extra ends here
        resolved, stored = load_with_weights(model, weights_dtype=weights_dtype, checkpoint=checkpoint)
        spec = resolved.spec
        weights = weights_dtype or stored
        rows = run(
            spec,
            parse_lengths(context),
            batch=positive(batch, "batch"),
            kv_dtype_name=kv_dtype,
            weights_dtype=weights,
            tp=tp,
            pp=pp,
            gpu=lookup_gpu(gpu) if gpu else None,
            overhead_bytes=parse_size(overhead),
            mamba_ssm_cache_dtype=mamba_ssm_cache_dtype,
            mamba_cache_dtype=mamba_cache_dtype,
        )
        dicts = [r.model_dump() for r in rows]
        for d in dicts:
            d["flag"] = "beyond trained context" if d["beyond_trained_context"] else ""
        columns = ESTIMATE_COLUMNS if gpu else [c for c in ESTIMATE_COLUMNS if c.key not in _GPU_KEYS]
        if fmt in ("json", "csv"):
            for d in dicts:
                d.pop("flag")
        first = rows[0]
        title = (
            f"{spec.name}: batch {first.batch}, KV {first.kv_dtype}, weights {first.weights_dtype}, "
            f"TP {tp} PP {pp}; KV {first.kv_bytes_per_token:,} bytes/token (GiB = 2^30)"
        )
        out(report.render(dicts, columns, fmt, title=title))
        for r in rows:
            if r.note and fmt in ("table", "markdown"):
                err(f"note: {r.note}")
        weights_notes(resolved, stored, weights_dtype=weights_dtype)
        if first.kv_replication_note and fmt in ("table", "markdown"):
            err(f"note: {first.kv_replication_note}")
        if plot is not None:
            estimate_plot(spec, rows, plot, gpu=lookup_gpu(gpu) if gpu else None)


_GPU_KEYS = {"gpu_memory_bytes", "fits", "headroom_bytes"}


def estimate_plot(spec: Any, rows: list[Any], path: Path, *, gpu: Any = None) -> None:
    """``kvplan estimate --plot``: weights + KV and KV alone per GPU against context, GPU memory as a line."""
    from kvplan.hardware import usable_memory_bytes
    from kvplan.plot import plot_context

    plot_context(  # the command checked the path (and --force) before any work
        path,
        title=f"{spec.name}, batch {rows[0].batch}, KV {rows[0].kv_dtype}, TP {rows[0].tp} PP {rows[0].pp}",
        contexts=[r.context for r in rows],
        memory={"total per GPU": [r.total_bytes_per_gpu for r in rows], "KV cache": [r.kv_bytes_per_gpu for r in rows]},
        capacity_bytes=usable_memory_bytes(gpu) if gpu else None,  # the figure estimate and capacity use
        capacity_label=gpu.name if gpu else "GPU memory",
    )
    err(f"wrote {path}")

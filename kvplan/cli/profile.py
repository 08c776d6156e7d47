"""``kvplan profile``: build the model in torch, allocate its caches, run it, compare with the estimate."""

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from kvplan import report
from kvplan.cli.common import BatchOpt, FormatOpt, ModelArg, app, boundary, check_format, err, load_model, out
from kvplan.errors import InvalidInput

TERMS = ("weights", "kv_cache", "activation_peak", "non_torch", "total_peak")

TERM_COLUMNS = [
    report.Column("context", "context", "int"),
    report.Column("term", "term"),
    report.Column("estimated_bytes", "estimated", "bytes"),
    report.Column("measured_bytes", "measured", "bytes"),
    report.Column("difference_bytes", "difference", "bytes"),
    report.Column("difference_pct", "diff %", "float"),
]

RUN_COLUMNS = [
    report.Column("context", "context", "int"),
    report.Column("status", "status"),
    report.Column("layers", "layers built"),
    report.Column("prefill_tokens", "prefill tokens", "int"),
    report.Column("prefill_ms", "prefill ms", "int"),
    report.Column("decode_ms", "decode ms", "int"),
    report.Column("estimated_prefill_ms", "est. prefill ms", "int"),
    report.Column("estimated_decode_ms", "est. decode ms", "int"),
    report.Column("cuda_context_bytes", "CUDA context", "bytes"),
    report.Column("note", "note"),
]


@app.command()
def profile(
    model: ModelArg,
    context: Annotated[str, typer.Option("--context", "-c", help="lengths, e.g. 4k,32k")] = "4k",
    batch: BatchOpt = 1,
    kv_dtype: Annotated[
        Optional[str],
        typer.Option(help="fp32 bf16 fp16 fp8 fp8_e4m3 fp8_e5m2 int8 (int4 q8_0 q4_0 nvfp4 fp4_e2m1: meta only)"),
    ] = None,
    device: Annotated[str, typer.Option(help="cuda | cpu | meta (shapes only, nothing allocated)")] = "cuda",
    layers: Annotated[
        Optional[int], typer.Option(help="build K layers covering every layer kind and extrapolate to full depth")
    ] = None,
    chunk: Annotated[Optional[str], typer.Option(help="prefill in chunks of N tokens, e.g. 2k")] = None,
    save: Annotated[
        Optional[Path], typer.Option(help="write the runs as JSON to this file (rewritten after each length)")
    ] = None,
    force: Annotated[bool, typer.Option(help="allocate beyond free memory; overwrite --save")] = False,
    gpu: Annotated[
        Optional[str], typer.Option(help="catalog GPU for the time estimate (default: matched from the device name)")
    ] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Measure weights, KV cache, activation peak, non-torch memory and time against the estimate."""
    with boundary():
        from kvplan.profile.run import Options, profile_model
        from kvplan.units import parse_length, parse_lengths

        fmt = check_format(fmt)
        spec = load_model(model)
        opts = Options(
            contexts=parse_lengths(context),
            batch=batch,
            kv_dtype=kv_dtype,
            device=device,
            layers=layers,
            chunk=parse_length(chunk) if chunk is not None else None,
            force=force,
            gpu=gpu,
        )
        if save is not None:  # its folder and --force checked before the profile runs
            from kvplan.checks import check_output_path

            check_output_path(save, force=force)
        done: list[dict[str, Any]] = []

        def keep(run: Any) -> None:  # --save is rewritten after every length: a stopped run keeps what it measured
            done.append(run.model_dump())
            if save is not None:
                _write(save, report.render(done, [], "json"), quiet=True)

        runs = [
            r.model_dump()
            for r in profile_model(spec, opts, progress=lambda m: err(f"kvplan profile: {m}"), on_run=keep)
        ]
        if save is not None:
            err(f"wrote {save}")
        if fmt == "json":
            out(report.render(runs, [], "json"))
            return
        rows = [row for run in runs for row in _term_rows(run)]
        if fmt == "csv":
            out(report.render(rows, TERM_COLUMNS, "csv"))
            return
        first = runs[0]
        title = (
            f"{spec.name} on {first['device_name']}: batch {first['batch']}, KV {first['kv_dtype']}, "
            f"weights {first['weights_dtype']}; difference = measured - estimated (GiB = 2^30)"
        )
        out(report.render(rows, TERM_COLUMNS, fmt, title=title))
        out("")
        out(report.render([_run_row(r) for r in runs], RUN_COLUMNS, fmt))


def _term_rows(run: dict[str, Any]) -> list[dict[str, Any]]:
    keep = ("model", "device", "context", "batch", "kv_dtype", "status", "extrapolated")
    base = {k: run[k] for k in keep}
    return [{**base, "term": term, **run[term]} for term in TERMS]


def _run_row(run: dict[str, Any]) -> dict[str, Any]:
    built = len(run["layers_built"])
    return {
        "context": run["context"],
        "status": run["status"].replace("_", " "),
        "layers": f"{built} of {run['num_layers']}" + (" (extrapolated)" if run["extrapolated"] else ""),
        "prefill_tokens": run["time"]["prefill_tokens"],
        "prefill_ms": _ms(run["time"]["prefill_ms"]),
        "decode_ms": _ms(run["time"]["decode_ms"]),
        "estimated_prefill_ms": _ms(run["time"]["estimated_prefill_ms"]),
        "estimated_decode_ms": _ms(run["time"]["estimated_decode_ms"]),
        "cuda_context_bytes": run["cuda_context_bytes"],
        "note": _note(run),
    }


def _note(run: dict[str, Any]) -> str:
    """The run's note, with the figures a human needs, in human units."""
    if run["status"] == "did_not_fit":
        peak = run["peak_bytes_so_far"]
        so_far = f", peak so far {report.human_bytes(peak)}" if peak is not None else ""
        return f"did not fit at {_length(run['context'])}{so_far} ({run['note']})"
    if run["status"] == "refused":
        need, free = run["needed_bytes"], run["free_bytes"]
        figures = f": needs {report.human_bytes(need)}, {report.human_bytes(free)} free" if need and free else ""
        chunk = "" if run["chunk"] else " prefill in pieces with --chunk N, or"
        return f"refused{figures};{chunk} pass --force to try anyway"
    time = run["time"]
    labels = [run["note"]] if run["note"] else []
    bound = [name for name in ("prefill", "decode") if time.get(f"{name}_launch_bound")]
    if bound:
        labels.append(f"{' and '.join(bound)} launch-bound (the GPU waited for the host)")
    if time.get("kv_dequantised") and run["status"] == "measured":
        labels.append(f"KV {run['kv_dtype']} read through a {run['weights_dtype']} copy (in the activation estimate)")
    labels += run.get("warnings") or []
    return "; ".join(labels)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _length(tokens: int) -> str:
    return f"{tokens // 1024}K" if tokens % 1024 == 0 else str(tokens)


def _write(path: Path, text: str, *, quiet: bool = False) -> None:
    """Write through a temporary file and a rename, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise InvalidInput(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    if not quiet:
        err(f"wrote {path}")

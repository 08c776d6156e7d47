"""``kvplan check-log``: an engine's startup log beside kvplan's figures, term by term."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kvplan import report
from kvplan.cli.common import (
    FormatOpt,
    app,
    boundary,
    check_format,
    err,
    out,
)

# ---- check-log ------------------------------------------------------------------------------------

CHECK_COLUMNS = [
    report.Column("term", "term"),
    report.Column("logged", "engine logged"),
    report.Column("predicted", "kvplan"),
    report.Column("difference", "difference"),
]


@app.command("check-log")
def check_log(
    file: Annotated[Path, typer.Argument(help="an engine startup log (vLLM, SGLang or llama.cpp)")],
    engine: Annotated[Optional[str], typer.Option("--engine", "-e", help="vllm | sglang | llamacpp")] = None,
    model: Annotated[Optional[str], typer.Option(help="model spec when the log does not name a bundled one")] = None,
    gpu: Annotated[Optional[str], typer.Option(help="GPU when the log does not say")] = None,
    weights_dtype: Annotated[Optional[str], typer.Option(help="checkpoint weights dtype (fp8, mxfp4, ...)")] = None,
    tp: Annotated[Optional[int], typer.Option("--tp", help="tensor parallel size when the log does not say")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Read a startup log; show the engine's memory figures beside kvplan's, term by term."""
    with boundary():
        from kvplan.logcheck import check_file

        fmt = check_format(fmt)
        result = check_file(file, engine=engine, model=model, gpu=gpu, weights_dtype=weights_dtype, tp=tp)
        for note in result.notes:
            err(f"note: {note}")
        if fmt == "json":
            out(report.render_object(result.to_dict(), "json"))
            return
        flags = ", ".join(f"{k}={v}" for k, v in result.flags.items() if k != "caches" and v is not None)
        title = f"{result.engine} log {file.name}: model {result.model or '?'}, GPU {result.gpu or '?'}"
        title += f"\nflags read: {flags or '-'}"
        out(report.render(result.rows, CHECK_COLUMNS, fmt, title=title))

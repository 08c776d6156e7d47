"""``kvplan check-log``: a failed start explained and fixed, or a startup log beside kvplan's figures."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from kvplan import report
from kvplan.cli.common import FormatOpt, app, boundary, check_format, err, out
from kvplan.errors import InvalidInput

# ---- check-log ------------------------------------------------------------------------------------

CHECK_COLUMNS = [
    report.Column("term", "term"),
    report.Column("logged", "engine logged"),
    report.Column("predicted", "kvplan"),
    report.Column("difference", "difference"),
]


@app.command("check-log")
def check_log(
    file: Annotated[
        str, typer.Argument(help="an engine startup log (vLLM, SGLang, llama.cpp, TensorRT-LLM); - for stdin")
    ],
    engine: Annotated[
        Optional[str],
        typer.Option("--engine", "-e", help="vllm | sglang | llamacpp | trtllm, or a release (vllm@0.19)"),
    ] = None,
    model: Annotated[Optional[str], typer.Option(help="model spec when the log does not name a bundled one")] = None,
    gpu: Annotated[Optional[str], typer.Option(help="GPU when the log does not say")] = None,
    weights_dtype: Annotated[Optional[str], typer.Option(help="checkpoint weights dtype (fp8, mxfp4, ...)")] = None,
    tp: Annotated[Optional[int], typer.Option("--tp", help="tensor parallel size when the log does not say")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Read a startup log: a failed start explained and fixed, else the engine's figures beside kvplan's."""
    with boundary():
        from kvplan.diagnose import diagnose_text
        from kvplan.logcheck import check_text

        fmt = check_format(fmt)
        text, name = _read_log(file)
        d = diagnose_text(text, engine=engine, model=model, gpu=gpu, weights_dtype=weights_dtype, tp=tp)
        if d.failed:
            for note in d.notes:
                err(f"note: {note}")
            if fmt == "json":
                out(report.render_object({"engine": d.engine, "model": d.model, "diagnosis": d.to_dict()}, "json"))
                return
            out(_render_diagnosis(d, name, fmt))
            return
        from kvplan.engines import LOG_READERS

        readers = [e.name for e in LOG_READERS[::-1]]
        if d.engine not in readers:
            raise InvalidInput(
                f"no failed start found in this {d.engine} log; kvplan compares {', '.join(readers[:-1])} and "
                f"{readers[-1]} startup logs term by term"
            )
        result = check_text(
            text,
            engine=engine if engine and "@" in engine else d.engine,
            model=model,
            gpu=gpu,
            weights_dtype=weights_dtype,
            tp=tp,
        )
        for note in result.notes:
            err(f"note: {note}")
        if fmt == "json":
            data = result.to_dict()
            data["diagnosis"] = d.to_dict()
            out(report.render_object(data, "json"))
            return
        flags = ", ".join(f"{k}={v}" for k, v in result.flags.items() if k != "caches" and v is not None)
        title = f"{result.engine} log {name}: model {result.model or '?'}, GPU {result.gpu or '?'}"
        title += f"\nflags read: {flags or '-'}"
        out(report.render(result.rows, CHECK_COLUMNS, fmt, title=title))


def _read_log(file: str) -> tuple[str, str]:
    """The log's text and a name for titles: a path, or ``-`` for standard input."""
    import sys

    if file == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(file).read_text(encoding="utf-8", errors="replace"), Path(file).name
    except OSError as exc:
        raise InvalidInput(f"cannot read {file!r}: {exc.strerror or exc}") from None


DIAGNOSIS_COLUMNS = [
    report.Column("term", "term"),
    report.Column("engine", "engine said"),
    report.Column("kvplan", "kvplan"),
    report.Column("difference", "difference"),
]


def _render_diagnosis(d, name: str, fmt: str) -> str:  # noqa: ANN001
    g = d.gpu
    where = f"{g.name} ({g.how}{': ' + g.evidence if g.evidence else ''})" if g.name else "? (not identified)"
    f = d.failure
    lines = [f"{d.engine} log {name}: model {d.model or '?'}, GPU {where}", f"FAILED START: {d.summary}"]
    lines.append(f"  engine said: {f.line}")
    if f.source:
        lines.append(f"  raised in:   {f.source}")
    if d.explanation:
        lines += [
            "",
            report.render(d.explanation, DIAGNOSIS_COLUMNS, fmt, title="the engine's arithmetic beside kvplan's"),
        ]
    if d.took_memory:
        lines.append(f"largest term: {d.took_memory}")
    if d.prescriptions:
        lines += ["", "changes that start, least given up first (each checked with kvplan capacity):"]
        for i, p in enumerate(d.prescriptions, 1):
            lines.append(f"{i}. {p.change}; gives up {p.gives_up}")
            lines.append(f"   launch: {p.launch_command}")
            lines.append(f"   check:  {p.check_command}")
    return "\n".join(lines)

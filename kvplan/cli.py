"""The ``kvplan`` command line: parse, call one library function, render. Nothing is computed here.

Each command is a declaration of ``Annotated`` options. Errors from the library
(:class:`KvplanError`, pydantic's ``ValidationError``) are caught at this boundary and printed as
one line per problem on stderr, with exit code 2 (bad input) or 1 (runtime failure).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from kvplan import report
from kvplan.errors import InvalidInput, KvplanError

app = typer.Typer(
    name="kvplan",
    help="KV-cache memory planner and capacity calculator for large language models.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},  # -h on every command, as most CLIs take it
)


def _version(value: bool) -> None:
    if value:
        from kvplan import __version__

        typer.echo(f"kvplan {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """KV-cache memory planner and capacity calculator for large language models."""


FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table | json | csv | markdown")]
# Options several commands share, declared once so their flags and help stay the same.
GpuOpt = Annotated[Optional[str], typer.Option(help="catalog name (see 'kvplan gpus') or a GPU YAML")]
BatchOpt = Annotated[int, typer.Option("--batch", "-b", help="concurrent sequences")]
TpOpt = Annotated[int, typer.Option("--tp", help="tensor parallel size")]
PpOpt = Annotated[int, typer.Option("--pp", help="pipeline parallel size")]
KvDtypeOpt = Annotated[
    Optional[str],
    typer.Option(
        help="KV-cache dtype: fp32 bf16 fp16 fp8 fp8_e4m3 fp8_e5m2 int8 int4 q8_0 q4_0 (default: the model's)"
    ),
]
WeightsDtypeOpt = Annotated[
    Optional[str], typer.Option(help="weights dtype: fp32 bf16 fp16 fp8 int8 int4 mxfp4 (default: the model's)")
]
ModelArg = Annotated[
    str, typer.Argument(help="bundled name (see 'kvplan models'), a spec YAML, a config.json or a folder holding one")
]


def err(message: str) -> None:
    """Diagnostics go to stderr, one line each."""
    typer.echo(message, err=True)


@contextmanager
def boundary() -> Iterator[None]:
    """Turn library errors into one line per problem and an exit code; never a traceback.
    Import notes (assumptions made reading a config.json) print as warnings, whatever the command."""
    import warnings

    from pydantic import ValidationError

    from kvplan.errors import ImportNote

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ImportNote)
            try:
                yield
            finally:
                for note in caught:
                    if issubclass(note.category, ImportNote):
                        err(f"kvplan: warning: {note.message}")
    except KvplanError as exc:
        for line in str(exc).splitlines() or ["error"]:
            err(f"kvplan: error: {line}")
        raise typer.Exit(exc.exit_code) from None
    except ValidationError as exc:
        from kvplan.catalog import format_validation_error

        for line in format_validation_error(exc, origin="input").splitlines():
            err(f"kvplan: error: {line}")
        raise typer.Exit(2) from None


def check_format(fmt: str) -> report.Format:
    """Case-insensitive, like model, GPU, engine and dtype names (``-f JSON`` is ``-f json``)."""
    key = fmt.strip().lower()
    if key not in report.FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; expected one of {', '.join(report.FORMATS)}")
    return key  # type: ignore[return-value]


def positive(value: int, what: str) -> int:
    """A count of sequences: the library's rule (:func:`kvplan.units.check_count`), checked before any work."""
    from kvplan.units import check_count

    return check_count(value, what)


def load_model(arg: str):  # noqa: ANN201
    """A MODEL argument resolved by the library; a note on stderr when a local path shadows a bundled name."""
    from kvplan.catalog import resolve_model, shadowed_name

    spec = resolve_model(arg)
    note = shadowed_name(arg)
    if note:
        err(f"note: {note}")
    return spec


def lookup_gpu(name: str):  # noqa: ANN201
    """A GPU by catalog name or YAML path; the GPU schema is built only when one is asked for."""
    from kvplan.hardware import resolve_gpu

    return resolve_gpu(name)


def out(text: str) -> None:
    typer.echo(text)


# ---- estimate ------------------------------------------------------------------------------

ESTIMATE_COLUMNS = [
    report.Column("context", "context", "int"),
    report.Column("kv_bytes_per_sequence", "KV / seq", "bytes"),
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
    plot: Annotated[Optional[Path], typer.Option("--plot", help="also draw memory against context to this PNG")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """KV cache, weights and total memory per GPU at each context length (ideal layout)."""
    with boundary():
        from kvplan.estimator import estimate as run
        from kvplan.units import parse_lengths, parse_size

        fmt = check_format(fmt)
        if plot is not None:
            from kvplan.plot import check_plot_path

            check_plot_path(plot)  # before any output: a bad path or a missing extra ends here
        spec = load_model(model)
        rows = run(
            spec,
            parse_lengths(context),
            batch=positive(batch, "batch"),
            kv_dtype_name=kv_dtype,
            weights_dtype=weights_dtype,
            tp=tp,
            pp=pp,
            gpu=lookup_gpu(gpu) if gpu else None,
            overhead_bytes=parse_size(overhead),
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
        if plot is not None:
            from kvplan.cli_cost import estimate_plot

            estimate_plot(spec, rows, plot, gpu=lookup_gpu(gpu) if gpu else None)


_GPU_KEYS = {"gpu_memory_bytes", "fits", "headroom_bytes"}


# ---- models / show -------------------------------------------------------------------------

MODEL_COLUMNS = [
    report.Column("name", "name"),
    report.Column("params_b", "params (B)"),
    report.Column("num_layers", "layers", "int"),
    report.Column("attention", "attention"),
    report.Column("kv_bytes_per_token", "KV bytes/token", "int"),
    report.Column("max_position_embeddings", "max context", "int"),
]


@app.command()
def models(fmt: FormatOpt = "table") -> None:
    """The bundled model catalog."""
    with boundary():
        from kvplan.describe import model_summaries

        fmt = check_format(fmt)
        out(report.render(model_summaries(), MODEL_COLUMNS, fmt))


@app.command()
def show(model: ModelArg, fmt: FormatOpt = "table") -> None:
    """A model's spec, derived facts and per-layer-kind cache summary."""
    with boundary():
        from kvplan.describe import describe

        fmt = check_format(fmt)
        info = describe(load_model(model))
        if fmt == "json":
            out(report.render_object(info, "json"))
            return
        facts = {k: v for k, v in info.items() if k not in ("spec", "layer_kinds")}
        out(report.render_object(facts, fmt, title=f"{info['name']} ({info['source']})"))
        out("")
        out(report.render(info["layer_kinds"], _KIND_COLUMNS, fmt, title="per layer kind (bf16 KV, one sequence)"))


_KIND_COLUMNS = [
    report.Column("kind", "kind"),
    report.Column("type", "type"),
    report.Column("layers", "layers", "int"),
    report.Column("detail", "detail"),
    report.Column("bytes_per_token_per_layer", "bytes/token/layer", "int"),
    report.Column("max_tokens", "tokens held (max)"),
    report.Column("state_bytes_per_layer", "state bytes/layer", "int"),
]


# ---- gpus ----------------------------------------------------------------------------------

GPU_COLUMNS = [
    report.Column("name", "name"),
    report.Column("display_name", "GPU"),
    report.Column("memory_mib", "memory (MiB)", "int"),
    report.Column("bandwidth_gbps", "bandwidth (GB/s)", "num"),
    report.Column("bf16_dense_tflops", "BF16 dense TFLOPS", "num"),
    report.Column("fp8_dense_tflops", "FP8 dense TFLOPS", "num"),
    report.Column("interconnect", "interconnect"),
]


@app.command()
def gpus(
    file: Annotated[Optional[Path], typer.Option("--file", help="also list the GPUs in this YAML file")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """The GPU catalog (memory as the driver reports it; dense TFLOPS)."""
    with boundary():
        from kvplan.hardware import bundled_gpus, load_gpu_file

        fmt = check_format(fmt)
        listed = list(bundled_gpus().values()) + (load_gpu_file(file) if file else [])
        out(report.render([g.model_dump() for g in listed], GPU_COLUMNS, fmt))


# ---- import --------------------------------------------------------------------------------


@app.command("import")
def import_(
    config: Annotated[Path, typer.Argument(help="a Hugging Face config.json, or a folder holding one")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="write the YAML spec here")] = None,
    name: Annotated[Optional[str], typer.Option(help="spec name (default: from the config)")] = None,
    force: Annotated[bool, typer.Option(help="overwrite an existing output file")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="yaml (a spec file) | json (the same fields)")] = "yaml",
) -> None:
    """Convert a Hugging Face config.json into a kvplan YAML spec."""
    with boundary():
        from kvplan.hf import import_config

        fmt = fmt.strip().lower()
        if fmt not in ("yaml", "json"):
            raise InvalidInput(f"unknown format {fmt!r} for import; expected yaml or json")
        if output is not None and output.exists() and not force:  # before any work, as --plot and --save
            raise InvalidInput(f"{str(output)!r} already exists; pass --force to overwrite it")
        result = import_config(config, name=name)
        for warning in result.warnings:
            err(f"kvplan: warning: {warning}")
        text = result.to_yaml() if fmt == "yaml" else result.spec.model_dump_json(indent=2, exclude_defaults=True)
        if output is None:
            out(text.rstrip("\n"))
            return
        if output.exists() and not force:
            raise InvalidInput(f"{str(output)!r} already exists; pass --force to overwrite it")
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot write {str(output)!r}: {exc.strerror or exc}") from None
        err(f"wrote {output}")


# ---- commands defined in other modules ----------------------------------------------------
# Each module adds its commands to `app` with @app.command() when imported. They are loaded
# when invoked (or all of them for --help and unknown names), the lazy-subcommand pattern of
# click's documentation: `kvplan estimate` then neither imports nor builds the other commands.
COMMAND_MODULES = {
    "capacity": "kvplan.cli_capacity",
    "plan": "kvplan.cli_capacity",
    "check-log": "kvplan.cli_capacity",
    "cost": "kvplan.cli_cost",
    "rope": "kvplan.cli_cost",
    "profile": "kvplan.cli_profile",
}
CORE_COMMANDS = frozenset({"estimate", "models", "show", "gpus", "import"})


def load_commands(argv: list[str] | None = None) -> typer.Typer:
    """Register the command modules ``argv`` needs; every module when ``argv`` is None."""
    import importlib

    first = next((a for a in argv if not a.startswith("-")), None) if argv is not None else None
    if first in CORE_COMMANDS:
        return app
    wanted = [COMMAND_MODULES[first]] if first in COMMAND_MODULES else COMMAND_MODULES.values()
    for module in dict.fromkeys(wanted):
        importlib.import_module(module)
    return app


def main(argv: list[str] | None = None) -> int:
    """Console entry point: usage errors become one line and exit code 2."""
    try:  # typer >= 0.2x vendors click as typer._click; older typer uses click itself
        from typer._click import exceptions as click_exc
    except ImportError:  # pragma: no cover
        from click import exceptions as click_exc

    argv = sys.argv[1:] if argv is None else argv
    try:
        load_commands(argv)
        result = app(args=argv, prog_name="kvplan", standalone_mode=False)
    except click_exc.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `kvplan`: show the help, not an error
            typer.echo(exc.format_message())
            return 0
        err(f"kvplan: error: {exc.format_message()}")
        return 2
    except click_exc.ClickException as exc:
        err(f"kvplan: error: {exc.format_message()}")
        return exc.exit_code
    except typer.Abort:
        err("kvplan: aborted")
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        err("kvplan: interrupted")
        return 130
    except Exception as exc:  # a bug, not bad input: one line, traceback only on request
        if os.environ.get("KVPLAN_DEBUG"):
            raise
        err(f"kvplan: internal error: {type(exc).__name__}: {exc} (set KVPLAN_DEBUG=1 for the traceback)")
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

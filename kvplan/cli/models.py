"""``kvplan models``, ``show``, ``gpus`` and ``import``: the model and GPU catalogs."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from kvplan import report
from kvplan.cli.common import FormatOpt, ModelArg, app, boundary, check_format, err, load_model, out
from kvplan.errors import InvalidInput

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
    report.Column("fp4_dense_tflops", "FP4 dense TFLOPS", "num"),
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
    config: Annotated[
        str,
        typer.Argument(help="a Hugging Face config.json, a folder holding one, or a Hub repo org/name[@revision]"),
    ],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="write the YAML spec here")] = None,
    name: Annotated[Optional[str], typer.Option(help="spec name (default: from the config)")] = None,
    force: Annotated[bool, typer.Option(help="overwrite an existing output file")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="yaml (a spec file) | json (the same fields)")] = "yaml",
) -> None:
    """Convert a Hugging Face config.json (a file, a folder or a Hub repository) into a kvplan YAML spec."""
    with boundary():
        from kvplan.catalog import import_model

        fmt = fmt.strip().lower()
        if fmt not in ("yaml", "json"):
            raise InvalidInput(f"unknown format {fmt!r} for import; expected yaml or json")
        if output is not None:  # before any work, as --plot and --save
            from kvplan.checks import check_output_path

            check_output_path(output, force=force)
        result = import_model(config, name=name)
        for warning in result.warnings:
            err(f"kvplan: warning: {warning}")
        text = result.to_yaml() if fmt == "yaml" else result.spec.model_dump_json(indent=2, exclude_defaults=True)
        if output is None:
            out(text.rstrip("\n"))
            return
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot write {str(output)!r}: {exc.strerror or exc}") from None
        err(f"wrote {output}")

"""What every command shares: the typer app, the option declarations and the error boundary.

Errors from the library (:class:`KvplanError`, pydantic's ``ValidationError``) are caught at
:func:`boundary` and printed as one line per problem on stderr, with exit code 2 (bad input) or
1 (runtime failure).
"""

from collections.abc import Iterator
from contextlib import contextmanager
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
        help="KV-cache dtype: fp32 bf16 fp16 fp8 fp8_e4m3 fp8_e5m2 int8 int4 q8_0 q4_0 nvfp4 (trtllm, vllm) "
        "fp4_e2m1 (sglang) (default: the model's)"
    ),
]
WeightsDtypeOpt = Annotated[
    Optional[str], typer.Option(help="weights dtype: fp32 bf16 fp16 fp8 int8 int4 mxfp4 nvfp4 (default: the model's)")
]
CheckpointOpt = Annotated[
    Optional[str],
    typer.Option(
        help="weights as stored in this checkpoint (headers only): a .safetensors or .gguf file, a folder, or a "
        "Hub repo org/name[@rev][:file.gguf | :Q4_K_M] (default: MODEL's own checkpoint, when it has one)"
    ),
]
ModelArg = Annotated[
    str,
    typer.Argument(
        help="bundled name (see 'kvplan models'), a spec YAML, a config.json, a folder holding one, "
        "or a Hugging Face repo org/name[@revision]"
    ),
]
# The older releases --engine NAME@VERSION selects (kvplan.engines.RELEASES less each engine's newest), spelled out here
# so that --help needs no engine module imported; tests/test_vllm_v016.py checks it against RELEASES.
OLDER_RELEASES = "vllm@0.8, vllm@0.16, vllm@0.19, sglang@0.5, trtllm@0.17, trtllm@0.20, llamacpp@b6699"
EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        "-e",
        help="ideal | vllm | sglang | trtllm | llamacpp | transformers; the newest release kvplan knows, "
        f"or NAME@VERSION for an older rule set: {OLDER_RELEASES}; vllm@X.Y.Z: a point release 0.8.0-0.15.x "
        "(vllm@0.8's rules with that release's API server)",
    ),
]
SizeOpt = Optional[str]
# llama.cpp --swa-full / SGLang --disable-hybrid-swa-memory: windowed layers keep every token (memory); llama.cpp's
# kernels then read and multiply every one of them (kvplan.engines.llamacpp attention_spans), SGLang's keep the window.
SwaFullOpt = Annotated[
    bool, typer.Option("--swa-full", help="llama.cpp --swa-full / SGLang --disable-hybrid-swa-memory")
]
MaxSeqLenOpt = Annotated[
    Optional[int],
    typer.Option(
        "--max-seq-len",
        help="TensorRT-LLM max_seq_len of the launch: below a Llama 4 attention chunk its chunked layers run as full "
        "attention (XQA, not MMHA on Hopper); default the model's limit",
    ),
]
WindowOpt = Annotated[
    Optional[str],
    typer.Option(
        "--max-attention-window",
        help="TensorRT-LLM kv_cache_config.max_attention_window: tokens each layer keeps, one or a comma list "
        "repeated over the layers, e.g. 4096 or 4096,32768 (default: every token)",
    ),
]

# vLLM --mamba-ssm-cache-dtype / --mamba-cache-dtype (Settings.mamba_ssm_cache_dtype / mamba_cache_dtype): the hybrid
# models' recurrent state dtypes, for every command that sizes or reads that state (capacity, plan, cost, estimate).
# The values are checked where the engine reads them (kvplan.engines.vllm mamba_ssm_flag), the same for each command.
MambaSsmCacheDtypeOpt = Annotated[
    Optional[str],
    typer.Option(
        "--mamba-ssm-cache-dtype", help="vLLM: hybrid models' SSM state dtype: auto, float32, float16 (default auto)"
    ),
]
MambaCacheDtypeOpt = Annotated[
    Optional[str],
    typer.Option(
        "--mamba-cache-dtype", help="vLLM: hybrid models' conv state dtype: auto, float32, float16 (default auto)"
    ),
]
# TensorRT-LLM sparse_attention_config.indexer_k_dtype (Settings.indexer_k_dtype): DeepSeek-V3.2's indexer key cache,
# fp8 (132 B a token and layer) or fp4 (68 B, Blackwell); checked by the engine (kvplan.engines.trtllm).
IndexerKDtypeOpt = Annotated[
    Optional[str],
    typer.Option(
        "--indexer-k-dtype",
        help="TensorRT-LLM: DeepSeek Sparse Attention indexer key cache, fp8 or fp4 (Blackwell) (default fp8)",
    ),
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


def parse_windows(text: Optional[str]) -> Optional[tuple[int, ...]]:
    """``4096`` or ``4k,32k`` -> ``(4096,)`` / ``(4096, 32768)``: order and repeats kept (the list is a per-layer
    pattern); a zero, a negative or a non-number is refused in one line."""
    if text is None:
        return None
    from kvplan.units import parse_length, split_list

    try:
        return tuple(parse_length(p) for p in split_list(text, "--max-attention-window", example="4096,32768"))
    except InvalidInput:
        raise InvalidInput(
            f"invalid --max-attention-window {text!r}; expected positive whole numbers of tokens, one or a comma "
            "list repeated over the layers, e.g. 4096 or 4096,32768"
        ) from None


def load_model(arg: str):  # noqa: ANN201
    """A MODEL argument resolved by the library; a note on stderr when a local path shadows a bundled name."""
    return load_resolved(arg).spec


def load_resolved(arg: str):  # noqa: ANN201
    """:func:`load_model` with where the spec came from (:class:`kvplan.catalog.ResolvedModel`).
    Its notes (what the importer assumed, which spec a Hub name gave) are issued as ImportNote
    warnings, which :func:`boundary` prints the same way for every command."""
    import warnings

    from kvplan.catalog import resolve, shadowed_name
    from kvplan.errors import ImportNote

    resolved = resolve(arg)
    for line in resolved.notes:
        warnings.warn(ImportNote(line), stacklevel=2)
    note = shadowed_name(arg)
    if note:
        err(f"note: {note}")
    return resolved


def load_with_weights(arg: str, *, weights_dtype: str | None = None, checkpoint: str | None = None):  # noqa: ANN201
    """MODEL resolved, and the checkpoint whose headers give its weights term (None: the architecture
    count); the library's one rule (:meth:`kvplan.catalog.ResolvedModel.weights`) for every command."""
    resolved = load_resolved(arg)
    return resolved, resolved.weights(weights_dtype=weights_dtype, checkpoint=checkpoint)


def weights_notes(resolved, weights, *, weights_dtype: str | None = None) -> None:  # noqa: ANN001
    """On stderr: which spec MODEL gave and where the weights term came from (header sum beside the count)."""
    if resolved.hub is None and not resolved.notes and weights is None:
        return  # a catalog or YAML spec without headers: weights_source_lines has nothing to say (not imported)
    from kvplan.weights_compare import weights_source_lines

    for line in weights_source_lines(resolved, weights, weights_dtype=weights_dtype):
        err(f"note: {line}")


def lookup_gpu(name: str):  # noqa: ANN201
    """A GPU by catalog name or YAML path; the GPU schema is built only when one is asked for."""
    from kvplan.hardware import resolve_gpu

    return resolve_gpu(name)


def out(text: str) -> None:
    typer.echo(text)

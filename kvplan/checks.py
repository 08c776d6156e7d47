"""Rules every command and library entry point shares, each asked in one place.

- what a model argument or a GPU argument may be (a name or the object itself);
- what a context length, a batch and a byte budget may be;
- when a length is past the model's trained context, and the one message that says so.

The CLI checks nothing of its own beyond these: what the library refuses, the CLI refuses with
the same line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kvplan.errors import InvalidInput
from kvplan.units import check_count, parse_length

if TYPE_CHECKING:  # the GPU schema is built only when a GPU is asked for
    from kvplan.hardware import GPU
    from kvplan.spec import ModelSpec


def as_spec(model: ModelSpec | str) -> ModelSpec:
    """A spec, or a MODEL argument as the CLI takes it (bundled name, YAML, config.json, folder)."""
    from kvplan.spec import ModelSpec

    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, str):
        from kvplan.catalog import resolve_model

        return resolve_model(model)
    raise InvalidInput(f"invalid model {model!r}; expected a ModelSpec or a name such as 'llama-3.1-8b'")


def as_gpu(gpu: GPU | str) -> GPU:
    """A GPU, or a catalog name / GPU YAML path as the CLI takes it."""
    from kvplan.hardware import GPU, resolve_gpu

    if isinstance(gpu, GPU):
        return gpu
    if isinstance(gpu, str):
        return resolve_gpu(gpu)
    raise InvalidInput(f"invalid GPU {gpu!r}; expected a GPU or a catalog name such as 'h100-sxm'")


def check_length(length: int | str) -> int:
    """A context length in tokens: the CLI's rule (:func:`kvplan.units.parse_length`) for ints too."""
    return parse_length(length)


def check_lengths(lengths: object) -> list[int]:
    """One length, a ``"4k,32k"`` string, or a list of lengths -> a non-empty list of token counts."""
    from kvplan.units import parse_lengths

    if isinstance(lengths, str):
        return parse_lengths(lengths)
    if isinstance(lengths, int) and not isinstance(lengths, bool):
        return [check_length(lengths)]
    if not isinstance(lengths, list | tuple) or not lengths:
        raise InvalidInput(f"invalid context lengths {lengths!r}; expected a list such as [4096, 32768] or '4k,32k'")
    return [check_length(n) for n in lengths]


def check_batch(batch: int, what: str = "batch") -> int:
    return check_count(batch, what)


def check_bytes(value: int, what: str) -> int:
    """A byte count the user gives (overhead, a KV budget): a whole number, not negative."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1 << 60:
        raise InvalidInput(f"invalid {what} {value!r}; expected a whole number of bytes between 0 and 1 EiB")
    return value


def check_output_path(path: Path, *, force: bool = False) -> Path:
    """A file the user asked kvplan to write, checked before any work: its folder exists, it is not
    a folder, and it is not overwritten without ``force`` (import -o, --plot, profile --save)."""
    path = Path(path)
    if not str(path).strip():
        raise InvalidInput("invalid output file ''; expected a file name")
    try:
        if path.is_dir():
            raise InvalidInput(f"invalid output file {str(path)!r}; it is a folder")
        if path.exists() and not force:
            raise InvalidInput(f"{str(path)!r} already exists; pass --force to overwrite it")
        if not path.parent.is_dir():
            raise InvalidInput(f"invalid output file {str(path)!r}; folder {str(path.parent)!r} does not exist")
    except OSError as exc:
        raise InvalidInput(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    return path


# Largest TP or PP degree kvplan takes: 1024 GPUs per model replica is past any deployment.
MAX_PARALLEL = 1024


def check_degrees(*, tp: int, pp: int) -> None:
    """tp and pp are whole numbers between 1 and :data:`MAX_PARALLEL` (the model's own rules are
    :func:`kvplan.memory.check_parallel`)."""
    for value, what in ((tp, "tensor"), (pp, "pipeline")):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PARALLEL:
            raise InvalidInput(
                f"invalid {what} parallel size {value!r}; expected a whole number between 1 and {MAX_PARALLEL}"
            )


# ---- past the trained context ------------------------------------------------------------------


def trained_context(spec: ModelSpec) -> int:
    """The longest context the model was trained (or extended) for: ``max_position_embeddings``.

    Engines refuse longer: vLLM's ModelConfig._get_and_verify_max_len raises when max_model_len
    exceeds the derived length unless VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 (vllm/config/model.py); SGLang
    checks context_length against the config the same way (SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN).
    """
    return spec.max_position_embeddings


def beyond_trained_context(spec: ModelSpec, length: int) -> str | None:
    """``None`` within the trained context; past it, the one message every command prints."""
    trained = trained_context(spec)
    if length <= trained:
        return None
    factor = -(-length // trained)  # stretch from the context the model has now, not its pre-extension one
    return (
        f"{length:,} tokens is beyond {spec.name}'s trained context of {trained:,} tokens; extend it with RoPE "
        f"scaling first, e.g. 'kvplan rope {spec.name} --method yarn --original-context {trained} --factor {factor}' "
        f"({factor} x {trained:,} = {factor * trained:,} tokens)"
    )

"""Finding and loading model specs: bundled names, YAML files, Hugging Face config.json.

The bundled ``model_specs/`` folder sits at the top of a checkout and is copied into the wheel
as ``kvplan/model_specs``; both places are searched.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from kvplan.errors import InvalidInput, KvplanError, did_you_mean
from kvplan.files import format_validation_error, read_bundled_yaml, read_json, read_text, read_yaml
from kvplan.spec import ModelSpec

if TYPE_CHECKING:
    from kvplan.checkpoint import CheckpointWeights

__all__ = [
    "all_bundled",
    "bundled_names",
    "format_validation_error",
    "load_bundled",
    "load_spec_file",
    "read_json",
    "read_text",
    "read_yaml",
    "resolve_model",
    "spec_from_dict",
]

_HERE = Path(__file__).resolve().parent


def specs_dir() -> Path:
    """The bundled spec folder: inside the installed package, else the checkout's top level."""
    for candidate in (_HERE / "model_specs", _HERE.parent / "model_specs"):
        if candidate.is_dir():
            return candidate
    raise InvalidInput("bundled model_specs/ folder not found; reinstall kvplan")


@lru_cache(maxsize=1)
def _bundled_paths() -> dict[str, Path]:
    return {p.stem.lower(): p for p in sorted(specs_dir().glob("*.yaml"))}


def bundled_names() -> list[str]:
    """Names of every bundled model, sorted."""
    return list(_bundled_paths())


def load_bundled(name: str) -> ModelSpec:
    """A bundled spec by name, case-insensitive."""
    paths = _bundled_paths()
    key = name.strip().lower()
    if key not in paths:
        raise InvalidInput(f"unknown model {name!r}{did_you_mean(key, list(paths)) or ';'} see 'kvplan models'")
    return _load_yaml_cached(str(paths[key]))


def all_bundled() -> list[ModelSpec]:
    return [load_bundled(n) for n in bundled_names()]


@lru_cache(maxsize=256)
def _load_yaml_cached(path: str) -> ModelSpec:
    """A bundled spec file (kvplan.files.read_bundled_yaml: its parse is kept between runs)."""
    return spec_from_dict(read_bundled_yaml(Path(path)), origin=path)


def spec_from_dict(data: Any, *, origin: str) -> ModelSpec:
    """Validate a parsed YAML mapping as a spec; errors name the file and each bad field."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{origin}: a model spec must be a YAML mapping, got {type(data).__name__}")
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(format_validation_error(exc, origin=origin)) from None


def load_spec_file(path: Path) -> ModelSpec:
    return spec_from_dict(read_yaml(path), origin=str(path))


@dataclass(frozen=True)
class ResolvedModel:
    """A MODEL argument resolved: the spec, which source gave it, and where its weights can be read."""

    spec: ModelSpec
    origin: str  # one line for the user: "bundled spec 'qwen3-32b'", "Hub Qwen/Qwen3-32B@1a2b3c4 config.json"
    notes: tuple[str, ...] = ()  # importer warnings and fallbacks, one line each
    hub: Any = None  # kvplan.hub.HubRef + HubSnapshot when the Hub named it
    folder: Path | None = None  # a local folder that may hold the checkpoint's files

    def checkpoint(self) -> CheckpointWeights | None:
        """The weights as stored, from the checkpoint's headers; None where there is no checkpoint."""
        if self.hub is not None:
            from kvplan.hub import hub_checkpoint

            ref, snapshot = self.hub
            return hub_checkpoint(ref, snapshot)
        if self.folder is not None:
            from kvplan.hub import folder_checkpoint  # reads local files only; no huggingface_hub import

            return folder_checkpoint(self.folder, source=str(self.folder))
        return None

    def weights(self, *, weights_dtype: str | None = None, checkpoint: str | None = None) -> CheckpointWeights | None:
        """Where every command's weights term comes from; None means the architecture count.

        ``checkpoint`` (``--checkpoint``: a file, folder or Hub repository) first; else, unless a
        weights dtype is asked for (a conversion or a what-if, counted from the architecture), the
        model's own checkpoint headers (a Hub repository, or a local folder with safetensors/GGUF).
        """
        if checkpoint:
            if weights_dtype:
                raise InvalidInput("pass --checkpoint or --weights-dtype, not both: each one sets the weights term")
            return load_checkpoint(checkpoint)
        if weights_dtype:
            return None
        return self.checkpoint()


def resolve_model(arg: str) -> ModelSpec:
    """A MODEL argument: bundled name, spec YAML, HF ``config.json``, a folder holding one, or a Hub repo.

    What the importer assumed (a config.json's notes) is issued as :class:`~kvplan.errors.ImportNote`
    warnings, the lines ``kvplan import`` prints; the CLI boundary shows them for every command."""
    import warnings

    from kvplan.errors import ImportNote

    resolved = resolve(arg)
    for note in resolved.notes:
        warnings.warn(ImportNote(note), stacklevel=2)
    return resolved.spec


def resolve(arg: str) -> ResolvedModel:
    """:func:`resolve_model` with where the spec came from; the one place a MODEL argument is read.

    A path that exists wins over a bundled name (:func:`shadowed_name` says when both match).
    A path the file system refuses (no permission, a loop) is a one-line input error.
    """
    if not isinstance(arg, str) or not arg.strip():
        raise InvalidInput(f"invalid model {arg!r}; expected a bundled name (see 'kvplan models') or a path")
    try:
        return _resolve(arg)
    except OSError as exc:
        raise InvalidInput(f"cannot read model {arg!r}: {exc.strerror or exc}") from None


def shadowed_name(arg: str) -> str | None:
    """A note when ``arg`` is both a path that exists and a bundled model's name, else ``None``."""
    try:
        exists = Path(arg).exists()
    except OSError:
        return None
    if not exists or arg.strip().lower() not in _bundled_paths():
        return None
    return (
        f"{arg!r} is a local path and also a bundled model; using the local {arg!r} "
        f"(run from another folder to use the bundled one)"
    )


def _resolve(arg: str) -> ResolvedModel:
    path = Path(arg)
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise InvalidInput(f"folder {arg!r} holds no config.json")
        return _local_config(config, folder=path)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.exists():
        if not path.is_file():
            raise InvalidInput(f"model file {arg!r} does not exist")
        if path.suffix.lower() == ".json":
            return _local_config(path, folder=path.parent)
        return ResolvedModel(load_spec_file(path), f"spec file {arg}")
    if "/" in arg:
        from kvplan.hub import parse_hub_ref  # kvplan.hub imports huggingface_hub only inside its functions

        ref = parse_hub_ref(arg)
        if ref is not None:
            return _from_hub(ref)
        raise InvalidInput(
            f"model {arg!r} is neither a file nor a Hub repository name (org/name[@revision] or hf://org/name)"
        )
    spec = load_bundled(arg)
    return ResolvedModel(spec, f"bundled spec {spec.name!r}")


def _local_config(path: Path, *, folder: Path) -> ResolvedModel:
    from kvplan.quant import fold_quant_files  # quantization_config.json / ModelOpt hf_quant_config.json beside it

    result = _import_hf(fold_quant_files(read_json(path), path.parent), origin=str(path))
    return ResolvedModel(result.spec, f"config {path}", tuple(result.warnings), folder=folder)


def import_model(arg: str, *, name: str | None = None) -> Any:
    """``kvplan import``: a config.json, a folder holding one, or a Hub repository ``org/name[@rev]``
    (its config.json fetched through the Hugging Face cache, as a MODEL argument is), converted to
    a spec with the importer's notes (:class:`kvplan.hf.ImportResult`). The spec's ``source`` and the
    YAML's header name the Hub file at its commit; a bundled spec is never substituted here."""
    from kvplan.hf import import_config

    path = Path(arg)
    ref = None
    if not path.exists() and "/" in arg and path.suffix.lower() != ".json":
        from kvplan.hub import parse_hub_ref

        ref = parse_hub_ref(arg)
    if ref is None:
        return import_config(path, name=name)
    from kvplan.hub import fetch_config, read_config

    snapshot = fetch_config(ref)
    source = f"https://huggingface.co/{ref.repo_id}/blob/{snapshot.commit}/config.json"
    result = _import_hf(read_config(snapshot), origin=source, name=name or ref.repo_id.split("/")[-1].lower())
    return dataclasses.replace(result, spec=result.spec.model_copy(update={"source": source}))


def _import_hf(data: Any, *, origin: str, name: str | None = None) -> Any:
    from kvplan.hf import spec_from_hf_config

    return spec_from_hf_config(data, origin=origin, name=name)


def _from_hub(ref: Any) -> ResolvedModel:
    """A Hub repository: its config through the cache, or the bundled spec whose ``source`` it is."""
    from kvplan.hub import fetch_config, read_config

    bundled = bundled_for_repo(ref.repo_id)
    try:
        snapshot = fetch_config(ref)
    except KvplanError as exc:
        if bundled is None or ref.revision:
            raise
        # Offline or unreachable, but kvplan ships this model: use it and say why.
        note = (
            f"the Hub could not be read ({exc}); used the bundled spec {bundled.name!r}, weights from the architecture"
        )
        return ResolvedModel(bundled, f"bundled spec {bundled.name!r} (source {ref.repo_id})", (note,))
    result = _import_hf(
        read_config(snapshot), origin=f"{snapshot} config.json", name=ref.repo_id.split("/")[-1].lower()
    )
    source = f"https://huggingface.co/{ref.repo_id}/blob/{snapshot.commit}/config.json"
    result = dataclasses.replace(result, spec=result.spec.model_copy(update={"source": source}))
    hub = (ref, snapshot)
    if bundled is not None:
        differs = architecture_differences(bundled, result.spec)
        if not differs:
            origin = f"bundled spec {bundled.name!r} ({ref.repo_id}; its config at {snapshot.commit[:7]} matches)"
            return ResolvedModel(bundled, origin, hub=hub)
        note = f"the bundled spec {bundled.name!r} differs from this config ({', '.join(differs)}); used the config"
        return ResolvedModel(result.spec, f"Hub {snapshot} config.json", (note, *result.warnings), hub=hub)
    return ResolvedModel(result.spec, f"Hub {snapshot} config.json", tuple(result.warnings), hub=hub)


def load_checkpoint(arg: str) -> CheckpointWeights:
    """``--checkpoint``: a ``.safetensors`` or ``.gguf`` file, a folder holding a checkpoint, or a Hub
    repository ``org/name[@rev][:file.gguf | :QUANT]``; its headers give the weights term."""
    from kvplan.hub import checkpoint_from_ref, file_checkpoint, folder_checkpoint, parse_hub_ref

    path = Path(arg)
    try:
        is_file, is_dir = path.is_file(), path.is_dir()
    except OSError as exc:  # e.g. ENAMETOOLONG: pathlib only swallows "does not exist" errors
        raise InvalidInput(f"cannot read checkpoint {arg!r}: {exc.strerror or exc}") from None
    if is_file:
        return file_checkpoint(path)
    if is_dir:
        found = folder_checkpoint(path, source=arg)
        if found is None:
            raise InvalidInput(f"folder {arg!r} holds no safetensors checkpoint and no single .gguf file")
        return found
    ref = parse_hub_ref(arg) if "/" in arg else None
    if ref is None:
        raise InvalidInput(
            f"checkpoint {arg!r} does not exist; expected a .safetensors or .gguf file, a folder, "
            "or a Hub repository org/name[@revision][:file.gguf | :QUANT_TAG]"
        )
    found = checkpoint_from_ref(ref)
    if found is None:
        raise InvalidInput(
            f"repository {str(ref)!r} holds no model.safetensors(.index.json); for GGUF name a file or a "
            "quantization tag after ':' (org/name:Q4_K_M)"
        )
    return found


# The facts that decide the KV cache and the weights; a bundled spec agreeing on all of them is the same model.
_ARCHITECTURE_FIELDS = (
    "hidden_size", "vocab_size", "num_layers", "num_attention_heads", "num_kv_heads", "head_dim",
    "intermediate_size", "tie_word_embeddings", "layer_kind_names", "max_position_embeddings",
)  # fmt: skip


def architecture_differences(a: ModelSpec, b: ModelSpec) -> list[str]:
    return [f for f in _ARCHITECTURE_FIELDS if getattr(a, f) != getattr(b, f)]


def bundled_for_repo(repo_id: str) -> ModelSpec | None:
    """The bundled spec whose ``source`` is this Hub repository (case-insensitive), if any."""
    wanted = repo_id.lower()
    for name in bundled_names():
        spec = load_bundled(name)
        match = _HF_SOURCE.search(spec.source or "")
        if match and match.group(1).lower() == wanted:
            return spec
    return None


_HF_SOURCE = re.compile(r"huggingface\.co/([^/\s]+/[^/\s]+)")

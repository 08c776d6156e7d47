"""Finding and loading model specs: bundled names, YAML files, Hugging Face config.json.

The bundled ``model_specs/`` folder sits at the top of a checkout and is copied into the wheel
as ``kvplan/model_specs``; both places are searched.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from kvplan.errors import InvalidInput, did_you_mean
from kvplan.spec import ModelSpec

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
    return load_spec_file(Path(path))


def read_text(path: Path) -> str:
    """A UTF-8 file's text; unreadable or binary files are one-line input errors."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"cannot read {str(path)!r}: not UTF-8 text") from None


def read_yaml(path: Path) -> Any:
    text = read_text(path)
    try:
        # libyaml's C loader when present: the same safe subset, several times faster.
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise InvalidInput(f"malformed YAML in {str(path)!r}{line}: {getattr(exc, 'problem', exc)}") from None


def read_json(path: Path) -> Any:
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"malformed JSON in {str(path)!r} at line {exc.lineno}: {exc.msg}") from None
    except RecursionError:
        raise InvalidInput(f"malformed JSON in {str(path)!r}: nested too deeply") from None


def spec_from_dict(data: Any, *, origin: str) -> ModelSpec:
    """Validate a parsed YAML mapping as a spec; errors name the file and each bad field."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{origin}: a model spec must be a YAML mapping, got {type(data).__name__}")
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(format_validation_error(exc, origin=origin)) from None


def format_validation_error(exc: ValidationError, *, origin: str) -> str:
    """One line per problem: ``origin: field.path: message``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (not part of the spec schema)"
        lines.append(f"{origin}: {loc}: {msg}")
    return "\n".join(lines)


def load_spec_file(path: Path) -> ModelSpec:
    return spec_from_dict(read_yaml(path), origin=str(path))


def resolve_model(arg: str) -> ModelSpec:
    """A MODEL argument: bundled name, spec YAML, HF ``config.json``, or a folder holding one."""
    path = Path(arg)
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise InvalidInput(f"folder {arg!r} holds no config.json")
        return _from_hf(config)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.exists():
        if not path.is_file():
            raise InvalidInput(f"model file {arg!r} does not exist")
        if path.suffix.lower() == ".json":
            return _from_hf(path)
        return load_spec_file(path)
    return load_bundled(arg)


def _from_hf(path: Path) -> ModelSpec:
    """A config.json: the spec, and every assumption as an :class:`~kvplan.errors.ImportNote` warning
    (the same lines ``kvplan import`` prints)."""
    import warnings

    from kvplan.errors import ImportNote
    from kvplan.hf import spec_from_hf_config

    result = spec_from_hf_config(read_json(path), origin=str(path))
    for note in result.warnings:
        warnings.warn(ImportNote(note), stacklevel=3)
    return result.spec

"""Reading what users give: text, YAML and JSON files, and pydantic errors as one line per problem.

Shared by the catalog (spec YAML) and the Hugging Face importer (config.json), so neither imports
the other for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from kvplan.errors import InvalidInput


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

"""Reading what users give: text, YAML and JSON files, and pydantic errors as one line per problem.

Shared by the catalog (spec YAML) and the Hugging Face importer (config.json), so neither imports
the other for it.
"""

from __future__ import annotations

import contextlib
import json
import marshal
import os
import sys
from pathlib import Path
from typing import Any

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
    return _parse_yaml(read_text(path), path)


def _parse_yaml(text: str, path: Path) -> Any:
    import yaml  # here, not at the top: read_bundled_yaml answers from its cache without it (~14 ms to import)

    try:
        # libyaml's C loader when present: the same safe subset, several times faster.
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise InvalidInput(f"malformed YAML in {str(path)!r}{line}: {getattr(exc, 'problem', exc)}") from None


def parsed_cache(path: Path) -> Path | None:
    """Where :func:`read_bundled_yaml` keeps ``path``'s parse: where CPython would keep the byte code of a module
    named like the file (``importlib.util.cache_from_source``: ``__pycache__/`` beside it, or under
    ``PYTHONPYCACHEPREFIX``), one per interpreter as marshal's format is the interpreter's, with its own suffix:
    ``model_specs/__pycache__/llama-3.1-70b.yaml.cpython-311.parsed``. None where the interpreter keeps no byte code."""
    from importlib.util import cache_from_source

    try:
        return Path(cache_from_source(f"{path}.py", optimization="")).with_suffix(".parsed")
    except NotImplementedError:  # sys.implementation.cache_tag is None
        return None


def read_bundled_yaml(path: Path) -> Any:
    """:func:`read_yaml` for the files kvplan ships (``model_specs/*.yaml``, ``data/gpus.yaml``), through a cache
    of the parse (:func:`parsed_cache`): the file's whole text, the parser's identity (:func:`_parser_id`) and the
    parsed data, marshalled. The cache answers only when the text read now and the parser are the very ones it was
    made from, so an edited file or another PyYAML is parsed afresh (never stale); a hit costs reading two small
    files, where parsing costs importing PyYAML (~14 ms on the 2-core development machine) and ~2 ms a file. The
    cache is written as byte code is (not under ``PYTHONDONTWRITEBYTECODE``; nothing where the folder is read-only)
    and replaced atomically, so concurrent runs never read half a file."""
    text = read_text(path)
    cache, parser = parsed_cache(path), _parser_id()
    if cache is None or parser is None:
        return _parse_yaml(text, path)
    try:
        kept_text, kept_parser, data = marshal.loads(cache.read_bytes())
        if kept_text == text and kept_parser == parser:
            return data
    except (OSError, EOFError, ValueError, TypeError):  # none yet, unreadable, or not one of ours
        pass
    data = _parse_yaml(text, path)
    if not sys.dont_write_bytecode:
        _write_parsed(cache, (text, parser, data))
    return data


def _parser_id() -> tuple[str, int, int] | None:
    """PyYAML's module file and its modification time and size, found without importing it (an upgrade rewrites
    the file); None where it cannot be found (then nothing is cached)."""
    from importlib.util import find_spec

    spec = find_spec("yaml")
    if spec is None or spec.origin is None:
        return None
    try:
        st = os.stat(spec.origin)
    except OSError:
        return None
    return spec.origin, st.st_mtime_ns, st.st_size


def _write_parsed(cache: Path, entry: tuple) -> None:
    """Write ``entry`` to ``cache`` through a temporary file and an atomic rename; any failure (a read-only
    install, data marshal cannot hold) leaves no cache, which only costs the next run a parse."""
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    try:
        blob = marshal.dumps(entry)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(blob)
        os.replace(tmp, cache)
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


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

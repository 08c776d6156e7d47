"""The one exception family of kvplan.

The CLI boundary catches :class:`KvplanError` (and pydantic's ``ValidationError``), prints one
line per problem and exits with the code the error carries; the library only raises.
"""

from __future__ import annotations


class KvplanError(Exception):
    """Any problem kvplan can explain to the user in one line."""

    exit_code = 2


class InvalidInput(KvplanError):
    """The user asked for something kvplan cannot accept (bad value, unknown name, bad file)."""

    exit_code = 2


class RuntimeFailure(KvplanError):
    """The input was fine but the machine could not do it (no CUDA, no torch, ...)."""

    exit_code = 1


class ImportNote(UserWarning):
    """What kvplan assumed while reading a Hugging Face config.json (issued with :mod:`warnings`;
    the CLI boundary prints each as ``kvplan: warning: ...``, whatever the command)."""


def did_you_mean(word: str, choices: list[str]) -> str:
    """A ``; did you mean 'x'?`` suffix from the closest choices, or an empty string."""
    import difflib

    close = difflib.get_close_matches(word.lower(), [c.lower() for c in choices], n=3, cutoff=0.5)
    if not close:
        return ""
    by_lower = {c.lower(): c for c in choices}
    return "; did you mean " + " or ".join(repr(by_lower[c]) for c in close) + "?"

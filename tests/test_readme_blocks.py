"""Every ``$ kvplan ...`` console block in the README prints what the README shows.

The commands run in-process, with the shell pieces the README uses applied by hand: ``A && B``, ``| head -N`` and
``| tail -N`` (on stdout, as a pipe takes it), ``< FILE`` and ``2>/dev/null``. The block must show every stdout line,
in order; it may show or leave out what the command writes to stderr (notes, "wrote FILE"). A command followed
directly by another ``$`` line shows how to type it, not its output: it must still succeed. Files the commands write
go to a temporary folder, never into the checkout.
"""

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kvplan.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")

# Needs huggingface.co, which the test machine cannot reach; tests/test_hub.py covers the same path on a fake Hub.
NEEDS_NETWORK = ("Qwen/Qwen3-32B",)


def _examples() -> list[tuple[str, list[str]]]:
    """(command line, the lines the README shows after it) for every kvplan command in a console block."""
    examples = []
    for block in re.findall(r"```console\n(.*?)```", README, re.S):
        lines = block.splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith("$ ")]
        for n, i in enumerate(starts):
            command = lines[i][2:]
            end = starts[n + 1] if n + 1 < len(starts) else len(lines)
            if command.startswith("kvplan ") and not any(name in command for name in NEEDS_NETWORK):
                examples.append((command, lines[i + 1 : end]))
    return examples


def _normalise(lines: list[str]) -> list[str]:
    out = [line.rstrip() for line in lines]
    while out and not out[-1]:
        out.pop()
    return out


def _run_one(words: list[str], stdin: str | None) -> tuple[list[str], list[str]]:
    """One ``kvplan ...`` invocation with its pipe and redirections applied: (stdout lines, stderr lines)."""
    quiet_stderr = "2>/dev/null" in words
    words = [w for w in words if w != "2>/dev/null"]
    keep = None
    if "|" in words:
        at = words.index("|")
        tool, count = words[at + 1], int(words[at + 2].lstrip("-"))
        keep = (tool, count)
        words = words[:at]
    if "<" in words:
        at = words.index("<")
        stdin = (ROOT / words[at + 1]).read_text(encoding="utf-8")
        words = words[:at] + words[at + 2 :]
    assert words[0] == "kvplan", words
    result = CliRunner().invoke(app, words[1:], input=stdin)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    if keep is not None:
        tool, count = keep
        lines = lines[:count] if tool == "head" else lines[-count:]
    return lines, [] if quiet_stderr else result.stderr.splitlines()


@pytest.mark.parametrize(("command", "shown"), _examples(), ids=[c[:60] for c, _ in _examples()])
def test_readme_console_block_reproduces(command, shown, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    command = command.replace("/tmp/", f"{tmp_path}/")
    shown = [line.replace("/tmp/", f"{tmp_path}/") for line in shown]
    # Relative input files (logs, configs) are the checkout's; the working folder is the temporary one.
    words = [str(ROOT / w) if (ROOT / w).is_file() and "/" in w else w for w in shlex.split(command)]
    stdout: list[str] = []
    stderr: list[str] = []
    for part in " ".join(shlex.quote(w) if w not in ("|", "<", "&&") else w for w in words).split(" && "):
        out, err = _run_one(shlex.split(part), None)
        stdout += out
        stderr += err
    if not _normalise(shown):
        return  # typed, not shown: it ran and exited 0 above
    noted = set(_normalise(stderr))
    assert _normalise([line for line in shown if line.rstrip() not in noted]) == _normalise(stdout)

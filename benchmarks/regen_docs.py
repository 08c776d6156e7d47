"""Regenerate what the docs and the stored data hold of the scripts' output; check it; resolve merge conflicts in it.

Every block of README.md and docs/*.md that is the printed output of a command sits between two markers, the
command named on the line before them::

    <!-- NAME:command python benchmarks/mla_compare.py --markdown -->
    <!-- NAME:begin -->
    ...what the command prints (or the part of it named in BLOCKS), fenced or not...
    <!-- NAME:end -->

``BLOCKS`` below is the registry: name, file, command, which lines of the output, which fence. ``PRODUCTS`` are the
files a command rewrites itself: stored data (``published_compare.py --update-data``) and the markdown sections a
script keeps on its own (``registry_sweep.py --write``, ``engine_validation.py --write``). A command that needs what
is absent here (aiconfigurator's ``--collect``, network, a GPU) is never run: its entry carries ``absent`` (and
``--list`` says so); every other block is produced from checked-in data by the command that reads it.

    python benchmarks/regen_docs.py               # regenerate all: the stored data first, then the blocks
    python benchmarks/regen_docs.py --only NAME   # those blocks or products only
    python benchmarks/regen_docs.py --list        # name, file, command
    python benchmarks/regen_docs.py --check       # exit 1 naming each stale block with a short diff; writes nothing
    python benchmarks/regen_docs.py --resolve     # after `git merge` stopped on conflicts in generated content
    python benchmarks/regen_docs.py --jobs N      # the blocks' commands N at a time (default: the CPUs)

A second run changes nothing. Commands run from the repository root with this interpreter's directory first on
PATH (so ``python`` and ``kvplan`` are the ones of the environment the tool runs in).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARAGRAPH = r"^\s*$"  # Block.stop: the part ends at the next blank line
TABLE = r"^(?!\|)"  # Block.stop: the part ends where a markdown table does (the first line not starting with |)
MARKER = re.compile(r"^<!-- (?P<name>[\w.-]+):(?P<kind>command|begin|end)(?: (?P<command>.*))? -->$")


@dataclasses.dataclass(frozen=True)
class Block:
    """A marked block of a markdown file: what ``command`` prints, or the part of it that :func:`select` takes."""

    name: str
    file: str
    command: str
    start: str | None = None
    stop: str | None = None
    fence: str | None = None  # the block is fenced with this info string ("" for a bare fence)
    transcript: bool = False  # each command shown after ``$ `` before what it prints (`` ; `` between commands)
    stderr: bool = True  # a transcript shows stderr too (False: stdout only, as tests/test_diagnose.py reads them)
    absent: str | None = None  # what the command needs that is absent here: never run, never checked

    def render(self, outputs: list[str]) -> str:
        """The block's text from each command's output (one command unless a transcript)."""
        if self.transcript:
            body = "\n".join(f"$ {c}\n{o.rstrip(chr(10))}" for c, o in zip(self.commands, outputs, strict=True))
        else:
            body = select(outputs[0], self.start, self.stop, name=self.name)
        return body if self.fence is None else f"```{self.fence}\n{body}\n```"

    @property
    def commands(self) -> list[str]:
        """A console transcript's commands (`` ; `` between them in ``command``), each shown after ``$ ``."""
        return self.command.split(" ; ") if self.transcript else [self.command]


@dataclasses.dataclass(frozen=True)
class Product:
    """A file ``command`` rewrites itself. ``computed``: for JSON data written one row to a line, a regex of the
    keys the command stores on rows (``--resolve`` merges the rest, then reruns it); ``section``: for markdown,
    the marker pair whose text the command writes (None: the whole file is the command's)."""

    name: str
    file: str
    command: str
    computed: str | None = None
    section: tuple[str, str] | None = None
    absent: str | None = None  # as Block.absent
    requires: str | None = None  # a file the command reads, relative to the root; where it is missing, not run


class RegenError(Exception):
    """A block, marker or command the tool cannot handle; one line for the user."""


def select(output: str, start: str | None, stop: str | None, *, name: str) -> str:
    """The lines of ``output`` from the first that matches ``start`` up to, not including, the first after it that
    matches ``stop`` (``PARAGRAPH``: the next blank line; ``TABLE``: the end of a table); without them, from the
    first line or to the last. Blank lines at its end are left out."""
    lines = output.rstrip("\n").split("\n")
    first = 0
    if start is not None:
        first = next((i for i, line in enumerate(lines) if re.search(start, line)), -1)
        if first < 0:
            raise RegenError(f"{name}: no line of the output matches {start!r}")
    end = len(lines)
    if stop is not None:
        end = next((i for i in range(first + 1, len(lines)) if re.search(stop, lines[i])), -1)
        if end < 0 and stop not in (PARAGRAPH, TABLE):
            raise RegenError(f"{name}: no line of the output after {start!r} matches {stop!r}")
        end = len(lines) if end < 0 else end
    while end > first + 1 and not lines[end - 1].strip():
        end -= 1
    return "\n".join(lines[first:end])


# --------------------------------------------------------------------------------------------------------------
# The markers in a file


@dataclasses.dataclass(frozen=True)
class Marked:
    """Where a named block sits in a file: the lines of its command, begin and end markers (0-based)."""

    name: str
    command: str | None  # None: marked without a command line
    command_line: int
    begin: int
    end: int


def markers(text: str, file: str) -> dict[str, Marked]:
    """Every marked block of ``text``: its command line, its begin right after it, then its end; names unique. A
    begin without a command line before it (a block marked the older way) is read with ``command`` None, which
    :func:`agreement` reports."""
    found: dict[str, Marked] = {}
    lines = text.split("\n")
    open_: Marked | None = None  # the block being read, its end still unknown
    for i, line in enumerate(lines):
        m = MARKER.match(line)
        if not m:
            continue
        name, kind = m["name"], m["kind"]
        where = f"{file}:{i + 1}"
        if kind == "end":
            if open_ is None or open_.name != name or open_.begin < 0:
                raise RegenError(f"{where}: <!-- {name}:end --> without its begin")
            found[name] = dataclasses.replace(open_, end=i)
            open_ = None
            continue
        if kind == "begin" and open_ is not None and open_.name == name and open_.begin < 0:
            open_ = dataclasses.replace(open_, begin=i)
            continue
        if open_ is not None:
            raise RegenError(f"{where}: {name!r} starts inside block {open_.name!r}")
        if name in found:
            raise RegenError(f"{where}: block name {name!r} used twice")
        if kind == "command":
            if i + 1 >= len(lines) or lines[i + 1] != f"<!-- {name}:begin -->":
                raise RegenError(f"{where}: {name!r}'s command line is not followed by <!-- {name}:begin -->")
            open_ = Marked(name, m["command"] or "", i, -1, -1)
        else:
            open_ = Marked(name, None, i, i, -1)
    if open_ is not None:
        raise RegenError(f"{file}: block {open_.name!r} has no <!-- {open_.name}:end -->")
    return found


def marked_files(root: Path = ROOT) -> list[str]:
    """README.md and docs/*.md, relative to the root."""
    return ["README.md", *sorted(str(p.relative_to(root)) for p in (root / "docs").glob("*.md"))]


def agreement(root: Path = ROOT) -> list[str]:
    """Where the registry and the files disagree: a block or product marked in no file, marked in another file
    or with another command, or a marked block the registry lacks. Empty when they agree both ways."""
    registry = {b.name: b for b in (*PRODUCTS, *BLOCKS)}
    problems, seen = [], set()
    for file in marked_files(root):
        path = root / file
        if not path.exists():
            continue
        for name, m in markers(path.read_text(encoding="utf-8"), file).items():
            seen.add(name)
            entry = registry.get(name)
            if m.command is None:
                problems.append(
                    f"{file}:{m.begin + 1}: block {name!r} has no command line: put <!-- {name}:command COMMAND --> "
                    "right before its begin (and register it in benchmarks/regen_docs.py)"
                )
            elif entry is None:
                problems.append(f"{file}:{m.begin + 1}: block {name!r} is not in regen_docs.py's registry")
            elif entry.file != file:
                problems.append(f"{file}:{m.begin + 1}: block {name!r} is registered in {entry.file}")
            elif entry.command != m.command:
                problems.append(f"{file}:{m.begin + 1}: {name!r} names `{m.command}`, the registry `{entry.command}`")
    for entry in registry.values():
        if entry.name not in seen and (isinstance(entry, Block) or entry.section is not None):
            problems.append(f"{entry.file}: registered block {entry.name!r} has no markers there")
    return problems


# --------------------------------------------------------------------------------------------------------------
# Running the commands


class Runner:
    """Runs commands from the root with this interpreter's directory first on PATH, each once per invocation."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root
        self.outputs: dict[tuple[str, bool, bool], str] = {}
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        # unbuffered, so that a transcript's stderr lines (notes, "wrote FILE") fall where a terminal shows them;
        # 200 columns, as tests/test_readme_blocks.py runs the README's commands
        self.env = {**os.environ, "PATH": path, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}

    def __call__(self, command: str, *, transcript: bool = False, stderr: bool = True) -> str:
        """What ``command`` prints to stdout; a transcript's: stdout (and stderr) as a terminal shows them, whatever
        the exit status (a script's must be 0)."""
        key = (command, transcript, stderr)
        if key not in self.outputs:
            shell = f"{{ {command} ; }} {'2>&1' if stderr else '2>/dev/null'}" if transcript else command
            done = subprocess.run(
                ["bash", "-c", shell], cwd=self.root, env=self.env, capture_output=True, text=True, check=False
            )
            if done.returncode != 0 and not transcript:
                tail = (done.stderr.strip().splitlines() or ["no message"])[-1]
                raise RegenError(f"`{command}` exited with {done.returncode}: {tail}")
            self.outputs[key] = done.stdout
        return self.outputs[key]

    def prefetch(self, blocks: list[Block], jobs: int) -> None:
        """Run the blocks' commands, ``jobs`` at a time (they read the products and write nothing they share)."""
        wanted = list(dict.fromkeys((c, b.transcript, b.stderr) for b in blocks for c in b.commands))
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for _ in pool.map(lambda job: self(job[0], transcript=job[1], stderr=job[2]), wanted):
                pass


def render_block(block: Block, run: Runner) -> str:
    return block.render([run(c, transcript=block.transcript, stderr=block.stderr) for c in block.commands])


def rewrite(text: str, file: str, blocks: list[Block], run: Runner) -> str:
    """``text`` with each of ``blocks`` (all in ``file``) replaced by what its command prints now."""
    found = markers(text, file)
    lines = text.split("\n")
    # from the bottom up, so that earlier line numbers hold
    for block in sorted(blocks, key=lambda b: -found[b.name].begin if b.name in found else 0):
        m = found.get(block.name)
        if m is None:
            raise RegenError(f"{file}: registered block {block.name!r} has no markers there")
        if m.command != block.command:
            raise RegenError(
                f"{file}:{m.begin + 1}: {block.name!r} names `{m.command}`, the registry `{block.command}`"
            )
        lines[m.begin + 1 : m.end] = render_block(block, run).split("\n")
    return "\n".join(lines)


def not_run(entry: Block | Product, root: Path = ROOT) -> str | None:
    """Why ``entry``'s command is not run here (what it needs), or None."""
    requires = getattr(entry, "requires", None)
    if entry.absent is None and requires is not None and not (root / requires).is_file():
        return f"{requires}, missing here"
    return entry.absent


def chosen(only: list[str] | None) -> tuple[list[Product], list[Block]]:
    if not only:
        return [p for p in PRODUCTS if not not_run(p)], [b for b in BLOCKS if not not_run(b)]
    names = {e.name for e in (*PRODUCTS, *BLOCKS)}
    unknown = [n for n in only if n not in names]
    if unknown:
        raise RegenError(f"unknown block {unknown[0]!r}; see --list")
    return [p for p in PRODUCTS if p.name in only and not not_run(p)], [
        b for b in BLOCKS if b.name in only and not not_run(b)
    ]


def regenerate(only: list[str] | None = None, *, root: Path = ROOT, check: bool = False, jobs: int = 1) -> list[str]:
    """Rerun the products' commands, then the blocks' (``jobs`` at a time), and rewrite the blocks; ``check``:
    write nothing, return each stale one's name with a short diff (a product's file is put back as it was after
    its command ran)."""
    products, blocks = chosen(only)
    run = Runner(root)
    stale: list[str] = []
    for product in products:
        path = root / product.file
        before = path.read_bytes()
        try:
            run(product.command)
            after = path.read_bytes()
        finally:
            if check:
                path.write_bytes(before)
        if after != before:
            stale.append(_stale(product.name, product.file, before.decode(), after.decode()))
    run.prefetch(blocks, jobs)
    for file in dict.fromkeys(b.file for b in blocks):
        path = root / file
        old = path.read_text(encoding="utf-8")
        new = rewrite(old, file, [b for b in blocks if b.file == file], run)
        if new == old:
            continue
        if check:
            found_old, found_new = markers(old, file), markers(new, file)
            lines_old, lines_new = old.split("\n"), new.split("\n")
            for b in (b for b in blocks if b.file == file):
                o, n = found_old[b.name], found_new[b.name]
                was, now = "\n".join(lines_old[o.begin + 1 : o.end]), "\n".join(lines_new[n.begin + 1 : n.end])
                if was != now:
                    stale.append(_stale(b.name, file, was, now))
        else:
            path.write_text(new, encoding="utf-8")
    return stale


def _stale(name: str, file: str, was: str, now: str, context: int = 6) -> str:
    diff = list(difflib.unified_diff(was.split("\n"), now.split("\n"), "as written", "as printed", n=0, lineterm=""))
    shown = diff[2 : 2 + context * 2]
    more = f"\n    ... {len(diff) - 2 - len(shown)} more diff lines" if len(diff) - 2 > len(shown) else ""
    return f"{name} ({file}) is stale:\n" + "\n".join(f"    {line}" for line in shown) + more


# --------------------------------------------------------------------------------------------------------------
# Resolving a merge that stopped on conflicts in generated content


@dataclasses.dataclass(frozen=True)
class Hunk:
    """One conflict of a file git left with markers: its line there (1-based) and the two sides' lines."""

    line: int
    ours: list[str]
    theirs: list[str]


def conflict_hunks(text: str) -> tuple[list[str | Hunk], list[Hunk]]:
    """``text`` as plain lines and hunks in order, and the hunks; a diff3 base section is dropped."""
    parts: list[str | Hunk] = []
    hunks: list[Hunk] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if not lines[i].startswith("<<<<<<< "):
            parts.append(lines[i])
            i += 1
            continue
        start, side, ours, theirs = i, "ours", [], []
        i += 1
        while i < len(lines) and not lines[i].startswith(">>>>>>> "):
            line = lines[i]
            if line.startswith("||||||| "):
                side = "base"
            elif line == "=======":
                side = "theirs"
            elif side != "base":
                (ours if side == "ours" else theirs).append(line)
            i += 1
        if i == len(lines):
            raise RegenError(f"line {start + 1}: conflict marker <<<<<<< without its >>>>>>>")
        hunk = Hunk(start + 1, ours, theirs)
        parts.append(hunk)
        hunks.append(hunk)
        i += 1
    return parts, hunks


def side(parts: list[str | Hunk], which: str) -> tuple[str, dict[int, tuple[int, int]]]:
    """The file with every hunk taken from ``which`` side, and each hunk's line range [a, b) in it."""
    out: list[str] = []
    spans: dict[int, tuple[int, int]] = {}
    for part in parts:
        if isinstance(part, Hunk):
            lines = part.ours if which == "ours" else part.theirs
            spans[part.line] = (len(out), len(out) + len(lines))
            out.extend(lines)
        else:
            out.append(part)
    return "\n".join(out), spans


def _within_block(found: dict[str, Marked], span: tuple[int, int]) -> bool:
    """Whether lines [a, b) lie within one block, its marker lines included (an insertion, a == b: within its
    body)."""
    a, b = span
    if a == b:
        return any(m.begin < a <= m.end for m in found.values())
    return any(m.command_line <= a and b - 1 <= m.end for m in found.values())


def _marker_count(lines: list[str]) -> int:
    return sum(bool(MARKER.match(line)) for line in lines)


def _kept(hunk: Hunk) -> list[str]:
    """The side a resolution keeps: main's, unless only this branch's holds marker lines (a branch adding a block's
    markers that main lacks); the text between them is regenerated either way."""
    return hunk.ours if _marker_count(hunk.ours) > _marker_count(hunk.theirs) else hunk.theirs


def resolved_text(parts: list[str | Hunk]) -> str:
    return "\n".join(line for p in parts for line in ([p] if isinstance(p, str) else _kept(p)))


def conflicted_blocks(parts: list[str | Hunk], file: str) -> set[str]:
    """The blocks that hold a hunk of ``parts`` once resolved (their markers included)."""
    text, spans = side([p if isinstance(p, str) else Hunk(p.line, _kept(p), _kept(p)) for p in parts], "ours")
    found = markers(text, file).values()
    return {m.name for a, b in spans.values() for m in found if m.command_line <= max(a, b - 1) and a <= m.end}


def _located(parts: list[str | Hunk], hunk: Hunk, which: str, file: str) -> bool | None:
    """Whether ``which`` side of ``hunk`` lies within a block, read with the other hunks as a resolution keeps
    them; None where that side lacks markers the other has (the block's markers cannot be read from it)."""
    mixed = [p if p is hunk or isinstance(p, str) else Hunk(p.line, _kept(p), _kept(p)) for p in parts]
    version, spans = side(mixed, which)
    try:
        found = markers(version, file)
    except RegenError:
        return None
    return _within_block(found, spans[hunk.line])


def _hunk_side_at_fault(parts: list[str | Hunk], hunk: Hunk, file: str) -> str | None:
    """None when ``hunk`` lies in generated text on both sides, else the side that leaves it. A side read without
    markers (only the other side has them: a branch from before a block was marked, or a branch marking it) holds
    no marker line and is placed by the other side."""
    where = {"main's": _located(parts, hunk, "theirs", file), "this branch's": _located(parts, hunk, "ours", file)}
    lines = {"main's": hunk.theirs, "this branch's": hunk.ours}
    for name, inside in where.items():
        if inside is False or inside is None and _marker_count(lines[name]):
            return name
    return None if any(where.values()) else "main's"


def markdown_refusals(file: str, text: str) -> list[str]:
    """Each hunk of a conflicted markdown file that touches hand-written text, one line each."""
    parts, hunks = conflict_hunks(text)
    if any(p.file == file and p.section is None for p in PRODUCTS):
        return []  # the whole file is a command's
    refusals = []
    for hunk in hunks:
        fault = _hunk_side_at_fault(parts, hunk, file)
        if fault is not None:
            refusals.append(f"{file}:{hunk.line}: conflict outside generated blocks ({fault} side): resolve by hand")
    return refusals


def _blank_computed(text: str, computed: str) -> str:
    """A data file written one row to a line with the computed keys' values set to null (kept in their place,
    which the product's command, updating each row, keeps)."""
    pattern = re.compile(computed)
    out = []
    for line in text.split("\n"):
        body = line.strip()
        comma = body.endswith(",")
        body = body.removesuffix(",")
        if body.startswith("{") and body.endswith("}"):
            try:
                row = json.loads(body)
            except json.JSONDecodeError:
                row = None
            if isinstance(row, dict) and any(pattern.fullmatch(k) for k in row):
                row = {k: None if pattern.fullmatch(k) else v for k, v in row.items()}
                line = (
                    line[: len(line) - len(line.lstrip())]
                    + json.dumps(row, ensure_ascii=False)
                    + ("," if comma else "")
                )
        out.append(line)
    return "\n".join(out)


def merge_data(root: Path, product: Product) -> str | None:
    """The three-way merge of a data file with its computed values blanked on every side, or None when the
    sides still conflict (in what is written by hand)."""
    stages = []
    for n in (1, 2, 3):  # base, ours, theirs
        shown = _git(root, "show", f":{n}:{product.file}", check=False)
        stages.append(_blank_computed(shown, product.computed or r"(?!)"))
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / name for name in ("base", "ours", "theirs")]
        for path, text in zip(paths, stages, strict=True):
            path.write_text(text, encoding="utf-8")
        done = subprocess.run(
            ["git", "merge-file", "-p", str(paths[1]), str(paths[0]), str(paths[2])],
            capture_output=True,
            text=True,
            check=False,
        )
    return done.stdout if done.returncode == 0 else None


def _git(root: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RegenError(f"git {' '.join(args)}: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")
    return done.stdout


def resolve_merge(root: Path = ROOT, *, full: bool = False, jobs: int = 1) -> int:
    """After ``git merge`` stopped on conflicts: where every conflict of a file lies in generated blocks (or is a
    product's computed values), keep main's side (theirs), regenerate the conflicted blocks (everything when a data
    product conflicted, or ``full``), ``git add``; else name each hand-written conflict, one line each, change
    nothing and return 2. ``--check`` afterwards finds the blocks the merged code moved elsewhere."""
    if not _git(root, "rev-parse", "-q", "--verify", "MERGE_HEAD", check=False).strip():
        raise RegenError("no merge in progress (git merge main stopped on conflicts is when --resolve applies)")
    conflicted = [f for f in _git(root, "diff", "--name-only", "--diff-filter=U").splitlines() if f]
    if not conflicted:
        print("no conflicted files")
        return 0
    data = {p.file: p for p in PRODUCTS if p.computed is not None}
    resolved: dict[str, str] = {}
    blocks: set[str] = set()
    refusals: list[str] = []
    for file in conflicted:
        text = (root / file).read_text(encoding="utf-8")
        if file in data:
            merged = merge_data(root, data[file])
            if merged is None:
                refusals.append(f"{file}: rows written by hand conflict, not only computed values: resolve by hand")
            else:
                resolved[file] = merged
        elif file in marked_files(root) or file.endswith(".md") and any(e.file == file for e in PRODUCTS):
            found = markdown_refusals(file, text)
            refusals.extend(found)
            if not found:
                parts = conflict_hunks(text)[0]
                resolved[file] = resolved_text(parts)
                blocks |= conflicted_blocks(parts, file)
        else:
            line = next((h.line for h in conflict_hunks(text)[1]), 1)
            refusals.append(f"{file}:{line}: not a generated file: resolve by hand, git add it, then --resolve again")
    if refusals:
        print("\n".join(refusals), file=sys.stderr)
        return 2
    for file, text in resolved.items():
        (root / file).write_text(text, encoding="utf-8")
    generated = {e.file for e in (*PRODUCTS, *BLOCKS) if (root / e.file).is_file()} - set(resolved)
    before = {f: (root / f).read_bytes() for f in generated}
    registered = {e.name for e in (*PRODUCTS, *BLOCKS)}
    if full or any(file in data for file in resolved):
        regenerate(root=root, jobs=jobs)
    elif blocks & registered:
        regenerate(sorted(blocks & registered), root=root, jobs=jobs)
    _git(root, "add", "--", *resolved)
    changed = sorted(f for f in generated if (root / f).read_bytes() != before[f])
    print(f"resolved (main's side, regenerated) and added: {', '.join(resolved)}")
    if changed:
        print(f"also regenerated, not added (check, then git add): {', '.join(changed)}")
    for problem in agreement(root):  # a block the branch marked the older way, say
        print(f"to do before --check passes: {problem}")
    return 0


# --------------------------------------------------------------------------------------------------------------
# The registry, in the order the tool runs it: the products first (the blocks read them), then file by file

PRODUCTS: tuple[Product, ...] = (
    # the scored rows (published_compare.py's MLPerf and vLLM / SGLang rows; kv_transfer_compare.py's), which the
    # blocks below print from
    Product(
        "published_throughput",
        "benchmarks/data/published_throughput.json",
        "python benchmarks/published_compare.py --update-data",
        computed=r"kvplan_\w+|ratio|ratio_steady|verdict",
    ),
    Product(
        "kv_transfer",
        "benchmarks/data/kv_transfer.json",
        "python benchmarks/kv_transfer_compare.py --update-data",
        computed=r"kvplan_\w+|ratio|size_ratio",
    ),
    # docs/accuracy.md: accuracy.py writes the file up to the registry sweep's section, registry_sweep.py that section
    Product(
        "accuracy",
        "docs/accuracy.md",
        "python benchmarks/accuracy.py --write docs/accuracy.md",
        absent="llm-analysis 0.2.2 (pip install --no-deps llm-analysis==0.2.2 fire==0.5.0 termcolor)",
    ),
    Product(
        "registry-sweep",
        "docs/accuracy.md",
        "python benchmarks/registry_sweep.py --write docs/accuracy.md",
        section=("<!-- registry-sweep:begin -->", "<!-- registry-sweep:end -->"),
    ),
    # docs/validation.md's engine-log section, from the published logs kept beside the checkout (/work/shared)
    Product(
        "engine-logs",
        "docs/validation.md",
        "python scripts/engine_validation.py --write docs/validation.md",
        section=("<!-- engine-logs:begin -->", "<!-- engine-logs:end -->"),
        requires="../shared/reference/engine_logs.json",
    ),
)

_COST = "docs/cost.md"
_PC = "python benchmarks/published_compare.py"
_AIC = "python benchmarks/aiconfigurator_compare.py"


def _console(
    name: str, command: str, *, file: str = "README.md", absent: str | None = None, stderr: bool = True
) -> Block:
    """A transcript: each command after ``$ `` and what it prints (any exit status)."""
    return Block(name, file, command, fence="console", transcript=True, stderr=stderr, absent=absent)


BLOCKS: tuple[Block, ...] = (
    # README.md: the CLI's own output
    _console("cli_estimate", "kvplan estimate llama-3.1-8b --context 4k,32k,128k --gpu h100-sxm"),
    _console(
        "cli_estimate_hub",
        "kvplan estimate Qwen/Qwen3-32B -c 32k",
        absent="the Hugging Face Hub (the block was made against tests/fakehub.py)",
    ),
    _console(
        "cli_estimate_fp8_tp2",
        "kvplan estimate gemma-3-27b --context 8k,128k --batch 4 --kv-dtype fp8 --gpu h100-sxm --tp 2",
    ),
    _console("cli_estimate_llama2", "kvplan estimate llama-2-13b --context 4k,16k,128k"),
    _console("cli_models", "kvplan models"),
    _console("cli_show", "kvplan show gemma-3-27b"),
    _console("cli_gpus", "kvplan gpus"),
    _console(
        "cli_import",
        "kvplan import tests/data/hf_configs/falcon-7b-resaved.json -o /tmp/falcon.yaml --force && kvplan "
        "estimate /tmp/falcon.yaml -c 2k",
    ),
    _console("cli_capacity", "kvplan capacity llama-3.1-8b --gpu h100-sxm --context 32k"),
    _console("cli_capacity_l4", "kvplan capacity llama-3.1-70b --gpu l4 --context 32k | tail -5"),
    _console("cli_capacity_nvfp4", "kvplan capacity llama-3.1-8b --gpu b200 --context 32k --kv-dtype nvfp4 | head -9"),
    _console(
        "cli_capacity_window",
        "kvplan capacity mistral-7b-v0.1 --gpu h100-sxm --context 32k --engine trtllm --max-attention-window "
        "4096 | head -9 ; kvplan capacity mistral-7b-v0.1 --gpu h100-sxm --context 32k --engine trtllm "
        "--max-attention-window 4096 | tail -2",
    ),
    _console(
        "cli_plan_users", "kvplan plan llama-3.1-70b --users 64 --context 32k --gpus h100-sxm,a100-80gb,l40s --top 5"
    ),
    _console(
        "cli_plan_targets",
        "kvplan plan llama-3.1-70b --rate 10 --input 2k:4k --output 512 --ttft 1s --tpot 50ms --gpus "
        "h100-sxm,h200 --top 5",
    ),
    _console(
        "cli_plan_deepseek",
        "kvplan plan deepseek-v3 --rate 2 --input 1k --output 8k --ttft 30s --tpot 300ms --gpus h200 --top 4",
    ),
    _console(
        "cli_plan_disaggregated",
        "kvplan plan llama-3.1-8b --rate 20 --ttft 500ms --tpot 30ms --gpus h200 --disaggregated --top 4",
    ),
    _console(
        "cli_plan_attention_dp",
        "kvplan plan qwen3-30b-a3b --rate 20 --gpus h200 --engine trtllm --max-gpus 4 --top 4 "
        "--attention-dp-balance --attention-dp-batching-wait-iters 0",
    ),
    _console(
        "cli_plan_batch_tuning",
        "kvplan plan llama-3.1-8b --rate 20 --input 1000 --output 1000 --gpus h100-sxm --engine trtllm@0.17 "
        "--weights-dtype fp8 --kv-dtype fp8 --max-gpus 2 --top 3 --batch-size-tuning",
    ),
    _console("cli_capacity_deepseek_tp", "kvplan capacity deepseek-v3 --gpu h200 --tp 8 -c 32k | head -9"),
    _console("cli_capacity_deepseek_dp", "kvplan capacity deepseek-v3 --gpu h200 --dp 8 --ep -c 32k | head -9"),
    _console(
        "cli_capacity_kv_offload",
        "kvplan capacity deepseek-v3 --gpu h200 --dp 8 --ep -c 32k --kv-offload 1TiB | tail -6",
    ),
    _console("cli_plan_deepseek_users", "kvplan plan deepseek-v3 --users 256 --context 32k --gpus h200 --top 4"),
    _console("cli_check_log", "kvplan check-log examples/logs/vllm-deepseek-v2-lite-h100.log", stderr=False),
    _console(
        "cli_check_log_stdin",
        "kvplan check-log - --gpu a100-80gb < examples/logs/vllm-qwen3-8b-no-kv-memory.log",
        stderr=False,
    ),
    _console(
        "cli_check_log_max_seq_len", "kvplan check-log examples/logs/vllm-llama-3.1-8b-max-seq-len.log", stderr=False
    ),
    _console("cli_cost", "kvplan cost llama-3.1-8b --gpu h100-sxm --context 4k,32k,128k"),
    _console("cli_cost_training", "kvplan cost llama-2-7b --training --attention s2 --context 2k,8k"),
    _console("cli_rope", "kvplan rope llama-2-7b --method yarn --factor 8 --gpu h100-sxm"),
    _console("cli_profile", "kvplan profile llama-3.1-405b --device meta -c 32k,128k 2>/dev/null"),
    # README.md: the validation figures ("Accuracy, speed and validation")
    Block("validation_summary", "README.md", "python benchmarks/validation_summary.py"),
    # docs/cost.md, in file order
    Block(
        "fit_fp4_forms", _COST, "python benchmarks/fit_fp4.py --forms", start=r"^  not adopted", stop=r"^# engine vllm",
        fence="",
    ),
    Block("fit_fp4", _COST, "python benchmarks/fit_fp4.py", fence=""),
    Block("fit_fmha", _COST, "python benchmarks/fit_fmha.py --markdown"),
    Block("aiconfigurator_summary", _COST, _AIC, start=r"^\d+ cases against aiconfigurator", stop=PARAGRAPH, fence=""),
    Block("aiconfigurator_holdout", _COST, f"{_AIC} --holdout", fence=""),
    Block("aiconfigurator_fp4", _COST, f"{_AIC} --fp4", fence=""),
    Block("aiconfigurator_mixtral", _COST, f"{_AIC} --mixtral", fence=""),
    Block("aiconfigurator_b200_gemm", _COST, f"{_AIC} --markdown", start=r"^\| table \| kernel \| m=1 ", stop=TABLE),
    Block("aiconfigurator_repriced", _COST, f"{_AIC} --markdown", start=r"^\| case \| aic vLLM \|", stop=TABLE),
    Block("mla_compare", _COST, "python benchmarks/mla_compare.py --markdown"),
    Block(
        "aiconfigurator_grid",
        _COST,
        f"{_AIC} --markdown",
        start=r"^\| model \| GPU \| engine \| TP \| batch \| ISL ",
        stop=TABLE,
    ),
    Block("dsa_compare", _COST, "python benchmarks/dsa_compare.py --markdown"),
    Block("moe_compare", _COST, "python benchmarks/moe_compare.py --markdown"),
    Block("moe_bucket_compare", _COST, "python benchmarks/moe_bucket_compare.py --markdown"),
    Block("gemm_compare", _COST, "python benchmarks/gemm_compare.py --markdown"),
    Block("gemm_compare_waves", _COST, "python benchmarks/gemm_compare.py --waves --markdown"),
    Block("fp8_quant_compare", _COST, "python benchmarks/fp8_quant_compare.py", fence="text"),
    Block("moe_gap", _COST, "python benchmarks/moe_gap.py --markdown"),
    Block("moe_gap_published", _COST, "python benchmarks/moe_gap.py --published", fence=""),
    Block("moe_compare_published", _COST, "python benchmarks/moe_compare.py --published", fence=""),
    Block("mamba_scan", _COST, "python benchmarks/mamba_compare.py --scan", fence="text"),
    Block("mamba_compare", _COST, "python benchmarks/mamba_compare.py", start=r"^by GPU, phase:", fence="text"),
    Block("hybrid_compare", _COST, "python benchmarks/hybrid_compare.py", fence="text"),
    Block("host_ab", _COST, "python benchmarks/fit_host.py", fence="text"),
    Block("gdn_fit", _COST, "python benchmarks/gdn_compare.py --fit", fence="text"),
    Block("gdn_compare", _COST, "python benchmarks/gdn_compare.py", start=r"^by engine, GPU, phase:", fence="text"),
    Block("gdn_conv1d", _COST, "python benchmarks/gdn_compare.py --conv1d", fence="text"),
    Block("published_summary", _COST, f"{_PC} --markdown", start=r"^trtllm-1\.0 \(TensorRT-LLM v1\.0", fence=""),
    Block("gb200_candidates", _COST, "python benchmarks/gb200_candidates.py --markdown"),
    Block("blackwell_v10_kernels", _COST, "python benchmarks/blackwell_v10_kernels.py --markdown"),
    Block("run_residual", _COST, f"{_PC} --run-residual", start=r"^run residual ", fence=""),
    Block(
        "prompt_split",
        _COST,
        f"{_PC} --prompt-split",
        start=r"^prompt split Qwen3-235B-A22B ",
        stop=r"^prompt split (?!Qwen3-235B-A22B )",
        fence="",
    ),
    Block("prompt_fit", _COST, f"{_PC} --prompt-split", start=r"^prompt fit ", stop=r"^prompt v1\.0 rows ", fence=""),
    Block("prompt_later_page", _COST, f"{_PC} --prompt-split", start=r"^prompt v1\.0 rows ", fence=""),
    Block("long_prompt_gap", _COST, "python benchmarks/long_prompt_gap.py", fence=""),
    Block("dp_ep_gap", _COST, "python benchmarks/dp_ep_gap.py", fence=""),
    Block("dp_ep_gap_published", _COST, "python benchmarks/dp_ep_gap.py --published", fence=""),
    Block("moe_release_gap", _COST, "python benchmarks/moe_release_gap.py --published", fence=""),
    Block("ep_readings", _COST, f"{_PC} --ep-readings", start=r"^ep reading ", fence=""),
    Block("graph_pool", _COST, f"{_PC} --graph-pool", start=r"^graph pool summary ", fence=""),
    Block(
        "dp_balance",
        _COST,
        f"{_PC} --dp-balance --markdown",
        start=r"^\| model \| GPU \| split \| ISL/OSL \| weights \| published tok/s \| independent ",
        stop=TABLE,
    ),
    Block(
        "dp_balance_summary",
        _COST,
        f"{_PC} --dp-balance --markdown",
        start=r"^attention DP rows: \d+; the published figure lies between",
        fence="",
    ),
    Block(
        "dp_candidates",
        _COST,
        f"{_PC} --dp-candidates --markdown",
        start=r"^\| model \| GPU \| split \| ISL/OSL \| weights \| steady state \| eager ",
        stop=TABLE,
    ),
    Block(
        "dp_candidates_lines",
        _COST,
        f"{_PC} --dp-candidates --markdown",
        start=r"^dp-candidates fp8 attention-DP rows",
        fence="",
    ),
    Block(
        "bench_heuristic", _COST, f"{_PC} --bench-heuristic", start=r"^trtllm-1\.0 FP8 rows with trtllm-bench", fence=""
    ),
    Block(
        "published_runs",
        _COST,
        f"{_PC} --markdown",
        start=r"^\| source \| model \| GPU \| split \| ISL/OSL \| published tok/s ",
        stop=TABLE,
    ),
    Block(
        "published_not_modelled",
        _COST,
        f"{_PC} --markdown",
        start=r"^\| source \| model \| GPU \| TP \| weights \| published points ",
        stop=TABLE,
    ),
    Block("mlperf_datasets", _COST, f"{_PC} --markdown", start=r"^\| benchmark set \|", stop=TABLE),
    Block("aiconfigurator_classes_405b", _COST, f"{_AIC} --classes llama-3.1-405b --markdown"),
    Block("gqa_decode_fit", _COST, "python benchmarks/gqa_decode_compare.py --fit", fence="text"),
    Block("gqa_decode_compare", _COST, "python benchmarks/gqa_decode_compare.py", start=r"^engine  GPU", fence="text"),
    Block("mlperf_operating_points", _COST, f"{_PC} --markdown", start=r"^\| run \| replica rate ", stop=TABLE),
    Block("mlperf_step_terms", _COST, f"{_PC} --step-terms --markdown", start=r"^\| run \| step \| ms ", stop=TABLE),
    Block("mlperf_streaming", _COST, f"{_PC} --streaming", start=r"^streaming ", fence="console"),
    Block(
        "mlperf_offline_drain",
        _COST,
        "python benchmarks/mlperf_offline_drain.py deepseek-r1.csv",
        absent="openshift-psap/performance-dashboard's mlperf-data/summaries/deepseek-r1.csv (network)",
        fence="console",
    ),
    Block("mlperf_balance", _COST, f"{_PC} --mlperf-balance", start=r"^balance ", fence="console"),
    Block(
        "published_mlperf",
        _COST,
        f"{_PC} --markdown",
        start=r"^\| round \| model \| system \| scenario ",
        stop=TABLE,
    ),
    Block("large_scale_ep", _COST, f"{_PC} --markdown", start=r"^\| result \| stated configuration ", stop=TABLE),
    Block("engine_rows", _COST, f"{_PC} --markdown", start=r"^\| source \| engine \(run / kvplan\) ", stop=TABLE),
    Block("engine_rows_summary", _COST, f"{_PC} --markdown", start=r"^vultr-b200-vllm ", fence=""),
    Block("prompt_phase", _COST, f"{_PC} --prompt-phase", start=r"^prompt phase", fence="text"),
    Block(
        "engine_phases",
        _COST,
        f"{_PC} --phases --markdown",
        start=r"^\| model \| engine \| GPU \| TP \| ISL/OSL \| concurrency / prompts \| mean TTFT",
        stop=TABLE,
    ),
    Block(
        "engine_not_scored",
        _COST,
        f"{_PC} --markdown",
        start=r"^\| result \| engine \| published \| why not scored ",
        stop=TABLE,
    ),
    Block("serving_sim_tpot", _COST, "python benchmarks/serving_sim.py --tpot --mlperf"),
    Block("serving_ttft_check", _COST, "python benchmarks/serving_ttft_check.py"),
    Block("serving_sim", _COST, "python benchmarks/serving_sim.py"),
    Block("serving_sim_dp", _COST, "python benchmarks/serving_sim.py --dp"),
    Block("serving_sim_dp_long", _COST, "python benchmarks/serving_sim.py --dp --long"),
    Block("serving_sim_dealing", _COST, "python benchmarks/serving_sim.py --dealing"),
    Block("serving_sim_graph", _COST, "python benchmarks/serving_sim.py --graph"),
    Block("serving_sim_balance", _COST, "python benchmarks/serving_sim.py --balance"),
    Block("serving_sim_retract", _COST, "python benchmarks/serving_sim.py --retract"),
    Block(
        "overlap_summary",
        _COST,
        "python benchmarks/overlap_compare.py",
        start=r"^published attention DP \+ EP rows, before",
        fence="",
    ),
    Block(
        "kv_transfer_tables",
        _COST,
        "python benchmarks/kv_transfer_compare.py --markdown",
        stop=r"^transfers: \d+ compared",
    ),
    Block(
        "kv_transfer_report",
        _COST,
        "python benchmarks/kv_transfer_compare.py --markdown",
        start=r"^transfers: \d+ compared",
        fence="",
    ),
    Block(
        "aiconfigurator_agg",
        _COST,
        f"{_AIC} --agg --markdown",
        start=r"^\| model \| GPU \| engine \| TP \| ISL/OSL \| req/s",
        stop=TABLE,
    ),
    Block("dp_balance_sim", _COST, "python benchmarks/dp_balance_sim.py", transcript=True, fence="console"),
    Block(
        "host_floor",
        _COST,
        f"{_PC} --host-floor --markdown",
        start=r"^\| model \| GPU \| split \| ISL/OSL \| kvplan / published \| implied host",
        stop=TABLE,
    ),
    Block("host_floor_lines", _COST, f"{_PC} --host-floor --markdown", start=r"^host floor ", fence=""),
)


# --------------------------------------------------------------------------------------------------------------
# The command line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", metavar="NAME", help="these blocks or products only")
    ap.add_argument("--list", action="store_true", help="name, file and command of every block and product")
    ap.add_argument("--check", action="store_true", help="exit 1 naming the stale blocks; write nothing")
    ap.add_argument("--resolve", action="store_true", help="resolve a stopped merge's conflicts in generated content")
    ap.add_argument("--full", action="store_true", help="with --resolve: regenerate everything, not the conflicts")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="commands run at once (default: CPUs)")
    args = ap.parse_args(argv)
    # a product's file is put back when --check is stopped too (SIGTERM, as for SIGINT, unwinds the finally)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if args.list:
            for e in (*PRODUCTS, *BLOCKS):
                need = not_run(e)
                note = f"  [not run: needs {need}]" if need else ""
                print(f"{e.name}\t{e.file}\t{e.command}{note}")
            return 0
        if args.resolve:
            return resolve_merge(full=args.full, jobs=args.jobs)
        problems = agreement()
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
        stale = regenerate(args.only, check=args.check, jobs=args.jobs)
    except RegenError as e:
        print(f"regen_docs: {e}", file=sys.stderr)
        return 2
    if args.check:
        if stale:
            print("\n".join(stale))
            print(f"{len(stale)} stale; `python benchmarks/regen_docs.py` regenerates them", file=sys.stderr)
            return 1
        print("every generated block and product is what its command prints")
    return 0


if __name__ == "__main__":
    sys.exit(main())

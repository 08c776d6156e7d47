"""benchmarks/regen_docs.py: the markers, the registry, --check and the regeneration of a block."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("regen_docs", ROOT / "benchmarks" / "regen_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["regen_docs"] = module
    spec.loader.exec_module(module)
    return module


regen = _load()


def test_registry_and_files_agree_both_ways() -> None:
    # every marked block is registered with the same file and command, and every registered one is marked
    assert regen.agreement() == []


def test_a_block_marked_without_its_command_is_reported(tmp_path: Path) -> None:
    # the older markers (begin / end only) are read, and named as lacking their command line
    (tmp_path / "README.md").write_text("prose\n<!-- new_block:begin -->\nbody\n<!-- new_block:end -->\n")
    found = regen.markers((tmp_path / "README.md").read_text(), "README.md")
    assert found["new_block"].command is None and (found["new_block"].begin, found["new_block"].end) == (1, 3)
    problems = regen.agreement(tmp_path)
    assert "README.md:2: block 'new_block' has no command line" in problems[0]


def test_registry_names_are_unique_and_files_exist() -> None:
    names = [e.name for e in (*regen.PRODUCTS, *regen.BLOCKS)]
    assert len(names) == len(set(names))
    for entry in (*regen.PRODUCTS, *regen.BLOCKS):
        assert (ROOT / entry.file).is_file(), entry


def test_markers_are_well_formed_in_every_file() -> None:
    for file in regen.marked_files():
        found = regen.markers((ROOT / file).read_text(encoding="utf-8"), file)
        for m in found.values():
            assert m.command_line + 1 == m.begin < m.end


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- a:command x -->\n<!-- a:begin -->\nbody\n", "has no <!-- a:end -->"),
        ("<!-- a:command x -->\nprose\n<!-- a:begin -->\n<!-- a:end -->\n", "is not followed by"),
        ("<!-- a:command x -->\n<!-- a:begin -->\n<!-- a:end -->\n" * 2, "used twice"),
        ("<!-- a:command x -->\n<!-- a:begin -->\n<!-- b:end -->\n", "<!-- b:end --> without its begin"),
        ("<!-- a:command x -->\n<!-- a:begin -->\n<!-- b:command y -->\n", "starts inside block 'a'"),
    ],
)
def test_malformed_markers_are_refused(text: str, message: str) -> None:
    with pytest.raises(regen.RegenError, match=message):
        regen.markers(text, "x.md")


def test_select_takes_the_part_between_start_and_stop() -> None:
    out = "head\n\n| a |\n|---|\n| 1 |\n\ntail 1\ntail 2\n"
    assert regen.select(out, None, None, name="n") == out.rstrip("\n")
    assert regen.select(out, r"^\| a", regen.PARAGRAPH, name="n") == "| a |\n|---|\n| 1 |"
    assert regen.select(out, r"^tail", None, name="n") == "tail 1\ntail 2"
    assert regen.select("x\n| a |\n| 1 |\n", r"^\| a", regen.TABLE, name="n") == "| a |\n| 1 |"  # to the end
    assert regen.select(out, None, r"^tail", name="n") == "head\n\n| a |\n|---|\n| 1 |"  # trailing blank dropped
    with pytest.raises(regen.RegenError, match="no line of the output matches"):
        regen.select(out, r"^nothing", None, name="n")


def test_render_fences_and_transcripts() -> None:
    block = regen.Block("b", "x.md", "kvplan a ; kvplan b", fence="console", transcript=True)
    assert block.render(["one\n", "two\n"]) == "```console\n$ kvplan a\none\n$ kvplan b\ntwo\n```"
    plain = regen.Block("p", "x.md", "python s.py", start=r"^x", fence="")
    assert plain.render(["w\nx 1\nx 2\n"]) == "```\nx 1\nx 2\n```"


def test_fast_blocks_are_what_their_commands_print() -> None:
    # three blocks that run in about a second each: a script's markdown, a fenced script output, a CLI transcript
    assert regen.regenerate(["moe_gap", "fp8_quant_compare", "cli_gpus"], check=True, jobs=2) == []


def test_check_names_a_stale_block_and_regeneration_mends_it(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    marked = regen.markers(readme, "README.md")["cli_gpus"]
    lines = readme.split("\n")
    lines[marked.begin + 3] = lines[marked.begin + 3] + " (edited by hand)"
    (tmp_path / "README.md").write_text("\n".join(lines), encoding="utf-8")
    stale = regen.regenerate(["cli_gpus"], root=tmp_path, check=True)
    assert len(stale) == 1 and stale[0].startswith("cli_gpus (README.md) is stale") and "edited by hand" in stale[0]
    assert (tmp_path / "README.md").read_text(encoding="utf-8") == "\n".join(lines)  # --check writes nothing
    regen.regenerate(["cli_gpus"], root=tmp_path)
    assert (tmp_path / "README.md").read_text(encoding="utf-8") == readme
    assert regen.regenerate(["cli_gpus"], root=tmp_path, check=True) == []  # a second run changes nothing


def test_unknown_name_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert regen.main(["--only", "no_such_block"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "regen_docs: unknown block 'no_such_block'; see --list"


def test_list_names_every_block_with_its_file_and_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert regen.main(["--list"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == len(regen.PRODUCTS) + len(regen.BLOCKS)
    assert ["mla_compare", "docs/cost.md", "python benchmarks/mla_compare.py --markdown"] in rows


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, capture_output=True, text=True
    )
    return done.stdout


def _readme_lines() -> list[str]:
    """A README of prose around the ``cli_gpus`` block as the real one holds it (markers included)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    m = regen.markers(readme, "README.md")["cli_gpus"]
    return ["# t", "", "prose before", "", *readme.split("\n")[m.command_line : m.end + 1], "", "prose after", ""]


def _merge(root: Path, base: list[str], main: list[str], branch: list[str]) -> Path:
    """A repository whose branch ``side`` (README ``branch``) merging ``main`` stopped on conflicts."""
    path = root / "README.md"
    path.write_text("\n".join(base), encoding="utf-8")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "README.md")
    _git(root, "commit", "-q", "-m", "base")
    _git(root, "checkout", "-q", "-b", "side")
    path.write_text("\n".join(branch), encoding="utf-8")
    _git(root, "commit", "-q", "-am", "side")
    _git(root, "checkout", "-q", "main")
    path.write_text("\n".join(main), encoding="utf-8")
    _git(root, "commit", "-q", "-am", "main")
    _git(root, "checkout", "-q", "side")
    _git(root, "merge", "main")
    assert "<<<<<<< " in path.read_text(encoding="utf-8")
    return path


def _edited(lines: list[str], at: int, edit: str) -> list[str]:
    return [line + edit if i == at else line for i, line in enumerate(lines)]


def test_resolve_takes_a_side_of_a_generated_conflict_and_regenerates(tmp_path: Path) -> None:
    # both branches edited the same output line of the cli_gpus block: resolved, regenerated, added
    lines = _readme_lines()
    at = lines.index("$ kvplan gpus") + 1
    path = _merge(tmp_path, lines, _edited(lines, at, " (main)"), _edited(lines, at, " (side)"))
    assert regen.resolve_merge(tmp_path) == 0
    assert path.read_text(encoding="utf-8") == "\n".join(lines)
    assert _git(tmp_path, "diff", "--name-only", "--diff-filter=U") == ""
    assert _git(tmp_path, "diff", "--cached", "--name-only") == "README.md\n"


def test_resolve_a_branch_from_before_the_markers(tmp_path: Path) -> None:
    # main added the block's markers; the branch, without them, edited the block's first line (next to them)
    lines = _readme_lines()
    bare = [line for line in lines if not regen.MARKER.match(line)]
    fence = bare.index("```console")
    path = _merge(tmp_path, bare, lines, _edited(bare, fence, " (side)"))
    assert regen.resolve_merge(tmp_path) == 0
    assert path.read_text(encoding="utf-8") == "\n".join(lines)


def test_resolve_a_branch_adding_the_markers(tmp_path: Path) -> None:
    # the branch marked the block; main, without the markers, edited its first line: the markers are kept
    lines = _readme_lines()
    bare = [line for line in lines if not regen.MARKER.match(line)]
    fence = bare.index("```console")
    path = _merge(tmp_path, bare, _edited(bare, fence, " (main)"), lines)
    assert regen.resolve_merge(tmp_path) == 0
    assert path.read_text(encoding="utf-8") == "\n".join(lines)


def test_resolve_refuses_a_conflict_in_prose(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # both branches edited the prose line before the block: exit 2, one line naming file and hunk, nothing written
    lines = _readme_lines()
    at = lines.index("prose before")
    path = _merge(tmp_path, lines, _edited(lines, at, " (main)"), _edited(lines, at, " (side)"))
    before = path.read_text(encoding="utf-8")
    assert regen.resolve_merge(tmp_path) == 2
    assert capsys.readouterr().err.strip() == (
        "README.md:3: conflict outside generated blocks (main's side): resolve by hand"
    )
    assert path.read_text(encoding="utf-8") == before


def test_resolve_refuses_prose_next_to_new_markers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # main added the markers; the branch edited the prose line right before where they go: that is hand-written
    lines = _readme_lines()
    bare = [line for line in lines if not regen.MARKER.match(line)]
    at = bare.index("```console") - 1
    bare[at] = "prose just before"
    main = list(lines)
    main[main.index("<!-- cli_gpus:command kvplan gpus -->") - 1] = "prose just before"
    _merge(tmp_path, bare, main, _edited(bare, at, " (side)"))
    assert regen.resolve_merge(tmp_path) == 2
    assert "conflict outside generated blocks" in capsys.readouterr().err


def test_resolve_outside_a_merge_is_refused(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    with pytest.raises(regen.RegenError, match="no merge in progress"):
        regen.resolve_merge(tmp_path)


def test_data_rows_merge_with_their_computed_values_blanked(tmp_path: Path) -> None:
    # both sides re-scored row 1 (a computed value) and one side added a field by hand to row 2: the merge is
    # clean once the computed values are blanked in place, ready for the product's command to fill them
    product = next(p for p in regen.PRODUCTS if p.name == "published_throughput")
    rows = [{"model": "a", "published_tok_s": 10, "ratio": 1.0, "verdict": "within 20%"}, {"model": "b", "x": 1}]

    def dump(rows: list[dict]) -> str:
        return '{\n "rows": [\n' + ",\n".join("  " + json.dumps(r) for r in rows) + "\n ]\n}\n"

    file = tmp_path / product.file
    file.parent.mkdir(parents=True)
    file.write_text(dump(rows))
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "base")
    _git(tmp_path, "checkout", "-q", "-b", "side")
    file.write_text(dump([{**rows[0], "ratio": 1.1}, {**rows[1], "y": 2}]))
    _git(tmp_path, "commit", "-q", "-am", "side")
    _git(tmp_path, "checkout", "-q", "main")
    file.write_text(dump([{**rows[0], "ratio": 0.9}, rows[1]]))
    _git(tmp_path, "commit", "-q", "-am", "main")
    _git(tmp_path, "checkout", "-q", "side")
    _git(tmp_path, "merge", "main")
    merged = regen.merge_data(tmp_path, product)
    assert merged == dump([{**rows[0], "ratio": None, "verdict": None}, {**rows[1], "y": 2}])
    # a hand-written value changed on both sides still conflicts
    _git(tmp_path, "merge", "--abort")
    file.write_text(dump([{**rows[0], "published_tok_s": 11}, rows[1]]))
    _git(tmp_path, "commit", "-q", "-am", "side 2")
    _git(tmp_path, "checkout", "-q", "main")
    file.write_text(dump([{**rows[0], "published_tok_s": 12}, rows[1]]))
    _git(tmp_path, "commit", "-q", "-am", "main 2")
    _git(tmp_path, "checkout", "-q", "side")
    _git(tmp_path, "merge", "main")
    assert regen.merge_data(tmp_path, product) is None


def test_a_product_section_is_what_its_command_writes() -> None:
    # docs/validation.md's engine-log section (the logs are kept beside the checkout, in shared/); --check puts
    # the file back as it was
    product = next(p for p in regen.PRODUCTS if p.name == "engine-logs")
    if regen.not_run(product):
        pytest.skip(regen.not_run(product))
    before = (ROOT / product.file).read_bytes()
    assert regen.regenerate(["engine-logs"], check=True) == []
    assert (ROOT / product.file).read_bytes() == before

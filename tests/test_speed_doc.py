"""benchmarks/speed.py --write regenerates only the head of docs/speed.md; the hand-written sections stay."""

from __future__ import annotations

from pathlib import Path

from tests.benchmods import bench_module

speed = bench_module("speed")
DOC = Path(__file__).resolve().parents[1] / "docs" / "speed.md"


def test_kept_sections_start_at_the_first_second_level_heading(tmp_path: Path) -> None:
    target = tmp_path / "speed.md"
    target.write_text("# Speed\n\nold figures\n\n## Latency paths\n\nby hand\n\n### Stop 1\n\nmore\n", encoding="utf-8")
    assert speed.kept_sections(target) == "\n## Latency paths\n\nby hand\n\n### Stop 1\n\nmore\n"


def test_kept_sections_of_a_new_or_headless_file_is_empty(tmp_path: Path) -> None:
    assert speed.kept_sections(tmp_path / "absent.md") == ""
    flat = tmp_path / "flat.md"
    flat.write_text("# Speed\n\nonly the generated head\n", encoding="utf-8")
    assert speed.kept_sections(flat) == ""


def test_the_docs_head_is_the_template_and_the_rest_is_kept() -> None:
    """docs/speed.md = the template's text around the figures block, then the kept sections: what --write writes."""
    text = DOC.read_text(encoding="utf-8")
    before, after = speed.SPEED_DOC.split("{figures}")
    assert text.startswith(before)
    head_end = text.index(after) + len(after)
    assert text[head_end:] == speed.kept_sections(DOC)
    assert "## Latency paths" in speed.kept_sections(DOC)

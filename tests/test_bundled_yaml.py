"""kvplan.files.read_bundled_yaml: the parse of a shipped YAML file kept in __pycache__/, never stale."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvplan import files
from kvplan.catalog import specs_dir
from kvplan.errors import InvalidInput
from kvplan.files import read_bundled_yaml, read_yaml
from kvplan.hardware import _CATALOG

SPEC = "name: toy\nlayers: 2\nwidths: [1, 2.5, true, null]\nnested: {a: 1}\n"


@pytest.fixture(autouse=True)
def writes_caches(monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # the test environment may set PYTHONDONTWRITEBYTECODE


def _cache(path: Path) -> Path:
    return path.parent / "__pycache__" / f"{path.name}.{sys.implementation.cache_tag}.parsed"


def test_the_cache_sits_where_byte_code_would(tmp_path, monkeypatch):
    path = tmp_path / "toy.yaml"
    path.write_text(SPEC)
    assert files.parsed_cache(path) == _cache(path)
    monkeypatch.setattr(sys, "pycache_prefix", str(tmp_path / "prefix"))  # PYTHONPYCACHEPREFIX
    kept = files.parsed_cache(path)
    assert kept.is_relative_to(tmp_path / "prefix") and kept.name == _cache(path).name
    assert read_bundled_yaml(path) == read_yaml(path) and kept.is_file() and not _cache(path).exists()


def test_the_cache_answers_with_the_parse_itself(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(SPEC)
    first = read_bundled_yaml(path)
    assert _cache(path).is_file()
    second = read_bundled_yaml(path)  # from the cache
    # repr: 1, 1.0 and True are == but not the same figure; the cache keeps each type
    assert repr(first) == repr(second) == repr(read_yaml(path))
    assert second == {"name": "toy", "layers": 2, "widths": [1, 2.5, True, None], "nested": {"a": 1}}


def test_an_edited_file_is_parsed_again_even_at_the_same_size_and_time(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(SPEC)
    read_bundled_yaml(path)
    st = os.stat(path)
    path.write_text(SPEC.replace("layers: 2", "layers: 3"))  # same length
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert read_bundled_yaml(path)["layers"] == 3
    assert read_bundled_yaml(path)["layers"] == 3  # and the cache now holds the new parse


def test_another_parser_parses_again(tmp_path, monkeypatch):
    path = tmp_path / "toy.yaml"
    path.write_text(SPEC)
    read_bundled_yaml(path)
    parsed = []
    real = files._parse_yaml
    monkeypatch.setattr(files, "_parse_yaml", lambda text, p: parsed.append(p) or real(text, p))
    read_bundled_yaml(path)
    assert parsed == []  # a hit
    monkeypatch.setattr(files, "_parser_id", lambda: ("/elsewhere/yaml/__init__.py", 1, 2))
    data = read_bundled_yaml(path)
    assert parsed == [path] and data == read_yaml(path)


@pytest.mark.parametrize("blob", [b"", b"\x00garbage", b"\xe9\x03\x00\x00\x00"])
def test_a_broken_cache_is_parsed_over(tmp_path, blob):
    path = tmp_path / "toy.yaml"
    path.write_text(SPEC)
    _cache(path).parent.mkdir()
    _cache(path).write_bytes(blob)
    assert read_bundled_yaml(path) == read_yaml(path)
    assert read_bundled_yaml(path) == read_yaml(path)  # rewritten


def test_no_cache_written_without_byte_code_or_where_read_only(tmp_path, monkeypatch):
    path = tmp_path / "toy.yaml"
    path.write_text(SPEC)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    assert read_bundled_yaml(path) == read_yaml(path)
    assert not (tmp_path / "__pycache__").exists()
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    tmp_path.chmod(0o555)
    try:
        assert read_bundled_yaml(path) == read_yaml(path)
        assert list(tmp_path.iterdir()) == [path] or os.geteuid() == 0  # root writes anywhere
    finally:
        tmp_path.chmod(0o755)


def test_malformed_yaml_is_the_same_one_line_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(InvalidInput) as cached:
        read_bundled_yaml(path)
    with pytest.raises(InvalidInput) as plain:
        read_yaml(path)
    assert str(cached.value) == str(plain.value) and "malformed YAML" in str(plain.value)
    assert not _cache(path).exists()


def test_every_shipped_file_reads_the_same_through_the_cache():
    for path in [*sorted(specs_dir().glob("*.yaml")), _CATALOG]:
        read_bundled_yaml(path)  # fills the cache where the checkout is writable
        assert repr(read_bundled_yaml(path)) == repr(read_yaml(path)), path


def test_a_command_answered_from_the_cache_does_not_import_yaml():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    code = (
        "import sys; from kvplan.cli import main;"
        "main(['cost', 'llama-3.1-8b', '--gpu', 'h100-sxm', '--context', '4k']); print('YAML', 'yaml' in sys.modules)"
    )
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env) for _ in range(2)]
    assert runs[0].stdout == runs[1].stdout.replace("YAML False", "YAML True") or runs[0].stdout == runs[1].stdout
    assert runs[1].stdout.rstrip().endswith("YAML False"), runs[1].stdout + runs[1].stderr

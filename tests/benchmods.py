"""The scripts of ``benchmarks/`` for tests: they are scripts, not a package, so each is imported with that folder on
``sys.path`` for the import only."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def bench_module(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module (imported once; later calls return the same module)."""
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


def published() -> tuple[ModuleType, dict]:
    """``published_compare`` and the published-results data file it scores (``benchmarks/data/``)."""
    pub = bench_module("published_compare")
    return pub, json.loads(pub.DATA.read_text())

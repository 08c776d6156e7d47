"""The ``kvplan`` command: ``python -m kvplan`` and the console script (``kvplan.__main__:main``).

Both start here, before typer, pydantic and kvplan's modules are imported, so that :func:`cli_gc` covers the whole
process; :func:`kvplan.cli.run` does the rest (and ends the process at once).
"""

from __future__ import annotations

import gc

# The cyclic collector's first threshold for the CLI process (CPython's default: 700 container allocations net of
# frees). One command is a short process whose objects are either kept to the end (classes, pydantic's schemas,
# the latency memos) or freed by reference counting (a step's figures): under the default, `plan llama-3.1-70b
# --rate 10 ...` ran 107 gen-0, 9 gen-1 and one full collection (over ~49,000 tracked objects) that together found
# 487 objects and took ~31 ms of a ~0.5 s command; `cost deepseek-v3 --tp 8` 61 and 5, ~12 ms, 477 objects
# (gc.callbacks; docs/speed.md). At 100,000 neither runs one, and the peak memory does not grow (36.6 against
# 37.6 MB); a longer command still collects every 100,000 net allocations, so cyclic garbage stays bounded.
CLI_GC_THRESHOLD = 100_000


def cli_gc() -> None:
    """The collector's thresholds for one CLI process: the first raised to :data:`CLI_GC_THRESHOLD`, the older
    generations' left as they are. Library users and tests keep CPython's defaults (only this entry sets it)."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(CLI_GC_THRESHOLD, older, oldest)


def main() -> None:
    """Console script: :func:`cli_gc`, then :func:`kvplan.cli.run` (which does not return)."""
    cli_gc()
    from kvplan.cli import run

    run()


if __name__ == "__main__":
    main()

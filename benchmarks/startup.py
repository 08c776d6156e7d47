"""Wall time of `kvplan estimate` against the bare import floor (issue 2 target: <= 1.5x).

Median of interleaved runs, each a fresh interpreter. Prints figures; asserts nothing.
    python benchmarks/startup.py [--runs 15]

Both commands run as an installed package runs: with byte-code caching on. kvplan's modules are
compiled first (pip does this when it installs a wheel) and PYTHONDONTWRITEBYTECODE, which some
sandboxes set, is removed for the child processes; without that, every kvplan run would compile
its sources from scratch while the floor's site-packages are already compiled. The timing
helpers are those of benchmarks/speed.py, which reports the same figure among others.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics

from speed import FLOOR, kvplan_argv, wall

ESTIMATE_ARGS = ["estimate", "llama-3.1-8b", "--context", "4k,32k,128k"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    import kvplan

    compileall.compile_dir(os.path.dirname(kvplan.__file__), quiet=1)
    cmd = kvplan_argv(ESTIMATE_ARGS)
    wall(cmd, 2)  # warm the page cache
    floors, ests = [], []
    for _ in range(args.runs):  # interleaved, so that both commands see the same background load
        floors.append(wall(FLOOR, 1))
        ests.append(wall(cmd, 1))
    floor, est = statistics.median(floors), statistics.median(ests)
    print(f"import floor  (python -c 'import typer, pydantic, yaml, tabulate'): {floor * 1000:7.1f} ms")
    print(f"kvplan estimate llama-3.1-8b --context 4k,32k,128k:               {est * 1000:7.1f} ms")
    print(f"ratio: {est / floor:.2f}x (target <= 1.5x); median of {args.runs} runs each")


if __name__ == "__main__":
    main()

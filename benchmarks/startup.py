"""Wall time of `kvplan estimate` against the bare import floor (issue 2 target: <= 1.5x).

Median of repeated runs, each a fresh interpreter. Prints figures; asserts nothing.
    python benchmarks/startup.py [--runs 15]

Both commands run as an installed package runs: with byte-code caching on. kvplan's modules are
compiled first (pip does this when it installs a wheel) and PYTHONDONTWRITEBYTECODE, which some
sandboxes set, is removed for the child processes; without that, every kvplan run would compile
its sources from scratch while the floor's site-packages are already compiled.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import time

FLOOR = [sys.executable, "-c", "import typer, pydantic, yaml, tabulate"]
ESTIMATE_ARGS = ["estimate", "llama-3.1-8b", "--context", "4k,32k,128k"]


def kvplan_command() -> list[str]:
    exe = shutil.which("kvplan")
    return [exe, *ESTIMATE_ARGS] if exe else [sys.executable, "-m", "kvplan", *ESTIMATE_ARGS]


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def median_seconds(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    import kvplan

    compileall.compile_dir(os.path.dirname(kvplan.__file__), quiet=1)
    cmd = kvplan_command()
    median_seconds(cmd, 2)  # warm the page cache and .pyc files
    # Interleaved, so that both commands see the same background load.
    floors, ests = [], []
    for _ in range(args.runs):
        floors.append(median_seconds(FLOOR, 1))
        ests.append(median_seconds(cmd, 1))
    floor, est = statistics.median(floors), statistics.median(ests)
    print(f"import floor  (python -c 'import typer, pydantic, yaml, tabulate'): {floor * 1000:7.1f} ms")
    print(f"kvplan estimate llama-3.1-8b --context 4k,32k,128k:               {est * 1000:7.1f} ms")
    print(f"ratio: {est / floor:.2f}x (target <= 1.5x); median of {args.runs} runs each")


if __name__ == "__main__":
    main()

"""Wall time of `kvplan estimate` against the bare import floor (issue 2 target: <= 1.5x).

Median of repeated runs, each a fresh interpreter. Prints figures; asserts nothing.
    python benchmarks/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
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


def median_seconds(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    cmd = kvplan_command()
    median_seconds(cmd, 2)  # warm the page cache and .pyc files
    floor = median_seconds(FLOOR, args.runs)
    est = median_seconds(cmd, args.runs)
    print(f"import floor  (python -c 'import typer, pydantic, yaml, tabulate'): {floor * 1000:7.1f} ms")
    print(f"kvplan estimate llama-3.1-8b --context 4k,32k,128k:               {est * 1000:7.1f} ms")
    print(f"ratio: {est / floor:.2f}x (target <= 1.5x); median of {args.runs} runs each")


if __name__ == "__main__":
    main()

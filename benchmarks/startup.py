"""Wall time of `kvplan estimate` against a bare two-command typer app (target: <= 1.5x; issues 2 and 9).

Three commands, each a fresh interpreter, interleaved: the import floor (typer, pydantic, yaml and
tabulate imported, nothing run), a bare two-command typer app answering one command (what any typer
CLI costs: typer builds its click command and validates parameters with pydantic), and
`kvplan estimate`. Medians; prints figures, asserts nothing.
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
import sys
import tempfile
from pathlib import Path

from speed import FLOOR, TYPER_APP, kvplan_argv, wall

ESTIMATE_ARGS = ["estimate", "llama-3.1-8b", "--context", "4k,32k,128k"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    import kvplan

    compileall.compile_dir(os.path.dirname(kvplan.__file__), quiet=1)
    cmd = kvplan_argv(ESTIMATE_ARGS)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "two_commands.py"
        script.write_text(TYPER_APP)
        typer_app = [sys.executable, str(script), *ESTIMATE_ARGS[:2], "--context", "4k,32k,128k"]
        wall(cmd, 2)  # warm the page cache (and compile the app)
        wall(typer_app, 2)
        floors, apps, ests = [], [], []
        for _ in range(args.runs):  # interleaved, so that all three see the same background load
            floors.append(wall(FLOOR, 1))
            apps.append(wall(typer_app, 1))
            ests.append(wall(cmd, 1))
    floor, app, est = (statistics.median(x) for x in (floors, apps, ests))
    print(f"import floor  (python -c 'import typer, pydantic, yaml, tabulate'): {floor * 1000:7.1f} ms")
    print(f"bare two-command typer app (estimate MODEL --context ...):        {app * 1000:7.1f} ms")
    print(f"kvplan estimate llama-3.1-8b --context 4k,32k,128k:               {est * 1000:7.1f} ms")
    print(
        f"ratio: {est / app:.2f}x the typer app (target <= 1.5x), {est / floor:.2f}x the import floor; "
        f"median of {args.runs} runs each; load average {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()

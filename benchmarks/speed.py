"""Speed side by side (issue 6): CLI wall time, library throughput on one core, full `plan` time.

    python benchmarks/speed.py [--runs 11]

(a) wall time of `kvplan estimate` against a bare two-command typer app, the bare import floor and
    llm-analysis' own CLI answering the same question (Llama 2 7B, 4K tokens, batch 1, A100 80GB) when it is
    installed (`pip install --no-deps llm-analysis==0.2.2 fire==0.5.0 termcolor`);
(b) library throughput pinned to one core: KV estimates per second (spec -> cache plan -> bytes at
    a length, and on a plan already built) and full capacity answers per second (vLLM budget,
    pool, concurrency, inverse search for the longest context);
(c) `plan` over every catalog GPU, every TP/PP split and every candidate dtype.
Targets on the 2-core dev machine: estimate <= 1.5x the typer app; >= 50,000 KV estimates/s;
a full plan < 1 s. Medians of repeated runs; prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOOR = [sys.executable, "-c", "import typer, pydantic, yaml, tabulate"]
QUESTION = ["estimate", "llama-2-7b", "--context", "4k", "--gpu", "a100-80gb"]
LLM_ANALYSIS = [
    sys.executable, "-m", "llm_analysis.analysis", "infer", "--model_name", "NousResearch_Llama-2-7b-hf",
    "--gpu_name", "a100-sxm-80gb", "--seq_len", "4096", "--num_tokens_to_generate", "1", "--batch_size_per_gpu", "1",
]  # fmt: skip


# The baseline of issue 9's startup target: the smallest typer CLI with two commands, asked one.
TYPER_APP = """import typer

app = typer.Typer()


@app.command()
def estimate(model: str, context: str = "4k") -> None:
    print(model, context)


@app.command()
def models() -> None:
    print("none")


app()
"""

# Children run with byte-code caching on, as an installed package does (see benchmarks/startup.py).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def kvplan_argv(args: list[str]) -> list[str]:
    """The installed console script when on PATH, else ``python -m kvplan``."""
    exe = shutil.which("kvplan")
    return [exe, *args] if exe else [sys.executable, "-m", "kvplan", *args]


def rate(fn, *, seconds: float = 1.0, repeats: int = 5) -> float:  # noqa: ANN001
    """Calls per second: the median over ``repeats`` windows of about ``seconds`` each."""
    rates = []
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            for _ in range(100):
                fn()
            n += 100
        rates.append(n / elapsed)
    return statistics.median(rates)


def cli_section(runs: int) -> None:
    import compileall

    import kvplan

    compileall.compile_dir(os.path.dirname(kvplan.__file__), quiet=1)
    cmd = kvplan_argv(QUESTION)
    issue = kvplan_argv(["estimate", "llama-3.1-8b", "--context", "4k,32k,128k"])
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "two_commands.py"
        script.write_text(TYPER_APP)
        app = [sys.executable, str(script), "estimate", "llama-3.1-8b", "--context", "4k,32k,128k"]
        wall(cmd, 2)  # warm caches
        wall(app, 2)
        samples: dict[str, list[float]] = {"floor": [], "app": [], "question": [], "issue": []}
        for _ in range(runs):  # interleaved, so that all four see the same background load
            samples["floor"].append(wall(FLOOR, 1))
            samples["app"].append(wall(app, 1))
            samples["question"].append(wall(cmd, 1))
            samples["issue"].append(wall(issue, 1))
    floor, typer_app, est, iss = (statistics.median(samples[k]) for k in ("floor", "app", "question", "issue"))
    print("(a) CLI wall time, median of", runs, "interleaved runs, byte-code cached as when installed")
    print(f"    import floor (typer, pydantic, yaml, tabulate)   {floor * 1000:8.1f} ms")
    print(f"    bare two-command typer app (one command)         {typer_app * 1000:8.1f} ms")
    label = "kvplan estimate llama-3.1-8b --context 4k,32k,128k"
    print(
        f"    {label} {iss * 1000:6.1f} ms   {iss / typer_app:.2f}x the typer app (target <= 1.5x), "
        f"{iss / floor:.2f}x floor"
    )
    print(f"    kvplan {' '.join(QUESTION):<42} {est * 1000:8.1f} ms   {est / typer_app:.2f}x the typer app")
    if importlib.util.find_spec("llm_analysis") is None:
        print("    llm-analysis: not installed (see the docstring); comparison skipped")
        return
    la = wall(LLM_ANALYSIS, max(3, runs // 3))
    print(f"    llm-analysis infer (same question)               {la * 1000:8.1f} ms   {la / est:.1f}x kvplan")


def library_section() -> None:
    from kvplan import load_bundled, resolve_gpu
    from kvplan.capacity import capacity, setup
    from kvplan.memory import cache_plan

    spec, gpu = load_bundled("llama-3.1-8b"), resolve_gpu("h100-sxm")
    gemma = load_bundled("gemma-3-27b")
    plan = cache_plan(spec, "bf16")
    lengths = iter(range(1, 1 << 40))
    print("(b) library throughput on one core, median of 5 one-second windows")
    cases = [
        ("KV bytes on a built plan (llama-3.1-8b)", lambda: plan.bytes_per_sequence(next(lengths))),
        ("spec -> plan -> KV bytes (llama-3.1-8b)", lambda: cache_plan(spec, "fp8", tp=2).bytes_per_sequence(32768)),
        ("spec -> plan -> KV bytes (gemma-3-27b, 5:1)", lambda: cache_plan(gemma, "bf16").bytes_per_sequence(32768)),
        ("full vLLM capacity answer", lambda: capacity(setup(spec, gpu, memo=memo), 32768, suggest=False)),
    ]
    memo: dict = {}
    for label, fn in cases:
        print(f"    {label:<46} {rate(fn, repeats=3):12,.0f} /s")
    print("    (target: >= 50,000 KV estimates/s)")


def plan_section(runs: int) -> None:
    from kvplan import bundled_gpus, load_bundled
    from kvplan.planner import plan

    gpus = list(bundled_gpus().values())
    for name in ("llama-3.1-8b", "llama-3.1-70b", "deepseek-v3"):
        spec = load_bundled(name)
        times, rows = [], []
        for _ in range(runs):
            start = time.perf_counter()
            rows = plan(spec, gpus, users=64, context=32768)
            times.append(time.perf_counter() - start)
        ms = statistics.median(times) * 1000
        print(f"    plan {name:<15} {len(gpus)} GPUs x splits x dtypes: {ms:7.1f} ms, {len(rows)} rows")
    cmd = kvplan_argv(["plan", "llama-3.1-70b", "--users", "64", "--context", "32k"])
    cmd += ["--gpus", ",".join(g.name for g in gpus)]
    ms = wall(cmd, runs) * 1000
    print(f"    CLI: kvplan plan llama-3.1-70b over the whole catalog: {ms:7.1f} ms wall (target < 1 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--write", metavar="FILE", help="also write the figures as markdown (docs/speed.md)")
    args = parser.parse_args()
    if args.write:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(Tee(sys.stdout, buffer)):
            run(args.runs)
        target = Path(args.write)
        head = SPEED_DOC.format(figures=buffer.getvalue().rstrip())
        target.write_text(head + kept_sections(target), encoding="utf-8")
        return
    run(args.runs)


def kept_sections(target: Path) -> str:
    """What ``--write`` keeps of an existing ``target``: its sections from the first ``## `` heading on (the
    latency paths' stop-by-stop records are written by hand, after the generated head); nothing for a new file."""
    if not target.exists():
        return ""
    text = target.read_text(encoding="utf-8")
    start = text.find("\n## ")
    return "" if start < 0 else "\n" + text[start + 1 :]


class Tee(io.TextIOBase):
    def __init__(self, *streams) -> None:  # noqa: ANN002
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)


SPEED_DOC = """# Speed

Generated by `python benchmarks/speed.py --write docs/speed.md` (this head; the sections from "Latency paths" on are
written by hand and kept as they are) on the 2-core development machine; medians of repeated runs,
the process pinned to one core. Wall times on this shared machine vary by +-20% between runs:
rerun both scripts to compare on yours.

```
{figures}
```

Reading the figures:

- (a) The target (issues 2 and 9) is `kvplan estimate` within 1.5x of a bare two-command typer
  app answering one command. The import floor only imports the four packages kvplan needs
  (tabulate with its optional wcwidth, which kvplan does not load). Over the typer app kvplan
  adds its spec schema (about 25 ms to build), YAML and tabulate, and the command itself;
  `benchmarks/startup.py` prints the same comparison unpinned, with the machine's load average.
- (b) "KV bytes on a built plan" is a length query on a `CachePlan`; "spec -> plan -> KV
  bytes" builds the per-layer plan first (what one `estimate` row costs); a capacity answer
  includes the engine budget, the block layout and the inverse search for the longest context.
- (c) `plan` tries every GPU type, TP/PP split and weight/KV dtype pair of the catalog.
"""


def run(runs: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, children inherit it
    load = os.getloadavg()[0]  # the other users of a shared machine slow every figure below
    cores = f"{os.cpu_count()} cores on the machine, pinned to one"
    print(f"python {sys.version.split()[0]}, {cores}; load average {load:.2f}")
    cli_section(runs)
    library_section()
    print("(c) plan over every catalog GPU, TP/PP split and dtype (library, median)")
    plan_section(runs)


if __name__ == "__main__":
    main()

"""Speed of the calibrated latency paths (issue 14): `kvplan cost`, `kvplan plan --rate`, in process and on the CLI.

    python benchmarks/latency_speed.py [--runs 5] [--no-importtime]

Prints, for the machine as it is (CPU count and load average first and last, since shared machines skew wall time):

(a) in-process (the library call the command makes, cold: the latency paths' memos emptied before each run,
    `kvplan.serving.forget_memos`, as a fresh process has them, after one warm-up call that loads the specs;
    median of runs, wall and CPU): `kvplan.cost.cost` for DeepSeek-V3 TP8 at three lengths,
    `kvplan.slo.plan_for_targets` for Llama 3.1 70B over H100, H200, B200 (TP, PP within and across nodes; every
    row, the first 20 as the CLI's table asks, every row with TensorRT-LLM, whose PP rows price the pipeline's
    prompt queue, and the first 20 with SGLang), for gpt-oss-120b over the same GPUs (its checkpoint's MXFP4 experts,
    the first 20 rows), for DeepSeek-V3 on H200 (also TP-EP and DP attention + EP) and
    for Llama 3.1 8B on H200 with disaggregated pools;
(b) CLI wall and CPU time (median of runs) of the same commands, the README's `plan --rate` examples, and of
    `python -c pass` and of importing kvplan's third-party dependencies (typer, pydantic, yaml, tabulate), and of a
    bare typer app that loads what `cost` and `plan` load of them (FLOOR_APP: no PyYAML, typer's pydantic option
    adapters, tabulate, the collector as the CLI sets it): what any command pays before kvplan runs. kvplan is
    byte-compiled first and the children run with byte-code caching on, as an installed package does
    (benchmarks/speed.py does the same; the bundled YAML's parse cache, kvplan.files.read_bundled_yaml, likewise);
(c) what the CLI start costs: `python -X importtime` of the `cost` command, the largest cumulative imports
    (the minimum over runs, microseconds), split into kvplan's modules and the rest;
(d) library rates: calibrated steps per second, `serving.serve` calls per second (each call without the figures
    the previous one kept).
Target: well under a second for `cost` and `plan`. Prints figures, asserts nothing.

    python benchmarks/latency_speed.py --figures FILE

writes instead, and times nothing: every figure of a fixed set of library calls (steps over models x engines x
TP/PP/DP/EP splits x batch shapes, serving at three rates, plans against targets, cost rows; ``repr`` of each, to
the last bit) and the output and exit code of CLI commands (the ones timed here, their JSON and CSV forms, and
engine errors). Run it in two checkouts and compare the files byte for byte: the speed work's identity check (every
figure must stay the same).

    python benchmarks/latency_speed.py --against TREE [--runs 15]

times instead the floor and the `cost`, `plan --rate`, `plan --rate --engine trtllm` and gpt-oss-120b's `plan --rate`
commands from another checkout TREE and from this one in alternation (before and after a change, under the same
load), CPU seconds.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

COST = ["cost", "deepseek-v3", "--gpu", "h200", "--tp", "8", "--context", "4k,32k,128k"]
PLAN = ["plan", "llama-3.1-70b", "--rate", "10", "--input", "2k:4k", "--output", "512"]
PLAN += ["--ttft", "1s", "--tpot", "50ms"]
# TensorRT-LLM schedules each pipeline micro-batch on its own: its PP rows price the prompt queue (serving's slots)
PLAN_TRTLLM = PLAN + ["--engine", "trtllm"]
# gpt-oss-120b's experts in the checkpoint's MXFP4 (vLLM's OpenAI Triton kernel on Hopper, its tiles priced per step),
# two layer kinds (sliding, full) and attention DP + EP splits: the dearest plan since stop 26
PLAN_GPT_OSS = ["plan", "gpt-oss-120b", "--rate", "10", "--input", "2k", "--output", "512", "--ttft", "1s",
                "--tpot", "50ms"]  # fmt: skip
PLAN_SGLANG = PLAN + ["--engine", "sglang"]
PLAN_MOE = ["plan", "deepseek-v3", "--rate", "2", "--input", "1k", "--output", "8k"]
PLAN_MOE += ["--ttft", "30s", "--tpot", "300ms", "--gpus", "h200"]
# The README's plan --rate examples (README.md "Plan against latency targets"), as it runs them.
README_PLANS = [
    PLAN + ["--gpus", "h100-sxm,h200", "--top", "5"],
    PLAN_MOE + ["--top", "4"],
    ["plan", "llama-3.1-8b", "--rate", "20", "--ttft", "500ms", "--tpot", "30ms", "--gpus", "h200", "--disaggregated",
     "--top", "4"],
]  # fmt: skip
DEPS = "import typer, pydantic, yaml, tabulate"
# The floor under cost and plan since stop 23: a bare two-command typer app parsing one int option and drawing a
# one-cell table, with the collector set as the CLI sets it (kvplan.__main__.cli_gc) and tabulate imported without
# wcwidth as kvplan.report does. It loads what those commands load from outside kvplan (no PyYAML since
# kvplan.files.read_bundled_yaml): typer, and the pydantic modules its option adapters use (typer 0.29 builds a
# pydantic TypeAdapter per option when it parses them; kvplan's schema uses the same modules), and tabulate.
FLOOR_APP = """import gc, sys
gc.set_threshold(100_000, 10, 10)
sys.modules["wcwidth"] = None
import tabulate, typer
app = typer.Typer(add_completion=False)
@app.command()
def one(n: int = 1) -> None:
    tabulate.tabulate([[n]])
@app.command()
def two() -> None:
    pass
app(["one", "--n", "2"], standalone_mode=False)
"""
# Children run with byte-code caching on, as an installed package does (benchmarks/speed.py, benchmarks/startup.py).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _wall(cmd: list[str], runs: int) -> str:
    """Median wall time and median CPU time (user + system of the child) of ``runs`` runs, as text."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=ENV)
        walls.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return f"{statistics.median(walls):.3f} s wall, {statistics.median(cpus):.3f} s CPU"


def _kvplan(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "kvplan", *args]


def _cpu_s(cmd: list[str], *, cwd: str, env: dict[str, str]) -> float:
    """CPU seconds (user + system) of one run of ``cmd`` as a child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=cwd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def against(other: str, runs: int) -> int:
    """--against TREE: the floor and the timed CLI commands, each run from TREE (another checkout: main, a branch
    before a change) and from this one in turn, ``runs`` rounds; the minimum and median CPU seconds of each. On a
    shared machine the load moves between two runs of this script; taken in alternation, both trees see the same."""
    import compileall

    trees = {"other": os.path.abspath(other), "this": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    for root in trees.values():  # as pip does when it installs the wheel
        compileall.compile_dir(os.path.join(root, "kvplan"), quiet=1)
    cases = [("floor (FLOOR_APP)", [sys.executable, "-c", FLOOR_APP])]
    cases += [(f"kvplan {' '.join(cmd)}", _kvplan(cmd)) for cmd in (COST, PLAN, PLAN_TRTLLM, PLAN_GPT_OSS)]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (1, 5, 15 min)")
    print(f"CPU s, {runs} rounds in alternation: other = {trees['other']}, this = {trees['this']}")
    for label, cmd in cases:
        cpus: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(runs):
            for name, root in trees.items():
                cpus[name].append(_cpu_s(cmd, cwd=root, env={**ENV, "PYTHONPATH": root}))
        shown = "; ".join(f"{n} min {min(c):.3f} median {statistics.median(c):.3f}" for n, c in cpus.items())
        print(f"    {label}: {shown}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine after the runs: load average {load} (1, 5, 15 min)")
    return 0


def _timed(fn, runs: int) -> tuple[float, float]:  # noqa: ANN001
    """(median wall, median CPU) seconds of ``fn()`` after one warm-up call, each run cold (memos emptied)."""
    from kvplan.serving import forget_memos

    fn()
    walls, cpus = [], []
    for _ in range(runs):
        forget_memos()
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def in_process(runs: int) -> dict[str, tuple[float, float]]:
    from kvplan.catalog import load_bundled, resolve
    from kvplan.cost import cost
    from kvplan.hardware import resolve_gpu
    from kvplan.serving import Lengths
    from kvplan.slo import Targets, plan_for_targets

    ds, ll, l8 = load_bundled("deepseek-v3"), load_bundled("llama-3.1-70b"), load_bundled("llama-3.1-8b")
    h200 = resolve_gpu("h200")
    gpus = [resolve_gpu(g) for g in ("h100-sxm", "h200", "b200")]
    dense = Targets(10, Lengths.of(2048, 4096), Lengths.of(512), 1.0, 0.05)
    moe = Targets(2, Lengths.of(1024), Lengths.of(8192), 30.0, 0.3)
    small = Targets(20, Lengths.of(2048), Lengths.of(512), 0.5, 0.03)
    oss = resolve("gpt-oss-120b")  # with its checkpoint's weights term (MXFP4 experts), as the CLI takes it
    oss_spec, oss_weights = oss.spec, oss.weights()
    oss_targets = Targets(10, Lengths.of(2048), Lengths.of(512), 1.0, 0.05)
    return {
        "cost deepseek-v3 tp8, 3 lengths": _timed(lambda: cost(ds, h200, [4096, 32768, 131072], tp=8), runs),
        "plan --rate llama-3.1-70b, 3 GPU types": _timed(lambda: plan_for_targets(ll, gpus, dense, max_gpus=64), runs),
        "plan --rate llama-3.1-70b, 3 GPU types, first 20 rows": _timed(
            lambda: plan_for_targets(ll, gpus, dense, max_gpus=64, top=20), runs
        ),
        "plan --rate llama-3.1-70b, 3 GPU types, --engine trtllm": _timed(
            lambda: plan_for_targets(ll, gpus, dense, max_gpus=64, engine="trtllm"), runs
        ),
        "plan --rate gpt-oss-120b, 3 GPU types, first 20 rows": _timed(
            lambda: plan_for_targets(oss_spec, gpus, oss_targets, max_gpus=64, top=20, checkpoint=oss_weights), runs
        ),
        "plan --rate llama-3.1-70b, 3 GPU types, first 20 rows, --engine sglang": _timed(
            lambda: plan_for_targets(ll, gpus, dense, max_gpus=64, top=20, engine="sglang"), runs
        ),
        "plan --rate deepseek-v3, h200": _timed(lambda: plan_for_targets(ds, [h200], moe, max_gpus=64), runs),
        "plan --rate llama-3.1-8b, h200, disaggregated": _timed(
            lambda: plan_for_targets(l8, [h200], small, disaggregated=True, max_gpus=64), runs
        ),
    }


def importtime(args: list[str], runs: int = 3, top: int = 12) -> tuple[list[tuple[int, str]], int, int]:
    """The largest cumulative imports of one CLI run (minimum over ``runs``), kvplan's total and the rest's (us)."""
    best: dict[str, int] = {}
    top_level: dict[str, int] = {}
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "kvplan", *args], capture_output=True,
                              text=True, check=True, env=ENV)  # fmt: skip
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "|" not in line or "cumulative" in line:
                continue
            _, cumulative, name = line.split("|")
            us, module = int(cumulative), name.rstrip()
            key = module.strip()
            best[key] = min(best.get(key, us), us)
            if not module.startswith("  "):  # imported at the top level, not by another module
                top_level[key] = best[key]
    ranked = sorted(((us, m) for m, us in best.items()), reverse=True)[:top]
    ours = sum(us for m, us in top_level.items() if m.split(".")[0] == "kvplan")
    rest = sum(us for m, us in top_level.items() if m.split(".")[0] != "kvplan")
    return ranked, ours, rest


def library_rates() -> dict[str, float]:
    from kvplan.capacity import setup
    from kvplan.catalog import load_bundled
    from kvplan.hardware import resolve_gpu
    from kvplan.latency import step_latency
    from kvplan.serving import Lengths, forget_memos, serve

    # Each call without the figures a previous one kept (the per-spec facts stay): the same call over and over
    # would otherwise be answered from them.
    spec, gpu = load_bundled("deepseek-v3"), resolve_gpu("h200")
    n, t0 = 0, time.process_time()
    while time.process_time() - t0 < 1.0:
        forget_memos(facts=False)
        step_latency(spec, gpu, 4096, phase="decode", batch=32, tp=8, kv_dtype_name="fp8", weights_dtype="fp8",
                     attention_flops=0)  # fmt: skip
        n += 1
    steps = n / (time.process_time() - t0)
    s = setup(load_bundled("llama-3.1-8b"), resolve_gpu("h100-sxm"), engine="vllm")
    n, t0 = 0, time.process_time()
    while time.process_time() - t0 < 1.0:
        forget_memos(facts=False)
        serve(s, rate_rps=5, input_len=Lengths.of(2048, 4096), output_len=Lengths.of(512), with_max_rate=False)
        n += 1
    return {"steps_per_s": steps, "serves_per_s": n / (time.process_time() - t0)}


# Library calls whose every figure --figures writes: models with dense, MoE, MLA and sliding layers; three GPUs.
FIGURE_MODELS = ["llama-3.1-8b", "llama-3.1-70b", "deepseek-v3", "qwen3-30b-a3b", "mixtral-8x7b", "gpt-oss-120b",
                 "gemma-3-27b"]  # fmt: skip
FIGURE_GPUS = ["h100-sxm", "h200", "b200"]
# (tp, pp, dp, expert parallel) and (decode context, decodes, prompt chunk, prefix) of the steps written
FIGURE_SPLITS = [(1, 1, 1, False), (2, 1, 1, False), (4, 2, 1, False), (8, 1, 1, True), (2, 1, 4, True),
                 (1, 4, 1, False)]  # fmt: skip
FIGURE_STEPS = [(2048, 0, 2048, 0), (4096, 17.5, 512, 1024), (32768, 64, 0, 0), (1024, 3.3, 100, 0)]
# CLI commands whose output --figures writes, beside the timed ones
FIGURE_CLI = [
    COST + ["-f", "json"],
    ["cost", "qwen3-30b-a3b", "--gpu", "b200", "--tp", "2", "--context", "2k", "--engine", "sglang", "-f", "json"],
    PLAN + ["-f", "json"],
    PLAN + ["-f", "csv", "--top", "0"],
    PLAN_MOE + ["-f", "json"],
    README_PLANS[2][:-2] + ["-f", "json"],
    ["plan", "llama-3.1-8b", "--rate", "20", "--ttft", "500ms", "--tpot", "30ms", "--gpus", "h100-sxm", "--engine",
     "trtllm", "--percentile", "p90", "-f", "json"],
    ["plan", "deepseek-v3", "--rate", "4", "--input", "2k", "--output", "1k", "--ttft", "5s", "--tpot", "100ms",
     "--gpus", "h200", "--two-batch-overlap", "--deepep", "-f", "json"],
    ["plan", "llama-3.1-8b", "--rate", "8", "--ttft", "1s", "--tpot", "50ms", "--gpus", "h100-sxm", "--engine",
     "vllm@0.8", "--host-per-request", "30us", "-f", "json"],
    ["plan", "llama-3.1-70b", "--users", "64", "--context", "32k"],
    ["estimate", "gemma-3-27b", "--context", "4k,128k", "-f", "json"],
    ["capacity", "llama-3.1-70b", "-c", "32k", "--gpu", "h100-sxm", "--tp", "4", "--engine", "trtllm", "-f", "json"],
    ["capacity", "mistral-7b-v0.1", "-c", "32k", "--gpu", "h100-sxm", "--engine", "llamacpp", "-f", "json"],
    ["capacity", "llama-3.1-8b", "-c", "32k", "--gpu", "h100-sxm", "--engine", "hf", "-f", "json"],
    ["capacity", "llama-3.1-8b", "-c", "32k", "--gpu", "h100-sxm", "--engine", "vlm"],
    ["capacity", "llama-3.1-8b", "-c", "32k", "--gpu", "h100-sxm", "--engine", "trt@nope"],
    ["capacity", "llama-3.1-8b", "-c", "32k", "--gpu", "h100-sxm", "--kv-dtype", "fp5"],
]  # fmt: skip


# Added at stop 27, after the commands above (a file written before then is the start of one written now): the
# gpt-oss and SGLang plans the timings cover, as the table shows them and whole (JSON)
FIGURE_CLI_LATER = [
    PLAN_GPT_OSS,
    PLAN_GPT_OSS + ["-f", "json"],
    PLAN_GPT_OSS + ["--engine", "sglang", "-f", "json"],
    PLAN_GPT_OSS + ["--engine", "trtllm", "-f", "json"],
    PLAN_GPT_OSS + ["--gpus", "h200", "--disaggregated", "-f", "json"],
    PLAN_SGLANG + ["-f", "json"],
]


def figure_lines() -> list[str]:
    """``repr`` of every figure of the library calls --figures writes, one line per call."""
    from kvplan.capacity import setup
    from kvplan.catalog import load_bundled
    from kvplan.cost import cost
    from kvplan.errors import InvalidInput
    from kvplan.hardware import resolve_gpu
    from kvplan.latency import mixed_step_latency, step_latency
    from kvplan.serving import Lengths, serve
    from kvplan.slo import Targets, plan_for_targets

    out = []
    for model, gpu_name in ((m, g) for m in FIGURE_MODELS for g in FIGURE_GPUS):
        spec, gpu = load_bundled(model), resolve_gpu(gpu_name)
        kv = "bf16" if gpu_name == "h100-sxm" else "fp8"
        for engine, (tp, pp, dp, ep) in ((e, sp) for e in ("vllm", "trtllm", "sglang") for sp in FIGURE_SPLITS):
            split = dict(tp=tp, pp=pp, dp=dp, expert_parallel=ep, engine=engine)
            for context, seqs, chunk, prefix in FIGURE_STEPS:
                try:
                    r = mixed_step_latency(spec, gpu, decode_seqs=seqs, decode_context=context, prefill_tokens=chunk,
                                           prefill_prefix=prefix, kv_dtype_name=kv, weights_dtype="fp8",
                                           prompt_chunks=2.0 if pp > 1 else 1.0, **split)  # fmt: skip
                except InvalidInput as exc:
                    r = exc
                out.append(f"step {model} {gpu_name} {split} {context} {seqs} {chunk} {prefix}: {r!r}")
            try:
                r = step_latency(spec, gpu, 4096, phase="decode", batch=32, kv_dtype_name="bf16",
                                 weights_dtype="bf16", attention_flops=0, **split)  # fmt: skip
            except InvalidInput as exc:
                r = exc
            out.append(f"decode {model} {gpu_name} {split}: {r!r}")
    served = [("llama-3.1-8b", "vllm", "h100-sxm"), ("llama-3.1-70b", "trtllm", "h200"),
              ("deepseek-v3", "sglang", "h200"), ("qwen3-30b-a3b", "vllm@0.8", "b200")]  # fmt: skip
    for model, engine, gpu_name in served:
        for tp in (1, 8):
            try:
                s = setup(load_bundled(model), resolve_gpu(gpu_name), engine=engine, tp=tp)
            except InvalidInput as exc:
                out.append(f"serve {model} {engine} {gpu_name} tp{tp}: {exc!r}")
                continue
            for rate in (0.5, 5, 50):
                r = serve(s, rate_rps=rate, input_len=Lengths.of(2048, 4096), output_len=Lengths.of(512))
                out.append(f"serve {model} {engine} {gpu_name} tp{tp} {rate}: {r!r}")
    dense = Targets(10, Lengths.of(2048, 4096), Lengths.of(512), 1.0, 0.05)
    long_output = Targets(2, Lengths.of(1024), Lengths.of(8192), 30.0, 0.3)
    p90 = Targets(20, Lengths.of(2048), Lengths.of(512), 0.5, 0.03, "p90")
    plans = [("llama-3.1-70b", FIGURE_GPUS, dense, {}), ("deepseek-v3", ["h200"], long_output, {}),
             ("llama-3.1-8b", ["h200"], p90, {"disaggregated": True}),
             ("qwen3-30b-a3b", ["b200", "h100-sxm"], dense, {"engine": "trtllm"}),
             ("mixtral-8x7b", ["h100-sxm"], p90, {"engine": "sglang"})]  # fmt: skip
    for model, gpu_names, targets, options in plans:
        gpus = [resolve_gpu(g) for g in gpu_names]
        for row in plan_for_targets(load_bundled(model), gpus, targets, max_gpus=64, **options):
            out.append(f"plan {model} {options}: {row.to_dict()!r}")
    for model in FIGURE_MODELS:
        for row in cost(load_bundled(model), resolve_gpu("h200"), [4096, 32768], tp=8):
            out.append(f"cost {model}: {row.model_dump()!r}")
    return out


def write_figures(path: str) -> int:
    """--figures: the library's figure lines, then each CLI command's exit code, stdout and stderr."""
    lines = figure_lines()
    commands = (COST, PLAN, PLAN_TRTLLM, PLAN_MOE, *README_PLANS, *FIGURE_CLI, *FIGURE_CLI_LATER)
    for cmd in commands:
        done = subprocess.run(_kvplan(cmd), capture_output=True, text=True, env=ENV)
        lines += [f"$ kvplan {' '.join(cmd)} (exit {done.returncode})", done.stdout, done.stderr]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    library = len(lines) - 3 * len(commands)
    print(f"{path}: {len(lines)} lines ({library} library figure lines, {len(commands)} CLI commands)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-importtime", action="store_true", help="skip the -X importtime breakdown")
    ap.add_argument("--figures", metavar="FILE", help="write the figures of a fixed set of calls to FILE; no timing")
    ap.add_argument("--against", metavar="TREE", help="time the CLI from another checkout and this one in turn")
    args = ap.parse_args(argv)
    if args.figures:
        return write_figures(args.figures)
    if args.against:
        return against(args.against, args.runs)
    import compileall

    import kvplan

    compileall.compile_dir(os.path.dirname(kvplan.__file__), quiet=1)  # as pip does when it installs the wheel
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (1, 5, 15 min)")
    print("(a) in process, median of runs after a warm-up call:")
    for name, (wall, cpu) in in_process(args.runs).items():
        print(f"    {name}: {wall:.3f} s wall, {cpu:.3f} s CPU")
    print("(b) CLI wall time, median of runs:")
    print(f"    python -c pass: {_wall([sys.executable, '-c', 'pass'], args.runs)}")
    print(f"    python -c '{DEPS}': {_wall([sys.executable, '-c', DEPS], args.runs)}")
    floor = _wall([sys.executable, "-c", FLOOR_APP], args.runs)
    print(f"    floor: a bare typer app, one option parsed, one table (FLOOR_APP): {floor}")
    for cmd in (COST, PLAN, PLAN_TRTLLM, PLAN_SGLANG, PLAN_GPT_OSS, PLAN_MOE, *README_PLANS):
        print(f"    kvplan {' '.join(cmd)}: {_wall(_kvplan(cmd), args.runs)}")
    if not args.no_importtime:
        ranked, ours, rest = importtime(COST)
        print(f"(c) kvplan {COST[0]} imports (python -X importtime, minimum of 3 runs): {ours / 1e6:.3f} s under "
              f"kvplan's top-level modules (their dependencies included), {rest / 1e6:.3f} s outside them (site, "
              "typer's adapters, encodings); largest cumulative:")  # fmt: skip
        for us, module in ranked:
            print(f"    {us / 1e3:8.1f} ms  {module}")
    rates = library_rates()
    print(f"(d) calibrated steps (DeepSeek-V3 TP8 decode): {rates['steps_per_s']:,.0f} /s; "
          f"serve() at a rate (Llama 3.1 8B, H100): {rates['serves_per_s']:,.0f} /s")  # fmt: skip
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine after the runs: load average {load} (1, 5, 15 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

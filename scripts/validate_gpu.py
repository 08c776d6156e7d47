"""The GPU validation job: profile a fixed plan of bundled models, measured against kvplan's estimate.

One command, run once, unattended, from the repository root of a checkout on a bare GPU machine
(Python >= 3.10, torch with CUDA, nvidia-ml-py, typer, pyyaml, tabulate; pydantic may be missing):

    python3 scripts/validate_gpu.py --out OUT --wheels WHEELS     # the GPU plan, at most 6 minutes
    python3 scripts/validate_gpu.py --out OUT --device cpu            # the same job on CPU, tiny models
    python3 scripts/validate_gpu.py --predict-only                # the plan and its predicted time

It checks its environment, installs pydantic from the pinned wheels in ``--wheels`` when it is
missing (``pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
--platform manylinux2014_x86_64 -d WHEELS pydantic pydantic-core annotated-types typing-inspection
typing-extensions``; no network is used), sizes the plan against the device (a case is dropped
before it starts when kvplan's own estimate says it would not fit), and runs each case in its own
``python3 -m kvplan profile`` process (each measures its own CUDA context). Every result is written
as soon as it exists, and ``OUT/kvplan-validation.tar.gz`` is rebuilt after each one, so a job killed
at a time limit still leaves one archive with everything finished so far. Layout, the same on CPU and
GPU::

    kvplan-validation/
        environment.json   checks, versions (Python, torch, CUDA, cuDNN, driver), device, wheels
        plan.json          cases, lengths, predicted seconds (kvplan.cost), memory needed vs available
        runs/<case>.json   the profile's JSON, one object per length, rewritten after each length
        logs/<case>.log    the profile's progress lines and errors
        summary.md         measured vs estimated, term by term (the docs/validation.md section)
        status.json        state (running, done, interrupted, failed), elapsed, per-case outcome
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## GPU profile"
ARCHIVE = "kvplan-validation.tar.gz"
FOLDER = "kvplan-validation"

# The distributions pydantic needs, as the wheels' file names spell them (PEP 427: '-' -> '_').
PYDANTIC_WHEELS = ("pydantic", "pydantic_core", "annotated_types", "typing_inspection", "typing_extensions")

# Wall time the job may take on one H100/H200 (the limit) and what one case costs beyond its
# passes: starting Python, importing torch and kvplan, creating the CUDA context (a stated allowance,
# not a measurement: torch's import alone is 2-5 s on a warm disk).
JOB_LIMIT_S = 360.0
PROCESS_OVERHEAD_S = 15.0
# Headroom left free on the device when sizing: allocator rounding, cuBLAS workspace, fragmentation.
DEVICE_HEADROOM = 0.92
# The profile's own repetitions (kvplan.profile.run): 5 timed decode steps, 2 in the warm-up.
DECODE_PASSES = 5 + 2


@dataclass(frozen=True)
class Case:
    model: str  # a bundled name or a path (YAML / config.json)
    contexts: str
    chunk: str | None = None
    layers: int | None = None  # build K representative layers and extrapolate
    kv_dtype: str | None = None
    why: str = ""

    @property
    def key(self) -> str:
        name = Path(self.model).stem if os.sep in self.model or self.model.endswith((".yaml", ".json")) else self.model
        parts = (
            [name] + ([f"kv-{self.kv_dtype}"] if self.kv_dtype else []) + ([f"l{self.layers}"] if self.layers else [])
        )
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(parts))


# Sized for one 80 GB H100 and at most 6 minutes (plan.json holds the prediction; --predict-only
# prints it). Models larger than the card are built from K layers, never in full.
GPU_PLAN = [
    Case("llama-3.1-8b", "4k,32k,128k", "8k", why="dense GQA, Llama 3 RoPE; 16 GiB of KV at 128K"),
    Case("gemma-3-4b", "4k,32k", "8k", kv_dtype="fp8", why="5 sliding : 1 full, fp8 KV through the ring buffer"),
    Case("mistral-7b-v0.1", "4k,32k", "8k", why="sliding window 4096 on every layer"),
    Case("deepseek-v2-lite", "4k,16k", "4k", why="MLA latent cache, 64-expert MoE"),
    Case("jamba-v0.1", "4k,16k", "4k", layers=4, why="Mamba + attention hybrid, 16 experts; 4 of 32 layers"),
    Case("qwen3-next-80b-a3b", "4k,16k", "4k", layers=4, why="Gated DeltaNet hybrid, 512 experts; 4 of 48 layers"),
    Case("llama-3.1-70b", "4k,32k", "8k", layers=4, why="extrapolated from 4 of 80 layers (131 GiB in full)"),
]

# The same job on CPU (CI runs it): tiny models of the same kinds, so every path of the job (environment,
# plan, one process per case, results as they come, archive) runs in seconds. Bundled models are too
# large to build on a CPU runner, even as one layer per kind (a 262K-row embedding, 512 experts).
TINY = ROOT / "tests" / "data" / "validate"
CPU_PLAN = [
    Case(str(TINY / "dense.yaml"), "16,24", why="dense GQA"),
    Case(
        str(TINY / "sliding.yaml"), "12,20", "6", kv_dtype="fp8", why="sliding window 8 + full, fp8 KV past the window"
    ),
    Case(str(TINY / "mla.yaml"), "12,16", "5", why="MLA + MoE"),
    Case(str(TINY / "hybrid.yaml"), "12,16", "8", why="Mamba, Mamba2, Gated DeltaNet and attention"),
    Case(str(TINY / "sliding.yaml"), "12,20", layers=2, why="extrapolated from 2 of 4 layers"),
]

PLANS = {"gpu": GPU_PLAN, "cpu": CPU_PLAN}


# ---- entry ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.predict_only:
        return _predict_only(args)
    job = Job(Path(args.out).resolve(), device=args.device)
    job.trap_signals()
    try:
        return job.run(args)
    except BaseException as exc:  # a crash still leaves the archive, saying why
        if not isinstance(exc, SystemExit):
            job.status.update(state="failed", error=f"{type(exc).__name__}: {exc}")
        job.archive()
        raise


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="validation-out", help="folder for the work files and the archive")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--plan", default=None, help="gpu | cpu | a JSON file of cases (default: gpu on cuda, cpu on cpu)")
    p.add_argument("--wheels", default=None, help="folder of pinned wheels to install pydantic from when it is missing")
    p.add_argument(
        "--budget-s", type=float, default=JOB_LIMIT_S - 30, help="stop starting cases after this many seconds"
    )
    p.add_argument(
        "--gpu", default=None, help="catalog GPU for the time prediction (default: the device's, else h100-sxm)"
    )
    p.add_argument("--doc", default=None, help="also rewrite the GPU profile section of this markdown file")
    p.add_argument("--predict-only", action="store_true", help="print the plan and its predicted GPU time, run nothing")
    return p.parse_args(argv)


def _say(text: str) -> None:
    print(f"[validate] {text}", file=sys.stderr, flush=True)


def load_plan(name: str | None, device: str) -> list[Case]:
    name = name or ("gpu" if device == "cuda" else "cpu")
    if name in PLANS:
        return list(PLANS[name])
    path = Path(name)
    if not path.is_file():
        raise SystemExit(f"unknown plan {name!r}; expected gpu, cpu or a JSON file of cases")
    base = path.resolve().parent
    cases = []
    for item in json.loads(path.read_text(encoding="utf-8")):
        model = item["model"]
        if (base / model).exists():  # a spec file beside the plan
            model = str(base / model)
        cases.append(Case(**{**item, "model": model}))
    return cases


# ---- the job --------------------------------------------------------------------------------------


class Status:
    """``status.json``: the job's state and every case's outcome, written on each change."""

    def __init__(self, path: Path) -> None:
        self.path, self.started = path, time.monotonic()
        self.data: dict = {"state": "starting", "started_utc": _now(), "cases": {}}

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, **fields) -> None:
        self.data.update(fields)
        self.data["elapsed_s"] = round(self.elapsed(), 1)
        _write_json(self.path, self.data)

    def case(self, key: str, **fields) -> None:
        self.data["cases"].setdefault(key, {}).update(fields)
        self.update()


class Job:
    def __init__(self, out: Path, *, device: str) -> None:
        self.out, self.device = out, device
        self.work = out / FOLDER
        if self.work.exists():
            shutil.rmtree(self.work)  # the job's own scratch folder from an earlier run
        (self.work / "runs").mkdir(parents=True)
        (self.work / "logs").mkdir()
        self.status = Status(self.work / "status.json")
        self.child: subprocess.Popen | None = None
        self.current: str | None = None  # the case running now
        self.env: dict = {}

    def trap_signals(self) -> None:
        """SIGTERM / SIGINT (a time limit): stop the running case, record it, archive, exit."""

        def stop(signum, frame):
            self._stop_child()
            if self.current:
                self.status.case(self.current, outcome="interrupted", lengths_done=self._lengths_done(self.current))
            self.status.update(state="interrupted", signal=signal.Signals(signum).name)
            self.finish_summary()
            self.archive()
            os._exit(128 + signum)

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, stop)

    def run(self, args: argparse.Namespace) -> int:
        self.status.update(state="checking environment")
        env, problems = check_environment(self.device, wheels=args.wheels, site=self.work / "site")
        self.env = env
        _write_json(self.work / "environment.json", {**env, "problems": problems})
        self.archive()
        if problems:
            for problem in problems:
                _say(f"environment: {problem}")
            self.status.update(state="failed", error="; ".join(problems))
            self.archive()
            return 2
        plan = make_plan(load_plan(args.plan, self.device), env=env, gpu_name=args.gpu, device=self.device)
        _write_json(self.work / "plan.json", plan)
        _say(
            f"{len(plan['cases'])} cases, predicted {plan['predicted_s']:.0f} s on {plan['predicted_gpu']} "
            f"(kvplan.cost); budget {args.budget_s:.0f} s"
        )
        self.status.update(state="running", predicted_s=plan["predicted_s"])
        self.archive()
        for entry in plan["cases"]:
            self.run_case(entry, args)
        self.status.update(state="done")
        self.finish_summary(doc=args.doc)
        self.archive()
        _say(f"done in {self.status.elapsed():.0f} s; archive {self.out / ARCHIVE}")
        return 0

    def run_case(self, entry: dict, args: argparse.Namespace) -> None:
        case, key = Case(**entry["case"]), entry["key"]
        if entry.get("skip"):
            self.status.case(key, outcome="skipped", reason=entry["skip"])
            _say(f"{key}: skipped ({entry['skip']})")
            return
        left = args.budget_s - self.status.elapsed()
        if left < 20:  # too little to start a process, build and measure anything
            self.status.case(key, outcome="skipped", reason="time budget spent")
            _say(f"{key}: skipped (time budget spent)")
            return
        _say(f"{key}: {case.contexts} ({case.why}); {left:.0f} s left")
        save, log = self.work / "runs" / f"{key}.json", self.work / "logs" / f"{key}.log"
        self.current = key  # before the archive below: a signal once it shows the case running marks it interrupted
        self.status.case(key, outcome="running")
        self.archive()  # a job killed from now on shows which case it was in
        start = time.monotonic()
        outcome = self._spawn(profile_command(case, device=self.device, save=save), log=log, save=save, timeout=left)
        self.current = None
        wall = round(time.monotonic() - start, 1)
        self.status.case(key, outcome=outcome, wall_s=wall, lengths_done=self._lengths_done(key))
        self.finish_summary()
        self.archive()

    def _lengths_done(self, key: str) -> list[int]:
        return [run["context"] for run in _read_runs(self.work / "runs" / f"{key}.json")]

    def _spawn(self, cmd: list[str], *, log: Path, save: Path, timeout: float) -> str:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([*self.env.get("pythonpath", []), env.get("PYTHONPATH", "")]).strip(
            os.pathsep
        )
        deadline, seen = time.monotonic() + timeout, None
        with log.open("w", encoding="utf-8") as sink:
            self.child = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=sink,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            while True:
                try:
                    code = self.child.wait(timeout=2.0)
                    break
                except subprocess.TimeoutExpired:
                    stamp = save.stat().st_mtime if save.exists() else None
                    if stamp != seen:  # a length finished: into the archive now
                        seen = stamp
                        self.archive()
                    if time.monotonic() > deadline:
                        self._stop_child()
                        self.child = None
                        return "stopped at the time budget"
        self.child = None
        return "ok" if code == 0 else f"exit code {code}: {_last_line(log)}"

    def _stop_child(self) -> None:
        if self.child is None or self.child.poll() is not None:
            return
        os.killpg(self.child.pid, signal.SIGTERM)
        try:
            self.child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.child.pid, signal.SIGKILL)
            self.child.wait()

    def finish_summary(self, doc: str | None = None) -> None:
        runs = [run for path in sorted((self.work / "runs").glob("*.json")) for run in _read_runs(path)]
        text = section(runs, self.status.data, self.env)
        (self.work / "summary.md").write_text(text, encoding="utf-8")
        if doc:
            write_section(Path(doc), text)

    def archive(self) -> None:
        """``OUT/kvplan-validation.tar.gz`` from the work folder, replaced atomically."""
        tmp = self.out / (ARCHIVE + ".tmp")
        with tarfile.open(tmp, "w:gz") as tar:
            for path in sorted(self.work.rglob("*")):
                rel = path.relative_to(self.work)
                if rel.parts[0] == "site" or not path.is_file() or path.suffix == ".tmp":
                    continue  # the installed wheels are not results
                data = path.read_bytes()
                info = tarfile.TarInfo(f"{FOLDER}/{rel.as_posix()}")
                info.size, info.mtime = len(data), int(path.stat().st_mtime)
                tar.addfile(info, io.BytesIO(data))
        os.replace(tmp, self.out / ARCHIVE)


def _die_with_parent() -> None:
    """Linux: the case process gets SIGKILL if the job itself is killed (no orphan holding the GPU)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def profile_command(case: Case, *, device: str, save: Path) -> list[str]:
    # sys.executable is the python3 that runs this job: the same interpreter, the same site-packages.
    cmd = [sys.executable, "-m", "kvplan", "profile", case.model, "-c", case.contexts, "--device", device]
    cmd += ["--format", "json", "--save", str(save)]
    if case.chunk:
        cmd += ["--chunk", case.chunk]
    if case.layers:
        cmd += ["--layers", str(case.layers)]
    if case.kv_dtype:
        cmd += ["--kv-dtype", case.kv_dtype]
    return cmd


def _read_runs(path: Path) -> list[dict]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# ---- environment ----------------------------------------------------------------------------------


def check_environment(device: str, *, wheels: str | None, site: Path) -> tuple[dict, list[str]]:
    """What the job needs, checked before anything runs; pydantic installed from wheels when missing."""
    env: dict = {"checked_utc": _now(), "python": platform.python_version(), "executable": sys.executable}
    env["platform"] = platform.platform()
    env["repository"] = str(ROOT)
    env["commit"] = _commit()
    problems: list[str] = []
    if sys.version_info < (3, 10):  # noqa: UP036 - this job runs before anything checks the interpreter
        problems.append(f"Python {env['python']}: kvplan needs 3.10 or newer")
    for name in ("typer", "yaml", "tabulate"):
        env[name] = _version_of(name)
        if env[name] is None:
            problems.append(f"{name} is not installed (pip install {'pyyaml' if name == 'yaml' else name})")
    env["pythonpath"] = [str(ROOT)]
    env["pydantic"] = _version_of("pydantic")
    if env["pydantic"] is None:
        installed, problem = install_wheels(wheels, site)
        if problem:
            problems.append(problem)
        else:
            env["pythonpath"].append(str(site))
            env["wheels"] = installed
            env["pydantic"] = _import_check(env["pythonpath"])
            if env["pydantic"] is None:
                problems.append(f"pydantic from {wheels} does not import; see logs in {site}")
    sys.path[:0] = [p for p in env["pythonpath"] if p not in sys.path]
    problems += _check_torch(device, env)
    free = shutil.disk_usage(site.parent).free
    env["disk_free_bytes"] = free
    if free < 100 * 2**20:
        problems.append(f"only {free / 2**20:.0f} MiB free on the output disk")
    return env, problems


# Run in a child process, so this job never holds a CUDA context of its own on the device the cases
# measure (it would be "another process" to every NVML reading).
_PROBE = r"""
import json, os, sys
out = {}
try:
    import torch
except ImportError:
    print(json.dumps(out)); sys.exit(0)
out["torch"] = torch.__version__
out["cuda_runtime"] = torch.version.cuda
out["threads"] = torch.get_num_threads()
if sys.argv[1] == "cuda" and torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    out["device"] = {"name": p.name, "total_memory_bytes": int(p.total_memory), "capability": f"{p.major}.{p.minor}",
                     "count": torch.cuda.device_count(), "uuid": str(getattr(p, "uuid", "")),
                     "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    out["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
try:
    import pynvml
    out["nvidia_ml_py"] = getattr(pynvml, "__version__", "present")
    pynvml.nvmlInit()
    out["driver"] = str(pynvml.nvmlSystemGetDriverVersion())
    out["cuda_driver"] = pynvml.nvmlSystemGetCudaDriverVersion()
except Exception as exc:
    out["nvml_problem"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def _check_torch(device: str, env: dict) -> list[str]:
    done = subprocess.run([sys.executable, "-c", _PROBE, device], capture_output=True, text=True, timeout=300)
    try:
        found = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return [f"the torch probe failed: {_tail(done.stderr)}"]
    env.update(found)
    if "torch" not in found:
        return ["torch is not installed"]
    if device == "cpu":
        env["device"] = {"name": "CPU", "threads": found.get("threads")}
        return []
    if "device" not in found:
        return [f"torch {found['torch']} sees no CUDA device (CUDA runtime {found.get('cuda_runtime')})"]
    if "nvml_problem" in found:
        _say(f"NVML unavailable ({found['nvml_problem']}): the context and non-torch terms will be missing")
    return []


def _tail(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _version_of(module: str) -> str | None:
    try:
        mod = __import__(module)
    except ImportError:
        return None
    return str(getattr(mod, "__version__", getattr(mod, "VERSION", "present")))


def _import_check(pythonpath: list[str]) -> str | None:
    """Import pydantic in a fresh interpreter with the job's path: the installed wheels really work."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)}
    code = "import pydantic, pydantic_core; print(pydantic.VERSION)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    return done.stdout.strip() if done.returncode == 0 else None


def _commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def install_wheels(folder: str | None, site: Path) -> tuple[dict[str, str], str | None]:
    """Install exactly one wheel per distribution pydantic needs from ``folder`` into ``site``.

    pip with ``--no-index --no-deps`` when it is there, else the wheels are unpacked (a wheel is a zip
    whose root is the install root for these packages). Returns ``{distribution: version}``.
    """
    if not folder:
        return {}, "pydantic is not installed and no --wheels folder was given (see docs/profile.md)"
    path = Path(folder)
    files = sorted(path.glob("*.whl")) if path.is_dir() else []
    chosen: dict[str, Path] = {}
    for name in PYDANTIC_WHEELS:
        found = [f for f in files if f.name.split("-")[0].lower() == name]
        if len(found) != 1:
            return {}, f"{folder} holds {len(found)} wheels of {name}; expected exactly one (see docs/profile.md)"
        chosen[name] = found[0]
    bad = [f.name for f in chosen.values() if not _wheel_fits(f.name)]
    if bad:
        return {}, f"wheels not built for this Python ({platform.python_version()}, {platform.machine()}): {bad}"
    site.mkdir(parents=True, exist_ok=True)
    pip = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True)
    if pip.returncode == 0:
        cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet", "--target", str(site)]
        done = subprocess.run(cmd + [str(f) for f in chosen.values()], capture_output=True, text=True)
        if done.returncode != 0:
            return {}, f"pip could not install the wheels: {done.stderr.strip().splitlines()[-1:]}"
    else:
        for wheel in chosen.values():
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(site)
    return {name: f.name.split("-")[1] for name, f in chosen.items()}, None


def _wheel_fits(filename: str) -> bool:
    """The wheel's Python and platform tags admit this interpreter (PEP 425, the cases these wheels use)."""
    python, abi, plat = filename[:-4].split("-")[-3:]
    here = f"cp{sys.version_info.major}{sys.version_info.minor}"
    python_ok = any(tag in ("py3", here) for tag in python.split(".")) or (abi == "abi3")
    if plat == "any":
        return python_ok
    machine = platform.machine().lower()
    return python_ok and sys.platform.startswith("linux") and machine in plat and "linux" in plat


# ---- the plan and its prediction ------------------------------------------------------------------


def make_plan(cases: list[Case], *, env: dict, gpu_name: str | None, device: str) -> dict:
    """Each case with its predicted time (kvplan.cost on the catalog GPU) and its memory need."""
    from kvplan.catalog import resolve_model
    from kvplan.hardware import resolve_gpu
    from kvplan.profile.run import _catalog_gpu

    device_name = (env.get("device") or {}).get("name") if device == "cuda" else None
    gpu = resolve_gpu(gpu_name) if gpu_name else (_catalog_gpu(None, device_name) or resolve_gpu("h100-sxm"))
    available = _available_bytes(env, device)
    entries, total = [], 0.0
    for index, case in enumerate(cases, start=1):
        spec = resolve_model(case.model)
        seconds = predict_seconds(spec, case, gpu)
        need = need_of(spec, case, device=device)
        entry = {
            "key": f"{index:02d}-{case.key}",
            "case": asdict(case),
            "predicted_s": round(seconds, 1),
            "need_bytes": need,
        }
        if available is not None and need > available:
            entry["skip"] = f"needs {need / 2**30:.1f} GiB, {available / 2**30:.1f} GiB usable: would be refused"
        else:
            total += seconds
        entries.append(entry)
    return {
        "predicted_gpu": gpu.name,
        "predicted_s": round(total, 1),
        "limit_s": JOB_LIMIT_S,
        "available_bytes": available,
        "assumptions": (
            f"kvplan.cost roofline per pass (prefill + {DECODE_PASSES} decode steps per length, the warm-up's "
            f"first-length passes), times K/N for --layers K, plus {PROCESS_OVERHEAD_S:.0f} s per case for Python, "
            "torch and the CUDA context; the profile model is eager PyTorch, slower than the roofline"
        ),
        "cases": entries,
    }


def _available_bytes(env: dict, device: str) -> int | None:
    if device != "cuda":
        return None  # host RAM: the profile itself checks and refuses
    total = (env.get("device") or {}).get("total_memory_bytes")
    return int(total * DEVICE_HEADROOM) if total else None


def _lengths(text: str) -> list[int]:
    from kvplan.units import parse_lengths

    return parse_lengths(text)


def need_of(spec, case: Case, *, device: str) -> int:
    """The largest need over the case's lengths (kvplan.profile.run.need_bytes, what a profile checks)."""
    from kvplan.profile.run import need_bytes, planned_layers
    from kvplan.units import kv_dtype, parse_length

    layers = planned_layers(spec, case.layers)
    kv_name = kv_dtype(case.kv_dtype or spec.dtype).name
    chunk = parse_length(case.chunk) if case.chunk else None
    return max(
        need_bytes(spec, layers, n, batch=1, kv_name=kv_name, chunk=chunk, device=device)
        for n in _lengths(case.contexts)
    )


def predict_seconds(spec, case: Case, gpu) -> float:
    """kvplan's own prediction of one case's wall time on ``gpu`` (kvplan.cost's roofline)."""
    from kvplan.cost import cost
    from kvplan.profile.run import WARMUP_MAX_TOKENS, profile_weights_dtype
    from kvplan.units import kv_dtype

    weights_name = profile_weights_dtype(spec)
    kv_name = kv_dtype(case.kv_dtype or spec.dtype).name
    lengths = _lengths(case.contexts)
    share = (case.layers or spec.num_layers) / spec.num_layers
    rows = cost(spec, gpu, lengths, batch=1, kv_dtype_name=kv_name, weights_dtype=weights_name)
    passes = sum(row.prefill.time_s + DECODE_PASSES * row.decode.time_s for row in rows)
    warm = min(min(lengths), WARMUP_MAX_TOKENS)
    warm_row = cost(spec, gpu, [warm], batch=1, kv_dtype_name=kv_name, weights_dtype=weights_name)[0]
    return PROCESS_OVERHEAD_S + share * (passes + warm_row.prefill.time_s)


def _predict_only(args: argparse.Namespace) -> int:
    device = args.device
    plan = make_plan(load_plan(args.plan, device), env={}, gpu_name=args.gpu, device=device)
    for entry in plan["cases"]:
        need = entry["need_bytes"] / 2**30
        print(f"{entry['key']:32s} {entry['case']['contexts']:14s} {entry['predicted_s']:7.1f} s  {need:6.1f} GiB")
    print(f"total predicted on {plan['predicted_gpu']}: {plan['predicted_s']:.1f} s (limit {JOB_LIMIT_S:.0f} s)")
    return 0


# ---- the markdown summary -------------------------------------------------------------------------

TERMS = ("weights", "kv_cache", "activation_peak", "non_torch", "total_peak")
# The targets the profile mode was given: weights and KV within 1% of the allocator; the total peak within 5%.
TARGETS = {"weights": 1.0, "kv_cache": 1.0, "total_peak": 5.0}


def section(runs: list[dict], status: dict, env: dict) -> str:
    from kvplan.report import human_bytes

    device = env.get("device") or {}
    lines = [SECTION, ""]
    if not runs or runs[0]["device"] != "cuda":
        lines += ["**CPU dry run, not a GPU measurement.** Bytes are tensor bytes (no allocator, no NVML).", ""]
    lines += [
        f"`python3 scripts/validate_gpu.py` on **{device.get('name', '?')}**: torch {env.get('torch')}, "
        f"CUDA runtime {env.get('cuda_runtime')}, driver {env.get('driver')}, cuDNN {env.get('cudnn')}, "
        f"Python {env.get('python')}, commit {str(env.get('commit'))[:12]}; state {status.get('state')}, "
        f"{status.get('elapsed_s', 0):.0f} s. GiB = 2^30; `x`: built from K layers, extrapolated.",
        "",
        "| model | KV | context | layers | term | estimated | measured | difference | diff % | target |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        built = f"{len(run['layers_built'])}/{run['num_layers']}" + (" x" if run["extrapolated"] else "")
        head = f"| {run['model']} | {run['kv_dtype']} | {run['context']:,} | {built} |"
        if run["status"] not in ("measured", "shapes_only"):
            lines.append(f"{head} {run['status']} | - | - | - | - | {run.get('note') or '-'} |")
            continue
        for term in TERMS:
            t = run[term]
            if t["estimated_bytes"] is None and t["measured_bytes"] is None:
                continue
            pct = "-" if t["difference_pct"] is None else f"{t['difference_pct']:+.2f}%"
            diff = "-" if t["difference_bytes"] is None else human_bytes(t["difference_bytes"])
            lines.append(
                f"{head} {term} | {human_bytes(t['estimated_bytes'])} | {human_bytes(t['measured_bytes'])} | "
                f"{diff} | {pct} | {_verdict(term, t, run)} |"
            )
    lines += ["", *_times(runs), *_outcomes(status), ""]
    return "\n".join(lines)


def _verdict(term: str, t: dict, run: dict) -> str:
    if term == "non_torch":
        inside = run.get("cuda_context_in_range")
        return "-" if inside is None else ("context in range" if inside else "context OUT of range")
    limit = TARGETS.get(term)
    if limit is None or t["difference_pct"] is None:
        return "-"
    return f"ok (<= {limit:g}%)" if abs(t["difference_pct"]) <= limit else f"MISSED ({limit:g}%)"


def _times(runs: list[dict]) -> list[str]:
    out = []
    for run in runs:
        t = run["time"]
        if t.get("prefill_ms") is None:
            continue
        text = f"- {run['model']} {run['kv_dtype']} {run['context']:,}: prefill {t['prefill_ms']:.0f} ms, "
        text += f"decode {t['decode_ms']:.2f} ms (median of {t.get('decode_steps', 1)})"
        flags = [n for n in ("prefill", "decode") if t.get(f"{n}_launch_bound")]
        if flags:
            text += f", {' and '.join(flags)} launch-bound"
        if t.get("estimated_prefill_ms") is not None:
            text += f"; kvplan.cost on {t['gpu']}: {t['estimated_prefill_ms']:.0f} / {t['estimated_decode_ms']:.2f} ms"
        out.append(text)
    return (["Times (CUDA events; wall clock on CPU):", "", *out, ""]) if out else []


def _outcomes(status: dict) -> list[str]:
    cases = status.get("cases", {})
    return [
        f"- case {key}: {c.get('outcome')}" + (f" ({c['reason']})" if c.get("reason") else "")
        for key, c in cases.items()
    ]


def write_section(doc: Path, text: str) -> None:
    """Replace the GPU profile section (up to the next '## ' heading) or append it."""
    old = doc.read_text(encoding="utf-8") if doc.exists() else "# Validation\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(old):
        new = pattern.sub(lambda _: text + "\n", old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())

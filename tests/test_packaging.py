"""The bundled specs and GPU catalog ship inside the wheel and are found from an installed package."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # a parse cache in the checkout (kvplan.files.read_bundled_yaml), which the wheel must not carry
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)  # this checkout's kvplan, whose specs_dir() is ROOT / "model_specs"
    code = "import kvplan; kvplan.load_bundled('llama-3.1-8b')"
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.fail(f"building the wheel failed: {proc.stderr[-2000:]}")
    return next(out.glob("kvplan-*.whl"))


def test_wheel_carries_every_spec_and_the_gpu_catalog(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for spec in (ROOT / "model_specs").glob("*.yaml"):
        assert f"kvplan/model_specs/{spec.name}" in names
    assert "kvplan/data/gpus.yaml" in names
    assert (ROOT / "model_specs" / "__pycache__").is_dir()
    assert not [n for n in names if "__pycache__" in n or n.endswith(".parsed")]  # hatchling leaves __pycache__ out


def test_installed_wheel_finds_bundled_specs(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = "import kvplan.catalog as c; print(c.specs_dir()); print(len(c.bundled_names()))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    where, count = proc.stdout.split()
    assert Path(where) == site / "kvplan" / "model_specs"
    assert int(count) == len(list((ROOT / "model_specs").glob("*.yaml")))
    run = [sys.executable, "-m", "kvplan", "estimate", "llama-3.1-8b", "-c", "4k", "--format", "csv"]
    proc = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0 and "536870912" in proc.stdout, proc.stderr

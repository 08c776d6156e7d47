"""Every example in examples/ runs and says what it promises (issue 6: each example runs in CI)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # The walkthroughs call `kvplan`; make sure this interpreter's script folder is on PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


@pytest.mark.skipif(shutil.which("bash") is None, reason="walkthroughs are bash scripts")
@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.sh")))
def test_walkthrough_runs(script):
    proc = run(["bash", str(EXAMPLES / script)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "launch" in proc.stdout or "rope_scaling" in proc.stdout


def test_capacity_sweep_script():
    proc = run([sys.executable, str(EXAMPLES / "capacity_sweep.py"), "llama-3.1-8b"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("h100-sxm") == 3 and "vLLM concurrency" in proc.stdout


def test_custom_model_and_gpu_yaml(cli):
    model, gpu = str(EXAMPLES / "custom-model.yaml"), str(EXAMPLES / "custom-gpu.yaml")
    result = cli("estimate", model, "--context", "8k,64k", "--gpu", gpu, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    # 21 local layers (window 4096) + 7 global; 8 KV heads x 128 x 2 (K,V) x 2 B = 4,096 B/token/layer.
    # 64K: 4,096 x (21 x 4,096 + 7 x 65,536) = 2,231,369,728 bytes.
    assert rows[1]["kv_bytes_per_sequence"] == 4096 * (21 * 4096 + 7 * 65536)
    # Issue 12: was 46,068 MiB (the file's memory_mib); estimate now uses CUDA's total like capacity:
    # (46,068 - 469 driver reserve) MiB = 47,814,017,024 B.
    assert rows[1]["gpu_memory_bytes"] == (46068 - 469) << 20
    assert cli("show", model).exit_code == 0

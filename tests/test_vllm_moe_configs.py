"""benchmarks/vllm_moe_configs.py: the fused-MoE config file name vLLM looks for per published row (a reading)."""

import zipfile
from pathlib import Path

from kvplan.catalog import load_bundled
from tests.benchmods import bench_module

cfg = bench_module("vllm_moe_configs")


def _row(**kw: object) -> dict:
    base = {"model": "glm-4.6", "gpu": "h200", "tp": 8, "weights": "bf16"}
    return {**base, **kw}


def test_file_name_follows_vllm_rule() -> None:
    # E from the experts, N = w2's width on the rank (1,536 / 8), spaces of the device name as underscores
    glm = load_bundled("glm-4.6")
    sel, kernel = cfg.selector(_row(), glm)
    assert (sel, "16-bit" in kernel) == ("", True)
    assert cfg.file_name(glm, _row(), sel) == "E=160,N=192,device_name=NVIDIA_H200.json"
    qwen = load_bundled("qwen3-235b-a22b")
    r = _row(model="qwen3-235b-a22b", gpu="h100-sxm", tp=4, weights="fp8")
    sel, _ = cfg.selector(r, qwen)
    assert cfg.file_name(qwen, r, sel) == (
        "E=128,N=384,device_name=NVIDIA_H100_80GB_HBM3,dtype=fp8_w8a8,block_shape=[128,128].json"
    )


def test_marlin_paths_have_no_lookup() -> None:
    qwen = load_bundled("qwen3-235b-a22b")
    assert cfg.selector(_row(model="qwen3-235b-a22b", gpu="a100-80gb", tp=4, weights="fp8"), qwen)[0] is None
    oss = load_bundled("gpt-oss-120b")
    assert cfg.selector(_row(model="gpt-oss-120b", gpu="h100-sxm", tp=1, weights="mxfp4"), oss)[0] is None


def test_main_reads_the_wheel(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    wheel = tmp_path / "vllm-0.11.0-cp38-abi3-manylinux1_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(cfg.CONFIGS + "E=128,N=192,device_name=NVIDIA_H100_80GB_HBM3.json", "{}")
    assert cfg.main([str(wheel)]) == 0
    out = capsys.readouterr().out
    glm = [line for line in out.splitlines() if line.startswith("GLM-4.6 (BF16, TP=8) h200 TP8 1999/100")]
    assert len(glm) == 1 and "NOT shipped: default config" in glm[0]
    tuned = [line for line in out.splitlines() if "E=128,N=192,device_name=NVIDIA_H100_80GB_HBM3.json" in line]
    assert tuned and all("tuned file shipped" in line for line in tuned)
    assert "(vLLM 0.13.0)" not in out  # only the releases given
    assert cfg.main([str(tmp_path / "missing.whl")]) == 2


def test_a100_table_needs_its_release(tmp_path: Path) -> None:
    wheel = tmp_path / "vllm-0.11.0-cp38-abi3-manylinux1_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(cfg.CONFIGS + "README", "")
    assert cfg.main([str(wheel), "--a100-table"]) == 2

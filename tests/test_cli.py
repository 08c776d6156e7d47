"""The CLI end to end: output shape, JSON fields, and one clean line with exit 2 for bad input."""

import json
import subprocess
import sys

import pytest

from kvplan.units import GIB


def test_estimate_json_fields(cli):
    result = cli("estimate", "llama-2-13b", "--context", "4k,16k,128k", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["context"] for r in rows] == [4096, 16384, 131072]
    # 819,200 B/token x 4,096 = 3.125 GiB (article: ~3 GB at 4K, 12 GB at 16K, 100 GB at 128K).
    assert [r["kv_bytes_per_sequence"] for r in rows] == [int(3.125 * GIB), int(12.5 * GIB), 100 * GIB]
    for r in rows:
        for key in ("kv_bytes_per_token", "kv_bytes_total", "weights_bytes_per_gpu", "total_bytes_per_gpu"):
            assert isinstance(r[key], int)
    assert rows[0]["beyond_trained_context"] is False and rows[1]["beyond_trained_context"] is True


def test_estimate_table_with_gpu_and_batch(cli):
    result = cli("estimate", "LLAMA-3.1-8B", "-c", "32k", "--batch", "8", "--gpu", "h100-sxm")
    assert result.exit_code == 0, result.output
    assert "32.00 GiB" in result.stdout  # 131,072 B/token x 32,768 x 8 = 32 GiB
    # Issue 12: was 79.65 GiB (81,559 MiB, nvidia-smi's figure) while capacity budgets from CUDA's
    # total; now both use 81,090 MiB = 79.19 GiB (kvplan.hardware.usable_memory_bytes).
    assert "79.19 GiB" in result.stdout
    assert "yes" in result.stdout


def test_estimate_flags_beyond_trained_context(cli):
    result = cli("estimate", "llama-2-13b", "-c", "8k")
    assert "beyond trained context" in result.stdout
    # Issue 12: the hint stretches from the current 4,096 tokens (8k / 4k = factor 2).
    assert "extend it with RoPE scaling" in result.stderr
    assert "--original-context 4096 --factor 2" in result.stderr


@pytest.mark.parametrize("fmt", ["table", "json", "csv", "markdown"])
def test_every_format(cli, fmt):
    for args in (("estimate", "llama-3.1-8b"), ("models",), ("gpus",), ("show", "gemma-3-27b")):
        result = cli(*args, "--format", fmt)
        assert result.exit_code == 0, (args, result.output)
        if fmt == "json":
            json.loads(result.stdout)


def test_gpus_catalog_has_fifteen(cli):
    rows = json.loads(cli("gpus", "--format", "json").stdout)
    assert len(rows) >= 15
    assert all(r["source"] and r["memory_mib"] > 0 for r in rows)


def test_user_gpu_yaml(cli, tmp_path):
    path = tmp_path / "mygpu.yaml"
    path.write_text(
        "name: my-card\nmemory_mib: 49152\nbandwidth_gbps: 960\nbf16_dense_tflops: 150\nsource: my datasheet\n"
    )
    result = cli("estimate", "llama-3.1-8b", "-c", "4k", "--gpu", str(path), "--format", "json")
    assert result.exit_code == 0, result.output
    # Issue 12: was 49,152 MiB (the file's memory_mib); the usable figure is CUDA's total, the
    # driver's reserve (469 MiB, as on the H100) taken off: (49152 - 469) MiB = 51,047,825,408 B.
    assert json.loads(result.stdout)[0]["gpu_memory_bytes"] == (49152 - 469) << 20
    assert "my-card" in cli("gpus", "--file", str(path)).stdout


def _one_error_line(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("kvplan: error: ")
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0]


def test_bad_input_is_one_line_exit_2(cli, tmp_path):
    _one_error_line(cli("estimate", "no-such-model"), "unknown model 'no-such-model'")
    _one_error_line(cli("estimate", "llama-3.1-8b", "--gpu", "h10"), "unknown GPU 'h10'", "h100")
    _one_error_line(cli("estimate", "llama-3.1-8b", "-c", "-4k"), "invalid length '-4k'")
    _one_error_line(cli("estimate", "llama-3.1-8b", "-c", "99999999999"), "invalid length")
    _one_error_line(cli("estimate", "llama-3.1-8b", "--kv-dtype", "fp7"), "unknown KV-cache dtype 'fp7'")
    _one_error_line(cli("estimate", "llama-3.1-8b", "--tp", "3"), "does not divide")
    _one_error_line(cli("estimate", "llama-3.1-8b", "--batch", "0"), "invalid batch 0")
    _one_error_line(cli("estimate", "llama-3.1-8b", "--format", "xml"), "unknown format 'xml'")
    _one_error_line(cli("estimate", str(tmp_path / "missing.yaml")), "does not exist")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    _one_error_line(cli("estimate", str(broken)), "malformed YAML")
    bad_json = tmp_path / "config.json"
    bad_json.write_text("{not json")
    _one_error_line(cli("estimate", str(bad_json)), "malformed JSON")
    _one_error_line(cli("estimate", str(tmp_path)), "malformed JSON")


def test_inconsistent_spec_lists_each_problem(cli, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\nsource: test\nhidden_size: 64\nvocab_size: 10\nnum_layers: 2\n"
        "num_attention_heads: 4\nnum_kv_heads: 3\nhead_dim: 16\nintermediate_size: 64\n"
        "max_position_embeddings: 128\n"
    )
    result = cli("estimate", str(path))
    _one_error_line(result, "not divisible by num_kv_heads (3)", "bad.yaml")


def test_console_script_usage_error_is_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "kvplan", "estimate", "llama-3.1-8b", "--bogus"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "No such option: --bogus" in proc.stderr
    assert proc.stdout == ""


def test_estimate_never_imports_heavy_modules():
    code = (
        "import sys; from kvplan.cli import main; main(['estimate', 'llama-3.1-8b', '-c', '4k,32k,128k']);"
        "heavy = [m for m in ('torch', 'pynvml', 'transformers', 'matplotlib', 'numpy', 'huggingface_hub')"
        " if m in sys.modules];"
        "print('HEAVY', heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_only_a_table_imports_tabulate(fmt):
    """kvplan.report imports tabulate (without wcwidth) on the first table it draws: json and csv never need it."""
    code = (
        f"import sys; from kvplan.cli import main; main(['cost', 'llama-3.1-8b', '--gpu', 'h100-sxm', '-c', '4k', '-f',"
        f" '{fmt}']); print('TABULATE', 'tabulate' in sys.modules, 'wcwidth' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.rstrip().endswith(f"TABULATE {fmt == 'table'} False"), proc.stdout + proc.stderr


def test_the_command_process_raises_the_collectors_threshold_before_its_imports():
    """kvplan.__main__.main (console script, python -m kvplan) sets the cyclic collector's first threshold to
    CLI_GC_THRESHOLD before typer or any command module is imported, and `plan --rate` then runs no collection;
    importing kvplan.cli (a library user, a test) leaves CPython's thresholds alone."""
    from kvplan.__main__ import CLI_GC_THRESHOLD

    code = (
        "import atexit, gc, runpy, sys; base = [s['collections'] for s in gc.get_stats()];"
        "atexit.register(lambda: print('GC', gc.get_threshold()[0], [s['collections'] - b for s, b in"
        " zip(gc.get_stats(), base)], sorted(m for m in ('typer', 'kvplan.cli') if m in BEFORE)));"
        "import kvplan.__main__ as entry; real = entry.cli_gc;"
        "entry.cli_gc = lambda: (real(), globals().__setitem__('BEFORE', set(sys.modules)));"
        "sys.argv = ['kvplan', 'plan', 'llama-3.1-8b', '--rate', '2', '--ttft', '1s', '--tpot', '50ms', '--gpus',"
        " 'h100-sxm', '--top', '2']; entry.main()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().splitlines()[-1] == f"GC {CLI_GC_THRESHOLD} [0, 0, 0] []", proc.stdout
    shown = [f"import gc{m}; print(gc.get_threshold())" for m in ("", ", kvplan.cli")]
    thresholds = [subprocess.run([sys.executable, "-c", c], capture_output=True, text=True) for c in shown]
    assert thresholds[0].stdout == thresholds[1].stdout != "", thresholds


def test_the_command_ends_without_teardown_but_flushes_and_runs_atexit():
    """kvplan.cli.run (console script, python -m kvplan) leaves by os._exit after main: the output is all there, the
    exit code is main's, atexit handlers ran (printed after the output), and a reader closing the pipe early
    gets no error message."""
    code = (
        "import atexit, sys; atexit.register(lambda: print('atexit ran')); from kvplan.cli import run;"
        "sys.argv = ['kvplan', 'estimate', 'llama-3.1-8b', '-c', '4k,32k']; run()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "llama-3.1-8b" in proc.stdout and proc.stdout.rstrip().endswith("atexit ran") and proc.stderr == ""
    bad = subprocess.run([sys.executable, "-m", "kvplan", "estimate", "no-such-model"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stdout == ""
    piped = subprocess.run(f"{sys.executable} -m kvplan models | head -1", shell=True, capture_output=True, text=True)
    assert piped.stdout.startswith("name") and piped.stderr == ""

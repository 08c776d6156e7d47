"""`kvplan plan`, `kvplan capacity` on the command line, and the launch flags of each engine."""

import json

import pytest

from kvplan.capacity import capacity, setup
from kvplan.catalog import load_bundled
from kvplan.hardware import bundled_gpus, resolve_gpu
from kvplan.launch import launch_args, model_ref
from kvplan.planner import plan

H100 = resolve_gpu("h100-sxm")


def test_plan_rows_serve_the_users_and_are_ranked():
    spec = load_bundled("llama-3.1-70b")
    rows = plan(spec, list(bundled_gpus().values()), users=64, context=32768)
    assert rows
    for r in rows:
        assert r.sequences_per_replica * r.replicas >= 64
        assert r.gpus == r.replicas * r.tp * r.pp * r.dp
        assert r.headroom_bytes >= 0
    # Issue 11 changed the ranking: was (GPUs, -headroom); now weights as the checkpoint ships them
    # come before a conversion (online fp8) at the same GPU count: (GPUs, not shipped, -headroom).
    keys = [(r.gpus, not r.weights_shipped, -r.headroom_bytes) for r in rows]
    assert keys == sorted(keys)


def test_plan_row_agrees_with_capacity():
    spec = load_bundled("llama-3.1-8b")
    row = plan(spec, [H100], users=10, context=8192, weights_dtypes=["bf16"], kv_dtypes=["bf16"])[0]
    s = setup(spec, H100, tp=row.tp, weights_dtype="bf16", kv_dtype_name="bf16")
    assert capacity(s, 8192).max_concurrent_sequences == row.sequences_per_replica


def test_plan_skips_splits_the_model_cannot_take():
    spec = load_bundled("qwen2.5-7b")  # 28 heads: tp 8 does not divide them
    rows = plan(spec, [H100], users=1, context=4096)
    assert {r.tp for r in rows} <= {1, 2, 4}


def test_plan_rejects_zero_users():
    from kvplan.errors import InvalidInput

    with pytest.raises(InvalidInput, match="invalid users 0"):
        plan(load_bundled("llama-3.1-8b"), [H100], users=0, context=4096)


# ---- launch flags -------------------------------------------------------------------------------


def _answer(engine, **kw):
    s = setup(load_bundled("llama-3.1-8b"), H100, engine=engine, **kw)
    return capacity(s, 32768)


def test_vllm_launch_flags():
    args = launch_args(_answer("vllm", tp=2, kv_dtype_name="fp8"), model="meta-llama/Llama-3.1-8B")
    assert args[:3] == ["vllm", "serve", "meta-llama/Llama-3.1-8B"]
    # --gpu-memory-utilization: vLLM 0.21's default 0.92 (vllm/config/cache.py), was 0.9 (0.19) before
    # `--engine vllm` meant the newest release.
    for flag, value in [("--max-model-len", "32768"), ("--gpu-memory-utilization", "0.92"),
                        ("--kv-cache-dtype", "fp8"), ("-tp", "2")]:  # fmt: skip
        assert args[args.index(flag) + 1] == value
    assert "--max-num-seqs" in args


def test_vllm_launch_with_kv_cache_memory():
    s = setup(load_bundled("llama-3.1-8b"), H100)
    args = launch_args(capacity(s, 8192, kv_cache_memory=8 << 30), model="m")
    assert args[args.index("--kv-cache-memory") + 1] == str(8 << 30)
    assert "--gpu-memory-utilization" not in args


def test_sglang_launch_flags():
    args = launch_args(_answer("sglang"), model="m")
    assert args[args.index("--context-length") + 1] == "32768"
    # SGLang 0.5.23 (memory_hook.py): 512 + 8,192 x 1.5 + 128 + 256 x 2 + 58 prefill-graph sizes x 8 = 13,904 MiB of
    # 81,090 reserved -> 0.829 (0.5.7, sglang@0.5: 13,440 -> 0.834)
    assert float(args[args.index("--mem-fraction-static") + 1]) == pytest.approx(0.829)


def test_llamacpp_launch_flags():
    r = _answer("llamacpp", kv_dtype_name="q8_0")
    args = launch_args(r, model="meta-llama/Llama-3.1-8B", sequences=3)
    assert args[0] == "llama-server"
    assert args[args.index("-c") + 1] == str(3 * 32768)
    assert args[args.index("-np") + 1] == "3"
    assert args[args.index("-ctk") + 1] == args[args.index("-ctv") + 1] == "q8_0"


def test_trtllm_launch_flags():
    args = launch_args(_answer("trtllm"), model="m")
    assert args[0] == "trtllm-serve"
    assert args[args.index("--kv_cache_free_gpu_memory_fraction") + 1] == "0.9"


def test_model_ref_from_source():
    assert model_ref("https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json", "x") == (
        "meta-llama/Llama-3.1-8B"
    )
    assert model_ref("arXiv 2408.00118", "gemma") == "gemma"


# ---- CLI ----------------------------------------------------------------------------------------


def test_cli_capacity_json(cli):
    r = cli("capacity", "llama-3.1-8b", "--gpu", "h100-sxm", "-c", "16k", "--gpu-memory-utilization", "0.95",
            "--format", "json")  # fmt: skip
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    for key in ("kv_pool_bytes", "kv_pool_tokens", "max_concurrent_sequences", "max_context"):
        assert isinstance(d[key], int)
    assert d["launch"][:2] == ["vllm", "serve"]
    assert d["breakdown"]["weights_bytes"] > 0


def test_cli_capacity_kv_cache_memory_field(cli):
    r = cli("capacity", "llama-3.1-8b", "--gpu", "h100-sxm", "-c", "16k", "--kv-cache-memory", "58.11GiB",
            "--format", "json")  # fmt: skip
    d = json.loads(r.output)
    assert d["available_kv_bytes"] == int(58.11 * (1 << 30))
    assert d["max_concurrent_sequences"] == 29


def test_cli_capacity_table_and_mix(cli):
    r = cli("capacity", "gemma-3-27b", "--gpu", "h100-sxm", "-c", "32k", "--lengths", "2k,8k,32k",
            "--weights", "0.6,0.3,0.1", "--batch", "4")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "expected_concurrency" in r.output and "launch: vllm serve" in r.output


def test_cli_capacity_does_not_fit_is_exit_zero(cli):
    r = cli("capacity", "llama-3.1-70b", "--gpu", "l4", "-c", "32k")
    assert r.exit_code == 0
    assert "does not fit" in r.output and "nearest that fits" in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tp", "3"], "does not divide"),
        (["--engine", "vlm"], "unknown engine 'vlm'"),
        (["--gpu-memory-utilization", "1.5"], "expected a fraction in (0, 1]"),
        (["--gpu-memory-utilization", "0"], "expected a fraction in (0, 1]"),
        (["--engine", "llamacpp", "--kv-dtype", "fp8"], "does not store a KV cache in 'fp8'"),
        (["--kv-cache-memory", "lots"], "invalid size 'lots'"),
        (["--gpus", "3", "--tp", "2"], "multiple of tp x pp"),
    ],
)
def test_cli_capacity_bad_input_is_one_line_exit_2(cli, args, message):
    r = cli("capacity", "llama-3.1-8b", "--gpu", "h100-sxm", "-c", "8k", *args)
    assert r.exit_code == 2
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and message in lines[0]


def test_cli_plan_table_and_json(cli):
    r = cli("plan", "llama-3.1-8b", "--users", "32", "-c", "8k", "--gpus", "h100-sxm,l4", "--top", "3")
    assert r.exit_code == 0, r.output
    assert "launch (first row): vllm serve" in r.output
    j = cli("plan", "llama-3.1-8b", "--users", "32", "-c", "8k", "--gpus", "l4", "--format", "json")
    d = json.loads(j.output)
    assert d["plans"] and all(p["gpu"] == "l4" for p in d["plans"])
    assert d["plans"][0]["launch"][0] == "vllm"


def test_cli_plan_unknown_gpu(cli):
    r = cli("plan", "llama-3.1-8b", "--users", "2", "-c", "8k", "--gpus", "h10")
    assert r.exit_code == 2 and "unknown GPU 'h10'" in r.output


def test_plan_uses_pipeline_parallel_beyond_one_node():
    spec = load_bundled("llama-3.1-405b")
    rows = plan(spec, [H100], users=16, context=32768, weights_dtypes=["bf16"], kv_dtypes=["bf16"])
    # 405B in bf16 (~810 GB) does not fit 8 x 80 GB: the first answer spans two nodes (tp 8, pp 2).
    assert (rows[0].tp, rows[0].pp, rows[0].gpus) == (8, 2, 16)


def test_cli_capacity_csv_is_raw(cli):
    import csv
    import io

    r = cli("capacity", "llama-3.1-8b", "--gpu", "l4", "-c", "8k", "--format", "csv")
    assert r.exit_code == 0, r.output
    (row,) = list(csv.DictReader(io.StringIO(r.output)))
    assert int(row["kv_pool_bytes"]) > 0 and int(row["weights_bytes"]) > 0 and row["engine"] == "vllm"


def test_trtllm_plan_keeps_rows_it_cannot_launch_over_nodes(cli):  # noqa: ANN001
    # TensorRT-LLM has no multi-node launch in kvplan: a two-node row stands, with the reason instead of a command
    # (the plan used to exit 2 on the first such row)
    r = cli("plan", "llama-3.1-8b", "--users", "8", "-c", "8k", "--gpus", "h200,b200", "--engine", "trtllm",
            "--format", "json")  # fmt: skip
    assert r.exit_code == 0, r.output
    plans = json.loads(r.output)["plans"]
    wide = [p for p in plans if p["nodes"] > 1]
    assert wide and all(not p["node_commands"] for p in wide)
    assert all("has no multi-node launch in kvplan" in p["launch_notes"][-1] for p in wide)
    assert plans[0]["nodes"] == 1 and plans[0]["node_commands"]

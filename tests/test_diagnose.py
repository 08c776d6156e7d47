"""`kvplan check-log` on failed starts: recognised, explained, and fixed with changes kvplan checks.

Real logs (tests/data/failed_starts/, each with its source thread) and synthetic variants of every
refusal built from the engines' own format strings across versions.
"""

import json
from pathlib import Path

import pytest

from kvplan import failures as fl
from kvplan.diagnose import diagnose_text, identify_gpu
from kvplan.units import GIB, MIB

DATA = Path(__file__).parent / "data" / "failed_starts"

# The issue's example: vLLM's best-known refusal (Llama-3.1-8B, 128 KiB of bf16 KV per token).
ISSUE_LOG = """\
INFO [utils.py:233] non-default args: {'model_tag': 'meta-llama/Llama-3.1-8B-Instruct', \
'model': 'meta-llama/Llama-3.1-8B-Instruct'}
ValueError: To serve at least one request with the models's max seq len (131072), (16.00 GiB
KV cache is needed, which is larger than the available KV cache memory (9.13 GiB). Based on
the available memory, the estimated maximum model length is 74688. Try increasing
`gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.
"""

# ---- synthetic variants: the engines' format strings, filled in, per version -------------------------

VLLM_KV_SHORT = {
    # vllm/v1/core/kv_cache_utils.py _check_enough_kv_cache_memory, 0.8.0-0.8.4: no estimate clause
    "v1-0.8": "ValueError: To serve at least one request with the models's max seq len ({L}), ({need} GiB KV "
    "cache is needed, which is larger than the available KV cache memory ({avail} GiB). Try increasing "
    "`gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.",
    # 0.8.5-0.19: the binary-search estimate (vllm#16118)
    "v1-0.19": "ValueError: To serve at least one request with the models's max seq len ({L}), ({need} GiB KV "
    "cache is needed, which is larger than the available KV cache memory ({avail} GiB). Based on the available "
    "memory, the estimated maximum model length is {est}. Try increasing `gpu_memory_utilization` or decreasing "
    "`max_model_len` when initializing the engine. See https://docs.vllm.ai/en/latest/configuration/"
    "conserving_memory/ for more details.",
    # later builds: "model's", no parenthesis before the size, "Estimated maximum model length"
    "v1-later": "ValueError: To serve at least one request with the model's max seq len ({L}), {need} GiB KV "
    "cache is needed, which is larger than the available KV cache memory ({avail} GiB). Estimated maximum "
    "model length is {est}.",
}


@pytest.mark.parametrize("version", sorted(VLLM_KV_SHORT))
def test_vllm_max_seq_len_refusal_in_every_wording(version):
    text = VLLM_KV_SHORT[version].format(L=131072, need="16.00", avail="9.13", est=74688)
    f = diagnose_text(text, model="llama-3.1-8b").failure
    assert f.kind == fl.KV_SHORT and f.engine == "vllm"
    assert f.figures["max_len"] == 131072 and f.figures["needed_bytes"] == 16 * GIB
    assert f.figures["available_bytes"] == pytest.approx(9.13 * GIB)
    assert f.figures.get("estimated_len") == (None if version == "v1-0.8" else 74688)
    assert "kv_cache_utils.py" in f.source


SYNTHETIC = [
    # (engine, message, kind, figure checks)
    ("vllm", "ValueError: The model's max seq len (32768) is larger than the maximum number of tokens that can "
     "be stored in KV cache (7344). Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when "
     "initializing the engine.", fl.KV_SHORT, {"max_len": 32768, "kv_tokens": 7344}),
    ("vllm", "ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when "
     "initializing the engine.", fl.NO_KV_MEMORY, {}),
    ("vllm", "ValueError: Free memory on device (31.44/47.38 GiB) on startup is less than desired GPU memory "
     "utilization (0.95, 45.01 GiB). Decrease GPU memory utilization or reduce GPU memory used by other "
     "processes.", fl.STARTUP_FREE, {"fraction": 0.95, "total_bytes": 47.38 * GIB}),
    ("vllm", "ValueError: Free memory on device cuda:0 (19.77/22.05 GiB) on startup is less than desired GPU "
     "memory utilization (0.9, 19.84 GiB).", fl.STARTUP_FREE, {"free_bytes": 19.77 * GIB}),
    ("vllm", "ValueError: Total number of attention heads (40) must be divisible by tensor parallel size (3).",
     fl.TP_HEADS, {"heads": 40, "tp": 3}),
    ("vllm", "Value error, Total number of attention heads (64) must be divisible by tensor parallel size (3).",
     fl.TP_HEADS, {"heads": 64}),
    ("vllm", "INFO [gpu_model_runner.py] Capturing CUDA graphs (mixed prefill-decode, PIECEWISE)\n"
     "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.25 GiB. GPU 0 has a total capacity of "
     "79.19 GiB of which 312.00 MiB is free.", fl.OOM, {"tried_bytes": 1.25 * GIB, "free_bytes": 312 * MIB}),
    ("sglang", "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.", fl.NO_KV_MEMORY, {}),
    ("sglang", "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static. Current value: "
     "mem_fraction_static=0.81", fl.NO_KV_MEMORY, {"fraction": 0.81}),
    ("sglang", "ValueError: Loaded weights leave no GPU memory for the KV cache under --mem-fraction-static=0.9.",
     fl.NO_KV_MEMORY, {"fraction": 0.9}),
    ("llamacpp", "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 16384.00 MiB on device 0: cudaMalloc "
     "failed: out of memory\nllama_kv_cache: failed to allocate buffer for kv cache\nllama_init_from_model: failed "
     "to initialize the context: failed to allocate buffer for kv cache", fl.KV_ALLOC, {"tried_bytes": 16 * GIB}),
    ("llamacpp", "llama_context: n_ctx_pre_seq (32768) > n_ctx_train (2048) -- possible training context overflow",
     fl.CTX_OVER_TRAIN, {"n_ctx_train": 2048}),
    ("llamacpp", "llama_new_context_with_model: n_ctx_per_seq (65536) > n_ctx_train (40960) -- possible training "
     "context overflow", fl.CTX_OVER_TRAIN, {"n_ctx_seq": 65536}),
    ("llamacpp", "W llama_context: n_ctx_seq (49152) > n_ctx_train (40960) -- possible training context overflow",
     fl.CTX_OVER_TRAIN, {"n_ctx_train": 40960}),
    ("llamacpp", "graph_reserve: failed to allocate compute buffers", fl.COMPUTE_ALLOC, {}),
    ("trtllm", "[TensorRT-LLM][ERROR] Assertion failed: maxTokensInPagedKvCache (693) must be large enough to "
     "process at least 1 sequence to completion (i.e. must be larger than beam_width (1) * tokensPerBlock (64) * "
     "maxBlocksPerSeq (64))", fl.KV_SHORT, {"kv_tokens": 693, "tokens_per_block": 64}),
    ("trtllm", "[TensorRT-LLM][ERROR] maxTokensInPagedKvCache must be large enough to process at least 1 sequence "
     "to completion (i.e. must be larger than beam_width * tokensPerBlock * maxBlocksPerSeq)", fl.KV_SHORT, {}),
]  # fmt: skip


@pytest.mark.parametrize("engine,message,kind,expect", SYNTHETIC, ids=[f"{e}-{k}-{i}" for i, (e, _, k, _) in
                                                                        enumerate(SYNTHETIC)])  # fmt: skip
def test_synthetic_variants(engine, message, kind, expect):
    d = diagnose_text(message)
    assert d.failed and d.engine == engine and d.failure.kind == kind, d.failure
    for key, value in expect.items():
        assert d.failure.figures[key] == pytest.approx(value), key
    assert d.failure.source  # every recognised refusal names the engine code that raises it


# ---- real logs ---------------------------------------------------------------------------------------

REAL = {
    "vllm-34076-max-seq-len-pp.log": ("vllm", fl.KV_SHORT),
    "vllm-tpu-inference-223-max-seq-len.log": ("vllm", fl.KV_SHORT),
    "vllm-16118-no-estimate.log": ("vllm", fl.KV_SHORT),
    "vllm-intel-arc-4-models-wrapped.log": ("vllm", fl.KV_SHORT),
    "vllm-2418-v0-max-seq-len.log": ("vllm", fl.KV_SHORT),
    "vllm-17431-no-available-memory.log": ("vllm", fl.NO_KV_MEMORY),
    "vllm-23278-negative-kv-memory.log": ("vllm", fl.NO_KV_MEMORY),
    "vllm-13061-v0-max-seq-len-tp2.log": ("vllm", fl.KV_SHORT),
    "vllm-10439-v0-no-available-memory.log": ("vllm", fl.NO_KV_MEMORY),
    "vllm-23192-startup-free-h200.log": ("vllm", fl.STARTUP_FREE),
    "vllm-20305-startup-free.log": ("vllm", fl.STARTUP_FREE),
    "vllm-pytorch-175666-startup-free-l4.log": ("vllm", fl.STARTUP_FREE),
    "vllm-596-tp-heads.log": ("vllm", fl.TP_HEADS),
    "vllm-2652-tp-heads.log": ("vllm", fl.TP_HEADS),
    "vllm-15598-cuda-graph-oom.log": ("vllm", fl.OOM),
    "vllm-19186-cuda-graph-capture-error.log": ("vllm", fl.OOM),
    "sglang-4330-not-enough-memory.log": ("sglang", fl.NO_KV_MEMORY),
    "sglang-322-not-enough-memory.log": ("sglang", fl.NO_KV_MEMORY),
    "sglang-inferencex-2128-loaded-weights.log": ("sglang", fl.NO_KV_MEMORY),
    "llamacpp-python-1944-kv-alloc.log": ("llamacpp", fl.KV_ALLOC),
    "llamacpp-ollama-6860-compute-buffers.log": ("llamacpp", fl.COMPUTE_ALLOC),
    "llamacpp-20431-weights-alloc.log": ("llamacpp", fl.WEIGHTS_ALLOC),
    "trtllm-494-max-tokens-paged-kv.log": ("trtllm", fl.KV_SHORT),
}


def test_every_real_log_is_listed_and_sourced():
    logs = {p.name for p in DATA.glob("*.log")}
    assert logs == set(REAL) | {"trtllm-2398-t5-memory.log"}
    for name in logs:
        assert (DATA / name).read_text().startswith("# source: https://github.com/"), name
    engines = {engine for engine, _ in REAL.values()}
    from kvplan.engines import ENGINES

    # a real failure for every engine whose refusals kvplan reads: the four serving engines
    assert (
        engines == {e.name for e in ENGINES.values() if e.failure_patterns} == {"vllm", "sglang", "llamacpp", "trtllm"}
    )


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_failed_start_is_recognised(name):
    engine, kind = REAL[name]
    d = diagnose_text((DATA / name).read_text())
    assert d.failed and d.engine == engine and d.failure.kind == kind, (d.engine, d.failure)


def test_real_figures_are_read():
    d = diagnose_text((DATA / "vllm-34076-max-seq-len-pp.log").read_text())
    assert d.failure.figures == {"max_len": 262144, "needed_bytes": 24 * GIB,
                                 "available_bytes": pytest.approx(3.18 * GIB), "estimated_len": 34736}  # fmt: skip
    wrapped = diagnose_text((DATA / "vllm-intel-arc-4-models-wrapped.log").read_text()).failure
    assert wrapped.figures["max_len"] == 100000 and wrapped.figures["needed_bytes"] == pytest.approx(4.26 * GIB)
    graphs = diagnose_text((DATA / "vllm-15598-cuda-graph-oom.log").read_text()).failure
    # Ray workers interleave: the profiling lines follow the capture line, the phase is still capture.
    assert graphs.phase == "CUDA-graph capture" and graphs.figures["tried_bytes"] == 2 * MIB
    kv = diagnose_text((DATA / "llamacpp-python-1944-kv-alloc.log").read_text()).failure
    assert kv.figures["tried_bytes"] == 204800 * MIB


def test_trtllm_log_that_started_is_not_compared(cli):
    r = cli("check-log", str(DATA / "trtllm-2398-t5-memory.log"))
    assert r.exit_code == 2 and "no failed start found in this trtllm log" in r.output


# ---- explanation and the issue's example ------------------------------------------------------------


def test_issue_example_is_diagnosed_with_kvplan_estimate_beside_vllm():
    d = diagnose_text(ISSUE_LOG)
    assert d.failed and d.model == "llama-3.1-8b" and d.failure.kind == fl.KV_SHORT
    rows = {r["term"]: r for r in d.explanation}
    # 131,072 tokens x 32 layers x 8 KV heads x 128 x 2 (K, V) x 2 B = 16 GiB exactly, as vLLM says.
    assert rows["KV for 1 x 131,072 tokens"]["kvplan_value"] == 16 * GIB
    longest = rows["longest context in the logged KV memory"]
    # 9.13 GiB // 2 MiB blocks (16 tokens x 128 KiB) = 4,674 blocks; one is vLLM's null block:
    # 4,673 x 16 = 74,768 tokens. vLLM says 74,688 (its 9.13 is rounded from a smaller figure).
    assert longest["engine_value"] == 74688 and longest["kvplan_value"] == 74768
    assert d.gpu.how == "not identified"
    shorter = [p for p in d.prescriptions if p.change.startswith("context")]
    assert shorter and "--max-model-len 74688" in shorter[0].launch_command  # the smaller of the two estimates
    assert "meta-llama/Llama-3.1-8B-Instruct" in shorter[0].launch_command  # the checkpoint the log names


def test_largest_term_and_calibration():
    d = diagnose_text((DATA / "vllm-17431-no-available-memory.log").read_text(), gpu="a100-80gb")
    assert d.gpu.how == "--gpu" and d.model == "qwen3-8b"
    # utilization 0.4 holds back 60% of 79.54 GiB: the largest term.
    assert d.took_memory.startswith("held back by the memory fraction: 47.73 GiB")
    # The engine had nothing for its KV cache; kvplan predicts 14.09 GiB: that gap rides on every check.
    assert d.calibration_overhead_bytes == pytest.approx(14.09 * GIB, rel=1e-3)
    assert all("--overhead" in p.check_command for p in d.prescriptions)
    assert d.prescriptions[0].change == "--gpu-memory-utilization 0.48"  # the least given up


def test_unknown_failure_quotes_the_last_error_line():
    text = ("INFO 01-01 [core.py] starting\nTraceback (most recent call last):\n  File \"x.py\", line 3, in f\n"
            "    raise KeyError('rope_type')\nKeyError: 'rope_type'\n")  # fmt: skip
    d = diagnose_text(text, engine="vllm")
    assert d.failed and d.failure.kind == fl.UNKNOWN and d.failure.line == "KeyError: 'rope_type'"
    assert not d.prescriptions


def test_a_log_that_started_is_not_a_failure():
    from tests.test_logcheck import VLLM_15

    d = diagnose_text(VLLM_15)
    assert not d.failed and d.failure is None


# ---- the GPU from the log ---------------------------------------------------------------------------


def test_gpu_from_device_name_then_total_then_flag():
    gpu, how = identify_gpu("ggml_cuda_init: found 1 CUDA devices:\n  Device 0: NVIDIA GeForce RTX 4090, "
                            "compute capability 8.9, VMM: yes\n")  # fmt: skip
    assert gpu.name == "rtx-4090" and how.how == "device name in the log"
    gpu, how = identify_gpu("GPU 0 has a total capacity of 79.19 GiB of which 20.00 MiB is free")
    assert gpu.name == "h100-sxm" and how.how == "total memory in the log" and how.total_bytes == int(79.19 * GIB)
    # 79.19 GiB with compute capability 8.0 is no H100: the total alone is not trusted.
    gpu, how = identify_gpu("compute capability 8.0\nGPU 0 has a total capacity of 79.19 GiB of which", "l4")
    assert gpu.name == "l4" and how.how == "--gpu"
    gpu, how = identify_gpu("nothing here")
    assert gpu is None and how.how == "not identified"


# ---- every prescription starts, by kvplan's own capacity command -------------------------------------

L4_LOG = """\
INFO 10-01 [utils.py:233] non-default args: {'model_tag': 'meta-llama/Llama-3.1-8B-Instruct', 'model': \
'meta-llama/Llama-3.1-8B-Instruct', 'max_model_len': 131072}
INFO 10-01 [gpu_worker.py:661] Free memory on device (21.80/22.04 GiB) on startup. Desired GPU memory \
utilization is (0.9, 19.84 GiB).
ValueError: To serve at least one request with the models's max seq len (131072), (16.00 GiB KV cache is needed, \
which is larger than the available KV cache memory (4.05 GiB). Based on the available memory, the estimated \
maximum model length is 33152.
"""
SGLANG_70B = """\
python -m sglang.launch_server --model-path meta-llama/Llama-3.1-70B-Instruct --tp 2 --context-length 32768
[2025-05-01 10:00:00 TP0] Load weight end. type=LlamaForCausalLM, dtype=torch.bfloat16, avail mem=10.90 GB, \
mem usage=65.72 GB.
RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.
"""
LLAMACPP_Q8 = """\
print_info: file type   = Q8_0
llama_context: n_seq_max     = 1
llama_context: n_ctx         = 131072
llama_context: n_ubatch      = 512
ggml_backend_cuda_buffer_type_alloc_buffer: allocating 16384.00 MiB on device 0: cudaMalloc failed: out of memory
llama_init_from_model: failed to initialize the context: failed to allocate buffer for kv cache
"""
TRTLLM_7B = """\
trtllm-serve meta-llama/Llama-2-7b-chat-hf --max_seq_len 4096 --max_batch_size 4 \
--kv_cache_free_gpu_memory_fraction 0.02
[TensorRT-LLM][ERROR] Assertion failed: maxTokensInPagedKvCache (693) must be large enough to process at least \
1 sequence to completion (i.e. must be larger than beam_width (1) * tokensPerBlock (32) * maxBlocksPerSeq (128))
"""
WEIGHTS_OOM = """\
vllm serve meta-llama/Llama-3.1-70B-Instruct -tp 2 --max-model-len 32768
INFO [gpu_model_runner.py] Loading model weights
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 448.00 MiB. GPU 1 has a total capacity of 79.19 GiB \
of which 301.00 MiB is free.
"""
SCENARIOS = {
    "issue-no-gpu": (ISSUE_LOG, {}),
    "vllm-l4": (L4_LOG, {"gpu": "l4"}),
    "vllm-17431": ((DATA / "vllm-17431-no-available-memory.log").read_text(), {"gpu": "a100-80gb"}),
    "vllm-596-tp": ((DATA / "vllm-596-tp-heads.log").read_text(), {"model": "llama-2-13b", "gpu": "rtx-3090"}),
    "vllm-175666-free": ((DATA / "vllm-pytorch-175666-startup-free-l4.log").read_text(), {"model": "llama-3.1-8b"}),
    "vllm-34076-pp": ((DATA / "vllm-34076-max-seq-len-pp.log").read_text(),
                      {"model": "qwen3-30b-a3b", "weights_dtype": "fp8"}),
    "vllm-15598-graphs": ((DATA / "vllm-15598-cuda-graph-oom.log").read_text(), {"model": "qwen2.5-7b"}),
    "sglang-70b": (SGLANG_70B, {"gpu": "h100-sxm"}),
    "llamacpp-q8": (LLAMACPP_Q8, {"model": "llama-3.1-8b", "gpu": "rtx-4090"}),
    "trtllm-7b": (TRTLLM_7B, {"gpu": "a10g"}),
    "vllm-weights-oom": (WEIGHTS_OOM, {}),
    "vllm-23278-gpt-oss": ((DATA / "vllm-23278-negative-kv-memory.log").read_text(),
                           {"gpu": "h100-sxm", "model": "gpt-oss-120b"}),
}  # fmt: skip


@pytest.fixture(scope="module")
def diagnosed():
    return {name: diagnose_text(text, **kw) for name, (text, kw) in SCENARIOS.items()}


def test_each_scenario_gets_a_fix(diagnosed):
    for name, d in diagnosed.items():
        assert d.failed and d.prescriptions, (name, d.notes)
        ranks = [p.rank for p in d.prescriptions]
        assert ranks == sorted(ranks), name  # least given up first


def test_every_prescription_starts_by_kvplan_capacity(cli, diagnosed):
    checked = 0
    for name, d in diagnosed.items():
        for p in d.prescriptions:
            assert p.check[:2] == ["kvplan", "capacity"]
            r = cli(*p.check[1:], "--format", "json")
            assert r.exit_code == 0, (name, p.check_command, r.output)
            answer = json.loads(r.stdout)
            assert answer["fits"], (name, p.check_command)
            assert answer["max_concurrent_sequences_per_replica"] >= p.sequences, (name, p.check_command)
            checked += 1
    assert checked >= 20


def test_prescription_kinds(diagnosed):
    changes = {name: [p.change for p in d.prescriptions] for name, d in diagnosed.items()}
    assert any(c.startswith("--gpu-memory-utilization") for c in changes["vllm-17431"])
    assert any(c == "KV cache in fp8" for c in changes["issue-no-gpu"])
    assert any(c.startswith("tensor parallel 2") for c in changes["vllm-l4"])
    assert any(c.startswith("GPU ") for c in changes["vllm-l4"])
    assert changes["vllm-596-tp"][0].startswith("tensor parallel 2 (divides the 40 heads)")
    # the startup refusal forces the fraction down to what was free (19.77 / 22.05 -> 0.89) first
    assert all(c.startswith("--gpu-memory-utilization 0.89 (the free memory at startup)")
               for c in changes["vllm-175666-free"])  # fmt: skip
    assert any("--mem-fraction-static" in c for c in changes["sglang-70b"])
    assert any("q8_0" in c for c in changes["llamacpp-q8"])
    assert any(c.startswith("context") for c in changes["trtllm-7b"])
    assert any("room for CUDA graphs" in c for c in changes["vllm-15598-graphs"])
    assert "fp8 weights" in changes["vllm-weights-oom"]


def test_launch_lines_are_complete(diagnosed):
    d = diagnosed["vllm-l4"]
    first = d.prescriptions[0].launch_command
    assert first.startswith("vllm serve meta-llama/Llama-3.1-8B-Instruct --max-model-len ")
    assert "--gpu-memory-utilization" in first and "--kv-cache-dtype" in first
    assert diagnosed["llamacpp-q8"].prescriptions[0].launch_command.startswith("llama-server -m ")
    assert diagnosed["trtllm-7b"].prescriptions[0].launch_command.startswith("trtllm-serve ")


# ---- the command -------------------------------------------------------------------------------------


def test_cli_reads_stdin_and_prints_the_fix(cli):
    from typer.testing import CliRunner

    from kvplan.cli import app

    r = CliRunner().invoke(app, ["check-log", "-", "--gpu", "l4"], input=L4_LOG)
    assert r.exit_code == 0, r.output
    assert (
        "FAILED START: vllm refused to start" in r.stdout
        and "GPU l4 (total memory in the log: 22.04 GiB total)" in r.stdout
    )
    assert "engine said: ValueError: To serve at least one request" in r.stdout
    assert "launch: vllm serve meta-llama/Llama-3.1-8B-Instruct" in r.stdout
    assert "check:  kvplan capacity llama-3.1-8b --gpu l4" in r.stdout


def test_cli_json_carries_diagnosis_and_prescriptions(cli, tmp_path):
    path = tmp_path / "failed.log"
    path.write_text(ISSUE_LOG)
    r = cli("check-log", str(path), "--format", "json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    diag = data["diagnosis"]
    assert diag["failed"] and diag["failure"]["kind"] == "kv_short"
    assert diag["failure"]["figures"]["estimated_len"] == 74688
    assert diag["gpu"]["how"] == "not identified"
    p = diag["prescriptions"][0]
    assert {"rank", "change", "gives_up", "launch", "check", "flags", "max_context"} <= set(p)


def test_cli_json_of_a_good_log_says_not_failed(cli, tmp_path):
    from tests.test_logcheck import VLLM_15

    path = tmp_path / "ok.log"
    path.write_text(VLLM_15)
    data = json.loads(cli("check-log", str(path), "--format", "json").stdout)
    assert data["diagnosis"]["failed"] is False and data["given"]["tokens"] > 0


def test_readme_failed_start_examples_are_what_the_command_prints():
    """The README's check-log console blocks on failed starts, run as written (``< file`` is stdin)."""
    import re
    import shlex

    from typer.testing import CliRunner

    from kvplan.cli import app

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```console\n\$ kvplan (check-log [^\n]*)\n(.*?)```", readme, re.S)
    failed = [(cmd, out) for cmd, out in blocks if "FAILED START" in out]
    assert len(failed) == 2
    for cmd, expected in failed:
        args = shlex.split(cmd)
        stdin = None
        if "<" in args:
            i = args.index("<")
            stdin = (root / args[i + 1]).read_text()
            args = args[:i] + args[i + 2 :]
        args = [str(root / a) if a.startswith("examples/") else a for a in args]
        r = CliRunner().invoke(app, args, input=stdin)
        assert r.exit_code == 0, r.output
        assert r.stdout.replace(str(root) + "/", "") == expected, cmd


def test_started_log_says_where_its_gpu_came_from():
    from kvplan.logcheck import check_text
    from tests.test_logcheck import VLLM_15

    r = check_text(VLLM_15)
    assert r.gpu == "h100-sxm" and r.gpu_source == "total memory in the log (79.19 GiB total)"
    # the log's 79.19 GiB total comes before --gpu, and the note says so
    r = check_text(VLLM_15, gpu="a100-80gb")
    assert r.gpu == "h100-sxm" and any("--gpu a100-80gb differs" in n for n in r.notes)
    r = check_text(VLLM_15.replace("Free memory on device (78.68/79.19 GiB)", "Free memory"), gpu="a100-80gb")
    assert r.gpu == "a100-80gb" and r.gpu_source == "--gpu"

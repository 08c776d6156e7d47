"""`kvplan check-log`: parsing real startup logs and comparing the engine's figures with kvplan's."""

import json

from kvplan.logcheck import check_text, find_spec, guess_gpu, parse_log
from kvplan.units import GIB

# engine_logs.json vllm-15 (vLLM 0.19, Llama-3.1-8B-Instruct, H100), abridged to the lines kvplan reads.
VLLM_15 = """\
[entrypoints/utils.py:233] non-default args: {'model_tag': 'meta-llama/Llama-3.1-8B-Instruct', 'model': \
'meta-llama/Llama-3.1-8B-Instruct', 'max_model_len': 16384, 'gpu_memory_utilization': 0.95, \
'enable_prefix_caching': False}
[v1/worker/gpu_model_runner.py:4820] Model loading took 14.99 GiB memory and 9.803794 seconds
[v1/worker/gpu_worker.py:436] Available KV cache memory: 58.11 GiB
[v1/core/kv_cache_utils.py:1319] GPU KV cache size: 476,016 tokens
[v1/core/kv_cache_utils.py:1324] Maximum concurrency for 16,384 tokens per request: 29.05x
[v1/worker/gpu_worker.py:661] Free memory on device (78.68/79.19 GiB) on startup. Desired GPU memory utilization is \
(0.95, 75.23 GiB). Actual usage is 14.99 GiB for weight, 1.89 GiB for peak activation, 0.25 GiB for non-torch memory, \
and 0.91 GiB for CUDAGraph memory.
[v1/metrics/loggers.py:273] Engine 000: vllm cache_config_info with initialization after num_gpu_blocks is: 29751
"""

# engine_logs.json sglang-03 (SGLang main 2025-03, Llama-3.1-8B-Instruct, 80 GB Hopper).
SGLANG_03 = """\
[2025-03-25 16:37:06 TP0] Load weight end. type=LlamaForCausalLM, dtype=torch.bfloat16, \
avail mem=63.48 GB, mem usage=15.11 GB.
[2025-03-25 16:37:06 TP0] KV Cache is allocated. #tokens: 442750, K size: 27.02 GB, V size: 27.02 GB
"""

# engine_logs.json llamacpp-01 (build 6699, gpt-oss-20b, RTX 3070).
LLAMACPP_01 = """\
llama_context: n_ctx         = 131072
llama_context: n_ubatch      = 512
llama_kv_cache_iswa: creating non-SWA KV cache, size = 131072 cells
llama_kv_cache:      CUDA0 KV buffer size =  3072.00 MiB
llama_kv_cache: size = 3072.00 MiB (131072 cells,  12 layers,  1/1 seqs), K (f16): 1536.00 MiB, V (f16): 1536.00 MiB
llama_kv_cache_iswa: creating     SWA KV cache, size = 768 cells
llama_kv_cache:      CUDA0 KV buffer size =    18.00 MiB
llama_kv_cache: size =   18.00 MiB (   768 cells,  12 layers,  1/1 seqs), K (f16):    9.00 MiB, V (f16):    9.00 MiB
"""


def test_parse_vllm_v1():
    f = parse_log(VLLM_15)
    assert f.engine == "vllm" and f.model == "meta-llama/Llama-3.1-8B-Instruct"
    assert f.flags["max_model_len"] == 16384 and f.flags["gpu_memory_utilization"] == 0.95
    assert f.figures["total"] == 79.19 and f.figures["available_kv"] == 58.11
    assert f.figures["blocks"] == 29751 and f.figures["tokens"] == 476016 and f.figures["concurrency"] == 29.05
    assert (f.figures["activation"], f.figures["non_torch"], f.figures["cuda_graph"]) == (1.89, 0.25, 0.91)


def test_parse_vllm_v0_breakdown_line():
    text = (
        "worker.py:238] model weights take 19.86GiB; non_torch_memory takes 0.16GiB; PyTorch activation peak "
        "memory takes 36.63GiB; the rest of the memory reserved for KV Cache is 14.65GiB.\n"
        "executor_base.py:95] # CUDA blocks: 6001, # CPU blocks: 1638"
    )
    f = parse_log(text, "vllm")
    assert f.figures["weights"] == 19.86 and f.figures["available_kv"] == 14.65 and f.figures["blocks"] == 6001


def test_model_and_gpu_are_recognised():
    assert find_spec("meta-llama/Llama-3.1-8B-Instruct").name == "llama-3.1-8b"
    assert find_spec("google/gemma-2-9b-it").name == "gemma-2-9b"
    assert find_spec("bartowski/Meta-Llama-3-8B-Instruct-GGUF:Q4_K_M").name == "llama-3-8b"
    assert find_spec("someone/unknown-model") is None
    assert guess_gpu(int(79.19 * GIB)).name == "h100-sxm"
    assert guess_gpu(int(5 * GIB)) is None


def test_vllm_check_matches_the_engine_given_its_kv_memory():
    r = check_text(VLLM_15)
    assert r.model == "llama-3.1-8b" and r.gpu == "h100-sxm"
    rows = {row["term"]: row for row in r.rows}
    # 58.11 GiB // 2 MiB = 29,752 blocks (the log's 58.11 is rounded; the engine had 29,751)
    assert abs(rows["KV blocks from logged KV memory"]["predicted_value"] - 29751) <= 2
    assert rows["available KV memory"]["predicted_value"] == r.predicted["available_kv_bytes"] / GIB
    assert abs(r.predicted["available_kv_bytes"] / GIB - 58.11) < 0.1


def test_sglang_check_reproduces_token_count():
    r = check_text(SGLANG_03, engine="sglang", model="llama-3.1-8b")
    rows = {row["term"]: row for row in r.rows}
    got = rows["KV tokens, mem_fraction_static 0.88 (0.4.x TP default)"]["predicted_value"]
    # (63.48 - 78.59 x 0.12) GiB / 131,072 B = 442,771 (the log's GB figures are rounded)
    assert abs(got - 442750) < 100
    # SGLang 0.5.23's rule on the same free memory (80,476 MiB): 13,440 + 58 prefill-graph sizes x 8 MiB reserved ->
    # 0.827; (63.48 - 78.59 x 0.173) GiB / 131,072 B = 408,649 (a 0.5.23 run would hold that many, not this 2025 log)
    new = rows["KV tokens, mem_fraction_static 0.827 (0.5.23 tier heuristic and graph reserves)"]
    assert new["predicted_value"] == 408_649


def test_llamacpp_check_is_exact():
    r = check_text(LLAMACPP_01, model="gpt-oss-20b")
    assert r.engine == "llamacpp"
    for row in r.rows:
        assert row["predicted_value"] == row["logged_value"], row


def test_cli_check_log(cli, tmp_path):
    path = tmp_path / "vllm.log"
    path.write_text(VLLM_15)
    r = cli("check-log", str(path))
    assert r.exit_code == 0, r.output
    assert "available KV memory" in r.output and "58.11 GiB" in r.output
    j = cli("check-log", str(path), "--format", "json")
    d = json.loads(j.output[j.output.index("{") :])
    assert d["engine"] == "vllm" and d["given"]["tokens"] > 0


def test_cli_check_log_bad_input(cli, tmp_path):
    r = cli("check-log", str(tmp_path / "missing.log"))
    assert r.exit_code == 2 and "cannot read" in r.output
    junk = tmp_path / "junk.log"
    junk.write_text("hello world\n")
    r = cli("check-log", str(junk))
    assert r.exit_code == 2 and "cannot tell which engine" in r.output
    r = cli("check-log", str(junk), "--engine", "ollama")
    assert r.exit_code == 2 and "unknown log engine 'ollama'" in r.output


def test_engine_validation_script_on_the_reference_logs(tmp_path, monkeypatch):
    """scripts/engine_validation.py runs over shared/reference/engine_logs.json and writes its section."""
    import importlib.util
    import sys
    from pathlib import Path

    import pytest

    root = Path(__file__).resolve().parents[1]
    logs = root.parent / "shared" / "reference" / "engine_logs.json"
    if not logs.is_file():
        pytest.skip(f"{logs} not present")
    spec = importlib.util.spec_from_file_location("engine_validation", root / "scripts" / "engine_validation.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "engine_validation", mod)  # dataclasses look their module up
    spec.loader.exec_module(mod)
    cases = mod.run(json.loads(logs.read_text()))
    ins = [abs(c.error_pct) for c in cases if c.id in mod.CALIBRATION]
    assert len(ins) == 7 and max(ins) < 2.0
    # every llama.cpp log with a bundled spec is reproduced exactly
    assert all(c.given_ok for c in cases if c.engine == "llamacpp" and c.spec)
    out = tmp_path / "validation.md"
    out.write_text("# Validation\n\n## GPU profile\n\nkept\n")
    mod.write_section(out, mod.markdown(cases))
    text = out.read_text()
    assert "## Engine logs" in text and "## GPU profile\n\nkept" in text
    # the SGLang logs (2025) are scored with sglang@0.5: sglang-05 +5.1 % (the fraction its two runs imply, 0.7514, is
    # that rule's 0.751), the newest rules' figure only in its note
    sg05 = next(c for c in cases if c.id == "sglang-05")
    assert mod.SGLANG_LOG_RULES == "sglang@0.5" and round(sg05.error_pct, 2) == 5.11
    assert "newest SGLang rules (0.742" in sg05.note
    # DP attention on the launch line, either spelling (0.5.23's --attn-dp-size)
    assert mod.dp_attention_ranks("--tp 8 --dp 8 --enable-dp-attention") == 8
    assert mod.dp_attention_ranks("--tp 8 --attn-dp-size 4") == 4 and mod.dp_attention_ranks("--tp 8 --dp 2") == 1

"""Launch command lines for a capacity answer, in each engine's own flags.

Flag names are the engines' documented ones: ``vllm serve`` (vllm/engine/arg_utils.py),
``python -m sglang.launch_server`` (python/sglang/srt/server_args.py), ``trtllm-serve``
(tensorrt_llm/commands/serve.py) and ``llama-server`` (llama.cpp common/arg.cpp).
"""

from __future__ import annotations

import shlex
from typing import Any

from kvplan.capacity import CapacityResult

# Checkpoint names for the launch line; the spec's HF source when it names a repo.
_HF_PREFIX = "https://huggingface.co/"


def model_ref(source: str, name: str) -> str:
    """The Hugging Face repo id a spec's ``source`` points at, else the spec name."""
    if source.startswith(_HF_PREFIX):
        parts = source[len(_HF_PREFIX) :].split("/")
        if len(parts) >= 2:
            return f"{parts[0]}/{parts[1]}"
    return name


def launch_args(r: CapacityResult, *, model: str, sequences: int | None = None) -> list[str]:
    """argv for serving ``r``'s configuration with its context and concurrency."""
    seqs = max(1, sequences if sequences is not None else r.max_concurrent_sequences_per_replica)
    build = {
        "vllm": _vllm,
        "sglang": _sglang,
        "trtllm": _trtllm,
        "llamacpp": _llamacpp,
        "transformers": _transformers,
        "ideal": _vllm,
    }[r.engine]
    return build(r, model, seqs)


def launch_command(r: CapacityResult, *, model: str, sequences: int | None = None) -> str:
    return shlex.join(launch_args(r, model=model, sequences=sequences))


def _vllm(r: CapacityResult, model: str, seqs: int) -> list[str]:
    util = r.settings.get("gpu_memory_utilization", 0.9)
    args = ["vllm", "serve", model, "--max-model-len", str(r.context), "--max-num-seqs", str(seqs)]
    if r.kv_cache_memory_given:
        args += ["--kv-cache-memory", str(r.available_kv_bytes)]
    else:
        args += ["--gpu-memory-utilization", f"{util:g}"]
    args += ["--kv-cache-dtype", _kv_flag(r, "vllm")]
    args += _quantization_flag(r)
    if r.tp > 1:
        args += ["-tp", str(r.tp)]
    if r.pp > 1:
        args += ["-pp", str(r.pp)]
    if r.replicas > 1:
        args += ["-dp", str(r.replicas)]
    if r.block_tokens != 16:
        args += ["--block-size", str(r.block_tokens)]
    return args


def _sglang(r: CapacityResult, model: str, seqs: int) -> list[str]:
    frac = r.settings.get("mem_fraction_static")
    args = ["python", "-m", "sglang.launch_server", "--model-path", model, "--context-length", str(r.context)]
    if frac is not None:
        args += ["--mem-fraction-static", f"{frac:g}"]
    args += ["--max-running-requests", str(seqs), "--kv-cache-dtype", _kv_flag(r, "sglang")]
    args += _quantization_flag(r)
    if r.settings.get("swa_full_tokens_ratio") is not None:
        args += ["--swa-full-tokens-ratio", f"{r.settings['swa_full_tokens_ratio']:g}"]
    if r.tp > 1:
        args += ["--tp", str(r.tp)]
    if r.pp > 1:
        args += ["--pp-size", str(r.pp)]
    if r.replicas > 1:
        args += ["--dp", str(r.replicas)]
    return args


def _trtllm(r: CapacityResult, model: str, seqs: int) -> list[str]:
    frac = r.settings.get("free_gpu_memory_fraction", 0.9)
    args = ["trtllm-serve", model, "--max_seq_len", str(r.context), "--max_batch_size", str(seqs)]
    args += ["--kv_cache_free_gpu_memory_fraction", f"{frac:g}"]
    if r.tp > 1:
        args += ["--tp_size", str(r.tp)]
    if r.pp > 1:
        args += ["--pp_size", str(r.pp)]
    return args


def _llamacpp(r: CapacityResult, model: str, seqs: int) -> list[str]:
    kv = _kv_flag(r, "llamacpp")
    # llama-server -c is the total cell count; -np slots split it evenly (non-unified cache).
    return [
        "llama-server",
        "-m",
        model.split("/")[-1] + ".gguf",  # the GGUF file the user converted or downloaded
        "-c",
        str(seqs * r.context),
        "-np",
        str(seqs),
        "-ctk",
        kv,
        "-ctv",
        kv,
    ]


def _transformers(r: CapacityResult, model: str, seqs: int) -> list[str]:
    return ["python", "-c", f"# transformers: model.generate(..., max_length={r.context}) with batch size {seqs}"]


def _quantization_flag(r: CapacityResult) -> list[str]:
    """fp8 weights from a 16-bit checkpoint: both vLLM and SGLang quantize online with
    ``--quantization fp8`` (vLLM docs "FP8 W8A8", dynamic per-tensor scales; SGLang server_args)."""
    return ["--quantization", "fp8"] if r.weights_dtype == "fp8" and not r.weights_shipped else []


def launch_notes(r: CapacityResult) -> list[str]:
    """What the command line alone cannot say: weights that need a pre-quantized checkpoint."""
    if r.weights_shipped:
        return []  # the checkpoint's own format: the engine reads its quantization_config
    if r.weights_dtype in ("int4", "int8"):
        return [
            f"{r.weights_dtype} weights need a pre-quantized checkpoint (e.g. AWQ/GPTQ for int4, W8A8 for int8): "
            "pass that repository instead of the 16-bit one"
        ]
    if r.weights_dtype == "mxfp4":
        return ["mxfp4 weights: use a checkpoint released in MXFP4 (e.g. gpt-oss); there is no online conversion"]
    return []


def _kv_flag(r: CapacityResult, engine: str) -> str:
    from kvplan.engines import ENGINES

    return ENGINES[engine].kv_dtype_flags.get(r.kv_dtype, r.kv_dtype)


def plan_json(r: CapacityResult, *, model: str) -> dict[str, Any]:
    """The whole answer plus its launch line, for scripts."""
    out = r.to_dict()
    out["launch"] = launch_args(r, model=model)
    out["launch_command"] = launch_command(r, model=model)
    out["launch_notes"] = launch_notes(r)
    return out

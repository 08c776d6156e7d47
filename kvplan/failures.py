"""What each engine prints when it refuses to start, read from the engines' source.

One :class:`Pattern` per refusal: the regular expression (named groups are the figures the
message carries), the engine file, function and version that raise it, the startup phase it
belongs to and a ``kind`` the engine-neutral diagnosis (:mod:`kvplan.diagnose`) knows how to
explain and fix. Where a message changed between versions, each wording is a pattern of its own.

Figures are normalised by :func:`figures`: ``*_gib`` groups become bytes (``x 2^30``), ``*_mib``
likewise; ``tried`` / ``free`` come with a ``*_unit`` group (torch prints MiB or GiB).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kvplan.units import GIB, MIB

# Kinds (engine-neutral): what ran out and when.
KV_SHORT = "kv_short"  # one request of the configured length does not fit the KV pool
NO_KV_MEMORY = "no_kv_memory"  # nothing left for the KV cache after weights and activations
STARTUP_FREE = "startup_free"  # less free memory at start than the fraction asks for
OOM = "cuda_oom"  # an allocation failed (phase says when: weights, profile run, CUDA graphs)
TP_HEADS = "tp_heads"  # the tensor-parallel size does not divide the attention heads
KV_ALLOC = "kv_alloc"  # the KV buffer itself could not be allocated (llama.cpp)
COMPUTE_ALLOC = "compute_alloc"  # the compute (activation) buffer could not be allocated
WEIGHTS_ALLOC = "weights_alloc"  # the weights could not be allocated
CTX_OVER_TRAIN = "ctx_over_train"  # a warning: the context is longer than the model was trained on
UNKNOWN = "unknown"

FATAL = frozenset({KV_SHORT, NO_KV_MEMORY, STARTUP_FREE, OOM, TP_HEADS, KV_ALLOC, COMPUTE_ALLOC, WEIGHTS_ALLOC})


@dataclass(frozen=True)
class Pattern:
    kind: str
    regex: str
    source: str  # engine file, function, version
    phase: str | None = None  # None: find it from the lines before the message


_N = r"-?[\d,]*\.?\d+"

# torch's caching allocator (c10/cuda/CUDACachingAllocator.cpp, torch >= 2.1 wording), raised in
# any PyTorch engine (vLLM, SGLang, TensorRT-LLM's PyTorch backend).
TORCH_OOM = Pattern(
    OOM,
    rf"OutOfMemoryError: CUDA out of memory\. Tried to allocate (?P<tried>{_N}) (?P<tried_unit>[KMG]iB)\. "
    rf"GPU (?P<device_index>\d+) has a total capacity of (?P<total_gib>{_N}) GiB of which "
    rf"(?P<free>{_N}) (?P<free_unit>[KMG]iB) is free",
    "torch c10/cuda/CUDACachingAllocator.cpp (torch >= 2.1)",
)
# cudaGraph capture_end / cudaMalloc inside a kernel: no sizes in the message.
CUDA_ERROR_OOM = Pattern(OOM, r"CUDA error: out of memory", "CUDA runtime (torch.cuda.graphs capture_end, kernels)")

VLLM: tuple[Pattern, ...] = (
    # vllm/v1/core/kv_cache_utils.py _check_enough_kv_cache_memory @001cabc (0.19); the estimate
    # clause arrived in 0.8.5 (vllm#16118); "models's" is the engine's own spelling, later "model's".
    Pattern(
        KV_SHORT,
        rf"To serve at least one request with the models?'s?'? max seq len \((?P<max_len>\d+)\),? \(?"
        rf"(?P<needed_gib>{_N}) GiB KV cache is needed, which is larger than the available KV cache memory "
        rf"\((?P<available_gib>{_N}) GiB\)\.?(?: (?:Based on the available memory, the e|E)stimated maximum "
        rf"model length is (?P<estimated_len>\d+))?",
        "vllm/v1/core/kv_cache_utils.py _check_enough_kv_cache_memory (V1, 0.8-0.19)",
        "KV cache sizing",
    ),
    # vllm/worker/worker.py raise_if_cache_size_invalid (V0 engine, 0.2.7-0.10).
    Pattern(
        KV_SHORT,
        r"The model's max seq len \((?P<max_len>\d+)\) is larger than the maximum number of tokens that can be "
        r"stored in KV cache \((?P<kv_tokens>\d+)\)",
        "vllm/worker/worker.py raise_if_cache_size_invalid (V0, 0.2.7-0.10)",
        "KV cache sizing",
    ),
    # Same two functions, when available memory <= 0 (V1) or num_gpu_blocks <= 0 (V0).
    Pattern(
        NO_KV_MEMORY,
        r"No available memory for the cache blocks",
        "vllm/v1/core/kv_cache_utils.py _check_enough_kv_cache_memory; V0 worker.py raise_if_cache_size_invalid",
        "KV cache sizing",
    ),
    # vllm/v1/worker/gpu_worker.py determine_available_memory logs the budget; a negative one is
    # what _check_enough_kv_cache_memory then refuses (logs cut before the ValueError show only this).
    Pattern(
        NO_KV_MEMORY,
        rf"Available KV cache memory: (?P<available_gib>-{_N}) ?GiB",
        "vllm/v1/worker/gpu_worker.py determine_available_memory (V1, 0.8-0.19), refused in kv_cache_utils.py",
        "KV cache sizing",
    ),
    # vllm/v1/worker/gpu_worker.py init_device (0.9+; the "cuda:N" device tag in later builds).
    Pattern(
        STARTUP_FREE,
        rf"Free memory on device(?: (?P<device>\S+))? \((?P<free_gib>{_N})/(?P<total_gib>{_N}) GiB\) on startup "
        rf"is less than desired GPU memory utilization \((?P<fraction>{_N}), (?P<requested_gib>{_N}) GiB\)",
        "vllm/v1/worker/gpu_worker.py Worker.init_device (0.9-0.19)",
        "startup",
    ),
    # vllm/config/model.py ModelConfig.verify_with_parallel_config (vllm/config.py before 0.10).
    Pattern(
        TP_HEADS,
        r"Total number of attention heads \((?P<heads>\d+)\) must be divisible by tensor parallel size \((?P<tp>\d+)\)",
        "vllm/config/model.py ModelConfig.verify_with_parallel_config (0.2-0.19)",
        "configuration",
    ),
    TORCH_OOM,
    CUDA_ERROR_OOM,
)

SGLANG: tuple[Pattern, ...] = (
    # python/sglang/srt/model_executor/model_runner.py init_memory_pool / profile_max_num_token
    # (0.1-0.4: max_total_num_tokens <= 0); mem_cache/pool_configurator.py MemoryPoolConfig
    # __post_init__ (main 2026) appends the current fraction.
    Pattern(
        NO_KV_MEMORY,
        rf"Not enough memory\. Please try to increase --mem-fraction-static\.?"
        rf"(?: Current value: mem_fraction_static=(?P<fraction>{_N}))?",
        "python/sglang/srt/model_executor/model_runner.py init_memory_pool (0.1-0.5); "
        "mem_cache/pool_configurator.py MemoryPoolConfig.__post_init__ (main 2026)",
        "KV cache sizing",
    ),
    # python/sglang/srt/model_executor/model_runner_kv_cache_mixin.py _profile_available_bytes
    # (SGLang main, mid 2026: sglang#28683 counts draft weights against the fraction).
    Pattern(
        NO_KV_MEMORY,
        rf"Loaded weights leave no GPU memory for the KV cache under "
        rf"--mem-fraction-static=(?P<fraction>{_N}?)\.?(?= |$)",
        "python/sglang/srt/model_executor/model_runner_kv_cache_mixin.py _profile_available_bytes (main 2026)",
        "KV cache sizing",
    ),
    TORCH_OOM,
    CUDA_ERROR_OOM,
)

LLAMACPP: tuple[Pattern, ...] = (
    # src/llama-kv-cache.cpp llama_kv_cache::llama_kv_cache throws it (b5xxx+); llama_kv_cache_init
    # in src/llama.cpp before the split. The size comes from ggml-cuda's alloc_buffer line before it.
    Pattern(
        KV_ALLOC,
        r"failed to allocate buffer for kv cache|llama_kv_cache_init\(\) failed",
        "src/llama-kv-cache.cpp llama_kv_cache constructor (b5xxx-b8198); src/llama.cpp llama_kv_cache_init (older)",
        "KV cache allocation",
    ),
    # src/llama-context.cpp graph_reserve / llama_new_context_with_model (older): compute buffers.
    Pattern(
        COMPUTE_ALLOC,
        r"failed to allocate compute (?:pp )?buffers",
        "src/llama-context.cpp llama_context graph_reserve (b5xxx+); llama_new_context_with_model (older)",
        "compute buffer allocation",
    ),
    # src/llama-model.cpp load_tensors: "unable to allocate CUDA0 buffer".
    Pattern(
        WEIGHTS_ALLOC,
        r"unable to allocate (?P<buffer>\S+) buffer",
        "src/llama-model.cpp llama_model::load_tensors (b4xxx-b8198)",
        "weights load",
    ),
    # src/llama-context.cpp llama_context constructor; the name was n_ctx_pre_seq, then
    # n_ctx_per_seq, then n_ctx_seq across builds.
    Pattern(
        CTX_OVER_TRAIN,
        r"n_ctx_(?:seq|per_seq|pre_seq) \((?P<n_ctx_seq>\d+)\) > n_ctx_train \((?P<n_ctx_train>\d+)\) -- "
        r"possible training context overflow",
        "src/llama-context.cpp llama_context::llama_context (LLAMA_LOG_WARN)",
        "context setup",
    ),
)

TRTLLM: tuple[Pattern, ...] = (
    # cpp/tensorrt_llm/batch_manager/kvCacheManager.cpp KVCacheManager constructor, TLLM_CHECK_WITH_INFO:
    # numbers in the message from ~0.8; the 0.5-0.7 wording has none.
    Pattern(
        KV_SHORT,
        r"maxTokensInPagedKvCache \((?P<kv_tokens>\d+)\) must be large enough to process at least 1 sequence "
        r"to completion \(i\.e\. must be larger than beam_width \((?P<beam_width>\d+)\) \* tokensPerBlock "
        r"\((?P<tokens_per_block>\d+)\) \* maxBlocksPerSeq \((?P<blocks_per_seq>\d+)\)\)",
        "cpp/tensorrt_llm/batch_manager/kvCacheManager.cpp KVCacheManager::KVCacheManager (0.8+)",
        "KV cache sizing",
    ),
    Pattern(
        KV_SHORT,
        r"maxTokensInPagedKvCache must be large enough to process at least 1 sequence to completion",
        "cpp/tensorrt_llm/batch_manager/kvCacheManager.cpp KVCacheManager::KVCacheManager (0.5-0.7)",
        "KV cache sizing",
    ),
    TORCH_OOM,
    CUDA_ERROR_OOM,
)

PATTERNS: dict[str, tuple[Pattern, ...]] = {"vllm": VLLM, "sglang": SGLANG, "llamacpp": LLAMACPP, "trtllm": TRTLLM}

# The lines that say which startup phase was running: the last one before the failure wins.
PHASE_MARKERS: tuple[tuple[str, str], ...] = (
    (
        "weights load",
        r"load_model|Loading model weights|Loading weights|Loading safetensors|load_tensors|"
        r"Load weight begin",
    ),  # fmt: skip
    ("profile run", r"profile_run|_dummy_run|determine_available_memory|Memory profiling|_dummy_sampler_run"),
    (
        "CUDA-graph capture",
        r"[Cc]apturing (?:CUDA graph|cudagraph|the model for CUDA graph)|capture_model|"
        r"Graph capturing|cuda_graph_runner|capture_end|CUDA graph shapes",
    ),  # fmt: skip
)


@dataclass(frozen=True)
class Match:
    pattern: Pattern
    start: int
    line: str
    groups: dict[str, str]


def flatten(text: str) -> str:
    """The log with its line breaks inside messages undone (users' pastes wrap long lines)."""
    return re.sub(r"[ \t]*\n[ \t]*", " ", text)


def find_all(text: str, engine: str) -> list[Match]:
    """Every refusal of ``engine``'s known kinds in ``text``, in log order.

    Pasted logs wrap long lines at a space or inside a word (a terminal's width); a message is
    looked for in the log with its breaks read as spaces, then as nothing.
    """
    found: list[Match] = []
    for flat in (flatten(text), re.sub(r"\n", "", text)):
        for pattern in PATTERNS.get(engine, ()):
            for m in re.finditer(pattern.regex, flat):
                groups = {k: v for k, v in m.groupdict().items() if v is not None}
                found.append(Match(pattern, m.start(), _line_at(flat, m), groups))
        if found:
            break
    return sorted(found, key=lambda x: x.start)


def _line_at(flat: str, m: re.Match) -> str:
    """The quoted message: from the exception name (or the match) to the end of its sentence run."""
    head = flat.rfind(" ", 0, max(0, m.start() - 60))
    start = m.start()
    for token in ("ValueError:", "RuntimeError:", "OutOfMemoryError:", "[TensorRT-LLM][ERROR]", "AssertionError:"):
        i = flat.rfind(token, max(0, head), m.start() + 1)
        if i >= 0:
            start = min(start, i)
    return flat[start : m.end()].strip()


def figures(groups: dict[str, str]) -> dict[str, float]:
    """Named groups as numbers; sizes in bytes."""
    out: dict[str, float] = {}
    units = {"KiB": 1024, "MiB": MIB, "GiB": GIB}
    for key, raw in groups.items():
        if key.endswith("_unit") or key in ("device", "buffer"):
            continue
        value = float(raw.replace(",", ""))
        if key.endswith("_gib"):
            out[key.removesuffix("_gib") + "_bytes"] = value * GIB
        elif key.endswith("_mib"):
            out[key.removesuffix("_mib") + "_bytes"] = value * MIB
        elif key + "_unit" in groups:
            out[key + "_bytes"] = value * units[groups[key + "_unit"]]
        else:
            out[key] = value
    return out


def phase_before(text: str, position: int) -> str | None:
    """The latest startup phase (in startup order) with a marker before ``position``.

    Startup order, not line order: multi-worker logs (Ray, TP ranks) interleave lines, and a
    worker's late "profiling" line may follow another's "capturing" line.
    """
    flat = flatten(text)[:position]
    best = None
    for phase, rx in PHASE_MARKERS:  # listed in startup order
        if re.search(rx, flat):
            best = phase
    return best


_ERROR_LINE = re.compile(
    r"(Error|Exception|error:|ERROR|FAILED|[Ff]ailed|fatal|Aborted|core dumped|exiting due to|terminate called)"
)
_TRACE_NOISE = re.compile(r"^\s*(File \"|\^+|~+|raise |return |Traceback)")


def last_error_line(text: str) -> str | None:
    """The last line that reads as an error (a traceback's frames and carets skipped), prefix kept."""
    for line in reversed(text.splitlines()):
        body = line.strip()
        if not body or _TRACE_NOISE.search(re.sub(r"^\(.*?\)\s*", "", body)):
            continue
        if re.search(r"\] *(File \"|\^|~|Traceback|raise |return )", body):
            continue
        if _ERROR_LINE.search(body):
            return body
    return None


def looks_failed(text: str) -> bool:
    """A log that ends in a traceback or an error and never says the server came up."""
    started = re.search(
        r"Application startup complete|Uvicorn running|server is listening|The server is fired up|"
        r"main: server is listening|Started server process.*\n.*Application startup complete",
        text,
    )
    return started is None and last_error_line(text) is not None


# ---- what each engine's flags are called in its log, mapped onto the diagnosis's terms -------------

# kvplan term -> the keys logcheck.parse_log (or parse_trtllm) files the engine's flags under.
FLAG_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "vllm": {
        "context": ("max_model_len",),
        "tp": ("tensor_parallel_size",),
        "pp": ("pipeline_parallel_size",),
        "fraction": ("gpu_memory_utilization",),
        "kv_dtype": ("kv_cache_dtype",),
        "max_num_seqs": ("max_num_seqs",),
        "max_num_batched_tokens": ("max_num_batched_tokens",),
    },
    "sglang": {
        "context": ("context_length",),
        "tp": ("tp", "tp_seen"),
        "fraction": ("mem_fraction_static",),
        "max_num_seqs": ("max_running_requests",),
        "max_num_batched_tokens": ("chunked_prefill_size",),
    },
    "llamacpp": {"context": ("n_ctx_seq",), "max_num_seqs": ("n_seq_max",), "n_ubatch": ("n_ubatch",)},
    "trtllm": {
        "context": ("max_seq_len",),
        "tp": ("tp_size",),
        "fraction": ("free_gpu_memory_fraction",),
        "max_num_seqs": ("max_batch_size",),
    },
}

# Sequences the engine allocates for at start: llama.cpp gives each of its -np slots n_ctx / np
# cells up front (llama-context.cpp n_ctx_seq); the paged engines need only one request to fit.
PREALLOCATES_SEQUENCES = frozenset({"llamacpp"})
# Engines whose profile run sizes its activation peak by the sequence cap: vLLM gpu_model_runner
# profile_run spreads max_num_batched_tokens over min(max_num_seqs, tokens) dummy requests.
PROFILE_BY_SEQS = frozenset({"vllm"})
# The flag that turns CUDA graphs off: vLLM --enforce-eager (engine/arg_utils.py), SGLang
# --disable-cuda-graph (server_args.py).
EAGER_FLAG = {"vllm": "--enforce-eager", "sglang": "--disable-cuda-graph"}


def engine_of(text: str) -> str | None:
    """The engine whose own refusal (not a shared torch error) or log lines appear in ``text``."""
    if "[TensorRT-LLM]" in text or "tensorrt_llm" in text or "trtllm-serve" in text:
        return "trtllm"
    for engine, patterns in PATTERNS.items():
        own = [p for p in patterns if p not in (TORCH_OOM, CUDA_ERROR_OOM)]
        if any(re.search(p.regex, flatten(text)) for p in own):
            return engine
    for engine, markers in ENGINE_MARKERS.items():
        if any(marker in text for marker in markers):
            return engine
    return None


# Lines only one engine writes (its source files and loggers), for logs whose refusal is shared.
ENGINE_MARKERS = {
    "llamacpp": ("llama_context", "llama_kv_cache", "llama_model_load", "ggml_backend", "llama_new_context"),
    "sglang": ("sglang", "Load weight end", "mem_fraction_static"),
    "vllm": ("vllm", "gpu_model_runner", "gpu_worker", "EngineCore", "model_runner.py", "kv_cache_utils"),
}


def parse_extra_flags(text: str, engine: str) -> dict[str, float]:
    """Flags logcheck does not read: SGLang's server_args print, llama.cpp's n_ctx_seq, TRT-LLM's."""
    out: dict[str, float] = {}
    rx = {
        "vllm": {  # python -m vllm.entrypoints.openai.api_server ... (logcheck reads `vllm serve` lines)
            "gpu_memory_utilization": r"--gpu[-_]memory[-_]utilization[ =](" + _N + ")",
            "max_model_len": r"--max[-_]model[-_]len[ =](\d+)",
            "tensor_parallel_size": r"(?:--tensor[-_]parallel[-_]size|-tp)[ =](\d+)",
            "pipeline_parallel_size": r"(?:--pipeline[-_]parallel[-_]size|-pp)[ =](\d+)",
            "max_num_seqs": r"--max[-_]num[-_]seqs[ =](\d+)",
        },
        "sglang": {
            "mem_fraction_static": r"mem[-_]fraction[-_]static[= ](" + _N + ")",
            "context_length": r"--context[-_]length[ =](\d+)",
            "max_running_requests": r"--max[-_]running[-_]requests[ =](\d+)",
        },
        "llamacpp": {"n_ctx_seq": r"n_ctx_(?:seq|per_seq|pre_seq)\s*=\s*(\d+)"},
        "trtllm": {
            "max_seq_len": r"(?:--max_seq_len[ =]|max_seq_len[=:] ?|maxSequenceLen: )(\d+)",
            "max_batch_size": r"(?:--max_batch_size[ =]|max_batch_size[=:] ?|maxBatchSize: )(\d+)",
            "tp_size": r"(?:--tp_size[ =]|tensor_parallel_size[=:] ?)(\d+)",
            "free_gpu_memory_fraction": (
                r"(?:--kv_cache_free_gpu_memory_fraction[ =]|free_gpu_mem(?:ory)?_fraction[=: ] ?)(" + _N + ")"
            ),
        },
    }.get(engine, {})
    for key, pattern in rx.items():
        m = re.search(pattern, text)
        if m:
            out[key] = float(m.group(1))
    return out


def model_of(text: str) -> str | None:
    """The checkpoint a launch command in the log names (``--model``, ``--model-path``)."""
    m = re.search(r"--model(?:[-_]path)?[ =](\S+)", text)
    return m.group(1) if m else None


# llama.cpp print_info "file type = Q4_K - Medium" (src/llama-model-loader.cpp llama_model_ftype_name)
# -> kvplan's weight format names.
_GGUF_FTYPE = {"f32": "fp32", "f16": "fp16", "bf16": "bf16", "q8_0": "q8_0", "q6_k": "q6_k", "q5_k": "q5_k",
               "q4_k": "q4_k", "q4_0": "q4_0", "mxfp4": "mxfp4"}  # fmt: skip


def weights_dtype_of(text: str, engine: str) -> str | None:
    """The checkpoint's weight format when the log prints it (llama.cpp's GGUF file type)."""
    if engine != "llamacpp":
        return None
    m = re.search(r"file type\s*=\s*([A-Za-z0-9_]+)", text)
    return _GGUF_FTYPE.get(m.group(1).lower()) if m else None


def trtllm_figures(text: str) -> dict[str, float]:
    """TensorRT-LLM's own memory lines (kvCacheManager / resource_manager INFO), bytes."""
    out: dict[str, float] = {}
    m = re.search(rf"calculating max tokens in paged kv cache: total: ({_N}) GiB, available: ({_N}) GiB", text)
    if m:
        out["total"] = float(m.group(1))
        out["free_after_load"] = float(m.group(2))
    m = re.search(r"(?:Using|Max tokens in paged KV cache:) (\d+)(?: tokens in paged KV cache)?", text)
    if m:
        out["kv_tokens"] = float(m.group(1))
    return out

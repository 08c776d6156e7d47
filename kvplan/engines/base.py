"""What every engine module provides, and the pieces they share.

An :class:`Engine` answers, for one version of one serving engine: which KV dtypes it takes and
how it spells them, the cache plan it stores (:meth:`Engine.cache_plan`, from the engine-neutral
:func:`kvplan.memory.cache_plan`), how it turns one pipeline stage of that plan into allocation
units (:meth:`Engine.layout`, a :class:`Layout`), how many bytes per GPU it gives its KV cache
(:meth:`Engine.budget`), its launch line and how its startup log reads. ``capacity``, ``plan``,
``check-log`` and the launch printer only ever call these methods; they never name an engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from kvplan.errors import InvalidInput
from kvplan.hardware import GPU
from kvplan.memory import CachePlan, StagePlan, cache_plan
from kvplan.params import Sharding
from kvplan.spec import SSM_STATE_VARIANTS, LayerKind, ModelSpec, ceil_div, kept_for_spec, pipeline_stages
from kvplan.units import MAX_CONTEXT, canonical_dtype

if TYPE_CHECKING:  # types only: capacity imports the engines, never the reverse
    from kvplan.capacity import CapacityResult

# ---- engine settings (the user's flags) ---------------------------------------------------------


@dataclass(frozen=True)
class Overrides:
    """User overrides of the non-KV terms, in bytes per GPU (None: use kvplan's model)."""

    device_memory_bytes: int | None = None
    activation_bytes: int | None = None
    non_torch_bytes: int | None = None
    cuda_graph_bytes: int | None = None
    overhead_bytes: int = 0  # extra reservation the user wants, any engine


@dataclass(frozen=True)
class Settings:
    """Engine flags. ``None`` means the engine's default for this GPU."""

    gpu_memory_utilization: float | None = None  # vLLM
    mem_fraction_static: float | None = None  # SGLang
    free_gpu_memory_fraction: float | None = None  # TensorRT-LLM
    block_size: int | None = None  # vLLM block / TRT-LLM tokens_per_block / SGLang page_size
    max_num_batched_tokens: int | None = None  # vLLM; SGLang chunked_prefill_size; TRT max_num_tokens
    max_num_seqs: int | None = None
    n_ubatch: int = 512  # llama.cpp default (common/common.h n_ubatch = 512)
    kv_unified: bool = False  # llama.cpp --kv-unified
    swa_full: bool = False  # llama.cpp --swa-full; SGLang --disable-hybrid-swa-memory
    swa_full_tokens_ratio: float | None = None  # SGLang --swa-full-tokens-ratio (default 0.8)
    # TensorRT-LLM kv_cache_config.max_attention_window: one window per layer, the list repeated over the layers
    # (None: every layer keeps the whole sequence). kvplan.engines.trtllm.WindowLayout applies it.
    max_attention_window: tuple[int, ...] | None = None
    cuda_graph_estimate: bool | None = None  # vLLM: subtract the CUDA graph estimate (default on from 0.21)
    prefix_caching: bool | None = None  # vLLM --enable-prefix-caching (default on): Mamba 'align' pages
    mamba_full_memory_ratio: float | None = None  # SGLang --mamba-full-memory-ratio (default 0.9)
    # Attention data parallelism inside one TP group (SGLang --enable-dp-attention --dp N, TensorRT-LLM
    # enable_attention_dp): attention heads split over tp / N ranks, N request pools. Deployment planning
    # (DP/EP across nodes) is issue 11's; engines answer the per-rank KV cell through attention_tp.
    attention_dp: int = 1
    # MLA: every engine here stores the shared latent; "expanded" models per-head K/V (vLLM with
    # VLLM_MLA_DISABLE=1, SGLang --disable-mla, llama.cpp builds before its MLA support).
    mla: Literal["latent", "expanded"] = "latent"
    # Two-micro-batch overlap of the MoE token exchange with compute (vLLM --enable-dbo with a DeepEP all2all
    # backend, SGLang --enable-two-batch-overlap); kvplan.latency applies the engine's Overlap.two_batch_* rules.
    two_batch_overlap: bool = False
    # The DeepEP all-to-all for the MoE token exchange under DP attention + EP instead of the engine's default
    # (vLLM --all2all-backend deepep_high_throughput / deepep_low_latency, SGLang --moe-a2a-backend deepep).
    deepep: bool = False
    # CUDA-graph padding of decode steps (TensorRT-LLM cuda_graph_config enable_padding: true, with these
    # batch_sizes captured): each decode-only step runs the graph of the next captured size up (Engine.graph_rows).
    # None: padding not modelled (TensorRT-LLM's default is enable_padding false).
    cuda_graph_batch_sizes: tuple[int, ...] | None = None
    # Whether the runtime replays CUDA graphs for decode-only steps (None: the engine's default as kvplan.latency
    # prices it, graphs for decode). False: every step launches its kernels eagerly (latency.past_graph_cap), as
    # TensorRT-LLM's C++ executor runs a TensorRT engine unless ExtendedRuntimePerfKnobConfig's cudaGraphMode is set
    # (default false: cpp/include/tensorrt_llm/executor/executor.h ``bool cudaGraphMode = false``). Set by
    # published_compare for NVIDIA's MLPerf TensorRT-engine runs, whose harnesses never set that knob.
    cuda_graphs: bool | None = None
    # TensorRT-LLM attention_dp_config enable_balance: true (default false): the attention-DP ranks schedule their
    # context requests in the same iterations (Engine.aligns_dp_prefill; kvplan.serving prices every rank's prompt
    # chunk in the same steps). Set by plan --rate --attention-dp-balance (MoE models with attention DP).
    attention_dp_balance: bool = False
    # Its two iteration counts, attention_dp_config timeout_iters / batching_wait_iters in the engine's YAML (None:
    # the engine's defaults, Engine.dp_balance_iters): how long it holds prompts (kvplan.dp_balance).
    attention_dp_timeout_iters: int | None = None
    attention_dp_batching_wait_iters: int | None = None
    # TensorRT-LLM's runtime batch-size tuning (the TensorRT-engine executor's DynamicBatchConfig
    # enable_batch_size_tuning, default off; trtllm-bench throughput turns it on): each step the batch is capped at
    # the tuner's size for the KV capacity (Engine.runtime_batch_size). Read by trtllm@0.17 only.
    batch_size_tuning: bool = False
    # TensorRT-LLM's capacity scheduler policy (SchedulerConfig capacity_scheduler_policy; None: its default,
    # GUARANTEED_NO_EVICT): "max_utilization" admits a request while the blocks for its next step fit and pauses the
    # last started request when they do not, so a running sequence holds its written context, not a reservation to
    # completion (Engine.holds_to_completion). Read by the trtllm releases only.
    capacity_scheduler_policy: Literal["guaranteed_no_evict", "max_utilization"] | None = None
    # TensorRT-LLM's max_seq_len (LLM API; trtllm-bench throughput passes the dataset's longest ISL + OSL): where it is
    # below a chunked-attention layer's chunk, Llama 4 runs that layer as full attention (Trtllm.attention_spans).
    # None: the model's own limit (max_position_embeddings), the LLM API's default.
    max_seq_len: int | None = None
    # SGLang --enable-mixed-chunk (ServerArgs.enable_mixed_chunk, default False): the running decodes join each prompt
    # batch (Engine.mixes_steps); without it SGLang runs prompt batches and decode batches as separate steps.
    mixed_chunk: bool = False
    # SGLang --schedule-conservativeness (ServerArgs default 1.0): scales the reserve ratio for the running requests'
    # outputs to come (Engine.output_reserve; OutputReserve.start_ratio). None: the engine's default.
    schedule_conservativeness: float | None = None
    # Measured host (CPU) seconds per request in a serving step (not an engine flag): switches on kvplan.host's
    # host term in kvplan.serving, which is otherwise not modelled (docs/cost.md, "Host work per step").
    host_request_s: float | None = None
    # Measured host (CPU) seconds a serving step costs whatever its requests (the loop's fixed part: schedule, input
    # preparation, the launch and the sampled tokens' copy back), beside host_request_s (kvplan.host); None: none.
    host_step_s: float | None = None
    # vLLM --mamba-ssm-cache-dtype (vllm/config/cache.py CacheConfig.mamba_ssm_cache_dtype, MambaDType "auto",
    # "float32", "float16"; 0.16.0 / 0.19.0 / 0.21.0): the SSM state's dtype, over the model's own rule
    # (kvplan.engines.vllm Vllm.ssm_state_dtype). None: "auto".
    mamba_ssm_cache_dtype: str | None = None
    # vLLM --mamba-cache-dtype (CacheConfig.mamba_cache_dtype, MambaDType, default "auto": the model's dtype): the conv
    # state's dtype, and the SSM state's where --mamba-ssm-cache-dtype and the model's rule leave it "auto".
    mamba_cache_dtype: str | None = None
    # TensorRT-LLM sparse_attention_config.indexer_k_dtype (tensorrt_llm/llmapi/llm_args.py
    # DeepSeekSparseAttentionConfig, Literal "fp8", "fp4", default "fp8"; PR #13340): the DSA indexer key cache's format
    # (kvplan.engines.trtllm Trtllm.model_as_run). None: the engine's default.
    indexer_k_dtype: str | None = None
    overrides: Overrides = field(default_factory=Overrides)


# Settings field -> the kvplan flag that sets it (also the engine's own flag, spelled for kvplan).
SETTING_FLAGS = {
    "gpu_memory_utilization": "--gpu-memory-utilization",
    "mem_fraction_static": "--mem-fraction-static",
    "free_gpu_memory_fraction": "--free-gpu-memory-fraction",
    "block_size": "--block-size",
    "max_num_batched_tokens": "--max-num-batched-tokens",
    "max_num_seqs": "--max-num-seqs",
    "n_ubatch": "--ubatch",
    "kv_unified": "--kv-unified",
    "swa_full": "--swa-full",
    "swa_full_tokens_ratio": "--swa-full-tokens-ratio",
    "max_attention_window": "--max-attention-window",
    "cuda_graph_estimate": "--cuda-graph-estimate",
    "two_batch_overlap": "--two-batch-overlap",
    "deepep": "--deepep",
    "attention_dp_balance": "--attention-dp-balance",
    "attention_dp_timeout_iters": "--attention-dp-timeout-iters",
    "attention_dp_batching_wait_iters": "--attention-dp-batching-wait-iters",
    "batch_size_tuning": "--batch-size-tuning",
    "capacity_scheduler_policy": "--capacity-scheduler-policy",
    "mixed_chunk": "--enable-mixed-chunk",
    "schedule_conservativeness": "--schedule-conservativeness",
    "mamba_ssm_cache_dtype": "--mamba-ssm-cache-dtype",
    "mamba_cache_dtype": "--mamba-cache-dtype",
    "max_seq_len": "--max-seq-len",
    "indexer_k_dtype": "--indexer-k-dtype",
    "overrides.cuda_graph_bytes": "--cuda-graph",
}

# vLLM's MambaDType (vllm/config/cache.py, 0.16.0 / 0.19.0 / 0.21.0: "auto", "float32", "float16"), the values of
# --mamba-ssm-cache-dtype and --mamba-cache-dtype -> kvplan's dtype name (None: "auto"). Checked by
# Engine.check_settings for every rule set that reads the flags (vLLM from 0.16, the ideal layout).
MAMBA_SSM_FLAG = {"auto": None, "float32": "fp32", "float16": "fp16"}


def mamba_ssm_flag(value: str | None, flag: str = "--mamba-ssm-cache-dtype") -> str | None:
    """The state dtype ``flag value`` asks for (``--mamba-ssm-cache-dtype``, ``--mamba-cache-dtype``: the same
    MambaDType choices); None for "auto" (or not given)."""
    key = "auto" if value is None else str(value).strip().lower()
    if key not in MAMBA_SSM_FLAG:
        raise InvalidInput(f"invalid {flag} {value!r}; vLLM accepts {', '.join(MAMBA_SSM_FLAG)}")
    return MAMBA_SSM_FLAG[key]


def mamba_conv_flag(value: str | None) -> str | None:
    """The conv state dtype ``--mamba-cache-dtype value`` asks for; None for "auto" (the model's dtype)."""
    return mamba_ssm_flag(value, "--mamba-cache-dtype")


def _setting(settings: Settings, name: str) -> object:
    obj: object = settings
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def check_fraction(value: float | None, what: str) -> None:
    if value is not None and not (0 < value <= 1):
        raise InvalidInput(f"invalid {what} {value!r}; expected a fraction in (0, 1], e.g. 0.9")


# ---- budgets: bytes per GPU for the KV cache -----------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """Where one GPU's memory goes, in bytes. ``available_kv`` is what the engine gives its cache."""

    device_total: int
    engine_share: int  # total x utilization (vLLM), free x mem_fraction (SGLang), ...
    weights: int
    activation: int
    non_torch: int
    cuda_graph: int
    cuda_graph_in_budget: bool
    overhead: int
    available_kv: int
    rule: str
    fraction: float | None = None
    fraction_name: str | None = None


def plain_budget(*, total: int, weights: int, activation: int, context: int, overhead: int, rule: str) -> Budget:
    """Device memory minus weights, an activation peak, a context and the user's overhead."""
    avail = total - weights - activation - context - overhead
    return Budget(total, total, weights, activation, context, 0, False, overhead, avail, rule)


# ---- layouts: allocation units -------------------------------------------------------------------


def largest(ok, top: int) -> int:  # noqa: ANN001
    """Largest n in [1, top] with ok(n), assuming ok is monotone (true then false); 0 if none."""
    if top < 1 or not ok(1):
        return 0
    lo, hi = 1, top
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def paged_bytes(stage: StagePlan, length: int, *, block: int) -> int:
    """One sequence: each layer holds min(length, cap) tokens rounded up to ``block``, plus state."""
    total = 0
    for n, c in stage.groups:
        held = length if c.max_tokens is None else min(length, c.max_tokens)
        total += n * (c.bytes_per_token * ceil_div(held, block) * block + c.state_bytes)
    return total


def weighted_mean(values: list[float], weights: list[float]) -> float:
    return sum(w * v for w, v in zip(weights, values, strict=True)) / sum(weights)


@dataclass(frozen=True)
class Layout:
    """How one pipeline stage (one TP rank) turns sequences into allocation units.

    The default is a pool of ``unit_bytes`` units in which each sequence takes its tokens rounded
    up to ``block_tokens`` per layer (token slots, TRT-LLM blocks, plain bytes); engines with
    other allocators subclass it. ``reserved_units`` are held by the engine itself.
    """

    stage: StagePlan
    unit_bytes: int
    block_tokens: int
    reserved_units: int = 0

    def pool_units(self, available: int) -> int:
        return max(0, available // self.unit_bytes)

    def units_for(self, batch: int, length: int) -> int:
        return batch * paged_bytes(self.stage, length, block=self.block_tokens)

    def fits(self, available: int, *, batch: int, length: int) -> bool:
        return self.units_for(batch, length) + self.reserved_units <= self.pool_units(available)

    def max_sequences(self, available: int, length: int) -> int:
        """Most sequences of ``length`` tokens the pool holds (exact unit count)."""
        per = self.units_for(1, length)
        free = self.pool_units(available) - self.reserved_units
        return max(0, free) // per if per else MAX_CONTEXT

    def decode_sequences(self, available: int, length: int) -> int:
        """Requests of ``length`` tokens that decode at once in steady state; where the engine frees
        nothing while a request runs, the same as :meth:`max_sequences`."""
        return self.max_sequences(available, length)

    def step_units(self, tokens: int, *, chunk: int) -> int:
        """Units one request holds once ``tokens`` of its tokens are computed or scheduled, the last ``chunk`` of them
        in this step; where the engine frees nothing while a request runs, its tokens' units."""
        return self.units_for(1, tokens)

    def pool_tokens(self, available: int) -> int:
        """The pool in tokens, as the engine reports it."""
        per_token = self.stage.bytes_per_token
        if not per_token:
            return 0
        return available // per_token // self.block_tokens * self.block_tokens

    def pool_bytes(self, available: int, *, sequences: int, length: int) -> int:
        """Bytes the engine allocates for its pool."""
        return self.pool_tokens(available) * self.stage.bytes_per_token

    def binding_pool(self, available: int, tokens: int) -> tuple[int, int]:
        """``(pool tokens, tokens one sequence holds of it)`` for sequences that each reserve ``tokens``, in the pool
        that admits the fewest of them (:mod:`kvplan.serving`'s KV limit): the one pool, ``tokens`` each, unless the
        engine keeps a pool per attention window (TensorRT-LLM with ``max_attention_window``)."""
        return self.pool_tokens(available), tokens

    def reported_concurrency(self, available: int, length: int) -> float:
        """The engine's own concurrency figure at ``length``."""
        per = self.units_for(1, length)
        return self.pool_units(available) / per if per else float("inf")

    def expected_concurrency(self, available: int, lengths: list[int], weights: list[float]) -> float:
        """Sequences that fit on average: the free pool over the weighted mean cost of one sequence."""
        mean = weighted_mean([self.units_for(1, n) for n in lengths], weights)
        free = self.pool_units(available) - self.reserved_units
        return max(0, free) / mean if mean else float("inf")

    def headroom_bytes(self, available: int, *, sequences: int, length: int) -> int:
        """Pool bytes left once ``sequences`` of ``length`` tokens are held."""
        used = self.units_for(sequences, length) + self.reserved_units
        return (self.pool_units(available) - used) * self.unit_bytes

    def settings(self) -> dict[str, Any]:
        """Layout choices worth echoing in an answer (block size, pool ratios)."""
        return {}


def paged_prefix_bytes(layout: Layout, prefix: int) -> int:
    """Bytes a shared prefix holds once in a token/block pool: whole blocks of the layers that keep
    every token (sliding/chunked layers drop old tokens, recurrent state is per sequence)."""
    shared = prefix // layout.block_tokens * layout.block_tokens
    return sum(n * c.bytes_per_token * shared for n, c in layout.stage.groups if c.max_tokens is None)


@dataclass(frozen=True)
class ExactLayout(Layout):
    """No allocator: the cache takes exactly its bytes and the whole budget is the pool."""

    def pool_bytes(self, available: int, *, sequences: int, length: int) -> int:
        return available


# ---- latency calibration (kvplan.latency) ------------------------------------------------------


# The SSD scan's efficiency: benchmarks/mamba_compare.py --scan fits it (the median over the rows past the launch-bound
# floor) to vLLM's Triton SSD prefill kernels timed on one H100 at 1K-256K tokens (vllm-project/vllm PR #27299, comment
# of 2025-10-25, 'Original' column; benchmarks/data/ssd_scan_measured.json). TensorRT-LLM runs the same mamba_ssm
# Triton SSD kernels (NVIDIA/TensorRT-LLM PR #4494, "SSM kernels (based on state-spaces/mamba)"), and SGLang prices with
# vLLM's constants, so every engine takes this one figure. On Blackwell it is applied to the peak times
# blackwell_compute_eff, as every kernel here; no Blackwell timing of the scan was found to check that.
SSD_SCAN_EFF = 0.1016
# The SSD scan call's floor: the same table's two shortest rows take the same time, 1,024 tokens at 3,452,741 tokens/s
# (0.2966 ms) and 2,048 at 7,044,192 tokens/s (0.2907 ms), where FLOPs at SSD_SCAN_EFF give 0.10 and 0.19 ms: a
# per-call time no FLOP count explains (its five Triton kernels' launches and the state passing over few chunks). The
# lower of the two, as kvplan.latency prices a call as max(floor, FLOPs + launches). Measured on H100 only; taken for
# every GPU and engine that runs these Triton kernels (TensorRT-LLM's SSD is the same mamba_ssm code).
SSD_SCAN_FLOOR_S = 2.907e-04


@dataclass(frozen=True)
class DecodeAttention:
    """One engine's GQA/MHA decode attention kernel on one GPU architecture, per layer (:mod:`kvplan.latency`
    ``_gqa_decode_s``): ``floor_s + ((read)^p + (work)^p)^(1/p)``, the cache read ``held / (bandwidth x mem_eff)`` and
    the per-sequence work ``batch x KV heads on the rank x seq_kvhead_s`` overlapping as a smooth maximum of exponent
    ``overlap_p`` (1: they add; large: the slower hides the other). A KV cache of one byte an element or less (fp8,
    fp4) takes ``floor_s`` and ``seq_kvhead_s``; a 16-bit one ``floor_16bit_s`` and ``seq_kvhead_16bit_s`` (the
    engines run other kernels for it). Fitted by ``benchmarks/gqa_decode_compare.py --fit`` to aiconfigurator's
    generation-attention tables, each engine module naming the tables beside the figures."""

    floor_s: float
    floor_16bit_s: float
    mem_eff: float
    seq_kvhead_s: float
    seq_kvhead_16bit_s: float
    overlap_p: float


@dataclass(frozen=True)
class Calibration:
    """Kernel efficiencies and fixed costs of one engine's kernels, for :mod:`kvplan.latency`.

    Each engine module carries its own (``CALIBRATION`` beside its ``ENGINE``), with the engine
    version the figures describe and where they come from; ``kvplan.latency``'s module docstring
    says what each term is. ``version`` is the version of the engine's *kernels* the constants
    were fitted to, which need not be the release of its memory rules (:attr:`Engine.version`).
    """

    engine: str
    version: str
    source: str
    gemm_peak_eff: float
    gemm_half_m: float
    gemm_mem_eff: float
    eager_kernel_s: float
    graph_kernel_s: float
    moe_peak_eff: float
    moe_half_tokens: float
    moe_half_width: float
    moe_mem_eff: float
    moe_layer_s: float
    moe_ep_imbalance: float
    attn_prefill_eff: float
    attn_prefill_half_len: float
    attn_decode_mem_eff: float
    attn_layer_s: float
    attn_seq_s: float
    mla_decode_mem_eff: float
    mla_decode_flops_eff: float
    mla_prefill_eff: float
    mla_layer_s: float
    fp8_eff_scale: float
    fp8_block_eff_scale: float
    fp8_mem_eff_scale: float
    blackwell_compute_eff: float
    elementwise_mem_eff: float
    allreduce_base_s: float
    allreduce_rank_s: float
    allreduce_bw_eff: float
    # FP4 (NVFP4 W4A4) GEMMs on a GPU with FP4 tensor cores: the FP4 peak times fp4_eff_scale (grouped experts:
    # fp4_moe_eff_scale), the weight streaming at fp4_mem_eff_scale of the 16-bit GEMMs' efficiency. Fitted apart, by
    # benchmarks/fit_fp4.py to aiconfigurator's NVFP4 steps (the main grid has no FP4 case); 1.0 (neutral) where an
    # engine has no such fit.
    fp4_eff_scale: float = 1.0
    fp4_mem_eff_scale: float = 1.0
    fp4_moe_eff_scale: float = 1.0
    # NVFP4 GEMMs at decode sizes: seconds per element of K of one output tile's K loop (no split-K; kvplan.latency
    # _fp4_gemm_terms). Fitted by benchmarks/fit_fp4.py with the three above; 0 (no such roof) without a fit.
    fp4_k_s: float = 0.0
    # NVFP4 GEMMs' fixed seconds each, beyond the kernel launch and the activations' quantization kernel (the kernel's
    # prologue and epilogue: scale-factor loads, pipeline fill and drain; kvplan.latency._gemm_s). Fitted by
    # benchmarks/fit_fp4.py on the steps and aiconfigurator's NVFP4 GEMM tables together; 0 without that fit.
    fp4_gemm_s: float = 0.0
    # NVFP4 GEMMs' compute roof by shape (kvplan.latency._fp4_shape): times (1 + fp4_half_k / K) (each output tile's
    # prologue and epilogue, as many K elements' worth of its K loop) and (1 + fp4_half_n / N) (work in proportion to
    # M x K, as though the GEMM computed fp4_half_n more output columns: fitted, no kernel source found). Fitted by
    # benchmarks/fit_fp4.py with the GEMM tables; 0 (no shape term) without that fit.
    fp4_half_k: float = 0.0
    fp4_half_n: float = 0.0
    # NVFP4 grouped experts' fixed seconds per layer (fused TensorRT-LLM-Gen MoE kernels; kvplan.latency
    # _fp4_moe_layer_s), fitted by benchmarks/fit_fp4.py; None: moe_layer_s.
    fp4_moe_layer_s: float | None = None
    # FP8 prefill attention (Engine.fp8_context_attention): the softmax work per attention score that does not speed up
    # when the two attention GEMMs (Q K^T, P V) move to FP8 tensor cores, in exponentials (the special-function unit's
    # rate; kvplan.latency.fp8_attention_gain). Fitted by benchmarks/fit_fmha.py to aiconfigurator's context-attention
    # tables (FP8 rows against 16-bit ones); None: no FP8 gain modelled (no fit, or the measured rows show none).
    fmha_fp8_softmax: float | None = None
    # The MLA attention block's fixed seconds per layer at decode on Blackwell, where the engine runs another MLA
    # decode kernel there than on Hopper (vLLM: FLASHINFER_MLA against FLASH_ATTN_MLA / FLASHMLA; kvplan.latency
    # _mla_layer_s). Fitted by benchmarks/mla_compare.py --fit to aiconfigurator's B200 MLA module table; None:
    # mla_layer_s, the engine runs one kernel family on both (or no such fit).
    blackwell_mla_layer_s: float | None = None
    # Where the engine runs that Blackwell kernel by default: the models' qk_nope_head_dim values and the KV dtypes
    # (kvplan names) it takes; None: every model and dtype. Elsewhere the engine falls back to another backend, and
    # mla_layer_s applies (vLLM: FLASHINFER_MLA's supports_combination and supported_kv_cache_dtypes).
    blackwell_mla_nope_dims: tuple[int, ...] | None = None
    blackwell_mla_kv_dtypes: frozenset[str] | None = None
    # ... and the model families (ModelSpec.family) it runs that kernel for; None: every family (SGLang: trtllm_mla
    # for DeepseekV3ForCausalLM models only, flashinfer for the other MLA models).
    blackwell_mla_families: frozenset[str] | None = None
    # ... and only for dense MLA: True where the engine runs sparse (DSA indexer) models on another backend (vLLM 0.16:
    # "Blackwell => Force FlashInfer MLA (unless sparse, i.e. DSv3.2)", vllm/platforms/cuda.py
    # check_and_update_config); those take mla_layer_s.
    blackwell_mla_dense_only: bool = False
    # Model families (ModelSpec.family) whose MoE router the engine runs in float32: the gate's weight held in fp32,
    # the hidden states cast to fp32 before it (one element-wise kernel: 2 bytes read, 4 written an element) and the
    # GEMM on the CUDA cores at the catalog's ``fp32_tflops`` (PyTorch leaves TF32 off unless asked; kvplan.latency
    # _router_ctx, _moe_s). Empty: every router 16-bit, as aiconfigurator prices them.
    fp32_router_families: frozenset[str] = frozenset()
    # ... and the engine turns TF32 on for them (torch.set_float32_matmul_precision("high")): the GEMM then runs on
    # the tensor cores at half the 16-bit peak (NVIDIA's A100 / H100 / H200 datasheets: TF32 dense 156 / 494 / 494
    # TFLOPS against bf16 312 / 989 / 989), whatever the catalog's fp32_tflops.
    fp32_router_tf32: bool = False
    # The MLA attention block's fixed seconds per layer at decode on Hopper where the engine's own module was fitted
    # there (benchmarks/mla_compare.py --fit on an H200 MLA module table); None: mla_layer_s.
    hopper_mla_layer_s: float | None = None
    # GQA/MHA decode attention (every attention layer but MLA's) on Hopper and on Blackwell GPUs, in the form the
    # engines' kernel tables take (DecodeAttention); None: the older form every architecture without a fit keeps,
    # held / (bandwidth x attn_decode_mem_eff) + attn_layer_s + batch x attn_seq_s.
    # Per-tensor fp8 GEMMs (not block-scaled): the activations' dynamic quantization the engine runs before each, a
    # scale computed over the 16-bit input and the input quantized with it: ``fp8_quant_s`` fixed seconds
    # (``blackwell_fp8_quant_s`` on Blackwell) plus the 16-bit input read at ``fp8_quant_read_eff`` of the
    # bandwidth (kvplan.latency._fp8_quant_s). Fitted by benchmarks/fp8_quant_compare.py --fit to aiconfigurator's
    # quantize tables (computescale + scale_matrix), never to the step grid; 0: not priced.
    fp8_quant_s: float = 0.0
    blackwell_fp8_quant_s: float = 0.0
    fp8_quant_read_eff: float = 1.0
    # fp8 weight streaming where the activations' quantization is not priced apart, block-scaled checkpoints (a
    # per-token-group quantization before each GEMM) and grouped experts (quantized inside the MoE layer): the share
    # fitted before fp8_quant_s was, which absorbs that kernel; None: fp8_mem_eff_scale.
    fp8_absorbed_mem_eff_scale: float | None = None
    hopper_gqa_decode: DecodeAttention | None = None
    blackwell_gqa_decode: DecodeAttention | None = None
    # Decode attention of a chunked-attention layer on Hopper where the engine's GQA kernel refuses chunked attention
    # and its per-head kernel runs it (TensorRT-LLM: XQA -> masked multi-head attention, kvplan.latency _mmha_decode_s):
    # seconds per (query head x cached key) and per (query head x sequence) of that kernel; None: the layer is priced
    # as any GQA layer. Fitted by benchmarks/fit_mmha.py.
    hopper_mmha_head_token_s: float | None = None
    hopper_mmha_head_s: float = 0.0
    # NVFP4 GEMMs that read a normalised input (the QKV and gate/up projections) get it already in FP4 from the norm
    # kernel: no quantization kernel of their own (kvplan.latency _gemm_s ``normed_input``). TensorRT-LLM's TensorRT
    # engines built with ``norm_quant_fusion`` run the residual add, the RMSNorm and the NVFP4 quantization as one
    # kernel (tensorrt_llm/models/llama/model.py LLaMADecoderLayer.forward: ``fused_layernorm(..., scale=1 /
    # mlp.fc.activation_global_scaling_factor)`` and, for the next layer's QKV, ``next_layer_input_layernorm_args``;
    # FP4Linear.forward in tensorrt_llm/quantization/layers.py takes such a (fp4, block scales) tuple as is). No
    # engine release kvplan offers sets it: benchmarks/published_compare.py turns it on for the MLPerf runs whose
    # config builds with that flag.
    fp4_norm_quant_fused: bool = False
    # The row-parallel GEMMs (o_proj, and the dense MLP's down_proj) fused with the all-reduce that follows them
    # (kvplan.latency fused_gemm_allreduce_s): TensorRT-LLM's TensorRT engines built with ``gemm_allreduce_plugin``
    # (FP4RowLinear.forward in tensorrt_llm/quantization/layers.py @2340c776 calls ``gemm_allreduce`` instead of the
    # GEMM and ``allreduce``; FP8RowLinear.forward goes through RowLinear.multiply_collect, tensorrt_llm/layers/
    # linear.py @2a9abd95, which does the same with fp8_inputs_override) run one persistent CUTLASS kernel, NVLS
    # two-shot, whose all-reduce warps reduce each output tile over the TP group as soon as every rank has written it,
    # while the MMA warps compute the next tiles (cpp/tensorrt_llm/kernels/cutlass_kernels/allreduce_gemm/:
    # allreduce_gemm_runner.cu @038ba99c, the SM90 and SM100 launch configs;
    # kernel/sm100_gemm_allreduce_tma_warpspecialized.hpp @0cc33dbe, the AllReduce warp category's
    # gather_reduce_broadcast per work tile; the plugin's FP4 x FP4 and FP8 x FP8 entries in
    # plugins/gemmAllReducePlugin/gemmAllReducePlugin.cpp @2a9abd95). No engine release kvplan offers sets it:
    # benchmarks/published_compare.py turns it on for the MLPerf runs whose config builds with that flag.
    gemm_allreduce_fused: bool = False
    # The all-reduce's fixed seconds by GPU class (kvplan.latency.allreduce_constants), where the engine's own
    # all-reduce table differs from Hopper's: Blackwell HGX (B200), and Blackwell in a rack-scale NVLink domain (GB200
    # NVL72: ``nvlink_domain_gpus`` past ``gpus_per_node``). benchmarks/fit_nccl.py --allreduce: allreduce_base_s plus
    # the class's difference from Hopper in aiconfigurator 0.12.0's custom all-reduce tables. None: allreduce_base_s.
    blackwell_allreduce_base_s: float | None = None
    gb200_allreduce_base_s: float | None = None
    # Block-scaled fp8 grouped experts (DeepSeek-V3's 128 x 128 scales): seconds per expert held on the rank that the
    # engine's grouped kernels walk whatever the tokens (kvplan.latency _moe_s). Hopper (hopper_moe_block_expert_s): a
    # floor under the grouped GEMMs, the persistent kernel's scheduler walking the experts one by one; Blackwell
    # (blackwell_moe_block_expert_s): added, the masked per-expert layout's own kernels. Fitted by
    # benchmarks/fit_moe_ops.py to aiconfigurator's MoE tables; 0 (none) without a fit.
    hopper_moe_block_expert_s: float = 0.0
    blackwell_moe_block_expert_s: float = 0.0
    # ... and on Hopper, priced by the engine's kernel tiles instead of the grouped-GEMM curve (kvplan.latency
    # _block_tile_rows, _block_side_bytes): the token rows of each touched expert rounded up to the kernel's token tile,
    # at hopper_moe_block_tile_eff of the block-fp8 GEMM peak times w / (w + hopper_moe_block_half_width) (w the
    # expert's intermediate width on the rank), plus the permute / quantize / activation / finalize kernels' bytes.
    # Fitted by benchmarks/fit_moe_ops.py to aiconfigurator's MoE tables; 0 (the grouped-GEMM curve) without a fit.
    hopper_moe_block_tile_eff: float = 0.0
    hopper_moe_block_half_width: float = 0.0
    # ... and their weights streamed at this share of the bandwidth (the GEMMs' own reads; the side kernels' bytes are
    # priced apart at elementwise_mem_eff). Fitted by benchmarks/fit_moe_ops.py; None: moe_mem_eff times the fp8
    # streaming share (fp8_absorbed_mem_eff_scale), as every other fp8 grouped expert.
    hopper_moe_block_mem_eff: float | None = None
    # ... times w / (w + hopper_moe_block_mem_half_width): thin slices' short K loops (the down GEMM's K is w) stream
    # below it. Fitted by the same script on the thin slices' points; 0: not applied.
    hopper_moe_block_mem_half_width: float = 0.0
    # The grouped-expert curve on Hopper (moe_peak_eff x t / (t + moe_half_tokens), the experts priced by it: 16-bit,
    # per-tensor fp8) where the rule set's release runs other grouped GEMMs than the release the calibration was
    # fitted to (TensorRT-LLM 1.0.0rc3 for trtllm@0.20): the peak share of 16-bit experts, of fp8 ones (on fp8 tensor
    # cores; None: the 16-bit one) and the half tokens of both. Fitted by benchmarks/fit_moe_release.py to the
    # release's measured MoE tables; None: moe_peak_eff / moe_half_tokens.
    hopper_moe_peak_eff: float | None = None
    hopper_moe_fp8_peak_eff: float | None = None
    hopper_moe_half_tokens: float | None = None
    # W4A16 MXFP4 grouped experts (gpt-oss) on Blackwell: seconds one SM takes to dequantize one 4-bit expert weight to
    # 16 bits, and the tokens of one expert a CTA's tile holds; every tile dequantizes its expert's weights on the rank
    # again (kvplan.latency _moe_dequant_s). Fitted by benchmarks/fit_moe_ops.py; 0 (none) without a fit.
    mxfp4_moe_dequant_s: float = 0.0
    mxfp4_moe_tile_tokens: int = 64
    # The same on Hopper, where the engine runs other MXFP4 kernels (TensorRT-LLM: its Triton backend): their
    # dequantization per SM and their fixed seconds per MoE layer (instead of moe_layer_s). Fitted by
    # benchmarks/fit_moe_ops.py; 0 and None (none) without a fit.
    hopper_mxfp4_moe_dequant_s: float = 0.0
    hopper_mxfp4_moe_layer_s: float | None = None
    # Grouped experts the engine runs through a Marlin MoE kernel (Engine.moe_kernel, kvplan.latency _marlin_rows):
    # the share of the GPU's dense 16-bit peak its mma.sync tensor-core loop reaches on the rows it computes (each
    # expert's tokens padded to the kernel's block). Measured by benchmarks/marlin_moe_compare.py on aiconfigurator's
    # Marlin MoE tables; None: no Marlin MoE figure (the engine's grouped GEMMs are priced as fitted).
    marlin_moe_peak_eff: float | None = None
    # ... and the seconds one SM takes to dequantize one 4-bit expert weight in one token block (every block of an
    # expert's tokens converts its weights again: kvplan.latency _marlin_dequant_s); measured by the same script.
    marlin_moe_dequant_s: float = 0.0
    # The same two on Ampere (SM 8.0, where mma.sync is the tensor cores' own instruction, not Hopper's slower path
    # beside wgmma), measured by the same script on aiconfigurator's A100 Marlin MoE table (kvplan.latency
    # _marlin_figures); None / 0: the figures above.
    ampere_marlin_moe_peak_eff: float | None = None
    ampere_marlin_moe_dequant_s: float = 0.0
    # Grouped MXFP4 experts the engine runs through OpenAI's triton_kernels ``matmul_ogs`` with its own token tiles
    # (Engine.moe_kernel "triton_mxfp4", kvplan.latency _triton_mxfp4_s): the share of the dense 16-bit peak the tiles'
    # rows reach, and the seconds one SM takes to dequantize one expert weight in one tile (every tile of an expert's
    # tokens converts its weights again). Fitted by benchmarks/fit_moe_ops.py; None and 0: no such kernel.
    triton_mxfp4_mma_eff: float | None = None
    triton_mxfp4_dequant_s: float = 0.0
    # Per-tensor fp8 grouped experts the engine runs through FlashInfer's CUTLASS fused MoE, autotuned at start-up
    # (Engine.moe_kernel "flashinfer_cutlass_fp8", kvplan.latency _cutlass_fp8): the share of the GPU's dense fp8 peak
    # their GEMMs reach (times the grouped GEMMs' token curve, moe_half_tokens, and w / (w +
    # cutlass_fp8_moe_half_width), w the expert's intermediate width on the rank), and the share of the bandwidth
    # they stream the experts' weights at. Fitted by benchmarks/fit_moe_ops.py; None: no such kernel (the mma share),
    # the fitted grouped GEMMs' streaming (the memory share).
    cutlass_fp8_moe_mma_eff: float | None = None
    cutlass_fp8_moe_half_width: float = 0.0
    cutlass_fp8_moe_mem_eff: float | None = None
    # NVFP4 grouped experts on FP4 tensor cores that the engine runs through TensorRT-LLM's CUTLASS fused MoE
    # (Engine.moe_kernel "cutlass_nvfp4", kvplan.latency _cutlass_nvfp4_layer_s): that path's fixed seconds a layer (its
    # routing, permute, FP4 quantization and finalize kernels), in place of fp4_moe_layer_s. Fitted by
    # benchmarks/fit_moe_ops.py; None: no such kernel (fp4_moe_layer_s).
    cutlass_nvfp4_moe_layer_s: float | None = None
    # DeepSeek Sparse Attention's main attention in a prompt (kvplan.latency._attention_s): the sparse prefill kernel's
    # share of the 16-bit peak (deepseek-ai/FlashMLA README, 2025.09.29: the sparse kernels "achieve up to 640 TFlops
    # during prefilling" on H800, whose dense BF16 peak is 989 TFLOPS: 0.647; a published figure, not fitted), and the
    # multiple the engine pads a rank's query heads to for that kernel on Hopper / Blackwell (0: no padding).
    sparse_mla_prefill_eff: float = 0.647
    # ... and the sparse FP8 decode kernel's (an fp8 cache: FlashMLA's flash_mla_with_kvcache with indices; the same
    # README line: "410 TFlops during decoding" on H800, of its 989: 0.415; published, not fitted). A 16-bit cache
    # decodes with the prefill kernel at sparse_mla_prefill_eff (kvplan.latency._dsa_decode_s).
    sparse_mla_decode_eff: float = 0.415
    # The row an fp8 DSA cache holds, which that decode reads (kvplan.latency._sparse_decode_s): "flashmla", FlashMLA's
    # 656-byte row with its scales and bf16 RoPE part (vLLM's fp8_ds_mla; SGLang's NSA pool, whose fp8 decode default
    # flashmla_kv is the same FlashMLA kernel, kvplan.engines.sglang); "per_tensor", the plain 576-byte latent at one
    # scale per tensor (TensorRT-LLM's DSACacheManager, kvplan.engines.trtllm DSA_TOKENS_PER_BLOCK).
    dsa_fp8_row: str = "flashmla"
    sparse_mla_heads_multiple: int = 0
    blackwell_sparse_mla_heads_multiple: int = 0
    # The Mamba2 SSD chunked scan's share of the 16-bit tensor-core peak at prefill (kvplan.latency _mamba2_prefill_s,
    # FLOPs by kvplan.recurrent): SSD_SCAN_EFF, one figure for every engine (see there).
    ssd_scan_eff: float = SSD_SCAN_EFF
    # The SSD scan call's short-prompt floor in seconds (SSD_SCAN_FLOOR_S, see there).
    ssd_scan_floor_s: float = SSD_SCAN_FLOOR_S
    # The chunked gated delta rule's share of the 16-bit peak (Gated DeltaNet prefill, FLOPs by
    # kvplan.recurrent.deltanet_flops_per_token). Default SSD_SCAN_EFF: the fla Triton chunk kernels (vLLM
    # fla/ops/chunk.py, called by TensorRT-LLM and SGLang as chunk_gated_delta_rule) are chunked Triton kernels of the
    # SSD's kind; benchmarks/gdn_compare.py sets them against aiconfigurator's measured gdn tables. An engine running
    # another kernel sets its own (vLLM 0.24's FlashInfer GDN prefill kernel).
    gdn_scan_eff: float = SSD_SCAN_EFF
    # Whether the engine's delta-rule prefill kernel runs one thread block per (sequence, value head), so a step with
    # fewer of them than the GPU has SMs leaves the rest idle: the kernel then runs at prompts x heads / sm_count of
    # gdn_scan_eff (kvplan.latency._scan_occupancy). Read off aiconfigurator's vLLM 0.24.0 gdn tables (FlashInfer's
    # kernel: one 32,768-token prompt of 48 heads takes 2.5x the time of 16 prompts of 2,048 on H200, 132 SMs, the
    # same FLOPs; benchmarks/gdn_compare.py --fit fits with and without it); the fla Triton kernels split each head's
    # state over several blocks and show no such step (their fit is worse with it): False.
    gdn_head_blocks: bool = False
    # The GPU architectures (catalog `architecture`) where the engine runs that kernel (gdn_scan_eff, gdn_head_blocks);
    # elsewhere it runs the fla Triton kernels, priced at SSD_SCAN_EFF on all SMs. None: everywhere.
    gdn_kernel_archs: tuple[str, ...] | None = None
    # The prefill causal conv1d's ceiling in bytes per second per SM (kvplan.latency._conv1d_bandwidth: its bytes at
    # min(bandwidth x elementwise_mem_eff, sm_count x this)). vLLM's Triton causal_conv1d_fn
    # (vllm/model_executor/layers/mamba/ops/causal_conv1d.py _causal_conv1d_fwd_kernel, read in the 0.16.0, 0.19.0 and
    # 0.21.0 wheels: BLOCK_M = 8, BLOCK_N = 256, Triton's default 4 warps) runs one program per 8 tokens of one
    # sequence x 256 channels, and each program walks its tokens one at a time (`for idx_token in range(segment_len)`:
    # load that token's 256 channels, 4 taps, SiLU, store), so it holds one 512-byte row in flight and an SM at most
    # 16 programs (64 warps / 4): what an SM moves is set by those bytes in flight, not by the HBM. Fitted by
    # benchmarks/gdn_compare.py --fit on aiconfigurator 0.12.0's gdn tables (H200 and B200; H100 SXM held out). None:
    # the conv1d by its bytes at elementwise_mem_eff alone (TensorRT-LLM's CUDA kernel; vLLM before the Triton kernel).
    conv1d_sm_bytes_s: float | None = None
    # Mamba2's decode state update (the engine's selective_state_update): the share of the bandwidth its SSM state read
    # and write reach where it was timed at the engine's own launch heuristic (kvplan.latency._ssu_split: Mamba2 layers
    # with 64 < d_state <= 128 and an fp32 state, on Hopper and Blackwell). None: those bytes at attn_decode_mem_eff.
    ssu_mem_eff: float | None = None
    # A token mixer's output norm taken over the whole mixer width while TP splits that width: each rank sums its
    # share's squares and the TP group all-reduces those sums (one fp32 a token), one more all-reduce per layer
    # (kvplan.latency._kind_allreduces). vLLM: Mixer2RMSNormGated.forward_native on a Mamba2 mixer with one group
    # (n_groups 1, its gated norm on; vllm/model_executor/layers/mamba/mamba_mixer2.py @bb435dbd, "1. n_groups is 1 ...
    # Each rank computes a local sum of squares followed by AllReduce"; with tp dividing n_groups no collective) and
    # MiniMaxText01RMSNormTP._forward on every lightning-attention layer (MiniMax-M1: variance all-reduced over the TP
    # group); SGLang's ports of both do the same; and MiniMax-M2's q / k norm over all heads (MiniMaxText01RMSNormTP.
    # forward_qk, kvplan.latency.WHOLE_QK_NORM_FAMILIES). False: TensorRT-LLM's Mamba2Mixer (_torch/modules/mamba/
    # mamba2_mixer.py: RMSNormGated over tp_d_inner in groups of tp_d_inner // (n_groups // tp), no collective).
    mixer_norm_allreduce: bool = False


@dataclass(frozen=True)
class MoeKernel:
    """A grouped-expert kernel the engine runs in place of the one its constants were fitted on
    (:meth:`Engine.moe_kernel`): its name and the multiples it pads an expert's hidden size and intermediate width
    on the rank to (the padded matrices are what it stores, reads and multiplies)."""

    name: str
    hidden_multiple: int = 1
    inter_multiple: int = 1


@dataclass(frozen=True)
class LentFits:
    """What an engine without a calibration of its own has fitted of its own: ``fields`` (Calibration field ->
    value) set on the vLLM constants :func:`kvplan.engines.latency_calibration` lends it, and ``label``, what they
    describe (the lent label names it)."""

    label: str
    fields: tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class Overlap:
    """What an engine runs at the same time inside one step, and how its MoE layers move tokens between
    data-parallel attention ranks (:mod:`kvplan.latency` applies it). Each engine module sets its own, with
    the engine's file, function and version beside each field; the default overlaps nothing.

    ``shared_experts_tokens``: the shared experts run on a second CUDA stream beside the routed path (router,
    token dispatch, grouped experts, combine) in steps of at most this many tokens on the rank (0: never);
    ``shared_experts_graph_only``: only in steps replayed as CUDA graphs (decode). Two kernels at once still
    share the memory bus: kvplan takes the longer of the two paths, but never less than their memory traffic
    together (:func:`kvplan.latency.concurrent_s`).

    ``moe_allgather``: with data-parallel attention the MoE layer all-gathers every rank's tokens (each rank
    then runs its own experts over all of them) and reduce-scatters the outputs back, instead of an all-to-all
    that sends each token only to its top-k experts' ranks (DeepEP's dispatch and combine). Every rank's share
    is padded to the busiest rank's token count, or, with ``moe_allgather_unpadded``, is the rank's own count.
    ``moe_allgather_nccl``: that all-gather and reduce-scatter are NCCL collectives, priced by NCCL's measured
    protocols (:func:`kvplan.latency.nccl_collective_s`) instead of the engine's fitted all-reduce constants.
    ``moe_allgather_fp4``: with NVFP4 weights on FP4 tensor cores the all-gather moves the activations already
    quantized to NVFP4 (9/16 byte per value with their block scales) instead of 16-bit ones.
    ``moe_allgather_block_fp8_16bit``: with block-scaled fp8 weights the all-gather moves 16-bit activations (the
    grouped GEMMs quantize them per block after the gather), not the fp8 ones per-tensor fp8 weights gather.
    """

    shared_experts_tokens: int = 0
    shared_experts_graph_only: bool = False
    moe_allgather: bool = False
    moe_allgather_unpadded: bool = False
    moe_allgather_nccl: bool = False
    moe_allgather_fp4: bool = False
    moe_allgather_block_fp8_16bit: bool = False
    # Two-micro-batch overlap (Settings.two_batch_overlap; vLLM --enable-dbo, SGLang --enable-two-batch-overlap):
    # a step with DP attention + EP whose tokens on the rank exceed the threshold (decode-only steps, steps with a
    # prompt chunk) runs as two halves, one half's token exchange beside the other's compute. Both engines need
    # DeepEP for it, so with the setting the exchange is the all-to-all. None: the engine has no such mode.
    two_batch_decode_tokens: int | None = None
    two_batch_prefill_tokens: int | None = None
    # The step's sampling after the LM head, outside its CUDA graph (kvplan.latency.sampling_s): under TP the
    # vocab-parallel LM head's logits are all-gathered to every rank over NCCL and put back in vocabulary order (one
    # copy), then the sampler casts each sampled row's logits to fp32 and reduces them over the vocabulary (an argmax).
    # False: the engine's sampling was not read.
    logits_gather_sample: bool = False


@dataclass(frozen=True)
class HostLoop:
    """How an engine's host (CPU) work for a step meets the GPU's work (:mod:`kvplan.host` applies it). Each engine
    module that read its serving loop sets its own, citing the loop's file, function and version.

    Every step the engine's process schedules the requests, builds the step's inputs, launches the forward pass,
    samples, and turns the sampled tokens into responses; in Python that work loops over the step's requests.
    ``overlaps_gpu``: True where the loop launches step n+1 before it has processed step n's results (one step of
    run-ahead), so the host work hides behind the GPU's and a step takes the longer of the two; False where the
    loop waits for each step's tokens before it schedules the next, so the host work adds to every step; None: the
    loop was not read. ``switch``: the setting that changes it, as the engine spells it.
    """

    overlaps_gpu: bool | None = None
    switch: str = ""


@dataclass(frozen=True)
class FrontEnd:
    """The engine's API server: the process between the HTTP clients and the engine's scheduler, one serial worker
    (a Python event loop) beside the process that runs the steps, so its work does not lengthen a step but bounds
    the requests a replica takes per second (:mod:`kvplan.serving`, limit ``"api_server"``). Per request it parses
    the HTTP request, renders the chat template, tokenizes and hands the request over; per output token it turns the
    sampled id into text and streams it. Each engine module that sets one cites the process split it read and where
    the two costs were measured.

    ``request_s``: seconds of the worker's time per request, its streamed tokens included where ``token_s`` is 0
    (a cost measured on runs of one output length covers that many tokens); ``token_s``: seconds per streamed output
    token beyond it. ``measured``: where, in words.

    ``template_s``: seconds more per chat request whose prompt the server renders through the model's Hugging Face
    (Jinja) chat template, where the release pays for the template on every request (vLLM 0.8.0-0.9.1 and 0.11.0
    parse it anew each time); not on the completions endpoint, nor for a model family in ``own_renderer_families``,
    whose chat prompt the server builds without the template (vLLM: gpt-oss through OpenAI's harmony library).
    ``template_releases``: the point releases under the rule set that pay it, as inclusive ranges
    (``(("0.8.0", "0.9.1"), ("0.11.0", "0.11.0"))``). ``release``: the point release the rule set's own server is
    (None: the figures as set, the template paid). ``measured_releases``: the releases whose runs the figures were
    fitted on; ``read_releases``: releases outside those whose server source was read and found doing the same
    per-request work (the measured figures stand for them, labelled so: :meth:`release_note`).
    ``together``: requests that reach the server at once each do their synchronous part (parse, validation, chat
    template) before any of them reaches the engine, the server's event loop running every ready request handler up
    to its first wait in one pass; False: the server hands each request on as soon as its own work is done."""

    request_s: float
    token_s: float = 0.0
    measured: str = ""
    template_s: float = 0.0
    own_renderer_families: frozenset[str] = frozenset()
    template_releases: tuple[tuple[str, str], ...] = ()
    together: bool = False
    release: str | None = None
    measured_releases: tuple[str, ...] = ()
    read_releases: tuple[str, ...] = ()

    def pays_template(self, release: str | None = None) -> bool:
        """Whether a chat request on ``release`` (a point release, as ``"0.11.0"``; None: the server's own
        :attr:`release`, or the figures as set where it has none) pays :attr:`template_s`."""
        release = release or self.release
        if release is None:
            return True
        v = release_tuple(release)
        return any(release_tuple(lo) <= v <= release_tuple(hi) for lo, hi in self.template_releases)

    def cost_s(self, family: str | None = None, *, chat: bool = True, release: str | None = None) -> float:
        """Seconds of the server's time a request of a model of ``family`` (its spec's ``family``; None: a model
        that renders a Jinja template) on the chat endpoint (``chat``) or the completions one, on ``release`` (one
        of the rule set's releases, as ``"0.11.0"``; None: the server's own :attr:`release`)."""
        templated = chat and family not in self.own_renderer_families and self.pays_template(release)
        return self.request_s + (self.template_s if templated else 0.0)

    def release_note(self, release: str | None = None) -> str:
        """How ``release`` (None: the server's own :attr:`release`) stands to the releases the figures were measured
        on: "" where it is one of them (or none is named), else whether its server source was read the same."""
        release = release or self.release
        if release is None or not self.measured_releases or release in self.measured_releases:
            return ""
        if release in self.read_releases:
            return f"not on {release}, whose server reads the same in source"
        return f"not on {release}, nor its server read: unverified there"

    def ceiling_rps(self, output_tokens: float, *, family: str | None = None, chat: bool = True) -> float:
        """The most requests per second one API server takes at ``output_tokens`` streamed tokens a request (chat
        requests of a model of ``family``, as :meth:`cost_s`)."""
        return 1.0 / (self.cost_s(family, chat=chat) + output_tokens * self.token_s)


def release_tuple(release: str) -> tuple[int, ...]:
    """A point release's leading numbers: ``"0.5.3.post3"`` -> (0, 5, 3), ``"0.11.2.dev358"`` -> (0, 11, 2),
    ``"0.8"`` -> (0, 8, 0)."""
    parts = []
    for piece in release.strip().lstrip("v").split("."):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts + [0] * (3 - len(parts)))  # a series ("0.8") reads as its first release


@dataclass(frozen=True)
class OutputReserve:
    """Admission against a reserve for the running requests' outputs still to come (read by :mod:`kvplan.serving`'s
    KV bound and the benchmarks' step-by-step run, ``published_compare.RetractRun``); the engine module that sets it
    cites where it read each figure.

    A waiting request is admitted only while the pool's free tokens (evictable prefix-cache tokens counted as free)
    less ``ratio x min(output tokens left, clip_tokens)`` for every running request exceed its own prompt tokens plus
    ``min(output tokens asked, clip_tokens)`` (each request admitted in the same step reserving those in full). The
    ratio starts at :meth:`start_ratio`, falls by :meth:`decay` each decode step that finds room for its tokens, down
    to :meth:`floor_ratio`, and after a decode step that did not (the engine retracts running requests, then) is set
    to ``(output tokens decoded + retract_steps x requests) / (output tokens asked + 1)`` over the requests left, at
    most 1. ``readmit_remaining``: a retracted request, admitted again, reserves only the output it has left (True)
    or its whole output again (False)."""

    init_ratio: float
    min_ratio_factor: float
    decay_steps: int
    retract_steps: int
    clip_tokens: int
    readmit_remaining: bool = True
    # A prompt step's input-token cap beside the token budget: a request whose uncomputed prompt tokens reach what is
    # left of it is not started in a step that already holds a request (None: no such cap).
    prompt_step_tokens: int | None = None
    # A disaggregated decode instance's own rule (prompts arriving with their KV, kvplan.serving ``prefilled``): each
    # request it holds keeps this many tokens free beside its own, and a request is admitted while its prompt plus
    # this many fit what is left (None: the reserve above applies there too).
    prefilled_reserve_tokens: int | None = None
    # What the engine multiplies --schedule-conservativeness by on a replica that runs DP attention (1: nothing).
    dp_attention_scale: float = 1.0

    def start_ratio(self, conservativeness: float = 1.0) -> float:
        return min(self.init_ratio * conservativeness, 1.0)

    def floor_ratio(self, conservativeness: float = 1.0) -> float:
        return min(self.start_ratio(conservativeness) * self.min_ratio_factor, 1.0)

    def decay(self, conservativeness: float = 1.0) -> float:
        return (self.start_ratio(conservativeness) - self.floor_ratio(conservativeness)) / self.decay_steps

    def conservativeness(self, settings: Settings, *, dp_attention: bool = False) -> float:
        """``--schedule-conservativeness`` as set, else its default 1.0; x ``dp_attention_scale`` under DP attention."""
        given = settings.schedule_conservativeness
        return (1.0 if given is None else given) * (self.dp_attention_scale if dp_attention else 1.0)

    def ratio_after_retraction(self, *, decoded: int, asked: int, requests: int) -> float:
        return min(1.0, (decoded + self.retract_steps * requests) / (asked + 1))


# Where the fitted constants come from (benchmarks/fit_latency.py prints the blocks the engine modules carry).
FIT_SOURCE = "benchmarks/fit_latency.py on benchmarks/data/aiconfigurator_grid.json (aiconfigurator 0.12.0, SILICON)"


# ---- the engine interface -----------------------------------------------------------------------


@dataclass(frozen=True)
class Engine:
    """One version of one engine, as data plus the rules its module overrides."""

    name: str
    version: str  # the release this rule set was read from, in words
    paging: str  # one line: how tokens are stored
    budget_rule: str  # one line: how the KV budget is decided
    kv_dtypes: tuple[str, ...]  # kvplan dtype names the engine accepts for its KV cache
    kv_dtype_flags: dict[str, str] = field(default_factory=dict)  # kvplan name -> the engine's spelling
    tp_needs_kv_divisor: bool = True  # kv_heads % tp == 0 or tp % kv_heads == 0 (head replication)
    supports_tp: bool = True
    # Log lines that identify this engine's startup log (check-log); empty: it writes none kvplan reads.
    log_markers: tuple[str, ...] = ()
    log_needs_gpu: bool = True  # the log comparison has from-scratch terms that depend on the GPU
    # Weight formats the engine loads from a checkpoint, and those it makes itself from a 16-bit one
    # (online quantization or its own conversion tool): suggestions never leave these.
    weight_dtypes: tuple[str, ...] = ("fp32", "bf16", "fp16", "fp8", "int8", "int4", "mxfp4", "nf4")
    online_weight_dtypes: tuple[str, ...] = ()
    # The HTTP server: its default port and the endpoint that answers 200 once the model is loaded.
    serve_port: int = 8000
    health_path: str = "/health"
    serves_http: bool = True
    listen_flags: tuple[str, ...] = ()  # flags that make the server listen beyond localhost (in a pod)
    image: str = ""  # the engine's published serving container (--emit k8s; pin a tag with --image)
    # Failed starts (check-log, kvplan.diagnose): the refusals read in the engine's source
    # (kvplan.failures.Pattern), lines only it writes, flags its launch line spells that the log
    # reader does not file (flag -> regex with one number group), where the log reader files each
    # kvplan term (context, tp, pp, fraction, kv_dtype, max_num_seqs, ...), the Settings field of its
    # memory fraction, and how it starts: every sequence slot allocated up front (llama.cpp -np), an
    # activation peak sized by the sequence cap (vLLM's profile run), the flag that turns graphs off.
    failure_patterns: tuple[Any, ...] = ()
    failure_markers: tuple[str, ...] = ()
    failure_flag_patterns: dict[str, str] = field(default_factory=dict)
    log_flag_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    fraction_setting: str | None = None
    preallocates_sequences: bool = False
    profile_by_seqs: bool = False
    eager_flag: str | None = None
    # The Settings fields this engine reads (SETTING_FLAGS names them); a flag for another engine
    # is refused rather than silently ignored. Overrides of measured terms apply to every engine.
    settings_read: tuple[str, ...] = ()
    # In-flight batching admission (kvplan.serving): True where the scheduler admits a request only once
    # the KV blocks for its whole prompt + output are free (TensorRT-LLM's GUARANTEED_NO_EVICT), so each
    # running sequence holds a reservation of I + O tokens; False where blocks are taken as tokens are
    # written (vLLM, SGLang: preempt or retract on a shortfall), so a sequence holds I + O/2 on average.
    reserves_to_completion: bool = False
    # Step layout: True where one step carries the running requests' decodes and the waiting prompts' chunks together
    # (vLLM V1: the running requests, then the waiting ones, draw on one step's token budget, v1/core/sched/scheduler.py
    # Scheduler.schedule); False where a step is either a prompt batch or a decode batch, prompts first (SGLang without
    # --enable-mixed-chunk, below; Engine.mixes_steps reads the flag). Read by kvplan.serving's steady state and
    # benchmarks/published_compare.py's closed-loop run.
    mixes_prefill_with_decode: bool = True
    # KV shortfall of a running request, step by step (read by benchmarks/published_compare.py's closed-loop run):
    # "recompute_newest" where the scheduler, when a running request cannot get the blocks for its next tokens,
    # preempts the newest running request (its blocks freed, its prompt and generated tokens computed again once it
    # is admitted anew, at the head of the waiting queue) and admits no waiting request in a step that preempted
    # (vLLM V1, engines/vllm.py); "retract_fewest_outputs" where a decode step that finds no room for one token per
    # running request retracts running requests, fewest output tokens first (ties: the longest prompt, then the
    # latest in the batch), until the others' tokens fit: each one's decoded tokens freed, its prompt left in the
    # prefix cache as evictable (found again on readmission unless evicted, least recently used first), the request
    # put at the waiting queue's tail (SGLang, engines/sglang.py, with ``output_reserve``); None: not modelled step
    # by step (the run caps its requests at the pool's mean holding, :func:`kvplan.serving._limits`).
    kv_preemption: Literal["recompute_newest", "retract_fewest_outputs"] | None = None
    # Admission against a reserve for the running requests' remaining outputs (OutputReserve); None: a request is
    # admitted once its prompt's blocks fit (vLLM) or reserves its whole output (TensorRT-LLM, reserves_to_completion).
    output_reserve: OutputReserve | None = None
    # Disaggregated prefill/decode (kvplan.disagg), as read in each engine's source. ``disagg_first_token``: which
    # instance samples the first output token: "decode" (the decode instance computes the last prompt token once the
    # KV has arrived: one decode-pool step in TTFT) or "prefill" (sent along with the KV: no decode step before it).
    # ``disagg_kv_send``: "after_prefill" (the KV moves once the whole prompt is computed) or "per_chunk" (each
    # prefill chunk's KV is sent as soon as it is computed, overlapping the later chunks). None: not read for this
    # engine, and disaggregated plans refuse it rather than guess.
    disagg_first_token: Literal["decode", "prefill"] | None = None
    disagg_kv_send: Literal["after_prefill", "per_chunk"] | None = None
    # ``disagg_kv_entries``: how the engine's KV connector lays one request's KV out as transfer-engine entries
    # (kvplan.disagg.transfer_entries, each entry a fixed cost beyond latency + bytes, MOONCAKE_ENTRY_S):
    # "k_and_v" (one registered buffer per layer for K and one for V, one for an MLA latent; the request's blocks
    # one contiguous run in each, so one entry per buffer). None: not read; no fixed cost per entry is added.
    disagg_kv_entries: Literal["k_and_v"] | None = None
    # With pipeline parallelism (kvplan.serving): True where the engine schedules each of its pp micro-batches
    # against the batch limits (max_num_seqs, max_num_batched_tokens), so a pipeline cycle holds pp x each;
    # False where they bound all micro-batches together.
    limits_per_micro_batch: bool = False
    release: str = "-"  # the version key users select with name@release (``vllm@0.19``)
    # Fitted kernel efficiencies for kvplan.latency (None: no fit of its own; kvplan.engines.latency_calibration
    # then lends vLLM's and says so).
    calibration: Calibration | None = None
    # Without one: the few constants it has fitted of its own, set on the lent ones (LentFits); None: none.
    lent_fits: LentFits | None = None
    # Concurrency inside a step and the MoE token exchange under DP attention (kvplan.latency); see Overlap.
    overlap: Overlap = field(default_factory=Overlap)
    # Whether the serving loop's host work per step runs beside the GPU's (kvplan.host); see HostLoop.
    host_loop: HostLoop = field(default_factory=HostLoop)
    # The API server's own work per request and per streamed token (kvplan.serving's "api_server" limit); see
    # FrontEnd. None: not measured for this release (no ceiling).
    front_end: FrontEnd | None = None

    @property
    def key(self) -> str:
        """``name@release``: what :func:`kvplan.engines.get_engine` takes to select this rule set."""
        return f"{self.name}@{self.release}"

    # -- dtypes and splits --

    def default_kv_dtype(self, spec: ModelSpec) -> str:
        """The KV dtype the engine picks when none is given: the model's own ('auto')."""
        return spec.dtype

    def check_kv_dtype(self, kv_dtype_name: str) -> str:
        name = canonical_dtype(kv_dtype_name)
        if name not in self.kv_dtypes:
            raise InvalidInput(
                f"engine {self.name!r} does not store a KV cache in {kv_dtype_name!r}; "
                f"it accepts {', '.join(self.kv_dtypes)}"
            )
        return name

    def check_weights_dtype(self, weights_dtype_name: str) -> str:
        name = canonical_dtype(weights_dtype_name)
        if name not in self.weight_dtypes:
            raise InvalidInput(
                f"engine {self.name!r} does not load {weights_dtype_name!r} weights; "
                f"it runs {', '.join(self.weight_dtypes)}"
            )
        return name

    def check_weights_on_gpu(self, weights_dtype_name: str, gpu: GPU) -> None:
        """Refuse a weights format this engine cannot run on ``gpu`` (default: every loaded format runs)."""

    def check_kv_on_gpu(self, kv_dtype_name: str, gpu: GPU) -> None:
        """Refuse a KV format this engine cannot store on ``gpu`` (default: every accepted format runs)."""

    def check_settings_on_gpu(self, settings: Settings, gpu: GPU) -> None:
        """Refuse a flag this engine cannot run on ``gpu`` (default: every accepted flag runs everywhere)."""

    def check_kv_latency(self, kv_dtype_name: str) -> None:
        """Refuse a KV format whose reads kvplan.latency cannot price for this engine (default: the held bytes at the
        attention's bandwidth, dequantization fused in the kernel)."""

    def holds_to_completion(self, settings: Settings) -> bool:
        """Whether a running sequence holds KV blocks for its whole prompt + output (``reserves_to_completion``)
        under these flags. TensorRT-LLM's MAX_UTILIZATION policy (``Settings.capacity_scheduler_policy``) does not:
        cpp/tensorrt_llm/batch_manager/capacityScheduler.cpp @02a10fed ``MaxUtilizationScheduler::operator()``
        schedules a request when ``trySchedulingRequestMaxUtilization`` finds the blocks for its next step
        (``MaxUtilizationScheduledBlocksManager``) and otherwise pauses the last started request to free its
        blocks, where ``GuaranteedNoEvictScheduler`` counts each request's blocks to completion
        (``NoEvictScheduledBlocksManager``); capacityScheduler.h: "Try reserving resources to advance requests by
        one step, may pause previously started requests". Then a sequence holds its mean context, as on vLLM."""
        return self.reserves_to_completion and settings.capacity_scheduler_policy != "max_utilization"

    def mixes_steps(self, settings: Settings) -> bool:
        """Whether one step carries the running decodes and prompt tokens together under these flags: the engine's
        layout (``mixes_prefill_with_decode``), or SGLang's ``--enable-mixed-chunk`` (``Settings.mixed_chunk``, read by
        SGLang only: python/sglang/srt/managers/scheduler.py ``get_new_batch_prefill``, "Mixed-style chunked prefill":
        ``is_mixed_chunk`` merges the running batch into the prompt batch, ``mix_with_running``, and the prompt budget
        shrinks by the running requests, ``PrefillAdder(..., running_bs if self.is_mixed_chunk else 0)``)."""
        return self.mixes_prefill_with_decode or settings.mixed_chunk

    def check_settings(self, settings: Settings) -> None:
        """Refuse flags that belong to another engine (they would change nothing and say nothing)."""
        given = settings.schedule_conservativeness  # SGLang scheduler.py asserts it >= 0
        if given is not None and not given >= 0:
            raise InvalidInput(f"invalid --schedule-conservativeness {given!r}; expected a number >= 0, e.g. 0.3")
        cap = settings.max_seq_len
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise InvalidInput(f"invalid --max-seq-len {cap!r}; expected a whole number of tokens >= 1, e.g. 8192")
        policy = settings.capacity_scheduler_policy
        if policy not in (None, "guaranteed_no_evict", "max_utilization"):
            raise InvalidInput(f"invalid --capacity-scheduler-policy {policy!r}; expected guaranteed_no_evict or "
                               "max_utilization")  # fmt: skip
        default = Settings()
        for name, flag in SETTING_FLAGS.items():
            given = _setting(settings, name)
            if given != _setting(default, name) and name not in self.settings_read:
                own = ", ".join(SETTING_FLAGS[n] for n in self.settings_read) or "none of the engine flags"
                raise InvalidInput(f"{flag} does not apply to engine {self.name!r}; it reads {own}")
        if settings.block_size is not None:
            self.check_block_size(settings.block_size)
        # a value vLLM's CLI refuses, refused for any model (checked after the flag's owner, which names the engine)
        mamba_ssm_flag(settings.mamba_ssm_cache_dtype)
        mamba_conv_flag(settings.mamba_cache_dtype)

    def check_block_size(self, tokens: int) -> None:
        """Block (page) sizes the engine accepts; any whole number of tokens by default."""
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise InvalidInput(f"invalid block size {tokens!r}; expected a whole number of tokens >= 1")

    def kv_flag(self, kv_dtype_name: str) -> str:
        """The engine's own spelling of a KV dtype (its --kv-cache-dtype value)."""
        return self.kv_dtype_flags.get(kv_dtype_name, kv_dtype_name)

    def check_parallel(self, spec: ModelSpec, *, tp: int, pp: int, dp: int = 1, ep: bool = False) -> None:
        """Engine-specific TP/PP/DP/EP rules on top of :func:`kvplan.memory.check_parallel`."""
        if dp > 1 or ep:
            self.check_dp_ep(spec, tp=tp, pp=pp, dp=dp, ep=ep)
        if not self.supports_tp and (tp > 1 or pp > 1):
            raise InvalidInput(
                f"engine {self.name!r} is modelled on one device; got tp={tp}, pp={pp}; use --tp 1 --pp 1"
            )
        if not self.tp_needs_kv_divisor or tp == 1:
            return
        for name in spec.kind_counts:
            kind = spec.kind(name)
            if kind.type in ("mla", "recurrent"):
                continue
            kv = spec.kv_heads_of(kind)
            if kv % tp and tp % kv:
                # vLLM QKVParallelLinear: kv heads are split (kv % tp == 0) or replicated (tp % kv == 0).
                raise InvalidInput(
                    f"tensor parallel size {tp} neither divides nor is a multiple of {spec.name}'s {kv} KV heads; "
                    f"{self.name} requires one or the other"
                )

    def check_dp_ep(self, spec: ModelSpec, *, tp: int, pp: int, dp: int, ep: bool) -> None:
        """Data-parallel attention and expert parallelism: engines that run them override this."""
        raise InvalidInput(
            f"engine {self.name!r}: data-parallel attention and expert parallelism are not modelled for it; "
            "use --dp 1 without --ep (vllm, sglang and trtllm run them)"
        )

    def sharding(self, spec: ModelSpec, *, tp: int, dp: int = 1, ep: bool = False) -> Sharding:
        """What one rank holds of each weight group (plain TP: everything cut ``tp`` ways)."""
        return Sharding.tensor(tp)

    def node_args(self, r: CapacityResult, *, node: int | str, nodes: int, leader: str) -> list[str]:
        """Extra flags for node ``node`` (0 is the leader) of a replica spread over ``nodes`` nodes.

        ``node`` and ``leader`` may be shell expressions (``$LWS_WORKER_INDEX``) for manifests.
        """
        raise InvalidInput(f"engine {self.name!r} has no multi-node launch in kvplan; keep a replica within a node")

    def node_prelude(self, r: CapacityResult, *, node: int | str, leader: str) -> str | None:
        """A command a node runs before the engine (a Ray cluster), or None."""
        return None

    def prefix_units(self, layout: Layout, prefix: int) -> int:
        """Allocation units a prefix of ``prefix`` tokens shared by every request takes once.

        Paged engines share whole blocks of full-attention layers only (a partly filled last block
        belongs to each request); engines without prefix caching share nothing.
        """
        return 0

    # -- what is stored, and how --

    def attention_tp(self, tp: int, settings: Settings) -> int:
        """The tensor-parallel degree attention heads (and so the KV cell) are split over."""
        if settings.attention_dp != 1:
            raise InvalidInput(
                f"engine {self.name!r} has no attention data parallelism; got attention_dp={settings.attention_dp}"
            )
        return tp

    def cache_plan(self, spec: ModelSpec, *, kv_dtype_name: str, tp: int, pp: int, mla: str = "latent") -> CachePlan:
        """The cache plan the engine stores. All four serving engines keep the MLA latent by default
        (SGLang/vLLM MLA backends, llama.cpp since its MLA support)."""
        self.check_layer_kinds(spec)
        return cache_plan(spec, kv_dtype_name, tp=tp, pp=pp, mla=mla)

    def check_layer_kinds(self, spec: ModelSpec, *, indexer_read: bool = False) -> None:
        """Layer kinds issue 9 added (DSA indexer caches, KV-shared and attention-free layers): refused by
        the engines whose source kvplan has not read for them; those that have override this (``indexer_read``:
        the engine's DSA indexer cache has been read, the other kinds not)."""
        refuse_unread_states(self.name, spec)
        kinds = spec.layers.kinds.values()
        readers = "ideal, vllm or transformers"
        if not indexer_read and any(k.index_head_dim for k in kinds):
            raise InvalidInput(
                f"{spec.name} keeps a sparse-attention indexer key cache (index_head_dim); kvplan has no "
                f"{self.name} layout for it yet; use --engine {readers}"
            )
        if any(k.kv_shared or k.type == "none" for k in kinds):
            raise InvalidInput(
                f"{spec.name} has layers that store no KV (KV shared with an earlier layer, or no attention); "
                f"kvplan has no {self.name} layout for them yet; use --engine {readers}"
            )
        refuse_cross_attention(spec, self.name)

    def batch_limits(
        self, settings: Settings, total: int, gpu: GPU, *, dp_ranks: int = 1
    ) -> tuple[int | None, int | None]:
        """``(max_num_batched_tokens, max_num_seqs)`` the engine runs with, where it has them; the token budget is one
        attention-DP rank's where the replica has ``dp_ranks`` of them (each schedules its own steps)."""
        return None, None

    def aligns_dp_prefill(self, settings: Settings) -> bool:
        """Whether the attention-DP ranks admit their prompt chunks in the same steps (kvplan.serving); False: each
        rank's scheduler admits its own, independently of the others (every engine's default that was read)."""
        return False

    def dp_dealing(self, settings: Settings) -> Literal["even", "fewest_active"]:
        """How the engine deals new requests over its attention-DP ranks, as kvplan.serving prices the busiest rank's
        prompts in a step. ``"even"``: a step's arrivals spread as evenly as their count allows (SGLang's default
        ``load_balance_method`` ``round_robin``, python/sglang/srt/managers/data_parallel_controller.py
        ``round_robin_scheduler``; the later ``"auto"`` default resolves to it outside prefill-decode
        disaggregation, server_args.py ``_handle_load_balance_method``. vLLM V1's
        ``DPLBAsyncMPClient.get_core_engine_for_request``, vllm/v1/engine/core_client.py, the lowest ``waiting x 4 +
        running`` with the chosen rank's waiting count raised at once between the coordinator's 100 ms snapshots,
        which spreads a step's arrivals over the ranks: benchmarks/serving_sim.py ``--dp`` runs it within 1-7 % of
        the even figures. vLLM PR #49204, merged 2026-07-20, after 0.22.1 (2026-06), so after every vLLM release
        kvplan has rules for, scores ``max(in-flight, waiting + running)`` with a live in-flight count and a rotating
        scan start (@00080ee1): a fewest-active dealing like TensorRT-LLM's, for a later vLLM rule set).
        ``"fewest_active"``: TensorRT-LLM's (:meth:`kvplan.engines.trtllm.Trtllm.dp_dealing`)."""
        return "even"

    def dp_balance_iters(self, settings: Settings) -> tuple[int, int] | None:
        """``(timeout_iters, batching_wait_iters)`` of the engine's attention-DP balancer, which holds prompts back
        until every rank has one (kvplan.dp_balance prices the hold in the TTFT); None where it holds none."""
        return None

    def model_as_run(self, spec: ModelSpec, settings: Settings | None = None) -> ModelSpec:
        """The model as the engine computes and caches it, where that differs from the checkpoint's config: the dtype
        it keeps each recurrent layer's SSM state in (:meth:`ssm_state_dtype`; engines override for a window they do
        not apply); the spec itself where nothing differs. kvplan.capacity.setup and kvplan.cost take it."""
        given = settings or Settings()
        return with_state_dtypes(
            spec, lambda kind: (self.conv_state_dtype(spec, kind, given), self.ssm_state_dtype(spec, kind, given))
        )

    def conv_state_dtype(self, spec: ModelSpec, kind: LayerKind, settings: Settings) -> str | None:
        """The dtype the engine keeps a recurrent ``kind``'s conv state in; None: the model's dtype. Here, the spec's
        ``state_dtype`` (kvplan.memory); vLLM (``--mamba-cache-dtype``) and llama.cpp override it."""
        return kind.state_dtype

    def ssm_state_dtype(self, spec: ModelSpec, kind: LayerKind, settings: Settings) -> str | None:
        """The dtype the engine keeps a recurrent ``kind``'s SSM (temporal) state in; None: its conv state's
        (:meth:`conv_state_dtype`; kvplan.memory.recurrent_state_bytes). Here, the ideal layout's rule: what the
        checkpoint's config states (``kind.ssm_state_dtype``, kvplan.hf); the serving engines override it."""
        return kind.ssm_state_dtype

    def runtime_batch_size(self, settings: Settings, capacity: int) -> int | None:
        """The batch the engine's runtime caps a step at when its KV pool holds ``capacity`` requests of the running
        mean length (kvplan.serving applies it below ``max_num_seqs``); None where the engine tunes no such cap
        (every engine's default)."""
        return None

    def fp8_context_attention(self, *, weights_dtype: str, kv_dtype: str) -> bool:
        """Whether the engine's prefill (context) attention runs its two GEMMs on FP8 tensor cores for a checkpoint
        with ``weights_dtype`` weights and a ``kv_dtype`` KV cache (MLA's context kernels aside); False where it does
        not or that is not read (kvplan.latency prices it at the 16-bit peak then)."""
        return False

    def attention_spans(self, spec: ModelSpec, settings: Settings) -> dict[str, int | None] | None:
        """What the engine's attention kernels read and compute on the model's windowed layers (sliding or chunked),
        where it differs from the checkpoint's own window or chunk: layer kind name -> the keys a query reaches at
        most (a sliding span of that many tokens), or None for every cached token (the window only masked, or not
        applied at all). None: the kernels follow the checkpoint (a window of W keys per query, a chunk restarting
        every C tokens), as :func:`kvplan.attention.prefill_pairs` and :func:`kvplan.attention.decode_span` count.
        kvplan.latency prices prefill FLOPs and decode reads on the spans this gives (:func:`kvplan.latency.
        kernel_spec`); memory (capacity) keeps the engine's own cache rules."""
        return None

    def weights_added(self, spec: ModelSpec, *, weights_dtype: str, pp: int, sharding: Sharding) -> list[int]:
        """Bytes one GPU of each pipeline stage holds after loading beyond the checkpoint's tensors as the engine cuts
        them (copies its kernels make and keep, kvplan.capacity.setup adds them to the weights); none by default."""
        return [0] * pp

    def expert_dims_as_loaded(self, *, weights_dtype: str, gpu: GPU, hidden: int, inter_rank: int) -> tuple[int, int]:
        """(hidden, intermediate width on the rank) of one routed expert as the engine holds it after loading, where
        its MoE kernels store the experts padded (kvplan.capacity.setup adds the padding's bytes to the weights); the
        checkpoint's own dims by default."""
        return hidden, inter_rank

    def moe_kernel(self, *, weights_dtype: str, gpu: GPU) -> MoeKernel | None:
        """The grouped-expert kernel the engine runs for ``weights_dtype`` experts on ``gpu`` where kvplan.latency
        prices it apart from the fitted grouped GEMMs (:class:`MoeKernel`: "marlin", vLLM's Marlin MoE;
        "triton_mxfp4", vLLM's OpenAI Triton MXFP4 experts; "flashinfer_cutlass_fp8", vLLM's FlashInfer CUTLASS
        per-tensor fp8 experts; "cutlass_nvfp4", TensorRT-LLM's CUTLASS NVFP4 experts, of which only the fixed cost a
        layer is priced apart); None: the fitted grouped GEMMs."""
        return None

    def keeps_freed_blocks(self, settings: Settings) -> bool:
        """Whether a preempted request's freed full blocks stay in a prefix cache (found again when it is scheduled
        anew, until the allocator hands them to another request); False where that is not modelled."""
        return False

    def decode_view_passes(self, spec: ModelSpec, settings: Settings, seqs: float) -> float:
        """How many times a decode step of ``seqs`` sequences reads its sequences' cached K/V, where the engine's
        attention kernels read more than each sequence's own cells once (llama.cpp's unified cache); 1 elsewhere."""
        return 1.0

    def graph_token_cap(self, spec: ModelSpec, settings: Settings) -> int | None:
        """The most tokens a decode step may put on a rank and still replay a CUDA graph; a step with more runs
        without one (:mod:`kvplan.latency` prices its launches at ``eager_kernel_s``). None: no cap modelled."""
        return None

    def graph_rows(self, settings: Settings, rank_seqs: float) -> float | None:
        """The rows a decode-only step runs on every rank when the engine pads the batch up to a captured CUDA graph,
        ``rank_seqs`` being the busiest rank's sequences; None where it does not pad (or that is not modelled)."""
        return None

    def layout(
        self, spec: ModelSpec, *, plan: CachePlan, settings: Settings, stage_index: int, gpu: GPU, total: int
    ) -> Layout:
        return ExactLayout(plan.stages[stage_index], 1, 1)

    def budget(
        self,
        spec: ModelSpec,
        *,
        settings: Settings,
        total: int,
        weights: int,
        tp: int,
        pp: int,
        gpu: GPU,
        sharding: Sharding | None = None,
    ) -> Budget:
        """Bytes per GPU of one pipeline stage under the engine's budget rule. ``tp`` is the MoE layers' rank count
        (tp x dp); ``sharding`` how the rank's weights are cut (:meth:`sharding`; None: plain TP), for engines whose
        activation peak depends on it."""
        o = settings.overrides
        act, ctx = o.activation_bytes or 0, o.non_torch_bytes or 0
        return plain_budget(
            total=total, weights=weights, activation=act, context=ctx, overhead=o.overhead_bytes, rule=self.budget_rule
        )

    # -- launch line --

    def launch_args(self, r: CapacityResult, *, model: str, sequences: int) -> list[str] | None:
        """The engine's command line for ``r``, or None where there is none to run (a launch line
        must start the engine with the budget the answer came from)."""
        return None

    def launch_notes(self, r: CapacityResult) -> list[str]:
        """What the engine takes outside its command line for ``r`` (a config file's keys); none by default."""
        return []

    def latency_setting_notes(self, settings: Settings) -> list[str]:
        """Where the launch takes the latency-only settings given (a config file's keys), for ``plan --rate``'s
        notes; none by default."""
        return []

    # -- startup log --

    def reads_log(self, text: str) -> bool:
        return any(m in text for m in self.log_markers)

    def parse_log(self, text: str) -> LogFacts:
        raise InvalidInput(f"kvplan does not read {self.name} logs; expected a vllm, sglang or llamacpp log")

    def failure_flags(self, text: str) -> dict[str, float]:
        """Flags a failed log's launch line or messages give that :meth:`parse_log` does not read."""
        out: dict[str, float] = {}
        for key, pattern in self.failure_flag_patterns.items():
            m = re.search(pattern, text)
            if m:
                out[key] = float(m.group(1).replace(",", ""))
        return out

    def weights_in_log(self, text: str) -> str | None:
        """The checkpoint's weight format when the log prints it (kvplan's name), else None."""
        return None

    def failure_figures(self, text: str) -> dict[str, float]:
        """The engine's memory figures in a log :meth:`parse_log` does not read (GiB as logged)."""
        return {}

    def model_in_log(self, text: str) -> str | None:
        """The checkpoint a failed log's launch line names."""
        m = re.search(r"--model(?:[-_]path)?[ =](\S+)", text)
        return m.group(1) if m else None

    def rules_for_log(self, facts: LogFacts) -> tuple[Engine, str | None]:
        """The rule set to compare a log under (the release it states), and a note when it is a guess."""
        return self, None

    def compare_log(self, facts: LogFacts, spec: ModelSpec, gpu: GPU | None, result: Any, *, calc: Any) -> None:
        """Fill ``result`` (rows, given, predicted, notes) with the log's figures against kvplan's.

        ``calc`` is :mod:`kvplan.capacity`, passed in so that engines never import it.
        """
        raise InvalidInput(f"kvplan does not compare {self.name} logs")


def spans_view(spec: ModelSpec, spans: dict[str, int | None]) -> ModelSpec:
    """``spec`` with each named layer kind attending over ``spans[name]`` keys: a sliding window of that many, or full
    attention for None (:meth:`Engine.attention_spans`); every other field, the kind names included, unchanged."""
    kinds = dict(spec.layers.kinds)
    for name, span in spans.items():
        shape = {"type": "full", "window": None} if span is None else {"type": "sliding", "window": span}
        kinds[name] = kinds[name].model_copy(update={**shape, "chunk": None})
    return spec.model_copy(update={"layers": spec.layers.model_copy(update={"kinds": kinds})})


_STATES_KEPT: dict[tuple[Any, ...], tuple[ModelSpec, ModelSpec]] = {}  # (id of a spec, dtypes) -> (it, its copy)


def with_state_dtypes(spec: ModelSpec, resolve: Callable[[LayerKind], tuple[str | None, str | None]]) -> ModelSpec:
    """``spec`` with each recurrent kind's (a Falcon-H1 attention kind's parallel mixer's included) conv and SSM state
    dtypes set to ``resolve(kind)`` = ``(state_dtype, ssm_state_dtype)``; the spec itself where none changes. One copy
    per spec object and dtypes, so the latency paths' per-spec memos (keyed on identity) see one model."""
    dtypes: dict[str, tuple[str | None, str | None]] = {}
    for name, kind in spec.layers.kinds.items():
        mixer = kind.parallel if kind.parallel is not None else kind
        if mixer.variant in SSM_STATE_VARIANTS:
            wanted = tuple(canonical_dtype(d) if d else None for d in resolve(mixer))
            if wanted != (mixer.state_dtype, mixer.ssm_state_dtype):
                dtypes[name] = wanted  # type: ignore[assignment]
    if not dtypes:
        return spec
    return kept_for_spec(_STATES_KEPT, spec, tuple(sorted(dtypes.items(), key=lambda item: item[0])),
                         lambda: _with_dtypes(spec, dtypes))  # fmt: skip


def _with_dtypes(spec: ModelSpec, dtypes: dict[str, tuple[str | None, str | None]]) -> ModelSpec:
    kinds = dict(spec.layers.kinds)
    for name, (conv, ssm) in dtypes.items():
        kind = kinds[name]
        update = {"state_dtype": conv, "ssm_state_dtype": ssm}
        if kind.parallel is not None:
            kinds[name] = kind.model_copy(update={"parallel": kind.parallel.model_copy(update=update)})
        else:
            kinds[name] = kind.model_copy(update=update)
    return spec.model_copy(update={"layers": spec.layers.model_copy(update={"kinds": kinds})})


def check_moe_parallel(engine: str, spec: ModelSpec, *, tp: int, dp: int, ep: bool) -> None:
    """DP attention and EP only mean something for MoE models: vllm/config/parallel.py (@00193b82)
    says non-MoE models "should use independent vLLM instances without --data-parallel-* arguments"
    (SGLang's dp attention likewise targets MoE models), and an expert-parallel group needs at least
    one expert per rank."""
    if spec.moe is None:
        raise InvalidInput(
            f"{spec.name} has no MoE layers: data-parallel attention / expert parallelism do not apply; "
            f"{engine} runs a dense model's copies as independent replicas (use --gpus for more replicas)"
        )
    if ep and spec.moe.num_experts < tp * dp:
        raise InvalidInput(
            f"expert parallelism over {tp * dp} ranks leaves ranks without experts: {spec.name} has "
            f"{spec.moe.num_experts}; use at most {spec.moe.num_experts} ranks"
        )


def quantization_flag(r: CapacityResult) -> list[str]:
    """fp8 weights from a 16-bit checkpoint: both vLLM and SGLang quantize online with
    ``--quantization fp8`` (vLLM docs "FP8 W8A8", dynamic per-tensor scales; SGLang server_args)."""
    return ["--quantization", "fp8"] if r.weights_dtype == "fp8" and not r.weights_shipped else []


# ---- startup logs ---------------------------------------------------------------------------------


@dataclass
class LogFacts:
    """What a log says. Sizes in bytes (GiB as logged x 2^30), counts as ints."""

    engine: str
    model: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)


NUM = r"(-?[\d,]*\.?\d+)"


def number(text: str) -> float:
    return float(text.replace(",", ""))


def fmt(v: float | int | None, unit: str = "") -> str:
    if v is None:
        return "-"
    if unit == "GiB":
        return f"{v:,.2f} GiB"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.2f}"
    return f"{int(v):,}"


def row(term: str, logged: float | None, predicted: float | None, unit: str = "") -> dict[str, Any]:
    """One compared figure: logged, predicted and the difference (absolute and relative)."""
    diff = "-"
    if logged is not None and predicted is not None:
        d = predicted - logged
        if unit != "GiB" and float(d).is_integer():
            d = int(d)
        pct = f" ({d / logged:+.1%})" if logged else ""
        diff = (f"{d:+,.2f} GiB" if unit == "GiB" else f"{d:+,.2f}" if isinstance(d, float) else f"{d:+,}") + pct
    return {
        "term": term,
        "logged": fmt(logged, unit),
        "predicted": fmt(predicted, unit),
        "difference": diff,
        "logged_value": logged,
        "predicted_value": predicted,
    }


def as_int(v: Any) -> int | None:
    try:
        return int(str(v).split()[0]) if v is not None else None
    except ValueError:
        return None


def as_float(v: Any) -> float | None:
    try:
        return float(str(v).split()[0]) if v is not None else None
    except ValueError:
        return None


def refuse_unread_states(engine: str, spec: ModelSpec, *, parallel_read: bool = False) -> None:
    """Layer kinds whose layout kvplan has read only in transformers (and keeps in the ideal layout):
    attention with a recurrent mixer beside it in one layer (Falcon-H1), and MiniMax lightning attention. Every
    serving engine refuses them until its source has been read for them."""
    kinds = spec.layers.kinds.values()
    if not parallel_read and any(k.parallel is not None for k in kinds):
        raise InvalidInput(
            f"{spec.name} keeps K/V and a recurrent state in the same layer (attention beside a Mamba2 mixer); "
            f"kvplan has no {engine} layout for it yet; use --engine ideal or transformers"
        )
    if any(k.variant == "lightning" for k in kinds):
        raise InvalidInput(
            f"{spec.name} keeps a lightning-attention state (MiniMax linear attention); kvplan has no {engine} "
            "layout for it yet; use --engine ideal or transformers"
        )


def refuse_cross_attention(spec: ModelSpec, engine: str) -> None:
    """Cross-attention layers (Llama 3.2 Vision): modelled by the ideal and transformers layouts only."""
    if any(k.type == "cross" for k in spec.layers.kinds.values()):
        raise InvalidInput(
            f"{spec.name} has cross-attention layers (K/V of the vision tokens); kvplan has no {engine} layout "
            "for them (that engine's source was not read for them); use --engine ideal or transformers"
        )


def refuse_fp4_kv_mla(engine: str, spec: ModelSpec, kv_dtype_name: str) -> None:
    """MLA models in a 4-bit KV cache: refused where kvplan has not read the engine's latent FP4 layout."""
    if any(k.type == "mla" for k in spec.layers.kinds.values()):
        raise InvalidInput(
            f"engine {engine!r}: kvplan has not read its {kv_dtype_name} KV layout for MLA layers ({spec.name}); "
            "use --kv-dtype fp8 or the model's dtype"
        )


def refuse_fp4_kv_without_fp4(engine: str, kv_dtype_name: str, gpu: GPU, why: str) -> None:
    """A 4-bit KV cache on a GPU without FP4 tensor cores (Hopper and older), where the engine needs them."""
    if gpu.fp4_dense_tflops is None:
        raise InvalidInput(
            f"engine {engine!r} does not store its KV cache in {kv_dtype_name!r} on {gpu.name} ({why}); "
            "use --kv-dtype fp8 or a Blackwell GPU (b200, gb200)"
        )


def mla_kv_b_bytes(spec: ModelSpec, *, attn_tp: int, pp: int, element_bytes: int) -> list[int]:
    """One GPU's kv_b_proj-shaped tensors of every MLA layer, per pipeline stage: [heads / attn_tp x (qk_nope + v),
    kv_lora_rank] at ``element_bytes`` each. What an engine's extra copy of the MLA up-projections holds (SGLang's
    w_kc / w_vc, vLLM's dequantized kv_b_proj); the engine decides whether and in which dtype it keeps one."""
    heads = ceil_div(spec.num_attention_heads, attn_tp)
    out = []
    for layers in pipeline_stages(spec.num_layers, pp):
        total = 0
        for i in layers:
            kind = spec.kind(spec.layer_kind_names[i])
            if kind.type == "mla":
                total += heads * (kind.qk_nope_head_dim + spec.v_head_dim_of(kind)) * kind.kv_lora_rank * element_bytes
        out.append(total)
    return out

"""How serving engines lay out and budget KV-cache memory.

An engine profile is data (:data:`ENGINES`) plus two small functions built on the per-layer
:class:`~kvplan.memory.CachePlan`:

- :func:`engine_layout` turns the plan of one pipeline stage into the engine's allocation
  units (vLLM blocks shared by KV-cache groups, SGLang token slots, TensorRT-LLM blocks,
  llama.cpp cells, or plain bytes) and answers "how many units do ``batch`` sequences of
  ``length`` tokens take";
- :func:`budget` says how many bytes per GPU the engine gives its KV cache, term by term.

The KV arithmetic itself (bytes per token per layer, windows, MLA latent, recurrent state, TP
replication) is never re-derived here: it comes from :func:`kvplan.memory.cache_plan`.
Every constant carries the engine version and the source it was read from; every non-KV term
has a user override (:class:`Overrides`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from kvplan.errors import InvalidInput, did_you_mean
from kvplan.hardware import GPU, usable_memory_bytes  # one usable-memory figure for every command
from kvplan.memory import (
    CachePlan,
    LayerCache,
    StagePlan,
    cache_plan,
    element_size,
    indexer_token_bytes,
    recurrent_state_elements,
)
from kvplan.params import weight_bytes_per_stage
from kvplan.spec import ModelSpec, ceil_div
from kvplan.units import GIB, KV_DTYPES, MIB, WEIGHT_DTYPES, canonical_dtype

EngineName = Literal["ideal", "vllm", "sglang", "trtllm", "llamacpp", "transformers"]


@dataclass(frozen=True)
class EngineProfile:
    """What an engine is, in data: its version, paging unit and the flags it accepts."""

    name: str
    version: str
    paging: str  # one line: how tokens are stored
    budget_rule: str  # one line: how the KV budget is decided
    kv_dtypes: tuple[str, ...]  # kvplan dtype names the engine accepts for its KV cache
    kv_dtype_flags: dict[str, str] = field(default_factory=dict)  # kvplan name -> the engine's spelling
    tp_needs_kv_divisor: bool = True  # kv_heads % tp == 0 or tp % kv_heads == 0 (head replication)
    supports_tp: bool = True
    # Weight formats the engine loads from a checkpoint, and those it makes itself from a 16-bit one
    # (online quantization or its own conversion tool): suggestions never leave these.
    weight_dtypes: tuple[str, ...] = ("fp32", "bf16", "fp16", "fp8", "int8", "int4", "mxfp4", "nf4")
    online_weight_dtypes: tuple[str, ...] = ()


ENGINES: dict[str, EngineProfile] = {
    "ideal": EngineProfile(
        name="ideal",
        version="-",
        paging="exact bytes per token, no paging",
        budget_rule="device memory - weights - user overhead",
        kv_dtypes=tuple(KV_DTYPES),
        tp_needs_kv_divisor=False,
        weight_dtypes=tuple(WEIGHT_DTYPES),
        online_weight_dtypes=("fp8", "int4"),
    ),
    "vllm": EngineProfile(
        name="vllm",
        version="0.19 (V1 engine)",
        # vllm/v1/kv_cache_interface.py, vllm/v1/core/kv_cache_utils.py @001cabc (main, 2026).
        paging="blocks of 16 tokens shared by KV-cache groups; cdiv per request; "
        "SWA keeps window-1+chunk tokens +1 block",
        budget_rule="total x gpu_memory_utilization - weights - activation peak - non-torch",
        kv_dtypes=("bf16", "fp16", "fp8", "fp8_e4m3", "fp8_e5m2", "int8_per_token_head", "fp8_per_token_head"),
        # --kv-cache-dtype: auto, fp8, fp8_e4m3, fp8_e5m2; int8/fp8_per_token_head (kv_cache_interface.py
        # get_kv_quant_mode @001cabc). nvfp4 is not modelled.
        kv_dtype_flags={
            "bf16": "auto",
            "fp16": "auto",
            "fp8": "fp8",
            "fp8_e4m3": "fp8_e4m3",
            "fp8_e5m2": "fp8_e5m2",
            "int8_per_token_head": "int8_per_token_head",
            "fp8_per_token_head": "fp8_per_token_head",
        },
        # vllm/model_executor/layers/quantization/__init__.py QUANTIZATION_METHODS (fp8, mxfp4, awq, gptq,
        # compressed-tensors, bitsandbytes, ...); fp8.py Fp8Config: a 16-bit checkpoint with
        # --quantization fp8 is quantized at load (is_checkpoint_fp8_serialized False, dynamic scales).
        online_weight_dtypes=("fp8",),
    ),
    "sglang": EngineProfile(
        name="sglang",
        version="0.4.3 budget / 0.5.x mem_fraction_static heuristic",
        # python/sglang/srt/model_executor/model_runner.py profile_max_num_token; page_size 1 default.
        paging="token slots (page 1); pool = rest / cell_size over all layers",
        budget_rule="free memory at start x mem_fraction_static - weights",
        kv_dtypes=("bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "fp8"),
        # server_args.py --kv-cache-dtype choices: auto, fp8_e5m2, fp8_e4m3.
        kv_dtype_flags={
            "bf16": "auto",
            "fp16": "auto",
            "fp8": "fp8_e4m3",
            "fp8_e4m3": "fp8_e4m3",
            "fp8_e5m2": "fp8_e5m2",
        },
        # python/sglang/srt/layers/quantization/__init__.py BASE_QUANTIZATION_METHODS; --quantization fp8
        # on a 16-bit checkpoint quantizes at load (fp8.py Fp8Config is_checkpoint_fp8_serialized False).
        online_weight_dtypes=("fp8",),
    ),
    "trtllm": EngineProfile(
        name="trtllm",
        version="0.20+ (LLM API, PyTorch backend)",
        # docs/source/reference/memory.md; KvCacheConfig.free_gpu_memory_fraction default 0.9.
        paging="blocks of tokens_per_block (32) per request",
        budget_rule="free memory after load and activations x free_gpu_memory_fraction (0.9)",
        kv_dtypes=("bf16", "fp16", "fp8", "int8"),
        kv_dtype_flags={"bf16": "auto", "fp16": "auto", "fp8": "fp8", "int8": "int8"},
        # tensorrt_llm/quantization/mode.py QuantAlgo (FP8, FP8_BLOCK_SCALES, W4A16_AWQ, W4A16_GPTQ,
        # W4A8_MXFP4_FP8, ...) read from pre-quantized (ModelOpt / HF) checkpoints; no online quantization.
        weight_dtypes=("bf16", "fp16", "fp8", "int8", "int4", "mxfp4"),
    ),
    "llamacpp": EngineProfile(
        name="llamacpp",
        version="b6699..b8198 (llama-kv-cache.cpp, llama-kv-cache-iswa.cpp)",
        paging="n_ctx cells (padded to 256) x layers; separate SWA pool of window x seqs + ubatch cells",
        budget_rule="exact buffers: device memory - weights - compute buffer - context",
        kv_dtypes=("fp16", "bf16", "fp32", "q8_0", "q4_0"),
        # common/arg.cpp -ctk/-ctv accepted types (f32, f16, bf16, q8_0, q4_0, ...).
        kv_dtype_flags={"fp16": "f16", "bf16": "bf16", "fp32": "f32", "q8_0": "q8_0", "q4_0": "q4_0"},
        tp_needs_kv_divisor=False,
        supports_tp=False,
        # GGUF tensor types (ggml.h ggml_type: F32, F16, BF16, Q8_0, Q6_K, Q5_K, Q4_K, Q4_0, MXFP4); no fp8
        # type exists, convert_hf_to_gguf.py dequantizes fp8 checkpoints. convert --outtype q8_0 and
        # llama-quantize make the smaller types from a 16-bit GGUF.
        weight_dtypes=("fp32", "fp16", "bf16", "q8_0", "q6_k", "q5_k", "q4_k", "q4_0", "mxfp4"),
        online_weight_dtypes=("q8_0", "q4_k"),
    ),
    "transformers": EngineProfile(
        name="transformers",
        version="5.24.0 (DynamicCache)",
        paging="what DynamicCache keeps (kvplan.transformers_layout): window-1 tokens on SWA layers, fp32 states",
        budget_rule="device memory - weights - activation peak - CUDA context",
        kv_dtypes=("bf16", "fp16", "fp32"),
        kv_dtype_flags={"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"},
        tp_needs_kv_divisor=False,
        supports_tp=False,
        # transformers/quantizers/auto.py: finegrained fp8, mxfp4, awq, gptq, compressed-tensors, bitsandbytes;
        # BitsAndBytesConfig(load_in_4bit / load_in_8bit) quantizes a 16-bit checkpoint at load.
        online_weight_dtypes=("nf4", "int8"),
    ),
}


def get_engine(name: str) -> EngineProfile:
    key = name.strip().lower().replace("-", "").replace(".", "").replace("_", "")
    aliases = {"tensorrtllm": "trtllm", "trt": "trtllm", "llama": "llamacpp", "hf": "transformers"}
    key = aliases.get(key, key)
    if key not in ENGINES:
        hint = did_you_mean(name, list(ENGINES)) or ";"
        raise InvalidInput(f"unknown engine {name!r}{hint} expected one of: {', '.join(ENGINES)}")
    return ENGINES[key]


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
    """Engine flags. ``None`` means the engine's default for this GPU (see :func:`resolve_settings`)."""

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
    cuda_graph_estimate: bool = False  # vLLM >= 0.21: subtract the CUDA graph estimate from the budget
    # MLA: every engine here stores the shared latent; "expanded" models per-head K/V (vLLM with
    # VLLM_MLA_DISABLE=1, SGLang --disable-mla, llama.cpp builds before its MLA support).
    mla: Literal["latent", "expanded"] = "latent"
    overrides: Overrides = field(default_factory=Overrides)


def check_fraction(value: float | None, what: str) -> None:
    if value is not None and not (0 < value <= 1):
        raise InvalidInput(f"invalid {what} {value!r}; expected a fraction in (0, 1], e.g. 0.9")


def check_parallel_for(engine: EngineProfile, spec: ModelSpec, *, tp: int, pp: int) -> None:
    """Engine-specific TP/PP rules on top of :func:`kvplan.memory.check_parallel`."""
    if not engine.supports_tp and (tp > 1 or pp > 1):
        raise InvalidInput(f"engine {engine.name!r} is modelled on one device; got tp={tp}, pp={pp}; use --tp 1 --pp 1")
    if not engine.tp_needs_kv_divisor or tp == 1:
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
                f"{engine.name} requires one or the other"
            )


def check_kv_dtype(engine: EngineProfile, kv_dtype_name: str) -> str:
    name = canonical_dtype(kv_dtype_name)
    if name not in engine.kv_dtypes:
        raise InvalidInput(
            f"engine {engine.name!r} does not store a KV cache in {kv_dtype_name!r}; "
            f"it accepts {', '.join(engine.kv_dtypes)}"
        )
    return name


def check_weights_dtype(engine: EngineProfile, weights_dtype_name: str) -> str:
    name = canonical_dtype(weights_dtype_name)
    if name not in engine.weight_dtypes:
        raise InvalidInput(
            f"engine {engine.name!r} does not load {weights_dtype_name!r} weights; "
            f"it runs {', '.join(engine.weight_dtypes)}"
        )
    return name


# ---- layouts: allocation units per engine ------------------------------------------------------


@dataclass(frozen=True)
class VllmGroup:
    """One vLLM KV-cache group: layers of one type sharing a block table."""

    type: str
    cap: int | None  # window (sliding) or chunk (chunked)
    block_tokens: int
    layers_in_stage: int


@dataclass(frozen=True)
class Layout:
    """How one pipeline stage (one TP rank) turns sequences into allocation units.

    ``unit_bytes`` is the size of one unit (a vLLM block across one layer of every group, a
    TRT-LLM block across the stage's layers, or 1 byte); ``units_for`` gives the units
    ``batch`` sequences of ``length`` tokens take; ``reserved_units`` are held by the engine.
    """

    engine: str
    stage: StagePlan
    unit_bytes: int
    block_tokens: int
    reserved_units: int = 0
    groups: tuple[VllmGroup, ...] = ()
    mnbt: int = 0
    n_ubatch: int = 512
    kv_unified: bool = False
    swa_full: bool = False
    swa_full_tokens_ratio: float | None = None  # SGLang hybrid SWA pool (None: one token pool)

    def pool_units(self, available: int) -> int:
        return max(0, available // self.unit_bytes)

    def sglang_swa_tokens(self, available: int) -> tuple[int, int, int]:
        """SGLang hybrid SWA pool: ``(full-layer tokens, SWA-layer tokens, window)``.

        model_runner.set_num_token_hybrid: the tokens max_total_num_tokens x num_layers are split
        so that swa_tokens = full_tokens x swa_full_tokens_ratio (default 0.8, server_args.py).
        """
        per_token = sum(n * c.bytes_per_token for n, c in self.stage.groups)
        layers = sum(n for n, _ in self.stage.groups)
        swa = sum(n for n, c in self.stage.groups if c.max_tokens is not None)
        window = max(c.max_tokens for _, c in self.stage.groups if c.max_tokens is not None)
        total = (available // per_token // self.block_tokens * self.block_tokens) * layers
        full = int(total / (self.swa_full_tokens_ratio * swa + (layers - swa)))
        return full, int(full * self.swa_full_tokens_ratio), window

    def units_for(self, batch: int, length: int) -> int:
        if self.engine == "vllm":
            return batch * self.blocks_per_request(length)
        if self.engine == "llamacpp":
            return _llamacpp_bytes(self, batch=batch, length=length)
        return batch * _paged_bytes(self.stage, length, block=self.block_tokens)

    def blocks_per_request(self, length: int) -> int:
        """vLLM: blocks one request of ``length`` tokens may hold (kv_cache_utils max_memory_usage_bytes)."""
        return sum(_vllm_group_blocks(g, length, mnbt=self.mnbt) for g in self.groups)

    def fits(self, available: int, *, batch: int, length: int) -> bool:
        if self.swa_full_tokens_ratio is not None:
            full, swa, window = self.sglang_swa_tokens(available)
            return batch * length <= full and batch * min(length, window) <= swa
        return self.units_for(batch, length) + self.reserved_units <= self.pool_units(available)


def _paged_bytes(stage: StagePlan, length: int, *, block: int) -> int:
    """One sequence: each layer holds min(length, cap) tokens rounded up to ``block``, plus state."""
    total = 0
    for n, c in stage.groups:
        held = length if c.max_tokens is None else min(length, c.max_tokens)
        total += n * (c.bytes_per_token * ceil_div(held, block) * block + c.state_bytes)
    return total


def _vllm_group_blocks(g: VllmGroup, length: int, *, mnbt: int) -> int:
    b = g.block_tokens
    if g.type == "recurrent":
        return 1  # MambaSpec, mamba_cache_mode "none": one page per request
    if g.type == "sliding":
        # SlidingWindowSpec: window-1 computed tokens + one scheduled chunk, +1 block for misalignment.
        return ceil_div(min(g.cap - 1 + mnbt, length), b) + 1
    if g.type == "chunked":
        return ceil_div(min(g.cap + mnbt, length), b)  # ChunkedLocalAttentionSpec
    return ceil_div(length, b)  # FullAttentionSpec / MLAAttentionSpec


# llama.cpp pads the cell count of every KV cache to 256 (llama-kv-cache.cpp get_padding; the
# iswa SWA size GGML_PAD(n_swa * n_seq + n_ubatch, 256) matches llamacpp-01/03: 768 and 1024 cells).
LLAMACPP_PAD = 256


@dataclass(frozen=True)
class LlamaCppPool:
    """One llama.cpp cache buffer: ``cells`` per stream x ``streams`` x its layers' bytes per cell."""

    name: str  # "non-SWA", "SWA" or "recurrent"
    cells: int
    streams: int
    layers: int
    bytes: int


def llamacpp_pools(layout: Layout, *, n_ctx: int, n_seq: int) -> list[LlamaCppPool]:
    """The buffers llama.cpp allocates for ``-c n_ctx -np n_seq`` (unified or one stream per sequence).

    llama-context.cpp: a non-unified cache gives each of the n_seq streams n_ctx / n_seq cells;
    llama-kv-cache-iswa.cpp: the SWA cache holds pad(n_swa x (unified ? n_seq : 1) + n_ubatch)
    cells per stream, capped by the full size (builds before the kv_unified option, mid-2025, used
    n_swa x n_seq_max + n_batch); llama-memory-recurrent.cpp: one state per sequence.
    """
    streams = 1 if layout.kv_unified else n_seq
    per_stream = ceil_div(ceil_div(n_ctx, streams), LLAMACPP_PAD) * LLAMACPP_PAD
    pools = []
    for n, c in layout.stage.groups:
        if c.type == "recurrent":
            pools.append(LlamaCppPool("recurrent", n_seq, 1, n, n * n_seq * c.state_bytes))
            continue
        cells = per_stream
        name = "non-SWA"
        if c.max_tokens is not None and not layout.swa_full:
            seqs = n_seq if layout.kv_unified else 1
            cells = min(per_stream, ceil_div(c.max_tokens * seqs + layout.n_ubatch, LLAMACPP_PAD) * LLAMACPP_PAD)
            name = "SWA"
        pools.append(LlamaCppPool(name, cells, streams, n, n * c.bytes_per_token * cells * streams))
    return pools


def _llamacpp_bytes(layout: Layout, *, batch: int, length: int) -> int:
    """``batch`` sequences of ``length`` tokens: llama-server -c batch x length -np batch."""
    return sum(p.bytes for p in llamacpp_pools(layout, n_ctx=batch * length, n_seq=batch))


def _llamacpp_stage(spec: ModelSpec, plan: CachePlan) -> StagePlan:
    """llama.cpp keeps recurrent states (r, s) in f32 (llama-memory-recurrent.cpp type_r/type_s = F32)."""
    groups = []
    for n, c in plan.stages[0].groups:
        if c.type == "recurrent":
            conv, ssm = recurrent_state_elements(spec.kind(c.kind))
            c = LayerCache(c.kind, c.type, 0, None, 4 * (conv + ssm))
        groups.append((n, c))
    return StagePlan(tuple(groups))


# Blackwell GPUs on which vLLM picks CUTLASS_MLA for MLA models (vllm/platforms/cuda.py; default on
# SM100 since PR #22738, Aug 2025), which forces 128-token blocks.
BLACKWELL = frozenset({"b200", "gb200"})


def vllm_default_block_size(plan: CachePlan, gpu_name: str | None = None) -> int:
    """vLLM's block size: 16 by default (vllm/config/cache.py), 128 for MLA on Blackwell.

    MLA on Hopper logged 16 tokens per block (engine_logs.json vllm-11, vllm-21: tokens = 16 x
    blocks); FlashMLA forces 64 when selected: pass --block-size for other backends.
    """
    if gpu_name in BLACKWELL and any(c.type == "mla" for c in plan.layers):
        return 128
    return 16


def _vllm_groups(
    spec: ModelSpec, plan: CachePlan, *, block: int, stage_index: int
) -> tuple[tuple[VllmGroup, ...], int]:
    """KV-cache groups of the whole model projected on one stage, and the unified page size per layer.

    kv_cache_utils.get_kv_cache_groups: one group when every layer has the same spec or needs the
    same token slots (UniformTypeKVCacheSpecs); otherwise layers are grouped by spec, each spec's
    layers split into cdiv(n, group_size) groups (layers[i::num_groups]), with group_size the
    smallest layer count (the largest when max < 1.5 x min), and page sizes unified.
    """
    from kvplan.params import pipeline_stages

    caches = plan.layers
    # Layers that store nothing get no pages: attention-free layers have no attention module, and a
    # KV-sharing layer (vLLM Attention(kv_sharing_target_layer_name=...), vllm/attention/layer.py;
    # the backends' do_kv_cache_update return early for it) reads its target layer's cache and has
    # none of its own. Assumption from those files: the runner gives it no KV-cache spec.
    storing = [i for i, c in enumerate(caches) if c.bytes_per_token or c.state_bytes]
    attn = [caches[i] for i in storing if caches[i].type != "recurrent"]
    recurrent = [caches[i] for i in storing if caches[i].type == "recurrent"]
    block = _hybrid_block_size(attn, recurrent, block)
    keys: dict[tuple, list[int]] = {}
    for i in storing:
        c = caches[i]
        key = (c.type, c.max_tokens, c.bytes_per_token, c.state_bytes)
        keys.setdefault(key, []).append(i)
    stage_layers = set(pipeline_stages(spec.num_layers, plan.pp)[stage_index])
    token_slots = {(k[0] if k[0] in ("full", "mla") else k[0], k[1]) for k in keys}
    if len(keys) == 1 or (not recurrent and len(token_slots) == 1):
        # Uniform spec or uniform type: one group, page = the stage's layers side by side.
        layers = [i for i in storing if i in stage_layers]
        first = caches[storing[0]]
        page = sum(caches[i].bytes_per_token * block + caches[i].state_bytes for i in layers)
        return (VllmGroup(first.type, first.max_tokens, block, 1),), page
    pages = {key: (key[2] * block if key[0] != "recurrent" else 0) for key in keys}
    unit = max(pages.values()) if any(pages.values()) else 0
    counts = [len(v) for v in keys.values()]
    group_size = min(counts)
    if max(counts) < 1.5 * min(counts):
        group_size = max(counts)
    groups = []
    for key, idx in keys.items():
        ratio = 1 if key[0] == "recurrent" or pages[key] == unit else _page_ratio(pages[key], unit)
        num = ceil_div(len(idx), group_size)
        for g in range(num):
            members = idx[g::num]
            groups.append(VllmGroup(key[0], key[1], block * ratio, sum(1 for i in members if i in stage_layers)))
    group_layers = max(g.layers_in_stage for g in groups)
    if recurrent:
        unit = max(unit, max(c.state_bytes for c in recurrent))
    return tuple(groups), unit * max(group_layers, 1)


def _page_ratio(page: int, unit: int) -> int:
    if unit % page:
        # kv_cache_utils.unify_kv_cache_spec_page_size raises NotImplementedError here.
        raise InvalidInput("vLLM cannot unify this model's page sizes (a page size does not divide the largest)")
    return unit // page


def _hybrid_block_size(attn: list[LayerCache], recurrent: list[LayerCache], block: int) -> int:
    """vllm/platforms/interface.py (_align_hybrid_block_size): with Mamba-like layers, grow the
    attention block until one attention page holds one state page (FlashAttention kernel
    alignment 16); the state page is then padded up to the attention page."""
    if not recurrent or not attn:
        return block
    align = max(16, block)
    per_token = attn[0].bytes_per_token
    state = max(c.state_bytes for c in recurrent)
    return align * ceil_div(state, align * per_token)


def engine_layout(
    engine: EngineProfile,
    spec: ModelSpec,
    *,
    plan: CachePlan,
    settings: Settings,
    stage_index: int = 0,
    max_num_batched_tokens: int = 8192,
    gpu_name: str | None = None,
) -> Layout:
    """The allocation units of ``engine`` for one pipeline stage of ``plan``."""
    stage = plan.stages[stage_index]
    if engine.name == "vllm":
        block = settings.block_size or vllm_default_block_size(plan, gpu_name)
        groups, unit = _vllm_groups(spec, plan, block=block, stage_index=stage_index)
        # vllm/v1/core/block_pool.py: block 0 is the null block, never handed to a request.
        return Layout("vllm", stage, unit, block, 1, groups, max_num_batched_tokens)
    if engine.name == "trtllm":
        return Layout("trtllm", stage, 1, settings.block_size or TRTLLM_TOKENS_PER_BLOCK)
    if engine.name == "sglang":
        kinds = {c.type for _, c in stage.groups}
        hybrid = "sliding" in kinds and kinds & {"full"} and not kinds & {"mla", "recurrent", "chunked"}
        ratio = settings.swa_full_tokens_ratio or SGLANG_SWA_FULL_TOKENS_RATIO
        ratio = ratio if hybrid and not settings.swa_full else None
        return Layout("sglang", stage, 1, settings.block_size or 1, swa_full_tokens_ratio=ratio)
    if engine.name == "llamacpp":
        return Layout(
            "llamacpp",
            _llamacpp_stage(spec, plan),
            1,
            1,
            n_ubatch=settings.n_ubatch,
            kv_unified=settings.kv_unified,
            swa_full=settings.swa_full,
        )
    return Layout(engine.name, stage, 1, 1)


# trtllm-build --tokens_per_block default (TensorRT-LLM >= 0.10 build docs); older builds used 64.
TRTLLM_TOKENS_PER_BLOCK = 32


def plan_for(
    engine: EngineProfile, spec: ModelSpec, *, kv_dtype_name: str, tp: int, pp: int, mla: str = "latent"
) -> CachePlan:
    """The cache plan the engine stores: transformers' own rules, expanded MLA nowhere (all
    four serving engines keep the latent; SGLang/vLLM MLA backends, llama.cpp since its MLA support)."""
    if engine.name == "transformers":
        from kvplan.transformers_layout import transformers_cache_plan

        return transformers_cache_plan(spec, kv_dtype_name)
    _check_indexer(engine, spec)
    if kv_dtype_name in VLLM_PER_TOKEN_HEAD:
        plan = cache_plan(spec, VLLM_PER_TOKEN_HEAD[kv_dtype_name], tp=tp, pp=pp, mla=mla)
        return _with_head_scales(spec, plan, tp=tp)
    plan = cache_plan(spec, kv_dtype_name, tp=tp, pp=pp, mla=mla)
    return _vllm_indexer(spec, plan) if engine.name == "vllm" else plan


# Engines with a DSA indexer-cache layout in kvplan (the ideal layout keeps it at the KV dtype).
_INDEXER_ENGINES = ("ideal", "vllm")


def _check_indexer(engine: EngineProfile, spec: ModelSpec) -> None:
    """Layer kinds issue 9 added, refused by the engines whose source kvplan has not read for them."""
    kinds = spec.layers.kinds.values()
    if engine.name not in _INDEXER_ENGINES and any(k.index_head_dim for k in kinds):
        raise InvalidInput(
            f"{spec.name} keeps a sparse-attention indexer key cache (index_head_dim); kvplan has no {engine.name} "
            f"layout for it yet; use --engine {', '.join(_INDEXER_ENGINES)} or transformers"
        )
    if engine.name not in _INDEXER_ENGINES and any(k.kv_shared or k.type == "none" for k in kinds):
        raise InvalidInput(
            f"{spec.name} has layers that store no KV (KV shared with an earlier layer, or no attention); kvplan "
            f"has no {engine.name} layout for them yet; use --engine {', '.join(_INDEXER_ENGINES)} or transformers"
        )


# vLLM vllm/model_executor/models/deepseek_v2.py (DeepseekV32IndexerCache, Indexer.__init__): the indexer
# key cache is a separate one-head MLAAttentionSpec layer of uint8, head_size = index_head_dim +
# index_head_dim // quant_block_size * 4: fp8 values plus one float32 scale per 128 (quant_block_size)
# values, whatever --kv-cache-dtype says; 132 bytes per token for DeepSeek-V3.2 (index_head_dim 128).
# Simplification: kvplan adds it to its MLA layer's bytes per token instead of a page group of its own.
VLLM_INDEXER_QUANT_BLOCK = 128


def _vllm_indexer_bytes(index_head_dim: int) -> int:
    return index_head_dim + index_head_dim // VLLM_INDEXER_QUANT_BLOCK * SCALE_BYTES


def _vllm_indexer(spec: ModelSpec, plan: CachePlan) -> CachePlan:
    def stored(c: LayerCache) -> LayerCache:
        kind = spec.kind(c.kind)
        if not kind.index_head_dim:
            return c
        ideal = indexer_token_bytes(kind, element_size(plan.kv_dtype))
        return replace(c, bytes_per_token=c.bytes_per_token - ideal + _vllm_indexer_bytes(kind.index_head_dim))

    if not any(k.index_head_dim for k in spec.layers.kinds.values()):
        return plan
    stages = tuple(StagePlan(tuple((n, stored(c)) for n, c in st.groups)) for st in plan.stages)
    return replace(plan, layers=tuple(stored(c) for c in plan.layers), stages=stages)


# vLLM KVQuantMode INT8/FP8_PER_TOKEN_HEAD (kv_cache_interface.py @001cabc): 1-byte values plus
# one float32 scale per token, per KV head, for K and for V, carved from the same pages:
# page += 2 x block_size x num_kv_heads x 4 bytes.
VLLM_PER_TOKEN_HEAD = {"int8_per_token_head": "int8", "fp8_per_token_head": "fp8"}
SCALE_BYTES = 4  # float32 scale


def _with_head_scales(spec: ModelSpec, plan: CachePlan, *, tp: int) -> CachePlan:
    def scaled(c: LayerCache) -> LayerCache:
        if c.type in ("recurrent", "mla"):
            return c
        heads = max(1, spec.kv_heads_of(spec.kind(c.kind)) // tp)
        return replace(c, bytes_per_token=c.bytes_per_token + 2 * heads * SCALE_BYTES)

    stages = tuple(StagePlan(tuple((n, scaled(c)) for n, c in st.groups)) for st in plan.stages)
    return replace(plan, layers=tuple(scaled(c) for c in plan.layers), stages=stages)


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


# --- vLLM 0.19 non-KV model, calibrated on engine_logs.json vllm-15 (Llama-3.1-8B) and vllm-19
# (gemma-2-9b), checked on vllm-17/21/23/25/27 (all H100, max_num_batched_tokens 8192, 1024 seqs).
# The profile run (gpu_model_runner.profile_run) runs max_num_batched_tokens tokens spread over
# R = min(max_num_seqs, tokens) dummy requests, then a dummy sampler pass on R rows of logits.
VLLM_LOGIT_BYTES = 14.56  # per (row x vocab) element: fp32 logits + ~2.6 fp32-sized sampler buffers (fit)
VLLM_HIDDEN_BYTES = 3.48  # per (token x hidden) element: bf16 residual / hidden buffers (fit)
# fused_moe intermediates: tokens x top_k x (2 x N/tp + hidden) in 16 bit (fit to vllm-21, vllm-25).
VLLM_MOE_BYTES = 2
# Non-torch memory the profiler charges: 0.24-0.27 GiB at TP=1, 2.07 GiB at TP=2 (NCCL + custom
# all-reduce buffers) in vLLM 0.19 on H100 (vllm-15..27 "Actual usage" lines).
VLLM_NON_TORCH_TP1 = round(0.25 * GIB)
VLLM_NON_TORCH_TP = round(2.07 * GIB)
# CUDA graphs (captured after sizing; subtracted only with VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS,
# the default from v0.21): 0.87-1.09 GiB dense, 1.41-1.57 GiB MoE on H100 in 0.19. Linear fit on
# the dense logs (28 layers 0.87, 32 0.91, 42 1.09 GiB): 0.43 GiB + 0.0157 GiB per layer.
VLLM_GRAPH_BASE = round(0.43 * GIB)
VLLM_GRAPH_PER_LAYER = round(0.0157 * GIB)
VLLM_GRAPH_MOE_EXTRA = round(0.5 * GIB)  # MoE logs sit ~0.5 GiB above the dense line


def vllm_defaults(gpu_total: int) -> tuple[int, int]:
    """``(max_num_batched_tokens, max_num_seqs)`` for `vllm serve`: vllm/engine/arg_utils.py
    get_batch_defaults: >= 70 GiB and not A100: 8192 / 1024; else 2048 / 256."""
    return (8192, 1024) if gpu_total >= 70 * GIB else (2048, 256)


def vllm_activation(spec: ModelSpec, *, tokens: int, seqs: int, tp: int) -> int:
    """Torch peak of the profile run: the larger of the sampler pass and the widest MLP
    intermediate, plus hidden-size buffers and (MoE) the fused-experts intermediates."""
    rows = min(seqs, tokens)
    sampler = VLLM_LOGIT_BYTES * rows * spec.vocab_size
    act = max(sampler, vllm_mlp_peak(spec, tokens=tokens, tp=tp)) + VLLM_HIDDEN_BYTES * tokens * spec.hidden_size
    if spec.moe is not None:
        n = ceil_div(spec.moe.expert_intermediate_size, tp)
        act += VLLM_MOE_BYTES * tokens * spec.moe.experts_per_token * (2 * n + spec.hidden_size)
    return round(act)


def vllm_mlp_peak(spec: ModelSpec, *, tokens: int, tp: int) -> int:
    """Dense MLP transient: the gate_up output [tokens, 2 x I/tp] and the activation output
    [tokens, I/tp], 16 bit. It only matters when the profile batch is long (vLLM V0 profiled
    max(max_model_len, 2048) tokens without chunked prefill)."""
    if spec.intermediate_size is None:
        return 0
    inter = ceil_div(spec.intermediate_size, tp)
    return 2 * tokens * 3 * inter


def vllm_cuda_graph(spec: ModelSpec) -> int:
    extra = VLLM_GRAPH_MOE_EXTRA if spec.moe is not None else 0
    return VLLM_GRAPH_BASE + VLLM_GRAPH_PER_LAYER * spec.num_layers + extra


# --- SGLang ----------------------------------------------------------------------------------------
# Free memory at start = CUDA total - context - NCCL. sglang-03 (H100, TP1): 63.48 + 15.11 = 78.59
# of 79.19 GiB -> 0.60 GiB; sglang-01 (L4, TP4): 21.63 GiB free of ~22.04 -> ~0.41 GiB more at TP4.
SGLANG_CONTEXT = round(0.60 * GIB)
SGLANG_NCCL = round(0.41 * GIB)


def sglang_mem_fraction(gpu_total_mib: int, *, tp: int, pp: int, chunked_prefill: int | None) -> float:
    """server_args.py _handle_gpu_memory_settings (SGLang 0.5.x): chunked_prefill_size and
    cuda_graph_max_bs by GPU memory tier, then reserved MiB = 512 + 1.5 x max(chunk, 2048)
    + 2 x cuda_graph_max_bs + 1024 x tp x pp / 8 (at least 10 GiB above 60 GiB)."""
    chunk, graph_bs = _sglang_tier(gpu_total_mib, tp=tp)
    chunk = chunked_prefill or chunk
    reserved = 512 + max(chunk, 2048) * 1.5 + graph_bs * 2 + tp * pp / 8 * 1024
    if gpu_total_mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    return round((gpu_total_mib - reserved) / gpu_total_mib, 3)


def _sglang_tier(mib: int, *, tp: int) -> tuple[int, int]:
    if mib < 20 * 1024:
        return 2048, 8  # T4, 4080
    if mib < 35 * 1024:
        return 2048, 24 if tp < 4 else 80  # A10, 4090, L4
    if mib < 60 * 1024:
        return 4096, 32 if tp < 4 else 160  # A100-40GB, L40S
    if mib < 160 * 1024:
        return 8192, 256 if tp < 4 else 512  # H100, H200
    return 16384, 512  # B200, MI300X


# server_args.py swa_full_tokens_ratio default (SGLang 0.5.x): SWA-layer tokens per full-layer token.
SGLANG_SWA_FULL_TOKENS_RATIO = 0.8

# --- TensorRT-LLM -------------------------------------------------------------------------------
TRTLLM_FREE_FRACTION = 0.9  # llmapi KvCacheConfig.free_gpu_memory_fraction default (landscape.md 2.3)
TRTLLM_CONTEXT = round(0.5 * GIB)  # CUDA context + cuBLAS workspace; gpus.md: ~300-600 MiB per process

# --- llama.cpp ----------------------------------------------------------------------------------
LLAMACPP_CONTEXT = round(0.3 * GIB)  # CUDA context (gpus.md: ~300 MiB with lazy loading)

# --- transformers ---------------------------------------------------------------------------------
TRANSFORMERS_CONTEXT = round(0.5 * GIB)  # gpus.md: CUDA context ~300-600 MiB per process


def budget(
    engine: EngineProfile,
    spec: ModelSpec,
    *,
    gpu: GPU,
    settings: Settings,
    weights_dtype: str,
    tp: int,
    pp: int,
    stage_index: int = 0,
    stage_weights: list[int] | None = None,
) -> Budget:
    """Bytes per GPU of one pipeline stage, term by term, under the engine's budget rule.

    ``stage_weights`` (bytes per stage) can be passed in when the caller already has them.
    """
    o = settings.overrides
    total = usable_memory_bytes(gpu, o.device_memory_bytes)
    if stage_weights is None:
        stage_weights = weight_bytes_per_stage(spec, weights_dtype, tp=tp, pp=pp)
    weights = stage_weights[stage_index]
    if engine.name == "vllm":
        return _vllm_budget(spec, settings, total=total, weights=weights, tp=tp, pp=pp)
    if engine.name == "sglang":
        return _sglang_budget(settings, total=total, weights=weights, tp=tp, pp=pp)
    if engine.name == "trtllm":
        return _trtllm_budget(spec, settings, total=total, weights=weights, tp=tp, pp=pp)
    if engine.name == "llamacpp":
        compute = o.activation_bytes if o.activation_bytes is not None else _llamacpp_compute(spec, settings)
        ctx = o.non_torch_bytes if o.non_torch_bytes is not None else LLAMACPP_CONTEXT
        avail = total - weights - compute - ctx - o.overhead_bytes
        return Budget(total, total, weights, compute, ctx, 0, False, o.overhead_bytes, avail, engine.budget_rule)
    if engine.name == "transformers":
        tokens = settings.max_num_batched_tokens or 2048
        act = o.activation_bytes if o.activation_bytes is not None else _forward_activation(spec, tokens)
        ctx = o.non_torch_bytes if o.non_torch_bytes is not None else TRANSFORMERS_CONTEXT
        avail = total - weights - act - ctx - o.overhead_bytes
        return Budget(total, total, weights, act, ctx, 0, False, o.overhead_bytes, avail, engine.budget_rule)
    act = o.activation_bytes or 0
    ctx = o.non_torch_bytes or 0
    avail = total - weights - act - ctx - o.overhead_bytes
    return Budget(total, total, weights, act, ctx, 0, False, o.overhead_bytes, avail, engine.budget_rule)


def _vllm_budget(spec: ModelSpec, settings: Settings, *, total: int, weights: int, tp: int, pp: int) -> Budget:
    o = settings.overrides
    util = settings.gpu_memory_utilization if settings.gpu_memory_utilization is not None else 0.9
    mnbt, seqs = resolved_vllm_batch(settings, total)
    act = o.activation_bytes if o.activation_bytes is not None else vllm_activation(spec, tokens=mnbt, seqs=seqs, tp=tp)
    non_torch = o.non_torch_bytes
    if non_torch is None:
        non_torch = VLLM_NON_TORCH_TP if tp * pp > 1 else VLLM_NON_TORCH_TP1
    graph = o.cuda_graph_bytes if o.cuda_graph_bytes is not None else vllm_cuda_graph(spec)
    share = int(total * util)  # gpu_worker: requested_memory = total x gpu_memory_utilization
    avail = share - weights - act - non_torch - o.overhead_bytes
    if settings.cuda_graph_estimate:
        avail -= graph
    rule = "total x gpu_memory_utilization - weights - activation peak - non-torch"
    if settings.cuda_graph_estimate:
        rule += " - CUDA graphs"
    return Budget(
        total, share, weights, act, non_torch, graph, settings.cuda_graph_estimate, o.overhead_bytes, avail, rule,
        util, "gpu_memory_utilization",
    )  # fmt: skip


def resolved_vllm_batch(settings: Settings, total: int) -> tuple[int, int]:
    mnbt, seqs = vllm_defaults(total)
    return settings.max_num_batched_tokens or mnbt, settings.max_num_seqs or seqs


def _sglang_budget(settings: Settings, *, total: int, weights: int, tp: int, pp: int) -> Budget:
    o = settings.overrides
    ctx = o.non_torch_bytes if o.non_torch_bytes is not None else SGLANG_CONTEXT + (SGLANG_NCCL if tp * pp > 1 else 0)
    free_at_start = total - ctx
    frac = settings.mem_fraction_static
    if frac is None:
        frac = sglang_mem_fraction(total // MIB, tp=tp, pp=pp, chunked_prefill=settings.max_num_batched_tokens)
    share = int(free_at_start * frac)
    # model_runner.profile_max_num_token: rest = free_after_load - free_at_start x (1 - fraction).
    avail = share - weights - o.overhead_bytes
    return Budget(
        total, share, weights, free_at_start - share, ctx, 0, False, o.overhead_bytes, avail,
        "free at start x mem_fraction_static - weights", frac, "mem_fraction_static",
    )  # fmt: skip


def _trtllm_budget(spec: ModelSpec, settings: Settings, *, total: int, weights: int, tp: int, pp: int) -> Budget:
    o = settings.overrides
    frac = settings.free_gpu_memory_fraction or TRTLLM_FREE_FRACTION
    tokens = settings.max_num_batched_tokens or 8192  # llmapi max_num_tokens default 8192
    seqs = settings.max_num_seqs or 2048  # llmapi max_batch_size default 2048
    act = o.activation_bytes if o.activation_bytes is not None else vllm_activation(spec, tokens=tokens, seqs=1, tp=tp)
    ctx = o.non_torch_bytes if o.non_torch_bytes is not None else TRTLLM_CONTEXT + (VLLM_NON_TORCH_TP if tp > 1 else 0)
    free = total - ctx - weights - act - o.overhead_bytes
    share = int(max(free, 0) * frac)
    del seqs
    return Budget(
        total, share, weights, act, ctx, 0, False, o.overhead_bytes, share,
        "(free after load and activations) x free_gpu_memory_fraction", frac, "free_gpu_memory_fraction",
    )  # fmt: skip


def _llamacpp_compute(spec: ModelSpec, settings: Settings) -> int:
    """Compute buffer: the ubatch's fp32 logits over the vocabulary plus hidden-size scratch."""
    return 4 * settings.n_ubatch * (spec.vocab_size + 4 * spec.hidden_size)


def _forward_activation(spec: ModelSpec, tokens: int) -> int:
    """A plain eager forward pass: fp32 logits for every token + the MLP intermediate in 16 bit."""
    inter = spec.intermediate_size or (spec.moe.expert_intermediate_size * spec.moe.experts_per_token)
    return 4 * tokens * spec.vocab_size + 2 * tokens * (3 * inter + 4 * spec.hidden_size)

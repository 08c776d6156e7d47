"""llama.cpp (`llama-server`): n_ctx cells per stream, a separate SWA cache, exact buffers.

Rules read in src/llama-kv-cache.cpp, src/llama-kv-cache-iswa.cpp, src/llama-memory-recurrent.cpp,
src/llama-context.cpp and common/arg.cpp (builds b6699..b8198).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from kvplan.engines.base import Budget, Engine, Layout, LogFacts, Settings, largest, plain_budget, row, spans_view
from kvplan.failures import COMPUTE_ALLOC, CTX_OVER_TRAIN, KV_ALLOC, WEIGHTS_ALLOC, Pattern
from kvplan.hardware import GPU
from kvplan.memory import CachePlan, LayerCache, StagePlan, recurrent_state_elements
from kvplan.params import Sharding
from kvplan.spec import LayerKind, ModelSpec, ceil_div
from kvplan.units import GIB, MAX_CONTEXT, MIB

if TYPE_CHECKING:
    from kvplan.capacity import CapacityResult

# llama.cpp pads the cell count of every KV cache to 256 (llama-kv-cache.cpp get_padding; the
# iswa SWA size GGML_PAD(n_swa * n_seq + n_ubatch, 256) matches llamacpp-01/03: 768 and 1024 cells).
PAD = 256
# Families whose windows llama.cpp does not apply: Mistral 7B v0.1 converts to the LLaMA architecture, whose hparams
# set no sliding window (src/llama-model.cpp ``load_hparams``, ``case LLM_ARCH_LLAMA``: the RMS eps and the model
# type only, no ``swa_type``; the same in the later per-model ``llama_model_llama::load_arch_hparams``; read in copies
# found by search), as the requests for it say (ggml-org/llama.cpp#3371 "Mistral-7B Sliding Window Attention support",
# #3377 "llama : support sliding window attention", closed in 2024 without it for Mistral): every layer caches and
# attends to the whole context.
NO_SWA_FAMILIES = frozenset({"mistral"})
SERVER_AUTO_SLOTS = 4  # tools/server/server.cpp main: params.n_parallel = 4 when -np is left at 1
# ggml/src/ggml-cuda/fattn.cu (ggml-org/llama.cpp @00a2d609) ggml_cuda_flash_attn_ext_mma_f16_switch_ncols2 /
# _switch_ncols1, the tensor-core FlashAttention kernel every GPU kvplan models takes for a decode batch of 2+ tokens
# (ggml_cuda_get_best_fattn_kernel: turing_mma_available): one CUDA block runs ncols1 query tokens x ncols2 query heads
# of one KV head, ncols2 = 8, 4, 2 or 1 for a GQA ratio above 4, 2, 1 or none (the masked, padded cache the server
# builds); ncols1 = the first of 8, 16, 32 (/ ncols2) that holds the batch's tokens, else 64 / ncols2.
FA_BLOCK_WIDTHS = (8, 16, 32)
FA_BLOCK_WIDTH_MAX = 64


def fa_query_columns(gqa_ratio: int, tokens: int) -> int:
    """The query tokens one FlashAttention CUDA block takes (:data:`FA_BLOCK_WIDTHS`' source): each such block streams
    the K/V view of its KV head once."""
    ncols2 = 8 if gqa_ratio > 4 else 4 if gqa_ratio > 2 else 2 if gqa_ratio > 1 else 1
    for width in FA_BLOCK_WIDTHS:
        if tokens <= width // ncols2:
            return max(1, width // ncols2)
    return FA_BLOCK_WIDTH_MAX // ncols2


CONTEXT = round(0.3 * GIB)  # CUDA context (gpus.md: ~300 MiB with lazy loading)


@dataclass(frozen=True)
class LlamaCppPool:
    """One llama.cpp cache buffer: ``cells`` per stream x ``streams`` x its layers' bytes per cell."""

    name: str  # "non-SWA", "SWA" or "recurrent"
    cells: int
    streams: int
    layers: int
    bytes: int


@dataclass(frozen=True)
class LlamaCppLayout(Layout):
    """Bytes of the buffers `llama-server -c batch x length -np batch` allocates (unit: 1 byte)."""

    n_ubatch: int = 512
    kv_unified: bool = False
    swa_full: bool = False
    auto_slots: bool = False  # llama-server turns -np 1 into 4 slots over a unified cache

    def units_for(self, batch: int, length: int) -> int:
        return sum(p.bytes for p in llamacpp_pools(self, n_ctx=batch * length, n_seq=batch))

    def settings(self) -> dict[str, Any]:
        return {"n_ubatch": self.n_ubatch, "kv_unified": self.kv_unified, "swa_full": self.swa_full}

    def max_sequences(self, available: int, length: int) -> int:
        return largest(lambda b: self.fits(available, batch=b, length=length), MAX_CONTEXT)

    def pool_tokens(self, available: int) -> int:
        return largest(lambda n: self.units_for(1, n) <= available, MAX_CONTEXT) // PAD * PAD

    def pool_bytes(self, available: int, *, sequences: int, length: int) -> int:
        if sequences >= 1:
            return self.units_for(sequences, length)  # llama-server -c sequences x length -np sequences
        # Not one sequence fits: the largest pool one sequence can have, the one pool_tokens reports
        # (a pool for the asked length, larger than the budget, beside 0 tokens was shown before).
        tokens = self.pool_tokens(available)
        return self.units_for(1, tokens) if tokens else 0

    def reported_concurrency(self, available: int, length: int) -> float:
        return float(self.max_sequences(available, length))

    def expected_concurrency(self, available: int, lengths: list[int], weights: list[float]) -> float:
        # Every -np slot gets the same cells, so a mix is sized by its longest request.
        return float(self.max_sequences(available, max(lengths)))


def llamacpp_pools(layout: LlamaCppLayout, *, n_ctx: int, n_seq: int, exact: bool = False) -> list[LlamaCppPool]:
    """The buffers llama.cpp allocates for ``-c n_ctx -np n_seq`` (unified or one stream per sequence).

    llama-context.cpp: a non-unified cache gives each of the n_seq streams n_ctx / n_seq cells;
    llama-kv-cache-iswa.cpp: the SWA cache holds pad(n_swa x (unified ? n_seq : 1) + n_ubatch)
    cells per stream, capped by the full size (builds before the kv_unified option, mid-2025, used
    n_swa x n_seq_max + n_batch); llama-memory-recurrent.cpp: one state per sequence.

    tools/server/server.cpp main (builds since llama.cpp PR #16736, e.g. b7342, b8198): when n_parallel is 1
    (the default, -np not given) and the cache is not unified, the server runs 4 slots over one unified
    cache ("setting n_parallel = 4 and kv_unified = true"). ``exact`` takes n_seq and the layout's
    unified flag as given (a log's own figures).
    """
    unified = layout.kv_unified
    if layout.auto_slots and not exact and n_seq == 1 and not unified:
        n_seq, unified = SERVER_AUTO_SLOTS, True
    streams = 1 if unified else n_seq
    per_stream = ceil_div(ceil_div(n_ctx, streams), PAD) * PAD
    pools = []
    for n, c in layout.stage.groups:
        if c.type == "recurrent":
            pools.append(LlamaCppPool("recurrent", n_seq, 1, n, n * n_seq * c.state_bytes))
            continue
        cells = per_stream
        name = "non-SWA"
        if c.max_tokens is not None and not layout.swa_full:
            seqs = n_seq if unified else 1
            cells = min(per_stream, ceil_div(c.max_tokens * seqs + layout.n_ubatch, PAD) * PAD)
            name = "SWA"
        pools.append(LlamaCppPool(name, cells, streams, n, n * c.bytes_per_token * cells * streams))
    return pools


def _unapplied_windows(spec: ModelSpec) -> dict[str, int | None]:
    """Every windowed kind of a :data:`NO_SWA_FAMILIES` model, as full attention; empty for the others."""
    if spec.family not in NO_SWA_FAMILIES:
        return {}
    return {n: None for n, k in spec.layers.kinds.items() if k.type in ("sliding", "chunked")}


def _stage(spec: ModelSpec, plan: CachePlan) -> StagePlan:
    """llama.cpp keeps recurrent states (r, s) in f32 (llama-memory-recurrent.cpp type_r/type_s = F32)."""
    groups = []
    for n, c in plan.stages[0].groups:
        if c.type == "recurrent":
            conv, ssm = recurrent_state_elements(spec.kind(c.kind))
            c = LayerCache(c.kind, c.type, 0, None, 4 * (conv + ssm))
        groups.append((n, c))
    return StagePlan(tuple(groups))


def compute_buffer(spec: ModelSpec, settings: Settings) -> int:
    """Compute buffer: the ubatch's fp32 logits over the vocabulary plus hidden-size scratch."""
    return 4 * settings.n_ubatch * (spec.vocab_size + 4 * spec.hidden_size)


@dataclass(frozen=True)
class LlamaCpp(Engine):
    def ssm_state_dtype(self, spec: ModelSpec, kind: LayerKind, settings: Settings) -> str | None:
        """F32: src/llama-model.cpp llama_model::create_memory builds llama_memory_recurrent (recurrent models) and
        llama_memory_hybrid (hybrids) with type_r = type_s = GGML_TYPE_F32 (read in stored copies through the code
        index), whatever the GGUF's metadata; :func:`_stage` sizes both states so for capacity, and these two rules set
        the states the decode steps read (kvplan.latency)."""
        return "fp32"

    def conv_state_dtype(self, spec: ModelSpec, kind: LayerKind, settings: Settings) -> str | None:
        """F32, as :meth:`ssm_state_dtype` says (type_r, the conv state)."""
        return "fp32"

    def weights_in_log(self, text: str) -> str | None:
        m = re.search(r"file type\s*=\s*([A-Za-z0-9_]+)", text)
        return GGUF_FILE_TYPES.get(m.group(1).lower()) if m else None

    auto_slots: bool = False  # the server's 4 unified slots when -np is not given
    image: str = "ghcr.io/ggml-org/llama.cpp:server-cuda"  # docs/docker.md server image with CUDA
    serve_port: int = 8080  # llama-server --port default (tools/server README)
    listen_flags: tuple[str, ...] = ("--host", "0.0.0.0")  # llama-server --host default 127.0.0.1

    def default_kv_dtype(self, spec: ModelSpec) -> str:
        return "fp16"  # llama.cpp -ctk/-ctv default f16 (common/common.h cache_type_k)

    def cache_plan(self, spec: ModelSpec, *, kv_dtype_name: str, tp: int, pp: int, mla: str = "latent") -> CachePlan:
        """The neutral plan; for a family whose window llama.cpp does not apply (:data:`NO_SWA_FAMILIES`), with every
        layer keeping every token (no SWA cache)."""
        spans = _unapplied_windows(spec)
        return super().cache_plan(spans_view(spec, spans) if spans else spec, kv_dtype_name=kv_dtype_name, tp=tp,
                                  pp=pp, mla=mla)  # fmt: skip

    def attention_spans(self, spec: ModelSpec, settings: Settings) -> dict[str, int | None] | None:
        """llama.cpp applies a window (or a Llama 4 chunk, LLAMA_SWA_TYPE_CHUNKED) as a mask over the cache view it
        hands the attention, not by skipping keys: a ubatch's K/V view covers the cache's ``n_kv`` used cells and the
        KQ mask sets every cell outside the window to -inf (llama-kv-cache.cpp ``set_input_kq_mask`` with
        ``is_masked_swa``). The CUDA FlashAttention kernels trim only the masked cells at the end of the view
        (ggml-cuda/fattn-common.cuh ``flash_attn_mask_to_KV_max`` scans back from the last tile for the last one not
        all -inf; read in copies of that file), so every cell before the window is still read and multiplied.

        * Default (the separate SWA cache, llama-kv-cache-iswa.cpp): a windowed layer's view is at most that cache's
          ``pad(W + n_ubatch, 256)`` cells per sequence (:func:`llamacpp_pools`; W the window or chunk), which it fills
          cyclically as the sequence grows, so a query reaches ``min(L, cells)`` cells.
        * ``--swa-full``: the windowed layers keep every token, and the view, read in full, is the whole context.

        With ``--kv-unified`` one view spans every sequence's cells and each query tile reads all of them: the spans
        here stay per sequence, and :meth:`decode_view_passes` prices the cross-sequence reads of a decode step.

        A family whose window llama.cpp does not apply at all (:data:`NO_SWA_FAMILIES`: Mistral) reads the whole
        context on every layer."""
        unapplied = _unapplied_windows(spec)
        if unapplied:
            return unapplied
        spans: dict[str, int | None] = {}
        for name, kind in spec.layers.kinds.items():
            cap = kind.window if kind.type == "sliding" else kind.chunk if kind.type == "chunked" else None
            if cap is not None:
                spans[name] = None if settings.swa_full else ceil_div(cap + settings.n_ubatch, PAD) * PAD
        return spans or None

    def decode_view_passes(self, spec: ModelSpec, settings: Settings, seqs: float) -> float:
        """With one unified cache (``--kv-unified``) a decode step's attention sees one K/V view over every
        sequence's cells, masked per sequence: ggml-org/llama.cpp PR #14363 ("the unified KV cache ... leads to
        performing a lot of unnecessary computation in the attention when the unified buffer is shared between many
        large independent sequences ... we have to view this buffer continuously"), which added the split streams
        (``kv_unified`` false: each sequence its own view). The CUDA kernel streams that whole view once per block of
        :func:`fa_query_columns` tokens (fattn.cu @00a2d609; ``flash_attn_mask_to_KV_max`` trims only the all-masked
        tail, and the sparse gather of ``flash_attn_mask_to_sparse_indices`` runs only under a per-query key bound
        the graph sets, ``ggml_flash_attn_ext_set_n_kv_max``, on a view of at least max(4,096, 2 x bound) cells: a
        unified cache's mask sets none). So the
        step reads ``ceil(n / columns)`` x what the sequences' own cells hold (1 while the batch fits one block, as
        the server's own 4 unified slots always do, :data:`SERVER_AUTO_SLOTS`: 4 tokens fit one block at every GQA
        ratio). MLA models (the 576-wide kernel path) are not modelled: 1."""
        if not settings.kv_unified or seqs <= 1 or any(k.type == "mla" for k in spec.layers.kinds.values()):
            return 1.0
        tokens = math.ceil(seqs - 1e-9)  # a mean batch from float arithmetic: 8.000000001 sequences is 8 tokens
        return float(math.ceil(tokens / fa_query_columns(spec.num_attention_heads // spec.num_kv_heads, tokens)))

    def layout(
        self, spec: ModelSpec, *, plan: CachePlan, settings: Settings, stage_index: int, gpu: GPU, total: int
    ) -> LlamaCppLayout:
        return LlamaCppLayout(_stage(spec, plan), 1, 1, n_ubatch=settings.n_ubatch, kv_unified=settings.kv_unified,
                              swa_full=settings.swa_full, auto_slots=self.auto_slots)  # fmt: skip

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
        o = settings.overrides
        compute = o.activation_bytes if o.activation_bytes is not None else compute_buffer(spec, settings)
        ctx = o.non_torch_bytes if o.non_torch_bytes is not None else CONTEXT
        return plain_budget(total=total, weights=weights, activation=compute, context=ctx, overhead=o.overhead_bytes,
                            rule=self.budget_rule)  # fmt: skip

    def launch_args(self, r: CapacityResult, *, model: str, sequences: int) -> list[str]:
        """`llama-server` flags (common/arg.cpp)."""
        kv = self.kv_flag(r.kv_dtype)
        # llama-server -c is the total cell count; -np slots split it evenly (non-unified cache).
        gguf = model.split("/")[-1] + ".gguf"  # the GGUF file the user converted or downloaded
        args = ["llama-server", "-m", gguf, "-c", str(sequences * r.context), "-np", str(sequences),
                "-ctk", kv, "-ctv", kv]  # fmt: skip
        # The flags the budget was computed with (compute buffer, cache layout), where not the defaults.
        if r.settings.get("n_ubatch", Settings().n_ubatch) != Settings().n_ubatch:
            args += ["-ub", str(r.settings["n_ubatch"])]
        args += ["--kv-unified"] if r.settings.get("kv_unified") else []
        args += ["--swa-full"] if r.settings.get("swa_full") else []
        return args

    def parse_log(self, text: str) -> LogFacts:
        return parse_log(text)

    def compare_log(self, facts: LogFacts, spec: ModelSpec, gpu: GPU | None, result: Any, *, calc: Any) -> None:
        compare_log(facts, spec, gpu, result, calc=calc, engine=self.name)


# ---- startup log --------------------------------------------------------------------------------

_CACHE_LINE = re.compile(
    r"llama_kv_cache: size = \s*([\d.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers,\s*(\d+)/(\d+) seqs\), "
    r"K \((\w+)\):\s*([\d.]+) MiB, V \((\w+)\):\s*([\d.]+) MiB"
)


def parse_log(text: str) -> LogFacts:
    """Every ``llama_kv_cache: size = ...`` line, in order; a SWA line follows its run's main line."""
    facts = LogFacts("llamacpp")
    for key in ("n_ctx", "n_ubatch", "n_seq_max"):
        m = re.search(key + r"\s*=\s*(\d+)", text)
        if m:
            facts.flags[key] = int(m.group(1))
    m = re.search(r"kv_unified\s*=\s*(true|false)", text)
    if m:
        facts.flags["kv_unified"] = m.group(1) == "true"
    caches = []
    swa_next = False
    for line in text.splitlines():
        if "creating     SWA KV cache" in line or "creating SWA KV cache" in line:
            swa_next = True
        m = _CACHE_LINE.search(line)
        if m:
            caches.append({"swa": swa_next, "mib": float(m.group(1)), "cells": int(m.group(2)),
                           "layers": int(m.group(3)), "seqs": int(m.group(4)), "streams": int(m.group(5)),
                           "type": m.group(6)})  # fmt: skip
            swa_next = False
    facts.flags["caches"] = caches
    facts.figures["kv_mib"] = sum(c["mib"] for c in caches)
    m = re.search(r"general\.name\s+str\s+=\s+(.+)", text)
    if m:
        facts.model = m.group(1).strip()
    return facts


def compare_log(facts: LogFacts, spec: ModelSpec, gpu: GPU | None, result: Any, *, calc: Any, engine: str) -> None:
    """Each logged cache run: kvplan's cells and bytes for the same n_ctx, sequences and type."""
    from kvplan.hardware import resolve_gpu

    rows, total = [], 0
    for i, run in enumerate(_runs(facts.flags.get("caches", [])), 1):
        main = run[0]
        kv = {"f16": "fp16", "f32": "fp32"}.get(main["type"], main["type"])
        unified = main["streams"] == 1 and main["seqs"] > 1 or bool(facts.flags.get("kv_unified"))
        n_seq = main["seqs"]
        n_ctx = main["cells"] * main["streams"]
        settings = Settings(n_ubatch=facts.flags.get("n_ubatch", 512), kv_unified=unified)
        s = calc.setup(spec, gpu or resolve_gpu("h100-sxm"), engine=engine, kv_dtype_name=kv, settings=settings)
        by_name = {p.name: p for p in llamacpp_pools(s.stages[0].layout, n_ctx=n_ctx, n_seq=n_seq, exact=True)}
        for logged in run:
            pool = by_name.get("SWA" if logged["swa"] else "non-SWA")
            if pool is None:
                continue
            tag = f"run {i} {'SWA' if logged['swa'] else 'KV'} ({logged['type']}, {n_seq} seq)"
            rows.append(row(f"{tag} cells", logged["cells"], pool.cells))
            rows.append(row(f"{tag} MiB", logged["mib"], pool.bytes / MIB))
            total += pool.bytes
    result.rows = rows
    result.given = {"kv_bytes": total}


def _runs(caches: list[dict]) -> list[list[dict]]:
    runs: list[list[dict]] = []
    for c in caches:
        if c["swa"] and runs:
            runs[-1].append(c)
        else:
            runs.append([c])
    return runs


# ---- failed starts: the refusals, read in the engine's source ---------------------------------------

FAILURES: tuple[Pattern, ...] = (
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

LOG_FLAG_KEYS = {"context": ("n_ctx_seq",), "max_num_seqs": ("n_seq_max",), "n_ubatch": ("n_ubatch",)}
FAILURE_FLAGS = {"n_ctx_seq": r"n_ctx_(?:seq|per_seq|pre_seq)\s*=\s*(\d+)"}
# print_info "file type = Q4_K - Medium" (src/llama-model-loader.cpp llama_model_ftype_name) -> kvplan names.
GGUF_FILE_TYPES = {"f32": "fp32", "f16": "fp16", "bf16": "bf16", "q8_0": "q8_0", "q6_k": "q6_k", "q5_k": "q5_k",
                   "q4_k": "q4_k", "q4_0": "q4_0", "mxfp4": "mxfp4"}  # fmt: skip


B6699 = LlamaCpp(
    name="llamacpp",
    release="b6699",
    version="b6699 (llama-kv-cache.cpp, llama-kv-cache-iswa.cpp)",
    paging="n_ctx cells (padded to 256) x layers; separate SWA pool of window x seqs + ubatch cells",
    budget_rule="exact buffers: device memory - weights - compute buffer - context",
    kv_dtypes=("fp16", "bf16", "fp32", "q8_0", "q4_0"),
    # common/arg.cpp -ctk/-ctv accepted types (f32, f16, bf16, q8_0, q4_0, ...).
    kv_dtype_flags={"fp16": "f16", "bf16": "bf16", "fp32": "f32", "q8_0": "q8_0", "q4_0": "q4_0"},
    tp_needs_kv_divisor=False,
    supports_tp=False,
    log_markers=("llama_kv_cache", "llama_context", "llama_model_loader"),
    log_needs_gpu=False,  # buffer sizes only: the same on every device
    # GGUF tensor types (ggml.h ggml_type: F32, F16, BF16, Q8_0, Q6_K, Q5_K, Q4_K, Q4_0, MXFP4); no fp8
    # type exists, convert_hf_to_gguf.py dequantizes fp8 checkpoints. convert --outtype q8_0 and
    # llama-quantize make the smaller types from a 16-bit GGUF.
    weight_dtypes=("fp32", "fp16", "bf16", "q8_0", "q6_k", "q5_k", "q4_k", "q4_0", "mxfp4"),
    online_weight_dtypes=("q8_0", "q4_k"),
    failure_patterns=FAILURES,
    failure_markers=("llama_context", "llama_kv_cache", "llama_model_load", "ggml_backend", "llama_new_context"),
    failure_flag_patterns=FAILURE_FLAGS,
    log_flag_keys=LOG_FLAG_KEYS,
    # llama-context.cpp: n_ctx cells split into n_seq_max slots of n_ctx_seq, all allocated at start.
    preallocates_sequences=True,
    settings_read=("n_ubatch", "kv_unified", "swa_full"),
    auto_slots=False,  # llamacpp-01 (build 6699): -np 1 ran one non-unified slot
)
# tools/server/server.cpp main (b8198; builds from b7342 log "setting n_parallel = 4 and kv_unified = true").
B8198 = replace(B6699, release="b8198", version="b8198 (llama-kv-cache.cpp, llama-kv-cache-iswa.cpp, server.cpp)",
                auto_slots=True)  # fmt: skip
VERSIONS = (B6699, B8198)
ENGINE = VERSIONS[-1]

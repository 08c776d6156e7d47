"""vLLM (V1 engine): paged blocks shared by KV-cache groups, a utilization budget, `vllm serve`.

Rules read in vllm/v1/kv_cache_interface.py, vllm/v1/core/kv_cache_utils.py,
vllm/v1/core/block_pool.py, vllm/engine/arg_utils.py and vllm/v1/worker/gpu_worker.py
(@001cabc, main 2026); non-KV terms calibrated on vLLM 0.19 logs (engine_logs.json).

Rule sets: ``vllm@0.8``, ``vllm@0.16`` (read in vLLM 0.16.0's own files: V0_16), ``vllm@0.19`` (the release the
logs in docs/validation.md come from) and ``vllm@0.21``, the newest, whose defaults differ: gpu_memory_utilization 0.92
(vllm/config/cache.py CacheConfig @002f10e), the CUDA-graph estimate subtracted from the budget
(vllm/envs.py VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS "Enabled by default as of v0.21.0") and,
with prefix caching on (the default), Mamba state in 'align' mode: two pages per request
(kv_cache_interface.py MambaSpec.max_memory_usage_bytes @001cabc).
"""

from __future__ import annotations

import ast
import bisect
import contextlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from kvplan.engines.base import (
    FIT_SOURCE,
    NUM,
    Budget,
    Calibration,
    DecodeAttention,
    Engine,
    FrontEnd,
    HostLoop,
    Layout,
    LogFacts,
    MoeKernel,
    Overlap,
    Overrides,
    Settings,
    as_float,
    as_int,
    check_moe_parallel,
    mamba_conv_flag,
    mamba_ssm_flag,
    mla_kv_b_bytes,
    number,
    quantization_flag,
    refuse_cross_attention,
    refuse_fp4_kv_mla,
    refuse_fp4_kv_without_fp4,
    refuse_unread_states,
    release_tuple,
    row,
)
from kvplan.errors import InvalidInput
from kvplan.failures import CUDA_ERROR_OOM, KV_SHORT, NO_KV_MEMORY, NUMBER, STARTUP_FREE, TORCH_OOM, TP_HEADS, Pattern
from kvplan.hardware import GPU
from kvplan.memory import (
    CachePlan,
    LayerCache,
    StagePlan,
    cache_plan,
    dsa_index_key_bytes,
    dsa_latent_row_bytes,
    element_size,
    head_layout,
    indexer_token_bytes,
    with_token_bytes,
)
from kvplan.params import Sharding, pipeline_stages
from kvplan.spec import LayerKind, ModelSpec, ceil_div
from kvplan.units import GIB

if TYPE_CHECKING:
    from kvplan.capacity import CapacityResult


# ---- layout: blocks shared by KV-cache groups ------------------------------------------------------


@dataclass(frozen=True)
class VllmGroup:
    """One vLLM KV-cache group: layers of one type sharing a block table."""

    type: str
    cap: int | None  # window (sliding) or chunk (chunked)
    block_tokens: int
    layers_in_stage: int


@dataclass(frozen=True)
class VllmLayout(Layout):
    """Blocks of one page per group layer; a request holds blocks in every group."""

    groups: tuple[VllmGroup, ...] = ()
    mnbt: int = 8192  # max_num_batched_tokens: the chunk a sliding/chunked group may also hold
    mamba_pages: int = 1  # state pages per request and recurrent group (2 in prefix-caching 'align' mode)

    def units_for(self, batch: int, length: int) -> int:
        return batch * self.blocks_per_request(length)

    def blocks_per_request(self, length: int) -> int:
        """Blocks one request of ``length`` tokens may hold (kv_cache_utils max_memory_usage_bytes):
        the worst case the engine sizes its startup report and its max_model_len check by."""
        return sum(group_blocks(g, length, mnbt=self.mnbt, mamba_pages=self.mamba_pages) for g in self.groups)

    def decode_blocks_per_request(self, length: int) -> int:
        """Blocks a request of ``length`` tokens holds while it decodes: the scheduler frees the blocks
        that leave a window or a finished chunk (single_type_kv_cache_manager.py remove_skipped_blocks)."""
        return sum(decode_blocks(g, length, mamba_pages=self.mamba_pages) for g in self.groups)

    def decode_sequences(self, available: int, length: int) -> int:
        """Requests of ``length`` tokens that decode at once: each holds its decode blocks, and one
        request being prefilled holds its worst case (the admission figure) on top."""
        admit, hold = self.blocks_per_request(length), self.decode_blocks_per_request(length)
        free = self.pool_units(available) - self.reserved_units - (admit - hold)
        return max(0, free) // hold if hold else self.max_sequences(available, length)

    def headroom_bytes(self, available: int, *, sequences: int, length: int) -> int:
        """Pool bytes left with ``sequences`` decoding and one more prefilling (see decode_sequences)."""
        admit, hold = self.blocks_per_request(length), self.decode_blocks_per_request(length)
        used = sequences * hold + (admit - hold) + self.reserved_units
        return (self.pool_units(available) - used) * self.unit_bytes

    def step_units(self, tokens: int, *, chunk: int) -> int:
        """Blocks a request holds once ``tokens`` are computed or scheduled, ``chunk`` of them in this step
        (KVCacheManager.allocate_slots -> single_type_kv_cache_manager.py get_num_blocks_to_allocate after
        remove_skipped_blocks, V1 0.10-0.13): every token's block in a full-attention group, the window's last W - 1
        tokens plus the chunk (+1 block when misaligned) in a sliding one, the current chunk's blocks plus this step's
        in a chunked-local one, the state pages in a recurrent one."""
        return sum(_step_blocks(g, tokens, chunk=chunk, mamba_pages=self.mamba_pages) for g in self.groups)

    def pool_tokens(self, available: int) -> int:
        # kv_cache_utils._report_kv_cache_config: num_blocks // num_groups * min_block_size.
        blocks = self.pool_units(available)
        return blocks // len(self.groups) * min(g.block_tokens for g in self.groups)

    def pool_bytes(self, available: int, *, sequences: int, length: int) -> int:
        return self.pool_units(available) * self.unit_bytes

    def settings(self) -> dict[str, Any]:
        return {"block_size": self.block_tokens}


def group_blocks(g: VllmGroup, length: int, *, mnbt: int, mamba_pages: int = 1) -> int:
    """Blocks of one group for one request at admission (kv_cache_interface.py max_memory_usage_bytes)."""
    b = g.block_tokens
    if g.type == "recurrent":
        return mamba_pages  # MambaSpec: 1 page (mamba_cache_mode "none"), 2 ("align")
    if g.type == "sliding":
        # SlidingWindowSpec: window-1 computed tokens + one scheduled chunk, +1 block for misalignment.
        return ceil_div(min(g.cap - 1 + mnbt, length), b) + 1
    if g.type == "chunked":
        return ceil_div(min(g.cap + mnbt, length), b)  # ChunkedLocalAttentionSpec
    return ceil_div(length, b)  # FullAttentionSpec / MLAAttentionSpec


def _step_blocks(g: VllmGroup, tokens: int, *, chunk: int, mamba_pages: int) -> int:
    """One group's blocks for :meth:`VllmLayout.step_units`."""
    b, whole = g.block_tokens, ceil_div(tokens, g.block_tokens)
    if g.type == "recurrent":
        return mamba_pages
    if g.type == "sliding":
        return min(ceil_div(g.cap - 1 + chunk, b) + 1, whole)
    if g.type == "chunked":
        return min(ceil_div(g.cap + chunk, b), whole)
    return whole


def decode_blocks(g: VllmGroup, length: int, *, mamba_pages: int = 1) -> int:
    """Blocks of one group a decoding request holds in steady state: a sliding window keeps the last
    W - 1 tokens plus the new one, cdiv(W - 1, block) + 1 blocks when misaligned; a chunked group the
    current chunk (chunks are block-aligned); full attention every token."""
    b = g.block_tokens
    if g.type == "recurrent":
        return mamba_pages
    if g.type == "sliding":
        return min(ceil_div(g.cap - 1, b) + 1, ceil_div(length, b))
    if g.type == "chunked":
        return min(ceil_div(g.cap, b), ceil_div(length, b))
    return ceil_div(length, b)


# ---- MLA: the attention backend vLLM runs and the block size it takes ----------------------------
# kvplan's catalog has no compute capability: its architecture stands for the major one (hopper 9.0; blackwell: B200
# and GB200, both 10.0, the only Blackwell GPUs in kvplan/data/gpus.yaml; an SM120 part described by the user as
# blackwell would be taken for 10.0). Other architectures (Ampere, Ada) have no MLA backend of their own here.
COMPUTE_MAJOR = {"hopper": 9, "blackwell": 10}
DEFAULT_BLOCK = 16  # vllm/config/cache.py CacheConfig.DEFAULT_BLOCK_SIZE; cuda.py check_and_update_config sets 16


@dataclass(frozen=True)
class MlaBackend:
    """One of vLLM's dense MLA decode backends, as its class declares it (vllm/v1/attention/backends/mla/*.py):
    compute-capability majors, KV dtypes (kvplan names; None: not read, taken as any), kernel block sizes (a block
    fits when it is a multiple of one, AttentionBackend.supports_block_size) and qk_nope_head_dim values."""

    name: str
    majors: tuple[int, ...] | None  # None: any GPU
    kv_dtypes: frozenset[str] | None
    kernel_blocks: tuple[int, ...]
    nope_dims: tuple[int, ...] | None = None

    def accepts(self, *, major: int | None, kv_dtype: str, nope: int | None, block: int | None) -> bool:
        return (
            (self.majors is None or major in self.majors)
            and (self.kv_dtypes is None or kv_dtype in self.kv_dtypes)
            and (self.nope_dims is None or nope in self.nope_dims)
            and (block is None or any(block % b == 0 for b in self.kernel_blocks))
        )

    def preferred_block(self) -> int:
        """vllm/v1/attention/backend.py AttentionBackend.get_preferred_block_size(DEFAULT_BLOCK_SIZE): 16 where the
        backend takes it, else the smallest kernel block size it supports."""
        return DEFAULT_BLOCK if any(DEFAULT_BLOCK % b == 0 for b in self.kernel_blocks) else min(self.kernel_blocks)


# vllm/v1/attention/backends/mla/flashinfer_mla.py FlashInferMLABackend @002d68ef: supported_kv_cache_dtypes auto,
# float16, bfloat16, fp8, fp8_e4m3; get_supported_kernel_block_sizes [32, 64]; supports_compute_capability major 10;
# supports_combination: qk_nope_head_dim in [64, 128, 192] (the trtllm-gen MLA decode kernel).
FLASHINFER_MLA_KV = frozenset({"bf16", "fp16", "fp8", "fp8_e4m3"})
FLASHINFER_MLA_NOPE = (64, 128, 192)
FLASHINFER_MLA = MlaBackend("FLASHINFER_MLA", (10,), FLASHINFER_MLA_KV, (32, 64), FLASHINFER_MLA_NOPE)
# cutlass_mla.py not read: kernel block 128 from cuda.py check_and_update_config @002db495 ("Forcing kv cache block
# size to 128 for CUTLASS_MLA backend"); its KV dtypes taken as FLASHINFER_MLA's.
CUTLASS_MLA = MlaBackend("CUTLASS_MLA", (10,), FLASHINFER_MLA_KV, (128,))
# flashattn_mla.py FlashAttnMLABackend @00b9b7ad: auto/float16/bfloat16 only ("FlashAttnMLA V1 with FP8 KV cache not
# yet supported"), MultipleOf(16), major 9.
FLASH_ATTN_MLA = MlaBackend("FLASH_ATTN_MLA", (9,), frozenset({"bf16", "fp16"}), (16,))
# flashmla.py FlashMLABackend @01b1d34: auto/fp8/fp8_e4m3, kernel block [64], majors 9 and 10.
FLASHMLA = MlaBackend("FLASHMLA", (9, 10), frozenset({"bf16", "fp16", "fp8", "fp8_e4m3"}), (64,))
# triton_mla.py TritonMLABackend: any compute capability, MultipleOf(16) in newer copies (MultipleOf(1) before the
# kernel block sizes); its KV dtypes changed between copies (auto/bfloat16, later fp8 too): the last resort here.
TRITON_MLA = MlaBackend("TRITON_MLA", None, None, (16,))
# vllm/platforms/cuda.py _get_backend_priorities @002db495 (use_mla; the sparse backends left out).
MLA_PRIORITIES = {
    10: (FLASHINFER_MLA, CUTLASS_MLA, FLASH_ATTN_MLA, FLASHMLA, TRITON_MLA),
    9: (FLASH_ATTN_MLA, FLASHMLA, FLASHINFER_MLA, TRITON_MLA),
}


@dataclass(frozen=True)
class MlaChoice:
    backend: str  # the dense MLA decode backend vLLM runs
    block_tokens: int


def mla_choice(spec: ModelSpec, plan: CachePlan, *, gpu: GPU, block: int | None, selection: str) -> MlaChoice | None:
    """The MLA backend vLLM runs on ``gpu`` and the block size it takes (None for a model without MLA layers).

    ``selection`` is the rule set's (Vllm.mla_selection):

    * ``"flashmla_forced"`` (vLLM 0.8): vllm/platforms/cuda.py CudaPlatformBase.check_and_update_config, 2025 copies
      (removed by vllm-project/vllm#24794, Sep 2025): with MLA and VLLM_ATTENTION_BACKEND unset "we default to
      FlashMLA backend, so we need to force the blocksize": block_size != 64 -> 64 when is_flashmla_supported()
      (vllm/attention/ops/flashmla.py: "FlashMLA is only supported on Hopper devices", capability major 9). A
      --block-size is overridden there. Elsewhere (Blackwell too: CUTLASS MLA became the SM100 default in
      vllm-project/vllm#22738, Aug 2025) get_attn_backend_cls falls to "Using Triton MLA backend on V1 engine" and
      the block size stays 16 or --block-size.
    * ``"block_forced"`` (vLLM 0.16): the block size is forced for the backend the platform expects before any is
      validated (:func:`_mla_choice_block_forced`, vllm/platforms/cuda.py 0.16.0): FLASHINFER_MLA 64 on B200 /
      GB200 for qk_nope_head_dim 128, CUTLASS_MLA 128 for others, 64 on Hopper (FLASH_ATTN_MLA for bf16 KV, FLASHMLA
      for fp8), 64 for sparse models; a --block-size that fits the forced one is kept.
    * ``"backend_preferred"`` (vLLM 0.19, 0.21): since vllm-project/vllm#35122 (Feb 2026) the backend is chosen
      first (the first of MLA_PRIORITIES that accepts the GPU, KV dtype, qk_nope_head_dim and a --block-size if one
      is given) and Platform.update_block_size_for_backend (vllm/platforms/interface.py) sets the block size to the
      backend's get_preferred_block_size(16) unless --block-size was given: FLASHINFER_MLA on B200 / GB200 takes
      32-token blocks, FLASH_ATTN_MLA on Hopper 16 (bf16 KV; fp8 KV goes to FLASHMLA, 64). The older forcing
      (FLASHINFER_MLA 64, CUTLASS_MLA 128, FlashMLA on Hopper 64; cuda.py @002db495) no longer runs: vLLM 0.19.0
      logged 16-token blocks for DeepSeek-V2-Lite on an H100 (engine_logs.json vllm-21: 1,505,552 tokens = 16 x
      94,097 blocks).
      Sparse (DSA indexer) models: 64, the only kernel block size of the indexer's backend (DeepseekV32IndexerBackend
      [64]; the auto-picked size from the first backend fails against it, vllm-project/vllm#48286, #49845) and the
      size older releases forced for FlashMLASparse.
    """
    kinds = [spec.kind(c.kind) for c in plan.layers if c.type == "mla"]
    if not kinds:
        return None
    major = COMPUTE_MAJOR.get(gpu.architecture or "")
    if selection == "flashmla_forced":
        if major == 9:
            return MlaChoice("FLASHMLA", 64)
        return MlaChoice("TRITON_MLA", block or DEFAULT_BLOCK)
    if selection == "block_forced":
        return _mla_choice_block_forced(kinds, plan.kv_dtype, major=major, block=block)
    if any(k.index_head_dim for k in kinds):
        return MlaChoice("sparse MLA", block or 64)
    nope = kinds[0].qk_nope_head_dim
    kv = plan.kv_dtype
    for backend in MLA_PRIORITIES.get(major, (TRITON_MLA,)):
        if backend.accepts(major=major, kv_dtype=kv, nope=nope, block=block):
            return MlaChoice(backend.name, block or backend.preferred_block())
    return MlaChoice(TRITON_MLA.name, block or DEFAULT_BLOCK)


# vLLM 0.16.0 (the PyPI wheel, vllm/_version.py commit g89a77b108), vllm/platforms/cuda.py
# CudaPlatformBase.check_and_update_config: with MLA and no --attention-config.backend the block size is forced for the
# backend the platform expects, before any backend is validated: FLASHINFER_MLA on the compute capability 10 family for
# a dense model with qk_nope_head_dim == 128 (it also sets attention_config.backend to it), "block_size != 32 and
# block_size % 64 != 0" -> 64; CUTLASS_MLA on that family otherwise (not sparse), block_size % 128 != 0 -> 128;
# FlashMLA where is_flashmla_dense_supported() (vllm/v1/attention/ops/flashmla.py: capability family 90 only),
# block_size % 64 != 0 -> 64; a sparse model (hf_config has index_topk) -> 64 whatever was given ("Forcing kv cache
# block size to 64 for FlashMLASparse backend"). A --block-size that already fits the forced one is kept.
BLOCK_FORCED_FLASHINFER_NOPE = 128  # "only if qk_nope_head_dim == 128 (kernel constraint)", cuda.py 0.16.0


def _mla_choice_block_forced(kinds: list, kv_dtype: str, *, major: int | None, block: int | None) -> MlaChoice:
    """:func:`mla_choice` under vLLM 0.16's rule (``selection == "block_forced"``, the source above). On Hopper the
    block is forced for FlashMLA but the backend is then picked by priority (the forcing does not set it):
    FLASH_ATTN_MLA for a 16-bit KV cache (64 is a multiple of its 16), FLASHMLA for fp8."""
    given = block or DEFAULT_BLOCK
    if any(k.index_head_dim for k in kinds):
        return MlaChoice("sparse MLA", 64)
    if major == 10 and kinds[0].qk_nope_head_dim == BLOCK_FORCED_FLASHINFER_NOPE:
        return MlaChoice(FLASHINFER_MLA.name, given if given == 32 or given % 64 == 0 else 64)
    if major == 10:
        return MlaChoice(CUTLASS_MLA.name, given if given % 128 == 0 else 128)
    if major == 9:
        forced = given if given % 64 == 0 else 64
        for backend in MLA_PRIORITIES[9]:
            if backend.accepts(major=major, kv_dtype=kv_dtype, nope=kinds[0].qk_nope_head_dim, block=forced):
                return MlaChoice(backend.name, forced)
        return MlaChoice(TRITON_MLA.name, forced)
    return MlaChoice(TRITON_MLA.name, given)


def block_size(spec: ModelSpec, plan: CachePlan, given: int | None, *, gpu: GPU, selection: str) -> int:
    """The block size vLLM runs with: ``given`` (--block-size) or 16 (vllm/config/cache.py), and for MLA models what
    :func:`mla_choice` says (the backend's preferred size; vLLM 0.8 forces 64 on Hopper over --block-size)."""
    choice = mla_choice(spec, plan, gpu=gpu, block=given, selection=selection)
    return choice.block_tokens if choice is not None else given or DEFAULT_BLOCK


def kv_cache_groups(
    spec: ModelSpec, plan: CachePlan, *, block: int, stage_index: int, hybrid: HybridBlock | None = None
) -> tuple[tuple[VllmGroup, ...], int]:
    """KV-cache groups of the whole model projected on one stage, and the unified page size per layer.

    kv_cache_utils.get_kv_cache_groups: one group when every layer has the same spec or needs the
    same token slots (UniformTypeKVCacheSpecs); otherwise layers are grouped by spec, each spec's
    layers split into cdiv(n, group_size) groups (layers[i::num_groups]), with group_size the
    smallest layer count (the largest when max < 1.5 x min), and page sizes unified.
    """
    owners, caches = _vllm_cache_layers(plan.layers)
    # Layers that store nothing get no pages: attention-free layers have no attention module, and a
    # KV-sharing layer (vLLM Attention(kv_sharing_target_layer_name=...), vllm/attention/layer.py;
    # the backends' do_kv_cache_update return early for it) reads its target layer's cache and has
    # none of its own. Assumption from those files: the runner gives it no KV-cache spec.
    storing = [i for i, c in enumerate(caches) if c.bytes_per_token or c.state_bytes]
    attn = [caches[i] for i in storing if caches[i].type != "recurrent"]
    recurrent = [caches[i] for i in storing if caches[i].type == "recurrent"]
    block = hybrid.block(attn, recurrent, block) if hybrid else _hybrid_block_size(attn, recurrent, block)
    keys: dict[tuple, list[int]] = {}
    for i in storing:
        c = caches[i]
        key = (c.type, c.max_tokens, c.bytes_per_token, c.state_bytes)
        keys.setdefault(key, []).append(i)
    stage_decoder_layers = set(pipeline_stages(spec.num_layers, plan.pp)[stage_index])
    stage_layers = {i for i, owner in enumerate(owners) if owner in stage_decoder_layers}
    token_slots = {(k[0], k[1]) for k in keys}
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


def _vllm_cache_layers(layers: tuple[LayerCache, ...]) -> tuple[list[int], list[LayerCache]]:
    """vLLM's cache layers and the decoder layer each belongs to. A Falcon-H1 decoder layer is two of
    them: vLLM builds its SSM branch as a layer of its own (vllm/model_executor/models/falcon_h1.py,
    FalconH1ParallelHybrid.__init__: ssm_layer_idx = num_hidden_layers + layer_idx, "In V1 all
    attention/ssm layers must have different index in prefix"), so the K/V (an AttentionSpec layer) and
    the Mamba2 state (a MambaSpec layer, get_mamba_state_shape_from_config -> mamba2_state_shape, the
    shapes kvplan's recurrent state already follows) are grouped like Jamba's separate layers."""
    owners, caches = [], []
    for i, c in enumerate(layers):
        if c.type != "recurrent" and c.state_bytes:
            owners += [i, i]
            caches += [replace(c, state_bytes=0), LayerCache(c.kind, "recurrent", 0, None, c.state_bytes)]
        else:
            owners.append(i)
            caches.append(c)
    return owners, caches


def _page_ratio(page: int, unit: int) -> int:
    if unit % page:
        # kv_cache_utils.unify_kv_cache_spec_page_size raises NotImplementedError here.
        raise InvalidInput("vLLM cannot unify this model's page sizes (a page size does not divide the largest)")
    return unit // page


@dataclass(frozen=True)
class HybridBlock:
    """vLLM 0.16.0's attention block for hybrid (attention + Mamba) models, vllm/model_executor/models/config.py
    HybridAttentionMambaModelConfig.verify_and_update_config with mamba_cache_mode "none" (prefix caching off, the
    default for hybrid models there): the smallest multiple of the kernel alignment whose attention page holds one
    Mamba state page, ``kernel_align x cdiv(mamba_page, kernel_align x attn_page_1_token)``; a --block-size is kept
    when it is at least that ("if cache_config.block_size is None or cache_config.block_size < attn_block_size").
    The alignment is 16 (FlashAttention), 32 on the compute capability 10 family for head size 256 with FlashInfer,
    the default backend there ("head size 256 and block size 16 is not supported on blackwell", flashinfer#1993)."""

    given: int | None
    kernel_align: int

    def block(self, attn: list[LayerCache], recurrent: list[LayerCache], block: int) -> int:
        """The hybrid model's attention block; ``block`` (:func:`block_size`'s) for any other model."""
        if not recurrent or not attn:
            return block
        state = max(c.state_bytes for c in recurrent)
        needed = self.kernel_align * ceil_div(state, self.kernel_align * attn[0].bytes_per_token)
        return self.given if self.given is not None and self.given >= needed else needed


HYBRID_ALIGN = 16  # config.py 0.16.0: "FlashAttention (FA) requires block size to be multiple of 16"
HYBRID_ALIGN_BLACKWELL_HEAD_256 = 32  # config.py 0.16.0, is_device_capability_family(100) and head size 256


def hybrid_kernel_align(spec: ModelSpec, gpu: GPU) -> int:
    """The kernel alignment of :class:`HybridBlock` for ``spec`` on ``gpu`` (ModelConfig.get_head_size: the model's
    attention head size; kvplan takes the attention kinds' largest)."""
    heads = {k.head_dim or spec.head_dim or 0 for k in spec.layers.kinds.values() if k.type != "recurrent"}
    blackwell = COMPUTE_MAJOR.get(gpu.architecture or "") == 10
    return HYBRID_ALIGN_BLACKWELL_HEAD_256 if blackwell and max(heads, default=0) == 256 else HYBRID_ALIGN


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


# vLLM KVQuantMode INT8/FP8_PER_TOKEN_HEAD (kv_cache_interface.py @001cabc): 1-byte values plus
# one float32 scale per token, per KV head, for K and for V, carved from the same pages:
# page += 2 x block_size x num_kv_heads x 4 bytes.
PER_TOKEN_HEAD = {"int8_per_token_head": "int8", "fp8_per_token_head": "fp8"}
SCALE_BYTES = 4  # float32 scale


# vLLM --kv-cache-dtype nvfp4 (config/cache.py CacheDType @002f10e; KVQuantMode.NVFP4 "packed fp4 data + fp8 block
# scales", kv_cache_interface.py get_kv_quant_mode @001cabc): FullAttentionSpec.real_page_size_bytes stores, per
# token and KV head, nvfp4_kv_cache_full_dim(head_size) + nvfp4_kv_cache_full_dim(head_size_v) uint8 bytes, with
# full_dim(h) = h // 2 + h // 16 (E2M1 pairs, then one FP8 E4M3 scale per 16; utils/torch_utils.py @0024350).
# MLAAttentionSpec has no nvfp4 branch there (its page would be 1 byte a value) and nvfp4_ds_mla is a layout of its
# own: kvplan refuses MLA in nvfp4 for vLLM.
NVFP4_BLOCK = 16


def nvfp4_full_dim(head_size: int) -> int:
    """vLLM's packed NVFP4 row for one head: E2M1 pairs, then the FP8 block scales."""
    return head_size // 2 + head_size // NVFP4_BLOCK


def _nvfp4_token_bytes(spec: ModelSpec, c: LayerCache, *, tp: int) -> int:
    geometry = head_layout(spec, c, tp=tp)
    if geometry is None:
        return c.bytes_per_token
    heads, k_dim, v_dim = geometry
    return heads * (nvfp4_full_dim(k_dim) + nvfp4_full_dim(v_dim))


def _with_head_scales(spec: ModelSpec, plan: CachePlan, *, tp: int) -> CachePlan:
    def scaled(c: LayerCache) -> LayerCache:
        if c.type in ("recurrent", "mla"):
            return c
        heads = max(1, spec.kv_heads_of(spec.kind(c.kind)) // tp)
        return replace(c, bytes_per_token=c.bytes_per_token + 2 * heads * SCALE_BYTES)

    stages = tuple(StagePlan(tuple((n, scaled(c)) for n, c in st.groups)) for st in plan.stages)
    return replace(plan, layers=tuple(scaled(c) for c in plan.layers), stages=stages)


# vllm/model_executor/models/deepseek_v2.py (DeepseekV32IndexerCache, Indexer.__init__): the indexer
# key cache is a separate one-head MLAAttentionSpec layer of uint8, head_size = index_head_dim +
# index_head_dim // quant_block_size * 4: fp8 values plus one float32 scale per 128 (quant_block_size)
# values, whatever --kv-cache-dtype says; 132 bytes per token for DeepSeek-V3.2 (kvplan.memory.dsa_index_key_bytes).
# Simplification: kvplan adds it to its MLA layer's bytes per token instead of a page group of its own.
# An fp8 --kv-cache-dtype becomes fp8_ds_mla for DeepSeek-V3.2 (vllm/model_executor/models/config.py
# DeepseekV32ForCausalLM.verify_and_update_config: cache_dtype.startswith("fp8") -> "fp8_ds_mla"), FlashMLA's 656-byte
# latent row (kvplan.memory.dsa_latent_row_bytes; FlashMLASparseBackend.get_kv_cache_shape), not 576 plain fp8 bytes.
def _with_indexer(spec: ModelSpec, plan: CachePlan, *, mla: str = "latent") -> CachePlan:
    if not any(k.index_head_dim for k in spec.layers.kinds.values()):
        return plan
    dtype = element_size(plan.kv_dtype)

    def stored(c: LayerCache) -> LayerCache:
        kind = spec.kind(c.kind)
        if not kind.index_head_dim:
            return c
        ideal = indexer_token_bytes(kind, dtype)
        row = 0
        if kind.type == "mla" and mla == "latent":  # fp8_ds_mla: the sparse kernels' own fp8 row
            row = dsa_latent_row_bytes(kind, dtype) - dtype.nbytes(kind.kv_lora_rank + kind.qk_rope_head_dim)
        return replace(c, bytes_per_token=c.bytes_per_token - ideal + dsa_index_key_bytes(kind) + row)

    stages = tuple(StagePlan(tuple((n, stored(c)) for n, c in st.groups)) for st in plan.stages)
    return replace(plan, layers=tuple(stored(c) for c in plan.layers), stages=stages)


# ---- budget: total x gpu_memory_utilization - profiled terms ---------------------------------------

# vLLM 0.19 non-KV model, calibrated on engine_logs.json vllm-15 (Llama-3.1-8B) and vllm-19
# (gemma-2-9b), checked on vllm-17/21/23/25/27 (all H100, max_num_batched_tokens 8192, 1024 seqs).
# The profile run (gpu_model_runner.profile_run) runs max_num_batched_tokens tokens spread over
# R = min(max_num_seqs, tokens) dummy requests, then a dummy sampler pass on R rows of logits.
LOGIT_BYTES = 14.56  # per (row x vocab) element: fp32 logits + ~2.6 fp32-sized sampler buffers (fit)
HIDDEN_BYTES = 3.48  # per (token x hidden) element: bf16 residual / hidden buffers (fit)
# fused_moe intermediates: tokens x top_k x (2 x N/tp + hidden) in 16 bit (fit to vllm-21, vllm-25).
MOE_BYTES = 2
# Non-torch memory the profiler charges: 0.24-0.27 GiB at TP=1, 2.07 GiB at TP=2 (NCCL + custom
# all-reduce buffers) in vLLM 0.19 on H100 (vllm-15..27 "Actual usage" lines).
NON_TORCH_TP1 = round(0.25 * GIB)
NON_TORCH_TP = round(2.07 * GIB)
# CUDA graphs (captured after sizing; subtracted only with VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS,
# the default from v0.21): 0.87-1.09 GiB dense, 1.41-1.57 GiB MoE on H100 in 0.19. Linear fit on
# the dense logs (28 layers 0.87, 32 0.91, 42 1.09 GiB): 0.43 GiB + 0.0157 GiB per layer.
GRAPH_BASE = round(0.43 * GIB)
GRAPH_PER_LAYER = round(0.0157 * GIB)
GRAPH_MOE_EXTRA = round(0.5 * GIB)  # MoE logs sit ~0.5 GiB above the dense line


def batch_defaults(gpu_total: int, gpu: GPU | None = None, *, a100_exception: bool = True) -> tuple[int, int]:
    """``(max_num_batched_tokens, max_num_seqs)`` for `vllm serve` (OPENAI_API_SERVER usage context):
    vllm/engine/arg_utils.py EngineArgs.get_batch_defaults (0.19 and main @99d7eb5): >= 70 GiB and
    "a100" not in the device name (PR #17885: large batches cost A100 throughput): 8192 / 1024;
    else 2048 / 256."""
    a100 = a100_exception and gpu is not None and "a100" in f"{gpu.name} {gpu.display_name}".lower()
    return (8192, 1024) if gpu_total >= 70 * GIB and not a100 else (2048, 256)


def activation(spec: ModelSpec, *, tokens: int, seqs: int, tp: int) -> int:
    """Torch peak of the profile run: the larger of the sampler pass and the widest MLP
    intermediate, plus hidden-size buffers and (MoE) the fused-experts intermediates."""
    rows = min(seqs, tokens)
    sampler = LOGIT_BYTES * rows * spec.vocab_size
    act = max(sampler, mlp_peak(spec, tokens=tokens, tp=tp)) + HIDDEN_BYTES * tokens * spec.hidden_size
    if spec.moe is not None:
        n = ceil_div(spec.moe.expert_intermediate_size, tp)
        act += MOE_BYTES * tokens * spec.moe.experts_per_token * (2 * n + spec.hidden_size)
    return round(act)


def mlp_peak(spec: ModelSpec, *, tokens: int, tp: int) -> int:
    """Dense MLP transient: the gate_up output [tokens, 2 x I/tp] and the activation output
    [tokens, I/tp], 16 bit. It only matters when the profile batch is long (vLLM V0 profiled
    max(max_model_len, 2048) tokens without chunked prefill)."""
    if spec.intermediate_size is None:
        return 0
    inter = ceil_div(spec.intermediate_size, tp)
    return 2 * tokens * 3 * inter


def cuda_graph(spec: ModelSpec) -> int:
    extra = GRAPH_MOE_EXTRA if spec.moe is not None else 0
    return GRAPH_BASE + GRAPH_PER_LAYER * spec.num_layers + extra


# vllm/config/vllm.py VllmConfig._set_cudagraph_sizes (0.16.0): max_cudagraph_capture_size defaults to
# min(max_num_seqs x 2, 512) (decode query length 1), then at most max_num_batched_tokens; the sizes are [1, 2, 4],
# every 8 from 8 below 256, every 16 from 256 up to the max (compilation_config.cudagraph_capture_sizes replaces them;
# a model may raise the max: gpt-oss, below).
GRAPH_CAPTURE_MAX = 512
# vllm/model_executor/models/config.py GptOssForCausalLMConfig.verify_and_update_config (0.16.0, 0.19.0, 0.21.0 wheels):
# "Increase the max capture size from 512 to 1024 for performance", only where the user set neither
# cudagraph_capture_sizes nor max_cudagraph_capture_size; set before _set_cudagraph_sizes, so not min'ed with
# 2 x max_num_seqs there (only with max_num_batched_tokens). GptOss came after 0.8 (no such class in 0.8.5).
GRAPH_CAPTURE_MAX_FAMILIES = {"gpt_oss": 1024}
# vllm/config.py VllmConfig._set_cudagraph_sizes (0.8.5 wheel, V1 branch): [1, 2, 4] + range(8, 513, 8), filtered to
# <= max_num_batched_tokens; max_num_seqs does not bound it there.
GRAPH_CAPTURE_MAX_0_8 = 512


def max_capture_size(settings: Settings, *, spec: ModelSpec | None = None, rule: str = "seqs") -> int:
    """The largest step (tokens on a rank) vLLM replays as a CUDA graph: ``rule`` "seqs" (0.16, 0.19, 0.21; the source
    above :data:`GRAPH_CAPTURE_MAX`): ``min(2 x max_num_seqs, 512)``, gpt-oss 1024 (:data:`GRAPH_CAPTURE_MAX_FAMILIES`);
    "fixed" (0.8.5): 512. Both at most ``max_num_batched_tokens``; the largest of ``--cuda-graph-batch-sizes`` where
    given (compilation_config.cudagraph_capture_sizes, kept up to max_num_batched_tokens in both)."""
    budget = settings.max_num_batched_tokens
    if settings.cuda_graph_batch_sizes:
        kept = [n for n in settings.cuda_graph_batch_sizes if budget is None or n <= budget]
        return max(kept, default=0)
    family = GRAPH_CAPTURE_MAX_FAMILIES.get(spec.family or "") if spec is not None and rule == "seqs" else None
    if rule == "fixed":
        top = GRAPH_CAPTURE_MAX_0_8
    elif family is not None:
        top = family
    else:
        top = min(2 * settings.max_num_seqs, GRAPH_CAPTURE_MAX) if settings.max_num_seqs else GRAPH_CAPTURE_MAX
    return min(top, budget or top)


def capture_sizes(settings: Settings) -> list[int]:
    """The CUDA-graph batch sizes vLLM 0.16 captures (the source above). Unset max_num_seqs: the defaults (1024 or
    256, get_batch_defaults) both give 512; unset max_num_batched_tokens: the defaults (8192, 2048) do not cap it."""
    if settings.cuda_graph_batch_sizes:
        return sorted(settings.cuda_graph_batch_sizes)
    top = min(2 * settings.max_num_seqs, GRAPH_CAPTURE_MAX) if settings.max_num_seqs else GRAPH_CAPTURE_MAX
    top = min(top, settings.max_num_batched_tokens or top)
    sizes = [i for i in (1, 2, 4) if i <= top]
    sizes += list(range(8, min(top + 1, 256), 8)) + list(range(256, top + 1, 16))
    return sizes


# --data-parallel-rpc-port default (vllm/config/parallel.py ParallelConfig.data_parallel_rpc_port).
DP_RPC_PORT = 29550


def non_torch(*, tp: int, pp: int) -> int:
    return NON_TORCH_TP if tp * pp > 1 else NON_TORCH_TP1


# ---- the engine ----------------------------------------------------------------------------------------


# vllm/config/cache.py: BlockSize = Literal[1, 8, 16, 32, 64, 128, 256] (--block-size choices).
BLOCK_SIZES = (1, 8, 16, 32, 64, 128, 256)


def round_up(n: int, multiple: int) -> int:
    """``n`` up to a multiple of ``multiple`` (vllm/utils/math_utils.py round_up)."""
    return ceil_div(n, multiple) * multiple


# ---- the recurrent SSM state's dtype, per release ---------------------------------------------------------------
# Read in the PyPI wheels 0.16.0, 0.19.0 and 0.21.0. vllm/model_executor/layers/mamba/mamba_utils.py
# MambaStateDtypeCalculator._mamba_state_dtype: the conv state in --mamba-cache-dtype ("auto": the model's dtype,
# utils/torch_utils.py get_kv_cache_torch_dtype), the SSM (temporal) state in --mamba-ssm-cache-dtype, whose "auto"
# takes the conv state's; mamba1/mamba2_state_dtype (Jamba, Falcon-H1, Granite 4.0-H, Nemotron-H) pass both, and
# gated_delta_net_state_dtype (Qwen3-Next, Qwen3.5) passes the SSM one from 0.19.0 only: 0.16.0's takes
# mamba_cache_dtype alone (both states in it). vllm/config/cache.py: both flags default "auto", MambaDType = "auto",
# "float32", "float16". Then vllm/model_executor/models/config.py MODELS_CONFIG_MAP, only while the flag is "auto":
# * NemotronHForCausalLMConfig.update_mamba_ssm_cache_dtype (NemotronHForCausalLM, NemotronHPuzzleForCausalLM):
#   getattr(hf_config, "mamba_ssm_cache_dtype", "float16") in 0.16.0 and 0.19.0; the fallback is
#   DEFAULT_MAMBA_SSM_CACHE_DTYPE = "float32" in 0.21.0. Those wheels need transformers < 5 (METADATA), which has no
#   nemotron_h class (4.57.6 configuration_auto.py), so the config loads through the Hub's remote code, whose
#   NemotronHConfig has no such field: a config without it is float16 there (transformers 5's class default
#   "float32" agrees with 0.21's fallback);
# * Qwen3_5ForConditionalGenerationConfig (Qwen3_5ForConditionalGeneration, Qwen3_5MoeForConditionalGeneration;
#   from 0.19.0, not in 0.16.0, whose registry has no Qwen3.5 at all): hf_text_config.mamba_ssm_dtype where present;
# * no other hybrid (Qwen3-Next, Jamba, Falcon-H1, Granite 4.0-H): the model's dtype.
# The 0.8 rules: not read (that release predates --mamba-ssm-cache-dtype); they keep 0.16's, the oldest read.
# --mamba-cache-dtype (Vllm.conv_state_dtype) sets the conv state, and the SSM state where the rules above leave "auto".
NEMOTRON_H_FAMILIES = frozenset({"nemotron_h"})
QWEN3_5_FAMILIES = frozenset({"qwen3_5", "qwen3_5_moe"})
# The flags' values (MambaDType) are read by kvplan.engines.base mamba_ssm_flag / mamba_conv_flag, which
# Engine.check_settings applies for every rule set that reads them (the ideal layout's too).


# vLLM's Marlin MoE kernel (ops.moe_wna16_marlin_gemm, csrc/moe/marlin_moe_wna16/), as its MXFP4 path holds and runs
# the experts: every linear padded to n % 256 == 0 and k % 128 == 0 ("the moe marlin kernel requires that for each
# linear n % 256 == 0 and k % 128 == 0", quantization/mxfp4.py create_weights, read in the 0.16.0 wheel): hidden to
# 256, the intermediate width on the rank to 128 (Vllm.expert_dims_as_loaded). Its time: kvplan.latency _marlin_rows.
MARLIN_MOE = MoeKernel(name="marlin", hidden_multiple=256, inter_multiple=128)
# vLLM's OpenAI Triton MXFP4 experts (Mxfp4MoeBackend.TRITON: OAITritonMxfp4ExpertsMonolithic, the triton_kernels
# matmul_ogs GEMMs, W4A16), as its MXFP4 path holds them: the intermediate width on the rank padded to 64, the hidden
# size kept (fused_moe/oracle/mxfp4.py mxfp4_round_up_hidden_size_and_intermediate_size, read @001eda3; 0.16.0
# create_weights the same). Its time: kvplan.latency _triton_mxfp4_s.
TRITON_MXFP4_MOE = MoeKernel(name="triton_mxfp4", hidden_multiple=1, inter_multiple=64)
# vLLM's per-tensor fp8 experts on Hopper from the 0.16 rules on: FlashInfer's CUTLASS fused MoE
# (Fp8MoeBackend.FLASHINFER_CUTLASS, FlashInferExperts), autotuned at start-up. Its time: kvplan.latency _cutlass_fp8.
FLASHINFER_CUTLASS_FP8_MOE = MoeKernel(name="flashinfer_cutlass_fp8")
# vLLM's fp8 experts on a GPU without FP8 tensor cores (Ampere): fused_marlin_moe with 8-bit weights (W8A16), the
# experts as the checkpoint holds them (prepare_moe_fp8_layer_for_marlin repacks each expert, no padding; 0.11.0
# quantization/utils/marlin_utils_fp8.py). Its time: kvplan.latency _marlin_figures.
MARLIN_FP8_MOE = MoeKernel(name="marlin")


# The MLA up-projection vLLM keeps after loading. MLAAttention.process_weights_after_loading
# (vllm/model_executor/layers/attention/mla_attention.py; MLACommonBaseImpl.process_weights_after_loading in
# vllm/v1/attention/backends/mla/common.py before the move; sparse MLA (V3.2) goes through the same code) takes
# get_and_maybe_dequant_weights(kv_b_proj, out_dtype=act_dtype) (layers/quantization/utils/quant_utils.py) and keeps
# W_UV = W_UV.transpose(0, 1) and W_UK_T = W_UK.permute(1, 2, 0) on CUDA: views, no .contiguous(), so what stays alive
# is that one tensor. Unquantized kv_b_proj: `weight.to(out_dtype)` is the layer's own weight (nothing added).
# Quantized (fp8 per tensor or in 128x128 blocks via scaled_dequantize, anything else via an identity-matrix apply):
# a new act_dtype (16-bit) tensor of the rank's [heads x (qk_nope + v), kv_lora_rank], kept beside the quantized
# kv_b_proj (which forward_mha's prefill still runs). ROCm's aiter fp8/fp4 BMM paths (not modelled) quantize instead.
# Read in the upstream tree at 0014ca6b (mla_attention.py, quant_utils.py) and 00a817ad (v1 common.py,
# MLACommonBaseImpl, the base of FlashMLASparseImpl), and in the released wheels (PyPI) of every rule set: 0.8.5
# (vllm/v1/attention/backends/mla/common.py MLACommonImpl.process_weights_after_loading: a local
# get_and_maybe_dequant_weights applying the quantized layer to an act_dtype identity matrix, the unquantized
# layer.weight as it is; the same W_UV / W_UK_T views), 0.16.0, 0.17.0, 0.18.0, 0.19.0 and 0.21.0
# (model_executor/layers/attention/mla_attention.py MLAAttention.process_weights_after_loading and quant_utils.py
# get_and_maybe_dequant_weights as above: weight.to(out_dtype) unquantized, scaled_dequantize for fp8 outside Marlin
# and DeepGEMM, the identity apply otherwise). Every released line holds the copy: every vLLM rule set applies it.
def mla_dequant_bytes(spec: ModelSpec, *, weights_dtype: str, attn_tp: int, pp: int) -> list[int]:
    """The 16-bit kv_b_proj copy one GPU of each pipeline stage holds where the checkpoint's kv_b_proj is quantized
    (``weights_dtype`` below 16 bits and not experts-only); none for a 16-bit checkpoint or a model without MLA."""
    from kvplan.quant import storage

    store = storage(spec, weights_dtype)
    if store.experts_only or store.dtype.bytes_per_element >= 2:
        return [0] * pp
    return mla_kv_b_bytes(spec, attn_tp=attn_tp, pp=pp, element_bytes=2)


@dataclass(frozen=True)
class Vllm(Engine):
    image: str = "vllm/vllm-openai:latest"  # docs/deployment/docker.md
    gpu_memory_utilization: float = 0.9  # vllm/config/cache.py CacheConfig default
    estimate_cuda_graphs: bool = False  # vllm/envs.py VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS default
    mamba_align: bool = False  # prefix caching keeps Mamba state in 'align' mode (2 pages per request)
    a100_exception: bool = True  # get_batch_defaults gives A100 the small batches (PR #17885, from v0.9.0)
    mla_selection: str = "backend_preferred"  # how the MLA backend and its block size are picked (mla_choice)
    hybrid_min_block: bool = False  # hybrid models' attention block by vLLM 0.16's rule (HybridBlock)
    graph_padding: bool = False  # decode steps padded up to a captured CUDA-graph size (graph_rows; read for 0.16)
    graph_cap: str = "seqs"  # max_capture_size's rule: past it a step runs without a CUDA graph (graph_token_cap)
    # KV shortfall (V1 scheduler, vllm/v1/core/sched/scheduler.py Scheduler.schedule, for the rows' v0.10.2 / v0.11.0
    # / v0.13.0; read through stored copies whose tags are not pinned: one with waiting.prepend_request as in the
    # 0.10-0.11 line, a later one with _preempt_request, the FCFS rule the same in both): the running requests are
    # scheduled first, in order;
    # when kv_cache_manager.allocate_slots returns None for one (its blocks exceed block_pool.get_num_free_blocks(),
    # no watermark in V1), the FCFS policy preempts ``self.running.pop()``, the newest running request
    # (kv_cache_manager.free, num_computed_tokens = 0, waiting.prepend_request), and retries until it fits or the
    # request itself was popped; the waiting requests are admitted only ``if not preempted_reqs``, in order, each
    # with blocks for min(its uncomputed tokens, the token budget left) (its whole prompt + generated tokens after
    # a preemption: recompute), stopping at the first that does not get them or at max_num_seqs running.
    kv_preemption: Literal["recompute_newest"] | None = "recompute_newest"
    # MXFP4 experts on Hopper through Marlin (expert_dims_as_loaded): True for the 0.8-0.15 rules, whose wheels were
    # not read but whose ~0.10.1 log (issue #23278) holds Marlin's padded bytes, i.e. no OpenAI triton_kernels
    # installed; the 0.16.0 wheel vendors it as vllm/third_party/triton_kernels.
    mxfp4_hopper_marlin: bool = False
    # Per-tensor fp8 experts on Hopper through FlashInfer's CUTLASS fused MoE (moe_kernel): True from the 0.16 rules on,
    # False for the 0.8 rules (their Triton fused_experts; see moe_kernel).
    fp8_moe_flashinfer_cutlass: bool = True
    # ... and on SM100 through FlashInfer where flashinfer-python is a dependency of the wheel (0.16.0: ==0.6.3; 0.19.0:
    # ==0.6.6, read in their METADATA); the 0.8-0.15 rules leave Blackwell at the checkpoint's dims (not read).
    mxfp4_blackwell_flashinfer: bool = True
    # The SSM state dtype (see MambaStateDtypeCalculator above): Nemotron-H's when its config states none, whether
    # gated_delta_net_state_dtype takes --mamba-ssm-cache-dtype, whether Qwen3.5's config override exists.
    nemotron_h_ssm_default: str = "fp16"
    gdn_reads_ssm_dtype: bool = True
    qwen3_5_ssm_override: bool = True

    def conv_state_dtype(self, spec: ModelSpec, kind: LayerKind, settings: Settings) -> str | None:
        """``--mamba-cache-dtype`` (get_kv_cache_torch_dtype: "auto" is the model's dtype, None here)."""
        return mamba_conv_flag(settings.mamba_cache_dtype)

    def ssm_state_dtype(self, spec: ModelSpec, kind: LayerKind, settings: Settings) -> str | None:
        """The release's rule for the SSM state's dtype (the comment above MAMBA_SSM_FLAG): None, the conv state's."""
        flag = mamba_ssm_flag(settings.mamba_ssm_cache_dtype)
        if kind.variant == "gated_deltanet" and not self.gdn_reads_ssm_dtype:
            return None
        if flag is not None:
            return flag
        if spec.family in NEMOTRON_H_FAMILIES:
            return kind.ssm_state_dtype or self.nemotron_h_ssm_default
        if spec.family in QWEN3_5_FAMILIES and self.qwen3_5_ssm_override:
            return kind.ssm_state_dtype
        return None

    def expert_dims_as_loaded(self, *, weights_dtype: str, gpu: GPU, hidden: int, inter_rank: int) -> tuple[int, int]:
        """MXFP4 routed experts (gpt-oss) as vLLM allocates them, padded for the MoE backend it picks. Read in the
        0.16.0 wheel, vllm/model_executor/layers/quantization/mxfp4.py (the same in a stored copy @007d500):
        ``get_mxfp4_backend`` takes FlashInfer on SM100 (and on SM90 only with VLLM_USE_FLASHINFER_MOE_MXFP4_BF16),
        else Triton (OpenAI's triton_kernels ``matmul_ogs``) where ``has_triton_kernels()`` and the capability is
        within [9.0, 11.0), else Marlin; ``Mxfp4MoEMethod.create_weights`` then allocates w13 [E, 2 x I', H' / 2],
        w2 [E, H', I' / 2], their e8m0 scales per 32 and bf16 biases at the padded I' and H': Marlin
        I' = round_up(I, 128), H' = round_up(H, 256) ("the moe marlin kernel requires that for each linear n % 256
        == 0 and k % 128 == 0"), Triton I' = round_up(I, 64); ``prepare_moe_fp4_layer_for_marlin``
        (utils/marlin_utils_fp4.py) repacks them at the same bytes (4-bit values, e8m0 scales, bf16 biases).
        Marlin: every GPU before Hopper, and Hopper under the rules that run without triton_kernels
        (``mxfp4_hopper_marlin``): vllm-project/vllm issue #23278 (vLLM ~0.10.1, gpt-oss-120b on one H100) logs
        "Model loading took 65.9651 GiB", the padded Marlin layout's 65.90 GiB where the checkpoint's dims give
        60.77 GiB. Blackwell (SM100) with FlashInfer (``mxfp4_blackwell_flashinfer``): I' and H' = round_up(.., 256)
        (0.16.0 SM100_FI_MXFP4_BF16; 0.19.0 fused_moe/oracle/mxfp4.py puts FLASHINFER_TRTLLM_MXFP4_BF16 first and
        ``mxfp4_round_up_hidden_size_and_intermediate_size`` pads the TRTLLM backends alike); no log checks it. Not
        modelled: the Triton layout's own swizzle padding on Hopper (triton_kernels HopperMXValueLayout /
        HopperMXScaleLayout) and its float32 biases."""
        if weights_dtype != "mxfp4":
            return hidden, inter_rank
        arch = gpu.architecture
        kernel = self.moe_kernel(weights_dtype=weights_dtype, gpu=gpu)  # Marlin, or Triton on Hopper
        if kernel is not None:
            return round_up(hidden, kernel.hidden_multiple), round_up(inter_rank, kernel.inter_multiple)
        if arch == "blackwell" and self.mxfp4_blackwell_flashinfer:
            return round_up(hidden, 256), round_up(inter_rank, 256)
        return hidden, inter_rank

    def moe_kernel(self, *, weights_dtype: str, gpu: GPU) -> MoeKernel | None:
        """MXFP4 routed experts through Marlin (``get_mxfp4_backend`` as read in expert_dims_as_loaded: every GPU
        before Hopper, and Hopper under the rules without triton_kernels, ``mxfp4_hopper_marlin``). Read in the 0.19.0
        wheel: fused_moe/oracle/mxfp4.py gives the MARLIN backend ``MarlinExperts``, whose ``apply`` calls
        ``fused_marlin_moe`` (fused_moe/fused_marlin_moe.py): two ``ops.moe_wna16_marlin_gemm`` calls (gate/up, then
        down over M x top-k rows) that dequantize the 4-bit weights to 16 bits in registers and multiply them with the
        16-bit activations (W4A16). The 0.8-0.15 rules' wheels were not read (their Marlin path is the ~0.10.1 log's,
        issue #23278).

        Hopper under the other rules: OpenAI's Triton kernels. fused_moe/oracle/mxfp4.py ``select_mxfp4_moe_backend``
        (read @001eda3, vLLM main 2026) walks ``_get_priority_backends`` (FLASHINFER_TRTLLM_MXFP4_BF16, CK, TRITON,
        FLASHINFER_CUTLASS_MXFP4_BF16, TRITON_UNFUSED, MARLIN, ...) and takes the first whose kernel class supports
        the device: FlashInfer's TRT-LLM kernels are SM100 only and CK is ROCm, so SM90 gets TRITON
        (``OAITritonMxfp4ExpertsMonolithic``) wherever triton_kernels imports (``triton_kernels_supported``: SM 9.0
        to 11.0; the 0.16.0 wheel vendors it as vllm/third_party/triton_kernels). Other choices only by hand:
        ``--moe-backend`` (marlin, flashinfer_cutlass, ...), ``VLLM_MXFP4_USE_MARLIN=1``, or
        ``VLLM_USE_FLASHINFER_MOE_MXFP4_BF16=1`` (FlashInfer's CUTLASS MXFP4 x BF16 on SM90); not modelled. The
        earlier ``get_mxfp4_backend`` (a stored copy of quantization/mxfp4.py, late 2025) made the same choice:
        Triton on SM90 where ``has_triton_kernels()`` and torch >= 2.8, else Marlin. aiconfigurator 0.12.0 timed
        this kernel on vLLM 0.24.0 (kernel_source ``vllm_gptossmxfp4moe_triton_oaitritonmxfp4expertsmonolithic``,
        H100 SXM and H200). None elsewhere (Blackwell: FlashInfer's TRT-LLM MXFP4 kernels, priced by the fitted
        grouped GEMMs).

        fp8 experts on Hopper from the 0.16 rules on (``fp8_moe_flashinfer_cutlass``): FlashInfer's CUTLASS fused MoE.
        fused_moe/oracle/fp8.py ``select_fp8_moe_backend`` (read in the 0.16.0 and 0.19.0 wheels and @001a058b, main
        2026) takes the first supported of AITER, FLASHINFER_TRTLLM, FLASHINFER_CUTLASS, DEEPGEMM, ..., TRITON;
        FlashInfer's TRT-LLM kernels are SM100 only and AITER is ROCm, and ``FlashInferExperts._supports_quant_scheme``
        (flashinfer_cutlass_moe.py, the same three copies) takes static per-tensor fp8 weights and activations
        (kFp8StaticTensorSym, a ModelOpt or static-scale fp8 checkpoint) from capability 9.0. At start-up
        ``kernel_warmup`` runs ``flashinfer_autotune`` on SM 9.0+ unless ``enable_flashinfer_autotune`` is False
        (warmup/kernel_warmup.py; config/vllm.py sets it True from -O1 on, -O2 the default, and False at -O0, which
        ``--enforce-eager`` forces): the kernel serves with tuned tactics. They are TensorRT-LLM's CUTLASS MoE GEMMs,
        which aiconfigurator 0.12.0's TensorRT-LLM fp8 tables time under ``autotune()``; its vLLM 0.24.0 Hopper fp8
        table times this path without the autotuning (benchmarks/moe_compare.py UNTUNED) and is not what serves. Not
        modelled: dynamic activation scales (``--quantization fp8`` on a 16-bit checkpoint: kFp8DynamicTensorSym,
        which FlashInferExperts refuses, so TRITON), compressed-tensors checkpoints with per-channel weight and
        dynamic per-token activation scales (``CompressedTensorsW8A8Fp8MoEMethod`` passes ``allow_vllm_cutlass=True``:
        vLLM's own CUTLASS grouped fp8 GEMMs, ``TritonOrCutlassExperts``, 0.19.0 wheel), the untuned tactics under
        ``--enforce-eager``, and block-scaled checkpoints (kvplan.latency keeps their fitted grouped GEMMs). The 0.8
        rules (0.8.5 and 0.11.0 wheels): ``Fp8MoEMethod`` / ``ModelOptFp8MoEMethod.apply`` call the Triton
        ``fused_experts`` unless ``VLLM_USE_FLASHINFER_MOE_FP8`` is set: the fitted grouped GEMMs (None).

        fp8 experts on Ampere (no FP8 tensor cores): Marlin, weight-only (:data:`MARLIN_FP8_MOE`). Read in the 0.11.0
        wheel, quantization/fp8.py: ``Fp8MoEMethod.__init__`` sets ``use_marlin = not
        current_platform.has_device_capability(89)`` (or ``VLLM_TEST_FORCE_FP8_MARLIN``; never on ROCm), block-scaled
        checkpoints included (``prepare_moe_fp8_layer_for_marlin`` takes their ``weight_block_size``);
        ``process_weights_after_loading`` repacks the experts for Marlin and drops the input scales ("Activations
        not quantized for marlin"), and ``apply`` calls ``torch.ops.vllm.fused_marlin_moe`` with ``quant_type_id``
        float8_e4m3fn: the two ``moe_wna16_marlin_gemm`` calls that dequantize the 8-bit weights to 16 bits in
        registers beside 16-bit activations. Later releases route the same case through ``select_fp8_moe_backend``
        (fused_moe/oracle/fp8.py), whose list ends in the MARLIN backend (``MarlinExperts``) as the weight-only
        fallback where no FP8 kernel runs (a stored vLLM main copy; the supports checks of the backends before it
        on SM 8.0 were not read): taken as Marlin in every rule set. Ada (SM 8.9) has FP8 tensor cores and is not
        Marlin's. The dense fp8 layers run ``Fp8LinearMethod`` with the same ``use_marlin``
        (``apply_fp8_marlin_linear``, W8A16): kvplan.latency ``gemm_peak`` prices them as 16-bit GEMMs reading 8-bit
        weights."""
        if weights_dtype == "fp8" and gpu.architecture == "hopper" and self.fp8_moe_flashinfer_cutlass:
            return FLASHINFER_CUTLASS_FP8_MOE
        if weights_dtype == "fp8" and gpu.architecture == "ampere":  # capability 8.0 / 8.6: below 8.9
            return MARLIN_FP8_MOE
        if weights_dtype != "mxfp4":
            return None
        arch = gpu.architecture
        if arch in ("ampere", "ada") or (arch == "hopper" and self.mxfp4_hopper_marlin):
            return MARLIN_MOE
        if arch == "hopper":
            return TRITON_MXFP4_MOE
        return None

    def keeps_freed_blocks(self, settings: Settings) -> bool:
        """Automatic prefix caching (CacheConfig.enable_prefix_caching, on by default in V1): kv_cache_manager.free
        returns a request's blocks to the free queue's tail, last block first (block_pool.py free_blocks of the
        reversed list), their hashes kept; get_computed_blocks finds the full ones again, up to num_tokens - 1
        tokens, until get_new_blocks takes them from the queue's head."""
        return settings.prefix_caching if settings.prefix_caching is not None else True

    def check_kv_dtype(self, kv_dtype_name: str) -> str:
        with self._naming_the_release():
            return super().check_kv_dtype(kv_dtype_name)

    def check_settings(self, settings: Settings) -> None:
        with self._naming_the_release():
            super().check_settings(settings)

    @contextlib.contextmanager
    def _naming_the_release(self) -> Iterator[None]:
        """A refusal by an older rule set names it (``engine 'vllm@0.16'``): what it refuses the newest may take."""
        try:
            yield
        except InvalidInput as e:
            if self is ENGINE:
                raise
            raise InvalidInput(str(e).replace(f"engine {self.name!r}", f"engine {self.key!r}", 1)) from None

    def check_block_size(self, tokens: int) -> None:
        super().check_block_size(tokens)
        if tokens not in BLOCK_SIZES:
            raise InvalidInput(
                f"invalid block size {tokens!r} for vllm; --block-size accepts {', '.join(map(str, BLOCK_SIZES))}"
            )

    def cache_plan(self, spec: ModelSpec, *, kv_dtype_name: str, tp: int, pp: int, mla: str = "latent") -> CachePlan:
        self.check_layer_kinds(spec)
        if kv_dtype_name in PER_TOKEN_HEAD:
            plan = cache_plan(spec, PER_TOKEN_HEAD[kv_dtype_name], tp=tp, pp=pp, mla=mla)
            return _with_indexer(spec, _with_head_scales(spec, plan, tp=tp), mla=mla)
        if kv_dtype_name == "nvfp4":
            refuse_fp4_kv_mla(self.name, spec, kv_dtype_name)
            plan = cache_plan(spec, kv_dtype_name, tp=tp, pp=pp, mla=mla)
            return with_token_bytes(plan, lambda c: _nvfp4_token_bytes(spec, c, tp=tp))
        return _with_indexer(spec, cache_plan(spec, kv_dtype_name, tp=tp, pp=pp, mla=mla), mla=mla)

    def check_kv_on_gpu(self, kv_dtype_name: str, gpu: GPU) -> None:
        """vLLM's nvfp4 KV cache runs on the FlashInfer backend on SM100-family GPUs only:
        v1/attention/backends/flashinfer.py FlashInferBackend.supports_kv_cache_dtype returns, for a dtype starting
        "nvfp4", ``is_device_capability_family(100)`` and trtllm attention for prefill and decode (read as quoted in
        third-party patches of that file, not in vLLM's own copy). kvplan's catalog has no compute capability: it
        takes FP4 tensor cores (b200, gb200, both SM100) for it; an SM120 GPU described by the user would pass."""
        if kv_dtype_name == "nvfp4":
            refuse_fp4_kv_without_fp4(self.name, kv_dtype_name, gpu, "vLLM runs nvfp4 KV on SM100 Blackwell only")

    def check_layer_kinds(self, spec: ModelSpec) -> None:
        """vLLM reads the indexer, KV-shared, attention-free and Falcon-H1 parallel kinds: see _with_indexer,
        kv_cache_groups and _vllm_cache_layers. Cross-attention layers are refused: kvplan has not read vLLM's
        encoder-decoder cache for them; nor lightning attention."""
        refuse_cross_attention(spec, self.name)
        refuse_unread_states(self.name, spec, parallel_read=True)

    def fp8_context_attention(self, *, weights_dtype: str, kv_dtype: str) -> bool:
        """An FP8 KV cache runs FP8 attention, prefill included: vllm/v1/attention/backends/flash_attn.py
        (vllm-project/vllm @0084b783, ``FlashAttentionImpl.forward``) views the cache as FP8, quantizes the query
        (``ops.scaled_fp8_quant(query, layer._q_scale)``) and calls FlashAttention-3's one varlen kernel for every
        token of the step with q/k/v descales; the weights do not matter. What it buys is the calibration's
        (``fmha_fp8_softmax``, None for vLLM: aiconfigurator's vLLM 0.24.0 tables time the FP8-KV rows at 0.90x the
        16-bit ones on H100/H200 at head size 128, FlashAttention-3 paged, and 1.08x on B200, FlashInfer's TensorRT-LLM
        prefill kernel: benchmarks/fit_fmha.py)."""
        return kv_dtype.startswith("fp8")

    def attention_spans(self, spec: ModelSpec, settings: Settings) -> dict[str, int | None] | None:
        """vLLM's kernels read and compute only the checkpoint's window, in every release kvplan models: a layer's
        ``Attention`` takes the model file's ``per_layer_sliding_window`` or else the model-level
        ``cache_config.sliding_window`` (vllm/attention/layer.py ``Attention.__init__``, read in copies found by
        search), so Mistral 7B v0.1's config-wide 4096 applies to every layer; FlashAttention gets it as
        ``window_size`` (v1/attention/backends/flash_attn.py) and starts each query tile's key loop at the window
        (flash-attention ``flash_fwd_kernel.h``: ``n_block_min = max(0, (m_block * kBlockM + seqlen_k - seqlen_q -
        window_size_left) / kBlockN)`` where ``Is_local``), FlashInfer as ``window_left``. A chunked layer (Llama 4)
        runs its chunks as separate "virtual batches" (:func:`kvplan.attention.decode_span`). Memory differs by
        release (the hybrid allocator frees the blocks a window leaves, :func:`decode_blocks`); the reads do not."""
        return None

    def batch_limits(self, settings: Settings, total: int, gpu: GPU, *, dp_ranks: int = 1) -> tuple[int, int]:
        """Every data-parallel engine core runs the whole ``max_num_batched_tokens`` (``dp_ranks`` changes nothing)."""
        mnbt, seqs = batch_defaults(total, gpu, a100_exception=self.a100_exception)
        return settings.max_num_batched_tokens or mnbt, settings.max_num_seqs or seqs

    def graph_rows(self, settings: Settings, rank_seqs: float) -> float | None:
        """vLLM 0.16.0 pads a step of ``n`` tokens up to the next captured CUDA-graph size
        (vllm/v1/cudagraph_dispatcher.py CudagraphDispatcher.dispatch -> _create_padded_batch_descriptor,
        ``_bs_to_padded_graph_size``; a uniform decode batch replays a FULL graph of that size under the default
        FULL_AND_PIECEWISE mode) and runs none past the largest (``num_tokens > max_cudagraph_capture_size``: eager,
        not modelled, None). Sizes: :func:`capture_sizes`. None for the releases whose padding kvplan has not read."""
        if not self.graph_padding:
            return None
        sizes = capture_sizes(settings)
        busiest = math.ceil(rank_seqs - 1e-9)
        if settings.max_num_seqs:  # the scheduler runs at most max_num_seqs: a mean above it pads no further
            busiest = min(busiest, settings.max_num_seqs)
        idx = bisect.bisect_left(sizes, busiest)
        return float(sizes[idx]) if idx < len(sizes) else None

    def graph_token_cap(self, spec: ModelSpec, settings: Settings) -> int | None:
        """The most tokens a step on a rank replays as a CUDA graph (:func:`max_capture_size`); past it vLLM runs the
        step without one: 0.16.0, 0.19.0 and 0.21.0 vllm/v1/cudagraph_dispatcher.py CudagraphDispatcher.dispatch returns
        ``CUDAGraphMode.NONE`` when ``num_tokens > max_cudagraph_capture_size`` (the torch.compile'd model, eager
        launches); 0.8.5 vllm/v1/worker/gpu_model_runner.py execute_model: ``num_scheduled_tokens <=
        self.cudagraph_batch_sizes[-1]`` pads to a piecewise graph, else "Eager mode" (each read in that release's
        PyPI wheel; config/vllm.py _set_cudagraph_sizes and the gpt-oss override read the same in 0.16.0-0.21.0)."""
        return max_capture_size(settings, spec=spec, rule=self.graph_cap)

    def mamba_pages(self, settings: Settings) -> int:
        prefix_caching = settings.prefix_caching if settings.prefix_caching is not None else True
        return 2 if self.mamba_align and prefix_caching else 1

    def layout(
        self, spec: ModelSpec, *, plan: CachePlan, settings: Settings, stage_index: int, gpu: GPU, total: int
    ) -> VllmLayout:
        block = block_size(spec, plan, settings.block_size, gpu=gpu, selection=self.mla_selection)
        hybrid = HybridBlock(settings.block_size, hybrid_kernel_align(spec, gpu)) if self.hybrid_min_block else None
        groups, unit = kv_cache_groups(spec, plan, block=block, stage_index=stage_index, hybrid=hybrid)
        mnbt, _ = self.batch_limits(settings, total, gpu)
        # vllm/v1/core/block_pool.py: block 0 is the null block, never handed to a request.
        return VllmLayout(plan.stages[stage_index], unit, block, 1, groups, mnbt, self.mamba_pages(settings))

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
        util = settings.gpu_memory_utilization
        util = util if util is not None else self.gpu_memory_utilization
        graphs = settings.cuda_graph_estimate if settings.cuda_graph_estimate is not None else self.estimate_cuda_graphs
        mnbt, seqs = self.batch_limits(settings, total, gpu)
        act = o.activation_bytes if o.activation_bytes is not None else activation(spec, tokens=mnbt, seqs=seqs, tp=tp)
        other = o.non_torch_bytes if o.non_torch_bytes is not None else non_torch(tp=tp, pp=pp)
        graph = o.cuda_graph_bytes if o.cuda_graph_bytes is not None else cuda_graph(spec)
        share = int(total * util)  # gpu_worker: requested_memory = total x gpu_memory_utilization
        avail = share - weights - act - other - o.overhead_bytes
        if graphs:
            avail -= graph
        rule = "total x gpu_memory_utilization - weights - activation peak - non-torch"
        if graphs:
            rule += " - CUDA graphs"
        return Budget(
            total, share, weights, act, other, graph, graphs, o.overhead_bytes, avail, rule,
            util, "gpu_memory_utilization",
        )  # fmt: skip

    def launch_args(self, r: CapacityResult, *, model: str, sequences: int) -> list[str]:
        return serve_args(r, model=model, sequences=sequences, kv_flag=self.kv_flag(r.kv_dtype),
                          default_utilization=self.gpu_memory_utilization)  # fmt: skip

    def rules_for_log(self, facts: LogFacts) -> tuple[Engine, str | None]:
        stated = facts.flags.get("vllm_version")
        if stated:
            return release_for(stated), None
        return LOG_DEFAULT, (
            f"the log does not state vLLM's version; compared under {LOG_DEFAULT.key} (the release kvplan's "
            "vLLM terms are calibrated on); pass --engine vllm@VERSION for another"
        )

    # -- data-parallel attention, expert parallelism, nodes --

    def check_dp_ep(self, spec: ModelSpec, *, tp: int, pp: int, dp: int, ep: bool) -> None:
        check_moe_parallel(self.name, spec, tp=tp, dp=dp, ep=ep)

    def sharding(self, spec: ModelSpec, *, tp: int, dp: int = 1, ep: bool = False) -> Sharding:
        """vllm/model_executor/layers/fused_moe/config.py FusedMoEParallelConfig.make (@00193b82):
        MoE layers are sharded over tp x dp ranks ("flatten_tp_across_dp"); with
        --enable-expert-parallel each of those ranks owns whole experts (ep_size = tp x dp, tp 1).
        Every DP rank is its own engine core with its own TP group: attention, dense MLPs, shared
        experts and the vocabulary are cut ``tp`` ways and repeated on each DP rank."""
        ranks = tp * dp
        return Sharding(attn_tp=tp, mlp_tp=tp, expert_tp=1 if ep else ranks, expert_ranks=ranks if ep else 1,
                        vocab_tp=tp)  # fmt: skip

    def weights_added(self, spec: ModelSpec, *, weights_dtype: str, pp: int, sharding: Sharding) -> list[int]:
        """The 16-bit kv_b_proj an MLA model's quantized checkpoint keeps beside its own (:func:`mla_dequant_bytes`),
        over the attention TP. vLLM's DP attention adds nothing: every DP rank is its own engine with the vocabulary
        cut over its ``tp`` (:meth:`sharding`), so no embedding is held whole beyond that."""
        return mla_dequant_bytes(spec, weights_dtype=weights_dtype, attn_tp=sharding.attn_tp, pp=pp)

    def node_args(self, r: CapacityResult, *, node: int | str, nodes: int, leader: str) -> list[str]:
        """vllm/config/parallel.py (@00193b82): DP ranks over nodes with --data-parallel-size-local and
        --data-parallel-address (the other nodes --headless from --data-parallel-start-rank); a TP x PP
        group over nodes with the multiprocessing executor's --nnodes / --node-rank / --master-addr."""
        first = node == 0
        if r.dp > 1:
            local = r.dp // nodes
            start = node * local if isinstance(node, int) else f"$(({node} * {local}))"
            args = ["--data-parallel-size-local", str(local), "--data-parallel-address", leader,
                    "--data-parallel-rpc-port", str(DP_RPC_PORT)]  # fmt: skip
            return args if first else [*args, "--headless", "--data-parallel-start-rank", str(start)]
        args = ["--nnodes", str(nodes), "--node-rank", str(node), "--master-addr", leader]
        return args if first else [*args, "--headless"]

    def prefix_units(self, layout: Layout, prefix: int) -> int:
        """Automatic prefix caching (on by default in V1): a request's full blocks are hashed and
        shared (vllm/v1/core/kv_cache_utils.py hash_block_tokens covers full blocks only), in the
        full-attention and MLA groups; the partial last block and sliding-window groups are per request."""
        groups = getattr(layout, "groups", ())
        return sum(prefix // g.block_tokens for g in groups if g.type in ("full", "mla"))

    def reads_log(self, text: str) -> bool:
        return "vllm" in text.lower() or "KV cache" in text or "GPU blocks" in text

    def parse_log(self, text: str) -> LogFacts:
        return parse_log(text)

    def compare_log(self, facts: LogFacts, spec: ModelSpec, gpu: GPU | None, result: Any, *, calc: Any) -> None:
        compare_log(facts, spec, gpu, result, calc=calc, engine=self.key)


def serve_args(r: CapacityResult, *, model: str, sequences: int, kv_flag: str, default_utilization: float) -> list[str]:
    """`vllm serve` flags (vllm/engine/arg_utils.py)."""
    util = r.settings.get("gpu_memory_utilization", default_utilization)
    # --max-num-seqs is per engine core: with DP attention each of the dp ranks schedules its own share.
    per_core = -(-sequences // r.dp)
    args = ["vllm", "serve", model, "--max-model-len", str(r.context), "--max-num-seqs", str(per_core)]
    if r.kv_cache_memory_given:
        args += ["--kv-cache-memory", str(r.available_kv_bytes)]
    else:
        args += ["--gpu-memory-utilization", f"{util:g}"]
    args += ["--kv-cache-dtype", kv_flag]
    args += quantization_flag(r)
    if r.tp > 1:
        args += ["-tp", str(r.tp)]
    if r.pp > 1:
        args += ["-pp", str(r.pp)]
    if r.dp > 1:
        args += ["--data-parallel-size", str(r.dp)]  # DP attention: one engine core per rank
    elif r.replicas > 1:
        args += ["-dp", str(r.replicas)]
    if r.ep:
        args += ["--enable-expert-parallel"]
    if r.block_tokens != 16:
        args += ["--block-size", str(r.block_tokens)]
    for name, flag in (
        ("mamba_cache_dtype", "--mamba-cache-dtype"),
        ("mamba_ssm_cache_dtype", "--mamba-ssm-cache-dtype"),
    ):
        if name in r.settings:  # the state dtypes size each request's Mamba pages
            args += [flag, str(r.settings[name])]
    default_tokens, _ = batch_defaults(r.breakdown["device_total_bytes"])
    if r.max_num_batched_tokens not in (None, default_tokens):
        # The profile run's size sets the activation term of the budget: the line must repeat it.
        args += ["--max-num-batched-tokens", str(r.max_num_batched_tokens)]
    return args


# ---- startup log (V0 and V1 lines) -----------------------------------------------------------------

_FIGURES = {
    "weights": [r"Model loading took {n} ?GiB", r"Loading model weights took {n} ?GB", r"model weights take {n} ?GiB",
                r"weights? only tooks? {n} ?GB"],
    "available_kv": [r"Available KV cache memory: {n} ?GiB", r"reserved for KV Cache is(?: only)? {n} ?GiB",
                     r"kv_cache_size={n} ?GiB"],
    "tokens": [r"GPU KV cache size: {n} tokens", r"stored in KV cache \({n}\)"],
    "blocks": [r"num_gpu_blocks is: {n}", r"# (?:GPU|CUDA) blocks: {n}", r"GPU blocks: {n}"],
    "total": [r"Free memory on device \({n}/{n2} ?GiB\)", r"total_gpu_memory \({n} ?GiB\)",
              r"total_gpu_memory={n} ?GiB"],
    "activation": [r"{n} ?GiB for peak activation", r"activation peak memory takes {n} ?GiB"],
    "non_torch": [r"{n} ?GiB for non-torch memory", r"non_torch_memory takes {n} ?GiB", r"non_torch_memory={n} ?GiB"],
    "cuda_graph": [r"{n} ?GiB for CUDAGraph memory", r"Graph capturing finished in \d+ secs?, took {n} ?GiB"],
}  # fmt: skip


def _search(patterns: list[str], text: str) -> float | None:
    for p in patterns:
        rx = p.replace("{n2}", NUM).replace("{n}", NUM)
        m = re.search(rx, text)
        if m:
            # "Free memory on device (free/total)": the total is the second number.
            return number(m.group(m.lastindex))
    return None


def parse_log(text: str) -> LogFacts:
    facts = LogFacts("vllm")
    for key, pats in _FIGURES.items():
        v = _search(pats, text)
        if v is not None:
            facts.figures[key] = v
    m = re.search(r"Maximum concurrency for {n} tokens per request: {n}x".replace("{n}", NUM), text)
    if m:
        facts.flags["max_model_len"] = int(number(m.group(1)))
        facts.figures["concurrency"] = number(m.group(2))
    m = re.search(r"Desired GPU memory utilization is \({n},".replace("{n}", NUM), text)
    if m:
        facts.flags["gpu_memory_utilization"] = number(m.group(1))
    m = re.search(r"non-default args: (\{.*\})", text)
    if m:
        try:
            args = ast.literal_eval(m.group(1))
        except (ValueError, SyntaxError):
            args = {}
        facts.model = args.get("model") or args.get("model_tag")
        for k in ("max_model_len", "tensor_parallel_size", "pipeline_parallel_size", "gpu_memory_utilization",
                  "kv_cache_dtype", "max_num_batched_tokens", "max_num_seqs", "block_size"):  # fmt: skip
            if k in args:
                facts.flags[k] = args[k]
    # "vLLM API server version 0.8.5", "Initializing a V1 LLM engine (v0.19.0)", "vLLM 0.8.5" in an excerpt's header
    m = re.search(r"(?:vLLM API server version|V1 LLM engine \(v|\bvLLM)\s+v?(\d+\.\d+)\.\d+", text)
    if m:
        facts.flags["vllm_version"] = m.group(1)
    m = re.search(r"vllm serve\s+(.*)", text)
    if m:
        _serve_flags(m.group(1), facts)
    return facts


def _serve_flags(line: str, facts: LogFacts) -> None:
    tokens = line.replace("=", " ").split()
    names = {"--tensor-parallel-size": "tensor_parallel_size", "--tensor_parallel_size": "tensor_parallel_size",
             "-tp": "tensor_parallel_size", "--gpu-memory-utilization": "gpu_memory_utilization",
             "--gpu_memory_utilization": "gpu_memory_utilization", "--max-model-len": "max_model_len",
             "--pipeline-parallel-size": "pipeline_parallel_size", "-pp": "pipeline_parallel_size"}  # fmt: skip
    for i, tok in enumerate(tokens):
        if tok in names and i + 1 < len(tokens):
            facts.flags[names[tok]] = ast.literal_eval(tokens[i + 1])
        elif not tok.startswith("-") and facts.model is None and "/" in tok:
            facts.model = tok


def log_settings(facts: LogFacts) -> Settings:
    """The engine flags a vLLM log records (device total taken from the log when it says)."""
    f = facts.flags
    total = facts.figures.get("total")
    return Settings(
        gpu_memory_utilization=as_float(f.get("gpu_memory_utilization")),
        max_num_batched_tokens=as_int(f.get("max_num_batched_tokens")),
        max_num_seqs=as_int(f.get("max_num_seqs")),
        block_size=as_int(f.get("block_size")),
        overrides=Overrides(device_memory_bytes=int(total * GIB) if total else None),
    )


def log_setup(
    facts: LogFacts,
    spec: ModelSpec,
    gpu: GPU,
    *,
    calc: Any,
    engine: str = "vllm",
    weights_dtype: str | None = None,
    util: float | None = None,
):  # noqa: ANN201
    """The kvplan setup matching a vLLM log's flags (``calc`` is :mod:`kvplan.capacity`)."""
    settings = log_settings(facts)
    if util is not None:
        settings = replace(settings, gpu_memory_utilization=util)
    f = facts.flags
    kv = f.get("kv_cache_dtype")
    kv = None if kv in (None, "auto") else kv
    return calc.setup(spec, gpu, engine=engine, tp=as_int(f.get("tensor_parallel_size")) or 1,
                      pp=as_int(f.get("pipeline_parallel_size")) or 1, kv_dtype_name=kv, weights_dtype=weights_dtype,
                      settings=settings)  # fmt: skip


def compare_log(facts: LogFacts, spec: ModelSpec, gpu: GPU | None, result: Any, *, calc: Any, engine: str) -> None:
    fig = facts.figures
    length = as_int(facts.flags.get("max_model_len")) or spec.max_position_embeddings
    if gpu is None:
        from kvplan.hardware import resolve_gpu

        gpu = resolve_gpu("h100-sxm")
        result.notes.append("assuming h100-sxm for the from-scratch terms")
    s = log_setup(facts, spec, gpu, calc=calc, engine=engine, weights_dtype=facts.flags.get("weights_dtype"))
    rows = []
    if "available_kv" in fig:
        given = calc.with_kv_memory(s, int(fig["available_kv"] * GIB))
        lay = given.stages[0].layout
        blocks = lay.pool_units(given.stages[0].available)
        tokens, conc = calc.pool_tokens(given), calc.reported_concurrency(given, length)
        result.given = {"blocks": blocks, "tokens": tokens, "concurrency": round(conc, 2)}
        rows += [
            row("KV blocks from logged KV memory", fig.get("blocks"), blocks),
            row("KV tokens from logged KV memory", fig.get("tokens"), tokens),
            row(f"concurrency at {length:,} from logged KV memory", fig.get("concurrency"), round(conc, 2)),
        ]
    r = calc.capacity(s, length, suggest=False)
    b = r.breakdown
    result.predicted = r.to_dict()
    rows += [
        row("device total", fig.get("total"), b["device_total_bytes"] / GIB, "GiB"),
        row("weights", fig.get("weights"), b["weights_bytes"] / GIB, "GiB"),
        row("activation peak", fig.get("activation"), b["activation_bytes"] / GIB, "GiB"),
        row("non-torch", fig.get("non_torch"), b["non_torch_bytes"] / GIB, "GiB"),
        row("CUDA graphs", fig.get("cuda_graph"), b["cuda_graph_bytes"] / GIB, "GiB"),
        row("available KV memory", fig.get("available_kv"), b["available_kv_bytes"] / GIB, "GiB"),
        row("KV tokens (predicted budget)", fig.get("tokens"), r.kv_pool_tokens),
        row(f"concurrency at {length:,} (predicted budget)", fig.get("concurrency"), r.engine_reported_concurrency),
    ]
    result.rows = rows


# ---- failed starts: the refusals, read in the engine's source ---------------------------------------

FAILURES: tuple[Pattern, ...] = (
    # vllm/v1/core/kv_cache_utils.py _check_enough_kv_cache_memory @001cabc (0.19); the estimate
    # clause arrived in 0.8.5 (vllm#16118); "models's" is the engine's own spelling, later "model's".
    Pattern(
        KV_SHORT,
        rf"To serve at least one request with the models?'s?'? max seq len \((?P<max_len>\d+)\),? \(?"
        rf"(?P<needed_gib>{NUMBER}) GiB KV cache is needed, which is larger than the available KV cache memory "
        rf"\((?P<available_gib>{NUMBER}) GiB\)\.?(?: (?:Based on the available memory, the e|E)stimated maximum "
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
        rf"Available KV cache memory: (?P<available_gib>-{NUMBER}) ?GiB",
        "vllm/v1/worker/gpu_worker.py determine_available_memory (V1, 0.8-0.19), refused in kv_cache_utils.py",
        "KV cache sizing",
    ),
    # vllm/v1/worker/gpu_worker.py init_device (0.9+; the "cuda:N" device tag in later builds).
    Pattern(
        STARTUP_FREE,
        rf"Free memory on device(?: (?P<device>\S+))? \((?P<free_gib>{NUMBER})/(?P<total_gib>{NUMBER}) GiB\) "
        rf"on startup is less than desired GPU memory utilization "
        rf"\((?P<fraction>{NUMBER}), (?P<requested_gib>{NUMBER}) GiB\)",
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

# kvplan term -> where parse_log files the flag; flags `python -m vllm.entrypoints.openai.api_server`
# spells on its command line (parse_log reads `vllm serve` lines and the non-default args).
LOG_FLAG_KEYS = {
    "context": ("max_model_len",),
    "tp": ("tensor_parallel_size",),
    "pp": ("pipeline_parallel_size",),
    "fraction": ("gpu_memory_utilization",),
    "kv_dtype": ("kv_cache_dtype",),
    "max_num_seqs": ("max_num_seqs",),
    "max_num_batched_tokens": ("max_num_batched_tokens",),
}
FAILURE_FLAGS = {
    "gpu_memory_utilization": r"--gpu[-_]memory[-_]utilization[ =](" + NUMBER + ")",
    "max_model_len": r"--max[-_]model[-_]len[ =](\d+)",
    "tensor_parallel_size": r"(?:--tensor[-_]parallel[-_]size|-tp)[ =](\d+)",
    "pipeline_parallel_size": r"(?:--pipeline[-_]parallel[-_]size|-pp)[ =](\d+)",
    "max_num_seqs": r"--max[-_]num[-_]seqs[ =](\d+)",
}


# Kernel efficiencies for kvplan.latency, fitted by benchmarks/fit_latency.py (it prints this block) to
# aiconfigurator 0.12.0's per-operation latencies for vLLM 0.24.0: its perf-database version, the "current"
# vllm slot of aiconfigurator_core/systems/query_versions.yaml (kernel timings on H100/H200/B200 SXM).
# Every rule set below (0.8, 0.16, 0.19, 0.21) carries these: no older kernel timings were fitted.
CALIBRATION = Calibration(
    engine="vllm",
    version="vLLM 0.24.0",
    source=FIT_SOURCE,
    gemm_peak_eff=0.8213,
    gemm_half_m=207.3,
    gemm_mem_eff=0.8439,
    eager_kernel_s=4.017e-06,
    graph_kernel_s=2.655e-06,
    moe_peak_eff=0.4172,
    moe_half_tokens=39.38,
    moe_half_width=64.35,
    moe_mem_eff=0.9347,
    moe_layer_s=3.427e-05,
    moe_ep_imbalance=0.4841,
    attn_prefill_eff=0.6255,
    attn_prefill_half_len=1369,
    attn_decode_mem_eff=0.8422,
    attn_layer_s=1.254e-05,
    attn_seq_s=2.739e-08,
    mla_decode_mem_eff=0.95,
    mla_decode_flops_eff=0.7821,
    mla_prefill_eff=0.95,
    mla_layer_s=8.556e-05,
    # DSA's sparse prefill pads each rank's query heads to 64 on Hopper, 128 on Blackwell (vLLM 0.11-0.13
    # vllm/v1/attention/backends/mla/flashmla_sparse.py FlashMLASparseImpl: "kernel requires num_local_head to be a
    # multiple of 64 on hopper and 128 on blackwell", self.padding = 128 if capability 100 else 64; read through the
    # code index): DeepSeek-V3.2 at TP 8 (16 heads a rank) computes 64 heads' worth.
    sparse_mla_heads_multiple=64,
    blackwell_sparse_mla_heads_multiple=128,
    # fp8 scales refitted with the fp8 GEMMs' partial last wave (kvplan.latency.wave_efficiency):
    # fit_latency.py --only fp8_eff_scale,fp8_block_eff_scale, every other constant held.
    fp8_eff_scale=0.8174,
    fp8_block_eff_scale=0.375,
    fp8_mem_eff_scale=0.7914,
    # The activations' dynamic fp8 quantization before each per-tensor fp8 GEMM (kvplan.latency._gemm_s), fitted by
    # benchmarks/fp8_quant_compare.py to aiconfigurator 0.12.0's quantize tables (computescale + scale_matrix).
    fp8_quant_s=2.845e-06,
    blackwell_fp8_quant_s=3.416e-06,
    fp8_quant_read_eff=0.413,
    # Block-scaled checkpoints keep the streaming share fitted before the quantization was priced (their
    # per-token-group quantization is not priced apart and stays absorbed in it).
    fp8_absorbed_mem_eff_scale=0.742,
    blackwell_compute_eff=0.8062,
    elementwise_mem_eff=0.8098,
    # Gated DeltaNet prefill: vLLM 0.24.0 runs FlashInfer's GDN prefill kernel (aiconfigurator 0.12.0's vLLM 0.24.0
    # gdn_perf tables name it chunk_gated_delta_rule_flashinfer on H100, H200 and B200), not the fla Triton chunk
    # kernels (SSD_SCAN_EFF's kind), with one thread block per sequence and value head (gdn_head_blocks: its time on
    # few prompts x heads follows the SMs they fill). benchmarks/gdn_compare.py --fit: the median share of the 16-bit
    # peak on the busy SMs over the Hopper context rows of >= 4,096 tokens (H100 SXM 0.5218, H200 0.5104; 0.3302 /
    # 0.3423 on all SMs).
    gdn_scan_eff=0.5161,
    gdn_head_blocks=True,
    # ... on Hopper only: vLLM 0.19.0 and 0.21.0 (read in the wheels) pick FlashInfer's GDN prefill under the default
    # "auto" backend where current_platform.is_device_capability(90) (vllm/model_executor/layers/mamba/
    # gdn_linear_attn.py ChunkGatedDeltaRule), the fla Triton kernels elsewhere (Blackwell included; aiconfigurator's
    # vLLM 0.24.0 B200 rows name the FlashInfer kernel, a later rule kvplan's rule sets do not reach).
    gdn_kernel_archs=("hopper",),
    # The prefill causal conv1d's per-SM ceiling (Calibration.conv1d_sm_bytes_s: the Triton causal_conv1d_fn walks
    # each program's 8 tokens one at a time). benchmarks/gdn_compare.py --fit on aiconfigurator 0.12.0's vLLM 0.24.0
    # gdn tables, causal_conv1d_fn context rows of >= 8,192 tokens: 16.93 / 18.45 / 18.60 GB/s per SM on H100 SXM /
    # H200 / B200 (HBM 3.35 / 4.8 / 7.7 TB/s), the median over the H200 and B200 rows taken (H100 held out). The
    # same kernel in the 0.16.0, 0.19.0 and 0.21.0 wheels (BLOCK_M = 8, BLOCK_N = 256).
    conv1d_sm_bytes_s=1.849e10,
    # Mamba2's decode state update: the Triton selective_state_update (vllm/model_executor/layers/mamba/ops/
    # mamba_ssm.py, called once a Mamba2 layer by MambaMixer2.conv_ssm_forward inside the decode CUDA graph; 0.16.0
    # wheel) launches a geometry hard-coded by dstate, no autotune: dstate > 64 -> BLOCK_SIZE_M 32 x 8 warps on
    # Blackwell, 4 x 4 warps elsewhere up to 128. vLLM's benchmark_selective_state_update.py timed those heuristics
    # (PR #43083 on B200, #44251 on H200; fp32 state, head dim 64, d_state 128, 8 groups:
    # benchmarks/data/ssu_measured.json): benchmarks/fit_ssu.py, the state's bytes after graph_kernel_s over the 13
    # points of at least 4 launches, pooled median 0.603 of the bandwidth (each GPU's median 0.603; attn_decode_mem_eff
    # 0.8422 priced them too fast at every point, median |ln| 0.333 B200 / 0.329 H200 -> 0.110 / 0.112; the H200's
    # points past 32,768 run at 0.20-0.30, worst 1.094). The 0.8 rules' wheels were not read for the launch heuristic.
    ssu_mem_eff=0.603,
    mixer_norm_allreduce=True,  # Mixer2RMSNormGated (n_groups 1), MiniMaxText01RMSNormTP: base.Calibration
    allreduce_base_s=5.453e-06,
    allreduce_rank_s=2.815e-07,
    allreduce_bw_eff=0.3395,
    # The all-reduce's fixed latency per GPU class (kvplan.latency.allreduce_constants): benchmarks/fit_nccl.py
    # --allreduce on aiconfigurator 0.12.0's vLLM 0.24.0 custom all-reduce tables (CUDA-graph rows, bf16, every size):
    # the base above plus the class's base minus Hopper's (H100 + H200) in the table fits (the grid-fitted Hopper
    # level kept; the share stays one figure, see fit_nccl.py).
    # Table fits: B200 7.74 us against 4.52 (TP 2-8; 6.6-7.3 us measured at the smallest messages against 4.2-4.7),
    # GB200 NVL72 5.40 us (TP 2, 4 only). kvplan over the tables at <= 64 KiB (median): H100 / H200 x1.29 / x1.27 (the
    # grid's level, unchanged), B200 x0.85 -> x1.29, GB200 x1.10 -> x1.27; GB200 held out (B200's figure) x1.72.
    blackwell_allreduce_base_s=8.677e-06,
    gb200_allreduce_base_s=6.328e-06,
    # NVFP4 (dense GEMMs, their weight streaming, grouped experts, the K loop, the MoE layers' fixed cost):
    # benchmarks/fit_fp4.py on aiconfigurator 0.12.0's
    # B200 NVFP4 steps (fp4_cases of aiconfigurator_grid.json), every constant above held; refitted with
    # blackwell_gqa_decode below held (was 0.7075, 0.7511, 0.5897, 6.483e-10, 1.144e-05), and again once the MoE router
    # ran 16-bit (kvplan.latency._router_ctx; was 0.7038, 0.7303, 0.5906, 7.845e-10, 1.251e-05), and again once the
    # all-reduce took B200's own latency (blackwell_allreduce_base_s above; was 0.6978, 0.7325, 0.5783, 9.174e-10,
    # 1.502e-05: the fitted steps' prefill / decode median |ln| 0.045 / 0.068 -> 0.044 / 0.059), and again once each
    # step carried vLLM's sampling after the LM head (kvplan.latency.sampling_s; was 0.6975, 0.7522, 0.5786, 9.123e-10,
    # 1.451e-05: 0.044 / 0.059 -> 0.045 / 0.060).
    fp4_eff_scale=0.6979,
    fp4_mem_eff_scale=0.7554,
    fp4_moe_eff_scale=0.5786,
    fp4_k_s=9.014e-10,
    fp4_moe_layer_s=1.427e-05,
    # The Marlin MoE kernel (moe_kernel: MXFP4 experts where vLLM has no other kernel for them) on the rows it computes,
    # each expert's tokens padded to fused_marlin_moe's block (kvplan.latency marlin_block_m): the share of the dense
    # 16-bit peak it reaches, measured by benchmarks/marlin_moe_compare.py on aiconfigurator 0.12.0's two vLLM 0.24.0
    # Marlin MoE tables (H100 SXM and H200; int4 7168 x 2048 E384 top 8 and MXFP4 3584 x 3072 E896 top 16, balanced,
    # whole layer, 2,048-16,384 tokens: 28 points, shares 0.244-0.289, median 0.272; no other constant involved).
    # Far below the fitted grouped GEMMs' moe_peak_eff: Marlin issues mma.sync (no wgmma on Hopper) and dequantizes
    # every weight tile in registers. The tables are 0.24.0's kernel; the 0.8-0.15 rules that run it were not timed.
    marlin_moe_peak_eff=0.272,
    # ... and its dequantization: every token block of an expert converts the expert's 4-bit weights to 16 bits again
    # in registers; at few tokens an expert that, not the memory bus, sets Marlin's time (H100 and H200, 132 SMs each,
    # take nearly the same time though H200 streams 43 % faster). Measured by the same script at the tables' whole-layer
    # points up to 16 tokens, moe_layer_s held: 20 points, 2.28e-11-3.28e-11 s a weight a block on one SM, median
    # 2.79e-11 (kvplan.latency _marlin_dequant_s).
    marlin_moe_dequant_s=2.79e-11,
    # The same two on Ampere, where vLLM runs fp8 experts (and MXFP4 ones) through Marlin (moe_kernel): measured by
    # benchmarks/marlin_moe_compare.py --ampere on aiconfigurator 0.12.0's one Ampere Marlin MoE table, SGLang 0.5.10 on
    # the A100 SXM (sglang_marlin_moe, int4 weight-only, ten Qwen3 / Mixtral / DeepSeek / Kimi shapes, whole layer,
    # balanced; the same moe_wna16_marlin_gemm): 77 points from 2,048 tokens, shares 0.396-0.500, median 0.473 (mma.sync
    # is Ampere's own tensor-core instruction: near twice Hopper's 0.272); 55 points up to 16 tokens, 2.77e-11-5.74e-11
    # s a weight a block on one SM, median 3.74e-11. kvplan keeps the fitted curve as their floor (kvplan.latency
    # _marlin_figures says why); with them Marlin's own terms alone would price the table's 297 points at median |ln|
    # 0.048 (1-16 tokens 0.049, 32-512 0.058 and 768-1536 0.056, bands not measured on, >= 2,048 0.031) where kvplan's
    # pricing, the pair above the fitted curve, gives 0.547 (+0.23 to +0.67 by band: too slow; the Hopper pair 0.593).
    # The table's weights are 4-bit; the fp8 experts' 8-bit weights were not timed (their bytes are priced as they are).
    ampere_marlin_moe_peak_eff=0.473,
    ampere_marlin_moe_dequant_s=3.74e-11,
    # Its OpenAI Triton MXFP4 experts on Hopper (moe_kernel "triton_mxfp4", kvplan.latency _triton_mxfp4_s): each tile
    # of triton_block_m rows at this share of the dense 16-bit peak plus its expert's dequantization, moe_layer_s held.
    # benchmarks/fit_moe_ops.py on aiconfigurator 0.12.0's vLLM 0.24.0 gpt-oss tables (kernel_source
    # vllm_gptossmxfp4moe_triton_oaitritonmxfp4expertsmonolithic, H100 SXM and H200, gpt-oss-20b and -120b, TP 1/4/8
    # and EP 4/8, 1-16,384 tokens, balanced and priced so: 300 points), the two in turn, 4 rounds: 0.825 and 2.3e-11 s
    # a weight a tile on one SM (1 / 2.3e-11 = 43e9 weights a second per SM); median |ln| 0.220 (the fitted grouped
    # GEMMs) -> 0.085, worst 0.746 -> 0.773 (the EP points: their tables take ~67 us at one token where TP 1 takes
    # 61-63 us).
    triton_mxfp4_mma_eff=0.825,
    triton_mxfp4_dequant_s=2.3e-11,
    # Its per-tensor fp8 experts on Hopper from the 0.16 rules on: FlashInfer's CUTLASS fused MoE, autotuned at start-up
    # (Vllm.moe_kernel "flashinfer_cutlass_fp8", kvplan.latency _cutlass_fp8): the share of the dense fp8 peak on the
    # grouped GEMMs' token curve (moe_half_tokens held), the intermediate width on the rank at which thin slices reach
    # half of it, and the share of the bandwidth the experts' weights stream at (moe_layer_s held). Those are
    # TensorRT-LLM's CUTLASS MoE GEMMs (FlashInfer's csrc/fused_moe/cutlass_backend binds
    # tensorrt_llm::kernels::cutlass_kernels CutlassMoeFCRunner), so benchmarks/fit_moe_ops.py fits them on
    # aiconfigurator 0.12.0's TensorRT-LLM 1.3.0rc20 fp8 tables, timed under autotune() (H100 SXM and H200; Qwen3
    # 30B-A3B / 235B-A22B, Mixtral 8x7B / 8x22B, Llama 4 Scout / Maverick; TP 1/4/8, EP 4/8; 1-16,384 tokens, balanced
    # and priced so: 900 points), the three in turn, 4 rounds: median |ln| 0.238 (the fitted grouped GEMMs with the
    # fp8 streaming share 0.9347 x 0.742 = 0.694) -> 0.062, worst 1.764 -> 2.024 (Llama 4 Scout TP 1 / EP 4 at 1-1,024
    # tokens: ~230 us an expert touched whatever its rows, 6-7x its bytes' time, the signature of the vLLM table's
    # untuned tactic, which these few shapes fell back to). Not fitted on aiconfigurator's vLLM 0.24.0 Hopper fp8
    # tables: they time this kernel untuned (benchmarks/moe_compare.py UNTUNED), 3-7x slower, which vLLM serves only
    # at -O0 (--enforce-eager), not modelled.
    cutlass_fp8_moe_mma_eff=0.8,
    cutlass_fp8_moe_half_width=900.0,
    cutlass_fp8_moe_mem_eff=0.915,
    # The MLA block's fixed cost per decode layer on Blackwell, where vLLM runs FLASHINFER_MLA (vllm/platforms/cuda.py
    # _get_backend_priorities @ vLLM main 2026: MLA on compute capability 10 tries FLASHINFER_MLA first, on Hopper
    # FLASH_ATTN_MLA / FLASHMLA). benchmarks/mla_compare.py --fit on aiconfigurator 0.12.0's B200 vLLM 0.24.0 MLA
    # generation-module table (kernel_source FLASHINFER_MLA, re-collected with vLLM's fused norms, its
    # collection_meta.yaml, ai-dynamo/aiconfigurator#1423), every other constant held: 1,472 points, median |ln|
    # 0.549 -> 0.114. mla_layer_s above stays the Hopper figure (fitted on steps whose MLA modules are the legacy
    # collection, which that note puts 34 % above the serving engine's at one anchor).
    blackwell_mla_layer_s=1.323e-05,
    # ... and only where vLLM runs FLASHINFER_MLA by default (mla_choice): other models or KV dtypes fall back to
    # CUTLASS_MLA / FLASHMLA / TRITON_MLA, which that fit does not describe.
    blackwell_mla_nope_dims=FLASHINFER_MLA_NOPE,
    blackwell_mla_kv_dtypes=FLASHINFER_MLA_KV,
    # ... and not for sparse (DSA) models, which run a sparse backend on Blackwell (mla_choice "sparse MLA";
    # aiconfigurator 0.12.0's B200 and GB200 vLLM 0.24.0 dsa_generation_module tables name kernel_source
    # FLASHINFER_MLA_SPARSE or FLASHMLA_SPARSE, never FLASHINFER_MLA): mla_layer_s there, as in 0.16.
    blackwell_mla_dense_only=True,
    # GQA/MHA decode attention per architecture (kvplan.latency _gqa_decode_s): benchmarks/gqa_decode_compare.py --fit
    # on aiconfigurator 0.12.0's vLLM 0.24.0 generation-attention tables (aiconfigurator_core/systems/data/
    # {h100_sxm,h200_sxm,b200_sxm}/attention/vllm/0.24.0/generation_attention_perf.parquet; kernel_source
    # vllm_flash_attn_fa3 on Hopper, vllm_flashinfer_trtllmdecode on B200; head_dim 128, fp8 and bf16 KV, 4 and 8 query
    # heads a KV head, 1-8 KV heads on the rank: benchmarks/data/aiconfigurator_gqa_decode.json), every other constant
    # held. Hopper 5,180 rows, median |ln| 0.073, worst 0.917 (FA3: ~27 ns a sequence and KV head, the read and that
    # work nearly adding, p 1.28); B200 2,590 rows, 0.049, worst 0.824 (the slower of the two hides the other, p 5.9).
    hopper_gqa_decode=DecodeAttention(
        floor_s=1.384e-05,
        floor_16bit_s=1.139e-05,
        mem_eff=0.7894,
        seq_kvhead_s=2.846e-08,
        seq_kvhead_16bit_s=2.567e-08,
        overlap_p=1.276,
    ),
    blackwell_gqa_decode=DecodeAttention(
        floor_s=9.443e-06,
        floor_16bit_s=8.927e-06,
        mem_eff=0.8807,
        seq_kvhead_s=9.382e-09,
        seq_kvhead_16bit_s=1.123e-08,
        overlap_p=5.883,
    ),
    # The float32 routers (Calibration.fp32_router_families), read in the PyPI wheels. GLM-4.5 / 4.6
    # (model_executor/models/glm4_moe.py, 0.10.2, 0.11.0, 0.12.0, 0.13.0, 0.14.0, 0.16.0, 0.19.0 alike, and a stored
    # copy of main, 2026): ``Glm4MoE.__init__`` builds ``self.gate = nn.Linear(hidden_size, n_routed_experts,
    # bias=False, dtype=torch.float32)`` and ``forward`` runs ``self.gate(hidden_states.to(dtype=torch.float32))``.
    # Nemotron-H's MoE only up to the 0.16 rules (V0_16_ROUTERS): 0.19.0's ``NemotronHMoE`` builds ``GateLinear(...,
    # out_dtype=torch.float32, force_fp32_compute=True)``, which on Hopper and Blackwell keeps its weight 16-bit and
    # runs ``ops.router_gemm_bf16_fp32`` (bf16 x bf16 -> fp32 on the tensor cores, fused_moe/router/gate_linear.py
    # ``GateLinear.forward`` tier 3); float32 weights only before Hopper (not modelled: the set is per rule set). TF32
    # stays off: no 0.10.2-0.13.0 module calls torch.set_float32_matmul_precision, and from 0.14.0 the worker sets
    # it from VLLM_FLOAT32_MATMUL_PRECISION, default "highest" (v1/worker/gpu_worker.py, envs.py). DeepSeek's,
    # Qwen3's and gpt-oss's gates are 16-bit in these wheels. MiniMax-M1 (minimax_text_01.py
    # ``MiniMaxText01MoE``: ``ReplicatedLinear(..., params_dtype=torch.float32)``, ``self.gate(hidden_states.to(
    # torch.float32))``; 0.10.2-0.19.0) and MiniMax-M2 (minimax_m2.py ``MiniMaxM2MoE``, the same; from 0.12.0, the
    # first of these wheels that has the model) too.
    fp32_router_families=frozenset({"glm4_moe", "minimax_m1", "minimax_m2"}),
)
# ... and the 0.8 and 0.16 rules' Nemotron-H gate: nemotron_h.py ``NemotronHMoE`` (0.12.0, 0.16.0 wheels)
# ``ReplicatedLinear(..., params_dtype=torch.float32)`` over ``hidden_states.to(dtype=torch.float32)``: float32 on
# every GPU.
V0_16_ROUTERS = CALIBRATION.fp32_router_families | {"nemotron_h"}


# vllm/envs.py VLLM_SHARED_EXPERTS_STREAM_TOKEN_THRESHOLD default: the most tokens a step may hold on the rank for
# the shared experts to run on their own stream.
SHARED_EXPERTS_STREAM_TOKENS = 256
# What vLLM runs at once in a step, and its MoE token exchange under DP attention + EP:
# * shared experts: vllm/model_executor/layers/fused_moe/layer.py FusedMoE forward (use_shared_experts_stream): on
#   CUDA a layer with separate shared experts runs them on shared_experts_stream beside the routed experts when the
#   rank's tokens are at most VLLM_SHARED_EXPERTS_STREAM_TOKEN_THRESHOLD (256), eager or graph alike (vLLM main,
#   2026; VLLM_DISABLE_SHARED_EXPERTS_STREAM turns it off). aiconfigurator 0.12.0 also overlaps them.
# * token exchange: vllm/config/parallel.py ParallelConfig.all2all_backend defaults to "allgather_reducescatter"
#   ("All2all based on allgather and reducescatter"); DeepEP is opt-in (--all2all-backend deepep_*).
# * dual-batch overlap (--enable-dbo, ParallelConfig.enable_dbo False by default): two micro-batches
#   (vllm/v1/worker/ubatching.py) when the step has more tokens than dbo_decode_token_threshold (32, decode-only
#   steps) or dbo_prefill_token_threshold (512, steps with a prefill); VllmConfig.__post_init__ (vllm/config/vllm.py)
#   asserts a deepep_low_latency / deepep_high_throughput all2all backend for it.
# * sampling: every step the model runner computes the sampled rows' logits after the CUDA graph
#   (vllm/v1/worker/gpu_model_runner.py: compute_logits outside the graph wrapper), LogitsProcessor._gather_logits
#   all-gathers them over the TP group (vllm/model_executor/layers/logits_processor.py; use_all_gather, platforms/
#   interface.py: True with the V1 engine, whose default VLLM_USE_V1 is 1) and the V1 Sampler casts them to fp32 and
#   takes an argmax (vllm/v1/sample/sampler.py Sampler.forward, greedy_sample). Read in the 0.11.0 and 0.16.0 wheels
#   (kvplan.latency.sampling_s).
OVERLAP = Overlap(
    shared_experts_tokens=SHARED_EXPERTS_STREAM_TOKENS,
    moe_allgather=True,
    two_batch_decode_tokens=32,
    two_batch_prefill_tokens=512,
    logits_gather_sample=True,
)

# The host loop (kvplan.host). vllm/v1/engine/core.py: EngineCore.step schedules (Scheduler.schedule), runs the model
# (execute_model: the worker's _prepare_inputs, the forward, sampling and the copy of the sampled ids to the host)
# and applies the output (Scheduler.update_from_output) before the next schedule: host and GPU take turns. With
# async scheduling (vllm/config/scheduler.py SchedulerConfig.async_scheduling -> get_scheduler_cls AsyncScheduler;
# vllm-project/vllm#19970, 2025-06, "the scheduler operate[s] one step ahead of the current execution") the core runs
# EngineCore.step_with_batch_queue with two batches in flight. Its default: vllm/config/vllm.py
# VllmConfig.__post_init__ resolves async_scheduling None to True ("Enable async scheduling unless there is an
# incompatible option": a pooling runner, a speculative method other than EAGLE/MTP, an executor without
# supports_async_scheduling); default since vllm-project/vllm#27614 (named by vllm-project/vllm-gaudi#768), before
# 0.19 (#31998, 2026-01, extends the default to EAGLE/MTP). Read through copies of vllm/config/vllm.py (0.26-0.30
# line numbers); the release that flipped it was not read.
HOST_LOOP = HostLoop(overlaps_gpu=True, switch="--no-async-scheduling")
# vLLM 0.8 had no async scheduler: #19970 (2025-06-23) is later than #17885 (v0.9.0), which 0.8 predates (V0_8).
# EngineCore.step: host and GPU in turn.
HOST_LOOP_0_8 = HostLoop(overlaps_gpu=False, switch="")
# The point releases under the 0.8 rules (point_release), read in the PyPI wheels: vllm/config/scheduler.py
# SchedulerConfig.async_scheduling is `bool = False` in 0.10.2, 0.11.0, 0.12.0 and 0.13.0 (0.12.0 / 0.13.0's
# VllmConfig.__post_init__ already holds the "async_scheduling is None" branch, marked "we won't reach here until async
# scheduling is enabled by default"), and `Field(default=None)` in 0.14.0 and 0.15.1, which that branch resolves to
# True (0.14.0: unless pipeline_parallel_size > 1, a speculative method other than EAGLE/MTP or an executor other than
# mp / uni / external_launcher; 0.15.1 drops the PP exception, not modelled either way). So the loop runs one step
# ahead by default from 0.14.0 on, and in turn before (--async-scheduling turns it on there).
ASYNC_DEFAULT_FROM = "0.14.0"
HOST_LOOP_0_14 = HostLoop(overlaps_gpu=True, switch="--no-async-scheduling")

# The API server (kvplan.serving's "api_server" limit; FrontEnd). vLLM's V1 engine splits serving in two processes
# (vllm/v1/engine/async_llm.py AsyncLLM, the API server's engine client, and vllm/v1/engine/core.py EngineCoreProc,
# which schedules and runs the steps; ZMQ between them, vllm/v1/engine/core_client.py AsyncMPClient). The API server's
# one event loop takes each request (vllm/entrypoints/openai/serving_chat.py OpenAIServingChat.create_chat_completion:
# the chat template and tokenization, then AsyncLLM.add_request -> Processor.process_inputs and add_request_async)
# and, in AsyncLLM._run_output_handler's output_handler task, every step's outputs (OutputProcessor.process_outputs:
# incremental detokenization per token into each request's queue; chat_completion_stream_generator streams a chunk
# each). Read in the vLLM 0.11.0 wheel (and the 0.10.2 / 0.12.0 / 0.13.0 wheels where named):
# - together: the chat route is wrapped in entrypoints/utils.py with_cancellation, which starts the handler as a new
#   task; the handler runs the chat template synchronously (serving_engine.py OpenAIServing._preprocess_chat ->
#   chat_utils.apply_hf_chat_template) and first waits at the tokenizer (_tokenize_prompt_input_async, an
#   AsyncMicrobatchTokenizer future). The event loop runs every ready callback of a pass before the next pass, so
#   requests that arrive together each pass their template before any of them is tokenized and handed to the engine.
#   The published 128 in / 4 out runs show it: their mean TTFT is late by what their duration is late by (DeepSeek-R1
#   16.1 s and 15.7 s over kvplan's steps alone), where a server handing each request on as it finishes would delay
#   the TTFT by about half (docs/cost.md, "The chat template").
# - template_s: in 0.11.0, chat_utils.resolve_chat_template_kwargs builds a jinja2 ImmutableSandboxedEnvironment and
#   parses the model's whole chat template (env.parse, jinja2.meta.find_undeclared_variables) on every chat request;
#   it came with PR #25794 (the chat-template kwargs filter, GHSA-6fvq-23cw-5628, 2025-10; 0.10.2's chat_utils has no
#   such parse); 0.12.0 and 0.13.0 parse once (_cached_resolve_chat_template_kwargs, lru_cache). Where vLLM builds
#   the prompt without the template it is not paid: gpt-oss (serving_chat.py: use_harmony = hf_config.model_type ==
#   "gpt_oss", _make_request_with_harmony) and the completions endpoint. The same kind of per-request parse cost
#   "6-8 seconds delay before prompts actually are started to process" for 1,000 requests in vLLM PR #20065
#   (2025-06, the content-format detection, cached since).
# - by release (template_releases; read in the PyPI wheels 0.8.5, 0.9.1, 0.9.2, 0.10.2, 0.11.0, 0.12.0, 0.13.0,
#   0.14.0, 0.15.1): 0.8.5 and 0.9.1 parse the template on every chat request too, in the content-format detection:
#   serving_engine.py _preprocess_chat -> chat_utils.resolve_chat_template_content_format ->
#   _resolve_chat_template_content_format -> _detect_content_format -> _try_extract_ast (the template compiled
#   through transformers' cached _compile_jinja_template, then environment.parse of the whole template), none of
#   them cached under the default --chat-template-content-format auto (0.8.5 detects even where a format is given);
#   0.9.2 puts @lru_cache(maxsize=32) on _detect_content_format (PR #20065), as do 0.10.2-0.15.1 (0.15.1 moves
#   it, and 0.12's cached kwargs filter, to vllm/renderers/hf.py, HfRenderer.render_messages_async). That is one
#   Jinja parse of the whole template a request, the work 0.11.0's kwargs filter does (env.parse; its
#   find_undeclared_variables walk is small beside it), so template_s stands for 0.8.0-0.9.1 as well (not
#   measured there). The rest of the handler is the same in every one of them: the template rendered synchronously
#   (apply_hf_chat_template), then the first wait at the tokenizer on a one-thread executor (0.8.5 / 0.9.x:
#   make_async(_tokenize_prompt_input, executor=ThreadPoolExecutor(max_workers=1)); 0.10.2-0.15.1: the
#   AsyncMicrobatchTokenizer on its own one-thread executor; in 0.15.1 render_messages_async's only wait before the
#   render, parse_chat_messages_async's resolve_items, returns at once for text), so together holds for all; the
#   detokenizer is the V1 OutputProcessor in the API server process throughout (vllm/v1/engine/output_processor.py
#   in each wheel read). request_s was
#   measured on 0.10.2 (gpt-oss) and template_s on 0.11.0: the other releases carry them as read, labelled so
#   (FrontEnd.release_note). The rule set's own server is 0.8.5's (release), which pays the parse.
# Fitted by benchmarks/fit_frontend.py on GPUStack's random 128 in / 4 out runs, 1,000 chat requests at once
# (gpustack/gpustack docs/performance-lab @47277d79): request_s, the smallest figure of the runs that do not pay the
# template: gpt-oss-120b TP2 on H100, vLLM 0.10.2, 956.85 tok/s (gpt-oss-120b/h100.md line 576; gpt-oss-20b gives
# 1.68 ms, gpt-oss-120b TP1 2.87 ms); template_s, the smallest of the runs that pay it, less request_s: Qwen3-235B
# BF16 TP8 on A100, vLLM 0.11.0, 226.26 tok/s (qwen3-235b-a22b/a100.md line 412); the others imply 9-18 ms a request
# in all (their templates and host CPUs differ: DeepSeek-R1 15.7 ms and GLM-4.6 9.3 ms on the same H200 node; the
# host CPUs are not stated), DeepSeek-V3.2 on 0.13.0 (no template parse) 6.2 ms. A cost per token is not separable
# on these runs (token_s 0). Releases after 0.13 (vllm@0.16 and newer) have no short-output run published: no ceiling
# there. Refitted (stop 29) with the engine's own host time in those runs (their loop runs in turn: the same lab's
# --async-scheduling pairs, benchmarks/fit_host.py, published_compare.row_host): 1.555 -> 1.462 ms and 5.719 ->
# 5.689 ms, a fixed point of the two fits.
FRONT_END_0_8 = FrontEnd(
    request_s=1.462e-3,
    measured="GPUStack runs of vLLM 0.10.2-0.11.0, random 128/4",
    template_s=5.689e-3,
    own_renderer_families=frozenset({"gpt_oss"}),
    template_releases=(("0.8.0", "0.9.1"), ("0.11.0", "0.11.0")),
    together=True,
    release="0.8.5",
    measured_releases=("0.10.2", "0.11.0"),
    read_releases=("0.8.5", "0.9.1", "0.9.2", "0.12.0", "0.13.0", "0.14.0", "0.15.1"),
)

V0_19 = Vllm(
    name="vllm",
    release="0.19",
    version="0.19 (V1 engine)",
    # vllm/v1/kv_cache_interface.py, vllm/v1/core/kv_cache_utils.py @001cabc (main, 2026).
    paging="blocks of 16 tokens shared by KV-cache groups; cdiv per request; SWA keeps window-1+chunk tokens +1 block",
    budget_rule="total x gpu_memory_utilization - weights - activation peak - non-torch",
    kv_dtypes=("bf16", "fp16", "fp8", "fp8_e4m3", "fp8_e5m2", "int8_per_token_head", "fp8_per_token_head"),
    # --kv-cache-dtype: auto, fp8, fp8_e4m3, fp8_e5m2; int8/fp8_per_token_head (kv_cache_interface.py
    # get_kv_quant_mode @001cabc). nvfp4: the 0.21 rules (V0_21).
    kv_dtype_flags={
        "bf16": "auto",
        "fp16": "auto",
        "fp8": "fp8",
        "fp8_e4m3": "fp8_e4m3",
        "fp8_e5m2": "fp8_e5m2",
        "int8_per_token_head": "int8_per_token_head",
        "fp8_per_token_head": "fp8_per_token_head",
    },
    # vllm/model_executor/layers/quantization/__init__.py QUANTIZATION_METHODS (fp8, mxfp4, modelopt_fp4, awq,
    # gptq, compressed-tensors, bitsandbytes, ...); fp8.py Fp8Config: a 16-bit checkpoint with
    # --quantization fp8 is quantized at load (is_checkpoint_fp8_serialized False, dynamic scales).
    # NVFP4 (vLLM @7305c786 modelopt.py ModelOptNvFp4Config, get_min_capability 75) runs on any GPU from Turing
    # on: W4A4 FP4 GEMMs where the GPU has FP4 tensor cores, else weight-only through
    # kernels/linear/nvfp4/marlin.py MarlinNvFp4LinearKernel ("Weight-only FP4 compression will be used
    # leveraging the Marlin kernel"), picked by kernels/linear/__init__.py init_nvfp4_linear_kernel.
    weight_dtypes=("fp32", "bf16", "fp16", "fp8", "int8", "int4", "mxfp4", "nvfp4", "nf4"),
    online_weight_dtypes=("fp8",),
    failure_patterns=FAILURES,
    failure_markers=("vllm", "gpu_model_runner", "gpu_worker", "EngineCore", "model_runner.py", "kv_cache_utils"),
    failure_flag_patterns=FAILURE_FLAGS,
    log_flag_keys=LOG_FLAG_KEYS,
    fraction_setting="gpu_memory_utilization",
    # gpu_model_runner.profile_run spreads max_num_batched_tokens over min(max_num_seqs, tokens) requests.
    profile_by_seqs=True,
    eager_flag="--enforce-eager",  # vllm/engine/arg_utils.py
    settings_read=(
        "gpu_memory_utilization",
        "block_size",
        "max_num_batched_tokens",
        "max_num_seqs",
        "cuda_graph_estimate",
        "overrides.cuda_graph_bytes",
        "two_batch_overlap",
        "deepep",
        "mamba_ssm_cache_dtype",
        "mamba_cache_dtype",
    ),
    # vllm/config/cache.py CacheConfig.gpu_memory_utilization default 0.9 in 0.19.
    gpu_memory_utilization=0.9,
    # vllm/envs.py VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS default "0" before 0.21: graphs captured after sizing.
    estimate_cuda_graphs=False,
    # Kept at one Mamba page per request, as calibrated; 'align' mode is modelled from 0.21.
    mamba_align=False,
    calibration=CALIBRATION,
    overlap=OVERLAP,
    host_loop=HOST_LOOP,
    # Disaggregated serving (KV connectors: NixlConnector, MooncakeConnector), vllm/v1/core/sched/scheduler.py
    # @00024d3: the prefill instance hands its blocks to the connector when the request finishes
    # (Scheduler._free_request -> _connector_finished -> connector.request_finished), so the KV moves after the
    # whole prefill; the decode instance, once the blocks have arrived (_update_waiting_for_remote_kv: "if
    # num_computed_tokens == request.num_tokens: num_computed_tokens -= 1"), recomputes the last prompt token in
    # its next step and samples the first output token itself.
    disagg_first_token="decode",
    disagg_kv_send="after_prefill",
    # One request's KV as transfer entries, with the MooncakeConnector (the connector whose per-request transfer
    # times are published: Mooncake docs/source/performance/vllm/vllm-v1-pd-performance.md @3b5a594, vLLM
    # 0.11.2.dev358): vllm/distributed/kv_transfer/kv_connector/v1/mooncake_connector.py @009d7c7
    # register_kv_caches registers K and V of each layer as separate buffers ("split_k_and_v = not (use_mla or
    # _use_pallas_v1 or _use_flashinfer)": FlashAttention's layout, one buffer per layer for an MLA latent), and
    # _send_blocks makes one (src, dst, length) entry per buffer per contiguous run of blocks
    # (group_concurrent_contiguous), all in one batch_transfer_sync_write. FlashInfer's fused K/V buffer (one entry
    # per layer) and the NixlConnector's per-block descriptors are not modelled.
    disagg_kv_entries="k_and_v",
)
# vLLM 0.8.x: the same rules, before get_batch_defaults checked the device name for A100 (PR #17885, v0.9.0).
# 0.8 had neither the shared-experts stream nor dual-batch overlap; its default all2all ("naive", broadcasts from
# every rank, vllm/distributed/device_communicators/all2all.py) moves what an all-gather moves.
# --enable-dbo, the DeepEP all2all backends and the Mamba state dtype flags came after 0.8
_NEWER_FLAGS = ("two_batch_overlap", "deepep", "mamba_ssm_cache_dtype", "mamba_cache_dtype")
# 0.8 picked MLA backends by the older rule (mla_choice "flashmla_forced"): FlashMLA with 64-token blocks on Hopper,
# Triton MLA elsewhere, Blackwell included, so vLLM 0.24.0's FLASHINFER_MLA constant (blackwell_mla_layer_s) does not
# describe its Blackwell decode: mla_layer_s there (fitted on Hopper's kernels; no Triton MLA timing was fitted).
V0_8 = replace(V0_19, release="0.8", version="0.8 (V1 engine, before the A100 batch defaults)", a100_exception=False,
               mla_selection="flashmla_forced",
               # fla only (0.16); the CUDA causal conv1d: vLLM's Triton one came later (vllm-project/vllm PR #18218,
               # opened 2025-05-15 after 0.8.5), so no per-SM ceiling
               calibration=replace(CALIBRATION, blackwell_mla_layer_s=None, gdn_kernel_archs=(),
                                   fp32_router_families=V0_16_ROUTERS,
                                   conv1d_sm_bytes_s=None),
               overlap=Overlap(moe_allgather=True, logits_gather_sample=True),  # the sampling read in 0.11.0
               host_loop=HOST_LOOP_0_8,
               front_end=FRONT_END_0_8,
               graph_cap="fixed",  # max_capture_size: 512 whatever max_num_seqs (0.8.5 _set_cudagraph_sizes)
               mxfp4_hopper_marlin=True,  # no triton_kernels installed (Vllm.expert_dims_as_loaded)
               fp8_moe_flashinfer_cutlass=False,  # Triton fused_experts for fp8 experts (Vllm.moe_kernel)
               mxfp4_blackwell_flashinfer=False,  # FlashInfer not read as a dependency of those wheels
               disagg_kv_entries=None,  # the V1 MooncakeConnector read above was not read at 0.8: no entry cost
               gdn_reads_ssm_dtype=False, qwen3_5_ssm_override=False,  # 0.16's SSM-state rule (the oldest read)
               settings_read=tuple(n for n in V0_19.settings_read if n not in _NEWER_FLAGS))  # fmt: skip
V0_21 = replace(
    V0_19,
    release="0.21",
    version="0.21 (V1 engine)",
    budget_rule="total x gpu_memory_utilization - weights - activation peak - non-torch - CUDA graphs",
    # vllm/config/cache.py CacheConfig.gpu_memory_utilization: Field(default=0.92) @002f10e (main, 2026).
    gpu_memory_utilization=0.92,
    # CacheDType @002f10e adds nvfp4 (_nvfp4_token_bytes, check_kv_on_gpu); not assumed for the 0.19 and 0.8 rules.
    kv_dtypes=V0_19.kv_dtypes + ("nvfp4",),
    kv_dtype_flags={**V0_19.kv_dtype_flags, "nvfp4": "nvfp4"},
    # vllm/envs.py: VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS default "1", "Enabled by default as of v0.21.0".
    estimate_cuda_graphs=True,
    # vllm/config/cache.py mamba_cache_mode: "align" is the default when prefix caching is enabled
    # (enable_prefix_caching default True); MambaSpec.max_memory_usage_bytes: 2 pages per request.
    mamba_align=True,
    # models/config.py NemotronHForCausalLMConfig.DEFAULT_MAMBA_SSM_CACHE_DTYPE = "float32" (0.21.0 wheel).
    nemotron_h_ssm_default="fp32",
)
# vLLM 0.16.0 (read in the PyPI wheel vllm-0.16.0-cp38-abi3-manylinux_2_31_x86_64.whl, vllm/_version.py commit
# g89a77b108; the release the Vultr B200 tables ran, benchmarks/data/published_throughput.json). What it shares with
# the 0.19 rules, each read there:
# * the budget: vllm/v1/worker/gpu_worker.py Worker.determine_available_memory: requested_memory (total x
#   gpu_memory_utilization) - profile_result.non_kv_cache_memory (weights + torch peak of profile_run + non-torch);
#   CUDA graphs are captured after (compile_or_warm_up_model -> capture_model) and only reported ("memory_profiling
#   does not consider CUDAGraph memory size"): no VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS in vllm/envs.py, so
#   --cuda-graph-estimate has nothing to turn on (left out of settings_read). gpu_memory_utilization
#   Field(default=0.9) (vllm/config/cache.py CacheConfig);
# * the profile run: gpu_model_runner.py profile_run -> _dummy_run(max_num_tokens, is_profile=True) over
#   min(max_num_seqs, tokens) requests, then _dummy_sampler_run (profile_by_seqs, the calibrated terms);
# * batch defaults: vllm/engine/arg_utils.py EngineArgs.get_batch_defaults, >= 70 GiB and "a100" not in the device
#   name: OPENAI_API_SERVER 8192 tokens / 1024 seqs, else 2048 / 256 (the A100 exception, a100_exception);
# * chunked prefill and prefix caching: _set_default_chunked_prefill_and_prefix_caching_args takes
#   ModelConfig.is_chunked_prefill_supported / is_prefix_caching_supported (vllm/config/model.py): prefix caching
#   is off by default for hybrid models ("Hybrid models do not support prefix caching since the feature is still
#   experimental"), so MambaModelConfig.verify_and_update_config leaves mamba_cache_mode "none" and
#   MambaSpec.max_memory_usage_bytes is one page per request (mamba_align False). An explicit
#   --enable-prefix-caching on a hybrid model ('all' mode for models with SupportsMambaPrefixCaching:
#   cdiv(max_model_len, block) pages) is not modelled;
# * async scheduling: vllm/config/vllm.py VllmConfig.__post_init__ resolves async_scheduling None to True unless a
#   non-EAGLE speculative method, an executor other than mp/uni/external_launcher, or mamba_cache_mode != "none"
#   (HOST_LOOP);
# * the step: VLLM_SHARED_EXPERTS_STREAM_TOKEN_THRESHOLD 256 (envs.py), ParallelConfig.all2all_backend
#   "allgather_reducescatter", enable_dbo False with thresholds 32 / 512 (vllm/config/parallel.py): OVERLAP;
# * sliding-window / chunked / full max_memory_usage_bytes (vllm/v1/kv_cache_interface.py): group_blocks.
# What differs:
# * --kv-cache-dtype: CacheDType is auto, bfloat16, fp8, fp8_e4m3, fp8_e5m2, fp8_inc (Gaudi), fp8_ds_mla (set by
#   DeepseekV32ForCausalLM itself): no per-token-head modes and no nvfp4;
# * the MLA block size is forced for the expected backend (mla_choice "block_forced", _mla_choice_block_forced):
#   FLASHINFER_MLA 64-token blocks on B200 / GB200 (32 in 0.19), CUTLASS_MLA 128 for other qk_nope_head_dim there,
#   64 on Hopper;
# * FLASHINFER_MLA only for qk_nope_head_dim 128 (cuda.py: "only if qk_nope_head_dim == 128 (kernel constraint)"),
#   and never for a sparse (DSA) model ("unless sparse, i.e. DSv3.2"), so the Blackwell MLA constant describes those
#   models only (blackwell_mla_nope_dims, blackwell_mla_dense_only; elsewhere mla_layer_s);
# * hybrid (attention + Mamba) models: the attention block is the smallest multiple of 16 (32 on B200 / GB200 for
#   head size 256) whose page holds a Mamba state, and a larger --block-size is kept as given (HybridBlock); kvplan's
#   rule for the other releases grows a multiple of max(16, --block-size) (_hybrid_block_size);
# * decode steps padded to the next captured CUDA-graph size (graph_rows, capture_sizes; cudagraph_mode
#   FULL_AND_PIECEWISE by default, vllm/config/vllm.py optimization-level defaults). The same padding very likely
#   runs in 0.19 and 0.21, whose copies were not re-read: their steps stay unpadded.
V0_16 = replace(
    V0_19,
    release="0.16",
    version="0.16 (V1 engine)",
    kv_dtypes=("bf16", "fp16", "fp8", "fp8_e4m3", "fp8_e5m2"),
    kv_dtype_flags={k: v for k, v in V0_19.kv_dtype_flags.items() if k not in PER_TOKEN_HEAD},
    mla_selection="block_forced",
    hybrid_min_block=True,
    graph_padding=True,
    # Gated DeltaNet prefill: 0.16.0 calls the fla Triton chunk_gated_delta_rule on every GPU (vllm/model_executor/
    # models/qwen3_next.py imports it from layers/fla/ops; no FlashInfer GDN path in the wheel): gdn_kernel_archs ().
    calibration=replace(
        CALIBRATION,
        blackwell_mla_nope_dims=(BLOCK_FORCED_FLASHINFER_NOPE,),
        blackwell_mla_dense_only=True,
        gdn_kernel_archs=(),
        fp32_router_families=V0_16_ROUTERS,
    ),
    settings_read=tuple(n for n in V0_19.settings_read if n != "cuda_graph_estimate"),
    # The SSM state (MambaStateDtypeCalculator above): 0.16.0's gated_delta_net_state_dtype takes no
    # --mamba-ssm-cache-dtype, and its models/config.py has no Qwen3_5ForConditionalGenerationConfig.
    gdn_reads_ssm_dtype=False,
    qwen3_5_ssm_override=False,
)
VERSIONS = (V0_8, V0_16, V0_19, V0_21)
ENGINE = VERSIONS[-1]  # `--engine vllm`: the newest rule set
LOG_DEFAULT = V0_19  # logs that state no version: the release the reference logs (engine_logs.json) come from


POINT_RELEASES = "0.8.0-0.15.x (vllm@0.8's rules)"  # what point_release takes, for get_engine's message


def point_release(version: str) -> Vllm | None:
    """``vllm@X.Y.Z``: a point release under the vllm@0.8 rules (0.8.0-0.15.x, the releases they stand for), those
    rules with the API server that release runs (FRONT_END_0_8 at ``version``: whether it parses the chat template
    each request, and how its figures stand to the measured releases) and its serving loop's default (one step ahead
    from 0.14.0: ASYNC_DEFAULT_FROM); None for any other version."""
    if not re.fullmatch(r"\d+\.\d+\.\d+(?:[.+-]?[A-Za-z0-9]+)*", version):  # 0.11.0, 0.10.2.post1, 0.9.0rc2
        return None
    wanted = release_tuple(version)
    if not (release_tuple("0.8.0") <= wanted < release_tuple(V0_16.release)):
        return None
    loop = HOST_LOOP_0_14 if wanted >= release_tuple(ASYNC_DEFAULT_FROM) else HOST_LOOP_0_8
    return replace(V0_8, release=version, version=f"{version} (the 0.8 rules; its own API server)",
                   front_end=replace(FRONT_END_0_8, release=version), host_loop=loop)  # fmt: skip


def release_for(version: str) -> Vllm:
    """The newest rule set not newer than ``version`` ("0.20" -> 0.19's rules; older than all: the oldest)."""
    wanted = tuple(int(x) for x in version.split("."))
    fitting = [v for v in VERSIONS if tuple(int(x) for x in v.release.split(".")) <= wanted]
    return fitting[-1] if fitting else VERSIONS[0]

"""Calibrated step latency: one roofline per operation, with shape-dependent efficiency and fixed costs.

The whole-step roofline of :mod:`kvplan.cost` (``max(FLOPs / peak, bytes / bandwidth)``) is
optimistic beyond dense TP1 batch-1 decode: kernels run one after another, each is bound by its
own roof, small GEMMs and grouped expert GEMMs run far below peak, every kernel pays a launch or
scheduling gap, and each tensor-parallel all-reduce pays a latency that no bandwidth figure
shows. This module sums, for one prefill or decode step on one GPU of a TP group:

* **GEMMs** (projections, dense MLP, shared experts, LM head), one per fused matrix, by
  ``M x N x K``: ``max(2MNK / (peak * e(M)), (weights + M (K + N) activations) / (bw * e_mem))``
  with ``e(M) = gemm_peak_eff * M / (M + gemm_half_m)``, plus ``kernel_s``;
* **grouped expert GEMMs** (MoE), by tokens per touched expert ``t``: every touched expert's
  weights are read (uniform routing: ``E (1 - (1 - k/E)^T)`` experts touched by ``T`` tokens),
  compute at ``moe_peak_eff * t / (t + moe_half_tokens) * w / (w + moe_half_width)`` of peak
  (``w`` the expert's intermediate width on this rank; on Hopper a rule set whose release runs other grouped GEMMs
  has its own peak share and half tokens, :func:`_moe_curve`), plus ``moe_layer_s``; with expert parallelism
  over ``R`` ranks the busiest rank sets the step: it receives ``1 + moe_ep_imbalance * sqrt(2 ln R)``
  x the mean routed tokens (the expected maximum of ``R`` loads whose relative spread is
  ``moe_ep_imbalance``; routing is skewed: aiconfigurator times its MoE kernels under power-law
  expert loads, alpha 1.2, DeepSeek 1.01, ``aiconfigurator_core/sdk/models/moe.py``, ``deepseek.py``)
  and reads at least one whole expert where any is touched (not the mean rank's fraction of one); TensorRT-LLM's
  block-scaled fp8 experts also pay a walk over every expert on the rank (:func:`_moe_expert_s`), on Hopper are priced
  by DeepGEMM's token tiles and their side kernels' bytes instead of the curve (:func:`_block_tile_rows`,
  :func:`_block_side_bytes`), and its W4A16 MXFP4 experts on Blackwell dequantize their weights once per token tile
  (:func:`_moe_dequant_s`); where the engine runs
  vLLM's Marlin MoE kernel (:meth:`kvplan.engines.base.Engine.moe_kernel`) the experts are padded to its multiples and
  its compute is each expert's tokens padded to its token block (:func:`marlin_block_m`) at ``marlin_moe_peak_eff`` of
  the 16-bit peak, or each block's dequantization of its expert (:func:`_marlin_figures`), never less than the
  curve above (on Ampere with its A100 figures); where it runs vLLM's OpenAI Triton MXFP4 experts (Hopper) their
  time is whole token tiles (:func:`triton_block_m`), random routing's (:func:`expected_tiles`), each at
  ``triton_mxfp4_mma_eff`` of the 16-bit peak plus its expert's dequantization (:func:`_triton_mxfp4_s`) instead of the
  curve; the experts' bytes are their own dtype's and the dense layers' the spec's where the checkpoint quantizes the
  experts alone (:func:`dense_dtype`);
* **attention**: prefill as FLOPs at ``attn_prefill_eff * L / (L + attn_prefill_half_len)`` of
  the 16-bit peak; decode as the held cache read at ``attn_decode_mem_eff`` of bandwidth (MLA's
  absorbed decode at ``mla_decode_mem_eff``, or its FLOPs at ``mla_decode_flops_eff`` of peak,
  whichever is slower), plus ``attn_layer_s`` per layer and ``attn_seq_s`` per sequence; GQA/MHA layers on a GPU
  whose architecture the engine has a decode-kernel fit for (``hopper_gqa_decode``, ``blackwell_gqa_decode``) take
  that fit instead: a floor plus the read and the per-sequence-and-KV-head work as a smooth maximum
  (:func:`_gqa_decode_s`);
* **recurrent mixers** (:mod:`kvplan.recurrent`: Mamba, Mamba2, Gated DeltaNet, lightning attention) at prefill: the
  memory-bound kernels (causal conv1d, Mamba v1's selective scan) by the bytes they move at ``elementwise_mem_eff`` of
  bandwidth, a chunked scan (Mamba2's SSD, the chunked gated delta rule, lightning attention's blocks) by its FLOPs at
  ``ssd_scan_eff`` / ``gdn_scan_eff`` of the 16-bit peak (Mamba2's SSD call at least ``ssd_scan_floor_s``), plus
  ``kernel_s`` per kernel, in place of the attention layer's fixed cost; a prompt read in chunks pays each chunk's
  tokens (their sum is the whole prompt's work, plus each chunk's launches). At decode each sequence's conv and
  recurrent state is read and written once (bytes at ``attn_decode_mem_eff``) plus ``kernel_s`` per decode kernel;
* **Blackwell**: every compute peak above times ``blackwell_compute_eff`` on a GPU whose catalog
  ``architecture`` is ``blackwell`` (the engines' kernels reach a smaller share of its peak);
* **fp8 GEMMs** at the fp8 peak times ``fp8_eff_scale`` (per-tensor scales) or
  ``fp8_block_eff_scale`` (a checkpoint shipped with block scales, DeepSeek-V3's 128 x 128), and
  their weight streaming at ``fp8_mem_eff_scale`` of the 16-bit GEMMs' efficiency; past M = 128 their compute
  roof also pays the partial last wave of 128 x 128 output tiles over the GPU's SMs (:func:`wave_efficiency`);
* **NVFP4 GEMMs** (W4A4) on a GPU with FP4 tensor cores (catalog ``fp4_dense_tflops``, Blackwell) at the FP4
  peak times ``fp4_eff_scale``, weights streamed at 9/16 byte and ``fp4_mem_eff_scale`` of the 16-bit
  efficiency, grouped expert GEMMs at the FP4 peak times ``fp4_moe_eff_scale`` (all three fitted by
  ``benchmarks/fit_fp4.py`` to aiconfigurator's NVFP4 steps, the rest held). Both engines
  quantize the activations to FP4 and run an FP4 x FP4 GEMM there: TensorRT-LLM @ed53795b
  ``tensorrt_llm/_torch/modules/linear.py`` ``NVFP4LinearMethod._input_prepare`` (``fp4_quantize`` of the input)
  and ``apply`` (``nvfp4_gemm``); vLLM @7305c786 ``modelopt.py`` ``ModelOptNvFp4Config`` ("NVFP4 -> W4A4:
  cutlass NVFP4 GEMM with input quantization"). Without FP4 tensor cores (Hopper) an engine that loads NVFP4
  runs it weight-only (vLLM's ``MarlinNvFp4LinearKernel``, W4A16): 16-bit GEMMs reading 9/16-byte weights;
  one that cannot refuses it (:meth:`kvplan.engines.base.Engine.check_weights_on_gpu`);
* **element-wise kernels** (two add+norms and the gated activation per layer): bytes at
  ``elementwise_mem_eff`` of bandwidth, plus ``kernel_s`` each;
* **all-reduce** after attention (or the token mixer) and after the MLP (and one after the embedding) at TP > 1,
  as each family's blocks end (:func:`kvplan.params.layer_allreduces`: one a Nemotron-H block, none for a no-op
  attention, three a Falcon-H1 or Granite 4.0 hybrid layer; narrower ones in :func:`_kind_allreduces`):
  ``allreduce_base_s + allreduce_rank_s * (tp - 2) + 2 (tp - 1) / tp * bytes / (link * allreduce_bw_eff)``,
  the base per GPU class where the engine's own all-reduce table differs (:func:`allreduce_constants`: Blackwell
  HGX, GB200 NVL72);
* **sampling** after the LM head where the engine's rules read it (vLLM, :func:`sampling_s`): under TP the logits'
  NCCL all-gather (in the all-reduce column) and its reordering copy, the fp32 cast and the argmax over the
  vocabulary of every sampled row (element-wise), eager kernels outside the step's CUDA graph;
* **expert-parallel all-to-all** with data-parallel attention (``dp`` ranks): a dispatch and a combine
  per MoE layer, latency + bandwidth over NVLink within the NVLink domain and the NIC beyond it
  (:func:`alltoall_s`; constants fitted to DeepEP's published tables by ``benchmarks/fit_alltoall.py``);
* **pipeline stages** (``pp``): per-stage times, the sends between stages, micro-batches and the
  bubble (:func:`step_latency`, :func:`stage_latencies`), and the KV transfer between disaggregated
  pools (:func:`kv_transfer_s`).

Prefill runs eagerly (``kernel_s`` = ``eager_kernel_s``); decode replays CUDA graphs
(``graph_kernel_s``), as vLLM and TensorRT-LLM both do by default for decode batches. The
constants are fitted by ``benchmarks/fit_latency.py`` to aiconfigurator 0.12.0's per-operation
latencies (kernel timings it collected on H100/H200/B200 SXM) on the grid of
``benchmarks/aiconfigurator_compare.py``, step totals and per-operation classes (docs/cost.md gives the
fit, its bounds and the three decode figures it leaves out); each field names what it stands for.
Rerun the fit to refresh them. The constants live with their engine: ``CALIBRATION`` in :mod:`kvplan.engines.vllm` and
:mod:`kvplan.engines.trtllm` (:class:`kvplan.engines.base.Calibration`), each with the engine version it describes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import NamedTuple

from kvplan.attention import decode_span
from kvplan.engines import (
    ENGINES,
    Calibration,
    DecodeAttention,
    Engine,
    Overlap,
    Settings,
    engine_fp8_context_attention,
    engine_overlap,
    get_engine,
    latency_calibration,
)
from kvplan.engines.base import MoeKernel, spans_view
from kvplan.errors import InvalidInput
from kvplan.hardware import GPU
from kvplan.memory import (
    attended_token_bytes,
    cache_plan,
    dsa_index_key_bytes,
    dsa_latent_row_bytes,
    element_size,
    recurrent_state_bytes,
    ssm_state_part,
)
from kvplan.params import attention_parts, layer_allreduces, mixer_allreduces
from kvplan.recurrent import DECODE_KERNELS, SSD_SCAN_KERNELS, MixerWork, conv_token_bytes, mixer_work, recurrent_kinds
from kvplan.spec import LayerKind, ModelSpec, ceil_div, kept_for_spec, pipeline_stages
from kvplan.units import weight_dtype


def calibration(engine: str | None) -> Calibration:
    """The fitted constants for ``engine`` (each engine module carries its own, ``CALIBRATION``); engines
    without their own fit use vLLM's, and their label says so (:func:`kvplan.engines.latency_calibration`)."""
    return latency_calibration(engine)  # InvalidInput for an unknown engine


def __getattr__(name: str) -> object:
    """``CALIBRATIONS``: engine name -> its own fitted constants (the fit script and the tests read them by name),
    built when first asked for (it imports every engine's module; a command runs one engine)."""
    if name == "CALIBRATIONS":
        return {e.name: e.calibration for e in ENGINES.values() if e.calibration is not None}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---- collectives beyond the TP all-reduce: expert-parallel all-to-all, pipeline sends, KV transfer ----
# Fitted by benchmarks/fit_alltoall.py (it prints these) to deepseek-ai/DeepEP's published tables @ 0297fc80:
# docs/legacy.md (H800, one CX7 InfiniBand 400 Gb/s NIC per GPU, low-latency kernels at EP 16-256: a line
# through ten dispatch/combine latencies, worst error 6.4 %) and README.md V2 (B200, EP 8 over NVLink: 726 / 740
# GB/s logical bandwidth). Between nodes every GPU has its own NIC: 400 Gb/s InfiniBand NDR or RoCE (DeepEP's
# "~50 GB/s maximum bandwidth"; the HGX H100/H200/B200 reference designs pair each GPU with one such NIC).
NETWORK_GBPS = 50.0  # per GPU, each direction
NETWORK_BW_EFF = 0.837  # share of the NIC the all-to-all's cross-node bytes reach (the fitted line's slope)
NETWORK_LATENCY_S = 2.0e-05  # one collective step across nodes (the fitted line's intercept)
A2A_NVLINK_BW_EFF = 0.407  # logical bytes over the catalog NVLink figure (DeepEP V2: 733 of B200's 1800 GB/s)
# Pipeline stages pass the hidden state and the residual (vLLM IntermediateTensors ["hidden_states", "residual"],
# make_empty_intermediate_tensors_factory in vllm/model_executor/models/llama.py and the other decoder models).
PP_SEND_TENSORS = 2


@dataclass(frozen=True, init=False)
class OpTimes:
    """Seconds one step spends per operation class on one GPU (summed over the stages a token passes).

    ``alltoall``: expert-parallel dispatch + combine (or the all-gather + reduce-scatter that replace them,
    ``Overlap.moe_allgather``); ``pipeline``: sends between pipeline stages plus the time a micro-batch waits
    for the others in the stages (the bubble); both 0 without EP/DP or PP. ``overlap`` (0 or negative): the time
    the engine hides by running the shared experts beside the routed path (:class:`kvplan.engines.Overlap`);
    the classes above each keep their own full time.
    """

    gemm: float
    moe: float
    attention: float
    elementwise: float
    allreduce: float
    alltoall: float = 0.0
    pipeline: float = 0.0
    overlap: float = 0.0

    def __init__(
        self,
        gemm: float,
        moe: float,
        attention: float,
        elementwise: float,
        allreduce: float,
        alltoall: float = 0.0,
        pipeline: float = 0.0,
        overlap: float = 0.0,
    ) -> None:
        # The dataclass's own __init__ with its fields, written into the instance at once: a frozen dataclass's
        # generated __init__ sets each field through object.__setattr__, twice the time, and a plan makes ~27,000.
        self.__dict__.update(gemm=gemm, moe=moe, attention=attention, elementwise=elementwise, allreduce=allreduce,
                             alltoall=alltoall, pipeline=pipeline, overlap=overlap)  # fmt: skip

    @property
    def total(self) -> float:
        return (self.gemm + self.moe + self.attention + self.elementwise + self.allreduce + self.alltoall
                + self.pipeline + self.overlap)  # fmt: skip

    def as_dict(self) -> dict[str, float]:
        return {
            "gemm_s": self.gemm,
            "moe_s": self.moe,
            "attention_s": self.attention,
            "elementwise_s": self.elementwise,
            "allreduce_s": self.allreduce,
            "alltoall_s": self.alltoall,
            "pipeline_s": self.pipeline,
            "overlap_s": self.overlap,
        }

    def __add__(self, other: OpTimes) -> OpTimes:
        return OpTimes(self.gemm + other.gemm, self.moe + other.moe, self.attention + other.attention,
                       self.elementwise + other.elementwise, self.allreduce + other.allreduce,
                       self.alltoall + other.alltoall, self.pipeline + other.pipeline,
                       self.overlap + other.overlap)  # fmt: skip

    def _fields(self) -> tuple[float, ...]:
        return (self.gemm, self.moe, self.attention, self.elementwise, self.allreduce, self.alltoall, self.pipeline,
                self.overlap)  # fmt: skip


@dataclass(frozen=True)
class _Ctx:
    spec: ModelSpec
    gpu: GPU
    cal: Calibration
    tp: int
    w_bytes: float  # bytes per quantizable weight of the dense layers (attention, dense MLP, shared experts, LM head)
    act_bytes: float  # bytes per activation element (16-bit)
    peak: float  # FLOP/s of the GEMMs (fp8 peak x fp8_[block_]eff_scale for fp8 weights where the GPU has it)
    peak16: float  # FLOP/s at 16 bit (attention)
    bw: float  # bytes/s
    kernel_s: float  # fixed cost per kernel in this phase
    ep: bool = False  # experts split whole across the tp x dp ranks (expert parallel) instead of sliced
    mem_scale: float = 1.0  # fp8 weights: share of the 16-bit streaming efficiency the GEMMs reach
    dp: int = 1  # data-parallel attention ranks (each a TP group of tp GPUs) sharing the MoE layers
    pp: int = 1  # pipeline stages
    gpus_per_node: int = 8  # one NVLink domain (nvlink_domain); collectives over more ranks cross the network
    dispatch_bytes: float = 2.0  # bytes per element an EP dispatch sends (fp8 weights: fp8 dispatch, as DeepEP)
    rules: Overlap = Overlap()  # what the engine runs at once in a step, how its MoE layers exchange tokens
    graph: bool = False  # a step replayed as a CUDA graph (decode); False: eager (prefill, mixed steps)
    two_batch: bool = False  # the engine's two-micro-batch overlap is on (Settings.two_batch_overlap)
    moe_peak: float | None = None  # FLOP/s of the grouped expert GEMMs where they differ from ``peak`` (NVFP4)
    fp4_k_s: float = 0.0  # NVFP4 GEMMs (FP4 tensor cores): seconds per element of K of one tile's K loop; 0 elsewhere
    moe_layer_s: float | None = None  # fixed seconds of one grouped-expert layer where not cal.moe_layer_s (NVFP4)
    head_16bit: bool = False  # the LM head stays 16-bit (NVFP4 checkpoints exclude it from quantization)
    wave_sms: int = 0  # fp8 GEMMs: SMs their output tiles run in waves over (:func:`wave_efficiency`); 0: not modelled
    gather_unpadded: bool = False  # the DP all-gather moves each rank's own tokens (Overlap.moe_allgather_unpadded)
    gather_bytes: float = 2.0  # bytes per element the DP all-gather moves (dispatch_bytes, or NVFP4's 9/16)
    fmha_gain: float = 1.0  # prefill attention's compute runs this much faster (FP8 attention: fp8_attention_gain)
    moe_expert_s: float = 0.0  # block-scaled fp8 grouped experts: seconds per expert on the rank (_moe_expert_s)
    moe_expert_added: bool = False  # that cost adds to the grouped GEMMs (Blackwell) rather than floors them (Hopper)
    moe_dequant_s: float = 0.0  # W4A16 MXFP4 experts: seconds per weight one token tile dequantizes (_moe_dequant_s)
    moe_block_tiles: int = 0  # block-fp8 experts on Hopper priced by DeepGEMM's tiles: its swap-AB threshold; 0: not
    view_passes: float = 1.0  # decode attention reads the sequences' cells this many times (Engine.decode_view_passes)
    fp8_quant_s: float = 0.0  # per-tensor fp8 GEMMs: fixed seconds of the activations' quantization (_fp8_quant_s)
    moe_mem_scale: float = 1.0  # grouped experts' share of the 16-bit streaming efficiency (fp8_absorbed_mem_eff_scale)
    moe_fp8: bool = False  # the routed experts are fp8 on fp8 tensor cores (_moe_curve: hopper_moe_fp8_peak_eff)
    marlin_peak: float = 0.0  # Marlin MoE: FLOP/s on the rows it computes (marlin_moe_peak_eff); 0: not Marlin
    expert_pad: tuple[int, int] = (1, 1)  # Marlin MoE: multiples it pads an expert's (hidden, width on the rank) to
    marlin_dequant_s: float = 0.0  # Marlin MoE: seconds per expert weight one token block dequantizes, all SMs at work
    moe_w_bytes: float | None = None  # bytes per routed-expert weight where they differ from w_bytes (dense_dtype)
    triton_peak: float = 0.0  # OpenAI Triton MXFP4 experts: FLOP/s on their tiles' rows (_triton_mxfp4_s); 0: not them
    triton_dequant_s: float = 0.0  # ... seconds per expert weight one tile dequantizes, all SMs at work
    # FlashInfer CUTLASS per-tensor fp8 experts (_cutlass_fp8): (FLOP/s, half width, streaming share); None: not them
    cutlass_fp8: tuple[float, float, float] | None = None
    # Terms every step of this context repeats, taken once on first use (:func:`lm_head_s`, :func:`allreduce_s`,
    # :func:`_decode_attention_stages` by KV dtype); a copy (dataclasses.replace) starts empty
    terms: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def moe_ranks(self) -> int:
        """Ranks a MoE layer is split over: the TP group, or every DP attention rank's TP group."""
        return self.tp * self.dp


def _gemm_s(
    c: _Ctx, m: int, params: int, n_plus_k: int, *, k: int, normed_input: bool = False, act_quant: bool = True
) -> float:
    """One GEMM of ``params`` weights (K x N, ``k`` = K) over ``m`` rows.

    NVFP4 on FP4 tensor cores (``c.fp4_k_s`` > 0) adds a third roof, the K loop of one output tile, and a second
    kernel, the activations' FP4 quantization: see :func:`_fp4_gemm_terms`. ``normed_input``: the GEMM reads a norm's
    output, which the engine's norm kernel already writes in FP4 where ``fp4_norm_quant_fused`` says so
    (:class:`kvplan.engines.base.Calibration`): then there is no quantization kernel.

    Per-tensor fp8 weights (``c.fp8_quant_s`` > 0) add the activations' dynamic quantization before the GEMM: a
    fixed cost plus the 16-bit input read at ``fp8_quant_read_eff`` of the bandwidth (TensorRT-LLM
    ``FP8QDQLinearMethod.apply``: ``quantize_e4m3_per_tensor``, then ``cublas_scaled_mm``; fitted to aiconfigurator's
    computescale + scale_matrix tables by benchmarks/fp8_quant_compare.py). ``act_quant`` False: a GEMM the engine
    runs in 16 bits (the MoE router).
    """
    if params <= 0 or m <= 0:
        return 0.0
    eff = c.cal.gemm_peak_eff * m / (m + c.cal.gemm_half_m)
    if c.wave_sms:
        eff *= wave_efficiency(m, params // max(k, 1), c.wave_sms)
    compute = 2 * m * params / (c.peak * eff)
    if c.fp4_k_s > 0:
        compute *= _fp4_shape(c.cal, params // max(k, 1), k)
    moved = params * c.w_bytes + m * n_plus_k * c.act_bytes
    t = max(compute, moved / (c.bw * c.cal.gemm_mem_eff * c.mem_scale))
    if c.fp8_quant_s > 0 and act_quant:  # the activations' dynamic fp8 quantization, kernels before the GEMM
        t += c.fp8_quant_s + m * k * c.act_bytes / (c.bw * c.cal.fp8_quant_read_eff)
    if c.fp4_k_s > 0:
        k_loop, quantize = _fp4_gemm_terms(c, m, k)
        if normed_input and c.cal.fp4_norm_quant_fused:
            quantize = 0.0
        return max(t, k_loop) + quantize + c.kernel_s + c.cal.fp4_gemm_s
    return t + c.kernel_s


def _fp4_shape(cal: Calibration, n: int, k: int) -> float:
    """The NVFP4 GEMM's compute roof relative to its FLOPs at the fitted peak, by shape: ``(1 + fp4_half_k / K) x
    (1 + fp4_half_n / N)``; 1.0 without that fit.

    TensorRT-LLM's NVFP4 GEMM (:func:`_fp4_gemm_terms`: CUTLASS ``PersistentScheduler``, no split-K) computes each
    output tile over the whole of K; the tiles ``CutlassFp4GemmRunner::getConfigs`` offers on SM100 are 128 x 64,
    128 x 128 and 128 x 256, one or two SMs each (cpp/tensorrt_llm/kernels/cutlass_kernels/fp4_gemm/
    fp4_gemm_template.h @02499765). A tile's prologue (pipeline fill, the scale factors' first loads) and epilogue
    (its 16-bit output written) do not shrink with K: ``fp4_half_k`` is that cost in elements of the K loop. The N
    term is work in proportion to M x K that does not shrink with N, as though each GEMM computed ``fp4_half_n`` more
    output columns: fitted, no kernel source found (the tile's own costs are in proportion to M x N, the K term; what
    the table times beside the GEMM in proportion to M x K, ``fp4_quantize``, is its own kernel, and pricing the N
    term there instead fits worse: ``benchmarks/fit_fp4.py``, docs/cost.md "The shape terms"). aiconfigurator 0.12.0's
    B200 nvfp4 table shows both at compute-bound sizes: at M = 2048, N = 8192 the rate rises 1.0 -> 1.7 -> 3.3 -> 3.6
    PFLOP/s from K = 512 -> 1024 -> 8192 -> 16384, and at K = 8192 2.7 -> 3.3 -> 3.9 PFLOP/s from N = 4096 -> 8192 ->
    16384. Wave quantization over the 148 SMs alone (128 x 128 or 128 x 256 tiles, priced like the fp8 GEMMs'
    :func:`wave_efficiency`) does not show it: refitted so, that table's M >= 256 median |ln| is 0.060 against 0.061
    without it, 0.044 with these terms.
    """
    if not (cal.fp4_half_k or cal.fp4_half_n):
        return 1.0
    return (1 + cal.fp4_half_k / max(k, 1)) * (1 + cal.fp4_half_n / max(n, 1))


def _gemm_pre_s(c: _Ctx, m: float, k: int, *, normed_input: bool = False, act_quant: bool = True) -> float:
    """The kernels :func:`_gemm_s` runs before a GEMM proper: the activations' FP4 quantization (NVFP4 on FP4 tensor
    cores, unless the norm kernel wrote FP4) or their dynamic fp8 quantization (per-tensor fp8); 0 elsewhere."""
    if m <= 0:
        return 0.0
    if c.fp4_k_s > 0:
        return 0.0 if normed_input and c.cal.fp4_norm_quant_fused else _fp4_gemm_terms(c, m, k)[1]
    if c.fp8_quant_s > 0 and act_quant:
        return c.fp8_quant_s + m * k * c.act_bytes / (c.bw * c.cal.fp8_quant_read_eff)
    return 0.0


# The output tile of the fp8 GEMMs the engines run: vLLM's CUTLASS W8A8 kernel for M > 128 on Hopper,
# sm90_fp8_config_default TileShape 128 x 128 x 128 (csrc/quantization/cutlass_w8a8/c3x/scaled_mm_sm90_fp8_dispatch.cuh
# @118ff921); block-scaled fp8 tiles by its 128 x 128 scale blocks. aiconfigurator 0.12.0's fp8 and block-fp8 GEMM
# tables follow a 128 x 128 partial last wave (benchmarks/gemm_compare.py --waves); its bf16 tables (cuBLAS) do not.
WAVE_TILE_M = 128
WAVE_TILE_N = 128


def wave_efficiency(m: float, n: int, sms: int) -> float:
    """Share of the SMs a GEMM's output tiles keep busy over their waves: ``tiles / (ceil(tiles / sms) * sms)`` with
    ``ceil(M / 128) x ceil(N / 128)`` tiles, past M = 128 and where the tiles fill at least one wave. Up to M = 128
    the kernels take other tiles (vLLM's sm90_fp8_config_M64 / M128, swap-AB), and with fewer tiles than SMs they
    split K: kvplan's ``M / (M + gemm_half_m)`` curve prices both, 1.0 there."""
    if m <= WAVE_TILE_M:
        return 1.0
    tiles = ceil_div(int(math.ceil(m)), WAVE_TILE_M) * ceil_div(n, WAVE_TILE_N)
    if tiles < sms:
        return 1.0
    return tiles / (ceil_div(tiles, sms) * sms)


def _wave_sms(gpu: GPU, weights_dtype: str) -> int:
    """SMs the fp8 GEMMs' waves run over on ``gpu`` (fp8 weights on fp8 tensor cores, SM count known); else 0."""
    fp8 = gpu.fp8_dense_tflops is not None and weights_dtype.startswith("fp8")
    return (gpu.sm_count or 0) if fp8 else 0


def _fp4_gemm_terms(c: _Ctx, m: float, k: int) -> tuple[float, float]:
    """(the K loop of one output tile, the activations' FP4 quantization kernel) of one NVFP4 GEMM, seconds.

    TensorRT-LLM's NVFP4 GEMM is a CUTLASS ``GemmUniversal`` in ``GemmUniversalMode::kGemm`` with the
    ``PersistentScheduler`` (cpp/tensorrt_llm/kernels/cutlass_kernels/fp4_gemm/nvfp4_nvfp4_gemm_template_sm100.h
    @0ef21974, ``INSTANTIATE_FP4_GEMM_KERNEL_LAUNCHER``): no split-K, so one CTA (or 2-SM pair) computes each
    ``CTA_M x CTA_N`` output tile over the whole of K. At decode sizes (``M`` within one tile) only
    ``ceil(N / CTA_N)`` SMs stream weights, each its ``CTA_N x K`` slab in series: the time grows with K and not
    with N until the whole GPU's bandwidth binds (``K x fp4_k_s``). aiconfigurator 0.12.0's B200 and GB200
    ``nvfp4`` GEMM tables (systems/data/*/gemm/trtllm/1.3.0rc20/gemm_perf.parquet) show it: at M = 1 a 4096 x 16384
    (N x K) GEMM takes 37.1 us, a 512 x 16384 one 35.8 us. vLLM's FlashInfer CuTe-DSL kernel has a shallower K
    loop (its table: ``fp4_k_s`` fitted apart per engine).

    The quantization: ``NVFP4LinearMethod._input_prepare`` (tensorrt_llm/_torch/modules/linear.py @ed53795b) runs
    ``fp4_quantize`` on a 16-bit input before ``nvfp4_gemm``; one more kernel reading ``m x K`` 16-bit values and
    writing half a byte each plus one E4M3 scale per 16 (element-wise bandwidth).
    """
    moved = m * k * (c.act_bytes + 0.5 + 1 / 16)
    return k * c.fp4_k_s, moved / (c.bw * c.cal.elementwise_mem_eff) + c.kernel_s


def _gemm_mem_s(c: _Ctx, m: float, params: int, n_plus_k: int) -> float:
    """The memory-traffic part of :func:`_gemm_s` alone: what the GEMM takes of the memory bus."""
    if params <= 0 or m <= 0:
        return 0.0
    return (params * c.w_bytes + m * n_plus_k * c.act_bytes) / (c.bw * c.cal.gemm_mem_eff * c.mem_scale)


def _attention_gemms_s(c: _Ctx, kind: LayerKind, m: int) -> float:
    """Projections of one token-mixer layer: fused QKV + O (MLA: each of its projections)."""
    hit = c.terms.get(("projections", id(kind)))  # each entry holds its kind: the id is not reused while it lives
    if hit is None or hit[0] is not kind:
        hit = c.terms["projections", id(kind)] = (kind, _projection_shapes(c, kind))
    fused, plain = hit[1]
    if fused is not None:
        (qkv, qkv_n_k, h), (o, o_n_k, o_k) = fused
        return (_gemm_s(c, m, qkv, qkv_n_k, k=h, normed_input=True) + _gemm_s(c, m, o, o_n_k, k=o_k)
                + sum(_gemm_s(c, m, p, n_k, k=k) for p, n_k, k in plain))  # fmt: skip
    return sum(_gemm_s(c, m, p, n_k, k=k) for p, n_k, k in plain)


def _projection_shapes(c: _Ctx, kind: LayerKind) -> tuple[tuple | None, tuple[tuple[int, int, int], ...]]:
    """The GEMMs of :func:`_attention_gemms_s` as (weights, N + K, K): the fused QKV and o_proj of a KV-head attention
    kind with the parts after them, or None and every projection (MLA and the rest)."""
    spec, tp, h = c.spec, c.tp, c.spec.hidden_size

    def make() -> tuple[tuple | None, tuple[tuple[int, int, int], ...]]:
        parts = _fact(spec, ("parts", id(kind), tp),
                      lambda: [p.params for p in attention_parts(spec, kind, tp) if p.quantizable])  # fmt: skip
        if kind.type in ("full", "sliding", "chunked") and len(parts) >= 3:
            qkv = parts[0] + parts[1]
            rest = parts[2:]
            o_k = rest[0] // h  # o_proj reads the heads (K = heads x head_dim); later parts (an output gate) read h
            return ((qkv, h + qkv // h, h), (rest[0], h + o_k, o_k)), tuple((p, h + p // h, h) for p in rest[1:])
        # MLA and the rest: K taken as the hidden size (the projections read h or a latent narrower than it)
        return None, tuple((p, h + max(1, p // h), h) for p in parts)

    return _fact(spec, ("projections", id(kind), tp), make)  # kept per spec, as its parts are


def _dense_mlp_s(c: _Ctx, m: int, inter_rank: int, *, gated: bool) -> float:
    h = c.spec.hidden_size
    up = (2 if gated else 1) * h * inter_rank
    return (_gemm_s(c, m, up, h + up // h, k=h, normed_input=True)
            + _gemm_s(c, m, h * inter_rank, h + inter_rank, k=inter_rank))  # fmt: skip


def _dense_mlp_mem_s(c: _Ctx, m: float, inter_rank: int, *, gated: bool) -> float:
    h = c.spec.hidden_size
    up = (2 if gated else 1) * h * inter_rank
    return _gemm_mem_s(c, m, up, h + up // h) + _gemm_mem_s(c, m, h * inter_rank, h + inter_rank)


class _MoeParts(NamedTuple):
    """One MoE layer's two paths (seconds): routed (router + grouped experts) and shared experts, each with the
    memory-traffic part of its time (what two concurrent paths share). A tuple, grouped experts first."""

    grouped: float
    router: float
    shared: float
    routed_mem: float
    shared_mem: float


def concurrent_s(a: float, b: float, *, memory_a: float, memory_b: float) -> float:
    """Two paths on two CUDA streams of one GPU: the longer of the two, but never less than their memory traffic
    together (both read their weights over the same memory bus). ``memory_*`` is each path's memory-traffic time,
    at most the path's own time, so the result lies between ``max(a, b)`` and ``a + b``."""
    return max(a, b, memory_a + memory_b)


def _moe_s(
    c: _Ctx, tokens: float, moe_tokens: float, loads: tuple[tuple[float, float], ...] | None = None
) -> _MoeParts:
    """The grouped expert GEMMs, the router and the shared-expert GEMMs of one MoE layer (:class:`_MoeParts`).

    ``tokens``: the rank's own tokens (router, shared experts); ``moe_tokens``: every token routed into this
    layer's experts across the ``moe_ranks`` (with DP attention, all DP ranks' tokens; else the same).
    ``loads``: the routed rows each touched expert of the rank receives, as ``(rows an expert, experts)`` pairs, for
    a routing other than serving's (the comparison scripts price aiconfigurator's tables, whose synthetic routing is
    not uniform, with it: ``benchmarks/aic_tables.py`` ``balanced_loads``); None: uniform routing, the busiest
    rank's excess included (what serving sees).
    """
    k = c.terms.get("moe")
    if k is None:
        k = c.terms["moe"] = _moe_consts(c)
    given = loads  # a table's own routing (the comparison scripts), or None (serving's uniform random routing)
    local, ranks = k.local, k.ranks
    touched = local * (1 - k.keep**moe_tokens)
    routed = moe_tokens * k.top_k / k.split
    if loads is not None:
        touched, routed = sum(n for _, n in loads), sum(t * n for t, n in loads)
    elif c.ep:  # the busiest of the ranks sets the step; its excess over the mean grows like sqrt(2 ln ranks)
        routed = min(routed * k.busiest, moe_tokens * k.top_local)
        # A rank that receives a token reads its expert's weights whole: with fewer experts touched than ranks the
        # busiest rank reads one expert, not the mean's fraction of one. aiconfigurator 0.12.0's TensorRT-LLM H200
        # moe_perf table, Llama 4 Scout bf16, one token (top-1 of 16): EP 4 87.8 us, the whole layer on one GPU
        # 85.8 us (benchmarks/moe_compare.py).
        touched = min(local, max(touched, min(touched * ranks, 1.0)))
    if touched > 0:
        per_touched = routed / touched
        if loads is None:  # every touched expert takes the mean
            loads = ((per_touched, touched),)
        per_expert = k.per_expert  # the expert's dims as its kernel holds them (_moe_consts)
        moved = touched * per_expert * k.w_bytes + routed * k.row_elements * c.act_bytes
        grouped_mem = moved / k.mem_rate
        side = 0.0
        if c.moe_block_tiles:  # TensorRT-LLM's block-fp8 grouped GEMMs on Hopper: _block_tile_rows, _block_side_bytes
            rows = sum(n * _block_tile_rows(t, swap_below=c.moe_block_tiles) for t, n in loads)
            compute = 2 * rows * per_expert / k.block_rate
            side = routed * k.side_bytes / k.side_rate
        elif c.triton_peak:  # OpenAI Triton MXFP4 experts: whole token tiles, each dequantizing its expert anew
            compute = _triton_mxfp4_s(c, local, touched, per_expert, rows_per_expert=routed / local, loads=given)
        else:
            eff = k.peak_eff * per_touched / (per_touched + k.half_tokens)
            eff *= k.width_eff  # thin expert slices (high TP) run below peak
            compute = 2 * routed * per_expert / (k.peak * eff)
            if c.marlin_peak:  # Marlin MoE: at least that; its padded token blocks at its rate, each dequantizing anew
                block = marlin_block_m(moe_tokens * k.top_k / local)
                blocks = sum(n * _marlin_rows(1, t, block) for t, n in loads) / block
                mma = 2 * blocks * block * per_expert / c.marlin_peak
                compute = max(compute, mma, blocks * per_expert * c.marlin_dequant_s)
        body = max(compute, grouped_mem, _dequant_s(c, loads, per_expert) if c.moe_dequant_s else 0.0) + side
        grouped_mem += side
        grouped = (body + k.walk if c.moe_expert_added else max(body, k.walk)) + k.fixed
    else:  # a vanishing share of a token (serving's fixed point near rate 0): only the kernels' fixed costs
        grouped, grouped_mem = k.fixed + k.walk, 0.0
    gate, h, gate_params, gate_n_k = k.gate, k.h, k.gate_params, k.gate_n_k  # 16-bit or float32 (_router_ctx)
    cast = _router_cast_s(c, tokens)
    router = _gemm_s(gate, tokens, gate_params, gate_n_k, k=h, act_quant=False) + cast
    router_mem = _gemm_mem_s(gate, tokens, gate_params, gate_n_k) + cast
    shared = shared_mem = 0.0
    if k.shared_rank:
        shared = _dense_mlp_s(c, tokens, k.shared_rank, gated=k.gated)
        shared_mem = _dense_mlp_mem_s(c, tokens, k.shared_rank, gated=k.gated)
    return _MoeParts(grouped, router, shared, grouped_mem + router_mem, shared_mem)


def _moe_curve(c: _Ctx) -> tuple[float, float]:
    """``(peak share, half tokens)`` of the grouped-expert curve: the calibration's ``moe_peak_eff`` /
    ``moe_half_tokens``, or on Hopper the rule set's own release's (``hopper_moe_peak_eff``, for fp8 experts
    ``hopper_moe_fp8_peak_eff``, and ``hopper_moe_half_tokens``; trtllm@0.20: TensorRT-LLM 1.0.0rc3's CUTLASS grouped
    GEMMs) where it has them."""
    cal = c.cal
    if c.gpu.architecture != "hopper" or cal.hopper_moe_peak_eff is None:
        return cal.moe_peak_eff, cal.moe_half_tokens
    peak = cal.hopper_moe_peak_eff
    if c.moe_fp8 and cal.hopper_moe_fp8_peak_eff is not None:
        peak = cal.hopper_moe_fp8_peak_eff
    return peak, cal.moe_half_tokens if cal.hopper_moe_half_tokens is None else cal.hopper_moe_half_tokens


class _MoeConsts(NamedTuple):
    """What :func:`_moe_s` reads of a context whatever the tokens, each computed as it was there (kept in c.terms)."""

    h: int  # hidden size
    gated: bool
    top_k: int  # experts per token
    ranks: int  # moe_ranks
    split: int  # ranks the routed rows divide over: moe_ranks with EP, else 1
    local: float  # experts on the rank
    keep: float  # 1 - top_k / experts: a token's chance to miss one expert
    busiest: float  # EP: the busiest rank's routed rows over the mean (1 + moe_ep_imbalance sqrt(2 ln ranks))
    top_local: float  # min(top_k, local): most rows one token sends to the rank
    per_expert: int  # one expert's weights as its kernel holds them (padded where Marlin pads)
    row_elements: int  # activations a routed row moves: 2 x hidden + 3 x width (padded alike)
    w_bytes: float  # bytes per routed-expert weight
    mem_rate: float  # bytes/s the grouped experts stream at
    block_rate: float  # Hopper block-fp8 tiles: FLOP/s (peak x tile efficiency); 0 elsewhere
    side_bytes: int  # ... their side kernels' bytes per routed row (_block_side_bytes); 0 elsewhere
    side_rate: float  # ... and the bytes/s those run at
    peak_eff: float  # the fitted curve's share of ``peak`` (moe_peak_eff; 1.0 for FlashInfer's CUTLASS fp8 experts)
    half_tokens: float  # ... and the tokens per expert at which it reaches half of that (_moe_curve)
    width_eff: float  # its thin-slice factor w / (w + half width)
    peak: float  # FLOP/s of the grouped GEMMs (moe_peak or peak; _cutlass_fp8's own)
    fixed: float  # fixed seconds of one grouped-expert layer
    walk: float  # the kernels' per-expert walk (block-scaled fp8; 0 elsewhere): _moe_expert_s
    gate: _Ctx  # the router's context (_router_ctx)
    gate_params: int
    gate_n_k: int
    shared_rank: int  # shared experts' width on the rank; 0: none


def _moe_consts(c: _Ctx) -> _MoeConsts:
    """:class:`_MoeConsts` of ``c``. TP slices every expert's intermediate dimension; EP (vLLM
    --enable-expert-parallel) gives each of the R = tp x dp ranks E/R whole experts and the tokens routed to them
    (uniform routing)."""
    moe, h, cal = c.spec.moe, c.spec.hidden_size, c.cal
    gated = c.spec.params.mlp == "gated"
    ranks = c.moe_ranks
    inter_rank = ceil_div(moe.expert_intermediate_size, 1 if c.ep else ranks)
    per_expert = (3 if gated else 2) * h * inter_rank
    h_k, w_k = h, inter_rank  # the expert's dims as its kernel holds them
    if c.expert_pad != (1, 1):
        h_k, w_k = (ceil_div(d, m) * m for d, m in zip((h, inter_rank), c.expert_pad, strict=True))
        per_expert = (3 if gated else 2) * h_k * w_k
    local = moe.num_experts / (ranks if c.ep else 1)
    mem_eff = cal.moe_mem_eff * c.moe_mem_scale
    if c.cutlass_fp8 is not None:  # FlashInfer's CUTLASS per-tensor fp8 experts: their own shares (_cutlass_fp8)
        mem_eff = c.cutlass_fp8[2]
    if c.moe_block_tiles and cal.hopper_moe_block_mem_eff:  # their own streaming share (fit_moe_ops.py)
        mem_eff = cal.hopper_moe_block_mem_eff * inter_rank / (inter_rank + cal.hopper_moe_block_mem_half_width)
    block_rate = side_rate = 0.0
    side_bytes = 0
    if c.moe_block_tiles:
        eff = cal.hopper_moe_block_tile_eff * inter_rank / (inter_rank + cal.hopper_moe_block_half_width)
        block_rate = c.peak * eff
        side_bytes = _block_side_bytes(h, inter_rank, gated=gated)
        side_rate = c.bw * cal.elementwise_mem_eff
    peak_eff, half_tokens = _moe_curve(c)
    peak, half_width = c.moe_peak or c.peak, cal.moe_half_width
    if c.cutlass_fp8 is not None:
        peak, peak_eff, half_width = c.cutlass_fp8[0], 1.0, c.cutlass_fp8[1]
    return _MoeConsts(
        h=h,
        gated=gated,
        top_k=moe.experts_per_token,
        ranks=ranks,
        split=ranks if c.ep else 1,
        local=local,
        keep=1 - moe.experts_per_token / moe.num_experts,
        busiest=1 + cal.moe_ep_imbalance * math.sqrt(2 * math.log(ranks)) if c.ep else 1.0,
        top_local=min(moe.experts_per_token, local),
        per_expert=per_expert,
        row_elements=2 * h_k + 3 * w_k,
        w_bytes=c.w_bytes if c.moe_w_bytes is None else c.moe_w_bytes,
        mem_rate=c.bw * mem_eff,
        block_rate=block_rate,
        side_bytes=side_bytes,
        side_rate=side_rate,
        peak_eff=peak_eff,
        half_tokens=half_tokens,
        width_eff=w_k / (w_k + half_width),
        peak=peak,
        fixed=cal.moe_layer_s if c.moe_layer_s is None else c.moe_layer_s,
        walk=local * c.moe_expert_s,
        gate=_router_ctx(c),
        gate_params=h * moe.num_experts,
        gate_n_k=h + moe.num_experts,
        shared_rank=ceil_div(moe.shared_size, c.tp) if moe.shared_size else 0,
    )


def _router_ctx(c: _Ctx) -> _Ctx:
    """The context the MoE router's GEMM runs in: 16-bit weights at the 16-bit peak, whatever the experts' dtype (kept
    in ``c.terms``). The engines never quantize the router: vLLM builds DeepSeek's gate as
    ``ReplicatedLinear(hidden_size, n_routed_experts, bias=False, quant_config=None)``
    (vllm/model_executor/models/deepseek_v2.py ``DeepseekV2MoE.__init__``; NemotronHMoE the same, with fp32 parameters),
    and TensorRT-LLM's ``DeepseekV3Gate`` holds a plain ``nn.Parameter`` of the model dtype, no quantized Linear
    (tensorrt_llm/_torch/models/modeling_deepseekv3.py); DeepSeek-V3's fp8 checkpoint ships ``mlp.gate.weight`` in
    bf16 (no ``weight_scale_inv`` beside it), and :mod:`kvplan.params` counts routers 16-bit (``Part(..., False)``)
    for every checkpoint format. aiconfigurator prices the router as a bfloat16 GEMM too
    (aiconfigurator_core/sdk/models/deepseek.py ``generation_router_gemm``, ``GEMMQuantMode.bfloat16``).

    Where the engine runs the model's router in float32 (``Calibration.fp32_router_families``: vLLM's GLM-4.x and
    Nemotron-H gates, SGLang 0.5.23's GLM-4.x gate) and the catalog has the GPU's ``fp32_tflops``: 4-byte weights and
    activations at the CUDA cores' FP32 peak, on the same GEMM efficiency curve; with TF32 on
    (``fp32_router_tf32``: SGLang 0.5.23 for GLM-4.x) at half the 16-bit tensor-core peak instead
    (:func:`_router_cast_s` adds the input's cast)."""
    gate = c.terms.get("router")
    if gate is None:
        nbytes, peak = c.act_bytes, c.peak16
        if _fp32_router(c):
            nbytes, peak = 4.0, c.peak16 / 2 if c.cal.fp32_router_tf32 else c.gpu.fp32_tflops * 1e12
        gate = c.terms["router"] = replace(c, w_bytes=nbytes, act_bytes=nbytes, peak=peak, mem_scale=1.0, fp4_k_s=0.0,
                                           wave_sms=0, fp8_quant_s=0.0)  # fmt: skip
    return gate


def _fp32_router(c: _Ctx) -> bool:
    """The engine runs this model's MoE router in float32 and its rate is known: TF32 on (half the 16-bit tensor-core
    peak), or the catalog's FP32 peak of the CUDA cores."""
    if c.spec.family not in c.cal.fp32_router_families:
        return False
    return c.cal.fp32_router_tf32 or c.gpu.fp32_tflops is not None


def _router_cast_s(c: _Ctx, tokens: float) -> float:
    """The float32 router's input cast (``hidden_states.to(torch.float32)``): one element-wise kernel reading the
    16-bit hidden states and writing them in 4 bytes; 0 where the router runs in 16 bits."""
    if tokens <= 0 or not _fp32_router(c):
        return 0.0
    return tokens * c.spec.hidden_size * (c.act_bytes + 4.0) / (c.bw * c.cal.elementwise_mem_eff) + c.kernel_s


# vLLM's fused_marlin_moe (vllm/model_executor/layers/fused_moe/fused_marlin_moe.py, read in the 0.19.0 wheel) picks
# the token block of its Marlin MoE GEMMs by "for block_size_m in [8, 16, 32, 48, 64]: if M * topk / E /
# block_size_m < 0.9: break" (M the tokens, E the experts on the rank), then moe_align_block_size pads each expert's
# tokens up to a multiple of that block: the kernel computes the padded rows.
MARLIN_BLOCKS_M = (8, 16, 32, 48, 64)
MARLIN_BLOCK_FILL = 0.9


def marlin_block_m(tokens_per_expert: float) -> int:
    """The token block fused_marlin_moe picks for ``M * topk / E`` tokens per expert (64 past them all)."""
    for block in MARLIN_BLOCKS_M:
        if tokens_per_expert / block < MARLIN_BLOCK_FILL:
            return block
    return MARLIN_BLOCKS_M[-1]


def _marlin_rows(touched: float, per_touched: float, block: int) -> float:
    """Rows the Marlin MoE GEMMs compute: each of the ``touched`` experts' ``per_touched`` tokens (uniform routing's
    mean) padded up to whole ``block``s (moe_align_block_size)."""
    return touched * math.ceil(per_touched / block - 1e-9) * block  # 1e-9: 64.0000001 tokens is one block


def triton_block_m(rows_per_expert: float) -> int:
    """The token tile OpenAI's triton_kernels ``matmul_ogs`` takes on NVIDIA GPUs for ``rows_per_expert`` routed rows
    an expert (the rank's gathered rows over its experts): ``max(16, min(next_power_of_2(tokens_per_expt), 128))``
    with ``tokens_per_expt = max(1, m // n_expts_tot)`` (triton_kernels matmul_ogs_details/opt_flags.py
    ``make_default_opt_flags_nvidia``, read in a stored copy). aiconfigurator 0.12.0's vLLM 0.24.0 gpt-oss tables step
    where it does: gpt-oss-120b on one H100, 512 tokens (16 rows an expert) 716 us, 768 (24) 846 us, 2,048 (64)
    1,041 us, 3,072 (96) 1,491 us, 6,144 (192, two tiles of 128) 2,877 us."""
    per = max(1, int(rows_per_expert))
    return max(16, min(1 << (per - 1).bit_length(), 128))


def _triton_mxfp4_s(
    c: _Ctx,
    local: float,
    touched: float,
    per_expert: int,
    *,
    rows_per_expert: float,
    loads: tuple[tuple[float, float], ...] | None = None,
) -> float:
    """The tiles of vLLM's OpenAI Triton MXFP4 experts (``OAITritonMxfp4ExpertsMonolithic``, Engine.moe_kernel
    "triton_mxfp4"): each of the ``local`` experts' rows in whole tiles of :func:`triton_block_m` (``touched`` of them
    get any), every tile computing its whole block of rows at ``triton_mxfp4_mma_eff`` of the 16-bit peak and
    converting its expert's 4-bit weights to 16 bits again (``triton_mxfp4_dequant_s`` a weight a tile on one SM); the
    two add: one H100 tile of a gpt-oss-120b expert takes about 4.3 us plus 0.055 us a row of its block in the tables
    (benchmarks/fit_moe_ops.py fits both). The tiles are those of random routing (:func:`expected_tiles`), the routing
    the touched experts already follow, unless ``loads`` gives each expert's rows (a table's own routing: each
    ``(rows, experts)`` pair's whole tiles)."""
    block = triton_block_m(rows_per_expert)
    if loads is not None:
        tiles = sum(n * math.ceil(t / block - 1e-6) for t, n in loads)  # 1e-6: 16.00001 rows are one tile
    else:
        tiles = touched + local * expected_tiles(rows_per_expert, block, first=False)
    return tiles * per_expert * (2 * block / c.triton_peak + c.triton_dequant_s)


# Past this mean the rows an expert gets are counted as normal (continuity-corrected); below it, exactly
_POISSON_NORMAL_MEAN = 20.0


@lru_cache(maxsize=8192)
def expected_tiles(mean_rows: float, block: int, *, first: bool = True) -> float:
    """``E[ceil(n / block)]`` for the rows ``n`` one expert gets when every routed row picks its expert at random with
    ``mean_rows`` on average (Poisson): ``sum over j >= 0 of P(n > j x block)``, up to ten standard deviations past the
    mean; ``first`` False leaves out the ``j = 0`` term (the expert gets any row at all, which the caller counts as its
    touched experts). Random routing gives some experts more than the mean and needs more tiles than equal shares: at
    64 rows on average and 64-row tiles, 1.475 tiles an expert, not 1. Kept per arguments (a serving fixed point asks
    for the same steps again)."""
    if mean_rows <= 0:
        return 0.0
    total = (1.0 - math.exp(-mean_rows)) if first else 0.0
    top = mean_rows + 10.0 * math.sqrt(mean_rows) + 1.0
    edge = block
    if mean_rows > _POISSON_NORMAL_MEAN:
        spread = math.sqrt(2.0 * mean_rows)
        while edge < top:
            total += 0.5 * math.erfc((edge + 0.5 - mean_rows) / spread)
            edge += block
        return total
    term = cdf = math.exp(-mean_rows)  # P(n = 0), then P(n <= i) term by term
    i = 0
    while edge < top:
        while i < edge:
            i += 1
            term *= mean_rows / i
            cdf += term
        total += max(0.0, 1.0 - cdf)
        edge += block
    return total


def _triton_mxfp4(gpu: GPU, cal: Calibration, kernel: MoeKernel | None) -> tuple[float, float]:
    """(FLOP/s on the tiles' rows, seconds per weight a tile dequantizes with every SM at work) of the OpenAI Triton
    MXFP4 experts; (0, 0) where the engine runs another kernel or its constants have no fit for it."""
    if kernel is None or kernel.name != "triton_mxfp4" or cal.triton_mxfp4_mma_eff is None or not gpu.sm_count:
        return 0.0, 0.0
    return gpu.bf16_dense_tflops * 1e12 * cal.triton_mxfp4_mma_eff, cal.triton_mxfp4_dequant_s / gpu.sm_count


def _cutlass_fp8(
    spec: ModelSpec, gpu: GPU, cal: Calibration, kernel: MoeKernel | None
) -> tuple[float, float, float] | None:
    """(FLOP/s, half width, streaming share) of per-tensor fp8 experts the engine runs through FlashInfer's CUTLASS
    fused MoE (Engine.moe_kernel "flashinfer_cutlass_fp8"): ``cutlass_fp8_moe_mma_eff`` of the GPU's dense fp8 peak on
    the grouped GEMMs' token curve and ``w / (w + cutlass_fp8_moe_half_width)``, the weights streamed at
    ``cutlass_fp8_moe_mem_eff`` of the bandwidth (the fitted grouped GEMMs' streaming where it has no fit). None where
    the engine runs another kernel, its constants have no fit for it, the GPU has no fp8 tensor cores, or the
    checkpoint's fp8 is block-scaled (its experts keep the fitted grouped GEMMs)."""
    if (kernel is None or kernel.name != "flashinfer_cutlass_fp8" or cal.cutlass_fp8_moe_mma_eff is None
            or gpu.fp8_dense_tflops is None or _block_fp8(spec)):  # fmt: skip
        return None
    mem = cal.cutlass_fp8_moe_mem_eff
    if mem is None:
        mem = cal.moe_mem_eff * _fp8_absorbed(cal)
    return gpu.fp8_dense_tflops * 1e12 * cal.cutlass_fp8_moe_mma_eff, cal.cutlass_fp8_moe_half_width, mem


def _marlin_figures(gpu: GPU, cal: Calibration, kernel: MoeKernel | None) -> tuple[float, float]:
    """The Marlin MoE kernel's figures on ``gpu``: FLOP/s of its GEMMs on their padded rows (``marlin_moe_peak_eff``
    of the dense 16-bit peak: they multiply 16-bit activations by weights dequantized to 16 bits) and the seconds per
    expert weight one token block spends dequantizing it with all SMs at work (``marlin_moe_dequant_s / sm_count``;
    0 where the catalog lacks the SM count); (0, 0) where the engine runs another kernel or its constants have no
    Marlin figure. Every block of an expert's tokens converts the expert's weights to 16 bits again in registers, so
    at a few tokens an expert the SMs' conversion, not the memory bus, sets the time: benchmarks/marlin_moe_compare.py
    measures both on aiconfigurator's Marlin MoE tables. On Ampere the constants' ``ampere_marlin_moe_peak_eff`` /
    ``ampere_marlin_moe_dequant_s`` where set (measured on aiconfigurator's A100 table, ``--ampere``). The fitted
    curve stays their floor there too, though Marlin's own terms alone fit that table far better (median |ln| 0.048
    against 0.547): alone they price vLLM's fp8 experts on the A100 so fast that the published Qwen3-235B FP8 A100
    runs go from x1.40 / x1.14 to x1.91 / x1.42 (docs/cost.md, "Marlin on Ampere")."""
    if kernel is None or kernel.name != "marlin" or cal.marlin_moe_peak_eff is None:
        return 0.0, 0.0
    peak_eff, dequant_s = cal.marlin_moe_peak_eff, cal.marlin_moe_dequant_s
    if gpu.architecture == "ampere" and cal.ampere_marlin_moe_peak_eff is not None:
        peak_eff, dequant_s = cal.ampere_marlin_moe_peak_eff, cal.ampere_marlin_moe_dequant_s
    per_sm = dequant_s / gpu.sm_count if dequant_s and gpu.sm_count else 0.0
    return gpu.bf16_dense_tflops * 1e12 * peak_eff, per_sm


def engine_moe_kernel(engine: Engine | str | None, gpu: GPU, weights_dtype: str) -> MoeKernel | None:
    """The grouped-expert kernel ``engine`` (an Engine, a name, or None for vLLM) runs for these experts where it is
    priced apart (:meth:`kvplan.engines.base.Engine.moe_kernel`); None: the fitted grouped GEMMs."""
    profile = engine if isinstance(engine, Engine) else get_engine(engine or "vllm")
    return profile.moe_kernel(weights_dtype=weights_dtype, gpu=gpu)


def _elementwise_s(c: _Ctx, tokens: float, inter_rank: int) -> float:
    """Two residual add + norm kernels and the gated activation of one layer."""
    h = c.spec.hidden_size
    norm_bytes = 2 * tokens * 3 * h * c.act_bytes  # read x and residual, write x (twice per layer)
    act_bytes = tokens * 3 * inter_rank * c.act_bytes  # read gate and up, write the product
    return (norm_bytes + act_bytes) / (c.bw * c.cal.elementwise_mem_eff) + 3 * c.kernel_s


def nvlink_domain(gpu: GPU, gpus_per_node: int | None = None) -> int:
    """GPUs that reach each other over the GPU interconnect: the node, or the NVLink domain where it spans several
    nodes (GB200 NVL72); collectives and sends over more ranks than this cross the network."""
    return max(gpus_per_node or gpu.gpus_per_node, gpu.nvlink_domain_gpus or 0)


def _link_gbps(c: _Ctx) -> float:
    if c.gpu.interconnect_gbps is None:
        raise InvalidInput(f"GPU {c.gpu.name!r} has no interconnect_gbps in the catalog; TP > 1 needs it")
    return c.gpu.interconnect_gbps


def allreduce_s(c: _Ctx, tokens: float, ranks: int | None = None) -> float:
    """One ring all-reduce of ``tokens x hidden`` 16-bit values across ``ranks`` (the TP group by default).

    Within a node: the engine's fitted latency + bandwidth. Over more ranks than a node holds the ring's
    slowest hops are the network: its latency and the NIC's bandwidth (:data:`NETWORK_GBPS`) replace NVLink's.
    """
    return allreduce_bytes_s(c, tokens * c.spec.hidden_size * c.act_bytes, ranks)


def allreduce_bytes_s(c: _Ctx, nbytes: float, ranks: int | None = None) -> float:
    """One all-reduce of ``nbytes`` across ``ranks`` (the TP group by default), priced as :func:`allreduce_s`
    describes: also a norm's per-token sums or a narrow projection's output, whose time is nearly all the fixed
    latency."""
    ranks = c.tp if ranks is None else ranks
    if ranks == 1:
        return 0.0
    terms = c.terms.get(ranks)
    if terms is None:
        terms = c.terms[ranks] = _allreduce_terms(c, ranks)
    base, ring, per_s = terms
    return base + ring * nbytes / per_s


def allreduce_class(gpu: GPU) -> str | None:
    """The GPU class whose all-reduce the engines' tables time apart (``Calibration.blackwell_allreduce_*``,
    ``gb200_allreduce_*``): ``gb200`` for Blackwell in a rack-scale NVLink domain (``nvlink_domain_gpus`` past
    ``gpus_per_node``: GB200 NVL72), ``blackwell`` for other Blackwell, None elsewhere (the one fitted figure)."""
    if gpu.architecture != "blackwell":
        return None
    if gpu.nvlink_domain_gpus is not None and gpu.nvlink_domain_gpus > (gpu.gpus_per_node or 0):
        return "gb200"
    return "blackwell"


def allreduce_constants(cal: Calibration, gpu: GPU) -> tuple[float, float, float]:
    """(fixed seconds, seconds per rank past two, bandwidth share) of the engine's all-reduce on ``gpu``: the fixed
    seconds of the GPU's class where the engine has them (:func:`allreduce_class`; benchmarks/fit_nccl.py
    --allreduce), else the one figure. aiconfigurator 0.12.0's tables time a small all-reduce 2-3 us slower on B200
    than on H100 / H200 in every engine (vLLM 0.24.0 custom graph 6.6-7.3 us against 4.2-4.7 at TP 2-8), GB200 between
    the two. The bandwidth share stays one figure (the tables' Blackwell / Hopper share ratio, 0.79-0.86, is printed
    by the fit, not adopted: the Blackwell constants the grid fitted with the one share carry it)."""
    base = cal.allreduce_base_s
    cls = allreduce_class(gpu)
    if cls == "gb200" and cal.gb200_allreduce_base_s is not None:
        base = cal.gb200_allreduce_base_s
    elif cls is not None and cal.blackwell_allreduce_base_s is not None:
        base = cal.blackwell_allreduce_base_s
    return base, cal.allreduce_rank_s, cal.allreduce_bw_eff


def _allreduce_terms(c: _Ctx, ranks: int) -> tuple[float, float, float]:
    """(fixed seconds, ring factor, bytes/s) of one all-reduce over ``ranks``: within a node the engine's fitted
    latency and NVLink at its bandwidth share (per GPU class: :func:`allreduce_constants`); across nodes the network's
    latency added and the NIC's bandwidth."""
    link = _link_gbps(c)
    base_s, rank_s, eff = allreduce_constants(c.cal, c.gpu)
    base = base_s + rank_s * (ranks - 2)
    ring = 2 * (ranks - 1) / ranks
    if ranks > c.gpus_per_node:
        return base + NETWORK_LATENCY_S, ring, NETWORK_GBPS * 1e9 * NETWORK_BW_EFF
    return base, ring, link * 1e9 * eff


# The GEMM + all-reduce kernel's output tiles (TensorRT-LLM cpp/tensorrt_llm/kernels/cutlass_kernels/allreduce_gemm/
# allreduce_gemm_runner.cu @038ba99c, GemmAllReduceImplRunner::initializeRegistry): on SM100 one launch config, NVLS
# two-shot, 2-SM MMA, per-CTA tiles of 128 rows x 256 output features (TileShape_128x256x128, not transposed;
# allreduce_gemm_impl_sm100.h @1a71cc69 GemmAllReduceImplTwoshot_Sm100); on SM90 the operands swapped (transposed):
# 128 output features x 16, 32, 64 or 128 rows, the plugin's static choice by M (plugins/gemmAllReducePlugin/
# gemmAllReducePlugin.cpp @2a9abd95 getStaticHeuristicLaunchConfig: M <= 16, <= 32, <= 64, else 128). Both persistent
# over the GPU's SMs; other GPUs have no such kernel ("SM architecture not supported for GEMM+AR fusion").
FUSED_AR_TILE = {"blackwell": (128, 256)}  # (rows, output features) per CTA
FUSED_AR_HOPPER_TILE_N = 128
FUSED_AR_HOPPER_TILE_M = (16, 32, 64, 128)


def fused_allreduce_waves(gpu: GPU, rows: float, *, features: int) -> int | None:
    """Waves of output tiles the fused GEMM + all-reduce kernel runs ``rows x features`` in on ``gpu`` (its tiles
    over the SMs, :data:`FUSED_AR_TILE`); None where the GPU has no such kernel or its SM count is not known."""
    if not gpu.sm_count or rows <= 0:
        return None
    m = int(math.ceil(rows))
    if gpu.architecture == "blackwell":
        tile_m, tile_n = FUSED_AR_TILE["blackwell"]
        tiles = ceil_div(m, tile_m) * ceil_div(features, tile_n)
    elif gpu.architecture == "hopper":
        tile_m = next((t for t in FUSED_AR_HOPPER_TILE_M if m <= t), FUSED_AR_HOPPER_TILE_M[-1])
        tiles = ceil_div(features, FUSED_AR_HOPPER_TILE_N) * ceil_div(m, tile_m)
    else:
        return None
    return ceil_div(tiles, gpu.sm_count)


def fused_gemm_allreduce_s(gemm_s: float, reduce_s: float, *, waves: int) -> float:
    """One GEMM fused with its all-reduce, in ``waves`` waves of output tiles: the kernel's all-reduce warps reduce a
    tile over the TP group once every rank has written it, while its MMA warps compute the next wave
    (kernel/sm100_gemm_allreduce_tma_warpspecialized.hpp @0cc33dbe: the AllReduce warp category runs
    ``gather_reduce_broadcast`` per work tile beside the MMA and epilogue warps). A two-stage pipeline over the waves:
    the first wave's GEMM, each later wave's GEMM beside the previous wave's all-reduce, the last wave's all-reduce:
    ``(gemm + reduce) / w + (w - 1) / w x max(gemm, reduce)``. One wave: the GEMM then its all-reduce, no gain; many:
    the longer of the two. The all-reduce is priced as the engine's own (:func:`allreduce_s`, the same bytes at the
    fitted rate); the NVLS two-shot's lighter traffic (each rank sends and receives its output ``1 + 1 / R`` times,
    against a ring's ``2 (R - 1) / R``) is not priced."""
    return (gemm_s + reduce_s) / waves + (waves - 1) / waves * max(gemm_s, reduce_s)


def _fuses_gemm_allreduce(c: _Ctx) -> bool:
    """The engine fuses the row-parallel GEMMs with their all-reduce (``Calibration.gemm_allreduce_fused``) and can
    here: a TP group within one NVLink domain (NVLS multicast), on a GPU with the kernel (fused_allreduce_waves)."""
    return (c.cal.gemm_allreduce_fused and c.dp == 1 and 1 < c.tp <= c.gpus_per_node
            and fused_allreduce_waves(c.gpu, 1, features=c.spec.hidden_size) is not None)  # fmt: skip


def _row_parallel_gemms(c: _Ctx, kind: LayerKind, tokens: float, *, dense: bool, width: int) -> list[float]:
    """Seconds of each row-parallel GEMM of one layer whose all-reduce follows it, the GEMM proper (without the
    kernels before it, :func:`_gemm_pre_s`, which the fused kernel does not take in): o_proj of a standard attention
    layer (the second part of :func:`_attention_gemms_s`) and down_proj of a dense MLP. A MoE layer's second all-reduce
    follows its experts (TensorRT-LLM's MoE plugin), not a GEMM: not listed."""
    spec, h, out = c.spec, c.spec.hidden_size, []
    parts = _fact(spec, ("parts", id(kind), c.tp),
                  lambda: [p.params for p in attention_parts(spec, kind, c.tp) if p.quantizable])  # fmt: skip
    if kind.type in ("full", "sliding", "chunked") and len(parts) >= 3:
        o_k = parts[2] // h
        out.append(_gemm_s(c, tokens, parts[2], h + o_k, k=o_k) - _gemm_pre_s(c, tokens, o_k))
    inter_rank = ceil_div(width, c.tp) if dense and kind.mlp else 0
    if inter_rank:
        gemm = _gemm_s(c, tokens, h * inter_rank, h + inter_rank, k=inter_rank)
        out.append(gemm - _gemm_pre_s(c, tokens, inter_rank))
    return out


def _fused_allreduce_delta_s(c: _Ctx, kind: LayerKind, tokens: float, *, dense: bool, width: int) -> float:
    """What fusing one layer's row-parallel GEMMs with their all-reduces changes (0 or negative): each
    :func:`fused_gemm_allreduce_s` against the GEMM and the all-reduce one after the other."""
    waves = fused_allreduce_waves(c.gpu, tokens, features=c.spec.hidden_size)
    reduce = allreduce_s(c, tokens)
    return sum(fused_gemm_allreduce_s(g, reduce, waves=waves) - g - reduce
               for g in _row_parallel_gemms(c, kind, tokens, dense=dense, width=width))  # fmt: skip


def allgather_s(c: _Ctx, tokens: float, *, bytes_per_element: float) -> float:
    """One ring all-gather (or reduce-scatter: the same traffic) of ``tokens x hidden`` values in all over the
    ``moe_ranks``: each rank receives ``(R - 1) / R`` of them; half an all-reduce's wire (:func:`allreduce_s`,
    which is a reduce-scatter then an all-gather), with the same latency and bandwidth constants."""
    ranks = c.moe_ranks
    if ranks == 1 or tokens <= 0:
        return 0.0
    payload = tokens * c.spec.hidden_size * bytes_per_element
    base = c.cal.allreduce_base_s + c.cal.allreduce_rank_s * (ranks - 2)
    if ranks > c.gpus_per_node:
        return base + NETWORK_LATENCY_S + (ranks - 1) / ranks * payload / (NETWORK_GBPS * 1e9 * NETWORK_BW_EFF)
    return base + (ranks - 1) / ranks * payload / (_link_gbps(c) * 1e9 * c.cal.allreduce_bw_eff)


def alltoall_s(c: _Ctx, tokens: float, *, bytes_per_element: float) -> float:
    """One expert-parallel dispatch or combine on one rank: ``tokens`` (the rank's own) each sent to its top-k
    experts, spread uniformly over ``moe_ranks``; latency + bandwidth (constants: benchmarks/fit_alltoall.py).

    Logical bytes ``tokens x k x hidden x bytes_per_element`` (DeepEP's measure, the rank's own share included):
    the share on this node's ranks goes over NVLink at ``A2A_NVLINK_BW_EFF`` of the catalog figure, the share on
    other nodes' ranks through the NIC; the two paths run at once, the slower sets the time. Latency: within a
    node the engine's fitted all-reduce latency (one kernel with a barrier), across nodes ``NETWORK_LATENCY_S``.
    """
    ranks = c.moe_ranks
    if ranks == 1 or tokens <= 0:
        return 0.0
    moe = c.spec.moe
    logical = tokens * moe.experts_per_token * c.spec.hidden_size * bytes_per_element
    local = min(ranks, c.gpus_per_node)
    nvlink = logical * local / ranks / (_link_gbps(c) * 1e9 * A2A_NVLINK_BW_EFF)
    if ranks <= c.gpus_per_node:
        return c.cal.allreduce_base_s + c.cal.allreduce_rank_s * (ranks - 2) + nvlink
    network = logical * (ranks - local) / ranks / (NETWORK_GBPS * 1e9 * NETWORK_BW_EFF)
    return NETWORK_LATENCY_S + max(nvlink, network)


class NcclFit(NamedTuple):
    """NCCL's two protocol families within one NVLink domain (:func:`nccl_collective_s`): LL (low latency, a small
    share of the link) and Simple / LL128 (more latency, most of the link); seconds, seconds per rank past two, and
    the share of the catalog ``interconnect_gbps`` each reaches."""

    ll_base_s: float
    ll_rank_s: float
    ll_bw_eff: float
    simple_base_s: float
    simple_rank_s: float
    simple_bw_eff: float


# Fitted by benchmarks/fit_nccl.py (it prints this block) to the NCCL all_gather and reduce_scatter timings that
# aiconfigurator 0.12.0 collected on H100, H200 and B200 SXM at 2, 4 and 8 GPUs, 512 B to 512 MiB
# (systems/data/<system>/comm/nccl/<misc.nccl_version>/nccl_perf.parquet; sample in benchmarks/data/nccl_perf.json).
NCCL_FITS: dict[str, NcclFit] = {
    "hopper": NcclFit(
        ll_base_s=5.843e-06,
        ll_rank_s=8.765e-07,
        ll_bw_eff=0.1408,
        simple_base_s=2.164e-05,
        simple_rank_s=7.883e-11,
        simple_bw_eff=0.3241,
    ),
    # hopper: 252 points, median |ln(model / measured)| 0.064, worst 0.331
    "blackwell": NcclFit(
        ll_base_s=8.703e-06,
        ll_rank_s=1.326e-06,
        ll_bw_eff=0.1165,
        simple_base_s=2.63e-05,
        simple_rank_s=4.578e-06,
        simple_bw_eff=0.3119,
    ),
    # blackwell: 126 points, median |ln(model / measured)| 0.066, worst 0.329
}


def nccl_collective_s(c: _Ctx, nbytes: float, ranks: int | None = None) -> float | None:
    """One NCCL all-gather or reduce-scatter of a ``nbytes`` tensor (the gathered output, the reduce-scatter's input)
    over ``ranks`` (the ``moe_ranks`` by default) within one NVLink domain: NCCL runs the protocol its tuner predicts
    fastest (NVIDIA/nccl ``src/graph/tuning.cc``), so the faster of ``base + rank x (R - 2) + (R - 1) / R x bytes /
    (link x eff)`` for LL and for Simple (:data:`NCCL_FITS`, per GPU architecture). None where no fit covers the GPU's
    architecture or the ranks span nodes (the caller keeps :func:`allgather_s`)."""
    fit = NCCL_FITS.get(c.gpu.architecture or "")
    ranks = c.moe_ranks if ranks is None else ranks
    if fit is None or ranks > c.gpus_per_node:
        return None
    if ranks == 1 or nbytes <= 0:
        return 0.0
    wire = (ranks - 1) / ranks * nbytes / (_link_gbps(c) * 1e9)
    ll = fit.ll_base_s + fit.ll_rank_s * (ranks - 2) + wire / fit.ll_bw_eff
    simple = fit.simple_base_s + fit.simple_rank_s * (ranks - 2) + wire / fit.simple_bw_eff
    return min(ll, simple)


def _gather_s(c: _Ctx, tokens: float, *, bytes_per_element: float) -> float:
    """The DP all-gather (or reduce-scatter) of ``tokens`` rows of the MoE exchange: NCCL's measured protocols where
    the engine runs it through NCCL (``Overlap.moe_allgather_nccl``) and a fit covers the GPU, else
    :func:`allgather_s`."""
    if c.rules.moe_allgather_nccl:
        t = nccl_collective_s(c, tokens * c.spec.hidden_size * bytes_per_element)
        if t is not None:
            return t
    return allgather_s(c, tokens, bytes_per_element=bytes_per_element)


def send_s(c: _Ctx, nbytes: float, *, crosses_nodes: bool) -> float:
    """One point-to-point send of ``nbytes`` per rank (pipeline stages, KV transfer): latency + bandwidth."""
    return _send_seconds(c.gpu, c.cal, nbytes, crosses_nodes=crosses_nodes)


def _send_seconds(
    gpu: GPU, cal: Calibration, nbytes: float, *, crosses_nodes: bool, nic_gbps: float | None = None
) -> float:
    if nbytes <= 0:
        return 0.0
    if crosses_nodes:
        return NETWORK_LATENCY_S + nbytes / ((nic_gbps or NETWORK_GBPS) * 1e9 * NETWORK_BW_EFF)
    if gpu.interconnect_gbps is None:
        raise InvalidInput(f"GPU {gpu.name!r} has no interconnect_gbps in the catalog; a send within a node needs it")
    return cal.allreduce_base_s + nbytes / (gpu.interconnect_gbps * 1e9 * A2A_NVLINK_BW_EFF)


def kv_transfer_s(
    gpu: GPU, nbytes_per_rank: float, *, crosses_nodes: bool, engine: str | None = None, nic_gbps: float | None = None
) -> float:
    """Moving one request's KV cache from the prefill pool to the decode pool: every rank pulls its own share at
    once (vLLM's NixlConnector reads the blocks rank to rank over RDMA), so the busiest rank's bytes set the time.
    ``nic_gbps``: the network bandwidth per GPU, GB/s each way (default :data:`NETWORK_GBPS`, one 400 Gb/s NIC per
    GPU; a node of 8 GPUs with 4 x 400 GbE gives each 25). Latency and bytes only: the fixed cost of the
    transfer engine's entries is added by :func:`kvplan.disagg.entry_cost_s`. Validated against published transfer
    times by benchmarks/kv_transfer_compare.py (docs/cost.md)."""
    return _send_seconds(gpu, calibration(engine), nbytes_per_rank, crosses_nodes=crosses_nodes, nic_gbps=nic_gbps)


# The latency memos (_PLANS, _FACTS, _CTXS, _PARTS and kvplan.serving._STEPS) are emptied when they outgrow a cap,
# so a long-lived library process (a notebook sweeping many models) holds bounded memory; a cleared memo costs only
# recomputation. Each cap sits above what one plan fills: `plan llama-3.1-70b --rate 10 ...` over H100, H200 and
# B200 leaves 11 plans, 76 facts, 62 contexts, 12,278 kept parts and 3,872 steps (measured at stop 20).
_PLANS: dict[tuple[int, str, int, int], tuple[ModelSpec, object]] = {}
# Per-spec facts the hot path asks for thousands of times (serving's fixed points, plan's searches): kept per
# spec object like the cache plans, checked by identity.
_FACTS: dict[tuple, tuple[ModelSpec, object]] = {}


def _fact(spec: ModelSpec, key: tuple, make):  # noqa: ANN001, ANN202
    full = (id(spec), *key)
    hit = _FACTS.get(full)
    if hit is None or hit[0] is not spec:
        if len(_FACTS) > 4096:
            _FACTS.clear()
        hit = _FACTS[full] = (spec, make())
    return hit[1]


# Figures of one context that repeat within a step and between steps: a layer's GEMMs at a token count recur in
# every pipeline stage, a stage's decode attention in the micro-batch with a prompt chunk and in the one without.
# Keyed by the context's identity (it is frozen and kept by _shared_ctx; each entry holds it, so its id is not
# reused while the entry lives) and the exact arguments: a hit returns the very figure the call would compute.
_PARTS: dict[tuple, tuple[object, object]] = {}


def _keep(key: tuple, c: _Ctx, value: object) -> tuple[_Ctx, object]:
    """Enter ``value`` in :data:`_PARTS` under ``key`` (which starts with ``id(c)``); returns the entry. Callers
    look the key up first (``hit = _PARTS.get(key)``; a hit counts where ``hit[0] is c``)."""
    if len(_PARTS) > 16384:
        _PARTS.clear()
    entry = _PARTS[key] = (c, value)
    return entry


def _layer_keys(spec: ModelSpec, layers: range) -> dict[tuple[str, bool, int], int]:
    """How many layers of ``layers`` share each (kind name, dense MLP, its width): they cost the same.
    The width differs per layer only with mlp_widths (Nemotron-NAS); 0 for MoE layers and absent MLPs."""
    hit = _FACTS.get((id(spec), "keys", layers.start, layers.stop))  # every micro-step asks: looked up first
    if hit is not None and hit[0] is spec:
        return hit[1]

    def make() -> dict[tuple[str, bool, int], int]:
        names, dense = spec.layer_kind_names, spec.dense_mlp_layers
        counts: dict[tuple[str, bool, int], int] = {}
        for i in layers:
            is_dense = spec.moe is None or i in dense
            key = (names[i], is_dense, spec.mlp_width(i) if is_dense else 0)
            counts[key] = counts.get(key, 0) + 1
        return counts

    return _fact(spec, ("keys", layers.start, layers.stop), make)


def _plan(spec: ModelSpec, kv_dtype: str, tp: int, pp: int = 1):  # noqa: ANN202
    """The cache plan, kept per spec object (serving evaluates thousands of steps of one setup)."""
    return kept_for_spec(_PLANS, spec, (kv_dtype, tp, pp),
                         lambda: cache_plan(spec, kv_dtype, tp=tp, pp=pp, mla="latent"))  # fmt: skip


_VIEWS: dict[tuple, tuple[ModelSpec, ModelSpec]] = {}
_NO_SETTINGS = Settings()


def past_graph_cap(
    spec: ModelSpec,
    engine: Engine | str | None,
    settings: Settings | None = None,
    *,
    decode_seqs: float,
    dp: int = 1,
    pp: int = 1,
) -> bool:
    """Whether a decode step of ``decode_seqs`` sequences is larger, on its busiest rank and micro-batch (``dp``
    ranks, then ``m = min(pp, per rank)`` micro-batches, as :func:`step_latency` splits it), than the engine's largest
    captured CUDA graph (:meth:`kvplan.engines.base.Engine.graph_token_cap`): such a step runs without one and pays
    ``eager_kernel_s`` per launch. None for ``engine``: vLLM, as :func:`calibration`. With ``settings.cuda_graphs``
    False (a runtime that captures no graph) every decode step runs eagerly."""
    return beyond_graph_cap(graph_cap(spec, engine, settings), decode_seqs=decode_seqs, dp=dp, pp=pp)


def graph_cap(
    spec: ModelSpec, engine: Engine | str | None, settings: Settings | None = None
) -> tuple[bool, int | None]:
    """What :func:`past_graph_cap` reads of the engine, whatever the batch: (every decode step runs without a graph,
    the largest graph's tokens on a rank or None). Callers pricing many steps of one setup keep it
    (kvplan.serving)."""
    if settings is not None and settings.cuda_graphs is False:
        return True, None
    profile = engine if isinstance(engine, Engine) else get_engine(engine or "vllm")
    return False, profile.graph_token_cap(spec, settings or _NO_SETTINGS)


def beyond_graph_cap(cap: tuple[bool, int | None], *, decode_seqs: float, dp: int = 1, pp: int = 1) -> bool:
    """:func:`past_graph_cap` from the engine's :func:`graph_cap`."""
    eager, tokens = cap
    if eager:
        return True
    if tokens is None:
        return False
    rank = decode_seqs / dp
    return math.ceil(rank / min(float(pp), max(1.0, rank)) - 1e-9) > tokens


def _with_view_passes(c: _Ctx, spec: ModelSpec, engine: Engine | str | None, settings: Settings | None,
                      rank_seqs: float) -> _Ctx:  # fmt: skip
    """``c`` with the engine's decode cache-read multiplier for ``rank_seqs`` decodes on a rank
    (:meth:`kvplan.engines.base.Engine.decode_view_passes`: llama.cpp's unified cache); ``c`` itself where it is 1."""
    if settings is None:
        return c
    profile = engine if isinstance(engine, Engine) else get_engine(engine or "vllm")
    passes = profile.decode_view_passes(spec, settings, rank_seqs)
    return c if passes == 1.0 else replace(c, view_passes=passes)


def kernel_spec(spec: ModelSpec, engine: Engine | str | None, settings: Settings | None = None) -> ModelSpec:
    """``spec`` as ``engine``'s attention kernels see it: each windowed layer kind (sliding or chunked) with the
    span the engine's kernels read and compute (:meth:`kvplan.engines.base.Engine.attention_spans`): a sliding
    window of that many keys, or full attention where the engine reads every cached token. ``spec`` itself where the
    kernels follow the checkpoint (or it has no windowed layers). Only the attention's FLOPs and cache reads use the
    view; the kind names, and so every layer's GEMMs, stay the model's. One view object per spec object and spans
    (the latency's per-spec caches key on it by identity)."""
    if not _windowed(spec):
        return spec
    profile = engine if isinstance(engine, Engine) else get_engine(engine or "vllm")  # None: vLLM, as calibration
    spans = profile.attention_spans(spec, settings or _NO_SETTINGS)
    if not spans:
        return spec
    return kept_for_spec(_VIEWS, spec, tuple(sorted(spans.items(), key=lambda item: item[0])),
                         lambda: spans_view(spec, spans))  # fmt: skip


def _windowed(spec: ModelSpec) -> bool:
    """Whether any layer kind of ``spec`` has a sliding window or an attention chunk."""
    return _fact(spec, ("windowed",), lambda: any(k.type in ("sliding", "chunked") for k in spec.layers.kinds.values()))


@dataclass(frozen=True)
class _Stage:
    """One pipeline stage: its layers, whether it embeds (first) and samples (last), and its cache plan index."""

    index: int
    layers: range
    first: bool
    last: bool
    shape: int = 0  # stages of one model and pp with the same shape (kinds, dense MLP widths) cost the same
    keys: tuple = ()  # its layers by (kind name, dense MLP, width) with their counts (:func:`_layer_keys`), in order


def _stages(spec: ModelSpec, pp: int) -> list[_Stage]:
    def make() -> list[_Stage]:
        ranges = pipeline_stages(spec.num_layers, pp)
        stages = [_Stage(i, r, i == 0, i == pp - 1) for i, r in enumerate(ranges)]
        shapes: dict[tuple, int] = {}
        # the kinds in order and whether each layer's MLP is dense and how wide (mlp_widths, dense layers between MoE
        # ones: the kind names alone do not say; no bundled model and pp 2-8 has two stages that differ only there)
        keys = [(_stage_kinds(spec, st), *_layer_keys(spec, st.layers).items()) for st in stages]
        return [replace(st, shape=shapes.setdefault(k, len(shapes)), keys=tuple(_layer_keys(spec, st.layers).items()))
                for st, k in zip(stages, keys, strict=True)]  # fmt: skip

    return _fact(spec, ("stages", pp), make)


def _mla_layers(spec: ModelSpec, layers: range) -> int:
    def make() -> int:
        names = spec.layer_kind_names
        if len(layers) == spec.num_layers:
            return sum(n for name, n in spec.kind_counts.items() if spec.kind(name).type == "mla")
        return sum(1 for i in layers if spec.kind(names[i]).type == "mla")

    return _fact(spec, ("mla", layers.start, layers.stop), make)


def _mixerless_layers(spec: ModelSpec, layers: range) -> int:
    """Layers of kind type ``none`` in ``layers``: no attention and no recurrent mixer (Nemotron-H's MLP/MoE-only
    layers, NemotronHBlock with an ``mlp``/``moe`` block_type; Deci's no-op or linear-replacement attention). They
    launch no attention kernel, so they pay none of its fixed charges."""

    def make() -> int:
        names = spec.layer_kind_names
        return sum(1 for i in layers if spec.kind(names[i]).type == "none")

    return _fact(spec, ("mixerless", layers.start, layers.stop), make)


def _attention_s(
    c: _Ctx,
    *,
    phase: str,
    context: int,
    batch: float,
    attention_flops: float,
    kv_dtype: str,
    stage: _Stage | None = None,
    prefix: int = 0,
) -> float:
    """Attention kernels of one stage (all layers with attention or recurrent state when ``stage`` is None).

    At prefill the ``batch`` prompts each read ``context - prefix`` new tokens after ``prefix`` cached ones (a
    chunk of a longer prompt: ``batch`` 1); the Mamba2 mixers' kernels scale with those new tokens."""
    if phase != "prefill":
        return _decode_attention_s(c, context, batch, kv_dtype, stage)
    spec = c.spec
    layers = stage.layers if stage is not None else range(spec.num_layers)
    mixers = len(layers) - _mixerless_layers(spec, layers)  # layers that run an attention or a recurrent mixer
    mla = _mla_layers(spec, layers)
    if phase == "prefill":
        any_mla = mla if stage is None else _mla_layers(spec, range(spec.num_layers))
        # FLOPs at the kernel's asymptotic efficiency, plus the same times half_len / L: the per-query-row work (Q
        # loads, output writes, tile prologues) that makes short prompts slower. Only the first moves to FP8 tensor
        # cores where the engine runs them (fmha_gain; MLA's context kernels keep mla_prefill_eff's figure).
        gain = 1.0 if any_mla else c.fmha_gain
        compute = attention_flops / (c.peak16 * (c.cal.mla_prefill_eff if any_mla else c.cal.attn_prefill_eff))
        ssm = _recurrent_terms(spec, layers, c.tp)
        # a recurrent-only layer pays its mixer's kernels (_recurrent_prefill_s), not the attention's fixed cost
        fixed = (mixers - ssm.own_layers) * (c.cal.attn_layer_s + c.kernel_s) + mla * c.cal.mla_layer_s
        mamba = _recurrent_prefill_s(c, ssm, batch * (context - prefix), prompts=batch) if ssm.groups else 0.0
        if _sparse_mla(spec):  # DSA: FlashMLA's sparse kernel on the padded heads, at its published efficiency
            return attention_flops * _sparse_head_pad(c) / (c.peak16 * c.cal.sparse_mla_prefill_eff) + fixed + mamba
        return compute / gain + compute * c.cal.attn_prefill_half_len / context + fixed + mamba
    raise ValueError(f"unknown phase {phase!r}")  # pragma: no cover (the branch above returns)


class _DecodeGroup(NamedTuple):
    """What one cache group's decode attention reads of its kind, the context and the engine's constants, taken once
    per context, KV dtype and stage (:func:`_decode_groups`); the figures come from the same expressions."""

    count: int
    kind: LayerKind
    layer: object  # kvplan.memory.LayerCache
    recurrent: bool  # the layer is a recurrent mixer alone
    mixers: bool  # it runs a recurrent mixer (alone or beside its attention)
    launches: float  # the mixers' decode kernels x kernel_s
    ssu_bytes: int  # of its state a sequence's SSM state the engine's timed state update moves (_ssu_split); 0: none
    ssu_eff: float  # that update's share of the bandwidth (0.0 where ssu_bytes is 0)
    shared_bytes: int  # a KV-sharing layer's bytes per token of the layer it reads; 0: not shared
    mmha: bool  # Hopper's per-head kernel (_runs_mmha)
    fit: DecodeAttention | None  # the engine's fitted GQA/MHA decode kernel (_gqa_decode_fit)
    kv_heads: int  # the rank's KV heads, with a fit
    kv_8bit: bool


def _decode_groups(c: _Ctx, kv_dtype: str, stage: _Stage | None) -> tuple[tuple[_DecodeGroup, ...], float, dict]:
    """The cache groups of a stage's decode attention (:func:`_decode_attention_s`), its MLA layers' fixed seconds
    (``mla x _mla_decode_layer_s``) and a dict for the groups' reads per context: what every decode step of this
    context asks again, whatever its batch."""
    spec = c.spec
    layers = stage.layers if stage is not None else range(spec.num_layers)
    kv_8bit = element_size(kv_dtype).bytes_per_element < 2
    groups = []
    for count, layer in _plan(spec, kv_dtype, c.tp, c.pp).stages[stage.index if stage is not None else 0].groups:
        kind = spec.kind(layer.kind)
        if kind.type == "none":  # no attention, no mixer (an MLP-only layer): no attention charges
            continue
        mixers = recurrent_kinds(kind)
        fit = _gqa_decode_fit(c, kind)
        groups.append(_DecodeGroup(
            count, kind, layer, kind.type == "recurrent", bool(mixers),
            sum(DECODE_KERNELS[m.variant] for m in mixers) * c.kernel_s, *_ssu_split(c, kind),
            _shared_bytes(spec, layer.kind, kv_dtype, c.tp) if kind.kv_shared else 0, _runs_mmha(c, kind), fit,
            ceil_div(spec.kv_heads_of(kind), c.tp) if fit is not None else 0, kv_8bit,
        ))  # fmt: skip
    return tuple(groups), _mla_layers(spec, layers) * _mla_decode_layer_s(c, kv_dtype), {}


def _decode_attention_s(c: _Ctx, context: int, batch: float, kv_dtype: str, stage: _Stage | None) -> float:
    """:func:`_attention_s` at decode: each cache group's kernels for ``batch`` sequences at ``context`` tokens."""
    key = ("decode", kv_dtype, stage.index if stage is not None else -1)
    terms = c.terms.get(key)
    if terms is None:
        terms = c.terms[key] = _decode_groups(c, kv_dtype, stage)
    groups, mla_s, by_context = terms
    reads = by_context.get(context)  # each group's bytes a sequence reads at this context, its mixer's state aside
    if reads is None:
        if len(by_context) > 256:  # a serving run asks for a few contexts (the mean, a quantile's, own lengths)
            by_context.clear()
        reads = by_context[context] = tuple(g.layer.read_at(context) - g.layer.state_bytes for g in groups)
    total = 0.0
    for g, read in zip(groups, reads, strict=True):
        count, kind, layer = g.count, g.kind, g.layer
        # a recurrent mixer's state, read and written back (_recurrent_decode_s; 0.0: none)
        mixer = 0.0
        if g.mixers:
            mixer = 2 * (batch * (layer.state_bytes - g.ssu_bytes)) / (c.bw * c.cal.attn_decode_mem_eff) + g.launches
            if g.ssu_bytes:
                mixer += 2 * (batch * g.ssu_bytes) / (c.bw * g.ssu_eff)
        if g.recurrent:
            total += count * mixer
            continue
        # a window's last W tokens, a chunk's current tokens (decode_span); a parallel mixer's state priced apart
        held = batch * read
        if kind.kv_shared:  # caches nothing, reads the K/V of the earlier layer it shares over its own span
            held = batch * g.shared_bytes * decode_span(kind, context)
        held *= c.view_passes
        if g.mmha:
            total += count * (_mmha_decode_s(c, held=held, batch=batch, span=decode_span(kind, context)) + mixer)
            continue
        if g.fit is not None:  # the KV heads replicated where TP exceeds them
            total += count * (_gqa_decode_s(g.fit, c.bw, held=held, batch=batch, kv_heads=g.kv_heads,
                                            kv_8bit=g.kv_8bit) + mixer)  # fmt: skip
            continue
        if kind.type == "mla" and kind.index_topk:  # DeepSeek Sparse Attention: indexer + sparse kernel
            t = _dsa_decode_s(c, kind, context=context, batch=batch, kv_dtype=kv_dtype)
        elif kind.type == "mla":
            heads = ceil_div(c.spec.num_attention_heads, c.tp)
            flops = 2 * batch * heads * (2 * kind.kv_lora_rank + kind.qk_rope_head_dim) * context
            t = max(held / (c.bw * c.cal.mla_decode_mem_eff), flops / (c.peak16 * c.cal.mla_decode_flops_eff))
        else:
            t = held / (c.bw * c.cal.attn_decode_mem_eff)
        total += count * (t + c.cal.attn_layer_s + batch * c.cal.attn_seq_s + mixer)
    return total + mla_s


# Kernels DSA adds to each layer of a decode step, each paying kernel_s. vLLM, read through the code index:
# vllm/model_executor/models/deepseek_v2.py Indexer.forward (the 0.11 copy) runs, beside its GEMMs (wq_b, wk,
# weights_proj: the layer's GEMMs, kvplan.params._indexer_parts), the key's LayerNorm (k_norm), one rotary_emb for the
# query and key, per_token_group_quant_fp8 for the query ("k quant is fused with cache insertion") and the weights'
# scaling by q_scale; vllm/model_executor/layers/sparse_attn_indexer.py sparse_attn_indexer, decode branch:
# ops.indexer_k_quant_and_cache, DeepGEMM fp8_paged_mqa_logits, top_k_per_row_decode (persistent_topk in later
# copies); vllm/v1/attention/backends/mla/flashmla_sparse.py FlashMLASparseImpl.forward:
# triton_convert_req_index_to_global_index. Eight; the concatenations of the RoPE and plain halves are taken as
# fused into their neighbours (torch.compile), not counted.
DSA_DECODE_KERNELS = 8
# Bytes a decode token's index list moves per selected key: int32 indices written by the top-k kernel, then read and
# written again by the slot conversion (the same three kernels).
DSA_INDEX_BYTES_PER_KEY = 3 * 4
# Bytes per cached key the indexer's logits move: a float32 score written by fp8_paged_mqa_logits (its output is
# [tokens, max_model_len] float32, filled up to each sequence's length) and read back by the top-k kernel.
DSA_LOGIT_BYTES_PER_KEY = 2 * 4
# FlashMLA's decode kernel runs the query heads of a rank in tiles of 64 (vLLM's FlashMLASparseMetadataBuilder sizes
# its scheduler "from FlashMLA/csrc/pybind.cpp": cdiv(h_q // h_k, 2 * 64) head blocks per split).
FLASHMLA_DECODE_HEAD_TILE = 64


def _dsa_decode_s(c: _Ctx, kind: LayerKind, *, context: int, batch: float, kv_dtype: str) -> float:
    """Seconds of one DeepSeek Sparse Attention layer's kernels at decode, ``batch`` sequences at ``context`` tokens
    (the layer's fixed ``attn_layer_s`` / ``attn_seq_s`` and the MLA block's are the caller's).

    * **Indexer** (every rank, its 64 heads are not split by TP): the token's query scores every cached index key,
      DeepGEMM's ``fp8_paged_mqa_logits`` (deepseek-ai/DeepGEMM README, "MQA Scoring Kernels (Lightning Indexer)":
      "Paged version (for decoding)"): ``context`` keys of :func:`kvplan.memory.dsa_index_key_bytes` (fp8 + scales)
      plus their float32 logits written and read by the top-k kernel, at ``attn_decode_mem_eff`` of the bandwidth,
      against ``2 x index_n_heads x index_head_dim`` FLOPs a key at the fp8 peak x ``attn_prefill_eff`` (as the
      prompt's indexer, :func:`indexer_prefill_s`); the slower of the two. It grows with the context.
    * **Sparse MLA** over the ``index_topk`` keys it selects, in the absorbed 576/512 form
      (``2 x heads x (2 x kv_lora_rank + qk_rope_head_dim)`` FLOPs a key): ``min(context, index_topk)`` rows of
      :func:`kvplan.memory.dsa_latent_row_bytes` at ``mla_decode_mem_eff``, or the FLOPs, the slower. What runs
      (vLLM ``FlashMLASparseImpl.forward``): a 16-bit cache takes ``_forward_bf16_kv``, FlashMLA's sparse prefill
      kernel with the rank's heads padded to the engine's multiple (:func:`_sparse_head_pad`) at
      ``sparse_mla_prefill_eff``; an fp8 cache (``fp8_ds_mla``) takes ``_forward_fp8_kv_decode``,
      ``flash_mla_with_kvcache(..., is_fp8_kvcache=True, indices=...)``, whose scheduler is given ``index_topk`` keys
      for every query (``get_mla_metadata(cache_seqlens=topk_tokens, topk=topk_tokens)``): its FLOPs run over all
      ``index_topk`` slots at any context (unused ones hold -1), its heads in tiles of 64, at
      ``sparse_mla_decode_eff``. It stops growing at ``index_topk`` keys.
    * **Top-k selection**: the indices, written and converted to cache slots (:data:`DSA_INDEX_BYTES_PER_KEY`).
    * :data:`DSA_DECODE_KERNELS` launches at ``kernel_s``.
    """
    cal, seqs = c.cal, batch * c.view_passes
    index_flops = 2 * kind.index_n_heads * kind.index_head_dim * context * seqs
    index_bytes = (dsa_index_key_bytes(kind) + DSA_LOGIT_BYTES_PER_KEY) * context * seqs
    arch = cal.blackwell_compute_eff if c.gpu.architecture == "blackwell" else 1.0
    fp8_peak = c.gpu.fp8_dense_tflops * 1e12 * arch if c.gpu.fp8_dense_tflops else c.peak16
    indexer = max(index_bytes / (c.bw * cal.attn_decode_mem_eff), index_flops / (fp8_peak * cal.attn_prefill_eff))
    select = DSA_INDEX_BYTES_PER_KEY * kind.index_topk * seqs / (c.bw * cal.attn_decode_mem_eff)
    return (
        indexer
        + _sparse_decode_s(c, kind, context=context, seqs=seqs, kv_dtype=kv_dtype)
        + select
        + (DSA_DECODE_KERNELS * c.kernel_s)
    )


def _sparse_decode_s(c: _Ctx, kind: LayerKind, *, context: int, seqs: float, kv_dtype: str) -> float:
    """The sparse MLA kernel of one DSA layer at decode (:func:`_dsa_decode_s`): its row reads or its FLOPs."""
    dtype, rows = element_size(kv_dtype), min(context, kind.index_topk)
    heads = ceil_div(c.spec.num_attention_heads, c.tp)
    per_key = 2 * (2 * kind.kv_lora_rank + kind.qk_rope_head_dim)
    # the engine's row (Calibration.dsa_fp8_row): FlashMLA's fp8 row, or TensorRT-LLM's plain per-tensor fp8 latent
    flashmla = c.cal.dsa_fp8_row == "flashmla"
    row = dsa_latent_row_bytes(kind, dtype) if flashmla else dtype.nbytes(kind.kv_lora_rank + kind.qk_rope_head_dim)
    reads = row * rows * seqs / (c.bw * c.cal.mla_decode_mem_eff)
    if dtype.bytes_per_element == 1 and kv_dtype.startswith("fp8"):  # fp8_ds_mla: FlashMLA's fp8 decode kernel
        padded = ceil_div(heads, FLASHMLA_DECODE_HEAD_TILE) * FLASHMLA_DECODE_HEAD_TILE
        return max(reads, per_key * padded * kind.index_topk * seqs / (c.peak16 * c.cal.sparse_mla_decode_eff))
    padded = heads * _sparse_head_pad(c)  # the sparse prefill kernel, its CTAs over the SMs (Hopper)
    rate = c.peak16 * c.cal.sparse_mla_prefill_eff * _sparse_prefill_waves(c, padded, seqs)
    return max(reads, per_key * padded * rows * seqs / rate)


# FlashMLA's Hopper sparse prefill kernel: one CTA per 64 query heads of one query token, walking its selected keys in
# blocks of 64 itself (deepseek-ai/FlashMLA csrc/sm90/prefill/sparse/config.h @13d173ac KernelTemplate: B_H = 64,
# B_TOPK = 64; no split over the keys).
FLASHMLA_SPARSE_PREFILL_HEAD_TILE = 64


def _sparse_prefill_waves(c: _Ctx, padded_heads: float, seqs: float) -> float:
    """Share of the SMs FlashMLA's sparse prefill kernel keeps busy over its waves when it decodes ``seqs`` tokens of
    ``padded_heads`` heads each (a 16-bit DSA cache): ``ctas / (ceil(ctas / SMs) x SMs)``, one CTA per 64 heads of a
    token (:data:`FLASHMLA_SPARSE_PREFILL_HEAD_TILE`). A decode batch of fewer tokens than SMs leaves SMs idle: one
    token's 2,048 keys take one SM's time, whatever the batch up to the SM count (aiconfigurator 0.12.0's H200 vLLM
    0.24.0 dsa_generation_module table, 16-bit KV: +52 us a layer from 3 to 2,049 keys at batch 1, 16 and 128 heads
    alike). Hopper only, the kernel read; 1.0 elsewhere (the Blackwell kernel was not read, and that GPU's table shows
    no such step)."""
    sms = c.gpu.sm_count
    if c.gpu.architecture != "hopper" or not sms:
        return 1.0
    ctas = math.ceil(seqs - 1e-9) * ceil_div(int(padded_heads), FLASHMLA_SPARSE_PREFILL_HEAD_TILE)
    return ctas / (ceil_div(ctas, sms) * sms)


GQA_DECODE_TYPES = frozenset({"full", "sliding", "chunked"})  # KV-head attention kinds (not MLA, not recurrent)


def _gqa_decode_fit(c: _Ctx, kind: LayerKind) -> DecodeAttention | None:
    """The engine's fitted GQA/MHA decode kernel for this GPU's architecture (``hopper_gqa_decode``,
    ``blackwell_gqa_decode``) where the layer is a KV-head attention layer; None: the older form applies."""
    if kind.type not in GQA_DECODE_TYPES:
        return None
    arch = c.gpu.architecture
    return c.cal.hopper_gqa_decode if arch == "hopper" else c.cal.blackwell_gqa_decode if arch == "blackwell" else None


def _runs_mmha(c: _Ctx, kind: LayerKind) -> bool:
    """Whether this chunked-attention layer decodes with the engine's per-head kernel on Hopper (its calibration has
    ``hopper_mmha_head_token_s``; :func:`_mmha_decode_s`). A layer the engine runs as full attention is no longer
    ``chunked`` in the kernel view (:meth:`kvplan.engines.trtllm.Trtllm.attention_spans`)."""
    return kind.type == "chunked" and c.gpu.architecture == "hopper" and c.cal.hopper_mmha_head_token_s is not None


def _mmha_decode_s(c: _Ctx, *, held: float, batch: float, span: int) -> float:
    """One chunked-attention layer's decode on Hopper under TensorRT-LLM: the masked multi-head attention kernel
    (MMHA), not XQA. The attention op hands XQA the layer's chunk (cpp/tensorrt_llm/thop/attentionOp.cpp, the copy
    with ``getEnvDisableChunkedAttentionInGenPhase``: ``xqaParams.chunked_attention_size = mAttentionChunkSize && ...
    ? *mAttentionChunkSize : INT_MAX``), XQA's support check refuses it (cpp/tensorrt_llm/kernels/
    decoderMaskedMultiheadAttention/decoderXQAImplJIT/kernelUtils.cpp ``supportConfigCommon``: ``if
    (xqaParams.chunked_attention_size != INT_MAX) { // TODO: chunked attention is not supported yet. return false;
    }``, in the 2025 copy and still in the 2026 one with Gemma4's head size 512), and the dispatcher falls back to MMHA
    where it does not run TRTLLM-Gen (Blackwell) kernels (``XqaDispatcher::shouldUse``). MMHA runs a thread block per
    query head and sequence (each query head reads its KV head's keys; the group's blocks run side by side, so the
    cache is taken as read once from memory, through L2): ``attn_layer_s`` + the slower of that read at
    ``attn_decode_mem_eff`` and ``batch x query heads on the rank x (hopper_mmha_head_s + span x
    hopper_mmha_head_token_s)``, the two measured on the kernel where TensorRT-LLM runs it for every query head, the
    MHA rows of aiconfigurator's tables (``supportConfigCommon``: "Do not use XQA kernel for vanilla MHA case";
    benchmarks/fit_mmha.py)."""
    heads = ceil_div(c.spec.num_attention_heads, c.tp)
    read = held / (c.bw * c.cal.attn_decode_mem_eff)
    work = batch * heads * (c.cal.hopper_mmha_head_s + span * c.cal.hopper_mmha_head_token_s)
    return c.cal.attn_layer_s + max(read, work)


def _gqa_decode_s(fit: DecodeAttention, bw: float, *, held: float, batch: float, kv_heads: int, kv_8bit: bool) -> float:
    """One GQA/MHA decode attention layer (:class:`kvplan.engines.base.DecodeAttention`): a floor, plus the cache
    read and the per-sequence work (counted per KV head on the rank, as the kernel tables scale) combined as a
    smooth maximum of exponent ``overlap_p``."""
    read = held / (bw * fit.mem_eff)
    work = batch * kv_heads * (fit.seq_kvhead_s if kv_8bit else fit.seq_kvhead_16bit_s)
    both = (read**fit.overlap_p + work**fit.overlap_p) ** (1.0 / fit.overlap_p) if read > 0 else work
    return (fit.floor_s if kv_8bit else fit.floor_16bit_s) + both


def _sparse_mla(spec: ModelSpec) -> bool:
    """Every attention layer runs DeepSeek Sparse Attention (an MLA layer with ``index_topk``; DeepSeek-V3.2). Its
    prompt attention is then FlashMLA's sparse kernel over the selected keys in the absorbed form
    (:func:`kvplan.attention.prefill_pairs`, :func:`kvplan.attention.attention_dims`)."""
    return _fact(spec, ("sparse_mla",), lambda: all(
        spec.kind(n).index_topk for n in spec.kind_counts if spec.kind(n).type == "mla") and any(
        spec.kind(n).index_topk for n in spec.kind_counts))  # fmt: skip


def _sparse_head_pad(c: _Ctx) -> float:
    """The sparse prefill kernel's query heads over the rank's own: the engine pads them up to its multiple
    (``sparse_mla_heads_multiple``, Blackwell ``blackwell_sparse_mla_heads_multiple``; 0: none)."""
    multiple = (c.cal.blackwell_sparse_mla_heads_multiple if c.gpu.architecture == "blackwell"
                else c.cal.sparse_mla_heads_multiple)  # fmt: skip
    heads = ceil_div(c.spec.num_attention_heads, c.tp)
    return ceil_div(heads, multiple) * multiple / heads if multiple else 1.0


class _MixerGroup(NamedTuple):
    """Recurrent mixers of one kind in a run of layers: how many, their variant and one's work on the rank."""

    count: int
    variant: str
    work: MixerWork
    conv_token_bytes: int  # the conv1d's part of work.token_bytes (kvplan.recurrent.conv_token_bytes)


class _RecurrentTerms(NamedTuple):
    """The recurrent mixers of a run of layers on one TP rank (:mod:`kvplan.recurrent`), grouped by kind."""

    layers: int  # recurrent mixers (a Falcon-H1 layer's parallel one included)
    own_layers: int  # layers that are a recurrent mixer alone (no attention beside it)
    groups: tuple[_MixerGroup, ...]


def _recurrent_terms(spec: ModelSpec, layers: range, tp: int) -> _RecurrentTerms:
    def make() -> _RecurrentTerms:
        names = spec.layer_kind_names
        mixers = [(spec.kind(names[i]), k) for i in layers for k in recurrent_kinds(spec.kind(names[i]))]
        counts: dict[int, list] = {}
        for _, k in mixers:
            counts.setdefault(id(k), [0, k])[0] += 1
        groups = tuple(_MixerGroup(n, k.variant, mixer_work(k, tp=tp), conv_token_bytes(k, tp=tp))
                       for n, k in counts.values())  # fmt: skip
        own = sum(1 for kind, k in mixers if kind is k)  # the layer is the mixer, no attention beside it
        return _RecurrentTerms(layers=len(mixers), own_layers=own, groups=groups)

    return _fact(spec, ("recurrent", layers.start, layers.stop, tp), make)


def _engine_gdn_kernel(gpu: GPU, cal: Calibration) -> bool:
    """Whether the engine runs its own delta-rule prefill kernel on ``gpu`` (``gdn_kernel_archs``), not fla's."""
    return cal.gdn_kernel_archs is None or gpu.architecture in cal.gdn_kernel_archs


def _scan_eff(c: _Ctx, variant: str) -> float:
    """The chunked scan's share of the 16-bit peak: ``gdn_scan_eff`` for Gated DeltaNet's chunked delta rule where the
    engine runs its own kernel (else the fla Triton kernels at ``ssd_scan_eff``), ``ssd_scan_eff`` for Mamba2's SSD
    and lightning attention's blocks (Triton chunked kernels of the same kind as the SSD's; no timing of vLLM's
    lightning kernels was found to check that)."""
    if variant == "gated_deltanet" and _engine_gdn_kernel(c.gpu, c.cal):
        return c.cal.gdn_scan_eff
    return c.cal.ssd_scan_eff


def scan_occupancy(gpu: GPU, cal: Calibration, *, prompts: float, heads: int) -> float:
    """The share of the GPU's SMs a delta-rule prefill call keeps busy: ``prompts x heads / sm_count`` (at most 1)
    where the engine's kernel runs one thread block per sequence and head (``Calibration.gdn_head_blocks``), else 1
    (also where the catalog gives no SM count)."""
    if not cal.gdn_head_blocks or not _engine_gdn_kernel(gpu, cal) or not gpu.sm_count or not heads:
        return 1.0
    return min(1.0, max(1.0, prompts) * heads / gpu.sm_count)


def _recurrent_prefill_s(c: _Ctx, terms: _RecurrentTerms, tokens: float, *, prompts: float = 1) -> float:
    """Seconds of the recurrent mixers' prefill kernels over ``tokens`` new prompt tokens of ``prompts`` prompts: the
    memory-bound kernels (conv1d, Mamba v1's selective scan) by their bytes at ``elementwise_mem_eff`` of bandwidth (the
    conv1d's at most at its kernel's per-SM ceiling, :func:`_conv1d_bandwidth`), a chunked scan by its FLOPs at
    :func:`_scan_eff` of the 16-bit peak (Blackwell's ``blackwell_compute_eff`` included), plus ``kernel_s`` per
    kernel, once per step or per prompt (``MixerWork.per_prompt``). Mamba2's SSD call takes at least
    ``ssd_scan_floor_s`` (the measured short-prompt floor, :data:`kvplan.engines.base.SSD_SCAN_FLOOR_S`)."""
    total = 0.0
    for group in terms.groups:
        w, calls = group.work, (prompts if group.work.per_prompt else 1)
        other = (w.token_bytes - group.conv_token_bytes) * tokens / (c.bw * c.cal.elementwise_mem_eff)
        moved = other + (group.conv_token_bytes * tokens + w.call_bytes * calls) / _conv1d_bandwidth(c)
        scan = w.scan_flops_per_token * tokens / (c.peak16 * _scan_eff(c, group.variant))
        if group.variant == "gated_deltanet":
            scan /= scan_occupancy(c.gpu, c.cal, prompts=prompts, heads=w.heads)
        launches = w.kernels * calls * c.kernel_s
        if group.variant == "mamba2":  # the SSD call (its five kernels) takes at least the floor, the conv1d apart
            ssd = scan + SSD_SCAN_KERNELS * c.kernel_s
            scan += max(ssd, c.cal.ssd_scan_floor_s) - ssd
        total += group.count * (moved + scan + launches)
    return total


def _conv1d_bandwidth(c: _Ctx) -> float:
    """Bytes per second of the prefill causal conv1d: ``elementwise_mem_eff`` of the bandwidth, capped at ``sm_count x
    conv1d_sm_bytes_s`` where the engine's kernel has that per-SM ceiling (:class:`kvplan.engines.base.Calibration`;
    the catalog's SM count needed, else the bandwidth alone)."""
    by_hbm = c.bw * c.cal.elementwise_mem_eff
    if c.cal.conv1d_sm_bytes_s is None or not c.gpu.sm_count:
        return by_hbm
    return min(by_hbm, c.gpu.sm_count * c.cal.conv1d_sm_bytes_s)


def _recurrent_decode_s(c: _Ctx, kind: LayerKind, state_bytes: float) -> float:
    """One decode step of the recurrent mixers of a layer of ``kind`` over ``state_bytes`` of state (conv and SSM state,
    all the batch's sequences, :func:`kvplan.memory.recurrent_state_bytes`): each sequence's state is read and
    written back once (vLLM ``selective_state_update``, ``fused_recurrent_gated_delta_rule``,
    ``linear_decode_forward_triton`` store the new state in place; ``causal_conv1d_update`` shifts the conv state),
    bytes at ``attn_decode_mem_eff`` of bandwidth (the SSM state's share a timed state update moves at its own share,
    :func:`_ssu_split`), plus ``kernel_s`` per decode kernel (:data:`kvplan.recurrent.DECODE_KERNELS`). Constant in the
    context. 0.0 for a layer without a mixer."""
    mixers = recurrent_kinds(kind)
    if not mixers:
        return 0.0
    launches = sum(DECODE_KERNELS[m.variant] for m in mixers) * c.kernel_s
    ssu_bytes, ssu_eff = _ssu_split(c, kind)
    if not ssu_bytes:
        return 2 * state_bytes / (c.bw * c.cal.attn_decode_mem_eff) + launches
    per_seq = sum(recurrent_state_bytes(c.spec, m, tp=c.tp) for m in mixers)
    ssu = state_bytes * ssu_bytes / per_seq  # the batch's SSM state the update moves
    return 2 * (state_bytes - ssu) / (c.bw * c.cal.attn_decode_mem_eff) + 2 * ssu / (c.bw * ssu_eff) + launches


# Where the engine's Mamba2 state update was timed (Calibration.ssu_mem_eff; benchmarks/fit_ssu.py): the GPU
# architectures, the d_state range of the launch branch timed (vLLM 0.16.0 mamba_ssm.py selective_state_update:
# dstate > 64 takes 32 x 8 warps on Blackwell and 4 x 4 warps up to 128 elsewhere; the tables' d_state is 128), and
# the state dtype of the tables (fp32, vLLM's default for Nemotron-H).
SSU_ARCHS = ("hopper", "blackwell")
SSU_DSTATE = (64, 128)  # d_state above the first, at most the second
SSU_STATE_DTYPE = "fp32"


def _ssu_split(c: _Ctx, kind: LayerKind) -> tuple[int, float]:
    """(bytes of a sequence's state on the rank, share of the bandwidth) that the engine's Mamba2 decode state update
    moves at its timed share ``Calibration.ssu_mem_eff``: the SSM state of the layer's Mamba2 mixers with d_state in
    :data:`SSU_DSTATE` and an :data:`SSU_STATE_DTYPE` state, on :data:`SSU_ARCHS`. (0, 0.0) where the engine has no
    such timing or nothing matches (the state at ``attn_decode_mem_eff``). The conv state stays there: another kernel
    (causal_conv1d_update)."""
    eff = c.cal.ssu_mem_eff
    if eff is None or c.gpu.architecture not in SSU_ARCHS:
        return 0, 0.0
    moved = 0
    for m in recurrent_kinds(kind):
        if m.variant != "mamba2" or not SSU_DSTATE[0] < m.d_state <= SSU_DSTATE[1]:
            continue
        dtype, nbytes = ssm_state_part(c.spec, m, tp=c.tp)
        if dtype == SSU_STATE_DTYPE:
            moved += nbytes
    return (moved, eff) if moved else (0, 0.0)


def _shared_bytes(spec: ModelSpec, name: str, kv_dtype: str, tp: int) -> int:
    """Bytes per token a KV-sharing layer of kind ``name`` reads (:func:`kvplan.memory.attended_token_bytes`)."""
    return _fact(spec, ("shared_bytes", name, kv_dtype, tp),
                 lambda: attended_token_bytes(spec, name, element_size(kv_dtype), tp=tp))  # fmt: skip


def _mla_decode_layer_s(c: _Ctx, kv_dtype: str) -> float:
    """The MLA block's fixed seconds per layer at decode: ``blackwell_mla_layer_s`` on a Blackwell GPU where the engine
    has one and runs that kernel for this model and KV dtype (``blackwell_mla_nope_dims``, ``blackwell_mla_kv_dtypes``:
    vLLM's backend order, ``vllm/platforms/cuda.py`` ``_get_backend_priorities``, puts ``FLASHINFER_MLA`` first on
    compute capability 10 where it takes the model, ``FLASH_ATTN_MLA`` / ``FLASHMLA`` first below it; aiconfigurator
    0.12.0's vLLM 0.24.0 MLA module tables name those kernels on B200 and H200; the rule per vLLM release is
    :func:`kvplan.engines.vllm.mla_choice`; ``blackwell_mla_families``: the models SGLang runs trtllm_mla for;
    ``blackwell_mla_dense_only``: sparse-attention models run another backend),
    ``hopper_mla_layer_s`` on Hopper where the engine has one (SGLang's fa3 module), else ``mla_layer_s``. A
    --block-size that moves vLLM to another backend is not seen here (the step model takes no block size)."""
    cal = c.cal
    if c.gpu.architecture == "hopper" and cal.hopper_mla_layer_s is not None:
        return cal.hopper_mla_layer_s
    if c.gpu.architecture != "blackwell" or cal.blackwell_mla_layer_s is None:
        return cal.mla_layer_s
    if cal.blackwell_mla_kv_dtypes is not None and kv_dtype not in cal.blackwell_mla_kv_dtypes:
        return cal.mla_layer_s
    if cal.blackwell_mla_families is not None and c.spec.family not in cal.blackwell_mla_families:
        return cal.mla_layer_s
    if cal.blackwell_mla_dense_only and any(k.index_head_dim for k in c.spec.layers.kinds.values()):
        return cal.mla_layer_s
    nope = {k.qk_nope_head_dim for k in c.spec.layers.kinds.values() if k.type == "mla"}
    if cal.blackwell_mla_nope_dims is not None and not nope <= set(cal.blackwell_mla_nope_dims):
        return cal.mla_layer_s
    return cal.blackwell_mla_layer_s


# 16-bit tensor-core FLOPs per exponential of the special-function unit (MUFU), per SM and clock: what sets how much of
# an attention kernel's time moves to FP8 tensor cores (fp8_attention_gain). Hopper: the catalog's 989 dense BF16
# TFLOPS of H100 SXM = 132 SMs x 4096 FLOP/clock x 1.83 GHz, against 16 exponentials per SM per clock (the MUFU rate
# the FlashAttention-4 paper works from: Zadouri, Hoehnerbach, Shah, Liu, Thakkar, Dao, 2026, as summarised in
# engineermaxxing.com/veanors/papers/flash-attention-4.html and swarmsignal.net/flashattention-4-asymmetric-scaling).
# Blackwell: "From the Hopper H100 to the Blackwell B200 ... BF16 tensor core throughput increases from 1 to 2.25
# PFLOPs, while both the SFU count and shared memory bandwidth remains unchanged" (together.ai/blog/flashattention-4):
# 2250 TFLOPS over B200's 148 SMs is 2x H100's per SM at the same clock, so twice the FLOPs per exponential.
TENSOR_FLOPS_PER_EXP = {"hopper": 256.0, "blackwell": 512.0}


def fp8_attention_gain(gpu: GPU, cal: Calibration, *, head_dim: int) -> float:
    """How much faster prefill attention computes where the engine runs it on FP8 tensor cores
    (:meth:`kvplan.engines.base.Engine.fp8_context_attention`).

    Per attention score a 16-bit kernel spends ``4 d`` FLOPs in its two GEMMs (``Q K^T`` and ``P V``, ``d`` the head
    size) and softmax work worth ``s = cal.fmha_fp8_softmax`` exponentials that does not move to FP8. On FP8 tensor
    cores the GEMM part runs at the FP8 peak (``g`` = catalog fp8 / bf16 peak, 2), the softmax part as before:
    ``gain = (4 d + s R) / (4 d / g + s R)`` with ``R`` = :data:`TENSOR_FLOPS_PER_EXP` of the GPU's architecture. So the
    gain is larger at head size 128 than at 64 and smaller on Blackwell (twice the tensor rate per exponential) than on
    Hopper, as the measured tables show (benchmarks/fit_fmha.py). 1.0 where the GPU has no FP8 tensor cores, no
    ``R`` is known for its architecture, or the engine's constants have no fit (``fmha_fp8_softmax`` None).
    """
    flops_per_exp = TENSOR_FLOPS_PER_EXP.get(gpu.architecture)
    if cal.fmha_fp8_softmax is None or flops_per_exp is None or not gpu.fp8_dense_tflops:
        return 1.0
    g = gpu.fp8_dense_tflops / gpu.bf16_dense_tflops
    softmax = cal.fmha_fp8_softmax * flops_per_exp
    return (4 * head_dim + softmax) / (4 * head_dim / g + softmax)


def _fmha_gain(
    engine: str | None, spec: ModelSpec, gpu: GPU, cal: Calibration, *, weights_dtype: str, kv_dtype: str
) -> float:
    """The prefill attention speed-up of ``engine`` for these dtypes: :func:`fp8_attention_gain` where it runs FP8
    (by the dense layers' dtype, :func:`dense_dtype`: the attention's projections are theirs)."""
    if not engine_fp8_context_attention(engine, weights_dtype=dense_dtype(spec, weights_dtype), kv_dtype=kv_dtype):
        return 1.0
    return fp8_attention_gain(gpu, cal, head_dim=spec.head_dim)


def _block_fp8(spec: ModelSpec) -> bool:
    """The checkpoint ships fp8 weights with block scales (DeepSeek-V3's 128 x 128)."""
    return spec.weights is not None and spec.weights.dtype == "fp8" and spec.weights.block is not None


def _fp8_absorbed(cal: Calibration) -> float:
    """The fp8 weight-streaming share where the activations' quantization is not priced apart (block-scaled
    checkpoints, grouped experts): ``fp8_absorbed_mem_eff_scale``, else ``fp8_mem_eff_scale``."""
    return cal.fp8_mem_eff_scale if cal.fp8_absorbed_mem_eff_scale is None else cal.fp8_absorbed_mem_eff_scale


def gemm_peak(spec: ModelSpec | None, gpu: GPU, cal: Calibration, weights_dtype: str) -> tuple[float, float]:
    """(FLOP/s the GEMMs are priced at, their weight-streaming scale) for ``weights_dtype`` on ``gpu``.

    fp8 weights on a GPU with fp8 tensor cores: the fp8 peak (block-scaled checkpoints at their own scale);
    nvfp4 on a GPU with FP4 tensor cores: the FP4 peak (W4A4, activations quantized to FP4 by the engine);
    anything else, nvfp4 on Hopper included (weight-only, dequantized in the kernel): the 16-bit peak.
    """
    arch = cal.blackwell_compute_eff if gpu.architecture == "blackwell" else 1.0
    if gpu.fp8_dense_tflops is not None and weights_dtype.startswith("fp8"):
        block = spec is not None and _block_fp8(spec)
        scale = cal.fp8_block_eff_scale if block else cal.fp8_eff_scale
        return gpu.fp8_dense_tflops * 1e12 * scale * arch, _fp8_absorbed(cal) if block else cal.fp8_mem_eff_scale
    if gpu.fp4_dense_tflops is not None and weights_dtype == "nvfp4":
        return gpu.fp4_dense_tflops * 1e12 * cal.fp4_eff_scale * arch, cal.fp4_mem_eff_scale
    return gpu.bf16_dense_tflops * 1e12 * arch, 1.0


def gemm_seconds(
    gpu: GPU, cal: Calibration, *, m: int, n: int, k: int, weights_dtype: str, eager: bool, block: bool = False
) -> float:
    """One ``m x n x k`` GEMM alone, as :mod:`kvplan.latency` prices it (``benchmarks/fit_fp4.py`` fits on this;
    ``benchmarks/gemm_compare.py`` compares it with aiconfigurator's GEMM tables). ``block``: fp8 weights with block
    scales (``fp8_block_eff_scale``)."""
    peak, mem_scale = gemm_peak(None, gpu, cal, weights_dtype)
    if block and gpu.fp8_dense_tflops is not None and weights_dtype.startswith("fp8"):
        peak *= cal.fp8_block_eff_scale / cal.fp8_eff_scale
        mem_scale = _fp8_absorbed(cal)
    w = weight_dtype(weights_dtype)
    c = _Ctx(spec=None, gpu=gpu, cal=cal, tp=1, w_bytes=float(w.bytes_per_element), act_bytes=2.0,  # type: ignore[arg-type]
             peak=peak, peak16=peak, bw=gpu.bandwidth_gbps * 1e9,
             kernel_s=cal.eager_kernel_s if eager else cal.graph_kernel_s, mem_scale=mem_scale)  # fmt: skip
    c = replace(
        c,
        fp4_k_s=_fp4_k_s(gpu, cal, weights_dtype),
        wave_sms=_wave_sms(gpu, weights_dtype),
        fp8_quant_s=0.0 if block else _fp8_quant_s(None, gpu, cal, weights_dtype),
    )
    return _gemm_s(c, m, n * k, n + k, k=k)


def _make_ctx(
    spec: ModelSpec,
    gpu: GPU,
    *,
    tp: int,
    weights_dtype: str,
    cal: Calibration,
    eager: bool,
    ep: bool = False,
    dp: int = 1,
    pp: int = 1,
    gpus_per_node: int | None = None,
    rules: Overlap | None = None,
    two_batch: bool = False,
    deepep: bool = False,
    fmha_gain: float = 1.0,
    moe_kernel: MoeKernel | None = None,
) -> _Ctx:
    # ``weights_dtype`` is the routed experts'; the dense layers run in it too unless it is the spec's own format on
    # its experts alone (gpt-oss's MXFP4): then they stay at the spec's dtype (dense_dtype)
    dense = dense_dtype(spec, weights_dtype)
    w, w_moe = weight_dtype(dense), weight_dtype(weights_dtype)
    fp8 = gpu.fp8_dense_tflops is not None and weights_dtype.startswith("fp8")
    # The engines' kernels reach a smaller share of Blackwell's (doubled) tensor-core peak than of Hopper's, on
    # which the efficiency curves are fitted: GEMMs, grouped experts and attention all scale by it there.
    arch = cal.blackwell_compute_eff if gpu.architecture == "blackwell" else 1.0
    peak16 = gpu.bf16_dense_tflops * 1e12 * arch
    peak, mem_scale = gemm_peak(spec, gpu, cal, dense)
    moe_peak, moe_mem_scale = gemm_peak(spec, gpu, cal, weights_dtype)
    marlin_peak, marlin_dequant_s = _marlin_figures(gpu, cal, moe_kernel)
    for name, value in (("data-parallel size", dp), ("pipeline-parallel size", pp)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInput(f"invalid {name} {value!r}; expected a whole number of at least 1")
    return _Ctx(
        spec=spec,
        gpu=gpu,
        cal=cal,
        tp=tp,
        w_bytes=float(w.nbytes(1000)) / 1000,
        moe_w_bytes=None if dense == weights_dtype else float(w_moe.nbytes(1000)) / 1000,
        act_bytes=2.0,
        peak=peak,
        peak16=peak16,
        bw=gpu.bandwidth_gbps * 1e9,
        kernel_s=cal.eager_kernel_s if eager else cal.graph_kernel_s,
        ep=ep and tp * dp > 1 and spec.moe is not None,
        mem_scale=mem_scale,
        dp=dp,
        pp=pp,
        gpus_per_node=nvlink_domain(gpu, gpus_per_node),
        dispatch_bytes=1.0 if fp8 else 2.0,
        rules=_exchange_rules(rules or Overlap(), two_batch=two_batch, deepep=deepep),
        graph=not eager,
        two_batch=two_batch,
        moe_peak=_fp4_moe_peak(gpu, cal, weights_dtype) or (moe_peak if moe_peak != peak else None),
        fp4_k_s=_fp4_k_s(gpu, cal, dense),
        moe_layer_s=_moe_layer_s(gpu, cal, weights_dtype, moe_kernel),
        head_16bit=dense == "nvfp4",
        wave_sms=_wave_sms(gpu, dense),
        gather_unpadded=(rules or Overlap()).moe_allgather_unpadded,
        gather_bytes=_gather_bytes(
            gpu, rules or Overlap(), weights_dtype, dispatch=1.0 if fp8 else 2.0, block_fp8=_block_fp8(spec)
        ),
        fmha_gain=fmha_gain,
        moe_expert_s=_moe_expert_s(spec, gpu, cal, weights_dtype),
        moe_expert_added=gpu.architecture == "blackwell",
        moe_dequant_s=_moe_dequant_s(gpu, cal, weights_dtype),
        moe_block_tiles=_moe_block_tiles(spec, gpu, cal, weights_dtype),
        fp8_quant_s=_fp8_quant_s(spec, gpu, cal, dense),
        moe_mem_scale=_fp8_absorbed(cal) if fp8 else moe_mem_scale,
        moe_fp8=fp8,
        marlin_peak=marlin_peak,
        expert_pad=(moe_kernel.hidden_multiple, moe_kernel.inter_multiple) if moe_kernel else (1, 1),
        marlin_dequant_s=marlin_dequant_s,
        triton_peak=_triton_mxfp4(gpu, cal, moe_kernel)[0],
        triton_dequant_s=_triton_mxfp4(gpu, cal, moe_kernel)[1],
        cutlass_fp8=_cutlass_fp8(spec, gpu, cal, moe_kernel),
    )


def dense_dtype(spec: ModelSpec, weights_dtype: str) -> str:
    """The dtype the dense layers' weights run in when the routed experts' are ``weights_dtype``: the spec's own
    dtype where ``weights_dtype`` is the checkpoint's format and that format covers the routed experts alone
    (:attr:`kvplan.quant.Storage.experts_only`: gpt-oss ships MXFP4 experts beside 16-bit attention, router and LM
    head, ``modules_to_not_convert``), else ``weights_dtype`` itself: the same rule :mod:`kvplan.params` counts the
    weights' bytes by, so ``--weights-dtype mxfp4`` on gpt-oss and its checkpoint's own format price the same
    tensors. vLLM runs the rest unquantized: vllm/model_executor/layers/quantization/mxfp4.py
    ``Mxfp4Config.get_quant_method`` gives a ``LinearBase`` in the checkpoint's ignored layers
    ``UnquantizedLinearMethod`` and only ``FusedMoE`` layers ``Mxfp4MoEMethod`` (read in a stored copy of the
    ``get_mxfp4_backend(with_lora_support)`` line, late 2025)."""
    from kvplan.quant import storage

    return spec.dtype if storage(spec, weights_dtype).experts_only else weights_dtype


def _fp8_quant_s(spec: ModelSpec | None, gpu: GPU, cal: Calibration, weights_dtype: str) -> float:
    """Fixed seconds of the activations' dynamic quantization before each per-tensor fp8 GEMM on a GPU with fp8
    tensor cores (``fp8_quant_s``, ``blackwell_fp8_quant_s`` on Blackwell); 0 for block-scaled fp8 checkpoints, other
    weights or GPUs, and engines without the fit."""
    if gpu.fp8_dense_tflops is None or not weights_dtype.startswith("fp8") or (spec is not None and _block_fp8(spec)):
        return 0.0
    return cal.blackwell_fp8_quant_s if gpu.architecture == "blackwell" else cal.fp8_quant_s


def _moe_dequant_s(gpu: GPU, cal: Calibration, weights_dtype: str) -> float:
    """Seconds per expert weight that one token tile of W4A16 MXFP4 grouped experts spends dequantizing it, the whole
    GPU's SMs at work (``mxfp4_moe_dequant_s / sm_count`` on Blackwell, ``hopper_mxfp4_moe_dequant_s / sm_count`` on
    Hopper); 0 for other weights or GPUs, engines without the fit, or a GPU whose SM count the catalog lacks.

    TensorRT-LLM 1.3.0rc20 runs gpt-oss's MXFP4 experts with 16-bit activations (W4A16) on Blackwell through
    ``TRTLLMGenFusedMoE``, ``moe_backend: TRTLLM`` (tensorrt_llm/_torch/modules/fused_moe/create_moe.py ``get_moe_cls``;
    aiconfigurator's collector, collector/trtllm/collect_moe.py: "Blackwell: production uses TRTLLMGenFusedMoE
    (Bf16MxE2m1BlockScaleMoeRunner)", "CUTLASS rejects WFP4A16 on SM100"). In TensorRT-LLM-Gen's Blackwell
    kernels each CTA holds one tile of up to ``mxfp4_moe_tile_tokens`` tokens of one expert and converts its slab of the
    expert's 4-bit weights to 16 bits before the tensor cores use them, so every tile of an expert dequantizes its
    weights again (the runners tile each expert's tokens by ``calculate_tile_tokens_dim``, a power of 2 from 8, capped
    at 64 in the kernels' supported range or 128 in later releases; aiconfigurator 0.12.0's tables fit 64:
    benchmarks/fit_moe_ops.py). The conversion runs on the SMs' integer / FP32 pipes, not the tensor cores: at one to
    2,048 tokens the B200 table for gpt-oss-120b (TP 1, 128 experts) takes 1,183-1,352 us once every expert is touched
    (128 tiles), four times one token's 4 experts and flat in the tokens until a second tile per expert, then doubles
    with the tiles (4,096 tokens 2,652 us, 16,384 tokens 10,460 us).

    Hopper runs the Triton backend (``TritonFusedMoE``, the same collector: "Hopper: use triton backend for best
    performance"; tensorrt_llm/_torch/modules/fused_moe/fused_moe_triton.py: OpenAI triton_kernels' ``matmul_ogs`` for
    the gate/up GEMM with the SwiGLU fused and for the down GEMM, the MXFP4 weights upcast in the kernel), with its own
    rate (``hopper_mxfp4_moe_dequant_s``, the same 64-token tile) and a larger fixed cost per layer
    (``hopper_mxfp4_moe_layer_s``: its H200 table takes 72.5-78.7 us at one token whether 1 or 4 experts are touched).
    """
    if weights_dtype != "mxfp4" or not gpu.sm_count:
        return 0.0
    if gpu.architecture == "blackwell":
        return cal.mxfp4_moe_dequant_s / gpu.sm_count
    if gpu.architecture == "hopper":
        return cal.hopper_mxfp4_moe_dequant_s / gpu.sm_count
    return 0.0


def _moe_layer_s(gpu: GPU, cal: Calibration, weights_dtype: str, kernel: MoeKernel | None = None) -> float | None:
    """The grouped-expert layer's own fixed seconds where its kernels differ (TensorRT-LLM's CUTLASS NVFP4 experts:
    :func:`_cutlass_nvfp4_layer_s`; other NVFP4 on FP4 tensor cores, MXFP4 on Hopper); None: the calibration's
    ``moe_layer_s``."""
    cutlass = _cutlass_nvfp4_layer_s(gpu, cal, weights_dtype, kernel)
    if cutlass is not None:
        return cutlass
    nvfp4 = _fp4_moe_layer_s(gpu, cal, weights_dtype)
    return nvfp4 if nvfp4 is not None else _mxfp4_moe_layer_s(gpu, cal, weights_dtype)


def _cutlass_nvfp4_layer_s(gpu: GPU, cal: Calibration, weights_dtype: str, kernel: MoeKernel | None) -> float | None:
    """Fixed seconds of one NVFP4 grouped-expert layer that TensorRT-LLM runs through its CUTLASS fused MoE
    (Engine.moe_kernel "cutlass_nvfp4": ``CutlassFusedMoE``, kvplan.engines.trtllm ``CUTLASS_NVFP4_MOE`` names the
    source): ``cutlass_nvfp4_moe_layer_s``; None where the engine runs another kernel or its constants have no fit.

    The kernels around the two grouped GEMMs (cpp/tensorrt_llm/kernels/cutlass_kernels/moe_gemm/moe_kernels.cu, read
    in stored copies, no release pinned: ``threeStepBuildExpertMapsSortFirstToken``, the expert maps;
    ``expandInputRowsKernel``, which duplicates and permutes the rows by expert and quantizes them to FP4; the grouped
    GEMMs' per-expert strides and TMA descriptors, ``computeStridesTmaWarpSpecializedKernel``; ``doActivationKernel``,
    the gated activation that quantizes the first GEMM's output again; ``finalizeMoeRoutingKernel``, the un-permute and
    top-k reduction) cost about 35 us a layer whatever the tokens: aiconfigurator 0.12.0's TensorRT-LLM
    1.3.0rc20 B200 nvfp4 table takes 33.9 us for Qwen3-30B-A3B at EP 8 and one token (one 2.4 MB expert read, 0.4 us
    of its bandwidth). ``fp4_moe_layer_s`` (7.0 us) was fitted by ``benchmarks/fit_fp4.py`` on aiconfigurator's whole
    steps, whose MoE up to 128 tokens is the TRT-LLM-Gen min-latency kernel, which TensorRT-LLM does not serve NVFP4
    checkpoints with (``ModelConfig.resolve_moe_backend``; benchmarks/moe_compare.py ``ENGINE_SKIP_KERNELS``). The
    grouped GEMMs themselves keep the fitted NVFP4 form (``fp4_moe_eff_scale``, ``fp4_mem_eff_scale``): the kernel's
    own shares fit its tables better but move the published runs the other way (docs/cost.md, "TensorRT-LLM's nvfp4
    table")."""
    if (kernel is None or kernel.name != "cutlass_nvfp4" or weights_dtype != "nvfp4" or gpu.fp4_dense_tflops is None
            or cal.cutlass_nvfp4_moe_layer_s is None):  # fmt: skip
        return None
    return cal.cutlass_nvfp4_moe_layer_s


def _mxfp4_moe_layer_s(gpu: GPU, cal: Calibration, weights_dtype: str) -> float | None:
    """Fixed seconds of one W4A16 MXFP4 grouped-expert layer on Hopper where the engine's kernels there have their own
    (``hopper_mxfp4_moe_layer_s``, TensorRT-LLM's Triton backend: :func:`_moe_dequant_s`); None elsewhere."""
    if weights_dtype != "mxfp4" or gpu.architecture != "hopper":
        return None
    return cal.hopper_mxfp4_moe_layer_s


def _dequant_s(c: _Ctx, loads: tuple[tuple[float, float], ...], per_expert: int) -> float:
    """The dequantization roof of W4A16 MXFP4 grouped experts (:func:`_moe_dequant_s`): every touched expert's
    weights once per tile of ``mxfp4_moe_tile_tokens`` of its tokens (``loads``: :func:`_moe_s`'s); 0 elsewhere."""
    if not c.moe_dequant_s:
        return 0.0
    tile = c.cal.mxfp4_moe_tile_tokens
    tiles = sum(n * max(1, math.ceil(t / tile - 1e-9)) for t, n in loads)  # 1e-9: 64.0000001 tokens is one tile
    return tiles * per_expert * c.moe_dequant_s


def _block_fp8_run(spec: ModelSpec, gpu: GPU, weights_dtype: str) -> bool:
    """Block-scaled fp8 experts run as fp8 (a block-fp8 checkpoint, fp8 weights, a GPU with fp8 tensor cores)."""
    return _block_fp8(spec) and gpu.fp8_dense_tflops is not None and weights_dtype.startswith("fp8")


def _moe_expert_s(spec: ModelSpec, gpu: GPU, cal: Calibration, weights_dtype: str) -> float:
    """Seconds per expert held on the rank that block-scaled fp8 grouped experts cost whatever the tokens; 0 for any
    other weights (and on a GPU without fp8 tensor cores, where they do not run as fp8).

    TensorRT-LLM 1.3.0rc20 runs DeepSeek-V3's block-scaled fp8 experts through DeepGEMM grouped GEMMs whose scheduler
    finds each block by walking the rank's experts one by one, two dependent loads of the expert offsets per expert
    (``GroupedWithOffsetScheduler::get_next_block`` / ``GroupedMaskedScheduler::get_next_block``,
    cpp/include/tensorrt_llm/deep_gemm/scheduler.cuh): on Hopper ``fp8_grouped_gemm_run`` -> ``grouped_gemm_dispatch``
    (cpp/tensorrt_llm/kernels/cutlass_kernels/fp8_blockscale_gemm/fp8_blockscale_gemm_kernel.cuh), a persistent
    kernel whose producer walks ahead of the math, reached through the CUTLASS backend (``CutlassFusedMoE``, FP32
    block scales; aiconfigurator's collector times that backend on Hopper): a floor under the GEMMs
    (``hopper_moe_block_expert_s``). On
    Blackwell the ``DeepGemmFusedMoE`` backend (``moe_backend: DEEPGEMM``, create_moe.py ``get_moe_cls``; the kernel
    aiconfigurator's B200 and GB200 tables time, ``deepgemm``; fused_moe_deepgemm.py ``forward_chunk`` in
    tensorrt_llm/_torch/modules/fused_moe/) lays the tokens out per local expert, ``[experts, m_max, hidden]`` with
    ``m_max`` the tokens rounded up to 128, transforms both GEMMs' scale factors for every expert
    (``transform_sf_into_required_layout(..., num_groups=...)``) and runs the masked grouped GEMMs and the masked
    SwiGLU + quantize over every expert: added to the GEMMs (``blackwell_moe_block_expert_s``). aiconfigurator 0.12.0's
    TensorRT-LLM MoE tables show it (benchmarks/moe_compare.py): DeepSeek-V3 (256 experts) at one token takes 114.7 us
    at TP 8 on H200 and 105.5 us on B200, where the same expert bytes on 32 experts a rank (EP 8) take 40.1 and 46.5.
    """
    if not _block_fp8_run(spec, gpu, weights_dtype):
        return 0.0
    return cal.blackwell_moe_block_expert_s if gpu.architecture == "blackwell" else cal.hopper_moe_block_expert_s


def _moe_block_tiles(spec: ModelSpec, gpu: GPU, cal: Calibration, weights_dtype: str) -> int:
    """Where block-scaled fp8 grouped experts run on Hopper and the engine's calibration prices them by their kernel's
    tiles (``hopper_moe_block_tile_eff`` > 0, TensorRT-LLM): the tokens per expert below which that kernel swaps its
    operands (:func:`_block_tile_rows`); 0 elsewhere (the grouped-GEMM curve). TensorRT-LLM 1.3.0rc20's Hopper path
    (``CutlassFusedMoE``, FP32 block scales; the kernel aiconfigurator's H100 / H200 ``fp8_block`` MoE tables time)
    runs both expert GEMMs through ``fp8_grouped_gemm_run`` -> ``grouped_gemm_dispatch``
    (cpp/tensorrt_llm/kernels/cutlass_kernels/fp8_blockscale_gemm/fp8_blockscale_gemm_kernel.cuh):
    ``m_per_expert_threshold = num_device_sms == 78 ? 64 : 32`` ("64 for H20(sms=78), 32 for H100/H200")."""
    if (
        not cal.hopper_moe_block_tile_eff
        or gpu.architecture != "hopper"
        or not _block_fp8_run(spec, gpu, weights_dtype)
    ):
        return 0
    return BLOCK_SWAP_TOKENS_H20 if gpu.sm_count == H20_SMS else BLOCK_SWAP_TOKENS


# DeepGEMM's tiles as TensorRT-LLM's grouped_gemm_dispatch picks them (fp8_blockscale_gemm_kernel.cuh, above) through
# deep_gemm::jit::get_best_gemm_config (the copy read: deep_gemm/jit compiler, the function of that name): block_m is
# 64 where the tokens per expert are at most 64, else 128 (``shape_m <= 64 ? 64 : 128``); with the operands swapped
# (fewer tokens per expert than the threshold) the weights' rows take block_m and the tokens block_n, whose candidates
# run from 16 to 128 in steps of 8, the fewest waves winning and, among equals, the smallest.
BLOCK_SWAP_TOKENS = 32  # H100 / H200
BLOCK_SWAP_TOKENS_H20 = 64
H20_SMS = 78
BLOCK_TILE_M = (64, 128)  # block_m: up to 64 tokens per expert, past it
BLOCK_SWAP_N_MIN, BLOCK_SWAP_N_STEP = 16, 8  # block_n candidates 16, 24, ..., 128


def _block_tile_rows(tokens: float, *, swap_below: int) -> float:
    """Token rows the block-fp8 grouped GEMMs compute for an expert that receives ``tokens`` tokens: its tokens
    rounded up to the kernel's token tile (see :data:`BLOCK_TILE_M`). Below ``swap_below`` the token tile is block_n,
    the smallest candidate that holds them (one tile in N: fewest waves), at least 16; from it on, whole block_m
    tiles of 64 or 128 rows. E.g. 4 tokens -> 16, 20 -> 24, 40 -> 64, 100 -> 128, 300 -> 384."""
    if tokens < swap_below:
        return max(BLOCK_SWAP_N_MIN, math.ceil(tokens / BLOCK_SWAP_N_STEP - 1e-9) * BLOCK_SWAP_N_STEP)
    tile = BLOCK_TILE_M[0] if tokens <= BLOCK_TILE_M[0] else BLOCK_TILE_M[1]
    return math.ceil(tokens / tile - 1e-9) * tile  # 1e-9: 128.0000001 tokens (float noise) is one tile


def _block_side_bytes(hidden: int, inter_rank: int, *, gated: bool) -> int:
    """Bytes per routed token row that TensorRT-LLM's block-fp8 MoE moves in kernels of their own, beside the two
    grouped GEMMs (which read their fp8 operands and write their 16-bit outputs, the GEMMs' own traffic):

    * the permute (``expandInputRowsKernel``, cpp/tensorrt_llm/kernels/cutlass_kernels/moe_gemm/moe_kernels.cu) copies
      each routed row's 16-bit hidden vector: 2 + 2 bytes an element;
    * the first GEMM's input quantized to fp8 with 1 x 128 scales (``fp8_grouped_gemm_run``'s ``scale_1x128_kernel``,
      fp8_blockscale_gemm_kernel.cuh, ``internal_quantize_a``): read 2, write 1;
    * the finalize (``finalizeMoeRoutingKernel``, moe_kernels.cu) reads the second GEMM's 16-bit output rows: 2;
    * the gated activation reads the first GEMM's 2 x inter outputs and writes inter (2 + 2 + 2 bytes an inter element;
      1 + 1 without a gate), and the second GEMM's input is quantized the same way: read 2, write 1.

    So 9 bytes per hidden element and 9 (gated) per intermediate element on the rank; the finalize's write of each
    token's reduced row (once per token, not per routed row) is left out."""
    act = (3 if gated else 2) * 2  # read gate and up (or up), write the product, 16-bit
    return (2 + 2 + 2 + 1 + 2) * hidden + (act + 2 + 1) * inter_rank


def _gather_bytes(gpu: GPU, rules: Overlap, weights_dtype: str, *, dispatch: float, block_fp8: bool = False) -> float:
    """Bytes per element of the DP all-gather: NVFP4 activations and their block scales (9/16 byte, the NVFP4
    format of kvplan.units) where the engine quantizes before gathering (``Overlap.moe_allgather_fp4``) and the GPU
    runs NVFP4 on FP4 tensor cores; 16-bit ones for a block-scaled fp8 checkpoint (``block_fp8``) where the engine
    gathers before quantizing them (``Overlap.moe_allgather_block_fp8_16bit``); else the dispatch's bytes (fp8
    weights: fp8; else 16-bit)."""
    if rules.moe_allgather_fp4 and weights_dtype == "nvfp4" and gpu.fp4_dense_tflops is not None:
        return float(weight_dtype("nvfp4").bytes_per_element)
    if rules.moe_allgather_block_fp8_16bit and block_fp8 and weights_dtype.startswith("fp8"):
        return 2.0
    return dispatch


_CTXS: dict[tuple, tuple[ModelSpec, GPU, Calibration, Overlap | None, _Ctx]] = {}


def _shared_ctx(spec: ModelSpec, gpu: GPU, *, cal: Calibration, rules: Overlap | None = None, **options) -> _Ctx:  # noqa: ANN003
    """:func:`_make_ctx`, kept per (spec, GPU, constants, engine rules) object and options: a serving fixed point
    and plan's rate searches price thousands of steps of one setup, and the context is the same for each (it is
    frozen; building it costs a third of a small step). Checked by identity, like :func:`_fact`; ``options`` are
    :func:`_make_ctx`'s other keywords, every one of them in the key (in the order the call names them: each call
    site names them in its own fixed order, and two orders only keep two equal contexts)."""
    key = (id(spec), id(gpu), id(cal), id(rules), *options.items())
    hit = _CTXS.get(key)
    if hit is None or hit[0] is not spec or hit[1] is not gpu or hit[2] is not cal or hit[3] is not rules:
        if len(_CTXS) > 1024:
            _CTXS.clear()
        hit = _CTXS[key] = (spec, gpu, cal, rules, _make_ctx(spec, gpu, cal=cal, rules=rules, **options))
    return hit[4]


_ENGINE_CTXS: dict[tuple, tuple[ModelSpec, GPU, _Ctx]] = {}


def _engine_ctx(
    spec: ModelSpec,
    gpu: GPU,
    engine: str | None,
    *,
    kv_dtype: str,
    tp: int,
    weights_dtype: str,
    eager: bool,
    ep: bool,
    dp: int,
    pp: int,
    gpus_per_node: int | None,
    two_batch: bool,
    deepep: bool,
) -> _Ctx:
    """:func:`_shared_ctx` with ``engine``'s constants and rules (:func:`calibration`, :func:`engine_overlap`, its
    prefill attention's FP8 gain for ``kv_dtype``, :func:`_fmha_gain`), kept per engine name: a step then neither
    looks the engine up twice nor rebuilds the context where the constants come new on each call (an engine lent
    vLLM's gets a relabelled copy). Keyed also by the two functions as this module holds them, so a caller that
    replaces them (a test pinning the constants) gets its own contexts."""
    options = (tp, weights_dtype, eager, ep, dp, pp, gpus_per_node, two_batch, deepep)
    key = (id(spec), id(gpu), engine, kv_dtype, calibration, engine_overlap, *options)
    hit = _ENGINE_CTXS.get(key) if engine is None or isinstance(engine, str) else None  # an Engine: asked each time
    if hit is None or hit[0] is not spec or hit[1] is not gpu:
        if len(_ENGINE_CTXS) > 1024:  # the same cap as _CTXS, whose contexts these are
            _ENGINE_CTXS.clear()
        cal = calibration(engine)
        gain = _fmha_gain(engine, spec, gpu, cal, weights_dtype=weights_dtype, kv_dtype=kv_dtype)
        c = _shared_ctx(spec, gpu, cal=cal, rules=engine_overlap(engine), fmha_gain=gain, tp=tp,
                        weights_dtype=weights_dtype, eager=eager, ep=ep, dp=dp, pp=pp, gpus_per_node=gpus_per_node,
                        two_batch=two_batch, deepep=deepep,
                        moe_kernel=engine_moe_kernel(engine, gpu, weights_dtype))  # fmt: skip
        if engine is not None and not isinstance(engine, str):
            return c
        hit = _ENGINE_CTXS[key] = (spec, gpu, c)
    return hit[2]


# A step's kernel view and context (:func:`_step_ctx`) per argument identities and values: serving prices thousands
# of steps of one setup, each of which would look the engine up, ask it for its attention spans and build the
# context's key again. Each entry holds the spec, GPU and settings (their ids are not reused while it lives); keyed
# also by the functions it calls and _engine_ctx reads as this module holds them (a diagnostic that replaces one, as
# benchmarks/published_compare.py eager_dp_steps does _engine_ctx, gets its own entries). The same cap as
# _ENGINE_CTXS.
_STEP_CTXS: dict[tuple, tuple] = {}


def _step_ctx(
    spec: ModelSpec,
    gpu: GPU,
    engine: Engine | str | None,
    settings: Settings | None,
    *,
    tp: int,
    weights_dtype: str,
    eager: bool,
    ep: bool,
    dp: int,
    pp: int,
    gpus_per_node: int | None,
    two_batch: bool,
    deepep: bool,
    kv_dtype: str,
) -> tuple[ModelSpec, _Ctx, bool]:
    """(:func:`kernel_spec`, :func:`_engine_ctx` on it, whether the engine may read the cache more than once at
    decode: :func:`_with_view_passes` has a multiplier to ask for; False where the engine keeps the base rule, 1)."""
    key = None
    if engine is None or isinstance(engine, str):  # an Engine object is asked each time, as _engine_ctx does
        key = (id(spec), id(gpu), engine, id(settings), kv_dtype, calibration, engine_overlap, _engine_ctx,
               kernel_spec, tp, weights_dtype, eager, ep, dp, pp, gpus_per_node, two_batch, deepep)  # fmt: skip
        hit = _STEP_CTXS.get(key)
        if hit is not None and hit[0] is spec and hit[1] is gpu and hit[2] is settings:
            return hit[3]
    resolved = _resolve_step_ctx(spec, gpu, engine, settings, tp=tp, weights_dtype=weights_dtype, eager=eager, ep=ep,
                                 dp=dp, pp=pp, gpus_per_node=gpus_per_node, two_batch=two_batch, deepep=deepep,
                                 kv_dtype=kv_dtype)  # fmt: skip
    if key is not None:
        if len(_STEP_CTXS) > 1024:
            _STEP_CTXS.clear()
        _STEP_CTXS[key] = (spec, gpu, settings, resolved)
    return resolved


def _resolve_step_ctx(
    spec: ModelSpec,
    gpu: GPU,
    engine: Engine | str | None,
    settings: Settings | None,
    *,
    tp: int,
    weights_dtype: str,
    eager: bool,
    ep: bool,
    dp: int,
    pp: int,
    gpus_per_node: int | None,
    two_batch: bool,
    deepep: bool,
    kv_dtype: str,
) -> tuple[ModelSpec, _Ctx, bool]:
    """:func:`_step_ctx` computed."""
    view = kernel_spec(spec, engine, settings)
    c = _engine_ctx(view, gpu, engine, tp=tp, weights_dtype=weights_dtype, eager=eager, ep=ep, dp=dp, pp=pp,
                    gpus_per_node=gpus_per_node, two_batch=two_batch, deepep=deepep, kv_dtype=kv_dtype)  # fmt: skip
    profile = engine if isinstance(engine, Engine) else get_engine(engine or "vllm")
    views = settings is not None and type(profile).decode_view_passes is not Engine.decode_view_passes
    return view, c, views


def _fp4_k_s(gpu: GPU, cal: Calibration, weights_dtype: str) -> float:
    """The NVFP4 GEMMs' K-loop seconds per element of K (:func:`_fp4_gemm_terms`); 0 where they do not run W4A4."""
    return cal.fp4_k_s if gpu.fp4_dense_tflops is not None and weights_dtype == "nvfp4" else 0.0


def _fp4_moe_layer_s(gpu: GPU, cal: Calibration, weights_dtype: str) -> float | None:
    """Fixed seconds of one NVFP4 grouped-expert layer on FP4 tensor cores (``fp4_moe_layer_s``); None elsewhere.

    Fitted with the other NVFP4 constants on aiconfigurator 0.12.0's NVFP4 steps (benchmarks/fit_fp4.py). vLLM runs
    NVFP4 experts on Blackwell through TensorRT-LLM-Gen's fused MoE kernels (aiconfigurator's
    ``..._flashinfer_trtllm_trtllmnvfp4expertsmonolithic``, systems/data/b200_sxm/moe/vllm/*/moe_perf.parquet: 15.3 us
    at one token of Qwen3-30B-A3B's shape against 19.0 for bf16). aiconfigurator's TensorRT-LLM steps take
    TensorRT-LLM-Gen's min-latency kernel up to 128 tokens and CUTLASS above (``moe_torch_flow_min_latency`` 16.6 us,
    ``moe_torch_flow_cutlass`` 54.9 us at one token), so TensorRT-LLM's figure describes that mixture, where
    TensorRT-LLM runs CUTLASS for NVFP4 checkpoints at every count (``ModelConfig.resolve_moe_backend``,
    tensorrt_llm/_torch/model_config.py; docs/cost.md "The MoE rows' per-step gap", benchmarks/moe_gap.py).
    """
    if gpu.fp4_dense_tflops is None or weights_dtype != "nvfp4" or cal.fp4_moe_layer_s is None:
        return None
    return cal.fp4_moe_layer_s


def lm_head_s(c: _Ctx, rows: float) -> float:
    """The LM head over ``rows`` rows. NVFP4 checkpoints keep it 16-bit: ModelOpt's NVFP4 export lists ``lm_head``
    in ``exclude_modules`` (and :mod:`kvplan.quant` counts it 16-bit), so it runs as a 16-bit GEMM."""
    head = c.terms.get("lm_head")
    if head is None:
        head = c.terms["lm_head"] = _lm_head(c)
    h = c.spec.hidden_size
    return _gemm_s(head[0], rows, head[1], h, k=h)


def _lm_head(c: _Ctx) -> tuple[_Ctx, int]:
    """The context the LM head's GEMM runs in (16-bit where ``head_16bit``) and its weights on this rank."""
    if c.head_16bit:
        c = replace(c, w_bytes=c.act_bytes, peak=c.peak16, mem_scale=1.0, fp4_k_s=0.0)
    return c, c.spec.hidden_size * ceil_div(c.spec.vocab_size, c.tp)


# The sampler's kernels on every step's logits where the engine's rules read them (Overlap.logits_gather_sample): the
# fp32 cast, the argmax over the vocabulary and the sampled ids' cast to int32 (vLLM vllm/v1/sample/sampler.py
# Sampler.forward, greedy_sample; 0.11.0 and 0.16.0 wheels). With TP one more: the copy that puts the all-gathered
# shards back in vocabulary order (base_device_communicator.py DeviceCommunicatorBase.all_gather, movedim + reshape).
SAMPLER_KERNELS = 3
SAMPLING_ENGINE = "vllm"  # the engine whose sampling was read (Calibration.engine of its constants)


def sampling_s(c: _Ctx, rows: float) -> tuple[float, float]:
    """(collective, element-wise) seconds of the step's work on ``rows`` sampled rows' logits after the LM head, where
    the engine's rules say it runs it (:class:`kvplan.engines.Overlap` ``logits_gather_sample``; (0, 0) elsewhere).

    Read in vLLM's 0.11.0 and 0.16.0 wheels: ``LogitsProcessor._gather_logits`` all-gathers the vocab-parallel LM
    head's 16-bit logits to every TP rank (``use_all_gather``: True on CUDA with the V1 engine), through
    ``DeviceCommunicatorBase.all_gather`` (``torch.distributed.all_gather_into_tensor``: NCCL; CudaCommunicator does
    not override it), then reorders them (one copy); the model runner calls ``compute_logits`` after the step's CUDA
    graph, so these and the sampler's kernels run eagerly (``eager_kernel_s`` each). The sampler casts the logits to
    fp32 and, greedy or not, ends in an argmax over the vocabulary (``greedy_sample``; the random path's
    ``probs.div_(q).argmax``): read 16-bit, write and read fp32, at ``elementwise_mem_eff`` of the bandwidth. The
    random path's softmax, temperature and exponential passes are not counted (which path a client's requests take is
    the server's default sampling parameters; vllm bench serve sets none from 0.16 on). The all-gather is NCCL's
    (:func:`nccl_collective_s` over the TP group), or half an all-reduce's wire at the engine's all-reduce constants
    where no NCCL fit covers the GPU or the group spans nodes (the all-reduce's constants of the GPU's class,
    :func:`allreduce_constants`). Only with the constants of
    the engine whose rules these are: a step priced with another engine's constants and no engine (vLLM's rules;
    benchmarks/fit_latency.py's predictions) gets none."""
    if not c.rules.logits_gather_sample or c.cal.engine != SAMPLING_ENGINE or rows <= 0:
        return 0.0, 0.0
    vocab = c.spec.vocab_size
    moved = rows * vocab * (c.act_bytes + 4 + 4)  # the cast reads 16-bit and writes fp32, the argmax reads fp32
    kernels = SAMPLER_KERNELS
    gather = 0.0
    if c.tp > 1:
        gathered = rows * ceil_div(vocab, c.tp) * c.tp * c.act_bytes
        moved += 2 * gathered  # the reorder: read and write
        kernels += 1
        nccl = nccl_collective_s(c, gathered, c.tp)
        if nccl is None:  # half an all-reduce's wire ((R - 1) / R of the bytes) at its constants
            base, ring, per_s = _allreduce_terms(c, c.tp)
            nccl = base + ring / 2 * gathered / per_s
        gather = nccl
    return gather, moved / (c.bw * c.cal.elementwise_mem_eff) + kernels * c.cal.eager_kernel_s


def _exchange_rules(rules: Overlap, *, two_batch: bool, deepep: bool) -> Overlap:
    """With DeepEP chosen (Settings.deepep) or two-micro-batch overlap on, the engine exchanges tokens with DeepEP's
    all-to-all (vLLM asserts a DeepEP all2all backend for --enable-dbo; SGLang's two-batch overlap runs on DeepEP),
    whatever its default."""
    if not (two_batch or deepep):
        return rules
    if two_batch and rules.two_batch_decode_tokens is None:
        raise InvalidInput("two-batch overlap is not an option of this engine (vLLM --enable-dbo and SGLang "
                           "--enable-two-batch-overlap have it)")  # fmt: skip
    return replace(rules, moe_allgather=False)


def _fp4_moe_peak(gpu: GPU, cal: Calibration, weights_dtype: str) -> float | None:
    """NVFP4 grouped expert GEMMs: the FP4 peak at their own share ``fp4_moe_eff_scale`` (TensorRT-LLM's and vLLM's
    NVFP4 MoE kernels reach a different share than the dense FP4 GEMMs); None elsewhere (the GEMMs' peak)."""
    if gpu.fp4_dense_tflops is None or weights_dtype != "nvfp4":
        return None
    arch = cal.blackwell_compute_eff if gpu.architecture == "blackwell" else 1.0
    return gpu.fp4_dense_tflops * 1e12 * cal.fp4_moe_eff_scale * arch


def _linear_s(
    c: _Ctx, tokens: float, lm_rows: float, *, stage: _Stage | None = None, moe_tokens: float | None = None
) -> tuple[float, float, float, float, float, float]:
    """(GEMM, grouped experts, element-wise, all-reduce, all-to-all, overlap) seconds of one stage's layers (every
    layer when ``stage`` is None) for the rank's ``tokens``; ``moe_tokens``: all tokens the MoE layers see (DP
    attention). ``overlap`` (0 or negative) is what the shared-expert stream hides (:func:`_shared_overlap_s`)."""
    if tokens <= 0:
        return 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    moe_tokens = tokens if moe_tokens is None else moe_tokens
    lin = c.terms.get(("linear", stage.index if stage is not None else -1))
    if lin is None:
        lin = c.terms["linear", stage.index if stage is not None else -1] = _linear_terms(c, stage)
    gemm = moe = elementwise = 0.0
    moe_parts: list[tuple[int, _MoeParts]] = []
    cid, hides = id(c), lin.hides
    for count, _, alike, dense, width, kind in lin.layers:
        # kept: every stage has the layer, and kinds alike share it (_PARTS, _alike_kinds)
        key = (cid, "layer", alike, dense, width, tokens, moe_tokens)
        hit = _PARTS.get(key)
        if hit is None or hit[0] is not c:
            hit = _keep(key, c, _layer_s(c, kind, tokens, dense=dense, width=width, moe_tokens=moe_tokens))
        g, m, e, parts = hit[1]
        gemm, moe, elementwise = gemm + count * g, moe + count * m, elementwise + count * e
        if hides and parts is not None:
            moe_parts.append((count, parts))
    gather = 0.0
    if lm_rows > 0 and lin.last:
        gemm += lm_head_s(c, lm_rows)
        gather, passes = sampling_s(c, lm_rows)
        elementwise += passes
    if c.dp == 1:
        # TP: the all-reduces each layer's parts end with (_kind_allreduces: one after attention or the token mixer,
        # one after the MLP, experts sliced or split whole: the output is summed over the TP group either way) and
        # one after the embedding. The MLP's all-reduce follows the join of the shared and routed paths, so it is
        # outside their overlap.
        reduce, a2a = lin.allreduces * allreduce_s(c, tokens), 0.0
        for count, nbytes in lin.narrow:
            reduce += count * allreduce_bytes_s(c, tokens * nbytes)
        if _fuses_gemm_allreduce(c):  # the row-parallel GEMMs' all-reduces run under them, tile by tile
            for count, name, _, dense, width, kind in lin.layers:
                key = (cid, "fused_ar", name, dense, width, tokens)  # kept, as the layer's figures
                hit = _PARTS.get(key)
                if hit is None or hit[0] is not c:
                    hit = _keep(key, c, _fused_allreduce_delta_s(c, kind, tokens, dense=dense, width=width))
                reduce += count * hit[1]
    else:
        reduce, a2a = _dp_collectives_s(c, tokens, moe_tokens, lin.range, first=lin.first)
    reduce += gather
    if not lin.moe_layers:  # a dense stage: nothing to hide (0, as the sum below over no layers)
        return gemm, moe, elementwise, reduce, a2a, 0
    if not hides:  # no layer can hide anything: each term of the sum below is 0.0
        return gemm, moe, elementwise, reduce, a2a, 0.0
    exchange = a2a / lin.moe_layers  # one MoE layer's dispatch + combine
    hidden = sum(n * _shared_overlap_s(c, parts, tokens, exchange) for n, parts in moe_parts)
    return gemm, moe, elementwise, reduce, a2a, hidden


class _LinearTerms(NamedTuple):
    """What :func:`_linear_s` reads of a stage whatever the tokens (kept in c.terms per stage)."""

    # (count, kind's name, the alike kind's name, dense MLP, width, kind) per (kind, dense, width), in stage order
    layers: tuple[tuple[int, str, str, bool, int, LayerKind], ...]
    range: range  # the stage's layers
    first: bool  # it embeds
    last: bool  # it samples
    allreduces: int  # TP all-reduces of the hidden size without DP attention (_kind_allreduces) and the embedding's
    narrow: tuple[tuple[int, float], ...]  # (layers, bytes a token) of each narrower all-reduce (_kind_allreduces)
    moe_layers: int  # layers with a MoE MLP
    hides: bool  # a MoE layer may hide time (shared experts, and the engine runs them on a second stream here)


def _linear_terms(c: _Ctx, stage: _Stage | None) -> _LinearTerms:
    """:class:`_LinearTerms` of a stage (every layer when ``stage`` is None): its (kind, dense MLP, width) counts
    (:func:`_layer_keys`) with the kind each shares its figures with (:func:`_alike_kinds`). A layer has MoE parts
    where :func:`_layer_s` gives them (an MLP, not dense); :func:`_shared_overlap_s` is 0 for every one of them where
    the model has no shared experts, the engine runs none on a second stream, or only under CUDA graphs in an eager
    context."""
    spec = c.spec
    layers = stage.layers if stage is not None else range(spec.num_layers)
    first, last = stage is None or stage.first, stage is None or stage.last

    def make() -> tuple:  # all but ``hides``: the spec's, kept across contexts (a cold step builds a new one)
        alike = _alike_kinds(c)
        keys = stage.keys if stage is not None else tuple(_layer_keys(spec, layers).items())
        entries = tuple((count, name, alike[name], dense, width, spec.kind(name))
                        for (name, dense, width), count in keys)  # fmt: skip
        moe_layers = sum(count for count, _, _, dense, _, kind in entries if kind.mlp and not dense)
        wide, narrow = 1 if first else 0, []
        for count, _, _, dense, width, kind in entries:
            n, extra = _kind_allreduces(spec, kind, dense=dense, width=width, norm_reduce=norm_reduce,
                                        act_bytes=c.act_bytes)  # fmt: skip
            wide += count * n
            narrow.extend((count, nbytes) for nbytes in extra)
        return entries, layers, first, last, wide, tuple(narrow), moe_layers

    rules, norm_reduce = c.rules, c.cal.mixer_norm_allreduce
    hides = bool(spec.moe is not None and spec.moe.shared_size and rules.shared_experts_tokens > 0
                 and not (rules.shared_experts_graph_only and not c.graph))  # fmt: skip
    key = ("linear", c.tp, layers.start, layers.stop, first, last, norm_reduce, c.act_bytes)
    return _LinearTerms(*_fact(spec, key, make), hides)


# Families whose attention RMS-normalises q and k over all heads while TP splits the heads, so each rank's sums of
# squares are all-reduced (two fp32 a token, q's and k's together) before the norm: MiniMax-M2 (vLLM
# vllm/model_executor/models/minimax_m2.py MiniMaxM2Attention.forward -> MiniMaxText01RMSNormTP.forward_qk,
# layers/mamba/linear_attn.py: ``qk_var = tensor_model_parallel_all_reduce(torch.cat([q_var, k_var]))``; later copies
# fuse it into one kernel, torch.ops.vllm.minimax_qk_norm_fusion, still one collective a layer). Priced with
# Calibration.mixer_norm_allreduce (the engines whose norm across TP ranks was read).
WHOLE_QK_NORM_FAMILIES = frozenset({"minimax_m2"})


def _kind_allreduces(
    spec: ModelSpec, kind: LayerKind, *, dense: bool, width: int, norm_reduce: bool, act_bytes: float
) -> tuple[int, tuple[float, ...]]:
    """(all-reduces of ``tokens x hidden`` values, bytes a token of each narrower all-reduce) one layer of ``kind``
    ends its parts with under TP (without DP attention): :func:`kvplan.params.layer_allreduces`, and the narrower
    ones. A Mamba (v1) mixer's x_proj is row-parallel (vLLM layers/mamba/mamba_mixer.py MambaMixer:
    RowParallelLinear(intermediate, dt_rank + 2 d_state), its output reduced: Jamba); with ``norm_reduce``
    (Calibration.mixer_norm_allreduce) the mixer's output norm over the whole width all-reduces one fp32 sum a token
    (a Mamba2 mixer with one group and its gated norm on; a lightning-attention layer), and an attention layer of a
    family in :data:`WHOLE_QK_NORM_FAMILIES` all-reduces its q and k sums (two fp32 a token)."""
    narrow: list[float] = []
    if norm_reduce and spec.family in WHOLE_QK_NORM_FAMILIES and kind.type in ("full", "sliding", "chunked"):
        narrow.append(8.0)
    for mixer in (kind, kind.parallel):
        if mixer is None or mixer.type != "recurrent":
            continue
        if mixer.variant == "mamba":
            narrow.append(((mixer.dt_rank or 0) + 2 * (mixer.d_state or 0)) * act_bytes)
        elif norm_reduce and (mixer.variant == "lightning" or (mixer.variant == "mamba2" and mixer.n_groups == 1
                                                                and mixer.ssm_norm)):  # fmt: skip
            narrow.append(4.0)  # one fp32 sum of squares a token
    return layer_allreduces(spec, kind, dense=dense, width=width), tuple(narrow)


def _alike_kinds(c: _Ctx) -> dict[str, str]:
    """Each layer kind's name -> the first kind's name whose layer costs the same in :func:`_layer_s`: all it reads of
    a kind is whether it is a KV-head attention kind, its quantizable projections' weights on the rank
    (:func:`_attention_gemms_s`) and whether it has an MLP. gpt-oss's ``sliding`` and ``full`` layers, Gemma 3's
    ``local`` and ``global``, differ only in their attention span: a step prices their GEMMs and experts once."""
    spec, tp = c.spec, c.tp

    def make() -> dict[str, str]:
        first: dict[tuple, str] = {}
        out = {}
        for name in spec.kind_counts:
            kind = spec.kind(name)
            parts = tuple(p.params for p in attention_parts(spec, kind, tp) if p.quantizable)
            out[name] = first.setdefault((kind.type in ("full", "sliding", "chunked"), parts, not kind.mlp), name)
        return out

    return _fact(spec, ("alike", tp), make)


def _dp_collectives_s(c: _Ctx, tokens: float, moe_tokens: float, layers: range, *, first: bool) -> tuple[float, float]:
    """(all-reduce, all-to-all) seconds of one stage's layers with data-parallel attention.

    Attention (and dense MLP layers) run TP over each DP rank's ``tp`` GPUs: one all-reduce each of the rank's
    tokens. A MoE layer with EP dispatches each token to its top-k experts' ranks and combines their outputs
    (two all-to-alls over tp x dp ranks; a TP group splits its tokens for them, as vLLM's sequence-parallel MoE
    and SGLang's DP attention do, and gathers them back: one more all-reduce-sized collective when tp > 1).
    Without EP the experts are sliced over all tp x dp ranks and the tokens of every DP rank gathered and
    reduced: one all-reduce of all ``moe_tokens`` over the tp x dp ranks.
    """
    spec = c.spec
    tp_reduces = 1 if first else 0  # the embedding's, each mixer's (mixer_allreduces) and each dense MLP's
    moe_layers = 0
    for (name, dense, width), n in _layer_keys(spec, layers).items():
        kind = spec.kind(name)
        tp_reduces += n * (mixer_allreduces(kind) + (1 if dense and kind.mlp and width > 0 else 0))
        moe_layers += n if kind.mlp and not dense else 0
    per_rank = allreduce_s(c, tokens)
    reduce = tp_reduces * per_rank
    if c.rules.moe_allgather:
        # Every rank's tokens gathered to every rank (each padded to the busiest rank's count, or each rank's own
        # count where the engine gathers unpadded: all the MoE layer's tokens) and the outputs reduce-scattered back,
        # experts split whole or sliced alike (Overlap.moe_allgather, moe_allgather_unpadded).
        gathered = (moe_tokens if c.gather_unpadded else c.moe_ranks * tokens) / c.tp
        exchange = _gather_s(c, gathered, bytes_per_element=c.gather_bytes) + _gather_s(
            c, gathered, bytes_per_element=2.0
        )
        return reduce + (moe_layers * per_rank if c.tp > 1 else 0.0), moe_layers * exchange
    if not c.ep:
        return reduce + moe_layers * allreduce_s(c, moe_tokens, c.moe_ranks), 0.0
    reduce += moe_layers * per_rank
    share = tokens / c.tp  # the rank's own tokens into the dispatch
    a2a = alltoall_s(c, share, bytes_per_element=c.dispatch_bytes) + alltoall_s(c, share, bytes_per_element=2.0)
    return reduce, moe_layers * a2a


def _stage_flops(spec: ModelSpec, layers: range, *, context: int, prefix: int, prompts: float, tp: int) -> float:
    """Attention FLOPs of ``prompts`` prefills of ``context`` new tokens after ``prefix`` cached ones, one stage."""
    key = ("flops", layers.start, layers.stop, context, prefix, prompts, tp)
    return _fact(spec, key, lambda: _count_flops(spec, layers, context=context, prefix=prefix, prompts=prompts, tp=tp))


def _count_flops(spec: ModelSpec, layers: range, *, context: int, prefix: int, prompts: float, tp: int) -> float:
    from kvplan.attention import attention_flops, prefill_pairs

    names = spec.layer_kind_names
    counts: dict[str, int] = {}
    for i in layers:
        counts[names[i]] = counts.get(names[i], 0) + 1
    flops: float = 0  # an int while ``prompts`` is one: the sum stays exact
    for name, count in counts.items():
        kind = spec.kind(name)
        # the (query, key) pairs of the chunk's queries, positions prefix .. prefix + context - 1: each sees its own
        # window, chunk or causal past (full attention: context x prefix + the chunk's own triangle)
        pairs = prefill_pairs(kind, prefix + context) - prefill_pairs(kind, prefix)
        s, v = attention_flops(spec, kind, pairs, phase="prefill", tp=tp)
        flops += count * prompts * (s + v)
    return flops


def _indexer_pairs(spec: ModelSpec, layers: range, *, context: int, prefix: int) -> int:
    """(query, key) pairs the DSA lightning indexers of ``layers`` score for one prompt chunk of ``context`` tokens
    after ``prefix`` cached ones, summed over the layers that have one (``index_n_heads``; 0 for every other model)."""

    def make() -> int:
        from kvplan.attention import causal_pairs

        names = spec.layer_kind_names
        indexed = sum(1 for i in layers if spec.kind(names[i]).index_n_heads)
        return indexed * (causal_pairs(prefix + context) - causal_pairs(prefix)) if indexed else 0

    return _fact(spec, ("indexer_pairs", layers.start, layers.stop, context, prefix), make)


def indexer_prefill_s(c: _Ctx, layers: range, *, context: int, prefix: int, prompts: float) -> float:
    """DeepSeek-V3.2's lightning indexer in a prompt (DeepSeek Sparse Attention), ``prompts`` chunks of ``context``
    tokens after ``prefix`` cached ones on one rank: every query token scores every earlier key of its prompt
    (causal) with the indexer's ``index_n_heads`` heads of ``index_head_dim`` in fp8, then the engine keeps the top
    2,048 of those scores for the main attention; 0 for a model without the indexer.

    What runs (vLLM 0.11-0.13, ``sparse_attn_indexer``, read through the code index): the prompt's logits come from
    DeepGEMM's ``fp8_mqa_logits(q, (k_fp8, k_scale), weights, cu_seqlen_ks, cu_seqlen_ke)``, which computes
    ``relu(q[i, h, :] . k[j, :]) x weights[i, h]`` summed over the heads for every key j in ``[ks_i, ke_i)`` (the
    causal past of query i) and writes a float32 ``[tokens, keys]`` logits tensor (deepseek-ai/DeepGEMM README,
    "MQA Scoring Kernels (Lightning Indexer)": "Non-paged version (for prefilling)", output ``[seq_len,
    seq_len_kv]``); a top-k kernel then reads those logits. The indexer's projections (wq_b, wk) are plain
    replicated linears (deepseek-ai/DeepSeek-V3.2-Exp inference/model.py class Indexer), already priced with the
    layer's GEMMs (kvplan.params._indexer_parts); its heads are not split by tensor parallelism, so every rank scores
    every pair. Priced as the FLOPs, ``2 x index_n_heads x index_head_dim`` per pair, at the GPU's fp8 tensor-core
    peak (16-bit where it has none) times ``attn_prefill_eff`` (the engine's fitted prefill attention efficiency: no
    table times the indexer alone), plus the logits' bytes, 4 written and 4 read per pair, at ``gemm_mem_eff`` of
    the bandwidth. The main attention over the keys it selects is :func:`_attention_s`'s (:func:`_sparse_mla`).
    """
    if not any(c.spec.kind(name).index_n_heads for name in c.spec.kind_counts):
        return 0.0
    pairs = _indexer_pairs(c.spec, layers, context=context, prefix=prefix) * prompts
    if not pairs:
        return 0.0
    kind = next(c.spec.kind(name) for name in c.spec.kind_counts if c.spec.kind(name).index_n_heads)
    flops = 2 * kind.index_n_heads * kind.index_head_dim * pairs
    arch = c.cal.blackwell_compute_eff if c.gpu.architecture == "blackwell" else 1.0
    fp8_peak = c.gpu.fp8_dense_tflops * 1e12 * arch if c.gpu.fp8_dense_tflops else c.peak16
    return flops / (fp8_peak * c.cal.attn_prefill_eff) + 8 * pairs / (c.bw * c.cal.gemm_mem_eff)


def _send_bytes(c: _Ctx, tokens: float) -> float:
    return tokens * c.spec.hidden_size * c.act_bytes * PP_SEND_TENSORS


def _crosses(c: _Ctx, stage: _Stage) -> bool:
    """Whether the send after ``stage`` leaves the node: stage s sits on GPUs [s, s + 1) x tp x dp of the replica."""
    per_stage = c.tp * c.dp
    return (stage.index + 1) * per_stage % c.gpus_per_node == 0 or per_stage > c.gpus_per_node


def _sends(c: _Ctx, stages: list[_Stage], tokens: float) -> list[float]:
    """The send after each stage of ``tokens`` tokens' hidden state (0 after the last): one figure within the node,
    one across it."""
    nbytes = _send_bytes(c, tokens)
    by_crossing: dict[bool, float] = {}
    out = []
    for st in stages:
        if st.last:
            out.append(0.0)
            continue
        crosses = _crosses(c, st)
        if crosses not in by_crossing:
            by_crossing[crosses] = send_s(c, nbytes, crosses_nodes=crosses)
        out.append(by_crossing[crosses])
    return out


def _pipeline(
    stage_times: list[OpTimes], sends: list[float], micro_batches: float, *, phase: str, busiest: float | None = None
) -> OpTimes:
    """Combine per-stage times of one micro-batch into what a request sees (see :func:`step_latency`); ``busiest``:
    the caller's :func:`_busiest` of the same stages and sends, where it has it."""
    t = stage_times[0]
    gemm, moe, attn, elem = t.gemm, t.moe, t.attention, t.elementwise
    reduce, a2a, piped, overlap = t.allreduce, t.alltoall, t.pipeline, t.overlap
    for t in stage_times[1:]:  # the stages' sum, field by field in stage order (as OpTimes.__add__ over them)
        gemm, moe, attn, elem = gemm + t.gemm, moe + t.moe, attn + t.attention, elem + t.elementwise
        reduce, a2a, piped, overlap = reduce + t.allreduce, a2a + t.alltoall, piped + t.pipeline, overlap + t.overlap
    sent = sum(sends)
    if busiest is None:
        busiest = _busiest(stage_times, sends)
    if phase == "prefill":
        wait = (micro_batches - 1) * busiest
    else:  # the trip's total as OpTimes.total sums it
        trip_s = gemm + moe + attn + elem + reduce + a2a + piped + overlap
        wait = max(0.0, micro_batches * busiest - trip_s - sent)
    return OpTimes(gemm, moe, attn, elem, reduce, a2a, piped + sent + wait, overlap)


def _busiest(stage_times: list[OpTimes], sends: list[float]) -> float:
    """The busiest stage of a micro-batch's pass, its send after it included."""
    return max(t.total + s for t, s in zip(stage_times, sends, strict=True))


def step_latency(
    spec: ModelSpec,
    gpu: GPU,
    context: int,
    *,
    phase: str,
    batch: int = 1,
    tp: int = 1,
    kv_dtype_name: str,
    weights_dtype: str,
    attention_flops: int,
    engine: str | None = None,
    constants: Calibration | None = None,
    expert_parallel: bool = False,
    pp: int = 1,
    dp: int = 1,
    gpus_per_node: int | None = None,
    deepep: bool = False,
    two_batch: bool = False,
    settings: Settings | None = None,
) -> OpTimes:
    """Seconds of one prefill (``batch`` prompts of ``context``) or decode step, by operation class.

    ``constants`` replaces the engine's fitted ones (the fit script's hook); ``deepep``: DeepEP's all-to-all for the
    MoE token exchange under DP attention instead of the engine's default (:class:`kvplan.engines.Overlap`);
    ``two_batch``: the engine's two-micro-batch overlap (DP attention + EP, no PP), each half taking half of every
    rank's sequences (:func:`two_batch_s`'s formula). ``attention_flops`` is the attention of the whole batch on one
    rank of the TP group (:func:`kvplan.cost.step_flops`); where ``engine``'s kernels read other spans than the
    checkpoint's windows (:func:`kernel_spec`, with the engine's ``settings``), they are counted on those instead.

    **Data-parallel attention** (``dp`` > 1; with ``expert_parallel`` the experts split whole over tp x dp
    ranks): the ``batch`` sequences spread over ``dp`` ranks; the busiest holds ``ceil(batch / dp)`` and sets the
    step (every rank meets every other in each MoE layer); the MoE layers see all ``batch`` sequences' tokens.

    **Pipeline parallelism** (``pp`` > 1): each stage runs its layers (the first embeds, the last samples) and
    sends the hidden state and residual to the next (:func:`send_s`, across nodes where the stage boundary is a
    node boundary). The engines keep ``pp`` micro-batches in flight (vLLM: ``max_concurrent_batches`` =
    ``pipeline_parallel_size``, vllm/v1/executor/multiproc_executor.py @ 00f6c9bf, the EngineCore batch queue;
    SGLang: ``event_loop_pp`` runs ``pp_loop_size`` = pp_size micro-batches, each its own running batch,
    python/sglang/srt/managers/scheduler_pp_mixin.py @ 00ff98d3). With ``m = min(pp, sequences per rank)``
    micro-batches of ``ceil(sequences / m)`` and stage times ``t_s`` (send included):

    * prefill (TTFT of the batch): ``sum t_s + (m - 1) max t_s``, the first micro-batch's trip and then one
      per busiest-stage time (the pipeline bubble is the ``sum t_s`` a lone micro-batch pays);
    * decode (TPOT): each sequence advances once per cycle, ``max(sum t_s, m max t_s)``.

    With ``pp = 1`` and ``dp = 1`` the figures are exactly those of the single-stage model.
    """
    cal = constants or calibration(engine)
    gain = _fmha_gain(engine, spec, gpu, cal, weights_dtype=weights_dtype, kv_dtype=kv_dtype_name)
    view = kernel_spec(spec, engine, settings)
    if view is not spec and phase == "prefill":  # the engine's kernels compute other spans than the checkpoint's
        attention_flops = _stage_flops(view, range(spec.num_layers), context=context, prefix=0, prompts=batch, tp=tp)
    spec = view
    eager = phase == "prefill" or past_graph_cap(spec, engine, settings, decode_seqs=batch, dp=dp, pp=pp)
    c = _shared_ctx(spec, gpu, tp=tp, weights_dtype=weights_dtype, cal=cal, eager=eager,
                    ep=expert_parallel, dp=dp, pp=pp, gpus_per_node=gpus_per_node, rules=engine_overlap(engine),
                    deepep=deepep, two_batch=two_batch, fmha_gain=gain,
                    moe_kernel=engine_moe_kernel(engine, gpu, weights_dtype))  # fmt: skip
    if phase == "decode":
        c = _with_view_passes(c, spec, engine, settings, batch / dp)
    per_seq = context if phase == "prefill" else 1
    rank_seqs = ceil_div(batch, dp)
    if pp == 1 and rank_seqs >= 2 and _splits_in_two(c, rank_seqs * per_seq, prefill=phase == "prefill"):
        half = _stage_times(c, context, phase=phase, batch=ceil_div(rank_seqs, 2) * dp, kv_dtype_name=kv_dtype_name)
        return _two_halves(c, half.times[0])
    if pp == 1 and dp == 1:
        tokens = batch * per_seq
        gemm, moe, elementwise, reduce, a2a, hidden = _linear_s(c, tokens, batch)
        attention = _attention_s(
            c, phase=phase, context=context, batch=batch, attention_flops=attention_flops, kv_dtype=kv_dtype_name
        )
        if phase == "prefill":
            attention += indexer_prefill_s(c, range(spec.num_layers), context=context, prefix=0, prompts=batch)
        return OpTimes(gemm=gemm, moe=moe, attention=attention, elementwise=elementwise, allreduce=reduce,
                       overlap=hidden)  # fmt: skip
    stages = _stage_times(c, context, phase=phase, batch=batch, kv_dtype_name=kv_dtype_name)
    return _pipeline(stages.times, stages.sends, stages.micro_batches, phase=phase)


@dataclass(frozen=True)
class StageTimes:
    """One micro-batch's pass through the pipeline: seconds per stage, the send after each (0 after the last)."""

    times: list[OpTimes]
    sends: list[float]
    micro_batches: int  # in flight at once (min(pp, sequences on the busiest DP rank))
    sequences: int  # per micro-batch on the busiest DP rank


def stage_latencies(
    spec: ModelSpec,
    gpu: GPU,
    context: int,
    *,
    phase: str,
    batch: int = 1,
    tp: int = 1,
    pp: int = 1,
    dp: int = 1,
    kv_dtype_name: str,
    weights_dtype: str,
    engine: str | None = None,
    expert_parallel: bool = False,
    gpus_per_node: int | None = None,
    settings: Settings | None = None,
) -> StageTimes:
    """The per-stage figures :func:`step_latency` combines (the pipeline arithmetic is checkable by hand)."""
    cal = calibration(engine)
    gain = _fmha_gain(engine, spec, gpu, cal, weights_dtype=weights_dtype, kv_dtype=kv_dtype_name)
    spec = kernel_spec(spec, engine, settings)
    c = _shared_ctx(spec, gpu, tp=tp, weights_dtype=weights_dtype, cal=cal, eager=phase == "prefill",
                    ep=expert_parallel, dp=dp, pp=pp, gpus_per_node=gpus_per_node, rules=engine_overlap(engine),
                    fmha_gain=gain, moe_kernel=engine_moe_kernel(engine, gpu, weights_dtype))  # fmt: skip
    return _stage_times(c, context, phase=phase, batch=batch, kv_dtype_name=kv_dtype_name)


def _stage_times(c: _Ctx, context: int, *, phase: str, batch: int, kv_dtype_name: str) -> StageTimes:
    spec, per_seq = c.spec, context if phase == "prefill" else 1
    rank_seqs = ceil_div(batch, c.dp)
    micro = min(c.pp, rank_seqs)
    seqs = ceil_div(rank_seqs, micro)  # per micro-batch, busiest rank
    moe_seqs = min(batch, seqs * c.dp)  # all ranks' sequences in one micro-batch
    times, sends = [], []
    for st in _stages(spec, c.pp):
        flops = (
            _stage_flops(spec, st.layers, context=context, prefix=0, prompts=seqs, tp=c.tp) if phase == "prefill" else 0
        )
        gemm, moe, elementwise, reduce, a2a, hidden = _linear_s(
            c, seqs * per_seq, seqs, stage=st, moe_tokens=moe_seqs * per_seq
        )
        attention = _attention_s(c, phase=phase, context=context, batch=seqs, attention_flops=flops,
                                 kv_dtype=kv_dtype_name, stage=st)  # fmt: skip
        if phase == "prefill":
            attention += indexer_prefill_s(c, st.layers, context=context, prefix=0, prompts=seqs)
        times.append(OpTimes(gemm, moe, attention, elementwise, reduce, a2a, overlap=hidden))
        sends.append(0.0 if st.last else send_s(c, _send_bytes(c, seqs * per_seq), crosses_nodes=_crosses(c, st)))
    return StageTimes(times, sends, micro, seqs)


def mixed_step_latency(
    spec: ModelSpec,
    gpu: GPU,
    *,
    decode_seqs: float,
    decode_context: int,
    prefill_tokens: float,
    prefill_prefix: int = 0,
    tp: int = 1,
    kv_dtype_name: str,
    weights_dtype: str,
    engine: str | None = None,
    expert_parallel: bool = False,
    pp: int = 1,
    dp: int = 1,
    gpus_per_node: int | None = None,
    prefill_tokens_all_ranks: float | None = None,
    two_batch: bool = False,
    deepep: bool = False,
    prompt_chunks: float = 1.0,
    padded_rank_seqs: float | None = None,
    settings: Settings | None = None,
    eager_decode: bool = False,
    prefill_prompts: float = 1.0,
) -> OpTimes:
    """One in-flight-batching step: ``decode_seqs`` decodes at ``decode_context`` plus a prefill chunk of
    ``prefill_tokens`` tokens after ``prefill_prefix`` already-prefilled tokens of the same prompt.

    Projections, experts, norms and all-reduces run once over all the step's tokens; attention is the
    decode part plus the chunk's. With no decodes and no prefix it equals :func:`step_latency` for a
    one-prompt prefill; with no prefill, a decode step. Steps with prefill tokens run eagerly.

    With ``dp`` data-parallel attention ranks the decodes spread evenly and the chunk lands on one rank (the
    busiest, which sets the step; ``prefill_tokens_all_ranks``, default the chunk, is what every rank's prompts
    add to the MoE layers); with ``pp`` stages the decodes form ``m = min(pp, decodes per rank)``
    micro-batches and the chunk rides in one of them: the figure is the cycle in which every sequence advances
    once, ``max(trip of the chunk's micro-batch, its busiest stage + (m - 1) x the others' busiest stage)``.

    ``two_batch`` (the engine's two-micro-batch overlap, :class:`kvplan.engines.Overlap`): with DP attention and
    EP (no PP) a step with more tokens on the rank than the engine's threshold runs as two halves
    (:func:`two_batch_s`). ``deepep``: DeepEP's all-to-all instead of the engine's default token exchange.

    With ``prompt_chunks = k > 1`` (PP only) the step carries ``k`` such chunks, each admitted by its own
    micro-batch (every micro-batch is scheduled by its own call, with its own token budget: TensorRT-LLM's
    micro-batch scheduler, tensorrt_llm/_torch/pyexecutor; vLLM's vllm/v1/engine/core.py
    ``EngineCore.step_with_batch_queue``, one ``scheduler.schedule()`` per batch while the queue of in-flight
    batches is not full, read in copies of that file): the cycle is
    ``k`` x the busiest stage of a loaded micro-batch + ``(m - k)`` x that of a plain one, linear in ``k`` from the
    one-chunk cycle (``k = 1``); from ``k = m`` on, every micro-batch carries ``k / m`` chunks.

    ``padded_rank_seqs`` (a decode-only step without PP, :meth:`kvplan.engines.base.Engine.graph_rows`): every rank
    runs that many rows, the rest dummy requests padding the batch up to a captured CUDA graph; they add rows to the
    GEMMs, norms, the MoE layers and their token exchange, not to the attention's cache reads.

    ``settings``: the engine's flags where they change what its attention kernels read (:func:`kernel_spec`).
    ``eager_decode``: a decode-only step past the engine's largest CUDA graph (:func:`past_graph_cap`), run without one.
    ``prefill_prompts`` (no PP, no prefix): the chunk is that many whole prompts, each attending to its own tokens
    (:func:`_chunk_attention_s`); default one prompt. With ``dp`` ranks it is the busiest rank's chunk's prompts (the
    rank's attention runs over its own requests only; the other ranks' prompts enter its MoE layers as tokens).
    """
    chunk = int(round(prefill_tokens))
    spec, c, views = _step_ctx(spec, gpu, engine, settings, tp=tp, weights_dtype=weights_dtype,
                               eager=chunk > 0 or eager_decode, ep=expert_parallel, dp=dp, pp=pp,
                               gpus_per_node=gpus_per_node, two_batch=two_batch, deepep=deepep,
                               kv_dtype=kv_dtype_name)  # fmt: skip
    if views:
        c = _with_view_passes(c, spec, engine, settings, decode_seqs / dp)
    if pp == 1 and dp == 1:
        pad = max(0.0, padded_rank_seqs - decode_seqs) if padded_rank_seqs is not None and not chunk else 0.0
        return _micro_step(c, None, decode_seqs, decode_seqs + pad, decode_context, chunk, prefill_prefix,
                           kv_dtype_name, pad, prefill_prompts)  # fmt: skip
    rank_seqs = decode_seqs / dp
    micro = min(float(pp), max(1.0, rank_seqs))
    seqs = rank_seqs / micro
    others = max(0.0, (prefill_tokens_all_ranks or chunk) - chunk)  # other ranks' prompt tokens in the MoE layers
    if pp > 1:
        chunks = max(1.0, prompt_chunks) if chunk and dp == 1 else 1.0
        return _pp_cycles(c, _stages(spec, pp), micro, seqs, seqs * dp + others, decode_context, chunk,
                          prefill_prefix, kv_dtype_name, (chunks,))[0]  # fmt: skip
    if _splits_in_two(c, seqs + chunk, prefill=chunk > 0):
        return two_batch_s(c, seqs, seqs * dp + others, decode_context, chunk, prefill_prefix, kv_dtype_name)
    pad = max(0.0, padded_rank_seqs - seqs) if padded_rank_seqs is not None and not chunk else 0.0
    (stage,) = _stages(spec, 1)
    return _micro_step(c, stage, seqs, (seqs + pad) * dp + others, decode_context, chunk, prefill_prefix,
                       kv_dtype_name, pad, prefill_prompts)  # fmt: skip


def pp_chunk_cycles(
    spec: ModelSpec,
    gpu: GPU,
    *,
    decode_seqs: float,
    decode_context: int,
    prefill_tokens: float,
    prefill_prefix: int = 0,
    tp: int = 1,
    kv_dtype_name: str,
    weights_dtype: str,
    engine: str | None = None,
    expert_parallel: bool = False,
    pp: int,
    gpus_per_node: int | None = None,
    two_batch: bool = False,
    deepep: bool = False,
    chunk_counts: tuple[float, ...],
    settings: Settings | None = None,
) -> tuple[float, ...]:
    """The totals of :func:`mixed_step_latency` with ``prompt_chunks=k`` for each ``k`` of ``chunk_counts`` (PP > 1,
    one data-parallel rank, a prompt chunk of ``prefill_tokens``): the same cycles (:func:`_pp_cycles`), each stage
    priced once for all of them (kvplan.serving prices a pipeline's prompt-queue states with it)."""
    chunk = int(round(prefill_tokens))
    if pp < 2 or chunk < 1:
        raise ValueError("pp_chunk_cycles needs pp > 1 and a prompt chunk")
    spec = kernel_spec(spec, engine, settings)
    c = _engine_ctx(spec, gpu, engine, tp=tp, weights_dtype=weights_dtype, eager=True, ep=expert_parallel, dp=1,
                    pp=pp, gpus_per_node=gpus_per_node, two_batch=two_batch, deepep=deepep,
                    kv_dtype=kv_dtype_name)  # fmt: skip
    micro = min(float(pp), max(1.0, decode_seqs))
    seqs = decode_seqs / micro
    counts = tuple(max(1.0, k) for k in chunk_counts)
    cycles = _pp_cycles(c, _stages(spec, pp), micro, seqs, seqs, decode_context, chunk, prefill_prefix, kv_dtype_name,
                        counts)  # fmt: skip
    return tuple(t.total for t in cycles)


def _pp_cycles(
    c: _Ctx,
    stages: list[_Stage],
    micro: float,
    seqs: float,
    moe_seqs: float,
    decode_context: int,
    chunk: int,
    prefill_prefix: int,
    kv_dtype_name: str,
    chunk_counts: tuple[float, ...],
) -> list[OpTimes]:
    """The pipeline's cycle (every sequence advances once) with ``k`` prompt chunks for each ``k`` (>= 1) of
    ``chunk_counts``: ``micro`` micro-batches of ``seqs`` decodes (``moe_seqs``: all data-parallel ranks' decodes and
    other prompt tokens in the MoE layers), ``k`` of them loaded with a chunk of ``chunk`` tokens after
    ``prefill_prefix`` (see :func:`mixed_step_latency`). The cycle is ``max(trip of a loaded micro-batch, k x its
    busiest stage + (micro - k) x a plain one's)``; from ``k >= micro`` (``k > 1``) every micro-batch carries ``k /
    micro`` chunks, so the stages stay full and the cycle is ``micro`` x the busiest stage. Each distinct stage of
    each distinct micro-batch is priced once for every ``k``. (Positional arguments: a step's hot path.)"""
    passes: dict[tuple[int, float], tuple[OpTimes, float, float]] = {}  # (trip, its total, busiest stage)
    busiest_plain = None
    out = []
    for k in chunk_counts:
        even = k > 1 and k >= micro  # a chunk's worth or more in every micro-batch: all alike
        tokens, moe = (int(round(chunk * k / micro)), seqs) if even else (chunk, moe_seqs)
        hit = passes.get((tokens, moe))
        if hit is None:
            times, sends, busiest = _pass(c, stages, seqs, moe, decode_context, tokens, prefill_prefix, kv_dtype_name)
            trip = _pipeline(times, sends, 1, phase="decode", busiest=busiest)
            hit = passes[tokens, moe] = (trip, trip.total, busiest)
        trip, trip_s, busiest = hit
        if even:
            cycle = micro * busiest
        else:
            if busiest_plain is None:  # without a prompt chunk every micro-batch is alike
                busiest_plain = busiest
                if chunk:
                    busiest_plain = _pass(c, stages, seqs, seqs * c.dp, decode_context, 0, 0, kv_dtype_name)[2]
            share = min(k, micro)  # micro-batches carrying a chunk (1 unless the step carries more chunks)
            cycle = share * busiest + (micro - share) * busiest_plain
        # the time the shared experts' stream hides stays hidden in either cycle (the trip's total counts it)
        wait = max(0.0, cycle - trip_s)
        out.append(OpTimes(trip.gemm, trip.moe, trip.attention, trip.elementwise, trip.allreduce, trip.alltoall,
                           trip.pipeline + wait, trip.overlap))  # fmt: skip
    return out


def _pass(
    c: _Ctx,
    stages: list[_Stage],
    seqs: float,
    moe_seqs: float,
    decode_context: int,
    chunk: int,
    prefill_prefix: int,
    kv_dtype_name: str,
) -> tuple[list[OpTimes], list[float], float]:
    """One micro-batch through the pipeline (``seqs`` decodes and a chunk, :func:`_micro_step`): each stage's times
    (stages of one shape, :func:`_stage_kinds`, priced once), the send after each, and the busiest stage."""
    by_shape: dict[int, OpTimes] = {}
    times = []
    for st in stages:
        t = by_shape.get(st.shape)
        if t is None:
            t = by_shape[st.shape] = _micro_step(c, st, seqs, moe_seqs, decode_context, chunk, prefill_prefix,
                                                 kv_dtype_name)  # fmt: skip
        times.append(t)
    sends = _sends(c, stages, seqs + chunk)
    return times, sends, _busiest(times, sends)


def _splits_in_two(c: _Ctx, tokens: float, *, prefill: bool) -> bool:
    """Whether the engine runs this step as two micro-batches: two-batch overlap on, DP attention with EP, and more
    tokens on the rank than its threshold for the step's kind (vLLM: dbo_*_token_threshold, "greater than")."""
    if not (c.two_batch and c.ep and c.dp > 1):
        return False
    limit = c.rules.two_batch_prefill_tokens if prefill else c.rules.two_batch_decode_tokens
    return limit is not None and tokens > limit


def two_batch_s(
    c: _Ctx,
    decode_seqs: float,
    moe_decode_seqs: float,
    decode_context: int,
    chunk: int,
    prefill_prefix: int,
    kv_dtype_name: str,
) -> OpTimes:
    """A step run as two halves (two-micro-batch overlap): each half carries half the decodes and half the prompt
    chunk; one half's token exchange (dispatch + combine, ``X`` over both halves) runs beside the other's compute
    (``C``, everything else over both halves, each half paying its own kernels' fixed costs). The step takes
    ``max(C, X) + X / (2 L)``: the longer of the two streams, plus one half's exchange of one of the ``L`` MoE layers
    that nothing hides (the first dispatch, the last combine). The op classes carry both halves' full times;
    ``overlap`` holds what the interleaving hides (0 or negative)."""
    half = _micro_step(c, None, decode_seqs / 2, moe_decode_seqs / 2, decode_context, chunk // 2, prefill_prefix,
                       kv_dtype_name)  # fmt: skip
    return _two_halves(c, half)


def _two_halves(c: _Ctx, half: OpTimes) -> OpTimes:
    """Two micro-batches of ``half`` each: ``max(C, X) + X / (2 L)`` (see :func:`two_batch_s`)."""
    both = half + half
    exchange = both.alltoall
    compute = both.total - exchange
    step = max(compute, exchange) + exchange / (2 * max(1, len(c.spec.moe_layers)))
    return replace(both, overlap=both.overlap + step - both.total)


def _stage_kinds(spec: ModelSpec, stage: _Stage) -> tuple:
    """What a stage's step time depends on besides the batch: its layers' kinds in order, and whether it embeds and
    samples. Middle stages of a uniform model share it (llama-3.1-70b over 4 stages: 3 distinct)."""

    def make() -> tuple:
        names = spec.layer_kind_names
        return (tuple(names[i] for i in stage.layers), stage.first, stage.last)

    return _fact(spec, ("stage_kinds", stage.layers.start, stage.layers.stop, stage.first, stage.last), make)


def _micro_step(
    c: _Ctx,
    stage: _Stage | None,
    decode_seqs: float,
    moe_decode_seqs: float,
    decode_context: int,
    chunk: int,
    prefill_prefix: int,
    kv_dtype_name: str,
    pad_rows: float = 0.0,
    prompts: float = 1.0,
) -> OpTimes:
    """One stage (all layers when ``stage`` is None) of a step: ``decode_seqs`` decodes on the busiest rank plus a
    chunk; the MoE layers see ``moe_decode_seqs`` decodes (every DP rank's) plus the chunk. ``pad_rows``: CUDA-graph
    padding rows on the rank, in every linear layer but not in attention (``moe_decode_seqs`` counts them).
    ``prompts``: the whole prompts the chunk holds (:func:`_chunk_attention_s`)."""
    sampled = decode_seqs + pad_rows + (1 if chunk else 0)
    moe_tokens = moe_decode_seqs + chunk
    gemm, moe, elementwise, reduce, a2a, hidden = _linear_s(c, decode_seqs + pad_rows + chunk, sampled, stage=stage,
                                                            moe_tokens=moe_tokens)  # fmt: skip
    attention = 0.0
    if decode_seqs > 0:  # a mean below one sequence: the decode kernels run in that share of the steps
        batch = max(1.0, decode_seqs)
        same = None
        if stage is not None:  # stages alike share it
            alike = c.terms.get(kv_dtype_name)
            if alike is None:
                alike = c.terms[kv_dtype_name] = _decode_attention_stages(c, kv_dtype_name)
            same = alike[stage.index]
        key = (id(c), "decode", decode_context, batch, kv_dtype_name, same)  # kept
        hit = _PARTS.get(key)
        if hit is None or hit[0] is not c:
            hit = _keep(key, c, _attention_s(c, phase="decode", context=decode_context, batch=batch, attention_flops=0,
                                             kv_dtype=kv_dtype_name, stage=stage))  # fmt: skip
        attention += min(1.0, decode_seqs) * hit[1]
    if chunk:
        key = (id(c), "prefill", chunk, prefill_prefix, kv_dtype_name, stage.index if stage else None, prompts)  # kept
        hit = _PARTS.get(key)
        if hit is None or hit[0] is not c:
            hit = _keep(key, c, _chunk_attention_s(c, stage, chunk, prefill_prefix, kv_dtype_name, prompts))
        attention += hit[1]
    return OpTimes(gemm, moe, attention, elementwise, reduce, a2a, 0.0, hidden)  # positional: the hot path


def _decode_attention_stages(c: _Ctx, kv_dtype: str) -> list[int]:
    """For each stage, the first stage whose decode attention (:func:`_attention_s`) is the same: the same cache groups
    (count and layer cache per kind) and MLA layers, all that figure reads of a stage. A uniform model's stages hold
    the same layers (llama-3.1-70b over 4 stages: one figure instead of three), so a step prices it once."""
    plan, stages = _plan(c.spec, kv_dtype, c.tp, c.pp), _stages(c.spec, c.pp)
    reads = [(plan.stages[st.index].groups, _mla_layers(c.spec, st.layers)) for st in stages]
    return [reads.index(r) for r in reads]


def _chunk_attention_s(c: _Ctx, stage: _Stage | None, chunk: int, prefill_prefix: int, kv_dtype_name: str,
                       prompts: float = 1.0) -> float:  # fmt: skip
    """Attention of one stage (all layers when ``stage`` is None) for a prompt chunk after ``prefill_prefix``
    tokens of the same prompt; or, with ``prompts`` above one (no prefix), for that many whole prompts of
    ``chunk / prompts`` tokens each: each attends to its own tokens only (the context kernels take the step's prompts
    as variable-length sequences, each with its own causal mask), so their FLOPs are ``prompts`` times one prompt's,
    not one prompt of ``chunk`` tokens' (quadratic in the whole chunk), and the kernels launch once for all
    (``batch = prompts``, as a batch prefill, :func:`step_latency`)."""
    layers = stage.layers if stage is not None else range(c.spec.num_layers)
    if prompts > 1 and not prefill_prefix:
        each = max(1, round(chunk / prompts))
        flops = _stage_flops(c.spec, layers, context=each, prefix=0, prompts=prompts, tp=c.tp)
        attention = _attention_s(c, phase="prefill", context=each, batch=prompts, attention_flops=flops,
                                 kv_dtype=kv_dtype_name, stage=stage, prefix=0)  # fmt: skip
        return attention + indexer_prefill_s(c, layers, context=each, prefix=0, prompts=prompts)
    flops = _stage_flops(c.spec, layers, context=chunk, prefix=prefill_prefix, prompts=1, tp=c.tp)
    attention = _attention_s(c, phase="prefill", context=prefill_prefix + chunk, batch=1, attention_flops=flops,
                             kv_dtype=kv_dtype_name, stage=stage, prefix=prefill_prefix)  # fmt: skip
    return attention + indexer_prefill_s(c, layers, context=chunk, prefix=prefill_prefix, prompts=1)


def _layer_s(
    c: _Ctx, kind: LayerKind, tokens: float, *, dense: bool, width: int, moe_tokens: float
) -> tuple[float, float, float, _MoeParts | None]:
    """(GEMMs, grouped experts, element-wise, the MoE layer's two paths or None) of one layer."""
    spec = c.spec
    gemm = _attention_gemms_s(c, kind, tokens)
    gated = spec.params.mlp == "gated"
    if not kind.mlp:  # a mixer-only layer (Nemotron-H): no feed-forward GEMMs
        return gemm, 0.0, _elementwise_s(c, tokens, 0), None
    parts = None
    if dense:
        inter_rank = ceil_div(width, c.tp)  # width 0: no MLP (Nemotron-NAS no_op FFN)
        if inter_rank:
            gemm += _dense_mlp_s(c, tokens, inter_rank, gated=gated)
        moe = 0.0
    else:
        parts = _moe_s(c, tokens, moe_tokens)
        gemm += parts.router + parts.shared
        moe = parts.grouped
        inter_rank = ceil_div(spec.moe.experts_per_token * spec.moe.expert_intermediate_size, c.tp)
    return gemm, moe, _elementwise_s(c, tokens, inter_rank), parts


def _shared_overlap_s(c: _Ctx, parts: _MoeParts, tokens: float, exchange_s: float) -> float:
    """Seconds one MoE layer hides (0 or negative) where the engine runs its shared experts on a second stream
    beside the routed path (router, token exchange ``exchange_s``, grouped experts; :class:`Overlap`)."""
    rules = c.rules
    if not parts.shared or rules.shared_experts_tokens <= 0 or tokens > rules.shared_experts_tokens:
        return 0.0
    if rules.shared_experts_graph_only and not c.graph:
        return 0.0
    routed = parts.router + parts.grouped + exchange_s
    both = concurrent_s(routed, parts.shared, memory_a=parts.routed_mem, memory_b=parts.shared_mem)
    return both - routed - parts.shared

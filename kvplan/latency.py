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
  (``w`` the expert's intermediate width on this rank), plus ``moe_layer_s``;
* **attention**: prefill as FLOPs at ``attn_prefill_eff * L / (L + attn_prefill_half_len)`` of
  the 16-bit peak; decode as the held cache read at ``attn_decode_mem_eff`` of bandwidth (MLA's
  absorbed decode at ``mla_decode_mem_eff``, or its FLOPs at ``mla_decode_flops_eff`` of peak,
  whichever is slower), plus ``attn_layer_s`` per layer and ``attn_seq_s`` per sequence;
* **fp8 GEMMs** at the fp8 peak times ``fp8_eff_scale`` (per-tensor scales) or
  ``fp8_block_eff_scale`` (a checkpoint shipped with block scales, DeepSeek-V3's 128 x 128), and
  their weight streaming at ``fp8_mem_eff_scale`` of the 16-bit GEMMs' efficiency;
* **element-wise kernels** (two add+norms and the gated activation per layer): bytes at
  ``elementwise_mem_eff`` of bandwidth, plus ``kernel_s`` each;
* **all-reduce** after attention and after the MLP (and one after the embedding) at TP > 1:
  ``allreduce_base_s + allreduce_rank_s * (tp - 2) + 2 (tp - 1) / tp * bytes / (link * allreduce_bw_eff)``.

Prefill runs eagerly (``kernel_s`` = ``eager_kernel_s``); decode replays CUDA graphs
(``graph_kernel_s``), as vLLM and TensorRT-LLM both do by default for decode batches. The
constants are fitted by ``benchmarks/fit_latency.py`` to aiconfigurator 0.12.0's per-operation
latencies (kernel timings it collected on H100/H200/B200 SXM) on the grid of
``benchmarks/aiconfigurator_compare.py``; each field names what it stands for. Rerun the fit to
refresh them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from kvplan.errors import InvalidInput
from kvplan.hardware import GPU
from kvplan.memory import cache_plan
from kvplan.params import attention_parts
from kvplan.spec import LayerKind, ModelSpec, ceil_div
from kvplan.units import weight_dtype

# aiconfigurator's perf-database versions the constants were fitted to
# (aiconfigurator_core/systems/query_versions.yaml, "current" slots, aiconfigurator 0.12.0).
ENGINE_VERSIONS = {"vllm": "vLLM 0.24.0", "trtllm": "TensorRT-LLM 1.3.0rc20", "sglang": "SGLang 0.5.14"}


@dataclass(frozen=True)
class Calibration:
    """Kernel efficiencies and fixed costs of one engine (see the module docstring for each term)."""

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
    elementwise_mem_eff: float
    allreduce_base_s: float
    allreduce_rank_s: float
    allreduce_bw_eff: float


_FIT = "benchmarks/fit_latency.py on benchmarks/data/aiconfigurator_grid.json (aiconfigurator 0.12.0, SILICON)"

# Fitted constants (benchmarks/fit_latency.py prints this block).
CALIBRATIONS: dict[str, Calibration] = {
    "vllm": Calibration(
        engine="vllm",
        version=ENGINE_VERSIONS["vllm"],
        source=_FIT,
        gemm_peak_eff=0.7757,
        gemm_half_m=195.8,
        gemm_mem_eff=0.8393,
        eager_kernel_s=2.406e-06,
        graph_kernel_s=2.691e-06,
        moe_peak_eff=0.3135,
        moe_half_tokens=28.53,
        moe_half_width=17,
        moe_mem_eff=0.9679,
        moe_layer_s=3.54e-05,
        attn_prefill_eff=0.5383,
        attn_prefill_half_len=1086,
        attn_decode_mem_eff=0.8346,
        attn_layer_s=1.261e-05,
        attn_seq_s=2.982e-08,
        mla_decode_mem_eff=0.3046,
        mla_decode_flops_eff=0.08937,
        mla_prefill_eff=0.6044,
        mla_layer_s=0.0002163,
        fp8_eff_scale=0.759,
        fp8_block_eff_scale=0.363,
        fp8_mem_eff_scale=0.7679,
        elementwise_mem_eff=0.8031,
        allreduce_base_s=5.556e-06,
        allreduce_rank_s=2.755e-07,
        allreduce_bw_eff=0.3382,
    ),
    "trtllm": Calibration(
        engine="trtllm",
        version=ENGINE_VERSIONS["trtllm"],
        source=_FIT,
        gemm_peak_eff=0.7474,
        gemm_half_m=48.37,
        gemm_mem_eff=0.7431,
        eager_kernel_s=1.368e-05,
        graph_kernel_s=2.843e-06,
        moe_peak_eff=0.6349,
        moe_half_tokens=45.51,
        moe_half_width=394.5,
        moe_mem_eff=0.9513,
        moe_layer_s=2.555e-05,
        attn_prefill_eff=0.4748,
        attn_prefill_half_len=821,
        attn_decode_mem_eff=0.8753,
        attn_layer_s=1.242e-05,
        attn_seq_s=1.182e-07,
        mla_decode_mem_eff=0.4059,
        mla_decode_flops_eff=0.1424,
        mla_prefill_eff=0.1709,
        mla_layer_s=5.033e-05,
        fp8_eff_scale=0.8446,
        fp8_block_eff_scale=0.5258,
        fp8_mem_eff_scale=0.7223,
        elementwise_mem_eff=0.7352,
        allreduce_base_s=3.364e-06,
        allreduce_rank_s=8.584e-07,
        allreduce_bw_eff=0.3638,
    ),
}
DEFAULT_ENGINE = "vllm"


def calibration(engine: str | None) -> Calibration:
    """The fitted constants for ``engine``; engines without their own fit use vLLM's, and their label says so."""
    from kvplan.engines import get_engine

    name = get_engine(engine or DEFAULT_ENGINE).name  # InvalidInput for an unknown engine
    if name in CALIBRATIONS:
        return CALIBRATIONS[name]
    base = CALIBRATIONS[DEFAULT_ENGINE]
    return replace(base, engine=name, version=f"{base.version} (no {name} fit: vLLM's constants)")


@dataclass(frozen=True)
class OpTimes:
    """Seconds one step spends per operation class on one GPU."""

    gemm: float
    moe: float
    attention: float
    elementwise: float
    allreduce: float

    @property
    def total(self) -> float:
        return self.gemm + self.moe + self.attention + self.elementwise + self.allreduce

    def as_dict(self) -> dict[str, float]:
        return {
            "gemm_s": self.gemm,
            "moe_s": self.moe,
            "attention_s": self.attention,
            "elementwise_s": self.elementwise,
            "allreduce_s": self.allreduce,
        }


@dataclass(frozen=True)
class _Ctx:
    spec: ModelSpec
    gpu: GPU
    cal: Calibration
    tp: int
    w_bytes: float  # bytes per quantizable weight
    act_bytes: float  # bytes per activation element (16-bit)
    peak: float  # FLOP/s of the GEMMs (fp8 peak x fp8_[block_]eff_scale for fp8 weights where the GPU has it)
    peak16: float  # FLOP/s at 16 bit (attention)
    bw: float  # bytes/s
    kernel_s: float  # fixed cost per kernel in this phase
    ep: bool = False  # experts split whole across the TP group (expert parallel) instead of sliced
    mem_scale: float = 1.0  # fp8 weights: share of the 16-bit streaming efficiency the GEMMs reach


def _gemm_s(c: _Ctx, m: int, params: int, n_plus_k: int) -> float:
    """One GEMM of ``params`` weights (K x N) over ``m`` rows."""
    if params <= 0 or m <= 0:
        return 0.0
    eff = c.cal.gemm_peak_eff * m / (m + c.cal.gemm_half_m)
    compute = 2 * m * params / (c.peak * eff)
    moved = params * c.w_bytes + m * n_plus_k * c.act_bytes
    return max(compute, moved / (c.bw * c.cal.gemm_mem_eff * c.mem_scale)) + c.kernel_s


def _attention_gemms_s(c: _Ctx, kind: LayerKind, m: int) -> float:
    """Projections of one token-mixer layer: fused QKV + O (MLA: each of its projections)."""
    h = c.spec.hidden_size
    parts = [p.params for p in attention_parts(c.spec, kind, c.tp) if p.quantizable]
    if kind.type in ("full", "sliding", "chunked") and len(parts) >= 3:
        qkv = parts[0] + parts[1]
        rest = parts[2:]
        return _gemm_s(c, m, qkv, h + qkv // h) + sum(_gemm_s(c, m, p, h + p // h) for p in rest)
    return sum(_gemm_s(c, m, p, h + max(1, p // h)) for p in parts)


def _dense_mlp_s(c: _Ctx, m: int, inter_rank: int, *, gated: bool) -> float:
    h = c.spec.hidden_size
    up = (2 if gated else 1) * h * inter_rank
    return _gemm_s(c, m, up, h + up // h) + _gemm_s(c, m, h * inter_rank, h + inter_rank)


def _moe_s(c: _Ctx, tokens: int) -> tuple[float, float]:
    """(grouped expert GEMMs, router + shared-expert GEMMs) of one MoE layer."""
    moe, h = c.spec.moe, c.spec.hidden_size
    gated = c.spec.params.mlp == "gated"
    # TP slices every expert's intermediate dimension; EP (vLLM --enable-expert-parallel with TP attention)
    # gives each rank E/tp whole experts and the tokens routed to them; the output is all-reduced either way.
    parts = 1 if c.ep else c.tp
    inter_rank = ceil_div(moe.expert_intermediate_size, parts)
    per_expert = (3 if gated else 2) * h * inter_rank
    local = moe.num_experts / (c.tp if c.ep else 1)
    touched = local * (1 - (1 - moe.experts_per_token / moe.num_experts) ** tokens)
    routed = tokens * moe.experts_per_token / (c.tp if c.ep else 1)
    per_touched = routed / touched
    eff = c.cal.moe_peak_eff * per_touched / (per_touched + c.cal.moe_half_tokens)
    eff *= inter_rank / (inter_rank + c.cal.moe_half_width)  # thin expert slices (high TP) run below peak
    compute = 2 * routed * per_expert / (c.peak * eff)
    moved = touched * per_expert * c.w_bytes + routed * (2 * h + 3 * inter_rank) * c.act_bytes
    grouped = max(compute, moved / (c.bw * c.cal.moe_mem_eff * c.mem_scale)) + c.cal.moe_layer_s
    dense = _gemm_s(c, tokens, h * moe.num_experts, h + moe.num_experts)  # router (16-bit; small)
    if moe.shared_size:
        dense += _dense_mlp_s(c, tokens, ceil_div(moe.shared_size, c.tp), gated=gated)
    return grouped, dense


def _elementwise_s(c: _Ctx, tokens: int, inter_rank: int) -> float:
    """Two residual add + norm kernels and the gated activation of one layer."""
    h = c.spec.hidden_size
    norm_bytes = 2 * tokens * 3 * h * c.act_bytes  # read x and residual, write x (twice per layer)
    act_bytes = tokens * 3 * inter_rank * c.act_bytes  # read gate and up, write the product
    return (norm_bytes + act_bytes) / (c.bw * c.cal.elementwise_mem_eff) + 3 * c.kernel_s


def allreduce_s(c: _Ctx, tokens: int) -> float:
    """One ring all-reduce of ``tokens x hidden`` 16-bit values across the TP group."""
    if c.tp == 1:
        return 0.0
    if c.gpu.interconnect_gbps is None:
        raise InvalidInput(f"GPU {c.gpu.name!r} has no interconnect_gbps in the catalog; TP > 1 needs it")
    payload = tokens * c.spec.hidden_size * c.act_bytes
    wire = 2 * (c.tp - 1) / c.tp * payload / (c.gpu.interconnect_gbps * 1e9 * c.cal.allreduce_bw_eff)
    return c.cal.allreduce_base_s + c.cal.allreduce_rank_s * (c.tp - 2) + wire


_PLANS: dict[tuple[int, str, int], tuple[ModelSpec, object]] = {}


def _plan(spec: ModelSpec, kv_dtype: str, tp: int):  # noqa: ANN202
    """The cache plan, kept per spec object (serving evaluates thousands of steps of one setup)."""
    key = (id(spec), kv_dtype, tp)
    hit = _PLANS.get(key)
    if hit is None or hit[0] is not spec:
        if len(_PLANS) > 256:
            _PLANS.clear()
        hit = _PLANS[key] = (spec, cache_plan(spec, kv_dtype, tp=tp, mla="latent"))
    return hit[1]


def _attention_s(c: _Ctx, *, phase: str, context: int, batch: int, attention_flops: int, kv_dtype: str) -> float:
    """Attention kernels of the whole step (all layers with attention or recurrent state)."""
    spec = c.spec
    mixers = spec.num_layers
    mla = sum(n for name, n in spec.kind_counts.items() if spec.kind(name).type == "mla")
    if phase == "prefill":
        scale = context / (context + c.cal.attn_prefill_half_len)
        eff = (c.cal.mla_prefill_eff if mla else c.cal.attn_prefill_eff) * scale
        fixed = mixers * (c.cal.attn_layer_s + c.kernel_s) + mla * c.cal.mla_layer_s
        return attention_flops / (c.peak16 * eff) + fixed
    plan = _plan(spec, kv_dtype, c.tp)
    total = 0.0
    for count, layer in plan.stages[0].groups:  # pp = 1: one stage, (layers, cache) per kind
        kind = spec.kind(layer.kind)
        held = batch * layer.bytes_at(context)
        if kind.type == "mla":
            heads = ceil_div(spec.num_attention_heads, c.tp)
            flops = 2 * batch * heads * (2 * kind.kv_lora_rank + kind.qk_rope_head_dim) * context
            t = max(held / (c.bw * c.cal.mla_decode_mem_eff), flops / (c.peak16 * c.cal.mla_decode_flops_eff))
        else:
            t = held / (c.bw * c.cal.attn_decode_mem_eff)
        total += count * (t + c.cal.attn_layer_s + batch * c.cal.attn_seq_s)
    return total + mla * c.cal.mla_layer_s


def _fp8_scale(spec: ModelSpec, cal: Calibration) -> float:
    """Block-scaled fp8 checkpoints (DeepSeek-V3's 128 x 128 scales) run slower GEMMs than per-tensor fp8."""
    block = spec.weights is not None and spec.weights.dtype == "fp8" and spec.weights.block is not None
    return cal.fp8_block_eff_scale if block else cal.fp8_eff_scale


def _make_ctx(
    spec: ModelSpec, gpu: GPU, *, tp: int, weights_dtype: str, cal: Calibration, eager: bool, ep: bool = False
) -> _Ctx:
    w = weight_dtype(weights_dtype)
    fp8 = gpu.fp8_dense_tflops is not None and weights_dtype.startswith("fp8")
    peak16 = gpu.bf16_dense_tflops * 1e12
    return _Ctx(
        spec=spec,
        gpu=gpu,
        cal=cal,
        tp=tp,
        w_bytes=float(w.nbytes(1000)) / 1000,
        act_bytes=2.0,
        peak=gpu.fp8_dense_tflops * 1e12 * _fp8_scale(spec, cal) if fp8 else peak16,
        peak16=peak16,
        bw=gpu.bandwidth_gbps * 1e9,
        kernel_s=cal.eager_kernel_s if eager else cal.graph_kernel_s,
        ep=ep and tp > 1 and spec.moe is not None,
        mem_scale=cal.fp8_mem_eff_scale if fp8 else 1.0,
    )


def _linear_s(c: _Ctx, tokens: float, lm_rows: float) -> tuple[float, float, float, float]:
    """(GEMM, grouped experts, element-wise, all-reduce) seconds of every layer for ``tokens`` tokens."""
    spec = c.spec
    gemm = moe = elementwise = 0.0
    if tokens <= 0:
        return 0.0, 0.0, 0.0, 0.0
    memo: dict[tuple[str, bool], tuple[float, float, float]] = {}
    for i, name in enumerate(spec.layer_kind_names):
        dense = spec.moe is None or i in spec.dense_mlp_layers
        key = (name, dense)
        if key not in memo:
            memo[key] = _layer_s(c, spec.kind(name), tokens, dense=dense)
        g, m, e = memo[key]
        gemm, moe, elementwise = gemm + g, moe + m, elementwise + e
    if lm_rows > 0:
        gemm += _gemm_s(c, lm_rows, spec.hidden_size * ceil_div(spec.vocab_size, c.tp), spec.hidden_size)
    reduce = (2 * spec.num_layers + 1) * allreduce_s(c, tokens)
    return gemm, moe, elementwise, reduce


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
) -> OpTimes:
    """Seconds of one prefill (``batch`` prompts of ``context``) or decode step, by operation class.

    ``constants`` replaces the engine's fitted ones (the fit script's hook).
    """
    cal = constants or calibration(engine)
    c = _make_ctx(spec, gpu, tp=tp, weights_dtype=weights_dtype, cal=cal, eager=phase == "prefill", ep=expert_parallel)
    tokens = batch * (context if phase == "prefill" else 1)
    gemm, moe, elementwise, reduce = _linear_s(c, tokens, batch)
    attention = _attention_s(
        c, phase=phase, context=context, batch=batch, attention_flops=attention_flops, kv_dtype=kv_dtype_name
    )
    return OpTimes(gemm=gemm, moe=moe, attention=attention, elementwise=elementwise, allreduce=reduce)


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
) -> OpTimes:
    """One in-flight-batching step: ``decode_seqs`` decodes at ``decode_context`` plus a prefill chunk of
    ``prefill_tokens`` tokens after ``prefill_prefix`` already-prefilled tokens of the same prompt.

    Projections, experts, norms and all-reduces run once over all the step's tokens; attention is the
    decode part plus the chunk's. With no decodes and no prefix it equals :func:`step_latency` for a
    one-prompt prefill; with no prefill, a decode step. Steps with prefill tokens run eagerly.
    """
    from kvplan.attention import attention_flops, prefill_pairs

    cal = calibration(engine)
    chunk = int(round(prefill_tokens))
    c = _make_ctx(spec, gpu, tp=tp, weights_dtype=weights_dtype, cal=cal, eager=chunk > 0, ep=expert_parallel)
    sampled = decode_seqs + (1 if chunk else 0)
    gemm, moe, elementwise, reduce = _linear_s(c, decode_seqs + chunk, sampled)
    attention = 0.0
    if decode_seqs > 0:  # a mean below one sequence: the decode kernels run in that share of the steps
        attention += min(1.0, decode_seqs) * _attention_s(
            c, phase="decode", context=decode_context, batch=max(1.0, decode_seqs), attention_flops=0,
            kv_dtype=kv_dtype_name,
        )  # fmt: skip
    if chunk:
        flops = 0
        for name, count in spec.kind_counts.items():
            kind = spec.kind(name)
            span = kind.window or kind.chunk or prefill_prefix
            pairs = prefill_pairs(kind, chunk) + chunk * min(prefill_prefix, span)
            s, v = attention_flops(spec, kind, pairs, phase="prefill", tp=tp)
            flops += count * (s + v)
        attention += _attention_s(
            c, phase="prefill", context=prefill_prefix + chunk, batch=1, attention_flops=flops, kv_dtype=kv_dtype_name
        )
    return OpTimes(gemm=gemm, moe=moe, attention=attention, elementwise=elementwise, allreduce=reduce)


def _layer_s(c: _Ctx, kind: LayerKind, tokens: int, *, dense: bool) -> tuple[float, float, float]:
    spec = c.spec
    gemm = _attention_gemms_s(c, kind, tokens)
    gated = spec.params.mlp == "gated"
    if not kind.mlp:  # a mixer-only layer (Nemotron-H): no feed-forward GEMMs
        return gemm, 0.0, _elementwise_s(c, tokens, 0)
    if dense:
        inter_rank = ceil_div(spec.intermediate_size, c.tp)
        gemm += _dense_mlp_s(c, tokens, inter_rank, gated=gated)
        moe = 0.0
    else:
        grouped, shared = _moe_s(c, tokens)
        gemm += shared
        moe = grouped
        inter_rank = ceil_div(spec.moe.experts_per_token * spec.moe.expert_intermediate_size, c.tp)
    return gemm, moe, _elementwise_s(c, tokens, inter_rank)

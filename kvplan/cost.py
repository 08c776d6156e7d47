"""Attention and model cost: FLOPs, bytes moved, arithmetic intensity and roofline time.

One *step* is either the prefill of ``batch`` prompts of ``context`` tokens or one decode step
(one new token for each of ``batch`` sequences whose cache holds ``context`` tokens). Everything
is per GPU under tensor parallelism (``tp`` ranks share each layer) and summed over layers.

FLOPs (a multiply-add is 2 FLOPs):

* projections and MLP / active experts: ``2 x tokens x parameters`` of the matrices one rank
  holds (parameter counts from :mod:`kvplan.params`; norms and biases ride along, < 0.01 %);
* attention scores ``QK^T``: ``2 x heads x d_qk x pairs`` and weighted sum ``AV``:
  ``2 x heads x d_v x pairs``, where ``pairs`` counts (query, key) pairs: causal prefill of L
  tokens has ``L (L + 1) / 2`` pairs, a sliding window W caps each query at W keys, a chunk C
  restarts the causal triangle every C tokens; a decode step has ``min(L, cap)`` pairs;
* MLA as engines run it (vLLM ``vllm/v1/attention/backends/mla/common.py`` module docstring @ 37fa5c09:
  the "compute friendly" form for prefill, the "data-movement friendly" one for decode): prefill
  expanded to per-head K/V (``d_qk = nope + rope``, ``d_v = v_head_dim``), decode absorbed into the latent
  (``d_qk = kv_lora_rank + rope``, ``d_v = kv_lora_rank``); the up-projections cost the same
  ``2 x params`` per token either way;
* recurrent layers (Mamba, Gated DeltaNet): linear in L, ``2 x conv + 6 x state`` elements per
  token (a stated approximation: decay, input and read-out are one multiply-add each);
* LM head: ``2 x hidden x vocab`` for one token per sequence (vLLM ``vllm/v1/worker/
  gpu_model_runner.py`` computes logits only at ``logits_indices``, the positions it samples).

Bytes (per GPU): weights read once per step (MoE: only experts some token is routed to, with
uniform routing), KV cache written for each new token and read once (decode: the whole held
cache; prefill: a lower bound, FlashAttention tiles re-read K/V from cache memory), recurrent
state read and written, and activations (each layer's two blocks read and write the hidden state;
the MLP intermediate is written and read once).

Time: ``max(flops / (peak x compute_eff), bytes / (bandwidth x memory_eff))`` plus, at TP > 1,
two ring all-reduces per layer (after attention, after the MLP) of the step's hidden states:
``2 (tp - 1) / tp x bytes / (interconnect x interconnect_eff)``, not overlapped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

# The attention arithmetic lives in kvplan.attention (shared with kvplan.latency without a cycle).
from kvplan.attention import (  # noqa: F401 - re-exported: kvplan.cost names them
    attention_dims,
    attention_flops,
    causal_pairs,
    chunked_pairs,
    decode_span,
    prefill_pairs,
)
from kvplan.errors import InvalidInput
from kvplan.hardware import GPU
from kvplan.memory import (
    LayerCache,
    attended_token_bytes,
    cache_plan,
    check_parallel,
    indexer_token_bytes,
    recurrent_state_elements,
)
from kvplan.params import attention_parts, count_params, mlp_parts, parts_bytes, tp_allreduces, weight_bytes_per_gpu
from kvplan.quant import default_dtype, shipped_dtype
from kvplan.spec import LayerKind, ModelSpec, ceil_div, kept_for_spec
from kvplan.units import FP4_KV_DTYPES, kv_dtype, weight_dtype

if TYPE_CHECKING:
    from kvplan.checkpoint import CheckpointWeights

Phase = Literal["prefill", "decode"]
LatencyModel = Literal["calibrated", "roofline"]
AttentionMode = Literal["full", "s2"]

# Default efficiencies: FasterTransformer profiling of a 13B model on A100 reported ~0.7 of peak
# FLOPs and ~0.9 of peak HBM bandwidth (kipp.ly "Transformer Inference Arithmetic", reproduced in
# cli99/llm-analysis examples/FasterTransformer/README.md). No measured default was found for
# all-reduce efficiency; 1.0 is the ideal ring bandwidth.
COMPUTE_EFFICIENCY = 0.7
MEMORY_EFFICIENCY = 0.9
INTERCONNECT_EFFICIENCY = 1.0
# Recurrent state update per element and token: decay, input write, read-out = 3 multiply-adds.
RECURRENT_FLOPS_PER_STATE = 6
# LongLoRA S2-Attn: group = 1/4 of the sequence (dvlab-research/LongLoRA llama_attn_replace.py
# group_size_ratio = 1/4; models.md 4.3). Half the heads are shifted by half a group, which moves
# the group boundaries but not their size, so the FLOPs are those of plain groups.
S2_GROUP_RATIO = 0.25
# A training step = forward + backward, the backward costing 2x the forward (Kaplan et al. 2020,
# arXiv 2001.08361 section 2.1: C ~ 6N per token = 2N forward + 4N backward).
TRAINING_STEP_MULTIPLIER = 3
# Activation memory per layer, 16-bit, no recomputation, no parallelism (Korthikanti et al. 2022,
# "Reducing Activation Recomputation in Large Transformer Models", arXiv 2205.05198, eq. 1):
# s*b*h*34 bytes for the linear parts + 5*a*s^2*b for the attention matrices (per a*s^2*b element:
# softmax output 2 bytes, dropout mask 1, dropout output 2).
ACT_LINEAR_BYTES = 34
ACT_ATTENTION_BYTES = 5


class Efficiency(BaseModel):
    """Fractions of the GPU's peak that kernels reach; stated defaults, override per run."""

    model_config = ConfigDict(frozen=True)

    compute: float = Field(COMPUTE_EFFICIENCY, gt=0, le=1)
    memory: float = Field(MEMORY_EFFICIENCY, gt=0, le=1)
    interconnect: float = Field(INTERCONNECT_EFFICIENCY, gt=0, le=1)


class Flops(BaseModel):
    """FLOPs of one step on one GPU, by part."""

    model_config = ConfigDict(frozen=True)

    projections: int  # QKV + O (MLA: down/up projections; recurrent: in/out projections)
    attention_scores: int  # QK^T
    attention_values: int  # softmax(QK^T) V
    recurrent: int  # state updates of recurrent layers
    mlp: int  # dense MLP or routed + shared experts (+ router)
    lm_head: int

    @property
    def attention(self) -> int:
        """The part quadratic in the context (scores + weighted sum)."""
        return self.attention_scores + self.attention_values

    @property
    def linear(self) -> int:
        """Everything that grows linearly with the tokens processed."""
        return self.projections + self.recurrent + self.mlp + self.lm_head

    @property
    def total(self) -> int:
        return self.attention + self.linear


class Bytes(BaseModel):
    """Bytes one GPU moves to and from its memory in one step."""

    model_config = ConfigDict(frozen=True)

    weights: int
    kv_read: int
    kv_write: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_read + self.kv_write + self.activations


class PhaseCost(BaseModel):
    """One prefill or decode step at one context length: work, traffic and roofline time."""

    model_config = ConfigDict(frozen=True)

    phase: Phase
    context: int
    batch: int
    tokens: int  # tokens processed in this step, all sequences
    tp: int
    flops: Flops  # per GPU
    bytes: Bytes  # per GPU
    comm_bytes: int  # all-reduce payload per GPU (ring), 0 at tp = 1
    arithmetic_intensity: float  # FLOPs per byte moved
    compute_s: float
    memory_s: float
    comm_s: float
    roofline_s: float  # max(compute_s, memory_s) + comm_s: the whole-step roofline
    time_s: float  # the step's latency: calibrated per-operation sum (kvplan.latency), or roofline_s
    bound: Literal["compute", "memory"]
    model: LatencyModel = "calibrated"
    engine: str = ""  # engine and version the calibrated efficiencies describe
    ops_s: dict[str, float] = Field(default_factory=dict)  # calibrated seconds per operation class
    pp: int = 1  # pipeline stages (calibrated time only: FLOPs and bytes stay those of all layers on one TP rank)
    dp: int = 1  # data-parallel attention ranks (calibrated time only; ``batch`` spread over them)

    def summary(self) -> dict[str, object]:
        """A flat dict for tables and JSON: per-part FLOPs and bytes as plain fields."""
        flat = self.model_dump(exclude={"flops", "bytes", "ops_s"})
        flat.update(self.ops_s)
        flat.update({f"flops_{k}": v for k, v in self.flops.model_dump().items()})
        flat.update(
            flops_attention=self.flops.attention,
            flops_linear=self.flops.linear,
            flops_total=self.flops.total,
            attention_share=self.flops.attention / self.flops.total if self.flops.total else 0.0,
        )
        flat.update({f"bytes_{k}": v for k, v in self.bytes.model_dump().items()})
        flat["bytes_total"] = self.bytes.total
        return flat


class CostRow(BaseModel):
    """Prefill and decode at one context: TTFT, TPOT, tokens per second."""

    model_config = ConfigDict(frozen=True)

    model: str
    gpu: str
    context: int
    batch: int
    tp: int
    prefill: PhaseCost
    decode: PhaseCost
    weights_source: str = "architecture"  # or the checkpoint whose headers gave the weights read per step

    @property
    def ttft_s(self) -> float:
        """Time to first token: the prefill of the whole batch (queueing ignored)."""
        return self.prefill.time_s

    @property
    def tpot_s(self) -> float:
        return self.decode.time_s

    @property
    def decode_tokens_per_s(self) -> float:
        """Output tokens per second over the batch at this context."""
        return self.batch / self.decode.time_s


def recurrent_flops_per_token(kind: LayerKind, tp: int = 1) -> int:
    if kind.parallel is not None:  # Falcon-H1: the Mamba2 mixer beside the attention
        return recurrent_flops_per_token(kind.parallel, tp)
    if kind.type != "recurrent":
        return 0
    conv, state = recurrent_state_elements(kind)
    return ceil_div(2 * conv + RECURRENT_FLOPS_PER_STATE * state, tp)


# ---- one step ----------------------------------------------------------------------------------


def _sum(parts: list) -> int:
    return sum(p.params for p in parts)


def step_flops(spec: ModelSpec, context: int, *, phase: Phase, batch: int = 1, tp: int = 1) -> Flops:
    """FLOPs of one prefill (``context`` new tokens per sequence) or decode step, per GPU."""
    tokens = batch * (context if phase == "prefill" else 1)
    proj = scores = values = recurrent = mlp = 0
    by_kind: dict[str, tuple[int, int, int, int]] = {}
    for name in spec.kind_counts:
        kind = spec.kind(name)
        pairs = prefill_pairs(kind, context) if phase == "prefill" else decode_span(kind, context)
        s, v = attention_flops(spec, kind, pairs, phase=phase, tp=tp)
        p = 2 * tokens * _sum(attention_parts(spec, kind, tp))
        by_kind[name] = (p, batch * s, batch * v, tokens * recurrent_flops_per_token(kind, tp))
    for i, name in enumerate(spec.layer_kind_names):
        p, s, v, r = by_kind[name]
        proj, scores, values, recurrent = proj + p, scores + s, values + v, recurrent + r
        mlp += 2 * tokens * _sum(mlp_parts(spec, i, tp, active_only=True))
    head = 2 * batch * spec.hidden_size * ceil_div(spec.vocab_size, tp)
    return Flops(
        projections=proj,
        attention_scores=scores,
        attention_values=values,
        recurrent=recurrent,
        mlp=mlp,
        lm_head=head,
    )


def expert_fraction_touched(spec: ModelSpec, tokens: int) -> float:
    """Expected share of a MoE layer's experts that at least one of ``tokens`` is routed to (uniform)."""
    if spec.moe is None:
        return 1.0
    miss = (1 - spec.moe.experts_per_token / spec.moe.num_experts) ** tokens
    return 1.0 - miss


# Figures of one spec that every length and phase of a cost() call repeats (the weights a GPU holds, each MoE
# layer's bytes per idle expert), kept per spec object and arguments and checked by identity, like
# kvplan.latency._fact; kvplan.serving.forget_memos empties it.
_KEPT: dict[tuple, tuple[ModelSpec, object]] = {}


def _kept(spec: ModelSpec, key: tuple, make):  # noqa: ANN001, ANN202
    return kept_for_spec(_KEPT, spec, key, make)


def untouched_expert_bytes(spec: ModelSpec, tokens: int, *, weights_dtype: str, tp: int = 1) -> int:
    """Bytes of resident experts that no token of the step is routed to, per GPU."""
    moe = spec.moe
    if moe is None or moe.num_experts == moe.experts_per_token:
        return 0
    idle = 1.0 - expert_fraction_touched(spec, tokens)
    total = 0.0
    per_layer = _kept(spec, ("per expert", weights_dtype, tp), lambda: _bytes_per_expert(spec, weights_dtype, tp))
    for per_expert in per_layer:
        total += per_expert * moe.num_experts * idle
    return int(round(total))


def _bytes_per_expert(spec: ModelSpec, weights_dtype: str, tp: int) -> list[float]:
    """Each MoE layer's bytes of one routed expert on a GPU, in layer order."""
    moe = spec.moe
    out = []
    for i in sorted(spec.moe_layers):
        every = parts_bytes(mlp_parts(spec, i, tp), weights_dtype, spec.dtype)
        active = parts_bytes(mlp_parts(spec, i, tp, active_only=True), weights_dtype, spec.dtype)
        out.append((every - active) / (moe.num_experts - moe.experts_per_token))
    return out


def activation_elements_per_token(spec: ModelSpec, layer: int, tp: int = 1) -> int:
    """Hidden-state reads and writes of one layer for one token on one rank (see module docstring)."""
    hidden_io = 4 * spec.hidden_size  # attention block in + out, MLP block in + out
    if layer not in spec.mlp_layers:
        return hidden_io  # a mixer-only layer (kind with mlp: false)
    if layer in spec.dense_mlp_layers:
        inter = ceil_div(spec.mlp_width(layer), tp)  # per layer for Nemotron-NAS block_configs
    else:
        moe = spec.moe
        inter = ceil_div(moe.experts_per_token * moe.expert_intermediate_size + moe.shared_size, tp)
    return hidden_io + 2 * inter


def step_bytes(
    spec: ModelSpec,
    context: int,
    *,
    phase: Phase,
    batch: int = 1,
    tp: int = 1,
    kv_dtype_name: str | None = None,
    weights_dtype: str | None = None,
    checkpoint: CheckpointWeights | None = None,
) -> Bytes:
    """Bytes one GPU reads and writes in one prefill or decode step. ``checkpoint``: the weights held
    are its header bytes (the experts a step leaves untouched still come from the architecture count)."""
    w_name = weight_dtype(weights_dtype or shipped_dtype(spec)).name
    plan = cache_plan(spec, kv_dtype_name, tp=tp, mla="latent")
    tokens = batch * (context if phase == "prefill" else 1)
    if checkpoint is None:
        held = _kept(spec, ("held", w_name, tp), lambda: weight_bytes_per_gpu(spec, w_name, tp=tp))
    else:
        held = weight_bytes_per_gpu(spec, checkpoint, tp=tp)
    weights = max(0, held - untouched_expert_bytes(spec, tokens, weights_dtype=w_name, tp=tp))
    # one sequence, this rank, incl. state; a decode step reads only the current chunk of a chunked layer, and a
    # KV-sharing layer (Gemma 3n) the earlier layer's K/V over its own span
    held = sum(_decode_read(spec, c, context, plan.kv_dtype) if phase == "decode" else c.bytes_at(context)
               for c in plan.layers)  # fmt: skip
    if phase == "decode":
        held += _shared_reads(spec, plan.kv_dtype, context, tp=tp)
    states = sum(c.state_bytes for c in plan.layers)
    per_token = sum(c.bytes_per_token for c in plan.layers)
    new_tokens = context if phase == "prefill" else 1
    act_dtype = weight_dtype(spec.dtype)  # activations stay in the model's 16-bit dtype
    act = sum(activation_elements_per_token(spec, i, tp) for i in range(spec.num_layers))
    return Bytes(
        weights=weights,
        kv_read=batch * held,
        kv_write=batch * (per_token * new_tokens + states),
        activations=act_dtype.nbytes(tokens * act),
    )


def _decode_read(spec: ModelSpec, c: LayerCache, context: int, kv_dtype_name: str) -> int:
    """Bytes one sequence's decode step reads from one layer's cache: :meth:`LayerCache.read_at`, except that a
    DeepSeek Sparse Attention layer (``index_topk``) reads every cached indexer key but only the latent rows of the
    ``min(context, index_topk)`` keys its indexer selects (kvplan.latency._dsa_decode_s)."""
    kind = spec.kind(c.kind)
    if not kind.index_topk:
        return c.read_at(context)
    index = indexer_token_bytes(kind, kv_dtype(kv_dtype_name))
    return (c.bytes_per_token - index) * decode_span(kind, context) + index * context + c.state_bytes


def _shared_reads(spec: ModelSpec, kv_dtype_name: str, context: int, *, tp: int) -> int:
    """K/V bytes the KV-sharing layers of one sequence read at a decode step (they cache none of their own)."""
    shared = [(name, n) for name, n in spec.kind_counts.items() if spec.kind(name).kv_shared]
    if not shared:
        return 0
    dtype = kv_dtype(kv_dtype_name)
    return sum(n * attended_token_bytes(spec, name, dtype, tp=tp) * decode_span(spec.kind(name), context)
               for name, n in shared)  # fmt: skip


def allreduce_bytes(spec: ModelSpec, tokens: int, *, tp: int) -> int:
    """Ring all-reduce traffic per GPU for one step: the layers' all-reduces (:func:`kvplan.params.tp_allreduces`:
    two a standard layer, one a Nemotron-H block) of ``tokens x hidden`` 16-bit values."""
    if tp == 1:
        return 0
    payload = weight_dtype(spec.dtype).nbytes(tokens * spec.hidden_size)
    per_allreduce = 2 * (tp - 1) * payload // tp  # ring: reduce-scatter + all-gather
    return tp_allreduces(spec) * per_allreduce


def peak_flops(gpu: GPU, compute_dtype: str) -> float:
    """Dense peak FLOP/s for ``compute_dtype`` (bf16, fp8 or fp4) from the GPU catalog."""
    if compute_dtype in ("bf16", "fp16"):
        return gpu.bf16_dense_tflops * 1e12
    if compute_dtype == "fp8":
        if gpu.fp8_dense_tflops is None:
            raise InvalidInput(f"GPU {gpu.name!r} has no FP8 tensor cores in the catalog; use --compute bf16")
        return gpu.fp8_dense_tflops * 1e12
    if compute_dtype == "fp4":
        if gpu.fp4_dense_tflops is None:
            raise InvalidInput(f"GPU {gpu.name!r} has no FP4 tensor cores in the catalog; use --compute fp8 or bf16")
        return gpu.fp4_dense_tflops * 1e12
    raise InvalidInput(f"unknown compute dtype {compute_dtype!r}; expected bf16, fp16, fp8 or fp4")


def phase_cost(
    spec: ModelSpec,
    gpu: GPU,
    context: int,
    *,
    phase: Phase,
    batch: int = 1,
    tp: int = 1,
    kv_dtype_name: str | None = None,
    weights_dtype: str | None = None,
    compute_dtype: str = "bf16",
    efficiency: Efficiency | None = None,
    engine: str | None = None,
    model: LatencyModel = "calibrated",
    expert_parallel: bool = False,
    pp: int = 1,
    dp: int = 1,
    gpus_per_node: int | None = None,
    checkpoint: CheckpointWeights | None = None,
    deepep: bool = False,
    two_batch: bool = False,
    swa_full: bool = False,
    mamba_ssm_cache_dtype: str | None = None,
    mamba_cache_dtype: str | None = None,
    indexer_k_dtype: str | None = None,
    max_seq_len: int | None = None,
) -> PhaseCost:
    """FLOPs, bytes, roofline and calibrated time of one step on one GPU of a TP group.

    ``model="calibrated"`` (default) makes ``time_s`` the per-operation sum of :mod:`kvplan.latency`
    with ``engine``'s fitted constants; ``"roofline"`` makes it the whole-step roofline with ``efficiency``.
    ``expert_parallel`` (calibrated only): MoE experts split whole across the tp x dp ranks instead of sliced.
    ``pp`` pipeline stages and ``dp`` data-parallel attention ranks (calibrated only) shape ``time_s`` as
    :func:`kvplan.latency.step_latency` says (micro-batches, the bubble, all-to-alls); the FLOPs, bytes and
    roofline stay those of one TP rank running every layer for the whole batch. ``deepep`` and ``two_batch``
    (calibrated only): DeepEP's all-to-all and the engine's two-micro-batch overlap
    (:func:`kvplan.latency.step_latency`). ``swa_full`` (calibrated only; llama.cpp ``--swa-full``, SGLang
    ``--disable-hybrid-swa-memory``): the engine's flag, where it changes what its attention kernels read
    (:meth:`kvplan.engines.base.Engine.attention_spans`). ``mamba_ssm_cache_dtype`` / ``mamba_cache_dtype`` (vLLM
    ``--mamba-ssm-cache-dtype`` / ``--mamba-cache-dtype``, "auto", "float32" or "float16"): the recurrent states'
    dtypes, which the step's bytes and the calibrated recurrent kernels read (:meth:`Engine.model_as_run`, as
    ``kvplan capacity`` sizes them); checked by ``engine``'s rules (vLLM where none is named), another engine's
    refusing them. ``indexer_k_dtype`` (TensorRT-LLM's DSA indexer keys, "fp8" or "fp4"): the keys the step's
    indexer reads (:func:`kvplan.memory.dsa_index_key_bytes`), as ``capacity`` holds them. ``max_seq_len`` (calibrated
    only; TensorRT-LLM's launch ``max_seq_len``, None its default, the model's limit): below a Llama 4 chunk its
    chunked layers run as full attention, decoded by XQA rather than MMHA on Hopper
    (:meth:`kvplan.engines.trtllm.Trtllm.attention_spans`); other engines refuse it.
    """
    if model not in ("calibrated", "roofline"):
        raise InvalidInput(f"unknown latency model {model!r}; expected calibrated or roofline")
    if model == "roofline" and (pp > 1 or dp > 1):
        raise InvalidInput("the roofline latency models one TP group; use --latency calibrated with --pp or --dp")
    if model == "roofline" and max_seq_len is not None:
        raise InvalidInput("--max-seq-len is an engine flag: the roofline reads no engine's kernels; use --latency "
                           "calibrated")  # fmt: skip
    if model == "roofline" and swa_full:
        raise InvalidInput(
            "--swa-full is an engine flag: the roofline counts the model's windows; use --latency calibrated"
        )
    if dp > 1 and spec.moe is None:
        # as kvplan.engines.base.check_moe_parallel: DP attention only means something where MoE layers join the ranks
        raise InvalidInput(
            f"{spec.name} has no MoE layers: data-parallel attention does not apply (its copies are independent "
            "replicas; cost one with --batch per replica); use --dp 1"
        )
    eff = efficiency or Efficiency()
    states = {"mamba_ssm_cache_dtype": mamba_ssm_cache_dtype, "mamba_cache_dtype": mamba_cache_dtype,
              "indexer_k_dtype": indexer_k_dtype}  # fmt: skip
    if engine is not None or any(v is not None for v in states.values()):
        # the model as the engine runs it (TensorRT-LLM v0.17: no sliding window; the recurrent state dtypes and the
        # indexer keys it keeps, with the flags given): no engine named reads them as vLLM, as below
        from kvplan.engines import Settings, get_engine

        profile, flags = get_engine(engine or "vllm"), Settings(**states)
        if flags != Settings():
            profile.check_settings(flags)
            profile.check_settings_on_gpu(flags, gpu)
        spec = profile.model_as_run(spec, flags)
    check_parallel(spec, tp=tp, pp=pp)
    if context < 1 or batch < 1:
        raise InvalidInput(f"invalid context {context!r} or batch {batch!r}; both must be at least 1")
    flops = step_flops(spec, context, phase=phase, batch=batch, tp=tp)
    moved = step_bytes(
        spec, context, phase=phase, batch=batch, tp=tp, kv_dtype_name=kv_dtype_name, weights_dtype=weights_dtype,
        checkpoint=checkpoint,
    )  # fmt: skip
    tokens = batch * (context if phase == "prefill" else 1)
    comm = allreduce_bytes(spec, tokens, tp=tp)
    compute_s = flops.total / (peak_flops(gpu, compute_dtype) * eff.compute)
    memory_s = moved.total / (gpu.bandwidth_gbps * 1e9 * eff.memory)
    comm_s = _comm_seconds(gpu, comm, eff) if tp > 1 else 0.0
    roofline_s = max(compute_s, memory_s) + comm_s
    ops: dict[str, float] = {}
    label = "roofline"
    if model == "calibrated":
        from kvplan.engines import Settings, get_engine
        from kvplan.latency import calibration, step_latency

        flags = Settings(swa_full=swa_full, max_seq_len=max_seq_len)
        settings = flags if flags != Settings() else None
        if settings is not None:  # an engine without the flag says so (vLLM, TensorRT-LLM; None is vLLM)
            get_engine(engine or "vllm").check_settings(settings)
        # the weights the engine runs: as asked, else as the checkpoint ships them where the engine loads that format
        # (the bytes above count the shipped format too; plan takes the same default: kvplan.planner)
        w_name = (weight_dtype(weights_dtype).name if weights_dtype
                  else default_dtype(spec, loads=get_engine(engine or "vllm").weight_dtypes))  # fmt: skip
        if engine is not None:  # an engine that cannot run these weights on this GPU says so (trtllm: nvfp4 on Hopper)
            profile = get_engine(engine)
            profile.check_weights_on_gpu(w_name, gpu)
            kv_name = kv_dtype(kv_dtype_name or spec.dtype).name
            if kv_name in FP4_KV_DTYPES:  # a 4-bit float cache only where the engine stores it (as capacity says)
                profile.check_kv_on_gpu(profile.check_kv_dtype(kv_name), gpu)
                profile.check_kv_latency(kv_name)
        times = step_latency(
            spec,
            gpu,
            context,
            phase=phase,
            batch=batch,
            tp=tp,
            kv_dtype_name=kv_dtype(kv_dtype_name or spec.dtype).name,
            weights_dtype=w_name,
            attention_flops=flops.attention,
            engine=engine,
            expert_parallel=expert_parallel,
            deepep=deepep,
            two_batch=two_batch,
            pp=pp,
            dp=dp,
            gpus_per_node=gpus_per_node,
            settings=settings,
        )
        ops = times.as_dict()
        label = calibration(engine).version
    return PhaseCost(
        phase=phase,
        context=context,
        batch=batch,
        tokens=tokens,
        tp=tp,
        flops=flops,
        bytes=moved,
        comm_bytes=comm,
        arithmetic_intensity=flops.total / moved.total if moved.total else 0.0,
        compute_s=compute_s,
        memory_s=memory_s,
        comm_s=comm_s,
        roofline_s=roofline_s,
        time_s=sum(ops.values()) if ops else roofline_s,
        bound="compute" if compute_s >= memory_s else "memory",
        model=model,
        engine=label,
        ops_s=ops,
        pp=pp,
        dp=dp,
    )


def _comm_seconds(gpu: GPU, comm_bytes: int, eff: Efficiency) -> float:
    if gpu.interconnect_gbps is None:
        raise InvalidInput(f"GPU {gpu.name!r} has no interconnect_gbps in the catalog; TP > 1 needs it")
    return comm_bytes / (gpu.interconnect_gbps * 1e9 * eff.interconnect)


def cost(
    spec: ModelSpec | str,
    gpu: GPU | str,
    contexts: list[int] | int | str,
    *,
    batch: int = 1,
    tp: int = 1,
    kv_dtype_name: str | None = None,
    weights_dtype: str | None = None,
    compute_dtype: str = "bf16",
    efficiency: Efficiency | None = None,
    engine: str | None = None,
    model: LatencyModel = "calibrated",
    expert_parallel: bool = False,
    pp: int = 1,
    dp: int = 1,
    gpus_per_node: int | None = None,
    checkpoint: CheckpointWeights | None = None,
    swa_full: bool = False,
    mamba_ssm_cache_dtype: str | None = None,
    mamba_cache_dtype: str | None = None,
    indexer_k_dtype: str | None = None,
    max_seq_len: int | None = None,
) -> list[CostRow]:
    """Prefill and decode cost at each context length. ``spec`` and ``gpu`` may be names; lengths
    and the batch follow the CLI's rules (:mod:`kvplan.checks`). ``checkpoint`` (the model's headers)
    gives the weights read per step, in its own dtype, unless ``weights_dtype`` names a conversion;
    ``mamba_ssm_cache_dtype`` / ``mamba_cache_dtype``: vLLM's recurrent state dtypes; ``indexer_k_dtype``:
    TensorRT-LLM's DSA indexer keys; ``max_seq_len``: TensorRT-LLM's launch's (:func:`phase_cost`)."""
    from kvplan.checks import as_gpu, as_spec, check_batch, check_lengths

    spec, gpu = as_spec(spec), as_gpu(gpu)
    if weights_dtype is not None:
        checkpoint = None  # an asked-for dtype is counted from the architecture, as everywhere
    elif checkpoint is not None:
        from kvplan.checkpoint import dominant_weight_dtype

        weights_dtype = dominant_weight_dtype(checkpoint, spec)
    contexts, batch = check_lengths(contexts), check_batch(batch)
    kv_name = kv_dtype(kv_dtype_name or spec.dtype).name
    rows = []
    for length in contexts:
        phases = {
            phase: phase_cost(
                spec,
                gpu,
                length,
                phase=phase,
                batch=batch,
                tp=tp,
                kv_dtype_name=kv_name,
                weights_dtype=weights_dtype,
                compute_dtype=compute_dtype,
                efficiency=efficiency,
                engine=engine,
                model=model,
                expert_parallel=expert_parallel,
                pp=pp,
                dp=dp,
                gpus_per_node=gpus_per_node,
                checkpoint=checkpoint,
                swa_full=swa_full,
                mamba_ssm_cache_dtype=mamba_ssm_cache_dtype,
                mamba_cache_dtype=mamba_cache_dtype,
                indexer_k_dtype=indexer_k_dtype,
                max_seq_len=max_seq_len,
            )
            for phase in ("prefill", "decode")
        }
        rows.append(
            CostRow(
                model=spec.name,
                gpu=gpu.name,
                context=length,
                batch=batch,
                tp=tp,
                weights_source=checkpoint.describe() if checkpoint is not None else "architecture",
                **phases,  # type: ignore[arg-type]
            )
        )
    return rows


# ---- training: full attention against LongLoRA S2-Attn ----------------------------------------


class TrainingAttention(BaseModel):
    """Attention FLOPs and activation memory of one training step (forward + backward)."""

    model_config = ConfigDict(frozen=True)

    model: str
    context: int
    batch: int
    attention: AttentionMode
    group: int | None  # S2-Attn group size (tokens), None for full attention
    attention_flops_forward: int
    attention_flops_step: int  # x TRAINING_STEP_MULTIPLIER
    linear_flops_step: int  # 6 x (active params - embedding) x tokens
    activation_bytes: int  # attention matrices materialised (no FlashAttention), all layers
    activation_bytes_flash: int  # attention matrices never stored (FlashAttention): linear part only


def s2_group(context: int, ratio: float = S2_GROUP_RATIO) -> int:
    """LongLoRA's ``int(q_len * group_size_ratio)``; the reference code needs it to divide q_len."""
    group = int(context * ratio)
    if group < 1:
        raise InvalidInput(f"context {context!r} is too short for S2-Attn groups of {ratio} of the sequence")
    return group


def training_attention(
    spec: ModelSpec, context: int, *, batch: int = 1, attention: AttentionMode = "full"
) -> TrainingAttention:
    """Attention FLOPs and activation bytes of a training step at ``context`` tokens per sequence.

    S2-Attn replaces the full-attention layers' span with causal groups of ``context / 4`` tokens;
    sliding and chunked layers keep their own span. Activation memory follows Korthikanti et al.
    eq. 1 per layer, ``s*b*h*34 + 5*a*b*s*span_s`` bytes, where ``span_s`` is s for full attention
    and the group size under S2-Attn (the attention matrices of a group are group x group).
    """
    if attention not in ("full", "s2"):
        raise InvalidInput(f"unknown attention {attention!r}; expected full or s2")

    group = s2_group(context) if attention == "s2" else None
    forward = act = 0
    for name, count in spec.kind_counts.items():
        kind = spec.kind(name)
        if kind.type in ("recurrent", "none"):
            pairs = span = 0
        elif group is not None and kind.type in ("full", "mla"):
            pairs, span = chunked_pairs(context, group), group
        else:
            pairs = prefill_pairs(kind, context)
            span = min(context, kind.window or kind.chunk or context)
        s, v = attention_flops(spec, kind, pairs, phase="prefill")
        forward += count * batch * (s + v)
        act += count * ACT_ATTENTION_BYTES * spec.num_attention_heads * batch * context * span
    linear_act = spec.num_layers * ACT_LINEAR_BYTES * context * batch * spec.hidden_size
    params = count_params(spec)
    return TrainingAttention(
        model=spec.name,
        context=context,
        batch=batch,
        attention=attention,
        group=group,
        attention_flops_forward=forward,
        attention_flops_step=TRAINING_STEP_MULTIPLIER * forward,
        linear_flops_step=6 * (params.active - params.embedding) * batch * context,
        activation_bytes=linear_act + act,
        activation_bytes_flash=linear_act,
    )

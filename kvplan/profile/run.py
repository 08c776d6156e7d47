"""The profile run: context, weights, cache allocation, prefill, one decode step; measured vs estimated.

For each context length ``L`` the caches are sized for ``L`` tokens, the prefill writes ``L - 1``
tokens (in chunks of ``chunk`` when asked, as serving engines do) and a decode step writes the
``L``-th, so the caches end exactly full; the decode step is timed :data:`DECODE_STEPS` times (each
rewrites slot ``L - 1``) and the median is reported. Weights are built once and reused across
lengths. Before the first length, a warm-up runs the same passes on a scratch cache, so lazy kernel
loading, the cuBLAS handle and its workspace (allocated through torch's allocator at the first
matmul and never freed: 32 MiB on sm90) land in no measured time or activation peak.

Terms, each with an integer estimate and an integer measurement:

- ``weights``: :func:`kvplan.params.weight_bytes_per_gpu` vs the bytes building the model added;
- ``kv_cache``: ``batch x`` :meth:`CachePlan.bytes_per_sequence` vs the bytes the caches added;
- ``activation_peak``: :func:`activation_peak_bytes` vs the peak above weights + caches during
  prefill and decode (CUDA allocator; on CPU, the tensors the ops create);
- ``non_torch``: the CUDA context kvplan assumes vs NVML's process memory outside torch's pool.

torch is imported lazily: without it, or without CUDA for ``--device cuda``, the run stops with a
:class:`RuntimeFailure` that says how to install the extra.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from kvplan.errors import InvalidInput, RuntimeFailure
from kvplan.memory import cache_plan
from kvplan.params import (
    Part,
    embedding_parts,
    gemma3n_model_parts,
    head_parts,
    layer_parts,
    parts_bytes,
    weight_bytes_per_gpu,
)
from kvplan.spec import ModelSpec
from kvplan.units import MIB, kv_dtype

INSTALL_HINT = "pip install 'kvplan[profile]'"
Device = Literal["cuda", "cpu", "meta"]
Status = Literal["measured", "shapes_only", "did_not_fit", "refused"]

# The CUDA context kvplan reserves per GPU: 0.5 GiB (shared/reference/gpus.md, "CUDA context /
# non-KV overhead": typically 300-600 MiB per process since CUDA 11.7 lazy loading, pytorch#107667,
# #20532). The range a measurement is checked against: 100 MiB (llama.cpp PR #23604 measured 107 MiB
# on an RTX 4060 Ti) to 1 GiB (the pre-lazy-loading contexts of "> 1000 MB", pytorch#107667).
CUDA_CONTEXT_BYTES = 512 * MIB
CUDA_CONTEXT_RANGE = (100 * MIB, 1024 * MIB)

# nvidia-smi / torch device names -> GPU catalog entries, most specific first (names as printed in
# public nvidia-smi outputs, shared/reference/gpus.md S12: "NVIDIA H100 80GB HBM3" is the SXM part).
GPU_NAMES = (
    ("h100 nvl", "h100-nvl"),
    ("h100 pcie", "h100-pcie"),
    ("h100", "h100-sxm"),
    ("h200", "h200"),
    ("gb200", "gb200"),
    ("b200", "b200"),
    ("a100 80gb pcie", "a100-80gb-pcie"),
    ("a100-sxm4-80gb", "a100-80gb"),
    ("a100-pcie-40gb", "a100-40gb-pcie"),
    ("a100-sxm4-40gb", "a100-40gb"),
    ("l40s", "l40s"),
    ("a10g", "a10g"),
    ("rtx 4090", "rtx-4090"),
    ("rtx 3090", "rtx-3090"),
    (" l4", "l4"),
)

# Weights are profiled in the model's dtype when torch can compute in it; quantized formats
# (fp8, int8, int4, mxfp4 weights) would need their kernels, so those models run in bf16.
COMPUTE_DTYPES = ("fp32", "bf16", "fp16")


class Term(BaseModel):
    """One memory term: integer bytes, estimated and measured (None where not measurable)."""

    model_config = ConfigDict(frozen=True)

    estimated_bytes: int | None
    measured_bytes: int | None
    difference_bytes: int | None = None  # measured - estimated
    difference_pct: float | None = None  # of the estimate

    @classmethod
    def of(cls, estimated: int | None, measured: int | None) -> Term:
        if estimated is None or measured is None:
            return cls(estimated_bytes=estimated, measured_bytes=measured)
        diff = measured - estimated
        pct = round(100.0 * diff / estimated, 3) if estimated else None
        return cls(estimated_bytes=estimated, measured_bytes=measured, difference_bytes=diff, difference_pct=pct)


class Timing(BaseModel):
    """Measured times, and kvplan's roofline (``kvplan.cost``) for the catalog GPU when one is known.

    Extrapolated runs time each built layer (CUDA events between layers) and scale the layer loop
    per signature to full depth; embedding, head and the host time between calls are added once
    (``prefill_fixed_ms``, ``decode_fixed_ms``). A ``*_launch_bound`` flag says the device waited for
    the host (kernel launches, the MoE router's ``.tolist()``), so that figure is launch time.
    """

    model_config = ConfigDict(frozen=True)

    prefill_tokens: int  # per sequence
    prefill_step_tokens: int  # per sequence per forward call (the chunk)
    prefill_ms: float | None = None
    decode_ms: float | None = None  # the median of decode_steps timed steps
    decode_steps: int = 0
    prefill_fixed_ms: float | None = None  # extrapolated runs: outside the layer loop, counted once
    decode_fixed_ms: float | None = None
    prefill_host_ms: float | None = None  # CUDA: how long the host took to issue the work
    decode_host_ms: float | None = None
    prefill_launch_bound: bool | None = None
    decode_launch_bound: bool | None = None
    warmed_up: bool = False
    kv_dequantised: bool = False  # the KV dtype is not the compute dtype: attention reads a converted copy
    estimated_prefill_ms: float | None = None
    estimated_decode_ms: float | None = None
    gpu: str | None = None  # the catalog entry the estimate used


class ProfileRun(BaseModel):
    """One context length of one profile: the JSON object ``--format json`` and ``--save`` write."""

    model_config = ConfigDict(frozen=True)

    model: str
    device: Device
    device_name: str
    torch_version: str
    context: int
    batch: int
    kv_dtype: str
    weights_dtype: str
    chunk: int | None
    num_layers: int
    layers_built: list[int]
    extrapolated: bool
    status: Status
    note: str | None = None
    needed_bytes: int | None = None  # refused: the estimate compared with free memory
    free_bytes: int | None = None
    peak_bytes_so_far: int | None = None  # did_not_fit: allocator peak when it failed
    weights: Term
    kv_cache: Term
    activation_peak: Term
    non_torch: Term
    total_peak: Term  # weights + KV + activation; measured: the allocator's peak (CUDA, full builds)
    cuda_context_bytes: int | None = None  # NVML: what creating the context took
    cuda_context_in_range: bool | None = None
    time: Timing
    phases: list[dict[str, Any]] = []
    environment: dict[str, Any] = {}  # torch, CUDA runtime and driver, cuDNN, device, cuBLAS workspace
    attention_backends: dict[str, str] = {}  # call kind -> the SDPA kernel torch picked (seen in the warm-up)
    warnings: list[str] = []  # what may pollute the figures (other processes on the device)


# ---- estimates -----------------------------------------------------------------------------


def profile_weights_dtype(spec: ModelSpec) -> str:
    return spec.dtype if spec.dtype in COMPUTE_DTYPES else "bf16"


def activation_peak_bytes(
    spec: ModelSpec,
    *,
    tokens: int,
    batch: int,
    dtype_bytes: int,
    context: int | None = None,
    kv_dequantised: bool = False,
) -> int:
    """Estimated peak of one forward call of ``tokens`` new tokens per sequence, above weights + KV.

    Counts, for ``T = batch x tokens``: the residual stream, its normed copy and the outputs of
    the mixer and the MLP (``4 h`` per token); the temporaries of the widest layer, attention
    (q, k and their rotated copies, v, the attention output), MLA (query, latent-space query,
    attention output, per-head values), recurrent (projection and conv output) or MLP (gate, up,
    their product; MoE: the gathered inputs and outputs of top-k experts plus the shared expert);
    and the last position's logits in the model dtype and in fp32. Recurrent layers add the fp32
    ``[B, heads, c, c]`` score, decay and exponent tiles of one recurrence chunk of ``c`` tokens; MLA
    prefill adds the per-head K and V expanded from the latent of all ``context`` cached tokens. With
    ``kv_dequantised`` (a KV dtype other than the compute dtype: fp8, int8, fp32 under bf16) the
    attention layer reads its cache through a converted copy of every token it attends to
    (:func:`kvplan.profile.cache.load`), which adds the largest layer's K and V (or latent) in the
    compute dtype. It assumes a fused attention kernel (no ``[n, S]`` score matrix) and leaves out
    allocator rounding and library workspaces.
    """
    h, t = spec.hidden_size, batch * tokens
    widest = max(max(_mixer_width(spec, name) for name in spec.kind_counts), _mlp_width(spec))
    logits = batch * spec.vocab_size * (dtype_bytes + 4)
    context = context or tokens
    expanded = _mla_expanded(spec, batch=batch, tokens=tokens, context=context) * dtype_bytes
    dequantised = batch * _dequantised_elements(spec, context) * dtype_bytes if kv_dequantised else 0
    recurrence = _recurrence_tiles(spec, batch=batch, tokens=tokens)
    return t * dtype_bytes * (4 * h + widest) + logits + recurrence + expanded + dequantised


def _dequantised_elements(spec: ModelSpec, context: int) -> int:
    """Per sequence: the cached values one attention call reads, for the layer kind that reads most.

    Full and MLA layers read every cached token; sliding and chunked layers at most their window or
    chunk (the ring keeps ``W - 1`` earlier tokens, the new ones are already in the compute dtype).
    """
    most = 0
    for name in spec.kind_counts:
        kind = spec.kind(name)
        if kind.type == "recurrent":
            continue
        if kind.type == "mla":
            most = max(most, context * (kind.kv_lora_rank + kind.qk_rope_head_dim))
            continue
        span = kind.window if kind.type == "sliding" else kind.chunk if kind.type == "chunked" else None
        seen = context if span is None else min(context, span)
        most = max(most, seen * spec.kv_heads_of(kind) * (spec.k_head_dim_of(kind) + spec.v_head_dim_of(kind)))
    return most


def _mla_expanded(spec: ModelSpec, *, batch: int, tokens: int, context: int) -> int:
    """Elements of the K and V that MLA prefill expands from the latent (decode stays latent)."""
    if tokens < 2:
        return 0
    widths = []
    for name in spec.kind_counts:
        kind = spec.kind(name)
        if kind.type == "mla":
            vd = kind.v_head_dim or spec.v_head_dim or kind.qk_nope_head_dim
            # kv_b output (nope + vd) and the K with the RoPE part appended (nope + rope)
            widths.append(2 * kind.qk_nope_head_dim + kind.qk_rope_head_dim + vd)
    return batch * context * spec.num_attention_heads * max(widths, default=0)


def _recurrence_tiles(spec: ModelSpec, *, batch: int, tokens: int) -> int:
    from kvplan.profile.model import RECURRENT_CHUNK  # a constant of the profile model, not of torch

    chunk = min(tokens, RECURRENT_CHUNK)
    heads = [_recurrent_heads(spec.kind(n)) for n in spec.kind_counts if spec.kind(n).type == "recurrent"]
    return 3 * 4 * batch * max(heads, default=0) * chunk * chunk


def _recurrent_heads(kind) -> int:
    return kind.d_inner if kind.variant == "mamba" else kind.n_heads


def _mixer_width(spec: ModelSpec, name: str) -> int:
    kind, hq = spec.kind(name), spec.num_attention_heads
    if kind.type == "mla":
        vd = kind.v_head_dim or spec.v_head_dim or kind.qk_nope_head_dim
        qk, latent = kind.qk_nope_head_dim + kind.qk_rope_head_dim, kind.kv_lora_rank + kind.qk_rope_head_dim
        return hq * (qk + kind.kv_lora_rank + latent + kind.kv_lora_rank + vd) + latent
    if kind.type == "recurrent":
        return 2 * sum(p.params for p in layer_parts(spec, spec.layer_kind_names.index(name))[:1]) // spec.hidden_size
    hkv, kd, vd = spec.kv_heads_of(kind), spec.k_head_dim_of(kind), spec.v_head_dim_of(kind)
    return 2 * (hq * kd + hkv * kd) + hkv * vd + hq * vd


def _mlp_width(spec: ModelSpec) -> int:
    mats = 3 if spec.params.mlp == "gated" else 2
    dense = mats * spec.intermediate_size if spec.intermediate_size else 0
    if spec.moe is None:
        return dense
    moe = spec.moe
    routed = moe.experts_per_token * (mats * moe.expert_intermediate_size + 2 * spec.hidden_size)
    return max(dense, routed + mats * moe.shared_size + 2 * moe.num_experts)


@dataclass(frozen=True)
class Estimate:
    weights: int
    kv_cache: int
    activation_peak: int
    non_torch: int | None


def estimate_terms(
    spec: ModelSpec, *, context: int, batch: int, kv_name: str, weights_name: str, step: int, device: str
) -> Estimate:
    """The estimator's numbers for one run of the full model."""
    dtype_bytes = {"fp32": 4, "bf16": 2, "fp16": 2}[weights_name]
    peak = activation_peak_bytes(
        spec, tokens=step, batch=batch, dtype_bytes=dtype_bytes, context=context, kv_dequantised=kv_name != weights_name
    )
    return Estimate(
        weights=weight_bytes_per_gpu(spec, weights_name),
        kv_cache=batch * cache_plan(spec, kv_name).bytes_per_sequence(context),
        activation_peak=peak,
        non_torch=CUDA_CONTEXT_BYTES if device == "cuda" else None,
    )


# ---- representative layers and extrapolation -----------------------------------------------


def signature(spec: ModelSpec, layer: int) -> tuple[str, bool]:
    """What makes two layers cost the same: the layer kind and whether the MLP is dense."""
    return spec.layer_kind_names[layer], layer in spec.dense_mlp_layers


def representative_layers(spec: ModelSpec, k: int) -> list[int]:
    """``k`` layers covering every signature: the first layer of each, then the earliest others."""
    firsts: dict[tuple[str, bool], int] = {}
    for i in range(spec.num_layers):
        firsts.setdefault(signature(spec, i), i)
    if not len(firsts) <= k <= spec.num_layers:
        raise InvalidInput(
            f"invalid --layers {k!r}; {spec.name} needs between {len(firsts)} (one per layer kind) "
            f"and {spec.num_layers} layers"
        )
    chosen = set(firsts.values())
    chosen.update([i for i in range(spec.num_layers) if i not in chosen][: k - len(chosen)])
    return sorted(chosen)


def extrapolate(spec: ModelSpec, built: list[int], *, per_layer: dict[int, int], fixed: int) -> int:
    """Full-depth bytes from the built layers: each signature's mean, times its count in the model."""
    counts: dict[tuple[str, bool], int] = {}
    for i in range(spec.num_layers):
        counts[signature(spec, i)] = counts.get(signature(spec, i), 0) + 1
    total = fixed
    for sig, count in counts.items():
        values = [per_layer[i] for i in built if signature(spec, i) == sig]
        total += count * sum(values) // len(values)
    return total


def extrapolate_ms(spec: ModelSpec, built: list[int], *, per_layer: dict[int, float], fixed: float) -> float:
    """Full-depth time from the built layers' times, as :func:`extrapolate` does bytes."""
    counts: dict[tuple[str, bool], int] = {}
    for i in range(spec.num_layers):
        counts[signature(spec, i)] = counts.get(signature(spec, i), 0) + 1
    total = fixed
    for sig, count in counts.items():
        values = [per_layer[i] for i in built if signature(spec, i) == sig]
        total += count * sum(values) / len(values)
    return total


def built_weight_bytes(spec: ModelSpec, layers: list[int], weights_name: str) -> int:
    """The estimator's weight bytes of a model holding only ``layers``."""
    parts: list[Part] = embedding_parts(spec) + [Part(spec.params.extra_params, False)] + head_parts(spec)
    parts += gemma3n_model_parts(spec)
    for i in layers:
        parts += layer_parts(spec, i)
    return parts_bytes(parts, weights_name, spec.dtype)


def need_bytes(
    spec: ModelSpec,
    layers: list[int],
    length: int,
    *,
    batch: int,
    kv_name: str,
    chunk: int | None,
    device: str,
    with_weights: bool = True,
) -> int:
    """What building ``layers`` and running one length needs: weights, KV, activation (not on meta).

    The figure a profile compares with free memory before it allocates (and refuses beyond).
    """
    weights_name = profile_weights_dtype(spec)
    plan = cache_plan(spec, kv_name)
    kv = batch * sum(plan.layers[i].bytes_at(length) for i in layers)
    weights = built_weight_bytes(spec, layers, weights_name) if with_weights else 0
    step = max(1, min(chunk or length - 1, length - 1))
    act = activation_peak_bytes(
        spec,
        tokens=step,
        batch=batch,
        dtype_bytes={"fp32": 4, "bf16": 2, "fp16": 2}[weights_name],
        context=length,
        kv_dequantised=kv_name != weights_name,
    )
    return weights + kv + (act if device != "meta" else 0)


def planned_layers(spec: ModelSpec, layers: int | None) -> list[int]:
    """The layers a profile builds for ``--layers`` (all of them when None)."""
    return list(range(spec.num_layers)) if layers is None else representative_layers(spec, layers)


# ---- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    contexts: list[int]
    batch: int = 1
    kv_dtype: str | None = None
    device: Device = "cuda"
    layers: int | None = None
    chunk: int | None = None
    force: bool = False
    gpu: str | None = None  # catalog name or GPU YAML for the time estimate; default: from the device name


Progress = Callable[[str], None]
OnRun = Callable[["ProfileRun"], None]

# Timed repetitions of the decode step; the median is reported (one step is too noisy: a stray
# host stall or clock ramp moves it by more than the effect measured).
DECODE_STEPS = 5
# The warm-up's length cap: every bundled window and chunk is at most 8192 tokens (Llama 4 chunk),
# so the warm-up's caches wrap like the measured ones and load the same kernels.
WARMUP_MAX_TOKENS = 8192


def _quiet(_: str) -> None:
    return None


def require_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise RuntimeFailure(f"kvplan profile needs torch; {INSTALL_HINT}") from None
    return torch


def _device(torch: Any, name: str) -> Any:
    if name not in ("cuda", "cpu", "meta"):
        raise InvalidInput(f"unknown device {name!r}; expected cuda, cpu or meta")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeFailure(
            f"no CUDA device visible to torch {torch.__version__}; {INSTALL_HINT} with a CUDA build of torch, "
            "or use --device cpu / --device meta"
        )
    return torch.device("cuda", torch.cuda.current_device()) if name == "cuda" else torch.device(name)


def _check_options(spec: ModelSpec, opts: Options, kv_name: str) -> None:
    from kvplan.profile.cache import PACKED_DTYPES

    if opts.batch < 1:
        raise InvalidInput(f"invalid batch {opts.batch!r}; expected a whole number of at least 1")
    if opts.chunk is not None and opts.chunk < 1:
        raise InvalidInput(f"invalid --chunk {opts.chunk!r}; expected a number of tokens of at least 1")
    if kv_name in PACKED_DTYPES and opts.device != "meta":
        raise InvalidInput(
            f"KV dtype {kv_name!r} is a packed block format with no torch arithmetic; profile it with "
            "--device meta, or run fp32, bf16, fp16, fp8, fp8_e5m2 or int8"
        )
    if opts.layers is not None:
        representative_layers(spec, opts.layers)


def _check_layer_kinds(spec: ModelSpec) -> None:
    """Layer kinds the torch model here does not build yet (issue 9 added them to the schema):
    a DSA indexer key cache, KV-sharing layers, attention-free layers and mixer-only (no MLP) layers.
    Refused, not mis-measured."""
    missing = []
    for name, kind in spec.layers.kinds.items():
        if kind.index_head_dim:
            missing.append(f"{name!r} keeps a sparse-attention indexer key cache (index_head_dim)")
        if kind.kv_shared:
            missing.append(f"{name!r} shares K/V with an earlier layer")
        if kind.type == "none":
            missing.append(f"{name!r} has no attention")
        if not kind.mlp:
            missing.append(f"{name!r} has no feed-forward block")
        if kind.parallel is not None:
            missing.append(f"{name!r} runs a recurrent mixer beside its attention")
        if kind.variant == "lightning":
            missing.append(f"{name!r} keeps a lightning-attention state")
        if kind.type == "cross":
            missing.append(f"{name!r} is cross-attention to vision tokens")
    if spec.mlp_widths is not None:
        missing.append("per-layer MLP widths (mlp_widths)")
    if spec.params.per_layer_input_size or spec.params.altup_inputs > 1 or spec.params.laurel_rank:
        missing.append("Gemma 3n per-layer embeddings, AltUp or LAuReL")
    if missing:
        raise InvalidInput(f"kvplan profile cannot build {spec.name} yet: layer kind {'; '.join(missing)}")


def profile_model(
    spec: ModelSpec, opts: Options, *, progress: Progress = _quiet, on_run: OnRun | None = None
) -> list[ProfileRun]:
    """Profile ``spec`` at every context of ``opts``; one :class:`ProfileRun` per context.

    ``on_run`` receives each run as soon as it is measured, so a caller can save it before the next
    length starts (a run stopped at a time limit keeps what it finished).
    """
    torch = require_torch()
    kv_name = kv_dtype(opts.kv_dtype or spec.dtype).name
    _check_layer_kinds(spec)
    _check_options(spec, opts, kv_name)
    device = _device(torch, opts.device)
    if opts.gpu:
        _catalog_gpu(opts.gpu, None)  # a bad --gpu fails before anything is allocated
    from kvplan.profile.measure import make_meter

    progress(f"{spec.name}: context (device {opts.device})")
    meter = make_meter(device)
    session = _Session(torch, spec, opts, kv_name, meter, progress, on_run or (lambda run: None))
    try:
        with torch.inference_mode():
            return session.run()
    finally:
        session.close()


class _Session:
    """The state one profile keeps between phases; :meth:`close` releases every tensor."""

    def __init__(
        self, torch: Any, spec: ModelSpec, opts: Options, kv_name: str, meter: Any, progress: Progress, on_run: OnRun
    ):
        self.torch, self.spec, self.opts, self.kv_name, self.meter = torch, spec, opts, kv_name, meter
        self.say, self.on_run = progress, on_run
        self.warmed_up, self.backends = False, {}
        self.weights_name = profile_weights_dtype(spec)
        self.gpu = _catalog_gpu(opts.gpu, meter.name if opts.device == "cuda" else None)
        self.model: Any = None
        self.parts: dict[str, int] = {}
        self.phases: list[dict[str, Any]] = [meter.snapshot("context")]

    # -- phases --

    def run(self) -> list[ProfileRun]:
        layers, note = self._choose_layers()
        if layers is None:
            return [self._emit(self._refused(length, note)) for length in self.opts.contexts]
        self.layers, self.note = layers, note
        try:
            self._build_weights()
        except Exception as exc:
            if not _is_oom(self.torch, exc):
                raise
            return [self._emit(self._did_not_fit(length, "weights")) for length in self.opts.contexts]
        if self.opts.device != "meta":
            self._warm_up()
        return [self._emit(self._profile_length(length, i)) for i, length in enumerate(self.opts.contexts)]

    def _emit(self, run: ProfileRun) -> ProfileRun:
        self.on_run(run)
        return run

    def _warm_up(self) -> None:
        """The passes of the first length, on a scratch cache, untimed: loads kernels, creates the cuBLAS
        handle and workspace, copies RoPE tables to the device, and notes SDPA's backend per call kind."""
        from kvplan.profile.model import SDPA_CHOICES

        length = min(min(self.opts.contexts), WARMUP_MAX_TOKENS)
        if length < 2:
            return
        self.say(f"{self.spec.name}: warm-up ({length} tokens on a scratch cache, not timed)")
        caches: list[Any] = []
        token = SDPA_CHOICES.set(self.backends)
        try:
            self._allocate(caches, length, track=False)
            tokens = self.torch.randint(0, self.spec.vocab_size, (self.opts.batch, length), device=self.meter.device)
            self._prefill(tokens, caches, length)
            for _ in range(2):  # the second step runs on a warm decode path
                self.model(tokens[:, length - 1 :], caches, length - 1)
            self.warmed_up = True
        except Exception as exc:
            if not _is_oom(self.torch, exc):
                raise
            self.say(f"{self.spec.name}: warm-up ran out of memory; the first length absorbs the setup")
        finally:
            SDPA_CHOICES.reset(token)
            caches.clear()
            gc.collect()
            self.meter.trim()
        self.phases.append(self.meter.snapshot("warmup"))

    def _choose_layers(self) -> tuple[list[int] | None, str | None]:
        spec, opts = self.spec, self.opts
        layers = planned_layers(spec, opts.layers)
        free = self.meter.free_bytes()
        shortest = min(opts.contexts)
        need = self._need(layers, shortest, with_weights=True)
        if free is None or need <= free or opts.force:
            return layers, None
        if opts.layers is None:
            fewest = representative_layers(spec, _signature_count(spec))
            need_few = self._need(fewest, shortest, with_weights=True)
            if need_few <= free:
                self.need, self.free = need, free
                return fewest, "auto: the full model's estimate exceeds free memory, so one layer per kind was built"
            need = need_few
        self.need, self.free = need, free
        return None, "refused: estimate exceeds free memory; pass --force to try anyway"

    def _need(self, layers: list[int], length: int, *, with_weights: bool) -> int:
        opts = self.opts
        return need_bytes(
            self.spec,
            layers,
            length,
            batch=opts.batch,
            kv_name=self.kv_name,
            chunk=opts.chunk,
            device=opts.device,
            with_weights=with_weights,
        )

    def _dtype_bytes(self) -> int:
        return {"fp32": 4, "bf16": 2, "fp16": 2}[self.weights_name]

    def _step(self, length: int) -> int:
        prefill = length - 1
        return max(1, min(self.opts.chunk or prefill, prefill))

    def _build_weights(self) -> None:
        from kvplan.profile.cache import torch_dtype
        from kvplan.profile.model import SpecModel

        self.say(f"{self.spec.name}: weights ({len(self.layers)} of {self.spec.num_layers} layers)")

        def track(label: str, build: Callable[[], Any]) -> Any:
            module, nbytes = self.meter.allocation(build, lambda m: list(m.parameters()))
            self.parts[label] = nbytes
            return module

        device = self.meter.device
        self.model = SpecModel(
            self.spec, self.layers, dtype=torch_dtype(self.weights_name), device=device, track=track
        ).eval()
        self.phases.append(self.meter.snapshot("weights"))

    def _profile_length(self, length: int, index: int) -> ProfileRun:
        spec, opts, torch = self.spec, self.opts, self.torch
        tag = f"{spec.name} @ {length} tokens ({index + 1}/{len(opts.contexts)})"
        free = self.meter.free_bytes()
        need = self._need(self.layers, length, with_weights=False)
        if free is not None and need > free and not opts.force:
            self.need, self.free = need, free
            return self._refused(length, "refused: estimate exceeds free memory; pass --force to try anyway")
        caches: list[Any] = []
        phases = list(self.phases)
        try:
            self.say(f"{tag}: cache allocation")
            per_layer = self._allocate(caches, length)
            phases.append(self.meter.snapshot("cache"))
            if opts.device == "meta":
                return self._result(length, per_layer, phases=phases, status="shapes_only")
            tokens = torch.randint(0, spec.vocab_size, (opts.batch, length), device=self.meter.device)
            from kvplan.profile.measure import median_transient, storage_key

            self.meter.resident.add(storage_key(tokens))
            self.say(f"{tag}: prefill ({length - 1} tokens, {self._step(length)} per step)")
            prefill = self.meter.transient(lambda: self._prefill(tokens, caches, length))
            phases.append(self.meter.snapshot("prefill"))
            self.say(f"{tag}: decode ({DECODE_STEPS} timed steps, median)")
            last = tokens[:, length - 1 :]
            steps = [
                self.meter.transient(lambda: self.model(last, caches, length - 1, mark=self._mark()))
                for _ in range(DECODE_STEPS)
            ]
            decode = median_transient(steps)
            phases.append(self.meter.snapshot("decode"))
            return self._result(length, per_layer, phases=phases, prefill=prefill, decode=decode, status="measured")
        except Exception as exc:
            if not _is_oom(torch, exc):
                raise
            return self._did_not_fit(length, "prefill")
        finally:
            caches.clear()
            self.meter.resident.intersection_update(self._weight_keys())
            gc.collect()
            self.meter.trim()

    def _allocate(self, caches: list[Any], length: int, *, track: bool = True) -> dict[int, int]:
        from kvplan.profile.cache import cache_bytes, layer_cache

        per_layer = {}
        for i in self.layers:

            def build(i=i):
                return layer_cache(
                    self.spec, i, batch=self.opts.batch, length=length, dtype=self.kv_name, device=self.meter.device
                )

            if track:
                cache, nbytes = self.meter.allocation(build, lambda c: c.tensors())
            else:  # the warm-up's scratch cache: not resident, not measured
                cache = build()
                nbytes = cache_bytes(cache)
            caches.append(cache)
            per_layer[i] = nbytes
        return per_layer

    def _prefill(self, tokens: Any, caches: list[Any], length: int) -> None:
        prefill, step, mark = length - 1, self._step(length), self._mark()
        for start in range(0, prefill, step):
            self.model(tokens[:, start : min(prefill, start + step)], caches, start, mark=mark)

    def _mark(self) -> Any:
        """The meter's stamp when layers are timed one by one (extrapolated runs), else nothing."""
        return self.meter.mark if len(getattr(self, "layers", ())) < self.spec.num_layers else None

    def _weight_keys(self) -> set[int]:
        from kvplan.profile.measure import storage_key

        return {storage_key(p) for p in self.model.parameters()} if self.model is not None else set()

    # -- results --

    def _base(self, length: int) -> dict[str, Any]:
        spec, opts = self.spec, self.opts
        layers = getattr(self, "layers", list(range(spec.num_layers)))
        return {
            "model": spec.name,
            "device": opts.device,
            "device_name": self.meter.name,
            "torch_version": self.torch.__version__,
            "context": length,
            "batch": opts.batch,
            "kv_dtype": self.kv_name,
            "weights_dtype": self.weights_name,
            "chunk": opts.chunk,
            "num_layers": spec.num_layers,
            "layers_built": layers,
            "extrapolated": len(layers) < spec.num_layers,
            "time": Timing(
                prefill_tokens=length - 1,
                prefill_step_tokens=self._step(length),
                warmed_up=self.warmed_up,
                kv_dequantised=self.kv_name != self.weights_name,
            ),
            "environment": self.meter.environment(),
            "attention_backends": dict(self.backends),
            "warnings": list(self.meter.warnings),
        }

    def _estimate(self, length: int) -> Estimate:
        return estimate_terms(
            self.spec,
            context=length,
            batch=self.opts.batch,
            kv_name=self.kv_name,
            weights_name=self.weights_name,
            step=self._step(length),
            device=self.opts.device,
        )

    def _refused(self, length: int, note: str | None) -> ProfileRun:
        est = self._estimate(length)
        return ProfileRun(
            **self._base(length),
            status="refused",
            note=note,
            needed_bytes=getattr(self, "need", None),
            free_bytes=getattr(self, "free", None),
            **_terms(est),
        )

    def _did_not_fit(self, length: int, phase: str) -> ProfileRun:
        peak = self.torch.cuda.max_memory_allocated(self.meter.device) if self.opts.device == "cuda" else None
        return ProfileRun(
            **self._base(length),
            status="did_not_fit",
            note=f"out of memory during {phase}",
            peak_bytes_so_far=peak,
            **_terms(self._estimate(length)),
        )

    def _result(
        self,
        length: int,
        per_layer: dict[int, int],
        *,
        phases: list,
        status: Status,
        prefill: Any = None,
        decode: Any = None,
    ) -> ProfileRun:
        spec, base = self.spec, self._base(length)
        layer_parts_bytes = {int(k.split(".")[1]): v for k, v in self.parts.items() if k.startswith("layer.")}
        fixed = sum(v for k, v in self.parts.items() if not k.startswith("layer."))
        weights = extrapolate(spec, self.layers, per_layer=layer_parts_bytes, fixed=fixed)
        kv = extrapolate(spec, self.layers, per_layer=per_layer, fixed=0)
        activation = None if prefill is None else max(prefill.peak_bytes, decode.peak_bytes)
        timing = base.pop("time")
        if prefill is not None:
            timing = timing.model_copy(update=self._measured_times(prefill, decode, extrapolated=base["extrapolated"]))
            timing = timing.model_copy(update=self._time_estimate(length))
        peaks = [
            p["peak_allocated_bytes"]
            for p in phases
            if p["phase"] in ("prefill", "decode") and "peak_allocated_bytes" in p
        ]
        peak = max(peaks) if peaks and not base["extrapolated"] else None  # the allocator's own total
        context = self.meter.context_bytes()
        in_range = None if context is None else CUDA_CONTEXT_RANGE[0] <= context <= CUDA_CONTEXT_RANGE[1]
        notes = [n for n in (self.note, "extrapolated to full depth" if base["extrapolated"] else None) if n]
        return ProfileRun(
            **base,
            status=status,
            note="; ".join(notes) or None,
            time=timing,
            cuda_context_bytes=context,
            cuda_context_in_range=in_range,
            phases=phases,
            **_terms(
                self._estimate(length),
                weights=weights,
                kv=kv,
                activation=activation,
                non_torch=self.meter.non_torch_bytes(),
                peak=peak,
            ),
        )

    def _measured_times(self, prefill: Any, decode: Any, *, extrapolated: bool) -> dict[str, Any]:
        """Measured times; extrapolated runs scale each signature's layer time and add the rest once."""
        times: dict[str, Any] = {
            "decode_steps": DECODE_STEPS,
            "prefill_host_ms": prefill.host_ms,
            "decode_host_ms": decode.host_ms,
            "prefill_launch_bound": prefill.launch_bound,
            "decode_launch_bound": decode.launch_bound,
        }
        for name, t in (("prefill", prefill), ("decode", decode)):
            if not extrapolated:
                times[f"{name}_ms"] = t.ms
                continue
            per_layer = {i: t.spans.get(f"layer.{i}", 0.0) for i in self.layers}
            fixed = max(0.0, t.ms - sum(per_layer.values()))  # embedding, head, host time between calls
            times[f"{name}_fixed_ms"] = fixed
            times[f"{name}_ms"] = extrapolate_ms(self.spec, self.layers, per_layer=per_layer, fixed=fixed)
        return times

    def _time_estimate(self, length: int) -> dict[str, Any]:
        """kvplan's roofline for the whole prefill and one decode step on the catalog GPU."""
        if self.gpu is None:
            return {}
        from kvplan.cost import cost
        from kvplan.errors import KvplanError

        try:
            row = cost(
                self.spec,
                self.gpu,
                [length],
                batch=self.opts.batch,
                kv_dtype_name=self.kv_name,
                weights_dtype=self.weights_name,
            )[0]
        except KvplanError:
            return {"gpu": self.gpu.name}
        return {
            "gpu": self.gpu.name,
            "estimated_prefill_ms": row.prefill.time_s * 1e3,
            "estimated_decode_ms": row.decode.time_s * 1e3,
        }

    def close(self) -> None:
        self.model = None
        self.parts.clear()
        gc.collect()
        self.meter.release()


def _terms(est: Estimate, *, weights=None, kv=None, activation=None, non_torch=None, peak=None) -> dict[str, Term]:
    total = None if None in (weights, kv, activation) else weights + kv + activation
    return {
        "total_peak": Term.of(est.weights + est.kv_cache + est.activation_peak, peak if peak is not None else total),
        "weights": Term.of(est.weights, weights),
        "kv_cache": Term.of(est.kv_cache, kv),
        "activation_peak": Term.of(est.activation_peak, activation),
        "non_torch": Term.of(est.non_torch, non_torch),
    }


def _catalog_gpu(arg: str | None, device_name: str | None) -> Any:
    """The GPU the time estimate uses: ``--gpu`` when given, else the catalog entry the device name matches."""
    from kvplan.hardware import bundled_gpus, resolve_gpu

    if arg:
        return resolve_gpu(arg)
    if not device_name:
        return None
    name = f" {device_name.lower()}"
    for needle, entry in GPU_NAMES:
        if needle in name:
            return bundled_gpus().get(entry)
    return None


def _signature_count(spec: ModelSpec) -> int:
    return len({signature(spec, i) for i in range(spec.num_layers)})


def _is_oom(torch: Any, exc: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)

"""``kvplan estimate``: KV cache, weights and totals per context length, in the ideal layout."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from kvplan.checks import as_gpu, as_spec, beyond_trained_context, check_batch, check_bytes, check_lengths
from kvplan.memory import cache_plan
from kvplan.params import weight_bytes_per_stage
from kvplan.quant import shipped_dtype
from kvplan.units import canonical_dtype, kv_dtype, weight_dtype

if TYPE_CHECKING:
    from kvplan.checkpoint import CheckpointWeights
    from kvplan.hardware import GPU
    from kvplan.spec import ModelSpec


@dataclass(frozen=True)
class EstimateRow:
    """One context length. Bytes are ints; per-GPU figures are for the busiest GPU."""

    model: str
    context: int
    batch: int
    kv_dtype: str
    weights_dtype: str
    tp: int
    pp: int
    kv_bytes_per_token: int
    kv_bytes_per_sequence: int
    kv_bytes_total: int
    kv_bytes_per_gpu: int
    weights_bytes_per_gpu: int
    overhead_bytes_per_gpu: int
    total_bytes_per_gpu: int
    beyond_trained_context: bool
    gpu: str | None = None
    gpu_memory_bytes: int | None = None
    fits: bool | None = None
    headroom_bytes: int | None = None
    note: str | None = None
    weights_source: str = "architecture"  # or the checkpoint whose headers gave the bytes
    kv_copies_per_token: int = 1  # >1: KV / seq and KV total count a replicated copy on each TP rank
    kv_replication_note: str | None = None

    def model_dump(self) -> dict:
        return asdict(self)


def estimate(
    spec: ModelSpec | str,
    contexts: list[int] | int,
    *,
    batch: int = 1,
    kv_dtype_name: str | None = None,
    weights_dtype: str | CheckpointWeights | None = None,
    tp: int = 1,
    pp: int = 1,
    gpu: GPU | str | None = None,
    overhead_bytes: int = 0,
    mamba_ssm_cache_dtype: str | None = None,
    mamba_cache_dtype: str | None = None,
) -> list[EstimateRow]:
    """One row per context length: KV per sequence and batch, weights and total per GPU.

    ``spec`` and ``gpu`` may be names (``"llama-3.1-8b"``, ``"h100-sxm"``). ``weights_dtype`` is a
    dtype applied to the architecture count, or a checkpoint's headers
    (:class:`kvplan.checkpoint.CheckpointWeights`), whose bytes are then the weights term.
    ``overhead_bytes`` is what the user reserves per GPU beyond weights and KV (the ideal layout
    adds nothing of its own; engine budgets come with ``kvplan capacity``). The GPU's memory is
    what CUDA reports (:func:`kvplan.hardware.usable_memory_bytes`), the figure ``capacity``
    budgets from. A length past the trained context never fits: engines refuse it
    (:func:`kvplan.checks.trained_context`). ``mamba_ssm_cache_dtype`` / ``mamba_cache_dtype`` (vLLM's flags and
    values: "auto", "float32", "float16"): the dtypes a hybrid model's recurrent SSM and conv states are sized in
    (the ideal engine's rule, :meth:`kvplan.engines.ideal.Ideal.ssm_state_dtype`, as ``capacity -e ideal``).
    """
    spec = as_spec(spec)
    if mamba_ssm_cache_dtype is not None or mamba_cache_dtype is not None:
        from kvplan.engines import Settings, get_engine  # only then: estimate reads no engine otherwise

        ideal = get_engine("ideal")
        flags = Settings(mamba_ssm_cache_dtype=mamba_ssm_cache_dtype, mamba_cache_dtype=mamba_cache_dtype)
        ideal.check_settings(flags)
        spec = ideal.model_as_run(spec, flags)
    gpu = as_gpu(gpu) if gpu is not None else None
    contexts = check_lengths(contexts)
    batch = check_batch(batch)
    overhead_bytes = check_bytes(overhead_bytes, "overhead")
    memory = None
    if gpu is not None:
        from kvplan.hardware import usable_memory_bytes  # the GPU schema is built only when a GPU is asked for

        memory = usable_memory_bytes(gpu)
    kv_name = kv_dtype(kv_dtype_name or spec.dtype).name
    if weights_dtype is None or isinstance(weights_dtype, str):
        w_name = weight_dtype(weights_dtype or shipped_dtype(spec)).name
        w_label, w_source, weights_from = canonical_dtype(w_name), "architecture", w_name
    else:
        w_label, w_source, weights_from = weights_dtype.label, weights_dtype.describe(), weights_dtype
    plan = cache_plan(spec, kv_name, tp=tp, pp=pp)
    stage_weights = weight_bytes_per_stage(spec, weights_from, tp=tp, pp=pp)
    copies, replication = kv_replication(spec, tp=tp)
    rows = []
    for length in contexts:
        # The busiest GPU is the stage with the most weights + KV together: its columns add up to
        # its total, and it is the stage capacity -e ideal checks (the largest weights and the
        # largest KV can sit on different stages).
        weights, per_gpu = max(
            ((w, batch * st.bytes_at(length)) for w, st in zip(stage_weights, plan.stages, strict=True)),
            key=sum,
        )
        total = weights + per_gpu + overhead_bytes
        note = beyond_trained_context(spec, length)
        rows.append(
            EstimateRow(
                model=spec.name,
                context=length,
                batch=batch,
                kv_dtype=kv_name,
                weights_dtype=w_label,
                weights_source=w_source,
                tp=tp,
                pp=pp,
                kv_bytes_per_token=plan.bytes_per_token,
                kv_bytes_per_sequence=plan.bytes_per_sequence(length),
                kv_bytes_total=batch * plan.bytes_per_sequence(length),
                kv_bytes_per_gpu=per_gpu,
                weights_bytes_per_gpu=weights,
                overhead_bytes_per_gpu=overhead_bytes,
                total_bytes_per_gpu=total,
                gpu=gpu.name if gpu else None,
                gpu_memory_bytes=memory,
                fits=(total <= memory and note is None) if gpu else None,
                headroom_bytes=(memory - total) if gpu else None,
                beyond_trained_context=note is not None,
                note=note,
                kv_copies_per_token=copies,
                kv_replication_note=replication,
            )
        )
    return rows


def kv_replication(spec: ModelSpec, *, tp: int) -> tuple[int, str | None]:
    """How many TP ranks hold a copy of the same KV (the largest over layer kinds), and why.

    An MLA latent is shared by all heads, so every rank keeps the whole latent (``tp`` copies);
    KV heads fewer than ``tp`` are replicated ``tp / kv_heads`` times (vLLM QKVParallelLinear).
    """
    worst, why = 1, None
    for name in spec.kind_counts:
        kind = spec.kind(name)
        if kind.type == "mla":
            copies, reason = tp, "the MLA latent is held whole on every TP rank"
        elif kind.type == "recurrent":
            continue
        else:
            heads = spec.kv_heads_of(kind)
            copies = max(1, tp // heads)
            reason = f"{heads} KV heads over {tp} TP ranks: each head on {copies} ranks"
        if copies > worst:
            worst, why = copies, reason
    if worst == 1:
        return 1, None
    return worst, f"KV / seq and KV total count {worst} copies of the same cache ({why}); KV / GPU is one rank's"

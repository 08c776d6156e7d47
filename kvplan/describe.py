"""Derived facts about a spec, for ``kvplan models`` and ``kvplan show``."""

from __future__ import annotations

from typing import Any

from kvplan.catalog import all_bundled
from kvplan.memory import cache_plan
from kvplan.params import count_params
from kvplan.spec import ModelSpec


def model_summaries() -> list[dict[str, Any]]:
    """One row per bundled model: size, depth, layout, KV bytes per token, context."""
    rows = []
    for spec in all_bundled():
        count = count_params(spec)
        plan = cache_plan(spec, "bf16")
        rows.append(
            {
                "name": spec.name,
                "params": count.total,
                "params_b": _billions(count.total, count.active if spec.is_moe else None),
                "active_params": count.active,
                "num_layers": spec.num_layers,
                "attention": f"{spec.kv_groups}; {_layout_short(spec)}",
                "kv_bytes_per_token": plan.bytes_per_token,
                "max_position_embeddings": spec.max_position_embeddings,
                "source": spec.source,
            }
        )
    return rows


def _billions(total: int, active: int | None) -> str:
    text = f"{total / 1e9:.2f}"
    return f"{text} ({active / 1e9:.2f} active)" if active is not None else text


def _layout_short(spec: ModelSpec) -> str:
    parts = []
    for name, count in spec.kind_counts.items():
        kind = spec.kind(name)
        label = {
            "full": "full",
            "sliding": f"SWA {kind.window}",
            "chunked": f"chunk {kind.chunk}",
            "mla": f"MLA {kind.kv_lora_rank}+{kind.qk_rope_head_dim}",
            "recurrent": f"{kind.variant}",
            "none": "linear, no attention" if kind.linear_replacement else "no attention",
            "cross": f"cross-attention ({kind.cross_tokens} vision tokens)",
        }[kind.type]
        if kind.num_kv_heads and kind.num_kv_heads != spec.num_kv_heads:
            label += f" ({kind.num_kv_heads}kv)"
        if kind.kv_shared:
            label += " shared"  # reads an earlier layer's K/V, stores none
        if kind.parallel is not None:
            label += f"+{kind.parallel.variant}"
        parts.append(f"{count} {label}")
    return ", ".join(parts)


def describe(spec: ModelSpec) -> dict[str, Any]:
    """Spec, parameter counts, per-kind cache facts (bf16, one sequence, tp=1)."""
    count = count_params(spec)
    plan = cache_plan(spec, "bf16")
    kinds = []
    for name, n in spec.kind_counts.items():
        cache = next(c for c in plan.layers if c.kind == name)
        kinds.append(
            {
                "kind": name,
                "type": cache.type,
                "layers": n,
                "detail": _kind_detail(spec, name),
                "bytes_per_token_per_layer": cache.bytes_per_token,
                "max_tokens": _tokens_held(cache),
                "state_bytes_per_layer": cache.state_bytes,
            }
        )
    return {
        "name": spec.name,
        "source": spec.source,
        "params_total": count.total,
        "params_active": count.active,
        "published_params": spec.published_params,
        "params_embedding": count.embedding,
        "params_lm_head": count.lm_head,
        "num_layers": spec.num_layers,
        "hidden_size": spec.hidden_size,
        "heads": spec.kv_groups,
        "head_dim": spec.head_dim,
        "layout": _layout_short(spec),
        "kv_bytes_per_token_bf16": plan.bytes_per_token,
        "recurrent_state_bytes_bf16": plan.state_bytes,
        "max_position_embeddings": spec.max_position_embeddings,
        "rope_theta": spec.rope_theta,
        "rope_scaling": spec.rope.scaling if spec.rope else None,
        "moe": _moe_text(spec),
        "layer_kinds": kinds,
        "spec": spec.model_dump(exclude_none=True),
    }


def _kind_detail(spec: ModelSpec, name: str) -> str:
    kind = spec.kind(name)
    if kind.type == "mla":
        return f"latent {kind.kv_lora_rank} + rope {kind.qk_rope_head_dim}"
    if kind.type == "recurrent":
        return f"{kind.variant} state"
    if kind.type == "none":
        return "a hidden x hidden linear, no KV" if kind.linear_replacement else "no attention, no KV"
    if kind.kv_shared:
        return "reads an earlier layer's K/V, stores none"
    kv = f"{spec.kv_heads_of(kind)} KV heads x (K {spec.k_head_dim_of(kind)} + V {spec.v_head_dim_of(kind)})"
    return kv if kind.parallel is None else f"{kv} + a parallel {kind.parallel.variant} state"


def _moe_text(spec: ModelSpec) -> str | None:
    if spec.moe is None:
        return None
    m = spec.moe
    shared = f", {m.num_shared_experts} shared" if m.num_shared_experts else ""
    return f"{m.num_experts} experts, top-{m.experts_per_token}, size {m.expert_intermediate_size}{shared}"


def _tokens_held(cache) -> int | str:  # noqa: ANN001
    """A recurrent layer keeps a fixed state and no tokens; a window or chunk caps the rest."""
    if cache.type == "recurrent":
        return "none (fixed state)"
    if cache.type == "cross":
        return "vision tokens (fixed per request)"
    if cache.bytes_per_token == 0:
        return "none"  # no attention, or K/V read from an earlier layer
    return cache.max_tokens if cache.max_tokens is not None else "all"

"""Attention spans and FLOPs per layer kind: (query, key) pairs in prefill, keys per decoded token.

Used by :mod:`kvplan.cost` (roofline) and :mod:`kvplan.latency` (calibrated); kept apart so that
neither imports the other for them.
"""

from __future__ import annotations

from typing import Literal

from kvplan.spec import LayerKind, ModelSpec, ceil_div

Phase = Literal["prefill", "decode"]


def causal_pairs(length: int, span: int | None = None) -> int:
    """(query, key) pairs of causal attention over ``length`` tokens, each query seeing at most ``span``."""
    if span is None or span >= length:
        return length * (length + 1) // 2
    # queries 1..span see all before them; the remaining (length - span) see span keys each
    return span * (span + 1) // 2 + (length - span) * span


def chunked_pairs(length: int, chunk: int) -> int:
    """Causal attention restarted every ``chunk`` tokens (Llama 4 chunked attention, S2-Attn groups)."""
    full, rest = divmod(length, chunk)
    return full * (chunk * (chunk + 1) // 2) + rest * (rest + 1) // 2


def prefill_pairs(kind: LayerKind, length: int) -> int:
    if kind.type == "cross":
        return length * kind.cross_tokens  # every text token attends to every vision token
    if kind.type == "sliding":
        return causal_pairs(length, kind.window)
    if kind.index_topk:  # DeepSeek Sparse Attention: each query attends to the index_topk keys its indexer selects
        return causal_pairs(length, kind.index_topk)
    if kind.type == "chunked":
        return chunked_pairs(length, kind.chunk)
    return causal_pairs(length)


def decode_span(kind: LayerKind, context: int) -> int:
    """Keys one new token attends to when the cache holds ``context`` tokens (itself included).

    A sliding window W: the last ``min(context, W)``. A chunk C: the tokens of the current chunk only, positions
    ``C floor((context - 1) / C)`` to ``context - 1``, so ``(context - 1) mod C + 1`` (transformers
    ``chunked_overlay`` in masking_utils: ``kv_idx // chunk_size == q_idx // chunk_size``; vLLM's chunked local
    attention splits every request into such chunks as "virtual batches" before its kernels run,
    ``make_local_attention_virtual_batches`` in vllm/v1/attention/backends/utils.py). DeepSeek Sparse Attention
    (``index_topk``): the ``min(context, index_topk)`` keys the main attention reads; its indexer scores all of them
    (not counted here: :func:`kvplan.latency._dsa_decode_s` prices it)."""
    if kind.type == "cross":
        return kind.cross_tokens
    if kind.type == "sliding" and kind.window is not None:
        return min(context, kind.window)
    if kind.type == "chunked" and kind.chunk is not None:
        return (context - 1) % kind.chunk + 1
    if (
        kind.index_topk
    ):  # DeepSeek Sparse Attention: the index_topk keys its indexer selects (kvplan.latency._dsa_decode_s)
        return min(context, kind.index_topk)
    return context


def attention_dims(spec: ModelSpec, kind: LayerKind, phase: Phase) -> tuple[int, int]:
    """``(d_qk, d_v)`` per head that the attention kernel multiplies with, per phase."""
    if kind.type == "mla":
        # absorbed: q and the output live in the latent space; DSA's sparse kernels run that form in the prompt too
        # (vLLM vllm/v1/attention/backends/mla/flashmla_sparse.py FlashMLASparseImpl.forward: "the kernels want to use
        # MQA 576/512 approach for both prefill and decode")
        if phase == "decode" or kind.index_topk:
            return kind.kv_lora_rank + kind.qk_rope_head_dim, kind.kv_lora_rank
        vd = kind.v_head_dim or spec.v_head_dim or kind.qk_nope_head_dim
        return kind.qk_nope_head_dim + kind.qk_rope_head_dim, vd
    return spec.k_head_dim_of(kind), spec.v_head_dim_of(kind)


def attention_flops(spec: ModelSpec, kind: LayerKind, pairs: int, *, phase: Phase, tp: int = 1) -> tuple[int, int]:
    """``(scores, values)`` FLOPs of one layer on one rank for ``pairs`` (query, key) pairs per sequence."""
    if kind.type in ("recurrent", "none"):
        return 0, 0  # a recurrent state or no attention at all (Nemotron-NAS no_op, Nemotron-H MLP layers)
    heads = ceil_div(spec.num_attention_heads, tp)
    d_qk, d_v = attention_dims(spec, kind, phase)
    return 2 * heads * d_qk * pairs, 2 * heads * d_v * pairs

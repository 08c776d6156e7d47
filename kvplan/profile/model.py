"""A torch model built from a :class:`~kvplan.spec.ModelSpec`: random weights, the spec's shapes.

Every parameter here is one of the parts :mod:`kvplan.params` counts, with the same shape, so the
model's parameter bytes equal the estimator's weight bytes exactly. Weights are created directly
on the target device in the model's dtype (``torch.empty`` under a device context, then an
in-place init); nothing is built on the CPU and copied, and nothing is downloaded.

The arithmetic is faithful where it drives memory (projection widths, attention over the cached
tokens, experts gathered per token) and simplified where it does not:

- attention uses ``scaled_dot_product_attention``; sliding layers attend over a ring buffer of
  ``window`` slots, chunked layers over the current chunk; GQA/MQA without repeating K/V;
- MLA attends in the latent space (the "absorbed" form, as serving engines decode), caching
  ``kv_lora_rank + qk_rope_head_dim`` values per token;
- recurrent layers (Mamba, Mamba2, Gated DeltaNet) run one gated linear recurrence,
  ``S_t = a_t S_{t-1} + k_t^T v_t``, chunk by chunk; the state has the exact shape of the real layer,
  but Mamba's per-state decay is one decay per channel and DeltaNet's delta-rule correction is
  left out;
- attention sinks are resident (counted) but not used in the softmax; RoPE takes its inverse
  frequencies and attention factor from :mod:`kvplan.rope` (the model's scaling: linear, NTK,
  YaRN, Llama 3, LongRoPE), plain ``theta`` for layers with their own base.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import nn

from kvplan.profile.cache import AttentionCache, LatentCache, LayerCacheTensors, StateCache, load, state_shapes, store
from kvplan.spec import LayerKind, ModelSpec

INIT_STD = 0.02  # GPT-2 / Llama initializer_range; any small value keeps activations finite
RECURRENT_CHUNK = 32  # tokens per step of the chunked recurrence: [B, H, 32, 32] scores stay small
WINDOW_QUERY_BLOCK = 1024  # queries per sliding-window attention call: bounds the [block, W + block] mask


def _weight(*shape: int, dtype: torch.dtype) -> nn.Parameter:
    return nn.Parameter(torch.empty(shape, dtype=dtype).normal_(0.0, INIT_STD), requires_grad=False)


def _ones(*shape: int, dtype: torch.dtype) -> nn.Parameter:
    return nn.Parameter(torch.ones(shape, dtype=dtype), requires_grad=False)


def _zeros(*shape: int, dtype: torch.dtype) -> nn.Parameter:
    return nn.Parameter(torch.zeros(shape, dtype=dtype), requires_grad=False)


class Linear(nn.Module):
    """``y = x W^T + b`` with ``W: [out, in]``; no double initialisation, unlike ``nn.Linear``."""

    def __init__(self, n_in: int, n_out: int, *, bias: bool, dtype: torch.dtype) -> None:
        super().__init__()
        self.weight = _weight(n_out, n_in, dtype=dtype)
        self.bias = _zeros(n_out, dtype=dtype) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class RMSNorm(nn.Module):
    def __init__(self, width: int, *, dtype: torch.dtype) -> None:
        super().__init__()
        self.weight = _ones(width, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scaled = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6)
        return scaled.to(x.dtype) * self.weight


class LayerNorm(nn.Module):
    def __init__(self, width: int, *, dtype: torch.dtype) -> None:
        super().__init__()
        self.weight = _ones(width, dtype=dtype)
        self.bias = _zeros(width, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, 1e-5)


def hidden_norm(spec: ModelSpec, *, dtype: torch.dtype) -> nn.Module:
    """The model's norm over the hidden size (RMSNorm: h weights; LayerNorm: h weights + h biases)."""
    if spec.params.norm == "layernorm":
        return LayerNorm(spec.hidden_size, dtype=dtype)
    return RMSNorm(spec.hidden_size, dtype=dtype)


# ---- rotary embedding ------------------------------------------------------------------------


def inverse_frequencies(spec: ModelSpec, kind: LayerKind, rot_dim: int) -> tuple[tuple[float, ...], float] | None:
    """``(inv_freq, attention_factor)`` of a layer kind, with the model's RoPE scaling applied.

    Layers with their own ``rope_theta`` (Gemma 3 local layers) rotate with plain ``theta``, as in
    Hugging Face; the others take :func:`kvplan.rope.frequencies` of the model's scaling block.
    """
    if spec.rope is None or rot_dim < 2:
        return None
    if kind.rope_theta is None:
        from kvplan.errors import KvplanError
        from kvplan.rope import frequencies, rope_config

        try:
            config = rope_config(spec)
            if config.rotary_dim == rot_dim:
                result = frequencies(config)
                return tuple(result.inv_freq), float(result.attention_factor)
        except KvplanError:
            pass  # a scaling block kvplan.rope cannot evaluate: plain theta (same shapes and bytes)
    theta = kind.rope_theta or spec.rope.theta
    return tuple(1.0 / theta ** (2 * i / rot_dim) for i in range(rot_dim // 2)), 1.0  # RoFormer eq. 15


class RopeTable:
    """A layer's inverse frequencies, copied to each device once.

    ``torch.tensor(inv_freq, device=cuda)`` is a host-to-device copy from pageable memory; made on
    every call it put one synchronisation per attention layer into every timed forward pass. The
    copy is kept outside the module's parameters and buffers, so weight bytes stay the estimator's.
    """

    def __init__(self, freqs: tuple[tuple[float, ...], float] | None) -> None:
        self.freqs = freqs
        self._inv_freq: dict[torch.device, torch.Tensor] = {}

    def inv_freq(self, device: torch.device) -> torch.Tensor:
        table = self._inv_freq.get(device)
        if table is None:
            table = self._inv_freq[device] = torch.tensor(self.freqs[0], dtype=torch.float32, device=device)
        return table

    def tables(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``cos, sin: [n, rot_dim / 2]`` (fp32, times the attention factor) at ``positions``."""
        if self.freqs is None:
            return None
        angles = positions.float()[:, None] * self.inv_freq(positions.device)
        return angles.cos() * self.freqs[1], angles.sin() * self.freqs[1]


def apply_rope(x: torch.Tensor, tables: tuple[torch.Tensor, torch.Tensor] | None, rot_dim: int) -> torch.Tensor:
    """Rotate the first ``rot_dim`` features of ``x: [B, H, n, d]`` (rotate-half layout, as HF Llama)."""
    if tables is None:
        return x
    cos, sin = (t.to(x.dtype) for t in tables)
    half = rot_dim // 2
    x1, x2, rest = x[..., :half], x[..., half:rot_dim], x[..., rot_dim:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest), dim=-1)


def rotary_dim(spec: ModelSpec, head_dim: int) -> int:
    factor = spec.rope.partial_rotary_factor if spec.rope else 0.0
    return int(head_dim * factor) // 2 * 2


# ---- attention over a cache -----------------------------------------------------------------


def _causal_mask(n: int, s: int, device: torch.device) -> object | None:
    """Queries are the last ``n`` of ``s`` positions: a lower-right causal mask (None when n == 1)."""
    if n == 1:
        return None
    try:
        from torch.nn.attention.bias import causal_lower_right  # torch >= 2.3: no mask is materialised
    except ImportError:  # pragma: no cover - older torch
        return torch.ones(n, s, dtype=torch.bool, device=device).tril(s - n)
    # A tensor subclass: build it outside any dispatch mode (the CPU meter's tracker is one).
    from torch.utils._python_dispatch import _disable_current_modes

    with _disable_current_modes():
        return causal_lower_right(n, s)


def sdpa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, mask: object | None, causal: bool = False, scale=None
) -> torch.Tensor:
    """``scaled_dot_product_attention`` with GQA: ``q: [B, Hq, n, d]``, ``k, v: [B, Hkv, s, d]``.

    With an explicit boolean mask the query groups are folded into the query length
    (``[B, Hkv, G*n, d]``, mask repeated ``G`` times), so a masked GQA call can use the
    memory-efficient kernel (which takes masks, not GQA) instead of materialising scores.
    """
    gqa = q.shape[1] != k.shape[1]
    if gqa and type(mask) is torch.Tensor:  # a plain boolean mask, not a CausalBias subclass
        b, hq, n, d = q.shape
        group = hq // k.shape[1]
        folded = q.reshape(b, k.shape[1], group * n, d)  # head h -> kv head h // group, as enable_gqa
        repeated = mask.repeat(group, 1)
        _note_backend(folded, k, v, mask=repeated, causal=False, gqa=False, scale=scale, label="masked, gqa folded")
        out = F.scaled_dot_product_attention(folded, k, v, attn_mask=repeated, scale=scale)
        return out.reshape(b, hq, n, v.shape[-1])
    _note_backend(q, k, v, mask=mask, causal=causal, gqa=gqa, scale=scale)
    try:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=scale, enable_gqa=gqa)
    except TypeError:  # pragma: no cover - torch < 2.5 has no enable_gqa
        group = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=scale)


# Where SDPA's choices are being written down (a dict of call kind -> backend), or None: set only
# around the warm-up, so the timed passes pay nothing for it.
SDPA_CHOICES: ContextVar[dict[str, str] | None] = ContextVar("SDPA_CHOICES", default=None)


def _note_backend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, mask, causal: bool, gqa: bool, scale, label: str = ""
) -> None:
    """Record the kernel SDPA dispatches this kind of call to, with the arguments the call gets."""
    choices = SDPA_CHOICES.get()
    if choices is None:
        return
    kind = label or ("decode" if q.shape[2] == 1 else "causal" if causal else "no mask" if mask is None else "masked")
    if mask is not None and type(mask) is not torch.Tensor:
        kind = "lower-right causal"
    key = f"{kind}, head_dim {q.shape[-1]}/{v.shape[-1]}" + (", gqa" if gqa else "")
    if key not in choices:
        choices[key] = sdpa_backend(q, k, v, mask=mask, causal=causal, gqa=gqa, scale=scale)


def sdpa_backend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, mask, causal: bool, gqa: bool, scale) -> str:
    """The backend name (``SDPBackend``) SDPA picks for these inputs; ``unknown`` where torch cannot say.

    A lower-right ``CausalBias`` is dispatched by torch.nn.attention.bias.CausalBias._dispatch
    (torch 2.13): flash if ``can_use_flash_attention``, else memory-efficient, else math over a
    materialised mask; a boolean mask goes to a kernel that takes a bias (memory-efficient, cuDNN or
    math), which converts it to an additive bias padded to its alignment.
    """
    from torch.nn.attention import SDPBackend

    try:
        if mask is not None and type(mask) is not torch.Tensor:  # CausalBias
            if mask.seq_len_q == mask.seq_len_kv:
                mask, causal = None, True
            else:
                from torch.backends.cuda import SDPAParams, can_use_efficient_attention, can_use_flash_attention

                params = SDPAParams(q, k, v, None, 0.0, False, gqa)
                if q.device.type == "cuda" and can_use_flash_attention(params):
                    return "FLASH_ATTENTION"
                if q.device.type == "cuda" and can_use_efficient_attention(params):
                    return "EFFICIENT_ATTENTION"
                return "MATH (materialised lower-right mask)" if q.device.type == "cuda" else "cpu: materialised mask"
        choice = torch._fused_sdp_choice(q, k, v, mask, 0.0, causal, scale=scale, enable_gqa=gqa)
        return SDPBackend(choice).name
    except (AttributeError, RuntimeError, TypeError, ValueError):  # an older torch, or a private API change
        return "unknown"


def attend_full(cache: AttentionCache, q: torch.Tensor, *, k: torch.Tensor, v: torch.Tensor, pos: int) -> torch.Tensor:
    """Write the new ``n`` tokens at slots ``pos..pos+n``; attend causally over every cached token."""
    n = q.shape[2]
    store(cache.k[:, :, pos : pos + n], k)
    store(cache.v[:, :, pos : pos + n], v)
    keys, values = load(cache.k[:, :, : pos + n], q.dtype), load(cache.v[:, :, : pos + n], q.dtype)
    if pos == 0 and n > 1:
        return sdpa(q, keys, values, mask=None, causal=True)
    return sdpa(q, keys, values, mask=_causal_mask(n, pos + n, q.device))


def attend_ring(cache: AttentionCache, q: torch.Tensor, *, k: torch.Tensor, v: torch.Tensor, pos: int) -> torch.Tensor:
    """Sliding window ``W`` over a ring of ``W`` slots (slot = position % W); a query sees ``W`` tokens."""
    window, n = cache.span, q.shape[2]
    if n == 1 and pos >= window - 1:
        _write_ring(cache, k=k, v=v, pos=pos)  # overwrites position pos - W, which this query no longer sees
        return sdpa(q, load(cache.k, q.dtype), load(cache.v, q.dtype), mask=None)
    held = min(pos, window - 1)  # earlier tokens some new query still sees
    slots = torch.arange(pos - held, pos, device=q.device) % window
    keys = torch.cat((load(_select(cache.k, slots), q.dtype), k), dim=2)  # [B, Hkv, held + n, kd]
    values = torch.cat((load(_select(cache.v, slots), q.dtype), v), dim=2)
    first = pos - held  # absolute position of keys[:, :, 0]
    outs = []
    for i0 in range(0, n, WINDOW_QUERY_BLOCK):
        i1 = min(n, i0 + WINDOW_QUERY_BLOCK)
        lo, hi = max(0, pos + i0 - window + 1 - first), pos + i1 - first
        q_pos = torch.arange(pos + i0, pos + i1, device=q.device)[:, None]
        k_pos = torch.arange(first + lo, first + hi, device=q.device)[None, :]
        mask = (k_pos <= q_pos) & (k_pos > q_pos - window)  # [block, keys]
        outs.append(sdpa(q[:, :, i0:i1], keys[:, :, lo:hi], values[:, :, lo:hi], mask=mask))
    _write_ring(cache, k=k, v=v, pos=pos)
    return torch.cat(outs, dim=2)


def _write_ring(cache: AttentionCache, *, k: torch.Tensor, v: torch.Tensor, pos: int) -> None:
    window, n = cache.span, k.shape[2]
    keep = min(n, window)  # only the last W new tokens survive
    slots = torch.arange(pos + n - keep, pos + n, device=k.device) % window
    bits(cache.k).index_copy_(2, slots, bits(_as(cache.k, k[:, :, n - keep :])))
    bits(cache.v).index_copy_(2, slots, bits(_as(cache.v, v[:, :, n - keep :])))


# Integer dtypes of each element size: slot copies go through them, because index_copy_ (and, on some
# builds, index_select) have no Float8 kernel on CPU or CUDA (torch 2.13: "index_copy_cpu" not
# implemented for 'Float8_e4m3fn'). A bit copy is exactly what a cache write needs.
_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def bits(t: torch.Tensor) -> torch.Tensor:
    """``t`` viewed as integers of the same width (no copy)."""
    return t.view(_BITS[t.element_size()])


def _select(cache: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """``cache.index_select(2, slots)`` in ``cache``'s dtype, copied as bits."""
    return bits(cache).index_select(2, slots).view(cache.dtype)


def _as(dst: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """``src`` converted to ``dst``'s dtype the way :func:`store` writes it."""
    if dst.dtype == src.dtype:
        return src
    tmp = torch.empty(src.shape, dtype=dst.dtype, device=src.device)
    store(tmp, src)
    return tmp


def attend_chunked(
    cache: AttentionCache, q: torch.Tensor, *, k: torch.Tensor, v: torch.Tensor, pos: int
) -> torch.Tensor:
    """Chunked local attention (Llama 4): a token sees the earlier tokens of its own chunk of ``C``."""
    chunk, n, outs, i = cache.span, q.shape[2], [], 0
    while i < n:
        p = pos + i
        prior = p % chunk  # tokens of this chunk already cached, at slots 0..prior-1
        m = min(n - i, chunk - prior)
        store(cache.k[:, :, prior : prior + m], k[:, :, i : i + m])
        store(cache.v[:, :, prior : prior + m], v[:, :, i : i + m])
        keys = load(cache.k[:, :, : prior + m], q.dtype)
        values = load(cache.v[:, :, : prior + m], q.dtype)
        causal = prior == 0 and m > 1
        mask = None if causal else _causal_mask(m, prior + m, q.device)
        outs.append(sdpa(q[:, :, i : i + m], keys, values, mask=mask, causal=causal))
        i += m
    return torch.cat(outs, dim=2)


_ATTEND = {"full": attend_full, "ring": attend_ring, "chunk": attend_chunked}


class Attention(nn.Module):
    """MHA / GQA / MQA with optional sliding window or chunk (the cache says which)."""

    def __init__(self, spec: ModelSpec, kind: LayerKind, *, dtype: torch.dtype) -> None:
        super().__init__()
        h, layout = spec.hidden_size, spec.params
        self.spec, self.kind = spec, kind
        self.heads, self.kv_heads = spec.num_attention_heads, spec.kv_heads_of(kind)
        self.kd, self.vd = spec.k_head_dim_of(kind), spec.v_head_dim_of(kind)
        bias = layout.attention_bias != "none"
        self.q_proj = Linear(h, self.heads * self.kd, bias=bias, dtype=dtype)
        self.k_proj = Linear(h, self.kv_heads * self.kd, bias=bias, dtype=dtype)
        self.v_proj = Linear(h, self.kv_heads * self.vd, bias=bias, dtype=dtype)
        self.o_proj = Linear(self.heads * self.vd, h, bias=layout.attention_bias == "all", dtype=dtype)
        self.q_norm = RMSNorm(self.kd, dtype=dtype) if layout.qk_norm else None
        self.k_norm = RMSNorm(self.kd, dtype=dtype) if layout.qk_norm else None
        # gpt-oss sinks: one logit per head; resident, not used in this softmax.
        self.sinks = _zeros(self.heads, dtype=dtype) if layout.attention_sinks else None
        # Qwen3-Next: a sigmoid gate on the attention output (HF fuses it into q_proj; same bytes).
        gate = getattr(layout, "attention_output_gate", False)
        self.gate_proj = Linear(h, self.heads * self.vd, bias=False, dtype=dtype) if gate else None
        self.rot = rotary_dim(spec, self.kd)
        self.rope = RopeTable(inverse_frequencies(spec, kind, self.rot))

    def forward(self, x: torch.Tensor, cache: AttentionCache, pos: int) -> torch.Tensor:
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.heads, self.kd).transpose(1, 2)  # [B, Hq, n, kd]
        k = self.k_proj(x).view(b, n, self.kv_heads, self.kd).transpose(1, 2)  # [B, Hkv, n, kd]
        v = self.v_proj(x).view(b, n, self.kv_heads, self.vd).transpose(1, 2)  # [B, Hkv, n, vd]
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        tables = self.rope.tables(torch.arange(pos, pos + n, device=x.device))
        q, k = apply_rope(q, tables, self.rot), apply_rope(k, tables, self.rot)
        out = _ATTEND[cache.mode](cache, q, k=k, v=v, pos=pos)  # [B, Hq, n, vd]
        out = out.transpose(1, 2).reshape(b, n, self.heads * self.vd)
        if self.gate_proj is not None:
            out = out * self.gate_proj(x).sigmoid()
        return self.o_proj(out)


class LatentAttention(nn.Module):
    """Multi-head latent attention (DeepSeek-V2 section 2.1), attending in the latent space."""

    def __init__(self, spec: ModelSpec, kind: LayerKind, *, dtype: torch.dtype) -> None:
        super().__init__()
        h, self.heads, self.spec, self.kind = spec.hidden_size, spec.num_attention_heads, spec, kind
        self.nope, self.rope_dim, self.rank = kind.qk_nope_head_dim, kind.qk_rope_head_dim, kind.kv_lora_rank
        self.vd = kind.v_head_dim or spec.v_head_dim or kind.qk_nope_head_dim
        qk = self.nope + self.rope_dim
        if kind.q_lora_rank:
            self.q_a_proj = Linear(h, kind.q_lora_rank, bias=False, dtype=dtype)
            self.q_a_norm = RMSNorm(kind.q_lora_rank, dtype=dtype)
            self.q_b_proj = Linear(kind.q_lora_rank, self.heads * qk, bias=False, dtype=dtype)
        else:
            self.q_proj = Linear(h, self.heads * qk, bias=False, dtype=dtype)
        self.kv_a_proj = Linear(h, self.rank + self.rope_dim, bias=False, dtype=dtype)
        self.kv_a_norm = RMSNorm(self.rank, dtype=dtype)
        self.kv_b_proj = Linear(self.rank, self.heads * (self.nope + self.vd), bias=False, dtype=dtype)
        self.o_proj = Linear(self.heads * self.vd, h, bias=False, dtype=dtype)
        self.rope = RopeTable(inverse_frequencies(spec, kind, self.rope_dim))

    def _queries(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "q_b_proj"):
            return self.q_b_proj(self.q_a_norm(self.q_a_proj(x)))
        return self.q_proj(x)

    def forward(self, x: torch.Tensor, cache: LatentCache, pos: int) -> torch.Tensor:
        b, n, _ = x.shape
        q = self._queries(x).view(b, n, self.heads, self.nope + self.rope_dim).transpose(1, 2)
        q_nope, q_pe = q[..., : self.nope], q[..., self.nope :]  # [B, H, n, nope], [B, H, n, rope]
        c_kv, k_pe = self.kv_a_proj(x).split([self.rank, self.rope_dim], dim=-1)  # [B, n, r], [B, n, rope]
        tables = self.rope.tables(torch.arange(pos, pos + n, device=x.device))
        q_pe = apply_rope(q_pe, tables, self.rope_dim)
        k_pe = apply_rope(k_pe[:, None], tables, self.rope_dim)[:, 0]
        store(cache.latent[:, pos : pos + n], torch.cat((self.kv_a_norm(c_kv), k_pe), dim=-1))
        latent = load(cache.latent[:, : pos + n], x.dtype)  # [B, S, r + rope]
        scale = 1.0 / math.sqrt(self.nope + self.rope_dim)
        if n == 1:
            out = self._absorbed(q_nope, q_pe, latent=latent, scale=scale)
        else:
            out = self._expanded(q_nope, q_pe, latent=latent, scale=scale, pos=pos)
        return self.o_proj(out.transpose(1, 2).reshape(b, n, self.heads * self.vd))

    def _absorbed(self, q_nope, q_pe, *, latent, scale) -> torch.Tensor:
        """Decode: attend in the latent space (W_UK into the query, W_UV after), heads as query rows."""
        b, h = q_nope.shape[:2]
        w = self.kv_b_proj.weight.view(h, self.nope + self.vd, self.rank)
        q_lat = torch.einsum("bhnd,hdr->bhnr", q_nope, w[:, : self.nope])  # [B, H, 1, r]
        q = torch.cat((q_lat, q_pe), -1).transpose(1, 2)  # [B, 1, H, r + rope]: one KV head, H query rows
        kv = latent[:, None]  # [B, 1, S, r + rope]
        out = sdpa(q, kv, kv[..., : self.rank], mask=None, scale=scale).transpose(1, 2)
        return torch.einsum("bhnr,hvr->bhnv", out, w[:, self.nope :])  # [B, H, 1, vd]

    def _expanded(self, q_nope, q_pe, *, latent, scale, pos: int) -> torch.Tensor:
        """Prefill: per-head K and V from the latent (as engines prefill), causal over every cached token."""
        b, h, n = q_nope.shape[:3]
        s = latent.shape[1]
        kv = self.kv_b_proj(latent[..., : self.rank]).view(b, s, h, self.nope + self.vd).transpose(1, 2)
        k_pe = latent[:, None, :, self.rank :].expand(b, h, s, self.rope_dim)
        k = torch.cat((kv[..., : self.nope], k_pe), -1)  # [B, H, S, nope + rope]
        q = torch.cat((q_nope, q_pe), -1)  # [B, H, n, nope + rope]
        causal = pos == 0
        mask = None if causal else _causal_mask(n, s, q.device)
        return sdpa(q, k, kv[..., self.nope :], mask=mask, causal=causal, scale=scale)  # [B, H, n, vd]


# ---- recurrent layers ------------------------------------------------------------------------


def recurrence_chunk(
    q: torch.Tensor, k: torch.Tensor, *, v: torch.Tensor, log_a: torch.Tensor, state: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One chunk of ``S_t = a_t S_{t-1} + k_t^T v_t``, ``y_t = q_t S_t`` (the chunked form of Mamba2/GLA).

    ``q, k: [B, H, c, dk]``, ``v: [B, H, c, dv]``, ``log_a: [B, H, c]`` (<= 0), ``state: [B, H, dk, dv]``
    fp32. Every exponent is a sum of log-decays, so nothing overflows.
    """
    cum = log_a.cumsum(-1)  # [B, H, c]
    c = cum.shape[-1]
    later = torch.ones(c, c, dtype=torch.bool, device=q.device).tril()
    decay = (cum[..., :, None] - cum[..., None, :]).masked_fill(~later, float("-inf")).exp()  # [B, H, c, c]
    y = ((q @ k.transpose(-1, -2)) * decay) @ v + (q * cum.exp()[..., None]) @ state
    last = cum[..., -1:]
    state = state * last.exp()[..., None] + (k * (last - cum).exp()[..., None]).transpose(-1, -2) @ v
    return y, state


Chunk = Callable[[slice], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]


def run_recurrence(parts: Chunk, n: int, *, ssm: torch.Tensor) -> torch.Tensor:
    """The recurrence over ``n`` tokens, chunk by chunk, from and back into the cached state ``ssm``.

    ``parts(slice)`` gives ``q, k, v, log_a`` of the tokens in the slice, so a per-channel key (Mamba)
    is only ever materialised for one chunk.
    """
    state, outs = ssm.float(), []
    for i in range(0, n, RECURRENT_CHUNK):
        q, k, v, log_a = parts(slice(i, min(n, i + RECURRENT_CHUNK)))
        y, state = recurrence_chunk(q.float(), k.float(), v=v.float(), log_a=log_a, state=state)
        outs.append(y.to(v.dtype))
    store(ssm, state)
    return torch.cat(outs, dim=2)


def causal_conv(x: torch.Tensor, conv_state: torch.Tensor, *, weight: torch.Tensor, bias) -> torch.Tensor:
    """Depthwise causal conv of ``x: [B, n, C]`` continuing from ``conv_state: [B, C, K-1]`` (updated)."""
    full = torch.cat((load(conv_state, x.dtype), x.transpose(1, 2)), dim=2)  # [B, C, K-1+n]
    store(conv_state, full[:, :, -conv_state.shape[2] :])
    return F.conv1d(full, weight, bias, groups=weight.shape[0]).transpose(1, 2)  # [B, n, C]


class Recurrent(nn.Module):
    """Mamba (Jamba), Mamba2 or Gated DeltaNet (Qwen3-Next): the parameters of the real layer."""

    def __init__(self, spec: ModelSpec, kind: LayerKind, *, dtype: torch.dtype) -> None:
        super().__init__()
        self.kind, h = kind, spec.hidden_size
        (self.channels, _), (self.heads, self.dk, self.dv) = state_shapes(kind)
        build = {"mamba": self._mamba, "mamba2": self._mamba2, "gated_deltanet": self._deltanet}[kind.variant]
        build(kind, h, dtype)

    def _mamba(self, kind: LayerKind, h: int, dtype: torch.dtype) -> None:
        d, n, dt = kind.d_inner, kind.d_state, kind.dt_rank or -(-h // 16)  # dt_rank "auto" = ceil(h/16)
        self.dt_rank = dt
        self.in_proj = Linear(h, 2 * d, bias=False, dtype=dtype)
        self.conv_weight, self.conv_bias = _weight(d, 1, kind.d_conv, dtype=dtype), _zeros(d, dtype=dtype)
        self.x_proj = Linear(d, dt + 2 * n, bias=False, dtype=dtype)
        self.dt_proj = Linear(dt, d, bias=True, dtype=dtype)
        self.A_log, self.D = _zeros(d, n, dtype=dtype), _ones(d, dtype=dtype)
        self.dt_norm, self.b_norm, self.c_norm = (RMSNorm(w, dtype=dtype) for w in (dt, n, n))  # Jamba
        self.out_proj = Linear(d, h, bias=False, dtype=dtype)

    def _mamba2(self, kind: LayerKind, h: int, dtype: torch.dtype) -> None:
        d, g, n, nh = kind.d_inner, kind.n_groups, kind.d_state, kind.n_heads
        self.in_proj = Linear(h, 2 * d + 2 * g * n + nh, bias=False, dtype=dtype)  # z, xBC, dt
        self.conv_weight, self.conv_bias = (
            _weight(self.channels, 1, kind.d_conv, dtype=dtype),
            _zeros(self.channels, dtype=dtype),
        )
        self.A_log, self.D, self.dt_bias = _zeros(nh, dtype=dtype), _ones(nh, dtype=dtype), _zeros(nh, dtype=dtype)
        self.norm = RMSNorm(d, dtype=dtype)
        self.out_proj = Linear(d, h, bias=False, dtype=dtype)

    def _deltanet(self, kind: LayerKind, h: int, dtype: torch.dtype) -> None:
        key_dim, value_dim, nh = kind.n_k_heads * kind.head_k_dim, kind.n_heads * kind.head_v_dim, kind.n_heads
        self.in_proj_qkvz = Linear(h, 2 * key_dim + 2 * value_dim, bias=False, dtype=dtype)
        self.in_proj_ba = Linear(h, 2 * nh, bias=False, dtype=dtype)
        self.conv_weight, self.conv_bias = _weight(self.channels, 1, kind.d_conv, dtype=dtype), None
        self.dt_bias, self.A_log = _zeros(nh, dtype=dtype), _zeros(nh, dtype=dtype)
        self.norm = RMSNorm(kind.head_v_dim, dtype=dtype)
        self.out_proj = Linear(value_dim, h, bias=False, dtype=dtype)

    def forward(self, x: torch.Tensor, cache: StateCache, pos: int) -> torch.Tensor:
        step = {"mamba": self._mamba_step, "mamba2": self._mamba2_step, "gated_deltanet": self._deltanet_step}
        return step[self.kind.variant](x, cache)

    def _mamba_step(self, x: torch.Tensor, cache: StateCache) -> torch.Tensor:
        b, n, _ = x.shape
        xs, z = self.in_proj(x).chunk(2, dim=-1)  # [B, n, d] each
        xs = F.silu(causal_conv(xs, cache.conv, weight=self.conv_weight, bias=self.conv_bias))
        dt, bm, cm = self.x_proj(xs).split([self.dt_rank, self.kind.d_state, self.kind.d_state], dim=-1)
        dt = F.softplus(self.dt_proj(self.dt_norm(dt))).float()  # [B, n, d]
        log_a = (dt * -self.A_log[:, 0].float().exp()).transpose(1, 2)  # [B, d, n]: one decay per channel
        q = self.c_norm(cm)[:, None].expand(b, self.heads, n, self.dk)  # C_t shared by channels (a view)
        bm, dt_t, v = self.b_norm(bm)[:, None], dt.transpose(1, 2)[..., None], xs.transpose(1, 2)[..., None]

        def parts(j: slice):  # k = B_t * dt_t per channel: [B, d, c, N], one chunk at a time
            return q[:, :, j], bm[:, :, j] * dt_t[:, :, j].to(x.dtype), v[:, :, j], log_a[:, :, j]

        y = run_recurrence(parts, n, ssm=cache.ssm)[..., 0].transpose(1, 2)  # [B, n, d]
        return self.out_proj((y + xs * self.D) * F.silu(z))

    def _mamba2_step(self, x: torch.Tensor, cache: StateCache) -> torch.Tensor:
        b, n, _ = x.shape
        kind, d, gn = self.kind, self.kind.d_inner, self.kind.n_groups * self.kind.d_state
        z, xbc, dt = self.in_proj(x).split([d, self.channels, self.heads], dim=-1)
        xs, bm, cm = F.silu(causal_conv(xbc, cache.conv, weight=self.conv_weight, bias=self.conv_bias)).split(
            [d, gn, gn], -1
        )
        dt = F.softplus(dt.float() + self.dt_bias.float())  # [B, n, nh]
        log_a = (dt * -self.A_log.float().exp()).transpose(1, 2)  # [B, nh, n]
        per_group = self.heads // kind.n_groups
        q = cm.view(b, n, kind.n_groups, self.dk).transpose(1, 2).repeat_interleave(per_group, 1)  # [B, nh, n, N]
        k = bm.view(b, n, kind.n_groups, self.dk).transpose(1, 2).repeat_interleave(per_group, 1)
        k = k * dt.transpose(1, 2)[..., None].to(x.dtype)
        v = xs.view(b, n, self.heads, self.dv).transpose(1, 2)  # [B, nh, n, P]
        y = run_recurrence(_slicer(q, k, v, log_a), n, ssm=cache.ssm) + v * self.D[:, None, None]
        return self.out_proj(self.norm(y.transpose(1, 2).reshape(b, n, d) * F.silu(z)))

    def _deltanet_step(self, x: torch.Tensor, cache: StateCache) -> torch.Tensor:
        b, n, _ = x.shape
        kind, nh = self.kind, self.heads
        key_dim, value_dim = kind.n_k_heads * kind.head_k_dim, nh * kind.head_v_dim
        qkv, z = self.in_proj_qkvz(x).split([2 * key_dim + value_dim, value_dim], dim=-1)
        beta, a = self.in_proj_ba(x).chunk(2, dim=-1)  # [B, n, nh] each
        q, k, v = F.silu(causal_conv(qkv, cache.conv, weight=self.conv_weight, bias=None)).split(
            [key_dim, key_dim, value_dim], -1
        )
        per_k = nh // kind.n_k_heads
        q = q.view(b, n, kind.n_k_heads, self.dk).transpose(1, 2).repeat_interleave(per_k, 1)  # [B, nh, n, dk]
        k = k.view(b, n, kind.n_k_heads, self.dk).transpose(1, 2).repeat_interleave(per_k, 1)
        k = k * beta.sigmoid().transpose(1, 2)[..., None]  # beta scales the write (delta rule left out)
        v = v.view(b, n, nh, self.dv).transpose(1, 2)  # [B, nh, n, dv]
        log_a = (-self.A_log.float().exp() * F.softplus(a.float() + self.dt_bias.float())).transpose(1, 2)
        y = self.norm(run_recurrence(_slicer(q, k, v, log_a), n, ssm=cache.ssm).transpose(1, 2))  # [B, n, nh, dv]
        return self.out_proj((y * F.silu(z).view(b, n, nh, self.dv)).reshape(b, n, value_dim))


def _slicer(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_a: torch.Tensor) -> Chunk:
    return lambda j: (q[:, :, j], k[:, :, j], v[:, :, j], log_a[:, :, j])


# ---- feed-forward --------------------------------------------------------------------------


class DenseMLP(nn.Module):
    """Gated (SwiGLU: gate, up, down) or plain (up, down) feed-forward."""

    def __init__(self, h: int, inter: int, *, gated: bool, bias: bool, dtype: torch.dtype) -> None:
        super().__init__()
        self.gate = Linear(h, inter, bias=bias, dtype=dtype) if gated else None
        self.up = Linear(h, inter, bias=bias, dtype=dtype)
        self.down = Linear(inter, h, bias=bias, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate is None:
            return self.down(F.gelu(self.up(x)))
        return self.down(F.silu(self.gate(x)) * self.up(x))


class MoEMLP(nn.Module):
    """Router, every expert resident (stacked weights), optional shared expert(s) and shared gate."""

    def __init__(self, spec: ModelSpec, *, dtype: torch.dtype) -> None:
        super().__init__()
        moe, h, gated = spec.moe, spec.hidden_size, spec.params.mlp == "gated"
        e, i = moe.num_experts, moe.expert_intermediate_size
        self.top_k, self.gated = moe.experts_per_token, gated
        self.router = Linear(h, e, bias=moe.router_bias, dtype=dtype)
        self.w_gate = _weight(e, i, h, dtype=dtype) if gated else None  # [E, i, h]
        self.w_up, self.w_down = _weight(e, i, h, dtype=dtype), _weight(e, h, i, dtype=dtype)
        self.b_gate = _zeros(e, i, dtype=dtype) if moe.expert_bias and gated else None
        self.b_up = _zeros(e, i, dtype=dtype) if moe.expert_bias else None
        self.b_down = _zeros(e, h, dtype=dtype) if moe.expert_bias else None
        shared = moe.shared_size
        self.shared = DenseMLP(h, shared, gated=gated, bias=False, dtype=dtype) if shared else None
        self.shared_gate = Linear(h, 1, bias=False, dtype=dtype) if moe.shared_expert_gate else None

    def _expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        def bias(b):
            return None if b is None else b[e]

        up = F.linear(x, self.w_up[e], bias(self.b_up))
        act = F.gelu(up) if self.w_gate is None else F.silu(F.linear(x, self.w_gate[e], bias(self.b_gate))) * up
        return F.linear(act, self.w_down[e], bias(self.b_down))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape, flat = x.shape, x.reshape(-1, x.shape[-1])  # [T, h]
        probs = self.router(flat).float().softmax(-1)
        weights, chosen = probs.topk(self.top_k, dim=-1)  # [T, k]
        order = chosen.flatten().argsort()  # token-slots grouped by expert
        counts = torch.bincount(chosen.flatten(), minlength=self.w_up.shape[0]).tolist()
        out, start = torch.zeros_like(flat), 0
        for e, count in enumerate(counts):
            if count:
                slots = order[start : start + count]
                tokens = slots // self.top_k
                y = self._expert(e, flat[tokens]) * weights.flatten()[slots, None].to(x.dtype)
                out.index_add_(0, tokens, y)
                start += count
        if self.shared is not None:
            shared = self.shared(flat)
            if self.shared_gate is not None:
                shared = shared * self.shared_gate(flat).sigmoid()
            out = out + shared
        return out.view(shape)


# ---- decoder -------------------------------------------------------------------------------


def mixer(spec: ModelSpec, kind: LayerKind, *, dtype: torch.dtype) -> nn.Module:
    if kind.type == "mla":
        return LatentAttention(spec, kind, dtype=dtype)
    if kind.type == "recurrent":
        return Recurrent(spec, kind, dtype=dtype)
    return Attention(spec, kind, dtype=dtype)


class DecoderLayer(nn.Module):
    """Norms (pre-mixer, pre-MLP, then Gemma-style post norms if the spec has more), mixer, MLP."""

    def __init__(self, spec: ModelSpec, index: int, *, dtype: torch.dtype) -> None:
        super().__init__()
        self.index = index
        self.norms = nn.ModuleList(hidden_norm(spec, dtype=dtype) for _ in range(spec.params.norms_per_layer))
        self.mixer = mixer(spec, spec.kind(spec.layer_kind_names[index]), dtype=dtype)
        if index in spec.dense_mlp_layers:
            gated, bias = spec.params.mlp == "gated", spec.params.mlp_bias
            self.mlp = DenseMLP(spec.hidden_size, spec.intermediate_size, gated=gated, bias=bias, dtype=dtype)
        else:
            self.mlp = MoEMLP(spec, dtype=dtype)

    def _norm(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return self.norms[i](x) if i < len(self.norms) else x

    def forward(self, x: torch.Tensor, cache: LayerCacheTensors, pos: int) -> torch.Tensor:
        x = x + self._norm(2, self.mixer(self._norm(0, x), cache, pos))
        return x + self._norm(3, self.mlp(self._norm(1, x)))


Track = Callable[[str, Callable[[], nn.Module]], nn.Module]


def _untracked(label: str, build: Callable[[], nn.Module]) -> nn.Module:
    return build()


class SpecModel(nn.Module):
    """Embedding, the built decoder layers (all, or a representative subset), final norm, LM head."""

    def __init__(
        self, spec: ModelSpec, layers: list[int], *, dtype: torch.dtype, device: torch.device, track: Track = _untracked
    ) -> None:
        super().__init__()
        self.spec, self.layer_ids = spec, list(layers)
        with torch.device(device):
            self.embed = track("embedding", lambda: _Table(spec.vocab_size, spec.hidden_size, dtype=dtype))
            self.layers = nn.ModuleList(
                track(f"layer.{i}", lambda i=i: DecoderLayer(spec, i, dtype=dtype)) for i in self.layer_ids
            )
            self.norm = track("final_norm", lambda: hidden_norm(spec, dtype=dtype))
            tied = spec.tie_word_embeddings
            self.lm_head = (
                None if tied else track("lm_head", lambda: _Table(spec.vocab_size, spec.hidden_size, dtype=dtype))
            )
            extra = spec.params.extra_params
            # Resident parameters outside the decoder (vision tower, MTP): memory only, never run.
            self.extra = track("extra", lambda: _Flat(extra, dtype=dtype)) if extra else None

    def forward(
        self, tokens: torch.Tensor, caches: list[LayerCacheTensors], pos: int, *, mark: Mark | None = None
    ) -> torch.Tensor:
        """``tokens: [B, n]`` at positions ``pos..pos+n``; returns the last position's logits ``[B, V]``.

        ``mark(label)``, when given, is called at the start (``begin``) and after the embedding, each
        layer (``layer.<i>``) and the head, so a timer can split the pass into its parts.
        """
        mark = mark or _no_mark
        mark("begin")
        x = F.embedding(tokens, self.embed.weight)  # [B, n, h]
        mark("embedding")
        for layer, cache in zip(self.layers, caches, strict=True):
            x = layer(x, cache, pos)
            mark(f"layer.{layer.index}")
        head = self.embed.weight if self.lm_head is None else self.lm_head.weight
        logits = F.linear(self.norm(x[:, -1]), head).float()  # serving engines score the last token only
        mark("head")
        return logits


Mark = Callable[[str], None]


def _no_mark(label: str) -> None:
    return None


class _Table(nn.Module):
    def __init__(self, rows: int, width: int, *, dtype: torch.dtype) -> None:
        super().__init__()
        self.weight = _weight(rows, width, dtype=dtype)


class _Flat(nn.Module):
    def __init__(self, count: int, *, dtype: torch.dtype) -> None:
        super().__init__()
        self.weight = _zeros(count, dtype=dtype)


def parameter_bytes(module: nn.Module) -> int:
    """Bytes of every parameter of ``module`` (each counted once)."""
    return sum(p.numel() * p.element_size() for p in module.parameters())

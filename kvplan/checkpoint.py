"""Weights as a checkpoint stores them: tensor names, dtypes and shapes read from file headers.

Two formats, read without touching the weights:

- **safetensors** (https://huggingface.co/docs/safetensors/index#format): an 8-byte little-endian
  header length N, then N bytes of JSON ``{name: {dtype, shape, data_offsets: [begin, end]}}``.
  A tensor's bytes are ``end - begin``: what the file holds, scales and packed blocks included.
  A sharded checkpoint lists its shards in ``model.safetensors.index.json`` (``weight_map``).
- **GGUF** (llama.cpp ``ggml/include/gguf.h``, gguf-py ``gguf_reader.py`` 0.19.0): magic ``GGUF``,
  version, tensor count, metadata count, the metadata key/values, then one info per tensor
  (name, dims, ggml type, offset). Bytes are ``elements / block_size * type_size`` of the ggml
  type (:data:`GGML_BLOCKS`).

A :class:`CheckpointWeights` is a source of weight bytes that goes where a weights dtype goes
(``kvplan.params.weight_bytes_per_stage``): it splits its tensors over pipeline stages and
tensor-parallel ranks by the rules the architecture count follows, so both numbers can be shown
side by side. Reading the bytes (local file or HTTP range request) is :mod:`kvplan.hub`'s job;
this module only parses what a :class:`ByteReader` returns.
"""

from __future__ import annotations

import json
import re
import struct
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kvplan.errors import InvalidInput

if TYPE_CHECKING:
    from kvplan.spec import ModelSpec

ByteReader = Callable[[int, int], bytes]  # (offset, length) -> at most `length` bytes from `offset`

SAFETENSORS_INDEX = "model.safetensors.index.json"  # transformers' SAFE_WEIGHTS_INDEX_NAME
SAFETENSORS_SINGLE = "model.safetensors"  # transformers' SAFE_WEIGHTS_NAME
# A header beyond this is not a safetensors header (the Rust crate refuses > 100 MB: safetensors
# 0.8 lib.rs MAX_HEADER_SIZE = 100_000_000).
MAX_SAFETENSORS_HEADER_BYTES = 100_000_000


@dataclass(frozen=True)
class TensorInfo:
    """One stored tensor: its name, storage dtype as the file spells it, shape and bytes."""

    name: str
    dtype: str  # safetensors "BF16", "F8_E4M3", "U8", ... or a ggml type "Q4_K", "F16", ...
    shape: tuple[int, ...]
    nbytes: int


# ---- safetensors ---------------------------------------------------------------------------


def safetensors_tensors(read: ByteReader, *, origin: str) -> list[TensorInfo]:
    """The tensors listed in one safetensors file's header (two reads: length, then JSON)."""
    head = read(0, 8)
    if len(head) < 8:
        raise InvalidInput(f"{origin}: not a safetensors file (shorter than its 8-byte header length)")
    (length,) = struct.unpack("<Q", head)
    if length > MAX_SAFETENSORS_HEADER_BYTES:
        raise InvalidInput(f"{origin}: not a safetensors file (header length {length:,} bytes)")
    raw = read(8, length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInput(f"{origin}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise InvalidInput(f"{origin}: not a safetensors file (its header is not a JSON object)")
    return [_safetensors_entry(name, entry, origin=origin) for name, entry in header.items() if name != "__metadata__"]


def _safetensors_entry(name: str, entry: object, *, origin: str) -> TensorInfo:
    try:
        begin, end = entry["data_offsets"]  # type: ignore[index]
        shape = tuple(int(d) for d in entry["shape"])  # type: ignore[index]
        dtype = str(entry["dtype"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        raise InvalidInput(f"{origin}: tensor {name!r} has no dtype/shape/data_offsets in the header") from None
    if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end):
        raise InvalidInput(f"{origin}: tensor {name!r} has bad data_offsets {[begin, end]!r}")
    return TensorInfo(name, dtype, shape, end - begin)


def index_shards(index: object, *, origin: str) -> list[str]:
    """The shard file names of a ``model.safetensors.index.json``, in first-use order."""
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise InvalidInput(f"{origin}: no weight_map in {SAFETENSORS_INDEX}")
    return list(dict.fromkeys(str(f) for f in weight_map.values()))


# ---- GGUF ----------------------------------------------------------------------------------

GGUF_MAGIC = b"GGUF"
GGUF_DEFAULT_ALIGNMENT = 32  # gguf.h GGUF_DEFAULT_ALIGNMENT
_QK_K = 256  # ggml-common.h QK_K: the super-block of the k-quants

# ggml type id -> (name, block_size in values, type_size in bytes per block). From ggml.c
# type_traits (blck_size, type_size) as mirrored by gguf-py 0.19.0 constants.GGML_QUANT_SIZES.
GGML_BLOCKS: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 2 + 16),
    3: ("Q4_1", 32, 2 + 2 + 16),
    6: ("Q5_0", 32, 2 + 4 + 16),
    7: ("Q5_1", 32, 2 + 2 + 4 + 16),
    8: ("Q8_0", 32, 2 + 32),
    9: ("Q8_1", 32, 4 + 4 + 32),
    10: ("Q2_K", 256, 2 + 2 + _QK_K // 16 + _QK_K // 4),
    11: ("Q3_K", 256, 2 + _QK_K // 4 + _QK_K // 8 + 12),
    12: ("Q4_K", 256, 2 + 2 + _QK_K // 2 + 12),
    13: ("Q5_K", 256, 2 + 2 + _QK_K // 2 + _QK_K // 8 + 12),
    14: ("Q6_K", 256, 2 + _QK_K // 2 + _QK_K // 4 + _QK_K // 16),
    15: ("Q8_K", 256, 4 + _QK_K + _QK_K // 8),
    16: ("IQ2_XXS", 256, 2 + _QK_K // 4),
    17: ("IQ2_XS", 256, 2 + _QK_K // 4 + _QK_K // 32),
    18: ("IQ3_XXS", 256, 2 + _QK_K // 4 + _QK_K // 8),
    19: ("IQ1_S", 256, 2 + _QK_K // 8 + _QK_K // 16),
    20: ("IQ4_NL", 32, 2 + 16),
    21: ("IQ3_S", 256, 2 + _QK_K // 4 + _QK_K // 8 + _QK_K // 32 + 4),
    22: ("IQ2_S", 256, 2 + _QK_K // 4 + _QK_K // 16),
    23: ("IQ4_XS", 256, 2 + 2 + _QK_K // 2 + _QK_K // 64),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, _QK_K // 8 + _QK_K // 16 + _QK_K // 32),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 2 + 4 * 13),
    35: ("TQ2_0", 256, 2 + 64),
    39: ("MXFP4", 32, 1 + 16),
    40: ("NVFP4", 64, 4 + 32),
    41: ("Q1_0", 128, 2 + 16),
}  # fmt: skip

# GGUF metadata value types (gguf.h enum gguf_type): id -> fixed size in bytes (None: string/array).
_GGUF_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


# Smallest encodings (gguf.h / ggml/src/gguf.cpp): a key/value pair is a u64 key length, a u32 value
# type and at least a 1-byte value; a tensor info is a u64 name length, u32 n_dims, u32 type, u64 offset.
_MIN_KV_BYTES = 8 + 4 + 1
_MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8
_MIN_ITEM_BYTES = {_GGUF_STRING: 8, _GGUF_ARRAY: 4 + 8}  # a string's u64 length; an array's type + count


class _Cursor:
    """Sequential reads over a ByteReader that never pass the end of the header.

    The parser keeps :attr:`floor`, a lower bound on where the tensor-info section ends, from what it
    has read so far (counts, array lengths, string lengths, times the smallest encoding of what is
    still to come). A read fetches up to that bound at once, so requests stay few (a tokenizer of
    128k strings takes ~15) and none reaches the data section that follows the header.
    """

    def __init__(self, read: ByteReader, *, origin: str) -> None:
        self.read, self.origin = read, origin
        self.buffer, self.start, self.pos, self.floor = b"", 0, 0, 0

    def expect(self, at_least: int) -> None:
        """At least ``at_least`` more header bytes follow the current position."""
        self.floor = max(self.floor, self.pos + at_least)

    def take(self, n: int) -> bytes:
        end = self.pos + n
        have = self.start + len(self.buffer)
        if end > have:
            more = self.read(have, max(end, self.floor) - have)
            if len(more) < end - have:
                raise InvalidInput(f"{self.origin}: GGUF header ends early (at byte {have + len(more):,})")
            self.buffer = self.buffer[self.pos - self.start :] + more  # drop what was parsed
            self.start = self.pos
        out = self.buffer[self.pos - self.start : end - self.start]
        self.pos = end
        return out

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self, *, rest: int = 0) -> str:
        """A GGUF string; ``rest``: header bytes known to follow it."""
        n = self.u64()
        self.expect(n + rest)
        return self.take(n).decode("utf-8", errors="replace")


def gguf_tensors(read: ByteReader, *, origin: str) -> list[TensorInfo]:
    """The tensors listed in a GGUF file's header; metadata values are skipped, not kept.
    Only header bytes are read: never a byte of the data section (see :class:`_Cursor`)."""
    cur = _Cursor(read, origin=origin)
    cur.expect(4 + 4 + 8 + 8)  # magic, version, tensor count, metadata count
    if cur.take(4) != GGUF_MAGIC:
        raise InvalidInput(f"{origin}: not a GGUF file (no 'GGUF' magic)")
    version = cur.u32()
    if version < 2:  # v1 used 32-bit counts; llama.cpp has refused it since 2023 (gguf.cpp)
        raise InvalidInput(f"{origin}: GGUF version {version} is not supported; expected 2 or 3")
    n_tensors, n_kv = cur.u64(), cur.u64()
    infos = n_tensors * _MIN_TENSOR_INFO_BYTES
    for i in range(n_kv):
        rest = (n_kv - i - 1) * _MIN_KV_BYTES + infos  # after this pair
        cur.expect(_MIN_KV_BYTES + rest)
        cur.string(rest=4 + 1 + rest)
        _skip_gguf_value(cur, cur.u32(), rest=rest)
    tensors = []
    for j in range(n_tensors):
        cur.expect((n_tensors - j) * _MIN_TENSOR_INFO_BYTES)
        tensors.append(_gguf_tensor(cur, rest=(n_tensors - j - 1) * _MIN_TENSOR_INFO_BYTES))
    return tensors


def _skip_gguf_value(cur: _Cursor, kind: int, *, rest: int) -> None:
    """Skip one metadata value; ``rest``: header bytes known to follow it."""
    if kind in _GGUF_SCALARS:
        cur.take(_GGUF_SCALARS[kind])
    elif kind == _GGUF_STRING:
        cur.string(rest=rest)
    elif kind == _GGUF_ARRAY:
        item, count = cur.u32(), cur.u64()
        if item in _GGUF_SCALARS:
            cur.expect(_GGUF_SCALARS[item] * count + rest)
            cur.take(_GGUF_SCALARS[item] * count)
            return
        per = _MIN_ITEM_BYTES.get(item)
        if per is None:
            raise InvalidInput(f"{cur.origin}: GGUF metadata array of type {item} is unknown")
        for k in range(count):
            after = (count - k - 1) * per + rest
            cur.expect(per + after)
            _skip_gguf_value(cur, item, rest=after)
    else:
        raise InvalidInput(f"{cur.origin}: GGUF metadata value type {kind} is unknown")


def _gguf_tensor(cur: _Cursor, *, rest: int) -> TensorInfo:
    name = cur.string(rest=4 + 4 + 8 + rest)
    n_dims = cur.u32()
    cur.expect(8 * n_dims + 4 + 8 + rest)
    shape = tuple(cur.u64() for _ in range(n_dims))  # ggml order: fastest-varying dimension first
    type_id = cur.u32()
    cur.u64()  # offset in the data section
    if type_id not in GGML_BLOCKS:
        raise InvalidInput(f"{cur.origin}: tensor {name!r} has ggml type {type_id}, which kvplan does not know")
    type_name, block, type_size = GGML_BLOCKS[type_id]
    elements = 1
    for d in shape:
        elements *= d
    return TensorInfo(name, type_name, shape, elements // block * type_size)


# ---- picking a GGUF file by its quantization tag ---------------------------------------------

# llama.cpp gguf-split names the parts of one model "<stem>-00001-of-00003.gguf"
# (tools/gguf-split/gguf-split.cpp split_path: "%s-%05d-of-%05d.gguf").
_GGUF_PART = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
# Quantization tags as llama.cpp's quantize tool and the usual repositories spell them (Q4_K_M,
# IQ2_XXS, Q8_0, UD-Q4_K_XL, BF16, F16, MXFP4_MOE): a token between '-', '.', '_'-free boundaries.
_GGUF_TAG = re.compile(r"(?:^|[-.])((?:UD-)?(?:I?Q\d+|TQ\d+)(?:_[A-Z0-9]+)*|BF16|F16|F32|MXFP4(?:_MOE)?)(?=[-.]|$)")


def gguf_stem(filename: str) -> str:
    """A GGUF file's checkpoint name: the path without ``.gguf`` and without a split part's suffix."""
    match = _GGUF_PART.match(filename)
    return match["stem"] if match else re.sub(r"\.gguf$", "", filename, flags=re.IGNORECASE)


def gguf_parts(filename: str, files: Iterable[str] | None = None) -> list[str]:
    """Every part of the (possibly split) GGUF checkpoint ``filename`` is one of, first to last."""
    match = _GGUF_PART.match(filename)
    if not match:
        return [filename]
    count = int(match["count"])
    names = [f"{match['stem']}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]
    if files is not None:
        listed = {f.lower(): f for f in files}
        names = [listed.get(n.lower(), n) for n in names]  # the repository's own spelling of each part
    return names


def gguf_tags(filename: str) -> list[str]:
    """The quantization tags a GGUF file name carries (``Qwen3-8B-Q4_K_M.gguf`` -> ``["Q4_K_M"]``)."""
    return _GGUF_TAG.findall(gguf_stem(filename.rsplit("/", 1)[-1]).upper())


def select_gguf(files: Iterable[str], wanted: str, *, origin: str) -> list[str]:
    """The parts of the one GGUF checkpoint in ``files`` that ``wanted`` names: a file name (``x.gguf``;
    a split's first part brings the others) or a quantization tag (``Q4_K_M``, case-insensitive, a
    whole token of the file name). No match, or several checkpoints, is an input error naming what
    the repository holds."""
    ggufs = sorted(f for f in files if f.lower().endswith(".gguf"))
    if wanted.lower().endswith(".gguf"):
        key = wanted.lower()
        hits = [f for f in ggufs if key in (f.lower(), f.rsplit("/", 1)[-1].lower())]
        if not hits:
            raise InvalidInput(f"{origin}: no file {wanted!r}; its GGUF files: {', '.join(ggufs) or 'none'}")
        return gguf_parts(hits[0], ggufs)
    groups: dict[str, list[str]] = {}
    for f in ggufs:
        tags = gguf_tags(f)
        # Unsloth's dynamic quants carry a "UD-" prefix (UD-Q4_K_XL): the tag without it names them too
        if wanted.upper() in tags or wanted.upper() in (t.removeprefix("UD-") for t in tags):
            groups.setdefault(gguf_stem(f), []).append(f)
    if len(groups) == 1:
        return gguf_parts(next(iter(groups.values()))[0], ggufs)
    if not groups:
        tags = sorted({t for f in ggufs for t in gguf_tags(f)})
        raise InvalidInput(
            f"{origin}: no GGUF file carries the tag {wanted!r}; tags available: {', '.join(tags) or 'none'} "
            "(or name a file with ':file.gguf')"
        )
    names = ", ".join(sorted(g[0] for g in groups.values()))
    raise InvalidInput(
        f"{origin}: the tag {wanted!r} names {len(groups)} GGUF checkpoints ({names}); name one with ':file.gguf'"
    )


# ---- which part of the model a tensor belongs to -------------------------------------------

_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks|blk|block|decoder_layers)\.(\d+)\.")
_VISION = ("vision", "visual", "multi_modal_projector", "mm_projector", "image_newline", "audio_tower", "mm.")
_EMBEDDING = ("embed_tokens", "word_embeddings", "wte.", "tok_embeddings", "token_embd")
_HEAD = ("lm_head", "embed_out")
_FINAL_NORM = ("model.norm.", "ln_f.", "final_layernorm", "output_norm", "norm_f.")
# Quantization side tensors: FP8 block scales (DeepSeek-V3 weight_scale_inv), compressed-tensors
# (weight_scale, input_scale), MXFP4 (gpt-oss *_scales), GPTQ/AWQ (scales, qzeros, g_idx).
_SCALE_SUFFIXES = ("_scale", "_scale_inv", "_scales", ".scales", ".qzeros", ".g_idx", "_zero_point")
# Replicated on every tensor-parallel rank (kvplan.params: norms, the router, MLA's kv_a/q_a projections,
# the shared-expert gate). Routers by name: HF ``mlp.gate.`` / ``block_sparse_moe.gate.`` / ``router``,
# GGUF ``ffn_gate_inp`` (llama.cpp src/llama-arch.cpp LLM_TENSOR_FFN_GATE_INP, _INP_SHEXP) and ``exp_probs_b``.
_REPLICATED = ("norm", "mlp.gate.", "block_sparse_moe.gate.", "router", "e_score_correction_bias", "kv_a_proj",
               "q_a_proj", "sinks", "shared_expert_gate", "ffn_gate_inp", "exp_probs_b")  # fmt: skip
_KV_PROJ = ("k_proj", "v_proj", "attn_k.", "attn_v.")


def _any_of(words: Iterable[str]) -> re.Pattern[str]:
    """One search for any of ``words`` (a 90k-tensor checkpoint is classified name by name)."""
    return re.compile("|".join(map(re.escape, words)))


_VISION_RE, _REPLICATED_RE = _any_of(_VISION), _any_of(_REPLICATED)


def tensor_role(name: str, *, num_layers: int) -> tuple[str, int | None]:
    """(role, layer): embedding, lm_head, final_norm, layer, mtp, vision or other."""
    lower = name.lower()
    if _VISION_RE.search(lower):
        return "vision", None
    if "mtp" in lower or "nextn" in lower:
        return "mtp", None
    match = _LAYER_RE.search(lower)
    if match:
        layer = int(match.group(1))
        # DeepSeek-V3 stores its MTP module as model.layers.61 of a 61-layer model.
        return ("layer", layer) if layer < num_layers else ("mtp", None)
    if any(e in lower for e in _EMBEDDING):
        return "embedding", None
    if any(h in lower for h in _HEAD) or lower == "output.weight":  # GGUF names the LM head "output"
        return "lm_head", None
    if any(n in lower for n in _FINAL_NORM) or lower in ("norm.weight", "model.norm.weight"):
        return "final_norm", None
    return "other", None


def is_scale(name: str) -> bool:
    return name.lower().endswith(_SCALE_SUFFIXES) or ".weight_scale" in name.lower()


# Routed experts, by name: HF per-expert ``mlp.experts.<e>.`` (Qwen-MoE, DeepSeek), fused ``mlp.experts.``
# tensors with a leading expert dimension (gpt-oss, transformers 5), Mixtral ``block_sparse_moe.experts.<e>.``,
# GGUF ``ffn_{gate,up,down}_exps`` (llama.cpp src/llama-arch.cpp LLM_TENSOR_FFN_*_EXPS). Shared experts
# (``shared_expert``/``shared_experts.``, GGUF ``_shexp``) are dense MLPs: they do not match.
_EXPERT_RE = re.compile(r"(?:^|\.)experts\.(?:(\d+)\.)?|_exps\.")
# The feed-forward block (dense MLP or shared experts): cut over the MLP's TP group (Sharding.mlp_tp).
_MLP = ("mlp.", "ffn", "feed_forward", "shared_expert", "block_sparse_moe")
_MLP_RE = _any_of(_MLP)


def tensor_group(name: str) -> str:
    """Which sharding group a decoder-layer tensor belongs to: expert, mlp or attention (the rest)."""
    lower = name.lower()
    if _EXPERT_RE.search(lower):
        return "expert"
    return "mlp" if _MLP_RE.search(lower) else "attention"


def _replicated(t: TensorInfo) -> bool:
    lower = t.name.lower()
    return len(t.shape) <= 1 and "bias" not in lower or _REPLICATED_RE.search(lower) is not None


def sharded_bytes(t: TensorInfo, spec: ModelSpec, *, role: str, sharding: object) -> int:
    """Bytes of ``t`` on the busiest rank of one pipeline stage, cut as ``sharding``
    (a :class:`kvplan.params.Sharding`) cuts the architecture count:

    - the LM head over ``vocab_tp``, the input embedding over ``embed_tp`` where given, else ``vocab_tp``
      (params.embedding_parts / head_parts);
    - norms, routers, MLA a-projections, sinks: whole on every rank;
    - K/V projections over ``attn_tp`` by ``max(1, kv // attn_tp)`` heads (params.attention_parts);
    - routed experts: rank 0 holds experts ``0 .. ceil(E / expert_ranks) - 1`` (vLLM fused_moe/layer.py
      determine_expert_map gives the remainder to the first ranks, as params.mlp_parts counts), each cut
      over ``expert_tp``; a fused tensor (leading expert dimension) keeps that share of its bytes;
    - dense MLPs and shared experts over ``mlp_tp``; everything else in a layer over ``attn_tp``.
    """
    kind, whole, expert = _cut_kind(t, role)
    return _Group(kind, whole, t.nbytes, 1, () if expert is None else (expert,)).bytes_on_rank(spec, sharding)


def _cut_kind(t: TensorInfo, role: str) -> tuple[str, bool, int | None]:
    """(how the tensor is cut, whether it stays whole within its group, its expert index if per-expert)."""
    if role == "embedding":
        return "embed", False, None
    if role == "lm_head":
        return "vocab", False, None
    if role == "layer":
        match = _EXPERT_RE.search(t.name.lower())
        if match:
            index = match.group(1)
            return ("expert" if index is not None else "fused"), _replicated(t), None if index is None else int(index)
    if role == "final_norm" or _replicated(t):
        return "whole", True, None
    if tensor_group(t.name) == "mlp":
        return "mlp", False, None
    return ("kv" if any(k in t.name.lower() for k in _KV_PROJ) else "attention"), False, None


@dataclass(frozen=True)
class _Group:
    """Tensors of one stage cut the same way with the same size: ``count`` of them (``experts``: the
    sorted expert index of each, for per-expert tensors). Grouping keeps a 90k-tensor checkpoint
    (DeepSeek-V3) to a few hundred sums per configuration."""

    kind: str  # embed, vocab, whole, expert, fused, mlp, kv, attention
    whole: bool  # within an expert: a per-tensor scale, not cut over expert_tp
    nbytes: int
    count: int
    experts: tuple[int, ...] = ()

    def bytes_on_rank(self, spec: ModelSpec, sh: object) -> int:
        n = self.nbytes
        if self.kind == "vocab":
            return self.count * _ceil(n, sh.vocab_tp)  # type: ignore[attr-defined]
        if self.kind == "embed":
            return self.count * _ceil(n, getattr(sh, "embed_tp", 0) or sh.vocab_tp)  # type: ignore[attr-defined]
        if self.kind == "whole":
            return self.count * n
        if self.kind in ("expert", "fused"):
            experts = spec.moe.num_experts if spec.moe is not None else 1
            held = _ceil(experts, sh.expert_ranks)  # type: ignore[attr-defined]  # on the busiest (first) rank
            cut = 1 if self.whole else sh.expert_tp  # type: ignore[attr-defined]
            if self.kind == "expert":  # one tensor per expert: rank 0 holds the first `held` of them
                return bisect_left(self.experts, held) * _ceil(n, cut)
            return self.count * _ceil(_ceil(n * held, experts), cut)
        if self.kind == "mlp":
            return self.count * _ceil(n, sh.mlp_tp)  # type: ignore[attr-defined]
        if self.kind == "kv":
            kv = spec.num_kv_heads
            kv_rank = max(1, kv // sh.attn_tp)  # type: ignore[attr-defined]  # KV heads replicate past tp = kv
            return self.count * _ceil(n * kv_rank, kv)
        return self.count * _ceil(n, sh.attn_tp)  # type: ignore[attr-defined]


def _ceil(n: int, d: int) -> int:
    return -(-n // d)


def _tensor_sharding(tp: int) -> object:
    """``kvplan.params.Sharding.tensor(tp)``, field for field; not imported, as kvplan.params reaches
    the catalog, which reaches this module (the import graph stays acyclic)."""
    from types import SimpleNamespace

    return SimpleNamespace(attn_tp=tp, mlp_tp=tp, expert_tp=tp, expert_ranks=1, vocab_tp=tp, embed_tp=0)


# ---- the weights source --------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointWeights:
    """Every tensor of a checkpoint as stored; a source of weight bytes for the memory terms.

    MTP (multi-token prediction) tensors are listed but not resident: vLLM loads them only as a
    speculative-decoding draft (vLLM main, vllm/model_executor/models/deepseek_v2.py load_weights skips
    ``get_spec_layer_idx_from_weight_name`` layers), so :meth:`bytes_per_stage` leaves them out.
    """

    source: str  # "Qwen/Qwen3-32B@<commit>" or a local path
    format: str  # "safetensors" or "gguf"
    files: int
    tensors: tuple[TensorInfo, ...]
    # Per-model work (roles, cut groups, nearest dtype) done once: plan sweeps call it per configuration.
    _memo: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    def bytes_by_dtype(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tensors:
            out[t.dtype] = out.get(t.dtype, 0) + t.nbytes
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    @property
    def label(self) -> str:
        """``checkpoint BF16`` or ``checkpoint F8_E4M3+BF16``: the dtypes holding 5%+ of the bytes."""
        total = self.total_bytes or 1
        main = [d for d, b in self.bytes_by_dtype().items() if b * 20 >= total][:3]
        return "checkpoint " + "+".join(main or ["(empty)"])

    def describe(self) -> str:
        files = f"{self.files} file" + ("s" if self.files != 1 else "")
        return f"{self.source} {self.format} headers ({files}, {len(self.tensors):,} tensors)"

    def roles(self, spec: ModelSpec) -> list[tuple[TensorInfo, str, int | None]]:
        """(tensor, role, layer) for every tensor; worked out once per layer count."""
        key = ("roles", spec.num_layers)
        if key not in self._memo:
            self._memo[key] = [(t, *tensor_role(t.name, num_layers=spec.num_layers)) for t in self.tensors]
        return self._memo[key]

    def _groups(self, spec: ModelSpec) -> list[tuple[str, int | None, _Group]]:
        """(role, layer, group): the resident tensors gathered by how they are cut (MTP left out)."""
        key = ("groups", spec.num_layers)
        if key not in self._memo:
            gathered: dict[tuple, list[int]] = {}
            for t, role, layer in self.roles(spec):
                if role == "mtp":
                    continue
                kind, whole, expert = _cut_kind(t, role)
                gathered.setdefault((role, layer, kind, whole, t.nbytes), []).append(-1 if expert is None else expert)
            self._memo[key] = [
                (role, layer, _Group(kind, whole, nbytes, len(ix), tuple(sorted(ix)) if kind == "expert" else ()))
                for (role, layer, kind, whole, nbytes), ix in gathered.items()
            ]
        return self._memo[key]

    def bytes_per_stage(
        self, spec: ModelSpec, *, tp: int = 1, pp: int = 1, sharding: object | None = None
    ) -> list[int]:
        """Bytes one GPU of each pipeline stage holds; the split of ``weight_bytes_per_stage``.

        Layers go to stages by their index (:func:`kvplan.spec.pipeline_stages`), the embedding to
        the first, the final norm and LM head to the last; ``sharding`` (a
        :class:`kvplan.params.Sharding`, default plain ``tp``) cuts each tensor (:func:`sharded_bytes`).
        """
        from kvplan.spec import pipeline_stages

        sh = sharding if sharding is not None else _tensor_sharding(tp)
        stages = pipeline_stages(spec.num_layers, pp)
        stage_of = {i: s for s, layers in enumerate(stages) for i in layers}
        out = [0] * len(stages)
        has_head = False
        for role, layer, group in self._groups(spec):
            has_head |= role == "lm_head"
            last = role in ("lm_head", "final_norm")
            stage = stage_of[layer] if role == "layer" else (len(stages) - 1 if last else 0)
            out[stage] += group.bytes_on_rank(spec, sh)
        if pp > 1 and not has_head:  # tied head: the last stage keeps its own copy (params.head_parts)
            out[-1] += sum(g.bytes_on_rank(spec, sh) for role, _, g in self._groups(spec) if role == "embedding")
        return out


def dominant_weight_dtype(weights: CheckpointWeights, spec: ModelSpec) -> str:
    """The kvplan weights dtype closest to how the decoder's matrices are stored (once per model)."""
    key = ("dtype", spec.num_layers, spec.dtype)
    if key not in weights._memo:
        weights._memo[key] = _dominant(weights, spec)
    return weights._memo[key]


def _dominant(weights: CheckpointWeights, spec: ModelSpec) -> str:
    by_kind: dict[str, int] = {}
    roles = weights.roles(spec)
    # NVFP4 (ModelOpt ``weight`` / compressed-tensors ``weight_packed``: two E2M1 values per uint8 byte) is told
    # from other uint8 layouts by its FP8 E4M3 block scale beside it (vLLM @7305c786 modelopt.py
    # ModelOptNvFp4LinearMethod.create_weights: weight uint8 [out, in / 2], weight_scale float8_e4m3fn [out, in / 16]).
    fp8_scaled = {t.name.rsplit(".", 1)[0] for t, _, _ in roles if t.dtype == "F8_E4M3" and is_scale(t.name)}
    for t, role, _ in roles:
        if role != "layer" or len(t.shape) < 2 or is_scale(t.name):
            continue
        if t.name.endswith("_blocks") and t.dtype == "U8":
            # gpt-oss stores its experts as MXFP4 *_blocks + *_scales and the rest in bf16: kvplan's
            # mxfp4 weights dtype is that layout (params.parts_bytes), whatever holds more bytes.
            return "mxfp4"
        nvfp4 = t.dtype == "U8" and t.name.rsplit(".", 1)[0] in fp8_scaled
        kind = "nvfp4" if nvfp4 else _KVPLAN_DTYPE.get(t.dtype, "bf16")
        by_kind[kind] = by_kind.get(kind, 0) + t.nbytes
    return max(by_kind, key=by_kind.__getitem__) if by_kind else spec.dtype


def stored_weight_dtypes(weights: CheckpointWeights, spec: ModelSpec) -> tuple[str, ...]:
    """kvplan weights dtypes naming how the decoder's matrices are stored, most exact first: the GGUF
    type itself where kvplan has it (``q4_k`` for a Q4_K file; engines that load GGUF types list
    them among their weights dtypes), then the nearest generic dtype (``int4``). A caller takes
    the first one its engine loads."""
    key = ("dtypes", spec.num_layers, spec.dtype)
    if key not in weights._memo:
        by_type: dict[str, int] = {}
        for t, role, _ in weights.roles(spec):
            if role == "layer" and len(t.shape) >= 2 and not is_scale(t.name):
                by_type[t.dtype] = by_type.get(t.dtype, 0) + t.nbytes
        top = max(by_type, key=by_type.__getitem__) if by_type else None
        exact = _GGML_KVPLAN.get(top or "")
        weights._memo[key] = tuple(dict.fromkeys([*([exact] if exact else []), dominant_weight_dtype(weights, spec)]))
    return weights._memo[key]


# GGUF types kvplan's units name exactly (units.WEIGHT_DTYPES: the same ggml-common.h block sizes).
_GGML_KVPLAN = {"Q8_0": "q8_0", "Q6_K": "q6_k", "Q5_K": "q5_k", "Q4_K": "q4_k", "Q4_0": "q4_0"}

# Storage dtype -> the nearest kvplan weights dtype (for the architecture count beside the header sum).
_KVPLAN_DTYPE = {
    "F32": "fp32", "F16": "fp16", "BF16": "bf16", "F8_E4M3": "fp8", "F8_E5M2": "fp8", "I8": "int8",
    "I32": "int4",  # GPTQ/AWQ pack eight 4-bit values per int32 (qweight)
    "Q8_0": "int8", "Q8_K": "int8", "MXFP4": "mxfp4",
    **{q: "int4" for q in ("Q4_0", "Q4_1", "Q4_K", "Q5_0", "Q5_1", "Q5_K", "Q6_K", "Q3_K", "Q2_K", "IQ4_NL",
                           "IQ4_XS", "IQ3_S", "IQ3_XXS", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_S", "IQ1_M")},
}  # fmt: skip


def _sum(tensors: Iterable[TensorInfo]) -> int:
    return sum(t.nbytes for t in tensors)


def local_reader(path: Path) -> ByteReader:
    """A ByteReader over a local file (only the asked bytes are read)."""

    def read(offset: int, length: int) -> bytes:
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                return fh.read(length)
        except OSError as exc:
            raise InvalidInput(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None

    return read

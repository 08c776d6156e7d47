"""Checkpoint weight formats: what ``quantization_config`` says, and bytes per stored weight.

A published checkpoint either ships its weights in the spec's ``dtype`` or in a quantized
format (:class:`~kvplan.spec.WeightFormat`): fp8 with 128 x 128 block scales (DeepSeek-V3),
MXFP4 on the routed experts (gpt-oss), NVFP4 (ModelOpt ``quant_algo: NVFP4``, compressed-tensors
``nvfp4-pack-quantized``), AWQ/GPTQ int4 with per-group scales and zero points,
compressed-tensors, bitsandbytes. :func:`storage` turns a spec and an optional ``--weights-dtype``
into the bytes one quantized weight takes, scales and zero points included, and says which
weights it applies to. The importer calls :func:`format_from_config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from kvplan.spec import MAX_SIZE, ModelSpec, WeightFormat
from kvplan.units import WEIGHT_DTYPES, DType, canonical_dtype, weight_dtype

# Bits of one stored value, before scales: e4m3/e5m2 and int8 are one byte; int4, MXFP4 and NVFP4
# (both e2m1) and NF4 are half a byte (two values packed per byte in every one of these formats).
VALUE_BITS = {"fp8": 8, "int8": 8, "int4": 4, "mxfp4": 4, "nvfp4": 4, "nf4": 4}
# NVFP4 (ModelOpt and compressed-tensors alike): one FP8 E4M3 scale per 16 values along the input
# (vLLM @7305c786 modelopt.py ModelOptNvFp4LinearMethod.create_weights: weight_scale float8_e4m3fn
# [out, in / group_size], group_size 16; compressed_tensors.py _is_fp4a4_nvfp4: group_size 16).
NVFP4_GROUP = 16


@dataclass(frozen=True)
class Storage:
    """How quantizable weights are stored: bytes per weight and which weights it covers."""

    dtype: DType  # exact bytes per quantized weight, scales and zero points included
    experts_only: bool  # True: only routed MoE experts are in this format (MXFP4 as gpt-oss ships it)
    label: str
    shipped: bool  # True: the published checkpoint's own format (no conversion at load)


def bytes_per_weight(fmt: WeightFormat) -> Fraction:
    """Value bits / 8 plus the scale and zero point of its group, spread over the group."""
    value = Fraction(VALUE_BITS.get(fmt.dtype, 8 * WEIGHT_DTYPES[fmt.dtype].bytes_per_element), 8)
    group = _weights_per_scale(fmt)
    if group is None:
        return value  # per-tensor or per-channel scales: a few bytes per matrix
    return value + (fmt.scale_bytes + Fraction(fmt.zero_point_bits, 8)) / group


def _weights_per_scale(fmt: WeightFormat) -> int | None:
    if fmt.block is not None:
        return fmt.block[0] * fmt.block[1]
    return fmt.group_size


def describe(fmt: WeightFormat) -> str:
    """``fp8, block 128x128, fp32 scales`` and the like."""
    scale = {4: "fp32", 2: "fp16", 1: "8-bit"}[fmt.scale_bytes] if fmt.scale_bytes in (1, 2, 4) else "?"
    if fmt.dtype == "nvfp4":
        scale = "fp8 e4m3"  # plus two fp32 per-tensor scales per matrix (weight_scale_2, input_scale)
    parts = [fmt.dtype if fmt.method in ("fp8", "mxfp4") else f"{fmt.dtype} {fmt.method}"]
    if fmt.scope == "experts":
        parts.append("routed experts only")
    if fmt.block is not None:
        parts.append(f"block {fmt.block[0]}x{fmt.block[1]}, {scale} scales")
    elif fmt.group_size is not None:
        parts.append(f"group {fmt.group_size}, {scale} scales")
    if fmt.zero_point_bits:
        parts.append(f"{fmt.zero_point_bits}-bit zero points")
    if fmt.unquantized:
        parts.append(f"16-bit: {', '.join(fmt.unquantized)}")
    return ", ".join(parts)


def shipped_dtype(spec: ModelSpec) -> str:
    """The weights dtype of the published checkpoint: its quantized format, else ``dtype``."""
    return spec.weights.dtype if spec.weights is not None else spec.dtype


def default_dtype(spec: ModelSpec, *, loads: tuple[str, ...]) -> str:
    """Weights as shipped when the engine loads that format (``loads``), else the 16-bit dtype a
    conversion gives (llama.cpp's convert_hf_to_gguf dequantizes fp8 checkpoints to 16 bit)."""
    shipped = shipped_dtype(spec)
    return shipped if shipped in loads else spec.dtype


def storage(spec: ModelSpec, name: str | None = None) -> Storage:
    """Bytes per quantizable weight for ``name`` (default: as shipped).

    Asking for the shipped value format (``fp8`` on DeepSeek-V3) gives the shipped layout, scales
    included: that is the checkpoint a user would load.
    """
    key = canonical_dtype(name) if name is not None else shipped_dtype(spec)
    fmt = spec.weights
    if fmt is not None and key == fmt.dtype:
        dtype = DType(fmt.dtype, bytes_per_weight(fmt), describe(fmt))
        return Storage(dtype, fmt.scope == "experts", f"{describe(fmt)} (as shipped)", shipped=True)
    return storage_for_name(key, shipped=fmt is None and key == spec.dtype)


def storage_for_name(name: str, *, shipped: bool = False) -> Storage:
    """A plain dtype name. MXFP4 as released covers the routed experts only (gpt-oss model card:
    "MXFP4 quantization of the MoE weights"); every other format covers all linear layers."""
    dtype = weight_dtype(name)
    return Storage(dtype, dtype.name == "mxfp4", dtype.name, shipped)


# ---- reading quantization_config -------------------------------------------------------------


def fold_quant_files(config: Any, folder: Path) -> Any:
    """config.json with the quantization file beside it folded in where config.json has none:
    ``quantization_config.json`` (as transformers reads it), else ModelOpt's ``hf_quant_config.json``
    (``{"producer": ..., "quantization": {"quant_algo": ...}}``, read as ``quant_method: modelopt``)."""
    from kvplan.files import read_json

    if not isinstance(config, dict) or "quantization_config" in config:
        return config
    quant, modelopt = folder / "quantization_config.json", folder / "hf_quant_config.json"
    if quant.is_file():
        return {**config, "quantization_config": read_json(quant)}
    if modelopt.is_file():
        data = read_json(modelopt)
        if isinstance(data, dict):
            return {**config, "quantization_config": {"quant_method": "modelopt", **data}}
    return config


def format_from_config(config: dict[str, Any]) -> tuple[WeightFormat | None, list[str]]:
    """The weight format a Hugging Face ``config.json`` declares, and notes on what was assumed.

    ``(None, [])`` when the checkpoint is not quantized; ``(None, [note])`` for a method kvplan
    does not model (the spec then keeps the unquantized dtype).
    """
    qc = config.get("quantization_config")
    if not isinstance(qc, dict):
        return None, []
    method = str(qc.get("quant_method", "")).lower().replace("_", "-")
    reader = _READERS.get(method)
    fmt, notes = reader(qc) if reader else (None, [])
    if fmt is None:
        return None, notes or [
            f"the checkpoint is quantized (quantization_config quant_method {method or 'unknown'!r}), a method "
            "kvplan does not model; the spec keeps the unquantized dtype, pass --weights-dtype to size it"
        ]
    repo = config.get("_name_or_path")
    if isinstance(repo, str) and repo.count("/") == 1:
        fmt = fmt.model_copy(update={"checkpoint": repo})
    shipped = (
        f"the checkpoint is quantized (quant_method {method!r}: {describe(fmt)}); recorded as the spec's "
        "weights, the default weight format for capacity and plan; --weights-dtype overrides it"
    )
    return fmt, [shipped, *notes]


def _fp8(qc: dict[str, Any]) -> tuple[WeightFormat | None, list[str]]:
    # DeepSeek-V3 / Kimi K2: {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]};
    # the scales are float32 weight_scale_inv tensors, one per block (transformers
    # integrations/finegrained_fp8.py: "weight_scale_inv: per-block weight scales - float32 (V3-style)").
    block = qc.get("weight_block_size")
    if block is not None and not (isinstance(block, list) and len(block) == 2 and all(_pos_int(b) for b in block)):
        return None, [f"quantization_config weight_block_size {block!r} is not [rows, cols]; weights left unquantized"]
    return WeightFormat(method="fp8", dtype="fp8", block=block, scale_bytes=4), []


def _mxfp4(qc: dict[str, Any]) -> tuple[WeightFormat | None, list[str]]:
    # gpt-oss config.json: {"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn",
    # "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}: the experts' *_blocks hold two
    # e2m1 values per byte, *_scales one e8m0 byte per 32 values (OCP MX v1.0).
    return WeightFormat(method="mxfp4", dtype="mxfp4", scope="experts", group_size=32, scale_bytes=1), []


def _awq(qc: dict[str, Any]) -> tuple[WeightFormat | None, list[str]]:
    # AutoAWQ: {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": true, "version": "gemm"}:
    # qweight packed int32, scales fp16 [in/group, out], qzeros packed with `bits` bits per group.
    bits = int(qc.get("bits", qc.get("w_bit", 4)))
    group = qc.get("group_size", qc.get("q_group_size", 128))
    zero = bits if qc.get("zero_point", True) else 0
    return _int_format("awq", bits, group, zero)


def _gptq(qc: dict[str, Any]) -> tuple[WeightFormat | None, list[str]]:
    # GPTQ (AutoGPTQ / GPTQModel): qweight, fp16 scales and packed qzeros per group, always stored even
    # when sym is true; group_size -1 means one scale per output channel.
    bits = int(qc.get("bits", 4))
    group = qc.get("group_size", 128)
    fmt, notes = _int_format("gptq", bits, group, bits)
    if qc.get("desc_act"):
        notes.append("GPTQ desc_act: the int32 g_idx per input row (under 0.1% of the weights) is not counted")
    return fmt, notes


def _int_format(method: str, bits: int, group: Any, zero_bits: int) -> tuple[WeightFormat | None, list[str]]:
    names = {8: "int8", 4: "int4"}
    if bits not in names:
        return None, [f"{method} with {bits}-bit weights is not modelled (4 or 8 bits); weights left unquantized"]
    size = int(group) if _pos_int(group) else None
    return WeightFormat(method=method, dtype=names[bits], group_size=size, scale_bytes=2, zero_point_bits=zero_bits), []


def _compressed_tensors(qc: dict[str, Any]) -> tuple[WeightFormat | None, list[str]]:
    # compressed-tensors (llm-compressor): config_groups.<group>.weights = {num_bits, type int|float,
    # strategy tensor|channel|group|block, group_size, block_structure, symmetric}; scales are stored in
    # the model's 16-bit dtype, zero points (asymmetric only) packed like the values in pack-quantized.
    groups = qc.get("config_groups") or {}
    first = next(iter(groups.values()), {}) if isinstance(groups, dict) else {}
    w = first.get("weights") if isinstance(first, dict) else None
    if not isinstance(w, dict):
        return None, ["compressed-tensors config without config_groups weights; weights left unquantized"]
    bits, kind = w.get("num_bits"), w.get("type", "int")
    if (bits, kind, w.get("strategy")) == (4, "float", "tensor_group"):
        return _nvfp4("compressed-tensors", w.get("group_size"), qc.get("ignore"))
    name = {(8, "float"): "fp8", (8, "int"): "int8", (4, "int"): "int4"}.get((bits, kind))
    if name is None:
        return None, [f"compressed-tensors {bits}-bit {kind} weights are not modelled; weights left unquantized"]
    strategy = w.get("strategy", "tensor")
    block = w.get("block_structure") if strategy == "block" else None
    group = w.get("group_size") if strategy == "group" else None
    zero = 0 if w.get("symmetric", True) else (bits if qc.get("format") == "pack-quantized" else 8)
    fmt = WeightFormat(method="compressed-tensors", dtype=name, block=block, group_size=group, scale_bytes=2,
                       zero_point_bits=zero)  # fmt: skip
    return fmt, []


def _modelopt(qc: dict[str, Any]) -> tuple[WeightFormat | None, list[str]]:
    # NVIDIA ModelOpt checkpoints: hf_quant_config.json {"quantization": {"quant_algo": "NVFP4", "group_size": 16,
    # "kv_cache_quant_algo": "FP8", "exclude_modules": ["lm_head", ...]}}, or the same keys flat in config.json's
    # quantization_config with quant_method "modelopt". vLLM @7305c786 modelopt.py reads both:
    # ModelOptNvFp4Config._from_config (quant_algo containing "NVFP4"; group_size default 16; exclude_modules).
    # transformers 5.24 registers no "modelopt" quantizer (quantizers/auto.py), so it is read as vLLM reads it.
    inner = qc.get("quantization") if isinstance(qc.get("quantization"), dict) else qc
    algo = str(inner.get("quant_algo") or "").upper()
    excluded = inner.get("exclude_modules")
    if algo == "NVFP4":
        return _nvfp4("modelopt", inner.get("group_size", NVFP4_GROUP), excluded)
    if algo == "FP8":  # per-tensor fp8 weights and activations (ModelOptFp8Config): 1 byte per weight
        return WeightFormat(method="modelopt", dtype="fp8"), []
    return None, [f"ModelOpt quant_algo {algo or 'unknown'!r} is not modelled (NVFP4, FP8); weights left unquantized"]


# Module names every kvplan count already keeps in 16 bit (kvplan.params: embeddings, the LM head and the
# MoE routers are never quantizable): excluding them changes nothing.
_ALWAYS_16BIT = ("lm_head", "embed", "router", "mlp.gate", "block_sparse_moe.gate", "vision", "visual", "mtp")


def _nvfp4(method: str, group: Any, excluded: Any) -> tuple[WeightFormat | None, list[str]]:
    """NVFP4: E2M1 values, one FP8 E4M3 scale per ``group`` (16) values, fp32 per-tensor scales; ``excluded`` the
    modules left unquantized (ModelOpt ``exclude_modules``, compressed-tensors ``ignore``)."""
    if group != NVFP4_GROUP:
        return None, [f"NVFP4 with group size {group!r} is not modelled (the format's group is 16); "
                      "weights left unquantized"]  # fmt: skip
    names = [str(m) for m in excluded] if isinstance(excluded, list) else []
    others = [m for m in names if not any(word in m.lower() for word in _ALWAYS_16BIT)]
    notes = []
    if others:
        notes.append(
            f"NVFP4 excluded modules {', '.join(others[:6])}{' ...' if len(others) > 6 else ''} stay 16-bit in the "
            "checkpoint; kvplan counts every decoder linear layer in NVFP4, so the weights term is low by them "
            "(the checkpoint's headers, where read, are exact)"
        )
    fmt = WeightFormat(method=method, dtype="nvfp4", group_size=NVFP4_GROUP, scale_bytes=1,
                       unquantized=[m for m in names if m not in others] or None)  # fmt: skip
    return fmt, notes


def _bitsandbytes(qc: dict[str, Any]) -> tuple[WeightFormat | None, list[str]]:
    # transformers BitsAndBytesConfig: load_in_4bit -> NF4/FP4 values, bitsandbytes blocksize 64 with an
    # fp32 absmax per block (double quantization: an 8-bit absmax plus an fp32 one per 256 blocks, the
    # latter not counted); load_in_8bit -> LLM.int8() int8 weights with one fp32 scale per row.
    if qc.get("load_in_4bit"):
        scale = 1 if qc.get("bnb_4bit_use_double_quant") else 4
        return WeightFormat(method="bitsandbytes", dtype="nf4", group_size=64, scale_bytes=scale), []
    if qc.get("load_in_8bit"):
        return WeightFormat(method="bitsandbytes", dtype="int8"), []
    return None, ["bitsandbytes config loads neither 4-bit nor 8-bit weights; weights left unquantized"]


def _pos_int(value: Any) -> bool:
    # Upper bound: kvplan.spec.Size, the largest dimension a spec accepts (a block or group beyond it is not a format).
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_SIZE


_READERS = {
    "fp8": _fp8,
    "mxfp4": _mxfp4,
    "modelopt": _modelopt,
    "awq": _awq,
    "gptq": _gptq,
    "compressed-tensors": _compressed_tensors,
    "bitsandbytes": _bitsandbytes,
}


def alternatives(spec: ModelSpec, *, current: str, loads: tuple[str, ...], online: tuple[str, ...]) -> list[str]:
    """Weight formats worth trying, ``current`` first: the checkpoint as shipped, then formats the
    engine makes itself from it (``online``) that store fewer bytes. Never a format no checkpoint or
    engine offers (an int4 AWQ/GPTQ repository is only known when the spec ships it)."""
    out = [current]
    shipped = shipped_dtype(spec)
    if shipped in loads:
        out.append(shipped)
    limit = storage(spec, shipped).dtype.bytes_per_element
    out += [w for w in online if storage(spec, w).dtype.bytes_per_element < limit]
    return list(dict.fromkeys(out))

"""Parsing of the lengths, sizes and dtypes users type, and the element sizes of every dtype.

Bytes stay Python ints everywhere; a dtype's size is a fraction (``numerator / denominator``
bytes per element) so that llama.cpp's block formats stay exact.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from kvplan.errors import InvalidInput

GIB = 1 << 30
MIB = 1 << 20

# Largest context kvplan accepts: 1Gi tokens. Longer is a typo, not a plan.
MAX_CONTEXT = 1 << 30
# Largest batch (concurrent sequences, users) kvplan accepts: 2^20. vLLM schedules at most
# max_num_seqs (default 1024 on big GPUs, vllm/engine/arg_utils.py get_batch_defaults) per replica;
# a million is far past any deployment and keeps batch x context x bytes exact and printable.
MAX_BATCH = 1 << 20

# No space inside a length: "4 k" is refused like "4kk" (surrounding spaces are fine).
_LENGTH_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)([kKmM]?)\s*$")


def parse_length(text: str | int) -> int:
    """``4096``, ``4k``, ``128K``, ``1M`` -> tokens (K = 1024, M = 1024**2)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = _LENGTH_RE.match(str(text))
        if not match:
            raise InvalidInput(
                f"invalid length {text!r}; expected a positive whole number of tokens like 4096, 4k, 128K or 1M"
            )
        number, suffix = match.groups()
        scale = {"": 1, "k": 1024, "m": 1024 * 1024}[suffix.lower()]
        exact = Fraction(number) * scale
        if exact.denominator != 1:
            raise InvalidInput(f"invalid length {text!r}; it is not a whole number of tokens")
        value = int(exact)
    if value <= 0 or value > MAX_CONTEXT:
        raise InvalidInput(f"invalid length {text!r}; expected between 1 and {MAX_CONTEXT} tokens (1024M)")
    return value


def parse_lengths(text: str) -> list[int]:
    """``4k,32k,128k`` -> ``[4096, 32768, 131072]`` (order kept, duplicates dropped)."""
    parts = split_list(text, "length list", example="4k,32k,128k")
    seen: dict[int, None] = {}
    for part in parts:
        seen[parse_length(part)] = None
    return list(seen)


def split_list(text: str, what: str, *, example: str) -> list[str]:
    """``a,b,c`` -> ``["a", "b", "c"]``; an empty item (``a,,b``, ``a,``, ``,a``) is refused, not skipped."""
    parts = [p.strip() for p in str(text).split(",")]
    if not all(parts):
        raise InvalidInput(f"invalid {what} {text!r}; an item is empty; expected e.g. {example}")
    return parts


def check_count(value: int, what: str, *, limit: int = MAX_BATCH) -> int:
    """A whole number of sequences (batch, users, ...) between 1 and ``limit``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise InvalidInput(f"invalid {what} {value!r}; expected a whole number between 1 and {limit:,}")
    return value


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*$")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}


def parse_size(text: str | int) -> int:
    """``63.5GiB``, ``512MiB``, ``8e9``, ``80GB`` -> bytes (GB = 1e9, GiB = 2**30)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = _SIZE_RE.match(str(text))
        unit = match.group(2).lower() if match else None
        if not match or unit not in _SIZE_UNITS:
            raise InvalidInput(
                f"invalid size {text!r}; expected a number of bytes with an optional unit "
                "(B, KB, MB, GB, KiB, MiB, GiB, TiB), e.g. 63.5GiB, 512MiB or 8e9"
            )
        value = math.floor(Fraction(match.group(1)) * _SIZE_UNITS[unit])
    if value < 0 or value > 1 << 60:
        raise InvalidInput(f"invalid size {text!r}; expected between 0 and 1 EiB")
    return value


@dataclass(frozen=True)
class DType:
    """A storage format: ``bytes_per_element`` is exact (q8_0 is 34 bytes per 32 values)."""

    name: str
    bytes_per_element: Fraction
    note: str = ""

    def nbytes(self, elements: int) -> int:
        """Bytes for ``elements`` values stored in this format, rounded up to a whole byte."""
        num, den = self.bytes_per_element.numerator, self.bytes_per_element.denominator
        return -(-elements * num // den)  # integer ceil: exact, and no Fraction arithmetic


# KV-cache formats. Sources: IEEE/OCP FP8 (e4m3, e5m2 are 1 byte); llama.cpp ggml-common.h
# block_q8_0 = fp16 scale + 32 int8 (34 B / 32), block_q4_0 = fp16 scale + 16 B of nibbles (18 B / 32).
KV_DTYPES: dict[str, DType] = {
    "fp32": DType("fp32", Fraction(4)),
    "bf16": DType("bf16", Fraction(2)),
    "fp16": DType("fp16", Fraction(2)),
    "fp8": DType("fp8", Fraction(1), "fp8_e4m3"),
    "fp8_e4m3": DType("fp8_e4m3", Fraction(1)),
    "fp8_e5m2": DType("fp8_e5m2", Fraction(1)),
    "int8": DType("int8", Fraction(1)),
    "int4": DType("int4", Fraction(1, 2)),
    "q8_0": DType("q8_0", Fraction(34, 32), "llama.cpp block of 32: fp16 scale + 32 x int8"),
    "q4_0": DType("q4_0", Fraction(18, 32), "llama.cpp block of 32: fp16 scale + 32 x 4 bit"),
    # 4-bit float (E2M1) KV caches, two values per uint8 byte plus one 8-bit scale per 16 values: 1/2 + 1/16 = 9/16
    # byte per value. The engine-neutral figure; each engine's own rounding is in its cache_plan (engines/).
    # nvfp4: FP8 E4M3 block scales (vLLM utils/torch_utils.py nvfp4_kv_cache_full_dim "fp4 data + fp8 block
    # scales" @0024350; TensorRT-LLM resource_manager.py _get_static_cache_size_layer_components).
    "nvfp4": DType("nvfp4", Fraction(9, 16), "NVFP4: 16 x E2M1 + one FP8 E4M3 scale per block of 16"),
    # fp4_e2m1: SGLang's --kv-cache-dtype fp4_e2m1, an 8-bit exponent scale per block of 16 (sglang
    # docs/advanced_features/quantized_kv_cache.md @03cd2ec, "FP4 Format"; mem_cache/memory_pool.py
    # MHATokenToKVPoolFP4 scale buffers of uint8 [tokens, heads x head_dim / 16]).
    "fp4_e2m1": DType("fp4_e2m1", Fraction(9, 16), "SGLang FP4: 16 x E2M1 + one 8-bit exponent scale"),
}

FP4_KV_DTYPES = ("nvfp4", "fp4_e2m1")  # the 4-bit float KV caches: engine- and GPU-specific (engines/*.py)

# Weight formats. int4 is GPTQ/AWQ style: 4-bit values plus, per group of 128 weights, an fp16
# scale and a packed 4-bit zero point -> 0.5 + (2 + 0.5)/128 = 0.51953125 bytes per weight.
INT4_GROUP_SIZE = 128
WEIGHT_DTYPES: dict[str, DType] = {
    "fp32": DType("fp32", Fraction(4)),
    "bf16": DType("bf16", Fraction(2)),
    "fp16": DType("fp16", Fraction(2)),
    "fp8": DType("fp8", Fraction(1), "per-tensor scales, negligible"),
    "int8": DType("int8", Fraction(1), "per-channel scales, negligible"),
    "mxfp4": DType("mxfp4", Fraction(17, 32), "OCP MX: 32 x 4-bit + one 8-bit scale (gpt-oss experts)"),
    # NVFP4 (ModelOpt quant_algo NVFP4): two E2M1 values per uint8 byte plus one FP8 E4M3 scale per 16 values
    # along the input (vLLM modelopt.py ModelOptNvFp4LinearMethod.create_weights: weight uint8 [out, in / 2],
    # weight_scale float8_e4m3fn [out, in / group_size], group_size 16) -> 1/2 + 1/16 = 9/16 byte per weight.
    # The two fp32 per-tensor scales per linear (weight_scale_2, input_scale) are a few bytes per matrix.
    "nvfp4": DType("nvfp4", Fraction(9, 16), "NVFP4: 16 x E2M1 + one FP8 E4M3 scale, plus fp32 per-tensor scales"),
    "int4": DType(
        "int4",
        Fraction(1, 2) + Fraction(5, 2) / INT4_GROUP_SIZE,
        "4-bit + fp16 scale and 4-bit zero per group of 128",
    ),
    # bitsandbytes 4-bit (transformers BitsAndBytesConfig defaults: bnb_4bit_use_double_quant False;
    # bitsandbytes Linear4bit blocksize 64): 4-bit values + one fp32 absmax per 64 weights.
    "nf4": DType("nf4", Fraction(1, 2) + Fraction(4, 64), "bitsandbytes NF4: fp32 absmax per block of 64"),
    # GGUF weight types for llama.cpp, exact block sizes from ggml-common.h: block_q8_0 34 B / 32,
    # block_q4_0 18 B / 32, block_q4_K 144 B / 256, block_q5_K 176 B / 256, block_q6_K 210 B / 256.
    "q8_0": DType("q8_0", Fraction(34, 32), "GGUF block of 32: fp16 scale + 32 x int8"),
    "q6_k": DType("q6_k", Fraction(210, 256), "GGUF super-block of 256, 6.5625 bits"),
    "q5_k": DType("q5_k", Fraction(176, 256), "GGUF super-block of 256, 5.5 bits"),
    "q4_k": DType("q4_k", Fraction(144, 256), "GGUF super-block of 256, 4.5 bits"),
    "q4_0": DType("q4_0", Fraction(18, 32), "GGUF block of 32: fp16 scale + 32 x 4 bit"),
}

_ALIASES = {
    "float32": "fp32",
    "float": "fp32",
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "f16": "fp16",
    "f32": "fp32",
    "float8_e4m3fn": "fp8_e4m3",
    "e4m3": "fp8_e4m3",
    "e5m2": "fp8_e5m2",
    "float8_e5m2": "fp8_e5m2",
}


def canonical_dtype(name: str) -> str:
    """Normalise spellings (``bfloat16`` -> ``bf16``); unknown names pass through unchanged."""
    key = str(name).strip().lower().replace("-", "_")
    return _ALIASES.get(key, key)


def _lookup(name: str, table: dict[str, DType], what: str) -> DType:
    key = canonical_dtype(name)
    if key not in table:
        raise InvalidInput(f"unknown {what} {name!r}; expected one of {', '.join(table)}")
    return table[key]


def kv_dtype(name: str) -> DType:
    """The KV-cache format called ``name`` (``bf16``, ``fp8``, ``q4_0``, ...)."""
    return _lookup(name, KV_DTYPES, "KV-cache dtype")


def weight_dtype(name: str) -> DType:
    """The weight format called ``name`` (``bf16``, ``fp8``, ``int4``, ...)."""
    return _lookup(name, WEIGHT_DTYPES, "weights dtype")

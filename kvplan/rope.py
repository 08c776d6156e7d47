"""RoPE scaling: inverse frequencies, attention factor and the context length each method implies.

Pure Python (``math`` only). The formulas follow Hugging Face ``transformers``
``modeling_rope_utils`` (5.x, the ``rope_parameters`` API) as summarised in
``shared/reference/models.md`` section 3; the tests compare every method against
``transformers.modeling_rope_utils.ROPE_INIT_FUNCTIONS`` to a relative 1e-6.

Notation: ``d`` is the rotary dimension (head_dim x partial_rotary_factor, or
``qk_rope_head_dim`` for MLA), ``base`` is ``rope_theta``, the default inverse frequency of
pair ``i`` is ``base ** (-2i / d)`` for ``i = 0 .. d/2 - 1``, and ``L0`` is the pre-extension
context (``original_max_position_embeddings``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from kvplan.errors import InvalidInput
from kvplan.spec import ModelSpec

Method = Literal["default", "linear", "ntk", "dynamic", "yarn", "llama3", "longrope"]
METHODS: tuple[str, ...] = ("default", "linear", "ntk", "dynamic", "yarn", "llama3", "longrope")

# YaRN defaults: beta_fast 32, beta_slow 1 (YaRN paper section 3.2, alpha = 1 and beta = 32 for
# Llama; transformers' _compute_yarn_parameters uses the same defaults).
YARN_BETA_FAST = 32.0
YARN_BETA_SLOW = 1.0
# Llama 3.1 low/high frequency factors: Meta llama-models apply_scaling (models.md 1.5).
LLAMA3_LOW_FREQ_FACTOR = 1.0
LLAMA3_HIGH_FREQ_FACTOR = 4.0
# transformers' linear_ramp_factor widens a zero-width ramp by this much to avoid dividing by 0.
_RAMP_EPS = 0.001
# A frequency counts as "kept" / "interpolated" when its ratio to the original is within this.
_CLASSIFY_RTOL = 1e-9


@dataclass(frozen=True)
class RopeConfig:
    """What the rotary embedding of a model depends on (one attention kind)."""

    rotary_dim: int
    theta: float
    max_position_embeddings: int
    scaling: dict[str, Any] | None = None
    family: str | None = None  # engines special-case some families (vLLM: gemma3)

    @property
    def method(self) -> str:
        if not self.scaling:
            return "default"
        kind = str(self.scaling.get("rope_type", self.scaling.get("type", "default")))
        return "longrope" if kind == "su" else kind  # "su" is the April-2024 Phi-3 name of longrope

    @property
    def original_context(self) -> int:
        """L0: the pre-extension context (the scaling block's, else max_position_embeddings)."""
        if self.scaling and self.scaling.get("original_max_position_embeddings"):
            return int(self.scaling["original_max_position_embeddings"])
        return self.max_position_embeddings


@dataclass(frozen=True)
class RopeResult:
    """Frequencies of one method; counts are frequency pairs (each rotates 2 of the d dims)."""

    method: str
    rotary_dim: int
    theta: float
    effective_theta: float  # the base after NTK / dynamic NTK; theta otherwise
    factor: float
    original_context: int
    max_context: int  # factor x L0: the length the method is built for
    attention_factor: float
    inv_freq: tuple[float, ...]
    kept_pairs: int  # frequency unchanged (extrapolated)
    interpolated_pairs: int  # divided by the full factor
    blended_pairs: int  # anything in between
    evaluated_at: int | None = None  # dynamic NTK / longrope: the length the frequencies are for
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def wavelengths(self) -> tuple[float, ...]:
        """Tokens per full rotation of each pair: 2 pi / inv_freq."""
        return tuple(2 * math.pi / f for f in self.inv_freq)


def default_inv_freq(theta: float, rotary_dim: int) -> list[float]:
    """``theta ** (-2i / d)`` for i = 0 .. d/2 - 1 (RoFormer, Su et al. 2021)."""
    return [1.0 / theta ** (2 * i / rotary_dim) for i in range(rotary_dim // 2)]


def pairs_longer_than(theta: float, rotary_dim: int, length: int) -> int:
    """Default frequency pairs whose wavelength ``2 pi theta^(2i/d)`` exceeds ``length`` tokens.

    These pairs never complete a rotation within ``length``; YaRN's "NTK-by-parts" argument
    (paper section 3.2) is that they must be interpolated, not extrapolated.
    """
    return sum(1 for f in default_inv_freq(theta, rotary_dim) if 2 * math.pi / f > length)


def rope_config(spec: ModelSpec, *, scaling: dict[str, Any] | None = None, keep_scaling: bool = True) -> RopeConfig:
    """The rotary config of ``spec``'s full-attention layers; ``scaling`` replaces the model's block."""
    if spec.rope is None:
        raise InvalidInput(f"model {spec.name!r} has no RoPE (rope: null); RoPE scaling does not apply")
    mla = [k for k in spec.layers.kinds.values() if k.type == "mla"]
    # MLA rotates only the decoupled qk_rope_head_dim part (DeepSeek-V2 report 2.1.3; HF
    # DeepseekV3Config sets head_dim = qk_rope_head_dim for its rotary embedding).
    dim = mla[0].qk_rope_head_dim if mla else int(spec.head_dim * spec.rope.partial_rotary_factor)
    block = scaling if scaling is not None else (spec.rope.scaling if keep_scaling else None)
    return RopeConfig(dim, spec.rope.theta, spec.max_position_embeddings, block, spec.family)


def frequencies(config: RopeConfig, *, seq_len: int | None = None, partial: bool = False) -> RopeResult:
    """Inverse frequencies and attention factor of ``config``'s method.

    ``seq_len`` matters for dynamic NTK (the base grows with the length) and LongRoPE (long
    factors beyond L0, short factors within); by default they are evaluated at ``max_context``.
    A LongRoPE block without its factor lists raises, unless ``partial``: then the result has the
    (exact) attention factor and an empty ``inv_freq``.
    """
    method = config.method
    scaling = config.scaling or {}
    if method == "longrope" and not partial and scaling.get("long_factor") is None:
        raise InvalidInput("longrope frequencies need the block's long_factor/short_factor lists; this config has none")
    if config.rotary_dim < 2 or config.rotary_dim % 2:
        raise InvalidInput(f"rotary dimension {config.rotary_dim!r} must be an even number of at least 2")
    handler = _HANDLERS.get(method)
    if handler is None:
        raise InvalidInput(f"unknown RoPE method {method!r}; expected one of {', '.join(METHODS)}")
    return handler(config, seq_len)


def _factor(config: RopeConfig, *, required: bool = True) -> float:
    value = (config.scaling or {}).get("factor")
    if value is None:
        if required:
            raise InvalidInput(f"RoPE method {config.method!r} needs a 'factor' in its scaling block")
        return 1.0
    value = float(value)
    if not 1.0 <= value < math.inf:
        raise InvalidInput(f"invalid RoPE factor {value!r}; expected a number of at least 1")
    return value


def _result(
    config: RopeConfig,
    inv_freq: list[float],
    *,
    factor: float,
    attention_factor: float = 1.0,
    effective_theta: float | None = None,
    original: int | None = None,
    evaluated_at: int | None = None,
    notes: tuple[str, ...] = (),
) -> RopeResult:
    base = default_inv_freq(config.theta, config.rotary_dim)
    kept, interp, blended = _classify(base, inv_freq, factor)
    l0 = original if original is not None else config.original_context
    return RopeResult(
        method=config.method,
        rotary_dim=config.rotary_dim,
        theta=config.theta,
        effective_theta=effective_theta if effective_theta is not None else config.theta,
        factor=factor,
        original_context=l0,
        max_context=int(round(factor * l0)),
        attention_factor=float(attention_factor),
        inv_freq=tuple(inv_freq),
        kept_pairs=kept,
        interpolated_pairs=interp,
        blended_pairs=blended,
        evaluated_at=evaluated_at,
        notes=notes,
    )


def _classify(base: list[float], scaled: list[float], factor: float) -> tuple[int, int, int]:
    if not scaled:
        return 0, 0, 0
    kept = interp = 0
    for b, s in zip(base, scaled, strict=True):
        ratio = s / b
        if math.isclose(ratio, 1.0, rel_tol=_CLASSIFY_RTOL):
            kept += 1
        elif factor > 1 and math.isclose(ratio, 1.0 / factor, rel_tol=_CLASSIFY_RTOL):
            interp += 1
    return kept, interp, len(base) - kept - interp


def _default(config: RopeConfig, seq_len: int | None) -> RopeResult:
    return _result(config, default_inv_freq(config.theta, config.rotary_dim), factor=1.0)


def _linear(config: RopeConfig, seq_len: int | None) -> RopeResult:
    # Position Interpolation (arXiv 2306.15595): positions / factor == inv_freq / factor.
    factor = _factor(config)
    inv = [f / factor for f in default_inv_freq(config.theta, config.rotary_dim)]
    return _result(config, inv, factor=factor)


def ntk_theta(theta: float, rotary_dim: int, scale: float) -> float:
    """NTK-aware base: ``theta * scale ** (d / (d - 2))`` (YaRN paper eq. for b')."""
    return theta * scale ** (rotary_dim / (rotary_dim - 2))


def _ntk(config: RopeConfig, seq_len: int | None) -> RopeResult:
    factor = _factor(config)
    theta = ntk_theta(config.theta, config.rotary_dim, factor)
    note = ("static NTK is a new rope_theta; transformers has no rope_type for it (it was 'ntk' before 4.x)",)
    return _result(config, default_inv_freq(theta, config.rotary_dim), factor=factor, effective_theta=theta, notes=note)


def _dynamic(config: RopeConfig, seq_len: int | None) -> RopeResult:
    # transformers _compute_dynamic_ntk_parameters: L_max is config.max_position_embeddings, and the
    # length never goes below it, so at or below L_max the frequencies are the default ones.
    factor = _factor(config)
    l_max = config.max_position_embeddings
    length = max(seq_len if seq_len is not None else int(round(factor * l_max)), l_max)
    theta = ntk_theta(config.theta, config.rotary_dim, factor * length / l_max - (factor - 1))
    inv = default_inv_freq(theta, config.rotary_dim)
    return _result(config, inv, factor=factor, effective_theta=theta, original=l_max, evaluated_at=length)


def _yarn_factor(config: RopeConfig) -> float:
    scaling = config.scaling or {}
    if scaling.get("factor") is None:
        # transformers 5.x: with no factor, max_position_embeddings / original_max_position_embeddings.
        return config.max_position_embeddings / config.original_context
    return _factor(config)


def yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    """``0.1 * mscale * ln(scale) + 1`` (1 when scale <= 1); YaRN paper eq. 22 with DeepSeek's mscale."""
    if scale <= 1:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def _yarn_attention(scaling: dict[str, Any], factor: float) -> float:
    if scaling.get("attention_factor") is not None:
        return float(scaling["attention_factor"])
    mscale, mscale_all = scaling.get("mscale"), scaling.get("mscale_all_dim")
    if mscale and mscale_all:
        return yarn_mscale(factor, float(mscale)) / yarn_mscale(factor, float(mscale_all))
    return yarn_mscale(factor)


def yarn_correction_range(
    rotary_dim: int, theta: float, original: int, *, beta_fast: float, beta_slow: float, truncate: bool
) -> tuple[float, float]:
    """Pair indices where the ramp starts (``beta_fast`` rotations over L0) and ends (``beta_slow``)."""

    def dim_for(rotations: float) -> float:
        return rotary_dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    low, high = dim_for(beta_fast), dim_for(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    return max(low, 0), min(high, rotary_dim - 1)


def _yarn(config: RopeConfig, seq_len: int | None) -> RopeResult:
    scaling = config.scaling or {}
    factor = _yarn_factor(config)
    original = config.original_context
    low, high = yarn_correction_range(
        config.rotary_dim,
        config.theta,
        original,
        beta_fast=float(scaling.get("beta_fast") or YARN_BETA_FAST),
        beta_slow=float(scaling.get("beta_slow") or YARN_BETA_SLOW),
        truncate=bool(scaling.get("truncate", True)),
    )
    if low == high:
        high += _RAMP_EPS
    inv = []
    for i, f in enumerate(default_inv_freq(config.theta, config.rotary_dim)):
        ramp = min(max((i - low) / (high - low), 0.0), 1.0)  # 0: keep, 1: interpolate
        inv.append(f / factor * ramp + f * (1 - ramp))
    return _result(config, inv, factor=factor, attention_factor=_yarn_attention(scaling, factor))


def _llama3(config: RopeConfig, seq_len: int | None) -> RopeResult:
    scaling = config.scaling or {}
    factor = _factor(config)
    low_ff = float(scaling.get("low_freq_factor", LLAMA3_LOW_FREQ_FACTOR))
    high_ff = float(scaling.get("high_freq_factor", LLAMA3_HIGH_FREQ_FACTOR))
    original = config.original_context
    low_wavelen, high_wavelen = original / low_ff, original / high_ff
    inv = []
    for f in default_inv_freq(config.theta, config.rotary_dim):
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            inv.append(f)
        elif wavelen > low_wavelen:
            inv.append(f / factor)
        else:
            smooth = (original / wavelen - low_ff) / (high_ff - low_ff)
            inv.append((1 - smooth) * f / factor + smooth * f)
    return _result(config, inv, factor=factor)


def _longrope(config: RopeConfig, seq_len: int | None) -> RopeResult:
    scaling = config.scaling or {}
    pairs = config.rotary_dim // 2
    lists = {k: scaling.get(k) for k in ("long_factor", "short_factor")}
    missing = all(v is None for v in lists.values())
    for key, values in ({} if missing else lists).items():
        if not isinstance(values, list) or len(values) != pairs:
            got = len(values) if isinstance(values, list) else values
            raise InvalidInput(f"longrope needs '{key}' as a list of {pairs} numbers (rotary_dim / 2); got {got!r}")
    original = config.original_context
    factor = config.max_position_embeddings / original
    if scaling.get("factor") is not None:
        factor = float(scaling["factor"])
    if scaling.get("attention_factor") is not None:
        attention = float(scaling["attention_factor"])
    elif factor <= 1.0:
        attention = 1.0
    else:
        # LongRoPE / Phi-3: sqrt(1 + ln(factor) / ln(L0)) (transformers _compute_longrope_parameters).
        attention = math.sqrt(1 + math.log(factor) / math.log(original))
    length = seq_len if seq_len is not None else config.max_position_embeddings
    if missing:
        note = ("the spec has no long_factor/short_factor lists: frequencies unknown, attention factor exact",)
        return _result(config, [], factor=factor, attention_factor=attention, evaluated_at=length, notes=note)
    ext = lists["long_factor"] if length > original else lists["short_factor"]
    inv = [1.0 / (float(e) * config.theta ** (2 * i / config.rotary_dim)) for i, e in enumerate(ext)]
    which = "long_factor" if length > original else "short_factor"
    note = (f"frequencies at {length} tokens use {which}; the model switches sets at {original} tokens",)
    return _result(config, inv, factor=factor, attention_factor=attention, evaluated_at=length, notes=note)


_HANDLERS = {
    "default": _default,
    "linear": _linear,
    "ntk": _ntk,
    "dynamic": _dynamic,
    "yarn": _yarn,
    "llama3": _llama3,
    "longrope": _longrope,
}


# ---- building a scaling block ----------------------------------------------------------------


def _check_yarn_options(**values: float | None) -> None:
    """YaRN's betas count rotations (log(L0 / (beta x 2 pi)) needs beta > 0: transformers
    _compute_yarn_parameters find_correction_dim); mscale >= 0 keeps 0.1 x mscale x ln(s) + 1 >= 1;
    an attention factor scales logits and must be a positive number."""
    for name, value in values.items():
        if value is None:
            continue
        low_ok = value >= 0 if name.startswith("mscale") else value > 0
        if not (math.isfinite(value) and low_ok):
            bound = "at least 0" if name.startswith("mscale") else "above 0"
            raise InvalidInput(f"invalid YaRN {name} {value!r}; expected a finite number {bound}")


def scaling_block(
    method: str,
    factor: float,
    original: int,
    *,
    beta_fast: float | None = None,
    beta_slow: float | None = None,
    mscale: float | None = None,
    mscale_all_dim: float | None = None,
    truncate: bool | None = None,
    attention_factor: float | None = None,
    low_freq_factor: float = LLAMA3_LOW_FREQ_FACTOR,
    high_freq_factor: float = LLAMA3_HIGH_FREQ_FACTOR,
    existing: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The ``rope_scaling`` block (HF spelling) that stretches ``original`` tokens by ``factor``.

    ``default`` and ``ntk`` return None (static NTK is a new ``rope_theta``, no block). LongRoPE
    needs searched per-pair factor lists; they are taken from ``existing`` (the model's own block).
    """
    if not 1 <= factor < math.inf:
        raise InvalidInput(f"invalid RoPE factor {factor!r}; expected a finite number of at least 1")
    if method not in METHODS:
        raise InvalidInput(f"unknown RoPE method {method!r}; expected one of {', '.join(METHODS)}")
    _check_yarn_options(beta_fast=beta_fast, beta_slow=beta_slow, mscale=mscale, mscale_all_dim=mscale_all_dim,
                        attention_factor=attention_factor)  # fmt: skip
    if method in ("default", "ntk"):
        return None
    if method in ("linear", "dynamic"):
        return {"rope_type": method, "factor": factor}
    if method == "llama3":
        return {
            "rope_type": "llama3",
            "factor": factor,
            "low_freq_factor": low_freq_factor,
            "high_freq_factor": high_freq_factor,
            "original_max_position_embeddings": original,
        }
    if method == "yarn":
        block: dict[str, Any] = {"rope_type": "yarn", "factor": factor, "original_max_position_embeddings": original}
        extras = {
            "beta_fast": beta_fast,
            "beta_slow": beta_slow,
            "mscale": mscale,
            "mscale_all_dim": mscale_all_dim,
            "truncate": truncate,
            "attention_factor": attention_factor,
        }
        block.update({k: v for k, v in extras.items() if v is not None})
        return block
    return _longrope_block(factor, original, existing)


def _longrope_block(factor: float, original: int, existing: dict[str, Any] | None) -> dict[str, Any]:
    kind = existing and existing.get("rope_type", existing.get("type"))
    if kind not in ("longrope", "su"):
        raise InvalidInput(
            "longrope needs per-frequency long_factor/short_factor lists found by LongRoPE's search; "
            "kvplan cannot make them up. Use a model whose config has them (e.g. phi-3-mini-128k)"
        )
    block = {k: v for k, v in existing.items() if k != "type"}
    block["rope_type"] = "longrope"
    block["factor"] = factor
    block["original_max_position_embeddings"] = original
    return block


# ---- how long a config lets engines go ---------------------------------------------------------


def engine_max_context(config: RopeConfig) -> dict[str, int]:
    """The maximum length each engine derives from ``max_position_embeddings`` + the scaling block.

    * transformers: ``max_position_embeddings`` as written; it derives nothing from rope_scaling.
    * vLLM (vllm-project/vllm ``vllm/config/model.py`` ``_get_and_verify_max_len`` @ 0052a5b8):
      for rope types other than su/longrope/llama3, ``max_len *= factor`` where max_len starts at
      ``max_position_embeddings``, or at ``original_max_position_embeddings`` for yarn; gemma3 is
      skipped (its max_position_embeddings is already scaled). For longrope the default
      ``max_model_len`` is ``original_max_position_embeddings`` (Phi-3 keeps it at the top level
      of config.json) unless the user asks for more.
    * SGLang (sgl-project/sglang ``python/sglang/srt/utils/hf_transformers_utils.py``
      ``get_context_length`` @ 2aa2e2d0): ``max_position_embeddings * factor``, where factor is 1
      when the block has ``original_max_position_embeddings`` or is llama3.
    """
    return {
        "transformers": config.max_position_embeddings,
        "vllm": _vllm_max_len(config),
        "sglang": _sglang_max_len(config),
    }


def _vllm_max_len(config: RopeConfig) -> int:
    scaling, method = config.scaling, config.method
    derived: float = config.max_position_embeddings
    if scaling and "gemma3" not in (config.family or "") and method not in ("longrope", "llama3"):
        if method == "yarn":
            derived = float(scaling.get("original_max_position_embeddings", derived))
        derived *= float(scaling.get("factor", 1.0))
    if method == "longrope" and scaling:
        return int(scaling.get("original_max_position_embeddings", derived))
    return int(derived)


def _sglang_max_len(config: RopeConfig) -> int:
    scaling = config.scaling
    factor = 1.0
    if scaling:
        factor = float(scaling.get("factor", 1))
        if "original_max_position_embeddings" in scaling or config.method == "llama3":
            factor = 1.0
    return int(factor * config.max_position_embeddings)


def suggested_max_position_embeddings(method: str, original: int, new: int) -> int:
    """The ``max_position_embeddings`` to write next to the new block so every engine derives ``new``.

    linear / dynamic keep L0 (vLLM and SGLang multiply it by the factor; dynamic NTK in
    transformers measures growth against it); yarn, llama3, longrope and a static-NTK base need
    the new length written out (SGLang and vLLM's llama3/longrope rules take it as is).
    """
    return original if method in ("linear", "dynamic") else new


@dataclass(frozen=True)
class Extension:
    """A model stretched by one method: frequencies, the config patch and what engines derive."""

    result: RopeResult
    config_patch: dict[str, Any]
    engines: dict[str, int]


def extend(
    spec: ModelSpec,
    method: str,
    factor: float,
    *,
    original: int | None = None,
    seq_len: int | None = None,
    **options: Any,
) -> Extension:
    """Stretch ``spec``'s RoPE by ``factor`` from ``original`` tokens (default: its pre-extension context)."""
    l0 = original or spec.original_max_position_embeddings
    if method == "default":
        factor = 1.0
    if not 1 <= factor < math.inf:
        raise InvalidInput(f"invalid RoPE factor {factor!r}; expected a finite number of at least 1")
    new = int(round(factor * l0))
    existing = spec.rope.scaling if spec.rope else None
    if method == "yarn" and existing and existing.get("rope_type", existing.get("type")) == "yarn":
        # Re-stretching a YaRN model keeps its own betas / mscale / truncate unless overridden.
        for key in ("beta_fast", "beta_slow", "mscale", "mscale_all_dim", "truncate"):
            if options.get(key) is None and key in existing:
                options[key] = existing[key]
    block = scaling_block(method, factor, l0, existing=existing, **options)
    max_pos = suggested_max_position_embeddings(method, l0, new)
    base = rope_config(spec, keep_scaling=False)
    config = RopeConfig(base.rotary_dim, base.theta, max_pos, block, spec.family)
    if method == "ntk":
        # Static NTK: the block is empty and the base changes; evaluate with a factor-carrying block.
        result = frequencies(RopeConfig(base.rotary_dim, base.theta, l0, {"rope_type": "ntk", "factor": factor}))
        patch: dict[str, Any] = {"max_position_embeddings": new, "rope_theta": result.effective_theta}
        patch["rope_scaling"] = None
    else:
        result = frequencies(config, seq_len=seq_len)
        patch = {"max_position_embeddings": max_pos, "rope_scaling": block}
    engines = engine_max_context(RopeConfig(base.rotary_dim, base.theta, patch["max_position_embeddings"], block))
    return Extension(result, patch, engines)


def current(spec: ModelSpec, *, seq_len: int | None = None) -> Extension:
    """What the model's own scaling block does (``default`` when it has none)."""
    config = rope_config(spec)
    result = frequencies(config, seq_len=seq_len, partial=True)
    if "gemma3" in (spec.family or "") and config.scaling:
        # Gemma 3's max_position_embeddings is already the scaled length (vLLM skips the factor for
        # gemma3 for this reason); the factor applies to the global layers' rope_theta only.
        note = (
            "gemma3: max_position_embeddings is already the scaled length (vLLM does not multiply; the SGLang "
            "figure is its generic rule, a Gemma-specific override was not checked); local layers keep their base"
        )
        result = replace(result, max_context=spec.max_position_embeddings, notes=(*result.notes, note))
    patch = {"max_position_embeddings": spec.max_position_embeddings, "rope_scaling": config.scaling}
    return Extension(result, patch, engine_max_context(config))

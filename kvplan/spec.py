"""The model spec: architecture facts, one pydantic schema for YAML in and JSON out.

A spec describes an architecture, not a checkpoint. Layers are described once per *kind*
(``full``, ``sliding``, ``chunked``, ``mla``, ``recurrent``) and laid out over the depth by
``layers.pattern`` (repeated with its period) or an explicit ``layers.types`` list, so an
80-layer model never needs 80 entries. Everything derived (the kind of each layer, KV
heads and head sizes per layer, parameter counts) is computed here, in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from kvplan.units import WEIGHT_DTYPES, canonical_dtype

# Upper bounds far beyond any real model (the largest have ~200 layers, 256K vocab, 1M context):
# they turn a typo like `num_layers: 1e12` into a clear error instead of a hang.
LayerCount = Annotated[int, Field(gt=0, le=100_000)]
MAX_SIZE = 1 << 24  # any dimension of a model (heads, widths, blocks); 16.7M is far past every real one
Size = Annotated[int, Field(gt=0, le=MAX_SIZE)]
Tokens = Annotated[int, Field(gt=0, le=1 << 30)]


class _Strict(BaseModel):
    """User-written YAML: unknown keys are errors, values are facts (frozen)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


LayerType = Literal["full", "sliding", "chunked", "mla", "recurrent", "none", "cross"]
RecurrentVariant = Literal["mamba", "mamba2", "gated_deltanet", "lightning"]
# Variants with a separate SSM (temporal) state beside a conv state, and the dtypes engines keep it in (vLLM
# vllm/config/cache.py MambaDType "float32" / "float16" and the model's bf16; SGLang configs/mamba_utils.py dtype_map).
SSM_STATE_VARIANTS = ("mamba", "mamba2", "gated_deltanet")
SSM_STATE_DTYPES = ("fp32", "bf16", "fp16")


class LayerKind(_Strict):
    """What one kind of layer caches. Sizes left out inherit the model's."""

    type: LayerType = "full"
    window: Tokens | None = Field(None, description="sliding: tokens a query sees (incl. itself)")
    chunk: Tokens | None = Field(None, description="chunked: attention chunk size (Llama 4 style)")
    num_kv_heads: Size | None = None
    head_dim: Size | None = Field(None, description="K head size; default the model's")
    v_head_dim: Size | None = Field(None, description="V head size when it differs from K")
    rope_theta: float | None = Field(None, gt=0, description="per-kind RoPE base (Gemma 3 local layers)")
    use_rope: bool = Field(True, description="False: no rotary embedding on this kind (Llama 4 global layers)")
    # MLA (DeepSeek V2/V3, Kimi K2): one latent per token, shared by every head.
    kv_lora_rank: Size | None = None
    q_lora_rank: Size | None = None
    qk_nope_head_dim: Size | None = None
    qk_rope_head_dim: Size | None = None
    # Recurrent layers (Mamba, Mamba2, Gated DeltaNet, MiniMax lightning attention): a fixed state per sequence.
    variant: RecurrentVariant | None = None
    d_inner: Size | None = Field(None, description="mamba: expanded inner size")
    d_state: Size | None = Field(None, description="mamba: SSM state size")
    d_conv: Size | None = Field(None, description="mamba / deltanet: conv kernel width")
    dt_rank: Size | None = None
    n_groups: Size | None = Field(None, description="mamba2: B/C groups")
    n_heads: Size | None = Field(None, description="mamba2 heads / deltanet value heads / lightning heads")
    n_k_heads: Size | None = Field(None, description="deltanet key heads")
    head_k_dim: Size | None = None
    head_v_dim: Size | None = None
    state_dtype: str | None = Field(None, description="dtype of the recurrent state; default the model's")
    # The SSM (temporal) state alone, as the checkpoint's config states it: Nemotron-H's mamba_ssm_cache_dtype,
    # Qwen3.5's text_config mamba_ssm_dtype (kvplan.hf). None: the config states none. The conv state keeps
    # state_dtype (else the model's). Whether an engine honours it is the engine's rule (kvplan.engines,
    # Engine.model_as_run); the ideal layout (kvplan.memory) does.
    ssm_state_dtype: str | None = Field(
        None, description="SSM state only (mamba, mamba2, gated_deltanet): fp32/bf16/fp16"
    )
    scan_chunk: Size | None = Field(None, description="mamba2: SSD scan chunk size (config chunk_size); default 256")
    # DeepSeek-V3.2 / GLM-5 sparse attention (DSA): a lightning indexer keeps one key of
    # index_head_dim per token per layer besides the MLA latent (transformers cache_utils.DynamicIndexedLayer).
    index_head_dim: Size | None = Field(None, description="indexer key cache per token (DSA)")
    index_n_heads: Size | None = Field(None, description="indexer query heads (DSA): size its weights, cache nothing")
    index_topk: Size | None = Field(None, description="keys the indexer selects for each query's attention (DSA)")
    # The indexer key cache's format as the engine keeps it (Engine.model_as_run; not a checkpoint field): None, fp8
    # values with a float32 scale per 128 (every engine's default); "fp4", E2M1 values two a byte with a UE8M0 scale
    # per 32 (TensorRT-LLM's opt-in sparse_attention_config.indexer_k_dtype, kvplan.memory.dsa_index_key_bytes).
    index_key_dtype: Literal["fp4"] | None = Field(None, description="indexer key cache format as run: fp4 (DSA)")
    # Gemma 3n / Gemma 4 style KV sharing: the layer attends with the K/V of an earlier layer of
    # the same kind and stores none of its own (transformers kv_sharing_modes "reuse").
    kv_shared: bool = Field(False, description="attends with an earlier layer's K/V; caches nothing itself")
    # Nemotron-H style blocks: a layer is its token mixer alone (NemotronHBlock: one norm, one mixer), and
    # the feed-forward sits in layers of its own (kind type none). False: no MLP or MoE in this kind's layers.
    mlp: bool = Field(True, description="False: layers of this kind have no feed-forward block (Nemotron-H M, *)")
    # Falcon-H1: attention and a Mamba2 mixer side by side in every layer (FalconH1DecoderLayer), so one
    # layer caches K/V per token AND keeps a recurrent state per sequence. The second mixer is written as
    # a recurrent kind nested here: {type: full, parallel: {type: recurrent, variant: mamba2, ...}}.
    parallel: LayerKind | None = Field(None, description="a recurrent mixer beside this attention (Falcon-H1)")
    ssm_norm: bool = Field(True, description="mamba2: gated RMSNorm before out_proj (Falcon-H1 mamba_rms_norm)")
    # Nemotron-NAS (DeciLM) block_configs attention "replace_with_linear": one hidden x hidden linear
    # stands where attention was; it mixes no tokens and caches nothing.
    linear_replacement: bool = Field(False, description="none: a hidden x hidden linear replaces attention")
    # Llama 3.2 Vision (mllama) cross-attention layers: K/V of the vision tokens, computed once per image
    # and held for the whole request, whatever its length (transformers MllamaTextCrossAttention).
    cross_tokens: Size | None = Field(None, description="cross: K/V entries a request holds (its vision tokens)")

    @model_validator(mode="after")
    def _fields_match_type(self) -> LayerKind:
        need = {
            "sliding": ["window"],
            "chunked": ["chunk"],
            "mla": ["kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim"],
            "recurrent": ["variant"],
            "cross": ["cross_tokens"],
        }.get(self.type, [])
        missing = [name for name in need if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.type!r} layer needs {', '.join(missing)}")
        if self.type != "sliding" and self.window is not None:
            raise ValueError(f"'window' only applies to sliding layers, not {self.type!r}")
        if self.type != "chunked" and self.chunk is not None:
            raise ValueError(f"'chunk' only applies to chunked layers, not {self.type!r}")
        if self.type == "recurrent":
            self._check_recurrent()
        if self.ssm_state_dtype is not None:
            self._check_ssm_state_dtype()
        if self.index_head_dim is not None and self.type not in ("full", "mla"):
            raise ValueError(f"'index_head_dim' only applies to full or mla layers, not {self.type!r}")
        if self.index_n_heads is not None and self.index_head_dim is None:
            raise ValueError("'index_n_heads' needs the indexer's 'index_head_dim'")
        if self.index_topk is not None and self.index_head_dim is None:
            raise ValueError("'index_topk' needs the indexer's 'index_head_dim'")
        if self.index_key_dtype is not None and self.index_head_dim is None:
            raise ValueError("'index_key_dtype' needs the indexer's 'index_head_dim'")
        if self.kv_shared and self.type not in ("full", "sliding", "chunked", "mla"):
            raise ValueError(f"'kv_shared' only applies to attention layers, not {self.type!r}")
        if self.parallel is not None:
            self._check_parallel(self.parallel)
        if self.scan_chunk is not None and self.variant != "mamba2":
            raise ValueError("'scan_chunk' only applies to recurrent mamba2 layers")
        if not self.ssm_norm and self.variant != "mamba2":
            raise ValueError("'ssm_norm' only applies to recurrent mamba2 layers")
        if self.type != "cross" and self.cross_tokens is not None:
            raise ValueError(f"'cross_tokens' only applies to cross layers, not {self.type!r}")
        if self.linear_replacement and self.type != "none":
            raise ValueError(f"'linear_replacement' only applies to 'none' layers, not {self.type!r}")
        return self

    def _check_parallel(self, other: LayerKind) -> None:
        if self.type not in ("full", "sliding", "chunked") or self.kv_shared:
            raise ValueError(f"'parallel' only applies to attention layers that cache K/V, not {self.type!r}")
        if other.type != "recurrent" or other.parallel is not None:
            raise ValueError("'parallel' must be a recurrent kind (type: recurrent, with its variant and sizes)")
        if not other.mlp:
            raise ValueError("'mlp' belongs on the attention kind, not on its parallel mixer")

    def _check_ssm_state_dtype(self) -> None:
        if self.variant not in SSM_STATE_VARIANTS:
            raise ValueError("'ssm_state_dtype' only applies to recurrent mamba, mamba2 and gated_deltanet layers")
        if canonical_dtype(self.ssm_state_dtype) not in SSM_STATE_DTYPES:
            raise ValueError(
                f"invalid ssm_state_dtype {self.ssm_state_dtype!r}; expected one of {', '.join(SSM_STATE_DTYPES)}"
            )

    def _check_recurrent(self) -> None:
        need = {
            "mamba": ["d_inner", "d_state", "d_conv"],
            "mamba2": ["d_inner", "d_state", "d_conv", "n_groups", "n_heads"],
            "gated_deltanet": ["n_heads", "n_k_heads", "head_k_dim", "head_v_dim", "d_conv"],
            # MiniMax-01 / M1 lightning attention: one K^T V matrix [head_k_dim, head_v_dim] per head, no conv
            "lightning": ["n_heads", "head_k_dim", "head_v_dim"],
        }[self.variant]
        missing = [name for name in need if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a recurrent {self.variant!r} layer needs {', '.join(missing)}")


LayerKind.model_rebuild()  # ``parallel`` nests a LayerKind


class Layers(_Strict):
    """Which kind each layer is: a repeating ``pattern`` or an explicit ``types`` list."""

    kinds: dict[str, LayerKind] = Field(default_factory=lambda: {"full": LayerKind()})
    pattern: list[str] | None = Field(None, description="kind names repeated over the depth")
    types: list[str] | None = Field(None, description="one kind name per layer")

    @model_validator(mode="after")
    def _names_known(self) -> Layers:
        if self.pattern is not None and self.types is not None:
            raise ValueError("give either layers.pattern or layers.types, not both")
        for listed in (self.pattern, self.types):
            if listed is not None and not listed:
                raise ValueError("layers.pattern / layers.types must not be empty")
            for name in listed or []:
                if name not in self.kinds:
                    known = ", ".join(self.kinds)
                    raise ValueError(f"unknown layer kind {name!r}; defined kinds are: {known}")
        if self.pattern is None and self.types is None and len(self.kinds) != 1:
            raise ValueError("with more than one layer kind, give layers.pattern or layers.types")
        return self


class MoE(_Strict):
    """Mixture of experts. Every expert is resident in memory; only ``experts_per_token`` run."""

    num_experts: Size
    experts_per_token: Size
    expert_intermediate_size: Size
    num_shared_experts: int = Field(0, ge=0, le=1 << 16)
    shared_intermediate_size: Size | None = Field(
        None, description="size of the shared expert(s) together; default num_shared * expert size"
    )
    shared_expert_gate: bool = Field(False, description="qwen2_moe: a 1-wide sigmoid gate on the shared expert")
    first_dense_layers: int = Field(0, ge=0, le=100_000, description="DeepSeek first_k_dense_replace")
    dense_layers: list[Annotated[int, Field(ge=0)]] = Field(
        # a Python callable, not the builtin ``list``: pydantic reads the factory's signature, and a builtin's is
        # parsed from text by the tokenizer, whose pattern compiles on first use (~3 ms of every command's start)
        default_factory=lambda: [],
        description="other layers with a dense MLP",
    )
    router_bias: bool = False
    expert_bias: bool = Field(False, description="gpt-oss: biases on the expert projections")

    @model_validator(mode="after")
    def _topk(self) -> MoE:
        if self.experts_per_token > self.num_experts:
            raise ValueError(f"experts_per_token ({self.experts_per_token}) exceeds num_experts ({self.num_experts})")
        return self

    @property
    def shared_size(self) -> int:
        if self.num_shared_experts == 0:
            return 0
        return self.shared_intermediate_size or self.num_shared_experts * self.expert_intermediate_size


class Rope(_Strict):
    """Rotary embedding: base, fraction of head_dim rotated, and the HF ``rope_scaling`` block."""

    theta: float = Field(10000.0, gt=0)
    partial_rotary_factor: float = Field(1.0, gt=0, le=1)
    scaling: dict[str, Any] | None = Field(None, description="as Hugging Face writes rope_scaling")

    @field_validator("scaling")
    @classmethod
    def _scaling_type(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        kind = value.get("rope_type", value.get("type"))
        if kind is None:
            raise ValueError("rope.scaling needs 'rope_type' (or the older 'type')")
        return value


class ParamLayout(_Strict):
    """Small facts that only matter for counting parameters exactly."""

    mlp: Literal["gated", "plain"] = Field("gated", description="gated: gate+up+down (SwiGLU); plain: up+down")
    attention_bias: Literal["none", "qkv", "all"] = "none"
    mlp_bias: bool = False
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    norms_per_layer: int = Field(2, ge=0, le=16)
    norms_follow_blocks: bool = Field(
        False,
        description="DeciLM: the input norm exists only with attention (or its linear stand-in), "
        "the post-attention norm only with an MLP",
    )
    qk_norm: bool = Field(False, description="per-head RMSNorm on q and k (Qwen3, Gemma 3)")
    attention_sinks: bool = Field(False, description="gpt-oss: one learned logit per head, no KV")
    attention_output_gate: bool = Field(
        False, description="Qwen3-Next: q_proj also emits a sigmoid gate as wide as the attention output"
    )
    # Gemma 3n (transformers modeling_gemma3n.py): per-layer embeddings (PLE), AltUp and LAuReL.
    per_layer_input_size: Size | None = Field(
        None, description="Gemma 3n PLE: per-layer embedding width (hidden_size_per_layer_input)"
    )
    per_layer_vocab_size: Size | None = Field(None, description="Gemma 3n PLE: vocab_size_per_layer_input")
    altup_inputs: int = Field(1, ge=1, le=64, description="Gemma 3n AltUp: parallel hidden streams (1: no AltUp)")
    laurel_rank: Size | None = Field(None, description="Gemma 3n LAuReL: rank of the low-rank residual")
    extra_params: int = Field(
        0, ge=0, le=1 << 50, description="resident params outside the decoder (vision tower, MTP)"
    )
    extra_params_note: str | None = None


QuantMethod = Literal["fp8", "mxfp4", "modelopt", "awq", "gptq", "compressed-tensors", "bitsandbytes"]


class WeightFormat(_Strict):
    """How the published checkpoint stores its weights when it is not plain ``dtype``.

    Read from Hugging Face ``quantization_config`` (:mod:`kvplan.quant`). Bytes per quantized
    weight = value bits / 8 + (``scale_bytes`` + ``zero_point_bits`` / 8) per scale group, a group
    being a ``block`` (rows x cols, fp8 block-scaled) or ``group_size`` weights along the input.
    """

    method: QuantMethod
    dtype: str = Field(description="value format, a kvplan weights dtype: fp8, int8, int4, mxfp4, nvfp4, nf4")
    scope: Literal["linear", "experts"] = Field(
        "linear", description="linear: every decoder linear layer; experts: routed MoE experts only"
    )
    block: list[Size] | None = Field(None, description="fp8 weight_block_size [rows, cols]: one scale per block")
    group_size: Size | None = Field(None, description="weights per scale along the input dimension")
    scale_bytes: int = Field(4, ge=1, le=4, description="bytes of one scale (fp32 4, fp16/bf16 2, e8m0 1)")
    zero_point_bits: int = Field(0, ge=0, le=32, description="bits of one zero point per group (0: symmetric)")
    checkpoint: str | None = Field(None, description="the repository that ships this format")
    unquantized: list[str] | None = Field(None, description="modules the checkpoint leaves 16-bit (exclude_modules)")

    @field_validator("dtype")
    @classmethod
    def _value_dtype(cls, value: str) -> str:
        key = canonical_dtype(value)
        if key not in WEIGHT_DTYPES:
            raise ValueError(f"unknown weights dtype {value!r}; expected one of {', '.join(WEIGHT_DTYPES)}")
        return key

    @field_validator("block")
    @classmethod
    def _two_dims(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(value) != 2:
            raise ValueError(f"block must be [rows, cols], got {value!r}")
        return value


class ModelSpec(_Strict):
    """One model architecture. Field names follow Hugging Face where one exists."""

    name: str = Field(min_length=1)
    source: str = Field(min_length=1, description="where the facts come from (HF repo id, paper, URL)")
    display_name: str | None = None
    family: str | None = None
    notes: str | None = None
    hidden_size: Size
    vocab_size: Size
    num_layers: LayerCount
    num_attention_heads: Size
    num_kv_heads: Size
    head_dim: Size = Field(description="explicit; never assumed to be hidden/heads")
    v_head_dim: Size | None = None
    intermediate_size: Size | None = Field(None, description="dense MLP width (with mlp_widths: the widest)")
    mlp_widths: list[Annotated[int, Field(ge=0, le=1 << 24)]] | None = Field(
        None, description="per-layer dense MLP width, 0 where a layer has no MLP (Nemotron-NAS block_configs)"
    )
    tie_word_embeddings: bool = False
    dtype: str = "bf16"
    weights: WeightFormat | None = Field(
        None, description="the published checkpoint's quantized format; null: weights ship in dtype"
    )
    max_position_embeddings: Tokens
    rope: Rope | None = Field(default_factory=Rope, description="null for models without RoPE")
    layers: Layers = Field(default_factory=Layers)
    moe: MoE | None = None
    params: ParamLayout = Field(default_factory=ParamLayout)
    published_params: PositiveInt | None = Field(None, description="total parameters as the owner states it")
    published_params_source: str | None = None

    @field_validator("dtype")
    @classmethod
    def _dtype_known(cls, value: str) -> str:
        key = canonical_dtype(value)
        if key not in WEIGHT_DTYPES:
            raise ValueError(f"unknown dtype {value!r}; expected one of {', '.join(WEIGHT_DTYPES)}")
        return key

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if (self.params.per_layer_input_size is None) != (self.params.per_layer_vocab_size is None):
            raise ValueError("params.per_layer_input_size and params.per_layer_vocab_size go together (Gemma 3n PLE)")
        if self.num_attention_heads % self.num_kv_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) is not divisible by "
                f"num_kv_heads ({self.num_kv_heads})"
            )
        if self.layers.types is not None and len(self.layers.types) != self.num_layers:
            raise ValueError(f"layers.types lists {len(self.layers.types)} layers but num_layers is {self.num_layers}")
        if self.layers.pattern is not None and len(self.layers.pattern) > self.num_layers:
            raise ValueError(
                f"layers.pattern has {len(self.layers.pattern)} entries, more than num_layers ({self.num_layers})"
            )
        for name, kind in self.layers.kinds.items():
            heads = kind.num_kv_heads or self.num_kv_heads
            if kind.type in ("full", "sliding", "chunked") and self.num_attention_heads % heads:
                raise ValueError(
                    f"layer kind {name!r}: num_attention_heads ({self.num_attention_heads}) is not "
                    f"divisible by its num_kv_heads ({heads})"
                )
        if self.moe is None and self.intermediate_size is None:
            raise ValueError("a dense model needs intermediate_size")
        if self.mlp_widths is not None:
            self._check_mlp_widths()
        if self.moe is not None:
            dense = self.dense_mlp_layers
            if dense and self.intermediate_size is None:
                raise ValueError("MoE dense layers need intermediate_size")
            bad = [i for i in self.moe.dense_layers if i >= self.num_layers]
            if bad:
                raise ValueError(f"moe.dense_layers {bad} are beyond num_layers ({self.num_layers})")
        return self

    def _check_mlp_widths(self) -> None:
        widths = self.mlp_widths
        if len(widths) != self.num_layers:
            raise ValueError(f"mlp_widths lists {len(widths)} layers but num_layers is {self.num_layers}")
        if self.moe is not None:
            raise ValueError("mlp_widths describes a dense model; an MoE model has moe.dense_layers")
        if max(widths) != self.intermediate_size:
            raise ValueError(f"intermediate_size ({self.intermediate_size}) must be the widest of mlp_widths")

    # ---- derived facts (computed once, here) ---------------------------------------------

    def mlp_width(self, layer: int) -> int:
        """Dense MLP width of ``layer`` (0: the layer has none); the model's ``intermediate_size`` by default."""
        return self.mlp_widths[layer] if self.mlp_widths is not None else self.intermediate_size or 0

    @cached_property
    def layer_kind_names(self) -> tuple[str, ...]:
        """The kind name of every layer, index 0 first."""
        if self.layers.types is not None:
            return tuple(self.layers.types)
        pattern = self.layers.pattern or list(self.layers.kinds)[:1]
        return tuple(pattern[i % len(pattern)] for i in range(self.num_layers))

    def kind(self, name: str) -> LayerKind:
        return self.layers.kinds[name]

    @cached_property
    def kind_counts(self) -> dict[str, int]:
        """How many layers of each kind, in definition order."""
        counts = {name: 0 for name in self.layers.kinds}
        for name in self.layer_kind_names:
            counts[name] += 1
        return {name: n for name, n in counts.items() if n}

    @cached_property
    def mlp_layers(self) -> frozenset[int]:
        """Indices of layers that have a feed-forward block (every layer unless a kind says ``mlp: false``)."""
        names = self.layer_kind_names
        return frozenset(i for i in range(self.num_layers) if self.layers.kinds[names[i]].mlp)

    @cached_property
    def dense_mlp_layers(self) -> frozenset[int]:
        """Indices of layers whose MLP is dense (every layer with one, for a dense model)."""
        if self.moe is None:
            return self.mlp_layers
        first = frozenset(range(min(self.moe.first_dense_layers, self.num_layers)))
        return (first | frozenset(self.moe.dense_layers)) & self.mlp_layers

    @cached_property
    def moe_layers(self) -> frozenset[int]:
        """Indices of layers whose feed-forward is a mixture of experts."""
        return frozenset() if self.moe is None else self.mlp_layers - self.dense_mlp_layers

    def kv_heads_of(self, kind: LayerKind) -> int:
        return kind.num_kv_heads or self.num_kv_heads

    def k_head_dim_of(self, kind: LayerKind) -> int:
        return kind.head_dim or self.head_dim

    def v_head_dim_of(self, kind: LayerKind) -> int:
        return kind.v_head_dim or kind.head_dim or self.v_head_dim or self.head_dim

    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    @property
    def attention_layout(self) -> str:
        """A short human description: ``GQA 32q/8kv``, ``SWA 4096``, ``5:1 SWA 1024/full``."""
        parts = []
        for name, count in self.kind_counts.items():
            kind = self.kind(name)
            parts.append(f"{count}x{_describe_kind(self, kind)}")
        return " + ".join(parts)

    @property
    def kv_groups(self) -> str:
        q, kv = self.num_attention_heads, self.num_kv_heads
        if all(k.type in ("mla", "recurrent", "none") for k in self.layers.kinds.values()):
            return f"MLA {q}q" if any(k.type == "mla" for k in self.layers.kinds.values()) else "recurrent"
        label = "MHA" if kv == q else "MQA" if kv == 1 else "GQA"
        return f"{label} {q}q/{kv}kv"

    @property
    def rope_theta(self) -> float | None:
        return self.rope.theta if self.rope else None

    @property
    def original_max_position_embeddings(self) -> int:
        """The pre-extension context: from the scaling block when present, else max positions."""
        scaling = self.rope.scaling if self.rope else None
        if scaling and scaling.get("original_max_position_embeddings"):
            return int(scaling["original_max_position_embeddings"])
        return self.max_position_embeddings


def _describe_kind(spec: ModelSpec, kind: LayerKind) -> str:
    if kind.kv_shared:
        return f"{kind.type} (K/V shared with an earlier layer)"
    if kind.type == "mla":
        extra = f" + indexer {kind.index_head_dim}" if kind.index_head_dim else ""
        return f"MLA latent {kind.kv_lora_rank}+{kind.qk_rope_head_dim}{extra}"
    if kind.type == "recurrent":
        return f"recurrent {kind.variant}"
    if kind.parallel is not None:
        return f"{_describe_kind(spec, kind.model_copy(update={'parallel': None}))} + {kind.parallel.variant} state"
    if kind.type == "none":
        return "linear (no attention)" if kind.linear_replacement else "no attention"
    heads = spec.kv_heads_of(kind)
    if kind.type == "cross":
        return f"cross-attention to {kind.cross_tokens} vision tokens, {heads}kv d{spec.k_head_dim_of(kind)}"
    base = f"{spec.num_attention_heads}q/{heads}kv d{spec.k_head_dim_of(kind)}"
    if kind.type == "sliding":
        return f"sliding {kind.window} {base}"
    if kind.type == "chunked":
        return f"chunked {kind.chunk} {base}"
    return f"full {base}"


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# Entries before a per-spec memo starts over: a cost() call fills a few, a plan over the catalog a few hundred; the
# bound keeps a long-running process that loads spec after spec from holding every one it ever saw.
SPEC_MEMO_BOUND = 256


def kept_for_spec(cache: dict, spec: ModelSpec, key: tuple, build: Callable[[], Any]) -> Any:  # noqa: ANN401
    """``build()`` kept in ``cache`` under ``(id(spec), *key)`` beside ``spec`` itself, so an id Python reuses for a
    later object never answers; the cache starts over past :data:`SPEC_MEMO_BOUND` entries. The latency, cost and
    engine paths key their per-spec figures and spec copies on identity with it."""
    full = (id(spec), *key)
    hit = cache.get(full)
    if hit is None or hit[0] is not spec:
        if len(cache) > SPEC_MEMO_BOUND:
            cache.clear()
        hit = cache[full] = (spec, build())
    return hit[1]


def pipeline_stages(num_layers: int, pp: int) -> list[range]:
    """Contiguous stages whose sizes differ by at most one; earlier stages take the extra layers."""
    base, extra = divmod(num_layers, pp)
    stages, start = [], 0
    for s in range(pp):
        size = base + (1 if s < extra else 0)
        stages.append(range(start, start + size))
        start += size
    return stages

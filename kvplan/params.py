"""Parameter counts and weight bytes, derived from the architecture.

Every resident weight is described as a :class:`Part`: how many parameters one tensor-parallel
rank holds, and whether the weight dtype applies to it (decoder linear layers and experts) or it
stays in the model's 16-bit dtype (embeddings, norms, biases, routers), which is what vLLM and
llama.cpp do with quantized checkpoints. Quantized bytes include the format's scales and zero
points (:mod:`kvplan.quant`); the default is the format the published checkpoint ships.
Counting at ``tp=1`` gives the model's parameter count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Union

from kvplan.checks import as_spec, check_degrees
from kvplan.errors import InvalidInput
from kvplan.quant import Storage, storage, storage_for_name
from kvplan.spec import LayerKind, ModelSpec, ceil_div, pipeline_stages
from kvplan.units import WEIGHT_DTYPES

if TYPE_CHECKING:
    from kvplan.checkpoint import CheckpointWeights


class Part(NamedTuple):
    params: int  # on one tensor-parallel rank
    quantizable: bool  # True: stored in the weights dtype; False: kept in 16-bit
    expert: bool = False  # a routed MoE expert's weights (the only ones MXFP4 applies to)


def _shard(n: int, tp: int) -> int:
    return ceil_div(n, tp)


def attention_parts(spec: ModelSpec, kind: LayerKind, tp: int = 1) -> list[Part]:
    """Projections, biases, norms and sinks of one layer's token mixer on one rank."""
    return _mixer_parts(spec, kind, tp) + _indexer_parts(spec, kind)


def _indexer_parts(spec: ModelSpec, kind: LayerKind) -> list[Part]:
    """DeepSeek-V3.2's lightning indexer (deepseek-ai/DeepSeek-V3.2-Exp inference/model.py class Indexer;
    transformers DeepseekV32Indexer): wq_b [q_lora_rank, heads*d] and wk [h, d] (fp8 Linear in the release),
    k_norm LayerNorm(d) with bias, weights_proj [h, heads] (kept in the default dtype). Plain ``Linear``s
    in the reference code, so every tensor-parallel rank holds all of them."""
    if not kind.index_n_heads:
        return []
    h, d, heads = spec.hidden_size, kind.index_head_dim, kind.index_n_heads
    q_in = kind.q_lora_rank or h
    return [Part(q_in * heads * d + h * d, True), Part(2 * d + h * heads, False)]


def _mixer_parts(spec: ModelSpec, kind: LayerKind, tp: int) -> list[Part]:
    if kind.type == "mla":
        return _mla_parts(spec, kind, tp)
    if kind.type == "recurrent":
        return _recurrent_parts(spec, kind, tp)
    if kind.type == "none":
        if kind.linear_replacement:  # DeciLM replace_with_linear: nn.Linear(hidden, hidden, bias=False)
            return [Part(_shard(spec.hidden_size * spec.hidden_size, tp), True)]
        return []  # an MLP/MoE-only layer (Nemotron-H "-", Nemotron-NAS no_op attention)
    h, heads = spec.hidden_size, spec.num_attention_heads
    kv_rank = max(1, spec.kv_heads_of(kind) // tp)  # KV heads replicate when tp exceeds them
    kd, vd = spec.k_head_dim_of(kind), spec.v_head_dim_of(kind)
    q_rank = _shard(heads, tp)
    layout = spec.params
    parts = [
        Part(h * q_rank * kd, True),  # q_proj: [h, heads*kd]
        Part(h * kv_rank * (kd + vd), True),  # k_proj + v_proj: [h, kv*(kd+vd)]
        Part(q_rank * vd * h, True),  # o_proj: [heads*vd, h]
    ]
    if layout.attention_bias != "none":
        parts.append(Part(q_rank * kd + kv_rank * (kd + vd), False))
    if layout.attention_bias == "all":
        parts.append(Part(h, False))
    if layout.qk_norm:
        parts.append(Part(2 * kd, False))
    if layout.attention_sinks:
        parts.append(Part(q_rank, False))
    if layout.attention_output_gate:
        parts.append(Part(h * q_rank * vd, True))  # gate half of q_proj: [h, heads*vd]
    if kind.parallel is not None:
        parts += _recurrent_parts(spec, kind.parallel, tp)  # Falcon-H1: the Mamba2 mixer beside the attention
    if kind.type == "cross":  # MllamaCrossAttentionDecoderLayer: q_norm, k_norm [head_dim]; tanh gates [1] x 2
        parts.append(Part(2 * kd + 2, False))
    return parts


def _mla_parts(spec: ModelSpec, kind: LayerKind, tp: int) -> list[Part]:
    # DeepSeek-V2 report section 2.1: q = W_UQ W_DQ h, [c_kv, k_rope] = W_DKV h, k/v = W_UK/W_UV c_kv.
    h, heads_rank = spec.hidden_size, _shard(spec.num_attention_heads, tp)
    qk = kind.qk_nope_head_dim + kind.qk_rope_head_dim
    vd = kind.v_head_dim or spec.v_head_dim or kind.qk_nope_head_dim
    if kind.q_lora_rank:
        q = [
            Part(h * kind.q_lora_rank, True),
            Part(kind.q_lora_rank, False),
            Part(kind.q_lora_rank * heads_rank * qk, True),
        ]
    else:
        q = [Part(h * heads_rank * qk, True)]
    return q + [
        Part(h * (kind.kv_lora_rank + kind.qk_rope_head_dim), True),  # kv_a_proj (replicated)
        Part(kind.kv_lora_rank, False),  # kv_a_layernorm
        Part(kind.kv_lora_rank * heads_rank * (kind.qk_nope_head_dim + vd), True),  # kv_b_proj
        Part(heads_rank * vd * h, True),  # o_proj
    ]


def _recurrent_parts(spec: ModelSpec, kind: LayerKind, tp: int) -> list[Part]:
    h = spec.hidden_size
    if kind.variant == "mamba":
        # Mamba-1 (Jamba): in_proj [h, 2*d_inner], conv1d with bias, x_proj, dt_proj with bias, A_log, D, out_proj.
        d, n, dt = _shard(kind.d_inner, tp), kind.d_state, kind.dt_rank or ceil_div(h, 16)
        return [
            Part(h * 2 * d + d * (dt + 2 * n) + dt * d + d * h, True),
            Part(d * kind.d_conv + d + d + d * n + d + dt + 2 * n, False),  # conv, biases, A_log, D, 3 norms
        ]
    if kind.variant == "mamba2":
        d, g, n, nh = kind.d_inner, kind.n_groups, kind.d_state, kind.n_heads
        conv = d + 2 * g * n
        norm = d if kind.ssm_norm else 0  # gated RMSNorm (Falcon-H1 without mamba_rms_norm has none)
        return [
            Part(_shard(h * (2 * d + 2 * g * n + nh) + d * h, tp), True),
            Part(_shard(conv * kind.d_conv + conv + 3 * nh + norm, tp), False),
        ]
    if kind.variant == "lightning":
        # MiniMaxLightningAttention: qkv_proj [h, 3 * heads * d], output_gate [h, heads * d], out_proj
        # [heads * d, h], all without bias; an RMSNorm over heads * d (modeling_minimax.py, transformers 5.24.0).
        width = _shard(kind.n_heads, tp) * kind.head_k_dim
        return [Part(h * 3 * width + h * width + width * h, True), Part(width, False)]
    # Gated DeltaNet (Qwen3-Next): in_proj_qkvz, in_proj_ba, depthwise conv, dt_bias, A_log, norm, out_proj.
    key_dim, value_dim = kind.n_k_heads * kind.head_k_dim, kind.n_heads * kind.head_v_dim
    return [
        Part(_shard(h * (2 * key_dim + 2 * value_dim) + h * 2 * kind.n_heads + value_dim * h, tp), True),
        Part(_shard((2 * key_dim + value_dim) * kind.d_conv + 2 * kind.n_heads, tp) + kind.head_v_dim, False),
    ]


@dataclass(frozen=True)
class Sharding:
    """How one rank's share of each group of weights is cut (an engine's rule, see ``kvplan.engines``).

    Plain tensor parallelism cuts everything ``tp`` ways. Data-parallel attention keeps attention
    per DP rank (cut over that rank's TP group) while the MoE layers span all ranks: routed experts
    are split whole over ``expert_ranks`` ranks (expert parallelism) and each expert's width over
    ``expert_tp``; dense MLPs and shared experts over ``mlp_tp``; the vocabulary over ``vocab_tp``, the input
    embedding over ``embed_tp`` where the engine cuts it otherwise than the LM head (0: over ``vocab_tp``).
    """

    attn_tp: int = 1
    mlp_tp: int = 1
    expert_tp: int = 1
    expert_ranks: int = 1
    vocab_tp: int = 1
    embed_tp: int = 0

    @property
    def input_embed_tp(self) -> int:
        """The ranks the input embedding is cut over (``embed_tp``, else ``vocab_tp``)."""
        return self.embed_tp or self.vocab_tp

    @classmethod
    def tensor(cls, tp: int) -> Sharding:
        return cls(attn_tp=tp, mlp_tp=tp, expert_tp=tp, expert_ranks=1, vocab_tp=tp)


def mlp_parts(
    spec: ModelSpec, layer: int, tp: int = 1, *, active_only: bool = False, sharding: Sharding | None = None
) -> list[Part]:
    """The feed-forward of layer ``layer``: dense MLP, or router + experts (+ shared experts).

    Under expert parallelism the busiest rank holds ceil(num_experts / expert_ranks) experts
    (vLLM fused_moe/layer.py determine_expert_map gives the remainder to the first ranks).
    """
    sh = sharding or Sharding.tensor(tp)
    h, layout = spec.hidden_size, spec.params
    if layer not in spec.mlp_layers:
        return []  # a mixer-only layer (Nemotron-H Mamba or attention block): its kind says mlp: false
    if layer in spec.dense_mlp_layers:
        width = spec.mlp_width(layer)
        if not width:
            return []  # Nemotron-NAS no_op FFN: the layer has no MLP
        return _dense_mlp(h, width, sh.mlp_tp, gated=layout.mlp == "gated", bias=layout.mlp_bias)
    moe = spec.moe
    experts = moe.experts_per_token if active_only else ceil_div(moe.num_experts, sh.expert_ranks)
    gated = layout.mlp == "gated"
    one = _dense_mlp(h, moe.expert_intermediate_size, sh.expert_tp, gated=gated, bias=moe.expert_bias)
    parts = [Part(p.params * experts, p.quantizable, expert=True) for p in one]
    parts.append(Part(h * moe.num_experts + (moe.num_experts if moe.router_bias else 0), False))
    if moe.shared_size:
        parts += _dense_mlp(h, moe.shared_size, sh.mlp_tp, gated=gated, bias=False)
    if moe.shared_expert_gate:
        parts.append(Part(h, False))
    return parts


def _dense_mlp(h: int, inter: int, tp: int, *, gated: bool, bias: bool) -> list[Part]:
    i_rank = _shard(inter, tp)
    mats = 3 if gated else 2  # gate+up+down (SwiGLU/GeGLU) or up+down
    parts = [Part(mats * h * i_rank, True)]
    if bias:
        parts.append(Part((mats - 1) * i_rank + h, False))
    return parts


def layer_parts(
    spec: ModelSpec, layer: int, tp: int = 1, *, active_only: bool = False, sharding: Sharding | None = None
) -> list[Part]:
    sh = sharding or Sharding.tensor(tp)
    kind = spec.kind(spec.layer_kind_names[layer])
    norms = [Part(layer_norm_params(spec, layer), False)]
    mlp = mlp_parts(spec, layer, active_only=active_only, sharding=sh)
    return attention_parts(spec, kind, sh.attn_tp) + mlp + norms + gemma3n_layer_parts(spec)


def gemma3n_layer_parts(spec: ModelSpec) -> list[Part]:
    """Gemma 3n's per-layer extras (transformers 5.24 modeling_gemma3n.py Gemma3nTextDecoderLayer), whole on
    every rank (an assumption: they are small). Their norms and AltUp's output scale are in norms_per_layer."""
    layout, h = spec.params, spec.hidden_size
    parts = []
    if layout.laurel_rank:  # Gemma3nTextLaurelBlock: linear_left [h, r] + linear_right [r, h]
        parts.append(Part(2 * h * layout.laurel_rank, True))
    if layout.per_layer_input_size:  # per_layer_input_gate [h, P] + per_layer_projection [P, h]
        parts.append(Part(2 * h * layout.per_layer_input_size, True))
    n = layout.altup_inputs
    if n > 1:  # Gemma3nTextAltUp: correction_coefs [n, n], prediction_coefs [n, n^2], modality_router [h, n]
        parts.append(Part(n * n + n * n * n + h * n, False))
    return parts


def gemma3n_model_parts(spec: ModelSpec, tp: int = 1) -> list[Part]:
    """Gemma 3n's model-level extras (Gemma3nTextModel): the per-layer embedding table [V_ple, layers * P]
    (vocab-parallel like the input embedding, an assumption), its projection [h, layers * P] and norm [P],
    and AltUp's (n - 1) up- and (n - 1) down-projections [h, h]."""
    layout, h = spec.params, spec.hidden_size
    parts = []
    if layout.per_layer_input_size:
        width = spec.num_layers * layout.per_layer_input_size
        parts.append(Part(_shard(layout.per_layer_vocab_size, tp) * width, False))
        parts.append(Part(h * width + layout.per_layer_input_size, True))
    if layout.altup_inputs > 1:
        parts.append(Part(2 * (layout.altup_inputs - 1) * h * h, True))
    return parts


def layer_norm_params(spec: ModelSpec, layer: int) -> int:
    """The norm weights of one layer. DeciLM (Nemotron-NAS) builds input_layernorm only where attention
    is not a no-op and post_attention_layernorm only where the FFN is not (vLLM models/nemotron_nas.py
    DeciLMDecoderLayer.__init__)."""
    norm_width = spec.hidden_size * (2 if spec.params.norm == "layernorm" else 1)
    count = spec.params.norms_per_layer
    if spec.params.norms_follow_blocks:
        kind = spec.kind(spec.layer_kind_names[layer])
        has_mixer = kind.type != "none" or kind.linear_replacement
        count = int(has_mixer) + int(spec.mlp_width(layer) > 0 or layer not in spec.dense_mlp_layers)
    return count * norm_width


# Families whose MoE layers run a shared MLP beside the routed experts as a module of its own, each ending in its own
# all-reduce: Granite 4.0 hybrid (vLLM vllm/model_executor/models/granitemoehybrid.py @0195c9ec, both decoder layers'
# forward: block_sparse_moe(...) + shared_mlp(...), GraniteMoeMoE's FusedMoE reducing its output, "finally we reduce
# the outputs across ranks" (granitemoe.py), and GraniteMoeSharedMLP's output_linear a RowParallelLinear that reduces
# by default (granitemoeshared.py); SGLang's granitemoehybrid.py ports the same modules). Every other family's shared
# experts join the routed output before one all-reduce (e.g. NemotronHMoE: the shared NemotronHMLP built with
# reduce_results=False and handed to the fused MoE).
SEPARATE_SHARED_MLP_FAMILIES = frozenset({"granitemoehybrid"})


def mixer_allreduces(kind: LayerKind) -> int:
    """All-reduces of the hidden size after a layer's attention or token mixer under TP: one where the layer has one
    (its o_proj / out_proj is row-parallel), none for a layer without (Nemotron-H's MLP and MoE blocks, Nemotron-NAS
    no-op attention: vLLM nemotron_nas.py DeciLMDecoderLayer.forward skips the block), and one more for a recurrent
    mixer beside the attention (Falcon-H1: vLLM falcon_h1.py FalconH1ParallelHybrid runs the attention's o_proj and
    the Mamba2 branch's out_proj, each a RowParallelLinear that reduces, then sums the two). A linear replacement
    (DeciLM replace_with_linear) is counted as one row-parallel linear: no engine read serves it (vLLM's DeciLM layer
    reads only no_op) and no catalog model has one."""
    if kind.type == "none":
        return 1 if kind.linear_replacement else 0
    return 1 + (1 if kind.parallel is not None else 0)


def layer_allreduces(spec: ModelSpec, kind: LayerKind, *, dense: bool, width: int) -> int:
    """All-reduces of ``tokens x hidden`` values one layer of ``kind`` ends its blocks with under tensor parallelism
    (without DP attention): :func:`mixer_allreduces`, one after the MLP or MoE where the layer has one (``kind.mlp``;
    a dense one of ``width`` 0 is Nemotron-NAS's no-op FFN, skipped as its attention is), and one more for a shared
    MLP reduced on its own (:data:`SEPARATE_SHARED_MLP_FAMILIES`). A Nemotron-H block is one norm and ONE mixer
    (vLLM vllm/model_executor/models/nemotron_h.py @8744bb09: NemotronHMambaDecoderLayer, NemotronHAttention,
    NemotronHMLPDecoderLayer, NemotronHMoEDecoderLayer; its MoE hands the shared NemotronHMLP, built with
    reduce_results=False, to the fused experts, which reduce once; SGLang python/sglang/srt/models/nemotron_h.py
    @02c60328 NemotronHMoE.forward: experts and shared MLP both reduce_results=False, one
    tensor_model_parallel_all_reduce after they join; TensorRT-LLM tensorrt_llm/_torch/models/modeling_nemotron_h.py
    NemotronHLayer (one norm, one mixer) and NemotronHMOE (shared MLP reduce_output=False, experts
    reduce_results=False, one AllReduce after shared + routed)): one all-reduce a block, written as a mixer kind
    without MLP (``mlp: false``) or an MLP kind without mixer (type none)."""
    n = mixer_allreduces(kind)
    if kind.mlp and (width > 0 or not dense):
        n += 1
        if not dense and spec.family in SEPARATE_SHARED_MLP_FAMILIES and spec.moe is not None and spec.moe.shared_size:
            n += 1
    return n


def tp_allreduces(spec: ModelSpec) -> int:
    """All-reduces of ``tokens x hidden`` values the model's layers end their blocks with in one forward pass under
    tensor parallelism (:func:`layer_allreduces` summed over the layers; the embedding's not counted)."""
    names, dense = spec.layer_kind_names, spec.dense_mlp_layers
    return sum(layer_allreduces(spec, spec.kind(names[i]), dense=spec.moe is None or i in dense,
                                width=spec.mlp_width(i) if spec.moe is None or i in dense else 0)
               for i in range(spec.num_layers))  # fmt: skip


def embedding_parts(spec: ModelSpec, tp: int = 1) -> list[Part]:
    """Input embedding (vocab-parallel under TP)."""
    return [Part(_shard(spec.vocab_size, tp) * spec.hidden_size, False)]


def head_parts(spec: ModelSpec, tp: int = 1, *, pipeline: bool = False) -> list[Part]:
    """Final norm and LM head. A tied head costs nothing, except on a separate last PP stage."""
    norm_width = spec.hidden_size * (2 if spec.params.norm == "layernorm" else 1)
    parts = [Part(norm_width, False)]
    if not spec.tie_word_embeddings or pipeline:
        parts.append(Part(_shard(spec.vocab_size, tp) * spec.hidden_size, False))
    return parts


@dataclass(frozen=True)
class ParamCount:
    total: int
    active: int  # per token: shared weights + the experts one token runs
    embedding: int
    lm_head: int
    attention: int
    mlp: int
    extra: int
    per_layer_embedding: int = 0  # Gemma 3n PLE table (in total); Google's "effective" count leaves it out

    @property
    def effective(self) -> int:
        """Google's "effective" count for Gemma 3n: total less the input and per-layer embedding tables."""
        return self.total - self.embedding - self.per_layer_embedding


def count_params(spec: ModelSpec | str) -> ParamCount:
    """Parameters of the whole model (one copy, ``tp=1``), and the active count for MoE."""
    spec = as_spec(spec)
    emb = _sum(embedding_parts(spec))
    head = 0 if spec.tie_word_embeddings else spec.vocab_size * spec.hidden_size
    final_norm = _sum(head_parts(spec)) - head
    attn = mlp = active_mlp = norms = 0
    gemma3n = _sum(gemma3n_model_parts(spec)) + spec.num_layers * _sum(gemma3n_layer_parts(spec))
    per_layer_embedding = spec.num_layers * spec.params.per_layer_input_size * (spec.params.per_layer_vocab_size or 0) \
        if spec.params.per_layer_input_size else 0  # fmt: skip
    for i in range(spec.num_layers):
        kind = spec.kind(spec.layer_kind_names[i])
        attn += _sum(attention_parts(spec, kind))
        mlp += _sum(mlp_parts(spec, i))
        active_mlp += _sum(mlp_parts(spec, i, active_only=True))
        norms += layer_norm_params(spec, i)
    extra = spec.params.extra_params
    shared = emb + head + final_norm + attn + norms + extra + gemma3n
    return ParamCount(
        total=shared + mlp,
        active=shared + active_mlp,
        embedding=emb,
        lm_head=head,
        attention=attn,
        mlp=mlp,
        extra=extra,
        per_layer_embedding=per_layer_embedding,
    )


def _sum(parts: list[Part]) -> int:
    return sum(p.params for p in parts)


def parts_bytes(parts: list[Part], dtype: str | Storage, model_dtype: str) -> int:
    """Bytes of ``parts``: quantizable ones in ``dtype`` (a name or a checkpoint's
    :class:`~kvplan.quant.Storage`, scales and zero points included), the rest in 16 bit."""
    st = dtype if isinstance(dtype, Storage) else storage_for_name(dtype)
    quant = st.dtype
    keep = quant if quant.bytes_per_element >= 2 else WEIGHT_DTYPES[_sixteen_bit(model_dtype)]
    applies = (lambda p: p.quantizable and p.expert) if st.experts_only else (lambda p: p.quantizable)
    q = sum(p.params for p in parts if applies(p))
    other = sum(p.params for p in parts if not applies(p))
    return quant.nbytes(q) + keep.nbytes(other)


def _sixteen_bit(model_dtype: str) -> str:
    return model_dtype if model_dtype in ("bf16", "fp16") else "bf16"


# A weights dtype name, or the checkpoint's own headers (kvplan.checkpoint.CheckpointWeights).
Weights = Union[str, Storage, "CheckpointWeights", None]


def weight_bytes_per_stage(
    spec: ModelSpec | str, dtype: Weights = None, *, tp: int = 1, pp: int = 1, sharding: Sharding | None = None
) -> list[int]:
    """Bytes one GPU of each pipeline stage holds (weights sharded ``tp`` ways, or as ``sharding`` says).


    ``spec`` may be a name. ``dtype`` None: the weights as the published checkpoint ships them
    (:func:`kvplan.quant.storage`); a name: that dtype applied to the architecture count; a
    checkpoint's headers (:class:`kvplan.checkpoint.CheckpointWeights`): their bytes, which take
    precedence, split over ranks by the same rules.
    """
    spec = as_spec(spec)
    check_degrees(tp=tp, pp=pp)
    if pp > spec.num_layers:
        raise InvalidInput(f"pipeline parallel size {pp} exceeds {spec.name}'s {spec.num_layers} layers")
    sh = sharding or Sharding.tensor(tp)
    if dtype is not None and not isinstance(dtype, (str, Storage)):
        return dtype.bytes_per_stage(spec, tp=tp, pp=pp, sharding=sh)  # the same cuts, tensor by tensor
    st = dtype if isinstance(dtype, Storage) else storage(spec, dtype)
    out = []
    stages = pipeline_stages(spec.num_layers, pp)
    for s, layers in enumerate(stages):
        parts: list[Part] = []
        if s == 0:
            parts += embedding_parts(spec, sh.input_embed_tp)
            parts += [Part(_shard(spec.params.extra_params, sh.attn_tp), False)]
            parts += gemma3n_model_parts(spec, sh.vocab_tp)
        for i in layers:
            parts += layer_parts(spec, i, sharding=sh)
        if s == len(stages) - 1:
            parts += head_parts(spec, sh.vocab_tp, pipeline=pp > 1)
        out.append(parts_bytes(parts, st, spec.dtype))
    return out


def expert_padding_bytes_per_stage(
    spec: ModelSpec, dtype: str, *, hidden: int, inter_rank: int, pp: int = 1, sharding: Sharding | None = None
) -> list[int]:
    """Bytes one GPU of each pipeline stage holds beyond the checkpoint's routed experts where the engine stores each
    expert at ``hidden`` x ``inter_rank`` (its kernels' padding, :meth:`kvplan.engines.base.Engine.
    expert_dims_as_loaded`) instead of the model's hidden size and the rank's share of the expert width: the padded
    expert's bytes less the checkpoint's, in ``dtype``, times the experts on the rank, over the stage's MoE layers."""
    sh = sharding or Sharding()
    moe = spec.moe
    if moe is None:
        return [0] * pp
    gated, bias = spec.params.mlp == "gated", moe.expert_bias
    own = _dense_mlp(spec.hidden_size, moe.expert_intermediate_size, sh.expert_tp, gated=gated, bias=bias)
    padded = _dense_mlp(hidden, inter_rank, 1, gated=gated, bias=bias)

    def as_experts(parts: list[Part]) -> list[Part]:
        return [Part(p.params, p.quantizable, expert=True) for p in parts]

    one = parts_bytes(as_experts(padded), dtype, spec.dtype) - parts_bytes(as_experts(own), dtype, spec.dtype)
    experts = ceil_div(moe.num_experts, sh.expert_ranks)
    stages = pipeline_stages(spec.num_layers, pp)
    return [one * experts * len(spec.moe_layers.intersection(layers)) for layers in stages]


def weight_bytes_per_gpu(
    spec: ModelSpec | str, dtype: Weights = None, *, tp: int = 1, pp: int = 1, sharding: Sharding | None = None
) -> int:
    """Weights on the busiest GPU: the largest pipeline stage, one tensor-parallel shard."""
    return max(weight_bytes_per_stage(spec, dtype, tp=tp, pp=pp, sharding=sharding))


def weight_bytes_total(spec: ModelSpec, dtype: Weights = None) -> int:
    """All weights of one model copy."""
    return weight_bytes_per_gpu(spec, dtype)

"""kvplan's cache bytes against what Hugging Face transformers really holds.

For every architecture family a SKELETON model is built in transformers (random weights, CPU):
the bundled spec's true layer count, KV heads, head_dim, layer pattern, MLA and recurrent sizes,
but a tiny hidden size, MLP, vocabulary and expert count (none of which is cached). A prefill
forward pass with ``use_cache=True`` fills transformers' default ``DynamicCache``; the test sums
the bytes of the tensors it holds, layer by layer, and compares them with

* ``kvplan.engines.transformers`` -- must match EXACTLY, every layer, every length;
* ``kvplan.memory.cache_plan`` (the ideal layout) -- must match wherever transformers stores the
  ideal; where it does not, the difference is pinned to an exact number with the reason.

Windows too large to exceed cheaply on CPU are scaled down to ``SMALL_WINDOW`` in both the
transformers config and a copy of the spec. Query heads are reduced where the cache does not
depend on them (MLA latent, Falcon's MQA); the MLP, vocab and experts are always tiny. One
model per family is measured in depth (two lengths, prefill and a decode step, storage, shapes);
every other bundled spec gets one prompt beyond its window with its query heads cut to its KV
heads, and a bundled family with no skeleton fails the sweep.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from kvplan.catalog import bundled_names, load_bundled
from kvplan.engines.transformers import transformers_cache_bytes, transformers_cache_plan
from kvplan.errors import InvalidInput
from kvplan.hf import spec_from_hf_config
from kvplan.memory import cache_plan
from kvplan.spec import ModelSpec
from tests.skeleton import build

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SMALL_WINDOW = 16  # stands in for 1024..8192-token windows: a 40-token prompt exceeds it on CPU in ms
SHORT, LONG = 8, 40  # one prompt inside every (scaled) window, one beyond it
# Skeletons run in bf16 (fp16 matmuls are slow on CPU); kvplan is asked for the same 2-byte dtype.
DTYPE = "bf16"

# What is cached never depends on these, so they are tiny: the MLP and expert widths, the
# vocabulary, how many experts exist, and d_model (see tiny_hidden).
TINY: dict[str, Any] = {
    "intermediate_size": 64,
    "vocab_size": 128,
    "pad_token_id": None,
    "bos_token_id": None,
    "eos_token_id": None,
    "tie_word_embeddings": False,
}
TINY_MOE: dict[str, Any] = {"num_experts_per_tok": 2}


# ---- measuring a transformers cache -------------------------------------------------------


@dataclass(frozen=True)
class LayerBytes:
    """One cache layer: bytes of the tensors it exposes, and of the storage they keep alive."""

    logical: int  # sum of numel * element_size
    allocated: frozenset[tuple[int, int]]  # (storage pointer, storage bytes) kept alive
    tensors: tuple[tuple[tuple[int, ...], str], ...]  # (shape, dtype) of keys, values, conv, state


def _tensors(layer: Any) -> list[Any]:
    found = [getattr(layer, name, None) for name in ("keys", "values", "indexer_keys")]
    for name in ("conv_states", "recurrent_states"):
        states = getattr(layer, name, None)
        if isinstance(states, dict):
            found.extend(states.values())
    return [t for t in found if isinstance(t, torch.Tensor) and t.numel()]


def layer_bytes(cache: Any) -> list[LayerBytes]:
    """Per-layer bytes of a transformers ``Cache`` (``layers[i].keys/values``, conv/recurrent states, and
    MiniMaxCache's ``linear_cache[i]``: the lightning-attention state it keeps beside the layers)."""
    rows = []
    linear = getattr(cache, "linear_cache", [])
    for i, layer in enumerate(cache.layers):
        extra = linear[i] if i < len(linear) and isinstance(linear[i], torch.Tensor) else None
        tensors = _tensors(layer) + ([extra] if extra is not None else [])
        logical = sum(t.numel() * t.element_size() for t in tensors)
        storages = frozenset((t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()) for t in tensors)
        shapes = tuple((tuple(t.shape), str(t.dtype).removeprefix("torch.")) for t in tensors)
        rows.append(LayerBytes(logical, storages, shapes))
    return rows


def allocated_total(rows: list[LayerBytes]) -> int:
    return sum(nbytes for _, nbytes in frozenset().union(*(r.allocated for r in rows)))


def prefill(model: Any, length: int) -> Any:
    ids = torch.randint(0, TINY["vocab_size"], (1, length))
    with torch.no_grad():
        return model(input_ids=ids, use_cache=True).cache


def decode_one(model: Any, cache: Any) -> Any:
    token = torch.zeros((1, 1), dtype=torch.long)
    with torch.no_grad():
        return model(input_ids=token, cache=cache, use_cache=True).cache


# ---- specs: bundled, with windows scaled down ---------------------------------------------


def bundled(candidates: list[str], *, family: str, pick: Callable[[ModelSpec], bool] = lambda s: True) -> ModelSpec:
    """The first bundled spec among ``candidates``, else any bundled spec of ``family``; skip loudly."""
    names = bundled_names()
    for name in candidates:
        if name in names:
            return load_bundled(name)
    for name in names:
        spec = load_bundled(name)
        if spec.family == family and pick(spec):
            return spec
    files = " or ".join(f"model_specs/{n}.yaml" for n in candidates)
    pytest.skip(f"no bundled {family} spec: {files} is missing")


def with_windows(spec: ModelSpec, size: int) -> ModelSpec:
    """A copy of ``spec`` whose sliding windows and attention chunks are ``size`` tokens."""
    data = spec.model_dump(exclude_none=True)
    for kind in data["layers"]["kinds"].values():
        for key in ("window", "chunk"):
            if key in kind:
                kind[key] = size
    return ModelSpec.model_validate(data)


def tiny_hidden(spec: ModelSpec) -> int:
    """d_model of the skeleton: a multiple of the query heads (transformers checks it) and of 8
    (torch's grouped MoE matmul wants 16-byte strides in bf16)."""
    return math.lcm(spec.num_attention_heads, 8)


def heads(spec: ModelSpec) -> dict[str, int]:
    return {
        "hidden_size": tiny_hidden(spec),
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_kv_heads,
        "head_dim": spec.head_dim,
    }


def only_kind(spec: ModelSpec, kind_type: str) -> Any:
    kinds = [k for k in spec.layers.kinds.values() if k.type == kind_type]
    assert kinds, f"{spec.name} has no {kind_type!r} layer kind"
    return kinds[0]


def window_of(spec: ModelSpec) -> int | None:
    windows = [k.window or k.chunk for k in spec.layers.kinds.values() if k.type in ("sliding", "chunked")]
    return windows[0] if windows else None


# ---- one case per family ------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A family: how to find its bundled spec and how to build its transformers skeleton."""

    family: str
    candidates: list[str]
    config: Callable[[ModelSpec], Any]
    scale_window: bool = False
    lengths: tuple[int, ...] = (SHORT, LONG)
    pick: Callable[[ModelSpec], bool] = field(default=lambda s: True)
    slow: bool = False  # a skeleton over ~10 s on the shared CPUs: marked slow, kept in the default run


def _llama(spec: ModelSpec) -> Any:
    return transformers.LlamaConfig(**heads(spec), **TINY)


def _mistral(spec: ModelSpec) -> Any:
    return transformers.MistralConfig(**heads(spec), sliding_window=window_of(spec), **TINY)


def _mixtral(spec: ModelSpec) -> Any:
    return transformers.MixtralConfig(**heads(spec), num_local_experts=4, sliding_window=None, **TINY, **TINY_MOE)


def _qwen2(spec: ModelSpec) -> Any:
    # Qwen2.5 ships a window with use_sliding_window false: transformers must ignore it, so the
    # skeleton keeps a small window that a 40-token prompt would exceed were it active.
    return transformers.Qwen2Config(**heads(spec), sliding_window=SMALL_WINDOW, use_sliding_window=False, **TINY)


def _qwen3(spec: ModelSpec) -> Any:
    return transformers.Qwen3Config(**heads(spec), **TINY)


def _qwen3_moe(spec: ModelSpec) -> Any:
    return transformers.Qwen3MoeConfig(**heads(spec), num_experts=4, moe_intermediate_size=32, **TINY, **TINY_MOE)


def _gemma2(spec: ModelSpec) -> Any:
    # layer_types left to transformers' default (even index sliding) so the spec's pattern is checked
    return transformers.Gemma2Config(**heads(spec), sliding_window=window_of(spec), **TINY)


def _gemma3(spec: ModelSpec) -> Any:
    # layer_types left to transformers' default (every 6th layer global) so the spec's pattern is checked
    return transformers.Gemma3TextConfig(**heads(spec), sliding_window=window_of(spec), **TINY)


def _gemma3n(spec: ModelSpec) -> Any:
    # layer_types left to Gemma3nTextConfig's default (every 5th layer global) and the shared tail given by
    # count, so the spec's pattern and its KV-shared layers are checked; PLE, AltUp and LAuReL tiny
    shared = sum(spec.kind(n).kv_shared for n in spec.layer_kind_names)
    return transformers.Gemma3nTextConfig(
        **heads(spec),
        sliding_window=window_of(spec),
        num_kv_shared_layers=shared,
        vocab_size_per_layer_input=TINY["vocab_size"],
        hidden_size_per_layer_input=8,
        laurel_rank=4,
        **TINY,
    )


def _deepseek(config_class: str) -> Callable[[ModelSpec], Any]:
    def make(spec: ModelSpec) -> Any:
        mla = only_kind(spec, "mla")
        moe = spec.moe
        return getattr(transformers, config_class)(
            num_hidden_layers=spec.num_layers,
            # the latent cache is shared by all heads, so 4 query heads stand in for 128
            num_attention_heads=4,
            num_key_value_heads=4,
            hidden_size=64,
            kv_lora_rank=mla.kv_lora_rank,
            q_lora_rank=mla.q_lora_rank,
            qk_nope_head_dim=mla.qk_nope_head_dim,
            qk_rope_head_dim=mla.qk_rope_head_dim,
            v_head_dim=mla.v_head_dim or spec.v_head_dim,
            n_routed_experts=4,
            n_shared_experts=moe.num_shared_experts if moe else 0,
            moe_intermediate_size=32,
            first_k_dense_replace=moe.first_dense_layers if moe else spec.num_layers,
            n_group=1,
            topk_group=1,
            **_indexer(mla),
            **TINY,
            **TINY_MOE,
        )

    return make


def _indexer(mla: Any) -> dict[str, Any]:
    """DeepSeek-V3.2's DSA indexer: its key width is cached; 4 heads stand in for 64."""
    if not mla.index_head_dim:
        return {}
    return {"index_head_dim": mla.index_head_dim, "index_n_heads": 4, "index_topk": 8}


def _smollm3(spec: ModelSpec) -> Any:
    flags = [int(spec.kind(n).use_rope) for n in spec.layer_kind_names]
    return transformers.SmolLM3Config(**heads(spec), no_rope_layers=flags, **TINY)


def _olmo2(spec: ModelSpec) -> Any:
    return transformers.Olmo2Config(**heads(spec), **TINY)


def _cohere2(spec: ModelSpec) -> Any:
    # layer_types left to Cohere2Config's default (every 4th layer global) so the spec's pattern is checked;
    # an explicit head_dim wins over Cohere2Config's hidden // heads (set after __post_init__ from the kwargs)
    return transformers.Cohere2Config(**heads(spec), sliding_window=window_of(spec), **TINY)


def _minimax_m2(spec: ModelSpec) -> Any:
    return transformers.MiniMaxM2Config(**heads(spec), num_local_experts=4, **TINY, **TINY_MOE)


def _glm4_moe(spec: ModelSpec) -> Any:
    # partial RoPE (0.5) and q/k norm do not change what is cached: full K and V of head_dim per KV head
    return transformers.Glm4MoeConfig(
        **heads(spec),
        n_routed_experts=4,
        moe_intermediate_size=32,
        first_k_dense_replace=spec.moe.first_dense_layers,
        use_qk_norm=spec.params.qk_norm,
        **TINY,
        **TINY_MOE,
    )


def _qwen3_5(spec: ModelSpec) -> Any:
    delta = only_kind(spec, "recurrent")
    deltanet = {
        "linear_conv_kernel_dim": delta.d_conv,
        "linear_key_head_dim": delta.head_k_dim,
        "linear_value_head_dim": delta.head_v_dim,
        "linear_num_key_heads": delta.n_k_heads,
        "linear_num_value_heads": delta.n_heads,
    }
    if spec.moe is None:
        return transformers.Qwen3_5TextConfig(**heads(spec), **deltanet, **TINY)
    tiny_moe = {"num_experts": 4, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 32}
    return transformers.Qwen3_5MoeTextConfig(**heads(spec), **deltanet, **tiny_moe, **TINY, **TINY_MOE)


# Phi-3-mini-128k's config.json carries sliding_window 262144 (models.md 1.19), larger than its
# context; transformers builds sliding cache layers from it, which never drop a token below 262144.
PHI3_CONFIG_WINDOW = {"phi-3-mini-128k": 262144}


def _phi3(spec: ModelSpec) -> Any:
    return transformers.Phi3Config(**heads(spec), sliding_window=PHI3_CONFIG_WINDOW.get(spec.name), **TINY)


def _falcon(spec: ModelSpec) -> Any:
    # multi_query=True means one KV head whatever num_kv_heads says (re-saved configs say 71,
    # models.md 2.4 trap 3). Falcon derives head_dim = hidden / heads, so 2 heads x 64 = 128.
    assert spec.num_kv_heads == 1
    return transformers.FalconConfig(
        num_hidden_layers=spec.num_layers,
        hidden_size=2 * spec.head_dim,
        num_attention_heads=2,
        num_kv_heads=71,
        multi_query=True,
        new_decoder_architecture=False,
        vocab_size=TINY["vocab_size"],
        pad_token_id=None,
        bos_token_id=None,
        eos_token_id=None,
    )


def _gpt_oss(spec: ModelSpec) -> Any:
    return transformers.GptOssConfig(
        **heads(spec), sliding_window=window_of(spec), num_local_experts=4, **TINY, **TINY_MOE
    )


def _llama4(spec: ModelSpec) -> Any:
    # chunked layers where no_rope_layers says RoPE (3 of every 4), the 4th full (NoPE)
    return transformers.Llama4TextConfig(
        **heads(spec),
        attention_chunk_size=window_of(spec),
        num_local_experts=4,
        intermediate_size_mlp=64,
        **TINY,
        num_experts_per_tok=1,
    )


def _jamba(spec: ModelSpec) -> Any:
    mamba = only_kind(spec, "recurrent")
    attn_layers = [i for i, name in enumerate(spec.layer_kind_names) if spec.kind(name).type != "recurrent"]
    period = attn_layers[1] - attn_layers[0]
    assert mamba.d_inner % tiny_hidden(spec) == 0
    return transformers.JambaConfig(
        **heads(spec),
        attn_layer_period=period,
        attn_layer_offset=attn_layers[0],
        # Jamba's d_inner = mamba_expand * hidden_size: expand so that d_inner is the real one.
        mamba_expand=mamba.d_inner // tiny_hidden(spec),
        mamba_d_state=mamba.d_state,
        mamba_d_conv=mamba.d_conv,
        mamba_dt_rank=8,  # dt_rank sizes a projection, not the state
        num_experts=4,
        use_mamba_kernels=False,
        **TINY,
        **TINY_MOE,
    )


def _qwen3_next(spec: ModelSpec) -> Any:
    delta = only_kind(spec, "recurrent")
    return transformers.Qwen3NextConfig(
        **heads(spec),
        linear_conv_kernel_dim=delta.d_conv,
        linear_key_head_dim=delta.head_k_dim,
        linear_value_head_dim=delta.head_v_dim,
        linear_num_key_heads=delta.n_k_heads,
        linear_num_value_heads=delta.n_heads,
        num_experts=4,
        moe_intermediate_size=32,
        shared_expert_intermediate_size=32,
        **TINY,
        **TINY_MOE,
    )


def _mamba2_sizes(spec: ModelSpec, *, prefix: str) -> dict[str, Any]:
    """Mamba2 state sizes in the family's spelling (mamba_* for Granite / Falcon-H1)."""
    (m,) = _recurrent_kinds(spec)
    names = {"n_heads": m.n_heads, "d_head": m.d_inner // m.n_heads, "n_groups": m.n_groups, "d_state": m.d_state,
             "d_conv": m.d_conv}  # fmt: skip
    return {f"{prefix}{key}": value for key, value in names.items()}


def _recurrent_kinds(spec: ModelSpec) -> list[Any]:
    kinds = spec.layers.kinds.values()
    return [k for k in kinds if k.type == "recurrent"] + [k.parallel for k in kinds if k.parallel is not None]


# The reference Mamba2 scan pads a prompt to a whole chunk (default 128 / 256 tokens) and MiniMax's lightning
# attention loops over blocks of 256: a chunk of 16 keeps CPU time low; what is cached does not depend on it.
SCAN_CHUNK = 16


def _nemotron_h(spec: ModelSpec) -> Any:
    def block(i: int, name: str) -> str:
        kind = spec.kind(name)
        if kind.type == "recurrent":
            return "mamba"
        return "attention" if kind.type != "none" else "moe" if i in spec.moe_layers else "mlp"

    (m,) = _recurrent_kinds(spec)
    experts = {"n_routed_experts": 4, "moe_intermediate_size": 32, "moe_shared_expert_intermediate_size": 32}
    return transformers.NemotronHConfig(
        **heads(spec),
        layers_block_type=[block(i, n) for i, n in enumerate(spec.layer_kind_names)],
        mamba_num_heads=m.n_heads,
        mamba_head_dim=m.d_inner // m.n_heads,
        n_groups=m.n_groups,
        ssm_state_size=m.d_state,
        conv_kernel=m.d_conv,
        chunk_size=SCAN_CHUNK,
        **TINY,
        **TINY_MOE,
        **experts,
    )


def _granitemoehybrid(spec: ModelSpec) -> Any:
    (m,) = _recurrent_kinds(spec)
    assert m.d_inner % tiny_hidden(spec) == 0
    return transformers.GraniteMoeHybridConfig(
        **heads(spec),
        layer_types=["mamba" if spec.kind(n).type == "recurrent" else "attention" for n in spec.layer_kind_names],
        # Granite's d_inner = mamba_expand * hidden_size: expand so that d_inner is the real one.
        mamba_expand=m.d_inner // tiny_hidden(spec),
        **_mamba2_sizes(spec, prefix="mamba_"),
        mamba_chunk_size=SCAN_CHUNK,
        num_local_experts=4,
        shared_intermediate_size=32,
        **TINY,
        **TINY_MOE,
    )


def _falcon_h1(spec: ModelSpec) -> Any:
    (m,) = _recurrent_kinds(spec)
    return transformers.FalconH1Config(
        **heads(spec),
        mamba_d_ssm=m.d_inner,
        mamba_rms_norm=m.ssm_norm,
        mamba_chunk_size=SCAN_CHUNK,
        **_mamba2_sizes(spec, prefix="mamba_"),
        **TINY,
    )


def _minimax(spec: ModelSpec) -> Any:
    lightning = [spec.kind(n).type == "recurrent" for n in spec.layer_kind_names]
    return transformers.MiniMaxConfig(
        **heads(spec),
        layer_types=["linear_attention" if flag else "full_attention" for flag in lightning],
        block_size=SCAN_CHUNK,  # lightning attention's block loop; the K^T V state does not depend on it
        num_local_experts=4,
        **TINY,
        **TINY_MOE,
    )


def _is_mha(spec: ModelSpec) -> bool:
    return spec.num_kv_heads == spec.num_attention_heads


CASES: dict[str, Case] = {
    "llama-mha": Case("llama", ["llama-2-13b", "llama-2-7b"], _llama, pick=_is_mha),
    "llama-gqa": Case("llama", ["llama-3.1-8b", "llama-3-8b", "llama-3.1-70b"], _llama, pick=lambda s: not _is_mha(s)),
    "mistral": Case("mistral", ["mistral-7b-v0.1"], _mistral, scale_window=True),
    "mixtral": Case("mixtral", ["mixtral-8x7b", "mixtral-8x7b-v0.1"], _mixtral),
    "qwen2": Case("qwen2", ["qwen2.5-7b", "qwen2.5-72b"], _qwen2),
    "qwen3": Case("qwen3", ["qwen3-8b"], _qwen3),
    "qwen3_moe": Case("qwen3_moe", ["qwen3-30b-a3b"], _qwen3_moe),
    "gemma2": Case("gemma2", ["gemma-2-9b", "gemma-2-27b"], _gemma2, scale_window=True),
    "gemma3": Case("gemma3", ["gemma-3-27b"], _gemma3, scale_window=True),
    "gemma3n": Case("gemma3n_text", ["gemma-3n-e4b", "gemma-3n-e2b"], _gemma3n, scale_window=True),
    "deepseek_v2": Case("deepseek_v2", ["deepseek-v2"], _deepseek("DeepseekV2Config")),
    "deepseek_v3": Case("deepseek_v3", ["deepseek-v3"], _deepseek("DeepseekV3Config")),
    "deepseek_v32": Case("deepseek_v32", ["deepseek-v3.2-exp"], _deepseek("DeepseekV32Config")),
    "kimi_k2": Case("kimi_k2", ["kimi-k2-instruct-0905"], _deepseek("DeepseekV3Config")),
    "smollm3": Case("smollm3", ["smollm3-3b"], _smollm3),
    "olmo2": Case("olmo2", ["olmo-2-1124-7b"], _olmo2),
    "minimax_m2": Case("minimax_m2", ["minimax-m2"], _minimax_m2),
    "cohere2": Case("cohere2", ["command-a-03-2025"], _cohere2, scale_window=True),
    "phi3": Case("phi3", ["phi-3-mini-128k", "phi-3-mini-128k-instruct"], _phi3),
    "falcon": Case("falcon", ["falcon-7b"], _falcon),
    # gpt-oss keeps its real 128-token window: 160 tokens exceed it cheaply
    "gpt_oss": Case("gpt_oss", ["gpt-oss-20b", "gpt-oss-120b"], _gpt_oss, lengths=(100, 160)),
    "llama4": Case(
        "llama4", ["llama-4-scout", "llama-4-scout-17b-16e", "llama-4-maverick"], _llama4, scale_window=True
    ),
    # the reference Mamba scan is slow on CPU at d_inner 8192: one short prompt
    "jamba": Case("jamba", ["jamba-v0.1", "jamba-1.5-mini", "jamba-1.5-large"], _jamba, lengths=(SHORT,)),
    "qwen3_next": Case("qwen3_next", ["qwen3-next-80b-a3b", "qwen3-next-80b-a3b-instruct"], _qwen3_next),
    # the reference Mamba2 chunk scan is slow on CPU at these state sizes: one short prompt
    "nemotron_h": Case("nemotron_h", ["nemotron-h-8b-base-8k"], _nemotron_h, lengths=(SHORT,), slow=True),
    "granitemoehybrid": Case("granitemoehybrid", ["granite-4.0-h-small"], _granitemoehybrid, lengths=(SHORT,)),
    "falcon_h1": Case("falcon_h1", ["falcon-h1-7b-instruct"], _falcon_h1, lengths=(SHORT,)),
    # lightning attention keeps its K^T V state in the model's dtype and no conv: the ideal layout exactly
    # 70 lightning layers of 64 heads x 128 (qkv, gate and out projections ~220M weights even at a tiny hidden)
    "minimax_m1": Case("minimax_m1", ["minimax-m1-80k"], _minimax, lengths=(SHORT,), slow=True),
    "glm4_moe": Case("glm4_moe", ["glm-4.5-air", "glm-4.5"], _glm4_moe),
    "qwen3_5": Case("qwen3_5", ["qwen3.5-27b"], _qwen3_5),
    "qwen3_5_moe": Case("qwen3_5_moe", ["qwen3.5-35b-a3b"], _qwen3_5),
}


def case_spec(case: Case) -> ModelSpec:
    spec = bundled(case.candidates, family=case.family, pick=case.pick)
    return with_windows(spec, SMALL_WINDOW) if case.scale_window else spec


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matmuls: one thread is faster than many fighting over 2 cores."""
    with single_thread():
        yield


@contextlib.contextmanager
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Measured:
    """One family's skeleton, measured after a prefill of each length and after one decode step."""

    family: str
    spec: ModelSpec
    prefill: dict[int, list[LayerBytes]]  # length -> per-layer bytes right after prefill
    decode: dict[int, list[LayerBytes]]  # length -> per-layer bytes after one more token (length + 1)


@functools.cache
def measure_family(family: str) -> Measured:
    """Build the family's skeleton once per session and measure it (the model is dropped after)."""
    case = CASES[family]
    spec = case_spec(case)
    after_prefill, after_decode = {}, {}
    with single_thread():
        model = build(case.config(spec))
        for length in case.lengths:
            cache = prefill(model, length)
            after_prefill[length] = layer_bytes(cache)
            after_decode[length] = layer_bytes(decode_one(model, cache))
    return Measured(family, spec, after_prefill, after_decode)


@pytest.fixture(params=[pytest.param(name, marks=pytest.mark.slow) if c.slow else name for name, c in CASES.items()])
def measured(request: pytest.FixtureRequest) -> Measured:
    return measure_family(request.param)


def test_transformers_layout_is_exact_per_layer(measured: Measured) -> None:
    """kvplan.engines.transformers == the tensors the DynamicCache holds, layer by layer, every length."""
    plan = transformers_cache_plan(measured.spec, DTYPE)
    for tokens, rows in [(n, r) for n, r in measured.prefill.items()] + [
        (n + 1, r) for n, r in measured.decode.items()
    ]:
        assert len(rows) == measured.spec.num_layers, measured.family
        assert [r.logical for r in rows] == [c.bytes_at(tokens) for c in plan.layers], (measured.family, tokens)
        assert sum(r.logical for r in rows) == transformers_cache_bytes(measured.spec, tokens, DTYPE)


def test_transformers_layout_storage_is_exact(measured: Measured) -> None:
    """The storage the cache keeps alive: whole prompt after prefill, window tokens once decoding."""
    for length, rows in measured.prefill.items():
        held = transformers_cache_bytes(measured.spec, length, DTYPE, held="prefill")
        assert allocated_total(rows) == held, (measured.family, length)
    for length, rows in measured.decode.items():
        held = transformers_cache_bytes(measured.spec, length + 1, DTYPE, held="decode")
        assert allocated_total(rows) == held, (measured.family, length + 1)


# Recurrent layers, at any length: transformers keeps d_conv (not d_conv - 1) conv columns and the
# SSM / delta-rule state in float32 (not the model's bf16). Ideal minus transformers, in bytes:
RECURRENT_MINUS_TRANSFORMERS: dict[str, int] = {
    # Jamba, 28 Mamba layers, d_inner 8192, d_state 16, d_conv 4: ideal 8192x3x2 + 8192x16x2 =
    # 311,296 B; transformers 8192x4x2 + 8192x16x4 = 589,824 B; 28 x (-278,528) = -7,798,784.
    "jamba": -7_798_784,
    # Qwen3-Next, 36 Gated DeltaNet layers: conv channels 2x16x128 + 32x128 = 8192, state 32x128x128
    # = 524,288: ideal 8192x3x2 + 524,288x2 = 1,097,728 B; transformers 8192x4x2 + 524,288x4 =
    # 2,162,688 B; 36 x (-1,064,960) = -38,338,560.
    "qwen3_next": -38_338_560,
    # Mamba2 (NemotronH, GraniteMoeHybrid, FalconH1 mixers): conv over d_inner + 2 x groups x d_state channels,
    # state [heads, head_dim, d_state] = d_inner x d_state. Nemotron-H 8B, 24 layers: conv 10,240, state
    # 1,048,576: ideal 10,240x3x2 + 1,048,576x2 = 2,158,592 B; transformers 10,240x4x2 + 1,048,576x4 =
    # 4,276,224 B; 24 x (-2,117,632) = -50,823,168.
    "nemotron_h": -50_823_168,
    # Granite 4.0 H Small, 36 layers: conv 8,448, state 1,048,576: ideal 2,147,840 B, transformers
    # 8,448x4x2 + 4,194,304 = 4,261,888 B; 36 x (-2,114,048) = -76,105,728.
    "granitemoehybrid": -76_105_728,
    # Falcon-H1 7B, 44 layers (each beside its attention): conv 3,584, state 3,072 x 256 = 786,432: ideal
    # 3,584x3x2 + 786,432x2 = 1,594,368 B; transformers 3,584x4x2 + 786,432x4 = 3,174,400 B; 44 x (-1,580,032).
    "falcon_h1": -69_521_408,
    # Qwen3.5 27B, 48 Gated DeltaNet layers: conv channels 2x16x128 + 48x128 = 10,240, state 48x128x128 = 786,432.
    # Its config states mamba_ssm_dtype "float32" (ssm_state_dtype fp32), which the ideal layout keeps: ideal
    # 10,240x3x2 + 786,432x4 = 3,207,168 B; transformers 10,240x4x2 + 786,432x4 = 3,227,648 B (its cache reads no
    # such field; the state is float32 anyway); 48 x (-20,480) = -983,040: only the conv column remains. (Was
    # -76,480,512 with the ideal's state at bf16, 1,634,304 B a layer, before kvplan read the field.)
    "qwen3_5": -983_040,
    # Qwen3.5 35B-A3B, 30 layers of Qwen3-Next's DeltaNet sizes, state fp32 as the 27B's: conv 8,192 channels,
    # 8,192x3x2 - 8,192x4x2 = -16,384 a layer; 30 x (-16,384) = -491,520 (was 30 x (-1,064,960) = -31,948,800).
    "qwen3_5_moe": -491_520,
}

# ideal (kvplan.memory.cache_plan) minus what transformers' cache tensors hold, in bytes, after a
# prefill of each length. Absent lengths / families: 0, the ideal layout is exactly what is stored.
IDEAL_MINUS_TRANSFORMERS: dict[str, dict[int, int]] = {
    # Sliding / chunked layers keep window - 1 tokens, the ideal keeps window: one token per such
    # layer once the prompt exceeds the window. Per-token bytes = 2 (K, V) x kv_heads x head_dim x 2 B.
    "mistral": {LONG: 32 * 4_096},  # 32 sliding layers x (2 x 8 x 128 x 2) = 131,072
    "gemma2": {LONG: 21 * 8_192},  # 21 of 42 sliding x (2 x 8 x 256 x 2) = 172,032
    "gemma3": {LONG: 52 * 8_192},  # 52 of 62 sliding x (2 x 16 x 128 x 2) = 425,984
    # Gemma 3n E4B: 16 sliding layers store (the 12 shared sliding ones hold nothing) x (2 x 2 x 256 x 2) = 32,768
    "gemma3n": {LONG: 16 * 2_048},
    "gpt_oss": {160: 12 * 2_048},  # 12 of 24 sliding (real W=128) x (2 x 8 x 64 x 2) = 24,576
    "llama4": {LONG: 36 * 4_096},  # 36 of 48 chunked x (2 x 8 x 128 x 2) = 147,456
    "cohere2": {LONG: 48 * 4_096},  # Command A: 48 of 64 sliding x (2 x 8 x 128 x 2) = 196,608
    "jamba": {SHORT: RECURRENT_MINUS_TRANSFORMERS["jamba"]},
    "qwen3_next": {length: RECURRENT_MINUS_TRANSFORMERS["qwen3_next"] for length in (SHORT, LONG)},
    **{
        family: {SHORT: RECURRENT_MINUS_TRANSFORMERS[family]}
        for family in ("nemotron_h", "granitemoehybrid", "falcon_h1")
    },
    "qwen3_5": {length: RECURRENT_MINUS_TRANSFORMERS["qwen3_5"] for length in (SHORT, LONG)},
    "qwen3_5_moe": {length: RECURRENT_MINUS_TRANSFORMERS["qwen3_5_moe"] for length in (SHORT, LONG)},
}


def test_ideal_layout_differs_only_where_pinned(measured: Measured) -> None:
    """cache_plan (ideal) == transformers wherever it stores the ideal; else the pinned difference."""
    plan = cache_plan(measured.spec, DTYPE)
    pinned = IDEAL_MINUS_TRANSFORMERS.get(measured.family, {})
    for length, rows in measured.prefill.items():
        stored = sum(r.logical for r in rows)
        assert plan.bytes_per_sequence(length) - stored == pinned.get(length, 0), (measured.family, length)


def test_ideal_layout_is_the_storage_held_while_decoding(measured: Measured) -> None:
    """Once generating, the storage kept alive is exactly the ideal layout, recurrent states aside."""
    plan = cache_plan(measured.spec, DTYPE)
    recurrent = RECURRENT_MINUS_TRANSFORMERS.get(measured.family, 0)
    for length, rows in measured.decode.items():
        held = allocated_total(rows)
        assert plan.bytes_per_sequence(length + 1) - held == recurrent, (measured.family, length + 1)


@pytest.mark.parametrize("measured", ["deepseek_v2", "deepseek_v3"], indirect=True)
def test_mla_caches_the_latent_not_expanded_heads(measured: Measured) -> None:
    """Pinned: transformers 5.24 DeepSeek caches keys = latent [1, L, kv_lora_rank], values = the
    shared RoPE key [1, L, qk_rope_head_dim] -- not K [heads, nope + rope] and V [heads, v_head_dim]."""
    mla = only_kind(measured.spec, "mla")
    for length, rows in measured.prefill.items():
        expected = (((1, 1, length, mla.kv_lora_rank), "bfloat16"), ((1, 1, length, mla.qk_rope_head_dim), "bfloat16"))
        assert {r.tensors for r in rows} == {expected}


@pytest.mark.parametrize("measured", ["jamba", "qwen3_next", "qwen3_5"], indirect=True)
def test_recurrent_state_shapes_and_dtypes(measured: Measured) -> None:
    """Pinned: conv state [1, channels, d_conv] in bf16, recurrent state in float32."""
    kind = only_kind(measured.spec, "recurrent")
    if kind.variant == "mamba":  # Jamba: conv over d_inner channels, SSM state [d_inner, d_state]
        expected = (((1, kind.d_inner, kind.d_conv), "bfloat16"), ((1, kind.d_inner, kind.d_state), "float32"))
    else:  # Gated DeltaNet: conv over q, k, v channels, state [v_heads, head_k_dim, head_v_dim]
        channels = 2 * kind.n_k_heads * kind.head_k_dim + kind.n_heads * kind.head_v_dim
        state = (1, kind.n_heads, kind.head_k_dim, kind.head_v_dim)
        expected = (((1, channels, kind.d_conv), "bfloat16"), (state, "float32"))
    recurrent_layers = [i for i, n in enumerate(measured.spec.layer_kind_names) if measured.spec.kind(n) == kind]
    for rows in measured.prefill.values():
        assert {rows[i].tensors for i in recurrent_layers} == {expected}


def test_prefill_keeps_the_whole_prompt_on_sliding_layers() -> None:
    """Pinned: after a one-shot prefill beyond the window, Mistral's cache pins all 40 tokens."""
    spec = with_windows(load_bundled("mistral-7b-v0.1"), SMALL_WINDOW)
    model = build(_mistral(spec))
    rows = layer_bytes(prefill(model, LONG))
    # tensors: 32 layers x 15 tokens x 4,096 B = 1,966,080; storage: 32 x 40 x 4,096 = 5,242,880
    assert sum(r.logical for r in rows) == 1_966_080
    assert allocated_total(rows) == 5_242_880


def test_transformers_layout_rejects_an_unknown_measure() -> None:
    with pytest.raises(InvalidInput, match="'peak'"):
        transformers_cache_bytes(load_bundled("mistral-7b-v0.1"), 4096, held="peak")


def test_transformers_layout_scales_with_batch() -> None:
    # Mistral 7B at 40,000 tokens, W=4096: 32 layers x 4,095 tokens x 4,096 B = 536,739,840 per sequence
    spec = load_bundled("mistral-7b-v0.1")
    assert transformers_cache_bytes(spec, 40_000) == 536_739_840
    assert transformers_cache_bytes(spec, 40_000, batch=3) == 3 * 536_739_840


# ---- every other bundled spec: one prompt beyond the (scaled) window, tensors exact per layer ----

BUILDERS: dict[str, Case] = {case.family: case for case in CASES.values()}


def _family_case_names() -> set[str]:
    names = set(bundled_names())
    return {next((n for n in case.candidates if n in names), "") for case in CASES.values()}


def _sweep_spec(spec: ModelSpec, *, scale_window: bool) -> ModelSpec:
    """Query heads cut to the KV heads (the cache does not depend on them), windows scaled if asked."""
    data = (with_windows(spec, SMALL_WINDOW) if scale_window else spec).model_dump(exclude_none=True)
    if not any(k.type == "mla" for k in spec.layers.kinds.values()):
        data["num_attention_heads"] = spec.num_kv_heads
    return ModelSpec.model_validate(data)


# Families transformers 5.24 has no class for (remote code on the Hub): no skeleton to measure; their
# golden tests in tests/test_catalog.py carry the arithmetic by hand instead.
NO_TRANSFORMERS_CLASS = {"nemotron-nas": "DeciLMForCausalLM is remote code (modeling_decilm.py on the Hub)"}
# Families whose cache needs more than token ids to fill: measured by their own test below.
OWN_TEST = {"mllama": "cross-attention layers fill only with an image: test_mllama_cross_layers_hold_the_image_tokens"}


@pytest.mark.parametrize("name", sorted(set(bundled_names()) - _family_case_names()))
def test_every_bundled_spec_matches_its_skeleton(name: str) -> None:
    spec = load_bundled(name)
    if spec.family in NO_TRANSFORMERS_CLASS:
        assert not hasattr(transformers, "DeciLMForCausalLM")  # fails when transformers gains the class
        pytest.skip(f"{name}: {NO_TRANSFORMERS_CLASS[spec.family]}")
    if spec.family in OWN_TEST:
        pytest.skip(f"{name}: {OWN_TEST[spec.family]}")
    assert spec.family in BUILDERS, f"{name}: no transformers skeleton for family {spec.family!r}; add a Case"
    case = BUILDERS[spec.family]
    small = _sweep_spec(spec, scale_window=case.scale_window)
    length = max(case.lengths)
    rows = layer_bytes(prefill(build(case.config(small)), length))
    plan = transformers_cache_plan(small, DTYPE)
    assert [r.logical for r in rows] == [c.bytes_at(length) for c in plan.layers], name


# ---- Llama 3.2 Vision: cross-attention layers hold the image's vision tokens -------------------------


def _mllama_skeleton(spec: ModelSpec) -> Any:
    """The bundled spec's 40 layers and cross-attention positions; tiny text and vision sizes. A 28 px tile of
    14 px patches gives 2 x 2 + 1 (class) = 5 vision tokens per tile, 4 tiles: 20 tokens per image."""
    cross = [i for i, n in enumerate(spec.layer_kind_names) if spec.kind(n).type == "cross"]
    text = {"hidden_size": 32, "num_hidden_layers": spec.num_layers, "num_attention_heads": 4, "num_key_value_heads": 2,
            "intermediate_size": 64, "vocab_size": 128, "cross_attention_layers": cross, "pad_token_id": 0,
            "bos_token_id": 1, "eos_token_id": 2}  # fmt: skip
    vision = {"image_size": 28, "patch_size": 14, "max_num_tiles": 4, "hidden_size": 16, "num_hidden_layers": 2,
              "num_global_layers": 1, "attention_heads": 2, "intermediate_size": 32, "vision_output_dim": 48,
              "intermediate_layers_indices": [0, 1]}  # fmt: skip
    return transformers.MllamaConfig(text_config=text, vision_config=vision, image_token_index=120)


def test_mllama_cross_layers_hold_the_image_tokens() -> None:
    """One image (4 tiles, aspect ratio 2 x 2) and a 40-token prompt, then one decode step: every self-attention
    layer holds the text tokens, every cross-attention layer the 20 vision tokens whatever the length; kvplan's
    import of the same config (transformers layout) matches layer by layer."""
    from transformers.initialization import no_init_weights

    spec = bundled(["llama-3.2-11b-vision"], family="mllama")
    config = _mllama_skeleton(spec)
    torch.manual_seed(0)
    with no_init_weights():
        model = transformers.MllamaForConditionalGeneration(config).to(torch.bfloat16)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.02)
    ids = torch.randint(0, 100, (1, LONG))
    ids[0, 0] = config.image_token_index
    image = {
        "pixel_values": torch.randn(1, 1, 4, 3, 28, 28, dtype=torch.bfloat16),
        "aspect_ratio_ids": torch.tensor([[6]]),  # [2, 2] in the default supported_aspect_ratios
        "aspect_ratio_mask": torch.ones(1, 1, 4, dtype=torch.long),
    }
    with torch.no_grad():
        mask = torch.ones(1, LONG, 1, 4, dtype=torch.long)
        cache = model.eval()(input_ids=ids, cross_attention_mask=mask, use_cache=True, **image).cache
        prefill_rows = layer_bytes(cache)
        mask = torch.ones(1, 1, 1, 4, dtype=torch.long)
        step = model(input_ids=ids[:, :1], cache=cache, cross_attention_mask=mask, use_cache=True).cache
    imported = spec_from_hf_config(config.to_dict(), origin="skeleton").spec
    assert {imported.kind(n).cross_tokens for n in imported.layer_kind_names if imported.kind(n).type == "cross"} == {
        20
    }
    plan = transformers_cache_plan(imported, DTYPE)
    assert [r.logical for r in prefill_rows] == [c.bytes_at(LONG) for c in plan.layers]
    assert [r.logical for r in layer_bytes(step)] == [c.bytes_at(LONG + 1) for c in plan.layers]


# ---- Gemma 4: global layers with their own head size and KV heads ------------------------------------


@pytest.mark.parametrize(
    "geometry",
    [
        {"attention_k_eq_v": True, "num_global_key_value_heads": 1, "num_kv_shared_layers": 0},
        {"attention_k_eq_v": False, "num_kv_shared_layers": 6},
    ],
    ids=["k-eq-v", "kv-shared"],
)
def test_gemma4_global_layers_keep_their_own_head_size(geometry: dict[str, Any]) -> None:
    """18 layers, 5 sliding (W 16, 2 KV heads of 16) to 1 global (head 32; 1 KV head when attention_k_eq_v):
    transformers' cache after a 40-token prefill equals kvplan's import of the same config layer by layer,
    read from transformers' own per_layer_config and from the config.json spelling (global_head_dim)."""
    config = transformers.Gemma4TextConfig(
        hidden_size=64, num_hidden_layers=18, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        global_head_dim=32, sliding_window=SMALL_WINDOW, vocab_size_per_layer_input=128, hidden_size_per_layer_input=8,
        **{**TINY, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}, **geometry,
    )  # fmt: skip
    rows = layer_bytes(prefill(build(config), LONG))
    raw = config.to_dict()
    as_json = {k: v for k, v in raw.items() if k != "per_layer_config"} | {"global_head_dim": 32}
    if "num_global_key_value_heads" in geometry:
        as_json["num_global_key_value_heads"] = geometry["num_global_key_value_heads"]
    for data in (raw, as_json):
        plan = transformers_cache_plan(spec_from_hf_config(data, origin="skeleton").spec, DTYPE)
        assert [r.logical for r in rows] == [c.bytes_at(LONG) for c in plan.layers]


def test_trtllm_declared_windows_land_on_the_layers_transformers_slides() -> None:
    """TensorRT-LLM repeats ``kv_cache_config.max_attention_window`` over the layers (resource_manager.py
    KVCacheManager._get_window_size_to_layers: local layer j takes ``windows[j % len]``). Gemma 2's pattern stated as
    the two-entry list ``[W, L]`` must put ``W`` on exactly the layers transformers' Gemma2Config makes sliding (its
    default layer_types: even index), and ``L`` on the full ones. Per layer, after 41 tokens: transformers keeps
    ``W - 1`` tokens on a sliding layer (cache_utils.py DynamicSlidingWindowLayer.update: "Only cache the last
    `self.sliding_window - 1` tokens", the current token making the W it attends to) and all 41 on a full one;
    TensorRT-LLM keeps ``W`` (the window includes the current token) and 41."""
    from kvplan.capacity import setup
    from kvplan.engines import Settings

    spec = with_windows(load_bundled("gemma-2-9b"), SMALL_WINDOW)
    model = build(_gemma2(spec))
    cache = decode_one(model, prefill(model, LONG))
    seen = LONG + 1
    held = [int(layer.keys.shape[-2]) for layer in cache.layers]
    windows = (SMALL_WINDOW, seen)
    s = setup(spec, "h100-sxm", engine="trtllm", settings=Settings(max_attention_window=windows))
    layout = s.stages[0].layout
    declared = [min(seen, layout.windows[j % len(layout.windows)]) for j in range(len(layout.layers))]
    assert [d < seen for d in declared] == [h < seen for h in held]  # the same layers windowed
    assert all(h == d - 1 if d < seen else h == d for h, d in zip(held, declared, strict=True))
    assert sum(d < seen for d in declared) == spec.num_layers // 2

"""What a Mamba2 mixer computes and moves when it reads a prompt: the work :mod:`kvplan.latency` prices at prefill.

A Mamba2 mixer (transformers ``modeling_nemotron_h.py`` ``NemotronHMamba2Mixer``; vLLM
``vllm/model_executor/layers/mamba/mamba_mixer2.py`` ``MambaMixer2``) runs two kernels over a prompt's tokens
besides its in/out projections (priced as GEMMs elsewhere):

* the **causal conv1d** over ``conv_dim = n_heads x head_dim + 2 x n_groups x d_state`` channels (x, B and C), a
  depthwise filter of ``d_conv`` taps: each token's channels read once and written once, the taps read once
  (vLLM ``ops/causal_conv1d.py`` ``causal_conv1d_fn``; TensorRT-LLM's ``causal_conv1d_fn``, measured in
  aiconfigurator 0.12.0's ``mamba2_perf`` tables). Memory-bound: priced by its bytes.
* the **SSD chunked scan** (Dao & Gu, "Transformers are SSMs", arXiv 2405.21060, section 6 "A Hardware-Efficient
  Algorithm for Computing SSMs"; vLLM ``ops/ssd_combined.py`` ``mamba_chunk_scan_combined_varlen``: the five Triton
  kernels chunk cumsum, chunk state, state passing, bmm ``C B^T`` and chunk scan). The sequence is cut into chunks of
  ``Q`` tokens (the config's ``chunk_size`` / ``mamba_chunk_size``). Per token and layer, in multiply-adds:

  - the diagonal blocks: ``C B^T`` within the chunk, ``Q x d_state`` per group (``n_groups`` of them), then that
    ``Q x Q`` matrix (masked by the decays) times x, ``Q x head_dim`` per head;
  - the chunk states: ``B^T x``, ``d_state x head_dim`` per head;
  - the off-diagonal blocks: ``C`` times the state passed in, ``d_state x head_dim`` per head;

  (the state passing between chunks is ``d_state x head_dim`` per head per *chunk*: 1/Q of a term above, left out).
  So ``FLOPs per token = 2 (Q d_state n_groups + Q head_dim n_heads + 2 d_state head_dim n_heads)``: the paper's
  count, linear in the tokens at a fixed chunk size. Compute-bound: priced by FLOPs at the measured efficiency of
  the Triton kernels (:data:`kvplan.engines.base.SSD_SCAN_EFF`, ``benchmarks/mamba_compare.py --scan``).

Under tensor parallelism the heads and groups split over the ranks (vLLM ``MambaMixer2``: ``n_groups`` divides by
the TP size, or is replicated to it when smaller; kvplan takes ``ceil(n_groups / tp)``), as do the conv channels.
A prompt read in several chunks costs the sum of its chunks (each chunk starts from the state the previous one left:
the state read and written per chunk, ``n_heads x head_dim x d_state`` elements, is below 0.1 % of the scan's time
at any chunk of 128 tokens or more, and left out).
"""

from __future__ import annotations

from typing import NamedTuple

from kvplan.spec import LayerKind, ceil_div

# The SSD chunk size where a config gives none: transformers 5.24 Mamba2Config.chunk_size and mamba_ssm's
# Mamba2(chunk_size=256) default (GraniteMoeHybridConfig, BambaConfig and FalconH1Config mamba_chunk_size = 256 too).
DEFAULT_SCAN_CHUNK = 256
# bf16 activations: the conv1d reads and writes the model's 16-bit x, B and C (vLLM and TensorRT-LLM run it in the
# activation dtype, the mamba2_perf tables' rows are bf16).
CONV_ELEMENT_BYTES = 2
# Kernels each call launches: the conv1d one (vLLM ops/causal_conv1d.py causal_conv1d_fn), the SSD scan five (vLLM
# ops/ssd_combined.py _mamba_chunk_scan_combined_fwd: _chunk_cumsum_fwd, _chunk_state_fwd, _state_passing_fwd,
# _bmm_chunk_fwd, _chunk_scan_fwd).
CONV1D_KERNELS = 1
SSD_SCAN_KERNELS = 5


def mamba2_kinds(kind: LayerKind) -> list[LayerKind]:
    """The Mamba2 mixers a layer of ``kind`` runs: itself, the one beside its attention (Falcon-H1), or none."""
    mixers = [kind, kind.parallel] if kind.parallel is not None else [kind]
    return [k for k in mixers if k.type == "recurrent" and k.variant == "mamba2"]


def _head_dim(kind: LayerKind) -> int:
    return kind.d_inner // kind.n_heads


def scan_chunk(kind: LayerKind) -> int:
    """The SSD chunk size ``Q`` of a Mamba2 kind (:data:`DEFAULT_SCAN_CHUNK` where the spec gives none)."""
    return kind.scan_chunk or DEFAULT_SCAN_CHUNK


def scan_flops_per_token(kind: LayerKind, *, tp: int = 1) -> int:
    """The SSD chunked scan's FLOPs per prompt token of one Mamba2 layer on one of ``tp`` ranks (module docstring)."""
    q, n, p = scan_chunk(kind), kind.d_state, _head_dim(kind)
    heads, groups = ceil_div(kind.n_heads, tp), ceil_div(kind.n_groups, tp)
    return 2 * (q * n * groups + q * p * heads + 2 * n * p * heads)


def scan_flops(kind: LayerKind, tokens: float, *, tp: int = 1) -> float:
    """The SSD chunked scan's FLOPs over ``tokens`` prompt tokens (any split into prompts or chunks: linear)."""
    return tokens * scan_flops_per_token(kind, tp=tp)


def conv_channels(kind: LayerKind, *, tp: int = 1) -> int:
    """The conv1d's channels on one of ``tp`` ranks: x, B and C (transformers ``NemotronHMamba2Mixer.conv_dim``)."""
    return ceil_div(kind.d_inner, tp) + 2 * ceil_div(kind.n_groups, tp) * kind.d_state


def conv1d_token_bytes(kind: LayerKind, *, tp: int = 1) -> int:
    """Bytes the prefill conv1d moves per prompt token: its channels read once and written once."""
    return 2 * CONV_ELEMENT_BYTES * conv_channels(kind, tp=tp)


def conv1d_tap_bytes(kind: LayerKind, *, tp: int = 1) -> int:
    """Bytes the prefill conv1d reads once per call whatever the tokens: the ``d_conv`` taps of every channel."""
    return CONV_ELEMENT_BYTES * conv_channels(kind, tp=tp) * kind.d_conv


def conv1d_bytes(kind: LayerKind, tokens: float, *, tp: int = 1) -> float:
    """Bytes the prefill conv1d moves over ``tokens`` prompt tokens in one call (``benchmarks/mamba_compare.py`` sets
    this against aiconfigurator's measured ``causal_conv1d_fn``)."""
    return tokens * conv1d_token_bytes(kind, tp=tp) + conv1d_tap_bytes(kind, tp=tp)


# ---- every recurrent mixer kind: the work of one layer on one TP rank, prefill and decode ----------------------------
# Gated DeltaNet's chunk (vLLM vllm/model_executor/layers/fla/ops/chunk.py chunk_gated_delta_rule_fwd, read in the
# 0.16.0 wheel: chunk_local_cumsum(g, chunk_size=64), the WY representation and chunk_fwd_o all on 64-token chunks; the
# same fla code TensorRT-LLM and SGLang call as chunk_gated_delta_rule).
DELTANET_CHUNK = 64
# The fla chunked delta rule's kernels per call (same chunk.py): chunk_local_cumsum, chunk_scaled_dot_kkt_fwd,
# solve_tril, recompute_w_u_fwd, chunk_gated_delta_rule_fwd_h, chunk_fwd_o.
DELTANET_SCAN_KERNELS = 6
# Lightning attention's blocks (vLLM vllm/model_executor/layers/lightning_attn.py @030ea52e and the 0.16.0 wheel,
# _attention.forward: BLOCK = 256, the diagonal kernel on CBLOCK = 32 row sub-blocks) and its kernels per call
# (_fwd_diag_kernel, _fwd_kv_parallel, _fwd_kv_reduce, _fwd_none_diag_kernel); called once per prompt
# (0.16.0 vllm/model_executor/layers/mamba/linear_attn.py _prefill_and_mix_infer: "for _prefill_idx in range(...)").
LIGHTNING_BLOCK = 256
LIGHTNING_SUB_BLOCK = 32
LIGHTNING_KERNELS = 4
# Mamba (v1): one selective-scan kernel per call besides the conv1d (vLLM 0.16.0 wheel,
# vllm/model_executor/layers/mamba/mamba_mixer.py MambaMixer: causal_conv1d_fn then selective_scan_fn; at decode
# causal_conv1d_update and selective_state_update).
SELECTIVE_SCAN_KERNELS = 1
# Decode: one conv-state update and one state-update kernel per layer (vLLM causal_conv1d_update +
# selective_state_update for Mamba and Mamba2; causal_conv1d_update + fused_recurrent_gated_delta_rule for Gated
# DeltaNet; lightning has no conv: linear_decode_forward_triton alone).
DECODE_KERNELS = {"mamba": 2, "mamba2": 2, "gated_deltanet": 2, "lightning": 1}


class MixerWork(NamedTuple):
    """What one recurrent mixer layer does on one TP rank when it reads prompt tokens.

    ``scan_flops_per_token`` is tensor-core work of a chunked scan (Mamba2's SSD, Gated DeltaNet's chunked delta rule,
    lightning attention's blocks), priced at a scan efficiency; ``token_bytes`` what its memory-bound kernels move per
    token (the conv1d; Mamba v1's selective scan), ``call_bytes`` what they read once per call (the conv taps);
    ``kernels`` the launches of one call; ``per_prompt``: the engine calls the mixer once per prompt, not once for all
    the step's prompts (vLLM's MiniMax lightning layer loops over the prefills)."""

    scan_flops_per_token: int
    token_bytes: int
    call_bytes: int
    kernels: int
    per_prompt: bool = False
    heads: int = 0  # the rank's heads a chunked kernel can spread over (Gated DeltaNet's value heads; 0: not counted)


def recurrent_kinds(kind: LayerKind) -> list[LayerKind]:
    """The recurrent mixers a layer of ``kind`` runs: itself, the one beside its attention (Falcon-H1), or none."""
    mixers = [kind, kind.parallel] if kind.parallel is not None else [kind]
    return [k for k in mixers if k.type == "recurrent"]


def mixer_work(kind: LayerKind, *, tp: int = 1) -> MixerWork:
    """The prefill work of one recurrent mixer of ``kind`` on one of ``tp`` ranks (per variant below)."""
    return {"mamba2": _mamba2_work, "mamba": _mamba_work, "gated_deltanet": _deltanet_work,
            "lightning": _lightning_work}[kind.variant](kind, tp)  # fmt: skip


def conv_token_bytes(kind: LayerKind, *, tp: int = 1) -> int:
    """The part of :func:`mixer_work`'s ``token_bytes`` the causal conv1d moves per prompt token on one of ``tp`` ranks
    (its channels read once and written once; 0 for lightning attention, which has no conv): what
    :func:`kvplan.latency._recurrent_prefill_s` prices at the conv1d kernel's own ceiling where the engine has one."""
    channels = {"mamba2": conv_channels, "mamba": _mamba_conv_channels, "gated_deltanet": deltanet_conv_channels,
                "lightning": lambda k, tp: 0}[kind.variant](kind, tp=tp)  # fmt: skip
    return 2 * CONV_ELEMENT_BYTES * channels


def _mamba_conv_channels(kind: LayerKind, *, tp: int = 1) -> int:
    """Mamba (v1)'s conv1d channels on one rank: depthwise over ``d_inner``."""
    return ceil_div(kind.d_inner, tp)


def _mamba2_work(kind: LayerKind, tp: int) -> MixerWork:
    return MixerWork(scan_flops_per_token(kind, tp=tp), conv1d_token_bytes(kind, tp=tp), conv1d_tap_bytes(kind, tp=tp),
                     CONV1D_KERNELS + SSD_SCAN_KERNELS)  # fmt: skip


def _mamba_work(kind: LayerKind, tp: int) -> MixerWork:
    """Mamba (v1), Gu & Dao arXiv 2312.00752 section 3.3.2: the selective scan is fused so that the state never leaves
    SRAM and it is bound by memory bandwidth ("most operations (except matrix multiplication) are bounded by memory
    bandwidth"): it reads x (after the conv), dt and the gate z (``d_inner`` each), B and C (``d_state`` each, shared
    by the channels) and writes y (``d_inner``), 16-bit. Its CUDA-core FLOPs (about ``9 d_inner d_state`` a token) are
    not priced: the GPU catalog has no CUDA-core peak. The conv1d before it is depthwise over the ``d_inner``
    channels, as Mamba2's. The channels split over the ranks, B and C are whole on each."""
    channels = _mamba_conv_channels(kind, tp=tp)
    conv = 2 * CONV_ELEMENT_BYTES * channels
    scan = CONV_ELEMENT_BYTES * (4 * channels + 2 * kind.d_state)
    return MixerWork(0, conv + scan, CONV_ELEMENT_BYTES * channels * kind.d_conv,
                     CONV1D_KERNELS + SELECTIVE_SCAN_KERNELS)  # fmt: skip


def deltanet_conv_channels(kind: LayerKind, *, tp: int = 1) -> int:
    """Gated DeltaNet's conv1d channels on one rank: q and k (``n_k_heads x head_k_dim`` each) and v
    (``n_heads x head_v_dim``), as its conv state (:func:`kvplan.memory.recurrent_state_elements`)."""
    return ceil_div(2 * kind.n_k_heads * kind.head_k_dim + kind.n_heads * kind.head_v_dim, tp)


def deltanet_flops_per_token(kind: LayerKind, *, tp: int = 1) -> int:
    """The chunked gated delta rule's FLOPs per prompt token on one rank (Yang, Kautz & Hatamizadeh, "Gated Delta
    Networks", arXiv 2412.06464, section 3.3 chunkwise form; vLLM fla/ops/chunk.py), per value head (q and k are
    repeated to the value heads) with chunk ``C``, key dim ``K`` and value dim ``V``, in multiply-adds per token:
    ``K K^T`` within the chunk (``C K``), the WY factors ``W = T (beta K)`` and ``U = T (beta V)`` (``C K + C V``),
    the new values ``U - W S`` and the state update ``S += K^T V_new`` (``2 K V``), the output ``Q S`` (``K V``) and
    the masked ``(Q K^T) V_new`` (``C K + C V``): ``3 C K + 2 C V + 3 K V``. The triangular solve (``C^2 / 2`` a
    token, 2 % of the rest at C = 64, K = V = 128) and the per-chunk gates are left out."""
    c, k, v = DELTANET_CHUNK, kind.head_k_dim, kind.head_v_dim
    return 2 * ceil_div(kind.n_heads, tp) * (3 * c * k + 2 * c * v + 3 * k * v)


def _deltanet_work(kind: LayerKind, tp: int) -> MixerWork:
    channels = deltanet_conv_channels(kind, tp=tp)
    return MixerWork(deltanet_flops_per_token(kind, tp=tp), 2 * CONV_ELEMENT_BYTES * channels,
                     CONV_ELEMENT_BYTES * channels * kind.d_conv, CONV1D_KERNELS + DELTANET_SCAN_KERNELS,
                     heads=ceil_div(kind.n_heads, tp))  # fmt: skip


def lightning_flops_per_token(kind: LayerKind, *, tp: int = 1) -> int:
    """Lightning attention's FLOPs per prompt token on one rank (Qin et al., "Lightning Attention-2", arXiv 2401.04658,
    Algorithm 1: intra-block ``[(Q K^T) * M] V`` and inter-block ``Q (K V)`` with the block's ``K^T V`` added to the
    state; vLLM lightning_attn.py), per head with key dim ``K`` and value dim ``V``, in multiply-adds per token: the
    diagonal block's causal ``Q K^T`` and ``(.) V`` over ``(BLOCK + CBLOCK) / 2`` keys on average (the diagonal
    kernel walks the 32-row sub-blocks up to the query's own), ``Q (K V)`` (``K V``) and ``K^T V`` (``K V``)."""
    keys = (LIGHTNING_BLOCK + LIGHTNING_SUB_BLOCK) // 2
    k, v = kind.head_k_dim, kind.head_v_dim
    return 2 * ceil_div(kind.n_heads, tp) * (keys * (k + v) + 2 * k * v)


def _lightning_work(kind: LayerKind, tp: int) -> MixerWork:
    return MixerWork(lightning_flops_per_token(kind, tp=tp), 0, 0, LIGHTNING_KERNELS, per_prompt=True)

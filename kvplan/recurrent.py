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

"""Disaggregated prefill/decode serving: one pool of replicas runs prompts, another decodes.

A request arrives at the prefill pool, waits for a free prefill replica, is prefilled there (one prompt at a time,
in chunks of the engine's token budget as the aggregated path runs one prompt, :func:`prefill_s`), its KV cache
moves to a decode replica (:func:`kv_transfer`), and the decode replica produces the rest. Per request, at the
mean or a quantile ``q`` (lengths at the same quantile, :meth:`kvplan.serving.Lengths.at`):

    TTFT = wait_q + prefill(I_q) + transfer(I_q) + first step,     TPOT = the decode replica's TPOT at q

* **wait**: each prefill replica is an M/D/1 queue of load ``rho = rate x prefill(I) / replicas`` (M/G/1 where the
  prompt lengths' standard deviation is given, :attr:`kvplan.serving.Lengths.sd`); the wait at ``q`` is
  :func:`kvplan.serving.queue_wait_s` with the mean prompt's service ``prefill(I)`` (an arrival waits for
  the work ahead of it, whatever its own length; only its own prefill and transfer are at ``I_q``): the same rule
  as the aggregated path's prompt queue (:mod:`kvplan.serving`).
* **transfer**: the prompt's KV bytes per rank from kvplan's cache plan, latency plus bandwidth over the NIC
  (NVLink where both pools share an NVLink domain, :func:`kvplan.latency.kv_transfer_s`), plus across nodes a fixed
  cost per transfer-engine entry (:data:`MOONCAKE_ENTRY_S` x :func:`transfer_entries`, the entries from the
  engine's connector layout, ``Engine.disagg_kv_entries``); the part exposed after the prefill follows the
  engine's rule (``Engine.disagg_kv_send``: after the prefill, or chunk by chunk
  overlapping the later chunks, :func:`exposed_transfer_s`).
* **first step**: where the decode instance samples the first token itself (``Engine.disagg_first_token ==
  "decode"``: vLLM), its TTFT in the in-flight model with the prompt prefilled (one token computed, the whole
  prompt attended, :func:`kvplan.serving.serve` ``prefilled=True``) at the same quantile; 0 where the prefill
  instance sends that token along (SGLang, TensorRT-LLM).

The decode pool is :func:`kvplan.serving.serve` with ``prefilled=True`` (it holds every prompt's KV and attends to
it, computes none of it but the last token). With one request (rate -> 0) the figures are the static ones:
``cost``'s prefill + the transfer + one batch-1 step. A rate the prefill replicas cannot keep up with
(``rho >= 1``) or the decode replicas cannot hold is reported ``saturated`` with what binds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from kvplan.capacity import Setup
from kvplan.errors import InvalidInput
from kvplan.memory import StagePlan
from kvplan.serving import DEFAULT_TOKEN_BUDGET, Lengths, ServingResult, prefill_service_s, queue_wait_s, serve

QUANTILES: dict[str, float | None] = {"mean": None, "p90": 0.9, "p99": 0.99}
MAX_PREFILL_LOAD = 0.95  # the busiest a prefill replica is sized to run without a TTFT target (queue stays finite)
_LOAD_STEPS = 60  # bisection on the prefill load: 2**-60 of the bracket


def check_engine(s: Setup) -> None:
    """Disaggregated figures need the engine's hand-off rules (``Engine.disagg_*``); refuse engines not read."""
    if s.engine.disagg_first_token is None or s.engine.disagg_kv_send is None:
        raise InvalidInput(
            f"disaggregated serving: how {s.engine.key} moves a request from its prefill to its decode instances "
            "was not read from its source; use --engine vllm, sglang or trtllm"
        )


# Mooncake transfer engine: the fixed seconds each transfer entry adds to one request's transfer beyond latency +
# bytes / bandwidth. The engines hand one request's KV to it as one batch of (src, dst, length) entries
# (Engine.disagg_kv_entries), which it submits and busy-polls to completion (kvcache-ai/Mooncake
# mooncake-integration/transfer_engine/transfer_engine_py.cpp TransferEnginePy::batchTransferSync @3b5a594). Fitted
# by `python benchmarks/kv_transfer_compare.py --fit` (least squares of ln(kvplan / measured)) to the vLLM
# MooncakeConnector run alone, whose timer wraps exactly that batch call (vllm mooncake_connector.py _send_blocks:
# perf_counter around batch_transfer_sync_write, the DEBUG "Sending to ... done, took" line); the SGLang run (another
# engine, model, GPU and network, its time from the request's time stats) is the held-out check (docs/cost.md).
MOONCAKE_ENTRY_S = 5.95e-06


def transfer_entries(s: Setup) -> int:
    """Transfer-engine entries one request's KV makes on the busiest rank of ``s`` (``Engine.disagg_kv_entries``):
    "k_and_v": two per attention layer holding KV per token (K and V buffers), one per MLA layer (the latent);
    layers holding only a fixed state (recurrent, cross-attention) are not counted. The request's blocks are taken
    as one contiguous run per buffer (a fresh pool; a fragmented one makes one entry per run). 0: not read."""
    if s.engine.disagg_kv_entries is None:
        return 0
    return max(_stage_entries(st.layout.stage) for st in s.stages)


def _stage_entries(stage: StagePlan) -> int:
    return sum(n * (1 if c.type == "mla" else 2) for n, c in stage.groups if c.bytes_per_token > 0)


def entry_cost_s(prefill: Setup, decode: Setup, *, crosses_nodes: bool) -> float:
    """The fixed cost of one send of a request's KV: :data:`MOONCAKE_ENTRY_S` per entry on the side with the most
    (:func:`transfer_entries`), across nodes only: the per-entry cost was measured over RDMA between nodes, and a
    send within one NVLink domain keeps its latency + bandwidth (no measurement of it was found)."""
    if not crosses_nodes:
        return 0.0
    return MOONCAKE_ENTRY_S * max(transfer_entries(prefill), transfer_entries(decode))


def kv_bytes_per_rank(s: Setup, prompt: int) -> int:
    """The busiest rank's KV bytes for one request of ``prompt`` tokens (kvplan's cache plan, per pipeline stage)."""
    return max(st.layout.stage.bytes_at(prompt) for st in s.stages)


def kv_transfer(
    prefill: Setup, decode: Setup, prompt: int, *, crosses_nodes: bool, nic_gbps: float | None = None
) -> tuple[float, int]:
    """(seconds, bytes) to move one request's KV cache of ``prompt`` tokens from the prefill to the decode pool.

    Bytes: kvplan's cache plan at ``prompt`` tokens as each pool's ranks hold it (the MLA latent on every TP
    rank). Every rank pulls its own share at once, so the busiest rank on either side sets the time; the bytes
    reported are what the decode ranks receive in all. ``nic_gbps``: GB/s per GPU between nodes
    (:func:`kvplan.latency.kv_transfer_s`). Across nodes the send's fixed entry cost is added
    (:func:`entry_cost_s`).
    """
    from kvplan.latency import kv_transfer_s

    busiest = max(kv_bytes_per_rank(prefill, prompt), kv_bytes_per_rank(decode, prompt))
    received = decode.tp * sum(st.layout.stage.bytes_at(prompt) for st in decode.stages)
    if busiest <= 0:
        return 0.0, received
    seconds = kv_transfer_s(decode.gpu, busiest, crosses_nodes=crosses_nodes, engine=decode.engine.key,
                            nic_gbps=nic_gbps)  # fmt: skip
    return seconds + entry_cost_s(prefill, decode, crosses_nodes=crosses_nodes), received


def prefill_s(s: Setup, prompt: int, *, memo: dict | None = None) -> float:
    """One prompt of ``prompt`` tokens prefilled alone on a replica of ``s``, in chunks of its token budget as the
    aggregated path runs it (:func:`kvplan.serving.prefill_service_s`; one chunk: ``cost``'s static prefill)."""
    key = ("prefill_s", id(s), prompt)
    if memo is not None and key in memo:
        return memo[key]
    seconds = prefill_service_s(s, prompt)
    if memo is not None:
        memo[key] = seconds
    return seconds


def exposed_transfer_s(
    prefill: Setup, transfer_s: float, *, prefill_time_s: float, prompt: int, fixed_s: float | None = None
) -> float:
    """The part of the KV transfer still running when the prefill ends (``Engine.disagg_kv_send``).

    "after_prefill": all of it. "per_chunk": the prompt is computed in chunks of the engine's token budget
    (``max_num_batched_tokens``, else :data:`kvplan.serving.DEFAULT_TOKEN_BUDGET`), each chunk's KV sent once it is
    computed and the previous chunk's send is done; compute and bytes split in proportion to the tokens (later
    chunks' attention costs more: this slightly overstates how much is hidden), the fixed part of a send
    (``fixed_s``: the latency and the entry cost, :func:`entry_cost_s`; default the network latency alone) paid once
    per chunk: every chunk's send is one batch of all layers' entries (SGLang ``send_kv_chunk`` -> ``send_kvcache``).
    """
    if prefill.engine.disagg_kv_send != "per_chunk":
        return transfer_s
    chunk = prefill.max_num_batched_tokens or DEFAULT_TOKEN_BUDGET
    chunks = math.ceil(prompt / chunk)
    if chunks <= 1:
        return transfer_s
    from kvplan.latency import NETWORK_LATENCY_S

    latency = min(NETWORK_LATENCY_S if fixed_s is None else fixed_s, transfer_s)
    wire = transfer_s - latency
    compute_end = send_end = 0.0
    for i in range(chunks):
        share = min(chunk, prompt - i * chunk) / prompt
        compute_end += prefill_time_s * share
        send_end = max(send_end, compute_end) + latency + wire * share
    return send_end - compute_end


def max_prefill_load(
    service_s: float, budget_s: float, *, quantile: float | None, ahead_s: float | None = None, scv: float = 0.0
) -> float:
    """The busiest a prefill replica may run with ``service_s + wait <= budget_s`` at ``quantile`` (0 when even an
    idle replica misses; at most :data:`MAX_PREFILL_LOAD`), the wait behind requests of ``ahead_s`` seconds of
    service each (the mean prompt's; default ``service_s``; ``scv``: the prompt lengths' squared coefficient of
    variation, :func:`kvplan.serving.queue_wait_s`). The wait grows with the load, so bisection."""
    ahead = service_s if ahead_s is None else ahead_s
    if service_s > budget_s:
        return 0.0
    if service_s + queue_wait_s(ahead, MAX_PREFILL_LOAD, quantile=quantile, scv=scv) <= budget_s:
        return MAX_PREFILL_LOAD
    lo, hi = 0.0, MAX_PREFILL_LOAD
    for _ in range(_LOAD_STEPS):
        mid = (lo + hi) / 2
        if service_s + queue_wait_s(ahead, mid, quantile=quantile, scv=scv) <= budget_s:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True)
class DisaggregatedResult:
    rate_rps: float
    saturated: bool
    limit: str  # "" when served; "prefill" (prompts outrun the prefill replicas) or "decode: <what binds it>"
    prefill_replicas: int
    decode_replicas: int
    prefill_load: float  # each prefill replica's busy share
    prefill_s: float  # one mean-length prompt's prefill
    kv_transfer_s: float  # the mean-length prompt's transfer, the part exposed after its prefill
    kv_transfer_bytes: int  # the mean-length prompt's KV the decode ranks receive
    first_token_s: float  # the decode replica's step before the first token (0: the prefill instance sends it)
    ttft_mean_s: float
    ttft_p90_s: float
    ttft_p99_s: float
    tpot_mean_s: float
    tpot_p90_s: float
    tpot_p99_s: float
    decode: ServingResult  # one decode replica's steady state

    def at(self, percentile: str) -> tuple[float, float]:
        """(TTFT, TPOT) at ``percentile`` (mean, p90, p99)."""
        if percentile == "p99":
            return self.ttft_p99_s, self.tpot_p99_s
        if percentile == "p90":
            return self.ttft_p90_s, self.tpot_p90_s
        return self.ttft_mean_s, self.tpot_mean_s

    def to_dict(self) -> dict:
        return asdict(self)


def decode_ttft_at(r: ServingResult, percentile: str) -> float:
    if percentile == "p99":
        return r.ttft_p99_s
    if percentile == "p90":
        return r.ttft_p90_s
    return r.ttft_mean_s


def first_token_s(decode: Setup, r: ServingResult, *, percentile: str) -> float:
    """The decode replica's share of TTFT (``Engine.disagg_first_token``): its first step, or 0."""
    return decode_ttft_at(r, percentile) if decode.engine.disagg_first_token == "decode" else 0.0


def transfer_at(
    prefill: Setup,
    decode: Setup,
    *,
    prompt: int,
    crosses_nodes: bool,
    memo: dict | None = None,
    nic_gbps: float | None = None,
) -> tuple[float, int]:
    """(exposed transfer seconds, bytes received) for one prompt of ``prompt`` tokens."""
    from kvplan.latency import NETWORK_LATENCY_S

    seconds, moved = kv_transfer(prefill, decode, prompt, crosses_nodes=crosses_nodes, nic_gbps=nic_gbps)
    fixed = NETWORK_LATENCY_S + entry_cost_s(prefill, decode, crosses_nodes=crosses_nodes)
    exposed = exposed_transfer_s(prefill, seconds, prefill_time_s=prefill_s(prefill, prompt, memo=memo), prompt=prompt,
                                 fixed_s=fixed)  # fmt: skip
    return exposed, moved


def serve_disaggregated(
    prefill: Setup,
    decode: Setup,
    *,
    rate_rps: float,
    input_len: Lengths,
    output_len: Lengths,
    prefill_replicas: int = 1,
    decode_replicas: int = 1,
    expert_parallel: bool = False,
    crosses_nodes: bool = True,
    percentiles: tuple[str, ...] = ("mean", "p90", "p99"),
    memo: dict | None = None,
    nic_gbps: float | None = None,
) -> DisaggregatedResult:
    """The steady state of ``prefill_replicas`` prefill and ``decode_replicas`` decode replicas at ``rate_rps``
    (the module docstring). ``percentiles``: the figures to compute (others NaN; the mean always); ``nic_gbps``:
    the network per GPU between the pools (:func:`kvplan.latency.kv_transfer_s`)."""
    check_engine(decode)
    if not 0 <= rate_rps < math.inf:  # NaN and inf: no steady state
        raise InvalidInput(f"invalid rate {rate_rps!r}; expected a finite number of requests per second >= 0")
    if prefill_replicas < 1 or decode_replicas < 1:
        raise InvalidInput(f"invalid pools {prefill_replicas!r} x {decode_replicas!r}; expected at least 1 each")
    for p in percentiles:
        if p not in QUANTILES:
            raise InvalidInput(f"invalid percentile {p!r}; expected one of {', '.join(QUANTILES)}")
    memo = {} if memo is None else memo
    service = prefill_s(prefill, input_len.mean, memo=memo)
    load = rate_rps * service / prefill_replicas
    r = serve(decode, rate_rps=rate_rps / decode_replicas, input_len=input_len, output_len=output_len,
              with_max_rate=False, expert_parallel=expert_parallel, with_p90="p90" in percentiles,
              with_p99="p99" in percentiles, prefilled=True)  # fmt: skip
    transfer, moved = transfer_at(prefill, decode, prompt=input_len.mean, crosses_nodes=crosses_nodes, memo=memo,
                                  nic_gbps=nic_gbps)  # fmt: skip
    nan = float("nan")
    limit = "prefill" if load >= 1 else (f"decode: {r.limit}" if r.saturated else "")
    ttft: dict[str, float] = {}
    for p in ("mean", "p90", "p99"):
        if limit or (p != "mean" and p not in percentiles):
            ttft[p] = nan
            continue
        q = QUANTILES[p]
        prompt = input_len.at(q)
        service_q = prefill_s(prefill, prompt, memo=memo)
        exposed, _ = transfer_at(
            prefill, decode, prompt=prompt, crosses_nodes=crosses_nodes, memo=memo, nic_gbps=nic_gbps
        )
        first = first_token_s(decode, r, percentile=p)
        ttft[p] = queue_wait_s(service, load, quantile=q, scv=input_len.scv) + service_q + exposed + first
    return DisaggregatedResult(
        rate_rps=rate_rps,
        saturated=bool(limit),
        limit=limit,
        prefill_replicas=prefill_replicas,
        decode_replicas=decode_replicas,
        prefill_load=load,
        prefill_s=service,
        kv_transfer_s=transfer,
        kv_transfer_bytes=moved,
        first_token_s=nan if limit else first_token_s(decode, r, percentile="mean"),
        ttft_mean_s=ttft["mean"],
        ttft_p90_s=ttft["p90"],
        ttft_p99_s=ttft["p99"],
        tpot_mean_s=r.tpot_mean_s,
        tpot_p90_s=r.tpot_p90_s,
        tpot_p99_s=r.tpot_p99_s,
        decode=r,
    )


__all__ = [
    "MOONCAKE_ENTRY_S",
    "DisaggregatedResult",
    "check_engine",
    "entry_cost_s",
    "exposed_transfer_s",
    "kv_transfer",
    "max_prefill_load",
    "prefill_s",
    "serve_disaggregated",
    "transfer_entries",
]

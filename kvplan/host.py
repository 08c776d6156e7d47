"""Host (CPU) work per serving step, and how it meets the GPU's: the engine's :class:`~kvplan.engines.base.HostLoop`.

Every step an engine's serving loop schedules the requests, builds the step's inputs, launches the forward pass,
samples and turns the sampled tokens into responses; in the Python engines that work loops over the step's
requests (TensorRT-LLM's ``TorchSampler.update_requests`` makes per-request calls, NVIDIA/TensorRT-LLM#16564;
``_prepare_inputs`` walks the batch, #16313). Where the loop runs one step ahead (TensorRT-LLM's overlap scheduler,
vLLM's async scheduling, SGLang's overlap loop: ``HostLoop.overlaps_gpu``) a step takes ``max(GPU, host)``;
where it waits for each step's tokens, ``GPU + host``. The host work is that of the busiest loop: one rank's own
requests with attention DP (every rank runs its own loop), all of a pipeline cycle's micro-batches with PP.

kvplan does not model the host time by default: no source found gives the host seconds per request of the engine
versions it describes on a known CPU (docs/cost.md, "Host work per step"). ``Settings.host_request_s`` (measured
host seconds per request in a step, e.g. from an engine's iteration log on the user's own server) and
``Settings.host_step_s`` (the step's fixed part, whatever its requests) switch the term on for
:mod:`kvplan.serving` (``kvplan plan --rate ... --host-per-request 30us --host-per-step 0.5ms``);
``benchmarks/published_compare.py --host-floor`` uses it to test the hypothesis.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from kvplan.engines.base import Engine
from kvplan.errors import InvalidInput

if TYPE_CHECKING:
    from kvplan.hardware import GPU

# NVIDIA's own TensorRT-LLM tables, same release and command, a Grace-hosted system against the x86-hosted DGX with the
# same GPU generation: Qwen3-30B-A3B TP1 NVFP4 128/128, GB200 24,107 against B200 39,827 tok/s (0.61; v1.0,
# docs/source/performance/perf-overview.md @00f37686); 1024/1024 GB200 / B200 0.74, GB300 / B300 0.73, GPT-OSS 20B 0.88
# (the release/1.2 page). The deficit is on short-prompt runs of models with few active parameters, where the host's
# work per request meets a short GPU share per request; the figures and the candidates ruled out are in
# benchmarks/gb200_candidates.py and docs/cost.md ("The GB200 misses, cause by cause").
GRACE_PUBLISHED_LOW = 0.61


def combine_s(gpu_s: float, host_s: float, *, overlaps: bool) -> float:
    """A step's wall time from its GPU and host seconds: the longer of the two where the loop runs ahead, else both."""
    return max(gpu_s, host_s) if overlaps else gpu_s + host_s


def check_host_time(engine: Engine, request_s: float | None, step_s: float | None = None) -> None:
    """Refuse a host time the engine's rules cannot place: negative, or for an engine whose loop was not read."""
    for value, what in ((request_s, "per request"), (step_s, "per step")):
        if value is None:
            continue
        if value < 0:
            raise InvalidInput(f"invalid host time {what} {value!r} s; expected 0 or more")
        if value and engine.host_loop.overlaps_gpu is None:
            raise InvalidInput(
                f"a host time {what} needs the engine's serving loop, and {engine.key}'s was not read; "
                "vllm, sglang and trtllm (the newest releases; vllm@0.8 too) have it"
            )


def step_with_host_s(
    engine: Engine, gpu_s: float, *, requests: float, request_s: float | None, step_s: float | None = None
) -> float:
    """``gpu_s`` with the host work of a step over ``requests`` requests (on the busiest rank's loop): ``step_s``
    host seconds for the step plus ``request_s`` for each request; unchanged where no host time is given."""
    if not request_s and not step_s:
        return gpu_s
    check_host_time(engine, request_s, step_s)
    host_s = (step_s or 0.0) + requests * (request_s or 0.0)
    return combine_s(gpu_s, host_s, overlaps=bool(engine.host_loop.overlaps_gpu))


def host_note(engine: Engine, request_s: float | None, step_s: float | None = None) -> str:
    """One line on how a given host time enters the steps, for the plan's notes."""
    loop = engine.host_loop
    how = (f"runs one step ahead ({loop.switch} turns that off): a step takes the longer of GPU and host"
           if loop.overlaps_gpu else "waits for each step's tokens: a step takes GPU + host")  # fmt: skip
    parts = ([f"{step_s * 1e6:g} us per step"] if step_s else []) + (
        [f"{request_s * 1e6:g} us per request in a step"] if request_s else [])  # fmt: skip
    given = f"host time {' + '.join(parts)}, as given"
    return f"{given}; {engine.name} {engine.release}'s serving loop {how}"


def host_cpu_notes(gpus: Iterable[GPU], request_s: float | None) -> list[str]:
    """One line per planned GPU whose system fixes its host CPU, where no host time was given: kvplan's steps are the
    GPU's, and NVIDIA's published tables show such hosts (Grace) behind x86 ones on host-heavy runs."""
    if request_s:
        return []
    fixed = {g.name: g.host_cpu for g in gpus if g.host_cpu}
    return [
        f"{name}'s host CPU is {cpu} and kvplan prices GPU time only: NVIDIA's TensorRT-LLM tables put Grace-hosted "
        f"systems down to {GRACE_PUBLISHED_LOW:g}x the x86-hosted DGX's throughput on short-prompt runs of models "
        "with few active parameters (docs/cost.md, 'The GB200 misses'); measure the host time per request there and "
        "pass --host-per-request"
        for name, cpu in fixed.items()
    ]


def front_end_note(engine: Engine, *, rate_rps: float, output_tokens: float, family: str | None = None) -> str | None:
    """One line on the engine's API server (:attr:`Engine.front_end`) for a plan at ``rate_rps`` chat requests of
    ``output_tokens`` mean output tokens to a model of ``family``: its cost, the ceiling it puts on a replica and
    whether the rate reaches it (then each replica serves at most that); None where the release has no measured
    one."""
    fe = engine.front_end
    if fe is None:
        return None
    ceiling = fe.ceiling_rps(output_tokens, family=family)
    own = fe.cost_s(family)
    template = f", its chat template {fe.template_s * 1e3:.3g} ms of it" if own > fe.request_s else ""
    cost = f"{own * 1e3:.3g} ms a request{template}" + (f" + {fe.token_s * 1e6:.3g} us a token" if fe.token_s else "")
    label = fe.release_note()
    head = (f"{engine.name} {fe.release or engine.release}'s API server: {cost} (measured: {fe.measured}"
            f"{'; ' + label if label else ''}); one server a replica takes at most {ceiling:,.0f} req/s")  # fmt: skip
    if rate_rps <= ceiling:
        return head + f", above the {rate_rps:g} req/s asked"
    return head + f": it binds, at least {math.ceil(rate_rps / ceiling)} replicas for {rate_rps:g} req/s"

"""In-flight batching model (kvplan.serving): its limits and its consistency with the static cost."""

from __future__ import annotations

import math

import pytest

from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.cost import phase_cost
from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu
from kvplan.serving import Lengths, max_rate, mixed_queue_rule, serve

H100 = resolve_gpu("h100-sxm")


@pytest.fixture(scope="module")
def llama8b():
    return setup(load_bundled("llama-3.1-8b"), H100, engine="vllm")


def test_one_request_equals_the_static_figures(llama8b):
    spec = llama8b.spec
    r = serve(llama8b, rate_rps=0.0, input_len=Lengths.of(2048), output_len=Lengths.of(512))
    # rate 0: no other sequences; the prompt (2048 <= budget 8192) is one prefill step, and each decode
    # step is batch 1 at the mean decode context 2048 + 512/2 = 2304
    assert r.ttft_mean_s == pytest.approx(phase_cost(spec, H100, 2048, phase="prefill", engine="vllm").time_s)
    assert r.tpot_mean_s == pytest.approx(phase_cost(spec, H100, 2304, phase="decode", engine="vllm").time_s)
    assert r.batch == 0 and not r.saturated


def test_rate_to_zero_tends_to_the_static_figures(llama8b):
    zero = serve(llama8b, rate_rps=0.0, input_len=Lengths.of(1024), output_len=Lengths.of(256))
    tiny = serve(llama8b, rate_rps=1e-4, input_len=Lengths.of(1024), output_len=Lengths.of(256))
    assert tiny.tpot_mean_s == pytest.approx(zero.tpot_mean_s, rel=1e-3)
    assert tiny.ttft_mean_s == pytest.approx(zero.ttft_mean_s, rel=1e-3)
    assert tiny.output_tokens_per_s == pytest.approx(1e-4 * 256)


def test_past_saturation_is_reported(llama8b):
    inp, out = Lengths.of(2048, 4096), Lengths.of(512, 1024)
    top = max_rate(llama8b, input_len=inp, output_len=out)
    assert 0 < top < math.inf
    below = serve(llama8b, rate_rps=0.9 * top, input_len=inp, output_len=out)
    assert not below.saturated and below.batch > 1
    above = serve(llama8b, rate_rps=3 * top, input_len=inp, output_len=out)
    assert above.saturated and above.limit in ("compute", "kv_cache", "max_num_seqs", "token_budget")
    assert math.isnan(above.ttft_mean_s) and above.max_rate_rps == pytest.approx(top)


def test_load_raises_latency_and_throughput(llama8b):
    inp, out = Lengths.of(2048, 4096), Lengths.of(512, 1024)
    rows = [serve(llama8b, rate_rps=r, input_len=inp, output_len=out) for r in (0.5, 2, 5)]
    assert rows[0].tpot_mean_s < rows[1].tpot_mean_s < rows[2].tpot_mean_s
    assert rows[0].ttft_mean_s <= rows[1].ttft_mean_s <= rows[2].ttft_mean_s
    assert [r.output_tokens_per_s_per_gpu for r in rows] == pytest.approx([256, 1024, 2560])
    for r in rows:  # p90 at least the mean; the steps' batch by Little's law n = rate x O x step, the time average
        # a request sees and the pool holds by Little's law on the decoding requests, rate x O x TPOT (stop 27)
        assert r.ttft_p90_s >= r.ttft_mean_s and r.tpot_p90_s >= r.tpot_mean_s
        assert r.step_batch == pytest.approx(r.rate_rps * 512 * r.step_s)
        assert r.batch == pytest.approx(r.rate_rps * 512 * r.tpot_mean_s)
        assert r.kv_tokens_held <= r.kv_pool_tokens


def test_chunked_prefill_splits_a_long_prompt(llama8b):
    whole = serve(llama8b, rate_rps=0.0, input_len=Lengths.of(4096), output_len=Lengths.of(64))
    chunked = serve(
        llama8b, rate_rps=0.0, input_len=Lengths.of(4096), output_len=Lengths.of(64), max_num_batched_tokens=1024
    )
    # four steps of 1024 tokens: each pays the weights and fixed costs again, and later chunks attend to more
    assert chunked.ttft_mean_s > whole.ttft_mean_s
    assert chunked.max_num_batched_tokens == 1024


def test_invalid_inputs(llama8b):
    with pytest.raises(InvalidInput, match="rate"):
        serve(llama8b, rate_rps=-1, input_len=Lengths.of(10), output_len=Lengths.of(10))
    with pytest.raises(InvalidInput, match="p90"):
        Lengths.of(100, 50)


def test_engines_without_batch_limits_use_the_default_budget():
    # kvplan.engines' TensorRT-LLM gives no max_num_batched_tokens / max_num_seqs: the 8192-token budget and the
    # KV pool bound the steady state
    s = setup(load_bundled("llama-3.1-8b"), H100, engine="trtllm")
    r = serve(s, rate_rps=2.0, input_len=Lengths.of(1024), output_len=Lengths.of(256))
    assert not r.saturated and r.max_num_batched_tokens == 8192 and r.max_num_seqs == s.max_num_seqs
    assert "TensorRT-LLM" in r.engine


def test_trtllm_reserves_each_request_to_completion():
    # TensorRT-LLM's GUARANTEED_NO_EVICT scheduler admits a request only when the blocks for its prompt + output are
    # free, so the KV pool bounds a replica at pool / (I + O) sequences; vLLM takes blocks as tokens are written:
    # pool / (I + O/2). Past saturation the result reports that bound as its batch.
    from kvplan.capacity import pool_tokens

    inp, out = Lengths.of(1000), Lengths.of(3000)
    trt = setup(load_bundled("llama-3.1-70b"), H100, engine="trtllm", tp=2, weights_dtype="fp8", kv_dtype_name="fp8")
    vllm = setup(load_bundled("llama-3.1-70b"), H100, engine="vllm", tp=2, weights_dtype="fp8", kv_dtype_name="fp8")
    assert trt.engine.reserves_to_completion and not vllm.engine.reserves_to_completion
    r = serve(trt, rate_rps=1e6, input_len=inp, output_len=out, with_max_rate=False)
    assert r.saturated and r.batch == pytest.approx(pool_tokens(trt) / 4000)  # 1000 + 3000
    r = serve(vllm, rate_rps=1e6, input_len=inp, output_len=out, with_max_rate=False)
    assert r.saturated and r.batch == pytest.approx(pool_tokens(vllm) / 2500)  # 1000 + 3000 / 2


def test_p99_at_least_p90_at_least_mean(llama8b):
    inp, out = Lengths.of(2048, 4096), Lengths.of(512, 1024)
    for rate in (0.5, 2, 5, 7.5):  # below saturation (the KV pool at about 7.98 req/s; 8 was below it until vLLM's
        # sampling after the LM head was priced, kvplan.latency.sampling_s: slower steps, a larger batch)
        r = serve(llama8b, rate_rps=rate, input_len=inp, output_len=out, with_max_rate=False)
        assert not r.saturated
        assert r.ttft_p99_s >= r.ttft_p90_s >= r.ttft_mean_s
        assert r.tpot_p99_s >= r.tpot_p90_s >= r.tpot_mean_s
    assert r.tpot_p99_s > r.tpot_p90_s  # 7.5 req/s: a batch of about 120, its count's tail grows with z


def test_one_request_equals_the_static_figures_at_every_percentile(llama8b):
    spec = llama8b.spec
    r = serve(llama8b, rate_rps=0.0, input_len=Lengths.of(2048), output_len=Lengths.of(512))
    prefill = phase_cost(spec, H100, 2048, phase="prefill", engine="vllm").time_s
    decode = phase_cost(spec, H100, 2304, phase="decode", engine="vllm").time_s  # context 2048 + 512/2
    assert r.ttft_mean_s == pytest.approx(prefill) and r.tpot_mean_s == pytest.approx(decode)
    assert r.ttft_p90_s == pytest.approx(prefill) and r.ttft_p99_s == pytest.approx(prefill)
    assert r.tpot_p90_s == pytest.approx(decode) and r.tpot_p99_s == pytest.approx(decode)


def test_p99_ttft_wait_by_hand(llama8b):
    # Every prompt 1024 tokens (p90 = mean), 20 req/s. The prefill slots' load rho = p / (budget - n) with the
    # solved p and n; the mean TTFT is S (1 + rho / (2 (1 - rho))) (M/D/1 mean wait), so S follows from it.
    # The exponential tail's wait at q: (W / rho) ln(rho / (1 - q)) = S / (2 (1 - rho)) ln(rho / (1 - q)), 0 for
    # rho <= 1 - q. This run (printed once): rho 0.07374, mean TTFT 0.039349 s -> S = 0.039349 / 1.039803 =
    # 0.037842 s; p90: rho < 0.1, no wait: 0.037842 s, below the mean, so the mean 0.039349 s;
    # p99: 0.037842 + 0.037842 / (2 x 0.92626) x ln(7.374) = 0.037842 + 0.020427 x 1.99791 = 0.078655 s.
    # (Was rho 0.06237, p99 0.069761 s before vLLM's decode attention was refitted per architecture on its kernel
    # tables, kvplan.engines.vllm hopper_gqa_decode: the decode step, so the batch and the prefill slots, moved; rho
    # 0.07247, p99 0.077659 s before vLLM's sampling after the LM head was priced, kvplan.latency.sampling_s.)
    # The room share's load ("step", the default until stop 29; the time share's by-hand figures are in
    # tests/test_serving_queue_rule.py).
    with mixed_queue_rule("step"):
        r = serve(llama8b, rate_rps=20, input_len=Lengths.of(1024), output_len=Lengths.of(256), with_max_rate=False)
    rho = r.prefill_tokens_per_step / (r.max_num_batched_tokens - r.step_batch)
    assert rho == pytest.approx(0.07374, rel=1e-3)
    service = r.ttft_mean_s / (1 + rho / (2 * (1 - rho)))
    assert r.ttft_p90_s == pytest.approx(r.ttft_mean_s)
    assert r.ttft_p99_s == pytest.approx(service + service / (2 * (1 - rho)) * math.log(rho / 0.01))
    assert r.ttft_p99_s == pytest.approx(0.078655, rel=1e-3)


def test_z_scores_are_the_normal_quantiles():
    from statistics import NormalDist

    from kvplan.serving import Z90, Z99

    assert pytest.approx(NormalDist().inv_cdf(0.9), abs=1e-4) == Z90
    assert pytest.approx(NormalDist().inv_cdf(0.99), abs=1e-4) == Z99


def test_the_p99_wait_is_behind_the_mean_prompt_not_the_requests_own(llama8b):
    """A longer p99 prompt lengthens its own prefill, not the wait: in a first-come-first-served queue an arrival
    waits for the work ahead of it (Pollaczek-Khinchine: the mean wait lambda E[S^2] / (2 (1 - rho)) has no term for
    the arrival's own service). Mean 1024 tokens at 20 req/s (the steady state, rho 0.07247, as above), p99 2048
    or 4096: the steady state and the wait are the same, so the two p99 TTFTs differ by the two prompts' prefill
    services alone. Before, the wait at the p99 was scaled by the p99 prompt's own service (it then differed too).
    """
    from kvplan.serving import _budget, _decode_context, _prefill_service, queue_wait_s

    out = Lengths.of(256)
    a, b = Lengths.of(1024, 1024, 2048), Lengths.of(1024, 1024, 4096)
    ra = serve(llama8b, rate_rps=20, input_len=a, output_len=out, with_max_rate=False)
    rb = serve(llama8b, rate_rps=20, input_len=b, output_len=out, with_max_rate=False)
    assert (ra.batch, ra.step_batch, ra.step_s, ra.ttft_mean_s) == (rb.batch, rb.step_batch, rb.step_s, rb.ttft_mean_s)

    def service(prompt: int) -> float:
        return _prefill_service(llama8b, prompt=prompt, n=ra.step_batch, context=_decode_context(a, out),
                                budget=_budget(llama8b, None), ep=False)  # fmt: skip

    # with the default (time share) rule: the same wait (and step under way) behind either
    assert rb.ttft_p99_s - ra.ttft_p99_s == pytest.approx(service(4096) - service(2048))
    with mixed_queue_rule("step"):  # the room share's load (the default until stop 29), by its formula
        ra = serve(llama8b, rate_rps=20, input_len=a, output_len=out, with_max_rate=False)
        rb = serve(llama8b, rate_rps=20, input_len=b, output_len=out, with_max_rate=False)
    rho = ra.prefill_tokens_per_step / (ra.max_num_batched_tokens - ra.step_batch)
    wait = queue_wait_s(service(1024), rho, quantile=0.99)  # behind 1024-token prompts, whatever one's own
    assert ra.ttft_p99_s == pytest.approx(service(2048) + wait)
    assert rb.ttft_p99_s == pytest.approx(service(4096) + wait)
    assert rb.ttft_p99_s - ra.ttft_p99_s == pytest.approx(service(4096) - service(2048))


def test_erlang_states_by_hand():
    """Erlang's M/M/m states (kvplan.serving.erlang_states): one server, offered load 0.3: idle 0.7, busy 0.3 (exact for
    any service time). Two servers, offered load 1 (rho 0.5): P(0) = 1 / (1 + a + a^2 / (2 (1 - rho))) = 1 / (1 + 1 +
    1) = 1/3, P(1) = a P(0) = 1/3, P(both busy) = C(2, 1) = 1/3. At or past m: all busy; no load: all idle."""
    from kvplan.serving import erlang_states

    assert erlang_states(0.3, 1) == pytest.approx([0.7, 0.3])
    assert erlang_states(1.0, 2) == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    assert erlang_states(2.0, 2) == [0.0, 0.0, 1.0]
    assert erlang_states(0.0, 3) == [1.0, 0.0, 0.0, 0.0]
    assert sum(erlang_states(2.2, 4)) == pytest.approx(1.0)


def test_queue_wait_with_several_servers_by_hand():
    """M/D/m (Allen-Cunneen): M/M/m's mean wait C S / (m (1 - rho)) halved for fixed service, tail C exp(-C w / W).
    Two servers at rho 0.5 (C = 1/3, above): mean S / 6, p99 (W / C) ln(C / 0.01) = (S / 2) ln(100 / 3) = 1.7533 S;
    p90 (S / 2) ln(10 / 3) = 0.6020 S. One server: the M/D/1 figures, rho S / (2 (1 - rho)) = S / 2 at rho 0.5."""
    from kvplan.serving import queue_wait_s

    s = 2.0
    assert queue_wait_s(s, 0.5, servers=2) == pytest.approx(s / 6)
    assert queue_wait_s(s, 0.5, quantile=0.99, servers=2) == pytest.approx(1.7533 * s, rel=1e-4)
    assert queue_wait_s(s, 0.5, quantile=0.9, servers=2) == pytest.approx(0.6020 * s, rel=1e-3)
    assert queue_wait_s(s, 0.5) == queue_wait_s(s, 0.5, servers=1) == pytest.approx(s / 2)
    assert queue_wait_s(s, 0.5, servers=2) < queue_wait_s(s, 0.5)  # a second server takes the next job
    assert queue_wait_s(s, 1.0, servers=2) == math.inf


def test_varying_prompts_wait_as_pollaczek_khinchine(llama8b):
    """With the prompt lengths' standard deviation given (Lengths.sd) the prompts' queue is M/G/1: the
    Pollaczek-Khinchine mean wait lambda E[S^2] / (2 (1 - rho)) = rho S (1 + scv) / (2 (1 - rho)), scv = (sd /
    mean)^2 (service taken as proportional to the prompt). mean 1024, sd 512: scv 0.25, so every wait is 1.25 x the
    M/D/1 one (rho 0.5, S 2 s: 0.5 x 2 x 1.25 / (2 x 0.5) = 1.25 s against 1 s), the steady state (batch, step) is
    untouched, and the TTFTs rise. Before, lengths carried no spread and the wait was M/D/1 whatever the set."""
    from kvplan.serving import queue_wait_s

    assert Lengths.of(1024, 2048, sd=512).scv == pytest.approx(0.25)
    assert Lengths.of(1024).scv == 0.0
    with pytest.raises(InvalidInput):
        Lengths.of(1024, sd=-1)
    assert queue_wait_s(2.0, 0.5, scv=0.25) == pytest.approx(1.25)
    for kw in ({"quantile": 0.99}, {"quantile": 0.9, "servers": 2}, {"servers": 3}):
        assert queue_wait_s(2.0, 0.6, scv=0.25, **kw) == pytest.approx(1.25 * queue_wait_s(2.0, 0.6, **kw))
    out = Lengths.of(256)
    fixed = serve(llama8b, rate_rps=20, input_len=Lengths.of(1024, 2048), output_len=out, with_max_rate=False)
    spread = serve(llama8b, rate_rps=20, input_len=Lengths.of(1024, 2048, sd=512), output_len=out,
                   with_max_rate=False)  # fmt: skip
    assert (spread.step_batch, spread.step_s) == (fixed.step_batch, fixed.step_s)
    assert spread.ttft_mean_s > fixed.ttft_mean_s and spread.ttft_p99_s > fixed.ttft_p99_s
    # the longer wait leaves more prompts queued behind a request at its first token (kvplan.serving._own_life)
    assert spread.tpot_mean_s > fixed.tpot_mean_s and spread.batch > fixed.batch

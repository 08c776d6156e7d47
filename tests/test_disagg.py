"""Disaggregated prefill/decode serving (kvplan.disagg): its limits, its percentiles and plan's pools."""

from __future__ import annotations

import math

import pytest

from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.cost import phase_cost
from kvplan.disagg import (
    MOONCAKE_ENTRY_S,
    check_engine,
    entry_cost_s,
    exposed_transfer_s,
    kv_transfer,
    max_prefill_load,
    prefill_s,
    serve_disaggregated,
    transfer_entries,
)
from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu
from kvplan.latency import NETWORK_LATENCY_S
from kvplan.serving import Lengths, queue_wait_s, serve
from kvplan.slo import Targets, plan_for_targets

H200 = resolve_gpu("h200")


@pytest.fixture(scope="module")
def pools():
    spec = load_bundled("llama-3.1-8b")
    return setup(spec, H200, tp=1), setup(spec, H200, tp=1)


def _cost(s, context: int, phase: str) -> float:  # noqa: ANN001
    return phase_cost(s.spec, s.gpu, context, phase=phase, tp=s.tp, engine=s.engine.name).time_s


def test_one_request_equals_the_static_figures_at_every_percentile(pools):
    # Rate 0: no queue, no other sequences. vLLM: the prefill of 2048 tokens, the transfer of its KV across nodes,
    # then the decode instance's first step (the last prompt token, a decode at context 2048, batch 1); each later
    # step a batch-1 decode at the mean context 2048 + 512 / 2 = 2304.
    p, d = pools
    r = serve_disaggregated(p, d, rate_rps=0.0, input_len=Lengths.of(2048), output_len=Lengths.of(512))
    transfer, moved = kv_transfer(p, d, 2048, crosses_nodes=True)
    first = _cost(d, 2048, "decode")
    ttft = _cost(p, 2048, "prefill") + transfer + first
    tpot = _cost(d, 2304, "decode")
    assert not r.saturated and r.limit == "" and r.prefill_load == 0
    assert r.first_token_s == pytest.approx(first) and r.kv_transfer_bytes == moved == 268_435_456
    for pct in ("mean", "p90", "p99"):
        assert r.at(pct) == pytest.approx((ttft, tpot))


def test_engines_that_send_the_first_token_from_the_prefill_add_no_decode_step():
    spec = load_bundled("llama-3.1-8b")
    for engine in ("sglang", "trtllm"):
        p, d = setup(spec, H200, tp=1, engine=engine), setup(spec, H200, tp=1, engine=engine)
        r = serve_disaggregated(p, d, rate_rps=0.0, input_len=Lengths.of(2048), output_len=Lengths.of(512))
        transfer, _ = kv_transfer(p, d, 2048, crosses_nodes=True)
        assert r.first_token_s == 0
        assert r.ttft_mean_s == pytest.approx(_cost(p, 2048, "prefill") + transfer)


def test_rate_to_zero_tends_to_the_static_figures(pools):
    p, d = pools
    kw = dict(input_len=Lengths.of(1024, 2048), output_len=Lengths.of(256, 512))
    zero = serve_disaggregated(p, d, rate_rps=0.0, **kw)
    tiny = serve_disaggregated(p, d, rate_rps=1e-4, **kw)
    for pct in ("mean", "p90", "p99"):
        assert tiny.at(pct) == pytest.approx(zero.at(pct), rel=1e-3)
    assert zero.ttft_p90_s > zero.ttft_mean_s  # the p90 prompt (2048) takes longer to prefill and move


def test_saturation_is_reported_with_what_binds(pools):
    p, d = pools
    inp, out = Lengths.of(2048), Lengths.of(256)
    service = prefill_s(p, 2048)
    over = serve_disaggregated(p, d, rate_rps=1.2 / service, input_len=inp, output_len=out, decode_replicas=8)
    assert over.saturated and over.limit == "prefill" and over.prefill_load == pytest.approx(1.2)
    assert math.isnan(over.ttft_mean_s)
    flood = serve_disaggregated(p, d, rate_rps=1e4, input_len=inp, output_len=out, prefill_replicas=10_000)
    assert flood.saturated and flood.limit.startswith("decode: ")
    assert flood.limit.removeprefix("decode: ") in ("compute", "kv_cache", "max_num_seqs", "token_budget")
    below = serve_disaggregated(p, d, rate_rps=0.5 / service, input_len=inp, output_len=out, decode_replicas=8)
    assert not below.saturated and below.ttft_p99_s >= below.ttft_p90_s >= below.ttft_mean_s


def test_the_queue_wait_at_each_percentile_by_hand(pools):
    # Every prompt 2048 tokens; the prefill replica at load 0.5: the mean wait S x 0.5 / (2 x 0.5) = 0.5 S; the p90
    # wait (W / rho) ln(rho / 0.1) = S ln 5 = 1.6094 S; the p99 S ln 50 = 3.9120 S (kvplan.serving.queue_wait_s,
    # the rule of the aggregated prompt queue).
    p, d = pools
    service = prefill_s(p, 2048)
    r = serve_disaggregated(p, d, rate_rps=0.5 / service, input_len=Lengths.of(2048), output_len=Lengths.of(256),
                            decode_replicas=4)  # fmt: skip
    rest = {pct: r.at(pct)[0] - service for pct in ("mean", "p90", "p99")}
    transfer = r.kv_transfer_s
    assert rest["mean"] - transfer - r.first_token_s == pytest.approx(0.5 * service)
    first90 = serve(d, rate_rps=r.rate_rps / 4, input_len=Lengths.of(2048), output_len=Lengths.of(256),
                    with_max_rate=False, prefilled=True)  # fmt: skip
    assert rest["p90"] - transfer - first90.ttft_p90_s == pytest.approx(math.log(5) * service)
    assert rest["p99"] - transfer - first90.ttft_p99_s == pytest.approx(math.log(50) * service)
    assert queue_wait_s(service, 0.5, quantile=0.9) == pytest.approx(math.log(5) * service)


def test_p99_lengths_are_used_when_given(pools):
    p, d = pools
    held = serve_disaggregated(p, d, rate_rps=1.0, input_len=Lengths.of(1024, 2048), output_len=Lengths.of(256))
    given = serve_disaggregated(p, d, rate_rps=1.0, input_len=Lengths.of(1024, 2048, 8192),
                                output_len=Lengths.of(256))  # fmt: skip
    assert held.ttft_p90_s == pytest.approx(given.ttft_p90_s)
    assert given.ttft_p99_s > held.ttft_p99_s  # an 8192-token p99 prompt prefills and moves longer than 2048
    assert Lengths.of(1024, 2048).p99_assumed and not Lengths.of(1024, 2048, 8192).p99_assumed
    assert not Lengths.of(1024).p99_assumed and Lengths.of(1024).at(0.99) == 1024
    with pytest.raises(InvalidInput, match="p99"):
        Lengths.of(1024, 2048, 1500)


def test_the_wait_at_a_quantile_is_behind_the_mean_prompt(pools):
    # Mean 1024 tokens, p90 2048: the prefill replica's load is rate x prefill(1024); the p90 TTFT's wait is
    # queue_wait_s(prefill(1024), load, 0.9) (an arrival waits for the work ahead of it, not for its own length;
    # kvplan.serving), its own prefill and transfer at 2048 tokens. Before, the wait took prefill(2048).
    p, d = pools
    mean, p90 = prefill_s(p, 1024), prefill_s(p, 2048)
    inp, out = Lengths.of(1024, 2048), Lengths.of(256)
    r = serve_disaggregated(p, d, rate_rps=0.5 / mean, input_len=inp, output_len=out, decode_replicas=4)
    assert r.prefill_load == pytest.approx(0.5)
    first90 = serve(d, rate_rps=r.rate_rps / 4, input_len=inp, output_len=out, with_max_rate=False, prefilled=True)
    transfer90 = exposed_transfer_s(p, prompt=2048, transfer_s=kv_transfer(p, d, 2048, crosses_nodes=True)[0],
                                    prefill_time_s=p90)  # fmt: skip
    wait = r.ttft_p90_s - p90 - transfer90 - first90.ttft_p90_s
    assert wait == pytest.approx(queue_wait_s(mean, 0.5, quantile=0.9)) == pytest.approx(math.log(5) * mean)
    # pool sizing: the load a TTFT budget allows, with the wait behind the mean prompt, is higher than behind its own
    assert max_prefill_load(p90, 3 * p90, quantile=0.9, ahead_s=mean) > max_prefill_load(p90, 3 * p90, quantile=0.9)


def test_max_prefill_load_by_hand():
    # Mean: S + rho S / (2 (1 - rho)) <= 3 S -> slack 2, rho = 2 x 2 / (1 + 2 x 2) = 0.8.
    assert max_prefill_load(1.0, 3.0, quantile=None) == pytest.approx(0.8)
    # p90: S + S / (2 (1 - rho)) ln(rho / 0.1) = budget, met with equality at the load returned.
    rho = max_prefill_load(1.0, 3.0, quantile=0.9)
    assert 0.1 < rho < 0.8
    assert 1.0 + queue_wait_s(1.0, rho, quantile=0.9) == pytest.approx(3.0)
    assert max_prefill_load(1.0, 0.9, quantile=None) == 0.0  # an idle replica misses the budget
    assert max_prefill_load(1.0, 1e9, quantile=0.99) == 0.95  # capped
    # Varying prompts (scv 0.25, M/G/1): S + 1.25 rho S / (2 (1 - rho)) <= 3 S -> rho = 4 / (1.25 + 4) = 0.7619.
    assert max_prefill_load(1.0, 3.0, quantile=None, scv=0.25) == pytest.approx(4 / 5.25)


def test_sglang_sends_chunk_by_chunk():
    # SGLang (send_kv_chunk per chunk): a 16384-token prompt in two 8192-token chunks, prefill 1.0 s, transfer 0.4 s
    # (latency L = 20 us + wire W). Chunk 1 is computed by 0.5 s and sent by 0.5 + L + W / 2 < 1.0 s, while chunk 2
    # computes; chunk 2's send starts at 1.0 s: exposed L + W / 2 = 0.2 s + L / 2.
    spec = load_bundled("llama-3.1-8b")
    sg = setup(spec, H200, tp=1, engine="sglang")
    vl = setup(spec, H200, tp=1, engine="vllm")
    wire = 0.4 - NETWORK_LATENCY_S
    assert exposed_transfer_s(sg, 0.4, prefill_time_s=1.0, prompt=16384) == pytest.approx(NETWORK_LATENCY_S + wire / 2)
    assert exposed_transfer_s(sg, 0.4, prefill_time_s=1.0, prompt=8192) == 0.4  # one chunk: all after the prefill
    assert exposed_transfer_s(vl, 0.4, prefill_time_s=1.0, prompt=16384) == 0.4  # vLLM: after the whole prefill


def test_engines_not_read_are_refused():
    spec = load_bundled("llama-3.1-8b")
    s = setup(spec, H200, tp=1, engine="llamacpp")
    with pytest.raises(InvalidInput, match="disaggregated serving.*llamacpp"):
        check_engine(s)


def test_plan_honours_the_percentile_in_disaggregated_rows():
    spec = load_bundled("llama-3.1-8b")
    inp, out = Lengths.of(2048, 4096), Lengths.of(256, 512)
    best = {}
    for pct in ("mean", "p90", "p99"):
        t = Targets(20, inp, out, ttft_s=0.6, tpot_s=0.03, percentile=pct)
        rows = [r for r in plan_for_targets(spec, [H200], t, disaggregated=True) if r.mode.startswith("disagg")]
        assert rows
        r = rows[0]
        assert r.ttft_s <= 0.6 and r.tpot_s <= 0.03
        p = setup(spec, H200, tp=r.prefill_tp)
        d = setup(spec, H200, tp=r.tp, pp=r.pp)
        res = serve_disaggregated(p, d, rate_rps=20, input_len=inp, output_len=out,
                                  prefill_replicas=r.prefill_gpus // r.prefill_tp, decode_replicas=r.replicas,
                                  crosses_nodes=r.gpus > 8)  # fmt: skip
        assert (r.ttft_s, r.tpot_s) == pytest.approx(res.at(pct))
        prompt = inp.at({"mean": None, "p90": 0.9, "p99": 0.99}[pct])  # 2048, 4096, 4096 (p99 held at the p90)
        assert r.kv_transfer_s == pytest.approx(kv_transfer(p, d, prompt, crosses_nodes=r.gpus > 8)[0])
        best[pct] = r.gpus
    assert best["p99"] >= best["p90"] >= best["mean"]


def test_cli_lengths_with_a_p99_and_the_note_when_none_is_given(cli):
    import json

    base = ["plan", "llama-3.1-8b", "--rate", "10", "--ttft", "1s", "--tpot", "40ms", "--gpus", "h200",
            "--percentile", "p99", "--top", "1"]  # fmt: skip
    held = cli(*base, "--input", "2k:4k")
    assert held.exit_code == 0, held.output
    assert "note: --input: no p99 given (mean:p90:p99); the p99 figures take the p90 length, 4096" in held.output
    given = cli(*base, "--input", "2k:4k:8k", "--format", "json")
    assert given.exit_code == 0, given.output
    data = json.loads(given.output)
    assert data["input"] == {"mean": 2048, "p90": 4096, "p99": 8192} and data["notes"] == []
    bad = cli(*base, "--input", "2k:4k:1k")
    assert bad.exit_code == 2 and bad.output.strip().count("\n") == 0 and "mean:p90:p99" in bad.output
    refused = cli("plan", "llama-3.1-8b", "--rate", "10", "--tpot", "40ms", "--gpus", "h200", "--disaggregated",
                  "--engine", "llamacpp")  # fmt: skip
    assert refused.exit_code == 2 and "disaggregated serving" in refused.output


def test_the_aggregated_path_takes_the_p99_lengths_too():
    # kvplan.serving: the p99 TTFT and TPOT take the p99 lengths where given; the p90 figures are unchanged.
    s = setup(load_bundled("llama-3.1-8b"), H200, tp=1)
    kw = dict(rate_rps=5.0, output_len=Lengths.of(256, 512), with_max_rate=False)
    held = serve(s, input_len=Lengths.of(1024, 2048), **kw)
    given = serve(s, input_len=Lengths.of(1024, 2048, 8192), **kw)
    assert (given.ttft_p90_s, given.tpot_p90_s) == pytest.approx((held.ttft_p90_s, held.tpot_p90_s))
    assert given.ttft_p99_s > held.ttft_p99_s and given.tpot_p99_s > held.tpot_p99_s
    assert (given.ttft_mean_s, given.tpot_mean_s) == pytest.approx((held.ttft_mean_s, held.tpot_mean_s))


def test_transfer_entries_follow_each_engines_connector_layout():
    # One entry per registered buffer (the request's blocks one contiguous run in each): vLLM's MooncakeConnector and
    # SGLang's Mooncake backend register K and V of each layer apart, an MLA latent as one buffer; TensorRT-LLM
    # stages through its transfer buffer and vLLM 0.8 was not read: no entry cost.
    assert transfer_entries(setup("llama-3.1-8b", H200, tp=1, engine="vllm")) == 64  # 32 layers x (K, V)
    assert transfer_entries(setup("llama-3.1-8b", H200, tp=2, engine="sglang")) == 64  # per rank: TP keeps layers
    assert transfer_entries(setup("deepseek-v3", H200, tp=8, engine="sglang")) == 61  # 61 MLA layers x 1 latent
    assert transfer_entries(setup("llama-3.1-70b", H200, tp=4, pp=2, engine="vllm")) == 80  # 40 layers per stage
    assert transfer_entries(setup("llama-3.1-8b", H200, tp=1, engine="trtllm")) == 0
    assert transfer_entries(setup("llama-3.1-8b", H200, tp=1, engine="vllm@0.8")) == 0


def test_the_entry_cost_is_paid_across_nodes_only():
    # Llama 3.1 8B, vLLM TP1 -> TP1: 64 entries x 5.95 us = 0.381 ms on a send between nodes; none within an NVLink
    # domain (no measurement there), so the NVLink figure is latency + bytes as before.
    p = setup("llama-3.1-8b", H200, tp=1)
    assert entry_cost_s(p, p, crosses_nodes=True) == pytest.approx(64 * 5.95e-6) == pytest.approx(3.808e-4)
    assert entry_cost_s(p, p, crosses_nodes=False) == 0.0
    far, _ = kv_transfer(p, p, 2048, crosses_nodes=True)
    assert far == pytest.approx(NETWORK_LATENCY_S + 268_435_456 / (50e9 * 0.837) + 64 * MOONCAKE_ENTRY_S)


def test_sglang_pays_the_entry_cost_once_per_chunk():
    # SGLang sends each chunk as one batch of all layers' entries: a 16384-token prompt in two 8192-token chunks,
    # prefill 1.0 s, transfer 0.4 s with a fixed F = 20 us + 64 x 5.95 us = 0.401 ms per send, wire W = 0.4 - F.
    # Chunk 1 is sent by 0.5 + F + W / 2 < 1.0 s; chunk 2's send starts at 1.0 s: exposed F + W / 2.
    sg = setup("llama-3.1-8b", H200, tp=1, engine="sglang")
    fixed = NETWORK_LATENCY_S + 64 * MOONCAKE_ENTRY_S
    exposed = exposed_transfer_s(sg, 0.4, prefill_time_s=1.0, prompt=16384, fixed_s=fixed)
    assert exposed == pytest.approx(fixed + (0.4 - fixed) / 2) == pytest.approx(0.2002, abs=1e-4)

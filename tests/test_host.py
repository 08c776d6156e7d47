"""Host work per serving step (kvplan.host) and the engines' host-loop rules (HostLoop)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.engines import RELEASES, Settings, get_engine
from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu
from kvplan.host import combine_s, step_with_host_s
from kvplan.serving import Lengths, max_rate, serve

H100 = resolve_gpu("h100-sxm")


def _setup(engine: str, host_request_s: float | None):
    s = setup(load_bundled("llama-3.1-8b"), H100, engine=engine)
    return replace(s, settings=replace(s.settings, host_request_s=host_request_s))


def test_combine_takes_the_longer_where_the_loop_runs_ahead_else_both():
    # 3 ms of GPU, 2 ms of host: max 3 ms with one step of run-ahead, 3 + 2 = 5 ms in turn
    assert combine_s(3e-3, 2e-3, overlaps=True) == pytest.approx(3e-3)
    assert combine_s(3e-3, 2e-3, overlaps=False) == pytest.approx(5e-3)
    assert combine_s(1e-3, 2e-3, overlaps=True) == pytest.approx(2e-3)


def test_engine_rules_as_read():
    # TensorRT-LLM's overlap scheduler, SGLang's event_loop_overlap and vLLM's async scheduling (default from
    # before 0.19) run one step ahead; vLLM 0.8 had no async scheduler; llama.cpp and transformers: not read.
    assert get_engine("trtllm").host_loop.overlaps_gpu is True
    assert get_engine("sglang").host_loop.overlaps_gpu is True
    assert RELEASES["vllm"]["0.19"].host_loop.overlaps_gpu is True
    assert RELEASES["vllm"]["0.21"].host_loop.overlaps_gpu is True
    assert RELEASES["vllm"]["0.8"].host_loop.overlaps_gpu is False
    assert get_engine("llamacpp").host_loop.overlaps_gpu is None
    assert get_engine("transformers").host_loop.overlaps_gpu is None
    for e in (get_engine("trtllm"), get_engine("sglang"), RELEASES["vllm"]["0.21"]):
        assert e.host_loop.switch  # each names the setting that turns it off


def test_no_host_time_leaves_the_step_unchanged():
    base = serve(_setup("trtllm", None), rate_rps=5.0, input_len=Lengths.of(1024), output_len=Lengths.of(256))
    zero = serve(_setup("trtllm", 0.0), rate_rps=5.0, input_len=Lengths.of(1024), output_len=Lengths.of(256))
    assert zero == base
    assert step_with_host_s(get_engine("llamacpp"), 4e-3, requests=10, request_s=None) == 4e-3


def test_one_request_host_bound_overlapped_or_in_turn():
    # Rate 0: each decode step holds the request alone (1 request). A host time of 50 ms per request outlasts the
    # 8B model's ~8 ms GPU step: with the loop one step ahead the step is the host's 50 ms; vLLM 0.8's loop adds it.
    h = 50e-3
    gpu = serve(_setup("trtllm", None), rate_rps=0.0, input_len=Lengths.of(512), output_len=Lengths.of(128))
    ahead = serve(_setup("trtllm", h), rate_rps=0.0, input_len=Lengths.of(512), output_len=Lengths.of(128))
    assert gpu.tpot_mean_s < h
    assert ahead.tpot_mean_s == pytest.approx(h)
    s08 = replace(_setup("vllm", h), engine=RELEASES["vllm"]["0.8"])
    v08 = serve(replace(s08, settings=replace(s08.settings, host_request_s=None)), rate_rps=0.0,
                input_len=Lengths.of(512), output_len=Lengths.of(128))  # fmt: skip
    in_turn = serve(s08, rate_rps=0.0, input_len=Lengths.of(512), output_len=Lengths.of(128))
    assert in_turn.tpot_mean_s == pytest.approx(v08.tpot_mean_s + h)


def test_a_host_floor_caps_a_replica_at_one_token_per_request_time():
    # Host-bound, every step costs h per request it holds, so a replica produces at most 1 / h output tokens/s
    # (h = 1 ms: 1,000 tokens/s), whatever the batch; a prompt chunk in a step adds one more request.
    h = 1e-3
    s = _setup("trtllm", h)
    tok_s = max_rate(s, input_len=Lengths.of(128), output_len=Lengths.of(2048)) * 2048
    assert tok_s <= 1 / h
    assert tok_s > 0.95 / h
    free = max_rate(_setup("trtllm", None), input_len=Lengths.of(128), output_len=Lengths.of(2048)) * 2048
    assert free > 5 / h  # the GPU alone is far faster


def test_an_engine_whose_loop_was_not_read_refuses_a_host_time():
    with pytest.raises(InvalidInput, match="was not read"):
        step_with_host_s(get_engine("llamacpp"), 4e-3, requests=10, request_s=1e-5)


def test_settings_default_has_no_host_time():
    assert Settings().host_request_s is None and Settings().host_step_s is None


def test_a_host_time_per_step_adds_once_whatever_the_requests():
    # 4 ms of GPU over 8 requests, 0.6 ms a step + 20 us a request = 0.76 ms of host: 4.76 ms in turn (vLLM 0.8's
    # loop), 4 ms one step ahead; a host-bound step (10 ms a step) takes the host's 10.16 ms either way.
    v08, v19 = RELEASES["vllm"]["0.8"], RELEASES["vllm"]["0.19"]
    assert step_with_host_s(v08, 4e-3, requests=8, request_s=20e-6, step_s=0.6e-3) == pytest.approx(4.76e-3)
    assert step_with_host_s(v08, 4e-3, requests=8, request_s=None, step_s=0.6e-3) == pytest.approx(4.6e-3)
    assert step_with_host_s(v19, 4e-3, requests=8, request_s=20e-6, step_s=0.6e-3) == pytest.approx(4e-3)
    assert step_with_host_s(v19, 4e-3, requests=8, request_s=20e-6, step_s=10e-3) == pytest.approx(10.16e-3)
    assert step_with_host_s(v08, 4e-3, requests=8, request_s=None, step_s=0.0) == 4e-3
    with pytest.raises(InvalidInput, match="per step"):
        step_with_host_s(v08, 4e-3, requests=8, request_s=None, step_s=-1e-3)
    with pytest.raises(InvalidInput, match="was not read"):
        step_with_host_s(get_engine("llamacpp"), 4e-3, requests=1, request_s=None, step_s=1e-3)


def test_one_request_in_turn_pays_the_step_host_time_on_every_token():
    # Rate 0, one request: vLLM 0.8's loop (in turn) adds the step's host time to every decode step.
    s08 = replace(_setup("vllm", None), engine=RELEASES["vllm"]["0.8"])
    gpu = serve(s08, rate_rps=0.0, input_len=Lengths.of(512), output_len=Lengths.of(128))
    host = replace(s08, settings=replace(s08.settings, host_step_s=0.6e-3))
    in_turn = serve(host, rate_rps=0.0, input_len=Lengths.of(512), output_len=Lengths.of(128))
    assert in_turn.tpot_mean_s == pytest.approx(gpu.tpot_mean_s + 0.6e-3)


def test_vllm_point_releases_run_one_step_ahead_from_0_14():
    # SchedulerConfig.async_scheduling: False in the 0.10.2-0.13.0 wheels, None (resolved to True) in 0.14.0 and 0.15.1
    from kvplan.engines.vllm import point_release

    assert point_release("0.11.0").host_loop.overlaps_gpu is False
    assert point_release("0.13.0").host_loop.overlaps_gpu is False
    assert point_release("0.14.0").host_loop.overlaps_gpu is True
    assert point_release("0.15.1").host_loop.switch == "--no-async-scheduling"
    assert get_engine("vllm@0.14.1").host_loop.overlaps_gpu is True
    assert get_engine("vllm@0.9.2").host_loop.overlaps_gpu is False


def _plan_json(cli, *extra: str) -> dict:  # noqa: ANN001
    import json

    r = cli("plan", "llama-3.1-8b", "--rate", "20", "--gpus", "h100-sxm", "--input", "1k", "--output", "256",
            "--tpot", "50ms", "--format", "json", *extra)  # fmt: skip
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_plan_rate_takes_a_measured_host_time(cli) -> None:  # noqa: ANN001
    # 20 req/s x 256 output tokens = 5,120 tokens/s. With 300 us of host time per request in a step one replica
    # makes at most 1 / 300 us = 3,333 tokens/s (vLLM's loop runs one step ahead: step = max(GPU, host)), so the
    # one-GPU plan that meets the target without host time no longer does; the note says how the time entered.
    free = _plan_json(cli)
    host = _plan_json(cli, "--host-per-request", "300us")
    assert free["plans"][0]["gpus"] == 1
    assert host["plans"][0]["gpus"] == 2
    assert any("300 us per request" in n and "longer of GPU and host" in n for n in host["notes"])
    assert not free["notes"]


def test_plan_host_time_refusals(cli) -> None:  # noqa: ANN001
    r = cli("plan", "llama-3.1-8b", "--rate", "1", "--engine", "llamacpp", "--host-per-request", "30us")
    assert r.exit_code == 2 and "was not read" in r.output
    r = cli("plan", "llama-3.1-8b", "--users", "10", "--context", "4k", "--host-per-request", "30us")
    assert r.exit_code == 2 and "use them with --rate" in r.output
    r = cli("plan", "llama-3.1-8b", "--rate", "1", "--host-per-request", "5x")
    assert r.exit_code == 2 and "--host-per-request" in r.output
    r = cli("plan", "llama-3.1-8b", "--users", "10", "--context", "4k", "--host-per-step", "1ms")
    assert r.exit_code == 2 and "use them with --rate" in r.output
    r = cli("plan", "llama-3.1-8b", "--rate", "1", "--engine", "llamacpp", "--host-per-step", "1ms")
    assert r.exit_code == 2 and "per step" in r.output and "was not read" in r.output
    r = cli("plan", "llama-3.1-8b", "--rate", "1", "--host-per-step", "-1ms")
    assert r.exit_code == 2 and "--host-per-step" in r.output


def test_plan_rate_takes_a_host_time_per_step(cli) -> None:  # noqa: ANN001
    # 20 req/s of 1k in / 256 out on one H100 runs ~150 sequences in ~29 ms steps. vllm@0.11.0 runs its steps in
    # turn: 5 ms of host a step lengthens every step, the batch grows and one GPU no longer sustains the rate (2 do);
    # vllm@0.14.0 runs one step ahead and the 5 ms hide under the GPU's step: one GPU, as without host time.
    free = _plan_json(cli, "--engine", "vllm@0.11.0")
    in_turn = _plan_json(cli, "--engine", "vllm@0.11.0", "--host-per-step", "5ms")
    ahead = _plan_json(cli, "--engine", "vllm@0.14.0", "--host-per-step", "5ms")
    assert [p["gpus"] for p in (free["plans"][0], in_turn["plans"][0], ahead["plans"][0])] == [1, 2, 1]
    assert any("5000 us per step" in n and "GPU + host" in n for n in in_turn["notes"])
    assert any("5000 us per step" in n and "longer of GPU and host" in n for n in ahead["notes"])


def test_implied_host_time_reproduces_the_published_row():
    """benchmarks/published_compare.py --host-floor: Qwen3-30B-A3B on one GB200, 128/128, published 24,107 tok/s,
    kvplan 51,968 (x2.16). At the implied 41 us per request (as the script prints it) kvplan's figure with the
    overlap loop's max(GPU, host) falls to the published one; host-bound, 1 / 41.4 us = 24.1k tokens/s."""
    import dataclasses
    import json

    from tests.benchmods import bench_module

    pub = bench_module("published_compare")
    rows = json.loads(pub.DATA.read_text())["runs"]
    row = next(r for r in rows if r["source"] == "trtllm-1.0" and r["model"] == "qwen3-30b-a3b"
               and r["gpu"] == "gb200" and (r["isl"], r["osl"]) == (128, 128))  # fmt: skip
    h = pub.implied_host_request_s(row)
    assert h == pytest.approx(41.4e-6, rel=0.03)
    s = pub._setup(row["model"], row["gpu"], weights=row["weights"], kv=row["kv"], fraction=pub.KV_FRACTION, tp=1)
    s = dataclasses.replace(s, settings=dataclasses.replace(s.settings, host_request_s=h))
    assert pub.replica_tokens_s(s, 128, 128) == pytest.approx(row["published_tok_s"], rel=0.01)


def test_a_grace_hosted_gpu_gets_a_note_unless_a_host_time_is_given():
    """GB200's catalog entry fixes its host CPU (Grace, part of the superchip); B200's servers choose theirs. Without
    --host-per-request a plan over GB200 says kvplan prices GPU time only, with NVIDIA's published low, 0.61
    (Qwen3-30B-A3B 128/128: GB200 24,107 / B200 39,827 tok/s = 0.605, v1.0 page)."""
    from kvplan.host import GRACE_PUBLISHED_LOW, host_cpu_notes

    gb200, b200 = resolve_gpu("gb200"), resolve_gpu("b200")
    assert gb200.host_cpu == "NVIDIA Grace" and b200.host_cpu is None
    assert round(24107 / 39827, 2) == GRACE_PUBLISHED_LOW
    notes = host_cpu_notes([gb200, b200, gb200], None)
    assert len(notes) == 1 and notes[0].startswith("gb200's host CPU is NVIDIA Grace")
    assert "--host-per-request" in notes[0]
    assert host_cpu_notes([gb200], 30e-6) == [] and host_cpu_notes([b200, H100], None) == []


def test_plan_rate_on_gb200_carries_the_host_note(cli) -> None:  # noqa: ANN001
    args = ["plan", "llama-3.1-8b", "--rate", "1", "--input", "128", "--output", "128", "--gpus", "gb200",
            "--engine", "trtllm", "--max-gpus", "1"]  # fmt: skip
    r = cli(*args)
    assert r.exit_code == 0 and "note: gb200's host CPU is NVIDIA Grace" in r.output
    r = cli(*args, "--host-per-request", "30us")
    assert r.exit_code == 0 and "host CPU is NVIDIA Grace" not in r.output

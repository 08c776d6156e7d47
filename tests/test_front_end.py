"""The engines' API server (kvplan.engines.base.FrontEnd): its ceiling on a replica's request rate in
kvplan.serving and plan, its time in the TTFT, and its serial worker in the published runs (published_compare)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from kvplan.capacity import setup
from kvplan.engines import Settings, get_engine
from kvplan.engines.base import FrontEnd, release_tuple
from kvplan.serving import Lengths, api_server_ceiling_rps, api_server_wait_s, max_rate, queue_wait_s, serve
from tests.benchmods import published


def _sglang_8b(front_end: FrontEnd | None | str = "engine"):  # noqa: ANN202
    """Qwen3-8B bf16 on one H100 under SGLang, with the engine's API server or another (None: none)."""
    s = setup("qwen3-8b", "h100-sxm", engine="sglang", weights_dtype="bf16", kv_dtype_name="bf16")
    if front_end == "engine":
        return s
    return dataclasses.replace(s, engine=dataclasses.replace(s.engine, front_end=front_end))


def test_front_ends_by_release() -> None:
    # measured where a short-output run of the release is published: vLLM 0.10.2-0.11.0 (the vllm@0.8 rules) and SGLang
    v08, sg = get_engine("vllm@0.8").front_end, get_engine("sglang@0.5").front_end
    assert (v08.request_s, v08.template_s, v08.together) == (pytest.approx(1.462e-3), pytest.approx(5.689e-3), True)
    assert (sg.request_s, sg.template_s, sg.together) == (pytest.approx(1.232e-3), 0.0, True)
    # SGLang 0.5.23 converts each request in a thread pool (run_in_executor): a burst is not held; the same cost
    assert get_engine("sglang").front_end == dataclasses.replace(sg, together=False)
    for key in ("vllm", "vllm@0.16", "vllm@0.19", "trtllm", "trtllm@0.17", "llamacpp"):
        assert get_engine(key).front_end is None, key
    fe = FrontEnd(request_s=4e-3, token_s=50e-6)
    assert fe.ceiling_rps(200) == pytest.approx(1 / (4e-3 + 200 * 50e-6))  # 71.4 req/s


def test_the_chat_template_is_paid_where_vllm_0_11_parses_it() -> None:
    # vLLM 0.11.0 parses the model's Jinja chat template on every chat request (chat_utils
    # resolve_chat_template_kwargs); gpt-oss's prompt is built by harmony, the completions endpoint renders none,
    # 0.12.0 and later parse it once
    fe = get_engine("vllm@0.8").front_end
    both = 1.462e-3 + 5.689e-3
    assert fe.cost_s("qwen3") == pytest.approx(both) and fe.cost_s(None) == pytest.approx(both)
    assert fe.cost_s("qwen3", release="0.11.0") == pytest.approx(both)
    for free in (fe.cost_s("gpt_oss"), fe.cost_s("qwen3", chat=False), fe.cost_s("qwen3", release="0.13.0")):
        assert free == pytest.approx(1.462e-3)
    assert fe.ceiling_rps(4, family="gpt_oss") == pytest.approx(1 / 1.462e-3)
    assert fe.ceiling_rps(4, family="qwen3") == pytest.approx(1 / both)  # 137.5 req/s
    # serving: a chat request of the setup's model
    qwen = setup("qwen3-8b", "h100-sxm", engine="vllm@0.8", weights_dtype="bf16", kv_dtype_name="bf16")
    oss = setup("gpt-oss-20b", "h100-sxm", engine="vllm@0.8", weights_dtype="mxfp4", kv_dtype_name="bf16")
    assert api_server_ceiling_rps(qwen, Lengths.of(4)) == pytest.approx(1 / both)
    assert api_server_ceiling_rps(oss, Lengths.of(4)) == pytest.approx(1 / 1.462e-3)
    assert api_server_wait_s(qwen, 1e-9, Lengths.of(4)) == pytest.approx(both)  # rate -> 0: its own cost only
    from kvplan.host import front_end_note

    note = front_end_note(get_engine("vllm@0.8"), rate_rps=100, output_tokens=4, family="qwen3")
    assert "7.15 ms a request, its chat template 5.69 ms of it" in note and "140 req/s" in note
    assert "chat template" not in front_end_note(get_engine("vllm@0.8"), rate_rps=100, output_tokens=4,
                                                 family="gpt_oss")  # fmt: skip


@pytest.mark.parametrize(
    ("release", "pays"),
    [("0.8.0", True), ("0.8.5", True), ("0.9.1", True), ("0.9.2", False), ("0.10.2", False), ("0.11.0", True),
     ("0.12.0", False), ("0.13.0", False), ("0.15.1", False)],
)  # fmt: skip
def test_a_point_release_picks_its_own_api_server(release: str, pays: bool) -> None:
    # vllm@X.Y.Z: the vllm@0.8 rules with that release's server. The chat template is parsed on every chat request
    # in 0.8.x-0.9.1 (the uncached content-format detection, cached from 0.9.2 by PR #20065) and in 0.11.0 (the
    # kwargs filter, cached from 0.12.0); nothing else in the server moves (kvplan/engines/vllm.py FRONT_END_0_8)
    e = get_engine(f"vllm@{release}")
    both = 1.462e-3 + 5.689e-3
    assert e.front_end.cost_s("qwen3") == pytest.approx(both if pays else 1.462e-3)
    assert e.front_end.cost_s("gpt_oss") == e.front_end.cost_s("qwen3", chat=False) == pytest.approx(1.462e-3)
    assert e.front_end.together and e.key == f"vllm@{release}" and get_engine(e.key) is e
    v08 = get_engine("vllm@0.8")
    # and that release's serving loop: one step ahead by default from 0.14.0 (kvplan/engines/vllm.py HOST_LOOP_0_14)
    assert e.host_loop.overlaps_gpu is (release_tuple(release) >= (0, 14, 0))
    same = dataclasses.replace(e, release=v08.release, version=v08.version, front_end=v08.front_end,
                               host_loop=v08.host_loop)  # fmt: skip
    assert same == v08
    # the same price a published row of that release is given (published_compare.front_end_worker)
    assert v08.front_end.cost_s("qwen3", release=release) == e.front_end.cost_s("qwen3")
    qwen = setup("qwen3-8b", "h100-sxm", engine=e.key, weights_dtype="bf16", kv_dtype_name="bf16")
    assert api_server_ceiling_rps(qwen, Lengths.of(4)) == pytest.approx(1 / (both if pays else 1.462e-3))


def test_the_rule_sets_own_server_is_0_8_5s() -> None:
    # vllm@0.8 names the 0.8 series; its own server is 0.8.5's (the wheel read), which pays the parse as before
    fe = get_engine("vllm@0.8").front_end
    assert fe.release == "0.8.5" and fe.cost_s("qwen3") == get_engine("vllm@0.8.5").front_end.cost_s("qwen3")


def test_releases_outside_the_measured_ones_are_labelled() -> None:
    from kvplan.host import front_end_note

    def note(key: str) -> str:
        return front_end_note(get_engine(key), rate_rps=10, output_tokens=4, family="qwen3")

    for measured in ("0.10.2", "0.11.0"):  # the runs fit_frontend.py fits on
        assert f"vllm {measured}'s API server" in note(f"vllm@{measured}") and "not on" not in note(f"vllm@{measured}")
    assert "vllm 0.8.5's API server: 7.15 ms a request" in note("vllm@0.8")
    runs = "(measured: GPUStack runs of vLLM 0.10.2-0.11.0, random 128/4; "
    assert runs + "not on 0.8.5, whose server reads the same in source)" in note("vllm@0.8")
    assert "vllm 0.12.0's API server: 1.46 ms a request " + runs + "not on 0.12.0, whose" in note("vllm@0.12.0")
    assert runs + "not on 0.15.2, nor its server read: unverified there)" in note("vllm@0.15.2")


@pytest.mark.parametrize(
    "key", ["vllm@0.7.3", "vllm@0.16.1", "vllm@0.11", "vllm@0.x.1", "vllm@0.11.x", "vllm@0.11.0 rc", "sglang@0.5.3"]
)
def test_point_releases_outside_the_rule_sets_span_are_refused(key: str) -> None:
    from kvplan.errors import InvalidInput

    with pytest.raises(InvalidInput, match="unknown (vllm|sglang) version") as err:
        get_engine(key)
    assert ("point release 0.8.0-0.15.x" in str(err.value)) == key.startswith("vllm")


def test_release_tuple() -> None:
    from kvplan.engines.base import release_tuple

    assert release_tuple("0.5.3.post3") == (0, 5, 3) and release_tuple("0.11.2.dev358") == (0, 11, 2)
    assert release_tuple("0.8") == (0, 8, 0) < release_tuple("0.8.5") < release_tuple("0.10.2")


def test_the_api_server_caps_a_replicas_rate() -> None:
    # 128 in / 4 out on Qwen3-8B: the GPU alone sustains 367 req/s (313 before stop 28 priced a prompt batch of many
    # 128-token prompts as that many prompts, not one long one), more than the 169.5 a server of 5.90 ms a request
    # takes (SGLang's as fitted before its server was read as handing bursts on together); SGLang's own, 1.232 ms
    # (812 req/s), is above what the GPU sustains, so there the steps bind
    inp, out = Lengths.of(128), Lengths.of(4)
    free = max_rate(_sglang_8b(None), input_len=inp, output_len=out)
    own = _sglang_8b()
    own_ceiling = api_server_ceiling_rps(own, out)
    assert own_ceiling == pytest.approx(1 / 1.232e-3) and own_ceiling > 2 * free
    assert max_rate(own, input_len=inp, output_len=out) == pytest.approx(free)
    s = _sglang_8b(FrontEnd(request_s=5.90e-3))
    ceiling = api_server_ceiling_rps(s, out)
    assert ceiling == pytest.approx(1 / 5.90e-3) and free > 1.5 * ceiling
    assert max_rate(s, input_len=inp, output_len=out) == pytest.approx(ceiling, rel=0.01)  # its bisection's step
    past = serve(s, rate_rps=1.05 * ceiling, input_len=inp, output_len=out, with_max_rate=False)
    assert past.saturated and past.limit == "api_server"
    # where the steps bind first (long prompts), the ceiling changes nothing
    long_in, long_out = Lengths.of(8192), Lengths.of(512)
    assert max_rate(s, input_len=long_in, output_len=long_out) == pytest.approx(
        max_rate(_sglang_8b(None), input_len=long_in, output_len=long_out)
    )


def test_the_api_server_time_is_in_the_ttft() -> None:
    # its cost a request, after the M/D/1 wait behind the server's other requests at the rate; TPOT unchanged
    inp, out = Lengths.of(1024), Lengths.of(128)
    rate = 20.0
    with_fe = serve(_sglang_8b(), rate_rps=rate, input_len=inp, output_len=out, with_max_rate=False)
    without = serve(_sglang_8b(None), rate_rps=rate, input_len=inp, output_len=out, with_max_rate=False)
    work = 1.232e-3
    assert with_fe.ttft_mean_s - without.ttft_mean_s == pytest.approx(work + queue_wait_s(work, rate * work))
    assert with_fe.ttft_mean_s - without.ttft_mean_s == pytest.approx(api_server_wait_s(_sglang_8b(), rate, out))
    p99 = api_server_wait_s(_sglang_8b(), rate, out, quantile=0.99)
    assert with_fe.ttft_p99_s - without.ttft_p99_s == pytest.approx(p99)
    assert with_fe.tpot_mean_s == pytest.approx(without.tpot_mean_s)
    # one request (rate -> 0): the static TTFT plus the server's cost a request
    low = serve(_sglang_8b(), rate_rps=1e-9, input_len=inp, output_len=out, with_max_rate=False)
    low_free = serve(_sglang_8b(None), rate_rps=1e-9, input_len=inp, output_len=out, with_max_rate=False)
    assert low.ttft_mean_s - low_free.ttft_mean_s == pytest.approx(work, rel=1e-6)


def test_front_end_worker_by_hand() -> None:
    pub, _ = published()
    w = pub.FrontEndWorker(request_s=2.0, token_s=0.5)
    assert [w.admit(0.0), w.admit(0.0), w.admit(1.0)] == [2.0, 4.0, 6.0]  # one at a time, in order
    w.emit(3.0, 4)  # a step ending at 3 s: its 4 tokens wait for the worker (free at 6 s)
    assert w.free_s == 8.0
    w.emit(10.0, 2)  # idle since 8 s
    assert w.free_s == 11.0 and w.admit(10.5) == 13.0
    # requests sent together: one after another, or all once the last is done (FrontEnd.together)
    assert pub.FrontEndWorker(request_s=2.0).admit_all(1.0, 3) == [3.0, 5.0, 7.0]
    w = pub.FrontEndWorker(request_s=2.0, together=True)
    assert w.admit_all(1.0, 3) == [7.0, 7.0, 7.0] and w.free_s == 7.0
    assert w.admit_all(4.0, 2) == [11.0, 11.0] and w.admit_all(5.0, 0) == []


def test_closed_loop_run_with_the_api_server_by_hand() -> None:
    # Three requests of one output token each, all sent at 0, the server taking 10 s each (far above a step): the
    # engine sees them at 10, 20 and 30 s and prefills each alone, so the run ends at 30 s + one prefill step.
    from kvplan.serving import _step

    pub, _ = published()
    s = setup("llama-3.1-8b", "h100-sxm", engine="vllm", weights_dtype="bf16", kv_dtype_name="bf16",
              settings=Settings(max_num_seqs=3))  # fmt: skip
    prefill = _step(s, n=0.0, p=1024.0, context=1024, prefix=0)
    assert prefill < 10.0
    tr = pub.closed_loop_trace(s, isl=1024, osl=1, concurrency=3, prompts=3, front_end=pub.FrontEndWorker(10.0))
    assert tr["duration_s"] == pytest.approx(30.0 + prefill) and tr["tok_s"] == pytest.approx(3 / (30.0 + prefill))
    assert tr["mean_ttft_s"] == pytest.approx(20.0 + prefill)  # 10, 20 and 30 s of waiting, then its prefill
    # the same requests handed on together (FrontEnd.together): the engine sees all three at 30 s and prefills them
    # in one step of 3 x 1,024 tokens (each prompt attending to its own: prompt_attention_fix_s), so every first token
    # comes at 30 s + that step
    both = _step(s, n=0.0, p=3072.0, context=1024, prefix=0) + pub.prompt_attention_fix_s(s, ((1024, 0),) * 3, {})
    tr = pub.closed_loop_trace(s, isl=1024, osl=1, concurrency=3, prompts=3,
                               front_end=pub.FrontEndWorker(10.0, together=True))  # fmt: skip
    assert tr["duration_s"] == pytest.approx(30.0 + both) and tr["mean_ttft_s"] == pytest.approx(30.0 + both)
    # a cost per token the server takes after the last step: the run ends when it has streamed them
    tr = pub.closed_loop_trace(s, isl=1024, osl=1, concurrency=1, prompts=1, front_end=pub.FrontEndWorker(1.0, 5.0))
    assert tr["duration_s"] == pytest.approx(1.0 + prefill + 5.0)


@pytest.mark.parametrize(
    ("engine", "gpu", "tp"), [("vllm@0.8", "h100-sxm", 2), ("vllm@0.8", "a100-80gb", 8), ("sglang@0.5", "h200", 4)]
)
def test_each_fitted_cost_reproduces_the_run_it_comes_from(engine: str, gpu: str, tp: int) -> None:
    # benchmarks/fit_frontend.py: the smallest cost at which a published run falls to kvplan's figure; the run it comes
    # from (vllm@0.8: gpt-oss-120b TP2 on H100, vLLM 0.10.2, for the cost a request, and Qwen3-235B TP8 on A100, vLLM
    # 0.11.0, for the chat template's on top of it; sglang@0.5: GLM-4.6-FP8 TP4 on H200; all 128 in / 4 out) is then
    # met exactly
    pub, data = published()
    key = (engine, gpu, tp, 128, 4)
    rows = [r for r in data["engine_benchmarks"] if (r["engine"], r["gpu"], r["tp"], r["isl"], r["osl"]) == key]
    assert len(rows) == 1
    r = rows[0]
    assert pub.engine_row_trace(r)["tok_s"] == pytest.approx(r["published_tok_s"], rel=0.005)
    assert pub.engine_row_trace(r, front_end=None)["tok_s"] > 1.2 * r["published_tok_s"]  # a miss without it


def test_plan_says_where_the_api_server_binds() -> None:
    from kvplan.host import front_end_note

    sg = get_engine("sglang")
    binds = front_end_note(sg, rate_rps=1000, output_tokens=4)
    assert "812 req/s" in binds and "it binds, at least 2 replicas" in binds
    assert "above the 300 req/s asked" in front_end_note(sg, rate_rps=300, output_tokens=4)
    assert front_end_note(get_engine("trtllm"), rate_rps=300, output_tokens=4) is None
    assert math.ceil(1000 / sg.front_end.ceiling_rps(4)) == 2


def test_steps_only_takes_the_server_away_and_nothing_else() -> None:
    from kvplan.serving import steps_only

    s = _sglang_8b()
    bare = steps_only(s)
    assert bare.engine.front_end is None and s.engine.front_end is not None
    assert dataclasses.replace(bare.engine, front_end=s.engine.front_end) == s.engine
    vllm = setup("qwen3-8b", "h100-sxm", engine="vllm", weights_dtype="bf16", kv_dtype_name="bf16")
    assert steps_only(vllm) is vllm  # no server: the same setup


def test_requests_sent_together_are_late_in_ttft_by_what_the_run_is_late() -> None:
    # DeepSeek-R1 128 in / 4 out on 8 x H200, vLLM 0.11.0: 1,000 chat requests at once each pay 7.15 ms in the API
    # server before any reaches the engine (FrontEnd.together), so the mean TTFT and the duration both grow by about
    # the whole 7.15 s (the page: 16.1 s and 15.7 s over kvplan's steps alone); a server handing each request on as
    # it is done would let the engine work meanwhile, the TTFT growing by about half of it
    pub, data = published()
    (r,) = [r for r in data["engine_benchmarks"] if r["model"] == "deepseek-v3" and r["osl"] == 4]
    cost = get_engine("vllm@0.8").front_end.cost_s("deepseek_v3")
    bare, served = pub.engine_row_trace(r, front_end=None), pub.engine_row_trace(r)
    assert served["duration_s"] - bare["duration_s"] == pytest.approx(1000 * cost, rel=0.05)
    assert served["mean_ttft_s"] - bare["mean_ttft_s"] == pytest.approx(1000 * cost, rel=0.05)
    one_by_one = pub.engine_row_trace(r, front_end=pub.FrontEndWorker(cost))
    assert one_by_one["mean_ttft_s"] - bare["mean_ttft_s"] < 0.7 * 1000 * cost


def test_sglang_hands_a_burst_on_together_as_its_server_is_written() -> None:
    # SGLang 0.5.3 / 0.5.7: the chat handler renders and tokenizes the prompt before its first wait, and the request
    # reaches the scheduler only in the StreamingResponse's own task, a later event-loop pass (kvplan/engines/sglang.py
    # FRONT_END): GLM-4.6-FP8 TP4 on H200, 1,000 chat requests of 128 in / 4 out at once, the mean TTFT and the
    # duration both grow by the whole 1,000 x 1.232 ms; the page's mean TTFT and TPOT (3.55 s, 0.80 s) are met closer
    # than by the serial reading fitted before the source was read (5.90 ms a request, 3.09 s and 1.04 s)
    pub, data = published()
    (r,) = [r for r in data["engine_benchmarks"] if r["engine"].startswith("sglang") and r["osl"] == 4]
    cost = get_engine("sglang@0.5").front_end.cost_s("glm4_moe")
    bare, served = pub.engine_row_trace(r, front_end=None), pub.engine_row_trace(r)
    assert served["duration_s"] - bare["duration_s"] == pytest.approx(1000 * cost, rel=0.05)
    assert served["mean_ttft_s"] - bare["mean_ttft_s"] == pytest.approx(1000 * cost, rel=0.05)
    serial = pub.engine_row_trace(r, front_end=pub.FrontEndWorker(5.90e-3))
    assert serial["tok_s"] == pytest.approx(r["published_tok_s"], rel=0.01)  # the old fit met the throughput too
    page = r["printed"]
    for key, printed in (("mean_ttft_s", page["mean_ttft_ms"] / 1e3), ("mean_tpot_s", page["mean_tpot_ms"] / 1e3)):
        assert abs(math.log(served[key] / printed)) < abs(math.log(serial[key] / printed)), key
    assert abs(math.log(served["mean_ttft_s"] / 3.5515)) < 0.07
    assert abs(math.log(served["mean_tpot_s"] / 0.80025)) < 0.03

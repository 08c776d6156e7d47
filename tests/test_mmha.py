"""TensorRT-LLM decodes Llama 4's chunked layers with MMHA on Hopper (XQA refuses a chunk): kvplan.latency
``_mmha_decode_s``, and the launch's ``max_seq_len`` below the chunk turning chunked attention off
(kvplan.engines.trtllm ``Trtllm.attention_spans``)."""

from __future__ import annotations

import json

import pytest

from kvplan import latency
from kvplan.catalog import resolve_model
from kvplan.engines import Settings, get_engine
from kvplan.hardware import resolve_gpu
from kvplan.spec import ModelSpec

SCOUT = "llama-4-scout-17b-16e"


def one_chunked_layer(heads: int, kv_heads: int, *, chunked: bool = True) -> ModelSpec:
    """One chunked-attention layer (chunk 8,192; or a full-attention one), head_dim 128; the other sizes are
    placeholders."""
    kind = {"type": "chunked", "chunk": 8192} if chunked else {"type": "full"}
    return ModelSpec.model_validate({
        "name": f"chunked-{heads}x{kv_heads}", "source": "test", "hidden_size": heads * 128, "vocab_size": 32000,
        "num_layers": 1, "num_attention_heads": heads, "num_kv_heads": kv_heads, "head_dim": 128,
        "intermediate_size": 4 * heads * 128, "dtype": "bf16", "max_position_embeddings": 1 << 20, "rope": None,
        "layers": {"kinds": {"local": kind}, "pattern": ["local"]},
    })  # fmt: skip


def decode_s(gpu: str, engine: str, *, batch: int, context: int) -> float:
    cal = latency.calibration(engine)
    c = latency._make_ctx(one_chunked_layer(40, 8), resolve_gpu(gpu), tp=1, weights_dtype="bf16", cal=cal,
                          eager=False)  # fmt: skip
    return latency._attention_s(c, phase="decode", context=context, batch=batch, attention_flops=0, kv_dtype="fp8")


def test_mmha_golden_on_h100():
    # Scout's 40 query / 8 KV heads, 10 sequences at 1,000 tokens, fp8 KV on H100 SXM (3,350 GB/s):
    # read = 10 x 1,000 x 8 heads x 128 x 2 (K, V) x 1 B = 20,480,000 B / (3.35e12 x 0.8451) = 7.234e-6 s
    # work = 10 x 40 x (8.7e-9 + 1,000 x 7.1e-11) = 400 x 7.97e-8 = 3.188e-5 s  (the slower)
    # + attn_layer_s 1.253e-5 = 4.441e-5 s
    cal = latency.calibration("trtllm")
    assert (cal.hopper_mmha_head_token_s, cal.hopper_mmha_head_s, cal.attn_layer_s) == (7.1e-11, 8.7e-09, 1.253e-05)
    assert decode_s("h100-sxm", "trtllm", batch=10, context=1000) == pytest.approx(4.441e-5, rel=1e-3)


def test_mmha_only_where_its_rule_holds():
    # Hopper under TensorRT-LLM: MMHA, slower than the same layer as full attention (XQA's GQA path) by far
    spec, as_full = one_chunked_layer(40, 8), one_chunked_layer(40, 8, chunked=False)
    c = latency._make_ctx(as_full, resolve_gpu("h200"), tp=1, weights_dtype="bf16",
                          cal=latency.calibration("trtllm"), eager=False)  # fmt: skip
    xqa = latency._attention_s(c, phase="decode", context=4096, batch=64, attention_flops=0, kv_dtype="fp8")
    assert decode_s("h200", "trtllm", batch=64, context=4096) > 3 * xqa
    # Blackwell runs TRTLLM-Gen's kernels, vLLM has no such fallback: a chunked layer costs what a full one does there
    for gpu, engine in (("b200", "trtllm"), ("h200", "vllm")):
        cal = latency.calibration(engine)
        mine = latency._make_ctx(spec, resolve_gpu(gpu), tp=1, weights_dtype="bf16", cal=cal, eager=False)
        other = latency._make_ctx(as_full, resolve_gpu(gpu), tp=1, weights_dtype="bf16", cal=cal, eager=False)
        assert latency._attention_s(mine, phase="decode", context=4096, batch=64, attention_flops=0,
                                    kv_dtype="fp8") == pytest.approx(latency._attention_s(
            other, phase="decode", context=4096, batch=64, attention_flops=0, kv_dtype="fp8"))  # fmt: skip


def test_max_seq_len_below_the_chunk_turns_chunked_attention_off():
    spec, engine = resolve_model(SCOUT), get_engine("trtllm@0.20")
    assert engine.attention_spans(spec, Settings(max_seq_len=4224)) == {"local": None}
    assert engine.attention_spans(spec, Settings(max_seq_len=8192)) is None  # not below the chunk: kept
    assert engine.attention_spans(spec, Settings()) is None  # the LLM API default: the model's own limit
    assert get_engine("trtllm").attention_spans(spec, Settings(max_seq_len=4224)) == {"local": None}
    assert engine.attention_spans(resolve_model("llama-3.1-8b"), Settings(max_seq_len=4224)) is None


def test_scout_decode_step_on_hopper_with_and_without_chunked_attention():
    # Scout, DP4 + EP on 4 x H200, 100 sequences a rank at 4,000 tokens: a launch of max_seq_len 22,000 keeps
    # chunked attention (36 of 48 layers on MMHA), one of 4,224 drops it (XQA); on B200 the two agree
    def step(gpu: str, max_seq_len: int) -> latency.OpTimes:
        return latency.mixed_step_latency(resolve_model(SCOUT), resolve_gpu(gpu), decode_seqs=400, decode_context=4000,
                                          prefill_tokens=0, dp=4, kv_dtype_name="fp8", weights_dtype="fp8",
                                          engine="trtllm@0.20", expert_parallel=True,
                                          settings=Settings(max_seq_len=max_seq_len))  # fmt: skip

    chunked, full = step("h200", 22000), step("h200", 4224)
    assert chunked.attention > 3 * full.attention
    assert chunked.total - chunked.attention == pytest.approx(full.total - full.attention)
    assert step("b200", 22000).total == pytest.approx(step("b200", 4224).total)


COST = ["cost", SCOUT, "--gpu", "h200", "--tp", "4", "--batch", "64", "--context", "4k", "--engine", "trtllm",
        "--format", "json"]  # fmt: skip


def _tpot(cli, *extra: str) -> float:
    out = cli(*COST, *extra)
    assert out.exit_code == 0, out.output
    return next(r["time_s"] for r in json.loads(out.output) if r["phase"] == "decode")


def test_cli_max_seq_len(cli) -> None:
    # TensorRT-LLM's default max_seq_len (the model's limit) keeps chunked attention: MMHA on Hopper; a launch of
    # 4,096 tokens drops it (XQA); 8,192 (not below the chunk) keeps it
    default, short, at_chunk = _tpot(cli), _tpot(cli, "--max-seq-len", "4096"), _tpot(cli, "--max-seq-len", "8192")
    assert default == at_chunk > short
    refusals = ((["--max-seq-len", "0"], "invalid --max-seq-len 0"),
                (["--max-seq-len", "4096", "--engine", "vllm"], "--max-seq-len does not apply to engine"),
                (["--max-seq-len", "4096", "--latency", "roofline"], "--max-seq-len is an engine flag"))  # fmt: skip
    for extra, said in refusals:
        out = cli(*COST, *extra)
        assert out.exit_code == 2 and said in out.output, out.output
    out = cli("plan", SCOUT, "--users", "10", "--context", "4k", "--engine", "trtllm", "--max-seq-len", "4096")
    assert out.exit_code == 2 and "use it with --rate" in out.output

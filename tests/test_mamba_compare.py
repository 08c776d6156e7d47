"""benchmarks/mamba_compare.py: kvplan's Mamba2 mixer kernels against aiconfigurator's measured Mamba2 tables."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import mamba_compare  # noqa: E402

# Nemotron 3 Nano 30B's Mamba2 mixer as aiconfigurator's rows name it (model_specs/nemotron-3-nano-30b-a3b.yaml)
NANO = {"d_model": 2688, "d_state": 128, "d_conv": 4, "nheads": 64, "head_dim": 64, "n_groups": 8, "chunk_size": 128}


@pytest.fixture(scope="module")
def tables() -> list[dict]:
    return mamba_compare.load()


def test_sample_holds_the_four_gpus_and_only_conv1d_kernels(tables: list[dict]) -> None:
    # aiconfigurator 0.12.0, TensorRT-LLM 1.3.0rc20: 592-624 context rows (causal_conv1d_fn) and 66 generation rows
    # (causal_conv1d_update) per GPU; no mamba_chunk_scan_combined or selective_state_update row anywhere.
    assert sorted(t["gpu"] for t in tables) == ["b200", "gb200", "h100-sxm", "h200"]
    assert sum(len(t["rows"]) for t in tables) == 2718
    kernels = {(r["phase"], r["kernel_source"]) for t in tables for r in t["rows"]}
    assert kernels == {("context", "causal_conv1d_fn"), ("generation", "causal_conv1d_update")}
    assert all(r["seq_len"] == 1 for t in tables for r in t["rows"] if r["phase"] == "generation")


def test_decode_mixer_golden_b200() -> None:
    # Nano's mixer, batch 8, TensorRT-LLM calibration on B200 (kvplan/engines/trtllm.py: attn_decode_mem_eff 0.8451,
    # attn_layer_s 12.53 us, attn_seq_s 0.07637 us; B200 7,700 GB/s, kvplan/data/gpus.yaml).
    # state per sequence: conv (4096 + 2 x 8 x 128) x 3 = 18,432 + SSM 4096 x 128 = 524,288 elements, bf16 ->
    # 1,085,440 bytes; x 8 = 8,683,520 bytes / (7.7e12 x 0.8451 = 6.50727e12) = 1.334438 us
    # + 12.53 us + 8 x 0.07637 us = 0.61096 us -> 14.475398 us
    row = {**NANO, "phase": "generation", "batch_size": 8, "seq_len": 1}
    assert mamba_compare.mixer_seconds(row, "b200") == pytest.approx(14.475398e-6, rel=1e-6)


def test_prefill_mixer_is_a_fixed_charge() -> None:
    # kvplan prices no Mamba2 prefill work: attention_flops is 0 for a recurrent layer, so the mixer costs
    # attn_layer_s + eager_kernel_s = 12.53 + 10.95 = 23.48 us at any prompt length (the defect this script shows).
    for seq_len in (1, 2048, 32768):
        row = {**NANO, "phase": "context", "batch_size": 1, "seq_len": seq_len}
        assert mamba_compare.mixer_seconds(row, "b200") == pytest.approx(23.48e-6, rel=1e-9)


def test_long_prompts_are_priced_under_the_conv1d_alone(tables: list[dict]) -> None:
    # the measured conv1d grows with the tokens, kvplan's charge does not: over 8,192 tokens every row is under it
    rows = mamba_compare.compare(tables)
    long = [r for r in rows if r["phase"] == "context" and r["tokens"] > 8192]
    assert long and mamba_compare.stats(long)["under"] == len(long)
    b200 = next(t for t in tables if t["gpu"] == "b200")
    hit = next(r for r in b200["rows"] if r["phase"] == "context" and r["batch_size"] * r["seq_len"] == 2048)
    [mine] = mamba_compare.compare([{**b200, "rows": [hit]}])
    assert mine["measured_s"] == pytest.approx(hit["latency"] / 1e3)


def test_render_names_every_gpu_and_phase(tables: list[dict]) -> None:
    text = mamba_compare.render(mamba_compare.compare(tables))
    for gpu in ("b200", "gb200", "h100-sxm", "h200"):
        for phase in ("context", "generation"):
            assert f"  {gpu} {phase}: " in text
    assert "  context prompts > 8192 tokens: " in text and "  generation decode <= 16 tokens: " in text


def test_conv1d_bytes_golden_b200() -> None:
    # TensorRT-LLM calibration on B200: elementwise_mem_eff 0.7305 -> 7.7e12 x 0.7305 = 5.62485e12 B/s;
    # eager_kernel_s 10.95 us, graph_kernel_s 2.724 us. Nano's conv channels 4096 + 2 x 8 x 128 = 6,144, bf16.
    # context, one prompt of 2,048: 2 x 6,144 x (2 x 2,048 + 4) = 50,380,800 B -> 8.956826 us + 10.95 = 19.906826 us
    # (the table measures 22.06 us for this row).
    prompt = {**NANO, "phase": "context", "batch_size": 1, "seq_len": 2048}
    assert mamba_compare.conv1d_bytes_seconds(prompt, "b200") == pytest.approx(19.906826e-6, rel=1e-6)
    # generation, batch 8: 2 x 6,144 x 8 x (2 x 3 + 2) = 786,432 B -> 0.139814 us + 2.724 = 2.863814 us
    step = {**NANO, "phase": "generation", "batch_size": 8, "seq_len": 1}
    assert mamba_compare.conv1d_bytes_seconds(step, "b200") == pytest.approx(2.863814e-6, rel=1e-6)


def test_docs_block_is_what_the_script_prints(tables: list[dict]) -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cost.md").read_text(encoding="utf-8")
    block = doc.split("<!-- mamba_compare:begin -->\n", 1)[1].split("\n<!-- mamba_compare:end -->", 1)[0]
    assert block == "```text\n" + mamba_compare.render(mamba_compare.compare(tables)) + "\n```"

"""benchmarks/mamba_compare.py: kvplan's Mamba2 mixer kernels against aiconfigurator's measured Mamba2 tables."""

import math
from pathlib import Path

import pytest

from tests.benchmods import bench_module

mamba_compare = bench_module("mamba_compare")

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
    # graph_kernel_s 2.724 us; B200 7,700 GB/s, kvplan/data/gpus.yaml).
    # state per sequence: conv (4096 + 2 x 8 x 128) x 3 = 18,432 + SSM 4096 x 128 = 524,288 elements, bf16 ->
    # 1,085,440 bytes; x 8 = 8,683,520 bytes, read and written: 17,367,040 / (7.7e12 x 0.8451 = 6.50727e12)
    # = 2.668876 us + 2 decode kernels (causal_conv1d_update, selective_state_update) x 2.724 us -> 8.116876 us.
    # (Was 14.475398 us: the state read once plus attn_layer_s 12.53 us and 8 x attn_seq_s 0.07637 us.)
    row = {**NANO, "phase": "generation", "batch_size": 8, "seq_len": 1}
    assert mamba_compare.mixer_seconds(row, "b200") == pytest.approx(8.116876e-6, rel=1e-5)


def test_prefill_mixer_golden_b200() -> None:
    # Nano's mixer, one prompt of 2,048 tokens, TensorRT-LLM calibration on B200 (kvplan/engines/trtllm.py:
    # blackwell_compute_eff 0.8329, elementwise_mem_eff 0.7305, eager_kernel_s 10.95 us; B200 2,250 dense bf16
    # TFLOPS and 7,700 GB/s, kvplan/data/gpus.yaml; ssd_scan_eff 0.1016, ssd_scan_floor_s 290.7 us,
    # kvplan/engines/base.py):
    # scan 6,979,321,856 FLOPs (tests/test_recurrent.py) / (2.25e15 x 0.8329 x 0.1016 = 1.904009e14) = 36.655921 us
    # + 5 SSD kernels x 10.95 us = 91.405921 us, under the floor: 290.7 us;
    # conv 50,380,800 B / (7.7e12 x 0.7305) = 8.956826 us + 1 kernel 10.95 us -> 310.606826 us.
    # (Was 111.312747 us before the floor: 36.655921 + 8.956826 + 6 x 10.95.)
    row = {**NANO, "phase": "context", "batch_size": 1, "seq_len": 2048}
    assert mamba_compare.mixer_seconds(row, "b200") == pytest.approx(310.606826e-6, rel=1e-6)


def test_prefill_mixer_grows_with_the_prompt() -> None:
    # it was a fixed 23.48 us (attn_layer_s + eager_kernel_s) at 1, 2,048 and 32,768 tokens before the scan and the
    # conv1d were priced; now strictly increasing in the tokens (the conv1d grows under the SSD call's floor too), and
    # linear past the floor (32,768 tokens: 36.655921 x 16 = 586.5 us of scan, over it)
    times = [mamba_compare.mixer_seconds({**NANO, "phase": "context", "batch_size": 1, "seq_len": n}, "b200")
             for n in (1, 16, 512, 2048, 8192, 32768, 131072)]  # fmt: skip
    assert times == sorted(times) and len(set(times)) == len(times)
    fixed = 6 * 10.95e-6 + 2 * 6144 * 4 / (7.7e12 * 0.7305)  # launches and the conv taps
    assert (times[-1] - fixed) / (times[-2] - fixed) == pytest.approx(4, rel=1e-3)  # 131,072 / 32,768


def test_long_prompts_are_priced_over_the_conv1d_alone(tables: list[dict]) -> None:
    # kvplan's whole mixer (conv1d + scan) over 8,192 tokens is above the measured conv1d alone on every row (before
    # the scan was priced every one of them was under it), and its conv1d part is kvplan.recurrent's byte count
    rows = mamba_compare.compare(tables)
    long = [r for r in rows if r["phase"] == "context" and r["tokens"] > 8192]
    assert long and mamba_compare.stats(long)["under"] == 0
    b200 = next(t for t in tables if t["gpu"] == "b200")
    hit = next(r for r in b200["rows"] if r["phase"] == "context" and r["batch_size"] * r["seq_len"] == 2048)
    [mine] = mamba_compare.compare([{**b200, "rows": [hit]}])
    assert mine["measured_s"] == pytest.approx(hit["latency"] / 1e3)


def test_scan_table_and_fit() -> None:
    # vllm-project/vllm PR #27299 (H100, granite-4.0-h-small's mixer): 9 rows, 1,024-262,144 tokens. The rows past the
    # floor are 4,096 and up (seconds per token within 1.25x of the best, 16,384 tokens: 1 / 1.292440e7 s); the
    # calibrated ssd_scan_eff is their fit, and kvplan's scan is within 12 % of each of them.
    table = mamba_compare.scan_table()
    assert table["source"]["url"] == "https://github.com/vllm-project/vllm/pull/27299" and len(table["rows"]) == 9
    assert [t for t, _ in mamba_compare.linear_rows(table["rows"])] == [4096 << i for i in range(7)]
    from kvplan import latency

    assert mamba_compare.fit_scan_eff(table) == pytest.approx(latency.calibration("vllm").ssd_scan_eff, abs=5e-5)
    kind = mamba_compare.scan_kind(table["layer"])
    for tokens, rate in mamba_compare.linear_rows(table["rows"]):
        assert abs(math.log(mamba_compare.scan_seconds(kind, tokens, "h100-sxm") * rate / tokens)) < 0.12
    # by hand at 262,144 tokens: 8,454,144 FLOPs per token (tests/test_recurrent.py) x 262,144 = 2.216209e12 FLOPs /
    # (H100 989e12 x 0.1016) = 22.0556 ms, + 5 kernels x vLLM's eager 4.017 us = 22.0757 ms (measured: 24.238 ms)
    assert mamba_compare.scan_seconds(kind, 262144, "h100-sxm") == pytest.approx(
        8454144 * 262144 / (989e12 * 0.1016) + 5 * 4.017e-6, rel=1e-9
    )
    assert "fit: ssd_scan_eff 0.1016 over 7 rows" in mamba_compare.render_scan(table)


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


def test_scan_docs_block_is_what_the_script_prints() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cost.md").read_text(encoding="utf-8")
    block = doc.split("<!-- mamba_scan:begin -->\n", 1)[1].split("\n<!-- mamba_scan:end -->", 1)[0]
    assert block == "```text\n" + mamba_compare.render_scan(mamba_compare.scan_table()) + "\n```"

"""TP all-reduces per layer as the engines' model files build each family's blocks (kvplan.params.layer_allreduces,
kvplan.latency._kind_allreduces): one a Nemotron-H block, none for Nemotron-NAS no-op attention, three a Falcon-H1
layer (attention and Mamba2 branches reduced apart, then the MLP) and a Granite 4.0 hybrid layer (its shared MLP
reduced apart from the experts), and the narrower ones (Jamba's Mamba x_proj; vLLM's norm over a one-group Mamba2
mixer and over a lightning-attention layer)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kvplan.catalog import load_bundled
from kvplan.cost import allreduce_bytes
from kvplan.engines import trtllm, vllm
from kvplan.hardware import resolve_gpu
from kvplan.latency import _make_ctx, sampling_s, step_latency
from kvplan.params import tp_allreduces

B200 = resolve_gpu("b200")
CAL = vllm.CALIBRATION


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("llama-3.1-8b", 2 * 32),  # attention + MLP, every layer
        ("jamba-v0.1", 2 * 32),  # Mamba or attention, then MLP or MoE
        ("qwen3-next-80b-a3b", 2 * 48),  # shared experts joined before the MoE's one all-reduce
        ("nemotron-3-nano-30b-a3b", 52),  # one mixer a block: 23 Mamba2 + 23 MoE + 6 attention
        ("nemotron-h-8b-base-8k", 52),
        ("llama-3.3-nemotron-super-49b-v1", 49 + 80),  # 31 no-op attention blocks, every FFN present
        ("falcon-h1-7b-instruct", 3 * 44),  # attention o_proj, Mamba2 out_proj, MLP down_proj
        ("granite-4.0-h-small", 3 * 40),  # mixer, experts, shared MLP
    ],
)
def test_count_per_family(name: str, count: int) -> None:
    assert tp_allreduces(load_bundled(name)) == count


def test_roofline_traffic_follows_the_count() -> None:
    nano = load_bundled("nemotron-3-nano-30b-a3b")
    per = 2 * (2 - 1) * (8 * nano.hidden_size * 2) // 2  # ring traffic of one all-reduce of 8 tokens at TP 2
    assert allreduce_bytes(nano, 8, tp=2) == 52 * per


def _wide(spec, tokens: int, cal=CAL) -> float:  # noqa: ANN001 - one hidden-size all-reduce at TP 2 on B200
    return _narrow(tokens * spec.hidden_size * 2, cal)


def _narrow(nbytes: float, cal=CAL) -> float:  # noqa: ANN001 - B200's own fixed latency (allreduce_constants)
    return cal.blackwell_allreduce_base_s + nbytes / (B200.interconnect_gbps * 1e9 * cal.allreduce_bw_eff)


def _decode(name: str, batch: int, **kw) -> float:  # noqa: ANN003
    """The step's all-reduces at TP 2: its collective column less the vLLM rules' logits all-gather (sampling_s), which
    the column also carries."""
    spec = load_bundled(name)
    t = step_latency(spec, B200, 2048, phase="decode", batch=batch, tp=2, kv_dtype_name="bf16",
                     weights_dtype="bf16", attention_flops=0, **kw)  # fmt: skip
    c = _make_ctx(spec, B200, tp=2, weights_dtype="bf16", cal=CAL, eager=False, rules=vllm.OVERLAP)
    return t.allreduce - sampling_s(c, batch)[0]


def test_nemotron_h_step_prices_one_allreduce_a_block() -> None:
    nano = load_bundled("nemotron-3-nano-30b-a3b")
    # 52 blocks + the embedding's (the old rule charged 2 x 52 + 1 = 105)
    assert _decode(nano.name, 8, engine="vllm") == pytest.approx(53 * _wide(nano, 8))


def test_separate_shared_mlp_and_one_group_norm() -> None:
    granite = load_bundled("granite-4.0-h-small")
    wide = 121 * _wide(granite, 4)
    # vLLM: Mixer2RMSNormGated all-reduces one fp32 a token on each of the 36 one-group Mamba2 layers
    assert _decode(granite.name, 4, engine="vllm") == pytest.approx(wide + 36 * _narrow(4 * 4))
    quiet = replace(CAL, mixer_norm_allreduce=False)
    assert _decode(granite.name, 4, engine="vllm", constants=quiet) == pytest.approx(wide)
    assert not trtllm.CALIBRATION.mixer_norm_allreduce  # TensorRT-LLM's Mamba2Mixer norms within the rank's groups


def test_falcon_h1_parallel_branches_without_gated_norm() -> None:
    falcon = load_bundled("falcon-h1-7b-instruct")  # mamba_rms_norm false (ssm_norm): no norm all-reduce
    assert _decode(falcon.name, 4, engine="vllm") == pytest.approx(133 * _wide(falcon, 4))


def test_mamba_x_proj_and_lightning_norm() -> None:
    jamba = load_bundled("jamba-v0.1")  # 28 Mamba layers: x_proj reduces dt_rank + 2 d_state = 288 values a token
    assert _decode(jamba.name, 4, engine="vllm") == pytest.approx(65 * _wide(jamba, 4) + 28 * _narrow(4 * 288 * 2))
    m1 = load_bundled("minimax-m1-80k")  # 70 lightning layers: MiniMaxText01RMSNormTP's variance all-reduce
    assert _decode(m1.name, 4, engine="vllm") == pytest.approx(161 * _wide(m1, 4) + 70 * _narrow(4 * 4))


def test_single_gpu_has_no_allreduce() -> None:
    spec = load_bundled("granite-4.0-h-small")
    t = step_latency(spec, B200, 2048, phase="decode", batch=4, tp=1, kv_dtype_name="bf16", weights_dtype="bf16",
                     attention_flops=0, engine="vllm")  # fmt: skip
    assert t.allreduce == 0.0


def test_minimax_m2_qk_norm_allreduce() -> None:
    m2 = load_bundled("minimax-m2")  # 62 attention layers, q / k RMSNorm over all heads: their sums all-reduced
    wide = 125 * _wide(m2, 4)
    assert _decode(m2.name, 4, engine="vllm") == pytest.approx(wide + 62 * _narrow(4 * 8))
    quiet = replace(CAL, mixer_norm_allreduce=False)
    assert _decode(m2.name, 4, engine="vllm", constants=quiet) == pytest.approx(wide)

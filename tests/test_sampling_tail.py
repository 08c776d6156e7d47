"""vLLM's sampling after the LM head (kvplan.latency.sampling_s, Overlap.logits_gather_sample).

Read in the vLLM 0.11.0 and 0.16.0 wheels: LogitsProcessor._gather_logits all-gathers the vocab-parallel logits over
the TP group (NCCL, DeviceCommunicatorBase.all_gather, then one reordering copy), outside the step's CUDA graph, and
the V1 Sampler casts them to fp32 and takes an argmax over the vocabulary. Priced on every step that samples, for the
vLLM rule sets only.
"""

from __future__ import annotations

import pytest

from kvplan.catalog import load_bundled
from kvplan.engines import sglang, trtllm, vllm
from kvplan.hardware import resolve_gpu
from kvplan.latency import SAMPLER_KERNELS, _make_ctx, nccl_collective_s, sampling_s

NANO = "nemotron-3-nano-30b-a3b"


def _ctx(gpu: str, *, tp: int, rules, cal=vllm.CALIBRATION, gpus_per_node: int = 8):  # noqa: ANN001, ANN202
    return _make_ctx(load_bundled(NANO), resolve_gpu(gpu), tp=tp, weights_dtype="fp8", cal=cal, eager=False,
                     rules=rules, gpus_per_node=gpus_per_node)  # fmt: skip


def test_tp2_gathers_over_nccl_and_passes_the_vocabulary_by_hand() -> None:
    """Nano on 2 x B200, 512 rows: vocabulary 131,072, 65,536 a rank. Gathered 512 x 131,072 x 2 B = 134,217,728 B;
    NCCL over the 2 ranks (nccl_collective_s). Passes: 512 x 131,072 x (2 + 4 + 4) B for the cast and the argmax plus
    2 x 134,217,728 B for the reorder = 939,524,096 B at 7.7 TB/s x elementwise_mem_eff, and 4 eager kernels."""
    c = _ctx("b200", tp=2, rules=vllm.OVERLAP)
    gather, passes = sampling_s(c, 512)
    assert gather == nccl_collective_s(c, 134_217_728, 2)
    cal = vllm.CALIBRATION
    want = 939_524_096 / (7700e9 * cal.elementwise_mem_eff) + (SAMPLER_KERNELS + 1) * cal.eager_kernel_s
    assert passes == pytest.approx(want, rel=1e-12)
    assert gather > 0


def test_tp1_has_no_gather_and_other_engines_none() -> None:
    """One GPU: the sampler's passes alone (no gather, no reorder). TensorRT-LLM and SGLang rules: not read, nothing."""
    c = _ctx("b200", tp=1, rules=vllm.OVERLAP)
    gather, passes = sampling_s(c, 1)
    cal = vllm.CALIBRATION
    assert gather == 0.0
    assert passes == pytest.approx(131_072 * 10 / (7700e9 * cal.elementwise_mem_eff)
                                   + SAMPLER_KERNELS * cal.eager_kernel_s, rel=1e-12)  # fmt: skip
    assert sampling_s(c, 0) == (0.0, 0.0)
    for rules in (trtllm.OVERLAP, sglang.OVERLAP):
        assert sampling_s(_ctx("b200", tp=2, rules=rules), 64) == (0.0, 0.0)
    assert vllm.V0_8.overlap.logits_gather_sample and vllm.ENGINE.overlap.logits_gather_sample


def test_a_group_past_the_node_takes_the_network() -> None:
    """TP 16 over nodes of 8: no NCCL fit applies (nccl_collective_s None); the engine's all-reduce latency, the
    network's, and 15/16 of the gathered bytes at the NIC's share."""
    from kvplan.latency import NETWORK_BW_EFF, NETWORK_GBPS, NETWORK_LATENCY_S

    c = _ctx("h100-sxm", tp=16, rules=vllm.OVERLAP)
    gathered = 4 * 8192 * 16 * 2  # ceil(131,072 / 16) = 8,192 a rank
    assert nccl_collective_s(c, gathered, 16) is None
    cal = vllm.CALIBRATION
    want = (cal.allreduce_base_s + 14 * cal.allreduce_rank_s + NETWORK_LATENCY_S
            + 15 / 16 * gathered / (NETWORK_GBPS * 1e9 * NETWORK_BW_EFF))  # fmt: skip
    assert sampling_s(c, 4)[0] == pytest.approx(want, rel=1e-12)


def test_the_decode_step_carries_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nano's decode step on 2 x B200 under vllm@0.16 at 64 sequences is the same step without the tail plus the tail:
    the all-reduce column grows by the gather, the element-wise column by the passes, nothing else moves."""
    import dataclasses

    from kvplan import latency

    spec, gpu = load_bundled(NANO), resolve_gpu("b200")

    def step() -> dict:
        return latency.step_latency(spec, gpu, 2048, phase="decode", batch=64, tp=2, kv_dtype_name="bf16",
                                    weights_dtype="fp8", attention_flops=0, engine="vllm@0.16").as_dict()  # fmt: skip

    with_tail = step()
    rules = latency.engine_overlap("vllm@0.16")
    bare = dataclasses.replace(rules, logits_gather_sample=False)
    monkeypatch.setattr(latency, "engine_overlap", lambda engine: bare)
    without = step()
    gather, passes = sampling_s(_ctx("b200", tp=2, rules=rules), 64)
    assert gather > 1e-5 and passes > 1e-5
    assert with_tail["allreduce_s"] - without["allreduce_s"] == pytest.approx(gather, rel=1e-9)
    assert with_tail["elementwise_s"] - without["elementwise_s"] == pytest.approx(passes, rel=1e-9)
    for key in ("gemm_s", "moe_s", "attention_s", "overlap_s"):
        assert with_tail[key] == without[key]

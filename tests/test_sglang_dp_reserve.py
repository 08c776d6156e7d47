"""SGLang's DP-attention memory reserve under kvplan's ``--dp`` (server_args.py _handle_gpu_memory_settings).

With ``--enable-dp-attention`` SGLang reserves ``cuda_graph_max_bs x dp_size x 3`` MiB more (x 4.5 above 300 graph
batch sizes) before it sets the default mem_fraction_static. kvplan's ``--dp D`` is SGLang's ``--tp tp*D --dp D
--enable-dp-attention``; before this change only the library's ``Settings.attention_dp`` reached the term, so every
``--dp`` capacity ran at the plain-TP fraction.
"""

from __future__ import annotations

import pytest

from kvplan.capacity import setup
from kvplan.engines import Settings
from kvplan.engines.sglang import dp_attention_size
from kvplan.params import Sharding
from kvplan.units import MIB

SGLANG = "sglang@0.5"  # the 0.5.7-era rule these goldens state (0.5.23's: tests/test_sglang_graph_reserves.py)


def _budget(model: str, gpu: str, **kw):  # noqa: ANN202
    return setup(model, gpu, engine=SGLANG, **kw).stages[0].budget


def test_dp_ranks_are_sglang_dp_size() -> None:
    # --tp 1 --dp 8: SGLang tp_size 8, attn_tp_size 1 -> dp_size 8; --tp 2 --dp 4: tp_size 8, attn_tp 2 -> 4
    assert dp_attention_size(Settings(), tp=8, sharding=Sharding(attn_tp=1, mlp_tp=8, vocab_tp=8)) == 8
    assert dp_attention_size(Settings(), tp=8, sharding=Sharding(attn_tp=2, mlp_tp=8, vocab_tp=8)) == 4
    assert dp_attention_size(Settings(), tp=8, sharding=Sharding.tensor(8)) == 1  # plain TP
    # the library's attention_dp (inside one TP group, sharding whole) as before
    assert dp_attention_size(Settings(attention_dp=8), tp=8, sharding=Sharding.tensor(8)) == 8
    assert dp_attention_size(Settings(), tp=8, sharding=None) == 1


def test_deepseek_v3_h200_dp8_pays_the_dp_attention_reserve() -> None:
    # H200 usable 150,263,037,952 B = 143,302 MiB; SGLang tp_size 8 (>= 4): graph bs 512, chunk 8,192.
    # reserved = 512 + 1.5 x 8,192 + 2 x 512 + 8 x 1 / 8 x 1,024 = 14,848 MiB
    #   + DP attention 512 x 8 x 3 = 12,288 + (512 > 300) 512 x 8 x 1.5 = 6,144 -> 33,280 MiB
    # fraction = (143,302 - 33,280) / 143,302 = 0.76776 -> 0.768 (was 0.896 = (143,302 - 14,848) / 143,302: the
    # term never applied under --dp).
    b = _budget("deepseek-v3", "h200", tp=1, dp=8, ep=True)
    assert b.device_total // MIB == 143302
    assert b.fraction == round((143302 - 33280) / 143302, 3) == 0.768
    # share = int(149,178,558,710 free at start x 0.768) = 114,569,133,089; weights 94,321,045,232 B with the input
    # embedding cut 8 ways, plus what SGLang holds beyond that (0.5.7 models/deepseek_v2.py): the embedding whole under
    # DP attention, 129,280 x 7,168 x 2 B x 7/8 = 1,621,688,320 more, and the bf16 w_kc / w_vc copies of kv_b_proj,
    # 61 x 128 heads x (128 + 128) x 512 x 2 B = 2,046,820,352 -> 97,989,553,904 B; available 16,579,579,185 B;
    # / 61 layers x 576 x 2 B = 70,272 B a token -> 235,934 tokens a DP rank (288,138 before those two terms,
    # 559,866 at 0.896)
    assert b.weights == 94_321_045_232 + 1_621_688_320 + 2_046_820_352 == 97_989_553_904
    assert b.available_kv == int((b.device_total - b.non_torch) * 0.768) - b.weights == 16_579_579_185
    assert b.available_kv // (61 * 576 * 2) == 235_934


def test_plain_tp_and_replicas_pay_no_dp_term() -> None:
    # --tp 8 alone, and two --tp 8 replicas (SGLang --dp 2 without --enable-dp-attention: separate servers behind
    # the router): reserved 14,848 MiB, fraction 0.896 on both
    assert _budget("deepseek-v3", "h200", tp=8).fraction == round((143302 - 14848) / 143302, 3) == 0.896
    assert _budget("deepseek-v3", "h200", tp=8, gpus=16).fraction == 0.896


def test_b200_fraction_matches_the_one_sglang_05_implies() -> None:
    # engine_logs.json sglang-05 (SGLang main 2025-10-07, PR #11309; 8 x B200, --tp 8 --dp 8 --enable-dp-attention,
    # DeepSeek-V3.2-Exp, fp8 NSA cache): the automatic run holds 975,424 tokens counted at (576 + 132) x 61 = 43,188
    # B; main's run at mem-fraction-static 0.8 holds 1,462,784 tokens counted before the PR at 576 x 61 = 35,136 B.
    # Same weights in both: auto = 0.8 - (1,462,784 x 35,136 - 975,424 x 43,188) / free at start
    #   = 0.8 - (51,396,378,624 - 42,126,611,712) / 190,689,585,398 = 0.8 - 0.048612 = 0.75139.
    # kvplan: B200 usable 182,889 MiB, tier chunk 16,384, graph bs 512: 512 + 24,576 + 1,024 + 1,024 = 27,136
    #   + 512 x 8 x 4.5 = 18,432 -> 45,568 MiB: (182,889 - 45,568) / 182,889 = 0.75084 -> 0.751 (0.852 without).
    b = _budget("deepseek-v3.2-exp", "b200", tp=1, dp=8, kv_dtype_name="fp8")
    free_at_start = b.device_total - b.non_torch
    assert free_at_start == 190_689_585_398
    implied = 0.8 - (1_462_784 * 35_136 - 975_424 * 43_188) / free_at_start
    assert implied == pytest.approx(0.75139, abs=1e-5)
    assert b.fraction == round((182889 - 45568) / 182889, 3) == 0.751
    assert abs(b.fraction - implied) < 0.001


def test_each_dp_rank_prompts_the_chunk_over_dp_size() -> None:
    # server_args.py _handle_data_parallelism: chunked_prefill_size //= dp_size under DP attention, after the memory
    # settings took the whole chunk. H200 tier chunk 8,192: 8,192 // 8 = 1,024 a rank (was 8,192)
    s = setup("deepseek-v3", "h200", engine=SGLANG, tp=1, dp=8, ep=True)
    assert s.max_num_batched_tokens == 8192 // 8 == 1024
    assert setup("deepseek-v3", "h200", engine=SGLANG, tp=8).max_num_batched_tokens == 8192  # plain TP: whole
    # the library's attention_dp inside one TP group divides it the same way
    lib = setup("deepseek-v3", "h200", engine=SGLANG, tp=8, settings=Settings(attention_dp=8))
    assert lib.max_num_batched_tokens == 1024
    # a given --chunked-prefill-size is the replica's: 16,384 // 8 = 2,048 a rank; the reserve still counts 16,384:
    # 512 + 1.5 x 16,384 + 2 x 512 + 1,024 + 512 x 8 x 4.5 = 45,568 MiB -> (143,302 - 45,568) / 143,302 = 0.682
    given = setup("deepseek-v3", "h200", engine=SGLANG, tp=1, dp=8, ep=True,
                  settings=Settings(max_num_batched_tokens=16384))  # fmt: skip
    assert given.max_num_batched_tokens == 2048
    assert given.stages[0].budget.fraction == round((143302 - 45568) / 143302, 3) == 0.682
    # vLLM's data-parallel engine cores each keep the whole budget
    v = setup("deepseek-v3", "h200", engine="vllm", tp=1, dp=8, ep=True)
    assert v.max_num_batched_tokens == setup("deepseek-v3", "h200", engine="vllm", tp=8).max_num_batched_tokens

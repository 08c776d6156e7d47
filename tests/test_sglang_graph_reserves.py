"""SGLang 0.5.23's memory reserve (python/sglang/srt/arg_groups/memory_hook.py handle_gpu_memory_settings,
reserve_for_graph_mb, reserve_for_deepep_a2a_mb) and the other capacity rules that changed from 0.5.7: kvplan's
`sglang` rule set; `sglang@0.5` keeps the 0.5.7-era rules (tests/test_sglang_dp_reserve.py, test_engines.py).

Goldens by hand from the wheel's arithmetic (MiB): reserved = 512 + 1.5 x max(chunk, 2048) + tp x pp / 8 x 1024 +
the graph terms, at least 10 GiB above 60 GiB, + 2 GiB for DeepEP after that floor."""

from __future__ import annotations

from kvplan.capacity import capacity, setup
from kvplan.catalog import load_bundled
from kvplan.engines import Settings, get_engine
from kvplan.engines.sglang import GraphReserves, mem_fraction, prefill_graph_sizes
from kvplan.launch import launch_args
from kvplan.params import Sharding
from kvplan.units import MIB

NEW, OLD = "sglang", "sglang@0.5"


def _fraction(total_mib: int, reserved_mib: float) -> float:
    return round((total_mib - reserved_mib) / total_mib, 3)


def test_prefill_graph_sizes_as_generate_prefill_cuda_graph_batch_sizes():
    # 4..32 by 4 (8), 48..256 by 16 (14), 288..512 by 32 (8), 576..1024 by 64 (8), 1280..4096 by 256 (12),
    # 4608..max by 512: 8 up to 8,192, 24 up to 16,384
    assert len(prefill_graph_sizes(8192)) == 58
    assert len(prefill_graph_sizes(16384)) == 74
    assert len(prefill_graph_sizes(4096)) == 50
    assert len(prefill_graph_sizes(2048)) == 42
    # apply_deepep_adjustments rounds them up to multiples of 8: 4, 12, 20, 28 fall onto 8, 16, 24, 32
    assert len(prefill_graph_sizes(2048, multiple=8)) == 38
    assert prefill_graph_sizes(64) == [4, 8, 12, 16, 20, 24, 28, 32, 48, 64]


def test_the_old_rule_is_unchanged_without_graphs():
    assert mem_fraction(81090, tp=1, pp=1, chunked_prefill=None) == _fraction(81090, 13440)
    assert mem_fraction(22565, tp=4, pp=1, chunked_prefill=None) == _fraction(22565, 4256)


def test_graph_reserves_by_case():
    h100 = 81090
    plain = GraphReserves()
    # TP1 H100: 512 + 12,288 + 128 + 256 x 2 + 58 prefill sizes x 8 = 13,904 (0.5.7: 13,440)
    assert mem_fraction(h100, tp=1, pp=1, chunked_prefill=None, graphs=plain) == _fraction(h100, 13904)
    # MLA: 1.5 GiB for the prefill graph whatever the sizes
    assert mem_fraction(h100, tp=1, pp=1, chunked_prefill=None, graphs=GraphReserves(mla=True)) == _fraction(
        h100, 512 + 12288 + 128 + 512 + 1536
    )
    # --disable-cuda-graph: neither graph; 12,928 is above the 10 GiB floor
    off = GraphReserves(prefill_graph=False, decode_graph=False)
    assert mem_fraction(h100, tp=1, pp=1, chunked_prefill=None, graphs=off) == _fraction(h100, 12928)
    # --max-running-requests 64 caps the decode graph: 64 x 2
    capped = GraphReserves(max_running=64)
    assert mem_fraction(h100, tp=1, pp=1, chunked_prefill=None, graphs=capped) == _fraction(h100, 13520)
    # "llama-2" in the model path: prefill max_bs 4096 -> 50 sizes
    llama2 = GraphReserves(llama2=True)
    assert mem_fraction(h100, tp=1, pp=1, chunked_prefill=None, graphs=llama2) == _fraction(h100, 13440 + 400)
    # below the floor: the graph terms count before it (L4 TP4, 0.5.23's tier: chunk 4096, decode max_bs 160):
    # 512 + 6,144 + 512 + 320 + 50 x 8 = 7,888 (0.5.7's tier: 4,256)
    assert mem_fraction(22565, tp=4, pp=1, chunked_prefill=None, graphs=plain) == _fraction(22565, 7888)


def test_deepep_after_the_floor_and_dp_attention():
    h200 = 143771  # any total in the H200 tier
    # DeepSeek-V3 DP8 + EP8 with DeepEP: 512 + 12,288 + 1,024 + 512 x 2 + 512 x 8 x 3 + 512 x 8 x 1.5 + 1,536 (MLA
    # prefill) + 1,024 (DeepEP prefill graph) = 35,840, then + 2,048 after the floor
    g = GraphReserves(mla=True, deepep=True)
    assert mem_fraction(h200, tp=8, pp=1, chunked_prefill=None, dp_attention=8, graphs=g) == _fraction(h200, 37888)
    # non-MLA with DeepEP: the 38 sizes DeepEP aligns (304 MiB) + 1,024; 14,352 + 2,048
    q = GraphReserves(deepep=True)
    assert mem_fraction(h200, tp=8, pp=1, chunked_prefill=None, graphs=q) == _fraction(
        h200, 512 + 12288 + 1024 + 1024 + 304 + 1024 + 2048
    )
    # DeepEP without the decode graph: no 2 GiB after the floor
    eager = GraphReserves(deepep=True, decode_graph=False, prefill_graph=False)
    assert mem_fraction(h200, tp=8, pp=1, chunked_prefill=None, graphs=eager) == _fraction(h200, 512 + 12288 + 1024)


def test_what_the_engine_reads_for_its_reserve():
    v3 = load_bundled("deepseek-v3")
    llama = load_bundled("llama-2-70b")
    sg = get_engine(NEW)
    assert get_engine(OLD).graph_reserves_for(v3, Settings(), pp=1) is None
    assert sg.graph_reserves_for(v3, Settings(), pp=1) == GraphReserves(mla=True)
    # pipeline parallelism and two-batch overlap turn the prefill graph off before the reserve is taken
    assert not sg.graph_reserves_for(v3, Settings(), pp=2).prefill_graph
    assert not sg.graph_reserves_for(v3, Settings(two_batch_overlap=True, deepep=True), pp=1).prefill_graph
    assert sg.graph_reserves_for(llama, Settings(max_num_seqs=32), pp=1) == GraphReserves(llama2=True, max_running=32)
    off = sg.graph_reserves_for(llama, Settings(cuda_graphs=False), pp=1)
    assert not off.decode_graph and not off.prefill_graph


def test_deepseek_v3_h200_tp8_capacity():
    # 0.5.7: 512 + 12,288 + 1,024 + 1,024 = 14,848 MiB -> 0.896; 0.5.23 + 1,536 (MLA prefill graph) -> 0.886.
    # free at start 150,263,037,952 - 1,084,479,242 (context + NCCL) = 149,178,558,710 B; x 0.886 - 85,395,946,864 B
    # of weights = 46,776,256,153 B over 61 x 576 x 2 B = 70,272 B a token -> 665,645 tokens (0.5.7: 686,874)
    new = setup("deepseek-v3", "h200", engine=NEW, tp=8)
    old = setup("deepseek-v3", "h200", engine=OLD, tp=8)
    total = new.stages[0].budget.device_total // MIB
    assert new.stages[0].budget.fraction == _fraction(total, 16384) == 0.886
    assert old.stages[0].budget.fraction == _fraction(total, 14848) == 0.896
    assert capacity(new, 32768).kv_pool_tokens == 665_645
    assert capacity(old, 32768).kv_pool_tokens == 686_874


def test_dp_attention_embedding_over_the_attention_tp_group():
    v3, qwen35 = load_bundled("deepseek-v3"), load_bundled("qwen3.5-35b-a3b")
    new, old = get_engine(NEW), get_engine(OLD)
    # 0.5.23 deepseek_v2.py get_embedding_tp_kwargs: use_attn_tp_group under DP attention (cut over attn_tp); 0.5.7:
    # enable_tp=False (whole)
    assert new.sharding(v3, tp=2, dp=4, ep=True).embed_tp == 2
    assert old.sharding(v3, tp=2, dp=4, ep=True).embed_tp == 1
    assert new.sharding(v3, tp=1, dp=8, ep=True) == Sharding(attn_tp=1, mlp_tp=8, expert_tp=1, expert_ranks=8,
                                                             vocab_tp=8, embed_tp=1)  # fmt: skip
    # qwen3_5.py keeps enable_tp=not is_dp_attention_enabled() (whole) in 0.5.23
    assert new.sharding(qwen35, tp=2, dp=2).embed_tp == 1
    # MiniMax M2: cut over the whole tp_size in 0.5.7 (embed_tp 0 = vocab_tp), over attn_tp in 0.5.23
    m2 = load_bundled("minimax-m2")
    assert old.sharding(m2, tp=2, dp=4).embed_tp == 0 and new.sharding(m2, tp=2, dp=4).embed_tp == 2
    # 2 x 129,280 x 7,168 x 2 B = the embedding at attn_tp 2 instead of whole: weights 926,679,040 B lighter a rank
    w_new = setup(v3, "h200", engine=NEW, tp=2, dp=4, ep=True).stages[0].budget.weights
    w_old = setup(v3, "h200", engine=OLD, tp=2, dp=4, ep=True).stages[0].budget.weights
    assert w_old - w_new == 129_280 * 7_168 * 2 // 2


def test_v32_indexer_weights_proj_bf16_and_the_attn_dp_flag():
    v32 = load_bundled("deepseek-v3.2-exp")
    sh = get_engine(NEW).sharding(v32, tp=8)
    # 0.5.23 dsa_indexer.py: weights_proj bf16, so only the w_kc / w_vc copies (61 x 16 heads x 256 x 512 x 2 B)
    assert get_engine(NEW).weights_added(v32, weights_dtype="fp8", pp=1, sharding=sh) == [255_852_544]
    assert get_engine(OLD).weights_added(v32, weights_dtype="fp8", pp=1, sharding=sh) == [255_852_544 + 55_967_744]
    s = setup("deepseek-v3", "h200", engine=NEW, tp=1, dp=8, ep=True)
    args = launch_args(capacity(s, 32768), model="deepseek-ai/DeepSeek-V3")
    assert args[args.index("--tp") + 1] == "8" and args[args.index("--attn-dp-size") + 1] == "8"
    assert "--enable-dp-attention" not in args and "--dp" not in args

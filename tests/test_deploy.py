"""Deployments as engines run them: DP attention + EP, nodes, shared prefixes, a CPU tier, manifests.

Every golden number below is worked out in the comment beside it from the spec, the engine's rule
and the budget terms kvplan prints (vLLM 0.19 defaults: gpu_memory_utilization 0.9, one null block).
"""

import json

import kubernetes_validate
import pytest
import yaml

from kvplan.capacity import capacity, setup
from kvplan.catalog import load_bundled
from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu
from kvplan.k8s import manifests, workload_for
from kvplan.launch import launch_args, node_commands, one_replica
from kvplan.params import Sharding
from kvplan.planner import plan

# The golden numbers follow vLLM 0.19's defaults (gpu_memory_utilization 0.9); newer rule sets differ.
V019 = "vllm@0.19"
H100 = resolve_gpu("h100-sxm")
H200 = resolve_gpu("h200")


def test_deepseek_v3_fp8_tp8_against_dp8_ep8_on_eight_h200() -> None:
    spec = load_bundled("deepseek-v3")
    tp8 = setup(spec, H200, engine=V019, tp=8)
    dp8 = setup(spec, H200, engine=V019, tp=1, dp=8, ep=True)
    # Budget per GPU: H200 CUDA total 150,263,037,952 B x 0.9 = 135,236,734,156; activation 3,138,471,854
    # and non-torch 2,222,645,576 on both (the rank's communicator spans 8 GPUs in both).
    # TP8 weights per rank: 85,140,094,320 B (fp8 + fp32 128x128 block scales; tests/test_quant.py).
    # DP8 + EP8 (vLLM FusedMoEParallelConfig.make with enable_expert_parallel: ep_size = tp x dp = 8):
    #   attention 61 x MLA projections = 11,413,422,080 fp8 weights, whole on every DP rank;
    #   dense MLPs 3 x 3 x 7168 x 18432 = 1,189,085,184 and shared experts 58 x 3 x 7168 x 2048 =
    #   2,554,331,136, whole on every rank (tp 1); routed experts 256 / 8 = 32 per rank:
    #   58 x 32 x 3 x 7168 x 2048 = 81,738,596,352. Quantized: 96,895,434,752 + ceil(x 4 / 16384) =
    #   23,656,112 B of scales; bf16: embedding + head 2 x 129,280 x 7168 = 1,853,358,080, routers
    #   58 x 256 x 7168 = 106,430,464, norms and biases 1,021,440 -> 1,960,809,984 x 2 B.
    # Plus the bf16 kv_b_proj vLLM dequantizes for W_UV / W_UK_T (engines/vllm.py mla_dequant_bytes): 61 layers x
    # heads a rank x (128 + 128) x 512 x 2 B: TP8 16 heads, 255,852,544; DP8 (attention TP 1) 128, 2,046,820,352.
    assert tp8.stages[0].budget.weights == 85_140_094_320 + 255_852_544 == 85_395_946_864
    dp8_cut = 96_895_434_752 + 23_656_112 + 2 * 1_960_809_984
    assert dp8.stages[0].budget.weights == dp8_cut + 2_046_820_352 == 102_887_531_184
    assert dp8.engine.sharding(spec, tp=1, dp=8, ep=True) == Sharding(1, 1, 1, 8, 1)
    # KV: MLA latent (512 + 64) x 2 B x 61 layers = 70,272 B per token on each rank; 16-token blocks
    # of 1,124,352 B. TP8: every rank holds every sequence's latent (8 copies).
    # TP8:  135,236,734,156 - 85,395,946,864 - 3,138,471,854 - 2,222,645,576 = 44,479,669,862 B
    #       -> 39,560 blocks - 1 null = 39,559 // 2,048 blocks per 32K sequence = 19.
    # DP8:  135,236,734,156 - 102,887,531,184 - ... = 26,988,085,542 B -> 24,003 - 1 = 24,002 // 2,048
    #       = 11 per DP rank, each rank its own sequences: 8 x 11 = 88, 4.63x TP8.
    assert tp8.stages[0].budget.available_kv == 44_479_669_862
    assert dp8.stages[0].budget.available_kv == 26_988_085_542
    r8, rdp = capacity(tp8, 32768), capacity(dp8, 32768)
    assert (r8.max_concurrent_sequences, rdp.max_concurrent_sequences) == (19, 88)
    assert r8.kv_copies_per_sequence == 8 and rdp.kv_copies_per_sequence == 1
    assert rdp.traffic["all_to_all_ranks"] == 8 and r8.traffic["all_to_all_bytes_per_token"] == 0
    args = launch_args(rdp, model="deepseek-ai/DeepSeek-V3")
    # --max-num-seqs is per engine core: 88 / 8 ranks = 11.
    assert args[args.index("--max-num-seqs") + 1] == "11"
    assert "--data-parallel-size" in args and "--enable-expert-parallel" in args and "-tp" not in args


def test_sglang_dp_attention_keeps_dense_layers_and_vocab_over_all_ranks() -> None:
    spec = load_bundled("deepseek-v3")
    s = setup(spec, H200, engine="sglang@0.5", tp=1, dp=8, ep=True)
    # server_args.py: moe_dense_tp_size defaults to tp_size, the LM head is vocab-parallel over tp_size
    # unless --enable-dp-lm-head: attention is per DP rank, and (models/deepseek_v2.py, 0.5.7) the input embedding
    # whole on every rank (enable_tp=not is_dp_attention_enabled()).
    assert s.engine.sharding(spec, tp=1, dp=8, ep=True) == Sharding(attn_tp=1, mlp_tp=8, expert_tp=1,
                                                                    expert_ranks=8, vocab_tp=8, embed_tp=1)  # fmt: skip
    assert s.engine.sharding(spec, tp=8) == Sharding.tensor(8)  # no DP attention: cut over tp_size
    assert s.stages[0].budget.weights < setup(spec, H200, engine=V019, tp=1, dp=8, ep=True).stages[0].budget.weights
    args = launch_args(capacity(s, 32768), model="deepseek-ai/DeepSeek-V3")
    assert args[args.index("--tp") + 1] == "8" and args[args.index("--dp") + 1] == "8"
    assert "--enable-dp-attention" in args and args[args.index("--ep-size") + 1] == "8"


def test_qwen3_235b_with_expert_parallelism_on_h200() -> None:
    spec = load_bundled("qwen3-235b-a22b")
    # 94 layers, 4 KV heads of 128, bf16; 128 experts of 3 x 4096 x 1536.
    # TP8: 4 KV heads over 8 ranks, each head on 2 ranks: 94 x 1 x 128 x 2 x 2 B = 48,128 B per token per
    #      rank, 770,048 B per 16-token block; 92,312 blocks - 1 -> 45 sequences of 2,048 blocks.
    # DP8 + EP8: attention whole on every rank (94 x 4 heads -> 192,512 B per token, 3,080,192 B per
    #      block), 128 / 8 = 16 experts per rank: weights 72,768,576,512 B; 18,595 blocks - 1 -> 9 per
    #      rank (18,594 // 2,048), 72 in all.
    # TP2 x DP4 + EP8: KV heads split 2 ways (1,540,096 B per block), 42,350 blocks - 1 -> 20 per rank, 80.
    # TP4 x DP2 + EP8: one KV head per rank (770,048 B per block, as TP8) and attention cut 4 ways
    #      (weights 60,847,840,256 B): 89,860 blocks - 1 -> 43 per rank, 86 in all: the best split.
    got = {}
    splits = {"tp8": dict(tp=8), "dp8": dict(tp=1, dp=8, ep=True), "tp2dp4": dict(tp=2, dp=4, ep=True),
              "tp4dp2": dict(tp=4, dp=2, ep=True)}  # fmt: skip
    for key, kw in splits.items():
        s = setup(spec, H200, engine=V019, **kw)
        got[key] = (s.stages[0].layout.unit_bytes, capacity(s, 32768).max_concurrent_sequences)
    assert got == {"tp8": (770_048, 45), "dp8": (3_080_192, 72), "tp2dp4": (1_540_096, 80), "tp4dp2": (770_048, 86)}
    assert setup(spec, H200, engine=V019, tp=1, dp=8, ep=True).stages[0].budget.weights == 72_768_576_512
    rows = plan(spec, [H200], users=64, context=32768, engine=V019, weights_dtypes=["bf16"], kv_dtypes=["bf16"])
    assert (rows[0].gpus, rows[0].tp, rows[0].dp, rows[0].ep, rows[0].total_sequences) == (8, 4, 2, True, 86)


def test_llama_405b_over_two_nodes_tp8_pp2() -> None:
    spec = load_bundled("llama-3.1-405b")
    s = setup(spec, H100, engine=V019, tp=8, pp=2)
    r = capacity(s, 32768)
    # 126 layers -> 63 per stage; bf16 weights per GPU 50,735,284,224 (stage 0: embedding shard) and
    # 50,735,316,992 (stage 1: final norm + LM head shard). KV: 8 KV heads / TP8 = 1 per rank:
    # 63 layers x 128 x 2 x 2 B x 16 tokens = 516,096 B per block; 21,188,859,658 B of KV on the
    # busier stage -> 41,056 blocks - 1 null -> 41,055 // 2,048 = 20 sequences of 32K.
    assert [st.budget.weights for st in s.stages] == [50_735_284_224, 50_735_316_992]
    assert r.max_concurrent_sequences == 20 and r.nodes == 2 and r.gpus == 16
    lines = node_commands(one_replica(r), model="meta-llama/Llama-3.1-405B", sequences=16)
    assert len(lines) == 2
    assert lines[0].endswith('--nnodes 2 --node-rank 0 --master-addr "$LEADER_ADDR"')
    assert lines[1].endswith('--nnodes 2 --node-rank 1 --master-addr "$LEADER_ADDR" --headless')
    sg = capacity(setup(spec, H100, engine="sglang", tp=8, pp=2), 32768)
    sg_lines = node_commands(one_replica(sg), model="meta-llama/Llama-3.1-405B", sequences=16)
    assert sg_lines[1].endswith('--nnodes 2 --node-rank 1 --dist-init-addr "$LEADER_ADDR:5000"')


def test_shared_prefix_on_llama_8b_at_8k() -> None:
    spec = load_bundled("llama-3.1-8b")
    plain = capacity(setup(spec, H100, engine=V019), 8192)
    shared = capacity(setup(spec, H100, engine=V019, shared_prefix=2048), 8192)
    # 32 layers x 8 KV heads x 128 x 2 x 2 B = 131,072 B per token; 16-token blocks of 2,097,152 B.
    # 58,168,172,544 B of KV -> 27,736 blocks, 27,735 after the null block.
    # Alone: 8,192 / 16 = 512 blocks per request -> 27,735 // 512 = 54.
    # A 2K prefix is 128 whole blocks, hashed and held once (automatic prefix caching); each request
    # adds its own 384: (27,735 - 128) // 384 = 71 -> 17 more sequences (+31%), because the
    # prefix's 128 blocks x 54 copies are no longer repeated.
    assert (plain.max_concurrent_sequences, shared.max_concurrent_sequences) == (54, 71)
    assert shared.sequences_without_shared_prefix == 54 and shared.shared_prefix_tokens_stored_once == 2048
    # vLLM shares whole blocks only: a 2,050-token prefix still shares 128 blocks.
    assert capacity(setup(spec, H100, engine=V019, shared_prefix=2050), 8192).shared_prefix_tokens_stored_once == 2048
    # llama.cpp gives every slot its own cells: no sharing.
    ll = capacity(setup(spec, H100, engine="llamacpp", shared_prefix=2048), 8192)
    assert ll.max_concurrent_sequences == capacity(setup(spec, H100, engine="llamacpp"), 8192).max_concurrent_sequences


def test_kv_offload_tier() -> None:
    spec = load_bundled("llama-3.1-8b")
    r = capacity(setup(spec, H100, engine=V019), 32768, kv_offload=256 << 30)
    # One 32K sequence: 32,768 x 131,072 B = 4 GiB; 256 GiB of host memory parks 64 of them; bringing
    # one back over PCIe Gen5 x16 (64 GB/s) takes 4,294,967,296 / 64e9 = 0.0671 s.
    assert r.offload["bytes_per_sequence"] == 4 << 30 and r.offload["sequences_parked"] == 64
    assert r.offload["reload_seconds_per_sequence"] == pytest.approx(0.067109, abs=1e-6)


def test_engines_refuse_what_they_refuse() -> None:
    with pytest.raises(InvalidInput, match="has no MoE layers.*independent replicas"):
        setup(load_bundled("llama-3.1-8b"), H100, engine=V019, tp=1, dp=2)
    with pytest.raises(InvalidInput, match="leaves ranks without experts: mixtral-8x7b has 8"):
        setup(load_bundled("mixtral-8x7b"), H100, engine=V019, tp=2, dp=8, ep=True)
    with pytest.raises(InvalidInput, match="'llamacpp': data-parallel attention and expert parallelism are not"):
        setup(load_bundled("deepseek-v3"), H200, engine="llamacpp", tp=1, dp=8, ep=True)
    # TensorRT-LLM runs attention DP (enable_attention_dp) with attention tp 1: every DP rank is one GPU.
    with pytest.raises(InvalidInput, match="attention tp 1.*got tp=2 with dp=4; use --tp 1 --dp 8"):
        setup(load_bundled("deepseek-v3"), H200, engine="trtllm", tp=2, dp=4, ep=True)


def test_plan_says_why_nothing_fits() -> None:
    dropped: list[str] = []
    rows = plan(load_bundled("deepseek-v3"), [resolve_gpu("l4")], users=4, context=32768, max_gpus=8, dropped=dropped)
    assert rows == []
    assert any("leave no KV memory" in d for d in dropped)
    assert all(d.startswith("l4 ") for d in dropped)


def test_plan_emits_valid_manifests(cli, tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "deepseek.yaml"
    r = cli("plan", "deepseek-v3", "--users", "64", "--context", "32k", "--gpus", "h200", "--emit", "k8s",
            "--emit-to", str(out))  # fmt: skip
    assert r.exit_code == 0, r.output
    docs = list(yaml.safe_load_all(out.read_text()))
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    for d in docs:
        kubernetes_validate.validate(d, kubernetes_validate.latest_version(), strict=True)
    again = cli("plan", "deepseek-v3", "--users", "64", "--context", "32k", "--gpus", "h200", "--emit", "k8s",
                "--emit-to", str(out))  # fmt: skip
    assert again.exit_code == 2 and "--force" in again.output


def test_multi_node_manifest_is_a_leader_worker_set() -> None:
    spec = load_bundled("llama-3.1-405b")
    r = capacity(setup(spec, H100, engine=V019, tp=8, pp=2), 32768)
    lws, service = manifests(workload_for(r, model="meta-llama/Llama-3.1-405B", image="vllm/vllm-openai:latest",
                                          sequences=16, gpu=H100))  # fmt: skip
    version = kubernetes_validate.latest_version()
    kubernetes_validate.validate(service, version, strict=True)
    spec_lws = lws["spec"]["leaderWorkerTemplate"]
    for role in ("leaderTemplate", "workerTemplate"):
        template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": role.lower()},
                    "template": spec_lws[role]}  # fmt: skip
        kubernetes_validate.validate(template, version, strict=True)
    worker = spec_lws["workerTemplate"]["spec"]["containers"][0]["command"][-1]
    assert '--node-rank "$LWS_WORKER_INDEX" --master-addr "$LWS_LEADER_ADDRESS" --headless' in worker
    assert spec_lws["size"] == 2 and lws["spec"]["replicas"] == 1


def test_cli_capacity_and_plan_json_carry_the_deployment(cli) -> None:  # noqa: ANN001
    r = cli(
        "capacity",
        "deepseek-v3",
        "--gpu",
        "h200",
        "--dp",
        "8",
        "--ep",
        "-c",
        "32k",
        "--engine",
        V019,
        "--format",
        "json",
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["max_concurrent_sequences"] == 88 and d["dp"] == 8 and d["ep"] is True and d["nodes"] == 1
    bad = cli("capacity", "llama-3.1-8b", "--gpu", "h100-sxm", "--dp", "2", "-c", "8k")
    assert bad.exit_code == 2 and "no MoE layers" in bad.output

"""Models by Hub name and weights from checkpoint headers, against a fake Hub on 127.0.0.1 (no network).

Every checkpoint here is written by the test itself (safetensors / gguf writers); the header sums
are checked against the bytes of the tensors it wrote.
"""

from __future__ import annotations

import json
import math
import socket

import pytest

from kvplan.catalog import resolve
from kvplan.errors import InvalidInput, RuntimeFailure
from kvplan.params import weight_bytes_per_stage, weight_bytes_total
from kvplan.weights_compare import compare_weights
from tests.fakehub import TOKEN, Repo

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")


def _nbytes(tensors: dict) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


# ---- checkpoints the tests write -------------------------------------------------------------


def dense_llama() -> tuple[dict, dict]:
    """A 2-layer Llama built by transformers, saved in bf16: (config, tensors)."""
    cfg = transformers.LlamaConfig(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
    )  # fmt: skip
    model = transformers.LlamaForCausalLM(cfg).to(torch.bfloat16)
    config = cfg.to_dict() | {"dtype": "bfloat16"}
    return config, {k: v.contiguous() for k, v in model.state_dict().items()}


def fp8_moe() -> tuple[dict, dict, int]:
    """A 2-layer Qwen3-MoE in FP8 with 128x128 block scales (DeepSeek-V3 / Qwen3-FP8 layout), plus
    one MTP tensor (model.layers.2: past the last layer). Returns (config, tensors, scale bytes)."""
    cfg = transformers.Qwen3MoeConfig(
        vocab_size=256, hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_experts=4, num_experts_per_tok=2,
        max_position_embeddings=512,
    )  # fmt: skip
    model = transformers.Qwen3MoeForCausalLM(cfg).to(torch.bfloat16)
    tensors, scale_bytes = {}, 0
    for name, value in model.state_dict().items():
        if ".mlp.experts." in name:  # transformers 5 fuses experts; Hub checkpoints store one per expert
            continue
        tensors[name] = value.contiguous()
    for layer in range(cfg.num_hidden_layers):
        for e in range(cfg.num_experts):
            for proj, shape in (("gate_proj", (32, 64)), ("up_proj", (32, 64)), ("down_proj", (64, 32))):
                tensors[f"model.layers.{layer}.mlp.experts.{e}.{proj}.weight"] = torch.randn(shape).to(torch.bfloat16)
    for name in list(tensors):
        # quantize what kvplan counts as quantizable: attention projections and experts (not the router)
        if name.endswith("_proj.weight"):
            out_dim, in_dim = tensors[name].shape
            tensors[name] = tensors[name].to(torch.float8_e4m3fn)
            scale = torch.ones(math.ceil(out_dim / 128), math.ceil(in_dim / 128), dtype=torch.float32)
            tensors[name + "_scale_inv"] = scale
            scale_bytes += scale.numel() * 4
    tensors["model.layers.2.eh_proj.weight"] = torch.zeros(64, 128, dtype=torch.bfloat16)  # MTP: not loaded
    config = cfg.to_dict() | {
        "dtype": "bfloat16",
        "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]},
    }
    return config, tensors, scale_bytes


def mxfp4_gpt_oss() -> tuple[dict, dict]:
    """A 2-layer gpt-oss with MXFP4 experts as openai/gpt-oss-20b stores them (*_blocks + *_scales in U8)."""
    h, inter, experts, heads, kv, hd, vocab = 64, 64, 4, 4, 2, 16, 256
    bf16 = torch.bfloat16
    tensors = {
        "model.embed_tokens.weight": torch.zeros(vocab, h, dtype=bf16),
        "model.norm.weight": torch.ones(h, dtype=bf16),
        "lm_head.weight": torch.zeros(vocab, h, dtype=bf16),
    }
    for i in range(2):
        p = f"model.layers.{i}."
        for proj, out_dim in (("q_proj", heads * hd), ("k_proj", kv * hd), ("v_proj", kv * hd)):
            tensors[p + f"self_attn.{proj}.weight"] = torch.zeros(out_dim, h, dtype=bf16)
            tensors[p + f"self_attn.{proj}.bias"] = torch.zeros(out_dim, dtype=bf16)
        tensors[p + "self_attn.o_proj.weight"] = torch.zeros(h, heads * hd, dtype=bf16)
        tensors[p + "self_attn.o_proj.bias"] = torch.zeros(h, dtype=bf16)
        tensors[p + "self_attn.sinks"] = torch.zeros(heads, dtype=bf16)
        tensors[p + "input_layernorm.weight"] = torch.ones(h, dtype=bf16)
        tensors[p + "post_attention_layernorm.weight"] = torch.ones(h, dtype=bf16)
        tensors[p + "mlp.router.weight"] = torch.zeros(experts, h, dtype=bf16)
        tensors[p + "mlp.router.bias"] = torch.zeros(experts, dtype=bf16)
        # MXFP4: 32 values per block = 16 bytes of nibbles + one E8M0 scale byte
        tensors[p + "mlp.experts.gate_up_proj_blocks"] = torch.zeros(experts, 2 * inter, h // 32, 16, dtype=torch.uint8)
        tensors[p + "mlp.experts.gate_up_proj_scales"] = torch.zeros(experts, 2 * inter, h // 32, dtype=torch.uint8)
        tensors[p + "mlp.experts.gate_up_proj_bias"] = torch.zeros(experts, 2 * inter, dtype=bf16)
        tensors[p + "mlp.experts.down_proj_blocks"] = torch.zeros(experts, h, inter // 32, 16, dtype=torch.uint8)
        tensors[p + "mlp.experts.down_proj_scales"] = torch.zeros(experts, h, inter // 32, dtype=torch.uint8)
        tensors[p + "mlp.experts.down_proj_bias"] = torch.zeros(experts, h, dtype=bf16)
    config = {
        "model_type": "gpt_oss", "architectures": ["GptOssForCausalLM"], "hidden_size": h, "intermediate_size": inter,
        "num_hidden_layers": 2, "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": hd,
        "vocab_size": vocab, "num_local_experts": experts, "num_experts_per_tok": 2, "sliding_window": 128,
        "layer_types": ["sliding_attention", "full_attention"], "max_position_embeddings": 4096,
        "tie_word_embeddings": False, "dtype": "bfloat16",
        "quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn"]},
    }  # fmt: skip
    return config, tensors


def sharded(tensors: dict, shards: int = 2) -> dict[str, bytes]:
    """safetensors shards + model.safetensors.index.json, as transformers' save_pretrained writes them."""
    names = list(tensors)
    files, weight_map = {}, {}
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[s::shards]}
        files[fname] = safetensors_torch.save(part)
        weight_map |= dict.fromkeys(part, fname)
    index = {"metadata": {"total_size": _nbytes(tensors)}, "weight_map": weight_map}
    files["model.safetensors.index.json"] = json.dumps(index).encode()
    return files


def repo(config: dict, files: dict[str, bytes], **kw) -> Repo:
    return Repo({"config.json": json.dumps(config).encode(), **files}, **kw)


# ---- dense -----------------------------------------------------------------------------------


def test_dense_header_sum_is_the_tensors_written_and_the_architecture_count(hub):
    config, tensors = dense_llama()
    hub.repos["org/tiny-llama"] = repo(config, {"model.safetensors": safetensors_torch.save(tensors)})
    resolved = resolve("org/tiny-llama")
    assert resolved.origin.startswith("Hub org/tiny-llama@0123456 config.json")
    weights = resolved.checkpoint()
    assert weights.format == "safetensors" and weights.files == 1
    # 2 layers x (q 64x64 + k,v 32x64 + o 64x64 + mlp 3x128x64 + 2 norms 64) + embed/head 2x256x64 + norm 64,
    # all bf16: (2 * (4096 + 4096 + 4096 + 24576 + 128) + 32768 + 64) * 2 = 213632 bytes
    assert weights.total_bytes == _nbytes(tensors) == 213632
    cmp = compare_weights(weights, resolved.spec)
    assert (cmp.architecture_dtype, cmp.architecture_bytes, cmp.difference_bytes) == ("bf16", 213632, 0)
    # the same per-rank split as the architecture count: TP shards (KV heads replicate past 2), PP stages
    for tp, pp in ((2, 1), (2, 2), (4, 2)):
        assert weights.bytes_per_stage(resolved.spec, tp=tp, pp=pp) == weight_bytes_per_stage(
            resolved.spec, "bf16", tp=tp, pp=pp
        )
    # headers only: the 8-byte length, then the JSON; never a weight byte
    header_len = int.from_bytes(hub.repos["org/tiny-llama"].files["model.safetensors"][:8], "little")
    assert hub.bytes_served("model.safetensors") == 8 + header_len


def test_hub_uri_and_revision_spellings(hub):
    config, tensors = dense_llama()
    hub.repos["org/tiny-llama"] = repo(config, {"model.safetensors": safetensors_torch.save(tensors)})
    commit = hub.repos["org/tiny-llama"].commit
    for arg in ("hf://org/tiny-llama", f"org/tiny-llama@{commit}", "org/tiny-llama@main"):
        assert resolve(arg).spec.num_layers == 2, arg
    with pytest.raises(InvalidInput, match="revision 'v9' not found"):
        resolve("org/tiny-llama@v9")


# ---- sharded MoE in FP8 with scales; MTP --------------------------------------------------------


def test_sharded_fp8_moe_sums_shards_and_explains_the_scales(hub):
    config, tensors, scale_bytes = fp8_moe()
    hub.repos["org/moe-fp8"] = repo(config, sharded(tensors))
    resolved = resolve("org/moe-fp8")
    weights = resolved.checkpoint()
    assert weights.files == 2 and len(weights.tensors) == len(tensors)
    assert weights.total_bytes == _nbytes(tensors)
    assert "F8_E4M3" in weights.label
    mtp = 64 * 128 * 2  # model.layers.2.eh_proj.weight, bf16: stored, not loaded
    resident = _nbytes(tensors) - mtp
    assert sum(weights.bytes_per_stage(resolved.spec, pp=2)) == resident
    cmp = compare_weights(weights, resolved.spec)
    assert cmp.architecture_dtype == "fp8"
    assert cmp.architecture_bytes == weight_bytes_total(resolved.spec, "fp8")
    # the count models fp32 scales as 4 bytes per 128x128 weights (kvplan.quant, from quantization_config);
    # these 64-wide matrices store one whole scale each: the stored scales are the modelled ones + the rest
    assert 0 < cmp.modelled_scale_bytes < scale_bytes
    assert cmp.explained == {"quantization scales": scale_bytes - cmp.modelled_scale_bytes}
    assert cmp.unexplained_bytes == 0
    assert cmp.not_loaded_bytes == mtp
    # every shard: two range requests (length, JSON) and nothing beyond
    for fname, data in hub.repos["org/moe-fp8"].files.items():
        if fname.endswith(".safetensors"):
            assert hub.bytes_served(fname) == 8 + int.from_bytes(data[:8], "little")


# ---- MXFP4 -------------------------------------------------------------------------------------


def test_mxfp4_experts_match_the_architecture_count_in_mxfp4(hub):
    config, tensors = mxfp4_gpt_oss()
    hub.repos["org/oss-mxfp4"] = repo(config, {"model.safetensors": safetensors_torch.save(tensors)})
    resolved = resolve("org/oss-mxfp4")
    weights = resolved.checkpoint()
    assert weights.total_bytes == _nbytes(tensors)
    cmp = compare_weights(weights, resolved.spec)
    # kvplan's mxfp4 is 17 bytes per 32 weights, exactly *_blocks (16) + *_scales (1): nothing left over
    assert cmp.architecture_dtype == "mxfp4"
    assert (cmp.difference_bytes, cmp.explained) == (0, {})


# ---- errors ------------------------------------------------------------------------------------


def test_gated_repository_needs_a_token(hub, monkeypatch):
    config, tensors = dense_llama()
    hub.repos["org/gated"] = repo(config, {"model.safetensors": safetensors_torch.save(tensors)}, gated=True)
    with pytest.raises(InvalidInput, match="'org/gated' is gated.*HF_TOKEN") as info:
        resolve("org/gated")
    assert info.value.exit_code == 2
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert resolve("org/gated").checkpoint().total_bytes == _nbytes(tensors)


def test_missing_repository_and_missing_config(hub):
    hub.repos["org/no-config"] = Repo({"README.md": b"weights elsewhere"})
    with pytest.raises(InvalidInput, match="repository 'org/absent' not found on the Hugging Face Hub"):
        resolve("org/absent")
    with pytest.raises(InvalidInput, match="'org/no-config' has no config.json"):
        resolve("org/no-config")


def test_offline_not_cached_then_cached(hub, monkeypatch):
    config, tensors = dense_llama()
    hub.repos["org/tiny-llama"] = repo(config, {"model.safetensors": safetensors_torch.save(tensors)})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InvalidInput, match="not in the Hugging Face cache and HF_HUB_OFFLINE is set") as info:
        resolve("org/tiny-llama")
    assert info.value.exit_code == 2 and hub.log == []
    monkeypatch.delenv("HF_HUB_OFFLINE")
    online = resolve("org/tiny-llama")
    online_bytes = online.checkpoint().total_bytes
    seen = len(hub.log)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # seen once: config and headers come from the cache
    offline = resolve("org/tiny-llama")
    assert offline.spec == online.spec and offline.checkpoint().total_bytes == online_bytes
    assert len(hub.log) == seen


def test_network_unreachable_is_exit_1_with_the_local_path_hint(hub, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(RuntimeFailure, match="cannot reach the Hugging Face Hub.*pass a local folder") as info:
        resolve("org/tiny-llama")
    assert info.value.exit_code == 1


# ---- bundled specs, local folders --------------------------------------------------------------

QWEN3_8B = {  # Qwen/Qwen3-8B config.json (the facts of model_specs/qwen3-8b.yaml)
    "model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "hidden_size": 4096, "intermediate_size": 12288,
    "num_hidden_layers": 36, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
    "vocab_size": 151936, "max_position_embeddings": 40960, "rope_theta": 1000000, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "use_sliding_window": False, "sliding_window": None,
}  # fmt: skip


def test_bundled_spec_is_preferred_when_the_hub_config_matches(hub, monkeypatch):
    hub.repos["Qwen/Qwen3-8B"] = repo(QWEN3_8B, {})
    resolved = resolve("Qwen/Qwen3-8B")
    assert resolved.spec.name == "qwen3-8b" and resolved.origin.startswith("bundled spec 'qwen3-8b'")
    assert resolved.checkpoint() is None  # no safetensors in this repository: weights from the architecture
    hub.repos["Qwen/Qwen3-8B"] = repo(QWEN3_8B | {"num_hidden_layers": 35}, {}, commit="1" * 40)
    changed = resolve("Qwen/Qwen3-8B")
    assert changed.spec.num_layers == 35 and changed.origin.startswith("Hub Qwen/Qwen3-8B@1111111")
    assert "differs from this config (num_layers" in changed.notes[0]


def test_bundled_repository_offline_and_uncached_falls_back_to_the_bundled_spec(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolved = resolve("Qwen/Qwen3-8B")
    assert resolved.spec.name == "qwen3-8b" and "the Hub could not be read" in resolved.notes[0]


def test_local_snapshot_folder_reads_its_own_files(hub, tmp_path):
    config, tensors = fp8_moe()[:2]
    folder = tmp_path / "snapshot"
    folder.mkdir()
    for name, data in {"config.json": json.dumps(config).encode(), **sharded(tensors)}.items():
        (folder / name).write_bytes(data)
    resolved = resolve(str(folder))
    assert resolved.checkpoint().total_bytes == _nbytes(tensors) and hub.log == []


def test_local_folder_never_imports_huggingface_hub(tmp_path):
    import subprocess
    import sys

    config, tensors = dense_llama()
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").write_bytes(safetensors_torch.save(tensors))
    code = (
        "import sys; from kvplan.catalog import resolve; r = resolve(sys.argv[1]); w = r.checkpoint();"
        "print(w.total_bytes, 'huggingface_hub' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert proc.stdout.split() == [str(_nbytes(tensors)), "False"], proc.stderr


# ---- GGUF --------------------------------------------------------------------------------------


def write_gguf(path) -> int:
    """A 1-layer llama GGUF in mixed ggml types (F16, F32, Q8_0, Q4_0), with a tokenizer array in the
    metadata the reader must skip; returns the tensor bytes written."""
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    from gguf import quants

    q8, q4 = gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_0
    rng = np.random.default_rng(0)
    arrays = {
        "token_embd.weight": (rng.standard_normal((256, 64)).astype(np.float16), None),
        "blk.0.attn_norm.weight": (np.ones(64, dtype=np.float32), None),
        "blk.0.attn_q.weight": (quants.quantize(rng.standard_normal((64, 64)).astype(np.float32), q8), q8),
        "blk.0.attn_k.weight": (quants.quantize(rng.standard_normal((32, 64)).astype(np.float32), q8), q8),
        "blk.0.ffn_up.weight": (quants.quantize(rng.standard_normal((128, 64)).astype(np.float32), q4), q4),
        "output_norm.weight": (np.ones(64, dtype=np.float32), None),
        "output.weight": (quants.quantize(rng.standard_normal((256, 64)).astype(np.float32), q8), q8),
    }
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_token_list([f"tok{i}" for i in range(300)])
    writer.add_array("test.floats", [0.5, 1.5])
    for name, (data, raw) in arrays.items():
        writer.add_tensor(name, data, raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    # Q8_0: 34 bytes per 32 values; Q4_0: 18 bytes per 32 (ggml-common.h block_q8_0 / block_q4_0)
    return sum(a.nbytes for a, _ in arrays.values())


def test_gguf_header_sum_by_ggml_block_type(tmp_path):
    from kvplan.hub import file_checkpoint, folder_checkpoint

    path = tmp_path / "tiny-Q8_0.gguf"
    written = write_gguf(path)
    weights = file_checkpoint(path)
    # F16 256x64 = 32768; F32 norms 2 x 256; Q8_0 (64+32+256) x 64 / 32 x 34 = 23936; Q4_0 128 x 64 / 32 x 18 = 4608
    assert weights.format == "gguf" and weights.total_bytes == written == 32768 + 512 + 23936 + 4608
    by_type = weights.bytes_by_dtype()
    assert by_type == {"F16": 32768, "Q8_0": 23936, "Q4_0": 4608, "F32": 512}
    assert folder_checkpoint(tmp_path, source="x", gguf="q8_0").total_bytes == written


def test_gguf_from_the_hub_as_a_checkpoint(hub, tmp_path):
    from kvplan.hub import checkpoint_from_ref, parse_hub_ref

    path = tmp_path / "tiny-Q8_0.gguf"
    written = write_gguf(path)
    hub.repos["org/tiny-GGUF"] = Repo({"tiny-Q8_0.gguf": path.read_bytes(), ".gitattributes": b""})
    weights = checkpoint_from_ref(parse_hub_ref("org/tiny-GGUF:tiny-Q8_0.gguf"))
    assert weights.format == "gguf" and weights.total_bytes == written
    assert all(r.range for r in hub.log if r.method == "GET")  # range requests only


# ---- the command line --------------------------------------------------------------------------


def _readme_block(command: str) -> list[str]:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split(f"$ {command}\n", 1)[1].split("```", 1)[0]
    return block.rstrip("\n").splitlines()


def test_readme_hub_example_is_what_the_fake_hub_gives(hub, cli):
    from tests.fakehub import qwen3_32b_repo

    hub.repos["Qwen/Qwen3-32B"] = qwen3_32b_repo()
    result = cli("estimate", "Qwen/Qwen3-32B", "-c", "32k")
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip("\n").splitlines() + result.stderr.rstrip("\n").splitlines() == _readme_block(
        "kvplan estimate Qwen/Qwen3-32B -c 32k"
    )
    # Qwen3-32B: 32,762,123,264 parameters x 2 bytes = 65,524,246,528 (the index's published total_size)
    assert '"weights_bytes_per_gpu": 65524246528' in cli("estimate", "Qwen/Qwen3-32B", "-c", "32k", "-f", "json").stdout


def test_cli_errors_are_one_line_with_their_exit_codes(hub, cli, monkeypatch):
    config, tensors = dense_llama()
    hub.repos["org/gated"] = repo(config, {}, gated=True)
    hub.repos["org/no-config"] = Repo({"README.md": b""})
    cases = {
        "org/absent": (2, "repository 'org/absent' not found"),
        "org/gated": (2, "is gated"),
        "org/no-config": (2, "has no config.json"),
    }
    for name, (code, text) in cases.items():
        result = cli("estimate", name)
        assert (result.exit_code, result.stdout) == (code, ""), name
        assert result.stderr.count("\n") == 1 and text in result.stderr, result.stderr
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = cli("estimate", "org/tiny-llama")
    assert result.exit_code == 2 and "HF_HUB_OFFLINE is set" in result.stderr and result.stderr.count("\n") == 1
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    result = cli("estimate", "org/tiny-llama")
    assert result.exit_code == 1 and "pass a local folder" in result.stderr and result.stderr.count("\n") == 1


def test_cli_checkpoint_option_takes_gguf_weights(cli, tmp_path):
    path = tmp_path / "tiny-Q8_0.gguf"
    written = write_gguf(path)
    result = cli("estimate", "llama-3.2-1b", "-c", "4k", "--checkpoint", str(path), "-f", "json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)[0]
    # the GGUF's one layer stands in for llama-3.2-1b's 16: the per-stage sum is the header's, not the spec's
    assert row["weights_bytes_per_gpu"] == written and row["weights_dtype"].startswith("checkpoint F16")
    assert "gguf headers (1 file, 7 tensors)" in row["weights_source"]
    both = cli("estimate", "llama-3.2-1b", "--checkpoint", str(path), "--weights-dtype", "fp8")
    assert both.exit_code == 2 and "not both" in both.stderr
    missing = cli("estimate", "llama-3.2-1b", "--checkpoint", str(tmp_path / "nope.gguf"))
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    # found by tests/test_fuzz.py: a name past the file system's limit raised OSError (exit 1, "internal error")
    too_long = cli("estimate", "llama-3.2-1b", "--checkpoint", str(tmp_path / ("x" * 300)))
    assert too_long.exit_code == 2 and "cannot read checkpoint" in too_long.stderr


def test_separate_quantization_config_is_folded_in(hub):
    config, tensors, _ = fp8_moe()
    quant = config.pop("quantization_config")
    hub.repos["org/moe-fp8"] = repo(
        config, {"quantization_config.json": json.dumps(quant).encode(), **sharded(tensors)}
    )
    spec = resolve("org/moe-fp8").spec
    assert spec.weights is not None and spec.weights.dtype == "fp8" and list(spec.weights.block) == [128, 128]


def test_import_takes_a_hub_name_and_never_overwrites_without_force(hub, cli, tmp_path):
    from kvplan.catalog import load_spec_file

    config, tensors = dense_llama()
    hub.repos["org/tiny-llama"] = repo(config, {"model.safetensors": safetensors_torch.save(tensors)})
    out = tmp_path / "tiny.yaml"
    result = cli("import", "org/tiny-llama", "-o", str(out))
    assert result.exit_code == 0, result.output
    url = f"https://huggingface.co/org/tiny-llama/blob/{hub.repos['org/tiny-llama'].commit}/config.json"
    assert out.read_text().startswith(f"# Imported from {url} (a Hugging Face config.json)")
    spec = load_spec_file(out)
    assert spec == resolve("org/tiny-llama").spec  # the YAML is the spec the Hub name resolves to
    assert (spec.name, spec.source, spec.num_layers) == ("tiny-llama", url, 2)
    out.write_text("# mine\n")
    again = cli("import", "org/tiny-llama", "-o", str(out))
    assert again.exit_code == 2 and "--force" in again.stderr and out.read_text() == "# mine\n"
    forced = cli("import", "org/tiny-llama@main", "-o", str(out), "--force", "--name", "mine")
    assert forced.exit_code == 0 and load_spec_file(out).name == "mine"
    missing = cli("import", "org/absent")
    assert missing.exit_code == 2 and "repository 'org/absent' not found" in missing.stderr


def test_fp8_moe_per_rank_under_ep_differs_from_the_count_by_its_scales(hub):
    from kvplan.engines import get_engine
    from kvplan.quant import storage_for_name

    config, tensors, _ = fp8_moe()
    hub.repos["org/moe-fp8"] = repo(config, sharded(tensors))
    resolved = resolve("org/moe-fp8")
    spec, weights = resolved.spec, resolved.checkpoint()
    sharding = get_engine("vllm").sharding(spec, tp=4, ep=True)  # 4 experts over 4 ranks: one each
    by_headers = weights.bytes_per_stage(spec, sharding=sharding)
    # the count in fp8 without scales (1 byte per quantized weight, the rest bf16), cut the same way
    bare = weight_bytes_per_stage(spec, storage_for_name("fp8"), tp=4, sharding=sharding)
    # each quantized matrix stores one fp32 scale (4 bytes) for its single 128x128 block; on rank 0, per layer:
    # q and o cut 4 ways (1 byte each), k and v by KV head (2 KV heads, one per rank pair: 2 bytes each),
    # expert 0's gate/up/down whole (3 x 4 = 12): 1 + 2 + 2 + 1 + 12 = 18 bytes; 2 layers -> 36
    assert by_headers[0] - bare[0] == 36


def test_weights_dtype_on_a_hub_model_says_the_count_is_used(hub, cli):
    config, tensors = dense_llama()
    hub.repos["org/tiny-llama"] = repo(config, {"model.safetensors": safetensors_torch.save(tensors)})
    result = cli("capacity", "org/tiny-llama", "--gpu", "l4", "-c", "256", "--weights-dtype", "fp8")
    assert result.exit_code == 0, result.output
    assert "note: weights from the architecture count in fp8 (--weights-dtype), not the headers" in result.stderr
    assert "no safetensors headers" not in result.stderr
    assert not any(r.path.endswith(".safetensors") for r in hub.log)  # the headers were not even read

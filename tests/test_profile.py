"""Profile mode on CPU and meta: measured bytes equal the estimator's, term by term, exactly."""

import json

import pytest
import yaml

torch = pytest.importorskip("torch")

from kvplan.catalog import bundled_names, load_bundled  # noqa: E402
from kvplan.profile import run as prun  # noqa: E402
from kvplan.profile.cache import layer_cache  # noqa: E402
from kvplan.profile.model import SpecModel, parameter_bytes  # noqa: E402
from kvplan.profile.run import Options, profile_model  # noqa: E402
from kvplan.spec import ModelSpec  # noqa: E402

BASE = {
    "source": "tests",
    "hidden_size": 64,
    "vocab_size": 128,
    "num_layers": 4,
    "num_attention_heads": 4,
    "num_kv_heads": 2,
    "head_dim": 16,
    "intermediate_size": 96,
    "max_position_embeddings": 4096,
}
SKELETONS = {
    "dense_gqa": {},
    "sliding": {
        "layers": {
            "kinds": {"local": {"type": "sliding", "window": 8}, "global": {"type": "full"}},
            "pattern": ["local", "global"],
        },
        "params": {"qk_norm": True, "norms_per_layer": 4, "attention_bias": "all"},
    },
    "chunked": {
        "layers": {"kinds": {"c": {"type": "chunked", "chunk": 8}, "g": {"type": "full"}}, "pattern": ["c", "c", "g"]}
    },
    "mla": {
        "num_kv_heads": 4,
        "layers": {
            "kinds": {
                "mla": {
                    "type": "mla",
                    "kv_lora_rank": 32,
                    "q_lora_rank": 24,
                    "qk_nope_head_dim": 16,
                    "qk_rope_head_dim": 8,
                    "v_head_dim": 16,
                }
            }
        },
        "moe": {
            "num_experts": 4,
            "experts_per_token": 2,
            "expert_intermediate_size": 32,
            "num_shared_experts": 1,
            "first_dense_layers": 1,
            "router_bias": True,
        },
        "rope": {"theta": 10000.0, "scaling": {"type": "yarn", "factor": 4, "original_max_position_embeddings": 1024}},
    },
    "moe": {
        "intermediate_size": None,
        "tie_word_embeddings": True,
        "moe": {
            "num_experts": 6,
            "experts_per_token": 2,
            "expert_intermediate_size": 32,
            "expert_bias": True,
            "num_shared_experts": 1,
            "shared_intermediate_size": 48,
            "shared_expert_gate": True,
        },
        "params": {"attention_sinks": True, "attention_bias": "qkv", "norm": "layernorm"},
    },
    "hybrid": {
        "layers": {
            "kinds": {
                "m": {"type": "recurrent", "variant": "mamba", "d_inner": 128, "d_state": 8, "d_conv": 4},
                "m2": {
                    "type": "recurrent",
                    "variant": "mamba2",
                    "d_inner": 128,
                    "d_state": 8,
                    "d_conv": 4,
                    "n_groups": 2,
                    "n_heads": 4,
                },
                "g": {
                    "type": "recurrent",
                    "variant": "gated_deltanet",
                    "n_heads": 4,
                    "n_k_heads": 2,
                    "head_k_dim": 8,
                    "head_v_dim": 16,
                    "d_conv": 4,
                },
                "a": {"type": "full"},
            },
            "pattern": ["m", "m2", "g", "a"],
        },
        "params": {"attention_output_gate": True},
    },
}


def tiny(name: str, **over) -> ModelSpec:
    return ModelSpec.model_validate({**BASE, "name": name, **SKELETONS[name], **over})


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matmuls on a busy 2-core runner are fastest on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- the model and its caches ----------------------------------------------------------------


@pytest.mark.parametrize("name", list(SKELETONS))
def test_cpu_profile_measures_exactly_the_estimated_weights_and_kv(name):
    runs = profile_model(tiny(name), Options(contexts=[16, 40], batch=2, device="cpu", chunk=7))
    for run in runs:
        assert run.status == "measured"
        assert run.weights.measured_bytes == run.weights.estimated_bytes
        assert run.kv_cache.measured_bytes == run.kv_cache.estimated_bytes
        assert run.weights.difference_bytes == 0 and run.kv_cache.difference_pct == 0.0
        assert run.activation_peak.measured_bytes > 0
        assert run.time.prefill_ms > 0 and run.time.decode_ms > 0
        assert not run.extrapolated


def test_kv_bytes_by_hand_for_the_sliding_skeleton():
    # 2 sliding (window 8) + 2 full layers, 2 KV heads x 16 dims, K and V, bf16, batch 2, L = 40:
    # per token per layer 2 * 2 * 16 * 2 B = 128 B; sliding holds 8 tokens, full 40:
    # 2 * (2 * 8 + 2 * 40) * 128 = 24,576 bytes.
    run = profile_model(tiny("sliding"), Options(contexts=[40], batch=2, device="meta"))[0]
    assert run.kv_cache.measured_bytes == 24_576 == run.kv_cache.estimated_bytes


@pytest.mark.parametrize("name", ["sliding", "chunked", "mla", "hybrid"])
def test_prefill_in_chunks_equals_one_prefill_and_token_by_token(name):
    """The ring buffer, chunk boundaries, latent cache and recurrent state carry exactly what a
    single masked prefill sees: the last logits agree whatever the prefill chunk."""
    spec = tiny(name, dtype="fp32")
    model = SpecModel(spec, list(range(spec.num_layers)), dtype=torch.float32, device=torch.device("cpu"))
    length, tokens = 21, torch.randint(0, spec.vocab_size, (2, 21), generator=torch.Generator().manual_seed(0))
    logits = []
    for step in (length - 1, 3, 1):
        caches = [
            layer_cache(spec, i, batch=2, length=length, dtype="fp32", device=torch.device("cpu"))
            for i in range(spec.num_layers)
        ]
        with torch.inference_mode():
            for start in range(0, length - 1, step):
                model(tokens[:, start : min(length - 1, start + step)], caches, start)
            logits.append(model(tokens[:, length - 1 :], caches, length - 1))
    for other in logits[1:]:
        torch.testing.assert_close(other, logits[0], rtol=1e-4, atol=1e-5)


def test_sliding_window_sees_only_its_window():
    """Changing a token more than a window back leaves a sliding-only model's next logits unchanged."""
    spec = tiny("dense_gqa", dtype="fp32", layers={"kinds": {"s": {"type": "sliding", "window": 4}}}, num_layers=1)
    model = SpecModel(spec, [0], dtype=torch.float32, device=torch.device("cpu"))
    tokens = torch.randint(0, spec.vocab_size, (1, 12), generator=torch.Generator().manual_seed(1))
    changed = tokens.clone()
    changed[0, 2] = (tokens[0, 2] + 1) % spec.vocab_size  # position 2: outside the last 4 of 12

    def last_logits(t):
        cache = [layer_cache(spec, 0, batch=1, length=12, dtype="fp32", device=torch.device("cpu"))]
        with torch.inference_mode():
            model(t[:, :11], cache, 0)
            return model(t[:, 11:], cache, 11)

    torch.testing.assert_close(last_logits(changed), last_logits(tokens))
    changed[0, 9] = (tokens[0, 9] + 1) % spec.vocab_size  # inside the window: it must matter
    assert not torch.allclose(last_logits(changed), last_logits(tokens))


def test_parameter_bytes_of_a_fp8_model_fall_back_to_bf16_and_still_match():
    spec = tiny("dense_gqa", dtype="fp8")
    run = profile_model(spec, Options(contexts=[8], device="meta"))[0]
    assert run.weights_dtype == "bf16"
    assert run.weights.measured_bytes == run.weights.estimated_bytes


def test_model_parameters_equal_weight_bytes_on_meta():
    spec = tiny("moe")
    model = SpecModel(spec, list(range(spec.num_layers)), dtype=torch.bfloat16, device=torch.device("meta"))
    from kvplan.params import weight_bytes_per_gpu

    assert parameter_bytes(model) == weight_bytes_per_gpu(spec)


# ---- bundled models on meta ------------------------------------------------------------------


# Bundled models whose layer kinds profile does not build (issue 9's indexer caches): refused, see below.
PROFILE_REFUSES = {"deepseek-v3.2-exp": "indexer key cache"}


def test_profile_refuses_layer_kinds_it_cannot_build():
    for name, why in PROFILE_REFUSES.items():
        with pytest.raises(prun.InvalidInput, match=f"kvplan profile cannot build {name} yet: .*{why}"):
            profile_model(load_bundled(name), Options(contexts=[4096], device="meta"))


@pytest.mark.parametrize("name", [n for n in bundled_names() if n not in PROFILE_REFUSES])
def test_meta_agrees_with_the_estimator_for_every_bundled_model(name):
    run = profile_model(load_bundled(name), Options(contexts=[131072], batch=2, device="meta"))[0]
    assert run.status == "shapes_only"
    assert run.weights.difference_bytes == 0, run.weights
    assert run.kv_cache.difference_bytes == 0, run.kv_cache
    assert run.layers_built == list(range(run.num_layers))


def test_meta_handles_packed_kv_formats():
    run = profile_model(load_bundled("llama-3.1-8b"), Options(contexts=[4096], kv_dtype="q4_0", device="meta"))[0]
    # 32 layers x 4096 tokens x 2 (K, V) x ceil(8 heads x 128 x 18 / 32) = 576 B -> 150,994,944 bytes.
    assert run.kv_cache.measured_bytes == 150_994_944 == run.kv_cache.estimated_bytes


# ---- representative layers -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sliding", "mla", "hybrid", "chunked"])
def test_extrapolation_from_k_layers_equals_the_full_build(name):
    spec = tiny(name)
    fewest = len({prun.signature(spec, i) for i in range(spec.num_layers)})
    full = profile_model(spec, Options(contexts=[12, 30], device="cpu"))
    part = profile_model(spec, Options(contexts=[12, 30], device="cpu", layers=fewest))
    for a, b in zip(full, part, strict=True):
        assert len(b.layers_built) == fewest
        assert b.extrapolated == (fewest < spec.num_layers)
        assert b.weights.measured_bytes == a.weights.measured_bytes
        assert b.kv_cache.measured_bytes == a.kv_cache.measured_bytes


def test_extrapolation_on_meta_for_deepseek_v3():
    spec = load_bundled("deepseek-v3")
    run = profile_model(spec, Options(contexts=[32768], device="meta", layers=2))[0]
    assert run.layers_built == [0, 3]  # first dense layer, first MoE layer
    assert run.extrapolated
    assert run.weights.difference_bytes == 0 and run.kv_cache.difference_bytes == 0


def test_representative_layers_cover_every_kind():
    spec = tiny("hybrid")
    assert prun.representative_layers(spec, 4) == [0, 1, 2, 3]
    with pytest.raises(prun.InvalidInput, match="between 4"):
        prun.representative_layers(spec, 3)


def test_activation_estimate_by_hand():
    # dense_gqa, 7 tokens x batch 2 = 14 tokens, bf16 (2 B). Attention width per token:
    # 2 * (4 * 16 + 2 * 16) + 2 * 16 + 4 * 16 = 288; gated MLP 3 * 96 = 288 -> widest 288.
    # 14 * 2 * (4 * 64 + 288) = 15,232, + last-token logits 2 * 128 * (2 + 4) = 1,536 -> 16,768.
    assert prun.activation_peak_bytes(tiny("dense_gqa"), tokens=7, batch=2, dtype_bytes=2) == 16_768


def test_term_difference_and_percent():
    term = prun.Term.of(1000, 1010)
    assert (term.difference_bytes, term.difference_pct) == (10, 1.0)
    assert prun.Term.of(None, 5).difference_bytes is None


# ---- safety ----------------------------------------------------------------------------------


def test_refuses_beyond_free_memory_unless_forced(monkeypatch):
    spec = tiny("dense_gqa")
    monkeypatch.setattr(_meter(), "free_bytes", lambda self: 1000)
    run = profile_model(spec, Options(contexts=[16], device="cpu"))[0]
    assert run.status == "refused" and run.free_bytes == 1000 and run.needed_bytes > 1000
    assert run.weights.measured_bytes is None
    forced = profile_model(spec, Options(contexts=[16], device="cpu", force=True))[0]
    assert forced.status == "measured"


def _meter():
    from kvplan.profile.measure import Meter

    return Meter


def test_builds_one_layer_per_kind_when_the_full_model_does_not_fit(monkeypatch):
    spec = tiny("sliding")
    need_full = prun.built_weight_bytes(spec, [0, 1, 2, 3], "bf16")
    monkeypatch.setattr(_meter(), "free_bytes", lambda self: need_full)  # weights fit, weights + KV do not
    run = profile_model(spec, Options(contexts=[16], device="cpu"))[0]
    assert run.status == "measured" and run.layers_built == [0, 1] and run.extrapolated
    assert run.kv_cache.difference_bytes == 0 and run.weights.difference_bytes == 0


def test_out_of_memory_is_a_result(monkeypatch):
    def boom(self, *args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(prun._Session, "_prefill", boom)
    run = profile_model(tiny("dense_gqa"), Options(contexts=[16, 32], device="cpu"))
    assert [r.status for r in run] == ["did_not_fit", "did_not_fit"]
    assert run[0].note == "out of memory during prefill"


# ---- the command line ------------------------------------------------------------------------


@pytest.fixture
def spec_file(tmp_path):
    data = {**BASE, "name": "tiny-sliding", **SKELETONS["sliding"]}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_cli_json_has_integer_terms(cli, spec_file):
    result = cli("profile", spec_file, "--device", "cpu", "-c", "16,24", "--batch", "2", "-f", "json")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)
    assert [r["context"] for r in runs] == [16, 24]
    for run in runs:
        for term in ("weights", "kv_cache", "activation_peak"):
            assert isinstance(run[term]["estimated_bytes"], int)
            assert isinstance(run[term]["measured_bytes"], int)
        assert run["kv_cache"]["estimated_bytes"] == run["kv_cache"]["measured_bytes"]
    assert "prefill" in result.stderr and "decode" in result.stderr  # progress lines


def test_cli_table_on_meta(cli):
    result = cli("profile", "mistral-7b-v0.1", "--device", "meta", "-c", "4k,32k")
    assert result.exit_code == 0, result.output
    assert "kv_cache" in result.stdout and "shapes only" in result.stdout
    assert "512.0 MiB" in result.stdout  # 4096 tokens x 128 KiB/token (32 layers x 8 x 128 x 2 x 2 B)


def test_cli_layers_mark_extrapolation(cli, spec_file):
    result = cli("profile", spec_file, "--device", "cpu", "-c", "16", "--layers", "2", "--chunk", "5")
    assert result.exit_code == 0, result.output
    assert "2 of 4 (extrapolated)" in result.stdout


def test_cli_save_refuses_to_overwrite(cli, spec_file, tmp_path):
    target = tmp_path / "run.json"
    target.write_text("keep")
    result = cli("profile", spec_file, "--device", "meta", "-c", "16", "--save", str(target))
    assert result.exit_code == 2 and "already exists" in result.stderr
    assert target.read_text() == "keep"
    result = cli("profile", spec_file, "--device", "meta", "-c", "16", "--save", str(target), "--force")
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text())[0]["kv_cache"]["measured_bytes"] > 0


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--layers", "1"], "--layers 1"),
        (["--kv-dtype", "q4_0", "--device", "cpu"], "'q4_0'"),
        (["--chunk", "0"], "'0'"),
        (["--device", "tpu"], "'tpu'"),
        (["--batch", "0", "--device", "cpu"], "batch 0"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(cli, spec_file, args, needle):
    result = cli("profile", spec_file, "-c", "16", *args)
    assert result.exit_code == 2, result.output
    assert needle in result.stderr and "Traceback" not in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cli_without_cuda_says_how_to_install(cli, spec_file):
    result = cli("profile", spec_file, "-c", "16")
    assert result.exit_code == 1
    assert "pip install 'kvplan[profile]'" in result.stderr


def test_cli_without_torch_says_how_to_install(cli, spec_file, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)
    result = cli("profile", spec_file, "-c", "16", "--device", "cpu")
    assert result.exit_code == 1
    assert "pip install 'kvplan[profile]'" in result.stderr


def test_cli_reports_out_of_memory_with_the_length(cli, spec_file, monkeypatch):
    def boom(self, *args):
        raise torch.OutOfMemoryError("out of memory")

    monkeypatch.setattr(prun._Session, "_prefill", boom)
    result = cli("profile", spec_file, "-c", "4k", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "did not fit at 4K" in result.stdout


# ---- scripts/validate_gpu.py -------------------------------------------------------------------


def _validate_script():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "validate_gpu.py"
    spec = importlib.util.spec_from_file_location("validate_gpu", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["validate_gpu"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_validate_script_rewrites_only_its_section(tmp_path):
    script = _validate_script()
    doc = tmp_path / "validation.md"
    doc.write_text("# Validation\n\n## Engine logs\n\nkeep me\n\n## GPU profile\n\nold\n\n## Later\n\nkeep too\n")
    script._write_section(doc, "## GPU profile\n\nnew table")
    text = doc.read_text()
    assert "keep me" in text and "keep too" in text and "new table" in text and "old" not in text
    fresh = tmp_path / "absent.md"
    script._write_section(fresh, "## GPU profile\n\nfirst")
    assert fresh.read_text().startswith("# Validation\n\n## GPU profile")


def test_validate_script_plans_use_bundled_models():
    script = _validate_script()
    names = set(bundled_names())
    for case in script.GPU_PLAN + script.SMALL_PLAN:
        assert case.model in names


@pytest.mark.parametrize(
    "device_name, entry",
    [
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H100 NVL", "h100-nvl"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA L4", "l4"),
        ("NVIDIA L40S", "l40s"),
        ("Some Future GPU", None),
    ],
)
def test_device_names_map_to_catalog_gpus(device_name, entry):
    gpu = prun._catalog_gpu(None, device_name)
    assert (gpu.name if gpu else None) == entry


def test_time_estimate_with_a_catalog_gpu():
    run = profile_model(tiny("dense_gqa"), Options(contexts=[16], device="cpu", gpu="h100-sxm"))[0]
    assert run.time.gpu == "h100-sxm"
    assert run.time.estimated_prefill_ms > 0 and run.time.estimated_decode_ms > 0


def test_cli_unknown_gpu_is_bad_input(cli, spec_file):
    result = cli("profile", spec_file, "-c", "16", "--device", "cpu", "--gpu", "h10")
    assert result.exit_code == 2 and "'h10'" in result.stderr


def test_cli_refusal_names_the_figures(cli, spec_file, monkeypatch):
    monkeypatch.setattr(_meter(), "free_bytes", lambda self: 1000)
    result = cli("profile", spec_file, "-c", "4k", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "refused: needs" in result.stdout and "--chunk N" in result.stdout


def test_masked_gqa_folding_equals_repeated_heads():
    from kvplan.profile.model import sdpa

    gen = torch.Generator().manual_seed(2)
    q, k, v = torch.randn(2, 8, 5, 16, generator=gen), torch.randn(2, 2, 9, 16, generator=gen), torch.randn(2, 2, 9, 12)
    mask = torch.rand(5, 9, generator=gen) > 0.3
    mask[:, 0] = True  # every query sees at least one key
    expected = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(4, 1), v.repeat_interleave(4, 1), attn_mask=mask
    )
    torch.testing.assert_close(sdpa(q, k, v, mask=mask), expected)


# ---- the CUDA meter's arithmetic, with the allocator and NVML faked (no GPU here) --------------


class _FakeAllocator:
    def __init__(self):
        self.allocated, self.peak, self.reserved = 1000, 1000, 4096

    def install(self, monkeypatch):
        cuda = torch.cuda
        monkeypatch.setattr(cuda, "synchronize", lambda device=None: None)
        monkeypatch.setattr(cuda, "memory_allocated", lambda device=None: self.allocated)
        monkeypatch.setattr(cuda, "max_memory_allocated", lambda device=None: self.peak)
        monkeypatch.setattr(cuda, "memory_reserved", lambda device=None: self.reserved)
        monkeypatch.setattr(cuda, "reset_peak_memory_stats", lambda device=None: setattr(self, "peak", self.allocated))
        monkeypatch.setattr(cuda, "empty_cache", lambda: None)

    def grow(self, nbytes, transient=0):
        self.peak = max(self.peak, self.allocated + nbytes + transient)
        self.allocated += nbytes


class _FakeNvml:
    """Stands in for the pynvml module: one device whose used memory the test sets."""

    class NVMLError(Exception):
        pass

    def __init__(self, used):
        self.used = used

    def nvmlDeviceGetMemoryInfo(self, handle):  # noqa: N802 - pynvml's names
        return type("Info", (), {"used": self.used, "total": 80 << 30})()

    def nvmlDeviceGetComputeRunningProcesses(self, handle):  # noqa: N802
        import os

        return [type("P", (), {"pid": os.getpid(), "usedGpuMemory": self.used})()]


def test_cuda_meter_arithmetic(monkeypatch):
    from kvplan.profile import measure

    alloc = _FakeAllocator()
    alloc.install(monkeypatch)
    meter = object.__new__(measure.CudaMeter)
    measure.Meter.__init__(meter, torch.device("cpu"))
    nvml = _FakeNvml(used=600 << 20)
    meter._nvml = measure._Nvml.__new__(measure._Nvml)
    meter._nvml.pynvml, meter._nvml.handle, meter._nvml.index = nvml, None, 0
    meter.baseline_used, meter.context_used = 100 << 20, 600 << 20

    _, added = meter.allocation(lambda: alloc.grow(5000), lambda _: [])
    assert added == 5000
    events = []

    class Event:
        def __init__(self, enable_timing):
            events.append(self)

        def record(self):
            pass

        def elapsed_time(self, other):
            return 12.5

    monkeypatch.setattr(torch.cuda, "Event", Event)
    result = meter.transient(lambda: alloc.grow(0, transient=700))
    assert (result.peak_bytes, result.ms) == (700, 12.5)
    assert meter.context_bytes() == 500 << 20
    assert meter.non_torch_bytes() == (600 << 20) - (100 << 20) - 4096  # NVML growth minus torch's pool
    snap = meter.snapshot("decode")
    assert snap["allocated_bytes"] == 6000 and snap["nvml_process_bytes"] == 600 << 20

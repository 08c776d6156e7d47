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
PROFILE_REFUSES = {
    "deepseek-v3.2-exp": "indexer key cache",
    "nemotron-h-8b-base-8k": "has no feed-forward block",  # Nemotron-H: one mixer per block
    "nemotron-3-nano-30b-a3b": "has no feed-forward block",
    "falcon-h1-7b-instruct": "runs a recurrent mixer beside its attention",  # Falcon-H1: attention + Mamba2
    "minimax-m1-80k": "keeps a lightning-attention state",
    "llama-3.3-nemotron-super-49b-v1": "has no attention",
    "gemma-3n-e4b": "shares K/V with an earlier layer",
    "gemma-3n-e2b": "shares K/V with an earlier layer",
    "llama-3.2-11b-vision": "cross-attention to vision tokens",
    "llama-3.2-90b-vision": "cross-attention to vision tokens",
}


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
    script.write_section(doc, "## GPU profile\n\nnew table")
    text = doc.read_text()
    assert "keep me" in text and "keep too" in text and "new table" in text and "old" not in text
    fresh = tmp_path / "absent.md"
    script.write_section(fresh, "## GPU profile\n\nfirst")
    assert fresh.read_text().startswith("# Validation\n\n## GPU profile")


def test_validate_script_plans_use_bundled_models():
    script = _validate_script()
    names = set(bundled_names())
    for case in script.GPU_PLAN:
        assert case.model in names
    from kvplan.catalog import resolve_model

    for case in script.CPU_PLAN:  # tiny specs shipped with the tests, valid --layers
        assert prun.planned_layers(resolve_model(case.model), case.layers)


def test_gpu_plan_fits_an_h100_in_six_minutes_and_covers_every_kind():
    """Never plan a case the profile would refuse, never build in full what does not fit, and stay
    inside the job's 6 minutes by kvplan's own cost model."""
    script = _validate_script()
    h100 = {"device": {"name": "NVIDIA H100 80GB HBM3", "total_memory_bytes": 80 * 10**9}}
    plan = script.make_plan(script.GPU_PLAN, env=h100, gpu_name=None, device="cuda")
    assert plan["predicted_gpu"] == "h100-sxm" and plan["predicted_s"] <= script.JOB_LIMIT_S
    assert not [e for e in plan["cases"] if e.get("skip")]
    assert all(e["need_bytes"] <= 80 * 10**9 * script.DEVICE_HEADROOM for e in plan["cases"])
    kinds, extrapolated, fp8 = set(), 0, 0
    for case in script.GPU_PLAN:
        spec = load_bundled(case.model)
        kinds |= {spec.kind(n).type for n in spec.kind_counts} | ({"moe"} if spec.moe else set())
        built = prun.planned_layers(spec, case.layers)
        if case.layers is None:  # built in full: the full model must fit
            assert prun.need_bytes(spec, built, 4096, batch=1, kv_name="bf16", chunk=None, device="cuda") < 73e9
        extrapolated += len(built) < spec.num_layers
        fp8 += case.kv_dtype == "fp8"
        assert 2 <= len(case.contexts.split(",")) <= 3
    assert {"full", "sliding", "mla", "moe", "recurrent"} <= kinds and extrapolated >= 1 and fp8 >= 1


def test_gpu_plan_drops_a_case_that_would_be_refused():
    script = _validate_script()
    small = {"device": {"name": "NVIDIA L4", "total_memory_bytes": 24 * 10**9}}
    plan = script.make_plan(script.GPU_PLAN, env=small, gpu_name=None, device="cuda")
    skipped = {e["key"]: e["skip"] for e in plan["cases"] if e.get("skip")}
    assert "04-deepseek-v2-lite" in skipped and "would be refused" in skipped["04-deepseek-v2-lite"]
    assert plan["predicted_gpu"] == "l4"


def _fake_wheel(folder, name, version="1.0", tag="py3-none-any"):
    import zipfile

    path = folder / f"{name}-{version}-{tag}.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{f},,\n" for f in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as archive:
        for name_, text in files.items():
            archive.writestr(name_, text)
    return path


def test_wheels_install_exactly_the_pinned_set(tmp_path):
    script = _validate_script()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    installed, problem = script.install_wheels(str(wheels), tmp_path / "site")
    assert problem and "pydantic" in problem and "expected exactly one" in problem
    for name in script.PYDANTIC_WHEELS:
        _fake_wheel(wheels, name, "2.0" if name == "pydantic" else "1.0")
    installed, problem = script.install_wheels(str(wheels), tmp_path / "site")
    assert problem is None and installed["pydantic"] == "2.0"
    assert (tmp_path / "site" / "pydantic_core" / "__init__.py").exists()
    _fake_wheel(wheels, "annotated_types", "9.9", tag="cp27-cp27mu-win32")  # two wheels of one package
    assert "expected exactly one" in script.install_wheels(str(wheels), tmp_path / "site2")[1]
    assert script.install_wheels(None, tmp_path / "site3")[1].startswith("pydantic is not installed")
    assert not script._wheel_fits("pydantic_core-2.0-cp27-cp27mu-win32.whl")


def _dry_plan(tmp_path, cases):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(cases))
    return plan


def _archive_members(path):
    import tarfile

    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def _script_cmd(*args):
    import sys
    from pathlib import Path

    return [sys.executable, str(Path(__file__).resolve().parent.parent / "scripts" / "validate_gpu.py"), *args]


@pytest.mark.slow
def test_validation_job_cpu_dry_run_leaves_one_archive(tmp_path):
    """The whole job on CPU with a small plan: the archive the GPU run leaves, with the same layout."""
    import subprocess

    out = tmp_path / "out"
    # A generous budget: the 330 s default is for the GPU's time limit, and CI runners can be slow.
    cmd = _script_cmd("--out", str(out), "--device", "cpu", "--budget-s", "3000")
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["kvplan-validation.tar.gz"]
    files = _archive_members(out / "kvplan-validation.tar.gz")
    keys = ["01-dense", "02-sliding-kv-fp8", "03-mla", "04-hybrid", "05-sliding-l2"]
    expected = {"environment.json", "plan.json", "status.json", "summary.md"}
    expected |= {f"runs/{k}.json" for k in keys} | {f"logs/{k}.log" for k in keys}
    assert set(files) == {f"kvplan-validation/{name}" for name in expected}
    status = json.loads(files["kvplan-validation/status.json"])
    assert status["state"] == "done" and all(c["outcome"] == "ok" for c in status["cases"].values())
    for key in keys:
        runs = json.loads(files[f"kvplan-validation/runs/{key}.json"])
        assert len(runs) == 2 and all(r["status"] == "measured" for r in runs)
        assert all(r["kv_cache"]["difference_bytes"] == 0 and r["weights"]["difference_bytes"] == 0 for r in runs)
    assert json.loads(files["kvplan-validation/runs/05-sliding-l2.json"])[0]["extrapolated"]
    plan_json = json.loads(files["kvplan-validation/plan.json"])
    assert plan_json["predicted_gpu"] == "h100-sxm" and plan_json["predicted_s"] > 0
    assert "CPU dry run, not a GPU measurement" in files["kvplan-validation/summary.md"].decode()


@pytest.mark.slow
def test_validation_job_killed_mid_run_keeps_its_archive(tmp_path):
    """SIGTERM (a time limit) during the second case: the first case's results are in the archive."""
    import signal
    import subprocess
    import time

    dense = str(_validate_script().TINY / "dense.yaml")
    cases = [{"model": dense, "contexts": "16,24"}, {"model": dense, "contexts": "4k", "why": "long enough to stop"}]
    plan, out = _dry_plan(tmp_path, cases), tmp_path / "out"
    job = subprocess.Popen(
        _script_cmd("--out", str(out), "--device", "cpu", "--plan", str(plan), "--budget-s", "3000"),
        stderr=subprocess.DEVNULL,
    )
    archive, deadline = out / "kvplan-validation.tar.gz", time.monotonic() + 600
    while time.monotonic() < deadline:  # the archive is rewritten as results arrive: wait for case 1
        if archive.exists():
            status = json.loads(_archive_members(archive)["kvplan-validation/status.json"])
            if status["cases"].get("02-dense", {}).get("outcome") == "running":
                break
        time.sleep(0.5)
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=60) == 128 + signal.SIGTERM
    files = _archive_members(archive)
    status = json.loads(files["kvplan-validation/status.json"])
    assert status["state"] == "interrupted" and status["cases"]["01-dense"]["outcome"] == "ok"
    assert status["cases"]["02-dense"]["outcome"] == "interrupted"
    assert len(json.loads(files["kvplan-validation/runs/01-dense.json"])) == 2


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


# ---- measurement fixes (issue 13) ------------------------------------------------------------


@pytest.mark.parametrize("kv", ["fp8", "fp8_e5m2", "int8"])
def test_quantised_kv_on_a_sliding_window_past_the_window(kv):
    """index_copy_ has no Float8 kernel: the ring buffer is written through an integer view."""
    runs = profile_model(tiny("sliding"), Options(contexts=[20], kv_dtype=kv, device="cpu", chunk=6))
    assert runs[0].status == "measured" and runs[0].kv_cache.difference_bytes == 0
    assert runs[0].time.kv_dequantised


def test_ring_writes_the_fp8_bits_of_the_last_window_tokens():
    from kvplan.profile.model import _write_ring

    spec = tiny("sliding")
    cache = layer_cache(spec, 0, batch=1, length=20, dtype="fp8", device=torch.device("cpu"))  # window 8
    k = torch.randn(1, 2, 11, 16, generator=torch.Generator().manual_seed(3)).bfloat16()
    _write_ring(cache, k=k, v=k, pos=5)  # positions 5..15: the last 8 (8..15) survive, slot = position % 8
    expected = k[:, :, 3:].to(torch.float8_e4m3fn)  # positions 8..15 -> slots 0..7 in order
    assert torch.equal(cache.k.view(torch.uint8), expected.view(torch.uint8))


def test_int8_read_back_has_no_fp32_intermediate():
    from kvplan.profile.cache import load
    from kvplan.profile.measure import PeakTracker

    src = torch.randint(-127, 128, (4, 1000), dtype=torch.int8)
    tracker = PeakTracker(set())
    with tracker:
        out = load(src, torch.bfloat16)
    assert tracker.peak == 4 * 1000 * 2  # one bf16 copy (an fp32 round trip peaked at 4 + 4 bytes per value)
    torch.testing.assert_close(out.float(), src.float() / 32.0)


def test_dequantised_kv_copy_is_in_the_activation_estimate():
    # sliding skeleton, fp8 KV read back in bf16 (2 B), batch 2, context 40: full layers read all
    # 40 tokens x 2 KV heads x (16 + 16) = 2,560 values per sequence (sliding ones 8 x 64 = 512),
    # so the estimate grows by 2 x 2,560 x 2 B = 10,240 bytes.
    spec = tiny("sliding")
    plain = prun.activation_peak_bytes(spec, tokens=7, batch=2, dtype_bytes=2, context=40)
    fp8 = prun.activation_peak_bytes(spec, tokens=7, batch=2, dtype_bytes=2, context=40, kv_dequantised=True)
    assert fp8 - plain == 10_240


def test_measured_activation_of_fp8_kv_stays_within_its_estimate():
    # One-pass prefill and decode: no mask, so the CPU kernels materialise no [n, S] mask either.
    spec = tiny("dense_gqa", num_layers=2)
    run = profile_model(spec, Options(contexts=[600], kv_dtype="fp8", device="cpu"))[0]
    assert 0 < run.activation_peak.measured_bytes <= run.activation_peak.estimated_bytes


def _forward_ops(spec, calls):
    """aten ops of each forward call of a fresh model: ``calls`` is a list of (n tokens, position)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Log(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    model = SpecModel(spec, list(range(spec.num_layers)), dtype=torch.float32, device=torch.device("cpu"))
    caches = [layer_cache(spec, i, batch=1, length=32, dtype="fp32", device=torch.device("cpu")) for i in range(4)]
    tokens = torch.randint(0, spec.vocab_size, (1, 32))
    logs = []
    with torch.inference_mode():
        for n, pos in calls:
            log = Log()
            log.ops = []
            with log:
                model(tokens[:, pos : pos + n], caches, pos)
            logs.append(log.ops)
    return logs


@pytest.mark.parametrize("name", ["dense_gqa", "mla"])
def test_rope_tables_reach_the_device_once(name):
    """torch.tensor(host list) is 'aten.lift_fresh' (a host-to-device copy on CUDA): first pass only."""
    first, second, third = _forward_ops(tiny(name, dtype="fp32"), [(8, 0), (8, 8), (1, 16)])
    assert first.count("aten.lift_fresh.default") > 0
    assert second.count("aten.lift_fresh.default") == 0 and third.count("aten.lift_fresh.default") == 0


def test_median_of_decode_steps_and_highest_peak():
    from kvplan.profile.measure import Transient, median_transient

    steps = [Transient(10, ms, host_ms=ms / 2) for ms in (5.0, 1.0, 3.0, 100.0, 2.0)]
    steps[3] = Transient(99, 100.0, host_ms=50.0)
    result = median_transient(steps)
    assert (result.ms, result.peak_bytes, result.host_ms) == (3.0, 99, 1.5)


def test_launch_bound_label():
    from kvplan.profile.measure import Transient

    assert Transient(0, 10.0, host_ms=9.5).launch_bound is True  # the device waited for the host
    assert Transient(0, 10.0, host_ms=1.0).launch_bound is False
    assert Transient(0, 10.0).launch_bound is None  # CPU: no separate device clock


def test_decode_is_timed_several_times_after_a_warm_up(monkeypatch):
    """The warm-up runs before the first timed pass, on caches of its own; decode is timed DECODE_STEPS times."""
    events = []
    forward = SpecModel.forward

    def spy(self, tokens, caches, pos, *, mark=None):
        events.append(("forward", id(caches), tokens.shape[1]))
        return forward(self, tokens, caches, pos, mark=mark)

    meter_cls = _meter()
    transient = meter_cls.transient

    def timed(self, fn):
        events.append(("timed",))
        return transient(self, fn)

    monkeypatch.setattr(SpecModel, "forward", spy)
    monkeypatch.setattr(meter_cls, "transient", timed)
    run = profile_model(tiny("dense_gqa"), Options(contexts=[16], device="cpu", chunk=5))[0]
    first_timed = events.index(("timed",))
    warm = [e for e in events[:first_timed] if e[0] == "forward"]
    measured = [e for e in events[first_timed:] if e[0] == "forward"]
    assert warm and {e[1] for e in warm}.isdisjoint({e[1] for e in measured})  # a scratch cache
    assert [e[2] for e in warm] == [5, 5, 5, 1, 1]  # the same chunks as the first length, then decode
    assert events.count(("timed",)) == 1 + prun.DECODE_STEPS
    assert run.time.warmed_up and run.time.decode_steps == prun.DECODE_STEPS
    assert run.attention_backends and all(v for v in run.attention_backends.values())


def test_extrapolated_time_adds_fixed_parts_once(monkeypatch):
    # sliding skeleton: layers local, global, local, global; --layers 2 builds 0 and 1.
    # Each pass: 100 ms of which layer 0 took 20 and layer 1 took 30 -> fixed 50 ms, added once:
    # 50 + 2 x 20 + 2 x 30 = 150 ms (scaling the whole pass by 4 / 2 gave 200 ms).
    from kvplan.profile.measure import Transient

    monkeypatch.setattr(
        _meter(), "transient", lambda self, fn: (fn(), Transient(1, 100.0, spans={"layer.0": 20.0, "layer.1": 30.0}))[1]
    )
    run = profile_model(tiny("sliding"), Options(contexts=[16], device="cpu", layers=2))[0]
    assert run.extrapolated and run.time.prefill_ms == 150.0 and run.time.decode_ms == 150.0
    assert run.time.prefill_fixed_ms == 50.0


def test_layer_spans_are_measured_on_extrapolated_runs():
    run = profile_model(tiny("hybrid"), Options(contexts=[12], device="cpu", layers=4))[0]
    assert not run.extrapolated  # 4 of 4: no marks, the pass is timed whole
    spec = tiny("sliding")
    part = profile_model(spec, Options(contexts=[12], device="cpu", layers=2))[0]
    assert part.time.prefill_fixed_ms is not None and 0 <= part.time.prefill_fixed_ms <= part.time.prefill_ms


def test_profile_reports_each_run_as_it_is_measured():
    seen = []
    runs = profile_model(tiny("dense_gqa"), Options(contexts=[8, 12], device="cpu"), on_run=seen.append)
    assert seen == runs


# ---- the CUDA meter and the runner's CUDA branches, against faithful fakes (no GPU here) ---------

pynvml = pytest.importorskip("pynvml")
MIB = 1 << 20
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_leaves  # noqa: E402


class FakeGpu:
    """One NVML device (or MIG slice) as nvidia-ml-py reports it."""

    def __init__(self, uuid, *, used=0, total=80 << 30, processes=(), migs=(), mismatch=False):
        self.uuid, self.base, self.total, self.migs, self.mismatch = uuid, used, total, list(migs), mismatch
        self.processes = list(processes)
        self.pool = lambda: 0  # torch's reserved segments, once this process uses the device

    @property
    def used(self):
        return self.base + self.pool()

    @used.setter
    def used(self, value):
        self.base = value - self.pool()


def proc(pid, used):
    return type("nvmlProcessInfo", (), {"pid": pid, "usedGpuMemory": used})()


class FakeNvml:
    """Stands in for the pynvml module: the real exception classes and error codes, str UUIDs
    (pynvml's convertStrBytes decodes them), NOT_FOUND for an unknown UUID or an empty MIG slot,
    NOT_SUPPORTED for MIG queries on a GPU without MIG."""

    NVMLError = pynvml.NVMLError
    NVMLLibraryMismatchError = pynvml.NVMLLibraryMismatchError

    def __init__(self, gpus, *, by_uuid=True):
        self.gpus, self.by_uuid, self.calls = gpus, by_uuid, []

    def _all(self):
        return [h for g in self.gpus for h in (g, *g.migs)]

    def nvmlInit(self):  # noqa: N802 - pynvml's names
        self.calls.append("init")

    def nvmlDeviceGetCount(self):  # noqa: N802
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):  # noqa: N802
        if i >= len(self.gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self.gpus[i]

    def nvmlDeviceGetHandleByUUID(self, text):  # noqa: N802
        if not self.by_uuid:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        for h in self._all():
            if h.uuid == text:
                return h
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetUUID(self, h):  # noqa: N802
        return h.uuid

    def nvmlDeviceGetMemoryInfo(self, h):  # noqa: N802
        self.calls.append(("memory", h.uuid))
        return type("c_nvmlMemory_t", (), {"used": h.used, "total": h.total, "free": h.total - h.used})()

    def nvmlDeviceGetComputeRunningProcesses(self, h):  # noqa: N802
        if h.mismatch:  # what pynvml's throwOnVersionMismatch raises: not an NVMLError
            raise pynvml.NVMLLibraryMismatchError("Unversioned function called and the pyNVML version does not match")
        return list(h.processes)

    def nvmlDeviceGetMaxMigDeviceCount(self, h):  # noqa: N802
        if not h.migs:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h, j):  # noqa: N802
        if j >= len(h.migs):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return h.migs[j]

    def nvmlSystemGetDriverVersion(self):  # noqa: N802
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion(self):  # noqa: N802
        return 12040


def uuid_of(n):
    return f"{n:08x}-1111-2222-3333-444455556666"


class FakeCuda:
    """torch.cuda on a machine without a GPU: the allocator's counters follow the tensors the ops
    create (a dispatch mode over CPU tensors), reserved memory is whole 2 MiB segments and never below
    allocated, ``empty_cache`` returns unused segments, events time with ``perf_counter``. The first
    matmul allocates a 32 MiB workspace that is never freed, as cuBLAS does through torch's allocator
    on sm90 (torch/csrc/cuda/CublasHandlePool.cpp)."""

    SEGMENT = 2 * MIB
    WORKSPACE = 32 * MIB

    def __init__(self, monkeypatch, *, uuid, free=70 << 30, name="NVIDIA H100 80GB HBM3", nvml=None):
        self.nvml, self.uuid, self.free_bytes, self.workspace = nvml, uuid, free, 0
        self.tracker = LiveStorages(self)
        self.reserved, self.peak, self.log = 0, 0, []
        cuda = torch.cuda
        for name_, fn in {
            "is_available": lambda: True,
            "current_device": lambda: 0,
            "set_device": lambda device: self.log.append("set_device"),
            "synchronize": lambda device=None: None,
            "memory_allocated": lambda device=None: self.allocated,
            "max_memory_allocated": lambda device=None: self.peak,
            "memory_reserved": lambda device=None: self.reserved,
            "reset_peak_memory_stats": lambda device=None: setattr(self, "peak", self.allocated),
            "empty_cache": self._empty_cache,
            "mem_get_info": lambda device=None: (self.free_bytes, 80 << 30),
            "get_device_name": lambda device=None: name,
            "get_device_capability": lambda device=None: (9, 0),
            "get_device_properties": lambda device=None: type("Props", (), {"uuid": self.uuid, "name": name})(),
            "Event": FakeEvent,
        }.items():
            monkeypatch.setattr(cuda, name_, fn)
        monkeypatch.setattr(torch.backends.cuda, "cublas_workspace_size", lambda: self.WORKSPACE, raising=False)
        if nvml is not None:
            import sys

            monkeypatch.setitem(sys.modules, "pynvml", nvml)

    @property
    def allocated(self):
        return self.tracker.now + self.workspace

    def _grow(self):
        self.peak = max(self.peak, self.allocated)
        need = -(-self.allocated // self.SEGMENT) * self.SEGMENT
        self.reserved = max(self.reserved, need)
        assert self.reserved >= self.allocated  # as on a real device

    def _empty_cache(self):
        self.reserved = -(-self.allocated // self.SEGMENT) * self.SEGMENT

    def run(self, monkeypatch, spec, opts):
        """profile_model with device 'cuda': the CUDA meter over CPU tensors."""
        from kvplan.profile import measure

        monkeypatch.setattr(prun, "_device", lambda torch_, name: torch.device("cpu"))
        monkeypatch.setattr(measure, "make_meter", lambda device: measure.CudaMeter(device))
        with self.tracker:
            return profile_model(spec, opts)


class LiveStorages(TorchDispatchMode):
    """Bytes of the storages the ops create that are still alive: a weakref on the storage object,
    which torch keeps alive as long as any tensor (a Parameter wrapping it included) uses it."""

    def __init__(self, fake):
        super().__init__()
        self.fake, self.now, self.refs = fake, 0, {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        import weakref

        if self.fake.workspace == 0 and func in (torch.ops.aten.mm.default, torch.ops.aten.addmm.default):
            self.fake.workspace = FakeCuda.WORKSPACE  # cuBLAS's, at the first matmul, never freed
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = storage._cdata
                if key not in self.refs:
                    nbytes = storage.nbytes()
                    self.now += nbytes
                    self.refs[key] = weakref.ref(storage, lambda ref, key=key, n=nbytes: self._free(key, n))
        self.fake._grow()
        return out

    def _free(self, key, nbytes):
        self.refs.pop(key, None)
        self.now -= nbytes


class FakeEvent:
    def __init__(self, enable_timing=False):
        self.t = None

    def record(self, stream=None):
        import time

        self.t = time.perf_counter()

    def elapsed_time(self, end):
        return (end.t - self.t) * 1e3


def test_cuda_meter_constructor_reads_nvml_before_cuda_and_maps_by_uuid(monkeypatch):
    """CUDA_VISIBLE_DEVICES=2: torch's device 0 is NVML's index 2; the baseline and the context are read
    on that device, found by UUID, and NVML is read before torch creates the context."""
    from kvplan.profile import measure

    gpus = [FakeGpu(f"GPU-{uuid_of(i)}", used=(100 + i) * MIB) for i in range(4)]
    nvml = FakeNvml(gpus)
    fake = FakeCuda(monkeypatch, uuid=uuid_of(2), nvml=nvml)

    def set_device(device):
        fake.log.append("set_device")
        gpus[2].used += 500 * MIB  # the context this process creates, on NVML's device 2

    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    meter = measure.CudaMeter(torch.device("cpu"))
    assert meter._nvml.uuid == f"GPU-{uuid_of(2)}"
    assert meter.baseline_used == 102 * MIB and meter.context_bytes() == 500 * MIB
    first_memory_read = next(i for i, c in enumerate(nvml.calls) if c[0] == "memory")
    assert first_memory_read < len(nvml.calls) and fake.log == ["set_device"]
    assert nvml.calls.index(("memory", gpus[2].uuid)) < len(nvml.calls)
    assert meter.warnings == []
    env = meter.environment()
    assert env["driver"] == "550.54.15" and env["compute_capability"] == "9.0"
    assert env["cublas_workspace_bytes"] == 32 * MIB and env["nvml_uuid"] == gpus[2].uuid


def test_nvml_finds_a_mig_slice_by_its_own_uuid(monkeypatch):
    from kvplan.profile import measure

    slice_ = FakeGpu(f"MIG-{uuid_of(9)}", used=7 * MIB, total=10 << 30)
    gpus = [FakeGpu(f"GPU-{uuid_of(0)}", used=900 * MIB, migs=[slice_])]
    found, problem = measure.Nvml.find(FakeNvml(gpus), uuid_of(9))
    assert found.handle is slice_ and found.used() == 7 * MIB and problem == ""
    found, _ = measure.Nvml.find(FakeNvml(gpus, by_uuid=False), f"MIG-{uuid_of(9)}")  # NVML without the lookup
    assert found.handle is slice_
    inventory = measure.nvml_inventory(FakeNvml(gpus))
    assert inventory[slice_.uuid].used == 7 * MIB and inventory[gpus[0].uuid].used == 900 * MIB


def test_nvml_never_falls_back_to_an_index(monkeypatch):
    from kvplan.profile import measure

    gpus = [FakeGpu(f"GPU-{uuid_of(i)}") for i in range(2)]
    found, problem = measure.Nvml.find(FakeNvml(gpus), uuid_of(7))  # not an NVML device
    assert found is None and "no NVML device has torch's UUID" in problem
    found, problem = measure.Nvml.find(FakeNvml(gpus), None)
    assert found is None and "no device UUID" in problem


def test_process_list_library_mismatch_is_caught(monkeypatch):
    from kvplan.profile import measure

    gpu = FakeGpu(f"GPU-{uuid_of(0)}", used=5 * MIB, mismatch=True)
    nvml = measure.Nvml(FakeNvml([gpu]), gpu, gpu.uuid)
    assert nvml.stats()["nvml_process_bytes"] is None and nvml.processes() is None
    assert measure.nvml_inventory(FakeNvml([gpu]))[gpu.uuid].processes is None


def test_other_processes_on_the_device_are_warned_about(monkeypatch):
    import os

    from kvplan.profile import measure

    gpu = FakeGpu(f"GPU-{uuid_of(0)}", used=3000 * MIB, processes=[proc(4242, 3000 * MIB)])
    FakeCuda(monkeypatch, uuid=uuid_of(0), nvml=FakeNvml([gpu]))
    meter = measure.CudaMeter(torch.device("cpu"))
    assert len(meter.warnings) == 1 and "PID 4242" in meter.warnings[0] and "non_torch" in meter.warnings[0]
    gpu.processes = [proc(os.getpid(), 600 * MIB), proc(4242, 3000 * MIB), proc(5151, 10 * MIB)]
    snap = meter.snapshot("prefill")
    assert snap["nvml_process_bytes"] == 600 * MIB
    assert any("during prefill" in w and "5151" in w for w in meter.warnings)


def test_runner_cuda_branches_with_fakes(monkeypatch):
    """device 'cuda' end to end on fakes: allocator deltas, the NVML baseline, the catalog GPU from the
    device name, the CUDA context term, and a cuBLAS workspace that the warm-up keeps out of the peak."""
    gpu = FakeGpu(f"GPU-{uuid_of(1)}", used=50 * MIB)
    fake = FakeCuda(monkeypatch, uuid=uuid_of(1), nvml=FakeNvml([FakeGpu(f"GPU-{uuid_of(0)}"), gpu]))

    def set_device(device):
        gpu.used += 400 * MIB  # the CUDA context
        gpu.pool = lambda: fake.reserved  # from now on NVML also sees torch's segments

    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    spec = tiny("dense_gqa")
    runs = fake.run(monkeypatch, spec, Options(contexts=[16, 16], device="cuda", chunk=5))
    first, second = runs
    assert first.device == "cuda" and first.device_name == "NVIDIA H100 80GB HBM3"
    assert first.time.gpu == "h100-sxm" and first.time.estimated_decode_ms > 0
    assert first.weights.measured_bytes == first.weights.estimated_bytes
    assert first.kv_cache.measured_bytes == first.kv_cache.estimated_bytes
    # the workspace came with the warm-up: both identical lengths see the same activation peak
    assert first.activation_peak.measured_bytes == second.activation_peak.measured_bytes
    assert first.activation_peak.measured_bytes < FakeCuda.WORKSPACE
    assert first.cuda_context_bytes == 400 * MIB and first.cuda_context_in_range
    assert first.non_torch.estimated_bytes == prun.CUDA_CONTEXT_BYTES
    assert first.non_torch.measured_bytes == 400 * MIB  # NVML growth minus torch's reserved pool
    assert first.total_peak.measured_bytes is not None
    assert first.time.decode_launch_bound is not None and first.time.decode_host_ms is not None
    assert first.environment["driver"] == "550.54.15"
    assert [p["phase"] for p in first.phases] == ["context", "weights", "warmup", "cache", "prefill", "decode"]


def test_runner_cuda_out_of_memory_reports_the_allocator_peak(monkeypatch):
    fake = FakeCuda(monkeypatch, uuid=uuid_of(0), nvml=FakeNvml([FakeGpu(f"GPU-{uuid_of(0)}")]))

    def boom(self, *args):
        fake.peak = 12345 * MIB
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(prun._Session, "_prefill", boom)
    monkeypatch.setattr(prun._Session, "_warm_up", lambda self: None)
    run = fake.run(monkeypatch, tiny("dense_gqa"), Options(contexts=[16], device="cuda"))[0]
    assert run.status == "did_not_fit" and run.peak_bytes_so_far == 12345 * MIB


def test_runner_cuda_refuses_beyond_free_memory(monkeypatch):
    fake = FakeCuda(monkeypatch, uuid=uuid_of(0), free=1000, nvml=FakeNvml([FakeGpu(f"GPU-{uuid_of(0)}")]))
    run = fake.run(monkeypatch, tiny("dense_gqa"), Options(contexts=[16], device="cuda"))[0]
    assert run.status == "refused" and run.free_bytes == 1000


def test_cli_save_is_written_after_each_length(cli, spec_file, tmp_path, monkeypatch):
    """A profile stopped during its second length leaves the first one saved."""
    target = tmp_path / "runs.json"
    calls = []
    real = prun._Session._profile_length

    def second_fails(self, length, index):
        calls.append(length)
        if index == 1:
            assert json.loads(target.read_text())[0]["context"] == 16  # already on disk
            raise KeyboardInterrupt  # a time limit's signal
        return real(self, length, index)

    monkeypatch.setattr(prun._Session, "_profile_length", second_fails)
    result = cli("profile", spec_file, "--device", "cpu", "-c", "16,24", "--save", str(target))
    assert result.exit_code != 0 and calls == [16, 24]  # click turns the interrupt into an abort
    assert [r["context"] for r in json.loads(target.read_text())] == [16]

"""Issue 12: every bad input refused with one line (CLI exit 2, library InvalidInput), and one rule per question."""

import json
import re
import shlex
from pathlib import Path

import pytest

import kvplan
from kvplan.capacity import capacity, setup
from kvplan.catalog import load_bundled
from kvplan.errors import InvalidInput
from kvplan.estimator import estimate
from kvplan.hardware import resolve_gpu
from kvplan.memory import kv_bytes_per_sequence, kv_bytes_total
from kvplan.planner import plan, why_nothing_fits
from kvplan.units import MAX_BATCH, check_count, parse_lengths
from tests.test_cli import _one_error_line

LLAMA = load_bundled("llama-3.1-8b")
H100 = resolve_gpu("h100-sxm")


# ---- lists, lengths, batches ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["4k,,8k", "4k,", ",4k", " , ", "4 k", "4k, 8 k"])
def test_length_lists_refuse_empty_items_and_inner_spaces(text):
    with pytest.raises(InvalidInput, match="invalid length"):
        parse_lengths(text)


def test_length_list_keeps_spaces_around_items():
    assert parse_lengths(" 4k , 8k ") == [4096, 8192]


def test_batch_has_an_upper_bound_like_lengths(cli):
    assert check_count(MAX_BATCH, "batch") == 1 << 20
    with pytest.raises(InvalidInput, match="between 1 and 1,048,576"):
        check_count(10**23, "batch")
    _one_error_line(cli("estimate", "llama-3.1-8b", "-b", str(10**23)), "invalid batch")
    _one_error_line(cli("plan", "llama-3.1-8b", "--users", str(10**23), "-c", "4k"), "invalid users")
    _one_error_line(cli("estimate", "llama-3.1-8b", "-c", "4k,,8k"), "an item is empty")
    _one_error_line(cli("plan", "llama-3.1-8b", "--users", "1", "-c", "4k", "--gpus", "h100-sxm,"), "an item is empty")
    _one_error_line(
        cli("capacity", "llama-3.1-8b", "--gpu", "h100-sxm", "-c", "4k", "--lengths", "2k,,4k"), "an item is empty"
    )
    _one_error_line(
        cli("capacity", "llama-3.1-8b", "--gpu", "h100-sxm", "-c", "4k", "--lengths", "2k,4k", "--weights", "1,nan"),
        "invalid weights",
    )


def test_empty_model_name_is_refused(cli):
    _one_error_line(cli("estimate", ""), "invalid model ''")
    with pytest.raises(InvalidInput, match="invalid model"):
        estimate("  ", [4096])


def test_unreadable_folder_is_one_line_exit_2(cli, monkeypatch, tmp_path):
    # As root every folder is readable, so the file system's refusal is simulated where it happens.
    def refuse(self):  # noqa: ANN001
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "is_dir", refuse)
    result = cli("estimate", str(tmp_path / "locked"))
    _one_error_line(result, "cannot read model", "Permission denied")
    assert "internal error" not in result.output


# ---- RoPE hints extend from the current context ----------------------------------------------


@pytest.mark.parametrize(("model", "length"), [("llama-3.1-8b", "1M"), ("phi-3-mini-128k", "256k")])
def test_rope_hint_extends_from_the_current_context(cli, model, length):
    result = cli("estimate", model, "-c", length)
    hint = re.search(r"'(kvplan rope [^']+)'", result.stderr).group(1)
    rope = cli(*shlex.split(hint)[1:], "-f", "json")
    assert rope.exit_code == 0, rope.output
    new = json.loads(rope.stdout)["methods"][0]["max_context"]
    wanted = json.loads(cli("estimate", model, "-c", length, "-f", "json").stdout)[0]["context"]
    # llama-3.1-8b: 8 x 131,072 = 1,048,576 (the old hint, factor 8 from 8,192, gave 65,536);
    # phi-3-mini-128k: 2 x 131,072 = 262,144 (the old one, factor 2 from 4,096, gave 8,192).
    assert new >= wanted
    assert new >= load_bundled(model).max_position_embeddings


# ---- the library checks what the CLI checks, and takes names ---------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: kv_bytes_per_sequence(LLAMA, -5),
        lambda: kv_bytes_per_sequence(LLAMA, 0),
        lambda: kv_bytes_total(LLAMA, 4096, 0),
        lambda: kv_bytes_total(LLAMA, 4096, 10**23),
        lambda: capacity(setup(LLAMA, H100), 0),
        lambda: capacity(setup(LLAMA, H100), 4096, batch=-1),
        lambda: capacity(setup(LLAMA, H100), 4096, lengths=[]),
        lambda: capacity(setup(LLAMA, H100), 4096, kv_cache_memory=-1),
        lambda: estimate(LLAMA, [4096], batch=0),
        lambda: estimate(LLAMA, [], batch=1),
        lambda: estimate(LLAMA, [4096], overhead_bytes=-1),
        lambda: estimate(LLAMA, [4096], tp=0),
        lambda: estimate(LLAMA, [4096], tp=1.5),
        lambda: kvplan.weight_bytes_per_gpu(LLAMA, pp=0),
        lambda: plan(LLAMA, [H100], users=0, context=4096),
        lambda: plan(LLAMA, [H100], users=1, context=-1),
        lambda: plan(LLAMA, [H100], users=1, context=4096, max_gpus=0),
        lambda: estimate(42, [4096]),
        lambda: setup(LLAMA, 42),
    ],
)
def test_library_refuses_what_the_cli_refuses(call):
    with pytest.raises(InvalidInput):
        call()


def test_library_takes_names_as_well_as_objects():
    by_name = kvplan.estimate("llama-3.1-8b", [4096], gpu="h100-sxm")
    by_object = kvplan.estimate(LLAMA, [4096], gpu=H100)
    assert by_name == by_object
    assert kvplan.kv_bytes_per_sequence("llama-3.1-8b", "4k") == 4096 * 131_072  # 512 MiB
    assert setup("llama-3.1-8b", "h100-sxm").spec == LLAMA
    assert kvplan.count_params("llama-3.1-8b") == kvplan.count_params(LLAMA)
    assert plan("llama-3.1-8b", ["h100-sxm"], users=1, context=4096)[0].gpu == "h100-sxm"


# ---- one rule for "past the trained context" -------------------------------------------------


def test_past_the_trained_context_is_one_message_everywhere(cli):
    row = estimate(LLAMA, [1 << 20], gpu=H100)[0]
    for gpu in ("h100-sxm", "l4"):  # on either GPU the limit is the trained context, not memory
        r = capacity(setup(LLAMA, resolve_gpu(gpu)), 1 << 20)
        assert not r.fits and r.max_concurrent_sequences == 0
        assert r.reason == row.note
    assert row.fits is False and row.beyond_trained_context
    assert plan(LLAMA, [H100], users=4, context=1 << 20) == []
    assert why_nothing_fits(LLAMA, [H100], users=4, context=1 << 20) == row.note
    assert "trained context of 131,072 tokens" in row.note
    out = cli("plan", "llama-3.1-8b", "--users", "4", "-c", "1M").stdout
    assert "--max-model-len 1048576" not in out and row.note in out
    cap = cli("capacity", "llama-3.1-8b", "--gpu", "l4", "-c", "1M").stdout
    assert row.note in cap and "fits                         NO" in cap
    assert capacity(setup(LLAMA, H100), 131072).fits  # the trained context itself still fits


# ---- one usable-memory figure ------------------------------------------------------------------


def test_estimate_and_capacity_ideal_use_the_same_memory():
    # CUDA's total on an H100 SXM: 81,090 MiB = 85,029,027,840 B = 79.19 GiB (was 81,559 MiB in estimate).
    row = estimate(LLAMA, [4096], gpu=H100)[0]
    ideal = capacity(setup(LLAMA, H100, engine="ideal"), 4096)
    assert row.gpu_memory_bytes == ideal.breakdown["device_total_bytes"] == 81090 << 20
    # Both say the same about the same batch: the headroom is the ideal pool less the batch's KV.
    assert row.headroom_bytes == ideal.available_kv_bytes - row.kv_bytes_per_gpu


def test_kv_cache_memory_larger_than_the_device_is_refused(cli):
    _one_error_line(
        cli("capacity", "llama-3.1-8b", "--gpu", "h100-sxm", "-c", "4k", "--kv-cache-memory", "1TiB"),
        "KV cache memory 1,099,511,627,776 B does not fit on h100-sxm",
    )
    # 85,029,027,840 usable - 16,060,522,496 weights = 68,968,505,344 B: the most it may be.
    assert capacity(setup(LLAMA, H100), 4096, kv_cache_memory=68_968_505_344).fits
    with pytest.raises(InvalidInput, match="does not fit on h100-sxm"):
        capacity(setup(LLAMA, H100), 4096, kv_cache_memory=68_968_505_345)


# ---- TP splits: one rule for every command ----------------------------------------------------


def test_estimate_cost_and_capacity_refuse_the_same_tp_split(cli):
    # phi-4: 40 query heads, 10 KV heads; tp 4 divides 40 but neither divides nor is a multiple of 10.
    lines = set()
    for args in (
        ("estimate", "phi-4", "--tp", "4", "-c", "4k"),
        ("cost", "phi-4", "--tp", "4", "-c", "4k", "--gpu", "h100-sxm"),
        ("capacity", "phi-4", "--tp", "4", "-c", "4k", "--gpu", "h100-sxm"),
        ("capacity", "phi-4", "--tp", "4", "-c", "4k", "--gpu", "h100-sxm", "-e", "ideal"),
    ):
        result = cli(*args)
        _one_error_line(result, "neither divides nor is a multiple of phi-4's 10 KV heads")
        lines.add(result.stderr.strip())
    assert len(lines) == 1


# ---- plan says why nothing fits ------------------------------------------------------------


def test_plan_states_the_real_reason(cli):
    out = cli("plan", "llama-3.1-8b", "--users", "4", "-c", "4k", "-e", "llamacpp", "--kv-dtype", "fp8").stdout
    assert "engine 'llamacpp' has no KV-cache dtype among fp8" in out and "--max-gpus" not in out
    out = cli("plan", "llama-3.1-405b", "--users", "1", "-c", "128k", "-e", "llamacpp", "--gpus", "l4").stdout
    assert "modelled on one device" in out
    out = cli("plan", "llama-3.1-405b", "--users", "400", "-c", "128k", "--gpus", "l4").stdout
    assert "need more than 64 GPUs" in out
    _one_error_line(cli("plan", "llama-3.1-8b", "--users", "1", "-c", "4k", "--weights-dtype", "fp7"), "fp7")


# ---- files and names --------------------------------------------------------------------------


def test_local_folder_shadowing_a_bundled_name_is_said(cli, tmp_path, monkeypatch):
    folder = tmp_path / "llama-3.1-8b"
    folder.mkdir()
    source = Path(__file__).parent / "data" / "hf_configs" / "codellama-7b.json"
    (folder / "config.json").write_text(source.read_text())
    monkeypatch.chdir(tmp_path)
    result = cli("estimate", "llama-3.1-8b", "-c", "4k")
    assert result.exit_code == 0, result.output
    assert "is a local path and also a bundled model; using the local 'llama-3.1-8b'" in result.stderr


def test_bad_gpu_yaml_is_one_line_per_problem_without_an_index(cli, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- name: x\n  memory_mib: -1\n")
    result = cli("estimate", "llama-3.1-8b", "--gpu", str(path))
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 4  # memory_mib, bandwidth_gbps, bf16_dense_tflops, source
    assert all(line.startswith(f"kvplan: error: {path}: ") and "[0]" not in line for line in lines)


def test_show_says_recurrent_layers_hold_no_tokens(cli):
    kinds = json.loads(cli("show", "qwen3-next-80b-a3b", "-f", "json").stdout)["layer_kinds"]
    held = {k["type"]: k["max_tokens"] for k in kinds}
    assert held == {"recurrent": "none (fixed state)", "full": "all"}


# ---- output options --------------------------------------------------------------------------


def test_format_is_case_insensitive_and_markdown_keeps_its_header(cli):
    assert json.loads(cli("estimate", "llama-3.1-8b", "-c", "4k", "--format", "JSON").stdout)[0]["context"] == 4096
    md = cli("estimate", "llama-3.1-8b", "-c", "4k", "-f", "markdown").stdout
    assert md.startswith("llama-3.1-8b: batch 1, KV bf16")
    cost = cli("cost", "llama-3.1-8b", "-c", "4k", "--gpu", "h100-sxm", "-f", "markdown").stdout
    assert cost.startswith("llama-3.1-8b on 1x h100-sxm")
    assert "| metric" in cost and "| is " not in cost


def test_version_and_short_help(cli):
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"kvplan {kvplan.__version__}"
    assert cli("-h").exit_code == 0 and "estimate" in cli("-h").stdout
    assert cli("estimate", "-h").exit_code == 0


def test_import_has_a_format(cli):
    config = str(Path(__file__).parent / "data" / "hf_configs" / "codellama-7b.json")
    data = json.loads(cli("import", config, "-f", "json").stdout)
    assert data["name"] == "codellama-7b-hf"
    assert kvplan.ModelSpec.model_validate(data).num_layers == 32
    _one_error_line(cli("import", config, "-f", "xml"), "unknown format 'xml'")


# ---- engine flags, block sizes, launch lines (after the engines/ move) --------------------------


def test_block_sizes_are_those_the_engine_accepts(cli):
    # vllm/config/cache.py BlockSize = Literal[1, 8, 16, 32, 64, 128, 256]; TRT-LLM tokens_per_block
    # must be a power of 2 (docs kv-cache-reuse.md); SGLang's page size is any whole number.
    _one_error_line(cli("capacity", "llama-3.1-8b", "--gpu", "h100-sxm", "-c", "4k", "--block-size", "7"),
                    "invalid block size 7 for vllm")  # fmt: skip
    _one_error_line(
        cli("capacity", "llama-3.1-8b", "--gpu", "h100-sxm", "-c", "4k", "-e", "trtllm", "--block-size", "48"),
        "power of 2",
    )
    for engine, size in (("vllm", "32"), ("trtllm", "64"), ("sglang", "7")):
        result = cli("capacity", "llama-3.1-8b", "--gpu", "h100-sxm", "-c", "4k", "-e", engine, "--block-size", size)
        assert result.exit_code == 0, result.output
    with pytest.raises(InvalidInput, match="for vllm"):
        from kvplan.engines import Settings

        setup(LLAMA, H100, settings=Settings(block_size=7))


@pytest.mark.parametrize(
    ("engine", "flag", "value"),
    [
        ("sglang", "--gpu-memory-utilization", "0.5"),
        ("vllm", "--mem-fraction-static", "0.5"),
        ("trtllm", "--gpu-memory-utilization", "0.5"),
        ("llamacpp", "--block-size", "16"),
        ("ideal", "--max-num-seqs", "8"),
        ("sglang", "--ubatch", "256"),
        ("transformers", "--cuda-graph-estimate", None),
    ],
)
def test_flags_of_another_engine_are_refused(cli, engine, flag, value):
    args = ["capacity", "llama-3.1-8b", "--gpu", "h100-sxm", "-c", "4k", "-e", engine, flag]
    result = cli(*args, *([value] if value else []))
    _one_error_line(result, f"{flag} does not apply to engine '{engine}'")


def test_launch_line_only_where_one_exists_and_matching_the_budget(cli):
    base = ["capacity", "llama-3.1-8b", "--gpu", "h100-sxm", "-c", "4k"]
    for engine in ("ideal", "transformers"):  # no engine to start with that budget
        out = cli(*base, "-e", engine).stdout
        assert "launch:" not in out and "vllm serve" not in out
        assert json.loads(cli(*base, "-e", engine, "-f", "json").stdout)["launch"] is None
    plan_out = cli("plan", "llama-3.1-8b", "--users", "2", "-c", "4k", "-e", "ideal", "--gpus", "l4").stdout
    assert "launch" not in plan_out
    vllm = cli(*base, "--max-num-batched-tokens", "4096").stdout
    assert "--max-num-batched-tokens 4096" in vllm  # it sized the activation term
    assert "-ub 256" in cli(*base, "-e", "llamacpp", "--ubatch", "256").stdout
    assert "--mem-fraction-static 0.7" in cli(*base, "-e", "sglang", "--mem-fraction-static", "0.7").stdout
    assert "--page-size 16" in cli(*base, "-e", "sglang", "--block-size", "16").stdout


def test_llamacpp_does_not_fit_breakdown_is_consistent():
    # llama-3.1-8b on an L4: 6.50 GiB for KV holds 53,248 cells; 128K does not fit. The pool shown is
    # the largest one sequence can have (was: the 128K pool, larger than the budget, beside 0 tokens).
    r = capacity(setup(LLAMA, "l4", engine="llamacpp"), 131072)
    assert not r.fits and r.kv_pool_tokens == 53_248
    assert 0 < r.kv_pool_bytes <= r.available_kv_bytes
    assert r.breakdown["unallocated_bytes"] >= 0
    assert r.breakdown["kv_pool_bytes"] == r.kv_pool_bytes


def test_output_paths_are_checked_before_work_and_never_overwritten(cli, tmp_path):
    pytest.importorskip("matplotlib")
    existing = tmp_path / "plot.png"
    existing.write_bytes(b"mine")
    for args in (("estimate", "llama-3.1-8b"), ("cost", "llama-3.1-8b", "--gpu", "h100-sxm")):
        _one_error_line(cli(*args, "-c", "4k", "--plot", str(existing)), "already exists; pass --force")
        assert existing.read_bytes() == b"mine"
    assert cli("estimate", "llama-3.1-8b", "-c", "4k", "--plot", str(existing), "--force").exit_code == 0
    assert existing.read_bytes()[:4] == b"\x89PNG"
    missing = tmp_path / "no" / "such" / "runs.json"
    result = cli("profile", "llama-3.1-8b", "-c", "16", "--save", str(missing))
    _one_error_line(result, "does not exist")  # before the profile runs (no progress lines)
    config = str(Path(__file__).parent / "data" / "hf_configs" / "codellama-7b.json")
    _one_error_line(cli("import", config, "-o", str(missing)), "does not exist")

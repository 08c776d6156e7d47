"""Fuzzing: every input ends in a result or one clean InvalidInput / exit 2, never a crash or a hang."""

import contextlib
import copy
import io
import json
import math
import os
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvplan.catalog import bundled_names, load_bundled, spec_from_dict
from kvplan.errors import InvalidInput
from kvplan.estimator import estimate
from kvplan.params import count_params, weight_bytes_per_gpu
from kvplan.units import parse_length, parse_lengths, parse_size

# KVPLAN_FUZZ_EXAMPLES=5000 for a long run; CI keeps it short.
FUZZ = settings(
    max_examples=int(os.environ.get("KVPLAN_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ
@given(st.one_of(st.text(max_size=30), st.from_regex(r"\s*-?\d{0,12}(\.\d{0,4})?[kKmMgG]?\s*", fullmatch=True)))
def test_length_parser(text):
    try:
        value = parse_length(text)
    except InvalidInput as exc:
        assert "invalid length" in str(exc)
    else:
        assert 1 <= value <= 1 << 30


@FUZZ
@given(st.text(max_size=40))
def test_length_list_parser(text):
    try:
        values = parse_lengths(text)
    except InvalidInput:
        return
    assert values and all(v >= 1 for v in values)


@FUZZ
@given(
    st.one_of(
        st.text(max_size=30), st.from_regex(r"\d{1,5}(\.\d{1,3})?(e\d{1,3})?\s?(GiB|MiB|GB|B|kb|TiB)?", fullmatch=True)
    )
)
def test_size_parser(text):
    try:
        value = parse_size(text)
    except InvalidInput as exc:
        assert "invalid size" in str(exc)
    else:
        assert value >= 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _exercise(data):
    """Validate, then run the estimator over the spec: only InvalidInput may escape."""
    try:
        spec = spec_from_dict(data, origin="fuzz.yaml")
        count_params(spec)
        weight_bytes_per_gpu(spec, tp=1)
        estimate(spec, [1, 4096, 1 << 20], batch=3, kv_dtype_name="q4_0", tp=1, pp=min(2, spec.num_layers))
    except InvalidInput as exc:
        assert str(exc).strip(), "an error must say something"


@FUZZ
@given(json_values)
def test_spec_loader_random_documents(data):
    _exercise(data)


def _paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


@FUZZ
@given(st.sampled_from(bundled_names()), st.data())
def test_spec_loader_mutated_bundled_specs(name, data):
    doc = json.loads(json.dumps(load_bundled(name).model_dump(exclude_none=True)))
    for _ in range(data.draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = data.draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = data.draw(st.sampled_from(["replace", "delete", "number"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "number":  # sizes from absurd to negative: must never hang or crash
            parent[path[-1]] = data.draw(st.one_of(st.integers(-3, 3), st.integers(1, 2**64)))
        else:
            parent[path[-1]] = data.draw(json_values)
        if not isinstance(doc, dict):
            break
    _exercise(copy.deepcopy(doc))


@FUZZ
@given(st.text(max_size=200))
def test_yaml_text_through_loader(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    from kvplan.catalog import load_spec_file

    with contextlib.suppress(InvalidInput):
        load_spec_file(path)


arg_values = st.sampled_from(
    ["4k", "0", "-1", "1M", "abc", "1e9", "3", "fp8", "q4_0", "h100-sxm", "nope", "json", "xml", "", "9" * 30]
)
options = st.sampled_from(
    ["--context", "--batch", "--kv-dtype", "--weights-dtype", "--gpu", "--tp", "--pp", "--format", "--overhead"]
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(options, arg_values), max_size=4), st.sampled_from(["llama-3.1-8b", "mistral-7b-v0.1", "x"]))
def test_cli_arguments(pairs, model):
    from kvplan.cli import main

    argv = ["estimate", model] + [item for pair in pairs for item in pair]
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    assert code in (0, 2), (argv, err.getvalue())
    if code == 2:
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("kvplan: error: "), (argv, lines)
    assert "Traceback" not in err.getvalue()


def test_regression_yaml_scalar_document(tmp_path):
    # Found by fuzzing: a YAML file holding a bare scalar must be an input error, not a crash.
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(42))
    from kvplan.catalog import load_spec_file

    try:
        load_spec_file(path)
    except InvalidInput as exc:
        assert "must be a YAML mapping" in str(exc)


# ---- the Hugging Face importer ---------------------------------------------------------------

HF_CONFIGS = sorted((Path(__file__).parent / "data" / "hf_configs").glob("*.json"))


def _import(config):
    from kvplan.hf import spec_from_hf_config

    try:
        result = spec_from_hf_config(config, origin="fuzz/config.json")
    except InvalidInput as exc:
        assert str(exc).strip()
        return
    spec = result.spec
    count_params(spec)
    estimate(spec, [1, 8192], batch=2, kv_dtype_name="fp8")
    assert all(isinstance(w, str) and w for w in result.warnings)
    result.to_yaml()


@FUZZ
@given(json_values)
def test_hf_importer_random_documents(config):
    _import(config)


@FUZZ
@given(st.sampled_from(HF_CONFIGS), st.data())
def test_hf_importer_mutated_real_configs(path, data):
    doc = json.loads(path.read_text())
    for _ in range(data.draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        if not paths:
            break
        where = data.draw(st.sampled_from(paths))
        parent = doc
        for key in where[:-1]:
            parent = parent[key]
        action = data.draw(st.sampled_from(["replace", "delete", "number"]))
        if action == "delete":
            del parent[where[-1]]
        elif action == "number":
            parent[where[-1]] = data.draw(st.one_of(st.integers(-3, 3), st.integers(1, 2**64), st.floats()))
        else:
            parent[where[-1]] = data.draw(json_values)
    _import(doc)


def test_hf_importer_writes_only_the_requested_output(tmp_path, cli):
    # `kvplan import` with -o writes that one file and nothing else; without -o it writes nothing.
    before = set(tmp_path.iterdir())
    target = tmp_path / "out.yaml"
    assert cli("import", str(HF_CONFIGS[0]), "-o", str(target)).exit_code == 0
    assert set(tmp_path.iterdir()) - before == {target}
    assert cli("import", str(HF_CONFIGS[0])).exit_code == 0
    assert set(tmp_path.iterdir()) - before == {target}


other_commands = st.sampled_from(
    [
        ["capacity", "llama-3.1-8b", "--gpu", "h100-sxm", "--context"],
        ["cost", "llama-3.1-8b", "--gpu", "h100-sxm", "--context"],
        ["rope", "llama-2-7b", "--method", "yarn", "--factor"],
        ["plan", "llama-3.1-8b", "--users", "4", "--gpus", "l4", "--context"],
    ]
)
other_values = st.sampled_from(["4k", "0", "-1", "1.5", "abc", "1e9", "8", "", "99999999999", "nan", "inf"])
other_options = st.sampled_from(
    ["--tp", "--batch", "--engine", "--kv-dtype", "--gpu-memory-utilization", "--format", "--kv-cache-memory"]
)


@settings(max_examples=40, deadline=None)
@given(other_commands, other_values, st.lists(st.tuples(other_options, other_values), max_size=2))
def test_cli_other_commands(head, value, pairs):
    from kvplan.cli import main

    argv = [*head, value] + [item for pair in pairs for item in pair]
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    assert code in (0, 2), (argv, err.getvalue())
    assert "Traceback" not in err.getvalue() and "internal error" not in err.getvalue(), (argv, err.getvalue())
    if code == 2:
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("kvplan: error: "), (argv, lines)


def test_regression_hf_config_with_absurd_layer_count():
    # Found by fuzzing: num_hidden_layers 112,703,126,820 built a per-layer list until MemoryError.
    from kvplan.hf import spec_from_hf_config

    config = json.loads((Path(__file__).parent / "data" / "hf_configs" / "gemma-2-9b.json").read_text())
    config["num_hidden_layers"] = 112_703_126_820
    try:
        spec_from_hf_config(config, origin="x/config.json")
    except InvalidInput as exc:
        assert "num_hidden_layers" in str(exc) and "100,000" in str(exc)
    else:
        raise AssertionError("an absurd layer count must be refused")


# ---- every flag of every command (issue 12) ------------------------------------------------------
# Each command starts from a valid call; hypothesis adds 1-3 of its options with hostile values.
# No traceback, no "internal error", exit 0 or 2, stderr only kvplan's own lines, and no negative,
# nan or infinite figure among the answers a JSON output carries. `profile` is left out: it imports
# torch and builds the model (tests/test_profile.py covers its flags); --plot/--save/--output get
# paths only (a missing folder, an existing file without --force), never a drawing.

EXAMPLE_LOG = str(Path(__file__).parent.parent / "examples" / "logs" / "vllm-deepseek-v2-lite-h100.log")
COMMAND_BASES = {
    "estimate": ["llama-3.1-8b"],
    "models": [],
    "show": ["gemma-3-27b"],
    "gpus": [],
    "import": [str(HF_CONFIGS[0])],
    "capacity": ["llama-3.1-8b", "--gpu", "h100-sxm", "-c", "4k"],
    "plan": ["llama-3.1-8b", "--users", "2", "-c", "4k", "--gpus", "l4"],
    "check-log": [EXAMPLE_LOG],
    "cost": ["llama-3.1-8b", "-c", "4k", "--gpu", "h100-sxm"],
    "rope": ["llama-3.1-8b"],
}
PATH_OPTIONS = {"--plot", "--save", "--output", "--file"}
hostile = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "1",
            "7",
            "1e30",
            "1e-30",
            "nan",
            "inf",
            "-inf",
            "4k,,8k",
            "4k,",
            ",4k",
            "4 k",
            "JSON",
            "fp8",
            "q4_0",
            "bf16,fp8",
            "sglang",
            "llamacpp",
            "ideal",
            "1TiB",
            "0.5",
            "2",
            "3",
            str(10**23),
            "h100-sxm",
            "l4,",
            "yarn",
            "latent",
            "x" * 300,
        ]  # fmt: skip
    ),
    st.text(max_size=12),
    st.integers(-(10**20), 10**20).map(str),
)
ANSWER_KEYS = {
    "kv_bytes_per_token", "kv_bytes_per_sequence", "kv_bytes_total", "kv_bytes_per_gpu", "weights_bytes_per_gpu",
    "total_bytes_per_gpu", "gpu_memory_bytes", "kv_pool_bytes", "kv_pool_tokens", "max_concurrent_sequences",
    "max_concurrent_sequences_per_replica", "engine_reported_concurrency", "max_context", "max_context_for_batch",
    "expected_concurrency", "unallocated_bytes", "weights_bytes", "device_total_bytes", "sequences_per_replica",
    "total_sequences", "gpus", "replicas", "time_s", "flops_total", "bytes_total", "tokens_per_s",
}  # fmt: skip


def _command_options():
    import typer

    from kvplan.cli import app, load_commands

    load_commands()
    group = typer.main.get_command(app)
    return {
        name: [p for p in group.commands[name].params if p.opts[0].startswith("--")]
        for name in COMMAND_BASES  # every command but profile
    }


OPTIONS = _command_options()


def _answers(doc, where=""):
    """Every (key, number) among the answer fields of a JSON document."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k in ANSWER_KEYS and isinstance(v, int | float) and not isinstance(v, bool):
                yield f"{where}{k}", v
            yield from _answers(v, f"{where}{k}.")
    elif isinstance(doc, list):
        for item in doc:
            yield from _answers(item, where)


@contextlib.contextmanager
def _hub_offline():
    """HF_HUB_OFFLINE=1 for one call (kvplan.hub.offline reads the environment at each call). huggingface_hub is
    imported first: it reads the variable once, at import (constants.HF_HUB_OFFLINE), and would stay offline for the
    rest of the process (tests/test_gguf.py's fake-Hub tests failed after this file)."""
    import huggingface_hub.constants  # noqa: F401  (before the variable is set)

    saved = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["HF_HUB_OFFLINE"]
        else:
            os.environ["HF_HUB_OFFLINE"] = saved


@settings(max_examples=int(os.environ.get("KVPLAN_FUZZ_EXAMPLES", "150")), deadline=None)
@given(st.sampled_from(sorted(COMMAND_BASES)), st.data())
def test_every_flag_of_every_command(tmp_path_factory, command, data):
    from kvplan.cli import main

    folder = tmp_path_factory.mktemp("flags")
    (folder / "exists.png").write_text("keep me")
    params = OPTIONS[command]
    chosen = data.draw(st.lists(st.sampled_from(params), min_size=1, max_size=3, unique_by=lambda p: p.opts[0]))
    argv = [command, *COMMAND_BASES[command]]
    for p in chosen:
        flag = p.opts[0]
        if getattr(p, "is_flag", False):
            argv.append(flag if not p.secondary_opts else data.draw(st.sampled_from([flag, *p.secondary_opts])))
        elif flag in PATH_OPTIONS:
            value = data.draw(st.sampled_from([str(folder / "missing" / "x.png"), str(folder / "exists.png"), ""]))
            argv += [flag, value]
        else:
            argv += [flag, data.draw(hostile)]
    as_json = data.draw(st.booleans()) and any(p.opts[0] == "--format" for p in params)
    argv += ["--format", "json"] if as_json else []
    out, err = io.StringIO(), io.StringIO()
    # A hostile MODEL such as '0/0' is a Hub name: offline, one that is not cached is the user's input (exit 2, one
    # line); online it would be a network failure (exit 1), and the test would depend on the machine's network.
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _hub_offline():
        code = main(argv)
    text = err.getvalue()
    assert code in (0, 2), (argv, text)
    assert "Traceback" not in text and "internal error" not in text, (argv, text)
    for line in filter(str.strip, text.splitlines()):
        assert line.startswith(("kvplan: error: ", "kvplan: warning: ", "note: ", "wrote ")), (argv, line)
    if "--force" not in argv:
        assert (folder / "exists.png").read_bytes() == b"keep me", argv  # nothing overwritten without --force
    if code == 0 and as_json and command != "import":
        for key, value in _answers(json.loads(out.getvalue())):
            assert math.isfinite(value) and value >= 0, (argv, key, value)


# ---- the library API (issue 12): the same checks as the CLI, whatever the Python types ---------------

any_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "4k", "llama-3.1-8b", "h100-sxm", "fp8", "bf16", "q4_0", "nope", "1M", "ideal", "sglang"]),
    st.lists(st.integers(-5, 1 << 31), max_size=3),
)


def _library_call(name, args):
    import kvplan
    from kvplan.capacity import capacity, setup
    from kvplan.memory import kv_bytes_per_sequence, kv_bytes_total
    from kvplan.planner import plan

    spec, gpu, length, batch, tp, pp, kv = args
    if name == "estimate":
        return [
            r.model_dump() for r in kvplan.estimate(spec, length, batch=batch, kv_dtype_name=kv, tp=tp, pp=pp, gpu=gpu)
        ]
    if name == "kv_bytes_per_sequence":
        return kv_bytes_per_sequence(spec, length, kv, tp=tp, pp=pp)
    if name == "kv_bytes_total":
        return kv_bytes_total(spec, length, batch, kv, tp=tp, pp=pp)
    if name == "weight_bytes_per_gpu":
        return kvplan.weight_bytes_per_gpu(spec, tp=tp, pp=pp)
    if name == "capacity":
        engine = kv if isinstance(kv, str) and kv in kvplan.ENGINES else "vllm"
        return capacity(setup(spec, gpu, engine=engine, tp=tp, pp=pp), length, batch=batch).to_dict()
    return [r.to_dict() for r in plan(spec, [gpu], users=batch, context=length)]


library_names = st.sampled_from(
    ["estimate", "kv_bytes_per_sequence", "kv_bytes_total", "weight_bytes_per_gpu", "capacity", "plan"]
)


@settings(max_examples=int(os.environ.get("KVPLAN_FUZZ_EXAMPLES", "150")), deadline=None)
@given(
    library_names,
    st.one_of(st.sampled_from(["llama-3.1-8b", "gemma-3-27b", "phi-4"]), any_value),
    st.one_of(st.sampled_from(["h100-sxm", "l4"]), any_value),
    st.one_of(st.sampled_from([1, 4096, "32k", 1 << 20]), any_value),
    st.one_of(st.sampled_from([1, 8]), any_value),
    st.one_of(st.sampled_from([1, 2, 4]), any_value),
    st.one_of(st.sampled_from([1, 2]), any_value),
    st.one_of(st.sampled_from([None, "fp8", "bf16"]), any_value),
)
def test_library_api_takes_anything(name, spec, gpu, length, batch, tp, pp, kv):
    try:
        result = _library_call(name, (spec, gpu, length, batch, tp, pp, kv))
    except InvalidInput as exc:
        assert str(exc).strip()
        return
    if isinstance(result, int):
        assert result >= 0
        return
    for key, value in _answers(result):
        assert math.isfinite(value) and value >= 0, (name, key, value)


def test_hub_like_model_offline_is_one_line_exit_2():
    """The example hypothesis found (stop 20): a hostile '--model 0/0' on check-log reached for the Hub; offline it
    must be the user's input, one line and exit 2."""
    from kvplan.cli import main

    log = Path(__file__).resolve().parent.parent / "examples" / "logs" / "vllm-deepseek-v2-lite-h100.log"
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err), _hub_offline():
        code = main(["check-log", str(log), "--gpu", "", "--model", "0/0"])
    lines = err.getvalue().strip().splitlines()
    assert code == 2 and len(lines) == 1 and "HF_HUB_OFFLINE is set" in lines[0], lines

"""The recurrent SSM (temporal) state's dtype: what the checkpoint's config states (kvplan.hf -> the spec's
``ssm_state_dtype``) and what each engine release keeps (``Engine.ssm_state_dtype`` through ``Engine.model_as_run``).

Goldens by hand, per request over all of a model's recurrent layers, one rank (tp 1), conv state in the model's bf16:

* Nemotron 3 Nano 30B-A3B, 23 Mamba2 layers: conv (4,096 + 2 x 8 x 128) x 3 = 18,432 elements x 2 B = 36,864 B;
  SSM 4,096 x 128 = 524,288 elements: fp32 2,097,152 B -> 2,134,016 B a layer, x 23 = 49,082,368;
  16-bit 1,048,576 B -> 1,085,440 B a layer, x 23 = 24,965,120.
* Nemotron-H 8B, 24 Mamba2 layers: conv (8,192 + 2 x 8 x 128) x 3 = 30,720 x 2 B = 61,440 B; SSM 8,192 x 128 =
  1,048,576 elements: 16-bit 2,097,152 -> 2,158,592 B, x 24 = 51,806,208; fp32 4,194,304 -> 4,255,744 B, x 24 =
  102,137,856.
* Qwen3.5 27B, 48 Gated DeltaNet layers: conv (2 x 16 x 128 + 48 x 128) x 3 = 30,720 x 2 B = 61,440 B; state 48 x 128
  x 128 = 786,432 elements: fp32 3,145,728 -> 3,207,168 B, x 48 = 153,944,064; bf16 1,572,864 -> 1,634,304 B, x 48 =
  78,446,592.
* Qwen3-Next 80B-A3B, 36 Gated DeltaNet layers: conv (2 x 16 x 128 + 32 x 128) x 3 = 24,576 x 2 B = 49,152 B; state
  32 x 128 x 128 = 524,288 elements: bf16 1,048,576 -> 1,097,728 B, x 36 = 39,518,208; fp32 2,097,152 -> 2,146,304 B,
  x 36 = 77,266,944.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvplan.capacity import setup
from kvplan.catalog import load_bundled
from kvplan.engines import Settings, get_engine
from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu
from kvplan.hf import import_config, spec_from_hf_config
from kvplan.memory import cache_plan
from kvplan.spec import LayerKind

DATA = Path(__file__).parent / "data" / "hf_configs"
H100, B200 = resolve_gpu("h100-sxm"), resolve_gpu("b200")

NANO_FP32, NANO_16 = 49_082_368, 24_965_120
H8B_16, H8B_FP32 = 51_806_208, 102_137_856
Q27_FP32, Q27_BF16 = 153_944_064, 78_446_592
NEXT_BF16, NEXT_FP32 = 39_518_208, 77_266_944


def state_bytes(engine: str, model: str, settings: Settings | None = None) -> int:
    """One request's recurrent state over every layer (tp 1), as ``engine`` runs ``model``."""
    spec = get_engine(engine).model_as_run(load_bundled(model), settings)
    return sum(n * c.state_bytes for n, c in cache_plan(spec, "bf16").stages[0].groups)


def ssm_dtypes(engine: str, model: str) -> set[str | None]:
    spec = get_engine(engine).model_as_run(load_bundled(model))
    return {k.ssm_state_dtype for k in spec.layers.kinds.values() if k.type == "recurrent"}


# ---- the config's field, imported ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stem", "kind", "dtype"),
    [
        ("nemotron-3-nano-30b-a3b", "mamba2", "fp32"),  # mamba_ssm_cache_dtype "float32"
        ("nemotron-h-8b-base-8k", "mamba2", None),  # no field: the engines decide (vLLM per release)
        ("qwen3.5-122b-a10b", "deltanet", "fp32"),  # text_config mamba_ssm_dtype "float32"
        ("qwen3.5-27b", "deltanet", "fp32"),
        ("qwen3-next-80b-a3b", "deltanet", None),  # Qwen3-Next has no such field
    ],
)
def test_hf_import_reads_the_ssm_dtype_field(stem: str, kind: str, dtype: str | None) -> None:
    spec = import_config(DATA / f"{stem}.json").spec
    assert spec.kind(kind).ssm_state_dtype == dtype


def _nemotron_config(**extra: object) -> dict:
    config = json.loads((DATA / "nemotron-h-8b-base-8k.json").read_text())
    return {**config, **extra}


def test_hf_import_takes_auto_as_no_statement_and_refuses_other_values() -> None:
    auto = spec_from_hf_config(_nemotron_config(mamba_ssm_cache_dtype="auto"), origin="test").spec
    assert auto.kind("mamba2").ssm_state_dtype is None
    half = spec_from_hf_config(_nemotron_config(mamba_ssm_cache_dtype="float16"), origin="test").spec
    assert half.kind("mamba2").ssm_state_dtype == "fp16"
    with pytest.raises(InvalidInput, match="mamba_ssm_cache_dtype: expected float32, bfloat16 or float16"):
        spec_from_hf_config(_nemotron_config(mamba_ssm_cache_dtype="int8"), origin="test")


def test_the_spec_field_is_for_ssm_states_only() -> None:
    assert LayerKind(type="recurrent", variant="mamba", d_inner=8, d_state=4, d_conv=4, ssm_state_dtype="float32")
    with pytest.raises(ValueError, match="only applies to recurrent mamba, mamba2 and gated_deltanet"):
        LayerKind(type="full", ssm_state_dtype="fp32")
    with pytest.raises(ValueError, match="only applies to recurrent mamba, mamba2 and gated_deltanet"):
        LayerKind(type="recurrent", variant="lightning", n_heads=2, head_k_dim=4, head_v_dim=4, ssm_state_dtype="fp32")
    with pytest.raises(ValueError, match="invalid ssm_state_dtype 'fp8'"):
        LayerKind(type="recurrent", variant="mamba", d_inner=8, d_state=4, d_conv=4, ssm_state_dtype="fp8")


# ---- per engine release ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["ideal", "vllm@0.8", "vllm@0.16", "vllm@0.19", "vllm", "sglang", "trtllm"])
def test_nemotron_nano_keeps_an_fp32_ssm_state_everywhere(engine: str) -> None:
    """The config states float32: vLLM's NemotronHForCausalLMConfig copies it in every release read, TensorRT-LLM's
    resolve_ssm_cache_dtype reads the same key, SGLang's default is float32 anyway."""
    assert state_bytes(engine, "nemotron-3-nano-30b-a3b") == NANO_FP32


def test_trtllm_v017_keeps_the_model_dtype() -> None:
    assert state_bytes("trtllm@0.17", "nemotron-3-nano-30b-a3b") == NANO_16  # not read: as before


@pytest.mark.parametrize(
    ("engine", "dtype", "expected"),
    [
        ("ideal", None, H8B_16),  # no field: the model's bf16
        ("vllm@0.16", "fp16", H8B_16),  # getattr(hf_config, "mamba_ssm_cache_dtype", "float16")
        ("vllm@0.19", "fp16", H8B_16),
        ("vllm", "fp32", H8B_FP32),  # 0.21: DEFAULT_MAMBA_SSM_CACHE_DTYPE = "float32"
        ("trtllm", None, H8B_16),  # no field: the model's dtype
    ],
)
def test_nemotron_h_without_the_field_follows_the_release(engine: str, dtype: str | None, expected: int) -> None:
    assert ssm_dtypes(engine, "nemotron-h-8b-base-8k") == {dtype}
    assert state_bytes(engine, "nemotron-h-8b-base-8k") == expected


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        ("ideal", Q27_FP32),
        ("vllm@0.16", Q27_BF16),  # gated_delta_net_state_dtype takes no SSM dtype; no Qwen3.5 override
        ("vllm@0.19", Q27_FP32),  # Qwen3_5ForConditionalGenerationConfig: text_config mamba_ssm_dtype
        ("vllm", Q27_FP32),
        ("sglang", Q27_FP32),  # mamba2_state_dtype(config): the config's mamba_ssm_dtype
        ("trtllm", Q27_BF16),  # reads mamba_ssm_cache_dtype only, not Qwen3.5's mamba_ssm_dtype
    ],
)
def test_qwen3_5_state_per_engine_release(engine: str, expected: int) -> None:
    assert state_bytes(engine, "qwen3.5-27b") == expected


@pytest.mark.parametrize(
    ("engine", "expected"),
    [("vllm@0.16", NEXT_BF16), ("vllm", NEXT_BF16), ("sglang", NEXT_FP32), ("trtllm", NEXT_BF16)],
)
def test_qwen3_next_has_no_override(engine: str, expected: int) -> None:
    assert state_bytes(engine, "qwen3-next-80b-a3b") == expected


def test_vllm_flag_overrides_the_model_rule() -> None:
    half, full = Settings(mamba_ssm_cache_dtype="float16"), Settings(mamba_ssm_cache_dtype="float32")
    assert state_bytes("vllm", "nemotron-3-nano-30b-a3b", half) == NANO_16
    assert state_bytes("vllm@0.19", "nemotron-h-8b-base-8k", full) == H8B_FP32
    # Qwen3-Next: 0.19's gated_delta_net_state_dtype takes the flag; 0.16's does not (both states in the model's)
    assert state_bytes("vllm@0.19", "qwen3-next-80b-a3b", full) == NEXT_FP32
    assert state_bytes("vllm@0.16", "qwen3-next-80b-a3b", full) == NEXT_BF16
    assert state_bytes("vllm", "nemotron-3-nano-30b-a3b", Settings(mamba_ssm_cache_dtype="auto")) == NANO_FP32
    with pytest.raises(InvalidInput, match="invalid --mamba-ssm-cache-dtype 'bfloat16'; vLLM accepts auto"):
        setup(load_bundled("llama-3.1-8b"), H100, engine="vllm", settings=Settings(mamba_ssm_cache_dtype="bfloat16"))


def test_model_as_run_keeps_one_copy_per_spec() -> None:
    """The latency paths memoise per spec object: the same as-run copy comes back, and the spec itself where nothing
    changes."""
    spec = load_bundled("nemotron-h-8b-base-8k")
    assert get_engine("vllm").model_as_run(spec) is get_engine("vllm").model_as_run(spec)
    assert get_engine("ideal").model_as_run(spec) is spec
    dense = load_bundled("llama-3.1-8b")
    assert get_engine("vllm").model_as_run(dense) is dense


# ---- capacity: what the fp32 state costs ------------------------------------------------------------------------


def test_nano_capacity_with_the_fp32_state(cli) -> None:  # noqa: ANN001
    """vLLM 0.21 on one H100, 32K requests: 33 at once with the fp32 SSM state the config asks for, 39 with the state
    in 16 bits (the figure kvplan gave before it read the field; --mamba-ssm-cache-dtype float16 asks vLLM for it)."""
    spec = load_bundled("nemotron-3-nano-30b-a3b")
    from kvplan.capacity import capacity

    def seqs(settings: Settings) -> int:
        return capacity(setup(spec, H100, engine="vllm", settings=settings), 32_768).max_concurrent_sequences

    assert seqs(Settings()) == 33
    assert seqs(Settings(mamba_ssm_cache_dtype="float16")) == 39
    result = cli("capacity", "nemotron-3-nano-30b-a3b", "--gpu", "h100-sxm", "-c", "32k", "--mamba-ssm-cache-dtype",
                 "float16")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "--mamba-ssm-cache-dtype float16" in result.output  # the launch line repeats it


def test_cli_refuses_a_bad_flag_in_one_line(cli) -> None:  # noqa: ANN001
    bad = cli("capacity", "nemotron-3-nano-30b-a3b", "--gpu", "h100-sxm", "-c", "32k", "--mamba-ssm-cache-dtype",
              "bf16")  # fmt: skip
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines()[-1].endswith("vLLM accepts auto, float32, float16")
    other = cli("capacity", "qwen3.5-27b", "--gpu", "h200", "-c", "32k", "-e", "sglang", "--mamba-ssm-cache-dtype",
                "float32")  # fmt: skip
    assert other.exit_code == 2
    assert "--mamba-ssm-cache-dtype does not apply to engine 'sglang'" in other.output


# ---- transformers: what its cache holds -------------------------------------------------------------------------


def test_transformers_cache_keeps_a_float32_state_whatever_the_config_says() -> None:
    """A two-block Nemotron-H skeleton whose config asks for a float16 SSM cache: transformers 5.24.0's cache still
    holds the conv state in the model's bf16 and the SSM state in float32 (no modeling file reads the key), which
    kvplan.engines.transformers (RECURRENT_STATE_DTYPE) and its ssm_state_dtype rule say."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tests.skeleton import build

    config = transformers.NemotronHConfig(
        hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=64,
        layers_block_type=["mamba", "attention"], mamba_num_heads=4, mamba_head_dim=16, n_groups=2,
        ssm_state_size=8, conv_kernel=4, chunk_size=8, vocab_size=128, mamba_ssm_cache_dtype="float16",
        use_mamba_kernels=False, pad_token_id=None, bos_token_id=None, eos_token_id=None,
    )  # fmt: skip
    model = build(config)
    with torch.no_grad():
        cache = model(input_ids=torch.randint(0, 128, (1, 8)), use_cache=True).cache
    layer = cache.layers[0]
    conv, ssm = layer.conv_states[0], layer.recurrent_states[0]
    # conv over d_inner + 2 x groups x d_state = 64 + 2 x 2 x 8 = 96 channels, d_conv columns; SSM [4, 16, 8]
    assert (tuple(conv.shape), conv.dtype) == ((1, 96, 4), torch.bfloat16)
    assert (tuple(ssm.shape), ssm.dtype) == ((1, 4, 16, 8), torch.float32)
    spec = spec_from_hf_config(config.to_dict(), origin="skeleton").spec
    assert spec.kind("mamba2").ssm_state_dtype == "fp16"  # what the config states
    as_run = get_engine("transformers").model_as_run(spec)
    assert {k.ssm_state_dtype for k in as_run.layers.kinds.values() if k.type == "recurrent"} == {"fp32"}
    from kvplan.engines.transformers import transformers_cache_plan

    # 96 x 4 x 2 B + 512 x 4 B = 768 + 2,048 = 2,816 B: exactly the tensors above
    assert transformers_cache_plan(spec, "bf16").layers[0].state_bytes == 2_816
    assert conv.numel() * conv.element_size() + ssm.numel() * ssm.element_size() == 2_816


# ---- decode: the state each step reads and writes -----------------------------------------------------------------


def test_decode_reads_the_state_the_engine_keeps() -> None:
    """A decode step reads and writes every recurrent layer's state once (kvplan.latency._recurrent_decode_s:
    2 x state bytes / (bandwidth x attn_decode_mem_eff) + launches). Qwen3.5 27B on one H200 under vllm@0.19, one
    sequence: the fp32 SSM state its config asks for is 48 x 786,432 x 2 B = 75,497,472 B more than a bf16 one, so the
    step is 2 x 75,497,472 / (4,800 GB/s x 0.8422) = 37.35 us longer; nothing else in the step moves."""
    from kvplan.cost import phase_cost
    from kvplan.engines.vllm import CALIBRATION

    gpu = resolve_gpu("h200")
    fp32 = load_bundled("qwen3.5-27b")
    data = fp32.model_dump(exclude_none=True)
    data["layers"]["kinds"]["linear"].pop("ssm_state_dtype")
    bf16 = type(fp32).model_validate(data)

    def step_s(spec) -> float:  # noqa: ANN001
        return phase_cost(spec, gpu, 2048, phase="decode", engine="vllm@0.19").time_s

    extra = 2 * 48 * 786_432 * 2 / (gpu.bandwidth_gbps * 1e9 * CALIBRATION.attn_decode_mem_eff)
    assert gpu.bandwidth_gbps == 4800 and CALIBRATION.attn_decode_mem_eff == 0.8422
    assert step_s(fp32) - step_s(bf16) == pytest.approx(extra, rel=1e-9)
    assert extra == pytest.approx(37.35e-6, abs=0.01e-6)


# ---- the conv state: vLLM --mamba-cache-dtype, llama.cpp's F32 ---------------------------------------------------


def test_vllm_mamba_cache_dtype_sets_the_conv_state_and_an_auto_ssm_state() -> None:
    """--mamba-cache-dtype float32 (MambaStateDtypeCalculator: conv state in it; the SSM state too where its own flag
    and the model's rule leave "auto"). Qwen3-Next under 0.16: both states fp32, 36 x (24,576 x 4 + 524,288 x 4) =
    36 x 2,195,456 = 79,036,416. Nemotron-H 8B under 0.19: conv fp32, SSM still float16 (NemotronHForCausalLMConfig
    sets it while the SSM flag is auto): 24 x (30,720 x 4 + 1,048,576 x 2) = 24 x 2,220,032 = 53,280,768."""
    full = Settings(mamba_cache_dtype="float32")
    assert state_bytes("vllm@0.16", "qwen3-next-80b-a3b", full) == 79_036_416
    assert state_bytes("vllm@0.19", "nemotron-h-8b-base-8k", full) == 53_280_768
    with pytest.raises(InvalidInput, match="invalid --mamba-cache-dtype 'fp8'; vLLM accepts auto, float32, float16"):
        setup(load_bundled("llama-3.1-8b"), H100, engine="vllm", settings=Settings(mamba_cache_dtype="fp8"))


def test_llamacpp_keeps_both_states_in_f32() -> None:
    """type_r = type_s = GGML_TYPE_F32: Qwen3-Next 36 x 2,195,456 = 79,036,416 (the figure its capacity layout sizes
    too, kvplan.engines.llamacpp._stage: 4 B x (conv + state) elements)."""
    assert state_bytes("llamacpp", "qwen3-next-80b-a3b") == 79_036_416
    from kvplan.engines.llamacpp import _stage

    spec = load_bundled("qwen3-next-80b-a3b")
    stage = _stage(spec, cache_plan(spec, "bf16"))
    assert sum(n * c.state_bytes for n, c in stage.groups) == 79_036_416


# ---- every command that sizes or reads the state takes the flags (kvplan/cli/common.py) ---------------------------


def _json(cli, *args: str):  # noqa: ANN001, ANN202
    result = cli(*args, "-f", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_estimate_sizes_the_state_in_the_flags_dtype(cli) -> None:  # noqa: ANN001
    """The ideal layout (estimate, capacity -e ideal): Nemotron-H 8B at 4K, 16,384 B a token x 4,096 = 67,108,864 B of
    KV plus the state. No flag: bf16 conv and SSM, 51,806,208. --mamba-ssm-cache-dtype float32: the SSM state in fp32,
    102,137,856. --mamba-cache-dtype float32: the conv state in fp32 and the SSM state with it (the config states
    none), 24 x (30,720 + 1,048,576) x 4 B = 103,612,416. Nano's config states an fp32 SSM state; the flag's float16
    overrides it (24,965,120)."""

    def seq(model: str, *flags: str) -> int:
        return _json(cli, "estimate", model, "-c", "4k", *flags)[0]["kv_bytes_per_sequence"]

    kv = 16_384 * 4_096
    assert seq("nemotron-h-8b-base-8k") == kv + H8B_16
    assert seq("nemotron-h-8b-base-8k", "--mamba-ssm-cache-dtype", "float32") == kv + H8B_FP32
    assert seq("nemotron-h-8b-base-8k", "--mamba-cache-dtype", "float32") == kv + 103_612_416
    nano_kv = 6_144 * 4_096
    assert seq("nemotron-3-nano-30b-a3b") == nano_kv + NANO_FP32
    assert seq("nemotron-3-nano-30b-a3b", "--mamba-ssm-cache-dtype", "float16") == nano_kv + NANO_16
    # capacity -e ideal sizes the same layout
    assert state_bytes("ideal", "nemotron-h-8b-base-8k", Settings(mamba_cache_dtype="float32")) == 103_612_416


def test_cost_reads_the_state_in_the_flags_dtype(cli) -> None:  # noqa: ANN001
    """A decode step reads and writes one request's state once each (kvplan.cost.step_bytes): Nano at batch 1 with
    the SSM state in float16 instead of its config's fp32 moves 2 x (49,082,368 - 24,965,120) = 48,234,496 B fewer,
    and the calibrated step is shorter (vLLM, whose flag it is; the roofline counts the same bytes)."""

    def decode(*flags: str) -> dict:
        rows = _json(cli, "cost", "nemotron-3-nano-30b-a3b", "--gpu", "h100-sxm", "-c", "4k", *flags)
        return next(r for r in rows if r["phase"] == "decode")

    base, half = decode(), decode("--mamba-ssm-cache-dtype", "float16")
    assert base["bytes_total"] - half["bytes_total"] == 2 * (NANO_FP32 - NANO_16)
    assert half["time_s"] < base["time_s"]
    roof = decode("--latency", "roofline", "--mamba-ssm-cache-dtype", "float16")
    assert roof["bytes_total"] == half["bytes_total"]
    # the conv state: 23 x 18,432 elements x 2 B more each way in fp32
    conv = decode("--mamba-cache-dtype", "float32")
    assert conv["bytes_total"] - base["bytes_total"] == 2 * 23 * 18_432 * 2


def test_plan_sizes_and_runs_the_state_in_the_flags_dtype(cli) -> None:  # noqa: ANN001
    """plan --users: one H100, bf16 weights and KV, 32K requests: 33 sequences with Nano's fp32 SSM state, 39 with
    --mamba-ssm-cache-dtype float16 (the capacity figures above), the launch line repeating the flag. plan --rate: the
    same configuration's decode steps read the smaller state, so its TPOT is shorter."""
    args = ("plan", "nemotron-3-nano-30b-a3b", "--gpus", "h100-sxm", "--weights-dtype", "bf16", "--kv-dtype", "bf16")

    def one_gpu(doc: dict) -> dict:
        return next(p for p in doc["plans"] if p["gpus"] == 1)

    users = (*args, "--users", "16", "-c", "32k")
    assert one_gpu(_json(cli, *users))["sequences_per_replica"] == 33
    half = one_gpu(_json(cli, *users, "--mamba-ssm-cache-dtype", "float16"))
    assert half["sequences_per_replica"] == 39
    assert "--mamba-ssm-cache-dtype float16" in half["launch_command"]
    rate = (*args, "--rate", "2", "--input", "4k", "--output", "512", "--tpot", "100ms")

    def tpot(*flags: str) -> float:
        return next(p for p in _json(cli, *rate, *flags)["plans"] if p["tp"] == 2 and p["dp"] == 1
                    and not p["ep_ranks"])["tpot_s"]  # fmt: skip

    assert tpot("--mamba-ssm-cache-dtype", "float16") < tpot()


@pytest.mark.parametrize(
    "command",
    [
        ("estimate", "nemotron-3-nano-30b-a3b"),
        ("cost", "nemotron-3-nano-30b-a3b", "--gpu", "h100-sxm"),
        ("plan", "nemotron-3-nano-30b-a3b", "--users", "4", "-c", "4k", "--gpus", "h100-sxm"),
        ("plan", "nemotron-3-nano-30b-a3b", "--rate", "1", "--gpus", "h100-sxm"),
    ],
)
@pytest.mark.parametrize("flag", ["--mamba-ssm-cache-dtype", "--mamba-cache-dtype"])
def test_every_command_refuses_a_bad_value_in_one_line(cli, command: tuple[str, ...], flag: str) -> None:  # noqa: ANN001
    bad = cli(*command, flag, "bf16")
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines() == [
        f"kvplan: error: invalid {flag} 'bf16'; vLLM accepts auto, float32, float16"
    ]


@pytest.mark.parametrize(
    ("command", "engine"),
    [
        (("cost", "qwen3.5-27b", "--gpu", "h200", "--engine", "trtllm"), "trtllm"),
        (("plan", "qwen3.5-27b", "--users", "4", "-c", "4k", "--gpus", "h200", "-e", "sglang"), "sglang"),
        (("plan", "qwen3.5-27b", "--rate", "1", "--gpus", "h200", "-e", "vllm@0.8"), "vllm@0.8"),
    ],
)
def test_another_engine_refuses_the_flags(cli, command: tuple[str, ...], engine: str) -> None:  # noqa: ANN001
    other = cli(*command, "--mamba-ssm-cache-dtype", "float32")
    assert other.exit_code == 2
    assert f"--mamba-ssm-cache-dtype does not apply to engine '{engine}'" in other.output


def test_cost_training_refuses_the_flags(cli) -> None:  # noqa: ANN001
    result = cli("cost", "nemotron-3-nano-30b-a3b", "--training", "-c", "4k", "--mamba-cache-dtype", "float32")
    assert result.exit_code == 2
    assert "a --training step holds none" in result.output

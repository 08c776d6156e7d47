"""One answer everywhere (issue 12): every command that reports a quantity agrees with the others
and with the library, over a grid of models x GPUs x TP/PP x KV dtypes, or they all refuse alike.

Quantities: KV per sequence, KV per GPU, the KV pool, weights per GPU, the longest context and
"fits". Commands: ``estimate``, ``capacity -e ideal``, ``plan -e ideal``, ``cost``, ``show`` and
the library functions behind them (names or objects).
"""

import json
from itertools import product

import pytest

from kvplan.capacity import capacity, setup
from kvplan.catalog import load_bundled
from kvplan.checks import beyond_trained_context
from kvplan.describe import describe
from kvplan.errors import InvalidInput
from kvplan.estimator import estimate
from kvplan.hardware import resolve_gpu
from kvplan.memory import cache_plan, kv_bytes_per_sequence
from kvplan.params import weight_bytes_per_gpu
from kvplan.planner import plan

# Full attention, 10 KV heads (TP 4 refused), sliding windows, MLA, recurrent + full, MoE.
MODELS = ["llama-3.1-8b", "phi-4", "gemma-3-27b", "deepseek-v2-lite", "qwen3-next-80b-a3b", "mixtral-8x7b"]
GPUS = ["h100-sxm", "l4", "a100-40gb"]
SPLITS = [(1, 1), (2, 1), (4, 1), (2, 2), (8, 1)]
KV = ["bf16", "fp8"]
LENGTHS = [4096, 32768, 1 << 20]  # 1M is past every trained context here but qwen3-next's 256K
BATCH = 8


def _library(model: str, gpu: str, tp: int, pp: int, kv: str):
    """``(estimate rows, capacity answers)`` or the one message both refuse with."""
    try:
        rows = estimate(model, LENGTHS, batch=BATCH, kv_dtype_name=kv, tp=tp, pp=pp, gpu=gpu)
    except InvalidInput as exc:
        with pytest.raises(InvalidInput) as again:
            setup(model, gpu, engine="ideal", tp=tp, pp=pp, kv_dtype_name=kv)
        assert str(again.value) == str(exc)
        return str(exc)
    s = setup(model, gpu, engine="ideal", tp=tp, pp=pp, kv_dtype_name=kv)
    return rows, [capacity(s, n, batch=BATCH, suggest=False) for n in LENGTHS]


@pytest.mark.parametrize("model", MODELS)
def test_library_quantities_agree_over_the_grid(model):
    spec = load_bundled(model)
    checked = refused = 0
    for gpu, (tp, pp), kv in product(GPUS, SPLITS, KV):
        got = _library(model, gpu, tp, pp, kv)
        if isinstance(got, str):
            refused += 1
            continue
        rows, answers = got
        weights = weight_bytes_per_gpu(spec, tp=tp, pp=pp)
        for row, cap in zip(rows, answers, strict=True):
            where = (model, gpu, tp, pp, kv, row.context)
            # KV per sequence: estimate == the library function == the cache plan.
            assert row.kv_bytes_per_sequence == kv_bytes_per_sequence(spec, row.context, kv, tp=tp, pp=pp), where
            # Usable memory: one figure.
            assert row.gpu_memory_bytes == cap.breakdown["device_total_bytes"], where
            # Weights per GPU: capacity's busiest stage holds the most weights, as weight_bytes_per_gpu says.
            assert cap.breakdown["weights_bytes"] == weights, where
            # Fits: one rule (memory and the trained context) for estimate and capacity -e ideal.
            beyond = beyond_trained_context(spec, row.context)
            batch_fits = cap.max_context_for_batch is not None and cap.max_context_for_batch >= row.context
            assert row.fits == (batch_fits and beyond is None), where
            assert row.note == beyond and (cap.reason == beyond if beyond else True), where
            if pp == 1:
                # The pool is what is left after the weights; the headroom is the pool less the batch.
                left = row.gpu_memory_bytes - row.weights_bytes_per_gpu  # negative: the weights alone do not fit
                assert cap.available_kv_bytes == left and cap.kv_pool_bytes == max(0, left), where
                assert row.headroom_bytes == left - row.kv_bytes_per_gpu, where
                assert row.kv_bytes_per_gpu == BATCH * cache_plan(spec, kv, tp=tp).bytes_per_sequence_per_gpu(
                    row.context
                )
            checked += 1
        # Longest context: estimate fits one sequence there and (below the trained context) not one more.
        one = answers[0].max_context
        if one:
            assert estimate(spec, [one], kv_dtype_name=kv, tp=tp, pp=pp, gpu=gpu)[0].fits, (gpu, tp, pp, kv)
        if one < spec.max_position_embeddings:
            assert not estimate(spec, [one + 1], kv_dtype_name=kv, tp=tp, pp=pp, gpu=gpu)[0].fits, (gpu, tp, pp, kv)
    assert checked > 0
    if model == "phi-4":
        assert refused >= len(GPUS) * len(KV)  # TP 4 and TP 8 refused on every GPU (10 KV heads)


@pytest.mark.parametrize("model", ["llama-3.1-8b", "gemma-3-27b", "phi-4"])
def test_plan_ideal_agrees_with_estimate(model):
    # plan -e ideal serves BATCH users on one replica of (tp, pp) exactly where estimate says the batch fits.
    spec = load_bundled(model)
    for gpu, length in product(["h100-sxm", "l4"], LENGTHS):
        rows = plan(spec, [gpu], users=BATCH, context=length, engine="ideal", kv_dtypes=["bf16"],
                    weights_dtypes=[spec.dtype], max_gpus=64)  # fmt: skip
        one_replica = {(r.tp, r.pp) for r in rows if r.replicas == 1}
        for tp, pp in [(1, 1), (2, 1), (4, 1), (8, 1)]:
            try:
                est = estimate(spec, [length], batch=BATCH, tp=tp, pp=pp, gpu=gpu)[0]
            except InvalidInput:
                assert (tp, pp) not in one_replica
                continue
            assert ((tp, pp) in one_replica) == est.fits, (model, gpu, length, tp, pp)


def _cli_json(cli, *args):
    result = cli(*args, "-f", "json")
    if result.exit_code:
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        return result.stderr.strip()
    return json.loads(result.stdout)


CLI_GRID = [
    (m, g, tp, pp)
    for m, (g, tp, pp) in product(
        ["llama-3.1-8b", "phi-4", "gemma-3-27b", "qwen3-next-80b-a3b"],
        [("h100-sxm", 1, 1), ("l4", 2, 1), ("h100-sxm", 4, 1), ("a100-40gb", 2, 2)],
    )
]


@pytest.mark.parametrize(("model", "gpu", "tp", "pp"), CLI_GRID)
def test_cli_and_library_agree(cli, model, gpu, tp, pp):
    common = ["--tp", str(tp), "--pp", str(pp), "--kv-dtype", "fp8"]
    lengths = ",".join(str(n) for n in LENGTHS)
    est = _cli_json(cli, "estimate", model, "-c", lengths, "-b", str(BATCH), "--gpu", gpu, *common)
    caps = [
        _cli_json(cli, "capacity", model, "-c", str(n), "--gpu", gpu, "-e", "ideal", "--batch", str(BATCH), *common)
        for n in LENGTHS
    ]
    cost = _cli_json(cli, "cost", model, "-c", "4096", "--gpu", gpu, "--tp", str(tp)) if pp == 1 else None
    lib = _library(model, gpu, tp, pp, "fp8")
    if isinstance(lib, str):  # refused: every command says the same one line
        assert est == f"kvplan: error: {lib}"
        assert all(c == est for c in caps)
        assert cost is None or cost == est
        return
    rows, answers = lib
    assert est == [r.model_dump() for r in rows]
    for c, a in zip(caps, answers, strict=True):
        for key in ("fits", "kv_pool_bytes", "max_context", "max_context_for_batch", "max_concurrent_sequences"):
            assert c[key] == getattr(a, key), key
        assert c["breakdown"] == a.breakdown
    spec = load_bundled(model)
    if cost is not None and spec.moe is None:  # MoE decode reads the active experts only, not what is resident
        decode = next(r for r in cost if r["phase"] == "decode")
        assert decode["bytes_weights"] == weight_bytes_per_gpu(spec, tp=tp)


def test_show_agrees_with_estimate():
    for model in MODELS:
        spec = load_bundled(model)
        info = describe(spec)
        row = estimate(model, [4096], kv_dtype_name="bf16")[0]
        assert info["kv_bytes_per_token_bf16"] == row.kv_bytes_per_token, model
        per_kind = sum(k["layers"] * k["bytes_per_token_per_layer"] for k in info["layer_kinds"])
        assert per_kind == row.kv_bytes_per_token, model


def test_gpu_names_and_objects_give_the_same_answers():
    for gpu in GPUS:
        by_name = capacity(setup("gemma-3-27b", gpu, engine="ideal"), 8192)
        by_object = capacity(setup(load_bundled("gemma-3-27b"), resolve_gpu(gpu), engine="ideal"), 8192)
        assert by_name == by_object


def test_estimate_per_gpu_columns_describe_one_gpu():
    # gemma-3-27b at PP 3: stage 0 holds the most weights (the embedding), stage 1 the most KV (more
    # global layers). The busiest GPU's columns add up to its total; the old total (largest weights +
    # largest KV, from different stages) was 1,065,353,216 B too high at 128K and disagreed with
    # capacity -e ideal near the limit.
    from kvplan.params import weight_bytes_per_stage

    length = 131072
    row = estimate("gemma-3-27b", [length], pp=3, gpu="h100-sxm")[0]
    weights = weight_bytes_per_stage("gemma-3-27b", pp=3)
    kv = [st.bytes_at(length) for st in cache_plan("gemma-3-27b", pp=3).stages]
    assert row.total_bytes_per_gpu == max(w + k for w, k in zip(weights, kv, strict=True))
    assert row.total_bytes_per_gpu == row.weights_bytes_per_gpu + row.kv_bytes_per_gpu
    assert max(weights) + max(kv) - row.total_bytes_per_gpu == 1_065_353_216

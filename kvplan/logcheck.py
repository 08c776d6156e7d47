"""``kvplan check-log``: read an engine's startup log and compare its memory figures with kvplan's.

The parser knows the lines vLLM (V0 and V1), SGLang and llama.cpp print at startup (the formats
in shared/reference/landscape.md section 2 and engine_logs.json). It extracts the model, the
flags, and the engine's own figures, then runs kvplan twice:

- *given*: the engine's logged KV budget fed back (vLLM ``--kv-cache-memory`` style), so the
  token, block and concurrency figures can be compared exactly;
- *predicted*: kvplan's own budget from scratch (weights, activations, overheads).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvplan.errors import InvalidInput
from kvplan.units import GIB, MIB

_NUM = r"(-?[\d,]*\.?\d+)"


@dataclass
class LogFacts:
    """What a log says. Sizes in bytes (GiB as logged x 2^30), counts as ints."""

    engine: str
    model: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)


def _f(text: str) -> float:
    return float(text.replace(",", ""))


def detect_engine(text: str) -> str:
    if "llama_kv_cache" in text or "llama_context" in text or "llama_model_loader" in text:
        return "llamacpp"
    if "KV Cache is allocated" in text or "Load weight end" in text or "max_total_num_tokens" in text:
        return "sglang"
    if "vllm" in text.lower() or "KV cache" in text or "GPU blocks" in text:
        return "vllm"
    raise InvalidInput("cannot tell which engine wrote this log; pass --engine vllm|sglang|llamacpp")


def parse_log(text: str, engine: str | None = None) -> LogFacts:
    engine = engine or detect_engine(text)
    parser = {"vllm": _parse_vllm, "sglang": _parse_sglang, "llamacpp": _parse_llamacpp}.get(engine)
    if parser is None:
        raise InvalidInput(f"unknown log engine {engine!r}; expected vllm, sglang or llamacpp")
    return parser(text)


_VLLM_FIGURES = {
    "weights": [r"Model loading took {n} ?GiB", r"Loading model weights took {n} ?GB", r"model weights take {n} ?GiB",
                r"weights? only tooks? {n} ?GB"],
    "available_kv": [r"Available KV cache memory: {n} ?GiB", r"reserved for KV Cache is(?: only)? {n} ?GiB",
                     r"kv_cache_size={n} ?GiB"],
    "tokens": [r"GPU KV cache size: {n} tokens", r"stored in KV cache \({n}\)"],
    "blocks": [r"num_gpu_blocks is: {n}", r"# (?:GPU|CUDA) blocks: {n}", r"GPU blocks: {n}"],
    "total": [r"Free memory on device \({n}/{n2} ?GiB\)", r"total_gpu_memory \({n} ?GiB\)",
              r"total_gpu_memory={n} ?GiB"],
    "activation": [r"{n} ?GiB for peak activation", r"activation peak memory takes {n} ?GiB"],
    "non_torch": [r"{n} ?GiB for non-torch memory", r"non_torch_memory takes {n} ?GiB", r"non_torch_memory={n} ?GiB"],
    "cuda_graph": [r"{n} ?GiB for CUDAGraph memory", r"Graph capturing finished in \d+ secs?, took {n} ?GiB"],
}  # fmt: skip


def _search(patterns: list[str], text: str) -> float | None:
    for p in patterns:
        rx = p.replace("{n2}", _NUM).replace("{n}", _NUM)
        m = re.search(rx, text)
        if m:
            # "Free memory on device (free/total)": the total is the second number.
            return _f(m.group(m.lastindex))
    return None


def _parse_vllm(text: str) -> LogFacts:
    facts = LogFacts("vllm")
    for key, pats in _VLLM_FIGURES.items():
        v = _search(pats, text)
        if v is not None:
            facts.figures[key] = v
    m = re.search(r"Maximum concurrency for {n} tokens per request: {n}x".replace("{n}", _NUM), text)
    if m:
        facts.flags["max_model_len"] = int(_f(m.group(1)))
        facts.figures["concurrency"] = _f(m.group(2))
    m = re.search(r"Desired GPU memory utilization is \({n},".replace("{n}", _NUM), text)
    if m:
        facts.flags["gpu_memory_utilization"] = _f(m.group(1))
    m = re.search(r"non-default args: (\{.*\})", text)
    if m:
        try:
            args = ast.literal_eval(m.group(1))
        except (ValueError, SyntaxError):
            args = {}
        facts.model = args.get("model") or args.get("model_tag")
        for k in ("max_model_len", "tensor_parallel_size", "pipeline_parallel_size", "gpu_memory_utilization",
                  "kv_cache_dtype", "max_num_batched_tokens", "max_num_seqs", "block_size"):  # fmt: skip
            if k in args:
                facts.flags[k] = args[k]
    m = re.search(r"vllm serve\s+(.*)", text)
    if m:
        _serve_flags(m.group(1), facts)
    return facts


def _serve_flags(line: str, facts: LogFacts) -> None:
    tokens = line.replace("=", " ").split()
    names = {"--tensor-parallel-size": "tensor_parallel_size", "--tensor_parallel_size": "tensor_parallel_size",
             "-tp": "tensor_parallel_size", "--gpu-memory-utilization": "gpu_memory_utilization",
             "--gpu_memory_utilization": "gpu_memory_utilization", "--max-model-len": "max_model_len",
             "--pipeline-parallel-size": "pipeline_parallel_size", "-pp": "pipeline_parallel_size"}  # fmt: skip
    for i, tok in enumerate(tokens):
        if tok in names and i + 1 < len(tokens):
            facts.flags[names[tok]] = ast.literal_eval(tokens[i + 1])
        elif not tok.startswith("-") and facts.model is None and "/" in tok:
            facts.model = tok


def _parse_sglang(text: str) -> LogFacts:
    facts = LogFacts("sglang")
    pats = {
        "free_before_load": r"Load weight begin\. avail mem={n} ?GB",
        "free_after_load": r"Load weight end\..*?avail mem={n} ?GB",
        "weights": r"Load weight end\..*?mem usage={n} ?GB",
        "tokens": r"KV Cache is allocated\. #tokens: {n}",
        "k_size": r"K size: {n} ?GB",
        "v_size": r"V size: {n} ?GB",
        "kv_size": r"KV size: {n} ?GB",
        "pool_end_free": r"Memory pool end\. avail mem={n} ?GB",
        "max_total_num_tokens": r"max_total_num_tokens={n}",
    }
    for key, p in pats.items():
        m = re.search(p.replace("{n}", _NUM), text)
        if m:
            facts.figures[key] = _f(m.group(1))
    m = re.search(r"context_len=(\d+)", text)
    if m:
        facts.flags["context_length"] = int(m.group(1))
    m = re.search(r"max_running_requests=(\d+)", text)
    if m:
        facts.flags["max_running_requests"] = int(m.group(1))
    m = re.search(r"chunked_prefill_size=(\d+)", text)
    if m:
        facts.flags["chunked_prefill_size"] = int(m.group(1))
    m = re.search(r"TP(\d+)\]", text)
    tps = [int(x) for x in re.findall(r"TP(\d+)\]", text)]
    if m and tps:
        facts.flags.setdefault("tp_seen", max(tps) + 1)
    m = re.search(r"--model(?:-path)?[ =](\S+)", text)
    if m:
        facts.model = m.group(1)
    m = re.search(r"--tp(?:-size)?[ =](\d+)", text)
    if m:
        facts.flags["tp"] = int(m.group(1))
    return facts


_LLAMA_CACHE = re.compile(
    r"llama_kv_cache: size = \s*([\d.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers,\s*(\d+)/(\d+) seqs\), "
    r"K \((\w+)\):\s*([\d.]+) MiB, V \((\w+)\):\s*([\d.]+) MiB"
)


def _parse_llamacpp(text: str) -> LogFacts:
    """Every ``llama_kv_cache: size = ...`` line, in order; a SWA line follows its run's main line."""
    facts = LogFacts("llamacpp")
    for key in ("n_ctx", "n_ubatch", "n_seq_max"):
        m = re.search(key + r"\s*=\s*(\d+)", text)
        if m:
            facts.flags[key] = int(m.group(1))
    m = re.search(r"kv_unified\s*=\s*(true|false)", text)
    if m:
        facts.flags["kv_unified"] = m.group(1) == "true"
    caches = []
    swa_next = False
    for line in text.splitlines():
        if "creating     SWA KV cache" in line or "creating SWA KV cache" in line:
            swa_next = True
        m = _LLAMA_CACHE.search(line)
        if m:
            caches.append({"swa": swa_next, "mib": float(m.group(1)), "cells": int(m.group(2)),
                           "layers": int(m.group(3)), "seqs": int(m.group(4)), "streams": int(m.group(5)),
                           "type": m.group(6)})  # fmt: skip
            swa_next = False
    facts.flags["caches"] = caches
    facts.figures["kv_mib"] = sum(c["mib"] for c in caches)
    m = re.search(r"general\.name\s+str\s+=\s+(.+)", text)
    if m:
        facts.model = m.group(1).strip()
    return facts


# ---- resolve model and GPU --------------------------------------------------------------------

_SUFFIXES = ("-instruct", "-chat", "-it", "-hf", "-base", "-fp8", "-gguf")


def find_spec(model: str | None):  # noqa: ANN201
    """The bundled spec for a Hugging Face repo id or a local path, or None."""
    from kvplan.catalog import all_bundled, bundled_names, load_bundled

    if not model:
        return None
    base = model.rstrip("/").split("/")[-1].lower().replace("meta-llama-", "llama-").removeprefix("meta-")
    base = base.split(":")[0]
    for _ in range(3):
        for suffix in _SUFFIXES:
            base = base.removesuffix(suffix)
    if base in bundled_names():
        return load_bundled(base)
    for spec in all_bundled():
        if f"/{model.lower()}/" in spec.source.lower() + "/":
            return spec
    return None


def guess_gpu(total_bytes: int | None):  # noqa: ANN201
    """The catalog GPU whose CUDA-visible memory is nearest the logged total (within 2%)."""
    from kvplan.engines import usable_memory_bytes
    from kvplan.hardware import bundled_gpus

    if not total_bytes:
        return None
    best = min(bundled_gpus().values(), key=lambda g: abs(usable_memory_bytes(g) - total_bytes))
    return best if abs(usable_memory_bytes(best) - total_bytes) <= 0.02 * total_bytes else None


# ---- compare ----------------------------------------------------------------------------------


@dataclass
class CheckResult:
    engine: str
    model: str | None
    gpu: str | None
    flags: dict[str, Any]
    logged: dict[str, float]
    rows: list[dict[str, str]]
    given: dict[str, Any] | None = None
    predicted: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def check_file(
    path: Path,
    *,
    engine: str | None = None,
    model: str | None = None,
    gpu: str | None = None,
    weights_dtype: str | None = None,
    tp: int | None = None,
) -> CheckResult:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InvalidInput(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    return check_text(text, engine=engine, model=model, gpu=gpu, weights_dtype=weights_dtype, tp=tp)


def check_text(
    text: str,
    *,
    engine: str | None = None,
    model: str | None = None,
    gpu: str | None = None,
    weights_dtype: str | None = None,
    tp: int | None = None,
) -> CheckResult:
    from kvplan.catalog import resolve_model
    from kvplan.hardware import resolve_gpu

    facts = parse_log(text, engine)
    if tp is not None:
        facts.flags["tp"] = facts.flags["tensor_parallel_size"] = tp
    spec = resolve_model(model) if model else find_spec(facts.model)
    notes = []
    if spec is None:
        notes.append(f"model {facts.model!r} is not a bundled spec; pass --model to compare")
    total = facts.figures.get("total")
    gpu_obj = resolve_gpu(gpu) if gpu else guess_gpu(int(total * GIB) if total else None)
    if gpu_obj is None and facts.engine != "llamacpp":
        notes.append("GPU not identified from the log; pass --gpu for the from-scratch prediction")
    result = CheckResult(facts.engine, spec.name if spec else facts.model, gpu_obj.name if gpu_obj else None,
                         facts.flags, facts.figures, [], notes=notes)  # fmt: skip
    if spec is None:
        result.rows = [
            {"term": k, "logged": _fmt(v), "predicted": "-", "difference": "-"} for k, v in facts.figures.items()
        ]
        return result
    facts.flags.setdefault("weights_dtype", weights_dtype)
    compare = {"vllm": _compare_vllm, "sglang": _compare_sglang, "llamacpp": _compare_llamacpp}[facts.engine]
    compare(facts, spec, gpu_obj, result)
    return result


def _fmt(v: float | int | None, unit: str = "") -> str:
    if v is None:
        return "-"
    if unit == "GiB":
        return f"{v:,.2f} GiB"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.2f}"
    return f"{int(v):,}"


def _row(term: str, logged: float | None, predicted: float | None, unit: str = "") -> dict[str, str]:
    diff = "-"
    if logged is not None and predicted is not None:
        d = predicted - logged
        if unit != "GiB" and float(d).is_integer():
            d = int(d)
        pct = f" ({d / logged:+.1%})" if logged else ""
        diff = (f"{d:+,.2f} GiB" if unit == "GiB" else f"{d:+,.2f}" if isinstance(d, float) else f"{d:+,}") + pct
    return {
        "term": term,
        "logged": _fmt(logged, unit),
        "predicted": _fmt(predicted, unit),
        "difference": diff,
        "logged_value": logged,
        "predicted_value": predicted,
    }


def vllm_setup(facts: LogFacts, spec, gpu, *, weights_dtype: str | None = None, util: float | None = None):  # noqa: ANN001, ANN201
    """The kvplan setup matching a vLLM log's flags (device total taken from the log when it says)."""
    from kvplan.capacity import setup
    from kvplan.engines import Overrides, Settings

    f = facts.flags
    total = facts.figures.get("total")
    settings = Settings(
        gpu_memory_utilization=util or _float(f.get("gpu_memory_utilization")) or 0.9,
        max_num_batched_tokens=_int(f.get("max_num_batched_tokens")),
        max_num_seqs=_int(f.get("max_num_seqs")),
        block_size=_int(f.get("block_size")),
        overrides=Overrides(device_memory_bytes=int(total * GIB) if total else None),
    )
    kv = f.get("kv_cache_dtype")
    kv = None if kv in (None, "auto") else kv
    return setup(spec, gpu, engine="vllm", tp=_int(f.get("tensor_parallel_size")) or 1,
                 pp=_int(f.get("pipeline_parallel_size")) or 1, kv_dtype_name=kv, weights_dtype=weights_dtype,
                 settings=settings)  # fmt: skip


def _int(v: Any) -> int | None:
    try:
        return int(str(v).split()[0]) if v is not None else None
    except ValueError:
        return None


def _float(v: Any) -> float | None:
    try:
        return float(str(v).split()[0]) if v is not None else None
    except ValueError:
        return None


def _compare_vllm(facts: LogFacts, spec, gpu, result: CheckResult) -> None:  # noqa: ANN001
    from kvplan.capacity import capacity, pool_tokens, reported_concurrency, with_kv_memory

    fig = facts.figures
    length = _int(facts.flags.get("max_model_len")) or spec.max_position_embeddings
    if gpu is None:
        from kvplan.hardware import resolve_gpu

        gpu = resolve_gpu("h100-sxm")
        result.notes.append("assuming h100-sxm for the from-scratch terms")
    s = vllm_setup(facts, spec, gpu, weights_dtype=facts.flags.get("weights_dtype"))
    rows = []
    if "available_kv" in fig:
        given = with_kv_memory(s, int(fig["available_kv"] * GIB))
        lay = given.stages[0].layout
        blocks = lay.pool_units(given.stages[0].available)
        tokens, conc = pool_tokens(given), reported_concurrency(given, length)
        result.given = {"blocks": blocks, "tokens": tokens, "concurrency": round(conc, 2)}
        rows += [
            _row("KV blocks from logged KV memory", fig.get("blocks"), blocks),
            _row("KV tokens from logged KV memory", fig.get("tokens"), tokens),
            _row(f"concurrency at {length:,} from logged KV memory", fig.get("concurrency"), round(conc, 2)),
        ]
    r = capacity(s, length, suggest=False)
    b = r.breakdown
    result.predicted = r.to_dict()
    rows += [
        _row("device total", fig.get("total"), b["device_total_bytes"] / GIB, "GiB"),
        _row("weights", fig.get("weights"), b["weights_bytes"] / GIB, "GiB"),
        _row("activation peak", fig.get("activation"), b["activation_bytes"] / GIB, "GiB"),
        _row("non-torch", fig.get("non_torch"), b["non_torch_bytes"] / GIB, "GiB"),
        _row("CUDA graphs", fig.get("cuda_graph"), b["cuda_graph_bytes"] / GIB, "GiB"),
        _row("available KV memory", fig.get("available_kv"), b["available_kv_bytes"] / GIB, "GiB"),
        _row("KV tokens (predicted budget)", fig.get("tokens"), r.kv_pool_tokens),
        _row(f"concurrency at {length:,} (predicted budget)", fig.get("concurrency"), r.engine_reported_concurrency),
    ]
    result.rows = rows


def _compare_sglang(facts: LogFacts, spec, gpu, result: CheckResult) -> None:  # noqa: ANN001
    from kvplan.memory import cache_plan

    fig = facts.figures
    tp = facts.flags.get("tp") or facts.flags.get("tp_seen") or 1
    plan = cache_plan(spec, None, tp=tp)
    cell = plan.stages[0].bytes_per_token  # SGLang cell_size: all layers, heads per rank, K and V
    rows = []
    tokens_logged = fig.get("tokens") or fig.get("max_total_num_tokens")
    if "free_after_load" in fig and ("free_before_load" in fig or "weights" in fig):
        before = fig.get("free_before_load") or fig["free_after_load"] + fig.get("weights", 0)
        from kvplan.engines import sglang_mem_fraction

        frac = sglang_mem_fraction(
            int(before * 1024), tp=tp, pp=1, chunked_prefill=facts.flags.get("chunked_prefill_size")
        )
        for label, fr in (("0.4.x TP default", _sglang_04_fraction(tp)), ("0.5.x tier heuristic", frac)):
            rest = fig["free_after_load"] - before * (1 - fr)
            rows.append(
                _row(f"KV tokens, mem_fraction_static {fr:g} ({label})", tokens_logged, int(rest * GIB // cell))
            )
    if "pool_end_free" in fig and "free_after_load" in fig and tokens_logged:
        # Memory pool = KV tokens x cell + req_to_token (int32 [max_running_requests + 1, context_len + 4]).
        pool = (fig["free_after_load"] - fig["pool_end_free"]) * GIB
        reqs, ctx = facts.flags.get("max_running_requests"), facts.flags.get("context_length")
        req_to_token = 4 * (reqs + 1) * (ctx + 4) if reqs and ctx else 0
        rows.append(_row("KV tokens from the logged pool size", tokens_logged, int((pool - req_to_token) // cell)))
    if tokens_logged and "k_size" in fig:
        rows.append(_row("K size for the logged tokens", fig["k_size"], tokens_logged * cell / 2 / GIB, "GiB"))
    rows.append(_row("cell size (bytes per token, per GPU)", None, cell))
    result.rows = rows


def _sglang_04_fraction(tp: int) -> float:
    """SGLang 0.4.x server_args: mem_fraction_static by TP size (0.88 TP1, 0.87 TP2, 0.85 TP4,
    0.81 TP8, 0.79 TP16), as engine_logs.json sglang-01/03 record."""
    return 0.79 if tp >= 16 else 0.81 if tp >= 8 else 0.85 if tp >= 4 else 0.87 if tp >= 2 else 0.88


def _compare_llamacpp(facts: LogFacts, spec, gpu, result: CheckResult) -> None:  # noqa: ANN001
    """Each logged cache run: kvplan's cells and bytes for the same n_ctx, sequences and type."""
    from kvplan.capacity import setup
    from kvplan.engines import Settings, llamacpp_pools
    from kvplan.hardware import resolve_gpu

    rows, total = [], 0
    runs = _llamacpp_runs(facts.flags.get("caches", []))
    for i, run in enumerate(runs, 1):
        main = run[0]
        kv = {"f16": "fp16", "f32": "fp32"}.get(main["type"], main["type"])
        unified = main["streams"] == 1 and main["seqs"] > 1 or bool(facts.flags.get("kv_unified"))
        n_seq = main["seqs"]
        n_ctx = main["cells"] * main["streams"]
        settings = Settings(n_ubatch=facts.flags.get("n_ubatch", 512), kv_unified=unified)
        s = setup(spec, gpu or resolve_gpu("h100-sxm"), engine="llamacpp", kv_dtype_name=kv, settings=settings)
        pools = llamacpp_pools(s.stages[0].layout, n_ctx=n_ctx, n_seq=n_seq)
        by_name = {p.name: p for p in pools}
        for logged in run:
            pool = by_name.get("SWA" if logged["swa"] else "non-SWA")
            if pool is None:
                continue
            tag = f"run {i} {'SWA' if logged['swa'] else 'KV'} ({logged['type']}, {n_seq} seq)"
            rows.append(_row(f"{tag} cells", logged["cells"], pool.cells))
            rows.append(_row(f"{tag} MiB", logged["mib"], pool.bytes / MIB))
            total += pool.bytes
    result.rows = rows
    result.given = {"kv_bytes": total}


def _llamacpp_runs(caches: list[dict]) -> list[list[dict]]:
    runs: list[list[dict]] = []
    for c in caches:
        if c["swa"] and runs:
            runs[-1].append(c)
        else:
            runs.append([c])
    return runs

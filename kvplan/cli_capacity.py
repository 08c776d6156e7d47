"""``kvplan capacity``, ``kvplan plan`` and ``kvplan check-log``: answers in an engine's terms."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kvplan import report
from kvplan.cli import (
    FormatOpt,
    KvDtypeOpt,
    ModelArg,
    PpOpt,
    TpOpt,
    WeightsDtypeOpt,
    app,
    boundary,
    check_format,
    err,
    load_model,
    out,
    positive,
)
from kvplan.errors import InvalidInput

EngineOpt = Annotated[
    str, typer.Option("--engine", "-e", help="ideal | vllm | sglang | trtllm | llamacpp | transformers")
]
SizeOpt = Optional[str]


def _settings(
    *,
    util: Optional[float],
    mem_fraction: Optional[float],
    free_fraction: Optional[float],
    block_size: Optional[int],
    mnbt: Optional[int],
    max_num_seqs: Optional[int],
    activation: SizeOpt,
    non_torch: SizeOpt,
    cuda_graph: SizeOpt,
    device_memory: SizeOpt,
    overhead: str,
    graph_estimate: bool,
    n_ubatch: int,
    mla: str = "latent",
    swa_ratio: Optional[float] = None,
):
    from kvplan.engines import Overrides, Settings
    from kvplan.units import parse_size

    def size(v: SizeOpt) -> Optional[int]:
        return parse_size(v) if v is not None else None

    for v, what in ((mnbt, "--max-num-batched-tokens"), (max_num_seqs, "--max-num-seqs"), (n_ubatch, "--ubatch")):
        if v is not None and v < 1:
            raise InvalidInput(f"invalid {what} {v!r}; expected a whole number of at least 1")
    return Settings(
        gpu_memory_utilization=util,
        mem_fraction_static=mem_fraction,
        free_gpu_memory_fraction=free_fraction,
        block_size=block_size,
        max_num_batched_tokens=mnbt,
        max_num_seqs=max_num_seqs,
        n_ubatch=n_ubatch,
        cuda_graph_estimate=graph_estimate,
        mla=mla,
        swa_full_tokens_ratio=swa_ratio,
        overrides=Overrides(
            device_memory_bytes=size(device_memory),
            activation_bytes=size(activation),
            non_torch_bytes=size(non_torch),
            cuda_graph_bytes=size(cuda_graph),
            overhead_bytes=parse_size(overhead),
        ),
    )


CAPACITY_FIELDS = [
    ("kv_pool_bytes", "bytes"),
    ("kv_pool_tokens", "int"),
    ("max_concurrent_sequences", "int"),
    ("engine_reported_concurrency", "float"),
    ("max_context", "int"),
    ("max_context_for_batch", "int"),
    ("expected_concurrency", "float"),
]


@app.command()
def capacity(
    model: ModelArg,
    gpu: Annotated[str, typer.Option(help="catalog name (see 'kvplan gpus') or a GPU YAML")],
    context: Annotated[str, typer.Option("--context", "-c", help="tokens per request, e.g. 32k")],
    engine: EngineOpt = "vllm",
    gpus: Annotated[
        Optional[int], typer.Option(help="GPUs in all (a multiple of tp x pp; the rest are replicas)")
    ] = None,
    tp: TpOpt = 1,
    pp: PpOpt = 1,
    kv_dtype: KvDtypeOpt = None,
    weights_dtype: WeightsDtypeOpt = None,
    gpu_memory_utilization: Annotated[Optional[float], typer.Option(help="vLLM fraction of memory (0, 1]")] = None,
    mem_fraction_static: Annotated[Optional[float], typer.Option(help="SGLang fraction (0, 1]")] = None,
    free_gpu_memory_fraction: Annotated[Optional[float], typer.Option(help="TensorRT-LLM fraction (0, 1]")] = None,
    max_num_batched_tokens: Annotated[Optional[int], typer.Option(help="vLLM chunk / SGLang chunked prefill")] = None,
    max_num_seqs: Annotated[Optional[int], typer.Option(help="vLLM max_num_seqs (profile batch rows)")] = None,
    block_size: Annotated[Optional[int], typer.Option(help="tokens per block (vLLM 16, TRT-LLM 32, SGLang 1)")] = None,
    kv_cache_memory: Annotated[SizeOpt, typer.Option(help="KV budget per GPU as the engine was given it")] = None,
    batch: Annotated[Optional[int], typer.Option(help="also find the longest context for this many sequences")] = None,
    lengths: Annotated[Optional[str], typer.Option(help="request-length mix, e.g. 2k,8k,32k")] = None,
    weights: Annotated[Optional[str], typer.Option(help="weights of --lengths, e.g. 0.6,0.3,0.1")] = None,
    mean: Annotated[Optional[str], typer.Option(help="mean request length (instead of --lengths)")] = None,
    activation: Annotated[SizeOpt, typer.Option(help="override the activation peak, e.g. 2GiB")] = None,
    non_torch: Annotated[SizeOpt, typer.Option(help="override non-torch memory (context, NCCL)")] = None,
    cuda_graph: Annotated[SizeOpt, typer.Option(help="override CUDA graph memory")] = None,
    device_memory: Annotated[SizeOpt, typer.Option(help="override usable device memory (CUDA total)")] = None,
    overhead: Annotated[str, typer.Option(help="extra reservation per GPU")] = "0",
    cuda_graph_estimate: Annotated[bool, typer.Option(help="vLLM >= 0.21: subtract CUDA graphs")] = False,
    ubatch: Annotated[int, typer.Option(help="llama.cpp -ub")] = 512,
    mla: Annotated[str, typer.Option(help="MLA cache: latent (engines' default) | expanded per-head K/V")] = "latent",
    swa_full_tokens_ratio: Annotated[Optional[float], typer.Option(help="SGLang SWA pool ratio (0, 1]")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """KV pool, concurrent sequences and longest context on an engine, with the launch line."""
    with boundary():
        from kvplan.capacity import capacity as run
        from kvplan.capacity import setup
        from kvplan.hardware import resolve_gpu
        from kvplan.launch import launch_command, model_ref, plan_json
        from kvplan.units import parse_length, parse_lengths, parse_size

        fmt = check_format(fmt)
        spec = load_model(model)
        settings = _settings(
            util=gpu_memory_utilization, mem_fraction=mem_fraction_static, free_fraction=free_gpu_memory_fraction,
            block_size=block_size, mnbt=max_num_batched_tokens, max_num_seqs=max_num_seqs, activation=activation,
            non_torch=non_torch, cuda_graph=cuda_graph, device_memory=device_memory, overhead=overhead,
            graph_estimate=cuda_graph_estimate, n_ubatch=ubatch, mla=mla,
            swa_ratio=swa_full_tokens_ratio,
        )  # fmt: skip
        if batch is not None:
            positive(batch, "batch")
        mix, mix_weights = _mix(lengths, weights, mean, parse_lengths, parse_length)
        s = setup(
            spec, resolve_gpu(gpu), engine=engine, tp=tp, pp=pp, gpus=gpus, kv_dtype_name=kv_dtype,
            weights_dtype=weights_dtype, settings=settings,
        )  # fmt: skip
        kv_mem = parse_size(kv_cache_memory) if kv_cache_memory is not None else None
        r = run(s, parse_length(context), batch=batch, lengths=mix, weights=mix_weights, kv_cache_memory=kv_mem)
        ref = model_ref(spec.source, spec.name)
        if fmt == "json":
            out(report.render_object(plan_json(r, model=ref), "json"))
            return
        if fmt == "csv":  # one row, every field raw; the breakdown flattened into its byte columns
            row = plan_json(r, model=ref)
            row.update(row.pop("breakdown"))
            out(report.render([row], [], "csv"))
            return
        _print_capacity(r, fmt, launch_command(r, model=ref))


def _mix(lengths, weights, mean, parse_lengths, parse_length):  # noqa: ANN001, ANN202
    from kvplan.units import split_list

    if mean is not None and lengths is not None:
        raise InvalidInput("give either --lengths or --mean, not both")
    if mean is not None:
        return [parse_length(mean)], None
    if lengths is None:
        if weights is not None:
            raise InvalidInput("--weights needs --lengths")
        return None, None
    mix = [parse_length(p) for p in split_list(lengths, "--lengths", example="2k,8k,32k")]
    if weights is None:
        return mix, None
    try:
        w = [float(x) for x in split_list(weights, "--weights", example="0.6,0.3,0.1")]
    except ValueError:
        raise InvalidInput(f"invalid weights {weights!r}; expected numbers like 0.6,0.3,0.1") from None
    return mix, w


def _print_capacity(r, fmt: str, command: str) -> None:  # noqa: ANN001
    title = (
        f"{r.model} on {r.gpus} x {r.gpu} ({r.engine} {r.engine_version}), TP {r.tp} PP {r.pp}, "
        f"KV {r.kv_dtype}, weights {r.weights_format or r.weights_dtype}, context {r.context:,} (GiB = 2^30)"
    )
    rows = [{"field": k, "value": report.human_bytes(getattr(r, k)) if kind == "bytes" else _num(getattr(r, k), kind)}
            for k, kind in CAPACITY_FIELDS if getattr(r, k) is not None]  # fmt: skip
    rows.insert(3, {"field": "fits", "value": "yes" if r.fits else "NO"})
    cols = [report.Column("field", "answer"), report.Column("value", "value")]
    out(report.render(rows, cols, fmt, title=title))
    out("")
    terms = [{"term": k.removesuffix("_bytes"), "bytes": v} for k, v in r.breakdown.items()]
    bcols = [
        report.Column("term", "per GPU"),
        report.Column("bytes", "GiB / MiB", "bytes"),
        report.Column("raw", "bytes"),
    ]
    for t in terms:
        t["raw"] = f"{t['bytes']:,}"
    out(report.render(terms, bcols, fmt, title=f"where the memory goes: {r.budget_rule}"))
    out("")
    if not r.fits:
        out(f"does not fit: {r.reason}")
        for n in r.nearest:
            out(f"  nearest that fits: {n['change']}")
        out("")
    if r.fits:
        from kvplan.launch import launch_notes

        out(f"launch: {command}")
        for note in launch_notes(r):
            out(f"  note: {note}")


def _num(value, kind: str) -> str:  # noqa: ANN001
    if kind == "float":
        return f"{value:,.2f}"
    return f"{value:,}"


# ---- plan -----------------------------------------------------------------------------------------

PLAN_COLUMNS = [
    report.Column("gpu", "GPU"),
    report.Column("gpus", "GPUs", "int"),
    report.Column("tp", "TP", "int"),
    report.Column("pp", "PP", "int"),
    report.Column("replicas", "replicas", "int"),
    report.Column("weights_dtype", "weights"),
    report.Column("kv_dtype", "KV"),
    report.Column("sequences_per_replica", "seqs / replica", "int"),
    report.Column("total_sequences", "seqs total", "int"),
    report.Column("headroom_bytes", "headroom / GPU", "bytes"),
]


@app.command()
def plan(
    model: ModelArg,
    users: Annotated[Optional[int], typer.Option(help="concurrent sequences to serve")] = None,
    context: Annotated[Optional[str], typer.Option("--context", "-c", help="tokens per sequence, e.g. 32k")] = None,
    gpus: Annotated[Optional[str], typer.Option(help="GPU types to consider, e.g. h100-sxm,a100-80gb,l4")] = None,
    rate: Annotated[Optional[float], typer.Option(help="latency targets: requests per second to serve")] = None,
    input_len: Annotated[
        str, typer.Option("--input", help="with --rate: prompt tokens, 2k or 2k:4k (mean:p90)")
    ] = "2k",
    output_len: Annotated[str, typer.Option("--output", help="with --rate: output tokens, 512 or 512:1k")] = "512",
    ttft: Annotated[Optional[str], typer.Option(help="with --rate: time to first token target, e.g. 1s")] = None,
    tpot: Annotated[Optional[str], typer.Option(help="with --rate: time per output token target, e.g. 50ms")] = None,
    percentile: Annotated[str, typer.Option(help="with --rate: targets hold for the mean | p90")] = "mean",
    disaggregated: Annotated[bool, typer.Option(help="with --rate: also size prefill/decode pools")] = False,
    engine: EngineOpt = "vllm",
    weights_dtype: Annotated[Optional[str], typer.Option(help="weight dtypes to try, e.g. bf16,fp8")] = None,
    kv_dtype: Annotated[Optional[str], typer.Option(help="KV dtypes to try, e.g. bf16,fp8")] = None,
    gpu_memory_utilization: Annotated[Optional[float], typer.Option(help="vLLM fraction (0, 1]")] = None,
    max_gpus: Annotated[int, typer.Option(help="largest GPU count to list")] = 64,
    top: Annotated[int, typer.Option(help="rows to show (0: all)")] = 20,
    fmt: FormatOpt = "table",
) -> None:
    """GPU type, count, TP and dtypes that serve N users at L tokens, fewest GPUs first."""
    with boundary():
        from kvplan.capacity import capacity as run
        from kvplan.capacity import setup
        from kvplan.engines import Settings
        from kvplan.hardware import bundled_gpus, resolve_gpu
        from kvplan.launch import launch_args, launch_command, launch_notes, model_ref
        from kvplan.planner import plan as run_plan
        from kvplan.planner import why_nothing_fits
        from kvplan.units import parse_length, split_list

        fmt = check_format(fmt)
        spec = load_model(model)
        split = lambda v: split_list(v, "dtype list", example="bf16,fp8") if v is not None else None  # noqa: E731
        if rate is not None:
            from kvplan.cli_slo import run_targets

            names = split_list(gpus, "--gpus", example="h100-sxm,h200") if gpus is not None else None
            names = names or ["h100-sxm", "h200", "b200"]  # the GPUs the latency fit covers
            opts = dict(rate=rate, input=input_len, output=output_len, ttft=ttft, tpot=tpot, percentile=percentile,
                        disaggregated=disaggregated)  # fmt: skip
            out(run_targets(spec, [resolve_gpu(g) for g in names], engine=engine, weights=split(weights_dtype),
                            kv=split(kv_dtype), opts=opts, max_gpus=max_gpus, top=top, fmt=fmt))  # fmt: skip
            return
        if users is None or context is None:
            raise InvalidInput("'kvplan plan' needs --users N --context L, or --rate R with latency targets")
        length = parse_length(context)
        chosen = (
            [resolve_gpu(g) for g in split_list(gpus, "--gpus", example="h100-sxm,l4")]
            if gpus is not None
            else list(bundled_gpus().values())
        )
        settings = Settings(gpu_memory_utilization=gpu_memory_utilization)
        memo: dict = {}
        rows = run_plan(spec, chosen, users=users, context=length, engine=engine, weights_dtypes=split(weights_dtype),
                        kv_dtypes=split(kv_dtype), settings=settings, max_gpus=max_gpus, memo=memo)  # fmt: skip
        if top < 0:
            raise InvalidInput(f"invalid --top {top!r}; expected 0 (all rows) or more")
        rows = rows[:top] if top > 0 else rows
        ref = model_ref(spec.source, spec.name)
        by_name = {g.name: g for g in chosen}  # a GPU YAML's card has no catalog name to look up again
        dicts = []
        for row in rows:
            s = setup(spec, by_name[row.gpu], engine=engine, tp=row.tp, pp=row.pp, gpus=row.gpus,
                      kv_dtype_name=row.kv_dtype,
                      weights_dtype=row.weights_dtype, settings=settings, memo=memo)  # fmt: skip
            r = run(s, length, suggest=False)
            d = row.to_dict()
            d["launch"] = launch_args(r, model=ref, sequences=-(-users // row.replicas))
            d["launch_command"] = launch_command(r, model=ref, sequences=-(-users // row.replicas))
            d["launch_notes"] = launch_notes(r)
            dicts.append(d)
        reason = None
        if not dicts:
            reason = why_nothing_fits(spec, chosen, users=users, context=length, engine=engine,
                                      kv_dtypes=split(kv_dtype), weights_dtypes=split(weights_dtype),
                                      settings=settings, max_gpus=max_gpus)  # fmt: skip
        if fmt == "json":
            doc = {"model": spec.name, "users": users, "context": length, "plans": dicts}
            if reason:
                doc["reason"] = reason
            out(report.render_object(doc, "json"))
            return
        if fmt == "csv":
            out(report.render(dicts, PLAN_COLUMNS, "csv"))
            return
        title = f"{spec.name}: {users} concurrent sequences x {length:,} tokens on {engine} (GiB = 2^30)"
        if not dicts:
            out(f"{title}\n\nnothing fits: {reason}")
            return
        out(report.render(dicts, PLAN_COLUMNS, fmt, title=title))
        out("")
        out(f"launch (first row): {dicts[0]['launch_command']}")
        for note in dicts[0].get("launch_notes", []):
            out(f"  note: {note}")


# ---- check-log ------------------------------------------------------------------------------------

CHECK_COLUMNS = [
    report.Column("term", "term"),
    report.Column("logged", "engine logged"),
    report.Column("predicted", "kvplan"),
    report.Column("difference", "difference"),
]


@app.command("check-log")
def check_log(
    file: Annotated[
        str, typer.Argument(help="an engine startup log (vLLM, SGLang, llama.cpp, TensorRT-LLM); - for stdin")
    ],
    engine: Annotated[Optional[str], typer.Option("--engine", "-e", help="vllm | sglang | llamacpp | trtllm")] = None,
    model: Annotated[Optional[str], typer.Option(help="model spec when the log does not name a bundled one")] = None,
    gpu: Annotated[Optional[str], typer.Option(help="GPU when the log does not say")] = None,
    weights_dtype: Annotated[Optional[str], typer.Option(help="checkpoint weights dtype (fp8, mxfp4, ...)")] = None,
    tp: Annotated[Optional[int], typer.Option("--tp", help="tensor parallel size when the log does not say")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Read a startup log: a failed start explained and fixed, else the engine's figures beside kvplan's."""
    with boundary():
        from kvplan.diagnose import diagnose_text
        from kvplan.logcheck import check_text

        fmt = check_format(fmt)
        text, name = _read_log(file)
        d = diagnose_text(text, engine=engine, model=model, gpu=gpu, weights_dtype=weights_dtype, tp=tp)
        if d.failed:
            for note in d.notes:
                err(f"note: {note}")
            if fmt == "json":
                out(report.render_object({"engine": d.engine, "model": d.model, "diagnosis": d.to_dict()}, "json"))
                return
            out(_render_diagnosis(d, name, fmt))
            return
        if d.engine not in ("vllm", "sglang", "llamacpp"):
            raise InvalidInput(
                f"no failed start found in this {d.engine} log; kvplan compares vllm, sglang and "
                "llamacpp startup logs term by term"
            )
        result = check_text(text, engine=d.engine, model=model, gpu=gpu, weights_dtype=weights_dtype, tp=tp)
        for note in result.notes:
            err(f"note: {note}")
        if fmt == "json":
            data = result.to_dict()
            data["diagnosis"] = d.to_dict()
            out(report.render_object(data, "json"))
            return
        flags = ", ".join(f"{k}={v}" for k, v in result.flags.items() if k != "caches" and v is not None)
        title = f"{result.engine} log {name}: model {result.model or '?'}, GPU {result.gpu or '?'}"
        title += f"\nflags read: {flags or '-'}"
        out(report.render(result.rows, CHECK_COLUMNS, fmt, title=title))


def _read_log(file: str) -> tuple[str, str]:
    """The log's text and a name for titles: a path, or ``-`` for standard input."""
    import sys

    if file == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(file).read_text(encoding="utf-8", errors="replace"), Path(file).name
    except OSError as exc:
        raise InvalidInput(f"cannot read {file!r}: {exc.strerror or exc}") from None


DIAGNOSIS_COLUMNS = [
    report.Column("term", "term"),
    report.Column("engine", "engine said"),
    report.Column("kvplan", "kvplan"),
    report.Column("difference", "difference"),
]


def _render_diagnosis(d, name: str, fmt: str) -> str:  # noqa: ANN001
    g = d.gpu
    where = f"{g.name} ({g.how}{': ' + g.evidence if g.evidence else ''})" if g.name else "? (not identified)"
    f = d.failure
    lines = [f"{d.engine} log {name}: model {d.model or '?'}, GPU {where}", f"FAILED START: {d.summary}"]
    lines.append(f"  engine said: {f.line}")
    if f.source:
        lines.append(f"  raised in:   {f.source}")
    if d.explanation:
        lines += [
            "",
            report.render(d.explanation, DIAGNOSIS_COLUMNS, fmt, title="the engine's arithmetic beside kvplan's"),
        ]
    if d.took_memory:
        lines.append(f"largest term: {d.took_memory}")
    if d.prescriptions:
        lines += ["", "changes that start, least given up first (each checked with kvplan capacity):"]
        for i, p in enumerate(d.prescriptions, 1):
            lines.append(f"{i}. {p.change}; gives up {p.gives_up}")
            lines.append(f"   launch: {p.launch_command}")
            lines.append(f"   check:  {p.check_command}")
    return "\n".join(lines)

"""``kvplan capacity``: one configuration's KV pool, sequences, longest context and launch line."""

from typing import Annotated, Optional

import typer

from kvplan import report
from kvplan.cli.common import (
    CheckpointOpt,
    EngineOpt,
    FormatOpt,
    IndexerKDtypeOpt,
    KvDtypeOpt,
    MambaCacheDtypeOpt,
    MambaSsmCacheDtypeOpt,
    ModelArg,
    PpOpt,
    SizeOpt,
    SwaFullOpt,
    TpOpt,
    WeightsDtypeOpt,
    WindowOpt,
    app,
    boundary,
    check_format,
    load_with_weights,
    out,
    parse_windows,
    positive,
    weights_notes,
)
from kvplan.errors import InvalidInput


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
    graph_estimate: Optional[bool],
    n_ubatch: int,
    mla: str = "latent",
    swa_ratio: Optional[float] = None,
    windows: Optional[tuple[int, ...]] = None,
    swa_full: bool = False,
    mamba_ssm_cache_dtype: Optional[str] = None,
    mamba_cache_dtype: Optional[str] = None,
    indexer_k_dtype: Optional[str] = None,
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
        max_attention_window=windows,
        swa_full=swa_full,
        mamba_ssm_cache_dtype=mamba_ssm_cache_dtype,
        mamba_cache_dtype=mamba_cache_dtype,
        indexer_k_dtype=indexer_k_dtype,
        overrides=Overrides(
            device_memory_bytes=size(device_memory),
            activation_bytes=size(activation),
            non_torch_bytes=size(non_torch),
            cuda_graph_bytes=size(cuda_graph),
            overhead_bytes=parse_size(overhead),
        ),
    )


# (field, kind, what it answers): the engine's startup log, steady-state decoding, the longest request.
CAPACITY_FIELDS = [
    ("kv_pool_bytes", "bytes", "KV pool per GPU"),
    ("kv_pool_tokens", "int", "startup log: KV cache size in tokens"),
    ("engine_reported_concurrency", "float", "startup log: maximum concurrency at {context:,} tokens"),
    ("max_concurrent_sequences", "int", "requests of {context:,} tokens decoding at once (steady state)"),
    ("max_context", "int", "longest single request admitted"),
    ("max_context_for_batch", "int", "longest context for {batch} requests at once"),
    ("expected_concurrency", "float", "requests at once on average for the length mix"),
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
    cuda_graph_estimate: Annotated[
        Optional[bool], typer.Option(help="vLLM: subtract CUDA graphs from the budget (default: on from vllm@0.21)")
    ] = None,
    ubatch: Annotated[int, typer.Option(help="llama.cpp -ub")] = 512,
    mla: Annotated[str, typer.Option(help="MLA cache: latent (engines' default) | expanded per-head K/V")] = "latent",
    swa_full_tokens_ratio: Annotated[Optional[float], typer.Option(help="SGLang SWA pool ratio (0, 1]")] = None,
    max_attention_window: WindowOpt = None,
    swa_full: SwaFullOpt = False,
    mamba_ssm_cache_dtype: MambaSsmCacheDtypeOpt = None,
    mamba_cache_dtype: MambaCacheDtypeOpt = None,
    indexer_k_dtype: IndexerKDtypeOpt = None,
    dp: Annotated[int, typer.Option("--dp", help="data-parallel attention ranks per replica (MoE)")] = 1,
    ep: Annotated[bool, typer.Option("--ep", help="expert parallelism over the tp x dp ranks (MoE)")] = False,
    gpus_per_node: Annotated[Optional[int], typer.Option(help="GPUs per node (catalog default)")] = None,
    shared_prefix: Annotated[Optional[str], typer.Option(help="tokens every request shares, e.g. 2k")] = None,
    kv_offload: Annotated[SizeOpt, typer.Option(help="CPU tier for offloaded KV per replica, e.g. 256GiB")] = None,
    checkpoint: CheckpointOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """KV pool, concurrent sequences and longest context on an engine, with the launch line."""
    with boundary():
        from kvplan.capacity import capacity as run
        from kvplan.capacity import setup
        from kvplan.hardware import resolve_gpu
        from kvplan.launch import model_ref, node_commands, one_replica, plan_json
        from kvplan.units import parse_length, parse_lengths, parse_size

        fmt = check_format(fmt)
        resolved, stored = load_with_weights(model, weights_dtype=weights_dtype, checkpoint=checkpoint)
        spec = resolved.spec
        settings = _settings(
            util=gpu_memory_utilization, mem_fraction=mem_fraction_static, free_fraction=free_gpu_memory_fraction,
            block_size=block_size, mnbt=max_num_batched_tokens, max_num_seqs=max_num_seqs, activation=activation,
            non_torch=non_torch, cuda_graph=cuda_graph, device_memory=device_memory, overhead=overhead,
            graph_estimate=cuda_graph_estimate, n_ubatch=ubatch, mla=mla,
            swa_ratio=swa_full_tokens_ratio, windows=parse_windows(max_attention_window), swa_full=swa_full,
            mamba_ssm_cache_dtype=mamba_ssm_cache_dtype, mamba_cache_dtype=mamba_cache_dtype,
            indexer_k_dtype=indexer_k_dtype,
        )  # fmt: skip
        if batch is not None:
            positive(batch, "batch")
        mix, mix_weights = _mix(lengths, weights, mean, parse_lengths, parse_length)
        s = setup(
            spec, resolve_gpu(gpu), engine=engine, tp=tp, pp=pp, gpus=gpus, kv_dtype_name=kv_dtype,
            weights_dtype=weights_dtype, settings=settings, dp=dp, ep=ep, gpus_per_node=gpus_per_node,
            shared_prefix=parse_length(shared_prefix) if shared_prefix is not None else 0, checkpoint=stored,
        )  # fmt: skip
        kv_mem = parse_size(kv_cache_memory) if kv_cache_memory is not None else None
        offload = parse_size(kv_offload) if kv_offload is not None else None
        r = run(s, parse_length(context), batch=batch, lengths=mix, weights=mix_weights, kv_cache_memory=kv_mem,
                kv_offload=offload)  # fmt: skip
        weights_notes(resolved, stored, weights_dtype=weights_dtype)
        ref = model_ref(spec.source, spec.name)
        if fmt == "json":
            out(report.render_object(plan_json(r, model=ref), "json"))
            return
        if fmt == "csv":  # one row, every field raw; the breakdown flattened into its byte columns
            row = plan_json(r, model=ref)
            row.update(row.pop("breakdown"))
            out(report.render([row], [], "csv"))
            return
        seqs = r.max_concurrent_sequences_per_replica
        lines = node_commands(one_replica(r), model=ref, sequences=seqs) if r.fits else []
        _print_capacity(r, fmt, lines)


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


def _print_capacity(r, fmt: str, commands: list[str]) -> None:  # noqa: ANN001
    split = f"TP {r.tp} PP {r.pp}" + (f" DP-attention {r.dp}" if r.dp > 1 else "") + (
        f" EP {r.tp * r.dp}" if r.ep else "")  # fmt: skip
    title = (
        f"{r.model} on {r.gpus} x {r.gpu} in {r.nodes} node(s) of {r.gpus_per_node} ({r.engine} {r.engine_version}), "
        f"{split}, KV {r.kv_dtype}, weights {r.weights_format or r.weights_dtype}, context {r.context:,} "
        "(GiB = 2^30)"
    )
    rows = [{"field": k, "value": report.human_bytes(getattr(r, k)) if kind == "bytes" else _num(getattr(r, k), kind),
             "means": label.format(context=r.context, batch=r.batch)}
            for k, kind, label in CAPACITY_FIELDS if getattr(r, k) is not None]  # fmt: skip
    rows.insert(4, {"field": "fits", "value": "yes" if r.fits else "NO", "means": "one request of the context fits"})
    cols = [report.Column("field", "answer"), report.Column("value", "value"), report.Column("means", "what it is")]
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
    _print_deployment(r)
    if not r.fits:
        out(f"does not fit: {r.reason}")
        for n in r.nearest:
            out(f"  nearest that fits: {n['change']}")
        out("")
    if r.fits and commands:  # the ideal layout and transformers have no command line
        from kvplan.launch import launch_notes

        if len(commands) == 1:
            out(f"launch: {commands[0]}")
        else:
            out(f"launch: one replica over {len(commands)} nodes (LEADER_ADDR: the first node's address)")
            for i, line in enumerate(commands):
                out(f"  node {i}: {line}")
        for note in launch_notes(r):
            out(f"  note: {note}")


def _print_deployment(r) -> None:  # noqa: ANN001
    """Per-rank facts, the shared prefix and the CPU tier, where they apply."""
    gib = 1 << 30
    lines = [
        f"KV of one {r.context:,}-token sequence on one GPU: {report.human_bytes(r.kv_bytes_per_sequence_per_gpu)}"
        + (f" (the same KV is held on {r.kv_copies_per_sequence} ranks)" if r.kv_copies_per_sequence > 1 else "")
    ]
    if r.dp > 1:
        lines.append(
            f"each of the {r.dp} DP-attention ranks holds its own sequences: "
            f"{r.max_concurrent_sequences_per_replica // r.dp} per rank"
        )
    if r.shared_prefix:
        lines.append(
            f"shared prefix {r.shared_prefix:,} tokens, {r.shared_prefix_tokens_stored_once:,} stored once "
            f"(whole {r.block_tokens}-token blocks): {r.max_concurrent_sequences:,} sequences instead of "
            f"{r.sequences_without_shared_prefix:,}"
        )
    if r.offload:
        o = r.offload
        reload = o["reload_seconds_per_sequence"]
        lines.append(
            f"CPU tier {o['tier_bytes'] / gib:,.1f} GiB parks {o['sequences_parked']:,} more sequences "
            f"({report.human_bytes(o['bytes_per_sequence'])} each over all ranks)"
            + (
                f"; reloading one takes {reload * 1000:,.1f} ms at {o['host_link_gbps']:g} GB/s per GPU"
                if reload
                else "; host link bandwidth unknown for this GPU"
            )
        )
    for line in lines:
        out(line)
    out("")


def _num(value, kind: str) -> str:  # noqa: ANN001
    if kind == "float":
        return f"{value:,.2f}"
    return f"{value:,}"

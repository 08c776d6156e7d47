"""``kvplan plan``: the configurations that serve N users at L tokens, fewest GPUs first."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from kvplan import report
from kvplan.cli.common import (
    CheckpointOpt,
    EngineOpt,
    FormatOpt,
    IndexerKDtypeOpt,
    MambaCacheDtypeOpt,
    MambaSsmCacheDtypeOpt,
    MaxSeqLenOpt,
    ModelArg,
    SwaFullOpt,
    WindowOpt,
    app,
    boundary,
    check_format,
    load_with_weights,
    out,
    parse_windows,
    weights_notes,
)
from kvplan.errors import InvalidInput

# ---- plan -----------------------------------------------------------------------------------------

PLAN_COLUMNS = [
    report.Column("gpu", "GPU"),
    report.Column("gpus", "GPUs", "int"),
    report.Column("tp", "TP", "int"),
    report.Column("pp", "PP", "int"),
    report.Column("dp", "DP attn", "int"),
    report.Column("ep_ranks", "EP", "int"),
    report.Column("nodes", "nodes", "int"),
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
        str, typer.Option("--input", help="with --rate: prompt tokens, 2k, 2k:4k (mean:p90) or 2k:4k:8k (mean:p90:p99)")
    ] = "2k",
    output_len: Annotated[
        str, typer.Option("--output", help="with --rate: output tokens, 512, 512:1k or 512:1k:2k")
    ] = "512",
    ttft: Annotated[Optional[str], typer.Option(help="with --rate: time to first token target, e.g. 1s")] = None,
    tpot: Annotated[Optional[str], typer.Option(help="with --rate: time per output token target, e.g. 50ms")] = None,
    percentile: Annotated[str, typer.Option(help="with --rate: targets hold for the mean | p90 | p99")] = "mean",
    tpot_p90: Annotated[
        Optional[str], typer.Option("--tpot-p90", help="with --rate: a request's own TPOT at the p90, e.g. 60ms")
    ] = None,
    tpot_p99: Annotated[
        Optional[str], typer.Option("--tpot-p99", help="with --rate: a request's own TPOT at the p99, e.g. 80ms")
    ] = None,
    disaggregated: Annotated[bool, typer.Option(help="with --rate: also size prefill/decode pools")] = False,
    engine: EngineOpt = "vllm",
    weights_dtype: Annotated[Optional[str], typer.Option(help="weight dtypes to try, e.g. bf16,fp8")] = None,
    kv_dtype: Annotated[Optional[str], typer.Option(help="KV dtypes to try, e.g. bf16,fp8")] = None,
    gpu_memory_utilization: Annotated[Optional[float], typer.Option(help="vLLM fraction (0, 1]")] = None,
    max_attention_window: WindowOpt = None,
    swa_full: SwaFullOpt = False,
    max_seq_len: MaxSeqLenOpt = None,
    mamba_ssm_cache_dtype: MambaSsmCacheDtypeOpt = None,
    mamba_cache_dtype: MambaCacheDtypeOpt = None,
    indexer_k_dtype: IndexerKDtypeOpt = None,
    two_batch_overlap: Annotated[
        bool, typer.Option(help="with --rate: vLLM --enable-dbo / SGLang --enable-two-batch-overlap (DP + EP)")
    ] = False,
    deepep: Annotated[
        bool, typer.Option(help="with --rate: DeepEP all-to-all for DP + EP (vLLM/SGLang DeepEP backends)")
    ] = False,
    attention_dp_balance: Annotated[
        bool,
        typer.Option(
            help="with --rate: TensorRT-LLM attention_dp_config.enable_balance (attention-DP ranks start "
            "prompts in the same steps; MoE)"
        ),
    ] = False,
    batch_size_tuning: Annotated[
        bool,
        typer.Option(
            help="with --rate: TensorRT-LLM v0.17 runtime batch-size tuning (DynamicBatchConfig, as trtllm-bench "
            "runs it; -e trtllm@0.17)"
        ),
    ] = False,
    capacity_scheduler_policy: Annotated[
        Optional[str],
        typer.Option(
            help="with --rate: TensorRT-LLM capacity scheduler policy, guaranteed_no_evict (default) or "
            "max_utilization (admits by the next step's KV blocks, pauses on a shortfall)"
        ),
    ] = None,
    enable_mixed_chunk: Annotated[
        bool,
        typer.Option(help="with --rate: SGLang --enable-mixed-chunk (decodes join each prompt batch; default: apart)"),
    ] = False,
    schedule_conservativeness: Annotated[
        Optional[float],
        typer.Option(help="with --rate: SGLang --schedule-conservativeness, its reserve for outputs to come (1.0)"),
    ] = None,
    attention_dp_timeout_iters: Annotated[
        Optional[int],
        typer.Option(help="with --attention-dp-balance: its YAML attention_dp_config.timeout_iters (default 50)"),
    ] = None,
    attention_dp_batching_wait_iters: Annotated[
        Optional[int],
        typer.Option(help="with --attention-dp-balance: its YAML attention_dp_config.batching_wait_iters (default 10)"),
    ] = None,
    host_per_request: Annotated[
        Optional[str],
        typer.Option(help="with --rate: measured host (CPU) time per request in a step, e.g. 30us (default: none)"),
    ] = None,
    host_per_step: Annotated[
        Optional[str],
        typer.Option(
            help="with --rate: measured host (CPU) time of a step whatever its requests, e.g. 0.5ms (default: none)"
        ),
    ] = None,
    max_gpus: Annotated[int, typer.Option(help="largest GPU count to list")] = 64,
    top: Annotated[int, typer.Option(help="rows to show (0: all)")] = 20,
    gpus_per_node: Annotated[Optional[int], typer.Option(help="GPUs per node (catalog default)")] = None,
    shared_prefix: Annotated[Optional[str], typer.Option(help="tokens every request shares, e.g. 2k")] = None,
    emit: Annotated[Optional[str], typer.Option(help="also write the first plan's deployment: k8s")] = None,
    image: Annotated[Optional[str], typer.Option(help="container image for --emit k8s (default: the engine's)")] = None,
    emit_to: Annotated[Optional[Path], typer.Option("--emit-to", "-o", help="write --emit output to this file")] = None,
    force: Annotated[bool, typer.Option(help="overwrite the --emit-to file if it exists")] = False,
    checkpoint: CheckpointOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """GPU type, count, split (TP/PP/DP attention/EP, nodes) and dtypes that serve N users at L tokens."""
    with boundary():
        from kvplan.hardware import bundled_gpus, resolve_gpu
        from kvplan.units import parse_length, split_list

        fmt = check_format(fmt)
        if emit is not None and emit != "k8s":
            raise InvalidInput(f"invalid --emit {emit!r}; expected k8s")
        if emit_to is not None and emit is None:
            raise InvalidInput("--emit-to needs --emit k8s")
        if emit_to is not None and emit_to.exists() and not force:
            raise InvalidInput(f"{str(emit_to)!r} exists; pass --force to overwrite it")
        resolved, stored = load_with_weights(model, weights_dtype=weights_dtype, checkpoint=checkpoint)
        spec = resolved.spec
        weights_notes(resolved, stored, weights_dtype=weights_dtype)
        split = lambda v: split_list(v, "dtype list", example="bf16,fp8") if v is not None else None  # noqa: E731
        if rate is not None:
            from kvplan.cli.slo import parse_duration, run_targets
            from kvplan.engines import Settings

            names = split_list(gpus, "--gpus", example="h100-sxm,h200") if gpus is not None else None
            names = names or ["h100-sxm", "h200", "b200"]  # the GPUs the latency fit covers
            opts = dict(rate=rate, input=input_len, output=output_len, ttft=ttft, tpot=tpot, percentile=percentile,
                        disaggregated=disaggregated, tpot_p90=tpot_p90, tpot_p99=tpot_p99)  # fmt: skip
            out(run_targets(spec, [resolve_gpu(g) for g in names], engine=engine, weights=split(weights_dtype),
                            kv=split(kv_dtype), opts=opts, max_gpus=max_gpus, top=top, fmt=fmt,
                            gpus_per_node=gpus_per_node, checkpoint=stored,
                            settings=Settings(gpu_memory_utilization=gpu_memory_utilization,
                                              max_attention_window=parse_windows(max_attention_window),
                                              swa_full=swa_full, two_batch_overlap=two_batch_overlap, deepep=deepep,
                                              mamba_ssm_cache_dtype=mamba_ssm_cache_dtype,
                                              mamba_cache_dtype=mamba_cache_dtype,
                                              indexer_k_dtype=indexer_k_dtype,
                                              attention_dp_balance=attention_dp_balance,
                                              batch_size_tuning=batch_size_tuning,
                                              capacity_scheduler_policy=capacity_scheduler_policy,
                                              mixed_chunk=enable_mixed_chunk,
                                              schedule_conservativeness=schedule_conservativeness,
                                              attention_dp_timeout_iters=attention_dp_timeout_iters,
                                              attention_dp_batching_wait_iters=attention_dp_batching_wait_iters,
                                              max_seq_len=max_seq_len,
                                              host_request_s=parse_duration(host_per_request,
                                                                            "host-per-request"),
                                              host_step_s=parse_duration(host_per_step, "host-per-step"))))  # fmt: skip
            return
        if users is None or context is None:
            raise InvalidInput("'kvplan plan' needs --users N --context L, or --rate R with latency targets")
        if tpot_p90 is not None or tpot_p99 is not None:
            raise InvalidInput("--tpot-p90 and --tpot-p99 are latency targets; use them with --rate")
        balance_iters = attention_dp_timeout_iters is not None or attention_dp_batching_wait_iters is not None
        latency_only = two_batch_overlap or deepep or attention_dp_balance or balance_iters or batch_size_tuning
        if latency_only or enable_mixed_chunk or host_per_request is not None or host_per_step is not None:
            raise InvalidInput(
                "--two-batch-overlap, --deepep, --attention-dp-balance (and its --attention-dp-*-iters), "
                "--batch-size-tuning, --enable-mixed-chunk, --host-per-request and --host-per-step change latency "
                "only; use them with --rate"
            )
        if schedule_conservativeness is not None:
            raise InvalidInput("--schedule-conservativeness changes in-flight admission only; use it with --rate")
        if capacity_scheduler_policy is not None:
            raise InvalidInput("--capacity-scheduler-policy changes in-flight admission only; use it with --rate")
        if max_seq_len is not None:
            raise InvalidInput("--max-seq-len changes TensorRT-LLM's decode kernels only; use it with --rate")
        # Only the --users path needs the capacity planner and the launch lines (plan --rate stays light).
        from kvplan.capacity import capacity as run
        from kvplan.capacity import setup
        from kvplan.engines import Settings
        from kvplan.launch import launch_args, launch_command, launch_notes, model_ref, node_commands
        from kvplan.planner import plan as run_plan
        from kvplan.planner import why_nothing_fits

        length = parse_length(context)
        prefix = parse_length(shared_prefix) if shared_prefix is not None else 0
        chosen = (
            [resolve_gpu(g) for g in split_list(gpus, "--gpus", example="h100-sxm,l4")]
            if gpus is not None
            else list(bundled_gpus().values())
        )
        settings = Settings(gpu_memory_utilization=gpu_memory_utilization,
                            max_attention_window=parse_windows(max_attention_window), swa_full=swa_full,
                            mamba_ssm_cache_dtype=mamba_ssm_cache_dtype, mamba_cache_dtype=mamba_cache_dtype,
                            indexer_k_dtype=indexer_k_dtype)  # fmt: skip
        memo: dict = {}
        split = lambda v: split_list(v, "dtype list", example="bf16,fp8") if v is not None else None  # noqa: E731
        dropped: list[str] = []
        rows = run_plan(spec, chosen, users=users, context=length, engine=engine, weights_dtypes=split(weights_dtype),
                        kv_dtypes=split(kv_dtype), settings=settings, max_gpus=max_gpus, memo=memo,
                        gpus_per_node=gpus_per_node, shared_prefix=prefix, dropped=dropped,
                        checkpoint=stored)  # fmt: skip
        if top < 0:
            raise InvalidInput(f"invalid --top {top!r}; expected 0 (all rows) or more")
        rows = rows[:top] if top > 0 else rows
        ref = model_ref(spec.source, spec.name)
        by_name = {g.name: g for g in chosen}  # a GPU YAML's card has no catalog name to look up again
        dicts = []
        answers = []
        for row in rows:
            s = setup(spec, by_name[row.gpu], engine=engine, tp=row.tp, pp=row.pp, gpus=row.gpus, dp=row.dp,
                      ep=row.ep, kv_dtype_name=row.kv_dtype, weights_dtype=row.weights_dtype, settings=settings,
                      memo=memo, gpus_per_node=row.gpus_per_node, shared_prefix=prefix, checkpoint=stored)  # fmt: skip
            r = run(s, length, suggest=False)
            seqs = -(-users // row.replicas)
            d = row.to_dict()
            d["launch"] = launch_args(r, model=ref, sequences=seqs)
            d["launch_command"] = launch_command(r, model=ref, sequences=seqs)
            d["launch_notes"] = launch_notes(r)
            try:
                d["node_commands"] = node_commands(r, model=ref, sequences=seqs)
            except InvalidInput as exc:  # no multi-node launch for this engine (trtllm): the row stands, no command
                d["node_commands"] = []
                d["launch_notes"] = [*d["launch_notes"], str(exc)]
            dicts.append(d)
            answers.append((r, seqs))
        manifests_text = _emit(answers[0], spec=spec, ref=ref, image=image) if emit and answers else None
        if emit_to is not None and manifests_text is not None:
            emit_to.write_text(manifests_text, encoding="utf-8")
        reason = None
        if not dicts:
            reason = why_nothing_fits(spec, chosen, users=users, context=length, engine=engine,
                                      kv_dtypes=split(kv_dtype), weights_dtypes=split(weights_dtype),
                                      settings=settings, max_gpus=max_gpus, checkpoint=stored)  # fmt: skip
        if fmt == "json":
            doc = {"model": spec.name, "users": users, "context": length, "plans": dicts}
            if reason:
                doc["reason"] = reason
                doc["dropped"] = dropped
            if manifests_text is not None and emit_to is None:
                doc["manifests"] = manifests_text
            out(report.render_object(doc, "json"))
            return
        if fmt == "csv":
            out(report.render(dicts, PLAN_COLUMNS, "csv"))
            return
        title = f"{spec.name}: {users} concurrent sequences x {length:,} tokens on {engine} (GiB = 2^30)"
        if not dicts:
            out(f"{title}\n\nnothing fits: {reason}")
            _print_dropped(dropped)
            return
        out(report.render(dicts, PLAN_COLUMNS, fmt, title=title))
        if dicts[0]["launch_command"] is None:  # the ideal layout and transformers have no command line
            return
        out("")
        first = dicts[0]
        if not first["node_commands"]:
            pass  # the ideal layout and transformers have no command line
        elif len(first["node_commands"]) == 1:
            out(f"launch (first row): {first['launch_command']}")
        else:
            out(f"launch (first row), one replica over {len(first['node_commands'])} nodes "
                "(LEADER_ADDR: the first node's address):")  # fmt: skip
            for i, line in enumerate(first["node_commands"]):
                out(f"  node {i}: {line}")
        for note in first.get("launch_notes", []):
            out(f"  note: {note}")
        if manifests_text is not None:
            out("")
            out(f"manifests written to {emit_to}" if emit_to is not None else manifests_text.rstrip())


def _emit(answer, *, spec, ref: str, image: Optional[str]) -> str:  # noqa: ANN001
    from kvplan.hardware import resolve_gpu
    from kvplan.k8s import manifests, to_yaml, workload_for

    r, seqs = answer
    image = image or default_image(f"{r.engine}@{r.engine_release}")
    w = workload_for(r, model=ref, image=image, sequences=seqs, gpu=resolve_gpu(r.gpu), name=spec.name)
    header = f"# kvplan plan {spec.name}: {r.replicas} x ({r.tp * r.pp * r.dp} x {r.gpu}), kubectl apply -f\n"
    return header + to_yaml(manifests(w))


def default_image(engine: str) -> str:
    """The engine's published serving image (its docs' Docker/Kubernetes pages); --image overrides. A release
    without one read (trtllm@0.17) is refused: the manifest would name an image of another release."""
    from kvplan.engines import get_engine
    from kvplan.errors import InvalidInput

    image = get_engine(engine).image
    if not image:
        raise InvalidInput(f"kvplan knows no published serving image for {engine}; pass --image IMAGE")
    return image


def _print_dropped(dropped: list[str], *, limit: int = 12) -> None:
    if not dropped:
        return
    out("")
    out("why candidates were dropped:")
    for line in dropped[:limit]:
        out(f"  {line}")
    if len(dropped) > limit:
        out(f"  ... and {len(dropped) - limit} more (--format json lists them all)")

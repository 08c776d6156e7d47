"""``kvplan cost``: FLOPs, bytes, roofline latency; S2-Attn training."""

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from kvplan import report
from kvplan.cli.common import (
    BatchOpt,
    CheckpointOpt,
    FormatOpt,
    GpuOpt,
    IndexerKDtypeOpt,
    KvDtypeOpt,
    MambaCacheDtypeOpt,
    MambaSsmCacheDtypeOpt,
    MaxSeqLenOpt,
    ModelArg,
    PpOpt,
    SwaFullOpt,
    TpOpt,
    WeightsDtypeOpt,
    app,
    boundary,
    check_format,
    err,
    load_with_weights,
    out,
    positive,
    weights_notes,
)
from kvplan.errors import InvalidInput

# ---- cost ----------------------------------------------------------------------------------------

COST_COLUMNS = [
    report.Column("context", "context", "int"),
    report.Column("phase", "phase"),
    report.Column("tokens", "tokens", "int"),
    report.Column("flops_linear", "linear FLOPs", "float"),
    report.Column("flops_attention", "attention FLOPs (L^2)", "float"),
    report.Column("attention_share", "attn share", "float"),
    report.Column("bytes_total", "bytes moved", "bytes"),
    report.Column("arithmetic_intensity", "FLOP/byte", "float"),
    report.Column("time_s", "time (s)", "float"),
    report.Column("metric", "metric"),
    report.Column("tokens_per_s", "tokens/s", "float"),
    report.Column("bound", "bound"),
]

TRAINING_COLUMNS = [
    report.Column("context", "context", "int"),
    report.Column("attention", "attention"),
    report.Column("group", "group", "int"),
    report.Column("attention_flops_step", "attention FLOPs/step", "float"),
    report.Column("vs_first", "x first full", "float"),
    report.Column("linear_flops_step", "linear FLOPs/step", "float"),
    report.Column("activation_bytes", "activations (stored scores)", "bytes"),
    report.Column("activation_bytes_flash", "activations (flash)", "bytes"),
]


@app.command()
def cost(
    model: ModelArg,
    gpu: GpuOpt = None,
    context: Annotated[str, typer.Option("--context", "-c", help="lengths, e.g. 4k,32k,128k")] = "4k,32k,128k",
    batch: BatchOpt = 1,
    tp: TpOpt = 1,
    pp: PpOpt = 1,
    dp: Annotated[int, typer.Option("--dp", help="data-parallel attention ranks, each a TP group (MoE)")] = 1,
    kv_dtype: KvDtypeOpt = None,
    weights_dtype: WeightsDtypeOpt = None,
    compute: Annotated[str, typer.Option(help="tensor-core peak to use: bf16 | fp8 | fp4")] = "bf16",
    compute_eff: Annotated[float, typer.Option(help="fraction of peak FLOPs reached")] = 0.7,
    memory_eff: Annotated[float, typer.Option(help="fraction of peak memory bandwidth reached")] = 0.9,
    interconnect_eff: Annotated[float, typer.Option(help="fraction of interconnect bandwidth reached")] = 1.0,
    engine: Annotated[
        str,
        typer.Option(
            help="whose kernel efficiencies the latency uses: vllm | vllm@0.16 | trtllm | trtllm@0.20 | trtllm@0.17 "
            "(NAME@VERSION: a release)"
        ),
    ] = "vllm",
    swa_full: SwaFullOpt = False,
    max_seq_len: MaxSeqLenOpt = None,
    mamba_ssm_cache_dtype: MambaSsmCacheDtypeOpt = None,
    mamba_cache_dtype: MambaCacheDtypeOpt = None,
    indexer_k_dtype: IndexerKDtypeOpt = None,
    expert_parallel: Annotated[
        bool, typer.Option("--expert-parallel", help="MoE experts split whole across the tp x dp ranks (calibrated)")
    ] = False,
    latency: Annotated[
        str, typer.Option("--latency", help="calibrated (per-operation, fitted) | roofline (whole step, --*-eff)")
    ] = "calibrated",
    training: Annotated[bool, typer.Option("--training", help="training step: attention FLOPs, activations")] = False,
    attention: Annotated[str, typer.Option(help="with --training: full | s2 (LongLoRA shifted sparse)")] = "full",
    plot: Annotated[Optional[Path], typer.Option("--plot", help="also draw memory and time to this PNG")] = None,
    force: Annotated[bool, typer.Option(help="overwrite an existing --plot file")] = False,
    checkpoint: CheckpointOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Prefill and decode FLOPs, bytes moved and roofline time (TTFT, TPOT, tokens/s) per context."""
    with boundary():
        from kvplan.units import parse_lengths

        fmt = check_format(fmt)
        resolved, stored = load_with_weights(model, weights_dtype=weights_dtype, checkpoint=checkpoint)
        spec = resolved.spec
        contexts = parse_lengths(context)
        positive(batch, "batch")
        if training:
            if mamba_ssm_cache_dtype is not None or mamba_cache_dtype is not None or indexer_k_dtype is not None:
                raise InvalidInput(
                    "--mamba-ssm-cache-dtype, --mamba-cache-dtype and --indexer-k-dtype set what a serving engine "
                    "caches; a --training step holds none"
                )
            _training(spec, contexts, batch=batch, attention=attention, fmt=fmt)
            return
        if gpu is None:
            raise InvalidInput("'kvplan cost' needs --gpu NAME (see 'kvplan gpus'), except with --training")
        _inference(
            spec,
            contexts,
            gpu=gpu,
            batch=batch,
            tp=tp,
            pp=positive(pp, "pp"),
            dp=positive(dp, "dp"),
            kv_dtype=kv_dtype,
            weights_dtype=weights_dtype,
            compute=compute,
            effs=(compute_eff, memory_eff, interconnect_eff),
            engine=engine,
            swa_full=swa_full,
            max_seq_len=max_seq_len,
            states=(mamba_ssm_cache_dtype, mamba_cache_dtype, indexer_k_dtype),
            latency=latency,
            expert_parallel=expert_parallel,
            plot=plot,
            force=force,
            fmt=fmt,
            checkpoint=stored,
        )
        weights_notes(resolved, stored, weights_dtype=weights_dtype)


def _inference(
    spec: Any, contexts: list[int], *, gpu: str, plot: Optional[Path], force: bool, fmt: str, **kw: Any
) -> None:
    from kvplan.cost import Efficiency
    from kvplan.cost import cost as run
    from kvplan.hardware import resolve_gpu

    if plot is not None:
        from kvplan.plot import check_plot_path

        check_plot_path(plot, force=force)
    device = resolve_gpu(gpu)
    compute, memory, link = kw["effs"]
    eff = Efficiency(compute=compute, memory=memory, interconnect=link)
    rows = run(
        spec,
        device,
        contexts,
        batch=kw["batch"],
        tp=kw["tp"],
        kv_dtype_name=kw["kv_dtype"],
        weights_dtype=kw["weights_dtype"],
        compute_dtype=kw["compute"],
        efficiency=eff,
        engine=kw["engine"],
        swa_full=kw["swa_full"],
        max_seq_len=kw["max_seq_len"],
        mamba_ssm_cache_dtype=kw["states"][0],
        mamba_cache_dtype=kw["states"][1],
        indexer_k_dtype=kw["states"][2],
        model=kw["latency"],
        expert_parallel=kw["expert_parallel"],
        pp=kw["pp"],
        dp=kw["dp"],
        checkpoint=kw["checkpoint"],
    )
    flat = []
    for row in rows:
        for phase, metric in ((row.prefill, "TTFT"), (row.decode, "TPOT")):
            d = {"model": spec.name, "gpu": device.name, **phase.summary(), "metric": metric}
            d["tokens_per_s"] = phase.tokens / phase.time_s
            flat.append(d)
    if kw["latency"] == "calibrated":
        basis = f"time = per-operation latency with {rows[0].decode.engine} kernel efficiencies (kvplan.latency)"
    else:
        basis = f"time = whole-step roofline, {kw['compute']} peak x {eff.compute}, bandwidth x {eff.memory}"
    split = f"{kw['tp']}x"
    if kw["pp"] > 1 or kw["dp"] > 1:  # the GPUs of one replica: TP x PP x DP attention
        split = f"TP{kw['tp']} x PP{kw['pp']} x DP{kw['dp']} ({kw['tp'] * kw['pp'] * kw['dp']})"
        basis += "; FLOPs and bytes of one TP rank running every layer, time with the pipeline / DP ranks"
    title = (
        f"{spec.name} on {split} {device.name}: batch {kw['batch']}; {basis}; per GPU; "
        "TTFT = prefill of the batch, TPOT = one decode step (GiB = 2^30)"
    )
    out(report.render(flat, COST_COLUMNS, fmt, title=title))
    if plot is not None:
        _cost_plot(spec, device, contexts, rows, plot, kw)


def _cost_plot(spec: Any, device: Any, contexts: list[int], rows: list[Any], path: Path, kw: dict[str, Any]) -> None:
    from kvplan.estimator import estimate
    from kvplan.hardware import usable_memory_bytes
    from kvplan.plot import plot_context

    mem = estimate(
        spec, contexts, batch=kw["batch"], kv_dtype_name=kw["kv_dtype"], tp=kw["tp"],
        weights_dtype=kw["weights_dtype"] or kw["checkpoint"],  # the weights term the cost rows read
    )  # fmt: skip
    plot_context(
        path,
        title=f"{spec.name} on {device.name}, batch {kw['batch']}, TP {kw['tp']}",
        contexts=contexts,
        memory={
            "weights + KV": [r.total_bytes_per_gpu for r in mem],
            "KV cache": [r.kv_bytes_per_gpu for r in mem],
        },
        capacity_bytes=usable_memory_bytes(device),  # the figure estimate and capacity use
        capacity_label=device.name,
        times={"TTFT (prefill)": [r.ttft_s for r in rows], "TPOT (decode step)": [r.tpot_s for r in rows]},
    )
    err(f"wrote {path}")


def _training(spec: Any, contexts: list[int], *, batch: int, attention: str, fmt: str) -> None:
    from kvplan.cost import training_attention

    modes = ["full", "s2"] if attention == "s2" else [attention]
    rows = [training_attention(spec, n, batch=batch, attention=m).model_dump() for n in contexts for m in modes]
    first = next(r for r in rows if r["attention"] == "full")["attention_flops_step"]
    for r in rows:
        r["vs_first"] = r["attention_flops_step"] / first if first else None
    title = (
        f"{spec.name} training step (forward + 2x backward), batch {batch}; S2-Attn group = context/4; "
        "activations per Korthikanti et al. 2022 eq. 1, 16-bit, no recomputation (GiB = 2^30)"
    )
    out(report.render(rows, TRAINING_COLUMNS, fmt, title=title))

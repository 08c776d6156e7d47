"""``kvplan plan --rate ...``: configurations that meet latency targets (the table and JSON; no computing here)."""

from __future__ import annotations

import re
from typing import Any

from kvplan import report
from kvplan.errors import InvalidInput

SLO_COLUMNS = [
    report.Column("gpu", "GPU"),
    report.Column("gpus", "GPUs", "int"),
    report.Column("mode", "mode"),
    report.Column("tp", "TP", "int"),
    report.Column("pp", "PP", "int"),
    report.Column("dp", "DP attn", "int"),
    report.Column("ep_ranks", "EP", "int"),
    report.Column("replicas", "replicas (DP)", "int"),
    report.Column("nodes", "nodes", "int"),
    report.Column("prefill_gpus", "prefill GPUs", "int"),
    report.Column("decode_gpus", "decode GPUs", "int"),
    report.Column("kv_transfer_s", "KV transfer (s)", "float"),
    report.Column("weights_dtype", "weights"),
    report.Column("kv_dtype", "KV"),
    report.Column("ttft_s", "TTFT (s)", "float"),
    report.Column("tpot_s", "TPOT (s)", "float"),
    report.Column("tpot_p90_s", "TPOT p90 (s)", "float"),
    report.Column("tpot_p99_s", "TPOT p99 (s)", "float"),
    report.Column("batch", "batch", "float"),
    report.Column("output_tokens_per_s_per_gpu", "tok/s/GPU", "float"),
    report.Column("output_tokens_per_s_per_user", "tok/s/user", "float"),
    report.Column("pareto", "Pareto"),
]

# Columns a table leaves out when every row shown has their plain value (TP-only, aggregated plans read as before).
OPTIONAL_COLUMNS = {"pp": 1, "dp": 1, "ep_ranks": 0, "prefill_gpus": 0, "decode_gpus": 0, "kv_transfer_s": 0.0,
                    "tpot_p90_s": 0.0, "tpot_p99_s": 0.0}  # fmt: skip

_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def table_columns(rows: list[dict[str, Any]]) -> list[report.Column]:
    """The table's columns: the optional ones only where some row differs from the plain value."""
    return [
        c for c in SLO_COLUMNS
        if c.key not in OPTIONAL_COLUMNS or any(r[c.key] != OPTIONAL_COLUMNS[c.key] for r in rows)
    ]  # fmt: skip


def parse_duration(text: str | None, what: str) -> float | None:
    """``1s``, ``50ms``, ``800us`` or a plain number of seconds."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|ms|us)?\s*", text)
    if not m:
        raise InvalidInput(f"invalid --{what} {text!r}; expected a time such as 1s, 50ms or 800us")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def parse_lengths(text: str, what: str):  # noqa: ANN201
    """``2k`` (every request), ``2k:4k`` (mean : 90th percentile) or ``2k:4k:8k`` (mean : p90 : p99)."""
    from kvplan.serving import Lengths
    from kvplan.units import parse_length

    parts = text.split(":")
    try:
        if len(parts) > 3 or any(not p.strip() for p in parts):
            raise InvalidInput("one to three lengths")
        return Lengths.of(*(parse_length(p) for p in parts))
    except InvalidInput as exc:
        raise InvalidInput(
            f"invalid --{what} {text!r}: {exc}; expected e.g. 2k, 2k:4k (mean:p90) or 2k:4k:8k (mean:p90:p99)"
        ) from None


def length_notes(targets: Any) -> list[str]:
    """What the figures assume about the lengths that the user did not give (p99 targets only)."""
    if targets.percentile != "p99":
        return []
    return [
        f"--{what}: no p99 given (mean:p90:p99); the p99 figures take the p90 length, {lengths.p90}, for it"
        for what, lengths in (("input", targets.input_len), ("output", targets.output_len))
        if lengths.p99_assumed
    ]


def run_targets(spec: Any, gpus: list[Any], *, engine: str, weights: list[str] | None, kv: list[str] | None,
                opts: dict[str, Any], max_gpus: int, top: int, fmt: str,
                gpus_per_node: int | None = None, checkpoint: Any = None, settings: Any = None) -> str:  # fmt: skip
    from kvplan.slo import Targets, plan_for_targets

    targets = Targets(
        rate_rps=opts["rate"],
        input_len=parse_lengths(opts["input"], "input"),
        output_len=parse_lengths(opts["output"], "output"),
        ttft_s=parse_duration(opts["ttft"], "ttft"),
        tpot_s=parse_duration(opts["tpot"], "tpot"),
        percentile=opts["percentile"],
        tpot_p90_s=parse_duration(opts.get("tpot_p90"), "tpot-p90"),
        tpot_p99_s=parse_duration(opts.get("tpot_p99"), "tpot-p99"),
    )
    # A table or CSV shows the first ``top`` rows only: the library leaves out what cannot be among them. JSON lists
    # the whole Pareto front, so it asks for every row.
    rows = plan_for_targets(spec, gpus, targets, engine=engine, weights_dtypes=weights, kv_dtypes=kv,
                            disaggregated=opts["disaggregated"], max_gpus=max_gpus,
                            gpus_per_node=gpus_per_node, checkpoint=checkpoint, settings=settings,
                            top=0 if fmt == "json" else top)  # fmt: skip
    dicts = [r.to_dict() for r in (rows[:top] if top > 0 else rows)]
    front = [r.to_dict() for r in rows if r.pareto]
    notes = length_notes(targets)
    from kvplan.host import host_cpu_notes

    given = settings is not None and bool(settings.host_request_s or settings.host_step_s)
    if not given:
        notes.extend(host_cpu_notes(gpus, None))
    else:
        from kvplan.engines import get_engine
        from kvplan.host import host_note

        notes.append(host_note(get_engine(engine), settings.host_request_s, settings.host_step_s))
    from kvplan.engines import get_engine
    from kvplan.host import front_end_note

    api = front_end_note(
        get_engine(engine), rate_rps=targets.rate_rps, output_tokens=targets.output_len.mean, family=spec.family
    )
    notes.extend([api] if api else [])
    if settings is not None:
        notes.extend(get_engine(engine).latency_setting_notes(settings))  # config-file keys of latency settings
    if fmt == "json":
        head = {"model": spec.name, "rate_rps": targets.rate_rps, "input": targets.input_len.to_dict(),
                "output": targets.output_len.to_dict(), "ttft_s": targets.ttft_s, "tpot_s": targets.tpot_s,
                "percentile": targets.percentile, "tpot_p90_s": targets.tpot_p90_s, "tpot_p99_s": targets.tpot_p99_s,
                "notes": notes}  # fmt: skip
        return report.render_object({**head, "plans": dicts, "pareto": front}, "json")
    if fmt == "csv":
        return report.render(dicts, SLO_COLUMNS, "csv")
    engines = sorted({r.engine for r in rows}) or [engine]
    title = (
        f"{spec.name}: {targets.rate_rps:g} req/s, input {opts['input']}, output {opts['output']}, "
        f"TTFT <= {opts['ttft'] or '-'}, TPOT <= {opts['tpot'] or '-'} ({targets.percentile})"
        + "".join(f", TPOT {q} <= {opts[f'tpot_{q}']}" for q in ("p90", "p99") if opts.get(f"tpot_{q}"))
        + "; "
        f"latency from kvplan.latency with {', '.join(engines)} kernel efficiencies"
    )
    title = "\n".join([title, *(f"note: {n}" for n in notes)])
    if not dicts:
        return f"{title}\n\nno configuration up to {max_gpus} GPUs meets the targets; relax them or add GPU types"
    return report.render(dicts, table_columns(dicts), fmt, title=title)

"""Where aiconfigurator's measured kernel tables lie on disk, and the walk that reads them, for the scripts that sample
them (gemm_compare.py, mla_compare.py, moe_compare.py, fit_fmha.py, ...). aiconfigurator is a reference installed in
its own virtual environment (each script's docstring says how), never a kvplan dependency: without it these scripts
skip their collection step (:func:`read_tables` says so once). The scripts that run aiconfigurator's own estimate
(dp_ep_gap.py, moe_gap.py, moe_bucket_compare.py, hybrid_compare.py) run their cases through :func:`collect_cases`,
which calls it through :func:`capture_static_breakdown`."""

from __future__ import annotations

import functools
import json
import math
import statistics
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

SKIPPED = "aiconfigurator is not installed here; skipped (see this script's docstring for the separate venv)"


def tables_root() -> Path | None:
    """``aiconfigurator_core/systems/data`` (one folder per GPU system, then operation, engine and version), or None
    where aiconfigurator, or pandas that reads its parquet tables, is not installed."""
    try:
        from importlib.resources import files

        import pandas  # noqa: F401 - the tables are parquet files; a root nothing can read is no root

        return Path(str(files("aiconfigurator_core") / "systems" / "data"))
    except ImportError:
        return None


def each_table(root: Path, systems: dict[str, str], engines: dict[str, str], operation: str,
               filename: str | Mapping[str, str]):  # noqa: ANN201 - a generator of tuples  # fmt: skip
    """``(gpu, engine, version, path, source)`` of each table aiconfigurator holds for ``operation`` (``gemm``,
    ``mla``, ...), GPU by GPU then engine by engine, skipping the pairs it never collected; ``filename`` is the table's
    file name, or one per engine; ``source`` names the file as the committed samples cite it."""
    for gpu, system in systems.items():
        for engine, version in engines.items():
            name = filename if isinstance(filename, str) else filename[engine]
            path = root / system / operation / engine / version / name
            if path.exists():
                yield gpu, engine, version, path, f"aiconfigurator_core/systems/data/{path.relative_to(root)}"


class Table(NamedTuple):
    """One of aiconfigurator's tables, read: where it lies (:func:`each_table`'s fields) and its rows."""

    gpu: str
    engine: str
    version: str
    path: Path
    source: str
    frame: Any  # a pandas DataFrame (pandas is imported only where aiconfigurator is installed)

    def sibling(self, filename: str) -> Any:  # noqa: ANN401 - a pandas DataFrame
        """The table ``filename`` beside this one (same GPU, operation, engine and version), read."""
        import pandas as pd

        return pd.read_parquet(self.path.with_name(filename))


def read_tables(systems: dict[str, str], engines: dict[str, str], operation: str,
                filename: str | Mapping[str, str]) -> Iterator[Table] | None:  # fmt: skip
    """The :class:`Table` of each of :func:`each_table`'s tables, read one at a time as the walk reaches it; None,
    after printing :data:`SKIPPED` once, where aiconfigurator (or pandas) is not installed: a script's ``collect``
    then writes nothing and exits 0."""
    root = tables_root()
    if root is None:
        print(SKIPPED)
        return None
    import pandas as pd

    walk = each_table(root, systems, engines, operation, filename)
    return (Table(gpu, engine, version, path, src, pd.read_parquet(path)) for gpu, engine, version, path, src in walk)


def estimate_function():  # noqa: ANN201 - aiconfigurator's cli_estimate, or None
    """aiconfigurator's ``cli_estimate`` (``aiconfigurator.cli.api``), its warnings silenced. None, after printing
    :data:`SKIPPED` once, where aiconfigurator is not installed: a script's ``collect`` then writes nothing and exits
    0."""
    try:
        import logging

        from aiconfigurator.cli.api import cli_estimate
    except ImportError:
        print(SKIPPED)
        return None
    logging.disable(logging.WARNING)
    return cli_estimate


def capture_static_breakdown():  # noqa: ANN201 - (cli_estimate, what its last call saw) or None
    """:func:`estimate_function`'s ``cli_estimate``, with ``BaseBackend._run_static_breakdown``
    (``aiconfigurator_core/sdk/backends/base_backend.py``) wrapped to keep what each call saw in the returned dict:
    ``model`` and ``database`` (the call's arguments), ``context`` and ``generation`` (the prefill's and the decode
    step's per-operation breakdowns it returned, ms), the last call's. None where aiconfigurator is not installed (as
    :func:`estimate_function`)."""
    cli_estimate = estimate_function()
    if cli_estimate is None:
        return None
    from aiconfigurator_core.sdk.backends import base_backend

    seen: dict = {}
    original = base_backend.BaseBackend._run_static_breakdown

    def wrapped(self, model, database, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen["model"], seen["database"] = model, database
        result = original(self, model, database, *args, **kwargs)
        seen["context"] = {k: float(v) for k, v in result[0].items()}  # the first of its seven dicts
        seen["generation"] = {k: float(v) for k, v in result[2].items()}  # the third
        return result

    base_backend.BaseBackend._run_static_breakdown = wrapped
    return cli_estimate, seen


def collect_cases(cases: list[dict], row: Callable[[Callable, dict, dict], dict]) -> tuple[list[dict], str] | None:
    """Each of ``cases`` through aiconfigurator's estimate, in order: ``row(cli_estimate, seen, case)`` makes the case's
    row (``seen``: what :func:`capture_static_breakdown` kept of the last call), each case said on stderr as it is done.
    The rows and aiconfigurator's version; None where aiconfigurator is not installed (:data:`SKIPPED` said once):
    the script's ``collect`` then writes nothing and exits 0."""
    found = capture_static_breakdown()
    if found is None:
        return None
    import aiconfigurator

    cli_estimate, seen = found
    rows = []
    for case in cases:
        rows.append(row(cli_estimate, seen, case))
        print(f"{len(rows)}/{len(cases)} {case}", file=sys.stderr, flush=True)
    return rows, getattr(aiconfigurator, "__version__", "0.12.0")


@functools.cache
def balanced_loads(tokens: int, experts: int, topk: int, ep: int = 1, *,
                   remote_rows_to_first: bool = False) -> tuple[tuple[int, int], ...]:  # fmt: skip
    """The routed rows each touched expert of EP rank 0 receives under aiconfigurator's ``balanced`` routing, as
    ``(rows an expert, experts)`` pairs (fewest rows first), for :func:`kvplan.latency._moe_s`'s ``loads``.

    aiconfigurator 0.12.0's MoE collectors build the router logits with ``balanced_logits`` (``collector/helper.py``
    in ai-dynamo/aiconfigurator; the collector is not in the wheel): with ``stride = ceil(E / k)``, token ``i``'s
    ``j``-th choice is expert ``(i + j * stride) % E`` where ``T >= stride``, else ``(i * stride / T + j * stride)
    % E`` truncated, and the engine's top-k over those logits picks exactly them (TensorRT-LLM
    ``RenormalizeMoeRoutingMethod``, vLLM ``torch.topk``, SGLang ``select_experts``; ``collector/trtllm/
    collect_moe.py`` ``run_moe_torch``, ``collector/vllm/collect_moe.py``, ``collector/sglang/collect_moe.py``). So
    min(E, T k) experts are touched, each by the same rows to within one (DeepSeek-V3, 32 tokens: all 256, one row
    each), where uniform routing touches ``E (1 - (1 - k/E)^T)`` (163). Every collector times EP rank 0, which holds
    experts ``[0, E / ep)`` (TensorRT-LLM's default ``Mapping()``, vLLM ``determine_expert_map(ep, 0, E)``, SGLang
    ``build_rank0_workloads``). ``remote_rows_to_first``: SGLang's EP rows (``build_rank0_workloads`` keeps every
    token with a local choice and sets its remote choices to expert -1 with weight 0, which ``benchmark_config``
    clamps to expert 0 for its Triton kernel): rank 0's first expert also computes those rows."""
    stride = math.ceil(experts / topk)
    rows = [0] * experts
    local = experts // ep
    for i in range(tokens):
        base = i if tokens >= stride else i * stride // tokens  # exact: the collector's float quotient, truncated
        picks = [(base + j * stride) % experts for j in range(topk)]
        rows_here = [e for e in picks if e < local]
        for e in rows_here:
            rows[e] += 1
        if remote_rows_to_first and rows_here:
            rows[0] += topk - len(rows_here)
    counts: dict[int, int] = {}
    for r in rows[:local]:
        if r:
            counts[r] = counts.get(r, 0) + 1
    return tuple(sorted(counts.items()))


def table_layer_s(points: list, tokens: float) -> float:
    """One MoE layer's seconds at ``tokens`` from a kernel table's ``[[tokens, ms], ...]``: log-log between the two
    nearest counts, the first row below the table, and in proportion to the tokens past its last row (moe_gap.py and
    dp_ep_gap.py price grouped experts from aiconfigurator's MoE tables with it)."""
    lo = points[0]
    if tokens <= lo[0]:
        return lo[1] * 1e-3
    for hi in points[1:]:
        if tokens <= hi[0]:
            f = math.log(tokens / lo[0]) / math.log(hi[0] / lo[0])
            return math.exp(math.log(lo[1]) + f * math.log(hi[1] / lo[1])) * 1e-3
        lo = hi
    return lo[1] * tokens / lo[0] * 1e-3


@contextmanager
def grouped_experts_from(grouped: Callable[[Any, float, Any], float | None]) -> Iterator[None]:
    """For the ``with`` block, :func:`kvplan.latency._moe_s` with its grouped expert GEMMs replaced by
    ``grouped(ctx, moe_tokens, parts)`` wherever that returns seconds (None: the layer as kvplan prices it;
    ``parts`` is kvplan's own :class:`kvplan.latency._MoeParts` for the layer); the latency and serving memos are
    emptied on the way in and out. The table readings of moe_gap.py, dp_ep_gap.py and moe_release_gap.py: what a
    measured kernel would do to the published rows, nothing kept in kvplan."""
    from kvplan import latency
    from kvplan.serving import forget_memos

    priced = latency._moe_s

    def replaced(c, tokens: float, moe_tokens: float):  # noqa: ANN001, ANN202
        parts = priced(c, tokens, moe_tokens)
        seconds = grouped(c, moe_tokens, parts)
        return parts if seconds is None else parts._replace(grouped=seconds)

    latency._moe_s = replaced
    forget_memos(facts=False)
    try:
        yield
    finally:
        latency._moe_s = priced
        forget_memos(facts=False)


def score_readings(runs: list[dict], *, keys: tuple[str, ...], readings: tuple[str, ...], reading: Callable,
                   score: Callable[[dict], float]) -> list[dict]:  # fmt: skip
    """Each published run's ``keys``, its ``score`` as scored ("as scored") and under each of ``readings``: the run
    scored again inside ``reading(name)``, a context manager that swaps a priced op for a table's (moe_gap.py,
    dp_ep_gap.py)."""
    out = [{k: r[k] for k in keys} | {"as scored": score(r)} for r in runs]
    for name in readings:
        with reading(name):
            for row, r in zip(out, runs, strict=True):
                row[name] = score(r)
    return out


def frame_rows(frame, columns: tuple[str, ...]) -> list[list]:  # noqa: ANN001 - a pandas DataFrame
    """``frame``'s rows as lists of plain Python values (numpy scalars unwrapped), in ``columns``' order."""
    return [[r[c].item() if hasattr(r[c], "item") else r[c] for c in columns] for _, r in frame.iterrows()]


def write_row_tables(out: Path, tables: list[dict]) -> None:
    """Write collected row tables (each with ``columns`` and ``rows``) to ``out`` as one compact JSON line."""
    out.write_text(json.dumps({"tables": tables}, separators=(",", ":")) + "\n")
    print(f"wrote {sum(len(t['rows']) for t in tables)} rows of {len(tables)} tables to {out}")


def load_row_tables(path: Path) -> list[dict]:
    """The tables :func:`write_row_tables` wrote, each row a dict of its table's columns."""
    tables = json.loads(path.read_text())["tables"]
    return [{**t, "rows": [dict(zip(t["columns"], r, strict=True)) for r in t["rows"]]} for t in tables]


def band_label(value: float, bands: tuple, *, prefix: str = "") -> str:
    """The label of the band of ``bands`` (``(lo, hi)`` pairs, ``hi`` None: no upper end) that holds ``value``:
    ``prefix`` then ``lo-hi`` or ``>=lo``; ``other`` where none does."""
    for lo, hi in bands:
        if value >= lo and (hi is None or value <= hi):
            return f"{prefix}{lo}-{hi}" if hi is not None else f"{prefix}>={lo}"
    return "other"


def stats(rows: list[dict]) -> dict:
    """Count, median and worst ``|ln|`` and median signed ``ln`` of compared rows (each with its ``ln``)."""
    e = [r["ln"] for r in rows]
    a = [abs(x) for x in e]
    return {"count": len(e), "median": statistics.median(a), "worst": max(a), "signed": statistics.median(e)}


def grouped_stats(rows: list[dict], key: Callable[[dict], str]) -> list[tuple[str, dict]]:
    """:func:`stats` of the rows grouped by ``key``, in the order each group first appears."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    return [(name, stats(g)) for name, g in groups.items()]


def render_summaries(summaries: dict[str, list[tuple[str, dict]]], *, label: str, name_width: int,
                     markdown: bool) -> list[str]:  # fmt: skip
    """Lines of the titled :func:`grouped_stats` tables, as markdown tables or as plain aligned text; ``label`` heads
    the markdown table's first column, ``name_width`` pads the plain text's group names."""
    out = []
    for title, groups in summaries.items():
        if markdown:
            head = f"| {label} | points | median \\|ln\\| | worst \\|ln\\| | median signed |"
            out += [f"**{title}**", "", head, "|---|---:|---:|---:|---:|"]
            out += [f"| {name} | {s['count']} | {s['median']:.3f} | {s['worst']:.3f} | {s['signed']:+.3f} |"
                    for name, s in groups]  # fmt: skip
        else:
            out.append(f"{title}:")
            out += [f"  {name:<{name_width}} {s['count']:>5}  median |ln| {s['median']:.3f}  worst {s['worst']:.3f}  "
                    f"signed {s['signed']:+.3f}" for name, s in groups]  # fmt: skip
        out.append("")
    return out

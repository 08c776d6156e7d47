"""Rendering only: rows of dicts -> table | json | csv | markdown. Units appear here and only here."""

from __future__ import annotations

import csv
import functools
import io
import json
import sys
from dataclasses import dataclass
from typing import Any, Literal


@functools.cache  # imported on the first table: json and csv output never need it (~8 ms of imports)
def _import_tabulate() -> Any:
    """tabulate without its optional wide-character support: tabulate 0.10 imports wcwidth when it is
    installed (12 ms of a ~270 ms `kvplan estimate` on the dev machine: importlib.metadata, email, hashlib,
    measured with python -X importtime) only to measure East Asian wide characters. Every cell kvplan
    prints is ASCII or a one-column symbol, so len() is the exact width. The block is lifted at once:
    any other import of wcwidth in the process still works."""
    blocked = "wcwidth" not in sys.modules
    if blocked:
        sys.modules["wcwidth"] = None  # type: ignore[assignment]  # `import wcwidth` raises ImportError
    try:
        from tabulate import tabulate as table_fn
    finally:
        if blocked:
            del sys.modules["wcwidth"]
    return table_fn


Format = Literal["table", "json", "csv", "markdown"]
FORMATS = ("table", "json", "csv", "markdown")
GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class Column:
    """A column of a human table: the row key, its header, and how to show the value."""

    key: str
    header: str
    kind: Literal["bytes", "int", "str", "bool", "float", "num", "mib", "bytes_mib"] = "str"


def human_bytes(n: int | None) -> str:
    """GiB with two decimals (GiB = 2^30); MiB below 1 GiB."""
    if n is None:
        return "-"
    if abs(n) >= GIB:
        return f"{n / GIB:,.2f} GiB"
    return f"{n / MIB:,.1f} MiB"


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "bytes":
        return human_bytes(value)
    if kind == "bytes_mib":
        return f"{value / MIB:,.1f}"
    if kind == "int":
        return f"{value:,}"
    if kind == "bool":
        return "yes" if value else "NO"
    if kind == "float":
        return f"{value:,.3g}"
    if kind == "num":  # a catalog figure: as written, with thousands separators
        return f"{value:,.1f}".removesuffix(".0")
    return str(value)


def render(rows: list[dict[str, Any]], columns: list[Column], fmt: Format, *, title: str | None = None) -> str:
    """Table/markdown show ``columns`` in human units; json/csv carry every field, raw."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        return _csv(rows)
    cells = [[_cell(r.get(c.key), c.kind) for c in columns] for r in rows]
    headers = [c.header for c in columns]
    table = _import_tabulate()
    body = table(cells, headers=headers, tablefmt="github" if fmt == "markdown" else "simple", disable_numparse=True)
    return f"{title}\n\n{body}" if title else body


def render_object(obj: dict[str, Any], fmt: Format, *, title: str | None = None) -> str:
    """A single record: json as is; other formats as a two-column field/value table."""
    if fmt == "json":
        return json.dumps(obj, indent=2)
    flat = [{"field": k, "value": _flat(v, human=fmt != "csv")} for k, v in obj.items()]
    return render(flat, [Column("field", "field"), Column("value", "value")], fmt, title=title)


def _flat(value: Any, *, human: bool = False) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if human and isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "-" if value is None else str(value)


def _csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    fields: dict[str, None] = {}
    for r in rows:
        fields.update(dict.fromkeys(r))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _flat(v) if isinstance(v, (dict, list)) else v for k, v in r.items()})
    return out.getvalue().rstrip("\n")


def weights_comparison_lines(cmp: Any, *, source: str) -> list[str]:
    """A :class:`kvplan.checkpoint.WeightsComparison` as notes: header sum, architecture count, why they differ."""

    def signed(n: int) -> str:
        return ("+" if n >= 0 else "-") + human_bytes(abs(n))

    lines = [
        f"weights from {source}: {human_bytes(cmp.checkpoint_bytes)} for one copy; the architecture count in "
        f"{cmp.architecture_dtype} is {human_bytes(cmp.architecture_bytes)} "
        + (f"({signed(cmp.difference_bytes)})" if cmp.difference_bytes else "(the same bytes)")
    ]
    lines += [f"  {signed(n)} {reason}" for reason, n in cmp.explained.items()]
    if cmp.explained and cmp.unexplained_bytes:
        lines.append(f"  {signed(cmp.unexplained_bytes)} not explained")
    if cmp.not_loaded_bytes:
        lines.append(
            f"  MTP module: {human_bytes(cmp.not_loaded_bytes)} stored, not counted "
            "(vLLM loads it only for speculative decoding)"
        )
    return lines

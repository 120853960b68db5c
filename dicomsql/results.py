"""Printing query results (a text table, CSV or JSON Lines), the same for an embedded
session and JDBC."""

from __future__ import annotations

import csv
import datetime
import io
import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

__all__ = ["cell_text", "format_table", "format_csv", "format_json_lines", "FORMATS"]

MAX_CELL_WIDTH = 80


def _plain(value: Any) -> Any:
    """``value`` with Spark Rows, dates and decimals made JSON-friendly."""
    if hasattr(value, "asDict"):
        return {k: _plain(v) for k, v in value.asDict().items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime, Decimal)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    return value


def cell_text(value: Any) -> str:
    """How a value is shown: NULL, JSON for arrays/structs/maps (as JDBC clients get them),
    ``<n bytes>`` for binary, else ``str``."""
    if value is None:
        return "NULL"
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, (list, tuple, dict)) or hasattr(value, "asDict"):
        return json.dumps(_plain(value), ensure_ascii=False)
    return str(value)


def _clip(text: str, width: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], truncate: bool = True
) -> str:
    """A boxed text table of ``rows`` under ``columns``; cells longer than 80 characters
    are cut unless ``truncate`` is false.

    >>> print(format_table(["a", "b"], [(1, None)]))
    +---+------+
    | a | b    |
    +---+------+
    | 1 | NULL |
    +---+------+
    """
    width = MAX_CELL_WIDTH if truncate else 10**9
    cells = [[_clip(cell_text(v), width) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"

    return "\n".join([rule, line(columns), rule, *(line(r) for r in cells), rule])


def format_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """``rows`` as CSV under a header of ``columns``: NULL is an empty cell, arrays, structs
    and maps are JSON (as in :func:`cell_text`), nothing is cut.

    >>> print(format_csv(["id", "tags"], [(1, ["a", "b,c"]), (2, None)]), end="")
    id,tags
    1,"[""a"", ""b,c""]"
    2,
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(["" if v is None else cell_text(v) for v in row] for row in rows)
    return out.getvalue()


def format_json_lines(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """``rows`` as JSON Lines: one object per row keyed by ``columns``, with arrays, structs
    and maps as JSON arrays and objects; dates, timestamps and decimals are strings and
    non-finite floats are written ``NaN``/``Infinity`` (as Python's json module reads them).

    >>> print(format_json_lines(["id", "tags"], [(1, ["a"]), (2, None)]), end="")
    {"id": 1, "tags": ["a"]}
    {"id": 2, "tags": null}
    """
    return "".join(
        json.dumps(dict(zip(columns, map(_plain, row))), ensure_ascii=False) + "\n" for row in rows
    )


FORMATS: dict[str, Callable[[Sequence[str], Sequence[Sequence[Any]]], str]] = {
    "csv": format_csv,
    "json": format_json_lines,
}
"""The machine-readable output formats of ``dicomsql sql --format`` (besides ``table``)."""

"""Printing query results as a text table, the same for an embedded session and JDBC."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from typing import Any, Sequence

__all__ = ["cell_text", "format_table"]

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


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], truncate: bool = True) -> str:
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

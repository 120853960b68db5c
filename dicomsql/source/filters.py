"""Filters Spark pushes down to the ``dicom`` source, evaluated on the file listing: a query
filtering on ``path``, ``size`` or ``modificationTime`` opens no file it filters out.

A pushed filter is evaluated exactly as SQL would (NULL compares to nothing), so Spark does
not evaluate it again.
"""

from __future__ import annotations

import datetime
import operator
from collections.abc import Callable, Iterable
from typing import Any

from pyspark.sql.datasource import (
    EqualNullSafe,
    EqualTo,
    Filter,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    IsNotNull,
    IsNull,
    LessThan,
    LessThanOrEqual,
    Not,
    StringContains,
    StringEndsWith,
    StringStartsWith,
)

__all__ = ["FILE_COLUMNS", "pushable", "matches"]

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

#: The columns whose values are known from the listing, before any file is opened.
FILE_COLUMNS = ("path", "size", "modificationTime")

_COMPARISONS: dict[type, Callable[[Any, Any], bool]] = {
    EqualTo: operator.eq,
    GreaterThan: operator.gt,
    GreaterThanOrEqual: operator.ge,
    LessThan: operator.lt,
    LessThanOrEqual: operator.le,
}
_STRING_TESTS: dict[type, Callable[[str, str], bool]] = {
    StringStartsWith: str.startswith,
    StringEndsWith: str.endswith,
    StringContains: operator.contains,
}


def _column(filter_: Filter) -> str | None:
    attribute = getattr(filter_, "attribute", None)
    return attribute[0] if attribute and len(attribute) == 1 else None


def pushable(filter_: Filter) -> bool:
    """True when the source can evaluate ``filter_`` on the listing."""
    if isinstance(filter_, Not):
        return pushable(filter_.child)
    supported = (*_COMPARISONS, *_STRING_TESTS, EqualNullSafe, In, IsNull, IsNotNull)
    return isinstance(filter_, supported) and _column(filter_) in FILE_COLUMNS


def file_values(path: str, size: int | None, modified_microseconds: int | None) -> dict[str, Any]:
    """The file columns of a row, as Python values comparable with filter values."""
    modified = None
    if modified_microseconds is not None:
        modified = _EPOCH + datetime.timedelta(microseconds=modified_microseconds)
    return {"path": path, "size": size, "modificationTime": modified}


def _evaluate(filter_: Filter, values: dict[str, Any]) -> bool | None:
    """SQL three-valued logic: True, False or None (NULL)."""
    if isinstance(filter_, Not):
        result = _evaluate(filter_.child, values)
        return None if result is None else not result
    value = values[_column(filter_)]
    if isinstance(filter_, IsNull):
        return value is None
    if isinstance(filter_, IsNotNull):
        return value is not None
    if isinstance(filter_, EqualNullSafe):
        return value == filter_.value
    if value is None:
        return None
    if isinstance(filter_, In):  # x IN (a, NULL) is NULL, not false, when x is not a
        return True if value in filter_.value else (None if None in filter_.value else False)
    if type(filter_) in _STRING_TESTS:
        return _STRING_TESTS[type(filter_)](value, filter_.value)
    return _COMPARISONS[type(filter_)](value, filter_.value)


def matches(filters: Iterable[Filter], values: dict[str, Any]) -> bool:
    """True when every filter (ANDed, as Spark pushes them) holds for a file's values."""
    return all(_evaluate(f, values) is True for f in filters)

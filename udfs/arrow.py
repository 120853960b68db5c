"""Arrow <-> numpy plumbing shared by the SQL function adapters: SQL arguments in, model
structs out. Model layouts are declared once as ``(field, SQL type)`` pairs in
:mod:`dicomsql.stats`; the Arrow types and the Spark DDL both come from them."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "arrow_type",
    "struct_ddl",
    "column",
    "struct_array",
    "Expected",
    "numbers",
    "struct_numbers",
    "struct_features",
    "labels",
    "rows_of",
    "objects",
    "model_row",
    "first_valid",
    "Models",
    "predict_rows",
]

_SCALARS = {
    "double": pa.float64(),
    "float": pa.float32(),
    "bigint": pa.int64(),
    "string": pa.string(),
    "boolean": pa.bool_(),
    "binary": pa.binary(),
}
_ARRAY = re.compile(r"^array<(.+)>$")

Fields = Sequence[tuple[str, str]]


def arrow_type(sql: str) -> pa.DataType:
    """The Arrow type of a SQL type written ``double``, ``array<double>``..."""
    match = _ARRAY.match(sql)
    return pa.list_(arrow_type(match.group(1))) if match else _SCALARS[sql]


def struct_ddl(fields: Fields) -> str:
    """``STRUCT<field: TYPE, ...>`` for Spark."""
    return "STRUCT<" + ", ".join(f"{name}: {sql.upper()}" for name, sql in fields) + ">"


def column(values: Sequence[Any], sql: str) -> pa.Array:
    """An Arrow array of SQL type ``sql`` from Python values; numpy arrays become list
    values without a detour through Python lists, NaN scalars become NULL."""
    match = _ARRAY.match(sql)
    if sql in ("double", "float") and isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return pa.array(values, type=arrow_type(sql), mask=np.isnan(values))
    if match is None:
        kind = arrow_type(sql)
        if sql == "double":
            values = [
                None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)
                for v in values
            ]
        return pa.array(values, type=kind)
    element = match.group(1)
    present = [v for v in values if v is not None]
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum([0 if v is None else len(v) for v in values], out=offsets[1:])
    if element in ("double", "float") and all(isinstance(v, np.ndarray) for v in present):
        flat = np.concatenate([v.ravel() for v in present]) if present else np.empty(0)
        child = pa.array(flat.astype(np.float32 if element == "float" else np.float64, copy=False))
    else:
        child = column(
            [
                item
                for v in present
                for item in (v.tolist() if isinstance(v, np.ndarray) and v.ndim == 1 else v)
            ],
            element,
        )
    mask = pa.array([v is None for v in values]) if len(present) < len(values) else None
    return pa.ListArray.from_arrays(pa.array(offsets), child, mask=mask)


def struct_array(rows: Sequence[dict[str, Any] | None], fields: Fields) -> pa.StructArray:
    """A struct array of ``fields`` from dicts (missing keys NULL; a None row is NULL)."""
    arrays = [
        column([None if row is None else row.get(name) for row in rows], sql)
        for name, sql in fields
    ]
    mask = pa.array([row is None for row in rows], type=pa.bool_())
    return pa.StructArray.from_arrays(arrays, names=[name for name, _ in fields], mask=mask)


class Expected(ValueError):
    """What a reader expected of an argument and what it got; the registry names the function
    and the argument (``field`` names a STRUCT field of it)."""

    def __init__(self, expected: str, got: str, field: str | None = None) -> None:
        super().__init__(f"must be {expected}, got {got}")
        self.expected, self.got, self.field = expected, got, field


def numbers(array: pa.Array) -> np.ndarray:
    """A numeric (or boolean, or DECIMAL) column as float64, NULL as NaN."""
    kind = array.type
    if (
        pa.types.is_boolean(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
    ):
        return np.array(
            pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False), dtype=float
        )  # a writable copy
    if pa.types.is_null(kind):
        return np.full(len(array), np.nan)
    raise Expected("a number or a boolean", f"a column of type {kind}")


def _struct(array: pa.Array, expected: str) -> pa.StructArray:
    if not pa.types.is_struct(array.type):
        raise Expected(expected, f"{array.type}")
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def struct_numbers(array: pa.Array) -> dict[str, np.ndarray]:
    """The numeric fields of a STRUCT column, by name, in order (``struct(age, dose)``)."""
    array = _struct(array, "a STRUCT of numbers, e.g. struct(age, dose)")
    missing = ~array.is_valid().to_numpy(zero_copy_only=False)
    columns: dict[str, np.ndarray] = {}
    for index, field in enumerate(array.type):
        try:
            values = numbers(array.field(index))
        except Expected as exc:
            raise Expected(exc.expected, exc.got, field.name) from None
        values[missing] = np.nan  # a NULL struct: all NULL
        columns[field.name] = values
    return columns


def struct_features(array: pa.Array) -> dict[str, np.ndarray]:
    """The fields of a STRUCT of model features, by name, in order: numbers and booleans as
    float64 (NULL as NaN), strings as object arrays (NULL as None)."""
    array = _struct(array, "a STRUCT of numbers and strings, e.g. struct(age, sex)")
    missing = ~array.is_valid().to_numpy(zero_copy_only=False)
    columns: dict[str, np.ndarray] = {}
    for index, field in enumerate(array.type):
        child = array.field(index)
        if pa.types.is_string(child.type) or pa.types.is_large_string(child.type):
            values = np.array(child.to_pylist(), dtype=object)
            values[missing] = None
        else:
            try:
                values = numbers(child)
            except Expected:
                raise Expected(
                    "a number, boolean or string", f"a field of type {child.type}", field.name
                ) from None
            values[missing] = np.nan
        columns[field.name] = values
    return columns


def rows_of(columns: dict[str, np.ndarray], where: np.ndarray) -> dict[str, np.ndarray]:
    """The rows ``where`` (indexes or a mask) of every column of a features mapping."""
    return {name: values[where] for name, values in columns.items()}


def labels(array: pa.Array) -> list[Any]:
    """Any column as Python values (group labels, strata keys, text)."""
    return array.to_pylist()


def objects(array: pa.Array) -> np.ndarray:
    """Any column as a 1-d object array of Python values (None for NULL), to index by rows."""
    values = array.to_pylist()
    out = np.empty(len(values), dtype=object)
    for row, value in enumerate(values):  # element by element: list values stay one cell each
        out[row] = value
    return out


def model_row(value: Any) -> dict[str, Any] | None:
    """A table function's model argument (a Spark ``Row``, or None) as the model dict."""
    return None if value is None else value.asDict(recursive=True)


def first_valid(given: Any) -> Any:
    """The first non-NULL value of an Arrow column (a table function's Python value as is)."""
    if not isinstance(given, (pa.Array, pa.ChunkedArray)):
        return given
    valid = given.drop_null() if len(given) else given
    return valid[0].as_py() if len(valid) else None


class Models:
    """The distinct models of a STRUCT column (a join usually repeats one model on many
    rows): each decoded once, rows grouped by model.

    Rows hold the same model when every field is equal; list fields are compared by length
    and sum (computed in Arrow, without turning large baselines into Python lists).
    """

    def __init__(self, array: pa.Array) -> None:
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        self.array = array
        keys = [_field_key(array.field(i)) for i in range(array.type.num_fields)]
        valid = array.is_valid().to_pylist()
        self.groups: dict[Any, list[int]] = {}
        for row, key in enumerate(zip(*keys)):
            if valid[row]:
                self.groups.setdefault(key, []).append(row)

    def __iter__(self):
        """(model dict, row indexes) for each distinct model."""
        for rows in self.groups.values():
            yield self.array[rows[0]].as_py(), np.asarray(rows)


def _field_key(field: pa.Array) -> list[Any]:
    """A hashable summary per row: the value itself, or for a (nested) list of numbers its
    number of values and their sum, computed over the flat values."""
    if not pa.types.is_list(field.type):
        return field.to_pylist()
    bounds, level = np.arange(len(field) + 1), field
    while pa.types.is_list(level.type):  # follow the offsets down to the numbers
        bounds = level.offsets.to_numpy(zero_copy_only=False)[bounds]
        level = level.values
    if not (pa.types.is_floating(level.type) or pa.types.is_integer(level.type)):
        return [repr(value) for value in field.to_pylist()]
    values = np.nan_to_num(level.to_numpy(zero_copy_only=False).astype(float), nan=0.0)
    cumulative = np.r_[0.0, np.cumsum(values)]
    return list(
        zip(np.diff(bounds).tolist(), (cumulative[bounds[1:]] - cumulative[bounds[:-1]]).tolist())
    )


def predict_rows(
    models: Models, predict: Callable[[dict[str, Any], np.ndarray], np.ndarray]
) -> np.ndarray:
    """DOUBLE predictions, a row each, from a column of models: ``predict(model_dict, indexes)``
    gives the values of the rows that hold that model. A NULL model, a model with an
    ``error`` (no estimates) and a NaN prediction give NULL."""
    result = np.full(len(models.array), np.nan)
    for fitted, where in models:
        if not fitted.get("error"):
            result[where] = predict(fitted, where)
    return result

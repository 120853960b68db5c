"""Spark types as HiveServer2 sees them, and Arrow record batches as TCLIService row sets.

Types follow Spark's own Thrift server: every Spark type has its Hive ``TTypeId`` (DECIMAL with
precision and scale qualifiers); values of types a Hive client has no column for (DECIMAL,
DATE, TIMESTAMP, intervals) travel as their Spark string form, and ARRAY, MAP and STRUCT as
JSON text. :func:`column_for` says, per Spark type, what travels; the Spark side turns a
query's columns into that (``engine.serving_frame``), so this module only moves Arrow arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from TCLIService import ttypes

__all__ = [
    "Column",
    "column_for",
    "table_schema",
    "to_row_set",
    "empty_row_set",
    "arrow_table",
    "JDBC_TYPES",
]

T = ttypes.TTypeId

#: java.sql.Types codes, for the DATA_TYPE column of catalogue results.
JDBC_TYPES = {
    T.NULL_TYPE: 0,
    T.BOOLEAN_TYPE: 16,
    T.TINYINT_TYPE: -6,
    T.SMALLINT_TYPE: 5,
    T.INT_TYPE: 4,
    T.BIGINT_TYPE: -5,
    T.FLOAT_TYPE: 6,
    T.DOUBLE_TYPE: 8,
    T.STRING_TYPE: 12,
    T.VARCHAR_TYPE: 12,
    T.CHAR_TYPE: 1,
    T.DECIMAL_TYPE: 3,
    T.DATE_TYPE: 91,
    T.TIMESTAMP_TYPE: 93,
    T.BINARY_TYPE: -2,
    T.ARRAY_TYPE: 2003,
    T.MAP_TYPE: 2000,
    T.STRUCT_TYPE: 2002,
    T.USER_DEFINED_TYPE: 1111,
    T.INTERVAL_DAY_TIME_TYPE: 1111,
    T.INTERVAL_YEAR_MONTH_TYPE: 1111,
}

#: Spark type name (``DataType.typeName()``) -> (TTypeId, how the value travels).
#: "as is": the Arrow value itself; "text": Spark's string form; "json": to_json.
_SPARK_TYPES = {
    "void": (T.NULL_TYPE, "text"),
    "boolean": (T.BOOLEAN_TYPE, "as is"),
    "byte": (T.TINYINT_TYPE, "as is"),
    "short": (T.SMALLINT_TYPE, "as is"),
    "integer": (T.INT_TYPE, "as is"),
    "long": (T.BIGINT_TYPE, "as is"),
    "float": (T.FLOAT_TYPE, "as is"),
    "double": (T.DOUBLE_TYPE, "as is"),
    "string": (T.STRING_TYPE, "as is"),
    "char": (T.CHAR_TYPE, "as is"),
    "varchar": (T.VARCHAR_TYPE, "as is"),
    "binary": (T.BINARY_TYPE, "as is"),
    "decimal": (T.DECIMAL_TYPE, "text"),
    "date": (T.DATE_TYPE, "text"),
    "timestamp": (T.TIMESTAMP_TYPE, "text"),
    "timestamp_ntz": (T.TIMESTAMP_TYPE, "text"),
    "interval": (T.STRING_TYPE, "text"),  # CalendarIntervalType
    "daytimeinterval": (T.INTERVAL_DAY_TIME_TYPE, "text"),
    "yearmonthinterval": (T.INTERVAL_YEAR_MONTH_TYPE, "text"),
    "variant": (T.STRING_TYPE, "json"),
    "array": (T.ARRAY_TYPE, "json"),
    "map": (T.MAP_TYPE, "json"),
    "struct": (T.STRUCT_TYPE, "json"),
}


@dataclass(frozen=True)
class Column:
    """One result column: its name, Hive type and how its values travel."""

    name: str
    type_id: int
    type_name: str
    travels: str = "as is"
    precision: int | None = None
    scale: int | None = None
    comment: str | None = None

    @property
    def jdbc_type(self) -> int:
        """The java.sql.Types code of this column."""
        return JDBC_TYPES.get(self.type_id, 1111)


def column_for(name: str, spark_type: Any, comment: str | None = None) -> Column:
    """The :class:`Column` of a Spark ``DataType`` (pyspark's, or its JSON type name).

    >>> from pyspark.sql.types import DecimalType, ArrayType, LongType
    >>> column_for("d", DecimalType(10, 2))
    Column(name='d', type_id=15, type_name='decimal(10,2)', travels='text', precision=10, scale=2, comment=None)
    >>> column_for("a", ArrayType(LongType())).travels
    'json'
    """
    # a type Hive has no name for (TIME, a UDT...) travels as its text, declared STRING:
    # Hive JDBC drivers refuse USER_DEFINED_TYPE columns
    type_id, travels = _SPARK_TYPES.get(spark_type.typeName(), (T.STRING_TYPE, "text"))
    precision = getattr(spark_type, "precision", None) if type_id == T.DECIMAL_TYPE else None
    scale = getattr(spark_type, "scale", None) if type_id == T.DECIMAL_TYPE else None
    return Column(name, type_id, spark_type.simpleString(), travels, precision, scale, comment)


def table_schema(columns: Sequence[Column]) -> ttypes.TTableSchema:
    """The ``TTableSchema`` of a result (positions from 1, DECIMAL qualifiers)."""
    return ttypes.TTableSchema(columns=[_column_desc(c, i) for i, c in enumerate(columns, start=1)])


def _column_desc(column: Column, position: int) -> ttypes.TColumnDesc:
    qualifiers = None
    if column.precision is not None:
        qualifiers = ttypes.TTypeQualifiers(
            qualifiers={
                "precision": ttypes.TTypeQualifierValue(i32Value=column.precision),
                "scale": ttypes.TTypeQualifierValue(i32Value=column.scale or 0),
            }
        )
    entry = ttypes.TTypeEntry(
        primitiveEntry=ttypes.TPrimitiveTypeEntry(type=column.type_id, typeQualifiers=qualifiers)
    )
    return ttypes.TColumnDesc(
        columnName=column.name,
        typeDesc=ttypes.TTypeDesc(types=[entry]),
        position=position,
        comment=column.comment,
    )


# --- values ---------------------------------------------------------------------------------

#: TTypeId -> (TColumn field, its column class, TColumnValue field, its value class, the value a NULL slot holds)
_VALUE_SLOTS = {
    T.BOOLEAN_TYPE: ("boolVal", ttypes.TBoolColumn, "boolVal", ttypes.TBoolValue, False),
    T.TINYINT_TYPE: ("byteVal", ttypes.TByteColumn, "byteVal", ttypes.TByteValue, 0),
    T.SMALLINT_TYPE: ("i16Val", ttypes.TI16Column, "i16Val", ttypes.TI16Value, 0),
    T.INT_TYPE: ("i32Val", ttypes.TI32Column, "i32Val", ttypes.TI32Value, 0),
    T.BIGINT_TYPE: ("i64Val", ttypes.TI64Column, "i64Val", ttypes.TI64Value, 0),
    T.FLOAT_TYPE: ("doubleVal", ttypes.TDoubleColumn, "doubleVal", ttypes.TDoubleValue, 0.0),
    T.DOUBLE_TYPE: ("doubleVal", ttypes.TDoubleColumn, "doubleVal", ttypes.TDoubleValue, 0.0),
    T.BINARY_TYPE: ("binaryVal", ttypes.TBinaryColumn, "stringVal", ttypes.TStringValue, b""),
}
_TEXT_SLOT = ("stringVal", ttypes.TStringColumn, "stringVal", ttypes.TStringValue, "")


def _slot(column: Column) -> tuple:
    return _VALUE_SLOTS.get(column.type_id, _TEXT_SLOT) if column.travels == "as is" else _TEXT_SLOT


def _values(array: pa.Array, filler: Any) -> list:
    """Python values of ``array`` with NULLs replaced by ``filler`` (the nulls bitmap says
    which they are)."""
    if array.null_count:
        array = array.fill_null(filler)
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
        return array.to_numpy(zero_copy_only=False).tolist()
    return array.to_pylist()


def _nulls(array: pa.Array) -> bytes:
    """Hive's nulls bitmap: bit i (least significant first) set when row i is NULL."""
    if not array.null_count:
        return b""
    return np.packbits(array.is_null().to_numpy(zero_copy_only=False), bitorder="little").tobytes()


def to_row_set(
    columns: Sequence[Column], batch: pa.RecordBatch | pa.Table, offset: int, columnar: bool
) -> ttypes.TRowSet:
    """The rows of ``batch`` as a ``TRowSet``: columnar (protocol V6 and later) or row by row."""
    arrays = [batch.column(i) for i in range(len(columns))]
    arrays = [a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrays]
    if columnar:
        return ttypes.TRowSet(
            startRowOffset=offset, rows=[], columns=[_column(c, a) for c, a in zip(columns, arrays)]
        )
    return ttypes.TRowSet(startRowOffset=offset, rows=_rows(columns, arrays, batch.num_rows))


def _column(column: Column, array: pa.Array) -> ttypes.TColumn:
    field, column_class, _, _, filler = _slot(column)
    return ttypes.TColumn(
        **{field: column_class(values=_values(array, filler), nulls=_nulls(array))}
    )


def _rows(columns: Sequence[Column], arrays: Iterable[pa.Array], count: int) -> list[ttypes.TRow]:
    cells = []
    for column, array in zip(columns, arrays):
        _, _, field, value_class, _ = _slot(column)
        cells.append(
            [ttypes.TColumnValue(**{field: value_class(value=v)}) for v in array.to_pylist()]
        )
    return [ttypes.TRow(colVals=[cell[r] for cell in cells]) for r in range(count)]


def empty_row_set(columns: Sequence[Column], columnar: bool) -> ttypes.TRowSet:
    """A row set with no rows (the end of a result)."""
    if not columnar:
        return ttypes.TRowSet(startRowOffset=0, rows=[])
    return ttypes.TRowSet(
        startRowOffset=0,
        rows=[],
        columns=[_column(c, pa.array([], _arrow_type(c))) for c in columns],
    )


def _arrow_type(column: Column) -> pa.DataType:
    return {
        "boolVal": pa.bool_(),
        "byteVal": pa.int8(),
        "i16Val": pa.int16(),
        "i32Val": pa.int32(),
        "i64Val": pa.int64(),
        "doubleVal": pa.float64(),
        "binaryVal": pa.binary(),
    }.get(_slot(column)[0], pa.string())


def arrow_table(columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> pa.Table:
    """An Arrow table of ``rows`` (Python values) typed for ``columns``: catalogue results."""
    data = list(zip(*rows)) if rows else [()] * len(columns)
    return pa.table(
        {
            f"_{i}": pa.array(list(values), _arrow_type(c))
            for i, (c, values) in enumerate(zip(columns, data))
        }
    )

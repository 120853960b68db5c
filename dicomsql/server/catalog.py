"""The catalogue operations of HiveServer2 (JDBC ``DatabaseMetaData``): their result columns as
the JDBC specification names them, and their rows read from a client's Spark session.

Temporary views (the DICOM tables, the demo, what ``--bootstrap`` made and the client's own)
belong to no database: they are listed with a NULL ``TABLE_SCHEM`` whatever schema pattern is
asked, as Spark's Thrift server lists them. Patterns are JDBC's (``%`` any text, ``_`` one
character, ``\\`` escapes) and also Hive's ``*``; NULL or empty matches everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from TCLIService.ttypes import TTypeId as T

from .rowsets import JDBC_TYPES, Column, column_for

__all__ = [
    "COLUMNS",
    "matcher",
    "schemas",
    "tables",
    "table_types",
    "columns",
    "functions",
    "type_info",
]


def _columns(spec: str) -> list[Column]:
    """Columns from ``"NAME type, ..."`` with types string/int/smallint/bool."""
    kinds = {
        "string": (T.STRING_TYPE, "string"),
        "int": (T.INT_TYPE, "int"),
        "smallint": (T.SMALLINT_TYPE, "smallint"),
        "bool": (T.BOOLEAN_TYPE, "boolean"),
    }
    return [Column(name, *kinds[kind]) for name, kind in (item.split() for item in spec.split(","))]


#: Result columns of each catalogue operation.
COLUMNS: dict[str, list[Column]] = {
    "catalogs": _columns("TABLE_CAT string"),
    "schemas": _columns("TABLE_SCHEM string, TABLE_CATALOG string"),
    "table_types": _columns("TABLE_TYPE string"),
    "tables": _columns(
        "TABLE_CAT string, TABLE_SCHEM string, TABLE_NAME string, TABLE_TYPE string, REMARKS string, "
        "TYPE_CAT string, TYPE_SCHEM string, TYPE_NAME string, SELF_REFERENCING_COL_NAME string, REF_GENERATION string"
    ),
    "columns": _columns(
        "TABLE_CAT string, TABLE_SCHEM string, TABLE_NAME string, COLUMN_NAME string, DATA_TYPE int, "
        "TYPE_NAME string, COLUMN_SIZE int, BUFFER_LENGTH smallint, DECIMAL_DIGITS int, NUM_PREC_RADIX int, "
        "NULLABLE int, REMARKS string, COLUMN_DEF string, SQL_DATA_TYPE int, SQL_DATETIME_SUB int, "
        "CHAR_OCTET_LENGTH int, ORDINAL_POSITION int, IS_NULLABLE string, SCOPE_CATALOG string, "
        "SCOPE_SCHEMA string, SCOPE_TABLE string, SOURCE_DATA_TYPE smallint, IS_AUTO_INCREMENT string"
    ),
    "functions": _columns(
        "FUNCTION_CAT string, FUNCTION_SCHEM string, FUNCTION_NAME string, REMARKS string, FUNCTION_TYPE int, SPECIFIC_NAME string"
    ),
    "type_info": _columns(
        "TYPE_NAME string, DATA_TYPE int, PRECISION int, LITERAL_PREFIX string, LITERAL_SUFFIX string, "
        "CREATE_PARAMS string, NULLABLE smallint, CASE_SENSITIVE bool, SEARCHABLE smallint, "
        "UNSIGNED_ATTRIBUTE bool, FIXED_PREC_SCALE bool, AUTO_INCREMENT bool, LOCAL_TYPE_NAME string, "
        "MINIMUM_SCALE smallint, MAXIMUM_SCALE smallint, SQL_DATA_TYPE int, SQL_DATETIME_SUB int, NUM_PREC_RADIX int"
    ),
    "primary_keys": _columns(
        "TABLE_CAT string, TABLE_SCHEM string, TABLE_NAME string, COLUMN_NAME string, KEY_SEQ int, PK_NAME string"
    ),
    "cross_reference": _columns(
        "PKTABLE_CAT string, PKTABLE_SCHEM string, PKTABLE_NAME string, PKCOLUMN_NAME string, "
        "FKTABLE_CAT string, FKTABLE_SCHEM string, FKTABLE_NAME string, FKCOLUMN_NAME string, KEY_SEQ smallint, "
        "UPDATE_RULE smallint, DELETE_RULE smallint, FK_NAME string, PK_NAME string, DEFERRABILITY smallint"
    ),
}

Rows = list[tuple[Any, ...]]

#: Decimal digits of the numeric types (DECIMAL: the most it may have).
_PRECISION = {
    T.TINYINT_TYPE: 3,
    T.SMALLINT_TYPE: 5,
    T.INT_TYPE: 10,
    T.BIGINT_TYPE: 19,
    T.FLOAT_TYPE: 7,
    T.DOUBLE_TYPE: 15,
    T.DECIMAL_TYPE: 38,
}


def matcher(pattern: str | None) -> Callable[[str], bool]:
    """A case-insensitive test of names against a JDBC/Hive pattern.

    >>> match = matcher("demo%")
    >>> match("demo_images"), match("Demo_patients"), match("ct")
    (True, True, False)
    >>> matcher("demo\\\\_images")("demoximages"), matcher(None)("anything"), matcher("a\\\\")("a\\\\")
    (False, True, True)
    """
    if not pattern or pattern in ("%", "*"):
        return lambda _name: True
    parts = []
    for token in re.findall(r"\\.|.", pattern, re.DOTALL):  # a lone trailing \ stands for itself
        parts.append(
            re.escape(token[1:] or token)
            if token.startswith("\\")
            else ".*"
            if token in "%*"
            else "."
            if token == "_"
            else re.escape(token)
        )
    regex = re.compile("".join(parts), re.IGNORECASE | re.DOTALL)
    return lambda name: regex.fullmatch(name or "") is not None


def schemas(spark: Any, schema_pattern: str | None) -> Rows:
    match = matcher(schema_pattern)
    return [(db.name, "") for db in spark.catalog.listDatabases() if match(db.name)]


def table_types() -> Rows:
    return [("TABLE",), ("VIEW",)]


def _relations(
    spark: Any, schema_pattern: str | None, table_pattern: str | None
) -> list[tuple[str | None, Any]]:
    """(schema, catalog Table) of the matching relations; temporary views with schema None."""
    match_schema, match_table = matcher(schema_pattern), matcher(table_pattern)
    found: list[tuple[str | None, Any]] = []
    for index, db in enumerate(db.name for db in spark.catalog.listDatabases()):
        wanted = match_schema(db)
        if not wanted and index > 0:
            continue
        for table in spark.catalog.listTables(db):  # every listing includes the temporary views
            if not match_table(table.name):
                continue
            if table.isTemporary:
                if index == 0:
                    found.append((None, table))
            elif wanted:
                found.append((db, table))
    return found


def tables(
    spark: Any, schema_pattern: str | None, table_pattern: str | None, types: Sequence[str] | None
) -> Rows:
    wanted = {t.upper() for t in types} if types else {"TABLE", "VIEW"}
    rows = []
    for schema, table in _relations(spark, schema_pattern, table_pattern):
        kind = "VIEW" if table.isTemporary or table.tableType == "VIEW" else "TABLE"
        if kind in wanted:
            rows.append(
                (
                    "",
                    schema,
                    table.name,
                    kind,
                    table.description or "",
                    None,
                    None,
                    None,
                    None,
                    None,
                )
            )
    return rows


def columns(
    spark: Any, schema_pattern: str | None, table_pattern: str | None, column_pattern: str | None
) -> Rows:
    match_column = matcher(column_pattern)
    rows = []
    for schema, table in _relations(spark, schema_pattern, table_pattern):
        name = f"`{table.name}`" if schema is None else f"`{schema}`.`{table.name}`"
        try:
            fields = spark.table(name).schema.fields
        except Exception:  # noqa: BLE001 - a view whose source is gone lists no columns
            continue
        for position, field in enumerate(fields, start=1):
            if match_column(field.name):
                rows.append(_column_row(schema, table.name, field, position))
    return rows


def _column_row(schema: str | None, table: str, field: Any, position: int) -> tuple[Any, ...]:
    column = column_for(field.name, field.dataType, field.metadata.get("comment"))
    size = (
        {**_PRECISION, T.BOOLEAN_TYPE: 1, T.DATE_TYPE: 10, T.TIMESTAMP_TYPE: 29}.get(column.type_id)
        if column.precision is None
        else column.precision
    )
    digits = (
        column.scale
        if column.type_id == T.DECIMAL_TYPE
        else 6
        if column.type_id == T.TIMESTAMP_TYPE
        else None
    )
    radix = 10 if column.type_id in _PRECISION else None
    return (
        "",
        schema,
        table,
        field.name,
        column.jdbc_type,
        column.type_name if "<" in column.type_name else column.type_name.upper(),
        size,
        None,
        digits,
        radix,
        1 if field.nullable else 0,
        column.comment or "",
        None,
        None,
        None,
        None,
        position,
        "YES" if field.nullable else "NO",
        None,
        None,
        None,
        None,
        "NO",
    )


def functions(spark: Any, schema_pattern: str | None, function_pattern: str | None) -> Rows:
    """Spark's functions and dicomsql's, these with the first paragraph of their docs."""
    from ..udfs.registry import FUNCTIONS

    match, match_schema = matcher(function_pattern), matcher(schema_pattern)
    rows = []
    for function in spark.catalog.listFunctions():
        schema = function.namespace[0] if function.namespace else None
        if not match(function.name) or (schema is not None and not match_schema(schema)):
            continue
        ours = FUNCTIONS.get(function.name)
        remarks = ours.description if ours else (function.description or "")
        kind = 2 if ours is not None and ours.kind == "table" else 1
        rows.append(("", schema, function.name, remarks, kind, function.className or function.name))
    return rows


def type_info() -> Rows:
    """One row per Hive type a client can name (JDBC getTypeInfo)."""
    types = [
        ("VOID", T.NULL_TYPE),
        ("BOOLEAN", T.BOOLEAN_TYPE),
        ("TINYINT", T.TINYINT_TYPE),
        ("SMALLINT", T.SMALLINT_TYPE),
        ("INT", T.INT_TYPE),
        ("BIGINT", T.BIGINT_TYPE),
        ("FLOAT", T.FLOAT_TYPE),
        ("DOUBLE", T.DOUBLE_TYPE),
        ("STRING", T.STRING_TYPE),
        ("CHAR", T.CHAR_TYPE),
        ("VARCHAR", T.VARCHAR_TYPE),
        ("DATE", T.DATE_TYPE),
        ("TIMESTAMP", T.TIMESTAMP_TYPE),
        ("BINARY", T.BINARY_TYPE),
        ("DECIMAL", T.DECIMAL_TYPE),
        ("ARRAY", T.ARRAY_TYPE),
        ("MAP", T.MAP_TYPE),
        ("STRUCT", T.STRUCT_TYPE),
    ]
    rows = []
    for name, type_id in types:
        text = type_id in (T.STRING_TYPE, T.CHAR_TYPE, T.VARCHAR_TYPE)
        rows.append(
            (
                name,
                JDBC_TYPES[type_id],
                _PRECISION.get(type_id),
                "'" if text else None,
                "'" if text else None,
                None,
                1,
                text,
                3 if text else 2,
                type_id not in _PRECISION,
                False,
                False,
                None,
                0,
                38 if type_id == T.DECIMAL_TYPE else 0,
                None,
                None,
                10 if type_id in _PRECISION else None,
            )
        )
    return rows

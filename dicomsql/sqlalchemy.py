"""A SQLAlchemy dialect for the dicomsql server: ``dicomsql://127.0.0.1:10000/default``.

PyHive's ``hive://`` dialect runs queries against a Spark SQL endpoint, but its inspection
reads Hive's output formats: it lists databases as tables (Spark's ``SHOW TABLES`` has the
namespace first) and reads types from Hive's ``DESCRIBE``. This dialect keeps PyHive's
connection, SQL compiler and quoting and reads Spark's catalogue commands instead, so BI
tools (Superset, JupySQL...) see the tables, views and typed columns.

Spark's temporary views (the DICOM tables and the demo's views are temporary views of each
client's session) belong to no database. They are listed with the current database
(``schema=None``, where unqualified names resolve to them first) and under the schema
``session``: Spark 4.3 resolves ``session.demo_images`` to the temporary view, so a tool that
qualifies every table with its schema still reaches them.

The parsing of Spark's output is done by pure functions, tested without a server.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Sequence
from typing import Any

from pyhive import hive
from pyhive.sqlalchemy_hive import HiveDialect
from sqlalchemy import exc, text, types
from sqlalchemy.engine import reflection

__all__ = [
    "SESSION",
    "DicomsqlDialect",
    "SparkDate",
    "SparkType",
    "column_type",
    "describe_columns",
    "relation_names",
    "schema_names",
]

#: The schema under which Spark's temporary views are listed and qualified.
SESSION = "session"

#: Spark's error class for a table or view that does not exist.
_NOT_FOUND = "TABLE_OR_VIEW_NOT_FOUND"


class SparkDate(types.TypeDecorator):
    """A Spark DATE: the server sends dates as ``YYYY-MM-DD`` text, read as dates."""

    impl = types.Date
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return datetime.date.fromisoformat(value) if isinstance(value, str) else value


class SparkType(types.UserDefinedType):
    """A Spark type with no SQLAlchemy equivalent (``array<...>``, ``map<...>``,
    ``struct<...>``, ``interval``, ``variant``...), kept as Spark spells it. Over JDBC its
    values arrive as text (JSON for the complex types)."""

    cache_ok = True

    def __init__(self, spark_type: str) -> None:
        self.spark_type = spark_type

    def get_col_spec(self, **kw: Any) -> str:
        return self.spark_type

    @property
    def python_type(self) -> type:
        return str


#: Spark's scalar type names (as ``DESCRIBE`` spells them) to SQLAlchemy types.
_SCALAR_TYPES: dict[str, type[types.TypeEngine]] = {
    "boolean": types.Boolean,
    "tinyint": types.SmallInteger,
    "smallint": types.SmallInteger,
    "int": types.Integer,
    "bigint": types.BigInteger,
    "float": types.Float,
    "double": types.Double,
    "string": types.String,
    "varchar": types.String,
    "char": types.String,
    "binary": types.LargeBinary,
    "date": SparkDate,
    "timestamp": types.DateTime,
    "timestamp_ntz": types.DateTime,
}

_DECIMAL = re.compile(r"decimal\((\d+),\s*(\d+)\)")


def column_type(spark_type: str) -> types.TypeEngine:
    """The SQLAlchemy type of a column whose Spark type (in ``DESCRIBE``'s spelling) is
    ``spark_type``; a type SQLAlchemy has no equivalent for is a :class:`SparkType`.

    >>> column_type("bigint"), column_type("decimal(10,2)"), column_type("string collate UTF8_LCASE")
    (BigInteger(), Numeric(precision=10, scale=2), String())
    >>> column_type("array<struct<a:int,b:map<string,double>>>")
    SparkType('array<struct<a:int,b:map<string,double>>>')
    """
    spark_type = spark_type.strip()
    decimal = _DECIMAL.fullmatch(spark_type.lower())
    if decimal:
        return types.Numeric(int(decimal[1]), int(decimal[2]))
    # the name ends at the first '<' or '(' ('array<int>', 'varchar(10)') or space (a collation)
    name = re.match(r"[a-z_]*", spark_type.lower())[0]
    scalar = _SCALAR_TYPES.get(name)
    return scalar() if scalar else SparkType(spark_type)


def describe_columns(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """SQLAlchemy's column descriptions from the rows of Spark's ``DESCRIBE table``
    (col_name, data_type, comment): the columns end at the first empty row or row starting
    with ``#`` (partition, clustering or detailed information follows; partition columns
    are already among the columns).

    >>> rows = [("age", "double", None), ("site", "string", "hospital"),
    ...         ("# Partition Information", "", ""), ("# col_name", "data_type", "comment"),
    ...         ("site", "string", "hospital")]
    >>> [(c["name"], c["type"], c["comment"]) for c in describe_columns(rows)]
    [('age', Double(), None), ('site', String(), 'hospital')]
    """
    columns = []
    for name, data_type, comment in rows:
        name = (name or "").strip()
        if not name or name.startswith("#"):
            break
        columns.append(
            {
                "name": name,
                "type": column_type(data_type),
                "nullable": True,
                "default": None,
                "comment": comment or None,
            }
        )
    return columns


def relation_names(rows: Iterable[Sequence[Any]], schema: str | None) -> list[str]:
    """The names ``schema`` holds among the rows of Spark's ``SHOW TABLES`` or ``SHOW VIEWS``
    (namespace, name, isTemporary), once each, in order: all of them for ``schema=None``
    (unqualified names reach the current database's tables and the temporary views), the
    temporary views (which have no namespace) for :data:`SESSION`, the others otherwise.

    >>> rows = [("default", "ct_series", False), ("", "demo_images", True), ("", "ct_series", True)]
    >>> relation_names(rows, None), relation_names(rows, "session"), relation_names(rows, "default")
    (['ct_series', 'demo_images'], ['demo_images', 'ct_series'], ['ct_series'])
    """
    return list(
        dict.fromkeys(name for namespace, name, _temporary in rows if _holds(schema, namespace))
    )


def _holds(schema: str | None, namespace: str | None) -> bool:
    """Whether a name listed in ``namespace`` (empty for a temporary view) is in ``schema``."""
    if schema is None:
        return True
    return not namespace if schema == SESSION else bool(namespace)


def schema_names(rows: Iterable[Sequence[Any]]) -> list[str]:
    """The schemas in the rows of Spark's ``SHOW DATABASES`` (namespace), then
    :data:`SESSION`, where the temporary views are listed.

    >>> schema_names([("default",), ("clinic",)])
    ['default', 'clinic', 'session']
    """
    return list(dict.fromkeys([*(row[0] for row in rows), SESSION]))


class DicomsqlDialect(HiveDialect):
    """PyHive's Hive dialect (connection, compiler, quoting) with inspection that reads
    Spark's ``SHOW DATABASES``, ``SHOW TABLES``, ``SHOW VIEWS`` and ``DESCRIBE``."""

    name = "dicomsql"
    driver = "pyhive"
    supports_statement_cache = False  # as PyHive's dialect

    @classmethod
    def import_dbapi(cls) -> Any:
        """PyHive's DB-API module (declared here: SQLAlchemy 2 warns about the inherited one)."""
        return hive

    def _rows(self, connection: Any, sql: str) -> list[Any]:
        return connection.execute(text(sql)).fetchall()

    def _listing(self, connection: Any, command: str, schema: str | None) -> list[str]:
        """The names ``SHOW TABLES`` or ``SHOW VIEWS`` (``command``) gives for ``schema``."""
        in_schema = (
            f" IN {self.identifier_preparer.quote_identifier(schema)}"
            if schema not in (None, SESSION)
            else ""
        )
        return relation_names(self._rows(connection, command + in_schema), schema)

    @reflection.cache
    def get_schema_names(self, connection: Any, **kw: Any) -> list[str]:
        """The databases, then :data:`SESSION` (the temporary views)."""
        return schema_names(self._rows(connection, "SHOW DATABASES"))

    @reflection.cache
    def get_table_names(self, connection: Any, schema: str | None = None, **kw: Any) -> list[str]:
        """The tables and views of ``schema`` (Spark's ``SHOW TABLES`` lists both); see
        :func:`relation_names`."""
        return self._listing(connection, "SHOW TABLES", schema)

    @reflection.cache
    def get_view_names(self, connection: Any, schema: str | None = None, **kw: Any) -> list[str]:
        """The views of ``schema``; see :func:`relation_names`."""
        return self._listing(connection, "SHOW VIEWS", schema)

    def has_table(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> bool:
        """True when ``schema`` lists ``table_name`` (Spark compares names case-insensitively)."""
        names = self.get_table_names(connection, schema, **kw)
        return table_name.casefold() in {name.casefold() for name in names}

    @reflection.cache
    def get_columns(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[dict[str, Any]]:
        """The columns of ``table_name`` from ``DESCRIBE``; :class:`NoSuchTableError` when
        Spark finds no such table or view."""
        quote = self.identifier_preparer.quote_identifier
        # unqualified names reach temporary views first: that is what SESSION means
        relation = (
            quote(table_name)
            if schema in (None, SESSION)
            else f"{quote(schema)}.{quote(table_name)}"
        )
        try:
            rows = self._rows(connection, f"DESCRIBE {relation}")
        except exc.DBAPIError as error:
            if _NOT_FOUND in str(error.orig):
                raise exc.NoSuchTableError(relation) from None
            raise
        return describe_columns(rows)

    def get_pk_constraint(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        """No primary key: Spark tables have none."""
        return {"constrained_columns": [], "name": None}

    def get_indexes(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[dict[str, Any]]:
        """No indexes: Spark tables have none."""
        return []

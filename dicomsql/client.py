"""Running SQL statements and getting rows back, the same way in an embedded session
(:class:`EmbeddedClient`) and through a running server with PyHive (:class:`JdbcClient`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import DicomsqlError, QueryError, concise_message

__all__ = ["JdbcUrl", "QueryResult", "EmbeddedClient", "JdbcClient"]

_JDBC_URL = re.compile(r"^jdbc:hive2://(?P<host>[^:/;]+)(?::(?P<port>\d+))?(?:/(?P<database>[^;?]*))?")


@dataclass(frozen=True)
class JdbcUrl:
    host: str
    port: int
    database: str

    @classmethod
    def parse(cls, url: str) -> "JdbcUrl":
        """Parse ``jdbc:hive2://host[:port][/database]``.

        >>> JdbcUrl.parse("jdbc:hive2://127.0.0.1:10001/default")
        JdbcUrl(host='127.0.0.1', port=10001, database='default')
        """
        match = _JDBC_URL.match(url.strip())
        if not match:
            raise DicomsqlError(f"not a HiveServer2 JDBC URL: {url!r} (expected jdbc:hive2://HOST:PORT/DATABASE)")
        return cls(match["host"], int(match["port"] or 10000), match["database"] or "default")


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows of a statement (no columns for DDL/DML)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


class EmbeddedClient:
    """Statements run in a SparkSession of this process."""

    def __init__(self, spark: Any) -> None:
        self.spark = spark

    def execute(self, statement: str, max_rows: int | None = None) -> QueryResult:
        """Run one statement; :class:`QueryError` with a concise message when it fails."""
        try:
            frame = self.spark.sql(statement)
            if not frame.columns:
                return QueryResult([], [])
            rows = frame.collect() if max_rows is None else frame.take(max_rows)
        except Exception as exc:  # noqa: BLE001 - py4j/pyspark raise many types
            raise QueryError(concise_message(str(exc))) from None
        return QueryResult(frame.columns, [tuple(row) for row in rows])

    def close(self) -> None:
        """Nothing to close: the session belongs to the caller."""


class JdbcClient:
    """A PyHive connection to a HiveServer2 endpoint."""

    def __init__(self, url: str) -> None:
        from pyhive import hive

        self.url = JdbcUrl.parse(url)
        try:
            self._connection = hive.connect(host=self.url.host, port=self.url.port, database=self.url.database)
        except Exception as exc:  # noqa: BLE001 - thrift raises transport errors of many types
            raise DicomsqlError(f"cannot connect to {url}: {exc}") from None

    def execute(self, statement: str, max_rows: int | None = None) -> QueryResult:
        """Run one statement on the server; :class:`QueryError` with the server's message."""
        from pyhive.exc import Error as PyHiveError

        cursor = self._connection.cursor()
        try:
            cursor.execute(statement)
            if not cursor.description:
                return QueryResult([], [])
            columns = [d[0] for d in cursor.description]
            rows = cursor.fetchall() if max_rows is None else cursor.fetchmany(max_rows)
            return QueryResult(columns, [tuple(r) for r in rows])
        except PyHiveError as exc:
            raise QueryError(concise_message(_server_message(exc))) from None
        finally:
            cursor.close()

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()


def _server_message(exc: Exception) -> str:
    """The server's error text inside a PyHive exception (a Thrift response), else str()."""
    response = exc.args[0] if exc.args else None
    status = getattr(response, "status", None)
    return getattr(status, "errorMessage", None) or str(exc)

"""Running SQL statements and getting rows back, the same way in an embedded session
(:class:`EmbeddedClient`) and through a running server with PyHive (:class:`JdbcClient`)."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from thrift.transport.TSSLSocket import TSSLSocket

from .errors import (
    INTERNAL_SQLSTATE,
    DicomsqlError,
    QueryCancelled,
    QueryError,
    client_error,
    concise_message,
)
from .jobs import JobGroup

__all__ = ["JdbcUrl", "QueryResult", "EmbeddedClient", "JdbcClient"]

#: How long a cancelled statement's thread is waited for (its jobs stop within moments).
_CANCEL_WAIT_SECONDS = 10.0
_JDBC_URL = re.compile(
    r"^jdbc:hive2://(?P<host>[^:/;]+)(?::(?P<port>\d+))?(?:/(?P<database>[^;?]*))?"
)


@dataclass(frozen=True)
class JdbcUrl:
    """A HiveServer2 JDBC URL: the one place such URLs are parsed and written."""

    host: str
    port: int
    database: str = "default"
    ssl: bool = False

    def __str__(self) -> str:
        """``jdbc:hive2://host:port/database``, with ``;ssl=true`` for TLS.

        >>> str(JdbcUrl("127.0.0.1", 10000)), str(JdbcUrl("db.example.org", 10001, ssl=True))
        ('jdbc:hive2://127.0.0.1:10000/default', 'jdbc:hive2://db.example.org:10001/default;ssl=true')
        """
        return f"jdbc:hive2://{self.host}:{self.port}/{self.database}" + (
            ";ssl=true" if self.ssl else ""
        )

    @classmethod
    def parse(cls, url: str) -> JdbcUrl:
        """Parse ``jdbc:hive2://host[:port][/database][;ssl=true]``.

        >>> JdbcUrl.parse("jdbc:hive2://127.0.0.1:10001/default")
        JdbcUrl(host='127.0.0.1', port=10001, database='default', ssl=False)
        >>> JdbcUrl.parse("jdbc:hive2://db.example.org:10000/default;SSL=true").ssl
        True
        """
        match = _JDBC_URL.match(url.strip())
        if not match:
            raise DicomsqlError(
                f"not a HiveServer2 JDBC URL: {url!r} (expected jdbc:hive2://HOST:PORT/DATABASE)"
            )
        settings = dict(part.partition("=")[::2] for part in url[match.end() :].split(";") if part)
        ssl = any(
            key.strip().lower() == "ssl" and value.strip().lower() == "true"
            for key, value in settings.items()
        )
        return cls(match["host"], int(match["port"] or 10000), match["database"] or "default", ssl)


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows of a statement (no columns for DDL/DML)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


class _Client:
    """What both clients share: Ctrl-C cancels the running statement."""

    def __init__(self) -> None:
        self._interrupted = threading.Event()

    @contextmanager
    def cancel_on_interrupt(self) -> Iterator[None]:
        """Within the block, Ctrl-C (SIGINT) cancels the running statement instead of
        raising KeyboardInterrupt (main thread only)."""
        self._interrupted.clear()
        previous = signal.signal(signal.SIGINT, lambda _signum, _frame: self._interrupted.set())
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
            self._interrupted.clear()


class EmbeddedClient(_Client):
    """Statements run in a SparkSession of this process, each in a thread of its own with its
    own Spark job group, so that a cancel stops exactly its jobs at once."""

    def __init__(self, spark: Any) -> None:
        super().__init__()
        self.spark = spark

    def execute(self, statement: str, max_rows: int | None = None) -> QueryResult:
        """Run one statement; :class:`QueryError` with a concise message when it fails,
        :class:`QueryCancelled` when :meth:`cancel_on_interrupt` saw Ctrl-C meanwhile."""
        group = JobGroup(self.spark, statement)
        outcome: dict[str, Any] = {}

        def run() -> None:
            with group.active():
                try:
                    outcome["result"] = self._run(statement, max_rows)
                except Exception as exc:  # noqa: BLE001 - py4j/pyspark raise many types
                    outcome["error"] = exc

        worker = threading.Thread(target=run, name="dicomsql-statement", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.05)
            if self._interrupted.is_set():
                group.cancel()
                worker.join(_CANCEL_WAIT_SECONDS)
                raise QueryCancelled("cancelled")
        if "error" in outcome:
            message, sqlstate = client_error(outcome["error"])
            if sqlstate == INTERNAL_SQLSTATE:  # no server here to keep the details: show them
                message = concise_message(str(outcome["error"]))
            raise QueryError(message) from None
        return outcome["result"]

    def _run(self, statement: str, max_rows: int | None) -> QueryResult:
        frame = self.spark.sql(statement)
        if not frame.columns:
            return QueryResult([], [])
        rows = frame.collect() if max_rows is None else frame.take(max_rows)
        return QueryResult(frame.columns, [tuple(row) for row in rows])

    def close(self) -> None:
        """Nothing to close: the session belongs to the caller."""


class JdbcClient(_Client):
    """A PyHive connection to a HiveServer2 endpoint."""

    def __init__(
        self,
        url: str,
        user: str | None = None,
        password: str | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        self.url = JdbcUrl.parse(url)
        try:
            self._connection = hive_connection(
                self.url.host,
                self.url.port,
                self.url.database,
                user,
                password,
                tls_ca,
                tls=self.url.ssl or tls_ca is not None,
            )
        except Exception as exc:  # noqa: BLE001 - thrift raises transport errors of many types
            raise DicomsqlError(f"cannot connect to {url}: {_server_message(exc)}") from None

    def execute(self, statement: str, max_rows: int | None = None) -> QueryResult:
        """Run one statement on the server; :class:`QueryError` with the server's message,
        :class:`QueryCancelled` when :meth:`cancel_on_interrupt` saw Ctrl-C meanwhile."""
        from pyhive.exc import Error as PyHiveError

        cursor = self._connection.cursor()
        try:
            cursor.execute(statement, async_=True)
            self._wait(cursor)
            if not cursor.description:
                return QueryResult([], [])
            columns = [d[0] for d in cursor.description]
            rows = cursor.fetchall() if max_rows is None else cursor.fetchmany(max_rows)
            return QueryResult(columns, [tuple(r) for r in rows])
        except PyHiveError as exc:
            raise QueryError(concise_message(_server_message(exc))) from None
        finally:
            cursor.close()

    def _wait(self, cursor: Any) -> None:
        """Poll the running statement until it ends; cancel it on the server when an
        interrupt was seen. Polling (rather than a blocking call) keeps Ctrl-C from landing
        inside a Thrift call, which would leave the connection out of step."""
        from TCLIService.ttypes import TOperationState

        running = (
            TOperationState.INITIALIZED_STATE,
            TOperationState.PENDING_STATE,
            TOperationState.RUNNING_STATE,
        )
        pause = 0.005
        while True:
            status = cursor.poll(get_progress_update=False)
            if status.operationState not in running:
                break
            if self._interrupted.is_set():
                cursor.cancel()
                raise QueryCancelled("cancelled")
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
        if status.operationState == TOperationState.ERROR_STATE:
            raise QueryError(concise_message(status.errorMessage or "the statement failed"))
        if status.operationState != TOperationState.FINISHED_STATE:
            raise QueryCancelled(
                f"the server ended the statement ({TOperationState._VALUES_TO_NAMES[status.operationState]})"
            )

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()


def hive_connection(
    host: str,
    port: int,
    database: str = "default",
    user: str | None = None,
    password: str | None = None,
    tls_ca: str | os.PathLike[str] | None = None,
    tls: bool | None = None,
) -> Any:
    """A PyHive connection logging in with SASL PLAIN as ``user`` (default: the operating-system
    user) with ``password``. With ``tls`` (default: when ``tls_ca`` is given) it is TLS,
    verifying the server against the CA certificates in ``tls_ca`` (default: the system's)."""
    import getpass

    from pyhive import hive

    user = user or getpass.getuser()
    if not (tls if tls is not None else tls_ca is not None):
        return hive.connect(
            host=host,
            port=port,
            database=database,
            username=user,
            password=password,
            auth="CUSTOM" if password else "NONE",
        )
    import ssl

    import thrift_sasl
    from pyhive.hive import get_installed_sasl

    try:
        context = ssl.create_default_context(cafile=str(tls_ca) if tls_ca else None)
    except (OSError, ssl.SSLError) as exc:
        raise DicomsqlError(
            f"--tls-ca {tls_ca}: not a file of PEM CA certificates ({exc})"
        ) from None
    transport = thrift_sasl.TSaslClientTransport(
        lambda: get_installed_sasl(
            host=host, sasl_auth="PLAIN", username=user, password=password or "x"
        ),
        "PLAIN",
        _TlsSocket(host, port, ssl_context=context),
    )
    return hive.connect(thrift_transport=transport, database=database)


class _TlsSocket(TSSLSocket):
    """Thrift's TLS socket, whose failed open says why (its close after a failed handshake
    would raise AttributeError and hide the certificate error)."""

    def open(self) -> None:
        try:
            super().open()
        except Exception as exc:  # noqa: BLE001 - thrift wraps the ssl error
            cause = exc.__cause__ or getattr(exc, "inner", None) or exc
            reason = (
                getattr(cause, "verify_message", None)
                or getattr(cause, "reason", None)
                or str(cause)
            )
            raise DicomsqlError(
                f"TLS connection to {self.host}:{self.port} failed: {reason} (check --tls-ca)"
            ) from None

    def close(self) -> None:
        if self.handle is not None:
            super().close()


def _server_message(exc: Exception) -> str:
    """The server's error text inside a PyHive exception (a Thrift response), else str()."""
    response = exc.args[0] if exc.args else None
    status = getattr(response, "status", None)
    return getattr(status, "errorMessage", None) or str(exc)

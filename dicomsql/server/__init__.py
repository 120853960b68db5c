"""dicomsql's HiveServer2 endpoint (the TCLIService Thrift protocol) in the driver process.

JDBC/ODBC clients (beeline, the Hive JDBC driver, PyHive, SQLAlchemy ``dicomsql://``) each get
a session of their own, cloned from the served Spark session: they see its DICOM tables,
temporary views and Python functions, and their own ``SET``, ``USE`` and temporary views stay
theirs. Spark runs the statements (see :mod:`.engine`); :mod:`.transport` speaks SASL PLAIN and
NOSASL; :mod:`.service` answers the protocol; :mod:`.catalog` the JDBC metadata calls.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..client import JdbcUrl
from ..errors import DicomsqlError
from ..settings import DEFAULTS
from .access import Access

if TYPE_CHECKING:
    import pyspark

    from ..ingest import Catalog

__all__ = ["Access", "Server", "serve", "free_port", "check_port_free", "silence_query_error_logs"]

#: pyspark's loggers of failing SQL: each line holds the statement's names and values.
_QUERY_ERROR_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")


@dataclass
class Server:
    """A running endpoint; :meth:`stop` closes its connections and sessions and releases the port."""

    host: str
    port: int
    engine: Any
    _listener: Any

    @property
    def tls(self) -> bool:
        """Whether connections are TLS."""
        return self.engine.access.tls is not None

    @property
    def jdbc_url(self) -> str:
        """``jdbc:hive2://host:port/default`` (``;ssl=true`` with TLS): for beeline and JDBC tools."""
        return str(JdbcUrl(self.host, self.port, ssl=self.tls))

    @property
    def sqlalchemy_url(self) -> str:
        """``dicomsql://host:port/default``: for SQLAlchemy (PyHive's dialect with Spark's
        catalogue, see :mod:`dicomsql.sqlalchemy`)."""
        return f"dicomsql://{self.host}:{self.port}/default"

    def stop(self) -> None:
        """Stop serving: no new connections, every session closed and its statements
        cancelled, the port released (idempotent)."""
        if self._listener is not None:
            self._listener.stop()
            self.engine.shutdown()
            self._listener = None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def silence_query_error_logs() -> None:
    """Turn pyspark's log of each failing SQL statement off: dicomsql reports the error once
    (to the client, and in the audit), and each log line holds the statement's names and values."""
    for name in _QUERY_ERROR_LOGGERS:
        logging.getLogger(name).disabled = True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`DicomsqlError` unless ``host:port`` can be listened on."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise DicomsqlError(
                    f"port {port} on {host} is in use (another dicomsql serve?); "
                    f"stop that process or choose another --port"
                ) from None
            raise DicomsqlError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def serve(
    spark: pyspark.sql.SparkSession,
    host: str = DEFAULTS["host"],
    port: int = DEFAULTS["port"],
    max_concurrent_queries: int | None = None,
    access: Access | None = None,
    catalogs: Mapping[str, Catalog] | None = None,
    refresh_interval: float | None = None,
    deidentified: pyspark.sql.SparkSession | None = None,
) -> Server:
    """Serve ``spark`` over the HiveServer2 protocol on ``host:port`` and return once it
    listens. Every client session is a clone of ``spark`` as it is when the client connects.
    At most ``max_concurrent_queries`` statements run at once (default twice the driver's
    cores); more wait in a queue. ``access`` (default: no login, every client an analyst)
    says who may log in, what analysts may do, and where it is audited; a non-loopback
    ``host`` needs logins and TLS. ``catalogs`` (by lower-case table name) are the served
    tables' catalogs: clients refresh them with ``REFRESH DICOM TABLE name``, and the server
    every ``refresh_interval`` seconds when given. ``deidentified`` (see
    :func:`dicomsql.deidentified.deidentified_session`) is the session the deidentified
    role's client sessions are clones of; without it, that role cannot log in."""
    from .engine import Engine
    from .service import serve_connection
    from .transport import Listener

    access = access or Access()
    access.check_host(host)
    check_port_free(host, port)
    silence_query_error_logs()  # a client's failing query is its own (and the audit's), not the log's
    # the metastore starts on first use (seconds, with the embedded Derby): not in a client's time
    spark.sql("SHOW DATABASES").collect()
    engine = Engine(
        spark,
        max_concurrent_queries or 2 * (os.cpu_count() or 1),
        access,
        catalogs=catalogs,
        refresh_interval=refresh_interval,
        deidentified=deidentified,
    )
    try:
        listener = Listener(host, port, serve_connection(engine), access).start()
    except OSError as exc:
        engine.shutdown()
        raise DicomsqlError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return Server(host, port, engine, listener)

"""The Spark Thrift server (HiveServer2 protocol) in the driver: JDBC/ODBC clients (beeline,
Hive JDBC, PyHive, SQLAlchemy ``hive://``) share the driver's session, so they see its
temporary views and Python functions."""

from __future__ import annotations

import errno
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import DicomsqlError
from .settings import DEFAULTS

if TYPE_CHECKING:
    import pyspark

__all__ = ["ThriftServer", "serve", "free_port", "check_port_free"]

_STARTUP_TIMEOUT_SECONDS = 60.0


@dataclass
class ThriftServer:
    """A running Thrift server; :meth:`stop` shuts it down and releases the port."""

    host: str
    port: int
    _server: Any

    @property
    def jdbc_url(self) -> str:
        """``jdbc:hive2://host:port/default``: for beeline and JDBC tools."""
        return f"jdbc:hive2://{self.host}:{self.port}/default"

    @property
    def sqlalchemy_url(self) -> str:
        """``dicomsql://host:port/default``: for SQLAlchemy (PyHive's dialect with Spark's
        catalogue, see :mod:`dicomsql.sqlalchemy`)."""
        return f"dicomsql://{self.host}:{self.port}/default"

    def stop(self) -> None:
        """Stop serving and wait until the port is released (idempotent)."""
        if self._server is not None:
            self._server.stop()
            self._server = None
            _wait_until(lambda: not _accepts_connections(self.host, self.port), timeout=10.0)

    def __enter__(self) -> "ThriftServer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`DicomsqlError` unless ``host:port`` can be listened on.

    HiveServer2 calls System.exit when it cannot bind, killing the whole driver: check first.
    """
    with socket.socket() as probe:
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


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _wait_until(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def serve(
    spark: "pyspark.sql.SparkSession",
    host: str = DEFAULTS["host"],
    port: int = DEFAULTS["port"],
) -> ThriftServer:
    """Start the Thrift server on ``host:port`` over ``spark`` and wait until it accepts
    connections. ``spark`` must have ``spark.sql.hive.thriftServer.singleSession=true`` (as
    :func:`dicomsql.session` sets), or clients would not see its Python functions."""
    if spark.conf.get("spark.sql.hive.thriftServer.singleSession", "false").lower() != "true":
        raise DicomsqlError(
            "dicomsql.serve needs a session built with "
            "spark.sql.hive.thriftServer.singleSession=true (dicomsql.session() sets it): "
            "without it JDBC clients get sessions without the Python functions"
        )
    check_port_free(host, port)
    spark.conf.set("hive.server2.thrift.bind.host", host)
    spark.conf.set("hive.server2.thrift.port", str(port))
    server = _start_in_fresh_thread(spark)
    bound = (server.getHiveConf().get("hive.server2.thrift.bind.host"), server.getHiveConf().get("hive.server2.thrift.port"))
    if bound != (host, str(port)):
        server.stop()
        raise DicomsqlError(f"the Thrift server was configured for {bound[0]}:{bound[1]}, not {host}:{port}")
    if not _wait_until(lambda: _accepts_connections(host, port), _STARTUP_TIMEOUT_SECONDS):
        server.stop()
        raise DicomsqlError(f"the Thrift server did not start listening on {host}:{port}")
    return ThriftServer(host, port, server)


def _start_in_fresh_thread(spark: "pyspark.sql.SparkSession") -> Any:
    """HiveThriftServer2.startWithContext, called from a new thread: a JVM thread that has
    used the Hive metastore keeps a Hive SessionState whose configuration predates the
    host and port set above, and the server would bind to it (0.0.0.0:10000) instead."""
    started: dict[str, Any] = {}

    def start() -> None:
        try:
            started["server"] = spark.sparkContext._jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2.startWithContext(
                spark._jsparkSession.sqlContext()
            )
        except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread
            started["error"] = exc

    thread = threading.Thread(target=start, name="dicomsql-thrift-start")
    thread.start()
    thread.join()
    if "error" in started:
        raise started["error"]
    return started["server"]

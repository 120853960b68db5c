"""PySpark's Python worker daemon (``spark.python.daemon.module``), quiet when Spark closes a
worker's connection before it starts.

Spark kills the tasks of a cancelled or failed job at once (dicomsql's statements cancel with
``interruptOnCancel``); a task being killed while its Python worker is still being set up
closes that worker's connection, and PySpark's daemon then prints a ``BrokenPipeError``
traceback to the server's output, although nothing went wrong. This module runs PySpark's
daemon unchanged except that such a worker ends silently.
"""

from __future__ import annotations

import pyspark.daemon as daemon

_worker = daemon.worker


def worker(sock, authenticated):
    """PySpark's worker; a connection Spark closed meanwhile ends it with code 1, quietly."""
    try:
        return _worker(sock, authenticated)
    except (BrokenPipeError, ConnectionResetError):
        return 1


if __name__ == "__main__":
    daemon.worker = worker
    daemon.manager()

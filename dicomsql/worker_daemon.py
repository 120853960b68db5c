"""PySpark's Python worker daemon (``spark.python.daemon.module``), quiet when Spark closes a
worker's connection before it starts, and without a full garbage collection per task.

Spark kills the tasks of a cancelled or failed job at once (dicomsql's statements cancel with
``interruptOnCancel``); a task being killed while its Python worker is still being set up
closes that worker's connection, and PySpark's daemon then prints a ``BrokenPipeError``
traceback to the server's output, although nothing went wrong. This module runs PySpark's
daemon unchanged except that such a worker ends silently.

A reused worker runs ``gc.collect()`` after every task. With pyarrow, pandas and pydicom
loaded that walks about 90,000 objects, some 30 ms a task; this daemon's workers collect a
task's garbage and then freeze what survives (:func:`gc.freeze`), so the next collection walks
only what the next task left, and they collect everything every
:data:`FULL_COLLECTION_EVERY` tasks.
"""

from __future__ import annotations

import gc
import itertools

import pyspark.daemon as daemon

#: Tasks of a reused worker between two collections of all its objects.
FULL_COLLECTION_EVERY = 100

_worker = daemon.worker
_tasks = itertools.count(1)


def worker(sock, authenticated):
    """PySpark's worker; a connection Spark closed meanwhile ends it with code 1, quietly."""
    try:
        return _worker(sock, authenticated)
    except (BrokenPipeError, ConnectionResetError):
        return 1
    finally:
        collect_garbage()


def collect_garbage() -> None:
    """Collect the garbage of the task that ended, then freeze the survivors; every
    :data:`FULL_COLLECTION_EVERY` tasks the frozen objects are collected too."""
    if next(_tasks) % FULL_COLLECTION_EVERY == 0:
        gc.unfreeze()
    gc.collect()
    gc.freeze()


if __name__ == "__main__":
    daemon.worker = worker
    daemon.manager()

"""Spark jobs of one statement, cancellable from any thread.

A statement runs in a thread that carries its job group (Spark's thread-local property,
inherited by the threads Spark starts for it); cancelling the group interrupts its running
tasks, JVM threads and Python workers alike, and refuses jobs the statement would start
later. This is what frees the executors at once when a client cancels.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = ["JobGroup"]


class JobGroup:
    """The Spark jobs of one statement in ``spark``; with a scheduler ``pool`` (Spark's FAIR
    scheduler shares the executors between pools), they run in that pool; ``properties``
    are Spark local properties its tasks see (``TaskContext.getLocalProperty``)."""

    def __init__(
        self,
        spark: Any,
        description: str,
        pool: str | None = None,
        properties: Mapping[str, str] | None = None,
    ):
        self.id = f"dicomsql-{uuid.uuid4().hex}"
        self.description = " ".join(description.split())[:200]
        self.pool = pool
        self.properties = dict(properties or {})
        self._context = spark.sparkContext

    @contextmanager
    def active(self) -> Iterator[None]:
        """Jobs started in this thread within the block belong to the group."""
        self._context.setJobGroup(self.id, self.description, interruptOnCancel=True)
        self._context.setLocalProperty("spark.scheduler.pool", self.pool)
        for key, value in self.properties.items():
            self._context.setLocalProperty(key, value)
        try:
            yield
        finally:
            self._context._jsc.clearJobGroup()
            for key in ("spark.scheduler.pool", *self.properties):
                self._context.setLocalProperty(key, None)

    def cancel(self) -> None:
        """Cancel the group's running jobs and any it would start from now on."""
        self._context._jsc.sc().cancelJobGroupAndFutureJobs(self.id)

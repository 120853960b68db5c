"""Client sessions and their operations, run by Spark.

Each client session is a clone of the served session (``SparkSession.cloneSession``: shared
SparkContext, metastore, warehouse and cache; its own SQL configuration, current database,
temporary views and functions, starting as copies of the served session's). Statements run
on a bounded pool (catalogue statements such as SHOW and SET on one of their own, so they
never wait behind queries), each in its own :class:`~dicomsql.jobs.JobGroup` and in its
client's FAIR scheduler pool, so that clients share the executors. Results stream as Arrow
record batches: a few partitions per Spark job, a bounded queue between the job and the
client's fetches, never the whole of a large result in driver memory.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence

import pyarrow as pa
from TCLIService.ttypes import TOperationState

from ..errors import client_error
from ..jobs import JobGroup
from .rowsets import Column, arrow_table, column_for

__all__ = ["Engine", "ClientSession", "Operation", "OperationError"]

log = logging.getLogger("dicomsql.server")

S = TOperationState
_TERMINAL = {S.FINISHED_STATE, S.CANCELED_STATE, S.CLOSED_STATE, S.ERROR_STATE, S.TIMEDOUT_STATE}
#: Rows a result keeps for FETCH_FIRST (re-reading from the start).
REWIND_ROWS = 100_000
#: Groups of partitions fetched ahead of the client.
_AHEAD = 2
_END = object()
#: Parsed plans (besides Show* and Describe*) of statements that start no Spark job.
_CATALOGUE_PLANS = {"SetCommand", "ResetCommand", "SetCatalogAndNamespace", "SetNamespaceCommand", "ExplainCommand"}
#: Client sessions share this many FAIR scheduler pools, assigned in turn.
SCHEDULER_POOLS = 16


class OperationError(Exception):
    """An operation failed or was used wrongly; carries what the client is told."""

    def __init__(self, message: str, sqlstate: str = "HY000"):
        super().__init__(message)
        self.sqlstate = sqlstate


class Operation:
    """A statement or a catalogue listing of one client session, with its result."""

    def __init__(self, session: "ClientSession", kind: int, description: str):
        self.session = session
        self.kind = kind
        self.description = description
        self.id = uuid.uuid4().bytes
        self.secret = uuid.uuid4().bytes
        self.state = S.INITIALIZED_STATE
        self.error: OperationError | None = None
        self.columns: list[Column] | None = None
        self.started_ms = int(time.time() * 1000)
        self.completed_ms = 0
        self._changed = threading.Condition()
        self._log: list[str] = []
        self._log_read = 0
        self._batches: queue.Queue = queue.Queue(maxsize=_AHEAD)
        self._pending: list[pa.RecordBatch] = []
        self._kept: list[pa.RecordBatch] | None = []
        self._kept_rows = 0
        self._offset = 0
        self._ended = False
        self._cancelled = threading.Event()
        self._job_group = JobGroup(session.spark, description, pool=session.pool)
        self.timer: threading.Timer | None = None  # the client's query timeout

    # --- state ----------------------------------------------------------------------------

    def set_state(self, state: int, error: OperationError | None = None) -> None:
        with self._changed:
            if self.state in _TERMINAL and self.state != S.FINISHED_STATE:
                return  # cancelled or closed stays so
            self.state, self.error = state, error or self.error
            if state in _TERMINAL:
                self.completed_ms = int(time.time() * 1000)
            self._log.append(f"{time.strftime('%H:%M:%S')} {S._VALUES_TO_NAMES[state].removesuffix('_STATE').lower()}")
            self._changed.notify_all()

    def wait(self, timeout: float | None = None) -> int:
        """Block until the result is ready or the operation ended; returns the state."""
        with self._changed:
            self._changed.wait_for(lambda: self.state in _TERMINAL, timeout)
            return self.state

    def cancel(self, state: int = S.CANCELED_STATE, error: OperationError | None = None) -> None:
        """Stop the operation: its Spark jobs are cancelled and its result dropped."""
        self._cancelled.set()
        self.set_state(state, error)
        self._job_group.cancel()
        self._drain()

    def time_out(self, seconds: float) -> None:
        """The client's query timeout passed: cancel unless the statement is done."""
        if self.state in (S.PENDING_STATE, S.RUNNING_STATE):
            self.cancel(S.TIMEDOUT_STATE, OperationError(f"the statement ran longer than its timeout of {seconds:g}s and was cancelled", "HYT00"))

    def close(self) -> None:
        """Cancel if still running and release the result."""
        if self.timer is not None:
            self.timer.cancel()
        if self.state not in _TERMINAL or not self._ended:
            self._cancelled.set()
            self._job_group.cancel()
        self.set_state(S.CLOSED_STATE)
        self._drain()
        self._pending, self._kept = [], None

    def _drain(self) -> None:
        """Empty the queue so that a producer blocked on it sees the cancellation."""
        try:
            while True:
                self._batches.get_nowait()
        except queue.Empty:
            pass

    # --- producing ------------------------------------------------------------------------

    def run_statement(self, statement: str) -> None:
        """Run ``statement`` in the session (on a pool thread) and produce its result."""
        if self._cancelled.is_set():
            return
        self.set_state(S.RUNNING_STATE)
        try:
            with self._job_group.active():
                frame = self.session.spark.sql(statement)
                self.columns = [column_for(f.name, f.dataType) for f in frame.schema.fields]
                if self.columns:
                    for batches in _arrow_partitions(frame, self.columns, self._cancelled):
                        self._put(batches)
            self._put(_END)
        except Exception as exc:  # noqa: BLE001 - every failure becomes the client's error
            if self._cancelled.is_set():
                return
            message, sqlstate = client_error(exc)
            log.info("statement failed (SQLSTATE %s)", sqlstate)  # the message may hold data: not logged
            if sqlstate == "XX000":
                log.exception("internal error in a statement")
            self._put_error(OperationError(message, sqlstate))

    def set_rows(self, columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> None:
        """A result computed at once (catalogue listings)."""
        self.columns = list(columns)
        self._put(arrow_table(columns, rows).to_batches())
        self._put(_END)

    def _put(self, item: Any) -> None:
        while not self._cancelled.is_set():
            try:
                self._batches.put(item, timeout=0.1)
                break
            except queue.Full:
                continue
        if self.state == S.RUNNING_STATE or self.state == S.INITIALIZED_STATE:
            self.set_state(S.FINISHED_STATE)  # the first rows are there: the client may fetch

    def _put_error(self, error: OperationError) -> None:
        if self.state == S.FINISHED_STATE:  # a later partition failed: the fetch reports it
            self._put(error)
        else:
            self.set_state(S.ERROR_STATE, error)

    # --- fetching -------------------------------------------------------------------------

    def fetch(self, max_rows: int, from_start: bool = False) -> tuple[pa.Table | None, int, bool]:
        """Up to ``max_rows`` rows of the result: (rows, offset of the first, more to come)."""
        if self.state == S.ERROR_STATE and self.error:
            raise self.error
        if self.state == S.TIMEDOUT_STATE and self.error:
            raise self.error
        if self.state in (S.CANCELED_STATE, S.CLOSED_STATE):
            raise OperationError(f"the operation was {'cancelled' if self.state == S.CANCELED_STATE else 'closed'}")
        if self.state != S.FINISHED_STATE:
            raise OperationError("the operation has no result yet: wait until GetOperationStatus says FINISHED")
        if not self.columns:
            return None, 0, False
        if from_start:
            self._rewind()
        taken: list[pa.RecordBatch] = []
        count = 0
        while count < max_rows:
            if not self._pending and not self._next_batches():
                break
            batch = self._pending[0]
            part = batch.slice(0, max_rows - count)
            taken.append(part)
            count += part.num_rows
            rest = batch.slice(part.num_rows)
            self._pending[0:1] = [rest] if rest.num_rows else []
        offset = self._offset
        self._offset += count
        table = pa.Table.from_batches(taken) if taken else None
        return table, offset, bool(self._pending) or not self._ended

    def _next_batches(self) -> bool:
        """Move the next group of batches from the producer to ``_pending``; False at the end."""
        while not self._ended:
            try:
                item = self._batches.get(timeout=0.1)
            except queue.Empty:
                if self._cancelled.is_set():
                    raise OperationError("the operation was cancelled") from None
                continue
            if item is _END:
                self._ended = True
            elif isinstance(item, OperationError):
                self._ended = True
                raise item
            elif item:
                self._keep(item)
                self._pending.extend(b for b in item if b.num_rows)
                if self._pending:
                    return True
        return False

    def _keep(self, batches: list[pa.RecordBatch]) -> None:
        if self._kept is None:
            return
        self._kept_rows += sum(b.num_rows for b in batches)
        self._kept = self._kept + batches if self._kept_rows <= REWIND_ROWS else None

    def _rewind(self) -> None:
        if self._kept is None:
            raise OperationError(f"FETCH_FIRST is available for results of up to {REWIND_ROWS:,} rows; run the statement again")
        self._pending = [b for b in self._kept if b.num_rows]  # every batch received so far
        self._offset = 0

    def log_lines(self, from_start: bool) -> list[str]:
        """The operation log (state changes with their time), from the start or what is new."""
        with self._changed:
            start = 0 if from_start else self._log_read
            self._log_read = len(self._log)
            return self._log[start:]


#: Results of at most this many rows that are a LIMIT, literal rows or a command's output are
#: collected as rows: Spark's collect reads a LIMIT a few partitions at a time and answers
#: literal rows without a job.
COLLECT_ROWS = 10_000
_COLLECTED_AS_ROWS = {"GlobalLimit", "LocalRelation", "CommandResult", "Tail"}
#: Other results Spark estimates at most this large are collected as Arrow in one go; larger or
#: unknown ones stream a group of partitions at a time.
COLLECT_AT_ONCE_BYTES = 32 * 1024 * 1024


def _arrow_partitions(frame: Any, columns: Sequence[Column], cancelled: threading.Event) -> Iterator[list[pa.RecordBatch]]:
    """The rows of ``frame`` as groups of Arrow batches, in order (see :data:`COLLECT_ROWS`
    and :data:`COLLECT_AT_ONCE_BYTES`); a streamed result runs one Spark job per group of
    partitions (as many as the cluster runs at once), each when the client has read the
    previous ones.

    Values are first made what travels to a client (:func:`serving_frame`), in the JVM.
    """
    from pyspark.core.rdd import _load_from_socket
    from pyspark.serializers import NoOpSerializer
    from pyspark.sql.pandas.types import to_arrow_schema

    served = serving_frame(frame, columns)
    plan = served._jdf.queryExecution().optimizedPlan()
    most_rows = plan.maxRows()
    if plan.nodeName() in _COLLECTED_AS_ROWS and most_rows.isDefined() and most_rows.get() <= COLLECT_ROWS:
        yield arrow_table(columns, served.collect()).to_batches()
        return
    if int(plan.stats().sizeInBytes()) <= COLLECT_AT_ONCE_BYTES:
        yield served._collect_as_arrow()
        return
    spark = frame.sparkSession
    large = spark.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false").lower() == "true"
    schema = to_arrow_schema(served.schema, prefers_large_types=large)
    batches_rdd = served._jdf.toArrowBatchRdd().toJavaRDD()
    partitions = batches_rdd.getNumPartitions()
    context = spark.sparkContext
    group = max(1, context.defaultParallelism)
    for start in range(0, partitions, group):
        if cancelled.is_set():
            return
        wanted = list(range(start, min(partitions, start + group)))
        served_socket = context._jvm.PythonRDD.runJob(context._jsc.sc(), batches_rdd, wanted)
        with _load_from_socket(served_socket, NoOpSerializer()) as stream:
            yield [pa.ipc.read_record_batch(pa.py_buffer(message), schema) for message in stream]


def serving_frame(frame: Any, columns: Sequence[Column]) -> Any:
    """``frame`` with each column as it travels: as is, as Spark's text, or as JSON text (with
    NULL fields kept). Columns are renamed by position when that is needed: duplicate names
    are fine."""
    names = [c.name for c in columns]
    if all(c.travels == "as is" for c in columns) and len(set(n.lower() for n in names)) == len(names):
        return frame
    expressions = {"as is": "c{0}", "text": "CAST(c{0} AS STRING)", "json": "to_json(c{0}, map('ignoreNullFields', 'false'))"}
    return frame.toDF(*(f"c{i}" for i in range(len(columns)))).selectExpr(
        *(f"{expressions[c.travels].format(i)} AS c{i}" for i, c in enumerate(columns))
    )


class ClientSession:
    """One client's Spark session and its operations."""

    def __init__(self, engine: "Engine", spark: Any, user: str, protocol: int, pool: str):
        self.engine = engine
        self.spark = spark
        self.pool = pool
        self.user = user
        self.protocol = protocol
        self.id = uuid.uuid4().bytes
        self.secret = uuid.uuid4().bytes
        self.operations: dict[bytes, Operation] = {}
        self._lock = threading.Lock()

    def new_operation(self, kind: int, description: str) -> Operation:
        operation = Operation(self, kind, description)
        with self._lock:
            self.operations[operation.id] = operation
        return operation

    def execute(self, statement: str, kind: int, timeout: float | None = None) -> Operation:
        """Queue ``statement`` on the engine's pool; returns its operation (PENDING). After
        ``timeout`` seconds (the client's query timeout) it is cancelled, TIMEDOUT."""
        operation = self.new_operation(kind, statement)
        operation.set_state(S.PENDING_STATE)
        if timeout:
            operation.timer = threading.Timer(timeout, operation.time_out, args=(timeout,))
            operation.timer.daemon = True
            operation.timer.start()
        self.engine.submit(lambda: operation.run_statement(statement), light=self.is_catalogue_statement(statement))
        return operation

    def is_catalogue_statement(self, statement: str) -> bool:
        """Whether ``statement`` only reads or sets session state (SHOW, DESCRIBE, SET, USE,
        EXPLAIN...), by the plan Spark's parser makes of it: such statements start no Spark
        job and need not wait behind queries."""
        try:
            plan = self.spark._jsparkSession.sessionState().sqlParser().parsePlan(statement)
        except Exception:  # noqa: BLE001 - not parseable: the statement's own run says why
            return False
        name = plan.getClass().getSimpleName()
        return name.startswith(("Show", "Describe")) or name in _CATALOGUE_PLANS

    def close_operation(self, operation_id: bytes) -> None:
        with self._lock:
            operation = self.operations.pop(operation_id, None)
        if operation is not None:
            operation.close()

    def close(self) -> None:
        """Close every operation (cancelling what runs); the Spark session goes with it."""
        with self._lock:
            operations, self.operations = list(self.operations.values()), {}
        for operation in operations:
            operation.close()


class Engine:
    """The served Spark session, the client sessions cloned from it, and the pool their
    statements run on (``max_concurrent`` at once; beyond that they queue as PENDING)."""

    def __init__(self, spark: Any, max_concurrent: int):
        self.spark = spark
        self.max_concurrent = max_concurrent
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="dicomsql-query")
        self._light_pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="dicomsql-catalogue")
        self.sessions: dict[bytes, ClientSession] = {}
        self._opened = 0
        self._lock = threading.Lock()

    def open_session(self, user: str, protocol: int, configuration: dict[str, str]) -> ClientSession:
        """A new client session: a clone of the served session with ``configuration``
        (``use:database``, ``set:hiveconf:KEY``/``set:hivevar:KEY``, plain ``KEY``) applied."""
        from pyspark.sql import SparkSession

        spark = SparkSession(self.spark.sparkContext, self.spark._jsparkSession.cloneSession())
        for key, value in configuration.items():
            if key == "use:database":
                if value and value != "default":
                    spark.catalog.setCurrentDatabase(value)
            elif key.startswith(("set:hiveconf:", "set:hivevar:")):
                spark.conf.set(key.split(":", 2)[2], value)
        with self._lock:
            self._opened += 1
            session = ClientSession(self, spark, user, protocol, pool=f"dicomsql-{self._opened % SCHEDULER_POOLS}")
            self.sessions[session.id] = session
        return session

    def close_session(self, session_id: bytes) -> None:
        with self._lock:
            session = self.sessions.pop(session_id, None)
        if session is not None:
            session.close()

    def submit(self, work: Callable[[], None], light: bool = False) -> None:
        """Run ``work`` on the pool when a worker is free (catalogue statements, ``light``,
        on a pool of their own)."""
        (self._light_pool if light else self._pool).submit(_logged(work))

    def shutdown(self) -> None:
        """Close every session (cancelling their statements) and stop the pool."""
        for session_id in list(self.sessions):
            self.close_session(session_id)
        for pool in (self._pool, self._light_pool):
            pool.shutdown(wait=True, cancel_futures=True)


def _logged(work: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            work()
        except Exception:  # noqa: BLE001 - a pool thread has nobody else to tell
            log.exception("operation failed outside its own error handling")

    return run

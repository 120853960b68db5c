"""Client sessions and their operations, run by Spark.

Each client session is a clone of the served session (``SparkSession.cloneSession``: shared
SparkContext, metastore, warehouse and cache; its own SQL configuration, current database,
temporary views and functions, starting as copies of the served session's). Statements run
on a bounded pool (catalogue statements such as SHOW and SET on one of their own, so they
never wait behind queries), each in its own :class:`~dicomsql.jobs.JobGroup` and in its
client's FAIR scheduler pool, so that clients share the executors. Results stream as Arrow
record batches: a statement runs until its first partitions are read, later groups of
partitions are read as the client's fetches reach them, never the whole of a large result
in driver memory.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence

import pyarrow as pa
from TCLIService.ttypes import TOperationState

from ..errors import INTERNAL_SQLSTATE, client_error
from ..jobs import JobGroup
from .rowsets import Column, arrow_table, column_for

__all__ = ["Engine", "ClientSession", "Operation", "OperationError"]

log = logging.getLogger("dicomsql.server")

S = TOperationState
#: What a result keeps for FETCH_FIRST (re-reading from the start).
REWIND_BYTES = 64 * 1024 * 1024
#: The most bytes one FetchResults answers with (at least one row), whatever rows were asked.
FETCH_BYTES = 16 * 1024 * 1024
#: Parsed plans (besides Show* and Describe*) of statements that start no Spark job.
_CATALOGUE_PLANS = {"SetCommand", "ResetCommand", "SetCatalogAndNamespace", "SetNamespaceCommand", "ExplainCommand"}
#: How often query timeouts are checked.
_TIMEOUT_CHECK_SECONDS = 0.25
#: Client sessions share this many FAIR scheduler pools, assigned in turn.
SCHEDULER_POOLS = 16
#: States an operation ends in (FINISHED: its result can be fetched).
ENDED = frozenset({S.FINISHED_STATE, S.CANCELED_STATE, S.CLOSED_STATE, S.ERROR_STATE, S.TIMEDOUT_STATE})
FAILED = frozenset({S.ERROR_STATE, S.TIMEDOUT_STATE})


class OperationError(Exception):
    """An operation failed or was used wrongly; carries what the client is told."""

    def __init__(self, message: str, sqlstate: str = "HY000"):
        super().__init__(message)
        self.sqlstate = sqlstate


class Operation:
    """A statement or a catalogue listing of one client session, with its result.

    A statement runs on the engine's pool until its first rows are there (FINISHED), and
    gives its pool worker back. The rest of a streamed result is read by the client's fetches:
    each Spark job for the next group of partitions runs in the fetching thread, in the
    statement's job group, when the rows already read run out.
    """

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
        self.deadline: float | None = None  # time.monotonic() of the client's query timeout
        self.timeout = 0.0
        self._changed = threading.Condition()
        self._reading = threading.Lock()  # one fetch at a time
        self._log: list[str] = []
        self._log_read = 0
        self._groups: Iterator[list[pa.RecordBatch]] = iter(())
        self._pending: list[pa.RecordBatch] = []
        self._kept: list[pa.RecordBatch] | None = []
        self._kept_bytes = 0
        self._offset = 0
        self._ended = False
        self._cancelled = threading.Event()
        self._job_group = JobGroup(session.spark, description, pool=session.pool)

    # --- state ----------------------------------------------------------------------------

    def set_state(self, state: int, error: OperationError | None = None) -> None:
        """Move to ``state`` (with the client's ``error``); an operation that was cancelled,
        closed, failed or timed out stays so."""
        with self._changed:
            if self.state in ENDED and self.state != S.FINISHED_STATE:
                return
            self.state, self.error = state, error or self.error
            if state in ENDED:
                self.completed_ms = int(time.time() * 1000)
            self._log.append(f"{time.strftime('%H:%M:%S')} {S._VALUES_TO_NAMES[state].removesuffix('_STATE').lower()}")
            self._changed.notify_all()

    def wait(self, timeout: float | None = None) -> int:
        """Block until the result is ready or the operation ended (at most ``timeout``
        seconds); returns the state."""
        with self._changed:
            self._changed.wait_for(lambda: self.state in ENDED, timeout)
            return self.state

    def cancel(self, state: int = S.CANCELED_STATE, error: OperationError | None = None) -> None:
        """Stop the operation: its Spark jobs are cancelled and its result dropped."""
        self._cancelled.set()
        self.set_state(state, error)
        self._job_group.cancel()

    def time_out(self) -> None:
        """The client's query timeout passed: cancel, unless the whole result is read."""
        if not self._ended:
            message = f"the statement ran longer than its timeout of {self.timeout:g}s and was cancelled"
            self.cancel(S.TIMEDOUT_STATE, OperationError(message, "HYT00"))

    def close(self) -> None:
        """Cancel what still runs and release the result."""
        if not self._ended:
            self._cancelled.set()
            self._job_group.cancel()
        self.set_state(S.CLOSED_STATE)
        self._pending, self._kept = [], None

    # --- running --------------------------------------------------------------------------

    def run_statement(self, statement: str) -> None:
        """Run ``statement`` in the session (on a pool thread) until its first rows are there."""
        if self._cancelled.is_set():
            return
        self.set_state(S.RUNNING_STATE)
        try:
            with self._job_group.active():
                frame = self.session.spark.sql(statement)
                columns = [column_for(f.name, f.dataType) for f in frame.schema.fields]
                if columns:
                    self._groups = _arrow_partitions(frame, columns, self._cancelled)
                    self._add(next(self._groups, None))
                else:
                    self._ended = True
            self.columns = columns
            self.set_state(S.FINISHED_STATE)
        except BaseException as exc:  # noqa: BLE001 - every failure becomes the client's error
            self._fail(exc)

    def set_rows(self, columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> None:
        """A result computed at once (catalogue listings)."""
        self._add(arrow_table(columns, rows).to_batches())
        self._ended = True
        self.columns = list(columns)
        self.set_state(S.FINISHED_STATE)

    def _fail(self, exc: BaseException) -> None:
        self._ended = True
        if self._cancelled.is_set():
            return  # cancelled, closed or timed out: that state stays
        message, sqlstate = client_error(exc)
        log.info("statement failed (SQLSTATE %s)", sqlstate)  # the message may hold data: not logged
        if sqlstate == INTERNAL_SQLSTATE:
            log.error("internal error in a statement", exc_info=exc)
        self.set_state(S.ERROR_STATE, OperationError(message, sqlstate))

    def _add(self, group: list[pa.RecordBatch] | None) -> None:
        """Take the next group of batches, or note the end (None)."""
        if group is None:
            self._ended = True
            return
        batches = [b for b in group if b.num_rows]
        self._pending.extend(batches)
        if self._kept is not None:
            self._kept_bytes += sum(b.nbytes for b in batches)
            if self._kept_bytes <= REWIND_BYTES:
                self._kept.extend(batches)
            else:
                self._kept = None

    # --- fetching -------------------------------------------------------------------------

    def fetch(self, max_rows: int, from_start: bool = False) -> tuple[pa.Table | None, int, bool]:
        """Up to ``max_rows`` rows of the result (and at most :data:`FETCH_BYTES`): (rows,
        offset of the first, more to come). Rows already read are answered at once; the next
        group of partitions is read (a Spark job) only when there are none."""
        with self._reading:
            self.check_result()
            if not self.columns:
                return None, 0, False
            if from_start:
                self._rewind()
            taken: list[pa.RecordBatch] = []
            count = size = 0
            while count < max_rows and size < FETCH_BYTES:
                if not self._pending:
                    if count or self._ended:
                        break
                    self._read_next_group()
                    continue
                batch = self._pending[0]
                part = batch.slice(0, max_rows - count)
                if count and size + part.nbytes > FETCH_BYTES:
                    part = part.slice(0, max(1, part.num_rows * (FETCH_BYTES - size) // max(1, part.nbytes)))
                taken.append(part)
                count, size = count + part.num_rows, size + part.nbytes
                rest = batch.slice(part.num_rows)
                self._pending[0:1] = [rest] if rest.num_rows else []
            offset = self._offset
            self._offset += count
            return (pa.Table.from_batches(taken) if taken else None), offset, bool(self._pending) or not self._ended

    def check_result(self) -> None:
        """Raise the client's error unless the result can be read (FINISHED)."""
        if self.state in FAILED and self.error:
            raise self.error
        if self.state in (S.CANCELED_STATE, S.CLOSED_STATE):
            raise OperationError(f"the operation was {'cancelled' if self.state == S.CANCELED_STATE else 'closed'}")
        if self.state != S.FINISHED_STATE:
            raise OperationError("the operation has no result yet: wait until GetOperationStatus says FINISHED")

    def _read_next_group(self) -> None:
        try:
            with self._job_group.active():
                self._add(next(self._groups, None))
        except BaseException as exc:  # noqa: BLE001 - a later partition failed: the result ends in error
            self._fail(exc)
            raise self.error or OperationError("the operation was cancelled") from None

    def _rewind(self) -> None:
        if self._kept is None:
            raise OperationError(f"FETCH_FIRST is available for results of up to {REWIND_BYTES >> 20} MiB; run the statement again")
        self._pending = list(self._kept)  # every batch received so far
        self._offset = 0

    def log_lines(self, from_start: bool) -> list[str]:
        """The operation log (state changes with their time), from the start or what is new."""
        with self._changed:
            start = 0 if from_start else self._log_read
            self._log_read = len(self._log)
            return self._log[start:]


#: Results of at most this many rows that are a LIMIT, literal rows or a command's output, and
#: any result of at most FEW_ROWS rows by its plan, are collected as rows: Spark's collect reads a
#: LIMIT a few partitions at a time and answers literal rows without a job.
COLLECT_ROWS = 10_000
FEW_ROWS = 100
_COLLECTED_AS_ROWS = {"GlobalLimit", "LocalRelation", "CommandResult", "Tail"}


def _arrow_partitions(frame: Any, columns: Sequence[Column], cancelled: threading.Event) -> Iterator[list[pa.RecordBatch]]:
    """The rows of ``frame`` as groups of Arrow batches, in order: a few rows (see
    :data:`COLLECT_ROWS`) at once, any other result streamed, one Spark job per group of
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
    bound = most_rows.get() if most_rows.isDefined() else None
    if bound is not None and (bound <= FEW_ROWS or bound <= COLLECT_ROWS and plan.nodeName() in _COLLECTED_AS_ROWS):
        yield arrow_table(columns, served.collect()).to_batches()
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
        self.caches = False  # whether the client ran CACHE TABLE
        self._lock = threading.Lock()

    def new_operation(self, kind: int, description: str) -> Operation:
        """A new operation of this session (INITIALIZED)."""
        operation = Operation(self, kind, description)
        with self._lock:
            self.operations[operation.id] = operation
        return operation

    def execute(self, statement: str, kind: int, timeout: float | None = None) -> Operation:
        """Queue ``statement`` on the engine's pool; returns its operation (PENDING). After
        ``timeout`` seconds (the client's query timeout) it is cancelled, TIMEDOUT."""
        operation = self.new_operation(kind, statement)
        operation.set_state(S.PENDING_STATE)
        if timeout and timeout > 0:
            operation.timeout, operation.deadline = timeout, time.monotonic() + timeout
        plan = self._parsed_plan_name(statement)
        self.caches = self.caches or plan.startswith("Cache")
        light = plan.startswith(("Show", "Describe")) or plan in _CATALOGUE_PLANS
        self.engine.submit(lambda: operation.run_statement(statement), light=light)
        return operation

    def _parsed_plan_name(self, statement: str) -> str:
        """The class of the plan Spark's parser makes of ``statement`` ("" when it does not
        parse: its run says why). SHOW, DESCRIBE, SET, USE, EXPLAIN start no Spark job and
        need not wait behind queries."""
        try:
            return self.spark._jsparkSession.sessionState().sqlParser().parsePlan(statement).getClass().getSimpleName()
        except Exception:  # noqa: BLE001 - a parse error, reported by the statement's run
            return ""

    def close_operation(self, operation_id: bytes) -> None:
        """Close one operation (cancelling it if it runs)."""
        with self._lock:
            operation = self.operations.pop(operation_id, None)
        if operation is not None:
            operation.close()

    def close(self) -> None:
        """Close every operation (cancelling what runs) and drop from the shared cache what
        this client cached of its own temporary views; the Spark session goes with it."""
        with self._lock:
            operations, self.operations = list(self.operations.values()), {}
        for operation in operations:
            operation.close()
        if self.caches:
            served = {t.name for t in self.engine.spark.catalog.listTables() if t.isTemporary}
            for table in self.spark.catalog.listTables():
                if table.isTemporary and table.name not in served and self.spark.catalog.isCached(table.name):
                    self.spark.catalog.uncacheTable(table.name)


class Engine:
    """The served Spark session, the client sessions cloned from it, and the pool their
    statements run on (``max_concurrent`` at once; beyond that they queue as PENDING)."""

    def __init__(self, spark: Any, max_concurrent: int):
        self.spark = spark
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="dicomsql-query")
        self._light_pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="dicomsql-catalogue")
        self.sessions: dict[bytes, ClientSession] = {}
        self._opened = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch_timeouts, name="dicomsql-timeouts", daemon=True)
        self._watcher.start()

    def open_session(self, user: str, protocol: int, configuration: dict[str, str]) -> ClientSession:
        """A new client session: a clone of the served session with ``configuration``
        (``use:database``, ``set:hiveconf:KEY``/``set:hivevar:KEY``, plain ``KEY``) applied."""
        from pyspark.sql import SparkSession

        spark = SparkSession(self.spark.sparkContext, self.spark._jsparkSession.cloneSession())
        for key, value in configuration.items():
            if key == "use:database":
                if value:
                    spark.catalog.setCurrentDatabase(value)
            elif key.startswith(("set:hiveconf:", "set:hivevar:")):
                spark.conf.set(key.split(":", 2)[2], value)
            elif not key.startswith(("set:", "use:")):
                spark.conf.set(key, value)
        with self._lock:
            self._opened += 1
            session = ClientSession(self, spark, user, protocol, pool=f"dicomsql-{self._opened % SCHEDULER_POOLS}")
            self.sessions[session.id] = session
        return session

    def close_session(self, session_id: bytes) -> None:
        """Close a client session (see :meth:`ClientSession.close`)."""
        with self._lock:
            session = self.sessions.pop(session_id, None)
        if session is not None:
            session.close()

    def submit(self, work: Callable[[], None], light: bool = False) -> None:
        """Run ``work`` on the pool when a worker is free (catalogue statements, ``light``,
        on a pool of their own)."""
        (self._light_pool if light else self._pool).submit(_logged(work))

    def _watch_timeouts(self) -> None:
        """Time out the statements whose client's query timeout has passed."""
        while not self._stopping.wait(_TIMEOUT_CHECK_SECONDS):
            now = time.monotonic()
            with self._lock:
                sessions = list(self.sessions.values())
            for session in sessions:
                for operation in list(session.operations.values()):
                    if operation.deadline is not None and operation.deadline <= now:
                        operation.deadline = None
                        operation.time_out()

    def shutdown(self) -> None:
        """Close every session (cancelling their statements) and stop the pool."""
        self._stopping.set()
        self._watcher.join()
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

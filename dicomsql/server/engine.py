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
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pyspark.sql.types import DoubleType, LongType, StringType
from TCLIService.ttypes import TOperationState, TOperationType

from ..errors import INTERNAL_SQLSTATE, client_error
from ..jobs import JobGroup
from ..session import cloned
from ..storage import READS_PROPERTY, check_paths, export_roots
from . import policy
from .access import Access
from .auth import Account
from .rowsets import Column, arrow_table, column_for

if TYPE_CHECKING:
    from ..ingest import Catalog

__all__ = ["Engine", "ClientSession", "Operation", "OperationError"]

log = logging.getLogger("dicomsql.server")

S = TOperationState
#: What a result keeps for FETCH_FIRST (re-reading from the start).
REWIND_BYTES = 64 * 1024 * 1024
#: The most bytes one FetchResults answers with (at least one row), whatever rows were asked.
FETCH_BYTES = 16 * 1024 * 1024
#: Parsed plans (besides Show* and Describe*) of statements that start no Spark job.
_CATALOGUE_PLANS = {
    "SetCommand",
    "ResetCommand",
    "SetCatalogAndNamespace",
    "SetNamespaceCommand",
    "ExplainCommand",
}
#: How often query timeouts are checked.
_TIMEOUT_CHECK_SECONDS = 0.25
#: Client sessions share this many FAIR scheduler pools, assigned in turn.
SCHEDULER_POOLS = 16
#: OpenSession settings that tell the server about the client and change nothing in Spark
#: (the Hive JDBC driver always sends its fetch size): ignored.
_CLIENT_HINTS = frozenset({"hive.server2.thrift.resultset.default.fetch.size"})
#: Operations a session may hold open at once (a client that never closes them leaks memory).
MAX_OPEN_OPERATIONS = 1000
MAX_OPEN_OPERATIONS_ANALYST = 100
_ERROR_CLASS = re.compile(r"\[([A-Z][A-Z0-9_.]*)\]")
#: States an operation ends in (FINISHED: its result can be fetched).
ENDED = frozenset(
    {S.FINISHED_STATE, S.CANCELED_STATE, S.CLOSED_STATE, S.ERROR_STATE, S.TIMEDOUT_STATE}
)
FAILED = frozenset({S.ERROR_STATE, S.TIMEDOUT_STATE})
#: How a statement's end is audited, by the state it ended in.
_OUTCOMES = {
    S.FINISHED_STATE: "ok",
    S.ERROR_STATE: "error",
    S.CANCELED_STATE: "cancelled",
    S.TIMEDOUT_STATE: "timed out",
}
_STATEMENT = TOperationType.EXECUTE_STATEMENT
#: dicomsql's own statement: refresh a served table's catalog now (``REFRESH DICOM TABLE ct``).
REFRESH_STATEMENT = re.compile(
    r"\s*REFRESH\s+DICOM\s+TABLE\s+(?P<name>`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)\s*;?\s*",
    re.IGNORECASE,
)
#: The result of REFRESH DICOM TABLE: the :class:`~dicomsql.ingest.IngestSummary` fields.
REFRESH_COLUMNS = [
    column_for("table", StringType()),
    *(
        column_for(name, LongType())
        for name in ("listed", "new", "changed", "removed", "unchanged", "rows", "unreadable")
    ),
    column_for("seconds", DoubleType()),
]


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

    def __init__(self, session: ClientSession, kind: int, description: str):
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
        self._job_group = JobGroup(
            session.spark, description, pool=session.pool, properties=session.properties
        )
        self.max_rows: int | None = None  # the most rows the client gets (--max-result-rows)
        self.rows_sent = 0
        self.error_class: str | None = None
        self._audited = False

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
            self._log.append(
                f"{time.strftime('%H:%M:%S')} {S._VALUES_TO_NAMES[state].removesuffix('_STATE').lower()}"
            )
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
            message = (
                f"the statement ran longer than its timeout of {self.timeout:g}s and was cancelled"
            )
            self.cancel(S.TIMEDOUT_STATE, OperationError(message, "HYT00"))

    def close(self) -> None:
        """Cancel what still runs, release the result and audit the statement."""
        if not self._ended:
            self._cancelled.set()
            self._job_group.cancel()
        ended_as = self.state
        self.set_state(S.CLOSED_STATE)
        self._pending, self._kept = [], None
        if self.kind == _STATEMENT and not self._audited:
            self._audited = True
            outcome = _OUTCOMES.get(ended_as, "closed before it ended")
            seconds = ((self.completed_ms or int(time.time() * 1000)) - self.started_ms) / 1000
            self.session.audit(self.description, outcome, self.error_class, self.rows_sent, seconds)

    # --- running --------------------------------------------------------------------------

    def run_statement(self, statement: str, plan: Any = None, analysed: int = 0) -> None:
        """Run ``statement`` in the session (on a pool thread) until its first rows are there:
        its parsed ``plan`` when there is one (what the policy checked is what runs; see
        :meth:`ClientSession.checked_frame` for ``analysed``)."""
        if self._cancelled.is_set():
            return
        self.set_state(S.RUNNING_STATE)
        try:
            with self._job_group.active():
                frame = self.session.checked_frame(statement, plan, analysed)
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

    def run_refresh(self, catalog: Catalog) -> None:
        """Refresh ``catalog`` (on a pool thread) and give its summary as the one row. A
        refresh is atomic: a cancel or timeout ends the operation, not the refresh, which
        finishes (and its readers see it then, or not at all)."""
        if self._cancelled.is_set():
            return
        self.set_state(S.RUNNING_STATE)
        try:
            summary = catalog.refresh()
            if not self._cancelled.is_set():
                self.set_rows(
                    REFRESH_COLUMNS, [[getattr(summary, c.name) for c in REFRESH_COLUMNS]]
                )
        except BaseException as exc:  # noqa: BLE001 - every failure becomes the client's error
            self._fail(exc)

    def set_done(self) -> None:
        """A statement that had nothing to do: FINISHED without a result."""
        self._ended = True
        self.columns = []
        self.set_state(S.FINISHED_STATE)

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
        found = _ERROR_CLASS.search(message)
        self.error_class = getattr(exc, "rule", None) or (
            found.group(1) if found else type(exc).__name__
        )
        log.info(
            "statement failed (SQLSTATE %s, %s)", sqlstate, self.error_class
        )  # the message may hold data: not logged
        if sqlstate == INTERNAL_SQLSTATE:
            log_internal_error(exc)
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
            if self.max_rows is not None:
                max_rows = max(0, min(max_rows, self.max_rows - self._offset))
                if not max_rows:
                    self._truncate()
                    return None, self._offset, False
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
                    part = part.slice(
                        0, max(1, part.num_rows * (FETCH_BYTES - size) // max(1, part.nbytes))
                    )
                taken.append(part)
                count, size = count + part.num_rows, size + part.nbytes
                rest = batch.slice(part.num_rows)
                self._pending[0:1] = [rest] if rest.num_rows else []
            offset = self._offset
            self._offset += count
            self.rows_sent = max(self.rows_sent, self._offset)
            more = bool(self._pending) or not self._ended
            if more and self.max_rows is not None and self._offset >= self.max_rows:
                self._truncate()
                more = False
            return (pa.Table.from_batches(taken) if taken else None), offset, more

    def _truncate(self) -> None:
        """The client has its --max-result-rows: the rest of the result is dropped."""
        if not self._ended:
            self._cancelled.set()
            self._job_group.cancel()
            self._ended = True
            self._pending = []
            with self._changed:
                self._log.append(
                    f"{time.strftime('%H:%M:%S')} result cut at {self.max_rows} rows (the server's --max-result-rows)"
                )

    def check_result(self) -> None:
        """Raise the client's error unless the result can be read (FINISHED)."""
        if self.state in FAILED and self.error:
            raise self.error
        if self.state in (S.CANCELED_STATE, S.CLOSED_STATE):
            raise OperationError(
                f"the operation was {'cancelled' if self.state == S.CANCELED_STATE else 'closed'}"
            )
        if self.state != S.FINISHED_STATE:
            raise OperationError(
                "the operation has no result yet: wait until GetOperationStatus says FINISHED"
            )

    def _read_next_group(self) -> None:
        try:
            with self._job_group.active():
                self._add(next(self._groups, None))
        except BaseException as exc:  # noqa: BLE001 - a later partition failed: the result ends in error
            self._fail(exc)
            raise self.error or OperationError("the operation was cancelled") from None

    def _rewind(self) -> None:
        if self._kept is None:
            raise OperationError(
                f"FETCH_FIRST is available for results of up to {REWIND_BYTES >> 20} MiB; run the statement again"
            )
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


def _arrow_partitions(
    frame: Any, columns: Sequence[Column], cancelled: threading.Event
) -> Iterator[list[pa.RecordBatch]]:
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
    if bound is not None and (
        bound <= FEW_ROWS or bound <= COLLECT_ROWS and plan.nodeName() in _COLLECTED_AS_ROWS
    ):
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
    if all(c.travels == "as is" for c in columns) and len(set(n.lower() for n in names)) == len(
        names
    ):
        return frame
    expressions = {
        "as is": "c{0}",
        "text": "CAST(c{0} AS STRING)",
        "json": "to_json(c{0}, map('ignoreNullFields', 'false'))",
    }
    return frame.toDF(*(f"c{i}" for i in range(len(columns)))).selectExpr(
        *(f"{expressions[c.travels].format(i)} AS c{i}" for i, c in enumerate(columns))
    )


class ClientSession:
    """One client's Spark session and its operations. An analyst's statements are checked by
    the policy (:mod:`.policy`) before they run, in the scope of its own database."""

    def __init__(
        self, engine: Engine, spark: Any, account: Account, address: str, protocol: int, pool: str
    ):
        self.engine = engine
        self.spark = spark
        self.pool = pool
        self.account = account
        self.user = account.name
        self.address = address
        self.protocol = protocol
        self.id = uuid.uuid4().bytes
        self.secret = uuid.uuid4().bytes
        self.operations: dict[bytes, Operation] = {}
        self.caches = False  # whether the client ran CACHE TABLE
        self.last_used = time.monotonic()
        self._started = False  # whether a statement ran
        self._served_views = (
            engine.deidentified_views if account.deidentified else engine.served_views
        )
        self.scope = (
            None
            if account.admin
            else policy.Scope(
                own_database=account.database,
                shared_databases=frozenset(
                    () if account.deidentified else engine.access.shared_databases
                ),
                functions=engine.functions,
                session=spark,
                served_views=self._served_views,
                check_paths=check_paths,
                export_folders=(
                    () if account.deidentified else _export_folders(engine.access, account.name)
                ),
                deidentified=account.deidentified,
            )
        )
        #: Spark local properties of the session's statements: the deidentified role's name
        #: files only by their ids (dicomsql.storage.open_named)
        self.properties = {READS_PROPERTY: "ids"} if account.deidentified else {}
        self._lock = threading.Lock()
        self._checking = threading.Lock()  # an analyst's check + analysis, one statement at a time
        self._analysed = 0  # statements analysed so far

    def new_operation(self, kind: int, description: str) -> Operation:
        """A new operation of this session (INITIALIZED)."""
        self.last_used = time.monotonic()
        with self._lock:
            most = MAX_OPEN_OPERATIONS if self.scope is None else MAX_OPEN_OPERATIONS_ANALYST
            if len(self.operations) >= most:
                raise OperationError(
                    f"this session has {most} operations open: close some first", "54000"
                )
            operation = Operation(self, kind, description)
            self.operations[operation.id] = operation
        return operation

    def execute(self, statement: str, kind: int, timeout: float | None = None) -> Operation:
        """Queue ``statement`` on the engine's pool; returns its operation (PENDING). After
        ``timeout`` seconds (the client's query timeout, for analysts at most the server's)
        it is cancelled, TIMEDOUT. A statement the policy refuses raises
        :class:`OperationError` (SQLSTATE 42501) naming the rule, and is audited as denied."""
        refresh = REFRESH_STATEMENT.fullmatch(statement)
        if refresh:
            return self.refresh(statement, refresh.group("name").strip("`"), kind)
        analysed = self._analysed  # what the session had analysed when the check began
        plan, parse_error = self._parsed_plan(statement)
        try:
            if plan is None and self.scope is not None:  # nothing unchecked runs
                raise parse_error
            self._check(plan)
        except policy.PolicyViolation as violation:
            self.audit(statement, "denied", violation.rule)
            raise OperationError(str(violation), violation.sqlstate) from None
        except Exception as exc:  # noqa: BLE001 - a syntax error (or a failing check): nothing ran
            message, sqlstate = client_error(exc)
            self.audit(
                statement, "error", "PARSE_SYNTAX_ERROR" if plan is None else type(exc).__name__
            )
            raise OperationError(message, sqlstate) from None
        self.audit(statement, "started")
        operation = self.new_operation(kind, statement)
        if self._keeps_own_database(plan):
            operation.set_done()
            return operation
        operation.set_state(S.PENDING_STATE)
        if self.scope is not None:
            limit = self.engine.access.query_timeout
            timeout = min(timeout or limit, limit) if limit else timeout
            operation.max_rows = self.engine.access.max_result_rows
        if timeout and timeout > 0:
            operation.timeout, operation.deadline = timeout, time.monotonic() + timeout
        name = plan.getClass().getSimpleName() if plan is not None else ""
        self.caches = self.caches or name.startswith("Cache")
        light = name.startswith(("Show", "Describe")) or name in _CATALOGUE_PLANS
        runnable = None if name == "CompoundBody" else plan  # a script runs through spark.sql
        self.engine.submit(
            lambda: operation.run_statement(statement, runnable, analysed), light=light
        )
        return operation

    def refresh(self, statement: str, name: str, kind: int) -> Operation:
        """``REFRESH DICOM TABLE name``: queue a refresh of the served table's catalog (any
        client may; what it reads is the served folder's, and only the server writes)."""
        catalog = self.engine.catalogs.get(name.lower())
        if catalog is None:
            self.audit(statement, "error", "NOT_A_CATALOG")
            served = ", ".join(sorted(self.engine.catalogs)) or "none: the server serves no catalog"
            raise OperationError(
                f"REFRESH DICOM TABLE: {name} is not a served catalog (served: {served})", "42P01"
            )
        self.audit(statement, "started")
        operation = self.new_operation(kind, statement)
        operation.set_state(S.PENDING_STATE)
        self.engine.submit(lambda: operation.run_refresh(catalog))
        return operation

    def _keeps_own_database(self, plan: Any) -> bool:
        """Whether ``plan`` is PyHive's ``USE default`` as an analyst session's first
        statement (``connect()`` runs it whatever the URL): the session stays in its own
        database, as a JDBC client's that asks for ``default`` does."""
        first, self._started = not self._started, True
        if (
            not first
            or self.scope is None
            or plan is None
            or plan.getClass().getSimpleName() != "SetCatalogAndNamespace"
        ):
            return False
        return [part.lower() for part in policy.names_of(plan.child())] == ["default"]

    def _check(self, plan: Any) -> None:
        """The policy, for an analyst; for an admin only the settings fixed for everyone."""
        if plan is None:
            return
        if self.scope is not None:
            policy.check(plan, self.scope)
            return
        for node in policy.nodes_named(plan, "SetCommand"):
            if node.kv().isDefined():
                pair = node.kv().get()
                policy.check_setting(
                    pair._1(), pair._2().get() if pair._2().isDefined() else None, admin=True
                )

    def _parsed_plan(self, statement: str) -> tuple[Any, Exception | None]:
        """The plan Spark's parser makes of ``statement``, or (None, the syntax error)."""
        session = self.spark._jsparkSession
        # the parser reads its settings (substitution, ANSI keywords) from the thread's active session
        self.spark.sparkContext._jvm.org.apache.spark.sql.SparkSession.setActiveSession(session)
        try:
            return session.sessionState().sqlParser().parsePlan(statement), None
        except Exception as exc:  # noqa: BLE001 - a syntax error: an admin's run reports it, an analyst's is refused
            from pyspark.errors.exceptions.captured import convert_exception

            java = getattr(exc, "java_exception", None)
            return None, convert_exception(java) if java is not None else exc

    def checked_frame(self, statement: str, plan: Any, analysed: int) -> Any:
        """The DataFrame of ``statement``, of its parsed ``plan`` when given (not parsed again),
        else as ``spark.sql`` makes it. An analyst's statements are analysed one at a time,
        and checked again when the session analysed another statement since ``analysed``:
        what a statement's names resolve to (the current database, the temporary views) is
        what the policy saw, whatever the session ran meanwhile."""
        if self.scope is None:
            return self._frame(statement, plan)
        with self._checking:
            if plan is not None and self._analysed != analysed:
                policy.check(plan, self.scope)
            try:
                return self._frame(statement, plan)
            finally:
                self._analysed += 1

    def _frame(self, statement: str, plan: Any) -> Any:
        if plan is None:
            return self.spark.sql(statement)
        from pyspark.sql import DataFrame

        jvm = self.spark.sparkContext._jvm
        return DataFrame(
            jvm.org.apache.spark.sql.classic.Dataset.ofRows(self.spark._jsparkSession, plan),
            self.spark,
        )

    def configure(self, configuration: dict[str, str]) -> None:
        """Apply a client's OpenSession ``configuration`` (``use:database``,
        ``set:hiveconf:KEY``/``set:hivevar:KEY``, plain ``KEY``), as the policy allows. An
        analyst's session stays in its own database when a client asks for ``default``, which
        every JDBC URL without a database does."""
        for key, value in configuration.items():
            if key == "use:database":
                if value and not (self.scope is not None and value.lower() == "default"):
                    if self.scope is not None and value.lower() not in self.scope.readable:
                        raise policy.PolicyViolation(
                            "read_allowed_databases", f"use:database={value}"
                        )
                    self.spark.catalog.setCurrentDatabase(value)
            elif not key.startswith(("set:", "use:")) or key.startswith(
                ("set:hiveconf:", "set:hivevar:")
            ):
                name = key.split(":", 2)[2] if key.startswith("set:") else key
                if name in _CLIENT_HINTS:
                    continue
                policy.check_setting(name, value, admin=self.scope is None)
                self.spark.conf.set(name, value)

    def audit(
        self,
        statement: str,
        outcome: str,
        detail: str | None = None,
        rows: int | None = None,
        seconds: float | None = None,
    ) -> None:
        """Record a statement of this session in the audit log (if there is one)."""
        log_ = self.engine.access.audit
        if log_ is not None:
            log_.statement(
                self.user, self.address, self.id.hex(), statement, outcome, detail, rows, seconds
            )

    def idle_for(self, now: float) -> float:
        """Seconds since the last request, 0 while a statement runs or waits."""
        if any(
            op.state in (S.PENDING_STATE, S.RUNNING_STATE) for op in list(self.operations.values())
        ):
            return 0.0
        return now - self.last_used

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
            for table in self.spark.catalog.listTables():
                if (
                    table.isTemporary
                    and table.name.lower() not in self._served_views
                    and self.spark.catalog.isCached(table.name)
                ):
                    self.spark.catalog.uncacheTable(table.name)


class Engine:
    """The served Spark session, the client sessions cloned from it, and the pool their
    statements run on (``max_concurrent`` at once; beyond that they queue as PENDING).
    ``access`` says what analysts may do and records what everyone did."""

    def __init__(
        self,
        spark: Any,
        max_concurrent: int,
        access: Access,
        catalogs: Mapping[str, Catalog] | None = None,
        refresh_interval: float | None = None,
        deidentified: Any | None = None,
    ):
        self.spark = spark
        self.access = access
        self.catalogs = dict(catalogs or {})
        self.deidentified = deidentified
        # what analysts may call and which views are the server's: as the served session is now
        self.functions = policy.Functions.of(spark)
        self.served_views = _temporary_views(spark)
        self.deidentified_views = (
            _temporary_views(deidentified) if deidentified is not None else frozenset()
        )
        self._pool = ThreadPoolExecutor(
            max_workers=max_concurrent, thread_name_prefix="dicomsql-query"
        )
        self._light_pool = ThreadPoolExecutor(
            max_workers=max_concurrent, thread_name_prefix="dicomsql-catalogue"
        )
        self.sessions: dict[bytes, ClientSession] = {}
        self._opened = 0
        self._databases: set[str] = set()
        self._database_lock = threading.Lock()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="dicomsql-timeouts", daemon=True)
        self._watcher.start()
        self._refresher = None
        if refresh_interval and self.catalogs:
            self._refresher = threading.Thread(
                target=self._refresh_every,
                args=(refresh_interval,),
                name="dicomsql-refresh",
                daemon=True,
            )
            self._refresher.start()

    def open_session(
        self, account: Account, address: str, protocol: int, configuration: dict[str, str]
    ) -> ClientSession:
        """A new client session: a clone of the served session with ``configuration`` applied
        (see :meth:`ClientSession.configure`). An analyst's starts in its own database
        (created at its first login) and counts against ``--max-sessions-per-user``."""
        limit = self.access.max_sessions_per_user
        if (
            not account.admin
            and limit
            and sum(s.user == account.name for s in list(self.sessions.values())) >= limit
        ):
            raise OperationError(
                f"{account.name} has {limit} sessions open, the most allowed (--max-sessions-per-user): close one",
                "08004",
            )
        if account.deidentified and self.deidentified is None:
            raise OperationError(
                f"{account.name} has the deidentified role, and this server has no "
                "de-identified views (dicomsql serve --deidentified-views)",
                "08004",
            )
        spark = cloned(self.deidentified if account.deidentified else self.spark)
        with self._lock:
            self._opened += 1
            pool = f"dicomsql-{self._opened % SCHEDULER_POOLS}"
        session = ClientSession(self, spark, account, address, protocol, pool)
        if not account.admin:
            self._create_database(account.database)
            spark.catalog.setCurrentDatabase(account.database)
        try:
            session.configure(configuration)
        except policy.PolicyViolation as violation:
            raise OperationError(str(violation), violation.sqlstate) from None
        with self._lock:
            self.sessions[session.id] = session
        return session

    def _create_database(self, name: str) -> None:
        """The analyst's own database (``user_<name>``: letters, digits and ``_`` only)."""
        with self._database_lock:  # two first logins at once: one CREATE
            if name not in self._databases:
                if not self.spark.catalog.databaseExists(name):
                    self.spark.sql(
                        f"CREATE DATABASE `{name}` COMMENT 'dicomsql: the tables of one analyst'"
                    )
                self._databases.add(name)

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

    def _watch(self) -> None:
        """Time out the statements whose query timeout has passed, and close the analysts'
        sessions idle for longer than ``--idle-timeout``."""
        idle_limit = self.access.idle_timeout
        while not self._stopping.wait(_TIMEOUT_CHECK_SECONDS):
            now = time.monotonic()
            with self._lock:
                sessions = list(self.sessions.values())
            for session in sessions:
                for operation in list(session.operations.values()):
                    if operation.deadline is not None and operation.deadline <= now:
                        operation.deadline = None
                        operation.time_out()
                if idle_limit and not session.account.admin and session.idle_for(now) > idle_limit:
                    log.info("session of %s closed after %gs idle", session.user, idle_limit)
                    self.close_session(session.id)

    def _refresh_every(self, seconds: float) -> None:
        """Refresh every catalog each ``seconds`` (a refresh that finds nothing changed reads
        the listing of the files and the catalog's properties, and counts its rows)."""
        while not self._stopping.wait(seconds):
            for catalog in self.catalogs.values():
                if self._stopping.is_set():
                    return
                try:
                    summary = catalog.refresh()
                except Exception as exc:  # noqa: BLE001 - the next interval tries again
                    log.warning("refresh of %s failed (%s)", catalog.name, type(exc).__name__)
                    continue
                if summary.read or summary.removed:
                    log.info(
                        "refreshed %s: %d files read, %d rows removed, %.1fs",
                        catalog.name,
                        summary.read,
                        summary.removed,
                        summary.seconds,
                    )

    def shutdown(self) -> None:
        """Close every session (cancelling their statements), stop the pool and the
        refreshes (a refresh under way finishes first: it is atomic)."""
        self._stopping.set()
        self._watcher.join()
        if self._refresher is not None:
            self._refresher.join()
        for session_id in list(self.sessions):
            self.close_session(session_id)
        for pool in (self._pool, self._light_pool):
            pool.shutdown(wait=True, cancel_futures=True)


def log_internal_error(exc: BaseException) -> None:
    """Log an error no client caused: its class at ERROR, the traceback (which may hold
    values and paths of the data) only at DEBUG."""
    log.error(
        "internal error (%s); set the dicomsql.server logger to DEBUG for its traceback",
        type(exc).__name__,
    )
    log.debug("internal error", exc_info=exc)


def _logged(work: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            work()
        except Exception:
            log.exception("operation failed outside its own error handling")

    return run


def _temporary_views(spark: Any) -> frozenset[str]:
    return frozenset(t.name.lower() for t in spark.catalog.listTables() if t.isTemporary)


def _export_folders(access: Access, user: str) -> tuple[str, ...]:
    """Where an analyst's ``dicom_export`` may write: ``<root>/<user>`` of each export root
    when the server grants analysts exports (and the name is a plain folder name)."""
    if not access.analyst_exports or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*", user):
        return ()
    return tuple(os.path.join(root, user) for root in export_roots() or ())

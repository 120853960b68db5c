"""The TCLIService requests of one client connection, answered from the :class:`Engine`.

Every request gets a ``TStatus``: SUCCESS, or ERROR with one concise message and a SQLSTATE
(never a traceback). A connection sees only the sessions it opened; when it ends, they are
closed and their statements cancelled.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from ..errors import INTERNAL_SQLSTATE, client_error
from . import catalog
from .bindings import TCLIService, accelerate
from .bindings import ttypes as t
from .engine import (
    ENDED,
    FAILED,
    ClientSession,
    Engine,
    Operation,
    OperationError,
    log_internal_error,
)
from .rowsets import Column, arrow_table, empty_row_set, table_schema, to_row_set
from .transport import Peer

__all__ = ["Service", "serve_connection", "SERVER_PROTOCOL"]

log = logging.getLogger("dicomsql.server")

#: The newest protocol this server speaks; a client gets the older of its own and this.
SERVER_PROTOCOL = t.TProtocolVersion.HIVE_CLI_SERVICE_PROTOCOL_V10
_COLUMNAR_FROM = t.TProtocolVersion.HIVE_CLI_SERVICE_PROTOCOL_V6
_OK = t.TStatus(statusCode=t.TStatusCode.SUCCESS_STATUS)
_LOG_COLUMNS = [Column("operation_log", t.TTypeId.STRING_TYPE, "string")]
_DEFAULT_FETCH_ROWS = 1000
#: How often a synchronous statement checks that its client is still there.
_SYNC_POLL_SECONDS = 0.5
#: How long GetOperationStatus waits for a running statement to end before answering (Hive's
#: long polling: JDBC clients poll without pausing); short, as a JDBC cancel waits behind it.
_LONG_POLL_SECONDS = 1.0
_MAX_FETCH_ROWS = 100_000
Op = t.TOperationType


def _error(message: str, sqlstate: str = "HY000") -> t.TStatus:
    return t.TStatus(
        statusCode=t.TStatusCode.ERROR_STATUS, errorMessage=message, sqlState=sqlstate, errorCode=0
    )


def _client_error(exc: Exception) -> OperationError:
    """What the client is told of ``exc``; an internal error is logged (see :func:`log_internal_error`)."""
    message, sqlstate = client_error(exc)
    if sqlstate == INTERNAL_SQLSTATE:
        log_internal_error(exc)
    return OperationError(message, sqlstate)


def _answers(response: type, **failed: Any) -> Callable:
    """Decorate a request handler: an error it raises becomes ``response`` with an ERROR
    status (and ``failed`` fields): an :class:`OperationError` as it says, anything else as
    :func:`_client_error` tells it."""

    def decorate(handler: Callable) -> Callable:
        @functools.wraps(handler)
        def answer(self: Service, request: Any) -> Any:
            try:
                return handler(self, request)
            except Exception as exc:  # noqa: BLE001 - the client hears one line; the log has the rest
                error = exc if isinstance(exc, OperationError) else _client_error(exc)
                return response(status=_error(str(error), error.sqlstate), **failed)

        return answer

    return decorate


def _listing_request(
    response: type, kind: int, name: str, rows: Callable[[Any, Any], list]
) -> Callable:
    """A catalogue request handler: ``rows(spark, request)`` in the client's session become
    the result of an operation with :data:`catalog.COLUMNS` ``[name]``."""

    def handle(self: Service, req: Any) -> Any:
        return response(
            status=_OK,
            operationHandle=self._listing(
                req.sessionHandle, kind, name, lambda spark: rows(spark, req)
            ),
        )

    return _answers(response)(handle)


class Service(TCLIService.Iface):
    """Answers the requests of one connection (``peer``)."""

    def __init__(self, engine: Engine, peer: Peer):
        self.engine = engine
        self.peer = peer
        self._sessions: dict[bytes, ClientSession] = {}

    # --- sessions ---------------------------------------------------------------------------

    @_answers(t.TOpenSessionResp, serverProtocolVersion=SERVER_PROTOCOL)
    def OpenSession(self, req: t.TOpenSessionReq) -> t.TOpenSessionResp:
        protocol = min(req.client_protocol, SERVER_PROTOCOL)
        # NOSASL (only without passwords): the session names its user
        account = self.peer.account or self.engine.access.authenticator.authenticate(
            req.username or "", ""
        )
        session = self.engine.open_session(
            account, self.peer.address, protocol, dict(req.configuration or {})
        )
        self._sessions[session.id] = session
        log.info(
            "session opened for %s (%s) from %s (protocol V%d)",
            account.name,
            account.role,
            self.peer.address,
            protocol + 1,
        )
        return t.TOpenSessionResp(
            status=_OK,
            serverProtocolVersion=protocol,
            sessionHandle=t.TSessionHandle(
                sessionId=t.THandleIdentifier(guid=session.id, secret=session.secret)
            ),
            configuration={},
        )

    @_answers(t.TCloseSessionResp)
    def CloseSession(self, req: t.TCloseSessionReq) -> t.TCloseSessionResp:
        session = self._own_session(req.sessionHandle)  # one closed for idleness closes quietly
        del self._sessions[session.id]
        self.engine.close_session(session.id)
        return t.TCloseSessionResp(status=_OK)

    def close_all(self) -> None:
        """The connection ended: close its sessions, cancelling what they run."""
        for session_id in list(self._sessions):
            self.engine.close_session(session_id)
        self._sessions.clear()

    def _own_session(self, handle: t.TSessionHandle) -> ClientSession:
        """The session of ``handle`` if this connection opened it (open or not)."""
        identifier = handle.sessionId if handle else None
        session = self._sessions.get(identifier.guid) if identifier else None
        if session is None or session.secret != identifier.secret:
            raise OperationError(
                "invalid session handle (closed, or not opened on this connection)", "08003"
            )
        return session

    def _session(self, handle: t.TSessionHandle) -> ClientSession:
        """The open session of ``handle`` (its use counts as activity)."""
        session = self._own_session(handle)
        if session.id not in self.engine.sessions:
            raise self._closed_for_idleness()
        still_valid = getattr(self.engine.access.authenticator, "still_valid", None)
        if still_valid is not None and not still_valid(session.account):
            self.engine.close_session(session.id)
            raise OperationError(
                "the account was removed or its role changed: log in again", "28000"
            )
        session.last_used = time.monotonic()
        return session

    def _closed_for_idleness(self) -> OperationError:
        return OperationError(
            f"the session was closed after {self.engine.access.idle_timeout:g}s without a request (--idle-timeout): open a new one",
            "08003",
        )

    def _operation(self, handle: t.TOperationHandle) -> Operation:
        identifier = handle.operationId if handle else None
        for session in self._sessions.values():
            operation = session.operations.get(identifier.guid) if identifier else None
            if operation is not None and operation.secret == identifier.secret:
                return operation
        if any(session_id not in self.engine.sessions for session_id in self._sessions):
            raise self._closed_for_idleness()
        raise OperationError(
            "invalid operation handle (closed, or not of this connection)", "HY010"
        )

    @staticmethod
    def _handle(operation: Operation) -> t.TOperationHandle:
        # every operation may have a result set, as Spark's Thrift server says (an async
        # statement's columns are not known yet; a command's result has none)
        return t.TOperationHandle(
            operationId=t.THandleIdentifier(guid=operation.id, secret=operation.secret),
            operationType=operation.kind,
            hasResultSet=True,
        )

    # --- statements -------------------------------------------------------------------------

    @_answers(t.TExecuteStatementResp)
    def ExecuteStatement(self, req: t.TExecuteStatementReq) -> t.TExecuteStatementResp:
        session = self._session(req.sessionHandle)
        operation = session.execute(
            req.statement, Op.EXECUTE_STATEMENT, timeout=req.queryTimeout or None
        )
        if not req.runAsync:
            while operation.wait(_SYNC_POLL_SECONDS) not in ENDED:
                if self.peer.gone():  # nobody waits for the answer: stop the work
                    session.close_operation(operation.id)
                    raise OperationError("the client went away")
            if operation.state in FAILED and operation.error:
                session.close_operation(operation.id)
                raise operation.error
        return t.TExecuteStatementResp(status=_OK, operationHandle=self._handle(operation))

    @_answers(t.TGetOperationStatusResp)
    def GetOperationStatus(self, req: t.TGetOperationStatusReq) -> t.TGetOperationStatusResp:
        operation = self._operation(req.operationHandle)
        operation.wait(_LONG_POLL_SECONDS)
        error = operation.error if operation.state in FAILED else None
        return t.TGetOperationStatusResp(
            status=_OK,
            operationState=operation.state,
            sqlState=error.sqlstate if error else None,
            errorCode=0 if error else None,
            errorMessage=str(error) if error else None,
            operationStarted=operation.started_ms,
            operationCompleted=operation.completed_ms,
            hasResultSet=True,
        )

    @_answers(t.TCancelOperationResp)
    def CancelOperation(self, req: t.TCancelOperationReq) -> t.TCancelOperationResp:
        self._operation(req.operationHandle).cancel()
        return t.TCancelOperationResp(status=_OK)

    @_answers(t.TCloseOperationResp)
    def CloseOperation(self, req: t.TCloseOperationReq) -> t.TCloseOperationResp:
        operation = self._operation(req.operationHandle)
        operation.session.close_operation(operation.id)
        return t.TCloseOperationResp(status=_OK)

    @_answers(t.TGetResultSetMetadataResp)
    def GetResultSetMetadata(self, req: t.TGetResultSetMetadataReq) -> t.TGetResultSetMetadataResp:
        operation = self._operation(req.operationHandle)
        operation.check_result()
        return t.TGetResultSetMetadataResp(status=_OK, schema=table_schema(operation.columns or []))

    @_answers(t.TFetchResultsResp)
    def FetchResults(self, req: t.TFetchResultsReq) -> t.TFetchResultsResp:
        operation = self._operation(req.operationHandle)
        columnar = operation.session.protocol >= _COLUMNAR_FROM
        from_start = req.orientation == t.TFetchOrientation.FETCH_FIRST
        if req.orientation not in (t.TFetchOrientation.FETCH_NEXT, t.TFetchOrientation.FETCH_FIRST):
            raise OperationError("only FETCH_NEXT and FETCH_FIRST are supported", "HYC00")
        if req.fetchType == 1:  # the operation log
            lines = operation.log_lines(from_start)
            rows = to_row_set(
                _LOG_COLUMNS, arrow_table(_LOG_COLUMNS, [(line,) for line in lines]), 0, columnar
            )
            return t.TFetchResultsResp(status=_OK, hasMoreRows=False, results=rows)
        max_rows = min(
            req.maxRows if req.maxRows and req.maxRows > 0 else _DEFAULT_FETCH_ROWS, _MAX_FETCH_ROWS
        )
        rows, offset, more = operation.fetch(max_rows, from_start)
        columns = operation.columns or []
        results = (
            to_row_set(columns, rows, offset, columnar)
            if rows is not None
            else empty_row_set(columns, columnar)
        )
        return t.TFetchResultsResp(status=_OK, hasMoreRows=more, results=results)

    # --- catalogue: each a listing of the client's session ----------------------------------

    def _listing(
        self, handle: t.TSessionHandle, kind: int, name: str, rows: Callable[[Any], list]
    ) -> t.TOperationHandle:
        session = self._session(handle)
        operation = session.new_operation(kind, name)
        try:
            operation.set_rows(catalog.COLUMNS[name], _visible(session, name, rows(session.spark)))
        except Exception as exc:  # noqa: BLE001 - a Spark error in a listing is the client's error
            session.close_operation(operation.id)
            raise _client_error(exc) from None
        return self._handle(operation)

    GetCatalogs = _listing_request(
        t.TGetCatalogsResp, Op.GET_CATALOGS, "catalogs", lambda spark, req: []
    )
    GetSchemas = _listing_request(
        t.TGetSchemasResp,
        Op.GET_SCHEMAS,
        "schemas",
        lambda spark, req: catalog.schemas(spark, req.schemaName),
    )
    GetTableTypes = _listing_request(
        t.TGetTableTypesResp,
        Op.GET_TABLE_TYPES,
        "table_types",
        lambda spark, req: catalog.table_types(),
    )
    GetTables = _listing_request(
        t.TGetTablesResp,
        Op.GET_TABLES,
        "tables",
        lambda spark, req: catalog.tables(spark, req.schemaName, req.tableName, req.tableTypes),
    )
    GetColumns = _listing_request(
        t.TGetColumnsResp,
        Op.GET_COLUMNS,
        "columns",
        lambda spark, req: catalog.columns(spark, req.schemaName, req.tableName, req.columnName),
    )
    GetFunctions = _listing_request(
        t.TGetFunctionsResp,
        Op.GET_FUNCTIONS,
        "functions",
        lambda spark, req: catalog.functions(spark, req.schemaName, req.functionName),
    )
    GetTypeInfo = _listing_request(
        t.TGetTypeInfoResp, Op.GET_TYPE_INFO, "type_info", lambda spark, req: catalog.type_info()
    )
    # Spark tables have no primary or foreign keys
    GetPrimaryKeys = _listing_request(
        t.TGetPrimaryKeysResp, Op.UNKNOWN, "primary_keys", lambda spark, req: []
    )
    GetCrossReference = _listing_request(
        t.TGetCrossReferenceResp, Op.UNKNOWN, "cross_reference", lambda spark, req: []
    )

    @_answers(t.TGetInfoResp)
    def GetInfo(self, req: t.TGetInfoReq) -> t.TGetInfoResp:
        session = self._session(req.sessionHandle)
        info = t.TGetInfoType
        values = {
            info.CLI_SERVER_NAME: t.TGetInfoValue(stringValue="dicomsql"),
            info.CLI_DBMS_NAME: t.TGetInfoValue(stringValue="Spark SQL"),
            info.CLI_DBMS_VER: t.TGetInfoValue(stringValue=session.spark.version),
            info.CLI_USER_NAME: t.TGetInfoValue(stringValue=session.user),
            info.CLI_IDENTIFIER_QUOTE_CHAR: t.TGetInfoValue(stringValue="`"),
            info.CLI_SEARCH_PATTERN_ESCAPE: t.TGetInfoValue(stringValue="\\"),
            info.CLI_MAX_IDENTIFIER_LEN: t.TGetInfoValue(lenValue=128),
            info.CLI_MAX_COLUMN_NAME_LEN: t.TGetInfoValue(lenValue=128),
            info.CLI_MAX_TABLE_NAME_LEN: t.TGetInfoValue(lenValue=128),
            info.CLI_MAX_SCHEMA_NAME_LEN: t.TGetInfoValue(lenValue=128),
            info.CLI_TXN_CAPABLE: t.TGetInfoValue(smallIntValue=0),
            info.CLI_DATA_SOURCE_READ_ONLY: t.TGetInfoValue(stringValue="N"),
        }
        if req.infoType not in values:
            name = info._VALUES_TO_NAMES.get(req.infoType, str(req.infoType))
            raise OperationError(f"GetInfo: {name} is not supported", "HYC00")
        return t.TGetInfoResp(status=_OK, infoValue=values[req.infoType])

    # --- delegation tokens: not used without Kerberos -------------------------------------

    def _no_tokens(self, response: type) -> Any:
        return response(
            status=_error(
                "delegation tokens need Kerberos, which this server does not use", "HYC00"
            )
        )

    def GetDelegationToken(self, req: Any) -> t.TGetDelegationTokenResp:
        return self._no_tokens(t.TGetDelegationTokenResp)

    def CancelDelegationToken(self, req: Any) -> t.TCancelDelegationTokenResp:
        return self._no_tokens(t.TCancelDelegationTokenResp)

    def RenewDelegationToken(self, req: Any) -> t.TRenewDelegationTokenResp:
        return self._no_tokens(t.TRenewDelegationTokenResp)

    def GetLog(self, req: Any) -> t.TGetLogResp:
        return t.TGetLogResp(
            status=_error(
                "GetLog is gone since HiveServer2 0.14: use FetchResults with fetchType 1", "HYC00"
            )
        )


#: The column holding the database of each catalogue listing's rows.
_SCHEMA_COLUMN = {"schemas": 0, "tables": 1, "columns": 1}


def _visible(session: ClientSession, name: str, rows: list) -> list:
    """The rows of a catalogue listing a session may see: for an analyst, only of the
    databases it may read (and of temporary views, which have none)."""
    if session.scope is None or name not in _SCHEMA_COLUMN:
        return rows
    readable, column = session.scope.readable, _SCHEMA_COLUMN[name]
    return [row for row in rows if row[column] is None or row[column].lower() in readable]


def serve_connection(engine: Engine) -> Callable[[Any, Any, Peer], None]:
    """The transport's handler: process requests until the client goes, then clean up."""

    accelerate()

    def serve(input_protocol: Any, output_protocol: Any, peer: Peer) -> None:
        service = Service(engine, peer)
        processor = TCLIService.Processor(service)
        try:
            while True:
                processor.process(input_protocol, output_protocol)
        finally:
            service.close_all()

    return serve

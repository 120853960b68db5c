"""dicomsql's HiveServer2 endpoint as clients use it: a session per client, cancel that frees
the executors, clients that vanish, queueing, both transports, FETCH_FIRST and the operation
log. Real PyHive and beeline clients against the real server on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from pyhive import hive
from pyhive.exc import OperationalError
from TCLIService import ttypes

import dicomsql
from dicomsql.server import free_port

from .conftest import DEMO_PATIENTS, no_active_jobs

pytestmark = [pytest.mark.server, pytest.mark.cluster]

LONG_QUERY = "SELECT count(*) FROM range(0, 50000000000, 1, 2) WHERE id % 7 = 3"
S = ttypes.TOperationState


def _connect(server, **options):
    return hive.connect(host=server.host, port=server.port, **options)


def _rows(connection, statement):
    cursor = connection.cursor()
    cursor.execute(statement)
    rows = cursor.fetchall() if cursor.description else []
    cursor.close()
    return rows


def _state(cursor) -> int:
    return cursor.poll(get_progress_update=False).operationState


def _wait_for_state(cursor, states, seconds: float = 60) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = _state(cursor)
        if state in states:
            return state
        time.sleep(0.05)
    raise AssertionError(f"still {S._VALUES_TO_NAMES[state]} after {seconds}s")


def test_each_client_has_its_own_session(thrift_server):
    one, other = _connect(thrift_server), _connect(thrift_server)
    try:
        _rows(one, "SET dicomsql.test.key=mine")
        _rows(one, "CREATE OR REPLACE TEMPORARY VIEW only_mine AS SELECT 1 AS x")
        _rows(
            one, "CREATE OR REPLACE TEMPORARY VIEW demo_patients AS SELECT 'replaced' AS PatientID"
        )
        _rows(one, "DROP TEMPORARY FUNCTION image_stats")
        _rows(one, "CREATE DATABASE IF NOT EXISTS endpoint_test")
        _rows(one, "USE endpoint_test")
        assert _rows(one, "SELECT current_database()") == [("endpoint_test",)]
        assert _rows(one, "SELECT PatientID FROM demo_patients") == [("replaced",)]

        assert _rows(other, "SET dicomsql.test.key") == [("dicomsql.test.key", "<undefined>")]
        assert "only_mine" not in {row[1] for row in _rows(other, "SHOW TABLES")}
        assert _rows(other, "SELECT current_database()") == [("default",)]
        assert _rows(other, "SELECT count(*) FROM demo_patients") == [(DEMO_PATIENTS,)]
        assert _rows(
            other, "SELECT count(*) FROM demo_images WHERE dicom_tag(meta, 'PatientID') = PatientID"
        ) == [(DEMO_PATIENTS * 12,)]
        functions = {row[0] for row in _rows(other, "SHOW USER FUNCTIONS")}
        assert {"image_stats", "dicom_tag", "coxph_fit"} <= {
            name.split(".")[-1] for name in functions
        }
    finally:
        _rows(other, "DROP DATABASE IF EXISTS endpoint_test")
        one.close()
        other.close()
    again = _connect(thrift_server)  # the closed session's views are gone with it
    assert "only_mine" not in {row[1] for row in _rows(again, "SHOW TABLES")}
    again.close()


def test_reset_keeps_what_dicomsql_needs(thrift_server):
    connection = _connect(thrift_server)
    _rows(connection, "SET spark.sql.shuffle.partitions=3")
    _rows(connection, "RESET")
    assert _rows(connection, "SET spark.sql.python.filterPushdown.enabled") == [
        ("spark.sql.python.filterPushdown.enabled", "true")
    ]
    assert "MergeSubplans" in _rows(connection, "SET spark.sql.optimizer.excludedRules")[0][1]
    assert (
        _rows(connection, "SELECT count(*) FROM demo_images WHERE path LIKE '%.dcm'")[0][0]
        >= DEMO_PATIENTS * 12
    )
    connection.close()


def test_cancel_frees_the_executors(thrift_server, spark):
    busy, other = _connect(thrift_server), _connect(thrift_server)
    cursor = busy.cursor()
    cursor.execute(LONG_QUERY, async_=True)
    _wait_for_state(cursor, (S.RUNNING_STATE,))
    time.sleep(3)
    assert spark.sparkContext.statusTracker().getActiveJobsIds()
    cursor.cancel()
    assert no_active_jobs(spark, 2.0), "the cancelled query still runs after 2 s"
    started = time.monotonic()
    assert _rows(other, "SELECT 1") == [(1,)]
    assert time.monotonic() - started < 5
    assert _state(cursor) == S.CANCELED_STATE
    busy.close()
    other.close()


def test_a_client_killed_mid_fetch_leaves_no_job_and_no_thread(thrift_server, spark):
    def client_threads():
        return {t.name for t in threading.enumerate() if t.name.startswith("dicomsql-client")}

    threads_before, sessions_before = client_threads(), set(thrift_server.engine.sessions)
    script = (
        "import sys, time\n"
        "from pyhive import hive\n"
        f"cursor = hive.connect('{thrift_server.host}', {thrift_server.port}).cursor()\n"
        "cursor.execute(\"SELECT id, repeat('x', 200) AS pad FROM range(0, 4000000, 1, 40)\")\n"
        "cursor.fetchmany(5000)\n"
        "print('fetching', flush=True)\n"
        "time.sleep(600)\n"
    )
    client = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout.readline().strip() == "fetching"
        (thread,) = client_threads() - threads_before  # the killed client's connection thread
        (session,) = set(thrift_server.engine.sessions) - sessions_before
        os.kill(client.pid, signal.SIGKILL)
    finally:
        client.kill()
        client.wait(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (
        thread in client_threads() or session in thrift_server.engine.sessions
    ):
        time.sleep(0.1)
    assert thread not in client_threads()
    assert session not in thrift_server.engine.sessions
    assert no_active_jobs(spark, 5.0)


def test_a_client_killed_while_its_synchronous_statement_runs(thrift_server, spark):
    script = (
        "from pyhive import hive\n"
        f"cursor = hive.connect('{thrift_server.host}', {thrift_server.port}).cursor()\n"
        "print('connected', flush=True)\n"
        f"cursor.execute('{LONG_QUERY}')\n"
    )
    client = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout.readline().strip() == "connected"
        deadline = time.monotonic() + 30
        while (
            not spark.sparkContext.statusTracker().getActiveJobsIds()
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert spark.sparkContext.statusTracker().getActiveJobsIds()
    finally:
        os.kill(client.pid, signal.SIGKILL)
        client.wait(timeout=30)
    assert no_active_jobs(spark, 5.0), "the statement of a client that went away still runs"


def test_a_query_timeout_cancels_the_statement(thrift_server, spark):
    connection = _connect(thrift_server)
    response = connection.client.ExecuteStatement(
        ttypes.TExecuteStatementReq(
            sessionHandle=connection.sessionHandle,
            statement=LONG_QUERY,
            runAsync=True,
            queryTimeout=2,
        )
    )
    request = ttypes.TGetOperationStatusReq(operationHandle=response.operationHandle)
    deadline = time.monotonic() + 30
    status = connection.client.GetOperationStatus(request)
    while status.operationState != S.TIMEDOUT_STATE and time.monotonic() < deadline:
        time.sleep(0.1)
        status = connection.client.GetOperationStatus(request)
    assert status.operationState == S.TIMEDOUT_STATE
    assert "timeout of 2s" in status.errorMessage and status.sqlState == "HYT00"
    assert no_active_jobs(spark, 2.0)
    connection.close()


def test_statements_beyond_the_pool_wait_as_pending(spark):
    with dicomsql.serve(
        spark, host="127.0.0.1", port=free_port(), max_concurrent_queries=1
    ) as server:
        busy, waiting = _connect(server).cursor(), _connect(server).cursor()
        busy.execute(LONG_QUERY, async_=True)
        _wait_for_state(busy, (S.RUNNING_STATE,))
        waiting.execute("SELECT 42", async_=True)
        time.sleep(0.5)
        assert _state(waiting) == S.PENDING_STATE
        busy.cancel()
        _wait_for_state(waiting, (S.FINISHED_STATE,))
        assert waiting.fetchall() == [(42,)]
    assert no_active_jobs(spark, 5.0)


def test_async_statements_report_errors_through_the_status(thrift_server):
    connection = _connect(thrift_server)
    cursor = connection.cursor()
    cursor.execute("SELECT * FROM no_such_table", async_=True)
    status = cursor.poll()
    while status.operationState in (S.INITIALIZED_STATE, S.PENDING_STATE, S.RUNNING_STATE):
        time.sleep(0.05)
        status = cursor.poll()
    assert status.operationState == S.ERROR_STATE
    assert (
        status.errorMessage.startswith("[TABLE_OR_VIEW_NOT_FOUND]") and status.sqlState == "42P01"
    )
    assert "\n" not in status.errorMessage and "at org.apache" not in status.errorMessage
    connection.close()


def test_nosasl_clients_and_strangers(thrift_server):
    connection = _connect(thrift_server, auth="NOSASL")
    assert _rows(connection, "SELECT 'plain'") == [("plain",)]
    connection.close()
    with socket.create_connection((thrift_server.host, thrift_server.port), timeout=10) as stranger:
        stranger.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert stranger.recv(100) == b""  # closed without an answer
    with socket.create_connection((thrift_server.host, thrift_server.port), timeout=10) as bad_sasl:
        bad_sasl.sendall(b"\x01\x00\x00\x00\x06GSSAPI")
        reply = bad_sasl.recv(200)
        assert reply[0] == 3 and b"unsupported SASL mechanism" in reply  # BAD, with the reason
    connection = _connect(thrift_server)  # the server still serves
    assert _rows(connection, "SELECT 1") == [(1,)]
    connection.close()


def test_fetch_first_and_the_operation_log(thrift_server):
    connection = _connect(thrift_server)
    cursor = connection.cursor()
    cursor.execute("SELECT id FROM range(2500) ORDER BY id")
    assert [r[0] for r in cursor.fetchmany(1500)] == list(range(1500))

    def fetch(orientation, rows, kind=0):
        response = connection.client.FetchResults(
            ttypes.TFetchResultsReq(
                operationHandle=cursor._operationHandle,
                orientation=orientation,
                maxRows=rows,
                fetchType=kind,
            )
        )
        assert response.status.statusCode == ttypes.TStatusCode.SUCCESS_STATUS, (
            response.status.errorMessage
        )
        return response

    first = fetch(ttypes.TFetchOrientation.FETCH_FIRST, 3)
    assert first.results.columns[0].i64Val.values == [0, 1, 2] and first.results.startRowOffset == 0
    after = fetch(ttypes.TFetchOrientation.FETCH_NEXT, 2)
    assert after.results.columns[0].i64Val.values == [3, 4] and after.results.startRowOffset == 3
    log = (
        fetch(ttypes.TFetchOrientation.FETCH_FIRST, 100, kind=1).results.columns[0].stringVal.values
    )
    assert any(line.endswith("running") for line in log) and log[-1].endswith("finished")
    connection.close()


def test_a_streamed_result_that_fails_late_ends_in_error(thrift_server):
    """The first partitions are fine (FINISHED, rows fetched), a later one fails: the fetch
    that reaches it gets the error, and the status says ERROR."""
    connection = _connect(thrift_server)
    cursor = connection.cursor()
    cursor.execute("SELECT id, assert_true(id < 1500000) AS ok FROM range(0, 2000000, 1, 8)")
    assert len(cursor.fetchmany(1000)) == 1000
    with pytest.raises(OperationalError, match="USER_RAISED_EXCEPTION"):
        while cursor.fetchmany(100_000):
            pass
    assert _state(cursor) == S.ERROR_STATE
    connection.close()


def test_open_session_configuration_applies_to_the_session(thrift_server):
    connection = _connect(
        thrift_server,
        configuration={"spark.sql.shuffle.partitions": "7", "set:hiveconf:dicomsql.test": "yes"},
    )
    assert _rows(connection, "SET spark.sql.shuffle.partitions") == [
        ("spark.sql.shuffle.partitions", "7")
    ]
    assert _rows(connection, "SET dicomsql.test") == [("dicomsql.test", "yes")]
    connection.close()


def test_sessions_are_cheap_enough_to_open_one_per_dashboard_tile(thrift_server):
    connections = [_connect(thrift_server) for _ in range(8)]
    assert [_rows(c, "SELECT count(*) FROM demo_patients") for c in connections] == [
        [(DEMO_PATIENTS,)]
    ] * 8
    for connection in connections:
        connection.close()


def test_beeline_lists_tables_and_runs_commands(thrift_server, beeline, tmp_path):
    script = tmp_path / "commands.sql"
    script.write_text("!tables\nSELECT count(*) AS n FROM demo_patients;\n")
    result = subprocess.run(
        [
            beeline,
            "-u",
            thrift_server.jdbc_url,
            "--silent=true",
            "--outputformat=csv2",
            "-f",
            str(script),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        "demo_images" in result.stdout
        and "demo_patients" in result.stdout
        and "VIEW" in result.stdout
    )
    assert f"\n{DEMO_PATIENTS}\n" in result.stdout

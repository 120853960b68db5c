"""Security as an attacker meets it: a real ``dicomsql serve --auth password`` (its own
process, home, accounts and audit log) probed through PyHive as an analyst and as an admin.

Every probe of the security issue is refused for an analyst with the rule it broke, leaves
the file system as it was and is in the audit log; the server keeps serving; an admin may do
what Spark allows.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
from pyhive.exc import OperationalError

from dicomsql.client import hive_connection

from .conftest import Server, dicomsql_command, refused_by_policy, rows_of, run_dicomsql

pytestmark = [pytest.mark.server, pytest.mark.jvm]

PASSWORDS = {"alice": "alice-secret-1", "carol": "carol-secret-3", "root_admin": "admin-secret-2"}
PHI_MARKER = "PHI-MARKER-7731"


@pytest.fixture(scope="module")
def secured(tmp_path_factory, demo):
    """``dicomsql serve --auth password`` over the demo cohort, with analysts alice and carol
    and an admin, short analyst limits, and a folder outside the data roots to attack."""
    base = tmp_path_factory.mktemp("secured")
    env = dict(os.environ, DICOMSQL_HOME=str(base / "home"))
    for name, password in PASSWORDS.items():
        role = "admin" if name == "root_admin" else "analyst"
        added = subprocess.run(
            [dicomsql_command(), "user", "add", name, "--role", role, "--password-stdin"],
            input=password + "\n",
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert added.returncode == 0, added.stderr
    outside = base / "outside"
    outside.mkdir()
    (outside / "kept.txt").write_text("this must survive\n")
    server = Server(
        "--auth",
        "password",
        "--table",
        f"images={demo / 'images'}",
        "--max-result-rows",
        "500",
        env=env,
    )
    server.home = base / "home"
    server.outside = outside
    yield server
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()


def _cursor(server, user: str, password: str | None = None):
    return hive_connection(
        "127.0.0.1", server.port, user=user, password=password or PASSWORDS[user]
    ).cursor()


def _audit(server) -> list[dict]:
    return [json.loads(line) for line in (server.home / "audit.log").read_text().splitlines()]


def _probes(outside: Path, home: Path) -> dict[str, tuple[str, str]]:
    """The statements of the security issue, each with the rule that refuses it."""
    return {
        "set runSQLOnFiles": ("SET spark.sql.runSQLOnFiles=true", "setting_not_allowed"),
        "query a file": ("SELECT * FROM text.`/etc/hostname`", "read_allowed_databases"),
        "text view": (
            "CREATE TEMPORARY VIEW pw USING text OPTIONS (path '/etc/passwd')",
            "no_file_access",
        ),
        "insert overwrite directory": (
            f"INSERT OVERWRITE DIRECTORY '{outside}' USING text SELECT 'hello'",
            "no_file_access",
        ),
        "reflect": ("SELECT reflect('java.lang.System', 'getProperty', 'user.name')", "no_code"),
        "java_method": ("SELECT java_method('java.lang.System', 'getenv', 'HOME')", "no_code"),
        "reflect in a subquery": (
            "SELECT * FROM images WHERE path IN (SELECT reflect('java.lang.System', 'exit', '1'))",
            "no_code",
        ),
        "add jar": (f"ADD JAR {outside}/nothing.jar", "no_code"),
        "add file": (f"ADD FILE {outside}/kept.txt", "no_code"),
        "transform": (
            f"SELECT TRANSFORM(a) USING 'touch {outside}/transformed' FROM VALUES (1) t(a)",
            "no_code",
        ),
        "create function": (
            f"CREATE FUNCTION evil AS 'x.Evil' USING JAR '{outside}/evil.jar'",
            "no_code",
        ),
        "sql function": (
            "CREATE TEMPORARY FUNCTION twice(x INT) RETURNS INT RETURN 2 * x",
            "no_code",
        ),
        "python of workers": (
            "SET spark.sql.execution.pyspark.python=/bin/sh",
            "setting_not_allowed",
        ),
        "substitution back on": ("SET spark.sql.variable.substitute=true", "setting_not_allowed"),
        "jdbc to the metastore": (
            f"CREATE TEMPORARY VIEW meta USING jdbc OPTIONS (url 'jdbc:derby:{home}/metastore_db', dbtable 'SYS.SYSTABLES')",
            "no_file_access",
        ),
        "load data": ("LOAD DATA LOCAL INPATH '/etc/passwd' INTO TABLE loaded", "no_file_access"),
        "table location": (
            f"CREATE TABLE located (a INT) LOCATION '{outside}/located'",
            "no_file_access",
        ),
        "ctas path option": (
            f"CREATE TABLE pathed USING parquet OPTIONS (path '{outside}/pathed') AS SELECT 1 AS a",
            "no_file_access",
        ),
        "binary files": (
            "CREATE TEMPORARY VIEW raw USING binaryFile OPTIONS (path '/etc')",
            "no_file_access",
        ),
        "dicom outside the roots": (
            f"CREATE TEMPORARY VIEW elsewhere USING dicom OPTIONS (path '{outside}')",
            "no_file_access",
        ),
        "execute immediate": (
            "EXECUTE IMMEDIATE 'SELECT reflect(\\'java.lang.System\\', \\'exit\\', \\'1\\')'",
            "no_dynamic_sql",
        ),
        "script with reflect": (
            "BEGIN SELECT 1; IF 1 = 1 THEN SELECT java_method('java.lang.System', 'exit', '1'); END IF; END",
            "no_code",
        ),
        "use in a script": (
            "BEGIN USE default; CREATE TABLE planted AS SELECT 1 AS a; END",
            "no_use_in_scripts",
        ),
        "write a shared database": (
            "CREATE TABLE default.planted AS SELECT 1 AS a",
            "write_own_database",
        ),
        "another analyst's database": (
            "SELECT * FROM user_carol.private",
            "read_allowed_databases",
        ),
        "persistent view over a shared table": (
            "CREATE VIEW kept_view AS SELECT * FROM default.shared_facts",
            "temporary_views_only",
        ),
        "persistent view in a shared database": (
            "CREATE VIEW default.kept_view AS SELECT 1 AS a",
            "write_own_database",
        ),
        "global view": (
            "CREATE GLOBAL TEMPORARY VIEW everyone AS SELECT 1 AS a",
            "temporary_views_only",
        ),
        "create database": ("CREATE DATABASE mine", "default_deny"),
        "alter location": ("ALTER TABLE default.shared_facts SET LOCATION '/tmp'", "default_deny"),
        "a function named at run time": (
            "SELECT IDENTIFIER('java_' || 'method')('java.lang.System', 'exit', '0')",
            "function_not_allowed",
        ),
        "an endless script": (
            "BEGIN l: WHILE true DO ITERATE l; END WHILE; END",
            "no_loops_in_scripts",
        ),
        "an XSD read by from_xml": (
            "SELECT from_xml('<a>1</a>', 'a INT', map('rowValidationXSDPath', 'file:///etc/shadow'))",
            "no_file_access",
        ),
        "overwrite the served files": (
            "INSERT OVERWRITE images SELECT * FROM images",
            "write_own_database",
        ),
        "insert with writer options": (
            "INSERT INTO shared_facts WITH ('fs.permissions.umask-mode' = '000') SELECT 2",
            "no_file_access",
        ),
    }


def test_every_probe_is_refused_for_an_analyst_with_its_rule_and_touches_no_file(secured):
    before = sorted(p.name for p in secured.outside.iterdir())
    admin = _cursor(secured, "root_admin")
    rows_of(admin, "CREATE TABLE IF NOT EXISTS default.shared_facts AS SELECT 1 AS a")
    carol = _cursor(secured, "carol")
    rows_of(carol, "CREATE TABLE IF NOT EXISTS private AS SELECT 'carol only' AS note")
    alice = _cursor(secured, "alice")
    for name, (statement, rule) in _probes(secured.outside, secured.home).items():
        message = refused_by_policy(alice, statement)
        assert f"rule {rule}" in message, (name, message)
        assert "Traceback" not in message and str(secured.home) not in message, name
    assert sorted(p.name for p in secured.outside.iterdir()) == before  # nothing written or deleted
    assert (secured.outside / "kept.txt").read_text() == "this must survive\n"
    assert rows_of(alice, "SELECT 1") == [(1,)]  # still serving
    assert rows_of(_cursor(secured, "carol"), "SELECT note FROM private") == [("carol only",)]
    denied = {
        entry["statement"]: entry for entry in _audit(secured) if entry.get("outcome") == "denied"
    }
    for name, (statement, rule) in _probes(secured.outside, secured.home).items():
        assert denied[statement]["detail"] == rule and denied[statement]["user"] == "alice", name


def test_what_an_analyst_may_do(secured, demo):
    alice = _cursor(secured, "alice")
    assert rows_of(alice, "SELECT current_database()") == [("user_alice",)]
    rows_of(
        alice, "CREATE TABLE counts AS SELECT Modality, count(*) AS n FROM images GROUP BY Modality"
    )
    rows_of(alice, "INSERT INTO counts SELECT 'XX', 0")
    assert ("XX", 0) in rows_of(alice, "SELECT * FROM user_alice.counts")
    assert (secured.home / "warehouse" / "user_alice.db" / "counts").is_dir()
    rows_of(
        alice,
        f"CREATE OR REPLACE TEMPORARY VIEW mine USING dicom OPTIONS (path '{demo / 'images'}')",
    )
    rows_of(alice, "CACHE TABLE mine")
    assert rows_of(alice, "SELECT count(*) > 0 FROM mine") == [(True,)]
    rows_of(alice, "UNCACHE TABLE mine")
    assert rows_of(alice, "SELECT a FROM default.shared_facts") == [(1,)]
    rows_of(alice, "SET spark.sql.shuffle.partitions=3")
    assert rows_of(alice, "SET spark.sql.shuffle.partitions") == [
        ("spark.sql.shuffle.partitions", "3")
    ]
    assert rows_of(alice, "SELECT '${env:HOME}'") == [("${env:HOME}",)]  # no substitution
    assert rows_of(alice, "BEGIN DECLARE n INT = 2; SET n = n + 1; SELECT n; END") == [(3,)]
    assert len(rows_of(alice, "SELECT id FROM range(100000)")) == 500  # --max-result-rows
    tables = {row[1] for row in rows_of(alice, "SHOW TABLES")}
    assert "counts" in tables and "private" not in tables
    rows_of(alice, "DROP TABLE counts")
    assert not (secured.home / "warehouse" / "user_alice.db" / "counts").exists()


def test_an_admin_may_do_what_spark_allows(secured):
    admin = _cursor(secured, "root_admin")
    assert rows_of(admin, "SELECT reflect('java.lang.String', 'valueOf', 'ok')") == [("ok",)]
    rows_of(
        admin, f"INSERT OVERWRITE DIRECTORY '{secured.outside}/written' USING text SELECT 'hello'"
    )
    assert any(p.read_text() == "hello\n" for p in (secured.outside / "written").glob("part-*"))
    rows_of(admin, "CREATE TABLE IF NOT EXISTS default.for_everyone AS SELECT 2 AS b")
    assert rows_of(_cursor(secured, "alice"), "SELECT b FROM default.for_everyone") == [(2,)]
    # ${...} substitution stays off for everyone
    assert "rule setting_not_allowed" in refused_by_policy(
        admin, "SET spark.sql.variable.substitute=true"
    )


def test_logins_accounts_changed_while_serving_and_files_private(secured):
    for user, password in (("alice", "wrong"), ("nobody", "whatever"), ("alice", "")):
        with pytest.raises(Exception) as failed:
            _cursor(secured, user, password or " ")
        assert "authentication failed" in str(failed.value), str(failed.value)
    env = dict(os.environ, DICOMSQL_HOME=str(secured.home))
    added = subprocess.run(
        [dicomsql_command(), "user", "add", "dave", "--password-stdin"],
        input="dave-pw-4\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    dave = _cursor(secured, "dave", "dave-pw-4")
    assert rows_of(dave, "SELECT current_database()") == [("user_dave",)]
    listed = run_dicomsql("user", "list", env=env)
    assert "dave\tanalyst" in listed.stdout and "root_admin\tadmin" in listed.stdout
    assert run_dicomsql("user", "remove", "dave", env=env).returncode == 0
    with pytest.raises(Exception, match="authentication failed"):
        _cursor(secured, "dave", "dave-pw-4")
    with pytest.raises(
        OperationalError, match="account was removed"
    ):  # and the open session is gone
        dave.execute("SELECT 1")
    stored = (secured.home / "users").read_text()
    assert all(password not in stored for password in PASSWORDS.values())
    for path in (
        secured.home,
        secured.home / "users",
        secured.home / "audit.log",
        secured.home / "warehouse",
    ):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    logins = [entry for entry in _audit(secured) if entry["event"] == "login"]
    assert {"user": "nobody", "outcome": "failed"}.items() <= next(
        e for e in logins if e["user"] == "nobody"
    ).items()
    assert all(
        "password" not in entry.get("reason", "").lower() or "wrong" in entry["reason"]
        for entry in logins
    )


def test_a_login_storm_is_slowed_and_leaves_the_server_answering(secured):
    # 40 attackers at once, twice each: the second round already waits the longest delay (5 s)
    attackers, attempts = 40, 2
    failures: list[float] = []

    def attack() -> None:
        for _ in range(attempts):
            started = time.monotonic()
            try:
                _cursor(secured, "alice", "guess")
            except Exception:  # noqa: BLE001 - every attempt fails
                failures.append(time.monotonic() - started)

    threads = [threading.Thread(target=attack) for _ in range(attackers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(2)
    during = time.monotonic()
    assert rows_of(_cursor(secured, "carol"), "SELECT 1") == [
        (1,)
    ]  # a login from the same host still gets in
    assert time.monotonic() - during < 15
    for thread in threads:
        thread.join(timeout=180)
    assert len(failures) == attackers * attempts and time.monotonic() - started < 120
    assert max(failures) >= 1.0  # repeated failures were slowed
    assert rows_of(_cursor(secured, "alice"), "SELECT 2") == [(2,)]


def test_no_statement_or_value_in_the_server_output(secured):
    alice = _cursor(secured, "alice")
    rows_of(alice, f"SELECT '{PHI_MARKER}' AS name")
    with pytest.raises(OperationalError):
        alice.execute(f"SELECT assert_true(false, '{PHI_MARKER} in an error')")
    with pytest.raises(OperationalError):
        alice.execute(f"SELECT * FROM no_such_table_{PHI_MARKER.replace('-', '_')}")
    time.sleep(0.5)
    assert PHI_MARKER not in secured.output and PHI_MARKER.replace("-", "_") not in secured.output
    assert any(PHI_MARKER in entry.get("statement", "") for entry in _audit(secured))


# --- the analysts' limits, on an in-process server over the suite's session ------------------


@pytest.fixture(scope="module")
def limited(spark, tmp_path_factory):
    """An in-process server with tight analyst limits, and its account file and audit log."""
    import dicomsql
    from dicomsql.server import Access, free_port
    from dicomsql.server.audit import AuditLog
    from dicomsql.server.auth import PasswordFile

    folder = tmp_path_factory.mktemp("limited")
    users = PasswordFile(folder / "users")
    users.add("erin", "erin-pw-5")
    users.add("boss", "boss-pw-6", role="admin")
    access = Access(
        authenticator=users,
        query_timeout=3,
        max_sessions_per_user=2,
        idle_timeout=2.5,
        max_result_rows=10,
        audit=AuditLog(folder / "audit.log", statements="hash"),
    )
    with dicomsql.serve(spark, host="127.0.0.1", port=free_port(), access=access) as server:
        server.audit_path = folder / "audit.log"
        yield server


def _login(server, user: str, password: str):
    return hive_connection("127.0.0.1", server.port, user=user, password=password)


def test_an_analysts_statement_is_cut_at_the_query_timeout_and_its_rows_at_the_limit(
    limited, spark
):
    from .conftest import no_active_jobs

    connection = _login(limited, "erin", "erin-pw-5")
    cursor = connection.cursor()
    assert len(rows_of(cursor, "SELECT id FROM range(1000)")) == 10
    started = time.monotonic()
    with pytest.raises(OperationalError) as timed_out:
        cursor.execute("SELECT sum(id % 7) FROM range(0, 100000000000, 1, 2)")
    assert "timeout of 3s" in str(timed_out.value) and time.monotonic() - started < 20
    assert no_active_jobs(spark, 15)
    admin = _login(limited, "boss", "boss-pw-6").cursor()
    assert len(rows_of(admin, "SELECT id FROM range(1000)")) == 1000  # admins have no such limits
    connection.close()
    entries = [json.loads(line) for line in limited.audit_path.read_text().splitlines()]
    statements = [e for e in entries if e["event"] == "statement" and e["user"] == "erin"]
    assert {e["outcome"] for e in statements} >= {"ok", "timed out"}
    assert all(
        "statement" not in e and len(e["statement_sha256"]) == 64 for e in statements
    )  # --audit-statements hash
    assert max(e.get("rows", 0) for e in statements if e["outcome"] == "ok") == 10


def test_sessions_per_user_are_bounded_and_idle_ones_closed(limited):
    first, second = _login(limited, "erin", "erin-pw-5"), _login(limited, "erin", "erin-pw-5")
    with pytest.raises(Exception, match="max-sessions-per-user"):
        _login(limited, "erin", "erin-pw-5")
    cursor = first.cursor()
    assert rows_of(cursor, "SELECT 1") == [(1,)]
    time.sleep(4)  # longer than --idle-timeout
    with pytest.raises(OperationalError, match="idle-timeout"):
        cursor.execute("SELECT 2")
    third = _login(limited, "erin", "erin-pw-5")  # the idle sessions no longer count
    assert rows_of(third.cursor(), "SELECT 3") == [(3,)]
    for connection in (first, second, third):
        connection.close()


def test_a_non_loopback_host_needs_logins_and_tls(spark):
    import dicomsql
    from dicomsql.errors import DicomsqlError
    from dicomsql.server import free_port

    with pytest.raises(
        DicomsqlError, match="needs --auth password \\(or ldap\\) and --tls-cert and --tls-key"
    ):
        dicomsql.serve(spark, host="0.0.0.0", port=free_port())

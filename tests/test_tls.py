"""TLS and logins end to end, through in-process servers over the suite's session: beeline
(the Hive JDBC driver of the pyspark wheel) with a Java truststore, PyHive
(:func:`dicomsql.client.hive_connection`), ``dicomsql sql --jdbc``, clients that do not speak
TLS, ``--auth ldap`` against the suite's slapd, and the audit log of the logins.

The roles are told apart through SQL: an analyst's ``reflect(...)`` is refused (SQLSTATE
42501, rule no_code), an admin's runs.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from dicomsql.client import hive_connection
from dicomsql.server import Access, free_port, serve
from dicomsql.server.access import tls_context
from dicomsql.server.audit import AuditLog
from dicomsql.server.auth import PasswordFile
from dicomsql.server.ldap import LdapDirectory

from .conftest import dicomsql_command, refused_by_policy, rows_of

pytestmark = pytest.mark.server

#: Distinct strings, so that finding one in a file or a log means a password leaked.
PASSWORDS = {"alice": "alice-tls-pw-5831", "root_admin": "admin-tls-pw-2207"}
WRONG_PASSWORD = "wrong-tls-guess-6410"
TRUSTSTORE_PASSWORD = "trust-store-pw"
REFLECT = "SELECT reflect('java.lang.String', 'valueOf', 'ok') AS r"
#: The server gives a client 30 s to finish its handshake; a client that sends bytes at once
#: (every one here) is answered long before that.
FAST_SECONDS = 10.0


@pytest.fixture(scope="module")
def tls_server(spark, certificates, tmp_path_factory):
    """``--auth password`` with TLS and an audit log: analyst alice and admin root_admin."""
    folder = tmp_path_factory.mktemp("tls server")
    accounts = PasswordFile(folder / "users")
    accounts.add("alice", PASSWORDS["alice"], "analyst")
    accounts.add("root_admin", PASSWORDS["root_admin"], "admin")
    audit = AuditLog(folder / "audit.log")
    access = Access(
        authenticator=accounts, tls=tls_context(certificates.cert, certificates.key), audit=audit
    )
    server = serve(spark, "127.0.0.1", free_port(), access=access)
    server.audit_path = audit.path
    yield server
    server.stop()
    audit.close()


@pytest.fixture(scope="module")
def ldap_server(spark, certificates, ldap_directory):
    """``--auth ldap`` (StartTLS to the suite's slapd; bob is in its admin group) with TLS."""
    directory = LdapDirectory(
        ldap_directory.url,
        ldap_directory.user_dn,
        admin_group=ldap_directory.admin_group,
        start_tls=True,
        ca_file=ldap_directory.ca,
    )
    access = Access(authenticator=directory, tls=tls_context(certificates.cert, certificates.key))
    server = serve(spark, "127.0.0.1", free_port(), access=access)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def truststore(certificates, tmp_path_factory) -> Path:
    """A Java truststore holding the test CA, made with the JRE's keytool."""
    path = tmp_path_factory.mktemp("truststore") / "trust.jks"
    made = subprocess.run(
        [
            "keytool",
            "-importcert",
            "-noprompt",
            "-alias",
            "ca",
            "-file",
            str(certificates.ca),
            "-keystore",
            str(path),
            "-storepass",
            TRUSTSTORE_PASSWORD,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    return path


def _connect(server, user: str, password: str, ca: Path):
    return hive_connection(server.host, server.port, user=user, password=password, tls_ca=ca)


def _login_fails(connect) -> tuple[str, float]:
    """The message of a connection attempt that must fail, and how long it took."""
    started = time.monotonic()
    with pytest.raises(Exception) as failed:
        connect().close()
    return str(failed.value), time.monotonic() - started


def _beeline(
    beeline: str, url: str, user: str, password: str, statement: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            beeline,
            "-u",
            url,
            "-n",
            user,
            "-p",
            password,
            "--silent=true",
            "--outputformat=csv2",
            "-e",
            statement,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _dicomsql_sql(
    url: str, password: str, *options: str, home: Path
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            dicomsql_command(),
            "sql",
            "--jdbc",
            url,
            "--user",
            "alice",
            "--password-stdin",
            *options,
            "-e",
            "SELECT 40 + 2 AS answer",
        ],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, DICOMSQL_HOME=str(home)),
    )


# --- beeline -------------------------------------------------------------------------------


def _beeline_url(server, truststore: Path) -> str:
    assert ";ssl=true" in server.jdbc_url
    return f"{server.jdbc_url};sslTrustStore={truststore};trustStorePassword={TRUSTSTORE_PASSWORD}"


@pytest.mark.parametrize("user, database", [("root_admin", "default"), ("alice", "user_alice")])
def test_beeline_over_tls_with_a_truststore(tls_server, beeline, truststore, user, database):
    done = _beeline(
        beeline,
        _beeline_url(tls_server, truststore),
        user,
        PASSWORDS[user],
        "SELECT 1 AS one, current_database() AS db",
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()  # without a terminal beeline echoes its prompt first
    assert lines[-2].endswith("one,db") and lines[-1] == f"1,{database}", done.stdout


def test_beeline_wrong_password(tls_server, beeline, truststore):
    wrong = _beeline(
        beeline, _beeline_url(tls_server, truststore), "alice", WRONG_PASSWORD, "SELECT 1 AS one"
    )
    assert wrong.returncode != 0
    assert "authentication failed" in wrong.stderr, wrong.stderr[-3000:]
    assert WRONG_PASSWORD not in wrong.stdout + wrong.stderr


# --- PyHive ------------------------------------------------------------------------------------


def test_pyhive_over_tls_as_an_analyst(tls_server, certificates):
    with closing(_connect(tls_server, "alice", PASSWORDS["alice"], certificates.ca)) as connection:
        cursor = connection.cursor()
        assert rows_of(cursor, "SELECT 40 + 2, current_database()") == [(42, "user_alice")]
        assert "rule no_code" in refused_by_policy(cursor, REFLECT)
        assert rows_of(cursor, "SELECT 1") == [(1,)]  # the session goes on after a refusal


def test_pyhive_over_tls_as_an_admin(tls_server, certificates):
    with closing(
        _connect(tls_server, "root_admin", PASSWORDS["root_admin"], certificates.ca)
    ) as connection:
        assert rows_of(connection.cursor(), REFLECT) == [("ok",)]


def test_pyhive_wrong_password_over_tls(tls_server, certificates):
    message, seconds = _login_fails(
        lambda: _connect(tls_server, "alice", WRONG_PASSWORD, certificates.ca)
    )
    assert "authentication failed" in message, message
    assert seconds < FAST_SECONDS


def test_a_server_certificate_of_another_ca_is_refused_without_hanging(
    tls_server, stranger_ca, certificates
):
    message, seconds = _login_fails(
        lambda: _connect(tls_server, "alice", PASSWORDS["alice"], stranger_ca)
    )
    assert seconds < FAST_SECONDS, message
    with closing(_connect(tls_server, "alice", PASSWORDS["alice"], certificates.ca)) as connection:
        assert rows_of(connection.cursor(), "SELECT 1") == [(1,)]


# --- dicomsql sql --jdbc ---------------------------------------------------------------------


def test_dicomsql_sql_over_tls(tls_server, certificates, tmp_path):
    done = _dicomsql_sql(
        tls_server.jdbc_url, PASSWORDS["alice"], "--tls-ca", str(certificates.ca), home=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "42" in done.stdout and "answer" in done.stdout


def test_dicomsql_sql_wrong_password(tls_server, certificates, tmp_path):
    done = _dicomsql_sql(
        tls_server.jdbc_url, WRONG_PASSWORD, "--tls-ca", str(certificates.ca), home=tmp_path
    )
    assert done.returncode != 0
    assert "authentication failed" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and WRONG_PASSWORD not in done.stdout + done.stderr


def test_dicomsql_sql_with_another_ca_says_the_certificate_is_not_trusted(
    tls_server, stranger_ca, tmp_path
):
    done = _dicomsql_sql(
        tls_server.jdbc_url, PASSWORDS["alice"], "--tls-ca", str(stranger_ca), home=tmp_path
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "certificate" in done.stderr.lower(), done.stderr


def test_an_ssl_url_never_sends_the_password_in_clear(tmp_path):
    """``--jdbc ...;ssl=true`` without ``--tls-ca``: TLS with the system's CAs, or a refusal,
    but never the SASL PLAIN login (user and password) in plain TCP."""
    received = bytearray()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(30)

        def record() -> None:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(5)
                try:
                    while chunk := connection.recv(65536):
                        received.extend(chunk)
                        if PASSWORDS["alice"].encode() in received:
                            return
                except OSError:
                    pass

        recorder = threading.Thread(target=record, daemon=True)
        recorder.start()
        url = f"jdbc:hive2://127.0.0.1:{listener.getsockname()[1]}/default;ssl=true"
        done = _dicomsql_sql(url, PASSWORDS["alice"], home=tmp_path)
        recorder.join(timeout=10)
    assert done.returncode != 0
    assert PASSWORDS["alice"].encode() not in received, "the password went over plain TCP"


# --- clients that do not speak TLS -----------------------------------------------------------


def test_plain_tcp_clients_are_refused_fast_and_the_server_keeps_serving(tls_server, certificates):
    from pyhive import hive

    message, seconds = _login_fails(
        lambda: hive_connection(
            tls_server.host, tls_server.port, user="alice", password=PASSWORDS["alice"]
        )
    )
    assert seconds < FAST_SECONDS, message
    _, seconds = _login_fails(
        lambda: hive.connect(host=tls_server.host, port=tls_server.port, auth="NOSASL")
    )
    assert seconds < FAST_SECONDS
    with socket.create_connection(
        (tls_server.host, tls_server.port)
    ):  # a client that says nothing (for 30 s)
        for garbage in (
            b"GET / HTTP/1.0\r\n\r\n",
            b"\x16\x03\x01\x00\x05hello",
            b"\x00" * 100_000,
            b"",
        ):
            with socket.create_connection((tls_server.host, tls_server.port)) as raw:
                try:
                    raw.sendall(garbage)
                except OSError:
                    pass  # the server may close first
        # garbage after a good TLS handshake: neither SASL nor the binary protocol
        context = ssl.create_default_context(cafile=str(certificates.ca))
        with context.wrap_socket(
            socket.create_connection((tls_server.host, tls_server.port)),
            server_hostname=tls_server.host,
        ) as tls:
            tls.sendall(b"\x7fnot thrift at all")
            tls.settimeout(FAST_SECONDS)
            try:
                assert tls.recv(1) == b""  # closed by the server
            except (ssl.SSLError, OSError):
                pass
        started = time.monotonic()
        with closing(
            _connect(tls_server, "alice", PASSWORDS["alice"], certificates.ca)
        ) as connection:
            assert rows_of(connection.cursor(), "SELECT 2") == [(2,)]
        assert time.monotonic() - started < FAST_SECONDS


# --- --auth ldap -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "user, database", [("alice", "user_alice"), ("smith, j", "user_smith__j_18848ac3")]
)
def test_ldap_analyst(ldap_server, ldap_directory, certificates, user, database):
    with closing(
        _connect(ldap_server, user, ldap_directory.passwords[user], certificates.ca)
    ) as connection:
        cursor = connection.cursor()
        assert rows_of(cursor, "SELECT current_database()") == [(database,)]
        assert "rule no_code" in refused_by_policy(cursor, REFLECT)


def test_ldap_admin(ldap_server, ldap_directory, certificates):
    with closing(
        _connect(ldap_server, "bob", ldap_directory.passwords["bob"], certificates.ca)
    ) as connection:
        assert rows_of(connection.cursor(), REFLECT) == [("ok",)]


@pytest.mark.parametrize(
    "user, password",
    [("alice", WRONG_PASSWORD), ("nobody", WRONG_PASSWORD), ("bob", "alice's password")],
)
def test_ldap_wrong_logins(ldap_server, certificates, user, password):
    message, seconds = _login_fails(lambda: _connect(ldap_server, user, password, certificates.ca))
    assert "authentication failed" in message, message
    assert seconds < FAST_SECONDS


# --- the audit log -----------------------------------------------------------------------------


def test_the_audit_log_records_logins_without_passwords(tls_server, certificates, caplog):
    caplog.set_level("DEBUG")
    with closing(_connect(tls_server, "alice", PASSWORDS["alice"], certificates.ca)) as connection:
        rows_of(connection.cursor(), "SELECT 'audited' AS marker")
    _login_fails(lambda: _connect(tls_server, "alice", WRONG_PASSWORD, certificates.ca))
    _login_fails(lambda: _connect(tls_server, "mallory", WRONG_PASSWORD, certificates.ca))
    text = tls_server.audit_path.read_text(encoding="utf-8")
    entries = [json.loads(line) for line in text.splitlines()]  # one JSON object per line
    logins = [entry for entry in entries if entry["event"] == "login"]
    assert {"user": "alice", "outcome": "ok", "role": "analyst"}.items() <= logins[-3].items()
    assert {"user": "alice", "outcome": "failed"}.items() <= logins[-2].items() and logins[-2][
        "reason"
    ]
    assert {"user": "mallory", "outcome": "failed"}.items() <= logins[-1].items()
    assert all(entry["address"].startswith("127.0.0.1:") for entry in logins)
    assert any(
        entry.get("statement") == "SELECT 'audited' AS marker" and entry["user"] == "alice"
        for entry in entries
    )
    for password in (*PASSWORDS.values(), WRONG_PASSWORD):
        assert password not in text
        assert password not in caplog.text
    assert os.stat(tls_server.audit_path).st_mode & 0o077 == 0

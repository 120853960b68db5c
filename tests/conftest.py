"""Shared fixtures: one real local SparkSession (with a real Thrift server on a free loopback
port) for the whole run, the DICOM files the pydicom wheel ships, a small demo cohort, test
TLS certificates and one real OpenLDAP slapd (``ldap_directory``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dicomsql import App
from dicomsql.demo import write_demo
from dicomsql.home import Home
from dicomsql.server import free_port
from dicomsql.session import in_process

from .reference import (
    PYDICOM_TEST_FILES,
)  # pydicom's own test files: tests/reference.py catalogues them

DEMO_PATIENTS = 6


#: The Spark master of the cluster tier (``make test`` runs ``-m cluster`` on it): two
#: executor JVMs, so functions, data sources and partitions are pickled and sent to them.
CLUSTER_MASTER = "local-cluster[2,1,1024]"
#: The cluster tier's Python workers' memory limit (``spark.executor.pyspark.memory``).
CLUSTER_PYSPARK_MEMORY = "1g"


def pytest_addoption(parser):
    parser.addoption(
        "--spark-master",
        default="local[2]",
        help=f"Spark master of the suite's session; the cluster tier: -m cluster --spark-master '{CLUSTER_MASTER}'",
    )


#: Fixtures that start a JVM: Spark in this process, or a dicomsql command in another.
JVM_FIXTURES = {"spark", "cli_env"}


def pytest_collection_modifyitems(items):
    """Mark the tests that need a JVM, so that ``make unit`` (``-m "not jvm"``) leaves them out."""
    for item in items:
        if JVM_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.jvm)


@pytest.fixture(scope="session")
def pydicom_files() -> Path:
    return PYDICOM_TEST_FILES


@pytest.fixture(scope="session")
def demo(spark_home) -> Path:
    """A small demo cohort in the suite's home (where the App serves it from), plus a non-DICOM
    file and a truncated DICOM file among its images."""
    out = write_demo(Home(spark_home).demo, patients=DEMO_PATIENTS, seed=7, size=64)
    (out / "images" / "notes.txt").write_text("not a DICOM file\n")
    first_ct = sorted((out / "images").glob("DEMO-0001/CT/*.dcm"))[0]
    (out / "images" / "truncated.dcm").write_bytes(first_ct.read_bytes()[:-500])
    return out


@pytest.fixture(scope="session")
def spark_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home with spaces")  # paths with spaces must work


@pytest.fixture(scope="session")
def spark_master(request) -> str:
    """The master of the suite's session (``--spark-master``, default local[2])."""
    return request.config.getoption("--spark-master")


@pytest.fixture
def cluster_tier(spark_master) -> str:
    """The cluster tier's master; skips a test of that tier alone (one that needs its memory
    limit, or starts its own cluster) when the suite runs on local[N]."""
    if in_process(spark_master):
        pytest.skip(f"of the cluster tier alone (-m cluster --spark-master '{CLUSTER_MASTER}')")
    return spark_master


@pytest.fixture(scope="session")
def app(spark_home, demo, spark_master) -> App:
    """The suite's dicomsql App: ``spark_master`` on ``spark_home``, serving the demo there;
    its server on a free loopback port with no login, every client an admin (the protocol's
    tests; tests/test_security.py tests the roles). On a cluster master each Python worker is
    held to ``CLUSTER_PYSPARK_MEMORY``."""
    settings = {
        "master": spark_master,
        "home": spark_home,
        "port": free_port(),
        "anonymous_role": "admin",
    }
    conf = {}
    if not in_process(spark_master):
        conf["spark.executor.pyspark.memory"] = CLUSTER_PYSPARK_MEMORY
    return App(settings, demo="existing", conf=conf)


@pytest.fixture(scope="session")
def spark(app):
    """The suite's SparkSession, with the demo's views."""
    session = app.session()
    yield session
    app.stop(session)


@pytest.fixture(scope="session")
def shipped(spark, pydicom_files) -> str:
    """Temporary view ``shipped`` over every file of pydicom's test folder."""
    from dicomsql.views import dicom_view_sql

    for statement in dicom_view_sql("shipped", pydicom_files):
        spark.sql(statement)
    return "shipped"


@pytest.fixture(scope="session")
def thrift_server(app, spark):
    """A real Thrift server over the suite's session, as the App serves it."""
    server = app.start_server(spark)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def beeline() -> str:
    import pyspark

    path = Path(pyspark.__file__).parent / "bin" / "beeline"
    assert path.exists(), "the pyspark wheel ships bin/beeline"
    return str(path)


@pytest.fixture
def folder(tmp_path, demo):
    """Two patients' files (24), copied so the test can add, change and delete some."""
    target = tmp_path / "incoming"
    for patient in ("DEMO-0001", "DEMO-0002"):
        shutil.copytree(demo / "images" / patient, target / patient)
    return target


@pytest.fixture
def cli_env(tmp_path) -> dict[str, str]:
    """Environment for running the dicomsql command in a subprocess with its own home."""
    env = dict(os.environ)
    env["DICOMSQL_HOME"] = str(tmp_path / "home")
    return env


def no_active_jobs(spark, seconds: float) -> bool:
    """Whether Spark has no active job within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not spark.sparkContext.statusTracker().getActiveJobsIds():
            return True
        time.sleep(0.1)
    return False


def dicomsql_command() -> str:
    command = shutil.which("dicomsql", path=str(Path(os.sys.executable).parent))
    assert command, "the dicomsql console script is installed next to the test interpreter"
    return command


@dataclass(frozen=True)
class Certificates:
    """A test certificate authority and a server certificate it signed for 127.0.0.1 and
    localhost (PEM files), made with the openssl command."""

    ca: Path
    cert: Path
    key: Path


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def self_signed_ca(cert: Path, key: Path, name: str) -> None:
    """A CA certificate ``cert`` (PEM, valid 2 days) and its key, named ``name``."""
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        "-keyout",
        str(key),
        "-out",
        str(cert),
    )


@pytest.fixture(scope="session")
def certificates(tmp_path_factory) -> Certificates:
    folder = tmp_path_factory.mktemp("tls")
    ca, ca_key, cert, key = (
        folder / name for name in ("ca.pem", "ca.key", "server.pem", "server.key")
    )
    request, extensions = folder / "server.csr", folder / "server.ext"

    self_signed_ca(ca, ca_key, "dicomsql test CA")
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        str(key),
        "-out",
        str(request),
    )
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "x509",
        "-req",
        "-in",
        str(request),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        str(extensions),
        "-out",
        str(cert),
    )
    return Certificates(ca, cert, key)


def require_command(command: str, package: str) -> str:
    """The path of ``command``; a test that needs it is skipped when it is missing, unless
    ``DICOMSQL_REQUIRE_SERVICES`` is set (``make test`` installs the Debian packages and sets
    it, so a missing service fails there instead of passing unseen)."""
    path = shutil.which(command) or next(
        (p for p in (f"/usr/sbin/{command}", f"/usr/bin/{command}") if os.path.exists(p)), None
    )
    if path is None:
        if os.environ.get("DICOMSQL_REQUIRE_SERVICES"):
            pytest.fail(
                f"{command} is not installed (Debian package {package}); make test installs it"
            )
        pytest.skip(f"{command} is not installed (Debian package {package})")
    return path


# --- a real OpenLDAP slapd for --auth ldap (tests/test_ldap.py, tests/test_tls.py share one per session) ---

SUFFIX = "dc=example,dc=org"
ROOT_DN, ROOT_PASSWORD = f"cn=admin,{SUFFIX}", "root secret"
USER_DN = f"uid={{user}},ou=people,{SUFFIX}"
ADMIN_GROUP = f"cn=dicomsql-admins,ou=groups,{SUFFIX}"
#: A groupOfUniqueNames listing bob, and a group of names bob may not read.
UNIQUE_ADMIN_GROUP = f"cn=unique-admins,ou=groups,{SUFFIX}"
HIDDEN_ADMIN_GROUP = f"cn=hidden-admins,ou=groups,{SUFFIX}"
#: user -> (password, role with ADMIN_GROUP); "smith, j" needs its comma escaped in the DN.
USERS = {
    "alice": ("alice's password", "analyst"),
    "bob": ("B0b-p4ss", "admin"),
    "smith, j": ("smith pw", "analyst"),
}
#: How long slapd may take to start listening.
START_SECONDS = 15.0


@dataclass(frozen=True)
class Directory:
    """A running slapd: ``url`` (ldap://, StartTLS offered) and ``ldaps_url`` on 127.0.0.1,
    ``ldaps_other_url`` on 127.0.0.2 (an address its certificate does not name), the
    ``user_dn`` template, the ``admin_group`` DN (bob is its member), ``passwords`` and
    ``roles`` by user name, and ``ca``, the PEM file of the CA that signed its certificate."""

    url: str
    ldaps_url: str
    ldaps_other_url: str
    user_dn: str
    admin_group: str
    passwords: dict[str, str]
    roles: dict[str, str]
    ca: Path


def slapd_config(folder: Path, certificates) -> str:
    """slapd.conf for an mdb database of SUFFIX in ``folder``, with TLS and test ACLs.
    ``allow bind_anon_dn`` makes the directory accept a DN with an empty password as an
    unauthenticated bind, as many do: the client must refuse empty passwords itself."""
    schema = Path("/etc/ldap/schema")
    return "\n".join(
        [
            *(f"include {schema / name}.schema" for name in ("core", "cosine", "inetorgperson")),
            f"pidfile {folder / 'slapd.pid'}",
            f"argsfile {folder / 'slapd.args'}",
            "modulepath /usr/lib/ldap",
            "moduleload back_mdb",
            "allow bind_anon_dn",
            f"TLSCACertificateFile {certificates.ca}",
            f"TLSCertificateFile {certificates.cert}",
            f"TLSCertificateKeyFile {certificates.key}",
            "database mdb",
            "maxsize 16777216",
            f'suffix "{SUFFIX}"',
            f'rootdn "{ROOT_DN}"',
            f'rootpw "{ROOT_PASSWORD}"',
            f"directory {folder / 'db'}",
            f'access to dn.base="{HIDDEN_ADMIN_GROUP}" by * none',
            "access to attrs=userPassword by anonymous auth by * none",
            "access to * by * read",
            "",
        ]
    )


def directory_ldif(hashes: dict[str, str]) -> str:
    """The entries: ou=people with USERS (``hashes``: userPassword values), ou=groups with
    the three admin groups, each listing bob."""
    bob = f"uid=bob,ou=people,{SUFFIX}"
    entries = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example",
        f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people",
        f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups",
        *(
            f"dn: uid={user.replace(',', chr(92) + ',')},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\n"
            f"uid: {user}\ncn: {user}\nsn: {user}\nuserPassword: {hashes[user]}"
            for user in USERS
        ),
        f"dn: {ADMIN_GROUP}\nobjectClass: groupOfNames\ncn: dicomsql-admins\nmember: {bob}",
        f"dn: {UNIQUE_ADMIN_GROUP}\nobjectClass: groupOfUniqueNames\ncn: unique-admins\nuniqueMember: {bob}",
        f"dn: {HIDDEN_ADMIN_GROUP}\nobjectClass: groupOfNames\ncn: hidden-admins\nmember: {bob}",
    ]
    return "\n\n".join(entries) + "\n"


def wait_listening(process: subprocess.Popen, ports: list[tuple[str, int]], log: Path) -> None:
    """Return once slapd accepts connections on every ``(host, port)``; fail if it exits or
    takes longer than START_SECONDS."""
    deadline = time.monotonic() + START_SECONDS
    for address in ports:
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"slapd exited with {process.returncode}:\n{log.read_text(errors='replace')}"
                )
            try:
                socket.create_connection(address, timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"slapd is not listening on {address} after {START_SECONDS} s:\n{log.read_text(errors='replace')}"
                    )
                time.sleep(0.05)


def run(*command: str) -> str:
    """The output of ``command`` (an OpenLDAP tool, never reading ldap.conf); the test fails
    with its messages if it fails."""
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=30, env={**os.environ, "LDAPNOINIT": "1"}
    )
    if done.returncode:
        pytest.fail(
            f"{' '.join(command)} failed with {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done.stdout


def stop(process: subprocess.Popen) -> None:
    """Stop slapd (SIGTERM, then SIGKILL) and reap it, so that no slapd outlives the tests."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def ldap_directory(tmp_path_factory, certificates) -> Iterator[Directory]:
    """A real OpenLDAP slapd for the session, in a temporary folder, stopped at the end."""
    slapd = require_command("slapd", "slapd")
    slappasswd = require_command("slappasswd", "slapd")
    ldapadd = require_command("ldapadd", "ldap-utils")
    folder = tmp_path_factory.mktemp("slapd")
    (folder / "db").mkdir()
    (folder / "slapd.conf").write_text(slapd_config(folder, certificates))
    port = free_port()
    tls_port = next(p for p in iter(free_port, None) if p != port)
    other_port = free_port("127.0.0.2")
    url, ldaps_url = f"ldap://127.0.0.1:{port}", f"ldaps://127.0.0.1:{tls_port}"
    ldaps_other_url = f"ldaps://127.0.0.2:{other_port}"
    log = folder / "slapd.log"
    with open(log, "wb") as out:
        # -d keeps slapd in the foreground: this process owns it and reaps it.
        process = subprocess.Popen(
            [
                slapd,
                "-d",
                "0",
                "-f",
                str(folder / "slapd.conf"),
                "-h",
                f"{url}/ {ldaps_url}/ {ldaps_other_url}/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_listening(
            process, [("127.0.0.1", port), ("127.0.0.1", tls_port), ("127.0.0.2", other_port)], log
        )
        hashes = {
            user: run(slappasswd, "-h", "{SSHA}", "-s", password).strip()
            for user, (password, _) in USERS.items()
        }
        (folder / "entries.ldif").write_text(directory_ldif(hashes))
        run(
            ldapadd,
            "-x",
            "-H",
            url,
            "-D",
            ROOT_DN,
            "-w",
            ROOT_PASSWORD,
            "-f",
            str(folder / "entries.ldif"),
        )
        yield Directory(
            url=url,
            ldaps_url=ldaps_url,
            ldaps_other_url=ldaps_other_url,
            user_dn=USER_DN,
            admin_group=ADMIN_GROUP,
            passwords={user: password for user, (password, _) in USERS.items()},
            roles={user: role for user, (_, role) in USERS.items()},
            ca=certificates.ca,
        )
    finally:
        stop(process)


@pytest.fixture(scope="session")
def stranger_ca(tmp_path_factory) -> Path:
    """A self-signed CA certificate that signed neither the server's nor the directory's."""
    folder = tmp_path_factory.mktemp("stranger ca")
    self_signed_ca(folder / "ca.pem", folder / "ca.key", "stranger CA")
    return folder / "ca.pem"


def rows_of(cursor, statement: str) -> list[tuple]:
    """The rows of ``statement`` run with a PyHive cursor (none for a command)."""
    cursor.execute(statement)
    return cursor.fetchall() if cursor.description else []


def refused_by_policy(cursor, statement: str) -> str:
    """The analyst policy's message for ``statement``, which must be refused with SQLSTATE 42501."""
    from pyhive.exc import OperationalError

    with pytest.raises(OperationalError) as refused:
        cursor.execute(statement)
    status = refused.value.args[0].status
    assert status.sqlState == "42501", status.errorMessage
    return status.errorMessage


# --- the dicomsql command in a subprocess (tests/test_cli.py, tests/test_security.py) ---


def run_dicomsql(*args: str, env=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``dicomsql *args`` run to its end, its output captured, no stdin."""
    return subprocess.run(
        [dicomsql_command(), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


class Server:
    """``dicomsql serve`` in its own process group, its output collected as it comes."""

    READY = "Press Ctrl-C to stop."

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [dicomsql_command(), "serve", "--port", str(self.port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._collect, daemon=True).start()
        self.started = time.monotonic()
        if not self._ready.wait(timeout=240):
            self.process.kill()
            raise AssertionError("dicomsql serve did not become ready:\n" + self.output)
        self.ready_after = time.monotonic() - self.started

    def _collect(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            if line.strip() == self.READY:
                self._ready.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    @property
    def shutdown_output(self) -> str:
        return self.output[self.output.index("Stopping (") :]

    def cursor(self):
        from pyhive import hive

        return hive.connect(host="127.0.0.1", port=self.port).cursor()

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        code = self.process.wait(timeout=120)
        time.sleep(0.2)  # let the collector thread read the last lines
        return code

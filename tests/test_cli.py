"""The dicomsql command as a user runs it: real subprocesses, real servers, real signals."""

from __future__ import annotations

import getpass
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pyhive.exc import OperationalError

from dicomsql.demo import TRUE_COEFFICIENTS
from dicomsql.server import free_port
from dicomsql.udfs import FUNCTIONS

from .conftest import DEMO_PATIENTS, Server, run_dicomsql

pytestmark = pytest.mark.server

ROOT = Path(__file__).parent.parent
BOOTSTRAP = ROOT / "sql" / "bootstrap.sql"


@pytest.fixture
def start_server():
    """Starts ``dicomsql serve`` processes; kills any still running when the test ends."""
    started: list[Server] = []

    def start(*args: str, env: dict[str, str]) -> Server:
        server = Server(*args, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_serve_demo_then_tables_restart_keeps_ctas_tables_and_stops_cleanly(
    cli_env, pydicom_files, start_server
):
    first = start_server(env=cli_env)
    assert "writing the demo cohort" in first.output
    assert f"jdbc:hive2://127.0.0.1:{first.port}/default" in first.output
    assert "demo_images" in first.output and "demo_patients" in first.output
    cursor = first.cursor()
    cursor.execute(
        "CREATE TABLE kept AS SELECT p.site, count(*) AS images, count(DISTINCT i.PatientID) AS patients "
        "FROM demo_images i JOIN demo_patients p ON i.PatientID = p.PatientID GROUP BY p.site"
    )
    cursor.execute("SELECT * FROM kept ORDER BY site")
    before = cursor.fetchall()
    assert sum(row[1] for row in before) == 100 * 12
    cursor.close()

    # a second process on the same home goes through the running server
    through = run_dicomsql("sql", "-e", "SELECT sum(patients) AS patients FROM kept", env=cli_env)
    assert through.returncode == 0, through.stderr
    assert "running through jdbc:hive2://" in through.stderr
    assert "| 100" in through.stdout
    # the demo's outcome follows a known Cox model: a fit through the server recovers it
    cursor = first.cursor()
    cursor.execute(
        "CREATE TABLE demo_cox AS SELECT coxph_fit(months, died, struct(age, smoker, tumor_mm, treated)) AS model "
        "FROM demo_patients"
    )
    cursor.execute(
        "SELECT s.feature, s.ci_lower, s.ci_upper FROM demo_cox m, LATERAL coxph_summary(m.model) s"
    )
    intervals = {name: (low, high) for name, low, high in cursor.fetchall()}
    assert set(intervals) == set(TRUE_COEFFICIENTS)
    for name, beta in TRUE_COEFFICIENTS.items():
        assert intervals[name][0] <= beta <= intervals[name][1], name
    cursor.execute(
        "SELECT logrank_test(months, died, treated).p, km_fit(months, died).median FROM demo_patients"
    )
    p_value, _ = cursor.fetchone()
    assert p_value < 0.01  # treatment separates the populations
    cursor.execute("CREATE TABLE kept_patients AS SELECT * FROM demo_patients")
    risk_query = (
        "SELECT p.PatientID, coxph_predict(m.model, struct(p.age, p.smoker, p.tumor_mm, p.treated), 'survival', 24.0) "
        "FROM kept_patients p CROSS JOIN demo_cox m ORDER BY p.PatientID"
    )
    cursor.execute(risk_query)
    risks_before = cursor.fetchall()
    cursor.close()

    home = Path(cli_env["DICOMSQL_HOME"])
    ingested = run_dicomsql(
        "ingest", "catalog", str(home / "demo" / "images"), "--tags", "all", env=cli_env
    )
    assert ingested.returncode == 0, ingested.stderr
    assert "ingest catalog: 1,200/1,200 files (100%)" in ingested.stderr
    assert "ingested catalog: read 1,200 files (1,200 new, 0 changed)" in ingested.stdout
    cursor = first.cursor()
    cursor.execute("SELECT count(*), count(DISTINCT PatientID), max(KVP) FROM catalog")
    assert cursor.fetchone() == (1200, 100, 140.0)
    cursor.close()
    failing = run_dicomsql(
        "sql", "-e", "SELECT dicom_tag(meta, 'Nope') FROM demo_images", env=cli_env
    )
    assert failing.returncode == 1
    assert "query failed: dicom_tag: argument key must be" in failing.stderr

    assert first.stop(signal.SIGTERM) == 0
    assert "Stopped." in first.output and "Traceback" not in first.shutdown_output
    assert _port_is_free(first.port)

    # restarted on the same home, serving given tables this time (and a bootstrap script)
    exports = home.parent / "exports"
    second = start_server(
        "--table",
        f"shipped={pydicom_files}",
        "--bootstrap",
        str(BOOTSTRAP),
        "--export-root",
        str(exports),
        "--analyst-exports",
        env=cli_env,
    )
    assert "shipped" in second.output and "demo_images" not in second.output
    assert f"reads:     {os.path.realpath(pydicom_files)}" in second.output
    assert f"writes:    {os.path.realpath(exports)}" in second.output
    assert "bootstrap.sql: 6 statements run" in second.output
    cursor = second.cursor()
    cursor.execute("SELECT * FROM kept ORDER BY site")
    assert cursor.fetchall() == before
    cursor.execute("SELECT count(*) FROM catalog")  # the ingested catalog is served too
    assert cursor.fetchone()[0] == 1200
    cursor.execute(risk_query)  # a stored model predicts the same after a restart
    assert cursor.fetchall() == risks_before
    cursor.execute("SELECT count(*) FROM shipped WHERE Modality = 'CT'")
    assert cursor.fetchone()[0] > 0
    cursor.execute("SELECT sum(images), count(*) FROM series")  # the bootstrap's view of shipped
    images, series = cursor.fetchone()
    cursor.execute(
        "SELECT count(*), count(DISTINCT SeriesInstanceUID) FROM shipped "
        "WHERE _corrupt_record IS NULL AND SeriesInstanceUID IS NOT NULL"
    )
    assert (images, series) == cursor.fetchone()
    # a client cannot read DICOM files outside the served folders: the demo's, now
    outside = sorted((home / "demo" / "images").rglob("*.dcm"))[0]
    with pytest.raises(OperationalError, match="is outside the data roots this server reads"):
        cursor.execute(
            f"CREATE TEMPORARY VIEW elsewhere USING dicom OPTIONS (path '{outside.parent}')"
        )
    cursor.execute(f"SELECT dicom_pixels('{outside}'), dicom_image('{outside}').error")
    pixels, error = cursor.fetchone()
    assert pixels is None and "outside the data roots" in error
    with pytest.raises(
        OperationalError, match="dicom_image: cannot decode .* outside the data roots"
    ):
        cursor.execute(f"SELECT dicom_image('{outside}', 0, map('mode', 'FAILFAST')).data")
    # an analyst exports into their own folder of the export roots only, in the workers too
    own = exports / getpass.getuser()
    (own / "viaid").mkdir(parents=True)
    (own / "link").symlink_to(home)
    ct = "SELECT meta, path FROM shipped WHERE path LIKE '%/CT_small.dcm'"
    cursor.execute(f"SELECT written, error FROM dicom_export(TABLE({ct}), '{own}/ct')")
    ((written, error),) = cursor.fetchall()
    assert error is None and pydicom.dcmread(written).Modality == "CT"
    assert Path(written).is_relative_to(own / "ct")
    # a symlink named as the policy sees it is refused before anything runs; one the layout
    # reaches (the PatientID's folder) is refused where the file is written
    (own / "viaid" / pydicom.dcmread(written).PatientID).symlink_to(home)
    by_patient = "map('layout', '{PatientID}/{SOPInstanceUID}.dcm')"
    cursor.execute(f"SELECT error FROM dicom_export(TABLE({ct}), '{own}/viaid', {by_patient})")
    assert "the layout places the file outside" in cursor.fetchone()[0]
    with pytest.raises(OperationalError, match="rule no_file_access"):
        cursor.execute(f"SELECT * FROM dicom_export(TABLE({ct}), '{own}/link')")
    with pytest.raises(OperationalError, match="rule no_file_access"):
        cursor.execute(f"SELECT * FROM dicom_export(TABLE({ct}), '{exports}/someone')")
    cursor.close()
    assert second.stop(signal.SIGINT) == 0
    assert "Stopped." in second.output and "Traceback" not in second.output


def test_serve_refuses_a_busy_port(cli_env, pydicom_files):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        refused = run_dicomsql(
            "serve", "--port", str(port), "--table", f"t={pydicom_files}", env=cli_env
        )
    assert refused.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_home_held_by_another_process_gets_a_clear_message(spark, spark_home):
    result = run_dicomsql("sql", "--home", str(spark_home), "-e", "SELECT 1")
    assert result.returncode == 2
    assert f"is in use by process {os.getpid()}" in result.stderr
    assert "use another --home" in result.stderr
    assert "Traceback" not in result.stderr


def test_sql_embedded_runs_statements_and_reports_the_failing_one(cli_env, pydicom_files, demo):
    # one run (each starts Spark): the statements before the failing one print their rows;
    # --conf reaches the session (SQL on files is off without it: test_server)
    script = (
        "SELECT Modality, count(*) AS files FROM shipped WHERE Modality IN ('CT', 'MR') GROUP BY Modality ORDER BY Modality;\n"
        "SELECT dicom_tag(meta, 'PatientID') AS id FROM shipped WHERE path LIKE '%/CT_small.dcm';\n"
        f"SELECT count(*) AS patients FROM parquet.`{demo / 'patients.parquet'}`;\n"
        "SELECT dicom_tag(meta, 'Nope') FROM shipped"
    )
    result = run_dicomsql(
        "sql",
        "--table",
        f"shipped={pydicom_files}",
        "--conf",
        "spark.sql.runSQLOnFiles=true",
        "-e",
        script,
        env=cli_env,
    )
    assert result.returncode == 1, result.stderr
    assert "| CT       |" in result.stdout and "| MR       |" in result.stdout
    assert "| 1CT1 |" in result.stdout
    assert f"| {DEMO_PATIENTS}" in result.stdout
    assert "statement 4 (line 4) failed: dicom_tag: argument key" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (Path(cli_env["DICOMSQL_HOME"]) / "demo").exists()  # sql never writes the demo


def test_sql_reports_bad_sql_text_without_a_traceback(cli_env):
    result = run_dicomsql("sql", "-e", "SELECT 'unterminated", env=cli_env)
    assert result.returncode == 2
    assert (
        "cannot split the SQL into statements" in result.stderr and "Traceback" not in result.stderr
    )


def test_demo_command(tmp_path):
    out = tmp_path / "cohort"
    result = run_dicomsql("demo", "--out", str(out), "--patients", "2", "--size", "32")
    assert result.returncode == 0, result.stderr
    assert len(list(out.rglob("*.dcm"))) == 2 * 12
    again = run_dicomsql("demo", "--out", str(out), "--patients", "2")
    assert again.returncode == 2 and "exists already" in again.stderr


def test_functions_command():
    result = run_dicomsql("functions")
    assert result.returncode == 0
    for name in FUNCTIONS:
        assert name in result.stdout


def test_sql_script_with_variables_dialects_and_formats_through_a_server(thrift_server, tmp_path):
    jdbc = ("--jdbc", thrift_server.jdbc_url)
    script = tmp_path / "cohort.sql"
    script.write_text(
        "-- a comment; not a statement\n"
        "BEGIN\n"
        "  DECLARE n INT DEFAULT 0;\n"
        "  WHILE n < 2 DO SET n = n + 1; END WHILE;\n"
        "  SELECT n AS loops;\n"
        "END;\n"
        "SELECT PatientID, age FROM ${table} WHERE sex = :sex AND age >= ${min_age} ORDER BY PatientID;\n"
    )
    bound = run_dicomsql(
        "sql",
        *jdbc,
        "-f",
        str(script),
        "--var",
        "table=demo_patients",
        "--var",
        "sex=F",
        "--var",
        "min_age=0",
        "--format",
        "csv",
    )
    assert bound.returncode == 0, bound.stderr
    lines = bound.stdout.splitlines()
    assert lines[:2] == ["loops", "2"]  # the scripting block ran whole
    assert lines[2] == "PatientID,age" and len(lines) > 3

    injected = run_dicomsql(
        "sql",
        *jdbc,
        "-f",
        str(script),
        "--var",
        "table=demo_patients",
        "--var",
        "sex=F' OR '1'='1",
        "--var",
        "min_age=0",
        "--format",
        "json",
    )
    assert injected.returncode == 0, injected.stderr
    assert injected.stdout.splitlines() == [
        '{"loops": 2}'
    ]  # the value stayed one literal: no patient matches
    refused = run_dicomsql(
        "sql",
        *jdbc,
        "-f",
        str(script),
        "--var",
        "table=demo_patients; DROP TABLE x",
        "--var",
        "sex=F",
        "--var",
        "min_age=0",
    )
    assert refused.returncode == 2 and "--var table" in refused.stderr

    postgres = "SELECT sex, COUNT(*)::BIGINT AS n FROM demo_patients WHERE age > :age GROUP BY sex ORDER BY sex LIMIT 5"
    translated = run_dicomsql(
        "sql", "--transpile-only", "--dialect", "postgres", "--var", "age=1", "-e", postgres
    )
    assert translated.returncode == 0, translated.stderr
    assert "CAST(COUNT(*) AS BIGINT)" in translated.stdout and "age > 1" in translated.stdout
    ran = run_dicomsql(
        "sql", *jdbc, "--dialect", "postgres", "--var", "age=1", "--format", "json", "-e", postgres
    )
    assert ran.returncode == 0, ran.stderr
    assert sum(json.loads(line)["n"] for line in ran.stdout.splitlines()) == DEMO_PATIENTS


@pytest.mark.cluster
def test_serve_through_a_standalone_cluster_from_the_wheel(
    cluster_tier, cli_env, start_server, folder, tmp_path
):
    """benchmarks/cluster.sh's Master and Worker on loopback; dicomsql serve --master
    spark://127.0.0.1:PORT builds its catalog and runs pixel functions on that executor."""
    state, port = tmp_path / "cluster", free_port()
    env = {
        **cli_env,
        "DICOMSQL_CLUSTER_DIR": str(state),
        "SPARK_MASTER_PORT": str(port),
        "PYTHON": sys.executable,
    }
    cluster = [str(ROOT / "benchmarks" / "cluster.sh")]
    started = subprocess.run(
        [*cluster, "start", "1", "1", "1g"], env=env, capture_output=True, text=True, timeout=180
    )
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.startswith(f"spark://127.0.0.1:{port}: 1 Workers")
        server = start_server(
            "--master", f"spark://127.0.0.1:{port}", "--table", f"ct={folder}", env=env
        )
        cursor = server.cursor()
        cursor.execute(
            "SELECT count(*), count(DISTINCT PatientID), count(image_stats(path).n) FROM ct"
        )
        assert cursor.fetchall() == [(24, 2, 24)]
        assert server.stop(signal.SIGTERM) == 0
        master_log = (state / "logs" / "master.log").read_text()
        assert "Registering app dicomsql" in master_log
        assert "FAILED" not in master_log
        executors = list((state / "work" / "1").glob("app-*/*/stderr"))
        assert executors and oct((state / "work").stat().st_mode & 0o777) == "0o700"
    finally:
        subprocess.run([*cluster, "stop"], env=env, capture_output=True, timeout=120)

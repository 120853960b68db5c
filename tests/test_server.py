"""The Thrift server with real JDBC-side clients: PyHive, beeline (from the pyspark wheel)
and SQLAlchemy; results checked against pydicom."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut
from pyhive import hive

import dicomsql
from dicomsql.server import free_port

from .conftest import DEMO_PATIENTS

pytestmark = pytest.mark.server

JOIN_QUERY = """
SELECT i.path, i.PatientID, p.age, p.site,
       dicom_tag(i.meta, 'PatientName') AS name,
       dicom_tag(i.meta, 'PatientAge') AS dicom_age,
       dicom_pixels(i.path) AS pixels
FROM demo_images i JOIN demo_patients p ON i.PatientID = p.PatientID
WHERE i.Modality = 'CT' AND i.InstanceNumber = 1
ORDER BY i.PatientID
"""


def _check_join_rows(rows):
    """Rows of JOIN_QUERY as (path, PatientID, age, site, name, dicom_age, pixels-JSON)."""
    assert len(rows) == DEMO_PATIENTS
    for path, patient_id, age, site, name, dicom_age, pixels in rows:
        ds = pydicom.dcmread(path)
        assert patient_id == ds.PatientID
        assert name == str(ds.PatientName)
        assert dicom_age == ds.PatientAge == f"{int(float(age)):03d}Y"
        assert ds.InstitutionName.startswith(site)
        expected = apply_modality_lut(ds.pixel_array, ds).astype(np.float32).ravel()
        np.testing.assert_array_equal(np.array(json.loads(pixels), dtype=np.float32), expected)


@pytest.fixture
def cursor(thrift_server):
    connection = hive.connect(host=thrift_server.host, port=thrift_server.port)
    yield connection.cursor()
    connection.close()


def test_pyhive_join_with_python_functions(cursor):
    cursor.execute(JOIN_QUERY)
    _check_join_rows(cursor.fetchall())


def test_pyhive_sees_error_rows_of_bad_files(cursor):
    cursor.execute(
        "SELECT path, _corrupt_record FROM demo_images WHERE _corrupt_record IS NOT NULL ORDER BY path"
    )
    rows = dict(cursor.fetchall())
    assert {p.rsplit("/", 1)[1] for p in rows} == {"notes.txt", "truncated.dcm"}
    by_name = {p.rsplit("/", 1)[1]: why for p, why in rows.items()}
    assert by_name["notes.txt"].startswith("not a DICOM file")
    assert by_name["truncated.dcm"].startswith("truncated")
    cursor.execute("SELECT count(*) FROM demo_images WHERE _corrupt_record IS NULL")
    assert cursor.fetchone()[0] == DEMO_PATIENTS * 12


def test_pyhive_function_errors_name_the_function(cursor):
    from pyhive.exc import OperationalError

    with pytest.raises(
        OperationalError, match="dicom_tag: argument key must be a DICOM keyword"
    ) as raised:
        cursor.execute("SELECT dicom_tag(meta, 'NoSuchKeyword') FROM demo_images")
    message = raised.value.args[0].status.errorMessage
    assert (
        message.startswith("dicom_tag: argument key")
        and "Traceback" not in message
        and ".py" not in message
    )
    assert raised.value.args[0].status.sqlState == "22023"


def test_pyhive_lists_functions(cursor):
    cursor.execute("SELECT name FROM dicomsql_functions()")
    assert {"dicom_tag", "dicom_pixels", "dicomsql_functions"} <= {r[0] for r in cursor.fetchall()}


def test_beeline_join_with_python_functions(thrift_server, beeline):
    result = subprocess.run(
        [
            beeline,
            "-u",
            thrift_server.jdbc_url,
            "--silent=true",
            "--outputformat=tsv2",
            "--showHeader=true",
            "-e",
            JOIN_QUERY.replace("\n", " "),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # beeline without a terminal echoes its prompt before the output
    prompt = f"{thrift_server.jdbc_url.split('//')[1]}> "
    output = result.stdout.split(prompt, 1)[-1]
    table = [line.split("\t") for line in output.strip().splitlines()]
    assert table[0] == ["path", "PatientID", "age", "site", "name", "dicom_age", "pixels"]
    _check_join_rows(table[1:])


def test_sqlalchemy_url_of_the_server(thrift_server):
    from sqlalchemy import create_engine, text

    engine = create_engine(thrift_server.sqlalchemy_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT Modality, count(*) AS n FROM demo_images WHERE _corrupt_record IS NULL GROUP BY Modality ORDER BY Modality"
            )
        ).fetchall()
    assert [tuple(r) for r in rows] == [("CT", DEMO_PATIENTS * 8), ("MR", DEMO_PATIENTS * 4)]
    engine.dispose()


def test_ctas_through_jdbc_makes_a_parquet_table(cursor, spark):
    cursor.execute("DROP TABLE IF EXISTS series_counts")
    cursor.execute(
        "CREATE TABLE series_counts AS SELECT PatientID, Modality, count(*) AS images "
        "FROM demo_images WHERE _corrupt_record IS NULL GROUP BY PatientID, Modality"
    )
    cursor.execute("SELECT sum(images) FROM series_counts")
    assert cursor.fetchone()[0] == DEMO_PATIENTS * 12
    detail = spark.sql("DESCRIBE TABLE EXTENDED series_counts").collect()
    assert any(r.col_name == "Provider" and r.data_type.lower() == "parquet" for r in detail)
    cursor.execute("DROP TABLE series_counts")


def _non_loopback_address() -> str | None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.123", 9))  # no packet is sent for UDP connect
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_server_listens_on_loopback_only(thrift_server):
    import socket

    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to probe")
    with socket.socket() as probe:
        assert probe.connect_ex((address, thrift_server.port)) != 0


def test_sql_on_files_is_off_by_default(cursor, demo):
    from pyhive.exc import OperationalError

    with pytest.raises(OperationalError, match="TABLE_OR_VIEW_NOT_FOUND"):
        cursor.execute(f"SELECT * FROM parquet.`{demo / 'patients.parquet'}`")


def test_a_second_server_in_the_process_and_stop_releases_the_port(spark):
    port = free_port()
    with dicomsql.serve(spark, host="127.0.0.1", port=port):
        connection = hive.connect(host="127.0.0.1", port=port)
        cursor = connection.cursor()
        cursor.execute("SELECT count(*) FROM demo_patients")
        assert cursor.fetchall() == [(DEMO_PATIENTS,)]
        with pytest.raises(dicomsql.DicomsqlError, match=f"port {port} on 127.0.0.1 is in use"):
            dicomsql.serve(spark, host="127.0.0.1", port=port)
    with pytest.raises(Exception):  # noqa: B017 - any client error: stopped: the connection is closed, and nobody listens
        cursor.execute("SELECT 1")
    dicomsql.server.check_port_free("127.0.0.1", port)


def test_models_reach_jdbc_clients_as_readable_json(cursor):
    cursor.execute("SELECT km_fit(months, died) FROM demo_patients")
    model = json.loads(cursor.fetchone()[0])
    assert model["n"] == DEMO_PATIENTS and len(model["times"]) == len(model["survival"])

"""The deidentified role over a real endpoint: de-identified views of the demo, pseudonyms that
join, pixels through ids, and nothing raw within reach."""

from __future__ import annotations

import datetime
import json

import pydicom
import pytest
from pyhive import hive
from pyhive.exc import OperationalError

from dicomsql.app import App
from dicomsql.deidentified import deidentified_session
from dicomsql.dicom import deid
from dicomsql.errors import DicomsqlError
from dicomsql.keys import deid_key
from dicomsql.options import OptionError
from dicomsql.server import free_port, serve
from dicomsql.server.access import Access
from dicomsql.server.auth import NoLogin
from dicomsql.session import cloned
from dicomsql.views import DEMO_VIEWS, dicom_view_sql

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def served(spark, app, pydicom_files):
    """The demo's views (only those) served to the deidentified role, with one extra
    identifying column."""
    base = cloned(spark)
    kept = {*DEMO_VIEWS, *(f"{name}__files" for name in DEMO_VIEWS)}
    for table in base.catalog.listTables():
        if table.isTemporary and table.name not in kept:
            base.catalog.dropTempView(table.name)
    # a clinical table with dates: shifted as the headers' under date_shift
    base.sql("CREATE TEMPORARY VIEW visits AS SELECT PatientID, StudyDate FROM demo_images")
    # a secondary capture: text may be burned into its pixels
    for statement in dicom_view_sql("captures", pydicom_files / "SC_rgb_small_odd.dcm"):
        base.sql(statement)
    settings = {
        "home": app.home.path,
        "deidentified_views": True,
        "deidentify_option": ["date_shift=true"],
        "identifying_column": ["demo_devices.device_id", "demo_images.Manufacturer"],
    }
    serving = App(settings)
    serving.catalogs = app.catalogs
    session = serving.deidentified_session(base)
    views = {t.name for t in session.catalog.listTables() if t.isTemporary}
    server = serve(
        base,
        port=free_port(),
        access=Access(authenticator=NoLogin("deidentified")),
        deidentified=session,
    )
    yield server, views
    server.stop()


@pytest.fixture
def cursor(served):
    server, _ = served
    # PyHive runs USE <database>: default is not the role's (its own database is)
    connection = hive.connect(
        host="127.0.0.1", port=server.port, username="dana", database="user_dana"
    )
    yield connection.cursor()
    connection.close()


def _rows(cursor, query: str) -> list:
    cursor.execute(query)
    return cursor.fetchall()


def test_the_views_are_the_served_ones_de_identified(served, cursor, spark):
    _, views = served
    assert views == {*DEMO_VIEWS, "visits", "captures"}
    manufacturers = _rows(
        cursor, "SELECT DISTINCT Manufacturer FROM demo_images WHERE Manufacturer IS NOT NULL"
    )
    assert manufacturers and all(m.startswith("ANON") for (m,) in manufacturers)
    assert _rows(cursor, "SELECT count(*), count(id) FROM captures") == [(1, 0)]  # no pixels
    columns = [c[0] for c in _rows(cursor, "DESCRIBE demo_images")]
    assert "id" in columns and "path" not in columns and "modificationTime" not in columns
    raw = spark.sql(
        "SELECT path, PatientID, StudyInstanceUID, Modality, StudyDate FROM demo_images "
        "ORDER BY path LIMIT 24"
    ).collect()
    key = deid_key()
    for row in raw:
        ((patient, study, modality, date, removed),) = _rows(
            cursor,
            "SELECT PatientID, StudyInstanceUID, Modality, StudyDate, "
            "dicom_tag(meta, 'PatientIdentityRemoved') "
            f"FROM demo_images WHERE id = '{deid.file_id(row.path, key)}'",
        )
        assert patient == deid.pseudonym(row.PatientID, key)
        assert study == deid.remap_uid(row.StudyInstanceUID, key)
        assert (modality, removed) == (row.Modality, "YES")
        shift = datetime.timedelta(days=deid.shift_days(row.PatientID, key))  # date_shift=true
        assert datetime.date.fromisoformat(str(date)) == row.StudyDate - shift
    everything = str(_rows(cursor, "SELECT * FROM demo_images LIMIT 24"))
    for row in raw:
        assert row.PatientID not in everything and row.StudyInstanceUID not in everything
        assert row.path not in everything


def test_pseudonyms_join_the_clinical_tables(cursor, spark):
    ((joined, patients),) = _rows(
        cursor,
        "SELECT count(*), count(DISTINCT p.PatientID) FROM demo_images i "
        "JOIN demo_patients p ON i.PatientID = p.PatientID",
    )
    assert (joined, patients) == tuple(
        spark.sql(
            "SELECT count(*), count(DISTINCT p.PatientID) FROM demo_images i "
            "JOIN demo_patients p ON i.PatientID = p.PatientID"
        ).first()
    )
    assert patients > 1
    ((reads,),) = _rows(
        cursor,
        "SELECT count(*) FROM demo_reads r JOIN demo_images i ON r.SeriesInstanceUID = i.SeriesInstanceUID",
    )
    assert (
        reads
        == spark.sql(
            "SELECT count(*) FROM demo_reads r JOIN demo_images i ON r.SeriesInstanceUID = i.SeriesInstanceUID"
        ).first()[0]
    )
    join = "SELECT count(*) FROM visits v JOIN demo_images i USING (PatientID, StudyDate)"
    ((visits,),) = _rows(cursor, join)
    raw = "SELECT count(*) FROM demo_images v JOIN demo_images i USING (PatientID, StudyDate)"
    assert visits == spark.sql(raw).first()[0] > 0  # visits is demo_images' two columns
    devices = _rows(cursor, "SELECT device_id FROM demo_devices LIMIT 3")
    assert all(device.startswith("ANON") for (device,) in devices)


def test_pixels_are_read_through_ids_only(cursor, spark):
    path = spark.sql("SELECT path FROM demo_images ORDER BY path LIMIT 1").first()[0]
    ((rows, error),) = _rows(
        cursor,
        f"SELECT dicom_image(id).rows, dicom_image(id).error FROM demo_images WHERE id = "
        f"'{deid.file_id(path, deid_key())}'",
    )
    assert (rows, error) == (pydicom.dcmread(path).Rows, None)
    ((refused,),) = _rows(cursor, f"SELECT dicom_image('{path}').error")
    assert "names files by their id" in refused  # (the path it gave, nothing more)
    forged = deid.file_id(path, b"another key of sixteen bytes")
    ((refused,),) = _rows(cursor, f"SELECT dicom_image('{forged}').error")
    assert "not a file id of this server's key" in refused


@pytest.mark.parametrize(
    "statement, message",
    [
        ("CREATE TEMPORARY VIEW raw USING dicom OPTIONS (path '/')", "rule deidentified_only"),
        ("SELECT * FROM demo_images__files", "TABLE_OR_VIEW_NOT_FOUND"),
        ("SELECT * FROM dicomsql_catalog.demo_images", "rule read_allowed_databases"),
        ("SELECT * FROM default.anything", "rule read_allowed_databases"),
        ("DROP VIEW demo_images", "rule own_views_only"),
        # keyed functions would make the ids and pseudonyms of guessed values
        ("SELECT dicom_image(dicom_file_id('/etc/x.dcm'))", "rule deidentified_only"),
        (
            "SELECT count(*) FROM demo_images WHERE PatientID = dicom_pseudonym('DEMO-0001')",
            "rule deidentified_only",
        ),
        ("SELECT dicom_deidentify('{}')", "rule deidentified_only"),
        (
            "SELECT * FROM dicom_export(TABLE(SELECT id AS path FROM demo_images), '/tmp/x')",
            "rule deidentified_only",
        ),
    ],
)
def test_nothing_raw_is_within_reach(cursor, statement, message):
    with pytest.raises(OperationalError, match=message):
        cursor.execute(statement)


def test_the_role_needs_a_server_with_de_identified_views(spark):
    server = serve(
        cloned(spark), port=free_port(), access=Access(authenticator=NoLogin("deidentified"))
    )
    try:
        with pytest.raises(OperationalError, match="no de-identified views"):
            hive.connect(host="127.0.0.1", port=server.port, username="dana").cursor().execute(
                "SELECT 1"
            )
    finally:
        server.stop()


def test_the_functions_behind_the_views(spark):
    key = deid_key()
    row = spark.sql(
        "SELECT path, PatientID, StudyInstanceUID, StudyDate, Rows, PatientAge, "
        "dicom_file_id(path) AS id, dicom_image(dicom_file_id(path)).rows AS image_rows, "
        "dicom_pseudonym(PatientID) AS patient, dicom_pseudonym(StudyInstanceUID, 'uid') AS study, "
        "dicom_typed(meta, 'StudyDate, Rows, PatientAge') AS typed FROM demo_images LIMIT 1"
    ).first()
    assert row.id == deid.file_id(row.path, key) and row.image_rows == row.Rows
    assert row.patient == deid.pseudonym(row.PatientID, key)
    assert row.study == deid.remap_uid(row.StudyInstanceUID, key)
    typed = json.loads(row.typed)
    assert typed["StudyDate"] == row.StudyDate.isoformat() and typed["Rows"] == row.Rows
    assert typed["PatientAge"] == row.PatientAge and typed["PatientAgeYears"] > 0
    ((calibrations,),) = spark.sql(
        'SELECT dicom_typed(\'{"00181200": {"vr": "DA", "Value": ["20200101", '
        "\"20210102\"]}}', 'DateOfLastCalibration')"
    ).collect()
    assert json.loads(calibrations) == {"DateOfLastCalibration": ["2020-01-01", "2021-01-02"]}
    with pytest.raises(Exception, match="dicom_pseudonym.*kind"):
        spark.sql("SELECT dicom_pseudonym('x', 'name')").collect()
    with pytest.raises(Exception, match="dicom_typed.*keywords"):
        spark.sql("SELECT dicom_typed(meta, 'NoSuchKeyword') FROM demo_images").collect()


def test_an_id_is_one_token_only():
    key = b"a key of sixteen bytes"
    token = deid.file_id("/data/ct/1.dcm", key)
    assert deid.file_of_id(token, key) == "/data/ct/1.dcm"
    tampered = [
        token[:-1],
        token[:-4],
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        token + "A",
    ]
    for other in tampered:  # shortened, changed, lengthened: none opens a file
        with pytest.raises(ValueError):
            deid.file_of_id(other, key)
    with pytest.raises(ValueError, match="this server's key"):
        deid.file_of_id(token, b"another key of sixteen bytes")


def test_a_misspelled_identifying_column_stops_the_start(spark, app):
    with pytest.raises(DicomsqlError, match="demo_patients has no column nope"):
        deidentified_session(cloned(spark), {}, {}, ["demo_patients.nope"])
    with pytest.raises(DicomsqlError, match="no served view nowhere"):
        deidentified_session(cloned(spark), {}, {}, ["nowhere.x"])
    with pytest.raises(OptionError, match="retain_dates and date_shift exclude each other"):
        deidentified_session(cloned(spark), {}, {"retain_dates": "true", "date_shift": "true"})

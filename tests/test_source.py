"""The ``dicom`` data source in a real SparkSession: every file accounted for, typed columns,
modes and options."""

from __future__ import annotations

import datetime
import json
import os

import pydicom
import pytest
from pyspark.errors import PySparkException

from dicomsql.dicom.header import HeaderColumns
from dicomsql.dicom.vr import attribute
from dicomsql.source.datasource import plan_partitions
from dicomsql.source.options import parse_options
from dicomsql.storage import DATA_ROOTS_VARIABLE, data_roots_value, list_files
from dicomsql.views import dicom_view_sql

from .reference import BROKEN, READABLE, expected_value

pytestmark = pytest.mark.cluster


def _all_files(folder):
    return sorted(os.path.join(root, name) for root, _, names in os.walk(folder) for name in names)


@pytest.fixture(scope="module")
def rows(spark, shipped):
    return {row["path"]: row for row in spark.table(shipped).collect()}


def test_every_file_is_a_row_and_bad_ones_say_why(rows, pydicom_files):
    assert sorted(rows) == _all_files(pydicom_files)
    for name, reason in BROKEN.items():
        row = rows[str(pydicom_files / name)]
        assert reason in row["_corrupt_record"], name
        assert row["meta"] is None and row["Modality"] is None
    dicomdir = rows[str(pydicom_files / "dicomdirtests" / "DICOMDIR")]
    assert "DICOMDIR" in dicomdir["_corrupt_record"]
    good = [row for row in rows.values() if row["_corrupt_record"] is None]
    assert len(good) > 60


def test_typed_columns_equal_pydicom(rows, pydicom_files):
    path = pydicom_files / "CT_small.dcm"
    row, ds = rows[str(path)], pydicom.dcmread(path, stop_before_pixels=True)
    assert row["Modality"] == "CT" and row["PatientID"] == ds.PatientID
    assert row["PatientName"] == str(ds.PatientName)
    assert row["StudyDate"] == datetime.datetime.strptime(ds.StudyDate, "%Y%m%d").date()
    assert row["PixelSpacing"] == [float(v) for v in ds.PixelSpacing]
    assert row["ImagePositionPatient"] == [float(v) for v in ds.ImagePositionPatient]
    assert row["Rows"] == ds.Rows and row["Columns"] == ds.Columns
    assert row["SliceThickness"] == float(ds.SliceThickness)
    assert row["TransferSyntaxUID"] == ds.file_meta.TransferSyntaxUID
    assert row["size"] == path.stat().st_size
    assert row["modificationTime"] is not None


def test_schema_types(spark, shipped):
    types = dict(spark.table(shipped).dtypes)
    assert types["PixelSpacing"] == "array<double>"
    assert types["StudyDate"] == types["PatientBirthDate"] == "date"
    assert types["Rows"] == "bigint" and types["SliceThickness"] == "double"
    assert types["meta"] == "string" and types["_warnings"] == "array<string>"
    assert types["_corrupt_record"] == "string" and types["modificationTime"] == "timestamp"


def test_warnings_column_lists_values_that_did_not_parse(rows, pydicom_files):
    row = rows[str(pydicom_files / "badVR.dcm")]
    assert row["_corrupt_record"] is None
    assert any(w.startswith("NumberOfFrames:") for w in row["_warnings"])


def test_dropmalformed_and_failfast(spark, shipped, pydicom_files):
    dropped = spark.read.format("dicom").option("mode", "DROPMALFORMED").load(str(pydicom_files))
    assert dropped.where("_corrupt_record IS NOT NULL").count() == 0
    assert dropped.count() == spark.table(shipped).where("_corrupt_record IS NULL").count()
    failing = spark.read.format("dicom").option("mode", "FAILFAST").load(str(pydicom_files))
    with pytest.raises(Exception, match="mode FAILFAST"):
        failing.collect()


def test_path_options(spark, pydicom_files):
    top_level = (
        spark.read.format("dicom").option("recursiveFileLookup", "false").load(str(pydicom_files))
    )
    assert top_level.count() == len([p for p in pydicom_files.iterdir() if p.is_file()])
    only_dcm = (
        spark.read.format("dicom")
        .option("pathGlobFilter", "MR_small*.dcm")
        .load(str(pydicom_files))
    )
    assert {os.path.basename(r.path) for r in only_dcm.select("path").collect()} == {
        p.name for p in pydicom_files.glob("MR_small*.dcm")
    }
    globbed = spark.read.format("dicom").load(str(pydicom_files / "CT_*.dcm"))
    assert [os.path.basename(r.path) for r in globbed.select("path").collect()] == ["CT_small.dcm"]
    renamed = (
        spark.read.format("dicom")
        .option("columnNameOfCorruptRecord", "why")
        .load(str(pydicom_files))
    )
    assert "why" in renamed.columns and "_corrupt_record" not in renamed.columns


def test_bad_options_name_the_option(spark, pydicom_files):
    with pytest.raises(PySparkException, match="unknown option 'mdoe'"):
        spark.read.format("dicom").option("mdoe", "FAILFAST").load(str(pydicom_files)).schema
    with pytest.raises(
        PySparkException,
        match="option mode must be one of PERMISSIVE, DROPMALFORMED, FAILFAST, got 'sometimes'",
    ):
        spark.read.format("dicom").option("mode", "sometimes").load(str(pydicom_files)).schema
    with pytest.raises(PySparkException, match="does not exist"):
        spark.read.format("dicom").load("/no/such/folder").collect()


def test_partition_planning(pydicom_files):
    files = list_files([str(pydicom_files)])
    options = parse_options({"path": str(pydicom_files), "numPartitions": "3"})
    partitions = plan_partitions(files, options)
    assert len(partitions) == 3
    assert [f for p in partitions for f in p.files] == files  # all files, in order, once
    capped = plan_partitions(files, parse_options({"path": "x", "maxFilesPerPartition": "10"}))
    assert max(len(p.files) for p in capped) <= 10
    assert plan_partitions([], options)[0].files == ()


def test_empty_folder_is_an_empty_table(spark, tmp_path):
    assert spark.read.format("dicom").load(str(tmp_path)).count() == 0


@pytest.fixture
def odd_folder(tmp_path, pydicom_files):
    """Entries that must not kill or hang a query: a broken symlink, a FIFO, a symlink loop,
    a file name that is not UTF-8, and a folder whose name looks like a glob."""
    folder = tmp_path / "scan [1]"
    (folder / "sub").mkdir(parents=True)
    ct = (pydicom_files / "CT_small.dcm").read_bytes()
    (folder / "sub" / "good.dcm").write_bytes(ct)
    os.symlink(folder, folder / "sub" / "loop")
    os.symlink(folder / "missing.dcm", folder / "broken.dcm")
    os.mkfifo(folder / "pipe")
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.dcm"), "wb") as latin1_name:
        latin1_name.write(ct)
    return folder


def test_odd_entries_are_rows_not_failures(spark, odd_folder):
    rows = {
        os.path.basename(r.path): r
        for r in spark.read.format("dicom")
        .load(str(odd_folder))
        .select("path", "Modality", "_warnings", "_corrupt_record")
        .collect()
    }
    assert set(rows) == {"good.dcm", "broken.dcm", "caf\ufffd.dcm"}  # once each: no loop, no FIFO
    assert rows["good.dcm"].Modality == "CT"
    assert rows["broken.dcm"].Modality is None and rows["broken.dcm"]._corrupt_record.startswith(
        "cannot open"
    )
    assert rows["caf\ufffd.dcm"].Modality == "CT"
    assert any("not valid UTF-8" in w for w in rows["caf\ufffd.dcm"]._warnings)


def test_user_schema_and_corrupt_column_name_are_checked(spark, pydicom_files):
    with pytest.raises(PySparkException, match="user-specified schema is not supported"):
        spark.read.format("dicom").schema("path STRING").load(str(pydicom_files)).collect()
    with pytest.raises(
        PySparkException, match="columnNameOfCorruptRecord='meta' must be a new column name"
    ):
        spark.read.format("dicom").option("columnNameOfCorruptRecord", "meta").load(
            str(pydicom_files)
        ).schema


def test_tags_all_types_every_attribute_present_and_equals_pydicom(spark, pydicom_files):
    frame = spark.read.format("dicom").option("tags", "all").load(str(pydicom_files))
    typed = frame.columns[3:-3]
    assert typed[-1] == "PatientAgeYears" and typed[:-1] == sorted(
        typed[:-1]
    )  # derived column last
    assert set(HeaderColumns.core().names) <= set(typed)
    assert {"KVP", "ReferencedImageSequence", "WindowCenterWidthExplanation"} <= set(typed)
    again = spark.read.format("dicom").option("tags", "all").load(str(pydicom_files))
    assert again.schema == frame.schema  # stable for the same files
    types = dict(frame.dtypes)
    assert types["ReferencedImageSequence"] == "string" and types["ImageType"] == "array<string>"
    rows = {row["path"]: row for row in frame.collect()}
    checked = 0
    for path in READABLE:
        row, ds = rows[str(path)], pydicom.dcmread(path, stop_before_pixels=True, force=True)
        for keyword in typed:
            if keyword == "PatientAgeYears" or attribute(keyword).vr in ("SQ", "DT"):
                continue
            try:
                expected = expected_value(ds, keyword)
            except ValueError:
                assert row[keyword] is None
                continue
            assert row[keyword] == expected, (path.name, keyword)
            checked += expected is not None
    assert checked > 2000


def test_tags_all_sequences_are_dicom_json(spark, pydicom_files):
    frame = (
        spark.read.format("dicom").option("tags", "all").load(str(pydicom_files / "CT_small.dcm"))
    )
    [row] = frame.select("OtherPatientIDsSequence", "meta").collect()
    items = json.loads(row.OtherPatientIDsSequence)
    assert items == json.loads(row.meta)["00101002"]["Value"] and items[0]["00100020"]["vr"] == "LO"


def test_tags_as_a_list_of_keywords_and_tags(spark, pydicom_files):
    frame = (
        spark.read.format("dicom")
        .option("tags", "PatientAge, (0018,0050), 00280030")
        .load(str(pydicom_files))
    )
    assert frame.columns[3:-3] == [
        "PatientAge",
        "SliceThickness",
        "PixelSpacing",
        "PatientAgeYears",
    ]
    with pytest.raises(
        PySparkException,
        match=r"option tags: '00291010' is not a standard attribute; read it with dicom_tag",
    ):
        spark.read.format("dicom").option("tags", "PatientID,00291010").load(
            str(pydicom_files)
        ).schema
    with pytest.raises(PySparkException, match="option tags: '60020010' is in a repeating group"):
        spark.read.format("dicom").option("tags", "60020010").load(str(pydicom_files)).schema
    with pytest.raises(PySparkException, match="option tags: unknown DICOM keyword 'PatientAgee'"):
        spark.read.format("dicom").option("tags", "PatientAgee").load(str(pydicom_files)).schema


def test_pixels_bytes_adds_the_file_content(spark, pydicom_files):
    frame = (
        spark.read.format("dicom")
        .option("pixels", "bytes")
        .load(str(pydicom_files / "MR_small_RLE.dcm"))
    )
    assert frame.columns[3] == "content" and dict(frame.dtypes)["content"] == "binary"
    [row] = frame.select("content", "Modality").collect()
    assert (
        bytes(row.content) == (pydicom_files / "MR_small_RLE.dcm").read_bytes()
        and row.Modality == "MR"
    )


def test_several_paths_and_modification_times(spark, pydicom_files, tmp_path):
    a, b = pydicom_files / "CT_small.dcm", pydicom_files / "MR_small.dcm"
    both = spark.read.format("dicom").load(f"{a},{b}")
    assert sorted(os.path.basename(r.path) for r in both.select("path").collect()) == [
        "CT_small.dcm",
        "MR_small.dcm",
    ]
    listed = spark.read.format("dicom").load([str(a), str(b), str(a)])
    assert listed.count() == 2  # each file once
    old, new = tmp_path / "old.dcm", tmp_path / "new.dcm"
    old.write_bytes(a.read_bytes())
    new.write_bytes(b.read_bytes())
    os.utime(old, (1_600_000_000, 1_600_000_000))  # 2020-09-13T12:26:40Z
    after = (
        spark.read.format("dicom")
        .option("modifiedAfter", "2021-01-01T00:00:00")
        .load(str(tmp_path))
    )
    assert [os.path.basename(r.path) for r in after.select("path").collect()] == ["new.dcm"]
    before = (
        spark.read.format("dicom")
        .option("modifiedBefore", "2020-09-13T12:30:00")
        .load(str(tmp_path))
    )
    assert [os.path.basename(r.path) for r in before.select("path").collect()] == ["old.dcm"]


def test_a_list_of_paths_is_the_paths_option_joined_to_path(spark, pydicom_files):
    a, b = str(pydicom_files / "CT_small.dcm"), str(pydicom_files / "MR_small.dcm")
    expected = [(a, "CT"), (b, "MR")]

    def read(frame):
        return sorted((r.path, r.Modality) for r in frame.select("path", "Modality").collect())

    assert read(spark.read.format("dicom").load([a, b])) == expected
    assert read(spark.read.format("dicom").option("paths", json.dumps([a, b])).load()) == expected
    assert (
        read(spark.read.format("dicom").options(path=a, paths=json.dumps([b])).load()) == expected
    )


def test_files_are_read_exactly_and_a_missing_one_is_a_row(spark, pydicom_files, tmp_path):
    ct, missing = str(pydicom_files / "CT_small.dcm"), str(tmp_path / "missing.dcm")
    frame = spark.read.format("dicom").option("files", json.dumps([ct, missing, str(tmp_path)]))
    rows = {r.path: r for r in frame.load().select("path", "Modality", "_corrupt_record").collect()}
    assert set(rows) == {ct, missing, str(tmp_path)}  # no folder listed, nothing else read
    assert rows[ct].Modality == "CT" and rows[ct]._corrupt_record is None
    assert rows[missing]._corrupt_record == "cannot open: No such file or directory"
    assert rows[str(tmp_path)]._corrupt_record == "not a regular file"


def test_files_outside_the_data_roots_are_rows_saying_so(pydicom_files, tmp_path, monkeypatch):
    inside, outside = tmp_path / "inside.dcm", str(pydicom_files / "CT_small.dcm")
    inside.write_bytes(b"")
    monkeypatch.setenv(DATA_ROOTS_VARIABLE, data_roots_value([str(tmp_path)]))
    entries = list_files(
        [], files=parse_options({"files": json.dumps([outside, str(inside)])}).files
    )
    assert [(e.path, e.error) for e in entries] == sorted(
        [(outside, "refused: outside the data roots"), (str(inside), None)]
    )


def test_sample_size_is_how_many_files_spread_over_the_listing_tags_all_reads(
    spark, pydicom_files, tmp_path
):
    ct, mr = (pydicom_files / "CT_small.dcm").read_bytes(), pydicom_files / "MR_small.dcm"
    for name in ("a.dcm", "b.dcm", "d.dcm"):
        (tmp_path / name).write_bytes(ct)
    (tmp_path / "c.dcm").write_bytes(mr.read_bytes())
    echo_time = float(pydicom.dcmread(mr).EchoTime)  # an attribute only the MR file has
    assert "EchoTime" not in pydicom.dcmread(pydicom_files / "CT_small.dcm")

    def sampled(size):
        return (
            spark.read.format("dicom")
            .option("tags", "all")
            .option("sampleSize", size)
            .load(str(tmp_path))
        )

    one, two = sampled("1"), sampled("2")  # a.dcm; a.dcm and c.dcm (not a.dcm and b.dcm)
    only_a = spark.read.format("dicom").option("tags", "all").load(str(tmp_path / "a.dcm"))
    assert one.schema == only_a.schema and "EchoTime" not in one.columns
    assert two.schema == spark.read.format("dicom").option("tags", "all").load(str(tmp_path)).schema
    assert [r.EchoTime for r in two.where("endswith(path, 'c.dcm')").collect()] == [echo_time]
    assert one.count() == two.count() == 4  # the sample shapes the columns, not the rows


def test_pushdown_evaluates_file_filters_on_the_listing_and_gives_the_same_rows(
    spark, pydicom_files, tmp_path
):
    good = tmp_path / "good.dcm"
    good.write_bytes((pydicom_files / "CT_small.dcm").read_bytes())
    (tmp_path / "broken.dcm").write_text("not a DICOM file\n")

    def query(pushdown, mode="PERMISSIVE"):
        frame = (
            spark.read.format("dicom")
            .option("pushdown", pushdown)
            .option("mode", mode)
            .load(str(tmp_path))
        )
        return frame.where(frame.path.endswith("/good.dcm")).select("path", "Modality")

    expected = [(str(good), "CT")]
    for pushdown in ("true", "false"):
        assert [tuple(r) for r in query(pushdown).collect()] == expected, pushdown
    assert [tuple(r) for r in query("true", "FAILFAST").collect()] == expected  # never opened
    with pytest.raises(Exception, match="mode FAILFAST"):  # opened: Spark filters after reading
        query("false", "FAILFAST").collect()
    plans = {
        pushdown: query(pushdown)._jdf.queryExecution().executedPlan().toString()
        for pushdown in ("true", "false")
    }
    spark_filters = {
        pushdown: "Filter " in plan or "Filter(" in plan for pushdown, plan in plans.items()
    }
    assert spark_filters == {"true": False, "false": True}, plans


def test_filters_on_file_columns_open_no_other_file(spark, pydicom_files):
    for statement in dicom_view_sql("failfast_shipped", pydicom_files, mode="FAILFAST"):
        spark.sql(statement)
    # every broken file would fail the query if it were opened
    # (LIKE patterns with no _ wildcard become pushable starts/ends/contains tests)
    ct = spark.sql(
        "SELECT path, Modality FROM failfast_shipped WHERE endswith(path, '/CT_small.dcm')"
    ).collect()
    assert [r.Modality for r in ct] == ["CT"]
    size = (pydicom_files / "MR_small.dcm").stat().st_size
    sized = spark.sql(
        f"SELECT count(*) FROM failfast_shipped WHERE size = {size} AND contains(path, 'MR_small')"
    ).first()[0]
    assert sized == sum(1 for p in pydicom_files.glob("MR_small*") if p.stat().st_size == size)
    listed = spark.sql(
        "SELECT count(*) FROM failfast_shipped WHERE path IN ('x', '%s')"
        % (pydicom_files / "JPEG2000.dcm")
    ).first()[0]
    assert listed == 1
    future = spark.sql(
        "SELECT count(*) FROM failfast_shipped WHERE modificationTime > timestamp'2999-01-01 00:00:00'"
    ).first()[0]
    assert future == 0
    plan = (
        spark.sql(
            "SELECT path FROM failfast_shipped WHERE size > 100 AND NOT endswith(path, '.txt')"
        )
        ._jdf.queryExecution()
        .executedPlan()
        .toString()
    )
    assert (
        "Filter " not in plan and "Filter(" not in plan
    )  # pushed down, not evaluated again by Spark
    with pytest.raises(Exception, match="mode FAILFAST"):  # the bad files are still there
        spark.sql("SELECT count(*) FROM failfast_shipped WHERE size > 0").collect()


def test_an_unfiltered_query_after_a_filtered_one_sees_every_file(spark, shipped, pydicom_files):
    """Regression: Spark 4.3 reuses a Python data source's last pushed-down plan for a query
    without filters; dicomsql's views always filter, so each query is planned afresh."""
    everything = spark.table(shipped).count()
    one = spark.sql(
        f"SELECT count(*) FROM {shipped} WHERE path = :p",
        args={"p": str(pydicom_files / "CT_small.dcm")},
    ).first()[0]
    assert one == 1 and spark.table(shipped).count() == everything
    plain = spark.read.format("dicom").load(
        str(pydicom_files)
    )  # no pushdown by default: always right
    assert (
        plain.where(plain.path.endswith("CT_small.dcm")).count() == 1
        and plain.count() == everything
    )


def test_file_uris_go_through_pyarrow(spark, pydicom_files):
    frame = spark.read.format("dicom").load(
        f"file://{pydicom_files}/MR_small_RLE.dcm"
    )  # through pyarrow
    [row] = frame.select("path", "Modality", "_corrupt_record").collect()
    assert row.path == f"file://{pydicom_files}/MR_small_RLE.dcm" and row.Modality == "MR"
    [pixels] = frame.selectExpr("dicom_pixels(path) AS p").collect()
    assert len(pixels.p) == 64 * 64

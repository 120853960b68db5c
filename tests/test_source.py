"""The ``dicom`` data source in a real SparkSession: every file accounted for, typed columns,
modes and options."""

from __future__ import annotations

import datetime
import os

import pydicom
import pytest
from pyspark.errors import PySparkException

from dicomsql.source.datasource import plan_partitions
from dicomsql.source.listing import list_files
from dicomsql.source.options import parse_options

from .test_header import BROKEN


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
    top_level = spark.read.format("dicom").option("recursiveFileLookup", "false").load(str(pydicom_files))
    assert top_level.count() == len([p for p in pydicom_files.iterdir() if p.is_file()])
    only_dcm = spark.read.format("dicom").option("pathGlobFilter", "MR_small*.dcm").load(str(pydicom_files))
    assert {os.path.basename(r.path) for r in only_dcm.select("path").collect()} == {
        p.name for p in pydicom_files.glob("MR_small*.dcm")
    }
    globbed = spark.read.format("dicom").load(str(pydicom_files / "CT_*.dcm"))
    assert [os.path.basename(r.path) for r in globbed.select("path").collect()] == ["CT_small.dcm"]
    renamed = spark.read.format("dicom").option("columnNameOfCorruptRecord", "why").load(str(pydicom_files))
    assert "why" in renamed.columns and "_corrupt_record" not in renamed.columns


def test_bad_options_name_the_option(spark, pydicom_files):
    with pytest.raises(PySparkException, match="unknown option 'mdoe'"):
        spark.read.format("dicom").option("mdoe", "FAILFAST").load(str(pydicom_files)).schema
    with pytest.raises(PySparkException, match="option mode='sometimes'"):
        spark.read.format("dicom").option("mode", "sometimes").load(str(pydicom_files)).schema
    with pytest.raises(PySparkException, match="does not exist"):
        spark.read.format("dicom").load("/no/such/folder").collect()


def test_partition_planning(pydicom_files):
    files = list_files(str(pydicom_files))
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
        for r in spark.read.format("dicom").load(str(odd_folder)).select("path", "Modality", "_warnings", "_corrupt_record").collect()
    }
    assert set(rows) == {"good.dcm", "broken.dcm", "caf\ufffd.dcm"}  # once each: no loop, no FIFO
    assert rows["good.dcm"].Modality == "CT"
    assert rows["broken.dcm"].Modality is None and rows["broken.dcm"]._corrupt_record.startswith("cannot open")
    assert rows["caf\ufffd.dcm"].Modality == "CT"
    assert any("not valid UTF-8" in w for w in rows["caf\ufffd.dcm"]._warnings)


def test_user_schema_and_corrupt_column_name_are_checked(spark, pydicom_files):
    with pytest.raises(PySparkException, match="user-specified schema is not supported"):
        spark.read.format("dicom").schema("path STRING").load(str(pydicom_files)).collect()
    with pytest.raises(PySparkException, match="columnNameOfCorruptRecord='meta' must be a new column name"):
        spark.read.format("dicom").option("columnNameOfCorruptRecord", "meta").load(str(pydicom_files)).schema

"""The SQL functions, called from SQL in the suite's session, checked against pydicom."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut

from dicomsql.udfs import FUNCTIONS


def _modality_values(path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    frame = ds.pixel_array[0] if int(ds.get("NumberOfFrames") or 1) > 1 else ds.pixel_array
    return apply_modality_lut(frame, ds).astype(np.float32).ravel()


def test_dicom_tag_by_keyword_and_tag_forms(spark, demo):
    rows = spark.sql(
        """SELECT path, dicom_tag(meta, 'PatientName') AS name, dicom_tag(meta, '00101010') AS age,
                  dicom_tag(meta, '(0028,0030)') AS spacing, dicom_tag(meta, 'WindowCenter') AS centers,
                  dicom_tag(meta, 'AccessionNumber') AS accession, dicom_tag(meta, 'ContrastBolusAgent') AS absent
           FROM demo_images WHERE _corrupt_record IS NULL"""
    ).collect()
    assert rows
    for row in rows:
        ds = pydicom.dcmread(row.path, stop_before_pixels=True)
        assert row.name == str(ds.PatientName)
        assert row.age == ds.PatientAge
        assert [float(v) for v in row.spacing.split("\\")] == [float(v) for v in ds.PixelSpacing]
        if ds.Modality == "CT":
            assert [float(v) for v in row.centers.split("\\")] == [
                float(v) for v in ds.WindowCenter
            ]
        assert row.accession == ds.AccessionNumber
        assert row.absent is None


def test_dicom_tag_unknown_keyword_names_function_and_argument(spark):
    with pytest.raises(
        Exception, match=r"dicom_tag: argument key must be a DICOM keyword .* got 'PatientAgee'"
    ):
        spark.sql("SELECT dicom_tag(meta, 'PatientAgee') FROM demo_images").collect()


def test_dicom_pixels_equal_pydicom_in_every_demo_transfer_syntax(spark):
    rows = spark.sql(
        """SELECT path, TransferSyntaxUID, dicom_pixels(path) AS pixels FROM demo_images
           WHERE _corrupt_record IS NULL AND InstanceNumber = 1"""
    ).collect()
    assert len({row.TransferSyntaxUID for row in rows}) == 5
    for row in rows:
        np.testing.assert_array_equal(
            np.array(row.pixels, dtype=np.float32), _modality_values(row.path)
        )


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small_RLE.dcm",
        "MR_small_bigendian.dcm",
        "JPEG2000.dcm",
        "MR_small_jp2klossless.dcm",
        "image_dfl.dcm",
        "rtdose.dcm",
    ],
)
def test_dicom_pixels_equal_pydicom_on_shipped_files(spark, shipped, pydicom_files, name):
    path = str(pydicom_files / name)
    [row] = spark.sql(
        "SELECT dicom_pixels(path) AS pixels FROM shipped WHERE path = :path", args={"path": path}
    ).collect()
    np.testing.assert_array_equal(np.array(row.pixels, dtype=np.float32), _modality_values(path))


def test_dicom_pixels_from_file_bytes(spark, demo):
    path = sorted((demo / "images" / "DEMO-0002" / "CT").glob("*.dcm"))[0]
    frame = spark.read.format("binaryFile").load(str(path))
    [row] = frame.selectExpr("dicom_pixels(content) AS pixels").collect()
    np.testing.assert_array_equal(np.array(row.pixels, dtype=np.float32), _modality_values(path))


def test_a_bad_file_gives_null_pixels_and_the_reason_in_dicom_image(spark, demo):
    [row] = spark.sql(
        "SELECT dicom_pixels(path) AS pixels, dicom_image(path) AS image FROM demo_images WHERE endswith(path, 'notes.txt')"
    ).collect()
    assert row.pixels is None and row.image.data is None
    assert (
        row.image.error
        == f"cannot decode {demo / 'images' / 'notes.txt'}: DecodeError: not a DICOM file"
    )
    with pytest.raises(Exception, match=r"dicom_image: cannot decode .*notes.txt"):
        spark.sql(
            "SELECT dicom_image(path, 0, map('mode', 'FAILFAST')) FROM demo_images WHERE endswith(path, 'notes.txt')"
        ).collect()


def test_dicomsql_functions_lists_every_function(spark):
    rows = spark.sql("SELECT * FROM dicomsql_functions() ORDER BY name").collect()
    assert [r.name for r in rows] == sorted(FUNCTIONS)
    listed = {r.name: r for r in rows}
    assert listed["dicom_tag"].kind == "scalar"
    assert listed["dicom_tag"].signature == "dicom_tag(meta STRING, key STRING) -> STRING"
    assert listed["dicomsql_functions"].kind == "table"
    assert all(r.description and r.example for r in rows)

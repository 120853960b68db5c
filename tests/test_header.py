"""Header -> typed row, against pydicom, on the files the pydicom wheel ships and on files
written here."""

from __future__ import annotations

import datetime
import io
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import BYTES_VR, VR

from dicomsql.dicom.header import CORE_KEYWORDS, HeaderColumns, age_in_years, read_header
from dicomsql.dicom.vr import VR_TYPES, column_vr

from .reference import BROKEN, PYDICOM_TEST_FILES, READABLE, expected_value

COLUMNS = HeaderColumns.core()


def _read(path: Path):
    with open(path, "rb") as fp:
        return read_header(fp, COLUMNS, source_uri=str(path))


def test_core_columns_have_the_spine_contract():
    required = {
        "SOPInstanceUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "PatientID",
        "PatientName",
        "PatientSex",
        "PatientAge",
        "PatientBirthDate",
        "StudyDate",
        "Modality",
        "Manufacturer",
        "ManufacturerModelName",
        "BodyPartExamined",
        "Rows",
        "Columns",
        "NumberOfFrames",
        "BitsAllocated",
        "PhotometricInterpretation",
        "TransferSyntaxUID",
        "SliceThickness",
        "PixelSpacing",
    }
    assert required <= set(CORE_KEYWORDS)
    types = dict(zip(COLUMNS.names, COLUMNS.ddl))
    assert types["PixelSpacing"] == "ARRAY<DOUBLE>"
    assert types["StudyDate"] == types["PatientBirthDate"] == "DATE"
    assert types["Rows"] == types["NumberOfFrames"] == "BIGINT"
    assert types["SliceThickness"] == "DOUBLE"
    assert types["PatientAgeYears"] == "DOUBLE"


@pytest.mark.parametrize("vr", list(VR), ids=str)
def test_every_vr_pydicom_knows_is_typed_or_binary(vr):
    typed = column_vr(vr)  # an ambiguous VR ('US or SS or OW') types its column by the first
    assert (typed in VR_TYPES) != (typed in BYTES_VR), (
        f"VR {vr}: a SQL type in VR_TYPES, or bytes kept in meta"
    )


@pytest.mark.parametrize("path", READABLE, ids=lambda p: p.name)
def test_typed_values_equal_pydicom(path):
    record = _read(path)
    assert record.error is None
    dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    for keyword, value in zip(COLUMNS.names, record.values):
        if keyword == "PatientAgeYears":
            continue
        try:
            expected = expected_value(dataset, keyword)
        except ValueError:  # a value that does not parse must be NULL with a warning
            assert value is None
            assert any(w.startswith(f"{keyword}:") for w in record.warnings)
            continue
        assert value == expected, keyword


@pytest.mark.parametrize("name, reason", sorted(BROKEN.items()))
def test_broken_shipped_files_give_a_reason_not_an_exception(name, reason):
    record = _read(PYDICOM_TEST_FILES / name)
    assert reason in record.error
    assert record.meta is None
    assert all(v is None for v in record.values)


def test_dicomdir_is_recognised_and_skipped():
    record = _read(PYDICOM_TEST_FILES / "dicomdirtests" / "DICOMDIR")
    assert "DICOMDIR" in record.error


def test_files_without_preamble_are_recognised_by_content():
    for name in ("ExplVR_LitEndNoMeta.dcm", "ExplVR_BigEndNoMeta.dcm", "rtstruct.dcm"):
        record = _read(PYDICOM_TEST_FILES / name)
        assert record.error is None, name
        assert record.values[COLUMNS.names.index("SOPInstanceUID")]


def test_invalid_value_is_null_with_a_warning_not_a_failed_row():
    record = _read(PYDICOM_TEST_FILES / "badVR.dcm")  # NumberOfFrames is '1A'
    assert record.error is None
    assert record.values[COLUMNS.names.index("NumberOfFrames")] is None
    assert any(w.startswith("NumberOfFrames:") for w in record.warnings)
    assert record.values[COLUMNS.names.index("Modality")] == "RTDOSE"


def _file(raw: dict[int, tuple[str, str]] | None = None, **attributes) -> bytes:
    """A Part 10 file with ``attributes``; ``raw`` maps tags to (VR, value) written as is,
    e.g. a DS value written under VR LO to get text that does not parse as a number."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    for tag, (vr, value) in (raw or {}).items():
        ds.add_new(tag, vr, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _record_of(content: bytes):
    return read_header(io.BytesIO(content), COLUMNS, size=len(content))


def test_generated_file_values_and_malformed_values():
    content = _file(
        {0x00180050: ("LO", "abc")},  # SliceThickness (DS) that does not parse
        SpecificCharacterSet="ISO_IR 192",
        PatientName="Müller^Jürgen",
        PatientAge="006M",
        StudyDate="2019.03.07",  # ACR-NEMA date form
        PatientBirthDate="2019-13-45",  # malformed
        PixelSpacing=["0.5", "0.25"],
        Rows=512,
    )
    record = _record_of(content)
    values = dict(zip(COLUMNS.names, record.values))
    assert values["PatientName"] == "Müller^Jürgen"
    assert values["PatientAge"] == "006M" and values["PatientAgeYears"] == 0.5
    assert values["StudyDate"] == datetime.date(2019, 3, 7)
    assert values["PatientBirthDate"] is None and values["SliceThickness"] is None
    assert values["PixelSpacing"] == [0.5, 0.25]
    assert values["Rows"] == 512
    warned = {w.split(":")[0] for w in record.warnings}
    assert {"PatientBirthDate", "SliceThickness"} <= warned


def test_age_in_years():
    assert age_in_years("065Y") == 65.0
    assert age_in_years("052W") == pytest.approx(52 * 7 / 365.25)
    assert age_in_years("") is None
    with pytest.raises(ValueError, match="not a DICOM age"):
        age_in_years("65 years")


def test_garbage_and_empty_input_give_reasons():
    assert "not a DICOM file" in _record_of(b"").error
    assert "not a DICOM file" in _record_of(b"\x00" * 10).error
    truncated_meta = _file(PatientID="X")[:140]
    assert _record_of(truncated_meta).error.startswith(
        ("malformed DICOM", "truncated", "not a DICOM file")
    )

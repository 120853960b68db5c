"""Files written here cover every VR (single and multiple values), nested sequences,
private tags and character sets, in three encodings; read through the header reader and
through SQL, checked against the values they were written with and against pydicom."""

from __future__ import annotations

import datetime
import json

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from dicomsql.dicom.header import HeaderColumns, read_header

from .reference import reference_model

#: keyword -> (value written, value expected in the typed column), one or more per VR.
EVERY_VR = {
    "RetrieveAETitle": (["NODE_A", "NODE_B"], ["NODE_A", "NODE_B"]),  # AE, 1-n
    "PatientAge": ("042Y", "042Y"),  # AS
    "DimensionIndexPointer": (0x00200032, "00200032"),  # AT
    "SelectorATValue": ([0x00100010, 0x00100020], ["00100010", "00100020"]),  # AT, 1-n
    "ImageType": (["ORIGINAL", "PRIMARY", "AXIAL"], ["ORIGINAL", "PRIMARY", "AXIAL"]),  # CS, 2-n
    "StudyDate": ("20240229", datetime.date(2024, 2, 29)),  # DA
    "CalibrationDate": (
        ["20230101", "20231231"],
        [datetime.date(2023, 1, 1), datetime.date(2023, 12, 31)],
    ),
    "AcquisitionDateTime": (
        "20240229123456.250000+0100",
        datetime.datetime(2024, 2, 29, 11, 34, 56, 250000),
    ),  # DT
    "PatientSize": ("1.75", 1.75),  # DS
    "ImagerPixelSpacing": (["0.143", "0.143"], [0.143, 0.143]),  # DS, 2
    "EventTimeOffset": (-12.5, -12.5),  # FD
    "InversionTimes": ([100.0, 2000.5], [100.0, 2000.5]),  # FD, 1-n
    "ExaminedBodyThickness": (0.5, 0.5),  # FL
    "StageNumber": ("7", 7),  # IS
    "ReferencedFrameNumber": (["1", "3", "5"], [1, 3, 5]),  # IS, 1-n
    "Manufacturer": ("ACME Imaging", "ACME Imaging"),  # LO
    "ExtendedCodeMeaning": ("a long\ntext value", "a long\ntext value"),  # LT
    "PatientName": ("Doe^Jane^^Dr", "Doe^Jane^^Dr"),  # PN
    "ConsultingPhysicianName": (["Who^A", "Who^B"], ["Who^A", "Who^B"]),  # PN, 1-n
    "AccessionNumber": ("A123", "A123"),  # SH
    "ReferencePixelX0": (-42, -42),  # SL
    "TagAngleSecondAxis": (-7, -7),  # SS
    "InstitutionAddress": (
        "1 Main Street\\Springfield",
        "1 Main Street\\Springfield",
    ),  # ST keeps backslashes
    "SelectorSVValue": ([-(2**40), 2**40], [-(2**40), 2**40]),  # SV
    "StudyTime": ("093015.5", "093015.5"),  # TM
    "LongCodeValue": ("a-very-long-code-value-" * 4, "a-very-long-code-value-" * 4),  # UC
    "StudyInstanceUID": ("1.2.3.4.5", "1.2.3.4.5"),  # UI
    "SimpleFrameList": ([1, 2, 70000], [1, 2, 70000]),  # UL, 1-n
    "CodingSchemeURL": ("https://example.org/codes", "https://example.org/codes"),  # UR
    "SubjectRelativePositionInImage": ([1, 2, 3], [1, 2, 3]),  # US, 3
    "PrivateDataElementDescription": ("unlimited text", "unlimited text"),  # UT
    "FileOffsetInContainer": (2**62, 2**62),  # UV
}
BINARY = {
    "RecordKey": b"\x01\x02",  # OB
    "FilterLookupTableData": b"\x00" * 16,  # OD
    "VerticesOfThePolygonalOutline": b"\x00" * 8,  # OF
    "LongPrimitivePointIndexList": b"\x01\x00\x00\x00",  # OL
    "ExtendedOffsetTable": b"\x00" * 8,  # OV
    "RedPaletteColorLookupTableData": b"\x00\x01" * 600,  # OW, over the bulk data threshold
}
ENCODINGS = {
    "explicit-little": ExplicitVRLittleEndian,
    "implicit-little": ImplicitVRLittleEndian,
    "explicit-big": ExplicitVRBigEndian,
}


def _item(**values) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _dataset(syntax) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    for keyword, (written, _) in EVERY_VR.items():
        setattr(ds, keyword, written)
    for keyword, value in BINARY.items():
        setattr(ds, keyword, value)
    ds.add_new(0x00091001, "UN", b"\x05\x06")  # UN
    ds.private_block(0x0029, "ACME 1.0", create=True).add_new(0x01, "LO", "private text")
    ds.ReferencedImageSequence = Sequence(
        [
            _item(
                ReferencedSOPInstanceUID="1.2.3",
                ReferencedFrameNumber=["2"],
                PurposeOfReferenceCodeSequence=Sequence(
                    [_item(CodeValue="121311", CodeMeaning="Localizer")]
                ),
            ),
            _item(ReferencedSOPInstanceUID="1.2.4"),
        ]
    )
    ds.OtherPatientIDsSequence = Sequence([])  # an empty sequence
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("every_vr")
    for name, syntax in ENCODINGS.items():
        _dataset(syntax).save_as(folder / f"{name}.dcm", enforce_file_format=True)
    return folder


COLUMNS = HeaderColumns.of([*EVERY_VR, "ReferencedImageSequence", "OtherPatientIDsSequence"])


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_vr_typed_and_in_meta(generated, encoding):
    path = generated / f"{encoding}.dcm"
    with open(path, "rb") as fp:
        record = read_header(fp, COLUMNS, source_uri=str(path))
    assert record.error is None and not record.warnings
    values = dict(zip(COLUMNS.names, record.values))
    for keyword, (_, expected) in EVERY_VR.items():
        assert values[keyword] == expected, keyword
    assert values["PatientAgeYears"] == 42.0
    sequence = json.loads(values["ReferencedImageSequence"])
    assert sequence[0]["00081155"]["Value"] == ["1.2.3"]
    assert sequence[0]["0040A170"]["Value"][0]["00080104"]["Value"] == ["Localizer"]  # nested twice
    assert values["OtherPatientIDsSequence"] is None
    meta = json.loads(record.meta)
    assert meta == reference_model(path)[0]
    if encoding.startswith("implicit"):  # an unknown private creator: no VR to know the value by
        assert meta["00291001"] == {"vr": "UN", "InlineBinary": "cHJpdmF0ZSB0ZXh0"}
    else:
        assert meta["00291001"] == {"vr": "LO", "Value": ["private text"]}
    assert meta["00209165"] == {"vr": "AT", "Value": ["00200032"]}  # DimensionIndexPointer
    assert meta["00281201"] == {"vr": "OW", "BulkDataURI": str(path)}
    assert meta["00091001"]["InlineBinary"] == "BQY="


def test_every_vr_through_sql(spark, generated):
    keys = ",".join([*EVERY_VR, "ReferencedImageSequence"])
    rows = spark.read.format("dicom").option("tags", keys).load(str(generated)).collect()
    assert len(rows) == len(ENCODINGS)
    for row in rows:
        assert row["_corrupt_record"] is None and row["_warnings"] is None
        for keyword, (_, expected) in EVERY_VR.items():
            value = row[keyword]
            if isinstance(expected, datetime.datetime):  # pyspark gives local naive datetimes
                value, expected = (
                    value.timestamp(),
                    expected.replace(tzinfo=datetime.timezone.utc).timestamp(),
                )
            assert value == expected, (row.path, keyword)


CHARACTER_SETS = {
    "ISO_IR 100": "Müller^Jürgen",
    "ISO_IR 192": "山田^太郎",
    "GB18030": "王^小东",
    "ISO 2022 IR 87": "山田^太郎",
    "ISO_IR 144": "Иванова^Анна",
}


@pytest.mark.parametrize("charset, name", CHARACTER_SETS.items())
def test_character_sets(tmp_path, charset, name):
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", generate_uid()
    ds.SpecificCharacterSet = charset if charset != "ISO 2022 IR 87" else ["", "ISO 2022 IR 87"]
    ds.PatientName = name
    ds.InstitutionName = name.replace("^", " ")
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = (
        ds.SOPClassUID,
        ds.SOPInstanceUID,
    )
    path = tmp_path / "charset.dcm"
    ds.save_as(path, enforce_file_format=True)
    columns = HeaderColumns.of(["PatientName", "InstitutionName"])
    with open(path, "rb") as fp:
        record = read_header(fp, columns, source_uri=str(path))
    assert record.values == [name, name.replace("^", " ")]
    assert json.loads(record.meta)["00100010"]["Value"] == [{"Alphabetic": name}]
    assert json.loads(record.meta) == reference_model(path)[0]

"""The ``meta`` column (DICOM JSON, PS3.18 F.2) against pydicom's ``to_json_dict``, and
reading values back from it."""

from __future__ import annotations

import json

import pydicom
from pydicom.datadict import keyword_for_tag
import pytest

from dicomsql.dicom.dicomjson import BULK_DATA_THRESHOLD, dataset_model, model_json, parse_tag, tag_text
from dicomsql.dicom.header import HeaderColumns, read_header

from .conftest import PYDICOM_TEST_FILES
from .test_header import READABLE


CHARSET_FILES = sorted((PYDICOM_TEST_FILES.parent / "charset_files").glob("*.dcm"))


def _reference_model(path) -> tuple[dict, set[str]]:
    """pydicom's to_json_dict, element by element (file meta first); and the elements it
    cannot encode."""
    dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    model, failing = {}, set()
    for part in (dataset.file_meta, dataset):
        for tag in part.keys():
            try:
                model[f"{tag:08X}"] = part[tag].to_json_dict(lambda element: str(path), BULK_DATA_THRESHOLD)
            except ValueError:
                failing.add(f"{tag:08X}")
    return model, failing


@pytest.mark.parametrize("path", READABLE + CHARSET_FILES, ids=lambda p: p.name)
def test_meta_equals_pydicom_to_json_dict(path):
    with open(path, "rb") as fp:
        record = read_header(fp, HeaderColumns.core(), source_uri=str(path))
    expected, failing = _reference_model(path)
    meta = json.loads(record.meta)
    assert meta == expected
    assert "7FE00010" not in meta, "pixel data is never in meta"
    for tag in failing:  # left out, and said so
        keyword = keyword_for_tag(int(tag, 16))
        assert any(tag in w or w.startswith(f"{keyword}:") for w in record.warnings), tag


@pytest.mark.parametrize("path", CHARSET_FILES, ids=lambda p: p.name)
def test_character_sets_decode_to_unicode(path):
    with open(path, "rb") as fp:
        record = read_header(fp, HeaderColumns.core(), source_uri=str(path))
    dataset = pydicom.dcmread(path, stop_before_pixels=True)
    if "PatientName" in dataset:
        name = record.values[HeaderColumns.core().names.index("PatientName")]
        assert name == dataset.PatientName.components[0]


def test_meta_keeps_unicode_text():
    dataset = pydicom.Dataset()
    dataset.SpecificCharacterSet = "ISO_IR 192"
    dataset.PatientName = "山田^太郎"
    model, invalid = dataset_model(dataset)
    assert "山田^太郎" in model_json(model) and not invalid


def test_meta_of_ct_small_element_by_element(pydicom_files):
    """Independent of to_json_dict: the model's shape for each kind of value."""
    path = pydicom_files / "CT_small.dcm"
    with open(path, "rb") as fp:
        meta = json.loads(read_header(fp, HeaderColumns.core(), source_uri=str(path)).meta)
    assert meta["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "CompressedSamples^CT1"}]}
    assert meta["00280030"] == {"vr": "DS", "Value": [0.661468, 0.661468]}
    assert meta["00280010"] == {"vr": "US", "Value": [128]}
    assert meta["00080008"] == {"vr": "CS", "Value": ["ORIGINAL", "PRIMARY", "AXIAL"]}
    assert meta["00080050"] == {"vr": "SH"}  # empty AccessionNumber
    assert meta["00020010"] == {"vr": "UI", "Value": ["1.2.840.10008.1.2.1"]}
    bulky = {tag: e for tag, e in meta.items() if "BulkDataURI" in e}
    assert bulky and all(e["BulkDataURI"] == str(path) for e in bulky.values())
    assert all(e["vr"] in ("OB", "OW", "UN", "OF", "OD", "OL", "OV") for e in bulky.values())


@pytest.mark.parametrize(
    "key, tag",
    [("PatientAge", 0x00101010), ("00101010", 0x00101010), ("(0010,1010)", 0x00101010),
     ("(0010, 1010)", 0x00101010), ("0029,1010", 0x00291010), ("  Modality ", 0x00080060)],
)
def test_parse_tag_forms(key, tag):
    assert parse_tag(key) == tag


def test_parse_tag_unknown_keyword_names_it():
    with pytest.raises(KeyError, match="PatientAgee"):
        parse_tag("PatientAgee")


def test_tag_text_renders_each_kind_of_value():
    model = {
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane", "Ideographic": "ド^ジェーン"}]},
        "00280030": {"vr": "DS", "Value": [0.5, 0.25]},
        "00200013": {"vr": "IS", "Value": [7]},
        "00080050": {"vr": "SH"},
        "00091010": {"vr": "OB", "InlineBinary": "AAEC"},
        "00081140": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2.3"]}}]},
    }
    assert tag_text(model, 0x00100010) == "Doe^Jane"
    assert tag_text(model, 0x00280030) == "0.5\\0.25"
    assert tag_text(model, 0x00200013) == "7"
    assert tag_text(model, 0x00080050) is None  # present but empty
    assert tag_text(model, 0x00101010) is None  # absent
    assert tag_text(model, 0x00091010) == "AAEC"
    assert json.loads(tag_text(model, 0x00081140)) == model["00081140"]["Value"]

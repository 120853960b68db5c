"""The ``meta`` column (DICOM JSON, PS3.18 F.2) against pydicom's ``to_json_dict``, and
reading values back from it."""

from __future__ import annotations

import json

import pydicom
import pytest

from dicomsql.dicom.dicomjson import BULK_DATA_THRESHOLD, dataset_json, parse_tag, tag_text
from dicomsql.dicom.header import HeaderColumns, read_header

from .test_header import READABLE


@pytest.mark.parametrize("path", READABLE, ids=lambda p: p.name)
def test_meta_equals_pydicom_to_json_dict(path):
    with open(path, "rb") as fp:
        record = read_header(fp, HeaderColumns.core(), source_uri=str(path))
    dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    try:
        expected = dataset.to_json_dict(BULK_DATA_THRESHOLD, lambda element: str(path))
    except ValueError:  # an invalid value pydicom cannot encode: left out, and said so
        expected = dataset.to_json_dict(BULK_DATA_THRESHOLD, lambda element: str(path), suppress_invalid_tags=True)
        assert any(w.startswith("meta: left out invalid element") for w in record.warnings)
    assert json.loads(record.meta) == expected
    assert "7FE00010" not in json.loads(record.meta), "pixel data is never in meta"


def test_meta_keeps_unicode_text(tmp_path):
    dataset = pydicom.Dataset()
    dataset.SpecificCharacterSet = "ISO_IR 192"
    dataset.PatientName = "山田^太郎"
    text, problems = dataset_json(dataset)
    assert "山田^太郎" in text and not problems


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

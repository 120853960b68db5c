"""The ``meta`` column (DICOM JSON, PS3.18 F.2) against pydicom's ``to_json_dict``, and
reading values back from it."""

from __future__ import annotations

import json
import struct

import pydicom
import pytest
from pydicom.datadict import keyword_for_tag

from dicomsql.dicom.dicomjson import dataset_model, model_json, parse_tag, tag_text
from dicomsql.dicom.header import HeaderColumns, read_header

from .reference import CHARSET_FILES, READABLE, reference_model


@pytest.mark.parametrize("path", READABLE + CHARSET_FILES, ids=lambda p: p.name)
def test_meta_equals_pydicom_to_json_dict(path):
    with open(path, "rb") as fp:
        record = read_header(fp, HeaderColumns.core(), source_uri=str(path))
    expected, failing = reference_model(path)
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
    [
        ("PatientAge", 0x00101010),
        ("00101010", 0x00101010),
        ("(0010,1010)", 0x00101010),
        ("(0010, 1010)", 0x00101010),
        ("0029,1010", 0x00291010),
        ("  Modality ", 0x00080060),
    ],
)
def test_parse_tag_forms(key, tag):
    assert parse_tag(key) == tag


def test_parse_tag_unknown_keyword_names_it():
    with pytest.raises(KeyError, match="PatientAgee"):
        parse_tag("PatientAgee")


def test_tag_text_renders_each_kind_of_value():
    model = {
        "00100010": {
            "vr": "PN",
            "Value": [{"Alphabetic": "Doe^Jane", "Ideographic": "ド^ジェーン"}],
        },
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


# Elements written byte by byte, with the padding, separators and oddities real files have,
# so the fast encoder meets what pydicom's writer never produces.
_LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"}
_SYNTAXES = {
    "explicit": ("1.2.840.10008.1.2.1", "<"),
    "big": ("1.2.840.10008.1.2.2", ">"),
    "implicit": ("1.2.840.10008.1.2", "<"),
}


def _element(tag: int, vr: str, value: bytes, end: str, implicit: bool) -> bytes:
    group, element = tag >> 16, tag & 0xFFFF
    if implicit:
        return struct.pack(f"{end}HHL", group, element, len(value)) + value
    if vr in _LONG_VRS:
        return (
            struct.pack(f"{end}HH", group, element)
            + vr.encode()
            + b"\0\0"
            + struct.pack(f"{end}L", len(value))
            + value
        )
    return (
        struct.pack(f"{end}HH", group, element)
        + vr.encode()
        + struct.pack(f"{end}H", len(value))
        + value
    )


def _file(elements, syntax: str) -> bytes:
    uid, end = _SYNTAXES[syntax]
    ts = uid.encode() + b"\0" * (len(uid) % 2)
    meta = _element(0x00020010, "UI", ts, "<", False)
    meta = _element(0x00020000, "UL", struct.pack("<L", len(meta)), "<", False) + meta
    body = b"".join(
        _element(tag, vr, value, end, syntax == "implicit") for tag, vr, value in elements
    )
    return b"\0" * 128 + b"DICM" + meta + body


CRAFTED = {
    "text padding and separators": [
        (0x00080005, "CS", b"ISO_IR 100"),
        (0x00080060, "CS", b"CT"),
        (0x00080008, "CS", b"ORIGINAL\\\\AXIAL "),
        (0x00080070, "LO", b" ACME \\ B \x00"),
        (0x00081030, "LO", b"M\xfcller"),
        (0x00081010, "SH", b"ST1\\"),
        (0x00080081, "ST", b"1 Main St\\Town \x00"),
        (0x00284000, "LT", b"x\\y  "),
    ],
    "uids and AE": [
        (0x00080016, "UI", b"1.2.840.10008.5.1.4.1.1.2\x00"),
        (0x00080018, "UI", b" 1.2.3"),
        (0x0008001A, "UI", b"1.2 \\3.4\x00"),
        (0x00080054, "AE", b" NODE \\B "),
    ],
    "numbers as text": [
        (0x00280030, "DS", b" 0.5\\0.25 "),
        (0x00180050, "DS", b"1e-3"),
        (0x00181050, "DS", b"  "),
        (0x00200013, "IS", b"+7 "),
        (0x00200012, "IS", b" -3\\4"),
        (0x00201041, "DS", b"1.\\.5"),
    ],
    "binary numbers": [
        (0x00280010, "US", struct.pack("<H", 512)),
        (0x00280106, "SS", struct.pack("<h", -5)),
        (0x00181140, "UL", b""),
        (0x00189087, "FD", struct.pack("<2d", 1.5, -2.0)),
        (0x00109431, "FL", struct.pack("<f", 0.1)),
        (0x00209165, "AT", struct.pack("<HH", 0x0020, 0x0032)),
    ],
    "person names": [
        (0x00080005, "CS", b"ISO_IR 192"),
        (0x00100010, "PN", "Yamada^Tarou=山田^太郎=やまだ^たろう".encode()),
        (0x00081050, "PN", b"Who^A\\Who^B "),
        (0x00080090, "PN", b"  "),
        (0x00081060, "PN", b"A\\\\B"),
    ],
    "escape sequences": [
        (0x00080005, "CS", b"\\ISO 2022 IR 87"),
        (0x00100010, "PN", b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B"),
        (0x00284000, "LT", b"x\x1b(By"),
    ],
    "lut descriptors and private": [
        (0x00281101, "SS", struct.pack("<3h", -32768, 0, 16)),
        (0x00090010, "LO", b"ACME 1.0"),
        (0x00091001, "LO", b"private"),
        (0x00091002, "UN", b"\x01\x02\x03"),
        (0x00091003, "OB", b"\x00" * 1000),
    ],
}


@pytest.mark.parametrize("syntax", _SYNTAXES)
@pytest.mark.parametrize("case", CRAFTED)
def test_crafted_elements_equal_pydicom(tmp_path, case, syntax):
    elements = CRAFTED[case]
    if syntax == "big":  # binary numbers are packed little endian above (test_generated covers big)
        elements = [e for e in elements if e[1] not in ("US", "SS", "UL", "FD", "FL", "AT")]
        if not elements:
            pytest.skip("no text elements in this case")
    path = tmp_path / "crafted.dcm"
    path.write_bytes(_file(elements, syntax))
    with open(path, "rb") as fp:
        record = read_header(fp, HeaderColumns.core(), source_uri=str(path))
    expected, failing = reference_model(path)
    meta = json.loads(record.meta)
    assert meta == expected
    for tag in failing:  # left out, and said so
        keyword = keyword_for_tag(int(tag, 16))
        assert any(tag in w or w.startswith(f"{keyword}:") for w in record.warnings), tag

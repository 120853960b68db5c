"""The DICOM JSON model (PS3.18 F.2): the ``meta`` column and reading values back from it.

:func:`dataset_model` gives what pydicom's :meth:`~pydicom.dataset.Dataset.to_json_dict`
gives for the file meta information (group 0002, so ``TransferSyntaxUID`` is there too) and
the dataset, merged: numbers (IS, DS, US, FD...) are JSON numbers, person names are objects
with ``Alphabetic`` (and ``Ideographic``, ``Phonetic``) groups, sequences hold item objects.
Pixel data is never read; any other binary value longer than 768 bytes (pydicom's rule for a
1,024-byte threshold of base64 text) is left out and replaced by a ``BulkDataURI`` naming the
file it came from.

Speed: pydicom converts every element to a Python value before encoding it. Here the common
elements are encoded straight from their raw bytes (the conversions below reproduce
pydicom's, and a test checks the result equals ``to_json_dict`` on every file pydicom ships
and on generated files of every VR); the rare ones (ambiguous or private VRs in implicit
files, UN, ISO 2022 character sets, unusual numbers) go through pydicom itself.
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
from collections.abc import Callable
from typing import Any

from pydicom import datadict
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import BYTES_VR, VR

__all__ = ["BULK_DATA_THRESHOLD", "dataset_model", "model_json", "parse_tag", "tag_text"]

#: Threshold (bytes of base64 text) above which binary values stay out of ``meta``.
BULK_DATA_THRESHOLD = 1024
_BULK_BYTES = (BULK_DATA_THRESHOLD // 4) * 3

_SPECIFIC_CHARACTER_SET = 0x00080005
#: Character sets whose text decodes with one Python codec (no ISO 2022 code extensions).
_SIMPLE_CHARSETS = {
    "": "latin_1",
    "ISO_IR 6": "latin_1",
    "ISO_IR 100": "latin_1",
    "ISO_IR 192": "utf_8",
}
#: VRs whose bytes are written as InlineBinary / BulkDataURI here; UN goes to pydicom, which
#: may know the element's real VR.
_BINARY_VRS = frozenset(BYTES_VR - {VR.UN})
_NUMBER_FORMATS = {
    "US": "H",
    "SS": "h",
    "UL": "L",
    "SL": "l",
    "FL": "f",
    "FD": "d",
    "SV": "q",
    "UV": "Q",
}
_INTEGER = re.compile(r"[+-]?\d+\Z")
#: LUT descriptors: pydicom reads their first value as unsigned whatever the VR says.
_LUT_DESCRIPTOR_TAGS = frozenset({0x00281101, 0x00281102, 0x00281103, 0x00283002})


class _Delegate(Exception):
    """This element needs pydicom's own conversion."""


def _strings(value: bytes) -> list[str]:
    # pydicom's multi_string: strip trailing padding of the whole value, then split
    return value.decode("latin_1").rstrip(" \x00").split("\\")


def _ae(value: bytes, _codec: str, _end: str) -> list[str]:
    return [s.strip() for s in value.decode("latin_1").split("\\")]


def _string(value: bytes, _codec: str, _end: str) -> list[str]:
    return _strings(value)


def _ui(value: bytes, _codec: str, _end: str) -> list[str]:
    return [uid.strip() for uid in _strings(value.rstrip(b"\x00 "))]  # as pydicom's UID()


def _ur(value: bytes, _codec: str, _end: str) -> list[str]:
    return [value.decode("latin_1").rstrip()]


def _decode(value: bytes, codec: str | None) -> str:
    if codec is None or b"\x1b" in value:  # ISO 2022 escape sequences: pydicom's decoder
        raise _Delegate
    try:
        return value.decode(codec)
    except UnicodeDecodeError:
        raise _Delegate from None


def _text(value: bytes, codec: str, _end: str) -> list[str]:
    return [v.rstrip("\x00 ") for v in _decode(value, codec).split("\\")]


def _single_text(value: bytes, codec: str, _end: str) -> list[str]:
    return [_decode(value, codec).rstrip("\x00 ")]


def _person_names(value: bytes, codec: str, _end: str) -> list[dict[str, str]]:
    names = _decode(value.rstrip(b"\x00 "), codec).split("\\")
    if any("=" in name for name in names) or (len(names) > 1 and not all(names)):
        raise _Delegate  # component groups, empty values among several: PersonName's rules
    return [{"Alphabetic": name} for name in names]


def _ds(value: bytes, _codec: str, _end: str) -> list[float]:
    numbers = []
    for item in value.decode("latin_1").strip().split("\\"):
        try:
            number = float(item)
        except ValueError:
            raise _Delegate from None
        if not math.isfinite(number) or not item.strip():
            raise _Delegate
        numbers.append(number)
    return numbers


def _is(value: bytes, _codec: str, _end: str) -> list[int]:
    items = [item.strip() for item in _strings(value)]
    if not all(_INTEGER.match(item) for item in items):
        raise _Delegate
    return [int(item) for item in items]


def _numbers(vr: str) -> Callable[[bytes, str, str], list]:
    code = _NUMBER_FORMATS[vr]
    size = struct.calcsize("=" + code)

    def convert(value: bytes, _codec: str, end: str) -> list:
        if len(value) % size:
            raise _Delegate
        numbers = struct.unpack(f"{end}{len(value) // size}{code}", value)
        if code in "fd" and not all(math.isfinite(n) for n in numbers):
            raise _Delegate
        return list(numbers)

    return convert


def _at(value: bytes, _codec: str, end: str) -> list[str]:
    if len(value) % 4:
        raise _Delegate
    pairs = struct.unpack(f"{end}{len(value) // 2}H", value)
    return [f"{pairs[i]:04X}{pairs[i + 1]:04X}" for i in range(0, len(pairs), 2)]


_CONVERTERS: dict[str, Callable[[bytes, str, str], list]] = {
    "AE": _ae,
    "AS": _string,
    "CS": _string,
    "DA": _string,
    "DT": _string,
    "TM": _string,
    "UI": _ui,
    "UR": _ur,
    "LO": _text,
    "SH": _text,
    "UC": _text,
    "LT": _single_text,
    "ST": _single_text,
    "UT": _single_text,
    "PN": _person_names,
    "DS": _ds,
    "IS": _is,
    "AT": _at,
    **{vr: _numbers(vr) for vr in _NUMBER_FORMATS},
}


def _codec(dataset: Dataset, inherited: str | None) -> str | None:
    """The Python codec of the dataset's text, None when it needs pydicom (ISO 2022...)."""
    raw = dataset._dict.get(_SPECIFIC_CHARACTER_SET)
    if raw is None:
        return inherited
    value = raw.value if isinstance(raw, RawDataElement) else None
    if value is None:
        return _SIMPLE_CHARSETS.get(_charset_text(dataset[_SPECIFIC_CHARACTER_SET].value))
    return _SIMPLE_CHARSETS.get(value.decode("latin_1").strip(" \x00"))


def _charset_text(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    values = [v.strip() for v in value]
    return values[0] if len(values) == 1 else "\\".join(values)


class _ModelBuilder:
    def __init__(self, source_uri: str, little_endian: bool) -> None:
        self.source_uri = source_uri
        self.end = "<" if little_endian else ">"
        self.invalid: dict[str, str] = {}

    def dataset(self, dataset: Dataset, codec: str | None, path: str = "") -> dict[str, Any]:
        codec = _codec(dataset, codec)
        model: dict[str, Any] = {}
        for tag in sorted(dataset._dict):
            key = f"{tag:08X}"
            try:
                model[key] = self.element(dataset, tag, codec, f"{path}{key}.")
            except Exception as exc:  # noqa: BLE001 - pydicom raises what the bad value raises
                self.invalid[path + key] = f"{type(exc).__name__}: {exc}"
        return model

    def element(self, dataset: Dataset, tag: int, codec: str | None, path: str) -> dict[str, Any]:
        raw = dataset._dict[tag]
        if isinstance(raw, RawDataElement) and tag not in _LUT_DESCRIPTOR_TAGS:
            vr = raw.VR or _implicit_vr(tag)
            try:
                return self._raw(vr, raw.value, codec)
            except _Delegate:
                pass
        element = dataset[tag]
        if element.VR == "SQ":
            return {
                "vr": "SQ",
                "Value": [self.dataset(item, codec, path) for item in element.value],
            }
        return element.to_json_dict(self._bulk_data_uri, BULK_DATA_THRESHOLD)

    def _raw(self, vr: str | None, value: bytes | None, codec: str | None) -> dict[str, Any]:
        if vr in _BINARY_VRS:
            if not value:
                return {"vr": vr}
            if len(value) > _BULK_BYTES:
                return {"vr": vr, "BulkDataURI": self.source_uri}
            return {"vr": vr, "InlineBinary": base64.b64encode(value).decode("ascii")}
        convert = _CONVERTERS.get(vr)
        if convert is None:
            raise _Delegate
        if not value:
            return {"vr": vr}
        values = convert(value, codec, self.end)
        if len(values) == 1 and values[0] in ("", {"Alphabetic": ""}):  # pydicom: VM 0
            return {"vr": vr}
        return {"vr": vr, "Value": values}

    def _bulk_data_uri(self, _element: Any) -> str:
        return self.source_uri


def _implicit_vr(tag: int) -> str | None:
    """The dictionary VR of a public tag, None for private, unknown or ambiguous ones."""
    if tag >> 16 & 1:
        return None
    try:
        vr = datadict.dictionary_VR(tag)
    except KeyError:
        return None
    return None if " or " in vr else vr


def dataset_model(dataset: Dataset, source_uri: str = "") -> tuple[dict[str, Any], dict[str, str]]:
    """The DICOM JSON model of ``dataset`` (file meta first), and the elements left out because
    their value is invalid in its VR: ``{"GGGGEEEE": reason}`` (nested ones as
    ``"GGGGEEEE.GGGGEEEE"``). One bad value never loses the rest of the header."""
    little_endian = getattr(dataset, "original_encoding", (None, True))[1] is not False
    model: dict[str, Any] = {}
    invalid: dict[str, str] = {}
    for part, builder in (
        (getattr(dataset, "file_meta", None), _ModelBuilder(source_uri, little_endian=True)),
        (dataset, _ModelBuilder(source_uri, little_endian)),
    ):
        if part is not None:
            model.update(builder.dataset(part, "latin_1"))
            invalid.update(builder.invalid)
    return model, invalid


def model_json(model: Any) -> str:
    """A DICOM JSON model (or a part of one) as compact JSON text, non-ASCII kept as is."""
    return json.dumps(model, ensure_ascii=False, separators=(",", ":"))


_TAG_FORMS = (
    re.compile(r"^\(?\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\)?$"),  # (0010,1010)
    re.compile(r"^([0-9A-Fa-f]{4})([0-9A-Fa-f]{4})$"),  # 00101010
)


def parse_tag(key: str) -> int:
    """The tag named by a keyword (``'PatientAge'``) or a tag (``'00101010'``, ``'(0010,1010)'``).

    >>> hex(parse_tag("PatientAge")), hex(parse_tag("(0010,1010)")), hex(parse_tag("00101010"))
    ('0x101010', '0x101010', '0x101010')

    Raises ``KeyError`` naming the key when it is neither a known keyword nor a tag.
    """
    text = key.strip()
    for form in _TAG_FORMS:
        match = form.match(text)
        if match:
            return int(match.group(1) + match.group(2), 16)
    tag = datadict.tag_for_keyword(text)
    if tag is None:
        raise KeyError(f"unknown DICOM keyword {key!r}")
    return tag


def tag_text(model: dict[str, Any], tag: int) -> str | None:
    """The value of ``tag`` in a parsed DICOM JSON ``model`` as text, or None if absent/empty.

    Several values are joined with ``\\`` (DICOM's own separator); person names give their
    alphabetic form; a sequence gives the JSON of its items; binary values give their base64
    ``InlineBinary`` text or ``BulkDataURI``.

    >>> tag_text({"00280030": {"vr": "DS", "Value": [0.5, 0.5]}}, 0x00280030)
    '0.5\\\\0.5'
    """
    element = model.get(f"{tag:08X}")
    if element is None:
        return None
    for binary_key in ("InlineBinary", "BulkDataURI"):
        if binary_key in element:
            return element[binary_key]
    values = element.get("Value")
    if not values:
        return None
    if element.get("vr") == "SQ":
        return model_json(values)
    return "\\".join(_value_text(value) for value in values)


def _value_text(value: Any) -> str:
    if isinstance(value, dict):  # PN: {"Alphabetic": ..., "Ideographic": ...}
        return value.get("Alphabetic", "")
    if value is None:
        return ""
    return str(value)

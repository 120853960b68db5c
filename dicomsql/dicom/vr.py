"""DICOM value representations (VRs) and the SQL values they become.

One table, :data:`VR_TYPES`, maps each VR to its SQL type (Spark DDL) and a converter from
the value pydicom gives to the value stored in the column. Binary VRs (:data:`BINARY_VRS`)
have no typed column: their values live only in the DICOM JSON ``meta`` column.

=========================================  ===========  ===============================
VR                                         SQL type     value
=========================================  ===========  ===============================
DA                                         DATE         ``YYYYMMDD`` (also ``YYYY.MM.DD``)
DT                                         TIMESTAMP    UTC; offsets ``&ZZXX`` applied
TM                                         STRING       as written, ``HHMMSS.FFFFFF``
DS, FD, FL                                 DOUBLE
IS, SS, US, SL, UL, SV, UV                 BIGINT
PN                                         STRING       alphabetic component group
AT                                         STRING       ``GGGGEEEE``
SQ                                         STRING       DICOM JSON of the items
AE, AS, CS, LO, LT, SH, ST, UC, UI, UR, UT  STRING
OB, OD, OF, OL, OV, OW, UN                 (none)       only in ``meta``
=========================================  ===========  ===============================

An attribute whose dictionary value multiplicity allows more than one value (``VM`` other
than ``1``) becomes an ``ARRAY`` of its element type, so a column's type never depends on the
files read.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any, Callable

from pydicom import datadict
from pydicom.tag import Tag
from pydicom.valuerep import DT

__all__ = ["VR_TYPES", "BINARY_VRS", "SqlType", "Attribute", "attribute"]


def _to_date(value: Any) -> datetime.date:
    if isinstance(value, datetime.date):
        return value
    text = str(value).strip()
    digits = text.replace(".", "") if len(text) == 10 else text  # ACR-NEMA YYYY.MM.DD
    if len(digits) != 8 or not digits.isdigit():
        raise ValueError(f"not a DICOM date (YYYYMMDD): {text!r}")
    return datetime.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))


def _to_timestamp(value: Any) -> datetime.datetime:
    parsed = value if isinstance(value, datetime.datetime) else DT(str(value).strip())
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return parsed


def _to_float(value: Any) -> float:
    return float(value)


def _to_int(value: Any) -> int:
    # IS values may be written "12.0" by some writers; int(float()) keeps them, exactly.
    if isinstance(value, str):
        number = float(value)
        if not number.is_integer():
            raise ValueError(f"not an integer string: {value!r}")
        return int(number)
    return int(value)


def _to_person_name(value: Any) -> str:
    alphabetic = getattr(value, "alphabetic", None)
    return alphabetic if alphabetic is not None else str(value).split("=")[0]


def _to_tag_text(value: Any) -> str:
    return f"{int(Tag(value)):08X}"


def _to_sequence_json(value: Any) -> str:
    return json.dumps([item.to_json_dict() for item in value], ensure_ascii=False)


def _to_text(value: Any) -> str:
    return str(value)


@dataclass(frozen=True)
class SqlType:
    """How one value of a VR is stored: its Spark DDL type and a converter."""

    ddl: str
    convert: Callable[[Any], Any]


_STRING = SqlType("STRING", _to_text)
_DOUBLE = SqlType("DOUBLE", _to_float)
_BIGINT = SqlType("BIGINT", _to_int)

#: VR -> SQL type of one value. VRs missing here (binary ones) have no typed column.
VR_TYPES: dict[str, SqlType] = {
    "DA": SqlType("DATE", _to_date),
    "DT": SqlType("TIMESTAMP", _to_timestamp),
    "TM": _STRING,
    "DS": _DOUBLE,
    "FD": _DOUBLE,
    "FL": _DOUBLE,
    "IS": _BIGINT,
    "SS": _BIGINT,
    "US": _BIGINT,
    "SL": _BIGINT,
    "UL": _BIGINT,
    "SV": _BIGINT,
    "UV": _BIGINT,
    "PN": SqlType("STRING", _to_person_name),
    "AT": SqlType("STRING", _to_tag_text),
    "SQ": SqlType("STRING", _to_sequence_json),
    **{vr: _STRING for vr in ("AE", "AS", "CS", "LO", "LT", "SH", "ST", "UC", "UI", "UR", "UT")},
}

#: VRs whose values are bytes: kept in ``meta`` only.
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})


def _dictionary_vr(vr: str) -> str:
    """The VR used for a typed column; ambiguous dictionary VRs ('US or SS') pick their first."""
    return vr.split(" or ")[0]


@dataclass(frozen=True)
class Attribute:
    """A standard DICOM attribute as a typed SQL column."""

    keyword: str
    tag: int
    vr: str
    multi: bool

    @property
    def sql_type(self) -> SqlType:
        """The SQL type of one value."""
        return VR_TYPES[self.vr]

    @property
    def ddl(self) -> str:
        """Spark DDL type of the column, e.g. ``ARRAY<DOUBLE>``."""
        return f"ARRAY<{self.sql_type.ddl}>" if self.multi else self.sql_type.ddl

    def convert(self, value: Any) -> Any:
        """Convert the value pydicom gives for this attribute; raises ValueError if it does
        not parse in its VR. Returns None for an empty value."""
        convert = self.sql_type.convert
        if value is None or value == "":
            return None
        if self.vr == "SQ":
            return convert(value) if len(value) else None
        values = list(value) if _is_multi_value(value) else [value]
        converted = [convert(v) for v in values if v is not None and v != ""]
        if self.multi:
            return converted
        if len(converted) > 1:
            raise ValueError(f"{len(converted)} values where one is allowed")
        return converted[0] if converted else None


def _is_multi_value(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue"


def attribute(keyword: str) -> Attribute:
    """The :class:`Attribute` of a standard DICOM keyword.

    >>> attribute("PixelSpacing").ddl
    'ARRAY<DOUBLE>'
    >>> attribute("StudyDate").ddl
    'DATE'

    Raises ``KeyError`` for an unknown keyword and ``ValueError`` for a binary VR
    (:data:`BINARY_VRS`).
    """
    tag = datadict.tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(f"unknown DICOM keyword {keyword!r}")
    vr, vm = datadict.dictionary_VR(tag), datadict.dictionary_VM(tag)
    column_vr = _dictionary_vr(vr)
    if column_vr not in VR_TYPES:  # binary VRs, and item delimiters (VR NONE)
        raise ValueError(f"{keyword} (VR {vr}) has no typed column; its value is only in meta")
    return Attribute(keyword, tag, column_vr, multi=vm != "1")

"""DICOM value representations (VRs) and the SQL values they become.

One table, :data:`VR_TYPES`, maps each VR to its SQL type (Spark DDL) and a converter from
a value of the DICOM JSON model (:mod:`dicomsql.dicom.dicomjson`) to the value stored in the
column. Binary VRs (pydicom's ``valuerep.BYTES_VR``) have no typed column: their values live
only in the DICOM JSON ``meta`` column; an ambiguous dictionary VR (``US or SS``) types its
column by its first choice.

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
files read. (Spark 4.3 has a TIME type, but the Thrift server cannot return it:
``UNSUPPORTED_TIME_TYPE``; TM therefore stays text.)
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydicom import datadict
from pydicom.valuerep import DT

from .dicomjson import model_json

__all__ = ["VR_TYPES", "SqlType", "Attribute", "attribute", "column_vr"]


def _to_date(value: str) -> datetime.date:
    text = str(value).strip()
    digits = text.replace(".", "") if len(text) == 10 else text  # ACR-NEMA YYYY.MM.DD
    if len(digits) != 8 or not digits.isdigit():
        raise ValueError(f"not a DICOM date (YYYYMMDD): {text!r}")
    return datetime.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))


def _to_timestamp(value: str) -> datetime.datetime:
    parsed = DT(str(value).strip())
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return parsed


def _to_float(value: Any) -> float:
    return float(value)


def _to_int(value: Any) -> int:
    number = float(value) if isinstance(value, str) else value
    if isinstance(number, float):
        if not number.is_integer():
            raise ValueError(f"not an integer: {value!r}")
        return int(number)
    return int(number)


def _to_person_name(value: Any) -> str:
    return value.get("Alphabetic", "") if isinstance(value, dict) else str(value)


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
    "AT": _STRING,
    "SQ": SqlType("STRING", model_json),
    **{vr: _STRING for vr in ("AE", "AS", "CS", "LO", "LT", "SH", "ST", "UC", "UI", "UR", "UT")},
}


def column_vr(vr: str) -> str:
    """The VR used for a typed column; ambiguous dictionary VRs pick their first.

    >>> column_vr("US or SS"), column_vr("DS")
    ('US', 'DS')
    """
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

    def convert(self, element: dict[str, Any] | None) -> Any:
        """The column value of this attribute's element in a DICOM JSON model (None when
        absent or empty); raises ValueError when the value does not parse in the VR."""
        if element is None:
            return None
        values = element.get("Value")
        if values is None:
            if "InlineBinary" in element or "BulkDataURI" in element:
                raise ValueError(
                    f"binary value (VR {element.get('vr')}) where {self.vr} was expected"
                )
            return None
        if self.vr == "SQ":
            return model_json(values) if values else None
        convert = self.sql_type.convert
        converted = [None if v is None or v == "" else convert(v) for v in values]
        converted = [None if c == "" else c for c in converted]  # e.g. a PN with no alphabetic part
        if self.multi:
            return converted  # an empty value keeps its position, as NULL
        if len(converted) > 1:
            raise ValueError(f"{len(converted)} values where one is allowed")
        return converted[0] if converted else None


def attribute(keyword: str) -> Attribute:
    """The :class:`Attribute` of a standard DICOM keyword.

    >>> attribute("PixelSpacing").ddl
    'ARRAY<DOUBLE>'
    >>> attribute("StudyDate").ddl
    'DATE'

    Raises ``KeyError`` for an unknown keyword and ``ValueError`` for a binary VR
    (pydicom's ``valuerep.BYTES_VR``).
    """
    tag = datadict.tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(f"unknown DICOM keyword {keyword!r}")
    vr, vm = datadict.dictionary_VR(tag), datadict.dictionary_VM(tag)
    typed = column_vr(vr)
    if typed not in VR_TYPES:  # binary VRs, and item delimiters (VR NONE)
        raise ValueError(f"{keyword} (VR {vr}) has no typed column; its value is only in meta")
    return Attribute(keyword, tag, typed, multi=vm != "1")

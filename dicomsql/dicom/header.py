"""Reading DICOM headers: recognise a file by its content, parse it without pixel data, check
it is complete, and turn it into typed values.

>>> from dicomsql.dicom.header import HeaderColumns, read_dataset
>>> columns = HeaderColumns.core()
>>> "PatientAgeYears" in columns.names
True
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import pydicom
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, MediaStorageDirectoryStorage
from pydicom.valuerep import BYTES_VR

from ..errors import InvalidDicomFileError
from .dicomjson import dataset_model, model_json, parse_tag
from .vr import Attribute, attribute

__all__ = [
    "CORE_KEYWORDS",
    "HeaderColumns",
    "HeaderRecord",
    "age_in_years",
    "read_dataset",
    "dataset_record",
    "read_header",
    "looks_like_dicom",
]

#: The typed attributes every DICOM table has (the ``'core'`` tag set).
CORE_KEYWORDS: tuple[str, ...] = (
    "SOPInstanceUID",
    "SOPClassUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "PatientID",
    "PatientName",
    "PatientSex",
    "PatientAge",
    "PatientBirthDate",
    "StudyDate",
    "StudyDescription",
    "SeriesDescription",
    "SeriesNumber",
    "InstanceNumber",
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "BodyPartExamined",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "SamplesPerPixel",
    "BitsAllocated",
    "PhotometricInterpretation",
    "TransferSyntaxUID",
    "SliceThickness",
    "PixelSpacing",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "RescaleSlope",
    "RescaleIntercept",
    "WindowCenter",
    "WindowWidth",
)


def _has_column(keyword: str) -> bool:
    try:
        attribute(keyword)
    except (KeyError, ValueError):
        return False
    return True


_AGE_UNITS_PER_YEAR = {"D": 365.25, "W": 365.25 / 7, "M": 12.0, "Y": 1.0}


def age_in_years(age: str | None) -> float | None:
    """A DICOM age string (``AS``: ``nnnD``, ``nnnW``, ``nnnM`` or ``nnnY``) in years.

    >>> age_in_years("065Y"), age_in_years("006M"), age_in_years(None)
    (65.0, 0.5, None)
    """
    if not age:
        return None
    text = age.strip().upper()
    unit = text[-1:]
    if unit not in _AGE_UNITS_PER_YEAR or not text[:-1].isdigit():
        raise ValueError(f"not a DICOM age (nnnD/W/M/Y): {age!r}")
    return int(text[:-1]) / _AGE_UNITS_PER_YEAR[unit]


@dataclass(frozen=True)
class HeaderColumns:
    """The typed columns of a DICOM table: one :class:`Attribute` per keyword, plus
    ``PatientAgeYears`` (DOUBLE) derived from ``PatientAge`` when that is present."""

    attributes: tuple[Attribute, ...]

    @classmethod
    def core(cls) -> HeaderColumns:
        """The columns of :data:`CORE_KEYWORDS`."""
        return cls.of(CORE_KEYWORDS)

    @classmethod
    def of(cls, keywords: Sequence[str]) -> HeaderColumns:
        """The columns of these standard keywords, in this order."""
        return cls(tuple(attribute(keyword) for keyword in keywords))

    @classmethod
    def named(cls, keys: Sequence[str]) -> HeaderColumns:
        """The columns of keywords or tags (``'PatientAge'``, ``'00101010'``,
        ``'(0010,1010)'``), in this order, each once. ``ValueError`` names a key that is
        unknown, private or binary (those are read from ``meta`` with ``dicom_tag``)."""
        keywords: list[str] = []
        for key in keys:
            try:
                tag = parse_tag(key)
            except KeyError:
                raise ValueError(f"unknown DICOM keyword {key!r}") from None
            keyword = keyword_for_tag(tag)
            if not keyword or tag >> 16 & 1:
                raise ValueError(
                    f"{key!r} is not a standard attribute; read it with dicom_tag(meta, {key!r})"
                )
            if tag_for_keyword(keyword) != tag:  # overlay and curve groups (60xx, 50xx)
                raise ValueError(
                    f"{key!r} is in a repeating group; read it with dicom_tag(meta, {key!r})"
                )
            try:
                attribute(keyword)
            except ValueError as exc:
                raise ValueError(f"{exc}; read it with dicom_tag(meta, {key!r})") from None
            if keyword not in keywords:
                keywords.append(keyword)
        return cls.of(keywords)

    @classmethod
    def present_in(cls, models: Sequence[dict[str, Any]]) -> HeaderColumns:
        """The core columns plus every standard attribute with a typed column found at the
        top level of these DICOM JSON models, sorted by keyword (stable for given files)."""
        keywords = set(CORE_KEYWORDS)
        for model in models:
            for key in model:
                keyword = keyword_for_tag(int(key, 16))
                if keyword and keyword not in keywords and _has_column(keyword):
                    keywords.add(keyword)
        return cls.of(sorted(keywords))

    @property
    def _derives_age(self) -> bool:
        return any(a.keyword == "PatientAge" for a in self.attributes)

    @property
    def names(self) -> list[str]:
        derived = ["PatientAgeYears"] if self._derives_age else []
        return [a.keyword for a in self.attributes] + derived

    @property
    def ddl(self) -> list[str]:
        """Spark DDL types aligned with :attr:`names`."""
        return [a.ddl for a in self.attributes] + (["DOUBLE"] if self._derives_age else [])

    def values(
        self, model: dict[str, Any], invalid: dict[str, str] | None = None
    ) -> tuple[list[Any], list[str]]:
        """The typed values of a DICOM JSON ``model``, aligned with :attr:`names`, and a
        warning for each value that does not parse in its VR (that value is None; the row is
        kept). ``invalid`` names elements left out of the model as invalid (see
        :func:`~dicomsql.dicom.dicomjson.dataset_model`): they are reported here too."""
        invalid = invalid or {}
        values: list[Any] = []
        problems: list[str] = []
        for attr in self.attributes:
            key = f"{attr.tag:08X}"
            if key in invalid:
                values.append(None)
                problems.append(f"{attr.keyword}: {invalid[key]}")
                continue
            try:
                values.append(attr.convert(model.get(key)))
            except (ValueError, TypeError) as exc:
                values.append(None)
                problems.append(f"{attr.keyword}: {exc}")
        if self._derives_age:
            age = values[[a.keyword for a in self.attributes].index("PatientAge")]
            try:
                values.append(age_in_years(age))
            except ValueError as exc:
                values.append(None)
                problems.append(f"PatientAgeYears: {exc}")
        return values, problems


_PREAMBLE = 128
_KNOWN_FIRST_GROUPS = (0x0002, 0x0008)
_ITEM, _SEQUENCE_DELIMITER = 0xFFFEE000, 0xFFFEE0DD
_UNDEFINED_LENGTH = 0xFFFFFFFF
#: The VRs a pixel data element may be written with, as they appear in the file.
_PIXEL_DATA_VRS = frozenset(vr.encode() for vr in BYTES_VR)


def looks_like_dicom(head: bytes) -> bool:
    """True for a Part 10 file (preamble + ``DICM``) or a bare dataset whose first element is
    in group 0002 or 0008, little or big endian (old ACR-NEMA style files without meta)."""
    if head[_PREAMBLE : _PREAMBLE + 4] == b"DICM":
        return True
    if len(head) < 8:
        return False
    little, big = struct.unpack("<H", head[:2])[0], struct.unpack(">H", head[:2])[0]
    return little in _KNOWN_FIRST_GROUPS or big in _KNOWN_FIRST_GROUPS


def read_dataset(fp: BinaryIO, size: int | None = None) -> Dataset:
    """Parse a DICOM file's header (everything but the pixel data) from an open binary file.

    Raises :class:`InvalidDicomFileError` with a one-line reason when the content is not
    DICOM, the header is malformed, the file is truncated or it is a DICOMDIR.
    """
    if size is None:
        size = fp.seek(0, os.SEEK_END)
        fp.seek(0)
    head = fp.read(_PREAMBLE + 4)
    fp.seek(0)
    if not looks_like_dicom(head):
        raise InvalidDicomFileError(
            "not a DICOM file: no 'DICM' prefix at byte 128 and no DICOM data element at byte 0"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
        pixel_data_start = fp.tell()
    except Exception as exc:
        raise InvalidDicomFileError(f"malformed DICOM: {type(exc).__name__}: {exc}") from exc
    if len(dataset) == 0:
        raise InvalidDicomFileError("not a DICOM file: no data elements could be read")
    if dataset.file_meta.get("MediaStorageSOPClassUID") == MediaStorageDirectoryStorage:
        raise InvalidDicomFileError("DICOMDIR (media storage directory), not an image: skipped")
    if dataset.file_meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        _check_complete(fp, dataset, pixel_data_start, size)
    return dataset


def _check_complete(fp: BinaryIO, dataset: Dataset, pixel_data_start: int, size: int) -> None:
    """Raise if an element read lazily, or the pixel data, extends past the end of file."""
    for element in dataset._dict.values():
        if not isinstance(element, RawDataElement) or element.length == _UNDEFINED_LENGTH:
            continue
        if element.value_tell + element.length > size:
            raise InvalidDicomFileError(
                f"truncated: element ({element.tag.group:04X},{element.tag.element:04X}) "
                f"needs {element.value_tell + element.length} bytes, file has {size}"
            )
    if pixel_data_start >= size:
        return
    little = dataset.original_encoding[1] is not False
    fp.seek(pixel_data_start)
    head = fp.read(12)
    end = "<" if little else ">"
    if len(head) < 8:
        raise InvalidDicomFileError(f"truncated: pixel data element header cut at byte {size}")
    # Some writers encode the pixel data element in implicit VR inside an explicit VR dataset;
    # like pydicom, look at the bytes rather than trust the transfer syntax.
    if head[4:6] in _PIXEL_DATA_VRS:
        length = struct.unpack(end + "L", head[8:12])[0]
        value_start = pixel_data_start + 12
    else:
        length = struct.unpack(end + "L", head[4:8])[0]
        value_start = pixel_data_start + 8
    if length != _UNDEFINED_LENGTH:
        if value_start + length > size:
            raise InvalidDicomFileError(
                f"truncated: pixel data needs {value_start + length} bytes, file has {size}"
            )
        return
    _check_fragments(fp, value_start, size, end)


def _check_fragments(fp: BinaryIO, position: int, size: int, end: str) -> None:
    """Walk the items of encapsulated pixel data up to the sequence delimiter."""
    while True:
        fp.seek(position)
        head = fp.read(8)
        if len(head) < 8:
            raise InvalidDicomFileError("truncated: encapsulated pixel data has no end delimiter")
        group, elem, length = struct.unpack(end + "HHL", head)
        tag = group << 16 | elem
        if tag == _SEQUENCE_DELIMITER:
            return
        if tag != _ITEM or position + 8 + length > size:
            raise InvalidDicomFileError(
                f"truncated or malformed encapsulated pixel data at byte {position}"
            )
        position += 8 + length


@dataclass
class HeaderRecord:
    """What one file contributes to a DICOM table: typed values (aligned with
    :attr:`HeaderColumns.names`), the DICOM JSON ``meta``, warnings about values that did not
    parse, and ``error``: why the file could not be read at all (then the rest is empty)."""

    values: list[Any]
    meta: str | None
    warnings: list[str]
    error: str | None = None

    @classmethod
    def failed(cls, columns: HeaderColumns, error: str) -> HeaderRecord:
        return cls([None] * len(columns.names), None, [], error)


def read_header(
    fp: BinaryIO, columns: HeaderColumns, source_uri: str = "", size: int | None = None
) -> HeaderRecord:
    """Read one file's header into a :class:`HeaderRecord`. Never raises for bad content:
    a file that is not DICOM, truncated or malformed gives a record with ``error`` set."""
    try:
        dataset = read_dataset(fp, size)
    except InvalidDicomFileError as exc:
        return HeaderRecord.failed(columns, str(exc))
    except Exception as exc:  # noqa: BLE001 - a reader bug must not kill the query either
        return HeaderRecord.failed(columns, f"unreadable: {type(exc).__name__}: {exc}")
    return dataset_record(dataset, columns, source_uri)


def dataset_record(dataset: Dataset, columns: HeaderColumns, source_uri: str = "") -> HeaderRecord:
    """The :class:`HeaderRecord` of a dataset read already (a file's, or a PACS's answer to
    a query). Never raises for bad content."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns on invalid values; we report them
            model, invalid = dataset_model(dataset, source_uri)
        values, problems = columns.values(model, invalid)
    except InvalidDicomFileError as exc:
        return HeaderRecord.failed(columns, str(exc))
    except Exception as exc:  # noqa: BLE001 - a reader bug must not kill the query either
        return HeaderRecord.failed(columns, f"unreadable: {type(exc).__name__}: {exc}")
    typed_tags = {f"{a.tag:08X}" for a in columns.attributes}
    left_out = sorted(key for key in invalid if key not in typed_tags)
    if left_out:
        problems.append(f"meta: left out invalid element(s) {', '.join(left_out)}")
    return HeaderRecord(values, model_json(model), problems)

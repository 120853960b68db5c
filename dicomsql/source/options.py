"""Options of the ``dicom`` data source, defined once: name, default, help and parser.

Spark hands options over as strings with case-insensitive keys; :func:`parse_options` turns
them into a :class:`DicomOptions` and rejects unknown names and bad values with an error
naming the option.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping

from ..errors import DicomsqlError

__all__ = ["DicomOptions", "OPTIONS", "parse_options"]

MODES = ("PERMISSIVE", "DROPMALFORMED", "FAILFAST")


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError("expected true or false")
    return lowered == "true"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("expected a positive integer")
    return value


def _mode(text: str) -> str:
    mode = text.strip().upper()
    if mode not in MODES:
        raise ValueError(f"expected one of {', '.join(MODES)}")
    return mode


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str


OPTIONS: tuple[Option, ...] = (
    Option("path", None, "A DICOM file or a directory of them (required)."),
    Option(
        "recursiveFileLookup", True, "Read files in subdirectories too.", _boolean
    ),
    Option("pathGlobFilter", None, "Only read files whose name matches this glob, e.g. '*.dcm'."),
    Option(
        "mode",
        "PERMISSIVE",
        "What a bad file does: PERMISSIVE gives a row with the error in the corrupt record "
        "column, DROPMALFORMED drops it, FAILFAST fails the query naming the file.",
        _mode,
    ),
    Option(
        "columnNameOfCorruptRecord",
        "_corrupt_record",
        "Name of the column that says why a file could not be read (null when it could).",
    ),
    Option(
        "maxFilesPerPartition",
        None,
        "At most this many files per Spark partition (default: spread over 2 x CPU cores, "
        "at most 2,000 files each).",
        _positive_int,
    ),
    Option("numPartitions", None, "Exactly this many Spark partitions.", _positive_int),
)


@dataclass(frozen=True)
class DicomOptions:
    """Parsed, validated options of one ``dicom`` read."""

    path: str
    recursiveFileLookup: bool
    pathGlobFilter: str | None
    mode: str
    columnNameOfCorruptRecord: str
    maxFilesPerPartition: int | None
    numPartitions: int | None


_BY_LOWER_NAME = {option.name.lower(): option for option in OPTIONS}
assert set(_BY_LOWER_NAME) == {f.name.lower() for f in fields(DicomOptions)}


def parse_options(raw: Mapping[str, str]) -> DicomOptions:
    """Validate the options Spark passes to the ``dicom`` source.

    >>> parse_options({"PATH": "/data", "mode": "failfast"}).mode
    'FAILFAST'
    """
    values: dict[str, Any] = {option.name: option.default for option in OPTIONS}
    for key, text in raw.items():
        option = _BY_LOWER_NAME.get(key.lower())
        if option is None:
            known = ", ".join(o.name for o in OPTIONS)
            raise DicomsqlError(f"dicom source: unknown option {key!r}; known options: {known}")
        try:
            values[option.name] = option.parse(text)
        except ValueError as exc:
            raise DicomsqlError(f"dicom source: option {option.name}={text!r}: {exc}") from None
    if not values.get("path"):
        raise DicomsqlError(
            "dicom source: option path is required, e.g. "
            "CREATE TEMPORARY VIEW ct USING dicom OPTIONS (path '/data/ct')"
        )
    return DicomOptions(**values)

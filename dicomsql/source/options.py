"""Options of the ``dicom`` data source, defined once: name, default, help and parser.

Spark hands options over as strings with case-insensitive keys; :func:`parse_options` turns
them into a :class:`DicomOptions` and rejects unknown names and bad values with an error
naming the option.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..errors import DicomsqlError

__all__ = ["DicomOptions", "OPTIONS", "parse_options"]

MODES = ("PERMISSIVE", "DROPMALFORMED", "FAILFAST")
PIXELS = ("none", "bytes")


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


def _choice(choices: tuple[str, ...], normalise: Callable[[str], str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = normalise(text.strip())
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value

    return parse


def _timestamp(text: str) -> float:
    """``YYYY-MM-DDTHH:mm:ss`` (UTC unless it carries an offset) as epoch seconds."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError("expected a timestamp like 2024-06-01T13:00:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


_TAG_LIST_ITEM = re.compile(r"\s*\([^)]*\)|[^,]+")  # commas inside (GGGG,EEEE) do not split


def _tags(text: str) -> str | tuple[str, ...]:
    """``core``, ``all``, or a comma list of keywords and tags (checked by the source)."""
    value = text.strip()
    if value.lower() in ("core", "all"):
        return value.lower()
    items = tuple(item.strip() for item in _TAG_LIST_ITEM.findall(value) if item.strip())
    if not items:
        raise ValueError("expected core, all, or a comma-separated list of keywords or tags")
    return items


def _path_list(text: str) -> tuple[str, ...]:
    """``path``: one path, or several separated by commas (unless a local path of that
    whole name exists)."""
    if "," in text and not os.path.lexists(os.path.expanduser(text)):
        return tuple(item.strip() for item in text.split(",") if item.strip())
    return (text.strip(),)


def _json_path_list(text: str) -> tuple[str, ...]:
    """``paths``: the JSON list Spark passes for ``load([path, ...])``."""
    values = json.loads(text)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError("expected a JSON list of paths")
    return tuple(values)


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str


OPTIONS: tuple[Option, ...] = (
    Option(
        "path", (),
        "A DICOM file, a directory (read recursively) or a glob; several separated by commas. "
        "Local paths or URIs pyarrow can open (s3://, gs://, hdfs://).",
        _path_list,
    ),
    Option("paths", (), "Set by Spark for load([path, ...]); same as path.", _json_path_list),
    Option(
        "files", (),
        "A JSON list of files to read exactly (no folders, no globs): a file missing or "
        "outside the data roots is a row saying so. dicomsql ingest uses it.",
        _json_path_list,
    ),
    Option("recursiveFileLookup", True, "Read files in subdirectories too.", _boolean),
    Option("pathGlobFilter", None, "Only read files whose name matches this glob, e.g. '*.dcm'."),
    Option("modifiedAfter", None, "Only files modified after this time (2024-06-01T13:00:00, UTC unless an offset is given).", _timestamp),
    Option("modifiedBefore", None, "Only files modified before this time (same format).", _timestamp),
    Option(
        "tags", "core",
        "Typed columns: core (the standard set), all (every standard attribute present in a "
        "sample of the files), or a comma list of keywords and tags.",
        _tags,
    ),
    Option("sampleSize", 200, "How many files tags=all samples to find the attributes present.", _positive_int),
    Option(
        "pixels", "none",
        "none: headers only, pixel data never read; bytes: also a content BINARY column "
        "holding the whole file, for pixel functions where executors cannot open the path "
        "(a file larger than the server's --max-file-size is a row with the error instead).",
        _choice(PIXELS, str.lower),
    ),
    Option(
        "mode", "PERMISSIVE",
        "What a bad file does: PERMISSIVE gives a row with the error in the corrupt record "
        "column, DROPMALFORMED drops it, FAILFAST fails the query naming the file.",
        _choice(MODES, str.upper),
    ),
    Option(
        "columnNameOfCorruptRecord", "_corrupt_record",
        "Name of the column that says why a file could not be read (null when it could).",
    ),
    Option(
        "maxFilesPerPartition", None,
        "At most this many files per Spark partition (default: spread over 2 x CPU cores, "
        "at most 2,000 files each).",
        _positive_int,
    ),
    Option("numPartitions", None, "Exactly this many Spark partitions.", _positive_int),
    Option(
        "pushdown", False,
        "Evaluate filters on path, size and modificationTime on the file listing, so filtered-out "
        "files are never opened. Spark 4.3 reuses the last pushed-down plan of a view for a "
        "later query without any filter, so this is only safe behind a view that always filters: "
        "dicomsql's views (dicom_view_sql, --table) set it and add WHERE path IS NOT NULL.",
        _boolean,
    ),
)


@dataclass(frozen=True)
class DicomOptions:
    """Parsed, validated options of one ``dicom`` read (``paths`` joins path and paths;
    ``files`` are read exactly)."""

    paths: tuple[str, ...]
    files: tuple[str, ...]
    recursiveFileLookup: bool
    pathGlobFilter: str | None
    modifiedAfter: float | None
    modifiedBefore: float | None
    tags: str | tuple[str, ...]
    sampleSize: int
    pixels: str
    mode: str
    columnNameOfCorruptRecord: str
    maxFilesPerPartition: int | None
    numPartitions: int | None
    pushdown: bool


_BY_LOWER_NAME = {option.name.lower(): option for option in OPTIONS}


def parse_options(raw: Mapping[str, str]) -> DicomOptions:
    """Validate the options Spark passes to the ``dicom`` source.

    >>> parse_options({"PATH": "/data/a, /data/b", "mode": "failfast"}).paths
    ('/data/a', '/data/b')
    """
    values: dict[str, Any] = {option.name: option.default for option in OPTIONS}
    for key, text in raw.items():
        option = _BY_LOWER_NAME.get(key.lower())
        if option is None:
            known = ", ".join(o.name for o in OPTIONS if o.name not in ("paths", "files"))
            raise DicomsqlError(f"dicom source: unknown option {key!r}; known options: {known}")
        try:
            values[option.name] = option.parse(text)
        except ValueError as exc:
            raise DicomsqlError(f"dicom source: option {option.name}={text!r}: {exc}") from None
    paths = values.pop("path") + values.pop("paths")
    if not paths and not values["files"]:
        raise DicomsqlError(
            "dicom source: option path is required, e.g. "
            "CREATE TEMPORARY VIEW ct USING dicom OPTIONS (path '/data/ct')"
        )
    return DicomOptions(paths=paths, **values)

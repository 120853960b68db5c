"""Options of the ``dicom`` data source, defined once: name, default, help and parser.

Spark hands options over as strings with case-insensitive keys; :func:`parse_options` turns
them into a :class:`DicomOptions` and rejects unknown names and bad values with an error
naming the option (:func:`dicomsql.options.parse`). Spark's own keys (``path``, and ``paths``
for ``load([...])``) are options of the table. :data:`IMAGE_OPTIONS` are ``dicom_image``'s,
read by :func:`image_options`.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import DicomsqlError
from ..options import Option, boolean, choice, integer, number, parse

__all__ = ["DicomOptions", "OPTIONS", "parse_options", "IMAGE_OPTIONS", "image_options"]

MODES = ("PERMISSIVE", "DROPMALFORMED", "FAILFAST")
PIXELS = ("none", "bytes")


def _timestamp(text: str) -> float:
    """``YYYY-MM-DDTHH:mm:ss`` (UTC unless it carries an offset) as epoch seconds."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError("a timestamp like 2024-06-01T13:00:00") from None
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
        raise ValueError("core, all, or a comma-separated list of keywords or tags")
    return items


def _path_list(text: str) -> tuple[str, ...]:
    """``path``: one path, or several separated by commas (unless a local path of that
    whole name exists)."""
    if "," in text and not os.path.lexists(os.path.expanduser(text)):
        return tuple(item.strip() for item in text.split(",") if item.strip())
    return (text.strip(),)


def _json_path_list(text: str) -> tuple[str, ...]:
    """``paths``: the JSON list Spark passes for ``load([path, ...])``."""
    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError("a JSON list of paths")
    return tuple(values)


OPTIONS: tuple[Option, ...] = (
    Option(
        "path",
        (),
        "Required (or files): a DICOM file, a directory (read recursively) or a glob; several separated "
        "by commas (or load([...])). Local paths or URIs pyarrow opens (s3://, gs://, hdfs://, "
        "file://) where the cluster has credentials.",
        parse=_path_list,
    ),
    Option(
        "paths", (), "Set by Spark for load([path, ...]); joined to path.", parse=_json_path_list
    ),
    Option(
        "files",
        (),
        "A JSON list of files to read exactly (no folders, no globs): a file missing or "
        "outside the data roots is a row saying so. dicomsql ingest uses it.",
        parse=_json_path_list,
    ),
    Option(
        "tags",
        "core",
        "Typed columns: core (the standard set); all (every standard attribute present in a "
        "sample of the files, sorted, stable for the same files); or a comma list of keywords "
        "and tags, e.g. 'PatientAge, (0018,0050), 00280030' (private tags are read with dicom_tag).",
        parse=_tags,
    ),
    Option(
        "sampleSize",
        200,
        "How many files tags 'all' samples (spread evenly over the listing) to find the attributes present.",
        parse=integer(1),
    ),
    Option(
        "pixels",
        "none",
        "none: headers only, pixel data never read; bytes: also a content BINARY column "
        "holding the whole file, for pixel functions where executors cannot open the path "
        "(a file larger than the server's --max-file-size is a row with the error instead).",
        parse=choice(*PIXELS),
    ),
    Option("recursiveFileLookup", True, "Read files in subdirectories too.", parse=boolean),
    Option("pathGlobFilter", None, "Only read files whose name matches this glob, e.g. '*.dcm'."),
    Option(
        "modifiedAfter",
        None,
        "Only files modified after this time (2024-06-01T13:00:00, UTC unless an offset is given).",
        parse=_timestamp,
    ),
    Option(
        "modifiedBefore",
        None,
        "Only files modified before this time (same format).",
        parse=_timestamp,
    ),
    Option(
        "mode",
        "PERMISSIVE",
        "What a bad file does: PERMISSIVE gives a row with the error in the corrupt record "
        "column, DROPMALFORMED drops it, FAILFAST fails the query naming the file.",
        parse=choice(*MODES, normalise=str.upper),
    ),
    Option(
        "columnNameOfCorruptRecord",
        "_corrupt_record",
        "Name of the column that says why a file could not be read (NULL when it could).",
    ),
    Option(
        "maxFilesPerPartition",
        None,
        "At most this many files per Spark partition (default: spread over 2 x CPU cores, "
        "at most 2,000 files each).",
        parse=integer(1),
    ),
    Option("numPartitions", None, "Exactly this many Spark partitions.", parse=integer(1)),
    Option(
        "pushdown",
        False,
        "Evaluate filters on path, size and modificationTime on the file listing, so filtered-out "
        "files are never opened. Spark 4.3 reuses the last pushed-down plan of a view for a "
        "later query without any filter, so this is only safe behind a view that always filters: "
        "dicomsql's views (dicom_view_sql, --table) set it and add WHERE path IS NOT NULL.",
        parse=boolean,
    ),
    Option(
        "maxFilesPerTrigger",
        None,
        "Streaming (readStream): at most this many new files per micro-batch (default: all).",
        parse=integer(1),
    ),
    Option(
        "settleSeconds",
        5.0,
        "Streaming: a file modified less than this many seconds ago waits for a later "
        "micro-batch (it may still be being written).",
        parse=number(0.0),
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
    maxFilesPerTrigger: int | None
    settleSeconds: float


def parse_options(raw: Mapping[str, str]) -> DicomOptions:
    """Validate the options Spark passes to the ``dicom`` source: an unknown name or a bad
    value is an :class:`~dicomsql.options.OptionError` naming it.

    >>> parse_options({"PATH": "/data/a, /data/b", "mode": "failfast"}).paths
    ('/data/a', '/data/b')
    >>> parse_options({"path": "/data", "mdoe": "FAILFAST"})
    Traceback (most recent call last):
    dicomsql.options.OptionError: dicom source: unknown option 'mdoe' (known: path, paths, files, tags, ...
    """
    values = parse(raw, OPTIONS, where="dicom source")
    paths = values.pop("path") + values.pop("paths")
    if not paths and not values["files"]:
        raise DicomsqlError(
            "dicom source: option path is required, e.g. "
            "CREATE TEMPORARY VIEW ct USING dicom OPTIONS (path '/data/ct')"
        )
    return DicomOptions(paths=paths, **values)


IMAGE_OPTIONS: tuple[Option, ...] = (
    Option(
        "invert",
        False,
        "Mirror the values within their range, e.g. to show a MONOCHROME1 image the usual way.",
        parse=boolean,
    ),
    Option(
        "mode",
        "PERMISSIVE",
        "What a file that cannot be decoded does: PERMISSIVE gives NULL data and the reason in "
        "error, FAILFAST fails the query.",
        parse=choice("PERMISSIVE", "FAILFAST", normalise=str.upper),
    ),
)
"""The options map of ``dicom_image``: how one file's pixels are read."""


def image_options(given: Mapping[str, str] | None) -> dict[str, Any]:
    """``dicom_image``'s options map (None: the defaults) as values; an unknown key or a bad
    value raises :class:`~dicomsql.options.OptionError` (a ``ValueError``) naming it.

    >>> image_options({"Mode": "failfast"})
    {'invert': False, 'mode': 'FAILFAST'}
    """
    return parse(given, IMAGE_OPTIONS)

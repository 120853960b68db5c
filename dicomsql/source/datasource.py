"""The ``dicom`` Spark data source: one row per file, typed header columns, DICOM JSON.

Usage::

    spark.read.format("dicom").load("/data/ct")
    spark.sql("CREATE TEMPORARY VIEW ct USING dicom OPTIONS (path '/data/ct', tags 'all')")

A stream of the files that arrive in the folders::

    spark.readStream.format("dicom").option("path", "/data/incoming").load()

Rows written back as DICOM files (:mod:`dicomsql.source.writer`)::

    df.write.format("dicom").save("/exports/cohort")

Planning runs once on the driver: the schema (with ``tags 'all'``, from a sample of the
files), then the file listing, filtered by what Spark pushes down on ``path``, ``size`` and
``modificationTime``, split into partitions. Each partition reads its files with
:func:`dicomsql.dicom.header.read_header` and sends rows to Spark as Arrow record batches.
"""

from __future__ import annotations

import io
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from pyspark.sql.datasource import (
    DataSource,
    DataSourceReader,
    DataSourceStreamReader,
    DataSourceWriter,
    Filter,
    InputPartition,
)
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxFiles,
    SupportsTriggerAvailableNow,
)
from pyspark.sql.types import StructType

from ..dicom.dicomjson import dataset_model
from ..dicom.header import HeaderColumns, HeaderRecord, read_dataset, read_header
from ..errors import DicomsqlError, FileTooLargeError, InvalidDicomFileError
from ..storage import FileEntry, check_paths, list_files, open_file, shown_path
from .filters import file_values, matches, pushable
from .options import DicomOptions, parse_options

if TYPE_CHECKING:
    import pyarrow

__all__ = ["DicomDataSource", "DicomStreamReader", "TableLayout"]

#: Rows per Arrow record batch sent to Spark.
BATCH_ROWS = 256
#: Default upper bound of files per partition when neither partition option is given.
DEFAULT_MAX_FILES_PER_PARTITION = 2000

_FILE_FIELDS = (("path", "STRING"), ("size", "BIGINT"), ("modificationTime", "TIMESTAMP"))
_CONTENT_FIELD = ("content", "BINARY")


@dataclass(frozen=True)
class TableLayout:
    """The columns of a DICOM table: file columns, ``content`` (with ``pixels 'bytes'``), the
    typed header columns, then ``meta``, ``_warnings`` and the corrupt record column."""

    columns: HeaderColumns
    content: bool = False
    corrupt_column: str = "_corrupt_record"

    def fields(self) -> list[tuple[str, str]]:
        """(name, Spark DDL type) of every column, in order."""
        return [
            *_FILE_FIELDS,
            *([_CONTENT_FIELD] if self.content else []),
            *zip(self.columns.names, self.columns.ddl),
            ("meta", "STRING"),
            ("_warnings", "ARRAY<STRING>"),
            (self.corrupt_column, "STRING"),
        ]

    def ddl(self) -> str:
        return ", ".join(f"`{name}` {ddl}" for name, ddl in self.fields())

    @classmethod
    def from_field_names(cls, names: Sequence[str], corrupt_column: str) -> TableLayout:
        """The layout whose :meth:`fields` have these names; ``ValueError`` when none has."""
        content = len(names) > 3 and names[3] == _CONTENT_FIELD[0]
        typed = [n for n in names[3 + content : -3] if n != "PatientAgeYears"]
        try:
            layout = cls(HeaderColumns.of(typed), content, corrupt_column)
        except (KeyError, ValueError):
            layout = None
        if layout is None or [name for name, _ in layout.fields()] != list(names):
            raise ValueError("not the columns of a DICOM table")
        return layout


@dataclass(frozen=True)
class FilesPartition(InputPartition):
    """A slice of the table's files, read by one Spark task."""

    index: int
    files: tuple[FileEntry, ...]


def plan_partitions(files: Sequence[FileEntry], options: DicomOptions) -> list[FilesPartition]:
    """Split ``files`` (in order) into contiguous partitions of near-equal size.

    ``numPartitions`` wins; else ``maxFilesPerPartition`` bounds the size; else the files are
    spread over twice the driver's CPU count, with at most 2,000 files per partition.
    """
    if not files:
        return [FilesPartition(0, ())]
    if options.numPartitions:
        count = options.numPartitions
    elif options.maxFilesPerPartition:
        count = math.ceil(len(files) / options.maxFilesPerPartition)
    else:
        count = max(
            2 * (os.cpu_count() or 1), math.ceil(len(files) / DEFAULT_MAX_FILES_PER_PARTITION)
        )
    count = max(1, min(count, len(files)))
    bounds = [round(i * len(files) / count) for i in range(count + 1)]
    return [FilesPartition(i, tuple(files[bounds[i] : bounds[i + 1]])) for i in range(count)]


def _list(options: DicomOptions) -> list[FileEntry]:
    return list_files(
        options.paths,
        options.recursiveFileLookup,
        options.pathGlobFilter,
        options.modifiedAfter,
        options.modifiedBefore,
        options.files,
    )


def _sample(files: Sequence[FileEntry], size: int) -> list[FileEntry]:
    """Up to ``size`` files spread evenly over ``files`` (deterministic)."""
    if len(files) <= size:
        return list(files)
    return [files[i * len(files) // size] for i in range(size)]


def _sampled_models(files: Iterable[FileEntry]) -> list[dict]:
    models = []
    for entry in files:
        if entry.error:
            continue
        try:
            with open_file(entry.path) as fp:
                models.append(dataset_model(read_dataset(fp, entry.size))[0])
        except Exception:  # noqa: BLE001 - a bad file contributes no columns, nothing else
            continue
    return models


class DicomDataSource(DataSource):
    """Spark data source ``dicom``: a folder of DICOM files as a table (see module docs)."""

    @cached_property
    def parsed(self) -> DicomOptions:
        return parse_options(self.options)

    @classmethod
    def name(cls) -> str:
        return "dicom"

    def _columns(self) -> HeaderColumns:
        tags = self.parsed.tags
        if tags == "core":
            return HeaderColumns.core()
        if tags == "all":
            sample = _sample(_list(self.parsed), self.parsed.sampleSize)
            return HeaderColumns.present_in(_sampled_models(sample))
        try:
            return HeaderColumns.named(tags)
        except ValueError as exc:
            raise DicomsqlError(f"dicom source: option tags: {exc}") from None

    def schema(self) -> str:
        check_paths(self.parsed.paths)  # fail at CREATE VIEW, not at the first query
        layout = TableLayout(
            self._columns(), self.parsed.pixels == "bytes", self.parsed.columnNameOfCorruptRecord
        )
        corrupt = layout.corrupt_column
        if not corrupt or "`" in corrupt or corrupt in [name for name, _ in layout.fields()[:-1]]:
            raise DicomsqlError(
                f"dicom source: option columnNameOfCorruptRecord={corrupt!r} must be a new "
                f"column name without backticks"
            )
        return layout.ddl()

    def _layout(self, schema: StructType) -> TableLayout:
        try:
            return TableLayout.from_field_names(
                schema.fieldNames(), self.parsed.columnNameOfCorruptRecord
            )
        except ValueError:
            raise DicomsqlError(
                "dicom source: the schema comes from the files and the options (tags, pixels); "
                "a user-specified schema is not supported (select the columns you need instead)"
            ) from None

    def reader(self, schema: StructType) -> DicomReader:
        return DicomReader(self.parsed, self._layout(schema), schema)

    def streamReader(self, schema: StructType) -> DicomStreamReader:
        return DicomStreamReader(DicomReader(self.parsed, self._layout(schema), schema))

    def writer(self, schema: StructType, overwrite: bool) -> DataSourceWriter:
        from .writer import DicomWriter, writer_options

        return DicomWriter(*writer_options(self.options, overwrite))


@dataclass
class DicomReader(DataSourceReader):
    """Plans partitions of files (applying pushed-down filters) and reads them into Arrow
    record batches."""

    options: DicomOptions
    layout: TableLayout
    schema: StructType
    filters: list[Filter] = field(default_factory=list)

    def pushFilters(self, filters: list[Filter]) -> Iterator[Filter]:
        """Keep the filters the listing can evaluate (with the ``pushdown`` option)."""
        self.filters = [f for f in filters if self.options.pushdown and pushable(f)]
        for filter_ in filters:
            if filter_ not in self.filters:
                yield filter_

    def partitions(self) -> list[FilesPartition]:
        files = [entry for entry in _list(self.options) if self._wanted(entry)]
        return plan_partitions(files, self.options)

    def _wanted(self, entry: FileEntry) -> bool:
        if not self.filters:
            return True
        return matches(
            self.filters,
            file_values(_displayable(entry.path)[0], entry.size, entry.modified_micros),
        )

    def read(self, partition: FilesPartition) -> Iterator[pyarrow.RecordBatch]:
        from pyspark.sql.pandas.types import to_arrow_schema

        batches = _BatchBuilder(to_arrow_schema(self.schema, timezone="UTC"))
        for entry in partition.files:
            path, path_warnings = _displayable(entry.path)
            content, record = _read_file(entry, self.layout, path)
            if record.error is not None:
                if self.options.mode == "FAILFAST":
                    raise InvalidDicomFileError(
                        f"dicom source (mode FAILFAST): {shown_path(path)}: "
                        f"{record.error.replace(path, shown_path(path))}"
                    )
                if self.options.mode == "DROPMALFORMED":
                    continue
            warnings = path_warnings + record.warnings
            batches.add(
                [
                    path,
                    entry.size,
                    entry.modified_micros,
                    *([content] if self.layout.content else []),
                    *record.values,
                    record.meta,
                    warnings or None,
                    record.error,
                ]
            )
            if batches.rows >= BATCH_ROWS:
                yield batches.flush()
        if batches.rows:
            yield batches.flush()


#: A file's place in a stream: (modification time in microseconds, path).
Key = tuple[int, str]
_BEFORE_ALL: Key = (-1, "")


def _key(entry: FileEntry) -> Key:
    micros = entry.modified_micros
    return (-1 if micros is None else micros, entry.path)


def _offset(key: Key) -> dict:
    return {"modified": key[0], "path": key[1]}


def _key_of(offset: dict) -> Key:
    return (int(offset["modified"]), str(offset["path"]))


class DicomStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """The files of the folders as a stream (``spark.readStream.format("dicom")``), each
    file once, in the order of (modification time, path).

    An offset is the key of the last file taken, and a micro-batch reads the files after its
    start up to its end, so a query restarted from its checkpoint reads no file twice and
    skips none of those it had not read. A file modified less than ``settleSeconds`` ago
    waits (it may still be being written). A file that appears with a modification time
    older than one already taken (copied with its times kept, as ``cp -p`` and ``rsync -t``
    do) is not read: give it a fresh time (``touch``), or refresh a catalog, which compares
    every path. ``maxFilesPerTrigger`` bounds a micro-batch; ``Trigger.AvailableNow`` reads
    what is there at the start, then stops.
    """

    def __init__(self, batch: DicomReader) -> None:
        self.batch, self.options = batch, batch.options
        self._target: Key | None = None

    def _settled(self) -> list[FileEntry]:
        """The listed files not modified within ``settleSeconds``, in key order."""
        newest = (time.time() - self.options.settleSeconds) * 1_000_000
        files = [entry for entry in _list(self.options) if _key(entry)[0] <= newest]
        return sorted(files, key=_key)

    def initialOffset(self) -> dict:
        return _offset(_BEFORE_ALL)

    def getDefaultReadLimit(self) -> ReadLimit:
        limit = self.options.maxFilesPerTrigger
        return ReadMaxFiles(limit) if limit else ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        files = self._settled()
        self._target = _key(files[-1]) if files else _BEFORE_ALL

    def latestOffset(self, start: dict, limit: ReadLimit) -> dict:
        after = _key_of(start)
        keys = [key for key in map(_key, self._settled()) if key > after]
        if self._target is not None:
            keys = [key for key in keys if key <= self._target]
        if isinstance(limit, ReadMaxFiles):
            keys = keys[: limit.max_files]
        return _offset(keys[-1]) if keys else start

    def partitions(self, start: dict, end: dict) -> list[FilesPartition]:
        after, last = _key_of(start), _key_of(end)
        files = [entry for entry in self._settled() if after < _key(entry) <= last]
        return plan_partitions(files, self.options)

    def read(self, partition: FilesPartition) -> Iterator[pyarrow.RecordBatch]:
        return self.batch.read(partition)

    def commit(self, end: dict) -> None:
        """Nothing to release: the files stay where they are."""


def _read_file(
    entry: FileEntry, layout: TableLayout, path: str
) -> tuple[bytes | None, HeaderRecord]:
    """The file's bytes (when the layout has ``content``: not for a file larger than the size
    limit) and its header record."""
    if entry.error:
        return None, HeaderRecord.failed(layout.columns, entry.error)
    try:
        with open_file(entry.path, limited=layout.content) as fp:
            if not layout.content:
                return None, read_header(fp, layout.columns, source_uri=path, size=entry.size)
            content = fp.read()
    except FileTooLargeError as exc:
        return None, HeaderRecord.failed(layout.columns, str(exc))
    except (OSError, DicomsqlError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return None, HeaderRecord.failed(layout.columns, f"cannot open: {reason}")
    return content, read_header(
        io.BytesIO(content), layout.columns, source_uri=path, size=len(content)
    )


def _displayable(path: str) -> tuple[str, list[str]]:
    """``path`` as valid UTF-8 text (file names are bytes on POSIX), and a warning when the
    name had to be changed for that."""
    try:
        path.encode("utf-8")
        return path, []
    except UnicodeEncodeError:
        shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return shown, ["path: the file name is not valid UTF-8; shown with replacement characters"]


class _BatchBuilder:
    """Accumulates rows column by column and emits Arrow record batches of a schema."""

    def __init__(self, arrow_schema: pyarrow.Schema) -> None:
        self.arrow_schema = arrow_schema
        self._reset()

    def _reset(self) -> None:
        self.data: list[list] = [[] for _ in self.arrow_schema]
        self.rows = 0

    def add(self, row: list) -> None:
        for column, value in zip(self.data, row):
            column.append(value)
        self.rows += 1

    def flush(self) -> pyarrow.RecordBatch:
        import pyarrow as pa

        arrays = [
            pa.array(values, type=field.type) for values, field in zip(self.data, self.arrow_schema)
        ]
        self._reset()
        return pa.RecordBatch.from_arrays(arrays, schema=self.arrow_schema)

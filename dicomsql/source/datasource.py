"""The ``dicom`` Spark data source: one row per file, typed header columns, DICOM JSON.

Usage::

    spark.read.format("dicom").load("/data/ct")
    spark.sql("CREATE TEMPORARY VIEW ct USING dicom OPTIONS (path '/data/ct')")

The planning (listing files, splitting them into partitions) runs once on the driver; each
partition reads its files with :func:`dicomsql.dicom.header.read_header` and sends rows to
Spark as Arrow record batches.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition
from pyspark.sql.types import StructType

from ..dicom.header import HeaderColumns, HeaderRecord, read_header
from ..errors import DicomsqlError, InvalidDicomFileError
from .listing import FileEntry, list_files
from .options import DicomOptions, parse_options

__all__ = ["DicomDataSource", "table_columns", "table_ddl"]

#: Rows per Arrow record batch sent to Spark.
BATCH_ROWS = 256
#: Default upper bound of files per partition when neither partition option is given.
DEFAULT_MAX_FILES_PER_PARTITION = 2000


def table_columns(columns: HeaderColumns, corrupt_column: str = "_corrupt_record") -> list[tuple[str, str]]:
    """The (name, Spark DDL type) columns of a DICOM table with these typed columns."""
    return [
        ("path", "STRING"), ("size", "BIGINT"), ("modificationTime", "TIMESTAMP"),
        *zip(columns.names, columns.ddl),
        ("meta", "STRING"), ("_warnings", "ARRAY<STRING>"), (corrupt_column, "STRING"),
    ]


def table_ddl(columns: HeaderColumns, corrupt_column: str = "_corrupt_record") -> str:
    """The Spark DDL schema of a DICOM table with these typed columns."""
    return ", ".join(f"`{name}` {ddl}" for name, ddl in table_columns(columns, corrupt_column))


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
        count = max(2 * (os.cpu_count() or 1), math.ceil(len(files) / DEFAULT_MAX_FILES_PER_PARTITION))
    count = max(1, min(count, len(files)))
    bounds = [round(i * len(files) / count) for i in range(count + 1)]
    return [FilesPartition(i, tuple(files[bounds[i] : bounds[i + 1]])) for i in range(count)]


class DicomDataSource(DataSource):
    """Spark data source ``dicom``: a folder of DICOM files as a table (see module docs)."""

    def __init__(self, options: dict[str, str]) -> None:
        super().__init__(options)
        self.parsed = parse_options(options)
        self.columns = HeaderColumns.core()
        corrupt = self.parsed.columnNameOfCorruptRecord
        other_names = [name for name, _ in table_columns(self.columns)][:-1]
        if not corrupt or "`" in corrupt or corrupt in other_names:
            raise DicomsqlError(
                f"dicom source: option columnNameOfCorruptRecord={corrupt!r} must be a new "
                f"column name without backticks"
            )

    @classmethod
    def name(cls) -> str:
        return "dicom"

    def schema(self) -> str:
        return table_ddl(self.columns, self.parsed.columnNameOfCorruptRecord)

    def reader(self, schema: StructType) -> "DicomReader":
        expected = [name for name, _ in table_columns(self.columns, self.parsed.columnNameOfCorruptRecord)]
        if schema.fieldNames() != expected:
            raise DicomsqlError(
                "dicom source: the schema comes from the files and the options; "
                "a user-specified schema is not supported (select the columns you need instead)"
            )
        return DicomReader(self.parsed, self.columns, schema)


class DicomReader(DataSourceReader):
    """Plans partitions of files and reads them into Arrow record batches."""

    def __init__(self, options: DicomOptions, columns: HeaderColumns, schema: StructType) -> None:
        self.options = options
        self.columns = columns
        self.schema = schema

    def partitions(self) -> list[FilesPartition]:
        files = list_files(self.options.path, self.options.recursiveFileLookup, self.options.pathGlobFilter)
        return plan_partitions(files, self.options)

    def read(self, partition: FilesPartition) -> Iterator["pyarrow.RecordBatch"]:  # noqa: F821
        from pyspark.sql.pandas.types import to_arrow_schema

        batches = _BatchBuilder(to_arrow_schema(self.schema, timezone="UTC"))
        for entry in partition.files:
            path, path_warnings = _displayable(entry.path)
            record = _read_file(entry, self.columns, path)
            if record.error is not None:
                if self.options.mode == "FAILFAST":
                    raise InvalidDicomFileError(f"dicom source (mode FAILFAST): {path}: {record.error}")
                if self.options.mode == "DROPMALFORMED":
                    continue
            record.warnings[:0] = path_warnings
            modified = None if entry.modified is None else round(entry.modified * 1_000_000)
            batches.add([path, entry.size, modified, *record.values, record.meta,
                         record.warnings or None, record.error])
            if batches.rows >= BATCH_ROWS:
                yield batches.flush()
        if batches.rows:
            yield batches.flush()


def _read_file(entry: FileEntry, columns: HeaderColumns, path: str) -> HeaderRecord:
    try:
        with open(entry.path, "rb") as fp:
            return read_header(fp, columns, source_uri=path, size=entry.size)
    except OSError as exc:
        return HeaderRecord.failed(columns, f"cannot open: {exc.strerror or exc}")


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

    def __init__(self, arrow_schema: "pyarrow.Schema") -> None:  # noqa: F821
        self.arrow_schema = arrow_schema
        self._reset()

    def _reset(self) -> None:
        self.data: list[list] = [[] for _ in self.arrow_schema]
        self.rows = 0

    def add(self, row: list) -> None:
        for column, value in zip(self.data, row):
            column.append(value)
        self.rows += 1

    def flush(self) -> "pyarrow.RecordBatch":  # noqa: F821
        import pyarrow as pa

        arrays = [pa.array(values, type=field.type) for values, field in zip(self.data, self.arrow_schema)]
        self._reset()
        return pa.RecordBatch.from_arrays(arrays, schema=self.arrow_schema)

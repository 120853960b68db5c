"""The ``tfrecord`` Spark data source: TFRecord files of ``tf.train.Example`` (or
``SequenceExample``) records as a table, and tables written as TFRecord files, with no
TensorFlow (the format is :mod:`dicomsql.tfrecord`)::

    spark.read.format("tfrecord").load("/data/train")
    spark.sql("CREATE TEMPORARY VIEW t USING tfrecord OPTIONS (path '/data/train')")
    df.write.format("tfrecord").option("compression", "gzip").mode("overwrite").save("/out/train")

The options follow the spark-tensorflow-connector's (``recordType`` ``Example``,
``SequenceExample`` or ``ByteArray``; the schema inferred from the records or given) and
Spark's file sources (``mode``, ``columnNameOfCorruptRecord``, ``pathGlobFilter``...). Every
record's CRCs are checked: a corrupt record is a row saying why in ``_corrupt_record``
(PERMISSIVE), dropped (DROPMALFORMED) or the query's error (FAILFAST). A gzip file is read
as such whatever its name.

A write puts one file (or several: ``records_per_file``) per Spark task in the folder, each
named after its partition, its place in it and a hash of its bytes (a task run again writes the same file),
written whole (:func:`dicomsql.storage.write_file`); ``mode("overwrite")`` then removes the
folder's other ``part-*.tfrecord*`` files. SQL writes with ``tfrecord_export``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pyspark.sql.datasource import (
    DataSource,
    DataSourceArrowWriter,
    DataSourceReader,
    WriterCommitMessage,
)
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    DataType,
    DoubleType,
    FloatType,
    LongType,
    StringType,
    StructType,
)

from .. import tfrecord
from ..errors import DicomsqlError
from ..options import Bound, Option, choice, integer, parse
from ..storage import FileEntry, check_export_allowed, list_files, open_file, shown_path, write_file
from .datasource import BATCH_ROWS, _BatchBuilder, plan_partitions
from .options import OPTIONS as DICOM_OPTIONS

if TYPE_CHECKING:
    import pyarrow

__all__ = ["TfrecordDataSource", "WRITE_OPTIONS", "Shards", "partition_id"]

_SHARED = (
    "path",
    "paths",
    "recursiveFileLookup",
    "pathGlobFilter",
    "mode",
    "columnNameOfCorruptRecord",
    "maxFilesPerPartition",
    "numPartitions",
)


def _record_type_name(text: str) -> str:
    """A record type in any case as its canonical name."""
    return {name.lower(): name for name in tfrecord.RECORD_TYPES}.get(text.lower(), text)


_RECORD_TYPE = Option(
    "recordType",
    "Example",
    "What each record is: Example (tf.train.Example: a column per feature), SequenceExample "
    "(context features, and feature lists as arrays of arrays) or ByteArray (the record's "
    "bytes in a byteArray column).",
    parse=choice(*tfrecord.RECORD_TYPES, normalise=_record_type_name),
)
#: The shared options whose help says something else for TFRecord files.
_HELP = {
    "path": "Required: a TFRecord file, a directory (read recursively) or a glob; several "
    "separated by commas (or load([...])). Local paths or URIs pyarrow opens, within the data roots.",
    "pathGlobFilter": "Only read files whose name matches this glob, e.g. '*.tfrecord'.",
    "mode": "What a corrupt record does: PERMISSIVE gives a row of NULLs with the reason in the "
    "corrupt record column, DROPMALFORMED drops it, FAILFAST fails the query naming the file "
    "and the record.",
    "columnNameOfCorruptRecord": "Name of the column that says why a record could not be read "
    "(NULL when it could); a given schema has it only if it names it.",
}
READ_OPTIONS: tuple[Option, ...] = (
    *(
        replace(option, help=_HELP.get(option.name, option.help))
        for option in DICOM_OPTIONS
        if option.name in _SHARED
    ),
    _RECORD_TYPE,
    Option(
        "sampleSize",
        1000,
        "How many records (from files spread over the listing) the schema is inferred from.",
        parse=integer(1),
    ),
)
#: At most this many records in one written file.
RECORDS_PER_FILE = Bound(1, 10_000_000, "records")
WRITE_OPTIONS: tuple[Option, ...] = (
    _RECORD_TYPE,
    Option(
        "compression",
        "none",
        "none, or gzip (the whole file, as TFRecordOptions(compression_type='GZIP') reads it); "
        "codec 'org.apache.hadoop.io.compress.GzipCodec' is the connector's name for it.",
        parse=choice("none", "gzip"),
    ),
    Option("codec", None, "The connector's option: a Hadoop codec class name (gzip only)."),
    Option(
        "images",
        "png",
        "How an image struct column NAME (dicom_image, image_resize) is written: png (NAME/encoded "
        "PNG bytes, windowed to 8 bits, with NAME/format, NAME/height, NAME/width, "
        "NAME/channels) or raw (NAME/data, the values as floats row by row, and NAME/shape).",
        parse=choice(*tfrecord.IMAGE_ENCODINGS),
    ),
    Option(
        "records_per_file",
        100_000,
        "At most this many records per file (a task writes several files when it has more).",
        parse=RECORDS_PER_FILE,
    ),
)
_GZIP_CODECS = ("gzip", "org.apache.hadoop.io.compress.gzipcodec")


@dataclass(frozen=True)
class ReadOptions:
    """Parsed options of one ``tfrecord`` read."""

    paths: tuple[str, ...]
    recursiveFileLookup: bool
    pathGlobFilter: str | None
    mode: str
    columnNameOfCorruptRecord: str
    maxFilesPerPartition: int | None
    numPartitions: int | None
    recordType: str
    sampleSize: int


def read_options(raw: Mapping[str, str]) -> ReadOptions:
    """The read options Spark passes, validated (errors name the option)."""
    values = parse(raw, READ_OPTIONS, where="tfrecord source")
    paths = values.pop("path") + values.pop("paths")
    if not paths:
        raise DicomsqlError(
            "tfrecord source: option path is required, e.g. "
            "CREATE TEMPORARY VIEW t USING tfrecord OPTIONS (path '/data/train')"
        )
    return ReadOptions(paths=paths, **values)


def write_options(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The write options (``codec`` folded into ``compression``)."""
    values = parse(raw, WRITE_OPTIONS, where=where)
    codec = values.pop("codec")
    if codec is not None:
        if codec.strip().lower() not in _GZIP_CODECS:
            raise DicomsqlError(f"{where}: option codec must be a gzip codec, got {codec!r}")
        values["compression"] = "gzip"
    return values


# -- reading ----------------------------------------------------------------------------------


_COLUMN_KINDS: dict[type, str] = {
    LongType: "int64",
    FloatType: "float",
    DoubleType: "float",
    StringType: "text",
    BinaryType: "binary",
}


def _column_of(name: str, data_type: DataType) -> tfrecord.Column:
    """The :class:`~dicomsql.tfrecord.Column` of a field of a given schema."""
    depth, inner = 0, data_type
    while isinstance(inner, ArrayType) and depth < 2:
        depth, inner = depth + 1, inner.elementType
    kind = _COLUMN_KINDS.get(type(inner))
    if kind is None:
        raise DicomsqlError(
            f"tfrecord source: column {name} is {data_type.simpleString()}: features are read as "
            "BIGINT, FLOAT, DOUBLE, STRING or BINARY, or arrays (of arrays) of them; CAST after reading"
        )
    return tfrecord.Column(name, kind, depth)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Layout:
    """What a read produces: the feature columns, or the ``byteArray`` column, and whether
    the schema has the corrupt record column (last)."""

    columns: tuple[tfrecord.Column, ...]
    record_type: str
    corrupt_column: str | None

    @classmethod
    def of(cls, schema: StructType, options: ReadOptions) -> Layout:
        corrupt = options.columnNameOfCorruptRecord
        fields = [f for f in schema.fields if f.name != corrupt]
        has_corrupt = len(fields) < len(schema.fields)
        if options.recordType == "ByteArray":
            if [(f.name, f.dataType) for f in fields] != [("byteArray", BinaryType())]:
                raise DicomsqlError(
                    "tfrecord source: recordType ByteArray has one column, byteArray BINARY"
                )
            return cls((), "ByteArray", corrupt if has_corrupt else None)
        columns = tuple(_column_of(f.name, f.dataType) for f in fields)
        if options.recordType == "Example" and any(c.depth == 2 for c in columns):
            raise DicomsqlError(
                "tfrecord source: arrays of arrays are feature lists: read with recordType SequenceExample"
            )
        return cls(columns, options.recordType, corrupt if has_corrupt else None)

    def values(self, record: bytes) -> list:
        """The row of one record (without the corrupt column); :class:`RecordError` when the
        record is not a message of the record type or a feature does not fit its column."""
        if self.record_type == "ByteArray":
            return [record]
        if self.record_type == "Example":
            features, lists = tfrecord.decode_example(record), {}
        else:
            features, lists = tfrecord.decode_sequence_example(record)
        return [tfrecord.column_value(column, features, lists) for column in self.columns]


def _records(entry: FileEntry) -> Iterator[bytes | tfrecord.RecordError]:
    """The records of a listed file; one that cannot be opened is one fatal error."""
    if entry.error:
        yield tfrecord.RecordError(entry.error, fatal=True)
        return
    try:
        with open_file(entry.path) as raw:
            stream = raw if hasattr(raw, "peek") else io.BufferedReader(raw)
            yield from tfrecord.records(tfrecord.open_records(stream))
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        yield tfrecord.RecordError(f"cannot read: {reason}", fatal=True)


def _list(options: ReadOptions) -> list[FileEntry]:
    return list_files(options.paths, options.recursiveFileLookup, options.pathGlobFilter)


class TfrecordDataSource(DataSource):
    """Spark data source ``tfrecord`` (see the module's documentation)."""

    @classmethod
    def name(cls) -> str:
        return "tfrecord"

    @cached_property
    def parsed(self) -> ReadOptions:
        return read_options(self.options)

    def schema(self) -> str:
        options = self.parsed
        corrupt = options.columnNameOfCorruptRecord
        if options.recordType == "ByteArray":
            columns = [("byteArray", "BINARY")]
        else:
            decode = (
                tfrecord.decode_sequence_example
                if options.recordType == "SequenceExample"
                else lambda record: (tfrecord.decode_example(record), {})
            )
            columns = [
                (c.name, c.ddl)
                for c in tfrecord.infer_columns(
                    _sampled(_list(options), options.sampleSize, decode)
                )
            ]
        if not corrupt or "`" in corrupt or corrupt in {name for name, _ in columns}:
            raise DicomsqlError(
                f"tfrecord source: option columnNameOfCorruptRecord={corrupt!r} must be a new "
                "column name without backticks"
            )
        return ", ".join(
            f"`{name.replace('`', '')}` {ddl}" for name, ddl in [*columns, (corrupt, "STRING")]
        )

    def reader(self, schema: StructType) -> TfrecordReader:
        return TfrecordReader(self.parsed, Layout.of(schema, self.parsed), schema)

    def writer(self, schema: StructType, overwrite: bool) -> TfrecordWriter:
        path = self.options.get("path")
        if not path or not os.path.isabs(os.path.expanduser(path)):
            raise DicomsqlError(
                "tfrecord writer: an absolute local folder is required: "
                "df.write.format('tfrecord').save('/out/train')"
            )
        given = {k: v for k, v in self.options.items() if k.lower() != "path"}
        return TfrecordWriter(
            os.path.expanduser(path), write_options(given, "tfrecord writer"), overwrite
        )


def _sampled(files: Sequence[FileEntry], size: int, decode) -> Iterator[tuple[dict, dict]]:
    """Up to ``size`` decoded records, taken from up to 16 files spread over the listing."""
    chosen = [files[i * len(files) // 16] for i in range(16)] if len(files) > 16 else list(files)
    each = max(1, size // max(1, len(chosen)))
    for entry in chosen:
        taken = 0
        for record in _records(entry):
            if taken >= each:
                break
            if isinstance(record, tfrecord.RecordError):
                continue
            taken += 1
            try:
                yield decode(record)
            except tfrecord.RecordError:
                continue


@dataclass
class TfrecordReader(DataSourceReader):
    """Reads partitions of files into Arrow record batches."""

    options: ReadOptions
    layout: Layout
    schema: StructType

    def partitions(self):
        return plan_partitions(_list(self.options), self.options)

    def read(self, partition) -> Iterator[pyarrow.RecordBatch]:
        from pyspark.sql.pandas.types import to_arrow_schema

        batches = _BatchBuilder(to_arrow_schema(self.schema, timezone="UTC"))
        empty = [None] * len(self.layout.columns or [None])
        for entry in partition.files:
            for record in _records(entry):
                try:
                    if isinstance(record, tfrecord.RecordError):
                        raise record
                    row, error = self.layout.values(record), None
                except tfrecord.RecordError as exc:
                    error = f"{shown_path(entry.path)}: {exc}"
                    if self.options.mode == "FAILFAST":
                        raise DicomsqlError(f"tfrecord source (mode FAILFAST): {error}") from None
                    if self.options.mode == "DROPMALFORMED":
                        continue
                    row = empty
                batches.add([*row, error] if self.layout.corrupt_column else row)
                if batches.rows >= BATCH_ROWS:
                    yield batches.flush()
        if batches.rows:
            yield batches.flush()


# -- writing ----------------------------------------------------------------------------------


class Shards:
    """Records encoded from rows and written as TFRecord files under ``out_dir``: one file
    per ``records_per_file`` records, named ``part-PPPPP-NNNN-HASH.tfrecord[.gz]`` after the
    partition, the file's place in it and its bytes, so that writing the same rows again writes the same
    file (no duplicate). :meth:`add` raises ``ValueError`` for a row that cannot be encoded."""

    def __init__(self, out_dir: str, options: Mapping[str, Any], partition: int = 0) -> None:
        self.out_dir, self.options, self.partition = out_dir, options, partition
        self.pending: list[bytes] = []
        self.written: list[tuple[str, int, int]] = []  # (file, records, bytes)

    def add(self, row: Mapping[str, Any]) -> tuple[str, int, int] | None:
        """Encode ``row``; the file written when that filled one (see :meth:`flush`)."""
        sequences = self.options["recordType"] == "SequenceExample"
        if self.options["recordType"] == "ByteArray":
            value = row.get("byteArray")
            if not isinstance(value, (bytes, bytearray)):
                raise ValueError("recordType ByteArray writes a byteArray BINARY column")
            record = bytes(value)
        else:
            features, lists = tfrecord.features_of(row, sequences, self.options["images"])
            record = (
                tfrecord.encode_sequence_example(features, lists)
                if sequences
                else tfrecord.encode_example(features)
            )
        self.pending.append(record)
        if len(self.pending) >= self.options["records_per_file"]:
            return self.flush()
        return None

    def flush(self) -> tuple[str, int, int] | None:
        """Write the pending records as one file; (file, records, bytes), or None when none
        were pending."""
        if not self.pending:
            return None
        data = b"".join(map(tfrecord.frame, self.pending))
        suffix = ".tfrecord"
        if self.options["compression"] == "gzip":
            data, suffix = gzip.compress(data, mtime=0), ".tfrecord.gz"
        digest = hashlib.sha256(data).hexdigest()[:16]
        name = f"part-{self.partition:05d}-{len(self.written):04d}-{digest}{suffix}"
        path = os.path.join(self.out_dir, name)
        write_file(path, data)
        self.written.append((path, len(self.pending), len(data)))
        self.pending = []
        return self.written[-1]


def partition_id() -> int:
    """The Spark partition a task (or a table function's instance) works on; 0 outside a task."""
    from pyspark import TaskContext

    context = TaskContext.get()
    return context.partitionId() if context is not None else 0


@dataclass
class Wrote(WriterCommitMessage):
    """What one task wrote, and the rows it could not encode (the first few by reason)."""

    files: list[str] = field(default_factory=list)
    records: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)


class TfrecordWriter(DataSourceArrowWriter):
    """Writes each task's rows as TFRecord files (see :class:`Shards`); the job fails at its
    end, naming the first rows that could not be encoded."""

    def __init__(self, out_dir: str, options: dict, overwrite: bool) -> None:
        self.out_dir, self.options, self.overwrite = out_dir, options, overwrite

    def write(self, iterator: Iterator[pyarrow.RecordBatch]) -> Wrote:
        shards, done = Shards(self.out_dir, self.options, partition_id()), Wrote()
        for batch in iterator:
            for row in batch.to_pylist():
                try:
                    shards.add(row)
                except ValueError as exc:
                    done.failed += 1
                    if len(done.failures) < 5:
                        done.failures.append(str(exc))
        shards.flush()
        done.files = [path for path, _, _ in shards.written]
        done.records = sum(records for _, records, _ in shards.written)
        return done

    def commit(self, messages: list[Wrote | None]) -> None:
        """Fail when a row was not written; with overwrite, remove the folder's other part files."""
        done = [m for m in messages if m is not None]
        failed = sum(m.failed for m in done)
        if failed:
            first = [f for m in done for f in m.failures][:5]
            raise DicomsqlError(
                f"tfrecord writer: {failed:,} rows could not be written: " + "; ".join(first)
            )
        if self.overwrite:
            kept = {os.path.basename(path) for m in done for path in m.files}
            check_export_allowed(os.path.join(self.out_dir, "part-"))
            for name in os.listdir(self.out_dir) if os.path.isdir(self.out_dir) else ():
                if name.startswith("part-") and ".tfrecord" in name and name not in kept:
                    os.unlink(os.path.join(self.out_dir, name))

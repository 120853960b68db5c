"""SQL functions that write files: ``dicom_export`` (DICOM) and ``tfrecord_export`` (TFRecord)."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

from dicomsql.dicom import deid, export
from dicomsql.dicom.dicomjson import dataset_model
from dicomsql.dicom.header import read_dataset
from dicomsql.dicom.pixels import Image
from dicomsql.errors import DicomsqlError
from dicomsql.keys import deid_key
from dicomsql.options import OptionError, Parsed
from dicomsql.source.tfrecord import WRITE_OPTIONS, Shards, partition_id
from dicomsql.storage import open_named, write_file

from .arrow import Expected
from .registry import Table, column, constant, options, sql_function

#: The options of ``dicom_export``: its own and, for ``deidentify 'basic'``, those of
#: ``dicom_deidentify``.
OPTIONS = (*export.OPTIONS, *deid.OPTIONS)
RESULT = Table(
    (("source", "string"), ("written", "string"), ("bytes", "bigint"), ("error", "string"))
)
_DEID_OPTIONS = tuple(option.name for option in deid.OPTIONS)


def input_row(row: Any) -> dict[str, Any]:
    """A row of the exported table as a dict of its columns (structs as dicts)."""
    fields = row.asDict(recursive=True) if hasattr(row, "asDict") else dict(row)
    if not {"meta", "path", "content"} & set(fields):
        raise Expected(
            "a table with a meta column, or a path or content column to read the file from",
            f"columns {', '.join(fields) or 'none'}",
        )
    return fields


def out_folder(text: str) -> str:
    """The ``out_dir`` argument: an absolute local folder."""
    if not isinstance(text, str) or not os.path.isabs(os.path.expanduser(text)):
        raise Expected("an absolute local folder", repr(text))
    return os.path.expanduser(text)


@sql_function(
    column("rows", "TABLE(meta, path, content, image)", input_row),
    constant("out_dir", "STRING", out_folder),
    options(OPTIONS),
    returns=RESULT,
    kind="table",
    example="SELECT written, bytes, error FROM dicom_export("
    "TABLE(SELECT meta, path FROM demo_images LIMIT 2), '/tmp/dicomsql-export', map('overwrite', 'true'))",
)
def dicom_export(rows: dict[str, Any], out_dir: str, options: Mapping[str, Any]) -> Iterator[tuple]:
    """Write one DICOM file (PS3.10) per row of a query under ``out_dir``, and say how it went:
    the row's ``source`` path, the file ``written``, its ``bytes``, or the ``error`` that kept
    it from being written (nothing is half-written: a file appears whole, or not at all).

    The header is the row's ``meta`` (DICOM JSON, as the ``dicom`` source gives it, perhaps
    changed); the pixel data is the original file's (``content`` from ``pixels 'bytes'``, or
    the file at ``path``), or a derived image in ``image`` (a ``dicom_image`` or
    ``image_resize`` struct): then the file is a new, DERIVED instance whose pixel attributes
    match the image. The file meta names dicomsql (its Implementation Class UID) and the
    dataset's SOP Class and Instance. Options: ``layout`` (default
    ``{PatientID}/{StudyInstanceUID}/{SeriesInstanceUID}/{SOPInstanceUID}.dcm``),
    ``transfer_syntax`` (``keep``, ``explicit``, ``implicit``, ``deflated``, ``rle``,
    ``jpeg2000``, ``jpegls``: lossless re-encodings), ``overwrite``, and ``deidentify 'basic'``
    with ``dicom_deidentify``'s options, which refuses images that may carry burned-in text
    (``dicom_burned_in``) unless ``allow_burned_in``. A file that exists with the same bytes is
    left as it is (a rerun writes nothing twice). A server writes only under its
    ``--export-root`` folders. DataFrames: ``df.write.format("dicom").mode("append").save(dir)``.
    """
    yield export_row(rows, out_dir, options)


def export_row(fields: Mapping[str, Any], out_dir: str, options: Mapping[str, Any]) -> tuple:
    """``dicom_export``'s result for one input row (also the ``dicom`` writer's): (source,
    written, bytes, error). Bad options and a missing key raise; a row that cannot be
    written is its error."""
    key = deid_key() if options["deidentify"] == "basic" else None
    source = fields.get("path")
    try:
        original = _original(fields)
        model = _header(fields, original)
        image = _image(fields.get("image"), fields)
        if key is not None:
            if export.burned_in(model) and not options["allow_burned_in"]:
                raise export.ExportError(
                    "the image may carry burned-in text (BurnedInAnnotation, or its SOP class "
                    "or modality): not written de-identified unless allow_burned_in 'true'"
                )
            chosen = {name: options[name] for name in _DEID_OPTIONS}
            model = deid.deidentify(model, Parsed(chosen, table=deid.OPTIONS), key)
        if original is None and image is None and "00280010" in model:
            raise export.ExportError(
                "meta describes an image but the row has no pixel data: give its path, "
                "content or image"
            )
        dataset, data = export.part10(model, original, image, options["transfer_syntax"])
        written = os.path.join(out_dir, options["layout"].path(dataset))
        if not os.path.realpath(written).startswith(os.path.realpath(out_dir) + os.sep):
            raise export.ExportError(f"the layout places the file outside {out_dir}")
        write_file(written, data, overwrite=options["overwrite"])
    except OptionError:
        raise
    except Exception as exc:  # noqa: BLE001 - one row's failure is that row's error
        return source, None, None, str(exc) if str(exc) else type(exc).__name__
    return source, written, len(data), None


def _original(fields: Mapping[str, Any]) -> bytes | None:
    content = fields.get("content")
    if content is not None:
        return bytes(content)
    path = fields.get("path")
    if path is None:
        return None
    try:
        with open_named(path) as fp:
            return fp.read()
    except OSError as exc:
        raise export.ExportError(f"cannot open: {exc.strerror or exc}") from None


def _header(fields: Mapping[str, Any], original: bytes | None) -> dict[str, Any]:
    meta = fields.get("meta")
    if meta is not None:
        try:
            model = json.loads(meta)
        except (TypeError, json.JSONDecodeError):
            model = None
        if not isinstance(model, dict):
            raise export.ExportError("meta is not DICOM JSON text")
        return model
    if original is None:
        raise export.ExportError("no meta, path or content to write")
    model, _invalid = dataset_model(read_dataset(io.BytesIO(original), len(original)))
    return model


def _image(value: Any, fields: Mapping[str, Any]) -> Image | None:
    """The derived image of a row: an image struct, or an array with ``rows`` and
    ``columns`` columns."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        if value.get("data") is None:
            raise export.ExportError(f"no image: {value.get('error') or 'its data is NULL'}")
        return Image.from_struct(dict(value), dtype=float)
    if fields.get("rows") is None or fields.get("columns") is None:
        raise export.ExportError("an image array needs rows and columns columns")
    try:
        return Image.from_struct(
            {"rows": fields["rows"], "columns": fields["columns"], "data": value}, dtype=float
        )
    except ValueError as exc:
        raise export.ExportError(f"the image array does not fit rows x columns: {exc}") from None


def _columns(row: Any) -> dict[str, Any]:
    return row.asDict(recursive=True) if hasattr(row, "asDict") else dict(row)


@sql_function(
    column("rows", "TABLE", _columns),
    constant("out_dir", "STRING", out_folder),
    options(tuple(option for option in WRITE_OPTIONS if option.name != "codec")),
    returns=Table(
        (("file", "string"), ("records", "bigint"), ("bytes", "bigint"), ("error", "string"))
    ),
    kind="table",
    example="SELECT file, records FROM tfrecord_export(TABLE(SELECT PatientID, "
    "image_resize(path, 32, 32) AS image FROM demo_images LIMIT 4), '/tmp/dicomsql-tfrecord')",
    name="tfrecord_export",
)
class TfrecordExport:
    """Write the rows of a query as TFRecord files of ``tf.train.Example`` records under
    ``out_dir`` (one file per Spark partition, or per ``records_per_file`` records), and say
    what was written: a row per ``file`` with its ``records`` and ``bytes``, and a row with
    the ``error`` for each input row that could not be encoded.

    Each column is a feature of its name: integers and booleans int64, other numbers float,
    text and binary bytes, dates ISO text, arrays lists of them (floats are 32-bit in TFRecord files: DOUBLE comes back FLOAT); NULL is no feature. An image
    struct column ``NAME`` (``dicom_image``, ``image_resize``) becomes the features image
    loaders read: ``NAME/encoded`` (PNG), ``NAME/format``, ``NAME/height``, ``NAME/width`` and
    ``NAME/channels``, or with ``images 'raw'`` ``NAME/data`` (floats, row by row) and
    ``NAME/shape``. ``recordType 'SequenceExample'`` writes arrays of arrays as feature lists;
    ``compression 'gzip'`` gzips each file. Files are named ``part-PARTITION-N-HASH.tfrecord``
    after their bytes, so a rerun writes nothing twice. A server writes only under its
    ``--export-root`` folders. Read them back with ``USING tfrecord``, TensorFlow's
    ``TFRecordDataset`` or :func:`dicomsql.tfrecord.read_examples`."""

    def __init__(self) -> None:
        self.shards: Shards | None = None

    def eval(
        self, rows: dict[str, Any], out_dir: str, options: Mapping[str, Any]
    ) -> Iterator[tuple]:
        if self.shards is None:
            self.shards = Shards(out_dir, options, partition_id())
        try:
            yield from self._flushed(lambda: self.shards.add(rows))
        except ValueError as exc:
            yield None, None, None, str(exc)

    def terminate(self) -> Iterator[tuple]:
        if self.shards is not None:
            yield from self._flushed(self.shards.flush)

    def _flushed(self, write: Any) -> Iterator[tuple]:
        try:
            written = write()
        except (OSError, DicomsqlError) as exc:
            pending, self.shards.pending = len(self.shards.pending), []
            yield None, pending, None, f"{pending:,} records not written: {exc}"
            return
        if written is not None:
            yield (*written, None)

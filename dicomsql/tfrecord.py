"""TFRecord files and ``tf.train.Example`` records, without TensorFlow.

A TFRecord file is a sequence of records, each framed as (PS: TensorFlow's
``core/lib/io/record_writer.cc``)::

    uint64 length (little endian) | uint32 masked CRC32C of length | data | uint32 masked CRC32C of data

optionally gzip-compressed as a whole. A record is usually a serialized ``tf.train.Example``
(a map of named features, each a list of int64s, floats or byte strings) or a
``tf.train.SequenceExample`` (context features, and feature lists: a list of features per
step). This module frames and checks records (:func:`frame`, :func:`records`) and encodes and
decodes both messages in the protobuf wire format (:func:`encode_example`,
:func:`decode_example`, :func:`encode_sequence_example`, :func:`decode_sequence_example`),
with the same bytes protobuf writes (packed numbers, fields in order).

A feature is a :class:`Feature`: its ``kind`` (``int64``, ``float``, ``bytes``, or None for
an empty feature with no list set) and its ``values``. :func:`features_of` turns a row of
Python values (what Spark hands a writer) into features; :func:`infer_columns` finds the
columns of records as the spark-tensorflow-connector does, and :func:`column_value` reads one
column's value out of a record's features.

Nothing here imports Spark.
"""

from __future__ import annotations

import datetime
import decimal
import gzip
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

import numpy as np

__all__ = [
    "Feature",
    "RecordError",
    "Column",
    "masked_crc",
    "frame",
    "records",
    "open_records",
    "encode_example",
    "decode_example",
    "encode_sequence_example",
    "decode_sequence_example",
    "features_of",
    "infer_columns",
    "column_value",
    "read_examples",
    "RECORD_TYPES",
    "IMAGE_ENCODINGS",
]

Kind = Literal["int64", "float", "bytes"]
RECORD_TYPES = ("Example", "SequenceExample", "ByteArray")
#: How :func:`features_of` writes an image struct: PNG bytes, or the raw values.
IMAGE_ENCODINGS = ("png", "raw")

_MASK_DELTA = 0xA282EAD8
_GZIP_MAGIC = b"\x1f\x8b"
_INT64_MIN, _UINT64 = -(2**63), 2**64


class RecordError(ValueError):
    """A record that cannot be read: a bad CRC, a truncated frame, a message that does not
    parse. ``fatal`` when the framing is lost, so nothing after it in the file can be read."""

    def __init__(self, message: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


@dataclass(frozen=True)
class Feature:
    """One feature: a list of ``int64``, ``float`` or ``bytes`` values (``kind`` None: no
    list set, an empty feature)."""

    kind: Kind | None
    values: tuple

    def __post_init__(self) -> None:
        if self.kind is None and self.values:
            raise ValueError("a feature with values has a kind")


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC32C of ``data``.

    >>> hex(masked_crc(b""))
    '0xa282ead8'
    """
    import crc32c

    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(record: bytes) -> bytes:
    """``record`` framed as a TFRecord (length, its CRC, the data, its CRC)."""
    length = struct.pack("<Q", len(record))
    return b"".join(
        (
            length,
            struct.pack("<I", masked_crc(length)),
            record,
            struct.pack("<I", masked_crc(record)),
        )
    )


def open_records(stream: BinaryIO) -> BinaryIO:
    """``stream`` (which can peek or seek) uncompressed: a gzip file is recognised by its magic bytes."""
    head = stream.peek(2)[:2] if hasattr(stream, "peek") else _peek_seekable(stream)
    return gzip.GzipFile(fileobj=stream, mode="rb") if head == _GZIP_MAGIC else stream


def _peek_seekable(stream: BinaryIO) -> bytes:
    start = stream.tell()
    head = stream.read(2)
    stream.seek(start)
    return head


def records(stream: BinaryIO, check: bool = True) -> Iterator[bytes | RecordError]:
    """The records of a TFRecord stream (uncompressed: see :func:`open_records`), each checked
    against its CRCs (``check``): a record that fails is a :class:`RecordError` in its place;
    when the length itself is corrupt or the file ends within a record, that error is the last
    item (``fatal``)."""
    index, offset = 0, 0
    while True:
        header = stream.read(12)
        if not header:
            return
        where = f"record {index} at byte {offset}"
        if len(header) < 12:
            yield RecordError(f"{where}: the file ends within a record header", fatal=True)
            return
        length, length_crc = struct.unpack("<QI", header)
        if check and masked_crc(header[:8]) != length_crc:
            yield RecordError(f"{where}: the length's CRC does not match (corrupt file)", True)
            return
        data = stream.read(length)
        footer = stream.read(4)
        if len(data) < length or len(footer) < 4:
            yield RecordError(f"{where}: the file ends within the record", fatal=True)
            return
        if check and masked_crc(data) != struct.unpack("<I", footer)[0]:
            yield RecordError(f"{where}: the data's CRC does not match (corrupt record)")
        else:
            yield data
        index, offset = index + 1, offset + 16 + length


# -- protobuf wire format ---------------------------------------------------------------------


_ONE_BYTE = [bytes([value]) for value in range(128)]


def _varint(value: int) -> bytes:
    if 0 <= value < 128:
        return _ONE_BYTE[value]
    value &= _UINT64 - 1
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _read_varint(data: memoryview, position: int) -> tuple[int, int]:
    if position < len(data) and data[position] < 0x80:  # most numbers here: one byte
        return data[position], position + 1
    result = shift = 0
    while True:
        try:
            byte = data[position]
        except IndexError:
            raise RecordError("the message ends within a number") from None
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise RecordError("a number longer than 10 bytes")


def _fields(data: memoryview) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a message: ints for varints, memoryviews for
    length-delimited fields and for fixed-size ones."""
    position, end = 0, len(data)
    while position < end:
        key, position = _read_varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _read_varint(data, position)
        elif wire == 2:
            length, position = _read_varint(data, position)
            if position + length > end:
                raise RecordError("a field runs past the end of the message")
            value, position = data[position : position + length], position + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if position + size > end:
                raise RecordError("a field runs past the end of the message")
            value, position = data[position : position + size], position + size
        else:
            raise RecordError(f"wire type {wire} is not valid in these messages")
        yield number, wire, value


def _signed(value: int) -> int:
    return value - _UINT64 if value >= 2**63 else value


def _encode_feature(feature: Feature) -> bytes:
    if feature.kind is None:
        return b""
    if feature.kind == "bytes":
        return _field(1, b"".join(_field(1, value) for value in feature.values))
    if feature.kind == "float":
        packed = np.asarray(feature.values, dtype="<f4").tobytes()
        return _field(2, _field(1, packed) if feature.values else b"")
    packed = b"".join(_varint(value) for value in feature.values)
    return _field(3, _field(1, packed) if feature.values else b"")


def _decode_feature(data: memoryview) -> Feature:
    feature = Feature(None, ())
    for number, _wire, body in _fields(data):
        if number not in (1, 2, 3) or not isinstance(body, memoryview):
            continue
        kind: Kind = ("bytes", "float", "int64")[number - 1]
        values: list = []
        for item_number, wire, item in _fields(body):
            if item_number != 1:
                continue
            if kind == "bytes" and wire == 2:
                values.append(bytes(item))
            elif kind == "float" and wire == 2:
                if len(item) % 4:
                    raise RecordError("a packed float list is not a whole number of floats")
                values.extend(np.frombuffer(item, dtype="<f4").tolist())
            elif kind == "float" and wire == 5:
                values.append(struct.unpack("<f", item)[0])
            elif kind == "int64" and wire == 2:
                position = 0
                while position < len(item):
                    value, position = _read_varint(item, position)
                    values.append(_signed(value))
            elif kind == "int64" and wire == 0:
                values.append(_signed(item))
            else:
                raise RecordError(f"a {kind} list holds a value of wire type {wire}")
        feature = Feature(kind, tuple(values))
    return feature


def _encode_map(entries: Mapping[str, bytes]) -> bytes:
    return b"".join(
        _field(1, _field(1, name.encode("utf-8")) + _field(2, value))
        for name, value in entries.items()
    )


def _decode_map(data: memoryview) -> Iterator[tuple[str, memoryview]]:
    for number, _wire, entry in _fields(data):
        if number != 1 or not isinstance(entry, memoryview):
            continue
        name, value = "", memoryview(b"")
        for part, _wire, body in _fields(entry):
            if part == 1 and isinstance(body, memoryview):
                try:
                    name = bytes(body).decode("utf-8")
                except UnicodeDecodeError:
                    raise RecordError("a feature name is not UTF-8 text") from None
            elif part == 2 and isinstance(body, memoryview):
                value = body
        yield name, value


def _encode_features(features: Mapping[str, Feature]) -> bytes:
    return _encode_map({name: _encode_feature(f) for name, f in features.items()})


def _decode_features(data: memoryview) -> dict[str, Feature]:
    return {name: _decode_feature(body) for name, body in _decode_map(data)}


def encode_example(features: Mapping[str, Feature]) -> bytes:
    """A serialized ``tf.train.Example`` of ``features`` (in their order).

    >>> decode_example(encode_example({"label": Feature("int64", (1,))}))
    {'label': Feature(kind='int64', values=(1,))}
    """
    return _field(1, _encode_features(features))


def decode_example(data: bytes) -> dict[str, Feature]:
    """The features of a serialized ``tf.train.Example``; :class:`RecordError` when it is not one."""
    features: dict[str, Feature] = {}
    for number, _wire, body in _fields(memoryview(data)):
        if number == 1 and isinstance(body, memoryview):
            features.update(_decode_features(body))
    return features


def encode_sequence_example(
    context: Mapping[str, Feature], feature_lists: Mapping[str, Sequence[Feature]]
) -> bytes:
    """A serialized ``tf.train.SequenceExample``: ``context`` features, and a list of
    features (one per step) for each name of ``feature_lists``."""
    lists = _encode_map(
        {
            name: b"".join(_field(1, _encode_feature(step)) for step in steps)
            for name, steps in feature_lists.items()
        }
    )
    return _field(1, _encode_features(context)) + _field(2, lists)


def decode_sequence_example(data: bytes) -> tuple[dict[str, Feature], dict[str, list[Feature]]]:
    """(context features, feature lists) of a serialized ``tf.train.SequenceExample``."""
    context: dict[str, Feature] = {}
    lists: dict[str, list[Feature]] = {}
    for number, _wire, body in _fields(memoryview(data)):
        if number == 1 and isinstance(body, memoryview):
            context.update(_decode_features(body))
        elif number == 2 and isinstance(body, memoryview):
            for name, steps in _decode_map(body):
                lists[name] = [
                    _decode_feature(step)
                    for step_number, _wire, step in _fields(steps)
                    if step_number == 1 and isinstance(step, memoryview)
                ]
    return context, lists


# -- rows to features -------------------------------------------------------------------------


def _kind_of(value: Any, column: str) -> tuple[Kind, Any]:
    """The feature kind of one Python value and the value as that kind stores it."""
    exact = type(value)
    if exact is float:
        return "float", value
    if exact is str:
        return "bytes", value.encode("utf-8")
    if isinstance(value, (bool, int, np.integer)):
        number = int(value)
        if not _INT64_MIN <= number < 2**63:
            raise ValueError(f"column {column}: {number} does not fit in an int64 feature")
        return "int64", number
    if isinstance(value, (float, decimal.Decimal, np.floating)):
        return "float", float(value)
    if isinstance(value, str):
        return "bytes", value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes", bytes(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return "bytes", value.isoformat().encode("ascii")
    raise ValueError(
        f"column {column}: a {type(value).__name__} value has no TFRecord feature type "
        "(numbers, text, binary, dates and arrays of them do; select the fields of a struct)"
    )


def _feature(value: Any, column: str) -> Feature:
    """The feature of one column's value: a scalar is a one-value list."""
    items = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if not items:
        return Feature(None, ())
    if any(item is None for item in items):
        raise ValueError(f"column {column}: an array with a NULL element cannot be a feature")
    converted = [_kind_of(item, column) for item in items]
    kinds = {kind for kind, _ in converted}
    if kinds == {"int64", "float"}:
        return Feature("float", tuple(float(v) for _, v in converted))
    if len(kinds) > 1:
        raise ValueError(f"column {column}: an array mixes text and numbers")
    return Feature(kinds.pop(), tuple(v for _, v in converted))


def _is_image(value: Any) -> bool:
    return isinstance(value, Mapping) and {"rows", "columns", "data"} <= set(value)


def _image_features(name: str, image: Mapping[str, Any], encoding: str) -> dict[str, Feature]:
    """An image struct (``dicom_image``, ``image_resize``) as the features image loaders
    read: ``NAME/encoded`` PNG bytes with ``NAME/format``, ``NAME/height``, ``NAME/width`` and
    ``NAME/channels`` (``png``); or ``NAME/data``, the values as floats row by row, and
    ``NAME/shape`` (rows, columns, channels) (``raw``)."""
    from .dicom.pixels import Image, to_png

    if image.get("data") is None:
        raise ValueError(f"column {name}: no image: {image.get('error') or 'its data is NULL'}")
    decoded = Image.from_struct(dict(image))
    channels = decoded.samples
    if encoding == "raw":
        return {
            f"{name}/data": Feature("float", tuple(decoded.data.ravel().tolist())),
            f"{name}/shape": Feature("int64", (decoded.rows, decoded.columns, channels)),
        }
    png = to_png(decoded, size=max(decoded.rows, decoded.columns))
    return {
        f"{name}/encoded": Feature("bytes", (png,)),
        f"{name}/format": Feature("bytes", (b"png",)),
        f"{name}/height": Feature("int64", (decoded.rows,)),
        f"{name}/width": Feature("int64", (decoded.columns,)),
        f"{name}/channels": Feature("int64", (channels,)),
    }


def features_of(
    row: Mapping[str, Any], sequences: bool = False, images: str = "png"
) -> tuple[dict[str, Feature], dict[str, list[Feature]]]:
    """The features of a row (column name -> Python value), and with ``sequences`` its
    feature lists (the columns holding arrays of arrays: one feature per inner array, for a
    ``SequenceExample``). A NULL column has no feature; numbers are int64 (integers, booleans)
    or float (the rest) features, text UTF-8 bytes, dates and timestamps ISO 8601 text; an
    image struct becomes several features (``images``: ``png`` or ``raw``). A value that
    cannot be a feature raises ``ValueError`` naming its column."""
    features: dict[str, Feature] = {}
    lists: dict[str, list[Feature]] = {}
    for name, value in row.items():
        if value is None:
            continue
        if _is_image(value):
            features.update(_image_features(name, value, images))
        elif isinstance(value, (list, tuple)) and any(
            isinstance(item, (list, tuple)) for item in value
        ):
            if not sequences:
                raise ValueError(
                    f"column {name}: an array of arrays is a feature list: write with "
                    "recordType SequenceExample"
                )
            lists[name] = [_feature(step or [], name) for step in value]
        else:
            features[name] = _feature(value, name)
    return features, lists


# -- columns of records -----------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A column read from records: its feature ``name``, the feature ``kind`` (``bytes`` as
    ``text`` or ``binary``), and its ``depth``: 0 a scalar, 1 an array (a feature), 2 an array
    of arrays (a feature list)."""

    name: str
    kind: Literal["int64", "float", "text", "binary"]
    depth: int

    @property
    def ddl(self) -> str:
        """The Spark SQL type of the column."""
        ddl = {"int64": "BIGINT", "float": "FLOAT", "text": "STRING", "binary": "BINARY"}[self.kind]
        return "ARRAY<" * self.depth + ddl + ">" * self.depth


def _widened(kinds: set[str]) -> str:
    if "binary" in kinds:
        return "binary"
    if "text" in kinds:
        return "text"
    return "float" if "float" in kinds else "int64"


def _bytes_kind(values: Iterable[bytes]) -> str:
    try:
        for value in values:
            value.decode("utf-8")
    except UnicodeDecodeError:
        return "binary"
    return "text"


def infer_columns(
    examples: Iterable[tuple[Mapping[str, Feature], Mapping[str, Sequence[Feature]]]],
) -> list[Column]:
    """The columns of decoded records ((features, feature lists) pairs), in the order their
    features first appear: int64 features are BIGINT, float ones FLOAT (a feature that is
    int64 in one record and float in another is FLOAT), bytes ones STRING when every value
    seen is UTF-8 text, else BINARY; a feature with exactly one value in every record that
    has it is a scalar, any other an array; a feature list is an array of arrays. Features
    seen only empty are arrays of STRING.

    >>> infer_columns([({"id": Feature("int64", (1,)), "xs": Feature("float", (1.0, 2.0))}, {})])
    [Column(name='id', kind='int64', depth=0), Column(name='xs', kind='float', depth=1)]
    """
    kinds: dict[str, set[str]] = {}
    scalar: dict[str, bool] = {}
    lists: dict[str, set[str]] = {}

    def kind_of(feature: Feature) -> str | None:
        if feature.kind == "bytes":
            return _bytes_kind(feature.values)
        return feature.kind

    for features, feature_lists in examples:
        for name, feature in features.items():
            seen = kinds.setdefault(name, set())
            if (kind := kind_of(feature)) is not None:
                seen.add(kind)
            scalar[name] = scalar.get(name, True) and len(feature.values) == 1
        for name, steps in feature_lists.items():
            seen = lists.setdefault(name, set())
            seen.update(kind for kind in map(kind_of, steps) if kind is not None)
    columns = [
        Column(name, _widened(seen) if seen else "text", 0 if scalar[name] else 1)
        for name, seen in kinds.items()
    ]
    return columns + [
        Column(name, _widened(seen) if seen else "text", 2)
        for name, seen in lists.items()
        if name not in kinds
    ]


def _values(feature: Feature, column: Column) -> list:
    if feature.kind is None:
        return []
    if column.kind in ("text", "binary"):
        if feature.kind != "bytes":
            raise RecordError(
                f"feature {column.name} is {feature.kind}, the column is {column.ddl}"
            )
        if column.kind == "binary":
            return list(feature.values)
        try:
            return [value.decode("utf-8") for value in feature.values]
        except UnicodeDecodeError:
            raise RecordError(
                f"feature {column.name} is not UTF-8 text (read it as BINARY)"
            ) from None
    if feature.kind == "bytes":
        raise RecordError(f"feature {column.name} is bytes, the column is {column.ddl}")
    if column.kind == "int64":
        if feature.kind == "float":
            raise RecordError(f"feature {column.name} is float, the column is {column.ddl}")
        return list(feature.values)
    return [float(value) for value in feature.values]


def column_value(
    column: Column, features: Mapping[str, Feature], feature_lists: Mapping[str, Sequence[Feature]]
) -> Any:
    """The value of ``column`` in a record's features: None when it has no such feature; a
    :class:`RecordError` when the feature does not fit the column (a scalar column and a
    feature with several values, a number column and a bytes feature...)."""
    if column.depth == 2:
        steps = feature_lists.get(column.name)
        return None if steps is None else [_values(step, column) for step in steps]
    feature = features.get(column.name)
    if feature is None:
        return None
    values = _values(feature, column)
    if column.depth == 1:
        return values
    if len(values) != 1:
        raise RecordError(
            f"feature {column.name} has {len(values)} values, the column is a scalar {column.ddl}"
        )
    return values[0]


def read_examples(path: str) -> Iterator[dict[str, list]]:
    """The features of every ``tf.train.Example`` of a local TFRecord file (gzip or not), as
    plain lists by name (bytes features as ``bytes``), its CRCs checked: a corrupt record
    raises :class:`RecordError`. For a look at what ``tfrecord_export`` wrote, in plain Python.
    """
    with open(path, "rb") as raw:
        for record in records(open_records(raw)):
            if isinstance(record, RecordError):
                raise record
            yield {name: list(feature.values) for name, feature in decode_example(record).items()}

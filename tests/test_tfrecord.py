"""TFRecord files both ways, checked against an independent implementation: the ``tfrecord``
package from PyPI (its protobuf ``example_pb2`` messages, its reader and writer, its masked
CRC32C)."""

from __future__ import annotations

import gzip
import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from tfrecord import example_pb2
from tfrecord.reader import sequence_loader, tfrecord_loader
from tfrecord.writer import TFRecordWriter

from dicomsql import tfrecord
from dicomsql.tfrecord import Column, Feature, RecordError

# --- the format, without Spark ----------------------------------------------------------------


def test_masked_crc_and_framing_match_the_reference():
    rng = np.random.default_rng(7)
    for size in (0, 1, 7, 100, 65_537):
        data = rng.bytes(size)
        assert struct.pack("<I", tfrecord.masked_crc(data)) == TFRecordWriter.masked_crc(data)
    framed = tfrecord.frame(b"abc")
    assert framed[:8] == struct.pack("<Q", 3) and framed[12:15] == b"abc"


def _reference_example(features: dict) -> bytes:
    example = example_pb2.Example()
    for name, (kind, values) in features.items():
        getattr(example.features.feature[name], f"{kind}_list").value.extend(values)
    return example.SerializeToString()


def test_examples_encode_and_decode_as_protobuf_does():
    values = {
        "id": ("int64", [0, -1, 2**63 - 1, -(2**63)]),
        "x": ("float", [1.5, -0.25, 2.0**100]),
        "s": ("bytes", [b"", "é".encode(), bytes(range(256))]),
    }
    ours = tfrecord.encode_example(
        {name: Feature(kind, tuple(v)) for name, (kind, v) in values.items()}
    )
    for name, (kind, given) in values.items():  # one feature: the very bytes protobuf writes
        one = tfrecord.encode_example({name: Feature(kind, tuple(given))})
        assert one == _reference_example({name: (kind, given)})
    parsed = example_pb2.Example.FromString(ours)
    assert parsed == example_pb2.Example.FromString(_reference_example(values))
    assert list(parsed.features.feature["id"].int64_list.value) == values["id"][1]
    decoded = tfrecord.decode_example(_reference_example(values))
    assert {name: (f.kind, list(f.values)) for name, f in decoded.items()} == values
    # unpacked repeated numbers (what proto2 writers send) decode the same
    message = example_pb2.Example()
    message.features.feature["n"].int64_list.value.extend([5, 7])
    plain = message.SerializeToString().replace(b"\x0a\x02\x05\x07", b"\x08\x05\x08\x07")
    assert tfrecord.decode_example(plain)["n"] == Feature("int64", (5, 7))


def test_sequence_examples_match_protobuf():
    message = example_pb2.SequenceExample()
    message.context.feature["label"].int64_list.value.append(3)
    steps = message.feature_lists.feature_list["frames"]
    steps.feature.add().float_list.value.extend([1.0, 2.0])
    steps.feature.add().float_list.value.extend([3.0])
    context, lists = tfrecord.decode_sequence_example(message.SerializeToString())
    assert context == {"label": Feature("int64", (3,))}
    assert lists == {"frames": [Feature("float", (1.0, 2.0)), Feature("float", (3.0,))]}
    assert tfrecord.encode_sequence_example(context, lists) == message.SerializeToString()


def test_corrupt_records_are_reported_in_their_place():
    good = [
        tfrecord.frame(tfrecord.encode_example({"i": Feature("int64", (i,))})) for i in range(3)
    ]
    damaged = bytearray(good[1])
    damaged[14] ^= 0xFF  # a byte of the data: that record's CRC fails, the next one reads
    items = list(tfrecord.records(io.BytesIO(good[0] + bytes(damaged) + good[2])))
    assert isinstance(items[1], RecordError) and not items[1].fatal
    assert "record 1 at byte" in str(items[1]) and "data's CRC" in str(items[1])
    assert [tfrecord.decode_example(items[i])["i"].values for i in (0, 2)] == [(0,), (2,)]
    length = bytearray(good[1])
    length[0] ^= 0x01  # the length: nothing after it can be framed
    items = list(tfrecord.records(io.BytesIO(good[0] + bytes(length) + good[2])))
    assert len(items) == 2 and items[1].fatal and "length's CRC" in str(items[1])
    items = list(tfrecord.records(io.BytesIO(good[0] + good[1][:-3])))
    assert items[1].fatal and "ends within the record" in str(items[1])
    with pytest.raises(RecordError, match="past the end"):
        tfrecord.decode_example(b"\x0a\x10\x0a")


def test_columns_are_inferred_as_the_connector_does():
    examples = [
        (
            {
                "id": Feature("int64", (1,)),
                "v": Feature("int64", (1, 2)),
                "w": Feature("int64", (1,)),
            },
            {},
        ),
        (
            {
                "id": Feature("int64", (2,)),
                "v": Feature("float", (0.5,)),
                "s": Feature("bytes", (b"a",)),
            },
            {},
        ),
        (
            {
                "b": Feature("bytes", (b"\xff",)),
                "w": Feature("int64", (1, 2)),
                "e": Feature(None, ()),
            },
            {},
        ),
    ]
    columns = tfrecord.infer_columns(examples)
    assert [(c.name, c.ddl) for c in columns] == [
        ("id", "BIGINT"),
        ("v", "ARRAY<FLOAT>"),
        ("w", "ARRAY<BIGINT>"),
        ("s", "STRING"),
        ("b", "BINARY"),
        ("e", "ARRAY<STRING>"),
    ]
    steps = [({}, {"frames": [Feature("float", (1.0,)), Feature("int64", (2,))]})]
    assert tfrecord.infer_columns(steps) == [Column("frames", "float", 2)]
    scalar = Column("id", "int64", 0)
    with pytest.raises(RecordError, match="feature id has 2 values, the column is a scalar BIGINT"):
        tfrecord.column_value(scalar, {"id": Feature("int64", (1, 2))}, {})
    with pytest.raises(RecordError, match="feature id is bytes, the column is BIGINT"):
        tfrecord.column_value(scalar, {"id": Feature("bytes", (b"1",))}, {})
    assert tfrecord.column_value(scalar, {}, {}) is None


def test_rows_become_features_or_say_which_column_cannot():
    import datetime

    features, lists = tfrecord.features_of(
        {
            "i": 3,
            "flag": True,
            "x": 0.5,
            "s": "é",
            "d": datetime.date(2024, 1, 2),
            "n": None,
            "xs": [1, 2.5],
        }
    )
    assert (
        features
        == {
            "i": Feature("int64", (3,)),
            "flag": Feature("int64", (1,)),
            "x": Feature("float", (0.5,)),
            "s": Feature("bytes", ("é".encode(),)),
            "d": Feature("bytes", (b"2024-01-02",)),
            "xs": Feature("float", (1.0, 2.5)),
        }
        and lists == {}
    )
    with pytest.raises(ValueError, match="column m: a dict value has no TFRecord feature type"):
        tfrecord.features_of({"m": {"a": 1}})
    with pytest.raises(ValueError, match="column xs: an array with a NULL element"):
        tfrecord.features_of({"xs": [1, None]})
    with pytest.raises(ValueError, match="column q: an array of arrays is a feature list"):
        tfrecord.features_of({"q": [[1], [2]]})
    with pytest.raises(ValueError, match="column big: 18446744073709551616 does not fit"):
        tfrecord.features_of({"big": 2**64})
    _, lists = tfrecord.features_of({"q": [[1], [], [2, 3]]}, sequences=True)
    assert lists == {"q": [Feature("int64", (1,)), Feature(None, ()), Feature("int64", (2, 3))]}


def test_files_of_the_reference_writer_read_back(tmp_path):
    path = tmp_path / "ref.tfrecord"
    writer = TFRecordWriter(str(path))
    for i in range(5):
        writer.write(
            {"id": (i, "int"), "x": ([i / 2, 1.0], "float"), "s": (f"s{i}".encode(), "byte")}
        )
    writer.close()
    read = list(tfrecord.read_examples(str(path)))
    assert [r["id"] for r in read] == [[i] for i in range(5)]
    assert read[3]["x"] == [1.5, 1.0] and read[3]["s"] == [b"s3"]
    zipped = tmp_path / "ref.tfrecord.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    assert list(tfrecord.read_examples(str(zipped))) == read


# --- the data source and tfrecord_export -----------------------------------------------------


def _rows(path: str, kind: str = "example") -> list:
    """The records of a file as the reference reader gives them."""
    compression = "gzip" if path.endswith(".gz") else None
    if kind == "sequence":
        return list(sequence_loader(path, None, None, compression_type=compression))
    return list(tfrecord_loader(path, None, None, compression_type=compression))


def _files(folder) -> list[str]:
    return sorted(str(p) for p in folder.iterdir() if p.name.startswith("part-"))


def _check_crcs(path: str) -> int:
    data = open(path, "rb").read()
    data = gzip.decompress(data) if path.endswith(".gz") else data
    position = count = 0
    while position < len(data):
        (length,) = struct.unpack("<Q", data[position : position + 8])
        assert data[position + 8 : position + 12] == TFRecordWriter.masked_crc(
            data[position : position + 8]
        )
        record = data[position + 12 : position + 12 + length]
        assert data[position + 12 + length : position + 16 + length] == TFRecordWriter.masked_crc(
            record
        )
        position, count = position + 16 + length, count + 1
    return count


QUERY = (
    "SELECT id, CAST(id AS DOUBLE) / 4 AS x, concat('s', id) AS s, array(id, -id) AS xs, "
    "unhex(lpad(hex(id), 4, '0')) AS b, IF(id % 3 = 0, NULL, id) AS sparse FROM range({n})"
)


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_dataframes_written_read_back_by_the_reference_reader(spark, tmp_path, compression):
    frame = spark.sql(QUERY.format(n=1000)).repartition(3)
    frame.write.format("tfrecord").option("compression", compression).mode("append").save(
        str(tmp_path)
    )
    files = _files(tmp_path)
    suffix = ".tfrecord.gz" if compression == "gzip" else ".tfrecord"
    assert len(files) == 3 and all(f.endswith(suffix) for f in files)
    assert all(os.stat(f).st_mode & 0o777 == 0o600 for f in files)
    assert sum(_check_crcs(f) for f in files) == 1000
    read = {int(r["id"][0]): r for f in files for r in _rows(f)}
    assert sorted(read) == list(range(1000))
    assert read[7]["s"] == b"s7" and list(read[7]["xs"]) == [7, -7]
    assert read[7]["x"].dtype == np.float32 and float(read[7]["x"][0]) == 1.75
    assert bytes(read[258]["b"]) == b"\x01\x02"
    assert "sparse" not in read[3] and list(read[4]["sparse"]) == [4]  # NULL: no feature
    # and dicomsql reads them back: types inferred, the same values
    back = spark.read.format("tfrecord").load(str(tmp_path))
    assert back.schema.simpleString() == (
        "struct<id:bigint,x:float,s:string,xs:array<bigint>,b:binary,sparse:bigint,"
        "_corrupt_record:string>"
    )
    original = spark.sql(QUERY.format(n=1000)).selectExpr("*", "CAST(NULL AS STRING) AS c")
    assert back.exceptAll(original).count() == 0 and back.count() == 1000


def test_files_of_the_reference_writer_read_as_tables(spark, tmp_path):
    writer = TFRecordWriter(str(tmp_path / "a.tfrecord"))
    for i in range(20):
        writer.write(
            {
                "label": (i % 2, "int"),
                "pixels": ([i, i + 0.5], "float"),
                "name": (f"n{i}".encode(), "byte"),
            }
        )
    writer.close()
    table = spark.read.format("tfrecord").load(str(tmp_path))
    rows = sorted(table.collect(), key=lambda r: r.name)
    assert set(table.columns) == {"label", "pixels", "name", "_corrupt_record"}
    assert {r.name: (r.label, r.pixels) for r in rows}["n3"] == (1, [3.0, 3.5])
    # a given schema: BINARY instead of STRING, and only some features
    given = spark.read.format("tfrecord").schema("name BINARY, label BIGINT").load(str(tmp_path))
    assert sorted(bytes(r.name) for r in given.collect())[:2] == [b"n0", b"n1"]
    with pytest.raises(Exception, match="column label is int: features are read as BIGINT"):
        spark.read.format("tfrecord").schema("label INT").load(str(tmp_path)).collect()
    # SequenceExample, as the reference writes it
    (tmp_path / "seq").mkdir()
    writer = TFRecordWriter(str(tmp_path / "seq" / "s.tfrecord"))
    for i in range(3):
        writer.write(
            {"length": (i + 1, "int")}, {"steps": ([[j * 1.0] for j in range(i + 1)], "float")}
        )
    writer.close()
    sequences = (
        spark.read.format("tfrecord")
        .option("recordType", "SequenceExample")
        .load(str(tmp_path / "seq"))
    )
    assert sequences.schema.simpleString() == (
        "struct<length:bigint,steps:array<array<float>>,_corrupt_record:string>"
    )
    assert sorted((r.length, r.steps) for r in sequences.collect())[2] == (3, [[0.0], [1.0], [2.0]])


def test_sequence_examples_written_read_by_the_reference(spark, tmp_path):
    frame = spark.sql(
        "SELECT id AS length, transform(sequence(1, id), j -> array(j, j * 10)) AS steps FROM range(1, 4)"
    )
    frame.coalesce(1).write.format("tfrecord").option("recordType", "SequenceExample").mode(
        "append"
    ).save(str(tmp_path))
    [path] = _files(tmp_path)
    context, lists = zip(*_rows(path, "sequence"))
    assert [int(c["length"][0]) for c in context] == [1, 2, 3]
    assert [s.tolist() for s in lists[2]["steps"]] == [[1, 10], [2, 20], [3, 30]]
    with pytest.raises(Exception, match="an array of arrays is a feature list"):
        frame.write.format("tfrecord").mode("append").save(str(tmp_path / "plain"))


def test_corrupt_records_are_rows_that_say_why(spark, tmp_path):
    good = tmp_path / "good.tfrecord"
    payloads = [tfrecord.encode_example({"i": Feature("int64", (i,))}) for i in range(4)]
    good.write_bytes(b"".join(map(tfrecord.frame, payloads)))
    data = bytearray(good.read_bytes())
    data[16 + len(payloads[0]) + 14] ^= 0x40  # a data byte of record 1
    (tmp_path / "bad.tfrecord").write_bytes(bytes(data))
    (tmp_path / "cut.tfrecord").write_bytes(good.read_bytes()[:-5])
    table = (
        spark.read.format("tfrecord").schema("i BIGINT, _corrupt_record STRING").load(str(tmp_path))
    )
    rows = table.collect()
    errors = sorted(r._corrupt_record for r in rows if r._corrupt_record)
    assert len(rows) == 4 + 3 + 3 + 1 + 1 and len(errors) == 2
    assert (
        "bad.tfrecord: record 1 at byte" in errors[0] and "data's CRC does not match" in errors[0]
    )
    assert "cut.tfrecord: record 3 at byte" in errors[1] and "ends within the record" in errors[1]
    dropped = (
        spark.read.format("tfrecord")
        .option("mode", "DROPMALFORMED")
        .schema("i BIGINT")
        .load(str(tmp_path))
    )
    assert dropped.count() == 10
    with pytest.raises(
        Exception, match=r"tfrecord source \(mode FAILFAST\): .*data's CRC does not match"
    ):
        spark.read.format("tfrecord").option("mode", "FAILFAST").schema("i BIGINT").load(
            str(tmp_path / "bad.tfrecord")
        ).collect()
    (tmp_path / "text.tfrecord").write_bytes(b"not a tfrecord file at all")
    one = (
        spark.read.format("tfrecord")
        .schema("i BIGINT, _corrupt_record STRING")
        .load(str(tmp_path / "text.tfrecord"))
    )
    assert "length's CRC does not match" in one.collect()[0]._corrupt_record
    with pytest.raises(Exception, match="tfrecord source: unknown option 'recordtipe'"):
        spark.read.format("tfrecord").option("recordTipe", "Example").load(str(tmp_path)).collect()


def test_overwrite_replaces_the_part_files_only(spark, tmp_path):
    (tmp_path / "notes.txt").write_text("kept")
    spark.range(10).coalesce(1).write.format("tfrecord").mode("append").save(str(tmp_path))
    spark.range(5).coalesce(1).write.format("tfrecord").mode("append").save(str(tmp_path))
    assert len(_files(tmp_path)) == 2
    spark.range(3).coalesce(1).write.format("tfrecord").mode("overwrite").save(str(tmp_path))
    [path] = _files(tmp_path)
    assert [int(r["id"][0]) for r in _rows(path)] == [0, 1, 2] and (tmp_path / "notes.txt").exists()
    spark.range(3).coalesce(1).write.format("tfrecord").mode("append").save(str(tmp_path))
    assert _files(tmp_path) == [path]  # the same rows again: the same file, once
    spark.range(25).coalesce(1).write.format("tfrecord").option("records_per_file", 10).mode(
        "overwrite"
    ).save(str(tmp_path))
    assert [_check_crcs(f) for f in _files(tmp_path)] == [10, 10, 5]
    codec = "org.apache.hadoop.io.compress.GzipCodec"  # the connector's way to say gzip
    spark.range(4).coalesce(1).write.format("tfrecord").option("codec", codec).mode(
        "overwrite"
    ).save(str(tmp_path))
    [zipped] = _files(tmp_path)
    assert zipped.endswith(".tfrecord.gz") and _check_crcs(zipped) == 4
    with pytest.raises(
        Exception, match="tfrecord writer: option compression must be one of none, gzip"
    ):
        spark.range(1).write.format("tfrecord").option("compression", "zstd").mode("append").save(
            str(tmp_path)
        )


def test_tfrecord_export_writes_images_for_training_loaders(spark, tmp_path):
    query = (
        "SELECT i.SOPInstanceUID AS uid, p.died AS label, p.age, image_resize(i.path, 32, 32) AS image "
        "FROM demo_images i JOIN demo_patients p USING (PatientID) WHERE i.Modality = 'CT'"
    )
    written = spark.sql(
        f"SELECT * FROM tfrecord_export(TABLE({query}), '{tmp_path}/png')"
    ).collect()
    assert written and all(r.error is None for r in written)
    count = spark.sql(f"SELECT count(*) FROM ({query})").first()[0]
    assert sum(r.records for r in written) == count
    assert all(os.path.getsize(r.file) == r.bytes for r in written)
    expected = {r.uid: r for r in spark.sql(query).collect()}
    records = [x for r in written for x in _rows(r.file)]
    assert len(records) == count
    for record in records[:5]:
        source = expected[bytes(record["uid"]).decode()]
        assert int(record["label"][0]) == source.label
        png = PILImage.open(io.BytesIO(bytes(record["image/encoded"])))
        assert png.size == (32, 32) and bytes(record["image/format"]) == b"png"
        assert [int(record[f"image/{k}"][0]) for k in ("height", "width", "channels")] == [
            32,
            32,
            1,
        ]
    raw = spark.sql(
        f"SELECT * FROM tfrecord_export(TABLE({query}), '{tmp_path}/raw', map('images', 'raw', 'compression', 'gzip'))"
    ).collect()
    for record in [x for r in raw for x in _rows(r.file)][:5]:
        source = expected[bytes(record["uid"]).decode()]
        assert record["image/shape"].tolist() == [32, 32, 1]
        np.testing.assert_array_equal(
            record["image/data"], np.asarray(source.image.data, dtype=np.float32)
        )
    # the same export again writes the same files (named after their bytes): nothing twice
    again = spark.sql(
        f"SELECT * FROM tfrecord_export(TABLE({query}), '{tmp_path}/png') ORDER BY file"
    ).collect()
    assert sorted(r.file for r in written) == [r.file for r in again]
    # the files read back as a table
    view = spark.read.format("tfrecord").load(f"{tmp_path}/raw")
    assert view.schema["image/data"].dataType.simpleString() == "array<float>"
    bad = spark.sql(
        f"SELECT * FROM tfrecord_export(TABLE(SELECT map('a', 1) AS m), '{tmp_path}/bad')"
    ).collect()
    assert [r.error for r in bad] == [
        "column m: a dict value has no TFRecord feature type (numbers, text, binary, dates and arrays of them do; select the fields of a struct)"
    ]


def test_the_readme_reads_an_export_back_in_plain_python(spark, tmp_path):
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### TFRecord files, both ways")[1]
    export, block = (
        section.split("```sql\n")[1].split("```")[0],
        section.split("```python\n")[1].split("```")[0],
    )
    query = export.split("-- and back")[0].replace("/srv/exports/alice/train", str(tmp_path))
    written = spark.sql(query.strip().rstrip(";")).collect()
    assert written and all(r.error is None for r in written)
    namespace: dict = {}
    exec(block.replace("/srv/exports/alice/train", str(tmp_path)), namespace)
    count = sum(r.records for r in written)
    assert namespace["images"].shape == (count, 64, 64) and namespace["images"].dtype == np.uint8
    assert set(namespace["labels"]) <= {0, 1}

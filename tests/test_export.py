"""DICOM files out: ``dicom_export`` and its Part 10 writer, checked against pydicom (the same
elements, values and pixels) and DCMTK's ``dcmftest``; atomic writes within the export roots."""

from __future__ import annotations

import concurrent.futures
import io
import json
import os
import stat
import subprocess
import uuid
import warnings

import numpy as np
import pydicom
import pytest

from dicomsql.dicom.deid import deidentify
from dicomsql.dicom.dicomjson import dataset_model, model_json
from dicomsql.dicom.export import (
    DEFAULT_LAYOUT,
    IMPLEMENTATION_CLASS_UID,
    OPTIONS,
    ExportError,
    burned_in,
    layout_path,
    part10,
)
from dicomsql.dicom.header import read_dataset
from dicomsql.dicom.pixels import Image, decode
from dicomsql.errors import DicomsqlError
from dicomsql.options import OptionError, parse
from dicomsql.storage import EXPORT_ROOTS_VARIABLE, export_roots_value, write_file

from .conftest import require_command
from .reference import READABLE

KEY = b"a key of the test"


def _meta(path) -> tuple[dict, set[str]]:
    """The file's meta as the ``dicom`` source gives it, and the tags it left out as invalid."""
    with open(path, "rb") as fp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, invalid = dataset_model(read_dataset(fp), str(path))
    return json.loads(model_json(model)), set(invalid)


def _resavable(path) -> bool:
    """Whether pydicom itself writes the file again as a Part 10 file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pydicom.dcmwrite(io.BytesIO(), pydicom.dcmread(path), enforce_file_format=True)
    except Exception:  # noqa: BLE001 - whatever pydicom refuses
        return False
    return True


def _exportable() -> list:
    files = []
    for path in READABLE:
        if path.suffix == ".dcm" and _resavable(path):
            try:
                _meta(path)
            except ValueError:  # a row error of the dicom source (truncated files)
                continue
            files.append(path)
    return files


EXPORTABLE = _exportable()


def _pixels(dataset):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dataset.pixel_array
    except Exception:  # noqa: BLE001 - pydicom has no decoder for it
        return None


def _compared(dataset, invalid: set[str]) -> dict:
    """The elements compared: not the file meta, group lengths, trailing padding, pixel data
    (compared decoded) or values the header reader left out as invalid."""
    return {
        element.tag: element.value
        for element in dataset
        if element.tag.group != 0x0002
        and element.tag.element != 0
        and element.tag not in (0xFFFCFFFC, 0x7FE00010)
        and f"{element.tag:08X}" not in invalid
    }


def test_there_are_enough_exportable_files():
    assert len(EXPORTABLE) >= 55


@pytest.mark.parametrize("path", EXPORTABLE, ids=lambda p: p.name)
def test_export_keeps_every_element_value_and_the_pixels(path):
    model, invalid = _meta(path)
    dataset, data = part10(model, path.read_bytes())
    written = pydicom.dcmread(io.BytesIO(data))
    original = pydicom.dcmread(path, force=True)
    assert _compared(written, invalid) == _compared(original, invalid)
    expected = _pixels(original)
    if expected is not None:
        np.testing.assert_array_equal(_pixels(written), expected)
    meta = written.file_meta
    assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert meta.MediaStorageSOPClassUID == written.get(
        "SOPClassUID", original.file_meta.get("MediaStorageSOPClassUID")
    )
    assert meta.MediaStorageSOPInstanceUID == written.get(
        "SOPInstanceUID", original.file_meta.get("MediaStorageSOPInstanceUID")
    )
    big_endian = "1.2.840.10008.1.2.2"
    kept = original.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2.1")
    assert meta.TransferSyntaxUID == ("1.2.840.10008.1.2.1" if kept == big_endian else kept)


@pytest.mark.parametrize(
    "syntax", ["explicit", "implicit", "deflated", "rle", "jpeg2000", "jpegls"]
)
def test_lossless_transfer_syntaxes_keep_the_pixels(syntax):
    written = errors = 0
    for path in EXPORTABLE:
        original = pydicom.dcmread(path, force=True)
        expected = _pixels(original)
        if expected is None:
            continue
        try:
            _, data = part10(_meta(path)[0], path.read_bytes(), transfer_syntax=syntax)
        except ExportError as exc:  # e.g. RLE of 1-bit images: the reason is given
            assert "cannot encode" in str(exc)
            errors += 1
            continue
        back = pydicom.dcmread(io.BytesIO(data))
        assert back.SOPInstanceUID == original.SOPInstanceUID
        np.testing.assert_array_equal(_pixels(back), expected, err_msg=path.name)
        written += 1
    assert written >= 25 and written > 2 * errors


def test_dcmftest_accepts_every_written_file(tmp_path):
    dcmftest = require_command("dcmftest", "dcmtk")
    paths = []
    for syntax in ("keep", "explicit", "rle", "jpeg2000", "jpegls"):
        for path in EXPORTABLE:
            try:
                _, data = part10(_meta(path)[0], path.read_bytes(), transfer_syntax=syntax)
            except ExportError:
                continue
            paths.append(tmp_path / f"{syntax}-{path.name}")
            paths[-1].write_bytes(data)
    result = subprocess.run([dcmftest, *map(str, paths)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    assert result.stdout.count("yes: ") == len(paths) > 150, result.stdout


def test_a_derived_image_is_written_with_pixel_attributes_to_match(tmp_path):
    path = next(p for p in EXPORTABLE if p.name == "CT_small.dcm")
    smooth = np.linspace(-1000.5, 2999.25, 12 * 10).reshape(12, 10)
    image = Image(12, 10, 1, 1, "MONOCHROME2", [0.5, 0.25], (40.0, 400.0), smooth)
    dataset, data = part10(_meta(path)[0], path.read_bytes(), image)
    (tmp_path / "derived.dcm").write_bytes(data)
    back = decode(tmp_path / "derived.dcm")
    assert (back.rows, back.columns, back.pixel_spacing, back.window) == (
        12,
        10,
        [0.5, 0.25],
        (40.0, 400.0),
    )
    slope = (smooth.max() - smooth.min()) / 65535
    np.testing.assert_allclose(back.data, smooth, atol=slope)
    written = pydicom.dcmread(tmp_path / "derived.dcm")
    original = pydicom.dcmread(path)
    assert written.SOPInstanceUID != original.SOPInstanceUID
    assert written.file_meta.MediaStorageSOPInstanceUID == written.SOPInstanceUID
    assert list(written.ImageType[:2]) == ["DERIVED", "SECONDARY"]
    assert written.SourceImageSequence[0].ReferencedSOPInstanceUID == original.SOPInstanceUID
    assert (written.BitsAllocated, written.SamplesPerPixel, "NumberOfFrames" in written) == (
        16,
        1,
        False,
    )
    # the same image again gets the same instance UID (a re-export replaces, not duplicates)
    assert part10(_meta(path)[0], path.read_bytes(), image)[0].SOPInstanceUID == (
        written.SOPInstanceUID
    )


def test_integer_and_colour_images_are_exact():
    path = next(p for p in EXPORTABLE if p.name == "CT_small.dcm")
    model = _meta(path)[0]
    integers = np.arange(-50, 70, dtype=float).reshape(10, 12)
    _, data = part10(
        model, path.read_bytes(), Image(10, 12, 1, 1, "MONOCHROME2", None, None, integers)
    )
    np.testing.assert_array_equal(decode(data).data, integers)
    wide = np.arange(0, 40000, dtype=float).reshape(200, 200)  # integers beyond int16
    _, data = part10(
        model, path.read_bytes(), Image(200, 200, 1, 1, "MONOCHROME2", None, None, wide)
    )
    np.testing.assert_array_equal(decode(data, dtype=np.float64).data, wide)
    colour = np.random.default_rng(1).integers(0, 256, (6, 5, 3)).astype(float)
    _, data = part10(model, path.read_bytes(), Image(6, 5, 1, 3, "RGB", None, None, colour), "rle")
    back = decode(data)
    assert back.photometric == "RGB"
    np.testing.assert_array_equal(back.data, colour)


def test_derived_instances_differ_by_what_the_image_is():
    path = next(p for p in EXPORTABLE if p.name == "CT_small.dcm")
    model = {**_meta(path)[0], "00080008": {"vr": "CS", "Value": ["ORIGINAL"]}}  # VM 1
    flat = part10(
        model, path.read_bytes(), Image(4, 8, 1, 1, "MONOCHROME2", None, None, np.zeros((4, 8)))
    )[0]
    tall = part10(
        model, path.read_bytes(), Image(8, 4, 1, 1, "MONOCHROME2", None, None, np.zeros((8, 4)))
    )[0]
    assert flat.SOPInstanceUID != tall.SOPInstanceUID
    assert list(flat.ImageType) == ["DERIVED", "SECONDARY"]
    assert uuid.UUID(int=int(flat.SOPInstanceUID[5:])).version == 8


def test_big_endian_binary_values_are_written_little_endian():
    for words in (300, 600):  # InlineBinary in meta, and by BulkDataURI
        dataset = pydicom.Dataset()
        dataset.SOPClassUID, dataset.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", "1.2.3.4"
        dataset.Rows = dataset.Columns = 2
        dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
        dataset.BitsAllocated = dataset.BitsStored = 16
        dataset.HighBit, dataset.PixelRepresentation = 15, 0
        dataset.add_new(0x00281201, "OW", np.arange(words, dtype=">u2").tobytes())
        dataset.add_new(0x7FE00010, "OW", np.arange(4, dtype=">u2").tobytes())
        dataset.file_meta = pydicom.dataset.FileMetaDataset()
        dataset.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.2"
        dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        big = io.BytesIO()
        pydicom.dcmwrite(big, dataset, enforce_file_format=True)
        model, _ = dataset_model(read_dataset(io.BytesIO(big.getvalue())), "x.dcm")
        written = pydicom.dcmread(
            io.BytesIO(part10(json.loads(model_json(model)), big.getvalue())[1])
        )
        assert written.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        assert np.frombuffer(written[0x00281201].value, "<u2")[:4].tolist() == [0, 1, 2, 3]
        assert written.pixel_array.ravel().tolist() == [0, 1, 2, 3]


def test_bad_rows_are_errors_that_say_why():
    path = next(p for p in EXPORTABLE if p.name == "CT_small.dcm")
    model = _meta(path)[0]
    with pytest.raises(ExportError, match="no SOPClassUID or SOPInstanceUID"):
        part10(
            {k: v for k, v in model.items() if k not in ("00080018", "00020003")}, path.read_bytes()
        )
    with pytest.raises(ExportError, match="not a valid DICOM JSON"):
        part10({"00100010": {"vr": "PN", "Value": 3}})
    with pytest.raises(ExportError, match="NaN"):
        nan = np.array([[1.0, np.nan]])
        part10(model, path.read_bytes(), Image(1, 2, 1, 1, "MONOCHROME2", None, None, nan))
    uids = {key: model[key] for key in ("00080016", "00080018")}
    bulk = {**uids, "00281201": {"vr": "OW", "BulkDataURI": "file.dcm"}}
    with pytest.raises(ExportError, match=r"\(0028,1201\) is in meta by reference only"):
        part10(bulk)


def test_layout_places_files_by_their_attributes_safely():
    dataset = pydicom.Dataset()
    dataset.PatientID, dataset.StudyInstanceUID = "../etc", "1.2"
    dataset.SeriesInstanceUID, dataset.SOPInstanceUID = "1.2.3", "1.2.3.4"
    assert layout_path(dataset) == "_etc/1.2/1.2.3/1.2.3.4.dcm"
    dataset.PatientID = ".."
    assert layout_path(dataset, "{PatientID}/{Modality}-{SOPInstanceUID}.dcm") == (
        "unknown/unknown-1.2.3.4.dcm"
    )
    assert str(parse(None, OPTIONS)["layout"]) == DEFAULT_LAYOUT
    for bad, why in [
        ("/abs/{PatientID}.dcm", "relative path"),
        ("{PatientID}/../{SOPInstanceUID}", "relative path"),
        ("fixed.dcm", "relative path"),
        ("{PatientId}/{SOPInstanceUID}", "PatientId is none"),
        # format specs bring back what the template may not hold: '', '.', '/'
        ("{PatientID:.0}../{PatientID:.0}../bob/{SOPInstanceUID}.dcm", "no format specs"),
        ("{PatientID:/>1.0}etc/cron.d/x{SOPInstanceUID:.0}", "no format specs"),
        ("{PatientID!r}/{SOPInstanceUID}", "no format specs"),
        ("{PatientID:{SOPInstanceUID}}", "no format specs"),
        ("{}/{SOPInstanceUID}", "is none"),
    ]:
        with pytest.raises(OptionError, match=why):
            parse({"layout": bad}, OPTIONS, where="dicom_export")


def test_burned_in_text_is_flagged():
    ct = _meta(next(p for p in EXPORTABLE if p.name == "CT_small.dcm"))[0]
    assert not burned_in(ct)
    assert burned_in({**ct, "00280301": {"vr": "CS", "Value": ["YES"]}})
    capture = {**ct, "00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.7"]}}
    assert burned_in(capture)
    assert not burned_in({**capture, "00280301": {"vr": "CS", "Value": ["NO"]}})
    assert not burned_in({k: v for k, v in capture.items() if k != "00280010"})  # no image


def test_a_deidentified_file_holds_no_identifying_string(tmp_path):
    for path in EXPORTABLE:
        model = _meta(path)[0]
        identifying = [
            value
            for element in (
                model.get(t) or {} for t in ("00100010", "00100020", "00100030", "00080050")
            )
            for value in element.get("Value") or []
        ]
        texts = [v["Alphabetic"] if isinstance(v, dict) else str(v) for v in identifying]
        texts = [text for text in texts if len(text) >= 4]
        _, data = part10(deidentify(model, None, KEY), path.read_bytes())
        for text in texts:
            assert text.encode() not in data, (path.name, text)
        written = pydicom.dcmread(io.BytesIO(data))
        assert written.PatientIdentityRemoved == "YES"


# --- writing files: whole or not at all, within the export roots ---------------------------


def test_files_are_written_whole_private_and_only_once(tmp_path):
    target = tmp_path / "a" / "b" / "file.dcm"
    write_file(str(target), b"first")
    assert target.read_bytes() == b"first"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    for folder in (tmp_path / "a", tmp_path / "a" / "b"):  # every folder made, not the last only
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    write_file(str(target), b"first")  # the same bytes again: nothing to do
    with pytest.raises(DicomsqlError, match="exists .option overwrite"):
        write_file(str(target), b"second")
    write_file(str(target), b"second", overwrite=True)
    assert target.read_bytes() == b"second"
    assert sorted(os.listdir(target.parent)) == ["file.dcm"]  # no temporary file left


def test_the_same_file_written_at_once_twice_is_no_error(tmp_path):
    target = str(tmp_path / "f.dcm")  # a task and its speculative copy, say
    for _ in range(20):
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda _: write_file(target, b"same bytes"), range(2)))
        os.unlink(target)
    assert os.listdir(tmp_path) == []


def test_writes_stay_within_the_export_roots(tmp_path, monkeypatch):
    root, elsewhere = tmp_path / "exports", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / "escape").symlink_to(elsewhere)
    monkeypatch.setenv(EXPORT_ROOTS_VARIABLE, export_roots_value([str(root)]))
    write_file(str(root / "inside" / "f.dcm"), b"x")
    for outside in (
        elsewhere / "f.dcm",
        root / ".." / "elsewhere" / "f.dcm",
        root / "escape" / "f.dcm",
    ):
        with pytest.raises(DicomsqlError, match="outside the export roots"):
            write_file(str(outside), b"x")
    assert list(elsewhere.iterdir()) == []
    with pytest.raises(DicomsqlError, match="local folders only"):
        write_file("s3://bucket/f.dcm", b"x")
    monkeypatch.setenv(EXPORT_ROOTS_VARIABLE, export_roots_value([]))
    with pytest.raises(DicomsqlError, match=r"export roots \(none\)"):
        write_file(str(root / "f.dcm"), b"x")


# --- dicom_export and dicom_burned_in in SQL ----------------------------------------------


def _export(spark, query: str, out_dir, options: str = "") -> list:
    extra = f", map({options})" if options else ""
    return spark.sql(
        f"SELECT * FROM dicom_export(TABLE({query}), '{out_dir}'{extra}) ORDER BY source"
    ).collect()


def test_dicom_export_writes_files_that_read_back_the_same(spark, tmp_path):
    query = "SELECT meta, path FROM demo_images WHERE PatientID IN ('DEMO-0001', 'DEMO-0002')"
    rows = _export(spark, query, tmp_path)
    assert len(rows) == 24 and [row.error for row in rows] == [None] * 24
    for row in rows:
        original, written = pydicom.dcmread(row.source), pydicom.dcmread(row.written)
        assert row.written.startswith(
            f"{tmp_path}/{original.PatientID}/{original.StudyInstanceUID}/"
        )
        assert row.written.endswith(f"/{original.SOPInstanceUID}.dcm")
        assert os.path.getsize(row.written) == row.bytes
        assert _compared(written, set()) == _compared(original, set())
        np.testing.assert_array_equal(written.pixel_array, original.pixel_array)
    back = spark.read.format("dicom").load(str(tmp_path))
    assert back.filter("_corrupt_record IS NULL").count() == 24
    dcmftest = require_command("dcmftest", "dcmtk")
    checked = subprocess.run(
        [dcmftest, *(row.written for row in rows)], capture_output=True, text=True
    )
    assert checked.stdout.count("yes: ") == 24, checked.stdout

    # the same files again are no error (Spark may run a task twice: ORDER BY samples its input)
    assert _export(spark, query, tmp_path) == rows
    other = _export(spark, query, tmp_path, "'transfer_syntax', 'jpeg2000'")  # other bytes: kept
    assert {row.error.split(" exists ")[1] for row in other} == {
        "(option overwrite 'true' replaces it)"
    }
    replaced = _export(spark, query, tmp_path, "'overwrite', 'true', 'transfer_syntax', 'jpeg2000'")
    assert [row.error for row in replaced] == [None] * 24
    assert (
        pydicom.dcmread(replaced[0].written).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
    )


def test_dicom_export_deidentifies_and_writes_derived_images(spark, tmp_path):
    query = (
        "SELECT meta, path, image_resize(path, 16, 16) AS image FROM demo_images "
        "WHERE PatientID = 'DEMO-0003'"
    )
    rows = _export(
        spark, query, tmp_path, "'deidentify', 'basic', 'layout', '{SOPInstanceUID}.dcm'"
    )
    assert len(rows) == 12 and [row.error for row in rows] == [None] * 12
    for row in rows:
        original, written = pydicom.dcmread(row.source), pydicom.dcmread(row.written)
        assert (written.Rows, written.Columns) == (16, 16)
        assert written.ImageType[:2] == ["DERIVED", "SECONDARY"]
        assert written.PatientIdentityRemoved == "YES"
        assert written.SOPInstanceUID != original.SOPInstanceUID
        data = open(row.written, "rb").read()
        for text in (original.PatientID, str(original.PatientName), original.StudyInstanceUID):
            assert text.encode() not in data
    dcmftest = require_command("dcmftest", "dcmtk")
    checked = subprocess.run([dcmftest, *(r.written for r in rows)], capture_output=True, text=True)
    assert checked.stdout.count("yes: ") == 12, checked.stdout
    studies = {pydicom.dcmread(row.written).StudyInstanceUID for row in rows}
    assert len(studies) == len({pydicom.dcmread(row.source).StudyInstanceUID for row in rows})


def test_dicom_export_bad_rows_and_arguments(spark, tmp_path):
    rows = spark.sql(
        "SELECT * FROM dicom_export(TABLE(SELECT 'not json' AS meta UNION ALL "
        f"SELECT NULL AS meta), '{tmp_path}')"
    ).collect()
    assert sorted(row.error for row in rows) == [
        "meta is not DICOM JSON text",
        "no meta, path or content to write",
    ]
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(Exception, match="dicom_export.*transfer_syntax"):
        _export(
            spark,
            "SELECT meta, path FROM demo_images LIMIT 1",
            tmp_path,
            "'transfer_syntax', 'gif'",
        )
    with pytest.raises(Exception, match="dicom_export.*out_dir.*absolute"):
        _export(spark, "SELECT meta, path FROM demo_images LIMIT 1", "relative/folder")


def test_dicom_burned_in_flags_captures_and_ultrasound(spark, shipped):
    flagged = dict(
        spark.sql(
            f"SELECT Modality, max(dicom_burned_in(meta)) FROM {shipped} "
            "WHERE Modality IN ('US', 'CT') GROUP BY Modality"
        ).collect()
    )
    assert flagged == {"US": True, "CT": False}


def test_dicom_export_refuses_burned_in_images_when_deidentifying(spark, shipped, tmp_path):
    query = f"SELECT meta, path FROM {shipped} WHERE path LIKE '%/SC_rgb_small_odd.dcm'"
    (refused,) = _export(spark, query, tmp_path, "'deidentify', 'basic'")
    assert "may carry burned-in text" in refused.error and refused.written is None
    (kept,) = _export(spark, query, tmp_path, "'deidentify', 'basic', 'allow_burned_in', 'true'")
    assert kept.error is None and pydicom.dcmread(kept.written).PatientIdentityRemoved == "YES"


def test_dataframes_are_written_as_dicom_files(spark, tmp_path):
    rows = spark.table("demo_images").where("PatientID = 'DEMO-0004'").select("meta", "path")
    by_modality = {"layout": "{Modality}/{SOPInstanceUID}.dcm"}
    rows.write.format("dicom").options(**by_modality).mode("append").save(str(tmp_path))
    written = sorted(tmp_path.rglob("*.dcm"))
    assert len(written) == 12 and {p.parent.name for p in written} == {"CT", "MR"}
    originals = {pydicom.dcmread(r.path).SOPInstanceUID: r.path for r in rows.collect()}
    for path in written:
        copy = pydicom.dcmread(path)
        original = pydicom.dcmread(originals[copy.SOPInstanceUID])
        np.testing.assert_array_equal(copy.pixel_array, original.pixel_array)
    # mode overwrite replaces; other bytes without it fail the job, naming the rows
    jpeg2000 = {**by_modality, "transfer_syntax": "jpeg2000"}
    rows.write.format("dicom").options(**jpeg2000).mode("overwrite").save(str(tmp_path))
    syntaxes = {pydicom.dcmread(p).file_meta.TransferSyntaxUID for p in written}
    assert syntaxes == {"1.2.840.10008.1.2.4.90"}
    with pytest.raises(
        Exception, match=r"12 of 12 rows were not written \(0 files were\): .* exists"
    ):
        rows.write.format("dicom").options(**by_modality).mode("append").save(str(tmp_path))
    with pytest.raises(Exception, match="dicom writer: option transfer_syntax must be one of"):
        rows.write.format("dicom").option("transfer_syntax", "gif").mode("append").save("/tmp")

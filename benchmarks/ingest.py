"""Benchmark: reading DICOM headers through SQL against plain pydicom loops, in one run.

    .venv/bin/python benchmarks/ingest.py [--files 5000] [--size 512] [--headers demo|small]

Writes (once, cached under benchmarks/out/) N synthetic CT files: with ``--headers demo`` the
demo's CT series (size x size pixels, five transfer syntaxes: explicit/implicit little endian,
deflated, RLE, JPEG 2000); with ``--headers small`` files of 14 attributes and 8 x 8 pixels.
Then it measures, on the same files:

  a  a plain single-process pydicom loop doing the same extraction (core tags + DICOM JSON)
  b  the same loop over a 2-process multiprocessing pool
  r  dicomsql's own reader over a 2-process pool: listing and planning as the source does, then
     each partition read into Arrow batches: the work Spark's planner and tasks do, in Python
  c  SELECT count(*), count(DISTINCT PatientID), ... FROM a dicom view, forcing every column:
     the first query of a fresh JVM, and the best of 3 after a warm-up (as in a running server)
  d  the same query on the catalog made by `dicomsql ingest` (the ingest itself is timed too)

and prints files/s for each and the ratios c/a, c/b, c/r, d/c. Targets (2 cores): c/a >= 1.6,
c/r >= 0.85 (Spark's share of the scan at most 15%).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.pool
import tempfile
import time
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pyspark.sql.types import StructType

from dicomsql.demo import CT_SLICES, demo_is_complete, write_demo
from dicomsql.dicom.header import CORE_KEYWORDS
from dicomsql.source.datasource import DicomDataSource, FilesPartition

OUT = Path(__file__).parent / "out"
#: queries run before the warm measurement of c
WARM_UP = 12
QUERY = (
    "SELECT count(*), count(DISTINCT PatientID), sum(length(meta)), "
    "count(_corrupt_record), max(hash(*)) FROM {relation}"
)


def plain_pydicom(path: str) -> int:
    """What a hand-written pydicom loop does per file: core attributes and DICOM JSON."""
    dataset = pydicom.dcmread(path, stop_before_pixels=True)
    values = [dataset.get(keyword) for keyword in CORE_KEYWORDS]
    model = {**dataset.file_meta.to_json_dict(), **dataset.to_json_dict()}
    return len(json.dumps(model)) + len(values)


def cohort(files: int, size: int, headers: str) -> tuple[Path, list[str]]:
    """The cohort's images folder and its files, written on the first run."""
    folder = OUT / (f"ct-{files}-{size}" if headers == "demo" else f"small-{files}")
    if headers == "demo" and not demo_is_complete(folder):
        started = time.monotonic()
        write_demo(folder, patients=-(-files // CT_SLICES), size=size, modalities=("CT",))
        print(
            f"wrote {files} files of {size}x{size} in {time.monotonic() - started:.0f}s to {folder}"
        )
    if headers == "small" and not (folder / "complete").exists():
        write_small_headers(folder / "images", files)
        (folder / "complete").touch()
    return folder / "images", sorted(str(p) for p in (folder / "images").rglob("*.dcm"))


def write_small_headers(folder: Path, files: int, first: int = 0) -> None:
    """``files`` CT images of 14 attributes and 8 x 8 pixels, 100 per series, numbered from
    ``first`` (their UIDs and patients follow the number)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(first, first + files):
        dataset = Dataset()
        dataset.SOPClassUID = CTImageStorage
        dataset.SOPInstanceUID = f"2.25.{index + 1}"
        dataset.StudyInstanceUID = f"2.25.{10**9 + index // 100}"
        dataset.SeriesInstanceUID = f"2.25.{2 * 10**9 + index // 100}"
        dataset.PatientID = f"P{index // 100:05d}"
        dataset.Modality = "CT"
        dataset.InstanceNumber = index % 100 + 1
        dataset.Rows = dataset.Columns = 8
        dataset.SamplesPerPixel = 1
        dataset.PhotometricInterpretation = "MONOCHROME2"
        dataset.BitsAllocated = dataset.BitsStored = 16
        dataset.PixelRepresentation = 0
        dataset.HighBit = 15
        dataset.PixelData = bytes(128)
        dataset.file_meta = FileMetaDataset()
        dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dataset.save_as(folder / f"{index:06d}.dcm", enforce_file_format=True)


def own_reader(job: tuple[dict, str, FilesPartition]) -> int:
    """Rows read from one partition by the ``dicom`` source's reader, outside Spark."""
    options, schema, partition = job
    reader = DicomDataSource(options).reader(StructType.fromJson(json.loads(schema)))
    return sum(batch.num_rows for batch in reader.read(partition))


def own_reader_pool(pool: multiprocessing.pool.Pool, options: dict, schema: StructType) -> int:
    """Rows read by :func:`own_reader` in ``pool`` after listing and planning as the source
    does."""
    partitions = DicomDataSource(options).reader(schema).partitions()
    jobs = [(options, schema.json(), partition) for partition in partitions]
    return sum(pool.map(own_reader, jobs, chunksize=1))


def timed(label: str, count: int, work, repeat: int = 1) -> float:
    """Files per second of the best of ``repeat`` runs."""
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    rate = count / min(seconds)
    print(f"{label:<58} {min(seconds):7.2f}s {rate:9,.0f} files/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--headers", choices=("demo", "small"), default="demo")
    args = parser.parse_args()
    images, paths = cohort(args.files, args.size, args.headers)
    folder = str(images)
    print(f"{len(paths)} files, 2 cores\n")

    a = timed("a  pydicom loop, 1 process", len(paths), lambda: [plain_pydicom(p) for p in paths])
    with multiprocessing.Pool(2) as pool:
        pool.map(plain_pydicom, paths[:20])  # start the workers
        b = timed(
            "b  pydicom loop, 2-process pool",
            len(paths),
            lambda: pool.map(plain_pydicom, paths, chunksize=64),
            repeat=3,
        )

    import dicomsql
    from dicomsql.client import EmbeddedClient
    from dicomsql.ingest import ingest

    with tempfile.TemporaryDirectory() as home:
        spark = dicomsql.session(master="local[2]", home=home)
        # start the Python workers and the metastore, as a running server has them
        spark.read.format("dicom").load(paths[:40]).selectExpr("max(hash(*))").collect()
        spark.sql("SHOW TABLES").collect()
        spark.sql(f"CREATE TEMPORARY VIEW ct USING dicom OPTIONS (path '{folder}')")
        options = {"path": folder}
        schema = spark.table("ct").schema

        def scan() -> None:
            spark.sql(QUERY.format(relation="ct")).collect()

        with multiprocessing.get_context("spawn").Pool(2) as pool:
            pool.map(own_reader, [(options, schema.json(), FilesPartition(0, ()))] * 2)
            r = timed(
                "r  dicomsql's reader, 2-process pool",
                len(paths),
                lambda: own_reader_pool(pool, options, schema),
                3,
            )
        timed("c  SQL over the dicom source (local[2]), first query", len(paths), scan)
        # a server's JVM has compiled Spark's code paths; a fresh one spends up to a core
        # second per query in its JIT compiler threads over the first dozen queries
        for _ in range(WARM_UP - 1):
            scan()
        c = timed(f"c  the same, after {WARM_UP} queries (the JIT warm)", len(paths), scan, 3)
        timed(
            "   dicomsql ingest into a Parquet catalog",
            len(paths),
            lambda: ingest(EmbeddedClient(spark).execute, "catalog", [folder]),
        )
        d = timed(
            "d  SQL over the ingested catalog",
            len(paths),
            lambda: spark.sql(QUERY.format(relation="catalog")).collect(),
        )
        spark.stop()

    print(f"\nc/a = {c / a:.2f}  (target >= 1.6)")
    print(f"c/b = {c / b:.2f}")
    print(f"c/r = {c / r:.2f}  (target >= 0.85)")
    print(f"d/c = {d / c:.1f}")


if __name__ == "__main__":
    main()

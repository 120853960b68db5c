"""Benchmark: reading DICOM headers through SQL against plain pydicom loops, in one run.

    .venv/bin/python benchmarks/ingest.py [--files 5000] [--size 512]

Writes (once, cached under benchmarks/out/) N synthetic CT files of size x size pixels in
five transfer syntaxes (explicit/implicit little endian, deflated, RLE, JPEG 2000), then
measures, on the same files:

  a  a plain single-process pydicom loop doing the same extraction (core tags + DICOM JSON)
  b  the same loop over a 2-process multiprocessing pool
  c  SELECT count(*), count(DISTINCT PatientID), ... FROM a dicom view, forcing every column
  d  the same query on the catalog made by `dicomsql ingest` (the ingest itself is timed too)

and prints files/s for each and the ratios c/a, c/b, d/c. Targets (2 cores): c/a >= 1.6,
c/b >= 0.85.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
from pathlib import Path

import pydicom

from dicomsql.demo import CT_SLICES, demo_is_complete, write_demo
from dicomsql.dicom.header import CORE_KEYWORDS

OUT = Path(__file__).parent / "out"
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


def cohort(files: int, size: int) -> list[str]:
    folder = OUT / f"ct-{files}-{size}"
    if not demo_is_complete(folder):
        started = time.monotonic()
        write_demo(folder, patients=-(-files // CT_SLICES), size=size, modalities=("CT",))
        print(
            f"wrote {files} files of {size}x{size} in {time.monotonic() - started:.0f}s to {folder}"
        )
    return sorted(str(p) for p in (folder / "images").rglob("*.dcm"))


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
    args = parser.parse_args()
    paths = cohort(args.files, args.size)
    folder = str(Path(paths[0]).parents[2])
    print(f"{len(paths)} files, 2 cores\n")

    a = timed("a  pydicom loop, 1 process", len(paths), lambda: [plain_pydicom(p) for p in paths])
    with multiprocessing.Pool(2) as pool:
        pool.map(plain_pydicom, paths[:20])  # start the workers
        b = timed(
            "b  pydicom loop, 2-process pool",
            len(paths),
            lambda: pool.map(plain_pydicom, paths, chunksize=64),
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
        c = timed(
            "c  SQL over the dicom source (local[2])",
            len(paths),
            lambda: spark.sql(QUERY.format(relation="ct")).collect(),
        )
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
    print(f"c/b = {c / b:.2f}  (target >= 0.85)")
    print(f"d/c = {d / c:.1f}")


if __name__ == "__main__":
    main()

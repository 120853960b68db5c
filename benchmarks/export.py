"""Benchmark: writing DICOM files from SQL (dicom_export) against pydicom loops, in one run.

    .venv/bin/python benchmarks/export.py [--files 1200]

The demo's 64 x 64 CT and MR files (several transfer syntaxes), written once under
benchmarks/out/ (shared with pixels.py). Each way reads every file and writes it again under
<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm in a new folder:

  a  a plain pydicom loop: dcmread, save_as (made folders, no file meta of its own)
  b  the same over a 2-process pool
  c  SELECT ... FROM dicom_export(TABLE(SELECT meta, path FROM files), out) (local[2]): the
     header scan, Part 10 files with dicomsql's file meta, each written atomically
  d  c with map('deidentify', 'basic'): the Basic Profile applied to every header
  e  c with map('transfer_syntax', 'jpeg2000'): every image re-encoded losslessly

Each is the best of 2 runs into fresh folders, after starting the pool's processes and
Spark's Python workers. Prints files/s and c/a, c/b, d/c, e/c.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import pydicom

sys.path.insert(0, str(Path(__file__).parent))

from pixels import OUT, small_cohort, timed

TARGET = OUT / "export-target"


def pydicom_copy(job: tuple[str, str]) -> int:
    """Read one file and write it under ``folder`` by the default layout."""
    path, folder = job
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        target = Path(folder, ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID)
        target.mkdir(parents=True, exist_ok=True)
        ds.save_as(target / f"{ds.SOPInstanceUID}.dcm")
    return 1


def fresh(name: str) -> str:
    folder = TARGET / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=1200)
    args = parser.parse_args()
    paths = small_cohort(args.files)
    print(f"{len(paths)} files of 64 x 64; 2 cores\n")

    a = max(
        timed(
            "a  pydicom loop, 1 process",
            len(paths),
            lambda folder=folder: [pydicom_copy((p, folder)) for p in paths],
        )[0]
        for folder in (fresh("a1"), fresh("a2"))
    )
    with multiprocessing.Pool(2) as pool:
        pool.map(pydicom_copy, [(p, fresh("warm")) for p in paths[:10]])
        b = max(
            timed(
                "b  pydicom loop, 2-process pool",
                len(paths),
                lambda folder=folder: pool.map(
                    pydicom_copy, [(p, folder) for p in paths], chunksize=16
                ),
            )[0]
            for folder in (fresh("b1"), fresh("b2"))
        )

    import dicomsql

    with tempfile.TemporaryDirectory() as home:
        spark = dicomsql.session(master="local[2]", home=home)
        folder = Path(paths[0]).parents[2]  # <cohort>/images/<PatientID>/<series>/<file>
        assert len(list(folder.rglob("*.dcm"))) == len(paths), "--files: a multiple of 12"
        spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW files USING dicom OPTIONS (path '{folder}')")
        wanted = "SELECT meta, path FROM files"

        def export(label: str, options: str = "") -> float:
            """Files per second of the best of 2 exports into fresh folders."""
            extra = f", map({options})" if options else ""
            return max(
                timed(
                    f"{label}  dicom_export {options or '(keep)'}",
                    len(paths),
                    lambda folder=folder: _check(
                        spark,
                        f"SELECT count(*), count(error) FROM dicom_export(TABLE({wanted}), "
                        f"'{folder}'{extra})",
                        len(paths),
                    ),
                )[0]
                for folder in (fresh("c1"), fresh("c2"))
            )

        warm = f"SELECT count(*), count(error) FROM dicom_export(TABLE({wanted} LIMIT 16), '{fresh('warm')}')"
        _check(spark, warm, 16)
        c = export("c")
        d = export("d", "'deidentify', 'basic'")
        e = export("e", "'transfer_syntax', 'jpeg2000'")
        spark.stop()
    shutil.rmtree(TARGET, ignore_errors=True)

    print(f"\nc  dicom_export:             {c:9,.1f} files/s")
    print(f"d  with deidentify basic:    {d:9,.1f} files/s")
    print(f"e  re-encoded as JPEG 2000:  {e:9,.1f} files/s")
    print(f"c/a = {c / a:.2f}   c/b = {c / b:.2f}   d/c = {d / c:.2f}   e/c = {e / c:.2f}")


def _check(spark, query: str, expected: int) -> None:
    rows, errors = spark.sql(query).first()
    assert (rows, errors) == (expected, 0), (rows, errors)


if __name__ == "__main__":
    main()

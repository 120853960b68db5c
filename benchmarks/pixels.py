"""Benchmark: decoding and image statistics in SQL against pydicom loops, and cohort PCA
against numpy, in one run.

    .venv/bin/python benchmarks/pixels.py [--images 1000] [--pca-images 2000]

Images are 512 x 512 CT in five transfer syntaxes (uncompressed explicit/implicit,
deflated, RLE, JPEG 2000), written once under benchmarks/out/ (shared with ingest.py).

  a  a plain pydicom loop: decode, rescale to HU, image statistics
  b  the same over a 2-process pool
  c  SELECT image_stats(path) over the same files (local[2])
  d  pca_fit over 2,000 images of 64 x 64 (cached in Spark) against numpy on the collected
     matrix (covariance + eigh), with the peak memory of the Python workers

a, b and c are the best of 2 runs, after starting the pool's processes and Spark's Python
workers. Prints images/s and c/a (target >= 1.7), c/b (target >= 0.9), d's ratio and memory.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut

sys.path.insert(0, str(Path(__file__).parent))

from ingest import cohort
from survival import python_worker_peak_mib

from dicomsql.demo import demo_is_complete, write_demo
from dicomsql.stats import images

OUT = Path(__file__).parent / "out"


def pydicom_stats(path: str) -> float:
    """Decode, rescale and summarise one image as a hand-written loop would."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        hu = apply_modality_lut(ds.pixel_array, ds)
    return images.summary(hu)["mean"]


def timed(label: str, count: int, work, repeat: int = 1) -> tuple[float, float]:
    """(images per second, seconds) of the best of ``repeat`` runs."""
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    best = min(seconds)
    print(f"{label:<60} {best:7.2f}s {count / best:9,.1f} images/s")
    return count / best, best


def small_cohort(count: int) -> list[str]:
    folder = OUT / f"small-{count}-64"
    if not demo_is_complete(folder):
        write_demo(folder, patients=-(-count // 12), size=64)
    return sorted(str(p) for p in (folder / "images").rglob("*.dcm"))[:count]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--pca-images", type=int, default=2000)
    args = parser.parse_args()
    paths = cohort(5000, 512)[: args.images]
    vectors_from = small_cohort(args.pca_images)
    print(
        f"{len(paths)} images of 512 x 512; PCA over {len(vectors_from)} images of 64 x 64; 2 cores\n"
    )

    a, _ = timed(
        "a  pydicom loop, 1 process",
        len(paths),
        lambda: [pydicom_stats(p) for p in paths],
        repeat=2,
    )
    with multiprocessing.Pool(2) as pool:
        pool.map(pydicom_stats, paths[:10])
        b, _ = timed(
            "b  pydicom loop, 2-process pool",
            len(paths),
            lambda: pool.map(pydicom_stats, paths, chunksize=16),
            repeat=2,
        )

    import dicomsql

    with tempfile.TemporaryDirectory() as home:
        spark = dicomsql.session(master="local[2]", home=home)
        spark.createDataFrame([(p,) for p in paths], "path STRING").repartition(
            8
        ).createOrReplaceTempView("ct")
        # start both Python workers (and their imports), as the pool's processes are started
        spark.createDataFrame([(p,) for p in paths[:16]], "path STRING").repartition(4).selectExpr(
            "image_stats(path).mean"
        ).collect()
        c, _ = timed(
            "c  SELECT image_stats(path) FROM ct",
            len(paths),
            lambda: spark.sql("SELECT image_stats(path).mean FROM ct").collect(),
            repeat=2,
        )

        vectors = (
            spark.createDataFrame([(p,) for p in vectors_from], "path STRING")
            .repartition(4)
            .selectExpr("dicom_pixels(path) AS v")
            .cache()
        )
        matrix = np.array([row.v for row in vectors.collect()], dtype=np.float64)

        def numpy_pca() -> None:
            values, components = np.linalg.eigh(np.cov(matrix, rowvar=False))
            assert components.shape == (4096, 4096) and values[-1] > 0

        def sql_pca() -> None:
            model = spark.sql("SELECT pca_fit(v, 10) AS m FROM vectors").first().m
            assert model.error is None and model.n == len(matrix)

        vectors.createOrReplaceTempView("vectors")
        _, numpy_seconds = timed(
            "   numpy: covariance + eigh of the collected matrix", len(matrix), numpy_pca, repeat=2
        )
        _, sql_seconds = timed(
            "d  SELECT pca_fit(v, 10) FROM vectors", len(matrix), sql_pca, repeat=2
        )
        peak = python_worker_peak_mib()
        spark.stop()

    print(f"\nc/a = {c / a:.2f}  (target >= 1.7)")
    print(f"c/b = {c / b:.2f}  (target >= 0.9)")
    print(
        f"pca_fit / numpy = {sql_seconds / numpy_seconds:.2f}  (d = 4,096: a 4,096 x 4,096 covariance)"
    )
    print(f"Python worker peak resident memory: {peak:,.0f} MiB")


if __name__ == "__main__":
    main()

"""Benchmark: a 100,000-record round trip through TFRecord files against Parquet, in one run.

    .venv/bin/python benchmarks/tfrecord.py [--records 100000]

One DataFrame of ``--records`` rows (an id, a label, a float, a text and an array of 16
floats: a small training example), cached, written and read back (local[2], 2 partitions):

  a  df.write.parquet(folder)                       (Spark's own writer, in the JVM)
  b  df.write.format("tfrecord").save(folder)       (Python: tf.train.Example, masked CRC32C)
  c  b with option compression 'gzip'
  d  spark.read.parquet(folder).count() of all columns (a full scan: sum of a column)
  e  spark.read.format("tfrecord").load(folder), the same scan (every CRC checked)

Each is the best of 2 runs into fresh folders, after a warm-up of each. Prints records/s and
b/a, c/a, e/d, and checks the round trip (every row read back equal; DOUBLE comes back FLOAT: TFRecord
floats are 32-bit).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).parent / "out" / "tfrecord"
QUERY = (
    "SELECT id, CAST(id % 2 AS BIGINT) AS label, CAST(id AS DOUBLE) / 7 AS score, "
    "concat('patient-', id) AS name, "
    "transform(sequence(1, 16), k -> CAST(id * k / 3 AS FLOAT)) AS features FROM range({n})"
)


def best(label: str, count: int, work, repeat: int = 2) -> float:
    """Records per second of the best of ``repeat`` runs of ``work(run)``."""
    seconds = []
    for run in range(repeat):
        started = time.perf_counter()
        work(run)
        seconds.append(time.perf_counter() - started)
    rate = count / min(seconds)
    print(f"{label:<58} {min(seconds):7.2f}s {rate:11,.0f} records/s")
    return rate


def fresh(name: str) -> str:
    folder = OUT / name
    shutil.rmtree(folder, ignore_errors=True)
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    n = args.records
    import dicomsql

    with tempfile.TemporaryDirectory() as home:
        spark = dicomsql.session(master="local[2]", home=home)
        frame = spark.sql(QUERY.format(n=n)).repartition(2).cache()
        frame.count()
        small = spark.sql(QUERY.format(n=1000))
        small.write.parquet(fresh("warm-parquet"))
        small.write.format("tfrecord").mode("append").save(fresh("warm-tfrecord"))
        spark.read.format("tfrecord").load(str(OUT / "warm-tfrecord")).count()

        a = best("a  df.write.parquet", n, lambda r: frame.write.parquet(fresh(f"a{r}")))
        b = best(
            "b  df.write.format('tfrecord')",
            n,
            lambda r: frame.write.format("tfrecord").mode("append").save(fresh(f"b{r}")),
        )
        c = best(
            "c  df.write.format('tfrecord'), gzip",
            n,
            lambda r: (
                frame.write.format("tfrecord")
                .option("compression", "gzip")
                .mode("append")
                .save(fresh(f"c{r}"))
            ),
        )
        scan = ["sum(id)", "sum(label)", "sum(score)", "count(name)", "sum(size(features))"]
        d = best(
            "d  spark.read.parquet, full scan",
            n,
            lambda r: spark.read.parquet(str(OUT / "a0")).selectExpr(*scan).collect(),
        )
        e = best(
            "e  spark.read.format('tfrecord'), full scan",
            n,
            lambda r: (
                spark.read.format("tfrecord").load(str(OUT / "b0")).selectExpr(*scan).collect()
            ),
        )
        back = spark.read.format("tfrecord").load(str(OUT / "c0")).drop("_corrupt_record")
        float32 = frame.selectExpr(
            "id", "label", "CAST(score AS FLOAT) AS score", "name", "features"
        )
        assert back.count() == n and back.exceptAll(float32).count() == 0, "round trip differs"
        sizes = {
            name: sum(p.stat().st_size for p in (OUT / name).glob("part-*"))
            for name in ("a0", "b0", "c0")
        }
        spark.stop()
    shutil.rmtree(OUT, ignore_errors=True)
    print(
        f"\nbytes: parquet {sizes['a0']:,}, tfrecord {sizes['b0']:,}, tfrecord gzip {sizes['c0']:,}"
    )
    print(f"b/a = {b / a:.2f}   c/a = {c / a:.2f}   e/d = {e / d:.2f}   (round trip equal)")


if __name__ == "__main__":
    main()

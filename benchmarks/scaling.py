"""Benchmark: the seed's four scaling curves, for three workloads, in one run.

    .venv/bin/python benchmarks/scaling.py [--sizes 1000,2000,4000,8000,16000] [--fixed 4000]

Workloads, each a SQL query over a ``dicom`` view of synthetic 64 x 64 CT files (written once,
cached under benchmarks/out/):

  header  SELECT count(*), count(DISTINCT PatientID), max(hash(*)) FROM files
  pixels  SELECT avg(image_stats(path).mean), max(image_stats(path).max) FROM files
  cox     SELECT g, coxph_fit(...) FROM cohort GROUP BY g: 50 rows per file, 20 groups

Curves (best of --repeat runs per point):

  1  time vs files (--sizes) at a fixed number of partitions (--partitions), local[2]
  2  time vs partitions (2 ... 1,000) at --fixed files, local[2]; also the source's default
  3  time vs executors (1, 2): local-cluster[E,1,1024] at --fixed files
  4  time vs cores per executor (1, 2): local-cluster[1,C,2048] at --fixed files

Each master runs in a process of its own (one SparkContext per process). Writes
benchmarks/results/scaling.csv, scaling.md (slopes, speed-ups, the minimum) and one PNG per
curve. This machine has 2 cores, so curves 3 and 4 can show at most 2 x.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ingest import cohort

RESULTS = Path(__file__).parent / "results"
PARTITIONS = (2, 4, 8, 16, 32, 64, 128, 256, 1000)
WORKLOADS = {
    "header": "SELECT count(*), count(DISTINCT PatientID), max(hash(*)) FROM files",
    "pixels": "SELECT avg(image_stats(path).mean), max(image_stats(path).max) FROM files",
    "cox": "SELECT g, coxph_fit(t, e, struct(x1, x2, x3)).coef FROM cohort GROUP BY g",
}
COHORT = """CREATE OR REPLACE TEMPORARY VIEW cohort AS
SELECT id % 20 AS g, x1, x2, x3, rand(3) < 0.7 AS e,
       -ln(rand(4)) / exp(0.5 * x1 - 0.3 * x2 + 0.2 * x3) AS t
FROM (SELECT id, randn(1) AS x1, randn(2) AS x2, rand(5) AS x3
      FROM range(0, {rows}, 1, {partitions}))"""


def measure(master: str, points: list[dict], repeat: int) -> list[dict]:
    """Run each point (files, partitions or None for the default, workload) on ``master``;
    the best of ``repeat`` runs in seconds."""
    import dicomsql

    results = []
    with tempfile.TemporaryDirectory() as home:
        spark = dicomsql.session(master=master, home=home)
        warm_up(spark, cohort(points[0]["files"], 64, "demo")[1][:40])
        for point in points:
            folder = cohort(point["files"], 64, "demo")[0]
            partitions = point["partitions"]
            option = f", numPartitions '{partitions}'" if partitions else ""
            spark.sql(
                f"CREATE OR REPLACE TEMPORARY VIEW files USING dicom "
                f"OPTIONS (path '{folder}'{option})"
            )
            spark.sql(COHORT.format(rows=50 * point["files"], partitions=partitions or 4)).collect()
            query = WORKLOADS[point["workload"]]
            seconds = []
            for _ in range(repeat):
                started = time.perf_counter()
                spark.sql(query).collect()
                seconds.append(time.perf_counter() - started)
            results.append({**point, "master": master, "seconds": min(seconds)})
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        spark.stop()
    return results


def warm_up(spark, paths: list[str]) -> None:
    """Each workload once on ``paths``: the JVM's compiled code and each workload's Python
    workers (their imports) are there before the first measured point."""
    spark.read.format("dicom").load(paths).createOrReplaceTempView("files")
    spark.sql(COHORT.format(rows=50 * len(paths), partitions=2)).collect()
    for query in WORKLOADS.values():
        spark.sql(query).collect()


def run(master: str, points: list[dict], repeat: int) -> list[dict]:
    """:func:`measure` in a subprocess of its own."""
    done = subprocess.run(
        [sys.executable, __file__, "--measure", master, "--repeat", str(repeat)],
        input=json.dumps(points),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"{master}: failed\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def slope(xs, ys) -> float:
    return float(np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)[0])


def summary(rows: list[dict], sizes: list[int], fixed: int, partitions: int) -> str:
    by = {(r["curve"], r["workload"], r["x"]): r["seconds"] for r in rows}
    lines = [
        "# Scaling curves",
        "",
        "Measured by `benchmarks/scaling.py` on this machine (2 cores); seconds are the best of "
        "the repeats.",
        "",
        f"## 1. Time vs files ({partitions} partitions, local[2])",
        "",
        "| workload | " + " | ".join(f"{n:,} files" for n in sizes) + " | s per 1,000 files |",
        "|---|" + "---|" * (len(sizes) + 1),
    ]
    for workload in WORKLOADS:
        times = [by[("files", workload, n)] for n in sizes]
        lines.append(
            f"| {workload} | "
            + " | ".join(f"{t:.2f}" for t in times)
            + f" | {1000 * slope(sizes, times):.2f} |"
        )
    lines += [
        "",
        f"## 2. Time vs partitions ({fixed:,} files, local[2])",
        "",
        "| workload | " + " | ".join(str(p) for p in PARTITIONS) + " | default | minimum at |",
        "|---|" + "---|" * (len(PARTITIONS) + 2),
    ]
    for workload in WORKLOADS:
        times = {p: by[("partitions", workload, p)] for p in PARTITIONS}
        best = min(times, key=times.get)
        lines.append(
            f"| {workload} | "
            + " | ".join(f"{times[p]:.2f}" for p in PARTITIONS)
            + f" | {by[('partitions', workload, 'default')]:.2f} | {best} |"
        )
    for curve, label in (("executors", "executors"), ("cores", "cores per executor")):
        lines += [
            "",
            f"## {3 if curve == 'executors' else 4}. Time vs {label} ({fixed:,} files)",
            "",
            "| workload | 1 | 2 | speed-up |",
            "|---|---|---|---|",
        ]
        for workload in WORKLOADS:
            one, two = by[(curve, workload, 1)], by[(curve, workload, 2)]
            lines.append(f"| {workload} | {one:.2f} | {two:.2f} | {one / two:.2f} x |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], curve: str, xlabel: str, log: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for workload in WORKLOADS:
        points = [r for r in rows if r["curve"] == curve and r["workload"] == workload]
        points = [r for r in points if r["x"] != "default"]
        axes.plot([r["x"] for r in points], [r["seconds"] for r in points], "o-", label=workload)
    if log:
        axes.set_xscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("seconds")
    axes.set_title(f"dicomsql: time vs {xlabel}")
    axes.legend()
    figure.tight_layout()
    figure.savefig(RESULTS / f"scaling-{curve}.png", dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,2000,4000,8000,16000")
    parser.add_argument("--fixed", type=int, default=4000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # a subprocess: this master
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, json.load(sys.stdin), args.repeat)))
        return

    sizes = [int(n) for n in args.sizes.split(",")]
    for n in sorted({*sizes, args.fixed}):
        cohort(n, 64, "demo")
    points = {
        "local[2]": [
            *({"curve": "files", "x": n, "files": n, "partitions": args.partitions} for n in sizes),
            *(
                {"curve": "partitions", "x": p, "files": args.fixed, "partitions": p}
                for p in PARTITIONS
            ),
            {"curve": "partitions", "x": "default", "files": args.fixed, "partitions": None},
        ],
        "local-cluster[1,1,1024]": [{"curve": "executors", "x": 1}, {"curve": "cores", "x": 1}],
        "local-cluster[2,1,1024]": [{"curve": "executors", "x": 2}],
        "local-cluster[1,2,2048]": [{"curve": "cores", "x": 2}],
    }
    rows = []
    for master, wanted in points.items():
        expanded = [
            {"files": args.fixed, "partitions": args.partitions, **point, "workload": workload}
            for point in wanted
            for workload in WORKLOADS
        ]
        print(f"{master}: {len(expanded)} points", flush=True)
        rows += run(master, expanded, args.repeat)

    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / "scaling.csv", "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(
            out, ["curve", "workload", "x", "files", "partitions", "master", "seconds"]
        )
        writer.writeheader()
        writer.writerows(rows)
    text = summary(rows, sizes, args.fixed, args.partitions)
    (RESULTS / "scaling.md").write_text(text, encoding="utf-8")
    for curve, xlabel, log in (
        ("files", "files", False),
        ("partitions", "partitions", True),
        ("executors", "executors", False),
        ("cores", "cores per executor", False),
    ):
        plot(rows, curve, xlabel, log)
    print(text)


if __name__ == "__main__":
    main()

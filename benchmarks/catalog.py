"""Benchmark: a served Parquet catalog of many small DICOM files against the live view.

    .venv/bin/python benchmarks/catalog.py [--files 100000] [--clients 16] [--seconds 60]

Writes (once, cached under benchmarks/out/, as ``ingest.py --headers small`` does) --files CT
files of 14 attributes and 8 x 8 pixels, then on one local[2] session measures:

  r  dicomsql's own header reader over a 2-process pool on the files (the baseline)
  i  the first ingest: ``Catalog.refresh`` into an empty Parquet catalog (the metastore and
     the Python workers started before, by a 100-file catalog); i/r is reported (the ingest
     reads the same headers, and writes Parquet)
  q  a dashboard query, ``SELECT Modality, count(*) ... GROUP BY Modality``, on the catalog
     against the same on the live view (``USING dicom``); target >= 50 x
  u  a refresh with nothing changed, then three refreshes after 1 % new files each (the best
     against the first ingest; target <= 5 %)
  k  --clients PyHive clients (a connection each, threads of this process) on
     ``dicomsql.serve(spark)`` running the dashboard query on the catalog for --seconds:
     queries, errors, p50 and p95

and the peak resident memory of the driver JVM, of this process, and of the largest and all
Python workers over the whole run. Exits non-zero when a query fails, not when a target is
missed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from ingest import FilesPartition, cohort, own_reader, own_reader_pool, write_small_headers
from pyhive import hive
from serving import rss_mib

DASHBOARD = "SELECT Modality, count(*) AS images FROM {relation} GROUP BY Modality"
HOST = "127.0.0.1"
#: refreshes after 1 % new files each (the best is reported)
REFRESHES = 3


class PeakMemory:
    """Samples the resident memory of the driver JVM, this process and the Python workers
    (PySpark's daemon and its forks) every half second until stopped; keeps the peaks."""

    def __init__(self, jvm: int) -> None:
        self.jvm = jvm
        self.peaks = {"driver JVM": 0.0, "this process": 0.0, "largest worker": 0.0, "workers": 0.0}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="bench-rss", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.5):
            workers = [rss_mib(pid) for pid in _python_workers()]
            now = {
                "driver JVM": rss_mib(self.jvm),
                "this process": rss_mib("self"),
                "largest worker": max(workers, default=0.0),
                "workers": sum(workers),
            }
            self.peaks = {name: max(self.peaks[name], now[name]) for name in now}

    def stop(self) -> dict[str, float]:
        self._done.set()
        self._thread.join()
        return self.peaks


def _python_workers() -> list[str]:
    """Process ids of PySpark's worker daemon and its forks."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes()
            if b"worker_daemon" in command and b"java" not in command:
                pids.append(cmdline.parent.name)
        except OSError:
            continue
    return pids


def seconds_of(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def clients(port: int, count: int, seconds: float, failures: list[str]) -> list[float]:
    """Latencies of ``count`` PyHive clients running the dashboard query for ``seconds``."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    def client() -> None:
        with hive.connect(HOST, port) as connection:
            cursor = connection.cursor()
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    cursor.execute(DASHBOARD.format(relation="default.ct"))
                    cursor.fetchall()
                except Exception as exc:  # noqa: BLE001 - counted and shown
                    failures.append(f"client: {type(exc).__name__}: {str(exc)[:300]}")
                    return
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client, name=f"bench-client-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    started = time.monotonic()
    images, paths = cohort(args.files, 0, "small")
    print(f"{len(paths):,} files (written in {time.monotonic() - started:.0f}s), 2 cores\n")

    import dicomsql
    from dicomsql.client import EmbeddedClient
    from dicomsql.ingest import Catalog, ingest
    from dicomsql.server import free_port

    failures: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        spark = dicomsql.session(master="local[2]", home=Path(scratch) / "home")
        memory = PeakMemory(spark.sparkContext._gateway.proc.pid)
        more = Path(scratch) / "more"
        more.mkdir()
        # a server's metastore and Python workers are up before its first ingest starts
        ingest(EmbeddedClient(spark).execute, "warm_up", paths[:100])
        spark.sql(f"CREATE TEMPORARY VIEW live USING dicom OPTIONS (path '{images}')")
        schema = spark.table("live").schema
        options = {"path": str(images)}

        with multiprocessing.get_context("spawn").Pool(2) as pool:
            pool.map(own_reader, [(options, schema.json(), FilesPartition(0, ()))] * 2)
            r = seconds_of(lambda: own_reader_pool(pool, options, schema))
        print(f"r  own reader, 2-process pool       {r:8.1f}s {len(paths) / r:8,.0f} files/s")

        catalog = Catalog(EmbeddedClient(spark).execute, "ct", [str(images), str(more)])
        i = seconds_of(catalog.refresh)
        print(f"i  first ingest into the catalog    {i:8.1f}s {len(paths) / i:8,.0f} files/s")
        print(f"   i/r = {i / r:.2f} (the ingest's time against the pool's)")

        live = seconds_of(lambda: spark.sql(DASHBOARD.format(relation="live")).collect())
        on_catalog = min(
            seconds_of(lambda: spark.sql(DASHBOARD.format(relation="ct")).collect())
            for _ in range(5)
        )
        print(f"\nq  dashboard on the live view       {live:8.2f}s")
        print(f"q  dashboard on the catalog         {on_catalog:8.2f}s  (best of 5)")
        print(f"   live / catalog = {live / on_catalog:.0f} x  (target >= 50 x)")

        unchanged = seconds_of(catalog.refresh)
        print(f"\nu  refresh, nothing changed         {unchanged:8.2f}s")
        added = len(paths) // 100
        refreshes = []
        for round_ in range(REFRESHES):
            write_small_headers(more, added, first=len(paths) + round_ * added)
            refreshes.append(seconds_of(catalog.refresh))
        best = min(refreshes)
        print(
            f"u  refresh after {added:,} new files    {best:8.2f}s  (best of "
            f"{', '.join(f'{t:.2f}' for t in refreshes)})"
        )
        print(f"   refresh / first ingest = {best / i:.1%}  (target <= 5%)")
        rows = spark.sql("SELECT count(*) FROM ct").collect()[0][0]
        if rows != len(paths) + REFRESHES * added:
            failures.append(f"the catalog has {rows:,} rows after the refresh")

        server = dicomsql.serve(spark, host=HOST, port=free_port(HOST))
        try:
            latencies = clients(server.port, args.clients, args.seconds, failures)
        finally:
            server.stop()
        p50, p95 = np.percentile(latencies, [50, 95]) if latencies else (float("nan"),) * 2
        print(
            f"\nk  {args.clients} clients for {args.seconds:g}s on the catalog: {len(latencies):,} "
            f"queries, {len(failures)} errors, p50 {p50:.3f}s, p95 {p95:.3f}s"
        )
        peaks = memory.stop()
        spark.stop()

    print("\npeak resident memory: " + ", ".join(f"{k} {v:,.0f} MiB" for k, v in peaks.items()))
    for failure in failures[:5]:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

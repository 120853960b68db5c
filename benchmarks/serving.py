"""Benchmark: dicomsql's HiveServer2 endpoint against Spark's own Thrift server and
in-process Spark, in one run and one process.

    .venv/bin/python benchmarks/serving.py [--runs 5] [--patients 40] [--clients 16] [--seconds 120]

One local[2] session over the demo cohort (--patients patients, 64 x 64 images) answers the
same queries three ways:

  a  in-process: spark.sql(q).collect()
  b  Spark's Thrift server from the pyspark wheel (HiveThriftServer2.startWithContext on the
     session, one session shared by its clients): the baseline
  c  dicomsql.serve(spark): dicomsql's endpoint (a clone of the session per client)

b and c are read with PyHive, one connection each, reused: cursor.execute(q); fetchall().
The queries: SELECT 1, a count by modality, a header aggregate (dicom_tag over the headers),
a Cox fit over the clinical table, two CT thumbnails (dicom_png ... LIMIT 2), a 10,000-row
result and a 100,000 x 3 one. Each runs once per way to warm up, then the best of --runs is
kept. Prints a, b and c in seconds, c/a and c/b. Targets: c/b <= 1.2 for results of up to
10,000 rows, c/b <= 1.5 for the 100,000-row fetch.

Then, on c only:

- session open: hive.connect alone, and hive.connect + a first SELECT 1 (median of 10; b's
  for reference);
- a --big-rows result (10 million one-column rows in 20 partitions) fetched through PyHive
  without keeping the rows, with the resident memory of this process and of the driver JVM
  before and at their peak: streamed a group of partitions at a time, it stays bounded;
- concurrency: --clients PyHive clients (threads, a connection each) loop over a mix of
  catalogue (SHOW TABLES), pixels (dicom_png thumbnails) and Cox fit queries for --seconds.
  Prints the count, the errors (target 0; the first ones are shown), p50/p95 latency per
  kind and overall, and the number of Python threads and of PySpark Python worker processes
  before, at their peak during, and after the run (after: once the clients' sessions have
  closed; the query pool's threads stay).

The clients share this process (and its GIL) with c's server, not with b's, which runs in the
JVM. Exits non-zero when something fails (a query error, row counts that differ between a, b
and c, a concurrency error), not when a target is missed.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pyhive import hive

HOST = "127.0.0.1"
COX = "SELECT coxph_fit(months, died, struct(age, smoker, tumor_mm, treated)) AS model FROM demo_patients"
PIXELS = "SELECT dicom_png(path, 32) AS png FROM demo_images WHERE Modality = 'CT' LIMIT 2"

#: (label, SQL, c/b target) of the timed queries.
QUERIES = [
    ("SELECT 1", "SELECT 1", 1.2),
    (
        "count by modality",
        "SELECT Modality, count(*) AS images FROM demo_images GROUP BY Modality",
        1.2,
    ),
    (
        "header aggregate",
        (
            "SELECT dicom_tag(meta, 'Manufacturer') AS manufacturer, count(DISTINCT SeriesInstanceUID) AS series, "
            "avg(CAST(dicom_tag(meta, 'KVP') AS DOUBLE)) AS kvp FROM demo_images WHERE Modality = 'CT' GROUP BY 1"
        ),
        1.2,
    ),
    ("Cox fit", COX, 1.2),
    ("thumbnails LIMIT 2", PIXELS, 1.2),
    ("10,000 rows", "SELECT id, cast(id AS STRING) AS s, id * 1.5 AS d FROM range(10000)", 1.2),
    (
        "100,000 x 3 rows",
        "SELECT id, cast(id AS STRING) AS s, id * 1.5 AS d FROM range(100000)",
        1.5,
    ),
]

#: kind -> SQL of the concurrency mix; client i starts at kind i % 3.
MIX = {
    "catalogue": "SHOW TABLES",
    "pixels": PIXELS,
    "fit": COX,
}


def best_of(runs: int, work: Callable[[], int]) -> tuple[float, int]:
    """The best time of ``runs`` runs of ``work`` after one warm-up, and the rows it returned."""
    rows = work()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times), rows


def fetched(cursor: Any, sql: str) -> int:
    """Run ``sql`` on a PyHive cursor, fetch every row; returns the row count."""
    cursor.execute(sql)
    return len(cursor.fetchall())


def accepts_connections(port: int) -> bool:
    """Whether something listens on ``HOST:port``."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def start_spark_thrift_server(spark: Any, port: int) -> Any:
    """Spark's HiveThriftServer2 on ``HOST:port`` over ``spark``, once it accepts connections.

    Started from a fresh thread: a JVM thread that has used the Hive metastore keeps a Hive
    SessionState whose configuration predates the host and port set here, and the server
    would bind to 0.0.0.0:10000 instead."""
    spark.conf.set("hive.server2.thrift.bind.host", HOST)
    spark.conf.set("hive.server2.thrift.port", str(port))
    started: dict[str, Any] = {}

    def start() -> None:
        try:
            thrift_server = (
                spark.sparkContext._jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2
            )
            started["server"] = thrift_server.startWithContext(spark._jsparkSession.sqlContext())
        except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread
            started["error"] = exc

    thread = threading.Thread(target=start, name="spark-thrift-start")
    thread.start()
    thread.join()
    if "error" in started:
        raise started["error"]
    deadline = time.monotonic() + 60
    while not accepts_connections(port):
        if time.monotonic() > deadline:
            started["server"].stop()
            raise RuntimeError(f"Spark's Thrift server did not start listening on {HOST}:{port}")
        time.sleep(0.1)
    return started["server"]


def python_workers() -> int:
    """PySpark Python worker processes (pyspark.daemon and its forks, pyspark.worker) among
    the descendants of this process (they are children of the JVM, itself a child of this)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    descendants, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - descendants
        descendants |= frontier
    count = 0
    for pid in descendants:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        count += b"pyspark.daemon" in cmdline or b"pyspark.worker" in cmdline
    return count


def thread_kinds() -> str:
    """Python threads by name, numbers and addresses left out: ``dicomsql-query x4, ...``."""
    names = Counter(
        re.sub(r"[-_][\d.:_-]+$", "", re.sub(r"\s*\(.*\)$", "", t.name))
        for t in threading.enumerate()
    )
    return ", ".join(f"{name} x{count}" for name, count in sorted(names.items()))


def compare_queries(spark: Any, port_b: int, port_c: int, runs: int, failures: list[str]) -> None:
    """Time every query of :data:`QUERIES` in-process, on b and on c, and print the table."""
    connections = {"b": hive.connect(HOST, port_b), "c": hive.connect(HOST, port_c)}
    cursors = {way: connection.cursor() for way, connection in connections.items()}
    ways: dict[str, Callable[[str], int]] = {
        "a": lambda sql: len(spark.sql(sql).collect()),
        "b": lambda sql: fetched(cursors["b"], sql),
        "c": lambda sql: fetched(cursors["c"], sql),
    }
    print(
        f"{'query':<20} {'rows':>7} {'a in-process':>13} {'b Spark TS':>11} {'c dicomsql':>11} {'c/a':>7} {'c/b':>6}  target"
    )
    for label, sql, target in QUERIES:
        times, rows = {}, {}
        try:
            for way, run in ways.items():
                times[way], rows[way] = best_of(runs, lambda run=run, sql=sql: run(sql))
        except Exception as exc:  # noqa: BLE001 - reported, the run goes on
            failures.append(f"{label} on {way}: {type(exc).__name__}: {str(exc)[:500]}")
            print(f"{label:<20} failed on {way}")
            continue
        if len(set(rows.values())) != 1:
            failures.append(f"{label}: row counts differ: {rows}")
        ratio = times["c"] / times["b"]
        print(
            f"{label:<20} {rows['a']:>7,} {times['a']:>12.3f}s {times['b']:>10.3f}s {times['c']:>10.3f}s "
            f"{times['c'] / times['a']:>7.2f} {ratio:>6.2f}  <= {target} {'met' if ratio <= target else 'MISSED'}"
        )
    for connection in connections.values():
        connection.close()


def session_open(port: int) -> tuple[float, float]:
    """Median seconds (of 10) of hive.connect alone, and of hive.connect + a first SELECT 1."""
    alone, first_query = [], []
    for _ in range(10):
        started = time.perf_counter()
        connection = hive.connect(HOST, port)
        alone.append(time.perf_counter() - started)
        connection.close()
        started = time.perf_counter()
        connection = hive.connect(HOST, port)
        fetched(connection.cursor(), "SELECT 1")
        first_query.append(time.perf_counter() - started)
        connection.close()
    return statistics.median(alone), statistics.median(first_query)


def client(index: int, port: int, deadline: float, latencies: list, errors: list) -> None:
    """One concurrency client: its own connection, the mix in turn from kind ``index % 3``,
    until ``deadline``. After an error it reconnects."""
    kinds = itertools.islice(itertools.cycle(MIX), index % len(MIX), None)
    connection = None
    while time.monotonic() < deadline:
        kind = next(kinds)
        started = time.perf_counter()
        try:
            if connection is None:
                connection = hive.connect(HOST, port)
                cursor = connection.cursor()
            fetched(cursor, MIX[kind])
            latencies.append((kind, time.perf_counter() - started))
        except Exception as exc:  # noqa: BLE001 - counted and shown
            errors.append(f"client {index}, {kind}: {type(exc).__name__}: {str(exc)[:500]}")
            if connection is not None:
                try:
                    connection.close()
                except Exception:  # noqa: BLE001 - the connection may be gone already
                    pass
                connection = None
    if connection is not None:
        connection.close()


def concurrency(server: Any, clients: int, seconds: float, failures: list[str]) -> None:
    """Run ``clients`` clients on ``server`` for ``seconds`` and print what :func:`client` saw."""
    threads_before, workers_before, kinds_before = (
        threading.active_count(),
        python_workers(),
        thread_kinds(),
    )
    latencies: list[tuple[str, float]] = []
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(
            target=client,
            args=(i, server.port, deadline, latencies, errors),
            name=f"bench-client-{i}",
        )
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    threads_peak = workers_peak = 0
    while any(thread.is_alive() for thread in threads):
        threads_peak, workers_peak = (
            max(threads_peak, threading.active_count()),
            max(workers_peak, python_workers()),
        )
        time.sleep(1)
    waited = time.monotonic()
    while server.engine.sessions and time.monotonic() - waited < 10:
        time.sleep(0.1)
    time.sleep(3)  # connection threads end after their sessions close
    print(f"\n{clients} clients for {seconds:g}s: {len(latencies):,} queries, {len(errors)} errors")
    for kind in [*MIX, "all"]:
        times = [t for k, t in latencies if kind in (k, "all")]
        if times:
            p50, p95 = np.percentile(times, [50, 95])
            print(f"  {kind:<10} {len(times):>6,} queries  p50 {p50:6.3f}s  p95 {p95:6.3f}s")
    for error in errors[:5]:
        print(f"  error: {error}")
    if errors:
        failures.append(f"concurrency: {len(errors)} errors, the first: {errors[0]}")
    print(
        f"threads before/after: {threads_before} / {threading.active_count()}  (peak during: {threads_peak})"
    )
    if threading.active_count() != threads_before:
        print(f"  before: {kinds_before}\n  after:  {thread_kinds()}")
    print(
        f"python workers before/after: {workers_before} / {python_workers()}  (peak during: {workers_peak})"
    )
    print(f"client sessions still open after: {len(server.engine.sessions)}")


def rss_mib(pid: int | str) -> float:
    """Resident memory of a process now (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def big_fetch(spark: Any, port: int, rows: int) -> None:
    """Fetch ``rows`` rows through c with PyHive without keeping them, sampling the resident
    memory of this process (server and client) and of the driver JVM meanwhile."""
    jvm = spark.sparkContext._gateway.proc.pid
    before = (rss_mib("self"), rss_mib(jvm))
    peak = list(before)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0], peak[1] = max(peak[0], rss_mib("self")), max(peak[1], rss_mib(jvm))

    sampler = threading.Thread(target=sample, name="bench-rss")
    sampler.start()
    started = time.perf_counter()
    connection = hive.connect(HOST, port)
    cursor = connection.cursor()
    cursor.arraysize = 10_000
    cursor.execute(f"SELECT id FROM range(0, {rows}, 1, 20)")
    count = 0
    while batch := cursor.fetchmany(10_000):
        count += len(batch)
    connection.close()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    assert count == rows, count
    print(
        f"{rows:,} rows fetched through c in {seconds:.1f}s ({rows / seconds:,.0f} rows/s); resident memory "
        f"before/peak: this process {before[0]:.0f}/{peak[0]:.0f} MiB, driver JVM {before[1]:.0f}/{peak[1]:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs", type=int, default=5, help="timed runs per query and way (best kept)"
    )
    parser.add_argument(
        "--patients", type=int, default=40, help="demo patients (8 CT + 4 MR images each)"
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent PyHive clients")
    parser.add_argument("--seconds", type=float, default=120, help="length of the concurrency run")
    parser.add_argument(
        "--big-rows",
        type=int,
        default=10_000_000,
        help="rows of the bounded-memory fetch (0: skip)",
    )
    args = parser.parse_args()

    import dicomsql
    from dicomsql.demo import write_demo
    from dicomsql.server import free_port
    from dicomsql.views import demo_views_sql

    failures: list[str] = []  # what went wrong: printed at the end, and the exit status
    port_b, port_c = free_port(HOST), free_port(HOST)
    with tempfile.TemporaryDirectory() as scratch:
        demo = write_demo(Path(scratch) / "demo", patients=args.patients, seed=7, size=64)
        spark = dicomsql.session(
            master="local[2]",
            home=Path(scratch) / "home",
            conf={
                "spark.sql.hive.thriftServer.singleSession": "true",  # static: b's clients share this session
                "hive.server2.thrift.bind.host": HOST,
                "hive.server2.thrift.port": str(port_b),
            },
        )
        for statement in demo_views_sql(demo):
            spark.sql(statement)
        images = spark.sql("SELECT count(*) FROM demo_images").collect()[0][0]
        print(
            f"demo: {args.patients} patients, {images} images of 64 x 64; local[2]; best of {args.runs} runs"
        )
        print(f"load average at the start: {os.getloadavg()[0]:.1f} (2 cores)\n")
        spark_thrift_server = start_spark_thrift_server(spark, port_b)
        server = dicomsql.serve(spark, host=HOST, port=port_c)
        try:
            compare_queries(spark, port_b, port_c, args.runs, failures)
            print()
            for way, port in (("c", port_c), ("b", port_b)):
                alone, first = session_open(port)
                print(
                    f"session open on {way}: connect {alone * 1000:.0f} ms, connect + SELECT 1 {first * 1000:.0f} ms (median of 10)"
                )
            if args.big_rows:
                big_fetch(spark, port_c, args.big_rows)
            concurrency(server, args.clients, args.seconds, failures)
        finally:
            server.stop()
            spark_thrift_server.stop()
            spark.stop()

    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    for failure in failures:
        print(f"FAILED: {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

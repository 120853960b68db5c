"""Benchmark: what logins, TLS and the analyst policy cost, measured against the same server
without them, in one run and one process.

    .venv/bin/python benchmarks/security.py [--runs 20] [--patients 20]

One local[2] session over the demo cohort serves two endpoints: one with --auth password
(accounts "boss", an admin, and "ann", an analyst) and one with the same accounts and TLS.
Through PyHive, one connection each, best of --runs (the two alternating):

  a  a statement as the admin: no policy (the baseline)
  c  the same statement as the analyst: parsed, checked by the policy, then run

for SELECT 1, a count by modality, a header aggregate, a 3-statement SQL script and a
10-table-reference join. Prints a and c in milliseconds and c/a (target <= 1.1 for every
statement but SELECT 1, whose whole time is the fixed cost), then the policy check alone
(parse + check, in the server's process) per statement, and the time to connect and log in
(median of 10): plain TCP against TLS, and a wrong password (slowed by design after 5).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

QUERIES = {
    "SELECT 1": "SELECT 1",
    "count by modality": "SELECT Modality, count(*) FROM demo_images GROUP BY Modality",
    "header aggregate": "SELECT dicom_tag(meta, 'Manufacturer'), count(*) FROM demo_images GROUP BY 1",
    "SQL script": "BEGIN DECLARE n INT = 2; SET n = n + 1; IF n > 2 THEN SELECT n; END IF; END",
    "10-way join": "SELECT count(*) FROM "
    + ", ".join(f"demo_patients p{i}" for i in range(10))
    + " WHERE "
    + " AND ".join(f"p0.PatientID = p{i}.PatientID" for i in range(1, 10)),
}


def _best_pair(first, second, statement: str, runs: int) -> tuple[float, float]:
    """The best time of ``statement`` on each cursor, runs alternating (so that warm-up and
    background noise fall on both alike)."""
    times: tuple[list[float], list[float]] = ([], [])
    for cursor in (first, second):  # warm up
        cursor.execute(statement)
        cursor.fetchall()
    for _ in range(runs):
        for cursor, kept in zip((first, second), times):
            started = time.perf_counter()
            cursor.execute(statement)
            cursor.fetchall()
            kept.append(time.perf_counter() - started)
    return min(times[0]), min(times[1])


def _median_connect(connect, runs: int = 10) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        connection = connect()
        connection.close()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--patients", type=int, default=20)
    args = parser.parse_args()

    import subprocess

    import dicomsql
    from dicomsql.client import hive_connection
    from dicomsql.demo import write_demo
    from dicomsql.server import Access, free_port, policy
    from dicomsql.server.access import tls_context
    from dicomsql.server.auth import PasswordFile
    from dicomsql.views import demo_views_sql

    work = Path(tempfile.mkdtemp(prefix="dicomsql-bench-security-"))
    demo = write_demo(work / "demo", patients=args.patients, seed=1, size=64)
    spark = dicomsql.session(master="local[2]", home=work / "home")
    for statement in demo_views_sql(demo):
        spark.sql(statement)
    users = PasswordFile(work / "users")
    users.add("boss", "boss-pw", role="admin")
    users.add("ann", "ann-pw")
    ca, key, cert = work / "ca.pem", work / "key.pem", work / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    ca.write_bytes(cert.read_bytes())
    plain = dicomsql.serve(spark, port=free_port(), access=Access(authenticator=users))
    tls = dicomsql.serve(
        spark, port=free_port(), access=Access(authenticator=users, tls=tls_context(cert, key))
    )

    admin = hive_connection("127.0.0.1", plain.port, user="boss", password="boss-pw").cursor()
    analyst = hive_connection("127.0.0.1", plain.port, user="ann", password="ann-pw").cursor()
    print(f"{'statement':<20} {'a admin':>10} {'c analyst':>10}   c/a")
    for name, statement in QUERIES.items():
        a, c = _best_pair(admin, analyst, statement, args.runs)
        print(f"{name:<20} {a * 1000:8.1f}ms {c * 1000:8.1f}ms  {c / a:5.2f}")

    session = next(iter(plain.engine.sessions.values()))
    scope = next(s.scope for s in plain.engine.sessions.values() if s.scope is not None)
    parser_ = session.spark._jsparkSession.sessionState().sqlParser()
    print("policy check alone (parse + check, best of runs):")
    for name, statement in QUERIES.items():
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            policy.check(parser_.parsePlan(statement), scope)
            times.append(time.perf_counter() - started)
        print(f"  {name:<20} {min(times) * 1000:6.2f}ms")

    def connect_plain():
        return hive_connection("127.0.0.1", plain.port, user="ann", password="ann-pw")

    def connect_tls():
        return hive_connection("127.0.0.1", tls.port, user="ann", password="ann-pw", tls_ca=ca)

    p, t = _median_connect(connect_plain), _median_connect(connect_tls)
    print(
        f"connect + login (median of 10): plain {p * 1000:.1f}ms, TLS {t * 1000:.1f}ms, TLS/plain {t / p:.2f}"
    )
    started = time.perf_counter()
    try:
        hive_connection("127.0.0.1", plain.port, user="ann", password="wrong")
    except Exception:  # noqa: BLE001 - refused, as it should be
        pass
    print(f"a wrong password answered in {(time.perf_counter() - started) * 1000:.1f}ms")
    for server in (plain, tls):
        server.stop()
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Served tables are catalogs: refreshed at start, by ``REFRESH DICOM TABLE`` through the
endpoint and every ``--refresh-interval``; a refresh killed with SIGKILL loses nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest
from pyhive import hive

from dicomsql.app import CATALOG_DATABASE, App
from dicomsql.client import EmbeddedClient
from dicomsql.server import free_port, serve
from dicomsql.session import cloned

from .conftest import dicomsql_command, run_dicomsql

pytestmark = pytest.mark.server


def _count(cursor, table: str) -> int:
    cursor.execute(f"SELECT count(*) FROM {table}")
    return cursor.fetchone()[0]


def _wait_for(predicate, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_a_served_table_is_a_catalog_clients_refresh_and_the_server_keeps_current(
    spark, spark_home, folder
):
    app = App({"home": spark_home}, tables={"served_ct": folder}, say=lambda line: None)
    [line] = app.create_views(spark.sql, EmbeddedClient(cloned(spark)).execute)
    assert line.startswith("served_ct      catalog of the 24 DICOM files under")
    assert "live: served_ct__files" in line
    # every client is an analyst: refreshing a served catalog needs no other right
    server = serve(spark, port=free_port(), catalogs=app.catalogs, refresh_interval=1.0)
    ct = sorted((folder / "DEMO-0001" / "CT").glob("*.dcm"))
    try:
        cursor = hive.connect(host="127.0.0.1", port=server.port).cursor()
        assert _count(cursor, "served_ct") == _count(cursor, "served_ct__files") == 24
        cursor.execute(
            "SELECT count(*) FROM served_ct WHERE dicom_png(dicom_image(path), 32) IS NOT NULL"
        )
        assert cursor.fetchone()[0] == 24  # the pixel functions read the catalog's paths

        shutil.copy(ct[0], folder / "pushed.dcm")
        cursor.execute("refresh dicom table `SERVED_CT`;")
        [summary] = cursor.fetchall()
        assert [d[0] for d in cursor.description] == [
            "table", "listed", "new", "changed", "removed", "unchanged", "rows", "unreadable", "seconds",
        ]  # fmt: skip
        assert summary[0] == f"{CATALOG_DATABASE}.served_ct"
        assert summary[1:8] in (
            (25, 1, 0, 0, 24, 25, 0),
            (25, 0, 0, 0, 25, 25, 0),
        )  # or the interval's
        assert _count(cursor, "served_ct") == 25

        os.remove(ct[1])
        shutil.copy(ct[2], folder / "arrived.dcm")
        assert _wait_for(
            lambda: _count(cursor, "served_ct") == 25 and _paths(cursor) == _files(folder)
        )

        with pytest.raises(hive.OperationalError, match="nope is not a served catalog"):
            cursor.execute("REFRESH DICOM TABLE nope")
    finally:
        server.stop()
    spark.sql("DROP VIEW served_ct")
    spark.sql("DROP VIEW served_ct__files")


def _paths(cursor) -> set[str]:
    cursor.execute("SELECT path FROM served_ct")
    return {path for (path,) in cursor.fetchall()}


def _files(folder) -> set[str]:
    return {str(p) for p in folder.rglob("*.dcm")}


def test_a_watcher_killed_mid_refresh_leaves_the_catalog_and_the_next_run_completes(
    cli_env, folder, tmp_path
):
    """dicomsql ingest --watch keeps the catalog current; SIGKILL in the middle of one of its
    refreshes loses nothing and stores nothing twice."""
    watcher = subprocess.Popen(
        [dicomsql_command(), "ingest", "cat", str(folder), "--watch", "1"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    lock = os.path.join(cli_env["DICOMSQL_HOME"], "warehouse", "cat__lock")
    try:
        assert "read 24 files (24 new, 0 changed)" in watcher.stdout.readline()
        staging = tmp_path / "staging"
        staging.mkdir()
        for number in range(3):
            shutil.copy(next(folder.rglob("*.dcm")), staging / f"new_{number}.dcm")
        staging.rename(folder / "arrived")  # all three at once, whenever the watcher lists
        assert _wait_for(lambda: os.path.exists(lock) or watcher.poll() is not None, 240)
        assert watcher.poll() is None, "the watcher ended"
    finally:
        os.killpg(watcher.pid, signal.SIGKILL)  # the client and its JVM, mid-refresh
        watcher.wait()

    shown = run_dicomsql("sql", "-e", "SELECT count(*) FROM cat", "--format", "csv", env=cli_env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == ["count(1)", "24"]  # the catalog as it was

    again = run_dicomsql("ingest", "cat", str(folder), env=cli_env)
    assert again.returncode == 0, again.stderr  # the dead process's lock is taken over
    assert "read 3 files (3 new, 0 changed)" in again.stdout and "27 rows" in again.stdout
    tables = run_dicomsql("sql", "-e", "SHOW TABLES LIKE 'cat*'", "--format", "csv", env=cli_env)
    names = sorted(line.split(",")[1] for line in tables.stdout.split()[1:])
    assert len(names) == 3 and names[0] == "cat"  # the view and its two segments, no orphan


def test_live_serves_the_files_themselves(spark, spark_home, folder):
    app = App({"home": spark_home, "live": True}, tables={"live_ct": folder})
    [line] = app.prepare(spark)
    assert line == f"live_ct        DICOM files under {folder} (live)" and app.catalogs == {}
    assert spark.table("live_ct").count() == 24
    shutil.copy(next(folder.rglob("*.dcm")), folder / "new.dcm")
    assert spark.table("live_ct").count() == 25  # no refresh: every query reads the folder
    spark.sql("DROP VIEW live_ct")
    spark.sql("DROP VIEW live_ct__files")

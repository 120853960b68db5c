"""Catalogs: DICOM headers into Parquet segments behind a view, refreshed incrementally and
atomically, through a real session."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading

import pytest

from dicomsql.client import EmbeddedClient
from dicomsql.errors import DicomsqlError
from dicomsql.ingest import MAX_SEGMENTS, Catalog, ingest


def _rows(spark, table):
    return {r.path: r for r in spark.table(table).collect()}


def _segments(spark, catalog):
    properties = dict(spark.sql(f"SHOW TBLPROPERTIES {catalog}").collect())
    return [name for name, _ in json.loads(properties["dicomsql.catalog"])["segments"]]


def _drop(spark, catalog):
    """Drop a catalog: its view and every segment table."""
    spark.sql(f"DROP VIEW {catalog}")
    for row in spark.sql(f"SHOW TABLES LIKE '{catalog}__*'").collect():
        spark.sql(f"DROP TABLE {row.tableName}")


@pytest.mark.cluster
def test_first_run_reads_everything_and_equals_the_source(spark, folder):
    client = EmbeddedClient(spark)
    lines = []
    summary = ingest(client.execute, "ingest_first", [str(folder)], progress=lines.append)
    files = sorted(str(p) for p in folder.rglob("*.dcm"))
    assert (summary.new, summary.changed, summary.removed, summary.rows) == (
        len(files),
        0,
        0,
        len(files),
    )
    assert lines and lines[-1].startswith(
        f"ingest ingest_first: {len(files)}/{len(files)} files (100%)"
    )
    table = spark.table("ingest_first")
    source = spark.read.format("dicom").load(str(folder))
    assert table.schema == source.schema
    assert sorted(table.collect()) == sorted(source.collect())
    _drop(spark, "ingest_first")


def test_later_runs_read_only_new_and_changed_files_and_drop_deleted_ones(spark, folder):
    client = EmbeddedClient(spark)
    ingest(client.execute, "ingest_again", [str(folder)])
    unchanged = ingest(client.execute, "ingest_again", [str(folder)])
    assert (unchanged.read, unchanged.removed, unchanged.unchanged) == (0, 0, 24)

    ct = sorted((folder / "DEMO-0001" / "CT").glob("*.dcm"))
    os.remove(ct[0])
    os.utime(ct[1], (2_000_000_000, 2_000_000_000))
    added = folder / "DEMO-0002" / "copy.dcm"
    shutil.copy(ct[2], added)
    (folder / "notes.txt").write_text("not DICOM")
    summary = ingest(client.execute, "ingest_again", [str(folder)])
    assert (summary.new, summary.changed, summary.removed, summary.unchanged) == (2, 1, 1, 22)
    rows = _rows(spark, "ingest_again")
    assert len(rows) == summary.rows == 25 and summary.unreadable == 1
    assert str(ct[0]) not in rows
    assert rows[str(ct[1])].modificationTime.timestamp() == 2_000_000_000
    assert rows[str(added)].SOPInstanceUID == rows[str(ct[2])].SOPInstanceUID
    assert rows[str(folder / "notes.txt")]._corrupt_record.startswith("not a DICOM file")
    assert len(_segments(spark, "ingest_again")) == 2  # the rewritten one, the new files'
    _drop(spark, "ingest_again")


def test_tags_all_is_fixed_when_the_table_is_created(spark, folder):
    client = EmbeddedClient(spark)
    ingest(client.execute, "ingest_all", [str(folder / "DEMO-0001")], tags="all")
    columns = spark.table("ingest_all").columns
    assert "KVP" in columns and "MagneticFieldStrength" in columns
    ingest(
        client.execute, "ingest_all", [str(folder)], tags="core"
    )  # an existing table keeps its columns
    assert spark.table("ingest_all").columns == columns
    assert spark.table("ingest_all").count() == 24
    _drop(spark, "ingest_all")


def test_a_second_run_on_the_same_catalog_is_refused_while_one_runs(spark, folder):
    client = EmbeddedClient(spark)
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    spark.sql(
        "CREATE TABLE ingest_locked__lock (started STRING) USING parquet "
        f"TBLPROPERTIES ('dicomsql.owner' = '{socket.gethostname()} {running.pid}')"
    )
    try:
        with pytest.raises(DicomsqlError, match="another refresh of ingest_locked is running"):
            ingest(client.execute, "ingest_locked", [str(folder)])
    finally:
        running.kill()
        running.wait()
    # the lock's process is gone: the next run takes the lock over
    assert ingest(client.execute, "ingest_locked", [str(folder)]).rows == 24
    assert not spark.catalog.tableExists("ingest_locked__lock")
    _drop(spark, "ingest_locked")


def test_a_killed_refresh_leaves_the_catalog_as_it_was_and_the_next_one_cleans_up(spark, folder):
    client = EmbeddedClient(spark)
    ingest(client.execute, "ingest_repair", [str(folder)])
    before = _segments(spark, "ingest_repair")
    # killed after writing a segment, before publishing it
    spark.sql(
        "CREATE TABLE ingest_repair__0123456789ab USING parquet AS SELECT * FROM ingest_repair LIMIT 3"
    )
    assert spark.table("ingest_repair").count() == 24
    summary = ingest(client.execute, "ingest_repair", [str(folder)])
    assert (summary.read, summary.rows) == (0, 24)
    assert not spark.catalog.tableExists("ingest_repair__0123456789ab")
    assert _segments(spark, "ingest_repair") == before
    _drop(spark, "ingest_repair")


def test_a_table_of_an_older_ingest_becomes_the_first_segment(spark, folder):
    spark.read.format("dicom").load(str(folder)).write.saveAsTable("ingest_older")
    summary = ingest(EmbeddedClient(spark).execute, "ingest_older", [str(folder)])
    assert (summary.read, summary.unchanged, summary.rows) == (0, 24, 24)
    [segment] = _segments(spark, "ingest_older")
    assert spark.table(segment).count() == 24
    _drop(spark, "ingest_older")


def test_segments_are_merged_beyond_the_most_a_catalog_keeps(spark, folder, pydicom_files):
    client = EmbeddedClient(spark)
    ct = sorted(folder.rglob("*.dcm"))
    catalog = Catalog(client.execute, "ingest_merged", [str(folder)])
    catalog.refresh()
    for number in range(MAX_SEGMENTS + 1):
        shutil.copy(ct[number], folder / f"copy_{number}.dcm")
        catalog.refresh()
    assert len(_segments(spark, "ingest_merged")) <= MAX_SEGMENTS
    assert spark.table("ingest_merged").count() == 24 + MAX_SEGMENTS + 1
    source = spark.read.format("dicom").load(str(folder))
    assert sorted(spark.table("ingest_merged").collect()) == sorted(source.collect())
    # the catalog remembers where each row went (merged, rewritten) without reading it back:
    # deleting and changing rows of merged and of rewritten segments still finds them
    for round_ in range(2):
        os.remove(folder / f"copy_{round_}.dcm")
        os.utime(ct[round_], (2_000_000_000 + round_, 2_000_000_000 + round_))
        os.utime(folder / f"copy_{MAX_SEGMENTS - round_}.dcm", (1_900_000_000,) * 2)
        summary = catalog.refresh()
        assert (summary.changed, summary.removed) == (2, 1)
        source = spark.read.format("dicom").load(str(folder))
        assert sorted(spark.table("ingest_merged").collect()) == sorted(source.collect())
    _drop(spark, "ingest_merged")


@pytest.mark.cluster
def test_a_query_sees_the_catalog_before_or_after_a_refresh_never_half(spark, folder):
    client = EmbeddedClient(spark)
    catalog = Catalog(client.execute, "ingest_atomic", [str(folder)])
    catalog.refresh()
    ct = sorted((folder / "DEMO-0001" / "CT").glob("*.dcm"))
    before = spark.sql("SELECT * FROM ingest_atomic")  # analysed now: the catalog as it is
    os.remove(ct[0])
    for number in range(3):
        shutil.copy(ct[1], folder / f"copy_{number}.dcm")
    seen, failures, stop = set(), [], threading.Event()

    def read():
        while not stop.is_set():
            try:
                seen.add(spark.sql("SELECT count(*) FROM ingest_atomic").collect()[0][0])
            except Exception as exc:  # noqa: BLE001 - a reader must never fail: asserted below
                failures.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        catalog.refresh()
    finally:
        stop.set()
        reader.join()
    assert not failures, failures[0]  # e.g. the view missing while it is replaced
    assert seen <= {24, 26} and 26 in seen | {spark.table("ingest_atomic").count()}
    assert before.count() == 24  # its segments are retired, not dropped
    _drop(spark, "ingest_atomic")


def test_a_file_deleted_while_ingesting_is_a_row_not_a_failure(spark, folder, monkeypatch):
    import dicomsql.ingest as module

    victim, list_files = sorted(folder.rglob("*.dcm"))[5], module.list_files

    def list_then_delete(paths):
        listed = list_files(paths)
        victim.unlink()
        return listed

    monkeypatch.setattr(module, "list_files", list_then_delete)
    summary = ingest(EmbeddedClient(spark).execute, "ingest_vanished", [str(folder)])
    assert (summary.rows, summary.unreadable) == (24, 1)
    [row] = spark.sql(
        f"SELECT _corrupt_record FROM ingest_vanished WHERE path = '{victim}'"
    ).collect()
    assert row._corrupt_record.startswith("cannot open")
    _drop(spark, "ingest_vanished")

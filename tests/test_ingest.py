"""Ingest: DICOM headers into a Parquet table, incrementally, through a real session."""

from __future__ import annotations

import os
import shutil

import pytest

from dicomsql.client import EmbeddedClient
from dicomsql.errors import DicomsqlError
from dicomsql.ingest import ingest


@pytest.fixture
def folder(tmp_path, demo):
    """Two patients' files, copied so the test can add, change and delete some."""
    target = tmp_path / "incoming"
    for patient in ("DEMO-0001", "DEMO-0002"):
        shutil.copytree(demo / "images" / patient, target / patient)
    return target


def _rows(spark, table):
    return {r.path: r for r in spark.table(table).collect()}


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
    spark.sql("DROP TABLE ingest_first")


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
    assert not spark.catalog.tableExists("ingest_again__ingest")
    assert not spark.catalog.tableExists("ingest_again__previous")
    spark.sql("DROP TABLE ingest_again")


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
    spark.sql("DROP TABLE ingest_all")


def test_a_second_run_on_the_same_table_is_refused_while_one_runs(spark, folder):
    client = EmbeddedClient(spark)
    spark.sql("CREATE TABLE ingest_locked__ingest_lock (started STRING) USING parquet")
    with pytest.raises(DicomsqlError, match="another ingest of ingest_locked is running"):
        ingest(client.execute, "ingest_locked", [str(folder)])
    spark.sql("DROP TABLE ingest_locked__ingest_lock")
    assert ingest(client.execute, "ingest_locked", [str(folder)]).rows == 24
    spark.sql("DROP TABLE ingest_locked")


def test_an_interrupted_run_is_repaired_by_the_next(spark, folder):
    client = EmbeddedClient(spark)
    ingest(client.execute, "ingest_repair", [str(folder)])
    # interrupted after renaming the table away, before renaming the kept rows in
    spark.sql(
        "CREATE TABLE ingest_repair__ingest USING parquet AS SELECT * FROM ingest_repair LIMIT 3"
    )
    spark.sql("ALTER TABLE ingest_repair RENAME TO ingest_repair__previous")
    summary = ingest(client.execute, "ingest_repair", [str(folder)])
    assert (summary.read, summary.rows) == (0, 24)  # the data came back; nothing re-read
    assert not spark.catalog.tableExists("ingest_repair__previous")
    assert not spark.catalog.tableExists("ingest_repair__ingest")
    spark.sql("DROP TABLE ingest_repair")


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
    spark.sql("DROP TABLE ingest_vanished")

"""Ingest: DICOM headers into a Parquet table, incrementally, through a real session."""

from __future__ import annotations

import os
import shutil

import pytest

from dicomsql.client import EmbeddedClient
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
    assert (summary.new, summary.changed, summary.removed, summary.rows) == (len(files), 0, 0, len(files))
    assert lines and lines[-1].startswith(f"ingest ingest_first: {len(files)}/{len(files)} files (100%)")
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
    ingest(client.execute, "ingest_all", [str(folder)], tags="core")  # an existing table keeps its columns
    assert spark.table("ingest_all").columns == columns
    assert spark.table("ingest_all").count() == 24
    spark.sql("DROP TABLE ingest_all")

"""``spark.readStream.format("dicom")``: the files that arrive in a folder, each once, across
restarts from the checkpoint."""

from __future__ import annotations

import os
import shutil
import time

import pytest

pytestmark = pytest.mark.cluster


def _arrive(files, folder, modified: float) -> list[str]:
    """Copy ``files`` into ``folder`` as if they arrived at ``modified`` (epoch seconds)."""
    folder.mkdir(parents=True, exist_ok=True)
    arrived = []
    for index, source in enumerate(files):
        target = folder / f"{modified:.0f}-{index:03d}.dcm"
        shutil.copyfile(source, target)
        os.utime(target, (modified + index, modified + index))
        arrived.append(str(target))
    return arrived


def _run(spark, folder, sink, checkpoint, **options) -> int:
    """One run of the stream to the Parquet ``sink`` until no file is left; micro-batches run."""
    stream = spark.readStream.format("dicom").option("path", str(folder))
    for key, value in {"settleSeconds": "60", **options}.items():
        stream = stream.option(key, str(value))
    query = (
        stream.load()
        .select("path", "SOPInstanceUID", "_corrupt_record")
        .writeStream.format("parquet")
        .option("path", str(sink))
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination(timeout=300)
    assert not query.isActive and query.exception() is None
    return sum(1 for progress in query.recentProgress if progress["numInputRows"])


def test_a_stream_reads_each_arrived_file_once_across_restarts(spark, demo, tmp_path):
    sources = sorted((demo / "images" / "DEMO-0001").rglob("*.dcm"))[:12]
    folder, sink, checkpoint = tmp_path / "incoming", tmp_path / "sink", tmp_path / "checkpoint"
    an_hour_ago = time.time() - 3600
    first = _arrive(sources[:7], folder, an_hour_ago)
    (folder / "notes.txt").write_text("not DICOM")
    os.utime(folder / "notes.txt", (an_hour_ago - 60, an_hour_ago - 60))

    batches = _run(spark, folder, sink, checkpoint, maxFilesPerTrigger=3)
    rows = spark.read.parquet(str(sink))
    assert batches == 3 and rows.count() == 8  # 7 files and the text file, 3 + 3 + 2
    assert rows.where("_corrupt_record IS NOT NULL").count() == 1

    later = _arrive(sources[7:], folder, an_hour_ago + 600)  # arrived since the last run
    fresh = _arrive(sources[:1], folder / "now", time.time())  # still being written: waits
    older = _arrive(sources[1:2], folder / "kept", an_hour_ago - 7200)  # cp -p: not read
    assert _run(spark, folder, sink, checkpoint) == 1
    paths = [row.path for row in spark.read.parquet(str(sink)).collect()]
    assert sorted(paths) == sorted([*first, *later, str(folder / "notes.txt")])
    assert fresh[0] not in paths and older[0] not in paths

    assert _run(spark, folder, sink, checkpoint) == 0  # nothing new: no micro-batch
    assert _run(spark, folder, sink, checkpoint, settleSeconds=0) == 1  # the settled one
    assert spark.read.parquet(str(sink)).where(f"path = '{fresh[0]}'").count() == 1

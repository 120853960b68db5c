"""The ``dicom`` source's writer: ``df.write.format("dicom").save(out_dir)``.

One DICOM file per row, as ``dicom_export`` writes them (the same columns: ``meta`` with
``path``, ``content`` or ``image``; the same options), for DataFrame users::

    df.write.format("dicom").option("deidentify", "basic").mode("append").save("/exports/a")

Spark lets a Python data source be written in mode ``append`` (new files; one that exists
with other bytes is a failed row) or ``overwrite`` (files replaced: option ``overwrite``), not
the default ``errorifexists``.

Each task writes its rows' files whole (a temporary name, then a rename) and reports how many
it wrote and why others failed; the job fails at its end, naming the first failures, when any
row could not be written (the files written stay, each complete).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from pyspark.sql.datasource import DataSourceWriter, WriterCommitMessage

from ..errors import DicomsqlError
from ..options import parse
from ..udfs.export import OPTIONS, export_row, input_row, out_folder

__all__ = ["DicomWriter", "writer_options"]

#: Failures a task reports by name (the count covers them all).
_REPORTED = 5


def writer_options(raw: Mapping[str, str], overwrite: bool) -> tuple[str, dict]:
    """The out folder (option ``path``) and the export options of a write; the save mode
    ``overwrite`` sets option ``overwrite``."""
    given = {key: value for key, value in raw.items() if key.lower() != "path"}
    options = parse(given, OPTIONS, where="dicom writer")
    options["overwrite"] = options["overwrite"] or overwrite
    path = raw.get("path")
    if not path:
        raise DicomsqlError(
            "dicom writer: a folder is required: df.write.format('dicom').save(out_dir)"
        )
    try:
        return out_folder(path), options
    except ValueError as exc:
        raise DicomsqlError(f"dicom writer: path: {exc}") from None


@dataclass
class Written(WriterCommitMessage):
    """What one task wrote: files, and the rows that failed (the first few by name)."""

    files: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)


class DicomWriter(DataSourceWriter):
    """Writes each row of a partition as a DICOM file under ``out_dir``."""

    def __init__(self, out_dir: str, options: dict) -> None:
        self.out_dir = out_dir
        self.options = options

    def write(self, iterator: Iterator) -> Written:
        """Write a partition's rows; what was written and what failed."""
        done = Written()
        for row in iterator:
            source, _written, _size, error = export_row(input_row(row), self.out_dir, self.options)
            if error is None:
                done.files += 1
                continue
            done.failed += 1
            if len(done.failures) < _REPORTED:
                done.failures.append(f"{source or 'a row without path'}: {error}")
        return done

    def commit(self, messages: list[Written | None]) -> None:
        """Fail the job, naming the first rows not written, when any was not."""
        failed = sum(m.failed for m in messages if m is not None)
        if failed:
            files = sum(m.files for m in messages if m is not None)
            first = [f for m in messages if m is not None for f in m.failures][:_REPORTED]
            raise DicomsqlError(
                f"dicom writer: {failed:,} of {failed + files:,} rows were not written "
                f"({files:,} files were): " + "; ".join(first)
            )

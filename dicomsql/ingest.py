"""Ingest: materialise a DICOM folder's header rows into a Parquet table, incrementally.

The first run reads every file. A later run lists the files again and compares them with the
table by ``(path, size, modificationTime)``: only new or changed files are read, and the rows
of deleted or changed files are removed. The work is plain SQL sent through a client (an
embedded session, or the running server), in chunks, so progress is reported as it goes and
the same code serves both.

Safety: a run holds a lock table ``<name>__ingest_lock`` (creating a table is atomic in the
metastore), so two runs on one table cannot interleave; its temporary views have names of
its own, so runs on different tables through one server do not meet either. Rows are
removed by writing the kept rows to ``<name>__ingest``, renaming the table to
``<name>__previous``, the new one to ``<name>``, then dropping the previous one; a run
interrupted anywhere in between is repaired by the next one.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .client import QueryResult
from .errors import DicomsqlError, QueryError
from .sqltools import identifier, string_literal
from .storage import FileEntry, list_files

__all__ = ["IngestSummary", "ingest"]

_FIXED_COLUMNS = ("path", "size", "modificationTime", "meta", "_warnings", "_corrupt_record")
MIN_CHUNK_FILES = 2000
MAX_CHUNKS = 100

Execute = Callable[[str], QueryResult]


@dataclass(frozen=True)
class IngestSummary:
    """What an ingest run did."""

    table: str
    listed: int
    new: int
    changed: int
    removed: int
    unchanged: int
    rows: int
    unreadable: int
    seconds: float

    @property
    def read(self) -> int:
        return self.new + self.changed

    def __str__(self) -> str:
        rate = f", {self.read / self.seconds:,.0f} files/s" if self.read and self.seconds else ""
        return (
            f"ingested {self.table}: read {self.read:,} files ({self.new:,} new, {self.changed:,} changed), "
            f"removed {self.removed:,} rows of deleted or changed files, kept {self.unchanged:,} "
            f"unchanged, in {self.seconds:.1f}s{rate}; {self.rows:,} rows, "
            f"{self.unreadable:,} unreadable (see _corrupt_record)"
        )


class _Table:
    """A (possibly database-qualified) table name and its sibling tables."""

    def __init__(self, name: str) -> None:
        parts = name.split(".")
        if not all(parts) or len(parts) > 2:
            raise DicomsqlError(f"ingest: {name!r} is not a table name (table or database.table)")
        self.name = name
        self.database, self.table = (parts[0] if len(parts) == 2 else None), parts[-1]

    def sql(self, suffix: str = "") -> str:
        """The quoted name, with ``suffix`` added to the table part."""
        table = identifier(self.table + suffix)
        return f"{identifier(self.database)}.{table}" if self.database else table

    def exists(self, execute: Execute, suffix: str = "") -> bool:
        where = f" IN {identifier(self.database)}" if self.database else ""
        name = (self.table + suffix).lower()
        listed = execute(f"SHOW TABLES{where} LIKE {string_literal(name)}").rows
        return any(row[1].lower() == name and not row[2] for row in listed)


def _typed_keywords(execute: Execute, relation: str) -> list[str]:
    """The typed DICOM columns of a table or view (what its ``tags`` option must list)."""
    columns = [row[0] for row in execute(f"DESCRIBE {relation}").rows]
    return [
        c
        for c in columns
        if c not in _FIXED_COLUMNS and c != "PatientAgeYears" and not c.startswith("#")
    ]


class _Run:
    """One ingest run: its own view names, and the SQL it sends."""

    def __init__(self, execute: Execute, table: _Table) -> None:
        self.execute = execute
        self.table = table
        suffix = uuid.uuid4().hex[:12]
        self.view = identifier(f"_dicomsql_ingest_{suffix}")
        self.removed_view = identifier(f"_dicomsql_removed_{suffix}")

    def view_over(self, tags: str, *, paths: Sequence[str] = (), files: Sequence[str] = ()) -> None:
        options = {"tags": tags}
        if paths:
            options["paths"] = json.dumps(list(paths))
        if files:
            options["files"] = json.dumps(list(files))
        rendered = ", ".join(f"{identifier(k)} {string_literal(v)}" for k, v in options.items())
        self.execute(
            f"CREATE OR REPLACE TEMPORARY VIEW {self.view} USING dicom OPTIONS ({rendered})"
        )

    def lock(self) -> None:
        try:
            self.execute(
                f"CREATE TABLE {self.table.sql('__ingest_lock')} (started STRING) USING parquet"
            )
        except QueryError as exc:
            if "ALREADY_EXISTS" not in str(exc):
                raise
            raise DicomsqlError(
                f"another ingest of {self.table.name} is running (table {self.table.name}__ingest_lock "
                f"exists); if none is, drop that table and run again"
            ) from None

    def unlock(self) -> None:
        for relation in (
            f"VIEW IF EXISTS {self.view}",
            f"VIEW IF EXISTS {self.removed_view}",
            f"TABLE IF EXISTS {self.table.sql('__ingest_lock')}",
        ):
            self.execute(f"DROP {relation}")

    def repair(self) -> None:
        """Finish what an interrupted run left: the data is under the name or ``__previous``."""
        if not self.table.exists(self.execute) and self.table.exists(self.execute, "__previous"):
            self.execute(f"ALTER TABLE {self.table.sql('__previous')} RENAME TO {self.table.sql()}")
        self.execute(f"DROP TABLE IF EXISTS {self.table.sql('__ingest')}")
        self.execute(f"DROP TABLE IF EXISTS {self.table.sql('__previous')}")

    def existing(self) -> dict[str, tuple[int | None, int | None]] | None:
        """path -> (size, modification time in microseconds) of the rows; None: no table."""
        if not self.table.exists(self.execute):
            return None
        rows = self.execute(
            f"SELECT path, size, unix_micros(modificationTime) FROM {self.table.sql()}"
        ).rows
        return {path: (size, micros) for path, size, micros in rows}

    def remove_rows(self, paths: Sequence[str]) -> None:
        """Rewrite the table without the rows of ``paths`` (a table cannot be overwritten
        while it is read, so the kept rows go to a new table that then takes the name)."""
        self.execute(
            f"CREATE OR REPLACE TEMPORARY VIEW {self.removed_view} AS "
            f"SELECT explode(from_json({string_literal(json.dumps(list(paths)))}, 'array<string>')) AS path"
        )
        kept, previous = self.table.sql("__ingest"), self.table.sql("__previous")
        self.execute(
            f"CREATE TABLE {kept} USING parquet AS SELECT * FROM {self.table.sql()} t "
            f"LEFT ANTI JOIN {self.removed_view} r ON t.path = r.path"
        )
        self.execute(f"ALTER TABLE {self.table.sql()} RENAME TO {previous}")
        self.execute(f"ALTER TABLE {kept} RENAME TO {self.table.sql()}")
        self.execute(f"DROP TABLE {previous}")


def ingest(
    execute: Execute,
    name: str,
    paths: Sequence[str],
    tags: str = "core",
    progress: Callable[[str], None] = lambda line: None,
) -> IngestSummary:
    """Bring Parquet table ``name`` up to date with the DICOM files under ``paths``.

    ``execute`` runs one SQL statement (``EmbeddedClient.execute`` or
    ``JdbcClient.execute``). ``tags`` chooses the typed columns when the table is created
    (``core``, ``all`` or a list); an existing table keeps its columns. ``progress``
    receives a line after each chunk: files done / total and files per second.
    """
    started = time.monotonic()
    run = _Run(execute, _Table(name))
    files = list_files(paths)
    run.lock()
    try:
        run.repair()
        return _ingest(run, files, paths, tags, progress, started)
    finally:
        run.unlock()


def _ingest(
    run: _Run,
    files: list[FileEntry],
    paths: Sequence[str],
    tags: str,
    progress: Callable[[str], None],
    started: float,
) -> IngestSummary:
    table = run.table.sql()
    existing = run.existing()
    current = {entry.path: (entry.size, entry.modified_micros) for entry in files}
    known = existing or {}
    new = [path for path in current if path not in known]
    changed = [path for path in current if path in known and known[path] != current[path]]
    deleted = sorted(set(known) - set(current))

    if existing is None:
        if tags == "all":
            run.view_over("all", paths=paths)  # samples every path given, not one chunk
            tags = ",".join(_typed_keywords(run.execute, run.view))
    else:
        tags = ",".join(_typed_keywords(run.execute, table)) or "core"
        if deleted or changed:
            run.remove_rows(deleted + changed)

    to_read = sorted(new + changed)
    chunk = max(MIN_CHUNK_FILES, math.ceil(len(to_read) / MAX_CHUNKS))
    create = existing is None
    for done in range(0, len(to_read), chunk):
        part = to_read[done : done + chunk]
        run.view_over(tags, files=part)
        if create:
            run.execute(f"CREATE TABLE {table} USING parquet AS SELECT * FROM {run.view}")
            create = False
        else:
            run.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {run.view}")
        finished = done + len(part)
        rate = finished / max(time.monotonic() - started, 1e-9)
        progress(
            f"ingest {run.table.name}: {finished:,}/{len(to_read):,} files ({100 * finished / len(to_read):.0f}%), {rate:,.0f} files/s"
        )
    if create:  # nothing to read: still make the (empty) table
        run.view_over(tags, paths=paths)
        run.execute(f"CREATE TABLE {table} USING parquet AS SELECT * FROM {run.view} WHERE false")
    rows, unreadable = run.execute(f"SELECT count(*), count(_corrupt_record) FROM {table}").rows[0]
    return IngestSummary(
        run.table.name,
        len(files),
        len(new),
        len(changed),
        len(deleted),
        len(files) - len(to_read),
        rows,
        unreadable,
        time.monotonic() - started,
    )

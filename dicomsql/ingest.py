"""Ingest: materialise a DICOM folder's header rows into a Parquet table, incrementally.

The first run reads every file. A later run lists the files again and compares them with the
table by ``(path, size, modificationTime)``: only new or changed files are read, and the rows
of deleted or changed files are removed. The work is plain SQL sent through a client (an
embedded session, or the running server), in chunks, so progress is reported as it goes and
the same code serves both.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from .client import QueryResult
from .errors import DicomsqlError
from .sqltools import identifier, string_literal
from .storage import FileEntry, list_files

__all__ = ["IngestSummary", "ingest"]

_VIEW = "`_dicomsql_ingest`"
_REMOVED = "`_dicomsql_ingest_removed`"
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


def _table_name(name: str, suffix: str = "") -> str:
    """``name`` (``table`` or ``db.table``) quoted, with ``suffix`` added to the table part."""
    parts = name.split(".")
    if not all(parts) or len(parts) > 2:
        raise DicomsqlError(f"ingest: {name!r} is not a table name (table or database.table)")
    parts[-1] += suffix
    return ".".join(identifier(part) for part in parts)


def _micros(entry: FileEntry) -> int | None:
    return None if entry.modified is None else round(entry.modified * 1_000_000)


def _existing(execute: Execute, name: str) -> dict[str, tuple[int | None, int | None]] | None:
    """path -> (size, modification time in microseconds) of the table's rows; None if the
    table does not exist."""
    *database, table = name.split(".")
    where = f" IN {identifier(database[0])}" if database else ""
    listed = execute(f"SHOW TABLES{where} LIKE {string_literal(table)}").rows
    if not any(row[1].lower() == table.lower() and not row[2] for row in listed):
        return None
    result = execute(f"SELECT path, size, unix_micros(modificationTime) FROM {_table_name(name)}")
    return {path: (size, micros) for path, size, micros in result.rows}


def _typed_keywords(execute: Execute, relation: str) -> list[str]:
    """The typed DICOM columns of a table or view (what its ``tags`` option must list)."""
    columns = [row[0] for row in execute(f"DESCRIBE {relation}").rows]
    return [c for c in columns if c not in _FIXED_COLUMNS and c != "PatientAgeYears" and not c.startswith("#")]


def _view_sql(paths: Sequence[str], tags: str) -> str:
    return (
        f"CREATE OR REPLACE TEMPORARY VIEW {_VIEW} USING dicom OPTIONS "
        f"(`paths` {string_literal(json.dumps(list(paths)))}, `tags` {string_literal(tags)})"
    )


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
    table = _table_name(name)
    files = list_files(paths)
    existing = _existing(execute, name)
    current = {entry.path: (entry.size, _micros(entry)) for entry in files}
    known = existing or {}
    new = [path for path in current if path not in known]
    changed = [path for path in current if path in known and known[path] != current[path]]
    removed = sorted(set(known) - set(current)) + changed

    if existing is None:
        if tags == "all":
            execute(_view_sql(paths, "all"))  # samples every path given, not one chunk
            tags = ",".join(_typed_keywords(execute, _VIEW))
    else:
        tags = ",".join(_typed_keywords(execute, table)) or "core"
        if removed:
            _remove_rows(execute, name, removed)

    to_read = sorted(new + changed)
    chunk = max(MIN_CHUNK_FILES, math.ceil(len(to_read) / MAX_CHUNKS))
    create = existing is None
    for done in range(0, len(to_read), chunk):
        part = to_read[done : done + chunk]
        execute(_view_sql(part, tags))
        if create:
            execute(f"CREATE TABLE {table} USING parquet AS SELECT * FROM {_VIEW}")
            create = False
        else:
            execute(f"INSERT INTO {table} SELECT * FROM {_VIEW}")
        finished = done + len(part)
        rate = finished / max(time.monotonic() - started, 1e-9)
        progress(f"ingest {name}: {finished:,}/{len(to_read):,} files ({100 * finished / len(to_read):.0f}%), {rate:,.0f} files/s")
    if create:  # nothing to read: still make the (empty) table
        execute(_view_sql(paths, tags))
        execute(f"CREATE TABLE {table} USING parquet AS SELECT * FROM {_VIEW} WHERE false")
    execute(f"DROP VIEW IF EXISTS {_VIEW}")
    rows, unreadable = execute(f"SELECT count(*), count(_corrupt_record) FROM {table}").rows[0]
    return IngestSummary(
        name, len(files), len(new), len(changed), len(removed) - len(changed),
        len(files) - len(to_read), rows, unreadable, time.monotonic() - started,
    )


def _remove_rows(execute: Execute, name: str, paths: Sequence[str]) -> None:
    """Rewrite table ``name`` without the rows of ``paths`` (a table cannot be overwritten
    while it is read, so the kept rows go to a new table, which then takes the name; the old
    one is renamed first, so an interruption leaves the data under one of the two names)."""
    table, kept, old = _table_name(name), _table_name(name, "__ingest"), _table_name(name, "__previous")
    execute(
        f"CREATE OR REPLACE TEMPORARY VIEW {_REMOVED} AS "
        f"SELECT explode(from_json({string_literal(json.dumps(list(paths)))}, 'array<string>')) AS path"
    )
    execute(f"DROP TABLE IF EXISTS {kept}")
    execute(f"CREATE TABLE {kept} USING parquet AS SELECT * FROM {table} t LEFT ANTI JOIN {_REMOVED} r ON t.path = r.path")
    execute(f"ALTER TABLE {table} RENAME TO {old}")
    execute(f"ALTER TABLE {kept} RENAME TO {table}")
    execute(f"DROP TABLE {old}")
    execute(f"DROP VIEW IF EXISTS {_REMOVED}")

"""Catalogs: the header rows of DICOM folders kept in Parquet, refreshed incrementally and
atomically.

A catalog ``ct`` is a view ``ct`` over immutable Parquet *segment* tables ``ct__<id>`` in
the same database. A refresh lists the files and compares them with the catalog by
``(path, size, modificationTime)``; it reads only new or changed files, into one new segment,
rewrites (as new segments) the segments holding rows of deleted or changed files, merges the
smaller segments when there are more than :data:`MAX_SEGMENTS`, and then replaces the view's query in
one metastore operation (ALTER VIEW). So a query sees the catalog as it was before a refresh or after it,
never half of one: Spark resolves the view once, when it analyses the query. The view's
properties are the catalog's manifest (its paths, segments and retired segments). Segments a
refresh replaced are dropped by a later refresh once :data:`RETIRE_SECONDS` have passed, so
that a query which began before the swap still finds its files. A refresh killed anywhere
leaves the view as it was; the segments it wrote are orphans, which the next refresh drops.

The work is plain SQL sent through ``execute`` (an embedded session's, the running server's
or the server's own), in chunks, so progress is reported as it goes. A refresh holds a lock
table ``<name>__lock`` (creating a table is atomic in the metastore) naming its process, so
two refreshes of one catalog cannot interleave; a lock left by a process of this host that
is gone is taken over. A plain Parquet table made by an older ``dicomsql ingest`` becomes the
first segment of the catalog of its name.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .errors import DicomsqlError, QueryError
from .sqltools import identifier, string_literal
from .storage import FileEntry, list_files

if TYPE_CHECKING:
    from .client import QueryResult

__all__ = ["Catalog", "IngestSummary", "ingest", "MAX_SEGMENTS", "RETIRE_SECONDS"]

_FIXED_COLUMNS = ("path", "size", "modificationTime", "meta", "_warnings", "_corrupt_record")
MIN_CHUNK_FILES = 2000
#: A refresh reads its files in at most this many statements (a progress line after each).
MAX_CHUNKS = 10
#: A refresh that leaves more segments than this merges all but the largest into one.
MAX_SEGMENTS = 8
#: How long a replaced segment is kept for the queries that began before the replacement.
RETIRE_SECONDS = 600.0
_PROPERTY = "dicomsql.catalog"

Execute = Callable[[str], "QueryResult"]
Progress = Callable[[str], None]
#: path -> (segment, size, modification time in microseconds): a catalog's rows.
Known = dict[str, tuple[str, "int | None", "int | None"]]


@dataclass(frozen=True)
class IngestSummary:
    """What a refresh did."""

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


@dataclass(frozen=True)
class Manifest:
    """What a catalog's view records in its properties: the paths it catalogues, the segments
    it reads (with their rows), and the retired ones (with when they were replaced)."""

    paths: tuple[str, ...]
    segments: tuple[tuple[str, int], ...]
    retired: tuple[tuple[str, float], ...] = ()

    def text(self) -> str:
        return json.dumps({"paths": self.paths, "segments": self.segments, "retired": self.retired})

    @classmethod
    def parse(cls, text: str) -> Manifest:
        data = json.loads(text)
        return cls(
            tuple(data["paths"]),
            tuple((name, rows) for name, rows in data["segments"]),
            tuple((name, at) for name, at in data["retired"]),
        )

    @property
    def names(self) -> set[str]:
        """The segments' and retired segments' names, lower-case (as the metastore has them)."""
        return {name.lower() for name, _ in (*self.segments, *self.retired)}

    def expired(self) -> list[str]:
        """The retired segments kept for :data:`RETIRE_SECONDS` already."""
        return [name for name, at in self.retired if at < time.time() - RETIRE_SECONDS]


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
        return self.sibling(self.table + suffix)

    def sibling(self, table: str) -> str:
        """The quoted name of table ``table`` in this one's database."""
        return (
            f"{identifier(self.database)}.{identifier(table)}"
            if self.database
            else identifier(table)
        )

    def listed(self, execute: Execute, command: str = "TABLES") -> dict[str, bool]:
        """This table's siblings (``SHOW TABLES``, or ``VIEWS``) by lower-case name; the values
        say whether the name is a temporary view."""
        where = f" IN {identifier(self.database)}" if self.database else ""
        pattern = string_literal(f"{self.table.lower()}*")
        return {
            row[1].lower(): row[2] for row in execute(f"SHOW {command}{where} LIKE {pattern}").rows
        }


def _typed_keywords(execute: Execute, relation: str) -> list[str]:
    """The typed DICOM columns of a table or view (what its ``tags`` option must list)."""
    return [
        c for c in _columns(execute, relation) if c not in _FIXED_COLUMNS and c != "PatientAgeYears"
    ]


def _columns(execute: Execute, relation: str) -> list[str]:
    return [row[0] for row in execute(f"DESCRIBE {relation}").rows if not row[0].startswith("#")]


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Catalog:
    """The catalog ``name`` (table or database.table) of the DICOM files under ``paths``.

    ``execute`` runs one SQL statement (``EmbeddedClient.execute``, ``JdbcClient.execute``).
    ``tags`` chooses the typed columns when the catalog is created (``core``, ``all`` or a
    list); an existing catalog keeps its columns. One object refreshes one catalog at a time
    (a second :meth:`refresh` waits for the first), and remembers what it last read, so that a
    refresh finding nothing changed reads only the file listing and the view's properties
    (each segment's rows, for the summary, are counted once: segments never change).
    """

    def __init__(
        self, execute: Execute, name: str, paths: Sequence[str], tags: str = "core"
    ) -> None:
        self.execute = execute
        self.table = _Table(name)
        self.paths = list(paths)
        self.tags = tags
        self._refreshing = threading.Lock()
        self._known: tuple[Manifest, Known] | None = None
        self._counts: dict[str, tuple[int, int]] = {}

    @property
    def name(self) -> str:
        return self.table.name

    def refresh(self, progress: Progress = lambda line: None) -> IngestSummary:
        """Bring the catalog up to date with the files (see the module's documentation);
        ``progress`` receives a line after each chunk read: files done / total, files per
        second."""
        with self._refreshing:
            started = time.monotonic()
            files = list_files(self.paths)
            if self._unchanged(files):
                return self._summary(files, 0, 0, 0, started)
            run = _Run(self)
            run.lock()
            try:
                return run.refresh(files, progress, started)
            finally:
                run.unlock()

    def _unchanged(self, files: list[FileEntry]) -> bool:
        """Whether the files are the ones the catalog holds and its view is as this object
        last saw it (read without the lock: a refresh elsewhere changes the manifest)."""
        if self._known is None:
            return False
        manifest, known = self._known
        if manifest.expired() or _read_manifest(self.execute, self.table) != manifest:
            return False
        return len(files) == len(known) and all(
            known.get(f.path, ())[1:] == (f.size, f.modified_micros) for f in files
        )

    def _summary(
        self, files: list[FileEntry], new: int, changed: int, removed: int, started: float
    ) -> IngestSummary:
        assert self._known is not None
        counts = self._segment_counts([name for name, _ in self._known[0].segments])
        rows = sum(segment_rows for segment_rows, _ in counts.values())
        unreadable = sum(segment_unreadable for _, segment_unreadable in counts.values())
        return IngestSummary(
            self.table.name,
            len(files),
            new,
            changed,
            removed,
            len(files) - new - changed,
            rows,
            unreadable,
            time.monotonic() - started,
        )

    def _segment_counts(self, segments: list[str]) -> dict[str, tuple[int, int]]:
        """Rows and unreadable rows of each of ``segments``: counted once per segment (they
        never change), in one query for those not counted yet."""
        uncounted = [name for name in segments if name not in self._counts]
        if uncounted:
            query = " UNION ALL ".join(
                f"SELECT {string_literal(name)}, count(*), count(_corrupt_record) "
                f"FROM {self.table.sibling(name)}"
                for name in uncounted
            )
            self._counts |= {name: (rows, bad) for name, rows, bad in self.execute(query).rows}
        self._counts = {name: self._counts[name] for name in segments}
        return self._counts


def _read_manifest(execute: Execute, table: _Table) -> Manifest | None:
    """The manifest of catalog view ``table``, None when there is no such view; an error when
    the name is a view that is not a catalog."""
    if table.table.lower() not in {
        n for n, temporary in table.listed(execute, "VIEWS").items() if not temporary
    }:
        return None
    properties = dict(execute(f"SHOW TBLPROPERTIES {table.sql()}").rows)
    if _PROPERTY not in properties:
        raise DicomsqlError(
            f"{table.name} is a view that is not a dicomsql catalog: choose another name"
        )
    return Manifest.parse(properties[_PROPERTY])


class _Run:
    """One refresh of a catalog, holding its lock: its own view names, and the SQL it sends."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.execute = catalog.execute
        self.table = catalog.table
        suffix = uuid.uuid4().hex[:12]
        self.view = identifier(f"_dicomsql_ingest_{suffix}")
        self.removed_view = identifier(f"_dicomsql_removed_{suffix}")
        self.segment_name = re.compile(re.escape(self.table.table.lower()) + r"__[0-9a-f]{12}")

    # --- the lock -------------------------------------------------------------------------

    def lock(self) -> None:
        """Create the lock table naming this process; take over one whose process is gone."""
        owner = f"{socket.gethostname()} {os.getpid()}"
        lock = self.table.sql("__lock")
        for attempt in (1, 2):
            try:
                self.execute(
                    f"CREATE TABLE {lock} (started STRING) USING parquet "
                    f"TBLPROPERTIES ('dicomsql.owner' = {string_literal(owner)})"
                )
                return
            except QueryError as exc:
                if "ALREADY_EXISTS" not in str(exc):
                    raise
            holder = dict(self.execute(f"SHOW TBLPROPERTIES {lock}").rows).get("dicomsql.owner", "")
            host, _, pid = holder.partition(" ")
            gone = host == socket.gethostname() and pid.isdigit() and not _process_alive(int(pid))
            if attempt == 1 and gone:
                self.execute(f"DROP TABLE IF EXISTS {lock}")
                continue
            raise DicomsqlError(
                f"another refresh of {self.table.name} is running (table {self.table.name}__lock "
                f"exists, held by {holder or 'an unknown process'}); if none is, drop that table "
                f"and run again"
            )

    def unlock(self) -> None:
        for relation in (
            f"VIEW IF EXISTS {self.view}",
            f"VIEW IF EXISTS {self.removed_view}",
            f"TABLE IF EXISTS {self.table.sql('__lock')}",
        ):
            self.execute(f"DROP {relation}")

    # --- the refresh ----------------------------------------------------------------------

    def refresh(self, files: list[FileEntry], progress: Progress, started: float) -> IngestSummary:
        manifest = self.drop_unused(self.manifest())
        existing = self.existing(manifest)
        current = {entry.path: (entry.size, entry.modified_micros) for entry in files}
        new = [path for path in current if path not in existing]
        changed = [p for p in current if p in existing and existing[p][1:] != current[p]]
        deleted = sorted(set(existing) - set(current))

        segments = dict(manifest.segments) if manifest else {}
        moved: dict[str, str | None] = {}  # replaced segment -> the one holding its rows now
        if manifest is None:
            tags = self.catalog.tags
            if tags == "all":
                self.view_over("all", paths=self.catalog.paths)  # samples every path given
                tags = ",".join(_typed_keywords(self.execute, self.view))
        else:
            first = self.table.sibling(manifest.segments[0][0])
            tags = ",".join(_typed_keywords(self.execute, first)) or "core"
            if deleted or changed:
                moved |= self.remove_rows(segments, existing, deleted + changed)
        to_read = sorted(new + changed)
        if to_read or not segments:
            segment = self.new_segment()
            segments[segment] = self.read_files(segment, tags, to_read, progress, started)
        if len(segments) > MAX_SEGMENTS:
            merged = self.merge(segments)
            moved = {old: merged.get(now, now) for old, now in moved.items()} | merged

        now = time.time()
        retired = (manifest.retired if manifest else ()) + tuple((s, now) for s in moved)
        published = Manifest(tuple(self.catalog.paths), tuple(segments.items()), retired)
        self.publish(published, create=manifest is None)
        gone = set(deleted + changed)
        known = {
            path: (moved.get(held, held), size, micros)
            for path, (held, size, micros) in existing.items()
            if path not in gone
        }
        for path in to_read:
            known[path] = (moved.get(segment, segment), *current[path])
        self.catalog._known = (published, known)
        return self.catalog._summary(files, len(new), len(changed), len(deleted), started)

    def manifest(self) -> Manifest | None:
        """The catalog's manifest; a plain table of the catalog's name (an older ``dicomsql
        ingest``) becomes its first segment; None: there is no catalog yet."""
        manifest = _read_manifest(self.execute, self.table)
        if manifest is not None or self.table.table.lower() not in self.table.listed(self.execute):
            return manifest
        segment = self.new_segment()
        self.execute(f"ALTER TABLE {self.table.sql()} RENAME TO {self.table.sibling(segment)}")
        rows = self.execute(f"SELECT count(*) FROM {self.table.sibling(segment)}").rows[0][0]
        manifest = Manifest(tuple(self.catalog.paths), ((segment, rows),))
        self.publish(manifest, create=True)
        return manifest

    def drop_unused(self, manifest: Manifest | None) -> Manifest | None:
        """Drop the segments no view reads (a killed refresh's) and the retired ones kept long
        enough; returns the manifest without the latter."""
        keep = manifest.names if manifest else set()
        for name, temporary in self.table.listed(self.execute).items():
            if not temporary and self.segment_name.fullmatch(name) and name not in keep:
                self.execute(f"DROP TABLE IF EXISTS {self.table.sibling(name)}")
        if manifest is None or not manifest.expired():
            return manifest
        expired = manifest.expired()
        kept = replace(manifest, retired=tuple(r for r in manifest.retired if r[0] not in expired))
        self.publish(kept)  # first: the view never names a dropped table
        for name in expired:
            self.execute(f"DROP TABLE IF EXISTS {self.table.sibling(name)}")
        return kept

    def existing(self, manifest: Manifest | None) -> Known:
        """path -> (segment, size, modification time in microseconds) of the catalog's rows:
        read from its segments, unless this catalog's last refresh left these segments."""
        if manifest is None:
            return {}
        if self.catalog._known and self.catalog._known[0].segments == manifest.segments:
            return self.catalog._known[1]
        union = " UNION ALL ".join(
            f"SELECT {string_literal(name)}, path, size, unix_micros(modificationTime) "
            f"FROM {self.table.sibling(name)}"
            for name, _ in manifest.segments
        )
        return {
            path: (segment, size, micros)
            for segment, path, size, micros in self.execute(union).rows
        }

    def new_segment(self) -> str:
        return f"{self.table.table}__{uuid.uuid4().hex[:12]}"

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

    def read_files(
        self, segment: str, tags: str, files: list[str], progress: Progress, started: float
    ) -> int:
        """Write segment ``segment`` with the rows of ``files``, read in chunks (reported to
        ``progress``); returns its rows. No files: an empty segment, with the columns."""
        table = self.table.sibling(segment)
        if not files:
            self.view_over(tags, paths=self.catalog.paths)
            self.execute(
                f"CREATE TABLE {table} USING parquet AS SELECT * FROM {self.view} WHERE false"
            )
            return 0
        chunk = max(MIN_CHUNK_FILES, math.ceil(len(files) / MAX_CHUNKS))
        for done in range(0, len(files), chunk):
            part = files[done : done + chunk]
            self.view_over(tags, files=part)
            if done == 0:
                self.execute(f"CREATE TABLE {table} USING parquet AS SELECT * FROM {self.view}")
            else:
                self.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {self.view}")
            finished = done + len(part)
            rate = finished / max(time.monotonic() - started, 1e-9)
            progress(
                f"ingest {self.table.name}: {finished:,}/{len(files):,} files "
                f"({100 * finished / len(files):.0f}%), {rate:,.0f} files/s"
            )
        return len(files)

    def remove_rows(
        self, segments: dict[str, int], existing: Known, paths: list[str]
    ) -> dict[str, str | None]:
        """Replace the segments holding rows of ``paths`` by new ones without them; returns
        each replaced segment's replacement (None: no rows were left)."""
        self.execute(
            f"CREATE OR REPLACE TEMPORARY VIEW {self.removed_view} AS SELECT explode(from_json("
            f"{string_literal(json.dumps(paths))}, 'array<string>')) AS path"
        )
        removed = Counter(existing[path][0] for path in paths)
        moved: dict[str, str | None] = {}
        for old, count in removed.items():
            rows = segments.pop(old) - count
            moved[old] = None
            if rows > 0:
                segment = moved[old] = self.new_segment()
                self.execute(
                    f"CREATE TABLE {self.table.sibling(segment)} USING parquet AS SELECT t.* "
                    f"FROM {self.table.sibling(old)} t LEFT ANTI JOIN {self.removed_view} r "
                    f"ON t.path = r.path"
                )
                segments[segment] = rows
        return moved

    def merge(self, segments: dict[str, int]) -> dict[str, str]:
        """Merge all segments but the largest into one; returns each merged segment's
        replacement (that one)."""
        largest = max(segments, key=segments.__getitem__)
        merged = [name for name in segments if name != largest]
        segment = self.new_segment()
        self.execute(
            f"CREATE TABLE {self.table.sibling(segment)} USING parquet AS {self.union(merged)}"
        )
        segments[segment] = sum(segments.pop(name) for name in merged)
        return dict.fromkeys(merged, segment)

    def union(self, names: Sequence[str]) -> str:
        """A query of the rows of segments ``names``, by column name."""
        columns = ", ".join(
            identifier(c) for c in _columns(self.execute, self.table.sibling(names[0]))
        )
        return " UNION ALL ".join(f"SELECT {columns} FROM {self.table.sibling(n)}" for n in names)

    def publish(self, manifest: Manifest, create: bool = False) -> None:
        """Point the catalog's view at the segments of ``manifest`` (``create``: there is no
        view yet). Spark's CREATE OR REPLACE VIEW drops the view and creates it again (a reader
        in between finds no view), so an existing view is altered: its manifest first, then
        its query (one metastore update; a crash in between leaves the query on segments the
        manifest still keeps, retired, and the next refresh publishes again)."""
        view, body = self.table.sql(), self.union([name for name, _ in manifest.segments])
        properties = f"({string_literal(_PROPERTY)} = {string_literal(manifest.text())})"
        if create:
            comment = f"dicomsql catalog of the DICOM files under {', '.join(manifest.paths)}"
            self.execute(
                f"CREATE VIEW {view} COMMENT {string_literal(comment)} "
                f"TBLPROPERTIES {properties} AS {body}"
            )
            return
        self.execute(f"ALTER VIEW {view} SET TBLPROPERTIES {properties}")
        self.execute(f"ALTER VIEW {view} AS {body}")


def ingest(
    execute: Execute,
    name: str,
    paths: Sequence[str],
    tags: str = "core",
    progress: Progress = lambda line: None,
) -> IngestSummary:
    """Bring catalog ``name`` up to date with the DICOM files under ``paths`` (one
    :meth:`Catalog.refresh`)."""
    return Catalog(execute, name, paths, tags).refresh(progress)

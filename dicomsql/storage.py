"""Where DICOM files live: listing and opening them, locally or through pyarrow's filesystems
(``s3://``, ``gs://``, ``hdfs://``, ``file://`` URIs), within the data roots a server admits.

Listing never fails on one bad entry: only regular files are listed (no FIFOs or devices,
which would block a reader), each local directory is walked once even through symlink loops,
and an entry that cannot be examined (a broken symlink, a file deleted meanwhile, a file
outside the data roots) is still listed with its ``error``, so that it becomes a row saying
why it could not be read.

Data roots: when the environment variable ``DICOMSQL_DATA_ROOTS`` holds a JSON list of
roots (``dicomsql serve`` sets it before Spark starts, so every Python worker inherits it),
only files under them are listed or opened; local paths are compared after resolving
symlinks.
"""

from __future__ import annotations

import fnmatch
import glob
import io
import json
import os
import stat
from dataclasses import dataclass
from typing import BinaryIO, Iterable

from .errors import DicomsqlError

__all__ = ["FileEntry", "DATA_ROOTS_VARIABLE", "data_roots", "data_roots_value", "check_allowed", "check_paths", "list_files", "open_file"]

DATA_ROOTS_VARIABLE = "DICOMSQL_DATA_ROOTS"
_READ_BUFFER = 64 * 1024


@dataclass(frozen=True)
class FileEntry:
    """One file to read: its path (or URI), size in bytes and modification time (epoch
    seconds); ``error`` says why it cannot be read (then size and time may be None)."""

    path: str
    size: int | None
    modified: float | None
    error: str | None = None


def _is_uri(path: str) -> bool:
    return "://" in path


def data_roots() -> tuple[str, ...] | None:
    """The roots this process may read under, or None when it may read anywhere."""
    value = os.environ.get(DATA_ROOTS_VARIABLE)
    if value is None:
        return None
    return tuple(json.loads(value))


def data_roots_value(roots: Iterable[str]) -> str:
    """The value of ``DICOMSQL_DATA_ROOTS`` confining reads to ``roots`` (local folders are
    resolved, URIs kept as they are)."""
    return json.dumps([root if _is_uri(root) else os.path.realpath(os.path.expanduser(root)) for root in roots])


def _within(path: str, roots: Iterable[str]) -> bool:
    if _is_uri(path):
        return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots if _is_uri(root))
    real = os.path.realpath(path)
    return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in roots if not _is_uri(root))


def check_allowed(path: str) -> None:
    """Raise :class:`DicomsqlError` when ``path`` is outside the data roots."""
    roots = data_roots()
    if roots is not None and not _within(path, roots):
        raise DicomsqlError(_outside_message(path, roots))


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def _examine(path: str, roots: tuple[str, ...] | None) -> FileEntry | None:
    """The entry of a local ``path``; None for something that is not a regular file."""
    try:
        status = os.stat(path)
    except OSError as exc:
        return FileEntry(path, None, None, f"cannot open: {exc.strerror or exc}")
    if not stat.S_ISREG(status.st_mode):
        return None
    if roots is not None and not _within(path, roots):
        return FileEntry(path, status.st_size, status.st_mtime, "refused: the file resolves outside the data roots")
    return FileEntry(path, status.st_size, status.st_mtime)


def _walk(directory: str, recursive: bool) -> list[str]:
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    pending = [directory]
    while pending:
        folder = pending.pop()
        try:
            status = os.stat(folder)
            if (status.st_dev, status.st_ino) in seen:
                continue  # a symlink loop or a second link to a walked folder
            seen.add((status.st_dev, status.st_ino))
            entries = list(os.scandir(folder))
        except OSError:
            continue  # unreadable folder: nothing in it can be listed
        for entry in entries:
            if _hidden(entry.name):
                continue
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if is_dir:
                if recursive:
                    pending.append(entry.path)
            else:
                found.append(entry.path)
    return found


def _local_roots(path: str) -> list[str]:
    pattern = os.path.abspath(os.path.expanduser(path))
    if os.path.lexists(pattern):  # a real name, even one with glob characters such as [1]
        return [pattern]
    if glob.has_magic(pattern):
        roots = sorted(glob.glob(pattern))
        if roots:
            return roots
        raise DicomsqlError(f"dicom source: no file matches path {path!r}")
    raise DicomsqlError(f"dicom source: path {path!r} does not exist")


def _list_local(path: str, recursive: bool, roots: tuple[str, ...] | None) -> list[FileEntry]:
    files: list[str] = []
    for root in _local_roots(path):
        if roots is not None and not _within(root, roots):
            raise DicomsqlError(f"dicom source: {_outside_message(root, roots)}")
        files.extend(_walk(root, recursive) if os.path.isdir(root) else [root])
    entries = (_examine(f, roots) for f in files)
    return [entry for entry in entries if entry is not None]


def _outside_message(path: str, roots: tuple[str, ...]) -> str:
    return (
        f"{path} is outside the data roots this server reads ({', '.join(roots) or 'none'}); "
        f"start it with --data-root to admit more"
    )


def _list_uri(uri: str, recursive: bool, roots: tuple[str, ...] | None) -> list[FileEntry]:
    from pyarrow import fs

    if roots is not None and not _within(uri, roots):
        raise DicomsqlError(f"dicom source: {_outside_message(uri, roots)}")
    filesystem, base = fs.FileSystem.from_uri(uri)
    prefix = uri[: len(uri) - len(base)] if uri.endswith(base) else uri.split("://")[0] + "://"
    info = filesystem.get_file_info(base)
    if info.type == fs.FileType.NotFound:
        raise DicomsqlError(f"dicom source: path {uri!r} does not exist")
    infos = [info] if info.type == fs.FileType.File else filesystem.get_file_info(fs.FileSelector(base, recursive=recursive))
    entries = []
    for item in infos:
        relative = item.path[len(base):].lstrip("/")
        if item.type != fs.FileType.File or any(_hidden(part) for part in relative.split("/") if part):
            continue
        modified = item.mtime.timestamp() if item.mtime is not None else None
        entries.append(FileEntry(prefix + item.path, item.size, modified))
    return entries


def check_paths(paths: Iterable[str]) -> None:
    """Raise :class:`DicomsqlError` when a local path does not exist (or a glob matches
    nothing), or a path lies outside the data roots, without listing any folder."""
    roots = data_roots()
    for path in paths:
        for root in [path] if _is_uri(path) else _local_roots(path):
            if roots is not None and not _within(root, roots):
                raise DicomsqlError(f"dicom source: {_outside_message(root, roots)}")


def list_files(
    paths: Iterable[str],
    recursive: bool = True,
    glob_filter: str | None = None,
    modified_after: float | None = None,
    modified_before: float | None = None,
) -> list[FileEntry]:
    """The files under ``paths`` (files, directories or globs; local or URIs), sorted by path,
    each listed once.

    Raises :class:`DicomsqlError` when a path does not exist, a glob matches nothing, or a
    path lies outside the data roots.
    """
    roots = data_roots()
    found: dict[str, FileEntry] = {}
    for path in paths:
        listed = _list_uri(path, recursive, roots) if _is_uri(path) else _list_local(path, recursive, roots)
        for entry in listed:
            found.setdefault(entry.path, entry)
    entries = sorted(found.values(), key=lambda e: e.path)
    if glob_filter:
        entries = [e for e in entries if fnmatch.fnmatchcase(e.path.rsplit("/", 1)[-1], glob_filter)]
    if modified_after is not None:
        entries = [e for e in entries if e.modified is not None and e.modified > modified_after]
    if modified_before is not None:
        entries = [e for e in entries if e.modified is not None and e.modified < modified_before]
    return entries


class _ArrowRaw(io.RawIOBase):
    """A pyarrow random-access file as a raw Python file, to put a read buffer in front."""

    def __init__(self, native, name: str) -> None:  # noqa: ANN001 - pyarrow.NativeFile
        self._native = native
        self.name = name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001
        data = self._native.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._native.seek(offset, whence)

    def tell(self) -> int:
        return self._native.tell()

    def close(self) -> None:
        self._native.close()
        super().close()


def open_file(path: str) -> BinaryIO:
    """Open a local path or a pyarrow URI for buffered binary reading (a context manager),
    after checking the data roots."""
    check_allowed(path)
    if not _is_uri(path):
        return open(path, "rb")
    from pyarrow import fs

    filesystem, location = fs.FileSystem.from_uri(path)
    return io.BufferedReader(_ArrowRaw(filesystem.open_input_file(location), path), _READ_BUFFER)

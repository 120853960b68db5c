"""Finding the files of a DICOM table, as Spark's file sources do: a file, a directory (read
recursively by default) or a glob; hidden entries (``.name``, ``_name``) skipped."""

from __future__ import annotations

import fnmatch
import glob
import os
from dataclasses import dataclass

from ..errors import DicomsqlError

__all__ = ["FileEntry", "list_files"]


@dataclass(frozen=True)
class FileEntry:
    """One file to read: absolute path, size in bytes, modification time (epoch seconds)."""

    path: str
    size: int
    modified: float


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def _entry(path: str) -> FileEntry:
    stat = os.stat(path)
    return FileEntry(path, stat.st_size, stat.st_mtime)


def _walk(directory: str, recursive: bool) -> list[str]:
    if not recursive:
        return [e.path for e in os.scandir(directory) if e.is_file() and not _hidden(e.name)]
    found = []
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = [d for d in dirs if not _hidden(d)]
        found.extend(os.path.join(root, name) for name in files if not _hidden(name))
    return found


def list_files(path: str, recursive: bool = True, glob_filter: str | None = None) -> list[FileEntry]:
    """The files under ``path``, sorted by path.

    Raises :class:`DicomsqlError` when ``path`` (or every file a glob could match) is missing.
    """
    pattern = os.path.abspath(os.path.expanduser(path))
    if glob.has_magic(pattern):
        roots = sorted(glob.glob(pattern))
        if not roots:
            raise DicomsqlError(f"dicom source: no file matches path {path!r}")
    elif os.path.exists(pattern):
        roots = [pattern]
    else:
        raise DicomsqlError(f"dicom source: path {path!r} does not exist")
    files = []
    for root in roots:
        files.extend(_walk(root, recursive) if os.path.isdir(root) else [root])
    if glob_filter:
        files = [f for f in files if fnmatch.fnmatchcase(os.path.basename(f), glob_filter)]
    return [_entry(f) for f in sorted(set(files))]

"""Finding the files of a DICOM table, as Spark's file sources do: a file, a directory (read
recursively by default) or a glob; hidden entries (``.name``, ``_name``) skipped.

Listing never fails on one bad entry: only regular files are listed (no FIFOs or devices,
which would block a reader), each directory is walked once even through symlink loops, and
an entry that cannot be examined (a broken symlink, a file deleted meanwhile) is still
listed, so that it becomes a row saying why it could not be read.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import stat
from dataclasses import dataclass

from ..errors import DicomsqlError

__all__ = ["FileEntry", "list_files"]


@dataclass(frozen=True)
class FileEntry:
    """One file to read: absolute path, size in bytes and modification time (epoch seconds);
    size and time are None when the file could not be examined."""

    path: str
    size: int | None
    modified: float | None


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def _examine(path: str) -> FileEntry | None:
    """The entry of ``path``; None for something that is not a regular file."""
    try:
        status = os.stat(path)
    except OSError:
        return FileEntry(path, None, None)
    if not stat.S_ISREG(status.st_mode):
        return None
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


def _roots(path: str) -> list[str]:
    pattern = os.path.abspath(os.path.expanduser(path))
    if os.path.lexists(pattern):  # a real name, even one with glob characters such as [1]
        return [pattern]
    if glob.has_magic(pattern):
        roots = sorted(glob.glob(pattern))
        if roots:
            return roots
        raise DicomsqlError(f"dicom source: no file matches path {path!r}")
    raise DicomsqlError(f"dicom source: path {path!r} does not exist")


def list_files(path: str, recursive: bool = True, glob_filter: str | None = None) -> list[FileEntry]:
    """The files under ``path`` (a file, a directory or a glob), sorted by path.

    Raises :class:`DicomsqlError` when ``path`` does not exist or a glob matches nothing.
    """
    files: list[str] = []
    for root in _roots(path):
        files.extend(_walk(root, recursive) if os.path.isdir(root) else [root])
    if glob_filter:
        files = [f for f in files if fnmatch.fnmatchcase(os.path.basename(f), glob_filter)]
    entries = (_examine(f) for f in sorted(set(files)))
    return [entry for entry in entries if entry is not None]

"""Where DICOM files live: listing and opening them, locally or through pyarrow's filesystems
(``s3://``, ``gs://``, ``hdfs://``, ``file://`` URIs), within the data roots a server admits
(a ``file://`` URI is checked as the local path it names, symlinks resolved).

Listing never fails on one bad entry: only regular files are listed (no FIFOs or devices,
which would block a reader), each local directory is walked once even through symlink loops,
and an entry that cannot be examined (a broken symlink, a file deleted meanwhile, a file
outside the data roots) is still listed with its ``error``, so that it becomes a row saying
why it could not be read.

Data roots: when the environment variable ``DICOMSQL_DATA_ROOTS`` holds a JSON list of
roots (``dicomsql serve`` sets it before Spark starts, so every Python worker inherits it),
only files under them are listed or opened; local paths are compared after resolving
symlinks.

Export roots: when ``DICOMSQL_EXPORT_ROOTS`` holds a JSON list of folders (``dicomsql serve``
sets it, an empty list without ``--export-root``), :func:`write_file` writes only under them;
unset, it writes wherever this process may.

Size limit: the pixel functions and the ``dicom`` source's ``pixels 'bytes'`` read whole
files into memory, so they refuse a file larger than ``DICOMSQL_MAX_FILE_SIZE`` bytes (2 GiB
when unset; ``dicomsql serve --max-file-size`` sets it the same way) before reading any of it.
"""

from __future__ import annotations

import fnmatch
import glob
import io
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from .errors import DicomsqlError, FileTooLargeError

__all__ = [
    "FileEntry",
    "is_uri",
    "absolute_path",
    "DATA_ROOTS_VARIABLE",
    "data_roots",
    "data_roots_value",
    "MAX_FILE_SIZE_VARIABLE",
    "DEFAULT_MAX_FILE_SIZE",
    "max_file_size",
    "max_file_size_value",
    "check_file_size",
    "check_allowed",
    "check_paths",
    "data_root_for",
    "list_files",
    "open_file",
    "open_named",
    "shown_path",
    "READS_PROPERTY",
    "EXPORT_ROOTS_VARIABLE",
    "export_roots",
    "export_roots_value",
    "check_export_allowed",
    "write_file",
]

DATA_ROOTS_VARIABLE = "DICOMSQL_DATA_ROOTS"
MAX_FILE_SIZE_VARIABLE = "DICOMSQL_MAX_FILE_SIZE"
EXPORT_ROOTS_VARIABLE = "DICOMSQL_EXPORT_ROOTS"
#: The Spark local property of a statement whose queries may name files only by their
#: pseudonymous ids (``ids``: the de-identified role's statements).
READS_PROPERTY = "dicomsql.reads"
DEFAULT_MAX_FILE_SIZE = 2 * 1024**3
_READ_BUFFER = 64 * 1024


@dataclass(frozen=True)
class FileEntry:
    """One file to read: its path (or URI), size in bytes and modification time (epoch
    seconds); ``error`` says why it cannot be read (then size and time may be None)."""

    path: str
    size: int | None
    modified: float | None
    error: str | None = None

    @property
    def modified_micros(self) -> int | None:
        """The modification time in whole microseconds since the epoch (Spark's TIMESTAMP unit).

        >>> FileEntry("a.dcm", 10, 1.5).modified_micros, FileEntry("b.dcm", None, None).modified_micros
        (1500000, None)
        """
        return None if self.modified is None else round(self.modified * 1_000_000)


def is_uri(path: str) -> bool:
    """Whether ``path`` is a URI (``s3://...``, ``file://...``) rather than a local path.

    >>> is_uri("s3://bucket/ct"), is_uri("/data/ct"), is_uri("ct://odd name")
    (True, False, True)
    """
    return "://" in path


def absolute_path(path: str | os.PathLike[str]) -> str:
    """A local ``path`` made absolute, ``~`` expanded (symlinks kept: see the data roots)."""
    return os.path.abspath(os.path.expanduser(path))


def data_roots() -> tuple[str, ...] | None:
    """The roots this process may read under, or None when it may read anywhere."""
    value = os.environ.get(DATA_ROOTS_VARIABLE)
    if value is None:
        return None
    return tuple(json.loads(value))


def data_roots_value(roots: Iterable[str]) -> str:
    """The value of ``DICOMSQL_DATA_ROOTS`` confining reads to ``roots`` (local folders and
    ``file://`` URIs are resolved to real local paths; other URIs are normalised)."""
    return json.dumps([_normal_uri(root) if _is_remote(root) else _real(root) for root in roots])


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = ("", "k", "m", "g", "t")


def max_file_size() -> int:
    """The size in bytes of the largest file this process reads into memory (the pixel
    functions, ``pixels 'bytes'``): ``DICOMSQL_MAX_FILE_SIZE``, 2 GiB when unset."""
    value = os.environ.get(MAX_FILE_SIZE_VARIABLE)
    return DEFAULT_MAX_FILE_SIZE if value is None else int(value)


def max_file_size_value(size: int | str) -> str:
    """The value of ``DICOMSQL_MAX_FILE_SIZE`` for a limit of ``size``: bytes, or text with a
    binary unit as Spark's sizes (``512k``, ``100MiB``, ``2g`` and ``2GB`` are 2 GiB).

    >>> max_file_size_value("2GiB"), max_file_size_value(1000)
    ('2147483648', '1000')
    """
    match = _SIZE.match(str(size))
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(
            f"a size must be a positive number of bytes, optionally with a unit (512MiB, 2g), got {size!r}"
        )
    return str(int(float(match.group(1)) * 1024 ** _UNITS.index(match.group(2).lower())))


def _size_text(size: int) -> str:
    """``3.1 GiB``, ``2 GiB``, ``100 bytes``."""
    for power in range(len(_UNITS) - 1, 0, -1):
        if size >= 1024**power:
            return f"{size / 1024**power:.1f}".removesuffix(".0") + f" {_UNITS[power].upper()}iB"
    return f"{size} bytes"


def check_file_size(size: int, limit: int | None = None) -> None:
    """Raise :class:`FileTooLargeError` when a file of ``size`` bytes is larger than
    ``limit`` (default :func:`max_file_size`).

    >>> check_file_size(int(3.1 * 1024**3), limit=2 * 1024**3)
    Traceback (most recent call last):
    dicomsql.errors.FileTooLargeError: file is 3.1 GiB, larger than the 2 GiB limit (--max-file-size)
    """
    limit = max_file_size() if limit is None else limit
    if size > limit:
        shown, allowed = _size_text(size), _size_text(limit)
        if shown == allowed:  # just above the limit: rounding would hide the difference
            shown, allowed = f"{size} bytes", f"{limit} bytes"
        raise FileTooLargeError(
            f"file is {shown}, larger than the {allowed} limit (--max-file-size)"
        )


def _is_remote(path: str) -> bool:
    return is_uri(path) and not path.startswith("file://")


def _local_path(path: str) -> str:
    """A local path, or the path of a ``file://`` URI."""
    return unquote(urlsplit(path).path) if path.startswith("file://") else path


def _real(path: str) -> str:
    return os.path.realpath(os.path.expanduser(_local_path(path)))


def _normal_uri(uri: str) -> str:
    """``uri`` without surprises: no query or fragment (pyarrow reads settings such as
    endpoint_override from the query), no ``..`` segment."""
    parts = urlsplit(uri)
    segments = unquote(parts.path).split("/")
    if parts.query or parts.fragment or ".." in segments:
        raise DicomsqlError(
            f"dicom source: {uri!r}: URIs with a query, a fragment or '..' are not accepted"
        )
    return uri


def _within(path: str, roots: Iterable[str]) -> bool:
    """Whether ``path`` lies under one of ``roots`` (symlinks resolved for local paths)."""
    if _is_remote(path):
        normal = _normal_uri(path)
        return any(
            normal == root or normal.startswith(root.rstrip("/") + "/")
            for root in roots
            if is_uri(root)
        )
    real = _real(path)
    return any(
        real == root or real.startswith(root.rstrip(os.sep) + os.sep)
        for root in roots
        if not is_uri(root)
    )


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
        return FileEntry(
            path,
            status.st_size,
            status.st_mtime,
            "refused: the file resolves outside the data roots",
        )
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


def data_root_for(path: str) -> str:
    """The root that admits ``path``: itself, or for a local glob the folder before its first
    wildcard."""
    if is_uri(path) or os.path.lexists(path) or not glob.has_magic(path):
        return path
    return _static_prefix(absolute_path(path))


def _static_prefix(pattern: str) -> str:
    """The leading components of a glob pattern that hold no wildcard."""
    parts = pattern.split(os.sep)
    fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    return os.sep.join(parts[:fixed]) or os.sep


def _local_roots(path: str, roots: tuple[str, ...] | None) -> list[str]:
    """The files or folders a local path or glob names, each within the data roots. Paths
    outside the roots are refused before anything is looked up, so nothing about them leaks."""
    pattern = absolute_path(path)
    magic = glob.has_magic(pattern) and not os.path.lexists(pattern)
    if roots is not None and not _within(_static_prefix(pattern) if magic else pattern, roots):
        raise DicomsqlError(f"dicom source: {_outside_message(path, roots)}")
    if not magic:
        if not os.path.lexists(pattern):
            raise DicomsqlError(f"dicom source: path {path!r} does not exist")
        return [pattern]
    matches = [m for m in sorted(glob.glob(pattern)) if roots is None or _within(m, roots)]
    if not matches:
        raise DicomsqlError(f"dicom source: no file matches path {path!r}")
    return matches


def _list_local(path: str, recursive: bool, roots: tuple[str, ...] | None) -> list[FileEntry]:
    files: list[str] = []
    for root in _local_roots(path, roots):
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

    uri = _normal_uri(uri)
    if roots is not None and not _within(uri, roots):
        raise DicomsqlError(f"dicom source: {_outside_message(uri, roots)}")
    filesystem, base = fs.FileSystem.from_uri(uri)
    refused = "refused: the file resolves outside the data roots"
    prefix = uri[: len(uri) - len(base)] if uri.endswith(base) else uri.split("://")[0] + "://"
    info = filesystem.get_file_info(base)
    if info.type == fs.FileType.NotFound:
        raise DicomsqlError(f"dicom source: path {uri!r} does not exist")
    infos = (
        [info]
        if info.type == fs.FileType.File
        else filesystem.get_file_info(fs.FileSelector(base, recursive=recursive))
    )
    entries = []
    for item in infos:
        relative = item.path[len(base) :].lstrip("/")
        if item.type != fs.FileType.File or any(
            _hidden(part) for part in relative.split("/") if part
        ):
            continue
        modified = item.mtime.timestamp() if item.mtime is not None else None
        path = prefix + item.path
        outside = roots is not None and not _within(path, roots)  # a symlink, for file://
        entries.append(FileEntry(path, item.size, modified, refused if outside else None))
    return entries


def check_paths(paths: Iterable[str]) -> None:
    """Raise :class:`DicomsqlError` when a local path does not exist (or a glob matches
    nothing), or a path lies outside the data roots, without listing any folder."""
    roots = data_roots()
    for path in paths:
        if is_uri(path):
            if roots is not None and not _within(_normal_uri(path), roots):
                raise DicomsqlError(f"dicom source: {_outside_message(path, roots)}")
        else:
            _local_roots(path, roots)


def _exact_file(path: str, roots: tuple[str, ...] | None) -> FileEntry:
    """The entry of one named file; never raises: problems become the entry's error."""
    try:
        if roots is not None and not _within(path, roots):
            return FileEntry(path, None, None, "refused: outside the data roots")
    except DicomsqlError as exc:
        return FileEntry(path, None, None, f"refused: {exc}")
    if not is_uri(path):
        return _examine(os.path.abspath(path), roots) or FileEntry(
            path, None, None, "not a regular file"
        )
    from pyarrow import fs

    try:
        filesystem, location = fs.FileSystem.from_uri(path)
        info = filesystem.get_file_info(location)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises per filesystem
        return FileEntry(path, None, None, f"cannot open: {exc}")
    if info.type != fs.FileType.File:
        return FileEntry(path, None, None, "cannot open: no such file")
    return FileEntry(path, info.size, info.mtime.timestamp() if info.mtime else None)


def list_files(
    paths: Iterable[str],
    recursive: bool = True,
    glob_filter: str | None = None,
    modified_after: float | None = None,
    modified_before: float | None = None,
    files: Iterable[str] = (),
) -> list[FileEntry]:
    """The files under ``paths`` (files, directories or globs; local or URIs), plus the
    ``files`` named exactly, sorted by path, each listed once.

    Raises :class:`DicomsqlError` when a path does not exist, a glob matches nothing, or a
    path lies outside the data roots. A named file that is missing or outside the roots is
    an entry with its error instead.
    """
    roots = data_roots()
    found: dict[str, FileEntry] = {}
    for path in paths:
        listed = (
            _list_uri(path, recursive, roots)
            if is_uri(path)
            else _list_local(path, recursive, roots)
        )
        for entry in listed:
            found.setdefault(entry.path, entry)
    for path in files:
        found.setdefault(path, _exact_file(path, roots))
    entries = sorted(found.values(), key=lambda e: e.path)
    if glob_filter:
        entries = [
            e for e in entries if fnmatch.fnmatchcase(e.path.rsplit("/", 1)[-1], glob_filter)
        ]
    if modified_after is not None:
        entries = [e for e in entries if e.modified is not None and e.modified > modified_after]
    if modified_before is not None:
        entries = [e for e in entries if e.modified is not None and e.modified < modified_before]
    return entries


class _ArrowRaw(io.RawIOBase):
    """A pyarrow random-access file as a raw Python file, to put a read buffer in front."""

    def __init__(self, native, name: str) -> None:
        self._native = native
        self.name = name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
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


def open_file(path: str, *, limited: bool = False) -> BinaryIO:
    """Open a local path or a pyarrow URI for buffered binary reading (a context manager),
    after checking the data roots. ``limited`` (for a reader of the whole file): a file
    larger than :func:`max_file_size` raises :class:`FileTooLargeError`, nothing read."""
    check_allowed(path)
    if not is_uri(path):
        fp: BinaryIO = open(path, "rb")
    else:
        from pyarrow import fs

        filesystem, location = fs.FileSystem.from_uri(_normal_uri(path))
        fp = io.BufferedReader(_ArrowRaw(filesystem.open_input_file(location), path), _READ_BUFFER)
    if limited:
        try:
            check_file_size(fp.seek(0, io.SEEK_END))
            fp.seek(0)
        except BaseException:
            fp.close()
            raise
    return fp


def open_named(name: str) -> BinaryIO:
    """Open, whole-file limited (:func:`open_file`), a file a query names: a path or URI, or a
    pseudonymous file id (``dicom_file_id``), which the server's key turns back into its path.
    The path of an id never shows in an error: the id stands in its place. In a statement
    of the de-identified role (Spark local property ``dicomsql.reads`` = ``ids``) only ids are
    accepted."""
    from .dicom.deid import FILE_ID_PREFIX, file_of_id

    if not name.startswith(FILE_ID_PREFIX):
        if _ids_only():
            raise DicomsqlError("this account names files by their id (the views' id column)")
        return open_file(name, limited=True)
    from .keys import deid_key

    try:
        path = file_of_id(name, deid_key())
    except ValueError as exc:
        raise DicomsqlError(f"{name[:40]}...: {exc}") from None
    try:
        return open_file(path, limited=True)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror) from None
    except DicomsqlError as exc:
        raise DicomsqlError(str(exc).replace(path, name)) from None


def shown_path(path: str) -> str:
    """``path`` as an error may show it: its file id in a statement of the de-identified
    role (Spark local property ``dicomsql.reads`` = ``ids``), else itself."""
    if not _ids_only():
        return path
    from .dicom.deid import file_id
    from .keys import deid_key

    return file_id(path, deid_key())


def _ids_only() -> bool:
    from pyspark import TaskContext

    context = TaskContext.get()
    return context is not None and context.getLocalProperty(READS_PROPERTY) == "ids"


def export_roots() -> tuple[str, ...] | None:
    """The folders this process may write files under, or None when it may write anywhere."""
    value = os.environ.get(EXPORT_ROOTS_VARIABLE)
    return None if value is None else tuple(json.loads(value))


def export_roots_value(roots: Iterable[str]) -> str:
    """The value of ``DICOMSQL_EXPORT_ROOTS`` confining writes to ``roots`` (local folders,
    resolved to real paths)."""
    roots = list(roots)
    remote = [root for root in roots if _is_remote(root)]
    if remote:
        raise DicomsqlError(f"export roots are local folders, not {', '.join(remote)}")
    return json.dumps([_real(root) for root in roots])


def check_export_allowed(path: str) -> None:
    """Raise :class:`DicomsqlError` unless ``path`` (a local path) may be written: under the
    export roots, when there are any (symlinks resolved)."""
    if _is_remote(path):
        raise DicomsqlError(f"files are written to local folders only, not {path}")
    roots = export_roots()
    if roots is not None and not _within(path, roots):
        raise DicomsqlError(
            f"{path} is outside the export roots ({', '.join(roots) or 'none'}); "
            "a server writes only under its --export-root folders"
        )


def write_file(path: str, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to the local ``path`` whole or not at all: into a hidden temporary file
    of the same folder (mode 0600; folders made 0700), synced, then renamed into place, so
    a reader (or the ``dicom`` source, which skips hidden files) never sees half a file. An
    existing file holding other bytes is replaced only when ``overwrite`` (else
    :class:`DicomsqlError`); one holding ``data`` already is left as it is, so writing again
    what was written (a rerun, or Spark running a task again) is no error. The export roots
    are checked before the folders are made and again once they exist."""
    path = _local_path(path)
    check_export_allowed(path)
    folder = os.path.dirname(os.path.abspath(path))
    _make_folders(folder)
    check_export_allowed(path)
    if not overwrite and _holds(path, data):
        return
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".", suffix=".partial")
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if overwrite:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)
            except FileExistsError:
                if not _holds(path, data):  # not the same file written at the same time
                    raise DicomsqlError(
                        f"{path} exists (option overwrite 'true' replaces it)"
                    ) from None
        _sync_folder(folder)
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)


def _make_folders(folder: str) -> None:
    """``folder`` and the folders above it that are missing, each made 0700 (``os.makedirs``
    gives its mode to the last one only)."""
    missing = []
    while not os.path.isdir(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    for each in reversed(missing):
        try:
            os.mkdir(each, 0o700)
        except FileExistsError:
            pass


def _sync_folder(folder: str) -> None:
    """Make a rename or link in ``folder`` durable."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _holds(path: str, data: bytes) -> bool:
    """Whether the regular file at ``path`` holds exactly ``data``."""
    try:
        with open(path, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NOFOLLOW)) as fp:
            return os.fstat(fp.fileno()).st_size == len(data) and fp.read() == data
    except OSError:
        return False

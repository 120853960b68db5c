"""The de-identification key: what makes ``dicom_deidentify``'s pseudonyms, UIDs and date
shifts the same in every row, partition and run, and unguessable without it.

It is a file the server names (``--deid-key-file``; by default ``<home>/deid.key``, made with
32 random bytes on first start), readable by its owner only, and never part of a query, a
Spark setting or a log. The driver checks it and puts its *path* in the environment variable
``DICOMSQL_DEID_KEY_FILE`` (and ``spark.executorEnv``), so that every Python worker reads the
key from the file itself: on a cluster, executors must see that path, as they see the data.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import stat
import tempfile
from pathlib import Path

from .errors import DicomsqlError

__all__ = ["DEID_KEY_VARIABLE", "MIN_KEY_BYTES", "prepare_key_file", "deid_key"]

DEID_KEY_VARIABLE = "DICOMSQL_DEID_KEY_FILE"
#: The shortest key accepted, in bytes of the file (a generated key has 64 hex digits).
MIN_KEY_BYTES = 16


def prepare_key_file(path: str | os.PathLike[str], *, create: bool) -> Path:
    """``path`` checked as a key file, first written (32 random bytes as hex, mode 0600) when
    ``create`` and it does not exist: in a temporary file, synced, then linked into place, so
    that a reader never sees half a key and two processes starting at once agree on one. A key
    file that is missing, not a regular file, not this user's, readable by group or others, or
    shorter than :data:`MIN_KEY_BYTES` is a :class:`~dicomsql.errors.DicomsqlError` saying so."""
    path = Path(path).expanduser().resolve()
    if create and not path.exists():
        _write_new_key(path)
    try:
        status = path.stat()
    except OSError:
        raise DicomsqlError(f"--deid-key-file {path} does not exist") from None
    if not stat.S_ISREG(status.st_mode) or status.st_uid != os.geteuid():
        raise DicomsqlError(f"--deid-key-file {path} must be a regular file of this user's")
    if status.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise DicomsqlError(
            f"--deid-key-file {path} is readable by others than its owner: chmod 600 it"
        )
    if len(_key_bytes(str(path))) < MIN_KEY_BYTES:
        raise DicomsqlError(f"--deid-key-file {path} holds less than {MIN_KEY_BYTES} bytes")
    return path


def _write_new_key(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".deid-key-")  # 0600
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(32) + "\n")
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: theirs
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


def deid_key() -> bytes:
    """The key of this process, from the file ``DICOMSQL_DEID_KEY_FILE`` names. It is read
    once per process: a new key takes a restart of the server (and its workers)."""
    path = os.environ.get(DEID_KEY_VARIABLE)
    if not path:
        raise DicomsqlError(
            "no de-identification key: the session was started without a key file "
            "(dicomsql serve --deid-key-file, or a home to make one in)"
        )
    return _key_bytes(path)


@functools.cache
def _key_bytes(path: str) -> bytes:
    with open(path, "rb") as key:
        return key.read().strip()

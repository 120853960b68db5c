"""The dicomsql home: the state directory holding the metastore, the warehouse and the demo.

The embedded metastore (Derby) admits one process, so a process using a home holds an
exclusive lock on ``<home>/dicomsql.lock`` for as long as it uses it, and describes itself
(and, for a server, where it listens) in ``<home>/dicomsql.owner.json``. Another process
reads that description to say whom to ask.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .client import JdbcUrl
from .errors import DicomsqlError, HomeInUseError

__all__ = ["Home", "HomeOwner", "resolve_home"]

DEFAULT_HOME = "~/.dicomsql"
HOME_ENVIRONMENT_VARIABLE = "DICOMSQL_HOME"
_ACQUIRE_SECONDS = 1.0  # another process may be probing the lock for a moment


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """``home``, else ``$DICOMSQL_HOME``, else ``~/.dicomsql``, as an absolute path."""
    chosen = home or os.environ.get(HOME_ENVIRONMENT_VARIABLE) or DEFAULT_HOME
    return Path(chosen).expanduser().resolve()


@dataclass(frozen=True)
class HomeOwner:
    """The process holding a home, as it described itself."""

    pid: int
    command: str
    jdbc_host: str | None = None
    jdbc_port: int | None = None

    @property
    def jdbc_url(self) -> str | None:
        """The JDBC URL of the server this process runs, if it runs one."""
        if self.jdbc_port is None:
            return None
        return str(JdbcUrl(self.jdbc_host, self.jdbc_port))


class Home:
    """A dicomsql home directory and its single-process lock."""

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.path = resolve_home(home)
        self._lock_file: IO[str] | None = None

    @property
    def metastore(self) -> Path:
        return self.path / "metastore_db"

    @property
    def warehouse(self) -> Path:
        return self.path / "warehouse"

    @property
    def tmp(self) -> Path:
        """Temporary files of the driver JVM (``java.io.tmpdir``), created with the lock."""
        return self.path / "tmp"

    @property
    def scratch(self) -> Path:
        """Hive's local scratch space, created with the lock."""
        return self.tmp / "scratch"

    @property
    def demo(self) -> Path:
        return self.path / "demo"

    @property
    def users(self) -> Path:
        """The accounts of ``--auth password`` (see :class:`dicomsql.server.auth.PasswordFile`)."""
        return self.path / "users"

    @property
    def deid_key(self) -> Path:
        """The de-identification key when no ``--deid-key-file`` is given (see :mod:`dicomsql.keys`)."""
        return self.path / "deid.key"

    @property
    def lock_path(self) -> Path:
        return self.path / "dicomsql.lock"

    @property
    def owner_path(self) -> Path:
        return self.path / "dicomsql.owner.json"

    def acquire(self) -> None:
        """Take the home for this process; raise :class:`HomeInUseError` saying who has it."""
        if self._lock_file is not None:
            return
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            mode = self.path.stat().st_mode
            if mode & (stat.S_IWGRP | stat.S_IWOTH):
                raise DicomsqlError(
                    f"the dicomsql home {self.path} is writable by other users (mode {stat.filemode(mode)}): "
                    f"it holds the metastore, the warehouse and the accounts; chmod 700 it, or use another --home"
                )
            if (
                mode & 0o077
            ):  # readable by others (a home of an older dicomsql): the owner's alone from now on
                self.path.chmod(0o700)
            self.scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock_file = open(
                os.open(self.lock_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600),
                "a",
                encoding="utf-8",
            )
        except OSError as exc:
            raise DicomsqlError(
                f"cannot use {self.path} as the dicomsql home: {exc.strerror}"
            ) from None
        deadline = time.monotonic() + _ACQUIRE_SECONDS
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    lock_file.close()
                    raise self.in_use_error(self.owner()) from None
                time.sleep(0.05)
        self._lock_file = lock_file
        self.describe()

    def describe(self, **details: Any) -> None:
        """Record who holds the home (plus ``details``, e.g. the JDBC port), atomically."""
        if self._lock_file is None:
            raise RuntimeError("describe() needs the home lock; call acquire() first")
        owner = {
            "pid": os.getpid(),
            "command": " ".join(sys.argv) or sys.executable,
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            **details,
        }
        staging = self.owner_path.with_suffix(".tmp")
        staging.write_text(json.dumps(owner), encoding="utf-8")
        os.replace(staging, self.owner_path)

    def release(self) -> None:
        """Give the home up (also done by the operating system when the process ends)."""
        if self._lock_file is not None:
            self.owner_path.unlink(missing_ok=True)
            self._lock_file.close()  # closing drops the flock
            self._lock_file = None

    def owner(self) -> HomeOwner | None:
        """Who holds this home, or None when nobody (or this process) does."""
        if self._lock_file is not None or not self.lock_path.exists():
            return None
        with open(self.lock_path, encoding="utf-8") as lock_file:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # held: read what the holder wrote
            else:
                return None
        try:
            described = json.loads(self.owner_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            described = {}
        return HomeOwner(
            pid=int(described.get("pid", 0)),
            command=described.get("command", "unknown"),
            jdbc_host=described.get("jdbc_host"),
            jdbc_port=described.get("jdbc_port"),
        )

    def in_use_error(self, owner: HomeOwner | None) -> HomeInUseError:
        """The error telling that ``owner`` holds this home, and what to do about it."""
        who = f"process {owner.pid} ({owner.command})" if owner and owner.pid else "another process"
        message = (
            f"the dicomsql home {self.path} is in use by {who}; its embedded metastore admits "
            f"one process at a time."
        )
        if owner and owner.jdbc_url:
            return HomeInUseError(
                f"{message} That process is a server: send SQL through it "
                f"(dicomsql sql --jdbc {owner.jdbc_url} ...), or stop it, or use another --home."
            )
        return HomeInUseError(f"{message} Wait for it to finish or stop it, or use another --home.")

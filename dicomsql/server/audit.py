"""The audit log: ``<home>/audit.log``, one JSON object per line, mode 0600, rotated by size.

Each login (and failed login) and each statement is a line: the time, the user, the client's
address, the session, the statement (its text, or with ``--audit-statements hash`` only its
SHA-256), the outcome (``ok``, ``denied`` with the rule, ``error`` with the error class,
``cancelled``, ``timed out``), the rows sent and the duration. This is the only place
statements are written: the server's other logs hold no statement text, value or path.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from ..settings import STATEMENT_MODES

__all__ = ["AuditLog", "STATEMENT_MODES"]

#: Longer statement texts are recorded cut, with the SHA-256 of the whole.
_LONGEST_STATEMENT = 64 * 1024


class AuditLog:
    """Appends audit events to ``path``; past ``max_bytes`` the file becomes ``path.1`` (and
    ``.1`` becomes ``.2``...), keeping ``backups`` old files."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        statements: str = "text",
        max_bytes: int = 64 << 20,
        backups: int = 9,
    ) -> None:
        if statements not in STATEMENT_MODES:
            raise ValueError(
                f"--audit-statements must be one of {', '.join(STATEMENT_MODES)}, got {statements!r}"
            )
        self.path = Path(path)
        self.statements = statements
        self.max_bytes, self.backups = max_bytes, backups
        self._lock = threading.Lock()
        self._file = self._open()

    def _open(self):
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(descriptor, 0o600)
        return os.fdopen(descriptor, "a", encoding="utf-8")

    def login(
        self, user: str, address: str, ok: bool, reason: str = "", role: str | None = None
    ) -> None:
        """A login: accepted (with the role) or refused (with the reason: never the password)."""
        self.write(
            "login",
            user=user,
            address=address,
            outcome="ok" if ok else "failed",
            reason=reason or None,
            role=role,
        )

    def statement(
        self,
        user: str,
        address: str,
        session: str,
        text: str,
        outcome: str,
        detail: str | None = None,
        rows: int | None = None,
        seconds: float | None = None,
    ) -> None:
        """A statement that starts (outcome ``started``) or ended: its outcome (ok, denied, error, cancelled, timed out),
        ``detail`` (the rule that denied it or the error class), rows sent and duration."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        if self.statements == "hash":
            recorded = {"statement_sha256": digest}
        elif len(text) > _LONGEST_STATEMENT:  # a huge statement must not rotate the evidence away
            recorded = {"statement": text[:_LONGEST_STATEMENT] + "...", "statement_sha256": digest}
        else:
            recorded = {"statement": text}
        self.write(
            "statement",
            user=user,
            address=address,
            session=session,
            **recorded,
            outcome=outcome,
            detail=detail,
            rows=rows,
            seconds=None if seconds is None else round(seconds, 3),
        )

    def write(self, event: str, **fields: Any) -> None:
        line = json.dumps(
            {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "event": event,
                **{key: value for key, value in fields.items() if value is not None},
            },
            ensure_ascii=False,
        )
        with self._lock:
            if self._file.tell() + len(line) + 1 > self.max_bytes:
                self._rotate()
            self._file.write(line + "\n")
            self._file.flush()

    def _rotate(self) -> None:
        self._file.close()
        for number in range(self.backups, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{number}")
            newer = (
                self.path.with_name(f"{self.path.name}.{number - 1}") if number > 1 else self.path
            )
            if newer.exists():
                os.replace(newer, older)
        self._file = self._open()

    def close(self) -> None:
        with self._lock:
            self._file.close()

"""Who may log in to the endpoint, and as what role.

An :class:`Authenticator` turns the user name and password of a SASL PLAIN login into an
:class:`Account` or raises :class:`AuthenticationFailed` (one message for a wrong password
and an unknown user: no user enumeration). Three kinds, chosen by ``dicomsql serve --auth``:

- ``none`` (:class:`NoLogin`): no password asked; every client has one role.
- ``password`` (:class:`PasswordFile`): accounts in ``<home>/users`` (salted scrypt hashes),
  managed with ``dicomsql user add|remove|list`` and re-read when the file changes.
- ``ldap`` (:class:`dicomsql.server.ldap.LdapDirectory`): a simple bind to a directory.

:class:`Throttle` slows repeated failures from one address.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import DicomsqlError
from ..settings import ROLES

__all__ = [
    "ROLES",
    "Account",
    "AuthenticationFailed",
    "Authenticator",
    "NoLogin",
    "PasswordFile",
    "Throttle",
    "check_user_name",
    "database_of",
]

_USER_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
#: scrypt cost: 2**15 x 8 x 1 takes ~50 ms and 32 MiB, per OWASP's recommendation.
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}
_SCRYPT_MEMORY = 64 * 1024 * 1024


class AuthenticationFailed(DicomsqlError):
    """A login was refused; the client hears only "authentication failed"."""

    def __init__(self, reason: str = "") -> None:
        super().__init__("authentication failed")
        self.reason = reason  # for the audit log, never for the client


@dataclass(frozen=True)
class Account:
    """A logged-in user: its name and role (``analyst``, ``admin`` or ``deidentified``)."""

    name: str
    role: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    @property
    def deidentified(self) -> bool:
        """Whether the account sees only the de-identified views."""
        return self.role == "deidentified"

    @property
    def database(self) -> str:
        """The user's own database, ``user_<name>``."""
        return database_of(self.name)


class Authenticator(Protocol):
    """Checks a login: returns the account, or raises :class:`AuthenticationFailed`."""

    #: Whether a password is checked (``--auth none`` checks none).
    checks_passwords: bool

    def authenticate(self, user: str, password: str) -> Account: ...


def check_user_name(name: str) -> str:
    """``name`` if it can be an account (lower-case letters, digits and ``_``, starting with
    a letter, at most 63 characters: it names the database ``user_<name>``).

    >>> check_user_name("alice_2")
    'alice_2'
    >>> check_user_name("Robert'); DROP")
    Traceback (most recent call last):
    ...
    dicomsql.errors.DicomsqlError: user name "Robert'); DROP" is not allowed: use lower-case letters, digits and _, starting with a letter (at most 63)
    """
    if not _USER_NAME.fullmatch(name):
        raise DicomsqlError(
            f"user name {name!r} is not allowed: use lower-case letters, digits and _, starting with a letter (at most 63)"
        )
    return name


def database_of(user: str) -> str:
    """The database of ``user``: ``user_`` and the name; a name that is not already lower-case
    letters, digits and ``_`` gets those (others as ``_``) and a hash of the exact name, so
    that two users never share a database.

    >>> database_of("alice")
    'user_alice'
    >>> database_of("Dr. Who"), database_of("dr__who")
    ('user_dr__who_cb838f39', 'user_dr__who')
    """
    if _USER_NAME.fullmatch(user):
        return f"user_{user}"
    cleaned = re.sub(r"[^a-z0-9_]", "_", user.lower())[:40]
    return f"user_{cleaned}_{hashlib.sha256(user.encode()).hexdigest()[:8]}"


@dataclass
class NoLogin:
    """``--auth none``: any user name, no password checked, every client in ``role``."""

    role: str = "analyst"
    checks_passwords = False

    def authenticate(self, user: str, password: str) -> Account:
        return Account(user or "anonymous", self.role)


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password``: ``scrypt$n$r$p$salt$hash`` (base64).

    >>> stored = hash_password("s3cret")
    >>> stored.startswith("scrypt$32768$8$1$"), verify_password("s3cret", stored), verify_password("guess", stored)
    (True, True, False)
    """
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, maxmem=_SCRYPT_MEMORY, **_SCRYPT)
    encoded = (base64.b64encode(part).decode() for part in (salt, digest))
    return "$".join(["scrypt", str(_SCRYPT["n"]), str(_SCRYPT["r"]), str(_SCRYPT["p"]), *encoded])


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` (see :func:`hash_password`) was made of."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_SCRYPT_MEMORY,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return kind == "scrypt" and hmac.compare_digest(actual, expected)


#: Checked against when the user is unknown, so that the answer takes as long as for a known one.
_DECOY = hash_password(secrets.token_urlsafe(16))


class PasswordFile:
    """``--auth password``: the accounts of ``<home>/users``, a JSON object ``{name: {"role":
    ..., "scrypt": ...}}`` (mode 0600). The file is re-read when it changes, so accounts
    added or removed while a server runs take effect at the next login."""

    checks_passwords = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._seen: tuple[int, int, int] | None = None
        self._accounts: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def accounts(self) -> dict[str, dict[str, str]]:
        """Every account by name (as stored), as the file is now."""
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return {}
        seen = (status.st_ino, status.st_mtime_ns, status.st_size)
        with self._lock:
            if seen != self._seen:
                self._accounts = json.loads(self.path.read_text(encoding="utf-8") or "{}")
                self._seen = seen
            return self._accounts

    def authenticate(self, user: str, password: str) -> Account:
        account = self.accounts().get(user)
        if account is None:
            verify_password(password, _DECOY)
            raise AuthenticationFailed("unknown user")
        if not verify_password(password, account["scrypt"]):
            raise AuthenticationFailed("wrong password")
        return Account(user, account["role"])

    def still_valid(self, account: Account) -> bool:
        """Whether ``account`` still exists with its role (an account removed or given another
        role while its sessions are open loses them at their next request)."""
        stored = self.accounts().get(account.name)
        return stored is not None and stored["role"] == account.role

    def add(self, name: str, password: str, role: str = "analyst") -> None:
        """Add ``name`` (or set its password and role)."""
        check_user_name(name)
        if role not in ROLES:
            raise DicomsqlError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if not password:
            raise DicomsqlError("the password is empty")
        with self._editing() as accounts:
            accounts[name] = {"role": role, "scrypt": hash_password(password)}

    def remove(self, name: str) -> None:
        """Remove ``name``; raises :class:`DicomsqlError` when there is no such account."""
        with self._editing() as accounts:
            if accounts.pop(name, None) is None:
                raise DicomsqlError(f"no account named {name!r} in {self.path}")

    @contextlib.contextmanager
    def _editing(self) -> Iterator[dict[str, dict[str, str]]]:
        """The accounts to change, under the file's lock; written back atomically (0600)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(os.open(self.path.with_suffix(".lock"), os.O_CREAT | os.O_RDWR, 0o600)) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._seen = None
            accounts = dict(self.accounts())
            yield accounts
            staging = self.path.with_suffix(".tmp")
            staging.unlink(missing_ok=True)
            with open(
                os.open(staging, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "w", encoding="utf-8"
            ) as out:
                json.dump(accounts, out, indent=1, sort_keys=True)
            os.replace(staging, self.path)


class Throttle:
    """Slows repeated login failures from one address: after ``free`` failures within
    ``window`` seconds, each further attempt from there waits ``delay`` seconds more (up to
    ``longest``) before it is answered. A success clears the address."""

    def __init__(
        self, free: int = 5, window: float = 60.0, delay: float = 0.5, longest: float = 5.0
    ) -> None:
        self.free, self.window, self.delay, self.longest = free, window, delay, longest
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def wait_before(self, address: str) -> float:
        """The seconds an attempt from ``address`` waits before it is checked."""
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(address, []) if now - t < self.window]
            if recent:
                self._failures[address] = recent
            else:
                self._failures.pop(address, None)
            extra = len(recent) - self.free + 1
        return min(self.longest, extra * self.delay) if extra > 0 else 0.0

    def failed(self, address: str) -> None:
        with self._lock:
            self._failures.setdefault(address, []).append(time.monotonic())
            if len(self._failures) > 100_000:  # a storm from many addresses: forget the oldest
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)

"""Who may connect to the endpoint and what they may do: the login, TLS, the roles' limits
and the audit log, gathered in one :class:`Access` that the transport, the service and the
engine consult."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DicomsqlError
from .audit import AuditLog
from .auth import Account, AuthenticationFailed, Authenticator, NoLogin, Throttle

__all__ = ["Access", "tls_context", "is_loopback"]

#: Password checks run at once (each scrypt check takes ~50 ms and 32 MiB): a login storm
#: queues here instead of exhausting memory.
_CONCURRENT_CHECKS = 4


@dataclass
class Access:
    """The endpoint's security settings.

    ``authenticator`` checks logins (default: none, every client an analyst);
    ``shared_databases`` (default: ``default``, where ``dicomsql ingest`` puts tables) are
    readable by every analyst; analysts' statements end after
    ``query_timeout`` seconds, their results after ``max_result_rows`` rows, and each may
    hold ``max_sessions_per_user`` sessions, closed after ``idle_timeout`` seconds without a
    request. ``tls`` (an :class:`ssl.SSLContext`) encrypts every connection; ``audit``
    records logins and statements. With ``analyst_exports``, analysts may call
    ``dicom_export`` into their own folder of each export root (``<root>/<user name>``).
    """

    authenticator: Authenticator = field(default_factory=NoLogin)
    shared_databases: tuple[str, ...] = ("default",)
    query_timeout: float | None = 30 * 60
    max_result_rows: int | None = None
    max_sessions_per_user: int | None = 16
    idle_timeout: float | None = 60 * 60
    tls: ssl.SSLContext | None = None
    audit: AuditLog | None = None
    throttle: Throttle = field(default_factory=Throttle)
    analyst_exports: bool = False
    _checks: threading.Semaphore = field(
        default_factory=lambda: threading.Semaphore(_CONCURRENT_CHECKS), repr=False
    )

    def __post_init__(self) -> None:
        self.shared_databases = tuple(name.lower() for name in self.shared_databases)

    @property
    def checks_passwords(self) -> bool:
        return self.authenticator.checks_passwords

    def check_host(self, host: str) -> None:
        """Refuse to serve a non-loopback ``host`` without logins and TLS."""
        if not is_loopback(host) and (not self.checks_passwords or self.tls is None):
            missing = [
                what
                for what, absent in (
                    ("--auth password (or ldap)", not self.checks_passwords),
                    ("--tls-cert and --tls-key", self.tls is None),
                )
                if absent
            ]
            raise DicomsqlError(
                f"--host {host} is reachable from other machines: serving patient data there needs "
                f"{' and '.join(missing)} (or serve on 127.0.0.1)"
            )

    def login(self, user: str, password: str, address: str) -> Account:
        """The account of a SASL PLAIN login from ``address`` (host:port), or
        :class:`AuthenticationFailed`; failures are slowed per client host and audited."""
        host = address.rsplit(":", 1)[0]
        if self.checks_passwords:
            time.sleep(self.throttle.wait_before(host))
        try:
            with self._checks:
                account = self.authenticator.authenticate(user, password)
        except AuthenticationFailed as failure:
            self.throttle.failed(host)
            if self.audit:
                self.audit.login(user[:128], address, ok=False, reason=failure.reason)
            raise
        self.throttle.succeeded(host)
        if self.audit:
            self.audit.login(account.name, address, ok=True, role=account.role)
        return account


def tls_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2 or newer) of the PEM certificate chain ``cert`` and its
    private ``key``; raises :class:`DicomsqlError` saying which file is wrong."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except FileNotFoundError as missing:
        raise DicomsqlError(f"--tls-cert/--tls-key: no such file {missing.filename}") from None
    except ssl.SSLError as exc:
        raise DicomsqlError(
            f"--tls-cert {cert} and --tls-key {key} are not a PEM certificate and its key: {exc.reason}"
        ) from None
    return context


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is reachable only from this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0"), is_loopback("localhost")
    (True, True, False, True)
    """
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        return False
    return bool(addresses) and all(
        ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses
    )

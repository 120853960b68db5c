"""Connections of the HiveServer2 endpoint: a listening socket, a thread per client, and the
two transports Hive clients speak, told apart by the first byte a client sends.

- SASL (``0x01``, the START of Thrift's SASL negotiation): what beeline, the Hive JDBC driver,
  PyHive and JayDeBeApi send by default. Mechanism PLAIN; after it, every message travels in a
  frame (4-byte length, then the bytes), which is Thrift's framed transport.
- NOSASL (``0x80``, a strict binary-protocol message): ``auth=noSasl`` / ``auth='NOSASL'``,
  a plain buffered transport; refused when the server checks passwords (it carries none).

With TLS (``Access.tls``) the connection is first a TLS server socket; a client speaking plain
TCP to it fails the TLS handshake and is closed. The login (the SASL PLAIN user and password)
is checked by :meth:`Access.login`.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from thrift.transport.TSocket import TSocket
from thrift.transport.TTransport import TBufferedTransport, TFramedTransport, TTransportException

from .access import Access
from .auth import Account, AuthenticationFailed
from .bindings import Protocol

__all__ = ["Listener", "Peer", "SaslError"]

log = logging.getLogger("dicomsql.server")

_SASL_START, _SASL_OK, _SASL_BAD, _SASL_COMPLETE = 1, 2, 3, 5
_BINARY_MESSAGE = 0x80
#: The longest SASL negotiation message accepted (a mechanism name, or user and password).
_MAX_SASL_MESSAGE = 64 * 1024
#: A client has this long to say which transport it speaks and, for SASL, to log in.
_HANDSHAKE_TIMEOUT_SECONDS = 30.0
#: Connections served at once; more are closed at once (each holds a thread).
MAX_CONNECTIONS = 256
#: The first byte of a TLS alert record (a client closing a TLS connection sends one).
_TLS_ALERT = b"\x15"


class SaslError(Exception):
    """The client's SASL negotiation failed; the message goes back to it."""


@dataclass
class Peer:
    """Who is on the other end of a connection: address, the account it logged in as (None
    for NOSASL: the session names its user) and its socket."""

    address: str
    connection: socket.socket
    account: Account | None = None

    def gone(self) -> bool:
        """Whether the client has closed the connection (checked without blocking or reading;
        over TLS, a pending alert record, e.g. close_notify, counts as closing)."""
        try:
            # the socket's own recv, below TLS: peeking needs no decryption
            waiting = socket.socket.recv(self.connection, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        return waiting == b"" or (
            isinstance(self.connection, ssl.SSLSocket) and waiting == _TLS_ALERT
        )


#: Serves one connection: (input protocol, output protocol, peer) -> returns when it ends.
Handler = Callable[[Protocol, Protocol, Peer], None]


class Listener:
    """Accepts connections on ``host:port`` and serves each in its own thread."""

    def __init__(self, host: str, port: int, serve_connection: Handler, access: Access):
        self.host, self.port = host, port
        self._serve_connection = serve_connection
        self._access = access
        self._socket = socket.create_server((host, port), family=_family(host), reuse_port=False)
        self._socket.settimeout(0.2)
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._accept_loop, name="dicomsql-listener", daemon=True
        )

    def start(self) -> Listener:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every open connection and wait for the accept thread."""
        self._stopping.set()
        self._thread.join()
        self._socket.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            _close_quietly(connection)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, address = self._socket.accept()
            except TimeoutError:
                continue
            except OSError as exc:  # e.g. out of file descriptors: keep serving the others
                if self._stopping.is_set():
                    return
                log.warning("accepting a connection failed: %s", exc.strerror)
                self._stopping.wait(0.5)
                continue
            with self._lock:
                full = len(self._connections) >= MAX_CONNECTIONS
                if not full:
                    self._connections.add(connection)
            if full:
                log.warning("%d connections open: one more refused", MAX_CONNECTIONS)
                _close_quietly(connection)
                continue
            _tune(connection)
            peer = Peer(address=f"{address[0]}:{address[1]}", connection=connection)
            threading.Thread(
                target=self._serve,
                args=(connection, peer),
                name=f"dicomsql-client-{peer.address}",
                daemon=True,
            ).start()

    def _serve(self, connection: socket.socket, peer: Peer) -> None:
        try:
            if self._access.tls is not None:
                peer.connection = _tls(self._access.tls, connection, peer)
                if peer.connection is None:
                    return
            transport = _open_transport(peer.connection, peer, self._access)
            if transport is not None:
                protocol = Protocol(transport)
                self._serve_connection(protocol, protocol, peer)
        except (TTransportException, OSError, EOFError):
            pass  # the client went away
        except Exception as exc:  # noqa: BLE001 - one client's failure must not reach the others
            log.warning("connection from %s ended: %s", peer.address, type(exc).__name__)
        finally:
            with self._lock:
                self._connections.discard(connection)
            _close_quietly(peer.connection or connection)


def _family(host: str) -> socket.AddressFamily:
    """The address family of a host to listen on."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _tune(connection: socket.socket) -> None:
    """No Nagle delay on replies; keepalive probes, so that a client that vanished without
    closing (a sleeping laptop) frees its connection, sessions and statements in minutes."""
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 6)):
        if hasattr(socket, option):
            connection.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _close_quietly(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    connection.close()


def _tls(context: ssl.SSLContext, connection: socket.socket, peer: Peer) -> ssl.SSLSocket | None:
    """The connection after the TLS handshake; None (closed) when the client does not speak TLS."""
    connection.settimeout(_HANDSHAKE_TIMEOUT_SECONDS)
    try:
        return context.wrap_socket(connection, server_side=True)
    except (ssl.SSLError, OSError) as exc:
        log.info(
            "connection from %s: no TLS handshake (%s), closed", peer.address, type(exc).__name__
        )
        _close_quietly(connection)
        return None


def _open_transport(connection: socket.socket, peer: Peer, access: Access):
    """The Thrift transport for a new connection, after the SASL negotiation and login when
    there is one; None when the client sent something else or failed to log in (it is closed)."""
    deadline = time.monotonic() + _HANDSHAKE_TIMEOUT_SECONDS
    connection.settimeout(_HANDSHAKE_TIMEOUT_SECONDS)
    first = connection.recv(1)  # not peeked: a TLS socket cannot peek
    if not first:
        return None
    connection = _Unread(connection, first)
    raw = TSocket()
    raw.setHandle(connection)
    if first[0] == _SASL_START:
        try:
            user, password = _sasl_plain(connection, deadline)
            peer.account = access.login(user, password, peer.address)
        except (SaslError, AuthenticationFailed) as exc:
            _send_sasl(connection, _SASL_BAD, str(exc).encode())
            return None
        _send_sasl(connection, _SASL_COMPLETE, b"")
        connection.settimeout(None)
        return TFramedTransport(raw)
    if first[0] == _BINARY_MESSAGE:
        if access.checks_passwords:
            log.info("connection from %s: NOSASL carries no password, closed", peer.address)
            if access.audit:
                access.audit.login(
                    "", peer.address, ok=False, reason="NOSASL connection: no password"
                )
            return None
        connection.settimeout(None)
        return TBufferedTransport(raw)
    log.info("connection from %s: neither SASL nor the binary protocol, closed", peer.address)
    return None


class _Unread:
    """A connection whose first byte, read to tell the transports apart, is read again."""

    def __init__(self, connection: socket.socket, first: bytes) -> None:
        self._connection, self._first = connection, first

    def recv(self, size: int, *flags: int) -> bytes:
        if self._first:
            first, self._first = self._first, b""
            return first
        return self._connection.recv(size, *flags)

    def __getattr__(self, name: str):
        return getattr(self._connection, name)


def _sasl_plain(connection: socket.socket, deadline: float) -> tuple[str, str]:
    """Thrift's SASL server handshake for mechanism PLAIN: START "PLAIN", then the client's
    response ``authzid NUL authcid NUL password``. Returns (user, password), to be answered
    COMPLETE once they are checked.
    The whole handshake must be over by ``deadline`` (time.monotonic())."""
    status, mechanism = _read_sasl(connection, deadline)
    if status != _SASL_START:
        raise SaslError("expected a SASL START message")
    if mechanism.upper() != b"PLAIN":
        raise SaslError(
            f"unsupported SASL mechanism {mechanism.decode(errors='replace')!r}: use PLAIN (or auth=noSasl)"
        )
    status, response = _read_sasl(connection, deadline)
    if status not in (_SASL_OK, _SASL_COMPLETE):
        raise SaslError("expected the PLAIN response")
    parts = response.split(b"\0")
    if len(parts) != 3:
        raise SaslError("malformed PLAIN response")
    _, user, password = (part.decode("utf-8", errors="replace") for part in parts)
    return user, password


def _read_exactly(connection: socket.socket, size: int, deadline: float) -> bytes:
    data = bytearray()
    while len(data) < size:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SaslError("the login took too long")
        connection.settimeout(left)
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise EOFError("the client closed the connection")
        data += chunk
    return bytes(data)


def _read_sasl(connection: socket.socket, deadline: float) -> tuple[int, bytes]:
    status, length = struct.unpack(">BI", _read_exactly(connection, 5, deadline))
    if length > _MAX_SASL_MESSAGE:
        raise SaslError("SASL message too long")
    return status, _read_exactly(connection, length, deadline)


def _send_sasl(connection: socket.socket, status: int, payload: bytes) -> None:
    try:
        connection.sendall(struct.pack(">BI", status, len(payload)) + payload)
    except OSError:
        pass

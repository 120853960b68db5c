"""``--auth ldap``: a login is a simple bind to an LDAP directory as the user's entry.

``dicomsql serve --auth ldap --ldap-url ldap[s]://host:port --ldap-user-dn
'uid={user},ou=people,dc=example,dc=org' [--ldap-admin-group DN] [--ldap-start-tls]
[--ldap-ca PEM]`` makes an :class:`LdapDirectory`. Each login opens its own connection (the
server authenticates from many threads at once), binds as the user's DN (``{user}`` filled
with the RDN-escaped user name) and closes it again:

- an empty password is refused before anything is sent: in LDAP a simple bind with a DN and
  no password is an *unauthenticated* bind, which directories answer with success;
- TLS (``ldaps://`` or StartTLS) always verifies the directory's certificate and host name,
  against ``--ldap-ca`` or the system's certificate authorities;
- connecting and every answer wait at most ``timeout`` seconds, so a dead directory does not
  hold a login thread;
- the role is ``deidentified`` when the deidentified group's entry, read while bound as the
  user, lists the user's DN in ``member`` or ``uniqueMember`` (compared by the directory,
  which knows how DNs match), else ``admin`` when the admin group's does; an admin group
  the user cannot read makes an ``analyst``, a deidentified group the user cannot read
  refuses the login (its members must not get more rights). A member of both groups is
  ``deidentified``: the lesser right wins.

Every refusal, a directory that is down or answers an error included, is
:class:`~dicomsql.server.auth.AuthenticationFailed`: the client hears "authentication
failed", the audit log its ``reason``.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import unicodedata
from pathlib import Path
from urllib.parse import urlsplit

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn

from ..errors import DicomsqlError
from .auth import Account, AuthenticationFailed

__all__ = ["LdapDirectory", "membership_filter", "user_dn_of"]

DEFAULT_PORTS = {"ldap": 389, "ldaps": 636}
PLACEHOLDER = "{user}"
#: Longer user names are refused without asking the directory.
MAX_USER_NAME = 256


class LdapDirectory:
    """``--auth ldap``: checks a login by a simple bind to the directory at ``url``
    (``ldap://host[:port]`` or ``ldaps://host[:port]``) as ``user_dn`` with ``{user}``
    replaced by the escaped user name.

    ``admin_group`` is the DN of a group (``groupOfNames`` or ``groupOfUniqueNames``) whose
    members are admins, ``deidentified_group`` one whose members see only the de-identified
    views; without them everyone is an analyst. ``start_tls`` upgrades an
    ``ldap://`` connection with StartTLS; ``ca_file`` (PEM) is the certificate authority the
    directory's certificate must chain to (default: the system's). ``timeout`` is the
    number of seconds connecting and each answer may take. Bad arguments raise
    :class:`DicomsqlError` naming the ``dicomsql serve`` option.
    """

    checks_passwords = True

    def __init__(
        self,
        url: str,
        user_dn: str,
        *,
        admin_group: str | None = None,
        deidentified_group: str | None = None,
        start_tls: bool = False,
        ca_file: str | os.PathLike[str] | None = None,
        timeout: int = 5,
    ) -> None:
        scheme, self.host, self.port = parse_url(url)
        self.url = url
        self.user_dn = check_user_dn(user_dn)
        self.admin_group = (
            None if admin_group is None else check_dn(admin_group, "--ldap-admin-group")
        )
        self.deidentified_group = (
            None
            if deidentified_group is None
            else check_dn(deidentified_group, "--ldap-deidentified-group")
        )
        self.use_ssl = scheme == "ldaps"
        if start_tls and self.use_ssl:
            raise DicomsqlError(
                "--ldap-start-tls is for ldap:// URLs: an ldaps:// --ldap-url is TLS already"
            )
        if ca_file is not None and not (start_tls or self.use_ssl):
            raise DicomsqlError(
                "--ldap-ca needs TLS: use an ldaps:// --ldap-url or --ldap-start-tls"
            )
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
            raise DicomsqlError(
                f"the LDAP timeout must be a whole number of seconds, at least 1, got {timeout!r}"
            )
        self.start_tls = start_tls
        self.timeout = timeout
        self._tls = (
            _VerifyingTls(tls_context(ca_file), self.host) if start_tls or self.use_ssl else None
        )

    def authenticate(self, user: str, password: str) -> Account:
        """The account of ``user`` if ``password`` binds as its DN, else
        :class:`AuthenticationFailed` (with the directory's answer as its reason)."""
        dn = user_dn_of(self.user_dn, user)
        if not password:
            raise AuthenticationFailed(
                f"empty password for {dn!r} refused (it would be an unauthenticated LDAP bind)"
            )
        connection = self._connection(dn, password)
        try:
            connection.open()
            if self.start_tls:
                connection.start_tls()
            if not connection.bind():
                raise AuthenticationFailed(
                    f"LDAP bind as {dn!r} refused: {describe(connection.result)}"
                )
            role = (
                "deidentified"
                if self._is_member(connection, self.deidentified_group, dn, strict=True)
                else "admin"
                if self._is_member(connection, self.admin_group, dn)
                else "analyst"
            )
        except (LDAPException, OSError) as exc:
            detail = connection.last_error or exc
            raise AuthenticationFailed(
                f"LDAP directory {self.url} failed: {type(exc).__name__}: {detail}"
            ) from exc
        finally:
            with contextlib.suppress(LDAPException, OSError):
                connection.unbind()
        # uid matches case-insensitively: one account (and database) whatever the case typed
        return Account(user.lower(), role)

    def _connection(self, dn: str, password: str) -> ldap3.Connection:
        """An unopened connection that will bind as ``dn`` (its own server object: ldap3's
        keeps per-connection state, and logins run in parallel)."""
        server = ldap3.Server(
            self.host,
            port=self.port,
            use_ssl=self.use_ssl,
            tls=self._tls,
            get_info=ldap3.NONE,
            connect_timeout=self.timeout,
        )
        return ldap3.Connection(
            server,
            user=dn,
            password=password,
            authentication=ldap3.SIMPLE,
            receive_timeout=self.timeout,
            auto_bind=ldap3.AUTO_BIND_NONE,
            auto_referrals=False,
            auto_escape=False,
            read_only=True,
            raise_exceptions=False,
        )

    def _is_member(
        self, connection: ldap3.Connection, group: str | None, dn: str, strict: bool = False
    ) -> bool:
        """Whether ``group``, read as the bound user, has ``dn`` as a member. A group that
        cannot be read is no membership, unless ``strict`` (the deidentified group: its
        members would get more rights): then the login is refused."""
        if group is None:
            return False
        found = connection.search(
            group,
            membership_filter(dn),
            search_scope=ldap3.BASE,
            attributes=[ldap3.NO_ATTRIBUTES],
            size_limit=1,
            time_limit=self.timeout,
        )
        if not found and strict and (connection.result or {}).get("result") != 0:
            raise AuthenticationFailed(
                f"--ldap-deidentified-group {group!r} cannot be read as {dn!r}: "
                f"{describe(connection.result)}"
            )
        return bool(found)


class _VerifyingTls(ldap3.Tls):
    """ldap3's TLS settings, but the handshake is the standard library's own, checking the
    chain and the host name or IP address (ldap3 turns ``check_hostname`` off and does its
    own matching, which cannot match IP addresses on Python 3.12 and later)."""

    def __init__(self, context: ssl.SSLContext, host: str) -> None:
        super().__init__(validate=ssl.CERT_REQUIRED)
        self.context, self.host = context, host

    def wrap_socket(self, connection: ldap3.Connection, do_handshake: bool = False) -> None:
        """Wrap ``connection``'s socket in TLS for the directory's host (ldap3's hook, used
        for ``ldaps://`` and StartTLS alike)."""
        connection.socket = self.context.wrap_socket(
            connection.socket,
            server_side=False,
            server_hostname=self.host,
            do_handshake_on_connect=do_handshake,
        )


def tls_context(ca_file: str | os.PathLike[str] | None) -> ssl.SSLContext:
    """A client context that requires a certificate chaining to ``ca_file`` (PEM; the
    system's authorities when None) and naming the host."""
    if ca_file is not None and not Path(ca_file).is_file():
        raise DicomsqlError(f"--ldap-ca {ca_file}: no such file")
    try:
        return ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=None if ca_file is None else os.fspath(ca_file)
        )
    except ssl.SSLError as exc:
        raise DicomsqlError(
            f"--ldap-ca {ca_file} is not a PEM file of CA certificates: {exc}"
        ) from exc


def parse_url(url: str) -> tuple[str, str, int]:
    """The scheme, host and port of an ``ldap://`` or ``ldaps://`` URL.

    >>> parse_url("ldaps://directory.example.org")
    ('ldaps', 'directory.example.org', 636)
    >>> parse_url("ldap://[::1]:3890/")
    ('ldap', '::1', 3890)
    >>> parse_url("http://directory")
    Traceback (most recent call last):
    ...
    dicomsql.errors.DicomsqlError: --ldap-url must be ldap://host[:port] or ldaps://host[:port], got 'http://directory'
    """
    error = DicomsqlError(
        f"--ldap-url must be ldap://host[:port] or ldaps://host[:port], got {url!r}"
    )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise error from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        raise error
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise error
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def check_dn(dn: str, option: str) -> str:
    """``dn`` if it is a distinguished name, else :class:`DicomsqlError` naming ``option``.

    >>> check_dn("cn=admins,ou=groups,dc=example,dc=org", "--ldap-admin-group")
    'cn=admins,ou=groups,dc=example,dc=org'
    >>> check_dn("admins", "--ldap-admin-group")
    Traceback (most recent call last):
    ...
    dicomsql.errors.DicomsqlError: --ldap-admin-group must be a DN such as cn=dicomsql-admins,ou=groups,dc=example,dc=org, got 'admins'
    """
    try:
        parse_dn(dn)
    except (LDAPException, ValueError, IndexError):
        raise DicomsqlError(
            f"{option} must be a DN such as cn=dicomsql-admins,ou=groups,dc=example,dc=org, got {dn!r}"
        ) from None
    return dn


def check_user_dn(template: str) -> str:
    """``template`` if it is a DN with one ``{user}`` placeholder as an attribute value.

    >>> check_user_dn("uid={user},ou=people,dc=example,dc=org")
    'uid={user},ou=people,dc=example,dc=org'
    >>> check_user_dn("ou=people,dc=example,dc=org")
    Traceback (most recent call last):
    ...
    dicomsql.errors.DicomsqlError: --ldap-user-dn must contain {user} once, as in uid={user},ou=people,dc=example,dc=org; got 'ou=people,dc=example,dc=org'
    """
    if template.count(PLACEHOLDER) != 1:
        raise DicomsqlError(
            f"--ldap-user-dn must contain {PLACEHOLDER} once, as in uid={PLACEHOLDER},ou=people,dc=example,dc=org; got {template!r}"
        )
    check_dn(template.replace(PLACEHOLDER, "x"), "--ldap-user-dn")
    return template


def user_dn_of(template: str, user: str) -> str:
    """The DN of ``user``: ``template`` with ``{user}`` replaced by the RDN-escaped name
    (RFC 4514), so that no name reaches another entry. Empty names, names with control or
    format characters (NUL included), with spaces around them or longer than 256
    characters are :class:`AuthenticationFailed`.

    >>> user_dn_of("uid={user},ou=people,dc=example,dc=org", "alice")
    'uid=alice,ou=people,dc=example,dc=org'
    >>> print(user_dn_of("uid={user},ou=people,dc=example,dc=org", "bob,ou=people"))
    uid=bob\\,ou\\=people,ou=people,dc=example,dc=org
    >>> user_dn_of("uid={user},ou=people,dc=example,dc=org", "bob\\x00")
    Traceback (most recent call last):
    ...
    dicomsql.server.auth.AuthenticationFailed: authentication failed
    """
    if not user:
        raise AuthenticationFailed("empty user name")
    if len(user) > MAX_USER_NAME:
        raise AuthenticationFailed(f"user name longer than {MAX_USER_NAME} characters")
    if any(unicodedata.category(char).startswith("C") for char in user):
        raise AuthenticationFailed(f"user name {user!r} has control or format characters")
    if user != user.strip():
        raise AuthenticationFailed(f"user name {user!r} has spaces around it")
    return template.replace(PLACEHOLDER, escape_rdn(user))


def membership_filter(dn: str) -> str:
    """A search filter matching a group entry that has ``dn`` as ``member`` or
    ``uniqueMember`` (RFC 4515 escaping).

    >>> print(membership_filter("uid=bob\\\\,ou\\\\=people,dc=example,dc=org"))
    (|(member=uid=bob\\5c,ou\\5c=people,dc=example,dc=org)(uniqueMember=uid=bob\\5c,ou\\5c=people,dc=example,dc=org))
    """
    value = escape_filter_chars(dn)
    return f"(|(member={value})(uniqueMember={value}))"


def describe(result: dict | None) -> str:
    """An LDAP result as ``description (code): message``, for the audit log.

    >>> describe({"result": 49, "description": "invalidCredentials", "message": ""})
    'invalidCredentials (49)'
    """
    if not result:
        return "no answer"
    text = f"{result.get('description')} ({result.get('result')})"
    return f"{text}: {result['message']}" if result.get("message") else text

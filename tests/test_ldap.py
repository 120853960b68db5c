"""``--auth ldap`` (:class:`dicomsql.server.ldap.LdapDirectory`) against a real OpenLDAP
``slapd`` on loopback ports: plain, StartTLS and ldaps, users and groups loaded with
``ldapadd``. Pure Python, no Spark."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from dicomsql.errors import DicomsqlError
from dicomsql.server import free_port
from dicomsql.server.auth import AuthenticationFailed
from dicomsql.server.ldap import LdapDirectory

from .conftest import (
    HIDDEN_ADMIN_GROUP,
    SUFFIX,
    UNIQUE_ADMIN_GROUP,
    USER_DN,
    USERS,
    Directory,
    require_command,
    run,
)


def connect(directory: Directory, tls: str, **options) -> LdapDirectory:
    """An LdapDirectory for ``directory`` over ``tls``: "none", "starttls" or "ldaps"."""
    if tls == "ldaps":
        return LdapDirectory(
            directory.ldaps_url, directory.user_dn, ca_file=directory.ca, **options
        )
    if tls == "starttls":
        return LdapDirectory(
            directory.url, directory.user_dn, start_tls=True, ca_file=directory.ca, **options
        )
    return LdapDirectory(directory.url, directory.user_dn, **options)


def refused(authenticator: LdapDirectory, user: str, password: str) -> AuthenticationFailed:
    """The refusal of a login (which must be one), after checking the client's message."""
    with pytest.raises(AuthenticationFailed) as info:
        authenticator.authenticate(user, password)
    assert str(info.value) == "authentication failed"
    assert info.value.reason
    return info.value


@pytest.mark.parametrize("tls", ["none", "starttls", "ldaps"])
@pytest.mark.parametrize("user", sorted(USERS))
def test_users_log_in_with_their_role(ldap_directory, tls, user):
    authenticator = connect(ldap_directory, tls, admin_group=ldap_directory.admin_group)
    account = authenticator.authenticate(user, ldap_directory.passwords[user])
    assert (account.name, account.role) == (user, ldap_directory.roles[user])
    assert authenticator.checks_passwords


@pytest.mark.parametrize(
    "user, password",
    [
        ("alice", "wrong"),
        ("alice", USERS["bob"][0]),  # another user's password
        ("nobody", "whatever"),
        ("*)(uid=*", "whatever"),
        ("*", USERS["alice"][0]),
        ("bob,ou=people", USERS["bob"][0]),
        ("bob)(|(uid=*", USERS["bob"][0]),
        ("bob\x00", USERS["bob"][0]),
        ("bob\n", USERS["bob"][0]),
        (" bob", USERS["bob"][0]),
        ("", USERS["bob"][0]),
        ("b" * 300, "whatever"),
    ],
)
def test_wrong_logins_are_refused(ldap_directory, user, password):
    refused(connect(ldap_directory, "none", admin_group=ldap_directory.admin_group), user, password)


def test_empty_password_is_refused_although_the_directory_would_accept_it(ldap_directory):
    whoami = run(
        require_command("ldapwhoami", "ldap-utils"),
        "-x",
        "-H",
        ldap_directory.url,
        "-D",
        f"uid=bob,ou=people,{SUFFIX}",
        "-w",
        "",
    )
    assert whoami.strip() == "anonymous", (
        "the directory takes a DN without a password as an unauthenticated bind"
    )
    failure = refused(
        connect(ldap_directory, "none", admin_group=ldap_directory.admin_group), "bob", ""
    )
    assert "empty password" in failure.reason


@pytest.mark.parametrize(
    "group, role",
    [
        (UNIQUE_ADMIN_GROUP, "admin"),  # uniqueMember
        (HIDDEN_ADMIN_GROUP, "analyst"),  # bob may not read it
        (f"cn=no-such-group,ou=groups,{SUFFIX}", "analyst"),
        (None, "analyst"),
    ],
)
def test_admin_group_membership(ldap_directory, group, role):
    authenticator = connect(ldap_directory, "none", admin_group=group)
    assert authenticator.authenticate("bob", ldap_directory.passwords["bob"]).role == role
    assert authenticator.authenticate("alice", ldap_directory.passwords["alice"]).role == "analyst"


def test_deidentified_group_membership_is_the_lesser_right(ldap_directory):
    both = connect(
        ldap_directory,
        "none",
        admin_group=ldap_directory.admin_group,
        deidentified_group=UNIQUE_ADMIN_GROUP,
    )
    assert both.authenticate("bob", ldap_directory.passwords["bob"]).role == "deidentified"
    assert both.authenticate("alice", ldap_directory.passwords["alice"]).role == "analyst"
    # a group bob may not read (or that is missing) refuses him: never more rights by mistake
    for group in (HIDDEN_ADMIN_GROUP, f"cn=no-such-group,ou=groups,{SUFFIX}"):
        unreadable = connect(ldap_directory, "none", deidentified_group=group)
        failure = refused(unreadable, "bob", ldap_directory.passwords["bob"])
        assert "--ldap-deidentified-group" in failure.reason


@pytest.mark.parametrize("tls", ["starttls", "ldaps"])
def test_a_certificate_from_another_ca_is_refused(ldap_directory, stranger_ca, tls):
    url = ldap_directory.ldaps_url if tls == "ldaps" else ldap_directory.url
    authenticator = LdapDirectory(
        url, ldap_directory.user_dn, start_tls=tls == "starttls", ca_file=stranger_ca
    )
    started = time.monotonic()
    failure = refused(authenticator, "alice", ldap_directory.passwords["alice"])
    assert time.monotonic() - started < 3
    assert "certificate" in failure.reason.lower()


def test_the_system_cas_do_not_trust_the_test_ca(ldap_directory):
    refused(
        LdapDirectory(ldap_directory.ldaps_url, ldap_directory.user_dn),
        "alice",
        ldap_directory.passwords["alice"],
    )


def test_the_certificate_must_name_the_host(ldap_directory):
    authenticator = LdapDirectory(
        ldap_directory.ldaps_other_url, ldap_directory.user_dn, ca_file=ldap_directory.ca
    )
    failure = refused(authenticator, "alice", ldap_directory.passwords["alice"])
    assert "127.0.0.2" in failure.reason


def test_a_directory_that_is_not_listening_fails_fast():
    url = f"ldap://127.0.0.1:{free_port()}"
    started = time.monotonic()
    failure = refused(LdapDirectory(url, USER_DN), "alice", "a password")
    assert time.monotonic() - started < 2
    assert url in failure.reason


@pytest.fixture
def mute_directory():
    """A port that accepts connections but never answers (its listen backlog)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


@pytest.fixture
def hanging_up_directory():
    """A port whose every connection is closed at once."""
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def hang_up() -> None:
            connection, _ = listener.accept()
            connection.close()

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        yield listener.getsockname()[1]
        thread.join(timeout=5)


@pytest.mark.parametrize("scheme", ["ldap", "ldaps"])
def test_a_directory_that_does_not_answer_times_out(mute_directory, scheme, certificates):
    options = {"ca_file": certificates.ca} if scheme == "ldaps" else {}
    authenticator = LdapDirectory(
        f"{scheme}://127.0.0.1:{mute_directory}", USER_DN, timeout=1, **options
    )
    started = time.monotonic()
    refused(authenticator, "alice", "a password")
    assert time.monotonic() - started < 3


def test_a_directory_that_hangs_up_is_a_refusal(hanging_up_directory):
    refused(
        LdapDirectory(f"ldap://127.0.0.1:{hanging_up_directory}", USER_DN, timeout=2),
        "alice",
        "a password",
    )


def test_concurrent_logins(ldap_directory):
    authenticator = connect(ldap_directory, "starttls", admin_group=ldap_directory.admin_group)
    logins = [
        ("alice", ldap_directory.passwords["alice"]),
        ("bob", ldap_directory.passwords["bob"]),
        ("bob", "wrong"),
    ] * 8

    def role(login: tuple[str, str]) -> str:
        try:
            return authenticator.authenticate(*login).role
        except AuthenticationFailed:
            return "refused"

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(role, logins)) == ["analyst", "admin", "refused"] * 8


@pytest.mark.parametrize(
    "arguments, option",
    [
        (("http://127.0.0.1:389", USER_DN), "--ldap-url"),
        (("ldap://", USER_DN), "--ldap-url"),
        (("ldap://127.0.0.1:99999", USER_DN), "--ldap-url"),
        (("ldap://127.0.0.1/ou=people?uid", USER_DN), "--ldap-url"),
        (("ldap://127.0.0.1", f"ou=people,{SUFFIX}"), "--ldap-user-dn"),
        (("ldap://127.0.0.1", "uid={user},{user}"), "--ldap-user-dn"),
        (("ldap://127.0.0.1", "{user}"), "--ldap-user-dn"),
        (("ldap://127.0.0.1", USER_DN, {"admin_group": "dicomsql-admins"}), "--ldap-admin-group"),
        (
            ("ldap://127.0.0.1", USER_DN, {"deidentified_group": "readers"}),
            "--ldap-deidentified-group",
        ),
        (("ldaps://127.0.0.1", USER_DN, {"start_tls": True}), "--ldap-start-tls"),
        (("ldap://127.0.0.1", USER_DN, {"ca_file": "ca.pem"}), "--ldap-ca"),
        (("ldaps://127.0.0.1", USER_DN, {"ca_file": "/no/such/ca.pem"}), "--ldap-ca"),
        (("ldaps://127.0.0.1", USER_DN, {"ca_file": __file__}), "--ldap-ca"),
        (("ldap://127.0.0.1", USER_DN, {"timeout": 0}), "timeout"),
        (("ldap://127.0.0.1", USER_DN, {"timeout": 2.5}), "timeout"),
    ],
)
def test_bad_arguments_name_the_option(arguments, option):
    url, user_dn, *options = arguments
    with pytest.raises(DicomsqlError, match=option):
        LdapDirectory(url, user_dn, **(options[0] if options else {}))

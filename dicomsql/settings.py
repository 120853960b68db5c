"""Settings shared by the CLI, :func:`dicomsql.session` and :func:`dicomsql.serve`, defined
once as ``(name, default, help)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .storage import DEFAULT_MAX_FILE_SIZE

__all__ = ["Setting", "SETTINGS", "DEFAULTS"]


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("master", "local[*]", "Spark master URL: local[*] (embedded) or e.g. spark://host:7077."),
    Setting(
        "home",
        None,
        "State directory (metastore, warehouse, demo data). Default: $DICOMSQL_HOME or ~/.dicomsql.",
    ),
    Setting("host", "127.0.0.1", "Address the HiveServer2 (JDBC) endpoint binds to."),
    Setting("port", 10000, "Port of the HiveServer2 (JDBC) endpoint."),
    Setting(
        "max_concurrent_queries",
        None,
        "Statements run at once (default: twice the driver's cores); more wait in a queue (PENDING).",
    ),
    Setting("demo_patients", 100, "Patients in the demo cohort written when no data is given."),
    # security (dicomsql.server.access)
    Setting("auth", "none", "Logins: none (loopback only; every client is --anonymous-role), password (<home>/users, see dicomsql user) or ldap."),
    Setting("anonymous_role", "analyst", "With --auth none: the role of every client (analyst: the statement policy; admin: everything)."),
    Setting("tls_cert", None, "PEM certificate (chain) of the endpoint: with --tls-key, every connection is TLS."),
    Setting("tls_key", None, "PEM private key of --tls-cert."),
    Setting("ldap_url", None, "With --auth ldap: ldap://host:port or ldaps://host:port."),
    Setting("ldap_user_dn", None, "With --auth ldap: the DN to bind as, {user} standing for the login, e.g. uid={user},ou=people,dc=example,dc=org."),
    Setting("ldap_admin_group", None, "With --auth ldap: DN of the group whose members are admins (everyone else is an analyst)."),
    Setting("ldap_start_tls", False, "With --auth ldap on ldap://: upgrade the connection with StartTLS."),
    Setting("ldap_ca", None, "With --auth ldap: PEM file of the CA that signed the directory's certificate (default: the system's)."),
    Setting("shared_db", (), "A database every analyst may read, admins write (repeatable; default: default)."),
    Setting("query_timeout", 1800, "Seconds an analyst's statement may run before it is cancelled (0: no limit)."),
    Setting("max_result_rows", None, "The most rows an analyst's statement returns; the rest is cut (default: no limit)."),
    Setting("max_sessions_per_user", 16, "Sessions an analyst may hold open at once."),
    Setting("idle_timeout", 3600, "Seconds after which an analyst's session without requests is closed (0: never)."),
    Setting("max_file_size", DEFAULT_MAX_FILE_SIZE, "Files larger than this are a row error for the pixel functions and pixels 'bytes' (not read); e.g. 512MiB, 4GiB."),
    Setting("audit_statements", "text", "How <home>/audit.log records statements: text, or hash (only their SHA-256)."),
)

DEFAULTS: dict[str, Any] = {setting.name: setting.default for setting in SETTINGS}

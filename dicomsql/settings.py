"""Settings shared by the CLI, :func:`dicomsql.session` and :func:`dicomsql.serve`, defined
once as :class:`~dicomsql.options.Option` rows ``(name, default, help, parse)``: the CLI's
flags (``--max-file-size`` for ``max_file_size``) take their default and ``--help`` from here,
and the README's table of them is generated from it (:mod:`dicomsql.docs`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .options import Option, boolean, choice, integer
from .storage import DEFAULT_MAX_FILE_SIZE, max_file_size_value

__all__ = ["SETTINGS", "DEFAULTS", "AUTH_MODES", "ROLES", "STATEMENT_MODES", "size"]

AUTH_MODES = ("none", "password", "ldap")
#: The roles of :mod:`dicomsql.server.auth`: admin may do everything Spark allows, analyst
#: what the statement policy (:mod:`dicomsql.server.policy`) admits, deidentified the same
#: over the de-identified views only (:mod:`dicomsql.deidentified`). Declared here (the server
#: imports this module, not the other way round) so that the settings below can offer them.
ROLES = ("analyst", "admin", "deidentified")
#: How :mod:`dicomsql.server.audit` records statements: their text, or only its SHA-256.
STATEMENT_MODES = ("text", "hash")


def size(text: str) -> int:
    """A size in bytes: ``1048576``, ``512MiB``, ``4g``...

    >>> size("512MiB")
    536870912
    """
    try:
        return int(max_file_size_value(text))
    except ValueError:
        raise ValueError(
            "a positive number of bytes, optionally with a unit (512MiB, 2g)"
        ) from None


SETTINGS: tuple[Option, ...] = (
    Option(
        "master", "local[*]", "Spark master URL: local[*] (embedded) or e.g. spark://host:7077."
    ),
    Option(
        "home",
        None,
        "State directory (metastore, warehouse, demo data). Default: $DICOMSQL_HOME or ~/.dicomsql.",
    ),
    Option("host", "127.0.0.1", "Address the HiveServer2 (JDBC) endpoint binds to."),
    Option("port", 10000, "Port of the HiveServer2 (JDBC) endpoint.", parse=integer(1, 65535)),
    Option(
        "max_concurrent_queries",
        None,
        "Statements run at once (default: twice the driver's cores); more wait in a queue (PENDING).",
        parse=integer(1),
    ),
    Option(
        "live",
        False,
        "Serve the --table folders as live views (every query lists and reads the files) instead of catalogs.",
        parse=boolean,
    ),
    Option(
        "refresh_interval",
        0,
        "Seconds between refreshes of the served catalogs from their folders (0: only at start and on REFRESH DICOM TABLE).",
        parse=integer(0),
    ),
    Option(
        "demo_patients",
        100,
        "Patients in the demo cohort written when no data is given.",
        parse=integer(1),
    ),
    # security (dicomsql.server.access)
    Option(
        "auth",
        "none",
        "Logins: none (loopback only; every client is --anonymous-role), password (<home>/users, see dicomsql user) or ldap.",
        parse=choice(*AUTH_MODES),
    ),
    Option(
        "anonymous_role",
        "analyst",
        "With --auth none: the role of every client (analyst: the statement policy; admin: everything).",
        parse=choice(*ROLES),
    ),
    Option(
        "tls_cert",
        None,
        "PEM certificate (chain) of the endpoint: with --tls-key, every connection is TLS.",
        parse=Path,
    ),
    Option("tls_key", None, "PEM private key of --tls-cert.", parse=Path),
    Option("ldap_url", None, "With --auth ldap: ldap://host:port or ldaps://host:port."),
    Option(
        "ldap_user_dn",
        None,
        "With --auth ldap: the DN to bind as, {user} standing for the login, e.g. uid={user},ou=people,dc=example,dc=org.",
    ),
    Option(
        "ldap_admin_group",
        None,
        "With --auth ldap: DN of the group whose members are admins (everyone else is an analyst).",
    ),
    Option(
        "ldap_deidentified_group",
        None,
        "With --auth ldap: DN of the group whose members have the deidentified role (before the admin group: the lesser right wins).",
    ),
    Option(
        "ldap_start_tls",
        False,
        "With --auth ldap on ldap://: upgrade the connection with StartTLS.",
        parse=boolean,
    ),
    Option(
        "ldap_ca",
        None,
        "With --auth ldap: PEM file of the CA that signed the directory's certificate (default: the system's).",
        parse=Path,
    ),
    Option(
        "deidentified_views",
        False,
        "Serve the deidentified role: every served view de-identified (headers by PS3.15, paths as ids, identifying columns as pseudonyms).",
        parse=boolean,
    ),
    Option(
        "deidentify_option",
        (),
        "With --deidentified-views: an option of dicom_deidentify for the views, NAME=VALUE (repeatable; e.g. date_shift=true).",
    ),
    Option(
        "identifying_column",
        (),
        "With --deidentified-views: TABLE.COLUMN shown as a keyed pseudonym (repeatable; PatientID and UID columns always are).",
    ),
    Option(
        "analyst_exports",
        False,
        "Analysts may call dicom_export, writing only under <export root>/<their user name>/ (default: admins only).",
        parse=boolean,
    ),
    Option(
        "shared_db",
        (),
        "A database every analyst may read, admins write (repeatable; default: default).",
    ),
    Option(
        "query_timeout",
        1800,
        "Seconds an analyst's statement may run before it is cancelled (0: no limit).",
        parse=integer(0),
    ),
    Option(
        "max_result_rows",
        None,
        "The most rows an analyst's statement returns; the rest is cut (default: no limit).",
        parse=integer(1),
    ),
    Option(
        "max_sessions_per_user", 16, "Sessions an analyst may hold open at once.", parse=integer(1)
    ),
    Option(
        "idle_timeout",
        3600,
        "Seconds after which an analyst's session without requests is closed (0: never).",
        parse=integer(0),
    ),
    Option(
        "max_file_size",
        DEFAULT_MAX_FILE_SIZE,
        "Files larger than this are a row error for the pixel functions and pixels 'bytes' (not read); e.g. 512MiB, 4GiB.",
        parse=size,
    ),
    Option(
        "deid_key_file",
        None,
        "File holding the key of dicom_deidentify's pseudonyms, UIDs and date shifts, readable by its owner only (default: <home>/deid.key, made on first start).",
    ),
    Option(
        "audit_statements",
        "text",
        "How <home>/audit.log records statements: text, or hash (only their SHA-256).",
        parse=choice(*STATEMENT_MODES),
    ),
)

DEFAULTS: dict[str, Any] = {setting.name: setting.default for setting in SETTINGS}

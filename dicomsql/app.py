"""The composition root: one :class:`App` holds what a dicomsql process serves and builds it.

An App owns the home (:mod:`dicomsql.home`), the served tables (``--table NAME=PATH``), the
data roots, the bootstrap script and its variables, and the demo policy, all from the
settings table (:mod:`dicomsql.settings`); it builds the SparkSession
(:mod:`dicomsql.session`) and the server (:func:`dicomsql.server.serve`). ``dicomsql serve``,
the embedded ``dicomsql sql``/``shell``/``ingest``, :func:`dicomsql.session` and the test
fixtures all build one; ``dicomsql.cli`` only parses arguments and prints.

>>> app = App({"master": "local[2]", "home": "/data/dicomsql"}, tables={"ct": "s3://bucket/ct"})
>>> app.tables, app.variables["images"], app.read_roots()
([('ct', 's3://bucket/ct')], 'ct', None)
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DicomsqlError, QueryError
from .home import Home, HomeOwner
from .session import active_home, in_process, spark_session, wait_for_idle
from .settings import DEFAULTS
from .storage import absolute_path, data_root_for, is_uri

if TYPE_CHECKING:
    import pyspark

    from .client import EmbeddedClient, JdbcClient
    from .ingest import Catalog, Execute
    from .server import Access, Server

__all__ = ["App", "CATALOG_DATABASE", "DEMO_POLICIES", "checked_tables", "read_script", "session"]

#: The database of the served tables' catalogs (``--table NAME=PATH`` -> ``dicomsql_catalog.NAME``).
CATALOG_DATABASE = "dicomsql_catalog"

#: What an App does with the home's demo cohort when no table is given.
DEMO_POLICIES = {
    "write": "serve the demo cohort of the home, writing it first when there is none (dicomsql serve)",
    "existing": "serve the demo cohort of the home when it has one (the embedded dicomsql sql and shell)",
    "off": "never serve the demo (the Python API)",
}

#: Tables to serve: name -> path (a folder, file or glob of DICOM files, or a URI), or pairs.
Tables = Mapping[str, "str | os.PathLike[str]"] | Iterable[tuple[str, "str | os.PathLike[str]"]]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def checked_tables(tables: Tables) -> list[tuple[str, str]]:
    """``(name, path)`` pairs with absolute local paths (URIs as given); an error for a local
    path or glob that names nothing.

    >>> checked_tables({"t": "memory://x"})
    [('t', 'memory://x')]
    >>> checked_tables([("t", "/no/such/folder")])
    Traceback (most recent call last):
    dicomsql.errors.DicomsqlError: --table t=/no/such/folder: /no/such/folder does not exist
    """
    checked = []
    for name, given in tables.items() if isinstance(tables, Mapping) else tables:
        path = os.fspath(given)
        if is_uri(path):
            checked.append((name, path))
            continue
        absolute = absolute_path(path)
        if not os.path.exists(absolute) and not glob.glob(absolute):
            raise DicomsqlError(f"--table {name}={path}: {absolute} does not exist")
        checked.append((name, absolute))
    return checked


def read_script(path: Path) -> str:
    """The text of the SQL script at ``path``; an error saying why it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DicomsqlError(f"cannot read {path}: {exc.strerror}") from None


class App:
    """What one dicomsql process serves, and how it builds it.

    ``settings`` are values of :data:`dicomsql.settings.SETTINGS` by name (the others keep
    their defaults). ``tables`` (name -> path, or pairs) become DICOM views; when there are
    none, ``demo`` (one of :data:`DEMO_POLICIES`) says whether the home's demo cohort stands
    in. ``data_roots`` confine what the ``dicom`` source and the pixel functions read to those
    folders plus the tables' (or the demo's); None reads anywhere. ``export_roots`` confine
    what ``dicom_export`` writes to those folders (none: nowhere); None writes anywhere. ``conf`` adds Spark
    settings. ``bootstrap`` is a SQL script run once the views exist, with ``variables``
    bound in it. ``say`` hears progress lines (the demo being written); default stderr.
    """

    def __init__(
        self,
        settings: Mapping[str, Any] | None = None,
        *,
        tables: Tables = (),
        demo: str = "off",
        data_roots: Iterable[str] | None = None,
        export_roots: Iterable[str] | None = None,
        conf: Mapping[str, str] | None = None,
        bootstrap: str | os.PathLike[str] | None = None,
        variables: Mapping[str, str] | None = None,
        say: Callable[[str], None] = _stderr,
    ) -> None:
        given = dict(settings or {})
        unknown = sorted(set(given) - set(DEFAULTS))
        if unknown:
            raise TypeError(
                f"unknown dicomsql settings: {', '.join(unknown)} (see dicomsql.settings.SETTINGS)"
            )
        if demo not in DEMO_POLICIES:
            raise ValueError(f"demo must be one of {', '.join(DEMO_POLICIES)}, got {demo!r}")
        self._given = given
        self.settings: dict[str, Any] = {**DEFAULTS, **given}
        self.home = Home(self.settings["home"])
        self.tables = checked_tables(tables)
        self.demo = demo
        self.data_roots = None if data_roots is None else list(data_roots)
        self.export_roots = None if export_roots is None else list(export_roots)
        self.conf = dict(conf or {})
        self.bootstrap = Path(bootstrap) if bootstrap is not None else None
        self._variables = dict(variables or {})
        self.say = say
        #: The tables' catalogs, by lower-case name, once :meth:`prepare` refreshed them.
        self.catalogs: dict[str, Catalog] = {}

    @property
    def serves_demo(self) -> bool:
        """Whether the demo's views stand in for tables (none given and the policy not off)."""
        return not self.tables and self.demo != "off"

    @property
    def variables(self) -> dict[str, str]:
        """The bootstrap script's variables: ``images`` is the first table (or ``demo_images``)
        unless given."""
        return {"images": self.tables[0][0] if self.tables else "demo_images", **self._variables}

    def read_roots(self) -> list[str] | None:
        """Where the ``dicom`` source and the pixel functions may read: anywhere (None) unless
        data roots were given; then under those, the tables' folders and the demo's."""
        if self.data_roots is None:
            return None
        roots = [*self.data_roots, *(data_root_for(path) for _, path in self.tables)]
        if self.serves_demo:
            roots.append(str(self.home.demo))
        return roots

    # --- the Spark session --------------------------------------------------------------

    def spark_conf(self) -> dict[str, str]:
        """The Spark settings added to dicomsql's defaults: ``conf``, and on a local[N] master
        with logins ``spark.authenticate`` (Spark's RPC authenticates too, with a secret Spark
        makes for this process, never on a command line; any other master, local-cluster
        included, needs a secret of its own: ``spark.authenticate.secret``)."""
        conf = dict(self.conf)
        if self.access.checks_passwords and in_process(self.settings["master"]):
            conf.setdefault("spark.authenticate", "true")
        return conf

    def start_session(self) -> pyspark.sql.SparkSession:
        """This process's SparkSession on the home, everything registered, no views yet; from
        now on :attr:`home` is the one this process holds (see :func:`dicomsql.session.spark_session`)."""
        spark = spark_session(
            master=self.settings["master"],
            home=self.home.path,
            conf=self.spark_conf(),
            data_roots=self.read_roots(),
            max_file_size=self._given.get("max_file_size"),
            deid_key_file=self._given.get("deid_key_file"),
            export_roots=self.export_roots,
        )
        self.home = active_home()
        return spark

    def prepare(self, spark: pyspark.sql.SparkSession) -> list[str]:
        """Refresh the tables' catalogs (unless ``live``), create the views in ``spark`` and
        run the bootstrap script there; returns a line per view (and one for the script), for
        the banner. The catalogs are refreshed in a session of their own (a clone of
        ``spark``), so that a refresh's own temporary views never meet the served ones."""
        from .client import EmbeddedClient
        from .session import cloned

        refresh_with = None if self.settings["live"] else EmbeddedClient(cloned(spark)).execute
        lines = self.create_views(spark.sql, refresh_with)
        if self.bootstrap is not None:
            lines.append(self.run_bootstrap(spark))
        return lines

    def session(self) -> pyspark.sql.SparkSession:
        """:meth:`start_session`, then :meth:`prepare`: the session with the views."""
        spark = self.start_session()
        self.prepare(spark)
        return spark

    def create_views(
        self, execute: Callable[[str], object], refresh_with: Execute | None = None
    ) -> list[str]:
        """Create the DICOM views of the tables, or else (as the demo policy says) the demo's,
        with ``execute`` (``spark.sql`` or a JDBC client's). Returns a line per view.

        With ``refresh_with`` (an ``execute`` returning rows), each table ``NAME`` is a view of
        its catalog ``dicomsql_catalog.NAME``, refreshed now (progress to :attr:`say`) and kept
        in :attr:`catalogs`; the live view over the files stays as ``NAME__files``. Without,
        ``NAME`` is the live view."""
        from .demo import demo_is_complete
        from .ingest import Catalog
        from .views import DEMO_VIEWS, catalog_view_sql, demo_views_sql, dicom_view_sql

        if self.tables:
            if refresh_with is not None:
                refresh_with(
                    f"CREATE DATABASE IF NOT EXISTS {CATALOG_DATABASE} "
                    "COMMENT 'dicomsql: the catalogs of the served DICOM tables'"
                )
            lines = []
            for name, path in self.tables:
                files_view, live_view = dicom_view_sql(name, path)
                execute(files_view)
                if refresh_with is None:
                    execute(live_view)
                    lines.append(f"{name:<14} DICOM files under {path} (live)")
                    continue
                catalog = Catalog(refresh_with, f"{CATALOG_DATABASE}.{name}", [path])
                summary = catalog.refresh(progress=self.say)
                execute(catalog_view_sql(name, catalog.name))
                self.catalogs[name.lower()] = catalog
                lines.append(
                    f"{name:<14} catalog of the {summary.rows:,} DICOM files under {path} "
                    f"({summary.read:,} read now, {summary.removed:,} removed; live: {name}__files)"
                )
            return lines
        if self.demo == "write":
            self.ensure_demo()
        elif self.demo == "off" or not demo_is_complete(self.home.demo):
            return []
        for statement in demo_views_sql(self.home.demo):
            execute(statement)
        return [f"{name:<14} {text}" for name, text in DEMO_VIEWS.items()]

    def ensure_demo(self) -> Path:
        """The home's demo cohort (``demo_patients`` patients), written first when there is
        none or rewritten when an older dicomsql wrote it; an error when the folder holds
        something else."""
        from .demo import demo_is_complete, demo_version, write_demo

        demo = self.home.demo
        if demo_is_complete(demo):
            return demo
        if demo_version(demo) is not None:
            self.say(f"The demo cohort in {demo} is from an older dicomsql: rewriting it ...")
            shutil.rmtree(demo)
        self.say(f"No --table given and no demo yet: writing the demo cohort to {demo} ...")
        try:
            return write_demo(demo, patients=self.settings["demo_patients"])
        except FileExistsError as exc:
            raise DicomsqlError(f"{exc} (it is not a complete demo cohort)") from None

    def run_bootstrap(self, spark: pyspark.sql.SparkSession) -> str:
        """Run the bootstrap script in ``spark`` with :attr:`variables`; a failing statement is
        an error naming it. Returns a line for the banner."""
        from .client import EmbeddedClient
        from .sqltools import split_statements, to_spark

        client = EmbeddedClient(spark)
        statements = [
            to_spark(s, self.variables) for s in split_statements(read_script(self.bootstrap))
        ]
        for number, statement in enumerate(statements, start=1):
            try:
                client.execute(statement.text, max_rows=0)
            except QueryError as exc:
                raise DicomsqlError(
                    f"{self.bootstrap}: statement {number} (line {statement.line}) failed: {exc}"
                ) from None
        return f"{'(bootstrap)':<14} {self.bootstrap}: {len(statements)} statements run"

    # --- clients ------------------------------------------------------------------------

    def running_server(self) -> HomeOwner | None:
        """The server process holding the home, or None when the home is free; any other
        holder is :class:`~dicomsql.errors.HomeInUseError` saying who it is."""
        owner = self.home.owner()
        if owner is not None and owner.jdbc_url is None:
            raise self.home.in_use_error(owner)
        return owner

    def jdbc_client(
        self,
        url: str,
        user: str | None = None,
        password: str | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
    ) -> JdbcClient:
        """A client of the server at ``url``; the tables become views there too (shared by
        its clients: the server has its own views already)."""
        from .client import JdbcClient

        client = JdbcClient(url, user=user, password=password, tls_ca=tls_ca)
        if self.tables:
            self.create_views(client.execute)
        return client

    def embedded_client(self) -> EmbeddedClient:
        """A client of this process's own :meth:`session`, which reports each failing
        statement once (pyspark's own log of it off)."""
        from .client import EmbeddedClient
        from .server import silence_query_error_logs

        spark = self.session()
        silence_query_error_logs()
        return EmbeddedClient(spark)

    # --- the server ---------------------------------------------------------------------

    @cached_property
    def access(self) -> Access:
        """The server's :class:`~dicomsql.server.Access` from the security settings."""
        from .server.access import Access, tls_context
        from .server.auth import NoLogin, PasswordFile

        s = self.settings
        if (s["tls_cert"] is None) != (s["tls_key"] is None):
            raise DicomsqlError("--tls-cert and --tls-key go together: give both")
        if s["auth"] == "ldap":
            from .server.ldap import LdapDirectory

            if not s["ldap_url"] or not s["ldap_user_dn"]:
                raise DicomsqlError("--auth ldap needs --ldap-url and --ldap-user-dn")
            authenticator = LdapDirectory(
                s["ldap_url"],
                s["ldap_user_dn"],
                admin_group=s["ldap_admin_group"],
                deidentified_group=s["ldap_deidentified_group"],
                start_tls=s["ldap_start_tls"],
                ca_file=s["ldap_ca"],
            )
        elif s["auth"] == "password":
            authenticator = PasswordFile(self.home.users)
        else:
            authenticator = NoLogin(s["anonymous_role"])
        return Access(
            authenticator=authenticator,
            shared_databases=tuple(s["shared_db"] or ["default"]),
            query_timeout=s["query_timeout"] or None,
            max_result_rows=s["max_result_rows"],
            max_sessions_per_user=s["max_sessions_per_user"],
            idle_timeout=s["idle_timeout"] or None,
            tls=tls_context(s["tls_cert"], s["tls_key"]) if s["tls_cert"] else None,
            analyst_exports=s["analyst_exports"],
        )

    def check_serving(self) -> None:
        """What serving needs, checked before Spark starts: everything this process writes
        (warehouse, metastore, tmp, audit) is its owner's only; the access settings hold
        together; the host may be served with them; the port is free."""
        from .server import check_port_free

        os.umask(0o077)
        self.access.check_host(self.settings["host"])
        check_port_free(self.settings["host"], self.settings["port"])

    def start_server(self, spark: pyspark.sql.SparkSession) -> Server:
        """Serve ``spark`` on the host and port with :attr:`access`, audited in
        ``<home>/audit.log``."""
        from .server import serve
        from .server.audit import AuditLog

        self.access.audit = AuditLog(
            self.home.path / "audit.log", statements=self.settings["audit_statements"]
        )
        return serve(
            spark,
            host=self.settings["host"],
            port=self.settings["port"],
            max_concurrent_queries=self.settings["max_concurrent_queries"],
            access=self.access,
            catalogs=self.catalogs,
            refresh_interval=self.settings["refresh_interval"] or None,
            deidentified=self.deidentified_session(spark),
        )

    def deidentified_session(
        self, spark: pyspark.sql.SparkSession
    ) -> pyspark.sql.SparkSession | None:
        """With ``deidentified_views``: the session of the deidentified role, ``spark``'s views
        de-identified (:mod:`dicomsql.deidentified`) with the ``deidentify_option`` and
        ``identifying_column`` settings."""
        if not self.settings["deidentified_views"]:
            return None
        from .deidentified import deidentified_session

        options = {}
        for pair in self.settings["deidentify_option"] or ():
            name, equals, value = pair.partition("=")
            if not equals:
                raise DicomsqlError(
                    f"--deidentify-option {pair!r}: NAME=VALUE, e.g. date_shift=true"
                )
            options[name.strip()] = value.strip()
        catalogs = {name: catalog.name for name, catalog in self.catalogs.items()}
        return deidentified_session(
            spark, catalogs, options, self.settings["identifying_column"] or ()
        )

    def announce(self, server: Server) -> None:
        """Describe this process in the home as ``server``, so that dicomsql commands on the
        same home run through it."""
        self.home.describe(jdbc_host=server.host, jdbc_port=server.port, tls=server.tls)

    def stop(self, spark: pyspark.sql.SparkSession, server: Server | None = None) -> None:
        """Stop the server and Spark, and give the home up. When the whole process group got
        the signal, the JVM may be stopping on its own already: then there is nothing left to
        stop and nothing to report."""
        logging.getLogger("py4j").setLevel(logging.CRITICAL)
        try:
            for step in (server.stop if server else None, lambda: wait_for_idle(spark), spark.stop):
                try:
                    if step:
                        step()
                except Exception:  # noqa: BLE001 - JVM already gone
                    return
        finally:
            self.home.release()


def session(
    master: str = DEFAULTS["master"],
    home: str | os.PathLike[str] | None = None,
    conf: Mapping[str, str] | None = None,
    data_roots: Iterable[str] | None = None,
    max_file_size: int | None = None,
    tables: Tables = (),
    deid_key_file: str | os.PathLike[str] | None = None,
    export_roots: Iterable[str] | None = None,
) -> pyspark.sql.SparkSession:
    """A SparkSession with everything dicomsql registered, and ``tables`` (name -> folder of
    DICOM files) as temporary views.

    ``home`` (default ``$DICOMSQL_HOME`` or ``~/.dicomsql``) holds the Hive metastore and the
    warehouse, so tables made with ``CREATE TABLE ... AS SELECT`` persist across sessions.
    This process keeps the home until it exits: the embedded metastore admits one process,
    and a second one gets :class:`~dicomsql.errors.HomeInUseError` saying who holds it.
    ``conf`` adds or overrides Spark settings. ``data_roots`` (local folders or URI prefixes)
    confine the ``dicom`` source and the pixel functions to files under them (and the
    tables'); by default they read anything this process can. Files larger than
    ``max_file_size`` bytes (default 2 GiB) are a row error for the pixel functions, never
    read into memory. ``deid_key_file`` holds the key of ``dicom_deidentify`` (default
    ``<home>/deid.key``, made with a random key on first use). ``export_roots`` confine the
    files ``dicom_export`` writes to those folders; by default it writes wherever this process
    may.
    """
    settings = {"master": master, "home": home}
    if max_file_size is not None:
        settings["max_file_size"] = max_file_size
    if deid_key_file is not None:
        settings["deid_key_file"] = str(deid_key_file)
    return App(
        settings, tables=tables, data_roots=data_roots, export_roots=export_roots, conf=conf
    ).session()

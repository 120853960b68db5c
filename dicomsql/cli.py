"""The ``dicomsql`` command: ``serve``, ``sql``, ``ingest``, ``demo`` and ``functions``."""

from __future__ import annotations

import argparse
import glob
import os
import signal
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from . import __version__
from .errors import DicomsqlError, QueryError
from .home import Home
from .server.auth import ROLES
from .settings import DEFAULTS, SETTINGS
from .storage import absolute_path, is_uri
from .server import _QUERY_ERROR_LOGGERS
from .server.audit import AuditLog
from .storage import data_root_for, data_roots, max_file_size_value

_HELP = {setting.name: setting.help for setting in SETTINGS}
_FIRST_QUERY = (
    "SELECT Modality, Manufacturer, count(*) AS images, count(DISTINCT PatientID) AS patients "
    "FROM demo_images GROUP BY Modality, Manufacturer ORDER BY Modality, Manufacturer;"
)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise argparse.ArgumentTypeError(f"expected an integer {bounds}, got {value}")
        return value

    return parse


def _add_session_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", default=DEFAULTS["master"], help=_HELP["master"])
    parser.add_argument("--home", default=DEFAULTS["home"], help=_HELP["home"])
    parser.add_argument(
        "--conf", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
        help="Extra Spark setting (repeatable), e.g. --conf spark.driver.memory=8g.",
    )
    parser.add_argument(
        "--table", type=_key_value, action="append", default=[], metavar="NAME=PATH",
        help="The DICOM files under PATH (recursively) as temporary view NAME (repeatable).",
    )


def _size(text: str) -> int:
    """A size in bytes: 1048576, 512MiB, 4g..."""
    try:
        return int(max_file_size_value(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_security_options(serve: argparse.ArgumentParser) -> None:
    """The options of ``serve`` for logins, TLS, the analysts' limits and the audit log."""
    from .server.audit import STATEMENT_MODES

    option = {
        "auth": dict(choices=("none", "password", "ldap")),
        "anonymous_role": dict(choices=ROLES),
        "tls_cert": dict(type=Path, metavar="PEM"), "tls_key": dict(type=Path, metavar="PEM"),
        "ldap_url": dict(metavar="URL"), "ldap_user_dn": dict(metavar="DN"), "ldap_admin_group": dict(metavar="DN"),
        "ldap_start_tls": dict(action="store_true"), "ldap_ca": dict(type=Path, metavar="PEM"),
        "shared_db": dict(action="append", metavar="NAME"),
        "query_timeout": dict(type=_bounded_int(0), metavar="SECONDS"),
        "max_result_rows": dict(type=_bounded_int(1), metavar="N"),
        "max_sessions_per_user": dict(type=_bounded_int(1), metavar="N"),
        "idle_timeout": dict(type=_bounded_int(0), metavar="SECONDS"),
        "max_file_size": dict(type=_size, metavar="SIZE"),
        "audit_statements": dict(choices=STATEMENT_MODES),
    }
    for name, extra in option.items():
        default = list(DEFAULTS[name]) if extra.get("action") == "append" else DEFAULTS[name]
        serve.add_argument(f"--{name.replace('_', '-')}", default=default, help=_HELP[name], **extra)


def _add_login_options(parser: argparse.ArgumentParser) -> None:
    """How a client command logs in to a server (--jdbc)."""
    parser.add_argument("--user", metavar="NAME", help="Log in to the server as NAME (default: the operating-system user).")
    parser.add_argument("--password-stdin", action="store_true", help="Read the server password from standard input.")
    parser.add_argument("--tls-ca", type=Path, metavar="PEM", help="Connect with TLS, trusting the CA certificates in PEM.")


def _parser() -> argparse.ArgumentParser:
    from .results import FORMATS
    from .sqltools import DIALECTS

    parser = argparse.ArgumentParser(prog="dicomsql", description="Analyse DICOM images with plain SQL on Apache Spark.")
    parser.add_argument("--version", action="version", version=f"dicomsql {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="Start Spark and the Thrift (JDBC) server; the demo cohort when no --table is given.")
    _add_session_options(serve)
    serve.add_argument("--host", default=DEFAULTS["host"], help=_HELP["host"])
    serve.add_argument("--port", type=_bounded_int(1, 65535), default=DEFAULTS["port"], help=_HELP["port"])
    serve.add_argument(
        "--max-concurrent-queries", type=_bounded_int(1), default=DEFAULTS["max_concurrent_queries"],
        metavar="N", help=_HELP["max_concurrent_queries"],
    )
    serve.add_argument(
        "--data-root", action="append", default=[], metavar="DIR",
        help="Clients may read DICOM files under DIR (repeatable); the --table folders (or the demo) always.",
    )
    serve.add_argument(
        "--bootstrap", type=Path, metavar="FILE",
        help="SQL script run once the tables exist, before clients connect (e.g. sql/bootstrap.sql).",
    )
    serve.add_argument(
        "--var", type=_key_value, action="append", default=[], metavar="NAME=VALUE",
        help="Bind ${NAME} in the --bootstrap script (images defaults to the first table, or demo_images).",
    )
    _add_security_options(serve)

    user = commands.add_parser("user", help="Manage the accounts of --auth password (<home>/users); works while a server runs.")
    user.add_argument("--home", default=DEFAULTS["home"], help=_HELP["home"])
    accounts = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = accounts.add_parser("add", help="Add an account (or set its password and role).")
    add.add_argument("name", help="Lower-case letters, digits and _; the user's database is user_<name>.")
    add.add_argument("--role", choices=ROLES, default="analyst", help="analyst (default: the statement policy) or admin (everything).")
    add.add_argument("--password-stdin", action="store_true", help="Read the password from standard input (else it is asked twice).")
    accounts.add_parser("remove", help="Remove an account.").add_argument("name")
    accounts.add_parser("list", help="List the accounts and their roles.")

    sql = commands.add_parser("sql", help="Run SQL in an embedded session (or through a server) and print the results.")
    source = sql.add_mutually_exclusive_group(required=True)
    source.add_argument("-e", dest="query", metavar="QUERY", help="SQL to run (several statements separated by ';').")
    source.add_argument("-f", dest="file", type=Path, metavar="FILE", help="SQL script to run.")
    _add_session_options(sql)
    sql.add_argument("--jdbc", metavar="URL", help="Run through a running server, e.g. jdbc:hive2://127.0.0.1:10000/default.")
    _add_login_options(sql)
    sql.add_argument("--max-rows", type=_bounded_int(1), default=1000, help="Print at most this many rows per statement (default 1000).")
    sql.add_argument("--no-truncate", action="store_true", help="Print long values in full (table format).")
    sql.add_argument(
        "--var", type=_key_value, action="append", default=[], metavar="NAME=VALUE",
        help="Bind ${NAME} and :NAME to VALUE (repeatable): a quoted name where a table name goes, else a literal.",
    )
    sql.add_argument("--dialect", choices=DIALECTS, default="spark", help="Translate the SQL from this dialect to Spark SQL (default spark: as written).")
    sql.add_argument("--transpile-only", action="store_true", help="Print each statement as the Spark SQL to run, without running it.")
    sql.add_argument("--format", choices=("table", *FORMATS), default="table", help="table (default), csv or json (one object per line).")

    shell = commands.add_parser("shell", help="The interactive SQL shell: embedded, or through a server (--jdbc or the one holding the home).")
    _add_session_options(shell)
    shell.add_argument("--jdbc", metavar="URL", help="Run through a running server, e.g. jdbc:hive2://127.0.0.1:10000/default.")
    _add_login_options(shell)
    shell.add_argument("--max-rows", type=_bounded_int(1), default=1000, help="Print at most this many rows per statement (default 1000).")

    demo = commands.add_parser("demo", help="Write the synthetic demo cohort (DICOM CT/MR series + clinical Parquet table).")
    demo.add_argument("--out", required=True, type=Path, help="Directory to create.")
    demo.add_argument("--patients", type=_bounded_int(1), default=DEFAULTS["demo_patients"], help="Number of patients (default %(default)s).")
    demo.add_argument("--seed", type=int, default=0, help="Random seed (default %(default)s).")
    demo.add_argument("--size", type=_bounded_int(16, 4096), default=128, help="Image width and height in pixels (default %(default)s).")

    ingest = commands.add_parser(
        "ingest", help="Materialise DICOM headers into a Parquet table; later runs read only new or changed files."
    )
    ingest.add_argument("name", help="Table to create or update (table or database.table).")
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files, folders or globs (local or URIs).")
    ingest.add_argument("--tags", default="core", help="Typed columns of a new table: core, all, or a comma list of keywords (default core).")
    ingest.add_argument("--master", default=DEFAULTS["master"], help=_HELP["master"])
    ingest.add_argument("--home", default=DEFAULTS["home"], help=_HELP["home"])
    ingest.add_argument("--conf", type=_key_value, action="append", default=[], metavar="KEY=VALUE", help="Extra Spark setting (repeatable).")
    ingest.add_argument("--jdbc", metavar="URL", help="Ingest through a running server.")
    _add_login_options(ingest)

    functions = commands.add_parser("functions", help="List the SQL functions dicomsql registers.")
    functions.add_argument(
        "--markdown", action="store_true",
        help="Print the function reference as Markdown (dicomsql functions --markdown > docs/functions.md).",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dicomsql`` command; returns the exit status (2 for a usage or set-up error)."""
    args = _parser().parse_args(argv)
    try:
        commands = {"serve": _serve, "sql": _sql, "shell": _shell, "ingest": _ingest, "demo": _demo, "functions": _functions, "user": _user}
        return commands[args.command](args)
    except DicomsqlError as exc:
        print(f"dicomsql {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dicomsql {args.command}: interrupted", file=sys.stderr)
        return 130


def _demo(args: argparse.Namespace) -> int:
    from .demo import write_demo

    started = time.monotonic()
    try:
        out = write_demo(args.out, patients=args.patients, seed=args.seed, size=args.size)
    except FileExistsError as exc:
        raise DicomsqlError(str(exc)) from None
    print(f"wrote the demo cohort ({args.patients} patients) to {out} in {time.monotonic() - started:.1f}s")
    return 0


def _functions(args: argparse.Namespace) -> int:
    if args.markdown:
        from .docs import functions_markdown

        sys.stdout.write(functions_markdown())
        return 0
    from .results import format_table
    from .udfs import FUNCTIONS

    rows = [(f.name, f.kind, f.signature, f.description, f.example) for f in FUNCTIONS.values()]
    print(format_table(["name", "kind", "signature", "description", "example"], rows, truncate=False))
    return 0


def _checked_tables(tables: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``--table`` pairs with absolute local paths (URIs as given); an error for a local path
    or glob that names nothing."""
    checked = []
    for name, path in tables:
        if is_uri(path):
            checked.append((name, path))
            continue
        absolute = absolute_path(path)
        if not os.path.exists(absolute) and not glob.glob(absolute):
            raise DicomsqlError(f"--table {name}={path}: {absolute} does not exist")
        checked.append((name, absolute))
    return checked


def _create_views(
    execute: Callable[[str], object], home: Home, tables: list[tuple[str, str]], *, write_demo: bool
) -> list[str]:
    """Create the DICOM views of ``tables``, or else the demo's views (writing the demo first
    when ``write_demo`` and the home has none), with ``execute`` (``spark.sql`` or a JDBC
    client's). Returns a line per view, for the banner."""
    from . import demo
    from .views import DEMO_VIEWS, demo_views_sql, dicom_view_sql

    if tables:
        for name, path in tables:
            for statement in dicom_view_sql(name, path):
                execute(statement)
        return [f"{name:<14} DICOM files under {path}" for name, path in tables]
    if not demo.demo_is_complete(home.demo):
        if not write_demo:
            return []
        if demo.demo_version(home.demo) is not None:  # a complete demo of an older dicomsql
            print(f"The demo cohort in {home.demo} is from an older dicomsql: rewriting it ...", file=sys.stderr, flush=True)
            shutil.rmtree(home.demo)
        print(f"No --table given and no demo yet: writing the demo cohort to {home.demo} ...", file=sys.stderr, flush=True)
        try:
            demo.write_demo(home.demo, patients=DEFAULTS["demo_patients"])
        except FileExistsError as exc:
            raise DicomsqlError(f"{exc} (it is not a complete demo cohort)") from None
    for statement in demo_views_sql(home.demo):
        execute(statement)
    return [f"{name:<14} {text}" for name, text in DEMO_VIEWS.items()]


class _Stop(threading.Event):
    """Set by SIGINT/SIGTERM/SIGHUP; remembers which signal."""

    signal_name = ""

    def handle(self, signum: int, _frame: object) -> None:
        self.signal_name = signal.Signals(signum).name
        self.set()


def _serve(args: argparse.Namespace) -> int:
    from . import serve, session
    from .server import check_port_free
    from .session import active_home

    started = time.monotonic()
    os.umask(0o077)  # everything the server writes (warehouse, metastore, tmp, audit) is its own
    tables = _checked_tables(args.table)
    access = _access(args)
    access.check_host(args.host)
    check_port_free(args.host, args.port)
    roots = [*args.data_root, *(data_root_for(path) for _, path in tables)]
    if not tables:
        roots.append(str(Home(args.home).demo))
    conf = dict(args.conf)
    if access.checks_passwords and args.master.startswith("local"):
        # Spark's RPC authenticates too, with a secret Spark makes for this process (never on
        # a command line); a cluster needs its own (spark.authenticate on its nodes)
        conf.setdefault("spark.authenticate", "true")
    spark = session(master=args.master, home=args.home, conf=conf, data_roots=roots, max_file_size=args.max_file_size)
    stop = _Stop()  # after session(): pyspark installs a SIGINT handler of its own
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop.handle)
    home = active_home()
    server = None
    try:
        views = _create_views(spark.sql, home, tables, write_demo=True)
        if args.bootstrap:
            images = tables[0][0] if tables else "demo_images"
            views.append(_bootstrap(spark, args.bootstrap, {"images": images, **dict(args.var)}))
        if stop.is_set():
            return 0
        access.audit = AuditLog(home.path / "audit.log", statements=args.audit_statements)
        server = serve(spark, host=args.host, port=args.port, max_concurrent_queries=args.max_concurrent_queries, access=access)
        home.describe(jdbc_host=args.host, jdbc_port=args.port, tls=access.tls is not None)
        _print_banner(spark, home, server, views, time.monotonic() - started, demo=not tables, auth=_auth_line(args))
        while not stop.wait(timeout=2.0):
            if not _spark_alive(spark):
                print("dicomsql serve: Spark stopped unexpectedly (see the messages above)", file=sys.stderr)
                return 1
        return 0
    finally:
        print(f"\nStopping ({stop.signal_name or 'exit'}) ...", flush=True)
        _shut_down(server, spark)
        home.release()
        print("Stopped.", flush=True)


def _access(args: argparse.Namespace):
    """The server's :class:`~dicomsql.server.Access` from the security options."""
    from .server.access import Access, tls_context
    from .server.auth import NoLogin, PasswordFile

    if (args.tls_cert is None) != (args.tls_key is None):
        raise DicomsqlError("--tls-cert and --tls-key go together: give both")
    if args.auth == "ldap":
        from .server.ldap import LdapDirectory

        if not args.ldap_url or not args.ldap_user_dn:
            raise DicomsqlError("--auth ldap needs --ldap-url and --ldap-user-dn")
        authenticator = LdapDirectory(args.ldap_url, args.ldap_user_dn, admin_group=args.ldap_admin_group,
                                      start_tls=args.ldap_start_tls, ca_file=args.ldap_ca)
    elif args.auth == "password":
        authenticator = PasswordFile(Home(args.home).users)
    else:
        authenticator = NoLogin(args.anonymous_role)
    return Access(
        authenticator=authenticator,
        shared_databases=tuple(args.shared_db or ["default"]),
        query_timeout=args.query_timeout or None,
        max_result_rows=args.max_result_rows,
        max_sessions_per_user=args.max_sessions_per_user,
        idle_timeout=args.idle_timeout or None,
        tls=tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None,
    )


def _auth_line(args: argparse.Namespace) -> str:
    if args.auth == "none":
        return f"none: no login, every client is an {args.anonymous_role}" if args.anonymous_role == "analyst" else "none: no login, every client is an admin (anyone on this machine can do anything the server can)"
    return args.auth + (f" ({args.ldap_url})" if args.auth == "ldap" else f" (accounts: dicomsql user list --home {Home(args.home).path})")


def _user(args: argparse.Namespace) -> int:
    """``dicomsql user add|remove|list``: the accounts of ``--auth password``."""
    from .server.auth import PasswordFile

    accounts = PasswordFile(Home(args.home).users)
    if args.action == "list":
        for name, account in sorted(accounts.accounts().items()):
            print(f"{name}\t{account['role']}")
        return 0
    if args.action == "remove":
        accounts.remove(args.name)
        print(f"removed {args.name}")
        return 0
    accounts.add(args.name, _read_password(args.password_stdin, confirm=True), role=args.role)
    print(f"{args.name} ({args.role}) can log in to servers of {accounts.path.parent} with --auth password")
    return 0


def _read_password(from_stdin: bool, confirm: bool = False) -> str:
    """A password from standard input (its first line) or asked on the terminal."""
    import getpass

    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise DicomsqlError("no terminal to ask the password on: pass it with --password-stdin")
    password = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Again: ") != password:
        raise DicomsqlError("the passwords differ")
    return password


def _bootstrap(spark, path: Path, variables: dict[str, str]) -> str:
    """Run the ``--bootstrap`` script in the server's session; a failing statement is an
    error naming it. Returns a line for the banner."""
    from .client import EmbeddedClient
    from .sqltools import split_statements, to_spark

    client = EmbeddedClient(spark)
    statements = [to_spark(s, variables) for s in split_statements(_read_script(path))]
    for number, statement in enumerate(statements, start=1):
        try:
            client.execute(statement.text, max_rows=0)
        except QueryError as exc:
            raise DicomsqlError(f"{path}: statement {number} (line {statement.line}) failed: {exc}") from None
    return f"{'(bootstrap)':<14} {path}: {len(statements)} statements run"


def _spark_alive(spark) -> bool:
    try:
        return not spark.sparkContext._jsc.sc().isStopped()
    except Exception:  # noqa: BLE001 - the JVM is gone: py4j raises network errors
        return False


def _shut_down(server, spark) -> None:
    """Stop the server and Spark. When the whole process group got the signal, the JVM may be
    stopping on its own already: then there is nothing left to stop and nothing to report."""
    import logging

    logging.getLogger("py4j").setLevel(logging.CRITICAL)
    for stop in (server.stop if server else None, lambda: _wait_for_idle(spark), spark.stop):
        try:
            if stop:
                stop()
        except Exception:  # noqa: BLE001 - JVM already gone
            return


def _wait_for_idle(spark, seconds: float = 10.0) -> None:
    """Wait (a while at most) until the statements the server cancelled have left Spark, and
    let the JVM end its connection to pyspark's accumulator server without pyspark printing
    that as an error (socketserver's traceback of the EOF)."""
    tracker = spark.sparkContext.statusTracker()
    deadline = time.monotonic() + seconds
    while (tracker.getActiveJobsIds() or tracker.getActiveStageIds()) and time.monotonic() < deadline:
        time.sleep(0.1)
    accumulators = getattr(spark.sparkContext, "_accumulatorServer", None)
    if accumulators is not None:
        accumulators.handle_error = lambda request, client_address: None


def _print_banner(spark, home: Home, server, views: list[str], seconds: float, demo: bool, auth: str) -> None:
    import pyspark

    beeline = Path(pyspark.__file__).parent / "bin" / "beeline"
    print(
        f"dicomsql {__version__} on Spark {spark.version} ({spark.sparkContext.master}), ready in {seconds:.1f}s\n"
        f"home:      {home.path}\n"
        f"reads:     {', '.join(data_roots() or ['anywhere'])}\n"
        f"logins:    {auth}{'; TLS' if server.tls else ''}\n"
        f"audit:     {home.path / 'audit.log'}\n"
        f"tables:\n" + "".join(f"  {line}\n" for line in views) +
        f"JDBC URL:  {server.jdbc_url}\n"
        f"beeline:   {beeline} -u {server.jdbc_url}\n"
        f"Python:    pyhive.hive.connect('{server.host}', {server.port})   SQLAlchemy: {server.sqlalchemy_url}\n"
        + (f"Try:\n  {_FIRST_QUERY}\n" if demo else "")
        + "Press Ctrl-C to stop.",
        flush=True,
    )


def _sql(args: argparse.Namespace) -> int:
    from .sqltools import split_statements, to_spark

    script = args.query if args.query is not None else _read_script(args.file)
    variables = dict(args.var)
    statements = [to_spark(s, variables, args.dialect) for s in split_statements(script, args.dialect)]
    if args.transpile_only:
        for statement in statements:
            print(f"{statement.text};")
        return 0
    client = _client(args, _checked_tables(args.table))
    try:
        for number, statement in enumerate(statements, start=1):
            try:
                result = client.execute(statement.text, max_rows=args.max_rows + 1)
            except QueryError as exc:
                where = f"statement {number} (line {statement.line})" if len(statements) > 1 else "query"
                print(f"dicomsql sql: {where} failed: {exc}", file=sys.stderr)
                return 1
            if result.columns:
                _print_result(args, result)
    finally:
        client.close()
    return 0


def _shell(args: argparse.Namespace) -> int:
    from .shell import Shell
    from .udfs import FUNCTIONS

    client = _client(args, _checked_tables(args.table))
    where = getattr(client, "url", None)
    print(f"dicomsql {__version__} shell ({'server ' + where.host + ':' + str(where.port) if where else 'embedded'}). "
          "End statements with ';'; Tab completes; Ctrl-C cancels; Ctrl-D or 'quit;' leaves.")
    try:
        return Shell(client, FUNCTIONS, history=Home(args.home).path / "shell_history", max_rows=args.max_rows).run()
    finally:
        client.close()


def _print_result(args: argparse.Namespace, result) -> None:
    """Print at most ``--max-rows`` rows of ``result`` in ``--format``; only the table adds a
    row count on stdout, the machine-readable formats say on stderr that rows were left out."""
    from .results import FORMATS, format_table

    shown = result.rows[: args.max_rows]
    more = len(result.rows) > args.max_rows
    if args.format == "table":
        print(format_table(result.columns, shown, truncate=not args.no_truncate))
        print(f"{len(shown)} row(s)" + (" (more not shown: raise --max-rows)" if more else ""))
        return
    sys.stdout.write(FORMATS[args.format](result.columns, shown))
    if more:
        print(f"dicomsql sql: only the first {args.max_rows} rows written: raise --max-rows", file=sys.stderr)


def _client(args: argparse.Namespace, tables: list[tuple[str, str]] = ()):
    """A client running SQL through ``--jdbc``, the server holding the home, or else an
    embedded session (with ``tables`` as views there)."""
    from .client import EmbeddedClient, JdbcClient

    jdbc = args.jdbc or _running_server(args.home)
    if jdbc:
        # The server has its views already; --table adds views there (shared by its clients).
        password = _read_password(True) if args.password_stdin else None
        client = JdbcClient(jdbc, user=args.user, password=password, tls_ca=args.tls_ca)
        if tables:
            _create_views(client.execute, Home(args.home), tables, write_demo=False)
        return client
    import logging

    from . import session
    from .session import active_home

    spark = session(master=args.master, home=args.home, conf=dict(args.conf))
    _create_views(spark.sql, active_home(), tables, write_demo=False)
    for name in _QUERY_ERROR_LOGGERS:
        logging.getLogger(name).disabled = True  # pyspark logs each SQL error; we report it once
    return EmbeddedClient(spark)


def _ingest(args: argparse.Namespace) -> int:
    from .ingest import ingest

    tags = args.tags.strip()
    tags = tags.lower() if tags.lower() in ("core", "all") else tags
    client = _client(args)
    interactive = sys.stderr.isatty()

    def progress(line: str) -> None:
        print(f"\r{line}" if interactive else line, end="" if interactive else "\n", file=sys.stderr, flush=True)

    try:
        summary = ingest(client.execute, args.name, args.paths, tags=tags, progress=progress)
    except QueryError as exc:
        print(f"\ndicomsql ingest: failed: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    if interactive:
        print(file=sys.stderr)
    print(summary)
    return 0


def _read_script(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DicomsqlError(f"cannot read {path}: {exc.strerror}") from None


def _running_server(home: str | None) -> str | None:
    """The JDBC URL of a dicomsql server holding ``home``, announced on stderr; None when the
    home is free. Any other holder is an error saying who it is."""
    state = Home(home)
    owner = state.owner()
    if owner is None:
        return None
    if owner.jdbc_url is None:
        raise state.in_use_error(owner)
    print(f"dicomsql: {state.path} is served by process {owner.pid}; running through {owner.jdbc_url}", file=sys.stderr)
    return owner.jdbc_url


if __name__ == "__main__":
    sys.exit(main())

"""The ``dicomsql`` command: ``serve``, ``sql``, ``ingest``, ``demo`` and ``functions``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .app import App, read_script
from .errors import DicomsqlError, QueryError
from .home import Home
from .options import Choice, integer
from .settings import DEFAULTS, ROLES, SETTINGS
from .storage import data_roots, export_roots

_SETTINGS = {setting.name: setting for setting in SETTINGS}
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


def _typed(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type`` from an option's parser: what the parser expected (its
    ``ValueError``) is the flag's error, as :func:`dicomsql.options.parse` words it."""

    def typed(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"must be {exc}, got {text!r}") from None

    return typed


def _bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    return _typed(integer(low, high))


def _pairs(metavar: str, help: str) -> dict[str, Any]:
    """A repeatable ``NAME=VALUE`` flag's add_argument keywords."""
    return dict(type=_key_value, action="append", default=[], metavar=metavar, help=help)


#: The flags several commands take, each declared once: flag -> add_argument's keywords.
_FLAGS: dict[str, dict[str, Any]] = {
    "--master": dict(default=DEFAULTS["master"], help=_HELP["master"]),
    "--home": dict(default=DEFAULTS["home"], help=_HELP["home"]),
    "--conf": _pairs(
        "KEY=VALUE", "Extra Spark setting (repeatable), e.g. --conf spark.driver.memory=8g."
    ),
    "--table": _pairs(
        "NAME=PATH",
        "The DICOM files under PATH (recursively) as table NAME: a catalog, refreshed at start (repeatable).",
    ),
    "--live": dict(action="store_true", help=_HELP["live"]),
    "--var": _pairs(
        "NAME=VALUE",
        "Bind ${NAME} and :NAME to VALUE (repeatable): a quoted name where a table name goes, else a literal.",
    ),
    "--jdbc": dict(
        metavar="URL",
        help="Run through a running server, e.g. jdbc:hive2://127.0.0.1:10000/default.",
    ),
    "--user": dict(
        metavar="NAME", help="Log in to the server as NAME (default: the operating-system user)."
    ),
    "--password-stdin": dict(
        action="store_true", help="Read the server password from standard input."
    ),
    "--tls-ca": dict(
        type=Path, metavar="PEM", help="Connect with TLS, trusting the CA certificates in PEM."
    ),
    "--max-rows": dict(
        type=_bounded_int(1),
        default=1000,
        help="Print at most this many rows per statement (default 1000).",
    ),
}
#: The flags of a Spark session, and those of logging in to a server.
_SESSION_FLAGS = ("--master", "--home", "--conf")
_LOGIN_FLAGS = ("--jdbc", "--user", "--password-stdin", "--tls-ca")


def _add_flags(parser: argparse.ArgumentParser, *flags: str, **override: Any) -> None:
    """Add ``flags`` of :data:`_FLAGS` to ``parser`` (``override``: e.g. a help of its own)."""
    for flag in flags:
        declared = {**_FLAGS[flag], **override}
        if isinstance(declared.get("default"), list):
            declared["default"] = list(declared["default"])  # each parser appends to its own
        parser.add_argument(flag, **declared)


def _setting_type(name: str) -> dict[str, Any]:
    """``add_argument``'s keywords parsing a flag with setting ``name``'s parser (and, for a
    choice, listing its values): none for a setting that is text."""
    parse = _SETTINGS[name].parse
    if parse is str:
        return {}
    return dict(
        type=_typed(parse), **({"choices": parse.values} if isinstance(parse, Choice) else {})
    )


def _add_server_settings(serve: argparse.ArgumentParser) -> None:
    """The settings of ``serve`` for its endpoint, logins, TLS, the analysts' limits and the
    audit log: flags named after :data:`dicomsql.settings.SETTINGS`, parsed by their parsers."""
    option = {
        "host": {},
        "port": {},
        "max_concurrent_queries": dict(metavar="N"),
        "auth": {},
        "anonymous_role": {},
        "tls_cert": dict(metavar="PEM"),
        "tls_key": dict(metavar="PEM"),
        "ldap_url": dict(metavar="URL"),
        "ldap_user_dn": dict(metavar="DN"),
        "ldap_admin_group": dict(metavar="DN"),
        "ldap_deidentified_group": dict(metavar="DN"),
        "ldap_start_tls": dict(action="store_true"),
        "ldap_ca": dict(metavar="PEM"),
        "shared_db": dict(action="append", metavar="NAME"),
        "analyst_exports": dict(action="store_true"),
        "deidentified_views": dict(action="store_true"),
        "deidentify_option": dict(action="append", metavar="NAME=VALUE"),
        "identifying_column": dict(action="append", metavar="TABLE.COLUMN"),
        "query_timeout": dict(metavar="SECONDS"),
        "max_result_rows": dict(metavar="N"),
        "max_sessions_per_user": dict(metavar="N"),
        "idle_timeout": dict(metavar="SECONDS"),
        "max_file_size": dict(metavar="SIZE"),
        "deid_key_file": dict(metavar="FILE"),
        "audit_statements": {},
        "refresh_interval": dict(metavar="SECONDS"),
    }
    for name, extra in option.items():
        default = list(DEFAULTS[name]) if extra.get("action") == "append" else DEFAULTS[name]
        typed = {} if "action" in extra else _setting_type(name)
        serve.add_argument(
            f"--{name.replace('_', '-')}", default=default, help=_HELP[name], **typed, **extra
        )


def _parser() -> argparse.ArgumentParser:
    from .results import FORMATS
    from .sqltools import DIALECTS

    parser = argparse.ArgumentParser(
        prog="dicomsql", description="Analyse DICOM images with plain SQL on Apache Spark."
    )
    parser.add_argument("--version", action="version", version=f"dicomsql {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="Start Spark and the Thrift (JDBC) server; the demo cohort when no --table is given.",
    )
    _add_flags(serve, *_SESSION_FLAGS, "--table", "--live")
    serve.add_argument(
        "--data-root",
        action="append",
        default=[],
        metavar="DIR",
        help="Clients may read DICOM files under DIR (repeatable); the --table folders (or the demo) always.",
    )
    serve.add_argument(
        "--export-root",
        action="append",
        default=[],
        metavar="DIR",
        help="dicom_export may write files under DIR (repeatable; none: no files are written).",
    )
    serve.add_argument(
        "--bootstrap",
        type=Path,
        metavar="FILE",
        help="SQL script run once the tables exist, before clients connect (e.g. sql/bootstrap.sql).",
    )
    _add_flags(
        serve,
        "--var",
        help="Bind ${NAME} in the --bootstrap script (images defaults to the first table, or demo_images).",
    )
    _add_server_settings(serve)

    user = commands.add_parser(
        "user",
        help="Manage the accounts of --auth password (<home>/users); works while a server runs.",
    )
    _add_flags(user, "--home")
    accounts = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = accounts.add_parser("add", help="Add an account (or set its password and role).")
    add.add_argument(
        "name", help="Lower-case letters, digits and _; the user's database is user_<name>."
    )
    add.add_argument(
        "--role",
        choices=ROLES,
        default="analyst",
        help="analyst (default: the statement policy) or admin (everything).",
    )
    _add_flags(
        add,
        "--password-stdin",
        help="Read the password from standard input (else it is asked twice).",
    )
    accounts.add_parser("remove", help="Remove an account.").add_argument("name")
    accounts.add_parser("list", help="List the accounts and their roles.")

    sql = commands.add_parser(
        "sql", help="Run SQL in an embedded session (or through a server) and print the results."
    )
    source = sql.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "-e",
        dest="query",
        metavar="QUERY",
        help="SQL to run (several statements separated by ';').",
    )
    source.add_argument("-f", dest="file", type=Path, metavar="FILE", help="SQL script to run.")
    _add_flags(sql, *_SESSION_FLAGS, "--table", "--live", *_LOGIN_FLAGS, "--max-rows")
    sql.add_argument(
        "--no-truncate", action="store_true", help="Print long values in full (table format)."
    )
    _add_flags(sql, "--var")
    sql.add_argument(
        "--dialect",
        choices=DIALECTS,
        default="spark",
        help="Translate the SQL from this dialect to Spark SQL (default spark: as written).",
    )
    sql.add_argument(
        "--transpile-only",
        action="store_true",
        help="Print each statement as the Spark SQL to run, without running it.",
    )
    sql.add_argument(
        "--format",
        choices=("table", *FORMATS),
        default="table",
        help="table (default), csv or json (one object per line).",
    )

    shell = commands.add_parser(
        "shell",
        help="The interactive SQL shell: embedded, or through a server (--jdbc or the one holding the home).",
    )
    _add_flags(shell, *_SESSION_FLAGS, "--table", "--live", *_LOGIN_FLAGS, "--max-rows")

    demo = commands.add_parser(
        "demo",
        help="Write the synthetic demo cohort (DICOM CT/MR series + clinical Parquet table).",
    )
    demo.add_argument("--out", required=True, type=Path, help="Directory to create.")
    demo.add_argument(
        "--patients",
        **_setting_type("demo_patients"),
        default=DEFAULTS["demo_patients"],
        help="Number of patients (default %(default)s).",
    )
    demo.add_argument("--seed", type=int, default=0, help="Random seed (default %(default)s).")
    demo.add_argument(
        "--size",
        type=_bounded_int(16, 4096),
        default=128,
        help="Image width and height in pixels (default %(default)s).",
    )

    ingest = commands.add_parser(
        "ingest",
        help="Materialise DICOM headers into a Parquet table; later runs read only new or changed files.",
    )
    ingest.add_argument("name", help="Table to create or update (table or database.table).")
    ingest.add_argument(
        "paths", nargs="+", metavar="PATH", help="DICOM files, folders or globs (local or URIs)."
    )
    ingest.add_argument(
        "--tags",
        default="core",
        help="Typed columns of a new table: core, all, or a comma list of keywords (default core).",
    )
    ingest.add_argument(
        "--watch",
        type=_bounded_int(1),
        metavar="SECONDS",
        help="Keep the table current: refresh it every SECONDS until stopped (Ctrl-C, SIGTERM); "
        "a refresh that finds new, changed or deleted files prints its summary.",
    )
    _add_flags(ingest, *_SESSION_FLAGS, *_LOGIN_FLAGS)

    pull = commands.add_parser(
        "pull",
        help="Retrieve the instances a query matches from a PACS (C-GET) into a folder; "
        "run again, it fetches only what is missing.",
    )
    pull.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="URL",
        help="The PACS: dimse://CALLED_AE@host:port.",
    )
    pull.add_argument(
        "--to",
        dest="folder",
        required=True,
        type=Path,
        help="Folder (a data root) to write STUDY/SERIES/SOP.dcm files into.",
    )
    pull.add_argument(
        "--query",
        default="{}",
        metavar="JSON",
        help='Matching keys by keyword, e.g. \'{"PatientID": "1CT*", "Modality": "CT"}\' (default: everything).',
    )
    pull.add_argument(
        "--calling-ae",
        default="DICOMSQL",
        help="dicomsql's AE title, as the PACS knows it (default %(default)s).",
    )
    pull.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="Seconds the PACS may take to answer (default %(default)s).",
    )
    pull.add_argument(
        "--table",
        metavar="NAME",
        help="Then refresh the header catalog NAME over the folder (as dicomsql ingest NAME FOLDER does).",
    )
    _add_flags(pull, *_SESSION_FLAGS, *_LOGIN_FLAGS)

    functions = commands.add_parser("functions", help="List the SQL functions dicomsql registers.")
    functions.add_argument(
        "--markdown",
        action="store_true",
        help="Print the function reference as Markdown (dicomsql functions --markdown > docs/functions.md).",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dicomsql`` command; returns the exit status (2 for a usage or set-up error)."""
    args = _parser().parse_args(argv)
    try:
        commands = {
            "serve": _serve,
            "sql": _sql,
            "shell": _shell,
            "ingest": _ingest,
            "pull": _pull,
            "demo": _demo,
            "functions": _functions,
            "user": _user,
        }
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
    print(
        f"wrote the demo cohort ({args.patients} patients) to {out} in {time.monotonic() - started:.1f}s"
    )
    return 0


def _functions(args: argparse.Namespace) -> int:
    if args.markdown:
        from .docs import functions_markdown

        sys.stdout.write(functions_markdown())
        return 0
    from .results import format_table
    from .udfs import FUNCTIONS

    rows = [(f.name, f.kind, f.signature, f.description, f.example) for f in FUNCTIONS.values()]
    print(
        format_table(["name", "kind", "signature", "description", "example"], rows, truncate=False)
    )
    return 0


def _app(args: argparse.Namespace, **given: Any) -> App:
    """The :class:`~dicomsql.app.App` of a command: its flags named after settings, its
    ``--conf``, and ``given``."""
    settings = {name: getattr(args, name) for name in DEFAULTS if hasattr(args, name)}
    return App(settings, conf=dict(getattr(args, "conf", [])), **given)


class _Stop(threading.Event):
    """Set by SIGINT/SIGTERM/SIGHUP; remembers which signal."""

    signal_name = ""

    def handle(self, signum: int, _frame: object) -> None:
        self.signal_name = signal.Signals(signum).name
        self.set()


def _serve(args: argparse.Namespace) -> int:
    from .session import spark_alive

    started = time.monotonic()
    app = _app(
        args,
        tables=args.table,
        demo="write",
        data_roots=args.data_root,
        export_roots=args.export_root,
        bootstrap=args.bootstrap,
        variables=dict(args.var),
    )
    app.check_serving()
    spark = app.start_session()
    stop = _Stop()  # after the session: pyspark installs a SIGINT handler of its own
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop.handle)
    server = None
    try:
        views = app.prepare(spark)
        if stop.is_set():
            return 0
        server = app.start_server(spark)
        app.announce(server)
        _print_banner(app, spark, server, views, time.monotonic() - started)
        while not stop.wait(timeout=2.0):
            if not spark_alive(spark):
                print(
                    "dicomsql serve: Spark stopped unexpectedly (see the messages above)",
                    file=sys.stderr,
                )
                return 1
        return 0
    finally:
        print(f"\nStopping ({stop.signal_name or 'exit'}) ...", flush=True)
        app.stop(spark, server)
        print("Stopped.", flush=True)


def _auth_line(app: App) -> str:
    auth, role = app.settings["auth"], app.settings["anonymous_role"]
    if auth == "none":
        return (
            f"none: no login, every client is an {role}"
            if role == "analyst"
            else "none: no login, every client is an admin (anyone on this machine can do anything the server can)"
        )
    return auth + (
        f" ({app.settings['ldap_url']})"
        if auth == "ldap"
        else f" (accounts: dicomsql user list --home {app.home.path})"
    )


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
    print(
        f"{args.name} ({args.role}) can log in to servers of {accounts.path.parent} with --auth password"
    )
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


def _print_banner(app: App, spark, server, views: list[str], seconds: float) -> None:
    import pyspark

    beeline = Path(pyspark.__file__).parent / "bin" / "beeline"
    print(
        f"dicomsql {__version__} on Spark {spark.version} ({spark.sparkContext.master}), ready in {seconds:.1f}s\n"
        f"home:      {app.home.path}\n"
        f"reads:     {', '.join(data_roots() or ['anywhere'])}\n"
        f"writes:    {', '.join(export_roots() or ['nowhere (--export-root)'])}\n"
        f"logins:    {_auth_line(app)}{'; TLS' if server.tls else ''}\n"
        f"audit:     {app.home.path / 'audit.log'}\n"
        f"tables:\n" + "".join(f"  {line}\n" for line in views) + f"JDBC URL:  {server.jdbc_url}\n"
        f"beeline:   {beeline} -u {server.jdbc_url}\n"
        f"Python:    pyhive.hive.connect('{server.host}', {server.port})   SQLAlchemy: {server.sqlalchemy_url}\n"
        + (f"Try:\n  {_FIRST_QUERY}\n" if app.serves_demo else "")
        + "Press Ctrl-C to stop.",
        flush=True,
    )


def _sql(args: argparse.Namespace) -> int:
    from .sqltools import split_statements, to_spark

    script = args.query if args.query is not None else read_script(args.file)
    variables = dict(args.var)
    statements = [
        to_spark(s, variables, args.dialect) for s in split_statements(script, args.dialect)
    ]
    if args.transpile_only:
        for statement in statements:
            print(f"{statement.text};")
        return 0
    client = _client(args, args.table)
    try:
        for number, statement in enumerate(statements, start=1):
            try:
                result = client.execute(statement.text, max_rows=args.max_rows + 1)
            except QueryError as exc:
                where = (
                    f"statement {number} (line {statement.line})"
                    if len(statements) > 1
                    else "query"
                )
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

    client = _client(args, args.table)
    where = getattr(client, "url", None)
    print(
        f"dicomsql {__version__} shell ({'server ' + where.host + ':' + str(where.port) if where else 'embedded'}). "
        "End statements with ';'; Tab completes; Ctrl-C cancels; Ctrl-D or 'quit;' leaves."
    )
    try:
        return Shell(
            client,
            FUNCTIONS,
            history=Home(args.home).path / "shell_history",
            max_rows=args.max_rows,
        ).run()
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
        print(
            f"dicomsql sql: only the first {args.max_rows} rows written: raise --max-rows",
            file=sys.stderr,
        )


def _client(args: argparse.Namespace, tables: list[tuple[str, str]] = ()):
    """A client running SQL through ``--jdbc``, the server holding the home, or else an
    embedded session (with ``tables`` as views there, or the home's demo)."""
    app = _app(args, tables=tables, demo="existing")
    jdbc = args.jdbc or _running_server(app)
    if jdbc:
        password = _read_password(True) if args.password_stdin else None
        return app.jdbc_client(jdbc, user=args.user, password=password, tls_ca=args.tls_ca)
    return app.embedded_client()


def _ingest(args: argparse.Namespace) -> int:
    from .ingest import Catalog

    tags = args.tags.strip()
    tags = tags.lower() if tags.lower() in ("core", "all") else tags
    client = _client(args)
    interactive = sys.stderr.isatty()

    def progress(line: str) -> None:
        print(
            f"\r{line}" if interactive else line,
            end="" if interactive else "\n",
            file=sys.stderr,
            flush=True,
        )

    catalog = Catalog(client.execute, args.name, args.paths, tags)
    if args.watch:  # a refresh stopped mid-way leaves the catalog as it was
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        first = True
        while True:
            summary = catalog.refresh(progress)
            if interactive and summary.read:
                print(file=sys.stderr)
            if first or summary.read or summary.removed:
                print(summary, flush=True)
            if not args.watch:
                return 0
            first = False
            time.sleep(args.watch)
    except QueryError as exc:
        print(f"\ndicomsql ingest: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dicomsql ingest: stopped", file=sys.stderr)
        return 0
    finally:
        client.close()


def _pull(args: argparse.Namespace) -> int:
    from . import pacs

    try:
        peer = pacs.Peer.parse(args.source, args.calling_ae, args.timeout)
        query = json.loads(args.query)
    except ValueError as exc:
        raise DicomsqlError(f"--from/--query: {exc}") from None
    if not isinstance(query, dict):
        raise DicomsqlError('--query: a JSON object of matching keys, e.g. {"PatientID": "1CT1"}')
    folder = str(args.folder.expanduser().absolute())
    interactive = sys.stderr.isatty()

    def progress(pulled: pacs.Pulled) -> None:
        done = pulled.present + pulled.retrieved
        line = f"{done:,} of {pulled.found:,} instances ({pulled.retrieved:,} retrieved)"
        print(
            f"\r{line}" if interactive else line,
            end="" if interactive else "\n",
            file=sys.stderr,
            flush=True,
        )

    started = time.monotonic()
    pulled = pacs.pull(peer, query, folder, progress)
    seconds = time.monotonic() - started
    if interactive and pulled.retrieved:
        print(file=sys.stderr)
    print(
        f"pulled {pulled.retrieved:,} instances from {peer.called_ae}@{peer.host}:{peer.port} "
        f"into {folder} in {seconds:.1f}s ({pulled.found:,} matched, {pulled.present:,} already there"
        + (f", {len(pulled.failures):,} failed" if pulled.failures else "")
        + ")"
    )
    for failure in pulled.failures[:10]:
        print(f"dicomsql pull: {failure}", file=sys.stderr)
    if pulled.failures:
        return 1
    if args.table:
        args.name, args.paths, args.tags, args.watch = args.table, [folder], "core", None
        return _ingest(args)
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM as Ctrl-C: ``dicomsql ingest --watch`` stops between or inside refreshes."""
    raise KeyboardInterrupt


def _running_server(app: App) -> str | None:
    """The JDBC URL of a dicomsql server holding the home, announced on stderr; None when the
    home is free."""
    owner = app.running_server()
    if owner is None:
        return None
    print(
        f"dicomsql: {app.home.path} is served by process {owner.pid}; running through {owner.jdbc_url}",
        file=sys.stderr,
    )
    return owner.jdbc_url


if __name__ == "__main__":
    sys.exit(main())

"""The analyst policy: what a statement of a user in the ``analyst`` role may do, checked
before anything runs, on the plan Spark's own parser makes of it (a second parser's reading
could differ from Spark's, and the difference would be a way around the policy).

Default deny. A statement passes only if every node of its parsed plan, of every plan nested
in it (subqueries, CTEs, the statements of a SQL-scripting block, the plan of an EXPLAIN) is
in :data:`NODES`, every function it calls is allowed (:class:`Functions`) and every setting
it changes is in :data:`SETTINGS`. Well-known dangerous statements are refused by a rule of
their own (:data:`DENIED`), so that the message says what was wrong; anything else not
allowed by the default-deny rule. The error names the rule
(:class:`PolicyViolation`, SQLSTATE 42501).

In short, an analyst may: query (SELECT, WITH, VALUES, TABLE, EXPLAIN, table functions); SHOW
and DESCRIBE; create temporary views over queries or ``USING dicom`` / ``USING tfrecord`` within the data roots;
CACHE/UNCACHE its own temporary views; create views in its own database over its tables; CREATE TABLE AS SELECT, INSERT INTO and DROP TABLE of
managed Parquet tables in its own database ``user_<name>`` (and rename them there); read the shared databases; SET a
few session settings; declare and set SQL variables; run SQL-scripting blocks of all that
(without loops, which no query timeout could stop).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import DicomsqlError

__all__ = [
    "PolicyViolation",
    "Functions",
    "Scope",
    "check",
    "check_setting",
    "NODES",
    "DENIED",
    "SETTINGS",
    "RULES",
]

#: Every rule a statement can break, with what it protects. The policy's errors name these.
RULES: dict[str, str] = {
    "default_deny": "only the statements of the analyst policy are allowed",
    "deidentified_only": "the deidentified role reads only the de-identified views and its own tables",
    "no_file_access": "no reading or writing of files except DICOM and TFRecord files under the data roots, exports under the own export folder and tables in the warehouse",
    "no_network": "no connections to other hosts (a PACS is queried through views an admin made)",
    "no_code": "no JARs, files, scripts, Java methods or functions of one's own",
    "no_dynamic_sql": "no SQL built at run time (EXECUTE IMMEDIATE): it cannot be checked before it runs",
    "read_allowed_databases": "read only the own database, the shared databases and temporary views",
    "write_own_database": "create, fill and drop managed Parquet tables only in the own database",
    "temporary_views_only": "views are temporary and local to the session, or views of the own database over its own tables",
    "own_views_only": "CACHE, UNCACHE and DROP VIEW only for the session's own temporary views",
    "function_not_allowed": "call only Spark's built-in functions (but not reflect, java_method, protobuf) and the served ones",
    "setting_not_allowed": "SET only the settings of the allow-list",
    "no_use_in_scripts": "no USE inside a SQL-scripting block (its writes are checked against the database it starts in)",
    "no_loops_in_scripts": "no WHILE, REPEAT, LOOP or FOR in SQL scripts: a loop runs no Spark job the query timeout could cancel",
}

#: Settings an analyst may change (anyone may read settings; secrets read back redacted).
SETTINGS: dict[str, str] = {
    "spark.sql.session.timeZone": "time zone of timestamps",
    "spark.sql.ansi.enabled": "ANSI SQL semantics (errors instead of NULL on overflow)",
    "spark.sql.shuffle.partitions": "partitions of joins and aggregations",
    "spark.sql.adaptive.enabled": "adaptive query execution",
    "spark.sql.autoBroadcastJoinThreshold": "largest table broadcast in a join",
    "spark.sql.caseSensitive": "case-sensitive column names",
    "spark.sql.legacy.timeParserPolicy": "date and time parsing rules",
    "spark.sql.datetime.java8API.enabled": "java.time values for dates and timestamps",
    "spark.sql.decimalOperations.allowPrecisionLoss": "decimal arithmetic precision",
    "spark.sql.storeAssignmentPolicy": "casting on INSERT",
    "spark.sql.parquet.compression.codec": "compression of the tables one creates",
    "spark.sql.files.maxPartitionBytes": "bytes per partition when reading files",
}

#: The values an allowed numeric setting may take (too many partitions or too small ones
#: exhaust the driver).
SETTING_BOUNDS: dict[str, tuple[int, int]] = {
    "spark.sql.shuffle.partitions": (1, 10_000),
    "spark.sql.autoBroadcastJoinThreshold": (-1, 1 << 30),
    "spark.sql.files.maxPartitionBytes": (1 << 20, 1 << 34),
}

#: Settings nobody changes through the server, admins included: ``${...}`` substitution
#: would let a statement read the server's environment (``${env:...}``) and change after the
#: policy read it; RPC authentication and the file-query switch are the server's.
FIXED_SETTINGS = ("spark.sql.variable.substitute", "spark.sql.runSQLOnFiles", "spark.authenticate")

#: Built-in functions an analyst may not call: the rule each breaks, and why.
DENIED_FUNCTIONS: dict[str, tuple[str, str]] = {
    **dict.fromkeys(
        ("reflect", "java_method", "try_reflect"),
        ("no_code", "calls any Java method in the server (System.exit, getenv...)"),
    ),
    **dict.fromkeys(
        ("from_protobuf", "to_protobuf"),
        ("no_file_access", "reads a descriptor file from the server's disk"),
    ),
    "from_xml": (
        "no_file_access",
        "reads the XSD file or URL its rowValidationXSDPath option names",
    ),
}

#: Functions the deidentified role may not call: with them it could make the ids, pseudonyms
#: and date shifts of values it guesses, and so test its guesses (the views call them for it).
DEIDENTIFIED_DENIED_FUNCTIONS = frozenset(
    {"dicom_file_id", "dicom_pseudonym", "dicom_deidentify", "dicom_export"}
)

#: Statements refused by a rule of their own (the default-deny rule would refuse them too;
#: this names why).
DENIED: dict[str, str] = {
    "AddJarsCommand": "no_code",
    "AddFilesCommand": "no_code",
    "AddArchivesCommand": "no_code",
    "ScriptTransformation": "no_code",
    "CreateFunction": "no_code",
    "CreateSQLFunctionCommand": "no_code",
    "InsertIntoDir": "no_file_access",
    "LoadData": "no_file_access",
    "WhileStatement": "no_loops_in_scripts",
    "RepeatStatement": "no_loops_in_scripts",
    "LoopStatement": "no_loops_in_scripts",
    "ForStatement": "no_loops_in_scripts",
    "UnresolvedExecuteImmediate": "no_dynamic_sql",
}


class PolicyViolation(DicomsqlError):
    """A statement the policy refuses; names the rule (SQLSTATE 42501, insufficient privilege)."""

    sqlstate = "42501"

    def __init__(self, rule: str, what: str) -> None:
        self.rule = rule
        super().__init__(f"refused by the analyst policy, rule {rule} ({RULES[rule]}): {what}")


@dataclass(frozen=True)
class Functions:
    """The functions an analyst may call: the scalar and table functions of the served
    session (Spark's built-ins and the served ones) when the server started, less
    :data:`DENIED_FUNCTIONS`."""

    scalar: frozenset[str]
    table: frozenset[str]

    @classmethod
    def of(cls, spark: Any) -> Functions:
        state = spark._jsparkSession.sessionState()
        names = [
            _names(state.functionRegistry().listFunction()),
            _names(state.tableFunctionRegistry().listFunction()),
        ]
        return cls(*(frozenset(n for n in group if n not in DENIED_FUNCTIONS) for group in names))

    def check(self, name_parts: list[str], table: bool = False) -> None:
        """Raise :class:`PolicyViolation` unless the function so named may be called."""
        *qualifier, name = [part.lower() for part in name_parts]
        allowed = self.table if table else self.scalar
        if name in DENIED_FUNCTIONS:
            rule, why = DENIED_FUNCTIONS[name]
            raise PolicyViolation(rule, f"{name} {why}")
        if (
            qualifier
            not in ([], ["builtin"], ["system", "builtin"], ["session"], ["system", "session"])
            or name not in allowed
        ):
            raise PolicyViolation("function_not_allowed", ".".join(name_parts))


def _names(identifiers: Any) -> Iterator[str]:
    for identifier in _seq(identifiers):
        yield identifier.funcName().lower()


@dataclass
class Scope:
    """What a statement is checked against: the user's own database, the shared databases,
    the session (its current database and temporary views), the functions and the data
    roots check of the ``dicom`` source's paths."""

    own_database: str
    shared_databases: frozenset[str]
    functions: Functions
    session: Any  # the client's SparkSession
    served_views: frozenset[str] = (
        frozenset()
    )  # the served session's temporary views (not the client's own)
    check_paths: Callable[[list[str]], None] = lambda paths: None
    #: the folders ``dicom_export`` may write under (``<export root>/<user>``; none: it may not)
    export_folders: tuple[str, ...] = ()
    #: the deidentified role: no view over files (their headers are raw)
    deidentified: bool = False
    in_script: bool = field(default=False, init=False)

    @property
    def readable(self) -> frozenset[str]:
        return self.shared_databases | {self.own_database}

    def current_database(self) -> str:
        return self.session.catalog.currentDatabase()

    def is_temp_view(self, name: str) -> bool:
        return bool(
            self.session._jsparkSession.sessionState()
            .catalog()
            .isTempView(_scala_seq(self.session, [name]))
        )


def check(plan: Any, scope: Scope) -> None:
    """Raise :class:`PolicyViolation` unless the parsed ``plan`` (a py4j LogicalPlan) of an
    analyst's statement is allowed in ``scope`` (checks may run at once: each on its own copy)."""
    _check_plan(plan, replace(scope))


def _check_plan(plan: Any, scope: Scope) -> None:
    for node in _nodes(plan):
        name = node.getClass().getSimpleName()
        if name in DENIED:
            raise PolicyViolation(DENIED[name], _statement_name(name))
        rule = NODES.get(name)
        if rule is None:
            raise PolicyViolation(
                "default_deny", f"{_statement_name(name)} is not an analyst statement"
            )
        rule(node, scope)
        for expression in _expressions(node):
            _check_expression(expression, scope)


def check_setting(key: str, value: str | None, admin: bool = False) -> None:
    """Raise :class:`PolicyViolation` unless ``key`` may be set to ``value`` (reading any
    key, and RESET, are allowed)."""
    if value is None:
        return
    if key in FIXED_SETTINGS:
        raise PolicyViolation("setting_not_allowed", f"{key} is fixed by the server")
    if not admin and key not in SETTINGS:
        raise PolicyViolation("setting_not_allowed", f"{key} (allowed: {', '.join(SETTINGS)})")
    if not admin and key in SETTING_BOUNDS:
        low, high = SETTING_BOUNDS[key]
        if not value.strip().lstrip("-").isdigit() or not low <= int(value) <= high:
            raise PolicyViolation(
                "setting_not_allowed",
                f"{key} must be a whole number from {low} to {high}, got {value!r}",
            )


# --- walking the plan ---------------------------------------------------------------------


def _seq(scala_seq: Any) -> Iterator[Any]:
    iterator = scala_seq.iterator()
    while iterator.hasNext():
        yield iterator.next()


def _scala_seq(spark: Any, items: list[str]) -> Any:
    jvm = spark.sparkContext._jvm
    return jvm.scala.jdk.javaapi.CollectionConverters.asScala(
        jvm.java.util.ArrayList(items)
    ).toSeq()


def _option(scala_option: Any) -> Any:
    return scala_option.get() if scala_option.isDefined() else None


def _nodes(plan: Any) -> Iterator[Any]:
    """``plan`` and every plan node in it, parents first: children, and inner plans
    (subqueries, CTEs)."""
    logical_plan = (
        plan.getClass()
        .getClassLoader()
        .loadClass("org.apache.spark.sql.catalyst.plans.logical.LogicalPlan")
    )
    pending = [plan]
    while pending:
        node = pending.pop()
        yield node
        if (
            node.getClass().getSimpleName() == "SingleStatement"
        ):  # a script's statement: its children are its plan's
            pending.append(node.parsedPlan())
            continue
        inner = [tree for tree in _seq(node.innerChildren()) if logical_plan.isInstance(tree)]
        pending.extend(reversed([*_seq(node.children()), *inner]))


def _expressions(node: Any) -> Iterator[Any]:
    pending = list(_seq(node.expressions()))
    while pending:
        expression = pending.pop()
        yield expression
        pending.extend(_seq(expression.children()))


def _check_expression(expression: Any, scope: Scope) -> None:
    kind = expression.getClass().getSimpleName()
    if kind == "ExpressionWithUnresolvedIdentifier":
        raise PolicyViolation(
            "function_not_allowed",
            "IDENTIFIER(...) as a function name (the function is known only when it runs)",
        )
    if kind == "UnresolvedFunction":
        scope.functions.check(list(_seq(expression.nameParts())))
        _deidentified_function(list(_seq(expression.nameParts())), scope)
    elif kind == "UnresolvedGenerator":
        identifier = expression.name()
        name = [
            *([_option(identifier.database())] if identifier.database().isDefined() else []),
            identifier.funcName(),
        ]
        scope.functions.check(name)
        _deidentified_function(name, scope)


def _deidentified_function(name_parts: list[str], scope: Scope) -> None:
    if scope.deidentified and name_parts[-1].lower() in DEIDENTIFIED_DENIED_FUNCTIONS:
        raise PolicyViolation(
            "deidentified_only",
            f"{name_parts[-1]} would make the ids or pseudonyms of guessed values",
        )


def _statement_name(node_class: str) -> str:
    """``CreateTempViewUsing`` -> ``CreateTempViewUsing`` (the plan node names the statement)."""
    return node_class.rstrip("$")


# --- the checks of allowed nodes ----------------------------------------------------------


def _allowed(node: Any, scope: Scope) -> None:
    """A node whose children and expressions are checked, nothing more."""


def _parts(node: Any, getter: str = "multipartIdentifier") -> list[str]:
    return list(_seq(getattr(node, getter)()))


def nodes_named(plan: Any, name: str) -> list[Any]:
    """The nodes of class ``name`` anywhere in ``plan`` (scripts and subqueries included)."""
    return [node for node in _nodes(plan) if node.getClass().getSimpleName() == name]


def names_of(node: Any) -> list[str]:
    """The parts of the name an UnresolvedNamespace, UnresolvedRelation and the like hold."""
    return _parts(node)


def _database_of(parts: list[str], scope: Scope) -> str | None:
    """The database a multi-part table name is in (None: a one-part name, which is a temporary
    view, a CTE or a table of the current database)."""
    if len(parts) == 1:
        return None
    if len(parts) == 3 and parts[0].lower() == "spark_catalog":
        return parts[1].lower()
    if len(parts) == 2:
        return parts[0].lower()
    raise PolicyViolation("read_allowed_databases", ".".join(parts))


def _read(parts: list[str], scope: Scope) -> None:
    database = _database_of(parts, scope)
    if database is not None and database not in scope.readable:
        raise PolicyViolation("read_allowed_databases", f"{'.'.join(parts)} is in {database}")


def _relation(node: Any, scope: Scope) -> None:
    _read(_parts(node), scope)
    if not node.options().isEmpty():
        raise PolicyViolation("no_file_access", f"{'.'.join(_parts(node))} read WITH options")


def _read_target(node: Any, scope: Scope) -> None:
    _read(_parts(node), scope)


def _namespace(node: Any, scope: Scope) -> None:
    parts = [p.lower() for p in _parts(node)]
    if parts and parts[-1] not in scope.readable:
        raise PolicyViolation("read_allowed_databases", ".".join(parts))


def _write_target(parts: list[str], scope: Scope) -> None:
    """``parts`` names a table of the user's own database."""
    database = _database_of(parts, scope) or scope.current_database().lower()
    if database != scope.own_database:
        raise PolicyViolation(
            "write_own_database", f"{'.'.join(parts)} is in {database}, not {scope.own_database}"
        )


def _managed_parquet(node: Any, scope: Scope) -> None:
    """CREATE TABLE [AS SELECT]: a managed Parquet table (no LOCATION, path, other format
    or Hive serde) in the own database."""
    _write_target(list(_seq(node.name().nameParts())), scope)
    spec = node.tableSpec()
    provider = _option(spec.provider())
    if provider is not None and provider.lower() != "parquet":
        raise PolicyViolation("write_own_database", f"tables are Parquet, not {provider}")
    if spec.location().isDefined() or spec.external() or _option(spec.serde()) is not None:
        raise PolicyViolation(
            "no_file_access", "CREATE TABLE with a LOCATION, EXTERNAL or a Hive format"
        )
    if not spec.optionExpression().options().isEmpty():
        raise PolicyViolation("no_file_access", "CREATE TABLE with OPTIONS")


def _insert(node: Any, scope: Scope) -> None:
    table = node.table()
    if table.getClass().getSimpleName() != "UnresolvedRelation":
        raise PolicyViolation("default_deny", "INSERT into something other than a table")
    parts = _parts(table)
    if len(parts) == 1 and scope.is_temp_view(parts[0]):  # a view over files would write them
        raise PolicyViolation("write_own_database", f"INSERT into the temporary view {parts[0]}")
    _write_target(parts, scope)
    if not node.partitionSpec().isEmpty():
        raise PolicyViolation("write_own_database", "INSERT with a PARTITION clause")
    if any(key != _WRITE_PRIVILEGES for key in table.options().keySet()):
        raise PolicyViolation("no_file_access", "INSERT ... WITH options")


#: The option Spark's parser itself gives an INSERT's target.
_WRITE_PRIVILEGES = "__required_write_privileges__"


def _drop_table(node: Any, scope: Scope) -> None:
    _write_target(list(_seq(node.child().nameParts())), scope)


def _temp_view(node: Any, scope: Scope) -> None:
    if node.viewType().toString() != "LocalTempView":
        raise PolicyViolation("temporary_views_only", f"{node.viewType().toString()} views")


def _own_database_view(node: Any, scope: Scope) -> None:
    """CREATE [OR REPLACE] VIEW and ALTER VIEW ... AS in the own database over tables of the
    own database only (``dicomsql ingest`` publishes its catalogs so): what such a view reads,
    checked now, is the analyst's own, whatever the policy lets it read later."""
    child = node.child()
    if child.getClass().getSimpleName() == "UnresolvedIdentifier":  # CREATE VIEW
        _write_target(list(_seq(child.nameParts())), scope)
    else:  # ALTER VIEW ... AS
        _persistent_view(_parts(child), scope)
    for relation in nodes_named(node.query(), "UnresolvedRelation"):
        parts = _parts(relation)
        database = _database_of(parts, scope) or scope.current_database().lower()
        if database != scope.own_database:
            raise PolicyViolation(
                "temporary_views_only",
                f"a view of {scope.own_database} reads only its tables, not {'.'.join(parts)}",
            )


def _persistent_view(parts: list[str], scope: Scope) -> None:
    """``parts`` names a view of the own database, not a temporary view (the served ones, or
    the session's, are replaced only by CREATE OR REPLACE TEMPORARY VIEW)."""
    if len(parts) == 1 and scope.is_temp_view(parts[0]):
        raise PolicyViolation(
            "temporary_views_only", f"ALTER VIEW of the temporary view {parts[0]}"
        )
    _write_target(parts, scope)


def _dicom_paths(options: dict[str, str]) -> list[str]:
    from ..source.options import parse_options

    parsed = parse_options(options)
    return [*parsed.paths, *parsed.files]


def _tfrecord_paths(options: dict[str, str]) -> list[str]:
    from ..source.tfrecord import read_options

    return list(read_options(options).paths)


#: The data sources that connect to other hosts: admins only.
NETWORK_SOURCES = frozenset({"dimse"})
#: The data sources an analyst's view may read files with, and the paths of their options.
FILE_SOURCES: dict[str, Callable[[dict[str, str]], list[str]]] = {
    "dicom": _dicom_paths,
    "tfrecord": _tfrecord_paths,
}


def _dicom_view(node: Any, scope: Scope) -> None:
    """CREATE TEMPORARY VIEW ... USING dicom (or tfrecord) OPTIONS (path ...) under the data
    roots (the source checks them again when it lists and opens files)."""
    if getattr(node, "global")():
        raise PolicyViolation("temporary_views_only", "global temporary views")
    if scope.deidentified:
        raise PolicyViolation("deidentified_only", "a view USING a source reads raw files")
    provider = node.provider().lower()
    if provider in NETWORK_SOURCES:
        raise PolicyViolation("no_network", f"USING {node.provider()} connects to another host")
    if provider not in FILE_SOURCES:
        raise PolicyViolation(
            "no_file_access", f"USING {node.provider()}: only USING dicom or tfrecord reads files"
        )
    try:
        given = {pair._1(): pair._2() for pair in _seq(node.options().toSeq())}
        scope.check_paths(FILE_SOURCES[provider](given))
    except DicomsqlError as refused:
        raise PolicyViolation("no_file_access", str(refused)) from None


def _own_view(parts: list[str], scope: Scope) -> None:
    name = parts[-1]
    if len(parts) != 1 or not scope.is_temp_view(name) or name.lower() in scope.served_views:
        raise PolicyViolation("own_views_only", ".".join(parts))


def _cache(node: Any, scope: Scope) -> None:
    _own_view(_parts(node.table()), scope)


def _drop_view(node: Any, scope: Scope) -> None:
    """DROP VIEW of the session's own temporary view, while in the own database (where a name
    that is no temporary view, or no longer one later in a script, names a view of the own
    database)."""
    parts = list(_seq(node.child().nameParts()))
    if len(parts) != 1 or parts[0].lower() in scope.served_views:
        raise PolicyViolation("own_views_only", ".".join(parts))
    _write_target(parts, scope)


def _rename(node: Any, scope: Scope) -> None:
    """ALTER TABLE a RENAME TO b within the own database (``dicomsql ingest`` swaps tables so)."""
    if node.isView():
        raise PolicyViolation("temporary_views_only", "ALTER VIEW ... RENAME")
    _write_target(_parts(node.child()), scope)
    _write_target(list(_seq(node.newName())), scope)


def _set(node: Any, scope: Scope) -> None:
    pair = _option(node.kv())
    if pair is not None:
        check_setting(pair._1(), _option(pair._2()))


def _use(node: Any, scope: Scope) -> None:
    if scope.in_script:
        raise PolicyViolation("no_use_in_scripts", "USE")


def _script(node: Any, scope: Scope) -> None:
    scope.in_script = True
    if not node.handlers().isEmpty():
        raise PolicyViolation("default_deny", "exception handlers in SQL scripts")


def _inner_plan(getter: str) -> Callable[[Any, Scope], None]:
    """The check of a node holding a plan of its own (not a child): EXPLAIN, DESCRIBE QUERY."""

    def check_inner(node: Any, scope: Scope) -> None:
        _check_plan(getattr(node, getter)(), scope)

    return check_inner


def _table_function(node: Any, scope: Scope) -> None:
    name = list(_seq(node.name()))
    scope.functions.check(name, table=True)
    _deidentified_function(name, scope)
    if name[-1].lower() in WRITING_FUNCTIONS:
        _export_folder(name[-1].lower(), list(_seq(node.functionArgs())), scope)


#: Table functions that write files, and the position of their folder argument.
WRITING_FUNCTIONS = {"dicom_export": ("out_dir", 1), "tfrecord_export": ("out_dir", 1)}


def _export_folder(function: str, arguments: list[Any], scope: Scope) -> None:
    """An analyst's export goes only under their own folder of the export roots, named by
    a string literal once (symlinks resolved); where each file is written, the workers check
    again that it stays under that folder and the export roots."""
    if not scope.export_folders:
        raise PolicyViolation(
            "no_file_access", f"{function} writes files (admins only, unless --analyst-exports)"
        )
    name, position = WRITING_FUNCTIONS[function]
    named = [
        a.value()
        for a in arguments
        if a.getClass().getSimpleName() == "NamedArgumentExpression" and a.key().lower() == name
    ]
    positional = [a for a in arguments if a.getClass().getSimpleName() != "NamedArgumentExpression"]
    if named and len(positional) > position:
        folder = None  # given twice: which one counts is Spark's to say, not the policy's
    else:
        folder = named[0] if named else positional[position] if len(positional) > position else None
    text = (
        folder.value().toString()
        if folder is not None
        and folder.getClass().getSimpleName() == "Literal"
        and folder.dataType().typeName() == "string"
        and folder.value() is not None
        else None
    )
    normal = os.path.realpath(text) if text else ""  # symlinks resolved, as the write does
    folders = [os.path.realpath(own) for own in scope.export_folders]
    if not any(normal == f or normal.startswith(f.rstrip(os.sep) + os.sep) for f in folders):
        raise PolicyViolation(
            "no_file_access",
            f"{function}'s {name} must be a string literal under {', '.join(scope.export_folders)}",
        )


#: Every plan node an analyst's statement may contain, with what is checked of it (its
#: children and expressions are always checked too).
NODES: dict[str, Callable[[Any, Scope], None]] = {
    # queries
    **dict.fromkeys(
        (
            "Project",
            "Filter",
            "Aggregate",
            "Join",
            "LateralJoin",
            "Union",
            "Intersect",
            "Except",
            "Distinct",
            "Sort",
            "GlobalLimit",
            "LocalLimit",
            "Offset",
            "SubqueryAlias",
            "UnresolvedWith",
            "OneRowRelation",
            "LocalRelation",
            "UnresolvedInlineTable",
            "UnresolvedHaving",
            "Generate",
            "Pivot",
            "Unpivot",
            "Sample",
            "RepartitionByExpression",
            "UnresolvedHint",
            "WithWindowDefinition",
            "PipeOperator",
            "UnresolvedTVFAliases",
            "UnresolvedSubqueryColumnAliases",
            "CurrentNamespace$",
            "UnresolvedFunctionName",
        ),
        _allowed,
    ),
    "UnresolvedRelation": _relation,
    "UnresolvedTableValuedFunction": _table_function,
    "ExplainCommand": _inner_plan("logicalPlan"),
    "DescribeQueryCommand": _inner_plan("plan"),
    # SHOW and DESCRIBE (what they name is read)
    **dict.fromkeys(
        (
            "ShowTables",
            "ShowTablesExtended",
            "ShowViews",
            "ShowColumns",
            "ShowFunctions",
            "ShowCreateTable",
            "ShowTableProperties",
            "ShowPartitions",
            "ShowCatalogsCommand",
            "ShowCurrentNamespaceCommand",
            "DescribeRelation",
            "DescribeColumn",
            "DescribeNamespace",
            "DescribeFunction",
        ),
        _allowed,
    ),
    "UnresolvedTableOrView": _read_target,
    "UnresolvedTable": _read_target,
    "UnresolvedNamespace": _namespace,
    # the session
    "SetCommand": _set,
    "ResetCommand": _allowed,
    "SetCatalogAndNamespace": _use,
    "CreateViewCommand": _temp_view,
    "CreateView": _own_database_view,
    "AlterViewAs": _own_database_view,
    "SetViewProperties": lambda node, scope: _persistent_view(_parts(node.child()), scope),
    "CreateTempViewUsing": _dicom_view,
    "CacheTable": _cache,
    "CacheTableAsSelect": _allowed,
    "UncacheTable": _cache,
    "DropView": _drop_view,
    # the own database
    "CreateTableAsSelect": _managed_parquet,
    "CreateTable": _managed_parquet,
    "UnresolvedIdentifier": _allowed,  # what it names is checked by the statement holding it
    "UnresolvedView": _allowed,  # so too
    "InsertIntoStatement": _insert,
    "DropTable": _drop_table,
    "RenameTable": _rename,
    # SQL scripting
    "CompoundBody": _script,
    **dict.fromkeys(
        (
            "SingleStatement",
            "IfElseStatement",
            "LeaveStatement",
            "SearchedCaseStatement",
            "SimpleCaseStatement",
            "CreateVariable",
            "SetVariable",
            "DropVariable",
        ),
        _allowed,
    ),
}

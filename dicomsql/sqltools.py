"""SQL text tooling with sqlglot: split scripts into statements, bind ``${name}`` and
``:name`` placeholders as quoted literals or identifiers (through the syntax tree, never by
string splicing) and translate other dialects to Spark SQL."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.dialects.spark import Spark
from sqlglot.errors import ErrorLevel, ParseError, TokenError, UnsupportedError
from sqlglot.tokens import Token, Tokenizer, TokenType

from .errors import DicomsqlError

__all__ = [
    "DIALECTS",
    "Statement",
    "split_statements",
    "take_statements",
    "parse_statement",
    "bind",
    "to_spark",
    "string_literal",
    "identifier",
    "qualified",
]

DIALECTS = ("spark", "postgres", "trino", "duckdb", "bigquery", "snowflake", "mysql")
"""The dialects ``dicomsql sql --dialect`` reads; every one but ``spark`` is translated."""

# ``END IF``, ``END WHILE``... close constructs that do not count as blocks (only BEGIN and
# CASE end with a bare END, or END CASE).
_NOT_BLOCK_ENDS = frozenset({"IF", "WHILE", "LOOP", "REPEAT", "FOR"})
# BEGIN followed by these is a transaction (postgres, mysql), not a block.
_NOT_BLOCK_STARTS = frozenset({";", "TRANSACTION", "WORK"})
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
_NAME = re.compile(r"[A-Za-z0-9_]+")
# Where a placeholder stands for a name: the (node type, argument) slots of sqlglot's tree.
_NAME_SLOTS = {
    exp.Table: ("this", "db", "catalog"),
    exp.Column: ("this", "table", "db", "catalog"),
    exp.Dot: ("this", "expression"),
    exp.TableAlias: ("this",),
    exp.Alias: ("alias",),
}


@dataclass(frozen=True)
class Statement:
    """One statement of a script: its text (comments around it dropped) and first line."""

    text: str
    line: int


def _dialect(name: str) -> Dialect:
    if name not in DIALECTS:
        raise DicomsqlError(f"unknown SQL dialect {name!r}: expected one of {', '.join(DIALECTS)}")
    return Dialect.get_or_raise(name)


class _SparkWords(Spark.Tokenizer):
    """Spark's tokenizer reading SHOW, EXECUTE... statements word by word (sqlglot's reads
    all that follows those words as one raw string), so that placeholders there are seen."""

    COMMANDS: set = set()


def _tokens(text: str, tokenizer: Tokenizer) -> list[Token]:
    try:
        return tokenizer.tokenize(text)
    except TokenError as exc:
        raise DicomsqlError(f"cannot split the SQL into statements: {exc}") from None


def split_statements(script: str, dialect: str = "spark") -> list[Statement]:
    """Split ``script`` on the semicolons that end statements. Semicolons inside strings,
    quoted identifiers, comments and SQL-scripting blocks (``[label:] BEGIN ... END``, with
    IF, WHILE, CASE... inside) do not split: a block is one statement.

    >>> [s.text for s in split_statements("SELECT 'a;b'; -- done;\\nSELECT 2;")]
    ["SELECT 'a;b'", 'SELECT 2']
    >>> split_statements("BEGIN\\n  SELECT 1;\\nEND;\\nSELECT 2")[1]
    Statement(text='SELECT 2', line=4)
    """
    tokens = _tokens(script, _dialect(dialect).tokenizer())
    return _cut(script, tokens, _statement_ends(tokens))


def _cut(script: str, tokens: Sequence[Token], ends: Iterable[int]) -> list[Statement]:
    """The statements of ``script`` between the tokens at ``ends`` (indexes of the
    semicolons ending statements, or ``len(tokens)``)."""
    statements, start = [], 0
    for end in ends:
        if end > start:
            statements.append(
                Statement(script[tokens[start].start : tokens[end - 1].end + 1], tokens[start].line)
            )
        start = end + 1
    return statements


def take_statements(buffer: str) -> tuple[list[Statement], str]:
    """The statements of ``buffer`` that a semicolon ends (as :func:`split_statements`
    splits them), and the text after the last of them: what an interactive shell runs, and
    what it keeps reading. A string or comment still open ends no statement.

    >>> take_statements("SELECT 1; SELECT 'a;")
    ([], "SELECT 1; SELECT 'a;")
    >>> take_statements("SELECT 1; SELECT 2")
    ([Statement(text='SELECT 1', line=1)], ' SELECT 2')
    >>> take_statements("BEGIN\\n  SELECT 1;")
    ([], 'BEGIN\\n  SELECT 1;')
    """
    try:
        tokens = _dialect("spark").tokenizer().tokenize(buffer)
    except TokenError:
        return [], buffer
    ends = [end for end in _statement_ends(tokens) if end < len(tokens)]
    if not ends:
        return [], buffer
    return _cut(buffer, tokens, ends), buffer[tokens[ends[-1]].end + 1 :]


def _statement_ends(tokens: Sequence[Token]) -> Iterator[int]:
    """Indexes of the semicolons ending statements, then ``len(tokens)``.

    Inside a BEGIN block, BEGIN and CASE open and END closes (END CASE too, but END IF,
    END WHILE... close what never counted). Outside blocks BEGIN opens one only as a
    statement's first word (after an optional ``label:``), so a column named ``begin`` is safe.
    """
    depth, start = 0, 0
    for i, token in enumerate(tokens):
        kind = token.token_type
        following = tokens[i + 1].text.upper() if i + 1 < len(tokens) else ";"
        if kind == TokenType.SEMICOLON and not depth:
            yield i
            start = i + 1
        elif (
            kind == TokenType.BEGIN
            and following not in _NOT_BLOCK_STARTS
            and (depth or _first_word(tokens, start, i))
        ):
            depth += 1
        elif depth and kind == TokenType.CASE and tokens[i - 1].token_type != TokenType.END:
            depth += 1
        elif depth and kind == TokenType.END and following not in _NOT_BLOCK_ENDS:
            depth -= 1
    yield len(tokens)


def _first_word(tokens: Sequence[Token], start: int, i: int) -> bool:
    """Whether ``tokens[i]`` is the first word of the statement starting at ``start``, or
    follows only its ``label:``."""
    return i == start or (i == start + 2 and tokens[start + 1].token_type == TokenType.COLON)


def _has_placeholders(tokens: Sequence[Token]) -> bool:
    """Whether ``tokens`` hold a ``${name}`` or ``:name`` placeholder, found without parsing."""
    return any(_starts_placeholder(tokens, i) for i in range(len(tokens)))


def _starts_placeholder(tokens: Sequence[Token], i: int) -> bool:
    """Whether ``tokens[i]`` starts ``${name}`` or ``:name``. A colon right after a word
    (``label:``, ``STRUCT<a:INT>``) starts none, and ``${env:HOME}``-style references are
    Spark's own substitutions, left to Spark."""
    token, following = tokens[i], tokens[i + 1 : i + 4]
    if token.token_type == TokenType.PARAMETER:
        braces = [t.token_type for t in following[::2]]
        return braces == [TokenType.L_BRACE, TokenType.R_BRACE] and bool(
            _NAME.fullmatch(following[1].text)
        )
    if (
        token.token_type == TokenType.COLON
        and following
        and _touch(token, following[0])
        and _NAME.fullmatch(following[0].text)
    ):
        return not (i and _touch(tokens[i - 1], token) and _NAME.fullmatch(tokens[i - 1].text))
    return False


def _touch(left: Token, right: Token) -> bool:
    return left.end + 1 == right.start


def parse_statement(statement: Statement, dialect: str = "spark") -> exp.Expression:
    """The syntax tree of ``statement`` read as ``dialect``; an error saying where sqlglot
    stopped, also for a statement it reads only as an opaque command.

    >>> parse_statement(Statement("SELECT *\\nFROM t WHERE (a = 1", 3))
    Traceback (most recent call last):
    dicomsql.errors.DicomsqlError: statement at line 3: sqlglot cannot parse it as spark: Expecting ) at line 4, column 19 (near '1')
    """
    try:
        tree = sqlglot.parse_one(statement.text, read=_dialect(dialect))
    except (ParseError, TokenError) as exc:
        problem = _problem(exc, statement)
        raise DicomsqlError(
            f"statement at line {statement.line}: sqlglot cannot parse it as {dialect}: {problem}"
        ) from None
    if isinstance(tree, exp.Command):
        raise DicomsqlError(
            f"statement at line {statement.line}: sqlglot does not parse it as {dialect}, "
            f"it reads it only as an opaque {tree.name} command"
        )
    return tree


def _problem(exc: ParseError | TokenError, statement: Statement) -> str:
    """What sqlglot reports, with the place in the script rather than in the statement."""
    error = exc.errors[0] if isinstance(exc, ParseError) and exc.errors else {}
    if error.get("line") is None:
        return str(exc).splitlines()[0]
    line = statement.line + error["line"] - 1
    description = re.sub(r"<class '(?:\w+\.)*(\w+)'>", r"\1", error["description"])
    return f"{description} at line {line}, column {error['col']} (near {error['highlight']!r})"


def bind(
    tree: exp.Expression, variables: Mapping[str, str], dialect: str = "spark"
) -> exp.Expression:
    """A copy of ``tree`` with each named placeholder (``${name}``, ``:name``, and the
    dialect's own: ``@name``, ``$1``) replaced by its value in ``variables``: a quoted
    identifier where it stands for a name (a table, possibly ``db.table``; a column's
    qualifier; an alias), elsewhere a number literal for a plain number (no leading zero)
    and a string literal for anything else. Positional ``?`` markers are left alone.

    >>> tree = sqlglot.parse_one("SELECT * FROM ${t} WHERE id = :id AND n > ${n}", read="spark")
    >>> print(bind(tree, {"t": "dicom.ct", "id": "x' OR 'a'='a", "n": "3"}).sql("spark"))
    SELECT * FROM `dicom`.`ct` WHERE id = 'x\\' OR \\'a\\'=\\'a' AND n > 3
    """
    tree = tree.copy()
    for node in list(tree.find_all(exp.Parameter, exp.Placeholder)):
        if node.this is None:  # a positional ? marker
            continue
        written = node.sql(dialect=dialect)
        if node.name not in variables:
            raise DicomsqlError(f"no value for {written}: give one with --var {node.name}=VALUE")
        value = variables[node.name]
        if node.arg_key in _NAME_SLOTS.get(type(node.parent), ()):
            _bind_name(node, value, written)
        else:
            node.replace(
                exp.Literal.number(value) if _NUMBER.fullmatch(value) else exp.Literal.string(value)
            )
    return tree


def _bind_name(node: exp.Expression, value: str, written: str) -> None:
    """Replace ``node`` by the quoted name ``value``; a dotted value names a table's
    database (and catalog) where the placeholder is a whole table name."""
    parent = node.parent
    whole_table = (
        isinstance(parent, exp.Table) and node.arg_key == "this" and not parent.args.get("db")
    )
    parts = value.split(".")
    if len(parts) > (3 if whole_table else 1) or not all(_NAME.fullmatch(part) for part in parts):
        expected = "a name or db.table" if whole_table else "a plain name"
        raise DicomsqlError(
            f"{written} stands for a name, so --var {node.name} must be {expected} "
            f"(letters, digits and _), got {value!r}"
        )
    node.replace(exp.to_identifier(parts[-1], quoted=True))
    for key, part in zip(("db", "catalog"), reversed(parts[:-1])):
        parent.set(key, exp.to_identifier(part, quoted=True))


def to_spark(
    statement: Statement, variables: Mapping[str, str] | None = None, dialect: str = "spark"
) -> Statement:
    """``statement`` as the Spark SQL to run: read as ``dialect``, its placeholders bound to
    ``variables`` (see :func:`bind`), written for Spark; a construct sqlglot cannot write
    for Spark is an error. A Spark statement without placeholders is kept exactly as written,
    so sqlglot need not understand it (SQL scripting blocks, syntax newer than sqlglot).

    >>> to_spark(Statement("SELECT a::int FROM t WHERE d = :day", 1), {"day": "2024-01-31"}, "postgres").text
    "SELECT CAST(a AS INT) FROM t WHERE d = '2024-01-31'"
    """
    if dialect == "spark" and not _has_placeholders(
        _tokens(statement.text, _SparkWords(dialect="spark"))
    ):
        return statement
    tree = parse_statement(statement, dialect)
    try:
        text = bind(tree, variables or {}, dialect).sql(
            dialect="spark", unsupported_level=ErrorLevel.RAISE
        )
    except DicomsqlError as exc:
        raise DicomsqlError(f"statement at line {statement.line}: {exc}") from None
    except UnsupportedError as exc:
        raise DicomsqlError(
            f"statement at line {statement.line}: sqlglot cannot write it as Spark SQL: {exc}"
        ) from None
    return Statement(text, statement.line)


def string_literal(value: str) -> str:
    """``value`` as a Spark SQL string literal.

    >>> print(string_literal("it's"))
    'it\\'s'
    """
    return exp.Literal.string(value).sql(dialect="spark")


def qualified(name: str) -> str:
    """A dotted name (``database.table``) with each part quoted.

    >>> qualified("dicomsql_catalog.ct")
    '`dicomsql_catalog`.`ct`'
    """
    return ".".join(identifier(part) for part in name.split("."))


def identifier(name: str) -> str:
    """``name`` as a quoted Spark SQL identifier.

    >>> identifier("ct"), identifier("my `table`")
    ('`ct`', '`my ``table```')
    """
    return exp.to_identifier(name, quoted=True).sql(dialect="spark")

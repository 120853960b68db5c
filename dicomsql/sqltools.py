"""SQL text tooling with sqlglot (Spark dialect): split scripts into statements and quote
values as literals or identifiers, never by string splicing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.errors import TokenError
from sqlglot.tokens import TokenType

from .errors import DicomsqlError

__all__ = ["Statement", "split_statements", "string_literal", "identifier"]

_SPARK = Spark()


@dataclass(frozen=True)
class Statement:
    """One statement of a script: its text (comments around it dropped) and first line."""

    text: str
    line: int


def split_statements(script: str) -> list[Statement]:
    """Split ``script`` on the semicolons that end statements; semicolons inside strings,
    quoted identifiers and comments do not split.

    >>> [s.text for s in split_statements("SELECT 'a;b'; -- done;\\nSELECT 2;")]
    ["SELECT 'a;b'", 'SELECT 2']
    """
    try:
        tokens = _SPARK.tokenize(script)
    except TokenError as exc:
        raise DicomsqlError(f"cannot split the SQL into statements: {exc}") from None
    statements: list[Statement] = []
    current: list = []
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            if current:
                statements.append(_statement(script, current))
            current = []
        else:
            current.append(token)
    if current:
        statements.append(_statement(script, current))
    return statements


def _statement(script: str, tokens: list) -> Statement:
    return Statement(script[tokens[0].start : tokens[-1].end + 1], tokens[0].line)


def string_literal(value: str) -> str:
    """``value`` as a Spark SQL string literal.

    >>> print(string_literal("it's"))
    'it\\'s'
    """
    return exp.Literal.string(value).sql(dialect="spark")


def identifier(name: str) -> str:
    """``name`` as a quoted Spark SQL identifier.

    >>> identifier("ct"), identifier("my `table`")
    ('`ct`', '`my ``table```')
    """
    return exp.to_identifier(name, quoted=True).sql(dialect="spark")

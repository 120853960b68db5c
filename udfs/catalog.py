"""SQL functions about the function library itself."""

from __future__ import annotations

from collections.abc import Iterator

from .registry import FUNCTIONS, Table, sql_function


@sql_function(
    returns=Table(
        (
            ("name", "string"),
            ("kind", "string"),
            ("signature", "string"),
            ("description", "string"),
            ("example", "string"),
        )
    ),
    kind="table",
    example="SELECT name, signature FROM dicomsql_functions() ORDER BY name",
)
def dicomsql_functions() -> Iterator[tuple[str, str, str, str, str]]:
    """Every SQL function dicomsql registers: name, kind (scalar, aggregate or table),
    signature, description and an example."""
    for function in FUNCTIONS.values():
        yield (
            function.name,
            function.kind,
            function.signature,
            function.description,
            function.example,
        )

"""SQL functions about the function library itself."""

from __future__ import annotations

from typing import Iterator

from .registry import FUNCTIONS, sql_function


@sql_function(
    "",
    returns="name STRING, kind STRING, signature STRING, description STRING, example STRING",
    example="SELECT name, signature FROM dicomsql_functions() ORDER BY name",
    kind="table",
    name="dicomsql_functions",
)
class FunctionCatalog:
    """Every SQL function dicomsql registers: name, kind (scalar, aggregate or table),
    signature, description and an example."""

    def eval(self) -> Iterator[tuple[str, str, str, str, str]]:
        for function in FUNCTIONS.values():
            yield function.name, function.kind, function.signature, function.description, function.example

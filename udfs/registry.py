"""The registry of SQL functions: each is declared once, next to its implementation, with its
SQL name, signature and an example; its docstring is its SQL documentation::

    @sql_function("x DOUBLE", returns="DOUBLE", example="SELECT twice(2.0)")
    def twice(x: pd.Series) -> pd.Series:
        '''Twice ``x``.'''
        return 2 * x

:func:`register_functions` makes every declared function callable from SQL in a session.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable, Literal

__all__ = ["FUNCTIONS", "SqlFunction", "sql_function", "register_functions"]

Kind = Literal["scalar", "aggregate", "table"]


@dataclass(frozen=True)
class SqlFunction:
    """A SQL function: its name, kind, argument and result types (Spark DDL), an example and
    the Python implementation (a function for scalars and aggregates, a class for tables)."""

    name: str
    kind: Kind
    args: str
    returns: str
    example: str
    implementation: Any

    @property
    def doc(self) -> str:
        return inspect.cleandoc(self.implementation.__doc__ or "")

    @property
    def description(self) -> str:
        """The first paragraph of the docstring, on one line."""
        return " ".join(self.doc.split("\n\n")[0].split())

    @property
    def signature(self) -> str:
        returns = f"TABLE({self.returns})" if self.kind == "table" else self.returns
        return f"{self.name}({self.args}) -> {returns}"

    def register(self, spark: Any) -> None:
        """Make this function callable from SQL in ``spark``."""
        from pyspark.sql.functions import arrow_udf, pandas_udf, udtf

        if self.kind == "table":
            # a UDTF with an ``analyze`` method declares its result (and partitioning) itself
            returns = None if hasattr(self.implementation, "analyze") else self.returns
            spark.udtf.register(self.name, udtf(self.implementation, returnType=returns))
        elif self.kind == "aggregate" or self.uses_arrow:
            spark.udf.register(self.name, arrow_udf(self.implementation, returnType=self.returns))
        else:
            spark.udf.register(self.name, pandas_udf(self.implementation, returnType=self.returns))

    @property
    def uses_arrow(self) -> bool:
        """True when the implementation takes ``pa.Array`` columns, or an iterator of them
        (an Arrow UDF), rather than ``pd.Series`` (a pandas UDF); the type hints say which."""
        import pyarrow as pa

        hints = typing.get_type_hints(self.implementation)
        return any(hint is pa.Array or pa.Array in typing.get_args(hint) for hint in hints.values())


#: Every declared function by SQL name, in declaration order.
FUNCTIONS: dict[str, SqlFunction] = {}


def sql_function(
    args: str, *, returns: str, example: str, kind: Kind = "scalar", name: str | None = None
) -> Callable[[Any], Any]:
    """Declare a SQL function (decorator). The SQL name defaults to the Python name.

    ``args`` and ``returns`` are Spark DDL (``returns`` lists the columns of a table
    function). Scalars are pandas UDFs (``pd.Series`` in and out) or Arrow UDFs
    (``pa.Array`` in and out); aggregates are Arrow grouped-aggregate UDFs (``pa.Array`` in,
    ``pa.Scalar`` out, so they can return structs); tables are UDTF classes.
    """

    def declare(implementation: Any) -> Any:
        function = SqlFunction(
            name or implementation.__name__, kind, args, returns, example, implementation
        )
        if function.name in FUNCTIONS:
            raise ValueError(f"SQL function {function.name} is declared twice")
        FUNCTIONS[function.name] = function
        return implementation

    return declare


def register_functions(spark: Any) -> None:
    """Register every declared SQL function in ``spark``."""
    for function in FUNCTIONS.values():
        function.register(spark)

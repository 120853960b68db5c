"""The registry of SQL functions: each is declared once, next to its implementation, with its
SQL name, signature and an example; its docstring is its SQL documentation::

    @sql_function("x DOUBLE", returns="DOUBLE", example="SELECT twice(2.0)")
    def twice(x: pd.Series) -> pd.Series:
        '''Twice ``x``.'''
        return 2 * x

Every integer argument that sizes memory or work is declared with its bound
(``bounds={"size": Bound(1, 4096)}``) and read through :func:`bounded`, and a function
taking an options map declares its options table (``options=forest.OPTIONS``), whose integer
options are bounds too: one call cannot make a worker run out of memory. The bounds are the
functions' documented limits (:attr:`SqlFunction.limits`).

:func:`register_functions` makes every declared function callable from SQL in a session.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

from dicomsql.errors import FunctionArgumentError
from dicomsql.stats.options import Bound, Option

__all__ = ["FUNCTIONS", "SqlFunction", "sql_function", "bounded", "register_functions"]

Kind = Literal["scalar", "aggregate", "table"]


@dataclass(frozen=True)
class SqlFunction:
    """A SQL function: its name, kind, argument and result types (Spark DDL), an example, the
    Python implementation (a function for scalars and aggregates, a class for tables), the
    bounds of its sizing arguments and the table of its options."""

    name: str
    kind: Kind
    args: str
    returns: str
    example: str
    implementation: Any
    bounds: Mapping[str, Bound] = field(default_factory=dict)
    options: tuple[Option, ...] = ()

    @property
    def doc(self) -> str:
        return inspect.cleandoc(self.implementation.__doc__ or "")

    @property
    def description(self) -> str:
        """The first paragraph of the docstring, on one line."""
        return " ".join(self.doc.split("\n\n")[0].split())

    @property
    def limits(self) -> str:
        """The bounds of the arguments and options, as a sentence ("" when there are none)."""
        arguments = [f"``{name}`` {bound}" for name, bound in self.bounds.items()]
        options = [f"``{o.name}`` {o.parse}" for o in self.options if isinstance(o.parse, Bound)]
        parts = ([", ".join(arguments)] if arguments else []) + ([f"option {', '.join(options)}"] if options else [])
        return f"Limits: {'; '.join(parts)}." if parts else ""

    def bounded(self, argument: str, value: Any) -> int:
        """``value`` of ``argument`` as an int within its declared bound; else an error naming
        the function, the argument and the bound."""
        bound = self.bounds[argument]
        try:
            return bound.check(value)
        except ValueError:
            shown = int(value) if isinstance(value, float) and value.is_integer() else value  # a SQL number as float
            got = "NULL" if value is None else f"{shown} {bound.unit}".strip()
            raise FunctionArgumentError(self.name, argument, str(bound), got) from None

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
    args: str, *, returns: str, example: str, kind: Kind = "scalar", name: str | None = None,
    bounds: Mapping[str, Bound] | None = None, options: tuple[Option, ...] = (),
) -> Callable[[Any], Any]:
    """Declare a SQL function (decorator). The SQL name defaults to the Python name.

    ``args`` and ``returns`` are Spark DDL (``returns`` lists the columns of a table
    function). Scalars are pandas UDFs (``pd.Series`` in and out) or Arrow UDFs
    (``pa.Array`` in and out); aggregates are Arrow grouped-aggregate UDFs (``pa.Array`` in,
    ``pa.Scalar`` out, so they can return structs); tables are UDTF classes. ``bounds``
    bounds the arguments that size memory or work (by name; read them with
    :func:`bounded`); ``options`` is the table of the ``options`` map's entries.
    """

    def declare(implementation: Any) -> Any:
        function = SqlFunction(
            name or implementation.__name__, kind, args, returns, example, implementation, dict(bounds or {}), options
        )
        if function.name in FUNCTIONS:
            raise ValueError(f"SQL function {function.name} is declared twice")
        FUNCTIONS[function.name] = function
        return implementation

    return declare


def bounded(function: str, argument: str, value: Any) -> int:
    """``value`` of a declared function's ``argument``, checked against its bound.

    >>> bounded("image_resize", "rows", 100000)
    Traceback (most recent call last):
    dicomsql.errors.FunctionArgumentError: image_resize: argument rows must be between 1 and 8192, got 100000
    """
    return FUNCTIONS[function].bounded(argument, value)


def register_functions(spark: Any) -> None:
    """Register every declared SQL function in ``spark``."""
    for function in FUNCTIONS.values():
        function.register(spark)

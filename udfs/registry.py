"""The registry of SQL functions. A function is declared once, as data: its arguments (name, SQL
type, how Spark's column becomes the Python value the body takes), its result type and an
example; its docstring is its SQL documentation::

    @sql_function(column("x", "DOUBLE", numbers), returns="DOUBLE", example="SELECT twice(2.0)")
    def twice(x: np.ndarray) -> np.ndarray:
        '''Twice ``x``.'''
        return 2 * x

The body is a plain Python function of those values; the registry does the rest:

- it renders the signature (``twice(x DOUBLE) -> DOUBLE``) and the limits for the docs;
- it builds the Spark wrapper for the kind: a scalar Arrow iterator UDF (the body gets a batch
  of rows and returns one value per row), a grouped aggregate (the body gets the group), a
  streaming aggregate (the body gets an iterator of batches, O(1) batches in memory), a table
  function (the body yields rows; a class with ``eval``/``terminate`` keeps state);
- it converts each argument by its kind: a :func:`column` per row, a :func:`constant` (one
  value for the call), an :func:`options` map parsed against its options table; an integer
  that sizes memory or work is checked against its :class:`Bound`;
- it turns any argument error into :class:`FunctionArgumentError` naming the registered function
  and the argument: a reader's :class:`Expected`, a bound, a bad option, and
  :class:`ArgumentError` raised by a body (``ArgumentError("k", "must be ...")``);
- it converts returned values by the declared type: a :class:`Struct` (model types such as
  ``COX_MODEL`` are declared once, from their module's fields) rejects undeclared keys.

:func:`register_functions` makes every declared function callable from SQL in a session.
"""

from __future__ import annotations

import inspect
import itertools
import keyword
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module
from typing import Any, Literal

import pyarrow as pa

from dicomsql.errors import ArgumentError, DicomsqlError, FunctionArgumentError
from dicomsql.options import Bound, Option, OptionError, parse

from .arrow import Expected, Fields, first_valid, struct_array, struct_ddl
from .arrow import column as arrow_column

__all__ = [
    "FAMILIES",
    "FUNCTIONS",
    "SqlFunction",
    "Argument",
    "Struct",
    "Table",
    "sql_function",
    "column",
    "constant",
    "options",
    "register_functions",
    "ArgumentError",
    "Expected",
]

Kind = Literal["scalar", "aggregate", "table"]


@dataclass(frozen=True)
class Struct:
    """A STRUCT type declared once from ``(field, SQL type)`` pairs; the model and result types
    have a ``name`` (``COX_MODEL``) that signatures show and the docs define."""

    fields: Fields
    name: str | None = None

    @property
    def ddl(self) -> str:
        return struct_ddl(self.fields)

    def __str__(self) -> str:
        return self.name or self.ddl

    def checked(self, row: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """``row`` when all its keys are declared fields; an undeclared key is a bug, not a NULL."""
        if row is not None:
            unknown = set(row) - {name for name, _ in self.fields}
            if unknown:
                raise KeyError(f"{self}: undeclared field(s) {', '.join(sorted(unknown))}")
        return row

    def array(self, rows: Sequence[Mapping[str, Any] | None]) -> pa.StructArray:
        return struct_array([self.checked(row) for row in rows], self.fields)


@dataclass(frozen=True)
class Table:
    """The columns of a table function's rows, as ``(column, SQL type)`` pairs."""

    fields: Sequence[tuple[str, str | Struct]]

    @property
    def ddl(self) -> str:
        return ", ".join(
            f"{name} {kind.ddl if isinstance(kind, Struct) else kind.upper()}"
            for name, kind in self.fields
        )

    def __str__(self) -> str:
        return f"TABLE({', '.join(f'{name} {str(kind).upper()}' for name, kind in self.fields)})"

    def row(self, value: tuple | Mapping[str, Any]) -> tuple:
        """A row as a tuple in column order; a dict by column name (undeclared keys refused)."""
        if isinstance(value, Mapping):
            Struct(self.fields, "the row").checked(value)
            return tuple(value.get(name) for name, _ in self.fields)
        return tuple(value)


Returns = str | Struct | Table


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of an argument a call must give.
REQUIRED = _Required()


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Argument:
    """One argument of a SQL function: its name, the SQL type its signature shows, and ``read``,
    which makes the body's value of Spark's (Arrow column, or for table functions Python)
    value. A constant is one value for the call (the first non-NULL); an argument with a
    default may be left out (and those after it); ``bound`` limits an integer that sizes memory
    or work, ``sizes`` says which integers of the value it limits (default: the value); an
    options map has its options ``table``."""

    name: str
    sql: str | Struct
    read: Callable[[Any], Any] = _same
    is_constant: bool = False
    default: Any = REQUIRED
    bound: Bound | None = None
    sizes: Callable[[Any], Iterable[Any]] | None = None
    table: tuple[Option, ...] = ()

    @property
    def optional(self) -> bool:
        return self.default is not REQUIRED

    @property
    def python_name(self) -> str:
        """The body's parameter: the name, with ``_`` after a Python keyword (``class_``)."""
        return f"{self.name}_" if keyword.iskeyword(self.name) else self.name

    def value(self, given: Any, present: bool = True) -> Any:
        """The body's value of this argument, from Spark's; ``present`` is False when the call
        left the argument out."""
        if self.is_constant:
            given = first_valid(given) if present else None
        if not present or (self.is_constant and given is None):
            if self.table:
                return parse(None, self.table)
            if self.default is REQUIRED:
                raise Expected(
                    str(self.bound) if self.bound else f"a non-NULL {self.sql}",
                    "NULL" if present else "nothing",
                )
            return self.default
        value = parse(dict(given), self.table) if self.table else self.read(given)
        if self.bound is not None:
            for size in self.sizes(value) if self.sizes else [value]:
                try:
                    self.bound.check(size)
                except ValueError:
                    raise Expected(str(self.bound), _shown(size, self.bound)) from None
            if self.sizes is None:
                value = int(value)
        return value


def _shown(size: Any, bound: Bound) -> str:
    """A refused size as the error shows it (a SQL number may arrive as a float)."""
    if size is None:
        return "NULL"
    shown = int(size) if isinstance(size, float) and size.is_integer() else size
    return f"{shown} {bound.unit}".strip()


def column(
    name: str,
    sql: str | Struct,
    read: Callable[[Any], Any] = _same,
    *,
    default: Any = REQUIRED,
    bound: Bound | None = None,
    sizes: Callable[[Any], Iterable[Any]] | None = None,
) -> Argument:
    """An argument with a value per row: ``read`` turns Spark's column into the body's value."""
    return Argument(name, sql, read, default=default, bound=bound, sizes=sizes)


def constant(
    name: str,
    sql: str,
    read: Callable[[Any], Any] = _same,
    *,
    default: Any = REQUIRED,
    bound: Bound | None = None,
) -> Argument:
    """An argument with one value for the call (``k``, ``size``, ``type``...): the first non-NULL
    value, read by ``read``; NULL or left out is ``default``."""
    return Argument(name, sql, read, is_constant=True, default=default, bound=bound)


def options(table: tuple[Option, ...]) -> Argument:
    """The ``options`` map: the body gets every option of ``table``, defaults filled in."""
    return Argument("options", "MAP<STRING,STRING>", is_constant=True, default=None, table=table)


@dataclass(frozen=True)
class SqlFunction:
    """A SQL function: its name, kind, declared arguments and result, an example and the Python
    implementation (a function, or for a stateful table function a class with ``eval``)."""

    name: str
    kind: Kind
    arguments: tuple[Argument, ...]
    returns: Returns
    example: str
    implementation: Any
    streaming: bool = False
    rows_per_batch: int | None = None

    @property
    def doc(self) -> str:
        return inspect.cleandoc(self.implementation.__doc__ or "")

    @property
    def description(self) -> str:
        """The first paragraph of the docstring, on one line."""
        return " ".join(self.doc.split("\n\n")[0].split())

    @property
    def args(self) -> str:
        """The arguments as the signature shows them, optional ones in brackets."""
        required = [a for a in self.arguments if not a.optional]
        optional = [a for a in self.arguments if a.optional]
        text = ", ".join(f"{a.name} {a.sql}" for a in required)
        for argument in optional:
            text += f" [{', ' if text else ''}{argument.name} {argument.sql}"
        return text + "]" * len(optional)

    @property
    def signature(self) -> str:
        return f"{self.name}({self.args}) -> {self.returns}"

    @property
    def option_table(self) -> tuple[Option, ...]:
        return next((a.table for a in self.arguments if a.table), ())

    @property
    def bounds(self) -> dict[str, Bound]:
        return {a.name: a.bound for a in self.arguments if a.bound is not None}

    @property
    def limits(self) -> str:
        """The bounds of the arguments and options, as a sentence ("" when there are none)."""
        arguments = [f"``{name}`` {bound}" for name, bound in self.bounds.items()]
        options_ = [
            f"``{o.name}`` {o.parse}" for o in self.option_table if isinstance(o.parse, Bound)
        ]
        parts = ([", ".join(arguments)] if arguments else []) + (
            [f"option {', '.join(options_)}"] if options_ else []
        )
        return f"Limits: {'; '.join(parts)}." if parts else ""

    # --- calling the body -------------------------------------------------------------------

    @contextmanager
    def _naming(self, argument: str | None = None) -> Iterator[None]:
        """Argument errors raised inside as :class:`FunctionArgumentError` of this function;
        ``argument`` is the one being read, if any."""
        try:
            yield
        except Expected as exc:
            name = ".".join(filter(None, (argument, exc.field)))
            raise FunctionArgumentError(self.name, name, exc.expected, exc.got) from None
        except ArgumentError as exc:
            raise FunctionArgumentError.because(self.name, exc.argument, str(exc)) from None
        except OptionError as exc:  # an option that parsed but does not go with the others
            raise FunctionArgumentError.because(self.name, "options", str(exc)) from None
        except DicomsqlError:
            raise
        except ValueError as exc:  # a bad option, or a body's failure: named after the function
            if argument is None:
                raise ValueError(f"{self.name}: {exc}") from None
            raise FunctionArgumentError.because(self.name, argument, str(exc)) from None

    def values(
        self, given: Sequence[Any], only: Callable[[Argument], bool] = lambda a: True
    ) -> dict[str, Any]:
        """The body's keyword arguments from Spark's values (fewer when the call left optional
        ones out)."""
        if len(given) > len(self.arguments):
            raise FunctionArgumentError(
                self.name, "list", f"at most {len(self.arguments)} arguments", str(len(given))
            )
        values = {}
        for index, argument in enumerate(self.arguments):
            if only(argument):
                with self._naming(argument.name):
                    values[argument.python_name] = argument.value(
                        given[index] if index < len(given) else None, index < len(given)
                    )
        return values

    def positional(self, given: Sequence[Any], named: Mapping[str, Any]) -> tuple:
        """A table function's arguments in declaration order, from a call that named some
        (``als_recommend(model => m.model, user => 'R01', k => 3)``); one left out before a
        named one is NULL."""
        if not named:
            return tuple(given)
        names = [a.name for a in self.arguments]
        last = max(names.index(name) for name in named)
        return tuple(given) + tuple(named.get(name) for name in names[len(given) : last + 1])

    @property
    def eval_signature(self) -> inspect.Signature:
        """The signature Spark binds a table function's call to (positional or by name)."""
        parameter = inspect.Parameter.POSITIONAL_OR_KEYWORD
        return inspect.Signature(
            [inspect.Parameter("self", parameter)]
            + [
                inspect.Parameter(
                    a.name, parameter, default=None if a.optional else inspect.Parameter.empty
                )
                for a in self.arguments
            ]
        )

    def call(self, given: Sequence[Any]) -> Any:
        """The body's result for Spark's argument values."""
        values = self.values(given)
        with self._naming():
            return self.implementation(**values)

    def stream(self, batches: Iterator[Any]) -> Any:
        """A streaming aggregate's result: the body gets the constants and options as keyword
        arguments (from the first batch) and an iterator of tuples of the columns' values."""
        batches = (batch if isinstance(batch, tuple) else (batch,) for batch in batches)
        first = next(batches, None)
        if first is None:  # an empty group: the body sees no rows and the constants' defaults
            constants = {
                a.python_name: a.value(None, False) if a.optional else None
                for a in self.arguments
                if a.is_constant
            }
        else:
            constants = self.values(first, lambda a: a.is_constant)

        def rows() -> Iterator[tuple]:
            for batch in itertools.chain([first] if first else [], batches):
                yield tuple(self.values(batch, lambda a: not a.is_constant).values())

        with self._naming():
            return self.implementation(rows(), **constants)

    def result(self, value: Any, rows: int | None = None) -> Any:
        """Arrow of a body's result: an array of ``rows`` values for scalars, a scalar else."""
        returns = self.returns
        if rows is None:
            return (
                returns.array([value])
                if isinstance(returns, Struct)
                else arrow_column([value], returns.lower())
            )[0]
        values = list(value) if not hasattr(value, "dtype") else value
        if len(values) != rows:
            raise AssertionError(f"{self.name} returned {len(values)} values for {rows} rows")
        return (
            returns.array(values)
            if isinstance(returns, Struct)
            else arrow_column(values, returns.lower())
        )

    # --- the Spark wrappers -----------------------------------------------------------------

    @property
    def evaluator(self) -> Any:
        """The function (class, for tables) Spark calls: Arrow in and out, or a UDTF."""
        if self.kind == "table":
            return _table_class(self)
        if self.kind == "aggregate" and self.streaming:

            def aggregate_stream(batches: Iterator[tuple[pa.Array, ...]]) -> pa.Scalar:
                return self.result(self.stream(batches))

            return aggregate_stream
        if self.kind == "aggregate":

            def aggregate(*columns: pa.Array) -> pa.Scalar:
                return self.result(self.call(columns))

            return aggregate

        def scalar(batches: Iterator[tuple[pa.Array, ...]]) -> Iterator[pa.Array]:
            for batch in batches:
                batch = batch if isinstance(batch, tuple) else (batch,)
                if not len(batch[0]):
                    yield self.result([], 0)
                    continue
                step = self.rows_per_batch or len(batch[0])
                for start in range(0, len(batch[0]), step):
                    chunk = tuple(values.slice(start, step) for values in batch)
                    yield self.result(self.call(chunk), len(chunk[0]))

        return scalar

    def register(self, spark: Any) -> None:
        """Make this function callable from SQL in ``spark``."""
        from pyspark.sql.functions import arrow_udf, udtf

        if self.kind == "table":
            implementation = self.evaluator
            # a UDTF with an ``analyze`` method declares its result (and partitioning) itself
            returns = None if hasattr(implementation, "analyze") else self.returns.ddl
            spark.udtf.register(self.name, udtf(implementation, returnType=returns))
        else:
            returns = self.returns.ddl if isinstance(self.returns, Struct) else self.returns
            spark.udf.register(self.name, arrow_udf(self.evaluator, returnType=returns))


def _table_class(function: SqlFunction) -> type:
    """The UDTF class of a table function: a generator body's rows, or a stateful class whose
    ``eval`` gets the converted arguments."""
    implementation = function.implementation
    if isinstance(implementation, type):

        class Stateful(implementation):
            def eval(self, *given: Any, **named: Any) -> Iterator[tuple]:
                values = function.values(function.positional(given, named))
                with function._naming():
                    yield from (function.returns.row(row) for row in super().eval(**values) or ())

            def terminate(self) -> Iterator[tuple]:
                with function._naming():
                    yield from (function.returns.row(row) for row in super().terminate() or ())

        if not hasattr(implementation, "terminate"):
            del Stateful.terminate
        Stateful.eval.__signature__ = function.eval_signature
        Stateful.__name__ = Stateful.__qualname__ = implementation.__name__
        return Stateful

    class Rows:
        def eval(self, *given: Any, **named: Any) -> Iterator[tuple]:
            values = function.values(function.positional(given, named))
            with function._naming():
                yield from (function.returns.row(row) for row in implementation(**values))

    Rows.eval.__signature__ = function.eval_signature
    Rows.__name__ = Rows.__qualname__ = function.name
    return Rows


#: The function families, one module each: importing one declares its functions. Their order
#: is the order of :data:`FUNCTIONS` and of the reference docs.
FAMILIES = ("header", "export", "pixels", "images", "cohort", "survival", "models", "catalog")


class Declarations(Mapping[str, SqlFunction]):
    """The declared functions by SQL name, family by family in the order of :data:`FAMILIES`
    (in a family, in declaration order). Reading it imports every family first; nothing else
    does, so a Python worker imports only the family of the function it runs: a header or
    pixel worker never maps scipy and lifelines (about 170 MB of address space, which counts
    against ``spark.executor.pyspark.memory``)."""

    def __init__(self) -> None:
        self._declared: dict[str, SqlFunction] = {}
        self._ordered: dict[str, SqlFunction] | None = None

    def declare(self, function: SqlFunction) -> None:
        """Add ``function``; a name declared twice is an error."""
        if function.name in self._declared:
            raise ValueError(f"SQL function {function.name} is declared twice")
        self._declared[function.name] = function
        self._ordered = None

    def _all(self) -> dict[str, SqlFunction]:
        if self._ordered is None:
            for family in FAMILIES:
                import_module(f"{__package__}.{family}")
            family_of = {family: index for index, family in enumerate(FAMILIES)}
            self._ordered = dict(
                sorted(
                    self._declared.items(),
                    key=lambda item: family_of.get(
                        item[1].implementation.__module__.rpartition(".")[2], len(FAMILIES)
                    ),
                )
            )
        return self._ordered

    def __getitem__(self, name: str) -> SqlFunction:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


#: Every declared function by SQL name (see :class:`Declarations`).
FUNCTIONS = Declarations()


def sql_function(
    *arguments: Argument,
    returns: Returns,
    example: str,
    kind: Kind = "scalar",
    name: str | None = None,
    streaming: bool = False,
    rows_per_batch: int | None = None,
) -> Callable[[Any], Any]:
    """Declare a SQL function (decorator) from its :class:`Argument`\\ s, result type and example.
    The SQL name defaults to the Python name.

    ``returns`` is a Spark SQL type, a :class:`Struct`, or for a table function a
    :class:`Table`. A scalar body gets a batch of rows (at most ``rows_per_batch``, for bodies
    whose results are large, such as images) and returns a value per row; an aggregate's body
    gets the whole group, a ``streaming`` aggregate's an iterator of batches.
    """

    def declare(implementation: Any) -> Any:
        function = SqlFunction(
            name or implementation.__name__,
            kind,
            arguments,
            returns,
            example,
            implementation,
            streaming,
            rows_per_batch,
        )
        FUNCTIONS.declare(function)
        return implementation

    return declare


def register_functions(spark: Any) -> None:
    """Register every declared SQL function in ``spark``."""
    for function in FUNCTIONS.values():
        function.register(spark)

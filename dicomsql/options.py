"""Options declared once, as data: name, default, help and parser.

One :class:`Option` type declares the settings of the command line and the server
(:data:`dicomsql.settings.SETTINGS`), the options of the ``dicom`` data source
(:data:`dicomsql.source.options.OPTIONS`) and the entries of the SQL functions' options maps
(the ``OPTIONS`` tables of :mod:`dicomsql.stats`). Options arrive as text (Spark's ``OPTIONS``
clause, a ``MAP<STRING,STRING>``, a command-line flag): :func:`parse` turns a map of them into
values, the defaults overridden by what was given. An option's ``help`` is its documentation:
the option tables of README.md and docs/functions.md are generated from it
(:mod:`dicomsql.docs`).

A parser takes the text and returns the value, or raises ``ValueError`` whose message is what
was expected, as a noun phrase (``one of efron, breslow``, ``an integer between 1 and 2000``),
so that :func:`parse` can say ``option ties must be one of efron, breslow, got 'exact'``.
Integer options are parsed by a :class:`Bound`: what sizes memory or work (trees, ranks,
iterations...) has an upper bound as well as a lower one, so that no call can make a worker run
out of memory or time.

Nothing here imports Spark.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import DicomsqlError

__all__ = [
    "Option",
    "OptionError",
    "Parsed",
    "parse",
    "Choice",
    "choice",
    "number",
    "Bound",
    "integer",
    "SEED",
    "boolean",
]


@dataclass(frozen=True)
class Option:
    """One option: its name (matched case-insensitively), its default (the value, not text),
    its documentation and the parser of its text (the text itself by default)."""

    name: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str


class OptionError(DicomsqlError, ValueError):
    """An option that is unknown (``option`` is None) or whose text does not parse."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class Parsed(dict):
    """What :func:`parse` returns: every option of ``table`` by name, as values. Parsing it
    again against that table gives a copy, so that a layer that parsed the options (the SQL
    function registry) can hand them to one that parses what it is given (a model family's
    ``fit``); against any other table it is parsed as text. Tables are compared by their
    options' names and defaults: a table pickled to a Spark worker is a copy of the module's."""

    def __init__(self, values: Any = (), *, table: tuple[Option, ...] = ()) -> None:
        super().__init__(values)
        self.table_key = _table_key(table)


def _table_key(table: tuple[Option, ...]) -> tuple:
    return tuple((option.name, repr(option.default)) for option in table)


def parse(
    given: Mapping[str, Any] | None, table: tuple[Option, ...], *, where: str | None = None
) -> Parsed:
    """The options of ``table`` by name, their defaults overridden by the texts ``given``
    (keys are case-insensitive). An unknown key or a bad value raises :class:`OptionError`
    naming the option, the value and what was expected (the known options for a key);
    ``where`` (e.g. ``dicom source``) starts the message.

    >>> ties = Option("ties", "efron", "How tied event times are handled.", choice("efron", "breslow"))
    >>> parse({"TIES": "Breslow"}, (ties,))
    {'ties': 'breslow'}
    >>> parse({"ties": "exact"}, (ties,), where="coxph_fit")
    Traceback (most recent call last):
    dicomsql.options.OptionError: coxph_fit: option ties must be one of efron, breslow, got 'exact'
    >>> parse({"tie": "efron"}, (ties,))
    Traceback (most recent call last):
    dicomsql.options.OptionError: unknown option 'tie' (known: ties)
    >>> parsed = parse({"ties": "breslow"}, (ties,))
    >>> parse(parsed, (ties,)) == parsed
    True
    """
    if isinstance(given, Parsed) and given.table_key == _table_key(table):
        return Parsed(given, table=table)
    prefix = f"{where}: " if where else ""
    known = {option.name.lower(): option for option in table}
    values = Parsed(((option.name, option.default) for option in table), table=table)
    for key, text in (given or {}).items():
        option = known.get(str(key).strip().lower())
        if option is None:
            raise OptionError(
                f"{prefix}unknown option {key!r} (known: {', '.join(o.name for o in table)})"
            )
        try:
            values[option.name] = option.parse(str(text))
        except ValueError as exc:
            raise OptionError(
                f"{prefix}option {option.name} must be {exc}, got {text!r}", option.name
            ) from None
    return values


@dataclass(frozen=True)
class Choice:
    """The parser of an option taking one of ``values`` (compared after ``normalise``)."""

    values: tuple[str, ...]
    normalise: Callable[[str], str] = str.lower

    def __str__(self) -> str:
        return f"one of {', '.join(self.values)}"

    def __call__(self, text: str) -> str:
        value = self.normalise(text.strip())
        if value not in self.values:
            raise ValueError(str(self))
        return value


def choice(*values: str, normalise: Callable[[str], str] = str.lower) -> Choice:
    """The parser of an option taking one of ``values``, lower-case unless ``normalise``
    says otherwise.

    >>> choice("PERMISSIVE", "FAILFAST", normalise=str.upper)(" failfast")
    'FAILFAST'
    """
    return Choice(values, normalise)


def number(
    low: float | None = None, high: float | None = None, *, open_low: bool = False
) -> Callable[[str], float]:
    """The parser of a number option from ``low`` (excluded when ``open_low``) to ``high``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("a number") from None
        if (low is not None and (value < low or (open_low and value == low))) or (
            high is not None and value > high
        ):
            raise ValueError(
                f"a number {'>' if open_low else '>='} {low}"
                + (f" and <= {high}" if high is not None else "")
            )
        return value

    return parse


@dataclass(frozen=True)
class Bound:
    """The inclusive range an integer must lie in (no upper end when ``high`` is None);
    ``unit`` names what is counted when the bound is on a size (the ``columns`` of an image,
    the ``values`` of a vector) rather than on a value.

    >>> Bound(1, 8192).check(100000)
    Traceback (most recent call last):
    ValueError: between 1 and 8192
    >>> Bound(1, 2000)("5000")  # as the parser of an option
    Traceback (most recent call last):
    ValueError: an integer between 1 and 2000
    >>> str(Bound(0))
    '0 or more'
    """

    low: int
    high: int | None = None
    unit: str = ""

    def __str__(self) -> str:
        text = f"{self.low} or more" if self.high is None else f"between {self.low} and {self.high}"
        return text + (f" {self.unit}" if self.unit else "")

    def check(self, value: Any) -> int:
        """``value`` as an int; ``ValueError`` (the bound, as text) when it is no integer
        within the bound."""
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):  # None, NaN, infinity, text
            raise ValueError(str(self)) from None
        if number < self.low or (self.high is not None and number > self.high):
            raise ValueError(str(self))
        return number

    def __call__(self, text: str) -> int:
        try:
            return self.check(int(text))
        except ValueError:
            raise ValueError(f"an integer {self}") from None


def integer(low: int, high: int | None = None) -> Bound:
    """The parser of an integer option from ``low`` to ``high`` (no upper end when None:
    only for what sizes no memory or work, such as a port or a number of seconds)."""
    return Bound(low, high)


#: The seeds numpy and scikit-learn accept.
SEED = integer(0, 2**32 - 1)


def boolean(text: str) -> bool:
    """The parser of a ``true`` / ``false`` option (any case)."""
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise ValueError("true or false")
    return value == "true"

"""Options of the model-fitting functions, given from SQL as ``map<string,string>``.

Each function declares its options once, as :class:`Option` rows (name, default, parser,
help); :func:`parse` validates a map against them and raises ``ValueError`` naming the
option, the value and what was expected. Integer options are parsed by a :class:`Bound`: what
sizes memory or work (trees, ranks, iterations...) has an upper bound as well as a lower one,
so that no call can make a worker run out of memory or time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

__all__ = ["Option", "Bound", "ArgumentError", "parse", "choice", "number", "integer", "SEED", "boolean", "match_fields"]


class ArgumentError(ValueError):
    """A prediction argument that cannot be used; ``argument`` names it."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(message)
        self.argument = argument


def match_fields(expected: list[str], given: dict) -> None:
    """Raise :class:`ArgumentError` (argument ``covariates``) naming the fields a model
    needs and did not get, and the ones it does not know."""
    missing = [name for name in expected if name not in given]
    unknown = [name for name in given if name not in expected]
    if missing or unknown:
        parts = ([f"missing field(s) {', '.join(missing)}"] if missing else []) + (
            [f"unknown field(s) {', '.join(unknown)}"] if unknown else [])
        raise ArgumentError("covariates", "; ".join(parts) + f" (the model's covariates are {', '.join(expected)})")


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    parse: Callable[[str], Any]
    help: str


def choice(*values: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in values:
            raise ValueError(f"one of {', '.join(values)}")
        return value

    return parse


def number(low: float | None = None, high: float | None = None, *, open_low: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("a number") from None
        if (low is not None and (value < low or (open_low and value == low))) or (high is not None and value > high):
            raise ValueError(f"a number {'>' if open_low else '>='} {low}" + (f" and <= {high}" if high is not None else ""))
        return value

    return parse


@dataclass(frozen=True)
class Bound:
    """The inclusive range an integer must lie in; ``unit`` names what is counted when the
    bound is on a size (the ``columns`` of an image, the ``values`` of a vector) rather than
    on a value.

    >>> Bound(1, 8192).check(100000)
    Traceback (most recent call last):
    ValueError: between 1 and 8192
    >>> Bound(1, 2000)("5000")  # as the parser of an option
    Traceback (most recent call last):
    ValueError: an integer between 1 and 2000
    """

    low: int
    high: int
    unit: str = ""

    def __str__(self) -> str:
        return f"between {self.low} and {self.high}" + (f" {self.unit}" if self.unit else "")

    def check(self, value: Any) -> int:
        """``value`` as an int; ``ValueError`` (the bound, as text) when it is no integer
        within the bound."""
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):  # None, NaN, infinity, text
            raise ValueError(str(self)) from None
        if not self.low <= number <= self.high:
            raise ValueError(str(self))
        return number

    def __call__(self, text: str) -> int:
        try:
            return self.check(int(text))
        except ValueError:
            raise ValueError(f"an integer {self}") from None


def integer(low: int, high: int) -> Bound:
    """The parser of an integer option from ``low`` to ``high``."""
    return Bound(low, high)


#: The seeds numpy and scikit-learn accept.
SEED = integer(0, 2**32 - 1)


def boolean(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise ValueError("true or false")
    return value == "true"


def parse(options: Mapping[str, str] | None, table: tuple[Option, ...]) -> dict[str, Any]:
    """The options of ``table`` with defaults, overridden by ``options``.

    >>> parse({"ties": "Breslow"}, (Option("ties", "efron", choice("efron", "breslow"), ""),))
    {'ties': 'breslow'}
    """
    known = {option.name: option for option in table}
    values = {option.name: option.default for option in table}
    for key, text in (options or {}).items():
        option = known.get(key.strip().lower())
        if option is None:
            raise ValueError(f"unknown option {key!r} (known: {', '.join(known)})")
        try:
            values[option.name] = option.parse(str(text))
        except ValueError as exc:
            raise ValueError(f"option {option.name} must be {exc}, got {text!r}") from None
    return values

"""Options of the model-fitting functions, given from SQL as ``map<string,string>``.

The option type, its parsers and :func:`parse` are :mod:`dicomsql.options`, shared with the
``dicom`` source and the server's settings; this module keeps the names the stats modules
import, with :class:`Option` in their field order (name, default, parser, help), and the
prediction arguments' checks (:class:`ArgumentError`, :func:`match_fields`).
"""

from __future__ import annotations

from typing import Any, Callable

from .. import options
from ..options import SEED, Bound, boolean, choice, integer, number, parse

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


class Option(options.Option):
    """A :class:`dicomsql.options.Option` declared with the parser before the help.

    >>> Option("ties", "efron", choice("efron", "breslow"), "How tied event times are handled.").help
    'How tied event times are handled.'
    """

    def __init__(self, name: str, default: Any, parse: Callable[[str], Any], help: str) -> None:
        super().__init__(name, default, help, parse)

"""The work every model family's ``fit`` shares, done once.

A family module declares what is its own, as data: ``OPTIONS`` (its option table),
``MODEL_FIELDS`` (the model struct) and ``SUMMARY_FIELDS`` (its ``*_summary`` table), and
a :class:`Family` made of them; its ``fit`` does the maths and nothing else. The family
here does what lifelines' base fitter does for its subclasses, kept functional:

- :meth:`Family.settings` parses the SQL options map against ``OPTIONS`` (``ValueError``
  naming the option);
- :func:`complete` finds the complete rows (no NULL, NaN or infinity in any input) and
  counts them: ``n`` and ``n_dropped``;
- :meth:`Family.model` builds the model dict: every declared field (NULL unless given), the
  options the model records, and the estimates; a group that cannot be fitted (an
  :class:`Unfit` raised by the estimation) gets NULL estimates and the reason in ``error``;
  a key that is not a declared field is a programming error and raises.

Models stay plain dicts of numbers, strings and lists: no fitter objects, no pickles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..options import Option, parse
from .features import complete_rows

__all__ = ["Fields", "FITTER_FAILURES", "Family", "Unfit", "Rows", "complete", "column"]

#: ``(name, SQL type)`` pairs: a model struct, or the columns of a summary table.
Fields = tuple[tuple[str, str], ...]

#: What a third-party fitter (lifelines) raises for data it cannot fit: singular matrices,
#: overflow, ``ConvergenceError``... (the ``failures`` of :meth:`Family.model`).
FITTER_FAILURES: tuple[type[Exception], ...] = (Exception,)


class Unfit(Exception):
    """Raised by an estimation for a group it cannot fit: ``reason`` becomes the model's
    ``error``, ``fields`` (diagnostics such as ``iterations``) are kept in the model."""

    def __init__(self, reason: str, **fields: Any) -> None:
        super().__init__(reason)
        self.fields = fields


def column(values: Any) -> np.ndarray:
    """``values`` as a column :func:`complete` understands: float for numbers and booleans,
    an object array (None for NULL) for anything else.

    >>> column([1, None, 3]).dtype, column(["a", None]).dtype, column([True, False]).dtype
    (dtype('O'), dtype('O'), dtype('float64'))
    """
    array = np.asarray(values)
    if array.dtype.kind in "biuf":
        return array.astype(float)
    return np.asarray(values, dtype=object) if array.dtype != object else array


@dataclass(frozen=True)
class Rows:
    """The complete rows of a fit's input: ``keep`` is their mask."""

    keep: np.ndarray

    @property
    def n(self) -> int:
        return int(self.keep.sum())

    @property
    def n_dropped(self) -> int:
        return int((~self.keep).sum())

    def counts(self) -> dict[str, int]:
        """The model fields ``n`` and ``n_dropped``."""
        return {"n": self.n, "n_dropped": self.n_dropped}

    def take(self, values: Any) -> Any:
        """The complete rows of a column (any sequence, its values as they are), or of every
        column of a mapping."""
        if isinstance(values, Mapping):
            return {name: column_values[self.keep] for name, column_values in values.items()}
        return np.asarray(values)[self.keep]


def complete(*inputs: Mapping[str, np.ndarray] | Sequence[Any] | None) -> Rows:
    """The rows with a value in every input: a column (numbers, booleans, labels) or a
    mapping of feature columns (numbers as floats, strings as object arrays). None inputs
    (an optional argument not given) are skipped.

    >>> rows = complete([1.0, float("nan"), 3.0], {"x": np.array([1.0, 2.0, np.inf])}, ["a", "b", "c"])
    >>> rows.keep.tolist(), rows.counts()
    ([True, False, False], {'n': 1, 'n_dropped': 2})
    """
    columns: dict[str, np.ndarray] = {}
    for position, values in enumerate(value for value in inputs if value is not None):
        if isinstance(values, Mapping):
            columns.update(
                {f"{position}:{name}": np.asarray(array) for name, array in values.items()}
            )
        else:
            columns[str(position)] = column(values)
    return Rows(complete_rows(columns))


@dataclass(frozen=True)
class Family:
    """A model family's declarations and the shared steps of its ``fit``.

    ``recorded`` names the options a model keeps under the same name (so that a stored
    model says how it was fitted).
    """

    options: tuple[Option, ...]
    model_fields: Fields
    summary_fields: Fields = ()
    recorded: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = {name for name, _ in self.model_fields}
        unknown = [
            name
            for name in self.recorded
            if name not in names or name not in {o.name for o in self.options}
        ]
        if unknown:
            raise ValueError(
                f"recorded option(s) {', '.join(unknown)} must be both options and model fields"
            )

    def settings(self, options: Mapping[str, str] | None) -> dict[str, Any]:
        """The options map parsed against the family's table; ``ValueError`` names a bad one."""
        return parse(options, self.options)

    def model(
        self,
        settings: Mapping[str, Any],
        described: Mapping[str, Any],
        estimate: Callable[[], Mapping[str, Any]],
        *,
        failures: tuple[type[Exception], ...] = (),
    ) -> dict[str, Any]:
        """The model dict: every field NULL, then the recorded options, then ``described``
        (what is known before estimating: ``n``, ``n_dropped``, the feature encoding...),
        then what ``estimate()`` returns. An :class:`Unfit` (or one of ``failures``, the
        exceptions a third-party fitter raises for data it cannot fit) leaves the estimates
        NULL with the reason in ``error``."""
        model: dict[str, Any] = {name: None for name, _ in self.model_fields}
        model.update({name: settings[name] for name in self.recorded})
        model.update(self.checked(described))
        try:
            estimates = estimate()
        except Unfit as unfit:
            estimates = {**unfit.fields, "error": str(unfit)}
        except failures as exc:
            estimates = {"error": f"could not fit: {type(exc).__name__}: {exc}"}
        model.update(self.checked(estimates))
        return model

    def checked(self, values: Mapping[str, Any]) -> Mapping[str, Any]:
        """``values`` when every key is a declared model field; a ``KeyError`` naming the
        undeclared ones otherwise (a misspelt key would silently be a NULL column)."""
        declared = {name for name, _ in self.model_fields}
        undeclared = [key for key in values if key not in declared]
        if undeclared:
            raise KeyError(f"undeclared model field(s) {', '.join(undeclared)}")
        return values

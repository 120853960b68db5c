"""Features and labels of the predictive models.

Features come from SQL as a STRUCT whose fields are numbers (or booleans) and strings. A
numeric field is one column of the design matrix; a string field is one indicator column per
category, named ``field=value``. Categories are learnt at fit time (in sorted order) and kept
in the model, so predictions encode new rows exactly as the training rows were encoded.

Two codings:

- *reference* coding (linear and logistic regression, which fit an intercept): the first
  category of each field is the reference and gets no column, as R and statsmodels do;
- *full* coding (random forests): one column per category.

A category never seen at fit time is encoded as all zeros in its field's columns: the
reference category for linear and logistic models, "none of the known categories" for
forests. Class labels (any SQL type) are kept as strings in sorted order; see
:func:`class_names`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ArgumentError

__all__ = [
    "Encoding",
    "FeatureLearner",
    "class_name",
    "class_names",
    "labelled_rows",
    "complete_rows",
    "is_categorical",
    "encode",
    "class_output",
    "CLASS_OUTPUTS",
]

Columns = Mapping[str, np.ndarray]


def is_categorical(values: np.ndarray) -> bool:
    """True for a column of strings (an object array), False for numbers (floats)."""
    return np.asarray(values).dtype.kind in "OUS"


def complete_rows(columns: Columns, *others: np.ndarray) -> np.ndarray:
    """A boolean mask of the rows with a value in every column of ``columns`` and
    ``others`` (no NULL, no NaN or infinity). Strings are object arrays with None for NULL."""
    mask = np.ones(len(next(iter([*columns.values(), *others]))), dtype=bool)
    for values in [*columns.values(), *others]:
        if is_categorical(values):
            mask &= np.array([value is not None for value in values], dtype=bool)
        else:
            mask &= np.isfinite(values)
    return mask


@dataclass(frozen=True)
class Encoding:
    """How a STRUCT of features becomes a numeric matrix.

    ``fields`` are the struct's field names in input order; ``categories[i]`` is the sorted
    list of categories of field ``i`` for a string field, None for a numeric one.
    """

    fields: tuple[str, ...]
    categories: tuple[tuple[str, ...] | None, ...]
    reference: bool

    @classmethod
    def from_model(cls, model: Mapping[str, Any], reference: bool) -> Encoding:
        """The encoding a fitted model was trained with.

        A Cox or AFT model stored before these models had ``fields`` names its numeric
        fields in ``covariates`` (alias for one release)."""
        fields = model["fields"] if model.get("fields") is not None else model["covariates"]
        categories = model.get("categories") or [None] * len(fields)
        return cls(
            tuple(fields), tuple(None if c is None else tuple(c) for c in categories), reference
        )

    def coded(self, index: int) -> tuple[str, ...]:
        """The categories of field ``index`` that get a column."""
        categories = self.categories[index] or ()
        return categories[1:] if self.reference else categories

    @property
    def names(self) -> list[str]:
        """The names of the matrix columns: the field for a number, ``field=value`` for a category."""
        names: list[str] = []
        for index, field in enumerate(self.fields):
            if self.categories[index] is None:
                names.append(field)
            else:
                names.extend(f"{field}={category}" for category in self.coded(index))
        return names

    def as_model(self) -> dict[str, Any]:
        """The model fields that describe this encoding."""
        return {
            "features": self.names,
            "fields": list(self.fields),
            "categories": [None if c is None else list(c) for c in self.categories],
        }

    def check(self, columns: Columns, argument: str = "features") -> None:
        """Raise :class:`ArgumentError` (naming ``argument``, the SQL argument the columns
        came from) when ``columns`` are not the fields the model was trained with, or a field
        changed between number and string."""
        missing = [name for name in self.fields if name not in columns]
        unknown = [name for name in columns if name not in self.fields]
        if missing or unknown:
            parts = ([f"missing field(s) {', '.join(missing)}"] if missing else []) + (
                [f"unknown field(s) {', '.join(unknown)}"] if unknown else []
            )
            raise ArgumentError(
                argument, "; ".join(parts) + f" (the model's fields are {', '.join(self.fields)})"
            )
        for field, categories in zip(self.fields, self.categories):
            if is_categorical(columns[field]) != (categories is not None):
                expected = "a string" if categories is not None else "a number"
                raise ArgumentError(
                    argument, f"field {field} must be {expected}, as when the model was fitted"
                )

    def matrix(self, columns: Columns, argument: str = "features") -> np.ndarray:
        """The rows of ``columns`` as a float matrix, one column per name of :attr:`names`.

        A NULL makes the row's numeric column NaN, or its field's indicator columns NaN; an
        unseen category makes them 0. Bad columns raise as :meth:`check`.
        """
        self.check(columns, argument)
        rows = len(next(iter(columns.values()))) if columns else 0
        blocks = []
        for index, field in enumerate(self.fields):
            values = columns[field]
            if self.categories[index] is None:
                blocks.append(np.asarray(values, dtype=float).reshape(rows, 1))
                continue
            coded = self.coded(index)
            position = {category: column for column, category in enumerate(coded)}
            block = np.zeros((rows, len(coded)))
            for row, value in enumerate(values):
                if value is None:
                    block[row] = np.nan
                elif value in position:
                    block[row, position[value]] = 1.0
            blocks.append(block)
        return np.hstack(blocks) if blocks else np.empty((rows, 0))


class FeatureLearner:
    """Learns an :class:`Encoding` while rows stream in, batch by batch.

    :meth:`add` returns each batch as a matrix in *slot* order: one slot per numeric field,
    then one per category in the order categories were first seen (new slots are appended,
    so the matrices of earlier batches stay valid with zeros in the new slots).
    :meth:`encoding` gives the final encoding and, for each of its columns, its slot.
    """

    def __init__(self) -> None:
        self.fields: list[str] | None = None
        self.categorical: dict[str, bool] = {}
        self.slots: dict[tuple[str, str | None], int] = {}

    def add(self, columns: Columns) -> np.ndarray:
        """Encode a batch (complete rows only) in slot order, learning new categories."""
        if self.fields is None:
            self.fields = list(columns)
            self.categorical = {name: is_categorical(values) for name, values in columns.items()}
            for name in self.fields:
                if not self.categorical[name]:
                    self.slots[(name, None)] = len(self.slots)
        rows = len(next(iter(columns.values()))) if columns else 0
        for name in self.fields:
            if self.categorical[name]:
                for category in dict.fromkeys(columns[name]):
                    self.slots.setdefault((name, category), len(self.slots))
        matrix = np.zeros((rows, len(self.slots)))
        for name in self.fields:
            values = columns[name]
            if self.categorical[name]:
                matrix[np.arange(rows), [self.slots[(name, value)] for value in values]] = 1.0
            else:
                matrix[:, self.slots[(name, None)]] = values
        return matrix

    def merge(self, other: FeatureLearner) -> np.ndarray:
        """Learn what ``other`` learnt from other rows of the same fields (another partition);
        returns, for each of ``other``'s slots in order, its slot here."""
        if other.fields is None:
            return np.empty(0, dtype=int)
        if self.fields is None:
            self.fields, self.categorical = list(other.fields), dict(other.categorical)
        elif (self.fields, self.categorical) != (other.fields, other.categorical):
            raise ValueError(f"features {other.fields} cannot merge into {self.fields}")
        ordered = sorted(other.slots, key=other.slots.__getitem__)
        return np.array([self.slots.setdefault(key, len(self.slots)) for key in ordered], dtype=int)

    def encoding(self, reference: bool) -> tuple[Encoding, np.ndarray]:
        """The encoding learnt so far and the slot of each of its columns."""
        fields = self.fields or []
        categories = tuple(
            tuple(sorted(category for (field, category) in self.slots if field == name))
            if self.categorical[name]
            else None
            for name in fields
        )
        encoding = Encoding(tuple(fields), categories, reference)
        order = []
        for index, name in enumerate(fields):
            if categories[index] is None:
                order.append(self.slots[(name, None)])
            else:
                order.extend(self.slots[(name, category)] for category in encoding.coded(index))
        return encoding, np.asarray(order, dtype=int)


def encode(columns: Columns, reference: bool) -> tuple[Encoding, np.ndarray]:
    """Learn the encoding of complete ``columns`` and return it with their matrix."""
    learner = FeatureLearner()
    matrix = learner.add(columns)
    encoding, slots = learner.encoding(reference)
    return encoding, matrix[:, slots]


def class_name(value: Any) -> str | None:
    """A class label as text: booleans ``false``/``true``, integral numbers without ``.0``.

    >>> [class_name(v) for v in (True, 1, 1.0, 2.5, "yes", None)]
    ['true', '1', '1', '2.5', 'yes', None]
    """
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value)


def _sort_key(name: str) -> tuple:
    """Numbers in numeric order, before other text in text order."""
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


def class_names(values: Sequence[Any]) -> tuple[list[str], np.ndarray]:
    """The sorted distinct classes of labels (NULL left out) and each label's class index
    (-1 for NULL). Numbers sort numerically, so 0/1 and false/true labels have index 0/1.

    >>> class_names([True, False, None, True])
    (['false', 'true'], array([ 1,  0, -1,  1]))
    """
    return _indexed_classes([class_name(value) for value in values])


def _indexed_classes(names: Sequence[str | None]) -> tuple[list[str], np.ndarray]:
    """:func:`class_names` of labels already turned into names by :func:`class_name`."""
    classes = sorted({name for name in names if name is not None}, key=_sort_key)
    position = {name: index for index, name in enumerate(classes)}
    return classes, np.array([-1 if name is None else position[name] for name in names], dtype=int)


def labelled_rows(
    labels: Sequence[Any], columns: Columns
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """What a classifier is fitted on: the mask of the rows with a label and every feature
    (:func:`complete_rows`), the classes of their labels and each kept row's class index
    (:func:`class_names`).

    >>> labelled_rows([1, 0, None, 1], {"x": np.array([0.5, np.nan, 1.0, 2.0])})
    (array([ True, False, False,  True]), ['1'], array([0, 0]))
    """
    names = np.array([class_name(label) for label in labels], dtype=object)
    keep = complete_rows(columns, names)
    classes, target = _indexed_classes(list(names[keep]))
    return keep, classes, target


#: What a classifier's ``*_predict`` can return.
CLASS_OUTPUTS = ("probability", "label", "log_odds")


def class_output(
    log_probabilities: np.ndarray,
    classes: Sequence[str],
    kind: str,
    wanted: Sequence[Any] | None = None,
) -> np.ndarray:
    """A classifier's prediction per row from the log of its class probabilities (rows x
    classes).

    ``probability``: of class ``wanted`` (per row; default: the second class of a binary
    model, the predicted class of a multiclass one); ``label``: the index of the most
    probable class in ``classes`` (0/1 for 0/1 and boolean labels, as Spark ML's
    predictions); ``log_odds``: log(P(wanted) / P(first class)).
    """
    if kind not in CLASS_OUTPUTS:
        raise ArgumentError("type", f"type must be one of {', '.join(CLASS_OUTPUTS)}, got {kind!r}")
    rows = np.arange(len(log_probabilities))
    predicted = np.argmax(log_probabilities, axis=1) if len(rows) else np.zeros(0, dtype=int)
    if kind == "label":
        return np.where(np.isnan(log_probabilities).any(axis=1), np.nan, predicted)
    if wanted is None:
        column = np.full(len(rows), 1) if len(classes) == 2 else predicted
    else:
        position = {name: index for index, name in enumerate(classes)}
        names = [class_name(value) for value in wanted]
        unknown = sorted({name for name in names if name is not None and name not in position})
        if unknown:
            raise ArgumentError(
                "class",
                f"class {unknown[0]!r} is not one of the model's classes {', '.join(classes)}",
            )
        column = np.array([position.get(name, -1) for name in names], dtype=int)
    chosen = np.where(column >= 0, log_probabilities[rows, np.clip(column, 0, None)], np.nan)
    if kind == "probability":
        return np.exp(chosen)
    with np.errstate(invalid="ignore"):
        return chosen - log_probabilities[:, 0]

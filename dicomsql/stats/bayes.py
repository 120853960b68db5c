"""Naive Bayes classification: Gaussian for numeric features, categorical for string ones.

Numeric fields follow scikit-learn's ``GaussianNB`` (per-class mean and variance, the
variances widened by ``var_smoothing`` times the largest feature variance); string fields
follow ``CategoricalNB`` (per-class category frequencies with additive ``smoothing``). Class
priors are the class frequencies. The model is plain numbers, so a mixed model's joint
log-likelihood is the sum of the two families' terms.

At prediction a NULL feature, or a category not seen at fit time, contributes nothing: it
is equally likely under every class, so the other features decide.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import logsumexp

from ..options import Option, number
from .family import Family, Rows, Unfit
from .features import Encoding, class_output, is_categorical, labelled_rows

__all__ = [
    "OPTIONS",
    "MODEL_FIELDS",
    "SUMMARY_FIELDS",
    "FAMILY",
    "fit",
    "log_probabilities",
    "predict",
    "summary",
]

OPTIONS: tuple[Option, ...] = (
    Option(
        "var_smoothing",
        1e-9,
        "Share of the largest variance added to every variance (GaussianNB).",
        number(0.0),
    ),
    Option(
        "smoothing",
        1.0,
        "Additive (Laplace) smoothing of the category counts (CategoricalNB alpha).",
        number(0.0, open_low=True),
    ),
)

#: (field, SQL type) of a model. ``mean`` and ``variance`` are classes x fields (NULL for a
#: string field); ``category_count`` is classes x fields x categories (empty for a number).
MODEL_FIELDS: tuple[tuple[str, str], ...] = (
    ("features", "array<string>"),
    ("fields", "array<string>"),
    ("categories", "array<array<string>>"),
    ("classes", "array<string>"),
    ("class_count", "array<double>"),
    ("mean", "array<array<double>>"),
    ("variance", "array<array<double>>"),
    ("category_count", "array<array<array<double>>>"),
    ("var_smoothing", "double"),
    ("smoothing", "double"),
    ("n", "bigint"),
    ("n_dropped", "bigint"),
    ("error", "string"),
)

#: (column, SQL type) of ``summary``: per class and feature, the mean and standard deviation of
#: a number, or the probability of each category.
SUMMARY_FIELDS: tuple[tuple[str, str], ...] = (
    ("class", "string"),
    ("prior", "double"),
    ("feature", "string"),
    ("category", "string"),
    ("mean", "double"),
    ("std", "double"),
    ("probability", "double"),
)

FAMILY = Family(OPTIONS, MODEL_FIELDS, SUMMARY_FIELDS, recorded=("var_smoothing", "smoothing"))


def fit(
    labels: Sequence[Any],
    columns: Mapping[str, np.ndarray],
    options: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Fit a naive Bayes classifier of ``labels`` (any type) on the feature ``columns``
    (numbers as floats with NaN for NULL, strings as object arrays with None). Rows with a
    NULL are left out (``n_dropped``). Invalid ``options`` raise ``ValueError``."""
    settings = FAMILY.settings(options)
    keep, classes, target = labelled_rows(labels, columns)
    rows = Rows(keep)
    described = {
        "features": list(columns),
        "fields": list(columns),
        "classes": classes,
        **rows.counts(),
    }
    return FAMILY.model(
        settings, described, lambda: _estimate(rows.take(columns), classes, target, settings)
    )


def _estimate(
    kept: Mapping[str, np.ndarray], classes: list[str], target: np.ndarray, settings: dict[str, Any]
) -> dict[str, Any]:
    """Per class the means and variances of the numbers and the category counts of the
    strings of the complete rows ``kept``."""
    if not classes:
        raise Unfit("no complete rows")
    fields = list(kept)
    numeric = [name for name in fields if not is_categorical(kept[name])]
    epsilon = settings["var_smoothing"] * max((np.var(kept[name]) for name in numeric), default=0.0)
    mean, variance = [], []
    for k in range(len(classes)):
        rows = target == k
        mean.append(
            [None if name not in numeric else float(kept[name][rows].mean()) for name in fields]
        )
        variance.append(
            [
                None if name not in numeric else float(kept[name][rows].var() + epsilon)
                for name in fields
            ]
        )
    categories: list[list[str] | None] = []
    category_count: list[list[list[float]]] = [[[] for _ in fields] for _ in classes]
    for index, name in enumerate(fields):
        if name in numeric:
            categories.append(None)
            continue
        known = sorted(set(kept[name]))
        categories.append(known)
        position = {category: column for column, category in enumerate(known)}
        codes = np.array([position[value] for value in kept[name]], dtype=int)
        for k in range(len(classes)):
            category_count[k][index] = (
                np.bincount(codes[target == k], minlength=len(known)).astype(float).tolist()
            )
    return {
        "categories": categories,
        "class_count": np.bincount(target, minlength=len(classes)).astype(float),
        "mean": mean,
        "variance": variance,
        "category_count": category_count,
    }


def log_probabilities(model: Mapping[str, Any], columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Log posterior class probabilities (rows x classes); NULL features and unseen
    categories are left out of the likelihood."""
    encoding = Encoding.from_model(model, reference=False)
    encoding.check(columns)
    class_count = np.asarray(model["class_count"], dtype=float)
    rows = len(next(iter(columns.values()))) if columns else 0
    joint = np.tile(np.log(class_count / class_count.sum()), (rows, 1))
    for index, field in enumerate(model["fields"]):
        values = columns[field]
        if encoding.categories[index] is None:
            mean = np.array([row[index] for row in model["mean"]], dtype=float)
            variance = np.array([row[index] for row in model["variance"]], dtype=float)
            terms = -0.5 * (np.log(2 * np.pi * variance) + (values[:, None] - mean) ** 2 / variance)
            joint += np.nan_to_num(terms, nan=0.0)
            continue
        counts = np.array(
            [row[index] for row in model["category_count"]], dtype=float
        )  # classes x categories
        smoothed = counts + model["smoothing"]
        log_p = np.log(smoothed) - np.log(smoothed.sum(axis=1, keepdims=True))
        position = {category: column for column, category in enumerate(encoding.categories[index])}
        codes = np.array([position.get(value, -1) for value in values], dtype=int)
        seen = codes >= 0
        joint[seen] += log_p[:, codes[seen]].T
    return joint - logsumexp(joint, axis=1, keepdims=True)


def predict(
    model: Mapping[str, Any],
    columns: Mapping[str, np.ndarray],
    kind: str = "probability",
    wanted: Sequence[Any] | None = None,
) -> np.ndarray:
    """``probability`` (default), ``label`` or ``log_odds`` per row: see
    :func:`dicomsql.stats.features.class_output`."""
    return class_output(log_probabilities(model, columns), model["classes"], kind, wanted)


def summary(model: Mapping[str, Any]) -> Iterator[tuple]:
    """Per class: its prior, then per numeric feature its mean and standard deviation, per
    string feature the (smoothed) probability of each category."""
    if model.get("class_count") is None:
        return
    class_count = np.asarray(model["class_count"], dtype=float)
    for k, name in enumerate(model["classes"]):
        prior = float(class_count[k] / class_count.sum())
        for index, field in enumerate(model["fields"]):
            categories = (model.get("categories") or [None] * len(model["fields"]))[index]
            if categories is None:
                yield (
                    name,
                    prior,
                    field,
                    None,
                    model["mean"][k][index],
                    float(np.sqrt(model["variance"][k][index])),
                    None,
                )
                continue
            counts = np.asarray(model["category_count"][k][index], dtype=float) + model["smoothing"]
            for category, probability in zip(categories, counts / counts.sum()):
                yield (name, prior, field, category, None, None, float(probability))

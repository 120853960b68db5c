"""Random forests for classification and regression, stored as plain arrays.

Trees are grown by scikit-learn (``RandomForestClassifier`` / ``RandomForestRegressor``,
CART with bootstrap samples and random feature subsets); the model keeps each tree as arrays
(split feature, threshold, children, node values), never a pickled object, so a model read
back from a table cannot execute code. Predictions walk those arrays in numpy, comparing
features as float32 as scikit-learn does, so they equal scikit-learn's for the same trees.

String fields are one-hot encoded with a column per category (full coding); an unseen
category is "none of the known ones" (all its columns 0).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ArgumentError
from ..options import SEED, Option, boolean, choice, integer
from .family import Family, Rows, Unfit, complete
from .features import Encoding, class_output, encode, labelled_rows

__all__ = [
    "OPTIONS",
    "MODEL_FIELDS",
    "SUMMARY_FIELDS",
    "FAMILY",
    "TASKS",
    "fit",
    "predict",
    "summary",
]

TASKS = ("classification", "regression")


def _max_features(text: str) -> str | float:
    value = text.strip().lower()
    if value in ("sqrt", "log2", "all"):
        return value
    try:
        share = float(value)
    except ValueError:
        raise ValueError("sqrt, log2, all or a share in (0, 1]") from None
    if not 0 < share <= 1:
        raise ValueError("sqrt, log2, all or a share in (0, 1]")
    return share


OPTIONS: tuple[Option, ...] = (
    Option(
        "task",
        None,
        "classification or regression (default: from the label's type).",
        choice(*TASKS),
    ),
    Option("trees", 100, "Number of trees.", integer(1, 2000)),
    Option("max_depth", 10, "Largest depth of a tree (bounds the model's size).", integer(1, 32)),
    Option("min_samples_leaf", 1, "Fewest training rows in a leaf.", integer(1, 1_000_000)),
    Option(
        "max_features",
        None,
        "Features tried per split: sqrt (classification default), log2, all (regression default) or a share.",
        _max_features,
    ),
    Option("bootstrap", True, "Grow each tree on a bootstrap sample.", boolean),
    Option("seed", 0, "Random seed: the same data and seed give the same forest.", SEED),
)

#: (field, SQL type) of a model. Per tree: ``tree_feature`` (the column of ``features`` a node
#: splits on, -1 at a leaf), ``tree_threshold`` (go left when value <= threshold),
#: ``tree_left``/``tree_right`` (child nodes, -1 at a leaf) and ``tree_value`` (per node, the
#: class probabilities, flattened nodes x classes, or the mean of a regression).
MODEL_FIELDS: tuple[tuple[str, str], ...] = (
    ("task", "string"),
    ("features", "array<string>"),
    ("fields", "array<string>"),
    ("categories", "array<array<string>>"),
    ("classes", "array<string>"),
    ("feature_importances", "array<double>"),
    ("trees", "bigint"),
    ("max_depth", "bigint"),
    ("min_samples_leaf", "bigint"),
    ("max_features", "string"),
    ("bootstrap", "boolean"),
    ("seed", "bigint"),
    ("tree_feature", "array<array<bigint>>"),
    ("tree_threshold", "array<array<double>>"),
    ("tree_left", "array<array<bigint>>"),
    ("tree_right", "array<array<bigint>>"),
    ("tree_value", "array<array<double>>"),
    ("n", "bigint"),
    ("n_dropped", "bigint"),
    ("error", "string"),
)

#: (column, SQL type) of ``summary``: one row per feature, most important first.
SUMMARY_FIELDS: tuple[tuple[str, str], ...] = (
    ("feature", "string"),
    ("feature_importance", "double"),
    ("rank", "bigint"),
)

FAMILY = Family(
    OPTIONS,
    MODEL_FIELDS,
    SUMMARY_FIELDS,
    recorded=("trees", "max_depth", "min_samples_leaf", "bootstrap", "seed"),
)


def fit(
    labels: Sequence[Any],
    columns: Mapping[str, np.ndarray],
    options: Mapping[str, str] | None = None,
    default_task: str = "classification",
) -> dict[str, Any]:
    """Grow a random forest predicting ``labels`` from the feature ``columns`` (numbers as
    floats with NaN for NULL, strings as object arrays with None). ``default_task`` applies
    when the ``task`` option is not given. Rows with a NULL are left out (``n_dropped``).
    Invalid ``options`` raise ``ValueError`` naming the option."""
    settings = FAMILY.settings(options)
    task = settings["task"] or default_task
    classification = task == "classification"
    classes = None
    if classification:
        keep, classes, target = labelled_rows(labels, columns)
        rows = Rows(keep)
    else:
        values = np.array(
            [np.nan if label is None else float(label) for label in labels], dtype=float
        )
        rows = complete(values, columns)
        target = rows.take(values)
    encoding, matrix = encode(rows.take(columns), reference=False)
    max_features = settings["max_features"] or ("sqrt" if classification else "all")
    described = {
        **encoding.as_model(),
        "task": task,
        "max_features": str(max_features),
        **rows.counts(),
    }
    return FAMILY.model(
        settings, described, lambda: _grow(matrix, target, classes, max_features, settings)
    )


def _grow(
    matrix: np.ndarray,
    target: np.ndarray,
    classes: list[str] | None,
    max_features: str | float,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """The forest's trees as arrays (``classes`` None for a regression)."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    if len(matrix) == 0:
        raise Unfit("no complete rows")
    if matrix.shape[1] == 0:
        raise Unfit("no features")
    classification = classes is not None
    estimator = (RandomForestClassifier if classification else RandomForestRegressor)(
        n_estimators=settings["trees"],
        max_depth=settings["max_depth"],
        min_samples_leaf=settings["min_samples_leaf"],
        max_features=None if max_features == "all" else max_features,
        bootstrap=settings["bootstrap"],
        random_state=settings["seed"],
        n_jobs=1,
    )
    estimator.fit(matrix, target)
    trees = [tree.tree_ for tree in estimator.estimators_]
    return {
        "classes": classes,
        "feature_importances": estimator.feature_importances_,
        "tree_feature": [np.where(tree.children_left < 0, -1, tree.feature) for tree in trees],
        "tree_threshold": [tree.threshold for tree in trees],
        "tree_left": [tree.children_left for tree in trees],
        "tree_right": [tree.children_right for tree in trees],
        "tree_value": [_node_values(tree.value, classification).ravel() for tree in trees],
    }


def _node_values(value: np.ndarray, classification: bool) -> np.ndarray:
    """Per node: class probabilities (classification) or the mean (regression)."""
    value = value[:, 0, :]
    return value / value.sum(axis=1, keepdims=True) if classification else value[:, 0]


def _leaves(
    matrix: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
) -> np.ndarray:
    """The leaf each row reaches in one tree."""
    node = np.zeros(len(matrix), dtype=np.int64)
    rows = np.arange(len(matrix))
    active = feature[node] >= 0
    while active.any():
        at = node[active]
        goes_left = matrix[rows[active], feature[at]] <= threshold[at]
        node[active] = np.where(goes_left, left[at], right[at])
        active = feature[node] >= 0
    return node


def _forest_mean(model: Mapping[str, Any], matrix: np.ndarray, width: int) -> np.ndarray:
    """The mean over trees of the leaf values of each row (rows x width)."""
    total = np.zeros((len(matrix), width))
    for feature, threshold, left, right, value in zip(
        model["tree_feature"],
        model["tree_threshold"],
        model["tree_left"],
        model["tree_right"],
        model["tree_value"],
    ):
        feature = np.asarray(feature, dtype=np.int64)
        values = np.asarray(value, dtype=float).reshape(len(feature), width)
        total += values[
            _leaves(matrix, feature, np.asarray(threshold), np.asarray(left), np.asarray(right))
        ]
    return total / len(model["tree_feature"])


def predict(
    model: Mapping[str, Any],
    columns: Mapping[str, np.ndarray],
    kind: str | None = None,
    wanted: Sequence[Any] | None = None,
) -> np.ndarray:
    """Predictions per row (NaN where a feature is NULL): the forest's mean for regression
    (``type`` ``value``);
    for classification ``probability`` (default), ``label`` or ``log_odds`` (see
    :func:`dicomsql.stats.features.class_output`) from the trees' mean class probabilities."""
    matrix = Encoding.from_model(model, reference=False).matrix(columns)
    missing = np.isnan(matrix).any(axis=1)
    matrix = np.nan_to_num(matrix).astype(np.float32)  # scikit-learn compares float32 features
    if model["task"] == "regression":
        if kind not in (None, "value"):
            raise ArgumentError(
                "type",
                f"a regression forest predicts its value: type must be 'value', got {kind!r}",
            )
        result = _forest_mean(model, matrix, 1)[:, 0]
        result[missing] = np.nan
        return result
    with np.errstate(divide="ignore"):
        log_p = np.log(_forest_mean(model, matrix, len(model["classes"])))
    log_p[missing] = np.nan
    return class_output(log_p, model["classes"], kind or "probability", wanted)


def summary(model: Mapping[str, Any]) -> Iterator[tuple]:
    """One row per feature with its impurity-based ``feature_importance`` (summing to 1)
    and rank."""
    if model.get("feature_importances") is None:
        return
    importances = np.asarray(model["feature_importances"], dtype=float)
    for rank, index in enumerate(np.argsort(-importances, kind="stable"), start=1):
        yield model["features"][index], float(importances[index]), rank

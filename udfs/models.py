"""Predictive models in SQL: linear and logistic regression, naive Bayes, random forests,
collaborative filtering (ALS), and the metrics that evaluate them.

The lifecycle is the survival models': a ``*_fit`` aggregate returns a model struct per
``GROUP BY`` group; ``*_predict`` applies one (features matched by field name); a
``*_summary`` table function lists its estimates. Features are a STRUCT of numbers and
strings (strings are one-hot encoded, categories kept in the model)::

    CREATE TABLE risk AS SELECT site, logreg_fit(died, struct(age, smoker, sex)) AS model
                         FROM patients WHERE split_fraction(PatientID, 1) < 0.8 GROUP BY site;
    SELECT binary_metrics(p.died, logreg_predict(r.model, struct(p.age, p.smoker, p.sex)))
    FROM patients p JOIN risk r USING (site) WHERE split_fraction(p.PatientID, 1) >= 0.8;
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa

from dicomsql.options import Bound
from dicomsql.stats import als, bayes, forest, linear, logistic, metrics

from .arrow import (
    Expected,
    Models,
    labels,
    model_row,
    numbers,
    objects,
    predict_rows,
    rows_of,
    struct_features,
)
from .registry import Struct, Table, column, constant, options, sql_function

LINREG_MODEL = Struct(linear.MODEL_FIELDS, "LINREG_MODEL")
LOGREG_MODEL = Struct(logistic.MODEL_FIELDS, "LOGREG_MODEL")
NAIVE_BAYES_MODEL = Struct(bayes.MODEL_FIELDS, "NAIVE_BAYES_MODEL")
RANDOM_FOREST_MODEL = Struct(forest.MODEL_FIELDS, "RANDOM_FOREST_MODEL")
ALS_MODEL = Struct(als.MODEL_FIELDS, "ALS_MODEL")
BINARY_METRICS = Struct(metrics.BINARY_FIELDS, "BINARY_METRICS")
MULTICLASS_METRICS = Struct(metrics.MULTICLASS_FIELDS, "MULTICLASS_METRICS")
REGRESSION_METRICS = Struct(metrics.REGRESSION_FIELDS, "REGRESSION_METRICS")

FEATURES = column("features", "STRUCT", struct_features)
LABEL = column("label", "ANY", labels)


def _classes(
    family: ModuleType, model: Models, features: dict, type: str | None, wanted: np.ndarray | None
) -> np.ndarray:
    """``family.predict`` per distinct model, for ``*_predict(model, features [, type [, class]])``."""
    return predict_rows(
        model,
        lambda fitted, where: family.predict(
            fitted, rows_of(features, where), type, None if wanted is None else wanted[where]
        ),
    )


def _class_prediction(model_type: Struct, default_type: str | None) -> tuple:
    """The arguments of a classifier's ``*_predict``: model, features, type, class."""
    return (
        column("model", model_type, Models),
        FEATURES,
        constant("type", "STRING", str, default=default_type),
        column("class", "ANY", objects, default=None),
    )


# --- linear regression ----------------------------------------------------------------------

_LINREG_EXAMPLE_FIT = (
    "SELECT linreg_fit(tumor_mm, struct(age, smoker, sex)) AS model FROM demo_patients"
)


@sql_function(
    column("label", "DOUBLE", numbers),
    FEATURES,
    options(linear.OPTIONS),
    returns=LINREG_MODEL,
    kind="aggregate",
    streaming=True,
    example="SELECT site, linreg_fit(tumor_mm, struct(age, smoker, sex)) AS model FROM demo_patients GROUP BY site",
)
def linreg_fit(batches: Iterator[tuple[np.ndarray, dict]], options: dict) -> dict:
    """Fit a linear regression (ordinary least squares) per group, streamed in one pass from
    sufficient statistics (O(p^2) memory): coef, se, t, p and interval per feature, the
    intercept with its inference, r2, adj_r2, the F test, residual_std_error, n.

    ``features`` is a STRUCT of numbers and strings (one-hot encoded, the first category
    the reference); ridge fits (``l2``, as scikit-learn's Ridge alpha) carry no standard
    errors. Rows with a NULL are left out (``n_dropped``); a group that cannot be fitted
    gives NULL estimates and the reason in ``error``. One streaming aggregate per query.
    """
    accumulator, seen = linear.LinregAccumulator(options), False
    for label, features in batches:
        accumulator.add(label, features)
        seen = True
    return accumulator.model() if seen else {"error": "no rows"}


@sql_function(
    column("model", LINREG_MODEL, Models),
    FEATURES,
    returns="DOUBLE",
    example="SELECT p.PatientID, linreg_predict(m.model, struct(p.age, p.smoker, p.sex)) FROM demo_patients p "
    f"CROSS JOIN ({_LINREG_EXAMPLE_FIT}) m",
)
def linreg_predict(model: Models, features: dict) -> np.ndarray:
    """The value a ``linreg_fit`` model predicts; features matched to the model by field
    name (a missing or unknown field is an error naming it), an unseen category counts as
    the reference category, a NULL feature gives NULL."""
    return predict_rows(
        model, lambda fitted, where: linear.predict(fitted, rows_of(features, where))
    )


@sql_function(
    column("model", LINREG_MODEL, model_row),
    returns=Table(linear.SUMMARY_FIELDS),
    kind="table",
    example=f"SELECT s.* FROM ({_LINREG_EXAMPLE_FIT}) m, LATERAL linreg_summary(m.model) s",
)
def linreg_summary(model: dict | None) -> Iterable[tuple]:
    """One row per estimate of a ``linreg_fit`` model (the intercept first): feature, coef,
    se, t, p, ci_lower, ci_upper, like statsmodels' summary."""
    return () if model is None else linear.summary(model)


# --- logistic regression --------------------------------------------------------------------

_LOGREG_EXAMPLE_FIT = (
    "SELECT logreg_fit(died, struct(age, smoker, tumor_mm, sex)) AS model FROM demo_patients"
)


@sql_function(
    LABEL,
    FEATURES,
    options(logistic.OPTIONS),
    returns=LOGREG_MODEL,
    kind="aggregate",
    example=_LOGREG_EXAMPLE_FIT,
)
def logreg_fit(label: list, features: dict, options: dict) -> dict:
    """Fit a logistic regression per group: binary for a label with two classes (the model
    of the second class in sorted order: 1, true), multinomial for more (one coefficient row
    per class after the first, in ``class_coef``). Binary fits carry coef, odds_ratio, se, z,
    p and interval per feature, and the intercept's; also log-likelihoods, pseudo_r2, the
    likelihood-ratio test, aic, iterations, converged.

    The penalties are on the summed log-likelihood (``l2`` = 1/C of scikit-learn, ``l1`` =
    statsmodels' alpha); penalised fits carry no standard errors. Rows with a NULL are left
    out; a group that cannot be fitted (one class, perfect separation, collinear
    features...) gives NULL estimates and the reason in ``error``.
    """
    return logistic.fit(label, features, options)


@sql_function(
    *_class_prediction(LOGREG_MODEL, "probability"),
    returns="DOUBLE",
    example="SELECT p.PatientID, logreg_predict(m.model, struct(p.age, p.smoker, p.tumor_mm, p.sex)) AS p_died "
    f"FROM demo_patients p CROSS JOIN ({_LOGREG_EXAMPLE_FIT}) m",
)
def logreg_predict(
    model: Models, features: dict, type: str, class_: np.ndarray | None
) -> np.ndarray:
    """Predict from a ``logreg_fit`` model. ``type``: ``probability`` (default) of ``class``
    (default: the second class of a binary model, the most probable class otherwise),
    ``label`` (the index of the most probable class in ``model.classes``, which is the label
    itself for 0/1 and boolean labels: ``model.classes[int(...)]`` gives its name) or
    ``log_odds`` (of ``class`` against the first class). Features are matched by field
    name; an unseen category counts as the reference category; a NULL feature gives NULL."""
    return _classes(logistic, model, features, type, class_)


@sql_function(
    column("model", LOGREG_MODEL, model_row),
    returns=Table(logistic.SUMMARY_FIELDS),
    kind="table",
    example=f"SELECT s.* FROM ({_LOGREG_EXAMPLE_FIT}) m, LATERAL logreg_summary(m.model) s",
)
def logreg_summary(model: dict | None) -> Iterable[tuple]:
    """One row per class after the first and estimate (the intercept first): class,
    feature, coef, odds_ratio, se, z, p, ci_lower, ci_upper."""
    return () if model is None else logistic.summary(model)


# --- naive Bayes ----------------------------------------------------------------------------

_CT_FEATURES = "struct(KVP, XRayTubeCurrent, SliceThickness, ConvolutionKernel[0] AS kernel)"
_BAYES_EXAMPLE_FIT = f"SELECT naive_bayes_fit(ProtocolName, {_CT_FEATURES}) AS model FROM demo_images WHERE Modality = 'CT'"


@sql_function(
    LABEL,
    FEATURES,
    options(bayes.OPTIONS),
    returns=NAIVE_BAYES_MODEL,
    kind="aggregate",
    example=_BAYES_EXAMPLE_FIT,
)
def naive_bayes_fit(label: list, features: dict, options: dict) -> dict:
    """Fit a naive Bayes classifier per group: Gaussian for number fields (as scikit-learn's
    GaussianNB), categorical for string fields (as CategoricalNB); priors are the class
    frequencies."""
    return bayes.fit(label, features, options)


@sql_function(
    *_class_prediction(NAIVE_BAYES_MODEL, "probability"),
    returns="DOUBLE",
    example=f"SELECT m.model.classes[int(naive_bayes_predict(m.model, {_CT_FEATURES.replace('struct(', 'struct(i.')}, "
    f"'label'))] AS protocol FROM demo_images i CROSS JOIN ({_BAYES_EXAMPLE_FIT}) m WHERE i.Modality = 'CT'",
)
def naive_bayes_predict(
    model: Models, features: dict, type: str, class_: np.ndarray | None
) -> np.ndarray:
    """Predict from a ``naive_bayes_fit`` model; ``type`` and ``class`` as ``logreg_predict``.
    A NULL feature or an unseen category is left out of the likelihood (it is equally
    likely under every class), so the other features decide."""
    return _classes(bayes, model, features, type, class_)


@sql_function(
    column("model", NAIVE_BAYES_MODEL, model_row),
    returns=Table(bayes.SUMMARY_FIELDS),
    kind="table",
    example="SELECT s.* FROM (SELECT naive_bayes_fit(sex, struct(age, tumor_mm)) AS model FROM demo_patients) m, "
    "LATERAL naive_bayes_summary(m.model) s",
)
def naive_bayes_summary(model: dict | None) -> Iterable[tuple]:
    """Per class and feature: the class prior, a number's mean and standard deviation, or
    each category's probability."""
    return () if model is None else bayes.summary(model)


# --- random forests -------------------------------------------------------------------------

_FOREST_EXAMPLE_FIT = (
    "SELECT random_forest_fit(died, struct(age, smoker, tumor_mm, sex)) AS model FROM demo_patients"
)


def forest_labels(array: pa.Array) -> tuple[list, str]:
    """The labels and the task they call for by default: ``regression`` for DOUBLE and
    DECIMAL labels, ``classification`` for strings, booleans and integers."""
    continuous = pa.types.is_floating(array.type) or pa.types.is_decimal(array.type)
    return labels(array), "regression" if continuous else "classification"


@sql_function(
    column("label", "ANY", forest_labels),
    FEATURES,
    options(forest.OPTIONS),
    returns=RANDOM_FOREST_MODEL,
    kind="aggregate",
    example="SELECT random_forest_fit(died, struct(age, smoker, tumor_mm, sex), map('trees', '50')) FROM demo_patients",
)
def random_forest_fit(label: tuple[list, str], features: dict, options: dict) -> dict:
    """Grow a random forest per group (scikit-learn's CART trees, stored as plain arrays:
    a stored model never runs code). The task is ``classification`` by default for string,
    boolean and integer labels, ``regression`` for DOUBLE ones. The model has
    ``feature_importances`` aligned with ``features``."""
    values, task = label
    return forest.fit(values, features, options, default_task=task)


@sql_function(
    *_class_prediction(RANDOM_FOREST_MODEL, None),
    returns="DOUBLE",
    example="SELECT random_forest_predict(m.model, struct(p.age, p.smoker, p.tumor_mm, p.sex)) FROM demo_patients p "
    f"CROSS JOIN ({_FOREST_EXAMPLE_FIT}) m",
)
def random_forest_predict(
    model: Models, features: dict, type: str | None, class_: np.ndarray | None
) -> np.ndarray:
    """Predict from a ``random_forest_fit`` model: the mean of the trees for regression;
    for classification ``type`` and ``class`` as ``logreg_predict`` (probabilities are the
    trees' mean, as scikit-learn's). An unseen category matches none of the known ones."""
    return _classes(forest, model, features, type, class_)


@sql_function(
    column("model", RANDOM_FOREST_MODEL, model_row),
    returns=Table(forest.SUMMARY_FIELDS),
    kind="table",
    example=f"SELECT s.* FROM ({_FOREST_EXAMPLE_FIT}) m, LATERAL random_forest_summary(m.model) s",
)
def random_forest_summary(model: dict | None) -> Iterable[tuple]:
    """One row per feature with its impurity-based ``feature_importance`` (as the model's
    ``feature_importances``, summing to 1) and rank, most important first."""
    return () if model is None else forest.summary(model)


# --- collaborative filtering ----------------------------------------------------------------

_ALS_EXAMPLE_FIT = "SELECT als_fit(reader, capture, quality) AS model FROM demo_reads"


@sql_function(
    column("user", "ANY", labels),
    column("item", "ANY", labels),
    column("rating", "DOUBLE", numbers),
    options(als.OPTIONS),
    returns=ALS_MODEL,
    kind="aggregate",
    example="SELECT als_fit(reader, capture, quality, map('rank', '3')) FROM demo_reads",
)
def als_fit(user: list, item: list, rating: np.ndarray, options: dict) -> dict:
    """Factorise user x item ratings by alternating least squares, as Spark ML's ALS
    (regularisation weighted by each user's and item's number of ratings); with ``implicit``
    the ratings are interaction strengths (Hu-Koren-Volinsky). The model keeps the users,
    items and their factors, and the training rmse."""
    return als.fit(user, item, rating, options)


@sql_function(
    column("model", ALS_MODEL, Models),
    column("user", "ANY", objects),
    column("item", "ANY", objects),
    returns="DOUBLE",
    example=f"SELECT r.reader, r.capture, als_predict(m.model, r.reader, r.capture) FROM demo_reads r CROSS JOIN ({_ALS_EXAMPLE_FIT}) m",
)
def als_predict(model: Models, user: np.ndarray, item: np.ndarray) -> np.ndarray:
    """The rating (or implicit preference) an ``als_fit`` model predicts for a user and an
    item; NULL for a user or item the model has never seen."""
    return predict_rows(model, lambda fitted, where: als.predict(fitted, user[where], item[where]))


@sql_function(
    column("model", ALS_MODEL, model_row),
    column("user", "ANY"),
    constant("k", "INT", bound=Bound(1, 10_000)),
    returns=Table((("item", "string"), ("score", "double"), ("rank", "bigint"))),
    kind="table",
    example=f"SELECT r.* FROM ({_ALS_EXAMPLE_FIT}) m, LATERAL als_recommend(m.model, 'R01', 3) r",
)
def als_recommend(model: dict | None, user: Any, k: int) -> Iterable[tuple]:
    """The ``k`` items with the highest predicted score for ``user``, best first (rank 1);
    no rows for an unknown user. Items the user rated are included: anti-join the ratings
    to leave them out."""
    return () if model is None or user is None else als.recommend(model, user, k)


@sql_function(
    column("model", ALS_MODEL, model_row),
    returns=Table(als.SUMMARY_FIELDS),
    kind="table",
    example="SELECT s.kind, s.id, s.norm FROM (SELECT als_fit(reader, capture, quality, map('rank', '3')) AS model "
    "FROM demo_reads) m, LATERAL als_summary(m.model) s",
)
def als_summary(model: dict | None) -> Iterable[tuple]:
    """One row per user (``kind`` ``user``), then per item (``item``) of an ``als_fit``
    model: its ``id``, its latent ``factors`` and their length (``norm``; near 0 for a user
    or item the model knows little about). Dot products of factors divided by the norms
    are cosine similarities between users, or between items. The fit's diagnostics (rmse,
    n) are fields of the model itself."""
    return () if model is None else als.summary(model)


# --- evaluation -----------------------------------------------------------------------------


def binary_labels(array: pa.Array) -> np.ndarray:
    """0/1 or boolean labels as floats (NULL as NaN)."""
    values = numbers(array)
    finite = values[np.isfinite(values)]
    other = finite[~np.isin(finite, (0.0, 1.0))]
    if len(other):
        raise Expected("0/1 or boolean", f"{other[0]:g}")
    return values


@sql_function(
    column("label", "BOOLEAN or 0/1", binary_labels),
    column("score", "DOUBLE", numbers),
    options(metrics.BINARY_OPTIONS),
    returns=BINARY_METRICS,
    kind="aggregate",
    example="SELECT binary_metrics(p.died, logreg_predict(m.model, struct(p.age, p.smoker, p.tumor_mm, p.sex))).auc "
    f"FROM demo_patients p CROSS JOIN ({_LOGREG_EXAMPLE_FIT}) m",
)
def binary_metrics(label: np.ndarray, score: np.ndarray, options: dict) -> dict:
    """Evaluate scores against 0/1 (or boolean) labels, as scikit-learn's metrics: auc,
    average_precision, logloss (NULL unless the scores are probabilities), accuracy,
    precision, recall and f1 at ``threshold`` (a score at or above it predicts 1), and the
    ROC (roc_fpr, roc_tpr, roc_thresholds) and precision-recall curves."""
    return metrics.binary(label, score, options)


@sql_function(
    LABEL,
    column("predicted", "ANY", labels),
    returns=MULTICLASS_METRICS,
    kind="aggregate",
    example="SELECT multiclass_metrics(sex, IF(tumor_mm > 15, 'M', 'F')).accuracy FROM demo_patients",
)
def multiclass_metrics(label: list, predicted: list) -> dict:
    """Evaluate predicted classes against labels (any type, compared as text, 1 = 1.0 =
    '1'): accuracy, Cohen's kappa, macro precision/recall/f1, weighted f1, and per class
    (``classes``) precision, recall, f1 and support."""
    return metrics.multiclass(label, predicted)


@sql_function(
    column("label", "DOUBLE", numbers),
    column("predicted", "DOUBLE", numbers),
    returns=REGRESSION_METRICS,
    kind="aggregate",
    example="SELECT regression_metrics(p.tumor_mm, linreg_predict(m.model, struct(p.age, p.smoker, p.sex))).rmse "
    f"FROM demo_patients p CROSS JOIN ({_LINREG_EXAMPLE_FIT}) m",
)
def regression_metrics(label: np.ndarray, predicted: np.ndarray) -> dict:
    """Evaluate predicted values: mse, rmse, mae, r2, explained_variance, n."""
    return metrics.regression(label, predicted)


def label_and_prediction(row: Any) -> tuple[Any, Any]:
    """The first two columns of a table's row: the label and the prediction."""
    if len(row) < 2:
        raise Expected("a table of (label, prediction) columns", f"{len(row)} column(s)")
    return row[0], row[1]


@sql_function(
    column("table", "TABLE(label, prediction)", label_and_prediction),
    returns=Table((("label", "string"), ("predicted", "string"), ("count", "bigint"))),
    kind="table",
    example="SELECT * FROM confusion_matrix(TABLE(SELECT sex, IF(tumor_mm > 15, 'M', 'F') FROM demo_patients))",
    name="confusion_matrix",
)
class ConfusionMatrix:
    """The confusion matrix of a table of (label, prediction) rows, one row per pair of
    classes, zeros included (classes compared as text, as ``multiclass_metrics``)."""

    @staticmethod
    def analyze(table: Any) -> Any:
        from pyspark.sql.types import LongType, StringType, StructField, StructType
        from pyspark.sql.udtf import AnalyzeResult

        schema = StructType(
            [
                StructField("label", StringType()),
                StructField("predicted", StringType()),
                StructField("count", LongType()),
            ]
        )
        return AnalyzeResult(schema=schema, withSinglePartition=True)

    def __init__(self) -> None:
        self.pairs: list[tuple[Any, Any]] = []

    def eval(self, table: tuple[Any, Any]) -> Iterator[tuple]:
        self.pairs.append(table)
        return iter(())

    def terminate(self) -> Iterator[tuple]:
        classes, matrix = metrics.confusion([a for a, _ in self.pairs], [b for _, b in self.pairs])
        for i, actual in enumerate(classes):
            for j, predicted in enumerate(classes):
                yield actual, predicted, int(matrix[i, j])


@sql_function(
    column("key", "ANY", labels),
    constant("seed", "INT", int),
    returns="DOUBLE",
    example="SELECT PatientID, split_fraction(PatientID, 42) < 0.8 AS train FROM demo_patients",
)
def split_fraction(key: list, seed: int) -> np.ndarray:
    """A number in [0, 1) from a hash of ``key``'s text and ``seed``: the same for a key on
    every run, machine and partitioning, so ``split_fraction(id, 42) < 0.8`` is a
    reproducible 80/20 train/test split (NULL key: NULL)."""
    return metrics.split_fraction(key, seed)

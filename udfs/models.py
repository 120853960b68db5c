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

from typing import Any, Iterator, Tuple

import numpy as np
import pyarrow as pa

from dicomsql.errors import FunctionArgumentError
from dicomsql.stats import als, bayes, forest, linear, logistic, metrics
from dicomsql.stats.options import Bound

from .arrow import (
    ModelSummary, columns_ddl, constant, first_map, fitted_model, labels, numbers, predict_rows, struct_ddl,
    struct_features, struct_scalar,
)
from .registry import bounded, sql_function

FEATURES = "features STRUCT"
OPTIONS = "[, options MAP<STRING,STRING>]"
CLASS_PREDICT_ARGS = "model {}, features STRUCT [, type STRING [, class ANY]]"


def _classifier_predictions(function: str, module: Any, model: pa.Array, features: pa.Array,
                            kind: pa.Array | None, wanted: pa.Array | None, default_kind: str | None) -> pa.Array:
    """``module.predict`` per distinct model, for ``*_predict(model, features [, type [, class]])``."""
    columns = struct_features(features, function, "features")
    kind_value = constant(kind, default_kind)
    wanted_values = None if wanted is None else np.asarray(labels(wanted), dtype=object)

    def apply(fitted: dict, rows: np.ndarray) -> np.ndarray:
        selected = {name: values[rows] for name, values in columns.items()}
        return module.predict(fitted, selected, kind_value, None if wanted_values is None else wanted_values[rows])

    return predict_rows(function, model, apply)


# --- linear regression ----------------------------------------------------------------------

@sql_function(
    f"label DOUBLE, {FEATURES} {OPTIONS}",
    returns=struct_ddl(linear.MODEL_FIELDS),
    kind="aggregate",
    example="SELECT site, linreg_fit(tumor_mm, struct(age, smoker, sex)) AS model FROM demo_patients GROUP BY site",
    options=linear.OPTIONS,
)
def linreg_fit(batches: Iterator[Tuple[pa.Array, ...]]) -> pa.Scalar:
    """Fit a linear regression (ordinary least squares) per group, streamed in one pass from
    sufficient statistics (O(p^2) memory): coef, se, t, p and interval per feature, the
    intercept with its inference, r2, adj_r2, the F test, residual_std_error, n.

    ``features`` is a STRUCT of numbers and strings (one-hot encoded, the first category
    the reference). ``options``: ``intercept`` (``true``), ``l2`` (ridge penalty, as
    scikit-learn's Ridge alpha; ridge fits carry no standard errors), ``alpha`` (0.05).
    Rows with a NULL are left out (``n_dropped``); a group that cannot be fitted gives NULL
    estimates and the reason in ``error``. One streaming aggregate per query.
    """
    accumulator = None
    for batch in batches:
        if accumulator is None:
            try:
                accumulator = linear.LinregAccumulator(first_map(batch[2] if len(batch) > 2 else None))
            except ValueError as exc:
                raise FunctionArgumentError.because("linreg_fit", "options", str(exc)) from None
        accumulator.add(numbers(batch[0], "linreg_fit", "label"), struct_features(batch[1], "linreg_fit", "features"))
    model = accumulator.model() if accumulator else {"error": "no rows"}
    return struct_scalar(model, linear.MODEL_FIELDS)


@sql_function(
    "model LINREG_MODEL, features STRUCT",
    returns="DOUBLE",
    example="SELECT p.PatientID, linreg_predict(m.model, struct(p.age, p.smoker, p.sex)) FROM demo_patients p "
            "CROSS JOIN (SELECT linreg_fit(tumor_mm, struct(age, smoker, sex)) AS model FROM demo_patients) m",
)
def linreg_predict(model: pa.Array, features: pa.Array) -> pa.Array:
    """The value a ``linreg_fit`` model predicts; features matched to the model by field
    name (a missing or unknown field is an error naming it), an unseen category counts as
    the reference category, a NULL feature gives NULL."""
    columns = struct_features(features, "linreg_predict", "features")
    return predict_rows("linreg_predict", model,
                        lambda fitted, rows: linear.predict(fitted, {name: values[rows] for name, values in columns.items()}))


@sql_function(
    "model LINREG_MODEL",
    returns=columns_ddl(linear.SUMMARY_FIELDS),
    kind="table",
    example="SELECT s.* FROM (SELECT linreg_fit(tumor_mm, struct(age, smoker, sex)) AS model FROM demo_patients) m, "
            "LATERAL linreg_summary(m.model) s",
    name="linreg_summary",
)
class LinregSummary(ModelSummary):
    """One row per estimate of a ``linreg_fit`` model (the intercept first): feature, coef,
    se, t, p, ci_lower, ci_upper, like statsmodels' summary."""

    summarise = staticmethod(linear.summary)


# --- logistic regression --------------------------------------------------------------------

@sql_function(
    f"label ANY, {FEATURES} {OPTIONS}",
    returns=struct_ddl(logistic.MODEL_FIELDS),
    kind="aggregate",
    example="SELECT logreg_fit(died, struct(age, smoker, tumor_mm, sex)) AS model FROM demo_patients",
    options=logistic.OPTIONS,
)
def logreg_fit(label: pa.Array, features: pa.Array, options: pa.Array = None) -> pa.Scalar:
    """Fit a logistic regression per group: binary for a label with two classes (the model
    of the second class in sorted order: 1, true), multinomial for more (one coefficient row
    per class after the first, in ``class_coef``). Binary fits carry coef, odds_ratio, se, z,
    p and interval per feature, and the intercept's; also log-likelihoods, pseudo_r2, the
    likelihood-ratio test, aic, iterations, converged.

    ``options``: ``intercept`` (``true``), ``l2`` and ``l1`` (penalties on the summed
    log-likelihood: l2 = 1/C of scikit-learn, l1 = statsmodels' alpha; penalised fits carry no
    standard errors), ``alpha`` (0.05), ``max_iter``, ``tol``. Rows with a NULL are left out;
    a group that cannot be fitted (one class, perfect separation, collinear features...)
    gives NULL estimates and the reason in ``error``.
    """
    return fitted_model("logreg_fit", logistic.fit, logistic.MODEL_FIELDS, labels(label),
                        struct_features(features, "logreg_fit", "features"), first_map(options))


@sql_function(
    CLASS_PREDICT_ARGS.format("LOGREG_MODEL"),
    returns="DOUBLE",
    example="SELECT p.PatientID, logreg_predict(m.model, struct(p.age, p.smoker, p.tumor_mm, p.sex)) AS p_died "
            "FROM demo_patients p CROSS JOIN (SELECT logreg_fit(died, struct(age, smoker, tumor_mm, sex)) AS model FROM demo_patients) m",
)
def logreg_predict(model: pa.Array, features: pa.Array, kind: pa.Array = None, wanted: pa.Array = None) -> pa.Array:
    """Predict from a ``logreg_fit`` model. ``type``: ``probability`` (default) of ``class``
    (default: the second class of a binary model, the most probable class otherwise),
    ``label`` (the index of the most probable class in ``model.classes``, which is the label
    itself for 0/1 and boolean labels: ``model.classes[int(...)]`` gives its name) or
    ``log_odds`` (of ``class`` against the first class). Features are matched by field
    name; an unseen category counts as the reference category; a NULL feature gives NULL."""
    return _classifier_predictions("logreg_predict", logistic, model, features, kind, wanted, "probability")


@sql_function(
    "model LOGREG_MODEL",
    returns=columns_ddl(logistic.SUMMARY_FIELDS),
    kind="table",
    example="SELECT s.* FROM (SELECT logreg_fit(died, struct(age, smoker, tumor_mm, sex)) AS model FROM demo_patients) m, "
            "LATERAL logreg_summary(m.model) s",
    name="logreg_summary",
)
class LogregSummary(ModelSummary):
    """One row per class after the first and estimate (the intercept first): class,
    feature, coef, odds_ratio, se, z, p, ci_lower, ci_upper."""

    summarise = staticmethod(logistic.summary)


# --- naive Bayes ----------------------------------------------------------------------------

@sql_function(
    f"label ANY, {FEATURES} {OPTIONS}",
    returns=struct_ddl(bayes.MODEL_FIELDS),
    kind="aggregate",
    example="SELECT naive_bayes_fit(ProtocolName, struct(KVP, XRayTubeCurrent, SliceThickness, ConvolutionKernel[0] AS kernel)) "
            "FROM demo_images WHERE Modality = 'CT'",
    options=bayes.OPTIONS,
)
def naive_bayes_fit(label: pa.Array, features: pa.Array, options: pa.Array = None) -> pa.Scalar:
    """Fit a naive Bayes classifier per group: Gaussian for number fields (as scikit-learn's
    GaussianNB), categorical for string fields (as CategoricalNB); priors are the class
    frequencies. ``options``: ``var_smoothing`` (1e-9), ``smoothing`` (1: Laplace)."""
    return fitted_model("naive_bayes_fit", bayes.fit, bayes.MODEL_FIELDS, labels(label),
                        struct_features(features, "naive_bayes_fit", "features"), first_map(options))


@sql_function(
    CLASS_PREDICT_ARGS.format("NAIVE_BAYES_MODEL"),
    returns="DOUBLE",
    example="SELECT m.model.classes[int(naive_bayes_predict(m.model, struct(i.KVP, i.XRayTubeCurrent, i.SliceThickness, "
            "i.ConvolutionKernel[0] AS kernel), 'label'))] AS protocol FROM demo_images i CROSS JOIN (SELECT naive_bayes_fit(ProtocolName, "
            "struct(KVP, XRayTubeCurrent, SliceThickness, ConvolutionKernel[0] AS kernel)) AS model FROM demo_images WHERE Modality = 'CT') m "
            "WHERE i.Modality = 'CT'",
)
def naive_bayes_predict(model: pa.Array, features: pa.Array, kind: pa.Array = None, wanted: pa.Array = None) -> pa.Array:
    """Predict from a ``naive_bayes_fit`` model; ``type`` and ``class`` as ``logreg_predict``.
    A NULL feature or an unseen category is left out of the likelihood (it is equally
    likely under every class), so the other features decide."""
    return _classifier_predictions("naive_bayes_predict", bayes, model, features, kind, wanted, "probability")


@sql_function(
    "model NAIVE_BAYES_MODEL",
    returns=columns_ddl(bayes.SUMMARY_FIELDS),
    kind="table",
    example="SELECT s.* FROM (SELECT naive_bayes_fit(sex, struct(age, tumor_mm)) AS model FROM demo_patients) m, "
            "LATERAL naive_bayes_summary(m.model) s",
    name="naive_bayes_summary",
)
class NaiveBayesSummary(ModelSummary):
    """Per class and feature: the class prior, a number's mean and standard deviation, or
    each category's probability."""

    summarise = staticmethod(bayes.summary)


# --- random forests -------------------------------------------------------------------------

@sql_function(
    f"label ANY, {FEATURES} {OPTIONS}",
    returns=struct_ddl(forest.MODEL_FIELDS),
    kind="aggregate",
    example="SELECT random_forest_fit(died, struct(age, smoker, tumor_mm, sex), map('trees', '50')) FROM demo_patients",
    options=forest.OPTIONS,
)
def random_forest_fit(label: pa.Array, features: pa.Array, options: pa.Array = None) -> pa.Scalar:
    """Grow a random forest per group (scikit-learn's CART trees, stored as plain arrays:
    a stored model never runs code). ``options``: ``task`` (``classification`` by default for
    string, boolean and integer labels, ``regression`` for DOUBLE ones), ``trees`` (100),
    ``max_depth`` (10), ``min_samples_leaf`` (1), ``max_features`` (``sqrt`` for
    classification, ``all`` for regression, ``log2`` or a share), ``bootstrap`` (true),
    ``seed`` (0). The model has ``feature_importances`` aligned with ``features``."""
    default_task = "regression" if pa.types.is_floating(label.type) or pa.types.is_decimal(label.type) else "classification"
    return fitted_model("random_forest_fit", forest.fit, forest.MODEL_FIELDS, labels(label),
                        struct_features(features, "random_forest_fit", "features"), first_map(options), default_task)


@sql_function(
    CLASS_PREDICT_ARGS.format("RANDOM_FOREST_MODEL"),
    returns="DOUBLE",
    example="SELECT random_forest_predict(m.model, struct(p.age, p.smoker, p.tumor_mm, p.sex)) FROM demo_patients p "
            "CROSS JOIN (SELECT random_forest_fit(died, struct(age, smoker, tumor_mm, sex)) AS model FROM demo_patients) m",
)
def random_forest_predict(model: pa.Array, features: pa.Array, kind: pa.Array = None, wanted: pa.Array = None) -> pa.Array:
    """Predict from a ``random_forest_fit`` model: the mean of the trees for regression;
    for classification ``type`` and ``class`` as ``logreg_predict`` (probabilities are the
    trees' mean, as scikit-learn's). An unseen category matches none of the known ones."""
    return _classifier_predictions("random_forest_predict", forest, model, features, kind, wanted, None)


@sql_function(
    "model RANDOM_FOREST_MODEL",
    returns=columns_ddl(forest.SUMMARY_FIELDS),
    kind="table",
    example="SELECT s.* FROM (SELECT random_forest_fit(died, struct(age, smoker, tumor_mm, sex)) AS model "
            "FROM demo_patients) m, LATERAL random_forest_summary(m.model) s",
    name="random_forest_summary",
)
class RandomForestSummary(ModelSummary):
    """One row per feature with its impurity-based ``feature_importance`` (as the model's
    ``feature_importances``, summing to 1) and rank, most important first."""

    summarise = staticmethod(forest.summary)


# --- collaborative filtering ----------------------------------------------------------------

@sql_function(
    f"user ANY, item ANY, rating DOUBLE {OPTIONS}",
    returns=struct_ddl(als.MODEL_FIELDS),
    kind="aggregate",
    example="SELECT als_fit(reader, capture, quality, map('rank', '3')) FROM demo_reads",
    options=als.OPTIONS,
)
def als_fit(user: pa.Array, item: pa.Array, rating: pa.Array, options: pa.Array = None) -> pa.Scalar:
    """Factorise user x item ratings by alternating least squares, as Spark ML's ALS
    (regularisation weighted by each user's and item's number of ratings). ``options``:
    ``rank`` (10), ``reg`` (0.1), ``iterations`` (10), ``implicit`` (false; true: ratings
    are interaction strengths, Hu-Koren-Volinsky), ``alpha`` (1, implicit confidence),
    ``seed`` (0). The model keeps the users, items and their factors, and the training rmse."""
    return fitted_model("als_fit", als.fit, als.MODEL_FIELDS, labels(user), labels(item),
                        numbers(rating, "als_fit", "rating"), first_map(options))


@sql_function(
    "model ALS_MODEL, user ANY, item ANY",
    returns="DOUBLE",
    example="SELECT r.reader, r.capture, als_predict(m.model, r.reader, r.capture) FROM demo_reads r "
            "CROSS JOIN (SELECT als_fit(reader, capture, quality) AS model FROM demo_reads) m",
)
def als_predict(model: pa.Array, user: pa.Array, item: pa.Array) -> pa.Array:
    """The rating (or implicit preference) an ``als_fit`` model predicts for a user and an
    item; NULL for a user or item the model has never seen."""
    users, items = np.asarray(labels(user), dtype=object), np.asarray(labels(item), dtype=object)
    return predict_rows("als_predict", model, lambda fitted, rows: als.predict(fitted, users[rows], items[rows]))


@sql_function(
    "model ALS_MODEL, user ANY, k INT",
    returns="item STRING, score DOUBLE, rank BIGINT",
    kind="table",
    example="SELECT r.* FROM (SELECT als_fit(reader, capture, quality) AS model FROM demo_reads) m, "
            "LATERAL als_recommend(m.model, 'R01', 3) r",
    name="als_recommend",
    bounds={"k": Bound(1, 10_000)},
)
class AlsRecommend:
    """The ``k`` items with the highest predicted score for ``user``, best first (rank 1);
    no rows for an unknown user. Items the user rated are included: anti-join the ratings
    to leave them out."""

    def eval(self, model: Any, user: Any, k: Any) -> Iterator[tuple]:
        count = bounded("als_recommend", "k", k)
        if model is None or user is None:
            return
        yield from als.recommend(model.asDict(recursive=True), user, count)


@sql_function(
    "model ALS_MODEL",
    returns=columns_ddl(als.SUMMARY_FIELDS),
    kind="table",
    example="SELECT s.kind, s.id, s.norm FROM (SELECT als_fit(reader, capture, quality, map('rank', '3')) AS model "
            "FROM demo_reads) m, LATERAL als_summary(m.model) s",
    name="als_summary",
)
class AlsSummary(ModelSummary):
    """One row per user (``kind`` ``user``), then per item (``item``) of an ``als_fit``
    model: its ``id``, its latent ``factors`` and their length (``norm``; near 0 for a user
    or item the model knows little about). Dot products of factors divided by the norms
    are cosine similarities between users, or between items. The fit's diagnostics (rmse,
    n) are fields of the model itself."""

    summarise = staticmethod(als.summary)


# --- evaluation -----------------------------------------------------------------------------

@sql_function(
    "label BOOLEAN or 0/1, score DOUBLE [, options MAP<STRING,STRING>]",
    returns=struct_ddl(metrics.BINARY_FIELDS),
    kind="aggregate",
    example="SELECT binary_metrics(p.died, logreg_predict(m.model, struct(p.age, p.smoker, p.tumor_mm, p.sex))).auc "
            "FROM demo_patients p CROSS JOIN (SELECT logreg_fit(died, struct(age, smoker, tumor_mm, sex)) AS model FROM demo_patients) m",
    options=metrics.BINARY_OPTIONS,
)
def binary_metrics(label: pa.Array, score: pa.Array, options: pa.Array = None) -> pa.Scalar:
    """Evaluate scores against 0/1 (or boolean) labels, as scikit-learn's metrics: auc,
    average_precision, logloss (NULL unless the scores are probabilities), accuracy,
    precision, recall and f1 at ``threshold`` (option, 0.5: a score at or above it predicts
    1), and the ROC (roc_fpr, roc_tpr, roc_thresholds) and precision-recall curves."""
    truth = numbers(label, "binary_metrics", "label")
    values = truth[np.isfinite(truth)]
    if not np.isin(values, (0.0, 1.0)).all():
        raise FunctionArgumentError("binary_metrics", "label", "0/1 or boolean", f"{values[~np.isin(values, (0.0, 1.0))][0]:g}")
    return fitted_model("binary_metrics", metrics.binary, metrics.BINARY_FIELDS, truth,
                        numbers(score, "binary_metrics", "score"), first_map(options))


@sql_function(
    "label ANY, predicted ANY",
    returns=struct_ddl(metrics.MULTICLASS_FIELDS),
    kind="aggregate",
    example="SELECT multiclass_metrics(sex, IF(tumor_mm > 15, 'M', 'F')).accuracy FROM demo_patients",
)
def multiclass_metrics(label: pa.Array, predicted: pa.Array) -> pa.Scalar:
    """Evaluate predicted classes against labels (any type, compared as text, 1 = 1.0 =
    '1'): accuracy, Cohen's kappa, macro precision/recall/f1, weighted f1, and per class
    (``classes``) precision, recall, f1 and support."""
    return struct_scalar(metrics.multiclass(labels(label), labels(predicted)), metrics.MULTICLASS_FIELDS)


@sql_function(
    "label DOUBLE, predicted DOUBLE",
    returns=struct_ddl(metrics.REGRESSION_FIELDS),
    kind="aggregate",
    example="SELECT regression_metrics(p.tumor_mm, linreg_predict(m.model, struct(p.age, p.smoker, p.sex))).rmse "
            "FROM demo_patients p CROSS JOIN (SELECT linreg_fit(tumor_mm, struct(age, smoker, sex)) AS model FROM demo_patients) m",
)
def regression_metrics(label: pa.Array, predicted: pa.Array) -> pa.Scalar:
    """Evaluate predicted values: mse, rmse, mae, r2, explained_variance, n."""
    return struct_scalar(metrics.regression(numbers(label, "regression_metrics", "label"),
                                            numbers(predicted, "regression_metrics", "predicted")), metrics.REGRESSION_FIELDS)


@sql_function(
    "TABLE(t) whose first two columns are the label and the prediction",
    returns="label STRING, predicted STRING, count BIGINT",
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

        schema = StructType([StructField("label", StringType()), StructField("predicted", StringType()),
                             StructField("count", LongType())])
        return AnalyzeResult(schema=schema, withSinglePartition=True)

    def __init__(self) -> None:
        self.pairs: list[tuple[Any, Any]] = []

    def eval(self, row: Any) -> Iterator[tuple]:
        if len(row) < 2:
            raise FunctionArgumentError("confusion_matrix", "table", "a table of (label, prediction) columns", f"{len(row)} column(s)")
        self.pairs.append((row[0], row[1]))
        return iter(())

    def terminate(self) -> Iterator[tuple]:
        classes, matrix = metrics.confusion([a for a, _ in self.pairs], [b for _, b in self.pairs])
        for i, actual in enumerate(classes):
            for j, predicted in enumerate(classes):
                yield actual, predicted, int(matrix[i, j])


@sql_function(
    "key ANY, seed INT",
    returns="DOUBLE",
    example="SELECT PatientID, split_fraction(PatientID, 42) < 0.8 AS train FROM demo_patients",
)
def split_fraction(key: pa.Array, seed: pa.Array) -> pa.Array:
    """A number in [0, 1) from a hash of ``key``'s text and ``seed``: the same for a key on
    every run, machine and partitioning, so ``split_fraction(id, 42) < 0.8`` is a
    reproducible 80/20 train/test split (NULL key: NULL)."""
    seed_value = constant(seed)
    if seed_value is None:
        raise FunctionArgumentError("split_fraction", "seed", "an integer", "NULL")
    values = metrics.split_fraction(labels(key), int(seed_value))
    return pa.array(values, type=pa.float64(), mask=np.isnan(values))

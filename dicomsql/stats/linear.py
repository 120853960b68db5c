"""Linear regression by ordinary least squares (optionally ridge), from streamed sufficient
statistics: one pass over the rows keeps only the count, the means and the scatter matrix of
``[label, features]`` (O(p^2) memory), merged exactly batch by batch (:class:`Moments`).

Estimates and inference equal statsmodels' ``OLS`` (t statistics, F test, R^2; without an
intercept, R^2 and the F test are uncentred as statsmodels'). Ridge minimises
``||y - b0 - X b||^2 + l2 ||b||^2`` with the intercept unpenalised, as scikit-learn's
``Ridge(alpha=l2)``; ridge fits carry no standard errors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from ..options import Option, boolean, number
from .family import Family, Unfit, complete
from .features import Encoding, FeatureLearner
from .inference import design_problem, wald
from .moments import Moments

__all__ = [
    "OPTIONS",
    "MODEL_FIELDS",
    "SUMMARY_FIELDS",
    "FAMILY",
    "LinregAccumulator",
    "fit",
    "predict",
    "summary",
]

OPTIONS: tuple[Option, ...] = (
    Option("intercept", True, "Fit an intercept.", boolean),
    Option("l2", 0.0, "Ridge penalty (0: ordinary least squares).", number(0.0)),
    Option(
        "alpha", 0.05, "1 - confidence level of the intervals.", number(0.0, 0.5, open_low=True)
    ),
)

#: (field, SQL type) of a model, in order; arrays are aligned with ``features``.
MODEL_FIELDS: tuple[tuple[str, str], ...] = (
    ("features", "array<string>"),
    ("fields", "array<string>"),
    ("categories", "array<array<string>>"),
    ("coef", "array<double>"),
    ("se", "array<double>"),
    ("t", "array<double>"),
    ("p", "array<double>"),
    ("ci_lower", "array<double>"),
    ("ci_upper", "array<double>"),
    ("intercept", "double"),
    ("intercept_se", "double"),
    ("intercept_t", "double"),
    ("intercept_p", "double"),
    ("r2", "double"),
    ("adj_r2", "double"),
    ("f_statistic", "double"),
    ("f_p", "double"),
    ("residual_std_error", "double"),
    ("df_residual", "bigint"),
    ("n", "bigint"),
    ("n_dropped", "bigint"),
    ("fit_intercept", "boolean"),
    ("l2", "double"),
    ("alpha", "double"),
    ("error", "string"),
)

#: (column, SQL type) of ``summary``: the intercept first, then one row per feature.
SUMMARY_FIELDS: tuple[tuple[str, str], ...] = (
    ("feature", "string"),
    ("coef", "double"),
    ("se", "double"),
    ("t", "double"),
    ("p", "double"),
    ("ci_lower", "double"),
    ("ci_upper", "double"),
)

FAMILY = Family(OPTIONS, MODEL_FIELDS, SUMMARY_FIELDS, recorded=("l2", "alpha"))


class LinregAccumulator:
    """Accumulates rows batch by batch; :meth:`model` fits from what it has seen."""

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        self.settings = FAMILY.settings(options)
        self.learner = FeatureLearner()
        self.moments = Moments()
        self.n_dropped = 0

    def add(self, label: np.ndarray, columns: Mapping[str, np.ndarray]) -> None:
        """Add a batch: the label and the feature columns (numbers as floats with NaN for
        NULL, strings as object arrays with None). Incomplete rows are counted and left out."""
        rows = complete(label, columns)
        self.n_dropped += rows.n_dropped
        if self.learner.fields is None or rows.n:
            matrix = self.learner.add(rows.take(columns))
            self.moments.widen(matrix.shape[1] + 1)
            self.moments.add(np.column_stack([rows.take(label), matrix]))

    def merge(self, other: LinregAccumulator) -> LinregAccumulator:
        """Add what ``other`` accumulated from other rows (another partition's partial), as
        if its batches had been added here; categories it saw first get new slots."""
        positions = self.learner.merge(other.learner)
        dimension = len(self.learner.slots) + 1
        self.moments.widen(dimension)
        self.moments.merge(other.moments.embedded(np.r_[0, positions + 1], dimension))
        self.n_dropped += other.n_dropped
        return self

    def model(self) -> dict[str, Any]:
        """The fitted model (see :data:`MODEL_FIELDS`); a group that cannot be fitted gives
        NULL estimates and ``error`` saying why."""
        encoding, slots = self.learner.encoding(reference=True)
        described = {
            **encoding.as_model(),
            "n": self.moments.n,
            "n_dropped": self.n_dropped,
            "fit_intercept": self.settings["intercept"],
        }
        return FAMILY.model(self.settings, described, lambda: self._estimate(encoding.names, slots))

    def _estimate(self, names: list[str], slots: np.ndarray) -> dict[str, Any]:
        settings, n, p = self.settings, self.moments.n, len(slots)
        df = n - p - int(settings["intercept"])
        if df <= 0:
            raise Unfit(
                f"{n} complete row(s) for {p} feature(s){' and an intercept' if settings['intercept'] else ''}: need more rows"
            )
        columns = np.r_[0, slots + 1]
        mean = self.moments.mean[columns]
        scatter = self.moments.scatter[np.ix_(columns, columns)]
        if not settings["intercept"]:  # uncentred second moments
            scatter = scatter + n * np.outer(mean, mean)
        problem = design_problem(scatter[1:, 1:], names, centred=settings["intercept"])
        if problem and settings["l2"] == 0:
            raise Unfit(problem)
        return _solve(scatter, mean, n, df, settings)


def _solve(
    scatter: np.ndarray, mean: np.ndarray, n: int, df: int, settings: dict[str, Any]
) -> dict[str, Any]:
    """Least squares from the (centred, or uncentred without intercept) scatter matrix of
    ``[y, X]``."""
    xx, xy, yy = scatter[1:, 1:], scatter[1:, 0], scatter[0, 0]
    p = len(xy)
    coef = np.linalg.solve(xx + settings["l2"] * np.eye(p), xy) if p else np.empty(0)
    rss = max(yy - 2 * coef @ xy + coef @ xx @ coef, 0.0)
    sigma2 = rss / df
    r2 = 1 - rss / yy if yy > 0 else np.nan
    fitted: dict[str, Any] = {
        "coef": coef,
        "r2": r2,
        "residual_std_error": float(np.sqrt(sigma2)),
        "df_residual": df,
        "adj_r2": 1 - (1 - r2) * (n - int(settings["intercept"])) / df,
    }
    if settings["intercept"]:
        fitted["intercept"] = float(mean[0] - mean[1:] @ coef)
    if p:
        f_statistic = ((yy - rss) / p) / sigma2 if sigma2 > 0 else np.inf
        fitted.update(f_statistic=f_statistic, f_p=float(scipy_stats.f.sf(f_statistic, p, df)))
    if settings["l2"] > 0:
        return fitted
    covariance = sigma2 * np.linalg.inv(xx) if p else np.empty((0, 0))
    se = np.sqrt(np.diag(covariance))
    t, p_value, lower, upper = wald(coef, se, settings["alpha"], df)
    fitted.update(se=se, t=t, p=p_value, ci_lower=lower, ci_upper=upper)
    if settings["intercept"]:
        intercept_se = float(np.sqrt(sigma2 / n + mean[1:] @ covariance @ mean[1:]))
        t0, p0, _, _ = wald(
            np.array([fitted["intercept"]]), np.array([intercept_se]), settings["alpha"], df
        )
        fitted.update(intercept_se=intercept_se, intercept_t=float(t0[0]), intercept_p=float(p0[0]))
    return fitted


def fit(
    label: np.ndarray, columns: Mapping[str, np.ndarray], options: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Fit a linear regression of ``label`` on the feature ``columns`` in one batch (see
    :class:`LinregAccumulator`). Invalid ``options`` raise ``ValueError`` naming the option."""
    accumulator = LinregAccumulator(options)
    accumulator.add(np.asarray(label, dtype=float), columns)
    return accumulator.model()


def predict(model: Mapping[str, Any], columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Predicted values (NaN where a feature is NULL); features matched by field name."""
    matrix = Encoding.from_model(model, reference=True).matrix(columns)
    return matrix @ np.asarray(model["coef"], dtype=float) + (model.get("intercept") or 0.0)


def summary(model: Mapping[str, Any]) -> Iterator[tuple]:
    """One row per estimate (the intercept first, named ``intercept``), as statsmodels'
    summary table; NULL inference for ridge fits."""
    if model.get("coef") is None:
        return
    alpha = model["alpha"]
    if model.get("fit_intercept"):
        se = model.get("intercept_se")
        bounds = (
            wald(np.array([model["intercept"]]), np.array([se]), alpha, model["df_residual"])[2:]
            if se
            else (None, None)
        )
        yield (
            "intercept",
            model["intercept"],
            se,
            model.get("intercept_t"),
            model.get("intercept_p"),
            *(None if b is None else float(b[0]) for b in bounds),
        )
    for index, feature in enumerate(model["features"]):
        inference = [
            None if model.get(name) is None else model[name][index]
            for name in ("se", "t", "p", "ci_lower", "ci_upper")
        ]
        yield (feature, model["coef"][index], *inference)

"""Accelerated failure time models (Weibull, log-normal, log-logistic; lifelines underneath)
and their predictions from plain-data models.

Parameterisations (as lifelines):

============  ==========================================  ============================
distribution  survival S(t | x)                           location, shape
============  ==========================================  ============================
weibull       exp(-(t / lambda)^rho)                      lambda = exp(b.x + b0), rho
lognormal     1 - Phi((log t - mu) / sigma)               mu = b.x + b0, sigma
loglogistic   1 / (1 + (t / alpha)^beta)                  alpha = exp(b.x + b0), beta
============  ==========================================  ============================
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import special
from scipy import stats as scipy_stats

from ..errors import ArgumentError
from ..options import Option, choice, number
from .checks import survival_problem
from .family import FITTER_FAILURES, Family, Unfit, complete
from .features import Encoding, encode

__all__ = [
    "OPTIONS",
    "MODEL_FIELDS",
    "SUMMARY_FIELDS",
    "FAMILY",
    "PREDICTION_TYPES",
    "fit",
    "predict",
    "summary",
]

DISTRIBUTIONS = {
    "weibull": ("WeibullAFTFitter", "lambda_", "rho_"),
    "lognormal": ("LogNormalAFTFitter", "mu_", "sigma_"),
    "loglogistic": ("LogLogisticAFTFitter", "alpha_", "beta_"),
}
OPTIONS: tuple[Option, ...] = (
    Option(
        "distribution", "weibull", "The distribution of the survival times.", choice(*DISTRIBUTIONS)
    ),
    Option("penalizer", 0.0, "Strength of the L2 penalty on the coefficients.", number(0.0)),
    Option(
        "alpha", 0.05, "1 - confidence level of the intervals.", number(0.0, 0.5, open_low=True)
    ),
)
#: (field, SQL type) of a model. ``features`` are the design's columns (a number field, or
#: ``field=value`` for a category after the first); the estimates are aligned with
#: ``parameters``, each named ``parameter:feature``.
MODEL_FIELDS: tuple[tuple[str, str], ...] = (
    ("distribution", "string"),
    ("features", "array<string>"),
    ("fields", "array<string>"),
    ("categories", "array<array<string>>"),
    ("parameters", "array<string>"),
    ("coef", "array<double>"),
    ("se", "array<double>"),
    ("z", "array<double>"),
    ("p", "array<double>"),
    ("ci_lower", "array<double>"),
    ("ci_upper", "array<double>"),
    ("log_likelihood", "double"),
    ("aic", "double"),
    ("concordance", "double"),
    ("n", "bigint"),
    ("events", "bigint"),
    ("n_dropped", "bigint"),
    ("alpha", "double"),
    ("error", "string"),
)
#: (column, SQL type) of ``summary``: one row per estimate, as lifelines' ``summary``
#: (``parameter`` is ``location`` or ``shape``, ``feature`` a feature or ``Intercept``).
SUMMARY_FIELDS: tuple[tuple[str, str], ...] = (
    ("parameter", "string"),
    ("feature", "string"),
    ("coef", "double"),
    ("se", "double"),
    ("z", "double"),
    ("p", "double"),
    ("ci_lower", "double"),
    ("ci_upper", "double"),
)
FAMILY = Family(OPTIONS, MODEL_FIELDS, SUMMARY_FIELDS, recorded=("distribution", "alpha"))
PREDICTION_TYPES = ("median", "expectation", "survival")
_DURATION, _EVENT = "\x00duration", "\x00event"


def fit(
    durations: Sequence[float],
    events: Sequence[float],
    features: Mapping[str, np.ndarray],
    options: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Fit an AFT model of ``features`` (columns by name, encoded as :func:`cox.fit`'s);
    ``parameters`` names every estimate ``location:feature``, ``location:Intercept`` and
    ``shape:Intercept`` (shape on the log scale, as lifelines). Incomplete rows are left out
    (``n_dropped``); a group that cannot be fitted gives NULL estimates and ``error``."""
    settings = FAMILY.settings(options)
    rows = complete(durations, events, features)
    encoding, matrix = encode(rows.take(features), reference=True)
    table = pd.DataFrame(matrix, columns=encoding.names)
    table[_DURATION] = np.asarray(rows.take(durations), dtype=float)
    table[_EVENT] = np.asarray(rows.take(events), dtype=float)
    described = {**encoding.as_model(), **rows.counts()}
    return FAMILY.model(
        settings,
        described,
        lambda: _estimate(table, encoding.names, settings),
        failures=FITTER_FAILURES,
    )


def _estimate(table: pd.DataFrame, names: list[str], settings: dict[str, Any]) -> dict[str, Any]:
    """lifelines' fit of a complete table, or :class:`Unfit` saying why there is none."""
    import lifelines

    if not names:
        raise Unfit("no features")
    problem = survival_problem(
        table[_DURATION], table[_EVENT], {name: table[name] for name in names}, positive=True
    )
    if problem:
        raise Unfit(problem)
    fitter_name, location, _ = DISTRIBUTIONS[settings["distribution"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter = getattr(lifelines, fitter_name)(
            penalizer=settings["penalizer"], alpha=settings["alpha"]
        )
        fitter.fit(table, _DURATION, _EVENT)
    summary = fitter.summary
    return {
        "parameters": [
            f"{'location' if group == location else 'shape'}:{name}"
            for group, name in fitter.params_.index
        ],
        "coef": fitter.params_.to_numpy(dtype=float).tolist(),
        "se": fitter.standard_errors_.to_numpy(dtype=float).tolist(),
        "z": summary["z"].to_numpy(dtype=float).tolist(),
        "p": summary["p"].to_numpy(dtype=float).tolist(),
        "ci_lower": summary.iloc[:, 3].to_numpy(dtype=float).tolist(),
        "ci_upper": summary.iloc[:, 4].to_numpy(dtype=float).tolist(),
        "log_likelihood": float(fitter.log_likelihood_),
        "aic": float(fitter.AIC_),
        "concordance": float(fitter.concordance_index_),
        "events": int(table[_EVENT].sum()),
    }


def _location_and_shape(
    model: Mapping[str, Any], features: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, float]:
    """Per row the location's linear predictor, and the shape. Features are encoded as at
    fit time (a model with ``covariates`` and no ``fields`` is one of the release before:
    alias for one release)."""
    encoding = Encoding.from_model(model, reference=True)
    matrix = encoding.matrix(features, "features")
    coef = dict(zip(model["parameters"], model["coef"]))
    slopes = np.array([coef[f"location:{name}"] for name in encoding.names], dtype=float)
    return matrix @ slopes + coef["location:Intercept"], float(np.exp(coef["shape:Intercept"]))


def predict(
    model: Mapping[str, Any],
    features: Mapping[str, np.ndarray],
    kind: str = "median",
    time: np.ndarray | None = None,
) -> np.ndarray:
    """``median`` or ``expectation`` of the survival time, or ``survival`` at ``time``;
    features matched by field name (an unseen category counts as the reference)."""
    if kind not in PREDICTION_TYPES:
        raise ArgumentError(
            "type", f"type must be one of {', '.join(PREDICTION_TYPES)}, got {kind!r}"
        )
    linear, shape = _location_and_shape(model, features)
    distribution = model["distribution"]
    if kind == "survival":
        if time is None:
            raise ArgumentError("time", "type 'survival' needs a time")
        t = np.asarray(time, dtype=float)
        if distribution == "weibull":
            return np.exp(-((t / np.exp(linear)) ** shape))
        if distribution == "lognormal":
            return scipy_stats.norm.sf((np.log(t) - linear) / shape)
        return 1.0 / (1.0 + (t / np.exp(linear)) ** shape)
    if distribution == "weibull":
        scale = np.exp(linear)
        return (
            scale * np.log(2) ** (1 / shape)
            if kind == "median"
            else scale * special.gamma(1 + 1 / shape)
        )
    if distribution == "lognormal":
        return np.exp(linear) if kind == "median" else np.exp(linear + shape**2 / 2)
    scale = np.exp(linear)
    if kind == "median":
        return scale
    if shape <= 1:
        return np.full_like(scale, np.inf)
    return scale * (np.pi / shape) / np.sin(np.pi / shape)


def summary(model: Mapping[str, Any]) -> list[tuple]:
    """One row per estimate (see :data:`SUMMARY_FIELDS`): parameter, feature, coef, se, z,
    p, ci_lower, ci_upper, in the model's order."""
    if model.get("coef") is None:
        return []
    names = [name.partition(":") for name in model["parameters"]]
    return [
        (parameter, feature, *values)
        for (parameter, _, feature), *values in zip(
            names,
            model["coef"],
            model["se"],
            model["z"],
            model["p"],
            model["ci_lower"],
            model["ci_upper"],
        )
    ]

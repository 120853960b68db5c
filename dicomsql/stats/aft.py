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
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import special, stats as scipy_stats

from .checks import survival_problem
from .options import ArgumentError, Option, choice, match_fields, number, parse

__all__ = ["OPTIONS", "MODEL_FIELDS", "PREDICTION_TYPES", "fit", "predict"]

DISTRIBUTIONS = {
    "weibull": ("WeibullAFTFitter", "lambda_", "rho_"),
    "lognormal": ("LogNormalAFTFitter", "mu_", "sigma_"),
    "loglogistic": ("LogLogisticAFTFitter", "alpha_", "beta_"),
}
OPTIONS: tuple[Option, ...] = (
    Option("distribution", "weibull", choice(*DISTRIBUTIONS), "The distribution of the survival times."),
    Option("penalizer", 0.0, number(0.0), "Strength of the L2 penalty on the coefficients."),
    Option("alpha", 0.05, number(0.0, 0.5, open_low=True), "1 - confidence level of the intervals."),
)
MODEL_FIELDS: tuple[tuple[str, str], ...] = (
    ("distribution", "string"),
    ("covariates", "array<string>"),
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
PREDICTION_TYPES = ("median", "expectation", "survival")
_DURATION, _EVENT = "\x00duration", "\x00event"


def fit(durations: Sequence[float], events: Sequence[float], covariates: np.ndarray, names: Sequence[str],
        options: dict[str, str] | None = None) -> dict[str, Any]:
    """Fit an AFT model; ``parameters`` names every estimate ``location:covariate``,
    ``location:Intercept`` and ``shape:Intercept`` (shape on the log scale, as lifelines)."""
    import lifelines

    settings = parse(options, OPTIONS)
    table = pd.DataFrame(np.asarray(covariates, dtype=float).reshape(len(durations), len(names)), columns=list(names))
    table[_DURATION], table[_EVENT] = np.asarray(durations, dtype=float), np.asarray(events, dtype=float)
    complete = np.isfinite(table).all(axis=1)
    table = table[complete].reset_index(drop=True)
    model: dict[str, Any] = {name: None for name, _ in MODEL_FIELDS}
    model.update(distribution=settings["distribution"], n_dropped=int((~complete).sum()), alpha=settings["alpha"])
    problem = "no covariates" if not names else survival_problem(table, _DURATION, _EVENT, names, positive=True)
    if problem:
        return {**model, "n": len(table), "error": problem}
    fitter_name, location, shape = DISTRIBUTIONS[settings["distribution"]]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitter = getattr(lifelines, fitter_name)(penalizer=settings["penalizer"], alpha=settings["alpha"])
            fitter.fit(table, _DURATION, _EVENT)
    except Exception as exc:  # noqa: BLE001 - a reason in the model, never a dead query
        return {**model, "error": f"could not fit: {type(exc).__name__}: {exc}"}
    parameters = [f"{'location' if group == location else 'shape'}:{name}" for group, name in fitter.params_.index]
    summary = fitter.summary
    return {
        **model,
        "covariates": list(names),
        "parameters": parameters,
        "coef": fitter.params_.to_numpy(dtype=float).tolist(),
        "se": fitter.standard_errors_.to_numpy(dtype=float).tolist(),
        "z": summary["z"].to_numpy(dtype=float).tolist(),
        "p": summary["p"].to_numpy(dtype=float).tolist(),
        "ci_lower": summary.iloc[:, 3].to_numpy(dtype=float).tolist(),
        "ci_upper": summary.iloc[:, 4].to_numpy(dtype=float).tolist(),
        "log_likelihood": float(fitter.log_likelihood_),
        "aic": float(fitter.AIC_),
        "concordance": float(fitter.concordance_index_),
        "n": len(table),
        "events": int(table[_EVENT].sum()),
    }


def _location_and_shape(model: dict[str, Any], covariates: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
    match_fields(model["covariates"], covariates)
    coef = dict(zip(model["parameters"], model["coef"]))
    linear = coef["location:Intercept"] + sum(
        coef[f"location:{name}"] * np.asarray(covariates[name], dtype=float) for name in model["covariates"]
    )
    return np.asarray(linear, dtype=float), float(np.exp(coef["shape:Intercept"]))


def predict(model: dict[str, Any], covariates: dict[str, np.ndarray], kind: str = "median",
            time: np.ndarray | None = None) -> np.ndarray:
    """``median`` or ``expectation`` of the survival time, or ``survival`` at ``time``."""
    if kind not in PREDICTION_TYPES:
        raise ArgumentError("type", f"type must be one of {', '.join(PREDICTION_TYPES)}, got {kind!r}")
    linear, shape = _location_and_shape(model, covariates)
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
        return scale * np.log(2) ** (1 / shape) if kind == "median" else scale * special.gamma(1 + 1 / shape)
    if distribution == "lognormal":
        return np.exp(linear) if kind == "median" else np.exp(linear + shape**2 / 2)
    scale = np.exp(linear)
    if kind == "median":
        return scale
    if shape <= 1:
        return np.full_like(scale, np.inf)
    return scale * (np.pi / shape) / np.sin(np.pi / shape)

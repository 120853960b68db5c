"""Kaplan-Meier survival curves and the log-rank test (lifelines underneath), as plain data."""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from .options import Option, number, parse

__all__ = ["OPTIONS", "MODEL_FIELDS", "LOGRANK_FIELDS", "fit", "survival_at", "logrank"]

OPTIONS: tuple[Option, ...] = (
    Option("alpha", 0.05, number(0.0, 0.5, open_low=True), "1 - confidence level of the band (exponential Greenwood)."),
)

MODEL_FIELDS: tuple[tuple[str, str], ...] = (
    ("times", "array<double>"),
    ("survival", "array<double>"),
    ("ci_lower", "array<double>"),
    ("ci_upper", "array<double>"),
    ("at_risk", "array<bigint>"),
    ("events", "array<bigint>"),
    ("censored", "array<bigint>"),
    ("median", "double"),
    ("n", "bigint"),
    ("n_events", "bigint"),
    ("n_dropped", "bigint"),
    ("alpha", "double"),
    ("error", "string"),
)

LOGRANK_FIELDS: tuple[tuple[str, str], ...] = (
    ("statistic", "double"), ("df", "bigint"), ("p", "double"),
    ("groups", "array<string>"), ("n", "array<bigint>"), ("events", "array<bigint>"), ("error", "string"),
)


def _complete(durations: Sequence[float], events: Sequence[float], *others: Sequence[Any]):
    d, e = np.asarray(durations, dtype=float), np.asarray(events, dtype=float)
    keep = np.isfinite(d) & np.isfinite(e)
    for other in others:
        keep &= np.array([v is not None for v in other])
    return keep, d[keep], e[keep]


def _problem(d: np.ndarray, e: np.ndarray) -> str | None:
    if len(d) == 0:
        return "no complete rows"
    if (d < 0).any():
        return f"negative durations in {(d < 0).sum()} row(s); durations must be >= 0"
    if not set(np.unique(e)) <= {0.0, 1.0}:
        return "event must be 0/1 or boolean"
    return None


def fit(durations: Sequence[float], events: Sequence[float], options: dict[str, str] | None = None) -> dict[str, Any]:
    """The Kaplan-Meier estimate: survival at each distinct time with its confidence band,
    the numbers at risk, with events and censored there, and the median survival time
    (+Infinity when the curve never falls to 0.5)."""
    from lifelines import KaplanMeierFitter

    settings = parse(options, OPTIONS)
    keep, d, e = _complete(durations, events)
    model: dict[str, Any] = {name: None for name, _ in MODEL_FIELDS}
    model.update(n_dropped=int((~keep).sum()), alpha=settings["alpha"])
    problem = _problem(d, e)
    if problem:
        return {**model, "error": problem}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter = KaplanMeierFitter(alpha=settings["alpha"]).fit(d, e)
    table = fitter.event_table
    band = fitter.confidence_interval_
    return {
        **model,
        "times": fitter.survival_function_.index.to_numpy(dtype=float).tolist(),
        "survival": fitter.survival_function_.iloc[:, 0].to_numpy(dtype=float).tolist(),
        "ci_lower": band.iloc[:, 0].to_numpy(dtype=float).tolist(),
        "ci_upper": band.iloc[:, 1].to_numpy(dtype=float).tolist(),
        "at_risk": table["at_risk"].astype(int).tolist(),
        "events": table["observed"].astype(int).tolist(),
        "censored": table["censored"].astype(int).tolist(),
        "median": float(fitter.median_survival_time_),
        "n": len(d),
        "n_events": int(e.sum()),
    }


def survival_at(model: dict[str, Any], time: np.ndarray) -> np.ndarray:
    """The Kaplan-Meier survival at ``time`` (a right-continuous step function: 1 before the
    first time; NaN for a NaN time)."""
    times, at = np.asarray(model["times"], dtype=float), np.asarray(time, dtype=float)
    index = np.searchsorted(times, at, side="right") - 1
    survival = np.r_[1.0, np.asarray(model["survival"], dtype=float)][index + 1]
    return np.where(np.isnan(at), np.nan, survival)


def logrank(durations: Sequence[float], events: Sequence[float], groups: Sequence[Any]) -> dict[str, Any]:
    """The log-rank test that the survival of 2 or more groups is the same (lifelines'
    ``multivariate_logrank_test``)."""
    from lifelines.statistics import multivariate_logrank_test

    keep, d, e = _complete(durations, events, groups)
    labels = np.array([str(g) for g in groups], dtype=object)[keep]
    result: dict[str, Any] = {name: None for name, _ in LOGRANK_FIELDS}
    problem = _problem(d, e)
    names = sorted(set(labels))
    if problem is None and len(names) < 2:
        problem = "the log-rank test needs at least 2 groups"
    if problem:
        return {**result, "error": problem}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        test = multivariate_logrank_test(d, labels, e)
    return {
        **result,
        "statistic": float(test.test_statistic), "df": len(names) - 1, "p": float(test.p_value),
        "groups": names,
        "n": [int((labels == g).sum()) for g in names],
        "events": [int(e[labels == g].sum()) for g in names],
    }

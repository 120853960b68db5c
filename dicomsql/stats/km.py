"""Kaplan-Meier survival curves and the log-rank test (lifelines underneath), as plain data."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..options import Option, number
from .checks import survival_problem
from .family import Family, Unfit, complete

__all__ = ["OPTIONS", "MODEL_FIELDS", "LOGRANK_FIELDS", "FAMILY", "fit", "survival_at", "logrank"]

OPTIONS: tuple[Option, ...] = (
    Option(
        "alpha",
        0.05,
        "1 - confidence level of the band (exponential Greenwood).",
        number(0.0, 0.5, open_low=True),
    ),
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
    ("statistic", "double"),
    ("df", "bigint"),
    ("p", "double"),
    ("groups", "array<string>"),
    ("n", "array<bigint>"),
    ("events", "array<bigint>"),
    ("error", "string"),
)


FAMILY = Family(OPTIONS, MODEL_FIELDS, recorded=("alpha",))


def _problem(durations: np.ndarray, events: np.ndarray) -> str | None:
    """Why complete rows give no curve (a curve may be all censored)."""
    return survival_problem(durations, events, need_events=False)


def fit(
    durations: Sequence[float], events: Sequence[float], options: dict[str, str] | None = None
) -> dict[str, Any]:
    """The Kaplan-Meier estimate: survival at each distinct time with its confidence band,
    the numbers at risk, with events and censored there, and the median survival time
    (+Infinity when the curve never falls to 0.5)."""
    settings = FAMILY.settings(options)
    rows = complete(durations, events)
    d, e = np.asarray(rows.take(durations), dtype=float), np.asarray(rows.take(events), dtype=float)
    return FAMILY.model(settings, rows.counts(), lambda: _curve(d, e, settings["alpha"]))


def _curve(d: np.ndarray, e: np.ndarray, alpha: float) -> dict[str, Any]:
    from lifelines import KaplanMeierFitter

    problem = _problem(d, e)
    if problem:
        raise Unfit(problem)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter = KaplanMeierFitter(alpha=alpha).fit(d, e)
    table = fitter.event_table
    band = fitter.confidence_interval_
    return {
        "times": fitter.survival_function_.index.to_numpy(dtype=float).tolist(),
        "survival": fitter.survival_function_.iloc[:, 0].to_numpy(dtype=float).tolist(),
        "ci_lower": band.iloc[:, 0].to_numpy(dtype=float).tolist(),
        "ci_upper": band.iloc[:, 1].to_numpy(dtype=float).tolist(),
        "at_risk": table["at_risk"].astype(int).tolist(),
        "events": table["observed"].astype(int).tolist(),
        "censored": table["censored"].astype(int).tolist(),
        "median": float(fitter.median_survival_time_),
        "n_events": int(e.sum()),
    }


def survival_at(model: dict[str, Any], time: np.ndarray) -> np.ndarray:
    """The Kaplan-Meier survival at ``time`` (a right-continuous step function: 1 before the
    first time; NaN for a NaN time)."""
    times, at = np.asarray(model["times"], dtype=float), np.asarray(time, dtype=float)
    index = np.searchsorted(times, at, side="right") - 1
    survival = np.r_[1.0, np.asarray(model["survival"], dtype=float)][index + 1]
    return np.where(np.isnan(at), np.nan, survival)


def logrank(
    durations: Sequence[float], events: Sequence[float], groups: Sequence[Any]
) -> dict[str, Any]:
    """The log-rank test that the survival of 2 or more groups is the same (lifelines'
    ``multivariate_logrank_test``)."""
    from lifelines.statistics import multivariate_logrank_test

    rows = complete(durations, events, groups)
    d, e = np.asarray(rows.take(durations), dtype=float), np.asarray(rows.take(events), dtype=float)
    labels = np.array([str(g) for g in groups], dtype=object)[rows.keep]
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
        "statistic": float(test.test_statistic),
        "df": len(names) - 1,
        "p": float(test.p_value),
        "groups": names,
        "n": [int((labels == g).sum()) for g in names],
        "events": [int(e[labels == g].sum()) for g in names],
    }

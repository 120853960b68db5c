"""Cox proportional hazards: fit (Efron or Breslow ties, strata, weights, penalties),
inference, and predictions from the fitted model as plain data.

A model is a dict of numbers, strings and lists (:data:`MODEL_FIELDS`), so it travels as a
SQL struct, is stored in Parquet tables and is read back without executing anything.
Efron fits are lifelines' ``CoxPHFitter`` (numbers identical to lifelines by construction);
Breslow fits, which lifelines does not offer, are a Newton-Raphson here, checked against
statsmodels' ``PHReg``. Predictions follow lifelines: the partial hazard is
``exp((x - means) . coef)`` and the baseline cumulative hazard is Breslow's estimator.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from ..errors import ArgumentError
from ..options import Option, OptionError, choice, integer, number, parse
from . import riskset
from .checks import survival_problem
from .concordance import concordance_index
from .family import FITTER_FAILURES, Family, Unfit, complete
from .features import Encoding, encode
from .inference import wald

__all__ = [
    "OPTIONS",
    "MODEL_FIELDS",
    "SUMMARY_FIELDS",
    "FAMILY",
    "PREDICTION_TYPES",
    "fit",
    "predict",
    "summary",
    "check",
]

OPTIONS: tuple[Option, ...] = (
    Option("ties", "efron", "How tied event times are handled.", choice("efron", "breslow")),
    Option("penalizer", 0.0, "Strength of the coefficient penalty (0: none).", number(0.0)),
    Option(
        "l1_ratio",
        0.0,
        "Share of L1 in the penalty (0: ridge, 1: lasso); Efron ties only.",
        number(0.0, 1.0),
    ),
    Option(
        "alpha", 0.05, "1 - confidence level of the intervals.", number(0.0, 0.5, open_low=True)
    ),
    Option("max_iter", 50, "At most this many Newton-Raphson steps.", integer(1, 1000)),
    Option(
        "tol",
        1e-7,
        "Convergence tolerance of the Newton-Raphson steps.",
        number(0.0, open_low=True),
    ),
)

#: (field, SQL type) of a model, in order; arrays are aligned with ``features`` (the
#: design's columns: a number field, or ``field=value`` for a category after the first).
MODEL_FIELDS: tuple[tuple[str, str], ...] = (
    ("features", "array<string>"),
    ("fields", "array<string>"),
    ("categories", "array<array<string>>"),
    ("coef", "array<double>"),
    ("hazard_ratio", "array<double>"),
    ("se", "array<double>"),
    ("z", "array<double>"),
    ("p", "array<double>"),
    ("ci_lower", "array<double>"),
    ("ci_upper", "array<double>"),
    ("means", "array<double>"),
    ("log_likelihood", "double"),
    ("log_likelihood_null", "double"),
    ("lr_test_statistic", "double"),
    ("lr_test_p", "double"),
    ("concordance", "double"),
    ("aic_partial", "double"),
    ("n", "bigint"),
    ("events", "bigint"),
    ("n_dropped", "bigint"),
    ("iterations", "bigint"),
    ("converged", "boolean"),
    ("ties", "string"),
    ("penalizer", "double"),
    ("l1_ratio", "double"),
    ("alpha", "double"),
    ("weighted", "boolean"),
    ("strata", "array<string>"),
    ("baseline_times", "array<double>"),
    ("baseline_cumhaz", "array<double>"),
    ("strata_baseline_times", "array<array<double>>"),
    ("strata_baseline_cumhaz", "array<array<double>>"),
    ("warning", "string"),
    ("error", "string"),
)

#: (column, SQL type) of ``summary``, one row per feature, as lifelines' ``summary``.
SUMMARY_FIELDS: tuple[tuple[str, str], ...] = (
    ("feature", "string"),
    ("coef", "double"),
    ("hazard_ratio", "double"),
    ("se", "double"),
    ("z", "double"),
    ("p", "double"),
    ("ci_lower", "double"),
    ("ci_upper", "double"),
)

FAMILY = Family(
    OPTIONS, MODEL_FIELDS, SUMMARY_FIELDS, recorded=("ties", "penalizer", "l1_ratio", "alpha")
)

PREDICTION_TYPES = (
    "partial_hazard",
    "log_partial_hazard",
    "survival",
    "cumulative_hazard",
    "median",
)

_DURATION, _EVENT, _WEIGHT, _STRATUM = "\x00duration", "\x00event", "\x00weight", "\x00stratum"


def fit(
    durations: Sequence[float],
    events: Sequence[float],
    features: Mapping[str, np.ndarray],
    *,
    weights: Sequence[float] | None = None,
    strata: Sequence[Any] | None = None,
    options: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Fit a Cox model; returns the model dict (see :data:`MODEL_FIELDS`).

    ``features`` are columns by name, as the regressions take them: numbers and booleans as
    floats (NaN for NULL), strings as object arrays (None for NULL), one-hot encoded with
    the first category (in sorted order) as the reference (:mod:`dicomsql.stats.features`).
    Rows with a missing value anywhere are left out (counted in ``n_dropped``). A group that
    cannot be fitted (negative durations, no events, no features, a singular problem)
    gives a model with every estimate NULL and ``error`` saying why; it never raises for
    data. Invalid ``options`` raise ``ValueError`` naming the option.
    """
    settings = FAMILY.settings(options)
    if settings["ties"] == "breslow" and settings["l1_ratio"] > 0:
        raise OptionError(
            "option l1_ratio must be 0 with ties 'breslow' (lifelines' elastic net is Efron's)",
            "l1_ratio",
        )
    rows = complete(durations, events, features, weights, strata)
    encoding, matrix = encode(rows.take(features), reference=True)
    table = _table(
        rows.take(durations),
        rows.take(events),
        encoding.names,
        matrix,
        None if weights is None else rows.take(weights),
        None if strata is None else rows.take(strata),
    )
    described = {**encoding.as_model(), **rows.counts(), "weighted": weights is not None}
    return FAMILY.model(
        settings,
        described,
        lambda: _estimate(table, encoding.names, settings),
        failures=FITTER_FAILURES,
    )


def _table(
    durations: np.ndarray,
    events: np.ndarray,
    names: list[str],
    matrix: np.ndarray,
    weights: np.ndarray | None = None,
    strata: np.ndarray | None = None,
) -> pd.DataFrame:
    """The frame lifelines fits: one column per feature, then duration, event, weight, stratum."""
    table = pd.DataFrame(matrix, columns=names)
    table[_DURATION] = np.asarray(durations, dtype=float)
    table[_EVENT] = np.asarray(events, dtype=float)
    if weights is not None:
        table[_WEIGHT] = np.asarray(weights, dtype=float)
    if strata is not None:
        table[_STRATUM] = pd.Series(list(strata), dtype=object)
    return table


def _estimate(table: pd.DataFrame, names: list[str], settings: dict[str, Any]) -> dict[str, Any]:
    """The estimates of a complete table, or :class:`Unfit` saying why there are none."""
    if not names:
        raise Unfit("no features")
    problem = survival_problem(
        table[_DURATION],
        table[_EVENT],
        {name: table[name] for name in names},
        weights=table[_WEIGHT] if _WEIGHT in table else None,
    )
    if problem:
        raise Unfit(problem)
    return (_fit_efron if settings["ties"] == "efron" else _fit_breslow)(table, names, settings)


_ITERATION = re.compile(r"Iteration (\d+):")


def _fit_efron(table: pd.DataFrame, names: list[str], settings: dict[str, Any]) -> dict[str, Any]:
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceWarning

    fitter = CoxPHFitter(
        penalizer=settings["penalizer"],
        l1_ratio=settings["l1_ratio"],
        alpha=settings["alpha"],
        baseline_estimation_method="breslow",
    )
    progress = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(progress):
        warnings.simplefilter("always")
        fitter.fit(
            table,
            _DURATION,
            _EVENT,
            weights_col=_WEIGHT if _WEIGHT in table else None,
            strata=[_STRATUM] if _STRATUM in table else None,
            show_progress=True,
            fit_options={"max_steps": settings["max_iter"], "precision": settings["tol"]},
        )
    iterations = [int(m) for m in _ITERATION.findall(progress.getvalue())]
    trouble = [
        str(w.message).strip().splitlines()[0]
        for w in caught
        if issubclass(w.category, ConvergenceWarning)
    ]
    converged = not trouble
    coef = fitter.params_[names].to_numpy()
    se = fitter.standard_errors_[names].to_numpy()
    means = fitter._norm_mean[names].to_numpy()
    baseline = fitter.baseline_cumulative_hazard_
    model = _inference(coef, se, settings["alpha"])
    partial_hazard = np.exp((table[names].to_numpy() - means) @ coef)
    model.update(
        means=means.tolist(),
        log_likelihood=float(fitter.log_likelihood_),
        concordance=concordance_index(
            table[_DURATION].to_numpy(), -partial_hazard, table[_EVENT].to_numpy()
        ),
        events=int(table[_EVENT].sum()),
        iterations=iterations[-1] if iterations else None,
        converged=converged,
        warning=f"lifelines: {trouble[0]}" if trouble else None,
    )
    ratio_test = fitter.log_likelihood_ratio_test()
    model.update(
        _likelihood_ratio(
            model["log_likelihood"],
            model["log_likelihood"] - ratio_test.test_statistic / 2,
            len(names),
        )
    )
    model.update(_baseline_fields(baseline, _STRATUM in table))
    return model


def _inference(coef: np.ndarray, se: np.ndarray, alpha: float) -> dict[str, Any]:
    """The coefficients with their hazard ratios and Wald inference (z, as lifelines)."""
    z, p, lower, upper = wald(coef, se, alpha)
    columns = {
        "coef": coef,
        "hazard_ratio": np.exp(coef),
        "se": se,
        "z": z,
        "p": p,
        "ci_lower": lower,
        "ci_upper": upper,
    }
    return {name: np.asarray(values, dtype=float).tolist() for name, values in columns.items()}


def _likelihood_ratio(
    log_likelihood: float, log_likelihood_null: float, df: int
) -> dict[str, float]:
    statistic = 2 * (log_likelihood - log_likelihood_null)
    return {
        "log_likelihood_null": log_likelihood_null,
        "lr_test_statistic": statistic,
        "lr_test_p": float(scipy_stats.chi2.sf(statistic, df)),
        "aic_partial": -2 * log_likelihood + 2 * df,
    }


def _baseline_fields(baseline: pd.DataFrame, stratified: bool) -> dict[str, Any]:
    """The baseline cumulative hazard, one column per stratum (lifelines' layout)."""
    if not stratified:
        return {
            "baseline_times": baseline.index.to_numpy(dtype=float).tolist(),
            "baseline_cumhaz": baseline.iloc[:, 0].to_numpy(dtype=float).tolist(),
            "strata": None,
            "strata_baseline_times": None,
            "strata_baseline_cumhaz": None,
        }
    strata, times, cumhaz = [], [], []
    for stratum in baseline.columns:
        column = baseline[stratum]
        strata.append(str(stratum[0] if isinstance(stratum, tuple) else stratum))
        times.append(column.index.to_numpy(dtype=float).tolist())
        cumhaz.append(column.to_numpy(dtype=float).tolist())
    return {
        "baseline_times": None,
        "baseline_cumhaz": None,
        "strata": strata,
        "strata_baseline_times": times,
        "strata_baseline_cumhaz": cumhaz,
    }


def _stratum_chunks(
    x: np.ndarray, time: np.ndarray, event: np.ndarray, weight: np.ndarray, groups: np.ndarray
) -> list[riskset.Chunk]:
    """Per stratum, its rows in descending time (one risk set each)."""
    chunks = []
    for stratum in np.unique(groups):
        rows = np.flatnonzero(groups == stratum)
        rows = rows[np.argsort(-time[rows], kind="stable")]
        chunks.append((time[rows], event[rows], weight[rows], x[rows]))
    return chunks


@dataclass(frozen=True)
class Newton:
    """Where Newton-Raphson ended: the coefficients on the standardised scale, the
    (penalised) log-likelihood there and at zero, the Hessian for the standard errors."""

    beta: np.ndarray
    loglik: float
    loglik_null: float
    hessian: np.ndarray
    iterations: int
    converged: bool
    warning: str | None


def newton(
    terms: Callable[[np.ndarray], riskset.Terms], p: int, n: int, settings: Mapping[str, Any]
) -> Newton:
    """Newton-Raphson for the partial likelihood ``terms(beta)`` of ``n`` rows on
    standardised covariates, with lifelines' penalty (n * penalizer * |beta|^2 / 2 on that
    scale) and its convergence rules (the step or the Newton decrement below ``tol``, or a
    relative change of the likelihood below 1e-9; a large last step means no unique
    maximum). Step halving makes every accepted step improve the likelihood.

    ``terms`` may be computed anywhere: on one worker's rows, or summed over partitions."""
    penalty = settings["penalizer"] * n

    def penalised(beta: np.ndarray) -> riskset.Terms:
        unpenalised = terms(beta)
        return riskset.Terms(
            unpenalised.loglik - 0.5 * penalty * beta @ beta,
            unpenalised.gradient - penalty * beta,
            unpenalised.hessian - penalty * np.eye(p),
        )

    beta = np.zeros(p)
    current = penalised(beta)
    loglik_null = current.loglik
    converged, warning, iterations, moved = False, None, 0, 0.0
    for iterations in range(1, settings["max_iter"] + 1):  # noqa: B007 - read after the loop
        step = np.linalg.solve(-current.hessian, current.gradient)
        decrement = float(current.gradient @ step) / 2
        size = 1.0
        while True:
            candidate = penalised(beta + size * step)
            if candidate.loglik >= current.loglik - 1e-12:
                break
            size /= 2
            if size < 1e-8:
                warning = "the line search could not improve the likelihood"
                break
        if warning:
            break
        beta, previous, current = beta + size * step, current.loglik, candidate
        moved = float(np.linalg.norm(size * step))
        if (
            moved < settings["tol"]
            or decrement < settings["tol"]
            or abs(current.loglik - previous) < 1e-9 * abs(previous)
        ):
            converged = True
            break
    if converged and moved > 0.1:  # as lifelines: the likelihood flattened while beta still moves
        converged = False
        warning = (
            f"converged with a large last step ({moved:.3f}): collinearity or complete separation?"
        )
    elif not converged and warning is None:
        warning = (
            f"did not converge in {settings['max_iter']} iterations (separation, or raise max_iter)"
        )
    return Newton(
        beta, current.loglik, loglik_null, current.hessian, iterations, converged, warning
    )


def newton_estimates(
    fitted: Newton, means: np.ndarray, scale: np.ndarray, alpha: float
) -> dict[str, Any]:
    """The model fields a Newton fit on covariates standardised by ``means`` and ``scale``
    gives (all but the concordance, the events and the baseline)."""
    coef = fitted.beta / scale
    se = np.sqrt(np.diag(np.linalg.inv(-fitted.hessian))) / scale
    model = _inference(coef, se, alpha)
    model.update(
        means=np.asarray(means, dtype=float).tolist(),
        log_likelihood=fitted.loglik,  # penalised, as lifelines reports it
        iterations=fitted.iterations,
        converged=fitted.converged,
        warning=fitted.warning,
    )
    model.update(_likelihood_ratio(fitted.loglik, fitted.loglik_null, len(coef)))
    return model


def baseline_frame(times: np.ndarray, increments: np.ndarray) -> pd.Series:
    """The baseline cumulative hazard from per-time hazard increments (any order)."""
    order = np.argsort(times, kind="stable")
    return pd.Series(np.cumsum(increments[order]), index=times[order])


def _fit_breslow(table: pd.DataFrame, names: list[str], settings: dict[str, Any]) -> dict[str, Any]:
    """Newton-Raphson (:func:`newton`) on this worker's rows, standardised as lifelines does."""
    x = table[names].to_numpy(dtype=float)
    means = x.mean(axis=0)  # unweighted, as lifelines centres
    scale = x.std(axis=0, ddof=1)
    standard = (x - means) / scale
    time, event = table[_DURATION].to_numpy(), table[_EVENT].to_numpy()
    weight = table[_WEIGHT].to_numpy() if _WEIGHT in table else np.ones(len(table))
    groups = (
        table[_STRATUM].astype(str).to_numpy()
        if _STRATUM in table
        else np.zeros(len(table), dtype=int)
    )
    strata = _stratum_chunks(standard, time, event, weight, groups)

    def terms(beta: np.ndarray) -> riskset.Terms:
        return sum(
            (riskset.terms([chunk], beta, ties="breslow") for chunk in strata),
            riskset.Terms.zero(len(beta)),
        )

    fitted = newton(terms, len(names), len(table), settings)
    model = newton_estimates(fitted, means, scale, settings["alpha"])
    partial_hazard = np.exp(standard @ fitted.beta)
    model.update(
        concordance=concordance_index(time, -partial_hazard, event),
        events=int(event.sum()),
    )
    baseline = pd.DataFrame(
        {
            stratum: baseline_frame(*riskset.baseline_hazard([chunk], fitted.beta))
            for stratum, chunk in zip(np.unique(groups), strata, strict=True)
        }
    )
    model.update(_baseline_fields(baseline.sort_index().ffill().fillna(0.0), _STRATUM in table))
    return model


def _encoding(model: Mapping[str, Any]) -> Encoding:
    """How the model encodes its features (a model with ``covariates`` and no ``fields``
    was stored by the release before: alias for one release)."""
    return Encoding.from_model(model, reference=True)


def _feature_names(model: Mapping[str, Any]) -> list[str] | None:
    """The model's ``features`` (``covariates`` in a model of the release before: alias
    for one release)."""
    return model["features"] if model.get("features") is not None else model.get("covariates")


_NO_STRATUM = object()  # the stratum argument was not given (None is a NULL stratum)


def _baseline_of(
    model: dict[str, Any], stratum: Any, kind: str
) -> tuple[list[float], list[float]] | None:
    """The baseline a prediction uses; None for a stratum the model does not know (or NULL)."""
    if model["strata"] is None:
        return model["baseline_times"], model["baseline_cumhaz"]
    if stratum is _NO_STRATUM:
        raise ArgumentError("stratum", f"a stratified model needs the stratum for type {kind!r}")
    if stratum is None or str(stratum) not in model["strata"]:
        return None
    i = model["strata"].index(str(stratum))
    return model["strata_baseline_times"][i], model["strata_baseline_cumhaz"][i]


def predict(
    model: Mapping[str, Any],
    features: Mapping[str, np.ndarray],
    kind: str = "partial_hazard",
    time: np.ndarray | None = None,
    stratum: Any = _NO_STRATUM,
) -> np.ndarray:
    """Predictions of a model for rows of features (matched by field name and encoded as
    at fit time: an unseen category counts as the reference, a NULL gives NaN), as
    lifelines gives:

    ``partial_hazard`` exp((x - means) . coef); ``log_partial_hazard``; ``cumulative_hazard``
    and ``survival`` at ``time`` (per row; the baseline is interpolated linearly between its
    times, as lifelines does); ``median``: the first baseline time at which the predicted
    survival is <= 0.5, and +Infinity when it never falls that low during follow-up.
    Stratified models need ``stratum`` for the last three (an unknown or NULL stratum gives
    NaN). Argument problems raise :class:`ArgumentError` naming the argument.
    """
    if kind not in PREDICTION_TYPES:
        raise ArgumentError(
            "type", f"type must be one of {', '.join(PREDICTION_TYPES)}, got {kind!r}"
        )
    x = _encoding(model).matrix(features, "features")
    log_hazard = (x - np.asarray(model["means"])) @ np.asarray(model["coef"])
    if kind == "log_partial_hazard":
        return log_hazard
    hazard = np.exp(log_hazard)
    if kind == "partial_hazard":
        return hazard
    if kind != "median" and time is None:
        raise ArgumentError("time", f"type {kind!r} needs a time")
    baseline = _baseline_of(model, stratum, kind)
    if baseline is None:
        return np.full(len(hazard), np.nan)
    times, cumhaz = baseline
    if kind == "median":
        survival = np.exp(-np.outer(hazard, cumhaz))  # rows x baseline times
        below = survival <= 0.5
        first = np.argmax(below, axis=1)
        return np.where(below.any(axis=1), np.asarray(times)[first], np.inf)
    # as lifelines' interpolate_at_times: linear between baseline times, constant beyond them
    cumulative = np.interp(np.asarray(time, dtype=float), times, cumhaz) * hazard
    return cumulative if kind == "cumulative_hazard" else np.exp(-cumulative)


def summary(model: Mapping[str, Any]) -> list[tuple]:
    """One row per feature (see :data:`SUMMARY_FIELDS`): feature, coef, hazard_ratio, se,
    z, p, ci_lower, ci_upper."""
    names = _feature_names(model)
    if names is None or model.get("coef") is None:
        return []
    return list(
        zip(
            names,
            model["coef"],
            model["hazard_ratio"],
            model["se"],
            model["z"],
            model["p"],
            model["ci_lower"],
            model["ci_upper"],
        )
    )


CHECK_OPTIONS: tuple[Option, ...] = (
    Option(
        "time_transform",
        "rank",
        "How time enters the scaled Schoenfeld residual test (as lifelines / R's cox.zph).",
        choice("rank", "km", "identity", "log"),
    ),
)
CHECK_FIELDS: tuple[tuple[str, str], ...] = (
    ("features", "array<string>"),
    ("statistic", "array<double>"),
    ("p", "array<double>"),
    ("df", "bigint"),
    ("time_transform", "string"),
    ("error", "string"),
)


def check(
    durations: Sequence[float],
    events: Sequence[float],
    features: Mapping[str, np.ndarray],
    model: Mapping[str, Any],
    options: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The proportional-hazards test of a fitted model per feature (scaled Schoenfeld
    residuals against transformed time; lifelines' ``proportional_hazard_test``), on the
    data the model was fitted to, encoded as the model encodes them. The data are refitted
    with lifelines (Efron); a refit that does not reproduce the model's coefficients, or
    features that are not the model's, are reported in ``error``."""
    from lifelines import CoxPHFitter
    from lifelines.statistics import proportional_hazard_test

    settings = parse(options, CHECK_OPTIONS)
    result = {
        "features": None,
        "statistic": None,
        "p": None,
        "df": 1,
        "time_transform": settings["time_transform"],
        "error": None,
    }
    if model.get("error") or model.get("coef") is None:
        return {**result, "error": f"the model has no estimates: {model.get('error')}"}
    if model.get("strata") or model.get("weighted") or model.get("ties") == "breslow":
        return {
            **result,
            "error": "coxph_check tests unweighted, unstratified models with Efron ties",
        }
    names = _feature_names(model)
    try:
        matrix = _encoding(model).matrix(features, "features")
    except ArgumentError as exc:
        return {**result, "error": str(exc)}
    table = _table(durations, events, names, matrix).dropna().reset_index(drop=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitter = CoxPHFitter(
                penalizer=model["penalizer"] or 0.0, l1_ratio=model["l1_ratio"] or 0.0
            )
            fitter.fit(table, _DURATION, _EVENT)
            test = proportional_hazard_test(
                fitter, table, time_transform=settings["time_transform"]
            )
    except Exception as exc:  # noqa: BLE001 - a reason, never a dead query
        return {**result, "error": f"could not test: {type(exc).__name__}: {exc}"}
    refit = fitter.params_[names].to_numpy()
    problem = None
    if not np.allclose(refit, model["coef"], rtol=1e-4, atol=1e-6):
        problem = (
            "these data do not reproduce the model's coefficients (another group, or other ties?)"
        )
    statistics = test.summary.loc[names]
    return {
        **result,
        "features": names,
        "statistic": statistics["test_statistic"].tolist(),
        "p": statistics["p"].tolist(),
        "error": problem,
    }

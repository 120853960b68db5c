"""Survival analysis in SQL: Cox proportional hazards, Kaplan-Meier, log-rank, AFT.

Fits are aggregates (one model per ``GROUP BY`` group, fitted in parallel); a model is a
struct that can be stored with ``CREATE TABLE ... AS`` and applied with a join::

    CREATE TABLE cox AS SELECT site, coxph_fit(months, died, struct(age, smoker)) AS model
                        FROM patients GROUP BY site;
    SELECT p.PatientID, coxph_predict(c.model, struct(p.age, p.smoker)) AS risk
    FROM patients p JOIN cox c USING (site);
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from dicomsql.errors import ArgumentError
from dicomsql.stats import aft, cox, km

from .arrow import Models, model_row, numbers, objects, predict_rows, rows_of, struct_features
from .registry import Struct, Table, column, constant, options, sql_function

COX_MODEL = Struct(cox.MODEL_FIELDS, "COX_MODEL")
COX_CHECK = Struct(cox.CHECK_FIELDS, "COX_CHECK")
KM_MODEL = Struct(km.MODEL_FIELDS, "KM_MODEL")
LOGRANK_RESULT = Struct(km.LOGRANK_FIELDS, "LOGRANK_RESULT")
AFT_MODEL = Struct(aft.MODEL_FIELDS, "AFT_MODEL")

DURATION = column("duration", "DOUBLE", numbers)
EVENT = column("event", "BOOLEAN", numbers)
FEATURES = column("features", "STRUCT", struct_features)
TIME = column("time", "DOUBLE", numbers, default=None)

_COX_EXAMPLE_FIT = "SELECT coxph_fit(months, died, struct(age, smoker, tumor_mm, treated)) AS model FROM demo_patients"
_AFT_EXAMPLE_FIT = "SELECT aft_fit(months, died, struct(age, smoker, tumor_mm, treated)) AS model FROM demo_patients"


@sql_function(
    DURATION,
    EVENT,
    FEATURES,
    options(cox.OPTIONS),
    returns=COX_MODEL,
    kind="aggregate",
    example="SELECT site, coxph_fit(months, died, struct(age, smoker, tumor_mm, treated)) AS model "
    "FROM demo_patients GROUP BY site",
)
def coxph_fit(duration: np.ndarray, event: np.ndarray, features: dict, options: dict) -> dict:
    """Fit a Cox proportional hazards model per group: coefficients with their inference and
    everything needed to predict.

    ``features`` is a STRUCT of numbers, booleans and strings, encoded as the regressions
    encode theirs: a string field is one-hot encoded, its first category (in sorted order)
    the reference. The model keeps the field names in ``fields`` and the design's columns
    (``age``, ``sex=M``...) in ``features``. ``event`` is boolean or 0/1. Rows with a NULL
    are left out (``n_dropped``). A group that cannot be fitted (negative durations, no
    events, a constant feature...) gives NULL estimates and the reason in ``error``.
    """
    return cox.fit(duration, event, features, options=options)


@sql_function(
    DURATION,
    EVENT,
    column("weight", "DOUBLE", numbers),
    FEATURES,
    options(cox.OPTIONS),
    returns=COX_MODEL,
    kind="aggregate",
    example="SELECT coxph_fit_weighted(months, died, IF(treated = 1, 2.0, 1.0), struct(age, smoker)) FROM demo_patients",
)
def coxph_fit_weighted(
    duration: np.ndarray, event: np.ndarray, weight: np.ndarray, features: dict, options: dict
) -> dict:
    """``coxph_fit`` with a positive case weight per row (as lifelines' ``weights_col``;
    the standard errors are the naive ones)."""
    return cox.fit(duration, event, features, weights=weight, options=options)


@sql_function(
    DURATION,
    EVENT,
    column("stratum", "ANY", objects),
    FEATURES,
    options(cox.OPTIONS),
    returns=COX_MODEL,
    kind="aggregate",
    example="SELECT coxph_fit_stratified(months, died, site, struct(age, smoker, tumor_mm, treated)) FROM demo_patients",
)
def coxph_fit_stratified(
    duration: np.ndarray, event: np.ndarray, stratum: np.ndarray, features: dict, options: dict
) -> dict:
    """``coxph_fit`` with a baseline hazard of its own per ``stratum`` value (shared
    coefficients). Survival predictions then need the stratum: see ``coxph_predict``."""
    return cox.fit(duration, event, features, strata=stratum, options=options)


@sql_function(
    column("model", COX_MODEL, Models),
    FEATURES,
    constant("type", "STRING", str, default="partial_hazard"),
    TIME,
    column("stratum", "ANY", objects, default=None),
    returns="DOUBLE",
    example="SELECT p.PatientID, coxph_predict(m.model, struct(p.age, p.smoker, p.tumor_mm, p.treated), 'survival', 24.0) "
    f"FROM demo_patients p CROSS JOIN ({_COX_EXAMPLE_FIT}) m",
)
def coxph_predict(
    model: Models, features: dict, type: str, time: np.ndarray | None, stratum: np.ndarray | None
) -> np.ndarray:
    """Predict from a ``coxph_fit`` model, with features matched to the model by field name
    (a missing or unknown field is an error naming it) and encoded as at fit time (an
    unseen category counts as the reference, a NULL gives NULL).

    ``type``: ``partial_hazard`` (default: exp((x - means) . coef), as lifelines),
    ``log_partial_hazard``, ``survival`` or ``cumulative_hazard`` at ``time`` (the baseline
    interpolated linearly between its times, as lifelines), or ``median`` survival time:
    +Infinity when the predicted survival stays above 0.5 during follow-up.
    A model without estimates gives NULL. Stratified models need ``stratum`` for the
    survival, cumulative hazard and median.
    """

    def predict(fitted: dict, where: np.ndarray) -> np.ndarray:
        selected, times = rows_of(features, where), None if time is None else time[where]
        if stratum is None:
            return cox.predict(fitted, selected, type, times)
        strata, out = stratum[where], np.full(len(where), np.nan)
        for value in set(strata):  # NULL or unknown strata predict NaN (NULL)
            rows = strata == value
            out[rows] = cox.predict(
                fitted, rows_of(selected, rows), type, None if times is None else times[rows], value
            )
        return out

    return predict_rows(model, predict)


@sql_function(
    column("model", COX_MODEL, model_row),
    returns=Table(cox.SUMMARY_FIELDS),
    kind="table",
    example=f"SELECT s.* FROM ({_COX_EXAMPLE_FIT}) m, LATERAL coxph_summary(m.model) s",
)
def coxph_summary(model: dict | None) -> Iterable[tuple]:
    """One row per feature of a Cox model (feature, coef, hazard_ratio, se, z, p, ci_lower,
    ci_upper), like lifelines' ``summary``. Use it with ``LATERAL`` on a table of models."""
    return () if model is None else cox.summary(model)


@sql_function(
    DURATION,
    EVENT,
    FEATURES,
    column("model", COX_MODEL, Models),
    options(cox.CHECK_OPTIONS),
    returns=COX_CHECK,
    kind="aggregate",
    example="SELECT coxph_check(p.months, p.died, struct(p.age, p.smoker, p.tumor_mm, p.treated), m.model) "
    f"FROM demo_patients p CROSS JOIN ({_COX_EXAMPLE_FIT}) m",
)
def coxph_check(
    duration: np.ndarray, event: np.ndarray, features: dict, model: Models, options: dict
) -> dict:
    """Test the proportional hazards assumption of a fitted model, per feature: scaled
    Schoenfeld residuals against transformed time (lifelines' ``proportional_hazard_test``,
    R's ``cox.zph``). A small ``p`` says the feature's effect changes over time."""
    if not features:
        raise ArgumentError(
            "features", "must be a STRUCT of the model's features, got an empty struct"
        )
    fitted = next((fitted for fitted, _ in model), None)
    if fitted is None:
        return {"error": "no model"}
    return cox.check(duration, event, features, fitted, options)


@sql_function(
    DURATION,
    EVENT,
    options(km.OPTIONS),
    returns=KM_MODEL,
    kind="aggregate",
    example="SELECT treated, km_fit(months, died).median AS median_months FROM demo_patients GROUP BY treated",
)
def km_fit(duration: np.ndarray, event: np.ndarray, options: dict) -> dict:
    """The Kaplan-Meier survival curve per group: times, survival with its confidence band,
    numbers at risk, events and censored, and the median survival time (+Infinity when the
    curve stays above 0.5)."""
    return km.fit(duration, event, options)


@sql_function(
    column("model", KM_MODEL, Models),
    column("time", "DOUBLE", numbers),
    returns="DOUBLE",
    example="SELECT km_survival(km_fit(months, died), 24.0) AS two_year_survival FROM demo_patients",
)
def km_survival(model: Models, time: np.ndarray) -> np.ndarray:
    """Survival at ``time`` on a ``km_fit`` curve (1 before the first time)."""
    return predict_rows(model, lambda fitted, where: km.survival_at(fitted, time[where]))


@sql_function(
    DURATION,
    EVENT,
    column("group", "ANY", objects),
    returns=LOGRANK_RESULT,
    kind="aggregate",
    example="SELECT logrank_test(months, died, treated) FROM demo_patients",
)
def logrank_test(duration: np.ndarray, event: np.ndarray, group: np.ndarray) -> dict:
    """The log-rank test that 2 or more groups have the same survival: statistic, degrees of
    freedom, p, and per group its size and events."""
    return km.logrank(duration, event, group)


@sql_function(
    DURATION,
    EVENT,
    FEATURES,
    options(aft.OPTIONS),
    returns=AFT_MODEL,
    kind="aggregate",
    example="SELECT aft_fit(months, died, struct(age, smoker, tumor_mm, treated), map('distribution', 'lognormal')) "
    "FROM demo_patients",
)
def aft_fit(duration: np.ndarray, event: np.ndarray, features: dict, options: dict) -> dict:
    """Fit an accelerated failure time model per group. The model names each estimate in
    ``parameters`` (``location:age``, ``location:Intercept``, ``shape:Intercept``) with coef,
    se, z, p and interval aligned; ``features`` are encoded as ``coxph_fit``'s (strings
    one-hot, the first category the reference)."""
    return aft.fit(duration, event, features, options)


@sql_function(
    column("model", AFT_MODEL, Models),
    FEATURES,
    constant("type", "STRING", str, default="median"),
    TIME,
    returns="DOUBLE",
    example="SELECT aft_predict(m.model, struct(p.age, p.smoker, p.tumor_mm, p.treated), 'median') FROM demo_patients p "
    f"CROSS JOIN ({_AFT_EXAMPLE_FIT}) m",
)
def aft_predict(model: Models, features: dict, type: str, time: np.ndarray | None) -> np.ndarray:
    """Predict from an ``aft_fit`` model: ``median`` (default) or ``expectation`` of the
    survival time, or ``survival`` at ``time``; features matched by field name and encoded
    as at fit time."""
    return predict_rows(
        model,
        lambda fitted, where: aft.predict(
            fitted, rows_of(features, where), type, None if time is None else time[where]
        ),
    )


@sql_function(
    column("model", AFT_MODEL, model_row),
    returns=Table(aft.SUMMARY_FIELDS),
    kind="table",
    example=f"SELECT s.* FROM ({_AFT_EXAMPLE_FIT}) m, LATERAL aft_summary(m.model) s",
)
def aft_summary(model: dict | None) -> Iterable[tuple]:
    """One row per estimate of an AFT model (parameter, feature, coef, se, z, p, ci_lower,
    ci_upper), like lifelines' ``summary``: ``parameter`` is ``location`` (one row per
    feature and the ``Intercept``) or ``shape`` (its ``Intercept``, on the log scale)."""
    return () if model is None else aft.summary(model)

"""Survival analysis in SQL: Cox proportional hazards, Kaplan-Meier, log-rank, AFT.

Fits are aggregates (one model per ``GROUP BY`` group, fitted in parallel); a model is a
struct that can be stored with ``CREATE TABLE ... AS`` and applied with a join::

    CREATE TABLE cox AS SELECT site, coxph_fit(months, died, struct(age, smoker)) AS model
                        FROM patients GROUP BY site;
    SELECT p.PatientID, coxph_predict(c.model, struct(p.age, p.smoker)) AS risk
    FROM patients p JOIN cox c USING (site);
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from dicomsql.errors import FunctionArgumentError
from dicomsql.stats import aft, cox, km

from .arrow import Models, ModelSummary, columns_ddl, constant, first_map, fitted_model, labels, numbers, predict_rows, struct_ddl, struct_features, struct_scalar
from .registry import sql_function

COX_MODEL = struct_ddl(cox.MODEL_FIELDS)
KM_MODEL = struct_ddl(km.MODEL_FIELDS)
AFT_MODEL = struct_ddl(aft.MODEL_FIELDS)


def _cox_fit(function: str, duration: pa.Array, event: pa.Array, covariates: pa.Array,
             options: pa.Array | None, **extra: Any) -> pa.Scalar:
    return fitted_model(
        function, cox.fit, cox.MODEL_FIELDS,
        numbers(duration, function, "duration"), numbers(event, function, "event"),
        struct_features(covariates, function, "covariates"), options=first_map(options), **extra,
    )


@sql_function(
    "duration DOUBLE, event BOOLEAN, covariates STRUCT [, options MAP<STRING,STRING>]",
    returns=COX_MODEL,
    kind="aggregate",
    example="SELECT site, coxph_fit(months, died, struct(age, smoker, tumor_mm, treated)) AS model "
            "FROM demo_patients GROUP BY site",
    options=cox.OPTIONS,
)
def coxph_fit(duration: pa.Array, event: pa.Array, covariates: pa.Array, options: pa.Array = None) -> pa.Scalar:
    """Fit a Cox proportional hazards model per group: coefficients with their inference and
    everything needed to predict.

    ``covariates`` is a STRUCT of numbers, booleans and strings, encoded as the regressions
    encode their features: a string field is one-hot encoded, its first category (in sorted
    order) the reference. The model keeps the field names in ``fields`` and the design's
    columns (``age``, ``sex=M``...) in ``features``. ``event`` is boolean or 0/1.
    ``options``: ``ties`` (``efron`` default, as lifelines, or ``breslow``), ``penalizer`` (default 0), ``l1_ratio`` (0 ridge .. 1 lasso), ``alpha``
    (0.05: 95% intervals), ``max_iter``, ``tol``. Rows with a NULL are left out
    (``n_dropped``). A group that cannot be fitted (negative durations, no events, a
    constant feature...) gives NULL estimates and the reason in ``error``.
    """
    return _cox_fit("coxph_fit", duration, event, covariates, options)


@sql_function(
    "duration DOUBLE, event BOOLEAN, weight DOUBLE, covariates STRUCT [, options MAP<STRING,STRING>]",
    returns=COX_MODEL,
    kind="aggregate",
    example="SELECT coxph_fit_weighted(months, died, IF(treated = 1, 2.0, 1.0), struct(age, smoker)) FROM demo_patients",
    options=cox.OPTIONS,
)
def coxph_fit_weighted(duration: pa.Array, event: pa.Array, weight: pa.Array, covariates: pa.Array,
                       options: pa.Array = None) -> pa.Scalar:
    """``coxph_fit`` with a positive case weight per row (as lifelines' ``weights_col``;
    the standard errors are the naive ones)."""
    return _cox_fit("coxph_fit_weighted", duration, event, covariates, options,
                    weights=numbers(weight, "coxph_fit_weighted", "weight"))


@sql_function(
    "duration DOUBLE, event BOOLEAN, stratum ANY, covariates STRUCT [, options MAP<STRING,STRING>]",
    returns=COX_MODEL,
    kind="aggregate",
    example="SELECT coxph_fit_stratified(months, died, site, struct(age, smoker, tumor_mm, treated)) FROM demo_patients",
    options=cox.OPTIONS,
)
def coxph_fit_stratified(duration: pa.Array, event: pa.Array, stratum: pa.Array, covariates: pa.Array,
                         options: pa.Array = None) -> pa.Scalar:
    """``coxph_fit`` with a baseline hazard of its own per ``stratum`` value (shared
    coefficients). Survival predictions then need the stratum: see ``coxph_predict``."""
    return _cox_fit("coxph_fit_stratified", duration, event, covariates, options, strata=labels(stratum))


def _predictions(function: str, model: pa.Array, covariates: pa.Array, kind: pa.Array | None, default_kind: str,
                 predict: Any, **per_row: pa.Array | None) -> pa.Array:
    """Apply ``predict(model, covariates, kind, **per_row)`` to each distinct model's rows."""
    kind_value = constant(kind, default_kind)
    columns = struct_features(covariates, function, "covariates")
    rows = {name: (numbers(array, function, name) if name == "time" else np.asarray(labels(array), dtype=object))
            for name, array in per_row.items() if array is not None}

    def apply(fitted: dict, where: np.ndarray) -> np.ndarray:
        if fitted.get("coef") is None:
            return np.full(len(where), np.nan)
        selected = {name: values[where] for name, values in columns.items()}
        return predict(fitted, selected, kind_value, **{name: values[where] for name, values in rows.items()})

    return predict_rows(function, model, apply)


@sql_function(
    "model COX_MODEL, covariates STRUCT [, type STRING [, time DOUBLE [, stratum ANY]]]",
    returns="DOUBLE",
    example="SELECT p.PatientID, coxph_predict(m.model, struct(p.age, p.smoker, p.tumor_mm, p.treated), 'survival', 24.0) "
            "FROM demo_patients p CROSS JOIN (SELECT coxph_fit(months, died, struct(age, smoker, tumor_mm, treated)) AS model "
            "FROM demo_patients) m",
)
def coxph_predict(model: pa.Array, covariates: pa.Array, kind: pa.Array = None, time: pa.Array = None,
                  stratum: pa.Array = None) -> pa.Array:
    """Predict from a ``coxph_fit`` model, with covariates matched to the model by field name
    (a missing or unknown field is an error naming it) and encoded as at fit time (an
    unseen category counts as the reference, a NULL gives NULL).

    ``type``: ``partial_hazard`` (default: exp((x - means) . coef), as lifelines),
    ``log_partial_hazard``, ``survival`` or ``cumulative_hazard`` at ``time`` (the baseline
    interpolated linearly between its times, as lifelines), or ``median`` survival time:
    +Infinity when the predicted survival stays above 0.5 during follow-up.
    A model without estimates gives NULL. Stratified models need ``stratum`` for the
    survival, cumulative hazard and median.
    """

    def predict(fitted: dict, selected: dict, kind: str, time: np.ndarray | None = None,
                stratum: np.ndarray | None = None) -> np.ndarray:
        if stratum is None:
            return cox.predict(fitted, selected, kind, time)
        out = np.empty(len(stratum))
        for value in set(stratum):  # NULL or unknown strata predict NaN (NULL)
            rows = stratum == value
            out[rows] = cox.predict(fitted, {k: v[rows] for k, v in selected.items()}, kind,
                                    None if time is None else time[rows], value)
        return out

    return _predictions("coxph_predict", model, covariates, kind, "partial_hazard", predict, time=time, stratum=stratum)


@sql_function(
    "model COX_MODEL",
    returns=columns_ddl(cox.SUMMARY_FIELDS),
    kind="table",
    example="SELECT s.* FROM (SELECT coxph_fit(months, died, struct(age, smoker, tumor_mm, treated)) AS model "
            "FROM demo_patients) m, LATERAL coxph_summary(m.model) s",
    name="coxph_summary",
)
class CoxSummary(ModelSummary):
    """One row per feature of a Cox model (feature, coef, hazard_ratio, se, z, p, ci_lower,
    ci_upper), like lifelines' ``summary``. Use it with ``LATERAL`` on a table of models."""

    summarise = staticmethod(cox.summary)


CHECK_RESULT = struct_ddl(cox.CHECK_FIELDS)


@sql_function(
    "duration DOUBLE, event BOOLEAN, covariates STRUCT, model COX_MODEL [, options MAP<STRING,STRING>]",
    returns=CHECK_RESULT,
    kind="aggregate",
    example="SELECT coxph_check(p.months, p.died, struct(p.age, p.smoker, p.tumor_mm, p.treated), m.model) "
            "FROM demo_patients p CROSS JOIN (SELECT coxph_fit(months, died, struct(age, smoker, tumor_mm, treated)) AS model "
            "FROM demo_patients) m",
    options=cox.CHECK_OPTIONS,
)
def coxph_check(duration: pa.Array, event: pa.Array, covariates: pa.Array, model: pa.Array,
                options: pa.Array = None) -> pa.Scalar:
    """Test the proportional hazards assumption of a fitted model, per feature: scaled
    Schoenfeld residuals against transformed time (lifelines' ``proportional_hazard_test``,
    R's ``cox.zph``). A small ``p`` says the feature's effect changes over time.
    ``options``: ``time_transform`` (``rank`` default, ``km``, ``identity``, ``log``)."""
    columns = struct_features(covariates, "coxph_check", "covariates")
    if not columns:
        raise FunctionArgumentError("coxph_check", "covariates", "a STRUCT of the model's covariates", "an empty struct")
    fitted = constant(model)
    if fitted is None:
        return struct_scalar({"error": "no model"}, cox.CHECK_FIELDS)
    return fitted_model("coxph_check", cox.check, cox.CHECK_FIELDS, numbers(duration, "coxph_check", "duration"),
                numbers(event, "coxph_check", "event"), columns, fitted, first_map(options))


@sql_function(
    "duration DOUBLE, event BOOLEAN [, options MAP<STRING,STRING>]",
    returns=KM_MODEL,
    kind="aggregate",
    example="SELECT treated, km_fit(months, died).median AS median_months FROM demo_patients GROUP BY treated",
    options=km.OPTIONS,
)
def km_fit(duration: pa.Array, event: pa.Array, options: pa.Array = None) -> pa.Scalar:
    """The Kaplan-Meier survival curve per group: times, survival with its confidence band
    (``options``: ``alpha``, default 0.05), numbers at risk, events and censored, and the
    median survival time (+Infinity when the curve stays above 0.5)."""
    return fitted_model("km_fit", km.fit, km.MODEL_FIELDS, numbers(duration, "km_fit", "duration"),
                numbers(event, "km_fit", "event"), first_map(options))


@sql_function(
    "model KM_MODEL, time DOUBLE",
    returns="DOUBLE",
    example="SELECT km_survival(km_fit(months, died), 24.0) AS two_year_survival FROM demo_patients",
)
def km_survival(model: pa.Array, time: pa.Array) -> pa.Array:
    """Survival at ``time`` on a ``km_fit`` curve (1 before the first time)."""
    times = numbers(time, "km_survival", "time")
    result = np.full(len(times), np.nan)
    for fitted, where in Models(model):
        if fitted.get("times") is not None:
            result[where] = km.survival_at(fitted, times[where])
    return pa.array(result, type=pa.float64(), mask=np.isnan(result))


LOGRANK_RESULT = struct_ddl(km.LOGRANK_FIELDS)


@sql_function(
    "duration DOUBLE, event BOOLEAN, group ANY",
    returns=LOGRANK_RESULT,
    kind="aggregate",
    example="SELECT logrank_test(months, died, treated) FROM demo_patients",
)
def logrank_test(duration: pa.Array, event: pa.Array, group: pa.Array) -> pa.Scalar:
    """The log-rank test that 2 or more groups have the same survival: statistic, degrees of
    freedom, p, and per group its size and events."""
    return struct_scalar(
        km.logrank(numbers(duration, "logrank_test", "duration"), numbers(event, "logrank_test", "event"), labels(group)),
        km.LOGRANK_FIELDS,
    )


@sql_function(
    "duration DOUBLE, event BOOLEAN, covariates STRUCT [, options MAP<STRING,STRING>]",
    returns=AFT_MODEL,
    kind="aggregate",
    example="SELECT aft_fit(months, died, struct(age, smoker, tumor_mm, treated), map('distribution', 'lognormal')) FROM demo_patients",
    options=aft.OPTIONS,
)
def aft_fit(duration: pa.Array, event: pa.Array, covariates: pa.Array, options: pa.Array = None) -> pa.Scalar:
    """Fit an accelerated failure time model per group. ``options``: ``distribution``
    (``weibull`` default, ``lognormal``, ``loglogistic``), ``penalizer``, ``alpha``. The
    model names each estimate in ``parameters`` (``location:age``, ``location:Intercept``,
    ``shape:Intercept``) with coef, se, z, p and interval aligned; ``covariates`` are encoded
    as ``coxph_fit``'s (strings one-hot, the first category the reference)."""
    return fitted_model("aft_fit", aft.fit, aft.MODEL_FIELDS, numbers(duration, "aft_fit", "duration"),
                numbers(event, "aft_fit", "event"), struct_features(covariates, "aft_fit", "covariates"),
                first_map(options))


@sql_function(
    "model AFT_MODEL, covariates STRUCT [, type STRING [, time DOUBLE]]",
    returns="DOUBLE",
    example="SELECT aft_predict(m.model, struct(p.age, p.smoker, p.tumor_mm, p.treated), 'median') FROM demo_patients p "
            "CROSS JOIN (SELECT aft_fit(months, died, struct(age, smoker, tumor_mm, treated)) AS model FROM demo_patients) m",
)
def aft_predict(model: pa.Array, covariates: pa.Array, kind: pa.Array = None, time: pa.Array = None) -> pa.Array:
    """Predict from an ``aft_fit`` model: ``median`` (default) or ``expectation`` of the
    survival time, or ``survival`` at ``time``; covariates matched by field name and encoded
    as at fit time."""

    return _predictions("aft_predict", model, covariates, kind, "median", aft.predict, time=time)


@sql_function(
    "model AFT_MODEL",
    returns=columns_ddl(aft.SUMMARY_FIELDS),
    kind="table",
    example="SELECT s.* FROM (SELECT aft_fit(months, died, struct(age, smoker, tumor_mm, treated)) AS model "
            "FROM demo_patients) m, LATERAL aft_summary(m.model) s",
    name="aft_summary",
)
class AftSummary(ModelSummary):
    """One row per estimate of an AFT model (parameter, feature, coef, se, z, p, ci_lower,
    ci_upper), like lifelines' ``summary``: ``parameter`` is ``location`` (one row per
    feature and the ``Intercept``) or ``shape`` (its ``Intercept``, on the log scale)."""

    summarise = staticmethod(aft.summary)

"""Survival maths against the references, on lifelines' bundled real data sets and on
generated data with ties, strata and weights (pure: no Spark). Tolerance 1e-6."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from lifelines import (
    CoxPHFitter,
    KaplanMeierFitter,
    LogLogisticAFTFitter,
    LogNormalAFTFitter,
    WeibullAFTFitter,
)
from lifelines.datasets import load_gbsg2, load_larynx, load_lung, load_rossi, load_waltons
from lifelines.statistics import multivariate_logrank_test, proportional_hazard_test

from dicomsql.errors import ArgumentError
from dicomsql.stats import aft, cox, km

TOLERANCE = dict(rtol=1e-6, atol=1e-6)


def _gbsg2() -> pd.DataFrame:
    data = load_gbsg2()
    data["horTh"] = (data["horTh"] == "yes").astype(float)
    data["menostat"] = (data["menostat"] == "Post").astype(float)
    return data[
        ["time", "cens", "horTh", "age", "menostat", "tsize", "pnodes", "progrec", "estrec"]
    ]


def _lung() -> pd.DataFrame:
    data = load_lung().dropna()
    data["status"] = data["status"] - 1 if data["status"].max() == 2 else data["status"]
    return data[["time", "status", "age", "sex", "ph.ecog", "ph.karno", "wt.loss"]]


def _ties(n: int = 400, seed: int = 3) -> pd.DataFrame:
    """Generated data with heavy ties (times rounded to whole months) and strata."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    time = np.ceil(rng.exponential(12 / np.exp(x @ [0.6, -0.4, 0.2])))
    censor = np.ceil(rng.uniform(6, 30, n))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["time"], frame["event"] = np.minimum(time, censor), (time <= censor).astype(float)
    frame["group"] = rng.choice(["x", "y", "z"], n)
    frame["weight"] = rng.uniform(0.5, 2.0, n)
    return frame


DATASETS = {
    "rossi": (load_rossi(), "week", "arrest"),
    "lung": (_lung(), "time", "status"),
    "gbsg2": (_gbsg2(), "time", "cens"),
    "larynx": (load_larynx(), "time", "death"),
    "ties": (_ties().drop(columns=["group", "weight"]), "time", "event"),
}


def _columns(frame: pd.DataFrame, names: list[str]) -> dict[str, np.ndarray]:
    """Feature columns by name, as the fits take them."""
    return {name: frame[name].to_numpy(dtype=float) for name in names}


def _named(matrix: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """The columns of a matrix, by name."""
    return dict(zip(names, np.asarray(matrix, dtype=float).T))


def _fit(frame: pd.DataFrame, duration: str, event: str, **kwargs):
    names = [c for c in frame.columns if c not in (duration, event)]
    return names, cox.fit(frame[duration], frame[event], _columns(frame, names), **kwargs)


@pytest.mark.parametrize("dataset", DATASETS)
def test_coxph_efron_against_lifelines(dataset):
    frame, duration, event = DATASETS[dataset]
    names, model = _fit(frame, duration, event)
    # lifelines: CoxPHFitter().fit(frame, duration, event)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = CoxPHFitter().fit(frame, duration, event)
    assert model["error"] is None and model["converged"]
    np.testing.assert_allclose(model["coef"], reference.params_[names], **TOLERANCE)
    np.testing.assert_allclose(model["se"], reference.standard_errors_[names], **TOLERANCE)
    np.testing.assert_allclose(model["p"], reference.summary.loc[names, "p"], **TOLERANCE)
    np.testing.assert_allclose(
        model["ci_lower"], reference.summary.loc[names, "coef lower 95%"], **TOLERANCE
    )
    assert model["log_likelihood"] == pytest.approx(reference.log_likelihood_, abs=1e-6)
    assert model["concordance"] == pytest.approx(reference.concordance_index_, abs=1e-9)
    ratio = reference.log_likelihood_ratio_test()
    assert model["lr_test_statistic"] == pytest.approx(ratio.test_statistic, abs=1e-6)
    assert model["n"] == len(frame) and model["events"] == frame[event].sum()

    covariates = {name: frame[name].to_numpy() for name in names}
    np.testing.assert_allclose(
        cox.predict(model, covariates), reference.predict_partial_hazard(frame), **TOLERANCE
    )
    at = float(np.median(frame[duration]))
    np.testing.assert_allclose(
        cox.predict(model, covariates, "survival", np.full(len(frame), at)),
        reference.predict_survival_function(frame, times=[at]).to_numpy()[0],
        **TOLERANCE,
    )
    np.testing.assert_allclose(
        cox.predict(model, covariates, "cumulative_hazard", np.full(len(frame), at)),
        reference.predict_cumulative_hazard(frame, times=[at]).to_numpy()[0],
        **TOLERANCE,
    )
    np.testing.assert_array_equal(
        cox.predict(model, covariates, "median"), reference.predict_median(frame).to_numpy()
    )


def test_coxph_strata_weights_and_penalties_against_lifelines():
    frame = _ties()
    names = ["a", "b", "c"]
    cases = [
        (dict(strata=frame["group"].to_numpy()), dict(strata=["group"]), {}),
        (dict(weights=frame["weight"].to_numpy()), dict(weights_col="weight"), {}),
        ({}, {}, {"penalizer": "0.1"}),
        ({}, {}, {"penalizer": "0.05", "l1_ratio": "0.5"}),
        ({}, {}, {"alpha": "0.1"}),
    ]
    for ours, theirs, options in cases:
        model = cox.fit(
            frame["time"], frame["event"], _columns(frame, names), options=options, **ours
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            columns = (
                names
                + ["time", "event"]
                + [c for c in ("group", "weight") if c in theirs.values() or [c] in theirs.values()]
            )
            reference = CoxPHFitter(
                penalizer=float(options.get("penalizer", 0)),
                l1_ratio=float(options.get("l1_ratio", 0)),
                alpha=float(options.get("alpha", 0.05)),
            ).fit(frame[columns], "time", "event", **theirs)
        np.testing.assert_allclose(model["coef"], reference.params_[names], **TOLERANCE)
        np.testing.assert_allclose(model["se"], reference.standard_errors_[names], **TOLERANCE)
        assert model["log_likelihood"] == pytest.approx(reference.log_likelihood_, abs=1e-6)
        if "alpha" in options:
            np.testing.assert_allclose(
                model["ci_upper"], reference.summary.loc[names].iloc[:, 4], **TOLERANCE
            )
    stratified = cox.fit(
        frame["time"], frame["event"], _columns(frame, names), strata=frame["group"].to_numpy()
    )
    covariates = {name: frame[name].to_numpy() for name in names}
    reference = CoxPHFitter().fit(
        frame[names + ["time", "event", "group"]], "time", "event", strata=["group"]
    )
    mine = np.array(
        [
            cox.predict(
                stratified,
                {k: v[i : i + 1] for k, v in covariates.items()},
                "survival",
                np.array([10.0]),
                frame["group"][i],
            )[0]
            for i in range(20)
        ]
    )
    theirs = reference.predict_survival_function(frame.iloc[:20], times=[10.0])[
        frame.index[:20]
    ].to_numpy()[0]
    np.testing.assert_allclose(mine, theirs, **TOLERANCE)


@pytest.mark.parametrize("stratified", [False, True])
def test_coxph_breslow_against_statsmodels(stratified):
    frame = _ties()
    names = ["a", "b", "c"]
    strata = frame["group"].to_numpy() if stratified else None
    model = cox.fit(
        frame["time"],
        frame["event"],
        _columns(frame, names),
        strata=strata,
        options={"ties": "breslow"},
    )
    # statsmodels: PHReg(time, X, status=event, ties="breslow", strata=group).fit()
    reference = sm.PHReg(
        frame["time"],
        frame[names],
        status=frame["event"],
        ties="breslow",
        strata=frame["group"] if stratified else None,
    ).fit()
    np.testing.assert_allclose(model["coef"], reference.params, **TOLERANCE)
    np.testing.assert_allclose(model["se"], reference.bse, **TOLERANCE)
    assert model["log_likelihood"] == pytest.approx(reference.llf, abs=1e-6)
    assert model["converged"] and model["ties"] == "breslow"


def test_coxph_breslow_weights_equal_efron_without_ties():
    """Without tied times Breslow and Efron are one likelihood: weighted fits must agree."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 2))
    time, event, weight = (
        rng.exponential(1 / np.exp(x @ [0.5, -0.3])),
        rng.uniform(size=300) < 0.7,
        rng.uniform(0.5, 2, 300),
    )
    breslow = cox.fit(
        time,
        event,
        _named(x, ["a", "b"]),
        weights=weight,
        options={"ties": "breslow", "tol": "1e-10"},
    )
    efron = cox.fit(time, event, _named(x, ["a", "b"]), weights=weight, options={"tol": "1e-10"})
    np.testing.assert_allclose(breslow["coef"], efron["coef"], **TOLERANCE)
    np.testing.assert_allclose(breslow["se"], efron["se"], **TOLERANCE)
    np.testing.assert_allclose(breslow["baseline_cumhaz"], efron["baseline_cumhaz"], **TOLERANCE)


def test_coxph_bad_groups_give_a_reason_not_an_exception():
    x = np.array([[1.0], [2.0], [3.0], [4.0]])
    assert "negative durations" in cox.fit([1, -2, 3, 4], [1, 1, 0, 1], _named(x, ["a"]))["error"]
    assert "no events" in cox.fit([1, 2, 3, 4], [0, 0, 0, 0], _named(x, ["a"]))["error"]
    assert (
        "constant feature(s) a"
        in cox.fit([1, 2, 3, 4], [1, 0, 1, 1], _named(np.ones((4, 1)), ["a"]))["error"]
    )
    dropped = cox.fit(
        [1, 2, np.nan, 4, 5, 6],
        [1, 0, 1, 1, 0, 1],
        _named(np.array([[1.0], [3], [2], [np.nan], [5], [4]]), ["a"]),
    )
    assert dropped["n_dropped"] == 2 and dropped["n"] == 4
    collinear = cox.fit(
        np.arange(1, 41),
        np.tile([1, 0], 20),
        _named(np.column_stack([np.arange(40), 2 * np.arange(40)]), ["a", "b"]),
    )
    assert collinear["error"] is not None or not collinear["converged"]
    with pytest.raises(ValueError, match="option ties must be one of efron, breslow, got 'exact'"):
        cox.fit([1, 2], [1, 1], _named(x[:2], ["a"]), options={"ties": "exact"})
    with pytest.raises(ValueError, match="unknown option 'tie'"):
        cox.fit([1, 2], [1, 1], _named(x[:2], ["a"]), options={"tie": "efron"})


def test_coxph_predict_names_missing_and_extra_covariates():
    frame, duration, event = DATASETS["rossi"]
    names, model = _fit(frame, duration, event)
    covariates = {name: frame[name].to_numpy() for name in names if name != "age"}
    covariates["height"] = np.zeros(len(frame))
    with pytest.raises(
        ArgumentError, match="missing field\\(s\\) age; unknown field\\(s\\) height"
    ) as caught:
        cox.predict(model, covariates)
    assert caught.value.argument == "features"


def test_coxph_check_against_lifelines():
    frame, duration, event = DATASETS["rossi"]
    names, model = _fit(frame, duration, event)
    result = cox.check(frame[duration], frame[event], _columns(frame, names), model)
    reference_model = CoxPHFitter().fit(frame, duration, event)
    # lifelines: proportional_hazard_test(cph, rossi, time_transform="rank")
    reference = proportional_hazard_test(reference_model, frame, time_transform="rank").summary
    np.testing.assert_allclose(
        result["statistic"], reference.loc[names, "test_statistic"], **TOLERANCE
    )
    np.testing.assert_allclose(result["p"], reference.loc[names, "p"], **TOLERANCE)
    assert result["error"] is None


def test_kaplan_meier_and_logrank_against_lifelines():
    waltons = load_waltons()
    for _group, rows in waltons.groupby("group"):
        model = km.fit(rows["T"], rows["E"])
        reference = KaplanMeierFitter().fit(rows["T"], rows["E"])
        np.testing.assert_allclose(
            model["survival"], reference.survival_function_.iloc[:, 0], **TOLERANCE
        )
        np.testing.assert_allclose(
            model["ci_lower"], reference.confidence_interval_.iloc[:, 0], **TOLERANCE
        )
        assert model["at_risk"] == reference.event_table["at_risk"].tolist()
        assert model["median"] == reference.median_survival_time_
        times = np.array([0.0, 10.0, 33.5, 80.0])
        np.testing.assert_allclose(
            km.survival_at(model, times), reference.survival_function_at_times(times), **TOLERANCE
        )
    test = km.logrank(waltons["T"], waltons["E"], waltons["group"])
    reference = multivariate_logrank_test(waltons["T"], waltons["group"], waltons["E"])
    assert test["statistic"] == pytest.approx(reference.test_statistic, abs=1e-9)
    assert test["p"] == pytest.approx(reference.p_value, abs=1e-12)
    three = _ties()
    test3 = km.logrank(three["time"], three["event"], three["group"])
    reference3 = multivariate_logrank_test(three["time"], three["group"], three["event"])
    assert test3["df"] == 2 and test3["statistic"] == pytest.approx(
        reference3.test_statistic, abs=1e-9
    )
    assert (
        km.logrank([1, 2], [1, 1], ["a", "a"])["error"]
        == "the log-rank test needs at least 2 groups"
    )


@pytest.mark.parametrize(
    "distribution, fitter",
    [
        ("weibull", WeibullAFTFitter),
        ("lognormal", LogNormalAFTFitter),
        ("loglogistic", LogLogisticAFTFitter),
    ],
)
def test_aft_against_lifelines(distribution, fitter):
    frame = load_rossi()[["week", "arrest", "age", "fin", "prio"]]
    names = ["age", "fin", "prio"]
    model = aft.fit(
        frame["week"], frame["arrest"], _columns(frame, names), {"distribution": distribution}
    )
    reference = fitter().fit(frame, "week", "arrest")
    np.testing.assert_allclose(model["coef"], reference.params_, **TOLERANCE)
    np.testing.assert_allclose(model["se"], reference.standard_errors_, **TOLERANCE)
    assert model["log_likelihood"] == pytest.approx(reference.log_likelihood_, abs=1e-6)
    covariates = {name: frame[name].to_numpy() for name in names}
    np.testing.assert_allclose(
        aft.predict(model, covariates, "median"), reference.predict_median(frame), **TOLERANCE
    )
    np.testing.assert_allclose(
        aft.predict(model, covariates, "expectation"),
        reference.predict_expectation(frame),
        **TOLERANCE,
    )
    np.testing.assert_allclose(
        aft.predict(model, covariates, "survival", np.full(len(frame), 26.0)),
        reference.predict_survival_function(frame, times=[26.0]).to_numpy()[0],
        **TOLERANCE,
    )


def test_concordance_equals_lifelines_with_ties_and_censoring():
    from lifelines.utils import concordance_index as lifelines_concordance

    from dicomsql.stats.concordance import concordance_index

    rng = np.random.default_rng(9)
    for _ in range(500):
        n = int(rng.integers(2, 60))
        time = rng.integers(0, 8, n).astype(float)  # many tied times
        score = rng.integers(0, 5, n).astype(float)  # many tied scores
        event = rng.uniform(size=n) < 0.6
        if event.any() and np.any(time[event][:, None] < time[None, :]):
            assert concordance_index(time, score, event) == pytest.approx(
                lifelines_concordance(time, score, event), abs=1e-12
            )
    time, score, event = (
        rng.exponential(10, 20_000).round(1),
        rng.normal(size=20_000),
        rng.uniform(size=20_000) < 0.5,
    )
    assert concordance_index(time, score, event) == pytest.approx(
        lifelines_concordance(time, score, event), abs=1e-12
    )


def test_breslow_penalty_and_convergence_follow_lifelines():
    """Without ties Breslow and Efron are one likelihood, penalised the same way."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(300, 2)) * [1.0, 1000.0]  # very different scales
    time, event = (
        rng.exponential(1 / np.exp(x @ [0.5, -0.0003])),
        (rng.uniform(size=300) < 0.7).astype(float),
    )
    for penalizer in ("0", "0.1"):
        options = {"penalizer": penalizer, "tol": "1e-10"}
        breslow = cox.fit(
            time, event, _named(x, ["a", "b"]), options={**options, "ties": "breslow"}
        )
        efron = cox.fit(time, event, _named(x, ["a", "b"]), options=options)
        np.testing.assert_allclose(breslow["coef"], efron["coef"], **TOLERANCE)
        assert breslow["log_likelihood"] == pytest.approx(efron["log_likelihood"], abs=1e-6)
    separated = cox.fit(
        np.arange(1, 21),
        np.ones(20),
        _named((np.arange(20) < 10).astype(float)[:, None], ["x"]),
        options={"ties": "breslow"},
    )
    assert not separated["converged"] and "separation" in separated["warning"]


def test_predictions_for_strata_and_edge_cases():
    frame = _ties()
    names = ["a", "b", "c"]
    model = cox.fit(
        frame["time"], frame["event"], _columns(frame, names), strata=frame["group"].to_numpy()
    )
    covariates = {name: frame[name].to_numpy()[:3] for name in names}
    reference = CoxPHFitter().fit(
        frame[names + ["time", "event", "group"]], "time", "event", strata=["group"]
    )
    for stratum in ("x", "y"):
        rows = frame.iloc[:3].assign(group=stratum)
        np.testing.assert_array_equal(
            cox.predict(model, covariates, "median", stratum=stratum),
            reference.predict_median(rows),
        )
    assert np.isnan(cox.predict(model, covariates, "median", stratum=None)).all()  # a NULL stratum
    assert np.isnan(cox.predict(model, covariates, "survival", np.ones(3), stratum="nowhere")).all()
    with pytest.raises(ArgumentError, match="needs the stratum") as caught:
        cox.predict(model, covariates, "survival", np.ones(3))
    assert caught.value.argument == "stratum"
    with pytest.raises(ArgumentError, match="needs a time") as caught:
        cox.predict(model, covariates, "survival", stratum="x")
    assert caught.value.argument == "time"
    curve = km.fit(frame["time"], frame["event"])
    assert np.isnan(km.survival_at(curve, np.array([np.nan]))).all()


def test_aft_checks_its_input_like_cox():
    frame = load_rossi()
    names = ["age", "fin"]
    doubled = aft.fit(frame["week"], frame["arrest"] * 2, _columns(frame, names))
    assert doubled["error"] == "event must be 0/1 or boolean"
    constant = aft.fit(
        frame["week"],
        frame["arrest"],
        _named(np.column_stack([frame["age"], np.ones(len(frame))]), ["age", "one"]),
    )
    assert constant["error"].startswith("constant feature(s) one")
    assert aft.fit([0, 1, 2], [1, 1, 0], _named(np.array([[1.0], [2.0], [3.0]]), ["x"]))[
        "error"
    ].startswith("non-positive durations")


def test_concordance_of_nan_scores_is_nan():
    from dicomsql.stats.concordance import concordance_index

    assert np.isnan(concordance_index([1, 2, 3], [1, np.nan, 3], [1, 1, 1]))


def _rossi_with_strings() -> pd.DataFrame:
    """Rossi with a string and a boolean covariate: ``site`` (3 categories, not in sorted
    order of appearance) and ``paroled`` (True/False)."""
    frame = load_rossi()[["week", "arrest", "age", "prio", "paro"]].rename(
        columns={"paro": "paroled"}
    )
    frame["paroled"] = frame["paroled"] == 1
    frame["site"] = np.random.default_rng(4).choice(["West", "East", "North"], len(frame))
    return frame


def _string_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The columns as SQL gives them: numbers and booleans as floats, strings as objects."""
    return {
        "age": frame["age"].to_numpy(float),
        "prio": frame["prio"].to_numpy(float),
        "paroled": frame["paroled"].to_numpy(float),
        "site": frame["site"].to_numpy(dtype=object),
    }


def _dummies(frame: pd.DataFrame) -> pd.DataFrame:
    # pandas: get_dummies(frame, columns=["site"], drop_first=True, prefix_sep="=")
    return pd.get_dummies(
        frame.astype({"paroled": float}),
        columns=["site"],
        drop_first=True,
        prefix_sep="=",
        dtype=float,
    )


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_coxph_one_hot_encodes_strings_as_lifelines_on_dummies(ties):
    frame = _rossi_with_strings()
    dummies = _dummies(frame)
    model = cox.fit(
        frame["week"],
        frame["arrest"],
        _string_columns(frame),
        options={"ties": ties, "tol": "1e-10"},
    )
    names = [
        "age",
        "prio",
        "paroled",
        "site=North",
        "site=West",
    ]  # East, first in sorted order, is the reference
    assert model["error"] is None and model["features"] == names
    assert model["fields"] == ["age", "prio", "paroled", "site"] and model["categories"][3] == [
        "East",
        "North",
        "West",
    ]
    if ties == "efron":  # lifelines: CoxPHFitter().fit(dummies, "week", "arrest")
        reference = CoxPHFitter().fit(dummies, "week", "arrest")
        params, errors = reference.params_[names], reference.standard_errors_[names]
    else:  # statsmodels: PHReg(week, dummies[names], status=arrest, ties="breslow").fit()
        reference = sm.PHReg(
            dummies["week"], dummies[names], status=dummies["arrest"], ties="breslow"
        ).fit()
        params, errors = reference.params, reference.bse
    np.testing.assert_allclose(model["coef"], params, **TOLERANCE)
    np.testing.assert_allclose(model["se"], errors, **TOLERANCE)
    if ties == "efron":
        np.testing.assert_allclose(
            cox.predict(model, _string_columns(frame)),
            reference.predict_partial_hazard(dummies),
            **TOLERANCE,
        )
    unseen = {**_string_columns(frame), "site": np.full(len(frame), "Mars", dtype=object)}
    as_reference = {**_string_columns(frame), "site": np.full(len(frame), "East", dtype=object)}
    np.testing.assert_array_equal(cox.predict(model, unseen), cox.predict(model, as_reference))
    with_null = {
        **_string_columns(frame),
        "site": np.array([None] + ["East"] * (len(frame) - 1), dtype=object),
    }
    assert np.isnan(cox.predict(model, with_null)[0])
    assert [row[0] for row in cox.summary(model)] == names
    assert [row[2] for row in cox.summary(model)] == pytest.approx(np.exp(model["coef"]))


def test_aft_one_hot_encodes_strings_as_lifelines_on_dummies():
    frame = _rossi_with_strings()
    dummies = _dummies(frame)
    model = aft.fit(frame["week"], frame["arrest"], _string_columns(frame))
    # lifelines: WeibullAFTFitter().fit(dummies, "week", "arrest")
    reference = WeibullAFTFitter().fit(dummies, "week", "arrest")
    assert model["features"] == ["age", "prio", "paroled", "site=North", "site=West"]
    assert model["parameters"] == [
        f"{group.rstrip('_').replace('lambda', 'location').replace('rho', 'shape')}:{name}"
        for group, name in reference.params_.index
    ]
    np.testing.assert_allclose(model["coef"], reference.params_, **TOLERANCE)
    np.testing.assert_allclose(model["se"], reference.standard_errors_, **TOLERANCE)
    np.testing.assert_allclose(
        aft.predict(model, _string_columns(frame), "median"),
        reference.predict_median(dummies),
        **TOLERANCE,
    )
    rows = aft.summary(model)
    assert [(row[0], row[1]) for row in rows] == [
        tuple(name.split(":")) for name in model["parameters"]
    ]
    np.testing.assert_allclose([row[2] for row in rows], reference.summary["coef"], **TOLERANCE)
    np.testing.assert_allclose(
        [row[7] for row in rows], reference.summary["coef upper 95%"], **TOLERANCE
    )
    assert aft.summary({"coef": None}) == []


def test_models_stored_with_covariates_still_predict():
    """A model of the release before names its (numeric) fields in ``covariates`` and has
    no ``features``, ``fields`` or ``categories``: it still predicts and summarises."""
    frame, duration, event = DATASETS["rossi"]
    names, model = _fit(frame, duration, event)
    stored = {
        key: value
        for key, value in model.items()
        if key not in ("features", "fields", "categories")
    }
    stored["covariates"] = names
    columns = _columns(frame, names)
    np.testing.assert_array_equal(cox.predict(stored, columns), cox.predict(model, columns))
    assert cox.summary(stored) == cox.summary(model)
    fitted = aft.fit(frame[duration], frame[event], columns)
    old = {
        key: value
        for key, value in fitted.items()
        if key not in ("features", "fields", "categories")
    }
    np.testing.assert_array_equal(
        aft.predict({**old, "covariates": names}, columns), aft.predict(fitted, columns)
    )

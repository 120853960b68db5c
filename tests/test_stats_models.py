"""The predictive models' maths, without Spark, against statsmodels, scikit-learn and numpy."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.special import logsumexp
from sklearn import metrics as sk_metrics
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import CategoricalNB, GaussianNB
from sklearn.tree import DecisionTreeRegressor

from dicomsql.errors import ArgumentError
from dicomsql.stats import als, bayes, forest, linear, logistic, metrics
from dicomsql.stats.features import Encoding, FeatureLearner, class_names

TIGHT = dict(rtol=1e-6, atol=1e-9)


def columns_of(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Feature columns as the SQL adapters give them: floats, or object arrays of strings."""
    return {
        name: (
            frame[name].to_numpy(dtype=object)
            if frame[name].dtype == object
            else frame[name].to_numpy(dtype=float)
        )
        for name in frame
    }


@pytest.fixture(scope="module")
def diabetes() -> tuple[pd.DataFrame, np.ndarray]:
    features, target = load_diabetes(return_X_y=True, as_frame=True, scaled=False)
    return features, target.to_numpy(dtype=float)


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, np.ndarray]:
    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    chosen = features[
        ["mean radius", "mean texture", "mean smoothness", "mean concavity", "worst symmetry"]
    ]
    return chosen.rename(columns=lambda name: name.replace(" ", "_")), target.to_numpy()


def with_site(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """``frame`` with a string field ``site`` of three categories."""
    return frame.assign(
        site=np.random.default_rng(seed)
        .choice(["north", "south", "east"], len(frame))
        .astype(object)
    )


def treatment_coded(frame: pd.DataFrame) -> pd.DataFrame:
    """What statsmodels needs for the reference coding: the first category (east) dropped."""
    coded = frame.drop(columns="site")
    coded.insert(list(frame).index("site"), "site=north", (frame.site == "north").astype(float))
    coded.insert(list(frame).index("site") + 1, "site=south", (frame.site == "south").astype(float))
    return coded


# --- features -------------------------------------------------------------------------------


def test_encoding_names_reference_coding_and_unseen_categories():
    columns = {
        "age": np.array([50.0, 60.0, np.nan]),
        "sex": np.array(["F", "M", None], dtype=object),
    }
    learner = FeatureLearner()
    learner.add({name: values[:2] for name, values in columns.items()})
    encoding, _ = learner.encoding(reference=True)
    assert encoding.names == ["age", "sex=M"]
    assert Encoding.from_model(encoding.as_model(), reference=False).names == [
        "age",
        "sex=F",
        "sex=M",
    ]
    matrix = encoding.matrix(
        {"age": np.array([1.0, 2.0, 3.0]), "sex": np.array(["M", "X", None], dtype=object)}
    )
    np.testing.assert_array_equal(
        matrix[:2], [[1.0, 1.0], [2.0, 0.0]]
    )  # X is unseen: the reference
    assert np.isnan(matrix[2, 1])
    with pytest.raises(ArgumentError, match="missing field.s. sex; unknown field.s. gender"):
        encoding.matrix({"age": np.ones(1), "gender": np.array(["F"], dtype=object)})
    with pytest.raises(ArgumentError, match="field sex must be a string"):
        encoding.matrix({"age": np.ones(1), "sex": np.ones(1)})


def test_class_names_sort_numbers_numerically():
    assert class_names([10, 2, 1.0, None]) == (
        ["1", "2", "10"],
        pytest.approx(np.array([2, 1, 0, -1])),
    )
    assert class_names(["b", "a"])[0] == ["a", "b"]


# --- linear regression ----------------------------------------------------------------------


def test_ols_equals_statsmodels(diabetes):
    features, target = diabetes
    frame = with_site(features)
    model = linear.fit(target, columns_of(frame))
    reference = sm.OLS(target, sm.add_constant(treatment_coded(frame))).fit()
    assert model["features"] == list(treatment_coded(frame))
    np.testing.assert_allclose(np.r_[model["intercept"], model["coef"]], reference.params, **TIGHT)
    np.testing.assert_allclose(np.r_[model["intercept_se"], model["se"]], reference.bse, **TIGHT)
    np.testing.assert_allclose(np.r_[model["intercept_t"], model["t"]], reference.tvalues, **TIGHT)
    np.testing.assert_allclose(
        np.r_[model["intercept_p"], model["p"]], reference.pvalues, rtol=1e-6, atol=1e-12
    )
    intervals = reference.conf_int()
    np.testing.assert_allclose(model["ci_lower"], intervals[0][1:], **TIGHT)
    np.testing.assert_allclose(model["ci_upper"], intervals[1][1:], **TIGHT)
    assert model["r2"] == pytest.approx(reference.rsquared, rel=1e-9)
    assert model["adj_r2"] == pytest.approx(reference.rsquared_adj, rel=1e-9)
    assert model["f_statistic"] == pytest.approx(reference.fvalue, rel=1e-9)
    assert model["f_p"] == pytest.approx(reference.f_pvalue, rel=1e-6)
    assert model["residual_std_error"] == pytest.approx(np.sqrt(reference.scale), rel=1e-9)
    assert model["df_residual"] == reference.df_resid and model["n"] == len(target)
    np.testing.assert_allclose(
        linear.predict(model, columns_of(frame)), reference.fittedvalues, **TIGHT
    )
    rows = list(linear.summary(model))
    assert [row[0] for row in rows] == ["intercept", *model["features"]]
    assert rows[0][1:4] == pytest.approx(
        (reference.params.iloc[0], reference.bse.iloc[0], reference.tvalues.iloc[0])
    )


def test_ols_streamed_in_batches_with_categories_appearing_late(diabetes):
    features, target = diabetes
    frame = with_site(features[["age", "bmi", "bp"]], seed=3)
    order = np.argsort(frame.site.to_numpy(), kind="stable")[::-1]  # 'east' rows come last
    accumulator = linear.LinregAccumulator()
    for rows in np.array_split(order, 9):
        accumulator.add(target[rows], columns_of(frame.iloc[rows]))
    streamed, whole = accumulator.model(), linear.fit(target, columns_of(frame))
    assert (
        streamed["features"]
        == whole["features"]
        == ["age", "bmi", "bp", "site=north", "site=south"]
    )
    np.testing.assert_allclose(streamed["coef"], whole["coef"], rtol=1e-9)
    np.testing.assert_allclose(streamed["se"], whole["se"], rtol=1e-9)


def test_ols_partials_of_partitions_merge_into_the_whole_fit(diabetes):
    features, target = diabetes
    frame = with_site(features[["age", "bmi", "bp"]], seed=3)
    order = np.argsort(frame.site.to_numpy(), kind="stable")  # each partition sees other sites
    partials = [linear.LinregAccumulator()]  # a partition without rows, too
    for rows in np.array_split(order, 4):
        partial = linear.LinregAccumulator()
        for batch in np.array_split(rows, 3):
            partial.add(target[batch], columns_of(frame.iloc[batch]))
        partials.append(partial)
    merged = functools.reduce(linear.LinregAccumulator.merge, partials[::-1]).model()
    whole = linear.fit(target, columns_of(frame))
    assert merged["features"] == whole["features"] and merged["n"] == whole["n"]
    for field in ("coef", "se", "intercept", "r2", "f_statistic"):
        np.testing.assert_allclose(merged[field], whole[field], rtol=1e-9)


def test_ols_without_intercept_is_uncentred_like_statsmodels(diabetes):
    features, target = diabetes
    model = linear.fit(target, columns_of(features), {"intercept": "false"})
    reference = sm.OLS(target, features).fit()
    np.testing.assert_allclose(model["coef"], reference.params, **TIGHT)
    np.testing.assert_allclose(model["se"], reference.bse, **TIGHT)
    assert model.get("intercept") is None and model["r2"] == pytest.approx(
        reference.rsquared, rel=1e-9
    )
    assert model["adj_r2"] == pytest.approx(reference.rsquared_adj, rel=1e-9)
    assert model["f_statistic"] == pytest.approx(reference.fvalue, rel=1e-9)


def test_ridge_equals_scikit_learn(diabetes):
    features, target = diabetes
    model = linear.fit(target, columns_of(features), {"l2": "250"})
    reference = Ridge(alpha=250).fit(features, target)
    np.testing.assert_allclose(model["coef"], reference.coef_, rtol=1e-8)
    assert model["intercept"] == pytest.approx(reference.intercept_, rel=1e-8)
    assert model.get("se") is None  # no inference for a penalised fit
    assert [row[2] for row in linear.summary(model)] == [None] * (len(features.columns) + 1)


def test_ols_says_why_it_cannot_fit():
    x = np.arange(10.0)
    assert (
        linear.fit(x, {"a": x, "b": 2 * x + 1})["error"]
        == "collinear features a, b: one is a linear combination of the others"
    )
    assert linear.fit(x, {"a": x, "c": np.ones(10)})["error"].startswith("constant feature(s) c")
    assert "need more rows" in linear.fit(x[:2], {"a": x[:2]})["error"]
    dropped = linear.fit(
        np.r_[np.nan, x[1:]], {"a": x + np.r_[0, 0, 0, np.random.default_rng(0).normal(size=7)]}
    )
    assert dropped["n"] == 9 and dropped["n_dropped"] == 1
    with pytest.raises(ValueError, match="option l2 must be a number >= 0.0, got '-1'"):
        linear.fit(x, {"a": x}, {"l2": "-1"})


# --- logistic regression --------------------------------------------------------------------


def test_binary_logistic_equals_statsmodels_logit(cancer):
    features, target = cancer
    model = logistic.fit(list(target), columns_of(features))
    reference = sm.Logit(target, sm.add_constant(features)).fit(disp=0)
    assert model["classes"] == ["0", "1"] and model["converged"] and model.get("error") is None
    np.testing.assert_allclose(np.r_[model["intercept"], model["coef"]], reference.params, **TIGHT)
    np.testing.assert_allclose(np.r_[model["intercept_se"], model["se"]], reference.bse, **TIGHT)
    np.testing.assert_allclose(np.r_[model["intercept_z"], model["z"]], reference.tvalues, **TIGHT)
    np.testing.assert_allclose(model["p"], reference.pvalues[1:], rtol=1e-6, atol=1e-14)
    intervals = reference.conf_int()
    np.testing.assert_allclose(model["ci_lower"], intervals[0][1:], **TIGHT)
    np.testing.assert_allclose(model["odds_ratio"], np.exp(reference.params[1:]), **TIGHT)
    assert model["log_likelihood"] == pytest.approx(reference.llf, rel=1e-9)
    assert model["log_likelihood_null"] == pytest.approx(reference.llnull, rel=1e-6)
    assert model["pseudo_r2"] == pytest.approx(reference.prsquared, rel=1e-6)
    assert model["aic"] == pytest.approx(reference.aic, rel=1e-9)
    columns = columns_of(features)
    np.testing.assert_allclose(
        logistic.predict(model, columns), reference.predict(sm.add_constant(features)), **TIGHT
    )
    np.testing.assert_allclose(
        logistic.predict(model, columns, "log_odds"),
        sm.add_constant(features).to_numpy() @ reference.params.to_numpy(),
        **TIGHT,
    )
    np.testing.assert_array_equal(
        logistic.predict(model, columns, "label"),
        reference.predict(sm.add_constant(features)) >= 0.5,
    )
    summary = list(logistic.summary(model))
    assert summary[1][:3] == ("1", "mean_radius", pytest.approx(reference.params.iloc[1]))


def test_multinomial_logistic_equals_statsmodels_mnlogit():
    rng = np.random.default_rng(1)
    frame = with_site(pd.DataFrame({"a": rng.normal(size=600), "b": rng.normal(size=600)}), seed=2)
    eta = np.column_stack(
        [np.zeros(600), 0.5 + frame.a - frame.b + (frame.site == "south"), -0.3 + 0.8 * frame.b]
    )
    target = np.array(
        [rng.choice(3, p=p) for p in np.exp(eta) / np.exp(eta).sum(axis=1, keepdims=True)]
    )
    labels = np.array(["mild", "moderate", "severe"])[target]
    model = logistic.fit(list(labels), columns_of(frame))
    reference = sm.MNLogit(target, sm.add_constant(treatment_coded(frame))).fit(
        disp=0, method="newton", tol=1e-12
    )
    assert model["classes"] == ["mild", "moderate", "severe"] and model.get("coef") is None
    estimates = np.column_stack(
        [np.r_[i, c] for i, c in zip(model["class_intercept"], model["class_coef"])]
    )
    errors = np.column_stack(
        [np.r_[i, c] for i, c in zip(model["class_intercept_se"], model["class_se"])]
    )
    np.testing.assert_allclose(estimates, reference.params, **TIGHT)
    np.testing.assert_allclose(errors, reference.bse, **TIGHT)
    assert model["log_likelihood"] == pytest.approx(reference.llf, rel=1e-9)
    assert model["lr_test_p"] == pytest.approx(reference.llr_pvalue, rel=1e-6)
    columns = columns_of(frame)
    probabilities = np.asarray(reference.predict(sm.add_constant(treatment_coded(frame))))
    wanted = np.full(600, "severe", dtype=object)
    np.testing.assert_allclose(
        logistic.predict(model, columns, "probability", wanted), probabilities[:, 2], **TIGHT
    )
    np.testing.assert_array_equal(
        logistic.predict(model, columns, "label"), probabilities.argmax(axis=1)
    )
    rows = list(logistic.summary(model))
    assert len(rows) == 2 * 5 and rows[5][:2] == ("severe", "intercept")
    with pytest.raises(ArgumentError, match="class 'fatal' is not one of the model's classes"):
        logistic.predict(model, columns, "probability", np.full(600, "fatal", dtype=object))


def test_penalised_logistic_equals_scikit_learn_and_statsmodels_l1(cancer):
    features, target = cancer
    ridge = logistic.fit(list(target), columns_of(features), {"l2": "10"})
    reference = LogisticRegression(C=0.1, tol=1e-12, max_iter=10_000).fit(features, target)
    np.testing.assert_allclose(
        ridge["coef"], reference.coef_[0], rtol=1e-5, atol=1e-6
    )  # lbfgs's own accuracy
    assert ridge["intercept"] == pytest.approx(reference.intercept_[0], abs=1e-5)
    assert ridge.get("se") is None
    lasso = logistic.fit(list(target), columns_of(features), {"l1": "5"})
    l1_reference = sm.Logit(target, sm.add_constant(features)).fit_regularized(
        alpha=np.r_[0, np.full(5, 5.0)], disp=0, acc=1e-12, trim_mode="off"
    )
    np.testing.assert_allclose(
        np.r_[lasso["intercept"], lasso["coef"]], l1_reference.params, rtol=1e-4, atol=1e-5
    )
    assert np.sum(np.asarray(lasso["coef"]) == 0) >= 2  # the lasso zeroes coefficients


def test_logistic_says_why_it_cannot_fit():
    x = np.arange(20.0)
    separated = logistic.fit(list(x > 9), {"x": x})
    assert "separate" in separated["error"] and separated.get("coef") is None
    assert (
        logistic.fit(list(x > 9), {"x": x}, {"l2": "1"}).get("error") is None
    )  # a penalty makes it finite
    assert logistic.fit([1] * 20, {"x": x})["error"] == "the label needs at least 2 classes, got 1"
    with pytest.raises(ValueError, match="unknown option 'l3'"):
        logistic.fit([0, 1], {"x": x[:2]}, {"l3": "1"})


# --- naive Bayes ----------------------------------------------------------------------------


def test_naive_bayes_equals_gaussian_and_categorical_nb(cancer):
    features, target = cancer
    frame = with_site(features, seed=5).assign(
        big=np.where(features.mean_radius > 14, "big", "small").astype(object)
    )
    numeric = features.to_numpy()
    codes = np.column_stack(
        [np.unique(frame[name], return_inverse=True)[1] for name in ("site", "big")]
    )
    gaussian, categorical = GaussianNB().fit(numeric, target), CategoricalNB().fit(codes, target)

    model = bayes.fit(list(target), columns_of(features))
    np.testing.assert_allclose(
        bayes.log_probabilities(model, columns_of(features)),
        gaussian.predict_log_proba(numeric),
        atol=1e-9,
    )
    strings = columns_of(frame[["site", "big"]])
    model = bayes.fit(list(target), strings)
    np.testing.assert_allclose(
        bayes.log_probabilities(model, strings), categorical.predict_log_proba(codes), atol=1e-9
    )

    mixed = bayes.fit(list(target), columns_of(frame))
    joint = (
        gaussian.predict_joint_log_proba(numeric)
        + categorical.predict_joint_log_proba(codes)
        - np.log(np.bincount(target) / len(target))
    )
    expected = joint - logsumexp(joint, axis=1, keepdims=True)
    np.testing.assert_allclose(
        bayes.log_probabilities(mixed, columns_of(frame)), expected, atol=1e-9
    )
    np.testing.assert_array_equal(
        bayes.predict(mixed, columns_of(frame), "label"), expected.argmax(axis=1)
    )


def test_naive_bayes_leaves_out_null_features_and_unseen_categories():
    model = bayes.fit(
        ["a", "a", "b", "b"],
        {"x": np.array([1.0, 1.2, 3.0, 3.3]), "c": np.array(["u", "v", "v", "v"], dtype=object)},
    )
    only_x = bayes.fit(["a", "a", "b", "b"], {"x": np.array([1.0, 1.2, 3.0, 3.3])})
    rows = {"x": np.array([2.0, 2.0]), "c": np.array([None, "never seen"], dtype=object)}
    expected = bayes.log_probabilities(only_x, {"x": np.array([2.0, 2.0])})
    np.testing.assert_allclose(bayes.log_probabilities(model, rows), expected)
    summary = list(bayes.summary(model))
    assert ("a", 0.5, "c", "u", None, None, pytest.approx(2 / 4)) in summary


def test_naive_bayes_smoothing_options_are_gaussian_and_categorical_nbs(cancer):
    features, target = cancer
    numeric, matrix = columns_of(features), features.to_numpy()
    model = bayes.fit(list(target), numeric, {"var_smoothing": "0.1"})
    gaussian = GaussianNB(var_smoothing=0.1).fit(matrix, target)
    assert model["var_smoothing"] == 0.1
    np.testing.assert_allclose(np.array(model["variance"]), gaussian.var_, rtol=1e-12)
    np.testing.assert_allclose(
        bayes.log_probabilities(model, numeric), gaussian.predict_log_proba(matrix), atol=1e-9
    )
    unsmoothed = bayes.log_probabilities(bayes.fit(list(target), numeric), numeric)
    assert np.abs(unsmoothed - gaussian.predict_log_proba(matrix)).max() > 1  # it matters

    frame = with_site(features, seed=5).assign(
        big=np.where(features.mean_radius > 14, "big", "small").astype(object)
    )
    strings = columns_of(frame[["site", "big"]])
    codes = np.column_stack(
        [np.unique(frame[name], return_inverse=True)[1] for name in ("site", "big")]
    )
    model = bayes.fit(list(target), strings, {"smoothing": "10"})
    categorical = CategoricalNB(alpha=10.0).fit(codes, target)
    assert model["smoothing"] == 10.0
    np.testing.assert_allclose(
        bayes.log_probabilities(model, strings), categorical.predict_log_proba(codes), atol=1e-9
    )
    probabilities = {(row[0], row[2], row[3]): row[6] for row in bayes.summary(model)}
    for k, name in enumerate(model["classes"]):
        for index, field in enumerate(("site", "big")):
            expected = np.exp(categorical.feature_log_prob_[index][k])
            found = [probabilities[name, field, c] for c in sorted(set(frame[field]))]
            np.testing.assert_allclose(found, expected, rtol=1e-12)
    laplace = bayes.log_probabilities(bayes.fit(list(target), strings), strings)
    assert np.abs(laplace - categorical.predict_log_proba(codes)).max() > 0.01


# --- random forests -------------------------------------------------------------------------


def test_random_forest_classifier_predicts_as_scikit_learn(cancer):
    features, target = cancer
    frame = with_site(features, seed=4)
    model = forest.fit(
        list(target), columns_of(frame), {"trees": "40", "seed": "3", "max_depth": "6"}
    )
    encoded = Encoding.from_model(model, reference=False).matrix(columns_of(frame))
    reference = RandomForestClassifier(n_estimators=40, max_depth=6, random_state=3, n_jobs=1).fit(
        encoded, target
    )
    assert model["features"][-3:] == ["site=east", "site=north", "site=south"]  # full coding
    np.testing.assert_allclose(
        forest.predict(model, columns_of(frame)), reference.predict_proba(encoded)[:, 1], atol=1e-12
    )
    np.testing.assert_array_equal(
        forest.predict(model, columns_of(frame), "label"), reference.predict(encoded)
    )
    np.testing.assert_allclose(
        model["feature_importances"], reference.feature_importances_, atol=1e-12
    )
    ranked = list(forest.summary(model))
    assert [row[2] for row in ranked] == list(range(1, len(model["features"]) + 1))
    assert ranked[0][1] == max(reference.feature_importances_)
    unseen = columns_of(frame.assign(site=np.full(len(frame), "west", dtype=object)))
    assert np.isfinite(forest.predict(model, unseen)).all()  # "none of the known sites"


def test_random_forest_regressor_predicts_as_scikit_learn(diabetes):
    features, target = diabetes
    model = forest.fit(
        list(target),
        columns_of(features),
        {"trees": "25", "min_samples_leaf": "3"},
        default_task="regression",
    )
    reference = RandomForestRegressor(
        n_estimators=25,
        max_depth=10,
        min_samples_leaf=3,
        max_features=None,
        random_state=0,
        n_jobs=1,
    ).fit(features, target)
    np.testing.assert_allclose(
        forest.predict(model, columns_of(features)), reference.predict(features), rtol=1e-12
    )
    with pytest.raises(ArgumentError, match="type must be 'value'"):
        forest.predict(model, columns_of(features), "label")
    with pytest.raises(ValueError, match="option max_features must be sqrt, log2, all or a share"):
        forest.fit(list(target), columns_of(features), {"max_features": "2"})


def test_random_forest_task_option_overrides_the_labels_type(diabetes, cancer):
    features, target = diabetes
    whole = target.astype(int)  # integer labels: classification unless asked
    model = forest.fit(
        list(whole), columns_of(features), {"trees": "5", "task": "regression"}
    )  # default_task as the SQL function gives it for INT labels
    assert (model["task"], model["classes"], model["max_features"]) == ("regression", None, "all")
    reference = RandomForestRegressor(
        n_estimators=5, max_depth=10, max_features=None, random_state=0, n_jobs=1
    ).fit(features, whole.astype(float))
    np.testing.assert_allclose(
        forest.predict(model, columns_of(features)), reference.predict(features), rtol=1e-12
    )

    features, target = cancer
    doubles = target.astype(float)  # DOUBLE labels: regression unless asked
    model = forest.fit(
        list(doubles),
        columns_of(features),
        {"trees": "7", "task": "classification"},
        default_task="regression",
    )
    assert (model["task"], model["classes"], model["max_features"]) == (
        "classification",
        ["0", "1"],
        "sqrt",
    )
    reference = RandomForestClassifier(
        n_estimators=7, max_depth=10, max_features="sqrt", random_state=0, n_jobs=1
    ).fit(features, doubles)
    np.testing.assert_allclose(
        forest.predict(model, columns_of(features)),
        reference.predict_proba(features)[:, 1],
        atol=1e-12,
    )
    np.testing.assert_array_equal(
        forest.predict(model, columns_of(features), "label"), reference.predict(features)
    )


def test_random_forest_without_bootstrap_grows_every_tree_on_all_rows(diabetes):
    features, target = diabetes
    settings = {"trees": "5", "max_depth": "6", "max_features": "all", "seed": "4"}
    model = forest.fit(
        list(target), columns_of(features), {**settings, "bootstrap": "false"}, "regression"
    )
    reference = RandomForestRegressor(
        n_estimators=5,
        max_depth=6,
        max_features=None,
        bootstrap=False,
        random_state=4,
        n_jobs=1,
    ).fit(features, target)
    predicted = forest.predict(model, columns_of(features))
    np.testing.assert_allclose(predicted, reference.predict(features), rtol=1e-12)
    # every tree sees the same rows and every feature, so on those rows each predicts as one
    # CART tree grown on all of them
    tree = DecisionTreeRegressor(max_depth=6, random_state=0).fit(features, target)
    np.testing.assert_allclose(predicted, tree.predict(features), rtol=1e-12)
    bootstrapped = forest.fit(list(target), columns_of(features), settings, "regression")
    assert np.abs(forest.predict(bootstrapped, columns_of(features)) - predicted).max() > 1
    assert (model["bootstrap"], bootstrapped["bootstrap"]) == (False, True)  # the model says so


# --- ALS ------------------------------------------------------------------------------------


def test_explicit_als_equals_direct_alternating_least_squares():
    rng = np.random.default_rng(0)
    users, items, rank, reg = 12, 9, 3, 0.05
    truth = rng.normal(size=(users, rank)) @ rng.normal(size=(rank, items))
    rated = rng.random((users, items)) < 0.6
    user_index, item_index = np.nonzero(rated)
    model = als.fit(
        [f"u{u:02d}" for u in user_index],
        [f"i{i}" for i in item_index],
        truth[rated],
        {"rank": "3", "reg": str(reg), "iterations": "15"},
    )
    x, y = als.initial_factors(users, items, rank, 0)
    for _ in range(15):  # the textbook loops, one ridge regression per user, then per item
        for u in range(users):
            v = y[rated[u]]
            x[u] = np.linalg.solve(
                v.T @ v + reg * rated[u].sum() * np.eye(rank), v.T @ truth[u, rated[u]]
            )
        for i in range(items):
            w = x[rated[:, i]]
            y[i] = np.linalg.solve(
                w.T @ w + reg * rated[:, i].sum() * np.eye(rank), w.T @ truth[rated[:, i], i]
            )
    np.testing.assert_allclose(model["user_factors"], x, atol=1e-10)
    np.testing.assert_allclose(model["item_factors"], y, atol=1e-10)
    assert model["rmse"] == pytest.approx(np.sqrt(np.mean((truth[rated] - (x @ y.T)[rated]) ** 2)))
    predicted = als.predict(model, ["u00", "u00", "nobody"], ["i1", "i2", "i1"])
    np.testing.assert_allclose(predicted[:2], (x @ y.T)[0, 1:3])
    assert np.isnan(predicted[2])
    best = als.recommend(model, "u03", 3)
    assert [item for item, _, _ in best] == [f"i{i}" for i in np.argsort(-(x @ y.T)[3])[:3]]
    assert als.recommend(model, "nobody", 3) == []
    rows = list(als.summary(model))
    assert [(kind, name) for kind, name, _, _ in rows] == [
        ("user", f"u{u:02d}") for u in range(users)
    ] + [("item", f"i{i}") for i in range(items)]
    np.testing.assert_allclose(
        [norm for _, _, norm, _ in rows], np.linalg.norm(np.vstack([x, y]), axis=1)
    )
    np.testing.assert_allclose(rows[0][3], x[0])
    assert list(als.summary(als.fit([None], ["i"], [1.0]))) == []  # no complete rows: no factors


def test_implicit_als_solves_the_confidence_weighted_normal_equations():
    rng = np.random.default_rng(2)
    users, items = rng.integers(0, 15, 120), rng.integers(0, 10, 120)
    counts = rng.integers(1, 6, 120).astype(float)
    model = als.fit(
        users.tolist(),
        items.tolist(),
        counts,
        {"implicit": "true", "rank": "4", "alpha": "2", "reg": "0.1"},
    )
    x, y = np.asarray(model["user_factors"]), np.asarray(model["item_factors"])
    strength = np.zeros((len(model["users"]), len(model["items"])))
    for u, i, c in zip(users, items, counts):
        strength[model["users"].index(str(u)), model["items"].index(str(i))] += c
    # the last half-step solved every item's problem exactly given the user factors
    for i in range(len(model["items"])):
        confidence = 1 + 2 * strength[:, i]
        preference = (strength[:, i] > 0).astype(float)
        left = (x.T * confidence) @ x + 0.1 * np.count_nonzero(strength[:, i]) * np.eye(4)
        np.testing.assert_allclose(left @ y[i], (x.T * confidence) @ preference, atol=1e-9)
    assert model.get("rmse") is None


# --- metrics --------------------------------------------------------------------------------


def test_binary_metrics_equal_scikit_learn():
    rng = np.random.default_rng(0)
    labels = (rng.random(500) < 0.3).astype(float)
    scores = np.round(np.clip(0.3 * labels + 0.7 * rng.random(500), 0, 1), 2)  # many ties
    result = metrics.binary(labels, scores, {"threshold": "0.45"})
    assert result["auc"] == pytest.approx(sk_metrics.roc_auc_score(labels, scores), abs=1e-12)
    assert result["average_precision"] == pytest.approx(
        sk_metrics.average_precision_score(labels, scores), abs=1e-12
    )
    assert result["logloss"] == pytest.approx(sk_metrics.log_loss(labels, scores), abs=1e-12)
    fpr, tpr, thresholds = sk_metrics.roc_curve(labels, scores)
    np.testing.assert_allclose(result["roc_fpr"], fpr)
    np.testing.assert_allclose(result["roc_tpr"], tpr)
    np.testing.assert_array_equal(result["roc_thresholds"], thresholds)
    precision, recall, pr_thresholds = sk_metrics.precision_recall_curve(labels, scores)
    np.testing.assert_allclose(result["pr_precision"], precision)
    np.testing.assert_allclose(result["pr_recall"], recall)
    np.testing.assert_allclose(result["pr_thresholds"], pr_thresholds)
    predicted = scores >= 0.45
    assert result["accuracy"] == sk_metrics.accuracy_score(labels, predicted)
    assert result["precision"] == pytest.approx(sk_metrics.precision_score(labels, predicted))
    assert result["recall"] == pytest.approx(sk_metrics.recall_score(labels, predicted))
    assert result["f1"] == pytest.approx(sk_metrics.f1_score(labels, predicted))
    assert metrics.binary(labels, scores * 3)["logloss"] is None  # not probabilities
    assert metrics.binary(np.ones(3), np.ones(3))["error"] == "both classes are needed"


def test_multiclass_regression_and_confusion_equal_scikit_learn():
    rng = np.random.default_rng(1)
    labels = rng.choice(["x", "y", "z"], 300)
    predicted = np.where(rng.random(300) < 0.7, labels, rng.choice(["x", "y", "z", "w"], 300))
    result = metrics.multiclass(list(labels), list(predicted))
    assert result["classes"] == ["w", "x", "y", "z"]
    assert result["accuracy"] == sk_metrics.accuracy_score(labels, predicted)
    assert result["kappa"] == pytest.approx(sk_metrics.cohen_kappa_score(labels, predicted))
    for average in ("macro", "weighted"):
        assert result[f"{average}_f1"] == pytest.approx(
            sk_metrics.f1_score(labels, predicted, average=average, zero_division=0)
        )
    assert result["macro_precision"] == pytest.approx(
        sk_metrics.precision_score(labels, predicted, average="macro", zero_division=0)
    )
    classes, matrix = metrics.confusion(list(labels), list(predicted))
    np.testing.assert_array_equal(
        matrix, sk_metrics.confusion_matrix(labels, predicted, labels=classes)
    )
    assert (
        metrics.multiclass([1, 2.0, True], ["1", 2, "true"])["accuracy"] == 1.0
    )  # compared as text

    truth = rng.normal(size=200)
    guess = truth + 0.3 * rng.normal(size=200)
    result = metrics.regression(truth, guess)
    assert result["mse"] == pytest.approx(sk_metrics.mean_squared_error(truth, guess))
    assert result["rmse"] == pytest.approx(np.sqrt(sk_metrics.mean_squared_error(truth, guess)))
    assert result["mae"] == pytest.approx(sk_metrics.mean_absolute_error(truth, guess))
    assert result["r2"] == pytest.approx(sk_metrics.r2_score(truth, guess))
    assert result["explained_variance"] == pytest.approx(
        sk_metrics.explained_variance_score(truth, guess)
    )


def test_split_fraction_is_uniform_and_reproducible():
    keys = [f"DEMO-{i:05d}" for i in range(20_000)]
    fractions = metrics.split_fraction(keys, 42)
    assert ((fractions >= 0) & (fractions < 1)).all()
    assert abs(np.mean(fractions < 0.8) - 0.8) < 0.01
    np.testing.assert_array_equal(fractions, metrics.split_fraction(keys, 42))
    assert not np.array_equal(fractions, metrics.split_fraction(keys, 43))
    assert metrics.split_fraction([7], 1)[0] == metrics.split_fraction(["7"], 1)[0]
    assert np.isnan(metrics.split_fraction([None], 1)[0])

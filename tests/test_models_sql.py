"""Predictive model functions from SQL in the suite's session: per-group fits equal the pure
fits and their references, models round-trip through Parquet tables and predict through
joins, metrics equal scikit-learn's, and bad arguments are errors naming function and
argument."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from sklearn import metrics as sk_metrics

from dicomsql.demo import DEVICE_TRUE_COEFFICIENTS, simulate_patients
from dicomsql.stats import als, bayes, forest, metrics

FEATURES = "struct(age, smoker, tumor_mm, sex)"
P_FEATURES = "struct(p.age, p.smoker, p.tumor_mm, p.sex)"


@pytest.fixture(scope="module")
def patients(spark):
    frame = simulate_patients(1200, np.random.default_rng(5))
    frame["stage"] = np.select([frame.tumor_mm < 12, frame.tumor_mm < 20], ["I", "II"], "III")
    spark.createDataFrame(frame).createOrReplaceTempView("patients")
    return frame


def design(rows: pd.DataFrame) -> pd.DataFrame:
    """The statsmodels design of FEATURES: the first sex (F) is the reference."""
    return sm.add_constant(
        rows[["age", "smoker", "tumor_mm"]].assign(**{"sex=M": (rows.sex == "M").astype(float)})
    )


def test_linreg_per_group_streamed_equals_statsmodels_and_round_trips(spark, patients):
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "50")  # many batches per group
    try:
        spark.sql("DROP TABLE IF EXISTS linreg_models")
        spark.sql(
            "CREATE TABLE linreg_models AS SELECT site, linreg_fit(months, struct(age, smoker, tumor_mm, sex)) AS model "
            "FROM patients GROUP BY site"
        )
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    models = {row.site: row.model for row in spark.table("linreg_models").collect()}
    for site, rows in patients.groupby("site"):
        reference = sm.OLS(rows.months.to_numpy(), design(rows)).fit()
        model = models[site]
        assert model.features == ["age", "smoker", "tumor_mm", "sex=M"] and model.error is None
        np.testing.assert_allclose([model.intercept, *model.coef], reference.params, rtol=1e-6)
        np.testing.assert_allclose([model.intercept_se, *model.se], reference.bse, rtol=1e-6)
        assert model.r2 == pytest.approx(reference.rsquared, rel=1e-6) and model.n == len(rows)
    predicted = (
        spark.sql(f"""
        SELECT p.PatientID, linreg_predict(m.model, {P_FEATURES}) AS value
        FROM patients p JOIN linreg_models m USING (site)""")
        .toPandas()
        .set_index("PatientID")
    )
    for _site, rows in patients.groupby("site"):
        expected = sm.OLS(rows.months.to_numpy(), design(rows)).fit().fittedvalues
        np.testing.assert_allclose(predicted.loc[rows.PatientID, "value"], expected, rtol=1e-6)
    summary = spark.sql(
        "SELECT s.* FROM linreg_models m, LATERAL linreg_summary(m.model) s WHERE m.site = 'North'"
    ).collect()
    assert [row.feature for row in summary] == ["intercept", "age", "smoker", "tumor_mm", "sex=M"]
    metrics_row = (
        spark.sql(f"""
        SELECT regression_metrics(p.months, linreg_predict(m.model, {P_FEATURES})) AS r
        FROM patients p JOIN linreg_models m USING (site)""")
        .first()
        .r
    )
    truth = patients.set_index("PatientID").loc[predicted.index, "months"]
    assert metrics_row.rmse == pytest.approx(
        np.sqrt(sk_metrics.mean_squared_error(truth, predicted.value)), rel=1e-9
    )
    assert metrics_row.r2 == pytest.approx(sk_metrics.r2_score(truth, predicted.value), rel=1e-9)


def test_logreg_fit_predict_evaluate_on_a_reproducible_split(spark, patients):
    spark.sql("DROP TABLE IF EXISTS logreg_model")
    spark.sql(
        f"CREATE TABLE logreg_model AS SELECT logreg_fit(died, {FEATURES}) AS model FROM patients "
        "WHERE split_fraction(PatientID, 11) < 0.7"
    )
    train = patients[metrics.split_fraction(patients.PatientID.tolist(), 11) < 0.7]
    test = patients.drop(train.index)
    reference = sm.Logit(train.died.to_numpy(), design(train)).fit(disp=0)
    model = spark.table("logreg_model").first().model
    np.testing.assert_allclose([model.intercept, *model.coef], reference.params, rtol=1e-6)
    np.testing.assert_allclose([model.intercept_se, *model.se], reference.bse, rtol=1e-6)
    np.testing.assert_allclose(model.p, reference.pvalues[1:], rtol=1e-6)
    result = spark.sql(f"""
        SELECT binary_metrics(p.died, logreg_predict(m.model, {P_FEATURES})) AS b,
               multiclass_metrics(p.died, logreg_predict(m.model, {P_FEATURES}, 'label')) AS c
        FROM patients p CROSS JOIN logreg_model m WHERE split_fraction(p.PatientID, 11) >= 0.7""").first()
    scores = reference.predict(design(test))
    assert result.b.n == len(test)
    assert result.b.auc == pytest.approx(sk_metrics.roc_auc_score(test.died, scores), abs=1e-9)
    assert result.b.logloss == pytest.approx(sk_metrics.log_loss(test.died, scores), abs=1e-9)
    assert result.c.accuracy == pytest.approx(sk_metrics.accuracy_score(test.died, scores >= 0.5))
    rows = spark.sql("SELECT s.* FROM logreg_model m, LATERAL logreg_summary(m.model) s").toPandas()
    assert rows.feature.tolist() == ["intercept", "age", "smoker", "tumor_mm", "sex=M"]
    np.testing.assert_allclose(rows.odds_ratio, np.exp(reference.params), rtol=1e-6)


def test_multinomial_logreg_and_confusion_matrix(spark, patients):
    model = (
        spark.sql("SELECT logreg_fit(stage, struct(age, smoker, months)) AS model FROM patients")
        .first()
        .model
    )
    assert model.classes == ["I", "II", "III"] and len(model.class_coef) == 2 and model.coef is None
    predicted = spark.sql("""
        SELECT p.stage, m.model.classes[int(logreg_predict(m.model, struct(p.age, p.smoker, p.months), 'label'))] AS guess,
               logreg_predict(m.model, struct(p.age, p.smoker, p.months), 'probability', 'III') AS p_three
        FROM patients p CROSS JOIN (SELECT logreg_fit(stage, struct(age, smoker, months)) AS model FROM patients) m""").toPandas()
    assert predicted.p_three.between(0, 1).all()
    counts = spark.sql("""
        SELECT * FROM confusion_matrix(TABLE(
            SELECT p.stage, m.model.classes[int(logreg_predict(m.model, struct(p.age, p.smoker, p.months), 'label'))]
            FROM patients p CROSS JOIN (SELECT logreg_fit(stage, struct(age, smoker, months)) AS model FROM patients) m))
        """).toPandas()
    assert len(counts) == 9  # every pair of the three classes, zeros included
    expected = sk_metrics.confusion_matrix(
        predicted.stage, predicted.guess, labels=["I", "II", "III"]
    )
    matrix = counts.pivot(index="label", columns="predicted", values="count").loc[
        ["I", "II", "III"], ["I", "II", "III"]
    ]
    np.testing.assert_array_equal(matrix.to_numpy(), expected)


def test_protocol_classified_from_device_metadata_with_naive_bayes_and_a_forest(spark):
    ct = "FROM demo_images WHERE Modality = 'CT' AND _corrupt_record IS NULL"
    device = (
        "struct(KVP, XRayTubeCurrent, Exposure, SliceThickness, ConvolutionKernel[0] AS kernel)"
    )
    frame = spark.sql(
        f"SELECT ProtocolName, KVP, XRayTubeCurrent, Exposure, SliceThickness, ConvolutionKernel[0] AS kernel {ct}"
    ).toPandas()
    columns = {
        name: (
            frame[name].to_numpy(dtype=object)
            if name == "kernel"
            else frame[name].to_numpy(dtype=float)
        )
        for name in ("KVP", "XRayTubeCurrent", "Exposure", "SliceThickness", "kernel")
    }

    spark.sql("DROP TABLE IF EXISTS protocol_models")
    spark.sql(
        f"CREATE TABLE protocol_models AS SELECT naive_bayes_fit(ProtocolName, {device}) AS bayes, "
        f"random_forest_fit(ProtocolName, {device}, map('trees', '15', 'seed', '2')) AS forest {ct}"
    )
    stored = spark.table("protocol_models").first()
    assert stored.bayes.classes == sorted(frame.ProtocolName.unique())
    expected = bayes.fit(frame.ProtocolName.tolist(), columns)
    np.testing.assert_allclose(stored.bayes.class_count, expected["class_count"])
    device_i = device.replace("struct(", "struct(i.").replace(", ", ", i.")
    guesses = spark.sql(f"""
        SELECT i.ProtocolName AS truth,
               m.bayes.classes[int(naive_bayes_predict(m.bayes, {device_i}, 'label'))] AS by_bayes,
               m.forest.classes[int(random_forest_predict(m.forest, {device_i}, 'label'))] AS by_forest,
               random_forest_predict(m.forest, {device_i}, 'probability', i.ProtocolName) AS forest_p
        FROM demo_images i CROSS JOIN protocol_models m WHERE i.Modality = 'CT' AND i._corrupt_record IS NULL""").toPandas()
    local = forest.fit(frame.ProtocolName.tolist(), columns, {"trees": "15", "seed": "2"})
    np.testing.assert_allclose(
        np.sort(guesses.forest_p),
        np.sort(
            forest.predict(local, columns, "probability", frame.ProtocolName.to_numpy(dtype=object))
        ),
    )
    assert (guesses.by_bayes == guesses.truth).mean() == 1.0 and (
        guesses.by_forest == guesses.truth
    ).mean() == 1.0
    summaries = spark.sql(
        "SELECT s.* FROM protocol_models m, LATERAL random_forest_summary(m.forest) s"
    ).collect()
    assert sum(row.feature_importance for row in summaries) == pytest.approx(1.0)
    assert (
        spark.sql(
            "SELECT count(*) FROM protocol_models m, LATERAL naive_bayes_summary(m.bayes) s"
        ).first()[0]
        > 0
    )


def test_device_time_to_failure_recovers_the_demo_truth(spark):
    model = (
        spark.sql(
            "SELECT coxph_fit(months, failed, struct(age_years, daily_scans)) AS m FROM demo_devices"
        )
        .first()
        .m
    )
    for name, lower, upper in zip(model.features, model.ci_lower, model.ci_upper):
        assert lower < DEVICE_TRUE_COEFFICIENTS[name] < upper


def test_capture_recommendations_with_als(spark):
    reads = spark.table("demo_reads").toPandas()
    model = (
        spark.sql(
            "SELECT als_fit(reader, capture, quality, map('rank', '2', 'iterations', '8')) AS m FROM demo_reads"
        )
        .first()
        .m
    )
    local = als.fit(
        reads.reader.tolist(),
        reads.capture.tolist(),
        reads.quality.to_numpy(float),
        {"rank": "2", "iterations": "8"},
    )
    assert model.users == local["users"] and model.items == local["items"]
    np.testing.assert_allclose(model.item_factors, local["item_factors"], rtol=1e-9)
    reader = reads.reader.iloc[0]
    recommended = spark.sql(f"""
        SELECT r.* FROM (SELECT als_fit(reader, capture, quality, map('rank', '2', 'iterations', '8')) AS model FROM demo_reads) m,
        LATERAL als_recommend(m.model, '{reader}', 2) r""").collect()
    assert [(row.item, row.rank) for row in recommended] == [
        (item, rank) for item, _, rank in als.recommend(local, reader, 2)
    ]
    named = spark.sql(f"""
        SELECT r.* FROM (SELECT als_fit(reader, capture, quality, map('rank', '2', 'iterations', '8')) AS model FROM demo_reads) m,
        LATERAL als_recommend(k => 2, model => m.model, user => '{reader}') r""").collect()
    assert named == recommended  # a table function's arguments may be named
    predicted = spark.sql("""
        SELECT als_predict(m.model, r.reader, r.capture) AS known, als_predict(m.model, 'nobody', r.capture) AS unknown
        FROM demo_reads r CROSS JOIN (SELECT als_fit(reader, capture, quality, map('rank', '2', 'iterations', '8')) AS model
                                      FROM demo_reads) m""").toPandas()
    np.testing.assert_allclose(
        predicted.known,
        als.predict(local, reads.reader.tolist(), reads.capture.tolist()),
        rtol=1e-9,
    )
    assert predicted.unknown.isna().all()
    summary = spark.sql("""
        SELECT s.* FROM (SELECT als_fit(reader, capture, quality, map('rank', '2', 'iterations', '8')) AS model FROM demo_reads) m,
        LATERAL als_summary(m.model) s""").collect()
    assert [(row.kind, row.id) for row in summary] == [
        ("user", user) for user in local["users"]
    ] + [("item", item) for item in local["items"]]
    np.testing.assert_allclose(
        [row.norm for row in summary], [norm for _, _, norm, _ in als.summary(local)], rtol=1e-9
    )
    np.testing.assert_allclose(summary[0].factors, local["user_factors"][0], rtol=1e-9)


def test_split_fraction_is_the_pure_hash(spark, patients):
    rows = spark.sql("SELECT PatientID, split_fraction(PatientID, 3) AS f FROM patients").toPandas()
    np.testing.assert_array_equal(rows.f, metrics.split_fraction(rows.PatientID.tolist(), 3))


def test_bad_arguments_are_errors_naming_function_and_argument(spark, patients):
    cases = {
        f"SELECT logreg_fit(died, {FEATURES}, map('l2', '-1')) FROM patients": "logreg_fit: argument options: option l2 must be a number >= 0.0, got '-1'",
        "SELECT linreg_fit(months, struct(age, array(1, 2) AS bad)) FROM patients": "linreg_fit: argument features.bad must be a number, boolean or string, got a field of type list",
        "SELECT linreg_predict(m.model, struct(p.age)) FROM patients p CROSS JOIN "
        "(SELECT linreg_fit(months, struct(age, smoker)) AS model FROM patients) m": "linreg_predict: argument features: missing field\\(s\\) smoker",
        f"SELECT logreg_predict(m.model, {P_FEATURES}, 'odds') FROM patients p CROSS JOIN "
        f"(SELECT logreg_fit(died, {FEATURES}) AS model FROM patients) m": "logreg_predict: argument type: type must be one of probability, label, log_odds, got 'odds'",
        "SELECT binary_metrics(months, age) FROM patients": "binary_metrics: argument label must be 0/1 or boolean",
        "SELECT r.* FROM (SELECT als_fit(site, sex, age) AS model FROM patients) m, LATERAL als_recommend(m.model, 'North', 0) r": "als_recommend: argument k must be between 1 and 10000, got 0",
        f"SELECT random_forest_fit(died, {FEATURES}, map('trees', 'many')) FROM patients": "random_forest_fit: argument options: option trees must be an integer between 1 and 2000, got 'many'",
    }
    for sql, message in cases.items():
        with pytest.raises(Exception, match=message):
            spark.sql(sql).collect()


def test_groups_that_cannot_be_fitted_give_a_reason_not_a_failed_query(spark, patients):
    logistic_rows = {
        row.site: row.m
        for row in spark.sql(
            "SELECT site, logreg_fit(IF(site = 'North', 1, died), struct(age)) AS m FROM patients GROUP BY site"
        ).collect()
    }
    assert (
        logistic_rows["North"].error == "the label needs at least 2 classes, got 1"
        and logistic_rows["North"].coef is None
    )
    assert logistic_rows["South"].error is None
    collinear = (
        spark.sql("SELECT linreg_fit(months, struct(age, age * 2 AS twice)) AS m FROM patients")
        .first()
        .m
    )
    assert collinear.error.startswith("collinear features age, twice") and collinear.coef is None

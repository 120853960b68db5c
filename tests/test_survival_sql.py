"""Survival functions from SQL in the suite's session: per-group fits equal lifelines,
models round-trip through Parquet tables, bad input is a reason or a named error."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter, WeibullAFTFitter

from dicomsql.demo import TRUE_COEFFICIENTS, simulate_patients

COVARIATES = list(TRUE_COEFFICIENTS)
STRUCT = "struct(age, smoker, tumor_mm, treated)"


@pytest.fixture(scope="module")
def cohort(spark):
    frame = simulate_patients(800, np.random.default_rng(21))
    frame.loc[frame.index[:6], "site"] = "Tiny"  # a group too small to say much
    frame.loc[frame.index[:6], "died"] = 0  # ... where nobody died: no model
    spark.createDataFrame(frame).createOrReplaceTempView("cohort")
    return frame


def _lifelines(rows: pd.DataFrame) -> CoxPHFitter:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CoxPHFitter().fit(rows[COVARIATES + ["months", "died"]], "months", "died")


@pytest.mark.cluster
def test_one_model_per_group_equal_to_lifelines(spark, cohort):
    models = {
        r.site: r.model
        for r in spark.sql(
            f"SELECT site, coxph_fit(months, died, {STRUCT}) AS model FROM cohort GROUP BY site"
        ).collect()
    }
    assert set(models) == set(cohort["site"])
    assert (
        models["Tiny"].error == "no events: every row is censored" and models["Tiny"].coef is None
    )
    for site, rows in cohort[cohort.site != "Tiny"].groupby("site"):
        model, reference = models[site], _lifelines(rows)
        assert model.features == COVARIATES and model.fields == COVARIATES and model.error is None
        np.testing.assert_allclose(model.coef, reference.params_[COVARIATES], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(
            model.se, reference.standard_errors_[COVARIATES], rtol=1e-6, atol=1e-6
        )
        assert model.concordance == pytest.approx(reference.concordance_index_, abs=1e-9)
        assert model.n == len(rows)


@pytest.mark.cluster
def test_models_round_trip_through_a_table_and_predict_like_lifelines(spark, cohort):
    spark.sql("DROP TABLE IF EXISTS cox_models")
    spark.sql(
        f"CREATE TABLE cox_models AS SELECT site, coxph_fit(months, died, {STRUCT}) AS model FROM cohort GROUP BY site"
    )
    predictions = (
        spark.sql(f"""
        SELECT c.PatientID, c.site,
               coxph_predict(m.model, struct(c.treated, c.tumor_mm, c.age, c.smoker)) AS hazard,
               coxph_predict(m.model, {STRUCT.replace("struct(", "struct(c.").replace(", ", ", c.")}, 'survival', 24.0) AS survival,
               coxph_predict(m.model, {STRUCT.replace("struct(", "struct(c.").replace(", ", ", c.")}, 'median') AS median
        FROM cohort c JOIN cox_models m USING (site)""")
        .toPandas()
        .set_index("PatientID")
    )
    for site, rows in cohort.groupby("site"):
        got = predictions.loc[rows["PatientID"]]
        if site == "Tiny":
            assert got["hazard"].isna().all()  # no model, no prediction
            continue
        reference = _lifelines(rows)
        np.testing.assert_allclose(got["hazard"], reference.predict_partial_hazard(rows), rtol=1e-6)
        np.testing.assert_allclose(
            got["survival"],
            reference.predict_survival_function(rows, times=[24.0]).to_numpy()[0],
            rtol=1e-6,
            atol=1e-9,
        )
        np.testing.assert_array_equal(got["median"], reference.predict_median(rows).to_numpy())
    summary = spark.sql(
        "SELECT m.site, s.* FROM cox_models m, LATERAL coxph_summary(m.model) s WHERE m.site = 'North'"
    ).toPandas()
    assert summary["feature"].tolist() == COVARIATES
    reference = _lifelines(cohort[cohort.site == "North"]).summary
    np.testing.assert_allclose(
        summary["hazard_ratio"], reference.loc[COVARIATES, "exp(coef)"], rtol=1e-6
    )
    spark.sql("DROP TABLE cox_models")


def test_decimal_literals_and_options(spark, cohort):
    doubles = (
        spark.sql(
            f"SELECT coxph_fit(months, died, {STRUCT}, map('ties', 'breslow')) AS m FROM cohort"
        )
        .first()
        .m
    )
    decimals = (
        spark.sql(
            "SELECT coxph_fit(months, died, struct(CAST(age AS DECIMAL(6,1)) AS age, smoker, "
            "CAST(tumor_mm AS DECIMAL(6,1)) AS tumor_mm, treated), map('ties', 'breslow')) AS m FROM cohort"
        )
        .first()
        .m
    )
    np.testing.assert_allclose(doubles.coef, decimals.coef, rtol=1e-12)
    assert doubles.ties == "breslow"
    [row] = spark.sql(
        "SELECT coxph_predict(m, struct(60.0 AS age, 1 AS smoker, 12.5 AS tumor_mm, 0 AS treated), 'log_partial_hazard') AS lp "
        f"FROM (SELECT coxph_fit(months, died, {STRUCT}) AS m FROM cohort)"
    ).collect()
    model = spark.sql(f"SELECT coxph_fit(months, died, {STRUCT}) AS m FROM cohort").first().m
    expected = np.dot(np.array([60.0, 1, 12.5, 0]) - np.array(model.means), model.coef)
    assert row.lp == pytest.approx(expected, rel=1e-12)


def test_bad_arguments_are_errors_naming_function_and_argument(spark, cohort):
    with pytest.raises(
        Exception,
        match="coxph_fit: argument options: option ties must be one of efron, breslow, got 'exact'",
    ):
        spark.sql(
            f"SELECT coxph_fit(months, died, {STRUCT}, map('ties', 'exact')) FROM cohort"
        ).collect()
    fitted = f"(SELECT coxph_fit(months, died, {STRUCT}) AS m FROM cohort)"
    with pytest.raises(
        Exception, match="coxph_predict: argument features: missing field\\(s\\) treated"
    ):
        spark.sql(
            f"SELECT coxph_predict(m, struct(age, smoker, tumor_mm)) FROM cohort CROSS JOIN {fitted}"
        ).collect()
    with pytest.raises(
        Exception, match="coxph_predict: argument type: type must be one of partial_hazard"
    ):
        spark.sql(
            f"SELECT coxph_predict(m, {STRUCT}, 'risk') FROM cohort CROSS JOIN {fitted}"
        ).collect()
    with pytest.raises(Exception, match="coxph_fit: argument features must be a STRUCT"):
        spark.sql("SELECT coxph_fit(months, died, age) FROM cohort").collect()
    [negative] = spark.sql(f"SELECT coxph_fit(-months, died, {STRUCT}) AS m FROM cohort").collect()
    assert negative.m.error.startswith("negative durations")


def test_stratified_and_weighted_fits(spark, cohort):
    row = spark.sql(f"""SELECT coxph_fit_stratified(months, died, site, {STRUCT}) AS s,
                               coxph_fit_weighted(months, died, IF(treated = 1, 2.0, 1.0), {STRUCT}) AS w FROM cohort""").first()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = cohort.assign(weight=np.where(cohort.treated == 1, 2.0, 1.0))
        stratified = CoxPHFitter().fit(
            frame[COVARIATES + ["months", "died", "site"]], "months", "died", strata=["site"]
        )
        weighted = CoxPHFitter().fit(
            frame[COVARIATES + ["months", "died", "weight"]], "months", "died", weights_col="weight"
        )
    np.testing.assert_allclose(row.s.coef, stratified.params_[COVARIATES], rtol=1e-6)
    np.testing.assert_allclose(row.w.coef, weighted.params_[COVARIATES], rtol=1e-6)
    assert sorted(row.s.strata) == sorted(cohort.site.unique()) and row.w.weighted
    survival = spark.sql(f"""SELECT coxph_predict(m.s, {STRUCT.replace("struct(", "struct(c.").replace(", ", ", c.")}, 'survival', 12.0, c.site) AS p
                              FROM cohort c CROSS JOIN (SELECT coxph_fit_stratified(months, died, site, {STRUCT}) AS s FROM cohort) m
                              ORDER BY c.PatientID""").toPandas()["p"]
    expected = stratified.predict_survival_function(cohort.sort_values("PatientID"), times=[12.0])
    np.testing.assert_allclose(
        survival,
        expected[cohort.sort_values("PatientID").index].to_numpy()[0],
        rtol=1e-6,
        atol=1e-9,
    )


def test_kaplan_meier_logrank_aft_and_check(spark, cohort):
    curves = {
        r.treated: r.km
        for r in spark.sql(
            "SELECT treated, km_fit(months, died) AS km FROM cohort GROUP BY treated"
        ).collect()
    }
    for treated, rows in cohort.groupby("treated"):
        reference = KaplanMeierFitter().fit(rows["months"], rows["died"])
        np.testing.assert_allclose(
            curves[treated].survival, reference.survival_function_.iloc[:, 0], rtol=1e-9
        )
        assert curves[treated].median == reference.median_survival_time_
    at = spark.sql("SELECT km_survival(km_fit(months, died), 24.0) AS s FROM cohort").first().s
    assert at == pytest.approx(
        float(
            KaplanMeierFitter()
            .fit(cohort.months, cohort.died)
            .survival_function_at_times(24.0)
            .iloc[0]
        )
    )
    test = spark.sql("SELECT logrank_test(months, died, treated) AS t FROM cohort").first().t
    assert test.p < 0.01 and test.groups == ["0", "1"]  # treatment works in the simulated cohort

    model = spark.sql(f"SELECT aft_fit(months, died, {STRUCT}) AS m FROM cohort").first().m
    reference = WeibullAFTFitter().fit(cohort[COVARIATES + ["months", "died"]], "months", "died")
    np.testing.assert_allclose(model.coef, reference.params_, rtol=1e-6)
    medians = spark.sql(f"""SELECT aft_predict(m.m, {STRUCT.replace("struct(", "struct(c.").replace(", ", ", c.")}) AS med
                            FROM cohort c CROSS JOIN (SELECT aft_fit(months, died, {STRUCT}) AS m FROM cohort) m ORDER BY c.PatientID""").toPandas()
    np.testing.assert_allclose(
        medians["med"], reference.predict_median(cohort.sort_values("PatientID")), rtol=1e-6
    )

    check = (
        spark.sql(f"""SELECT coxph_check(c.months, c.died, {STRUCT.replace("struct(", "struct(c.").replace(", ", ", c.")}, m.m) AS r
                          FROM cohort c CROSS JOIN (SELECT coxph_fit(months, died, {STRUCT}) AS m FROM cohort) m""")
        .first()
        .r
    )
    assert (
        check.features == COVARIATES and check.error is None and all(0 <= p <= 1 for p in check.p)
    )


def test_models_with_equal_coefficients_keep_their_own_baselines(spark, cohort):
    """Rescaling time leaves Cox coefficients unchanged but not the baseline: predictions
    must use each row's own model."""
    rows = spark.sql(f"""
        WITH models AS (
            SELECT 1 AS scale, coxph_fit(months, died, {STRUCT}) AS model FROM cohort
            UNION ALL SELECT 10 AS scale, coxph_fit(months * 10, died, {STRUCT}) AS model FROM cohort)
        SELECT m.scale, m.model, coxph_predict(m.model, struct(60 AS age, 1 AS smoker, 15.0 AS tumor_mm, 0 AS treated),
                                               'cumulative_hazard', 12.0) AS h
        FROM models m ORDER BY m.scale""").collect()
    np.testing.assert_allclose(rows[0].model.coef, rows[1].model.coef, rtol=1e-9)
    from dicomsql.stats import cox

    for row in rows:
        expected = cox.predict(
            row.model.asDict(),
            {"age": [60.0], "smoker": [1.0], "tumor_mm": [15.0], "treated": [0.0]},
            "cumulative_hazard",
            np.array([12.0]),
        )[0]
        assert row.h == pytest.approx(expected, rel=1e-12)
    assert rows[0].h != pytest.approx(rows[1].h)


def test_stratified_predictions_with_null_or_unknown_strata_are_null(spark, cohort):
    fitted = f"(SELECT coxph_fit_stratified(months, died, site, {STRUCT}) AS m FROM cohort)"
    rows = spark.sql(f"""SELECT coxph_predict(m, struct(60 AS age, 1 AS smoker, 15.0 AS tumor_mm, 0 AS treated), 'survival', 12.0, s) AS p
                         FROM {fitted} CROSS JOIN (SELECT * FROM VALUES ('North'), (NULL), ('Atlantis') AS t(s)) ORDER BY s NULLS FIRST""").collect()
    assert rows[0].p is None and rows[1].p is None and 0 < rows[2].p < 1  # NULL, Atlantis, North
    with pytest.raises(
        Exception, match="coxph_predict: argument stratum: a stratified model needs the stratum"
    ):
        spark.sql(
            f"SELECT coxph_predict(m, {STRUCT.replace('struct(', 'struct(c.').replace(', ', ', c.')}, 'survival', 12.0) FROM cohort c CROSS JOIN {fitted}"
        ).collect()


def test_string_covariates_are_one_hot_encoded_as_lifelines_on_dummies(spark, cohort):
    """``sex`` is a string: one column ``sex=M`` (F, first in sorted order, is the
    reference), as lifelines fitted on pandas' dummies; predictions encode the same way."""
    rows = cohort[cohort.site != "Tiny"]
    names = COVARIATES + ["sex=M"]
    dummies = pd.get_dummies(
        rows[COVARIATES + ["sex", "months", "died"]],
        columns=["sex"],
        drop_first=True,
        prefix_sep="=",
        dtype=float,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cox_reference = CoxPHFitter().fit(dummies, "months", "died")
        aft_reference = WeibullAFTFitter().fit(dummies, "months", "died")
    fitted = spark.sql("""SELECT coxph_fit(months, died, struct(age, smoker, tumor_mm, treated, sex)) AS cox,
                                 aft_fit(months, died, struct(age, smoker, tumor_mm, treated, sex)) AS aft
                          FROM cohort WHERE site != 'Tiny'""")
    fitted.createOrReplaceTempView("string_models")
    models = fitted.first()
    assert (
        models.cox.features == names
        and models.cox.fields == COVARIATES + ["sex"]
        and models.cox.categories[-1] == ["F", "M"]
    )
    np.testing.assert_allclose(models.cox.coef, cox_reference.params_[names], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(models.aft.coef, aft_reference.params_, rtol=1e-6, atol=1e-6)
    predicted = (
        spark.sql("""
        SELECT c.PatientID, coxph_predict(m.cox, struct(c.age, c.smoker, c.tumor_mm, c.treated, c.sex)) AS hazard,
               aft_predict(m.aft, struct(c.age, c.smoker, c.tumor_mm, c.treated, c.sex)) AS median,
               coxph_predict(m.cox, struct(c.age, c.smoker, c.tumor_mm, c.treated, 'X' AS sex)) AS unseen,
               coxph_predict(m.cox, struct(c.age, c.smoker, c.tumor_mm, c.treated, 'F' AS sex)) AS reference
        FROM cohort c CROSS JOIN string_models m WHERE c.site != 'Tiny'""")
        .toPandas()
        .set_index("PatientID")
    )
    got = predicted.loc[rows["PatientID"]]
    np.testing.assert_allclose(
        got["hazard"], cox_reference.predict_partial_hazard(dummies), rtol=1e-6
    )
    np.testing.assert_allclose(got["median"], aft_reference.predict_median(dummies), rtol=1e-6)
    np.testing.assert_array_equal(
        got["unseen"], got["reference"]
    )  # an unseen category is the reference


def test_aft_summary_is_lifelines_summary(spark, cohort):
    rows = spark.sql(f"""SELECT s.* FROM (SELECT aft_fit(months, died, {STRUCT}) AS model FROM cohort) m,
                         LATERAL aft_summary(m.model) s""").toPandas()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = (
            WeibullAFTFitter()
            .fit(cohort[COVARIATES + ["months", "died"]], "months", "died")
            .summary
        )
    assert list(rows.columns) == [
        "parameter",
        "feature",
        "coef",
        "se",
        "z",
        "p",
        "ci_lower",
        "ci_upper",
    ]
    assert list(zip(rows.parameter, rows.feature)) == [
        ("location" if group == "lambda_" else "shape", name) for group, name in reference.index
    ]
    assert set(rows.feature) == set(COVARIATES + ["Intercept"])
    np.testing.assert_allclose(rows.coef, reference["coef"], rtol=1e-6)
    np.testing.assert_allclose(rows.ci_lower, reference["coef lower 95%"], rtol=1e-6)


def test_a_model_stored_with_covariates_still_predicts(spark, cohort):
    """Models stored by the release before name their fields ``covariates`` (alias for one
    release): prediction and summary still read them."""
    spark.sql(f"SELECT coxph_fit(months, died, {STRUCT}) AS m FROM cohort").createOrReplaceTempView(
        "new_model"
    )
    spark.sql("""SELECT named_struct('covariates', m.features, 'coef', m.coef, 'hazard_ratio', m.hazard_ratio, 'se', m.se,
                                     'z', m.z, 'p', m.p, 'ci_lower', m.ci_lower, 'ci_upper', m.ci_upper, 'means', m.means,
                                     'strata', m.strata, 'baseline_times', m.baseline_times,
                                     'baseline_cumhaz', m.baseline_cumhaz, 'error', m.error) AS m
                 FROM new_model""").createOrReplaceTempView("old_model")
    predict = "coxph_predict(m, struct(60.0 AS age, 1 AS smoker, 15.0 AS tumor_mm, 0 AS treated), 'survival', 12.0)"
    old, new = (
        spark.sql(f"SELECT {predict} AS p FROM {view}").first().p
        for view in ("old_model", "new_model")
    )
    assert old == pytest.approx(new, rel=1e-12) and 0 < old < 1
    summary = spark.sql(
        "SELECT s.feature FROM old_model o, LATERAL coxph_summary(o.m) s"
    ).toPandas()
    assert summary.feature.tolist() == COVARIATES

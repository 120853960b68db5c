"""The recipes of sql/examples run, statement by statement, through the real Thrift server
with PyHive on a full-size demo cohort, and each one's key result is checked against what
the demo was made from (its true models, its headers read with pydicom, numpy)."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from dicomsql.client import JdbcClient, QueryResult
from dicomsql.demo import DEVICE_TRUE_COEFFICIENTS, READERS, TRUE_COEFFICIENTS, write_demo
from dicomsql.sqltools import split_statements
from dicomsql.stats.metrics import split_fraction
from dicomsql.views import demo_views_sql

RECIPES = Path(__file__).parent.parent / "sql" / "examples"
FULL_DEMO_PATIENTS = 100


@pytest.fixture(scope="module")
def full_demo(tmp_path_factory, spark, demo) -> Path:
    """The server's demo views over a full-size cohort for this module, then back to the
    suite's small one."""
    out = write_demo(
        tmp_path_factory.mktemp("full") / "demo", patients=FULL_DEMO_PATIENTS, seed=0, size=128
    )
    for statement in demo_views_sql(out):
        spark.sql(statement)
    yield out
    for statement in demo_views_sql(demo):
        spark.sql(statement)


@pytest.fixture(scope="module")
def run_recipe(thrift_server, full_demo):
    client = JdbcClient(thrift_server.jdbc_url)

    def run(name: str) -> list[QueryResult]:
        """Every statement's result, in order; a failing statement fails with its line."""
        results = []
        for statement in split_statements((RECIPES / name).read_text(encoding="utf-8")):
            try:
                results.append(client.execute(statement.text))
            except Exception as exc:  # noqa: BLE001 - re-raised with the recipe's line
                raise AssertionError(f"{name}, line {statement.line}: {exc}") from None
        return results

    yield run
    client.close()


def frame(result: QueryResult) -> pd.DataFrame:
    return pd.DataFrame(result.rows, columns=result.columns)


def patients(demo: Path) -> pd.DataFrame:
    return pd.read_parquet(demo / "patients.parquet")


def test_every_recipe_is_tested():
    tested = set(re.findall(r'run_recipe\("([^"]+\.sql)"\)', Path(__file__).read_text()))
    assert {p.name for p in RECIPES.glob("*.sql")} == tested


def test_smart_filtering_selects_the_series_pydicom_finds(run_recipe, full_demo):
    selected = frame(run_recipe("01_smart_filtering.sql")[-1])
    clinical = patients(full_demo).set_index("PatientID")
    expected = set()
    for path in (full_demo / "images").glob("*/CT/*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if (
            ds.BodyPartExamined == "CHEST"
            and float(ds.SliceThickness) <= 2.5
            and float(ds.KVP) <= 120
            and datetime.datetime.strptime(ds.StudyDate, "%Y%m%d").date()
            >= datetime.date(2019, 1, 1)
            and clinical.loc[ds.PatientID, "age"] >= 60
        ):
            expected.add(ds.SeriesInstanceUID)
    assert expected and set(selected.SeriesInstanceUID) == expected
    assert (selected.images == 8).all()


def test_condition_classifiers_are_evaluated_on_held_out_patients(run_recipe, full_demo):
    results = run_recipe("02_predict_condition.sql")
    summary, scores = frame(results[-3]), frame(results[-1]).set_index("model")
    assert list(summary.feature) == ["intercept", "age", "smoker", "tumor_mm", "sex=M"]
    held_out = (split_fraction(patients(full_demo).PatientID.tolist(), 42) >= 0.7).sum()
    assert (scores.patients == held_out).all()
    assert scores.loc["logistic regression", "auc"] > 0.65
    assert (scores.auc > 0.6).all() and (scores.accuracy > 0.5).all()


def test_capture_technique_is_told_from_device_metadata(run_recipe):
    results = run_recipe("03_capture_technique.sql")
    importances, confusion, accuracy = (
        frame(results[-4]),
        frame(results[-2]),
        frame(results[-1]).iloc[0],
    )
    assert importances.feature_importance.sum() == pytest.approx(1.0)
    assert accuracy.accuracy >= 0.9 and accuracy.series == confusion["count"].sum()
    assert sorted(json.loads(accuracy.classes)) == [
        "HIGH RES CHEST",
        "LOW DOSE CHEST",
        "STANDARD CHEST",
    ]  # arrays arrive as JSON


def test_tumour_measured_from_pixels_predicts_survival(run_recipe):
    results = run_recipe("04_image_features_survival.sql")
    agreement, summary = frame(results[-4]).iloc[0], frame(results[-1]).set_index("feature")
    assert agreement.patients == FULL_DEMO_PATIENTS and agreement.correlation > 0.9
    assert abs(agreement.mean_difference_mm) < 3
    for name, truth in (
        ("age", TRUE_COEFFICIENTS["age"]),
        ("tumour_diameter_mm", TRUE_COEFFICIENTS["tumor_mm"]),
        ("treated", TRUE_COEFFICIENTS["treated"]),
    ):
        assert summary.loc[name, "ci_lower"] < truth < summary.loc[name, "ci_upper"], name


def test_device_failure_recovers_the_true_model(run_recipe):
    results = run_recipe("05_device_failure.sql")
    urgent, summary = frame(results[-2]), frame(results[-1]).set_index("feature")
    for name, truth in DEVICE_TRUE_COEFFICIENTS.items():
        assert summary.loc[name, "ci_lower"] < truth < summary.loc[name, "ci_upper"], name
    assert len(urgent) == 10 and urgent.median_months_to_failure.is_monotonic_increasing
    assert urgent.survives_a_year.between(0, 1).all()


def test_treated_patients_differ_by_log_rank(run_recipe):
    results = run_recipe("06_compare_populations.sql")
    by_treatment, per_site, test = frame(results[0]), frame(results[2]), frame(results[-1]).iloc[0]
    assert by_treatment.set_index(
        "treated"
    ).survival_24_months.is_monotonic_increasing  # treatment helps
    assert len(per_site) == 4 and (per_site.hazard_ratio < 1.5).all()
    assert test.p < 0.01 and json.loads(test.groups) == ["0", "1"]


def test_eigen_images_project_and_reconstruct_held_out_slices(run_recipe, full_demo):
    results = run_recipe("07_eigen_images.sql")
    model, projected = frame(results[-2]).iloc[0], frame(results[-1])
    held_out = (
        split_fraction([f"DEMO-{i:04d}" for i in range(1, FULL_DEMO_PATIENTS + 1)], 11) >= 0.8
    ).sum()
    assert model.pixels == 32 * 32 and model.images == (FULL_DEMO_PATIENTS - held_out) * 8
    ratios = np.array(json.loads(model.explained_variance_ratio))
    assert len(ratios) == 8 and np.all(np.diff(ratios) <= 0) and 0.5 < ratios.sum() <= 1
    assert len(projected) == held_out * 8 and all(
        len(json.loads(scores)) == 8 for scores in projected.scores
    )
    assert projected.reconstruction_mse.max() < 0.01


def test_capture_recommendations_for_every_reader(run_recipe):
    results = run_recipe("08_capture_recommendations.sql")
    fit, recommended = frame(results[-2]).iloc[0], frame(results[-1])
    assert fit.rmse < 1.0
    assert (
        recommended.reader.nunique() == READERS
        and (recommended.groupby("reader").size() == 3).all()
    )
    assert (
        recommended.groupby("reader")
        .predicted_quality.apply(lambda s: s.is_monotonic_decreasing)
        .all()
    )


def test_beeline_runs_a_recipe_file(thrift_server, beeline, full_demo):
    result = subprocess.run(
        [
            beeline,
            "-u",
            thrift_server.jdbc_url,
            "--silent=true",
            "--outputformat=csv2",
            "-f",
            str(RECIPES / "06_compare_populations.sql"),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "statistic,p,groups,events" in result.stdout

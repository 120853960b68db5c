"""distributed.coxph_fit: one Cox model across partitions equals the coxph_fit aggregate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dicomsql import distributed
from dicomsql.errors import ArgumentError
from dicomsql.stats import cox, logistic

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def tied_cohort(spark):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, 3))
    time = np.ceil(rng.exponential(1 / np.exp(x @ np.array([0.5, -0.3, 0.2]))) * 30)
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["t"], frame["e"], frame["w"] = time, rng.random(4000) < 0.7, rng.uniform(0.5, 2, 4000)
    frame["stage"] = np.array(["early", "late", "mid"])[np.digitize(time, [20, 40])]
    return frame, spark.createDataFrame(frame)


@pytest.mark.parametrize(
    ("options", "weight"), [({}, None), ({"ties": "breslow"}, None), ({}, "w")]
)
def test_distributed_cox_equals_the_aggregate(tied_cohort, options, weight):
    frame, data = tied_cohort
    model = distributed.coxph_fit(
        data, "t", "e", ["a", "b", "c"], weight=weight, options=options, partitions=5
    )
    reference = cox.fit(
        frame["t"],
        frame["e"],
        {name: frame[name].to_numpy() for name in "abc"},
        weights=None if weight is None else frame[weight],
        options=options,
    )
    assert model["error"] is None and model["converged"]
    np.testing.assert_allclose(model["coef"], reference["coef"], atol=1e-6)
    np.testing.assert_allclose(model["se"], reference["se"], rtol=1e-6)
    assert model["concordance"] == pytest.approx(reference["concordance"], abs=1e-6)
    assert model["baseline_times"] == reference["baseline_times"]
    assert model["n"] == 4000 and model["n_dropped"] == 0


def test_distributed_cox_names_a_bad_column(tied_cohort):
    _, data = tied_cohort
    with pytest.raises(ArgumentError, match="no column 'age'") as raised:
        distributed.coxph_fit(data, "t", "e", ["a", "age"])
    assert raised.value.argument == "features"


def test_a_distributed_model_predicts_in_sql_as_the_aggregate_does(spark, tied_cohort):
    _, data = tied_cohort
    data.createOrReplaceTempView("tied_cohort")
    model = distributed.coxph_fit(data, "t", "e", ["a", "b", "c"], partitions=3)
    distributed.models_frame(spark, [model]).createOrReplaceTempView("distributed_cox")
    predictions = spark.sql(
        """SELECT d.id, coxph_predict(m.model, struct(d.a, d.b, d.c), 'survival', 30.0) AS ours,
                  coxph_predict(a.model, struct(d.a, d.b, d.c), 'survival', 30.0) AS theirs
           FROM (SELECT *, monotonically_increasing_id() AS id FROM tied_cohort LIMIT 50) d,
                distributed_cox m,
                (SELECT coxph_fit(t, e, struct(a, b, c)) AS model FROM tied_cohort) a"""
    ).toPandas()
    assert len(predictions) == 50 and predictions["ours"].between(0, 1).all()
    np.testing.assert_allclose(predictions["ours"], predictions["theirs"], rtol=0, atol=1e-6)


def test_distributed_linear_regression_equals_the_aggregate(spark, tied_cohort):
    frame, _ = tied_cohort
    sites = np.array(["north", "south", "east"])[np.arange(len(frame)) % 3]
    data = spark.createDataFrame(frame.assign(site=sites)).orderBy("site")  # a site a partition
    model = distributed.linreg_fit(data, "t", ["a", "b", "site"])
    data.createOrReplaceTempView("sited_cohort")
    reference = (
        spark.sql("SELECT linreg_fit(t, struct(a, b, site)) AS m FROM sited_cohort").first().m
    )
    assert model["error"] is None and model["features"] == reference["features"]
    assert model["features"] == ["a", "b", "site=north", "site=south"] and model["n"] == 4000
    for field in ("coef", "se", "intercept", "r2", "f_statistic"):
        np.testing.assert_allclose(model[field], reference[field], rtol=1e-9)
    stored = distributed.models_frame(spark, [model], "linreg").selectExpr("model.r2").first()
    assert stored[0] == model["r2"]


@pytest.mark.parametrize(
    ("label", "options"), [("e", {}), ("e", {"l2": "2.0"}), ("stage", {}), ("e", {"l1": "3.0"})]
)
def test_distributed_logistic_regression_equals_the_aggregate(tied_cohort, label, options):
    frame, data = tied_cohort
    model = distributed.logreg_fit(data.repartition(5), label, ["a", "b", "c"], options=options)
    reference = logistic.fit(
        frame[label].to_numpy(), {name: frame[name].to_numpy() for name in "abc"}, options
    )
    assert model["error"] is None and model["classes"] == reference["classes"]
    assert model["n"] == 4000 and model["converged"]
    if "l1" not in options:  # Newton-Raphson's steps (L-BFGS-B's may differ by rounding)
        assert model["iterations"] == reference["iterations"]
    estimates = {"e": ["coef", "se", "intercept"], "stage": ["class_coef", "class_se"]}[label]
    for field in ["log_likelihood", *estimates]:
        if reference[field] is None:
            assert model[field] is None, field
        else:
            np.testing.assert_allclose(model[field], reference[field], rtol=1e-6, atol=1e-7)


#: The fit of :func:`test_a_cohort_no_python_worker_can_hold_equals_lifelines`, in a process
#: of its own: ``spark.executor.pyspark.memory`` is fixed when a session starts.
COHORT_FIT = """
import json, resource, sys
import pyarrow as pa
import dicomsql
from dicomsql import distributed

def limit_mib(batches):
    yield pa.RecordBatch.from_pydict({"mib": [resource.getrlimit(resource.RLIMIT_AS)[0] >> 20]})

cohort, limit, master = sys.argv[1:4]
spark = dicomsql.session(master, conf={"spark.executor.pyspark.memory": limit})
model = distributed.coxph_fit(
    spark.read.parquet(cohort), "t", "e", [f"f{i}" for i in range(10)]
)
model["limits"] = [row.mib for row in spark.range(0, 4, 1, 4).mapInArrow(limit_mib, "mib long").collect()]
print(json.dumps({key: model[key] for key in ("error", "converged", "n", "coef", "se", "limits")}))
"""

#: The Python workers' address space in that fit: an idle worker with pyarrow takes about
#: 300 MiB, so 192 MB of doubles cannot be in one (300m: the worker cannot even start).
COHORT_WORKER_MEMORY = "400m"


def test_a_cohort_no_python_worker_can_hold_equals_lifelines(cluster_tier, tmp_path, cli_env):
    """2,000,000 rows x 10 covariates (192 MB of doubles) on two executors whose Python
    workers are held to ``COHORT_WORKER_MEMORY`` of address space: the distributed fit, a
    partition's Arrow batches at a time in a worker, equals lifelines (which holds them all
    in this process)."""
    import json
    import subprocess
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(11)
    rows, names = 2_000_000, [f"f{i}" for i in range(10)]
    x = rng.normal(size=(rows, len(names)))
    columns = dict(zip(names, x.T, strict=True))
    columns["t"] = np.ceil(rng.exponential(1 / np.exp(x @ np.linspace(-0.5, 0.5, 10))) * 100)
    columns["e"] = rng.random(rows) < 0.7
    pq.write_table(pa.table(columns), tmp_path / "cohort.parquet")
    del x

    fit = subprocess.run(
        [
            sys.executable,
            "-c",
            COHORT_FIT,
            str(tmp_path / "cohort.parquet"),
            COHORT_WORKER_MEMORY,
            cluster_tier,
        ],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    model = json.loads(fit.stdout.splitlines()[-1])
    reference = CoxPHFitter().fit(pd.DataFrame(columns), "t", "e")
    assert model["limits"] == [int(COHORT_WORKER_MEMORY[:-1])] * 4
    assert model["error"] is None and model["converged"] and model["n"] == rows
    np.testing.assert_allclose(model["coef"], reference.params_[names], atol=1e-6)
    np.testing.assert_allclose(model["se"], reference.standard_errors_[names], rtol=1e-6)


def test_a_cox_pass_worker_imports_neither_scipy_nor_the_server():
    """What keeps the fit above under its limit: unpickling a pass imports numpy and pyarrow only."""
    import subprocess
    import sys

    code = (
        "import pickle, sys; from dicomsql import passes; "
        "pickle.loads(pickle.dumps(passes.cox_terms)); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'thrift', 'pandas', 'pyspark', 'pydicom'}))"
    )
    imported = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert imported.stdout.strip() == "[]"

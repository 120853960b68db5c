"""distributed.coxph_fit: one Cox model across partitions equals the coxph_fit aggregate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dicomsql import distributed
from dicomsql.errors import ArgumentError
from dicomsql.stats import cox


@pytest.fixture(scope="module")
def tied_cohort(spark):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, 3))
    time = np.ceil(rng.exponential(1 / np.exp(x @ np.array([0.5, -0.3, 0.2]))) * 30)
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["t"], frame["e"], frame["w"] = time, rng.random(4000) < 0.7, rng.uniform(0.5, 2, 4000)
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

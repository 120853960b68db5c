"""The model-family base (pure: no Spark): option parsing, complete rows, failures as
NULL estimates with a reason, and the check that a model holds only declared fields."""

from __future__ import annotations

import numpy as np
import pytest

from dicomsql.options import Option, number
from dicomsql.stats import aft, als, bayes, cox, forest, km, linear, logistic
from dicomsql.stats.family import Family, Unfit, complete

FAMILY = Family(
    (Option("alpha", 0.05, "level", number(0.0, 0.5)), Option("l2", 0.0, "penalty", number(0.0))),
    (
        ("coef", "array<double>"),
        ("iterations", "bigint"),
        ("n", "bigint"),
        ("n_dropped", "bigint"),
        ("alpha", "double"),
        ("error", "string"),
    ),
    recorded=("alpha",),
)
FAMILIES = [cox, aft, km, linear, logistic, bayes, forest, als]


def test_a_model_has_every_field_the_recorded_options_and_the_estimates():
    settings = FAMILY.settings({"alpha": "0.1"})
    model = FAMILY.model(settings, complete([1.0, np.nan, 3.0]).counts(), lambda: {"coef": [0.5]})
    assert model == {
        "coef": [0.5],
        "iterations": None,
        "n": 2,
        "n_dropped": 1,
        "alpha": 0.1,
        "error": None,
    }


def test_a_group_that_cannot_be_fitted_gets_null_estimates_and_the_reason():
    def estimate():
        raise Unfit("the label needs at least 2 classes, got 1", iterations=3)

    model = FAMILY.model(FAMILY.settings(None), {"n": 4}, estimate)
    assert model["coef"] is None and model["iterations"] == 3 and model["n"] == 4
    assert model["error"] == "the label needs at least 2 classes, got 1"
    failing = FAMILY.model(FAMILY.settings(None), {}, lambda: 1 / 0, failures=(ZeroDivisionError,))
    assert failing["error"] == "could not fit: ZeroDivisionError: division by zero"
    with pytest.raises(ZeroDivisionError):  # not a declared failure: a bug, not a reason
        FAMILY.model(FAMILY.settings(None), {}, lambda: 1 / 0)


def test_an_undeclared_key_is_a_programming_error():
    with pytest.raises(KeyError, match="undeclared model field\\(s\\) coeff"):
        FAMILY.model(FAMILY.settings(None), {}, lambda: {"coeff": [1.0]})
    with pytest.raises(KeyError, match="undeclared model field\\(s\\) features"):
        FAMILY.model(FAMILY.settings(None), {"features": ["a"]}, lambda: {})
    with pytest.raises(ValueError, match="recorded option\\(s\\) l2"):
        Family(FAMILY.options, FAMILY.model_fields, recorded=("l2",))


def test_options_are_parsed_against_the_table():
    with pytest.raises(
        ValueError, match="option alpha must be a number >= 0.0 and <= 0.5, got '2'"
    ):
        FAMILY.settings({"alpha": "2"})
    with pytest.raises(ValueError, match="unknown option 'beta'"):
        FAMILY.settings({"beta": "1"})


def test_complete_rows_of_columns_labels_and_feature_maps():
    rows = complete(
        [1, 2, 3, 4],
        ["a", None, "b", "c"],
        {
            "x": np.array([1.0, 2.0, np.nan, 4.0]),
            "s": np.array(["u", "v", "w", None], dtype=object),
        },
        None,
    )
    assert rows.keep.tolist() == [True, False, False, False] and rows.counts() == {
        "n": 1,
        "n_dropped": 3,
    }
    assert rows.take(["a", None, "b", "c"]).tolist() == ["a"]
    assert rows.take({"x": np.arange(4.0)}) == {"x": np.array([0.0])}


@pytest.mark.parametrize("module", FAMILIES, ids=lambda module: module.__name__.rsplit(".", 1)[-1])
def test_every_family_declares_its_tables_in_its_family(module):
    assert (
        module.FAMILY.options is module.OPTIONS
        and module.FAMILY.model_fields is module.MODEL_FIELDS
    )
    assert module.FAMILY.summary_fields is getattr(module, "SUMMARY_FIELDS", ())
    names = [name for name, _ in module.MODEL_FIELDS]
    assert "n" in names and "n_dropped" in names and "error" in names
    assert "covariates" not in names  # one vocabulary: features


def test_summary_rows_have_the_declared_columns():
    rng = np.random.default_rng(0)
    x, sex = rng.normal(size=80), rng.choice(["F", "M"], 80).astype(object)
    features = {"x": x, "sex": sex}
    time, event = rng.exponential(np.exp(-x)), (rng.uniform(size=80) < 0.8).astype(float)
    labels = list(x + rng.normal(size=80) > 0)
    models = {
        cox: cox.fit(time, event, features),
        aft: aft.fit(time + 0.01, event, features),
        linear: linear.fit(x + rng.normal(size=80), {"sex": sex}),
        logistic: logistic.fit(labels, features),
        bayes: bayes.fit(labels, features),
        forest: forest.fit(labels, features, {"trees": "3"}),
        als: als.fit(list(sex), [f"i{i % 4}" for i in range(80)], x, {"rank": "2"}),
    }
    for module, model in models.items():
        assert model["error"] is None, module.__name__
        rows = list(module.summary(model))
        assert rows and all(len(row) == len(module.SUMMARY_FIELDS) for row in rows), module.__name__

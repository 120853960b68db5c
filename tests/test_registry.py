"""Meta-tests: every SQL function is documented, has an example that runs, and is tested."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot

from dicomsql.udfs import FUNCTIONS

TESTS = Path(__file__).parent


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_is_documented(name):
    function = FUNCTIONS[name]
    assert len(function.description) > 20, f"{name} needs a docstring: it is its SQL documentation"
    assert name in function.example
    sqlglot.parse_one(function.example, read="spark")


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_example_runs(spark, name):
    spark.sql(FUNCTIONS[name].example).collect()


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_has_a_test(name):
    other_tests = [p for p in TESTS.glob("test_*.py") if p.name != Path(__file__).name]
    assert any(f"{name}(" in p.read_text() for p in other_tests), f"no test calls {name}"

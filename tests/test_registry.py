"""Meta-tests: every SQL function is documented, has an example that runs, is tested, and
bounds every argument and option that sizes memory or work."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest
import sqlglot

import dicomsql.stats
from dicomsql.options import Bound, Option
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


#: INT arguments that size nothing: a seed picks a random stream.
UNSIZED = {"seed"}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_integer_argument_is_bounded(name):
    function = FUNCTIONS[name]
    integers = set(re.findall(r"(\w+) INT\b", function.args)) - UNSIZED
    assert integers <= set(function.bounds), (
        f"{name}: declare bounds= for {sorted(integers - set(function.bounds))}"
    )
    assert set(function.bounds) <= set(re.findall(r"\w+", function.args)), (
        f"{name}: a bound names no argument"
    )
    assert all(
        isinstance(bound, Bound) and bound.low <= bound.high for bound in function.bounds.values()
    )
    if (
        "options MAP" in function.args and name != "dicom_image"
    ):  # dicom_image's options are two flags
        assert function.option_table, f"{name}: declare its options(table) argument"


def _option_tables() -> dict[str, tuple[Option, ...]]:
    """Every table of options in dicomsql.stats, by module and name."""
    tables = {}
    for module_info in pkgutil.iter_modules(dicomsql.stats.__path__):
        module = importlib.import_module(f"dicomsql.stats.{module_info.name}")
        for attribute, value in vars(module).items():
            if (
                isinstance(value, tuple)
                and value
                and all(isinstance(item, Option) for item in value)
            ):
                tables[f"{module_info.name}.{attribute}"] = value
    return tables


def test_every_option_table_is_declared_and_its_integer_options_are_bounded():
    tables = _option_tables()
    declared = {id(function.option_table) for function in FUNCTIONS.values()}
    assert {name for name, table in tables.items() if id(table) not in declared} == set(), (
        "declare them as options(table) arguments of their functions"
    )
    for name, table in tables.items():
        for option in table:
            if isinstance(option.default, int) and not isinstance(option.default, bool):
                assert isinstance(option.parse, Bound), (
                    f"{name}: option {option.name} needs a bound (integer(low, high))"
                )


def test_limits_are_documented():
    assert (
        FUNCTIONS["image_resize"].limits
        == "Limits: ``rows`` between 1 and 8192, ``columns`` between 1 and 8192."
    )
    assert FUNCTIONS["random_forest_fit"].limits.startswith(
        "Limits: option ``trees`` between 1 and 2000, ``max_depth``"
    )
    assert FUNCTIONS["dicom_tag"].limits == ""

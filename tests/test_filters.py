"""Pushed-down filters follow SQL's three-valued logic (pure: no Spark session)."""

from __future__ import annotations

import datetime

import pytest
from pyspark.sql.datasource import (
    EqualNullSafe,
    EqualTo,
    GreaterThan,
    In,
    IsNotNull,
    IsNull,
    LessThanOrEqual,
    Not,
    StringContains,
    StringEndsWith,
    StringStartsWith,
)

from dicomsql.source.filters import file_values, matches, pushable

UTC = datetime.timezone.utc
KNOWN = file_values("/data/ct/a.dcm", 100, 1_600_000_000_000_000)
UNKNOWN = file_values("/data/ct/broken.dcm", None, None)


@pytest.mark.parametrize(
    "filter_, known, unknown",
    [
        (EqualTo(("size",), 100), True, False),
        (Not(EqualTo(("size",), 100)), False, False),  # NOT NULL is NULL: dropped
        (
            GreaterThan(("modificationTime",), datetime.datetime(2020, 1, 1, tzinfo=UTC)),
            True,
            False,
        ),
        (LessThanOrEqual(("size",), 99), False, False),
        (In(("size",), [1, 100]), True, False),
        (Not(In(("size",), [1, None])), False, False),  # 100 NOT IN (1, NULL) is NULL
        (Not(In(("size",), [1, 2])), True, False),
        (IsNull(("size",)), False, True),
        (IsNotNull(("modificationTime",)), True, False),
        (EqualNullSafe(("size",), None), False, True),
        (StringStartsWith(("path",), "/data/ct"), True, True),
        (StringEndsWith(("path",), "a.dcm"), True, False),
        (Not(StringContains(("path",), "broken")), True, False),
    ],
)
def test_three_valued_logic(filter_, known, unknown):
    assert pushable(filter_)
    assert matches([filter_], KNOWN) is known
    assert matches([filter_], UNKNOWN) is unknown


def test_only_file_columns_are_pushed():
    assert not pushable(EqualTo(("Modality",), "CT"))
    assert not pushable(Not(EqualTo(("meta",), "x")))
    assert pushable(Not(Not(EqualTo(("path",), "x"))))

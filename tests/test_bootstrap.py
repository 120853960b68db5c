"""sql/bootstrap.sql in the suite's session: its SQL functions and its views over the demo
images, checked against the headers read with pydicom."""

from __future__ import annotations

import datetime
from pathlib import Path

import pydicom
import pytest

from dicomsql.sqltools import split_statements, to_spark

BOOTSTRAP = Path(__file__).parent.parent / "sql" / "bootstrap.sql"


@pytest.fixture(scope="module")
def bootstrapped(spark):
    for statement in split_statements(BOOTSTRAP.read_text(encoding="utf-8")):
        spark.sql(to_spark(statement, {"images": "demo_images"}).text)
    return spark


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Doe^Jane", "Jane Doe"),
        ("Doe^Jane^Q^Dr^PhD", "Dr Jane Q Doe PhD"),
        ("山田^太郎", "太郎 山田"),
        ("", None),
    ],
)
def test_person_name(bootstrapped, name, expected):
    assert bootstrapped.sql("SELECT person_name(:name)", args={"name": name}).first()[0] == expected


def test_hu_tissue(bootstrapped):
    rows = bootstrapped.sql(
        "SELECT hu_tissue(hu) FROM VALUES (-1000D), (-850D), (-100D), (0D), (40D), (700D), (NULL) AS t(hu)"
    ).collect()
    assert [row[0] for row in rows] == ["air", "lung", "fat", "fluid", "soft tissue", "bone", None]


def test_dicom_timestamp(bootstrapped):
    rows = bootstrapped.sql(
        "SELECT dicom_timestamp(DATE'2024-03-05', t) FROM VALUES ('143015.250000'), ('1430'), ('14'), (NULL) AS v(t)"
    ).collect()
    assert [row[0] for row in rows] == [
        datetime.datetime(2024, 3, 5, 14, 30, 15, 250000),
        datetime.datetime(2024, 3, 5, 14, 30),
        datetime.datetime(2024, 3, 5, 14),
        datetime.datetime(2024, 3, 5),
    ]


def test_series_studies_and_unreadable_files_match_the_headers(bootstrapped, demo):
    series, studies = {}, {}
    for path in (demo / "images").rglob("*.dcm"):
        if path.name == "truncated.dcm":  # the fixture's damaged copy: an unreadable file (below)
            continue
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        series[ds.SeriesInstanceUID] = series.get(ds.SeriesInstanceUID, 0) + 1
        studies.setdefault(ds.StudyInstanceUID, set()).add(ds.Modality)
    rows = bootstrapped.sql("SELECT SeriesInstanceUID, images FROM series").collect()
    assert {row.SeriesInstanceUID: row.images for row in rows} == series
    rows = bootstrapped.sql("SELECT StudyInstanceUID, modalities FROM studies").collect()
    assert {row.StudyInstanceUID: set(row.modalities) for row in rows} == studies
    bad = {
        Path(row.path).name: row.error
        for row in bootstrapped.sql("SELECT path, error FROM unreadable_files").collect()
    }
    assert set(bad) == {"notes.txt", "truncated.dcm"} and all(bad.values())

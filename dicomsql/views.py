"""Temporary views over data on disk: DICOM folders and the demo cohort.

DICOM tables are temporary views (a catalog table over a Python data source loses its
options on read), so they are (re)created each time a session or server starts. The
functions here return the SQL, so it runs the same in a session (``spark.sql``) or through
a server (``JdbcClient.execute``).
"""

from __future__ import annotations

import os
from pathlib import Path

from .sqltools import identifier, string_literal

__all__ = ["DEMO_VIEWS", "dicom_view_sql", "parquet_view_sql", "demo_views_sql"]

#: The demo cohort's views: name -> what it holds.
DEMO_VIEWS = {
    "demo_images": "one row per DICOM file of the demo cohort (CT and MR series)",
    "demo_patients": "the demo's clinical table: covariates and survival (months, died)",
}


def _absolute(path: str | os.PathLike[str]) -> str:
    return os.path.abspath(os.path.expanduser(path))


def dicom_view_sql(name: str, path: str | os.PathLike[str], **options: object) -> str:
    """SQL creating (or replacing) temporary view ``name`` over the DICOM files under
    ``path``; ``options`` are further options of the ``dicom`` source.

    >>> print(dicom_view_sql("ct", "/data/it's", mode="FAILFAST"))
    CREATE OR REPLACE TEMPORARY VIEW `ct` USING dicom OPTIONS (`path` '/data/it\\'s', `mode` 'FAILFAST')
    """
    pairs = {"path": _absolute(path), **options}
    rendered = ", ".join(f"{identifier(k)} {string_literal(str(v))}" for k, v in pairs.items())
    return f"CREATE OR REPLACE TEMPORARY VIEW {identifier(name)} USING dicom OPTIONS ({rendered})"


def parquet_view_sql(name: str, path: str | os.PathLike[str]) -> str:
    """SQL creating (or replacing) temporary view ``name`` over Parquet data at ``path``."""
    return (
        f"CREATE OR REPLACE TEMPORARY VIEW {identifier(name)} USING parquet "
        f"OPTIONS (`path` {string_literal(_absolute(path))})"
    )


def demo_views_sql(demo: str | os.PathLike[str]) -> list[str]:
    """SQL creating the views of :data:`DEMO_VIEWS` over a cohort written by
    :func:`dicomsql.demo.write_demo`."""
    return [
        dicom_view_sql("demo_images", Path(demo) / "images"),
        parquet_view_sql("demo_patients", Path(demo) / "patients.parquet"),
    ]

"""Temporary views over data on disk: DICOM folders and the demo cohort.

DICOM tables are temporary views (a catalog table over a Python data source loses its
options on read), so they are (re)created each time a session or server starts. The
functions here return the SQL, so it runs the same in a session (``spark.sql``) or through
a server (``JdbcClient.execute``).
"""

from __future__ import annotations

import os
from pathlib import Path

from .dicom.header import CORE_KEYWORDS
from .sqltools import identifier, qualified, string_literal
from .storage import absolute_path, is_uri

__all__ = [
    "DEMO_VIEWS",
    "DEMO_IMAGE_TAGS",
    "catalog_view_sql",
    "dicom_view_sql",
    "parquet_view_sql",
    "demo_views_sql",
]

#: The demo cohort's views: name -> what it holds.
DEMO_VIEWS = {
    "demo_images": "one row per DICOM file of the demo cohort (CT and MR series), with device and capture columns",
    "demo_patients": "the demo's clinical table: covariates and survival (months, died)",
    "demo_devices": "the CT fleet: age, daily scans and time to failure (months, failed)",
    "demo_reads": "readers' quality ratings (1-5) of each CT series and its capture settings",
}

#: The columns of ``demo_images``: the core attributes and the device and capture ones.
DEMO_IMAGE_TAGS = CORE_KEYWORDS + (
    "DeviceSerialNumber",
    "ProtocolName",
    "KVP",
    "XRayTubeCurrent",
    "ExposureTime",
    "Exposure",
    "CTDIvol",
    "ConvolutionKernel",
    "MagneticFieldStrength",
    "RepetitionTime",
    "EchoTime",
)


def dicom_view_sql(name: str, path: str | os.PathLike[str], **options: object) -> list[str]:
    """SQL creating (or replacing) temporary view ``name`` over the DICOM files under
    ``path``; ``options`` are further options of the ``dicom`` source.

    Two statements: the source itself, as ``<name>__files`` with filter pushdown on, and the
    view ``name`` over it with ``WHERE path IS NOT NULL``. Spark 4.3 keeps the last
    pushed-down plan of a Python data source and reuses it for a query that filters nothing;
    with a filter in every query the plan is made afresh each time (and a query filtering on
    path, size or modificationTime opens no other file).

    >>> for statement in dicom_view_sql("ct", "/data/it's", mode="FAILFAST"):
    ...     print(statement)
    CREATE OR REPLACE TEMPORARY VIEW `ct__files` USING dicom OPTIONS (`path` '/data/it\\'s', `pushdown` 'true', `mode` 'FAILFAST')
    CREATE OR REPLACE TEMPORARY VIEW `ct` AS SELECT * FROM `ct__files` WHERE path IS NOT NULL
    """
    pairs = {
        "path": path if is_uri(str(path)) else absolute_path(path),
        "pushdown": "true",
        **options,
    }
    rendered = ", ".join(f"{identifier(k)} {string_literal(str(v))}" for k, v in pairs.items())
    source = identifier(f"{name}__files")
    return [
        f"CREATE OR REPLACE TEMPORARY VIEW {source} USING dicom OPTIONS ({rendered})",
        f"CREATE OR REPLACE TEMPORARY VIEW {identifier(name)} AS SELECT * FROM {source} WHERE path IS NOT NULL",
    ]


def catalog_view_sql(name: str, catalog: str) -> str:
    """SQL creating (or replacing) temporary view ``name`` over catalog ``catalog`` (a view,
    see :mod:`dicomsql.ingest`): the temporary view is resolved at each query, so every query
    reads the catalog as its last refresh left it.

    >>> print(catalog_view_sql("ct", "dicomsql_catalog.ct"))
    CREATE OR REPLACE TEMPORARY VIEW `ct` AS SELECT * FROM `dicomsql_catalog`.`ct`
    """
    return (
        f"CREATE OR REPLACE TEMPORARY VIEW {identifier(name)} AS SELECT * FROM {qualified(catalog)}"
    )


def parquet_view_sql(name: str, path: str | os.PathLike[str]) -> str:
    """SQL creating (or replacing) temporary view ``name`` over Parquet data at ``path``."""
    return (
        f"CREATE OR REPLACE TEMPORARY VIEW {identifier(name)} USING parquet "
        f"OPTIONS (`path` {string_literal(absolute_path(path))})"
    )


def demo_views_sql(demo: str | os.PathLike[str]) -> list[str]:
    """SQL creating the views of :data:`DEMO_VIEWS` over a cohort written by
    :func:`dicomsql.demo.write_demo`."""
    demo = Path(demo)
    return [
        *dicom_view_sql("demo_images", demo / "images", tags=",".join(DEMO_IMAGE_TAGS)),
        *(
            parquet_view_sql(f"demo_{name}", demo / f"{name}.parquet")
            for name in ("patients", "devices", "reads")
        ),
    ]

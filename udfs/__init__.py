"""The SQL function library: thin Spark adapters over :mod:`dicomsql.dicom` and
:mod:`dicomsql.stats`, one module per family. Importing this package declares every function
in :data:`FUNCTIONS`, family by family in the order of :data:`FAMILIES` (the order of the
reference docs); :func:`register_functions` makes them callable from SQL."""

from importlib import import_module

from .registry import FUNCTIONS, SqlFunction, register_functions, sql_function

#: The function families, one module each: importing one declares its functions.
FAMILIES = ("header", "pixels", "images", "cohort", "survival", "models", "catalog")

for _family in FAMILIES:
    import_module(f"{__name__}.{_family}")

__all__ = ["FAMILIES", "FUNCTIONS", "SqlFunction", "register_functions", "sql_function"]

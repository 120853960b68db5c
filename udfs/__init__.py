"""The SQL function library: thin Spark adapters over :mod:`dicomsql.dicom` and
:mod:`dicomsql.stats`, one module per family (:data:`FAMILIES`). Importing a family declares its
functions; reading :data:`FUNCTIONS` imports them all, and :func:`register_functions` makes
them callable from SQL. The package itself imports no family, so that a Python worker loads
only the one whose function it runs."""

from .registry import FAMILIES, FUNCTIONS, SqlFunction, register_functions, sql_function

__all__ = ["FAMILIES", "FUNCTIONS", "SqlFunction", "register_functions", "sql_function"]

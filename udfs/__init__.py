"""The SQL function library: thin Spark adapters over :mod:`dicomsql.dicom` and
:mod:`dicomsql.stats`, one module per family. Importing this package declares every function
in :data:`FUNCTIONS`; :func:`register_functions` makes them callable from SQL."""

from . import header, pixels, images, cohort, survival, models, catalog  # noqa: F401 - importing a family declares its functions
from .registry import FUNCTIONS, SqlFunction, register_functions, sql_function

__all__ = ["FUNCTIONS", "SqlFunction", "register_functions", "sql_function"]

"""dicomsql: analyse DICOM images with plain SQL on Apache Spark.

Usage::

    import dicomsql
    spark = dicomsql.session(tables={"ct": "/data/ct"})   # embedded Spark, view ct over the files
    server = dicomsql.serve(spark)   # jdbc:hive2://127.0.0.1:10000/default

:class:`dicomsql.App` is what ``dicomsql serve`` builds: the home, tables, data roots,
bootstrap script, demo policy and server settings in one object.
"""

import importlib

__version__ = "0.1.0"

#: Each public name and the module it lives in. They are imported on first use, so that a
#: Python worker unpickling one of dicomsql's functions imports that function's module only,
#: not the server (Thrift, ssl) and the session.
_EXPORTS = {
    "App": ".app",
    "session": ".app",
    "DicomsqlError": ".errors",
    "Server": ".server",
    "serve": ".server",
    "register": ".session",
}

__all__ = ["App", "DicomsqlError", "Server", "__version__", "register", "serve", "session"]


def __getattr__(name: str):
    """``dicomsql.App`` and the other public names, imported from their module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dicomsql' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__():
    """The module's names, with the public ones not imported yet."""
    return sorted([*globals(), *_EXPORTS])

"""dicomsql: analyse DICOM images with plain SQL on Apache Spark.

Usage::

    import dicomsql
    spark = dicomsql.session(tables={"ct": "/data/ct"})   # embedded Spark, view ct over the files
    server = dicomsql.serve(spark)   # jdbc:hive2://127.0.0.1:10000/default

:class:`dicomsql.App` is what ``dicomsql serve`` builds: the home, tables, data roots,
bootstrap script, demo policy and server settings in one object.
"""

from .app import App, session
from .errors import DicomsqlError
from .server import Server, serve
from .session import register

__version__ = "0.1.0"

__all__ = ["App", "DicomsqlError", "Server", "__version__", "register", "serve", "session"]

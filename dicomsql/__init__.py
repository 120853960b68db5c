"""dicomsql: analyse DICOM images with plain SQL on Apache Spark.

Usage::

    import dicomsql
    spark = dicomsql.session()       # embedded Spark with everything registered
    spark.sql("CREATE TEMPORARY VIEW ct USING dicom OPTIONS (path '/data/ct')")
    server = dicomsql.serve(spark)   # jdbc:hive2://127.0.0.1:10000/default
"""

from .errors import DicomsqlError
from .server import Server, serve
from .session import register, session

__version__ = "0.1.0"

__all__ = ["DicomsqlError", "Server", "__version__", "register", "serve", "session"]

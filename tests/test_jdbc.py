"""dicomsql's endpoint through the Hive JDBC driver that ships in the pyspark wheel, driven with
JayDeBeApi in a JVM of the test process (JPype; Spark's own JVM is another process): JDBC
DatabaseMetaData, NULLs and values of every type, DECIMAL and TIMESTAMP precision, and errors."""

from __future__ import annotations

import os
from pathlib import Path

import jaydebeapi
import jpype
import pyspark
import pytest

from dicomsql.udfs.registry import FUNCTIONS

from .conftest import DEMO_PATIENTS

pytestmark = [
    pytest.mark.server,
    pytest.mark.filterwarnings(
        "ignore:jpype._core.isThreadAttachedToJVM is deprecated:DeprecationWarning"
    ),
]

DRIVER = "org.apache.hive.jdbc.HiveDriver"
#: The driver (hive-jdbc-2.3.x) and everything it loads: the whole of pyspark's jars folder
#: (a hand-picked few, hive-jdbc with Hive's service, rpc, common, libthrift, httpclient and
#: slf4j, still lack Hive's serde2 classes at the first query).
JARS = sorted(str(p) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar"))


@pytest.fixture(scope="module")
def jvm():
    """JPype's JVM with the driver's classpath (a process has at most one JPype JVM)."""
    assert any(os.path.basename(j).startswith("hive-jdbc-2.3.") for j in JARS)
    if not jpype.isJVMStarted():
        # convertStrings: JayDeBeApi expects Java strings to arrive as Python str
        jpype.startJVM("-Xmx256m", classpath=JARS, convertStrings=True)
    return jpype


@pytest.fixture(scope="module")
def connection(jvm, thrift_server):
    """A JayDeBeApi connection (SASL PLAIN, user anonymous); ``.jconn`` is the JDBC one."""
    conn = jaydebeapi.connect(DRIVER, thrift_server.jdbc_url, ["anonymous", ""])
    yield conn
    conn.close()


@pytest.fixture
def cursor(connection):
    with connection.cursor() as cur:
        yield cur


def _rows(result_set) -> list[dict]:
    """Every row of a JDBC ResultSet as {column label: value} (the result set is closed)."""
    meta = result_set.getMetaData()
    labels = [str(meta.getColumnLabel(i)) for i in range(1, meta.getColumnCount() + 1)]
    rows = []
    try:
        while result_set.next():
            rows.append({label: result_set.getObject(i) for i, label in enumerate(labels, start=1)})
    finally:
        result_set.close()
    return rows


def _query(connection, sql: str):
    """The JDBC ResultSet of ``sql`` on a plain java.sql.Statement."""
    return connection.jconn.createStatement().executeQuery(sql)


# --- DatabaseMetaData -------------------------------------------------------------------------


def test_metadata_lists_the_demo_views(connection):
    meta = connection.jconn.getMetaData()
    tables = {r["TABLE_NAME"]: r for r in _rows(meta.getTables(None, None, "demo%", None))}
    assert {"demo_images", "demo_patients"} <= set(tables)
    assert all(name.startswith("demo") for name in tables)
    for name in ("demo_images", "demo_patients"):
        assert tables[name]["TABLE_TYPE"] == "VIEW"
        assert tables[name]["TABLE_SCHEM"] is None  # temporary views belong to no database
    # asking for tables only leaves the temporary views out
    assert _rows(meta.getTables(None, None, "demo%", ["TABLE"])) == []


def test_metadata_columns_of_a_view_match_spark(connection, spark):
    types = jpype.JClass("java.sql.Types")
    meta = connection.jconn.getMetaData()
    columns = {r["COLUMN_NAME"]: r for r in _rows(meta.getColumns(None, None, "demo_images", "%"))}
    fields = spark.table("demo_images").schema.fields
    assert list(columns) == [f.name for f in fields]
    assert [columns[f.name]["ORDINAL_POSITION"] for f in fields] == list(range(1, len(fields) + 1))
    patient_id = columns["PatientID"]
    assert (patient_id["TYPE_NAME"], patient_id["DATA_TYPE"], patient_id["TABLE_NAME"]) == (
        "STRING",
        types.VARCHAR,
        "demo_images",
    )
    assert patient_id["TABLE_SCHEM"] is None
    size = columns["size"]  # the file's size in bytes, from Spark's binaryFile source
    assert (size["TYPE_NAME"], size["DATA_TYPE"], size["COLUMN_SIZE"], size["NUM_PREC_RADIX"]) == (
        "BIGINT",
        types.BIGINT,
        19,
        10,
    )
    numeric = {
        "int": ("INT", types.INTEGER),
        "bigint": ("BIGINT", types.BIGINT),
        "double": ("DOUBLE", types.DOUBLE),
    }
    instance = next(f for f in fields if f.name == "InstanceNumber").dataType.simpleString()
    assert instance in numeric
    assert (
        columns["InstanceNumber"]["TYPE_NAME"],
        columns["InstanceNumber"]["DATA_TYPE"],
    ) == numeric[instance]
    # a column pattern narrows the listing
    assert [
        r["COLUMN_NAME"] for r in _rows(meta.getColumns(None, None, "demo_images", "Patient_D"))
    ] == ["PatientID"]


def test_metadata_functions_carry_their_description(connection):
    meta = connection.jconn.getMetaData()
    functions = {r["FUNCTION_NAME"]: r for r in _rows(meta.getFunctions(None, None, "dicom%"))}
    assert {"dicom_tag", "dicom_pixels"} <= set(functions)
    assert all(name.startswith("dicom") for name in functions)
    remarks = functions["dicom_tag"]["REMARKS"]
    assert remarks and remarks == FUNCTIONS["dicom_tag"].description


def test_metadata_schemas_types_and_product(connection, spark):
    meta = connection.jconn.getMetaData()
    types = jpype.JClass("java.sql.Types")
    assert "default" in {r["TABLE_SCHEM"] for r in _rows(meta.getSchemas())}
    type_info = {r["TYPE_NAME"]: r["DATA_TYPE"] for r in _rows(meta.getTypeInfo())}
    assert type_info["STRING"] == types.VARCHAR and type_info["DECIMAL"] == types.DECIMAL
    assert type_info["TIMESTAMP"] == types.TIMESTAMP and type_info["BIGINT"] == types.BIGINT
    assert str(meta.getDatabaseProductName()) == "Spark SQL"
    assert str(meta.getDatabaseProductVersion()) == spark.version


# --- values -----------------------------------------------------------------------------------

#: (SQL type, a non-NULL literal of it, what JayDeBeApi returns for it, JDBC type name, java.sql.Types field)
TYPED_VALUES = [
    ("BOOLEAN", "true", True, "boolean", "BOOLEAN"),
    ("TINYINT", "CAST(-7 AS TINYINT)", -7, "tinyint", "TINYINT"),
    ("SMALLINT", "CAST(-300 AS SMALLINT)", -300, "smallint", "SMALLINT"),
    ("INT", "2147483647", 2147483647, "int", "INTEGER"),
    ("BIGINT", "9007199254740993L", 9007199254740993, "bigint", "BIGINT"),  # not a double
    ("FLOAT", "CAST(1.5 AS FLOAT)", 1.5, "float", "FLOAT"),
    ("DOUBLE", "0.1D", 0.1, "double", "DOUBLE"),
    ("STRING", "'héllo, wörld'", "héllo, wörld", "string", "VARCHAR"),
    (
        "DECIMAL(10,2)",
        "CAST(-12.34 AS DECIMAL(10,2))",
        -12.34,
        "decimal",
        "DECIMAL",
    ),  # JayDeBeApi: float
    ("DATE", "DATE '2024-02-29'", "2024-02-29", "date", "DATE"),
    (
        "TIMESTAMP",
        "TIMESTAMP '2024-02-29 13:45:01.123456'",
        "2024-02-29 13:45:01.123456",
        "timestamp",
        "TIMESTAMP",
    ),
    ("BINARY", "X'00FF61'", None, "binary", "BINARY"),  # checked as bytes below
    ("ARRAY<INT>", "array(1, NULL, 3)", "[1,null,3]", "array", "ARRAY"),  # JSON text
    ("MAP<STRING,INT>", "map('k', 1)", '{"k":1}', "map", "JAVA_OBJECT"),
    ("STRUCT<a:INT>", "named_struct('a', 5)", '{"a":5}', "struct", "STRUCT"),
]
TYPED_QUERY = (
    "SELECT * FROM ("
    + "SELECT 0 AS row_no, "
    + ", ".join(f"CAST(NULL AS {t}) AS c{i}" for i, (t, *_rest) in enumerate(TYPED_VALUES))
    + " UNION ALL SELECT 1, "
    + ", ".join(literal for _t, literal, *_rest in TYPED_VALUES)
    + ") ORDER BY row_no"
)


@pytest.mark.filterwarnings(
    "ignore:No type mapping for JDBC type:UserWarning"
)  # ARRAY, MAP, STRUCT
def test_nulls_and_values_of_every_type(cursor):
    cursor.execute(TYPED_QUERY)
    nulls, values = cursor.fetchall()
    assert nulls == (0,) + (None,) * len(TYPED_VALUES)
    assert values[0] == 1
    for (sql_type, _literal, expected, *_rest), got in zip(TYPED_VALUES, values[1:]):
        if expected is not None:
            assert got == expected, sql_type
    # DB-API type codes JayDeBeApi derives from the JDBC types
    codes = [d[1] for d in cursor.description[1:]]
    assert codes[:5] == [jaydebeapi.NUMBER] * 5
    assert codes[5:7] == [jaydebeapi.FLOAT] * 2
    assert (codes[7], codes[8], codes[9], codes[10], codes[11]) == (
        jaydebeapi.STRING,
        jaydebeapi.DECIMAL,
        jaydebeapi.DATE,
        jaydebeapi.DATETIME,
        jaydebeapi.BINARY,
    )


def test_result_set_metadata_and_raw_values_of_every_type(connection):
    types = jpype.JClass("java.sql.Types")
    result = _query(connection, TYPED_QUERY)
    try:
        meta = result.getMetaData()
        assert meta.getColumnCount() == len(TYPED_VALUES) + 1
        names = [str(meta.getColumnTypeName(i)) for i in range(2, meta.getColumnCount() + 1)]
        assert names == [jdbc_name for *_rest, jdbc_name, _field in TYPED_VALUES]
        codes = [meta.getColumnType(i) for i in range(2, meta.getColumnCount() + 1)]
        assert codes == [getattr(types, field) for *_rest, field in TYPED_VALUES]
        assert (meta.getPrecision(10), meta.getScale(10)) == (10, 2)  # DECIMAL(10,2)

        assert result.next() and result.getInt(1) == 0
        for i in range(2, len(TYPED_VALUES) + 2):
            assert result.getObject(i) is None and result.wasNull(), TYPED_VALUES[i - 2][0]
        assert result.getBigDecimal(10) is None and result.getTimestamp(12) is None

        assert result.next() and result.getInt(1) == 1
        assert (
            result.getBoolean(2) is True and result.getByte(3) == -7 and result.getShort(4) == -300
        )
        assert result.getLong(6) == 9007199254740993 and result.getFloat(7) == 1.5
        assert str(result.getBigDecimal(10).toPlainString()) == "-12.34"
        assert bytes(result.getObject(13)) == b"\x00\xffa"  # the driver has no getBytes
        assert not result.next()
    finally:
        result.close()


def test_decimal_and_timestamp_keep_precision(connection, cursor):
    result = _query(
        connection,
        "SELECT CAST('12345678.90' AS DECIMAL(12,2)) AS d, TIMESTAMP '2024-02-29 13:45:01.123456' AS ts, "
        "DATE '2024-02-29' AS dt, CAST('12345678901234567890123456.0123456789' AS DECIMAL(38,10)) AS wide, "
        "TIMESTAMP '1999-12-31 23:59:59.000001' AS micro",
    )
    try:
        meta = result.getMetaData()
        assert (meta.getPrecision(1), meta.getScale(1)) == (12, 2)
        assert (meta.getPrecision(4), meta.getScale(4)) == (38, 10)
        assert result.next()
        amount = result.getBigDecimal(1)
        assert (str(amount.toPlainString()), amount.scale()) == ("12345678.90", 2)
        wide = result.getBigDecimal(4)
        assert (str(wide.toPlainString()), wide.scale()) == (
            "12345678901234567890123456.0123456789",
            10,
        )
        stamp = result.getTimestamp(2)
        assert (
            str(stamp.toString()) == "2024-02-29 13:45:01.123456"
            and stamp.getNanos() == 123_456_000
        )
        assert result.getTimestamp(5).getNanos() == 1_000
        assert str(result.getDate(3).toString()) == "2024-02-29"
        assert not result.next()
    finally:
        result.close()
    # the same through JayDeBeApi (which turns DECIMAL into float, TIMESTAMP and DATE into text)
    cursor.execute(
        "SELECT CAST('12345678.90' AS DECIMAL(12,2)), TIMESTAMP '2024-02-29 13:45:01.123456', DATE '2024-02-29'"
    )
    assert cursor.fetchall() == [(12345678.90, "2024-02-29 13:45:01.123456", "2024-02-29")]


# --- errors -----------------------------------------------------------------------------------


def _check_function_error(message: str) -> None:
    assert "dicom_tag: argument key must be" in message and "'PatientAgee'" in message
    for leak in ("Traceback", "/udfs/", ".py"):
        assert leak not in message, message


MISSPELT = "SELECT dicom_tag(meta, 'PatientAgee') FROM demo_images"


def test_function_errors_reach_jdbc_concise(connection, cursor):
    with pytest.raises(jaydebeapi.DatabaseError) as raised:
        cursor.execute(MISSPELT)
    _check_function_error(str(raised.value))
    # the raw driver's SQLException, on a plain Statement
    sql_exception = jpype.JClass("java.sql.SQLException")
    with pytest.raises(sql_exception) as raised:
        _query(connection, MISSPELT)
    _check_function_error(str(raised.value.getMessage()))
    # the connection is still usable
    cursor.execute("SELECT count(*) FROM demo_patients")
    assert cursor.fetchall() == [(DEMO_PATIENTS,)]

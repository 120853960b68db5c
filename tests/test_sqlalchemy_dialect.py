"""The ``dicomsql://`` SQLAlchemy dialect: parsing of Spark's catalogue output (pure) and,
marked ``server``, inspection, reflection and queries against the real Thrift server."""

from __future__ import annotations

import datetime

import pytest
from sqlalchemy import MetaData, Table, create_engine, exc, inspect, select, text, types
from sqlalchemy.dialects import registry

from dicomsql.sqlalchemy import (
    DicomsqlDialect,
    SparkDate,
    SparkType,
    column_type,
    describe_columns,
    relation_names,
    schema_names,
)

from .conftest import DEMO_PATIENTS

DEMO_VIEWS = {"demo_images", "demo_patients", "demo_devices", "demo_reads"}


# --- parsing Spark's output -------------------------------------------------------------


@pytest.mark.parametrize(
    "spark_type, expected",
    [
        ("string", types.String),
        ("varchar(64)", types.String),
        ("char(2)", types.String),
        ("string collate UTF8_LCASE", types.String),
        ("tinyint", types.SmallInteger),
        ("smallint", types.SmallInteger),
        ("int", types.Integer),
        ("bigint", types.BigInteger),
        ("float", types.Float),
        ("double", types.Double),
        ("boolean", types.Boolean),
        ("binary", types.LargeBinary),
        ("date", SparkDate),
        ("timestamp", types.DateTime),
        ("timestamp_ntz", types.DateTime),
        ("DOUBLE", types.Double),
    ],
)
def test_scalar_types(spark_type, expected):
    assert type(column_type(spark_type)) is expected


def test_decimal_keeps_precision_and_scale():
    decimal = column_type("decimal(12, 3)")
    assert isinstance(decimal, types.Numeric) and (decimal.precision, decimal.scale) == (12, 3)


@pytest.mark.parametrize(
    "spark_type",
    [
        "array<double>",
        "map<string,array<bigint>>",
        "struct<covariates:array<string>,coef:array<double>,strata:map<string,struct<a:int,b:double>>>",
        "interval day to second",
        "variant",
        "time(6)",
    ],
)
def test_types_without_equivalent_keep_spark_spelling(spark_type):
    reflected = column_type(spark_type)
    assert isinstance(reflected, SparkType)
    assert reflected.compile(dialect=DicomsqlDialect()) == spark_type
    assert reflected.python_type is str


def test_spark_dates_arrive_as_text_and_are_read_as_dates():
    process = SparkDate().result_processor(DicomsqlDialect(), None)
    assert process("2019-03-07") == datetime.date(2019, 3, 7)
    assert process(None) is None


def test_describe_rows_stop_before_partition_and_detail_sections():
    rows = [
        ("path", "string", None),
        ("PixelSpacing", "array<double>", None),
        ("model", "struct<coef:array<double>,names:map<string,int>>", "a fitted model"),
        ("site", "string", None),
        ("# Partition Information", "", ""),
        ("# col_name", "data_type", "comment"),
        ("site", "string", None),
        ("", "", ""),
        ("# Detailed Table Information", "", ""),
        ("Type", "MANAGED", ""),
    ]
    columns = describe_columns(rows)
    assert [c["name"] for c in columns] == ["path", "PixelSpacing", "model", "site"]
    assert columns[2]["comment"] == "a fitted model" and columns[0]["comment"] is None
    assert columns[1]["type"].spark_type == "array<double>"
    assert all(c["nullable"] and c["default"] is None for c in columns)


def test_describe_rows_stop_at_a_blank_row():
    assert [
        c["name"] for c in describe_columns([("a", "int", ""), ("", "", ""), ("Owner", "root", "")])
    ] == ["a"]


SHOW_TABLES = [
    ("default", "ct_series", False),
    ("default", "demo_images", False),  # a table shadowed by the temporary view of the same name
    ("", "demo_images__files", True),
    ("", "demo_images", True),
]


def test_relation_names_of_the_current_database_include_temporary_views():
    assert relation_names(SHOW_TABLES, None) == ["ct_series", "demo_images", "demo_images__files"]


def test_relation_names_of_the_session_schema_are_the_temporary_views():
    assert relation_names(SHOW_TABLES, "session") == ["demo_images__files", "demo_images"]


def test_relation_names_of_a_database_leave_out_temporary_views():
    assert relation_names(SHOW_TABLES, "default") == ["ct_series", "demo_images"]
    global_temp = [("global_temp", "shared", True), ("", "demo_images", True)]
    assert relation_names(global_temp, "global_temp") == ["shared"]


def test_schema_names_end_with_the_session_schema():
    assert schema_names([("default",), ("clinic",)]) == ["default", "clinic", "session"]
    assert schema_names([("session",), ("default",)]) == ["session", "default"]


# --- the dialect over a fake connection ---------------------------------------------------


@pytest.mark.parametrize("name", ["dicomsql", "dicomsql.pyhive"])
def test_dialect_is_registered_by_entry_point(name):
    assert registry.load(name) is DicomsqlDialect


# --- against the real Thrift server (Spark) -----------------------------------------------


@pytest.fixture(scope="module")
def engine(thrift_server):
    engine = create_engine(f"dicomsql://{thrift_server.host}:{thrift_server.port}/default")
    yield engine
    engine.dispose()


@pytest.mark.server
def test_server_inspection_lists_the_demo_views(engine):
    inspector = inspect(engine)
    assert DEMO_VIEWS <= set(inspector.get_table_names())
    assert DEMO_VIEWS <= set(inspector.get_table_names(schema="session"))
    assert DEMO_VIEWS <= set(inspector.get_view_names(schema="session"))
    assert not DEMO_VIEWS & set(inspector.get_table_names(schema="default"))
    assert {"default", "session"} <= set(inspector.get_schema_names())
    assert inspector.has_table("demo_patients") and not inspector.has_table("no_such_table")
    assert inspector.get_pk_constraint("demo_images") == {"constrained_columns": [], "name": None}
    assert (
        inspector.get_foreign_keys("demo_images") == []
        and inspector.get_indexes("demo_images") == []
    )


@pytest.mark.server
def test_server_inspection_of_another_database(engine, spark):
    spark.sql("CREATE DATABASE IF NOT EXISTS clinic")
    spark.sql(
        "CREATE TABLE IF NOT EXISTS clinic.visits (PatientID STRING, visited DATE, reasons ARRAY<STRING>) USING parquet"
    )
    try:
        inspector = inspect(engine)
        assert "clinic" in inspector.get_schema_names()
        assert inspector.get_table_names(schema="clinic") == ["visits"]  # no temporary views there
        columns = {c["name"]: c["type"] for c in inspector.get_columns("visits", schema="clinic")}
        assert (
            isinstance(columns["visited"], SparkDate)
            and columns["reasons"].spark_type == "array<string>"
        )
        with pytest.raises(exc.NoSuchTableError, match="`clinic`.`nothing`"):
            inspector.get_columns("nothing", schema="clinic")
    finally:
        spark.sql("DROP DATABASE clinic CASCADE")


@pytest.mark.server
def test_server_columns_are_typed(engine):
    inspector = inspect(engine)
    patients = {
        c["name"]: c["type"] for c in inspector.get_columns("demo_patients", schema="session")
    }
    assert isinstance(patients["PatientID"], types.String)
    assert isinstance(patients["age"], types.Double) and isinstance(patients["died"], types.Integer)
    images = {c["name"]: c["type"] for c in inspector.get_columns("demo_images")}
    assert isinstance(images["Rows"], types.BigInteger) and isinstance(
        images["StudyDate"], SparkDate
    )
    assert isinstance(images["modificationTime"], types.DateTime)
    assert images["PixelSpacing"].spark_type == "array<double>"
    assert images["_warnings"].spark_type == "array<string>"
    with pytest.raises(exc.NoSuchTableError):
        inspector.get_columns("no_such_table")


@pytest.mark.server
def test_server_reflected_session_view_returns_typed_rows(engine):
    """The query a BI tool builds from the ``session`` schema reaches the temporary view."""
    patients = Table("demo_patients", MetaData(), schema="session", autoload_with=engine)
    images = Table("demo_images", MetaData(), schema="session", autoload_with=engine)
    with engine.connect() as connection:
        rows = connection.execute(
            select(patients.c.PatientID, patients.c.age).order_by(patients.c.PatientID)
        ).fetchall()
        dates = connection.execute(
            select(images.c.StudyDate).where(images.c.StudyDate.is_not(None)).limit(1)
        ).scalar()
    assert [r.PatientID for r in rows] == [f"DEMO-{i + 1:04d}" for i in range(DEMO_PATIENTS)]
    assert all(isinstance(r.age, float) for r in rows)
    assert isinstance(dates, datetime.date)


@pytest.mark.server
@pytest.mark.parametrize("scheme", ["dicomsql", "hive"])
def test_server_text_queries_give_the_same_typed_rows_with_either_url(thrift_server, scheme):
    engine = create_engine(f"{scheme}://{thrift_server.host}:{thrift_server.port}/default")
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT PatientID, age, died, months FROM demo_patients ORDER BY PatientID")
        ).fetchall()
    engine.dispose()
    assert len(rows) == DEMO_PATIENTS
    patient_id, age, died, months = rows[0]
    assert (patient_id, type(age), type(died), type(months)) == ("DEMO-0001", float, int, float)

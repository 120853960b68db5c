"""sqlglot tooling of ``dicomsql sql``: splitting scripts, binding --var values, translating
dialects, and the CSV / JSON Lines output. Pure: nothing here starts Spark."""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from dicomsql import cli
from dicomsql.client import QueryResult
from dicomsql.errors import DicomsqlError
from dicomsql.results import FORMATS, format_csv, format_json_lines
from dicomsql.sqltools import DIALECTS, Statement, parse_statement, split_statements, to_spark

ROOT = Path(__file__).resolve().parents[1]


def texts(script: str, dialect: str = "spark") -> list[str]:
    return [statement.text for statement in split_statements(script, dialect)]


def spark_sql(text: str, dialect: str = "spark", **variables: str) -> str:
    return to_spark(Statement(text, 1), variables, dialect).text


# Splitting ---------------------------------------------------------------------------------


def test_semicolons_in_strings_quoted_names_and_comments_do_not_split():
    script = """
    SELECT 'a;b', "c;d", `e;f` FROM t; -- a comment; with a semicolon
    /* a block comment;
       over lines; */
    SELECT 'it\\'s;' AS x;;
    """
    assert texts(script) == ["SELECT 'a;b', \"c;d\", `e;f` FROM t", "SELECT 'it\\'s;' AS x"]


def test_statements_keep_their_first_line_and_drop_comments_around_them():
    script = "SELECT 1;\n\n-- about the next one\nSELECT\n  2 -- inline\n;\n/* only a comment */"
    assert split_statements(script) == [Statement("SELECT 1", 1), Statement("SELECT\n  2", 4)]
    assert split_statements("-- nothing to run\n") == []


SCRIPT_BLOCK = """\
count_up: BEGIN
  DECLARE n INT DEFAULT 0;
  WHILE n < 3 DO
    SET n = n + 1;
    IF n = 2 THEN
      SELECT CASE WHEN n > 1 THEN 'big' ELSE 'small' END AS size;
    ELSEIF n = 3 THEN
      BEGIN
        SELECT 'nested';
      END;
    END IF;
  END WHILE count_up;
  CASE n WHEN 3 THEN SELECT 'three'; ELSE SELECT 'other'; END CASE;
  REPEAT SET n = n - 1; UNTIL n = 0 END REPEAT;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN SELECT 'failed'; END;
END count_up"""


def test_sql_scripting_blocks_are_one_statement():
    script = f"SELECT 'before';\n{SCRIPT_BLOCK};\nSELECT 'after'; BEGIN SELECT 1; END"
    assert split_statements(script) == [
        Statement("SELECT 'before'", 1),
        Statement(SCRIPT_BLOCK, 2),
        Statement("SELECT 'after'", 18),
        Statement("BEGIN SELECT 1; END", 18),
    ]


def test_begin_and_end_as_column_names_outside_blocks_do_not_open_one():
    assert texts("SELECT begin, `end` FROM spans; SELECT end FROM spans; SELECT 2") == [
        "SELECT begin, `end` FROM spans", "SELECT end FROM spans", "SELECT 2",
    ]


def test_transactions_of_other_dialects_are_not_blocks():
    assert texts("BEGIN; SELECT 1; COMMIT", "postgres") == ["BEGIN", "SELECT 1", "COMMIT"]
    assert texts("BEGIN TRANSACTION; SELECT 1", "postgres") == ["BEGIN TRANSACTION", "SELECT 1"]


def test_splitting_reads_the_source_dialect():
    # postgres dollar-quoted strings and mysql '#' comments hide semicolons
    assert texts("SELECT $$a;b$$; SELECT 2", "postgres") == ["SELECT $$a;b$$", "SELECT 2"]
    assert texts("SELECT 1 # not; a statement\n; SELECT 2", "mysql") == ["SELECT 1", "SELECT 2"]


def test_bad_sql_text_and_unknown_dialects_are_clear_errors():
    with pytest.raises(DicomsqlError, match="cannot split the SQL into statements"):
        split_statements("SELECT 'unterminated")
    with pytest.raises(DicomsqlError, match="unknown SQL dialect 'oracle': expected one of spark, postgres"):
        split_statements("SELECT 1", "oracle")


# Binding -----------------------------------------------------------------------------------


def test_values_bind_as_literals_and_names_as_quoted_identifiers():
    statement = "SELECT * FROM ${table} WHERE PatientID = ${patient} AND SliceThickness < :thickness LIMIT ${n}"
    bound = spark_sql(statement, table="ct", patient="P 01", thickness="2.5", n="10")
    assert bound == "SELECT * FROM `ct` WHERE PatientID = 'P 01' AND SliceThickness < 2.5 LIMIT 10"


def test_numbers_with_leading_zeros_or_exponents_stay_strings():
    assert spark_sql("SELECT ${a}, ${b}, ${c}, ${d}", a="-3", b="007", c="1e5", d="") == "SELECT -3, '007', '1e5', ''"


def test_dotted_table_names_and_other_name_positions():
    assert spark_sql("SELECT * FROM ${t}", t="warehouse.ct") == "SELECT * FROM `warehouse`.`ct`"
    assert spark_sql("SELECT * FROM ${t}", t="spark_catalog.warehouse.ct") == "SELECT * FROM `spark_catalog`.`warehouse`.`ct`"
    assert spark_sql("SELECT * FROM dicom.${t}", t="ct") == "SELECT * FROM dicom.`ct`"
    bound = spark_sql("SELECT i.${column} AS ${alias} FROM images AS ${i}", column="PatientID", alias="id", i="i")
    assert bound == "SELECT i.`PatientID` AS `id` FROM images AS `i`"
    assert spark_sql("INSERT INTO ${t} VALUES (:v)", t="notes", v="ok") == "INSERT INTO `notes` VALUES ('ok')"


@pytest.mark.parametrize("attack", ["x'; DROP TABLE ct; --", "a') OR ('1'='1", "1 OR 1=1", "${other}", "`ct`"])
def test_injection_attempts_become_one_string_literal(attack):
    tree = parse_statement(Statement(spark_sql("SELECT * FROM ct WHERE PatientID = ${id}", id=attack), 1))
    where = tree.args["where"].this
    assert where.expression.is_string and where.expression.this == attack
    assert len(list(tree.find_all(type(where)))) == 1  # still one comparison, nothing else added


@pytest.mark.parametrize("value", ["ct; DROP TABLE ct", "a) OR (1=1", "ct`", "a.b.c.d", "a..b", ""])
def test_a_name_placeholder_refuses_what_is_not_a_plain_name(value):
    with pytest.raises(DicomsqlError, match=r"statement at line 1: \$\{t\} stands for a name, so --var t must be a name or db.table"):
        spark_sql("SELECT * FROM ${t}", t=value)


def test_only_a_whole_table_name_takes_a_dotted_name():
    with pytest.raises(DicomsqlError, match=r"--var t must be a plain name \(letters, digits and _\), got 'a.b'"):
        spark_sql("SELECT * FROM dicom.${t}", t="a.b")
    with pytest.raises(DicomsqlError, match="--var c must be a plain name"):
        spark_sql("SELECT t.${c} FROM t", c="a.b")


def test_an_unbound_placeholder_is_an_error_naming_it_and_the_line():
    statements = split_statements("SELECT 1;\n\nSELECT * FROM ct WHERE PatientID = :patient")
    with pytest.raises(DicomsqlError, match=r"statement at line 3: no value for :patient: give one with --var patient=VALUE"):
        [to_spark(statement, {"unused": "x"}) for statement in statements]


def test_statements_without_placeholders_are_kept_exactly():
    for text in ["select   Modality ,count(*)  from ct group by 1", SCRIPT_BLOCK, "SHOW TABLES", "SELECT '${in_a_string}', `${x}`",
                 "SELECT '${env:HOME}', ${spark.app.name}", "SELECT CAST(s AS STRUCT<a:INT>) FROM t"]:
        assert spark_sql(text, unused="1") == text


def test_placeholders_sqlglot_cannot_parse_are_errors():
    with pytest.raises(DicomsqlError, match=r"statement at line 1: sqlglot cannot parse it as spark: .* at line 1, column 12"):
        spark_sql("BEGIN SELECT ${x}; END", x="1")
    with pytest.raises(DicomsqlError, match="reads it only as an opaque SHOW command"):
        spark_sql("SHOW TABLES IN ${db}", db="dicom")


def test_positional_markers_are_left_to_spark():
    assert spark_sql("SELECT * FROM t WHERE a = :a AND b = ?", a="1") == "SELECT * FROM t WHERE a = 1 AND b = ?"


# Dialects ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "source", "spark"),
    [
        ("postgres", "SELECT a::INT, b ILIKE 'x%' FROM t WHERE c ~ '^1'", "SELECT CAST(a AS INT), b ILIKE 'x%' FROM t WHERE c RLIKE '^1'"),
        ("postgres", "SELECT * FROM generate_series(1, 3)", "SELECT * FROM EXPLODE(SEQUENCE(1, 3))"),
        ("duckdb", "SELECT * EXCLUDE (meta) FROM images", "SELECT * EXCEPT (meta) FROM images"),
        ("duckdb", "SELECT list_value(1, 2), x // 2 FROM t", "SELECT ARRAY(1, 2), x DIV 2 FROM t"),
        ("trino", "SELECT approx_distinct(PatientID) FROM ct", "SELECT APPROX_COUNT_DISTINCT(PatientID) FROM ct"),
        ("bigquery", "SELECT SAFE_CAST(x AS INT64) FROM `proj.ds.t`", "SELECT TRY_CAST(x AS BIGINT) FROM `proj`.`ds`.`t`"),
        ("snowflake", "SELECT IFF(a > 1, 'x', 'y') FROM t SAMPLE (10)", "SELECT IF(a > 1, 'x', 'y') FROM t TABLESAMPLE (10 PERCENT)"),
        ("mysql", "SELECT IFNULL(a, 0) FROM t LIMIT 2, 5", "SELECT COALESCE(a, 0) FROM t LIMIT 5 OFFSET 2"),
    ],
)
def test_dialects_translate_to_spark(dialect, source, spark):
    assert dialect in DIALECTS
    assert spark_sql(source, dialect) == spark


def test_an_untranslatable_construct_is_an_error_naming_it():
    statements = split_statements("SELECT 1;\nSELECT PatientID FROM ct FOR UPDATE", "postgres")
    with pytest.raises(DicomsqlError, match=r"statement at line 2: sqlglot cannot write it as Spark SQL: .*'FOR UPDATE/SHARE'"):
        [to_spark(statement, {}, "postgres") for statement in statements]


def test_what_a_dialect_cannot_parse_is_an_error_with_its_place():
    with pytest.raises(DicomsqlError, match=r"statement at line 1: sqlglot cannot parse it as trino: .*line 2"):
        spark_sql("SELECT a\nFROM t WHERE (", "trino")
    with pytest.raises(DicomsqlError, match="reads it only as an opaque SHOW command"):
        spark_sql("SHOW search_path", "postgres")


def test_placeholders_bind_in_the_source_dialect_then_translate():
    source = "SELECT a::INT FROM :table WHERE d = :day AND b ILIKE $1"
    assert spark_sql(source, "postgres", table="dicom.ct", day="2024-01-31", **{"1": "x%"}) == (
        "SELECT CAST(a AS INT) FROM `dicom`.`ct` WHERE d = '2024-01-31' AND b ILIKE 'x%'"
    )
    assert spark_sql("SELECT SAFE_CAST(x AS INT64) FROM t WHERE d = @day", "bigquery", day="2024-01-31") == (
        "SELECT TRY_CAST(x AS BIGINT) FROM t WHERE d = '2024-01-31'"
    )
    # ${name} is Spark's syntax: other dialects do not read it as a placeholder
    with pytest.raises(DicomsqlError, match="sqlglot cannot parse it as postgres"):
        spark_sql("SELECT * FROM ${t}", "postgres", t="ct")


# Output formats ----------------------------------------------------------------------------

ROWS = [
    (1, "Ünïcode, \"quoted\"", None, ["a", "b"], {"k": 1.5}, datetime.date(2024, 1, 31), Decimal("2.50"), b"\x00\x01"),
    (2, "line\nbreak", 3.0, [], {}, None, None, None),
]
COLUMNS = ["id", "name", "dose", "tags", "stats", "day", "price", "raw"]


def test_csv_has_a_header_empty_nulls_and_json_for_nested_values():
    text = format_csv(COLUMNS, ROWS)
    assert list(csv.reader(io.StringIO(text))) == [
        COLUMNS,
        ["1", "Ünïcode, \"quoted\"", "", '["a", "b"]', '{"k": 1.5}', "2024-01-31", "2.50", "<2 bytes>"],
        ["2", "line\nbreak", "3.0", "[]", "{}", "", "", ""],
    ]
    assert format_csv(["a"], []) == "a\n"


def test_json_lines_has_one_object_per_row_with_nested_structures():
    lines = format_json_lines(COLUMNS, ROWS).splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": 1, "name": "Ünïcode, \"quoted\"", "dose": None, "tags": ["a", "b"], "stats": {"k": 1.5},
         "day": "2024-01-31", "price": "2.50", "raw": "<2 bytes>"},
        {"id": 2, "name": "line\nbreak", "dose": 3.0, "tags": [], "stats": {}, "day": None, "price": None, "raw": None},
    ]
    assert "Ünïcode" in lines[0]  # UTF-8 as is
    assert format_json_lines(["a"], []) == ""


def _args(**given) -> argparse.Namespace:
    defaults = {"format": "table", "max_rows": 1000, "no_truncate": False}
    return argparse.Namespace(**{**defaults, **given})


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_machine_formats_print_only_rows_on_stdout(name, capsys):
    cli._print_result(_args(format=name, max_rows=1), QueryResult(["a"], [(1,), (2,)]))
    out, err = capsys.readouterr()
    assert out == FORMATS[name](["a"], [(1,)])
    assert "only the first 1 rows written: raise --max-rows" in err


def test_the_table_format_counts_rows(capsys):
    cli._print_result(_args(max_rows=1), QueryResult(["a"], [(1,), (2,)]))
    out, _ = capsys.readouterr()
    assert out.endswith("| 1 |\n+---+\n1 row(s) (more not shown: raise --max-rows)\n")


# The command, without Spark ----------------------------------------------------------------


@pytest.fixture
def no_spark(monkeypatch):
    """Fail the test if the command would start Spark or connect to a server."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("--transpile-only must not start Spark or connect")

    monkeypatch.setattr(cli, "_client", refuse)


def test_transpile_only_prints_the_spark_sql_without_running_it(no_spark, capsys):
    script = "SELECT a::INT FROM :table; -- done\nSELECT 'x;y' WHERE 1 = :one"
    status = cli.main(["sql", "--dialect", "postgres", "--var", "table=dicom.ct", "--var", "one=1", "--transpile-only", "-e", script])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert out == "SELECT CAST(a AS INT) FROM `dicom`.`ct`;\nSELECT 'x;y' WHERE 1 = 1;\n"


def test_transpile_only_keeps_spark_statements_and_blocks_as_written(no_spark, capsys, tmp_path):
    script = tmp_path / "script.sql"
    script.write_text(f"select  1 ;\n{SCRIPT_BLOCK};\n", encoding="utf-8")
    assert cli.main(["sql", "--transpile-only", "-f", str(script)]) == 0
    assert capsys.readouterr().out == f"select  1;\n{SCRIPT_BLOCK};\n"


def test_binding_errors_stop_the_command_before_it_runs_anything(no_spark, capsys):
    status = cli.main(["sql", "-e", "SELECT 1;\nSELECT * FROM ${t}", "--var", "t=a; DROP TABLE b"])
    err = capsys.readouterr().err
    assert status == 2
    assert "dicomsql sql: error: statement at line 2: ${t} stands for a name, so --var t must be" in err
    status = cli.main(["sql", "--dialect", "mysql", "-e", "SELECT a FROM t FOR UPDATE"])
    assert status == 2 and "sqlglot cannot write it as Spark SQL" in capsys.readouterr().err


# The repository's SQL files ----------------------------------------------------------------

# sqlglot (30.x) does not parse Spark SQL scripting (BEGIN ... END blocks with DECLARE, WHILE,
# IF ...), which Spark runs as one statement; such blocks are checked by Spark-backed tests.
_SCRIPT_BLOCK = re.compile(r"(\w+\s*:\s*)?BEGIN\b", re.IGNORECASE)


def test_every_sql_file_of_the_repository_parses_with_the_spark_dialect():
    assert (ROOT / "pyproject.toml").is_file()  # the glob below runs at the repository root
    files = sorted(ROOT.glob("sql/**/*.sql"))
    assert ROOT / "sql" / "bootstrap.sql" in files and len(list((ROOT / "sql" / "examples").glob("*.sql"))) == 8
    problems = []
    for path in files:
        statements = split_statements(path.read_text(encoding="utf-8"))
        if not statements:
            problems.append(f"{path.relative_to(ROOT)}: no statement")
        for statement in statements:
            if _SCRIPT_BLOCK.match(statement.text):
                continue
            try:
                parse_statement(statement)
            except DicomsqlError as exc:
                problems.append(f"{path.relative_to(ROOT)}: {exc}")
    assert problems == []

"""sqlglot tooling of ``dicomsql sql``: splitting scripts, binding --var values, translating
dialects, and the CSV / JSON Lines output. Pure: nothing here starts Spark."""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from dicomsql import cli
from dicomsql.client import QueryResult
from dicomsql.errors import DicomsqlError
from dicomsql.results import FORMATS, format_csv, format_json_lines
from dicomsql.sqltools import DIALECTS, Statement, parse_statement, split_statements, to_spark

ROOT = Path(__file__).resolve().parents[1]


def spark_sql(text: str, dialect: str = "spark", **variables: str) -> str:
    return to_spark(Statement(text, 1), variables, dialect).text


# Golden cases (tests/fixtures/*.sql, format in tests/fixtures/README.md) ----------------------

FIXTURES = Path(__file__).parent / "fixtures"
_META = re.compile(r"# (title|dialect|error): ?(.*)")
_VAR = re.compile(r"# var ([^=]+)=(.*)")
_STATEMENT_AT = re.compile(r"# statement at line (\d+)")


@dataclass(frozen=True)
class Case:
    """One golden case: its file and title, the dialect and vars, the input text, and the
    expected text (statements with their lines for split.sql) or error message."""

    file: str
    title: str
    dialect: str
    variables: dict
    input: str
    expected: tuple
    error: str | None


def _text(lines: list[str]) -> str:
    return "\n".join(lines).strip("\n")


def _statements(lines: list[str]) -> tuple:
    """``(line, text)`` pairs of an expected list of statements."""
    found, current = [], None
    for line in lines:
        marker = _STATEMENT_AT.fullmatch(line)
        if marker:
            current = [int(marker.group(1)), []]
            found.append(current)
        elif current is not None:
            current[1].append(line)
        elif line.strip():
            raise ValueError(f"text before '# statement at line N': {line!r}")
    return tuple((number, _text(text)) for number, text in found)


def _case(file: str, lines: list[str]) -> Case:
    fields, variables, body = {"dialect": "spark", "error": None}, {}, []
    for line in lines:
        meta, var = _META.fullmatch(line), _VAR.fullmatch(line)
        if var:
            variables[var.group(1)] = var.group(2)
        elif meta:
            fields[meta.group(1)] = meta.group(2)
        else:
            body.append(line)
    arrow = body.index("# =>")
    source, expected = body[:arrow], body[arrow + 1 :]
    if file == "split.sql":
        return Case(
            file,
            fields["title"],
            fields["dialect"],
            variables,
            _text(source),
            _statements(expected),
            fields["error"],
        )
    return Case(
        file,
        fields["title"],
        fields["dialect"],
        variables,
        _text(source).removesuffix(";"),
        ((1, _text(expected).removesuffix(";")),) if expected and not fields["error"] else (),
        fields["error"],
    )


def load_cases(path: Path) -> list[Case]:
    """The cases of one fixture file: each starts at a ``# title:`` line."""
    cases, lines = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# title:"):
            lines = []
            cases.append(lines)
        if lines is None:
            raise ValueError(f"{path.name}: text before the first '# title:' line: {line!r}")
        lines.append(line)
    return [_case(path.name, case) for case in cases]


CASES = [case for path in sorted(FIXTURES.glob("*.sql")) for case in load_cases(path)]


def test_every_fixture_file_has_cases():
    assert {case.file for case in CASES} == {"split.sql", "bind.sql", "dialects.sql"}
    assert len({(case.file, case.title) for case in CASES}) == len(CASES), (
        "titles are test ids: one per case"
    )


def _outcome(case: Case) -> tuple:
    """What dicomsql makes of ``case.input``, as ``(line, text)`` pairs."""
    if case.file == "split.sql":
        return tuple(
            (statement.line, statement.text)
            for statement in split_statements(case.input, case.dialect)
        )
    return ((1, to_spark(Statement(case.input, 1), case.variables, case.dialect).text),)


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case.file}: {case.title}")
def test_golden_case(case):
    assert case.dialect in DIALECTS
    if case.error is None:
        assert _outcome(case) == case.expected
    else:
        with pytest.raises(DicomsqlError) as raised:
            _outcome(case)
        assert str(raised.value) == case.error


# Splitting (more in tests/fixtures/split.sql) ----------------------------------------------

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


def test_bad_sql_text_and_unknown_dialects_are_clear_errors():
    with pytest.raises(DicomsqlError, match="cannot split the SQL into statements"):
        split_statements("SELECT 'unterminated")
    with pytest.raises(
        DicomsqlError, match="unknown SQL dialect 'oracle': expected one of spark, postgres"
    ):
        split_statements("SELECT 1", "oracle")


# Binding (more in tests/fixtures/bind.sql; dialects in tests/fixtures/dialects.sql) ----------


@pytest.mark.parametrize(
    "attack", ["x'; DROP TABLE ct; --", "a') OR ('1'='1", "1 OR 1=1", "${other}", "`ct`"]
)
def test_injection_attempts_become_one_string_literal(attack):
    tree = parse_statement(
        Statement(spark_sql("SELECT * FROM ct WHERE PatientID = ${id}", id=attack), 1)
    )
    where = tree.args["where"].this
    assert where.expression.is_string and where.expression.this == attack
    assert len(list(tree.find_all(type(where)))) == 1  # still one comparison, nothing else added


def test_an_unbound_placeholder_is_an_error_naming_it_and_the_line():
    statements = split_statements("SELECT 1;\n\nSELECT * FROM ct WHERE PatientID = :patient")
    with pytest.raises(
        DicomsqlError,
        match=r"statement at line 3: no value for :patient: give one with --var patient=VALUE",
    ):
        [to_spark(statement, {"unused": "x"}) for statement in statements]


# Output formats ----------------------------------------------------------------------------

ROWS = [
    (
        1,
        'Ünïcode, "quoted"',
        None,
        ["a", "b"],
        {"k": 1.5},
        datetime.date(2024, 1, 31),
        Decimal("2.50"),
        b"\x00\x01",
    ),
    (2, "line\nbreak", 3.0, [], {}, None, None, None),
]
COLUMNS = ["id", "name", "dose", "tags", "stats", "day", "price", "raw"]


def test_csv_has_a_header_empty_nulls_and_json_for_nested_values():
    text = format_csv(COLUMNS, ROWS)
    assert list(csv.reader(io.StringIO(text))) == [
        COLUMNS,
        [
            "1",
            'Ünïcode, "quoted"',
            "",
            '["a", "b"]',
            '{"k": 1.5}',
            "2024-01-31",
            "2.50",
            "<2 bytes>",
        ],
        ["2", "line\nbreak", "3.0", "[]", "{}", "", "", ""],
    ]
    assert format_csv(["a"], []) == "a\n"


def test_json_lines_has_one_object_per_row_with_nested_structures():
    lines = format_json_lines(COLUMNS, ROWS).splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "id": 1,
            "name": 'Ünïcode, "quoted"',
            "dose": None,
            "tags": ["a", "b"],
            "stats": {"k": 1.5},
            "day": "2024-01-31",
            "price": "2.50",
            "raw": "<2 bytes>",
        },
        {
            "id": 2,
            "name": "line\nbreak",
            "dose": 3.0,
            "tags": [],
            "stats": {},
            "day": None,
            "price": None,
            "raw": None,
        },
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
    status = cli.main(
        [
            "sql",
            "--dialect",
            "postgres",
            "--var",
            "table=dicom.ct",
            "--var",
            "one=1",
            "--transpile-only",
            "-e",
            script,
        ]
    )
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
    assert (
        "dicomsql sql: error: statement at line 2: ${t} stands for a name, so --var t must be"
        in err
    )
    status = cli.main(["sql", "--dialect", "mysql", "-e", "SELECT a FROM t FOR UPDATE"])
    assert status == 2 and "sqlglot cannot write it as Spark SQL" in capsys.readouterr().err


# The repository's SQL files ----------------------------------------------------------------

# sqlglot (30.x) does not parse Spark SQL scripting (BEGIN ... END blocks with DECLARE, WHILE,
# IF ...), which Spark runs as one statement; such blocks are checked by Spark-backed tests.
_SCRIPT_BLOCK = re.compile(r"(\w+\s*:\s*)?BEGIN\b", re.IGNORECASE)


def test_every_sql_file_of_the_repository_parses_with_the_spark_dialect():
    assert (ROOT / "pyproject.toml").is_file()  # the glob below runs at the repository root
    files = sorted(ROOT.glob("sql/**/*.sql"))
    assert (
        ROOT / "sql" / "bootstrap.sql" in files
        and len(list((ROOT / "sql" / "examples").glob("*.sql"))) == 8
    )
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

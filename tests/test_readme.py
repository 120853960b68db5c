"""The README's five-minute tour is real: its commands, run on the default demo cohort (with
sql/bootstrap.sql run first, as ``make serve`` does) in one session, give the tables the README
shows (compared cell by cell: the README shows what a server sends, where arrays are JSON text)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from dicomsql.client import EmbeddedClient
from dicomsql.demo import write_demo
from dicomsql.results import format_table
from dicomsql.settings import DEFAULTS
from dicomsql.sqltools import split_statements, to_spark
from dicomsql.views import demo_views_sql

ROOT = Path(__file__).resolve().parents[1]
TOUR = "## A five-minute tour"
_BLOCK = re.compile(r"^```\n(.*?)^```", re.S | re.M)


@dataclass(frozen=True)
class Command:
    """One command of the tour: its SQL (``-e``, or the ``-f`` file's text) and the last table
    the README shows for it (the lines from its top border to its bottom border)."""

    sql: str
    table: list[str]


def tour_commands(readme: str) -> list[Command]:
    """The ``$ .venv/bin/dicomsql sql ...`` blocks of the tour section of ``readme``."""
    section = readme.split(TOUR, 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in _BLOCK.findall(section):
        if not block.startswith("$ .venv/bin/dicomsql sql "):
            continue
        lines = block.splitlines()
        first_output = next(i for i, line in enumerate(lines) if line.startswith(("+", "...")))
        option, value = shlex.split("\n".join(lines[:first_output])[2:])[2:4]
        sql = value if option == "-e" else (ROOT / value).read_text(encoding="utf-8")
        table_top = next(i for i in range(first_output, len(lines)) if lines[i].startswith("+"))
        commands.append(Command(sql, lines[table_top:]))
    return commands


def _cell(text: str):
    """A table cell's value: JSON text (arrays, structs) parsed, so that spacing does not count."""
    text = text.strip()
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def cells(table: list[str]) -> tuple[list[str], list[list]]:
    """The header and the rows of a boxed text table (:func:`dicomsql.results.format_table`)."""
    header, *rows = [
        [_cell(c) for c in line[1:-1].split(" | ")] for line in table if line.startswith("|")
    ]
    return header, rows


def last_table(client: EmbeddedClient, script: str, variables: dict[str, str]) -> list[str] | None:
    """Run ``script``'s statements (bound to ``variables``) as ``dicomsql sql`` does; the last
    result printed as ``dicomsql sql`` prints it."""
    table = None
    for statement in split_statements(script):
        result = client.execute(to_spark(statement, variables).text)
        if result.columns:
            table = format_table(result.columns, result.rows).splitlines()
    return table


def test_the_tour_section_has_the_commands_it_shows():
    commands = tour_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(commands) == 5
    assert all(
        command.table[0].startswith("+-") and command.table[-1].startswith("+-")
        for command in commands
    )
    header, rows = cells(commands[0].table)
    assert (
        header == ["Modality", "BodyPartExamined", "patients", "series", "images"]
        and len(rows) == 2
    )


@pytest.fixture
def tour_client(spark, tmp_path):
    """A session of its own (the suite's views untouched: it clones the suite's session and
    replaces the demo views in the clone) over the default demo cohort, with
    sql/bootstrap.sql run; tables the tour creates are dropped afterwards."""
    from pyspark.sql import SparkSession

    demo = write_demo(tmp_path / "demo", patients=DEFAULTS["demo_patients"])
    session = SparkSession(
        spark.sparkContext, spark._jsparkSession.cloneSession()
    )  # as the server's client sessions
    for statement in demo_views_sql(demo):
        session.sql(statement)
    client = EmbeddedClient(session)
    last_table(
        client,
        (ROOT / "sql" / "bootstrap.sql").read_text(encoding="utf-8"),
        {"images": "demo_images"},
    )
    tables = {t.name for t in spark.catalog.listTables() if not t.isTemporary}
    yield client
    for name in {t.name for t in spark.catalog.listTables() if not t.isTemporary} - tables:
        spark.sql(f"DROP TABLE IF EXISTS `{name}`")


def test_the_five_minute_tour_gives_what_the_readme_shows(tour_client):
    for number, command in enumerate(
        tour_commands((ROOT / "README.md").read_text(encoding="utf-8")), start=1
    ):
        printed = last_table(tour_client, command.sql, {})
        assert printed is not None, f"tour command {number} printed no table"
        assert cells(printed) == cells(command.table), f"tour command {number}"

"""``dicomsql shell`` driven as a user drives it, in a pseudo-terminal (pexpect): multi-line
statements, ``;`` inside strings and scripting blocks, Tab completion, Ctrl-C cancelling a
running query (the Spark job really stops), history kept in the home; through the suite's
Thrift server and embedded."""

from __future__ import annotations

import time

import pexpect
import pytest

from .conftest import DEMO_PATIENTS, dicomsql_command, no_active_jobs

pytestmark = pytest.mark.server

LONG_QUERY = "SELECT count(*) FROM range(0, 50000000000, 1, 2) WHERE id % 7 = 3;"


def spawn(*args: str, env=None) -> pexpect.spawn:
    shell = pexpect.spawn(
        dicomsql_command(),
        ["shell", *args],
        env=env,
        encoding="utf-8",
        timeout=120,
        dimensions=(50, 250),
    )
    shell.expect_exact("dicomsql> ")
    return shell


def test_shell_through_a_server(thrift_server, spark, cli_env, tmp_path):
    shell = spawn("--jdbc", thrift_server.jdbc_url, env=cli_env)
    shell.sendline("SELECT count(*) AS patients")
    shell.expect_exact("       -> ")  # the statement goes on
    shell.sendline("FROM demo_patients;")
    shell.expect(rf"\| {DEMO_PATIENTS} +\|")
    shell.expect(r"1 row\(s\) in \d+\.\d\ds")

    shell.sendline(
        "SELECT 'a;b' AS text, 2 AS two; SELECT 3 AS three;"
    )  # two statements, a ';' in a string
    shell.expect_exact("| a;b  | 2   |")
    shell.expect_exact("| 3     |")

    shell.sendline("BEGIN")
    shell.sendline("  DECLARE n INT DEFAULT 0;")
    shell.sendline("  WHILE n < 3 DO SET n = n + 1; END WHILE;")
    shell.sendline("  SELECT n AS loops;")
    shell.sendline("END;")
    shell.expect_exact("| 3     |")

    shell.send("SELECT count(*) AS n FROM demo_pati\t")  # Tab completes the table name
    shell.expect_exact("demo_patients")
    shell.sendline(" WHERE sex IS NOT NULL;")
    shell.expect(rf"\| {DEMO_PATIENTS} +\|")

    shell.sendline("SELECT dicom_tag(meta, 'NoSuchKeyword') FROM demo_images;")
    shell.expect("Error: .*dicom_tag: argument key")

    shell.sendline("SELECT 'typed but dropped'")
    shell.expect_exact("       -> ")
    shell.sendintr()  # Ctrl-C while typing drops the statement
    shell.expect_exact("dicomsql> ")

    shell.sendline(LONG_QUERY)
    time.sleep(3)
    shell.sendintr()  # Ctrl-C while running cancels the query, and the shell stays
    shell.expect(r"Cancelled after \d+\.\d\ds\.", timeout=60)
    assert no_active_jobs(spark, 30)
    shell.sendline("SELECT 1 AS still_here;")
    shell.expect_exact("| 1          |")

    shell.sendline("quit;")
    shell.expect(pexpect.EOF)
    shell.close()
    assert shell.exitstatus == 0
    history = (tmp_path / "home" / "shell_history").read_text()
    assert "FROM demo_patients;" in history and "SELECT 1 AS still_here;" in history


def test_shell_embedded(cli_env, pydicom_files):
    shell = spawn("--table", f"shipped={pydicom_files}", env=cli_env)
    shell.sendline(
        "SELECT dicom_tag(meta, 'PatientID') AS id FROM shipped WHERE path LIKE '%/CT_small.dcm';"
    )
    shell.expect_exact("| 1CT1 |")
    shell.sendline(LONG_QUERY)
    time.sleep(3)
    shell.sendintr()
    shell.expect(r"Cancelled after \d+\.\d\ds\.", timeout=60)
    shell.sendline("SELECT 2 AS still_here;")
    shell.expect_exact("| 2          |")
    shell.expect_exact(
        "dicomsql> "
    )  # Ctrl-D sent before the prompt reads it may be lost in the terminal's mode change
    shell.sendeof()  # Ctrl-D leaves
    shell.expect(pexpect.EOF)
    shell.close()
    assert shell.exitstatus == 0

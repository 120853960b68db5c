"""dicomsql.app.App, the composition root, without Spark: settings, tables, data roots, the
demo policy (views made through a recording ``execute``), the server's access settings, and
the CLI flags it is built from."""

from __future__ import annotations

import argparse
import os

import pytest

from dicomsql import cli
from dicomsql.app import DEMO_POLICIES, App, read_script
from dicomsql.demo import write_demo
from dicomsql.errors import DicomsqlError, HomeInUseError
from dicomsql.home import Home
from dicomsql.server.auth import NoLogin, PasswordFile
from dicomsql.settings import DEFAULTS
from dicomsql.views import DEMO_VIEWS


def test_settings_default_and_unknown_ones_are_refused(tmp_path):
    app = App({"home": tmp_path, "port": 10001})
    assert app.settings == {**DEFAULTS, "home": tmp_path, "port": 10001}
    assert app.home.path == tmp_path.resolve()
    with pytest.raises(TypeError, match="unknown dicomsql settings: prot"):
        App({"prot": 1})
    with pytest.raises(ValueError, match="demo must be one of write, existing, off"):
        App(demo="always")


def test_tables_are_checked_and_made_absolute(tmp_path, monkeypatch):
    (tmp_path / "ct").mkdir()
    monkeypatch.chdir(tmp_path)
    app = App(tables=[("ct", "ct"), ("remote", "s3://bucket/mr")])
    assert app.tables == [("ct", str(tmp_path / "ct")), ("remote", "s3://bucket/mr")]
    assert App(tables={"ct": "c*"}).tables == [
        ("ct", str(tmp_path / "c*"))
    ]  # a glob that names files
    with pytest.raises(
        DicomsqlError, match=rf"--table mr=nope: {tmp_path / 'nope'} does not exist"
    ):
        App(tables={"mr": "nope"})


def test_read_roots_are_the_given_ones_plus_the_tables_or_the_demo(tmp_path):
    (tmp_path / "ct").mkdir()
    assert App(tables={"ct": tmp_path / "ct"}).read_roots() is None  # reads anywhere
    assert App(tables={"ct": str(tmp_path / "ct")}, data_roots=["/srv/more"]).read_roots() == [
        "/srv/more",
        str(tmp_path / "ct"),
    ]
    served = App({"home": tmp_path}, demo="write", data_roots=[])
    assert served.serves_demo and served.read_roots() == [str(tmp_path.resolve() / "demo")]
    assert App({"home": tmp_path}, data_roots=[]).read_roots() == []  # the demo is off


def test_bootstrap_variables_default_images_to_the_first_table(tmp_path):
    assert App().variables == {"images": "demo_images"}
    assert App(tables={"ct": str(tmp_path)}).variables == {"images": "ct"}
    assert App(tables={"ct": str(tmp_path)}, variables={"images": "mine", "x": "1"}).variables == {
        "images": "mine",
        "x": "1",
    }


def test_a_failing_bootstrap_statement_is_an_error_naming_it(spark, tmp_path):
    broken = tmp_path / "broken.sql"
    broken.write_text(
        "CREATE TEMPORARY VIEW bootstrap_before_failing AS SELECT 1;\n\nSELECT * FROM no_such_table;\n"
    )
    with pytest.raises(
        DicomsqlError, match=r"broken.sql: statement 2 \(line 3\) failed: .*no_such_table"
    ):
        App(bootstrap=broken).run_bootstrap(spark)
    assert (
        spark.sql("SELECT * FROM bootstrap_before_failing").collect()[0][0] == 1
    )  # the statements before it ran


class Recorder(list):
    """An ``execute`` that keeps the statements."""

    def __call__(self, statement: str) -> None:
        self.append(statement)


def test_views_of_the_tables(tmp_path):
    executed = Recorder()
    lines = App(tables={"ct": str(tmp_path)}, demo="write").create_views(executed)
    assert lines == [f"ct             DICOM files under {tmp_path} (live)"]
    assert len(executed) == 2 and executed[1].startswith("CREATE OR REPLACE TEMPORARY VIEW `ct` AS")


@pytest.mark.parametrize("policy", sorted(DEMO_POLICIES))
def test_the_demo_policy_on_a_home_without_a_demo(policy, tmp_path):
    said, executed = [], Recorder()
    app = App({"home": tmp_path, "demo_patients": 1}, demo=policy, say=said.append)
    lines = app.create_views(executed)
    if policy == "write":
        assert said == [
            f"No --table given and no demo yet: writing the demo cohort to {app.home.demo} ..."
        ]
        assert len(list(app.home.demo.rglob("*.dcm"))) == 12  # one patient
        assert [line.split()[0] for line in lines] == list(DEMO_VIEWS)
    else:
        assert said == [] and lines == [] and executed == [] and not app.home.demo.exists()


def test_an_existing_demo_is_served_and_an_older_one_rewritten(tmp_path):
    home = Home(tmp_path)
    write_demo(home.demo, patients=1, size=16)
    executed = Recorder()
    assert len(App({"home": tmp_path}, demo="existing").create_views(executed)) == len(DEMO_VIEWS)
    assert any("demo_images" in statement for statement in executed)
    assert App({"home": tmp_path}, demo="off").create_views(executed) == []

    cohort = home.demo / "cohort.json"
    cohort.write_text(cohort.read_text().replace('"version": 2', '"version": 1'))
    said = []
    App({"home": tmp_path, "demo_patients": 1}, demo="write", say=said.append).create_views(
        Recorder()
    )
    assert said[0] == f"The demo cohort in {home.demo} is from an older dicomsql: rewriting it ..."
    assert '"version": 2' in cohort.read_text()


def test_a_demo_folder_holding_something_else_is_an_error(tmp_path):
    (tmp_path / "demo").mkdir()
    with pytest.raises(DicomsqlError, match="exists already.*it is not a complete demo cohort"):
        App({"home": tmp_path}, demo="write", say=lambda line: None).create_views(Recorder())


def test_access_from_the_security_settings(tmp_path):
    access = App({"anonymous_role": "admin", "query_timeout": 0, "shared_db": ["facts"]}).access
    assert isinstance(access.authenticator, NoLogin) and access.authenticator.role == "admin"
    assert access.query_timeout is None and access.shared_databases == ("facts",)
    assert (
        App().access.shared_databases == ("default",)
        and App().access.query_timeout == DEFAULTS["query_timeout"]
    )
    password = App({"auth": "password", "home": tmp_path})
    assert isinstance(password.access.authenticator, PasswordFile)
    assert password.access.authenticator.path == Home(tmp_path).users
    assert (
        password.spark_conf()["spark.authenticate"] == "true"
    )  # Spark's RPC too, on a local master
    assert (
        "spark.authenticate"
        not in App({"auth": "password", "master": "spark://h:7077"}).spark_conf()
    )
    assert App(conf={"spark.x": "1"}).spark_conf() == {"spark.x": "1"}
    with pytest.raises(DicomsqlError, match="--tls-cert and --tls-key go together"):
        App({"tls_cert": tmp_path / "cert.pem"}).access
    with pytest.raises(DicomsqlError, match="--auth ldap needs --ldap-url and --ldap-user-dn"):
        App({"auth": "ldap", "ldap_url": "ldap://127.0.0.1"}).access


def test_running_server_is_the_home_holder_that_serves(tmp_path):
    holder = Home(tmp_path)
    app = App({"home": tmp_path})
    assert app.running_server() is None
    holder.acquire()
    try:
        with pytest.raises(HomeInUseError, match=f"in use by process {os.getpid()}"):
            app.running_server()
        holder.describe(jdbc_host="127.0.0.1", jdbc_port=10002)
        assert app.running_server().jdbc_url == "jdbc:hive2://127.0.0.1:10002/default"
    finally:
        holder.release()


def test_read_script_says_why_it_cannot(tmp_path):
    (tmp_path / "ok.sql").write_text("SELECT 1;", encoding="utf-8")
    assert read_script(tmp_path / "ok.sql") == "SELECT 1;"
    with pytest.raises(DicomsqlError, match="cannot read .*missing.sql: No such file"):
        read_script(tmp_path / "missing.sql")


# The command's flags: declared once, listed by every command that takes them -----------------


def _commands() -> dict[str, argparse.ArgumentParser]:
    subparsers = next(
        a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    return dict(subparsers.choices)


@pytest.mark.parametrize(
    "command, flags",
    [
        ("serve", cli._SESSION_FLAGS + ("--table", "--var")),
        ("sql", cli._SESSION_FLAGS + ("--table", "--var", "--max-rows") + cli._LOGIN_FLAGS),
        ("shell", cli._SESSION_FLAGS + ("--table", "--max-rows") + cli._LOGIN_FLAGS),
        ("ingest", cli._SESSION_FLAGS + cli._LOGIN_FLAGS),
        ("user", ("--home",)),
    ],
)
def test_shared_flags_are_in_each_command_and_its_help(command, flags):
    parser = _commands()[command]
    help_text = parser.format_help()
    for flag in flags:
        assert flag in parser._option_string_actions, flag
        assert flag in help_text, flag


def test_each_parser_gets_its_own_list_defaults():
    sql, serve = _commands()["sql"], _commands()["serve"]
    assert sql.get_default("var") == [] and sql.get_default("var") is not serve.get_default("var")


def test_the_app_of_a_command_takes_its_settings_and_conf(tmp_path):
    args = cli._parser().parse_args(
        [
            "serve",
            "--home",
            str(tmp_path),
            "--port",
            "10003",
            "--auth",
            "password",
            "--conf",
            "spark.a=1",
            "--shared-db",
            "facts",
        ]
    )
    app = cli._app(args, demo="write")
    assert (app.settings["port"], app.settings["auth"], app.settings["shared_db"]) == (
        10003,
        "password",
        ["facts"],
    )
    assert app.home.path == tmp_path.resolve() and app.conf == {"spark.a": "1"}
    args = cli._parser().parse_args(["ingest", "t", "/x", "--master", "local[1]"])
    assert cli._app(args).settings["master"] == "local[1]"

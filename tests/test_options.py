"""The one option type and parser (dicomsql.options), its tables (settings, the dicom source,
dicom_image and every function's options map), and the documentation generated from them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dicomsql import settings
from dicomsql.docs import functions_markdown, options_table, with_generated_tables
from dicomsql.errors import DicomsqlError
from dicomsql.options import Bound, Option, OptionError, boolean, choice, integer, number, parse
from dicomsql.server import audit, auth
from dicomsql.source import dimse, tfrecord
from dicomsql.source.options import IMAGE_OPTIONS, OPTIONS, image_options, parse_options
from dicomsql.udfs import FUNCTIONS

README = Path(__file__).parent.parent / "README.md"

TIES = Option("ties", "efron", "How tied event times are handled.", choice("efron", "breslow"))
TRIES = Option("max_iter", 50, "At most this many steps.", integer(1, 1000))

#: Every table of options, by where it is declared.
TABLES: dict[str, tuple[Option, ...]] = {
    "settings": settings.SETTINGS,
    "dicom source": OPTIONS,
    "dicom_image": IMAGE_OPTIONS,
    "tfrecord source": tfrecord.READ_OPTIONS,
    "tfrecord writer": tfrecord.WRITE_OPTIONS,
    "dimse source": dimse.OPTIONS,
    **{
        name: function.option_table for name, function in FUNCTIONS.items() if function.option_table
    },
}
EVERY_OPTION = [(table, option) for table, options in TABLES.items() for option in options]


def _ids(case) -> str:
    return f"{case[0]}.{case[1].name}"


def test_parse_gives_defaults_overridden_by_case_insensitive_keys():
    assert parse(None, (TIES, TRIES)) == {"ties": "efron", "max_iter": 50}
    assert parse({" Max_Iter ": "7", "TIES": "Breslow"}, (TIES, TRIES)) == {
        "ties": "breslow",
        "max_iter": 7,
    }


def test_parse_rejects_unknown_keys_listing_the_known_ones():
    with pytest.raises(
        OptionError, match=r"^unknown option 'tie' \(known: ties, max_iter\)$"
    ) as caught:
        parse({"tie": "efron"}, (TIES, TRIES))
    assert caught.value.option is None


def test_parse_errors_name_the_option_the_value_and_what_was_expected():
    with pytest.raises(
        OptionError,
        match=r"^coxph_fit: option max_iter must be an integer between 1 and 1000, got '1e9'$",
    ) as caught:
        parse({"max_iter": "1e9"}, (TIES, TRIES), where="coxph_fit")
    assert caught.value.option == "max_iter"
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, DicomsqlError)


@pytest.mark.parametrize(
    "parser, text, expected",
    [
        (choice("PERMISSIVE", "FAILFAST", normalise=str.upper), " failFast ", "FAILFAST"),
        (boolean, "TRUE", True),
        (number(0.0), "0", 0.0),
        (integer(0), "123456789", 123456789),
        (settings.size, "512MiB", 512 * 1024**2),
    ],
)
def test_parsers(parser, text, expected):
    assert parser(text) == expected


@pytest.mark.parametrize(
    "parser, text, expected",
    [
        (choice("efron", "breslow"), "exact", "one of efron, breslow"),
        (boolean, "yes", "true or false"),
        (number(0.0, 0.5, open_low=True), "0", "a number > 0.0 and <= 0.5"),
        (integer(1), "0", "an integer 1 or more"),
        (Bound(1, 10), "x", "an integer between 1 and 10"),
        (settings.size, "-1", "a positive number of bytes, optionally with a unit (512MiB, 2g)"),
    ],
)
def test_parsers_say_what_they_expected(parser, text, expected):
    with pytest.raises(ValueError) as caught:
        parser(text)
    assert str(caught.value) == expected


def test_the_settings_choices_are_the_servers():
    assert auth.ROLES is settings.ROLES
    assert audit.STATEMENT_MODES is settings.STATEMENT_MODES


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["serve", "--port", "0"],
            "argument --port: must be an integer between 1 and 65535, got '0'",
        ),
        (
            ["serve", "--auth", "kerberos"],
            "argument --auth: must be one of none, password, ldap, got 'kerberos'",
        ),
        (
            ["serve", "--max-file-size", "big"],
            "argument --max-file-size: must be a positive number of bytes",
        ),
        (
            ["demo", "--out", "x", "--patients", "0"],
            "argument --patients: must be an integer 1 or more, got '0'",
        ),
    ],
)
def test_a_settings_flag_is_parsed_by_its_option(argv, message, capsys):
    from dicomsql.cli import _parser

    with pytest.raises(SystemExit):
        _parser().parse_args(argv)
    assert message in capsys.readouterr().err


def test_settings_flags_take_the_settings_values():
    from dicomsql.cli import _parser

    args = _parser().parse_args(
        ["serve", "--auth", "Password", "--max-file-size", "512MiB", "--port", "10001"]
    )
    assert (args.auth, args.max_file_size, args.port, args.audit_statements) == (
        "password",
        512 << 20,
        10001,
        "text",
    )


def test_the_source_takes_sparks_own_keys_and_rejects_unknown_ones():
    assert parse_options({"path": "/a", "paths": '["/b", "/c"]'}).paths == ("/a", "/b", "/c")
    with pytest.raises(
        DicomsqlError,
        match=r"^dicom source: unknown option 'mdoe' \(known: path, paths, files, tags",
    ):
        parse_options({"path": "/a", "mdoe": "FAILFAST"})
    with pytest.raises(
        DicomsqlError,
        match=r"^dicom source: option files must be a JSON list of paths, got 'a.dcm'$",
    ):
        parse_options({"files": "a.dcm"})


def test_image_options_reject_unknown_keys_and_values():
    assert image_options(None) == {"invert": False, "mode": "PERMISSIVE"}
    assert image_options({"INVERT": "true", "mode": "failfast"}) == {
        "invert": True,
        "mode": "FAILFAST",
    }
    with pytest.raises(ValueError, match=r"^unknown option 'inverse' \(known: invert, mode\)$"):
        image_options({"inverse": "true"})
    with pytest.raises(
        ValueError, match=r"^option mode must be one of PERMISSIVE, FAILFAST, got 'DROPMALFORMED'$"
    ):
        image_options({"mode": "DROPMALFORMED"})


# -- meta-tests: every option is documented, its default is what its parser reads, and the
# generated documentation shows it


def _text(value) -> str:
    """A default as the text an option map would hold."""
    return str(value).lower() if isinstance(value, bool) else str(value)


@pytest.mark.parametrize("case", EVERY_OPTION, ids=_ids)
def test_every_option_has_help(case):
    _, option = case
    assert option.help.strip() and option.help.rstrip().endswith((".", ")")), option.name


@pytest.mark.parametrize(
    "case", [c for c in EVERY_OPTION if c[1].default not in (None, ())], ids=_ids
)
def test_every_default_is_what_its_parser_reads(case):
    _, option = case
    assert option.parse(_text(option.default)) == option.default


def test_option_names_are_unique_per_table_ignoring_case():
    for name, table in TABLES.items():
        names = [option.name.lower() for option in table]
        assert len(names) == len(set(names)), name


def test_readme_tables_are_generated_and_up_to_date():
    text = README.read_text(encoding="utf-8")
    assert with_generated_tables(text) == text, (
        "README.md's option tables are stale: run python -m dicomsql.docs"
    )
    for option in (*settings.SETTINGS, *OPTIONS):
        assert f"| `{option.name}` |" in text


def test_every_function_option_is_in_its_reference_section():
    markdown = functions_markdown()
    for name, function in FUNCTIONS.items():
        section = markdown.split(f"\n### {name}\n", 1)[1].split("\n### ", 1)[0]
        if function.option_table:
            assert options_table(function.option_table) in section, name


#: The test modules other than this one, where an option is set.
OTHER_TESTS = "\n".join(
    path.read_text(encoding="utf-8")
    for path in sorted(Path(__file__).parent.glob("test_*.py"))
    if path.name != Path(__file__).name
)


def _set_by_a_test(table: str, name: str) -> bool:
    """Whether another test module sets option ``name``: quoted ('name' or "name"), as a
    keyword argument (name=), or for a setting as its flag (--name-with-dashes)."""
    forms = [rf"'{name}'", rf'"{name}"', rf"\b{name}=(?!=)"]
    if table == "settings":
        forms.append(rf"--{name.replace('_', '-')}(?![\w-])")
    return re.search("|".join(forms), OTHER_TESTS) is not None


@pytest.mark.parametrize("case", EVERY_OPTION, ids=_ids)
def test_every_option_is_set_by_some_test(case):
    table, option = case
    assert _set_by_a_test(table, option.name), (
        f"{table}: option {option.name} is set by no test outside {Path(__file__).name}"
    )


def test_parsed_options_pass_through_a_copy_of_their_table():
    """The registry parses an options map in a Spark worker against a pickled copy of the
    table; the family's fit then parses the result against the module's own table."""
    from pyspark import cloudpickle

    from dicomsql.stats import forest

    copied = cloudpickle.loads(cloudpickle.dumps(forest.OPTIONS))
    parsed = parse({"trees": "7"}, copied)
    again = parse(parsed, forest.OPTIONS)
    assert again == parsed and again["task"] is None and again["trees"] == 7
    assert again is not parsed  # a copy: the caller may change it
    with pytest.raises(OptionError):  # another table parses it as text
        parse(parse(None, (TIES,)), (Option("ties", "x", "Another table.", choice("x")),))

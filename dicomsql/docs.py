"""Documentation generated from the declarations: the SQL function reference
(``docs/functions.md``, from the function registry, with each function's options table), the
de-identification profile (``docs/deidentification.md``, from PS3.15 Table E.1-1 as
:mod:`dicomsql.dicom.deid` holds it) and README.md's tables of the ``dicom`` source's options and of the settings (from their
:class:`~dicomsql.options.Option` tables, between ``<!-- generated: NAME -->`` and
``<!-- end generated: NAME -->`` lines). ``python -m dicomsql.docs`` rewrites them in the
current directory (``dicomsql functions --markdown`` prints the reference).

Functions are grouped by family, the :mod:`dicomsql.udfs` module that declares them; a
family's introduction is the first paragraph of its module's docstring.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .dicom import deid
from .options import Option
from .settings import SETTINGS
from .source import tfrecord
from .source.options import OPTIONS
from .udfs import FUNCTIONS, SqlFunction
from .udfs.registry import Struct, Table

__all__ = [
    "functions_markdown",
    "deidentification_markdown",
    "options_table",
    "fields_table",
    "named_types",
    "README_TABLES",
    "with_generated_tables",
]

_KINDS = {"scalar": "scalar function", "aggregate": "aggregate function", "table": "table function"}


def _families(functions: Iterable[SqlFunction]) -> dict[str, list[SqlFunction]]:
    """Functions by declaring module, in declaration order."""
    families: dict[str, list[SqlFunction]] = {}
    for function in functions:
        families.setdefault(function.implementation.__module__, []).append(function)
    return families


def _title(module: str) -> str:
    """``dicomsql.udfs.images`` -> ``Images``."""
    return module.rsplit(".", 1)[-1].capitalize()


def _first_paragraph(text: str) -> str:
    return " ".join(inspect.cleandoc(text).split("\n\n")[0].split())


def _default(value: Any) -> str:
    """An option's default as a table cell: empty when there is none (the help says what
    happens), SQL's spelling of booleans."""
    if value is None or value == ():
        return ""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return f"`{text}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;")


def options_table(options: Iterable[Option], heading: str = "option") -> str:
    """A Markdown table of options (``heading`` names the first column): name, default and
    help.

    >>> print(options_table([Option("ties", "efron", "How tied event times are handled.")]))
    | option | default | |
    |---|---|---|
    | `ties` | `efron` | How tied event times are handled. |
    """
    rows = [f"| `{o.name}` | {_default(o.default)} | {_cell(o.help)} |" for o in options]
    return "\n".join([f"| {heading} | default | |", "|---|---|---|", *rows])


def named_types(function: SqlFunction) -> list[Struct]:
    """The named STRUCT types (``COX_MODEL``...) a function's signature shows, in order."""
    kinds = [argument.sql for argument in function.arguments] + [function.returns]
    if isinstance(function.returns, Table):
        kinds += [kind for _, kind in function.returns.fields]
    found: list[Struct] = []
    for kind in kinds:
        if isinstance(kind, Struct) and kind.name and kind not in found:
            found.append(kind)
    return found


def fields_table(struct: Struct) -> str:
    """A Markdown table of a STRUCT type's fields and their SQL types.

    >>> print(fields_table(Struct((("n", "bigint"), ("coef", "array<double>")), "MODEL")))
    | field | type |
    |---|---|
    | `n` | `BIGINT` |
    | `coef` | `ARRAY<DOUBLE>` |
    """
    rows = [f"| `{name}` | `{sql.upper()}` |" for name, sql in struct.fields]
    return "\n".join(["| field | type |", "|---|---|", *rows])


def _function_section(function: SqlFunction) -> str:
    types = ", ".join(
        f"[{struct.name}](#{struct.name.lower()})" for struct in named_types(function)
    )
    return "\n\n".join(
        [
            f"### {function.name}",
            f"*{_KINDS[function.kind]}*",
            f"```\n{function.signature}\n```",
            *([f"Types: {types}"] if types else []),
            function.doc,
            *([function.limits] if function.limits else []),
            *(
                [f"Options (the `options` map):\n\n{options_table(function.option_table)}"]
                if function.option_table
                else []
            ),
            f"```sql\n{function.example}\n```",
        ]
    )


def functions_markdown() -> str:
    """Every SQL function of :data:`dicomsql.udfs.FUNCTIONS` as a Markdown reference: a
    contents list by family, then per family its introduction and per function its kind,
    signature, documentation (the docstring), limits (the declared bounds), options table and
    example."""
    families = _families(FUNCTIONS.values())
    contents = [
        f"- [{_title(module)}](#{_title(module).lower()}): "
        + ", ".join(f"[{f.name}](#{f.name})" for f in functions)
        for module, functions in families.items()
    ]
    parts = [
        "# SQL functions",
        "Every SQL function dicomsql registers, in its sessions and for every client of its "
        "server, by family: kind, signature, documentation and an example. "
        "In SQL, `SELECT * FROM dicomsql_functions()` lists them.",
        "Generated from the function registry in `udfs/` (a function's docstring is its "
        "documentation) by `dicomsql functions --markdown > docs/functions.md`: do not edit by hand.",
        "## Contents",
        "\n".join(contents + ["- [Types](#types)"]),
    ]
    for module, functions in families.items():
        parts += [f"## {_title(module)}", _first_paragraph(sys.modules[module].__doc__ or "")]
        parts += [_function_section(function) for function in functions]
    types = {
        struct.name: struct for function in FUNCTIONS.values() for struct in named_types(function)
    }
    parts += [
        "## Types",
        "The STRUCT types the signatures name: models, fit results and images, field by field.",
    ]
    parts += [f"### {name}\n\n{fields_table(struct)}" for name, struct in types.items()]
    return "\n\n".join(parts) + "\n"


def deidentification_markdown() -> str:
    """``dicom_deidentify``'s options and its table of actions (PS3.15 Table E.1-1), one row per
    attribute: its Basic Profile action and the options that change it."""
    option_of_column = {column: name for name, (column, _, _) in deid.METHOD_CODES.items()}
    rows = [
        f"| {action.tag} | {action.keyword} | {_cell(action.name)} | {action.basic} | "
        + ", ".join(
            f"{option_of_column[column]}: {change}"
            for column, change in action.options.items()
            if column in option_of_column
        )
        + " |"
        for action in deid.ACTIONS.values()
    ]
    return (
        "\n\n".join(
            [
                "# De-identification",
                _first_paragraph(deid.__doc__ or ""),
                "Generated from `dicomsql/dicom/deid_actions.csv` by `python -m dicomsql.docs`: "
                "do not edit by hand.",
                "## Options",
                options_table(deid.OPTIONS),
                "## Actions",
                "X remove, Z empty, D dummy, K keep, C clean, U remap the UID; a compound action "
                "becomes its last letter's (U for X/Z/U*). An option's action replaces the Basic "
                "Profile's when the option is on.",
                "| tag | keyword | attribute | Basic Profile | with options |\n|---|---|---|---|---|\n"
                + "\n".join(rows),
            ]
        )
        + "\n"
    )


#: The tables README.md shows between its ``<!-- generated: NAME -->`` markers.
README_TABLES: dict[str, Callable[[], str]] = {
    "dicom source options": lambda: options_table(OPTIONS),
    "tfrecord source options": lambda: options_table(tfrecord.READ_OPTIONS),
    "tfrecord writer options": lambda: options_table(tfrecord.WRITE_OPTIONS),
    "settings": lambda: options_table(SETTINGS, "setting"),
}


def with_generated_tables(text: str) -> str:
    """``text`` (README.md) with each marked table replaced by the one generated now; a
    missing marker is an error.

    >>> with_generated_tables("<!-- generated: x -->")
    Traceback (most recent call last):
    ValueError: unknown generated table 'x' in README.md (known: dicom source options, tfrecord source options, tfrecord writer options, settings)
    """
    found = re.findall(r"^<!-- generated: (.+?) -->$", text, flags=re.M)
    for name in found:
        if name not in README_TABLES:
            raise ValueError(
                f"unknown generated table {name!r} in README.md (known: {', '.join(README_TABLES)})"
            )
    for name, table in README_TABLES.items():
        pattern = re.compile(
            rf"^(<!-- generated: {re.escape(name)} -->\n).*?(^<!-- end generated: {re.escape(name)} -->)$",
            re.M | re.S,
        )
        text, count = pattern.subn(
            lambda match, table=table: f"{match.group(1)}{table()}\n{match.group(2)}", text
        )
        if count != 1:
            raise ValueError(
                f"README.md needs one '<!-- generated: {name} -->' ... '<!-- end generated: {name} -->' section"
            )
    return text


def main() -> None:
    """Rewrite docs/functions.md, docs/deidentification.md and README.md's generated tables in
    the current directory."""
    Path("docs/functions.md").write_text(functions_markdown(), encoding="utf-8")
    Path("docs/deidentification.md").write_text(deidentification_markdown(), encoding="utf-8")
    readme = Path("README.md")
    readme.write_text(with_generated_tables(readme.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    main()

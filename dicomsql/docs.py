"""The SQL function reference (``docs/functions.md``), generated from the function registry:
``dicomsql functions --markdown > docs/functions.md``.

Functions are grouped by family, the :mod:`dicomsql.udfs` module that declares them; a
family's introduction is the first paragraph of its module's docstring.
"""

from __future__ import annotations

import inspect
import sys
from typing import Iterable

from .udfs import FUNCTIONS, SqlFunction

__all__ = ["functions_markdown"]

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


def _function_section(function: SqlFunction) -> str:
    return "\n\n".join(
        [
            f"### {function.name}",
            f"*{_KINDS[function.kind]}*",
            f"```\n{function.signature}\n```",
            function.doc,
            *([function.limits] if function.limits else []),
            f"```sql\n{function.example}\n```",
        ]
    )


def functions_markdown() -> str:
    """Every SQL function of :data:`dicomsql.udfs.FUNCTIONS` as a Markdown reference: a
    contents list by family, then per family its introduction and per function its kind,
    signature, documentation (the docstring), limits (the declared bounds) and example."""
    families = _families(FUNCTIONS.values())
    contents = [
        f"- [{_title(module)}](#{_title(module).lower()}): " + ", ".join(f"[{f.name}](#{f.name})" for f in functions)
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
        "\n".join(contents),
    ]
    for module, functions in families.items():
        parts += [f"## {_title(module)}", _first_paragraph(sys.modules[module].__doc__ or "")]
        parts += [_function_section(function) for function in functions]
    return "\n\n".join(parts) + "\n"

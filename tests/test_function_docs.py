"""docs/functions.md is the function registry's Markdown, and stays so."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from dicomsql.docs import functions_markdown, named_types
from dicomsql.udfs import FUNCTIONS

from .conftest import dicomsql_command

REFERENCE = Path(__file__).parent.parent / "docs" / "functions.md"


def test_reference_is_up_to_date():
    assert REFERENCE.read_text(encoding="utf-8") == functions_markdown(), (
        "docs/functions.md is stale: regenerate it with `dicomsql functions --markdown > docs/functions.md`"
    )


def test_cli_prints_the_reference():
    result = subprocess.run(
        [dicomsql_command(), "functions", "--markdown"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == functions_markdown()


def test_reference_has_a_section_and_a_contents_link_per_function():
    functions, _ = functions_markdown().split("\n## Types\n")
    markdown = functions_markdown()
    assert re.findall(r"^### (\w+)$", functions, flags=re.M) == list(FUNCTIONS)
    for name, function in FUNCTIONS.items():
        assert f"[{name}](#{name})" in markdown
        assert f"```\n{function.signature}\n```" in markdown
        assert f"```sql\n{function.example}\n```" in markdown


def test_every_named_type_is_defined_once_field_by_field():
    _, types = functions_markdown().split("\n## Types\n")
    named = {
        struct.name: struct for function in FUNCTIONS.values() for struct in named_types(function)
    }
    assert {"COX_MODEL", "LINREG_MODEL", "PCA_MODEL", "IMAGE"} <= set(named)
    assert re.findall(r"^### (\w+)$", types, flags=re.M) == list(named)
    for name, struct in named.items():
        section = types.split(f"### {name}\n")[1].split("\n### ")[0]
        assert [row.split("`")[1] for row in section.splitlines() if row.startswith("| `")] == [
            f for f, _ in struct.fields
        ]
    assert "Types: [COX_MODEL](#cox_model)" in functions_markdown()


def test_reference_groups_functions_by_family():
    families = re.findall(r"^## (\w+)$", functions_markdown(), flags=re.M)
    assert families[0] == "Contents"
    assert {"Header", "Images", "Survival", "Models"} <= set(families[1:])

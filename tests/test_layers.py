"""The layers: the pure DICOM and statistics code never imports Spark."""

from __future__ import annotations

import subprocess
import sys

#: Packages whose every module must import without pyspark.
PURE_PACKAGES = ("dicomsql.dicom", "dicomsql.stats")

#: Run in a fresh interpreter: imports every module of PURE_PACKAGES, prints the modules
#: imported and the pyspark modules among sys.modules.
IMPORT_ALL = """
import importlib, pkgutil, sys
imported = []
for name in sys.argv[1:]:
    package = importlib.import_module(name)
    for module in pkgutil.walk_packages(package.__path__, prefix=name + "."):
        importlib.import_module(module.name)
        imported.append(module.name)
print(" ".join(imported))
print(" ".join(sorted(m for m in sys.modules if m == "pyspark" or m.startswith("pyspark."))))
"""


def test_pure_packages_never_import_pyspark():
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, *PURE_PACKAGES],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    imported, pyspark_modules = (done.stdout.splitlines() + ["", ""])[:2]
    assert {"dicomsql.dicom.pixels", "dicomsql.stats.cox"} <= set(
        imported.split()
    )  # the walk found the modules
    assert pyspark_modules == "", f"importing {', '.join(PURE_PACKAGES)} imported {pyspark_modules}"


def test_the_distribution_ships_every_package_and_its_data():
    """pyproject.toml lists every package under dicomsql/ (and udfs/ as dicomsql.udfs), and the
    data files beside the code: a package left out is missing from a wheel (pip install .)."""
    import re
    from pathlib import Path

    root = Path(__file__).parent.parent
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    listed = set(
        re.findall(r'"(dicomsql(?:\.\w+)*)"', text.split("packages = [", 1)[1].split("]")[0])
    )
    found = {
        ".".join(init.parent.relative_to(root).parts)
        for init in (root / "dicomsql").rglob("__init__.py")
    } | {"dicomsql.udfs"}
    assert listed == found
    data = {p.name for p in (root / "dicomsql").rglob("*") if p.suffix in (".csv", ".properties")}
    assert all(f'"{name}"' in text for name in data), data

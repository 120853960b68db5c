"""examples/analysis.ipynb executed headless (nbclient, a real IPython kernel) against the
suite's Thrift server through JupySQL and the dicomsql:// SQLAlchemy URL."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.server

NOTEBOOK = Path(__file__).parent.parent / "examples" / "analysis.ipynb"


def test_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_notebook_runs_against_the_server(thrift_server, monkeypatch):
    monkeypatch.setenv("DICOMSQL_PORT", str(thrift_server.port))
    monkeypatch.setenv("PLOOMBER_STATS_ENABLED", "false")  # JupySQL's telemetry
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()
    outputs = [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]
    assert not [output for output in outputs if output.output_type == "error"]
    figures = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(figures) == 3  # thumbnails, Kaplan-Meier curves, eigen-images
    tables = "\n".join(output.get("data", {}).get("text/plain", "") for output in outputs)
    assert "hazard_ratio" in tables and "tumor_mm" in tables and "SIEMENS" in tables

"""The notebooks are committed without outputs and execute on the embedded data."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from odn_lightning.config import project_root

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(name: str, tmp_path: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    return notebook


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_is_committed_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_synthetic_faces_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.delenv("ODN_SYNTHETIC_ROOT", raising=False)
    notebook = execute("synthetic_faces.ipynb", tmp_path)
    images = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert len(images) >= 3  # faces, masks, crops


def test_run_report_notebook_executes_on_a_trained_run(tmp_path, monkeypatch, trained_run):
    # Relative to the repository, as README's `ODN_RUN_DIR=logs/train/runs/<run> jupyter lab notebooks/`
    # gives it; the kernel starts in notebooks/.
    monkeypatch.setenv("ODN_RUN_DIR", os.path.relpath(trained_run, project_root()))
    notebook = execute("run_report.ipynb", tmp_path)
    text = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert "metrics.json" in text and "common" in text
    images = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert len(images) >= 4  # CED, a prediction grid, a Figure-6 panel, the worst faces

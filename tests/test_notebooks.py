"""The notebooks run top to bottom in quick mode (IRGAN_NOTEBOOK_QUICK=1) and are stored without outputs."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["quickstart.ipynb", "reproduce_paper.ipynb"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_has_no_outputs(name):
    cells = json.loads((REPO / "notebooks" / name).read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and all(not c["outputs"] and c["execution_count"] is None for c in code)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_quick_mode(name, monkeypatch, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("IRGAN_NOTEBOOK_QUICK", "1")
    # tiny tensors: one thread is faster than two, and much faster on a busy machine
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # quick mode writes its figures to a temporary folder
    shared = REPO.parent / "shared" / "data"
    if not os.environ.get("IRGAN_DATA") and (shared / "ml-100k" / "u.data").is_file():
        monkeypatch.setenv("IRGAN_DATA", str(shared))  # as conftest's shared_data; without data: synthetic
    notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO)}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


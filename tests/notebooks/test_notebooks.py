"""Every dashboard notebook executes headless (nbclient) without error."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from dmlviz.serve import NOTEBOOKS

WIDGET = "application/vnd.jupyter.widget-view+json"


def _execute(name: str, cwd) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def _outputs(nb):
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]


def test_explorer_notebook_opens_the_run_named_in_the_query(small_run, tmp_path, monkeypatch):
    monkeypatch.setenv("DMLVIZ_RUNS_DIR", str(small_run.path.parent))
    monkeypatch.setenv("QUERY_STRING", f"run={small_run.name}")
    nb = _execute("explorer.ipynb", tmp_path)
    outputs = _outputs(nb)
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(WIDGET in o.get("data", {}) for o in outputs)


def test_explorer_notebook_with_no_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("DMLVIZ_RUNS_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv("QUERY_STRING", raising=False)
    nb = _execute("explorer.ipynb", tmp_path)
    assert not [o for o in _outputs(nb) if o.output_type == "error"]


@pytest.mark.slow
def test_lesson_notebook_trains_missing_runs_and_runs_through(tmp_path, monkeypatch):
    monkeypatch.setenv("DMLVIZ_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DMLVIZ_DEMO_EPOCHS", "2")
    nb = _execute("softtriple_lesson.ipynb", tmp_path)
    outputs = _outputs(nb)
    assert not [o for o in outputs if o.output_type == "error"]
    assert (tmp_path / "runs" / "mnist5k-pairs-softtriple" / "epoch_0002.npz").exists()
    assert sum(WIDGET in o.get("data", {}) for o in outputs) >= 4

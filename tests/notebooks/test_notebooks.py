"""Every dashboard notebook executes headless (nbclient) without error."""

from __future__ import annotations

import nbformat
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


# The lesson notebook is executed by tests/browser/test_dashboard.py (in Voila, a real kernel, its maps
# checked for drawn points and its cells for errors); the training of missing demo runs by tests/test_demo.py.

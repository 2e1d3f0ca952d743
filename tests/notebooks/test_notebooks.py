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


def _ran_and_showed_a_widget(nb) -> None:
    """No cell of the executed notebook raised, and one displayed a widget."""
    outputs = _outputs(nb)
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(WIDGET in o.get("data", {}) for o in outputs)


def test_explorer_notebook_opens_the_run_named_in_the_query(small_run, tmp_path, monkeypatch):
    monkeypatch.setenv("DMLVIZ_RUNS_DIR", str(small_run.path.parent))
    monkeypatch.setenv("QUERY_STRING", f"run={small_run.name}")
    nb = _execute("explorer.ipynb", tmp_path)
    _ran_and_showed_a_widget(nb)


def test_explorer_notebook_with_no_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("DMLVIZ_RUNS_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv("QUERY_STRING", raising=False)
    nb = _execute("explorer.ipynb", tmp_path)
    assert not [o for o in _outputs(nb) if o.output_type == "error"]


# The lesson notebook is executed by tests/browser/test_dashboard.py (in Voila, a real kernel, its maps
# checked for drawn points and its cells for errors); the training of missing demo runs by tests/test_demo.py.


def test_compare_notebook_opens_the_runs_named_in_the_query(small_run, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "runs"
    for name in ("a", "b"):
        shutil.copytree(small_run.path, root / name)
    monkeypatch.setenv("DMLVIZ_RUNS_DIR", str(root))
    monkeypatch.setenv("QUERY_STRING", "runs=a,b")
    nb = _execute("compare.ipynb", tmp_path)
    _ran_and_showed_a_widget(nb)


def test_playground_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("DMLVIZ_RUNS_DIR", str(tmp_path))
    nb = _execute("playground.ipynb", tmp_path)
    _ran_and_showed_a_widget(nb)


def test_bring_your_own_notebook_records_a_run_and_opens_it(tmp_path, monkeypatch):
    import dmlviz

    monkeypatch.setenv("DMLVIZ_RUNS_DIR", str(tmp_path))
    nb = _execute("bring_your_own.ipynb", tmp_path)
    _ran_and_showed_a_widget(nb)
    run = dmlviz.load_run(tmp_path / "bring-your-own")
    assert run.info["status"] == "finished" and run.epochs == list(range(6)) and run.snapshot(5).centers.shape == (5, 1, 64)
    assert run.snapshot(0).thumbnails is not None


def test_the_notebooks_live_in_the_repositorys_notebooks_folder():
    from pathlib import Path

    assert NOTEBOOKS == Path(__file__).resolve().parents[2] / "notebooks"
    assert {"explorer.ipynb", "softtriple_lesson.ipynb", "compare.ipynb", "playground.ipynb", "bring_your_own.ipynb"} <= {p.name for p in NOTEBOOKS.glob("*.ipynb")}


def test_a_wheel_installs_the_notebooks_once(tmp_path):
    """An installed (not editable) dmlviz serves the copy pyproject's data-files put under <prefix>/share/dmlviz/notebooks."""
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(repo)],
                   check=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("dmlviz-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.rsplit("/", 1)[-1] for n in names if "/data/share/dmlviz/notebooks/" in n}
    assert {"explorer.ipynb", "softtriple_lesson.ipynb", "compare.ipynb", "playground.ipynb", "bring_your_own.ipynb"} <= shipped
    assert not [n for n in names if n.startswith("dmlviz/notebooks/")]  # one copy

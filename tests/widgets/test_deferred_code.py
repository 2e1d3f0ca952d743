"""The big front-end modules travel beside a small ``_esm`` that imports them after anywidget's 2 s limit."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dmlviz.widgets.deferred_code import DEFERRED_ESM, deferred
from dmlviz.widgets.figure import _registering_bundle, plotly_code


def page_sends(widget, content: dict) -> None:
    """Deliver ``content`` as a page's custom message reaches a widget in a kernel (ipywidgets' ``_handle_msg``)."""
    widget._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})


def _widgets() -> list:
    """A plotly module's widget and jupyter-scatter's (which overrides ipywidgets' ``_handle_custom_msg``)."""
    from dmlviz.widgets.figure import PlotlyCode
    from dmlviz.widgets.point_canvas import PointCanvas

    return [PlotlyCode(), PointCanvas(300, lambda i: None, lambda i: None, lambda rows: None).widget]


def test_plotly_code_defers_the_registering_bundle():
    widget = plotly_code()
    assert widget._esm == DEFERRED_ESM and len(widget._esm) < 8_000  # every deferred widget carries it (a few of them per page)
    assert widget._dmlviz_code == _registering_bundle()
    assert "globalThis.__dmlvizPlotly" in widget._dmlviz_code
    assert widget._dmlviz_code_key == hashlib.sha1(widget._dmlviz_code.encode()).hexdigest()
    state = widget.get_state()
    assert state["_esm"] == DEFERRED_ESM and state["_dmlviz_code"] == widget._dmlviz_code


def test_the_point_canvas_defers_jupyter_scatter_and_leaves_its_module_alone():
    jscatter = pytest.importorskip("jscatter")
    import jscatter.jscatter
    import jscatter.widget

    from dmlviz.widgets.point_canvas import PointCanvas, faster_rows

    original = jscatter.jscatter.JupyterScatter
    canvas = PointCanvas(300, lambda i: None, lambda i: None, lambda rows: None)
    assert jscatter.jscatter.JupyterScatter is original  # the swap is undone
    assert isinstance(canvas.widget, jscatter.widget.JupyterScatter)
    assert canvas.widget._esm == DEFERRED_ESM
    bundle = (Path(jscatter.widget.__file__).parent / "bundle.js").read_text()
    assert canvas.widget._dmlviz_code == faster_rows(bundle)  # bundle.js, its arrays decoded by loops
    assert canvas.widget.get_state()["_esm"] == DEFERRED_ESM
    # the page draws the canvas first and imports plotly's module after it (one long task that would hold it back)
    assert canvas.widget._dmlviz_drawn_when == "regl-scatterplot"
    assert canvas.widget._dmlviz_code_key in plotly_code()._dmlviz_code_after
    assert plotly_code().get_state()["_dmlviz_code_after"] == plotly_code()._dmlviz_code_after
    # the widget still works as jupyter-scatter's: traits set directly are synced
    import numpy as np

    canvas.draw(np.zeros((3, 2)), np.array(["#ff0000"] * 3), 1.0, np.zeros((0, 2)), np.array([], dtype="U7"), np.zeros(0))
    assert np.asarray(canvas.widget.points).shape == (3, 4)


def test_the_same_code_gets_the_same_key():
    assert deferred("export default {};") == deferred("export default {};")
    assert deferred("a")["_dmlviz_code_key"] != deferred("b")["_dmlviz_code_key"]



def test_load_after_adds_a_key_once():
    from dmlviz.widgets.figure import PlotlyCode

    widget = PlotlyCode()
    assert widget._dmlviz_code_after == []
    widget.load_after("abc")
    widget.load_after("abc")
    assert widget._dmlviz_code_after == ["abc"]
    widget.close()


@pytest.mark.parametrize("which", ["plotly", "jupyter-scatter"])
def test_a_page_that_drew_a_view_lets_the_kernel_start_what_waited_for_it(caplog, which):
    """The page sends {"type": "dmlviz-drawn"} once a view is drawn (DEFERRED_ESM); each waiting callback runs once."""
    assert 'model.send({ type: "dmlviz-drawn" })' in DEFERRED_ESM
    widget = _widgets()[["plotly", "jupyter-scatter"].index(which)]
    calls = []

    def broken():
        raise RuntimeError("a view's first update failed")

    widget.on_drawn(lambda: calls.append("first"))
    widget.on_drawn(broken)
    widget.on_drawn(lambda: calls.append("third"))
    page_sends(widget, {"type": "tooltip", "index": 0, "preview": None})  # jupyter-scatter's own messages start nothing
    assert calls == []
    with caplog.at_level("ERROR"):
        page_sends(widget, {"type": "dmlviz-drawn"})
    assert calls == ["first", "third"] and "a view's first update failed" in caplog.text  # one failure keeps no other back
    page_sends(widget, {"type": "dmlviz-drawn"})  # another page, or a view drawn again: once is enough
    assert calls == ["first", "third"]
    widget.close()


@pytest.mark.parametrize("which", ["plotly", "jupyter-scatter"])
def test_a_page_reports_each_version_of_a_scatter_views_points_drawn(caplog, which):
    """The page sends {"type": "dmlviz-redrawn", "version": V} after each new ``_dmlviz_points_version``, once drawn; every callback gets V, every time."""
    assert 'context.model.on("change:_dmlviz_points_version", onPoints)' in DEFERRED_ESM
    assert 'type: "dmlviz-redrawn", version, how' in DEFERRED_ESM
    widget = _widgets()[["plotly", "jupyter-scatter"].index(which)]
    calls = []

    def broken(version):
        raise RuntimeError("a view's update failed")

    widget.on_redrawn(lambda version: calls.append(("first", version)))
    widget.on_redrawn(broken)
    widget.on_redrawn(lambda version: calls.append(("third", version)))
    for bad in ({"type": "dmlviz-redrawn"}, {"type": "dmlviz-redrawn", "version": "3"}, {"type": "dmlviz-redrawn", "version": True}):
        page_sends(widget, bad)  # no version, or not an integer: nothing is told
    assert calls == []
    with caplog.at_level("ERROR"):
        page_sends(widget, {"type": "dmlviz-redrawn", "version": 3, "how": "drawn"})
    assert calls == [("first", 3), ("third", 3)] and "a view's update failed" in caplog.text
    page_sends(widget, {"type": "dmlviz-redrawn", "version": 4, "how": "limit"})  # each epoch's points: each time
    assert calls[-2:] == [("first", 4), ("third", 4)]
    widget.close()


def test_a_dmlviz_servers_kernel_writes_the_module_to_a_file_and_sends_its_address(tmp_path, monkeypatch):
    from dmlviz import serve
    from dmlviz.widgets import deferred_code
    from dmlviz.widgets.figure import PlotlyCode

    assert serve.MODULES_ENV == deferred_code.MODULES_ENV  # the server sets what the kernels read
    monkeypatch.setenv(deferred_code.MODULES_ENV, str(tmp_path))
    code = "export default { render() {} }; // " + "x" * 1000
    made = deferred(code)
    key = hashlib.sha1(code.encode()).hexdigest()
    path = tmp_path / deferred_code.MODULES_PATH / f"{key}.js"
    assert path.read_text() == code
    assert made["_dmlviz_code"] == "" and made["_dmlviz_code_key"] == key
    assert made["_dmlviz_code_url"].split("?")[0] == f"{deferred_code.MODULES_PATH}/{key}.js"
    assert deferred(code) == made and path.read_text() == code  # once: the same file, the same address
    # the widget's state carries the address, not the text; a page that cannot load the file asks for it
    widget = PlotlyCode()
    bundle = _registering_bundle()
    state = widget.get_state()
    assert state["_dmlviz_code"] == "" and "_dmlviz_code_text" not in state
    assert (tmp_path / state["_dmlviz_code_url"].split("?")[0]).read_text() == bundle
    page_sends(widget, {"type": "tooltip"})  # jupyter-scatter's own messages are left alone
    assert widget._dmlviz_code == ""
    page_sends(widget, {"type": "dmlviz-code"})
    assert widget._dmlviz_code == bundle


def test_a_folder_that_cannot_be_written_leaves_the_text_in_the_state(tmp_path, monkeypatch, caplog):
    from dmlviz.widgets import deferred_code

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(deferred_code.MODULES_ENV, str(blocker))
    with caplog.at_level("WARNING"):
        made = deferred("export default { a: 1 };")
    assert made["_dmlviz_code"] == "export default { a: 1 };" and "_dmlviz_code_url" not in made
    assert "travels in the widget state" in caplog.text
    monkeypatch.delenv(deferred_code.MODULES_ENV)
    assert deferred("export default { b: 1 };")["_dmlviz_code"] == "export default { b: 1 };"  # outside a dmlviz server: the text

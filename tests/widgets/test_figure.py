"""figure.py without a browser: the shared plotly module and the resync after the first draw."""

from __future__ import annotations

import re

import plotly.graph_objects as go

from dmlviz.widgets.figure import _SHIM, FigureWidget, _registering_bundle, resync_on_render


def test_plotly_code_is_not_itself_a_plotly_figure():
    code = _registering_bundle()
    assert code is not None
    # plotly's widget is published for the figures' shims, not exported as the module's default
    # (anywidget would render the hidden PlotlyCode as a figure without a layout: 'height' of undefined)
    assert code.rstrip().endswith("export default { render() {} };")
    own_exports = list(re.finditer(r"export\s*\{([^}]*)\}", code))[-1].group(1)  # the module's own list is the last
    assert "FigureModel" in own_exports and "default" not in own_exports
    assert "shared.module = " in code


def test_shim_does_not_wait_for_plotly_in_initialize():
    # anywidget holds a model's messages until initialize returns; waiting there for plotly's module
    # stalled the page's kernel messages and dropped the map's data in JupyterLab
    initialize = _SHIM[_SHIM.index("initialize("):_SHIM.index("async render(")]
    assert "await" not in initialize and "await started" in _SHIM
    assert "await" not in _SHIM[:_SHIM.index("export default")]


def test_resync_once_after_the_first_draw():
    figure = FigureWidget(go.Figure(go.Scatter(x=[1, 2], y=[3, 4])))
    calls = []
    resync_on_render(figure, lambda: calls.append(1))
    figure._js2py_traceDeltas = None
    assert calls == []
    # what plotly's front-end sends after its first draw (its layout delta comes under another name)
    deltas = {"trace_deltas": [{"uid": figure.data[0].uid}], "trace_edit_id": 0}
    figure._js2py_traceDeltas = deltas
    figure._js2py_traceDeltas = dict(deltas)
    figure._js2py_layoutDelta = {"layout_delta": {}, "layout_edit_id": 0}
    assert calls == [1]

"""Plotly FigureWidget helpers: plotly's front-end code sent once per page, and a resync on first render."""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path
from typing import Any, Callable

import anywidget
import ipywidgets as widgets
import plotly.graph_objects as go
import traitlets

logger = logging.getLogger(__name__)

_BUNDLE = Path(go.FigureWidget.__module__ and __import__("plotly").__file__).parent / "package_data" / "widgetbundle.js"

# Every plotly FigureWidget carries plotly's 5 MB front-end module in its state, and the page
# imports it once per figure: measured here, each figure added ~2-4 s to a Voila page (1 figure
# 2.3 s, 4 figures 11-12 s). dmlviz's figures carry a few lines instead that wait for the module,
# which one hidden widget per kernel (PlotlyCode) brings to the page once.
_SHIM = """
const shared = (globalThis.__dmlvizPlotly ??= {});
const module = shared.module ?? (await (shared.promise ??= new Promise((resolve) => { shared.resolve = resolve; })));
export default module;
"""


@functools.lru_cache(maxsize=1)
def _registering_bundle() -> str | None:
    """plotly's widget module with a line that publishes its default export for the shims; None if unrecognised."""
    try:
        code = _BUNDLE.read_text()
    except OSError:
        return None
    exports = list(re.finditer(r"export\s*\{([^}]*)\}", code))  # the module's own export list is the last one
    match = exports[-1] if exports else None
    names = dict(reversed(part.strip().split(" as ")) for part in match.group(1).split(",") if " as " in part) if match else {}
    default = names.get("default")
    if not default or not re.fullmatch(r"[A-Za-z_$][\w$]*", default):
        logger.info("plotly's widget bundle has an unexpected shape; each figure will carry its own copy")
        return None
    return (
        code
        + f"\n;{{const shared = (globalThis.__dmlvizPlotly ??= {{}}); shared.module = {default};"
        + f" if (shared.resolve) shared.resolve({default});}}\n"
    )


class PlotlyCode(anywidget.AnyWidget):
    """An invisible widget that brings plotly's front-end module to the page once."""

    _esm = traitlets.Unicode("export default { render() {} };").tag(sync=True)

    def __init__(self) -> None:
        super().__init__(_esm=_registering_bundle() or "export default { render() {} };", layout=widgets.Layout(display="none"))


@functools.lru_cache(maxsize=1)
def plotly_code() -> PlotlyCode:
    """The kernel's one PlotlyCode widget; every view that shows figures includes it (hidden)."""
    return PlotlyCode()


class FigureWidget(go.FigureWidget):
    """plotly's FigureWidget whose front-end code comes from :func:`plotly_code` instead of its own state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        shared = _registering_bundle() is not None
        self._dmlviz_esm = _SHIM if shared else None
        super().__init__(*args, **kwargs)

    @property
    def _esm(self) -> Any:  # read once by anywidget when the widget is made
        return self._dmlviz_esm or go.FigureWidget._esm


def resync_on_render(figure: Any, redraw: Callable[[], None]) -> None:
    """Call ``redraw`` once the browser has drawn ``figure`` for the first time.

    plotly's FigureWidget front-end (anywidget) loads its code asynchronously; updates the
    kernel sends before that code has started are kept as the last value of a trait but never
    applied, so a figure updated right after it was created (as every view is, while a
    dashboard's cell runs) can show stale data. The view reports its first layout back to the
    kernel; redrawing then pushes the current data through handlers that now exist.
    """
    done = []

    def handler(change: dict) -> None:
        if not done:
            done.append(True)
            redraw()

    figure.observe(handler, "_js2py_layoutDelta")

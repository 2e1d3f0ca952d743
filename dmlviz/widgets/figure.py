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

from .deferred_code import DEFERRED_ESM, DeferredCode, deferred

logger = logging.getLogger(__name__)

_BUNDLE = Path(go.FigureWidget.__module__ and __import__("plotly").__file__).parent / "package_data" / "widgetbundle.js"

# Every plotly FigureWidget carries plotly's 5 MB front-end module in its state, and the page
# imports it once per figure: measured here, each figure added ~2-4 s to a Voila page (1 figure
# 2.3 s, 4 figures 11-12 s). dmlviz's figures carry a few lines instead that wait for the module,
# which one hidden widget per kernel (PlotlyCode) brings to the page once.
#
# The shim must not wait for the module in `initialize`: anywidget (0.11) holds every comm message
# of a model until its `initialize` has returned, and JupyterLab's kernel connection handles
# messages one after another, so a figure whose comm opened before PlotlyCode's blocked the
# whole page until anywidget gave up after 2 s ("Failed to initialize model", silently), and
# that figure then dropped every update, its data included: in JupyterLab the map showed empty
# axes. So `initialize` returns at once; plotly's own initialize runs when the module is here,
# and the plotly messages that came before it (Python sets each `_py2js_*` trait to a message,
# then back to None) are kept and replayed to it in order. `render` waits for the module.
_SHIM = r"""
const shared = (globalThis.__dmlvizPlotly ??= {});
const plotly = shared.module ? Promise.resolve(shared.module) : (shared.promise ??= new Promise((resolve) => { shared.resolve = resolve; }));
const MESSAGES = ["_py2js_addTraces", "_py2js_deleteTraces", "_py2js_moveTraces", "_py2js_restyle", "_py2js_relayout",
  "_py2js_update", "_py2js_animate", "_py2js_removeLayoutProps", "_py2js_removeTraceProps"];
export default () => {
  let widget = null;
  let started = null;
  return {
    initialize({ model }) {
      const early = [];
      for (const name of MESSAGES) {
        model.on("change:" + name, (_, value) => { if (!widget && value != null) early.push([name, value]); });
      }
      started = plotly.then((factory) => {
        let replaying = null;
        let handlers = {};
        const proxy = {
          get: (key) => (replaying && key in replaying ? replaying[key] : model.get(key)),
          set: (...args) => model.set(...args),
          save_changes: () => model.save_changes(),
          send: (...args) => model.send(...args),
          off: (...args) => model.off(...args),
          on: (event, callback) => { if (handlers) (handlers[event] ??= []).push(callback); model.on(event, callback); },
        };
        widget = factory();
        widget.initialize({ model: proxy });
        for (const [name, value] of early) {
          replaying = { [name]: value };
          try { for (const callback of handlers["change:" + name] ?? []) callback(); } finally { replaying = null; }
        }
        handlers = null;
      });
    },
    async render(context) {
      await started;
      const stop = reportDrawnSelections(context.el);  // before render: plotly's view announces its drawn plot once
      const cleanup = await widget.render(context);
      return () => { stop(); if (typeof cleanup === "function") cleanup(); };
    },
  };
};

// A lasso or box selection sometimes never reaches the kernel: plotly.js draws it, stores it in
// layout.selections and emits plotly_selected, yet plotly's widget sends no message for it (seen
// on the comparison page: 11 of 14 page loads lost their first lasso; the hovers around it were sent).
// Why is not known. The points of the figure's first trace inside the selection are computed here
// (in data coordinates) and emitted again as plotly_selected, and that one is sent.
function inside(selection, x, y) {
  if (selection.type === "rect") {
    const [x0, x1] = [+selection.x0, +selection.x1].sort((a, b) => a - b);
    const [y0, y1] = [+selection.y0, +selection.y1].sort((a, b) => a - b);
    return (i) => x[i] >= x0 && x[i] <= x1 && y[i] >= y0 && y[i] <= y1;
  }
  const numbers = (String(selection.path || "").match(/[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?/g) || []).map(Number);
  if (selection.type !== "path" || numbers.length < 6 || numbers.length % 2) return null;
  const px = numbers.filter((_, k) => k % 2 === 0), py = numbers.filter((_, k) => k % 2 === 1);
  return (i) => {
    let hit = false;
    for (let a = 0, b = px.length - 1; a < px.length; b = a++) {
      if ((py[a] > y[i]) !== (py[b] > y[i]) && x[i] < ((px[b] - px[a]) * (y[i] - py[a])) / (py[b] - py[a]) + px[a]) hit = !hit;
    }
    return hit;
  };
}
function reportDrawnSelections(el) {
  // plotly's view (re)draws with Plotly.newPlot, which drops a plot's event listeners, then adds its
  // own and announces "plotlywidget-after-render": listen again after each announcement. A drag
  // that ends with a new selection in the layout is reported here, half a second after the button
  // is released, whether or not plotly's own report went out (then the kernel hears it twice, with
  // the same points but at the selection's border, where plotly tests in pixels and this in data).
  const removers = [];
  const attach = (event) => {
    const gd = event.detail && event.detail.element;
    if (!gd || !el.contains(gd)) return;
    let began = 0, seen = JSON.stringify((gd.layout && gd.layout.selections) || []);
    const check = () => {
      const all = (gd.layout && gd.layout.selections) || [];
      const key = JSON.stringify(all);
      if (key === seen) return;
      seen = key;
      const trace = gd.data && gd.data[0];
      if (!all.length || !trace || !trace.x || !trace.y) return;
      const test = inside(all[all.length - 1], trace.x, trace.y);
      if (!test) return;
      const points = [];
      for (let i = 0; i < trace.x.length; i++) if (test(i)) points.push({ curveNumber: 0, pointNumber: i, pointIndex: i, x: trace.x[i], y: trace.y[i] });
      gd.emit("plotly_selected", { points, selections: all, __dmlviz: true });
    };
    const down = () => { began = performance.now(); };
    const up = () => { if (!began) return; began = 0; setTimeout(check, 500); };
    gd.addEventListener("pointerdown", down, true);
    document.addEventListener("pointerup", up, true);
    removers.push(() => { gd.removeEventListener("pointerdown", down, true); document.removeEventListener("pointerup", up, true); });
  };
  document.addEventListener("plotlywidget-after-render", attach);
  return () => { document.removeEventListener("plotlywidget-after-render", attach); removers.forEach((remove) => remove()); };
}
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
    # The module itself must not be plotly's widget: anywidget would render the hidden PlotlyCode
    # as a figure without data (TypeError: reading 'height' of its missing layout, once per view).
    kept = ",".join(part for part in match.group(1).split(",") if part.strip().split(" as ")[-1].strip() != "default")
    return (
        code[: match.start()] + "export{" + kept + "}" + code[match.end():]
        + f"\n;{{const shared = (globalThis.__dmlvizPlotly ??= {{}}); shared.module = {default};"
        + f" if (shared.resolve) shared.resolve({default});}}\n"
        + "export default { render() {} };\n"
    )


class PlotlyCode(DeferredCode, anywidget.AnyWidget):
    """An invisible widget that brings plotly's front-end module to the page once (imported after its model is ready)."""

    _esm = DEFERRED_ESM

    def __init__(self) -> None:
        code = _registering_bundle() or "export default { render() {} };"
        super().__init__(**deferred(code), layout=widgets.Layout(display="none"))


@functools.lru_cache(maxsize=1)
def plotly_code() -> PlotlyCode:
    """The kernel's one PlotlyCode widget; every view that shows figures includes it (hidden)."""
    return PlotlyCode()


class FigureWidget(go.FigureWidget):
    """plotly's FigureWidget whose front-end code comes from :func:`plotly_code` instead of its own state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        shared = _registering_bundle() is not None
        if shared:
            plotly_code()  # its comm opens first, so the page starts loading plotly's module before this figure needs it
        self._dmlviz_esm = _SHIM if shared else None
        super().__init__(*args, **kwargs)

    @property
    def _esm(self) -> Any:  # read once by anywidget when the widget is made
        return self._dmlviz_esm or go.FigureWidget._esm


def resync_on_render(figure: Any, redraw: Callable[[], None]) -> None:
    """Call ``redraw`` once the browser has drawn ``figure`` for the first time.

    A page that connects to a kernel after the figure was made and updated (a Voila dashboard,
    a reloaded notebook) gets the figure's state, and plotly keeps in that state only the data
    the widget was made with: the updates sent since were messages with no page to receive them.
    After its first draw the page reports the drawn traces back (``_js2py_traceDeltas``; plotly
    7.1's front-end sends its layout as ``_js2py_widget_layoutDelta``, a name the kernel has no
    trait for, so ``_js2py_layoutDelta`` alone never comes); redrawing then sends the current
    data to a view that now exists.
    """
    done = []

    def handler(change: dict) -> None:
        if not done and change["new"]:
            done.append(True)
            figure.unobserve(handler, ["_js2py_traceDeltas", "_js2py_layoutDelta"])
            redraw()

    figure.observe(handler, ["_js2py_traceDeltas", "_js2py_layoutDelta"])

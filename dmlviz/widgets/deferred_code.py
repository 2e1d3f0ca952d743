"""Big anywidget front-end modules that load after their model is ready, so a slow page keeps every update.

anywidget (0.11) gives a model 2 s to import its ``_esm`` and run ``initialize``; past that its
``ready`` promise is rejected for good ("[anywidget] Failed to initialize model.") and every
later comm message to the model throws, so the widget silently drops its updates. plotly's
module (5 MB) and jupyter-scatter's (2 MB) take longer than that to parse on a loaded 2-core
machine: measured here with two busy processes beside the browser, the page logged the error.

Here the model's ``_esm`` is a few lines whose ``initialize`` returns at once; the real module
is imported in the background (once per page for the same code, keyed by its hash); ``render``
waits for it. Under ``dmlviz serve`` the module is a file that server serves (the kernel writes
it once, named by its hash; the state carries its address, ``_dmlviz_code_url``), so 7 MB of
module text stay out of the widget state and the browser can keep the files; a page that cannot
load the file asks the kernel, which then sends the text. Elsewhere (JupyterLab, another
server) the text travels in the trait ``_dmlviz_code``. Changes that arrive meanwhile are
applied to the model as usual, and the real module reads them when it renders. A module that
has its own ``initialize`` gets it called when it has loaded, before its first ``render``.

Order: a module can be told to wait for other modules' widgets to be drawn first
(``load_after``). A page's JavaScript runs on one thread, and evaluating plotly's module is
one long task (1.6 s on an idle page in this project's Chromium, twice that beside the rest
of a page loading): a large map's jupyter-scatter canvas, made at the same time, was drawn
only after it and after every plotly figure. A PointCanvas therefore tells plotly's module to
wait for it, so the 100,000-point explorer draws its points first and its plotly figures
follow (benchmarks/bench_map_scale.py --against measures the two orders side by side). The
wait ends at the latest AFTER_LIMIT_MS after it began (a canvas never shown, a hidden tab),
and the page's performance timeline says when it began and how it ended.

Reports: a page that has drawn a view says so (``{"type": "dmlviz-drawn"}``, once per widget,
:meth:`DeferredCode.on_drawn`); a jupyter-scatter view also reports each new set of points once
drawn (``{"type": "dmlviz-redrawn", "version": V}``, V being ``_dmlviz_points_version`` as the points
came, :meth:`DeferredCode.on_redrawn`). They arrive through ``_handle_custom_msg``, not ``on_msg``:
jupyter-scatter's widget overrides that method without calling ipywidgets' own, so ``on_msg``
callbacks never ran for it (until 2026-12-03 the large map's report was lost, and the views waiting
for it always waited their time limit).

jupyter-scatter views (``_dmlviz_drawn_when="regl-scatterplot"``): the page's one shared
jupyter-scatter renderer is kept as large as the largest view it draws, not as large as the
window (``fitSharedRenderer``). Without a GPU every frame costs in proportion to that renderer's
pixels; the views' pixels stay the same.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Callable

import traitlets

logger = logging.getLogger(__name__)

#: the longest a module waits for the widgets it is to follow (``_dmlviz_code_after``) to be drawn
AFTER_LIMIT_MS = 5000

DEFERRED_ESM = r"""
const shared = (globalThis.__dmlvizDeferred ??= { modules: new Map(), counts: new Map(), waiting: new Set() });
function fromText(code) {
  const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
  return import(url).finally(() => URL.revokeObjectURL(url));
}
// The module's text: from the model's state, or (when the state carries a file's address instead)
// asked of the kernel, which then sets it.
function text(model) {
  if (model.get("_dmlviz_code")) return Promise.resolve(model.get("_dmlviz_code"));
  return new Promise((resolve) => {
    model.on("change:_dmlviz_code", () => { if (model.get("_dmlviz_code")) resolve(model.get("_dmlviz_code")); });
    model.send({ type: "dmlviz-code" });
  });
}
function serverBase() {
  try {
    const config = JSON.parse(document.getElementById("jupyter-config-data")?.textContent || "{}");
    return new URL(config.baseUrl || "/", location.href);
  } catch (error) {
    return new URL("/", location.href);
  }
}
function load(model, key) {
  if (!shared.modules.has(key)) {
    performance.mark(`dmlviz:import ${key}`);
    const file = model.get("_dmlviz_code_url");
    const loading = file
      ? import(new URL(file, serverBase()).href).catch((error) => {
          console.warn("[dmlviz] a front-end module's file did not load; asking the kernel for its text", error);
          return text(model).then(fromText);
        })
      : text(model).then(fromText);
    shared.modules.set(key, loading.finally(() => performance.mark(`dmlviz:imported ${key}`)));
  }
  return shared.modules.get(key);
}
function count(key, what) {
  const c = shared.counts.get(key) ?? { made: 0, drawn: 0 };
  c[what] += 1;
  shared.counts.set(key, c);
  if (what === "drawn") performance.mark(`dmlviz:drawn ${key}`);
  for (const check of [...shared.waiting]) check();
}
// Resolves once every widget made so far with one of these modules has drawn (at least one
// of each), or after a time limit: a widget that is never shown holds nothing back for long.
// The page's performance timeline holds when the wait began and how it ended ("dmlviz:waiting KEY",
// "dmlviz:waited KEY" with detail "drawn" or "limit").
function after(keys, key) {
  if (!keys || !keys.length) return Promise.resolve();
  performance.mark(`dmlviz:waiting ${key}`);
  return new Promise((resolve) => {
    const drawn = () => keys.every((k) => { const c = shared.counts.get(k); return c && c.drawn > 0 && c.drawn >= c.made; });
    const done = (how) => {
      shared.waiting.delete(check);
      clearTimeout(timer);
      performance.mark(`dmlviz:waited ${key}`, { detail: how });
      resolve();
    };
    const check = () => { if (drawn()) done("drawn"); };
    const timer = setTimeout(() => done("limit"), AFTER_LIMIT_MS);
    shared.waiting.add(check);
    check();
  });
}
const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
// jupyter-scatter draws every view on the page with one WebGL renderer (window.jupyterScatter.renderer)
// whose canvas is as large as the browser window, and copies each view's part out of it. Without a GPU
// (SwiftShader) each frame costs in proportion to that canvas's pixels. Here the renderer is kept as
// large as the largest view it has drawn that is still on the page (any jupyter-scatter view, not only
// dmlviz's), and no larger: the same pixels; a 728x520 map in a 1400x1000 window clears and copies a quarter as many.
// Nothing is changed when the renderer is not the object this expects.
function fitSharedRenderer() {
  const renderer = globalThis.jupyterScatter?.renderer;
  if (!renderer || renderer.__dmlvizFitted || !renderer.canvas
      || !["render", "resize", "refresh"].every((name) => typeof renderer[name] === "function")) return;
  renderer.__dmlvizFitted = true;
  const targets = new Set();
  const render = renderer.render;
  renderer.render = (draw, target) => {
    if (target) targets.add(target);
    let width = 0;
    let height = 0;
    for (const t of [...targets]) {
      if (!t.isConnected) { targets.delete(t); continue; }
      width = Math.max(width, t.width);
      height = Math.max(height, t.height);
    }
    const canvas = renderer.canvas;
    if (canvas && width > 0 && height > 0 && (canvas.width !== width || canvas.height !== height)) {
      const ratio = window.devicePixelRatio || 1;
      renderer.resize((width + 0.5) / ratio, (height + 0.5) / ratio);  // its canvas: exactly width x height pixels
      renderer.refresh();
    }
    return render(draw, target);
  };
}
// When a view has been drawn: two animation frames after its render; for a jupyter-scatter view
// (`_dmlviz_drawn_when` "regl-scatterplot"), once the regl-scatterplot on its container (`api`)
// reports its points drawn: its render returns before it has even made the scatterplot.
async function drawn(el, when) {
  if (when === "regl-scatterplot") {
    const start = performance.now();
    while (performance.now() - start < AFTER_LIMIT_MS) {
      const holder = [...el.querySelectorAll("div")].find((d) => d.api && typeof d.api.get === "function");
      if (holder && holder.api.get("isPointsDrawn")) break;
      await frame();
    }
  }
  await frame();
  await frame();
}
// New points (an epoch): resolves at the scatterplot's next "draw" event, or at its first points
// drawn if it is not made yet; "limit" after AFTER_LIMIT_MS.
async function redrawn(el) {
  const t0 = performance.now(), late = () => performance.now() - t0 > AFTER_LIMIT_MS;
  const find = () => [...el.querySelectorAll("div")].find((d) => d.api && typeof d.api.subscribe === "function");
  let h = find();
  if (!h) {
    while (!h && !late()) { await frame(); h = find(); }
    while (h && !h.api.get("isPointsDrawn") && !late()) await frame();
    return h && h.api.get("isPointsDrawn") ? "drawn" : "limit";
  }
  return new Promise((resolve) => {
    let timer = null;
    const done = (how) => { clearTimeout(timer); h.api.unsubscribe?.(sub); resolve(how); };
    const sub = h.api.subscribe("draw", () => done("drawn"), 1);
    timer = setTimeout(() => done("limit"), AFTER_LIMIT_MS - (performance.now() - t0));
  });
}
export default () => {
  let widget = null;
  let key = null;
  let counted = false;
  return {
    initialize({ model }) {
      key = model.get("_dmlviz_code_key");
      count(key, "made");
      // not awaited: anywidget rejects a model whose initialize takes more than 2 s
      widget = after(model.get("_dmlviz_code_after"), key).then(() => load(model, key)).then(async (module) => {
        const made = typeof module.default === "function" ? await module.default() : module.default;
        if (made.initialize) await made.initialize({ model });
        return made;
      });
      widget.catch((error) => console.error("[dmlviz] a widget's front-end module failed to load", error));
    },
    async render(context) {
      const cleanup = await (await widget).render(context);
      if (context.model.get("_dmlviz_drawn_when") === "regl-scatterplot") fitSharedRenderer();
      if (!counted) {
        counted = true;
        drawn(context.el, context.model.get("_dmlviz_drawn_when")).then(() => {
          count(key, "drawn");
          context.model.send({ type: "dmlviz-drawn" });  // the kernel may now start work it held back (see DeferredCode.on_drawn)
        });
      }
      if (context.model.get("_dmlviz_drawn_when") !== "regl-scatterplot") return cleanup;
      // each new set of points (with a new _dmlviz_points_version), once drawn, is reported (DeferredCode.on_redrawn)
      const onPoints = () => {
        const version = context.model.get("_dmlviz_points_version");
        redrawn(context.el).then((how) => context.model.send({ type: "dmlviz-redrawn", version, how }));
      };
      context.model.on("change:_dmlviz_points_version", onPoints);
      return () => {
        context.model.off("change:_dmlviz_points_version", onPoints);
        if (typeof cleanup === "function") cleanup();
      };
    },
  };
};
""".replace("AFTER_LIMIT_MS", str(AFTER_LIMIT_MS))


class DeferredCode(traitlets.HasTraits):
    """Mixin for an anywidget whose ``_esm`` is :data:`DEFERRED_ESM`: the real module (its text, or a file's address) and its key."""

    _dmlviz_code = traitlets.Unicode("export default { render() {} };").tag(sync=True)
    _dmlviz_code_key = traitlets.Unicode("").tag(sync=True)
    #: the module's file, relative to the server's base URL ("" = the text travels in ``_dmlviz_code``)
    _dmlviz_code_url = traitlets.Unicode("").tag(sync=True)
    #: the module's text, kept in the kernel (not synced) for a page that cannot load the file
    _dmlviz_code_text = traitlets.Unicode("")
    #: keys of modules whose widgets this module waits to see drawn before it is imported
    _dmlviz_code_after = traitlets.List(traitlets.Unicode()).tag(sync=True)
    #: how the page tells that a view of this widget has been drawn: "" (two frames after its render) or "regl-scatterplot"
    _dmlviz_drawn_when = traitlets.Unicode("").tag(sync=True)
    #: bumped with each new set of points (jupyter-scatter views); a page reports each version drawn (see :meth:`on_redrawn`)
    _dmlviz_points_version = traitlets.Int(0).tag(sync=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._dmlviz_when_drawn: list[Callable[[], None]] = []
        self._dmlviz_when_redrawn: list[Callable[[int], None]] = []
        super().__init__(*args, **kwargs)

    def _handle_custom_msg(self, content: Any, buffers: Any) -> None:
        """A page's custom message: dmlviz's own (see :meth:`_dmlviz_message`) here, any other to the widget's class.

        Not ``on_msg``: jupyter-scatter's widget overrides ``_handle_custom_msg`` without calling
        ipywidgets' own, so callbacks given to ``on_msg`` never run for it (the page's reports were lost).
        """
        if isinstance(content, dict) and str(content.get("type", "")).startswith("dmlviz-"):
            self._dmlviz_message(content)
        else:
            super()._handle_custom_msg(content, buffers)

    def _dmlviz_message(self, content: dict) -> None:
        """The page's messages: a page that could not load the module's file asks for its text (it comes in
        ``_dmlviz_code``); a page that has drawn a view of this widget says so (see :meth:`on_drawn`, :meth:`on_redrawn`)."""
        if content.get("type") == "dmlviz-code" and self._dmlviz_code_text:
            self._dmlviz_code = self._dmlviz_code_text
        elif content.get("type") == "dmlviz-redrawn":
            version = content.get("version")
            if isinstance(version, bool) or not isinstance(version, int):
                return
            for callback in list(self._dmlviz_when_redrawn):
                try:
                    callback(version)
                except Exception:
                    logger.exception("a callback run when a view was drawn again failed")
        elif content.get("type") == "dmlviz-drawn":
            callbacks, self._dmlviz_when_drawn = self._dmlviz_when_drawn, []
            for callback in callbacks:
                try:
                    callback()
                except Exception:  # one failing callback does not keep the others from running
                    logger.exception("a callback run when a view was drawn failed")

    def on_drawn(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (once, on the kernel's thread) when a page reports a view of this widget drawn.

        For a jupyter-scatter view that is when its points are on the canvas (``_dmlviz_drawn_when``); a
        page reports it once per widget. Nothing calls it if no page ever shows the widget.
        """
        self._dmlviz_when_drawn.append(callback)

    def on_redrawn(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(version)`` (on the kernel's thread) each time a page reports new points of this widget drawn.

        Only jupyter-scatter views (``_dmlviz_drawn_when="regl-scatterplot"``) report it: after each
        bump of ``_dmlviz_points_version`` (sent with new ``points``), once their scatterplot has drawn a
        frame (or after AFTER_LIMIT_MS); ``version`` is the value the page had when the points came.
        """
        self._dmlviz_when_redrawn.append(callback)

    def load_after(self, key: str) -> None:
        """Import this widget's module only once the widgets carrying the module ``key`` are drawn (waiting AFTER_LIMIT_MS at most)."""
        if key not in self._dmlviz_code_after:
            self._dmlviz_code_after = [*self._dmlviz_code_after, key]


#: environment variable naming the folder where a dmlviz server serves modules from (set by ``dmlviz serve``)
MODULES_ENV = "DMLVIZ_MODULES_DIR"
#: where, under that folder and under the server's base URL, the module files are
MODULES_PATH = "voila/templates/dmlviz/static/modules"


def deferred(code: str) -> dict[str, str]:
    """Constructor arguments of a :class:`DeferredCode` widget that carries ``code`` (an ES module's text).

    In a kernel of a dmlviz server (``DMLVIZ_MODULES_DIR`` set, see :func:`dmlviz.serve.serve_env`)
    the module is written once to a file that server serves, named by its hash, and the widget's
    state carries the file's address instead of the text: the page fetches it (and its browser
    can keep it) instead of receiving megabytes of text in the widget state. Anywhere else
    (JupyterLab, another server) the text travels in the state.
    """
    return dict(_deferred(code, os.environ.get(MODULES_ENV, "")))


@functools.lru_cache(maxsize=8)
def _deferred(code: str, folder: str) -> tuple[tuple[str, str], ...]:
    key = hashlib.sha1(code.encode()).hexdigest()
    if folder:
        target = Path(folder) / MODULES_PATH / f"{key}.js"
        try:
            if not target.is_file() or target.stat().st_size != len(code.encode()):
                target.parent.mkdir(parents=True, exist_ok=True)
                part = target.with_name(f"{key}.{os.getpid()}.part")
                part.write_text(code, encoding="utf-8")
                os.replace(part, target)  # whole or absent: several kernels may write it at once
            return (("_dmlviz_code", ""), ("_dmlviz_code_key", key), ("_dmlviz_code_url", f"{MODULES_PATH}/{key}.js?v={key[:12]}"),
                    ("_dmlviz_code_text", code))
        except OSError as error:
            logger.warning("could not write a front-end module to %s (%s); its text travels in the widget state", target, error)
    return (("_dmlviz_code", code), ("_dmlviz_code_key", key), ("_dmlviz_code_text", code))

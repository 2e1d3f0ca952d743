"""Big anywidget front-end modules that load after their model is ready, so a slow page keeps every update.

anywidget (0.11) gives a model 2 s to import its ``_esm`` and run ``initialize``; past that its
``ready`` promise is rejected for good ("[anywidget] Failed to initialize model.") and every
later comm message to the model throws, so the widget silently drops its updates. plotly's
module (5 MB) and jupyter-scatter's (2 MB) take longer than that to parse on a loaded 2-core
machine: measured here with two busy processes beside the browser, the page logged the error.

Here the model's ``_esm`` is a few lines whose ``initialize`` returns at once; the real module
travels in the trait ``_dmlviz_code`` and is imported in the background (once per page for the
same code, keyed by its hash); ``render`` waits for it. Changes that arrive meanwhile are
applied to the model as usual, and the real module reads them when it renders. A module that
has its own ``initialize`` gets it called when it has loaded, before its first ``render``.
"""

from __future__ import annotations

import functools
import hashlib

import traitlets

DEFERRED_ESM = """
const modules = (globalThis.__dmlvizDeferred ??= new Map());
function load(code, key) {
  if (!modules.has(key)) {
    const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
    modules.set(key, import(url).finally(() => URL.revokeObjectURL(url)));
  }
  return modules.get(key);
}
export default () => {
  let widget = null;
  return {
    initialize({ model }) {
      // not awaited: anywidget rejects a model whose initialize takes more than 2 s
      widget = load(model.get("_dmlviz_code"), model.get("_dmlviz_code_key")).then(async (module) => {
        const made = typeof module.default === "function" ? await module.default() : module.default;
        if (made.initialize) await made.initialize({ model });
        return made;
      });
      widget.catch((error) => console.error("[dmlviz] a widget's front-end module failed to load", error));
    },
    async render(context) {
      return (await widget).render(context);
    },
  };
};
"""


class DeferredCode(traitlets.HasTraits):
    """Mixin for an anywidget whose ``_esm`` is :data:`DEFERRED_ESM`: the real module's text and its key."""

    _dmlviz_code = traitlets.Unicode("export default { render() {} };").tag(sync=True)
    _dmlviz_code_key = traitlets.Unicode("").tag(sync=True)


@functools.lru_cache(maxsize=8)
def deferred(code: str) -> dict[str, str]:
    """Constructor arguments of a :class:`DeferredCode` widget that carries ``code`` (an ES module's text)."""
    return {"_dmlviz_code": code, "_dmlviz_code_key": hashlib.sha1(code.encode()).hexdigest()}

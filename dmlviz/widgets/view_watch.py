"""A widget that tells the kernel how many views of it a page shows, so live work stops when the last one closes."""

from __future__ import annotations

from typing import Any, Callable

import anywidget
import ipywidgets as widgets
import traitlets

_ESM = """
export default {
  render({ model, el }) {
    model.send({ event: "open" });
    return () => { try { model.send({ event: "close" }); } catch (e) { /* the kernel is gone */ } };
  },
};
"""


class ViewWatch(anywidget.AnyWidget):
    """Invisible; counts its views (each render says "open", each removal "close") and calls ``on_last_closed`` at zero.

    Put it inside the widget whose views matter: closing a JupyterLab tab or a Voila page removes its views.
    """

    _esm = traitlets.Unicode(_ESM).tag(sync=True)
    views = traitlets.Int(0)

    def __init__(self, on_last_closed: Callable[[], None]) -> None:
        super().__init__(layout=widgets.Layout(display="none"))
        self._on_last_closed = on_last_closed
        self.on_msg(self._message)

    def _message(self, _: Any, content: dict, buffers: Any) -> None:
        event = content.get("event") if isinstance(content, dict) else None
        if event == "open":
            self.views += 1
        elif event == "close":
            self.views = max(0, self.views - 1)
            if self.views == 0:
                self._on_last_closed()

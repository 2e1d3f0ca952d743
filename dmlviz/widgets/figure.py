"""Plotly FigureWidget helpers."""

from __future__ import annotations

from typing import Any, Callable


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

"""Merge timeline: effective K per class over the epochs, for a chosen ε."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..eval.centers import effective_k
from .figure import FigureWidget, plotly_code, resync_on_render
from .state import ExplorerState, after_the_map


class MergeTimeline(widgets.VBox):
    """Classes × epochs heatmap of effective K and the mean curve; an ε control recomputes it;
    clicking an epoch moves the shared epoch."""

    def __init__(self, state: ExplorerState, max_classes: int = 60) -> None:
        self.state, self.max_classes = state, max_classes
        # (epoch, eps) -> (center classes [C'], effective K [C'], centers kind): a few ints per class, never the centers
        self._columns: dict[tuple[int, float], tuple[np.ndarray, np.ndarray, str]] = {}
        self.eps = widgets.BoundedFloatText(value=state.eps, min=1e-4, max=2.0, step=0.01, description="ε", layout=widgets.Layout(width="150px"))
        self.eps.add_class("dmlviz-eps")
        self.note = widgets.HTML()
        figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32], vertical_spacing=0.04)
        figure.add_trace(go.Heatmap(z=[[0]], colorscale="Blues", reversescale=False, colorbar=dict(title="eff. K", thickness=10, len=0.65, y=0.68), hovertemplate="epoch %{x}<br>class %{y}<br>effective K %{z}<extra></extra>"), row=1, col=1)
        figure.add_trace(go.Scatter(mode="lines+markers", name="mean effective K", line=dict(color="#1f77b4"), hovertemplate="epoch %{x}: mean %{y:.2f}<extra></extra>"), row=2, col=1)
        figure.update_layout(height=360, margin=dict(l=10, r=10, t=30, b=30), showlegend=False, title=dict(text="centers merging: effective K per class", font=dict(size=13)))
        self.figure: Any = figure
        self.eps.observe(lambda c: setattr(state, "eps", float(c["new"])), "value")
        state.observe(self._on_eps, "eps")
        state.observe(lambda c: self.refresh(), ["epochs", "run"])
        state.observe(after_the_map(self._mark_epoch, state=state), "epoch")
        self.refresh()  # the first frame goes into the figure the widget is made from (see figure.py)
        self.figure = FigureWidget(figure)
        self.figure.data[0].on_click(self._on_click)
        self.figure.data[1].on_click(self._on_click)
        resync_on_render(self.figure, self.refresh)
        super().__init__([plotly_code(), widgets.HBox([self.eps, self.note]), self.figure])
        self.add_class("dmlviz-merge-timeline")

    def _on_eps(self, change: Any) -> None:
        self.eps.value = change["new"]
        self.refresh()

    def _load(self, epoch: int) -> tuple[np.ndarray, np.ndarray, str]:
        """(center classes, effective K under the state's ε, kind) of one epoch.

        The snapshot's own effective K is read when ε is the one it was recorded with;
        otherwise the epoch's centers are read, counted and let go, so memory holds a few
        integers per class and epoch, never every epoch's centers.
        """
        eps = float(self.state.eps)
        key = (epoch, eps)
        if key not in self._columns:
            run = self.state.run
            arrays = run.arrays(epoch, "center_classes", "centers_kind", "effective_k", "eps")
            if np.isclose(float(arrays["eps"]), eps, rtol=0, atol=1e-12):
                column = arrays["effective_k"]
            else:
                centers = run.arrays(epoch, "centers")["centers"]
                column = effective_k(centers, eps=eps) if centers.size else np.zeros(len(arrays["center_classes"]), dtype=np.int64)
            self._columns[key] = (arrays["center_classes"], np.asarray(column, dtype=np.int64), str(arrays["centers_kind"]))
        return self._columns[key]

    def table(self) -> tuple[list[int], np.ndarray, np.ndarray]:
        """(epochs, class ids [C'], effective K [C', epochs]) under the state's ε."""
        state = self.state
        epochs = list(state.epochs)
        if state.run is None or not epochs:
            return [], np.array([], dtype=np.int64), np.zeros((0, 0), dtype=np.int64)
        classes = self._load(epochs[-1])[0]
        columns = []
        for epoch in epochs:
            center_classes, column, _ = self._load(epoch)
            if len(column) != len(classes) or not np.array_equal(center_classes, classes):
                column = np.zeros(len(classes), dtype=np.int64)  # a snapshot without centers (or of other classes)
            columns.append(column)
        return epochs, classes, np.stack(columns, axis=1) if columns else np.zeros((len(classes), 0))

    def refresh(self) -> None:
        """Recompute effective K for every epoch and class and redraw."""
        if self.state.run is None or getattr(self, "_run", None) is not self.state.run:
            self._columns.clear()
            self._run = self.state.run
        epochs, classes, table = self.table()
        state = self.state
        if not epochs or not len(classes):
            self.note.value = "no centers recorded"
            with self.figure.batch_update():
                self.figure.data[0].z = [[None]]
                self.figure.data[1].x, self.figure.data[1].y = [], []
            return
        kind = self._load(epochs[-1])[2]
        names = self.state.snapshot(epochs[-1]).class_names
        shown = np.arange(len(classes))
        note = f"two centers merge when closer than ε (Euclidean, unit vectors); {len(classes)} classes"
        if len(classes) > self.max_classes:
            # show the classes whose effective K changed most, the mean curve still covers all
            change = table[:, 0] - table[:, -1]
            shown = np.sort(np.argsort(-change, kind="stable")[: self.max_classes])
            note += f"; heatmap shows the {self.max_classes} classes that merged most"
        if kind != "learned":
            note = "this loss has no centers: one class mean per class, effective K is 1 throughout"
        self.note.value = f'<span style="font-size:12px;color:#555">{note}</span>'
        with self.figure.batch_update():
            heat = self.figure.data[0]
            heat.z = table[shown]
            heat.x = epochs
            heat.y = [str(names[c]) for c in classes[shown]]
            heat.zmin, heat.zmax = 1, max(int(table.max()), 2)
            self.figure.data[1].x = epochs
            self.figure.data[1].y = table.mean(axis=0)
        self._mark_epoch()

    def _mark_epoch(self) -> None:
        epoch = self.state.epoch
        self.figure.layout.shapes = [
            dict(type="line", xref="x", yref="paper", x0=epoch, x1=epoch, y0=0, y1=1, line=dict(color="#d62728", width=2, dash="dot"))
        ]

    def _on_click(self, trace: Any, points: Any, selector: Any) -> None:
        if points.xs:
            self.state.epoch = int(points.xs[0])

"""Metrics view: Recall@K, MAP@R, NMI, the sub-mode score and the loss over epochs, the current epoch marked."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .figure import FigureWidget, plotly_code, resync_on_render
from .state import ExplorerState, after_the_map

SCORES = ("recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision", "ndcg@8", "nmi", "submode_score", "submode_score_train")
#: Shown at first; the others are a legend click away.
VISIBLE = ("recall@1", "map@r", "nmi", "submode_score", "submode_score_train")
#: Legend names that say what is computed on which samples.
NAMES = {
    "submode_score": "sub-mode score (held-out probe samples)",
    "submode_score_train": "sub-mode score (training probe samples)",
}
TITLE = (
    "Recall@K, MAP@R, R-precision, NMI: every test-split sample · sub-mode score: the probe, "
    "0 = centers independent of the hidden fine labels, 1 = one center per fine label"
)


def _finite(values: Any) -> list[float | None]:
    """Values with NaN as None: widget messages are strict JSON (plotly draws None as a gap)."""
    return [float(v) if v == v else None for v in values]


class MetricsView(widgets.VBox):
    """Retrieval and clustering metrics (left axis, 0–1) and the training loss (right axis) per epoch."""

    def __init__(self, state: ExplorerState) -> None:
        self.state = state
        self._table = None
        self._chances: dict[str, float] = {}
        figure = make_subplots(specs=[[{"secondary_y": True}]])
        figure.update_layout(height=330, margin=dict(l=10, r=10, t=30, b=30), hovermode="x unified",
                             title=dict(text=TITLE, font=dict(size=11)),
                             legend=dict(orientation="h", y=-0.2, font=dict(size=10)))
        figure.update_yaxes(title_text="score", range=[-0.05, 1.02], secondary_y=False)
        figure.update_yaxes(title_text="loss", secondary_y=True, showgrid=False, tickformat=".3g")
        self.figure: Any = figure
        self.summary = widgets.HTML()
        state.observe(lambda c: self.refresh(), ["epochs", "run"])
        state.observe(after_the_map(self._mark_epoch, state=state), "epoch")
        self.refresh()  # the first frame goes into the figure the widget is made from (see figure.py)
        self.figure = FigureWidget(figure)
        for trace in self.figure.data:
            trace.on_click(self._on_click)
        resync_on_render(self.figure, self.refresh)
        super().__init__([plotly_code(), self.summary, self.figure])
        self.add_class("dmlviz-metrics")

    def refresh(self) -> None:
        """Re-read metrics.csv and redraw."""
        state = self.state
        table = self._table = state.run.metrics if state.run is not None else None
        self._chances = state.run.chance_levels(table) if state.run is not None and state.epochs else {}
        with self.figure.batch_update():
            self.figure.data = []
            if table is None or not len(table):
                self.summary.value = "no metrics recorded yet"
                return
            for column in SCORES:
                if column in table and table[column].notna().any():
                    visible = True if column in VISIBLE else "legendonly"
                    self.figure.add_trace(go.Scatter(x=table["epoch"], y=_finite(table[column]), name=NAMES.get(column, column), mode="lines+markers", visible=visible), secondary_y=False)
            for column, name, colour in (("recall@1", "recall@1 by chance", "#999"), ("nmi", "NMI by chance (random clusters of the class sizes)", "#bbb")):
                if column in self._chances and column in table:
                    self.figure.add_trace(go.Scatter(x=table["epoch"], y=[self._chances[column]] * len(table), name=name, mode="lines",
                                                     line=dict(color=colour, dash="dot"), hoverinfo="skip"), secondary_y=False)
            if "loss" in table:
                self.figure.add_trace(go.Scatter(x=table["epoch"], y=_finite(table["loss"]), name="loss", mode="lines", line=dict(color="#444", dash="dash")), secondary_y=True)
        if isinstance(self.figure, FigureWidget):
            for trace in self.figure.data:
                trace.on_click(self._on_click)
        self._mark_epoch()

    def _mark_epoch(self) -> None:
        state = self.state
        self.figure.layout.shapes = [dict(type="line", xref="x", yref="paper", x0=state.epoch, x1=state.epoch, y0=0, y1=1, line=dict(color="#d62728", width=2, dash="dot"))]
        table = self._table
        if table is None or not len(table) or state.epoch not in set(table["epoch"]):
            return
        row = table[table["epoch"] == state.epoch].iloc[0]
        parts = []
        for column in VISIBLE:
            if column in row and row[column] == row[column]:
                level = f" (chance {self._chances['nmi']:.3f})" if column == "nmi" and "nmi" in self._chances else ""
                parts.append(f"{NAMES.get(column, column)} <b>{row[column]:.3f}</b>{level}")
        self.summary.value = f'<div class="dmlviz-metrics-summary">epoch {state.epoch}: ' + " · ".join(parts) + "</div>"

    def _on_click(self, trace: Any, points: Any, selector: Any) -> None:
        if points.xs:
            self.state.epoch = int(points.xs[0])

"""Distance view: positive and negative pair distances on the probe per epoch, their overlap, and MDR's levels."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..eval.distances import MAX_POINTS, histogram_counts, histogram_overlap, measured, pair_distances, sample_rows, separation_auc, shared_bins
from .figure import FigureWidget, plotly_code, resync_on_render
from .state import ExplorerState, after_the_map, map_pending, once_the_map_is_drawn

POSITIVE, NEGATIVE, LEVEL = "#2ca02c", "#d62728", "#1f77b4"
#: figure width in px: fits the side tab in JupyterLab (≈ 390 px) and in Voila
WIDTH = 370
#: epochs whose pair distances are kept (each up to 2 M float64 values)
KEPT = 3
SCALES = {
    "unit": "Euclidean distances between the L2-normalised embeddings (as the loss measured them)",
    "raw": "Euclidean distances between the embeddings as the model outputs them (the loss does not normalise them)",
    "ball": "Euclidean distances between the embeddings divided by their norm where it exceeds 1 (as the loss measured them: CCP's unit ball)",
    "mean_distance": "Euclidean distances between the embeddings divided by their mean pairwise distance (as the loss measured them: MDR's “learning without L2 norm”)",
}


class DistanceView(widgets.VBox):
    """Histograms of positive-pair and negative-pair distances at the shared epoch and split; for a run
    with MDR the x axis is in its levels' units and the levels are drawn, with their path over epochs below."""

    def __init__(self, state: ExplorerState, max_points: int = MAX_POINTS, bins: int = 60, shown: bool = True) -> None:
        self.state, self.max_points, self.bins = state, max_points, bins
        #: whether the view is on screen (see :meth:`show`); hidden, it measures nothing and redraws once shown
        self.shown = bool(shown)
        self._stale = False
        self._cache: dict[tuple[str, int, str], dict[str, Any]] = {}
        self._level_cache: dict[int, np.ndarray] = {}
        self._scores: dict[tuple[str, int, str], tuple[float, float]] = {}
        self.summary = widgets.HTML()
        self.summary.add_class("dmlviz-distance-summary")
        self.how = widgets.HTML()
        # Two panels that do not share axes: the histograms (x2, y2) and MDR's levels over epochs (x, y) below
        # them. Without MDR the levels' panel is hidden and the histograms take the whole height; they are the
        # second subplot so that they are drawn over the hidden panel's background, not under it.
        figure = make_subplots(rows=2, cols=1, vertical_spacing=0.1)
        figure.add_trace(go.Scatter(mode="lines+markers", line=dict(color=LEVEL), marker=dict(size=4), name="MDR levels over epochs",
                                    hovertemplate="level %{x:.3f} at epoch %{y}<extra></extra>"), row=1, col=1)
        for name, colour in (("positive pairs (same class)", POSITIVE), ("negative pairs", NEGATIVE)):
            figure.add_trace(go.Bar(marker=dict(color=colour, line=dict(width=0)), opacity=0.55, name=name,
                                    hovertemplate="%{x:.3f}: %{y:.3f}<extra>" + name + "</extra>"), row=2, col=1)
        # a fixed width: the figure is made in a hidden tab, where plotly would take 700 px (wider than the tab)
        figure.update_layout(barmode="overlay", bargap=0, width=WIDTH, height=420, margin=dict(l=10, r=10, t=80, b=10),
                             legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom", font=dict(size=10)),
                             title=dict(text="pair distances on the probe", font=dict(size=13), y=0.98, yanchor="top"))
        figure.update_yaxes(title_text="epoch", row=1, col=1)
        figure.update_yaxes(title_text="fraction of pairs", row=2, col=1)
        self.figure: Any = figure
        state.observe(lambda c: self._reset(), ["run"])
        state.observe(lambda c: self.refresh(), ["epochs", "split"])
        state.observe(after_the_map(self.refresh, self._prepare, state=state), "epoch")
        if not self.shown:
            self._stale = True  # measured once shown (see show)
        elif map_pending(state):  # a large map's page is loading: the histograms (0.45 s at 100,000 samples) wait for its points
            once_the_map_is_drawn(state, self.refresh, self._prepare)  # (this tab is not shown first; its figure's first
            # draw asks for the current data anyway: resync_on_render)
        else:
            self.refresh()  # the first frame goes into the figure the widget is made from (see figure.py)
        self.figure = FigureWidget(figure)
        resync_on_render(self.figure, self.refresh)
        super().__init__([plotly_code(), self.summary, self.figure, self.how])
        self.add_class("dmlviz-distances")

    def _reset(self) -> None:
        self._cache.clear()
        self._level_cache.clear()
        self._scores.clear()
        self.refresh()

    @property
    def embedding_scale(self) -> str:
        """How the run's loss measured distances ("unit" or "mean_distance")."""
        run = self.state.run
        return str(run.config.get("embedding_scale", "unit")) if run is not None else "unit"

    def distances(self, epoch: int, split: str | None = None) -> dict[str, Any]:
        """{positive, negative, units, levels, mean, std, rows} of one epoch on the probe rows of ``split``."""
        split = self.state.split if split is None else split
        run = self.state.run
        key = (str(run.path) if run is not None else "", int(epoch), split)  # the run too: a worker may prepare it (after_the_map)
        if key not in self._cache:
            snap = self.state.snapshot(epoch)
            mask = None if split == "all" else snap.split == split
            rows = sample_rows(snap.labels, mask, self.max_points, seed=0)
            x = measured(snap.embeddings[rows], snap.norms[rows], self.embedding_scale)
            levels = mean = std = None
            if run is not None and run.config.get("regularizer") == "mdr":
                extra = run.arrays(epoch, "mdr_levels", "mdr_running_mean", "mdr_running_std")
                levels, mean, std = extra["mdr_levels"], float(extra["mdr_running_mean"]), float(extra["mdr_running_std"])
            pairs = pair_distances(x, snap.labels[rows], running_mean=mean, running_std=std)
            found = dict(positive=pairs.positive, negative=pairs.negative, units=pairs.units, levels=levels, mean=mean, std=std, rows=len(rows))
            if self.state.run is not run:  # the run changed meanwhile: answer, keep nothing
                return found
            while len(self._cache) >= KEPT:  # up to 2 M distances each: keep a few epochs, not all of them
                self._cache.pop(next(iter(self._cache)), None)
            self._cache[key] = found
        return self._cache[key]

    def _levels(self, epoch: int) -> np.ndarray:
        """MDR's levels [3] at ``epoch``, read once per epoch (the path over epochs is redrawn on every epoch change)."""
        if epoch not in self._level_cache:
            self._level_cache[epoch] = np.asarray(self.state.run.arrays(epoch, "mdr_levels")["mdr_levels"], dtype=float)
        return self._level_cache[epoch]

    def scores(self, epoch: int, split: str | None = None) -> tuple[float, float]:
        """(overlap of the two histograms, separation AUC) at ``epoch`` (two numbers kept per epoch and split)."""
        run = self.state.run
        key = (str(run.path) if run is not None else "", int(epoch), self.state.split if split is None else split)
        if key not in self._scores:
            d = self.distances(epoch, split)
            bins = shared_bins(d["positive"], d["negative"], count=self.bins)
            self._scores[key] = (histogram_overlap(d["positive"], d["negative"], bins), separation_auc(d["positive"], d["negative"]))
        return self._scores[key]

    def show(self, shown: bool) -> None:
        """Say whether the view is on screen (the explorer: whether its tab is selected).

        A hidden view computes nothing on an epoch change; shown again, it measures the state's epoch
        (in a worker thread, in a kernel) and redraws. At 100,000 probe samples one epoch's pair
        distances and scores cost 0.3–0.45 s of both cores, which then ran after every epoch switch
        beside the map's next one, for a tab nobody was looking at.
        """
        self.shown = bool(shown)
        if not (self.shown and self._stale):
            return
        self._stale = False
        state = self.state
        if state.run is not None and state.epochs:
            self.summary.value = f'<div style="font-size:12px">epoch {state.epoch}: measuring the pair distances…</div>'
        after_the_map(self.refresh, self._prepare, delay=0.0)()

    def _prepare(self) -> None:
        """The current epoch's distances and scores (and the first epoch's), computed ahead in a worker thread (after_the_map)."""
        state = self.state
        if self.shown and state.run is not None and state.epochs:
            self.scores(state.epoch)
            self.scores(state.epochs[0])

    def refresh(self) -> None:
        """Redraw for the state's epoch and split (a hidden view only notes that it is out of date: see :meth:`show`)."""
        if not self.shown:
            self._stale = True
            return
        state = self.state
        if state.run is None or not state.epochs:
            self.summary.value = "no epoch recorded yet"
            return
        epoch, first = state.epoch, state.epochs[0]
        d = self.distances(epoch)
        pos, neg = d["positive"], d["negative"]
        bins = shared_bins(pos, neg, *( [np.asarray(d["levels"])] if d["levels"] is not None else []), count=self.bins)
        centres = 0.5 * (bins[1:] + bins[:-1])
        fractions = [histogram_counts(v, bins) / max(len(v), 1) for v in (pos, neg)]
        overlap, auc = self.scores(epoch)
        overlap0, auc0 = self.scores(first)
        path_x: list[float | None] = []
        path_y: list[int | None] = []
        shapes = []
        if d["levels"] is not None:
            table = np.stack([self._levels(e) for e in state.epochs])
            for k in range(table.shape[1]):
                path_x += [*table[:, k].tolist(), None]
                path_y += [*state.epochs, None]
            for level in np.asarray(d["levels"], dtype=float):
                shapes.append(dict(type="line", xref="x2", yref="y2 domain", x0=level, x1=level, y0=0, y1=1, line=dict(color=LEVEL, width=2, dash="dash")))
            shapes.append(dict(type="line", xref="x domain", yref="y", x0=0, x1=1, y0=epoch, y1=epoch, line=dict(color="#d62728", width=1, dash="dot")))
        with self.figure.batch_update():
            for trace, values in zip(self.figure.data[1:], fractions):
                trace.x, trace.y, trace.width = centres.tolist(), values.tolist(), float(bins[1] - bins[0])
            mdr = d["levels"] is not None
            levels = self.figure.data[0]
            levels.x, levels.y, levels.visible = path_x, path_y, mdr
            self.figure.layout.shapes = shapes
            units = "d̂ = (d − μ)/σ, MDR's units" if d["units"] == "mdr" else "distance"
            pad = 0.03 * float(bins[-1] - bins[0])
            span = [float(bins[0]) - pad, float(bins[-1]) + pad]
            lay = self.figure.layout
            lay.yaxis2.domain = [0.36, 1.0] if mdr else [0.0, 1.0]
            lay.yaxis.domain = [0.0, 0.24]
            lay.xaxis.range, lay.xaxis2.range = span, span
            lay.xaxis2.title.text = None if mdr else units
            lay.xaxis.title.text = units
            lay.xaxis.visible = lay.yaxis.visible = mdr
            lay.xaxis2.showticklabels = not mdr
        where = {"all": "all probe samples", "train": "training-split probe samples", "test": "held-out probe samples"}[state.split]
        then = (lambda value: "") if epoch == first else (lambda value: f"; epoch {first}: {_fmt(value)}")
        self.summary.value = (
            f'<div style="font-size:12px">epoch {epoch}, {where}: overlap of the two histograms <b>{_fmt(overlap)}</b> '
            f"(1 = indistinguishable{then(overlap0)}) · separation AUC <b>{_fmt(auc)}</b> "
            f"(P[a positive pair is closer than a negative pair]; chance 0.5{then(auc0)})</div>"
        )
        how = f"{d['rows']:,} probe samples" + (f" (a fixed random {self.max_points:,} of them)" if d["rows"] >= self.max_points else "")
        how += f", {len(pos):,} positive and {len(neg):,} negative pairs; {SCALES.get(self.embedding_scale, self.embedding_scale)}"
        if d["levels"] is not None:
            how += (f"; then standardised by MDR's running mean {d['mean']:.3f} and std {d['std']:.3f} of epoch {epoch} "
                    "(taken over training batches); dashed lines: its three learned levels")
        self.how.value = f'<div style="font-size:11px;color:#555">{html.escape(how)}</div>'


def _fmt(value: float) -> str:
    return "–" if value != value else f"{value:.3f}"

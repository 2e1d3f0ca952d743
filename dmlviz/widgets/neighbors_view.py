"""Neighbours view: what retrieval returns for a clicked sample, and the worst queries to browse."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import numpy as np

from .colors import palette
from .state import ExplorerState, after_the_map, once_the_map_is_drawn
from .thumbs import gallery, tile


class NeighborsView(widgets.VBox):
    """The k nearest neighbours of the selected sample in the embedding space (cosine, same split,
    not the 2-D map), marked right (same class) or wrong; a list of the worst test queries."""

    def __init__(self, state: ExplorerState, k: int = 8, worst: int = 25) -> None:
        self.state, self.worst_count = state, worst
        self.k = widgets.BoundedIntText(value=k, min=1, max=50, description="k", layout=widgets.Layout(width="120px"))
        self.query = widgets.HTML()
        self.results = widgets.HTML()
        self.results.add_class("dmlviz-neighbor-list")
        self.worst = widgets.Select(options=[], rows=8, description="worst", layout=widgets.Layout(width="98%"))
        self.worst.add_class("dmlviz-worst-queries")
        self.k.observe(lambda c: self.refresh(), "value")
        self.worst.observe(self._on_worst, "value")
        state.observe(lambda c: self.refresh(), ["selected_sample", "epoch"])
        self._worst: dict[tuple[str, int], list[tuple[float, int, int]]] = {}
        state.observe(lambda c: self._worst.clear(), "run")  # a run written again into its folder is another run
        state.observe(after_the_map(self.refresh_worst, self._prepare_worst, state=state), ["epoch", "run"])
        help_text = widgets.HTML(
            '<div style="color:#555;font-size:12px">Click a point on the map. Its nearest neighbours are found in the '
            "full embedding space (cosine), among samples of the same split, so they need not be near it in 2-D.</div>"
        )
        super().__init__([help_text, self.k, self.query, self.results, widgets.HTML("<b>Worst queries</b> (test samples whose nearest neighbour is of another class, most confident first)"), self.worst])
        self.add_class("dmlviz-neighbors")
        self.refresh()
        once_the_map_is_drawn(state, self.refresh_worst, self._prepare_worst)  # in a kernel: after a large map's page has drawn it

    def _tile(self, snap: Any, row: int, caption: str, border: str | None) -> str:
        colour = palette(len(snap.class_names))[snap.labels[row]]
        image = snap.thumbnails[row] if snap.thumbnails is not None else None
        return tile(snap.class_names[snap.labels[row]], image=image, colour=colour, border=border, caption=caption, row=row)

    def refresh(self) -> None:
        """Show the selected sample's neighbours and put them in the shared state's highlight."""
        state = self.state
        row = state.selected_sample
        if state.run is None or not state.epochs or row < 0:
            self.query.value = ""
            self.results.value = gallery([], empty="no sample selected")
            if state.highlighted:
                state.highlighted = []
            return
        snap = state.snapshot()
        rows, sims = state.nearest(row, self.k.value)
        right = snap.labels[rows] == snap.labels[row]
        fine = f", fine {snap.fine_names[snap.fine_labels[row]] if snap.fine_names else snap.fine_labels[row]}" if snap.fine_labels is not None else ""
        self.query.value = (
            f'<div class="dmlviz-query" style="display:flex;align-items:center">{self._tile(snap, row, "query", "#000")}'
            f"<div style='margin-left:8px'>query #{snap.ids[row]}: class <b>{html.escape(snap.class_names[snap.labels[row]])}</b>{html.escape(fine)} "
            f"({snap.split[row]})<br>{int(right.sum())} of {len(rows)} neighbours right at epoch {snap.epoch}</div></div>"
        )
        tiles = [self._tile(snap, r, f"{'✓' if ok else '✗'} {s:.2f}", "#2ca02c" if ok else "#d62728") for r, s, ok in zip(rows, sims, right)]
        self.results.value = gallery(tiles)
        state.highlighted = [int(r) for r in rows]

    def worst_queries(self, epoch: int | None = None) -> list[tuple[float, int, int]]:
        """(cosine, query row, its nearest row) for test queries whose nearest neighbour is of another class, most confident first.

        At most ``worst_count``; queries are up to 2,000 test rows (a fixed sample); kept per run and epoch.
        """
        state = self.state
        epoch = state.epoch if epoch is None else int(epoch)
        run = state.run
        key = (str(run.path), epoch)
        if key not in self._worst:
            snap = state.snapshot(epoch)
            queries = np.flatnonzero(snap.split == "test")
            if not len(queries):
                queries = np.arange(len(snap))
            if len(queries) > 2000:
                queries = np.sort(np.random.default_rng(0).choice(queries, size=2000, replace=False))
            nn, sims = state.top1(queries, epoch)
            wrong = snap.labels[nn] != snap.labels[queries]
            order = np.argsort(-sims[wrong], kind="stable")[: self.worst_count]
            found = [(float(sims[wrong][i]), int(queries[wrong][i]), int(nn[wrong][i])) for i in order]
            if state.run is not run:  # the run changed meanwhile (a worker prepares this, see after_the_map): keep nothing
                return found
            while len(self._worst) >= 32:
                self._worst.pop(next(iter(self._worst)), None)
            self._worst[key] = found
        return self._worst[key]

    def _prepare_worst(self) -> None:
        """The worst queries of the current epoch, computed ahead (in a worker thread, see after_the_map)."""
        if self.state.run is not None and self.state.epochs:
            self.worst_queries()

    def refresh_worst(self) -> None:
        """Fill the worst-queries list for the current epoch."""
        state = self.state
        if state.run is None or not state.epochs:
            self.worst.options = []
            return
        snap = state.snapshot()
        names = snap.class_names
        options = [(f"#{snap.ids[q]} {names[snap.labels[q]]} → nearest is {names[snap.labels[nn]]} (cos {sim:.3f})", q)
                   for sim, q, nn in self.worst_queries()]
        self.worst.unobserve(self._on_worst, "value")
        self.worst.options = options
        self.worst.value = None
        self.worst.observe(self._on_worst, "value")

    def _on_worst(self, change: Any) -> None:
        if change["new"] is not None:
            self.state.selected_sample = int(change["new"])

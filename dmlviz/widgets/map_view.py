"""Map view: the samples and the loss's centers in one 2-D map, with an epoch slider."""

from __future__ import annotations

import html
import logging
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from ..eval.centers import center_counts, center_groups
from ..projection.quality import QUALITY_SAMPLE
from .colors import colour_array, discrete_colorscale, palette
from .figure import FigureWidget, plotly_code, resync_on_render
from .point_canvas import LARGE_MAP_ABOVE, PointCanvas
from .state import ExplorerState, soon
from .thumbs import png_data_uri

logger = logging.getLogger(__name__)

COLOR_LABELS = {
    "class": "class",
    "fine": "fine label (hidden truth)",
    "center": "assigned center (selected class)",
    "nn": "nearest neighbour in this probe right?",
}
#: Colours of a class's centers when samples are coloured by assigned center. Only the selected
#: class is coloured (every other sample grey), so these cannot be read as class colours.
CENTER_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
                  "#469990", "#9a6324", "#800000", "#808000", "#000075", "#fabed4", "#ffd8b1", "#aaffc3"]
#: Below this map-ownership agreement the map warns that ownership cannot be read from positions.
OWNERSHIP_GOAL = 0.9
#: a center's opacity on the large (jupyter-scatter) map when it owns no sample
CENTER_FAINT = 0.45
#: above this many classes (or fine labels) the legend names only the picked one: colours repeat anyway
LEGEND_CHIPS_MAX = 200


def _level(chance: float) -> str:
    """A chance level as the status line prints it: "chance 0.13", "chance < 0.01", or "chance —" when unknown (NaN)."""
    if chance != chance:
        return "chance —"
    return f"chance {chance:.2f}" if chance >= 0.005 else "chance < 0.01"


class MapView(widgets.VBox):
    """Samples (Scattergl) coloured by class, fine label, assigned center or nearest-neighbour correctness;
    centers drawn among the samples they own (hollow when they own none), in their class colour;
    epoch slider with play; train/test filter; hover preview; click to select a sample; lasso/box
    selection. Above ``LARGE_MAP_ABOVE`` (20,000) points jupyter-scatter draws them (see
    point_canvas: plotly cannot redraw 100,000 points in time); above ``max_points`` (100,000)
    it draws a uniform random sample of the points and says so.
    Beside the map: k-NN preservation of the samples and map-ownership agreement of the centers."""

    def __init__(self, state: ExplorerState, max_points: int = 100_000, height: int = 520, width: int | None = None) -> None:
        self.state, self.max_points, self.height = state, int(max_points), height
        self._rows = np.array([], dtype=np.int64)
        self.canvas: PointCanvas | None = None  # the points above LARGE_MAP_ABOVE (jupyter-scatter), made when first needed
        self.large = False
        self.figure: Any = go.Figure(
            data=[
                go.Scattergl(name="samples", mode="markers", hoverinfo="text", marker=dict(size=5, opacity=0.8), showlegend=False),
                go.Scatter(name="centers", mode="markers", hoverinfo="text",
                           marker=dict(size=13, symbol="diamond", line=dict(width=1.5, color="black"))),
                go.Scattergl(name="neighbours", mode="markers", hoverinfo="skip", showlegend=False,
                             marker=dict(size=13, symbol="circle-open", line=dict(width=2.5))),
                go.Scatter(name="selected", mode="markers", hoverinfo="skip", showlegend=False,
                           marker=dict(size=18, symbol="circle-open", color="black", line=dict(width=3))),
            go.Scatter(name="synthetic", mode="markers", hoverinfo="text", showlegend=False, opacity=0.55,
                       marker=dict(size=6, symbol="circle-open", line=dict(width=1))),
            go.Scatter(name="before re-seeding", mode="markers", hoverinfo="text", showlegend=False, opacity=0.8,
                       marker=dict(size=13, symbol="asterisk-open", line=dict(width=2))),
            ],
            layout=go.Layout(
                height=height, width=width, margin=dict(l=10, r=10, t=30, b=10), dragmode="lasso", hovermode="closest",
                xaxis=dict(showticklabels=False, zeroline=False, showgrid=False),
                yaxis=dict(showticklabels=False, zeroline=False, showgrid=False, scaleanchor="x"),
                legend=dict(orientation="h", y=1.02, x=0, yanchor="bottom"), plot_bgcolor="white", uirevision="keep",
            ),
        )
        self.epoch_slider = widgets.IntSlider(description="epoch", min=0, max=0, continuous_update=False, layout=widgets.Layout(width="340px"))
        self.epoch_slider.add_class("dmlviz-epoch")
        self.play = widgets.Play(interval=900, min=0, max=0, description="play the epochs")
        # the slider is the link's source: linking copies its value to the player, not the other way
        widgets.jslink((self.epoch_slider, "value"), (self.play, "value"))
        self.color_by = widgets.Dropdown(options=[(v, k) for k, v in COLOR_LABELS.items()], value=state.color_by, description="colour", layout=widgets.Layout(width="280px"))
        self.split_toggle = widgets.ToggleButtons(options=[("all", "all"), ("train", "train"), ("test", "test")], value=state.split, style={"button_width": "56px"})
        self.layout_toggle = widgets.ToggleButtons(options=[("PCA", "pca"), ("UMAP", "umap")], value=state.layout_method, style={"button_width": "60px"})
        self.progress = widgets.IntProgress(min=0, max=1, value=0, layout=widgets.Layout(width="160px", visibility="hidden"))
        self.status = widgets.HTML()
        self.count = widgets.HTML()
        self.count.add_class("dmlviz-point-count")
        self.legend = widgets.HTML()
        self.hover = widgets.HTML(layout=widgets.Layout(min_height="64px"))
        self.selected = widgets.HTML()
        self.selected.add_class("dmlviz-selection")
        self.caption = widgets.HTML()
        self.caption.add_class("dmlviz-map-caption")
        self.colour_note = widgets.HTML()
        self.colour_note.add_class("dmlviz-colour-note")
        # synthetic points of an augmenting loss (DAS, IAA): off until asked for, shown only for such runs
        self.synthetic_toggle = widgets.Checkbox(value=False, description="synthetic points", indent=False, layout=widgets.Layout(width="150px"))
        self.synthetic_toggle.add_class("dmlviz-synthetic-toggle")
        self.synthetic_note = widgets.HTML()
        self.synthetic_note.add_class("dmlviz-synthetic-note")
        self._synthetic_cache: dict[tuple, tuple] = {}
        # CCP: the proxies as they were before a re-seeding, drawn at the epoch that began with it
        self.reseed_note = widgets.HTML()
        self.reseed_note.add_class("dmlviz-reseed-note")
        self._reseed_cache: dict[tuple, tuple] = {}

        self.epoch_slider.observe(lambda c: setattr(state, "epoch", c["new"]), "value")
        self.color_by.observe(lambda c: setattr(state, "color_by", c["new"]), "value")
        self.split_toggle.observe(lambda c: setattr(state, "split", c["new"]), "value")
        self.layout_toggle.observe(lambda c: setattr(state, "layout_method", c["new"]), "value")
        state.observe(self._on_epochs, "epochs")
        state.observe(self._on_epoch, "epoch")
        state.observe(self._on_rows_change, ["split", "run"])
        state.observe(self._on_colour_change, ["color_by", "selected_class"])
        state.observe(self._on_layout_ready, "layout_version")
        state.observe(self._on_layout_method, "layout_method")
        state.observe(self._on_status, ["layout_status", "layout_done", "layout_total"])
        state.observe(self._on_marks, ["selected_sample", "highlighted"])
        state.observe(self._on_selection_change, ["selection", "epoch"])

        self._on_epochs()
        self._on_rows_change()
        # The widget is made from a figure that already holds the first frame: updates sent before
        # the browser has loaded plotly's widget code can be lost (see figure.resync_on_render).
        self.figure = FigureWidget(self.figure)
        self.figure.add_class("dmlviz-figure")
        resync_on_render(self.figure, self._on_rows_change)
        samples = self.figure.data[0]
        samples.on_click(self._on_click)
        samples.on_selection(self._on_selection)
        samples.on_hover(self._on_hover)
        self.figure.data[1].on_click(self._on_center_click)
        controls = widgets.HBox([self.play, self.epoch_slider, self.layout_toggle, self.progress, self.status], layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
        self.synthetic_toggle.observe(lambda c: self.redraw(points=False), "value")
        filters = widgets.HBox([self.color_by, self.split_toggle, self.synthetic_toggle, self.count], layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
        self.plot_area = widgets.VBox([self.canvas.widget if self.large else self.figure])
        super().__init__([plotly_code(), controls, filters, self.colour_note, self.plot_area, self.caption, self.synthetic_note,
                          self.reseed_note, widgets.HBox([self.legend, self.hover]), self.selected])
        self.add_class("dmlviz-map")

    # -- state → view ----------------------------------------------------------------------
    def _on_epochs(self, change: Any = None) -> None:
        epochs = self.state.epochs or [0]
        for w in (self.epoch_slider, self.play):
            w.max = max(epochs)
            w.min = min(epochs)
            w.value = self.state.epoch

    def _on_epoch(self, change: Any = None) -> None:
        self.epoch_slider.value = self.play.value = self.state.epoch
        self.redraw()

    def _on_rows_change(self, change: Any = None) -> None:
        """The set of drawn rows changed (split filter, run): pick rows, set static hover text."""
        state = self.state
        if state.run is None or not state.epochs:
            self._rows = np.array([], dtype=np.int64)
            self.count.value = "no epochs recorded yet"
            self.redraw()
            return
        snap = state.snapshot()
        rows = np.arange(len(snap)) if state.split == "all" else np.flatnonzero(snap.split == state.split)
        total = len(rows)
        if total > self.max_points:
            rng = np.random.default_rng(0)
            rows = np.sort(rng.choice(rows, size=self.max_points, replace=False))
            self.count.value = f"<b>showing {len(rows):,} of {total:,} points</b> (a random sample; all points are used for neighbours and metrics)"
        else:
            self.count.value = f"{total:,} points"
        self._rows = rows
        self._choose_renderer(len(rows) > LARGE_MAP_ABOVE)
        if self.large:  # the canvas shows its hover in the panel beside the map; no per-point text to send
            with self.figure.batch_update():
                for trace in self.figure.data:
                    trace.x, trace.y = [], []
                self.figure.data[0].text = None
            self._legend()
            self.redraw()
            return
        names = np.asarray(snap.class_names)
        text = np.char.add(np.char.add("class ", names[snap.labels[rows]]), np.char.add(" · ", snap.split[rows]))
        if snap.fine_labels is not None:
            fine_names = np.asarray(snap.fine_names or [str(i) for i in range(snap.fine_labels.max() + 1)])
            text = np.char.add(text, np.char.add(" · fine ", fine_names[snap.fine_labels[rows]]))
        text = np.char.add(text, np.char.add(" · #", snap.ids[rows].astype(str)))
        with self.figure.batch_update():
            self.figure.data[0].text = text
        self._legend()
        self.redraw()

    def _on_colour_change(self, change: Any = None) -> None:
        if self.state.run is not None and self.state.epochs:
            self._legend()
        self.redraw(points=False)

    def _on_layout_ready(self, change: Any = None) -> None:
        self.redraw()

    def _on_layout_method(self, change: Any) -> None:
        self.layout_toggle.value = change["new"]
        self.redraw()

    def _on_status(self, change: Any = None) -> None:
        state = self.state
        busy = bool(state.layout_status)
        self.progress.layout.visibility = "visible" if busy else "hidden"
        self.progress.max, self.progress.value = max(state.layout_total, 1), state.layout_done
        self.redraw_status()

    def _on_marks(self, change: Any = None) -> None:
        self._draw_marks(self.state.layout())

    # -- drawing ---------------------------------------------------------------------------
    def _choose_renderer(self, large: bool) -> None:
        """Plotly for up to LARGE_MAP_ABOVE points, jupyter-scatter above (see point_canvas)."""
        if large and self.canvas is None:
            self.canvas = PointCanvas(self.height, self._on_canvas_hover, self._on_canvas_click, self._on_canvas_lasso)
            self.canvas.on_drawn(lambda: self.state.set_trait("map_drawn", True))  # views beside it hold their first heavy work until then
            self.canvas.on_redrawn(self._on_canvas_redrawn)  # and their updates for each epoch until its points are drawn
        elif not large:
            self.state.map_drawn = True  # plotly draws a small map at once: nothing waits for it
            self.state.map_sent = 0  # nor reports its redraws (after_the_map then waits SECONDARY_DELAY)
        self.large = large
        area = getattr(self, "plot_area", None)
        if area is not None:
            want = self.canvas.widget if large else self.figure
            if area.children != (want,):
                area.children = (want,)

    def redraw(self, points: bool = True) -> None:
        """Redraw the current epoch: coordinates (if ``points``), colours, centers, marks."""
        state = self.state
        if state.run is None or not state.epochs or not len(self._rows):
            with self.figure.batch_update():
                for trace in self.figure.data:
                    trace.x, trace.y = [], []
            if self.canvas is not None:
                self.canvas.draw(np.zeros((0, 2)), np.array([], dtype="U7"), 1.0, np.zeros((0, 2)), np.array([], dtype="U7"), np.array([]))
            return
        snap = state.snapshot()
        layout = state.layout()
        rows = self._rows
        marker, opacity = self._colours(snap, rows)
        self.colour_note.value = self._colour_note(snap, rows)
        if self.large:
            self._redraw_canvas(snap, layout, rows, marker, opacity)
            self.redraw_status(layout)
            self.synthetic_note.value = ('<div style="font-size:11px;color:#555">synthetic points are not drawn on maps of more than '
                                         f"{LARGE_MAP_ABOVE:,} points</div>" if self.synthetic_toggle.value else "")
            return
        with self.figure.batch_update():
            samples = self.figure.data[0]
            if points:
                samples.x, samples.y = layout.points[rows, 0], layout.points[rows, 1]
            samples.marker.update(marker)
            samples.marker.opacity = opacity
            self._draw_centers(snap, layout)
            self._draw_marks(layout)
            self._draw_synthetic(snap, layout)
            self._draw_reseed(snap, layout)
        self.redraw_status(layout)

    def _colours(self, snap: Any, rows: np.ndarray) -> tuple[dict, Any]:
        """Marker colour settings (numeric codes on a discrete colorscale) and opacity for ``rows``."""
        state = self.state
        mode = state.color_by
        if mode == "fine" and snap.fine_labels is None:
            mode = "class"
        if mode == "class":
            codes, n = snap.labels[rows], len(snap.class_names)
        elif mode == "fine":
            codes, n = snap.fine_labels[rows], int(snap.fine_labels.max()) + 1
        elif mode == "center":
            cls = self._center_class(snap)
            codes = np.where(snap.labels[rows] == cls, snap.assignments[rows], -1)
            n = snap.centers.shape[1] if snap.centers.size else 1
        else:
            codes, n = np.where(state.nearest_correct(rows=rows), 1, 0), 2
        scale, low, high = discrete_colorscale(n)
        if mode == "center":
            scale, low, high = _center_colorscale(n)
        if mode == "nn":
            scale = [[0, "#bbbbbb"], [1 / 3, "#bbbbbb"], [1 / 3, "#d62728"], [2 / 3, "#d62728"], [2 / 3, "#2ca02c"], [1, "#2ca02c"]]
        marker = dict(color=codes.astype(np.float32), colorscale=scale, cmin=low, cmax=high, showscale=False)
        if mode == "center":
            opacity = np.where(codes >= 0, 0.9, 0.25).astype(np.float32)
        elif state.selected_class >= 0:
            opacity = np.where(snap.labels[rows] == state.selected_class, 0.9, 0.12).astype(np.float32)
        else:
            opacity = 0.8
        return marker, opacity

    def _colour_note(self, snap: Any, rows: np.ndarray) -> str:
        """What the colours mean when they are not the classes."""
        state = self.state
        style = '<div style="font-size:11px;color:#555">'
        if state.color_by == "center" and snap.centers.size:
            cls = self._center_class(snap)
            picked = "selected" if state.selected_class >= 0 else "picked (pick another with a center click or the class inspector)"
            return (f"{style}Samples of class <b>{html.escape(snap.class_names[cls])}</b> ({picked}) coloured by the center "
                    "that owns them (highest cosine in the embedding); every other sample grey. Center colours are not class colours.</div>")
        if state.color_by == "nn":
            right = state.nearest_correct(rows=rows)
            row = self._metrics_row()
            recall = f"; Recall@1 in the metrics view ({row:.3f}) uses every test sample, not this probe" if row == row else ""
            return (f"{style}Green: the nearest other sample <i>in this probe, same split</i> (cosine) has the same class "
                    f"({right.mean():.1%} of the points drawn){recall}.</div>")
        return ""

    def _metrics_row(self) -> float:
        """Recall@1 on the test split at the current epoch, NaN if not recorded (metrics.csv read once per version)."""
        run = self.state.run
        try:
            stamp = (run.path / "metrics.csv").stat().st_mtime_ns
        except OSError:
            return float("nan")
        if getattr(self, "_recall", (None,))[0] != (run.path, stamp):
            table = run.metrics
            recall = dict(zip(table["epoch"], table["recall@1"])) if "recall@1" in table else {}
            self._recall = ((run.path, stamp), recall)
        return float(self._recall[1].get(self.state.epoch, float("nan")))

    def _center_class(self, snap: Any) -> int:
        """The class whose samples are coloured by center: the selected one, else the first with most owning centers."""
        cls = self.state.selected_class
        if cls >= 0 or not snap.centers.size:
            return cls
        k = snap.centers.shape[1]
        owning = (center_counts(snap.assignments, snap.labels, snap.center_classes, k) > 0).sum(1)
        return int(snap.center_classes[int(np.argmax(owning))])

    def _center_look(self, snap: Any, layout: Any) -> dict[str, Any] | None:
        """Where and how each center is drawn: xy [m, 2], hex colours, sizes, symbols, owning, classes, and what :meth:`_center_text` needs; None without centers."""
        if not snap.centers.size:
            return None
        xy = layout.centers.reshape(-1, 2)
        n_classes, k = snap.centers.shape[:2]
        classes = np.repeat(snap.center_classes, k)
        index = np.tile(np.arange(k), n_classes)
        owned = center_counts(snap.assignments, snap.labels, snap.center_classes, k).ravel()
        owning = layout.owning.ravel() if layout.owning is not None else owned > 0
        groups = center_groups(snap.centers, eps=snap.eps)
        learned = snap.centers_kind == "learned"
        # centers wear class colours only while the samples do; otherwise the colours would be misread
        colours = colour_array(classes, len(snap.class_names))
        mode = self.state.color_by
        mode_class = self._center_class(snap) if mode == "center" else -1
        if mode_class >= 0:  # the coloured class's centers in the samples' center colours, the others grey
            table = np.asarray(_center_palette(k))
            colours = np.where(classes == mode_class, table[index], "#bbbbbb")
        elif mode in ("fine", "nn") and not (mode == "fine" and snap.fine_labels is None):
            colours = np.full(len(classes), "#444444")
        selected = self.state.selected_class if self.state.selected_class >= 0 else mode_class
        sizes = np.where(classes == selected, 18, 12) if selected >= 0 else np.full(len(classes), 12)
        sizes = np.where(owning, sizes, sizes - 1)
        symbol = np.where(owning, "diamond" if learned else "x", "diamond-open" if learned else "x-open")
        return dict(xy=xy, colours=colours, sizes=sizes, symbols=symbol, owning=np.asarray(owning, dtype=bool),
                    classes=classes, index=index, owned=owned, groups=groups, learned=learned, names=snap.class_names, eps=snap.eps)

    @staticmethod
    def _center_text(look: dict[str, Any], j: int) -> str:
        """The hover text of center ``j`` (row-major over classes × K) of a :meth:`_center_look`."""
        k = look["groups"].shape[1]
        row, i = divmod(int(j), k)
        groups = look["groups"]
        what = "center" if look["learned"] else "class mean"
        mates = [int(m) for m in np.flatnonzero(groups[row] == groups[row, i]) if m != i]
        merged = f" · merged with {what}s {', '.join(map(str, mates))} (closer than ε = {look['eps']:g}): drawn as one" if mates else ""
        where = ("drawn at the mean position of the samples it owns" if look["owning"][j]
                 else "owns no sample: drawn hollow at its most similar sample")
        return f"class {look['names'][look['classes'][j]]} · {what} {i} · owns {look['owned'][j]} probe samples{merged} · {where}"

    def _draw_centers(self, snap: Any, layout: Any) -> None:
        trace = self.figure.data[1]
        look = self._center_look(snap, layout)
        self._caption(snap, layout, look)
        if look is None:
            trace.x, trace.y = [], []
            return
        xy, owning = look["xy"], look["owning"]
        trace.update(
            x=xy[:, 0], y=xy[:, 1], text=[self._center_text(look, j) for j in range(len(xy))], name="centers (learned)" if look["learned"] else "class means (this loss has no centers)",
            marker=dict(color=look["colours"].tolist(), size=look["sizes"].tolist(), symbol=look["symbols"].tolist(),
                        opacity=np.where(owning, 1.0, 0.85).tolist()),
        )

    def _caption(self, snap: Any, layout: Any, look: dict[str, Any] | None) -> None:
        """Below the map: how many centers own nothing and how centers are placed."""
        self._center_classes = np.array([], dtype=np.int64) if look is None else look["classes"]
        self._look = look  # hover texts of the large map are made when a center is hovered
        if look is None:
            self.caption.value = ""
            return
        learned, owning = look["learned"], look["owning"]
        empty = int((~owning).sum())
        hollow = "faint" if self.large else "hollow"
        count = (f"<b>{empty} of {len(owning)} centers own no probe sample</b> ({hollow}; a center merged with one that owns "
                 "samples is drawn with it). " if learned and empty else "")
        kind = "Centers" if learned else "Class means (the loss has no centers)"
        drawn = (" Drawn by jupyter-scatter (WebGL) above 20,000 points: centers are the large dots (faint when they own "
                 "no sample), hover one to read it, click it to open its class; select samples with the lasso button "
                 "left of the map; one frame holds every epoch shown." if self.large else "")
        # the projection's note says how plotly draws a center that owns nothing (hollow); the canvas draws it faint
        placement = layout.placement.replace("are hollow", "are faint") if self.large else layout.placement
        self.caption.value = (
            f'<div class="dmlviz-placement" style="font-size:11px;color:#555;max-width:640px">{count}{kind}: '
            f"{html.escape(placement)}{drawn}</div>"
        )

    def _redraw_canvas(self, snap: Any, layout: Any, rows: np.ndarray, marker: dict, opacity: Any) -> None:
        """The large-map path: the same colours, opacities and centers, drawn by the PointCanvas."""
        colours = _scale_lookup(np.asarray(marker["color"]), marker["colorscale"], marker["cmin"], marker["cmax"])
        look = self._center_look(snap, layout)
        self._caption(snap, layout, look)
        if look is None:
            cxy, ccol, calpha = np.zeros((0, 2)), np.array([], dtype="U7"), np.array([])
        else:
            cxy, ccol, calpha = look["xy"], look["colours"], np.where(look["owning"], 1.0, CENTER_FAINT)
        frame = (str(self.state.run.path), self.state.split, layout.method)
        if getattr(self, "_frame_key", None) != frame:  # another run, split or layout: fit it afresh
            self.canvas.reset_frame()
            self._frame_key = frame
        self.canvas.draw(layout.points[rows], colours, opacity, cxy, ccol, calpha, center_alphas=(1.0, CENTER_FAINT))
        self.state.map_sent = self.canvas.version
        self._draw_marks(layout)

    def synthetic(self, snap: Any, layout: Any) -> tuple[np.ndarray, np.ndarray, float, int] | None:
        """(positions [S, 2], source probe rows [S], k-NN preservation, produced per source) of the epoch's synthetic points, or None."""
        run = self.state.run
        if run is None or not run.config.get("augmenter"):
            return None
        key = (snap.epoch, id(layout))
        if key not in self._synthetic_cache:
            from ..projection.placement import place_by_neighbours

            if "synthetic" not in run.array_names(snap.epoch):
                return None
            arrays = run.arrays(snap.epoch, "synthetic", "synthetic_source")
            xy, kept = place_by_neighbours(snap.embeddings, layout.points, arrays["synthetic"])
            augmenter = str(run.config["augmenter"])
            per = int((run.config.get("loss_params") or {}).get(f"{augmenter}_num_produce", 1))
            self._synthetic_cache = {key: (xy, arrays["synthetic_source"], kept, per)}
        return self._synthetic_cache[key]

    def _draw_synthetic(self, snap: Any, layout: Any) -> None:
        """The synthetic points (toggle on, an augmenting run), coloured by their source's class."""
        trace = self.figure.data[4]
        run = self.state.run
        augmenting = run is not None and bool(run.config.get("augmenter"))
        self.synthetic_toggle.layout.display = None if augmenting else "none"
        found = self.synthetic(snap, layout) if augmenting and self.synthetic_toggle.value else None
        if found is None:
            trace.x, trace.y = [], []
            self.synthetic_note.value = ""
            if augmenting and self.synthetic_toggle.value:
                self.synthetic_note.value = (
                    '<div class="dmlviz-synthetic" style="font-size:11px;color:#555">no synthetic points at this epoch: '
                    f"{html.escape(_no_synthetic_reason(run.config))}</div>"
                )
            return
        from ..projection.placement import SYNTHETIC_NOTE

        xy, sources, kept, per = found
        shown = np.isin(sources, self._rows)
        scale, low, high = discrete_colorscale(len(snap.class_names))
        trace.x, trace.y = xy[shown, 0], xy[shown, 1]
        trace.marker.update(color=snap.labels[sources[shown]].astype(np.float32), colorscale=scale, cmin=low, cmax=high)
        trace.text = np.char.add("synthetic from #", snap.ids[sources[shown]].astype(str))
        self.synthetic_note.value = (
            f'<div class="dmlviz-synthetic" style="font-size:11px;color:#555;max-width:640px"><b>{int(shown.sum()):,} synthetic points</b> '
            f"({html.escape(str(run.config['augmenter']).upper())}, {per} per source, from {len(np.unique(sources)):,} probe samples of training classes, made with the loss's state at this "
            f"epoch): {html.escape(SYNTHETIC_NOTE.format(k=5))}; k-NN preservation of the synthetic points <b>{kept:.2f}</b></div>"
        )

    def reseeded_from(self, snap: Any, layout: Any) -> tuple[np.ndarray, np.ndarray, float, int, int] | None:
        """For a CCP epoch that began by re-seeding its proxies: (positions [P, 2] and classes [P] of the previous epoch's
        proxies among this epoch's probe samples, their k-NN preservation, the previous epoch, the instance); else None."""
        run = self.state.run
        if run is None or run.config.get("loss") != "ccp" or "ccp_reseeded" not in run.array_names(snap.epoch):
            return None
        flags = run.arrays(snap.epoch, "ccp_reseeded", "ccp_instance")
        earlier = [e for e in run.epochs if e < snap.epoch]
        if not bool(flags["ccp_reseeded"]) or not earlier:
            return None
        key = (snap.epoch, id(layout))
        if key not in self._reseed_cache:
            from ..projection.placement import place_by_neighbours

            before = run.arrays(earlier[-1], "centers", "center_classes")
            keep = np.isin(before["center_classes"], np.unique(snap.labels))
            old = before["centers"][keep].astype(np.float32)
            classes = np.repeat(before["center_classes"][keep], old.shape[1])
            xy, kept = place_by_neighbours(snap.embeddings, layout.points, old.reshape(-1, old.shape[-1]))
            self._reseed_cache = {key: (xy, classes, kept, earlier[-1], int(flags["ccp_instance"]))}
        return self._reseed_cache[key]

    def _draw_reseed(self, snap: Any, layout: Any) -> None:
        """CCP: faint crosses where the proxies were before this epoch's re-seeding, and what happened, below the map."""
        trace = self.figure.data[5]
        found = self.reseeded_from(snap, layout)
        if found is None:
            trace.x, trace.y = [], []
            self.reseed_note.value = ""
            return
        from ..projection.placement import PLACED_NOTE

        xy, classes, kept, previous, instance = found
        scale, low, high = discrete_colorscale(len(snap.class_names))
        trace.x, trace.y = xy[:, 0], xy[:, 1]
        trace.marker.update(color=classes.astype(np.float32), colorscale=scale, cmin=low, cmax=high)
        trace.text = [f"class {snap.class_names[c]}: a proxy of epoch {previous}, before the re-seeding" for c in classes]
        what = "seeded from samples when training began" if instance == 0 else f"re-seeded from samples when this epoch began (problem instance {instance})"
        self.reseed_note.value = (
            f'<div class="dmlviz-reseed" style="font-size:11px;color:#555;max-width:640px"><b>CCP: proxies {what}</b> — each class\'s '
            "K new proxies are training samples picked by greedy k-center, farthest from the best epoch's proxies; the diamonds are "
            f"the new proxies after this epoch's training, the faint crosses the {len(xy):,} proxies of epoch {previous} "
            f"({html.escape(PLACED_NOTE.format(what='cross', k=5))}; k-NN preservation of the crosses <b>{kept:.2f}</b>)</div>"
        )

    def _draw_marks(self, layout: Any) -> None:
        state = self.state
        if self.large:
            marks = []
            if state.selected_sample >= 0 and state.run is not None and state.epochs:
                row = state.selected_sample
                snap = state.snapshot()
                for r in np.asarray(state.highlighted, dtype=np.int64):
                    colour = "#2ca02c" if snap.labels[r] == snap.labels[row] else "#d62728"
                    marks.append((layout.points[r, 0], layout.points[r, 1], colour, 2))
                marks.append((layout.points[row, 0], layout.points[row, 1], "#000000", 3))
            self.canvas.rings(marks)
            return
        neighbours, selected = self.figure.data[2], self.figure.data[3]
        if state.selected_sample >= 0 and state.run is not None and state.epochs:
            row = state.selected_sample
            selected.x, selected.y = [layout.points[row, 0]], [layout.points[row, 1]]
            rows = np.asarray(state.highlighted, dtype=np.int64)
            snap = state.snapshot()
            right = snap.labels[rows] == snap.labels[row]
            neighbours.x, neighbours.y = layout.points[rows, 0], layout.points[rows, 1]
            neighbours.marker.color = np.where(right, "#2ca02c", "#d62728").tolist()
        else:
            selected.x, selected.y, neighbours.x, neighbours.y = [], [], [], []

    def redraw_status(self, layout: Any = None) -> None:
        """The line that says which layout is shown and how faithful it is."""
        state = self.state
        if state.run is None or not state.epochs:
            self.status.value = ""
            return
        layout = layout or state.layout()
        shown = layout.method.upper()
        note = ""
        if state.layout_method != layout.method:
            note = f" — {state.layout_status or state.layout_method.upper() + ' not ready'}"
        elif state.layout_status:
            note = f" — {state.layout_status}"
        points = len(layout.points)
        sampled = f"; estimated on {QUALITY_SAMPLE:,} random points of the {points:,}" if points > QUALITY_SAMPLE else ""
        agreement = layout.ownership
        if agreement == agreement:  # not NaN: some class has two centers that own samples
            colour = "#2ca02c" if agreement >= OWNERSHIP_GOAL else "#d62728"
            chance = layout.ownership_chance
            own = (
                f' · map-ownership agreement <b style="color:{colour}">{agreement:.2f}</b> (share of samples whose nearest '
                "drawn center of their class is the one that owns them"
                + (f"; {_level(chance)} if the centers said nothing of their samples" if chance == chance else "")
                + ("" if agreement >= OWNERSHIP_GOAL else "; below 0.90: this map mixes the samples of different centers, "
                   "so read ownership from the colours (assigned center), not from distances")
                + ")"
            )
        else:
            own = " · map-ownership agreement: — (no class has two centers that own samples)"
        self.status.value = (
            f'<span class="dmlviz-layout-status">{shown}, epoch {state.epoch}: k-NN preservation '
            f"<b>{layout.quality:.2f}</b> (share of each point's 10 nearest neighbours kept in 2-D{sampled}; "
            f"{_level(layout.quality_chance)} for points placed at random){own}{html.escape(note)}</span>"
        )

    def _legend(self) -> None:
        """Colour chips for what the samples are coloured by: classes, or fine labels in that mode."""
        snap = self.state.snapshot()
        mode = self.state.color_by
        if mode == "fine" and snap.fine_labels is not None:
            n = int(snap.fine_labels.max()) + 1
            names, title = list(snap.fine_names or [str(i) for i in range(n)]), "fine labels: "
        elif mode in ("class", "fine"):
            names, title = snap.class_names, ""
        else:  # center and nn modes explain their colours in the note above the map
            self.legend.value = ""
            return
        colours = palette(len(names))
        shown = list(range(len(names)))
        more = ""
        if len(names) > LEGEND_CHIPS_MAX:  # thousands of classes: no chip each; colours repeat, hover reads the class
            selected = self.state.selected_class if mode == "class" else -1
            shown = [selected] if 0 <= selected < len(names) else []
            more = (
                f'{len(names):,} {"fine labels" if title else "classes"} — colours repeat, so hover a point to read it'
                + ("; picked: " if shown else "; pick a class in the class inspector to find it")
            )
        chips = "".join(
            f'<span style="display:inline-block;margin:1px 6px 1px 0;white-space:nowrap"><span style="display:inline-block;width:10px;height:10px;'
            f'background:{colours[i]};margin-right:3px"></span>{html.escape(names[i])}</span>' for i in shown
        )
        self.legend.value = f'<div style="max-height:72px;overflow-y:auto;font-size:11px;max-width:520px">{title}{html.escape(more)}{chips}</div>'

    def _on_selection_change(self, change: Any = None) -> None:
        """Summarise the lasso/box selection: how many samples of which classes (and fine labels)."""
        rows = np.asarray(self.state.selection, dtype=np.int64)
        if not self.large:  # draw the selection (it may come from another map: the comparison shares it)
            chosen = np.flatnonzero(np.isin(self._rows, rows)).tolist() if len(rows) else None
            samples = self.figure.data[0]
            if (samples.selectedpoints is None and chosen is not None) or (chosen is None and samples.selectedpoints is not None) or \
                    (chosen is not None and list(samples.selectedpoints) != chosen):
                samples.selectedpoints = chosen
        if not len(rows) or self.state.run is None or not self.state.epochs:
            self.selected.value = ""
            return
        snap = self.state.snapshot()
        def counts(codes: np.ndarray, names: list[str]) -> str:
            values, n = np.unique(codes, return_counts=True)
            order = np.argsort(-n, kind="stable")[:8]
            return ", ".join(f"{n[i]} × {html.escape(str(names[values[i]]))}" for i in order) + (" …" if len(values) > 8 else "")
        text = f"<b>{len(rows)} selected</b>: classes {counts(snap.labels[rows], snap.class_names)}"
        if snap.fine_labels is not None:
            fine_names = snap.fine_names or [str(i) for i in range(int(snap.fine_labels.max()) + 1)]
            text += f"; fine labels {counts(snap.fine_labels[rows], fine_names)}"
        self.selected.value = f'<div style="font-size:12px">{text}</div>'

    # -- view → state ----------------------------------------------------------------------
    def _row_of(self, points: Any) -> list[int]:
        return [int(self._rows[i]) for i in points.point_inds if 0 <= i < len(self._rows)]

    def _on_click(self, trace: Any, points: Any, selector: Any) -> None:
        rows = self._row_of(points)
        if rows:
            self.state.selected_sample = rows[0]

    def _on_canvas_redrawn(self, version: int) -> None:
        if self.large and version > self.state.map_shown:
            self.state.map_shown = version

    def _on_canvas_click(self, index: int) -> None:
        """A click on the large map: a sample selects it, a center picks its class."""
        if index < len(self._rows):
            self.state.selected_sample = int(self._rows[index])
        elif index - len(self._rows) < len(getattr(self, "_center_classes", [])):
            self.state.selected_class = int(self._center_classes[index - len(self._rows)])

    def _on_canvas_lasso(self, indices: list[int]) -> None:
        self.state.selection = [int(self._rows[i]) for i in indices if 0 <= i < len(self._rows)]

    def _on_canvas_hover(self, index: int) -> None:
        if index < len(self._rows):
            self._show_hover(int(self._rows[index]))
        elif getattr(self, "_look", None) is not None and index - len(self._rows) < len(self._look["classes"]):
            self.hover.value = f'<div style="font-size:12px">{html.escape(self._center_text(self._look, index - len(self._rows)))}</div>'

    def _on_center_click(self, trace: Any, points: Any, selector: Any) -> None:
        """Clicking a center (or class mean) picks its class for the class inspector."""
        classes = getattr(self, "_center_classes", np.array([], dtype=np.int64))
        picked = [int(classes[i]) for i in points.point_inds if 0 <= i < len(classes)]
        if picked:
            self.state.selected_class = picked[0]

    def _on_selection(self, trace: Any, points: Any, selector: Any) -> None:
        self.state.selection = self._row_of(points)

    def _on_hover(self, trace: Any, points: Any, state: Any) -> None:
        if getattr(state, "buttons", 0):  # a hover while a button is down: a lasso or box being dragged
            return
        rows = self._row_of(points)
        if rows:
            soon(lambda: self._show_hover(rows[0]))  # answer at once: see state.soon

    def _show_hover(self, row: int) -> None:
        """The hover panel for probe row ``row``: thumbnail, class, split, id, fine label."""
        snap = self.state.snapshot()
        label = html.escape(snap.class_names[snap.labels[row]])
        picture = ""
        if snap.thumbnails is not None:
            picture = f'<img src="{png_data_uri(snap.thumbnails[row])}" width="56" height="56" style="image-rendering:pixelated;float:left;margin-right:6px">'
        fine = f"<br>fine: {html.escape((snap.fine_names or [])[snap.fine_labels[row]] if snap.fine_names else str(snap.fine_labels[row]))}" if snap.fine_labels is not None else ""
        self.hover.value = f"<div>{picture}<b>class {label}</b><br>{snap.split[row]} · #{snap.ids[row]}{fine}</div>"


def _scale_lookup(codes: np.ndarray, scale: list, cmin: float, cmax: float) -> np.ndarray:
    """Hex colour per code [n] of a discrete plotly colorscale (pairs of stops per colour) on [cmin, cmax]."""
    colours = np.asarray([scale[i][1] for i in range(0, len(scale), 2)])
    m = len(colours)
    index = np.floor((np.asarray(codes, dtype=np.float64) - cmin) / (cmax - cmin) * m).astype(np.int64)
    return colours[np.clip(index, 0, m - 1)]


def _center_palette(k: int) -> list[str]:
    """``k`` colours for the centers of one class (cycled beyond 16)."""
    return [CENTER_COLOURS[i % len(CENTER_COLOURS)] for i in range(max(k, 1))]


def _center_colorscale(k: int) -> tuple[list, float, float]:
    """A discrete plotly colorscale: code -1 grey (other classes, or no center), 0..k-1 the center colours."""
    colours = ["#cccccc"] + _center_palette(k)
    m = len(colours)
    scale = []
    for i, colour in enumerate(colours):
        scale += [[i / m, colour], [(i + 1) / m, colour]]
    return scale, -1.5, -1.5 + m


def _no_synthetic_reason(config: dict) -> str:
    """Why an augmenting run's epoch has no synthetic points (IAA before its start; epoch 0 of any run)."""
    params = config.get("loss_params") or {}
    if config.get("augmenter") == "iaa":
        start = int(round(float(params.get("iaa_start", 0.3)) * int(config.get("epochs", 0))))
        return f"IAA augments from epoch {start + 1} on (iaa_start={params.get('iaa_start')} of {config.get('epochs')} epochs)"
    return "the augmenter had no state yet (epoch 0 is recorded before training)"

"""PointCanvas: the map's points when they are many, drawn by jupyter-scatter (WebGL, regl-scatterplot).

Why not plotly: in Debian's Chromium on this project's 2-core machine, plotly.js needs 0.36–0.6 s
just to restyle the x and y of a 100,000-point Scattergl trace (it rebuilds the trace and its
hover index on every change), so an epoch switch took 1.4 s and a page 5.9 s. jupyter-scatter
uploads the new positions as one buffer. Below ``LARGE_MAP_ABOVE`` points the map stays
plotly, which also draws center symbols (diamonds, hollow ones) this canvas cannot.

The canvas holds samples and centers in one point set (samples first, then centers: larger
points, on top); a colour category is a (colour, opacity) pair, so a point's opacity travels
with its colour; rings (the clicked sample, its neighbours) are line annotations. The widget's
traits are set directly (one message per redraw): its own DataFrame API re-encodes every
column on each change.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

import numpy as np

from .deferred_code import DEFERRED_ESM, DeferredCode, deferred

logger = logging.getLogger(__name__)

#: above this many points the map is drawn by jupyter-scatter instead of plotly
LARGE_MAP_ABOVE = 20_000

#: point sizes in pixels: samples, centers, centers when there are more than 300 of them
SAMPLE_SIZE, CENTER_SIZE, CENTER_SIZE_MANY = 3.0, 11.0, 6.0


class LookTable:
    """The canvas's colour categories: one (r, g, b, a) per look (a hex colour and an opacity to 0.001), append-only.

    A look keeps its category code from draw to draw, so an epoch switch that shows the same
    looks sends no new colour table: the page then draws the new positions in one frame, not
    one for the colours and one for the points (each frame of 100,000 points costs 0.1–0.2 s
    without a GPU). The table starts afresh when it holds more than twice the looks in use.
    """

    def __init__(self) -> None:
        self._code: dict[int, int] = {}  # look key (colour * 1001 + opacity level) -> category code
        self.colours: list[list[float]] = []
        #: goes up whenever ``colours`` changes
        self.version = 0

    def codes(self, hex_colours: np.ndarray, alpha: np.ndarray, also: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Category code per point [n] for hex colours [n] ("#rrggbb") and opacities [n] in [0, 1]; adds new looks.

        ``also`` (hex colours [k], opacities [k]): looks to hold in the table as well, for later draws.
        """
        import pandas as pd

        if also is not None and len(also[0]):
            hex_colours, alpha = np.concatenate([hex_colours, also[0]]), np.concatenate([alpha, also[1]])
        colour_index, names = pd.factorize(np.asarray(hex_colours, dtype=object))
        levels = np.round(np.asarray(alpha, dtype=np.float64) * 1000).astype(np.int64)
        look_index, looks = pd.factorize(colour_index.astype(np.int64) * 1001 + levels)
        look_index = look_index[: len(look_index) - (len(also[0]) if also is not None else 0)]
        keys = [int(str(names[k // 1001])[1:7], 16) * 1001 + k % 1001 for k in np.asarray(looks, dtype=np.int64)]
        if len(self.colours) + sum(k not in self._code for k in keys) > 2 * max(len(keys), 64):  # mostly unused looks: start afresh
            self._code, self.colours = {}, []
            self.version += 1
        for key in keys:
            if key not in self._code:
                self._code[key] = len(self.colours)
                rgb, level = divmod(key, 1001)
                self.colours.append([(rgb >> 16) / 255, ((rgb >> 8) & 255) / 255, (rgb & 255) / 255, level / 1000])
                self.version += 1
        mapped = np.array([self._code[k] for k in keys], dtype=np.int64)
        return mapped[look_index] if len(look_index) else np.zeros(0, np.int64)


#: jupyter-scatter 1.0's decoding of a 2-d array trait (``points``) in its front-end module: one
#: ``Array.from`` of a typed-array view per row, 130–230 ms for 100,000 rows in Chromium
_ROWS_DECODED = """      const arr = new DTYPES[dtype](data.view.buffer);
      const [height, width] = data.shape;
      const points = Array.from({ length: height }).map(
        (_, i) => Array.from(arr.subarray(i * width, (i + 1) * width))
      );
      return points;"""

#: the same rows (arrays of numbers, as before) filled by plain loops: 2–23 ms for 100,000 rows; it
#: also honours the buffer's offset, which the code above ignores
_ROWS_DECODED_FASTER = """      const [height, width] = data.shape;
      const size = DTYPES[dtype].BYTES_PER_ELEMENT, offset = data.view.byteOffset;
      const arr = offset % size === 0
        ? new DTYPES[dtype](data.view.buffer, offset, height * width)
        : new DTYPES[dtype](data.view.buffer.slice(offset, offset + height * width * size));
      const points = new Array(height);
      for (let i = 0, k = 0; i < height; i++) {
        const row = new Array(width);
        for (let j = 0; j < width; j++) row[j] = arr[k++];
        points[i] = row;
      }
      return points;"""


def faster_rows(code: str) -> str:
    """jupyter-scatter's module text ``code`` with its decoding of 2-d array traits done by loops (same result, ~10× faster).

    An epoch switch of a 100,000-point map sends the points once more; decoding them took 60–130
    ms of the page's main thread, the largest part of the page's own work before the frame. A
    module whose text differs (another jupyter-scatter) is returned as it is.
    """
    if code.count(_ROWS_DECODED) != 1:
        logger.info("jupyter-scatter's module decodes its arrays differently than 1.0 did; it is left as it is")
        return code
    return code.replace(_ROWS_DECODED, _ROWS_DECODED_FASTER)


@functools.lru_cache(maxsize=1)
def scatter_module() -> str:
    """The text of the front-end module the canvas's page imports: jupyter-scatter's bundle.js through :func:`faster_rows`."""
    import jscatter.widget

    return faster_rows(str(jscatter.widget.JupyterScatter._esm))  # its FileContents: the text of bundle.js


@functools.lru_cache(maxsize=1)
def _deferred_scatter() -> type:
    """jupyter-scatter's widget class with its 2 MB front-end module imported after the model is ready (see deferred_code)."""
    import jscatter.widget

    code = scatter_module()

    class DeferredScatter(DeferredCode, jscatter.widget.JupyterScatter):
        """jupyter-scatter's widget, its module deferred."""

        _esm = DEFERRED_ESM

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **deferred(code), _dmlviz_drawn_when="regl-scatterplot", **kwargs)

    return DeferredScatter


def _scatter_widget(scatter: Any) -> Any:
    """``scatter.widget``, made as :func:`_deferred_scatter`'s class (jupyter-scatter names its widget class at module level)."""
    import jscatter.jscatter

    original = jscatter.jscatter.JupyterScatter
    jscatter.jscatter.JupyterScatter = _deferred_scatter()
    try:
        return scatter.widget
    finally:
        jscatter.jscatter.JupyterScatter = original


def preload() -> None:
    """Import jupyter-scatter now (about 1 s: it brings matplotlib), e.g. while a dashboard's kernel is preheated."""
    import jscatter  # noqa: F401


def ring(x: float, y: float, radius: float, sides: int = 16) -> list[tuple[float, float]]:
    """Vertices of a closed circle of ``radius`` around (x, y)."""
    angles = np.linspace(0, 2 * np.pi, sides + 1)
    return [(float(x + radius * np.cos(a)), float(y + radius * np.sin(a))) for a in angles]


class PointCanvas:
    """A jupyter-scatter widget showing samples [n] and centers [m] with given colours; reports hover, click and lasso.

    ``on_hover(index)``, ``on_click(index)``, ``on_lasso(indices)`` receive indices into
    the concatenation samples + centers (so an index >= n is center index - n).
    """

    def __init__(self, height: int, on_hover: Callable[[int], None], on_click: Callable[[int], None], on_lasso: Callable[[list[int]], None]) -> None:
        import jscatter
        import pandas as pd

        self._pd, self._jscatter = pd, jscatter
        self.n_samples = 0
        frame = pd.DataFrame({"x": np.zeros(1, np.float32), "y": np.zeros(1, np.float32),
                              "look": pd.Categorical([0], categories=[0]), "kind": np.zeros(1, np.float32)})
        self.scatter = jscatter.Scatter(
            data=frame, x="x", y="y", color_by="look", color_map=[(0.7, 0.7, 0.7, 1.0)], size_by="kind",
            size_map=(SAMPLE_SIZE, CENTER_SIZE), axes=False, legend=False, height=height, background_color="white",
            lasso_initiator=False, tooltip=False,
        )
        self.widget = _scatter_widget(self.scatter)
        self.widget.opacity_by = None  # opacity travels with the colour categories, not the point density
        self.widget.opacity = 1.0
        self.widget.reticle = False  # no crosshair over the map on hover
        self.widget.add_class("dmlviz-point-canvas")
        # the page imports plotly's module (one long task) after this canvas is drawn, not before (see deferred_code)
        from .figure import plotly_code

        plotly_code().load_after(self.widget._dmlviz_code_key)
        self._on_hover, self._on_click, self._on_lasso = on_hover, on_click, on_lasso
        self.widget.observe(self._hovered, "hovering")
        self.widget.observe(self._selected, "selection")
        self._middle, self._half = np.zeros(2), 1.0
        self._frame: tuple[np.ndarray, np.ndarray] | None = None  # the extent drawn so far (low, high)
        self._looks = LookTable()
        self._looks_sent = -1  # the version of the looks the widget holds

    def on_drawn(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once, when a page reports this canvas's points drawn (see DeferredCode.on_drawn)."""
        self.widget.on_drawn(callback)

    def on_redrawn(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(version)`` each time a page reports the points of ``version`` drawn (see :attr:`version`, DeferredCode.on_redrawn)."""
        self.widget.on_redrawn(callback)

    @property
    def version(self) -> int:
        """The version of the points last drawn (sent to the page): 1 for the first :meth:`draw`, 2 for the next, ..."""
        return int(self.widget._dmlviz_points_version)

    def reset_frame(self) -> None:
        """Forget the extent: the next draw fits its points (another run, split or layout method)."""
        self._frame = None

    def draw(self, xy: np.ndarray, colours: np.ndarray, alpha: Any, center_xy: np.ndarray, center_colours: np.ndarray, center_alpha: np.ndarray,
             center_alphas: tuple[float, ...] = ()) -> None:
        """Samples at xy [n, 2] with hex colours [n] and opacity (scalar or [n]); centers at center_xy [m, 2] likewise.

        ``center_alphas``: every opacity a center may take in other draws (e.g. faint when it owns no
        sample); their looks are held from now on, so a later draw needs no new colour table.

        The widget's points are set directly, in its normalised coordinates: one scale for both
        axes (a map's aspect ratio means something) and one frame across draws until
        :meth:`reset_frame` (it grows to hold every epoch drawn), the colour category in column 2,
        size 0/1 (sample/center) in column 3.
        """
        n, m = len(xy), len(center_xy)
        self.n_samples = n
        alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (n,))
        points = np.concatenate([np.asarray(xy, np.float64).reshape(n, 2), np.asarray(center_xy, np.float64).reshape(m, 2)])
        kept = np.unique(np.asarray(center_colours, dtype="U7"))
        also = (np.repeat(kept, len(center_alphas)), np.tile(np.asarray(center_alphas, dtype=np.float64), len(kept)))
        codes = self._looks.codes(np.concatenate([colours, center_colours]), np.concatenate([alpha, center_alpha]), also)
        if len(points):
            # one frame for every epoch (it only grows), so a class that contracts looks smaller, as it is
            low, high = points.min(0), points.max(0)
            if self._frame is not None:
                low, high = np.minimum(low, self._frame[0]), np.maximum(high, self._frame[1])
            self._frame = (low, high)
            self._middle, self._half = (low + high) / 2, float(max((high - low).max() / 2, 1e-9)) * 1.04
        ndc = (points - self._middle) / self._half
        kind = np.r_[np.zeros(n), np.ones(m)]
        with self.widget.hold_sync():
            if self._looks_sent != self._looks.version:  # validating 2,000 colours costs 15 ms even when nothing changed
                colour_table = [list(c) for c in self._looks.colours] or [[0.7, 0.7, 0.7, 1.0]]
                self.widget.color = colour_table
                self.widget.color_domain = {i: i for i in range(len(colour_table))}
                self._looks_sent = self._looks.version
            self.widget.size = [SAMPLE_SIZE, (CENTER_SIZE if m <= 300 else CENTER_SIZE_MANY) if m else SAMPLE_SIZE]
            self.widget.points = (np.column_stack([ndc, codes, kind]).astype(np.float32) if len(points)
                                  else np.zeros((0, 4), np.float32))  # float32: half the bytes to the browser
            self.widget._dmlviz_points_version += 1  # the page reports this version once drawn (on_redrawn)

    def rings(self, marks: list[tuple[float, float, str, float]]) -> None:
        """Circles around points: (x, y, colour, line width) each, in map coordinates; radius 1.2% of the map's extent."""
        jscatter = self._jscatter
        radius = 0.012 * 2  # in the widget's normalised coordinates ([-1, 1] across the longer side)
        lines = []
        for x, y, colour, width in marks:
            cx, cy = (np.array([x, y], dtype=np.float64) - self._middle) / self._half
            lines.append(jscatter.Line(ring(cx, cy, radius), line_color=colour, line_width=int(width)))
        self.widget.annotations = lines

    def _hovered(self, change: Any) -> None:
        if change["new"] is not None and change["new"] >= 0:
            self._on_hover(int(change["new"]))

    def _selected(self, change: Any) -> None:
        picked = [] if change["new"] is None else [int(i) for i in np.asarray(change["new"]).ravel()]
        if len(picked) == 1:
            self._on_click(picked[0])
        elif len(picked) > 1:
            self._on_lasso(picked)

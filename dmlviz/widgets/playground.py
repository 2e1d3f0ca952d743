"""The loss playground: train a small head live and watch its embedding on the unit circle or sphere, with the forces
of each batch, the mined pairs, effective K and the sub-mode score updating as it learns."""

from __future__ import annotations

import datetime as _dt
import html
import logging
import threading
import time
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from ..playground import CHOICES, FORMULAS, PLAYGROUND_LOSSES, PRESETS, Frame, PlaygroundSession, Settings, loss_knobs
from .colors import colour_array
from .figure import FigureWidget, plotly_code, resync_on_render
from .view_watch import ViewWatch

logger = logging.getLogger(__name__)

#: play stops by itself after this long without a touch (a page left open does not hold a core for ever)
MAX_PLAY_SECONDS = 600
#: the longest force arrow is drawn this long (the circle's radius is 1)
ARROW = 0.3
LINE_COLOURS = {"easy": "#2ca02c", "semi-hard": "#ff9f1c", "hard": "#d62728", "positive": "#7fb8e6", "negative": "#f2a0a0"}


def _segments(starts: np.ndarray, ends: np.ndarray) -> list[np.ndarray]:
    """Coordinates per axis of line segments start→end separated by gaps (None), for one line trace."""
    n, dim = starts.shape
    out = []
    for k in range(dim):
        column = np.full(3 * n, np.nan)
        column[0::3], column[1::3] = starts[:, k], ends[:, k]
        out.append(column)
    return out


def _clear(trace: Any, axes: tuple[str, ...]) -> None:
    """Empty a line trace, sending nothing when it is empty already (each update costs the page a redraw of its data)."""
    if trace[axes[0]] is not None and len(trace[axes[0]]):
        for a in axes:
            setattr(trace, a, [])


class Playground(widgets.VBox):
    """Live training on the unit circle (2-D) or sphere (3-D): play / pause / one step / reset, any loss and its knobs,
    presets, the forces (−gradient) on samples and centers, the mined pairs or triplets, and a button that records
    the same settings as a run the explorer opens.

    Training runs in a background thread of the kernel at up to ``fps`` frames per second, ``steps_per_frame`` batches
    per frame, and sends a frame only when the page has drawn all but the last. It pauses when the last view of it
    closes (a JupyterLab tab or a Voila page), when the widget is closed or its kernel ends, and by itself after
    ``MAX_PLAY_SECONDS`` of play.
    """

    def __init__(self, settings: Settings | None = None, runs_dir: str | Path = "runs", fps: float = 20.0, steps_per_frame: int = 2,
                 play: bool = False) -> None:
        self.runs_dir = Path(runs_dir)
        self.fps = float(fps)
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._playing = threading.Event()
        self._closed = False
        self._drawn = 0  # frames drawn since play started
        self._frame_rate = float("nan")
        self.session = PlaygroundSession(settings or Settings())
        s = self.session.settings

        # -- controls ---------------------------------------------------------------------------
        self.preset = widgets.Dropdown(options=[("(choose a preset)", -1)] + [(p.name, i) for i, p in enumerate(PRESETS)], value=-1,
                                       description="preset", layout=widgets.Layout(width="420px"))
        self.preset.add_class("dmlviz-preset")
        self.lesson = widgets.HTML()
        self.loss = widgets.Dropdown(options=list(PLAYGROUND_LOSSES), value=s.loss, description="loss", layout=widgets.Layout(width="260px"))
        self.mdr = widgets.Checkbox(value=s.mdr, description="+ MDR", indent=False, layout=widgets.Layout(width="80px"))
        self.lambda_mdr = widgets.BoundedFloatText(value=s.lambda_mdr, min=0, max=10, step=0.1, description="λ_MDR",
                                                   layout=widgets.Layout(width="150px"))
        self.formula = widgets.HTML()
        self.formula.add_class("dmlviz-formula")
        self.knobs = widgets.VBox()
        self.knobs.add_class("dmlviz-knobs")
        self.dim = widgets.ToggleButtons(options=[("circle (2-D)", 2), ("sphere (3-D)", 3)], value=s.dim, style={"button_width": "100px"})
        self.classes = widgets.BoundedIntText(value=s.classes, min=2, max=12, description="classes", layout=widgets.Layout(width="150px"))
        self.modes = widgets.BoundedIntText(value=s.modes_per_class, min=1, max=5, description="modes", layout=widgets.Layout(width="150px"))
        self.noise = widgets.BoundedFloatText(value=s.noise, min=0.05, max=5, step=0.1, description="noise", layout=widgets.Layout(width="150px"))
        self.points = widgets.BoundedIntText(value=s.points, min=50, max=5000, step=100, description="points", layout=widgets.Layout(width="150px"))
        self.head = widgets.ToggleButtons(options=["linear", "mlp"], value=s.head, style={"button_width": "70px"})
        self.lr = widgets.BoundedFloatText(value=s.lr, min=1e-5, max=1, step=0.005, description="lr", layout=widgets.Layout(width="150px"))
        self.center_lr = widgets.BoundedFloatText(value=s.center_lr, min=1e-5, max=5, step=0.01, description="center lr",
                                                  layout=widgets.Layout(width="150px"))
        self.batch = widgets.BoundedIntText(value=s.batch_size, min=8, max=1024, step=8, description="batch", layout=widgets.Layout(width="150px"))
        self.seed = widgets.IntText(value=s.seed, description="seed", layout=widgets.Layout(width="150px"))
        self.steps_per_frame = widgets.BoundedIntText(value=steps_per_frame, min=1, max=50, description="steps/frame",
                                                      layout=widgets.Layout(width="150px"))
        self.play_button = widgets.Button(description="play", icon="play", layout=widgets.Layout(width="90px"))
        self.play_button.add_class("dmlviz-play")
        self.step_button = widgets.Button(description="step", icon="step-forward", layout=widgets.Layout(width="80px"))
        self.step_button.add_class("dmlviz-step")
        self.reset_button = widgets.Button(description="reset", icon="refresh", layout=widgets.Layout(width="80px"))
        self.forces = widgets.Checkbox(value=True, description="forces", indent=False, layout=widgets.Layout(width="80px"))
        self.mined = widgets.Checkbox(value=True, description="mined pairs", indent=False, layout=widgets.Layout(width="110px"))
        self.stats = widgets.HTML()
        self.stats.add_class("dmlviz-playground-stats")
        self.error = widgets.HTML()
        self.record_epochs = widgets.BoundedIntText(value=20, min=1, max=500, description="epochs", layout=widgets.Layout(width="140px"))
        self.record_button = widgets.Button(description="record as a run", icon="save", layout=widgets.Layout(width="150px"))
        self.record_button.add_class("dmlviz-record")
        self.record_progress = widgets.IntProgress(value=0, min=0, max=1, layout=widgets.Layout(width="160px", visibility="hidden"))
        self.record_status = widgets.HTML()
        self.record_status.add_class("dmlviz-record-status")

        # -- the figures: each made from a figure that already holds the current frame (see figure.py), the sphere's when first shown
        self._figures: dict[int, Any] = {}
        self.plot_area = widgets.Box([self.figure])

        # -- wiring ---------------------------------------------------------------------------------
        self.play_button.on_click(lambda _: self.toggle_play())
        self.step_button.on_click(lambda _: self.step())
        self.reset_button.on_click(lambda _: self.rebuild())
        self.record_button.on_click(lambda _: self.record())
        self.preset.observe(lambda c: self.apply_preset(c["new"]) if c["new"] >= 0 else None, "value")
        self.loss.observe(self._on_loss, "value")
        for control in (self.mdr, self.lambda_mdr, self.dim, self.classes, self.modes, self.noise, self.points, self.head, self.batch, self.seed):
            control.observe(lambda c: self.rebuild(), "value")
        self.lr.observe(lambda c: self._set_rates(), "value")
        self.center_lr.observe(lambda c: self._set_rates(), "value")
        self.forces.observe(lambda c: self.redraw(), "value")
        self.mined.observe(lambda c: self.redraw(), "value")
        self._make_knobs(s.loss, s.loss_params)

        row = lambda *items: widgets.HBox(list(items), layout=widgets.Layout(flex_flow="row wrap", align_items="center"))  # noqa: E731
        controls = widgets.VBox([
            row(self.preset), self.lesson,
            row(self.loss, self.mdr, self.lambda_mdr), self.formula, self.knobs,
            widgets.HTML("<b>data and head</b>"), row(self.dim), row(self.classes, self.modes), row(self.noise, self.points), row(self.head),
            widgets.HTML("<b>training</b>"), row(self.lr, self.center_lr), row(self.batch, self.seed), row(self.steps_per_frame),
            widgets.HTML("<b>record</b>"), row(self.record_epochs, self.record_button), row(self.record_progress, self.record_status),
        ], layout=widgets.Layout(width="460px"))
        buttons = row(self.play_button, self.step_button, self.reset_button, self.forces, self.mined)
        left = widgets.VBox([buttons, self.plot_area, self.stats, self.error])
        self.watch = ViewWatch(self.pause)  # the last view closed (a JupyterLab tab, a Voila page): stop playing
        super().__init__([plotly_code(), self.watch, widgets.HBox([left, controls], layout=widgets.Layout(flex_flow="row wrap"))])
        self.add_class("dmlviz-playground")
        self.redraw()
        if play:
            self.toggle_play()

    # -- figures ----------------------------------------------------------------------------------------
    @staticmethod
    def _line(name: str, colour: str, width: float = 1.0) -> dict:
        return dict(name=name, mode="lines", hoverinfo="skip", showlegend=False, line=dict(color=colour, width=width))

    def _empty_2d(self) -> go.Figure:
        t = np.linspace(0, 2 * np.pi, 181)
        traces = [
            go.Scatter(x=np.cos(t), y=np.sin(t), **self._line("unit circle", "#cccccc")),
            go.Scattergl(name="samples", mode="markers", hoverinfo="text", showlegend=False, marker=dict(size=5, opacity=0.75)),
            go.Scattergl(**self._line("forces on samples", "#444444", 1.0)),
            go.Scatter(name="centers", mode="markers", hoverinfo="text", showlegend=False,
                       marker=dict(size=12, symbol="diamond", line=dict(width=1.5, color="black"))),
            go.Scatter(**self._line("forces on centers", "#000000", 2.5)),
            *[go.Scattergl(**self._line(kind, colour, 1.0), opacity=0.55) for kind, colour in LINE_COLOURS.items()],
        ]
        axis = dict(range=[-1.45, 1.45], showticklabels=False, zeroline=False, showgrid=False)
        layout = go.Layout(width=560, height=560, margin=dict(l=10, r=10, t=10, b=10), xaxis=axis, yaxis=dict(axis, scaleanchor="x"),
                           plot_bgcolor="white", uirevision="keep", dragmode="pan")
        return go.Figure(data=traces, layout=layout)

    def _empty_3d(self) -> go.Figure:
        wire = []
        for lat in (0.0,):  # the equator and two meridians of the unit sphere (each line costs a frame's software WebGL time)
            t = np.linspace(0, 2 * np.pi, 91)
            r, z = np.cos(np.radians(lat)), np.sin(np.radians(lat))
            wire.append(np.stack([r * np.cos(t), r * np.sin(t), np.full_like(t, z)], 1))
        for lon in (0.0, np.pi / 2):
            t = np.linspace(-np.pi / 2, np.pi / 2, 61)
            wire.append(np.stack([np.cos(t) * np.cos(lon), np.cos(t) * np.sin(lon), np.sin(t)], 1))
        gaps = np.concatenate([np.vstack([w, np.full((1, 3), np.nan)]) for w in wire])
        traces = [
            go.Scatter3d(x=gaps[:, 0], y=gaps[:, 1], z=gaps[:, 2], **self._line("unit sphere", "#dddddd")),
            go.Scatter3d(name="samples", mode="markers", hoverinfo="text", showlegend=False, marker=dict(size=2.5, opacity=0.8)),
            go.Scatter3d(**self._line("forces on samples", "#444444", 2.0)),
            go.Scatter3d(name="centers", mode="markers", hoverinfo="text", showlegend=False,
                         marker=dict(size=6, symbol="diamond", line=dict(width=1, color="black"))),
            go.Scatter3d(**self._line("forces on centers", "#000000", 5.0)),
            *[go.Scatter3d(**self._line(kind, colour, 2.0), opacity=0.55) for kind, colour in LINE_COLOURS.items()],
        ]
        axis = dict(range=[-1.3, 1.3], showticklabels=False, showgrid=False, zeroline=False, showbackground=False, title="")
        layout = go.Layout(width=560, height=560, margin=dict(l=0, r=0, t=0, b=0), uirevision="keep",
                           scene=dict(xaxis=axis, yaxis=axis, zaxis=axis, aspectmode="cube"))
        return go.Figure(data=traces, layout=layout)

    @property
    def figure(self) -> Any:
        """The figure in use: the circle's or the sphere's (made on first use, holding the current frame)."""
        dim = self.session.settings.dim
        if dim not in self._figures:
            first = self._empty_2d() if dim == 2 else self._empty_3d()
            self._styled = None
            self._draw(self.session.frame(), first)
            widget = FigureWidget(first)
            widget.add_class("dmlviz-playground-figure")
            resync_on_render(widget, self.redraw)
            widget.observe(self._on_page_drew, "_js2py_traceDeltas")
            self._figures[dim] = widget
        return self._figures[dim]

    @property
    def figure2d(self) -> Any:
        """The unit circle's figure."""
        return self._figures.get(2)

    @property
    def figure3d(self) -> Any:
        """The unit sphere's figure."""
        return self._figures.get(3)

    # -- drawing ----------------------------------------------------------------------------------------
    def redraw(self) -> None:
        """Draw the session as it is now, colours and texts included (also after a page's first render)."""
        with self._lock:
            self._styled = None
            frame = self.session.frame()
            self._draw(frame)

    def _draw(self, f: Frame, figure: Any = None) -> None:
        figure, dim = figure if figure is not None else self.figure, f.points.shape[1]
        axes = ("x", "y", "z")[:dim]
        colours = colour_array(f.labels, int(f.labels.max()) + 1)
        centers = f.centers.reshape(-1, dim)
        center_colours = colour_array(np.repeat(np.arange(len(f.centers)), f.centers.shape[1]), len(f.centers))
        fresh = getattr(self, "_styled", None) is not self.session  # colours and texts change only with the session
        with figure.batch_update():
            samples = figure.data[1]
            for k, a in enumerate(axes):
                setattr(samples, a, f.points[:, k])
            if fresh:
                samples.marker.color = colours
                samples.text = [f"class {c} · hidden mode {m}" for c, m in zip(f.labels, f.fine_labels)]
            forces, center_forces = figure.data[2], figure.data[4]
            show = self.forces.value and len(f.batch) > 0
            if show:
                scale = ARROW / max(float(np.linalg.norm(f.forces, axis=1).max(initial=0)), 1e-12)
                start = f.points[f.batch]
                for a, col in zip(axes, _segments(start, start + scale * f.forces)):
                    setattr(forces, a, col)
                cscale = ARROW / max(float(np.linalg.norm(f.center_forces.reshape(-1, dim), axis=1).max(initial=0)), 1e-12)
                for a, col in zip(axes, _segments(centers, centers + cscale * f.center_forces.reshape(-1, dim))):
                    setattr(center_forces, a, col)
            else:
                for trace in (forces, center_forces):
                    _clear(trace, axes)
            marks = figure.data[3]
            for k, a in enumerate(axes):
                setattr(marks, a, centers[:, k])
            if fresh:
                marks.marker.color = center_colours
                what = "center" if f.centers_learned else "class mean"
                marks.text = [f"class {c} · {what} {j}" for c in range(len(f.centers)) for j in range(f.centers.shape[1])]
            for trace, kind in zip(figure.data[5:], LINE_COLOURS):
                pairs = f.lines.get(kind) if self.mined.value else None
                if pairs is None or not len(pairs):
                    _clear(trace, axes)
                    continue
                for a, col in zip(axes, _segments(f.points[pairs[:, 0]], f.points[pairs[:, 1]])):
                    setattr(trace, a, col)
        self._styled = self.session
        if hasattr(self, "stats"):
            self.stats.value = self._stats(f)

    def _stats(self, f: Frame) -> str:
        k = f.centers.shape[1]
        sub = "—" if f.submode != f.submode else f"{f.submode:.2f}"
        why = " (one center per class cannot split modes)" if k == 1 else ""
        terms = ", ".join(f"{name} {value:.3f}" for name, value in f.terms.items())
        levels = ""
        if "mdr_levels" in f.extras:
            levels = f" · MDR levels {', '.join(f'{v:.2f}' for v in np.ravel(f.extras['mdr_levels']))} (in units of the running std)"
        rate = "" if self._frame_rate != self._frame_rate else f" · {self._frame_rate:.1f} frames/s sent by the kernel"
        g, g0 = f.geometry, self.session.baseline
        shape = (f"<br>mode gap <b>{g['mode_gap']:.0f}°</b> (step 0: {g0['mode_gap']:.0f}°; the angle between a class's hidden modes) · "
                 if g["mode_gap"] == g["mode_gap"] else "<br>")
        shape += (f"class separation <b>{g['separation']:.0f}°</b> (step 0: {g0['separation']:.0f}°; the closest two class means) · "
                  f"spread <b>{g['spread']:.3f}</b> (step 0: {g0['spread']:.3f}; 0 = a class at one point) · "
                  f"dispersion <b>{g['dispersion']:.3f}</b> (0 = every sample at one point)")
        lines = ""
        if self.mined.value:
            kinds = [f'<span style="color:{LINE_COLOURS[kind]}">■</span> {kind} {len(v)}' for kind, v in f.lines.items() if len(v)]
            lines = f"<br>lines: {html.escape(f.mining)}" + (f" — {' · '.join(kinds)}" if kinds else "")
        forces = ("<br>arrows: −∂loss/∂embedding of the last batch's samples and −∂loss/∂parameters as it moves the centers, tangent "
                  f"to the {'circle' if f.points.shape[1] == 2 else 'sphere'}; the longest of each drawn {ARROW} long") if self.forces.value else ""
        return (
            f'<div style="font-size:12px;max-width:560px">step <b>{f.step}</b> · epoch {f.epoch} · loss <b>{f.loss:.4f}</b>'
            f"{f' ({terms})' if terms else ''} · effective K <b>{f.effective_k:.2f}</b> of {k} · sub-mode score <b>{sub}</b>{why} "
            f"(0 = chance, 1 = one center per hidden mode){levels}{rate}{shape}{lines}{forces}<br>"
            f'<span style="color:#666">{html.escape(self.session.describe())}</span></div>'
        )

    # -- knobs --------------------------------------------------------------------------------------------
    def _make_knobs(self, loss: str, values: dict[str, Any]) -> None:
        items = []
        self._knob_widgets: dict[str, widgets.Widget] = {}
        for name, default in loss_knobs(loss).items():
            value = values.get(name, default)
            style = {"description_width": "120px"}
            layout = widgets.Layout(width="220px")
            if (loss, name) in CHOICES:
                w = widgets.Dropdown(options=list(CHOICES[(loss, name)]), value=value, description=name, style=style, layout=layout)
            elif isinstance(default, bool):
                w = widgets.Checkbox(value=bool(value), description=name, indent=False)
            elif isinstance(default, int):
                w = widgets.IntText(value=int(value), description=name, style=style, layout=layout)
            elif isinstance(default, float):
                w = widgets.FloatText(value=float(value), description=name, style=style, layout=layout)
            else:
                w = widgets.Text(value="" if value is None else str(value), description=name, style=style, layout=layout)
            w.observe(lambda c: self.rebuild(), "value")
            self._knob_widgets[name] = w
            items.append(w)
        self.knobs.children = [widgets.HBox(items, layout=widgets.Layout(flex_flow="row wrap"))]
        self.formula.value = (f'<div style="font-size:12px;font-family:serif;background:#f7f7f7;padding:4px 6px;max-width:440px">'
                              f"{html.escape(FORMULAS.get(loss, ''))}</div>")

    def _knob_values(self) -> dict[str, Any]:
        defaults = loss_knobs(self.loss.value)
        out = {}
        for name, w in getattr(self, "_knob_widgets", {}).items():
            value = w.value
            if defaults[name] is None and value == "":
                value = None
            elif defaults[name] is None:
                value = float(value)
            if value != defaults[name]:
                out[name] = value
        return out

    def _on_loss(self, change: dict) -> None:
        self._make_knobs(change["new"], {})
        self.rebuild()

    def settings(self) -> Settings:
        """The settings the controls show."""
        return Settings(loss=self.loss.value, loss_params=self._knob_values(), mdr=self.mdr.value, lambda_mdr=self.lambda_mdr.value,
                        dim=self.dim.value, classes=self.classes.value, modes_per_class=self.modes.value, noise=self.noise.value,
                        points=self.points.value, head=self.head.value, lr=self.lr.value, center_lr=self.center_lr.value,
                        batch_size=self.batch.value, seed=self.seed.value)

    # -- actions -----------------------------------------------------------------------------------------
    def rebuild(self, settings: Settings | None = None) -> None:
        """A new session from ``settings`` (default: the controls'), at step 0; play goes on if it was on."""
        if getattr(self, "_muted", False):
            return
        try:
            settings = settings or self.settings()
            session = PlaygroundSession(settings)
        except (ValueError, TypeError) as error:
            self.error.value = f'<div style="color:#b00020">{html.escape(str(error))}</div>'
            return
        self.error.value = ""
        with self._lock:
            self.session = session
            self.plot_area.children = [self.figure]
            self._draw(session.frame())

    def apply_preset(self, index: int) -> None:
        """Set the controls to preset ``index`` (of PRESETS) and start from step 0."""
        preset = PRESETS[index]
        settings = Settings(**preset.settings)
        self._muted = True
        try:
            self.loss.value = settings.loss
            self._make_knobs(settings.loss, settings.loss_params)
            for control, value in ((self.mdr, settings.mdr), (self.lambda_mdr, settings.lambda_mdr), (self.dim, settings.dim),
                                   (self.classes, settings.classes), (self.modes, settings.modes_per_class), (self.noise, settings.noise),
                                   (self.points, settings.points), (self.head, settings.head), (self.lr, settings.lr),
                                   (self.center_lr, settings.center_lr), (self.batch, settings.batch_size), (self.seed, settings.seed)):
                control.value = value
        finally:
            self._muted = False
        self.lesson.value = (f'<div class="dmlviz-lesson" style="font-size:12px;max-width:440px;background:#eef5fb;padding:4px 6px">'
                             f"{html.escape(preset.lesson)} <i>(about {preset.steps} steps)</i></div>")
        self.rebuild(settings)

    def _set_rates(self) -> None:
        with self._lock:
            try:
                self.session.set_rates(self.lr.value, self.center_lr.value)
            except ValueError as error:
                self.error.value = '<div style="color:#b00020">' + html.escape(str(error)) + "</div>"

    def step(self, n: int | None = None) -> None:
        """Train ``n`` batches (default: steps per frame) and draw."""
        self._draw_frame(self._train(n))

    def _train(self, n: int | None = None) -> tuple[Any, Frame]:
        """Train ``n`` batches; (the session trained, its frame)."""
        with self._lock:
            try:
                self.session.step(n or self.steps_per_frame.value)
            except FloatingPointError as error:
                self._playing.clear()
                self.error.value = f'<div style="color:#b00020">{html.escape(str(error))}: press reset</div>'
            return self.session, self.session.frame()

    def _draw_frame(self, made: tuple[Any, Frame]) -> None:
        """Draw a frame unless the session it came from was replaced meanwhile (a reset, a preset)."""
        with self._lock:
            session, frame = made
            if session is self.session:
                self._draw(frame)

    def toggle_play(self) -> None:
        """Start or pause live training."""
        if self._playing.is_set():
            self._playing.clear()
            return
        self._playing.set()
        self.play_button.description, self.play_button.icon = "pause", "pause"
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="dmlviz-playground", daemon=True)
            self._thread.start()

    def pause(self) -> None:
        """Stop live training (the thread ends after its frame)."""
        self._playing.clear()

    def _on_page_drew(self, change: dict) -> None:
        """The page reports each drawn frame (plotly's trace deltas): from then on play waits for it (back-pressure)."""
        if change["new"]:
            self._page_draws = True
            self._drawn_edit = max(getattr(self, "_drawn_edit", 0), int(change["new"].get("trace_edit_id", 0)))

    def _await_page(self, timeout: float = 0.5) -> None:
        """Wait until the page has drawn all but the last frame sent (at most ``timeout``): a page that falls behind is sent no
        more than it draws, instead of a queue that grows (measured on the sphere: 6.8 frames/s drawn of 18.7 sent without this)."""
        if not getattr(self, "_page_draws", False):
            return  # no page has drawn yet (or none is open): nothing to wait for
        figure, deadline = self.figure, time.monotonic() + timeout
        # one frame may be in flight while the next is sent (the page draws one as the next arrives); never two
        while figure._last_trace_edit_id - getattr(self, "_drawn_edit", 0) > 1 and time.monotonic() < deadline and self._playing.is_set():
            time.sleep(0.003)

    def _alive(self) -> bool:
        return not self._closed and self.figure.comm is not None

    def _loop(self) -> None:
        started, drawn, since = time.monotonic(), 0, time.monotonic()
        try:
            while self._playing.is_set() and self._alive():
                tick = time.monotonic()
                made = self._train()  # the next frame is computed while the page still draws the last one
                self._await_page()
                self._draw_frame(made)
                drawn += 1
                if tick - since >= 1.0:
                    self._frame_rate, drawn, since = drawn / (tick - since), 0, tick
                if tick - started > MAX_PLAY_SECONDS:
                    logger.info("playground paused after %d s of play", MAX_PLAY_SECONDS)
                    break
                time.sleep(max(0.0, 1.0 / self.fps - (time.monotonic() - tick)))
        except Exception as error:  # noqa: BLE001 - shown on the page, not lost in a thread
            logger.exception("playground stopped")
            self.error.value = f'<div style="color:#b00020">stopped: {html.escape(repr(error))}</div>'
        finally:
            self._playing.clear()
            if self._alive():
                self.play_button.description, self.play_button.icon = "play", "play"

    def close(self) -> None:
        """Stop training and close the widget."""
        self._closed = True
        self._playing.clear()
        super().close()

    def record(self) -> None:
        """Train the controls' settings for the chosen epochs with ``dmlviz.train`` into a run folder, in the background."""
        import dmlviz

        settings, epochs = self.settings(), self.record_epochs.value
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        name = f"playground-{settings.loss}{'+mdr' if settings.mdr else ''}-{stamp}"
        out = self.runs_dir / name
        data = PlaygroundSession(settings).data
        self.record_button.disabled = True
        self.record_progress.layout.visibility, self.record_progress.max, self.record_progress.value = "visible", epochs, 0
        self.record_status.value = f"training {epochs} epochs into {html.escape(str(out))} …"

        def work() -> None:
            try:
                dmlviz.train(data, settings.head, settings.loss, epochs=epochs, batch_size=settings.batch_size, embedding_dim=settings.dim,
                             lr=settings.lr, center_lr=settings.center_lr, seed=settings.seed, split="samples", out=out, progress=False,
                             regularizer="mdr" if settings.mdr else None, **({"lambda_mdr": settings.lambda_mdr} if settings.mdr else {}),
                             **settings.loss_params)
                self.record_status.value = (f'recorded <b>{html.escape(name)}</b>: <a href="explorer.ipynb?run={html.escape(name)}" '
                                            'target="_blank">open it in the explorer</a> (same settings and seed, trained afresh)')
            except Exception as error:  # noqa: BLE001 - shown on the page
                logger.exception("recording the playground failed")
                self.record_status.value = f'<span style="color:#b00020">recording failed: {html.escape(str(error))}</span>'
            finally:
                self.record_button.disabled = False
                self.record_progress.layout.visibility = "hidden"

        def watch() -> None:
            while self.record_button.disabled:
                metrics = out / "metrics.csv"
                if metrics.is_file():
                    self.record_progress.value = max(0, sum(1 for _ in metrics.open()) - 2)  # header and epoch 0
                time.sleep(0.5)

        threading.Thread(target=work, name="dmlviz-playground-record", daemon=True).start()
        threading.Thread(target=watch, name="dmlviz-playground-watch", daemon=True).start()

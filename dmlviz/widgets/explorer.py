"""Explorer: every view on one shared state, displayed inline in JupyterLab or as a Voila dashboard."""

from __future__ import annotations

import html
import logging
import os
import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from ..runs import Run, load_run
from .class_view import ClassInspector
from .distance_view import DistanceView
from .map_view import MapView
from .merge_view import MergeTimeline
from .metrics_view import MetricsView
from .neighbors_view import NeighborsView
from .state import ExplorerState

logger = logging.getLogger(__name__)


class Explorer(widgets.VBox):
    """The whole explorer for one run: map, neighbours, class inspector, pair distances, merge timeline, metrics.

    ``Explorer(run)`` (a Run or a path) displays itself in a notebook. ``watch`` seconds > 0 polls a
    run that is still being written and picks up new epochs (stops when the run ends).
    """

    def __init__(self, run: Run | str | os.PathLike, *, layout: str = "pca", watch: float = 2.0, max_points: int = 100_000) -> None:
        self._stop = threading.Event()
        run = run if isinstance(run, Run) else load_run(run)
        self.state = ExplorerState(run)
        self.header = widgets.HTML()
        self.header.add_class("dmlviz-header")
        self.map = MapView(self.state, max_points=max_points)
        self.neighbors = NeighborsView(self.state)
        self.classes = ClassInspector(self.state)
        self.merge = MergeTimeline(self.state)
        self.metrics = MetricsView(self.state)
        self.distances = DistanceView(self.state, shown=False)  # its tab is not the first one: it measures once shown
        side = widgets.Tab(children=[self.neighbors, self.classes, self.distances], layout=widgets.Layout(width="44%", min_width="360px"))
        side.set_title(0, "Neighbours")
        side.set_title(1, "Class inspector")
        side.set_title(2, "Distances")
        self.side = side
        side.observe(lambda c: self.distances.show(c["new"] == 2), "selected_index")
        self.state.observe(lambda c: side.set_trait("selected_index", 1), "selected_class")
        self.state.observe(lambda c: side.set_trait("selected_index", 0) if c["new"] >= 0 else None, "selected_sample")
        top = widgets.HBox([widgets.Box([self.map], layout=widgets.Layout(width="56%")), side], layout=widgets.Layout(width="100%", align_items="flex-start"))
        bottom = widgets.HBox([widgets.Box([self.merge], layout=widgets.Layout(width="50%")), widgets.Box([self.metrics], layout=widgets.Layout(width="50%"))], layout=widgets.Layout(width="100%"))
        super().__init__([self.header, top, bottom], layout=widgets.Layout(width="100%"))
        self.add_class("dmlviz-explorer")
        self._render_header()
        self.state.layout_method = layout
        if watch and run.status == "running":
            self._watcher = threading.Thread(target=self._watch, args=(float(watch),), daemon=True, name="dmlviz-watch")
            self._watcher.start()

    def _render_header(self) -> None:
        run = self.state.run
        cfg = run.config
        params = ", ".join(f"{k}={v}" for k, v in (cfg.get("loss_params") or {}).items())
        status = run.status  # a "running" run whose heartbeat went silent reads "stopped"
        colour = {"running": "#1f77b4", "finished": "#2ca02c", "failed": "#d62728", "stopped": "#e67e00"}.get(status, "#555")
        epochs = self.state.epochs
        banner = ""
        box = "padding:4px 8px;margin-top:4px"
        last = run.last_epoch
        if status == "failed":
            error = html.escape(run.error or "no reason recorded")
            if run.failure == "diverged":
                what = (f"This run failed: it diverged (NaN/inf) — {error}. Showing the epochs it recorded; resume=True with a "
                        f"lower lr or center_lr, or changed loss parameters, continues it from epoch {last}.")
            else:
                what = (f"This run failed with {html.escape(run.error_type or 'an error')}: {error}. Showing the epochs it "
                        f"recorded; resume=True with the same settings continues it from epoch {last}.")
            banner = f'<div class="dmlviz-failed" style="background:#fde8e8;border-left:4px solid #d62728;{box}">{what}</div>'
        elif status == "stopped":
            banner = (f'<div class="dmlviz-stopped" style="background:#fff3e0;border-left:4px solid #e67e00;{box}">'
                      f"{html.escape(run.describe_status())}. Showing the epochs it recorded.</div>")
        elif status == "running":
            banner = '<div style="color:#1f77b4;font-size:12px">still being written — new epochs appear as they are recorded</div>'
        self.header.value = (
            f'<div><span style="font-size:16px;font-weight:600">{html.escape(run.name)}</span> '
            f'<span style="color:{colour};font-weight:600">[{status}]</span> — {html.escape(str(cfg.get("loss")))}'
            f"{' (' + html.escape(params) + ')' if params else ''} on {html.escape(str(cfg.get('dataset')))}, "
            f"{html.escape(str(cfg.get('model')))} → {cfg.get('embedding_dim')}-d, split by {cfg.get('split')}; "
            f"epochs recorded: {epochs[0] if epochs else '–'}…{epochs[-1] if epochs else '–'}{banner}</div>"
        )

    def refresh(self) -> list[int]:
        """Pick up new epochs and status of a run being written; return the new epochs."""
        new = self.state.refresh()
        if new:
            self.metrics.refresh()
        self._render_header()
        return new

    def _watch(self, every: float) -> None:
        """Poll the run every ``every`` s while it is alive; stop once it ends or its heartbeat goes silent (killed)."""
        while not self._stop.wait(every):
            try:
                self.refresh()
            except Exception:  # keep watching: a half-written file is picked up next time
                logger.exception("refreshing the run failed")
            if not self.state.run.alive:  # finished, failed, stopped, or no heartbeat for 30 s
                try:
                    self.refresh()
                except Exception:
                    logger.exception("refreshing the run failed")
                logger.info("run %s is %s; no longer watching it", self.state.run.name, self.state.run.status)
                return

    def close(self) -> None:
        """Stop watching and close the widgets."""
        self._stop.set()
        super().close()


def list_runs(runs_dir: str | os.PathLike) -> list[Path]:
    """Run folders directly under ``runs_dir``, newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if (p / "run.json").is_file()]
    return sorted(found, key=lambda p: (p / "run.json").stat().st_mtime, reverse=True)


def resolve_run(runs_dir: str | os.PathLike, name: str) -> Path:
    """The folder of run ``name`` under ``runs_dir``; refuses names that leave the folder."""
    root = Path(runs_dir).resolve()
    if not name or "/" in name or "\\" in name or name in (".", "..") or os.path.isabs(name):
        raise ValueError(f"run name {name!r} is not a plain folder name under {root}")
    path = (root / name).resolve()
    if path.parent != root:
        raise ValueError(f"run name {name!r} leaves the runs folder {root}")
    if not (path / "run.json").is_file():
        raise FileNotFoundError(f"no run named {name!r} in {root}; runs there: {[p.name for p in list_runs(root)]}")
    return path


class RunChooser(widgets.VBox):
    """Choose a run from a runs folder and explore it (the explorer dashboard)."""

    def __init__(self, runs_dir: str | os.PathLike, initial: str | None = None) -> None:
        self.runs_dir = Path(runs_dir)
        runs = list_runs(self.runs_dir)
        self.select = widgets.Dropdown(options=[p.name for p in runs], value=None, description="run", layout=widgets.Layout(width="420px"))
        self.select.add_class("dmlviz-run-select")
        self.message = widgets.HTML()
        self.body = widgets.VBox()
        self.select.observe(self._on_select, "value")
        super().__init__([widgets.HBox([self.select, self.message]), self.body])
        self.add_class("dmlviz-run-chooser")
        if not runs:
            self.message.value = (
                f'<span class="dmlviz-empty">No runs in {html.escape(str(self.runs_dir))} yet. Train one, e.g. '
                f"<code>dmlviz train --out {html.escape(str(self.runs_dir))}/my-run</code>, then reload this page.</span>"
            )
        elif initial:
            try:
                self.select.value = resolve_run(self.runs_dir, initial).name
            except (ValueError, FileNotFoundError) as error:
                self.message.value = f'<span style="color:#d62728">{html.escape(str(error))}</span>'

    def _on_select(self, change: Any) -> None:
        if change["new"] is None:
            return
        for child in self.body.children:
            child.close()
        path = resolve_run(self.runs_dir, change["new"])
        run = load_run(path)
        if not run.epochs:
            self.body.children = [widgets.HTML(f"Run {html.escape(run.name)} has no recorded epoch yet (status {run.status}).")]
            return
        self.body.children = [Explorer(run)]

"""ExplorerState: the one shared state every view observes and changes."""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any, Callable

import numpy as np
import traitlets

from ..runs import Run, Snapshot

logger = logging.getLogger(__name__)

COLOR_BY = ("class", "fine", "center", "nn")
LAYOUTS = ("pca", "umap")
SPLITS = ("all", "train", "test")


class ExplorerState(traitlets.HasTraits):
    """Run, epoch, selected class and sample, colour-by, layout method, split filter, ε.

    Views observe these traits and set them; they never call each other. Data derived from
    the run (snapshots, layouts, neighbours) is read through the state's cached accessors.
    """

    run = traitlets.Instance(Run, allow_none=True)
    epochs = traitlets.List(traitlets.Int(), help="recorded epochs of the run")
    epoch = traitlets.Int(0)
    selected_class = traitlets.Int(-1, help="class id, -1 for none")
    selected_sample = traitlets.Int(-1, help="row of the probe set, -1 for none")
    highlighted = traitlets.List(traitlets.Int(), help="probe rows drawn highlighted (the neighbours)")
    selection = traitlets.List(traitlets.Int(), help="probe rows picked with the lasso or box")
    color_by = traitlets.Enum(COLOR_BY, default_value="class")
    layout_method = traitlets.Enum(LAYOUTS, default_value="pca")
    split = traitlets.Enum(SPLITS, default_value="all")
    eps = traitlets.Float(0.05)
    layout_status = traitlets.Unicode("", help="what the layout worker is doing")
    layout_done = traitlets.Int(0, help="layouts computed by the background job")
    layout_total = traitlets.Int(0, help="layouts the background job has to compute")
    layout_version = traitlets.Int(0, help="bumped when a new layout is ready")
    map_drawn = traitlets.Bool(False, help="the map has drawn its points (a large map: once its page reports them drawn)")
    map_sent = traitlets.Int(0, help="version of the points last sent to a large map's page (0: a plotly map, which reports no redraws)")
    map_shown = traitlets.Int(0, help="the latest version of a large map's points that a page reported drawn")

    def __init__(self, run: Run | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = threading.RLock()
        self._projectors: dict[str, Any] = {}
        if run is not None:
            self.run = run

    # -- run and epochs --------------------------------------------------------------------
    @traitlets.observe("run")
    def _on_run(self, change: dict) -> None:
        self._snapshot.cache_clear()
        self._nearest.cache_clear()
        self._projectors = {}
        run = change["new"]
        self.epochs = run.epochs if run is not None else []
        self.selected_sample, self.selected_class, self.highlighted, self.selection = -1, -1, [], []
        self.eps = float(run.config.get("eps", 0.05)) if run is not None else 0.05
        self.epoch = self.epochs[-1] if self.epochs else 0

    @traitlets.validate("epoch")
    def _snap_epoch(self, proposal: dict) -> int:
        epochs = self.epochs
        if not epochs:
            return int(proposal["value"])
        value = int(proposal["value"])
        return min(epochs, key=lambda e: (abs(e - value), e))

    def refresh(self) -> list[int]:
        """Look for epochs a live run has written since; return the new ones."""
        if self.run is None:
            return []
        self.run.refresh()
        epochs = self.run.epochs
        new = sorted(set(epochs) - set(self.epochs))
        if new:
            self.compute_layouts()
        if epochs != self.epochs:
            follow = not self.epochs or self.epoch == self.epochs[-1]
            self.epochs = epochs
            if follow and epochs:
                self.epoch = epochs[-1]
        return new

    # -- derived data ----------------------------------------------------------------------
    def snapshot(self, epoch: int | None = None) -> Snapshot:
        """The snapshot of ``epoch`` (default: the current one), cached."""
        return self._snapshot(self.epoch if epoch is None else int(epoch))

    @functools.lru_cache(maxsize=8)
    def _snapshot(self, epoch: int) -> Snapshot:
        return self.run.snapshot(epoch)

    def projector(self, method: str | None = None) -> Any:
        """The Projector of ``method`` (default: the current layout method) for this run."""
        from ..projection import Projector

        method = method or self.layout_method
        with self._lock:
            if method not in self._projectors:
                self._projectors[method] = Projector(self.run, method=method)
            return self._projectors[method]

    @traitlets.observe("layout_method")
    def _on_layout_method(self, change: dict) -> None:
        if change["new"] != "pca":
            self.compute_layouts()

    def compute_layouts(self) -> None:
        """Start (or continue) computing the layouts of the current method in the background."""
        if self.run is None or self.layout_method == "pca":
            return
        projector = self.projector()
        missing = projector.missing()
        if not missing:
            self.layout_status = ""
            return
        job = getattr(self, "_job", None)
        if job is not None and not job.done:
            return
        name = self.layout_method.upper()
        self.layout_done, self.layout_total = 0, len(missing)
        self.layout_status = f"computing {name} layouts: 0/{len(missing)} epochs (showing PCA until ready)"

        def on_progress(done: int, total: int) -> None:
            self.layout_done, self.layout_total = done, total
            self.layout_status = f"computing {name} layouts: {done}/{total} epochs" if done < total else ""

        def on_layout(epoch: int, layout: Any) -> None:
            self.layout_version += 1

        self._job = projector.start_background(on_layout=on_layout, on_progress=on_progress)

    def layout(self, epoch: int | None = None) -> Any:
        """The 2-D layout of ``epoch`` in the current method, or the PCA one while UMAP is not ready."""
        epoch = self.epoch if epoch is None else epoch
        if self.layout_method != "pca":
            cached = self.projector().cached(epoch)
            if cached is not None:
                return cached
        return self.projector("pca").get(epoch)

    def nearest(self, row: int, k: int = 8, epoch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest probe rows to ``row`` in the embedding (cosine, same split, self excluded) and their similarities."""
        return self._nearest(self.epoch if epoch is None else int(epoch), int(row), int(k))

    @functools.lru_cache(maxsize=256)
    def _nearest(self, epoch: int, row: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        snap = self.snapshot(epoch)
        pool = np.flatnonzero(snap.split == snap.split[row])
        rows, sims = _knn_in_pool(snap.embeddings, np.array([row]), pool, k)
        return rows[0], sims[0]

    def top1(self, rows: np.ndarray, epoch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Nearest neighbour (probe row) and its cosine for each of ``rows``, within the row's split."""
        return _top1(self.snapshot(epoch), np.asarray(rows, dtype=np.int64))

    def nearest_correct(self, epoch: int | None = None, rows: np.ndarray | None = None) -> np.ndarray:
        """bool per probe row (or per ``rows``): is its nearest neighbour (same split) of the same class?"""
        snap = self.snapshot(epoch)
        rows = np.arange(len(snap)) if rows is None else np.asarray(rows, dtype=np.int64)
        nn, _ = _top1(snap, rows)
        return snap.labels[nn] == snap.labels[rows]


def _knn_in_pool(embeddings: np.ndarray, rows: np.ndarray, pool: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k most cosine-similar rows of ``pool`` to each of ``rows`` (itself excluded) -> (rows [R, k'], sims [R, k']), k' = min(k, |pool| - 1)."""
    from ..eval.retrieval import knn

    k = min(int(k), len(pool) - 1)
    if k <= 0:
        return np.zeros((len(rows), 0), dtype=np.int64), np.zeros((len(rows), 0), dtype=np.float32)
    sims, idx = knn(embeddings[rows], embeddings[pool], k + 1, device="cpu")
    found, sims = pool[idx.numpy()], sims.numpy()
    keep = found != rows[:, None]
    keep[keep.all(axis=1), -1] = False  # a row not among its own k+1 (duplicates): drop the farthest instead
    return found[keep].reshape(len(rows), k), sims[keep].reshape(len(rows), k)


def _top1(snap: Snapshot, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest other sample (cosine) of each of ``rows`` within its split -> (rows [R], sims [R])."""
    best = np.zeros(len(rows), dtype=np.int64)
    best_sim = np.full(len(rows), -np.inf, dtype=np.float32)
    for split in np.unique(snap.split[rows]):
        pool = np.flatnonzero(snap.split == split)
        where = np.flatnonzero(snap.split[rows] == split)
        if len(pool) < 2:
            continue
        found, sims = _knn_in_pool(snap.embeddings, rows[where], pool, 1)
        best[where], best_sim[where] = found[:, 0], sims[:, 0]
    return best, best_sim


#: seconds by which views beside the map put off their epoch updates (see :func:`after_the_map`)
SECONDARY_DELAY = 0.5
#: the longest views beside a large map wait for the page to report its points drawn (see :func:`once_the_map_is_drawn`)
FIRST_DRAW_LIMIT = 15.0
#: the longest views beside a large map wait for its page to report an epoch's new points drawn (see :func:`after_the_map`)
REDRAW_LIMIT = 2.0


def after_the_map(update: Callable[[], None], prepare: Callable[[], Any] | None = None,
                  delay: float | None = None, state: ExplorerState | None = None) -> Callable[..., None]:
    """An observer that runs ``update()`` once the map has had its turn: ``delay`` s (default ``SECONDARY_DELAY``) after the current message, in a kernel.

    When the epoch changes, the map's new points go to the browser first; the views beside it
    (neighbours' worst queries, the merge timeline's and metrics' epoch marks) follow
    ``SECONDARY_DELAY`` s later, so their redraws do not hold back the map's next frame
    (measured on 100,000 points in headless Chromium: epoch switch 0.75 s at once, 0.65 s with
    0.15 s, 0.53 s with 0.5 s; benchmarks/bench_map_scale.py).

    Given the ``state`` of a large map (a jupyter-scatter canvas, whose page reports each set of
    points drawn: ``state.map_sent``, ``state.map_shown``) and no ``delay``, the views wait instead
    until the page has drawn the points sent so far, ``REDRAW_LIMIT`` s at most: on a 2-core machine
    their work (0.4-0.8 s of both cores for the worst queries at 100,000 points) then no longer
    competes with the page's drawing of the new points.

    ``prepare()``, if given, is the update's heavy part that touches no widget (nearest neighbours,
    distances: it fills the view's caches); it runs in a worker thread first, so the kernel keeps
    answering the page meanwhile (the next epoch switch is not queued behind 0.6 s of nearest
    neighbours at 100,000 points), and ``update()`` then runs on the kernel's thread. A change
    that a later one supersedes before its turn is dropped: the later one shows the current state.
    Outside a Jupyter kernel with a running event loop (scripts, tests) ``update()`` runs at once.
    """
    latest = [0]

    def observer(change: Any = None) -> None:
        loop = kernel_loop()
        if loop is None:
            update()
            return
        latest[0] += 1
        mine = latest[0]

        def finish(future: Any = None) -> None:
            if latest[0] != mine:
                return
            if future is not None and future.exception() is not None:  # update() meets it again and reports it
                logger.warning("preparing a view's update failed: %s", future.exception())
            update()

        def start() -> None:
            if latest[0] != mine:
                return
            if prepare is None:
                finish()
            else:
                loop.run_in_executor(_view_worker(), prepare).add_done_callback(finish)

        if state is None or delay is not None:
            loop.call_later(SECONDARY_DELAY if delay is None else delay, start)
        else:
            loop.call_soon(_when_the_map_is_shown, state, loop, start)  # after the map's own observer has sent its points

    return observer


def _when_the_map_is_shown(state: ExplorerState, loop: Any, start: Callable[[], None]) -> None:
    """Call ``start()`` once a large map's page has drawn the points sent so far (``REDRAW_LIMIT`` s at most); a plotly map: ``SECONDARY_DELAY`` s from now."""
    if state.map_sent == 0:
        loop.call_later(SECONDARY_DELAY, start)
        return
    done: list[bool] = []

    def check(change: Any = None, limit: bool = False) -> None:
        if done or not (limit or state.map_shown >= state.map_sent):
            return
        done.append(True)
        state.unobserve(check, "map_shown")
        timer.cancel()
        start()

    state.observe(check, "map_shown")
    timer = loop.call_later(REDRAW_LIMIT, check, None, True)
    check()


def once_the_map_is_drawn(state: ExplorerState, update: Callable[[], None], prepare: Callable[[], Any] | None = None) -> None:
    """Run a view's first heavy update (``after_the_map(update, prepare)``) once the map's points are drawn.

    A large map's page reports its points drawn (``state.map_drawn``); until then the kernel holds
    back the work that its first frame does not need, such as the worst queries' nearest neighbours
    (0.4 s on both cores at 100,000 points) and the pair distances: on a 2-core machine that work
    competed with the page's own start (its scripts, the widgets' state, the canvas's first frame).
    The wait ends after ``FIRST_DRAW_LIMIT`` s at the latest (a page that never shows the map).
    Once the page has said so the work starts at once: the map's frame is out, and the sooner the
    work ends, the less of it overlaps a user's first epoch switch (with ``SECONDARY_DELAY`` more,
    it still ran during the first switch of the page benchmark: 0.79 s against 0.59 s before this wait).
    Outside a kernel, or once the map is drawn, this is ``after_the_map(update, prepare)()``.
    """
    if not map_pending(state):
        after_the_map(update, prepare)()
        return
    start = after_the_map(update, prepare, delay=0.0)
    started = []

    def go(change: Any = None) -> None:
        if started or (change is not None and not change["new"]):
            return
        started.append(True)
        state.unobserve(go, "map_drawn")
        start()

    state.observe(go, "map_drawn")
    kernel_loop().call_later(FIRST_DRAW_LIMIT, go)


def map_pending(state: ExplorerState) -> bool:
    """Whether, in a kernel, the map's page has not drawn its points yet (see :func:`once_the_map_is_drawn`)."""
    return not state.map_drawn and kernel_loop() is not None


@functools.lru_cache(maxsize=1)
def _view_worker() -> Any:
    """The one thread that prepares views' updates (one at a time, in order)."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="dmlviz-views")


def kernel_loop() -> Any:
    """The running event loop of a Jupyter kernel, or None (a script, a test, a plain IPython)."""
    import asyncio

    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None or getattr(shell, "kernel", None) is None:
            return None
        return asyncio.get_running_loop()
    except (ImportError, RuntimeError):
        return None


def soon(work: Any) -> None:
    """Run ``work()`` right after the current kernel message has been answered (at once outside a kernel).

    The page sends a widget's next state update only once the kernel has answered the previous one,
    merging whatever came meanwhile; a handler that answers at once keeps the page's later events
    (a lasso's "selected" after the hovers of its drag) from being merged away.
    """
    loop = kernel_loop()
    if loop is None:
        work()
    else:
        loop.call_soon(work)

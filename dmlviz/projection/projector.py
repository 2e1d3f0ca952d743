"""2-D layouts of every recorded epoch of a run, aligned across epochs and cached in the run folder.

The samples are laid out alone; each center is then drawn among the samples it owns (see
:mod:`dmlviz.projection.placement`), so that a reader can tell ownership from the map; the
map-ownership agreement measures how well. Each epoch's layout continues from the nearest
earlier cached layout of the same cache folder (PCA: Procrustes-aligned to it; UMAP:
warm-started from it, then aligned), so consecutive frames do not flip or jump.

Cache: ``<run>/projections/<method>-<hash of params>/`` holds ``params.json`` and one
``epoch_NNNN.npz`` per epoch (points, centers, owning, quality, ownership, seconds, method,
previous), every file
written atomically. A damaged file is ignored with a logged warning and recomputed later.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

from dmlviz._validation import check_positive_float, check_positive_int
from dmlviz.eval.centers import center_groups
from dmlviz.runs import layout as run_layout
from dmlviz.runs.files import write_json, write_npz

from . import fitting
from .placement import PLACEMENT_NOTE, place_centers
from .quality import QUALITY_SAMPLE, knn_preservation, knn_preservation_chance, ownership_agreement, ownership_chance

if TYPE_CHECKING:
    from dmlviz.runs.run import Run

logger = logging.getLogger(__name__)

METHODS = ("pca", "umap")
#: Bumped when the algorithm changes, so that old caches are not reused.
ALGORITHM_VERSION = 5
#: UMAP optimisation epochs of the first layout of a chain (a full fit) ...
UMAP_FIRST_EPOCHS = 200
#: ... and of each later layout, warm-started from the previous one.
UMAP_WARM_EPOCHS = 50
#: Initial learning rate of a warm step (decays linearly to 0 over its epochs); low, so that
#: points move only as far as the embedding asks (see benchmarks/bench_layouts.py).
UMAP_WARM_LEARNING_RATE = 0.05
#: Init of the first layout of a chain ("spectral" or "pca").
UMAP_FIRST_INIT = "spectral"
#: k of the k-NN preservation score stored with every layout.
QUALITY_K = 10

ProgressFn = Callable[[int, int], None]
LayoutFn = Callable[[int, "Layout"], None]


class EpochNotRecordedError(KeyError, ValueError):
    """An epoch that the run has not recorded (or whose snapshot is unreadable)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass
class Layout:
    """A 2-D layout of one epoch: points float32 [N, 2] (samples), centers float32 [C', K, 2].

    owning: bool [C', K], centers whose merged group owns at least one probe sample (the others are
    drawn hollow); merged centers (closer than the run's ε) are drawn at one place.
    quality: k-NN preservation of the samples (k=10, cosine in the embedding space), in [0, 1].
    ownership: map-ownership agreement of the drawn centers (share of samples whose nearest
    drawn center of their class is their own or merged with it; NaN when no class has two
    owning groups). ownership_chance: what a map whose centers say nothing of their samples would
    score (mean 1 / G over the samples counted; NaN with it, or when read from an older cache file).
    quality_chance (a property): k-NN preservation of a random map, 10 / (N - 1).
    seconds: time spent computing the layout. previous: the epoch it continued from, or None.
    """

    epoch: int
    method: str
    points: np.ndarray
    centers: np.ndarray
    quality: float
    seconds: float
    previous: int | None = None
    owning: np.ndarray | None = None
    ownership: float = float("nan")
    ownership_chance: float = float("nan")

    #: How the centers are placed, for captions.
    placement: str = PLACEMENT_NOTE

    @property
    def quality_chance(self) -> float:
        """k-NN preservation of a map that keeps nothing: 10 / (N - 1) (NaN below 2 points)."""
        return knn_preservation_chance(len(self.points), QUALITY_K)

    def stacked(self) -> np.ndarray:
        """Samples then centers as one float32 [N + C'K, 2] array."""
        return np.concatenate([self.points, self.centers.reshape(-1, 2)]).astype(np.float32)


# One lock per cache folder (computations of one folder are serialised within a process)
# and at most one background job per cache folder.
_REGISTRY_LOCK = threading.Lock()
_FOLDER_LOCKS: dict[str, threading.RLock] = {}
_ACTIVE_JOBS: dict[str, "BackgroundJob"] = {}


def _folder_lock(key: str) -> threading.RLock:
    with _REGISTRY_LOCK:
        lock = _FOLDER_LOCKS.get(key)
        if lock is None:
            lock = _FOLDER_LOCKS[key] = threading.RLock()
        return lock


def _check_epoch_value(epoch: Any) -> int:
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise TypeError(f"epoch must be a non-negative integer, got {epoch!r}")
    return int(epoch)


class Projector:
    """2-D layouts of a run's epochs by ``method`` ("pca" or "umap"), cached in the run folder."""

    def __init__(
        self,
        run: "Run | str | os.PathLike",
        method: str = "pca",
        *,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        seed: int = 0,
    ) -> None:
        """Lay out ``run`` (a Run or a run folder path); n_neighbors, min_dist, seed are UMAP's."""
        if not isinstance(method, str) or method not in METHODS:
            raise ValueError(f"unknown layout method {method!r}; choose one of {', '.join(map(repr, METHODS))}")
        n_neighbors = check_positive_int("n_neighbors", n_neighbors, minimum=2)
        min_dist = check_positive_float("min_dist", min_dist, allow_zero=True)
        seed = check_positive_int("seed", seed, minimum=0)
        if not hasattr(run, "snapshot") or not hasattr(run, "path"):
            from dmlviz.runs import load_run

            run = load_run(run)
        self.run = run
        self.method = method
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.seed = seed
        params: dict[str, Any] = {"method": method, "version": ALGORITHM_VERSION}
        if method == "umap":
            params.update(
                n_neighbors=n_neighbors, min_dist=min_dist, seed=seed, metric="cosine", knn="exact",
                first_epochs=UMAP_FIRST_EPOCHS, first_init=UMAP_FIRST_INIT,
                warm_epochs=UMAP_WARM_EPOCHS, warm_learning_rate=UMAP_WARM_LEARNING_RATE,
            )
        self.params: dict[str, Any] = params
        digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
        self.path: Path = Path(run.path) / run_layout.PROJECTIONS / f"{method}-{digest}"
        self._key = str(self.path.resolve())
        self._memo: dict[int, tuple[tuple[int, int], Layout | None]] = {}

    # ------------------------------------------------------------------ cache reading

    def _file(self, epoch: int) -> Path:
        return self.path / run_layout.epoch_file(epoch)

    def cached(self, epoch: int) -> Layout | None:
        """The cached layout of ``epoch``, or None (not computed yet, or the cache file is damaged)."""
        epoch = _check_epoch_value(epoch)
        path = self._file(epoch)
        try:
            stat = path.stat()
        except FileNotFoundError:
            self._memo.pop(epoch, None)
            return None
        key = (stat.st_mtime_ns, stat.st_size)
        memo = self._memo.get(epoch)
        if memo is not None and memo[0] == key:
            return memo[1]
        try:
            result: Layout | None = self._read(epoch, path)
        except Exception as error:  # damaged, truncated or foreign file
            logger.warning("ignoring damaged layout cache file %s (%s); it will be recomputed", path, error)
            result = None
        self._memo[epoch] = (key, result)
        return result

    def _read(self, epoch: int, path: Path) -> Layout:
        with np.load(path, allow_pickle=False) as data:
            points = np.asarray(data["points"], dtype=np.float32)
            centers = np.asarray(data["centers"], dtype=np.float32)
            owning = np.asarray(data["owning"], dtype=bool)
            ownership = float(data["ownership"])
            chance = float(data["ownership_chance"]) if "ownership_chance" in data.files else float("nan")  # older files: unknown
            quality = float(data["quality"])
            seconds = float(data["seconds"])
            method = str(data["method"])
            previous = int(data["previous"])
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"points have shape {points.shape}, expected [N, 2]")
        if centers.ndim != 3 or centers.shape[2] != 2:
            raise ValueError(f"centers have shape {centers.shape}, expected [C, K, 2]")
        if owning.shape != centers.shape[:2]:
            raise ValueError(f"owning has shape {owning.shape}, expected {centers.shape[:2]}")
        if not (np.isfinite(points).all() and np.isfinite(centers).all()):
            raise ValueError("coordinates are not finite")
        return Layout(epoch, method, points, centers, quality, seconds, None if previous < 0 else previous, owning, ownership, chance)

    def _cached_epochs(self) -> list[int]:
        """Epochs that have a cache file (readable or not), ascending."""
        try:
            entries = os.listdir(self.path)
        except FileNotFoundError:
            return []
        return sorted(e for e in (run_layout.parse_epoch_file(name) for name in entries) if e is not None)

    def missing(self) -> list[int]:
        """Recorded epochs of the run without a (readable) cached layout, ascending."""
        return [e for e in self.run.epochs if self.cached(e) is None]

    # ------------------------------------------------------------------ computing

    def _check_recorded(self, epochs: Iterable[Any]) -> list[int]:
        recorded = self.run.epochs
        wanted = sorted({_check_epoch_value(e) for e in epochs})
        absent = [e for e in wanted if e not in recorded]
        if absent:
            raise EpochNotRecordedError(
                f"run {self.run.name!r} has not recorded epoch(s) {absent}; recorded epochs: {recorded}"
            )
        return wanted

    def get(self, epoch: int, *, chain: bool = True) -> Layout:
        """The layout of ``epoch``: cached, or computed now and cached.

        With ``chain`` (default) the missing recorded epochs before ``epoch`` are computed first,
        in order, so that the layout continues the same aligned chain whatever order epochs are
        asked in; ``chain=False`` computes only ``epoch``, from the nearest earlier cached layout.
        """
        (epoch,) = self._check_recorded([epoch])
        layout = self.cached(epoch)
        if layout is not None:
            return layout
        todo = [e for e in self.missing() if e <= epoch] if chain else [epoch]
        for e in todo:
            layout = self._get_or_compute(e)
        assert layout is not None
        return layout

    def compute(
        self,
        epochs: Iterable[int] | None = None,
        progress: ProgressFn | bool | None = None,
    ) -> dict[int, Layout]:
        """Compute the missing layouts of ``epochs`` (default: all recorded) in ascending order -> {epoch: Layout}.

        ``progress(done, total)`` is called after each; with None a tqdm.auto bar is shown,
        with False nothing.
        """
        wanted = None if epochs is None else set(self._check_recorded(epochs))
        todo = [e for e in self.missing() if wanted is None or e in wanted]
        bar = None
        if progress is None and todo:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), desc=f"{self.method} layouts", unit="epoch")
        done: dict[int, Layout] = {}
        try:
            for i, e in enumerate(todo):
                done[e] = self._get_or_compute(e)
                if bar is not None:
                    bar.update(1)
                elif callable(progress):
                    progress(i + 1, len(todo))
        finally:
            if bar is not None:
                bar.close()
        return done

    def _get_or_compute(self, epoch: int) -> Layout:
        """Cached layout of ``epoch`` or compute, cache and return it (serialised per cache folder)."""
        with _folder_lock(self._key):
            layout = self.cached(epoch)
            if layout is None:
                layout = self._compute_one(epoch)
                self._write(layout)
            return layout

    def _previous(self, epoch: int) -> Layout | None:
        """The nearest earlier cached (readable) layout."""
        for e in reversed(self._cached_epochs()):
            if e < epoch:
                layout = self.cached(e)
                if layout is not None:
                    return layout
        return None

    def _compute_one(self, epoch: int) -> Layout:
        try:
            snap = self.run.snapshot(epoch)
        except KeyError as error:
            raise EpochNotRecordedError(str(error.args[0]) if error.args else str(error)) from None
        emb = np.asarray(snap.embeddings, dtype=np.float32)
        n, d = emb.shape
        centers = np.asarray(snap.centers, dtype=np.float32)
        if centers.ndim != 3 or (centers.size and centers.shape[2] != d):
            raise ValueError(f"epoch {epoch}: centers have shape {centers.shape}, expected [C', K, {d}]")
        prev = self._previous(epoch)
        if prev is not None and len(prev.points) != n:
            logger.warning(
                "epoch %d has %d samples but the cached layout of epoch %d has %d; starting a new chain",
                epoch, n, prev.epoch, len(prev.points),
            )
            prev = None
        method = self.method
        start = time.perf_counter()
        if method == "umap" and n < 4:
            logger.warning("epoch %d has only %d samples, too few for UMAP; using PCA instead", epoch, n)
            method = "pca"
        if method == "pca":
            y = fitting.pca_2d(emb)
        else:
            y = self._umap(emb, prev, epoch)
        if prev is not None:
            y = fitting.procrustes_align(y, prev.points)
        points = y.astype(np.float32)
        groups = center_groups(centers, eps=float(getattr(snap, "eps", 0.05))) if centers.size else None
        center_xy, owning = place_centers(points, snap.labels, snap.assignments, emb, centers, snap.center_classes, groups)
        seconds = time.perf_counter() - start
        quality = knn_preservation(emb, points, k=QUALITY_K, sample=QUALITY_SAMPLE)
        ownership = ownership_agreement(points, snap.labels, snap.assignments, center_xy, snap.center_classes, owning, groups)
        chance = ownership_chance(snap.labels, snap.assignments, snap.center_classes, owning, groups)
        logger.debug(
            "%s layout of epoch %d: %.3f s, k-NN preservation %.3f, map-ownership agreement %.3f",
            method, epoch, seconds, quality, ownership,
        )
        return Layout(
            epoch, method, points, center_xy, quality, seconds, None if prev is None else prev.epoch, owning, ownership, chance
        )

    def _umap(self, x: np.ndarray, prev: Layout | None, epoch: int) -> np.ndarray:
        """UMAP of the samples x [N, D]: a full fit, or warm-started from ``prev``."""
        m = len(x)
        k = self.n_neighbors
        if m <= k + 1:  # k-NN lists (self included) need k <= M - 1 here; N >= 4 keeps k >= 3
            k = m - 2 if m > 4 else m - 1
            logger.info("epoch %d: %d points, reducing n_neighbors from %d to %d", epoch, m, self.n_neighbors, k)
        common = dict(n_neighbors=k, min_dist=self.min_dist, seed=self.seed)
        if prev is None:
            return fitting.umap_2d(x, init=UMAP_FIRST_INIT, n_epochs=UMAP_FIRST_EPOCHS, **common)
        # equal x/y ranges: umap-learn's per-axis rescaling of the init is then uniform (no stretch)
        init = fitting.equal_ranges(prev.points.astype(np.float64))
        return fitting.umap_2d(
            x, init=init, n_epochs=UMAP_WARM_EPOCHS, learning_rate=UMAP_WARM_LEARNING_RATE, **common
        )

    def _write(self, layout: Layout) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        params_file = self.path / "params.json"
        if not params_file.exists():
            write_json(params_file, {**self.params, "run": self.run.name})
        write_npz(
            self._file(layout.epoch),
            {
                "points": layout.points.astype(np.float32),
                "centers": layout.centers.astype(np.float32),
                "owning": np.asarray(layout.owning if layout.owning is not None else np.ones(layout.centers.shape[:2], bool)),
                "quality": np.float64(layout.quality),
                "ownership": np.float64(layout.ownership),
                "ownership_chance": np.float64(layout.ownership_chance),
                "seconds": np.float64(layout.seconds),
                "method": np.str_(layout.method),
                "previous": np.int64(-1 if layout.previous is None else layout.previous),
            },
        )
        stat = self._file(layout.epoch).stat()
        self._memo[layout.epoch] = ((stat.st_mtime_ns, stat.st_size), layout)

    # ------------------------------------------------------------------ background

    @property
    def job(self) -> "BackgroundJob | None":
        """The background job running for this cache folder in this process, if any."""
        with _REGISTRY_LOCK:
            return _ACTIVE_JOBS.get(self._key)

    def start_background(
        self,
        epochs: Iterable[int] | None = None,
        on_layout: LayoutFn | None = None,
        on_progress: ProgressFn | None = None,
    ) -> "BackgroundJob":
        """Compute missing layouts (of ``epochs``, default all) in a daemon thread, in ascending order.

        ``on_layout(epoch, layout)`` is called after each layout, ``on_progress(done, total)``
        at the start and after each. With ``epochs=None`` the job keeps going until no recorded
        epoch is missing, so epochs that a live run records meanwhile are laid out too. If a job
        is already running for this cache folder in this process, the callbacks and epochs are
        added to it and that job is returned (its callbacks see only layouts finished later).
        """
        wanted = None if epochs is None else set(self._check_recorded(epochs))
        with _REGISTRY_LOCK:
            job = _ACTIVE_JOBS.get(self._key)
            if job is not None and job._accepting:
                job._extend(wanted, on_layout, on_progress)
                return job
            job = BackgroundJob(self, wanted, on_layout, on_progress)
            _ACTIVE_JOBS[self._key] = job
        job._thread.start()
        return job

    def __repr__(self) -> str:
        return f"Projector({self.run.name!r}, method={self.method!r}, cache={str(self.path)!r})"


class BackgroundJob:
    """A daemon thread computing a Projector's missing layouts; see :meth:`Projector.start_background`."""

    def __init__(
        self,
        projector: Projector,
        wanted: set[int] | None,
        on_layout: LayoutFn | None,
        on_progress: ProgressFn | None,
    ) -> None:
        """Prepare (not start) the job; ``wanted`` None means every recorded epoch."""
        self.projector = projector
        self._wanted = wanted
        self._on_layout: list[LayoutFn] = [on_layout] if on_layout else []
        self._on_progress: list[ProgressFn] = [on_progress] if on_progress else []
        self._cancel = threading.Event()
        self._accepting = True  # guarded by _REGISTRY_LOCK
        self.error: BaseException | None = None
        self.completed: list[int] = []
        self.total = 0
        self._thread = threading.Thread(target=self._run, name=f"dmlviz-layouts-{projector.path.name}", daemon=True)

    def _extend(self, wanted: set[int] | None, on_layout: LayoutFn | None, on_progress: ProgressFn | None) -> None:
        """Add epochs and callbacks (called under _REGISTRY_LOCK while the job still accepts)."""
        if self._wanted is not None:
            self._wanted = None if wanted is None else self._wanted | wanted
        if on_layout:
            self._on_layout.append(on_layout)
        if on_progress:
            self._on_progress.append(on_progress)

    def _todo(self) -> list[int]:
        wanted = self._wanted
        return [e for e in self.projector.missing() if wanted is None or e in wanted]

    def _progress(self) -> None:
        for fn in list(self._on_progress):
            fn(len(self.completed), self.total)

    def _run(self) -> None:
        key = self.projector._key
        try:
            first = True
            while not self._cancel.is_set():
                with _REGISTRY_LOCK:
                    todo = self._todo()
                    if not todo:
                        self._accepting = False
                        _ACTIVE_JOBS.pop(key, None)
                        break
                self.total = len(self.completed) + len(todo)
                if first:
                    self._progress()
                    first = False
                epoch = todo[0]
                layout = self.projector._get_or_compute(epoch)
                self.completed.append(epoch)
                for fn in list(self._on_layout):
                    fn(epoch, layout)
                self._progress()
        except BaseException as error:  # stored for the caller, and logged
            self.error = error
            logger.error("background %s layout job failed: %s", self.projector.method, error, exc_info=error)
        finally:
            with _REGISTRY_LOCK:
                self._accepting = False
                if _ACTIVE_JOBS.get(key) is self:
                    del _ACTIVE_JOBS[key]

    def cancel(self) -> None:
        """Ask the job to stop after the layout it is computing."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        """Whether the thread has finished (all computed, cancelled, or failed)."""
        return self._thread.ident is not None and not self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for the job to finish; returns :attr:`done`."""
        self._thread.join(timeout)
        return self.done

    def __repr__(self) -> str:
        state = "failed" if self.error else "done" if self.done else "running"
        return f"BackgroundJob({self.projector.method!r}, {state}, {len(self.completed)}/{self.total})"

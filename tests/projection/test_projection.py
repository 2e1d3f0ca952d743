"""dmlviz.projection: PCA/UMAP layouts, alignment across epochs, cache, background jobs."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import dmlviz
from dmlviz.eval import assign_to_centers, center_groups
from dmlviz.projection import knn_preservation_chance, ownership_agreement, ownership_chance, place_centers, placement
from dmlviz.projection import (
    BackgroundJob,
    EpochNotRecordedError,
    Layout,
    Projector,
    fitting,
    knn_preservation,
    procrustes_disparity,
)
from dmlviz.runs import layout as run_layout

ROOT = Path(__file__).resolve().parents[2]


def copy_run(src, dst: Path):
    """A private copy of a run folder (without cached projections)."""
    shutil.copytree(src.path, dst, ignore=shutil.ignore_patterns(run_layout.PROJECTIONS))
    return dmlviz.load_run(dst)


class FakeRun:
    """Just what Projector reads from a run: path, name, epochs, snapshot(e)."""

    def __init__(self, path: Path, frames: dict[int, np.ndarray], centers: dict[int, np.ndarray] | None = None) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.name = self.path.name
        self.frames = frames
        self.centers = centers or {}

    @property
    def epochs(self) -> list[int]:
        return sorted(self.frames)

    def snapshot(self, epoch: int) -> SimpleNamespace:
        if epoch not in self.frames:
            raise KeyError(f"no epoch {epoch}")
        x = self.frames[epoch].astype(np.float32)
        c = self.centers.get(epoch, np.zeros((0, 1, x.shape[1]), np.float32)).astype(np.float32)
        labels = np.arange(len(x)) % max(len(c), 1)
        classes = np.arange(len(c))
        assignments = assign_to_centers(x, labels, c, classes) if len(c) else np.full(len(x), -1)
        return SimpleNamespace(embeddings=x, centers=c, labels=labels, center_classes=classes, assignments=assignments)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pca_run(small_run, tmp_path_factory):
    """A private copy of the small run with every PCA layout computed."""
    run = copy_run(small_run, tmp_path_factory.mktemp("pca") / "run")
    calls = []
    layouts = Projector(run, "pca").compute(progress=lambda done, total: calls.append((done, total)))
    return SimpleNamespace(run=run, layouts=layouts, calls=calls)


@pytest.fixture(scope="module")
def umap_run(small_run, tmp_path_factory):
    """UMAP layouts of a copy of the small run whose last epoch arrives after the others were laid out."""
    run = copy_run(small_run, tmp_path_factory.mktemp("umap") / "run")
    last = run.epochs[-1]
    hidden = run.path.parent / "hidden.npz"
    os.replace(run.path / run_layout.epoch_file(last), hidden)
    proj = Projector(run, "umap")
    first = proj.compute(progress=False)
    mtimes = {e: os.stat(proj.path / run_layout.epoch_file(e)).st_mtime_ns for e in first}
    os.replace(hidden, run.path / run_layout.epoch_file(last))
    missing_after_restore = proj.missing()
    second = proj.compute(progress=False)
    layouts = {e: proj.get(e) for e in run.epochs}
    return SimpleNamespace(
        run=run, proj=proj, first=first, second=second, layouts=layouts, mtimes=mtimes,
        missing_after_restore=missing_after_restore, last=last,
    )


# ---------------------------------------------------------------------------- quality


def test_knn_preservation_perfect_and_random():
    rng = np.random.default_rng(0)
    angles = rng.uniform(0, 2 * np.pi, 300)
    circle = np.stack([np.cos(angles), np.sin(angles)], 1)
    high = np.concatenate([circle, np.zeros((300, 6))], 1)  # cosine order == Euclidean order on the circle
    assert knn_preservation(high, circle, k=10) == pytest.approx(1.0)
    noise = knn_preservation(high, rng.normal(size=(300, 2)), k=10)
    assert 0.0 <= noise < 0.2
    assert np.isnan(knn_preservation(high[:1], circle[:1]))
    assert knn_preservation(high[:5], circle[:5], k=10) == pytest.approx(1.0)  # k capped at N - 1
    with pytest.raises(ValueError, match="same number of rows"):
        knn_preservation(high, circle[:10])


def test_knn_preservation_chance_is_what_random_maps_score():
    assert knn_preservation_chance(101, 10) == pytest.approx(0.1)
    assert knn_preservation_chance(5, 10) == pytest.approx(1.0)  # k capped at N - 1: every other point is a neighbour
    assert np.isnan(knn_preservation_chance(1, 10))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        knn_preservation_chance(10, 0)
    rng = np.random.default_rng(3)
    high = rng.normal(size=(400, 8))
    scores = [knn_preservation(high, rng.normal(size=(400, 2)), k=10) for _ in range(8)]
    assert np.mean(scores) == pytest.approx(knn_preservation_chance(400, 10), abs=0.01)  # 0.025


def test_ownership_chance_is_one_over_the_owning_groups_of_each_counted_sample():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
    assignments = np.array([0, 1, 1, -1, 0, 1, 2, 0, 0])  # one sample of class 0 is assigned no center: not counted
    owning = np.array([[True, True, False], [True, True, True], [True, False, False]])
    # class 0: 2 groups (3 samples), class 1: 3 groups (3 samples), class 2: 1 group (not counted)
    assert ownership_chance(labels, assignments, [0, 1, 2], owning) == pytest.approx((3 / 2 + 3 / 3) / 6)
    merged = np.array([[0, 1, 2], [0, 0, 2], [0, 1, 2]])  # class 1's first two centers are one group: 2 groups
    assert ownership_chance(labels, assignments, [0, 1, 2], owning, merged) == pytest.approx((3 / 2 + 3 / 2) / 6)
    assert np.isnan(ownership_chance(labels, assignments, [0, 1, 2], np.eye(3, dtype=bool)))  # no class has two
    with pytest.raises(ValueError, match="groups must be"):
        ownership_chance(labels, assignments, [0, 1, 2], owning, merged[:, :2])
    # centers drawn at random places: their agreement averages the chance level
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(20), 30)
    assignments = rng.integers(0, 3, size=len(labels))
    points = rng.normal(size=(len(labels), 2))
    owning = np.ones((20, 3), bool)
    scores = [ownership_agreement(points, labels, assignments, rng.normal(size=(20, 3, 2)), np.arange(20), owning) for _ in range(20)]
    assert np.mean(scores) == pytest.approx(ownership_chance(labels, assignments, np.arange(20), owning), abs=0.03)  # 1/3


def test_procrustes_disparity_ignores_rotation_scale_shift():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(50, 2))
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])
    assert procrustes_disparity(a, 3 * a @ rot + 5) == pytest.approx(0.0, abs=1e-12)
    assert procrustes_disparity(a, rng.normal(size=(50, 2))) > 0.5


def test_procrustes_align_recovers_a_reflection_and_scale():
    rng = np.random.default_rng(2)
    target = rng.normal(size=(40, 2))
    moving = np.concatenate([target * [-2.0, 2.0] + 7, [[1.0, 1.0]]])  # reflected, scaled, shifted, +1 extra row
    aligned = fitting.procrustes_align(moving, target, rows=40)
    assert np.allclose(aligned[:40], target, atol=1e-9)
    assert aligned.shape == (41, 2)


def test_equal_ranges_rotates_without_stretching():
    rng = np.random.default_rng(5)
    y = rng.normal(size=(200, 2)) * [10.0, 1.0] + 3
    z = fitting.equal_ranges(y)
    span = z.max(0) - z.min(0)
    assert span[0] == pytest.approx(span[1], rel=1e-6)
    assert procrustes_disparity(y, z) == pytest.approx(0.0, abs=1e-12)  # a pure rotation
    assert np.allclose(np.linalg.norm(z, axis=1), np.linalg.norm(y - y.mean(0), axis=1))


# --------------------------------------------------------------------------------- PCA


def test_pca_layouts_have_the_documented_shapes(pca_run):
    run, layouts = pca_run.run, pca_run.layouts
    assert sorted(layouts) == run.epochs
    snap = run.snapshot(run.epochs[-1])
    for epoch, lay in layouts.items():
        assert isinstance(lay, Layout) and lay.epoch == epoch and lay.method == "pca"
        assert lay.points.dtype == np.float32 and lay.points.shape == (len(snap), 2)
        assert lay.centers.dtype == np.float32 and lay.centers.shape == (*snap.centers.shape[:2], 2)
        assert np.isfinite(lay.points).all() and np.isfinite(lay.centers).all()
        assert 0.0 <= lay.quality <= 1.0 and lay.seconds >= 0.0
        assert lay.previous == (None if epoch == run.epochs[0] else epoch - 1)
    assert pca_run.calls == [(i + 1, len(layouts)) for i in range(len(layouts))]


def test_pca_cache_is_read_by_a_second_projector(pca_run, monkeypatch):
    run = pca_run.run
    proj = Projector(run, "pca")
    assert proj.path.parent == run.path / "projections" and proj.path.name.startswith("pca-")
    assert (proj.path / "params.json").is_file()
    assert sorted(p.name for p in proj.path.glob("epoch_*.npz")) == [run_layout.epoch_file(e) for e in run.epochs]
    assert not list(proj.path.glob(".tmp-*"))
    mtimes = {p.name: p.stat().st_mtime_ns for p in proj.path.iterdir()}

    def boom(*args, **kwargs):
        raise AssertionError("recomputed a cached layout")

    monkeypatch.setattr(fitting, "pca_2d", boom)
    assert proj.missing() == []
    assert proj.compute(progress=False) == {}
    for epoch, lay in pca_run.layouts.items():
        again = proj.get(epoch)
        np.testing.assert_array_equal(again.points, lay.points)
        np.testing.assert_array_equal(again.centers, lay.centers)
        assert again.quality == pytest.approx(lay.quality)
    assert {p.name: p.stat().st_mtime_ns for p in proj.path.iterdir()} == mtimes
    with np.load(proj.path / run_layout.epoch_file(0), allow_pickle=False) as data:
        assert {"points", "centers", "quality", "seconds"} <= set(data.files)


def test_params_select_the_cache_folder(pca_run):
    run = pca_run.run
    a, b, c = Projector(run, "umap"), Projector(run, "umap", n_neighbors=5), Projector(run, "pca", n_neighbors=5)
    assert a.path != b.path and a.path.name.startswith("umap-")
    assert c.path == Projector(run, "pca").path  # PCA ignores UMAP's parameters
    assert b.params["n_neighbors"] == 5 and a.params["seed"] == 0


def test_procrustes_stops_a_pca_sign_flip(tmp_path):
    rng = np.random.default_rng(0)
    n, d, eps = 400, 8, 0.02

    def frame(main: np.ndarray) -> np.ndarray:
        main = main / np.linalg.norm(main)
        t = np.linspace(-3, 3, n)
        second = np.zeros(d)
        second[2] = 1.0
        return t[:, None] * main + 0.5 * rng.normal(size=(n, 1)) * second + 0.01 * rng.normal(size=(n, d))

    base0 = np.zeros(d)
    base0[:2] = [1 + eps, -1]  # largest loading on dim 0 (positive) ...
    base1 = np.zeros(d)
    base1[:2] = [1, -1 - eps]  # ... then on dim 1 (negative): PCA's sign convention flips
    x0 = frame(base0)
    x1 = x0 @ _rotation_taking(base0, base1, d)  # the same points turned by about 0.01 rad
    raw0, raw1 = fitting.pca_2d(x0), fitting.pca_2d(x1)
    spread = np.abs(raw0).max()
    assert np.abs(raw0 - raw1).max() > spread  # unaligned, the frames flip

    run = FakeRun(tmp_path / "fake", {0: x0, 1: x1})
    proj = Projector(run, "pca")
    l0, l1 = proj.get(0), proj.get(1)
    assert l1.previous == 0 and l0.centers.shape == (0, 1, 2)
    assert np.abs(l0.points - l1.points).max() < 0.05 * spread


def _rotation_taking(a: np.ndarray, b: np.ndarray, d: int) -> np.ndarray:
    """A d x d rotation in the plane of a and b taking direction a to direction b."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    u = a
    w = b - (b @ u) * u
    w /= np.linalg.norm(w)
    cos, sin = float(a @ b), float(b @ w)
    rot = np.eye(d)
    plane = np.stack([u, w])  # [2, d]
    turn = np.array([[cos, sin], [-sin, cos]])
    rot += plane.T @ (turn - np.eye(2)) @ plane
    return rot


# -------------------------------------------------------------------------------- UMAP


def test_umap_layouts_shapes_and_quality(umap_run):
    run = umap_run.run
    snap = run.snapshot(umap_run.last)
    for epoch, lay in umap_run.layouts.items():
        assert lay.method == "umap"
        assert lay.points.shape == (len(snap), 2) and lay.centers.shape == (*snap.centers.shape[:2], 2)
        assert np.isfinite(lay.points).all() and np.isfinite(lay.centers).all()
        assert 0.0 <= lay.quality <= 1.0
        assert lay.previous == (None if epoch == run.epochs[0] else epoch - 1)
    assert umap_run.layouts[umap_run.last].quality > 0.2  # far better than a random map (about 0.03)


def test_new_epoch_of_a_live_run_is_the_only_one_computed(umap_run):
    last = umap_run.last
    assert sorted(umap_run.first) == list(range(last))
    assert umap_run.missing_after_restore == [last]
    assert sorted(umap_run.second) == [last]
    assert umap_run.second[last].previous == last - 1  # continues the chain
    proj = umap_run.proj
    assert {e: os.stat(proj.path / run_layout.epoch_file(e)).st_mtime_ns for e in umap_run.first} == umap_run.mtimes


def test_warm_started_frames_are_continuous(umap_run):
    run, layouts = umap_run.run, umap_run.layouts
    epochs = run.epochs
    chain = [procrustes_disparity(layouts[a].points, layouts[b].points) for a, b in zip(epochs, epochs[1:])]
    independent = {}
    for e in epochs:
        snap = run.snapshot(e)
        y = fitting.umap_2d(snap.embeddings, n_neighbors=15, min_dist=0.1, seed=e + 1, init="spectral", n_epochs=200)
        independent[e] = y[: len(snap)]
    free = [procrustes_disparity(independent[a], independent[b]) for a, b in zip(epochs, epochs[1:])]
    assert np.mean(chain) < np.mean(free)
    assert np.mean(chain) < 0.2


def test_umap_falls_back_to_pca_for_tiny_runs(tmp_path, caplog):
    rng = np.random.default_rng(3)
    run = FakeRun(tmp_path / "tiny", {0: rng.normal(size=(3, 5)), 1: rng.normal(size=(3, 5))})
    with caplog.at_level(logging.WARNING, logger="dmlviz.projection"):
        lay = Projector(run, "umap").get(1)
    assert "using PCA instead" in caplog.text
    assert lay.method == "pca" and lay.points.shape == (3, 2) and np.isfinite(lay.points).all()


def test_umap_reduces_n_neighbors_for_small_runs(tmp_path):
    rng = np.random.default_rng(4)
    frames = {0: rng.normal(size=(8, 6)), 1: rng.normal(size=(8, 6))}
    centers = {0: rng.normal(size=(2, 2, 6)), 1: rng.normal(size=(2, 2, 6))}
    run = FakeRun(tmp_path / "small", frames, centers)
    layouts = Projector(run, "umap", n_neighbors=15).compute(progress=False)
    for lay in layouts.values():
        assert lay.method == "umap" and lay.points.shape == (8, 2) and lay.centers.shape == (2, 2, 2)
        assert np.isfinite(lay.points).all() and np.isfinite(lay.centers).all()


# ----------------------------------------------------------------------------- cache


def test_damaged_cache_file_is_ignored_and_recomputed(pca_run, tmp_path, caplog):
    run = copy_run(pca_run.run, tmp_path / "run")
    proj = Projector(run, "pca")
    proj.compute(progress=False)
    victim = proj.path / run_layout.epoch_file(1)
    victim.write_bytes(b"not an npz file")
    fresh = Projector(run, "pca")
    with caplog.at_level(logging.WARNING, logger="dmlviz.projection"):
        assert fresh.cached(1) is None
        assert fresh.missing() == [1]
    assert "damaged" in caplog.text and str(victim) in caplog.text
    assert sorted(fresh.compute(progress=False)) == [1]
    lay = fresh.cached(1)
    assert lay is not None and lay.points.shape == (len(run.snapshot(1)), 2)
    assert Projector(run, "pca").missing() == []


# ------------------------------------------------------------------------ background


def test_background_job_computes_all_missing_epochs(pca_run, tmp_path):
    run = copy_run(pca_run.run, tmp_path / "run")
    proj = Projector(run, "pca")
    proj.get(0)  # one already cached
    seen, progress = [], []
    job = proj.start_background(on_layout=lambda e, lay: seen.append((e, lay.points.shape)), on_progress=lambda d, t: progress.append((d, t)))
    assert isinstance(job, BackgroundJob)
    assert job.join(timeout=30) and job.done and job.error is None
    expected = run.epochs[1:]
    assert [e for e, _ in seen] == expected and all(shape == (len(run.snapshot(0)), 2) for _, shape in seen)
    assert progress[0] == (0, len(expected)) and progress[-1] == (len(expected), len(expected))
    assert proj.missing() == [] and proj.job is None


def test_background_job_cancel_and_single_job_per_folder(pca_run, tmp_path):
    run = copy_run(pca_run.run, tmp_path / "run")
    proj = Projector(run, "pca")
    release = threading.Event()
    first_seen, second_seen = [], []

    def slow(epoch, lay):
        first_seen.append(epoch)
        release.wait(10)

    job = proj.start_background(on_layout=slow)
    other = Projector(run, "pca").start_background(on_layout=lambda e, lay: second_seen.append(e))
    assert other is job and proj.job is job
    release.set()
    assert job.join(timeout=30) and job.error is None
    # the added callback sees the layouts finished after it was added: the last ones
    assert first_seen == run.epochs and second_seen and second_seen == run.epochs[-len(second_seen) :]

    run2 = copy_run(pca_run.run, tmp_path / "run2")
    holder = []
    job2 = Projector(run2, "pca").start_background(on_layout=lambda e, lay: holder[0].cancel())
    holder.append(job2)
    job2.join(timeout=30)
    assert job2.done and job2.cancelled and job2.error is None
    assert len(job2.completed) <= 2 and Projector(run2, "pca").missing()


def test_background_job_stores_and_logs_errors(pca_run, tmp_path, caplog, monkeypatch):
    run = copy_run(pca_run.run, tmp_path / "run")
    proj = Projector(run, "pca")

    def broken(*args, **kwargs):
        raise RuntimeError("layout exploded")

    monkeypatch.setattr(fitting, "pca_2d", broken)
    with caplog.at_level(logging.ERROR, logger="dmlviz.projection"):
        job = proj.start_background()
        assert job.join(timeout=30)
    assert isinstance(job.error, RuntimeError) and "layout exploded" in str(job.error)
    assert "layout exploded" in caplog.text
    assert proj.job is None and "failed" in repr(job)


# ---------------------------------------------------------------------------- arguments


def test_bad_arguments(pca_run):
    run = pca_run.run
    with pytest.raises(ValueError, match=r"'pca', 'umap'"):
        Projector(run, "tsne")
    with pytest.raises(ValueError, match="n_neighbors"):
        Projector(run, "umap", n_neighbors=1)
    with pytest.raises(TypeError, match="n_neighbors"):
        Projector(run, "umap", n_neighbors=2.5)
    with pytest.raises(ValueError, match="min_dist"):
        Projector(run, "umap", min_dist=-0.1)
    proj = Projector(run, "pca")
    with pytest.raises(KeyError, match=r"recorded epochs: \[0, 1, 2, 3\]") as info:
        proj.get(99)
    assert isinstance(info.value, EpochNotRecordedError) and isinstance(info.value, ValueError)
    with pytest.raises(EpochNotRecordedError, match="99"):
        proj.compute(epochs=[1, 99])
    with pytest.raises(EpochNotRecordedError):
        proj.start_background(epochs=[99])
    with pytest.raises(TypeError, match="epoch"):
        proj.get("1")
    with pytest.raises(TypeError, match="epoch"):
        proj.cached(-1)
    with pytest.raises(FileNotFoundError):
        Projector(run.path / "nowhere", "pca")
    assert Projector(str(run.path), "pca").path == proj.path  # a path works as well as a Run


def test_import_is_cheap_and_does_not_import_umap():
    code = "import sys, dmlviz.projection; assert 'umap' not in sys.modules and 'numba' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ------------------------------------------------- centers drawn where their samples are


def _known_owners(seed: int = 0):
    """3 classes × 2 real modes in 12-d, K=4: two centers sit on the modes, two point nowhere (own nothing)."""
    rng = np.random.default_rng(seed)
    classes, k, d, per_mode = 3, 4, 12, 40
    modes = rng.normal(size=(classes, 2, d))
    modes /= np.linalg.norm(modes, axis=-1, keepdims=True)
    x, labels = [], []
    for c in range(classes):
        for m in range(2):
            x.append(modes[c, m] + 0.15 * rng.normal(size=(per_mode, d)))
            labels += [c] * per_mode
    x = np.concatenate(x).astype(np.float32)
    labels = np.asarray(labels)
    centers = np.zeros((classes, k, d), np.float32)
    centers[:, :2] = modes
    centers[:, 2:] = -modes  # opposite the class: never the most similar center of any sample
    return x, labels, centers


def test_agreement_counts_nearest_drawn_center_of_the_own_class() -> None:
    points = np.array([[0.0, 0], [1, 0], [10, 0], [11, 0], [0, 0.5]])
    labels = np.array([0, 0, 0, 0, 1])
    assignments = np.array([0, 0, 1, 0, 0])  # sample 3 belongs to center 0 but sits beside center 1
    center_xy = np.array([[[0.5, 0], [10.5, 0]], [[0, 0], [0, 0]]])
    owning = np.array([[True, True], [True, False]])
    # class 1 has one owning center: nothing to misread, not counted
    assert ownership_agreement(points, labels, assignments, center_xy, [0, 1], owning) == pytest.approx(3 / 4)
    assert np.isnan(ownership_agreement(points, labels, assignments, center_xy, [0, 1], np.array([[True, False], [True, False]])))
    with pytest.raises(ValueError, match="center_xy must be"):
        ownership_agreement(points, labels, assignments, center_xy[:, :, :1], [0, 1], owning)


def test_centers_are_drawn_among_the_samples_they_own_and_empty_ones_are_marked() -> None:
    x, labels, centers = _known_owners()
    assignments = assign_to_centers(x, labels, centers, np.arange(3))
    assert set(np.unique(assignments)) == {0, 1}
    points = np.random.default_rng(1).normal(size=(len(x), 2))
    xy, owning = place_centers(points, labels, assignments, x, centers, np.arange(3))
    assert xy.shape == (3, 4, 2) and owning.tolist() == [[True, True, False, False]] * 3
    for c in range(3):
        for j in range(2):
            # with a perfect LVQ start (the means), a center stays at the mean of what it owns unless moving helps
            owned = points[(labels == c) & (assignments == j)]
            assert np.linalg.norm(xy[c, j] - owned.mean(0)) < 0.5 * np.ptp(points)
        for j in (2, 3):  # hollow centers sit on their most similar sample of the class
            members = np.flatnonzero(labels == c)
            best = members[np.argmax((x[members] / np.linalg.norm(x[members], axis=1, keepdims=True)) @ centers[c, j])]
            np.testing.assert_allclose(xy[c, j], points[best])


def test_placement_is_never_worse_than_plain_means(monkeypatch) -> None:
    rng = np.random.default_rng(5)
    points = rng.normal(size=(300, 2))
    labels = np.repeat([0, 1, 2], 100)
    assignments = rng.integers(0, 3, size=300)  # ownership unrelated to position: the worst case
    x = rng.normal(size=(300, 4)).astype(np.float32)
    centers = rng.normal(size=(3, 3, 4)).astype(np.float32)
    tuned = ownership_agreement(points, labels, assignments, *place_centers(points, labels, assignments, x, centers, np.arange(3))[:1], np.arange(3), np.ones((3, 3), bool))
    monkeypatch.setattr(placement, "LVQ_ROUNDS", 0)
    plain = ownership_agreement(points, labels, assignments, *place_centers(points, labels, assignments, x, centers, np.arange(3))[:1], np.arange(3), np.ones((3, 3), bool))
    assert tuned >= plain


@pytest.mark.parametrize("method", ["pca", "umap"])
def test_layouts_read_ownership_right_on_known_owners(tmp_path, method) -> None:
    """A regression guard: samples of well-separated owners must be read right from the map (≥ 0.95)."""
    x, labels, centers = _known_owners()
    run = FakeRun(tmp_path / method, {0: x}, {0: centers})
    run.snapshot = _with_labels(run.snapshot, labels)
    lay = Projector(run, method).get(0)
    assert lay.owning.tolist() == [[True, True, False, False]] * 3
    assert lay.ownership >= 0.95
    again = Projector(run, method).cached(0)  # stored in the cache with the layout
    assert again.ownership == pytest.approx(lay.ownership) and again.owning.tolist() == lay.owning.tolist()
    assert lay.ownership_chance == pytest.approx(1 / 2) and again.ownership_chance == pytest.approx(1 / 2)  # two owners per class
    assert lay.quality_chance == pytest.approx(10 / (len(x) - 1))
    path = Projector(run, method)._file(0)  # a cache file written before chance levels were stored: unknown, not wrong
    with np.load(path, allow_pickle=False) as data:
        older = {name: data[name] for name in data.files if name != "ownership_chance"}
    np.savez(path, **older)
    assert np.isnan(Projector(run, method).cached(0).ownership_chance)


def _with_labels(snapshot, labels):
    def patched(epoch):
        snap = snapshot(epoch)
        snap.labels = labels
        snap.center_classes = np.arange(len(snap.centers))
        snap.assignments = assign_to_centers(snap.embeddings, labels, snap.centers, snap.center_classes)
        return snap

    return patched


def test_merged_centers_are_placed_as_one_and_read_as_one() -> None:
    rng = np.random.default_rng(2)
    points = np.concatenate([rng.normal(0, 1, (60, 2)), rng.normal(10, 1, (60, 2))])
    labels = np.zeros(120, dtype=int)
    # centers 0 and 1 are merged (closer than eps) and split the first cluster at random; center 2 owns the second
    assignments = np.concatenate([rng.integers(0, 2, 60), np.full(60, 2)])
    centers = np.array([[[1.0, 0, 0], [1.0, 0.01, 0], [0, 1.0, 0]]], dtype=np.float32)
    x = rng.normal(size=(120, 3)).astype(np.float32)
    groups = center_groups(centers, eps=0.05)
    assert groups.tolist() == [[0, 0, 1]]
    xy, owning = place_centers(points, labels, assignments, x, centers, [0], groups)
    np.testing.assert_allclose(xy[0, 0], xy[0, 1])  # drawn on top of each other, at the cluster they share
    np.testing.assert_allclose(xy[0, 0], points[:60].mean(0), atol=1e-5)
    assert ownership_agreement(points, labels, assignments, xy, [0], owning, groups) == 1.0
    alone_xy, alone_owning = place_centers(points, labels, assignments, x, centers, [0])
    # as separate centers they cannot be read: about half of the shared cluster reads the wrong one
    assert ownership_agreement(points, labels, assignments, alone_xy, [0], alone_owning) < 0.9


def test_drawn_centers_stay_inside_the_region_of_their_own_samples() -> None:
    # ownership unrelated to position: LVQ pulls centers about, but never out of their samples' bounding box
    rng = np.random.default_rng(7)
    points = rng.normal(size=(200, 2))
    labels = np.zeros(200, dtype=int)
    assignments = rng.integers(0, 4, size=200)
    centers = rng.normal(size=(1, 4, 5)).astype(np.float32)
    xy, _ = place_centers(points, labels, assignments, rng.normal(size=(200, 5)), centers, [0])
    for j in range(4):
        own = points[assignments == j]
        assert np.all(xy[0, j] >= own.min(0) - 1e-9) and np.all(xy[0, j] <= own.max(0) + 1e-9)


def test_knn_preservation_on_a_sample_estimates_the_exact_figure():
    from dmlviz.projection import knn_preservation

    rng = np.random.default_rng(0)
    z = rng.normal(size=(3000, 3)).astype(np.float32)
    high = np.hstack([z, 0.05 * rng.normal(size=(3000, 13)).astype(np.float32)])
    low = z[:, :2] / np.linalg.norm(z, axis=1, keepdims=True)  # a partly faithful map of the directions
    exact = knn_preservation(high, low, k=10)
    estimate = knn_preservation(high, low, k=10, sample=1000, seed=3)
    assert 0.05 < exact < 0.95 and abs(estimate - exact) < 3 * 0.5 / np.sqrt(1000)
    assert knn_preservation(high, low, k=10, sample=5000) == exact  # fewer points than the sample: exact
    dup = np.vstack([high[:50], high[:50]])  # duplicates: each point's twin is a neighbour, itself is not
    assert knn_preservation(dup, np.vstack([low[:50], low[:50]]), k=1, sample=40) == 1.0

"""Tests for choose_probe: whole classes when classes are many, every sample when the dataset fits."""

import numpy as np
import pytest

import dmlviz
from dmlviz.training import choose_probe


@pytest.mark.parametrize("how", ["classes", "samples"])
def test_many_classes_give_whole_classes_and_both_splits(how):
    labels = np.repeat(np.arange(300), 20)
    split = (labels >= 150).astype(int) if how == "classes" else np.tile(np.r_[np.zeros(10, int), np.ones(10, int)], 300)
    chosen = choose_probe(labels, 1000, seed=0, split=split)
    assert len(chosen) == 1000 and len(np.unique(chosen)) == 1000
    per_class = np.bincount(labels[chosen])
    per_class = per_class[per_class > 0]
    assert (per_class >= 3).mean() >= 0.9 and len(per_class) < 300
    assert np.bincount(split[chosen]).tolist() == [500, 500]
    assert np.array_equal(chosen, choose_probe(labels, 1000, seed=0, split=split))
    assert not np.array_equal(chosen, choose_probe(labels, 1000, seed=1, split=split))


def test_split_share_is_kept_with_unequal_splits():
    labels = np.repeat(np.arange(400), 10)
    split = (labels >= 300).astype(int)  # 75 % train
    chosen = choose_probe(labels, 400, seed=3, split=split)
    assert np.bincount(split[chosen]).tolist() == [300, 100]
    assert (np.bincount(labels[chosen])[np.unique(labels[chosen])] >= 8).mean() >= 0.9


def test_small_datasets_keep_every_sample():
    labels = np.repeat(np.arange(300), 3)
    assert np.array_equal(choose_probe(labels, 900, seed=0, split=labels % 2), np.arange(900))
    assert np.array_equal(choose_probe(labels, 5000, seed=0), np.arange(900))


def test_probe_size_is_capped_at_100k(tmp_path):
    with pytest.raises(ValueError, match="probe_size must be an integer from 2 to 100,000, got 100,001"):
        dmlviz.train(epochs=1, probe_size=100_001, out=tmp_path / "r", progress=False)


def test_large_centers_are_stored_for_the_probe_classes_in_float16(tmp_path, monkeypatch):
    import dmlviz
    from dmlviz.data import synthetic
    from dmlviz import recording

    monkeypatch.setattr(recording, "CENTERS_COMPACT_ABOVE", 10)  # instead of SOP's size
    data = synthetic(classes=12, modes_per_class=1, dim=8, samples_per_mode=20, seed=0)
    run = dmlviz.train(data, loss="softtriple", centers_per_class=3, embedding_dim=4, epochs=1, batch_size=32, split="samples",
                       probe_size=60, out=tmp_path / "r", progress=False)
    snap = run.snapshot(1)
    probe_classes = np.unique(run.probe["labels"])
    assert len(probe_classes) < 12  # whole classes: the probe does not hold them all
    np.testing.assert_array_equal(snap.center_classes, probe_classes)
    assert snap.centers.dtype == np.float32 and snap.centers.shape == (len(probe_classes), 3, 4)
    assert snap.centers_stored == "probe classes, float16" and snap.effective_k.shape == (len(probe_classes),)
    with np.load(run.path / "epoch_0001.npz", allow_pickle=False) as raw:
        assert raw["centers"].dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(snap.centers, axis=2), 1.0, atol=2e-3)
    assert (snap.assignments >= 0).all()  # every probe sample still has its class's centers


@pytest.mark.slow
def test_a_probe_of_100k_samples_is_recorded_laid_out_and_drawn_whole(tmp_path):
    import dmlviz
    from dmlviz.data import synthetic
    from dmlviz.projection import Projector
    from dmlviz.widgets import ExplorerState, MapView

    data = synthetic(classes=1000, modes_per_class=2, dim=8, samples_per_mode=50, seed=0)
    run = dmlviz.train(data, loss="softtriple", centers_per_class=2, embedding_dim=8, epochs=1, batch_size=1024, split="samples",
                       test_fraction=0.1, probe_size=100_000, out=tmp_path / "r100k", progress=False)
    assert len(run.probe["ids"]) == 100_000 and run.config["probe_size"] == 100_000
    snap = run.snapshot(1)
    assert snap.embeddings.shape == (100_000, 8) and snap.centers.shape == (1000, 2, 8)
    layouts = Projector(run, "pca").compute()
    assert layouts[1].points.shape == (100_000, 2) and 0.0 <= layouts[1].quality <= 1.0
    view = MapView(ExplorerState(run))
    assert view.large and view.count.value == "100,000 points"  # drawn by jupyter-scatter, every point
    assert len(view.canvas.widget.points) == 100_000 + 2000 and len(view.figure.data[0].x) == 0
    assert "estimated on 5,000 random points of the 100,000" in view.status.value

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

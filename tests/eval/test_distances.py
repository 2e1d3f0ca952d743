"""Pair-distance distributions: overlap, separation AUC, the embeddings as the loss measured them."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dmlviz.eval.distances import histogram_counts, histogram_overlap, measured, pair_distances, sample_rows, separation_auc, shared_bins


@pytest.mark.parametrize("n_pos, n_neg", [(500, 900), (900, 500)])  # fewer positives than negatives, and more
def test_separation_auc_equals_the_roc_auc_of_closeness(n_pos, n_neg):
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(0.8, 0.2, n_pos), rng.normal(1.2, 0.3, n_neg)
    pos[:20] = neg[:20]  # ties count half
    pos[20:30] = pos[0]  # and ties within one side
    expected = roc_auc_score(np.r_[np.ones(n_pos), np.zeros(n_neg)], -np.r_[pos, neg])
    assert separation_auc(pos, neg) == pytest.approx(expected, abs=1e-12)
    assert separation_auc(pos, pos) == pytest.approx(0.5)
    assert np.isnan(separation_auc(pos, np.array([])))


@pytest.mark.parametrize("n", [0, 1, 7, 5000])
def test_histogram_counts_are_numpys_counts_also_on_the_edges(n):
    rng = np.random.default_rng(n)
    values = rng.gamma(2.0, 0.3, n)
    bins = shared_bins(values, count=60)
    values = np.r_[values, bins, bins[0] - 1.0, bins[-1] + 1.0, np.nextafter(bins[3], -np.inf), np.nextafter(bins[3], np.inf)]
    assert np.array_equal(histogram_counts(values, bins), np.histogram(values, bins=bins)[0])
    uneven = np.array([0.0, 0.1, 0.5, 2.0])  # not equal widths: numpy's general path
    assert np.array_equal(histogram_counts(values, uneven), np.histogram(values, bins=uneven)[0])
    assert histogram_counts(values, bins).sum() == len(values) - 2  # the two outside the edges are not counted


def test_overlap_is_one_for_the_same_distribution_and_zero_apart():
    values = np.linspace(0, 1, 100)
    bins = shared_bins(values, values + 5)
    assert histogram_overlap(values, values, bins) == pytest.approx(1.0)
    assert histogram_overlap(values, values + 5, bins) == 0.0


def test_pair_distances_split_same_and_other_class_pairs_and_standardise():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    labels = np.array([0, 0, 1])
    pairs = pair_distances(x, labels)
    np.testing.assert_allclose(pairs.positive, [5.0])
    np.testing.assert_allclose(np.sort(pairs.negative), [1.0, np.sqrt(9 + 9)])
    standard = pair_distances(x, labels, running_mean=1.0, running_std=2.0)
    assert standard.units == "mdr" and standard.positive[0] == pytest.approx(2.0)


def test_measured_embeddings_follow_the_runs_embedding_scale():
    rng = np.random.default_rng(1)
    raw = rng.normal(size=(30, 4)) * 5
    norms = np.linalg.norm(raw, axis=1)
    unit = raw / norms[:, None]
    np.testing.assert_allclose(measured(unit, norms, "unit"), unit)
    scaled = measured(unit, norms, "mean_distance")
    d = np.linalg.norm(scaled[:, None] - scaled[None], axis=2)
    assert d[~np.eye(30, dtype=bool)].mean() == pytest.approx(1.0)
    np.testing.assert_allclose(measured(unit, norms, "raw"), raw)
    small = np.r_[np.full(10, 0.5), np.full(20, 3.0)]  # CCP's unit ball: only norms above 1 are divided
    np.testing.assert_allclose(measured(unit, small, "ball"), unit * np.minimum(small, 1)[:, None])
    with pytest.raises(ValueError, match="embedding_scale must be 'unit', 'mean_distance', 'raw' or 'ball', got 'cosine'"):
        measured(unit, norms, "cosine")


def test_sample_rows_is_a_fixed_subset():
    labels = np.arange(5000) % 7
    a, b = sample_rows(labels, max_points=100), sample_rows(labels, max_points=100)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 100 and np.all(np.diff(a) > 0)
    assert len(sample_rows(labels, labels == 3, max_points=10_000)) == (labels == 3).sum()

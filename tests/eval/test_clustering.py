"""Tests for dmlviz.eval.clustering.nmi."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmlviz.eval import nmi


def separated(n_classes: int = 6, per_class: int = 30, dim: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = np.eye(dim)[:n_classes] * 10.0
    y = np.repeat(np.arange(n_classes), per_class)
    return means[y] + 0.01 * rng.normal(size=(len(y), dim)), y


def test_perfectly_separated_clusters_give_one() -> None:
    x, y = separated()
    assert nmi(x, y) == pytest.approx(1.0)
    # labels need not be 0..C-1, and relabelling does not matter
    assert nmi(x, y * 7 + 3) == pytest.approx(1.0)


def test_random_labels_give_low_nmi() -> None:
    x, _ = separated()
    rng = np.random.default_rng(1)
    assert nmi(x, rng.integers(0, 6, size=len(x))) < 0.3


def test_uses_cosine_geometry() -> None:
    # same directions, wildly different norms: after L2 normalisation the classes separate
    x, y = separated()
    scale = np.random.default_rng(2).uniform(0.1, 100.0, size=(len(x), 1))
    assert nmi(x * scale, y) == pytest.approx(1.0)


def test_deterministic_and_accepts_tensors() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 5))
    y = rng.integers(0, 4, size=120)
    assert nmi(x, y, seed=5) == nmi(torch.from_numpy(x), torch.from_numpy(y), seed=5)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="embeddings must be 2-D"):
        nmi(np.zeros(4), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="labels must be 1-D"):
        nmi(np.zeros((4, 2)), [0, 1, 0])
    with pytest.raises(ValueError, match="embeddings contain NaN or inf"):
        nmi(np.array([[np.nan, 0.0], [1.0, 0.0]]), [0, 1])


def _separated(classes: int, per_class: int, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, dim))
    y = np.repeat(np.arange(classes), per_class)
    return centers[y] + 0.05 * rng.normal(size=(len(y), dim)), y


def test_minibatch_is_close_to_kmeans_on_separated_data() -> None:
    # tolerance 0.05: MiniBatchKMeans (k-means++ init, one start) may merge a few clusters
    x, y = _separated(50, 20)
    exact = nmi(x, y, method="kmeans")
    assert exact > 0.95
    assert abs(nmi(x, y, method="minibatch") - exact) <= 0.05


def test_minibatch_subsamples_whole_classes(monkeypatch) -> None:
    from dmlviz.eval import clustering

    monkeypatch.setattr(clustering, "NMI_MAX_CLASSES", 20)
    x, y = _separated(60, 10)
    assert nmi(x, y, method="minibatch", seed=1) > 0.9
    assert nmi(x, y, method="minibatch", seed=1) == nmi(x, y, method="minibatch", seed=1)


def test_auto_is_exact_below_the_threshold() -> None:
    from dmlviz.eval.clustering import NMI_EXACT_MAX, resolve_nmi_method

    x, y = _separated(6, 30)
    assert nmi(x, y) == nmi(x, y, method="kmeans")
    assert resolve_nmi_method("auto", 5924, 100) == "kmeans"  # CUB-200's test split stays exact
    assert resolve_nmi_method("auto", NMI_EXACT_MAX + 1, 1) == "minibatch"
    assert resolve_nmi_method("kmeans", 60502, 11316) == "kmeans"
    with pytest.raises(ValueError, match="method must be one of 'auto', 'kmeans', 'minibatch', got 'faiss'"):
        nmi(x, y, method="faiss")


def test_nmi_chance_is_what_clusters_of_noise_score_and_rises_with_classes_per_sample() -> None:
    from dmlviz.eval import nmi_chance

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(50), 10)  # 50 classes of 10: a random clustering already shares much information
    noise = rng.normal(size=(len(y), 8))  # an embedding that knows nothing of the labels
    assert nmi(noise, y) == pytest.approx(nmi_chance(y), abs=0.05)  # 0.44 and 0.44
    assert nmi_chance(y) > 0.35
    assert nmi_chance(np.repeat(np.arange(5), 100)) < 0.02  # few large classes: near 0
    x, labels = separated()
    assert nmi(x, labels) > nmi_chance(labels) + 0.5  # a real clustering is far above it
    assert nmi_chance(np.zeros(4, int)) == 1.0  # one class, as nmi() answers
    with pytest.raises(ValueError, match="labels must be 1-D"):
        nmi_chance(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="repeats must be a positive integer"):
        nmi_chance(y, repeats=0)


def test_nmi_chance_uses_the_rows_minibatch_clusters() -> None:
    from sklearn.metrics import normalized_mutual_info_score

    from dmlviz.eval import nmi_chance
    from dmlviz.eval.clustering import NMI_MAX_CLASSES, _clustered_rows

    y = np.repeat(np.arange(NMI_MAX_CLASSES + 200), 3)
    rows = _clustered_rows(y, "minibatch", 0)
    assert len(np.unique(y[rows])) == NMI_MAX_CLASSES and _clustered_rows(y, "kmeans", 0).all()
    shuffles = np.random.default_rng([0, 12])
    expected = np.mean([normalized_mutual_info_score(y[rows], shuffles.permutation(y[rows])) for _ in range(3)])
    assert nmi_chance(y, method="minibatch") == pytest.approx(expected)

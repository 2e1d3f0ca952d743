"""Tests for dmlviz.eval.retrieval: k-NN, Recall@K, R-precision, MAP@R."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN

from dmlviz.eval import knn, retrieval_metrics

PML_KEYS = {"precision@1": "precision_at_1", "r_precision": "r_precision", "map@r": "mean_average_precision_at_r"}


def pml_metrics(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    calc = AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
        k="max_bin_count",
        knn_func=CustomKNN(CosineSimilarity()),
        device=torch.device("cpu"),
    )
    return calc.get_accuracy(x, y)


def clustered(sizes: list[int], dim: int = 16, spread: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(sizes)), sizes)
    means = rng.normal(size=(len(sizes), dim))
    x = (means[y] + spread * rng.normal(size=(len(y), dim))).astype(np.float32)
    perm = rng.permutation(len(y))
    return x[perm], y[perm]


def reference_metrics(x: np.ndarray, y: np.ndarray, ks: tuple[int, ...]) -> dict[str, float]:
    """Slow per-query implementation straight from METHODS.md (lone queries left out)."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = xn.astype(np.float64) @ xn.T.astype(np.float64)
    out = {f"recall@{k}": [] for k in ks} | {"precision@1": [], "r_precision": [], "map@r": []}
    for i in range(len(y)):
        r = int((y == y[i]).sum()) - 1
        if r == 0:
            continue
        s = sims[i].copy()
        s[i] = -np.inf
        order = np.argsort(-s, kind="stable")[: len(y) - 1]
        match = y[order] == y[i]
        for k in ks:
            out[f"recall@{k}"].append(float(match[:k].any()))
        out["precision@1"].append(float(match[0]))
        out["r_precision"].append(match[:r].sum() / r)
        prec = np.cumsum(match[:r]) / np.arange(1, r + 1)
        out["map@r"].append(float((prec * match[:r]).sum() / r))
    return {key: float(np.mean(v)) for key, v in out.items()}


# ------------------------------------------------------------------ agreement with PML


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_pml_uneven_classes(seed: int) -> None:
    sizes = [1, 1, 1, 2, 2, 2, 3, 5, 7, 11, 17, 25, 40]
    x, y = clustered(sizes, spread=1.5, seed=seed)
    ours = retrieval_metrics(x, y)
    theirs = pml_metrics(x, y)
    for key, pml_key in PML_KEYS.items():
        assert ours[key] == pytest.approx(theirs[pml_key], abs=1e-6), key
    assert ours["precision@1"] == ours["recall@1"]


def test_agrees_with_pml_exact_duplicates() -> None:
    x, y = clustered([1, 2, 3, 6, 10, 20], spread=1.0, seed=3)
    # duplicate a third of the rows exactly (same class), some of them twice
    rng = np.random.default_rng(4)
    dup = rng.choice(len(y), size=len(y) // 3, replace=False)
    x = np.concatenate([x, x[dup], x[dup[:5]]])
    y = np.concatenate([y, y[dup], y[dup[:5]]])
    ours = retrieval_metrics(x, y)
    theirs = pml_metrics(x, y)
    for key, pml_key in PML_KEYS.items():
        assert ours[key] == pytest.approx(theirs[pml_key], abs=1e-6), key


def test_agrees_with_reference_implementation() -> None:
    x, y = clustered([1, 2, 3, 4, 9, 15, 30], spread=2.0, seed=5)
    ks = (1, 3, 5, 10, 50)
    ours = retrieval_metrics(x, y, ks=ks)
    ref = reference_metrics(x, y, ks)
    assert set(ours) == set(ref) | {"ndcg@50"}  # nDCG: tested against scikit-learn below
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key


# -------------------------------------------------------------------- hand-computed


def circle(degrees: list[float]) -> np.ndarray:
    rad = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    return np.stack([np.cos(rad), np.sin(rad)], axis=1)


def test_hand_computed_tiny_case() -> None:
    # p0 0 deg a | p1 10 a | p2 25 b | p3 45 a | p4 100 b
    # neighbours (labels): p0 a,b,a,b  p1 a,b,a,b  p2 a,a,a,b  p3 b,a,a,b  p4 a,b,a,a
    # R: a -> 2, b -> 1
    x = circle([0, 10, 25, 45, 100])
    y = np.array([0, 0, 1, 0, 1])
    m = retrieval_metrics(x, y, ks=(1, 2, 4))
    assert m["recall@1"] == pytest.approx(2 / 5)
    assert m["recall@2"] == pytest.approx(4 / 5)
    assert m["recall@4"] == pytest.approx(1.0)
    assert m["precision@1"] == pytest.approx(2 / 5)
    assert m["r_precision"] == pytest.approx((0.5 + 0.5 + 0 + 0.5 + 0) / 5)
    assert m["map@r"] == pytest.approx((0.5 + 0.5 + 0 + 0.25 + 0) / 5)


def test_singleton_class_is_left_out() -> None:
    x = circle([0, 10, 25, 45, 100, 180])  # class 2 at 180 deg: lone, last for every other query
    y = np.array([0, 0, 1, 0, 1, 2])
    with_lone = retrieval_metrics(x, y, ks=(1, 2, 4))
    without = retrieval_metrics(x[:5], y[:5], ks=(1, 2, 4))
    assert with_lone == pytest.approx(without)


def test_map_at_r_hand_case() -> None:
    # angles 0, 5, 12, 20, 30 deg; class 1 (12 deg) is lone and left out; class 0 has R = 3
    # only the first R = 3 neighbours count:
    # q0: 1, 2, 3 -> m x m -> AP (1 + 2/3)/3, RP 2/3      q1 (5): 0, 2, 3 -> m x m, same
    # q3 (20): 2, 4, 1 -> x m m -> AP (1/2 + 2/3)/3, RP 2/3   q4 (30): 3, 2, 1 -> m x m
    x = circle([0, 5, 12, 20, 30])
    y = np.array([0, 0, 1, 0, 0])
    _, idx = knn(x, x, 4, exclude_self=True)
    assert idx[3].tolist() == [2, 4, 1, 0]
    m = retrieval_metrics(x, y, ks=(1, 2))
    good, bad = (1 + 2 / 3) / 3, (1 / 2 + 2 / 3) / 3
    assert m["map@r"] == pytest.approx((3 * good + bad) / 4)
    assert m["r_precision"] == pytest.approx(2 / 3)
    assert m["recall@1"] == pytest.approx(3 / 4)
    assert m["recall@2"] == pytest.approx(1.0)


def test_all_singletons_give_nan() -> None:
    x = circle([0, 90, 180])
    m = retrieval_metrics(x, [0, 1, 2], ks=(1,))
    assert all(math.isnan(v) for v in m.values())


def test_duplicates_count_as_neighbours() -> None:
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    sims, idx = knn(x, x, 1, exclude_self=True)
    assert idx[:, 0].tolist() == [1, 0, 3, 2]
    assert torch.allclose(sims, torch.ones(4, 1))
    m = retrieval_metrics(x, [0, 0, 1, 1], ks=(1,))
    assert m["recall@1"] == 1.0 and m["map@r"] == 1.0


def test_k_above_n_is_capped() -> None:
    x = circle([0, 10, 25, 45, 100])
    m = retrieval_metrics(x, [0, 0, 1, 0, 1], ks=(1, 100))
    assert m["recall@100"] == pytest.approx(1.0)


# ------------------------------------------------------------------------ k-NN, chunks


def test_knn_matches_brute_force() -> None:
    rng = np.random.default_rng(6)
    q = rng.normal(size=(37, 8)).astype(np.float32)
    r = rng.normal(size=(53, 8)).astype(np.float32)
    sims, idx = knn(q, r, 5, chunk_size=4)
    assert sims.dtype == torch.float32 and idx.dtype == torch.int64
    assert sims.shape == idx.shape == (37, 5)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    rn = r / np.linalg.norm(r, axis=1, keepdims=True)
    full = qn.astype(np.float64) @ rn.T.astype(np.float64)
    expected = np.argsort(-full, axis=1)[:, :5]
    assert np.array_equal(idx.numpy(), expected)
    assert np.allclose(sims.numpy(), np.take_along_axis(full, expected, 1), atol=1e-6)
    assert bool((sims[:, :-1] >= sims[:, 1:]).all())


def test_knn_exclude_self() -> None:
    rng = np.random.default_rng(7)
    x = torch.from_numpy(rng.normal(size=(30, 4)))
    _, idx = knn(x, x, 29, exclude_self=True, chunk_size=7)
    own = torch.arange(30)[:, None]
    assert not bool((idx == own).any())
    assert all(len(set(row)) == 29 for row in idx.tolist())


def test_chunking_gives_identical_results() -> None:
    x, y = clustered([1, 2, 3, 8, 13, 21, 34], spread=1.5, seed=8)
    full = retrieval_metrics(x, y, chunk_size=len(y))
    for chunk in (1, 7, 64, None):
        assert retrieval_metrics(x, y, chunk_size=chunk) == full
    s_full, i_full = knn(x, x, 10, exclude_self=True, chunk_size=len(y))
    s_chunk, i_chunk = knn(x, x, 10, exclude_self=True, chunk_size=5)
    assert torch.equal(i_full, i_chunk)
    assert torch.allclose(s_full, s_chunk, atol=1e-6)


def test_accepts_tensors_and_device() -> None:
    x, y = clustered([3, 4, 5], seed=9)
    a = retrieval_metrics(x, y)
    b = retrieval_metrics(torch.from_numpy(x).double(), torch.from_numpy(y), device="cpu")
    assert a == pytest.approx(b)
    assert list(a) == ["recall@1", "recall@2", "recall@4", "recall@8", "precision@1", "r_precision", "map@r", "ndcg@8"]


# -------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("embeddings", "labels", "kwargs", "match"),
    [
        (np.zeros(5), [0] * 5, {}, "embeddings must be 2-D"),
        (np.zeros((1, 3)), [0], {}, "embeddings must have at least 2 row"),
        (np.array([[0.0, np.nan], [1.0, 0.0]]), [0, 0], {}, "embeddings contain NaN or inf"),
        (np.array([[0.0, np.inf], [1.0, 0.0]]), [0, 0], {}, "embeddings contain NaN or inf"),
        (np.array([["a", "b"], ["c", "d"]]), [0, 0], {}, "embeddings must hold numbers"),
        (np.ones((3, 2)), [0, 0], {}, r"labels must have one entry per embedding row \(3\), got 2"),
        (np.ones((3, 2)), [[0], [0], [0]], {}, "labels must be 1-D"),
        (np.ones((3, 2)), [0, 0, 0], {"ks": (1, 0)}, "ks must contain positive integers only, got 0"),
        (np.ones((3, 2)), [0, 0, 0], {"ks": (-2,)}, "got -2"),
        (np.ones((3, 2)), [0, 0, 0], {"ks": (1.5,)}, "got 1.5"),
        (np.ones((3, 2)), [0, 0, 0], {"ks": (True,)}, "got True"),
        (np.ones((3, 2)), [0, 0, 0], {"ks": ()}, "ks must be a non-empty"),
        (np.ones((3, 2)), [0, 0, 0], {"chunk_size": 0}, "chunk_size must be a positive integer, got 0"),
    ],
)
def test_bad_inputs(embeddings, labels, kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises((ValueError, TypeError), match=match):
        retrieval_metrics(embeddings, labels, **kwargs)


def test_knn_bad_inputs() -> None:
    x = np.ones((4, 3))
    with pytest.raises(ValueError, match="k must be at most 3"):
        knn(x, x, 4, exclude_self=True)
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        knn(x, x, 0)
    with pytest.raises(ValueError, match="same dimension"):
        knn(x, np.ones((4, 2)), 1)
    with pytest.raises(ValueError, match="exclude_self=True needs"):
        knn(x, np.ones((5, 3)), 1, exclude_self=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    x, y = clustered([1, 2, 3, 8, 13, 21, 34], spread=1.5, seed=10)
    cpu = retrieval_metrics(x, y)
    gpu = retrieval_metrics(torch.from_numpy(x).cuda(), y)
    assert gpu == pytest.approx(cpu, abs=1e-6)
    sims, idx = knn(x, x, 5, exclude_self=True, device="cuda")
    assert sims.device.type == "cuda" and idx.device.type == "cuda"


def test_ndcg_equals_scikit_learns_with_binary_relevance():
    import numpy as np
    from sklearn.metrics import ndcg_score

    from dmlviz.eval import retrieval_metrics

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 16)).astype(np.float32)
    y = rng.integers(0, 6, size=120)
    y[y == 5] = 4  # classes of different sizes
    ours = retrieval_metrics(x, y, ks=(1, 4))["ndcg@4"]
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = u @ u.T
    np.fill_diagonal(sims, -10.0)  # the query itself is never retrieved
    relevant = (y[:, None] == y[None, :]).astype(float)
    np.fill_diagonal(relevant, 0.0)
    assert ours == pytest.approx(ndcg_score(relevant, sims, k=4), abs=1e-9)

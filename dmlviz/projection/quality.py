"""How faithful a 2-D layout is: k-NN preservation (cheap, torch), map-ownership agreement, their chance levels, and Procrustes disparity (scipy)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

def _as_matrix(x: Any, name: str, columns: int | None = None) -> torch.Tensor:
    """Validate a finite 2-D array-like and return it as a float32 CPU tensor."""
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(np.asarray(x)))
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(t.shape)}")
    if columns is not None and t.shape[1] != columns:
        raise ValueError(f"{name} must have {columns} columns, got shape {tuple(t.shape)}")
    t = t.to(torch.float32)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return t


#: k-NN preservation of more points than this is estimated on this many random points (each against all
#: points): the standard error of the mean of 5,000 per-point shares is at most 0.007
QUALITY_SAMPLE = 5000


def _drop_self(idx: np.ndarray, rows: np.ndarray, k: int) -> torch.Tensor:
    """From [q, k+1] neighbour indices of ``rows``, drop each row itself (or, hidden behind duplicates, the farthest)."""
    is_self = idx == rows[:, None]
    is_self[~is_self.any(1), -1] = True
    return torch.from_numpy(idx[~is_self].reshape(len(rows), k))


def _cosine_knn_indices(x: torch.Tensor, k: int, rows: np.ndarray | None = None) -> torch.Tensor:
    """Indices [q, k] of the k most cosine-similar other rows of ``rows`` (default all) (dmlviz's one cosine k-NN, on the CPU)."""
    from dmlviz.eval.retrieval import knn

    if rows is None:
        return knn(x, None, k, exclude_self=True, device="cpu")[1]
    idx = knn(x[torch.from_numpy(rows)], x, k + 1, device="cpu")[1].numpy()
    return _drop_self(idx, rows, k)


def _euclidean_knn_indices(y: np.ndarray, k: int, rows: np.ndarray | None = None) -> torch.Tensor:
    """Indices [q, k] of the k nearest other points of ``rows`` (default all) in a low-dimensional y [N, d] (k-d tree)."""
    from scipy.spatial import cKDTree

    rows = np.arange(len(y)) if rows is None else rows
    _, idx = cKDTree(y).query(y[rows], k=k + 1)
    return _drop_self(np.asarray(idx, dtype=np.int64).reshape(len(rows), k + 1), rows, k)


def knn_preservation(high: Any, low: Any, k: int = 10, *, sample: int | None = None, seed: int = 0) -> float:
    """Mean over points of |kNN_high ∩ kNN_low| / k: high [N, D] (cosine), low [N, 2] (Euclidean) -> [0, 1].

    k is capped at N - 1; with fewer than 2 points the result is NaN. With ``sample`` and more
    points than that, the mean is taken over ``sample`` points drawn at random (``seed``), each
    one's neighbours still found among all N points: an estimate whose standard error is at most
    0.5 / sqrt(sample).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    hi = _as_matrix(high, "high")
    lo = _as_matrix(low, "low")
    if hi.shape[0] != lo.shape[0]:
        raise ValueError(f"high and low must have the same number of rows, got {hi.shape[0]} and {lo.shape[0]}")
    n = hi.shape[0]
    if n < 2:
        return float("nan")
    k = min(int(k), n - 1)
    rows = None
    if sample is not None and n > int(sample):
        rows = np.sort(np.random.default_rng(seed).choice(n, size=int(sample), replace=False))
    a = _cosine_knn_indices(hi, k, rows)
    b = _euclidean_knn_indices(lo.numpy().astype(np.float64), k, rows)
    q = len(a)
    shared = torch.zeros(q, dtype=torch.int64)
    for start in range(0, q, 4096):  # [c, k, k] comparisons per chunk
        stop = min(start + 4096, q)
        shared[start:stop] = (a[start:stop, :, None] == b[start:stop, None, :]).any(-1).sum(-1)
    return float(shared.double().mean() / k)


def knn_preservation_chance(n: int, k: int = 10) -> float:
    """k-NN preservation of a map that keeps nothing (points placed at random): min(k, n - 1) / (n - 1); NaN below 2 points.

    Each of a point's k neighbours in 2-D is then any of the other n - 1 points alike, so it is one of
    its k neighbours in the embedding with probability k / (n - 1).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if n < 2:
        return float("nan")
    return min(int(k), int(n) - 1) / (int(n) - 1)


def procrustes_disparity(a: Any, b: Any) -> float:
    """scipy's Procrustes disparity between two layouts a, b [N, 2] (0 = same shape up to rotation, scale, shift)."""
    from scipy.spatial import procrustes

    x = _as_matrix(a, "a").numpy().astype(np.float64)
    y = _as_matrix(b, "b").numpy().astype(np.float64)
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same shape, got {x.shape} and {y.shape}")
    return float(procrustes(x, y)[2])


def ownership_agreement(
    points: Any, labels: Any, assignments: Any, center_xy: Any, center_classes: Any, owning: Any, groups: Any = None
) -> float:
    """Map-ownership agreement: the share of samples whose nearest *drawn* center of their class is their own.

    points [N, 2]; labels, assignments [N] (index 0..K-1 of the sample's center in the
    embedding, -1 for none); center_xy [C', K, 2]; center_classes [C']; owning bool [C', K]
    (centers whose group owns at least one sample; only those compete); groups [C', K]: merged
    centers (closer than ε, see :func:`dmlviz.eval.center_groups`) count as one center, so a
    sample reads right when its nearest drawn center is merged with its own (default: none
    merged). Counted over samples of classes with at least two owning groups; with one a class
    cannot be misread, and NaN is returned when no class has two.
    """
    pts = np.asarray(points, dtype=np.float64)
    y = np.asarray(labels)
    a = np.asarray(assignments, dtype=np.int64)
    xy = np.asarray(center_xy, dtype=np.float64)
    own = np.asarray(owning, dtype=bool)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must be [N, 2], got shape {pts.shape}")
    if y.shape != (len(pts),) or a.shape != (len(pts),):
        raise ValueError(f"labels and assignments must be 1-D with {len(pts)} entries, got {y.shape} and {a.shape}")
    if xy.ndim != 3 or xy.shape[2] != 2 or own.shape != xy.shape[:2]:
        raise ValueError(f"center_xy must be [C', K, 2] and owning [C', K], got {xy.shape} and {own.shape}")
    g = np.tile(np.arange(xy.shape[1]), (xy.shape[0], 1)) if groups is None else np.asarray(groups, dtype=np.int64)
    if g.shape != own.shape:
        raise ValueError(f"groups must be [C', K] like owning {own.shape}, got {g.shape}")
    agree = total = 0
    for row, cls in enumerate(np.asarray(center_classes)):
        cand = np.flatnonzero(own[row])
        if len(np.unique(g[row, cand])) < 2:
            continue
        members = np.flatnonzero((y == cls) & (a >= 0))
        if not len(members):
            continue
        d = ((pts[members, None, :] - xy[row, cand][None]) ** 2).sum(-1)
        nearest = cand[np.argmin(d, axis=1)]
        agree += int((g[row, nearest] == g[row, a[members]]).sum())
        total += len(members)
    return agree / total if total else float("nan")


def ownership_chance(labels: Any, assignments: Any, center_classes: Any, owning: Any, groups: Any = None) -> float:
    """Map-ownership agreement of a map whose drawn centers say nothing of their samples: the mean of 1 / G over the samples counted.

    labels, assignments [N]; center_classes [C']; owning bool [C', K]; groups [C', K] (merged
    centers, default none), as for :func:`ownership_agreement`, which counts the samples (assigned,
    ``assignments >= 0``) of classes with G >= 2 owning groups. If the drawn groups of a class were
    placed without regard to its samples, a sample's nearest would be any of the G alike; NaN
    when no sample is counted.
    """
    y = np.asarray(labels)
    a = np.asarray(assignments, dtype=np.int64)
    own = np.asarray(owning, dtype=bool)
    classes = np.asarray(center_classes)
    if y.ndim != 1 or a.shape != y.shape:
        raise ValueError(f"labels and assignments must be 1-D of one length, got {y.shape} and {a.shape}")
    if own.ndim != 2 or classes.shape != (own.shape[0],):
        raise ValueError(f"owning must be [C', K] with one center class per row, got {own.shape} and {classes.shape}")
    g = np.tile(np.arange(own.shape[1]), (own.shape[0], 1)) if groups is None else np.asarray(groups, dtype=np.int64)
    if g.shape != own.shape:
        raise ValueError(f"groups must be [C', K] like owning {own.shape}, got {g.shape}")
    if not own.size or not len(y):
        return float("nan")
    ranked = np.sort(np.where(own, g, -1), axis=1)  # owning groups of each row, -1 for the others
    distinct = (ranked[:, 0] >= 0).astype(np.int64) + ((ranked[:, 1:] != ranked[:, :-1]) & (ranked[:, 1:] >= 0)).sum(1)
    values, counts = np.unique(y[a >= 0], return_counts=True)  # assigned samples per class
    if not len(values):
        return float("nan")
    where = np.minimum(np.searchsorted(values, classes), len(values) - 1)
    per_row = np.where(values[where] == classes, counts[where], 0)  # the row's class's assigned samples
    per_row = np.where(distinct >= 2, per_row, 0)
    total = float(per_row.sum())
    chance = float((per_row / np.maximum(distinct, 1)).sum())
    return chance / total if total else float("nan")

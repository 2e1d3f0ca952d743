"""Per-class centres (SoftTriple): effective K, sample-to-centre assignment, purity, counts.

Numpy in, numpy out. Called every epoch on a few thousand samples and up to a few
hundred classes x K centres, so everything is vectorised over samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_centers(centers: Any) -> np.ndarray:
    c = _to_numpy(centers)
    if c.ndim != 3 or 0 in c.shape:
        raise ValueError(f"centers must be 3-D [C, K, D] with no empty axis, got shape {c.shape}")
    c = c.astype(np.float64, copy=False)
    if not np.isfinite(c).all():
        raise ValueError("centers contain NaN or inf")
    return c


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _check_eps(eps: Any) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)) or not eps > 0 or not np.isfinite(eps):
        raise ValueError(f"eps must be a positive finite number, e.g. 0.05, got {eps!r}")
    return float(eps)


def center_groups(centers: Any, eps: float = 0.05) -> np.ndarray:
    """Merged groups of each class's centres (connected under Euclidean distance < eps): centers [C, K, D] -> [C, K] int.

    Group ids run 0..G_c-1 within each class, numbered by their first centre.
    """
    eps = _check_eps(eps)
    c = _check_centers(centers)
    n_cls, k, _ = c.shape
    sq = np.einsum("ckd,ckd->ck", c, c)
    d2 = sq[:, :, None] + sq[:, None, :] - 2.0 * (c @ c.transpose(0, 2, 1))  # [C, K, K]
    cls, a, b = np.nonzero(d2 < eps**2)
    nodes = n_cls * k
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (cls * k + a, cls * k + b)), shape=(nodes, nodes))
    _, comp = connected_components(graph, directed=False)
    comp = comp.reshape(n_cls, k)  # components never span two classes
    # a group's id is how many groups of its class begin before it (no loop over classes: SOP has 11,318)
    first = np.full(comp.max() + 1, k, dtype=np.int64)
    np.minimum.at(first, comp.ravel(), np.tile(np.arange(k), n_cls))  # where each component begins in its class's row
    begins = first[comp] == np.arange(k)  # [C, K]: this centre is its group's first
    return np.take_along_axis(np.cumsum(begins, axis=1) - 1, first[comp], axis=1)


def effective_k(centers: Any, eps: float = 0.05) -> np.ndarray:
    """Number of groups of centres per class (merged when Euclidean distance < eps): centers [C, K, D] -> [C] int."""
    return (center_groups(centers, eps).max(axis=1) + 1).astype(np.int64)


def _rows_of(labels: np.ndarray, center_classes: np.ndarray) -> np.ndarray:
    """Row of center_classes holding each label, -1 where the label has no centres."""
    order = np.argsort(center_classes, kind="stable")
    sorted_cls = center_classes[order]
    pos = np.searchsorted(sorted_cls, labels)
    pos_c = np.minimum(pos, len(sorted_cls) - 1)
    found = sorted_cls[pos_c] == labels
    return np.where(found, order[pos_c], -1)


def _check_center_classes(center_classes: Any, n_rows: int) -> np.ndarray:
    cc = _to_numpy(center_classes)
    if cc.ndim != 1 or cc.shape[0] != n_rows:
        raise ValueError(f"center_classes must be 1-D with one entry per centre row ({n_rows}), got shape {cc.shape}")
    if len(np.unique(cc)) != len(cc):
        raise ValueError("center_classes must not repeat a class")
    return cc


def _check_labels(labels: Any, n: int, name: str = "labels") -> np.ndarray:
    y = _to_numpy(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must be 1-D with {n} entries, got shape {y.shape}")
    return y


def assign_to_centers(embeddings: Any, labels: Any, centers: Any, center_classes: Any) -> np.ndarray:
    """Index (0..K-1) of the most cosine-similar centre of each sample's own class: embeddings [N, D] -> [N] int, -1 if none."""
    x = _to_numpy(embeddings)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be 2-D [N, D], got shape {x.shape}")
    c = _check_centers(centers)
    if c.shape[2] != x.shape[1]:
        raise ValueError(f"centers dimension {c.shape[2]} does not match embeddings dimension {x.shape[1]}")
    y = _check_labels(labels, x.shape[0])
    cc = _check_center_classes(center_classes, c.shape[0])
    x = x.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or inf")
    rows = _rows_of(y, cc)
    out = np.full(x.shape[0], -1, dtype=np.int64)
    if x.shape[0] == 0:
        return out
    xn, cn = _normalize(x), _normalize(c)
    # group samples by centre row: one small [n_c, D] x [D, K] product per class present
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    bounds = np.flatnonzero(np.diff(sorted_rows)) + 1
    for group in np.split(order, bounds):
        row = rows[group[0]]
        if row >= 0:
            out[group] = np.argmax(xn[group] @ cn[row].T, axis=1)
    return out


def merged_assignments(assignments: Any, labels: Any, center_classes: Any, groups: Any) -> np.ndarray:
    """Each sample's merged group of centres instead of its centre: assignments, labels [N], center_classes [C'], groups [C', K] -> [N] int (-1 kept)."""
    a = _to_numpy(assignments).astype(np.int64)
    y = _check_labels(labels, a.shape[0])
    g = _to_numpy(groups).astype(np.int64)
    cc = _check_center_classes(center_classes, g.shape[0])
    rows = _rows_of(y, cc) if len(cc) else np.full(len(a), -1)
    ok = (a >= 0) & (rows >= 0)
    out = np.full(len(a), -1, dtype=np.int64)
    out[ok] = g[rows[ok], a[ok]]
    return out


def _check_fine(assignments: Any, labels: Any, fine_labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """assignments, labels and fine_labels as 1-D arrays of one length N, or a ValueError naming the one that is not."""
    a = _to_numpy(assignments)
    if a.ndim != 1:
        raise ValueError(f"assignments must be 1-D [N], got shape {a.shape}")
    return a, _check_labels(labels, a.shape[0]), _check_labels(fine_labels, a.shape[0], "fine_labels")


def center_purity(assignments: Any, labels: Any, fine_labels: Any) -> float:
    """Share of assigned samples [N] carrying their (class, centre) group's most common fine label; NaN if none."""
    a, y, f = _check_fine(assignments, labels, fine_labels)
    keep = a >= 0
    if not keep.any():
        return float("nan")
    _, yi = np.unique(y[keep], return_inverse=True)
    _, fi = np.unique(f[keep], return_inverse=True)
    triples = np.stack([yi.reshape(-1), a[keep].astype(np.int64), fi.reshape(-1)], axis=1)
    uniq, counts = np.unique(triples, axis=0, return_counts=True)  # sorted: groups contiguous
    new_group = np.ones(len(uniq), dtype=bool)
    new_group[1:] = np.any(uniq[1:, :2] != uniq[:-1, :2], axis=1)
    best = np.maximum.reduceat(counts, np.flatnonzero(new_group))
    return float(best.sum() / keep.sum())


def center_counts(assignments: Any, labels: Any, center_classes: Any, k: int) -> np.ndarray:
    """Samples owned by each centre: assignments [N], labels [N], center_classes [C'] -> [C', k] int."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    a = _to_numpy(assignments)
    if a.ndim != 1:
        raise ValueError(f"assignments must be 1-D [N], got shape {a.shape}")
    y = _check_labels(labels, a.shape[0])
    cc = _to_numpy(center_classes)
    if cc.ndim != 1:
        raise ValueError(f"center_classes must be 1-D [C'], got shape {cc.shape}")
    cc = _check_center_classes(cc, cc.shape[0])
    keep = a >= 0
    if np.any(a[keep] >= k):
        raise ValueError(f"assignments must be < k={k}, got max {int(a[keep].max())}")
    rows = _rows_of(y[keep], cc) if len(cc) else np.full(int(keep.sum()), -1)
    if np.any(rows < 0):
        raise ValueError("some assigned samples have a label that is not in center_classes")
    flat = rows * int(k) + a[keep].astype(np.int64)
    return np.bincount(flat, minlength=len(cc) * int(k)).reshape(len(cc), int(k)).astype(np.int64)


def submode_score(labels: Any, fine_labels: Any, assignments: Any) -> float:
    """How well the centers of each class split it along its hidden fine labels: labels, fine_labels, assignments [N] -> float.

    Adjusted mutual information (scikit-learn's, arithmetic normalisation) between the center
    assignment and the fine label *within each class*, averaged over classes weighted by their
    number of samples. AMI is corrected for chance, so the score is ≈ 0 when assignments are
    independent of the fine labels, at any K and with few samples per class, 1 for an exact
    split (one center per fine label), and between the two when centers split a class along
    other lines or split one fine label over several centers. One center per class (SoftMax)
    scores 0. Centres merged under ε are one centre: pass :func:`merged_assignments`, as the
    recorder does, so that merged centres sharing a mode do not count as splitting it. Samples with assignment -1 (no center) are left out, and so are classes with a
    single fine label or fewer than 2 samples (nothing to split); NaN if no class is left.
    """
    from sklearn.metrics import adjusted_mutual_info_score

    a, y, f = _check_fine(assignments, labels, fine_labels)
    keep = a >= 0
    y, f, a = y[keep], f[keep], a[keep]
    total, weight = 0.0, 0
    order = np.argsort(y, kind="stable")
    bounds = np.flatnonzero(y[order][1:] != y[order][:-1]) + 1
    for group in np.split(order, bounds) if len(order) else []:
        if len(group) < 2 or len(np.unique(f[group])) < 2:
            continue
        score = adjusted_mutual_info_score(f[group], a[group]) if len(np.unique(a[group])) > 1 else 0.0
        total += float(score) * len(group)
        weight += len(group)
    return total / weight if weight else float("nan")

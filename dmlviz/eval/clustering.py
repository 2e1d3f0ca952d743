"""Clustering quality: NMI of k-means clusters (C = number of classes) with the labels.

Exact k-means costs ≈ N·C per iteration; above ``NMI_EXACT_MAX`` (N·C) the "auto" method
switches to "minibatch": a seeded subsample of at most ``NMI_MAX_CLASSES`` whole classes,
clustered by MiniBatchKMeans.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import normalized_mutual_info_score

logger = logging.getLogger(__name__)

#: k-means restarts; a few keep NMI stable from epoch to epoch at a small cost.
_N_INIT = 3

#: NMI methods: "auto" (kmeans up to NMI_EXACT_MAX, else minibatch), "kmeans" (exact), "minibatch"
NMI_METHODS = ("auto", "kmeans", "minibatch")

#: "auto" keeps exact k-means while N·C (samples × classes) is at most this: CUB-200 (5,924 × 100)
#: and Cars196 (8,131 × 98) test splits and every dataset of the tests and the demo stay exact;
#: SOP (60,502 × 11,316) and In-Shop go to "minibatch"
NMI_EXACT_MAX = 2_000_000

#: "minibatch" clusters at most this many classes (a seeded choice of whole classes, all their samples)
NMI_MAX_CLASSES = 1000

#: MiniBatchKMeans batch size
_BATCH = 4096


def resolve_nmi_method(method: str, num_samples: int, num_classes: int) -> str:
    """The method "auto" stands for with num_samples × num_classes ("kmeans" or "minibatch"); others unchanged."""
    if method not in NMI_METHODS:
        raise ValueError(f"nmi method must be one of {', '.join(map(repr, NMI_METHODS))}, got {method!r}")
    if method != "auto":
        return method
    return "kmeans" if num_samples * num_classes <= NMI_EXACT_MAX else "minibatch"


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def nmi(embeddings: Any, labels: Any, *, seed: int = 0, method: str = "auto") -> float:
    """NMI between labels [N] and k-means clusters (C = distinct labels) of L2-normalised embeddings [N, D].

    method: "kmeans" (exact, n_init=3), "minibatch" (at most NMI_MAX_CLASSES whole classes,
    seeded, clustered by MiniBatchKMeans, k-means++ init, one start) or "auto" (kmeans while N·C <= NMI_EXACT_MAX).
    """
    if method not in NMI_METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, NMI_METHODS))}, got {method!r}")
    x = _to_numpy(embeddings)
    y = _to_numpy(labels)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"embeddings must be 2-D [N, D] with N >= 2, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"embeddings must hold numbers, got dtype {x.dtype}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"labels must be 1-D with one entry per embedding row ({x.shape[0]}), got shape {y.shape}")
    x = x.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or inf")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.maximum(norms, 1e-12)
    n_clusters = len(np.unique(y))
    if n_clusters == 1:
        logger.warning("nmi: a single class; NMI is trivially 1")
        return 1.0
    method = resolve_nmi_method(method, len(y), n_clusters)
    if method == "kmeans":
        clusters = KMeans(n_clusters=n_clusters, n_init=_N_INIT, random_state=seed).fit_predict(x)
        return float(normalized_mutual_info_score(y, clusters))
    rows = _clustered_rows(y, method, seed)
    x, y = x[rows], y[rows]
    n_clusters = len(np.unique(y))
    km = MiniBatchKMeans(n_clusters=n_clusters, batch_size=_BATCH, init="k-means++", n_init=1, random_state=seed)
    clusters = km.fit_predict(x)
    return float(normalized_mutual_info_score(y, clusters))


def _clustered_rows(labels: np.ndarray, method: str, seed: int) -> np.ndarray:
    """bool [N]: the rows ``method`` ("kmeans" or "minibatch") clusters; "minibatch" keeps a seeded choice of NMI_MAX_CLASSES whole classes."""
    classes = np.unique(labels)
    if method != "minibatch" or len(classes) <= NMI_MAX_CLASSES:
        return np.ones(len(labels), dtype=bool)
    kept = np.random.default_rng([seed, 11]).choice(classes, size=NMI_MAX_CLASSES, replace=False)
    return np.isin(labels, kept)


def nmi_chance(labels: Any, *, seed: int = 0, method: str = "auto", repeats: int = 3) -> float:
    """NMI that clusters unrelated to the embedding would score: labels [N] against a random partition with the classes' sizes.

    The partition is a seeded shuffle of the labels (as many clusters as classes, of the same
    sizes: the marginals adjusted mutual information takes as its chance model), on the rows
    :func:`nmi` clusters with ``method``; the mean of ``repeats`` shuffles. NMI rises with the
    number of clusters per sample, so with many small classes (SOP: about 5 test images a class)
    this level is far above 0.
    """
    y = _to_numpy(labels)
    if y.ndim != 1 or len(y) < 2:
        raise ValueError(f"labels must be 1-D with at least 2 entries, got shape {y.shape}")
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    if len(np.unique(y)) == 1:
        return 1.0  # as nmi() answers a single class
    method = resolve_nmi_method(method, len(y), len(np.unique(y)))
    y = y[_clustered_rows(y, method, seed)]
    rng = np.random.default_rng([seed, 12])
    return float(np.mean([normalized_mutual_info_score(y, rng.permutation(y)) for _ in range(int(repeats))]))

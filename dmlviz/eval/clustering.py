"""Clustering quality: NMI of k-means clusters (C = number of classes) with the labels."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

logger = logging.getLogger(__name__)

#: k-means restarts; a few keep NMI stable from epoch to epoch at a small cost.
_N_INIT = 3


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def nmi(embeddings: Any, labels: Any, *, seed: int = 0) -> float:
    """NMI between labels [N] and k-means clusters (C = distinct labels) of L2-normalised embeddings [N, D]."""
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
    km = KMeans(n_clusters=n_clusters, n_init=_N_INIT, random_state=seed)
    clusters = km.fit_predict(x)
    return float(normalized_mutual_info_score(y, clusters))

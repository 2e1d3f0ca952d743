"""The 2-D fitting steps: PCA, Procrustes alignment, exact cosine k-NN, warm-started UMAP.

umap-learn is imported inside :func:`umap_2d` only, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import threading
import warnings

import numpy as np
import torch

logger = logging.getLogger(__name__)

_WARNINGS_LOCK = threading.Lock()


def pca_2d(x: np.ndarray) -> np.ndarray:
    """First two principal components of x [M, D] -> float64 [M, 2], signs fixed (largest loading > 0)."""
    x = np.asarray(x, dtype=np.float64)
    m, d = x.shape
    out = np.zeros((m, 2))
    if m == 0:
        return out
    centered = x - x.mean(0)
    # eigenvectors of the D x D scatter matrix: cheaper than an SVD of [M, D] when M >> D, same directions.
    if m > d:
        _, vecs = np.linalg.eigh(centered.T @ centered)
        comps = vecs[:, ::-1][:, :2].T  # [<=2, D]
    else:
        _, _, vt = np.linalg.svd(centered, full_matrices=False)
        comps = vt[:2]
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(1)])
    signs[signs == 0] = 1.0
    comps = comps * signs[:, None]
    out[:, : len(comps)] = centered @ comps.T
    return out


def procrustes_align(moving: np.ndarray, target: np.ndarray, rows: int | None = None) -> np.ndarray:
    """Rotate/reflect, scale uniformly and shift moving [M, 2] onto target [R, 2], fitted on moving's first R rows.

    ``rows`` (default: len(target)) rows of ``moving`` correspond one to one with ``target``;
    the same transform is applied to every row of ``moving``. Returns float64 [M, 2].
    """
    moving = np.asarray(moving, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    r = len(target) if rows is None else rows
    if r != len(target) or r > len(moving):
        raise ValueError(f"cannot align: {r} rows against a target of {len(target)} and a layout of {len(moving)}")
    if r == 0:
        return moving.copy()
    mu_x = moving[:r].mean(0)
    mu_y = target.mean(0)
    xc = moving[:r] - mu_x
    yc = target - mu_y
    norm = float((xc * xc).sum())
    if norm <= 1e-300:
        return moving - mu_x + mu_y
    u, s, vt = np.linalg.svd(xc.T @ yc)
    rot = u @ vt
    scale = float(s.sum()) / norm
    return (moving - mu_x) @ rot * scale + mu_y


def equal_ranges(y: np.ndarray, iterations: int = 40) -> np.ndarray:
    """Rotate y [M, 2] about its mean so its x and y ranges are equal -> float64 [M, 2].

    umap-learn rescales an init array to [0, 10] per axis; for an init with equal ranges that
    rescaling is uniform, so a warm start keeps the previous layout's shape instead of
    stretching it. Rotating by 90 degrees swaps the ranges, so bisection on [0, 90] finds it.
    """
    y = np.asarray(y, dtype=np.float64)
    if len(y) < 2:
        return y.copy()
    c = y - y.mean(0)

    def turned(theta: float) -> np.ndarray:
        cos, sin = np.cos(theta), np.sin(theta)
        return c @ np.array([[cos, sin], [-sin, cos]])

    def gap(theta: float) -> float:
        z = turned(theta)
        span = z.max(0) - z.min(0)
        return float(span[0] - span[1])

    lo, hi = 0.0, np.pi / 2
    g_lo = gap(lo)
    if g_lo == 0.0:
        return c
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        g_mid = gap(mid)
        if (g_mid > 0) == (g_lo > 0):
            lo, g_lo = mid, g_mid
        else:
            hi = mid
    return turned(0.5 * (lo + hi))


def cosine_knn_graph(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine k-NN of x [M, D] with each row itself first -> (indices int64 [M, k], distances float32 [M, k])."""
    from dmlviz.eval.retrieval import knn

    m = len(x)
    if not 1 <= k <= m:
        raise ValueError(f"k must be in 1..{m}, got {k}")
    idx = np.empty((m, k), dtype=np.int64)
    dist = np.zeros((m, k), dtype=np.float32)
    idx[:, 0] = np.arange(m)
    if k > 1:
        sims, nn = knn(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), None, k - 1, exclude_self=True)
        idx[:, 1:] = nn.numpy()
        dist[:, 1:] = np.clip(1.0 - sims.numpy(), 0.0, 2.0)
    return idx, dist


def _quiet_umap_warnings() -> None:
    """Ignore umap-learn's warning that is expected here (no NN-descent search index: we pass exact k-NN).

    Re-installed on every call (filterwarnings replaces an identical filter) so that a reset
    of the warning filters, as pytest does around each test, does not bring it back.
    """
    with _WARNINGS_LOCK:
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]", category=UserWarning)


def umap_2d(
    x: np.ndarray,
    *,
    n_neighbors: int,
    min_dist: float,
    seed: int,
    init: np.ndarray | str,
    n_epochs: int,
    learning_rate: float = 1.0,
) -> np.ndarray:
    """UMAP of x [M, D] (cosine, exact k-NN precomputed here) from ``init`` ([M, 2] or a umap init name) -> float64 [M, 2]."""
    import umap  # lazy: umap-learn pulls in numba and pynndescent

    _quiet_umap_warnings()
    k = min(int(n_neighbors), len(x) - 1)
    idx, dist = cosine_knn_graph(x, k)
    reducer = umap.UMAP(
        n_neighbors=k,
        n_components=2,
        metric="cosine",
        min_dist=min_dist,
        init=init,
        n_epochs=int(n_epochs),
        learning_rate=learning_rate,
        random_state=seed,
        n_jobs=1,  # seeded: umap-learn runs single-threaded anyway
        precomputed_knn=(idx, dist, None),
        tqdm_kwds={"disable": True},
    )
    y = np.asarray(reducer.fit_transform(np.ascontiguousarray(x, dtype=np.float32)), dtype=np.float64)
    bad = ~np.isfinite(y).all(1)
    if bad.any():  # points umap disconnected from the graph: put them on their nearest finite neighbour
        logger.info("umap left %d point(s) disconnected; placing them beside their nearest neighbour", int(bad.sum()))
        ok = ~bad
        fallback = y[ok].mean(0) if ok.any() else np.zeros(2)
        for i in np.flatnonzero(bad):
            near = [j for j in idx[i, 1:] if ok[j]]
            y[i] = y[near[0]] if near else fallback
    return y

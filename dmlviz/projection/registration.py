"""Registering one run's 2-D layout onto another's: the similarity transform that best maps shared samples.

Runs on the same data, split, seed and probe lay out the same probe samples; PCA and UMAP fix
neither orientation nor scale, so the same sample can land anywhere. A similarity transform
(rotation or reflection, one scale, a shift) fitted by least squares on all shared samples
(orthogonal Procrustes) puts each sample near its place in the reference map without bending
the map: distances within it keep their ratios, so its k-NN preservation is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import orthogonal_procrustes


@dataclass(frozen=True)
class Similarity:
    """x ↦ scale · x @ rotation + shift, for points [N, 2]; ``residual``: RMS distance left to the
    reference, relative to the reference's RMS spread (0 = the same map, ≈ 1 = unrelated)."""

    rotation: np.ndarray
    scale: float
    shift: np.ndarray
    residual: float

    def apply(self, points: np.ndarray) -> np.ndarray:
        """The transformed points [..., 2] (float32)."""
        p = np.asarray(points, dtype=np.float64)
        return (self.scale * p @ self.rotation + self.shift).astype(np.float32)


IDENTITY = Similarity(np.eye(2), 1.0, np.zeros(2), 0.0)


def fit_similarity(source: np.ndarray, target: np.ndarray) -> Similarity:
    """The similarity transform [N, 2] → [N, 2] minimising Σ ‖T(source_i) − target_i‖² (rows pair up)."""
    a, b = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"source and target must both be [N, 2] with the same N, got {a.shape} and {b.shape}")
    ok = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    a, b = a[ok], b[ok]
    if len(a) < 3:
        return IDENTITY
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    a0, b0 = a - ma, b - mb
    spread_a = float((a0 ** 2).sum())
    if spread_a == 0:
        return IDENTITY
    rotation, singular_sum = orthogonal_procrustes(a0, b0)
    scale = float(singular_sum / spread_a)
    shift = mb - scale * ma @ rotation
    moved = scale * a0 @ rotation
    spread_b = float((b0 ** 2).sum())
    residual = float(np.sqrt(((moved - b0) ** 2).sum() / spread_b)) if spread_b > 0 else 0.0
    return Similarity(rotation, scale, shift, residual)

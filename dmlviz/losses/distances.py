"""Pairwise Euclidean distances as the MDR authors compute them, and the batch's mean distance."""

from __future__ import annotations

import torch


def pairwise_distances(embeddings: torch.Tensor, *, squared: bool = False, eps: float = 1e-12) -> torch.Tensor:
    """Euclidean distances [B, B] between the rows of ``embeddings`` [B, D]; the diagonal is exactly 0.

    Squared distances come from the Gram matrix and are clamped at ``eps`` before the square
    root (so its gradient stays finite for identical rows), as in the MDR authors' ``pdist``.
    """
    square = embeddings.pow(2).sum(dim=1)
    dist = (square[:, None] + square[None, :] - 2.0 * embeddings @ embeddings.T).clamp(min=eps)
    if not squared:
        dist = dist.sqrt()
    off_diagonal = ~torch.eye(len(embeddings), dtype=torch.bool, device=embeddings.device)
    return dist * off_diagonal


def off_diagonal(matrix: torch.Tensor) -> torch.Tensor:
    """The B·(B−1) entries of a square matrix [B, B] off its diagonal, row by row."""
    return matrix[~torch.eye(len(matrix), dtype=torch.bool, device=matrix.device)]


def mean_distance_scaled(embeddings: torch.Tensor) -> torch.Tensor:
    """``embeddings`` [B, D] divided by their mean off-diagonal pairwise distance (MDR's "learning without L2 norm").

    The division keeps its gradient, as in the authors' ``Embedding.forward`` in training mode.
    """
    return embeddings / off_diagonal(pairwise_distances(embeddings)).mean()

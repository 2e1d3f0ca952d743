"""Distance-weighted negative sampling (Wu et al., ICCV 2017) as the MDR authors' ``DistanceWeighted`` draws it.

pytorch-metric-learning's ``DistanceWeightedMiner`` has the same weights but draws random
positives with replacement and skips anchors whose weights are all zero; the authors (and the
MXNet original) take every positive pair once, each with one negative drawn by weight, and fall
back to a uniform draw over the anchor's negatives. dmlviz follows the authors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .distances import pairwise_distances


@torch.no_grad()
def distance_weights(embeddings: torch.Tensor, labels: torch.Tensor, *, cutoff: float = 0.5, nonzero_loss_cutoff: float = 1.4) -> torch.Tensor:
    """Row-normalised weights [B, B] of drawing negative j for anchor i (0 on positives and the diagonal).

    On L2-normalised embeddings [B, D], a negative at distance d (clipped below at ``cutoff``)
    weighs ∝ 1/q(d), q(d) ∝ d^(D−2)·(1 − d²/4)^((D−3)/2) being the density of distances between
    random points of the sphere; negatives at or beyond ``nonzero_loss_cutoff`` weigh 0; an
    anchor left with no weight draws uniformly among its negatives.
    """
    unit = F.normalize(embeddings.detach().float(), dim=1)
    b, dim = unit.shape
    eye = torch.eye(b, dtype=torch.bool, device=unit.device)
    negative = labels[:, None] != labels[None, :]
    # the authors add the identity before the square root (their pdist zeroes the diagonal)
    dist = (pairwise_distances(unit, squared=True) + eye.float()).sqrt().clamp(min=cutoff)
    eligible = negative & (dist < nonzero_loss_cutoff)
    # 1 − d²/4 is clamped (antipodal points: the authors' code gives NaN) and the max is taken over the
    # eligible negatives only (theirs over the whole row, which can underflow every eligible weight to 0);
    # the normalised weights are otherwise the same
    log_weight = (2.0 - dim) * dist.log() - ((dim - 3.0) / 2.0) * (1.0 - 0.25 * dist * dist).clamp(min=1e-8).log()
    log_weight = log_weight.masked_fill(~eligible, float("-inf"))
    top = log_weight.max(dim=1, keepdim=True).values
    weight = (log_weight - torch.where(torch.isfinite(top), top, torch.zeros_like(top))).exp()
    weight = weight + ((weight.sum(dim=1, keepdim=True) == 0) & negative).float()
    return weight / weight.sum(dim=1, keepdim=True).clamp(min=1e-30)


@torch.no_grad()
def distance_weighted_triplets(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    cutoff: float = 0.5,
    nonzero_loss_cutoff: float = 1.4,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(anchors, positives, negatives) index tensors [T]: every ordered positive pair once, one negative each drawn by :func:`distance_weights`."""
    same = labels[:, None] == labels[None, :]
    same.fill_diagonal_(False)
    anchors, positives = same.nonzero(as_tuple=True)
    weight = distance_weights(embeddings, labels, cutoff=cutoff, nonzero_loss_cutoff=nonzero_loss_cutoff)
    negatives = torch.multinomial(weight[anchors], 1, generator=generator).squeeze(1)
    return anchors, positives, negatives

"""Smooth-AP (Brown, Xie, Kalogeiton, Zisserman; ECCV 2020), written here.

Official code: Andrew-Brown1/Smooth_AP, ``src/Smooth_AP_loss.py``. For each query i of the batch
(cosine similarities s of unit vectors) and each j of its class — the query itself included, as
the authors' code counts it (its similarity 1 ranks it first) — the rank indicator is replaced by
a sigmoid of temperature τ (0.01, the paper's):

    rank_all(i, j) = 1 + Σ_{k≠j} σ((s_ik − s_ij)/τ),  rank_pos(i, j) = 1 + Σ_{k∈P_i, k≠j} σ((s_ik − s_ij)/τ)
    AP_i = mean_{j∈P_i} rank_pos / rank_all,          loss = 1 − mean_i AP_i.

Why not pytorch-metric-learning's ``SmoothAPLoss`` (2.9.0): it groups the label-sorted batch
into blocks of ``batch_size // classes`` rows per class but takes that number as the count of
classes, so its positives are wrong unless a batch has as many classes as samples per class
(measured: 6 classes × 4 samples gives 0.530 where the formula gives 0.543; 4 × 4 agrees to 1e-7;
tests/losses/test_methods.py). This version also takes classes of unequal size. Memory: B³.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._validation import check_positive_float
from .base import DMLLoss
from .registry import register


@register("smoothap")
class SmoothAP(DMLLoss):
    """Smooth-AP: 1 − mean over queries of a sigmoid-smoothed average precision (``temperature`` 0.01)."""

    name = "smoothap"
    needs_pairs = True

    def __init__(self, num_classes: int, embedding_dim: int, temperature: float = 0.01) -> None:
        super().__init__(num_classes, embedding_dim)
        self.temperature = check_positive_float("temperature", temperature, example=0.01)
        self.hparams = dict(temperature=self.temperature)

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """1 − smoothed AP, mean over the batch's queries."""
        u = F.normalize(embeddings, dim=1)
        s = u @ u.T  # [i, k]
        b = len(labels)
        same = (labels[:, None] == labels[None, :]).to(s.dtype)  # [i, k], the query itself included
        not_j = 1.0 - torch.eye(b, dtype=s.dtype, device=s.device)  # [j, k]
        sig = torch.sigmoid((s[:, None, :] - s[:, :, None]) / self.temperature) * not_j  # [i, j, k]
        rank_all = 1.0 + sig.sum(dim=2)
        rank_pos = 1.0 + (sig * same[:, None, :]).sum(dim=2)
        ap = ((rank_pos / rank_all) * same).sum(dim=1) / same.sum(dim=1)
        return {"loss": 1.0 - ap.mean()}

    def center_parameters(self) -> list[torch.nn.Parameter]:
        """No centers."""
        return []

"""ROADMAP (Ramzi et al., NeurIPS 2021): a robust smooth-rank AP (SupAP) plus a calibration loss.

Official code: elias-ramzi/ROADMAP, ``roadmap/losses/smooth_rank_ap.py`` (``SupAP``, ``step_rank``,
``SmoothRankAP.quick_forward``), ``roadmap/losses/calibration_loss.py`` (a pytorch-metric-learning
``ContrastiveLoss`` on dot products), defaults in ``roadmap/config/loss/roadmap.yaml``.

For query i (cosine similarities s of unit vectors, the query counted as its own positive, as the
authors' code does), positive j and any k ≠ j, with x = s_ik − s_ij, the rank indicator is:
the true step 1[x ≥ 0] when k is a positive too (no gradient), else σ(x/τ) for x ≤ 0,
start + σ(x/τ) for 0 < x ≤ δ and ρ·x + offset beyond δ — an upper bound of the step whose slope
does not vanish for badly ranked negatives. AP_i = mean_j rank⁺(j)/rank(j); SupAP = 1 − mean AP.
Calibration: PML's ``ContrastiveLoss(pos_margin=0.9, neg_margin=0.6)`` on dot products of unit
vectors (positives below 0.9 and negatives above 0.6 pay). Total = SupAP + calibration (weights
1 and 1, the config's). The optional cross-batch memory is off in the authors' commands, and here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning.distances import DotProductSimilarity

from .._validation import check_positive_float
from .base import DMLLoss
from .registry import register


def _tau_sigmoid(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """σ(x/τ) with the exponent clamped to [−50, 50], as the authors compute it."""
    return 1.0 / (1.0 + (-x / temperature).clamp(-50, 50).exp())


@register("roadmap")
class ROADMAP(DMLLoss):
    """SupAP (τ ``temperature`` 0.01, ρ ``rho`` 100, δ ``delta`` 0.05, ``offset`` 1.44, ``start`` 0.5) + ``calibration_weight`` ×
    calibration (margins ``pos_margin`` 0.9 / ``neg_margin`` 0.6). Terms "supap" and "calibration". Memory B³."""

    name = "roadmap"
    needs_pairs = True

    def __init__(
        self, num_classes: int, embedding_dim: int, temperature: float = 0.01, rho: float = 100.0, delta: float = 0.05,
        offset: float = 1.44, start: float = 0.5, calibration_weight: float = 1.0, pos_margin: float = 0.9, neg_margin: float = 0.6,
    ) -> None:
        super().__init__(num_classes, embedding_dim)
        self.hparams = dict(
            temperature=check_positive_float("temperature", temperature, example=0.01),
            rho=check_positive_float("rho", rho, example=100.0),
            delta=check_positive_float("delta", delta, allow_zero=True, example=0.05),
            offset=check_positive_float("offset", offset, allow_zero=True, example=1.44),
            start=check_positive_float("start", start, allow_zero=True, example=0.5),
            calibration_weight=check_positive_float("calibration_weight", calibration_weight, allow_zero=True, example=1.0),
            pos_margin=check_positive_float("pos_margin", pos_margin, allow_zero=True, example=0.9),
            neg_margin=check_positive_float("neg_margin", neg_margin, allow_zero=True, example=0.6),
        )
        self.calibration = pml_losses.ContrastiveLoss(pos_margin=pos_margin, neg_margin=neg_margin, distance=DotProductSimilarity())

    def supap(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """1 − mean over queries of the robust smooth AP."""
        h = self.hparams
        u = F.normalize(embeddings, dim=1)
        s = u @ u.T
        b = len(labels)
        pos = labels[:, None] == labels[None, :]  # [i, k], the query itself included
        x = s[:, None, :] - s[:, :, None]  # [i, j, k] = s_ik − s_ij
        both = pos[:, :, None] & pos[:, None, :]
        smooth = torch.where(
            x <= 0, _tau_sigmoid(x, h["temperature"]),
            torch.where(x <= h["delta"], h["start"] + _tau_sigmoid(x, h["temperature"]), h["rho"] * x + h["offset"]),
        )
        rank = torch.where(both, (x >= 0).to(s.dtype), smooth)
        not_j = ~torch.eye(b, dtype=torch.bool, device=s.device)  # [j, k]
        rank = rank * not_j
        all_rank = rank.sum(dim=2) + 1.0
        pos_f = pos.to(s.dtype)
        pos_rank = ((rank * (pos & not_j).to(s.dtype)[None]).sum(dim=2) + pos_f) * pos_f  # same class as j, k ≠ j
        ap = (pos_rank / all_rank).sum(dim=1) / pos_f.sum(dim=1)
        return 1.0 - ap.mean()

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """"supap" and "calibration" (weighted)."""
        return {
            "supap": self.supap(embeddings, labels),
            "calibration": self.hparams["calibration_weight"] * self.calibration(embeddings, labels),
        }

    def center_parameters(self) -> list[torch.nn.Parameter]:
        """No centers."""
        return []

"""Contrastive and NT-Xent (InfoNCE) losses with a knob balancing their positive and negative terms.

Sors et al. ("Simple and Effective Balance of Contrastive Losses", arXiv 2112.11743) split a
contrastive loss into a positive term (pull positives) and an entropy / negative term (push
negatives) and show their relative weight matters; their exact parameterisation and the
coordinate-descent search are not published as code (UNVERIFIED), so dmlviz exposes the standard
decompositions with a weight ``balance`` on the negative term (1 = the usual loss):

- contrastive (Hadsell et al. 2006, pytorch-metric-learning's ``ContrastiveLoss``):
  mean⁺[d − m⁺]₊ + balance · mean⁻[m⁻ − d]₊, each mean over its non-zero pairs (PML's reducer);
- NT-Xent (Chen et al. 2020): for each positive pair (a, p),
  −s_ap/τ + balance · log(e^{s_ap/τ} + Σ_n e^{s_an/τ}), averaged over positive pairs; with
  balance 1 it is PML's ``NTXentLoss`` (a test checks it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses

from .._validation import check_positive_float
from .pml_adapters import _PMLLoss
from .registry import register


@register("contrastive")
class Contrastive(_PMLLoss):
    """Contrastive loss on all pairs of the batch: ``pos_margin`` 0, ``neg_margin`` 1 (Euclidean, unit
    vectors; PML's defaults), negative term weighted by ``balance``. Terms "positive" and "negative"."""

    name = "contrastive"
    needs_pairs = True
    supports_reference = True

    def __init__(self, num_classes: int, embedding_dim: int, pos_margin: float = 0.0, neg_margin: float = 1.0, balance: float = 1.0) -> None:
        hparams = dict(
            pos_margin=check_positive_float("pos_margin", pos_margin, allow_zero=True, example=0.0),
            neg_margin=check_positive_float("neg_margin", neg_margin, example=1.0),
            balance=check_positive_float("balance", balance, allow_zero=True, example=1.0),
        )
        super().__init__(num_classes, embedding_dim, pml_losses.ContrastiveLoss(pos_margin=hparams["pos_margin"], neg_margin=hparams["neg_margin"]))
        self.hparams = hparams

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """PML's two sub-losses, each reduced as PML reduces it, the negative one weighted."""
        return self._balanced(embeddings, labels, None, embeddings, labels)

    def compute_reference(self, anchors: torch.Tensor, labels: torch.Tensor, reference: torch.Tensor, reference_labels: torch.Tensor,
                          reference_sources: torch.Tensor) -> dict[str, torch.Tensor]:
        """The balanced terms of every anchor [B, D] against the reference rows [R, D], own sources left out."""
        indices = self.reference_indices(anchors, labels, reference, reference_labels, reference_sources)
        return self._balanced(anchors, labels, indices, reference, reference_labels)

    def _balanced(self, embeddings: torch.Tensor, labels: torch.Tensor, indices: tuple | None, reference: torch.Tensor,
                  reference_labels: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = self.loss.compute_loss(embeddings, labels, indices, reference, reference_labels)
        reduce = self.loss.reducer
        positive = reduce({"pos_loss": parts["pos_loss"]}, embeddings, labels)
        negative = reduce({"neg_loss": parts["neg_loss"]}, embeddings, labels)
        return {"positive": positive, "negative": self.hparams["balance"] * negative}

    def center_parameters(self) -> list[torch.nn.Parameter]:
        """No centers."""
        return []


@register("ntxent")
class NTXent(_PMLLoss):
    """NT-Xent / InfoNCE over the batch: cosine / ``temperature`` (0.07, PML's default); the
    log-sum-exp (entropy) term weighted by ``balance``. Terms "positive" and "entropy"."""

    name = "ntxent"
    needs_pairs = True

    def __init__(self, num_classes: int, embedding_dim: int, temperature: float = 0.07, balance: float = 1.0) -> None:
        hparams = dict(
            temperature=check_positive_float("temperature", temperature, example=0.07),
            balance=check_positive_float("balance", balance, allow_zero=True, example=1.0),
        )
        super().__init__(num_classes, embedding_dim, pml_losses.NTXentLoss(temperature=hparams["temperature"]))
        self.hparams = hparams

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Means over the positive pairs (a, p) of −s_ap/τ and of balance·log(e^{s_ap/τ} + Σ_n e^{s_an/τ})."""
        x = F.normalize(embeddings, dim=1)
        s = x @ x.T / self.hparams["temperature"]
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        anchors, positives = (same & ~eye).nonzero(as_tuple=True)
        negatives = torch.where(~same, s, torch.full_like(s, float("-inf")))[anchors]  # [P, B]
        both = torch.cat([s[anchors, positives][:, None], negatives], dim=1)
        positive = -s[anchors, positives].mean()
        entropy = torch.logsumexp(both, dim=1).mean()
        return {"positive": positive, "entropy": self.hparams["balance"] * entropy}

    def center_parameters(self) -> list[torch.nn.Parameter]:
        """No centers."""
        return []

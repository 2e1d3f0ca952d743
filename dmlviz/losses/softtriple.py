"""SoftTriple loss (Qian et al., ICCV 2019), exactly as the authors compute it, instrumented."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_positive_float, check_positive_int
from .base import DMLLoss
from .registry import register


@register("softtriple")
class SoftTriple(DMLLoss):
    """SoftTriple: K centers per class, a smoothed max over them, and a center-merging regularizer.

    Centers are the columns of ``weight`` [D, C·K] (the layout of the authors' code). Defaults
    are the paper's: ``la`` = λ = 20, ``gamma`` = γ = 0.1, ``tau`` = τ = 0.2, ``margin`` = δ =
    0.01, ``centers_per_class`` = K = 10. The regularizer uses the authors' 1e-5 inside the
    square root, which keeps its gradient finite when two centers coincide.
    """

    name = "softtriple"
    nan_hint = "lower la (the authors advise la=10 when the loss goes NaN) or the learning rate"

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        centers_per_class: int = 10,
        la: float = 20.0,
        gamma: float = 0.1,
        tau: float = 0.2,
        margin: float = 0.01,
    ) -> None:
        super().__init__(check_positive_int("num_classes", num_classes), check_positive_int("embedding_dim", embedding_dim))
        self.centers_per_class = check_positive_int("centers_per_class", centers_per_class)
        self.la = check_positive_float("la", la, example=20.0)
        self.gamma = check_positive_float("gamma", gamma, example=0.1)
        self.tau = check_positive_float("tau", tau, allow_zero=True, example=0.2)
        self.margin = check_positive_float("margin", margin, allow_zero=True, example=0.01)
        self.hparams = dict(centers_per_class=self.centers_per_class, la=self.la, gamma=self.gamma, tau=self.tau, margin=self.margin)
        self.weight = nn.Parameter(torch.empty(embedding_dim, num_classes * centers_per_class))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Classification term λ-scaled cross-entropy on smoothed class similarities, plus τ·regularizer."""
        C, K = self.num_classes, self.centers_per_class
        x = F.normalize(embeddings, dim=1)
        w = F.normalize(self.weight, dim=0)
        sim = (x @ w).view(-1, C, K)  # [B, C, K] cosine to each center
        if K > 1:
            prob = F.softmax(sim / self.gamma, dim=2)
            sim_class = (prob * sim).sum(dim=2)  # [B, C]
        else:
            sim_class = sim.squeeze(2)
        logits = self.la * sim_class
        if self.margin:
            logits = logits - (self.la * self.margin) * F.one_hot(labels, C).to(logits.dtype)
        parts = {"classification": F.cross_entropy(logits, labels)}
        if self.tau > 0 and K > 1:
            parts["regularizer"] = self.tau * self.regularizer(w)
        return parts

    def regularizer(self, w: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over classes and center pairs s<t of sqrt(2 + 1e-5 − 2⟨w_s, w_t⟩), divided as the paper (C·K·(K−1))."""
        C, K = self.num_classes, self.centers_per_class
        if w is None:
            w = F.normalize(self.weight, dim=0)
        per_class = w.t().reshape(C, K, -1)
        gram = per_class @ per_class.transpose(1, 2)  # [C, K, K]
        upper = torch.triu_indices(K, K, offset=1, device=w.device)
        sims = gram[:, upper[0], upper[1]]
        return torch.sqrt(2.0 + 1e-5 - 2.0 * sims).sum() / (C * K * (K - 1))

    def centers(self) -> torch.Tensor:
        """Unit centers [C, K, D]."""
        w = F.normalize(self.weight.detach(), dim=0)
        return w.t().reshape(self.num_classes, self.centers_per_class, self.embedding_dim)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, embedding_dim={self.embedding_dim}, K={self.centers_per_class}, "
            f"la={self.la}, gamma={self.gamma}, tau={self.tau}, margin={self.margin}"
        )


@register("softmax")
class NormalizedSoftmax(SoftTriple):
    """The normalized SoftMax loss: SoftTriple with one center per class and no regularizer."""

    name = "softmax"

    def __init__(self, num_classes: int, embedding_dim: int, la: float = 20.0, margin: float = 0.01) -> None:
        super().__init__(num_classes, embedding_dim, centers_per_class=1, la=la, tau=0.0, margin=margin)
        self.hparams = dict(la=self.la, margin=self.margin)

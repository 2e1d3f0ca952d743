"""A multi-proxy Proxy-Anchor loss: **dmlviz's approximation** of MPA (Saeki et al., arXiv 2110.03997).

MPA extends Proxy-Anchor to several proxies per class, but its aggregation of a class's proxies
and its defaults could not be read from the paper and no code is public (seed003 notes, §12), so
this is not a reproduction. What dmlviz builds: K proxies per class; a sample's similarity to a
class is SoftTriple's smoothed maximum over that class's proxies,
s(x, c) = Σ_k softmax_k(s(x, p_ck)/γ)·s(x, p_ck); the Proxy-Anchor loss (Kim et al., CVPR 2020)
is then taken on s(x, c) with its α and δ. With K = 1 it is Proxy-Anchor exactly (a test checks
it against pytorch-metric-learning's ``ProxyAnchorLoss``). The proxies are drawn as K centers per
class, and they can merge like SoftTriple's (effective K on the map and the merge timeline).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_positive_float, check_positive_int
from .base import DMLLoss
from .registry import register


@register("multiproxyanchor")
class MultiProxyAnchor(DMLLoss):
    """Proxy-Anchor over K proxies per class (``proxies_per_class`` 3) merged by a softmax of temperature
    ``gamma`` 0.1; ``margin`` δ 0.1, ``alpha`` 32 (Proxy-Anchor's). Labelled an approximation of MPA."""

    name = "multiproxyanchor"

    def __init__(self, num_classes: int, embedding_dim: int, proxies_per_class: int = 3, gamma: float = 0.1,
                 margin: float = 0.1, alpha: float = 32.0) -> None:
        super().__init__(check_positive_int("num_classes", num_classes), check_positive_int("embedding_dim", embedding_dim))
        self.k = check_positive_int("proxies_per_class", proxies_per_class)
        self.hparams = dict(
            proxies_per_class=self.k,
            gamma=check_positive_float("gamma", gamma, example=0.1),
            margin=check_positive_float("margin", margin, allow_zero=True, example=0.1),
            alpha=check_positive_float("alpha", alpha, example=32.0),
        )
        self.proxies = nn.Parameter(torch.empty(num_classes * self.k, embedding_dim))
        nn.init.kaiming_normal_(self.proxies, mode="fan_out")  # Proxy-Anchor's init; row c·K + k is proxy k of class c

    def class_similarity(self, embeddings: torch.Tensor) -> torch.Tensor:
        """s(x, c) [B, C]: the smoothed maximum over each class's K proxies of the cosine."""
        sim = F.normalize(embeddings, dim=1) @ F.normalize(self.proxies, dim=1).T
        sim = sim.view(len(embeddings), self.num_classes, self.k)
        return (F.softmax(sim / self.hparams["gamma"], dim=2) * sim).sum(dim=2)

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """"positive" (mean over classes present) and "negative" (mean over all classes) Proxy-Anchor terms."""
        h = self.hparams
        s = self.class_similarity(embeddings)
        one_hot = F.one_hot(labels, self.num_classes).bool()
        zero = torch.zeros_like(s)
        pos = torch.where(one_hot, torch.exp(-h["alpha"] * (s - h["margin"])), zero).sum(dim=0)
        neg = torch.where(~one_hot, torch.exp(h["alpha"] * (s + h["margin"])), zero).sum(dim=0)
        present = one_hot.any(dim=0)
        positive = torch.log1p(pos)[present].sum() / present.sum().clamp(min=1)
        negative = torch.log1p(neg).sum() / self.num_classes
        return {"positive": positive, "negative": negative}

    def centers(self) -> torch.Tensor:
        """Unit proxies [C, K, D]."""
        return F.normalize(self.proxies.detach(), dim=1).view(self.num_classes, self.k, self.embedding_dim)

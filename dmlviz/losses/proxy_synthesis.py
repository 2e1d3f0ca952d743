"""Proxy Synthesis (Gu, Ko, Kim; AAAI 2021) on the normalised SoftMax or ProxyNCA, as the authors' code does it.

Official code: navervision/proxy-synthesis, ``loss/proxy_losses.py`` (``proxy_synthesis``,
``Norm_SoftMax``, ``Proxy_NCA``). Each step draws λ ~ Beta(α, α) and mixes every unit embedding
with its batch neighbour (the batch rolled by one) and their classes' proxies with the same λ;
each mixed pair becomes a new class with its own synthetic proxy, and the first μ·B of them join
the loss (embeddings and proxies re-normalised). The verified stand-in for "Learning to Generate
Novel Classes" (Lee et al., BMVC 2021), which has no public code (seed003 notes, §15).

Where dmlviz differs: the authors need a batch whose adjacent labels differ; dmlviz's batches come
in class blocks, so the batch is interleaved (first sample of every class, then the second, ...)
before the roll; λ is drawn with torch's generator (seeded per epoch by the trainer), not numpy's.
The synthetic proxies live for one step and are not drawn.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_choice, check_positive_float, check_positive_int
from .base import DMLLoss
from .registry import register

#: the authors' README scales: Norm-SoftMax 23, ProxyNCA 10
SCALES = {"softmax": 23.0, "proxynca": 10.0}


def interleave(labels: torch.Tensor) -> torch.Tensor:
    """An order [B] of the batch in which adjacent labels differ where they can: every class's first sample, then its second, ..."""
    order = torch.argsort(labels, stable=True)
    sorted_labels = labels[order]
    start = torch.searchsorted(sorted_labels, sorted_labels, right=False)
    rank = torch.arange(len(labels), device=labels.device) - start  # position of each sample within its class
    return order[torch.argsort(rank * (int(labels.max()) + 1) + sorted_labels, stable=True)]


def synthesize(
    embeddings: torch.Tensor, proxies: torch.Tensor, labels: torch.Tensor, rate: float, mu: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(embeddings [B + ⌊μB⌋, D], proxies [C + ⌊μB⌋, D], labels) with the synthetic classes appended, all unit vectors.

    ``embeddings`` and ``proxies`` come L2-normalised; synthetic class i mixes sample i with sample
    i − 1 (and their proxies) as rate·a + (1 − rate)·b.
    """
    b, c = len(embeddings), len(proxies)
    mixed = rate * embeddings + (1.0 - rate) * torch.roll(embeddings, 1, dims=0)
    own = proxies[labels]
    mixed_proxies = rate * own + (1.0 - rate) * torch.roll(own, 1, dims=0)
    synthetic = torch.arange(c, c + b, device=labels.device)
    n_embed, n_proxy = int(b * (1.0 + mu)), int(c + b * mu)
    x = torch.cat([embeddings, mixed])[:n_embed]
    p = torch.cat([proxies, mixed_proxies])[:n_proxy]
    y = torch.cat([labels, synthetic])[:n_embed]
    return F.normalize(x, dim=1), F.normalize(p, dim=1), y


@register("proxysynthesis")
class ProxySynthesis(DMLLoss):
    """Proxy Synthesis on ``base`` "softmax" (normalised SoftMax, ``scale`` 23) or "proxynca" (scale 10):
    ``ps_alpha`` 0.4 (Beta(α, α)), ``ps_mu`` 1.0 (synthetic classes per batch sample), the authors' README values."""

    name = "proxysynthesis"

    def __init__(self, num_classes: int, embedding_dim: int, base: str = "softmax", scale: float | None = None,
                 ps_alpha: float = 0.4, ps_mu: float = 1.0) -> None:
        super().__init__(check_positive_int("num_classes", num_classes, minimum=2), check_positive_int("embedding_dim", embedding_dim))
        self.base = check_choice("base", base, tuple(SCALES))
        self.scale = SCALES[base] if scale is None else check_positive_float("scale", scale, example=SCALES[base])
        self.ps_alpha = check_positive_float("ps_alpha", ps_alpha, example=0.4)
        self.ps_mu = check_positive_float("ps_mu", ps_mu, allow_zero=True, example=1.0)
        self.proxies = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.kaiming_uniform_(self.proxies, a=math.sqrt(5))  # the authors' init
        self.hparams = dict(base=base, scale=scale, ps_alpha=self.ps_alpha, ps_mu=self.ps_mu)

    def draw_rate(self, device: torch.device) -> float:
        """λ ~ Beta(α, α) from torch's generator."""
        alpha = torch.tensor(self.ps_alpha)
        return float(torch.distributions.Beta(alpha, alpha).sample())

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """The base loss over real and synthetic classes."""
        x, p, y = F.normalize(embeddings, dim=1), F.normalize(self.proxies, dim=1), labels
        if self.ps_mu > 0 and len(labels) > 1:
            order = interleave(labels)
            x, p, y = synthesize(x[order], p, labels[order], self.draw_rate(embeddings.device), self.ps_mu)
        if self.base == "softmax":
            return {"loss": F.cross_entropy(self.scale * x @ p.T, y)}
        return {"loss": F.cross_entropy(-self.scale * torch.cdist(x, p).pow(2), y)}

    def centers(self) -> torch.Tensor:
        """The unit proxies [C, 1, D] (the synthetic ones live for one step)."""
        return F.normalize(self.proxies.detach(), dim=1).unsqueeze(1)

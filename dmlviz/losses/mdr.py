"""Multi-level Distance Regularization (Kim & Park, AAAI 2021), exact to the authors' ``MDRLoss``.

Official code: kakaoenterprise/AAAI2021_MDR, ``metric/loss.py`` (``MDRLoss``), ``metric/utils.py``
(``pdist``), ``run.py`` (total = loss + λ·MDR + ν·Σ level²), ``model/embedding.py`` ("learning
without L2 norm"). Paper and code agree on the formula; where the code settles what the paper
leaves open, dmlviz follows the code:

- the batch mean and standard deviation are taken over the **whole** B×B distance matrix, its
  zero diagonal included, and the standard deviation is the unbiased one (``torch.std``);
- the running statistics start as the first batch's and then move with momentum 0.9; they are
  updated on every call (the authors only call it while training);
- only the off-diagonal distances are normalised and regularised.

The authors keep their "initialised" flag outside the module's state, so a reloaded model
restarts its statistics from the next batch; dmlviz stores it as a buffer, so a resumed run
continues exactly (the only deliberate difference).
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_positive_float
from .distances import off_diagonal, pairwise_distances

#: where the three levels start, in units of the running standard deviation of distances
INITIAL_LEVELS = (-3.0, 0.0, 3.0)


class MDR(nn.Module):
    """The MDR regularizer: ``mdr(embeddings [B, D]) -> scalar``.

    Pairwise distances d are standardised by running statistics, d̂ = (d − μ)/σ, and each pair
    is pulled towards its nearest of three learnable ``levels`` (start −3, 0, 3): the value is
    the mean over the B·(B−1) ordered pairs of min over levels |d̂ − level|.
    Buffers: ``running_mean``, ``running_std`` (0-d), ``initialized`` (bool), saved with the state dict.
    """

    def __init__(self, momentum: float = 0.9) -> None:
        super().__init__()
        self.momentum = check_positive_float("momentum", momentum, allow_zero=True, example=0.9)
        if self.momentum >= 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}; the authors use 0.9")
        self.levels = nn.Parameter(torch.tensor(INITIAL_LEVELS))
        self.register_buffer("running_mean", torch.zeros(()))
        self.register_buffer("running_std", torch.zeros(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The regularizer of a batch of embeddings [B, D] (B ≥ 2); updates the running statistics."""
        if embeddings.ndim != 2 or len(embeddings) < 2:
            raise ValueError(f"MDR needs embeddings of shape (batch >= 2, dim), got {tuple(embeddings.shape)}")
        dist = pairwise_distances(embeddings)
        mean, std = dist.mean().detach(), dist.std().detach()  # over all B² entries, zero diagonal included
        with torch.no_grad():  # torch.where, not an if: no host sync per batch
            first = ~self.initialized
            self.running_mean.copy_(torch.where(first, mean, self.momentum * self.running_mean + (1 - self.momentum) * mean))
            self.running_std.copy_(torch.where(first, std, self.momentum * self.running_std + (1 - self.momentum) * std))
            self.initialized.fill_(True)
        standardised = (off_diagonal(dist) - self.running_mean) / self.running_std
        return (standardised[None, :] - self.levels[:, None]).abs().min(dim=0).values.mean()

    def level_penalty(self) -> torch.Tensor:
        """Σ level², the term ν weighs in the total."""
        return self.levels.pow(2).sum()

    def standardise(self, distances: torch.Tensor) -> torch.Tensor:
        """Distances in the levels' units, (d − running mean) / running std."""
        return (distances - self.running_mean) / self.running_std

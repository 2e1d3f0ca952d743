"""Intra-class Adaptive Augmentation, IAA (Fu et al., IEEE TMM 2022, arXiv 2211.16264): synthetic samples drawn
from each class's Gaussian, with the paper's neighbour correction for classes with few samples.

Official code: darkpromise98/IAA, ``intra.py`` (``Estimate_Covariance``, ``intra_synthetsis``,
``lamda_epoch``) and ``run.py``. As there:

- Every ``every`` epochs, from the epoch after ``start`` (a fraction of the run's epochs; the
  authors start after epoch 30 of 100 and refresh every 2), the whole training set is embedded
  (no gradient) and each class's mean μ_c and diagonal variance Σ_c are blended into running
  estimates with weight w = n/(n + seen), clamped at >= 1 − ``momentum`` (0.2 in ``run.py``):
  Σ ← (1−w)Σ + w·var + w(1−w)(μ − mean)², μ ← (1−w)μ + w·mean. Raw (not normalised) embeddings.
- Each real embedding z_i gets ``num_produce`` (3) copies z_i + sqrt(λ·Σ_{y_i})·ε, ε ~ N(0, I);
  real and synthetic embeddings are then measured (L2-normalised) by the loss. λ = ``lam`` (0.8)
  × 1, 0.9, 0.75, 0.6 once 40 %, 60 %, 80 % of the run's epochs have passed.
- Only real embeddings are anchors; every synthetic one is a candidate positive or negative; an
  anchor's own copies are not its positives (the authors' ``pos_neg_mask_xy``).

Where dmlviz follows the paper, not the released code:

- **Neighbour correction** (paper Sec. III-C), which the released code defines but never calls:
  Σ_c^cr = (1−α_c)Σ_c + α_c[(1−γ)Σ_c^nbr + γΣ_global], α_c = 1/(1 + log(1 + β(n_c − 1))) when
  n_c <= τ, else 0; Σ_c^nbr averages the ``neighbors`` (25) classes nearest by ‖μ_c² − μ_k²‖ with
  weights n_k·exp(−D_m²/2 − D_cv²/2), the distances min-max normalised over the other classes
  (the code's normalisation also counts its 1e12 self-distance, which flattens every weight);
  Σ_global = Σ_k n_k Σ_k / Σ_k n_k. Classes of one sample are never neighbours and add nothing
  to Σ_global. ``correction=False`` gives the released code's behaviour.
- The released ``intra_synthetsis`` takes the square root once more for every copy (copy m uses
  Σ^(1/2^(m+1))); dmlviz uses Σ^(1/2) for every copy, as the paper's N(z, λΣ).

Training-set embeddings are taken in eval mode (the authors' net stays in train mode with its
BatchNorm frozen: the same for their backbones). The estimates are buffers, saved with the
checkpoint, so a resumed run continues with them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._validation import check_positive_float, check_positive_int

#: λ's factors over the run (the authors' ``lamda_epoch``): up to 40 %, 60 %, 80 % of the epochs, then the rest
LAMBDA_STEPS = ((0.4, 1.0), (0.6, 0.9), (0.8, 0.75), (float("inf"), 0.6))


class IntraClassAugmentation(nn.Module):
    """IAA's class statistics and producer: ``estimate(z [N, D], labels [N])`` then ``produce(z [B, D], labels [B], lam)``."""

    def __init__(self, num_classes: int, dim: int, num_produce: int = 3, lam: float = 0.8, start: float = 0.3, every: int = 2,
                 momentum: float = 0.2, correction: bool = True, beta: float = 0.1, gamma: float = 0.1, neighbors: int = 25,
                 tau: int = 40) -> None:
        super().__init__()
        self.num_produce = check_positive_int("iaa_num_produce", num_produce)
        self.lam = check_positive_float("iaa_lambda", lam, example=0.8)
        self.start = check_positive_float("iaa_start", start, allow_zero=True, example=0.3)
        if self.start >= 1:
            raise ValueError(f"iaa_start is the fraction of the run's epochs before augmenting starts, in [0, 1), got {start}")
        self.every = check_positive_int("iaa_every", every)
        self.momentum = check_positive_float("iaa_momentum", momentum, example=0.2)
        if self.momentum > 1:
            raise ValueError(f"iaa_momentum must lie in (0, 1], got {momentum}")
        if correction not in (0, 1, True, False):
            raise ValueError(f"iaa_correction must be True or False (1 or 0), got {correction!r}")
        self.correction = bool(correction)
        self.beta = check_positive_float("iaa_beta", beta, allow_zero=True, example=0.1)
        self.gamma = check_positive_float("iaa_gamma", gamma, allow_zero=True, example=0.1)
        if self.gamma > 1:
            raise ValueError(f"iaa_gamma weighs the global covariance against the neighbours', in [0, 1], got {gamma}")
        self.neighbors = check_positive_int("iaa_neighbors", neighbors)
        self.tau = check_positive_int("iaa_tau", tau)
        self.register_buffer("mean", torch.zeros(num_classes, dim))
        self.register_buffer("variance", torch.zeros(num_classes, dim))  # the running Σ_c (diagonal)
        self.register_buffer("corrected", torch.zeros(num_classes, dim))  # what samples are drawn from
        self.register_buffer("seen", torch.zeros(num_classes))
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))

    # -- the schedule ---------------------------------------------------------------------------
    def start_epoch_of(self, epochs: int) -> int:
        """The last epoch without augmentation (augmenting starts in the epoch after it)."""
        return int(round(self.start * epochs))

    def active(self, epoch: int, epochs: int) -> bool:
        """Whether training epoch ``epoch`` (1..epochs) augments its batches."""
        return epoch > self.start_epoch_of(epochs)

    def due(self, epoch: int, epochs: int) -> bool:
        """Whether the class statistics are re-estimated before training epoch ``epoch`` (or were never estimated)."""
        first = self.start_epoch_of(epochs)
        return self.active(epoch, epochs) and ((epoch - first - 1) % self.every == 0 or not bool(self.ready))

    def lam_at(self, epoch: int, epochs: int) -> float:
        """λ in epoch ``epoch``: ``lam`` times the authors' step factor at epoch / epochs."""
        ratio = epoch / max(1, epochs)
        return self.lam * next(factor for bound, factor in LAMBDA_STEPS if ratio <= bound)

    # -- the statistics -------------------------------------------------------------------------
    @torch.no_grad()
    def estimate(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """Blend the class means and variances of the training set's embeddings [N, D] (labels [N]) into the estimates."""
        z = embeddings.detach().to(self.mean.dtype)
        classes = self.mean.shape[0]
        counts = torch.bincount(labels, minlength=classes).to(z.dtype)  # [C]
        sums = torch.zeros_like(self.mean).index_add_(0, labels, z)
        mean = sums / counts.clamp(min=1)[:, None]
        squares = torch.zeros_like(self.mean).index_add_(0, labels, (z - mean[labels]) ** 2)
        var = squares / counts.clamp(min=1)[:, None]  # biased, as the authors' estimator
        weight = counts / (counts + self.seen)
        weight = torch.nan_to_num(weight, nan=0.0)
        weight = torch.where(counts > 0, weight.clamp(min=1 - self.momentum), torch.zeros_like(weight))[:, None]
        self.variance.copy_(self.variance * (1 - weight) + var * weight + weight * (1 - weight) * (self.mean - mean) ** 2)
        self.mean.copy_(self.mean * (1 - weight) + mean * weight)
        self.seen += counts
        self.corrected.copy_(self._corrected(counts) if self.correction else self.variance)
        self.ready.fill_(True)

    def _corrected(self, counts: torch.Tensor) -> torch.Tensor:
        """Σ^cr [C, D]: each class's variance blended with its neighbours' and the global one, by its sample count ``counts`` [C]."""
        variance, mean_sq = self.variance, self.mean**2
        usable = counts > 1  # a class of one sample has no variance to lend
        if int(usable.sum()) == 0:
            return variance.clone()
        global_var = (variance[usable] * counts[usable, None]).sum(0) / counts[usable].sum()
        alpha = 1.0 / (1.0 + torch.log1p(self.beta * (counts - 1).clamp(min=0)))
        alpha = torch.where(counts <= self.tau, alpha, torch.zeros_like(alpha))
        neighbour = torch.zeros_like(variance)
        rows = torch.arange(len(counts), device=counts.device)
        for start in range(0, len(counts), 1024):  # C × C distances in blocks (SOP: 11k classes)
            block = rows[start : start + 1024]
            allowed = usable[None, :] & (block[:, None] != rows[None, :])  # [b, C]
            k = min(self.neighbors, int(usable.sum()))
            d_mean = _minmax(torch.cdist(mean_sq[block], mean_sq), allowed)
            d_cov = _minmax(torch.cdist(variance[block], variance), allowed)
            far = torch.where(allowed, d_mean, torch.full_like(d_mean, math.inf))
            nearest = torch.topk(far, k=k, dim=1, largest=False).indices  # [b, k]
            valid = allowed.gather(1, nearest)
            w = counts[nearest] * torch.exp(-d_mean.gather(1, nearest) ** 2 / 2 - d_cov.gather(1, nearest) ** 2 / 2) * valid
            neighbour[block] = (w[:, :, None] * variance[nearest]).sum(1) / w.sum(1, keepdim=True).clamp(min=1e-30)
        a = alpha[:, None]
        return (1 - a) * variance + a * ((1 - self.gamma) * neighbour + self.gamma * global_var)

    # -- the synthetic samples ------------------------------------------------------------------
    def produce(self, z: torch.Tensor, labels: torch.Tensor, lam: float, *,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``num_produce`` copies z + sqrt(λΣ)·ε of the batch z [B, D]: (synthetic [n·B, D], their labels [n·B], source rows [n·B]).

        Gradients flow through z into the copies, as in the authors' code (no detach).
        """
        spread = (lam * self.corrected[labels]).sqrt().to(z.dtype)  # [B, D]
        noise = torch.randn((self.num_produce, *z.shape), device=z.device, dtype=z.dtype, generator=generator)
        made = (z[None] + spread[None] * noise).reshape(-1, z.shape[1])
        sources = torch.arange(len(z), device=z.device).repeat(self.num_produce)
        return made, labels.repeat(self.num_produce), sources


def _minmax(d: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Each row of ``d`` [b, C] min-max normalised over its ``allowed`` entries (0 where a row's entries are all equal)."""
    inf = torch.full_like(d, math.inf)
    low = torch.where(allowed, d, inf).min(dim=1, keepdim=True).values
    high = torch.where(allowed, d, -inf).max(dim=1, keepdim=True).values
    span = (high - low).clamp(min=1e-12)
    return torch.where(allowed, (d - low) / span, torch.zeros_like(d))

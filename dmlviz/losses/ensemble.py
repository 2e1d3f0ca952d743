"""An ensemble of losses with learnable weights, WEL (Zabihzadeh et al., arXiv 2107.01130), as the authors' code computes it.

Official code: d-zabihzadeh/DML-Ensemble-of-Losses, ``WEL_DML.py`` (``WEL``). m losses on one
embedding: loss 0 is a label-smoothed softmax classifier, the others are metric losses. With
learnable c_i, weight_i = c_i² + 1/(4m) (a floor of 1/(4m) each), every loss is rescaled by
mean_j L̄_j / L̄_i, L̄ being its running mean over all batches so far, and a penalty pushes the
weights to sum to 1:

    total = Σ_i weight_i · (mean_j L̄_j / L̄_i) · L_i + 100·η·(Σ_i c_i² + m/(4m) − 1)².

c starts at sqrt(prior_i/Σ prior − 1/(4m)). Where dmlviz differs: the authors' classifier reads
the backbone's features before the embedding layer; dmlviz's reads the embedding (the loss sees
nothing else), a linear layer as their ``h_dim = 0``. The running means are buffers (saved with
the checkpoint, no host sync per batch). The authors' multi-head variant (WEDL) needs a model file
missing from their repository and is not built.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_positive_float
from .base import DMLLoss
from .registry import LOSSES, build, register


def smoothed_targets(labels: torch.Tensor, classes: int, smoothing: float) -> torch.Tensor:
    """One-hot targets [B, C] with 1 − ε on the class and ε/(C − 1) elsewhere."""
    target = torch.full((len(labels), classes), smoothing / (classes - 1), device=labels.device)
    return target.scatter_(1, labels[:, None], 1.0 - smoothing)


@register("ensemble")
class Ensemble(DMLLoss):
    """WEL: a smoothed softmax classifier + ``losses`` (comma-separated registry names, default
    "triplet,multisimilarity,proxynca") with learnable weights from ``prior`` (comma-separated, one per
    loss, the classifier first; default "2,1,2,3" as the authors' demo), ``eta`` 100, classifier ``smoothing`` 0.15."""

    name = "ensemble"

    def __init__(self, num_classes: int, embedding_dim: int, losses: str = "triplet,multisimilarity,proxynca",
                 prior: str = "2,1,2,3", eta: float = 100.0, smoothing: float = 0.15) -> None:
        super().__init__(num_classes, embedding_dim)
        names = [n.strip() for n in str(losses).split(",") if n.strip()]
        bad = [n for n in names if n not in LOSSES or n == "ensemble"]
        if not names or bad:
            raise ValueError(f"losses must name registered losses other than 'ensemble', e.g. 'triplet,proxynca'; got {losses!r}")
        try:
            weights = [float(v) for v in str(prior).split(",")]
        except ValueError:
            raise ValueError(f"prior must be comma-separated numbers, one per loss with the classifier first, e.g. '2,1,2'; got {prior!r}") from None
        m = len(names) + 1
        if len(weights) != m or min(weights) <= 0:
            raise ValueError(f"prior needs {m} positive numbers (the classifier, then {names}), got {prior!r}")
        self.floor = 1.0 / (4 * m)
        share = torch.tensor(weights) / sum(weights)
        if bool((share <= self.floor).any()):
            raise ValueError(f"prior {prior!r}: every share must exceed the floor 1/(4m) = {self.floor:.3f}")
        self.components = nn.ModuleList([build(n, num_classes, embedding_dim) for n in names])
        self.classifier = nn.Linear(embedding_dim, num_classes)
        self.coeffs = nn.Parameter(torch.sqrt(share - self.floor))
        self.register_buffer("running", torch.zeros(m))
        self.register_buffer("batches", torch.zeros((), dtype=torch.long))
        self.eta = check_positive_float("eta", eta, allow_zero=True, example=100.0)
        self.smoothing = check_positive_float("smoothing", smoothing, allow_zero=True, example=0.15)
        self.names = ["classifier", *names]
        self.needs_pairs = any(c.needs_pairs for c in self.components)
        self.preferred_m_per_class = max(c.preferred_m_per_class for c in self.components)
        self.hparams = dict(losses=",".join(names), prior=",".join(f"{w:g}" for w in weights), eta=self.eta, smoothing=self.smoothing)

    def set_class_counts(self, counts) -> None:  # noqa: ANN001
        """Every component's hook."""
        for component in self.components:
            component.set_class_counts(counts)

    def weights(self) -> torch.Tensor:
        """The effective weights [m] c_i² + 1/(4m) (classifier first)."""
        return self.coeffs.pow(2) + self.floor

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """One weighted term per loss (named after it) and "weights_penalty"."""
        target = smoothed_targets(labels, self.num_classes, self.smoothing)
        values = [-(target * F.log_softmax(self.classifier(embeddings), dim=1)).sum(dim=1).mean()]
        values += [c.compute(embeddings, labels) for c in self.components]
        values = [v if isinstance(v, torch.Tensor) else sum(v.values()) for v in values]
        current = torch.stack([v.detach() for v in values])
        with torch.no_grad():  # the running mean over every batch so far, as the authors' l_ma
            n = self.batches.to(current.dtype)
            self.running.copy_((current + n * self.running) / (n + 1))
            self.batches.add_(1)
        scale = self.running.mean() / self.running
        w = self.weights()
        parts = {name: w[i] * scale[i] * values[i] for i, name in enumerate(self.names)}
        m = len(self.names)
        parts["weights_penalty"] = 100 * self.eta * (self.coeffs.pow(2).sum() + m * self.floor - 1) ** 2
        return parts

    def centers(self) -> torch.Tensor | None:
        """The centers of the first component that has some (e.g. ProxyNCA's proxies), else None."""
        for component in self.components:
            found = component.centers()
            if found is not None:
                return found
        return None

    def center_parameters(self) -> list[nn.Parameter]:
        """The components' centers and proxies."""
        return [p for c in self.components for p in c.center_parameters()]

    def snapshot_arrays(self) -> dict[str, torch.Tensor]:
        """The effective weights [m] of the losses (classifier first)."""
        return {"ensemble_weights": self.weights().detach()}

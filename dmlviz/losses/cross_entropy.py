"""Cross-entropy as a metric-learning loss (Boudiaf et al., ECCV 2020, "A unifying mutual information view").

As the authors' code (jeromerony/dml_cross_entropy: ``utils/utils.py`` ``SmoothCrossEntropy``,
``models/base_model.py``): a linear classifier **with bias**, weights and bias initialised to
zero, on the unnormalised embeddings; the loss is the KL divergence from the label-smoothed
target (1 − ε on the class, ε/(C−1) on each other class, ε = 0.1) to the softmax, averaged over
the batch. PyTorch's ``label_smoothing`` spreads ε/C over every class instead (a different
target); dmlviz follows the authors. The classifier's rows are half-space normals, not
positions: the map draws their directions; the paper's "tightness" term is the distance to class
means, which the map can show as well (colour by class).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_positive_float, check_positive_int
from .base import DMLLoss
from .registry import register


@register("crossentropy")
class CrossEntropy(DMLLoss):
    """Label-smoothed cross-entropy of a zero-initialised linear classifier with bias (``smoothing`` ε 0.1)."""

    name = "crossentropy"
    embedding_scale = "raw"

    def __init__(self, num_classes: int, embedding_dim: int, smoothing: float = 0.1) -> None:
        super().__init__(check_positive_int("num_classes", num_classes, minimum=2), check_positive_int("embedding_dim", embedding_dim))
        self.smoothing = check_positive_float("smoothing", smoothing, allow_zero=True, example=0.1)
        if self.smoothing >= 1:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}; the authors use 0.1")
        self.classifier = nn.Linear(embedding_dim, num_classes)
        nn.init.zeros_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)
        self.hparams = dict(smoothing=self.smoothing)

    def measure(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The raw embeddings: the classifier sees them unnormalised."""
        return embeddings

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """KL(smoothed one-hot ‖ softmax(W x + b)), mean over the batch."""
        logits = self.classifier(embeddings)
        c, eps = self.num_classes, self.smoothing
        target = torch.full_like(logits, eps / (c - 1)).scatter_(1, labels[:, None], 1 - eps)
        # KL(t ‖ p) = cross-entropy(t, p) − entropy(t); the entropy is a constant (one fused kernel instead of kl_div's)
        entropy = -((1 - eps) * math.log(1 - eps) + (eps * math.log(eps / (c - 1)) if eps > 0 else 0.0))
        return {"loss": F.cross_entropy(logits, target) - entropy}

    def centers(self) -> torch.Tensor | None:
        """The classifier's rows as unit directions [C, 1, D]; None while a row is still zero (no direction yet:
        at initialisation, so epoch 0 shows class means)."""
        weight = self.classifier.weight.detach()
        if bool((weight.norm(dim=1) == 0).any()):
            return None
        return F.normalize(weight, dim=1).unsqueeze(1)

    def center_parameters(self) -> list[nn.Parameter]:
        """The classifier's weight rows (its bias trains with the loss group)."""
        return [self.classifier.weight]

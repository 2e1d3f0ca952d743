"""Margin loss with distance-weighted sampling (Wu, Manmatha, Smola, Krähenbühl; ICCV 2017).

Loss: pytorch-metric-learning's ``MarginLoss`` — [α + y(D − β_c)]₊ on unit vectors, a learnable
boundary β per class, summed over pairs and divided by the count of non-zero terms, as in the
authors' MXNet example (``example/gluon/embedding_learning/model.py``). Triplets: dmlviz's
:func:`~dmlviz.losses.sampling.distance_weighted_triplets` (every positive pair once, one weighted
negative each, uniform fallback), as the authors draw them; PML's ``DistanceWeightedMiner`` draws
random positives with replacement instead. The authors train β with its own SGD (lr 0.1); here it
trains in the loss's Adam group at ``lr``.
"""

from __future__ import annotations

import torch
from pytorch_metric_learning import losses as pml_losses

from .._validation import check_positive_float, check_positive_int
from .pml_adapters import _PMLLoss
from .registry import register
from .sampling import distance_weighted_triplets


@register("margin")
class Margin(_PMLLoss):
    """Margin loss: ``margin`` α 0.2, ``beta`` β₀ 1.2 learned per class, ``nu`` ν 0 (weight of Σβ),
    distance-weighted sampling with ``cutoff`` 0.5 and ``nonzero_loss_cutoff`` 1.4 (the paper's)."""

    name = "margin"
    needs_pairs = True

    def __init__(
        self, num_classes: int, embedding_dim: int, margin: float = 0.2, beta: float = 1.2, nu: float = 0.0,
        cutoff: float = 0.5, nonzero_loss_cutoff: float = 1.4,
    ) -> None:
        hparams = dict(
            margin=check_positive_float("margin", margin, example=0.2),
            beta=check_positive_float("beta", beta, example=1.2),
            nu=check_positive_float("nu", nu, allow_zero=True, example=0.0),
            cutoff=check_positive_float("cutoff", cutoff, example=0.5),
            nonzero_loss_cutoff=check_positive_float("nonzero_loss_cutoff", nonzero_loss_cutoff, example=1.4),
        )
        loss = pml_losses.MarginLoss(margin=hparams["margin"], nu=hparams["nu"], beta=hparams["beta"], learn_beta=True,
                                     num_classes=check_positive_int("num_classes", num_classes))
        super().__init__(num_classes, embedding_dim, loss)
        self.hparams = hparams

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """The margin loss on distance-weighted triplets."""
        triplets = distance_weighted_triplets(
            embeddings, labels, cutoff=self.hparams["cutoff"], nonzero_loss_cutoff=self.hparams["nonzero_loss_cutoff"]
        )
        return {"loss": self.loss(embeddings, labels, triplets)}

    def snapshot_arrays(self) -> dict[str, torch.Tensor]:
        """The learned boundary β [C] of each training class."""
        return {"margin_beta": self.loss.beta.detach()}

    def center_parameters(self) -> list[torch.nn.Parameter]:
        """No centers (β trains in the loss group)."""
        return []

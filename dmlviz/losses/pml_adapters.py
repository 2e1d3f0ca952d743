"""Adapters to pytorch-metric-learning's losses, with proxies exposed as centers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from .._validation import check_choice, check_positive_float, check_positive_int
from .base import DMLLoss
from .distances import mean_distance_scaled
from .registry import register
from .sampling import distance_weighted_triplets


class _PMLLoss(DMLLoss):
    """Wraps a pytorch-metric-learning loss (and optional miner) behind the DMLLoss interface."""

    def __init__(self, num_classes: int, embedding_dim: int, loss: torch.nn.Module, miner: torch.nn.Module | None = None) -> None:
        super().__init__(num_classes, check_positive_int("embedding_dim", embedding_dim))
        self.loss = loss
        self.miner = miner

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """The wrapped loss on the (mined) batch."""
        indices = self.miner(embeddings, labels) if self.miner is not None else None
        return {"loss": self.loss(embeddings, labels, indices)}

    def reference_indices(self, anchors: torch.Tensor, labels: torch.Tensor, reference: torch.Tensor, reference_labels: torch.Tensor,
                          reference_sources: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Pairs (or triplets) of anchors and reference rows, mined as the loss mines, without a row's own source anchor."""
        if self.miner is not None:
            indices = self.miner(anchors, labels, reference, reference_labels)
        else:
            indices = lmu.get_all_pairs_indices(labels, reference_labels)
        return drop_own_sources(indices, reference_sources)

    def compute_reference(self, anchors: torch.Tensor, labels: torch.Tensor, reference: torch.Tensor, reference_labels: torch.Tensor,
                          reference_sources: torch.Tensor) -> dict[str, torch.Tensor]:
        """The wrapped loss of anchors [B, D] against reference rows [R, D] (PML's ``ref_emb``), own sources left out."""
        indices = self.reference_indices(anchors, labels, reference, reference_labels, reference_sources)
        return {"loss": self.loss(anchors, labels, indices, reference, reference_labels)}


def drop_own_sources(indices: tuple[torch.Tensor, ...], sources: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """PML's pairs (a1, p, a2, n) or triplets (a, p, n) without positives p whose source row ``sources[p]`` is the anchor itself."""
    if len(indices) == 4:
        a1, p, a2, n = indices
        keep = sources[p] != a1
        return a1[keep], p[keep], a2, n
    a, p, n = indices
    keep = sources[p] != a
    return a[keep], p[keep], n[keep]


class _ProxyLoss(_PMLLoss):
    """A proxy loss: one proxy per class, shown as centers [C, 1, D]."""

    def centers(self) -> torch.Tensor:
        """Unit proxies [C, 1, D]."""
        return F.normalize(self.loss.proxies.detach(), dim=1).unsqueeze(1)


@register("triplet")
class Triplet(_PMLLoss):
    """Triplet margin loss max(0, d(a,p) − d(a,n) + margin) on triplets chosen in the batch.

    ``mining``: "semihard" (default), "hard" (batch-hard), "all" (pytorch-metric-learning's miners
    and loss, averaged over the non-zero triplets), or "distance": distance-weighted sampling
    (Wu et al. 2017) as in the MDR authors' code: every positive pair once with one negative
    drawn by weight (``cutoff`` 0.5, ``nonzero_loss_cutoff`` 1.4), torch's triplet loss averaged
    over all those triplets.
    ``scale``: "unit" measures Euclidean distances between L2-normalised embeddings; "mean_distance"
    divides the batch by its mean pairwise distance instead (MDR's "learning without L2 norm").
    The MDR paper's setting: margin=0.2, mining="distance", scale="mean_distance", regularizer="mdr".
    """

    name = "triplet"
    needs_pairs = True
    supports_reference = True  # with the PML miners (not mining="distance")

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        margin: float = 0.1,
        mining: str = "semihard",
        scale: str = "unit",
        cutoff: float = 0.5,
        nonzero_loss_cutoff: float = 1.4,
    ) -> None:
        margin = check_positive_float("margin", margin, example=0.1)
        check_choice("mining", mining, ("semihard", "hard", "all", "distance"))
        check_choice("scale", scale, ("unit", "mean_distance"))
        cutoff = check_positive_float("cutoff", cutoff, example=0.5)
        nonzero_loss_cutoff = check_positive_float("nonzero_loss_cutoff", nonzero_loss_cutoff, example=1.4)
        distance = LpDistance(normalize_embeddings=False)  # compute() hands the loss measured embeddings
        if mining == "hard":
            miner = pml_miners.BatchHardMiner(distance=distance)
        elif mining == "distance":
            miner = None
        else:
            miner = pml_miners.TripletMarginMiner(margin=margin, type_of_triplets=mining, distance=distance)
        super().__init__(num_classes, embedding_dim, pml_losses.TripletMarginLoss(margin=margin, distance=distance), miner)
        self.margin, self.mining, self.embedding_scale = margin, mining, scale
        self.cutoff, self.nonzero_loss_cutoff = cutoff, nonzero_loss_cutoff
        self.hparams = dict(margin=margin, mining=mining, scale=scale, cutoff=cutoff, nonzero_loss_cutoff=nonzero_loss_cutoff)

    def measure(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Unit vectors, or the batch divided by its mean pairwise distance (``scale="mean_distance"``)."""
        return mean_distance_scaled(embeddings) if self.embedding_scale == "mean_distance" else F.normalize(embeddings, dim=1)

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """The triplet loss of the batch, measured as ``scale`` says."""
        x = self.measure(embeddings)
        if self.mining != "distance":
            return {"loss": self.loss(x, labels, self.miner(x, labels))}
        anchors, positives, negatives = distance_weighted_triplets(
            x, labels, cutoff=self.cutoff, nonzero_loss_cutoff=self.nonzero_loss_cutoff
        )
        return {"loss": F.triplet_margin_loss(x[anchors], x[positives], x[negatives], margin=self.margin)}

    def compute_reference(self, anchors: torch.Tensor, labels: torch.Tensor, reference: torch.Tensor, reference_labels: torch.Tensor,
                          reference_sources: torch.Tensor) -> dict[str, torch.Tensor]:
        """Triplets with anchors from the batch and positives / negatives from the reference rows (unit scale, PML miners)."""
        if self.mining == "distance" or self.embedding_scale != "unit":
            raise ValueError("triplet with reference embeddings (augmenter='iaa') needs mining='semihard', 'hard' or 'all' and scale='unit', "
                             f"got mining={self.mining!r}, scale={self.embedding_scale!r}")
        return super().compute_reference(F.normalize(anchors, dim=1), labels, F.normalize(reference, dim=1), reference_labels, reference_sources)

    def center_parameters(self) -> list[torch.nn.Parameter]:
        """No centers."""
        return []


@register("multisimilarity")
class MultiSimilarity(_PMLLoss):
    """Multi-Similarity loss (Wang et al., 2019) with its miner; the paper's alpha=2, beta=50, base=0.5, epsilon=0.1."""

    name = "multisimilarity"
    needs_pairs = True
    supports_reference = True

    def __init__(
        self, num_classes: int, embedding_dim: int, alpha: float = 2.0, beta: float = 50.0, base: float = 0.5, epsilon: float = 0.1
    ) -> None:
        hparams = dict(
            alpha=check_positive_float("alpha", alpha, example=2.0),
            beta=check_positive_float("beta", beta, example=50.0),
            base=check_positive_float("base", base, allow_zero=True, example=0.5),
            epsilon=check_positive_float("epsilon", epsilon, allow_zero=True, example=0.1),
        )
        super().__init__(
            num_classes,
            embedding_dim,
            pml_losses.MultiSimilarityLoss(alpha=hparams["alpha"], beta=hparams["beta"], base=hparams["base"]),
            pml_miners.MultiSimilarityMiner(epsilon=hparams["epsilon"]),
        )
        self.hparams = hparams

    def center_parameters(self) -> list[torch.nn.Parameter]:
        """No centers."""
        return []


@register("circle")
class Circle(_PMLLoss):
    """Circle loss (Sun et al., 2020): m=0.4, gamma=80, the fine-grained retrieval setting."""

    name = "circle"
    needs_pairs = True
    supports_reference = True

    def __init__(self, num_classes: int, embedding_dim: int, m: float = 0.4, gamma: float = 80.0) -> None:
        m, gamma = check_positive_float("m", m, example=0.4), check_positive_float("gamma", gamma, example=80.0)
        super().__init__(num_classes, embedding_dim, pml_losses.CircleLoss(m=m, gamma=gamma))
        self.hparams = dict(m=m, gamma=gamma)

    def center_parameters(self) -> list[torch.nn.Parameter]:
        """No centers."""
        return []


@register("proxyanchor")
class ProxyAnchor(_ProxyLoss):
    """Proxy-Anchor (Kim et al., 2020): margin=0.1, alpha=32, the authors' defaults."""

    name = "proxyanchor"

    def __init__(self, num_classes: int, embedding_dim: int, margin: float = 0.1, alpha: float = 32.0) -> None:
        margin, alpha = check_positive_float("margin", margin, example=0.1), check_positive_float("alpha", alpha, example=32.0)
        super().__init__(
            check_positive_int("num_classes", num_classes),
            embedding_dim,
            pml_losses.ProxyAnchorLoss(num_classes, embedding_dim, margin=margin, alpha=alpha),
        )
        self.hparams = dict(margin=margin, alpha=alpha)

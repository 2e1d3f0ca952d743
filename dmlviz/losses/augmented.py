"""A loss that also sees synthetic embeddings made from each batch: ``Augmented(multisimilarity, "das")``."""

from __future__ import annotations

from typing import Any

import torch

from .._validation import check_choice
from .base import DMLLoss
from .das import DenselyAnchoredSampling

#: augmenters by name and the loss parameters that belong to them (with defaults)
AUGMENTERS: dict[str, dict[str, float]] = {
    "das": {"das_num_produce": 3, "das_num_scale": 8, "das_scale_low": 0.99, "das_scale_high": 1.01, "das_bank_size": 10, "das_shift": 0.01},
}
#: at most this many probe samples get synthetic copies recorded per epoch (for the map)
RECORDED_SOURCES = 300


class Augmented(DMLLoss):
    """``base`` on the batch plus DAS's synthetic embeddings (as ``base`` measures embeddings), each labelled as its source.

    Terms and centers are the base loss's. :meth:`synthetic_points` makes synthetic copies of given
    samples from the current state (without changing it), which the recorder stores each epoch
    for the map.
    """

    def __init__(self, base: DMLLoss, augmenter: str = "das", **params: Any) -> None:
        if not isinstance(base, DMLLoss):
            raise TypeError(f"base must be a DMLLoss, got {type(base).__name__}")
        check_choice("augmenter", augmenter, tuple(AUGMENTERS))
        super().__init__(base.num_classes, base.embedding_dim)
        self.base, self.augmenter = base, augmenter
        names = {k.removeprefix("das_"): v for k, v in {**AUGMENTERS["das"], **params}.items()}
        self.das = DenselyAnchoredSampling(base.num_classes, base.embedding_dim, **names)
        self.needs_pairs, self.preferred_m_per_class = base.needs_pairs, base.preferred_m_per_class
        self.nan_hint, self.embedding_scale = base.nan_hint, base.embedding_scale
        self.hparams = {**base.hparams, **{f"das_{k}": getattr(self.das, k) for k in
                                           ("num_produce", "num_scale", "scale_low", "scale_high", "bank_size", "shift")}}

    @property
    def name(self) -> str:  # type: ignore[override]
        """The base loss's name and the augmenter's, e.g. "multisimilarity+das"."""
        return f"{self.base.name}+{self.augmenter}"

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """The base loss on the batch and its synthetic copies."""
        x = self.base.measure(embeddings)
        self.das.update(x.detach(), labels)
        produced, produced_labels = self.das.produce(x, labels, normalize=self.embedding_scale == "unit")
        return self.base.compute(torch.cat([x, produced]), torch.cat([labels, produced_labels]))

    @torch.no_grad()
    def synthetic_points(self, embeddings: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Synthetic copies [n·S, D] of the samples ``embeddings`` [S, D] (training-class ``labels`` [S]) and their source rows [n·S]."""
        generator = torch.Generator(device=embeddings.device).manual_seed(seed)
        x = self.base.measure(embeddings)
        produced, _ = self.das.produce(x, labels, normalize=self.embedding_scale == "unit", generator=generator)
        sources = torch.arange(len(labels), device=embeddings.device).repeat(self.das.num_produce)
        return produced, sources

    def measure(self, embeddings: torch.Tensor) -> torch.Tensor:
        """As the base loss measures them."""
        return self.base.measure(embeddings)

    def centers(self) -> torch.Tensor | None:
        """The base loss's centers."""
        return self.base.centers()

    def center_parameters(self) -> list[torch.nn.Parameter]:
        """The base loss's."""
        return self.base.center_parameters()

    def snapshot_arrays(self) -> dict[str, torch.Tensor]:
        """The base loss's."""
        return self.base.snapshot_arrays()

    def set_class_counts(self, counts: Any) -> None:
        """The base loss's hook."""
        self.base.set_class_counts(counts)

    def start_epoch(self, epoch: int, epochs: int, model: torch.nn.Module) -> None:
        """The base loss's hook."""
        self.base.start_epoch(epoch, epochs, model)


def split_augmenter_params(augmenter: str | None, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(other parameters, augmenter parameters) of ``params``; an augmenter parameter without its augmenter is an error."""
    own = {name for names in AUGMENTERS.values() for name in names}
    mine = set(AUGMENTERS[augmenter]) if augmenter is not None else set()
    stray = sorted((set(params) & own) - mine)
    if stray:
        raise ValueError(f"{stray} are parameters of augmenter='das'; pass augmenter='das' (--augmenter das) to use them")
    return {k: v for k, v in params.items() if k not in mine}, {k: v for k, v in params.items() if k in mine}

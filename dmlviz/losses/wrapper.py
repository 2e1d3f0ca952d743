"""The base of losses built around another loss (a regularizer or an augmenter added to it): every hook goes to the base loss."""

from __future__ import annotations

from typing import Any

import torch

from .base import DMLLoss


class WrappedLoss(DMLLoss):
    """A DMLLoss around ``base``: its name, settings, centers and trainer hooks are the base loss's unless a subclass adds to them."""

    def __init__(self, base: DMLLoss) -> None:
        if not isinstance(base, DMLLoss):
            raise TypeError(f"base must be a DMLLoss, got {type(base).__name__}")
        super().__init__(base.num_classes, base.embedding_dim)
        self.base = base
        self.needs_pairs, self.preferred_m_per_class = base.needs_pairs, base.preferred_m_per_class
        self.nan_hint, self.embedding_scale = base.nan_hint, base.embedding_scale
        self.uses_teacher = base.uses_teacher
        self.hparams = dict(base.hparams)

    def measure(self, embeddings: torch.Tensor) -> torch.Tensor:
        """As the base loss measures them."""
        return self.base.measure(embeddings)

    def centers(self) -> torch.Tensor | None:
        """The base loss's centers."""
        return self.base.centers()

    def center_parameters(self) -> list[torch.nn.Parameter]:
        """The base loss's centers or proxies."""
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

    def synthetic_points(self, embeddings: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The base loss's."""
        return self.base.synthetic_points(embeddings, labels, seed)

    def wants_training_embeddings(self, epoch: int, epochs: int) -> bool:
        """The base loss's hook."""
        return self.base.wants_training_embeddings(epoch, epochs)

    def set_training_embeddings(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """The base loss's hook."""
        self.base.set_training_embeddings(embeddings, labels)

    def teacher_embed(self, inputs: torch.Tensor) -> torch.Tensor | None:
        """The base loss's."""
        return self.base.teacher_embed(inputs)

    def set_teacher_batch(self, embeddings: torch.Tensor | None) -> None:
        """The base loss's hook."""
        self.base.set_teacher_batch(embeddings)

"""The base class every dmlviz loss shares: a scalar loss, its terms, and its centers."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn


class DMLLoss(nn.Module):
    """A metric-learning loss: ``loss(embeddings [B, D], labels [B]) -> scalar``.

    After each call, ``terms`` holds the named parts of the last value (floats), e.g.
    ``{"classification": ..., "regularizer": ...}``, and ``term_tensors`` the same as detached
    scalar tensors (reading them costs no host sync, which the GPU training loop relies on). ``centers()`` returns unit vectors
    [C, K, D] for losses that learn centers or proxies, ``None`` for pair losses.
    Subclasses implement :meth:`compute`, returning a dict of named terms whose sum is the loss,
    and record every constructor parameter but ``num_classes`` and ``embedding_dim`` in
    ``hparams`` (plain numbers and strings), so that ``type(loss)(C, D, **loss.hparams)``
    rebuilds the same loss: the trainer stores them in run.json and resumes from them.
    """

    name: ClassVar[str] = "loss"
    #: how :meth:`measure` sees embeddings: "unit" (L2-normalised), "mean_distance" (divided by the batch's mean distance), "ball" (into the unit ball) or "raw"
    embedding_scale: str = "unit"
    #: True for losses built on pairs in the batch: they need two classes and a positive pair.
    needs_pairs: ClassVar[bool] = False
    #: samples of each class in a batch when the trainer chooses m_per_class (pair losses)
    preferred_m_per_class: ClassVar[int] = 4
    #: Advice shown when the loss turns NaN.
    nan_hint: ClassVar[str] = "lower the learning rate"

    def __init__(self, num_classes: int, embedding_dim: int) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.embedding_dim = int(embedding_dim)
        self.term_tensors: dict[str, torch.Tensor] = {}
        self.hparams: dict[str, int | float | str] = {}

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, *, check: bool = True) -> torch.Tensor:
        """The loss of a batch: embeddings [B, D], labels [B] in 0..C-1 → scalar tensor.

        ``check=False`` skips the batch checks (they read labels on the host, one sync each):
        for callers whose batches are valid by construction, such as dmlviz's trainer.
        """
        if check:
            self._check_batch(embeddings, labels)
        parts = self.compute(embeddings, labels)
        values = iter(parts.values())
        total = next(values)
        for value in values:  # not sum(): that adds a 0 first, one more op per call
            total = total + value
        self.term_tensors = {name: value.detach() for name, value in parts.items()} if len(parts) > 1 else {}
        return total

    @property
    def terms(self) -> dict[str, float]:
        """The named terms of the last value as floats (empty for a loss of one term)."""
        return {name: float(value) for name, value in self.term_tensors.items()}

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named scalar terms of the loss; their sum is the loss."""
        raise NotImplementedError

    def measure(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The embeddings [B, D] as the loss measures them: unit vectors for a cosine loss (the default).

        A regularizer added to the loss (e.g. MDR) acts on these, and the run records
        ``embedding_scale`` so that views measure distances in the same space.
        """
        return F.normalize(embeddings, dim=1)

    def set_class_counts(self, counts: Any) -> None:
        """Called by the trainer once with the training samples per class [C] (e.g. SOPRC's prior); no-op by default."""

    def start_epoch(self, epoch: int, epochs: int, model: nn.Module) -> None:
        """Called by the trainer before training epoch ``epoch`` (1..``epochs``) with the model as it is then; no-op by default."""

    #: True for a loss that also needs a frozen teacher's embeddings of each batch (see :meth:`teacher_embed`)
    uses_teacher: bool = False

    def teacher_embed(self, inputs: torch.Tensor) -> torch.Tensor | None:
        """The teacher's embeddings [B, D] of a batch's inputs (no gradient), for losses with ``uses_teacher``; None otherwise."""
        return None

    def set_teacher_batch(self, embeddings: torch.Tensor | None) -> None:
        """Hand the loss the teacher's embeddings [B, D] of the batch it is about to see (``uses_teacher`` losses)."""

    def synthetic_points(self, embeddings: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Synthetic embeddings the loss would make from these samples [S, D] (training-class labels [S]) and their
        source rows, for losses that augment their batches (DAS); None for the others."""
        return None

    def wants_training_embeddings(self, epoch: int, epochs: int) -> bool:
        """Whether the loss needs the whole training set's embeddings before training epoch ``epoch`` (IAA's class statistics)."""
        return False

    def set_training_embeddings(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """Hand the loss the training set's embeddings [N, D] (raw model outputs, eval mode) and training-class labels [N]."""

    #: True for a pair loss that can take anchors from the batch and positives / negatives from a reference set
    supports_reference: ClassVar[bool] = False

    def compute_reference(self, anchors: torch.Tensor, labels: torch.Tensor, reference: torch.Tensor, reference_labels: torch.Tensor,
                          reference_sources: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named terms with anchors [B, D] (labels [B]) against ``reference`` [R, D] (labels [R]); a reference row j is
        never paired with anchor ``reference_sources[j]`` (itself or its own synthetic copies). For ``supports_reference`` losses."""
        raise NotImplementedError(f"loss {self.name!r} does not take reference embeddings")

    def snapshot_arrays(self) -> dict[str, torch.Tensor]:
        """Extra state recorded in each epoch's snapshot (e.g. MDR's levels), detached; empty by default."""
        return {}

    def centers(self) -> torch.Tensor | None:
        """Unit-norm centers [C, K, D] (K per class), or None for a loss without centers."""
        return None

    def center_parameters(self) -> list[nn.Parameter]:
        """Parameters that hold centers or proxies (trained with their own learning rate)."""
        return list(self.parameters())

    def _check_batch(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embedding_dim:
            raise ValueError(
                f"embeddings must have shape (batch, {self.embedding_dim}), got {tuple(embeddings.shape)}"
            )
        if labels.ndim != 1 or labels.shape[0] != embeddings.shape[0]:
            raise ValueError(f"labels must have shape ({embeddings.shape[0]},), got {tuple(labels.shape)}")
        if self.needs_pairs:
            classes, counts = torch.unique(labels, return_counts=True)
            if len(classes) < 2 or int(counts.max()) < 2:
                what = "one class" if len(classes) < 2 else "no two samples of the same class"
                raise ValueError(
                    f"loss {self.name!r} compares pairs in a batch, but this batch of {len(labels)} has {what}; "
                    "it needs at least two classes and a positive pair: use a larger batch_size or "
                    "m_per_class >= 2 (the trainer's default for pair losses)"
                )
        elif self.num_classes and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(
                f"labels must lie in 0..{self.num_classes - 1} for loss {self.name!r}, "
                f"got {int(labels.min())}..{int(labels.max())}"
            )

"""A loss that also sees synthetic embeddings made from each batch: ``Augmented(multisimilarity, "das")`` or ``"iaa"``."""

from __future__ import annotations

from typing import Any

import torch

from .._validation import check_choice
from .base import DMLLoss
from .das import DenselyAnchoredSampling
from .iaa import IntraClassAugmentation
from .wrapper import WrappedLoss

#: augmenters by name and the loss parameters that belong to them (with defaults)
AUGMENTERS: dict[str, dict[str, float | bool]] = {
    "das": {"das_num_produce": 3, "das_num_scale": 8, "das_scale_low": 0.99, "das_scale_high": 1.01, "das_bank_size": 10, "das_shift": 0.01},
    "iaa": {"iaa_num_produce": 3, "iaa_lambda": 0.8, "iaa_start": 0.3, "iaa_every": 2, "iaa_momentum": 0.2, "iaa_correction": True,
            "iaa_beta": 0.1, "iaa_gamma": 0.1, "iaa_neighbors": 25, "iaa_tau": 40},
}
#: the losses IAA can feed (only real samples are anchors, so the loss must take reference embeddings)
IAA_LOSSES = ("multisimilarity", "contrastive", "circle", "triplet")
#: at most this many probe samples get synthetic copies recorded per epoch (for the map)
RECORDED_SOURCES = 300


class Augmented(WrappedLoss):
    """``base`` on the batch plus synthetic embeddings made from it, each labelled as its source.

    ``"das"`` (:mod:`dmlviz.losses.das`): DAS's copies of the measured batch join it, every one an anchor.
    ``"iaa"`` (:mod:`dmlviz.losses.iaa`): copies drawn from each class's Gaussian (estimated on the
    whole training set, which the trainer hands over through :meth:`set_training_embeddings`) join
    the reference set of a pair loss; only real samples are anchors and an anchor's own copies are
    not its positives. Before IAA's start epoch the base loss sees the plain batch.
    Terms and centers are the base loss's. :meth:`synthetic_points` makes synthetic copies of given
    samples from the current state (without changing it), which the recorder stores each epoch
    for the map.
    """

    def __init__(self, base: DMLLoss, augmenter: str = "das", **params: Any) -> None:
        check_choice("augmenter", augmenter, tuple(AUGMENTERS))
        super().__init__(base)
        self.augmenter = augmenter
        unknown = sorted(set(params) - set(AUGMENTERS[augmenter]))
        if unknown:
            raise TypeError(f"augmenter {augmenter!r} does not take {unknown}; it takes {sorted(AUGMENTERS[augmenter])}")
        given = {**AUGMENTERS[augmenter], **params}
        if augmenter == "das":
            self.das = DenselyAnchoredSampling(base.num_classes, base.embedding_dim, **{k.removeprefix("das_"): v for k, v in given.items()})
            self.hparams = {**base.hparams, **{f"das_{k}": getattr(self.das, k) for k in
                                               ("num_produce", "num_scale", "scale_low", "scale_high", "bank_size", "shift")}}
        else:
            if not getattr(base, "supports_reference", False):
                raise ValueError(
                    f"augmenter 'iaa' feeds a pair loss whose anchors are the real samples only, and loss {base.name!r} does not take "
                    f"reference embeddings; use one of {', '.join(IAA_LOSSES)} (the paper's: multisimilarity), or augmenter='das'"
                )
            names = {k.removeprefix("iaa_"): v for k, v in given.items()}
            names["lam"] = names.pop("lambda")
            self.iaa = IntraClassAugmentation(base.num_classes, base.embedding_dim, **names)
            self.hparams = {**base.hparams, **{f"iaa_{k}": getattr(self.iaa, k) for k in
                                               ("num_produce", "start", "every", "momentum", "correction", "beta", "gamma", "neighbors", "tau")},
                            "iaa_lambda": self.iaa.lam}
            self._epoch: tuple[int, int] | None = None  # (epoch, epochs) from the trainer; None outside it
            self._on = False  # in the trainer: whether this epoch augments (read once per epoch, not per batch)

    @property
    def name(self) -> str:  # type: ignore[override]
        """The base loss's name and the augmenter's, e.g. "multisimilarity+das"."""
        return f"{self.base.name}+{self.augmenter}"

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """The base loss on the batch and its synthetic copies."""
        if self.augmenter == "iaa":
            return self._compute_iaa(embeddings, labels)
        x = self.base.measure(embeddings)
        self.das.update(x.detach(), labels)
        produced, produced_labels = self.das.produce(x, labels, normalize=self.embedding_scale == "unit")
        return self.base.compute(torch.cat([x, produced]), torch.cat([labels, produced_labels]))

    def _iaa_on(self) -> bool:
        """Whether IAA augments now: its statistics exist and (in the trainer) the epoch is past its start."""
        return bool(self.iaa.ready) if self._epoch is None else self._on

    def _compute_iaa(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self._iaa_on():
            return self.base.compute(embeddings, labels)
        lam = self.iaa.lam if self._epoch is None else self.iaa.lam_at(*self._epoch)
        made, made_labels, sources = self.iaa.produce(embeddings, labels, lam)
        measured = self.base.measure(torch.cat([embeddings, made]))
        rows = torch.arange(len(labels), device=labels.device)
        return self.base.compute_reference(measured[: len(labels)], labels, measured, torch.cat([labels, made_labels]), torch.cat([rows, sources]))

    @torch.no_grad()
    def synthetic_points(self, embeddings: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Synthetic copies [n·S, D] of the samples ``embeddings`` [S, D] (training-class ``labels`` [S]) and their source rows [n·S]
        (None while IAA does not augment yet)."""
        generator = torch.Generator(device=embeddings.device).manual_seed(seed)
        if self.augmenter == "iaa":
            if not self._iaa_on():
                return None
            lam = self.iaa.lam if self._epoch is None else self.iaa.lam_at(*self._epoch)
            made, _, sources = self.iaa.produce(embeddings, labels, lam, generator=generator)
            return self.base.measure(made), sources
        x = self.base.measure(embeddings)
        produced, _ = self.das.produce(x, labels, normalize=self.embedding_scale == "unit", generator=generator)
        sources = torch.arange(len(labels), device=embeddings.device).repeat(self.das.num_produce)
        return produced, sources

    def wants_training_embeddings(self, epoch: int, epochs: int) -> bool:
        """IAA: whether its class statistics are due before training epoch ``epoch``."""
        return (self.augmenter == "iaa" and self.iaa.due(epoch, epochs)) or self.base.wants_training_embeddings(epoch, epochs)

    def set_training_embeddings(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """IAA: blend the class statistics of the training set's embeddings [N, D] (training-class labels [N]) in."""
        if self.augmenter == "iaa":
            self.iaa.estimate(embeddings, labels)
            self._on = self._epoch is None or self.iaa.active(*self._epoch)
        self.base.set_training_embeddings(embeddings, labels)

    def start_epoch(self, epoch: int, epochs: int, model: torch.nn.Module) -> None:
        """The base loss's hook; IAA notes the epoch (its start, λ's schedule)."""
        self.base.start_epoch(epoch, epochs, model)
        if self.augmenter == "iaa":
            self._epoch = (epoch, epochs)
            self._on = bool(self.iaa.ready) and self.iaa.active(epoch, epochs)


def split_augmenter_params(augmenter: str | None, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(other parameters, augmenter parameters) of ``params``; an augmenter parameter without its augmenter is an error."""
    own = {name for names in AUGMENTERS.values() for name in names}
    mine = set(AUGMENTERS[augmenter]) if augmenter in AUGMENTERS else set()
    stray = sorted((set(params) & own) - mine)
    if stray:
        owner = next(name for name, names in AUGMENTERS.items() if stray[0] in names)
        raise ValueError(f"{stray} are parameters of augmenter={owner!r}; pass augmenter={owner!r} (--augmenter {owner}) to use them")
    return {k: v for k, v in params.items() if k not in mine}, {k: v for k, v in params.items() if k in mine}

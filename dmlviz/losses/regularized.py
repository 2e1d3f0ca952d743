"""A loss plus a regularizer on its embeddings: ``Regularized(triplet, "mdr")`` = triplet + λ·MDR + ν·Σ level²,
``Regularized(loss, "lsd")`` = loss + listwise self-distillation from the previous epoch's model."""

from __future__ import annotations

from typing import Any

import torch

from .._validation import check_choice, check_positive_float
from .base import DMLLoss
from .lsd import ListwiseDistillation
from .mdr import MDR
from .wrapper import WrappedLoss

#: regularizers by name and the loss parameters that belong to them (with defaults)
REGULARIZERS: dict[str, dict[str, float | None]] = {
    "mdr": {"lambda_mdr": 0.6, "nu_mdr": 0.01, "mdr_momentum": 0.9},
    "lsd": {"lsd_alpha": 200.0, "lsd_tau": 1.0, "lsd_epochs": None},
}


class Regularized(WrappedLoss):
    """``base`` loss + a regularizer on the embeddings as ``base`` measures them (:meth:`DMLLoss.measure`).

    ``"mdr"``: total = base + ``lambda_mdr``·MDR + ``nu_mdr``·Σ level² (the MDR authors' ``run.py``);
    the paper's λ is 0.6 (CUB), 0.2 (Cars), 0.1 (SOP), ν = 0.01. Terms: the base loss's, "mdr" and
    "mdr_levels" (both weighted). Centers are the base loss's; the levels train at the model's lr.
    ``"lsd"``: total = base + ``lsd_alpha``·(epoch − 1)/epochs·LSD (τ ``lsd_tau``; ``lsd_epochs`` fixes the
    ramp's horizon, default the run's epochs, so that extending a run keeps its earlier weights), the teacher being
    the model at the end of the previous epoch (:mod:`dmlviz.losses.lsd`); term "lsd" (weighted).
    """

    def __init__(
        self, base: DMLLoss, regularizer: str = "mdr", *, lambda_mdr: float = 0.6, nu_mdr: float = 0.01, mdr_momentum: float = 0.9,
        lsd_alpha: float = 200.0, lsd_tau: float = 1.0, lsd_epochs: int | None = None,
    ) -> None:
        if not isinstance(base, DMLLoss):
            raise TypeError(f"base must be a DMLLoss, got {type(base).__name__}")
        if isinstance(base, Regularized):
            raise ValueError(f"the loss already has regularizer {base.regularizer!r}; add one regularizer")
        check_choice("regularizer", regularizer, tuple(REGULARIZERS))
        super().__init__(base)
        self.regularizer = regularizer
        self.lambda_mdr = check_positive_float("lambda_mdr", lambda_mdr, allow_zero=True, example=0.6)
        self.nu_mdr = check_positive_float("nu_mdr", nu_mdr, allow_zero=True, example=0.01)
        if regularizer == "mdr":
            self.mdr = MDR(momentum=mdr_momentum)
            self.hparams = {**base.hparams, "lambda_mdr": self.lambda_mdr, "nu_mdr": self.nu_mdr, "mdr_momentum": self.mdr.momentum}
        else:
            self.lsd = ListwiseDistillation(alpha=lsd_alpha, tau=lsd_tau, epochs=lsd_epochs)
            self.uses_teacher = True
            self._teacher_batch: torch.Tensor | None = None
            self.hparams = {**base.hparams, "lsd_alpha": self.lsd.alpha, "lsd_tau": self.lsd.tau, "lsd_epochs": self.lsd.epochs}

    @property
    def name(self) -> str:  # type: ignore[override]
        """The base loss's name and the regularizer's, e.g. "triplet+mdr"."""
        return f"{self.base.name}+{self.regularizer}"

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """The base loss's terms, then "mdr" (λ·MDR) and "mdr_levels" (ν·Σ level²)."""
        parts = dict(self.base.compute(embeddings, labels))
        if self.regularizer == "mdr":
            parts["mdr"] = self.lambda_mdr * self.mdr(self.base.measure(embeddings))
            parts["mdr_levels"] = self.nu_mdr * self.mdr.level_penalty()
        else:
            teacher, self._teacher_batch = self._teacher_batch, None
            if teacher is None or len(teacher) != len(embeddings):
                parts["lsd"] = embeddings.sum() * 0.0  # no teacher for this batch (a call outside the trainer)
            else:
                parts["lsd"] = self.lsd.weight() * self.lsd(embeddings, teacher)
        return parts

    def start_epoch(self, epoch: int, epochs: int, model: torch.nn.Module) -> None:
        """The base loss's hook; for LSD, the teacher of this epoch (a frozen copy of ``model``)."""
        self.base.start_epoch(epoch, epochs, model)
        if self.regularizer == "lsd":
            self.lsd.start_epoch(epoch, epochs, model)

    def teacher_embed(self, inputs: torch.Tensor) -> torch.Tensor | None:
        """LSD's teacher's embeddings of a batch (the base loss's otherwise)."""
        return self.lsd.teacher_embed(inputs) if self.regularizer == "lsd" else self.base.teacher_embed(inputs)

    def set_teacher_batch(self, embeddings: torch.Tensor | None) -> None:
        """The teacher's embeddings of the batch the next call sees."""
        if self.regularizer == "lsd":
            self._teacher_batch = embeddings
        else:
            self.base.set_teacher_batch(embeddings)

    def snapshot_arrays(self) -> dict[str, torch.Tensor]:
        """MDR's levels [3] and running mean and std (0-d), in the units of the measured distances."""
        if self.regularizer != "mdr":
            return self.base.snapshot_arrays()
        return {
            **self.base.snapshot_arrays(),
            "mdr_levels": self.mdr.levels.detach(),
            "mdr_running_mean": self.mdr.running_mean.detach(),
            "mdr_running_std": self.mdr.running_std.detach(),
        }

    def center_parameters(self) -> list[torch.nn.Parameter]:
        """The base loss's centers or proxies (MDR's levels train with the loss group)."""
        return self.base.center_parameters()


def split_regularizer_params(regularizer: str | None, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(loss parameters, regularizer parameters) of ``params``; a regularizer parameter without its regularizer is an error."""
    own = {name for names in REGULARIZERS.values() for name in names}
    if regularizer is None:
        stray = sorted(set(params) & own)
        if stray:
            owner = next(name for name, names in REGULARIZERS.items() if stray[0] in names)
            raise ValueError(f"{stray} are parameters of regularizer={owner!r}; pass regularizer={owner!r} (--regularizer {owner}) to use them")
        return dict(params), {}
    check_choice("regularizer", regularizer, tuple(REGULARIZERS))
    mine = set(REGULARIZERS[regularizer])
    other = sorted((set(params) & own) - mine)
    if other:
        raise ValueError(f"{other} are not parameters of regularizer={regularizer!r}; it takes {sorted(mine)}")
    return {k: v for k, v in params.items() if k not in mine}, {k: v for k, v in params.items() if k in mine}

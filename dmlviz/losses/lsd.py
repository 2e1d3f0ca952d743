"""Listwise self-distillation, LSD (Zeng et al., arXiv 2206.08880), as a regularizer on any loss.

Official code: ZelongZeng/Improving-Generalization-of-Metric-Learning-via-Listwise-Self-distillation,
``criteria/*_lsd.py`` and ``main.py``. The teacher is the model as it was at the end of the
previous epoch (frozen); for each anchor of the batch, its row of cosine similarities to every
batch item (itself included) is softened at temperature τ, and the student's row is pulled to the
teacher's: LSD = τ² · mean_i KL(softmax(S_teacher,i/τ) ‖ softmax(S_student,i/τ)), weighted by
α·(epoch − 1)/epochs — 0 in the first training epoch (whose teacher is the untrained model), rising
linearly (the authors' epoch/n_epochs with epochs counted from 0).

Where the released code is incomplete it reads two options that are not defined (``kd_beta``,
``f_distillation_standard``); dmlviz takes the evident meaning, no extra scaling of the negatives
(β = 1). The teacher runs in eval mode (its BatchNorm uses running statistics).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_positive_float, check_positive_int


class ListwiseDistillation(nn.Module):
    """The LSD term: ``lsd(student [B, D], teacher [B, D]) -> scalar`` (unweighted by the ramp; see :meth:`weight`)."""

    def __init__(self, alpha: float = 200.0, tau: float = 1.0, epochs: int | None = None) -> None:
        super().__init__()
        self.epochs = None if epochs is None else check_positive_int("lsd_epochs", epochs)
        self.alpha = check_positive_float("lsd_alpha", alpha, allow_zero=True, example=200.0)
        self.tau = check_positive_float("lsd_tau", tau, example=1.0)
        self.ramp = 0.0
        self._teacher: list[nn.Module] = []  # a list: the teacher is not part of the loss's state (it is the last epoch's model)

    def start_epoch(self, epoch: int, epochs: int, model: nn.Module) -> None:
        """Freeze a copy of ``model`` as the teacher of epoch ``epoch``; set the ramp (epoch − 1)/epochs (``self.epochs`` if set)."""
        teacher = copy.deepcopy(model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        self._teacher = [teacher]
        self.ramp = min(1.0, (epoch - 1) / max(self.epochs or epochs, 1))

    @torch.no_grad()
    def teacher_embed(self, inputs: torch.Tensor) -> torch.Tensor | None:
        """The teacher's embeddings of ``inputs`` (None before the first epoch)."""
        if not self._teacher:
            return None
        with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=inputs.device.type == "cuda"):
            return self._teacher[0](inputs).float()

    def weight(self) -> float:
        """α · ramp, the weight of the term this epoch."""
        return self.alpha * self.ramp

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """τ² · mean over anchors of KL(teacher row ‖ student row)."""
        s = F.normalize(student, dim=1)
        t = F.normalize(teacher.detach(), dim=1)
        log_p = F.log_softmax(s @ s.T / self.tau, dim=1)
        q = F.softmax(t @ t.T / self.tau, dim=1)
        return self.tau**2 * F.kl_div(log_p, q, reduction="batchmean")

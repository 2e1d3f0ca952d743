"""SOPRC, stochastic optimisation of AUPRC with list stability (Wen et al., NeurIPS 2022), as the authors compute it.

Official code: KID-7391/SOPRC, packaged in statusrank/XCurve as ``XCurve/AUPRC/losses/soprc.py``
(``SOPRC``) and ``pair_loss.py`` (``VarianceLoss``); defaults of ``config/SOP/soprc_*.yaml``.
The batch is N classes × M samples. For anchor i with sorted positive similarities s⁺ (M − 1) and
negatives s⁻ ((N − 1)·M), on dot products of unit vectors:

- L1 = mean over negatives of ℓ_pn(s⁺ − s⁻), ℓ_pn(x) = (x/τ₁ − 1)² for x ≥ 0 (x clipped at τ₁), 1 − 2x/τ₁ below;
- each class keeps a buffer v_c of ``num_v`` scores estimating its positive-score distribution:
  after each batch, v_c ← (1 − β)·v_c + β·(positions interpolated between consecutive sorted
  positive scores), then L2 = (1 + Σ_u ℓ_pp(s⁺ − v_u))/(num_v + 1), ℓ_pp(x) = 2/(1 + e^{min(x,0)/τ₂}) − 1,
  computed without gradient (a weight per anchor);
- with the class prior π_c = ``prior_mul``·count_c / max count (the sampling-rate correction),
  r = (1 − π)/π · L1/L2 and SOPRC = mean r/(1 + r).
The semi-variance regularizer (``variance_weight`` × VarianceLoss, thresholds 1 and 5) is the
second term: positives below the batch's mean positive score and negatives above its mean negative
score pay their squared gap.

Where dmlviz differs: the authors update v with ``v[targets] = …``, whose result for the M rows of
one class is whichever write lands last; dmlviz takes the last row of each class explicitly
(deterministic). The batch is ordered by label first; classes must hold the same number of
samples (dmlviz's m-per-class batches do). The "one-way partial AUPRC" variant named in the seed
list has no code or text we could find; it is not built. The buffers v are per-class score
quantiles, not positions, so nothing is drawn for them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import check_positive_float, check_positive_int
from .base import DMLLoss
from .registry import register


@register("soprc")
class SOPRC(DMLLoss):
    """SOPRC with the authors' SOP defaults: ``temp_pn`` 0.1, ``temp_pp`` 0.001, ``beta`` 0.1, ``prior_mul`` 0.01,
    ``num_v`` 100, ``variance_weight`` 1 (thresholds 1 / 5). Terms "auprc" and "variance"."""

    name = "soprc"
    needs_pairs = True

    def __init__(self, num_classes: int, embedding_dim: int, temp_pn: float = 0.1, temp_pp: float = 0.001, beta: float = 0.1,
                 prior_mul: float = 0.01, num_v: int = 100, variance_weight: float = 1.0) -> None:
        super().__init__(check_positive_int("num_classes", num_classes), embedding_dim)
        self.hparams = dict(
            temp_pn=check_positive_float("temp_pn", temp_pn, example=0.1),
            temp_pp=check_positive_float("temp_pp", temp_pp, example=0.001),
            beta=check_positive_float("beta", beta, example=0.1),
            prior_mul=check_positive_float("prior_mul", prior_mul, example=0.01),
            num_v=check_positive_int("num_v", num_v, minimum=2),
            variance_weight=check_positive_float("variance_weight", variance_weight, allow_zero=True, example=1.0),
        )
        self.register_buffer("v", (torch.arange(num_v) / num_v).repeat(num_classes, 1))
        self.register_buffer("prior", torch.full((num_classes,), prior_mul))

    def set_class_counts(self, counts: np.ndarray) -> None:
        """The prior from the training samples per class [C]: prior_mul · count / max count (the authors' update_cnt_per_id)."""
        counts = torch.as_tensor(np.asarray(counts, dtype=np.float64), dtype=self.prior.dtype, device=self.prior.device)
        self.prior.copy_(counts * self.hparams["prior_mul"] / counts.max())

    def _ell_pn(self, x: torch.Tensor) -> torch.Tensor:
        t = self.hparams["temp_pn"]
        x = x.clamp(max=t)
        return torch.where(x >= 0, (x / t - 1) ** 2, 1 - 2 * x / t)

    def _ell_pp(self, x: torch.Tensor) -> torch.Tensor:
        return 2 / (1 + torch.exp(x.clamp(max=0) / self.hparams["temp_pp"])) - 1

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """"auprc" (the AUPRC surrogate) and "variance" (weighted semi-variance)."""
        h = self.hparams
        order = torch.argsort(labels, stable=True)
        x, y = F.normalize(embeddings[order], dim=1), labels[order]
        b = len(y)
        counts = torch.bincount(y)
        counts = counts[counts > 0]
        low, ns = torch.stack([counts.min(), counts.max()]).tolist()  # one host sync for the shapes and the check
        if low != ns or ns < 3:
            raise ValueError(
                f"SOPRC needs every class of a batch to hold the same number (>= 3: two positives to interpolate between) of "
                f"samples, got {counts.tolist()}; use m_per_class >= 3 batches (the trainer's default for pair losses is 4)"
            )
        nc = b // ns
        sim = x @ x.T
        block = torch.block_diag(*([torch.ones(ns, ns, device=x.device) + torch.eye(ns, device=x.device)] * nc))
        pos = torch.sort(sim[block == 1].view(b, ns - 1, 1), dim=1).values  # [b, ns-1, 1]
        neg = sim[block == 0].view(b, 1, (nc - 1) * ns)
        loss_pn = self._ell_pn(pos - neg).mean(dim=-1)  # [b, ns-1]
        with torch.no_grad():
            num_v, beta = h["num_v"], h["beta"]
            steps = math.ceil(num_v / (ns - 1))
            alpha = (torch.arange(steps, device=x.device) / steps).view(1, 1, -1)
            score = pos.detach()
            left = torch.cat([torch.clamp(2 * score[:, 0] - score[:, 1], min=-1).unsqueeze(1), score[:, :-1]], dim=1)
            right = torch.cat([score[:, 1:], torch.clamp(2 * score[:, -1] - score[:, -2], max=1).unsqueeze(1)], dim=1)
            fresh = (beta / 2 * (((score - left) * alpha + left) + ((right - score) * alpha + score))).view(b, -1)[:, :num_v]
            last = torch.arange(ns - 1, b, ns, device=x.device)  # the last row of each class block
            self.v[y[last]] = (1 - beta) * self.v[y[last]] + fresh[last]
            v = self.v[y]
            loss_pv = self._ell_pp(pos - v.view(b, 1, -1))
            loss_pv = (1 + loss_pv.sum(dim=-1)) / (loss_pv.shape[-1] + 1)
        prior = self.prior[y].unsqueeze(1)
        ratio = (1 - prior) / prior * loss_pn / loss_pv
        auprc = (ratio / (1 + ratio)).mean()
        if h["variance_weight"] == 0:
            return {"auprc": auprc, "variance": auprc.detach() * 0.0}
        sp, sn = pos.view(b, -1), neg.view(b, -1)
        gap_pos = (sp.mean() - sp).flatten()
        gap_neg = (sn - sn.mean()).flatten()
        # means over the gaps > 0 (0 when there are none), without a host sync
        pos_term = (gap_pos.clamp(min=0) ** 2).sum() / (gap_pos > 0).sum().clamp(min=1)
        neg_term = (gap_neg.clamp(min=0) ** 2).sum() / (gap_neg > 0).sum().clamp(min=1)
        return {"auprc": auprc, "variance": h["variance_weight"] * (1.0 * pos_term + 5.0 * neg_term)}

    def center_parameters(self) -> list[torch.nn.Parameter]:
        """No centers."""
        return []

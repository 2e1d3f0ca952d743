"""CCP-DML, deep metric learning with chance constraints (Gürbüz, Can, Alatan; arXiv 2209.09060): K proxies per class
re-seeded from real samples whenever a problem instance has converged, and a proximal pull to the last instance's weights.

Official code (TensorFlow): yetigurbuz/ccp-dml, ``framework/losses/ccp/loss.py`` (``LossWithCCP``),
``ccp/callback.py`` (``AlternatingProjectionCallback``), ``utilities/proxy_utils.py`` (``greedyKCenter``).
As there:

- loss = ``batch_weight`` (0.1) · contrastive(batch, batch) + ``proxy_weight`` (1.0) · contrastive(batch,
  proxies), the contrastive loss being mean over non-zero [d − m⁺]₊ + mean over non-zero [m⁻ − d]₊
  (PML's ``ContrastiveLoss``, whose reducer averages the non-zero terms), d the Euclidean distance
  after "Lipschitz" normalisation: a vector is divided by its norm only when the norm exceeds 1.
  Margins (m⁺, m⁻) = (0, 0.5), the code's default.
- ``proxies_per_class`` K (8 on CUB/Cars, 4 on SOP/In-Shop) proxies per class. When training starts
  they are seeded from samples, and at each instance switch re-seeded: for each class a pool of
  ``pool_size`` (12; 7 on SOP) random training samples is embedded and greedy k-center picks K of
  them, each the pool point farthest (squared Euclidean, raw embeddings) from the proxies of the
  best epoch and the points already picked. The first seeding starts from all-zero proxies.
- An instance ends when the monitored MAP@R has not improved by 1e-5 for ``patience`` (3) epochs
  (``early_stopping_patience``, stepped at epoch end). Then the proximal anchor becomes the weights
  of the best epoch and the network gets the extra gradient λ(θ − θ_anchor), i.e. the term
  λ/2·‖θ − θ_anchor‖² (``proximal`` λ = 2e-4, 0 during the first instance; proxies are not pulled).
  The model itself goes on from where it is (the code does not restore the best weights).

Where dmlviz differs:

- The monitored MAP@R is measured on the **training set**, embedded at the end of every epoch (the
  trainer's hook), not on a validation split: dmlviz keeps the test split out of training decisions
  and has no validation split. The same embeddings give the k-center pools (the authors embed
  one sample per class per pool slot).
- The per-class pool is drawn with a seeded generator, so a resumed run re-seeds the same way; all
  the instance's state (best weights and proxies, anchor, patience) is saved with the checkpoint.

Recorded each epoch: ``ccp_instance``, ``ccp_reseeded`` (this epoch began with a (re-)seeding) and
``ccp_covering_radius`` [C], the largest distance from a training sample of a class to its nearest
proxy of that class at the start of the epoch: the quantity the paper's bound is about.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning.distances import LpDistance
from torch import nn

from .._validation import check_positive_float, check_positive_int
from .base import DMLLoss
from .registry import register


def to_unit_ball(x: torch.Tensor) -> torch.Tensor:
    """Rows of x [n, D] divided by their norm where it exceeds 1 (the authors' "Lipschitz" L2 normalisation)."""
    return x / x.norm(dim=-1, keepdim=True).clamp(min=1.0)


def greedy_k_center(pool: torch.Tensor, initial: torch.Tensor, k: int) -> torch.Tensor:
    """For each class, ``k`` points of ``pool`` [C, P, D] picked greedily farthest from ``initial`` [C, K0, D] and each other → [C, k, D]."""
    # [C, P, K0] squared distances as ‖p‖² + ‖q‖² − 2 p·q: no [C, P, K0, D] difference tensor (SOP: 11k classes)
    d = pool.pow(2).sum(-1, keepdim=True) + initial.pow(2).sum(-1)[:, None, :] - 2 * torch.bmm(pool, initial.transpose(1, 2))
    nearest = d.clamp(min=0).min(dim=2).values  # [C, P]
    picked = []
    for _ in range(k):
        choice = nearest.argmax(dim=1)  # [C]
        point = pool[torch.arange(len(pool), device=pool.device), choice]  # [C, D]
        picked.append(point)
        nearest = torch.minimum(nearest, (pool - point[:, None, :]).pow(2).sum(-1))
    return torch.stack(picked, dim=1)


@register("ccp")
class CCP(DMLLoss):
    """CCP-DML: contrastive loss on the batch and against K proxies per class, proxies re-seeded from samples by k-center at
    each instance switch (MAP@R stalled ``patience`` epochs), proximal pull λ/2‖θ − θ_best‖² after the first instance.

    Terms: "batch", "proxies", "proximal". ``centers()`` are the proxies' directions [C, K, D] (the loss measures them in
    the unit ball; views measure unit vectors).
    """

    name = "ccp"
    needs_pairs = True
    embedding_scale = "ball"

    def __init__(self, num_classes: int, embedding_dim: int, proxies_per_class: int = 8, pool_size: int = 12, pos_margin: float = 0.0,
                 neg_margin: float = 0.5, batch_weight: float = 0.1, proxy_weight: float = 1.0, proximal: float = 2e-4,
                 patience: int = 3, seed: int = 0) -> None:
        super().__init__(check_positive_int("num_classes", num_classes), check_positive_int("embedding_dim", embedding_dim))
        k = check_positive_int("proxies_per_class", proxies_per_class)
        pool = check_positive_int("pool_size", pool_size)
        self.hparams = dict(
            proxies_per_class=k, pool_size=pool,
            pos_margin=check_positive_float("pos_margin", pos_margin, allow_zero=True, example=0.0),
            neg_margin=check_positive_float("neg_margin", neg_margin, example=0.5),
            batch_weight=check_positive_float("batch_weight", batch_weight, allow_zero=True, example=0.1),
            proxy_weight=check_positive_float("proxy_weight", proxy_weight, allow_zero=True, example=1.0),
            proximal=check_positive_float("proximal", proximal, allow_zero=True, example=2e-4),
            patience=check_positive_int("patience", patience), seed=int(seed),
        )
        if self.hparams["pos_margin"] >= self.hparams["neg_margin"]:
            raise ValueError(f"pos_margin ({pos_margin}) must be smaller than neg_margin ({neg_margin})")
        self.k, self.pool = k, pool if pool >= k else pool * k  # the authors' pool: b, or b·K when b < K
        # the authors' he_normal start (fan-in C·K); replaced by samples when training starts
        self.proxies = nn.Parameter(torch.randn(num_classes, k, embedding_dim) * math.sqrt(2.0 / (num_classes * k)))
        self.register_buffer("best_proxies", torch.zeros(num_classes, k, embedding_dim))
        self.register_buffer("covering_radius", torch.full((num_classes,), float("nan")))
        self.contrastive = pml_losses.ContrastiveLoss(pos_margin=self.hparams["pos_margin"], neg_margin=self.hparams["neg_margin"],
                                                      distance=LpDistance(normalize_embeddings=False))
        self.instance, self.since_best, self.best_score, self.epochs_in_instance = 0, 0, -math.inf, 0
        self.seeded, self.reseeded = False, False
        self._best_weights: torch.Tensor | None = None  # flat copy of the model's weights at the instance's best epoch
        self._anchor: torch.Tensor | None = None  # flat proximal anchor θ_anchor (None in the first instance)
        self._model: list[nn.Module] = []  # a list: the model is not part of the loss's state

    # -- the loss ---------------------------------------------------------------------------------
    def measure(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Embeddings in the unit ball (divided by their norm only where it exceeds 1)."""
        return to_unit_ball(embeddings)

    def proxy_labels(self) -> torch.Tensor:
        """The class of each proxy row of ``proxies.reshape(C·K, D)``: [C·K]."""
        return torch.arange(self.num_classes, device=self.proxies.device).repeat_interleave(self.k)

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """batch_weight · contrastive(batch) + proxy_weight · contrastive(batch, proxies) + λ/2‖θ − θ_anchor‖²."""
        x = to_unit_ball(embeddings)
        p = to_unit_ball(self.proxies.reshape(-1, self.embedding_dim))
        parts = {
            "batch": self.hparams["batch_weight"] * self.contrastive(x, labels),
            "proxies": self.hparams["proxy_weight"] * self.contrastive(x, labels, ref_emb=p, ref_labels=self.proxy_labels()),
        }
        if self._anchor is not None and self._model and self.hparams["proximal"] > 0:
            theta = torch.cat([w.reshape(-1) for w in self._weights()])
            parts["proximal"] = 0.5 * self.hparams["proximal"] * (theta - self._anchor.to(theta.dtype)).pow(2).sum()
        else:
            parts["proximal"] = embeddings.sum() * 0.0
        return parts

    def centers(self) -> torch.Tensor:
        """The proxies' directions [C, K, D]."""
        return F.normalize(self.proxies.detach(), dim=-1)

    def center_parameters(self) -> list[nn.Parameter]:
        """The proxies."""
        return [self.proxies]

    # -- the outer loop (the trainer's hooks) -------------------------------------------------------
    def _weights(self) -> list[torch.Tensor]:
        return [w for w in self._model[0].parameters() if w.requires_grad] if self._model else []

    def _flat_weights(self) -> torch.Tensor:
        return torch.cat([w.detach().reshape(-1) for w in self._weights()]).clone()

    def start_epoch(self, epoch: int, epochs: int, model: nn.Module) -> None:
        """Hold the model (its weights are the proximal term's θ and the instance's best weights)."""
        self._model = [model]
        device = next(model.parameters()).device
        self._anchor = None if self._anchor is None else self._anchor.to(device)
        self._best_weights = None if self._best_weights is None else self._best_weights.to(device)

    def wants_training_embeddings(self, epoch: int, epochs: int) -> bool:
        """Every epoch: MAP@R on the training set decides the instance switch, and its embeddings seed the proxies."""
        return True

    @torch.no_grad()
    def set_training_embeddings(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """The end of an epoch (or the start of training): step the instance controller, (re-)seed proxies when it switches."""
        from ..eval import retrieval_metrics

        z = embeddings.detach().float()
        self.reseeded = False
        if not self.seeded:  # the authors' on_train_begin: seed from samples (random_init=False)
            self._reseed(z, labels)
            self.seeded = True
        else:
            score = retrieval_metrics(F.normalize(z, dim=1), labels, ks=(1,))["map@r"]
            self.epochs_in_instance += 1
            if score >= self.best_score + 1e-5:
                self.best_score, self.since_best = score, 0
                self.best_proxies.copy_(self.proxies.detach())
                if self._model:
                    self._best_weights = self._flat_weights()
            else:
                self.since_best += 1
            if self.since_best == self.hparams["patience"]:
                self.instance += 1
                self._anchor = self._best_weights
                self._reseed(z, labels)
                self.since_best, self.best_score, self.epochs_in_instance = 0, -math.inf, 0
        self.covering_radius.copy_(self._covering(z, labels))

    def _reseed(self, z: torch.Tensor, labels: torch.Tensor) -> None:
        """Proxies ← K pool samples per class picked by greedy k-center against the best proxies."""
        generator = torch.Generator(device="cpu").manual_seed(self.hparams["seed"] * 1_000_003 + self.instance)
        order = torch.argsort(labels.cpu(), stable=True)
        counts = torch.bincount(labels.cpu(), minlength=self.num_classes)
        starts = torch.cumsum(counts, 0) - counts
        if int(counts.min()) == 0:
            missing = int(torch.nonzero(counts == 0)[0])
            raise ValueError(f"ccp seeds proxies from every class's samples, but training class {missing} has none")
        draw = (torch.rand(self.num_classes, self.pool, generator=generator) * counts[:, None]).long()  # with replacement
        rows = order[starts[:, None] + draw].to(z.device)  # [C, P]
        pool = z[rows]  # [C, P, D]
        self.proxies.data.copy_(greedy_k_center(pool, self.best_proxies.to(z.dtype), self.k).to(self.proxies.dtype))
        self.reseeded = True

    def _covering(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per class [C]: the largest distance from one of its samples to its nearest proxy of that class (unit-ball vectors)."""
        x, p = to_unit_ball(z), to_unit_ball(self.proxies.detach().to(z.dtype))
        nearest = torch.cat([(x[i : i + 4096, None, :] - p[labels[i : i + 4096]]).norm(dim=-1).min(dim=1).values
                             for i in range(0, len(x), 4096)])
        return torch.zeros(self.num_classes, device=z.device, dtype=z.dtype).scatter_reduce(0, labels, nearest, "amax", include_self=False)

    def snapshot_arrays(self) -> dict[str, torch.Tensor]:
        """The instance, whether this epoch began with a (re-)seeding, and each class's covering radius [C]."""
        return {"ccp_instance": torch.tensor(self.instance), "ccp_reseeded": torch.tensor(self.reseeded),
                "ccp_covering_radius": self.covering_radius.detach()}

    # -- the checkpoint -----------------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        """The instance controller's state (saved with the checkpoint)."""
        empty = torch.zeros(0)
        return {"instance": self.instance, "since_best": self.since_best, "best_score": self.best_score,
                "epochs_in_instance": self.epochs_in_instance, "seeded": self.seeded, "reseeded": self.reseeded,
                "best_weights": empty if self._best_weights is None else self._best_weights.cpu(),
                "anchor": empty if self._anchor is None else self._anchor.cpu()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore the instance controller's state."""
        self.instance, self.since_best = int(state["instance"]), int(state["since_best"])
        self.best_score, self.epochs_in_instance = float(state["best_score"]), int(state["epochs_in_instance"])
        self.seeded, self.reseeded = bool(state["seeded"]), bool(state["reseeded"])
        device = self.proxies.device
        self._best_weights = state["best_weights"].to(device) if state["best_weights"].numel() else None
        self._anchor = state["anchor"].to(device) if state["anchor"].numel() else None

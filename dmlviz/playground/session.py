"""A playground session: a small head trained live on synthetic classes, its embedding on the unit circle (2-D) or
sphere (3-D), so that what is drawn is the embedding itself, with the forces of the last batch."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import check_choice, check_positive_float, check_positive_int
from ..data import ArrayDataset, synthetic
from ..eval.centers import assign_to_centers, center_groups, merged_assignments, submode_score
from ..losses import LOSSES, DMLLoss, build
from ..models import build_model
from ..training.sampler import epoch_batches

logger = logging.getLogger(__name__)

#: losses the playground offers: every registered loss (augmenters and LSD need a trainer's epochs of a real dataset)
PLAYGROUND_LOSSES = tuple(sorted(LOSSES))
#: the most mined pairs or triplets drawn per frame
MAX_LINES = 300


@dataclass(frozen=True)
class Settings:
    """What a playground trains: data, head, loss and its knobs, optimiser, seed. Checked when made."""

    loss: str = "softtriple"
    loss_params: dict[str, Any] = field(default_factory=dict)
    mdr: bool = False
    lambda_mdr: float = 0.6
    dim: int = 2
    classes: int = 3
    modes_per_class: int = 2
    noise: float = 1.0
    separation: float = 3.0
    points: int = 1000
    input_dim: int = 8
    head: str = "linear"
    lr: float = 0.01
    center_lr: float = 0.05
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("loss", self.loss, PLAYGROUND_LOSSES)
        if self.dim not in (2, 3):
            raise ValueError(f"dim must be 2 (the unit circle) or 3 (the unit sphere), got {self.dim!r}")
        check_choice("head", self.head, ("linear", "mlp"))
        for name in ("classes", "modes_per_class", "points", "input_dim", "batch_size"):
            check_positive_int(name, getattr(self, name))
        if self.classes < 2:
            raise ValueError(f"classes must be at least 2 (a loss needs negatives), got {self.classes}")
        if self.points < self.classes * self.modes_per_class * 2:
            raise ValueError(f"points must give every mode at least 2 samples ({self.classes * self.modes_per_class * 2}), got {self.points}")
        for name in ("noise", "lr", "center_lr", "lambda_mdr"):
            check_positive_float(name, getattr(self, name), allow_zero=name == "lambda_mdr")
        check_positive_float("separation", self.separation, allow_zero=True)
        accepted = loss_knobs(self.loss)
        unknown = sorted(set(self.loss_params) - set(accepted))
        if unknown:
            raise ValueError(f"loss {self.loss!r} does not take {unknown}; its knobs are {sorted(accepted)}")

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some settings changed (checked again)."""
        return dataclasses.replace(self, **changes)


def loss_knobs(loss: str) -> dict[str, Any]:
    """A loss's constructor parameters and their defaults (its knobs)."""
    signature = inspect.signature(LOSSES[loss].__init__)
    return {k: p.default for k, p in signature.parameters.items() if k not in ("self", "num_classes", "embedding_dim")}


@dataclass
class Frame:
    """What one picture of the playground shows; arrays are host copies (the session may go on training)."""

    step: int
    epoch: int
    points: np.ndarray  # [N, dim] unit vectors: the embeddings themselves
    labels: np.ndarray  # [N]
    fine_labels: np.ndarray  # [N] hidden mode of each sample
    centers: np.ndarray  # [C, K, dim] unit (learned centers, or class means for a loss without centers)
    centers_learned: bool
    batch: np.ndarray  # [B] rows of the last batch
    forces: np.ndarray  # [B, dim]: −(tangent part of ∂loss/∂embedding) of the last batch's samples
    center_forces: np.ndarray  # [C, K, dim]: how the centers move under −∂loss/∂parameters (tangent), zeros without centers
    lines: dict[str, np.ndarray]  # kind -> [L, 2] row pairs (into points) of the mined pairs or triplet edges
    loss: float
    terms: dict[str, float]
    effective_k: float
    submode: float  # the sub-mode score on all samples (0 = chance, 1 = one center per hidden mode); NaN without K > 1
    mining: str  # what the lines are, in words
    geometry: dict[str, float] = field(default_factory=dict)  # see :func:`geometry`
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. MDR's levels


class PlaygroundSession:
    """Builds data, head, loss and optimiser from :class:`Settings`; :meth:`step` trains batches, :meth:`frame` draws.

    Epochs work as the trainer's: at each epoch's start the loss's hooks run (``start_epoch``, and the
    training-set embeddings for losses that ask: CCP's instance controller, nivmf's warm start).
    Not thread-safe: callers hold a lock around it (the widget does).
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = s = settings or Settings()
        per_mode = max(2, -(-s.points // (s.classes * s.modes_per_class)))
        full = synthetic(classes=s.classes, modes_per_class=s.modes_per_class, dim=s.input_dim, separation=s.separation,
                         noise=s.noise, samples_per_mode=per_mode, seed=s.seed)
        keep = slice(0, s.points)  # exactly `points` samples (the rows come shuffled, so classes stay balanced within a few)
        self.data = ArrayDataset(full.inputs[keep], full.labels[keep], name="playground", class_names=full.class_names,
                                 fine_labels=full.fine_labels[keep], fine_names=full.fine_names)
        self.inputs = self.data.inputs.float()
        self.labels = torch.as_tensor(self.data.labels, dtype=torch.long)
        self.fine = np.asarray(self.data.fine_labels)
        torch.manual_seed(s.seed)
        self.net = build_model(s.head, tuple(self.inputs.shape[1:]), s.dim)
        self.loss_fn: DMLLoss = build(s.loss, num_classes=s.classes, embedding_dim=s.dim,
                                      regularizer="mdr" if s.mdr else None,
                                      **({"lambda_mdr": s.lambda_mdr} if s.mdr else {}), **s.loss_params)
        self.loss_fn.set_class_counts(np.bincount(self.data.labels, minlength=s.classes))
        centers = {id(p) for p in self.loss_fn.center_parameters()}
        groups = [{"params": list(self.net.parameters()), "lr": s.lr, "name": "model"}]
        learned = [p for p in self.loss_fn.parameters() if id(p) in centers]
        others = [p for p in self.loss_fn.parameters() if id(p) not in centers]
        if learned:
            groups.append({"params": learned, "lr": s.center_lr, "name": "centers"})
        if others:
            groups.append({"params": others, "lr": s.lr, "name": "loss"})
        self.optimizer = torch.optim.Adam(groups)
        self.m_per_class = min(self.loss_fn.preferred_m_per_class, s.batch_size // 2) if self.loss_fn.needs_pairs else None
        self.step_count, self.epoch = 0, 0
        self._queue: list[np.ndarray] = []
        self._last_batch = np.zeros(0, dtype=np.int64)
        self._last_grad = torch.zeros(0, s.dim)
        self._last_value, self._last_terms = float("nan"), {}
        self._generator = torch.Generator().manual_seed(s.seed)
        self.seconds_per_step = float("nan")
        self.baseline = self.frame().geometry  # step 0's figures, beside the live ones

    # -- training ------------------------------------------------------------------------------
    def set_rates(self, lr: float, center_lr: float) -> None:
        """Change the learning rates while training goes on (centers at ``center_lr``, the rest at ``lr``)."""
        check_positive_float("lr", lr)
        check_positive_float("center_lr", center_lr)
        for group in self.optimizer.param_groups:
            group["lr"] = center_lr if group["name"] == "centers" else lr
        self.settings = self.settings.replace(lr=float(lr), center_lr=float(center_lr))

    def _next_batch(self) -> np.ndarray:
        if not self._queue:
            self.epoch += 1
            self._queue = epoch_batches(self.data.labels, self.settings.batch_size, seed=self.settings.seed, epoch=self.epoch,
                                        m_per_class=self.m_per_class)[::-1]
            self.loss_fn.start_epoch(self.epoch, max(self.epoch, 1), self.net)
            if self.loss_fn.wants_training_embeddings(self.epoch, max(self.epoch, 1)):
                with torch.no_grad():
                    self.loss_fn.set_training_embeddings(self.net(self.inputs), self.labels)
        return self._queue.pop()

    def step(self, n: int = 1) -> None:
        """Train ``n`` batches (Adam); the last one's embeddings' gradients are kept for the forces."""
        start = time.perf_counter()
        for _ in range(n):
            rows = self._next_batch()
            x = self.net(self.inputs[rows])
            x.retain_grad()
            value = self.loss_fn(x, self.labels[rows], check=False)
            if not torch.isfinite(value):
                raise FloatingPointError(f"the loss became {float(value)} at step {self.step_count + 1}; {self.loss_fn.nan_hint}")
            self.optimizer.zero_grad(set_to_none=True)
            value.backward()
            unit = F.normalize(x.detach(), dim=1)
            g = x.grad.detach() * x.detach().norm(dim=1, keepdim=True)  # ∂loss/∂u for u = x/‖x‖, tangent part below
            self._last_grad = -(g - (g * unit).sum(1, keepdim=True) * unit)
            self._last_batch, self._last_value, self._last_terms = rows, float(value.detach()), self.loss_fn.terms
            self.optimizer.step()
            self.step_count += 1
        self.seconds_per_step = (time.perf_counter() - start) / max(1, n)

    # -- the picture -----------------------------------------------------------------------------
    @torch.no_grad()
    def frame(self) -> Frame:
        """The embeddings, centers, forces and mined pairs as they are now."""
        self.net.eval()
        points = F.normalize(self.net(self.inputs), dim=1)
        self.net.train()
        labels = self.data.labels
        learned = self.loss_fn.centers()
        if learned is not None:
            centers = F.normalize(learned.float(), dim=-1)
            center_forces = self._center_forces(centers)
        else:
            centers = F.normalize(torch.stack([points[self.labels == c].mean(0) for c in range(self.settings.classes)]), dim=1)[:, None]
            center_forces = torch.zeros_like(centers)
        c_np, p_np = centers.numpy(), points.numpy()
        classes = np.arange(self.settings.classes)
        assignments = assign_to_centers(p_np, labels, c_np, classes)
        groups = center_groups(c_np)
        eff = float((groups.max(axis=1) + 1).mean())
        submode = float("nan")
        if c_np.shape[1] > 1 and self.settings.modes_per_class > 1:
            submode = submode_score(labels, self.fine, merged_assignments(assignments, labels, classes, groups))
        lines, mining = self._mined(points)
        extras = {k: v.detach().float().numpy() for k, v in self.loss_fn.snapshot_arrays().items()}
        return Frame(self.step_count, self.epoch, p_np, labels, self.fine, c_np, learned is not None, self._last_batch.copy(),
                     self._last_grad.numpy().copy(), center_forces.numpy(), lines, self._last_value, dict(self._last_terms), eff,
                     submode, mining, geometry(p_np, labels, self.fine), extras)

    def _center_forces(self, centers: torch.Tensor) -> torch.Tensor:
        """How the centers [C, K, D] move per unit step along −∂loss/∂parameters of the last batch (tangent part)."""
        params = [p for p in self.loss_fn.center_parameters() if p.grad is not None]
        if not params:
            return torch.zeros_like(centers)
        eps = 1e-3
        saved = [p.detach().clone() for p in params]
        for p in params:
            p.sub_(eps * p.grad)
        moved = F.normalize(self.loss_fn.centers().float(), dim=-1)
        for p, value in zip(params, saved):
            p.copy_(value)
        delta = (moved - centers) / eps
        return delta - (delta * centers).sum(-1, keepdim=True) * centers

    def _mined(self, points: torch.Tensor) -> tuple[dict[str, np.ndarray], str]:
        """The last batch's mined triplets (easy / semi-hard / hard edges) or pairs, as row pairs into the points."""
        rows = torch.as_tensor(self._last_batch)
        if not len(rows):
            return {}, "no batch yet"
        base = getattr(self.loss_fn, "base", self.loss_fn)
        x, y = points[rows], self.labels[rows]
        miner, kind = getattr(base, "miner", None), ""
        if getattr(base, "mining", None) == "distance":
            from ..losses.sampling import distance_weighted_triplets

            indices = distance_weighted_triplets(x, y, generator=self._generator)
            kind = "triplets drawn by distance-weighted sampling"
        elif miner is not None:
            indices = miner(x, y)
            kind = f"{'triplets' if len(indices) == 3 else 'pairs'} chosen by {type(miner).__name__}"
        else:
            return {}, "this loss weighs every pair (or proxy) of the batch: nothing is mined"
        batch = rows.numpy()
        if len(indices) == 3:
            a, p, n = (t.long() for t in indices)
            d_ap, d_an = (x[a] - x[p]).norm(dim=1), (x[a] - x[n]).norm(dim=1)
            margin = float(getattr(base, "margin", 0.1))
            hardness = np.where((d_an < d_ap).numpy(), "hard", np.where((d_an < d_ap + margin).numpy(), "semi-hard", "easy"))
            out: dict[str, np.ndarray] = {}
            for name in ("easy", "semi-hard", "hard"):
                pick = np.flatnonzero(hardness == name)[:MAX_LINES]
                out[name] = np.stack([batch[a[pick].numpy()], batch[n[pick].numpy()]], axis=1) if len(pick) else np.zeros((0, 2), int)
            out["positive"] = _pairs(batch, a, p)
            return out, kind + f" (margin {margin:g}): each line joins an anchor to its negative, coloured by how hard the triplet is"
        a1, p, a2, n = (t.long() for t in indices)
        return {"positive": _pairs(batch, a1, p), "negative": _pairs(batch, a2, n)}, kind

    # -- describing it -------------------------------------------------------------------------------
    def describe(self) -> str:
        """One line: the loss with its settings, the data, the head and the seed."""
        s = self.settings
        params = ", ".join(f"{k}={v}" for k, v in self.loss_fn.hparams.items())
        return (f"{self.loss_fn.name} ({params}) on {s.classes} classes × {s.modes_per_class} hidden modes, {len(self.inputs)} points "
                f"in {s.input_dim}-d (noise {s.noise:g}), {s.head} head → the unit {'circle' if s.dim == 2 else 'sphere'}; "
                f"Adam lr {s.lr:g} (centers {s.center_lr:g}), batch {s.batch_size}, seed {s.seed}")


def geometry(points: np.ndarray, labels: np.ndarray, fine: np.ndarray) -> dict[str, float]:
    """Figures of the drawn embedding (unit vectors [N, d]), in degrees where angles:

    - ``mode_gap``: mean over classes of the angle between the means of its hidden modes (mean over mode pairs);
      NaN with one mode per class;
    - ``separation``: the smallest angle between two class means;
    - ``spread``: mean over classes of 1 − ‖mean of its unit vectors‖ (0 = every sample of a class at one point);
    - ``dispersion``: 1 − ‖mean of all unit vectors‖ (0 = the whole embedding at one point; a 20° arc gives 0.005).
    """
    def unit_mean(x: np.ndarray) -> np.ndarray:
        m = x.mean(axis=0)
        return m / max(float(np.linalg.norm(m)), 1e-12)

    def angle(u: np.ndarray, v: np.ndarray) -> float:
        return float(np.degrees(np.arccos(np.clip(u @ v, -1.0, 1.0))))

    classes = np.unique(labels)
    gaps = []
    for c in classes:
        modes = np.unique(fine[labels == c])
        means = [unit_mean(points[fine == m]) for m in modes]
        gaps += [angle(means[i], means[j]) for i in range(len(means)) for j in range(i + 1, len(means))]
    centers = [unit_mean(points[labels == c]) for c in classes]
    separation = min((angle(centers[i], centers[j]) for i in range(len(centers)) for j in range(i + 1, len(centers))), default=float("nan"))
    spread = float(np.mean([1 - np.linalg.norm(points[labels == c].mean(axis=0)) for c in classes]))
    return {"mode_gap": float(np.mean(gaps)) if gaps else float("nan"), "separation": separation, "spread": spread,
            "dispersion": float(1 - np.linalg.norm(points.mean(axis=0)))}


def _pairs(batch: np.ndarray, a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    pick = slice(0, MAX_LINES)
    return np.stack([batch[a[pick].numpy()], batch[b[pick].numpy()]], axis=1) if len(a) else np.zeros((0, 2), int)

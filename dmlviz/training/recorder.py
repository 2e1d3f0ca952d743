"""Recorder: what the run folder keeps at every epoch (probe embeddings, centers, metrics)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data import DMLDataset, Split
from ..recording import epoch_snapshot, retrieval_row
from ..losses import DMLLoss
from ..losses.augmented import RECORDED_SOURCES
from ..runs import RunWriter
from .batches import Batches
from .config import PROBE_MAX_SIZE  # noqa: F401  (re-exported: the largest probe)

logger = logging.getLogger(__name__)


#: a probe class holds at least min(class size, PROBE_MIN_PER_CLASS) samples of each split it is in
PROBE_MIN_PER_CLASS = 8


def choose_probe(labels: np.ndarray, size: int, seed: int, split: np.ndarray | None = None) -> np.ndarray:
    """Up to ``size`` sample indices [<= size], sorted, made of whole classes; every sample when labels [N] has N <= size.

    When every class's proportional share of ``size`` is at least min(class size, 8) samples,
    the probe is stratified over classes (each class keeps its share; with ``split``, 0 = train
    and 1 = test per sample, over (class, split) pairs). Otherwise (many classes: e.g. 11k
    classes in 5,000 slots) classes are chosen first, then samples within them: each split
    keeps its share of ``size``; within a split every class gets min(its size, m) samples
    with m the level that fills the split's share, but m >= 8, so when the classes do not all
    fit, classes are taken in a seeded random order (the same order for both splits, so a
    class of a sample split holds samples of both) until the share is full.
    """
    n = len(labels)
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng([seed, 7])
    labels = np.asarray(labels, dtype=np.int64)
    classes, class_counts = np.unique(labels, return_counts=True)
    if np.all(np.floor(class_counts * size / n) >= np.minimum(class_counts, PROBE_MIN_PER_CLASS)):
        strata = labels * 2 + (0 if split is None else np.asarray(split, dtype=np.int64))
        groups, counts = np.unique(strata, return_counts=True)
        quota = np.maximum(1, np.floor(counts * size / n)).astype(int)
        chosen = [rng.choice(np.flatnonzero(strata == g), size=min(q, k), replace=False) for g, q, k in zip(groups, quota, counts)]
        picked = np.concatenate(chosen)
        if len(picked) > size:
            picked = rng.choice(picked, size=size, replace=False)
        return np.sort(picked)
    sides = np.zeros(n, dtype=np.int64) if split is None else np.asarray(split, dtype=np.int64)
    order = rng.permutation(len(classes))  # one class order for both splits
    side_values, side_counts = np.unique(sides, return_counts=True)
    budgets = np.floor(side_counts * size / n).astype(int)
    budgets[np.argmax(side_counts)] += size - budgets.sum()
    picked = []
    for side, budget in zip(side_values, budgets):
        members = np.flatnonzero(sides == side)
        index = np.searchsorted(classes, labels[members])
        members = members[np.argsort(index, kind="stable")]  # grouped by class
        starts = np.r_[0, np.cumsum(np.bincount(index, minlength=len(classes)))]
        counts = np.diff(starts)[order]
        per_class = np.minimum(counts, max(_fill_level(counts, budget), PROBE_MIN_PER_CLASS))
        room = budget - np.cumsum(per_class) + per_class  # slots left when each class's turn comes
        per_class = np.clip(np.minimum(per_class, room), 0, None)
        for k, take in zip(order, per_class):
            if take > 0:
                picked.append(rng.choice(members[starts[k] : starts[k + 1]], size=int(take), replace=False))
    return np.sort(np.concatenate(picked))


def _fill_level(counts: np.ndarray, budget: int) -> int:
    """Smallest m with sum(min(counts [C], m)) >= budget (the largest count when they never reach it)."""
    lo, hi = 0, int(counts.max(initial=0))
    while lo < hi:
        mid = (lo + hi) // 2
        if np.minimum(counts, mid).sum() >= budget:
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass
class Capture:
    """What one epoch's recording needs from the model and loss, taken while training waits: host copies only."""

    epoch: int
    raw: torch.Tensor  # [n_union, D] float32, CPU, not normalised
    centers: torch.Tensor | None  # [C, K, D] float32, CPU (learned centers), or None
    seconds: float
    test_on_device: torch.Tensor | None = None  # [n_test, D] unit vectors left on the GPU for the retrieval metrics
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # the loss's snapshot_arrays (e.g. MDR's levels)


class Recorder:
    """Embeds the probe set and the test split each epoch and writes snapshot and metrics.

    :meth:`capture` is the part that needs the model (embedding on the device, one copy to
    the host); :meth:`finish` computes metrics and writes files from the copies alone, so a
    trainer can run it in a background thread while the next epoch trains.
    """

    def __init__(
        self,
        dataset: DMLDataset,
        split: Split,
        writer: RunWriter,
        *,
        probe_size: int,
        eps: float,
        seed: int,
        device: torch.device,
        batch_size: int = 512,
        ks: tuple[int, ...] = (1, 2, 4, 8),
        num_workers: int = 0,
        nmi_method: str = "auto",
        nmi_every: int = 1,
        source: Batches | None = None,
    ) -> None:
        self.dataset, self.split, self.writer = dataset, split, writer
        self.source = source if source is not None else Batches(dataset, device, resident=False, num_workers=num_workers)
        self.nmi_method, self.nmi_every = nmi_method, nmi_every
        self.eps, self.device, self.batch_size, self.ks, self.num_workers = eps, device, batch_size, ks, num_workers
        if writer.has_probe():
            from ..runs import load_run

            self.probe_ids = load_run(writer.path).probe["ids"]
        else:
            both = np.sort(np.concatenate([split.train, split.test]))
            self.probe_ids = both[choose_probe(dataset.labels[both], probe_size, seed, split.membership(len(dataset))[both])]
            self._write_probe()
        self.probe_labels = dataset.labels[self.probe_ids]
        self.probe_fine = None if dataset.fine_labels is None else dataset.fine_labels[self.probe_ids]
        self.probe_held_out = split.membership(len(dataset))[self.probe_ids] == 1
        # Embed the union of probe and test samples once per epoch.
        self._union = np.union1d(self.probe_ids, split.test)
        self._probe_pos = np.searchsorted(self._union, self.probe_ids)
        self._test_pos = np.searchsorted(self._union, split.test)

    def _write_probe(self) -> None:
        ds, ids = self.dataset, self.probe_ids
        arrays: dict[str, np.ndarray] = {
            "ids": ids.astype(np.int64),
            "labels": ds.labels[ids].astype(np.int64),
            "split": self.split.membership(len(ds))[ids],
            "class_names": np.asarray(ds.class_names, dtype=str),
            "train_classes": self.split.train_classes.astype(np.int64),
        }
        if ds.fine_labels is not None:
            arrays["fine_labels"] = ds.fine_labels[ids].astype(np.int64)
            arrays["fine_names"] = np.asarray(ds.fine_names or [], dtype=str)
        coarse = getattr(ds, "coarse_labels", None)  # image benchmarks' super-classes (SOP, In-Shop)
        if coarse is not None:
            arrays["coarse_labels"] = np.asarray(coarse)[ids].astype(np.int64)
            arrays["coarse_names"] = np.asarray(getattr(ds, "coarse_names", None) or [], dtype=str)
        thumbs = ds.thumbnails(ids)
        if thumbs is not None:
            arrays["thumbnails"] = thumbs
        self.writer.write_probe(arrays)

    def embed(self, model: torch.nn.Module, indices: np.ndarray, on_device: bool = False) -> torch.Tensor:
        """Embeddings [n, D] (float32, not normalised) of the dataset samples ``indices``, on the CPU (or left on the device)."""
        return self.source.embed(model, indices, batch_size=self.batch_size, on_device=on_device)

    def capture(self, epoch: int, model: torch.nn.Module, loss: DMLLoss) -> Capture:
        """Embed the probe and test samples and copy the centers: the part of recording that needs the model."""
        start = time.perf_counter()
        embedded = self.embed(model, self._union, on_device=True)
        if not torch.isfinite(embedded).all():
            raise FloatingPointError(f"the model's embeddings became NaN or inf during epoch {epoch}")
        raw = embedded.cpu()
        # on a GPU the retrieval metrics run there (SOP's 60,502 × 512 test split: 0.29 s), not on the host
        test_on_device = None
        if embedded.is_cuda and len(self._test_pos) >= 2:
            test_on_device = F.normalize(embedded[torch.as_tensor(self._test_pos, device=embedded.device)], dim=1)
        learned = loss.centers()
        if learned is not None:
            learned = learned.float().cpu()
            if not torch.isfinite(learned).all():
                raise FloatingPointError(f"the loss's centers became NaN or inf during epoch {epoch}")
        extras = {name: value.float().cpu().numpy() for name, value in loss.snapshot_arrays().items()}
        extras.update(self._synthetic(embedded, loss, epoch))
        return Capture(epoch, raw, learned, time.perf_counter() - start, test_on_device, extras)

    def _synthetic(self, embedded: torch.Tensor, loss: DMLLoss, epoch: int) -> dict[str, np.ndarray]:
        """The synthetic points an augmenting loss (DAS) would make from a fixed set of probe samples of training classes."""
        if not hasattr(self, "_synthetic_sources"):
            train_classes = self.split.train_classes
            eligible = np.flatnonzero(np.isin(self.probe_labels, train_classes))
            if len(eligible) > RECORDED_SOURCES:
                eligible = np.sort(np.random.default_rng(0).choice(eligible, size=RECORDED_SOURCES, replace=False))
            self._synthetic_sources = eligible
            self._synthetic_labels = np.searchsorted(train_classes, self.probe_labels[eligible])
        rows = self._synthetic_sources
        if not len(rows):
            return {}
        x = embedded[torch.as_tensor(self._probe_pos[rows], device=embedded.device)]
        labels = torch.as_tensor(self._synthetic_labels, device=embedded.device)
        made = loss.synthetic_points(x, labels, seed=epoch)
        if made is None:
            return {}
        points, sources = made
        return {"synthetic": F.normalize(points.float(), dim=1).cpu().numpy(), "synthetic_source": rows[sources.cpu().numpy()].astype(np.int64)}

    def record(self, epoch: int, model: torch.nn.Module, loss: DMLLoss, train_stats: dict[str, float]) -> dict[str, Any]:
        """Write epoch_NNNN.npz and the epoch's metrics row; return the row."""
        return self.finish(self.capture(epoch, model, loss), train_stats)

    def finish(self, capture: Capture, train_stats: dict[str, float]) -> dict[str, Any]:
        """Write epoch_NNNN.npz and the metrics row of a captured epoch (no model needed); return the row."""
        start = time.perf_counter()
        epoch, raw, learned = capture.epoch, capture.raw, capture.centers
        arrays, center_row = epoch_snapshot(
            epoch, raw[self._probe_pos], self.probe_labels, None if learned is None else learned.numpy(),
            self.split.train_classes.astype(np.int64), self.eps, self.probe_fine, self.probe_held_out,
        )
        self.writer.write_epoch(epoch, {**arrays, **capture.extras})
        row: dict[str, Any] = {"epoch": epoch, **train_stats}
        due = self.nmi_method != "off" and epoch % self.nmi_every == 0  # NaN (a gap in the metrics view) otherwise
        test = capture.test_on_device if capture.test_on_device is not None else F.normalize(raw[self._test_pos], dim=1)
        row.update(retrieval_row(test, self.dataset.labels[self.split.test], self.ks, self.nmi_method, due))
        row.update(center_row)
        row["record_seconds"] = capture.seconds + time.perf_counter() - start
        self.writer.append_metrics(row)
        return row

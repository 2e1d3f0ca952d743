"""Recorder: what the run folder keeps at every epoch (probe embeddings, centers, metrics)."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data import DMLDataset, Split
from ..eval import assign_to_centers, center_groups, effective_k, merged_assignments, nmi, retrieval_metrics, submode_score
from ..losses import DMLLoss
from ..runs import RunWriter

logger = logging.getLogger(__name__)


def choose_probe(labels: np.ndarray, size: int, seed: int, split: np.ndarray | None = None) -> np.ndarray:
    """Up to ``size`` sample indices, sorted, stratified over classes (each class keeps its share).

    With ``split`` (0 = train, 1 = test, one per sample) the strata are (split, class) pairs,
    so both splits keep their share too.
    """
    n = len(labels)
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng([seed, 7])
    strata = np.asarray(labels, dtype=np.int64) * 2 + (0 if split is None else np.asarray(split, dtype=np.int64))
    groups, counts = np.unique(strata, return_counts=True)
    quota = np.maximum(1, np.floor(counts * size / n)).astype(int)
    chosen = [rng.choice(np.flatnonzero(strata == g), size=min(q, k), replace=False) for g, q, k in zip(groups, quota, counts)]
    picked = np.concatenate(chosen)
    if len(picked) > size:
        picked = rng.choice(picked, size=size, replace=False)
    return np.sort(picked)


class Recorder:
    """Embeds the probe set and the test split each epoch and writes snapshot and metrics."""

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
    ) -> None:
        self.dataset, self.split, self.writer = dataset, split, writer
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

    @torch.no_grad()
    def embed(self, model: torch.nn.Module, indices: np.ndarray) -> torch.Tensor:
        """Embeddings [n, D] (float32, on CPU, not normalised) of the dataset samples ``indices``."""
        was_training = model.training
        model.eval()
        chunks = [indices[i : i + self.batch_size] for i in range(0, len(indices), self.batch_size)]
        out = []
        for inputs, _ in self.dataset.batches(chunks, num_workers=self.num_workers):
            inputs = inputs.to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                out.append(model(inputs).float().cpu())
        model.train(was_training)
        return torch.cat(out) if out else torch.empty(0, 0)

    def record(self, epoch: int, model: torch.nn.Module, loss: DMLLoss, train_stats: dict[str, float]) -> dict[str, Any]:
        """Write epoch_NNNN.npz and the epoch's metrics row; return the row."""
        start = time.perf_counter()
        raw = self.embed(model, self._union)
        if not torch.isfinite(raw).all():
            raise FloatingPointError(f"the model's embeddings became NaN or inf during epoch {epoch}")
        unit = F.normalize(raw, dim=1)
        probe_raw = raw[self._probe_pos]
        probe = unit[self._probe_pos].numpy()

        learned = loss.centers()
        if learned is not None and not torch.isfinite(learned).all():
            raise FloatingPointError(f"the loss's centers became NaN or inf during epoch {epoch}")
        if learned is not None:
            centers = learned.float().cpu().numpy()
            center_classes = self.split.train_classes.astype(np.int64)
            kind = "learned"
        else:
            center_classes = np.unique(self.probe_labels)
            means = np.stack([probe[self.probe_labels == c].mean(axis=0) for c in center_classes])
            centers = F.normalize(torch.from_numpy(means), dim=1).numpy()[:, None, :]
            kind = "class_means"
        assignments = assign_to_centers(probe, self.probe_labels, centers, center_classes)
        eff_k = effective_k(centers, eps=self.eps)
        self.writer.write_epoch(
            epoch,
            {
                "epoch": np.int64(epoch),
                "embeddings": probe.astype(np.float32),
                "norms": probe_raw.norm(dim=1).numpy().astype(np.float32),
                "centers": centers.astype(np.float32),
                "center_classes": center_classes,
                "centers_kind": np.asarray(kind),
                "assignments": assignments.astype(np.int64),
                "effective_k": eff_k.astype(np.int64),
                "eps": np.float64(self.eps),
            },
        )
        row: dict[str, Any] = {"epoch": epoch, **train_stats}
        test = unit[self._test_pos]
        test_labels = self.dataset.labels[self.split.test]
        if len(test) >= 2:
            row.update(retrieval_metrics(test, test_labels, ks=self.ks))
            row["nmi"] = nmi(test.numpy(), test_labels)
        if self.probe_fine is not None:
            # how the centers split each class along its hidden fine labels (≈ 0 at chance, 1 exact):
            # on the probe's held-out samples (the claim is about generalisation; NaN when held-out
            # classes have no centers, as with a class-disjoint split) and on its training samples
            # centers merged under eps count as one (as effective K and the map count them)
            merged = merged_assignments(assignments, self.probe_labels, center_classes, center_groups(centers, eps=self.eps))
            for column, rows in (("submode_score", self.probe_held_out), ("submode_score_train", ~self.probe_held_out)):
                row[column] = submode_score(self.probe_labels[rows], self.probe_fine[rows], merged[rows])
        row["effective_k"] = float(eff_k.mean()) if len(eff_k) else float("nan")
        row["record_seconds"] = time.perf_counter() - start
        self.writer.append_metrics(row)
        return row

"""Recording embeddings into a run folder: one epoch's snapshot and metrics (shared with dmlviz's trainer), and
:class:`Recorder`, the public way to record from any training loop."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .eval import assign_to_centers, center_groups, merged_assignments, nmi, nmi_chance, recall_at_1_chance, retrieval_metrics, submode_score

logger = logging.getLogger(__name__)

#: centers [C, K, D] with more values than this (16 MB as float32; SOP's 11,318 × 10 × 512 has 58 M) are
#: stored compactly: only the probe's classes, as float16
CENTERS_COMPACT_ABOVE = 4_000_000


def compact_centers(
    centers: np.ndarray, center_classes: np.ndarray, effective_k: np.ndarray, probe_classes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """What a snapshot stores of centers [C, K, D]: all as float32, or above CENTERS_COMPACT_ABOVE values the probe's classes as float16.

    Returns (centers [C', K, D], center_classes [C'], effective_k [C'], how): "all" or
    "probe classes, float16". Views read only the probe's classes; the metrics' mean
    effective K is computed over every class before this.
    """
    if centers.size <= CENTERS_COMPACT_ABOVE:
        return centers.astype(np.float32), center_classes, effective_k.astype(np.int64), "all"
    keep = np.isin(center_classes, probe_classes)
    return centers[keep].astype(np.float16), center_classes[keep], effective_k[keep].astype(np.int64), "probe classes, float16"


def epoch_snapshot(
    epoch: int, raw: torch.Tensor, labels: np.ndarray, centers: np.ndarray | None, center_classes: np.ndarray | None, eps: float,
    fine_labels: np.ndarray | None = None, held_out: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """(epoch_NNNN.npz arrays, metrics of the centers) of probe embeddings ``raw`` [P, D] (not normalised), labels [P].

    ``centers`` [C, K, D] (unit) with ``center_classes`` [C], or None: class means of the probe stand in
    ("class_means"). Metrics: "effective_k" (mean over classes, centers closer than ``eps`` merged) and,
    with ``fine_labels`` [P], "submode_score" on the ``held_out`` [P] samples and "submode_score_train" on the others.
    """
    unit = F.normalize(raw.float(), dim=1).numpy()
    if centers is not None:
        kind = "learned"
        center_classes = np.asarray(center_classes, dtype=np.int64)
    else:
        center_classes = np.unique(labels)
        rows = np.searchsorted(center_classes, labels)  # one pass, not one per class (SOP: 11k classes × 100k points)
        means = np.zeros((len(center_classes), unit.shape[1]), dtype=np.float64)
        np.add.at(means, rows, unit)
        means /= np.bincount(rows, minlength=len(center_classes))[:, None]
        centers = F.normalize(torch.from_numpy(means), dim=1).numpy()[:, None, :]
        kind = "class_means"
    assignments = assign_to_centers(unit, labels, centers, center_classes)
    groups = center_groups(centers, eps=eps)  # merged centres, for effective K and the sub-mode score
    eff_k = (groups.max(axis=1) + 1).astype(np.int64)
    stored, stored_classes, stored_k, how = compact_centers(centers, center_classes, eff_k, np.unique(labels))
    arrays = {
        "epoch": np.int64(epoch),
        "embeddings": unit.astype(np.float32),
        "norms": raw.float().norm(dim=1).numpy().astype(np.float32),
        "centers": stored,
        "center_classes": stored_classes,
        "centers_kind": np.asarray(kind),
        "centers_stored": np.asarray(how),
        "assignments": assignments.astype(np.int64),
        "effective_k": stored_k,
        "eps": np.float64(eps),
    }
    row: dict[str, float] = {}
    if fine_labels is not None:
        # how the centers split each class along its hidden fine labels (≈ 0 at chance, 1 exact), on the held-out
        # samples (the claim is about generalisation) and on the training ones; merged centers count as one
        merged = merged_assignments(assignments, labels, center_classes, groups)
        held = np.zeros(len(labels), dtype=bool) if held_out is None else np.asarray(held_out, dtype=bool)
        for column, rows in (("submode_score", held), ("submode_score_train", ~held)):
            row[column] = submode_score(labels[rows], fine_labels[rows], merged[rows])
    row["effective_k"] = float(eff_k.mean()) if len(eff_k) else float("nan")
    return arrays, row


def retrieval_row(test: Any, labels: np.ndarray, ks: tuple[int, ...], nmi_method: str, nmi_due: bool) -> dict[str, float]:
    """Recall@k, MAP@R, … of the unit test embeddings [T, D] (labels [T]; on a GPU they stay there), Recall@1's chance level
    ``recall@1_chance``, NMI and its chance level ``nmi_chance`` (NaN when off or not due); empty with fewer than 2 samples."""
    if len(labels) < 2:
        return {}
    row = retrieval_metrics(test, labels, ks=ks)
    row["recall@1_chance"] = recall_at_1_chance(labels)
    if nmi_due:
        row["nmi"] = nmi(test.cpu().numpy() if isinstance(test, torch.Tensor) else np.asarray(test), labels, method=nmi_method)
        row["nmi_chance"] = nmi_chance(labels, method=nmi_method)
    else:
        row["nmi"] = row["nmi_chance"] = float("nan")
    return row


def _as_numpy(value: Any, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as error:  # noqa: BLE001 - the message names the argument
        raise TypeError(f"{name} must be an array or a tensor, got {type(value).__name__}") from error


class Recorder:
    """Record embeddings from any training loop into a dmlviz run folder, which the explorer opens (and follows live).

    ``Recorder(path, labels=[N], fine_labels=None, split=None, thumbnails=None, class_names=None, config=None)``, then
    ``log(epoch, embeddings [N, D], centers=None, center_classes=None, metrics=None)`` once per epoch and ``close()``
    (or use it as a context manager). ``split``: per sample "train"/"test" (or 0/1, or booleans True = test); retrieval
    metrics (Recall@k, MAP@R, NMI, nDCG) are computed on the test samples, or on all when there is no split.
    ``centers``: [C, D] or [C, K, D] (array or tensor), a dmlviz loss, or any module holding one such parameter
    (pytorch-metric-learning's ``proxies``, …; name it with ``center_param`` when it holds several); by default their
    classes are the training split's classes in order. Without centers the class means stand in. ``metrics``: numbers
    recorded with the epoch; dmlviz computes the ones not given. Files are written atomically, as ``dmlviz.train`` writes them.
    """

    def __init__(self, path: str | os.PathLike, labels: Any, *, fine_labels: Any = None, split: Any = None, thumbnails: Any = None,
                 class_names: Any = None, config: dict[str, Any] | None = None, overwrite: bool = False, eps: float = 0.05,
                 ks: tuple[int, ...] = (1, 2, 4, 8), nmi: str = "auto") -> None:
        from .data import SPLITS  # noqa: F401  (import check: the data package is importable)
        from .eval.clustering import resolve_nmi_method
        from .runs import RunWriter
        from .training.builder import versions

        y = _as_numpy(labels, "labels")
        if y.ndim != 1 or len(y) < 2 or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
            raise ValueError(f"labels must be non-negative integers of shape [N] with N >= 2, got dtype {y.dtype} shape {y.shape}")
        self.labels = y.astype(np.int64)
        n = len(y)
        self.fine = None if fine_labels is None else self._per_sample(fine_labels, "fine_labels").astype(np.int64)
        self.held_out = self._split_codes(split, n)
        names = [str(c) for c in range(int(y.max()) + 1)] if class_names is None else [str(c) for c in class_names]
        if len(names) <= int(y.max()):
            raise ValueError(f"class_names has {len(names)} names, but labels go up to {int(y.max())}; give one name per class")
        self.train_classes = np.unique(y[~self.held_out]) if (~self.held_out).any() else np.unique(y)
        self.test_rows = np.flatnonzero(self.held_out) if self.held_out.any() else np.arange(n)
        self.eps, self.ks = float(eps), tuple(ks)
        self.nmi_method = resolve_nmi_method(nmi, len(self.test_rows), len(np.unique(y[self.test_rows])))
        self.dim: int | None = None
        self.logged: list[int] = []
        run_config = {"dataset": "custom", "model": "custom", "loss": "custom", "recorded_by": "dmlviz.Recorder", "num_samples": n,
                      "num_classes": len(names), "split": "given" if split is not None else "none", "probe_size": n, "eps": self.eps,
                      "nmi": self.nmi_method, **(config or {})}
        self.writer = RunWriter(path)
        self.writer.start(run_config, versions(), resume=False, overwrite=overwrite)
        probe = {"ids": np.arange(n, dtype=np.int64), "labels": self.labels, "split": self.held_out.astype(np.uint8),
                 "class_names": np.asarray(names, dtype=str), "train_classes": self.train_classes.astype(np.int64)}
        if self.fine is not None:
            probe["fine_labels"] = self.fine
            probe["fine_names"] = np.asarray([str(f) for f in range(int(self.fine.max()) + 1)], dtype=str)
        if thumbnails is not None:
            thumbs = _as_numpy(thumbnails, "thumbnails")
            if len(thumbs) != n or thumbs.dtype != np.uint8 or thumbs.ndim not in (3, 4):
                raise ValueError(f"thumbnails must be uint8 [N, H, W] or [N, H, W, 3] with N = {n}, got {thumbs.dtype} {thumbs.shape}")
            probe["thumbnails"] = thumbs
        self.writer.write_probe(probe)
        self.writer.start_heartbeat()
        self.closed = False

    def _per_sample(self, value: Any, name: str) -> np.ndarray:
        array = _as_numpy(value, name)
        if array.shape[:1] != (len(self.labels),):
            raise ValueError(f"{name} must have one entry per sample ({len(self.labels)}), got shape {array.shape}")
        return array

    def _split_codes(self, split: Any, n: int) -> np.ndarray:
        if split is None:
            return np.zeros(n, dtype=bool)
        codes = self._per_sample(split, "split")
        if codes.dtype.kind in "US":
            bad = sorted(set(codes.tolist()) - {"train", "test"})
            if bad:
                raise ValueError(f"split holds {bad[:3]}; use 'train' and 'test' (or 0 / 1, or booleans True = test)")
            return codes == "test"
        if not set(np.unique(codes).tolist()) <= {0, 1}:
            raise ValueError(f"split must be 'train'/'test', 0/1 or booleans, got values {np.unique(codes)[:5].tolist()}")
        return codes.astype(bool)

    def _centers(self, centers: Any, center_param: str | None) -> np.ndarray | None:
        """Unit centers [C, K, D] from an array, a tensor, a dmlviz loss or a module holding them; None for none."""
        from .losses import DMLLoss

        if centers is None:
            return None
        if isinstance(centers, DMLLoss):
            found = centers.centers()
            return None if found is None else found.detach().float().cpu().numpy()
        if isinstance(centers, torch.nn.Module):
            named = dict(centers.named_parameters())
            if center_param is not None:
                if center_param not in named:
                    raise ValueError(f"center_param={center_param!r} is not a parameter of {type(centers).__name__}; it has {sorted(named)}")
                centers = named[center_param]
            else:
                fits = {k: p for k, p in named.items() if p.ndim in (2, 3) and p.shape[-1] == self.dim and p.shape[0] == len(self.train_classes)}
                if len(fits) != 1:
                    raise ValueError(
                        f"{type(centers).__name__} has {len(fits)} parameters shaped [C, D] or [C, K, D] with C = {len(self.train_classes)} "
                        f"training classes and D = {self.dim} ({sorted(fits) or 'none'}); name one with center_param=, or pass the array"
                    )
                centers = next(iter(fits.values()))
        array = _as_numpy(centers, "centers").astype(np.float32)
        if array.ndim == 2:
            array = array[:, None, :]
        if array.ndim != 3 or array.shape[-1] != self.dim:
            raise ValueError(f"centers must be [C, D] or [C, K, D] with D = {self.dim} (the embeddings'), got shape {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError("centers contain NaN or inf")
        return array / np.maximum(np.linalg.norm(array, axis=-1, keepdims=True), 1e-12)

    def log(self, epoch: int, embeddings: Any, centers: Any = None, center_classes: Any = None, metrics: dict[str, float] | None = None,
            *, center_param: str | None = None) -> dict[str, Any]:
        """Record ``epoch``: embeddings [N, D] of every sample (in the order of ``labels``); returns its metrics row."""
        if self.closed:
            raise RuntimeError(f"the recorder of {str(self.writer.path)!r} is closed; make a new one to record more")
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        epoch = int(epoch)
        if self.logged and epoch <= self.logged[-1]:
            raise ValueError(f"epoch {epoch} was already logged or comes before the last one ({self.logged[-1]}); log epochs in increasing order")
        z = _as_numpy(embeddings, "embeddings").astype(np.float32)
        if z.ndim != 2 or len(z) != len(self.labels):
            raise ValueError(f"embeddings must be [N, D] with N = {len(self.labels)} (one row per label), got shape {z.shape}")
        if self.dim is not None and z.shape[1] != self.dim:
            raise ValueError(f"embeddings have D = {z.shape[1]}, but earlier epochs had D = {self.dim}")
        if not np.isfinite(z).all():
            raise ValueError(f"embeddings of epoch {epoch} contain NaN or inf ({int((~np.isfinite(z)).any(axis=1).sum())} rows)")
        given: dict[str, float] = {}
        for key, value in (metrics or {}).items():  # checked before anything is written
            try:
                given[str(key)] = float(value)
            except (TypeError, ValueError) as error:
                raise ValueError(f"metrics[{key!r}] must be a number, got {value!r}") from error
        first_dim, self.dim = self.dim, z.shape[1]
        try:
            c = self._centers(centers, center_param)
        except (ValueError, TypeError):
            self.dim = first_dim
            raise
        classes = self.train_classes if center_classes is None else _as_numpy(center_classes, "center_classes").astype(np.int64)
        if c is not None and len(classes) != len(c):
            self.dim = first_dim
            raise ValueError(f"center_classes must give one class per center row ({len(c)}), got {len(classes)}")
        raw = torch.from_numpy(z)
        arrays, center_row = epoch_snapshot(epoch, raw, self.labels, c, classes, self.eps, self.fine, self.held_out)
        self.writer.write_epoch(epoch, arrays)
        row: dict[str, Any] = {"epoch": epoch, "loss": float("nan")}
        test = F.normalize(raw[torch.as_tensor(self.test_rows)], dim=1)
        row.update(retrieval_row(test, self.labels[self.test_rows], self.ks, self.nmi_method, self.nmi_method != "off"))
        row.update(center_row)
        row.update(given)
        self.writer.append_metrics(row)
        self.writer.update(last_epoch=epoch)
        self.logged.append(epoch)
        return row

    def close(self) -> None:
        """Mark the run finished (the explorer stops waiting for epochs)."""
        if self.closed:
            return
        self.closed = True
        self.writer.stop_heartbeat()
        self.writer.update(status="finished" if self.logged else "stopped")

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if error is not None and not self.closed:
            self.closed = True
            self.writer.stop_heartbeat()
            self.writer.mark_failed(error, diverged=False)
            return
        self.close()

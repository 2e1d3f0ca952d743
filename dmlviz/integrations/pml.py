"""pytorch-metric-learning trainers recorded as dmlviz runs: hooks that embed a dataset with PML's tester at each
epoch's end and log it, with the loss's proxies, through :class:`dmlviz.Recorder`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


class RecordingHooks:
    """``end_of_iteration`` and ``end_of_epoch`` hooks for a PML trainer (``trainers.MetricLossOnly(...,
    end_of_iteration_hook=hooks.end_of_iteration, end_of_epoch_hook=hooks.end_of_epoch)``).

    At each epoch's end, ``dataset`` (whose labels are the recorder's, in order) is embedded by PML's
    ``GlobalEmbeddingSpaceTester.get_all_embeddings`` with the trainer's "trunk" (and "embedder") models and logged with
    the mean "total_loss" of the epoch and the centers held by ``trainer.loss_funcs[loss]`` (its proxies, if any).
    :meth:`record` logs an epoch by hand, e.g. epoch 0 before training (the untrained baseline).
    """

    def __init__(self, recorder: Any, dataset: Any, *, loss: str = "metric_loss", batch_size: int = 256) -> None:
        from pytorch_metric_learning import testers
        from pytorch_metric_learning.distances import CosineSimilarity
        from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
        from pytorch_metric_learning.utils.inference import CustomKNN

        self.recorder, self.dataset, self.loss = recorder, dataset, loss
        # PML's default accuracy calculator needs faiss; dmlviz computes the metrics itself, so a plain k-NN will do here
        calculator = AccuracyCalculator(knn_func=CustomKNN(CosineSimilarity()))
        self.tester = testers.GlobalEmbeddingSpaceTester(batch_size=batch_size, dataloader_num_workers=0, accuracy_calculator=calculator)
        self._sum, self._count = 0.0, 0

    def end_of_iteration(self, trainer: Any) -> None:
        """Add the iteration's total loss to the epoch's mean."""
        value = trainer.losses.get("total_loss")
        if value is not None:
            self._sum += float(value.detach() if isinstance(value, torch.Tensor) else value)
            self._count += 1

    def end_of_epoch(self, trainer: Any) -> bool:
        """Embed the dataset and log the epoch; True (training goes on)."""
        loss = self._sum / self._count if self._count else float("nan")
        self._sum, self._count = 0.0, 0
        self.record(int(trainer.epoch), trainer.models, trainer.loss_funcs, loss)
        return True

    def record(self, epoch: int, models: dict[str, torch.nn.Module], loss_funcs: dict[str, Any] | None = None,
               loss: float = float("nan")) -> dict[str, Any]:
        """Embed the dataset with ``models`` ("trunk", optional "embedder") and log it as ``epoch``; the metrics row."""
        trunk, embedder = models["trunk"], models.get("embedder")
        embeddings, labels = self.tester.get_all_embeddings(self.dataset, trunk, embedder, return_as_numpy=True)
        labels = np.asarray(labels).reshape(len(labels), -1)[:, 0]
        if not np.array_equal(labels.astype(np.int64), self.recorder.labels):
            raise ValueError("the dataset's labels are not the recorder's labels in the same order; make the Recorder with "
                             "labels=[label of each sample of this dataset] and pass the same dataset")
        holder = (loss_funcs or {}).get(self.loss)
        centers = holder if _has_centers(holder, self.recorder) else None
        metrics = {} if math.isnan(loss) else {"loss": loss}
        return self.recorder.log(epoch, embeddings, centers=centers, metrics=metrics)


def _has_centers(module: Any, recorder: Any) -> bool:
    """Whether ``module`` holds one parameter shaped [C, (K,) D] for the recorder's training classes."""
    if not isinstance(module, torch.nn.Module):
        return False
    classes = len(recorder.train_classes)
    return sum(1 for p in module.parameters() if p.ndim in (2, 3) and p.shape[0] == classes) == 1

"""PyTorch Lightning runs recorded as dmlviz runs: a callback that embeds a dataset at each training epoch's end and logs
it through :class:`dmlviz.Recorder` (``pip install dmlviz[lightning]``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback


class RecordingCallback(Callback):
    """``Trainer(callbacks=[RecordingCallback(recorder, inputs)])``: epoch 0 (the untrained model) when training starts,
    then every ``every`` epochs the module's embeddings of ``inputs`` (a tensor [N, ...] or a DataLoader yielding
    (inputs, labels), in the order of the recorder's labels), with the centers of ``centers`` (an attribute name of the
    LightningModule holding a [C, (K,) D] parameter, e.g. a loss with proxies; None: none) and ``loss`` (the logged
    metric of that name, e.g. "train_loss", when the module logged it)."""

    def __init__(self, recorder: Any, inputs: Any, *, centers: str | None = None, loss: str = "train_loss", every: int = 1,
                 batch_size: int = 512) -> None:
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.recorder, self.inputs, self.centers, self.loss, self.every, self.batch_size = recorder, inputs, centers, loss, every, batch_size

    @torch.no_grad()
    def _embed(self, module: Any) -> np.ndarray:
        was_training = module.training
        module.eval()
        try:
            if isinstance(self.inputs, torch.Tensor):
                batches = self.inputs.split(self.batch_size)
            else:
                batches = (batch[0] if isinstance(batch, (list, tuple)) else batch for batch in self.inputs)
            out = [module(batch.to(module.device)).float().cpu() for batch in batches]
        finally:
            module.train(was_training)
        return torch.cat(out).numpy()

    def _log(self, epoch: int, trainer: Any, module: Any) -> None:
        holder = getattr(module, self.centers) if self.centers else None
        value = trainer.callback_metrics.get(self.loss)
        metrics = {} if value is None or not math.isfinite(float(value)) else {"loss": float(value)}
        self.recorder.log(epoch, self._embed(module), centers=holder, metrics=metrics)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Epoch 0: the model before training (the baseline every later epoch is read against)."""
        if trainer.is_global_zero and not self.recorder.logged:
            self._log(0, trainer, pl_module)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Log epoch ``current_epoch + 1`` (every ``every`` epochs)."""
        epoch = trainer.current_epoch + 1
        if trainer.is_global_zero and epoch % self.every == 0:
            self._log(epoch, trainer, pl_module)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """Mark the run finished."""
        if trainer.is_global_zero:
            self.recorder.close()

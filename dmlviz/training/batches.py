"""Where training and recording batches come from: inputs kept on the device, or a DataLoader."""

from __future__ import annotations

import logging
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ..data import ArrayDataset, DMLDataset

logger = logging.getLogger(__name__)

#: a dataset stays on the GPU when its inputs take at most this share of the free GPU memory
RESIDENT_SHARE = 0.25


def can_stay_resident(data: DMLDataset) -> bool:
    """Whether ``data`` is an in-memory dataset whose training batches are plain slices (no augmentation)."""
    return isinstance(data, ArrayDataset) and type(data).train_batches is DMLDataset.train_batches


def decide_resident(data: DMLDataset, device: torch.device, asked: Any) -> bool:
    """``asked`` True / False / "auto" → whether the inputs are kept on ``device`` (auto: CUDA and they fit)."""
    if not can_stay_resident(data):
        if asked is True:
            raise ValueError(
                f"resident=True keeps an in-memory dataset on the device, but {type(data).__name__} {data.name!r} is read "
                "through a DataLoader (images decoded and augmented per batch); use resident='auto' or False"
            )
        return False
    if asked != "auto":
        return bool(asked)
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    fits = data.inputs.element_size() * data.inputs.nelement() <= RESIDENT_SHARE * free
    if not fits:
        logger.info("dataset %s does not fit a quarter of the free GPU memory; batches come from the host", data.name)
    return fits


def upload(indices: np.ndarray, device: torch.device) -> torch.Tensor:
    """int64 indices [n] on ``device`` in one (pinned, non-blocking on CUDA) transfer."""
    flat = torch.from_numpy(np.ascontiguousarray(indices, dtype=np.int64))
    if device.type == "cuda":
        flat = flat.pin_memory()
    return flat.to(device, non_blocking=True)


class Batches:
    """Yields inputs [b, *input_shape] on the device for lists of dataset indices.

    Resident: the dataset's inputs live on the device once, each epoch's indices are copied
    there in one transfer, and batches are slices indexed on the device (no DataLoader, no
    host work per batch). Otherwise the dataset's own (DataLoader) batches, copied with
    ``non_blocking`` from pinned memory.
    """

    def __init__(self, data: DMLDataset, device: torch.device, *, resident: bool, num_workers: int = 0) -> None:
        self.data, self.device, self.resident, self.num_workers = data, device, resident, num_workers
        if resident:
            self._inputs = data.inputs.to(device)

    def _resident(self, batches: Sequence[np.ndarray]) -> Iterator[torch.Tensor]:
        if not len(batches):
            return
        flat = upload(np.concatenate([np.asarray(b, dtype=np.int64) for b in batches]), self.device)
        start = 0
        for b in batches:
            yield self._inputs[flat[start : start + len(b)]]
            start += len(b)

    def _moved(self, source: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> Iterator[torch.Tensor]:
        for inputs, _ in source:
            yield inputs.to(self.device, non_blocking=True)

    def train(self, batches: Sequence[np.ndarray]) -> Iterator[torch.Tensor]:
        """Training batches (image datasets augment them) of dataset indices."""
        if self.resident:
            return self._resident(batches)
        return self._moved(self.data.train_batches(batches, num_workers=self.num_workers))

    def eval(self, batches: Sequence[np.ndarray]) -> Iterator[torch.Tensor]:
        """Evaluation batches (image datasets use their test transform) of dataset indices."""
        if self.resident:
            return self._resident(batches)
        return self._moved(self.data.batches(batches, num_workers=self.num_workers))

    @torch.no_grad()
    def embed(self, model: torch.nn.Module, indices: np.ndarray, *, batch_size: int = 512, on_device: bool = False) -> torch.Tensor:
        """Embeddings [n, D] (float32, not normalised, eval mode, bf16 autocast on CUDA) of the dataset samples ``indices``.

        They stay on the device until the last batch, then (unless ``on_device``) come to the host in one copy.
        """
        was_training = model.training
        model.eval()
        chunks = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
        out = []
        try:
            for inputs in self.eval(chunks):
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                    out.append(model(inputs).float())
        finally:
            model.train(was_training)
        if not out:
            return torch.empty(0, 0)
        return torch.cat(out) if on_device else torch.cat(out).cpu()

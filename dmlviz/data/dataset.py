"""The dataset interface every part of dmlviz reads: inputs, labels, hidden fine labels, thumbnails."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch


class DMLDataset(torch.utils.data.Dataset):
    """Base class of a labelled dataset for metric learning.

    Subclasses set ``labels`` (int64 [N], classes 0..C-1), ``class_names`` (C strings),
    ``input_shape`` (shape of one input), optionally ``fine_labels`` (int64 [N], the hidden
    sub-mode of each sample) with ``fine_names``, and implement ``__getitem__``. Image datasets
    override :meth:`thumbnails`. Large on-disk datasets (image folders) keep this interface and
    are read through :meth:`batches`, which uses a ``DataLoader`` with workers.
    """

    name: str = "dataset"
    labels: np.ndarray
    class_names: list[str]
    input_shape: tuple[int, ...]
    fine_labels: np.ndarray | None = None
    fine_names: list[str] | None = None

    def __len__(self) -> int:
        """Number of samples N."""
        return int(len(self.labels))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """One sample as (input tensor of ``input_shape``, class label)."""
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        """Number of classes C."""
        return len(self.class_names)

    @property
    def has_images(self) -> bool:
        """Whether :meth:`thumbnails` returns pictures."""
        return False

    def thumbnails(self, indices: Sequence[int] | np.ndarray) -> np.ndarray | None:
        """Small uint8 pictures [n, H, W] or [n, H, W, 3] of the given samples, or None."""
        return None

    def batches(
        self, batches: Sequence[np.ndarray], num_workers: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (inputs [b, *input_shape], labels [b]) for each array of indices in ``batches``."""
        loader = torch.utils.data.DataLoader(
            self, batch_sampler=[list(map(int, b)) for b in batches], num_workers=num_workers
        )
        yield from loader

    def train_batches(
        self, batches: Sequence[np.ndarray], num_workers: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Like :meth:`batches`, for training: image datasets apply their train-time augmentation here."""
        return self.batches(batches, num_workers=num_workers)

    def __repr__(self) -> str:
        fine = "" if self.fine_labels is None else f", fine classes={len(np.unique(self.fine_labels))}"
        return f"{type(self).__name__}({self.name!r}, samples={len(self)}, classes={self.num_classes}{fine}, input_shape={self.input_shape})"


class ArrayDataset(DMLDataset):
    """A dataset held in memory as arrays: inputs float32 [N, *input_shape], labels [N]."""

    def __init__(
        self,
        inputs: np.ndarray,
        labels: np.ndarray,
        *,
        name: str = "arrays",
        class_names: Sequence[str] | None = None,
        fine_labels: np.ndarray | None = None,
        fine_names: Sequence[str] | None = None,
        images: np.ndarray | None = None,
    ) -> None:
        """Wrap arrays; ``images`` (uint8 [N, H, W] or [N, H, W, 3]) are the thumbnails, if any."""
        inputs = np.asarray(inputs)
        labels = np.asarray(labels)
        if inputs.ndim < 2:
            raise ValueError(f"inputs must have shape (N, ...) with at least 2 dimensions, got shape {inputs.shape}")
        if labels.ndim != 1 or len(labels) != len(inputs):
            raise ValueError(f"labels must have shape ({len(inputs)},) to match inputs, got shape {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
        if len(labels) and labels.min() < 0:
            raise ValueError(f"labels must be >= 0, got minimum {labels.min()}")
        if not np.all(np.isfinite(inputs)):
            raise ValueError(f"inputs of dataset {name!r} contain NaN or inf")
        num_classes = int(labels.max()) + 1 if len(labels) else 0
        if class_names is None:
            class_names = [str(c) for c in range(num_classes)]
        if len(class_names) < num_classes:
            raise ValueError(f"class_names has {len(class_names)} names but labels go up to {num_classes - 1}")
        if fine_labels is not None:
            fine_labels = np.asarray(fine_labels, dtype=np.int64)
            if fine_labels.shape != labels.shape:
                raise ValueError(f"fine_labels must have shape {labels.shape}, got {fine_labels.shape}")
            if fine_names is None:
                fine_names = [str(c) for c in range(int(fine_labels.max()) + 1)]
        if images is not None:
            images = np.asarray(images)
            if images.dtype != np.uint8 or len(images) != len(labels) or images.ndim not in (3, 4):
                raise ValueError(
                    f"images must be uint8 [N, H, W] or [N, H, W, 3] with N={len(labels)}, got {images.dtype} {images.shape}"
                )
        self.name = name
        self.inputs = torch.as_tensor(np.ascontiguousarray(inputs, dtype=np.float32))
        self.labels = labels.astype(np.int64)
        self._labels_t = torch.as_tensor(self.labels)
        self.class_names = [str(c) for c in class_names]
        self.fine_labels = fine_labels
        self.fine_names = None if fine_names is None else [str(c) for c in fine_names]
        self.images = images
        self.input_shape = tuple(inputs.shape[1:])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """One sample as (input tensor, class label)."""
        return self.inputs[index], int(self.labels[index])

    @property
    def has_images(self) -> bool:
        """Whether thumbnails are available."""
        return self.images is not None

    def thumbnails(self, indices: Sequence[int] | np.ndarray) -> np.ndarray | None:
        """uint8 thumbnails [n, H, W(, 3)] of the given samples, or None for non-image data."""
        if self.images is None:
            return None
        return self.images[np.asarray(indices, dtype=np.int64)]

    def batches(
        self, batches: Sequence[np.ndarray], num_workers: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (inputs, labels) by slicing the in-memory tensors (no DataLoader overhead)."""
        for batch in batches:
            index = torch.as_tensor(np.asarray(batch, dtype=np.int64))
            yield self.inputs[index], self._labels_t[index]

    def subset(self, indices: np.ndarray, name: str | None = None) -> "ArrayDataset":
        """A new ArrayDataset of the given samples, keeping class ids and names."""
        indices = np.asarray(indices, dtype=np.int64)
        return ArrayDataset(
            self.inputs.numpy()[indices],
            self.labels[indices],
            name=name or self.name,
            class_names=self.class_names,
            fine_labels=None if self.fine_labels is None else self.fine_labels[indices],
            fine_names=self.fine_names,
            images=None if self.images is None else self.images[indices],
        )

"""Image datasets decoded with PIL in DataLoader workers: the field's augmentations and thumbnails."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

from .._validation import check_positive_int
from .dataset import DMLDataset
from .splits import PredefinedSplit

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
THUMBNAIL_SIZE = 48


def image_transforms(
    image_size: int = 224, resize: int | None = 256, *, flip: bool = True, augment: bool = True, channels: int = 3
) -> tuple[Callable[[Image.Image], torch.Tensor], Callable[[Image.Image], torch.Tensor]]:
    """The field's (train, eval) transforms: PIL image -> float32 [channels, image_size, image_size].

    Train: RandomResizedCrop(image_size) + RandomHorizontalFlip (``flip``); eval: Resize(resize)
    + CenterCrop(image_size). ``augment=False`` makes train the same as eval. ImageNet
    normalisation (grey images: the mean of its channel statistics).
    """
    from torchvision import transforms as T

    image_size = check_positive_int("image_size", image_size)
    resize = image_size if resize is None else check_positive_int("resize", resize)
    if resize < image_size:
        raise ValueError(f"resize={resize} is smaller than image_size={image_size}; use resize >= image_size (the field's 256 for 224)")
    if channels == 3:
        normalize = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    else:
        normalize = T.Normalize((float(np.mean(IMAGENET_MEAN)),), (float(np.mean(IMAGENET_STD)),))
    evaluate = T.Compose([T.Resize(resize), T.CenterCrop(image_size), T.ToTensor(), normalize])
    if not augment:
        return evaluate, evaluate
    steps: list[Any] = [T.RandomResizedCrop(image_size)]
    if flip:
        steps.append(T.RandomHorizontalFlip())
    return T.Compose([*steps, T.ToTensor(), normalize]), evaluate


class _BatchList:
    """A batch sampler whose batches are replaced before each pass (so persistent workers live on)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _View(torch.utils.data.Dataset):
    """The dataset seen through its train or its eval transform (what DataLoader workers hold)."""

    def __init__(self, base: "ImageDataset", train: bool) -> None:
        self.base, self.train = base, train

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.base.load(index, train=self.train), int(self.base.labels[index])


class ImageDataset(DMLDataset):
    """Images decoded on demand (PIL), transformed for training or evaluation, with thumbnails.

    Subclasses of the base only change :meth:`open_image`; this class reads files from
    ``paths``. ``labels`` int64 [N] (0..C-1). ``coarse_labels`` (int64 [N], e.g. SOP's
    super-class, In-Shop's clothing category) are *coarser* than the classes, so they are kept
    apart from ``fine_labels`` (dmlviz's hidden sub-modes, finer than the classes).
    ``predefined_split`` holds the benchmark's own split (``split="official"``).
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        labels: np.ndarray,
        *,
        name: str = "images",
        class_names: Sequence[str] | None = None,
        coarse_labels: np.ndarray | None = None,
        coarse_names: Sequence[str] | None = None,
        predefined_split: PredefinedSplit | None = None,
        image_size: int = 224,
        resize: int | None = 256,
        augment: bool = True,
        flip: bool = True,
        channels: int = 3,
        thumbnail_size: int = THUMBNAIL_SIZE,
    ) -> None:
        """Images at ``paths`` (N files) with ``labels`` [N]; transforms from ``image_size``/``resize``."""
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != len(paths) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers of shape ({len(paths)},) to match paths, got {labels.dtype} {labels.shape}")
        if len(labels) and labels.min() < 0:
            raise ValueError(f"labels must be >= 0, got minimum {labels.min()}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
        num_classes = int(labels.max()) + 1 if len(labels) else 0
        self.name = name
        self.paths = [str(p) for p in paths]
        self.labels = labels.astype(np.int64)
        self.class_names = [str(c) for c in (class_names if class_names is not None else range(num_classes))]
        if len(self.class_names) < num_classes:
            raise ValueError(f"class_names has {len(self.class_names)} names but labels go up to {num_classes - 1}")
        self.coarse_labels = None if coarse_labels is None else np.asarray(coarse_labels, dtype=np.int64)
        if self.coarse_labels is not None and self.coarse_labels.shape != self.labels.shape:
            raise ValueError(f"coarse_labels must have shape {self.labels.shape}, got {self.coarse_labels.shape}")
        self.coarse_names = None if coarse_names is None else [str(c) for c in coarse_names]
        self.predefined_split = predefined_split
        self.channels = channels
        self.image_size = check_positive_int("image_size", image_size)
        self.thumbnail_size = check_positive_int("thumbnail_size", thumbnail_size)
        self.train_transform, self.eval_transform = image_transforms(image_size, resize, flip=flip, augment=augment, channels=channels)
        self.input_shape = (channels, self.image_size, self.image_size)
        self._loaders: dict[tuple[bool, int], tuple[torch.utils.data.DataLoader, _BatchList]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_loaders"] = {}  # DataLoaders stay in the main process
        return state

    def open_image(self, index: int, min_size: int | None = None) -> Image.Image:
        """The decoded image of sample ``index`` (RGB, or L for grey datasets); JPEGs decode at a reduced scale no smaller than ``min_size`` when given."""
        mode = "RGB" if self.channels == 3 else "L"
        with Image.open(self.paths[index]) as image:
            if min_size is not None:
                image.draft(mode, (min_size, min_size))
            return image.convert(mode)

    def load(self, index: int, train: bool = False) -> torch.Tensor:
        """Sample ``index`` as float32 [channels, image_size, image_size] through the train or eval transform."""
        transform = self.train_transform if train else self.eval_transform
        return transform(self.open_image(int(index)))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """One sample (eval transform) and its class label."""
        return self.load(index, train=False), int(self.labels[index])

    @property
    def has_images(self) -> bool:
        """Image datasets always have thumbnails."""
        return True

    def thumbnails(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """uint8 [n, S, S, 3] (grey: [n, S, S]) center-cropped pictures, S = ``thumbnail_size`` (48)."""
        size = self.thumbnail_size
        shape = (size, size, 3) if self.channels == 3 else (size, size)
        indices = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(indices), *shape), dtype=np.uint8)
        for row, index in enumerate(indices):
            picture = self.open_image(int(index), min_size=2 * size)
            out[row] = np.asarray(ImageOps.fit(picture, (size, size), Image.Resampling.BILINEAR))
        return out

    def _loader(self, train: bool, num_workers: int) -> tuple[torch.utils.data.DataLoader, _BatchList]:
        key = (train, num_workers)
        if key not in self._loaders:
            sampler = _BatchList()
            # Workers hold a copy without loaders: no reference cycle, so the workers stop as soon as the dataset goes.
            loader = torch.utils.data.DataLoader(
                _View(copy.copy(self), train), batch_sampler=sampler, num_workers=num_workers,
                pin_memory=torch.cuda.is_available(), persistent_workers=num_workers > 0,
            )
            self._loaders[key] = (loader, sampler)
        return self._loaders[key]

    def batches(
        self, batches: Sequence[np.ndarray], num_workers: int = 0, *, train: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (inputs [b, C, S, S], labels [b]) per index array, decoded in ``num_workers`` workers (eval transform unless ``train``)."""
        num_workers = check_positive_int("num_workers", num_workers, minimum=0)
        loader, sampler = self._loader(train, num_workers)
        sampler.batches = [list(map(int, b)) for b in batches]
        yield from loader

    def train_batches(
        self, batches: Sequence[np.ndarray], num_workers: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Like :meth:`batches`, through the train-time augmentation."""
        return self.batches(batches, num_workers, train=True)

    def __repr__(self) -> str:
        split = "" if self.predefined_split is None else ", split=official"
        return f"{type(self).__name__}({self.name!r}, samples={len(self)}, classes={self.num_classes}, input_shape={self.input_shape}{split})"


class ArrayImageDataset(ImageDataset):
    """Images held in memory as uint8 [N, H, W] (grey) or [N, H, W, 3] (torchvision's MNIST, CIFAR)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, **params: Any) -> None:
        """Wrap uint8 ``images`` [N, H, W(, 3)] and ``labels`` [N]; ``params`` as for ImageDataset."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise ValueError(f"images must be uint8 [N, H, W] or [N, H, W, 3], got {images.dtype} {images.shape}")
        self.images = images
        params.setdefault("channels", 1 if images.ndim == 3 else 3)
        super().__init__([""] * len(images), labels, **params)

    def open_image(self, index: int, min_size: int | None = None) -> Image.Image:
        """The in-memory image of sample ``index`` as a PIL image (``min_size`` is ignored)."""
        return Image.fromarray(self.images[index])

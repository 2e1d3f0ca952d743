"""Gaussian data with known sub-modes: the test bed for "does a center find a mode"."""

from __future__ import annotations

import numpy as np

from .._validation import check_positive_float, check_positive_int
from .dataset import ArrayDataset


def synthetic(
    classes: int = 4,
    modes_per_class: int = 2,
    dim: int = 16,
    separation: float = 4.0,
    noise: float = 1.0,
    samples_per_mode: int = 100,
    seed: int = 0,
) -> ArrayDataset:
    """Isotropic Gaussian modes, ``modes_per_class`` per class; fine label = mode.

    Mode means are drawn on a sphere of radius ``separation`` (in units of ``noise``), so
    larger ``separation`` makes modes easier to tell apart. Inputs are float32
    [classes * modes_per_class * samples_per_mode, dim]; the fine label of mode m of class c
    is ``c * modes_per_class + m``.
    """
    classes = check_positive_int("classes", classes)
    modes_per_class = check_positive_int("modes_per_class", modes_per_class)
    dim = check_positive_int("dim", dim, minimum=2)
    samples_per_mode = check_positive_int("samples_per_mode", samples_per_mode)
    separation = check_positive_float("separation", separation, allow_zero=True)
    noise = check_positive_float("noise", noise)
    rng = np.random.default_rng(seed)
    n_modes = classes * modes_per_class
    means = rng.normal(size=(n_modes, dim))
    means *= separation * noise / np.linalg.norm(means, axis=1, keepdims=True)
    fine = np.repeat(np.arange(n_modes), samples_per_mode)
    inputs = means[fine] + rng.normal(scale=noise, size=(len(fine), dim))
    order = rng.permutation(len(fine))
    fine = fine[order]
    return ArrayDataset(
        inputs[order].astype(np.float32),
        (fine // modes_per_class).astype(np.int64),
        name="synthetic",
        class_names=[str(c) for c in range(classes)],
        fine_labels=fine,
        fine_names=[f"{m // modes_per_class}.{m % modes_per_class}" for m in range(n_modes)],  # class.mode
    )

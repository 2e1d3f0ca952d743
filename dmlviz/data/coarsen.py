"""Merge fine classes into coarse ones, keeping the fine labels as hidden truth."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .dataset import ArrayDataset


def coarsen(
    dataset: ArrayDataset,
    mapping: Mapping[int, int] | Sequence[int],
    *,
    class_names: Sequence[str] | None = None,
    name: str | None = None,
) -> ArrayDataset:
    """Relabel class c as ``mapping[c]``; the old labels become ``fine_labels``.

    ``mapping`` gives a coarse class (0..C'-1) for every class of ``dataset``. A dataset that
    already has fine labels (e.g. synthetic modes) keeps them: they are the finer truth.
    """
    num_fine = dataset.num_classes
    if isinstance(mapping, Mapping):
        missing = sorted(set(range(num_fine)) - set(mapping))
        if missing:
            raise ValueError(f"mapping has no coarse class for fine classes {missing}; it must cover 0..{num_fine - 1}")
        table = np.array([mapping[c] for c in range(num_fine)], dtype=np.int64)
    else:
        table = np.asarray(mapping, dtype=np.int64)
        if table.shape != (num_fine,):
            raise ValueError(f"mapping must list one coarse class for each of the {num_fine} classes, got {len(table)}")
    coarse_ids = np.unique(table)
    if coarse_ids[0] != 0 or coarse_ids[-1] != len(coarse_ids) - 1:
        raise ValueError(f"coarse classes must be 0..C'-1 with none missing, got {coarse_ids.tolist()}")
    if class_names is None:
        class_names = ["+".join(dataset.class_names[f] for f in np.flatnonzero(table == c)) for c in coarse_ids]
    return ArrayDataset(
        dataset.inputs.numpy(),
        table[dataset.labels],
        name=name or f"{dataset.name}-coarse",
        class_names=class_names,
        fine_labels=dataset.labels.copy() if dataset.fine_labels is None else dataset.fine_labels.copy(),
        fine_names=dataset.class_names if dataset.fine_labels is None else dataset.fine_names,
        images=dataset.images,
    )


def pairs(dataset: ArrayDataset, name: str | None = None) -> ArrayDataset:
    """Ten digit classes merged into five: class c = digits {c, c+5}, each class two modes."""
    if dataset.num_classes != 10:
        raise ValueError(f"pairs() needs a 10-class dataset, got {dataset.num_classes} classes")
    return coarsen(
        dataset,
        [d % 5 for d in range(10)],
        class_names=[f"{c}|{c + 5}" for c in range(5)],
        name=name or f"{dataset.name}-pairs",
    )

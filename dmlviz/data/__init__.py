"""Datasets by name, synthetic data with known sub-modes, coarsening and splits."""

from __future__ import annotations

from typing import Any, Callable

from .._validation import unknown_name_error
from .bundled import digits, mnist5k
from .coarsen import coarsen, pairs
from .dataset import ArrayDataset, DMLDataset
from .splits import SPLITS, Split, split_dataset
from .synthetic import synthetic

DATASETS: dict[str, Callable[..., DMLDataset]] = {
    "digits": digits,
    "digits-pairs": lambda: pairs(digits()),
    "mnist5k": mnist5k,
    "mnist5k-pairs": lambda: pairs(mnist5k()),
    "synthetic": synthetic,
}


def load_dataset(dataset: str | DMLDataset, **params: Any) -> DMLDataset:
    """Return ``dataset`` if it is a DMLDataset, else build the named one with ``params``."""
    if isinstance(dataset, DMLDataset):
        return dataset
    if not isinstance(dataset, str) or dataset not in DATASETS:
        raise unknown_name_error("dataset", dataset, DATASETS)
    return DATASETS[dataset](**params)


__all__ = [
    "ArrayDataset",
    "DATASETS",
    "DMLDataset",
    "SPLITS",
    "Split",
    "coarsen",
    "digits",
    "load_dataset",
    "mnist5k",
    "pairs",
    "split_dataset",
    "synthetic",
]

"""Datasets by name, synthetic data with known sub-modes, coarsening and splits."""

from __future__ import annotations

import inspect
from typing import Any, Callable

from .._validation import unknown_name_error
from .bundled import digits, mnist5k
from .coarsen import coarsen, pairs
from .dataset import ArrayDataset, DMLDataset
from .features import FeatureDataset, is_features_file
from .image_sets import IMAGE_DATASETS, DownloadError
from .images import ArrayImageDataset, ImageDataset, image_transforms
from .splits import SPLITS, PredefinedSplit, Split, split_dataset
from .synthetic import synthetic

DATASETS: dict[str, Callable[..., DMLDataset]] = {
    "digits": digits,
    "digits-pairs": lambda: pairs(digits()),
    "mnist5k": mnist5k,
    "mnist5k-pairs": lambda: pairs(mnist5k()),
    "synthetic": synthetic,
    **IMAGE_DATASETS,
}


def load_dataset(dataset: str | DMLDataset, **params: Any) -> DMLDataset:
    """Return ``dataset`` if it is a DMLDataset, else build the named one with ``params``.

    ``"imagefolder:PATH"`` reads the folder of class folders at PATH; a path ending in ``.npz``
    reads a features file written by ``dmlviz features`` (:class:`FeatureDataset`). Image datasets take
    ``data_root``, ``download`` and ImageDataset options (``image_size``, ``resize``, ...).
    """
    if isinstance(dataset, DMLDataset):
        if params:
            raise ValueError(f"dataset parameters {sorted(params)} were given with a dataset object; set them when building it")
        return dataset
    if is_features_file(dataset):
        if params:
            raise ValueError(f"dataset={str(dataset)!r} is a features file; it takes no dataset parameters, got {sorted(params)}")
        return FeatureDataset(dataset)
    if isinstance(dataset, str) and dataset.startswith("imagefolder:"):
        if params.get("data_root") is not None:
            raise ValueError(f"dataset={dataset!r} names its folder already; drop data_root={params['data_root']!r} or use dataset='imagefolder'")
        params = {**params, "data_root": dataset.split(":", 1)[1]}
        dataset = "imagefolder"
    if not isinstance(dataset, str) or dataset not in DATASETS:
        raise unknown_name_error("dataset", dataset, [*DATASETS, "imagefolder:PATH"])
    builder = DATASETS[dataset]
    try:
        inspect.signature(builder).bind(**params)
    except TypeError:
        accepted = [n for n in inspect.signature(builder).parameters if n not in ("options", "params")]
        raise ValueError(
            f"dataset {dataset!r} does not take {sorted(params)}; it takes: {', '.join(accepted) or 'no parameters'}"
        ) from None
    return builder(**params)


__all__ = [
    "ArrayDataset",
    "ArrayImageDataset",
    "DATASETS",
    "DMLDataset",
    "DownloadError",
    "FeatureDataset",
    "ImageDataset",
    "PredefinedSplit",
    "SPLITS",
    "Split",
    "coarsen",
    "image_transforms",
    "digits",
    "load_dataset",
    "mnist5k",
    "pairs",
    "split_dataset",
    "synthetic",
]

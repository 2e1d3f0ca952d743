"""Cached features: a frozen backbone's pooled features of every image, written once to one .npz and read as a dataset.

Written by :func:`dmlviz.models.extract_features` (``dmlviz features``). The file (format ``dmlviz.features/1``, no pickle) holds ``features`` float16 [N, F],
``labels`` int64 [N], ``class_names`` [C], the benchmark's split when it has one
(``split_train``, ``split_test``, and In-Shop's ``split_query`` / ``split_gallery``),
``coarse_labels`` / ``coarse_names`` (SOP's super-classes, In-Shop's categories),
``thumbnails`` uint8 [N, S, S(, 3)] and ``meta``: JSON naming the dataset, backbone,
weights, pooling and transform. ``dmlviz train --dataset feats.npz --model linear`` then
trains a head on the CPU in seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from .dataset import ArrayDataset
from .splits import PredefinedSplit

FORMAT = "dmlviz.features/1"


class FeatureDataset(ArrayDataset):
    """Precomputed features [N, F] as a dataset (the image's thumbnails kept), with the benchmark's split."""

    def __init__(self, path: str | os.PathLike) -> None:
        """Read a features file written by :func:`dmlviz.models.extract_features` (``dmlviz features``)."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"dataset={str(path)!r}: no such features file; write one with `dmlviz features --dataset ... --out {path.name}`")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except (OSError, ValueError) as error:
            raise ValueError(f"dataset={str(path)!r} is not a readable .npz file ({error})") from error
        meta = _meta(arrays, path)
        missing = sorted({"features", "labels", "class_names"} - set(arrays))
        if missing:
            raise ValueError(f"features file {str(path)!r} lacks the arrays {missing}; write it again with `dmlviz features`")
        super().__init__(
            arrays["features"].astype(np.float32),
            arrays["labels"].astype(np.int64),
            name=f"features:{meta.get('dataset', path.stem)}",
            class_names=[str(c) for c in arrays["class_names"]],
            images=arrays.get("thumbnails"),
        )
        self.path, self.meta = path, meta
        self.coarse_labels = arrays["coarse_labels"].astype(np.int64) if "coarse_labels" in arrays else None
        self.coarse_names = [str(c) for c in arrays["coarse_names"]] if "coarse_names" in arrays else None
        self.predefined_split = None
        if "split_train" in arrays and "split_test" in arrays:
            self.predefined_split = PredefinedSplit(
                arrays["split_train"].astype(np.int64), arrays["split_test"].astype(np.int64),
                arrays["split_query"].astype(np.int64) if "split_query" in arrays else None,
                arrays["split_gallery"].astype(np.int64) if "split_gallery" in arrays else None,
            )


def _meta(arrays: dict[str, np.ndarray], path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(str(arrays["meta"]))
    except (KeyError, ValueError):
        raise ValueError(f"features file {str(path)!r} has no dmlviz meta record; write it with `dmlviz features`") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"features file {str(path)!r} has format {meta.get('format')!r}; this dmlviz reads {FORMAT!r}")
    return meta


def is_features_file(name: Any) -> bool:
    """Whether a dataset name is a path to a features file (``*.npz``)."""
    return isinstance(name, (str, os.PathLike)) and str(name).endswith(".npz")

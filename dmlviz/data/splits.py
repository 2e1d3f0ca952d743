"""Train/test splits: class-disjoint (the field's zero-shot protocol), held-out samples, or a benchmark's own."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_choice

SPLITS = ("classes", "samples", "official")


@dataclass(frozen=True)
class PredefinedSplit:
    """A benchmark's own split, carried by its dataset: sample indices of train and test.

    In-Shop also names its test samples' roles: ``query`` and ``gallery`` (together ``test``).
    """

    train: np.ndarray
    test: np.ndarray
    query: np.ndarray | None = None
    gallery: np.ndarray | None = None


@dataclass(frozen=True)
class Split:
    """Indices of the training and test samples, and the classes seen in training."""

    how: str
    train: np.ndarray
    test: np.ndarray
    train_classes: np.ndarray
    query: np.ndarray | None = None
    gallery: np.ndarray | None = None

    def membership(self, n: int) -> np.ndarray:
        """uint8 [n]: 0 for training samples, 1 for test samples."""
        codes = np.zeros(n, dtype=np.uint8)
        codes[self.test] = 1
        return codes


def split_dataset(
    labels: np.ndarray,
    how: str = "classes",
    test_fraction: float = 0.5,
    seed: int = 0,
    predefined: PredefinedSplit | None = None,
) -> Split:
    """Split samples by their ``labels`` [N].

    ``how="classes"``: train on the first half of the classes (sorted, rounded up), test on
    the rest. ``how="samples"``: every class in both, ``test_fraction`` of each class held out
    at random (seeded). ``how="official"``: the benchmark's own split ``predefined`` (the
    dataset's ``predefined_split``: CUB-200-2011, Cars196, SOP, In-Shop).
    """
    check_choice("split", how, SPLITS)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if how == "official":
        if predefined is None:
            raise ValueError(
                "split='official' needs a dataset with its own split (cub200, cars196, sop, inshop); "
                "this dataset has none: use split='classes' or 'samples'"
            )
        train, test = (np.sort(np.asarray(a, dtype=np.int64)) for a in (predefined.train, predefined.test))
        if np.intersect1d(train, test).size:
            raise ValueError("the dataset's predefined split puts some samples in both train and test")
        query = None if predefined.query is None else np.asarray(predefined.query, dtype=np.int64)
        gallery = None if predefined.gallery is None else np.asarray(predefined.gallery, dtype=np.int64)
        return Split(how, train, test, np.unique(labels[train]), query, gallery)
    if how == "classes":
        if len(classes) < 2:
            raise ValueError(f"split='classes' needs at least 2 classes, the dataset has {len(classes)}; use split='samples'")
        train_classes = classes[: (len(classes) + 1) // 2]
        is_train = np.isin(labels, train_classes)
        return Split(how, np.flatnonzero(is_train), np.flatnonzero(~is_train), train_classes)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    rng = np.random.default_rng(seed)
    test_parts = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        n_test = int(round(len(members) * test_fraction))
        n_test = min(max(n_test, 1 if len(members) > 1 else 0), len(members) - 1)
        test_parts.append(rng.choice(members, size=n_test, replace=False))
    test = np.sort(np.concatenate(test_parts)) if test_parts else np.array([], dtype=np.int64)
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test] = True
    return Split(how, np.flatnonzero(~is_test), np.flatnonzero(is_test), classes)

"""Batches for one epoch: random, or m samples per class; seeded by (seed, epoch) so a resumed run repeats them."""

from __future__ import annotations

import math

import numpy as np


def samples_per_class(num_classes: int, batch_size: int, m_per_class: int | None) -> int:
    """How many samples of a class stand in a row in an m-per-class batch (1 for random batches)."""
    if not m_per_class:
        return 1
    return max(m_per_class, batch_size // max(num_classes, 1))


def epoch_batches(
    labels: np.ndarray, batch_size: int, *, seed: int, epoch: int, m_per_class: int | None = None
) -> list[np.ndarray]:
    """Index arrays (into ``labels`` [N]) of the batches of one epoch.

    Random batches cover a permutation of the samples, dropping the last incomplete batch
    unless it is the only one. With ``m_per_class`` each batch holds ``batch_size // m``
    classes chosen at random, m samples of each (drawn without replacement while a class
    has enough, with replacement from a class smaller than m). When there are fewer classes
    than that, every batch holds all classes and m grows to ``batch_size // classes``, so
    batches stay about ``batch_size`` long; an epoch has ceil(N / batch length) batches,
    about N samples.
    """
    rng = np.random.default_rng([seed, epoch])
    n = len(labels)
    if not m_per_class:
        order = rng.permutation(n)
        if n <= batch_size:
            return [order]
        return [order[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError(
            f"m_per_class batches need at least 2 classes to make negative pairs, but the training split has "
            f"{len(classes)}; use a dataset or split with at least 2 training classes"
        )
    m = samples_per_class(len(classes), batch_size, m_per_class)
    per_batch = max(2, min(batch_size // m, len(classes)))
    members = {c: np.flatnonzero(labels == c) for c in classes}
    pools = {c: rng.permutation(idx) for c, idx in members.items()}
    batches = []
    for _ in range(max(1, math.ceil(n / (per_batch * m)))):
        chosen = rng.choice(classes, size=per_batch, replace=False)
        parts = []
        for c in chosen:
            if len(members[c]) < m:  # a class smaller than m: sample with replacement
                parts.append(rng.choice(members[c], size=m, replace=True))
                continue
            if len(pools[c]) < m:
                pools[c] = np.concatenate([pools[c], rng.permutation(members[c])])
            parts.append(pools[c][:m])
            pools[c] = pools[c][m:]
        batches.append(np.concatenate(parts))
    return batches

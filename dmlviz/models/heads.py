"""Embedding heads on flattened inputs: linear and MLP."""

from __future__ import annotations

import math

from torch import nn


def _flat_size(input_shape: tuple[int, ...]) -> int:
    return int(math.prod(input_shape))


def linear(input_shape: tuple[int, ...], embedding_dim: int) -> nn.Module:
    """Flatten, then one linear map to ``embedding_dim``: a constrained head that keeps sub-modes."""
    return nn.Sequential(nn.Flatten(), nn.Linear(_flat_size(input_shape), embedding_dim))


def mlp(input_shape: tuple[int, ...], embedding_dim: int, hidden: int = 256) -> nn.Module:
    """Flatten, then Linear → BatchNorm → ReLU → Linear to ``embedding_dim``."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(_flat_size(input_shape), hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, embedding_dim),
    )

"""Losses by name: ``build(name, num_classes=..., embedding_dim=..., **params)``.

Every loss is a :class:`DMLLoss`. To add one, write one small module in this package that
defines a DMLLoss subclass decorated with ``@register("name")``; it is imported here.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import DMLLoss
from .registry import LOSSES, build, register

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "registry"):
        importlib.import_module(f"{__name__}.{_module.name}")

from .augmented import AUGMENTERS, Augmented  # noqa: E402
from .mdr import MDR  # noqa: E402
from .regularized import REGULARIZERS, Regularized  # noqa: E402
from .softtriple import NormalizedSoftmax, SoftTriple  # noqa: E402

__all__ = ["AUGMENTERS", "Augmented", "DMLLoss", "LOSSES", "MDR", "REGULARIZERS", "Regularized", "NormalizedSoftmax", "SoftTriple", "build", "register"]

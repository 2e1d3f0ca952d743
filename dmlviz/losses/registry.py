"""One registry of losses by name."""

from __future__ import annotations

import inspect
from typing import Any, Callable, TypeVar

from .._validation import unknown_name_error

LOSSES: dict[str, type] = {}

T = TypeVar("T", bound=type)


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make a loss class buildable as ``build(name, ...)``."""

    def decorate(cls: T) -> T:
        if name in LOSSES:
            raise ValueError(f"a loss named {name!r} is already registered ({LOSSES[name].__name__})")
        LOSSES[name] = cls
        return cls

    return decorate


def build(
    name: str, num_classes: int, embedding_dim: int, *, regularizer: str | None = None, augmenter: str | None = None, **params: Any
) -> Any:
    """Build the loss registered as ``name`` for ``num_classes`` classes and ``embedding_dim``-d embeddings.

    ``regularizer="mdr"`` adds MDR to it (see :class:`~dmlviz.losses.regularized.Regularized`);
    its parameters (``lambda_mdr``, ``nu_mdr``, ``mdr_momentum``) come with the loss's in ``params``;
    ``augmenter="das"`` feeds the loss DAS's synthetic embeddings too (``das_*`` parameters).
    """
    from .augmented import Augmented, split_augmenter_params
    from .regularized import Regularized, split_regularizer_params

    if not isinstance(name, str) or name not in LOSSES:
        raise unknown_name_error("loss", name, LOSSES)
    params, aug_params = split_augmenter_params(augmenter, params)
    params, reg_params = split_regularizer_params(regularizer, params)
    cls = LOSSES[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "num_classes", "embedding_dim")]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TypeError(f"loss {name!r} does not take {unknown}; it accepts {accepted}")
    loss = cls(num_classes, embedding_dim, **params)
    if augmenter is not None:
        loss = Augmented(loss, augmenter, **aug_params)
    return loss if regularizer is None else Regularized(loss, regularizer, **reg_params)

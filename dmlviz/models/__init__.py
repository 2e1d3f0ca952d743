"""Embedding models by name; every model maps inputs [B, *input_shape] to embeddings [B, embedding_dim]."""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from .._validation import check_positive_int, unknown_name_error
from .cnn import cnn
from .heads import linear, mlp

MODELS: dict[str, Callable[..., nn.Module]] = {"linear": linear, "mlp": mlp, "cnn": cnn}


def build_model(model: str | nn.Module, input_shape: tuple[int, ...], embedding_dim: int, **params: Any) -> nn.Module:
    """Return ``model`` if it is an ``nn.Module``, else build the named one."""
    if isinstance(model, nn.Module):
        return model
    embedding_dim = check_positive_int("embedding_dim", embedding_dim)
    if not isinstance(model, str) or model not in MODELS:
        raise unknown_name_error("model", model, MODELS)
    return MODELS[model](tuple(input_shape), embedding_dim, **params)


__all__ = ["MODELS", "build_model", "cnn", "linear", "mlp"]

"""Embedding models by name; every model maps inputs [B, *input_shape] to embeddings [B, embedding_dim]."""

from __future__ import annotations

import inspect
from typing import Any, Callable

from torch import nn

from .._validation import check_positive_int, unknown_name_error
from .backbones import BACKBONE_OPTIONS, BackboneEmbedder, resnet18, resnet50
from .cnn import cnn
from .features import extract_features
from .heads import linear, mlp

MODELS: dict[str, Callable[..., nn.Module]] = {"linear": linear, "mlp": mlp, "cnn": cnn, "resnet18": resnet18, "resnet50": resnet50}
#: Models with an ImageNet trunk: their trunk trains at ``backbone_lr``.
BACKBONES = ("resnet18", "resnet50")


def model_options(model: str) -> tuple[str, ...]:
    """The options (``model_params`` keys) the named model takes."""
    if model in BACKBONES:
        return BACKBONE_OPTIONS
    signature = inspect.signature(MODELS[model])
    return tuple(name for name in signature.parameters if name not in ("input_shape", "embedding_dim"))


def build_model(model: str | nn.Module, input_shape: tuple[int, ...], embedding_dim: int, **params: Any) -> nn.Module:
    """Return ``model`` if it is an ``nn.Module``, else build the named one."""
    if isinstance(model, nn.Module):
        if params:
            raise ValueError(f"model parameters {sorted(params)} were given with a model object; set them on the object")
        return model
    embedding_dim = check_positive_int("embedding_dim", embedding_dim)
    if not isinstance(model, str) or model not in MODELS:
        raise unknown_name_error("model", model, MODELS)
    known = model_options(model)
    unknown = sorted(set(params) - set(known))
    if unknown:
        takes = ", ".join(known) if known else "no parameters"
        raise ValueError(f"model {model!r} does not take {unknown}; it takes: {takes}")
    return MODELS[model](tuple(input_shape), embedding_dim, **params)


__all__ = ["BACKBONES", "MODELS", "BackboneEmbedder", "build_model", "extract_features", "cnn", "linear", "mlp", "model_options", "resnet18", "resnet50"]

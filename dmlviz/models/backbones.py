"""ImageNet backbones as embedding models: a torchvision ResNet trunk, pooling, a linear embedding head."""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

import torch
from torch import nn

from .._validation import check_choice

logger = logging.getLogger(__name__)

POOLINGS = ("avg", "avg+max")


def _resnet(name: str) -> tuple[Callable[..., nn.Module], Any]:
    """The torchvision constructor and weights enum of ``name``."""
    from torchvision import models

    return {
        "resnet18": (models.resnet18, models.ResNet18_Weights),
        "resnet50": (models.resnet50, models.ResNet50_Weights),
    }[name]


def weights_file(name: str, weights: str = "DEFAULT") -> tuple[Path, str]:
    """The local path torchvision's weights API reads ``name``'s ImageNet weights from, and their URL."""
    _, enum = _resnet(name)
    try:
        entry = enum[weights]
    except KeyError:
        known = ", ".join(["DEFAULT", *enum.__members__])
        raise ValueError(f"pretrained={weights!r} is not a weights name of {name}; use True or one of: {known}") from None
    filename = os.path.basename(urlparse(entry.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename, entry.url


def load_imagenet_weights(name: str, weights: str = "DEFAULT") -> dict[str, torch.Tensor]:
    """Read ``name``'s ImageNet state dict from the torch hub cache; never downloads (offline-safe)."""
    path, url = weights_file(name, weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained=True needs the ImageNet weights of {name} in the torch hub cache: the file {path.name!r} "
            f"in the folder {str(path.parent)!r} (torch.hub.get_dir()/checkpoints; set TORCH_HOME to move it). "
            f"dmlviz does not download it: fetch {url} on a machine that is online and copy it there, "
            "or pass pretrained=False"
        )
    _, enum = _resnet(name)
    # torchvision's weights API finds the cached file and loads it without touching the network
    return enum[weights].get_state_dict(progress=False, weights_only=True, map_location="cpu")


class BackboneEmbedder(nn.Module):
    """Images [B, C, H, W] (C = 3, or 1 repeated to 3) → trunk features → pooling → linear head → [B, embedding_dim]."""

    def __init__(
        self,
        trunk: nn.Module,
        features: int,
        embedding_dim: int,
        *,
        pooling: str = "avg",
        freeze_bn: bool = False,
        channels_last: bool = True,
        compile: bool = False,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(features, embedding_dim)
        self.pooling = check_choice("pooling", pooling, POOLINGS)
        self.freeze_bn = bool(freeze_bn)
        self.channels_last = bool(channels_last)
        self.use_compile = bool(compile)  # not `compile`: that would hide nn.Module.compile
        self.in_channels = in_channels
        self._compiled: Callable[[torch.Tensor], torch.Tensor] | None = None
        if self.freeze_bn:
            for module in self._batch_norms():
                for p in module.parameters():
                    p.requires_grad_(False)

    def _batch_norms(self) -> Iterator[nn.modules.batchnorm._BatchNorm]:
        return (m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The trunk's parameters (trained at ``backbone_lr``); the head's are the rest."""
        return list(self.trunk.parameters())

    def train(self, mode: bool = True) -> "BackboneEmbedder":
        """Like nn.Module.train, but with ``freeze_bn`` BatchNorm layers stay in eval mode (running stats frozen)."""
        super().train(mode)
        if self.freeze_bn:
            for module in self._batch_norms():
                module.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] → pooled trunk features [B, F] (before the embedding head), never compiled."""
        if x.shape[1] == 1 and self.in_channels == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.channels_last and x.is_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        maps = self.trunk(x)  # [B, F, h, w]
        pooled = maps.mean(dim=(2, 3))
        if self.pooling == "avg+max":
            pooled = pooled + maps.amax(dim=(2, 3))
        return pooled

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] → embeddings [B, embedding_dim], never compiled."""
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] → embeddings [B, embedding_dim]; through torch.compile when ``compile=True`` and training.

        Only training steps (train mode, gradients on) are compiled: one static-shape graph. The model check,
        recording and evaluation (eval mode or no_grad, other batch sizes) run eagerly instead of compiling
        graphs of their own, with a dynamic batch dimension that the training graph would then inherit.
        """
        if not (self.use_compile and self.training and torch.is_grad_enabled()):
            return self.embed(x)
        if self._compiled is None:  # compiled on first use; the state dict keeps its plain keys
            self._compiled = torch.compile(self.embed)
        return self._compiled(x)

    def __deepcopy__(self, memo: dict) -> "BackboneEmbedder":
        """A copy without the compiled function: that one is bound to this module, so a copy (LSD's teacher) would run
        this module's weights through it; the copy compiles its own on first use."""
        cls = type(self)
        copy_ = cls.__new__(cls)
        memo[id(self)] = copy_
        for key, value in self.__dict__.items():
            copy_.__dict__[key] = None if key == "_compiled" else copy.deepcopy(value, memo)
        return copy_

    def extra_repr(self) -> str:
        return f"pooling={self.pooling!r}, freeze_bn={self.freeze_bn}, channels_last={self.channels_last}, compile={self.use_compile}"


def _backbone(
    name: str,
    input_shape: tuple[int, ...],
    embedding_dim: int,
    pretrained: bool | str = False,
    pooling: str = "avg",
    freeze_bn: bool = False,
    channels_last: bool = True,
    compile: bool = False,
) -> BackboneEmbedder:
    if len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise ValueError(
            f"model {name!r} needs images of shape (3, height, width) (or 1 channel, repeated), got input shape {tuple(input_shape)}; "
            "use model='linear' or 'mlp' for vector data"
        )
    check_choice("pooling", pooling, POOLINGS)
    if not isinstance(pretrained, (bool, str)):
        raise TypeError(f"pretrained must be True, False or a torchvision weights name such as 'IMAGENET1K_V1', got {pretrained!r}")
    builder, _ = _resnet(name)
    net = builder(weights=None)
    if pretrained:
        weights = "DEFAULT" if pretrained is True else pretrained
        net.load_state_dict(load_imagenet_weights(name, weights))
        logger.info("%s: ImageNet weights %s loaded from %s", name, weights, weights_file(name, weights)[0])
    features = net.fc.in_features
    trunk = nn.Sequential(*(child for key, child in net.named_children() if key not in ("avgpool", "fc")))
    return BackboneEmbedder(
        trunk, features, embedding_dim, pooling=pooling, freeze_bn=freeze_bn, channels_last=channels_last,
        compile=compile, in_channels=input_shape[0],
    )


def resnet18(input_shape: tuple[int, ...], embedding_dim: int, **options: Any) -> BackboneEmbedder:
    """torchvision ResNet-18 trunk (512 features) → pooling → Linear to ``embedding_dim``; options: pretrained, pooling, freeze_bn, channels_last, compile."""
    return _backbone("resnet18", input_shape, embedding_dim, **options)


def resnet50(input_shape: tuple[int, ...], embedding_dim: int, **options: Any) -> BackboneEmbedder:
    """torchvision ResNet-50 trunk (2048 features) → pooling → Linear to ``embedding_dim``; options as resnet18."""
    return _backbone("resnet50", input_shape, embedding_dim, **options)


BACKBONE_OPTIONS = ("pretrained", "pooling", "freeze_bn", "channels_last", "compile")

"""A small convolutional network for small images (8×8 digits, 28×28 MNIST, up to ~64×64)."""

from __future__ import annotations

from torch import nn


def cnn(input_shape: tuple[int, ...], embedding_dim: int, width: int = 32) -> nn.Module:
    """Two or three conv blocks, global average pooling, then a linear map to ``embedding_dim``.

    ``input_shape`` must be (channels, height, width).
    """
    if len(input_shape) != 3:
        raise ValueError(
            f"model 'cnn' needs image inputs of shape (channels, height, width), got input shape {tuple(input_shape)}; "
            "use model='linear' or 'mlp' for vector data"
        )
    channels, height, _ = input_shape
    layers: list[nn.Module] = []
    in_ch, out_ch, size = channels, width, height
    while True:
        layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]
        in_ch = out_ch
        if size < 8 or len(layers) >= 9:
            break
        layers.append(nn.MaxPool2d(2))
        size //= 2
        out_ch *= 2
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_ch, embedding_dim)]
    return nn.Sequential(*layers)

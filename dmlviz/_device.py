"""Which torch device to run on."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" → CUDA when available, else CPU; otherwise the named device, checked to exist."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked but CUDA is not available here; use device='cpu' or 'auto'")
    return resolved

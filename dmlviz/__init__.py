"""dmlviz: see what a deep metric learning loss does to an embedding space."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "train": ("dmlviz.training", "train"),
    "load_run": ("dmlviz.runs", "load_run"),
    "Run": ("dmlviz.runs", "Run"),
    "Snapshot": ("dmlviz.runs", "Snapshot"),
    "Explorer": ("dmlviz.widgets", "Explorer"),
    "Compare": ("dmlviz.widgets", "Compare"),
    "Playground": ("dmlviz.widgets", "Playground"),
    "Recorder": ("dmlviz.recording", "Recorder"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    """Import the heavy parts (torch) only when they are used."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dmlviz' has no attribute {name!r}")

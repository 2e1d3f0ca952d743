"""Evaluation: retrieval metrics, clustering NMI, and per-class centre diagnostics.

Center statistics need only numpy/scipy; retrieval (torch) is imported on first use.
"""

from typing import Any

from dmlviz.eval.centers import assign_to_centers, center_counts, center_groups, center_purity, effective_k, merged_assignments, submode_score

_LAZY = {"knn": "retrieval", "retrieval_metrics": "retrieval", "nmi": "clustering", "nmi_chance": "clustering", "recall_at_1_chance": "retrieval"}

__all__ = [
    "assign_to_centers",
    "center_counts",
    "center_groups",
    "center_purity",
    "effective_k",
    "knn",
    "merged_assignments",
    "nmi",
    "nmi_chance",
    "recall_at_1_chance",
    "retrieval_metrics",
    "submode_score",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"dmlviz.eval.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'dmlviz.eval' has no attribute {name!r}")

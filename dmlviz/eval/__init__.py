"""Evaluation: retrieval metrics, clustering NMI, and per-class centre diagnostics."""

from dmlviz.eval.centers import assign_to_centers, center_counts, center_purity, effective_k
from dmlviz.eval.clustering import nmi
from dmlviz.eval.retrieval import knn, retrieval_metrics

__all__ = [
    "assign_to_centers",
    "center_counts",
    "center_purity",
    "effective_k",
    "knn",
    "nmi",
    "retrieval_metrics",
]

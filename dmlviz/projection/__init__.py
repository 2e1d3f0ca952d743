"""2-D layouts of every recorded epoch of a run (PCA, UMAP), aligned across epochs and cached.

    >>> proj = Projector(run, "umap")
    >>> proj.get(5).points          # float32 [N, 2]; .centers float32 [C', K, 2]
    >>> job = proj.start_background(on_layout=lambda epoch, layout: ...)

umap-learn is imported only when a UMAP layout is computed.
"""

from .projector import METHODS, BackgroundJob, EpochNotRecordedError, Layout, Projector
from .placement import PLACEMENT_NOTE, place_centers
from .quality import knn_preservation, knn_preservation_chance, ownership_agreement, ownership_chance, procrustes_disparity

__all__ = [
    "METHODS",
    "BackgroundJob",
    "EpochNotRecordedError",
    "Layout",
    "Projector",
    "PLACEMENT_NOTE",
    "knn_preservation",
    "knn_preservation_chance",
    "ownership_agreement",
    "ownership_chance",
    "place_centers",
    "procrustes_disparity",
]

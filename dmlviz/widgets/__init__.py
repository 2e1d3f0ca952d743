"""Jupyter widgets that show a run: one shared state, one module per view, composed by Explorer."""

import plotly.graph_objects as _go

# plotly imports FigureWidget (and with it nbformat and jsonschema, seconds) on first use; do it
# at import time, which a preheated Voila kernel has done before a page asks for a run.
_go.FigureWidget  # noqa: B018

from .figure import _registering_bundle

_registering_bundle()  # read plotly's front-end module once, at import time too

from .. import projection as _projection  # noqa: E402,F401  (layouts are needed at once: import while preheating)

from .class_view import ClassInspector
from .compare import Compare, CompareChooser
from .explorer import Explorer, RunChooser, list_runs, resolve_run
from .map_view import MapView
from .merge_view import MergeTimeline
from .metrics_view import MetricsView
from .neighbors_view import NeighborsView
from .playground import Playground
from .state import ExplorerState

__all__ = [
    "ClassInspector",
    "Compare",
    "CompareChooser",
    "Explorer",
    "ExplorerState",
    "MapView",
    "MergeTimeline",
    "MetricsView",
    "NeighborsView",
    "Playground",
    "RunChooser",
    "list_runs",
    "resolve_run",
]

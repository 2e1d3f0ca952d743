"""The loss playground: a head trained live on synthetic classes, drawn on the unit circle or sphere with its forces.

:class:`~dmlviz.playground.session.PlaygroundSession` trains and draws (no widgets); the page is
:class:`dmlviz.widgets.Playground`.
"""

from .presets import CHOICES, FORMULAS, PRESETS, Preset
from .session import PLAYGROUND_LOSSES, Frame, PlaygroundSession, Settings, loss_knobs

__all__ = ["CHOICES", "FORMULAS", "PLAYGROUND_LOSSES", "PRESETS", "Frame", "PlaygroundSession", "Preset", "Settings", "loss_knobs"]

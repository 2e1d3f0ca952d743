"""Class colours that stay distinct for a few classes and readable for hundreds."""

from __future__ import annotations

import colorsys
import functools

import numpy as np

# Plotly's D3 and Dark24-like qualitative palettes, for up to 24 classes.
_QUALITATIVE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#2e91e5", "#e15f99", "#1ca71c", "#fb0d0d", "#da16ff", "#222a2a",
    "#b68100", "#750d86", "#eb663b", "#511cfb", "#00a08b", "#fb00d1", "#fc0080", "#b2828d",
]


def palette(n: int) -> list[str]:
    """``n`` hex colours: qualitative up to 24, then golden-angle hues with alternating lightness."""
    return list(_palette(int(n)))


@functools.lru_cache(maxsize=16)
def _palette(n: int) -> tuple[str, ...]:
    """:func:`palette`, kept: a map of 1,000 classes asked for it twice per epoch switch (8 ms each)."""
    if n <= len(_QUALITATIVE):
        return tuple(_QUALITATIVE[:n])
    colours = []
    for i in range(n):
        hue = (i * 0.618033988749895) % 1.0
        lightness = (0.38, 0.52, 0.64)[i % 3]
        r, g, b = colorsys.hls_to_rgb(hue, lightness, 0.75)
        colours.append(f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}")
    return tuple(colours)


def discrete_colorscale(n: int, unassigned: bool = True) -> tuple[list, float, float]:
    """A plotly colorscale that maps integer codes 0..n-1 to the palette (and -1 to grey).

    Returns (colorscale, cmin, cmax) for numeric ``marker.color``: numbers validate and travel
    to the browser far faster than one colour string per point.
    """
    colours = (["#bbbbbb"] if unassigned else []) + palette(max(n, 1))
    m = len(colours)
    scale = []
    for i, colour in enumerate(colours):
        scale += [[i / m, colour], [(i + 1) / m, colour]]
    low = -1.5 if unassigned else -0.5
    return scale, low, low + m


def colour_array(codes: np.ndarray, n: int) -> np.ndarray:
    """Hex colour per element of integer ``codes`` [N] (values 0..n-1; negative → grey)."""
    table = np.asarray(palette(max(n, 1)) + ["#bbbbbb"])
    codes = np.asarray(codes, dtype=np.int64)
    return table[np.where(codes < 0, len(table) - 1, np.minimum(codes, len(table) - 2))]

"""Small HTML pieces: thumbnails as inline PNGs, label chips, galleries."""

from __future__ import annotations

import base64
import html
import io
from typing import Sequence

import numpy as np


def png_data_uri(image: np.ndarray) -> str:
    """A data: URI of a uint8 image [H, W] or [H, W, 3] as PNG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def tile(
    label: str,
    *,
    image: np.ndarray | None = None,
    colour: str = "#888",
    border: str | None = None,
    caption: str = "",
    size: int = 56,
    row: int | None = None,
) -> str:
    """One gallery tile: the thumbnail (or a coloured label chip) with a caption; ``border`` marks right/wrong."""
    frame = f"border:3px solid {border};" if border else "border:3px solid transparent;"
    data_row = f' data-row="{row}"' if row is not None else ""
    if image is not None:
        body = (
            f'<img src="{png_data_uri(image)}" width="{size}" height="{size}" '
            f'style="image-rendering:pixelated;display:block;background:#000">'
        )
    else:
        body = (
            f'<div style="width:{size}px;height:{size}px;background:{colour};color:white;display:flex;'
            f'align-items:center;justify-content:center;font-weight:600;font-size:12px;text-align:center;overflow:hidden">'
            f"{html.escape(label)}</div>"
        )
    return (
        f'<div class="dmlviz-tile"{data_row} style="display:inline-block;margin:2px;{frame}text-align:center;'
        f'font-size:11px;line-height:1.2;width:{size + 6}px;vertical-align:top">{body}'
        f'<div style="overflow:hidden;white-space:nowrap;text-overflow:ellipsis">{html.escape(caption)}</div></div>'
    )


def gallery(tiles: Sequence[str], empty: str = "nothing to show") -> str:
    """Tiles in a wrapping row."""
    if not tiles:
        return f'<div style="color:#888;font-style:italic">{html.escape(empty)}</div>'
    return '<div style="display:flex;flex-wrap:wrap">' + "".join(tiles) + "</div>"

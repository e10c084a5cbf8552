"""A stamp drawn with truecolor half blocks: two pixels a cell ("▀": top pixel as the
foreground, bottom pixel as the background). Textual downsamples to 256 colours where the
terminal lacks truecolor."""

from __future__ import annotations

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

HALF = "▀"


def strips(rgb: np.ndarray) -> list[Strip]:
    """(H, W, 3) uint8 -> H/2 strips of W cells."""
    if rgb.shape[0] % 2:
        rgb = np.concatenate([rgb, rgb[-1:]], axis=0)
    out = []
    cache: dict[tuple[int, ...], Style] = {}
    pixels = rgb.tolist()
    for y in range(0, rgb.shape[0], 2):
        segments = []
        for top, bottom in zip(pixels[y], pixels[y + 1], strict=True):
            key = (*top, *bottom)
            style = cache.get(key)
            if style is None:
                style = cache[key] = Style(
                    color=Color.from_rgb(key[0], key[1], key[2]),
                    bgcolor=Color.from_rgb(key[3], key[4], key[5]),
                )
            segments.append(Segment(HALF, style))
        out.append(Strip(Segment.simplify(segments), rgb.shape[1]))
    return out

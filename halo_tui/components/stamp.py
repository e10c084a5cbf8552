"""A stamp drawn with truecolor half blocks: two pixels a cell ("▀": top pixel as the
foreground, bottom pixel as the background). Textual downsamples to 256 colours where the
terminal lacks truecolor."""

from __future__ import annotations

import numpy as np
from rich.color import Color, ColorType
from rich.color_triplet import ColorTriplet
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

HALF = "▀"


def strips(rgb: np.ndarray) -> list[Strip]:
    """(H, W, 3) uint8 -> H/2 strips of W cells. The hot path of the candidates grid: each
    cell's two colours are built straight from their RGB triplets (no parsing, no checks)."""
    if rgb.shape[0] % 2:
        rgb = np.concatenate([rgb, rgb[-1:]], axis=0)
    from_color, truecolor = Style.from_color, ColorType.TRUECOLOR
    out = []
    width = rgb.shape[1]
    for top_row, bottom_row in zip(rgb[0::2].tolist(), rgb[1::2].tolist(), strict=True):
        segments = [
            Segment(
                HALF,
                from_color(
                    Color("", truecolor, triplet=ColorTriplet(*top)),
                    Color("", truecolor, triplet=ColorTriplet(*bottom)),
                ),
            )
            for top, bottom in zip(top_row, bottom_row, strict=True)
        ]
        out.append(Strip(segments, width))
    return out

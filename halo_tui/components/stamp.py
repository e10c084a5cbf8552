"""A stamp drawn with truecolor half blocks: two pixels a cell ("▀": top pixel as the
foreground, bottom pixel as the background). Textual downsamples to 256 colours where the
terminal lacks truecolor."""

from __future__ import annotations

from itertools import repeat

import numpy as np
from rich.color import Color, ColorType
from rich.color_triplet import ColorTriplet
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

HALF = "▀"


def strips(rgb: np.ndarray) -> list[Strip]:
    """(H, W, 3) uint8 -> H/2 strips of W cells. The hot path of the candidates grid: each
    cell's two colours are built straight from their RGB triplets (no parsing, no checks),
    with `map` over whole rows rather than a Python loop per cell."""
    if rgb.shape[0] % 2:
        rgb = np.concatenate([rgb, rgb[-1:]], axis=0)
    width = rgb.shape[1]
    from_color, new_color, new_triplet = Style.from_color, Color._make, ColorTriplet._make
    truecolor = ColorType.TRUECOLOR

    def color(rgb: list[int]) -> Color:
        return new_color(("", truecolor, None, new_triplet(rgb)))

    out = []
    for top_row, bottom_row in zip(rgb[0::2].tolist(), rgb[1::2].tolist(), strict=True):
        styles = map(from_color, map(color, top_row), map(color, bottom_row))
        out.append(Strip(list(map(Segment, repeat(HALF, width), styles)), width))
    return out

"""A stamp drawn in the terminal: the view (the grz composite, one band, or all four side by
side) as RGB at a bin factor and asinh stretch, its sky kept neutral in 256 colours or fewer;
then truecolor half blocks, two pixels a cell ("▀": top pixel as the foreground, bottom pixel
as the background). Textual downsamples to 256 colours where the terminal lacks truecolor."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import repeat

import numpy as np
from rich.color import Color, ColorType
from rich.color_triplet import ColorTriplet
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from core.colour import Q, bin2, neutral_sky, sdss_rgb, single_band

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


VIEWS = ("grz", "g", "r", "z", "all")  # all: the composite, g, r and z side by side


def render_rgb(
    stamp: np.ndarray, view: str, factor: int, colours: int | None = None, q: float = Q
) -> np.ndarray:
    """The stamp as RGB for the terminal: the view at stretch `q`, binned; with 256 colours
    or fewer, the sky's noise kept neutral (core.colour.neutral_sky)."""
    if view == "all":  # each panel binned, a dark pixel between them
        panels = [render_rgb(stamp, v, factor, colours, q) for v in VIEWS[:4]]
        gap = np.zeros((panels[0].shape[0], 1, 3), dtype=panels[0].dtype)
        return np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)
    rgb = sdss_rgb(stamp, q=q) if view == "grz" else single_band(stamp, "grz".index(view), q)
    rgb = bin2(rgb, factor)
    return neutral_sky(rgb) if colours is not None and colours <= 256 else rgb


def panel_names(side: int) -> Strip:
    """The names over the side-by-side panels of the `all` view (grz, g, r, z), each at its
    panel's first cell."""
    cells = [" "] * span(side, "all")
    for i, name in enumerate(VIEWS[:4]):
        cells[i * (side + 1) : i * (side + 1) + len(name)] = name
    return Strip([Segment("".join(cells), Style(bold=True))])


def span(side: int, view: str) -> int:
    """Cells a stamp of `side` pixels takes in `view` (four panels and their gaps for all)."""
    return 4 * side + 3 if view == "all" else side


_gc_hold = threading.Lock()
_gc_holders = 0
_gc_was_enabled = True


@contextmanager
def collector_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector off while a page's cells are built. A page is some
    40,000 small objects that hold no cycles (refcounting frees them as ever), yet their
    allocation sets off collections that scan everything the console holds. The collector is
    put back as the first holder found it once the last one is done."""
    global _gc_holders, _gc_was_enabled
    with _gc_hold:
        if _gc_holders == 0:
            _gc_was_enabled = gc.isenabled()
        _gc_holders += 1
        gc.disable()
    try:
        yield
    finally:
        with _gc_hold:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_was_enabled:
                gc.enable()


def render_stamps(
    stamps: np.ndarray, view: str, factor: int, colours: int | None = None, q: float = Q
) -> list[list[Strip]]:
    """Each stamp's half-block strips in `view` (render_rgb): a page of the candidates grid."""
    with collector_paused():
        return [strips(render_rgb(stamp, view, factor, colours, q)) for stamp in stamps]

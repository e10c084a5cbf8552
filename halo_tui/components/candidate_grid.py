"""The candidates screen's grid of stamps: its geometry (how many stamps, at which binning, fit
the screen; the zoomed window), its pages, the rendered stamps it keeps, and placing them as
tiles. The screen (screens/candidates.py) keeps only what the keys do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from textual.containers import Grid
from textual.strip import Strip

from halo_tui.components.stamp import panel_names, render_stamps, span
from halo_tui.components.stamp_tile import StampTile

META_WIDTH = 28  # the side panel's columns
STAMP = 64  # a stamp's pixels a side; two pixels a terminal row
CACHED_STAMPS = 512  # rendered stamps kept (pages back and ahead), about 30 MB at 2×2 binning


@dataclass(frozen=True)
class GridGeometry:
    """The grid for a screen of `width` × `height` cells, a view (grz, g, r, z, all), zoomed
    or not, and (zoomed) panned by `pan` (pixels x, rows) from the stamp's centre."""

    width: int
    height: int
    view: str
    zoomed: bool = False
    pan: tuple[int, int] = (0, 0)

    @property
    def meta_shown(self) -> bool:
        """The side panel, unless zoomed or the side-by-side bands need its width."""
        return not self.zoomed and self.width - META_WIDTH - 1 >= span(16, self.view)

    def layout(self) -> tuple[int, int, int]:
        """(bin factor, columns, rows) of the grid."""
        width = max(20, self.width - (META_WIDTH + 1 if self.meta_shown else 0))
        height = max(6, self.height - 4)
        if self.zoomed:
            return 1, 1, 1
        for factor in (2, 4):
            side = STAMP // factor
            tall = side // 2 + 1 + (self.view == "all")  # the caption, and the panels' names
            cols, rows = width // (span(side, self.view) + 1), height // tall
            if cols * rows >= 4 or factor == 4:
                return factor, max(1, cols), max(1, rows)
        return 4, 1, 1

    @property
    def per_page(self) -> int:
        _, cols, rows = self.layout()
        return cols * rows

    def zoom_window(self) -> tuple[int, int, int, int]:
        """Zoomed: the part of the stamp (x0, cells wide, y0, rows high, two pixels a row)
        that fits the screen, centred on the stamp's centre (the galaxy) and moved by the
        arrows; the whole stamp where it fits."""
        width, height = max(8, self.width), max(4, self.height - 4 - (self.view == "all"))
        wide, tall = span(STAMP, self.view), STAMP // 2
        cols, rows = min(wide, width), min(tall, height)
        x0 = min(max(0, (wide - cols) // 2 + self.pan[0]), wide - cols)
        y0 = min(max(0, (tall - rows) // 2 + self.pan[1]), tall - rows)
        return x0, cols, y0, rows

    def panned(self, dx: int, dy: int) -> tuple[int, int]:
        """The pan after an arrow (4 pixels a press), kept inside the stamp."""
        pan = (self.pan[0] + 4 * dx, self.pan[1] + 2 * dy)
        moved = GridGeometry(self.width, self.height, self.view, True, pan)
        x0, cols, y0, rows = moved.zoom_window()
        return x0 - (span(STAMP, self.view) - cols) // 2, y0 - (STAMP // 2 - rows) // 2


def page_rows(rows: np.ndarray, page: int, per_page: int) -> list[int]:
    """The listed rows on `page`."""
    start = page * per_page
    return [int(r) for r in rows[start : start + per_page]]


class StampCache:
    """Rendered stamps (strips) by (row, look, bin factor), the oldest dropped past
    CACHED_STAMPS: pages back and ahead render once in a long session."""

    def __init__(self) -> None:
        self.strips: dict[tuple[int, tuple[str, float], int], list[Strip]] = {}

    def __len__(self) -> int:
        return len(self.strips)

    def render(
        self,
        rows: list[int],
        stamps: Callable[[list[int]], np.ndarray],
        view: str,
        stretch: float,
        factor: int,
        depth: int | None,
    ) -> dict[int, list[Strip]]:
        """Strips of these rows' stamps (`stamps(rows)` read only for those not cached):
        the costly part, done in workers."""
        look = (view, stretch)
        found = {r: self.strips[r, look, factor] for r in rows if (r, look, factor) in self.strips}
        missing = [r for r in rows if r not in found]
        if missing:
            drawn = render_stamps(stamps(missing), view, factor, depth, stretch)
            for row, lines in zip(missing, drawn, strict=True):
                found[row] = self.strips[row, look, factor] = lines
            while len(self.strips) > CACHED_STAMPS:  # the oldest go: a long session stays small
                del self.strips[next(iter(self.strips))]
        return {r: found[r] for r in rows}


def tile_lines(lines: list[Strip], geometry: GridGeometry, factor: int) -> tuple[list[Strip], int, str]:
    """A tile's lines, its width and what its caption adds: zoomed, the window's part of the
    stamp and where it is; with the bands side by side, their names on top."""
    width = span(STAMP // factor, geometry.view)
    extra = ""
    if geometry.zoomed:
        x0, width, y0, height = geometry.zoom_window()
        lines = [line.crop(x0, x0 + width) for line in lines[y0 : y0 + height]]
        extra = f"  x {x0}-{x0 + width - 1} y {2 * y0}-{2 * (y0 + height) - 1} (arrows pan)"
        if geometry.view == "all":
            lines = [panel_names(STAMP // factor).crop(x0, x0 + width), *lines]
    elif geometry.view == "all":
        lines = [panel_names(STAMP // factor), *lines]
    return lines, width, extra


def place_tiles(grid: Grid, tiles: list[StampTile], shown: list[tuple[Any, ...]]) -> None:
    """Show (lines, caption, grade, width, selected) for each tile of the page: a page turn
    redraws the tiles in place, a new count mounts them anew."""
    if len(tiles) == len(shown):
        for tile, args in zip(tiles, shown, strict=True):
            tile.show(*args)
        return
    grid.remove_children()
    grid.mount_all([StampTile(*args[:4], selected=args[4]) for args in shown])

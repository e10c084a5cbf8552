"""The candidates grid's geometry (components/candidate_grid.py), over every terminal size and
view: the stamps it lays out fit the screen beside the side panel, the zoomed window stays
inside the stamp however far it is panned."""

from __future__ import annotations

import pytest

from halo_tui.components.candidate_grid import META_WIDTH, STAMP, GridGeometry
from halo_tui.components.stamp import VIEWS, span


@pytest.mark.parametrize("view", VIEWS)
def test_the_grid_fits_every_screen(view: str) -> None:
    for width in range(40, 301, 7):
        for height in range(12, 81, 5):
            grid = GridGeometry(width, height, view)
            factor, cols, rows = grid.layout()
            room = width - (META_WIDTH + 1 if grid.meta_shown else 0)
            side = STAMP // factor
            tall = side // 2 + 1 + (view == "all")
            smallest = (span(STAMP // 4, view) + 1, STAMP // 8 + 1 + (view == "all"))
            if max(20, room) >= smallest[0] and max(6, height - 4) >= smallest[1]:  # one fits at least
                assert cols * (span(side, view) + 1) <= max(20, room), (width, height, view)
                assert rows * tall <= max(6, height - 4), (width, height, view)
            else:  # a terminal too small for one stamp shows one, cut
                assert factor == 4 and (cols == 1 or rows == 1), (width, height, view)
            assert grid.per_page == cols * rows >= 1


@pytest.mark.parametrize("view", VIEWS)
def test_the_zoomed_window_stays_inside_the_stamp(view: str) -> None:
    for width, height in ((30, 12), (80, 24), (300, 80)):
        grid = GridGeometry(width, height, view, zoomed=True)
        assert grid.layout() == (1, 1, 1) and not grid.meta_shown
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            for _ in range(80):  # panned far past the edge (all: 259 pixels wide)
                grid = GridGeometry(width, height, view, True, grid.panned(dx, dy))
                x0, cols, y0, rows = grid.zoom_window()
                assert 0 <= x0 and x0 + cols <= span(STAMP, view) and cols <= max(8, width)
                assert 0 <= y0 and y0 + rows <= STAMP // 2
            assert grid.panned(dx, dy) == grid.pan  # at the edge: no further

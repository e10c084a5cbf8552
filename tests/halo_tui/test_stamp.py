"""Half-block stamps: each cell is exactly its two pixels' colours."""

import numpy as np

from halo_tui.components.stamp import HALF, strips


def test_each_cell_carries_its_top_and_bottom_pixel() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (9, 7, 3)).astype(np.uint8)  # odd height
    rows = strips(rgb)
    assert len(rows) == 5 and all(row.cell_length == 7 for row in rows)
    padded = np.concatenate([rgb, rgb[-1:]], axis=0)  # the last row repeats under itself
    for y, row in enumerate(rows):
        cells = list(row)
        assert [seg.text for seg in cells] == [HALF] * 7
        for x, seg in enumerate(cells):
            assert tuple(seg.style.color.triplet) == tuple(padded[2 * y, x])
            assert tuple(seg.style.bgcolor.triplet) == tuple(padded[2 * y + 1, x])

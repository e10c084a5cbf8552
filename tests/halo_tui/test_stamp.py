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


def test_in_256_colours_the_sky_stays_neutral_and_arcs_keep_their_colour() -> None:
    """Part 2 of issue 14: in 256 colours the sky's noise became saturated speckle."""
    from rich.color import Color

    from core.colour import neutral_sky, sdss_rgb

    rng = np.random.default_rng(4)
    stamp = rng.normal(0, 0.003, (3, 64, 64)).astype(np.float32)  # faint sky noise
    stamp[:, 30:34, 30:34] += np.array([0.02, 0.2, 0.6], np.float32)[:, None, None]  # a red galaxy
    rgb = sdss_rgb(stamp)
    neutral = neutral_sky(rgb)

    def cube_colours(image: np.ndarray) -> int:  # 256-colour entries off the grey ramp
        count = 0
        for r, g, b in image.reshape(-1, 3)[::7]:
            number = Color.from_rgb(int(r), int(g), int(b)).downgrade(2).number  # EIGHT_BIT
            count += number is not None and 16 <= number < 232 and (number - 16) % 43 != 0
        return count

    sky = (slice(0, 20), slice(0, 20))
    before, after = cube_colours(rgb[sky]), cube_colours(neutral[sky])
    assert before > 10 and after <= before // 8  # a rare bright noise pixel keeps its colour
    assert np.array_equal(neutral[31:33, 31:33], rgb[31:33, 31:33])  # the galaxy untouched


def test_the_candidates_grid_keeps_the_sky_neutral_below_truecolor() -> None:
    from core.colour import bin2, neutral_sky, sdss_rgb
    from halo_tui.components.stamp import render_rgb

    stamp = np.random.default_rng(5).normal(0, 0.003, (3, 64, 64)).astype(np.float32)
    plain = bin2(sdss_rgb(stamp), 2)
    assert np.array_equal(render_rgb(stamp, "grz", 2, None), plain)  # truecolor: as is
    for depth in (256, 16):
        assert np.array_equal(render_rgb(stamp, "grz", 2, depth), neutral_sky(plain))


def test_a_page_renders_with_the_collector_held_off_and_put_back() -> None:
    """Issue 14 part 6: a page's ~40,000 cell objects set off cyclic collections that scan
    the whole console; render_stamps holds the collector off, and puts it back as it was."""
    import gc
    import threading

    from halo_tui.components.stamp import collector_paused, render_rgb, render_stamps, strips

    rng = np.random.default_rng(5)
    stamps = rng.normal(0, 0.05, (3, 3, 64, 64)).astype(np.float32)
    drawn = render_stamps(stamps, "grz", 2)
    assert [[s._segments for s in lines] for lines in drawn] == [
        [s._segments for s in strips(render_rgb(stamp, "grz", 2))] for stamp in stamps
    ]
    assert gc.isenabled()
    inside, release = threading.Event(), threading.Event()

    def other_page() -> None:
        with collector_paused():
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=other_page)
    worker.start()
    assert inside.wait(5)
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other page is still being built
    release.set()
    worker.join()
    assert gc.isenabled()
    gc.disable()
    try:  # a collector someone else turned off stays off, whoever finishes last
        inside.clear()
        release.clear()
        with collector_paused():  # first in, first out; the other page finishes last
            worker = threading.Thread(target=other_page)
            worker.start()
            assert inside.wait(5)
        release.set()
        worker.join()
        assert not gc.isenabled()
    finally:
        gc.enable()

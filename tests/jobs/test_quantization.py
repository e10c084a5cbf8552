"""The coadd's quantisation lattice, checked against astropy/cfitsio's own decoding."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.survey.quantization import DITHER_2, NO_DITHER, requantise

METHODS = {-1: "NO_DITHER", 1: "SUBTRACTIVE_DITHER_1", 2: "SUBTRACTIVE_DITHER_2"}


def _sky(shape: tuple[int, int] = (90, 130)) -> np.ndarray:
    rng = np.random.default_rng(5)
    sky = rng.normal(0.0, 0.01, shape).astype(np.float32)
    sky[10:14, 20:30] = 0.0  # a patch with no data
    return sky


@pytest.mark.parametrize("method", [-1, 1, 2])
@pytest.mark.parametrize("tile", [None, (16, 24)])  # rows (fpack's default), and 2-D tiles
def test_a_cutout_with_no_arc_comes_back_bit_for_bit(rice, method: int, tile: tuple[int, int] | None) -> None:
    decoded, lattice = rice(_sky(), method, tile)
    assert lattice.method == METHODS[method]
    rng = np.random.default_rng(0)
    for y0, x0 in ((0, 0), (30, 70), (60, 100)):  # the last leaves the image: floats there
        size = 32
        cut = np.zeros((size, size), np.float32)
        part = decoded[y0 : y0 + size, x0 : x0 + size]
        cut[: part.shape[0], : part.shape[1]] = part
        out = requantise(
            cut, np.zeros_like(cut, dtype=np.float64), lattice.region(y0, x0, size), lattice.method, rng
        )
        assert out.tobytes() == cut.tobytes()


@pytest.mark.parametrize("method", [-1, 1, 2])
def test_an_arc_lands_on_the_coadds_lattice_unbiased(rice, method: int) -> None:
    decoded, lattice = rice(_sky(), method, None)
    y0, x0, size = 20, 40, 48
    cut = decoded[y0 : y0 + size, x0 : x0 + size].copy()
    yy, xx = np.mgrid[0:size, 0:size] - size / 2
    arc = 0.02 * np.exp(-0.5 * ((np.hypot(xx, yy) - 10) / 2.0) ** 2)  # a ring, peak 2σ
    region = lattice.region(y0, x0, size)
    scale, zero, r = region
    totals = []
    for seed in range(40):
        out = requantise(cut, arc, region, lattice.method, np.random.default_rng(seed)).astype(np.float64)
        index = (out - zero) / scale + (0.0 if r is None else r - 0.5)
        assert np.allclose(index, np.rint(index), atol=1e-3)  # every pixel on the lattice
        totals.append((out - cut).sum())
    # unbiased: the added flux averages to the arc's, within the rounding noise
    assert abs(np.mean(totals) - arc.sum()) < 4 * scale.mean() * np.sqrt(size * size / 4 / 40)
    if lattice.method == DITHER_2:
        zeros = cut == 0.0
        assert (out[zeros] == 0.0).all()


def test_a_float_arc_breaks_the_lattice_and_requantising_keeps_it(rice) -> None:
    """The shortcut the review found: exact zeros vanish from float-arc positives."""
    decoded, lattice = rice(_sky((64, 64)), -1, None)
    assert lattice.method == NO_DITHER
    arc = np.full((64, 64), 1e-5)  # a faint arc's wings reach every pixel
    cut = decoded.copy()
    cut[10:14, 20:30] = decoded[10:14, 20:30]
    float_positive = cut + arc.astype(np.float32)
    kept = requantise(cut, arc, lattice.region(0, 0, 64), lattice.method, np.random.default_rng(1))
    zeros = np.mean(cut == 0.0)
    assert zeros > 0.01
    assert np.mean(float_positive == 0.0) < zeros / 10
    assert abs(np.mean(kept == 0.0) - zeros) < 0.005

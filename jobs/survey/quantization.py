"""The quantisation lattice of a tile-compressed (RICE) coadd, and arcs added on it.

DR10's coadds, like the mock survey's, are `fpack`ed: each tile's floats are stored as
integers I with a scale s and zero z per tile (the table's ZSCALE, ZZERO columns), and read
back as

- `NO_DITHER` (ZQUANTIZ absent): v = I·s + z, a regular lattice that holds 0.0 exactly;
- `SUBTRACTIVE_DITHER_1/2`: v = (I − r + ½)·s + z, with r a per-pixel dither from the FITS
  standard's table of 10,000 uniform numbers (Park–Miller), started by the tile's row and
  ZDITHER0; `_2` also keeps exact zeros as 0.0.

A float arc added to such a cutout moves every touched pixel off the lattice: exact zeros
vanish, distinct values multiply, and a CNN can tell positives from controls by that alone.
`requantise` instead adds the arc in whole lattice steps, each pixel rounded stochastically
(k = ⌊arc/s + u⌋, u uniform; unbiased, adding at most s²/4 of variance, s ≈ σ/16 for DR10's
q = 16), so a positive sits on the lattice of the coadd it was cut from, exactly as its
control does. A control passed through it with no arc comes back bit for bit."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

N_RANDOM = 10000
NO_DITHER, DITHER_1, DITHER_2, LOSSLESS = (
    "NO_DITHER",
    "SUBTRACTIVE_DITHER_1",
    "SUBTRACTIVE_DITHER_2",
    "LOSSLESS",
)


@functools.cache
def random_table() -> np.ndarray:
    """The FITS standard's 10,000 dither values (cfitsio's fits_init_randoms), float32."""
    a, m, seed = 16807.0, 2147483647.0, 1.0
    out = np.empty(N_RANDOM, dtype=np.float32)
    for i in range(N_RANDOM):
        temp = a * seed
        seed = temp - m * int(temp / m)
        out[i] = seed / m
    return out


def dither(tile_row: int, dither_seed: int, n: int) -> np.ndarray:
    """The dither values r of a tile's first `n` pixels (float64 of the float32 table);
    `tile_row` counts from 1, as the compressed table's rows do."""
    table = random_table()
    iseed = (tile_row + dither_seed - 2) % N_RANDOM
    nextrand = int(np.float64(table[iseed]) * 500.0)
    out = np.empty(n, dtype=np.float64)
    done = 0
    while done < n:
        take = min(n - done, N_RANDOM - nextrand)
        out[done : done + take] = table[nextrand : nextrand + take]
        done += take
        iseed = (iseed + 1) % N_RANDOM
        nextrand = int(np.float64(table[iseed]) * 500.0)
    return out


@dataclass
class TileLattice:
    """The quantisation of one tile-compressed image: method, tiling, per-tile scale and zero."""

    method: str
    shape: tuple[int, int]  # (ny, nx)
    tile: tuple[int, int]  # (ty, tx)
    seed: int
    scale: np.ndarray  # per tile, row-major over tiles; NaN where a tile is stored losslessly
    zero: np.ndarray

    @classmethod
    def lossless(cls, shape: tuple[int, int]) -> TileLattice:
        return cls(LOSSLESS, shape, shape, 0, np.full(1, np.nan), np.zeros(1))

    @classmethod
    def from_table(cls, header: Any, data: Any) -> TileLattice:
        """From the compressed HDU read as a binary table (`disable_image_compression=True`)."""
        shape = (int(header["ZNAXIS2"]), int(header["ZNAXIS1"]))
        names = {n.upper() for n in data.columns.names}
        if int(header.get("ZBITPIX", 0)) > 0 or "ZSCALE" not in names:
            return cls.lossless(shape)
        tile = (int(header.get("ZTILE2", 1)), int(header.get("ZTILE1", shape[1])))
        method = str(header.get("ZQUANTIZ", NO_DITHER)).strip().upper()
        if method not in (NO_DITHER, DITHER_1, DITHER_2):
            method = NO_DITHER
        scale = np.asarray(data["ZSCALE"], dtype=np.float64).copy()
        zero = np.asarray(data["ZZERO"], dtype=np.float64).copy()
        scale[~(np.isfinite(scale) & (scale > 0))] = np.nan
        return cls(method, shape, tile, int(header.get("ZDITHER0", 1) or 1), scale, zero)

    def region(self, y0: int, x0: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Scale, zero and (dithered methods) dither of the `size`² pixels from (y0, x0); NaN
        scale outside the image or in lossless tiles."""
        ny, nx = self.shape
        ty, tx = self.tile
        ys, xs = np.arange(y0, y0 + size), np.arange(x0, x0 + size)
        inside = ((ys >= 0) & (ys < ny))[:, None] & ((xs >= 0) & (xs < nx))[None, :]
        yc, xc = np.clip(ys, 0, ny - 1), np.clip(xs, 0, nx - 1)
        if self.method == LOSSLESS:
            return np.full((size, size), np.nan), np.zeros((size, size)), None
        tiles_x = -(-nx // tx)
        tile_index = (yc // ty)[:, None] * tiles_x + (xc // tx)[None, :]
        scale = np.where(inside, self.scale[tile_index], np.nan)
        zero = self.zero[tile_index]
        if self.method == NO_DITHER:
            return scale, zero, None
        width = np.minimum(tx, nx - (xc // tx) * tx)  # the last tile of a row may be narrower
        within = (yc % ty)[:, None] * width[None, :] + (xc % tx)[None, :]
        tiles, which = np.unique(tile_index.ravel(), return_inverse=True)
        sequences = np.zeros((tiles.size, int(within.max()) + 1))
        for k, t in enumerate(tiles):
            n = int(within.ravel()[which == k].max()) + 1
            sequences[k, :n] = dither(int(t) + 1, self.seed, n)
        return scale, zero, sequences[which, within.ravel()].reshape(size, size)


def requantise(
    values: np.ndarray,
    arc: np.ndarray,
    region: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    method: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """`values` (a cutout, on its coadd's lattice) plus `arc`, kept on the same lattice:
    the arc is added in whole steps, each pixel rounded stochastically. Pixels outside any
    quantised tile get the arc as floats; `SUBTRACTIVE_DITHER_2`'s exact zeros (no data)
    stay 0.0."""
    scale, zero, r = region
    v = values.astype(np.float64)
    quantised = np.isfinite(scale)
    s = np.where(quantised, scale, 1.0)
    steps = np.floor(arc / s + rng.random(arc.shape))
    if r is None:
        index = np.rint((v - zero) / s)
        lattice = (index + steps) * s + zero
    else:
        index = np.rint((v - zero) / s + r - 0.5)
        lattice = ((index + steps) - r + 0.5) * s + zero
    out = np.where(quantised, lattice, v + arc)
    if method == DITHER_2:
        out = np.where(values == 0.0, 0.0, out)
    return out.astype(np.float32)

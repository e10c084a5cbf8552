"""grz cutouts from the coadd cache: one home for inject, score and eval.

A cutout is `size`² pixels centred on a position through the brick's WCS (the seed's fix:
np.round, not round); where it leaves the brick it is zero-padded and flagged, never crashed
on. It carries each band's inverse variance (arc S/N, the arc's photon noise, a band with no
data) and the quantisation lattice its pixels sit on (jobs/survey/quantization.py). Bricks are read
lazily: a DR10-sized image by section, only the tiles a cutout touches."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from jobs.survey.layout import BANDS, PIXSCALE, coadd_path


class BrickUnavailable(Exception):
    """A brick's coadds cannot be read: its rows fail with this reason."""


@dataclass
class Cutout:
    """A galaxy's grz cutout, its invvar (when the reader reads it), where the galaxy sits in
    it, and the quantisation lattice each band's pixels sit on (see jobs/survey/quantization.py)."""

    stamp: np.ndarray  # (3, size, size) float32
    invvar: np.ndarray | None  # (3, size, size): 0 where a band has no data
    inside: bool
    dx: float  # the galaxy's offset from the centre pixel, arcsec (x, y along the pixel axes)
    dy: float
    lattices: tuple[tuple[str, Any], ...] = ()  # per band: (method, region)
    covered: bool = True  # whether the position itself lies on the brick's image

    def add_arc(self, arc: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The stamp with `arc` added on each band's lattice, as the coadd would hold it."""
        from jobs.survey.quantization import requantise

        if not self.lattices:
            return (self.stamp + arc).astype(np.float32)
        return np.stack(
            [
                requantise(self.stamp[i], arc[i], region, method, rng)
                for i, (method, region) in enumerate(self.lattices)
            ]
        )


FULL_READ_PIXELS = 2048 * 2048


class _Section:
    """Lazy 2-D access to an image HDU. A DR10-sized image (3600², ~40 targets a brick) is
    read by section: only the tiles a cutout touches are decompressed. A small image is
    decompressed whole at the first cutout: astropy spends ~0.25 ms of Python per tile, so
    ~60 cutouts of 64 rows cost more than the whole of a 600-row image. `lattice` is the
    HDU's quantisation (per-tile scale and zero, dither)."""

    def __init__(self, hdu: Any, lattice: Any) -> None:
        self.hdu, self.shape, self.lattice = hdu, tuple(hdu.shape), lattice
        self.whole: np.ndarray | None = None

    def __getitem__(self, key: Any) -> np.ndarray:
        if self.shape[0] * self.shape[1] > FULL_READ_PIXELS:
            return np.asarray(self.hdu.section[key], dtype=np.float32)
        if self.whole is None:
            self.whole = np.asarray(self.hdu.data, dtype=np.float32)
        return self.whole[key]


class CoaddReader:
    """Cutouts from the coadd cache. A few bricks are kept open (partitions are brick-sorted),
    and each galaxy's cutout is made once however many tasks it serves. Scoring needs no
    invvar (`with_invvar=False`): half the files read."""

    def __init__(
        self, cache: str, size: int, keep_bricks: int = 2, keep_cutouts: int = 2048, with_invvar: bool = True
    ) -> None:
        self.cache, self.size = cache, size
        self.kinds = ("image", "invvar") if with_invvar else ("image",)
        self.keep_bricks, self.keep_cutouts = keep_bricks, keep_cutouts
        self._bricks: OrderedDict[str, Any] = OrderedDict()
        self._cutouts: OrderedDict[tuple[str, float, float], Cutout] = OrderedDict()

    def cutout(self, brick: str, ra: float, dec: float) -> Cutout:
        key = (brick, ra, dec)
        found = self._cutouts.get(key)
        if found is None:
            found = self._cut(brick, ra, dec)
            self._cutouts[key] = found
            if len(self._cutouts) > self.keep_cutouts:
                self._cutouts.popitem(last=False)
        return found

    def _cut(self, brick: str, ra: float, dec: float) -> Cutout:
        sections, wcs = self._brick(brick)
        x, y = (float(v) for v in wcs.all_world2pix(ra, dec, 0))
        size = self.size
        planes = []
        for kind, band in ((k, b) for k in self.kinds for b in BANDS):
            try:
                plane, inside, x0, y0 = cutout(sections[kind, band], x, y, size)
            except Exception as err:  # a damaged tile shows only when it is decompressed
                uri = self._uri(brick, kind, band)
                raise BrickUnavailable(f"{uri}: unreadable FITS ({type(err).__name__}: {err})") from None
            planes.append(plane)
        half = size // 2
        ny, nx = sections["image", "r"].shape
        covered = -0.5 <= x < nx - 0.5 and -0.5 <= y < ny - 0.5
        lattices = tuple(
            (sections["image", b].lattice.method, sections["image", b].lattice.region(y0, x0, size))
            for b in BANDS
        )
        return Cutout(
            np.stack(planes[:3]),
            np.stack(planes[3:]) if len(planes) > 3 else None,
            inside,
            (x - x0 - half) * PIXSCALE,
            (y - y0 - half) * PIXSCALE,
            lattices,
            covered,
        )

    def _uri(self, brick: str, kind: str, band: str) -> str:
        return f"{self.cache.rstrip('/')}/{coadd_path(brick, kind, band)}"

    def _brick(self, brick: str) -> tuple[dict[tuple[str, str], _Section], Any]:
        if brick not in self._bricks:
            try:
                self._bricks[brick] = self._open(brick)
            except BrickUnavailable as err:
                self._bricks[brick] = err
            while len(self._bricks) > self.keep_bricks:
                old = self._bricks.popitem(last=False)[1]
                if not isinstance(old, BrickUnavailable):
                    for hdus in old[2]:
                        hdus.close()
        found = self._bricks[brick]
        if isinstance(found, BrickUnavailable):
            raise found
        return found[0], found[1]

    def _open(self, brick: str) -> tuple[dict[tuple[str, str], _Section], Any, list[Any]]:
        import io

        from astropy.io import fits
        from astropy.wcs import WCS

        from core import storage

        sections, wcs, opened = {}, None, []
        for kind in self.kinds:
            for band in BANDS:
                uri = self._uri(brick, kind, band)
                try:
                    data = storage.read_bytes(uri) if storage.is_s3(uri) else None
                    hdus = fits.open(uri if data is None else io.BytesIO(data), memmap=False)
                    opened.append(hdus)
                    index, hdu = next(
                        (i, h) for i, h in enumerate(hdus) if h.is_image and h.header.get("NAXIS") == 2
                    )
                    source = uri if data is None else io.BytesIO(data)
                    lattice = _lattice(source, index, hdu) if kind == "image" else None
                    sections[kind, band] = _Section(hdu, lattice)
                    if wcs is None:
                        wcs = WCS(hdu.header)
                except FileNotFoundError:
                    raise BrickUnavailable(
                        f"{uri}: not in the coadd cache (run `halo stage coadds`)"
                    ) from None
                except Exception as err:  # astropy raises many kinds for a damaged file
                    raise BrickUnavailable(f"{uri}: unreadable FITS ({type(err).__name__}: {err})") from None
        return sections, wcs, opened


def _lattice(source: Any, index: int, hdu: Any) -> Any:
    """The quantisation of an image HDU: its compressed table's per-tile scale and zero, or
    lossless for an uncompressed image."""
    from astropy.io import fits

    from jobs.survey.quantization import TileLattice

    if not isinstance(hdu, fits.CompImageHDU):
        return TileLattice.lossless(tuple(hdu.shape))
    with fits.open(source, memmap=False, disable_image_compression=True) as raw:
        table = raw[index]
        return TileLattice.from_table(table.header, table.data)


def cutout(image: np.ndarray, x: float, y: float, size: int) -> tuple[np.ndarray, bool, int, int]:
    """A `size`² cutout whose centre pixel holds (x, y); zero-padded where it leaves the image.
    Returns the cutout, whether it lies wholly inside, and its origin (x0, y0)."""
    half = size // 2
    x0, y0 = int(np.round(x)) - half, int(np.round(y)) - half  # the seed's fix: np.round, not round
    ny, nx = image.shape
    inside = x0 >= 0 and y0 >= 0 and x0 + size <= nx and y0 + size <= ny
    if inside:
        return image[y0 : y0 + size, x0 : x0 + size].copy(), True, x0, y0
    out = np.zeros((size, size), dtype=np.float32)
    ys, xs = slice(max(y0, 0), min(y0 + size, ny)), slice(max(x0, 0), min(x0 + size, nx))
    if ys.start < ys.stop and xs.start < xs.stop:
        out[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = image[ys, xs]
    return out, False, x0, y0


OUTSIDE = "outside the footprint"  # a position's fail_reason where no brick's image covers it


def cut_positions(
    reader: Any, ra: np.ndarray, dec: np.ndarray, bricks: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Cutouts at sky positions (no injection): stamps, whether each is usable, and why not.
    A position's brick is its catalogue's `brickname` if given, else DR10's brick grid's."""
    from jobs.survey.layout import brick_at

    n, size = len(ra), reader.size
    stamps = np.zeros((n, 3, size, size), dtype=np.float32)
    ok = np.ones(n, dtype=bool)
    reasons: list[str | None] = [None] * n
    names = [
        str(bricks[i]) if bricks is not None else brick_at(float(ra[i]), float(dec[i])).name for i in range(n)
    ]
    for i in sorted(range(n), key=lambda j: names[j]):  # brick by brick: each opened once
        brick = names[i]
        try:
            cut = reader.cutout(brick, float(ra[i]), float(dec[i]))
            stamps[i] = cut.stamp
            if not cut.covered:
                ok[i], reasons[i] = False, f"{OUTSIDE}: the position is not on brick {brick}'s image"
            elif not cut.inside:
                ok[i], reasons[i] = False, f"edge: the stamp leaves brick {brick}"
            elif not np.isfinite(cut.stamp).all():
                ok[i], reasons[i] = False, f"the cutout in brick {brick} holds non-finite pixels"
        except BrickUnavailable as err:
            ok[i], reasons[i] = False, str(err)
    return stamps, ok, reasons

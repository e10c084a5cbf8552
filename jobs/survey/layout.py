"""DR10's brick grid and file layout, shared by the mock survey and the stages that read it.

Bricks are 0.25 deg tall rows in Dec; each row is cut into equal RA bricks about 0.25 deg wide.
A brick is named from its centre, RA*10 and |Dec|*10 truncated: (112.62, 22.25) -> `1126p222`.
Files, relative to a survey root (as on the DR10 mirror):

    tractor/<AAA>/tractor-<brick>.fits
    coadd/<AAA>/<brick>/legacysurvey-<brick>-image-<band>.fits.fz
    coadd/<AAA>/<brick>/legacysurvey-<brick>-invvar-<band>.fits.fz

where <AAA> is the first three characters of the brick name."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

PIXSCALE = 0.262  # arcsec per pixel
BRICK_SIZE_DEG = 0.25
BANDS = ("g", "r", "z")
BRICKNAME = re.compile(r"^\d{4}[pm]\d{3}$")


@dataclass(frozen=True)
class Brick:
    name: str
    ra: float
    dec: float


def brick_name(ra: float, dec: float) -> str:
    return f"{int(ra * 10):04d}{'p' if dec >= 0 else 'm'}{int(abs(dec) * 10):03d}"


def brick_at(ra: float, dec: float) -> Brick:
    """The brick whose footprint holds (ra, dec)."""
    row = math.floor((dec + 90.0) / BRICK_SIZE_DEG + 0.5)
    dec_c = -90.0 + row * BRICK_SIZE_DEG
    ncols = max(1, math.ceil(360.0 * math.cos(math.radians(dec_c)) / BRICK_SIZE_DEG))
    col = math.floor((ra % 360.0) / (360.0 / ncols))
    ra_c = (col + 0.5) * 360.0 / ncols
    return Brick(brick_name(ra_c, dec_c), ra_c, dec_c)


def check_brickname(name: str) -> str:
    if not BRICKNAME.match(name):
        raise ValueError(f"{name!r} is not a DR10 brick name (like 1126p222)")
    return name


def tractor_path(brick: str) -> str:
    return f"tractor/{brick[:3]}/tractor-{check_brickname(brick)}.fits"


def coadd_path(brick: str, kind: str, band: str) -> str:
    if kind not in ("image", "invvar") or band not in BANDS:
        raise ValueError(f"no coadd {kind!r} in band {band!r}")
    return f"coadd/{brick[:3]}/{check_brickname(brick)}/legacysurvey-{brick}-{kind}-{band}.fits.fz"

"""FITS cutouts as the Legacy Survey viewer's fits-cutout service writes them, made into
stamps `score` reads like any cutouts (`halo stage score --cutouts DIR`).

The service's file: a primary HDU holding a (band, y, x) cube in nanomaggies per pixel at
0.262″/px (`pixscale=0.262`), its bands named in the header (`BANDS = 'grz'`, or `'g,r,z'`,
or `BAND0`..`BAND2`), a TAN WCS (or `RA`/`DEC` keywords) for the position; with `invvar`, an
extension of the same shape holding the inverse variance. Each file becomes one row: the g,
r, z planes in that order, the central stamp-size square, the position of its centre, the
noise per band (from the inverse variance where the file has it, else estimated from the
cutout's sky by the median absolute deviation, and the row says which), and `ok` with the
reason where the file is not such a cutout. A bad file is one line in the log; the rest are
read."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jobs.survey.layout import BANDS, PIXSCALE

SUFFIXES = (".fits", ".fits.gz", ".fit", ".fits.fz")
SCALE_TOLERANCE = 0.01  # relative: 0.262″ ± 1 %


class NotACutout(ValueError):
    """The file is not a grz cutout this reader can use; the message says why."""


@dataclass(frozen=True)
class Cutout:
    stamp: np.ndarray  # (3, size, size) float32, g r z, nanomaggies per pixel
    ra: float
    dec: float
    noise: tuple[float, float, float]  # per-band sigma of a pixel, nanomaggies
    noise_from: str  # "invvar" or "sky MAD"


def files(folder: Path) -> list[Path]:
    """The FITS files in `folder` (not below it), by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(SUFFIXES))


def band_names(header: Any, n: int) -> list[str]:
    """The planes' band names from `BANDS` ('grz', 'g,r,z', 'g r z') or `BAND0..`."""
    text = str(header.get("BANDS", "")).strip()
    if text:
        names = [b for b in text.replace(",", " ").split()] if ("," in text or " " in text) else list(text)
    else:
        names = [str(header.get(f"BAND{i}", "")).strip() for i in range(n)]
    names = [b.lower() for b in names]
    if len(names) != n or not all(names):
        raise NotACutout(f"its {n} planes are not named (BANDS = 'grz', or BAND0..BAND{n - 1})")
    return names


def _pixel_scale(wcs: Any) -> float:
    from astropy.wcs.utils import proj_plane_pixel_scales

    return float(np.mean(proj_plane_pixel_scales(wcs))) * 3600.0


def _position(header: Any, shape: tuple[int, int]) -> tuple[float, float, Any]:
    """(ra, dec) of the cube's centre, and its celestial WCS if it has one."""
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    wcs = None
    if str(header.get("CTYPE1", "")).startswith("RA"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header).celestial
        ny, nx = shape
        ra, dec = wcs.all_pix2world([[(nx - 1) / 2.0, (ny - 1) / 2.0]], 0)[0]
        return float(ra) % 360.0, float(dec), wcs
    for ra_key, dec_key in (("RA", "DEC"), ("CRVAL1", "CRVAL2")):
        if ra_key in header and dec_key in header:
            return float(header[ra_key]) % 360.0, float(header[dec_key]), None
    raise NotACutout("no position: neither a WCS nor RA/DEC keywords")


def _sky_sigma(plane: np.ndarray) -> float:
    """A pixel's noise from the sky: 1.4826 × the median absolute deviation of the finite
    pixels (robust to the galaxy in the middle)."""
    good = plane[np.isfinite(plane)]
    return float(1.4826 * np.median(np.abs(good - np.median(good)))) if good.size else math.nan


def read(path: Path, size: int) -> Cutout:
    """One file as a stamp of `size` pixels; NotACutout says why it cannot be."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdus:
            cubes = [
                (h.header, h.data) for h in hdus if getattr(h, "data", None) is not None and h.data.ndim >= 2
            ]
    except (OSError, ValueError, TypeError) as err:
        raise NotACutout(f"not a readable FITS file ({type(err).__name__}: {err})") from None
    if not cubes:
        raise NotACutout("no image in it")
    header, cube = cubes[0]
    if cube.ndim == 2:
        raise NotACutout("a single plane: a grz cutout is a (band, y, x) cube")
    if cube.ndim != 3:
        raise NotACutout(f"{cube.ndim} dimensions: a grz cutout is a (band, y, x) cube")
    names = band_names(header, cube.shape[0])
    missing = [b for b in BANDS if b not in names]
    if missing:
        raise NotACutout(f"no {', '.join(missing)} plane (its bands: {''.join(names)})")
    ra, dec, wcs = _position(header, cube.shape[1:])
    if wcs is not None:
        scale = _pixel_scale(wcs)
        if abs(scale / PIXSCALE - 1.0) > SCALE_TOLERANCE:
            raise NotACutout(
                f"pixel scale {scale:.3f}″, not {PIXSCALE}″ (ask the service for pixscale={PIXSCALE})"
            )
    ny, nx = cube.shape[1:]
    if ny < size or nx < size:
        raise NotACutout(f"{nx}×{ny} pixels: smaller than the {size}-pixel stamp")
    y0, x0 = (ny - size) // 2, (nx - size) // 2
    order = [names.index(b) for b in BANDS]
    stamp = np.asarray(cube, dtype=np.float32)[order, y0 : y0 + size, x0 : x0 + size]
    if not np.isfinite(stamp).all():
        raise NotACutout("non-finite pixels in the stamp")
    invvar = next((d for h, d in cubes[1:] if d.shape == cube.shape), None)
    if invvar is not None:
        planes = np.asarray(invvar, dtype=np.float64)[order, y0 : y0 + size, x0 : x0 + size]
        if (planes <= 0).all(axis=(1, 2)).any():
            empty = [b for b, p in zip(BANDS, planes, strict=True) if (p <= 0).all()]
            raise NotACutout(f"no data in band {', '.join(empty)} (its inverse variance is 0)")
        noise = tuple(float(1.0 / math.sqrt(np.median(p[p > 0]))) for p in planes)
        return Cutout(stamp, ra, dec, noise, "invvar")  # type: ignore[arg-type]
    noise = tuple(_sky_sigma(p) for p in stamp)
    return Cutout(stamp, ra, dec, noise, "sky MAD")  # type: ignore[arg-type]


def table(folder: Path, size: int) -> tuple[Any, list[str]]:
    """Every FITS file of `folder` as one row of a cutouts table (`row`, `name` — the file's
    name —, `population`, `ra`, `dec`, `noise_g/r/z`, `noise_from`, `ok`, `fail_reason`,
    `stamp`), and a line for each file that could not be used."""
    import pyarrow as pa

    from core import stamps as stamp_contract

    floats = ("ra", "dec", "noise_g", "noise_r", "noise_z")
    schema = pa.schema(
        [("row", pa.int64()), ("name", pa.string()), ("population", pa.string())]
        + [(c, pa.float64()) for c in floats]
        + [
            ("noise_from", pa.string()),
            ("ok", pa.bool_()),
            ("fail_reason", pa.string()),
            ("stamp", pa.binary()),
        ],
        metadata=stamp_contract.arrow_metadata((3, size, size)),
    )
    blank = np.zeros((3, size, size), np.float32).tobytes()
    rows, said = [], []
    for index, path in enumerate(files(folder)):
        row: dict[str, Any] = {"row": index, "name": path.name, "population": "cutout file"}
        try:
            got = read(path, size)
        except NotACutout as err:
            said.append(f"{path}: {err}")
            rows.append(
                row | dict.fromkeys(floats, math.nan) | {"ok": False, "fail_reason": str(err), "stamp": blank}
            )
            continue
        values = (got.ra, got.dec, *got.noise)
        rows.append(
            row
            | dict(zip(floats, values, strict=True))
            | {"noise_from": got.noise_from, "ok": True, "stamp": got.stamp.tobytes()}
        )
    return pa.Table.from_pylist(rows, schema=schema), said


def cached(workspace: Path, folder: Path, size: int, force: bool, stage: str) -> dict[str, Any]:
    """The FITS cutout files of `folder` as a cutouts folder of the workspace (`table`),
    redone when a file's content changes; a file that is not a cutout is one line (said by
    `stage`) and a row with its reason."""
    import hashlib

    from core.layout import cutouts_dir
    from jobs.runtime import stage as stage_runtime
    from jobs.survey.catalogs import catalog_stem

    if not folder.is_dir():
        raise stage_runtime.StageError(f"{folder}: not a folder of FITS cutouts")
    found = files(folder)
    if not found:
        raise stage_runtime.StageError(f"{folder}: no FITS files ({', '.join(SUFFIXES)})")
    contents = [(p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in found]
    final = cutouts_dir(workspace, f"files-{catalog_stem(str(folder))}")
    digest = stage_runtime.fingerprint("fits cutouts", str(folder.resolve()), size, contents)
    if not force and stage_runtime.up_to_date(final, digest):
        stage_runtime.unchanged(f"{stage}: {final} is")
        return {"outputs": [str(final)]}
    rows, said = table(folder, size)
    for line in said:
        print(f"{stage}: skipped {line}", flush=True)
    ok = sum(rows.column("ok").to_pylist())
    print(f"{stage}: {ok} of {rows.num_rows} FITS file(s) in {folder} are grz cutouts", flush=True)
    if not ok:
        raise stage_runtime.StageError(f"{folder}: none of its {rows.num_rows} FITS file(s) is a grz cutout")
    with stage_runtime.atomic_dir(final, digest) as tmp:
        stage_runtime.write_parquet(rows, tmp / "part-00000.parquet", "zstd")
    return {"outputs": [str(final)]}

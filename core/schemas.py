"""Column contracts shared by the stages and the console: names, types, units.

The Tractor columns follow DR10's catalogue data model (fluxes in nanomaggies, sizes in
arcsec, depths in 1/nanomaggy²)."""

from __future__ import annotations

import numpy as np

BANDS = ("g", "r", "z")
SPLITS = ("train", "val", "test")  # the region splits a row belongs to, in this order

# (name, numpy dtype, unit) of every Tractor column the pipeline reads.
TRACTOR_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("release", "int16", ""),
    ("brickid", "int32", ""),
    ("brickname", "U8", ""),
    ("objid", "int32", ""),
    ("brick_primary", "bool", ""),
    ("type", "U3", ""),
    ("ra", "float64", "deg"),
    ("dec", "float64", "deg"),
    ("bx", "float32", "pix"),
    ("by", "float32", "pix"),
    ("ebv", "float32", "mag"),
    *((f"flux_{b}", "float32", "nanomaggy") for b in (*BANDS, "w1")),
    *((f"flux_ivar_{b}", "float32", "1/nanomaggy^2") for b in (*BANDS, "w1")),
    *((f"nobs_{b}", "int16", "") for b in BANDS),
    *((f"psfsize_{b}", "float32", "arcsec") for b in BANDS),
    *((f"psfdepth_{b}", "float32", "1/nanomaggy^2") for b in BANDS),
    *((f"galdepth_{b}", "float32", "1/nanomaggy^2") for b in BANDS),
    ("maskbits", "int32", ""),
    ("shape_r", "float32", "arcsec"),
    ("shape_e1", "float32", ""),
    ("shape_e2", "float32", ""),
    ("sersic", "float32", ""),
)
TRACTOR_TYPES = ("PSF", "REX", "DEV", "EXP", "SER", "DUP")

# Carried from the catalogue into the parent sample (and on into manifests and stamps).
PARENT_COLUMNS: tuple[str, ...] = (
    "brickname",
    "objid",
    "ra",
    "dec",
    "type",
    *(f"flux_{b}" for b in (*BANDS, "w1")),
    *(f"psfsize_{b}" for b in BANDS),
    *(f"psfdepth_{b}" for b in BANDS),
    *(f"nobs_{b}" for b in BANDS),
    "ebv",
    "maskbits",
    "shape_r",
    "shape_e1",
    "shape_e2",
    "sersic",
)


def galaxy_keys(brickname, objid):
    """Each row's galaxy, "brickname:objid": the independent unit every count is made of."""
    return np.array([f"{b}:{int(o)}" for b, o in zip(brickname, objid, strict=True)], dtype=object)


def unit_keys(brickname, objid, unit=None):
    """Each row's independent unit: its `unit` where the stamps carry one (objects closer than
    1.5″ are one unit, jobs.survey.catalogs.same_object_units), else its galaxy."""
    keys = galaxy_keys(brickname, objid)
    if unit is None:
        return keys
    return np.array([k if u is None else str(u) for k, u in zip(keys, unit, strict=True)], dtype=object)


def known_rows(columns):
    """Which rows (of a manifest's or stamps' columns: a dict or an Arrow table) are known
    lenses; none where the column is absent (made before known lenses were tasks)."""
    names = columns.column_names if hasattr(columns, "column_names") else list(columns)
    n = columns.num_rows if hasattr(columns, "num_rows") else len(columns["split"])
    if "known_tier" not in names:
        return np.zeros(n, bool)
    values = columns["known_tier"]
    values = values.to_pylist() if hasattr(values, "to_pylist") else values
    return np.array([bool(v) for v in values], dtype=bool)


def hash_order(keys) -> np.ndarray:
    """A fixed pseudo-random order of `keys` (galaxies): the same sample on every run."""
    import hashlib

    digests = [hashlib.blake2b(str(k).encode(), digest_size=8).digest() for k in keys]
    return np.argsort(np.array(digests, dtype="S8"), kind="stable")


def nanomaggies_to_mag(flux):
    """AB magnitude from nanomaggies, m = 22.5 − 2.5 log10(flux); NaN where flux ≤ 0."""
    flux = np.asarray(flux, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, 22.5 - 2.5 * np.log10(np.where(flux > 0, flux, 1.0)), np.nan)


def mag_to_nanomaggies(mag):
    return 10.0 ** ((22.5 - np.asarray(mag, dtype=np.float64)) / 2.5)


def depth_to_mag5(depth):
    """5σ depth magnitude from psfdepth/galdepth (1/nmgy²): −2.5 [log10(5/√depth) − 9]."""
    depth = np.asarray(depth, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -2.5 * (np.log10(5.0 / np.sqrt(depth)) - 9.0)

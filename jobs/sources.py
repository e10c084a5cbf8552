"""The lensed sources' light: magnitudes, colours and Sérsic index per injection task.

Two modes, a grid's `[source]` table:

- "relative" (the seed's): r = the lens galaxy's r + `src_dmag` (a grid axis), one colour
  (g − r, r − z) for every source, Sérsic n = 1.
- "population": drawn per task, independent of the lens. The unlensed r magnitude follows a
  power-law number count dN/dm ∝ 10^(slope·m) between `mag_r` limits (faint galaxy counts
  rise with slope ≈ 0.3); colours are those of blue star-forming galaxies at z ≈ 1–2 (flat
  f_ν redward of Lyman α: g − r and r − z Gaussian about ~0.35 and ~0.45); n uniform in
  `sersic_n`. `src_dmag` is then recorded (source r − lens r), not chosen.

Every value used is written to the manifest row (`src_mag_g/r/z`, `src_n`, `src_dmag`), so a
completeness can be binned by any of them."""

from __future__ import annotations

from typing import Any

import numpy as np

from core.schemas import mag_to_nanomaggies, nanomaggies_to_mag

SOURCE_COLUMNS = ("src_mag_g", "src_mag_r", "src_mag_z", "src_n")


def _power_law_mags(rng: np.random.Generator, n: int, low: float, high: float, slope: float) -> np.ndarray:
    """Magnitudes with dN/dm ∝ 10^(slope·m) on [low, high] (inverse-CDF draw)."""
    u = rng.random(n)
    if slope == 0:
        return low + u * (high - low)
    a, b = 10 ** (slope * low), 10 ** (slope * high)
    return np.log10(a + u * (b - a)) / slope


def draw(
    spec: Any, lens_flux_r: np.ndarray, src_dmag: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The source columns for positives: `spec` is a grid's `source` table."""
    n = lens_flux_r.size
    lens_mag_r = nanomaggies_to_mag(np.asarray(lens_flux_r, dtype=float))
    if spec.mode == "relative":
        mag_r = lens_mag_r + src_dmag
        g_r, r_z = np.full(n, spec.g_r), np.full(n, spec.r_z)
        sersic_n = np.ones(n)
    else:
        mag_r = _power_law_mags(rng, n, spec.mag_r[0], spec.mag_r[1], spec.count_slope)
        g_r = rng.normal(spec.g_r, spec.g_r_sigma, n)
        r_z = rng.normal(spec.r_z, spec.r_z_sigma, n)
        sersic_n = rng.uniform(spec.sersic_n[0], spec.sersic_n[1], n)
        src_dmag = mag_r - lens_mag_r
    return {
        "src_mag_g": mag_r + g_r,
        "src_mag_r": mag_r,
        "src_mag_z": mag_r - r_z,
        "src_n": sersic_n,
        "src_dmag": np.asarray(src_dmag, dtype=float),
    }


def none(n: int) -> dict[str, np.ndarray]:
    """The source columns of controls: no source."""
    return {name: np.full(n, np.nan) for name in SOURCE_COLUMNS}


def fluxes(tasks: Any) -> np.ndarray:
    """(n, 3) unlensed source fluxes in g, r, z (nanomaggies) from the manifest's magnitudes."""
    mags = np.stack([np.asarray(tasks[f"src_mag_{b}"], dtype=float) for b in "grz"], axis=1)
    return mag_to_nanomaggies(mags)

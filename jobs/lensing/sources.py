"""The lensed sources' light: magnitudes, colours, Sérsic index and structure per injection
task.

Two modes for the light, a grid's `[source]` table:

- "relative" (the seed's): r = the lens galaxy's r + `src_dmag` (a grid axis), one colour
  (g − r, r − z) for every source, Sérsic n = 1.
- "population": drawn per task, independent of the lens. The unlensed r magnitude follows a
  power-law number count dN/dm ∝ 10^(slope·m) between `mag_r` limits (faint galaxy counts
  rise with slope ≈ 0.3); colours are those of blue star-forming galaxies at z ≈ 1–2 (flat
  f_ν redward of Lyman α: g − r and r − z Gaussian about ~0.35 and ~0.45); n uniform in
  `sersic_n`. `src_dmag` is then recorded (source r − lens r), not chosen.

Two morphologies (`[source] morphology`):

- "sersic": one elliptical Sérsic of one colour (the smooth source every injection search
  started from).
- "structured": that Sérsic is the source's disc, and to it are added, each a Sérsic component
  with its own colour (literature in the `SourceModel` fields' comments):
  - a compact red bulge (r share drawn in `bulge_frac`, R_eff a fraction `bulge_size` of the
    disc's, redder by `bulge_colour` in g − r and r − z) offset from the disc's centre by up
    to `lopsided` × R_eff: light that is not point-symmetric;
  - N ~ Poisson(`clumps_mean`) (at most `clumps_max`) star-forming clumps, nearly Gaussian
    (n = 0.5), R_eff log-uniform in `clump_reff`, each a share of the r light log-uniform in
    `clump_frac` (all clumps together at most `clumps_share_max`), bluer by `clump_colour`,
    placed where the disc's light is (radius from its exponential profile, in its own
    ellipse): irregular, asymmetric light with bluer outskirts than centre.
  The manifest's `src_mag_g/r/z` are then the whole source's; the disc keeps what the other
  components leave in each band.

Every value used is written to the manifest row (`src_mag_g/r/z`, `src_n`, `src_dmag`, and
the extra components as lists, STRUCTURE_COLUMNS, with `src_clumps`), so a completeness can be
binned by any of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from core.schemas import mag_to_nanomaggies, nanomaggies_to_mag

SOURCE_COLUMNS = ("src_mag_g", "src_mag_r", "src_mag_z", "src_n")
# a structured source's extra components (bulge, then clumps): lists per row, positions relative
# to the disc's centre (″), each component's share of the source's flux per band
STRUCTURE_COLUMNS = (
    "src_comp_dx",
    "src_comp_dy",
    "src_comp_reff",
    "src_comp_n",
    "src_comp_q",
    "src_comp_phi",
    "src_comp_frac_g",
    "src_comp_frac_r",
    "src_comp_frac_z",
)
CLUMP_N = 0.5  # a clump's Sérsic index: a Gaussian
MIN_COMPONENT_REFF = 0.04  # ″: the smallest bulge or clump (~0.3 kpc at z ~ 1-2)


def _power_law_mags(rng: np.random.Generator, n: int, low: float, high: float, slope: float) -> np.ndarray:
    """Magnitudes with dN/dm ∝ 10^(slope·m) on [low, high] (inverse-CDF draw)."""
    u = rng.random(n)
    if slope == 0:
        return low + u * (high - low)
    a, b = 10 ** (slope * low), 10 ** (slope * high)
    return np.log10(a + u * (b - a)) / slope


def draw(
    spec: Any,
    lens_flux_r: np.ndarray,
    src_dmag: np.ndarray,
    rng: np.random.Generator,
    geometry: Mapping[str, np.ndarray] | None = None,
    galaxies: Any = None,
) -> dict[str, np.ndarray]:
    """The source columns for positives: `spec` is a grid's `source` table; `geometry` the
    tasks' `src_reff_arcsec`, `src_e` and `src_phi` (a structured source's disc); `galaxies`
    the catalogue's galaxies this split may use (mode "catalogue": indices and magnitudes)."""
    n = lens_flux_r.size
    lens_mag_r = nanomaggies_to_mag(np.asarray(lens_flux_r, dtype=float))
    if spec.mode == "catalogue":
        return _from_catalogue(spec, lens_mag_r, rng, galaxies)
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
    out = {
        "src_mag_g": mag_r + g_r,
        "src_mag_r": mag_r,
        "src_mag_z": mag_r - r_z,
        "src_n": sersic_n,
        "src_dmag": np.asarray(src_dmag, dtype=float),
        **_no_structure(n),
    }
    if getattr(spec, "morphology", "sersic") == "structured":
        if geometry is None:
            raise ValueError("a structured source needs the disc's geometry")
        out.update(_structure(spec, out, geometry, g_r, r_z, rng))
    return out


def _from_catalogue(spec: Any, lens_mag_r: np.ndarray, rng: np.random.Generator, galaxies: Any) -> dict:
    """Each task a galaxy drawn from `galaxies` (index, ident, F814W magnitude arrays of the
    split's eligible ones), its r = F814W + r_minus_f814w, its colours drawn."""
    index, ident, mag = galaxies
    n = lens_mag_r.size
    pick = rng.integers(0, len(index), n)
    mag_r = np.asarray(mag, float)[pick] + spec.r_minus_f814w
    g_r = rng.normal(spec.g_r, spec.g_r_sigma, n)
    r_z = rng.normal(spec.r_z, spec.r_z_sigma, n)
    out: dict[str, Any] = {
        "src_mag_g": mag_r + g_r,
        "src_mag_r": mag_r,
        "src_mag_z": mag_r - r_z,
        "src_n": np.full(n, np.nan),
        "src_dmag": mag_r - lens_mag_r,
        **_no_structure(n),
    }
    out["src_cat_index"] = np.asarray(index, np.int64)[pick]
    out["src_cat_ident"] = np.asarray(ident, dtype=object)[pick]
    return out


def _log_uniform(rng: np.random.Generator, low: float, high: float, size: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(low), np.log(high), size))


def _structure(
    spec: Any,
    out: dict[str, np.ndarray],
    geometry: Mapping[str, np.ndarray],
    g_r: np.ndarray,
    r_z: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Bulge and clumps per task (module doc): the list columns and the whole source's mags."""
    n = out["src_mag_r"].size
    reff = np.asarray(geometry["src_reff_arcsec"], dtype=float)
    e = np.asarray(geometry["src_e"], dtype=float)
    disc_q, disc_phi = (1 - e) / (1 + e), np.asarray(geometry["src_phi"], dtype=float)
    columns: dict[str, list[list[float]]] = {name: [] for name in STRUCTURE_COLUMNS}
    clumps = np.minimum(rng.poisson(spec.clumps_mean, n), spec.clumps_max)
    total = {b: np.zeros(n) for b in "grz"}
    for i in range(n):
        k = int(clumps[i])
        # r shares: the bulge's, then the clumps' (scaled down together past the cap)
        bulge = rng.uniform(*spec.bulge_frac)
        share = _log_uniform(rng, *spec.clump_frac, k)
        if share.sum() > spec.clumps_share_max:
            share *= spec.clumps_share_max / share.sum()
        shares = np.concatenate([[bulge], share])
        if shares.sum() > 0.95:  # the disc keeps at least 5 % of the r light
            shares *= 0.95 / shares.sum()
        offset = rng.uniform(0, spec.lopsided) * reff[i]
        angle = rng.uniform(0, 2 * np.pi)
        # clumps where the disc's light is: an exponential disc's radius is Gamma(2) in h
        h = reff[i] / 1.678
        radius = rng.gamma(2.0, h, k)
        psi = rng.uniform(0, 2 * np.pi, k)
        u, v = radius * np.cos(psi) * np.sqrt(disc_q[i]), radius * np.sin(psi) / np.sqrt(disc_q[i])
        c, s = np.cos(disc_phi[i]), np.sin(disc_phi[i])
        dx = np.concatenate([[offset * np.cos(angle)], c * u - s * v])
        dy = np.concatenate([[offset * np.sin(angle)], s * u + c * v])
        size = np.concatenate(
            [[reff[i] * rng.uniform(*spec.bulge_size)], _log_uniform(rng, *spec.clump_reff, k)]
        )
        colour_gr = np.concatenate([[spec.bulge_colour[0]], np.full(k, spec.clump_colour[0])]) + g_r[i]
        colour_rz = np.concatenate([[spec.bulge_colour[1]], np.full(k, spec.clump_colour[1])]) + r_z[i]
        # flux in units of the whole source's r: components, then the disc's remainder
        flux = {
            "r": np.concatenate([shares, [1 - shares.sum()]]),
        }
        flux["g"] = flux["r"] * 10 ** (-0.4 * np.concatenate([colour_gr, [g_r[i]]]))
        flux["z"] = flux["r"] * 10 ** (0.4 * np.concatenate([colour_rz, [r_z[i]]]))
        for b in "grz":
            total[b][i] = flux[b].sum()
            columns[f"src_comp_frac_{b}"].append((flux[b][:-1] / total[b][i]).tolist())
        columns["src_comp_dx"].append(dx.tolist())
        columns["src_comp_dy"].append(dy.tolist())
        columns["src_comp_reff"].append(np.maximum(size, MIN_COMPONENT_REFF).tolist())
        columns["src_comp_n"].append([rng.uniform(*spec.bulge_n), *[CLUMP_N] * k])
        columns["src_comp_q"].append([rng.uniform(0.6, 1.0), *rng.uniform(0.6, 1.0, k).tolist()])
        columns["src_comp_phi"].append(rng.uniform(0, np.pi, k + 1).tolist())
    mag_r = out["src_mag_r"]
    result: dict[str, Any] = {name: _objects(values) for name, values in columns.items()}
    result["src_mag_g"] = mag_r - 2.5 * np.log10(total["g"])
    result["src_mag_z"] = mag_r - 2.5 * np.log10(total["z"])
    result["src_clumps"] = clumps.astype(np.int16)
    return result


def _objects(values: list[list[float]]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _no_structure(n: int) -> dict[str, np.ndarray]:
    out: dict[str, Any] = {name: _objects([[] for _ in range(n)]) for name in STRUCTURE_COLUMNS}
    out["src_clumps"] = np.zeros(n, dtype=np.int16)
    out["src_cat_index"] = np.full(n, -1, dtype=np.int64)  # a catalogue source's row (mode "catalogue")
    out["src_cat_ident"] = np.full(n, "", dtype=object)
    return out


def none(n: int) -> dict[str, np.ndarray]:
    """The source columns of controls: no source."""
    return {**{name: np.full(n, np.nan) for name in SOURCE_COLUMNS}, **_no_structure(n)}


def components(tasks: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Each task's extra components (STRUCTURE_COLUMNS), padded to the batch's most: arrays
    (n, k) of dx, dy, reff, n, q, phi, the shares frac (n, k, bands), and `on`."""
    n = len(tasks["theta_e_arcsec"])
    lists = {name: tasks.get(name) for name in STRUCTURE_COLUMNS}
    present = lists["src_comp_reff"] is not None
    count = [len(v or []) for v in lists["src_comp_reff"]] if present else [0] * n
    k = max(count, default=0)
    pad = {"dx": 0.0, "dy": 0.0, "reff": 1.0, "n": 1.0, "q": 1.0, "phi": 0.0}
    out = {key: np.full((n, k), value) for key, value in pad.items()}
    frac = np.zeros((n, k, 3))
    for i in range(n):
        m = count[i]
        if not m:
            continue
        for key in pad:
            out[key][i, :m] = lists[f"src_comp_{key}"][i]
        for b, band in enumerate("grz"):
            frac[i, :m, b] = lists[f"src_comp_frac_{band}"][i]
    out["frac"] = frac
    out["on"] = np.arange(k)[None, :] < np.asarray(count)[:, None]
    return out


def fluxes(tasks: Any) -> np.ndarray:
    """(n, components, bands) unlensed fluxes (nanomaggies): the disc (the whole source's
    remainder) first, then the extra components, from the manifest's magnitudes and shares."""
    mags = np.stack([np.asarray(tasks[f"src_mag_{b}"], dtype=float) for b in "grz"], axis=1)
    total = mag_to_nanomaggies(mags)
    frac = components(tasks)["frac"]
    disc = 1.0 - frac.sum(axis=1)
    return total[:, None, :] * np.concatenate([disc[:, None, :], frac], axis=1)

"""An arc's parameters, their conventions and the numerics every engine shares (the
lenstronomy engine in jobs/lensing/engines.py, the batched one in jobs/lensing/batched.py).

Frame: a stamp's pixel axes in arcsec, (0, 0) at the centre of its centre pixel (index
size // 2), as jobs/survey/coadd_reader.py cuts it. Lens: an SIE (θE as lenstronomy's `theta_E`, which
caustics calls `Rein`) plus external shear (γ1, γ2) about the galaxy's centre, with the
galaxy's axis ratio and major-axis angle (jobs/lensing/shapes.py). Source: one or more elliptical
Sérsic components (a smooth source has one; a structured one adds a bulge and clumps,
jobs/lensing/sources.py), each with R_eff the circularised half-light radius √(ab)
(lenstronomy's `R_sersic`; caustics takes the semi-major axis R_eff/√q) and lenstronomy's
k(n) = 1.9992 n − 0.3271, and its own flux per band.

Numerics: a pixel holds its mean surface brightness × its area. It is sampled ss × ss times
inside the square where the source's images can fall and once, at its centre, elsewhere
(lenstronomy's adaptive grid). `supersample_for` picks ss from the smallest component: a tiny
source between sub-pixels is the seed's unconverged-flux flaw (up to ±0.9 mag at ss = 1).
The PSF is applied at CONVOLUTION_FACTOR sub-pixels per pixel side inside that square
(jobs/lensing/convolution.py), so ss is a multiple of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from jobs.lensing import catalogue, sources
from jobs.lensing.shapes import lenstronomy_e1e2
from jobs.survey.layout import PIXSCALE

CONVOLUTION_FACTOR = 3  # sub-pixels per pixel side where the PSF is applied (the fine square)
MIN_SUPERSAMPLE = 3
MAX_SUPERSAMPLE = 33
SUBPIXELS_PER_REFF = 4.0  # sub-pixel samples across a source's half-light radius
LIGHT_FRACTION = 0.999  # the source light whose images the fine region must hold
FINE_MIN_REACH = 2 * PIXSCALE  # at least two pixels around a point-like source's images


def sersic_k(n: np.ndarray | float) -> np.ndarray:
    """lenstronomy's k(n) (an approximation to b_n, used by both engines alike)."""
    return 1.9992 * np.asarray(n, dtype=float) - 0.3271


def sersic_total(reff: np.ndarray | float, n: np.ndarray | float) -> np.ndarray:
    """Total flux of a Sérsic of amplitude 1 at R_eff (circularised), as lenstronomy's."""
    from scipy.special import gamma

    n, reff = np.asarray(n, dtype=float), np.asarray(reff, dtype=float)
    k = sersic_k(n)
    return 2 * np.pi * n * reff**2 * np.exp(k) * k ** (-2 * n) * gamma(2 * n)


LENS_FIELDS = ("theta_e", "lens_q", "lens_phi", "lens_x", "lens_y", "gamma1", "gamma2")


@dataclass(frozen=True)
class ArcParams:
    """A batch of lens + source configurations, stamp frame (″, rad): the lens's fields of
    shape (n,), the source's of shape (n, components) (`src_on` False for padding)."""

    theta_e: np.ndarray
    lens_q: np.ndarray
    lens_phi: np.ndarray
    lens_x: np.ndarray
    lens_y: np.ndarray
    gamma1: np.ndarray
    gamma2: np.ndarray
    src_reff: np.ndarray
    src_n: np.ndarray
    src_q: np.ndarray
    src_phi: np.ndarray
    src_x: np.ndarray
    src_y: np.ndarray
    src_on: np.ndarray
    # a real galaxy's stamp per task (mode "catalogue"): (image of unit flux per arcsec², ″ a
    # pixel), or None: the source is its Sérsic components; rotated by src_phi
    images: tuple = ()

    @classmethod
    def from_tasks(
        cls, tasks: Mapping[str, Any], dx: Any = 0.0, dy: Any = 0.0, images: list | None = None
    ) -> ArcParams:
        """From manifest columns (a structured source's components from its list columns,
        sources.STRUCTURE_COLUMNS; a catalogue source's stamp from `images`, one per task or
        None); (dx, dy) the galaxy's offset from the centre pixel (″)."""

        def col(name: str, default: float | None = None) -> np.ndarray:
            if name not in tasks and default is not None:
                return np.full(len(tasks["theta_e_arcsec"]), default)
            return np.asarray(tasks[name], dtype=float)

        n = len(tasks["theta_e_arcsec"])
        dx, dy = np.broadcast_to(np.asarray(dx, float), (n,)), np.broadcast_to(np.asarray(dy, float), (n,))
        shear, shear_phi, src_e = col("shear"), col("shear_phi"), col("src_e")
        parts = sources.components(tasks)
        x0, y0 = dx + col("src_x_arcsec"), dy + col("src_y_arcsec")
        main = {
            "reff": col("src_reff_arcsec"),
            "n": col("src_n", 1.0),
            "q": (1.0 - src_e) / (1.0 + src_e),
            "phi": col("src_phi"),
        }
        images = list(images) if images is not None else [None] * n
        for i, found in enumerate(images):
            if found is not None:  # what sets its sampling and reach: its own half-light radius
                main["reff"][i], main["n"][i], main["q"][i] = catalogue.half_light_radius(*found), 1.0, 1.0
        return cls(
            theta_e=col("theta_e_arcsec"),
            lens_q=col("lens_q"),
            lens_phi=col("lens_theta"),
            lens_x=dx.copy(),
            lens_y=dy.copy(),
            gamma1=shear * np.cos(2 * shear_phi),
            gamma2=shear * np.sin(2 * shear_phi),
            src_reff=np.column_stack([main["reff"], parts["reff"]]),
            src_n=np.column_stack([main["n"], parts["n"]]),
            src_q=np.column_stack([main["q"], parts["q"]]),
            src_phi=np.column_stack([main["phi"], parts["phi"]]),
            src_x=x0[:, None] + np.column_stack([np.zeros(n), parts["dx"]]),
            src_y=y0[:, None] + np.column_stack([np.zeros(n), parts["dy"]]),
            src_on=np.column_stack([np.ones(n, bool), parts["on"]]),
            images=tuple(images) if any(found is not None for found in images) else (),
        )

    def __len__(self) -> int:
        return len(self.theta_e)

    @property
    def components(self) -> int:
        return self.src_reff.shape[1]

    def take(self, index: Any) -> ArcParams:
        picked = {f.name: getattr(self, f.name)[index] for f in fields(self) if f.name != "images"}
        arrays = {k: np.atleast_1d(v) if k in LENS_FIELDS else np.atleast_2d(v) for k, v in picked.items()}
        chosen = np.atleast_1d(np.arange(len(self))[index])
        images = tuple(self.images[j] for j in chosen) if self.images else ()
        return ArcParams(**arrays, images=images)

    def lenstronomy_kwargs(self, i: int) -> tuple[list[dict], list[dict]]:
        """lenstronomy's kwargs for configuration i (SIE + SHEAR; one SERSIC_ELLIPSE per
        component, padding included, or one INTERPOL of a catalogue stamp), each component of
        total flux 1."""
        e1, e2 = lenstronomy_e1e2(self.lens_q[i], self.lens_phi[i])
        x, y = float(self.lens_x[i]), float(self.lens_y[i])
        lens = [
            {
                "theta_E": float(self.theta_e[i]),
                "e1": float(e1),
                "e2": float(e2),
                "center_x": x,
                "center_y": y,
            },
            {"gamma1": float(self.gamma1[i]), "gamma2": float(self.gamma2[i]), "ra_0": x, "dec_0": y},
        ]
        if self.images and self.images[i] is not None:
            image, scale = self.images[i]
            stamp = {"image": image, "amp": 1.0, "phi_G": float(self.src_phi[i, 0]), "scale": float(scale)}
            return lens, [{**stamp, "center_x": float(self.src_x[i, 0]), "center_y": float(self.src_y[i, 0])}]
        amp = self.unit_amp()[i]
        source = []
        for c in range(self.components):
            s1, s2 = lenstronomy_e1e2(self.src_q[i, c], self.src_phi[i, c])
            source.append(
                {
                    "amp": float(amp[c]),
                    "R_sersic": float(self.src_reff[i, c]),
                    "n_sersic": float(self.src_n[i, c]),
                    "e1": float(s1),
                    "e2": float(s2),
                    "center_x": float(self.src_x[i, c]),
                    "center_y": float(self.src_y[i, c]),
                }
            )
        return lens, source

    def unit_amp(self) -> np.ndarray:
        """The Sérsic amplitude that gives each component a total flux of 1, (n, components)."""
        return 1.0 / sersic_total(self.src_reff, self.src_n)

    def supersample(self) -> np.ndarray:
        """Each task's sub-pixels per pixel side: what its most demanding component needs; a
        stamp's at least its own pixels' (a sub-pixel no wider than one of them)."""
        need = np.where(self.src_on, supersample_for(self.src_reff, self.src_n), 0).max(axis=1)
        for i, found in enumerate(self.images):
            if found is not None:
                pixels = np.ceil(PIXSCALE / found[1] / CONVOLUTION_FACTOR - 1e-9) * CONVOLUTION_FACTOR
                need[i] = min(max(need[i], int(pixels)), MAX_SUPERSAMPLE)
        return need

    def reach(self) -> np.ndarray:
        """(n, components): how far (″, along the major axis) each component's light goes: a
        Sérsic's LIGHT_FRACTION radius, a stamp's farthest corner."""
        out = light_radius(self.src_reff, self.src_n) / np.sqrt(self.src_q)
        for i, found in enumerate(self.images):
            if found is not None:
                out[i, 0] = catalogue.reach(*found)
        return out


def supersample_for(src_reff: Any, src_n: Any = 1.0) -> np.ndarray:
    """Sub-pixels per pixel side: SUBPIXELS_PER_REFF samples across R_eff (half that for a
    Gaussian, n ≤ 0.5, whose sampled flux converges far faster than a cusp's), at least 3, a
    multiple of CONVOLUTION_FACTOR (converged to < 0.1 % in total flux against 40× for the
    shipped grids' sources)."""
    per_reff = np.where(np.asarray(src_n, dtype=float) <= 0.5, SUBPIXELS_PER_REFF / 2, SUBPIXELS_PER_REFF)
    need = np.ceil(per_reff * PIXSCALE / np.asarray(src_reff, dtype=float) - 1e-9)
    need = np.ceil(need / CONVOLUTION_FACTOR) * CONVOLUTION_FACTOR
    return np.clip(need, MIN_SUPERSAMPLE, MAX_SUPERSAMPLE).astype(int)


def light_radius(reff: np.ndarray, n: np.ndarray, fraction: float = LIGHT_FRACTION) -> np.ndarray:
    """The radius (circularised) holding `fraction` of a Sérsic's light."""
    from scipy.special import gammaincinv

    n = np.asarray(n, dtype=float)
    return np.asarray(reff) * (gammaincinv(2 * n, fraction) / gammaincinv(2 * n, 0.5)) ** n


def fine_half_width(params: ArcParams, size: int) -> np.ndarray:
    """Half-width (pixels) of the square about the centre pixel sampled at ss: it holds every
    image of each component's inner LIGHT_FRACTION of light (or of a point-like source's
    two-pixel neighbourhood). Images of a source at distance β from an SIE's centre lie within
    (θE/√q + β + ρ)/(1 − |γ|) of it, ρ the source's reach along its major axis."""
    reach = np.maximum(params.reach(), FINE_MIN_REACH)
    beta = np.hypot(params.src_x - params.lens_x[:, None], params.src_y - params.lens_y[:, None])
    farthest = np.where(params.src_on, beta + reach, 0.0).max(axis=1)
    gamma = np.hypot(params.gamma1, params.gamma2)
    radius = (params.theta_e / np.sqrt(params.lens_q) + farthest) / (1.0 - gamma)
    radius = radius + np.hypot(params.lens_x, params.lens_y)
    return np.clip(np.ceil(radius / PIXSCALE).astype(int) + 1, 1, size // 2)


def fine_square(size: int, half: int) -> tuple[int, int]:
    """The supersampled square of half-width `half` about the centre pixel, clipped to the
    stamp: its first pixel and its width."""
    c = size // 2
    lo, hi = max(c - half, 0), min(c + half + 1, size)
    return lo, hi - lo


def fine_mask(size: int, half: int) -> np.ndarray:
    """The supersampled square of half-width `half` about the centre pixel, as a mask."""
    mask = np.zeros((size, size), dtype=bool)
    lo, w = fine_square(size, half)
    mask[lo : lo + w, lo : lo + w] = True
    return mask


def sersic(x: np.ndarray, y: np.ndarray, reff: float, n: float, q: float, phi: float) -> np.ndarray:
    """An (unlensed) Sérsic of amplitude 1 centred at (0, 0): galaxies of the mock survey."""
    from lenstronomy.LightModel.light_model import LightModel

    e1, e2 = lenstronomy_e1e2(q, phi)
    kw = {"amp": 1.0, "R_sersic": reff, "n_sersic": n, "e1": float(e1), "e2": float(e2)}
    return LightModel(["SERSIC_ELLIPSE"]).surface_brightness(x, y, [{**kw, "center_x": 0.0, "center_y": 0.0}])

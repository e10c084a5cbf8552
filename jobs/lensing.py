"""Lensing physics of an arc — the lens and source model, its conventions and its numerics —
one home for inject's engines (this module's lenstronomy engine, jobs/lensing_torch.py's
batched one) and the mock survey's planted lenses.

Frame: a stamp's pixel axes in arcsec, (0, 0) at the centre of its centre pixel (index
size // 2), as jobs/coadd_reader.py cuts it. Lens: an SIE (θE as lenstronomy's `theta_E`, which
caustics calls `Rein`) plus external shear (γ1, γ2) about the galaxy's centre, with the
galaxy's axis ratio and major-axis angle (jobs/shapes.py). Source: an elliptical Sérsic with
R_eff the circularised half-light radius √(ab) (lenstronomy's `R_sersic`; caustics takes the
semi-major axis R_eff/√q) and lenstronomy's k(n) = 1.9992 n − 0.3271.

Numerics: a pixel holds its mean surface brightness × its area. It is sampled ss × ss times
inside the square where the source's images can fall and once, at its centre, elsewhere
(lenstronomy's adaptive grid). `supersample_for` picks ss from the source's size: a tiny
source between sub-pixels is the seed's unconverged-flux flaw (up to ±0.9 mag at ss = 1)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np

from jobs.shapes import lenstronomy_e1e2
from jobs.survey_layout import PIXSCALE

MIN_SUPERSAMPLE = 3
MAX_SUPERSAMPLE = 32
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


@dataclass(frozen=True)
class ArcParams:
    """A batch of lens + source configurations, arrays of shape (n,), stamp frame (″, rad)."""

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

    @classmethod
    def from_tasks(cls, tasks: Mapping[str, Any], dx: Any = 0.0, dy: Any = 0.0) -> ArcParams:
        """From manifest columns; (dx, dy) is the galaxy's offset from the centre pixel (″)."""

        def col(name: str, default: float | None = None) -> np.ndarray:
            if name not in tasks and default is not None:
                return np.full(len(tasks["theta_e_arcsec"]), default)
            return np.asarray(tasks[name], dtype=float)

        n = len(tasks["theta_e_arcsec"])
        dx, dy = np.broadcast_to(np.asarray(dx, float), (n,)), np.broadcast_to(np.asarray(dy, float), (n,))
        shear, shear_phi, src_e = col("shear"), col("shear_phi"), col("src_e")
        return cls(
            theta_e=col("theta_e_arcsec"),
            lens_q=col("lens_q"),
            lens_phi=col("lens_theta"),
            lens_x=dx.copy(),
            lens_y=dy.copy(),
            gamma1=shear * np.cos(2 * shear_phi),
            gamma2=shear * np.sin(2 * shear_phi),
            src_reff=col("src_reff_arcsec"),
            src_n=col("src_n", 1.0),
            src_q=(1.0 - src_e) / (1.0 + src_e),
            src_phi=col("src_phi"),
            src_x=dx + col("src_x_arcsec"),
            src_y=dy + col("src_y_arcsec"),
        )

    def __len__(self) -> int:
        return len(self.theta_e)

    def take(self, index: Any) -> ArcParams:
        return ArcParams(**{f.name: np.atleast_1d(getattr(self, f.name)[index]) for f in fields(self)})

    def lenstronomy_kwargs(self, i: int, amp: float | None = None) -> tuple[list[dict], list[dict]]:
        """lenstronomy's kwargs for configuration i (SIE + SHEAR, SERSIC_ELLIPSE); the source's
        amplitude `amp`, or None for a total flux of 1."""
        if amp is None:
            amp = 1.0 / float(sersic_total(self.src_reff[i], self.src_n[i]))
        e1, e2 = lenstronomy_e1e2(self.lens_q[i], self.lens_phi[i])
        s1, s2 = lenstronomy_e1e2(self.src_q[i], self.src_phi[i])
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
        source = [
            {
                "amp": float(amp),
                "R_sersic": float(self.src_reff[i]),
                "n_sersic": float(self.src_n[i]),
                "e1": float(s1),
                "e2": float(s2),
                "center_x": float(self.src_x[i]),
                "center_y": float(self.src_y[i]),
            }
        ]
        return lens, source

    def unit_amp(self) -> np.ndarray:
        """The Sérsic amplitude that gives each source a total flux of 1."""
        return 1.0 / sersic_total(self.src_reff, self.src_n)


def supersample_for(src_reff: Any) -> np.ndarray:
    """Sub-pixels per pixel side: SUBPIXELS_PER_REFF samples across R_eff, at least 3
    (converged to < 0.1 % in total flux against 40× for the shipped grids' sources)."""
    need = np.ceil(SUBPIXELS_PER_REFF * PIXSCALE / np.asarray(src_reff, dtype=float) - 1e-9)
    return np.clip(need, MIN_SUPERSAMPLE, MAX_SUPERSAMPLE).astype(int)


def light_radius(reff: np.ndarray, n: np.ndarray, fraction: float = LIGHT_FRACTION) -> np.ndarray:
    """The radius (circularised) holding `fraction` of a Sérsic's light."""
    from scipy.special import gammaincinv

    n = np.asarray(n, dtype=float)
    return np.asarray(reff) * (gammaincinv(2 * n, fraction) / gammaincinv(2 * n, 0.5)) ** n


def fine_half_width(params: ArcParams, size: int) -> np.ndarray:
    """Half-width (pixels) of the square about the centre pixel sampled at ss: it holds every
    image of the source's inner LIGHT_FRACTION of light (or of a point-like source's two-pixel
    neighbourhood). Images of a source at distance β from an SIE's centre lie within
    (θE/√q + β + ρ)/(1 − |γ|) of it, ρ the source's reach along its major axis."""
    reach = np.maximum(light_radius(params.src_reff, params.src_n) / np.sqrt(params.src_q), FINE_MIN_REACH)
    beta = np.hypot(params.src_x - params.lens_x, params.src_y - params.lens_y)
    gamma = np.hypot(params.gamma1, params.gamma2)
    radius = (params.theta_e / np.sqrt(params.lens_q) + beta + reach) / (1.0 - gamma)
    radius = radius + np.hypot(params.lens_x, params.lens_y)
    return np.clip(np.ceil(radius / PIXSCALE).astype(int) + 1, 1, size // 2)


def fine_mask(size: int, half: int) -> np.ndarray:
    """The supersampled square of half-width `half` about the centre pixel."""
    mask = np.zeros((size, size), dtype=bool)
    c = size // 2
    mask[max(c - half, 0) : c + half + 1, max(c - half, 0) : c + half + 1] = True
    return mask


def surface_brightness(x: np.ndarray, y: np.ndarray, params: ArcParams, i: int = 0) -> np.ndarray:
    """The lensed surface brightness of configuration i's unit-flux source at (x, y) (″)."""
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel

    lens, source = params.lenstronomy_kwargs(i)
    bx, by = LensModel(["SIE", "SHEAR"]).ray_shooting(x, y, lens)
    return LightModel(["SERSIC_ELLIPSE"]).surface_brightness(bx, by, source)


def sersic(x: np.ndarray, y: np.ndarray, reff: float, n: float, q: float, phi: float) -> np.ndarray:
    """An (unlensed) Sérsic of amplitude 1 centred at (0, 0): galaxies of the mock survey."""
    from lenstronomy.LightModel.light_model import LightModel

    e1, e2 = lenstronomy_e1e2(q, phi)
    kw = {"amp": 1.0, "R_sersic": reff, "n_sersic": n, "e1": float(e1), "e2": float(e2)}
    return LightModel(["SERSIC_ELLIPSE"]).surface_brightness(x, y, [{**kw, "center_x": 0.0, "center_y": 0.0}])


class ArcEngine(Protocol):
    """Renders arcs: unit-flux lensed sources in a stamp, convolved per band, times flux."""

    name: str

    def arcs(
        self,
        params: ArcParams,
        fluxes: np.ndarray,
        kernels: list[tuple[np.ndarray, ...]],
        supersample: np.ndarray,
        half: np.ndarray,
    ) -> np.ndarray:
        """(n, bands, size, size) arcs; `fluxes` (n, bands) the unlensed source's flux per
        band, `kernels` each task's normalised PSF per band, `supersample` and `half` per
        task (fine_half_width)."""
        ...


class LenstronomyEngine:
    """lenstronomy's ImageModel on an adaptive grid, one model per (ss, fine region) reused
    with new kwargs, and scipy's FFT convolution per band."""

    name = "lenstronomy"

    def __init__(self, size: int) -> None:
        from lenstronomy.LensModel.lens_model import LensModel
        from lenstronomy.LightModel.light_model import LightModel

        self.size = size
        self.lens_model = LensModel(["SIE", "SHEAR"])
        self.source_model = LightModel(["SERSIC_ELLIPSE"])
        self._models: OrderedDict[tuple[int, int], Any] = OrderedDict()

    def model(self, supersample: int, half: int) -> Any:
        from lenstronomy.Data.imaging_data import ImageData
        from lenstronomy.Data.psf import PSF
        from lenstronomy.ImSim.image_model import ImageModel

        key = (int(supersample), int(half))
        found = self._models.get(key)
        if found is not None:
            self._models.move_to_end(key)
            return found
        origin = -(self.size // 2) * PIXSCALE
        data = ImageData(
            np.zeros((self.size, self.size)),
            ra_at_xy_0=origin,
            dec_at_xy_0=origin,
            transform_pix2angle=np.eye(2) * PIXSCALE,
        )
        numerics = {
            "supersampling_factor": key[0],
            "compute_mode": "adaptive",
            "supersampled_indexes": fine_mask(self.size, key[1]),
            "supersampling_convolution": False,
        }
        found = ImageModel(
            data,
            PSF("NONE"),
            lens_model_class=self.lens_model,
            source_model_class=self.source_model,
            kwargs_numerics=numerics,
        )
        self._models[key] = found
        if len(self._models) > 128:
            self._models.popitem(last=False)
        return found

    def lensed(self, params: ArcParams, i: int, supersample: int, half: int) -> np.ndarray:
        """Configuration i's unit-flux lensed source, unconvolved (size, size)."""
        lens, source = params.lenstronomy_kwargs(i)
        return self.model(supersample, half).image(lens, source)

    def arcs(
        self,
        params: ArcParams,
        fluxes: np.ndarray,
        kernels: list[tuple[np.ndarray, ...]],
        supersample: np.ndarray,
        half: np.ndarray,
    ) -> np.ndarray:
        from scipy.signal import fftconvolve

        out = np.empty((len(params), fluxes.shape[1], self.size, self.size))
        for i in range(len(params)):
            base = self.lensed(params, i, int(supersample[i]), int(half[i]))
            for b, kernel in enumerate(kernels[i]):
                out[i, b] = fftconvolve(base, kernel, mode="same") * fluxes[i, b]
        return out


def engine(name: str, size: int, device: str = "cpu") -> ArcEngine:
    """The arc engine called `name`: "lenstronomy" or "batched" (caustics on PyTorch)."""
    if name == "lenstronomy":
        return LenstronomyEngine(size)
    if name == "batched":
        from jobs.lensing_torch import BatchedEngine

        return BatchedEngine(size, device, compile=True)
    raise ValueError(f"unknown arc engine {name!r} (lenstronomy or batched)")


ENGINES = ("lenstronomy", "batched")

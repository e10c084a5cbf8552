"""The lenstronomy arc engine and the engine registry (jobs/lensing/batched.py is the other)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from jobs.lensing.convolution import convolve
from jobs.lensing.params import CONVOLUTION_FACTOR, ArcParams, fine_square
from jobs.lensing.psf import bin_pixels
from jobs.survey.layout import PIXSCALE


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
        """(n, bands, size, size) arcs; `fluxes` (n, components, bands) the unlensed flux of
        each source component per band, `kernels` each task's PSF per band (psf.supersampled),
        `supersample` and `half` per task (supersample_for, fine_half_width)."""
        ...


class LenstronomyEngine:
    """lenstronomy's ray shooting and Sérsic light on the shared numerics (jobs/lensing/params.py:
    pixel centres outside the fine square, ss × ss sub-pixels inside it), one task at a time,
    each band convolved by jobs/lensing/convolution.py."""

    name = "lenstronomy"

    def __init__(self, size: int) -> None:
        from lenstronomy.LensModel.lens_model import LensModel

        self.size = size
        self.lens_model = LensModel(["SIE", "SHEAR"])
        self._light: dict[int, Any] = {}
        axis = (np.arange(size) - size // 2) * PIXSCALE
        self._coarse = np.meshgrid(axis, axis)

    def light_model(self, components: int) -> Any:
        from lenstronomy.LightModel.light_model import LightModel

        if components not in self._light:
            self._light[components] = LightModel(["SERSIC_ELLIPSE"] * components)
        return self._light[components]

    def components(self, params: ArcParams, i: int, ss: int, half: int) -> tuple[np.ndarray, np.ndarray]:
        """Task i's unit-flux components, lensed and unconvolved: the stamp (components, size,
        size), the fine square binned, and the square at CONVOLUTION_FACTOR (components, f·w, f·w)."""
        if ss % CONVOLUTION_FACTOR:
            raise ValueError(f"supersampling {ss} is not a multiple of {CONVOLUTION_FACTOR}")
        lens, source = params.lenstronomy_kwargs(i)
        light, count = self.light_model(params.components), params.components
        if params.images and params.images[i] is not None:
            from lenstronomy.LightModel.light_model import LightModel

            light = LightModel(["INTERPOL"])  # a new one each time: INTERPOL keeps its image's interpolator
        lo, w = fine_square(self.size, half)

        def sample(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            bx, by = self.lens_model.ray_shooting(x.ravel(), y.ravel(), lens)
            return np.stack([light.surface_brightness(bx, by, source, k=c) for c in range(count)]).reshape(
                count, *x.shape
            )

        image = sample(*self._coarse) * PIXSCALE**2
        sub = ((np.arange(w * ss) + 0.5) / ss - 0.5 + lo - self.size // 2) * PIXSCALE
        f = CONVOLUTION_FACTOR
        fine = sample(*np.meshgrid(sub, sub)).reshape(count, w * f, ss // f, w * f, ss // f).mean(axis=(2, 4))
        fine *= (PIXSCALE / f) ** 2
        image[:, lo : lo + w, lo : lo + w] = bin_pixels(fine, f)
        return image, fine

    def lensed(
        self, params: ArcParams, i: int, supersample: int, half: int, flux: np.ndarray | None = None
    ) -> np.ndarray:
        """Task i's lensed source, unconvolved (size, size): its components weighted by `flux`
        (default: the first alone, of flux 1)."""
        image, _ = self.components(params, i, supersample, half)
        weights = np.eye(params.components)[0] if flux is None else np.asarray(flux, float)
        return np.tensordot(weights, image, axes=1)

    def arcs(
        self,
        params: ArcParams,
        fluxes: np.ndarray,
        kernels: list[tuple[np.ndarray, ...]],
        supersample: np.ndarray,
        half: np.ndarray,
    ) -> np.ndarray:
        out = np.empty((len(params), fluxes.shape[-1], self.size, self.size))
        for i in range(len(params)):
            image, fine = self.components(params, i, int(supersample[i]), int(half[i]))
            lo, _ = fine_square(self.size, int(half[i]))
            for b, kernel in enumerate(kernels[i]):
                weights = fluxes[i, :, b]
                out[i, b] = convolve(
                    np.tensordot(weights, image, axes=1), np.tensordot(weights, fine, axes=1), lo, kernel
                )
        return out


def engine(name: str, size: int, device: str = "cpu") -> ArcEngine:
    """The arc engine called `name`: "lenstronomy" or "batched" (caustics on PyTorch)."""
    if name == "lenstronomy":
        return LenstronomyEngine(size)
    if name == "batched":
        from jobs.lensing.batched import BatchedEngine

        return BatchedEngine(size, device, compile=True)
    raise ValueError(f"unknown arc engine {name!r} (lenstronomy or batched)")


ENGINES = ("lenstronomy", "batched")
